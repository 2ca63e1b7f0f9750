/* hotplugctl memory ... and the memory library against a real QEMU 7.2
 * (x86 pc, TCG, -m 512M,slots=2,maxmem=2G), with the test guest where the
 * guest must act.  Each test starts its own QEMU; teardown kills it. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "hotplug-memory.h"
#include "qemu-helper.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define BOOT_MS 90000
#define REPLY_MS 20000

typedef struct {
    TestQemu *qemu;
    struct event_base *base;
    QmpConn *spare; /* the test's own QMP connection */
    /* library-level tests */
    QmpConn *conn;
    HotplugVm *vm;
    GPtrArray *trace;
    gboolean resumed;
} Fixture;

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->base = event_base_new();
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
    if (f->spare) {
        qmp_conn_close(f->spare);
        qmp_conn_unref(f->spare);
    }
    g_clear_pointer(&f->qemu, test_qemu_free);
    event_base_free(f->base);
    g_ptr_array_unref(f->trace);
    g_free(f);
    return 0;
}

static void
start_vm(Fixture *f, gboolean guest, const char *cmdline)
{
    g_autoptr(GError) err = NULL;
    TestQemuOptions opts = {
        .machine = "pc",
        .with_guest = guest,
        .paused = !guest,
        .guest_cmdline = cmdline,
        .smp = "1,maxcpus=4",
        .mem = "512M,slots=2,maxmem=2G",
    };

    if (guest && !test_qemu_guest_available(&err))
        fail_msg("%s", err->message);
    f->qemu = test_qemu_start(&opts, &err);
    if (!f->qemu)
        fail_msg("cannot start QEMU: %s", err->message);
    if (guest && !test_qemu_wait_console(f->qemu, "HOTPLUG-GUEST-READY", BOOT_MS, &err))
        fail_msg("guest did not boot: %s", err->message);
    f->spare = qmp_conn_new(f->base, test_qemu_spare_qmp_path(f->qemu), NULL);
    if (!qmp_conn_open(f->spare, &err) || !qmp_conn_wait_ready(f->spare, REPLY_MS, &err))
        fail_msg("spare QMP: %s", err->message);
}

static JsonNode *
qmp(Fixture *f, const char *cmd, const char *args_json)
{
    g_autoptr(GError) err = NULL;
    JsonNode *args = args_json ? json_from_string(args_json, NULL) : NULL;
    JsonNode *ret = NULL;

    if (!qmp_conn_execute_sync(f->spare, cmd, args, &ret, REPLY_MS, &err))
        fail_msg("%s: %s", cmd, err->message);
    return ret;
}

static int
ctl(char **out, char **err, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    g_autofree char *o = NULL, *e = NULL;
    const char *a;
    va_list ap;
    int status = -1;

    g_ptr_array_add(argv, (gpointer)HOTPLUGCTL_PATH);
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)))
        g_ptr_array_add(argv, (gpointer)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &o, &e,
                      &status, &error))
        fail_msg("cannot run %s: %s", HOTPLUGCTL_PATH, error->message);
    if (g_getenv("HOTPLUG_TEST_VERBOSE"))
        fprintf(stderr, "hotplugctl ...: %s%s", o, e);
    if (out)
        *out = g_steal_pointer(&o);
    if (err)
        *err = g_steal_pointer(&e);
    if (!WIFEXITED(status))
        fail_msg("hotplugctl did not exit normally (status %d)", status);
    return WEXITSTATUS(status);
}

/* The one JSON object hotplugctl --json printed. */
static JsonNode *
json_result(const char *out)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *line = g_strstrip(g_strdup(out));
    JsonNode *n;

    if (strchr(line, '\n'))
        fail_msg("more than one line: %s", out);
    n = json_from_string(line, &err);
    if (!n || !JSON_NODE_HOLDS_OBJECT(n))
        fail_msg("not a JSON object: %s", out);
    return n;
}

static void
wait_console(Fixture *f, const char *needle)
{
    g_autoptr(GError) err = NULL;

    if (!test_qemu_wait_console(f->qemu, needle, BOOT_MS, &err))
        fail_msg("%s", err->message);
}

static gboolean
qom_has(Fixture *f, const char *path, const char *name)
{
    g_autofree char *args = g_strdup_printf("{\"path\": \"%s\"}", path);
    g_autoptr(JsonNode) ret = qmp(f, "qom-list", args);
    JsonArray *a = json_node_get_array(ret);

    for (guint i = 0; i < json_array_get_length(a); i++)
        if (g_str_equal(qmp_json_get_string(json_array_get_object_element(a, i), "name"), name))
            return TRUE;
    return FALSE;
}

static guint
n_memory_devices(Fixture *f)
{
    g_autoptr(JsonNode) ret = qmp(f, "query-memory-devices", NULL);
    return json_array_get_length(json_node_get_array(ret));
}

static void
add_dimm0(Fixture *f, const char *size)
{
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    assert_int_equal(ctl(&out, NULL, "--json", "memory", "add", test_qemu_qmp_path(f->qemu), size,
                         NULL),
                     0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "device"), "dimm0");
    assert_string_equal(qmp_json_get_string(o, "kind"), "memory");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_true(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_true(qom_has(f, "/objects", "mem-dimm0"));
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
    sock = test_qemu_qmp_path(f->qemu);
    add_dimm0(f, "256M");
    wait_console(f, "HOTPLUG-GUEST: online memory33 movable");
    assert_int_equal(ctl(&out, NULL, "memory", "list", sock, NULL), 0);
    assert_non_null(strstr(out, "dimm0            dimm     256M       0    0    mem-dimm0            -\n"));

    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, &err, "--json", "memory", "del", sock, "dimm0", NULL), 0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_string_equal(qmp_json_get_string(o, "action"), "unplug");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    printf("MEASURE dimm-unplug 256M: %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_false(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_false(qom_has(f, "/objects", "mem-dimm0"));
    assert_int_equal(n_memory_devices(f), 0);
    wait_console(f, "HOTPLUG-GUEST: removed memory33");

    /* an id that is not there: QEMU's own answer */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "memory", "del", sock, "dimm0", NULL), 3);
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
    sock = test_qemu_qmp_path(f->qemu);
    add_dimm0(f, "256M");
    wait_console(f, "HOTPLUG-GUEST: fillmem pinned");
    assert_int_equal(ctl(&out, &err, "--json", "memory", "del", sock, "dimm0", NULL), 4);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "guest-error");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_non_null(strstr(qmp_json_get_string(o, "detail"), "status 0x82"));
    assert_true(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_true(qom_has(f, "/objects", "mem-dimm0"));
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
    sock = test_qemu_qmp_path(f->qemu);
    assert_int_equal(ctl(NULL, &err, "memory", "add", sock, "3M", NULL), 2);
    assert_non_null(strstr(err, "multiple of 2M"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "memory", "add", sock, "2G", NULL), 1);
    assert_non_null(strstr(err, "not enough room below maxmem: 512 MiB boot memory + 0 MiB "
                                "plugged + 2048 MiB asked is over maxmem 2048 MiB"));
    /* device_add refuses a node the VM does not have: the backend goes again */
    assert_int_equal(ctl(&out, NULL, "--json", "memory", "add", sock, "128M", "--node", "3",
                         "--id", "bad", NULL),
                     3);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_non_null(strstr(qmp_json_get_string(o, "detail"), "step 2 of 2 (device_add)"));
    assert_false(qom_has(f, "/objects", "mem-bad"));
    assert_false(qom_has(f, "/machine/peripheral", "bad"));
    /* fill both slots, then one more */
    add_dimm0(f, "256M");
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "memory", "add", sock, "128M", "--id", "x", NULL), 0);
    assert_non_null(strstr(out, "x: added"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "memory", "add", sock, "128M", NULL), 1);
    assert_non_null(strstr(err, "no free memory slot: all 2 slots are used"));
    assert_int_equal(n_memory_devices(f), 2);
    /* a device that is not memory is not removed by "memory del" */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(&out, &err, "device", "add", sock, "virtio-net-pci", "nic1", NULL), 0);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "memory", "del", sock, "nic1", NULL), 2);
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
        assert_true(qmp_conn_execute(f->spare, "cont", NULL, cont_cb, f, NULL));
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
    stopped = qmp(f, "stop", NULL);

    f->conn = qmp_conn_new(f->base, test_qemu_qmp_path(f->qemu), NULL);
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
        qmp_loop_run_until(f->base, &never, 200);
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
    assert_false(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_false(qom_has(f, "/objects", "mem-dimm0"));
    wait_console(f, "HOTPLUG-GUEST: removed memory32");
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
    };
#undef T

    /* HOTPLUG_TEST_FILTER=test_node runs only the tests that match */
    if (g_getenv("HOTPLUG_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("HOTPLUG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
