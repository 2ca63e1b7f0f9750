/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl vcpu ... against a real pseries guest: qemu-system-ppc64
 * 7.2 -machine pseries -cpu POWER9 under TCG, the ppc64le test guest of
 * tests/guest/build-guest-ppc64.sh (same /init as x86, console hvc0).
 *
 * Its hotpluggable entities are cores (power9_v2.0-spapr-cpu-core, props
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

#include "qemu-helper.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define PPC_QEMU "qemu-system-ppc64"
#define PPC_MACHINE "pseries,cap-cfpc=broken,cap-sbbc=broken,cap-ibs=broken,cap-ccf-assist=off"
#define BOOT_MS 120000
#define REPLY_MS 20000

typedef struct {
    TestQemu *qemu;
    struct event_base *base;
    QmpConn *spare;
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

static char *
guest_dir(void)
{
    const char *env = g_getenv("HOTPLUG_GUEST_PPC64_DIR");

    if (env && *env)
        return g_strdup(env);
    return g_build_filename(g_get_home_dir(), ".cache", "qmp-hotplug", "guest-ppc64", NULL);
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

/* Start the guest paused (so a core can be cold-plugged first); cmdline
 * words go to the kernel. */
static void
start_vm(Fixture *f, const char *cmdline)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = guest_dir();
    g_autofree char *kernel = g_build_filename(dir, "vmlinux", NULL);
    g_autofree char *initrd = g_build_filename(dir, "initrd.img", NULL);
    g_autofree char *append = g_strdup_printf("console=hvc0 quiet%s%s", cmdline ? " " : "",
                                              cmdline ? cmdline : "");
    const char *const extra[] = {
        "-cpu", "POWER9", "-kernel", kernel, "-initrd", initrd, "-append", append, NULL,
    };
    TestQemuOptions opts = {
        .machine = PPC_MACHINE,
        .paused = TRUE,
        .smp = "1,maxcpus=4",
        .mem = "512M",
        .extra_args = extra,
        .qemu_binary = PPC_QEMU,
    };

    if (!g_file_test(kernel, G_FILE_TEST_IS_REGULAR) || !g_file_test(initrd, G_FILE_TEST_IS_REGULAR))
        fail_msg("pseries test guest missing (%s): build it with " TOP_SRCDIR
                 "/tests/guest/build-guest-ppc64.sh",
                 dir);
    f->qemu = test_qemu_start(&opts, &err);
    if (!f->qemu)
        fail_msg("cannot start QEMU: %s", err->message);
    f->spare = qmp_conn_new(f->base, test_qemu_spare_qmp_path(f->qemu), NULL);
    if (!qmp_conn_open(f->spare, &err) || !qmp_conn_wait_ready(f->spare, REPLY_MS, &err))
        fail_msg("spare QMP: %s", err->message);
}

static void
run_and_boot(Fixture *f)
{
    g_autoptr(JsonNode) ret = qmp(f, "cont", NULL);
    g_autoptr(GError) err = NULL;

    if (!test_qemu_wait_console(f->qemu, "HOTPLUG-GUEST-READY", BOOT_MS, &err))
        fail_msg("guest did not boot: %s", err->message);
}

static void
wait_console(Fixture *f, const char *needle)
{
    g_autoptr(GError) err = NULL;

    if (!test_qemu_wait_console(f->qemu, needle, BOOT_MS, &err))
        fail_msg("%s", err->message);
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

static JsonNode *
json_result(const char *out)
{
    g_autofree char *line = g_strstrip(g_strdup(out));
    JsonNode *n;

    if (strchr(line, '\n'))
        fail_msg("more than one line: %s", out);
    n = json_from_string(line, NULL);
    if (!n || !JSON_NODE_HOLDS_OBJECT(n))
        fail_msg("not a JSON object: %s", out);
    return n;
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

/* Plug core 1 (vCPU 1) with hotplugctl; it is cpu-c1. */
static void
plug_core1(Fixture *f)
{
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "enable", test_qemu_qmp_path(f->qemu), "1",
                         NULL),
                     0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "device"), "cpu-c1");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_true(peripheral_has(f, "cpu-c1"));
}

/* The entities are cores; plug one into the running guest and unplug it:
 * deleted (DEVICE_DELETED for the threads first, then the core). */
static void
test_core_plug_unplug(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    g_autoptr(JsonNode) list = NULL;
    JsonArray *ents;
    JsonObject *o, *e1;

    start_vm(f, NULL);
    run_and_boot(f);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "list", test_qemu_qmp_path(f->qemu), NULL),
                     0);
    list = json_result(out);
    o = json_node_get_object(list);
    assert_int_equal(qmp_json_get_int_default(o, "vcpus", -1), 1);
    assert_int_equal(qmp_json_get_int_default(o, "maxcpus", -1), 4);
    ents = qmp_json_get_array(o, "entities");
    e1 = json_array_get_object_element(ents, 1);
    assert_string_equal(qmp_json_get_string(e1, "type"), "power9_v2.0-spapr-cpu-core");
    assert_int_equal(qmp_json_get_int_default(e1, "core-id", -1), 1);
    assert_string_equal(qmp_json_get_string(e1, "device"), "cpu-c1");
    assert_true(qmp_json_get_bool_default(json_array_get_object_element(ents, 0), "boot", FALSE));

    plug_core1(f);
    /* let the guest take the new core in before it is asked to let go */
    g_usleep(3 * G_USEC_PER_SEC);
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "--json", "vcpu", "disable", test_qemu_qmp_path(f->qemu),
                         "1", NULL),
                     0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    printf("MEASURE pseries core unplug: %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_false(peripheral_has(f, "cpu-c1"));

    /* the boot core never goes */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(NULL, &out, "vcpu", "disable", test_qemu_qmp_path(f->qemu), "0", NULL), 2);
    assert_non_null(strstr(out, "is a boot CPU"));
}

/* The guest has offlined cpu0: the hot-plugged core is its last online CPU
 * and it refuses to remove it.  DEVICE_UNPLUG_GUEST_ERROR: guest-error,
 * exit 4, and the core stays. */
static void
test_last_cpu_guest_error(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    start_vm(f, "hp.offcpu0=600");
    plug_core1(f); /* cold-plugged: present when the guest boots */
    run_and_boot(f);
    wait_console(f, "HOTPLUG-GUEST: offline cpu0 for 600s");
    assert_int_equal(ctl(&out, &err, "--json", "vcpu", "disable", test_qemu_qmp_path(f->qemu),
                         "1", NULL),
                     4);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "guest-error");
    assert_string_equal(qmp_json_get_string(o, "kind"), "vcpu");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_non_null(strstr(qmp_json_get_string(o, "detail"), "DEVICE_UNPLUG_GUEST_ERROR"));
    printf("MEASURE pseries guest refusal: %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_true(peripheral_has(f, "cpu-c1"));
}

/* The same, with --retry: the guest brings cpu0 back after a while, and a
 * repeated device_del then succeeds: deleted after several attempts. */
static void
test_last_cpu_retry_deleted(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    start_vm(f, "hp.offcpu0=12");
    plug_core1(f);
    run_and_boot(f);
    wait_console(f, "HOTPLUG-GUEST: offline cpu0 for 12s");
    assert_int_equal(ctl(&out, &err, "--json", "vcpu", "disable", test_qemu_qmp_path(f->qemu),
                         "1", "--retry", "40", "--retry-interval", "1", "--timeout", "10", NULL),
                     0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_true(qmp_json_get_int_default(o, "attempts", -1) >= 2);
    printf("MEASURE pseries retry: %" G_GINT64_FORMAT " attempts, %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "attempts", -1),
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    wait_console(f, "HOTPLUG-GUEST: online cpu0");
    assert_false(peripheral_has(f, "cpu-c1"));
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
