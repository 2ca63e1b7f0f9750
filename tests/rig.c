/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The real-QEMU test rig (rig.h): start a described VM, the test's own QMP
 * connection, hotplugctl and hotplugd runs, always cleaned up. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#undef G_LOG_DOMAIN
#define G_LOG_DOMAIN "test-rig"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "rig.h"
#include "qmp-caps.h"
#include "qmp-json.h"

#define READY_TIMEOUT_US (20 * G_USEC_PER_SEC)
#define POLL_INTERVAL_US (20 * 1000)
#define TAIL_BYTES 2048
#define MAX_ROOT_PORTS 15
#define HOTPLUGD_READY_MS 15000
#define HOTPLUGD_STOP_MS 10000

struct RigVm {
    RigVmOptions opts;
    RigArch arch;
    GPid pid;
    gboolean reaped;
    int status; /* waitpid status once reaped */
    char *dir;
    char *qmp_path;
    char *spare_path;
    GPtrArray *extra_paths;
    char *console_path;
    char *log_path;
    struct event_base *base;
    QmpConn *spare;
    GPtrArray *events; /* RigEvent */
    QmpCaps *caps;
};

static GQuark
rig_error_quark(void)
{
    return g_quark_from_static_string("rig-error-quark");
}
#define RIG_ERROR (rig_error_quark())
#define RIG_ERROR_FAILED 0

/* ---- small things -------------------------------------------------------------------- */

void
rig_rm_tree(const char *path)
{
    GStatBuf st;

    if (g_lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        GDir *dir = g_dir_open(path, 0, NULL);
        const char *name;

        if (dir) {
            while ((name = g_dir_read_name(dir))) {
                g_autofree char *child = g_build_filename(path, name, NULL);

                rig_rm_tree(child);
            }
            g_dir_close(dir);
        }
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

static gboolean
rig_keep(void)
{
    const char *keep = g_getenv("HOTPLUG_TEST_KEEP");

    return keep && *keep;
}

char *
rig_make_tmp(const char *tmpl)
{
    g_autoptr(GError) error = NULL;
    char *dir = g_dir_make_tmp(tmpl, &error);

    if (!dir)
        fail_msg("cannot make a temp dir: %s", error->message);
    return dir;
}

gsize
rig_count(const char *text, const char *needle)
{
    gsize n = 0;

    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

gboolean
rig_socket_accepts(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    gboolean up;

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    up = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return up;
}

JsonNode *
rig_json_parse(const char *text)
{
    g_autoptr(GError) error = NULL;
    JsonNode *n = json_from_string(text, &error);

    if (!n)
        fail_msg("bad JSON (%s): %.500s", error ? error->message : "empty", text);
    return n;
}

static gboolean
nonempty_file(const char *path)
{
    GStatBuf st;

    return g_stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* The last TAIL_BYTES of a file, from a line start, or a placeholder. */
static char *
file_tail(const char *path)
{
    g_autofree char *text = NULL;
    gsize len = 0;
    const char *start;

    if (!g_file_get_contents(path, &text, &len, NULL) || len == 0)
        return g_strdup("(empty)");
    for (gsize i = 0; i < len; i++)
        if (text[i] == '\0')
            text[i] = ' ';
    start = text;
    if (len > TAIL_BYTES) {
        const char *nl;

        start = text + len - TAIL_BYTES;
        nl = strchr(start, '\n');
        if (nl && nl[1] != '\0')
            start = nl + 1;
    }
    return g_strstrip(g_strdup(start));
}

/* Runs in a child between fork and exec: die with the parent. */
static void
rig_child_setup(gpointer data)
{
    pid_t parent = (pid_t)GPOINTER_TO_INT(data);

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127); /* the parent died before prctl took effect */
}

/* ---- machines, binaries, guests ------------------------------------------------------ */

RigArch
rig_machine_arch(RigMachine machine)
{
    switch (machine) {
    case RIG_MACHINE_PSERIES:
        return RIG_ARCH_PPC64;
    case RIG_MACHINE_VIRT:
        return RIG_ARCH_AARCH64;
    default:
        return RIG_ARCH_X86_64;
    }
}

const char *
rig_arch_name(RigArch arch)
{
    static const char *const names[] = {"x86_64", "ppc64", "aarch64"};

    g_return_val_if_fail(arch <= RIG_ARCH_AARCH64, "x86_64");
    return names[arch];
}

/* $HOTPLUG_QEMU_BINDIR/name, or name in $PATH */
static char *
rig_find_binary(const char *name, const char *debian_pkg, GError **error)
{
    const char *bindir = g_getenv("HOTPLUG_QEMU_BINDIR");
    char *path;

    if (bindir && *bindir) {
        path = g_build_filename(bindir, name, NULL);
        if (g_file_test(path, G_FILE_TEST_IS_EXECUTABLE) && !g_file_test(path, G_FILE_TEST_IS_DIR))
            return path;
        g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                    "QEMU not found: %s is not an executable ($HOTPLUG_QEMU_BINDIR is %s)", path,
                    bindir);
        g_free(path);
        return NULL;
    }
    path = g_find_program_in_path(name);
    if (!path)
        g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                    "QEMU not found: no %s in $PATH; install Debian's %s (scripts/deps.sh) "
                    "or set $HOTPLUG_QEMU_BINDIR",
                    name, debian_pkg);
    return path;
}

char *
rig_qemu_binary(RigArch arch, GError **error)
{
    static const char *const pkgs[] = {"qemu-system-x86", "qemu-system-ppc", "qemu-system-arm"};
    g_autofree char *name = g_strdup_printf("qemu-system-%s", rig_arch_name(arch));

    return rig_find_binary(name, pkgs[arch], error);
}

char *
rig_qemu_img(GError **error)
{
    return rig_find_binary("qemu-img", "qemu-utils", error);
}

static const struct {
    const char *env, *cache, *kernel, *script, *console;
} rig_guests[] = {
    [RIG_ARCH_X86_64] = {"HOTPLUG_GUEST_DIR", "guest", "vmlinuz", "build-guest.sh", "ttyS0"},
    [RIG_ARCH_PPC64] = {"HOTPLUG_GUEST_PPC64_DIR", "guest-ppc64", "vmlinux", "build-guest-ppc64.sh",
                        "hvc0"},
    [RIG_ARCH_AARCH64] = {"HOTPLUG_GUEST_ARM64_DIR", "guest-arm64", "vmlinuz",
                          "build-guest-arm64.sh", "ttyAMA0"},
};

static char *
rig_guest_dir(RigArch arch)
{
    const char *env = g_getenv(rig_guests[arch].env);

    if (env && *env)
        return g_strdup(env);
    return g_build_filename(g_get_home_dir(), ".cache", "qmp-hotplug", rig_guests[arch].cache,
                            NULL);
}

gboolean
rig_guest_available(RigArch arch, GError **error)
{
    g_autofree char *dir = rig_guest_dir(arch);
    const char *files[] = {rig_guests[arch].kernel, "initrd.img"};

    for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *path = g_build_filename(dir, files[i], NULL);

        if (!nonempty_file(path)) {
            g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                        "%s test guest missing: no %s ($%s or ~/.cache/qmp-hotplug/%s); "
                        "build it with " TOP_SRCDIR "/tests/guest/%s",
                        rig_arch_name(arch), path, rig_guests[arch].env, rig_guests[arch].cache,
                        rig_guests[arch].script);
            return FALSE;
        }
    }
    return TRUE;
}

/* ---- the VM -------------------------------------------------------------------------- */

static char *
describe_status(RigVm *vm)
{
    if (!vm->reaped)
        return g_strdup("is still running");
    if (WIFEXITED(vm->status))
        return g_strdup_printf("exited with status %d", WEXITSTATUS(vm->status));
    if (WIFSIGNALED(vm->status))
        return g_strdup_printf("was killed by signal %d (%s)", WTERMSIG(vm->status),
                               g_strsignal(WTERMSIG(vm->status)));
    return g_strdup_printf("ended with wait status 0x%x", (unsigned)vm->status);
}

/* Connect to a QMP socket and wait for the greeting; then hang up. */
static gboolean
probe_qmp(const char *path, gint64 deadline)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[256];
    gboolean ok = FALSE;
    int fd;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return FALSE;
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        gsize got = 0;

        while (got < sizeof(buf) - 1) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
            ssize_t n;
            int r;

            if (left_ms <= 0)
                break;
            r = poll(&pfd, 1, (int)MIN(left_ms, 1000));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            n = read(fd, buf + got, sizeof(buf) - 1 - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (gsize)n;
            buf[got] = '\0';
            if (strstr(buf, "\"QMP\"")) {
                ok = TRUE;
                break;
            }
        }
    }
    close(fd);
    return ok;
}

static void add_arg(GPtrArray *argv, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void
add_arg(GPtrArray *argv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(argv, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

static void
add_machine_args(GPtrArray *argv, const RigVmOptions *o)
{
    switch (o->machine) {
    case RIG_MACHINE_PC:
        add_arg(argv, "-machine");
        add_arg(argv, "pc");
        break;
    case RIG_MACHINE_Q35:
        add_arg(argv, "-machine");
        add_arg(argv, "q35");
        break;
    case RIG_MACHINE_Q35_NATIVE:
        add_arg(argv, "-machine");
        add_arg(argv, "q35");
        add_arg(argv, "-global");
        add_arg(argv, "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off");
        break;
    case RIG_MACHINE_PSERIES:
        add_arg(argv, "-machine");
        add_arg(argv, "pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off");
        add_arg(argv, "-cpu");
        add_arg(argv, "POWER9");
        break;
    case RIG_MACHINE_VIRT:
        add_arg(argv, "-machine");
        add_arg(argv, o->uefi ? "virt,acpi=on" : "virt");
        add_arg(argv, "-cpu");
        add_arg(argv, "max");
        if (o->uefi) {
            add_arg(argv, "-bios");
            add_arg(argv, RIG_AAVMF);
        }
        break;
    case RIG_MACHINE_NONE:
        add_arg(argv, "-machine");
        add_arg(argv, "none");
        break;
    }
    for (guint k = 1; k <= o->n_root_ports; k++) {
        add_arg(argv, "-device");
        add_arg(argv, "pcie-root-port,id=rp%u,chassis=%u,bus=pcie.0,addr=0x%x%s%s", k, k, 0xf + k,
                o->root_port_props ? "," : "", o->root_port_props ? o->root_port_props : "");
    }
}

static gboolean
spawn_qemu(RigVm *vm, GError **error)
{
    const RigVmOptions *o = &vm->opts;
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *qemu = NULL;
    g_autofree char *cmdline = NULL;
    g_autofree char *cmdline_path = NULL;
    int devnull, logfd;
    gboolean ok;

    if (o->uefi && o->machine != RIG_MACHINE_VIRT) {
        g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED, "uefi is for the virt machine only");
        return FALSE;
    }
    if (o->uefi && !nonempty_file(RIG_AAVMF)) {
        g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                    "no UEFI firmware %s: install Debian's qemu-efi-aarch64 "
                    "(" TOP_SRCDIR "/scripts/deps.sh)",
                    RIG_AAVMF);
        return FALSE;
    }
    qemu = rig_qemu_binary(vm->arch, error);
    if (!qemu)
        return FALSE;
    g_ptr_array_add(argv, g_strdup(qemu));
    add_arg(argv, "-accel");
    add_arg(argv, "tcg");
    add_machine_args(argv, o);
    add_arg(argv, "-nodefaults");
    add_arg(argv, "-no-user-config");
    add_arg(argv, "-display");
    add_arg(argv, "none");
    add_arg(argv, "-m");
    add_arg(argv, "%s", o->mem ? o->mem : vm->arch == RIG_ARCH_X86_64 ? "256M" : "512M");
    add_arg(argv, "-smp");
    add_arg(argv, "%s", o->smp ? o->smp : "1");
    add_arg(argv, "-qmp");
    add_arg(argv, "unix:%s,server=on,wait=off", vm->qmp_path);
    add_arg(argv, "-qmp");
    add_arg(argv, "unix:%s,server=on,wait=off", vm->spare_path);
    for (guint i = 0; i < vm->extra_paths->len; i++) {
        add_arg(argv, "-qmp");
        add_arg(argv, "unix:%s,server=on,wait=off", (char *)vm->extra_paths->pdata[i]);
    }
    add_arg(argv, "-serial");
    add_arg(argv, "file:%s", vm->console_path);
    if (!o->guest || o->paused)
        add_arg(argv, "-S");
    if (o->guest) {
        g_autofree char *gdir = rig_guest_dir(vm->arch);

        if (!rig_guest_available(vm->arch, error))
            return FALSE;
        add_arg(argv, "-kernel");
        g_ptr_array_add(argv, g_build_filename(gdir, rig_guests[vm->arch].kernel, NULL));
        add_arg(argv, "-initrd");
        g_ptr_array_add(argv, g_build_filename(gdir, "initrd.img", NULL));
        /* no_timer_check: a TCG guest on a loaded host can fail the kernel's
         * IO-APIC timer check and panic at boot ("IO-APIC + timer doesn't
         * work"); the check proves nothing about hotplug. */
        add_arg(argv, "-append");
        add_arg(argv, "console=%s quiet%s%s%s", rig_guests[vm->arch].console,
                vm->arch == RIG_ARCH_X86_64 ? " no_timer_check" : "",
                o->guest_cmdline ? " " : "", o->guest_cmdline ? o->guest_cmdline : "");
    }
    for (const char *const *a = o->extra_args; a && *a; a++)
        add_arg(argv, "%s", *a);
    g_ptr_array_add(argv, NULL);

    /* For whoever debugs a failure: the exact command, one word per line. */
    cmdline = g_strjoinv("\n", (char **)argv->pdata);
    cmdline_path = g_build_filename(vm->dir, "cmdline", NULL);
    g_file_set_contents(cmdline_path, cmdline, -1, NULL);

    devnull = g_open("/dev/null", O_RDONLY | O_CLOEXEC, 0);
    logfd = g_open(vm->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (devnull < 0 || logfd < 0) {
        int err = errno;

        g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED, "cannot open %s: %s",
                    devnull < 0 ? "/dev/null" : vm->log_path, g_strerror(err));
        if (devnull >= 0)
            close(devnull);
        if (logfd >= 0)
            close(logfd);
        return FALSE;
    }
    ok = g_spawn_async_with_fds(vm->dir, (char **)argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                rig_child_setup, GINT_TO_POINTER((int)getpid()), &vm->pid, devnull,
                                logfd, logfd, error);
    close(devnull);
    close(logfd);
    if (!ok) {
        g_prefix_error(error, "cannot start %s: ", qemu);
        return FALSE;
    }
    vm->reaped = FALSE;
    return TRUE;
}

static gboolean
wait_qmp_ready(RigVm *vm, GError **error)
{
    gint64 deadline = g_get_monotonic_time() + READY_TIMEOUT_US;
    gboolean qmp_ok = FALSE, spare_ok = FALSE;

    for (;;) {
        if (!rig_vm_is_running(vm)) {
            g_autofree char *how = describe_status(vm);
            g_autofree char *tail = file_tail(vm->log_path);

            g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                        "QEMU %s before its QMP sockets were ready; QEMU output:\n%s", how, tail);
            return FALSE;
        }
        if (!qmp_ok)
            qmp_ok = probe_qmp(vm->qmp_path, deadline);
        if (qmp_ok && !spare_ok)
            spare_ok = probe_qmp(vm->spare_path, deadline);
        if (qmp_ok && spare_ok)
            return TRUE;
        if (g_get_monotonic_time() >= deadline) {
            g_autofree char *tail = file_tail(vm->log_path);

            g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                        "QEMU's QMP sockets did not answer within %d s (%s: %s, %s: %s); "
                        "QEMU output:\n%s",
                        (int)(READY_TIMEOUT_US / G_USEC_PER_SEC), vm->qmp_path,
                        qmp_ok ? "ok" : "no greeting", vm->spare_path,
                        spare_ok ? "ok" : "no greeting", tail);
            return FALSE;
        }
        g_usleep(POLL_INTERVAL_US);
    }
}

static void
rig_event_free(gpointer p)
{
    RigEvent *e = p;

    g_free(e->name);
    json_object_unref(e->data);
    g_free(e);
}

RigVm *
rig_vm_new(const RigVmOptions *opts, GError **error)
{
    static const RigVmOptions defaults;
    g_autoptr(RigVm) vm = NULL;
    struct sockaddr_un sa;
    GError *local = NULL;
    char *dir;

    g_return_val_if_fail(error == NULL || *error == NULL, NULL);
    if (!opts)
        opts = &defaults;
    if (opts->n_root_ports > MAX_ROOT_PORTS) {
        g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED, "at most %d root ports", MAX_ROOT_PORTS);
        return NULL;
    }
    dir = g_dir_make_tmp("rig-vm-XXXXXX", &local);
    if (!dir) {
        g_propagate_prefixed_error(error, local, "cannot create the QEMU temp dir: ");
        return NULL;
    }
    vm = g_new0(RigVm, 1);
    vm->opts = *opts;
    vm->arch = rig_machine_arch(opts->machine);
    vm->reaped = TRUE; /* nothing to kill yet */
    vm->dir = dir;
    vm->qmp_path = g_build_filename(dir, "qmp.sock", NULL);
    vm->spare_path = g_build_filename(dir, "qmp-spare.sock", NULL);
    vm->extra_paths = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 1; i <= opts->n_extra_qmp; i++)
        g_ptr_array_add(vm->extra_paths, g_strdup_printf("%s/qmp-extra%u.sock", dir, i));
    vm->console_path = g_build_filename(dir, "console.log", NULL);
    vm->log_path = g_build_filename(dir, "qemu.log", NULL);
    vm->base = event_base_new();
    vm->events = g_ptr_array_new_with_free_func(rig_event_free);

    if (strlen(vm->spare_path) + 8 >= sizeof(sa.sun_path)) {
        g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                    "temp dir %s is too long for a unix socket path; set TMPDIR to "
                    "something short such as /tmp",
                    dir);
        return NULL;
    }
    if (strchr(dir, ',')) {
        g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                    "temp dir %s contains a comma, which QEMU options cannot take; "
                    "set TMPDIR to something plain such as /tmp",
                    dir);
        return NULL;
    }
    if (!spawn_qemu(vm, error) || !wait_qmp_ready(vm, error))
        return NULL;
    if (opts->guest && !opts->paused &&
        !rig_vm_wait_console_full(vm, RIG_GUEST_READY, RIG_BOOT_MS, error)) {
        g_prefix_error(error, "the %s guest did not boot: ", rig_arch_name(vm->arch));
        return NULL;
    }
    return g_steal_pointer(&vm);
}

RigVm *
rig_vm_start(const RigVmOptions *opts)
{
    g_autoptr(GError) error = NULL;
    gint64 t0 = g_get_monotonic_time();
    RigVm *vm = rig_vm_new(opts, &error);

    if (!vm)
        fail_msg("cannot start QEMU: %s", error->message);
    if (opts && opts->guest && !opts->paused)
        print_message("# %s guest booted in %.1f s\n", rig_arch_name(vm->arch),
                      (g_get_monotonic_time() - t0) / 1e6);
    return vm;
}

void
rig_vm_restart(RigVm *vm)
{
    g_autoptr(GError) error = NULL;

    g_return_if_fail(vm != NULL);
    if (vm->spare) {
        qmp_conn_close(vm->spare);
        qmp_conn_unref(vm->spare);
        vm->spare = NULL;
    }
    if (vm->caps) {
        qmp_caps_free(vm->caps);
        vm->caps = NULL;
    }
    rig_vm_kill(vm);
    if (!spawn_qemu(vm, &error) || !wait_qmp_ready(vm, &error))
        fail_msg("cannot restart QEMU: %s", error->message);
}

void
rig_vm_cont_boot(RigVm *vm)
{
    g_autoptr(GError) error = NULL;

    rig_vm_qmp_ok(vm, "cont", NULL);
    if (!rig_vm_wait_console_full(vm, RIG_GUEST_READY, RIG_BOOT_MS, &error))
        fail_msg("the %s guest did not boot: %s", rig_arch_name(vm->arch), error->message);
}

RigArch
rig_vm_arch(RigVm *vm)
{
    return vm->arch;
}

const char *
rig_vm_qmp_path(RigVm *vm)
{
    g_return_val_if_fail(vm != NULL, NULL);
    return vm->qmp_path;
}

const char *
rig_vm_extra_qmp_path(RigVm *vm, guint n)
{
    g_return_val_if_fail(vm != NULL && n >= 1 && n <= vm->extra_paths->len, NULL);
    return vm->extra_paths->pdata[n - 1];
}

const char *
rig_vm_dir(RigVm *vm)
{
    g_return_val_if_fail(vm != NULL, NULL);
    return vm->dir;
}

GPid
rig_vm_pid(RigVm *vm)
{
    g_return_val_if_fail(vm != NULL, 0);
    return vm->pid;
}

gboolean
rig_vm_is_running(RigVm *vm)
{
    g_return_val_if_fail(vm != NULL, FALSE);
    while (!vm->reaped) {
        int status = 0;
        pid_t r = waitpid(vm->pid, &status, WNOHANG);

        if (r == 0)
            return TRUE;
        if (r == vm->pid) {
            vm->reaped = TRUE;
            vm->status = status;
        } else if (r < 0 && errno != EINTR) {
            vm->reaped = TRUE; /* reaped by someone else; exit status unknown */
            vm->status = 0;
        }
    }
    return FALSE;
}

void
rig_vm_kill(RigVm *vm)
{
    g_return_if_fail(vm != NULL);
    if (!rig_vm_is_running(vm))
        return;
    kill(vm->pid, SIGKILL);
    for (;;) {
        int status = 0;
        pid_t r = waitpid(vm->pid, &status, 0);

        if (r == vm->pid)
            vm->status = status;
        if (r >= 0 || errno != EINTR)
            break;
    }
    vm->reaped = TRUE;
    g_spawn_close_pid(vm->pid);
}

void
rig_vm_free(RigVm *vm)
{
    if (!vm)
        return;
    if (vm->spare) {
        qmp_conn_close(vm->spare);
        qmp_conn_unref(vm->spare);
    }
    rig_vm_kill(vm);
    if (vm->dir) {
        if (rig_keep())
            g_printerr("rig: keeping %s (HOTPLUG_TEST_KEEP is set)\n", vm->dir);
        else
            rig_rm_tree(vm->dir);
    }
    if (vm->caps)
        qmp_caps_free(vm->caps);
    if (vm->events)
        g_ptr_array_unref(vm->events);
    if (vm->extra_paths)
        g_ptr_array_unref(vm->extra_paths);
    if (vm->base)
        event_base_free(vm->base);
    g_free(vm->dir);
    g_free(vm->qmp_path);
    g_free(vm->spare_path);
    g_free(vm->console_path);
    g_free(vm->log_path);
    g_free(vm);
}

/* ---- the console --------------------------------------------------------------------- */

char *
rig_vm_console(RigVm *vm)
{
    char *text = NULL;
    gsize len = 0;

    g_return_val_if_fail(vm != NULL, NULL);
    if (!g_file_get_contents(vm->console_path, &text, &len, NULL))
        return g_strdup("");
    /* a stray NUL on the serial line must not hide what follows it */
    for (gsize i = 0; i < len; i++)
        if (text[i] == '\0')
            text[i] = ' ';
    return text;
}

gsize
rig_vm_console_count(RigVm *vm, const char *needle)
{
    g_autofree char *text = rig_vm_console(vm);

    return rig_count(text, needle);
}

static gboolean
wait_console_count(RigVm *vm, const char *needle, gsize count, guint timeout_ms, GError **error)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        /* check liveness first: output written just before exit still counts */
        gboolean running = rig_vm_is_running(vm);
        g_autofree char *text = rig_vm_console(vm);

        if (rig_count(text, needle) >= count)
            return TRUE;
        if (!running) {
            g_autofree char *how = describe_status(vm);
            g_autofree char *ctail = file_tail(vm->console_path);
            g_autofree char *qtail = file_tail(vm->log_path);

            g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                        "QEMU %s before the console showed \"%s\"; console:\n%s\nQEMU output:\n%s",
                        how, needle, ctail, qtail);
            return FALSE;
        }
        if (g_get_monotonic_time() >= deadline) {
            g_autofree char *ctail = file_tail(vm->console_path);

            g_set_error(error, RIG_ERROR, RIG_ERROR_FAILED,
                        "the console did not show \"%s\" within %u ms; console:\n%s", needle,
                        timeout_ms, ctail);
            return FALSE;
        }
        g_usleep(POLL_INTERVAL_US);
    }
}

gboolean
rig_vm_wait_console_full(RigVm *vm, const char *needle, guint timeout_ms, GError **error)
{
    g_return_val_if_fail(vm != NULL && needle != NULL, FALSE);
    return wait_console_count(vm, needle, 1, timeout_ms, error);
}

void
rig_vm_wait_console(RigVm *vm, const char *needle, guint timeout_ms)
{
    g_autoptr(GError) error = NULL;

    if (!rig_vm_wait_console_full(vm, needle, timeout_ms, &error))
        fail_msg("%s", error->message);
}

gboolean
rig_vm_wait_console_count(RigVm *vm, const char *needle, gsize count, guint timeout_ms)
{
    return wait_console_count(vm, needle, count, timeout_ms, NULL);
}

/* ---- the spare QMP connection -------------------------------------------------------- */

static void
rig_spare_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    RigVm *vm = opaque;
    RigEvent *e = g_new0(RigEvent, 1);

    e->name = g_strdup(ev->name);
    e->data = json_object_ref(ev->data);
    g_ptr_array_add(vm->events, e);
}

struct event_base *
rig_vm_base(RigVm *vm)
{
    return vm->base;
}

QmpConn *
rig_vm_spare(RigVm *vm)
{
    static const QmpConnListener l = {.event = rig_spare_event_cb};
    g_autoptr(GError) error = NULL;

    if (vm->spare)
        return vm->spare;
    vm->spare = qmp_conn_new(vm->base, vm->spare_path, NULL);
    qmp_conn_add_listener(vm->spare, &l, vm);
    if (!qmp_conn_open(vm->spare, &error) || !qmp_conn_wait_ready(vm->spare, RIG_REPLY_MS, &error))
        fail_msg("the spare QMP socket %s: %s", vm->spare_path, error->message);
    return vm->spare;
}

static gboolean
rig_vm_qmp_full(RigVm *vm, const char *cmd, const char *args_json, JsonNode **ret, GError **error)
{
    JsonNode *args = NULL;

    if (args_json) {
        args = json_from_string(args_json, NULL);
        if (!args)
            fail_msg("bad JSON for %s: %s", cmd, args_json);
    }
    return qmp_conn_execute_sync(rig_vm_spare(vm), cmd, args, ret, RIG_REPLY_MS, error);
}

JsonNode *
rig_vm_qmp(RigVm *vm, const char *cmd, const char *args_json)
{
    g_autoptr(GError) error = NULL;
    JsonNode *ret = NULL;

    if (!rig_vm_qmp_full(vm, cmd, args_json, &ret, &error))
        fail_msg("%s %s: %s", cmd, args_json ? args_json : "", error->message);
    return ret;
}

void
rig_vm_qmp_ok(RigVm *vm, const char *cmd, const char *args_json)
{
    JsonNode *ret = rig_vm_qmp(vm, cmd, args_json);

    if (ret)
        json_node_unref(ret);
}

GError *
rig_vm_qmp_error(RigVm *vm, const char *cmd, const char *args_json)
{
    GError *error = NULL;
    JsonNode *ret = NULL;

    if (rig_vm_qmp_full(vm, cmd, args_json, &ret, &error) && ret)
        json_node_unref(ret);
    return error;
}

gboolean
rig_vm_qom_has(RigVm *vm, const char *path, const char *name)
{
    g_autofree char *args = g_strdup_printf("{\"path\": \"%s\"}", path);
    g_autoptr(JsonNode) ret = rig_vm_qmp(vm, "qom-list", args);
    JsonArray *a = qmp_json_node_array(ret);

    for (guint i = 0; a && i < json_array_get_length(a); i++)
        if (!g_strcmp0(qmp_json_get_string(json_array_get_object_element(a, i), "name"), name))
            return TRUE;
    return FALSE;
}

gboolean
rig_vm_peripheral_has(RigVm *vm, const char *id)
{
    return rig_vm_qom_has(vm, "/machine/peripheral", id);
}

void
rig_vm_version(RigVm *vm, int *major, int *minor, int *micro)
{
    g_autoptr(JsonNode) ret = rig_vm_qmp(vm, "query-version", NULL);
    JsonObject *q = qmp_json_get_object(qmp_json_node_object(ret), "qemu");

    if (!q)
        fail_msg("query-version without a qemu member");
    if (major)
        *major = (int)qmp_json_get_int_default(q, "major", -1);
    if (minor)
        *minor = (int)qmp_json_get_int_default(q, "minor", -1);
    if (micro)
        *micro = (int)qmp_json_get_int_default(q, "micro", -1);
}

char *
rig_vm_version_prefix(RigVm *vm)
{
    int major, minor;

    rig_vm_version(vm, &major, &minor, NULL);
    return g_strdup_printf("%d.%d.", major, minor);
}

gboolean
rig_vm_schema_has(RigVm *vm, const char *meta_type, const char *name)
{
    g_autoptr(JsonNode) ret = rig_vm_qmp(vm, "query-qmp-schema", NULL);
    JsonArray *a = qmp_json_node_array(ret);

    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *e = json_array_get_object_element(a, i);

        if (!g_strcmp0(qmp_json_get_string(e, "name"), name) &&
            !g_strcmp0(qmp_json_get_string(e, "meta-type"), meta_type))
            return TRUE;
    }
    return FALSE;
}

typedef struct {
    gboolean done;
    QmpCaps *caps;
    GError *error;
} RigProbe;

static void
rig_probe_cb(QmpConn *conn, QmpCaps *caps, const GError *error, gpointer opaque)
{
    RigProbe *p = opaque;

    p->done = TRUE;
    p->caps = caps;
    if (error)
        p->error = g_error_copy(error);
}

gboolean
rig_vm_has_cap(RigVm *vm, const char *cap)
{
    const char *const *list;

    if (!vm->caps) {
        g_autoptr(GError) error = NULL;
        RigProbe p = {0};

        if (!qmp_caps_probe(rig_vm_spare(vm), rig_probe_cb, &p, &error))
            fail_msg("capability probe: %s", error->message);
        if (!qmp_loop_run_until(vm->base, &p.done, RIG_REPLY_MS))
            fail_msg("capability probe: no answer within %d ms", RIG_REPLY_MS);
        if (p.error || !p.caps)
            fail_msg("capability probe: %s", p.error ? p.error->message : "no result");
        vm->caps = p.caps;
    }
    list = qmp_caps_list(vm->caps);
    return g_strv_contains(list, cap);
}

char *
rig_vm_cpu_type(RigVm *vm)
{
    g_autoptr(JsonNode) ret = rig_vm_qmp(vm, "query-hotpluggable-cpus", NULL);
    JsonArray *a = qmp_json_node_array(ret);

    if (!a || json_array_get_length(a) == 0)
        fail_msg("query-hotpluggable-cpus lists no CPU");
    return g_strdup(qmp_json_get_string(json_array_get_object_element(a, 0), "type"));
}

GPtrArray *
rig_vm_events(RigVm *vm)
{
    rig_vm_spare(vm);
    return vm->events;
}

void
rig_vm_run(RigVm *vm, guint ms)
{
    gboolean never = FALSE;

    qmp_loop_run_until(vm->base, &never, ms ? ms : 1);
}

static int
rig_find_event(RigVm *vm, guint from, const char *name, const char *key, const char *value)
{
    for (guint i = from; i < vm->events->len; i++) {
        RigEvent *e = vm->events->pdata[i];

        if (g_str_equal(e->name, name) &&
            (!key || !g_strcmp0(qmp_json_get_string(e->data, key), value)))
            return (int)i;
    }
    return -1;
}

int
rig_vm_wait_event(RigVm *vm, guint from, const char *name, const char *key, const char *value,
                  guint timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int i;

    rig_vm_spare(vm);
    while ((i = rig_find_event(vm, from, name, key, value)) < 0 && g_get_monotonic_time() < end)
        rig_vm_run(vm, 20);
    return i;
}

/* ---- hotplugctl ---------------------------------------------------------------------- */

struct RigCtlRun {
    GPid pid;
    char *dir;
    char *out_path;
    char *cmd; /* for messages */
};

void
rig_ctl_free(RigCtl *r)
{
    if (!r)
        return;
    g_free(r->out);
    g_free(r->err);
    if (r->json)
        g_ptr_array_unref(r->json);
    g_free(r);
}

RigCtlRun *
rig_ctl_startv(const char *const *args)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    RigCtlRun *run = g_new0(RigCtlRun, 1);
    g_autofree char *out = NULL, *err = NULL;
    int ofd, efd;
    gboolean ok;

    g_ptr_array_add(argv, (gpointer)HOTPLUGCTL_PATH);
    for (; *args; args++)
        g_ptr_array_add(argv, (gpointer)*args);
    g_ptr_array_add(argv, NULL);
    run->cmd = g_strjoinv(" ", (char **)argv->pdata + 1);
    run->dir = rig_make_tmp("rig-ctl-XXXXXX");
    out = g_build_filename(run->dir, "out", NULL);
    err = g_build_filename(run->dir, "err", NULL);
    run->out_path = g_strdup(out);
    ofd = g_open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    efd = g_open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (ofd < 0 || efd < 0)
        fail_msg("cannot create %s: %s", out, g_strerror(errno));
    ok = g_spawn_async_with_fds(NULL, (char **)argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                rig_child_setup, GINT_TO_POINTER((int)getpid()), &run->pid, -1, ofd,
                                efd, &error);
    close(ofd);
    close(efd);
    if (!ok)
        fail_msg("cannot run %s: %s", HOTPLUGCTL_PATH, error->message);
    return run;
}

static RigCtlRun *
rig_ctl_start_va(const char *prefix0, const char *prefix1, const char *arg, va_list ap)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();

    if (prefix0)
        g_ptr_array_add(argv, (gpointer)prefix0);
    if (prefix1)
        g_ptr_array_add(argv, (gpointer)prefix1);
    for (; arg; arg = va_arg(ap, const char *))
        g_ptr_array_add(argv, (gpointer)arg);
    g_ptr_array_add(argv, NULL);
    return rig_ctl_startv((const char *const *)argv->pdata);
}

RigCtlRun *
rig_ctl_start(const char *arg, ...)
{
    RigCtlRun *run;
    va_list ap;

    va_start(ap, arg);
    run = rig_ctl_start_va(NULL, NULL, arg, ap);
    va_end(ap);
    return run;
}

GPid
rig_ctl_run_pid(RigCtlRun *run)
{
    return run->pid;
}

const char *
rig_ctl_run_out_path(RigCtlRun *run)
{
    return run->out_path;
}

void
rig_ctl_run_free(RigCtlRun *run)
{
    if (!run)
        return;
    if (run->pid > 0) {
        int status;

        kill(run->pid, SIGKILL);
        waitpid(run->pid, &status, 0);
    }
    rig_rm_tree(run->dir);
    g_free(run->dir);
    g_free(run->out_path);
    g_free(run->cmd);
    g_free(run);
}

RigCtl *
rig_ctl_wait(RigCtlRun *run, guint timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    g_autofree char *out = g_build_filename(run->dir, "out", NULL);
    g_autofree char *err = g_build_filename(run->dir, "err", NULL);
    g_autofree char *cmd = g_strdup(run->cmd);
    RigCtl *r = g_new0(RigCtl, 1);
    int status = -1;
    pid_t got;

    while ((got = waitpid(run->pid, &status, WNOHANG)) == 0) {
        if (g_get_monotonic_time() > end) {
            rig_ctl_run_free(run);
            rig_ctl_free(r);
            fail_msg("hotplugctl %s did not end within %u ms", cmd, timeout_ms);
        }
        g_usleep(2000);
    }
    run->pid = 0;
    if (!g_file_get_contents(out, &r->out, NULL, NULL))
        r->out = g_strdup("");
    if (!g_file_get_contents(err, &r->err, NULL, NULL))
        r->err = g_strdup("");
    rig_ctl_run_free(run);
    if (g_getenv("HOTPLUG_TEST_VERBOSE"))
        fprintf(stderr, "hotplugctl %s: status 0x%x\n%s%s", cmd, status, r->out, r->err);
    if (got < 0 || !WIFEXITED(status)) {
        g_autofree char *e = g_strdup(r->err);

        rig_ctl_free(r);
        fail_msg("hotplugctl %s did not exit normally (status 0x%x): %s", cmd, status, e);
    }
    r->status = WEXITSTATUS(status);
    r->json = g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
    {
        g_auto(GStrv) lines = g_strsplit(r->out, "\n", -1);

        for (guint i = 0; lines[i]; i++) {
            JsonNode *n;

            if (!*lines[i] || (lines[i][0] != '{' && lines[i][0] != '['))
                continue;
            n = json_from_string(lines[i], NULL);
            if (n)
                g_ptr_array_add(r->json, n);
        }
    }
    return r;
}

RigCtl *
rig_ctlv(const char *const *argv)
{
    return rig_ctl_wait(rig_ctl_startv(argv), 10 * 60 * 1000);
}

RigCtl *
rig_ctl(const char *arg, ...)
{
    RigCtlRun *run;
    va_list ap;

    va_start(ap, arg);
    run = rig_ctl_start_va(NULL, NULL, arg, ap);
    va_end(ap);
    return rig_ctl_wait(run, 10 * 60 * 1000);
}

JsonObject *
rig_ctl_obj(RigCtl *r, guint i)
{
    if (i >= r->json->len || !JSON_NODE_HOLDS_OBJECT((JsonNode *)r->json->pdata[i]))
        fail_msg("no JSON object at line %u of: %s%s", i, r->out, r->err);
    return json_node_get_object(r->json->pdata[i]);
}

JsonObject *
rig_ctl_result(RigCtl *r)
{
    g_autofree char *line = g_strstrip(g_strdup(r->out));

    if (strchr(line, '\n') || r->json->len != 1)
        fail_msg("not one JSON result line: %s%s", r->out, r->err);
    return rig_ctl_obj(r, 0);
}

JsonArray *
rig_ctl_array(RigCtl *r)
{
    if (r->json->len != 1 || !JSON_NODE_HOLDS_ARRAY((JsonNode *)r->json->pdata[0]))
        fail_msg("not one JSON array: %s%s", r->out, r->err);
    return json_node_get_array(r->json->pdata[0]);
}

JsonObject *
rig_ctl_result_for(RigCtl *r, const char *device)
{
    for (guint i = 0; i < r->json->len; i++) {
        JsonNode *n = r->json->pdata[i];

        if (JSON_NODE_HOLDS_OBJECT(n) &&
            !g_strcmp0(qmp_json_get_string(json_node_get_object(n), "device"), device))
            return json_node_get_object(n);
    }
    fail_msg("no result for %s in: %s", device, r->out);
    return NULL;
}

void
rig_ctl_assert_exit(RigCtl *r, int want)
{
    if (r->status != want)
        fail_msg("hotplugctl: exit %d, want %d: %s%s", r->status, want, r->out, r->err);
}

static int
rig_ctl_text_run(RigCtlRun *run, char **out, char **err)
{
    g_autoptr(RigCtl) r = rig_ctl_wait(run, 10 * 60 * 1000);

    if (out)
        *out = g_steal_pointer(&r->out);
    if (err)
        *err = g_steal_pointer(&r->err);
    return r->status;
}

int
rig_ctl_text(char **out, char **err, const char *arg, ...)
{
    RigCtlRun *run;
    va_list ap;

    va_start(ap, arg);
    run = rig_ctl_start_va(NULL, NULL, arg, ap);
    va_end(ap);
    return rig_ctl_text_run(run, out, err);
}

JsonNode *
rig_json_result(const char *out)
{
    g_autofree char *line = g_strstrip(g_strdup(out ? out : ""));
    JsonNode *n;

    if (strchr(line, '\n'))
        fail_msg("more than one line: %s", out);
    n = json_from_string(line, NULL);
    if (!n || !JSON_NODE_HOLDS_OBJECT(n))
        fail_msg("not a JSON object: %s", out);
    return n;
}

/* ---- hotplugd ------------------------------------------------------------------------ */

struct RigHotplugd {
    char *dir, *state_dir, *sock, *log, *conf;
    gboolean use_conf;
    gboolean own_dir;
    GPid pid;
    guint starts;
};

RigHotplugd *
rig_hotplugd_new(const char *dir)
{
    RigHotplugd *d = g_new0(RigHotplugd, 1);

    if (dir) {
        d->dir = g_strdup(dir);
        if (g_mkdir_with_parents(dir, 0700) != 0)
            fail_msg("mkdir %s: %s", dir, g_strerror(errno));
    } else {
        d->dir = rig_make_tmp("rig-hpd-XXXXXX");
        d->own_dir = TRUE;
    }
    d->state_dir = g_build_filename(d->dir, "state", NULL);
    d->sock = g_build_filename(d->dir, "ctl.sock", NULL);
    d->log = g_build_filename(d->dir, "hotplugd.log", NULL);
    d->conf = g_build_filename(d->dir, "hotplugd.conf", NULL);
    return d;
}

void
rig_hotplugd_set_config(RigHotplugd *d, const char *text)
{
    if (!g_file_set_contents(d->conf, text, -1, NULL))
        fail_msg("cannot write %s", d->conf);
    d->use_conf = TRUE;
}

char *
rig_hotplugd_log(RigHotplugd *d)
{
    char *text = NULL;

    if (!g_file_get_contents(d->log, &text, NULL, NULL))
        return g_strdup("(no log)");
    return text;
}

static char *
rig_hotplugd_log_tail(RigHotplugd *d)
{
    return file_tail(d->log);
}

void
rig_hotplugd_start(RigHotplugd *d)
{
    const char *with_conf[] = {HOTPLUGD_PATH, "--foreground", "--config", d->conf, "-v", NULL};
    const char *plain[] = {HOTPLUGD_PATH, "--foreground", "--state-dir", d->state_dir,
                           "--socket",    d->sock,        "-v",          NULL};
    g_autoptr(GError) error = NULL;
    gint64 end = g_get_monotonic_time() + HOTPLUGD_READY_MS * 1000;
    int fd = g_open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

    if (fd < 0)
        fail_msg("%s: %s", d->log, g_strerror(errno));
    if (d->pid)
        fail_msg("hotplugd already runs (pid %d)", (int)d->pid);
    if (!g_spawn_async_with_fds(NULL, (char **)(d->use_conf ? with_conf : plain), NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD, rig_child_setup,
                                GINT_TO_POINTER((int)getpid()), &d->pid, -1, fd, fd, &error)) {
        close(fd);
        fail_msg("cannot start %s: %s", HOTPLUGD_PATH, error->message);
    }
    close(fd);
    d->starts++;
    while (!rig_socket_accepts(d->sock)) {
        int status;

        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            g_autofree char *log = rig_hotplugd_log_tail(d);

            d->pid = 0;
            fail_msg("hotplugd exited (status 0x%x) at start:\n%s", status, log);
        }
        if (g_get_monotonic_time() > end) {
            g_autofree char *log = rig_hotplugd_log_tail(d);

            fail_msg("hotplugd did not listen on %s within %d ms:\n%s", d->sock, HOTPLUGD_READY_MS,
                     log);
        }
        g_usleep(5000);
    }
}

int
rig_hotplugd_term(RigHotplugd *d)
{
    gint64 end = g_get_monotonic_time() + HOTPLUGD_STOP_MS * 1000;
    int status = -1;

    if (!d->pid)
        fail_msg("hotplugd is not running");
    kill(d->pid, SIGTERM);
    while (waitpid(d->pid, &status, WNOHANG) != d->pid) {
        if (g_get_monotonic_time() > end) {
            rig_hotplugd_kill9(d);
            fail_msg("hotplugd did not stop within %d ms of SIGTERM", HOTPLUGD_STOP_MS);
        }
        g_usleep(5000);
    }
    d->pid = 0;
    return status;
}

void
rig_hotplugd_stop(RigHotplugd *d)
{
    int status = rig_hotplugd_term(d);

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_autofree char *log = rig_hotplugd_log_tail(d);

        fail_msg("hotplugd did not stop cleanly (status 0x%x)\nhotplugd: %s", status, log);
    }
}

void
rig_hotplugd_kill9(RigHotplugd *d)
{
    int status;

    if (!d->pid)
        return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
}

void
rig_hotplugd_free(RigHotplugd *d)
{
    if (!d)
        return;
    rig_hotplugd_kill9(d);
    if (d->own_dir) {
        if (rig_keep())
            g_printerr("rig: keeping %s (HOTPLUG_TEST_KEEP is set)\n", d->dir);
        else
            rig_rm_tree(d->dir);
    }
    g_free(d->dir);
    g_free(d->state_dir);
    g_free(d->sock);
    g_free(d->log);
    g_free(d->conf);
    g_free(d);
}

GPid
rig_hotplugd_pid(RigHotplugd *d)
{
    return d->pid;
}

guint
rig_hotplugd_starts(RigHotplugd *d)
{
    return d->starts;
}

const char *
rig_hotplugd_dir(RigHotplugd *d)
{
    return d->dir;
}

const char *
rig_hotplugd_socket(RigHotplugd *d)
{
    return d->sock;
}

const char *
rig_hotplugd_state_dir(RigHotplugd *d)
{
    return d->state_dir;
}

const char *
rig_hotplugd_config(RigHotplugd *d)
{
    return d->conf;
}

RigCtlRun *
rig_hotplugd_ctl_start(RigHotplugd *d, const char *arg, ...)
{
    RigCtlRun *run;
    va_list ap;

    va_start(ap, arg);
    run = rig_ctl_start_va("--socket", d->sock, arg, ap);
    va_end(ap);
    return run;
}

RigCtl *
rig_hotplugd_ctl(RigHotplugd *d, const char *arg, ...)
{
    RigCtlRun *run;
    va_list ap;

    va_start(ap, arg);
    run = rig_ctl_start_va("--socket", d->sock, arg, ap);
    va_end(ap);
    return rig_ctl_wait(run, 10 * 60 * 1000);
}

int
rig_hotplugd_ctl_text(RigHotplugd *d, char **out, char **err, const char *arg, ...)
{
    RigCtlRun *run;
    va_list ap;

    va_start(ap, arg);
    run = rig_ctl_start_va("--socket", d->sock, arg, ap);
    va_end(ap);
    return rig_ctl_text_run(run, out, err);
}

char *
rig_hotplugd_vm_state(RigHotplugd *d, const char *name)
{
    g_autoptr(RigCtl) r = rig_hotplugd_ctl(d, "--json", "vm", "list", NULL);
    JsonArray *a;

    if (r->status != 0 || r->json->len != 1)
        return NULL;
    a = qmp_json_node_array(r->json->pdata[0]);
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *vm = qmp_json_node_object(json_array_get_element(a, i));

        if (!g_strcmp0(qmp_json_get_string(vm, "name"), name))
            return g_strdup(qmp_json_get_string(vm, "state"));
    }
    return NULL;
}

void
rig_hotplugd_wait_vm_ready(RigHotplugd *d, const char *name)
{
    gint64 end = g_get_monotonic_time() + HOTPLUGD_READY_MS * 1000;

    for (;;) {
        g_autofree char *st = rig_hotplugd_vm_state(d, name);

        if (!g_strcmp0(st, "ready"))
            return;
        if (g_get_monotonic_time() > end) {
            g_autofree char *log = rig_hotplugd_log_tail(d);

            fail_msg("VM %s is not ready in hotplugd after %d ms (state %s)\nhotplugd: %s", name,
                     HOTPLUGD_READY_MS, st ? st : "(absent)", log);
        }
        g_usleep(20000);
    }
}

void
rig_hotplugd_add_vm(RigHotplugd *d, const char *name, const char *qmp)
{
    g_autoptr(RigCtl) r = rig_hotplugd_ctl(d, "vm", "add", name, qmp, NULL);

    rig_ctl_assert_exit(r, 0);
    rig_hotplugd_wait_vm_ready(d, name);
}
