/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Faults against a real QEMU (tests/rig.h), no guest (-S): a stopped QEMU
 * (SIGSTOP) in direct mode and through hotplugd; a full state directory
 * (a tmpfs the test mounts and fills) while QEMU is there to receive what
 * must not be sent; a RESET storm from one VM (system_reset in a loop)
 * that must not evict another VM's history. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hotplug-vm.h"
#include "qmp-json.h"
#include "rig.h"

static RigVm *
start_vm(void)
{
    RigVmOptions o = {.machine = RIG_MACHINE_PC, .n_extra_qmp = 0};
    RigVm *vm = rig_vm_start(&o);

    rig_vm_qmp_ok(vm, "device_add", "{\"driver\": \"e1000\", \"id\": \"n1\"}");
    assert_true(rig_vm_peripheral_has(vm, "n1"));
    return vm;
}

/* Direct mode against a stopped QEMU: back within the deadline and the
 * grace, not-deleted, saying QEMU did not answer. */
static void
test_sigstop_direct(void **state)
{
    g_autoptr(RigVm) vm = start_vm();
    g_autoptr(RigCtl) r = NULL;
    gint64 t0, took;

    assert_int_equal(kill(rig_vm_pid(vm), SIGSTOP), 0);
    t0 = g_get_monotonic_time();
    r = rig_ctl("device", "del", rig_vm_qmp_path(vm), "n1", "--timeout", "2", NULL);
    took = (g_get_monotonic_time() - t0) / 1000;
    assert_int_equal(kill(rig_vm_pid(vm), SIGCONT), 0);
    rig_ctl_assert_exit(r, 5);
    assert_non_null(strstr(r->out, "not-deleted"));
    assert_non_null(strstr(r->out, "did not answer"));
    if (took > 2000 + HOTPLUG_CONFIRM_GRACE_MS + 2000)
        fail_msg("took %" G_GINT64_FORMAT " ms with --timeout 2", took);
    assert_true(rig_vm_peripheral_has(vm, "n1"));
}

/* Through hotplugd: QEMU stops after the VM is connected; device_del is
 * never answered; the client hears not-deleted by the deadline + grace. */
static void
test_sigstop_daemon(void **state)
{
    g_autoptr(RigVm) vm = start_vm();
    g_autoptr(RigHotplugd) d = rig_hotplugd_new(NULL);
    g_autoptr(RigCtl) r = NULL;
    gint64 t0, took;

    rig_hotplugd_start(d);
    rig_hotplugd_add_vm(d, "vm1", rig_vm_qmp_path(vm));
    assert_int_equal(kill(rig_vm_pid(vm), SIGSTOP), 0);
    t0 = g_get_monotonic_time();
    r = rig_hotplugd_ctl(d, "device", "del", "vm1", "n1", "--timeout", "2", NULL);
    took = (g_get_monotonic_time() - t0) / 1000;
    assert_int_equal(kill(rig_vm_pid(vm), SIGCONT), 0);
    rig_ctl_assert_exit(r, 5);
    assert_non_null(strstr(r->out, "did not answer"));
    if (took > 2000 + HOTPLUG_CONFIRM_GRACE_MS + 2000)
        fail_msg("took %" G_GINT64_FORMAT " ms with --timeout 2", took);
    rig_hotplugd_stop(d);
}

static void
fill_up(const char *dir)
{
    g_autofree char *path = g_build_filename(dir, "filler", NULL);
    char buf[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    gsize chunk = sizeof buf;

    memset(buf, 'x', sizeof buf);
    assert_true(fd >= 0);
    while (chunk > 0)
        if (write(fd, buf, chunk) < 0)
            chunk /= 2;
    close(fd);
}

static char *mounted; /* the tmpfs a test mounted */

static int
teardown_mount(void **state)
{
    if (mounted) {
        if (umount2(mounted, MNT_DETACH) < 0)
            fprintf(stderr, "umount %s: %s\n", mounted, g_strerror(errno));
        g_clear_pointer(&mounted, g_free);
    }
    return 0;
}

/* A full state directory: device del is refused before anything goes to
 * QEMU (system_reset, which completes every pending unplug, leaves the
 * device), then changes are refused, reads work, and with room again the
 * daemon takes changes by itself. */
static void
test_full_disk_daemon(void **state)
{
    g_autoptr(RigVm) vm = start_vm();
    g_autofree char *dir = rig_make_tmp("faults-hpd-XXXXXX");
    g_autofree char *sdir = g_build_filename(dir, "state", NULL);
    g_autofree char *filler = g_build_filename(sdir, "filler", NULL);
    RigHotplugd *d;
    g_autoptr(RigCtl) r1 = NULL, r2 = NULL, r3 = NULL, r4 = NULL;

    if (geteuid() != 0)
        fail_msg("mounting the small tmpfs needs root");
    assert_int_equal(g_mkdir_with_parents(sdir, 0700), 0);
    if (mount("tmpfs", sdir, "tmpfs", 0, "size=1m,mode=0700") < 0)
        fail_msg("mount: %s", g_strerror(errno));
    mounted = g_strdup(sdir);
    d = rig_hotplugd_new(dir);
    rig_hotplugd_start(d);
    rig_hotplugd_add_vm(d, "vm1", rig_vm_qmp_path(vm));
    fill_up(sdir);

    r1 = rig_hotplugd_ctl(d, "device", "del", "vm1", "n1", "--no-wait", NULL);
    if (r1->status == 0 || (!strstr(r1->out, "not sent to QEMU") &&
                            !strstr(r1->err, "not sent to QEMU")))
        fail_msg("device del on a full disk: exit %d: %s%s", r1->status, r1->out, r1->err);
    rig_vm_qmp_ok(vm, "system_reset", NULL);
    rig_vm_run(vm, 300);
    assert_true(rig_vm_peripheral_has(vm, "n1")); /* device_del never went */
    r2 = rig_hotplugd_ctl(d, "device", "del", "vm1", "n1", NULL);
    assert_int_not_equal(r2->status, 0);
    r3 = rig_hotplugd_ctl(d, "vm", "list", NULL);
    rig_ctl_assert_exit(r3, 0);

    assert_int_equal(unlink(filler), 0);
    {
        gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        for (;;) {
            g_autofree char *log = rig_hotplugd_log(d);
            if (strstr(log, "can be written again"))
                break;
            if (g_get_monotonic_time() > end)
                fail_msg("no recovery: %s", log);
            g_usleep(100000);
        }
    }
    r4 = rig_hotplugd_ctl(d, "device", "del", "vm1", "n1", "--no-wait", NULL);
    rig_ctl_assert_exit(r4, 0);
    rig_vm_qmp_ok(vm, "system_reset", NULL);
    {
        gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        while (rig_vm_peripheral_has(vm, "n1") && g_get_monotonic_time() < end)
            rig_vm_run(vm, 100);
    }
    assert_false(rig_vm_peripheral_has(vm, "n1")); /* this one went */
    rig_hotplugd_stop(d);
    {
        g_autofree char *log = rig_hotplugd_log(d);
        assert_int_equal(rig_count(log, "cannot write the state directory"), 1);
    }
    teardown_mount(NULL);
    rig_hotplugd_free(d);
    rig_rm_tree(dir); /* the teardown unmounts first if this is not reached */
}

/* One VM resetting in a loop: its RESETs are coalesced with a count that
 * adds up, and the other VM's history stays in a small log. */
static void
test_reset_storm(void **state)
{
    RigVmOptions o = {.machine = RIG_MACHINE_PC};
    g_autoptr(RigVm) storm = rig_vm_start(&o);
    g_autoptr(RigVm) quiet = rig_vm_start(&o);
    g_autoptr(RigHotplugd) d = rig_hotplugd_new(NULL);
    g_autoptr(RigCtl) q = NULL, s = NULL;
    const guint n_resets = 2000;
    guint64 total = 0;
    guint n_records = 0;

    {
        g_autofree char *conf = g_strdup_printf(
            "[hotplugd]\nstate-dir = %s\nsocket = %s\nlog-max-size = 64K\n"
            "log-segment-size = 8K\n", rig_hotplugd_state_dir(d), rig_hotplugd_socket(d));
        rig_hotplugd_set_config(d, conf);
    }
    rig_hotplugd_start(d);
    rig_hotplugd_add_vm(d, "quiet", rig_vm_qmp_path(quiet));
    rig_hotplugd_add_vm(d, "storm", rig_vm_qmp_path(storm));
    for (guint i = 0; i < n_resets; i++)
        rig_vm_qmp_ok(storm, "system_reset", NULL);
    g_usleep(2 * G_USEC_PER_SEC); /* the last window ends */

    q = rig_hotplugd_ctl(d, "--json", "events", "--vm", "quiet", "--kind", "vm", NULL);
    rig_ctl_assert_exit(q, 0);
    assert_non_null(strstr(q->out, "\"added\""));
    assert_null(strstr(q->err, "gap"));
    s = rig_hotplugd_ctl(d, "--json", "events", "--vm", "storm", "--kind", "qemu-event", NULL);
    rig_ctl_assert_exit(s, 0);
    for (guint i = 0; i < s->json->len; i++) {
        JsonObject *rec = qmp_json_node_object(s->json->pdata[i]);
        if (g_strcmp0(qmp_json_get_string(rec, "event"), "RESET") != 0)
            continue;
        total += (guint64)qmp_json_get_int_default(rec, "count", 1);
        n_records++;
    }
    if (total != n_resets || n_records > 100)
        fail_msg("%u records for %" G_GUINT64_FORMAT " RESETs (sent %u)", n_records, total,
                 n_resets);
    rig_hotplugd_stop(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigstop_direct),
        cmocka_unit_test(test_sigstop_daemon),
        cmocka_unit_test_teardown(test_full_disk_daemon, teardown_mount),
        cmocka_unit_test(test_reset_storm),
    };

    if (g_getenv("TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
