/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Self-test of the real-QEMU test rig (tests/rig.c): a real QEMU starts as
 * described, answers on its sockets, reports its version, gets its root
 * ports (and, on virt with uefi, the ACPI GED), and dies; hotplugctl and
 * hotplugd runs come back parsed. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp-json.h"
#include "rig.h"

static gboolean
is_socket(const char *path)
{
    GStatBuf st;

    return g_lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* The pid is gone for good: reaped, so kill() says ESRCH. */
static void
assert_pid_gone(GPid pid)
{
    int r = kill(pid, 0);
    int err = errno;

    assert_int_equal(r, -1);
    assert_int_equal(err, ESRCH);
}

static int
teardown_vm(void **state)
{
    g_clear_pointer((RigVm **)state, rig_vm_free);
    return 0;
}

/* The run state, asked on the socket at path by hotplugctl vm info. */
static char *
status_via_ctl(const char *path)
{
    g_autoptr(RigCtl) r = rig_ctl("--json", "vm", "info", path, NULL);

    rig_ctl_assert_exit(r, 0);
    return g_strdup(qmp_json_get_string(rig_ctl_result(r), "status"));
}

static void
test_paused_no_guest(void **state)
{
    RigVmOptions opts = {.n_extra_qmp = 2};
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) st = NULL;
    g_autofree char *dir = NULL;
    g_autofree char *status = NULL;
    RigVm *vm;
    GPid pid;

    vm = *state = rig_vm_start(&opts);
    dir = g_strdup(rig_vm_dir(vm));
    assert_true(g_file_test(dir, G_FILE_TEST_IS_DIR));
    assert_true(g_str_has_prefix(rig_vm_qmp_path(vm), dir));
    assert_true(is_socket(rig_vm_qmp_path(vm)));
    for (guint i = 1; i <= 2; i++) {
        assert_true(g_str_has_prefix(rig_vm_extra_qmp_path(vm, i), dir));
        assert_true(is_socket(rig_vm_extra_qmp_path(vm, i)));
    }
    assert_string_not_equal(rig_vm_extra_qmp_path(vm, 1), rig_vm_extra_qmp_path(vm, 2));
    assert_int_equal(rig_vm_arch(vm), RIG_ARCH_X86_64);

    pid = rig_vm_pid(vm);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), 0);
    assert_true(rig_vm_is_running(vm));

    /* the spare socket and the others answer, and -S left the VM in prelaunch */
    st = rig_vm_qmp(vm, "query-status", NULL);
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(st), "status"), "prelaunch");
    status = status_via_ctl(rig_vm_qmp_path(vm));
    assert_string_equal(status, "prelaunch");
    g_clear_pointer(&status, g_free);
    status = status_via_ctl(rig_vm_extra_qmp_path(vm, 2));
    assert_string_equal(status, "prelaunch");

    /* no guest, so nothing ever shows up on the console */
    assert_false(rig_vm_wait_console_full(vm, RIG_GUEST_READY, 200, &error));
    assert_non_null(strstr(error->message, "did not show"));
    g_clear_error(&error);

    rig_vm_kill(vm);
    assert_false(rig_vm_is_running(vm));
    assert_pid_gone(pid);
    rig_vm_kill(vm); /* idempotent */

    /* a dead QEMU fails a console wait at once */
    assert_false(rig_vm_wait_console_full(vm, RIG_GUEST_READY, 60000, &error));
    assert_non_null(strstr(error->message, "killed by signal 9"));

    rig_vm_free(vm);
    *state = NULL;
    assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));
}

static void
test_free_kills_running(void **state)
{
    RigVm *vm = rig_vm_start(NULL);
    GPid pid = rig_vm_pid(vm);

    assert_int_equal(kill(pid, 0), 0);
    rig_vm_free(vm);
    assert_pid_gone(pid);
}

/* The version the rig reports is the binary's own (--version), and the
 * greeting agrees with it. */
static void
test_version_of_binary(void **state)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *qemu = rig_qemu_binary(RIG_ARCH_X86_64, &error);
    g_autofree char *out = NULL, *want = NULL, *prefix = NULL;
    const char *argv[] = {qemu, "--version", NULL};
    int status, major, minor, micro;
    RigVm *vm;

    assert_non_null(qemu);
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL,
                      &status, &error))
        fail_msg("%s --version: %s", qemu, error->message);
    vm = *state = rig_vm_start(NULL);
    rig_vm_version(vm, &major, &minor, &micro);
    assert_true(major >= 1 && minor >= 0 && micro >= 0);
    want = g_strdup_printf("QEMU emulator version %d.%d.%d", major, minor, micro);
    if (!strstr(out, want))
        fail_msg("query-version says %s, the binary says: %s", want, out);
    prefix = rig_vm_version_prefix(vm);
    assert_true(g_str_has_prefix(want + strlen("QEMU emulator version "), prefix));
    assert_int_equal(qmp_conn_get_greeting(rig_vm_spare(vm))->major, major);
}

/* $HOTPLUG_QEMU_BINDIR decides, at run time. */
static void
test_bindir(void **state)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *saved = g_strdup(g_getenv("HOTPLUG_QEMU_BINDIR"));
    g_autofree char *path = NULL, *img = NULL;
    RigVm *vm;

    g_setenv("HOTPLUG_QEMU_BINDIR", "/nonexistent/bin", TRUE);
    path = rig_qemu_binary(RIG_ARCH_AARCH64, NULL);
    img = rig_qemu_img(NULL);
    vm = *state = rig_vm_new(NULL, &error);
    if (saved)
        g_setenv("HOTPLUG_QEMU_BINDIR", saved, TRUE);
    else
        g_unsetenv("HOTPLUG_QEMU_BINDIR");
    assert_null(path);
    assert_null(img);
    assert_null(vm);
    assert_non_null(strstr(error->message, "QEMU not found"));
    assert_non_null(strstr(error->message, "/nonexistent/bin/qemu-system-x86_64"));
    g_clear_error(&error);

    /* the one the rig picks otherwise is the one in that dir, or $PATH's */
    path = rig_qemu_binary(RIG_ARCH_PPC64, &error);
    assert_non_null(path);
    assert_true(g_str_has_suffix(path, "/qemu-system-ppc64"));
    if (saved)
        assert_true(g_str_has_prefix(path, saved));
}

/* A guest that is not there fails, naming the script that builds it. */
static void
test_guest_missing(void **state)
{
    static const struct {
        const char *env, *script;
        RigMachine machine;
    } cases[] = {
        {"HOTPLUG_GUEST_DIR", "tests/guest/build-guest.sh", RIG_MACHINE_PC},
        {"HOTPLUG_GUEST_PPC64_DIR", "tests/guest/build-guest-ppc64.sh", RIG_MACHINE_PSERIES},
        {"HOTPLUG_GUEST_ARM64_DIR", "tests/guest/build-guest-arm64.sh", RIG_MACHINE_VIRT},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        g_autofree char *saved = g_strdup(g_getenv(cases[i].env));
        RigVmOptions opts = {.machine = cases[i].machine, .guest = TRUE};
        RigVm *vm;

        g_setenv(cases[i].env, "/nonexistent/guest", TRUE);
        vm = rig_vm_new(&opts, &error);
        if (saved)
            g_setenv(cases[i].env, saved, TRUE);
        else
            g_unsetenv(cases[i].env);
        assert_null(vm);
        if (!strstr(error->message, cases[i].script) || !strstr(error->message, "/nonexistent"))
            fail_msg("%s", error->message);
    }
}

static void
test_guest_boots(void **state)
{
    RigVmOptions opts = {
        .guest = TRUE,
        .smp = "1,maxcpus=4",
        .mem = "512M,slots=2,maxmem=2G",
        .guest_cmdline = "hp.mem=movable",
    };
    g_autofree char *console = NULL;
    RigVm *vm;

    vm = *state = rig_vm_start(&opts);
    console = rig_vm_console(vm);
    assert_non_null(strstr(console, RIG_GUEST_READY));
    assert_non_null(strstr(console, "HOTPLUG-GUEST: options cpu=1 mem=movable"));
    assert_true(rig_vm_is_running(vm));
}

static void
test_bad_option_reports_stderr(void **state)
{
    static const char *const extra[] = {"-no-such-option", NULL};
    RigVmOptions opts = {.extra_args = extra};
    g_autoptr(GError) error = NULL;

    *state = rig_vm_new(&opts, &error);
    assert_null(*state);
    if (!strstr(error->message, "-no-such-option"))
        fail_msg("QEMU's stderr is not in the error: %s", error->message);
}

static gboolean
has_acpi_ged(RigVm *vm)
{
    g_autoptr(JsonNode) list = rig_vm_qmp(vm, "qom-list", "{\"path\": \"/machine/unattached\"}");
    JsonArray *a = json_node_get_array(list);

    for (guint i = 0; i < json_array_get_length(a); i++)
        if (!g_strcmp0(qmp_json_get_string(json_array_get_object_element(a, i), "type"),
                       "child<acpi-ged>"))
            return TRUE;
    return FALSE;
}

/* uefi: virt with acpi=on and the AAVMF firmware has the ACPI GED, virt
 * without it has none; uefi on another machine is refused. */
static void
test_uefi(void **state)
{
    RigVmOptions pc = {.machine = RIG_MACHINE_PC, .uefi = TRUE};
    RigVmOptions plain = {.machine = RIG_MACHINE_VIRT};
    RigVmOptions uefi = {.machine = RIG_MACHINE_VIRT, .uefi = TRUE};
    g_autoptr(GError) error = NULL;
    g_autofree char *cmdline_path = NULL;
    g_autofree char *cmdline = NULL;
    RigVm *vm;

    assert_null(rig_vm_new(&pc, &error));
    if (!strstr(error->message, "virt"))
        fail_msg("%s", error->message);

    vm = rig_vm_start(&plain);
    assert_false(has_acpi_ged(vm));
    rig_vm_free(vm);

    vm = *state = rig_vm_start(&uefi);
    assert_true(has_acpi_ged(vm));
    cmdline_path = g_build_filename(rig_vm_dir(vm), "cmdline", NULL);
    assert_true(g_file_get_contents(cmdline_path, &cmdline, NULL, NULL));
    assert_non_null(strstr(cmdline, "\nvirt,acpi=on\n"));
    assert_non_null(strstr(cmdline, "\n-bios\n" RIG_AAVMF "\n"));
}

/* q35 with 3 root ports: rp1..rp3 at 00:10.0, 00:11.0, 00:12.0, chassis 1..3,
 * and the props given for each. */
static void
test_root_ports(void **state)
{
    RigVmOptions opts = {
        .machine = RIG_MACHINE_Q35_NATIVE, .n_root_ports = 3, .root_port_props = "slot=7"};
    g_autoptr(JsonNode) pci = NULL;
    JsonArray *devs;
    guint found = 0;
    RigVm *vm;

    vm = *state = rig_vm_start(&opts);
    pci = rig_vm_qmp(vm, "query-pci", NULL);
    devs =
        qmp_json_get_array(json_array_get_object_element(json_node_get_array(pci), 0), "devices");
    for (guint i = 0; devs && i < json_array_get_length(devs); i++) {
        JsonObject *d = json_array_get_object_element(devs, i);
        const char *id = qmp_json_get_string(d, "qdev_id");

        for (guint k = 1; k <= 3; k++) {
            g_autofree char *want = g_strdup_printf("rp%u", k);

            if (!g_strcmp0(id, want)) {
                assert_int_equal(qmp_json_get_int_default(d, "slot", -1), 0xf + k);
                assert_int_equal(qmp_json_get_int_default(d, "function", -1), 0);
                found++;
            }
        }
    }
    assert_int_equal(found, 3);
    {
        g_autoptr(JsonNode) chassis = rig_vm_qmp(
            vm, "qom-get", "{\"path\": \"/machine/peripheral/rp3\", \"property\": \"chassis\"}");
        g_autoptr(JsonNode) slot = rig_vm_qmp(
            vm, "qom-get", "{\"path\": \"/machine/peripheral/rp2\", \"property\": \"slot\"}");
        assert_int_equal(json_node_get_int(chassis), 3);
        assert_int_equal(json_node_get_int(slot), 7);
    }
    /* no guest: an unplug from a root port never completes; a plug does */
    rig_vm_qmp_ok(vm, "device_add",
                  "{\"driver\": \"virtio-net-pci\", \"id\": \"n1\", \"bus\": \"rp2\"}");
    assert_true(rig_vm_peripheral_has(vm, "n1"));
}

/* hotplugctl sync and async, and events on the spare socket. */
static void
test_ctl_and_events(void **state)
{
    static const char *const xhci[] = {"-device", "qemu-xhci,id=xhci", NULL};
    RigVmOptions opts = {.extra_args = xhci};
    g_autoptr(RigCtl) add = NULL;
    g_autoptr(RigCtl) del = NULL;
    g_autoptr(RigCtl) bad = NULL;
    RigCtlRun *run;
    JsonObject *o;
    RigVm *vm;
    int i;

    vm = *state = rig_vm_start(&opts);
    rig_vm_spare(vm); /* events from now on */
    add = rig_ctl("--json", "device", "add", rig_vm_qmp_path(vm), "usb-kbd", "kbd0", "bus=xhci.0",
                  NULL);
    rig_ctl_assert_exit(add, 0);
    o = rig_ctl_result(add);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_true(rig_vm_peripheral_has(vm, "kbd0"));

    run = rig_ctl_start("--json", "device", "del", rig_vm_qmp_path(vm), "kbd0", "--timeout", "10",
                        NULL);
    assert_true(rig_ctl_run_pid(run) > 0);
    del = rig_ctl_wait(run, 30000);
    rig_ctl_assert_exit(del, 0);
    assert_string_equal(qmp_json_get_string(rig_ctl_result_for(del, "kbd0"), "outcome"), "deleted");
    i = rig_vm_wait_event(vm, 0, "DEVICE_DELETED", "device", "kbd0", 5000);
    assert_true(i >= 0);
    assert_string_equal(
        qmp_json_get_string(((RigEvent *)rig_vm_events(vm)->pdata[i])->data, "path"),
        "/machine/peripheral/kbd0");
    assert_int_equal(rig_vm_wait_event(vm, i + 1, "DEVICE_DELETED", "device", "kbd0", 100), -1);

    bad = rig_ctl("device", "del", rig_vm_qmp_path(vm), "nosuch", NULL);
    rig_ctl_assert_exit(bad, 3);
    assert_int_equal(bad->json->len, 0);
    assert_non_null(strstr(bad->out, "DeviceNotFound"));
}

/* a hotplugd of the test's own: started, a VM added, stopped cleanly */
static void
test_hotplugd(void **state)
{
    RigVmOptions opts = {.n_extra_qmp = 1};
    g_autoptr(RigHotplugd) d = rig_hotplugd_new(NULL);
    g_autoptr(RigCtl) list = NULL;
    g_autofree char *log = NULL;
    JsonArray *a;
    RigVm *vm;
    GPid pid;

    vm = *state = rig_vm_start(&opts);
    rig_hotplugd_start(d);
    pid = rig_hotplugd_pid(d);
    assert_true(pid > 0);
    assert_true(rig_socket_accepts(rig_hotplugd_socket(d)));
    rig_hotplugd_add_vm(d, "vm1", rig_vm_extra_qmp_path(vm, 1));
    list = rig_hotplugd_ctl(d, "--json", "vm", "list", NULL);
    rig_ctl_assert_exit(list, 0);
    a = rig_ctl_array(list);
    assert_int_equal(json_array_get_length(a), 1);
    assert_string_equal(qmp_json_get_string(json_array_get_object_element(a, 0), "state"), "ready");
    rig_hotplugd_stop(d);
    assert_int_equal(rig_hotplugd_pid(d), 0);
    assert_pid_gone(pid);
    log = rig_hotplugd_log(d);
    assert_true(strlen(log) > 0);
    assert_int_equal(rig_hotplugd_starts(d), 1);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_teardown(fn, teardown_vm)
    const struct CMUnitTest tests[] = {
        T(test_paused_no_guest),
        T(test_free_kills_running),
        T(test_version_of_binary),
        T(test_bindir),
        T(test_guest_missing),
        T(test_guest_boots),
        T(test_bad_option_reports_stderr),
        T(test_root_ports),
        T(test_uefi),
        T(test_ctl_and_events),
        T(test_hotplugd),
    };
#undef T

    if (g_getenv("HOTPLUG_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("HOTPLUG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
