/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl vcpu ... against a real QEMU 7.2 (x86 pc, TCG), with the test
 * guest where the guest must act.
 *
 * Each test starts its own QEMU and its teardown kills it, whatever the
 * test did.  A VM never gets another hot-plug after a vCPU unplug: QEMU
 * 7.2 crashed there (PCI, vCPU and DIMM hot-adds alike).
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

#include "qemu-helper.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define BOOT_MS 90000
#define REPLY_MS 20000

typedef struct {
    TestQemu *qemu;
    struct event_base *base;
    QmpConn *spare; /* the test's own QMP connection */
} Fixture;

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->base = event_base_new();
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    if (f->spare) {
        qmp_conn_close(f->spare);
        qmp_conn_unref(f->spare);
    }
    g_clear_pointer(&f->qemu, test_qemu_free);
    event_base_free(f->base);
    g_free(f);
    return 0;
}

static void
start_vm(Fixture *f, gboolean guest, const char *smp, const char *const *extra)
{
    g_autoptr(GError) err = NULL;
    TestQemuOptions opts = {
        .machine = "pc",
        .with_guest = guest,
        .paused = !guest,
        .smp = smp,
        .mem = "512M,slots=2,maxmem=2G",
        .extra_args = extra,
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

/* Run hotplugctl with argv (NULL-terminated, after the program name);
 * returns the exit status, *out and *err get its output. */
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

/* The JSON objects hotplugctl --json printed, one per line. */
static GPtrArray *
json_lines(const char *out)
{
    GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify)json_node_unref);
    g_auto(GStrv) lines = g_strsplit(out, "\n", -1);

    for (guint i = 0; lines[i]; i++) {
        g_autoptr(GError) err = NULL;
        JsonNode *n;
        if (!*lines[i])
            continue;
        n = json_from_string(lines[i], &err);
        if (!n || !JSON_NODE_HOLDS_OBJECT(n))
            fail_msg("not a JSON object: %s", lines[i]);
        g_ptr_array_add(a, n);
    }
    return a;
}

static JsonObject *
line_obj(GPtrArray *lines, guint i)
{
    assert_true(i < lines->len);
    return json_node_get_object(lines->pdata[i]);
}

/* The result line for device in lines. */
static JsonObject *
result_for(GPtrArray *lines, const char *device)
{
    for (guint i = 0; i < lines->len; i++) {
        JsonObject *o = json_node_get_object(lines->pdata[i]);
        const char *d = qmp_json_get_string(o, "device");
        if (d && g_str_equal(d, device))
            return o;
    }
    fail_msg("no result for %s", device);
    return NULL;
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
    g_autoptr(JsonNode) ret = qmp(f, "query-hotpluggable-cpus", NULL);
    JsonArray *a = json_node_get_array(ret);
    guint n = json_array_get_length(a);
    JsonObject *o;

    assert_true(index < n);
    o = json_array_get_object_element(a, n - 1 - index);
    return g_strdup(qmp_json_get_string(o, "qom-path"));
}

static gboolean
peripheral_has(Fixture *f, const char *id)
{
    g_autoptr(JsonNode) ret = qmp(f, "qom-list", "{\"path\": \"/machine/peripheral\"}");
    JsonArray *a = json_node_get_array(ret);

    for (guint i = 0; i < json_array_get_length(a); i++)
        if (g_str_equal(qmp_json_get_string(json_array_get_object_element(a, i), "name"), id))
            return TRUE;
    return FALSE;
}

static void
wait_console(Fixture *f, const char *needle)
{
    g_autoptr(GError) err = NULL;

    if (!test_qemu_wait_console(f->qemu, needle, BOOT_MS, &err))
        fail_msg("%s", err->message);
}

static void
measure(const char *what, JsonObject *o)
{
    printf("MEASURE vcpu-unplug %s: %" G_GINT64_FORMAT " ms\n", what,
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    fflush(stdout);
}

/* Plug vCPU 1, the guest onlines it, unplug: deleted, and QEMU agrees that
 * the device and the slot are free (no DEVICE_DELETED for the vCPU
 * itself: the confirmation decides). */
static void
test_plug_online_unplug(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL, *path = NULL;
    g_autoptr(GPtrArray) lines = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, TRUE, "1,maxcpus=4", NULL);
    sock = test_qemu_qmp_path(f->qemu);
    assert_int_equal(ctl(&out, &err, "--json", "vcpu", "enable", sock, "1", NULL), 0);
    lines = json_lines(out);
    assert_int_equal(lines->len, 1);
    o = line_obj(lines, 0);
    assert_outcome(o, "plug", "added");
    assert_string_equal(qmp_json_get_string(o, "device"), "cpu-s0-c1-t0");
    path = slot_qom_path(f, 1);
    assert_string_equal(path, "/machine/peripheral/cpu-s0-c1-t0");
    g_clear_pointer(&path, g_free);
    wait_console(f, "HOTPLUG-GUEST: online cpu1");

    /* vcpu list shows it online with its host thread */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "list", sock, NULL), 0);
    g_ptr_array_unref(lines);
    lines = json_lines(out);
    o = line_obj(lines, 0);
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

    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "disable", sock, "1", NULL), 0);
    g_ptr_array_unref(lines);
    lines = json_lines(out);
    assert_int_equal(lines->len, 1);
    o = line_obj(lines, 0);
    assert_outcome(o, "unplug", "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "timeout_ms", -1), 60000);
    measure("single", o);
    /* confirmed by QEMU both ways: no device, and a free slot */
    assert_false(peripheral_has(f, "cpu-s0-c1-t0"));
    path = slot_qom_path(f, 1);
    assert_null(path);
    wait_console(f, "HOTPLUG-GUEST: removed cpu1");
}

/* vcpu set up (the lowest free slots) and down (the highest, concurrently). */
static void
test_set_up_and_down(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(GPtrArray) lines = NULL;
    const char *sock;

    start_vm(f, TRUE, "1,maxcpus=4", NULL);
    sock = test_qemu_qmp_path(f->qemu);
    assert_int_equal(ctl(&out, &err, "--json", "vcpu", "set", sock, "4", NULL), 0);
    lines = json_lines(out);
    assert_int_equal(lines->len, 3);
    assert_outcome(result_for(lines, "cpu-s0-c1-t0"), "plug", "added");
    assert_outcome(result_for(lines, "cpu-s0-c2-t0"), "plug", "added");
    assert_outcome(result_for(lines, "cpu-s0-c3-t0"), "plug", "added");
    wait_console(f, "HOTPLUG-GUEST: online cpu3");
    wait_console(f, "HOTPLUG-GUEST: online cpu2");
    wait_console(f, "HOTPLUG-GUEST: online cpu1");

    /* already there */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "set", sock, "4", NULL), 0);
    assert_non_null(strstr(out, "\"changed\":false"));

    /* down to 2: only cpu3 and cpu2 go, highest first */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "set", sock, "2", NULL), 0);
    g_ptr_array_unref(lines);
    lines = json_lines(out);
    assert_int_equal(lines->len, 2);
    assert_string_equal(qmp_json_get_string(line_obj(lines, 0), "device"), "cpu-s0-c3-t0");
    assert_outcome(result_for(lines, "cpu-s0-c3-t0"), "unplug", "deleted");
    assert_outcome(result_for(lines, "cpu-s0-c2-t0"), "unplug", "deleted");
    measure("set-4-to-2 cpu3", result_for(lines, "cpu-s0-c3-t0"));
    measure("set-4-to-2 cpu2", result_for(lines, "cpu-s0-c2-t0"));
    assert_true(peripheral_has(f, "cpu-s0-c1-t0"));
    assert_false(peripheral_has(f, "cpu-s0-c2-t0"));

    /* never below the boot vCPUs */
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "set", sock, "0", NULL), 2);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "disable", sock, "0", NULL), 2);
    assert_non_null(strstr(err, "is a boot CPU"));

    /* and down to 1 */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "set", sock, "1", NULL), 0);
    g_ptr_array_unref(lines);
    lines = json_lines(out);
    assert_int_equal(lines->len, 1);
    assert_outcome(result_for(lines, "cpu-s0-c1-t0"), "unplug", "deleted");
    measure("set-2-to-1 cpu1", result_for(lines, "cpu-s0-c1-t0"));
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "list", sock, NULL), 0);
    assert_non_null(strstr(out, "\"vcpus\":1,\"maxcpus\":4"));
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
    g_autofree char *out = NULL, *err = NULL, *path = NULL;
    g_autoptr(GPtrArray) lines = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, FALSE, "1,maxcpus=4", numa);
    sock = test_qemu_qmp_path(f->qemu);
    /* the first free slot of node 1 is vCPU 2 */
    assert_int_equal(ctl(&out, &err, "--json", "vcpu", "enable", sock, "--node", "1", NULL), 0);
    lines = json_lines(out);
    o = line_obj(lines, 0);
    assert_outcome(o, "plug", "added");
    assert_string_equal(qmp_json_get_string(o, "device"), "cpu-s0-c2-t0");
    path = slot_qom_path(f, 2);
    assert_string_equal(path, "/machine/peripheral/cpu-s0-c2-t0");
    g_clear_pointer(&path, g_free);
    path = slot_qom_path(f, 1);
    assert_null(path);

    /* the list shows nodes */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "list", sock, NULL), 0);
    g_ptr_array_unref(lines);
    lines = json_lines(out);
    {
        JsonArray *ents = qmp_json_get_array(line_obj(lines, 0), "entities");
        assert_int_equal(qmp_json_get_int_default(json_array_get_object_element(ents, 1), "node",
                                                  -1),
                         0);
        assert_int_equal(qmp_json_get_int_default(json_array_get_object_element(ents, 3), "node",
                                                  -1),
                         1);
    }

    /* a named vCPU on the wrong node, a node without slots, node 1 full */
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "enable", sock, "1", "--node", "1", NULL), 2);
    assert_non_null(strstr(err, "is on NUMA node 0, not 1"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "enable", sock, "--node", "5", NULL), 2);
    assert_non_null(strstr(err, "no vCPU slot on NUMA node 5 (nodes with vCPU slots: 0, 1)"));
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "enable", sock, "3", "--node", "1", NULL),
                     0);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "enable", sock, "--node", "1", NULL), 1);
    assert_non_null(strstr(err, "no free slot on NUMA node 1: 1 asked, 0 free of 2"));
    /* a DIMM on node 1 too */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "memory", "add", sock, "128M", "--node", "1", NULL),
                     0);
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "memory", "list", sock, NULL), 0);
    assert_non_null(strstr(out, "\"id\":\"dimm0\",\"type\":\"dimm\",\"size\":134217728,"
                                "\"node\":1"));
}

/* maxcpus reached, and an unplug QEMU refuses because no guest has switched
 * its ACPI CPU hotplug out of legacy mode. */
static void
test_no_free_slot_and_legacy(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(GPtrArray) lines = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, FALSE, "1,maxcpus=2", NULL);
    sock = test_qemu_qmp_path(f->qemu);
    assert_int_equal(ctl(&out, &err, "vcpu", "set", sock, "2", NULL), 0);
    assert_non_null(strstr(out, "cpu-s0-c1-t0: added"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "set", sock, "3", NULL), 1);
    assert_non_null(strstr(err, "no free slot for 3 vCPUs: the VM has 2 of at most 2 (maxcpus)"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "enable", sock, "1", NULL), 2);
    assert_non_null(strstr(err, "is already plugged"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "enable", sock, "2", NULL), 2);
    assert_non_null(strstr(err, "no vCPU 2: this VM has vCPU ids 0-1"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "vcpu", "enable", sock, NULL), 2);

    /* the guest never ran: QEMU refuses the unplug, and we say why */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(&out, &err, "--json", "vcpu", "disable", sock, "1", NULL), 3);
    lines = json_lines(out);
    o = line_obj(lines, 0);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_string_equal(qmp_json_get_string(qmp_json_get_object(o, "error"), "class"),
                        "GenericError");
    assert_string_equal(qmp_json_get_string(qmp_json_get_object(o, "error"), "desc"),
                        "acpi: device unplug request for not supported device type: "
                        "qemu64-x86_64-cpu");
    assert_non_null(strstr(err, "legacy mode"));
    assert_true(peripheral_has(f, "cpu-s0-c1-t0"));
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
