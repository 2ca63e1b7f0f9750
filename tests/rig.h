/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The real-QEMU test rig: everything a test needs to run the product against
 * a real QEMU, in one place, so that each tests/test-*-qemu.c holds only its
 * cases (the model is libvirt's qemumonitortestutils.c).
 *
 * A RigVmOptions describes the VM: the machine (which implies the arch), the
 * number of pcie-root-ports, a guest or none, the guest's kernel command-line
 * knobs, -smp, -m and extra arguments.  rig_vm_start() runs it and, with a
 * guest, waits for HOTPLUG-GUEST-READY on its console.
 *
 * The QEMU binary is chosen when the test runs: $HOTPLUG_QEMU_BINDIR/
 * qemu-system-ARCH when HOTPLUG_QEMU_BINDIR is set, else qemu-system-ARCH
 * from $PATH (qemu-img alike).  rig_vm_version() says which QEMU that is
 * (query-version): tests compare against it, never against a fixed string.
 *
 * Every QEMU runs with -accel tcg -nodefaults -display none in its own temp
 * dir (rig_vm_dir(), "rig-vm-XXXXXX" under $TMPDIR), which holds:
 *   qmp.sock          QMP for the code under test        rig_vm_qmp_path()
 *   qmp-spare.sock    QMP for the test's own checks      rig_vm_spare()
 *   qmp-extraN.sock   N = 1..n_extra_qmp, one client each rig_vm_extra_qmp_path()
 *   console.log       the guest console (ttyS0 on x86, hvc0 on pseries,
 *                     ttyAMA0 on virt)
 *   qemu.log          QEMU's stdout and stderr;  cmdline: its argv
 * The dir is removed by rig_vm_free() unless $HOTPLUG_TEST_KEEP is set.  The
 * QEMU child gets PR_SET_PDEATHSIG(SIGKILL): it dies with the thread that
 * started it, so start it from the test's main thread.  rig_vm_free() kills
 * it by pid and reaps it, whatever happened in the test.
 *
 * Root ports: with n_root_ports = N on q35 or virt, the VM has
 *   -device pcie-root-port,id=rpK,chassis=K,bus=pcie.0,addr=0x(0f+K)[,root_port_props]
 * for K = 1..N, i.e. rp1 at 00:10.0, rp2 at 00:11.0 ... (at most 15, up to
 * 00:1e.0; q35's 00:1f is the ICH9).  A device plugged with bus=rpK sits at
 * 0000:0K:00.0 in a guest that numbers the buses in that order (both guests
 * here do).
 *
 * UEFI (virt only): with uefi = TRUE the VM is -machine virt,acpi=on with
 *   -bios RIG_AAVMF (Debian's qemu-efi-aarch64; the path is read by QEMU, so
 *   a QEMU in a chroot needs it there too: scripts/qemu10.sh installs it).
 *   The firmware loads -kernel/-initrd through fw_cfg and hands the guest
 *   ACPI tables, which is what brings virt's ACPI GED and with it memory
 *   hotplug (booted with -kernel alone, virt has no GED).  The firmware
 *   adds a few seconds to the boot.  A missing firmware fails the test with
 *   a message naming the package; it is never a skip.
 *
 * Guests: x86 $HOTPLUG_GUEST_DIR (default ~/.cache/qmp-hotplug/guest:
 * vmlinuz, initrd.img), ppc64 $HOTPLUG_GUEST_PPC64_DIR (guest-ppc64: vmlinux,
 * initrd.img), aarch64 $HOTPLUG_GUEST_ARM64_DIR (guest-arm64: vmlinuz,
 * initrd.img).  A missing guest fails the test with a message naming the
 * script that builds it; it is never a skip.
 *
 * Functions without a GError fail the running cmocka test (fail_msg) when
 * something goes wrong; use them from tests and fixtures only.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp-conn.h"

G_BEGIN_DECLS

#define RIG_BOOT_MS 240000 /* a TCG guest boot on a busy machine, with room */
#define RIG_REPLY_MS 20000
#define RIG_GUEST_READY "HOTPLUG-GUEST-READY"
#define RIG_AAVMF "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd" /* package qemu-efi-aarch64 */

typedef enum {
    RIG_ARCH_X86_64,
    RIG_ARCH_PPC64,
    RIG_ARCH_AARCH64,
} RigArch;

typedef enum {
    RIG_MACHINE_PC,         /* x86 pc (i440fx): ACPI PCI hotplug */
    RIG_MACHINE_Q35,        /* x86 q35, ACPI PCI hotplug (QEMU's default) */
    RIG_MACHINE_Q35_NATIVE, /* x86 q35, native PCIe hotplug (ICH9 ACPI hotplug off) */
    RIG_MACHINE_PSERIES,    /* ppc64 pseries, -cpu POWER9 */
    RIG_MACHINE_VIRT,       /* aarch64 virt, -cpu max: native PCIe hotplug only */
    RIG_MACHINE_NONE,       /* x86 -machine none: nothing hotpluggable */
} RigMachine;

typedef struct {
    RigMachine machine;            /* default RIG_MACHINE_PC */
    guint n_root_ports;            /* pcie-root-ports rp1..rpN (q35, virt) */
    const char *root_port_props;   /* appended to each root port's -device, may be NULL */
    gboolean uefi;                 /* virt only: acpi=on, -bios RIG_AAVMF (ACPI GED) */
    gboolean guest;                /* boot the arch's test guest; else no kernel and -S */
    gboolean paused;               /* with a guest: start it with -S, do not wait for it
                                      (rig_vm_cont_boot() later); without: always -S */
    const char *guest_cmdline;     /* guest knobs ("hp.mem=movable"), may be NULL */
    const char *smp;               /* NULL: "1" */
    const char *mem;               /* NULL: "256M" (x86), "512M" (pseries, virt) */
    guint n_extra_qmp;             /* more QMP sockets, one client each */
    const char *const *extra_args; /* NULL-terminated, appended last, may be NULL */
} RigVmOptions;

typedef struct RigVm RigVm;

RigArch rig_machine_arch(RigMachine machine);
const char *rig_arch_name(RigArch arch); /* "x86_64", "ppc64", "aarch64" */

/* The binary under test: $HOTPLUG_QEMU_BINDIR/NAME or NAME in $PATH. */
char *rig_qemu_binary(RigArch arch, GError **error);
char *rig_qemu_img(GError **error);
/* The test guest of arch is there (else an error naming its build script). */
gboolean rig_guest_available(RigArch arch, GError **error);

/* Start the VM; with a guest (and not paused), wait until it is ready.
 * NULL and an error with the tail of QEMU's output when it cannot. */
RigVm *rig_vm_new(const RigVmOptions *opts, GError **error);
/* The same, failing the test on error. */
RigVm *rig_vm_start(const RigVmOptions *opts);
void rig_vm_free(RigVm *vm); /* kills QEMU if running, removes the temp dir */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RigVm, rig_vm_free)

RigArch rig_vm_arch(RigVm *vm);
const char *rig_vm_qmp_path(RigVm *vm);                /* for the code under test */
const char *rig_vm_extra_qmp_path(RigVm *vm, guint n); /* 1 .. n_extra_qmp */
const char *rig_vm_dir(RigVm *vm);
GPid rig_vm_pid(RigVm *vm);
gboolean rig_vm_is_running(RigVm *vm);
void rig_vm_kill(RigVm *vm); /* SIGKILL + reap; idempotent */
/* Kill QEMU and start it again with the same command line on the same
 * sockets (a new process, nothing hot-plugged); the spare connection is
 * reopened on next use.  Fails the test when it cannot. */
void rig_vm_restart(RigVm *vm);

/* -S with a guest: cont, then wait for the guest to be ready. */
void rig_vm_cont_boot(RigVm *vm);

/* ---- the console ---- */
char *rig_vm_console(RigVm *vm); /* all of it so far */
gsize rig_vm_console_count(RigVm *vm, const char *needle);
gboolean rig_vm_wait_console_full(RigVm *vm, const char *needle, guint timeout_ms, GError **error);
/* Fails the test when needle does not show within timeout_ms. */
void rig_vm_wait_console(RigVm *vm, const char *needle, guint timeout_ms);
/* Until needle shows `count` times; FALSE after timeout_ms. */
gboolean rig_vm_wait_console_count(RigVm *vm, const char *needle, gsize count, guint timeout_ms);

/* ---- the test's own QMP connection (the spare socket) ---- */
/* The loop the spare connection runs on; tests may put their own
 * connections (the library under test) on it. */
struct event_base *rig_vm_base(RigVm *vm);
QmpConn *rig_vm_spare(RigVm *vm); /* connected on first use */
/* cmd with args (JSON text or NULL) on the spare socket; the "return"
 * member (a new reference), failing the test on an error. */
JsonNode *rig_vm_qmp(RigVm *vm, const char *cmd, const char *args_json);
void rig_vm_qmp_ok(RigVm *vm, const char *cmd, const char *args_json);
/* The same, but QEMU's error is returned (NULL when it succeeded). */
GError *rig_vm_qmp_error(RigVm *vm, const char *cmd, const char *args_json);
gboolean rig_vm_qom_has(RigVm *vm, const char *path, const char *name);
gboolean rig_vm_peripheral_has(RigVm *vm, const char *id);
/* query-version of the binary under test */
void rig_vm_version(RigVm *vm, int *major, int *minor, int *micro);
/* "MAJOR.MINOR." as the binary under test reports it */
char *rig_vm_version_prefix(RigVm *vm);
/* query-qmp-schema lists name as a meta_type ("command", "event"). */
gboolean rig_vm_schema_has(RigVm *vm, const char *meta_type, const char *name);
/* The hotplug capabilities the product detects on this VM (qmp_caps_list). */
gboolean rig_vm_has_cap(RigVm *vm, const char *cap);
/* query-hotpluggable-cpus' "type" of the first entity (e.g. pseries' core type). */
char *rig_vm_cpu_type(RigVm *vm);

/* Events the spare connection saw, oldest first (since rig_vm_spare()). */
typedef struct {
    char *name;
    JsonObject *data;
} RigEvent;
GPtrArray *rig_vm_events(RigVm *vm); /* of RigEvent, owned by vm */
/* Run the loop for up to timeout_ms until an event `name` arrives whose
 * data member `key` is the string `value` (key NULL: any); index from: look
 * at events from that index on.  Its index, or -1 after the timeout. */
int rig_vm_wait_event(RigVm *vm, guint from, const char *name, const char *key, const char *value,
                      guint timeout_ms);
/* Run the VM's loop for ms milliseconds. */
void rig_vm_run(RigVm *vm, guint ms);
/* Run the VM's loop until cond holds; fail the test after ms. */
#define RIG_RUN_UNTIL(vm, cond, ms)                                                                \
    do {                                                                                           \
        gint64 rig_end_ = g_get_monotonic_time() + (gint64)(ms)*1000;                              \
        while (!(cond) && g_get_monotonic_time() < rig_end_)                                       \
            rig_vm_run((vm), 20);                                                                  \
        if (!(cond))                                                                               \
            fail_msg("timed out after %u ms waiting for %s", (guint)(ms), #cond);                  \
    } while (0)

/* ---- hotplugctl ---- */
typedef struct {
    int status;      /* exit code */
    char *out, *err; /* what it printed */
    GPtrArray *json; /* JsonNode per stdout line that is JSON (--json) */
} RigCtl;
void rig_ctl_free(RigCtl *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RigCtl, rig_ctl_free)

typedef struct RigCtlRun RigCtlRun; /* a hotplugctl still running */

/* hotplugctl ARGS... NULL; fails the test when it did not exit normally. */
RigCtl *rig_ctl(const char *arg, ...) G_GNUC_NULL_TERMINATED;
RigCtl *rig_ctlv(const char *const *argv);
/* Start it now, collect it later (within timeout_ms, else it is killed and
 * the test fails).  rig_ctl_run_free() kills one never collected. */
RigCtlRun *rig_ctl_start(const char *arg, ...) G_GNUC_NULL_TERMINATED;
RigCtlRun *rig_ctl_startv(const char *const *argv);
RigCtl *rig_ctl_wait(RigCtlRun *run, guint timeout_ms); /* frees run */
GPid rig_ctl_run_pid(RigCtlRun *run);
const char *rig_ctl_run_out_path(RigCtlRun *run); /* its stdout so far, in a file */
void rig_ctl_run_free(RigCtlRun *run);
/* The one JSON object printed (fails unless exactly one line, an object). */
JsonObject *rig_ctl_result(RigCtl *r);
/* Line i's object; the one array printed (vm list, ops). */
JsonObject *rig_ctl_obj(RigCtl *r, guint i);
JsonArray *rig_ctl_array(RigCtl *r);
/* The result line whose "device" is device. */
JsonObject *rig_ctl_result_for(RigCtl *r, const char *device);
/* Fails the test, showing the output, unless the exit code is want. */
void rig_ctl_assert_exit(RigCtl *r, int want);
/* hotplugctl ARGS... NULL as text: its exit code; *out and *err (either
 * may be NULL) get what it printed. */
int rig_ctl_text(char **out, char **err, const char *arg, ...) G_GNUC_NULL_TERMINATED;
/* The one JSON object hotplugctl --json printed (fails the test otherwise). */
JsonNode *rig_json_result(const char *out);

/* ---- hotplugd ---- */
typedef struct RigHotplugd RigHotplugd;

/* A hotplugd on its own dir (NULL: a new temp dir), not yet running: dir/
 * state (state dir), ctl.sock (control socket), hotplugd.log. */
RigHotplugd *rig_hotplugd_new(const char *dir);
/* Run it with --config dir/hotplugd.conf holding text instead of
 * --state-dir/--socket (the text names them: rig_hotplugd_state_dir() ...). */
void rig_hotplugd_set_config(RigHotplugd *d, const char *text);
/* Start it; back once the control socket accepts. */
void rig_hotplugd_start(RigHotplugd *d);
/* SIGTERM; its wait status (fails the test after 10 s). */
int rig_hotplugd_term(RigHotplugd *d);
/* SIGTERM, and 0 when it exited 0; else fail the test with its log. */
void rig_hotplugd_stop(RigHotplugd *d);
void rig_hotplugd_kill9(RigHotplugd *d);
void rig_hotplugd_free(RigHotplugd *d); /* kills it if running, removes its dir */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RigHotplugd, rig_hotplugd_free)
GPid rig_hotplugd_pid(RigHotplugd *d); /* 0: not running */
guint rig_hotplugd_starts(RigHotplugd *d);
const char *rig_hotplugd_dir(RigHotplugd *d);
const char *rig_hotplugd_socket(RigHotplugd *d);
const char *rig_hotplugd_state_dir(RigHotplugd *d);
const char *rig_hotplugd_config(RigHotplugd *d);
char *rig_hotplugd_log(RigHotplugd *d); /* all it wrote */
/* hotplugctl --socket CTL ARGS... NULL */
RigCtl *rig_hotplugd_ctl(RigHotplugd *d, const char *arg, ...) G_GNUC_NULL_TERMINATED;
RigCtlRun *rig_hotplugd_ctl_start(RigHotplugd *d, const char *arg, ...) G_GNUC_NULL_TERMINATED;
int rig_hotplugd_ctl_text(RigHotplugd *d, char **out, char **err, const char *arg,
                          ...) G_GNUC_NULL_TERMINATED;
/* `vm add NAME QMP`, then wait until it is ready. */
void rig_hotplugd_add_vm(RigHotplugd *d, const char *name, const char *qmp);
/* The VM's state in `vm list --json` (NULL: not listed). */
char *rig_hotplugd_vm_state(RigHotplugd *d, const char *name);
void rig_hotplugd_wait_vm_ready(RigHotplugd *d, const char *name);

/* ---- small things ---- */
/* A temp dir of the test's own (removed by rig_rm_tree). */
char *rig_make_tmp(const char *tmpl);
void rig_rm_tree(const char *path);
gsize rig_count(const char *text, const char *needle);
/* A socket at path accepts a connection. */
gboolean rig_socket_accepts(const char *path);
JsonNode *rig_json_parse(const char *text); /* fails the test on bad JSON */

G_END_DECLS
