/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl vcpu ... against a real QEMU (x86 pc, TCG), with the test
 * guest where the guest must act.
 *
 * Each test starts its own QEMU and its teardown kills it, whatever the
 * test did.  A VM never gets another hot-plug after a vCPU unplug: QEMU
 * 7.2 crashed there (PCI, vCPU and DIMM hot-adds alike), and QEMU 10.0
 * under TCG aborts on the (maxcpus+1)-th vCPU of a VM's life.
 *
 * The time the guest takes to eject a vCPU is printed as "MEASURE ..."
 * lines; the CPU class default deadline (timeout.c) is set from them. */
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

static void
start_vm(Fixture *f, gboolean guest, const char *smp, const char *const *extra)
{
    RigVmOptions opts = {
        .machine = RIG_MACHINE_PC,
        .guest = guest,
        .smp = smp,
        .mem = "512M,slots=2,maxmem=2G",
        .extra_args = extra,
    };

    f->vm = rig_vm_start(&opts);
}

static void
assert_outcome(JsonObject *o, const char *action, const char *outcome)
{
    assert_string_equal(qmp_json_get_string(o, "action"), action);
    assert_string_equal(qmp_json_get_string(o, "outcome"), outcome);
    assert_string_equal(qmp_json_get_string(o, "kind"), "vcpu");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
}

/* The qom-path of entity `index` (QEMU's order of possible CPUs), or NULL. */
static char *
slot_qom_path(Fixture *f, guint index)
{
    g_autoptr(JsonNode) ret = rig_vm_qmp(f->vm, "query-hotpluggable-cpus", NULL);
    JsonArray *a = json_node_get_array(ret);
    guint n = json_array_get_length(a);
    JsonObject *o;

    assert_true(index < n);
    o = json_array_get_object_element(a, n - 1 - index);
    return g_strdup(qmp_json_get_string(o, "qom-path"));
}

static void
wait_console(Fixture *f, const char *needle)
{
    rig_vm_wait_console(f->vm, needle, RIG_BOOT_MS);
}

static void
measure(const char *what, JsonObject *o)
{
    printf("MEASURE vcpu-unplug %s: %" G_GINT64_FORMAT " ms\n", what,
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    fflush(stdout);
}

/* hotplugctl ARGS... with exit code want (the output is the test's) */
#define CTL(r, want, ...)                                                                          \
    do {                                                                                           \
        g_clear_pointer(&(r), rig_ctl_free);                                                       \
        (r) = rig_ctl(__VA_ARGS__, NULL);                                                          \
        rig_ctl_assert_exit((r), (want));                                                          \
    } while (0)

/* Plug vCPU 1, the guest onlines it, unplug: deleted, and QEMU agrees that
 * the device and the slot are free (no DEVICE_DELETED for the vCPU
 * itself: the confirmation decides). */
static void
test_plug_online_unplug(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autofree char *path = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, TRUE, "1,maxcpus=4", NULL);
    sock = rig_vm_qmp_path(f->vm);
    CTL(r, 0, "--json", "vcpu", "enable", sock, "1");
    assert_int_equal(r->json->len, 1);
    o = rig_ctl_obj(r, 0);
    assert_outcome(o, "plug", "added");
    assert_string_equal(qmp_json_get_string(o, "device"), "cpu-s0-c1-t0");
    path = slot_qom_path(f, 1);
    assert_string_equal(path, "/machine/peripheral/cpu-s0-c1-t0");
    g_clear_pointer(&path, g_free);
    wait_console(f, "HOTPLUG-GUEST: online cpu1");

    /* vcpu list shows it online with its host thread */
    CTL(r, 0, "--json", "vcpu", "list", sock);
    o = rig_ctl_obj(r, 0);
    assert_int_equal(qmp_json_get_int_default(o, "vcpus", -1), 2);
    assert_int_equal(qmp_json_get_int_default(o, "maxcpus", -1), 4);
    {
        JsonArray *ents = qmp_json_get_array(o, "entities");
        JsonObject *e1 = json_array_get_object_element(ents, 1);
        JsonArray *tids = qmp_json_get_array(e1, "thread-ids");
        assert_string_equal(qmp_json_get_string(e1, "state"), "online");
        assert_true(json_array_get_int_element(tids, 0) > 0);
        assert_string_equal(qmp_json_get_string(json_array_get_object_element(ents, 2), "state"),
                            "offline");
    }

    CTL(r, 0, "--json", "vcpu", "disable", sock, "1");
    assert_int_equal(r->json->len, 1);
    o = rig_ctl_obj(r, 0);
    assert_outcome(o, "unplug", "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "timeout_ms", -1), 60000);
    measure("single", o);
    /* confirmed by QEMU both ways: no device, and a free slot */
    assert_false(rig_vm_peripheral_has(f->vm, "cpu-s0-c1-t0"));
    path = slot_qom_path(f, 1);
    assert_null(path);
    wait_console(f, "HOTPLUG-GUEST: removed cpu1");
}

/* vcpu set up (the lowest free slots) and down (the highest, concurrently). */
static void
test_set_up_and_down(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    const char *sock;

    start_vm(f, TRUE, "1,maxcpus=4", NULL);
    sock = rig_vm_qmp_path(f->vm);
    CTL(r, 0, "--json", "vcpu", "set", sock, "4");
    assert_int_equal(r->json->len, 3);
    assert_outcome(rig_ctl_result_for(r, "cpu-s0-c1-t0"), "plug", "added");
    assert_outcome(rig_ctl_result_for(r, "cpu-s0-c2-t0"), "plug", "added");
    assert_outcome(rig_ctl_result_for(r, "cpu-s0-c3-t0"), "plug", "added");
    wait_console(f, "HOTPLUG-GUEST: online cpu3");
    wait_console(f, "HOTPLUG-GUEST: online cpu2");
    wait_console(f, "HOTPLUG-GUEST: online cpu1");

    /* already there */
    CTL(r, 0, "--json", "vcpu", "set", sock, "4");
    assert_non_null(strstr(r->out, "\"changed\":false"));

    /* down to 2: only cpu3 and cpu2 go, highest first */
    CTL(r, 0, "--json", "vcpu", "set", sock, "2");
    assert_int_equal(r->json->len, 2);
    assert_string_equal(qmp_json_get_string(rig_ctl_obj(r, 0), "device"), "cpu-s0-c3-t0");
    assert_outcome(rig_ctl_result_for(r, "cpu-s0-c3-t0"), "unplug", "deleted");
    assert_outcome(rig_ctl_result_for(r, "cpu-s0-c2-t0"), "unplug", "deleted");
    measure("set-4-to-2 cpu3", rig_ctl_result_for(r, "cpu-s0-c3-t0"));
    measure("set-4-to-2 cpu2", rig_ctl_result_for(r, "cpu-s0-c2-t0"));
    assert_true(rig_vm_peripheral_has(f->vm, "cpu-s0-c1-t0"));
    assert_false(rig_vm_peripheral_has(f->vm, "cpu-s0-c2-t0"));

    /* never below the boot vCPUs */
    CTL(r, 2, "vcpu", "set", sock, "0");
    CTL(r, 2, "vcpu", "disable", sock, "0");
    assert_non_null(strstr(r->err, "is a boot CPU"));

    /* and down to 1 */
    CTL(r, 0, "--json", "vcpu", "set", sock, "1");
    assert_int_equal(r->json->len, 1);
    assert_outcome(rig_ctl_result_for(r, "cpu-s0-c1-t0"), "unplug", "deleted");
    measure("set-2-to-1 cpu1", rig_ctl_result_for(r, "cpu-s0-c1-t0"));
    CTL(r, 0, "--json", "vcpu", "list", sock);
    assert_non_null(strstr(r->out, "\"vcpus\":1,\"maxcpus\":4"));
    wait_console(f, "HOTPLUG-GUEST: removed cpu1");
}

/* --node on a VM with two NUMA nodes (no guest needed to plug). */
static void
test_node(void **state)
{
    static const char *const numa[] = {
        "-object", "memory-backend-ram,id=m0,size=256M",
        "-object", "memory-backend-ram,id=m1,size=256M",
        "-numa",   "node,nodeid=0,cpus=0-1,memdev=m0",
        "-numa",   "node,nodeid=1,cpus=2-3,memdev=m1",
        NULL,
    };
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autofree char *path = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, FALSE, "1,maxcpus=4", numa);
    sock = rig_vm_qmp_path(f->vm);
    /* the first free slot of node 1 is vCPU 2 */
    CTL(r, 0, "--json", "vcpu", "enable", sock, "--node", "1");
    o = rig_ctl_obj(r, 0);
    assert_outcome(o, "plug", "added");
    assert_string_equal(qmp_json_get_string(o, "device"), "cpu-s0-c2-t0");
    path = slot_qom_path(f, 2);
    assert_string_equal(path, "/machine/peripheral/cpu-s0-c2-t0");
    g_clear_pointer(&path, g_free);
    path = slot_qom_path(f, 1);
    assert_null(path);

    /* the list shows nodes */
    CTL(r, 0, "--json", "vcpu", "list", sock);
    {
        JsonArray *ents = qmp_json_get_array(rig_ctl_obj(r, 0), "entities");
        assert_int_equal(qmp_json_get_int_default(json_array_get_object_element(ents, 1), "node",
                                                  -1),
                         0);
        assert_int_equal(qmp_json_get_int_default(json_array_get_object_element(ents, 3), "node",
                                                  -1),
                         1);
    }

    /* a named vCPU on the wrong node, a node without slots, node 1 full */
    CTL(r, 2, "vcpu", "enable", sock, "1", "--node", "1");
    assert_non_null(strstr(r->err, "is on NUMA node 0, not 1"));
    CTL(r, 2, "vcpu", "enable", sock, "--node", "5");
    assert_non_null(strstr(r->err, "no vCPU slot on NUMA node 5 (nodes with vCPU slots: 0, 1)"));
    CTL(r, 0, "--json", "vcpu", "enable", sock, "3", "--node", "1");
    CTL(r, 1, "vcpu", "enable", sock, "--node", "1");
    assert_non_null(strstr(r->err, "no free slot on NUMA node 1: 1 asked, 0 free of 2"));
    /* a DIMM on node 1 too */
    CTL(r, 0, "--json", "memory", "add", sock, "128M", "--node", "1");
    CTL(r, 0, "--json", "memory", "list", sock);
    assert_non_null(strstr(r->out, "\"id\":\"dimm0\",\"type\":\"dimm\",\"size\":134217728,"
                                   "\"node\":1"));
}

/* maxcpus reached, and an unplug QEMU refuses because no guest has switched
 * its ACPI CPU hotplug out of legacy mode. */
static void
test_no_free_slot_and_legacy(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autofree char *desc = NULL, *cpu_type = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, FALSE, "1,maxcpus=2", NULL);
    sock = rig_vm_qmp_path(f->vm);
    CTL(r, 0, "vcpu", "set", sock, "2");
    assert_non_null(strstr(r->out, "cpu-s0-c1-t0: added"));
    CTL(r, 1, "vcpu", "set", sock, "3");
    assert_non_null(strstr(r->err, "no free slot for 3 vCPUs: the VM has 2 of at most 2 (maxcpus)"));
    CTL(r, 2, "vcpu", "enable", sock, "1");
    assert_non_null(strstr(r->err, "is already plugged"));
    CTL(r, 2, "vcpu", "enable", sock, "2");
    assert_non_null(strstr(r->err, "no vCPU 2: this VM has vCPU ids 0-1"));
    CTL(r, 2, "vcpu", "enable", sock);

    /* the guest never ran: QEMU refuses the unplug, and we say why */
    cpu_type = rig_vm_cpu_type(f->vm);
    CTL(r, 3, "--json", "vcpu", "disable", sock, "1");
    o = rig_ctl_obj(r, 0);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_string_equal(qmp_json_get_string(qmp_json_get_object(o, "error"), "class"),
                        "GenericError");
    desc = g_strdup_printf("acpi: device unplug request for not supported device type: %s",
                           cpu_type);
    assert_string_equal(qmp_json_get_string(qmp_json_get_object(o, "error"), "desc"), desc);
    assert_non_null(strstr(r->err, "legacy mode"));
    assert_true(rig_vm_peripheral_has(f->vm, "cpu-s0-c1-t0"));
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_plug_online_unplug),
        T(test_set_up_and_down),
        T(test_node),
        T(test_no_free_slot_and_legacy),
    };
#undef T

    /* HOTPLUG_TEST_FILTER=test_node runs only the tests that match */
    if (g_getenv("HOTPLUG_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("HOTPLUG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
