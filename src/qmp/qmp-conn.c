/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One QMP connection on a libevent loop: connecting and reconnecting, the
 * greeting and negotiation, commands matched to replies by id, events to
 * listeners. */
#define G_LOG_DOMAIN "qmp"
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "qmp-conn.h"
#include "qmp-json.h"

#define QMP_GREETING_TIMEOUT_MS 10000

typedef struct {
    gint64 id;
    char *line;
    QmpReplyFunc done;
    gpointer opaque;
} QmpCmd;

typedef struct {
    guint id;
    QmpConnListener cb;
    gpointer opaque;
    gboolean removed;
} QmpListener;

struct QmpConn {
    gint ref;
    struct event_base *base;
    char *address;  /* NULL for an fd connection */
    QmpConnOptions opts;
    QmpConnState state;
    struct bufferevent *bev;
    struct event *reconnect_ev;
    struct event *greeting_ev;
    guint backoff_ms;
    gboolean user_closed;
    QmpGreeting *greeting;
    char *peer_instance;    /* the peer process of the current/last socket, or NULL */
    GError *last_error;
    gint64 next_id;
    GQueue waiting;         /* QmpCmd not yet on the wire */
    GHashTable *inflight;   /* id -> QmpCmd on the wire */
    GPtrArray *listeners;   /* QmpListener */
    guint next_listener_id;
    guint dispatching;      /* listener dispatch depth */
};

static void qmp_conn_read_cb(struct bufferevent *bev, void *opaque);
static void qmp_conn_bev_event_cb(struct bufferevent *bev, short what, void *opaque);
static void qmp_conn_reconnect_cb(evutil_socket_t fd, short what, void *opaque);
static void qmp_conn_greeting_timeout_cb(evutil_socket_t fd, short what, void *opaque);
static void qmp_conn_fail(QmpConn *c, GError *reason);

const char *
qmp_conn_state_name(QmpConnState state)
{
    switch (state) {
    case QMP_CONN_CONNECTING:
        return "connecting";
    case QMP_CONN_GREETING:
        return "greeting";
    case QMP_CONN_NEGOTIATING:
        return "negotiating";
    case QMP_CONN_READY:
        return "ready";
    case QMP_CONN_CLOSED:
        return "closed";
    }
    return "unknown";
}

static void
qmp_cmd_free(QmpCmd *cmd)
{
    g_free(cmd->line);
    g_free(cmd);
}

static const char *
qmp_conn_name(QmpConn *c)
{
    return c->address ? c->address : "(fd)";
}

/* A write to a peer that went away must fail with EPIPE, not kill the
 * process: libevent writes with writev(), which cannot pass MSG_NOSIGNAL.
 * A handler the program installed itself is left alone. */
static void
qmp_conn_ignore_sigpipe(void)
{
    static gsize done;

    if (g_once_init_enter(&done)) {
        struct sigaction sa;

        if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
            !(sa.sa_flags & SA_SIGINFO)) {
            sa.sa_handler = SIG_IGN;
            sigaction(SIGPIPE, &sa, NULL);
        }
        g_once_init_leave(&done, 1);
    }
}

static QmpConn *
qmp_conn_alloc(struct event_base *base, const QmpConnOptions *opts)
{
    QmpConn *c = g_new0(QmpConn, 1);

    qmp_conn_ignore_sigpipe();

    c->ref = 1;
    c->base = base;
    if (opts)
        c->opts = *opts;
    if (!c->opts.max_line)
        c->opts.max_line = QMP_DEFAULT_MAX_LINE;
    if (!c->opts.max_depth)
        c->opts.max_depth = QMP_DEFAULT_MAX_DEPTH;
    if (!c->opts.backoff_initial_ms)
        c->opts.backoff_initial_ms = 100;
    if (!c->opts.backoff_max_ms)
        c->opts.backoff_max_ms = 10000;
    c->backoff_ms = c->opts.backoff_initial_ms;
    c->state = QMP_CONN_CLOSED;
    c->next_id = 1;
    g_queue_init(&c->waiting);
    c->inflight = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL,
                                        (GDestroyNotify)qmp_cmd_free);
    c->listeners = g_ptr_array_new_with_free_func(g_free);
    c->reconnect_ev = evtimer_new(base, qmp_conn_reconnect_cb, c);
    c->greeting_ev = evtimer_new(base, qmp_conn_greeting_timeout_cb, c);
    return c;
}

QmpConn *
qmp_conn_new(struct event_base *base, const char *address, const QmpConnOptions *opts)
{
    QmpConn *c;

    g_return_val_if_fail(base && address, NULL);
    c = qmp_conn_alloc(base, opts);
    c->address = g_strdup(address);
    return c;
}

/* Which process is at the other end of fd: "PID:STARTTIME" from
 * SO_PEERCRED and field 22 of /proc/PID/stat (the start time in clock
 * ticks since boot), so a peer restarted on the same socket (even one that
 * got the same pid again) is told apart.  NULL when the socket gives no
 * credentials (TCP) or the process cannot be looked at. */
static char *
qmp_conn_peer_instance(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    g_autofree char *path = NULL, *stat = NULL;
    const char *p;
    guint64 start;
    char *end = NULL;

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0)
        return NULL;
    path = g_strdup_printf("/proc/%d/stat", (int)cred.pid);
    if (!g_file_get_contents(path, &stat, NULL, NULL))
        return NULL;
    /* comm may hold spaces and ')': the fields follow its last ')' */
    p = strrchr(stat, ')');
    if (!p)
        return NULL;
    p++;
    /* fields 3..21, then starttime (22) */
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ')
            p++;
        if (field == 22)
            break;
        while (*p && *p != ' ')
            p++;
    }
    start = g_ascii_strtoull(p, &end, 10);
    if (end == p)
        return NULL;
    return g_strdup_printf("%d:%" G_GUINT64_FORMAT, (int)cred.pid, start);
}

static void
qmp_conn_attach(QmpConn *c, struct bufferevent *bev)
{
    struct timeval tv = {QMP_GREETING_TIMEOUT_MS / 1000, (QMP_GREETING_TIMEOUT_MS % 1000) * 1000};

    c->bev = bev;
    g_free(c->peer_instance);
    c->peer_instance = qmp_conn_peer_instance(bufferevent_getfd(bev));
    bufferevent_setcb(bev, qmp_conn_read_cb, NULL, qmp_conn_bev_event_cb, c);
    bufferevent_enable(bev, EV_READ);
    evtimer_add(c->greeting_ev, &tv);
}

QmpConn *
qmp_conn_new_fd(struct event_base *base, int fd, const QmpConnOptions *opts)
{
    QmpConn *c;
    struct bufferevent *bev;

    g_return_val_if_fail(base && fd >= 0, NULL);
    c = qmp_conn_alloc(base, opts);
    c->opts.reconnect = FALSE;
    evutil_make_socket_nonblocking(fd);
    bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    qmp_conn_attach(c, bev);
    c->state = QMP_CONN_GREETING;
    return c;
}

QmpConn *
qmp_conn_ref(QmpConn *c)
{
    g_return_val_if_fail(c, NULL);
    g_atomic_int_inc(&c->ref);
    return c;
}

void
qmp_conn_unref(QmpConn *c)
{
    if (!c)
        return;
    if (!g_atomic_int_dec_and_test(&c->ref))
        return;
    /* pending commands still get their one callback; keep the object
     * alive (ref 1) while they run */
    c->ref = 1;
    c->user_closed = TRUE;
    if (c->state != QMP_CONN_CLOSED || g_hash_table_size(c->inflight) || c->waiting.length)
        qmp_conn_fail(c, g_error_new_literal(QMP_ERROR, QMP_ERROR_CLOSED, "connection freed"));
    if (c->ref != 1)
        g_warning("QMP connection %s referenced from its own close callbacks", qmp_conn_name(c));
    event_free(c->reconnect_ev);
    event_free(c->greeting_ev);
    g_hash_table_unref(c->inflight);
    g_ptr_array_unref(c->listeners);
    qmp_greeting_free(c->greeting);
    g_clear_error(&c->last_error);
    g_free(c->address);
    g_free(c->peer_instance);
    g_free(c);
}

/* ---- listeners ---------------------------------------------------- */

guint
qmp_conn_add_listener(QmpConn *c, const QmpConnListener *l, gpointer opaque)
{
    QmpListener *entry = g_new0(QmpListener, 1);

    entry->id = ++c->next_listener_id;
    entry->cb = *l;
    entry->opaque = opaque;
    g_ptr_array_add(c->listeners, entry);
    return entry->id;
}

static void
qmp_conn_compact_listeners(QmpConn *c)
{
    for (guint i = 0; i < c->listeners->len;) {
        QmpListener *l = g_ptr_array_index(c->listeners, i);
        if (l->removed)
            g_ptr_array_remove_index(c->listeners, i);
        else
            i++;
    }
}

void
qmp_conn_remove_listener(QmpConn *c, guint id)
{
    for (guint i = 0; i < c->listeners->len; i++) {
        QmpListener *l = g_ptr_array_index(c->listeners, i);
        if (l->id == id)
            l->removed = TRUE;
    }
    if (!c->dispatching)
        qmp_conn_compact_listeners(c);
}

static void
qmp_conn_notify_state(QmpConn *c, const GError *error)
{
    QmpConnState state = c->state;

    /* a listener may drop the last reference: keep c until the loop ends
     * (the caller must not touch c after a notification) */
    qmp_conn_ref(c);
    c->dispatching++;
    /* listeners added during dispatch are not called for this change */
    for (guint i = 0, n = c->listeners->len; i < n; i++) {
        QmpListener *l = g_ptr_array_index(c->listeners, i);
        if (!l->removed && l->cb.state)
            l->cb.state(c, state, error, l->opaque);
    }
    if (--c->dispatching == 0)
        qmp_conn_compact_listeners(c);
    qmp_conn_unref(c);
}

static void
qmp_conn_dispatch_event(QmpConn *c, const QmpEvent *ev)
{
    c->dispatching++;
    for (guint i = 0, n = c->listeners->len; i < n; i++) {
        QmpListener *l = g_ptr_array_index(c->listeners, i);
        if (!l->removed && l->cb.event)
            l->cb.event(c, ev, l->opaque);
    }
    if (--c->dispatching == 0)
        qmp_conn_compact_listeners(c);
}

static void
qmp_conn_set_state(QmpConn *c, QmpConnState state)
{
    if (c->state == state)
        return;
    g_debug("%s: %s -> %s", qmp_conn_name(c), qmp_conn_state_name(c->state),
            qmp_conn_state_name(state));
    c->state = state;
    qmp_conn_notify_state(c, NULL);
}

/* ---- commands ----------------------------------------------------- */

/* line and "\n" on the wire.  When nothing is queued (nearly always) they
 * go out at once with one sendmsg(): through the bufferevent they would
 * cost a loop iteration and three more system calls (write readiness on,
 * epoll_wait, off).  What the socket does not take now is queued behind,
 * in order; so is everything on an error, which libevent then reports
 * through the event callback as before. */
static void
qmp_conn_write(QmpConn *c, const char *line, gsize len)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    gsize done = 0;

    if (fd >= 0 && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        struct iovec iov[2] = {{(void *)line, len}, {(void *)"\n", 1}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t n;

        do
            n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n > 0)
            done = (gsize)n;
    }
    if (done < len)
        bufferevent_write(c->bev, line + done, len - done);
    if (done < len + 1)
        bufferevent_write(c->bev, "\n", 1);
}

gboolean
qmp_debug_enabled(void)
{
    static gint env = -1;

    if (env < 0)
        env = g_getenv("G_MESSAGES_DEBUG") != NULL;
    return env || g_log_get_debug_enabled();
}

static void
qmp_conn_send(QmpConn *c, QmpCmd *cmd)
{
    if (qmp_debug_enabled())
        g_debug("%s -> %s", qmp_conn_name(c), cmd->line);
    g_hash_table_insert(c->inflight, &cmd->id, cmd);
    /* QEMU needs no line ending, but hotplugd's control socket reads
     * lines; for QEMU it is one more byte of whitespace */
    qmp_conn_write(c, cmd->line, strlen(cmd->line));
}

/* Put waiting commands on the wire while there is room. */
static void
qmp_conn_pump(QmpConn *c)
{
    if (c->state != QMP_CONN_READY)
        return;
    while (c->waiting.length && g_hash_table_size(c->inflight) < QMP_CONN_MAX_INFLIGHT)
        qmp_conn_send(c, g_queue_pop_head(&c->waiting));
}

static QmpCmd *
qmp_conn_new_cmd(QmpConn *c, const char *name, JsonNode *args, QmpReplyFunc done,
                 gpointer opaque)
{
    QmpCmd *cmd = g_new0(QmpCmd, 1);

    cmd->id = c->next_id++;
    cmd->line = qmp_command_line(name, args, cmd->id);
    cmd->done = done;
    cmd->opaque = opaque;
    return cmd;
}

gboolean
qmp_conn_execute(QmpConn *c, const char *name, JsonNode *args, QmpReplyFunc done,
                 gpointer opaque, GError **error)
{
    g_autoptr(JsonNode) owned_args = args;

    g_return_val_if_fail(c && name, FALSE);
    if (c->state != QMP_CONN_READY) {
        if (c->state == QMP_CONN_CLOSED && c->last_error)
            g_set_error(error, QMP_ERROR, QMP_ERROR_CLOSED, "QMP connection %s is closed: %s",
                        qmp_conn_name(c), c->last_error->message);
        else
            g_set_error(error, QMP_ERROR, QMP_ERROR_CLOSED, "QMP connection %s is %s, not ready",
                        qmp_conn_name(c), qmp_conn_state_name(c->state));
        return FALSE;
    }
    g_queue_push_tail(&c->waiting, qmp_conn_new_cmd(c, name, owned_args, done, opaque));
    qmp_conn_pump(c);
    return TRUE;
}

/* Fail every command with a copy of reason.  The queues are emptied
 * first, so callbacks that queue new commands see a clean slate. */
static void
qmp_conn_fail_commands(QmpConn *c, const GError *reason)
{
    g_autoptr(GPtrArray) cmds = g_ptr_array_new_with_free_func((GDestroyNotify)qmp_cmd_free);
    g_autoptr(GList) ids = NULL;
    GHashTableIter it;
    gpointer value;

    /* in id order, so callers see the order they issued */
    g_hash_table_iter_init(&it, c->inflight);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        g_hash_table_iter_steal(&it);
        g_ptr_array_add(cmds, value);
    }
    for (guint i = 1; i < cmds->len; i++) {
        for (guint j = i; j > 0; j--) {
            QmpCmd *a = cmds->pdata[j - 1], *b = cmds->pdata[j];
            if (a->id < b->id)
                break;
            cmds->pdata[j - 1] = b;
            cmds->pdata[j] = a;
        }
    }
    while (c->waiting.length)
        g_ptr_array_add(cmds, g_queue_pop_head(&c->waiting));

    for (guint i = 0; i < cmds->len; i++) {
        QmpCmd *cmd = cmds->pdata[i];
        g_autoptr(GError) err = g_error_new(QMP_ERROR, QMP_ERROR_CLOSED,
                                            "QMP connection %s closed: %s", qmp_conn_name(c),
                                            reason->message);
        if (cmd->done)
            cmd->done(c, NULL, err, cmd->opaque);
    }
}

/* ---- closing and reconnecting -------------------------------------- */

static void
qmp_conn_schedule_reconnect(QmpConn *c)
{
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};

    g_debug("%s: reconnecting in %u ms", qmp_conn_name(c), c->backoff_ms);
    evtimer_add(c->reconnect_ev, &tv);
    c->backoff_ms = MIN(c->backoff_ms * 2, c->opts.backoff_max_ms);
}

/* Tear the connection down for reason (taken). */
static void
qmp_conn_fail(QmpConn *c, GError *reason)
{
    g_autoptr(GError) err = reason;
    QmpConnState was = c->state;

    qmp_conn_ref(c);
    evtimer_del(c->greeting_ev);
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->state != QMP_CONN_CLOSED || !c->last_error)
        g_debug("%s: closed: %s", qmp_conn_name(c), err->message);
    g_clear_error(&c->last_error);
    c->last_error = g_error_copy(err);
    /* CLOSED before the callbacks run: a command they issue is refused
     * instead of being written to the freed bufferevent */
    c->state = QMP_CONN_CLOSED;
    qmp_conn_fail_commands(c, err);
    if (was != QMP_CONN_CLOSED && c->state == QMP_CONN_CLOSED)
        qmp_conn_notify_state(c, err);
    if (c->opts.reconnect && c->address && !c->user_closed &&
        !evtimer_pending(c->reconnect_ev, NULL))
        qmp_conn_schedule_reconnect(c);
    qmp_conn_unref(c);
}

void
qmp_conn_close(QmpConn *c)
{
    g_return_if_fail(c);
    c->user_closed = TRUE;
    evtimer_del(c->reconnect_ev);
    if (c->state == QMP_CONN_CLOSED && !c->bev && !g_hash_table_size(c->inflight) &&
        !c->waiting.length)
        return;
    qmp_conn_fail(c, g_error_new_literal(QMP_ERROR, QMP_ERROR_CLOSED, "closed by us"));
}

static gboolean
qmp_conn_parse_tcp(const char *address, char **host, char **port)
{
    const char *colon = strrchr(address, ':');

    if (strchr(address, '/') || !colon || colon == address || !colon[1])
        return FALSE;
    for (const char *p = colon + 1; *p; p++)
        if (!g_ascii_isdigit(*p))
            return FALSE;
    *host = g_strndup(address, colon - address);
    *port = g_strdup(colon + 1);
    /* [::1]:4444 */
    if (**host == '[' && (*host)[strlen(*host) - 1] == ']') {
        char *inner = g_strndup(*host + 1, strlen(*host) - 2);
        g_free(*host);
        *host = inner;
    }
    return TRUE;
}

static gboolean
qmp_conn_start_connect(QmpConn *c, GError **error)
{
    g_autofree char *host = NULL, *port = NULL;
    struct bufferevent *bev;
    int rc, fd;

    if (qmp_conn_parse_tcp(c->address, &host, &port)) {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(host, port, &hints, &res);

        if (gai != 0) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_CONNECT, "cannot resolve %s: %s", c->address,
                        gai_strerror(gai));
            return FALSE;
        }
        bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
        rc = bufferevent_socket_connect(bev, res->ai_addr, (int)res->ai_addrlen);
        freeaddrinfo(res);
    } else {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};

        if (strlen(c->address) >= sizeof(sun.sun_path)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_CONNECT,
                        "socket path %s is longer than %zu bytes", c->address,
                        sizeof(sun.sun_path) - 1);
            return FALSE;
        }
        strcpy(sun.sun_path, c->address);
        /* a UNIX connect completes or fails at once: do it here, so the
         * error is the real one (libevent's deferred report loses errno) */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            g_set_error(error, QMP_ERROR, QMP_ERROR_CONNECT, "cannot connect to %s: %s",
                        c->address, g_strerror(err));
            return FALSE;
        }
        bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
        c->state = QMP_CONN_CONNECTING;
        qmp_conn_attach(c, bev);
        qmp_conn_notify_state(c, NULL);
        qmp_conn_set_state(c, QMP_CONN_GREETING);
        return TRUE;
    }
    if (rc < 0) {
        int err = errno;
        bufferevent_free(bev);
        g_set_error(error, QMP_ERROR, QMP_ERROR_CONNECT, "cannot connect to %s: %s", c->address,
                    g_strerror(err));
        return FALSE;
    }
    c->state = QMP_CONN_CONNECTING;
    qmp_conn_attach(c, bev);
    qmp_conn_notify_state(c, NULL);
    return TRUE;
}

/* A retry that failed at once: no state change to announce (it is still
 * CLOSED), only the reason to keep and the next try to schedule. */
static void
qmp_conn_connect_failed(QmpConn *c, GError *reason)
{
    g_clear_error(&c->last_error);
    c->last_error = reason;
    qmp_conn_schedule_reconnect(c);
}

gboolean
qmp_conn_open(QmpConn *c, GError **error)
{
    g_autoptr(GError) local = NULL;

    g_return_val_if_fail(c, FALSE);
    if (!c->address) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_CONNECT, "an fd connection cannot be reopened");
        return FALSE;
    }
    if (c->state != QMP_CONN_CLOSED)
        return TRUE;
    c->user_closed = FALSE;
    if (qmp_conn_start_connect(c, &local))
        return TRUE;
    if (c->opts.reconnect) {
        g_message("%s", local->message);
        qmp_conn_connect_failed(c, g_steal_pointer(&local));
        return TRUE;
    }
    g_clear_error(&c->last_error);
    c->last_error = g_error_copy(local);
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
}

static void
qmp_conn_reconnect_cb(evutil_socket_t fd, short what, void *opaque)
{
    /* a listener may drop the last reference on CONNECTING */
    g_autoptr(QmpConn) c = qmp_conn_ref(opaque);
    g_autoptr(GError) local = NULL;

    if (c->state != QMP_CONN_CLOSED || c->user_closed)
        return;
    if (!qmp_conn_start_connect(c, &local)) {
        g_debug("%s", local->message);
        qmp_conn_connect_failed(c, g_steal_pointer(&local));
    }
}

static void
qmp_conn_greeting_timeout_cb(evutil_socket_t fd, short what, void *opaque)
{
    QmpConn *c = opaque;

    if (c->state == QMP_CONN_READY)
        return;
    qmp_conn_fail(c, g_error_new(QMP_ERROR, QMP_ERROR_TIMEOUT,
                                 "no QMP greeting from %s within %d s (a QMP socket serves one "
                                 "client at a time: is another client connected?)",
                                 qmp_conn_name(c), QMP_GREETING_TIMEOUT_MS / 1000));
}

static void
qmp_conn_bev_event_cb(struct bufferevent *bev, short what, void *opaque)
{
    /* a listener may drop the last reference while we notify */
    g_autoptr(QmpConn) c = qmp_conn_ref(opaque);

    if (what & BEV_EVENT_CONNECTED) {
        g_debug("%s: connected", qmp_conn_name(c));
        if (c->state == QMP_CONN_CONNECTING)
            qmp_conn_set_state(c, QMP_CONN_GREETING);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        qmp_conn_fail(c, g_error_new(QMP_ERROR, QMP_ERROR_CLOSED, "%s hung up",
                                     qmp_conn_name(c)));
    } else if (what & BEV_EVENT_ERROR) {
        int err = EVUTIL_SOCKET_ERROR();
        if (c->state == QMP_CONN_CONNECTING)
            qmp_conn_fail(c, g_error_new(QMP_ERROR, QMP_ERROR_CONNECT, "cannot connect to %s: %s",
                                         qmp_conn_name(c), g_strerror(err)));
        else
            qmp_conn_fail(c, g_error_new(QMP_ERROR, QMP_ERROR_CLOSED, "connection to %s lost: %s",
                                         qmp_conn_name(c), g_strerror(err)));
    }
}

/* ---- reading ------------------------------------------------------ */

static void
qmp_conn_negotiated_cb(QmpConn *c, JsonNode *ret, const GError *error, gpointer opaque)
{
    if (error) {
        if (error->code != QMP_ERROR_CLOSED)
            qmp_conn_fail(c, g_error_new(QMP_ERROR, QMP_ERROR_PROTOCOL,
                                         "QMP negotiation with %s failed: %s", qmp_conn_name(c),
                                         error->message));
        return;
    }
    c->backoff_ms = c->opts.backoff_initial_ms;
    evtimer_del(c->greeting_ev);
    qmp_conn_set_state(c, QMP_CONN_READY);
    qmp_conn_pump(c);
}

static void
qmp_conn_handle_greeting(QmpConn *c, QmpMessage *msg)
{
    g_autoptr(GError) err = NULL;
    QmpGreeting *g;
    JsonNode *args = NULL;

    if (c->state != QMP_CONN_GREETING) {
        g_warning("%s: unexpected QMP greeting in state %s, ignored", qmp_conn_name(c),
                  qmp_conn_state_name(c->state));
        return;
    }
    g = qmp_greeting_parse(msg->greeting, &err);
    if (!g) {
        qmp_conn_fail(c, g_steal_pointer(&err));
        return;
    }
    qmp_greeting_free(c->greeting);
    c->greeting = g;
    g_debug("%s: QEMU %d.%d.%d (%s)", qmp_conn_name(c), g->major, g->minor, g->micro,
            g->package);
    if (qmp_greeting_has_capability(g, "oob") && !c->opts.no_oob) {
        JsonObject *o = json_object_new();
        JsonArray *a = json_array_new();
        json_array_add_string_element(a, "oob");
        json_object_set_array_member(o, "enable", a);
        args = json_node_init_object(json_node_alloc(), o);
        json_object_unref(o);
    }
    qmp_conn_set_state(c, QMP_CONN_NEGOTIATING);
    if (c->state != QMP_CONN_NEGOTIATING) {
        if (args)
            json_node_unref(args);
        return;
    }
    qmp_conn_send(c, qmp_conn_new_cmd(c, "qmp_capabilities", args, qmp_conn_negotiated_cb, NULL));
    if (args)
        json_node_unref(args);
}

static void
qmp_conn_handle_reply(QmpConn *c, QmpMessage *msg)
{
    g_autoptr(GError) err = NULL;
    QmpCmd *cmd;

    if (!msg->has_id || !msg->id_is_int) {
        /* QEMU answers malformed input with an id-less error; never match it */
        g_autofree char *text = qmp_json_to_string(msg->root);
        g_warning("%s: QMP reply without a usable id dropped: %s", qmp_conn_name(c), text);
        return;
    }
    if (!g_hash_table_steal_extended(c->inflight, &msg->id, NULL, (gpointer *)&cmd)) {
        g_warning("%s: QMP reply for unknown id %" G_GINT64_FORMAT " dropped", qmp_conn_name(c),
                  msg->id);
        return;
    }
    if (msg->type == QMP_MSG_ERROR)
        err = qmp_error_from_json(msg->error);
    if (cmd->done) {
        JsonNode *error_node = json_object_get_member(json_node_get_object(msg->root), "error");
        cmd->done(c, err ? error_node : msg->ret, err, cmd->opaque);
    }
    qmp_cmd_free(cmd);
    qmp_conn_pump(c);
}

static void
qmp_conn_handle_line(QmpConn *c, const char *line, gsize len)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpMessage) msg = NULL;

    if (len == 0)
        return;
    if (qmp_debug_enabled())
        g_debug("%s <- %.*s", qmp_conn_name(c), (int)MIN(len, 4096), line);
    msg = qmp_message_parse(line, len, c->opts.max_depth, &err);
    if (!msg) {
        qmp_conn_fail(c, g_steal_pointer(&err));
        return;
    }
    switch (msg->type) {
    case QMP_MSG_GREETING:
        qmp_conn_handle_greeting(c, msg);
        break;
    case QMP_MSG_RETURN:
    case QMP_MSG_ERROR:
        qmp_conn_handle_reply(c, msg);
        break;
    case QMP_MSG_EVENT: {
        QmpEvent ev = {msg->event, msg->data, msg->timestamp_us};
        qmp_conn_dispatch_event(c, &ev);
        break;
    }
    }
}

static void
qmp_conn_read_cb(struct bufferevent *bev, void *opaque)
{
    QmpConn *c = opaque;
    struct evbuffer *in = bufferevent_get_input(bev);

    qmp_conn_ref(c);
    /* data can come before libevent reports the connect: it proves it */
    if (c->state == QMP_CONN_CONNECTING)
        qmp_conn_set_state(c, QMP_CONN_GREETING);
    while (c->bev == bev) {
        struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
        gsize len;
        g_autofree char *line = NULL;

        if (eol.pos < 0) {
            /* max_line bytes and the "\r" of their line ending may wait */
            if (evbuffer_get_length(in) > c->opts.max_line + 1)
                qmp_conn_fail(c, g_error_new(QMP_ERROR, QMP_ERROR_TOO_LONG,
                                             "QMP line from %s longer than %zu bytes",
                                             qmp_conn_name(c), c->opts.max_line));
            break;
        }
        len = (gsize)eol.pos;
        if (len > c->opts.max_line + 1) {
            qmp_conn_fail(c, g_error_new(QMP_ERROR, QMP_ERROR_TOO_LONG,
                                         "QMP line from %s longer than %zu bytes",
                                         qmp_conn_name(c), c->opts.max_line));
            break;
        }
        line = g_malloc(len + 1);
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, 1);
        if (len && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        if (len > c->opts.max_line) {
            qmp_conn_fail(c, g_error_new(QMP_ERROR, QMP_ERROR_TOO_LONG,
                                         "QMP line from %s longer than %zu bytes",
                                         qmp_conn_name(c), c->opts.max_line));
            break;
        }
        qmp_conn_handle_line(c, line, len);
    }
    qmp_conn_unref(c);
}

/* ---- getters ------------------------------------------------------ */

QmpConnState
qmp_conn_get_state(QmpConn *c)
{
    return c->state;
}

const char *
qmp_conn_get_address(QmpConn *c)
{
    return c->address;
}

const QmpGreeting *
qmp_conn_get_greeting(QmpConn *c)
{
    return c->greeting;
}

const GError *
qmp_conn_get_last_error(QmpConn *c)
{
    return c->last_error;
}

const char *
qmp_conn_get_peer_instance(QmpConn *c)
{
    return c->peer_instance;
}

struct event_base *
qmp_conn_get_base(QmpConn *c)
{
    return c->base;
}

/* ---- synchronous helpers for top-level callers -------------------- */

static void
qmp_loop_timeout_cb(evutil_socket_t fd, short what, void *opaque)
{
    *(gboolean *)opaque = TRUE;
}

gboolean
qmp_loop_run_until(struct event_base *base, const gboolean *flag, guint timeout_ms)
{
    gboolean timed_out = FALSE;
    struct event *timer = NULL;

    if (timeout_ms) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        timer = evtimer_new(base, qmp_loop_timeout_cb, &timed_out);
        evtimer_add(timer, &tv);
    }
    while (!*flag && !timed_out) {
        if (event_base_loop(base, EVLOOP_ONCE) != 0)
            break; /* nothing left that could set the flag */
    }
    if (timer)
        event_free(timer);
    return *flag;
}

typedef struct {
    gboolean done;
    GError *error;
} QmpReadyWait;

static void
qmp_conn_ready_wait_cb(QmpConn *c, QmpConnState state, const GError *error, gpointer opaque)
{
    QmpReadyWait *w = opaque;

    if (state == QMP_CONN_READY) {
        w->done = TRUE;
    } else if (state == QMP_CONN_CLOSED && !c->opts.reconnect) {
        w->done = TRUE;
        w->error = error ? g_error_copy(error)
                         : g_error_new_literal(QMP_ERROR, QMP_ERROR_CLOSED, "connection closed");
    }
}

gboolean
qmp_conn_wait_ready(QmpConn *c, guint timeout_ms, GError **error)
{
    static const QmpConnListener l = {.state = qmp_conn_ready_wait_cb};
    QmpReadyWait w = {0};
    guint id;

    if (c->state == QMP_CONN_READY)
        return TRUE;
    if (c->state == QMP_CONN_CLOSED && !c->opts.reconnect) {
        if (c->last_error)
            g_set_error_literal(error, QMP_ERROR, c->last_error->code, c->last_error->message);
        else
            g_set_error(error, QMP_ERROR, QMP_ERROR_CLOSED, "QMP connection %s is closed",
                        qmp_conn_name(c));
        return FALSE;
    }
    id = qmp_conn_add_listener(c, &l, &w);
    qmp_loop_run_until(c->base, &w.done, timeout_ms);
    qmp_conn_remove_listener(c, id);
    if (w.error) {
        g_propagate_error(error, w.error);
        return FALSE;
    }
    if (!w.done) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_TIMEOUT,
                    "QMP connection %s not ready after %u ms%s%s", qmp_conn_name(c), timeout_ms,
                    c->last_error ? ": " : "", c->last_error ? c->last_error->message : "");
        return FALSE;
    }
    return TRUE;
}

typedef struct {
    gboolean done;
    gboolean abandoned;
    JsonNode *ret;
    GError *error;
} QmpSyncWait;

static void
qmp_conn_sync_reply_cb(QmpConn *c, JsonNode *ret, const GError *error, gpointer opaque)
{
    QmpSyncWait *w = opaque;

    if (w->abandoned) {
        g_free(w);
        return;
    }
    w->done = TRUE;
    if (error)
        w->error = g_error_copy(error);
    else
        w->ret = json_node_ref(ret);
}

gboolean
qmp_conn_execute_sync(QmpConn *c, const char *cmd, JsonNode *args, JsonNode **ret,
                      guint timeout_ms, GError **error)
{
    QmpSyncWait *w = g_new0(QmpSyncWait, 1);

    if (!qmp_conn_execute(c, cmd, args, qmp_conn_sync_reply_cb, w, error)) {
        g_free(w);
        return FALSE;
    }
    if (!qmp_loop_run_until(c->base, &w->done, timeout_ms)) {
        /* the reply callback still comes, later; it frees w */
        w->abandoned = TRUE;
        g_set_error(error, QMP_ERROR, QMP_ERROR_TIMEOUT, "no reply to %s from %s within %u ms",
                    cmd, qmp_conn_name(c), timeout_ms);
        return FALSE;
    }
    if (w->error) {
        g_propagate_error(error, w->error);
        g_free(w);
        return FALSE;
    }
    if (ret)
        *ret = w->ret;
    else
        json_node_unref(w->ret);
    g_free(w);
    return TRUE;
}
