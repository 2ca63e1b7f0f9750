/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hotplug engine against a real QEMU 7.2 (x86 pc, TCG): one test per
 * outcome, driven through the real `hotplugctl` in direct mode (exit codes
 * and --json), and at the library level where direct mode cannot show it
 * (deleted-late, timings).  The test guest acts where a guest must (ACPI
 * PCI eject); the others run QEMU with -S and no guest.  Each test starts
 * its own QEMU; teardown kills it. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hotplug-vm.h"
#include "qemu-helper.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define BOOT_MS 90000
#define REPLY_MS 20000
#define SEEN_MS 20000

/* hotplugctl run in a thread, while the test acts on QEMU */
typedef struct {
    GPtrArray *argv;
    char *out, *err;
    int status;
    GThread *thread;
} CtlRun;

typedef struct {
    TestQemu *qemu;
    struct event_base *base;
    struct event *tick;
    QmpConn *spare;          /* the test's own QMP connection */
    GPtrArray *spare_events; /* "NAME PATH" of DEVICE_DELETED seen on it */
    /* library level */
    QmpConn *conn;
    HotplugVm *vm;
    GPtrArray *trace;       /* "EVENT DEVICE OUTCOME ATTEMPTS" */
    GHashTable *deleted_us; /* device -> monotonic time of its DEVICE_DELETED */
    CtlRun *run;
} Fixture;

static void
tick_cb(evutil_socket_t fd, short what, void *opaque)
{
}

static void
spare_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    Fixture *f = opaque;

    if (g_str_equal(ev->name, "DEVICE_DELETED"))
        g_ptr_array_add(
            f->spare_events,
            g_strdup_printf("%s %s", ev->name, qmp_json_get_string(ev->data, "path") ?: "?"));
}

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->base = event_base_new();
    f->tick = evtimer_new(f->base, tick_cb, NULL);
    f->spare_events = g_ptr_array_new_with_free_func(g_free);
    f->trace = g_ptr_array_new_with_free_func(g_free);
    f->deleted_us = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    *state = f;
    return 0;
}

static void
ctl_run_free(CtlRun *r)
{
    g_ptr_array_unref(r->argv);
    g_free(r->out);
    g_free(r->err);
    g_free(r);
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
    /* QEMU goes first: a hotplugctl still waiting on it then ends */
    g_clear_pointer(&f->qemu, test_qemu_free);
    if (f->run) {
        g_thread_join(f->run->thread);
        ctl_run_free(f->run);
    }
    event_free(f->tick);
    event_base_free(f->base);
    g_ptr_array_unref(f->spare_events);
    g_ptr_array_unref(f->trace);
    g_hash_table_unref(f->deleted_us);
    g_free(f);
    return 0;
}

static void
start_vm(Fixture *f, gboolean guest, const char *const *extra_args)
{
    static const QmpConnListener l = {.event = spare_event_cb};
    g_autoptr(GError) err = NULL;
    TestQemuOptions opts = {
        .machine = "pc",
        .with_guest = guest,
        .paused = !guest,
        .extra_args = extra_args,
    };
    gint64 t0 = g_get_monotonic_time();

    if (guest && !test_qemu_guest_available(&err))
        fail_msg("%s", err->message);
    f->qemu = test_qemu_start(&opts, &err);
    if (!f->qemu)
        fail_msg("cannot start QEMU: %s", err->message);
    if (guest && !test_qemu_wait_console(f->qemu, "HOTPLUG-GUEST-READY", BOOT_MS, &err))
        fail_msg("guest did not boot: %s", err->message);
    if (guest)
        print_message("# guest booted in %.1f s\n", (g_get_monotonic_time() - t0) / 1e6);
    f->spare = qmp_conn_new(f->base, test_qemu_spare_qmp_path(f->qemu), NULL);
    qmp_conn_add_listener(f->spare, &l, f);
    if (!qmp_conn_open(f->spare, &err) || !qmp_conn_wait_ready(f->spare, REPLY_MS, &err))
        fail_msg("spare QMP: %s", err->message);
}

static JsonNode *
qmp(Fixture *f, const char *cmd, const char *args_json)
{
    g_autoptr(GError) err = NULL;
    JsonNode *args = args_json ? json_from_string(args_json, NULL) : NULL;
    JsonNode *ret = NULL;

    if (args_json && !args)
        fail_msg("bad JSON: %s", args_json);
    if (!qmp_conn_execute_sync(f->spare, cmd, args, &ret, REPLY_MS, &err))
        fail_msg("%s %s: %s", cmd, args_json ? args_json : "", err->message);
    return ret;
}

static void
qmp_ok(Fixture *f, const char *cmd, const char *args_json)
{
    JsonNode *ret = qmp(f, cmd, args_json);

    if (ret)
        json_node_unref(ret);
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

/* Run the loop until cond or ms. */
#define RUN_UNTIL(f, cond, ms)                                                                     \
    do {                                                                                           \
        gint64 end_ = g_get_monotonic_time() + (gint64)(ms)*1000;                                  \
        while (!(cond) && g_get_monotonic_time() < end_) {                                         \
            struct timeval tv_ = {0, 20000};                                                       \
            evtimer_add((f)->tick, &tv_);                                                          \
            event_base_loop((f)->base, EVLOOP_ONCE);                                               \
            evtimer_del((f)->tick);                                                                \
        }                                                                                          \
        if (!(cond))                                                                               \
            fail_msg("timed out after %u ms waiting for %s", (guint)(ms), #cond);                  \
    } while (0)

/* A PCI device at slot (hex), hot-added from the spare connection; with a
 * guest, wait until the guest has seen it (it must, to eject it). */
static void
add_pci(Fixture *f, const char *driver, const char *id, guint slot, gboolean guest)
{
    g_autofree char *args = g_strdup_printf(
        "{\"driver\": \"%s\", \"id\": \"%s\", \"addr\": \"0x%x\"}", driver, id, slot);
    g_autofree char *needle = g_strdup_printf("added pci 0000:00:%02x.0", slot);
    g_autoptr(GError) err = NULL;

    qmp_ok(f, "device_add", args);
    if (guest && !test_qemu_wait_console(f->qemu, needle, SEEN_MS, &err))
        fail_msg("the guest did not see %s: %s", id, err->message);
}

/* ---- hotplugctl ------------------------------------------------------------ */

static GPtrArray *
ctl_argv(va_list ap)
{
    GPtrArray *argv = g_ptr_array_new();
    const char *a;

    g_ptr_array_add(argv, (gpointer)HOTPLUGCTL_PATH);
    while ((a = va_arg(ap, const char *)))
        g_ptr_array_add(argv, (gpointer)a);
    g_ptr_array_add(argv, NULL);
    return argv;
}

static int
ctl_spawn(GPtrArray *argv, char **out, char **err, int *status)
{
    g_autoptr(GError) error = NULL;

    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err,
                      status, &error)) {
        *err = g_strdup_printf("cannot run %s: %s", HOTPLUGCTL_PATH, error->message);
        *status = -1;
    }
    if (g_getenv("HOTPLUG_TEST_VERBOSE"))
        fprintf(stderr, "hotplugctl: status %d\n%s%s", *status, *out ? *out : "", *err ? *err : "");
    return *status;
}

static int
exit_code(int status, const char *err)
{
    if (status == -1 || !WIFEXITED(status))
        fail_msg("hotplugctl did not exit normally (status %d): %s", status, err ? err : "");
    return WEXITSTATUS(status);
}

/* Run hotplugctl ARGS... NULL; returns its exit code. */
static int
ctl(char **out, char **err, ...)
{
    g_autoptr(GPtrArray) argv = NULL;
    g_autofree char *o = NULL, *e = NULL;
    int status = -1, rc;
    va_list ap;

    va_start(ap, err);
    argv = ctl_argv(ap);
    va_end(ap);
    ctl_spawn(argv, &o, &e, &status);
    rc = exit_code(status, e);
    if (out)
        *out = g_steal_pointer(&o);
    if (err)
        *err = g_steal_pointer(&e);
    return rc;
}

static gpointer
ctl_thread(gpointer opaque)
{
    CtlRun *r = opaque;

    ctl_spawn(r->argv, &r->out, &r->err, &r->status);
    return NULL;
}

/* Start hotplugctl ARGS... NULL in a thread; ctl_wait() for its end. */
static void
ctl_start(Fixture *f, ...)
{
    CtlRun *r = g_new0(CtlRun, 1);
    va_list ap;

    va_start(ap, f);
    r->argv = ctl_argv(ap);
    va_end(ap);
    r->status = -1;
    r->thread = g_thread_new("hotplugctl", ctl_thread, r);
    f->run = r;
}

static int
ctl_wait(Fixture *f, char **out)
{
    CtlRun *r = f->run;
    int rc;

    g_thread_join(r->thread);
    f->run = NULL;
    rc = exit_code(r->status, r->err);
    *out = g_steal_pointer(&r->out);
    ctl_run_free(r);
    return rc;
}

/* The one JSON object hotplugctl --json printed. */
static JsonNode *
json_result(const char *out)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *line = g_strstrip(g_strdup(out ? out : ""));
    JsonNode *n;

    if (strchr(line, '\n'))
        fail_msg("more than one line: %s", out);
    n = json_from_string(line, &err);
    if (!n || !JSON_NODE_HOLDS_OBJECT(n))
        fail_msg("not a JSON object: %s", out);
    return n;
}

static void
assert_result(JsonObject *o, const char *device, const char *outcome)
{
    assert_string_equal(qmp_json_get_string(o, "device"), device);
    assert_string_equal(qmp_json_get_string(o, "outcome"), outcome);
    assert_non_null(qmp_json_get_string(o, "vm"));
    assert_true(json_object_has_member(o, "attempts"));
    assert_true(json_object_has_member(o, "elapsed_ms"));
}

/* ---- library level ---------------------------------------------------------- */

static void
vm_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Fixture *f = opaque;
    HotplugOutcome o = ev == HOTPLUG_OP_EV_ATTEMPT_RESULT ? hotplug_op_get_attempt_outcome(op)
                                                          : hotplug_op_get_outcome(op);

    g_ptr_array_add(f->trace, g_strdup_printf("%s %s %s %u", hotplug_op_event_name(ev),
                                              hotplug_op_get_device(op), hotplug_outcome_name(o),
                                              hotplug_op_get_attempts(op)));
}

static void
vm_qemu_event_cb(HotplugVm *vm, const QmpEvent *ev, HotplugOp *op, gpointer opaque)
{
    Fixture *f = opaque;
    const char *path = qmp_json_get_string(ev->data, "path");
    const char *device = qmp_json_get_string(ev->data, "device");
    gint64 *now;

    /* the device's own event, not a child's */
    if (!g_str_equal(ev->name, "DEVICE_DELETED") || !device || !path ||
        !g_str_has_prefix(path, "/machine/peripheral/") || strchr(path + 20, '/'))
        return;
    now = g_new(gint64, 1);
    *now = g_get_monotonic_time();
    g_hash_table_replace(f->deleted_us, g_strdup(device), now);
}

static void
open_vm(Fixture *f)
{
    static const HotplugVmListener l = {.op = vm_op_cb, .qemu_event = vm_qemu_event_cb};
    HotplugVmOptions opts = {.gone_on_close = TRUE};
    g_autoptr(GError) err = NULL;

    f->conn = qmp_conn_new(f->base, test_qemu_qmp_path(f->qemu), NULL);
    if (!qmp_conn_open(f->conn, &err) || !qmp_conn_wait_ready(f->conn, REPLY_MS, &err))
        fail_msg("QMP: %s", err->message);
    f->vm = hotplug_vm_new("vm1", f->conn, &opts);
    hotplug_vm_add_listener(f->vm, &l, f);
}

static HotplugOp *
lib_unplug(Fixture *f, const char *id, guint timeout_ms)
{
    HotplugUnplugOptions o = {.timeout_ms = timeout_ms};
    g_autoptr(GError) err = NULL;
    HotplugOp *op = hotplug_vm_unplug(f->vm, HOTPLUG_KIND_DEVICE, id, &o, NULL, &err);

    if (!op)
        fail_msg("unplug %s: %s", id, err->message);
    return op;
}

static void
assert_trace(Fixture *f, ...)
{
    g_autoptr(GPtrArray) want = g_ptr_array_new();
    gboolean same;
    const char *s;
    va_list ap;

    va_start(ap, f);
    while ((s = va_arg(ap, const char *)))
        g_ptr_array_add(want, (gpointer)s);
    va_end(ap);
    same = want->len == f->trace->len;
    for (guint i = 0; same && i < want->len; i++)
        same = g_str_equal(want->pdata[i], f->trace->pdata[i]);
    if (!same) {
        g_autofree char *a = NULL, *b = NULL;
        g_ptr_array_add(want, NULL);
        g_ptr_array_add(f->trace, NULL);
        a = g_strjoinv("\n  ", (char **)want->pdata);
        b = g_strjoinv("\n  ", (char **)f->trace->pdata);
        fail_msg("trace differs\nwant:\n  %s\ngot:\n  %s", a, b);
    }
}

/* ---- one test per outcome ------------------------------------------------------- */

/* An e1000 the guest ejects: deleted, exit 0. */
static void
test_e1000_deleted(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    g_autoptr(GError) err = NULL;
    JsonObject *o;

    start_vm(f, TRUE, NULL);
    add_pci(f, "e1000", "nic1", 0x3, TRUE);
    assert_int_equal(ctl(&out, NULL, "--json", "device", "del", test_qemu_qmp_path(f->qemu), "nic1",
                         "--timeout", "20", NULL),
                     0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_result(o, "nic1", "deleted");
    assert_string_equal(qmp_json_get_string(o, "action"), "unplug");
    assert_string_equal(qmp_json_get_string(o, "vm"), test_qemu_qmp_path(f->qemu));
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) < 20000);
    assert_false(json_object_has_member(o, "error"));
    print_message("# e1000 unplug with the guest: %" G_GINT64_FORMAT " ms\n",
                  qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_false(peripheral_has(f, "nic1"));
    if (!test_qemu_wait_console(f->qemu, "removed pci 0000:00:03.0", SEEN_MS, &err))
        fail_msg("the guest did not report the removal: %s", err->message);
}

/* The guest paused: not-deleted, exit 5.  At the library level the
 * engine keeps tracking it and reports deleted-late once the guest runs. */
static void
test_e1000_paused_not_deleted_then_late(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    g_autoptr(HotplugOp) op = NULL;
    JsonObject *o;
    gint64 t0;

    start_vm(f, TRUE, NULL);
    add_pci(f, "e1000", "nic1", 0x3, TRUE);
    qmp_ok(f, "stop", NULL);
    assert_int_equal(ctl(&out, NULL, "--json", "device", "del", test_qemu_qmp_path(f->qemu), "nic1",
                         "--timeout", "1", NULL),
                     5);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_result(o, "nic1", "not-deleted");
    assert_string_equal(qmp_json_get_string(o, "state"), "tracked");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) >= 1000);
    assert_true(peripheral_has(f, "nic1"));

    /* library level: the same, then the guest runs again */
    open_vm(f);
    op = lib_unplug(f, "nic1", 1000);
    RUN_UNTIL(f, hotplug_op_is_final(op), REPLY_MS);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    print_message("# second device_del while paused: %s\n",
                  hotplug_op_get_detail(op) ? hotplug_op_get_detail(op) : "(no detail)");
    t0 = g_get_monotonic_time();
    qmp_ok(f, "cont", NULL);
    RUN_UNTIL(f, hotplug_op_get_state(op) == HOTPLUG_OP_DONE, SEEN_MS);
    print_message("# deleted-late %.0f ms after cont\n", (g_get_monotonic_time() - t0) / 1000.0);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
    assert_trace(f, "request nic1 pending 0", "attempt nic1 pending 1",
                 "outcome nic1 not-deleted 1", "late nic1 deleted-late 1", NULL);
    assert_false(peripheral_has(f, "nic1"));
}

/* usb-kbd on qemu-xhci goes at once, no guest needed (VM paused with -S). */
static void
test_usb_kbd_synchronous(void **state)
{
    static const char *const xhci[] = {"-device", "qemu-xhci,id=xhci", NULL};
    Fixture *f = *state;
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    start_vm(f, FALSE, xhci);
    qmp_ok(f, "device_add", "{\"driver\": \"usb-kbd\", \"id\": \"kbd0\", \"bus\": \"xhci.0\"}");
    assert_true(peripheral_has(f, "kbd0"));
    assert_int_equal(ctl(&out, NULL, "--json", "device", "del", test_qemu_qmp_path(f->qemu), "kbd0",
                         "--timeout", "10", NULL),
                     0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_result(o, "kbd0", "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) < 2000);
    assert_false(peripheral_has(f, "kbd0"));
}

/* An id QEMU does not know: rejected, exit 3, QEMU's class and text. */
static void
test_unknown_id_rejected(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL;
    g_autofree char *human = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o, *e;

    start_vm(f, FALSE, NULL);
    assert_int_equal(
        ctl(&out, NULL, "--json", "device", "del", test_qemu_qmp_path(f->qemu), "nosuch", NULL), 3);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_result(o, "nosuch", "rejected");
    e = qmp_json_get_object(o, "error");
    assert_non_null(e);
    assert_string_equal(qmp_json_get_string(e, "class"), "DeviceNotFound");
    assert_string_equal(qmp_json_get_string(e, "desc"), "Device 'nosuch' not found");
    /* and for people */
    assert_int_equal(
        ctl(&human, NULL, "device", "del", test_qemu_qmp_path(f->qemu), "nosuch", NULL), 3);
    if (!strstr(human, "rejected") || !strstr(human, "DeviceNotFound") ||
        !strstr(human, "Device 'nosuch' not found"))
        fail_msg("output lacks the outcome, class or text: %s", human);
}

/* QEMU killed while hotplugctl waits: vm-gone, exit 6. */
static void
test_qemu_killed_vm_gone(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;
    gint64 t0;

    start_vm(f, FALSE, NULL);
    add_pci(f, "e1000", "nic1", 0x3, FALSE); /* no guest: the eject never happens */
    t0 = g_get_monotonic_time();
    ctl_start(f, "--json", "device", "del", test_qemu_qmp_path(f->qemu), "nic1", "--timeout", "30",
              NULL);
    g_usleep(1500000);
    test_qemu_kill(f->qemu);
    assert_int_equal(ctl_wait(f, &out), 6);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_result(o, "nic1", "vm-gone");
    assert_true(g_get_monotonic_time() - t0 < 15 * G_USEC_PER_SEC);
}

/* virtio-net-pci: QEMU announces its virtio-backend child first; the
 * outcome is still deleted (once). */
static void
test_virtio_net_child_event_first(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    start_vm(f, TRUE, NULL);
    add_pci(f, "virtio-net-pci", "vnet0", 0x4, TRUE);
    assert_int_equal(ctl(&out, NULL, "--json", "device", "del", test_qemu_qmp_path(f->qemu),
                         "vnet0", "--timeout", "20", NULL),
                     0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_result(o, "vnet0", "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    /* what QEMU sent, as the spare connection saw it */
    RUN_UNTIL(f, f->spare_events->len >= 2, REPLY_MS);
    assert_int_equal(f->spare_events->len, 2);
    assert_string_equal(f->spare_events->pdata[0],
                        "DEVICE_DELETED /machine/peripheral/vnet0/virtio-backend");
    assert_string_equal(f->spare_events->pdata[1], "DEVICE_DELETED /machine/peripheral/vnet0");
    assert_false(peripheral_has(f, "vnet0"));
}

/* Paused guest, --timeout 1 --retry 3 --retry-interval 1; the test resumes
 * the guest after 1.5 s: a later attempt succeeds. */
static void
test_retry_succeeds_after_resume(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    start_vm(f, TRUE, NULL);
    add_pci(f, "e1000", "nic1", 0x3, TRUE);
    qmp_ok(f, "stop", NULL);
    ctl_start(f, "--json", "device", "del", test_qemu_qmp_path(f->qemu), "nic1", "--timeout", "1",
              "--retry", "3", "--retry-interval", "1", NULL);
    g_usleep(1500000);
    qmp_ok(f, "cont", NULL);
    assert_int_equal(ctl_wait(f, &out), 0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_result(o, "nic1", "deleted");
    print_message("# retry: deleted after %" G_GINT64_FORMAT " attempts, %" G_GINT64_FORMAT " ms\n",
                  qmp_json_get_int_default(o, "attempts", -1),
                  qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_true(qmp_json_get_int_default(o, "attempts", -1) >= 2);
    assert_int_equal(qmp_json_get_int_default(o, "max_attempts", -1), 4);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) >= 1000);
    assert_false(peripheral_has(f, "nic1"));
}

/* device add: bootindex=1 goes out as a number, bus as a string, addr as
 * QEMU's own text (slot 0x10, not 0x16); an unknown property sends
 * nothing. */
static void
test_device_add_props(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL;
    g_autoptr(JsonNode) r = NULL;
    g_autoptr(JsonNode) bootindex = NULL;
    g_autoptr(JsonNode) pci = NULL;
    g_auto(GStrv) lines = NULL;
    const char *add_line = NULL;
    gint64 slot = -1;
    JsonArray *buses, *devs;

    start_vm(f, FALSE, NULL);
    assert_int_equal(ctl(&out, &err, "-v", "-v", "--json", "device", "add",
                         test_qemu_qmp_path(f->qemu), "e1000", "nic9", "bootindex=1", "bus=pci.0",
                         "addr=0x10", "mitigation=off", NULL),
                     0);
    r = json_result(out);
    assert_result(json_node_get_object(r), "nic9", "added");
    lines = g_strsplit(err, "\n", -1);
    for (guint i = 0; lines[i]; i++)
        if (strstr(lines[i], "\"execute\":\"device_add\""))
            add_line = lines[i];
    if (!add_line)
        fail_msg("no device_add in the QMP traffic (-v -v):\n%s", err);
    print_message("# %s\n", g_strstrip((char *)add_line));
    assert_non_null(strstr(add_line, "\"bootindex\":1"));
    assert_non_null(strstr(add_line, "\"bus\":\"pci.0\""));
    assert_non_null(strstr(add_line, "\"addr\":\"0x10\""));
    assert_non_null(strstr(add_line, "\"mitigation\":false"));
    bootindex = qmp(f, "qom-get",
                    "{\"path\": \"/machine/peripheral/nic9\", \"property\": "
                    "\"bootindex\"}");
    assert_int_equal(json_node_get_int(bootindex), 1);
    pci = qmp(f, "query-pci", NULL);
    buses = json_node_get_array(pci);
    devs = qmp_json_get_array(json_array_get_object_element(buses, 0), "devices");
    for (guint i = 0; devs && i < json_array_get_length(devs); i++) {
        JsonObject *d = json_array_get_object_element(devs, i);
        if (g_strcmp0(qmp_json_get_string(d, "qdev_id"), "nic9") == 0)
            slot = qmp_json_get_int_default(d, "slot", -1);
    }
    assert_int_equal(slot, 0x10);

    assert_int_equal(ctl(&out2, &err2, "-v", "-v", "device", "add", test_qemu_qmp_path(f->qemu),
                         "e1000", "nic8", "bootindex=2", "nosuch=1", NULL),
                     2);
    assert_null(strstr(err2, "\"execute\":\"device_add\""));
    if (!strstr(out2, "nosuch") && !strstr(err2, "nosuch"))
        fail_msg("the unknown property is not named: %s%s", out2, err2);
    assert_false(peripheral_has(f, "nic8"));
}

/* ---- measurements ------------------------------------------------------------- */

static int
cmp_gint64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

static gboolean
all_final(HotplugOp **ops, guint n)
{
    for (guint i = 0; i < n; i++)
        if (!hotplug_op_is_final(ops[i]))
            return FALSE;
    return TRUE;
}

/* device_del -> DEVICE_DELETED with the guest (median of 10), and four
 * unplugs sent together against one after another. */
static void
test_measure_latency_and_batching(void **state)
{
    Fixture *f = *state;
    g_autoptr(GArray) lat = g_array_new(FALSE, FALSE, sizeof(gint64));
    g_autoptr(GArray) outc = g_array_new(FALSE, FALSE, sizeof(gint64));
    HotplugOp *ops[4];
    gint64 t0, together_us, apart_us;

    start_vm(f, TRUE, NULL);
    open_vm(f);
    for (guint i = 0; i < 10; i++) {
        g_autofree char *id = g_strdup_printf("lat%u", i);
        g_autoptr(HotplugOp) op = NULL;
        gint64 *when, d;

        add_pci(f, "e1000", id, 0x5 + i, TRUE);
        t0 = g_get_monotonic_time();
        op = lib_unplug(f, id, 20000);
        RUN_UNTIL(f, hotplug_op_is_final(op), REPLY_MS);
        assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
        when = g_hash_table_lookup(f->deleted_us, id);
        assert_non_null(when);
        d = *when - t0;
        g_array_append_val(lat, d);
        d = g_get_monotonic_time() - t0;
        g_array_append_val(outc, d);
    }
    g_array_sort(lat, cmp_gint64);
    g_array_sort(outc, cmp_gint64);
    print_message("# device_del -> DEVICE_DELETED with the guest, 10 e1000: median %.1f ms "
                  "(min %.1f, max %.1f); to the outcome: median %.1f ms\n",
                  (g_array_index(lat, gint64, 4) + g_array_index(lat, gint64, 5)) / 2000.0,
                  g_array_index(lat, gint64, 0) / 1000.0, g_array_index(lat, gint64, 9) / 1000.0,
                  (g_array_index(outc, gint64, 4) + g_array_index(outc, gint64, 5)) / 2000.0);

    /* four together */
    for (guint i = 0; i < 4; i++) {
        g_autofree char *id = g_strdup_printf("tog%u", i);
        add_pci(f, "e1000", id, 0x10 + i, TRUE);
    }
    t0 = g_get_monotonic_time();
    for (guint i = 0; i < 4; i++) {
        g_autofree char *id = g_strdup_printf("tog%u", i);
        ops[i] = lib_unplug(f, id, 20000);
    }
    RUN_UNTIL(f, all_final(ops, 4), REPLY_MS);
    together_us = g_get_monotonic_time() - t0;
    for (guint i = 0; i < 4; i++) {
        assert_int_equal(hotplug_op_get_outcome(ops[i]), HOTPLUG_OUTCOME_DELETED);
        hotplug_op_unref(ops[i]);
    }

    /* four one after another */
    for (guint i = 0; i < 4; i++) {
        g_autofree char *id = g_strdup_printf("seq%u", i);
        add_pci(f, "e1000", id, 0x14 + i, TRUE);
    }
    t0 = g_get_monotonic_time();
    for (guint i = 0; i < 4; i++) {
        g_autofree char *id = g_strdup_printf("seq%u", i);
        g_autoptr(HotplugOp) op = lib_unplug(f, id, 20000);
        RUN_UNTIL(f, hotplug_op_is_final(op), REPLY_MS);
        assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    }
    apart_us = g_get_monotonic_time() - t0;
    print_message("# 4 e1000 unplugs sent together: %.1f ms; one after another: %.1f ms\n",
                  together_us / 1000.0, apart_us / 1000.0);
    assert_true(together_us < apart_us);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_e1000_deleted),
        T(test_e1000_paused_not_deleted_then_late),
        T(test_usb_kbd_synchronous),
        T(test_unknown_id_rejected),
        T(test_qemu_killed_vm_gone),
        T(test_virtio_net_child_event_first),
        T(test_retry_succeeds_after_resume),
        T(test_device_add_props),
        T(test_measure_latency_and_batching),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
