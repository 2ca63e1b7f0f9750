/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl vcpu ... against a real pseries guest: qemu-system-ppc64
 * -machine pseries -cpu POWER9 under TCG, the ppc64le test guest of
 * tests/guest/build-guest-ppc64.sh (same /init as x86, console hvc0).
 *
 * Its hotpluggable entities are cores (power9_vX.Y-spapr-cpu-core, props
 * core-id and node-id).  A core whose unplug the guest refuses gets
 * DEVICE_UNPLUG_GUEST_ERROR: the guest refuses to remove its last online
 * CPU, which the test guest arranges with hp.offcpu0=N (offline cpu0 at
 * boot, online it again N seconds later).  Each test starts its own QEMU;
 * teardown kills it. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "qmp-json.h"
#include "rig.h"

typedef struct {
    RigVm *vm;
} Fixture;

static int
setup(void **state)
{
    *state = g_new0(Fixture, 1);
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    g_clear_pointer(&f->vm, rig_vm_free);
    g_free(f);
    return 0;
}

/* Start the guest paused (so a core can be cold-plugged first); cmdline
 * words go to the kernel. */
static void
start_vm(Fixture *f, const char *cmdline)
{
    RigVmOptions opts = {
        .machine = RIG_MACHINE_PSERIES,
        .guest = TRUE,
        .paused = TRUE,
        .guest_cmdline = cmdline,
        .smp = "1,maxcpus=4",
        .mem = "512M",
    };

    f->vm = rig_vm_start(&opts);
}

static void
wait_console(Fixture *f, const char *needle)
{
    rig_vm_wait_console(f->vm, needle, RIG_BOOT_MS);
}

/* hotplugctl --json ARGS... with exit code want; its one result */
static JsonObject *
ctl_result(RigCtl **r, int want, const char *const *args)
{
    g_clear_pointer(r, rig_ctl_free);
    *r = rig_ctlv(args);
    rig_ctl_assert_exit(*r, want);
    return rig_ctl_result(*r);
}

/* Plug core 1 (vCPU 1) with hotplugctl; it is cpu-c1. */
static void
plug_core1(Fixture *f)
{
    g_autoptr(RigCtl) r = NULL;
    const char *args[] = {"--json", "vcpu", "enable", rig_vm_qmp_path(f->vm), "1", NULL};
    JsonObject *o = ctl_result(&r, 0, args);

    assert_string_equal(qmp_json_get_string(o, "device"), "cpu-c1");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_true(rig_vm_peripheral_has(f->vm, "cpu-c1"));
}

/* The entities are cores; plug one into the running guest and unplug it:
 * deleted (DEVICE_DELETED for the threads first, then the core). */
static void
test_core_plug_unplug(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autofree char *core_type = NULL;
    JsonArray *ents;
    JsonObject *o, *e1;

    start_vm(f, NULL);
    rig_vm_cont_boot(f->vm);
    {
        const char *args[] = {"--json", "vcpu", "list", rig_vm_qmp_path(f->vm), NULL};
        o = ctl_result(&r, 0, args);
    }
    assert_int_equal(qmp_json_get_int_default(o, "vcpus", -1), 1);
    assert_int_equal(qmp_json_get_int_default(o, "maxcpus", -1), 4);
    ents = qmp_json_get_array(o, "entities");
    e1 = json_array_get_object_element(ents, 1);
    /* the core type is QEMU's (-cpu POWER9 resolves per version): what
     * query-hotpluggable-cpus says, and a spapr core */
    core_type = rig_vm_cpu_type(f->vm);
    assert_true(g_str_has_suffix(core_type, "-spapr-cpu-core"));
    assert_true(g_str_has_prefix(core_type, "power9_"));
    assert_string_equal(qmp_json_get_string(e1, "type"), core_type);
    assert_int_equal(qmp_json_get_int_default(e1, "core-id", -1), 1);
    assert_string_equal(qmp_json_get_string(e1, "device"), "cpu-c1");
    assert_true(qmp_json_get_bool_default(json_array_get_object_element(ents, 0), "boot", FALSE));

    plug_core1(f);
    /* let the guest take the new core in before it is asked to let go */
    g_usleep(3 * G_USEC_PER_SEC);
    {
        const char *args[] = {"--json", "vcpu", "disable", rig_vm_qmp_path(f->vm), "1", NULL};
        o = ctl_result(&r, 0, args);
    }
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    printf("MEASURE pseries core unplug: %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_false(rig_vm_peripheral_has(f->vm, "cpu-c1"));

    /* the boot core never goes */
    g_clear_pointer(&r, rig_ctl_free);
    r = rig_ctl("vcpu", "disable", rig_vm_qmp_path(f->vm), "0", NULL);
    rig_ctl_assert_exit(r, 2);
    assert_non_null(strstr(r->err, "is a boot CPU"));
}

/* The guest has offlined cpu0: the hot-plugged core is its last online CPU
 * and it refuses to remove it.  DEVICE_UNPLUG_GUEST_ERROR: guest-error,
 * exit 4, and the core stays. */
static void
test_last_cpu_guest_error(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    JsonObject *o;

    start_vm(f, "hp.offcpu0=600");
    plug_core1(f); /* cold-plugged: present when the guest boots */
    rig_vm_cont_boot(f->vm);
    wait_console(f, "HOTPLUG-GUEST: offline cpu0 for 600s");
    {
        const char *args[] = {"--json", "vcpu", "disable", rig_vm_qmp_path(f->vm), "1", NULL};
        o = ctl_result(&r, 4, args);
    }
    assert_string_equal(qmp_json_get_string(o, "outcome"), "guest-error");
    assert_string_equal(qmp_json_get_string(o, "kind"), "vcpu");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_non_null(strstr(qmp_json_get_string(o, "detail"), "DEVICE_UNPLUG_GUEST_ERROR"));
    printf("MEASURE pseries guest refusal: %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_true(rig_vm_peripheral_has(f->vm, "cpu-c1"));
}

/* The same, with --retry: the guest brings cpu0 back after a while, and a
 * repeated device_del then succeeds: deleted after several attempts. */
static void
test_last_cpu_retry_deleted(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    JsonObject *o;

    start_vm(f, "hp.offcpu0=12");
    plug_core1(f);
    rig_vm_cont_boot(f->vm);
    wait_console(f, "HOTPLUG-GUEST: offline cpu0 for 12s");
    {
        const char *args[] = {"--json",  "vcpu", "disable",          rig_vm_qmp_path(f->vm),
                              "1",       "--retry", "40",            "--retry-interval",
                              "1",       "--timeout", "10",          NULL};
        o = ctl_result(&r, 0, args);
    }
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_true(qmp_json_get_int_default(o, "attempts", -1) >= 2);
    printf("MEASURE pseries retry: %" G_GINT64_FORMAT " attempts, %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "attempts", -1),
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    wait_console(f, "HOTPLUG-GUEST: online cpu0");
    assert_false(rig_vm_peripheral_has(f->vm, "cpu-c1"));
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_core_plug_unplug),
        T(test_last_cpu_guest_error),
        T(test_last_cpu_retry_deleted),
    };
#undef T

    /* HOTPLUG_TEST_FILTER=test_node runs only the tests that match */
    if (g_getenv("HOTPLUG_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("HOTPLUG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
