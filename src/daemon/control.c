/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd's control socket: clients, their QMP-shaped JSON lines in and
 * out, capped input and output, and the handshake before commands. */
#define G_LOG_DOMAIN "hotplugd"
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "control.h"
#include "hotplug-outcome.h"
#include "qmp-error.h"
#include "qmp-json.h"
#include "qmp-message.h"

/* Requests handled in one go before the loop gets a turn. */
#define CONTROL_READ_BATCH 8

struct ControlServer {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *backoff_ev;
    ControlOptions opts;
    char *path;
    char *version;
    ControlCallbacks cb;
    gpointer opaque;
    GHashTable *clients;  /* ControlClient set */
    guint64 next_id;
    gint64 refused_logged_us; /* when "too many clients" was last logged */
    guint n_refused;          /* refused since then */
};

struct ControlClient {
    ControlServer *srv;
    guint64 id;
    struct bufferevent *bev;
    gboolean negotiated;
    gboolean closing;
    gboolean read_blocked;     /* output over the cap: input waits */
    struct event *linger_ev;   /* closing: the deadline to flush (or the deferred free) */
    struct event *negotiate_ev; /* not negotiated by then: disconnected */
    struct event *more_ev;     /* lines left after a batch: read them on a later turn */
    struct evbuffer *out;      /* output of this loop turn, written at its end */
    struct event *out_ev;
    pid_t pid;
    uid_t uid;
    void (*drain_fn)(ControlClient *, gpointer);
    gpointer drain_opaque;
    gpointer data;
    GDestroyNotify data_destroy;
};

static void control_client_free(ControlClient *cl);
static void control_client_read_cb(struct bufferevent *bev, void *opaque);

/* ---- output ------------------------------------------------------------ */

static gsize
control_client_queued(ControlClient *cl)
{
    return cl->bev ? evbuffer_get_length(bufferevent_get_output(cl->bev)) : 0;
}

gsize
control_client_pending_output(ControlClient *cl)
{
    return control_client_queued(cl) + (cl->out ? evbuffer_get_length(cl->out) : 0);
}

/* Output goes out at the end of the loop turn that made it, with one
 * writev() for all of it (a reply, or every LOG event of a flush), instead
 * of through the bufferevent: that costs a loop iteration and three more
 * system calls (write readiness on, epoll_wait, off).  What the socket does
 * not take is handed to the bufferevent, which then paces it with the
 * write callback as before; so is everything on an error, which libevent
 * then reports through the event callback. */
static void
control_client_push(ControlClient *cl)
{
    evutil_socket_t fd = bufferevent_getfd(cl->bev);

    while (fd >= 0 && evbuffer_get_length(cl->out) > 0 && evbuffer_write(cl->out, fd) > 0)
        ;
    if (evbuffer_get_length(cl->out) > 0)
        bufferevent_write_buffer(cl->bev, cl->out);
}

static void control_client_write_cb(struct bufferevent *bev, void *opaque);

static void
control_client_out_cb(evutil_socket_t fd, short what, void *opaque)
{
    ControlClient *cl = opaque;

    control_client_push(cl);
    /* all written: what the write callback does once the bufferevent's
     * output has drained (pacing, closing) */
    if (control_client_queued(cl) == 0)
        control_client_write_cb(cl->bev, cl);
}

static void
control_client_write(ControlClient *cl, const char *line, gsize len)
{
    if (control_client_queued(cl) > 0) {
        /* the socket is full: behind what waits for it */
        bufferevent_write(cl->bev, line, len);
        bufferevent_write(cl->bev, "\r\n", 2);
        return;
    }
    evbuffer_add(cl->out, line, len);
    evbuffer_add(cl->out, "\r\n", 2);
    event_active(cl->out_ev, EV_WRITE, 0);
}

gboolean
control_client_send_line(ControlClient *cl, const char *line, gsize len)
{
    if (!cl->bev || cl->closing)
        return FALSE;
    if (control_client_pending_output(cl) + len > cl->srv->opts.max_output)
        return FALSE;
    control_client_write(cl, line, len);
    return TRUE;
}

static void
control_block_unref_cb(const void *data, size_t len, void *opaque)
{
    g_bytes_unref(opaque);
}

gboolean
control_client_send_block(ControlClient *cl, GBytes *lines)
{
    gsize len = 0;
    const char *data = g_bytes_get_data(lines, &len);
    struct evbuffer *to;

    if (!cl->bev || cl->closing)
        return FALSE;
    if (control_client_pending_output(cl) + len > cl->srv->opts.max_output)
        return FALSE;
    /* behind what waits for the socket, if anything does */
    to = control_client_queued(cl) > 0 ? bufferevent_get_output(cl->bev) : cl->out;
    /* shared by every subscriber it goes to, not copied */
    if (evbuffer_add_reference(to, data, len, control_block_unref_cb, g_bytes_ref(lines)) < 0) {
        g_bytes_unref(lines);
        return FALSE;
    }
    if (to == cl->out)
        event_active(cl->out_ev, EV_WRITE, 0);
    return TRUE;
}

/* Control messages (replies, errors) are small and always queued: a client
 * that does not read is cut off by its subscription, not here. */
static void
control_client_send_node(ControlClient *cl, JsonNode *node)
{
    g_autoptr(GString) text = NULL;

    if (!cl->bev || cl->closing)
        return;
    text = g_string_sized_new(256);
    qmp_json_write_node(text, node);
    control_client_write(cl, text->str, text->len);
}

/* ,"id":id} after the return value */
static GString *
control_render_return_end(GString *text, JsonNode *id)
{
    if (id) {
        g_string_append(text, ",\"id\":");
        qmp_json_write_node(text, id);
    }
    g_string_append_c(text, '}');
    return text;
}

GString *
control_render_return(JsonNode *id, const char *ret, gsize len)
{
    GString *text = g_string_sized_new(len + 64);

    g_string_append(text, "{\"return\":");
    g_string_append_len(text, ret, (gssize)len);
    return control_render_return_end(text, id);
}

GString *
control_render_return_node(JsonNode *id, JsonNode *ret)
{
    GString *text = g_string_sized_new(256);

    g_string_append(text, "{\"return\":");
    if (ret)
        qmp_json_write_node(text, ret);
    else
        g_string_append(text, "{}");
    return control_render_return_end(text, id);
}

void
control_client_return(ControlClient *cl, JsonNode *id, JsonNode *ret)
{
    g_autoptr(GString) text = NULL;

    if (!cl->bev || cl->closing)
        return;
    text = control_render_return_node(id, ret);
    control_client_write(cl, text->str, text->len);
}

void
control_client_return_line(ControlClient *cl, const char *line, gsize len)
{
    if (!cl->bev || cl->closing)
        return;
    control_client_write(cl, line, len);
}

void
control_client_error(ControlClient *cl, JsonNode *id, const char *cls, const char *desc)
{
    JsonObject *o = json_object_new();
    JsonObject *e = json_object_new();
    g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), o);
    /* a description may quote the request (cut short, perhaps inside a
     * character): what goes out must be UTF-8 */
    g_autofree char *valid = g_utf8_make_valid(desc, -1);

    json_object_set_string_member(e, "class", cls);
    json_object_set_string_member(e, "desc", valid);
    json_object_set_object_member(o, "error", e);
    if (id)
        json_object_set_member(o, "id", json_node_copy(id));
    json_object_unref(o);
    control_client_send_node(cl, n);
}

void
control_client_event(ControlClient *cl, const char *name, JsonNode *data)
{
    g_autoptr(GString) value = NULL;

    if (!cl->bev || cl->closing)
        return;
    if (data) {
        value = g_string_sized_new(256);
        qmp_json_write_node(value, data);
    }
    control_client_event_text(cl, name, value ? value->str : NULL, value ? value->len : 0);
}

void
control_client_event_text(ControlClient *cl, const char *name, const char *data, gsize len)
{
    gint64 now = g_get_real_time();
    g_autoptr(GString) text = NULL;

    if (!cl->bev || cl->closing)
        return;
    text = g_string_sized_new(len + 96);
    g_string_append(text, "{\"event\":");
    qmp_json_write_string(text, name);
    if (data) {
        g_string_append(text, ",\"data\":");
        g_string_append_len(text, data, (gssize)len);
    }
    g_string_append(text, ",\"timestamp\":{\"seconds\":");
    qmp_json_write_int(text, now / G_USEC_PER_SEC);
    g_string_append(text, ",\"microseconds\":");
    qmp_json_write_int(text, now % G_USEC_PER_SEC);
    g_string_append(text, "}}");
    control_client_write(cl, text->str, text->len);
}

static void
control_client_write_cb(struct bufferevent *bev, void *opaque)
{
    ControlClient *cl = opaque;

    if (cl->closing) {
        /* everything queued is written */
        control_client_free(cl);
        return;
    }
    if (cl->read_blocked) {
        /* the output fell to half the cap: take requests again */
        cl->read_blocked = FALSE;
        bufferevent_enable(bev, EV_READ);
        control_client_read_cb(bev, cl);
        if (cl->closing)
            return;
    }
    if (cl->drain_fn)
        cl->drain_fn(cl, cl->drain_opaque);
}

static void
control_client_linger_cb(evutil_socket_t fd, short what, void *opaque)
{
    ControlClient *cl = opaque;
    gsize left = control_client_pending_output(cl);

    if (left)
        g_message("control client %" G_GUINT64_FORMAT " (pid %d) did not read its last %"
                  G_GSIZE_FORMAT " bytes in %u ms: dropped", cl->id, (int)cl->pid, left,
                  cl->srv->opts.close_linger_ms);
    control_client_free(cl);
}

/* Never frees at once: the caller may be inside one of cl's callbacks. */
void
control_client_close_after_flush(ControlClient *cl)
{
    struct timeval tv = {0, 0};

    if (cl->closing)
        return;
    cl->closing = TRUE;
    bufferevent_disable(cl->bev, EV_READ);
    control_client_push(cl);
    if (control_client_pending_output(cl) > 0) {
        /* the write callback frees it once all is written; a client that
         * does not read is cut off after the linger time */
        bufferevent_setwatermark(cl->bev, EV_WRITE, 0, 0);
        tv.tv_sec = cl->srv->opts.close_linger_ms / 1000;
        tv.tv_usec = (cl->srv->opts.close_linger_ms % 1000) * 1000;
    }
    cl->linger_ev = evtimer_new(cl->srv->base, control_client_linger_cb, cl);
    evtimer_add(cl->linger_ev, &tv);
}

void
control_client_set_drain_cb(ControlClient *cl, void (*fn)(ControlClient *, gpointer),
                            gpointer opaque)
{
    cl->drain_fn = fn;
    cl->drain_opaque = opaque;
}

/* ---- input ------------------------------------------------------------- */


static void
control_client_handle_line(ControlClient *cl, const char *line, gsize len)
{
    g_autoptr(JsonNode) root = NULL;
    g_autoptr(GError) error = NULL;
    JsonObject *msg;
    JsonNode *id, *args_node;
    const char *cmd;

    while (len && g_ascii_isspace(line[len - 1]))
        len--;
    if (len == 0)
        return;
    if (memchr(line, '\0', len)) {
        control_client_error(cl, NULL, "GenericError", "JSON parse error: a NUL byte in the line");
        return;
    }
    root = qmp_json_parse(line, len, QMP_DEFAULT_MAX_DEPTH, &error);
    if (!root) {
        g_autofree char *desc =
            g_error_matches(error, QMP_ERROR, QMP_ERROR_TOO_DEEP)
                ? g_strdup_printf("JSON nested too deeply (more than %u levels)",
                                  QMP_DEFAULT_MAX_DEPTH)
                : g_strdup_printf("JSON parse error: %s", error->message);
        control_client_error(cl, NULL, "GenericError", desc);
        return;
    }
    msg = qmp_json_node_object(root);
    if (!msg) {
        control_client_error(cl, NULL, "GenericError", "a command must be a JSON object");
        return;
    }
    id = json_object_get_member(msg, "id");
    cmd = qmp_json_get_string(msg, "execute");
    if (!cmd) {
        control_client_error(cl, id, "GenericError", "missing member 'execute' (a string)");
        return;
    }
    {
        g_autoptr(GList) members = json_object_get_members(msg);
        for (GList *l = members; l; l = l->next) {
            const char *m = l->data;
            if (!g_str_equal(m, "execute") && !g_str_equal(m, "arguments") &&
                !g_str_equal(m, "id")) {
                g_autofree char *desc = g_strdup_printf("unknown member '%s'", m);
                control_client_error(cl, id, "GenericError", desc);
                return;
            }
        }
    }
    args_node = json_object_get_member(msg, "arguments");
    if (args_node && !JSON_NODE_HOLDS_OBJECT(args_node)) {
        control_client_error(cl, id, "GenericError", "'arguments' must be an object");
        return;
    }
    if (g_str_equal(cmd, "qmp_capabilities")) {
        if (cl->negotiated) {
            control_client_error(cl, id, "CommandNotFound",
                                 "Capabilities negotiation is already complete, command ignored");
            return;
        }
        cl->negotiated = TRUE;
        event_del(cl->negotiate_ev);
        control_client_return(cl, id, NULL);
        return;
    }
    if (!cl->negotiated) {
        control_client_error(cl, id, "CommandNotFound",
                             "Expecting capabilities negotiation with 'qmp_capabilities'");
        return;
    }
    {
        g_autoptr(JsonObject) empty = json_object_new();
        cl->srv->cb.execute(cl->srv, cl, cmd,
                            args_node ? json_node_get_object(args_node) : empty, id,
                            cl->srv->opaque);
    }
}

static void
control_client_read_cb(struct bufferevent *bev, void *opaque)
{
    ControlClient *cl = opaque;
    struct evbuffer *in = bufferevent_get_input(bev);
    guint batch = 0;

    while (!cl->closing) {
        struct evbuffer_ptr eol;
        g_autofree char *line = NULL;

        if (control_client_pending_output(cl) > cl->srv->opts.max_output) {
            /* it does not read its replies: stop taking requests until
             * it does (the write callback resumes), so they never pile up */
            cl->read_blocked = TRUE;
            bufferevent_disable(bev, EV_READ);
            return;
        }
        eol = evbuffer_search(in, "\n", 1, NULL);

        if (eol.pos >= 0 && ++batch > CONTROL_READ_BATCH) {
            /* the rest waits behind everything else that is ready (the
             * VMs' replies, deadlines, the log flush): a client's long
             * pipeline must not hold up the loop */
            event_active(cl->more_ev, EV_READ, 0);
            return;
        }
        if (eol.pos < 0) {
            if (evbuffer_get_length(in) > CONTROL_MAX_LINE) {
                g_message("control client %" G_GUINT64_FORMAT " (pid %d): line over %u bytes, "
                          "disconnected", cl->id, (int)cl->pid, CONTROL_MAX_LINE);
                control_client_error(cl, NULL, "GenericError", "line too long");
                control_client_close_after_flush(cl);
            }
            return;
        }
        if ((gsize)eol.pos > CONTROL_MAX_LINE) {
            control_client_error(cl, NULL, "GenericError", "line too long");
            control_client_close_after_flush(cl);
            return;
        }
        line = g_malloc((gsize)eol.pos + 1);
        evbuffer_remove(in, line, (gsize)eol.pos);
        evbuffer_drain(in, 1);
        line[eol.pos] = '\0';
        control_client_handle_line(cl, line, (gsize)eol.pos);
    }
}

static void
control_client_more_cb(evutil_socket_t fd, short what, void *opaque)
{
    ControlClient *cl = opaque;

    if (!cl->read_blocked)
        control_client_read_cb(cl->bev, cl);
}

static void
control_client_event_cb(struct bufferevent *bev, short what, void *opaque)
{
    ControlClient *cl = opaque;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        control_client_free(cl);
}

/* ---- clients ---------------------------------------------------------------- */

static void
control_client_free(ControlClient *cl)
{
    ControlServer *srv = cl->srv;

    if (!g_hash_table_steal(srv->clients, cl))
        return;
    if (srv->cb.closed)
        srv->cb.closed(srv, cl, srv->opaque);
    if (cl->data_destroy)
        cl->data_destroy(cl->data);
    if (cl->linger_ev)
        event_free(cl->linger_ev);
    event_free(cl->negotiate_ev);
    event_free(cl->more_ev);
    event_free(cl->out_ev);
    evbuffer_free(cl->out);
    if (cl->bev)
        bufferevent_free(cl->bev);
    g_free(cl);
}

pid_t control_client_pid(ControlClient *cl) { return cl->pid; }
uid_t control_client_uid(ControlClient *cl) { return cl->uid; }
guint64 control_client_id(ControlClient *cl) { return cl->id; }
gpointer control_client_get_data(ControlClient *cl) { return cl->data; }

void
control_client_set_data(ControlClient *cl, gpointer data, GDestroyNotify destroy)
{
    if (cl->data_destroy)
        cl->data_destroy(cl->data);
    cl->data = data;
    cl->data_destroy = destroy;
}

static void
control_server_greet(ControlClient *cl)
{
    g_autofree char *greeting = g_strdup_printf(
        "{\"QMP\":{\"version\":{\"qemu\":{\"major\":0,\"minor\":0,\"micro\":0},"
        "\"package\":\"hotplugd %s\"},\"capabilities\":[],"
        "\"hotplugd\":{\"version\":\"%s\",\"protocol\":%d}}}",
        cl->srv->version, cl->srv->version, CONTROL_PROTOCOL_VERSION);

    control_client_send_line(cl, greeting, strlen(greeting));
}

static void
control_client_negotiate_cb(evutil_socket_t fd, short what, void *opaque)
{
    ControlClient *cl = opaque;

    g_debug("control client %" G_GUINT64_FORMAT " (pid %d) did not negotiate: disconnected",
            cl->id, (int)cl->pid);
    control_client_error(cl, NULL, "GenericError",
                         "no qmp_capabilities in time: disconnected");
    control_client_close_after_flush(cl);
}

ControlClient *
control_server_add_fd(ControlServer *srv, int fd)
{
    ControlClient *cl = g_new0(ControlClient, 1);
    struct ucred cred = {0};
    socklen_t clen = sizeof(cred);

    evutil_make_socket_nonblocking(fd);
    evutil_make_socket_closeonexec(fd);
    cl->srv = srv;
    cl->id = ++srv->next_id;
    cl->pid = -1;
    cl->uid = (uid_t)-1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
        cl->pid = cred.pid;
        cl->uid = cred.uid;
    }
    cl->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    /* the lowest priority: the loop's other work goes first */
    cl->negotiate_ev = evtimer_new(srv->base, control_client_negotiate_cb, cl);
    {
        struct timeval tv = {srv->opts.negotiate_ms / 1000, (srv->opts.negotiate_ms % 1000) * 1000};
        evtimer_add(cl->negotiate_ev, &tv);
    }
    cl->more_ev = event_new(srv->base, -1, 0, control_client_more_cb, cl);
    event_priority_set(cl->more_ev, event_base_get_npriorities(srv->base) - 1);
    /* the default priority (the I/O callbacks'): the turn's output goes
     * after them, without another epoll_wait() */
    cl->out = evbuffer_new();
    cl->out_ev = event_new(srv->base, -1, 0, control_client_out_cb, cl);
    bufferevent_setcb(cl->bev, control_client_read_cb, control_client_write_cb,
                      control_client_event_cb, cl);
    /* the write callback fires when output falls to half the cap */
    bufferevent_setwatermark(cl->bev, EV_WRITE, srv->opts.max_output / 2, 0);
    bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
    g_hash_table_add(srv->clients, cl);
    g_debug("control client %" G_GUINT64_FORMAT " connected (pid %d, uid %d)", cl->id,
            (int)cl->pid, (int)cl->uid);
    control_server_greet(cl);
    return cl;
}

static void
control_server_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                         int len, void *opaque)
{
    ControlServer *srv = opaque;

    if (g_hash_table_size(srv->clients) >= srv->opts.max_clients) {
        /* a clear refusal, at once; the descriptor goes back right away */
        g_autofree char *line = g_strdup_printf(
            "{\"error\":{\"class\":\"Busy\",\"desc\":\"hotplugd serves %u control clients "
            "already (the most it takes): try again later\"}}\r\n", srv->opts.max_clients);
        gint64 now = g_get_monotonic_time();

        if (send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            g_debug("refusing a control client: %s", g_strerror(errno));
        close(fd);
        srv->n_refused++;
        if (now - srv->refused_logged_us > 10 * G_USEC_PER_SEC) {
            g_warning("%u control clients at once (the most): refused %u connection%s",
                      srv->opts.max_clients, srv->n_refused, srv->n_refused == 1 ? "" : "s");
            srv->refused_logged_us = now;
            srv->n_refused = 0;
        }
        return;
    }
    control_server_add_fd(srv, fd);
}

static void
control_server_resume_cb(evutil_socket_t fd, short what, void *opaque)
{
    ControlServer *srv = opaque;

    if (srv->listener)
        evconnlistener_enable(srv->listener);
}

static void
control_server_error_cb(struct evconnlistener *l, void *opaque)
{
    ControlServer *srv = opaque;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {1, 0};

    /* out of file descriptors: stop accepting for a second, do not spin */
    g_warning("control socket accept failed: %s; pausing for 1 s", g_strerror(err));
    evconnlistener_disable(l);
    evtimer_add(srv->backoff_ev, &tv);
}

/* Someone accepts connections on it. */
static gboolean
control_socket_in_use(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    gboolean live;

    if (fd < 0)
        return FALSE;
    live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 || errno == EAGAIN;
    close(fd);
    return live;
}

/* A write to a client that went away must fail with EPIPE, not kill the
 * daemon: libevent writes with writev(), which cannot pass MSG_NOSIGNAL.
 * A handler the program installed itself is left alone. */
static void
control_ignore_sigpipe(void)
{
    struct sigaction sa;

    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO)) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

ControlServer *
control_server_new(struct event_base *base, const ControlOptions *opts,
                   const ControlCallbacks *cb, gpointer opaque, GError **error)
{
    ControlServer *srv;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    g_autofree char *dir = NULL;
    mode_t old_umask;
    int fd;

    if (strlen(opts->path) >= sizeof(sun.sun_path)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "control socket path %s is too long", opts->path);
        return NULL;
    }
    dir = g_path_get_dirname(opts->path);
    if (g_mkdir_with_parents(dir, 0755) < 0) {
        int err = errno;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot create %s: %s", dir,
                    g_strerror(err));
        return NULL;
    }
    strcpy(sun.sun_path, opts->path);
    {
        /* only a socket is ever replaced: a file, a directory or a symbolic
         * link at the path is somebody else's */
        struct stat st;
        if (lstat(opts->path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                        "%s exists and is not a socket: refused (remove it or choose "
                        "another --socket)", opts->path);
            return NULL;
        }
    }
    /* a stale socket from a killed daemon is replaced; a live one (a daemon
     * on another state directory) is not taken over */
    if (control_socket_in_use(&sun)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "control socket %s is in use by another process", opts->path);
        return NULL;
    }
    if (unlink(opts->path) < 0 && errno != ENOENT) {
        int err = errno;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot remove old socket %s: %s",
                    opts->path, g_strerror(err));
        return NULL;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    old_umask = umask(0177);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int err = errno;
        umask(old_umask);
        if (fd >= 0)
            close(fd);
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot bind %s: %s", opts->path,
                    g_strerror(err));
        return NULL;
    }
    umask(old_umask);
    if (opts->group) {
        struct group *gr = getgrnam(opts->group);
        if (!gr || chown(opts->path, (uid_t)-1, gr->gr_gid) < 0) {
            int err = errno;
            close(fd);
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                        "cannot give %s to group %s: %s", opts->path, opts->group,
                        gr ? g_strerror(err) : "no such group");
            return NULL;
        }
    }
    if (chmod(opts->path, opts->mode) < 0) {
        int err = errno;
        close(fd);
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot chmod %s: %s",
                    opts->path, g_strerror(err));
        return NULL;
    }
    srv = g_new0(ControlServer, 1);
    srv->base = base;
    srv->opts = *opts;
    srv->path = g_strdup(opts->path);
    srv->version = g_strdup(opts->version ? opts->version : PACKAGE_VERSION);
    srv->opts.path = srv->path;
    srv->opts.group = NULL;
    srv->opts.version = srv->version;
    if (!srv->opts.max_output)
        srv->opts.max_output = 4u << 20;
    if (!srv->opts.close_linger_ms)
        srv->opts.close_linger_ms = CONTROL_CLOSE_LINGER_MS;
    if (!srv->opts.max_clients)
        srv->opts.max_clients = CONTROL_DEFAULT_MAX_CLIENTS;
    if (!srv->opts.negotiate_ms)
        srv->opts.negotiate_ms = CONTROL_NEGOTIATE_MS;
    control_ignore_sigpipe();
    srv->cb = *cb;
    srv->opaque = opaque;
    srv->clients = g_hash_table_new(g_direct_hash, g_direct_equal);
    srv->backoff_ev = evtimer_new(base, control_server_resume_cb, srv);
    srv->listener = evconnlistener_new(base, control_server_accept_cb, srv,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64, fd);
    if (!srv->listener) {
        close(fd);
        control_server_free(srv);
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot listen on %s",
                    opts->path);
        return NULL;
    }
    evconnlistener_set_error_cb(srv->listener, control_server_error_cb);
    return srv;
}

void
control_server_stop_accepting(ControlServer *srv)
{
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
        unlink(srv->path);
    }
}

guint
control_server_n_clients(ControlServer *srv)
{
    return g_hash_table_size(srv->clients);
}

void
control_server_free(ControlServer *srv)
{
    GHashTableIter it;
    gpointer key;

    if (!srv)
        return;
    control_server_stop_accepting(srv);
    while (g_hash_table_size(srv->clients)) {
        g_hash_table_iter_init(&it, srv->clients);
        g_hash_table_iter_next(&it, &key, NULL);
        control_client_free(key);
    }
    g_hash_table_unref(srv->clients);
    event_free(srv->backoff_ev);
    g_free(srv->path);
    g_free(srv->version);
    g_free(srv);
}
