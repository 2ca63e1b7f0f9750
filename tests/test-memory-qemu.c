/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl memory ... and the memory library against a real QEMU
 * (x86 pc, TCG, -m 512M,slots=2,maxmem=2G), with the test guest where the
 * guest must act; and the memory and vcpu verbs through a hotplugd the
 * test starts.  Each test starts its own QEMU; teardown kills it, and the
 * hotplugd a test started. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "hotplug-memory.h"
#include "qmp-conn.h"
#include "qmp-json.h"
#include "rig.h"

#define REPLY_MS RIG_REPLY_MS

typedef struct {
    RigVm *qemu;
    /* library-level tests */
    QmpConn *conn;
    HotplugVm *vm;
    GPtrArray *trace;
    gboolean resumed;
    RigHotplugd *hotplugd; /* NULL: none */
} Fixture;

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->trace = g_ptr_array_new_with_free_func(g_free);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    if (f->vm)
        hotplug_vm_free(f->vm);
    if (f->conn) {
        qmp_conn_close(f->conn);
        qmp_conn_unref(f->conn);
    }
    g_clear_pointer(&f->hotplugd, rig_hotplugd_free);
    g_clear_pointer(&f->qemu, rig_vm_free);
    g_ptr_array_unref(f->trace);
    g_free(f);
    return 0;
}

static void
start_vm_extra(Fixture *f, gboolean guest, const char *cmdline, guint n_extra_qmp)
{
    RigVmOptions opts = {
        .machine = RIG_MACHINE_PC,
        .guest = guest,
        .guest_cmdline = cmdline,
        .smp = "1,maxcpus=4",
        .mem = "512M,slots=2,maxmem=2G",
        .n_extra_qmp = n_extra_qmp,
    };

    f->qemu = rig_vm_start(&opts);
}

static void
start_vm(Fixture *f, gboolean guest, const char *cmdline)
{
    start_vm_extra(f, guest, cmdline, 0);
}

static void
wait_console(Fixture *f, const char *needle)
{
    rig_vm_wait_console(f->qemu, needle, RIG_BOOT_MS);
}

static guint
n_memory_devices(Fixture *f)
{
    g_autoptr(JsonNode) ret = rig_vm_qmp(f->qemu, "query-memory-devices", NULL);
    return json_array_get_length(json_node_get_array(ret));
}

static void
add_dimm0(Fixture *f, const char *size)
{
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    assert_int_equal(rig_ctl_text(&out, NULL, "--json", "memory", "add", rig_vm_qmp_path(f->qemu), size,
                         NULL),
                     0);
    r = rig_json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "device"), "dimm0");
    assert_string_equal(qmp_json_get_string(o, "kind"), "memory");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_true(rig_vm_qom_has(f->qemu, "/machine/peripheral", "dimm0"));
    assert_true(rig_vm_qom_has(f->qemu, "/objects", "mem-dimm0"));
}

/* A DIMM goes in, the guest onlines it (movable), and goes out: deleted,
 * and its backend is gone too. */
static void
test_dimm_plug_unplug(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, TRUE, NULL);
    sock = rig_vm_qmp_path(f->qemu);
    add_dimm0(f, "256M");
    wait_console(f, "HOTPLUG-GUEST: online memory33 movable");
    assert_int_equal(rig_ctl_text(&out, NULL, "memory", "list", sock, NULL), 0);
    assert_non_null(strstr(out, "dimm0            dimm     256M       0    0    mem-dimm0            -\n"));

    g_clear_pointer(&out, g_free);
    assert_int_equal(rig_ctl_text(&out, &err, "--json", "memory", "del", sock, "dimm0", NULL), 0);
    r = rig_json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_string_equal(qmp_json_get_string(o, "action"), "unplug");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    printf("MEASURE dimm-unplug 256M: %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_false(rig_vm_qom_has(f->qemu, "/machine/peripheral", "dimm0"));
    assert_false(rig_vm_qom_has(f->qemu, "/objects", "mem-dimm0"));
    assert_int_equal(n_memory_devices(f), 0);
    wait_console(f, "HOTPLUG-GUEST: removed memory33");

    /* an id that is not there: QEMU's own answer */
    g_clear_pointer(&out, g_free);
    assert_int_equal(rig_ctl_text(&out, NULL, "memory", "del", sock, "dimm0", NULL), 3);
    assert_non_null(strstr(out, "dimm0: rejected: DeviceNotFound: Device 'dimm0' not found"));
}

/* The guest onlined the DIMM as kernel memory and filled it: it cannot
 * offline it and refuses (ACPI_DEVICE_OST status 0x82): guest-error, exit
 * 4, and the DIMM and its backend stay. */
static void
test_dimm_refused(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, TRUE, "hp.mem=kernel hp.fillmem");
    sock = rig_vm_qmp_path(f->qemu);
    add_dimm0(f, "256M");
    wait_console(f, "HOTPLUG-GUEST: fillmem pinned");
    assert_int_equal(rig_ctl_text(&out, &err, "--json", "memory", "del", sock, "dimm0", NULL), 4);
    r = rig_json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "guest-error");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_non_null(strstr(qmp_json_get_string(o, "detail"), "status 0x82"));
    assert_true(rig_vm_qom_has(f->qemu, "/machine/peripheral", "dimm0"));
    assert_true(rig_vm_qom_has(f->qemu, "/objects", "mem-dimm0"));
    assert_int_equal(n_memory_devices(f), 1);
}

/* Errors before anything is created, and an undo after a failing
 * device_add (no backend left behind).  No guest needed. */
static void
test_dimm_add_errors(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, FALSE, NULL);
    sock = rig_vm_qmp_path(f->qemu);
    assert_int_equal(rig_ctl_text(NULL, &err, "memory", "add", sock, "3M", NULL), 2);
    assert_non_null(strstr(err, "multiple of 2M"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(rig_ctl_text(NULL, &err, "memory", "add", sock, "2G", NULL), 1);
    assert_non_null(strstr(err, "not enough room below maxmem: 512 MiB boot memory + 0 MiB "
                                "plugged + 2048 MiB asked is over maxmem 2048 MiB"));
    /* device_add refuses a node the VM does not have: the backend goes again */
    assert_int_equal(rig_ctl_text(&out, NULL, "--json", "memory", "add", sock, "128M", "--node", "3",
                         "--id", "bad", NULL),
                     3);
    r = rig_json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_non_null(strstr(qmp_json_get_string(o, "detail"), "step 2 of 2 (device_add)"));
    assert_false(rig_vm_qom_has(f->qemu, "/objects", "mem-bad"));
    assert_false(rig_vm_qom_has(f->qemu, "/machine/peripheral", "bad"));
    /* fill both slots, then one more */
    add_dimm0(f, "256M");
    g_clear_pointer(&out, g_free);
    assert_int_equal(rig_ctl_text(&out, NULL, "memory", "add", sock, "128M", "--id", "x", NULL), 0);
    assert_non_null(strstr(out, "x: added"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(rig_ctl_text(NULL, &err, "memory", "add", sock, "128M", NULL), 1);
    assert_non_null(strstr(err, "no free memory slot: all 2 slots are used"));
    assert_int_equal(n_memory_devices(f), 2);
    /* a device that is not memory is not removed by "memory del" */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(rig_ctl_text(&out, &err, "device", "add", sock, "virtio-net-pci", "nic1", NULL), 0);
    g_clear_pointer(&err, g_free);
    assert_int_equal(rig_ctl_text(NULL, &err, "memory", "del", sock, "nic1", NULL), 2);
    assert_non_null(strstr(err, "nic1 is a virtio-net-pci, not a memory device"));
}

/* ---- library level: --retry reaching deleted ------------------------------- */

static void
cont_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    Fixture *f = opaque;

    f->resumed = error == NULL;
}

static void
retry_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Fixture *f = opaque;

    g_ptr_array_add(f->trace,
                    g_strdup_printf("%s %u %s", hotplug_op_event_name(ev),
                                    hotplug_op_get_attempts(op),
                                    hotplug_outcome_name(ev == HOTPLUG_OP_EV_ATTEMPT_RESULT
                                                             ? hotplug_op_get_attempt_outcome(op)
                                                             : hotplug_op_get_outcome(op))));
    /* the paused guest could not answer attempt 1: let it run now */
    if (ev == HOTPLUG_OP_EV_ATTEMPT_RESULT && hotplug_op_get_attempts(op) == 1)
        assert_true(qmp_conn_execute(rig_vm_spare(f->qemu), "cont", NULL, cont_cb, f, NULL));
}

static void
test_dimm_retry_after_resume(void **state)
{
    static const HotplugVmListener l = {.op = retry_op_cb};
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) devices = NULL;
    g_autoptr(JsonNode) stopped = NULL;
    g_autofree char *backend = NULL;
    HotplugUnplugOptions opts = {.timeout_ms = 1500, .retries = 3, .retry_interval_ms = 500};
    g_autofree char *last = NULL;
    gboolean never = FALSE;

    start_vm(f, TRUE, NULL);
    add_dimm0(f, "128M");
    wait_console(f, "HOTPLUG-GUEST: online memory32 movable");
    stopped = rig_vm_qmp(f->qemu, "stop", NULL);

    f->conn = qmp_conn_new(rig_vm_base(f->qemu), rig_vm_qmp_path(f->qemu), NULL);
    if (!qmp_conn_open(f->conn, &err) || !qmp_conn_wait_ready(f->conn, REPLY_MS, &err))
        fail_msg("QMP: %s", err->message);
    f->vm = hotplug_vm_new("vm", f->conn, &(HotplugVmOptions){.gone_on_close = TRUE});
    hotplug_vm_add_listener(f->vm, &l, f);
    if (!qmp_conn_execute_sync(f->conn, "query-memory-devices", NULL, &devices, REPLY_MS, &err))
        fail_msg("%s", err->message);
    backend = hotplug_memory_backend_of(devices, "dimm0");
    assert_string_equal(backend, "mem-dimm0");
    op = hotplug_memory_del(f->vm, "dimm0", backend, &opts, NULL, &err);
    assert_non_null(op);
    /* 60 s at most: 4 attempts of 1.5 s and the guest's own time */
    for (guint i = 0; i < 300 && !hotplug_op_is_final(op); i++)
        qmp_loop_run_until(rig_vm_base(f->qemu), &never, 200);
    assert_true(f->resumed);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_true(hotplug_op_get_attempts(op) >= 2);
    assert_true(f->trace->len >= 5);
    assert_string_equal(f->trace->pdata[0], "request 0 pending");
    assert_string_equal(f->trace->pdata[1], "attempt 1 pending");
    assert_string_equal(f->trace->pdata[2], "attempt-result 1 not-deleted");
    assert_string_equal(f->trace->pdata[3], "attempt 2 pending");
    last = g_strdup_printf("outcome %u deleted", hotplug_op_get_attempts(op));
    assert_string_equal(f->trace->pdata[f->trace->len - 1], last);
    assert_false(rig_vm_qom_has(f->qemu, "/machine/peripheral", "dimm0"));
    assert_false(rig_vm_qom_has(f->qemu, "/objects", "mem-dimm0"));
    wait_console(f, "HOTPLUG-GUEST: removed memory32");
}

/* ---- the verbs through hotplugd ------------------------------------------------ */

/* Run hotplugctl --json --socket CTL ARGS... expecting exit `want`; its
 * one JSON result (NULL when want is not 0). */
static JsonNode *
hpd_json(Fixture *f, int want, const char *verb, const char *what, const char *vm,
         const char *arg)
{
    g_autofree char *out = NULL, *err = NULL;
    int rc = rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "--json", verb, what, vm, arg, NULL);

    if (rc != want) {
        g_autofree char *log = rig_hotplugd_log(f->hotplugd);
        fail_msg("%s %s %s %s through hotplugd: exit %d, not %d: %s%s\nhotplugd: %s", verb, what,
                 vm, arg ? arg : "", rc, want, out, err, log);
    }
    return want == 0 ? rig_json_result(out) : NULL;
}

static void
assert_result(JsonNode *r, const char *device, const char *kind, const char *action,
              const char *outcome)
{
    JsonObject *o = json_node_get_object(r);

    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_string_equal(qmp_json_get_string(o, "device"), device);
    assert_string_equal(qmp_json_get_string(o, "kind"), kind);
    assert_string_equal(qmp_json_get_string(o, "action"), action);
    assert_string_equal(qmp_json_get_string(o, "outcome"), outcome);
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
}

/* memory add/list/del and vcpu enable/list/disable by VM name, through a
 * hotplugd started here on the VM's third QMP socket: the same outcomes as
 * in direct mode, and errors keep their class (exit code).  The vCPU is
 * unplugged last: QEMU 7.2 crashes on a hot-add after a vCPU unplug. */
static void
test_verbs_through_hotplugd(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;
    JsonArray *a;

    start_vm_extra(f, TRUE, NULL, 1);
    f->hotplugd = rig_hotplugd_new(NULL);
    rig_hotplugd_start(f->hotplugd);
    rig_hotplugd_add_vm(f->hotplugd, "vm1", rig_vm_extra_qmp_path(f->qemu, 1));

    /* a DIMM in and out */
    r = hpd_json(f, 0, "memory", "add", "vm1", "256M");
    assert_result(r, "dimm0", "memory", "plug", "added");
    g_clear_pointer(&r, json_node_unref);
    assert_true(rig_vm_qom_has(f->qemu, "/machine/peripheral", "dimm0"));
    assert_true(rig_vm_qom_has(f->qemu, "/objects", "mem-dimm0"));
    wait_console(f, "HOTPLUG-GUEST: online memory33 movable");
    r = hpd_json(f, 0, "memory", "list", "vm1", NULL);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    a = qmp_json_get_array(o, "memory");
    assert_non_null(a);
    assert_int_equal(json_array_get_length(a), 1);
    o = json_array_get_object_element(a, 0);
    assert_string_equal(qmp_json_get_string(o, "id"), "dimm0");
    assert_string_equal(qmp_json_get_string(o, "backend"), "mem-dimm0");
    assert_int_equal(qmp_json_get_int_default(o, "size", -1), 256 << 20);
    g_clear_pointer(&r, json_node_unref);
    r = hpd_json(f, 0, "memory", "del", "vm1", "dimm0");
    assert_result(r, "dimm0", "memory", "unplug", "deleted");
    g_clear_pointer(&r, json_node_unref);
    assert_false(rig_vm_qom_has(f->qemu, "/machine/peripheral", "dimm0"));
    assert_false(rig_vm_qom_has(f->qemu, "/objects", "mem-dimm0"));
    assert_int_equal(n_memory_devices(f), 0);
    wait_console(f, "HOTPLUG-GUEST: removed memory33");
    /* checks that need QEMU keep their class through the daemon: no room
     * (Unsupported, 1), not a memory device (InvalidArgument, 2) */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "memory", "add", "vm1", "2G", NULL), 1);
    assert_non_null(strstr(err, "not enough room below maxmem"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "memory", "del", "vm1", "nosuch", NULL),
                     3);
    assert_non_null(strstr(out, "nosuch: rejected: DeviceNotFound"));

    /* a vCPU in */
    r = hpd_json(f, 0, "vcpu", "enable", "vm1", "1");
    assert_result(r, "cpu-s0-c1-t0", "vcpu", "plug", "added");
    g_clear_pointer(&r, json_node_unref);
    wait_console(f, "HOTPLUG-GUEST: online cpu1");
    r = hpd_json(f, 0, "vcpu", "list", "vm1", NULL);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_int_equal(qmp_json_get_int_default(o, "vcpus", -1), 2);
    assert_int_equal(qmp_json_get_int_default(o, "maxcpus", -1), 4);
    a = qmp_json_get_array(o, "entities");
    assert_non_null(a);
    assert_string_equal(qmp_json_get_string(json_array_get_object_element(a, 1), "state"),
                        "online");
    g_clear_pointer(&r, json_node_unref);
    /* refused before anything is sent: boot CPU (2), no free slot (1) */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "vcpu", "disable", "vm1", "0", NULL),
                     2);
    assert_non_null(strstr(err, "is a boot CPU"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "vcpu", "set", "vm1", "5", NULL), 1);
    assert_non_null(strstr(err, "no free slot for 5 vCPUs: the VM has 2 of at most 4"));
    /* and out again, last */
    r = hpd_json(f, 0, "vcpu", "disable", "vm1", "1");
    assert_result(r, "cpu-s0-c1-t0", "vcpu", "unplug", "deleted");
    assert_int_equal(qmp_json_get_int_default(json_node_get_object(r), "timeout_ms", -1), 60000);
    g_clear_pointer(&r, json_node_unref);
    assert_false(rig_vm_qom_has(f->qemu, "/machine/peripheral", "cpu-s0-c1-t0"));
    wait_console(f, "HOTPLUG-GUEST: removed cpu1");

    rig_hotplugd_stop(f->hotplugd);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_dimm_plug_unplug),
        T(test_dimm_refused),
        T(test_dimm_add_errors),
        T(test_dimm_retry_after_resume),
        T(test_verbs_through_hotplugd),
    };
#undef T

    /* HOTPLUG_TEST_FILTER=test_node runs only the tests that match */
    if (g_getenv("HOTPLUG_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("HOTPLUG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
