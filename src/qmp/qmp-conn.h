/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One QMP connection on a libevent loop.
 *
 * States: CONNECTING -> GREETING -> NEGOTIATING -> READY -> CLOSED, and
 * with reconnect enabled CLOSED -> (backoff) -> CONNECTING again.  Every
 * command carries an integer id; at most QMP_CONN_MAX_INFLIGHT are on the
 * wire, the rest wait in order.  Events go to every listener in arrival
 * order, including those that come while a reply is awaited. */
#pragma once

#include <event2/event.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "qmp-error.h"
#include "qmp-greeting.h"
#include "qmp-message.h"

G_BEGIN_DECLS

#define QMP_CONN_MAX_INFLIGHT 8

typedef struct QmpConn QmpConn;

typedef enum {
    QMP_CONN_CONNECTING,
    QMP_CONN_GREETING,
    QMP_CONN_NEGOTIATING,
    QMP_CONN_READY,
    QMP_CONN_CLOSED,
} QmpConnState;

const char *qmp_conn_state_name(QmpConnState state);

typedef struct {
    gsize max_line;              /* 0: QMP_DEFAULT_MAX_LINE */
    guint max_depth;             /* 0: QMP_DEFAULT_MAX_DEPTH */
    gboolean reconnect;          /* reconnect after a loss, with backoff */
    guint backoff_initial_ms;    /* 0: 100 */
    guint backoff_max_ms;        /* 0: 10000 */
    gboolean no_oob;             /* do not enable oob even when offered */
} QmpConnOptions;

/* ret is the "return" member, borrowed.  When error is set, ret is the
 * reply's "error" object for an {"error": ...} reply (so a caller can read
 * a class QMP_ERROR does not know), else NULL.  Called exactly once per
 * accepted command: with the reply, or with a QMP_ERROR_CLOSED error when
 * the connection goes first. */
typedef void (*QmpReplyFunc)(QmpConn *conn, JsonNode *ret, const GError *error,
                             gpointer opaque);

typedef struct {
    const char *name;     /* "DEVICE_DELETED" */
    JsonObject *data;     /* never NULL */
    gint64 timestamp_us;  /* QEMU's timestamp, or -1 */
} QmpEvent;

typedef struct {
    /* An event arrived. */
    void (*event)(QmpConn *conn, const QmpEvent *event, gpointer opaque);
    /* The state changed; error says why on CLOSED (may be NULL for an
     * orderly local close). */
    void (*state)(QmpConn *conn, QmpConnState state, const GError *error,
                  gpointer opaque);
} QmpConnListener;

/* address: a UNIX socket path, or "host:port" for TCP (anything without a
 * '/' that ends in ":<digits>"). */
QmpConn *qmp_conn_new(struct event_base *base, const char *address,
                      const QmpConnOptions *opts);
/* An already connected socket (tests: one end of a socketpair).  The
 * connection owns fd from now on; reconnect is not possible. */
QmpConn *qmp_conn_new_fd(struct event_base *base, int fd, const QmpConnOptions *opts);

QmpConn *qmp_conn_ref(QmpConn *conn);
void qmp_conn_unref(QmpConn *conn);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpConn, qmp_conn_unref)

/* Start connecting (address connections).  Errors only for an address
 * that cannot work at all; a refused connect shows up as CLOSED (and is
 * retried when reconnect is on). */
gboolean qmp_conn_open(QmpConn *conn, GError **error);
/* Close now: pending commands fail with QMP_ERROR_CLOSED, listeners see
 * CLOSED, no reconnect. */
void qmp_conn_close(QmpConn *conn);

guint qmp_conn_add_listener(QmpConn *conn, const QmpConnListener *l, gpointer opaque);
void qmp_conn_remove_listener(QmpConn *conn, guint id);

QmpConnState qmp_conn_get_state(QmpConn *conn);
const char *qmp_conn_get_address(QmpConn *conn);
/* NULL until the greeting has been read. */
const QmpGreeting *qmp_conn_get_greeting(QmpConn *conn);
/* The error that closed the connection last, or NULL. */
const GError *qmp_conn_get_last_error(QmpConn *conn);
struct event_base *qmp_conn_get_base(QmpConn *conn);
/* The process at the other end of the current (or last) socket, as
 * "PID:STARTTIME" (SO_PEERCRED and /proc/PID/stat): it changes when QEMU
 * is restarted on the same socket.  NULL when unknown (TCP, no /proc). */
const char *qmp_conn_get_peer_instance(QmpConn *conn);

/* Queue a command.  args (may be NULL) is taken.  Fails only when the
 * connection is not READY. */
gboolean qmp_conn_execute(QmpConn *conn, const char *cmd, JsonNode *args,
                          QmpReplyFunc done, gpointer opaque, GError **error);

/* For top-level callers only (CLI main, tests), never from a callback:
 * run the loop until the connection is READY (or CLOSED: error). */
gboolean qmp_conn_wait_ready(QmpConn *conn, guint timeout_ms, GError **error);
/* Same restriction: execute and run the loop until the reply.  *ret gets
 * a new reference to the "return" member. */
gboolean qmp_conn_execute_sync(QmpConn *conn, const char *cmd, JsonNode *args,
                               JsonNode **ret, guint timeout_ms, GError **error);

/* Run the loop until *flag is TRUE or timeout_ms passes (0: no limit).
 * Returns *flag. */
gboolean qmp_loop_run_until(struct event_base *base, const gboolean *flag, guint timeout_ms);

/* Whether debug messages (the QMP traffic, each operation's steps) go
 * anywhere: g_log_set_debug_enabled(TRUE), as hotplugd -vv and hotplugctl
 * -vv set it, or G_MESSAGES_DEBUG in the environment.  They are not even
 * formatted otherwise. */
gboolean qmp_debug_enabled(void);

G_END_DECLS
