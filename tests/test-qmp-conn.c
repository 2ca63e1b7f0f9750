/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QmpConn against the scripted fake peer (and, for reconnecting, a UNIX
 * socket listener served by the test itself). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib/gstdio.h>

#include "fake-peer.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define WAIT_TIMEOUT_US (5 * G_USEC_PER_SEC)
#define MAX_REPLIES 64

/* ---- log capture ---------------------------------------------------- */

/* Warnings and debug messages of the "qmp" domain, for assertions. */
static GPtrArray *qmp_log;

static GLogWriterOutput
test_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer opaque)
{
    const char *domain = NULL, *message = NULL;

    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "GLIB_DOMAIN"))
            domain = fields[i].value;
        else if (g_str_equal(fields[i].key, "MESSAGE"))
            message = fields[i].value;
    }
    if (qmp_log && domain && message && g_str_equal(domain, "qmp") &&
        (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_MESSAGE))) {
        const char *tag = (level & G_LOG_LEVEL_WARNING)   ? "W"
                          : (level & G_LOG_LEVEL_MESSAGE) ? "M"
                                                          : "D";
        g_ptr_array_add(qmp_log, g_strdup_printf("%s %s", tag, message));
        /* captured messages are for the assertions; QMP_TEST_VERBOSE shows them */
        if (!g_getenv("QMP_TEST_VERBOSE"))
            return G_LOG_WRITER_HANDLED;
    }
    return g_log_writer_default(level, fields, n_fields, opaque);
}

/* The first captured message that starts with prefix, or NULL. */
static const char *
log_first(const char *prefix)
{
    for (guint i = 0; qmp_log && i < qmp_log->len; i++) {
        const char *m = g_ptr_array_index(qmp_log, i);
        if (g_str_has_prefix(m, prefix))
            return m;
    }
    return NULL;
}

static guint
log_count(const char *prefix)
{
    guint n = 0;

    for (guint i = 0; qmp_log && i < qmp_log->len; i++)
        n += g_str_has_prefix(g_ptr_array_index(qmp_log, i), prefix);
    return n;
}

/* ---- fixture -------------------------------------------------------- */

typedef struct Fixture Fixture;

typedef struct {
    Fixture *f;
    guint index;
    guint calls;
    char *ret; /* compact JSON of the return value */
    GError *error;
    char *error_obj; /* compact JSON of the "error" object, for QEMU errors */
    /* optional action inside the callback */
    void (*action)(Fixture *f, guint index);
} Reply;

struct Fixture {
    struct event_base *base;
    struct event *tick;
    FakePeer *peer;
    int client_fd;
    QmpConn *conn;
    guint listener;
    GPtrArray *trace;        /* "state ready", "event X {...}", "reply 3 {...}", "error 3 ..." */
    GArray *states;          /* QmpConnState */
    GPtrArray *state_errors; /* error message or "" per state */
    GArray *state_codes;     /* error code or -1 per state */
    guint n_events;
    guint n_done; /* reply callbacks called */
    Reply replies[MAX_REPLIES];
    /* listener actions */
    guint remove_self_on_event;
    gboolean unref_on_greeting;
};

static void
tick_cb(evutil_socket_t fd, short what, void *opaque)
{
}

static void
loop_once(Fixture *f)
{
    struct timeval tv = {0, 50000};

    evtimer_add(f->tick, &tv);
    event_base_loop(f->base, EVLOOP_ONCE);
    evtimer_del(f->tick);
}

/* Run the loop for ms milliseconds. */
static void
settle(Fixture *f, guint ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;

    while (g_get_monotonic_time() < end)
        loop_once(f);
}

#define WAIT_FOR(f, expr)                                                                          \
    do {                                                                                           \
        gint64 wait_end_ = g_get_monotonic_time() + WAIT_TIMEOUT_US;                               \
        while (!(expr)) {                                                                          \
            if (g_get_monotonic_time() > wait_end_)                                                \
                fail_msg("timed out waiting for %s", #expr);                                       \
            loop_once(f);                                                                          \
        }                                                                                          \
    } while (0)

#define ASSERT_PEER_DONE(f)                                                                        \
    do {                                                                                           \
        if (!fake_peer_all_done((f)->peer)) {                                                      \
            g_autofree char *why_ = fake_peer_describe_failures((f)->peer);                        \
            fail_msg("fake peer: %s", why_);                                                       \
        }                                                                                          \
    } while (0)

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->base = event_base_new();
    f->tick = evtimer_new(f->base, tick_cb, f);
    f->peer = fake_peer_new(f->base, &f->client_fd);
    f->trace = g_ptr_array_new_with_free_func(g_free);
    f->states = g_array_new(FALSE, FALSE, sizeof(QmpConnState));
    f->state_errors = g_ptr_array_new_with_free_func(g_free);
    f->state_codes = g_array_new(FALSE, FALSE, sizeof(int));
    for (guint i = 0; i < MAX_REPLIES; i++) {
        f->replies[i].f = f;
        f->replies[i].index = i;
    }
    qmp_log = g_ptr_array_new_with_free_func(g_free);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    if (f->conn)
        qmp_conn_unref(f->conn);
    else if (f->client_fd >= 0)
        close(f->client_fd);
    fake_peer_free(f->peer);
    for (guint i = 0; i < MAX_REPLIES; i++) {
        g_free(f->replies[i].ret);
        g_free(f->replies[i].error_obj);
        g_clear_error(&f->replies[i].error);
    }
    g_ptr_array_unref(f->trace);
    g_array_unref(f->states);
    g_ptr_array_unref(f->state_errors);
    g_array_unref(f->state_codes);
    event_free(f->tick);
    event_base_free(f->base);
    g_clear_pointer(&qmp_log, g_ptr_array_unref);
    g_free(f);
    return 0;
}

static char *
trace_text(Fixture *f)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < f->trace->len; i++)
        g_string_append_printf(s, "%s\n", (const char *)g_ptr_array_index(f->trace, i));
    return g_string_free(s, FALSE);
}

#define ASSERT_TRACE(f, expected)                                                                  \
    do {                                                                                           \
        g_autofree char *trace_ = trace_text(f);                                                   \
        assert_string_equal(trace_, expected);                                                     \
    } while (0)

static void
listener_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    Fixture *f = opaque;
    g_autoptr(JsonNode) data = json_node_init_object(json_node_alloc(), ev->data);
    g_autofree char *text = qmp_json_to_string(data);

    assert_ptr_equal(conn, f->conn);
    assert_non_null(ev->data);
    f->n_events++;
    g_ptr_array_add(f->trace, g_strdup_printf("event %s %s", ev->name, text));
    if (f->remove_self_on_event && f->n_events == f->remove_self_on_event) {
        qmp_conn_remove_listener(conn, f->listener);
        f->listener = 0;
    }
}

static void
listener_state_cb(QmpConn *conn, QmpConnState state, const GError *error, gpointer opaque)
{
    Fixture *f = opaque;
    int code = error ? error->code : -1;

    g_array_append_val(f->states, state);
    g_array_append_val(f->state_codes, code);
    g_ptr_array_add(f->state_errors, g_strdup(error ? error->message : ""));
    g_ptr_array_add(f->trace, g_strdup_printf("state %s", qmp_conn_state_name(state)));
    if (state == QMP_CONN_GREETING && f->unref_on_greeting) {
        /* the listener owns the connection and drops it */
        QmpConn *c = g_steal_pointer(&f->conn);
        qmp_conn_unref(c);
    }
}

static const QmpConnListener test_listener = {
    .event = listener_event_cb,
    .state = listener_state_cb,
};

static const char *
last_state_error(Fixture *f)
{
    return g_ptr_array_index(f->state_errors, f->state_errors->len - 1);
}

static int
last_state_code(Fixture *f)
{
    return g_array_index(f->state_codes, int, f->state_codes->len - 1);
}

static void
connect_fd(Fixture *f, const QmpConnOptions *opts)
{
    f->conn = qmp_conn_new_fd(f->base, f->client_fd, opts);
    f->client_fd = -1;
    assert_non_null(f->conn);
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_GREETING);
    f->listener = qmp_conn_add_listener(f->conn, &test_listener, f);
}

/* Greet, negotiate, and forget the trace of it. */
static void
make_ready(Fixture *f, const QmpConnOptions *opts)
{
    connect_fd(f, opts);
    fake_peer_greet(f->peer);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    ASSERT_TRACE(f, "state negotiating\nstate ready\n");
    assert_int_equal(fake_peer_n_received(f->peer), 1);
    g_ptr_array_set_size(f->trace, 0);
}

static void
reply_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    Reply *r = opaque;
    Fixture *f = r->f;

    r->calls++;
    f->n_done++;
    if (error) {
        /* a QEMU error comes with its "error" object, a local one without */
        if (qmp_error_is_qemu(error)) {
            assert_non_null(ret);
            assert_non_null(qmp_json_node_object(ret));
            g_free(r->error_obj);
            r->error_obj = qmp_json_to_string(ret);
        } else {
            assert_null(ret);
        }
        g_clear_error(&r->error);
        r->error = g_error_copy(error);
        g_ptr_array_add(f->trace, g_strdup_printf("error %u %s", r->index, error->message));
    } else {
        assert_non_null(ret);
        g_free(r->ret);
        r->ret = qmp_json_to_string(ret);
        g_ptr_array_add(f->trace, g_strdup_printf("reply %u %s", r->index, r->ret));
    }
    if (r->action)
        r->action(f, r->index);
}

static JsonNode *
json(const char *text)
{
    JsonNode *n;

    if (!text)
        return NULL;
    n = json_from_string(text, NULL);
    assert_non_null(n);
    return n;
}

/* Execute cmd; its reply lands in f->replies[index]. */
static void
exec_cmd(Fixture *f, guint index, const char *cmd, const char *args_json)
{
    g_autoptr(GError) err = NULL;

    assert_true(index < MAX_REPLIES);
    if (!qmp_conn_execute(f->conn, cmd, json(args_json), reply_cb, &f->replies[index], &err))
        fail_msg("execute %s: %s", cmd, err->message);
}

/* ---- greeting and negotiation --------------------------------------- */

static void
test_greeting_oob(void **state)
{
    Fixture *f = *state;
    const QmpGreeting *g;

    connect_fd(f, NULL);
    assert_null(qmp_conn_get_greeting(f->conn));
    assert_null(qmp_conn_get_address(f->conn));
    assert_ptr_equal(qmp_conn_get_base(f->conn), f->base);
    fake_peer_greet(f->peer);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    ASSERT_TRACE(f, "state negotiating\nstate ready\n");
    assert_int_equal(fake_peer_n_received(f->peer), 1);
    assert_string_equal(fake_peer_received(f->peer, 0),
                        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},"
                        "\"id\":1}");
    g = qmp_conn_get_greeting(f->conn);
    assert_non_null(g);
    assert_int_equal(g->major, 7);
    assert_int_equal(g->minor, 2);
    assert_int_equal(g->micro, 22);
    assert_string_equal(g->package, "Debian 1:7.2+dfsg-7+deb12u18+b3");
    assert_true(qmp_greeting_has_capability(g, "oob"));
    assert_null(qmp_conn_get_last_error(f->conn));

    /* ids go on from there */
    exec_cmd(f, 0, "query-status", NULL);
    fake_peer_auto(f->peer, "query-status",
                   "{\"status\": \"prelaunch\", \"singlestep\": false, \"running\": false}");
    WAIT_FOR(f, f->replies[0].calls == 1);
    assert_string_equal(fake_peer_received(f->peer, 1), "{\"execute\":\"query-status\",\"id\":2}");
    assert_string_equal(f->replies[0].ret,
                        "{\"status\":\"prelaunch\",\"singlestep\":false,\"running\":false}");
    ASSERT_PEER_DONE(f);
}

static void
test_greeting_without_oob(void **state)
{
    Fixture *f = *state;

    connect_fd(f, NULL);
    fake_peer_greet_custom(f->peer, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": "
                                    "0, \"major\": 6}, \"package\": \"\"}, \"capabilities\": []}}");
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    assert_int_equal(fake_peer_n_received(f->peer), 1);
    assert_string_equal(fake_peer_received(f->peer, 0),
                        "{\"execute\":\"qmp_capabilities\",\"id\":1}");
    assert_int_equal(qmp_conn_get_greeting(f->conn)->major, 6);
    assert_false(qmp_greeting_has_capability(qmp_conn_get_greeting(f->conn), "oob"));
    ASSERT_PEER_DONE(f);
}

static void
test_greeting_no_oob_option(void **state)
{
    Fixture *f = *state;
    QmpConnOptions opts = {.no_oob = TRUE};
    FakeStep *s;

    connect_fd(f, &opts);
    s = fake_peer_expect(f->peer, "qmp_capabilities", NULL);
    fake_peer_step_return(s, "{}");
    fake_peer_greet(f->peer);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    assert_string_equal(fake_peer_received(f->peer, 0),
                        "{\"execute\":\"qmp_capabilities\",\"id\":1}");
    assert_true(qmp_greeting_has_capability(qmp_conn_get_greeting(f->conn), "oob"));
    ASSERT_PEER_DONE(f);
}

static void
test_negotiation_failure(void **state)
{
    Fixture *f = *state;
    FakeStep *s;

    connect_fd(f, NULL);
    s = fake_peer_expect(f->peer, "qmp_capabilities", "{\"enable\": [\"oob\"]}");
    fake_peer_step_error(s, "GenericError", "Capability negotiation is already complete");
    fake_peer_greet(f->peer);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    ASSERT_TRACE(f, "state negotiating\nstate closed\n");
    assert_int_equal(last_state_code(f), QMP_ERROR_PROTOCOL);
    assert_string_equal(last_state_error(f), "QMP negotiation with (fd) failed: Capability "
                                             "negotiation is already complete");
    assert_non_null(qmp_conn_get_last_error(f->conn));
    assert_string_equal(qmp_conn_get_last_error(f->conn)->message, last_state_error(f));
    /* the socket is closed */
    WAIT_FOR(f, fake_peer_client_closed(f->peer));
    ASSERT_PEER_DONE(f);
}

static void
test_bad_greeting(void **state)
{
    Fixture *f = *state;

    connect_fd(f, NULL);
    fake_peer_greet_custom(f->peer, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}");
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    ASSERT_TRACE(f, "state closed\n");
    assert_int_equal(last_state_code(f), QMP_ERROR_PROTOCOL);
    assert_string_equal(last_state_error(f), "QMP greeting has no version.qemu");
    assert_int_equal(fake_peer_n_received(f->peer), 0);
}

static void
test_garbage_instead_of_greeting(void **state)
{
    Fixture *f = *state;

    connect_fd(f, NULL);
    fake_peer_send(f->peer, "SSH-2.0-OpenSSH_9.2");
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    assert_int_equal(last_state_code(f), QMP_ERROR_PROTOCOL);
    assert_true(g_str_has_prefix(last_state_error(f), "malformed QMP message: "));
}

/* The greeting one byte per write, each read by its own loop turn. */
static void
test_greeting_byte_by_byte(void **state)
{
    Fixture *f = *state;
    const char *greeting = FAKE_PEER_GREETING_7_2 "\r\n";
    gsize len = strlen(greeting);

    connect_fd(f, NULL);
    for (gsize i = 0; i < len; i++) {
        fake_peer_send_raw(f->peer, greeting + i, 1);
        loop_once(f);
        if (i + 1 < len) {
            assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_GREETING);
            assert_int_equal(fake_peer_n_received(f->peer), 0);
        }
    }
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    ASSERT_TRACE(f, "state negotiating\nstate ready\n");
    assert_int_equal(qmp_conn_get_greeting(f->conn)->micro, 22);
    ASSERT_PEER_DONE(f);
}

/* Split in odd places: inside a string, between "\r" and "\n". */
static void
test_partial_lines(void **state)
{
    Fixture *f = *state;
    const char *greeting = FAKE_PEER_GREETING_7_2 "\r\n";
    gsize len = strlen(greeting);
    const char *ev = "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 3, \"microseconds\": 4}}";

    connect_fd(f, NULL);
    fake_peer_send_raw(f->peer, greeting, 10);
    settle(f, 20);
    fake_peer_send_raw(f->peer, greeting + 10, len - 11); /* all but "\n" */
    settle(f, 20);
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_GREETING);
    fake_peer_send_raw(f->peer, "\n", 1);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);

    /* an event in three pieces, then the reply to a command behind it */
    g_ptr_array_set_size(f->trace, 0);
    {
        FakeStep *st = fake_peer_expect(f->peer, "stop", NULL);
        fake_peer_step_hold(st);
        exec_cmd(f, 0, "stop", NULL);
        WAIT_FOR(f, fake_peer_step_received(st));
        fake_peer_send_raw(f->peer, ev, 5);
        settle(f, 10);
        fake_peer_send_raw(f->peer, ev + 5, strlen(ev) - 5);
        settle(f, 10);
        assert_int_equal(f->n_events, 0);
        fake_peer_send_raw(f->peer, "\r", 1);
        settle(f, 10);
        assert_int_equal(f->n_events, 0);
        fake_peer_send_raw(f->peer, "\n", 1);
        fake_peer_step_release(f->peer, st);
    }
    WAIT_FOR(f, f->n_events == 1 && f->replies[0].calls == 1);
    ASSERT_TRACE(f, "event STOP {}\nreply 0 {}\n");
    ASSERT_PEER_DONE(f);
}

/* ---- several messages, events and replies --------------------------- */

static void
test_several_messages_one_write(void **state)
{
    static const char batch[] =
        "{\"event\": \"A\", \"data\": {\"n\": 1}}\r\n"
        "{\"return\": {\"r\": 3}, \"id\": 3}\r\n"
        "\r\n"
        "{\"event\": \"B\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\r\n"
        "{\"id\": 2, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'x' not "
        "found\"}}\r\n"
        "{\"return\": [1, 2], \"id\": 4}\r\n";
    Fixture *f = *state;
    FakeStep *s[3];

    make_ready(f, NULL);
    for (guint i = 0; i < 3; i++) {
        s[i] = fake_peer_expect(f->peer, "query-status", NULL);
        fake_peer_step_hold(s[i]);
        exec_cmd(f, i, "query-status", NULL);
    }
    WAIT_FOR(f, fake_peer_n_received(f->peer) == 4);
    /* ids 2, 3, 4 are on the wire; answer all in one write, out of order,
     * with events in between and an empty line */
    fake_peer_send_raw(f->peer, batch, sizeof(batch) - 1);
    WAIT_FOR(f, f->n_done == 3);
    ASSERT_TRACE(f, "event A {\"n\":1}\n"
                    "reply 1 {\"r\":3}\n"
                    "event B {}\n"
                    "error 0 Device 'x' not found\n"
                    "reply 2 [1,2]\n");
    assert_int_equal(f->replies[0].error->code, QMP_ERROR_DEVICE_NOT_FOUND);
    assert_string_equal(qmp_error_class_name(f->replies[0].error), "DeviceNotFound");
    assert_string_equal(f->replies[0].error_obj,
                        "{\"class\":\"DeviceNotFound\",\"desc\":\"Device 'x' not found\"}");
    for (guint i = 0; i < 3; i++)
        assert_int_equal(f->replies[i].calls, 1);
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
}

static void
test_event_between_command_and_reply(void **state)
{
    Fixture *f = *state;
    FakeStep *s;

    make_ready(f, NULL);
    fake_peer_set_timestamp(f->peer, G_GINT64_CONSTANT(1700000000123456));
    s = fake_peer_expect(f->peer, "device_del", "{\"id\": \"nic1\"}");
    fake_peer_step_event_before(s, "DEVICE_DELETED",
                                "{\"path\": \"/machine/peripheral/nic1\", \"device\": \"nic1\"}");
    fake_peer_step_return(s, "{}");
    fake_peer_step_event_after(s, "ACPI_DEVICE_OST",
                               "{\"info\": {\"device\": \"nic1\", \"source\": 3, \"status\": 0, "
                               "\"slot\": \"3\", \"slot-type\": \"DIMM\"}}");
    exec_cmd(f, 0, "device_del", "{\"id\": \"nic1\"}");
    WAIT_FOR(f, f->n_done == 1 && f->n_events == 2);
    ASSERT_TRACE(f, "event DEVICE_DELETED {\"path\":\"/machine/peripheral/nic1\",\"device\":"
                    "\"nic1\"}\n"
                    "reply 0 {}\n"
                    "event ACPI_DEVICE_OST {\"info\":{\"device\":\"nic1\",\"source\":3,"
                    "\"status\":0,\"slot\":\"3\",\"slot-type\":\"DIMM\"}}\n");
    assert_string_equal(fake_peer_received(f->peer, 1),
                        "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"nic1\"},\"id\":2}");
    ASSERT_PEER_DONE(f);
}

typedef struct {
    gint64 ts[4];
    guint n;
} TsCapture;

static void
ts_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    TsCapture *t = opaque;

    if (t->n < G_N_ELEMENTS(t->ts))
        t->ts[t->n] = ev->timestamp_us;
    t->n++;
}

static void
test_event_timestamps(void **state)
{
    Fixture *f = *state;
    static const QmpConnListener l = {.event = ts_event_cb};
    TsCapture t = {.n = 0};

    make_ready(f, NULL);
    qmp_conn_add_listener(f->conn, &l, &t);
    fake_peer_set_timestamp(f->peer, G_GINT64_CONSTANT(1700000000123456));
    fake_peer_event(f->peer, "STOP", NULL);
    fake_peer_send(f->peer, "{\"event\": \"RESUME\"}");
    WAIT_FOR(f, t.n == 2);
    assert_true(t.ts[0] == G_GINT64_CONSTANT(1700000000123456));
    assert_true(t.ts[1] == -1);
}

/* Eight commands unanswered, events keep coming: all are delivered, and
 * the replies then still find their commands. */
static void
test_events_while_8_in_flight(void **state)
{
    Fixture *f = *state;
    FakeStep *s[8];

    make_ready(f, NULL);
    for (guint i = 0; i < 8; i++) {
        g_autofree char *args = g_strdup_printf("{\"id\": \"dev%u\"}", i);
        g_autofree char *ret = g_strdup_printf("{\"n\": %u}", i);
        s[i] = fake_peer_expect(f->peer, "device_del", args);
        fake_peer_step_return(s[i], ret);
        fake_peer_step_hold(s[i]);
        exec_cmd(f, i, "device_del", args);
    }
    WAIT_FOR(f, fake_peer_n_received(f->peer) == 9);
    for (guint i = 0; i < 5; i++) {
        g_autofree char *data = g_strdup_printf("{\"device\": \"dev%u\"}", i);
        fake_peer_event(f->peer, "DEVICE_DELETED", data);
    }
    WAIT_FOR(f, f->n_events == 5);
    assert_int_equal(f->n_done, 0);
    ASSERT_TRACE(f, "event DEVICE_DELETED {\"device\":\"dev0\"}\n"
                    "event DEVICE_DELETED {\"device\":\"dev1\"}\n"
                    "event DEVICE_DELETED {\"device\":\"dev2\"}\n"
                    "event DEVICE_DELETED {\"device\":\"dev3\"}\n"
                    "event DEVICE_DELETED {\"device\":\"dev4\"}\n");
    g_ptr_array_set_size(f->trace, 0);
    for (guint i = 8; i-- > 0;)
        fake_peer_step_release(f->peer, s[i]);
    WAIT_FOR(f, f->n_done == 8);
    ASSERT_TRACE(f, "reply 7 {\"n\":7}\nreply 6 {\"n\":6}\nreply 5 {\"n\":5}\nreply 4 {\"n\":4}\n"
                    "reply 3 {\"n\":3}\nreply 2 {\"n\":2}\nreply 1 {\"n\":1}\n"
                    "reply 0 {\"n\":0}\n");
    ASSERT_PEER_DONE(f);
}

/* Error replies through the connection: the class becomes the code, the
 * desc the message, and the raw "error" object comes along (for classes
 * QMP_ERROR does not know). */
static void
test_error_replies(void **state)
{
    Fixture *f = *state;

    make_ready(f, NULL);
    fake_peer_step_error(fake_peer_expect(f->peer, "device_del", "{\"id\": \"nope\"}"),
                         "DeviceNotFound", "Device 'nope' not found");
    fake_peer_step_error(fake_peer_expect(f->peer, "nope", NULL), "CommandNotFound",
                         "The command nope has not been found");
    fake_peer_step_error(fake_peer_expect(f->peer, "x-new", NULL), "FutureError",
                         "from a newer QEMU");
    exec_cmd(f, 0, "device_del", "{\"id\": \"nope\"}");
    exec_cmd(f, 1, "nope", NULL);
    exec_cmd(f, 2, "x-new", NULL);
    WAIT_FOR(f, f->n_done == 3);
    assert_int_equal(f->replies[0].error->code, QMP_ERROR_DEVICE_NOT_FOUND);
    assert_string_equal(f->replies[0].error->message, "Device 'nope' not found");
    assert_int_equal(f->replies[1].error->code, QMP_ERROR_COMMAND_NOT_FOUND);
    assert_string_equal(qmp_error_class_name(f->replies[1].error), "CommandNotFound");
    assert_int_equal(f->replies[2].error->code, QMP_ERROR_UNKNOWN_CLASS);
    assert_string_equal(f->replies[2].error->message, "FutureError: from a newer QEMU");
    assert_string_equal(f->replies[2].error_obj,
                        "{\"class\":\"FutureError\",\"desc\":\"from a newer QEMU\"}");
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
    ASSERT_PEER_DONE(f);
}

/* QEMU answers unparsable input with an id-less error: it must not be
 * matched to a pending command. */
static void
test_reply_without_id(void **state)
{
    Fixture *f = *state;
    FakeStep *s;

    make_ready(f, NULL);
    s = fake_peer_expect(f->peer, "query-status", NULL);
    fake_peer_step_return(s, "{\"status\": \"running\"}");
    fake_peer_step_hold(s);
    exec_cmd(f, 0, "query-status", NULL);
    WAIT_FOR(f, fake_peer_step_received(s));
    fake_peer_send(f->peer, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse "
                            "error, invalid keyword 'garbage'\"}}");
    fake_peer_send(f->peer, "{\"return\": {}}");
    fake_peer_send(f->peer, "{\"return\": {}, \"id\": \"2\"}");
    fake_peer_send(f->peer, "{\"return\": {}, \"id\": 2.0}");
    fake_peer_event(f->peer, "MARK", NULL);
    WAIT_FOR(f, f->n_events == 1);
    assert_int_equal(f->replies[0].calls, 0);
    assert_int_equal(log_count("W "), 4);
    assert_string_equal(log_first("W "),
                        "W (fd): QMP reply without a usable id dropped: {\"error\":{\"class\":"
                        "\"GenericError\",\"desc\":\"JSON parse error, invalid keyword "
                        "'garbage'\"}}");
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
    fake_peer_step_release(f->peer, s);
    WAIT_FOR(f, f->replies[0].calls == 1);
    assert_string_equal(f->replies[0].ret, "{\"status\":\"running\"}");
    settle(f, 20);
    assert_int_equal(f->replies[0].calls, 1);
    ASSERT_PEER_DONE(f);
}

static void
test_reply_unknown_id(void **state)
{
    Fixture *f = *state;
    FakeStep *s;

    make_ready(f, NULL);
    s = fake_peer_expect(f->peer, "query-status", NULL);
    fake_peer_step_hold(s);
    exec_cmd(f, 0, "query-status", NULL);
    WAIT_FOR(f, fake_peer_step_received(s));
    /* 1 was qmp_capabilities, answered already; 99 never existed */
    fake_peer_send(f->peer, "{\"return\": {}, \"id\": 99}");
    fake_peer_send(f->peer, "{\"return\": {}, \"id\": 1}");
    fake_peer_send(f->peer, "{\"id\": -5, \"error\": {\"class\": \"GenericError\", \"desc\": "
                            "\"x\"}}");
    fake_peer_event(f->peer, "MARK", NULL);
    WAIT_FOR(f, f->n_events == 1);
    assert_int_equal(f->replies[0].calls, 0);
    assert_int_equal(log_count("W (fd): QMP reply for unknown id 99 dropped"), 1);
    assert_int_equal(log_count("W (fd): QMP reply for unknown id 1 dropped"), 1);
    assert_int_equal(log_count("W (fd): QMP reply for unknown id -5 dropped"), 1);
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
    fake_peer_step_release(f->peer, s);
    WAIT_FOR(f, f->replies[0].calls == 1);
    assert_string_equal(f->replies[0].ret, "{}");
    ASSERT_PEER_DONE(f);
}

/* 20 commands queued at once: never more than 8 unanswered on the wire,
 * all complete, in order. */
static void
test_inflight_cap(void **state)
{
    Fixture *f = *state;
    FakeStep *s[20];

    make_ready(f, NULL);
    for (guint i = 0; i < 20; i++) {
        g_autofree char *args = g_strdup_printf("{\"n\": %u}", i);
        g_autofree char *ret = g_strdup_printf("%u", i);
        s[i] = fake_peer_expect(f->peer, "echo", args);
        fake_peer_step_return(s[i], ret);
        fake_peer_step_hold(s[i]);
        exec_cmd(f, i, "echo", args);
    }
    WAIT_FOR(f, fake_peer_n_received(f->peer) == 1 + QMP_CONN_MAX_INFLIGHT);
    settle(f, 30);
    assert_int_equal(fake_peer_n_received(f->peer), 1 + QMP_CONN_MAX_INFLIGHT);
    assert_int_equal(fake_peer_n_unanswered(f->peer), QMP_CONN_MAX_INFLIGHT);

    for (guint i = 0; i < 20; i++) {
        guint expect_received = 1 + MIN(20, i + 1 + QMP_CONN_MAX_INFLIGHT);
        fake_peer_step_release(f->peer, s[i]);
        WAIT_FOR(f, f->replies[i].calls == 1 && fake_peer_n_received(f->peer) == expect_received);
        assert_true(fake_peer_n_unanswered(f->peer) <= QMP_CONN_MAX_INFLIGHT);
        assert_int_equal(fake_peer_n_unanswered(f->peer), MIN(QMP_CONN_MAX_INFLIGHT, 19 - i));
    }
    assert_int_equal(fake_peer_max_unanswered(f->peer), QMP_CONN_MAX_INFLIGHT);
    for (guint i = 0; i < 20; i++) {
        g_autofree char *want = g_strdup_printf("reply %u %u", i, i);
        g_autofree char *cmd =
            g_strdup_printf("{\"execute\":\"echo\",\"arguments\":{\"n\":%u},\"id\":%u", i, i + 2);
        assert_string_equal(g_ptr_array_index(f->trace, i), want);
        assert_int_equal(f->replies[i].calls, 1);
        assert_true(g_str_has_prefix(fake_peer_received(f->peer, i + 1), cmd));
    }
    assert_int_equal(f->trace->len, 20);
    ASSERT_PEER_DONE(f);
}

/* Same, answered at once by an auto reply: all 20 complete in order. */
static void
test_inflight_cap_auto(void **state)
{
    Fixture *f = *state;

    make_ready(f, NULL);
    fake_peer_auto(f->peer, "query-status", "{\"status\": \"running\"}");
    for (guint i = 0; i < 20; i++)
        exec_cmd(f, i, "query-status", NULL);
    WAIT_FOR(f, f->n_done == 20);
    for (guint i = 0; i < 20; i++) {
        g_autofree char *want = g_strdup_printf("reply %u {\"status\":\"running\"}", i);
        assert_string_equal(g_ptr_array_index(f->trace, i), want);
    }
    assert_int_equal(fake_peer_n_received(f->peer), 21);
    ASSERT_PEER_DONE(f);
}

/* ---- limits --------------------------------------------------------- */

/* An event line of exactly len bytes (without its line ending). */
static char *
event_of_length(gsize len)
{
    const char *head = "{\"event\": \"PAD\", \"data\": {\"s\": \"";
    const char *tail = "\"}}";
    gsize pad = len - strlen(head) - strlen(tail);
    g_autofree char *fill = g_strnfill(pad, 'x');
    char *line = g_strconcat(head, fill, tail, NULL);

    assert_int_equal(strlen(line), len);
    return line;
}

static void
test_line_at_limit(void **state)
{
    Fixture *f = *state;
    QmpConnOptions opts = {.max_line = 1024};
    g_autofree char *line = event_of_length(1024);

    make_ready(f, &opts);
    fake_peer_send(f->peer, line);
    WAIT_FOR(f, f->n_events == 1);
    /* the same, its "\r" and "\n" in separate writes */
    fake_peer_send_raw(f->peer, line, 1024);
    settle(f, 10);
    fake_peer_send_raw(f->peer, "\r", 1);
    settle(f, 10);
    fake_peer_send_raw(f->peer, "\n", 1);
    WAIT_FOR(f, f->n_events == 2 || qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    if (qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED)
        fail_msg("a %u-byte line whose \\r came before its \\n closed the connection: %s", 1024,
                 last_state_error(f));
    /* with "\n" only */
    fake_peer_send_raw(f->peer, line, 1024);
    fake_peer_send_raw(f->peer, "\n", 1);
    WAIT_FOR(f, f->n_events == 3);
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
}

static void
check_too_long(Fixture *f, const char *bytes, gsize len)
{
    QmpConnOptions opts = {.max_line = 1024};
    FakeStep *s;

    make_ready(f, &opts);
    s = fake_peer_expect(f->peer, "query-status", NULL);
    fake_peer_step_hold(s);
    exec_cmd(f, 0, "query-status", NULL);
    WAIT_FOR(f, fake_peer_step_received(s));
    fake_peer_send_raw(f->peer, bytes, len);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    assert_int_equal(last_state_code(f), QMP_ERROR_TOO_LONG);
    assert_string_equal(last_state_error(f), "QMP line from (fd) longer than 1024 bytes");
    assert_int_equal(f->replies[0].calls, 1);
    assert_int_equal(f->replies[0].error->code, QMP_ERROR_CLOSED);
    assert_string_equal(f->replies[0].error->message,
                        "QMP connection (fd) closed: QMP line from (fd) longer than 1024 bytes");
    assert_int_equal(f->n_events, 0);
    WAIT_FOR(f, fake_peer_client_closed(f->peer));
}

static void
test_line_over_limit(void **state)
{
    Fixture *f = *state;
    g_autofree char *line = event_of_length(1025);
    g_autofree char *crlf = g_strconcat(line, "\r\n", NULL);

    check_too_long(f, crlf, strlen(crlf));
}

static void
test_line_over_limit_lf(void **state)
{
    Fixture *f = *state;
    g_autofree char *line = event_of_length(1025);
    g_autofree char *lf = g_strconcat(line, "\n", NULL);

    check_too_long(f, lf, strlen(lf));
}

/* 4 MiB without a newline: closed early, nothing buffered without bound. */
static void
test_line_endless(void **state)
{
    Fixture *f = *state;
    gsize len = 4 * 1024 * 1024;
    g_autofree char *junk = g_malloc(len);

    memset(junk, '{', len);
    check_too_long(f, junk, len);
}

static void
test_too_deep(void **state)
{
    Fixture *f = *state;
    QmpConnOptions opts = {.max_depth = 4};

    make_ready(f, &opts);
    fake_peer_send(f->peer, "{\"event\": \"X\", \"data\": {\"a\": [[1]]}}");
    WAIT_FOR(f, f->n_events == 1);
    /* brackets inside strings do not count */
    fake_peer_send(f->peer, "{\"event\": \"Y\", \"data\": {\"a\": \"[[[[[[[[{{{{{{\"}}");
    WAIT_FOR(f, f->n_events == 2);
    fake_peer_send(f->peer, "{\"event\": \"Z\", \"data\": {\"a\": [[[1]]]}}");
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    assert_int_equal(f->n_events, 2);
    assert_int_equal(last_state_code(f), QMP_ERROR_TOO_DEEP);
    assert_string_equal(last_state_error(f), "QMP message nested deeper than 4 levels");
}

static void
test_garbage_line_when_ready(void **state)
{
    Fixture *f = *state;

    make_ready(f, NULL);
    exec_cmd(f, 0, "query-status", NULL);
    fake_peer_expect(f->peer, "query-status", NULL);
    fake_peer_send(f->peer, "[1, 2, 3]");
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    assert_int_equal(last_state_code(f), QMP_ERROR_PROTOCOL);
    assert_string_equal(last_state_error(f), "QMP message is not a JSON object");
    /* the garbage was in the socket before the command went out */
    settle(f, 20);
    assert_int_equal(f->replies[0].calls, 1);
    assert_int_equal(f->replies[0].error->code, QMP_ERROR_CLOSED);
}

/* ---- hang-ups and closing ------------------------------------------- */

static void
test_hangup_with_pending(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;

    make_ready(f, NULL);
    for (guint i = 0; i < 12; i++) {
        fake_peer_step_hold(fake_peer_expect(f->peer, "query-status", NULL));
        exec_cmd(f, i, "query-status", NULL);
    }
    WAIT_FOR(f, fake_peer_n_received(f->peer) == 9);
    fake_peer_hangup(f->peer);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    settle(f, 20);
    ASSERT_TRACE(f, "error 0 QMP connection (fd) closed: (fd) hung up\n"
                    "error 1 QMP connection (fd) closed: (fd) hung up\n"
                    "error 2 QMP connection (fd) closed: (fd) hung up\n"
                    "error 3 QMP connection (fd) closed: (fd) hung up\n"
                    "error 4 QMP connection (fd) closed: (fd) hung up\n"
                    "error 5 QMP connection (fd) closed: (fd) hung up\n"
                    "error 6 QMP connection (fd) closed: (fd) hung up\n"
                    "error 7 QMP connection (fd) closed: (fd) hung up\n"
                    "error 8 QMP connection (fd) closed: (fd) hung up\n"
                    "error 9 QMP connection (fd) closed: (fd) hung up\n"
                    "error 10 QMP connection (fd) closed: (fd) hung up\n"
                    "error 11 QMP connection (fd) closed: (fd) hung up\n"
                    "state closed\n");
    for (guint i = 0; i < 12; i++) {
        assert_int_equal(f->replies[i].calls, 1);
        assert_true(f->replies[i].error->domain == QMP_ERROR);
        assert_int_equal(f->replies[i].error->code, QMP_ERROR_CLOSED);
    }
    assert_int_equal(last_state_code(f), QMP_ERROR_CLOSED);
    assert_string_equal(last_state_error(f), "(fd) hung up");
    assert_string_equal(qmp_conn_get_last_error(f->conn)->message, "(fd) hung up");

    /* closed: execute fails, args are not leaked */
    assert_false(qmp_conn_execute(f->conn, "query-status", json("{\"a\": 1}"), reply_cb,
                                  &f->replies[20], &err));
    assert_int_equal(err->code, QMP_ERROR_CLOSED);
    assert_string_equal(err->message, "QMP connection (fd) is closed: (fd) hung up");
    assert_int_equal(f->replies[20].calls, 0);
    /* and closing again does nothing */
    {
        guint n = f->trace->len;
        qmp_conn_close(f->conn);
        settle(f, 10);
        assert_int_equal(f->trace->len, n);
    }
    /* an fd connection cannot be reopened */
    g_clear_error(&err);
    assert_false(qmp_conn_open(f->conn, &err));
    assert_int_equal(err->code, QMP_ERROR_CONNECT);
}

/* The peer hangs up while a command is queued but not yet written: the
 * write must fail quietly (EPIPE), not kill the process with SIGPIPE. */
static void
test_hangup_before_write(void **state)
{
    Fixture *f = *state;

    make_ready(f, NULL);
    fake_peer_hangup(f->peer);
    exec_cmd(f, 0, "query-status", NULL);
    exec_cmd(f, 1, "query-status", NULL);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    assert_int_equal(f->replies[0].calls, 1);
    assert_int_equal(f->replies[1].calls, 1);
    assert_int_equal(f->replies[0].error->code, QMP_ERROR_CLOSED);
    assert_int_equal(last_state_code(f), QMP_ERROR_CLOSED);
}

static void
test_local_close(void **state)
{
    Fixture *f = *state;

    make_ready(f, NULL);
    fake_peer_step_hold(fake_peer_expect(f->peer, "query-status", NULL));
    exec_cmd(f, 0, "query-status", NULL);
    exec_cmd(f, 1, "query-status", NULL);
    qmp_conn_close(f->conn);
    ASSERT_TRACE(f, "error 0 QMP connection (fd) closed: closed by us\n"
                    "error 1 QMP connection (fd) closed: closed by us\n"
                    "state closed\n");
    assert_int_equal(last_state_code(f), QMP_ERROR_CLOSED);
    WAIT_FOR(f, fake_peer_client_closed(f->peer));
}

static void
action_unref(Fixture *f, guint index)
{
    QmpConn *c = g_steal_pointer(&f->conn);

    qmp_conn_unref(c);
}

static void
action_close(Fixture *f, guint index)
{
    qmp_conn_close(f->conn);
}

static void
action_close_unref(Fixture *f, guint index)
{
    QmpConn *c = g_steal_pointer(&f->conn);

    qmp_conn_close(c);
    qmp_conn_unref(c);
}

/* A reply callback drops the last reference: the connection lives until
 * its read callback is done, and the others still get one call each. */
static void
test_reply_cb_unrefs(void **state)
{
    Fixture *f = *state;
    FakeStep *s[4];

    make_ready(f, NULL);
    for (guint i = 0; i < 4; i++) {
        s[i] = fake_peer_expect(f->peer, "query-status", NULL);
        fake_peer_step_hold(s[i]);
        exec_cmd(f, i, "query-status", NULL);
    }
    WAIT_FOR(f, fake_peer_step_received(s[3]));
    f->replies[0].action = action_unref;
    /* 0 and 1 in one write: 1 is read in the same callback, after the unref */
    fake_peer_send(f->peer, "{\"return\": {\"a\": 0}, \"id\": 2}\r\n{\"return\": {\"a\": 1}, "
                            "\"id\": 3}");
    WAIT_FOR(f, f->n_done == 4);
    assert_null(f->conn);
    ASSERT_TRACE(f, "reply 0 {\"a\":0}\n"
                    "reply 1 {\"a\":1}\n"
                    "error 2 QMP connection (fd) closed: connection freed\n"
                    "error 3 QMP connection (fd) closed: connection freed\n"
                    "state closed\n");
    for (guint i = 0; i < 4; i++)
        assert_int_equal(f->replies[i].calls, 1);
    WAIT_FOR(f, fake_peer_client_closed(f->peer));
}

static void
test_reply_cb_closes(void **state)
{
    Fixture *f = *state;
    FakeStep *s[2];

    make_ready(f, NULL);
    for (guint i = 0; i < 2; i++) {
        s[i] = fake_peer_expect(f->peer, "query-status", NULL);
        fake_peer_step_hold(s[i]);
        exec_cmd(f, i, "query-status", NULL);
    }
    WAIT_FOR(f, fake_peer_step_received(s[1]));
    f->replies[0].action = action_close;
    /* the second reply is in the same read: it is never delivered */
    fake_peer_send(f->peer, "{\"return\": {}, \"id\": 2}\r\n{\"return\": {}, \"id\": 3}\r\n"
                            "{\"event\": \"LATE\"}");
    WAIT_FOR(f, f->n_done == 2);
    settle(f, 20);
    ASSERT_TRACE(f, "reply 0 {}\n"
                    "error 1 QMP connection (fd) closed: closed by us\n"
                    "state closed\n");
    assert_int_equal(f->replies[1].calls, 1);
}

static void
test_reply_cb_closes_and_unrefs(void **state)
{
    Fixture *f = *state;
    FakeStep *s[2];

    make_ready(f, NULL);
    for (guint i = 0; i < 2; i++) {
        s[i] = fake_peer_expect(f->peer, "query-status", NULL);
        fake_peer_step_hold(s[i]);
        exec_cmd(f, i, "query-status", NULL);
    }
    WAIT_FOR(f, fake_peer_step_received(s[1]));
    f->replies[0].action = action_close_unref;
    fake_peer_send(f->peer, "{\"return\": {}, \"id\": 2}\r\n{\"return\": {}, \"id\": 3}");
    WAIT_FOR(f, f->n_done == 2);
    settle(f, 20);
    assert_null(f->conn);
    ASSERT_TRACE(f, "reply 0 {}\n"
                    "error 1 QMP connection (fd) closed: closed by us\n"
                    "state closed\n");
}

/* A command issued from a reply callback goes out and completes. */
static void
action_chain(Fixture *f, guint index)
{
    if (index < 5)
        exec_cmd(f, index + 1, "query-status", NULL);
}

static void
test_execute_from_callback(void **state)
{
    Fixture *f = *state;

    make_ready(f, NULL);
    fake_peer_auto(f->peer, "query-status", "{}");
    for (guint i = 0; i < 6; i++)
        f->replies[i].action = action_chain;
    exec_cmd(f, 0, "query-status", NULL);
    WAIT_FOR(f, f->n_done == 6);
    assert_int_equal(fake_peer_n_received(f->peer), 7);
    assert_string_equal(fake_peer_received(f->peer, 6), "{\"execute\":\"query-status\",\"id\":7}");
}

/* A command issued from the CLOSED callback of a failing one is refused. */
static void
action_exec_when_closed(Fixture *f, guint index)
{
    g_autoptr(GError) err = NULL;

    assert_false(qmp_conn_execute(f->conn, "query-status", NULL, reply_cb, &f->replies[30], &err));
    assert_int_equal(err->code, QMP_ERROR_CLOSED);
}

static void
test_execute_from_failing_callback(void **state)
{
    Fixture *f = *state;

    make_ready(f, NULL);
    fake_peer_step_hold(fake_peer_expect(f->peer, "query-status", NULL));
    f->replies[0].action = action_exec_when_closed;
    exec_cmd(f, 0, "query-status", NULL);
    WAIT_FOR(f, fake_peer_n_received(f->peer) == 2);
    fake_peer_hangup(f->peer);
    WAIT_FOR(f, f->n_done == 1);
    settle(f, 20);
    assert_int_equal(f->n_done, 1);
    assert_int_equal(f->replies[30].calls, 0);
}

/* ---- listeners ------------------------------------------------------ */

typedef struct {
    Fixture *f;
    guint calls;
    guint remove_id; /* remove this listener on the first call */
    guint *self_id;
    gboolean add_one; /* add a counting listener on the first call */
    guint added_calls;
} Counter;

static void
counter_added_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    Counter *c = opaque;

    c->added_calls++;
}

static void
counter_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    static const QmpConnListener added = {.event = counter_added_cb};
    Counter *c = opaque;

    c->calls++;
    if (c->calls == 1 && c->remove_id)
        qmp_conn_remove_listener(conn, c->remove_id);
    if (c->calls == 1 && c->add_one)
        qmp_conn_add_listener(conn, &added, c);
}

static void
test_listener_removed_in_callback(void **state)
{
    Fixture *f = *state;
    static const QmpConnListener l = {.event = counter_event_cb};
    Counter a = {.f = f}, b = {.f = f}, c = {.f = f}, d = {.f = f};
    guint id_a, id_c;

    make_ready(f, NULL);
    /* the fixture's own listener removes itself on the first event */
    f->remove_self_on_event = 1;
    id_a = qmp_conn_add_listener(f->conn, &l, &a);
    a.remove_id = id_a; /* a removes itself */
    qmp_conn_add_listener(f->conn, &l, &b);
    b.add_one = TRUE; /* b adds a listener */
    id_c = qmp_conn_add_listener(f->conn, &l, &c);
    qmp_conn_add_listener(f->conn, &l, &d);
    d.remove_id = id_c; /* d removes c, after c ran */
    assert_int_not_equal(id_a, id_c);

    fake_peer_event(f->peer, "ONE", NULL);
    WAIT_FOR(f, d.calls == 1);
    assert_int_equal(f->n_events, 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(b.added_calls, 0); /* added during dispatch: not called for ONE */

    fake_peer_event(f->peer, "TWO", NULL);
    WAIT_FOR(f, d.calls == 2);
    assert_int_equal(f->n_events, 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 2);
    assert_int_equal(c.calls, 1);
    assert_int_equal(b.added_calls, 1);

    /* removing an unknown id is harmless */
    qmp_conn_remove_listener(f->conn, 12345);
    fake_peer_event(f->peer, "THREE", NULL);
    WAIT_FOR(f, d.calls == 3);
    assert_int_equal(b.added_calls, 2);
}

/* ---- not ready, timeout --------------------------------------------- */

static void
test_execute_not_ready(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;

    connect_fd(f, NULL);
    assert_false(qmp_conn_execute(f->conn, "query-status", json("{\"x\": [1]}"), reply_cb,
                                  &f->replies[0], &err));
    assert_true(err->domain == QMP_ERROR);
    assert_int_equal(err->code, QMP_ERROR_CLOSED);
    assert_string_equal(err->message, "QMP connection (fd) is greeting, not ready");
    fake_peer_greet(f->peer);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_NEGOTIATING ||
                    qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    settle(f, 10);
    assert_int_equal(f->replies[0].calls, 0);
    assert_int_equal(fake_peer_n_received(f->peer), 1);
    qmp_conn_close(f->conn);
    g_clear_error(&err);
    assert_false(qmp_conn_execute(f->conn, "query-status", NULL, reply_cb, &f->replies[0], &err));
    assert_string_equal(err->message, "QMP connection (fd) is closed: closed by us");
    assert_int_equal(f->replies[0].calls, 0);
}

static void
test_execute_while_negotiating(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    FakeStep *s;

    connect_fd(f, NULL);
    s = fake_peer_expect(f->peer, "qmp_capabilities", NULL);
    fake_peer_step_hold(s);
    fake_peer_greet(f->peer);
    WAIT_FOR(f, fake_peer_step_received(s));
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_NEGOTIATING);
    assert_false(qmp_conn_execute(f->conn, "query-status", NULL, reply_cb, &f->replies[0], &err));
    assert_string_equal(err->message, "QMP connection (fd) is negotiating, not ready");
    fake_peer_step_release(f->peer, s);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    ASSERT_PEER_DONE(f);
}

static void
test_sync_helpers(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = NULL;
    FakeStep *s;

    connect_fd(f, NULL);
    fake_peer_greet(f->peer);
    assert_true(qmp_conn_wait_ready(f->conn, 5000, &err));
    assert_true(qmp_conn_wait_ready(f->conn, 5000, &err));
    fake_peer_auto(f->peer, "query-status", "{\"status\": \"paused\"}");
    assert_true(qmp_conn_execute_sync(f->conn, "query-status", NULL, &ret, 5000, &err));
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(ret), "status"), "paused");

    s = fake_peer_expect(f->peer, "device_del", "{\"id\": \"nope\"}");
    fake_peer_step_error(s, "DeviceNotFound", "Device 'nope' not found");
    assert_false(
        qmp_conn_execute_sync(f->conn, "device_del", json("{\"id\": \"nope\"}"), NULL, 5000, &err));
    assert_int_equal(err->code, QMP_ERROR_DEVICE_NOT_FOUND);
    assert_string_equal(err->message, "Device 'nope' not found");
    g_clear_error(&err);

    /* a timeout; the late reply is swallowed later without harm */
    s = fake_peer_expect(f->peer, "slow", NULL);
    fake_peer_step_hold(s);
    assert_false(qmp_conn_execute_sync(f->conn, "slow", NULL, NULL, 100, &err));
    assert_int_equal(err->code, QMP_ERROR_TIMEOUT);
    assert_string_equal(err->message, "no reply to slow from (fd) within 100 ms");
    fake_peer_step_release(f->peer, s);
    settle(f, 30);
    ASSERT_PEER_DONE(f);
}

/* Takes 10 s: the greeting timeout is fixed. */
static void
test_greeting_timeout(void **state)
{
    Fixture *f = *state;
    gint64 start = g_get_monotonic_time();
    g_autoptr(GError) err = NULL;

    connect_fd(f, NULL);
    assert_false(qmp_conn_wait_ready(f->conn, 15000, &err));
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_CLOSED);
    assert_int_equal(err->code, QMP_ERROR_TIMEOUT);
    assert_true(g_str_has_prefix(err->message, "no QMP greeting from (fd) within 10 s"));
    assert_true(g_get_monotonic_time() - start >= 9900 * 1000);
    assert_true(g_get_monotonic_time() - start < 12000 * 1000);
    assert_int_equal(last_state_code(f), QMP_ERROR_TIMEOUT);
    WAIT_FOR(f, fake_peer_client_closed(f->peer));
}

/* ---- reconnecting to a UNIX socket ---------------------------------- */

typedef struct {
    struct event_base *base;
    char *dir;
    char *path;
    int listen_fd;
    struct event *accept_ev;
    FakePeer *peer; /* the current client */
    guint accepted;
    gboolean greet;
} Server;

static void
server_accept_cb(evutil_socket_t fd, short what, void *opaque)
{
    Server *s = opaque;
    int cfd = accept(s->listen_fd, NULL, NULL);

    if (cfd < 0)
        return;
    g_clear_pointer(&s->peer, fake_peer_free);
    s->peer = fake_peer_new_from_fd(s->base, cfd);
    s->accepted++;
    if (s->greet)
        fake_peer_greet(s->peer);
}

static void
server_listen(Server *s)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(s->listen_fd >= 0);
    g_strlcpy(sun.sun_path, s->path, sizeof(sun.sun_path));
    if (bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        fail_msg("bind %s: %s", s->path, g_strerror(errno));
    assert_int_equal(listen(s->listen_fd, 4), 0);
    s->accept_ev = event_new(s->base, s->listen_fd, EV_READ | EV_PERSIST, server_accept_cb, s);
    event_add(s->accept_ev, NULL);
}

/* Stop listening and remove the socket file. */
static void
server_stop(Server *s)
{
    if (s->accept_ev) {
        event_free(s->accept_ev);
        s->accept_ev = NULL;
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    g_unlink(s->path);
}

static Server *
server_new(struct event_base *base)
{
    Server *s = g_new0(Server, 1);
    g_autoptr(GError) err = NULL;

    s->base = base;
    s->dir = g_dir_make_tmp("test-qmp-conn-XXXXXX", &err);
    assert_non_null(s->dir);
    s->path = g_build_filename(s->dir, "qmp.sock", NULL);
    s->listen_fd = -1;
    s->greet = TRUE;
    server_listen(s);
    return s;
}

static void
server_free(Server *s)
{
    server_stop(s);
    g_clear_pointer(&s->peer, fake_peer_free);
    g_rmdir(s->dir);
    g_free(s->path);
    g_free(s->dir);
    g_free(s);
}

/* The "reconnecting in N ms" debug messages logged since index from. */
static char *
backoff_log(guint from)
{
    GString *s = g_string_new(NULL);

    for (guint i = from; i < qmp_log->len; i++) {
        const char *m = g_ptr_array_index(qmp_log, i);
        const char *p = strstr(m, ": reconnecting in ");
        if (g_str_has_prefix(m, "D ") && p)
            g_string_append_printf(s, "%s%s", s->len ? "," : "", p + strlen(": reconnecting in "));
    }
    return g_string_free(s, FALSE);
}

static void
test_reconnect(void **state)
{
    Fixture *f = *state;
    Server *srv = server_new(f->base);
    QmpConnOptions opts = {.reconnect = TRUE, .backoff_initial_ms = 10, .backoff_max_ms = 80};
    g_autoptr(GError) err = NULL;
    g_autofree char *missing = NULL;
    guint mark;

    f->conn = qmp_conn_new(f->base, srv->path, &opts);
    assert_string_equal(qmp_conn_get_address(f->conn), srv->path);
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_CLOSED);
    f->listener = qmp_conn_add_listener(f->conn, &test_listener, f);
    assert_true(qmp_conn_open(f->conn, &err));
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    ASSERT_TRACE(f, "state connecting\nstate greeting\nstate negotiating\nstate ready\n");
    assert_int_equal(srv->accepted, 1);
    assert_string_equal(fake_peer_received(srv->peer, 0),
                        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},"
                        "\"id\":1}");

    /* the server drops the client: a pending command fails, and we come back */
    g_ptr_array_set_size(f->trace, 0);
    fake_peer_step_hold(fake_peer_expect(srv->peer, "query-status", NULL));
    exec_cmd(f, 0, "query-status", NULL);
    WAIT_FOR(f, fake_peer_n_received(srv->peer) == 2);
    mark = qmp_log->len;
    fake_peer_hangup(srv->peer);
    WAIT_FOR(f, srv->accepted == 2 && qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    {
        g_autofree char *want = g_strdup_printf(
            "error 0 QMP connection %s closed: %s hung up\nstate closed\nstate connecting\n"
            "state greeting\nstate negotiating\nstate ready\n",
            srv->path, srv->path);
        ASSERT_TRACE(f, want);
    }
    assert_int_equal(f->replies[0].error->code, QMP_ERROR_CLOSED);
    {
        g_autofree char *b = backoff_log(mark);
        assert_string_equal(b, "10 ms");
    }
    /* ids keep counting across sessions */
    assert_string_equal(fake_peer_received(srv->peer, 0),
                        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},"
                        "\"id\":3}");

    /* the socket goes away: retries back off, 10 20 40 80 80 ... */
    g_ptr_array_set_size(f->trace, 0);
    server_stop(srv);
    mark = qmp_log->len;
    fake_peer_hangup(srv->peer);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_CLOSED);
    g_clear_error(&err);
    assert_false(qmp_conn_execute(f->conn, "query-status", NULL, reply_cb, &f->replies[1], &err));
    assert_int_equal(err->code, QMP_ERROR_CLOSED);
    settle(f, 500);
    {
        g_autofree char *b = backoff_log(mark);
        g_auto(GStrv) parts = g_strsplit(b, ",", -1);
        guint n = g_strv_length(parts);
        /* 10+20+40+80 = 150 ms, then every 80 ms: about 8 in 500 ms */
        if (n < 5 || n > 12)
            fail_msg("backoff sequence in 500 ms: %s", b);
        assert_string_equal(parts[0], "10 ms");
        assert_string_equal(parts[1], "20 ms");
        assert_string_equal(parts[2], "40 ms");
        assert_string_equal(parts[3], "80 ms");
        for (guint i = 4; i < n; i++)
            assert_string_equal(parts[i], "80 ms");
    }
    ASSERT_TRACE(f, "state closed\n");
    missing = g_strdup_printf("cannot connect to %s: No such file or directory", srv->path);
    assert_string_equal(qmp_conn_get_last_error(f->conn)->message, missing);
    assert_int_equal(qmp_conn_get_last_error(f->conn)->code, QMP_ERROR_CONNECT);

    /* it comes back */
    g_ptr_array_set_size(f->trace, 0);
    server_listen(srv);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    ASSERT_TRACE(f, "state connecting\nstate greeting\nstate negotiating\nstate ready\n");
    assert_int_equal(srv->accepted, 3);

    /* backoff starts over after a success */
    mark = qmp_log->len;
    fake_peer_hangup(srv->peer);
    WAIT_FOR(f, srv->accepted == 4 && qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    {
        g_autofree char *b = backoff_log(mark);
        assert_string_equal(b, "10 ms");
    }

    /* a local close stops reconnecting */
    g_ptr_array_set_size(f->trace, 0);
    mark = qmp_log->len;
    qmp_conn_close(f->conn);
    settle(f, 100);
    ASSERT_TRACE(f, "state closed\n");
    assert_int_equal(srv->accepted, 4);
    {
        g_autofree char *b = backoff_log(mark);
        assert_string_equal(b, "");
    }
    /* and opening again works */
    assert_true(qmp_conn_open(f->conn, &err));
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    assert_int_equal(srv->accepted, 5);

    qmp_conn_unref(g_steal_pointer(&f->conn));
    server_free(srv);
}

/* The listener starts connecting before anything listens: retries, then
 * READY once the socket appears; the refused connects are CLOSED each. */
static void
test_reconnect_refused(void **state)
{
    Fixture *f = *state;
    Server *srv = server_new(f->base);
    QmpConnOptions opts = {.reconnect = TRUE, .backoff_initial_ms = 20, .backoff_max_ms = 40};
    g_autoptr(GError) err = NULL;
    g_autofree char *refused = NULL, *want = NULL, *path = g_strdup(srv->path);
    int stale;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    /* a socket file nobody listens on: ECONNREFUSED */
    server_stop(srv);
    stale = socket(AF_UNIX, SOCK_STREAM, 0);
    g_strlcpy(sun.sun_path, srv->path, sizeof(sun.sun_path));
    assert_int_equal(bind(stale, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(stale);

    f->conn = qmp_conn_new(f->base, srv->path, &opts);
    f->listener = qmp_conn_add_listener(f->conn, &test_listener, f);
    assert_true(qmp_conn_open(f->conn, &err));
    settle(f, 150);
    /* refused attempts change nothing listeners must hear (it stays
     * CLOSED, like a missing path): only the reason is kept */
    ASSERT_TRACE(f, "");
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_CLOSED);
    assert_int_equal(qmp_conn_get_last_error(f->conn)->code, QMP_ERROR_CONNECT);
    refused = g_strdup(qmp_conn_get_last_error(f->conn)->message);

    g_unlink(srv->path);
    server_listen(srv);
    WAIT_FOR(f, qmp_conn_get_state(f->conn) == QMP_CONN_READY);
    qmp_conn_unref(g_steal_pointer(&f->conn));
    server_free(srv);

    want = g_strdup_printf("cannot connect to %s: Connection refused", path);
    assert_string_equal(refused, want);
}

static void
test_open_errors(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autofree char *longpath = g_strnfill(200, 'a');
    g_autofree char *abs_long = g_strconcat("/", longpath, NULL);
    QmpConn *c;

    /* without reconnect, a missing socket fails at once */
    c = qmp_conn_new(f->base, "/nonexistent/qmp.sock", NULL);
    assert_false(qmp_conn_open(c, &err));
    assert_int_equal(err->code, QMP_ERROR_CONNECT);
    assert_string_equal(err->message,
                        "cannot connect to /nonexistent/qmp.sock: No such file or directory");
    assert_int_equal(qmp_conn_get_state(c), QMP_CONN_CLOSED);
    g_clear_error(&err);
    assert_false(qmp_conn_wait_ready(c, 100, &err));
    assert_int_equal(err->code, QMP_ERROR_CONNECT);
    qmp_conn_unref(c);

    g_clear_error(&err);
    c = qmp_conn_new(f->base, abs_long, NULL);
    assert_false(qmp_conn_open(c, &err));
    assert_int_equal(err->code, QMP_ERROR_CONNECT);
    assert_true(g_str_has_suffix(err->message, "is longer than 107 bytes"));
    qmp_conn_unref(c);
}

/* A state listener that drops the last reference while the connection
 * reports a state change (here: the connect completing, GREETING). */
static void
test_state_listener_unrefs(void **state)
{
    Fixture *f = *state;
    Server *srv = server_new(f->base);
    g_autoptr(GError) err = NULL;

    srv->greet = FALSE;
    f->conn = qmp_conn_new(f->base, srv->path, NULL);
    f->listener = qmp_conn_add_listener(f->conn, &test_listener, f);
    f->unref_on_greeting = TRUE;
    assert_true(qmp_conn_open(f->conn, &err));
    WAIT_FOR(f, f->conn == NULL);
    ASSERT_TRACE(f, "state connecting\nstate greeting\nstate closed\n");
    settle(f, 20);
    server_free(srv);
}

static void
test_state_names(void **state)
{
    assert_string_equal(qmp_conn_state_name(QMP_CONN_CONNECTING), "connecting");
    assert_string_equal(qmp_conn_state_name(QMP_CONN_GREETING), "greeting");
    assert_string_equal(qmp_conn_state_name(QMP_CONN_NEGOTIATING), "negotiating");
    assert_string_equal(qmp_conn_state_name(QMP_CONN_READY), "ready");
    assert_string_equal(qmp_conn_state_name(QMP_CONN_CLOSED), "closed");
    assert_string_equal(qmp_conn_state_name((QmpConnState)42), "unknown");
}

static void
test_loop_run_until(void **state)
{
    Fixture *f = *state;
    gboolean flag = FALSE;
    gint64 start = g_get_monotonic_time();

    assert_false(qmp_loop_run_until(f->base, &flag, 50));
    assert_true(g_get_monotonic_time() - start >= 45 * 1000);
    flag = TRUE;
    assert_true(qmp_loop_run_until(f->base, &flag, 0));
}

int
main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_state_names),
        T(test_greeting_oob),
        T(test_greeting_without_oob),
        T(test_greeting_no_oob_option),
        T(test_negotiation_failure),
        T(test_bad_greeting),
        T(test_garbage_instead_of_greeting),
        T(test_greeting_byte_by_byte),
        T(test_partial_lines),
        T(test_several_messages_one_write),
        T(test_event_between_command_and_reply),
        T(test_event_timestamps),
        T(test_events_while_8_in_flight),
        T(test_error_replies),
        T(test_reply_without_id),
        T(test_reply_unknown_id),
        T(test_inflight_cap),
        T(test_inflight_cap_auto),
        T(test_line_at_limit),
        T(test_line_over_limit),
        T(test_line_over_limit_lf),
        T(test_line_endless),
        T(test_too_deep),
        T(test_garbage_line_when_ready),
        T(test_hangup_with_pending),
        T(test_hangup_before_write),
        T(test_local_close),
        T(test_reply_cb_unrefs),
        T(test_reply_cb_closes),
        T(test_reply_cb_closes_and_unrefs),
        T(test_execute_from_callback),
        T(test_execute_from_failing_callback),
        T(test_listener_removed_in_callback),
        T(test_execute_not_ready),
        T(test_execute_while_negotiating),
        T(test_sync_helpers),
        T(test_loop_run_until),
        T(test_open_errors),
        T(test_reconnect),
        T(test_reconnect_refused),
        T(test_state_listener_unrefs),
        T(test_greeting_timeout),
    };
#undef T

    g_log_set_writer_func(test_log_writer, NULL, NULL);
    /* QMP_CONN_TEST_QUICK=1 skips the 10 s greeting timeout */
    if (g_getenv("QMP_CONN_TEST_QUICK"))
        cmocka_set_skip_filter("test_greeting_timeout");
    /* QMP_TEST_FILTER=test_reconnect* runs only the tests that match */
    if (g_getenv("QMP_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("QMP_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
