/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hotplug engine (hotplug-vm.c) against the scripted fake peer: every
 * rule of issue 3's "How an outcome is decided", retries, one operation
 * per device, concurrency, plugs, cleanup, restart takeover; and the
 * deadlines (src/timeout/) and property conversion (hotplug-props.c) it is
 * built on.  Replies and events are QEMU 7.2's own.  Deadlines are short
 * (100-300 ms) so the whole file runs in a few seconds. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "fake-peer.h"
#include "hotplug-props.h"
#include "hotplug-vm.h"
#include "qmp-json.h"
#include "timeout.h"

#define WAIT_MS 5000

/* qom-list /machine/peripheral replies */
#define QOM_TYPE "{\"name\": \"type\", \"type\": \"string\"}"
#define QOM_DEV(id, drv) ", {\"name\": \"" id "\", \"type\": \"child<" drv ">\"}"
#define QOM_LIST(devs) "[" QOM_TYPE devs "]"
#define QOM_EMPTY "[" QOM_TYPE "]"
#define QOM_ARGS "{\"path\": \"/machine/peripheral\"}"

/* event data */
#define DEL_EV(id) "{\"device\": \"" id "\", \"path\": \"/machine/peripheral/" id "\"}"
#define DEL_ID(id) "{\"id\": \"" id "\"}"
#define OST_EV(id, slot_type, source, status)                                                      \
    "{\"info\": {\"device\": \"" id "\", \"source\": " #source ", \"status\": " #status            \
    ", \"slot\": \"1\", \"slot-type\": \"" slot_type "\", \"qom-path\": \"/machine/peripheral/" id \
    "\"}}"

typedef struct {
    struct event_base *base;
    struct event *tick;
    FakePeer *peer;
    QmpConn *conn;
    HotplugVm *vm;
    GPtrArray *trace;       /* "EVENT DEVICE OUTCOME ATTEMPTS" per op event */
    GPtrArray *qemu_events; /* "NAME DEVICE-OF-THE-OP-OR-none" */
    GArray *attempt_us;     /* monotonic time of every ATTEMPT event */
    guint skip;             /* commands of the handshake (qmp_capabilities) */
    guint outcome_received; /* commands the peer had received at the last outcome */
} Fixture;

/* Commands the code under test sent, after the handshake. */
static guint
n_sent(Fixture *f)
{
    return fake_peer_n_received(f->peer) - f->skip;
}

static const char *
sent_text(Fixture *f, guint i)
{
    return fake_peer_received(f->peer, f->skip + i);
}

static const char *
sent_command(Fixture *f, guint i)
{
    return fake_peer_received_command(f->peer, f->skip + i);
}

static void
tick_cb(evutil_socket_t fd, short what, void *opaque)
{
}

static void
fixture_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Fixture *f = opaque;
    HotplugOutcome o = ev == HOTPLUG_OP_EV_ATTEMPT_RESULT ? hotplug_op_get_attempt_outcome(op)
                                                          : hotplug_op_get_outcome(op);

    g_ptr_array_add(f->trace, g_strdup_printf("%s %s %s %u", hotplug_op_event_name(ev),
                                              hotplug_op_get_device(op), hotplug_outcome_name(o),
                                              hotplug_op_get_attempts(op)));
    if (ev == HOTPLUG_OP_EV_ATTEMPT) {
        gint64 now = g_get_monotonic_time();
        g_array_append_val(f->attempt_us, now);
    }
    if (ev == HOTPLUG_OP_EV_OUTCOME || ev == HOTPLUG_OP_EV_LATE)
        f->outcome_received = n_sent(f);
}

static void
fixture_qemu_event_cb(HotplugVm *vm, const QmpEvent *ev, HotplugOp *op, gpointer opaque)
{
    Fixture *f = opaque;

    g_ptr_array_add(f->qemu_events,
                    g_strdup_printf("%s %s", ev->name, op ? hotplug_op_get_device(op) : "none"));
}

static int
setup_with(void **state, gboolean gone_on_close)
{
    static const HotplugVmListener l = {.op = fixture_op_cb, .qemu_event = fixture_qemu_event_cb};
    HotplugVmOptions opts = {.gone_on_close = gone_on_close};
    Fixture *f = g_new0(Fixture, 1);
    g_autoptr(GError) error = NULL;
    int fd = -1;

    f->base = event_base_new();
    f->tick = evtimer_new(f->base, tick_cb, NULL);
    f->peer = fake_peer_new(f->base, &fd);
    fake_peer_greet(f->peer);
    f->conn = qmp_conn_new_fd(f->base, fd, NULL);
    if (!qmp_conn_wait_ready(f->conn, WAIT_MS, &error))
        fail_msg("not ready: %s", error->message);
    f->skip = fake_peer_n_received(f->peer);
    f->vm = hotplug_vm_new("vm1", f->conn, &opts);
    f->trace = g_ptr_array_new_with_free_func(g_free);
    f->qemu_events = g_ptr_array_new_with_free_func(g_free);
    f->attempt_us = g_array_new(FALSE, FALSE, sizeof(gint64));
    hotplug_vm_add_listener(f->vm, &l, f);
    *state = f;
    return 0;
}

/* direct mode: a closed connection ends every pending unplug */
static int
setup(void **state)
{
    return setup_with(state, TRUE);
}

/* a reconnecting daemon */
static int
setup_daemon(void **state)
{
    return setup_with(state, FALSE);
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    hotplug_vm_free(f->vm);
    qmp_conn_close(f->conn);
    qmp_conn_unref(f->conn);
    fake_peer_free(f->peer);
    event_free(f->tick);
    event_base_free(f->base);
    g_ptr_array_unref(f->trace);
    g_ptr_array_unref(f->qemu_events);
    g_array_unref(f->attempt_us);
    g_free(f);
    return 0;
}

static void
loop_once(Fixture *f)
{
    struct timeval tv = {0, 20000};

    evtimer_add(f->tick, &tv);
    event_base_loop(f->base, EVLOOP_ONCE);
    evtimer_del(f->tick);
}

/* Run the loop for ms, whatever happens. */
static void
run_for(Fixture *f, guint ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (g_get_monotonic_time() < end)
        loop_once(f);
}

static void G_GNUC_NORETURN
fail_with_peer(Fixture *f, const char *what)
{
    g_autofree char *why = fake_peer_describe_failures(f->peer);

    fail_msg("%s; fake peer: %s", what, why);
    abort(); /* not reached */
}

#define WAIT_FOR(f, cond)                                                                          \
    do {                                                                                           \
        gint64 end_ = g_get_monotonic_time() + WAIT_MS * 1000;                                     \
        while (!(cond) && g_get_monotonic_time() < end_)                                           \
            loop_once(f);                                                                          \
        if (!(cond))                                                                               \
            fail_with_peer(f, "timed out waiting for " #cond);                                     \
    } while (0)

static void
wait_final(Fixture *f, HotplugOp *op)
{
    WAIT_FOR(f, hotplug_op_is_final(op));
}

static void
assert_peer_done(Fixture *f)
{
    if (!fake_peer_all_done(f->peer))
        fail_with_peer(f, "script not done");
}

/* The trace is exactly the given lines (NULL-terminated). */
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

/* How many of the trace lines start with prefix. */
static guint
trace_count(Fixture *f, const char *prefix)
{
    guint n = 0;

    for (guint i = 0; i < f->trace->len; i++)
        n += g_str_has_prefix(f->trace->pdata[i], prefix);
    return n;
}

static guint
received_count(Fixture *f, const char *cmd)
{
    guint n = 0;

    for (guint i = 0; i < n_sent(f); i++)
        n += g_str_equal(sent_command(f, i), cmd);
    return n;
}

/* The commands received, space-separated. */
static char *
received_commands(Fixture *f)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < n_sent(f); i++)
        g_string_append_printf(s, "%s%s", i ? " " : "", sent_command(f, i));
    return g_string_free(s, FALSE);
}

static void
assert_received(Fixture *f, const char *want)
{
    g_autofree char *got = received_commands(f);

    if (!g_str_equal(got, want))
        fail_msg("commands on the wire: want \"%s\", got \"%s\"", want, got);
}

static void
assert_contains(const char *text, const char *needle)
{
    if (!text || !strstr(text, needle))
        fail_msg("\"%s\" lacks \"%s\"", text ? text : "(null)", needle);
}

static HotplugOp *
unplug_kind(Fixture *f, HotplugKind kind, const char *device, guint timeout_ms, guint retries,
            guint interval_ms)
{
    HotplugUnplugOptions o = {timeout_ms, retries, interval_ms};
    g_autoptr(GError) error = NULL;
    gboolean attached = TRUE;
    HotplugOp *op = hotplug_vm_unplug(f->vm, kind, device, &o, &attached, &error);

    if (!op)
        fail_msg("unplug %s: %s", device, error->message);
    assert_false(attached);
    return op;
}

static HotplugOp *
unplug(Fixture *f, const char *device, guint timeout_ms)
{
    return unplug_kind(f, HOTPLUG_KIND_DEVICE, device, timeout_ms, 0, 0);
}

static JsonNode *
parse(const char *json)
{
    g_autoptr(GError) error = NULL;
    JsonNode *n = json_from_string(json, &error);

    if (!n)
        fail_msg("bad JSON %s: %s", json, error ? error->message : "empty");
    return n;
}

/* ---- the basic unplug ---------------------------------------------------- */

static void
test_unplug_deleted(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) json = NULL;
    FakeStep *s;
    JsonObject *o;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_event_after(s, "DEVICE_DELETED", DEL_EV("net0"));
    op = unplug(f, "net0", 200);
    assert_int_equal(hotplug_op_get_action(op), HOTPLUG_ACTION_UNPLUG);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_SENDING);
    assert_ptr_equal(hotplug_vm_find_op(f->vm, "net0"), op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_attempts(op), 1);
    assert_null(hotplug_op_get_error(op));
    assert_null(hotplug_vm_find_op(f->vm, "net0"));
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1", "outcome net0 deleted 1",
                 NULL);
    /* compact JSON: QEMU reads one byte per syscall */
    assert_int_equal(n_sent(f), 1);
    assert_contains(sent_text(f, 0), "\"execute\":\"device_del\",\"arguments\":{\"id\":\"net0\"}");
    assert_null(strstr(sent_text(f, 0), ": "));

    json = hotplug_op_to_json(op);
    o = json_node_get_object(json);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_string_equal(qmp_json_get_string(o, "device"), "net0");
    assert_string_equal(qmp_json_get_string(o, "action"), "unplug");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_int_equal(qmp_json_get_int_default(o, "timeout_ms", -1), 200);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) >= 0);
    assert_false(json_object_has_member(o, "error"));
    assert_int_equal(hotplug_outcome_exit_code(hotplug_op_get_outcome(op)), 0);
    {
        /* the text hotplugd writes out is that object */
        g_autoptr(GString) text = g_string_new(NULL);
        g_autoptr(GString) again = g_string_new(NULL);

        hotplug_op_write_json(op, text);
        qmp_json_write_node(again, json);
        assert_string_equal(text->str, again->str);
    }
    assert_peer_done(f);
}

/* DEVICE_DELETED before device_del's reply: the record exists already,
 * the event decides, the late reply changes nothing. */
static void
test_event_before_reply(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("kbd0"));
    fake_peer_step_event_before(s, "DEVICE_DELETED", DEL_EV("kbd0"));
    fake_peer_step_hold(s);
    op = unplug(f, "kbd0", 200);
    wait_final(f, op);
    assert_true(fake_peer_step_is_held(s));
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    fake_peer_step_release(f->peer, s);
    run_for(f, 300); /* past the deadline too: it must not fire */
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_DONE);
    assert_trace(f, "request kbd0 pending 0", "attempt kbd0 pending 1", "outcome kbd0 deleted 1",
                 NULL);
    assert_received(f, "device_del");
    assert_peer_done(f);
}

/* virtio-net-pci: /machine/peripheral/net0/virtio-backend goes first; it
 * only asks QEMU (qom-list); net0's own event completes the unplug. */
static void
test_child_path_event(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *confirm;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    confirm = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(confirm, QOM_LIST(QOM_DEV("net0", "virtio-net-pci")));
    op = unplug(f, "net0", 5000);
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_WAITING);
    fake_peer_event(f->peer, "DEVICE_DELETED",
                    "{\"path\": \"/machine/peripheral/net0/virtio-backend\"}");
    WAIT_FOR(f, fake_peer_step_received(confirm));
    run_for(f, 50);
    assert_false(hotplug_op_is_final(op));
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_WAITING);
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("net0"));
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1", "outcome net0 deleted 1",
                 NULL);
    assert_int_equal(f->qemu_events->len, 2);
    assert_string_equal(f->qemu_events->pdata[0], "DEVICE_DELETED net0");
    assert_string_equal(f->qemu_events->pdata[1], "DEVICE_DELETED net0");
    assert_received(f, "device_del qom-list");
    assert_peer_done(f);
}

/* As QEMU really sends them: both events back to back, the confirmation
 * answered after the outcome.  One outcome. */
static void
test_child_then_own_event_together(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_event_after(s, "DEVICE_DELETED",
                               "{\"path\": \"/machine/peripheral/net0/virtio-backend\"}");
    fake_peer_step_event_after(s, "DEVICE_DELETED", DEL_EV("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_EMPTY);
    op = unplug(f, "net0", 5000);
    wait_final(f, op);
    run_for(f, 50);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(trace_count(f, "outcome"), 1);
    assert_int_equal(received_count(f, "device_del"), 1);
}

/* x86 vCPU: only /machine/peripheral/cpu1/lapic is announced; qom-list
 * without cpu1 decides. */
static void
test_vcpu_lapic_only(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("cpu1"));
    fake_peer_step_event_after(s, "DEVICE_DELETED",
                               "{\"path\": \"/machine/peripheral/cpu1/lapic\"}");
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("cpu2", "qemu64-x86_64-cpu")));
    op = unplug_kind(f, HOTPLUG_KIND_VCPU, "cpu1", 0, 0, 0);
    assert_int_equal(hotplug_op_get_timeout_ms(op), 60000); /* the class default */
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_true(hotplug_op_get_elapsed_ms(op) < 5000);
    assert_received(f, "device_del qom-list");
    assert_peer_done(f);
}

/* ---- ACPI _OST -------------------------------------------------------------- */

/* 0x84 is "in progress": no outcome, nothing asked. */
static void
test_ost_in_progress(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("cpu1"));
    fake_peer_step_event_after(s, "ACPI_DEVICE_OST", OST_EV("cpu1", "CPU", 3, 132));
    fake_peer_step_event_after(s, "ACPI_DEVICE_OST", OST_EV("cpu1", "CPU", 259, 132));
    op = unplug_kind(f, HOTPLUG_KIND_VCPU, "cpu1", 5000, 0, 0);
    WAIT_FOR(f, f->qemu_events->len == 2);
    run_for(f, 100);
    assert_false(hotplug_op_is_final(op));
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_WAITING);
    assert_string_equal(f->qemu_events->pdata[0], "ACPI_DEVICE_OST cpu1");
    assert_received(f, "device_del");
    /* then the eject succeeds: status 0 is a hint, qom-list confirms */
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_EMPTY);
    fake_peer_event(f->peer, "ACPI_DEVICE_OST", OST_EV("cpu1", "CPU", 259, 0));
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_received(f, "device_del qom-list");
    assert_peer_done(f);
}

/* status 0 while the device is still there: keep waiting. */
static void
test_ost_success_still_present(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("dimm1"));
    fake_peer_step_event_after(s, "ACPI_DEVICE_OST", OST_EV("dimm1", "DIMM", 3, 0));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("dimm1", "pc-dimm")));
    op = unplug_kind(f, HOTPLUG_KIND_MEMORY, "dimm1", 5000, 0, 0);
    WAIT_FOR(f, fake_peer_step_received(s));
    run_for(f, 50);
    assert_false(hotplug_op_is_final(op));
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_WAITING);
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("dimm1"));
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_peer_done(f);
}

/* 1, 0x80, 0x82 with source 3, and 0x82 with source 0x103: guest-error,
 * once qom-list says the device is still there.  Tracked afterwards. */
static void
test_ost_failures(void **state)
{
    static const struct {
        const char *dev, *event, *detail;
    } cases[] = {
        {"dimm1", OST_EV("dimm1", "DIMM", 3, 130), "source 0x3 status 0x82"},
        {"dimm2", OST_EV("dimm2", "DIMM", 3, 128), "source 0x3 status 0x80"},
        {"dimm3", OST_EV("dimm3", "DIMM", 3, 1), "source 0x3 status 0x1"},
        {"cpu1", OST_EV("cpu1", "CPU", 259, 130), "source 0x103 status 0x82"},
        {"cpu2", OST_EV("cpu2", "CPU", 3, 131), "source 0x3 status 0x83"},
    };
    Fixture *f = *state;

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(HotplugOp) op = NULL;
        g_autofree char *args = g_strdup_printf("{\"id\": \"%s\"}", cases[i].dev);
        g_autofree char *present = g_strdup_printf(
            "[" QOM_TYPE ", {\"name\": \"%s\", \"type\": \"child<pc-dimm>\"}]", cases[i].dev);
        FakeStep *s = fake_peer_expect(f->peer, "device_del", args);

        fake_peer_step_event_after(s, "ACPI_DEVICE_OST", cases[i].event);
        s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
        fake_peer_step_return(s, present);
        op = unplug_kind(f, cases[i].dev[0] == 'c' ? HOTPLUG_KIND_VCPU : HOTPLUG_KIND_MEMORY,
                         cases[i].dev, 5000, 0, 0);
        wait_final(f, op);
        assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_GUEST_ERROR);
        assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
        assert_ptr_equal(hotplug_vm_find_op(f->vm, cases[i].dev), op);
        assert_contains(hotplug_op_get_detail(op), cases[i].detail);
        assert_int_equal(hotplug_outcome_exit_code(HOTPLUG_OUTCOME_GUEST_ERROR), 4);
        assert_true(fake_peer_step_received(s));
    }
    assert_int_equal(received_count(f, "device_del"), G_N_ELEMENTS(cases));
    assert_int_equal(received_count(f, "qom-list"), G_N_ELEMENTS(cases));
    assert_peer_done(f);
}

/* _OST for another source (1: device check) is not about the eject. */
static void
test_ost_other_source_ignored(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("dimm1"));
    fake_peer_step_event_after(s, "ACPI_DEVICE_OST", OST_EV("dimm1", "DIMM", 1, 128));
    op = unplug_kind(f, HOTPLUG_KIND_MEMORY, "dimm1", 5000, 0, 0);
    WAIT_FOR(f, f->qemu_events->len == 1);
    run_for(f, 100);
    assert_false(hotplug_op_is_final(op));
    assert_received(f, "device_del");
    assert_peer_done(f);
}

/* ---- guest refusal events ------------------------------------------------- */

static void
test_device_unplug_guest_error(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_event_after(s, "DEVICE_UNPLUG_GUEST_ERROR", DEL_EV("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    op = unplug(f, "net0", 5000);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_GUEST_ERROR);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    assert_contains(hotplug_op_get_detail(op), "DEVICE_UNPLUG_GUEST_ERROR");
    /* QEMU removes it later after all: deleted-late */
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("net0"));
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1",
                 "outcome net0 guest-error 1", "late net0 deleted-late 1", NULL);
    assert_null(hotplug_vm_find_op(f->vm, "net0"));
    assert_peer_done(f);
}

static void
test_mem_unplug_error(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("dimm1"));
    fake_peer_step_event_after(s, "MEM_UNPLUG_ERROR",
                               "{\"device\": \"dimm1\", \"msg\": \"Memory hotunplug rejected "
                               "by the guest for device dimm1\"}");
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("dimm1", "pc-dimm")));
    op = unplug_kind(f, HOTPLUG_KIND_MEMORY, "dimm1", 5000, 0, 0);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_GUEST_ERROR);
    assert_contains(hotplug_op_get_detail(op),
                    "MEM_UNPLUG_ERROR: Memory hotunplug rejected by the guest");
    assert_peer_done(f);
}

/* A refusal, but QEMU's tree says it is gone: the confirmed state wins. */
static void
test_guest_error_but_gone(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_event_after(s, "DEVICE_UNPLUG_GUEST_ERROR", DEL_EV("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_EMPTY);
    op = unplug(f, "net0", 5000);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_peer_done(f);
}

/* ---- device_del's own answers -------------------------------------------- */

static void
test_already_in_process(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_error(s, "GenericError", "Device net0 is already in the process of unplug");
    op = unplug(f, "net0", 5000);
    WAIT_FOR(f, hotplug_op_get_state(op) != HOTPLUG_OP_SENDING);
    run_for(f, 50);
    assert_false(hotplug_op_is_final(op));
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_WAITING);
    assert_null(hotplug_op_get_error(op));
    assert_true(hotplug_op_get_remaining_ms(op) > 4000);
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("net0"));
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_attempts(op), 1);
    assert_peer_done(f);
}

static void
test_not_found_first_attempt(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) json = NULL;
    JsonObject *err;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("nosuch"));
    fake_peer_step_error(s, "DeviceNotFound", "Device 'nosuch' not found");
    op = unplug(f, "nosuch", 200);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_DONE);
    assert_non_null(hotplug_op_get_error(op));
    assert_string_equal(qmp_error_class_name(hotplug_op_get_error(op)), "DeviceNotFound");
    assert_string_equal(hotplug_op_get_error(op)->message, "Device 'nosuch' not found");
    json = hotplug_op_to_json(op);
    err = qmp_json_get_object(json_node_get_object(json), "error");
    assert_non_null(err);
    assert_string_equal(qmp_json_get_string(err, "class"), "DeviceNotFound");
    assert_string_equal(qmp_json_get_string(err, "desc"), "Device 'nosuch' not found");
    assert_int_equal(hotplug_outcome_exit_code(HOTPLUG_OUTCOME_REJECTED), 3);
    assert_trace(f, "request nosuch pending 0", "attempt nosuch pending 1",
                 "outcome nosuch rejected 1", NULL);
    run_for(f, 300); /* no deadline left behind */
    assert_received(f, "device_del");
    assert_peer_done(f);
}

/* Attempt 1 ends not-deleted; attempt 2 hears DeviceNotFound: it existed,
 * so now it is gone. */
static void
test_not_found_on_retry(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_error(s, "DeviceNotFound", "Device 'net0' not found");
    op = unplug_kind(f, HOTPLUG_KIND_DEVICE, "net0", 150, 1, 100);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_attempts(op), 2);
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1",
                 "attempt-result net0 not-deleted 1", "attempt net0 pending 2",
                 "outcome net0 deleted 2", NULL);
    assert_received(f, "device_del qom-list device_del");
    assert_peer_done(f);
}

/* A device whose earlier unplug is tracked (QEMU had it): DeviceNotFound
 * for a new request means it is gone, not that the request was wrong. */
static void
test_not_found_after_tracked(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op1 = NULL;
    g_autoptr(HotplugOp) op2 = NULL;
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_error(s, "DeviceNotFound", "Device 'net0' not found");
    op1 = unplug(f, "net0", 100);
    wait_final(f, op1);
    assert_int_equal(hotplug_op_get_outcome(op1), HOTPLUG_OUTCOME_NOT_DELETED);
    op2 = unplug(f, "net0", 100);
    assert_true(op2 != op1);
    wait_final(f, op2);
    assert_int_equal(hotplug_op_get_outcome(op2), HOTPLUG_OUTCOME_DELETED);
    assert_peer_done(f);
}

/* ---- deadlines ------------------------------------------------------------- */

static void
test_deadline_not_deleted_then_late(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GPtrArray) ops = NULL;
    gint64 t0 = g_get_monotonic_time(), took;
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    op = unplug(f, "net0", 200);
    wait_final(f, op);
    took = (g_get_monotonic_time() - t0) / 1000;
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    assert_int_equal(hotplug_outcome_exit_code(HOTPLUG_OUTCOME_NOT_DELETED), 5);
    assert_contains(hotplug_op_get_detail(op), "still present after 200 ms");
    assert_true(took >= 200);
    assert_true(took < 2000);
    assert_true(hotplug_op_get_elapsed_ms(op) >= 200);
    /* still tracked */
    assert_ptr_equal(hotplug_vm_find_op(f->vm, "net0"), op);
    ops = hotplug_vm_list_ops(f->vm);
    assert_int_equal(ops->len, 1);
    assert_ptr_equal(ops->pdata[0], op);
    run_for(f, 100);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("net0"));
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
    assert_null(hotplug_vm_find_op(f->vm, "net0"));
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1",
                 "outcome net0 not-deleted 1", "late net0 deleted-late 1", NULL);
    assert_received(f, "device_del qom-list");
    assert_peer_done(f);
}

/* The event never came, but QEMU no longer has the device: deleted. */
static void
test_deadline_missed_event(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net1", "e1000")));
    op = unplug(f, "net0", 200);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_true(hotplug_op_get_elapsed_ms(op) >= 200);
    assert_null(hotplug_vm_find_op(f->vm, "net0"));
    assert_peer_done(f);
}

/* ---- RESET, SHUTDOWN, hang-up ----------------------------------------------- */

static void
test_reset_rechecks(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op0 = NULL;
    g_autoptr(HotplugOp) op1 = NULL;
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_expect(f->peer, "device_del", DEL_ID("net1"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net1", "e1000")));
    op0 = unplug(f, "net0", 5000);
    op1 = unplug(f, "net1", 5000);
    WAIT_FOR(f, hotplug_op_get_state(op0) == HOTPLUG_OP_WAITING &&
                    hotplug_op_get_state(op1) == HOTPLUG_OP_WAITING);
    run_for(f, 30);
    assert_received(f, "device_del device_del");
    fake_peer_event(f->peer, "RESET", "{\"guest\": true, \"reason\": \"guest-reset\"}");
    wait_final(f, op0);
    run_for(f, 50);
    assert_int_equal(hotplug_op_get_outcome(op0), HOTPLUG_OUTCOME_DELETED);
    assert_false(hotplug_op_is_final(op1));
    assert_int_equal(hotplug_op_get_state(op1), HOTPLUG_OP_WAITING);
    assert_string_equal(f->qemu_events->pdata[0], "RESET none");
    assert_received(f, "device_del device_del qom-list");
    assert_peer_done(f);
}

static void
test_shutdown_vm_gone(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op0 = NULL;
    g_autoptr(HotplugOp) op1 = NULL;
    g_autoptr(HotplugOp) op2 = NULL;
    FakeStep *s, *held;

    /* net2 ends not-deleted first and is tracked */
    fake_peer_expect(f->peer, "device_del", DEL_ID("net2"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net2", "e1000")));
    op2 = unplug(f, "net2", 100);
    wait_final(f, op2);
    assert_int_equal(hotplug_op_get_state(op2), HOTPLUG_OP_TRACKED);

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    held = fake_peer_expect(f->peer, "device_del", DEL_ID("net1"));
    fake_peer_step_hold(held);
    op0 = unplug(f, "net0", 5000);
    op1 = unplug(f, "net1", 5000);
    WAIT_FOR(f, hotplug_op_get_state(op0) == HOTPLUG_OP_WAITING && fake_peer_step_is_held(held));
    assert_int_equal(hotplug_op_get_state(op1), HOTPLUG_OP_SENDING);
    fake_peer_event(f->peer, "SHUTDOWN", "{\"guest\": false, \"reason\": \"host-qmp-quit\"}");
    WAIT_FOR(f, hotplug_op_is_final(op0) && hotplug_op_is_final(op1));
    assert_int_equal(hotplug_op_get_outcome(op0), HOTPLUG_OUTCOME_VM_GONE);
    assert_int_equal(hotplug_op_get_outcome(op1), HOTPLUG_OUTCOME_VM_GONE);
    assert_contains(hotplug_op_get_detail(op0), "QEMU shut down");
    assert_int_equal(hotplug_outcome_exit_code(HOTPLUG_OUTCOME_VM_GONE), 6);
    /* the tracked one keeps its outcome and is watched no more */
    assert_int_equal(hotplug_op_get_outcome(op2), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_state(op2), HOTPLUG_OP_DONE);
    assert_null(hotplug_vm_find_op(f->vm, "net0"));
    assert_null(hotplug_vm_find_op(f->vm, "net1"));
    assert_null(hotplug_vm_find_op(f->vm, "net2"));
    fake_peer_step_release(f->peer, held);
    run_for(f, 50);
    assert_int_equal(trace_count(f, "outcome net0"), 1);
    assert_int_equal(trace_count(f, "outcome net1"), 1);
    assert_int_equal(trace_count(f, "outcome net2"), 1);
    assert_int_equal(trace_count(f, "late"), 0);
}

/* Direct mode: the socket closes, every pending unplug is vm-gone, once. */
static void
test_hangup_vm_gone(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op0 = NULL;
    g_autoptr(HotplugOp) op1 = NULL;
    g_autoptr(HotplugOp) op2 = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) left = NULL;
    FakeStep *s, *held;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    held = fake_peer_expect(f->peer, "device_del", DEL_ID("net1"));
    fake_peer_step_hold(held);
    op0 = unplug(f, "net0", 5000);
    op1 = unplug(f, "net1", 5000);
    WAIT_FOR(f, hotplug_op_get_state(op0) == HOTPLUG_OP_WAITING && fake_peer_step_is_held(held));
    /* and one between attempts */
    fake_peer_expect(f->peer, "device_del", DEL_ID("net2"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net2", "e1000")));
    op2 = unplug_kind(f, HOTPLUG_KIND_DEVICE, "net2", 100, 3, 5000);
    WAIT_FOR(f, hotplug_op_get_state(op2) == HOTPLUG_OP_RETRY_WAIT);

    fake_peer_hangup(f->peer);
    WAIT_FOR(f, hotplug_op_is_final(op0) && hotplug_op_is_final(op1) && hotplug_op_is_final(op2));
    assert_int_equal(hotplug_op_get_outcome(op0), HOTPLUG_OUTCOME_VM_GONE);
    assert_int_equal(hotplug_op_get_outcome(op1), HOTPLUG_OUTCOME_VM_GONE);
    assert_int_equal(hotplug_op_get_outcome(op2), HOTPLUG_OUTCOME_VM_GONE);
    assert_int_equal(hotplug_op_get_attempts(op2), 1);
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_CLOSED);
    run_for(f, 150);
    assert_int_equal(trace_count(f, "outcome"), 3);
    assert_int_equal(trace_count(f, "outcome net0 vm-gone"), 1);
    assert_int_equal(trace_count(f, "outcome net1 vm-gone"), 1);
    assert_int_equal(trace_count(f, "outcome net2 vm-gone"), 1);
    left = hotplug_vm_list_ops(f->vm);
    assert_int_equal(left->len, 0);
    /* a new request says why at once */
    assert_null(hotplug_vm_unplug(f->vm, HOTPLUG_KIND_DEVICE, "net3", NULL, NULL, &error));
    assert_int_equal(error->domain, HOTPLUG_ERROR);
    assert_int_equal(error->code, HOTPLUG_ERROR_VM_GONE);
}

/* A daemon keeps waiting after a hang-up (it reconnects); with no QEMU to
 * confirm against at the deadline, the outcome is vm-gone. */
static void
test_hangup_daemon_waits_for_deadline(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    op = unplug(f, "net0", 300);
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_WAITING);
    fake_peer_hangup(f->peer);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    run_for(f, 50);
    assert_false(hotplug_op_is_final(op));
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_VM_GONE);
    assert_true(hotplug_op_get_elapsed_ms(op) >= 300);
    assert_contains(hotplug_op_get_detail(op), "cannot confirm");
}

/* ---- retries ------------------------------------------------------------------- */

/* --retry 2 --retry-interval 0.3 with a 100 ms deadline: three attempts,
 * each no sooner than 300 ms after the one before; the last decides. */
static void
test_retry_timing(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) json = NULL;
    FakeStep *s;

    for (guint i = 0; i < 3; i++) {
        fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
        s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
        fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    }
    op = unplug_kind(f, HOTPLUG_KIND_DEVICE, "net0", 100, 2, 300);
    assert_int_equal(hotplug_op_get_max_attempts(op), 3);
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_RETRY_WAIT);
    assert_int_equal(hotplug_op_get_attempt_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_false(hotplug_op_is_final(op));
    assert_true(hotplug_op_get_next_attempt_ms(op) > 0);
    assert_true(hotplug_op_get_next_attempt_ms(op) <= 300);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_attempts(op), 3);
    assert_int_equal(f->attempt_us->len, 3);
    for (guint i = 1; i < 3; i++) {
        gint64 gap =
            g_array_index(f->attempt_us, gint64, i) - g_array_index(f->attempt_us, gint64, i - 1);
        print_message("# attempt %u came %.1f ms after attempt %u\n", i + 1, gap / 1000.0, i);
        if (gap < 300000)
            fail_msg("attempt %u only %" G_GINT64_FORMAT " us after the previous one", i + 1, gap);
        assert_true(gap < 1500000);
    }
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1",
                 "attempt-result net0 not-deleted 1", "attempt net0 pending 2",
                 "attempt-result net0 not-deleted 2", "attempt net0 pending 3",
                 "outcome net0 not-deleted 3", NULL);
    json = hotplug_op_to_json(op);
    assert_int_equal(qmp_json_get_int_default(json_node_get_object(json), "attempts", -1), 3);
    assert_int_equal(qmp_json_get_int_default(json_node_get_object(json), "max_attempts", -1), 3);
    assert_peer_done(f);
}

/* A quick refusal: the next attempt still waits the whole interval; the
 * final outcome is the last attempt's (guest-error after not-deleted). */
static void
test_retry_interval_after_fast_refusal(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    gint64 gap;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_event_after(s, "DEVICE_UNPLUG_GUEST_ERROR", DEL_EV("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    op = unplug_kind(f, HOTPLUG_KIND_DEVICE, "net0", 100, 2, 300);
    WAIT_FOR(f, f->attempt_us->len == 2);
    gap = g_array_index(f->attempt_us, gint64, 1) - g_array_index(f->attempt_us, gint64, 0);
    print_message("# attempt 2 came %.1f ms after a refused attempt 1\n", gap / 1000.0);
    if (gap < 300000)
        fail_msg("attempt 2 only %" G_GINT64_FORMAT " us after attempt 1", gap);
    /* attempt 3 is refused by the guest */
    WAIT_FOR(f, f->attempt_us->len == 3);
    fake_peer_event(f->peer, "DEVICE_UNPLUG_GUEST_ERROR", DEL_EV("net0"));
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_GUEST_ERROR);
    assert_int_equal(hotplug_op_get_attempts(op), 3);
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1",
                 "attempt-result net0 guest-error 1", "attempt net0 pending 2",
                 "attempt-result net0 not-deleted 2", "attempt net0 pending 3",
                 "outcome net0 guest-error 3", NULL);
}

/* The retry meets "already in the process of unplug": that attempt waits
 * out its own deadline, and the removal completes it. */
static void
test_retry_already_in_process(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_error(s, "GenericError", "Device net0 is already in the process of unplug");
    fake_peer_step_event_after(s, "DEVICE_DELETED", DEL_EV("net0"));
    op = unplug_kind(f, HOTPLUG_KIND_DEVICE, "net0", 100, 3, 100);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_attempts(op), 2);
    assert_received(f, "device_del qom-list device_del");
    assert_peer_done(f);
}

/* ---- one operation per device, and concurrency ----------------------------------- */

static void
test_second_unplug_attaches(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(HotplugOp) again = NULL;
    g_autoptr(HotplugOp) third = NULL;
    g_autoptr(GError) error = NULL;
    gboolean attached = FALSE;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_hold(s);
    op = unplug(f, "net0", 5000);
    WAIT_FOR(f, fake_peer_step_is_held(s));
    again = hotplug_vm_unplug(f->vm, HOTPLUG_KIND_DEVICE, "net0", NULL, &attached, &error);
    assert_ptr_equal(again, op);
    assert_true(attached);
    fake_peer_step_release(f->peer, s);
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_WAITING);
    attached = FALSE;
    third = hotplug_vm_unplug(f->vm, HOTPLUG_KIND_DEVICE, "net0", NULL, &attached, &error);
    assert_ptr_equal(third, op);
    assert_true(attached);
    run_for(f, 50);
    assert_int_equal(received_count(f, "device_del"), 1);
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("net0"));
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(trace_count(f, "request"), 1);
    assert_int_equal(trace_count(f, "outcome"), 1);
    assert_received(f, "device_del");
    assert_peer_done(f);
}

/* After a tracked outcome, a new request is a new operation with its own
 * device_del. */
static void
test_unplug_after_tracked_is_new(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op1 = NULL;
    g_autoptr(HotplugOp) op2 = NULL;
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_event_after(s, "DEVICE_DELETED", DEL_EV("net0"));
    op1 = unplug(f, "net0", 100);
    wait_final(f, op1);
    op2 = unplug(f, "net0", 5000);
    assert_true(op2 != op1);
    assert_true(hotplug_op_get_id(op2) > hotplug_op_get_id(op1));
    assert_int_equal(hotplug_op_get_state(op1), HOTPLUG_OP_DONE);
    wait_final(f, op2);
    assert_int_equal(hotplug_op_get_outcome(op2), HOTPLUG_OUTCOME_DELETED);
    /* the old one keeps its outcome; it is not reported late */
    assert_int_equal(hotplug_op_get_outcome(op1), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(trace_count(f, "late"), 0);
    assert_peer_done(f);
}

static void
test_unplug_while_plugging_is_busy(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) plug = NULL;
    g_autoptr(GError) error = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device_add", "{\"driver\": \"e1000\", \"id\": \"net0\"}");
    fake_peer_step_hold(s);
    plug = hotplug_vm_plug_device(f->vm, "e1000", "net0", NULL, &error);
    assert_non_null(plug);
    WAIT_FOR(f, fake_peer_step_is_held(s));
    assert_null(hotplug_vm_unplug(f->vm, HOTPLUG_KIND_DEVICE, "net0", NULL, NULL, &error));
    assert_int_equal(error->code, HOTPLUG_ERROR_BUSY);
    g_clear_error(&error);
    assert_null(hotplug_vm_plug_device(f->vm, "e1000", "net0", NULL, &error));
    assert_int_equal(error->code, HOTPLUG_ERROR_BUSY);
    fake_peer_step_release(f->peer, s);
    wait_final(f, plug);
    assert_int_equal(hotplug_op_get_outcome(plug), HOTPLUG_OUTCOME_ADDED);
    assert_received(f, "device_add");
    assert_peer_done(f);
}

/* Four unplugs: all four device_del on the wire before any reply. */
static void
test_concurrent_unplugs(void **state)
{
    static const char *const devs[] = {"net0", "net1", "net2", "net3"};
    Fixture *f = *state;
    HotplugOp *ops[4];
    FakeStep *steps[4];

    for (guint i = 0; i < 4; i++) {
        g_autofree char *args = g_strdup_printf("{\"id\": \"%s\"}", devs[i]);
        steps[i] = fake_peer_expect(f->peer, "device_del", args);
        fake_peer_step_hold(steps[i]);
    }
    for (guint i = 0; i < 4; i++)
        ops[i] = unplug(f, devs[i], 5000);
    WAIT_FOR(f, n_sent(f) == 4);
    assert_int_equal(fake_peer_n_unanswered(f->peer), 4);
    assert_int_equal(fake_peer_max_unanswered(f->peer), 4);
    for (guint i = 0; i < 4; i++)
        assert_int_equal(hotplug_op_get_state(ops[i]), HOTPLUG_OP_SENDING);
    for (guint i = 4; i-- > 0;)
        fake_peer_step_release(f->peer, steps[i]);
    WAIT_FOR(f, hotplug_op_get_state(ops[0]) == HOTPLUG_OP_WAITING &&
                    hotplug_op_get_state(ops[3]) == HOTPLUG_OP_WAITING);
    for (guint i = 0; i < 4; i++) {
        g_autofree char *ev = g_strdup_printf("{\"device\": \"%s\", \"path\": "
                                              "\"/machine/peripheral/%s\"}",
                                              devs[i], devs[i]);
        fake_peer_event(f->peer, "DEVICE_DELETED", ev);
    }
    for (guint i = 0; i < 4; i++) {
        wait_final(f, ops[i]);
        assert_int_equal(hotplug_op_get_outcome(ops[i]), HOTPLUG_OUTCOME_DELETED);
        hotplug_op_unref(ops[i]);
    }
    assert_received(f, "device_del device_del device_del device_del");
    assert_peer_done(f);
}

/* ---- plugs ----------------------------------------------------------------------- */

/* QEMU 7.2's device-list-properties for e1000 (descriptions trimmed). */
#define E1000_PROPS                                                                                \
    "[{\"name\": \"failover_pair_id\", \"type\": \"str\"}, "                                       \
    "{\"name\": \"romfile\", \"type\": \"str\"}, "                                                 \
    "{\"default-value\": -1, \"name\": \"addr\", \"description\": \"Slot and optional function "   \
    "number, example: 06.0 or 06\", \"type\": \"int32\"}, "                                        \
    "{\"default-value\": 4294967295, \"name\": \"romsize\", \"type\": \"uint32\"}, "               \
    "{\"default-value\": 1, \"name\": \"rombar\", \"type\": \"uint32\"}, "                         \
    "{\"default-value\": false, \"name\": \"multifunction\", \"description\": \"on/off\", "        \
    "\"type\": \"bool\"}, "                                                                        \
    "{\"default-value\": true, \"name\": \"mitigation\", \"description\": \"on/off\", "            \
    "\"type\": \"bool\"}, "                                                                        \
    "{\"name\": \"netdev\", \"description\": \"ID of a netdev to use as a backend\", "             \
    "\"type\": \"str\"}, "                                                                         \
    "{\"default-value\": true, \"name\": \"autonegotiation\", \"description\": \"on/off\", "       \
    "\"type\": \"bool\"}, "                                                                        \
    "{\"name\": \"mac\", \"description\": \"Ethernet 6-byte MAC Address, example: "                \
    "52:54:00:12:34:56\", \"type\": \"str\"}, "                                                    \
    "{\"name\": \"bootindex\", \"type\": \"int32\"}]"

static HotplugOp *
plug_device(Fixture *f, const char *driver, const char *id, const char *const *props)
{
    g_autoptr(GError) error = NULL;
    HotplugOp *op = hotplug_vm_plug_device(f->vm, driver, id, props, &error);

    if (!op)
        fail_msg("plug %s: %s", id, error->message);
    return op;
}

static void
test_plug_props_converted(void **state)
{
    static const char *const props[] = {"bootindex=1",
                                        "bus=pci.0",
                                        "mitigation=off",
                                        "autonegotiation=on",
                                        "mac=52:54:00:12:34:56",
                                        "romsize=0x40000",
                                        NULL};
    static const char *const props2[] = {"bootindex=2", "multifunction=yes", NULL};
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(HotplugOp) op2 = NULL;
    FakeStep *s;
    const char *sent;

    s = fake_peer_expect(f->peer, "device-list-properties", "{\"typename\": \"e1000\"}");
    fake_peer_step_return(s, E1000_PROPS);
    fake_peer_expect(f->peer, "device_add",
                     "{\"driver\": \"e1000\", \"id\": \"nic1\", \"bootindex\": 1, \"bus\": "
                     "\"pci.0\", \"mitigation\": false, \"autonegotiation\": true, \"mac\": "
                     "\"52:54:00:12:34:56\", \"romsize\": 262144}");
    op = plug_device(f, "e1000", "nic1", props);
    assert_int_equal(hotplug_op_get_action(op), HOTPLUG_ACTION_PLUG);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
    assert_int_equal(hotplug_op_get_attempts(op), 1);
    assert_int_equal(hotplug_outcome_exit_code(HOTPLUG_OUTCOME_ADDED), 0);
    sent = sent_text(f, 1);
    assert_contains(sent, "\"bootindex\":1");
    assert_contains(sent, "\"bus\":\"pci.0\"");
    assert_contains(sent, "\"mitigation\":false");
    assert_contains(sent, "\"autonegotiation\":true");
    /* the types are cached: no second device-list-properties */
    fake_peer_expect(f->peer, "device_add",
                     "{\"driver\": \"e1000\", \"id\": \"nic2\", \"bootindex\": 2, "
                     "\"multifunction\": true}");
    op2 = plug_device(f, "e1000", "nic2", props2);
    wait_final(f, op2);
    assert_int_equal(hotplug_op_get_outcome(op2), HOTPLUG_OUTCOME_ADDED);
    assert_received(f, "device-list-properties device_add device_add");
    assert_trace(f, "request nic1 pending 0", "attempt nic1 pending 1", "outcome nic1 added 1",
                 "request nic2 pending 0", "attempt nic2 pending 1", "outcome nic2 added 1", NULL);
    assert_peer_done(f);
}

/* A PCI address is QEMU's own syntax (hex slot[.fn]): "addr=0x10" must
 * reach QEMU as text; as the number 16 QEMU 7.2 reads it as slot 0x16
 * (device_add goes through QemuOpts) and later QEMUs as devfn 16. */
static void
test_plug_pci_addr_stays_text(void **state)
{
    static const char *const props[] = {"addr=0x10", NULL};
    static const char *const props2[] = {"addr=06.0", NULL};
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(HotplugOp) op2 = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device-list-properties", "{\"typename\": \"e1000\"}");
    fake_peer_step_return(s, E1000_PROPS);
    fake_peer_expect(f->peer, "device_add", "{\"id\": \"nic1\", \"addr\": \"0x10\"}");
    fake_peer_expect(f->peer, "device_add", "{\"id\": \"nic2\", \"addr\": \"06.0\"}");
    op = plug_device(f, "e1000", "nic1", props);
    wait_final(f, op);
    op2 = plug_device(f, "e1000", "nic2", props2);
    wait_final(f, op2);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
    assert_int_equal(hotplug_op_get_outcome(op2), HOTPLUG_OUTCOME_ADDED);
    assert_peer_done(f);
}

/* An unknown property: rejected before anything is sent. */
static void
test_plug_unknown_property(void **state)
{
    static const char *const warm[] = {"bootindex=1", NULL};
    static const char *const bad[] = {"bootindex=1", "nosuch=1", NULL};
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(HotplugOp) cold = NULL;
    g_autoptr(HotplugOp) warmop = NULL;
    g_autoptr(JsonNode) json = NULL;
    const GError *err;
    JsonObject *e;
    FakeStep *s;
    guint before;

    /* cold cache: only the type query goes out */
    s = fake_peer_expect(f->peer, "device-list-properties", "{\"typename\": \"e1000\"}");
    fake_peer_step_return(s, E1000_PROPS);
    cold = plug_device(f, "e1000", "nic1", bad);
    wait_final(f, cold);
    assert_int_equal(hotplug_op_get_outcome(cold), HOTPLUG_OUTCOME_REJECTED);
    run_for(f, 50);
    assert_received(f, "device-list-properties");

    /* warm cache: nothing at all */
    fake_peer_expect(f->peer, "device_add", "{\"id\": \"nic2\"}");
    warmop = plug_device(f, "e1000", "nic2", warm);
    wait_final(f, warmop);
    before = n_sent(f);
    op = plug_device(f, "e1000", "nic3", bad);
    assert_true(hotplug_op_is_final(op)); /* decided at once */
    run_for(f, 50);
    assert_int_equal(n_sent(f), before);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_int_equal(hotplug_op_get_attempts(op), 0);
    assert_null(hotplug_vm_find_op(f->vm, "nic3"));
    err = hotplug_op_get_error(op);
    assert_non_null(err);
    assert_int_equal(err->domain, HOTPLUG_ERROR);
    assert_int_equal(err->code, HOTPLUG_ERROR_BAD_PROPERTY);
    assert_contains(err->message, "e1000 has no property 'nosuch'");
    assert_contains(err->message, "bootindex");
    assert_contains(hotplug_op_get_detail(op), "nothing was sent");
    json = hotplug_op_to_json(op);
    e = qmp_json_get_object(json_node_get_object(json), "error");
    assert_string_equal(qmp_json_get_string(e, "class"), "InvalidProperty");
    assert_received(f, "device-list-properties device_add");
    assert_peer_done(f);
}

/* A driver QEMU does not know: values go as text and QEMU's error is the
 * answer. */
static void
test_plug_unknown_driver(void **state)
{
    static const char *const props[] = {"bootindex=1", NULL};
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "device-list-properties", "{\"typename\": \"nosuch\"}");
    fake_peer_step_error(s, "GenericError", "Device type 'nosuch' not found");
    s = fake_peer_expect(f->peer, "device_add", "{\"driver\": \"nosuch\", \"bootindex\": \"1\"}");
    fake_peer_step_error(s, "GenericError", "'nosuch' is not a valid device model name");
    op = plug_device(f, "nosuch", "x1", props);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_string_equal(qmp_error_class_name(hotplug_op_get_error(op)), "GenericError");
    assert_string_equal(hotplug_op_get_error(op)->message,
                        "'nosuch' is not a valid device model name");
    assert_peer_done(f);
}

static GPtrArray *
steps_new(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
}

static void
add_step(GPtrArray *steps, const char *cmd, const char *args, const char *undo,
         const char *undo_args)
{
    g_ptr_array_add(steps, hotplug_step_new(cmd, args ? parse(args) : NULL, undo,
                                            undo_args ? parse(undo_args) : NULL));
}

/* Step 4 fails: steps 2 and 1 are undone, newest first; a step without an
 * undo is skipped, a failing undo noted and the next one still runs. */
static void
test_composite_plug_undo(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GError) error = NULL;
    GPtrArray *steps = steps_new();
    FakeStep *s;

    add_step(steps, "object-add", "{\"qom-type\": \"iothread\", \"id\": \"iot1\"}", "object-del",
             "{\"id\": \"iot1\"}");
    add_step(steps, "netdev_add", "{\"type\": \"user\", \"id\": \"hostnet1\"}", "netdev_del",
             "{\"id\": \"hostnet1\"}");
    add_step(steps, "qom-set",
             "{\"path\": \"/objects/iot1\", \"property\": \"poll-max-ns\", \"value\": 0}", NULL,
             NULL);
    add_step(steps, "device_add",
             "{\"driver\": \"virtio-net-pci\", \"id\": \"net1\", \"netdev\": \"hostnet1\", "
             "\"bus\": \"pci.9\"}",
             "device_del", "{\"id\": \"net1\"}");
    fake_peer_expect(f->peer, "object-add", "{\"id\": \"iot1\"}");
    fake_peer_expect(f->peer, "netdev_add", "{\"id\": \"hostnet1\"}");
    fake_peer_expect(f->peer, "qom-set", NULL);
    s = fake_peer_expect(f->peer, "device_add", "{\"id\": \"net1\"}");
    fake_peer_step_error(s, "GenericError", "Bus 'pci.9' not found");
    s = fake_peer_expect(f->peer, "netdev_del", "{\"id\": \"hostnet1\"}");
    fake_peer_step_error(s, "GenericError", "Device 'hostnet1' not found");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"iot1\"}");
    op = hotplug_vm_plug(f->vm, HOTPLUG_KIND_DEVICE, "net1", steps, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_string_equal(qmp_error_class_name(hotplug_op_get_error(op)), "GenericError");
    assert_string_equal(hotplug_op_get_error(op)->message, "Bus 'pci.9' not found");
    assert_contains(hotplug_op_get_detail(op), "step 4 of 4 (device_add) failed");
    assert_contains(hotplug_op_get_detail(op), "undo netdev_del failed");
    /* the outcome came after the last undo */
    assert_int_equal(f->outcome_received, 6);
    assert_received(f, "object-add netdev_add qom-set device_add netdev_del object-del");
    assert_peer_done(f);
}

static void
test_composite_plug_ok(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GError) error = NULL;
    GPtrArray *steps = steps_new();

    add_step(steps, "netdev_add", "{\"type\": \"user\", \"id\": \"hostnet1\"}", "netdev_del",
             "{\"id\": \"hostnet1\"}");
    add_step(steps, "device_add", "{\"driver\": \"e1000\", \"id\": \"net1\"}", "device_del",
             "{\"id\": \"net1\"}");
    fake_peer_expect(f->peer, "netdev_add", "{\"type\": \"user\", \"id\": \"hostnet1\"}");
    fake_peer_expect(f->peer, "device_add", "{\"driver\": \"e1000\", \"id\": \"net1\"}");
    op = hotplug_vm_plug(f->vm, HOTPLUG_KIND_DEVICE, "net1", steps, &error);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
    assert_null(hotplug_op_get_error(op));
    assert_received(f, "netdev_add device_add");
    assert_peer_done(f);
}

/* ---- cleanup after an unplug -------------------------------------------------------- */

static void
test_cleanup_before_outcome(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    GPtrArray *cleanup = steps_new();
    FakeStep *s, *last;

    s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_step_event_after(s, "DEVICE_DELETED", DEL_EV("net0"));
    fake_peer_expect(f->peer, "netdev_del", "{\"id\": \"hostnet0\"}");
    last = fake_peer_expect(f->peer, "object-del", "{\"id\": \"iot0\"}");
    fake_peer_step_hold(last);
    add_step(cleanup, "netdev_del", "{\"id\": \"hostnet0\"}", NULL, NULL);
    add_step(cleanup, "object-del", "{\"id\": \"iot0\"}", NULL, NULL);
    op = unplug(f, "net0", 5000);
    hotplug_op_set_cleanup(op, cleanup);
    WAIT_FOR(f, fake_peer_step_is_held(last));
    run_for(f, 50);
    assert_false(hotplug_op_is_final(op));
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_CLEANUP);
    fake_peer_step_release(f->peer, last);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(f->outcome_received, 3);
    assert_received(f, "device_del netdev_del object-del");
    /* each cleanup step is announced (a journal stores it) before it goes */
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1", "step net0 pending 1",
                 "step net0 pending 1", "outcome net0 deleted 1", NULL);
    assert_peer_done(f);
}

/* A tracked unplug completed later: cleanup first, then deleted-late. */
static void
test_cleanup_before_late(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    GPtrArray *cleanup = steps_new();
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    s = fake_peer_expect(f->peer, "netdev_del", "{\"id\": \"hostnet0\"}");
    fake_peer_step_error(s, "GenericError", "Device 'hostnet0' not found");
    add_step(cleanup, "netdev_del", "{\"id\": \"hostnet0\"}", NULL, NULL);
    op = unplug(f, "net0", 100);
    hotplug_op_set_cleanup(op, cleanup);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("net0"));
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
    assert_int_equal(f->outcome_received, 3);
    assert_contains(hotplug_op_get_detail(op), "cleanup netdev_del failed");
    assert_trace(f, "request net0 pending 0", "attempt net0 pending 1",
                 "outcome net0 not-deleted 1", "step net0 pending 1", "late net0 deleted-late 1",
                 NULL);
    assert_received(f, "device_del qom-list netdev_del");
    assert_peer_done(f);
}

/* ---- device list --------------------------------------------------------------------- */

typedef struct {
    gboolean done;
    JsonNode *devices;
} DevicesResult;

static void
devices_cb(HotplugVm *vm, JsonNode *devices, const GError *error, gpointer opaque)
{
    DevicesResult *r = opaque;

    r->done = TRUE;
    assert_null(error);
    r->devices = json_node_ref(devices);
}

static void
test_query_devices_pending(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    g_autofree char *want = NULL;
    DevicesResult r = {0};
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000") QOM_DEV("xhci", "qemu-xhci")));
    op = unplug(f, "net0", 5000);
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_WAITING);
    assert_true(hotplug_vm_query_devices(f->vm, devices_cb, &r, &error));
    WAIT_FOR(f, r.done);
    text = json_to_string(r.devices, FALSE);
    want = g_strdup_printf(
        "[{\"id\":\"net0\",\"type\":\"e1000\",\"pending\":{\"op\":%" G_GUINT64_FORMAT
        ",\"action\":\"unplug\",\"state\":\"waiting\","
        "\"attempts\":1}},{\"id\":\"xhci\",\"type\":\"qemu-xhci\","
        "\"pending\":null}]",
        hotplug_op_get_id(op));
    assert_string_equal(text, want);
    assert_peer_done(f);
    json_node_unref(r.devices);
}

/* ---- restart takeover (hotplug_vm_adopt) ------------------------------------------------ */

static HotplugOp *
adopt(Fixture *f, HotplugAction action, const char *device, HotplugOutcome tracked,
      gint64 deadline_in_ms)
{
    gint64 now = g_get_real_time();
    HotplugAdopt a = {
        .id = 900,
        .kind = HOTPLUG_KIND_DEVICE,
        .action = action,
        .device = device,
        .attempts = 1,
        .max_attempts = 1,
        .timeout_ms = 300,
        .retry_interval_ms = 0,
        .start_wall_us = now - 100000,
        .deadline_wall_us = deadline_in_ms < 0 ? -1 : now + deadline_in_ms * 1000,
        .tracked = tracked,
    };
    g_autoptr(GError) error = NULL;
    HotplugOp *op = hotplug_vm_adopt(f->vm, &a, &error);

    if (!op)
        fail_msg("adopt %s: %s", device, error->message);
    assert_int_equal(hotplug_op_get_id(op), 900);
    return op;
}

/* Present: it waits for its remaining deadline, then not-deleted. */
static void
test_adopt_present_waits(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    gint64 t0 = g_get_monotonic_time(), took;
    FakeStep *probe, *s;

    probe = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(probe, QOM_LIST(QOM_DEV("net0", "e1000")));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    op = adopt(f, HOTPLUG_ACTION_UNPLUG, "net0", HOTPLUG_OUTCOME_NONE, 200);
    WAIT_FOR(f, fake_peer_step_received(probe));
    run_for(f, 50);
    assert_false(hotplug_op_is_final(op));
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_WAITING);
    wait_final(f, op);
    took = (g_get_monotonic_time() - t0) / 1000;
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    assert_true(took >= 200);
    assert_true(took < 2000);
    assert_true(hotplug_op_get_elapsed_ms(op) >= 300); /* counted from the original request */
    assert_received(f, "qom-list qom-list");
    assert_peer_done(f);
}

/* Its deadline passed while the daemon was down: decided at once. */
static void
test_adopt_deadline_passed(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;

    fake_peer_auto(f->peer, "qom-list", QOM_LIST(QOM_DEV("net0", "e1000")));
    op = adopt(f, HOTPLUG_ACTION_UNPLUG, "net0", HOTPLUG_OUTCOME_NONE, -1000);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_true(hotplug_op_get_elapsed_ms(op) < 2000);
    assert_int_equal(received_count(f, "device_del"), 0);
}

static void
test_adopt_gone_deleted(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_EMPTY);
    op = adopt(f, HOTPLUG_ACTION_UNPLUG, "net0", HOTPLUG_OUTCOME_NONE, 5000);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_trace(f, "outcome net0 deleted 1", NULL);
    assert_peer_done(f);
}

static void
test_adopt_tracked_deleted_late(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_EMPTY);
    op = adopt(f, HOTPLUG_ACTION_UNPLUG, "net0", HOTPLUG_OUTCOME_NOT_DELETED, -1);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
    assert_trace(f, "late net0 deleted-late 1", NULL);
    assert_peer_done(f);
}

/* A composite plug cut short by a restart (step 2 of 3 on the wire): the
 * device is not there, so the steps that may be in QEMU are undone, newest
 * first; the one that never arrived answers "not found", which is no
 * failure. */
static void
test_adopt_plug_rolled_back(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GError) error = NULL;
    GPtrArray *steps = steps_new();
    HotplugAdopt a = {
        .id = 900, .kind = HOTPLUG_KIND_DISK, .action = HOTPLUG_ACTION_PLUG, .device = "d1",
        .attempts = 1, .max_attempts = 1, .start_wall_us = g_get_real_time(),
        .deadline_wall_us = -1, .steps_sent = 2,
    };
    FakeStep *s;

    add_step(steps, "blockdev-add", "{\"node-name\": \"d1-file\"}", "blockdev-del",
             "{\"node-name\": \"d1-file\"}");
    add_step(steps, "object-add", "{\"qom-type\": \"iothread\", \"id\": \"d1-iothread0\"}",
             "object-del", "{\"id\": \"d1-iothread0\"}");
    add_step(steps, "device_add", "{\"driver\": \"virtio-blk-pci\", \"id\": \"d1\"}", NULL, NULL);
    a.steps = steps;
    assert_non_null(hotplug_vm_instance(f->vm));
    a.instance = hotplug_vm_instance(f->vm);
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_EMPTY);
    s = fake_peer_expect(f->peer, "object-del", "{\"id\": \"d1-iothread0\"}");
    fake_peer_step_error(s, "GenericError", "object 'd1-iothread0' not found");
    fake_peer_expect(f->peer, "blockdev-del", "{\"node-name\": \"d1-file\"}");
    op = hotplug_vm_adopt(f->vm, &a, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_null(strstr(hotplug_op_get_detail(op), "failed"));
    assert_received(f, "qom-list object-del blockdev-del");
    assert_peer_done(f);
}

/* An unplug whose device went before the restart, its first cleanup step
 * done and the second on the wire: the cleanup resumes at the second. */
static void
test_adopt_cleanup_resumes(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GError) error = NULL;
    GPtrArray *cleanup = steps_new();
    HotplugAdopt a = {
        .id = 900, .kind = HOTPLUG_KIND_DISK, .action = HOTPLUG_ACTION_UNPLUG, .device = "d1",
        .attempts = 1, .max_attempts = 1, .timeout_ms = 5000,
        .start_wall_us = g_get_real_time(), .deadline_wall_us = -1, .cleanup_done = 1,
    };
    FakeStep *s;

    add_step(cleanup, "blockdev-del", "{\"node-name\": \"d1-fmt\"}", NULL, NULL);
    add_step(cleanup, "blockdev-del", "{\"node-name\": \"d1-file\"}", NULL, NULL);
    add_step(cleanup, "object-del", "{\"id\": \"d1-iothread0\"}", NULL, NULL);
    a.cleanup = cleanup;
    a.instance = hotplug_vm_instance(f->vm);
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_EMPTY);
    s = fake_peer_expect(f->peer, "blockdev-del", "{\"node-name\": \"d1-file\"}");
    fake_peer_step_error(s, "GenericError", "Failed to find node with node-name='d1-file'");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"d1-iothread0\"}");
    op = hotplug_vm_adopt(f->vm, &a, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_null(hotplug_op_get_detail(op));
    assert_received(f, "qom-list blockdev-del object-del");
    assert_peer_done(f);
}

/* Stopped while a disk's unplug asked QEMU what the disk owns, before
 * device_del: rejected, nothing sent, no deadline waited for. */
static void
test_adopt_unplug_never_sent(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GError) error = NULL;
    HotplugAdopt a = {
        .id = 900, .kind = HOTPLUG_KIND_DISK, .action = HOTPLUG_ACTION_UNPLUG, .device = "d1",
        .attempts = 0, .max_attempts = 1, .timeout_ms = 5000,
        .start_wall_us = g_get_real_time(), .deadline_wall_us = -1,
    };

    op = hotplug_vm_adopt(f->vm, &a, &error);
    assert_non_null(op);
    assert_true(hotplug_op_is_final(op));
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_contains(hotplug_op_get_detail(op), "nothing was sent");
    run_for(f, 50);
    assert_received(f, "");
    assert_peer_done(f);
}

/* Taken over, but the QEMU that answers is not the one the op was sent to:
 * vm-gone at once, nothing asked or undone; a tracked one gets vm-gone as
 * its late outcome, never deleted-late. */
static void
test_adopt_other_instance(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL, tracked = NULL;
    g_autoptr(GError) error = NULL;
    HotplugAdopt a = {
        .id = 900, .kind = HOTPLUG_KIND_DEVICE, .action = HOTPLUG_ACTION_UNPLUG, .device = "net0",
        .attempts = 1, .max_attempts = 1, .timeout_ms = 5000,
        .start_wall_us = g_get_real_time(), .deadline_wall_us = -1, .instance = "1:1",
    };

    assert_non_null(hotplug_vm_instance(f->vm));
    assert_string_not_equal(hotplug_vm_instance(f->vm), "1:1");
    op = hotplug_vm_adopt(f->vm, &a, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_VM_GONE);
    assert_contains(hotplug_op_get_detail(op), "restarted");
    a.id = 901;
    a.device = "net1";
    a.tracked = HOTPLUG_OUTCOME_NOT_DELETED;
    tracked = hotplug_vm_adopt(f->vm, &a, &error);
    assert_non_null(tracked);
    WAIT_FOR(f, hotplug_op_get_state(tracked) == HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(tracked), HOTPLUG_OUTCOME_VM_GONE);
    assert_trace(f, "outcome net0 vm-gone 1", "late net1 vm-gone 1", NULL);
    assert_received(f, "");
    assert_peer_done(f);
}

static void
test_adopt_tracked_still_present(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    op = adopt(f, HOTPLUG_ACTION_UNPLUG, "net0", HOTPLUG_OUTCOME_GUEST_ERROR, -1);
    WAIT_FOR(f, fake_peer_step_received(s));
    run_for(f, 400);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_GUEST_ERROR);
    assert_int_equal(f->trace->len, 0);
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("net0"));
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
    assert_peer_done(f);
}

static void
test_adopt_plug(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) present = NULL;
    g_autoptr(HotplugOp) absent = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    present = adopt(f, HOTPLUG_ACTION_PLUG, "net0", HOTPLUG_OUTCOME_NONE, -1);
    wait_final(f, present);
    assert_int_equal(hotplug_op_get_outcome(present), HOTPLUG_OUTCOME_ADDED);
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_return(s, QOM_LIST(QOM_DEV("net0", "e1000")));
    absent = adopt(f, HOTPLUG_ACTION_PLUG, "net1", HOTPLUG_OUTCOME_NONE, -1);
    wait_final(f, absent);
    assert_int_equal(hotplug_op_get_outcome(absent), HOTPLUG_OUTCOME_REJECTED);
    assert_contains(hotplug_op_get_detail(absent), "not present");
    assert_received(f, "qom-list qom-list");
    assert_peer_done(f);
}

/* ---- src/timeout ------------------------------------------------------------------------ */

typedef struct {
    guint fired;
    gint64 fired_us;
    gint64 early_us;        /* the most any firing came before its instant */
    TimeoutDeadline *other; /* cancelled by this one's firing */
    gint64 when_us;
} Fired;

static void
fired_cb(TimeoutDeadline *d, gpointer opaque)
{
    Fired *r = opaque;

    r->fired++;
    r->fired_us = g_get_monotonic_time();
    if (r->when_us > 0)
        r->early_us = MAX(r->early_us, r->when_us - r->fired_us);
    if (r->other)
        timeout_deadline_cancel(r->other);
}

static void
count_cb(TimeoutDeadline *d, gpointer opaque)
{
    (*(guint *)opaque)++;
}

/* 10,000 armed deadlines: an idle loop iteration does not touch them and
 * nothing fires; the loop sleeps until the first one is due. */
static void
test_timeout_idle_cost(void **state)
{
    enum { N = 10000, ITER = 1000 };
    struct event_base *base = event_base_new();
    TimeoutDeadline **d = g_new0(TimeoutDeadline *, N);
    TimeoutDeadline *first;
    guint fired = 0, loops = 0;
    Fired r = {0};
    gint64 t0, per_empty, per_full;

    t0 = g_get_monotonic_time();
    for (guint i = 0; i < ITER; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    per_empty = (g_get_monotonic_time() - t0) * 1000 / ITER; /* ns */
    for (guint i = 0; i < N; i++) {
        d[i] = timeout_deadline_new(base, count_cb, &fired);
        timeout_deadline_arm(d[i], 60000 + i);
    }
    t0 = g_get_monotonic_time();
    for (guint i = 0; i < ITER; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    per_full = (g_get_monotonic_time() - t0) * 1000 / ITER;
    print_message("# idle loop iteration: %.2f us with no deadline, %.2f us with %d armed\n",
                  per_empty / 1000.0, per_full / 1000.0, N);
    assert_int_equal(fired, 0);
    assert_true(timeout_deadline_is_armed(d[N - 1]));
    assert_true(per_full < 1000000); /* under 1 ms even under valgrind */

    /* one blocking wait sleeps until the first due deadline: no wakeups
     * in between (two extra allowed: libevent's coarse clock may wake a
     * few ms early, and the deadline then waits out the rest) */
    first = timeout_deadline_new(base, fired_cb, &r);
    timeout_deadline_arm(first, 100);
    r.when_us = timeout_deadline_when(first);
    t0 = g_get_monotonic_time();
    while (!r.fired && g_get_monotonic_time() - t0 < 2000000) {
        event_base_loop(base, EVLOOP_ONCE);
        loops++;
    }
    print_message("# a 100 ms deadline among %d: %u loop wakeup(s), fired after %.1f ms\n", N,
                  loops, (r.fired_us - t0) / 1000.0);
    assert_int_equal(r.fired, 1);
    assert_true(loops <= 3);
    assert_int_equal(fired, 0);

    for (guint i = 0; i < N; i++)
        timeout_deadline_free(d[i]);
    timeout_deadline_free(first);
    g_free(d);
    event_base_free(base);
}

/* Thousands firing at once, half of them cancelled: exactly the others. */
static void
test_timeout_many_fire_cancelled_never(void **state)
{
    enum { N = 4000 };
    struct event_base *base = event_base_new();
    TimeoutDeadline **d = g_new0(TimeoutDeadline *, N);
    guint fired_even = 0, fired_odd = 0;
    gint64 t0 = g_get_monotonic_time();

    for (guint i = 0; i < N; i++) {
        d[i] = timeout_deadline_new(base, count_cb, i % 2 ? &fired_odd : &fired_even);
        timeout_deadline_arm(d[i], 50 + i % 7);
    }
    for (guint i = 1; i < N; i += 2)
        timeout_deadline_cancel(d[i]);
    while (fired_even < N / 2 && g_get_monotonic_time() - t0 < 5000000)
        event_base_loop(base, EVLOOP_ONCE);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(fired_even, N / 2);
    assert_int_equal(fired_odd, 0);
    for (guint i = 0; i < N; i++) {
        assert_false(timeout_deadline_is_armed(d[i]));
        assert_int_equal(timeout_deadline_remaining_ms(d[i]), -1);
        timeout_deadline_free(d[i]);
    }
    g_free(d);
    event_base_free(base);
}

static void
test_timeout_cancel(void **state)
{
    struct event_base *base = event_base_new();
    Fired ra = {0}, rb = {0}, rc = {0}, rd = {0};
    TimeoutDeadline *a = timeout_deadline_new(base, fired_cb, &ra);
    TimeoutDeadline *b = timeout_deadline_new(base, fired_cb, &rb);
    TimeoutDeadline *c = timeout_deadline_new(base, fired_cb, &rc);
    TimeoutDeadline *dd = timeout_deadline_new(base, fired_cb, &rd);
    TimeoutDeadline *freed = timeout_deadline_new(base, fired_cb, &rd);
    gint64 t0 = g_get_monotonic_time(), when;

    /* cancelled before it is due */
    timeout_deadline_arm(a, 30);
    assert_true(timeout_deadline_is_armed(a));
    assert_true(timeout_deadline_remaining_ms(a) > 0);
    timeout_deadline_cancel(a);
    assert_false(timeout_deadline_is_armed(a));
    assert_int_equal(timeout_deadline_when(a), -1);
    assert_int_equal(timeout_deadline_remaining_ms(a), -1);
    timeout_deadline_cancel(a); /* twice is fine */
    /* two due at the same instant, each cancelling the other: one fires */
    when = g_get_monotonic_time() + 40000;
    rb.other = c;
    rc.other = b;
    timeout_deadline_arm_at(b, when);
    timeout_deadline_arm_at(c, when);
    /* re-armed later: fires once, at the later time */
    timeout_deadline_arm(dd, 20);
    timeout_deadline_arm(dd, 120);
    /* freed while armed */
    timeout_deadline_arm(freed, 10);
    timeout_deadline_free(freed);
    while (!rd.fired && g_get_monotonic_time() - t0 < 2000000)
        event_base_loop(base, EVLOOP_ONCE);
    for (guint i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(ra.fired, 0);
    assert_int_equal(rb.fired + rc.fired, 1);
    assert_int_equal(rd.fired, 1);
    assert_true(rd.fired_us - t0 >= 120000);
    timeout_deadline_free(a);
    timeout_deadline_free(b);
    timeout_deadline_free(c);
    timeout_deadline_free(dd);
    event_base_free(base);
}

/* A deadline never fires before its instant (g_get_monotonic_time), and
 * lateness is measured. */
static void
test_timeout_never_early(void **state)
{
    enum { N = 60 };
    struct event_base *base = event_base_new();
    TimeoutDeadline *d[N];
    Fired r[N];
    gint64 t0 = g_get_monotonic_time(), worst = 0;
    guint done = 0;

    memset(r, 0, sizeof(r));
    for (guint i = 0; i < N; i++) {
        d[i] = timeout_deadline_new(base, fired_cb, &r[i]);
        timeout_deadline_arm_at(d[i], t0 + 5000 + i * 1370);
        r[i].when_us = timeout_deadline_when(d[i]);
        g_usleep(200);
    }
    while (done < N && g_get_monotonic_time() - t0 < 5000000) {
        event_base_loop(base, EVLOOP_ONCE);
        done = 0;
        for (guint i = 0; i < N; i++)
            done += r[i].fired;
    }
    for (guint i = 0; i < N; i++) {
        assert_int_equal(r[i].fired, 1);
        worst = MAX(worst, r[i].early_us);
        assert_true(timeout_deadline_last_lateness_us(d[i]) >= 0);
        timeout_deadline_free(d[i]);
    }
    print_message("# %d deadlines: the earliest firing came %" G_GINT64_FORMAT
                  " us before its instant\n",
                  N, worst);
    if (worst > 0)
        fail_msg("a deadline fired %" G_GINT64_FORMAT " us before its instant", worst);
    event_base_free(base);
}

static void
test_timeout_lateness(void **state)
{
    struct event_base *base = event_base_new();
    Fired r = {0};
    TimeoutDeadline *d = timeout_deadline_new(base, fired_cb, &r);
    gint64 late;

    /* the loop is busy for 80 ms past a 20 ms deadline */
    timeout_deadline_arm(d, 20);
    g_usleep(100000);
    event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(r.fired, 1);
    late = timeout_deadline_last_lateness_us(d);
    print_message("# lateness of a deadline the loop was 80 ms late for: %.1f ms\n", late / 1000.0);
    assert_true(late >= 75000);
    assert_true(late < 1000000);
    /* due in the past: fires at the next iteration */
    timeout_deadline_arm_at(d, g_get_monotonic_time() - 1000000);
    event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(r.fired, 2);
    assert_true(timeout_deadline_last_lateness_us(d) >= 1000000);
    /* an idle loop: a small lateness */
    timeout_deadline_arm(d, 30);
    while (r.fired < 3)
        event_base_loop(base, EVLOOP_ONCE);
    late = timeout_deadline_last_lateness_us(d);
    print_message("# lateness of a 30 ms deadline on an idle loop: %.2f ms\n", late / 1000.0);
    assert_true(late >= 0);
    assert_true(late < 50000);
    assert_false(timeout_deadline_is_armed(d));
    timeout_deadline_free(d);
    event_base_free(base);
}

static void
test_timeout_policy(void **state)
{
    TimeoutPolicy p;
    TimeoutClass c;

    timeout_policy_init(&p);
    assert_int_equal(p.ms[TIMEOUT_CLASS_PCI], 5000);
    assert_int_equal(p.ms[TIMEOUT_CLASS_PCI_PSERIES], 10000);
    assert_int_equal(p.ms[TIMEOUT_CLASS_CPU], 60000);
    assert_int_equal(p.ms[TIMEOUT_CLASS_MEMORY], 30000);
    for (guint i = 0; i < TIMEOUT_CLASS_COUNT; i++) {
        assert_true(timeout_class_from_name(timeout_class_name(i), &c));
        assert_int_equal(c, i);
    }
    assert_string_equal(timeout_class_name(TIMEOUT_CLASS_PCI_PSERIES), "pci-pseries");
    assert_false(timeout_class_from_name("gpu", &c));
    assert_string_equal(timeout_class_name(TIMEOUT_CLASS_COUNT), "unknown");
}

/* the engine uses the VM's policy per kind */
static void
test_default_deadlines_per_kind(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) pci = NULL;
    g_autoptr(HotplugOp) mem = NULL;

    fake_peer_auto(f->peer, "device_del", "{}");
    pci = unplug_kind(f, HOTPLUG_KIND_DEVICE, "net0", 0, 0, 0);
    mem = unplug_kind(f, HOTPLUG_KIND_MEMORY, "dimm0", 0, 0, 0);
    assert_int_equal(hotplug_op_get_timeout_ms(pci), 5000);
    assert_int_equal(hotplug_op_get_timeout_ms(mem), 30000);
    WAIT_FOR(f, hotplug_op_get_state(mem) == HOTPLUG_OP_WAITING &&
                    hotplug_op_get_state(pci) == HOTPLUG_OP_WAITING);
    assert_true(hotplug_op_get_remaining_ms(pci) > 4000 &&
                hotplug_op_get_remaining_ms(pci) <= 5000);
    assert_true(hotplug_op_get_remaining_ms(mem) > 29000);
}

/* a ppc64 QEMU (pseries) gives PCI-like unplugs the pseries deadline;
 * query-target goes out once, before the first such device_del */
static void
test_default_deadline_pseries(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) pci = NULL;
    g_autoptr(HotplugOp) pci2 = NULL;

    fake_peer_set_arch(f->peer, "ppc64");
    fake_peer_auto(f->peer, "device_del", "{}");
    pci = unplug_kind(f, HOTPLUG_KIND_DEVICE, "net0", 0, 0, 0);
    WAIT_FOR(f, hotplug_op_get_state(pci) == HOTPLUG_OP_WAITING);
    assert_true(hotplug_vm_is_pseries(f->vm));
    assert_int_equal(hotplug_op_get_timeout_ms(pci), 10000);
    assert_true(hotplug_op_get_remaining_ms(pci) > 9000);
    /* an explicit timeout is kept as given */
    pci2 = unplug_kind(f, HOTPLUG_KIND_DEVICE, "net1", 700, 0, 0);
    WAIT_FOR(f, hotplug_op_get_state(pci2) == HOTPLUG_OP_WAITING);
    assert_int_equal(hotplug_op_get_timeout_ms(pci2), 700);
}

/* ---- hotplug-props ------------------------------------------------------------------------ */

static void
assert_value(const char *type, const char *value, const char *want_json)
{
    g_autoptr(JsonNode) n = hotplug_prop_value(type, value);
    g_autofree char *got = json_to_string(n, FALSE);

    if (!g_str_equal(got, want_json))
        fail_msg("%s \"%s\": want %s, got %s", type ? type : "(null)", value, want_json, got);
}

static void
test_prop_value(void **state)
{
    /* integers */
    assert_value("int32", "1", "1");
    assert_value("int32", "-1", "-1");
    assert_value("int32", "+5", "5");
    assert_value("int32", "0", "0");
    assert_value("uint32", "0x40000", "262144");
    assert_value("uint8", "0XfF", "255");
    assert_value("int64", "9223372036854775807", "9223372036854775807");
    assert_value("int64", "-9223372036854775808", "-9223372036854775808");
    assert_value("int64", "9223372036854775808", "\"9223372036854775808\"");
    assert_value("int64", "99999999999999999999999", "\"99999999999999999999999\"");
    assert_value("uint32", "-1", "\"-1\""); /* QEMU says what is wrong */
    assert_value("int32", "abc", "\"abc\"");
    assert_value("int32", "", "\"\"");
    assert_value("int32", "1x", "\"1x\"");
    assert_value("int32", "1.5", "\"1.5\"");
    assert_value("int32", " 1", "\" 1\"");
    assert_value("int32", "1 ", "\"1 \"");
    assert_value("int32", "-", "\"-\"");
    assert_value("int32", "0x", "\"0x\"");
    assert_value("int32", "0x 5", "\"0x 5\"");
    assert_value("int32", "0x+5", "\"0x+5\"");
    assert_value("int32", "0x-1", "\"0x-1\"");
    assert_value("int32", "0xg", "\"0xg\"");
    /* booleans */
    assert_value("bool", "on", "true");
    assert_value("bool", "yes", "true");
    assert_value("bool", "true", "true");
    assert_value("bool", "off", "false");
    assert_value("bool", "no", "false");
    assert_value("bool", "false", "false");
    assert_value("bool", "1", "\"1\"");
    assert_value("bool", "ON", "\"ON\"");
    /* sizes */
    assert_value("size", "512M", "536870912");
    assert_value("size", "1G", "1073741824");
    assert_value("size", "4096", "4096");
    assert_value("size", "2KiB", "2048");
    assert_value("size", "1.5G", "\"1.5G\"");
    assert_value("size", "16777215T", "\"16777215T\""); /* over G_MAXINT64 */
    /* text */
    assert_value("str", "pci.0", "\"pci.0\"");
    assert_value("str", "1", "\"1\"");
    assert_value(NULL, "1", "\"1\"");
    assert_value("OnOffAuto", "on", "\"on\"");
    assert_value("link<iothread>", "iot0", "\"iot0\"");
}

static void
assert_size(const char *text, guint64 want)
{
    guint64 v = 0;

    if (!hotplug_parse_size(text, &v))
        fail_msg("\"%s\" should parse", text);
    if (v != want)
        fail_msg("\"%s\": want %" G_GUINT64_FORMAT ", got %" G_GUINT64_FORMAT, text, want, v);
}

static void
assert_no_size(const char *text)
{
    guint64 v = 12345;

    if (hotplug_parse_size(text, &v))
        fail_msg("\"%s\" should not parse (got %" G_GUINT64_FORMAT ")", text, v);
    assert_int_equal(v, 12345); /* untouched */
}

static void
test_parse_size(void **state)
{
    assert_size("0", 0);
    assert_size("4096", 4096);
    assert_size("1K", 1024);
    assert_size("1k", 1024);
    assert_size("512M", 512ULL << 20);
    assert_size("512m", 512ULL << 20);
    assert_size("1G", 1ULL << 30);
    assert_size("2T", 2ULL << 40);
    assert_size("1MB", 1ULL << 20);
    assert_size("1Mb", 1ULL << 20);
    assert_size("1MiB", 1ULL << 20);
    assert_size("1gib", 1ULL << 30);
    assert_size("18446744073709551615", G_MAXUINT64);
    assert_size("16777215T", 16777215ULL << 40);
    assert_no_size(NULL);
    assert_no_size("");
    assert_no_size("M");
    assert_no_size("-1");
    assert_no_size("+1");
    assert_no_size(" 1");
    assert_no_size("1 M");
    assert_no_size("1.5G");
    assert_no_size("1X");
    assert_no_size("1E");
    assert_no_size("1B");
    assert_no_size("1Mi");
    assert_no_size("1MBB");
    assert_no_size("1MiBx");
    assert_no_size("1iB");
    assert_no_size("18446744073709551616"); /* over 2^64 - 1 */
    assert_no_size("16777216T");            /* 2^64 */
    assert_no_size("17179869184G");         /* 2^64 */
    assert_no_size("99999999999999999999999K");
}

static void
test_props_convert(void **state)
{
    g_autoptr(JsonNode) reply = parse(E1000_PROPS);
    g_autoptr(HotplugPropTypes) types = hotplug_prop_types_new(reply);
    g_autoptr(JsonObject) obj = json_object_new();
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = NULL;
    g_autofree char *text = NULL;
    static const char *const good[] = {"bootindex=1", "bus=pci.0", "romfile=a=b", "mac=", NULL};

    assert_string_equal(hotplug_prop_types_lookup(types, "bootindex"), "int32");
    assert_string_equal(hotplug_prop_types_lookup(types, "bus"), "str"); /* every device */
    assert_string_equal(hotplug_prop_types_lookup(types, "id"), "str");
    assert_null(hotplug_prop_types_lookup(types, "nosuch"));
    assert_true(hotplug_props_convert(types, "e1000", good, obj, &error));
    node = json_node_init_object(json_node_alloc(), obj);
    text = json_to_string(node, FALSE);
    assert_string_equal(text,
                        "{\"bootindex\":1,\"bus\":\"pci.0\",\"romfile\":\"a=b\",\"mac\":\"\"}");

    {
        static const char *const bad[] = {"novalue", NULL};
        g_autoptr(JsonObject) o = json_object_new();
        assert_false(hotplug_props_convert(types, "e1000", bad, o, &error));
        assert_int_equal(error->code, HOTPLUG_ERROR_INVALID);
        assert_contains(error->message, "'novalue' is not PROP=VALUE");
        g_clear_error(&error);
    }
    {
        static const char *const bad[] = {"=1", NULL};
        g_autoptr(JsonObject) o = json_object_new();
        assert_false(hotplug_props_convert(types, "e1000", bad, o, &error));
        assert_int_equal(error->code, HOTPLUG_ERROR_INVALID);
        g_clear_error(&error);
    }
    {
        static const char *const bad[] = {"driver=virtio-net-pci", NULL};
        g_autoptr(JsonObject) o = json_object_new();
        assert_false(hotplug_props_convert(types, "e1000", bad, o, &error));
        assert_int_equal(error->code, HOTPLUG_ERROR_INVALID);
        g_clear_error(&error);
    }
    {
        static const char *const bad[] = {"bootindex=1", "vectors=4", NULL};
        g_autoptr(JsonObject) o = json_object_new();
        assert_false(hotplug_props_convert(types, "e1000", bad, o, &error));
        assert_int_equal(error->code, HOTPLUG_ERROR_BAD_PROPERTY);
        assert_contains(error->message, "e1000 has no property 'vectors' (it has: addr, ");
        g_clear_error(&error);
    }
    {
        /* types unknown: every value as text */
        static const char *const any[] = {"bootindex=1", "vectors=4", NULL};
        g_autoptr(JsonObject) o = json_object_new();
        g_autoptr(JsonNode) n = NULL;
        g_autofree char *t = NULL;
        assert_true(hotplug_props_convert(NULL, "x", any, o, &error));
        n = json_node_init_object(json_node_alloc(), o);
        t = json_to_string(n, FALSE);
        assert_string_equal(t, "{\"bootindex\":\"1\",\"vectors\":\"4\"}");
    }
}


/* ---- a hung QEMU --------------------------------------------------------------- */

/* device_del is never answered: the deadline (from the send) ends it
 * not-deleted, the detail says QEMU did not answer, and it stays tracked. */
static void
test_hung_no_reply(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    gint64 t0 = g_get_monotonic_time(), took;
    FakeStep *s = fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));

    fake_peer_step_hold(s);
    op = unplug(f, "net0", 300);
    wait_final(f, op);
    took = (g_get_monotonic_time() - t0) / 1000;
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    assert_contains(hotplug_op_get_detail(op), "QEMU did not answer device_del within 300 ms");
    assert_contains(hotplug_op_get_detail(op), "state is unknown");
    if (took < 300 || took > 300 + 700)
        fail_msg("ended after %" G_GINT64_FORMAT " ms (deadline 300)", took);
    /* the late reply changes nothing; a late DEVICE_DELETED is deleted-late */
    fake_peer_step_release(f->peer, s);
    run_for(f, 50);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    fake_peer_event(f->peer, "DEVICE_DELETED", DEL_EV("net0"));
    WAIT_FOR(f, hotplug_op_get_state(op) == HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
}

/* device_del answered, then QEMU stops answering: the check after the
 * deadline gets a grace of HOTPLUG_CONFIRM_GRACE_MS, no more. */
static void
test_hung_after_reply(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    gint64 t0 = g_get_monotonic_time(), took;
    FakeStep *s;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    s = fake_peer_expect(f->peer, "qom-list", QOM_ARGS);
    fake_peer_step_hold(s);
    op = unplug(f, "net0", 300);
    wait_final(f, op);
    took = (g_get_monotonic_time() - t0) / 1000;
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    assert_contains(hotplug_op_get_detail(op), "QEMU did not answer whether the device");
    if (took < 300 + HOTPLUG_CONFIRM_GRACE_MS || took > 300 + HOTPLUG_CONFIRM_GRACE_MS + 700)
        fail_msg("ended after %" G_GINT64_FORMAT " ms (deadline 300, grace %u)", took,
                 HOTPLUG_CONFIRM_GRACE_MS);
}

/* A stream of RESET events (each asks for a check) cannot postpone the
 * deadline: the checks coalesce and the first answer after the deadline
 * decides. */
static void
test_reset_storm_deadline(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    gint64 t0 = g_get_monotonic_time(), took, end = t0 + 5 * G_USEC_PER_SEC;

    fake_peer_expect(f->peer, "device_del", DEL_ID("net0"));
    fake_peer_auto(f->peer, "qom-list", QOM_LIST(QOM_DEV("net0", "e1000")));
    op = unplug(f, "net0", 200);
    while (!hotplug_op_is_final(op) && g_get_monotonic_time() < end) {
        for (guint i = 0; i < 5; i++)
            fake_peer_event(f->peer, "RESET", "{\"guest\": true, \"reason\": \"guest-reset\"}");
        loop_once(f);
    }
    took = (g_get_monotonic_time() - t0) / 1000;
    if (!hotplug_op_is_final(op))
        fail_msg("no outcome after 5 s of RESETs (deadline 200 ms): %u qom-list sent",
                 received_count(f, "qom-list"));
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_contains(hotplug_op_get_detail(op), "still present after 200 ms");
    if (took > 200 + HOTPLUG_CONFIRM_GRACE_MS + 500)
        fail_msg("ended after %" G_GINT64_FORMAT " ms (deadline 200)", took);
}

int
main(void)
{
#define F(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define D(fn) cmocka_unit_test_setup_teardown(fn, setup_daemon, teardown)
    const struct CMUnitTest tests[] = {
        F(test_unplug_deleted),
        F(test_event_before_reply),
        F(test_child_path_event),
        F(test_child_then_own_event_together),
        F(test_vcpu_lapic_only),
        F(test_ost_in_progress),
        F(test_ost_success_still_present),
        F(test_ost_failures),
        F(test_ost_other_source_ignored),
        F(test_device_unplug_guest_error),
        F(test_mem_unplug_error),
        F(test_guest_error_but_gone),
        F(test_already_in_process),
        F(test_not_found_first_attempt),
        F(test_not_found_on_retry),
        F(test_not_found_after_tracked),
        F(test_deadline_not_deleted_then_late),
        F(test_deadline_missed_event),
        F(test_hung_no_reply),
        F(test_hung_after_reply),
        D(test_reset_storm_deadline),
        F(test_reset_rechecks),
        F(test_shutdown_vm_gone),
        F(test_hangup_vm_gone),
        D(test_hangup_daemon_waits_for_deadline),
        F(test_retry_timing),
        F(test_retry_interval_after_fast_refusal),
        F(test_retry_already_in_process),
        F(test_second_unplug_attaches),
        F(test_unplug_after_tracked_is_new),
        F(test_unplug_while_plugging_is_busy),
        F(test_concurrent_unplugs),
        F(test_default_deadline_pseries),
        F(test_plug_props_converted),
        F(test_plug_pci_addr_stays_text),
        F(test_plug_unknown_property),
        F(test_plug_unknown_driver),
        F(test_composite_plug_undo),
        F(test_composite_plug_ok),
        F(test_cleanup_before_outcome),
        F(test_cleanup_before_late),
        F(test_query_devices_pending),
        D(test_adopt_present_waits),
        D(test_adopt_deadline_passed),
        D(test_adopt_gone_deleted),
        D(test_adopt_tracked_deleted_late),
        D(test_adopt_plug_rolled_back),
        D(test_adopt_cleanup_resumes),
        D(test_adopt_other_instance),
        D(test_adopt_unplug_never_sent),
        D(test_adopt_tracked_still_present),
        D(test_adopt_plug),
        F(test_default_deadlines_per_kind),
        cmocka_unit_test(test_timeout_idle_cost),
        cmocka_unit_test(test_timeout_many_fire_cancelled_never),
        cmocka_unit_test(test_timeout_cancel),
        cmocka_unit_test(test_timeout_never_early),
        cmocka_unit_test(test_timeout_lateness),
        cmocka_unit_test(test_timeout_policy),
        cmocka_unit_test(test_prop_value),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_props_convert),
    };
#undef F
#undef D
    return cmocka_run_group_tests(tests, NULL, NULL);
}
