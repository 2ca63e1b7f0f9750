/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness for the QMP framing and classifier.
 *
 * The input is what a QMP peer sends.  It goes two ways:
 *   1. every line of it through qmp_message_parse (and, by type, through
 *      qmp_greeting_parse / qmp_error_from_json), directly;
 *   2. into a QmpConn over a socketpair (qmp_conn_new_fd), in chunks, with
 *      the loop run after each, max_line 4096 and max_depth 8.  Once READY
 *      the harness keeps 12 commands queued (more than the 8 in flight), so
 *      replies are matched; an event named CLOSE closes the connection from
 *      inside the listener, one named UNREF drops the last reference from
 *      inside it.
 * Nothing may crash, leak (LeakSanitizer), trip UBSan, or log a g_critical
 * (criticals are made fatal).
 *
 * Build (from the source tree, after ./configure in build/):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -Ibuild -Isrc/qmp $(pkg-config --cflags glib-2.0 json-glib-1.0 libevent) \
 *       tests/fuzz/fuzz-qmp.c src/qmp/qmp-*.c \
 *       $(pkg-config --libs glib-2.0 json-glib-1.0 libevent) -o build/fuzz-qmp
 *
 * Run: tests/fuzz/run.sh [SECONDS] (builds, then fuzzes a copy of
 * tests/fuzz/corpus for SECONDS, default 60, with -max_len=65536).
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib.h>

#include "qmp-conn.h"
#include "qmp-error.h"
#include "qmp-greeting.h"
#include "qmp-json.h"
#include "qmp-message.h"

#define FUZZ_MAX_LINE 4096
#define FUZZ_MAX_DEPTH 8
#define FUZZ_QUEUE 12

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *fuzz_base;

typedef struct {
    QmpConn *conn; /* NULL once an UNREF event dropped it */
    guint pending; /* commands issued and not yet called back */
    guint issued;
    guint calls;
} FuzzState;

/* Quiet: warnings about dropped replies are expected by the thousand.
 * Criticals still abort: g_log_set_always_fatal makes them fatal before
 * any writer runs. */
static GLogWriterOutput
fuzz_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer opaque)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        return g_log_writer_default(level, fields, n_fields, opaque);
    return G_LOG_WRITER_HANDLED;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    g_log_set_writer_func(fuzz_log_writer, NULL, NULL);
    fuzz_base = event_base_new();
    return 0;
}

/* What the JSON reader accepts, written back, reads again as the same
 * text; what it refuses, it says why (in QMP_ERROR). */
static void
fuzz_json_round_trip(const char *p, gsize len)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) node = qmp_json_parse(p, len, FUZZ_MAX_DEPTH, &err);
    g_autoptr(JsonNode) again = NULL;
    g_autofree char *text = NULL, *text2 = NULL;

    if (!node) {
        if (!err || err->domain != QMP_ERROR)
            __builtin_trap();
        return;
    }
    text = qmp_json_to_string(node);
    again = qmp_json_parse(text, strlen(text), FUZZ_MAX_DEPTH, NULL);
    if (!again)
        __builtin_trap();
    text2 = qmp_json_to_string(again);
    if (strcmp(text, text2) != 0)
        __builtin_trap();
}

static void
fuzz_parse_lines(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *end = p + size;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        gsize len = nl ? (gsize)(nl - p) : (gsize)(end - p);
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpMessage) msg = NULL;

        if (len && p[len - 1] == '\r')
            len--;
        fuzz_json_round_trip(p, len);
        msg = qmp_message_parse(p, len, FUZZ_MAX_DEPTH, &err);
        if (msg) {
            if (msg->type == QMP_MSG_GREETING) {
                g_autoptr(GError) gerr = NULL;
                g_autoptr(QmpGreeting) g = qmp_greeting_parse(msg->greeting, &gerr);
                if (g) {
                    (void)qmp_greeting_has_capability(g, "oob");
                    (void)qmp_greeting_version_at_least(g, 7, 2);
                }
            } else if (msg->type == QMP_MSG_ERROR) {
                g_autoptr(GError) qerr = qmp_error_from_json(msg->error);
                (void)qmp_error_class_name(qerr);
            } else if (msg->type == QMP_MSG_RETURN) {
                g_free(qmp_json_to_string(msg->ret));
            }
        } else if (!err || err->domain != QMP_ERROR) {
            __builtin_trap(); /* a failed parse must say why, in QMP_ERROR */
        }
        p += (nl ? (gsize)(nl - p) + 1 : (gsize)(end - p));
    }
}

static void fuzz_fill(FuzzState *s);

static void
fuzz_reply_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    FuzzState *s = opaque;

    /* a return value, or an error: QEMU's with its "error" object, a
     * local one (the connection closed) without */
    if (error ? qmp_error_is_qemu(error) != (ret != NULL) : ret == NULL)
        __builtin_trap();
    s->pending--;
    s->calls++;
    if (ret)
        g_free(qmp_json_to_string(ret));
    if (!error)
        fuzz_fill(s);
}

/* Keep FUZZ_QUEUE commands outstanding while READY. */
static void
fuzz_fill(FuzzState *s)
{
    while (s->conn && qmp_conn_get_state(s->conn) == QMP_CONN_READY && s->pending < FUZZ_QUEUE &&
           s->issued < 200) {
        if (!qmp_conn_execute(s->conn, "query-status", NULL, fuzz_reply_cb, s, NULL))
            __builtin_trap(); /* READY must accept */
        s->pending++;
        s->issued++;
    }
}

static void
fuzz_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    FuzzState *s = opaque;

    if (!ev->name || !ev->data)
        __builtin_trap();
    if (g_str_equal(ev->name, "CLOSE"))
        qmp_conn_close(conn);
    else if (g_str_equal(ev->name, "UNREF") && s->conn)
        qmp_conn_unref(g_steal_pointer(&s->conn));
}

static void
fuzz_state_cb(QmpConn *conn, QmpConnState state, const GError *error, gpointer opaque)
{
    FuzzState *s = opaque;

    if (state == QMP_CONN_READY)
        fuzz_fill(s);
}

static const QmpConnListener fuzz_listener = {
    .event = fuzz_event_cb,
    .state = fuzz_state_cb,
};

/* Drain what the connection wrote to the peer end, so it never blocks. */
static void
fuzz_drain(int fd)
{
    char buf[4096];

    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

static void
fuzz_conn(const uint8_t *data, size_t size)
{
    QmpConnOptions opts = {.max_line = FUZZ_MAX_LINE, .max_depth = FUZZ_MAX_DEPTH};
    FuzzState s = {0};
    int sv[2];
    size_t off = 0;
    /* chunk sizes vary with the input, from 1 byte up */
    size_t chunk = 1 + (size ? data[size / 2] % 97 : 0) * (size > 4096 ? 17 : 1);

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        __builtin_trap();
    s.conn = qmp_conn_new_fd(fuzz_base, sv[1], &opts);
    qmp_conn_add_listener(s.conn, &fuzz_listener, &s);

    while (off < size && s.conn && qmp_conn_get_state(s.conn) != QMP_CONN_CLOSED) {
        size_t n = MIN(chunk, size - off);
        ssize_t w = send(sv[0], data + off, n, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break;
        if (w > 0)
            off += (size_t)w;
        for (int i = 0; i < 4; i++)
            event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
        fuzz_drain(sv[0]);
    }
    /* the peer hangs up: the connection must end CLOSED, every command called back */
    shutdown(sv[0], SHUT_WR);
    for (int i = 0; i < 64 && s.conn && qmp_conn_get_state(s.conn) != QMP_CONN_CLOSED; i++) {
        event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
        fuzz_drain(sv[0]);
    }
    if (s.conn) {
        if (qmp_conn_get_state(s.conn) != QMP_CONN_CLOSED)
            __builtin_trap(); /* an EOF must close it */
        if (s.pending != 0)
            __builtin_trap(); /* every command got its callback */
        qmp_conn_unref(s.conn);
    } else if (s.pending != 0) {
        __builtin_trap();
    }
    close(sv[0]);
    /* nothing of this connection may stay on the loop */
    event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parse_lines(data, size);
    fuzz_conn(data, size);
    return 0;
}
