/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd's control socket, in process: a Daemon (daemon_new) on a temp
 * state directory and socket, driven by raw sockets and by QmpConn from the
 * test, all on one libevent loop.  VMs are fake QMP peers (fake-peer.h)
 * behind a UNIX listener served by the test.
 *
 * Covered: the greeting; negotiation; every malformed-input path (bad JSON,
 * non-objects, bad members, bad argument values, over-long lines, deep
 * nesting, two JSON values on one line); clients that never read (a
 * following subscriber that overflows; a client that pipelines requests
 * without reading replies); clients that go away mid-request; SIGPIPE;
 * runtime VMs across a restart; a second daemon; --since resume; the
 * retention gap.  Not covered: EMFILE on accept (the 1 s back-off) — it
 * needs the process's fd limit lowered between the clients' connect and
 * the server's accept, which this in-process test cannot do reliably. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "control.h"
#include "daemon.h"
#include "fake-peer.h"
#include "hotplug-outcome.h"
#include "hotplug-vm.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define WAIT_MS 5000

/* ---- log capture ------------------------------------------------------- */

/* Messages of the "hotplugd" domain, for assertions; quiet unless
 * $TEST_VERBOSE is set. */
static GPtrArray *daemon_log;

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
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        return g_log_writer_default(level, fields, n_fields, opaque);
    if (daemon_log && message && g_strcmp0(domain, "hotplugd") == 0)
        g_ptr_array_add(daemon_log, g_strdup(message));
    if (g_getenv("TEST_VERBOSE"))
        return g_log_writer_standard_streams(level, fields, n_fields, opaque);
    return G_LOG_WRITER_HANDLED;
}

static const char *
log_find(const char *needle)
{
    for (guint i = 0; i < daemon_log->len; i++)
        if (strstr(daemon_log->pdata[i], needle))
            return daemon_log->pdata[i];
    return NULL;
}

/* ---- fixture ----------------------------------------------------------- */

typedef struct Client Client;

typedef struct {
    struct event_base *base;
    char *dir, *state_dir, *sock, *qmp_path;
    Daemon *d;
    /* a fake QEMU: the test's listener at qmp_path; the latest peer */
    int qmp_lfd;
    struct event *qmp_accept_ev;
    FakePeer *peer;
    guint n_peers;
    GPtrArray *clients;
    char *tmpfs; /* mounted by the test: unmounted in teardown */
} Fixture;

struct Client {
    Fixture *f;
    int fd;
    GString *in;
    gboolean eof;
    gboolean paused; /* the pump does not read it */
    gboolean last_crlf;
};

static void
rm_tree(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *name;

    if (d) {
        while ((name = g_dir_read_name(d))) {
            g_autofree char *sub = g_build_filename(path, name, NULL);
            struct stat st;

            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                rm_tree(sub);
            else
                unlink(sub);
        }
    }
    rmdir(path);
}

static void
client_free(Client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    g_string_free(c->in, TRUE);
    g_free(c);
}

static void
fake_qemu_accept_cb(evutil_socket_t lfd, short what, void *opaque)
{
    Fixture *f = opaque;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return;
    if (f->peer)
        fake_peer_free(f->peer);
    f->peer = fake_peer_new_from_fd(f->base, fd);
    f->n_peers++;
    fake_peer_greet(f->peer);
    /* on connect the VM lists its devices */
    fake_peer_auto(f->peer, "qom-list", "[]");
}

static int
unix_listen(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    g_assert(strlen(path) < sizeof(sun.sun_path));
    strcpy(sun.sun_path, path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 16) < 0)
        g_error("listen on %s: %s", path, g_strerror(errno));
    return fd;
}

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->dir = g_dir_make_tmp("test-control-XXXXXX", NULL);
    assert_non_null(f->dir);
    f->state_dir = g_build_filename(f->dir, "state", NULL);
    f->sock = g_build_filename(f->dir, "ctl.sock", NULL);
    f->qmp_path = g_build_filename(f->dir, "vm1.qmp", NULL);
    f->base = event_base_new();
    f->qmp_lfd = unix_listen(f->qmp_path);
    f->qmp_accept_ev = event_new(f->base, f->qmp_lfd, EV_READ | EV_PERSIST, fake_qemu_accept_cb, f);
    event_add(f->qmp_accept_ev, NULL);
    f->clients = g_ptr_array_new_with_free_func((GDestroyNotify)client_free);
    daemon_log = g_ptr_array_new_with_free_func(g_free);
    *state = f;
    return 0;
}

static void
fixture_stop(Fixture *f)
{
    g_ptr_array_set_size(f->clients, 0);
    g_clear_pointer(&f->d, daemon_free);
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    fixture_stop(f);
    if (f->peer)
        fake_peer_free(f->peer);
    event_free(f->qmp_accept_ev);
    close(f->qmp_lfd);
    g_ptr_array_unref(f->clients);
    event_base_free(f->base);
    if (f->tmpfs) {
        if (umount2(f->tmpfs, MNT_DETACH) < 0)
            g_warning("umount %s: %s", f->tmpfs, g_strerror(errno));
        g_free(f->tmpfs);
    }
    rm_tree(f->dir);
    g_free(f->dir);
    g_free(f->state_dir);
    g_free(f->sock);
    g_free(f->qmp_path);
    g_free(f);
    g_clear_pointer(&daemon_log, g_ptr_array_unref);
    return 0;
}

static DaemonConfig *
fixture_config(Fixture *f)
{
    DaemonConfig *cfg = daemon_config_new_defaults();

    g_free(cfg->state_dir);
    cfg->state_dir = g_strdup(f->state_dir);
    g_free(cfg->socket_path);
    cfg->socket_path = g_strdup(f->sock);
    return cfg;
}

/* cfg (taken) may be NULL: the defaults with the fixture's paths */
static void
fixture_start(Fixture *f, DaemonConfig *cfg)
{
    g_autoptr(GError) error = NULL;

    f->d = daemon_new(f->base, cfg ? cfg : fixture_config(f), NULL, &error);
    if (!f->d)
        fail_msg("daemon_new: %s", error->message);
}

/* ---- raw clients ------------------------------------------------------- */

static void
client_poll(Client *c)
{
    char buf[65536];

    while (!c->eof) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            g_string_append_len(c->in, buf, n);
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            c->eof = TRUE;
        else
            break;
    }
}

/* One turn of the loop, then read every client that is not paused. */
static void
pump_once(Fixture *f)
{
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    for (guint i = 0; i < f->clients->len; i++) {
        Client *c = f->clients->pdata[i];
        if (!c->paused)
            client_poll(c);
    }
    g_usleep(200);
}

static void
pump_ms(Fixture *f, guint ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (g_get_monotonic_time() < end)
        pump_once(f);
}

#define WAIT_FOR(f, cond, ms)                                                                  \
    do {                                                                                       \
        gint64 end_ = g_get_monotonic_time() + (gint64)(ms)*1000;                              \
        while (!(cond) && g_get_monotonic_time() < end_)                                       \
            pump_once(f);                                                                      \
        if (!(cond))                                                                           \
            fail_msg("timed out waiting for %s", #cond);                                       \
    } while (0)

static Client *
client_connect(Fixture *f, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    Client *c = g_new0(Client, 1);

    c->f = f;
    c->in = g_string_new(NULL);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(c->fd >= 0);
    strcpy(sun.sun_path, path);
    if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        fail_msg("connect %s: %s", path, g_strerror(errno));
    g_ptr_array_add(f->clients, c);
    return c;
}

static Client *
client_new(Fixture *f)
{
    return client_connect(f, f->sock);
}

/* The next message (a new node), or NULL at EOF or after timeout_ms. */
static JsonNode *
client_next(Client *c, guint timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        char *nl = memchr(c->in->str, '\n', c->in->len);
        if (nl) {
            gsize len = (gsize)(nl - c->in->str);
            g_autofree char *line = g_strndup(c->in->str, len);
            g_autoptr(JsonParser) p = json_parser_new();
            g_autoptr(GError) error = NULL;

            g_string_erase(c->in, 0, (gssize)len + 1);
            c->last_crlf = len > 0 && line[len - 1] == '\r';
            if (!json_parser_load_from_data(p, line, -1, &error))
                fail_msg("the daemon sent bad JSON (%s): %.200s", error->message, line);
            return json_parser_steal_root(p);
        }
        if (c->eof || g_get_monotonic_time() > end)
            return NULL;
        client_poll(c);
        pump_once(c->f);
    }
}

static gboolean
client_send(Client *c, const char *data, gsize len)
{
    gsize off = 0;
    gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

    while (off < len) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            off += (gsize)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (g_get_monotonic_time() > end)
                fail_msg("the daemon stopped reading");
            pump_once(c->f);
        } else {
            return FALSE;
        }
    }
    return TRUE;
}

static void G_GNUC_PRINTF(2, 3)
client_printf(Client *c, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;
    g_autofree char *line = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = g_strconcat(text, "\n", NULL);
    assert_true(client_send(c, line, strlen(line)));
}

static char *
node_text(JsonNode *n)
{
    return n ? json_to_string(n, FALSE) : g_strdup("(nothing)");
}

/* The next message that is not an event. */
static JsonNode *
client_reply(Client *c)
{
    for (;;) {
        JsonNode *n = client_next(c, WAIT_MS);
        if (!n)
            fail_msg("no reply from the daemon%s", c->eof ? " (disconnected)" : "");
        if (!json_object_has_member(json_node_get_object(n), "event"))
            return n;
        json_node_unref(n);
    }
}

static JsonNode *G_GNUC_PRINTF(2, 3)
call(Client *c, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    client_printf(c, "%s", text);
    return client_reply(c);
}

/* The "return" member of n, which must be a reply with id_json (NULL: no id). */
static JsonNode *
assert_return(JsonNode *n, const char *id_json)
{
    JsonObject *o = qmp_json_node_object(n);
    g_autofree char *text = node_text(n);
    JsonNode *ret = o ? json_object_get_member(o, "return") : NULL;
    JsonNode *id = o ? json_object_get_member(o, "id") : NULL;

    if (!ret)
        fail_msg("expected a return, got %s", text);
    if (id_json) {
        g_autofree char *id_text = node_text(id);
        if (!id || !g_str_equal(id_text, id_json))
            fail_msg("expected id %s in %s", id_json, text);
    } else if (id) {
        fail_msg("expected no id in %s", text);
    }
    assert_int_equal(json_object_get_size(o), id_json ? 2 : 1);
    return ret;
}

static void
assert_error(JsonNode *n, const char *cls, const char *desc_part, const char *id_json)
{
    JsonObject *o = qmp_json_node_object(n);
    JsonObject *e = qmp_json_get_object(o, "error");
    JsonNode *id = o ? json_object_get_member(o, "id") : NULL;
    g_autofree char *text = node_text(n);

    if (!e)
        fail_msg("expected error %s (%s), got %s", cls, desc_part, text);
    if (g_strcmp0(qmp_json_get_string(e, "class"), cls) != 0 ||
        !strstr(qmp_json_get_string(e, "desc") ?: "", desc_part))
        fail_msg("expected error %s (... %s ...), got %s", cls, desc_part, text);
    assert_int_equal(json_object_get_size(e), 2);
    if (id_json) {
        g_autofree char *id_text = node_text(id);
        if (!id || !g_str_equal(id_text, id_json))
            fail_msg("expected id %s in %s", id_json, text);
    } else if (id) {
        fail_msg("expected no id in %s", text);
    }
    assert_int_equal(json_object_get_size(o), id_json ? 2 : 1);
}

static void
call_error(Client *c, const char *line, const char *cls, const char *desc_part,
           const char *id_json)
{
    g_autoptr(JsonNode) n = call(c, "%s", line);
    assert_error(n, cls, desc_part, id_json);
}

static Client *
client_open(Fixture *f)
{
    Client *c = client_new(f);
    g_autoptr(JsonNode) greeting = client_next(c, WAIT_MS);
    g_autoptr(JsonNode) ret = NULL;

    assert_non_null(qmp_json_get_object(qmp_json_node_object(greeting), "QMP"));
    ret = call(c, "{\"execute\":\"qmp_capabilities\"}");
    assert_return(ret, NULL);
    return c;
}

/* query-hotplugd's answer (a new object) */
static JsonObject *
status(Client *c)
{
    g_autoptr(JsonNode) n = call(c, "{\"execute\":\"query-hotplugd\",\"id\":\"st\"}");
    return json_object_ref(qmp_json_node_object(assert_return(n, "\"st\"")));
}

static gint64
status_int(Client *c, const char *member)
{
    g_autoptr(JsonObject) o = status(c);
    return qmp_json_get_int_default(o, member, -1);
}

/* vm-add NAME (f->qmp_path) and wait until the VM is ready. */
static void
add_fake_vm(Fixture *f, Client *c, const char *name)
{
    g_autoptr(JsonNode) r = call(c, "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"%s\","
                                    "\"qmp\":\"%s\"},\"id\":1}", name, f->qmp_path);
    gboolean ready = FALSE;
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

    assert_return(r, "1");
    while (!ready && g_get_monotonic_time() < end) {
        g_autoptr(JsonNode) l = call(c, "{\"execute\":\"vm-list\",\"id\":2}");
        JsonArray *a = qmp_json_node_array(assert_return(l, "2"));
        for (guint i = 0; a && i < json_array_get_length(a); i++) {
            JsonObject *vm = qmp_json_node_object(json_array_get_element(a, i));
            if (g_strcmp0(qmp_json_get_string(vm, "name"), name) == 0)
                ready = g_strcmp0(qmp_json_get_string(vm, "state"), "ready") == 0;
        }
        if (!ready)
            pump_ms(f, 5);
    }
    assert_true(ready);
}

/* n DEVICE_DELETED events for devices PREFIX0..; each makes one record */
static void
emit_events(Fixture *f, const char *prefix, guint n, gsize pad)
{
    g_autofree char *padding = g_strnfill(pad, 'p');

    for (guint i = 0; i < n; i++) {
        g_autofree char *data = g_strdup_printf(
            "{\"device\":\"%s%u\",\"path\":\"/machine/peripheral/%s%u\",\"pad\":\"%s\"}", prefix,
            i, prefix, i, padding);
        fake_peer_event(f->peer, "DEVICE_DELETED", data);
    }
}

/* Wait until the log's last seq is at least seq. */
static void
wait_seq(Fixture *f, Client *c, gint64 seq)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

    while (status_int(c, "last_seq") < seq) {
        if (g_get_monotonic_time() > end)
            fail_msg("the log did not reach seq %" G_GINT64_FORMAT, seq);
        pump_ms(f, 2);
    }
}

typedef struct {
    GArray *seqs;        /* gint64 of the LOG records */
    GPtrArray *records;  /* JsonObject */
    gint64 gap_from, gap_to;
    gint64 overflow_last;  /* -1: none */
    JsonNode *ret;       /* the reply */
} Collected;

static void
collected_clear(Collected *col)
{
    g_array_unref(col->seqs);
    g_ptr_array_unref(col->records);
    if (col->ret)
        json_node_unref(col->ret);
}

/* Read messages until the reply (or EOF): LOG records, LOG_GAP, LOG_OVERFLOW. */
static void
collect(Client *c, Collected *col, gboolean until_eof)
{
    col->seqs = g_array_new(FALSE, FALSE, sizeof(gint64));
    col->records = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
    col->gap_from = col->gap_to = -1;
    col->overflow_last = -1;
    col->ret = NULL;
    for (;;) {
        g_autoptr(JsonNode) n = client_next(c, WAIT_MS);
        JsonObject *o = qmp_json_node_object(n);
        const char *ev = qmp_json_get_string(o, "event");

        if (!n) {
            if (!until_eof)
                fail_msg("no reply to events%s", c->eof ? " (disconnected)" : "");
            assert_true(c->eof);
            return;
        }
        if (!ev) {
            assert_false(until_eof);
            col->ret = g_steal_pointer(&n);
            return;
        }
        if (g_str_equal(ev, "LOG")) {
            JsonObject *rec = qmp_json_get_object(o, "data");
            gint64 seq = qmp_json_get_int_default(rec, "seq", -1);
            assert_true(seq > 0);
            g_array_append_val(col->seqs, seq);
            g_ptr_array_add(col->records, json_object_ref(rec));
        } else if (g_str_equal(ev, "LOG_GAP")) {
            JsonObject *d = qmp_json_get_object(o, "data");
            assert_int_equal(col->seqs->len, 0); /* the gap comes first */
            col->gap_from = qmp_json_get_int_default(d, "from", -2);
            col->gap_to = qmp_json_get_int_default(d, "to", -2);
        } else if (g_str_equal(ev, "LOG_OVERFLOW")) {
            col->overflow_last = qmp_json_get_int_default(qmp_json_get_object(o, "data"),
                                                          "last_seq", -2);
        } else {
            fail_msg("unexpected event %s", ev);
        }
    }
}

/* seqs are exactly from, from+1, ..., to */
static void
assert_seq_run(GArray *seqs, gint64 from, gint64 to)
{
    if ((gint64)seqs->len != to - from + 1)
        fail_msg("expected seq %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT ", got %u records",
                 from, to, seqs->len);
    for (guint i = 0; i < seqs->len; i++)
        if (g_array_index(seqs, gint64, i) != from + i)
            fail_msg("record %u has seq %" G_GINT64_FORMAT ", expected %" G_GINT64_FORMAT, i,
                     g_array_index(seqs, gint64, i), from + (gint64)i);
}

/* ---- greeting and negotiation ------------------------------------------ */

static void
test_greeting(void **state)
{
    Fixture *f = *state;
    Client *c;
    g_autoptr(JsonNode) g = NULL;
    g_autoptr(JsonNode) extra = NULL;
    g_autofree char *text = NULL;
    g_autofree char *expected = g_strdup_printf(
        "{\"QMP\":{\"version\":{\"qemu\":{\"major\":0,\"minor\":0,\"micro\":0},"
        "\"package\":\"hotplugd %s\"},\"capabilities\":[],"
        "\"hotplugd\":{\"version\":\"%s\",\"protocol\":%d}}}",
        PACKAGE_VERSION, PACKAGE_VERSION, CONTROL_PROTOCOL_VERSION);
    g_autoptr(QmpConn) conn = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *st;
    JsonArray *cmds;
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    struct stat sb;

    fixture_start(f, NULL);
    /* the socket is 0600 */
    assert_int_equal(stat(f->sock, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0600);

    c = client_new(f);
    g = client_next(c, WAIT_MS);
    text = node_text(g);
    assert_string_equal(text, expected);
    assert_true(c->last_crlf);
    /* nothing else comes unasked */
    extra = client_next(c, 100);
    assert_null(extra);
    assert_false(c->eof);

    /* our own QMP client takes it for a QMP server */
    conn = qmp_conn_new(f->base, f->sock, NULL);
    assert_true(qmp_conn_open(conn, &error));
    if (!qmp_conn_wait_ready(conn, WAIT_MS, &error))
        fail_msg("QmpConn: %s", error->message);
    if (!qmp_conn_execute_sync(conn, "query-hotplugd", NULL, &ret, WAIT_MS, &error))
        fail_msg("query-hotplugd: %s", error->message);
    st = qmp_json_node_object(ret);
    assert_string_equal(qmp_json_get_string(st, "version"), PACKAGE_VERSION);
    assert_int_equal(qmp_json_get_int_default(st, "protocol", -1), CONTROL_PROTOCOL_VERSION);
    assert_int_equal(qmp_json_get_int_default(st, "vms", -1), 0);
    assert_int_equal(qmp_json_get_int_default(st, "open_ops", -1), 0);
    assert_int_equal(qmp_json_get_int_default(st, "subscribers", -1), 0);
    assert_int_equal(qmp_json_get_int_default(st, "clients", -1), 2);
    assert_int_equal(qmp_json_get_int_default(st, "last_seq", -1), 0);
    cmds = qmp_json_get_array(st, "commands");
    assert_non_null(cmds);
    for (guint i = 0; i < json_array_get_length(cmds); i++)
        g_ptr_array_add(names, (gpointer)qmp_json_node_string(json_array_get_element(cmds, i)));
    g_ptr_array_add(names, NULL);
    for (const char *const *want = (const char *const[]){"vm-list", "vm-add", "vm-remove",
                                                         "vm-info", "device-add", "device-del",
                                                         "device-list", "ops", "events",
                                                         "query-hotplugd", NULL};
         *want; want++)
        if (!g_strv_contains((const char *const *)names->pdata, *want))
            fail_msg("query-hotplugd does not list %s", *want);
    g_clear_pointer(&ret, json_node_unref);
    if (!qmp_conn_execute_sync(conn, "vm-list", NULL, &ret, WAIT_MS, &error))
        fail_msg("vm-list: %s", error->message);
    assert_non_null(qmp_json_node_array(ret));
    assert_int_equal(json_array_get_length(qmp_json_node_array(ret)), 0);
    qmp_conn_close(conn);
}

static void
test_negotiation(void **state)
{
    Fixture *f = *state;
    Client *c;
    g_autoptr(JsonNode) g = NULL;
    g_autoptr(JsonNode) r = NULL;
    g_autofree char *text = NULL;

    fixture_start(f, NULL);
    c = client_new(f);
    g = client_next(c, WAIT_MS);
    call_error(c, "{\"execute\":\"vm-list\",\"id\":1}", "CommandNotFound",
               "Expecting capabilities negotiation with 'qmp_capabilities'", "1");
    call_error(c, "{\"execute\":\"events\",\"arguments\":{\"follow\":true},\"id\":\"s\"}",
               "CommandNotFound", "Expecting capabilities negotiation", "\"s\"");
    call_error(c, "{\"execute\":\"no-such-command\"}", "CommandNotFound",
               "Expecting capabilities negotiation", NULL);
    /* bad input is still bad input before negotiation */
    call_error(c, "{\"execute\":", "GenericError", "JSON parse error", NULL);
    r = call(c, "{\"execute\":\"qmp_capabilities\",\"id\":2}");
    text = node_text(r);
    assert_string_equal(text, "{\"return\":{},\"id\":2}");
    assert_true(c->last_crlf);
    call_error(c, "{\"execute\":\"qmp_capabilities\",\"id\":3}", "CommandNotFound",
               "Capabilities negotiation is already complete", "3");
    /* the refused "events" did not subscribe anybody */
    assert_int_equal(status_int(c, "subscribers"), 0);
}

/* ---- malformed input ---------------------------------------------------- */

static void
test_bad_messages(void **state)
{
    static const struct {
        const char *line;
        const char *cls, *desc, *id;
    } cases[] = {
        {"{", "GenericError", "JSON parse error", NULL},
        {"{\"execute\":\"vm-list\"", "GenericError", "JSON parse error", NULL},
        {"{\"execute\":\"vm-list\",}", "GenericError", "JSON parse error", NULL},
        {"nonsense", "GenericError", "JSON parse error", NULL},
        /* json-glib quotes the bad token in its message, cut inside a character */
        {"{\"\xed\x81\x8d\xed\x81\x8d\xed\x81\x8d\xed\x81\x8d\xed\x81\x8d\xed\x81\x8d\xed\x81"
         "\x8d\xed\x81\x8d\xed\x81\x8d\xed\x81\x8d\xed\x81\x8d\xed\x81\x8d\xed\x81\x8d\" }",
         "GenericError", "JSON parse error", NULL},
        {"{\"execute\":\"vm-\xff\"}", "GenericError", "JSON parse error", NULL},
        {"[1,2]", "GenericError", "a command must be a JSON object", NULL},
        {"\"vm-list\"", "GenericError", "a command must be a JSON object", NULL},
        {"42", "GenericError", "a command must be a JSON object", NULL},
        {"null", "GenericError", "a command must be a JSON object", NULL},
        {"{\"id\":3}", "GenericError", "missing member 'execute'", "3"},
        {"{\"execute\":5,\"id\":4}", "GenericError", "missing member 'execute' (a string)", "4"},
        {"{\"execute\":null,\"id\":5}", "GenericError", "missing member 'execute'", "5"},
        {"{\"execute\":[\"vm-list\"],\"id\":5}", "GenericError", "missing member 'execute'", "5"},
        {"{\"execute\":\"vm-list\",\"foo\":1,\"id\":6}", "GenericError", "unknown member 'foo'",
         "6"},
        {"{\"execute\":\"vm-list\",\"arguments\":[1],\"id\":7}", "GenericError",
         "'arguments' must be an object", "7"},
        {"{\"execute\":\"vm-list\",\"arguments\":\"x\",\"id\":8}", "GenericError",
         "'arguments' must be an object", "8"},
        {"{\"execute\":\"vm-list\",\"arguments\":null,\"id\":9}", "GenericError",
         "'arguments' must be an object", "9"},
        {"{\"execute\":\"frobnicate\",\"id\":10}", "CommandNotFound",
         "unknown command 'frobnicate'", "10"},
        {"{\"execute\":\"frobnicate\",\"id\":{\"a\":[1,\"x\"]}}", "CommandNotFound",
         "unknown command", "{\"a\":[1,\"x\"]}"},
        {"{\"execute\":\"\",\"id\":11}", "CommandNotFound", "unknown command", "11"},
        /* json-glib turns a lone surrogate into invalid UTF-8: it must not be echoed */
        {"{\"execute\":\"vm-list\",\"id\":\"\\ud800x\"}", "GenericError", "UTF-8", NULL},
        {"{\"execute\":\"vm-list\",\"a\\udbffb\":1}", "GenericError", "UTF-8", NULL},
        {"{\"execute\":\"vm-list\",\"arguments\":{\"x\":[\"\\ud83dz\"]}}", "GenericError", "UTF-8",
         NULL},
        /* json-glib leaks on a malformed pair: refused before it sees it */
        {"{\"execute\":\"vm-list\",\"id\":\"\\ud83d\\u0041\"}", "GenericError", "UTF-8", NULL},
        {"{\"execute\":\"vm-list\",\"id\":\"\\ude00\\ud83d\"}", "GenericError", "UTF-8", NULL},
        {"{\"execute\":\"vm-list\",\"id\":\"\\uzzzz\"}", "GenericError", "4 hex digits", NULL},
        /* ... and a line that is not JSON, with one in it (found by
         * fuzz-control: json-glib leaked 152 bytes on it): refused where it
         * stops being JSON */
        {"{\"execute\":\"zecho\",\"=idargumexecute\":\"zecho\",\"=idarguments\":/{*s\":\"\\ud83d"
         "\\ue0dents\":/{\"s\":\"\\ud83d\\ue0d0 \\\"ex{ \"}}",
         "GenericError", "expected a value (byte 60)", NULL},
        /* proper pairs, and escaped backslashes before a 'u', are fine */
        {"{\"execute\":\"vm-list\",\"id\":\"\\ud83d\\ude00\"}", NULL, NULL, "\"\xf0\x9f\x98\x80\""},
        {"{\"execute\":\"vm-list\",\"id\":\"\\\\ud800\"}", NULL, NULL, "\"\\\\ud800\""},
        {"{\"execute\":\"vm-list\",\"id\":\"\\u00e9\\n\\\"\"}", NULL, NULL, "\"\xc3\xa9\\n\\\"\""},
    };
    Fixture *f = *state;
    Client *c;
    g_autoptr(JsonNode) r = NULL;
    g_autoptr(JsonNode) r2 = NULL;
    static const char nul_line[] = "{\"execute\":\"vm-list\"\0,\"id\":1}\n";

    fixture_start(f, NULL);
    c = client_open(f);
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        if (cases[i].cls) {
            call_error(c, cases[i].line, cases[i].cls, cases[i].desc, cases[i].id);
        } else {
            g_autoptr(JsonNode) ok = call(c, "%s", cases[i].line);
            assert_return(ok, cases[i].id);
        }
    }
    /* a NUL byte in the line */
    assert_true(client_send(c, nul_line, sizeof(nul_line) - 1));
    r = client_reply(c);
    assert_error(r, "GenericError", "NUL byte", NULL);
    /* blank lines are ignored; \r\n works; the connection still works */
    assert_true(client_send(c, "\n \t\r\n\r\n", 7));
    r2 = call(c, "{\"execute\":\"vm-list\",\"id\":99}\r");
    assert_int_equal(json_array_get_length(qmp_json_node_array(assert_return(r2, "99"))), 0);
    assert_int_equal(status_int(c, "clients"), 1);
}

static void
test_bad_arguments(void **state)
{
    static const struct {
        const char *line;
        const char *cls, *desc;
    } cases[] = {
        {"{\"execute\":\"vm-add\",\"arguments\":{\"qmp\":\"/x.qmp\"},\"id\":1}", "InvalidArgument",
         "argument 'name' is missing"},
        {"{\"execute\":\"vm-add\",\"arguments\":{\"name\":5,\"qmp\":\"/x\"},\"id\":1}",
         "InvalidArgument", "argument 'name' must be a string"},
        {"{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"\",\"qmp\":\"/x\"},\"id\":1}",
         "InvalidArgument", "argument 'name' must not be empty"},
        {"{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"a b\",\"qmp\":\"/x\"},\"id\":1}",
         "InvalidArgument", "bad VM name 'a b'"},
        {"{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"vm2\"},\"id\":1}", "InvalidArgument",
         "argument 'qmp' is missing"},
        {"{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"vm1\",\"qmp\":\"/x\"},\"id\":1}", "Busy",
         "VM vm1 is already registered"},
        {"{\"execute\":\"vm-remove\",\"arguments\":{\"name\":\"nope\"},\"id\":1}", "NotFound",
         "no VM named 'nope'"},
        {"{\"execute\":\"vm-remove\",\"id\":1}", "InvalidArgument", "argument 'name' is missing"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"id\":\"n1\"},\"id\":1}", "InvalidArgument",
         "argument 'vm' is missing"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"nope\",\"id\":\"n1\"},\"id\":1}",
         "NotFound", "no VM named 'nope'"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\"},\"id\":1}", "InvalidArgument",
         "argument 'id' is missing"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\",\"retry\":\"x\"},"
         "\"id\":1}",
         "InvalidArgument", "argument 'retry' must be a whole number from 0 to 1000"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\",\"retry\":1001},"
         "\"id\":1}",
         "InvalidArgument", "argument 'retry' must be a whole number"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\",\"retry\":-1},"
         "\"id\":1}",
         "InvalidArgument", "argument 'retry' must be a whole number"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\",\"timeout\":\"5\"},"
         "\"id\":1}",
         "InvalidArgument", "argument 'timeout' must be a number of seconds"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\",\"timeout\":-1},"
         "\"id\":1}",
         "InvalidArgument", "argument 'timeout' must be from 0 to a year of seconds"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\",\"no-wait\":"
         "\"yes\"},\"id\":1}",
         "InvalidArgument", "argument 'no-wait' must be true or false"},
        {"{\"execute\":\"device-add\",\"arguments\":{\"vm\":\"vm1\",\"driver\":\"e1000\"},\"id\":1}",
         "InvalidArgument", "argument 'id' is missing"},
        {"{\"execute\":\"device-add\",\"arguments\":{\"vm\":\"vm1\",\"driver\":\"e1000\",\"id\":"
         "\"n1\",\"props\":5},\"id\":1}",
         "InvalidArgument", "argument 'props' must be an object or an array"},
        {"{\"execute\":\"device-add\",\"arguments\":{\"vm\":\"vm1\",\"driver\":\"e1000\",\"id\":"
         "\"n1\",\"props\":[1]},\"id\":1}",
         "InvalidArgument", "argument 'props' must hold PROP=VALUE strings"},
        {"{\"execute\":\"ops\",\"arguments\":{\"vm\":5},\"id\":1}", "InvalidArgument",
         "argument 'vm' must be a string"},
        {"{\"execute\":\"ops\",\"arguments\":{\"vm\":\"nope\"},\"id\":1}", "NotFound",
         "no VM named 'nope'"},
        {"{\"execute\":\"events\",\"arguments\":{\"kind\":\"bogus\"},\"id\":1}", "InvalidArgument",
         "argument 'kind' must be vm, request, attempt, outcome or qemu-event"},
        {"{\"execute\":\"events\",\"arguments\":{\"since\":-1},\"id\":1}", "InvalidArgument",
         "argument 'since' must be a seq number"},
        {"{\"execute\":\"events\",\"arguments\":{\"since\":\"3\"},\"id\":1}", "InvalidArgument",
         "argument 'since' must be a seq number"},
        {"{\"execute\":\"events\",\"arguments\":{\"since\":1.5},\"id\":1}", "InvalidArgument",
         "argument 'since' must be a seq number"},
        {"{\"execute\":\"events\",\"arguments\":{\"vm\":5},\"id\":1}", "InvalidArgument",
         "argument 'vm' must be a string"},
        {"{\"execute\":\"events\",\"arguments\":{\"device\":[\"n1\"]},\"id\":1}", "InvalidArgument",
         "argument 'device' must be a string"},
        {"{\"execute\":\"events\",\"arguments\":{\"kind\":1},\"id\":1}", "InvalidArgument",
         "argument 'kind' must be a string"},
        {"{\"execute\":\"events\",\"arguments\":{\"follow\":\"yes\"},\"id\":1}", "InvalidArgument",
         "argument 'follow' must be true or false"},
        {"{\"execute\":\"events\",\"arguments\":{\"folow\":true},\"id\":1}", "InvalidArgument",
         "unknown argument 'folow'"},
        {"{\"execute\":\"vm-list\",\"arguments\":{\"bogus\":1},\"id\":1}", "InvalidArgument",
         "takes no argument 'bogus'"},
        {"{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\",\"tiemout\":1},"
         "\"id\":1}",
         "InvalidArgument", "takes no argument 'tiemout'"},
    };
    Fixture *f = *state;
    Client *c;
    g_autoptr(JsonNode) r = NULL;
    g_autoptr(JsonNode) r2 = NULL;

    fixture_start(f, NULL);
    c = client_open(f);
    /* vm1 exists but never connects: argument checks come first */
    r = call(c, "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"vm1\",\"qmp\":\"%s/none.qmp\"},"
                "\"id\":0}", f->dir);
    assert_return(r, "0");
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++)
        call_error(c, cases[i].line, cases[i].cls, cases[i].desc, "1");
    /* valid arguments on a VM that is not connected */
    call_error(c, "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\"},\"id\":2}",
               "VmGone", "VM vm1 is not connected", "2");
    /* nobody subscribed, no VM but vm1 */
    assert_int_equal(status_int(c, "subscribers"), 0);
    assert_int_equal(status_int(c, "vms"), 1);
    /* changing requests are logged with the peer's pid and uid */
    {
        g_autofree char *who = g_strdup_printf("from pid %d uid %d", (int)getpid(), (int)getuid());
        const char *line = log_find("request vm-add");
        assert_non_null(line);
        assert_non_null(strstr(line, who));
    }
    r2 = call(c, "{\"execute\":\"vm-list\",\"id\":3}");
    assert_return(r2, "3");
}

static void
test_long_line(void **state)
{
    Fixture *f = *state;
    Client *c1, *c2, *c3, *c4;
    gsize n = CONTROL_MAX_LINE + 1024;
    g_autofree char *junk = g_strnfill(n, 'a');
    g_autofree char *pad = g_strnfill(CONTROL_MAX_LINE, 'x');
    g_autofree char *big = g_strdup_printf("{\"execute\":\"vm-list\",\"id\":\"%s\"}\n", pad);
    g_autofree char *almost_id = g_strnfill(CONTROL_MAX_LINE - 64, 'y');
    g_autoptr(JsonNode) e1 = NULL, e2 = NULL, end1 = NULL, end2 = NULL, r3 = NULL, r4 = NULL;

    fixture_start(f, NULL);
    /* no newline at all */
    c1 = client_open(f);
    client_send(c1, junk, n);
    e1 = client_next(c1, WAIT_MS);
    assert_error(e1, "GenericError", "line too long", NULL);
    end1 = client_next(c1, WAIT_MS);
    assert_null(end1);
    assert_true(c1->eof);
    /* a whole line, JSON and all, one byte too long */
    c2 = client_open(f);
    client_send(c2, big, strlen(big));
    e2 = client_next(c2, WAIT_MS);
    assert_error(e2, "GenericError", "line too long", NULL);
    end2 = client_next(c2, WAIT_MS);
    assert_null(end2);
    assert_true(c2->eof);
    /* just under the limit is fine: the reply echoes the long id */
    c3 = client_open(f);
    r3 = call(c3, "{\"execute\":\"vm-list\",\"id\":\"%s\"}", almost_id);
    {
        JsonNode *id = json_object_get_member(json_node_get_object(r3), "id");
        assert_non_null(id);
        assert_int_equal(strlen(qmp_json_node_string(id)), CONTROL_MAX_LINE - 64);
    }
    /* and the daemon serves others meanwhile */
    c4 = client_open(f);
    r4 = call(c4, "{\"execute\":\"vm-list\",\"id\":4}");
    assert_return(r4, "4");
    assert_int_equal(status_int(c4, "clients"), 2);
}

static void
test_nesting(void **state)
{
    Fixture *f = *state;
    Client *c;
    g_autofree char *open63 = g_strnfill(63, '[');
    g_autofree char *close63 = g_strnfill(63, ']');
    g_autofree char *open62 = g_strnfill(62, '[');
    g_autofree char *close62 = g_strnfill(62, ']');
    g_autofree char *deep = g_strnfill(100000, '[');
    g_autofree char *in_string = g_strnfill(500, '{');
    g_autofree char *too_deep = g_strdup_printf(
        "{\"execute\":\"vm-list\",\"id\":1,\"arguments\":{\"a\":%s%s}}", open63, close63);
    g_autoptr(JsonNode) r1 = NULL, r2 = NULL, r3 = NULL;

    fixture_start(f, NULL);
    c = client_open(f);
    /* depth 65: the message, its arguments, 63 arrays */
    call_error(c, too_deep, "GenericError", "JSON nested too deeply", NULL);
    /* an unterminated bomb is refused before any parsing */
    call_error(c, deep, "GenericError", "JSON nested too deeply", NULL);
    /* depth 64 is parsed: vm-list then answers that it takes no "a" */
    r1 = call(c, "{\"execute\":\"vm-list\",\"id\":2,\"arguments\":{\"a\":%s%s}}", open62, close62);
    assert_error(r1, "InvalidArgument", "vm-list takes no argument 'a'", "2");
    /* brackets in strings do not count */
    r2 = call(c, "{\"execute\":\"vm-list\",\"id\":\"%s\"}", in_string);
    assert_non_null(json_object_get_member(json_node_get_object(r2), "return"));
    r3 = call(c, "{\"execute\":\"vm-list\",\"id\":3}");
    assert_return(r3, "3");
}

/* json-glib 1.6 takes '{..}{..}' as its first value and leaks the second:
 * the server must refuse such a line whole. */
static void
test_two_values(void **state)
{
    static const char *const lines[] = {
        "{\"execute\":\"vm-list\",\"id\":1}{\"execute\":\"vm-list\",\"id\":2}",
        "{\"execute\":\"vm-list\",\"id\":1} {\"execute\":\"query-hotplugd\",\"id\":2}",
        "5 {\"execute\":\"vm-list\",\"id\":1}",
        "\"x\"{\"execute\":\"vm-list\",\"id\":1}",
        "[1][2]",
        "{}[]",
    };
    Fixture *f = *state;
    Client *c;
    g_autoptr(JsonNode) r1 = NULL, r2 = NULL, r3 = NULL;

    fixture_start(f, NULL);
    c = client_open(f);
    for (guint i = 0; i < G_N_ELEMENTS(lines); i++)
        call_error(c, lines[i], "GenericError", "more than one JSON value", NULL);
    /* trailing text that is not a value is json-glib's to refuse */
    call_error(c, "{\"execute\":\"vm-list\",\"id\":1} 5", "GenericError", "JSON parse error", NULL);
    /* what is one value stays one value */
    r1 = call(c, "{\"execute\":\"vm-list\",\"id\":3}   ");
    assert_return(r1, "3");
    r2 = call(c, "{\"execute\":\"vm-list\",\"id\":\"}{ ][\"}");
    assert_return(r2, "\"}{ ][\"");
    r3 = call(c, "{\"execute\":\"vm-list\",\"id\":\"\\\"}{\"}");
    assert_return(r3, "\"\\\"}{\"");
}

/* ---- clients that do not read ------------------------------------------ */

static void
test_slow_subscriber(void **state)
{
    Fixture *f = *state;
    DaemonConfig *cfg = fixture_config(f);
    Client *a, *a2, *b;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *ret;
    gint64 since, last, max_us = 0, wmem = 212992;
    gsize pad = 8192, volume;
    guint rounds = 0;
    Collected col, col2;
    g_autofree char *wtext = NULL;

    cfg->subscriber_buffer = 64 * 1024;
    fixture_start(f, cfg);
    b = client_open(f);
    add_fake_vm(f, b, "vm1");
    if (g_file_get_contents("/proc/sys/net/core/wmem_default", &wtext, NULL, NULL))
        wmem = g_ascii_strtoll(wtext, NULL, 10);
    /* more than the kernel's socket buffer and the daemon's together */
    volume = 3 * (gsize)wmem + 4 * cfg->subscriber_buffer;

    a = client_open(f);
    r = call(a, "{\"execute\":\"events\",\"arguments\":{\"follow\":true},\"id\":\"a\"}");
    ret = qmp_json_node_object(assert_return(r, "\"a\""));
    since = qmp_json_get_int_default(ret, "since", -1);
    assert_true(qmp_json_get_bool_default(ret, "follow", FALSE));
    assert_int_equal(since, status_int(b, "last_seq"));
    a->paused = TRUE; /* a never reads from now on */

    for (gsize sent = 0; sent < volume; sent += 10 * pad) {
        gint64 t0;
        emit_events(f, "x", 10, pad);
        pump_ms(f, 2);
        /* the loop keeps serving b */
        t0 = g_get_monotonic_time();
        assert_true(status_int(b, "vms") == 1);
        max_us = MAX(max_us, g_get_monotonic_time() - t0);
        rounds++;
    }
    last = status_int(b, "last_seq");
    assert_true(last >= since + 10 * rounds);
    assert_true(max_us < 2 * G_USEC_PER_SEC);
    assert_non_null(log_find("too slow: disconnected after seq"));

    /* a reads now: records from since+1 on without a gap, then
     * LOG_OVERFLOW naming the last of them, then the end */
    a->paused = FALSE;
    collect(a, &col, TRUE);
    assert_true(col.seqs->len > 0);
    assert_seq_run(col.seqs, since + 1, since + col.seqs->len);
    assert_int_equal(col.overflow_last, since + col.seqs->len);
    assert_true(col.overflow_last < last);
    /* resuming from there loses nothing and repeats nothing */
    a2 = client_open(f);
    client_printf(a2, "{\"execute\":\"events\",\"arguments\":{\"since\":%" G_GINT64_FORMAT
                      "},\"id\":\"a2\"}", col.overflow_last);
    collect(a2, &col2, FALSE);
    assert_seq_run(col2.seqs, col.overflow_last + 1, last);
    assert_int_equal(qmp_json_get_int_default(
                         qmp_json_node_object(assert_return(col2.ret, "\"a2\"")), "last_seq", -1),
                     last);
    assert_int_equal(col2.gap_from, -1);
    WAIT_FOR(f, status_int(b, "subscribers") == 0, WAIT_MS);
    collected_clear(&col);
    collected_clear(&col2);
}

/* A client that sends requests and never reads the replies is not
 * buffered without bound: the daemon stops reading it. */
static void
test_unread_replies(void **state)
{
    Fixture *f = *state;
    DaemonConfig *cfg = fixture_config(f);
    Client *a, *b;
    g_autofree char *id = g_strnfill(16 * 1024, 'i');
    g_autofree char *req = g_strdup_printf("{\"execute\":\"vm-list\",\"id\":\"%s\"}\n", id);
    g_autofree char *id_json = g_strdup_printf("\"%s\"", id);
    gsize len = strlen(req), sent = 0, total = 64u << 20;
    gint64 end;
    guint replies = 0;

    cfg->subscriber_buffer = 256 * 1024;
    fixture_start(f, cfg);
    b = client_open(f);
    a = client_open(f);
    a->paused = TRUE;
    /* push up to 64 MiB of requests (each reply is as big) without reading,
     * until the daemon takes no more for 300 ms */
    end = g_get_monotonic_time() + 300 * 1000;
    while (sent < total && g_get_monotonic_time() < end) {
        ssize_t n = send(a->fd, req + sent % len, len - sent % len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += (gsize)n;
            end = g_get_monotonic_time() + 300 * 1000;
        } else {
            pump_once(f);
        }
    }
    print_message("# the daemon took %" G_GSIZE_FORMAT " bytes of requests, then stopped reading\n",
                  sent);
    /* the daemon stopped taking them long before 64 MiB */
    assert_true(sent < total);
    assert_true(status_int(b, "clients") == 2);
    /* and every request it took is answered once a reads */
    a->paused = FALSE;
    for (;;) {
        g_autoptr(JsonNode) n = client_next(a, 500);
        if (!n)
            break;
        assert_return(n, id_json);
        replies++;
    }
    assert_int_equal(replies, sent / len);
}

/* ---- clients that go away ----------------------------------------------- */

static void
test_disconnect_mid_request(void **state)
{
    Fixture *f = *state;
    Client *b, *c;
    g_autoptr(JsonNode) ops = NULL;
    JsonArray *a;
    JsonObject *op;

    fixture_start(f, NULL);
    b = client_open(f);
    add_fake_vm(f, b, "vm1");
    fake_peer_auto(f->peer, "device_del", "{}");
    fake_peer_auto(f->peer, "qom-list", "[{\"name\":\"n1\",\"type\":\"child<e1000>\"}]");

    /* half a line, then gone */
    c = client_open(f);
    client_printf(c, "{\"execute\":\"vm-li");
    close(c->fd);
    c->fd = -1;
    c->eof = TRUE;
    WAIT_FOR(f, status_int(b, "clients") == 1, WAIT_MS);

    /* an unplug in flight, then gone: the op goes on to its outcome */
    c = client_open(f);
    client_printf(c, "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"n1\","
                     "\"timeout\":0.3},\"id\":1}");
    WAIT_FOR(f, status_int(b, "open_ops") == 1, WAIT_MS);
    close(c->fd);
    c->fd = -1;
    c->eof = TRUE;
    WAIT_FOR(f, status_int(b, "clients") == 1, WAIT_MS);
    /* a follower that goes away */
    c = client_open(f);
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"follow\":true,\"since\":0}}");
    WAIT_FOR(f, status_int(b, "subscribers") == 1, WAIT_MS);
    close(c->fd);
    c->fd = -1;
    c->eof = TRUE;
    WAIT_FOR(f, status_int(b, "subscribers") == 0, WAIT_MS);
    /* many requests and an immediate close (the replies hit a closed socket) */
    c = client_open(f);
    for (guint i = 0; i < 50; i++)
        client_printf(c, "{\"execute\":\"ops\",\"id\":%u}", i);
    close(c->fd);
    c->fd = -1;
    c->eof = TRUE;

    WAIT_FOR(f, status_int(b, "open_ops") == 0 || TRUE, 0);
    /* the unplug ended not-deleted (QEMU still lists n1) and stays tracked */
    {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
        const char *outcome = NULL;
        do {
            g_clear_pointer(&ops, json_node_unref);
            ops = call(b, "{\"execute\":\"ops\",\"id\":5}");
            a = qmp_json_node_array(assert_return(ops, "5"));
            assert_int_equal(json_array_get_length(a), 1);
            op = qmp_json_node_object(json_array_get_element(a, 0));
            outcome = qmp_json_get_string(op, "outcome");
            if (g_strcmp0(outcome, "not-deleted") != 0)
                pump_ms(f, 20);
        } while (g_strcmp0(outcome, "not-deleted") != 0 && g_get_monotonic_time() < end);
        assert_string_equal(outcome, "not-deleted");
        assert_string_equal(qmp_json_get_string(op, "device"), "n1");
    }
    assert_int_equal(status_int(b, "clients"), 1);
}

/* A client that goes away while replies are queued must not kill the
 * daemon with SIGPIPE, even before any VM (whose QmpConn would set SIGPIPE
 * to SIG_IGN) exists: the real hotplugd, as a child.  Then SIGTERM: a
 * clean stop that removes the socket. */
static void
test_sigpipe(void **state)
{
    Fixture *f = *state;
    const char *argv[] = {HOTPLUGD_PATH, "--foreground", "--state-dir", f->state_dir,
                          "--socket", f->sock, NULL};
    g_autoptr(GError) error = NULL;
    GPid pid;
    int status = 0;
    gint64 end;

    if (!g_spawn_async(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
                       G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                       NULL, NULL, &pid, &error))
        fail_msg("cannot start %s: %s", HOTPLUGD_PATH, error->message);
    /* ready once it accepts (the file appears at bind, before listen) */
    end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    for (;;) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        gboolean up;

        strcpy(sun.sun_path, f->sock);
        up = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
        close(fd);
        if (up || g_get_monotonic_time() > end)
            break;
        g_usleep(10000);
    }
    for (guint round = 0; round < 3; round++) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        g_autoptr(GString) burst = g_string_new("{\"execute\":\"qmp_capabilities\"}\n");

        for (guint i = 0; i < 200; i++)
            g_string_append(burst, "{\"execute\":\"query-hotplugd\"}\n");
        strcpy(sun.sun_path, f->sock);
        assert_true(fd >= 0);
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("connect %s: %s", f->sock, g_strerror(errno));
        }
        assert_true(send(fd, burst->str, burst->len, MSG_NOSIGNAL) == (ssize_t)burst->len);
        close(fd);
        g_usleep(200000);
        if (waitpid(pid, &status, WNOHANG) == pid) {
            if (WIFSIGNALED(status))
                fail_msg("hotplugd died of signal %d (%s)", WTERMSIG(status),
                         g_strsignal(WTERMSIG(status)));
            fail_msg("hotplugd exited (status %d)", WEXITSTATUS(status));
        }
    }
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(g_file_test(f->sock, G_FILE_TEST_EXISTS));
}

/* ---- state across restarts ---------------------------------------------- */

static void
test_runtime_vms_persist(void **state)
{
    Fixture *f = *state;
    DaemonConfig *cfg = fixture_config(f);
    Client *c;
    g_autoptr(JsonNode) r1 = NULL, r2 = NULL, r3 = NULL, l = NULL, list = NULL;
    g_autofree char *vms_json = g_build_filename(f->state_dir, "vms.json", NULL);
    g_autofree char *text = NULL;
    g_autofree char *p2 = g_build_filename(f->dir, "rt2.qmp", NULL);
    g_autofree char *pc = g_build_filename(f->dir, "cfg.qmp", NULL);
    g_autoptr(JsonParser) p = json_parser_new();
    JsonObject *o;
    JsonArray *a;
    gint64 last;

    g_hash_table_insert(cfg->vms, g_strdup("cfgvm"), g_strdup(pc));
    fixture_start(f, cfg);
    c = client_open(f);
    r1 = call(c, "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"rt1\",\"qmp\":\"%s\"},\"id\":1}",
              f->qmp_path);
    assert_return(r1, "1");
    r2 = call(c, "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"rt2\",\"qmp\":\"%s\"},\"id\":2}",
              p2);
    assert_return(r2, "2");
    r3 = call(c, "{\"execute\":\"vm-remove\",\"arguments\":{\"name\":\"rt2\"},\"id\":3}");
    assert_return(r3, "3");
    /* vms.json holds exactly the runtime VMs */
    assert_true(g_file_get_contents(vms_json, &text, NULL, NULL));
    assert_true(json_parser_load_from_data(p, text, -1, NULL));
    o = qmp_json_node_object(json_parser_get_root(p));
    assert_non_null(o);
    assert_int_equal(json_object_get_size(o), 1);
    assert_string_equal(qmp_json_get_string(o, "rt1"), f->qmp_path);
    {
        struct stat sb;
        assert_int_equal(stat(vms_json, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }
    WAIT_FOR(f, f->n_peers == 1, WAIT_MS);
    last = status_int(c, "last_seq");

    /* restart: the same state directory, the same config */
    fixture_stop(f);
    cfg = fixture_config(f);
    g_hash_table_insert(cfg->vms, g_strdup("cfgvm"), g_strdup(pc));
    fixture_start(f, cfg);
    c = client_open(f);
    list = call(c, "{\"execute\":\"vm-list\",\"id\":4}");
    a = qmp_json_node_array(assert_return(list, "4"));
    assert_int_equal(json_array_get_length(a), 2);
    /* sorted by name */
    o = qmp_json_node_object(json_array_get_element(a, 0));
    assert_string_equal(qmp_json_get_string(o, "name"), "cfgvm");
    assert_string_equal(qmp_json_get_string(o, "qmp"), pc);
    o = qmp_json_node_object(json_array_get_element(a, 1));
    assert_string_equal(qmp_json_get_string(o, "name"), "rt1");
    assert_string_equal(qmp_json_get_string(o, "qmp"), f->qmp_path);
    /* rt1 reconnected to its QEMU */
    WAIT_FOR(f, f->n_peers == 2, WAIT_MS);
    /* seq goes on after the last one of the first run: no gap, no repeat */
    {
        Collected col;
        client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"since\":%" G_GINT64_FORMAT
                         "},\"id\":5}", last);
        collect(c, &col, FALSE);
        assert_true(col.seqs->len >= 2); /* added cfgvm, added rt1, ... */
        assert_seq_run(col.seqs, last + 1, last + col.seqs->len);
        collected_clear(&col);
    }
    /* removing it at run time sticks too */
    g_clear_pointer(&l, json_node_unref);
    l = call(c, "{\"execute\":\"vm-remove\",\"arguments\":{\"name\":\"rt1\"},\"id\":6}");
    assert_return(l, "6");
    fixture_stop(f);
    cfg = fixture_config(f);
    fixture_start(f, cfg);
    c = client_open(f);
    assert_int_equal(status_int(c, "vms"), 0);
}

static void
test_second_daemon(void **state)
{
    Fixture *f = *state;
    DaemonConfig *cfg2;
    Daemon *d2;
    g_autoptr(GError) error = NULL;
    g_autofree char *other_sock = g_build_filename(f->dir, "other.sock", NULL);
    g_autofree char *other_state = g_build_filename(f->dir, "other-state", NULL);
    g_autofree char *expected = NULL;
    Client *c;
    g_autoptr(JsonNode) r = NULL;

    fixture_start(f, NULL);
    /* the same state directory, another socket */
    cfg2 = fixture_config(f);
    g_free(cfg2->socket_path);
    cfg2->socket_path = g_strdup(other_sock);
    d2 = daemon_new(f->base, cfg2, NULL, &error);
    assert_null(d2);
    assert_non_null(error);
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY));
    expected = g_strdup_printf("another hotplugd (pid %d) runs on %s", (int)getpid(),
                               f->state_dir);
    assert_string_equal(error->message, expected);
    assert_false(g_file_test(other_sock, G_FILE_TEST_EXISTS));
    g_clear_error(&error);

    /* another state directory, the same socket: the live socket is not taken */
    cfg2 = fixture_config(f);
    g_free(cfg2->state_dir);
    cfg2->state_dir = g_strdup(other_state);
    d2 = daemon_new(f->base, cfg2, NULL, &error);
    if (d2) {
        daemon_free(d2);
        fail_msg("a second daemon took the live control socket %s", f->sock);
    }
    assert_non_null(error);
    assert_non_null(strstr(error->message, f->sock));
    assert_non_null(strstr(error->message, "in use"));

    /* the first one still answers on its socket */
    c = client_open(f);
    r = call(c, "{\"execute\":\"vm-list\",\"id\":1}");
    assert_return(r, "1");
}

/* ---- the event log over the socket -------------------------------------- */

static void
test_events_resume(void **state)
{
    Fixture *f = *state;
    Client *c, *fl, *fl2;
    Collected col;
    gint64 base_seq, last, k;
    g_autoptr(JsonNode) r = NULL, r2 = NULL;

    fixture_start(f, NULL);
    c = client_open(f);
    add_fake_vm(f, c, "vm1");
    WAIT_FOR(f, status_int(c, "last_seq") >= 2, WAIT_MS); /* added, connected */
    base_seq = status_int(c, "last_seq");
    emit_events(f, "d", 30, 10);
    wait_seq(f, c, base_seq + 30);
    last = status_int(c, "last_seq");
    assert_int_equal(last, base_seq + 30);

    /* everything */
    client_printf(c, "{\"execute\":\"events\",\"id\":1}");
    collect(c, &col, FALSE);
    assert_seq_run(col.seqs, 1, last);
    assert_int_equal(col.gap_from, -1);
    assert_int_equal(qmp_json_get_int_default(qmp_json_node_object(assert_return(col.ret, "1")),
                                              "last_seq", -1),
                     last);
    /* the records are SPEC's */
    {
        JsonObject *rec = col.records->pdata[0];
        assert_string_equal(qmp_json_get_string(rec, "kind"), "vm");
        assert_string_equal(qmp_json_get_string(rec, "vm"), "vm1");
        assert_string_equal(qmp_json_get_string(rec, "state"), "added");
        assert_non_null(qmp_json_get_string(rec, "time"));
        rec = col.records->pdata[col.records->len - 1];
        assert_string_equal(qmp_json_get_string(rec, "kind"), "qemu-event");
        assert_string_equal(qmp_json_get_string(rec, "event"), "DEVICE_DELETED");
        assert_string_equal(qmp_json_get_string(rec, "device"), "d29");
    }
    collected_clear(&col);

    /* from the middle */
    k = base_seq + 12;
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"since\":%" G_GINT64_FORMAT "},\"id\":2}",
                  k);
    collect(c, &col, FALSE);
    assert_seq_run(col.seqs, k + 1, last);
    collected_clear(&col);
    /* from the end, and past it */
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"since\":%" G_GINT64_FORMAT "},\"id\":3}",
                  last);
    collect(c, &col, FALSE);
    assert_int_equal(col.seqs->len, 0);
    collected_clear(&col);
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"since\":%" G_GINT64_FORMAT "},\"id\":3}",
                  last + 100);
    collect(c, &col, FALSE);
    assert_int_equal(col.seqs->len, 0);
    collected_clear(&col);

    /* filters */
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"device\":\"d7\"},\"id\":4}");
    collect(c, &col, FALSE);
    assert_int_equal(col.seqs->len, 1);
    assert_int_equal(g_array_index(col.seqs, gint64, 0), base_seq + 8);
    assert_int_equal(qmp_json_get_int_default(qmp_json_node_object(assert_return(col.ret, "4")),
                                              "last_seq", -1),
                     last);
    collected_clear(&col);
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"kind\":\"vm\",\"vm\":\"vm1\"},\"id\":5}");
    collect(c, &col, FALSE);
    assert_int_equal(col.seqs->len, 2);
    assert_string_equal(qmp_json_get_string(col.records->pdata[1], "state"), "connected");
    collected_clear(&col);
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"vm\":\"nope\"},\"id\":6}");
    collect(c, &col, FALSE);
    assert_int_equal(col.seqs->len, 0);
    collected_clear(&col);

    /* follow from k: the backlog, then live records, in order, once each;
     * a second follower without since sees only the new ones */
    fl = client_open(f);
    client_printf(fl, "{\"execute\":\"events\",\"arguments\":{\"follow\":true,\"since\":%"
                      G_GINT64_FORMAT "},\"id\":7}", k);
    fl2 = client_open(f);
    r = call(fl2, "{\"execute\":\"events\",\"arguments\":{\"follow\":true},\"id\":8}");
    assert_int_equal(qmp_json_get_int_default(qmp_json_node_object(assert_return(r, "8")),
                                              "since", -1),
                     last);
    /* new records while the first follower may still be in its backlog */
    emit_events(f, "e", 5, 10);
    pump_once(f);
    emit_events(f, "g", 5, 10);
    wait_seq(f, c, last + 10);
    {
        g_autoptr(GArray) seqs = g_array_new(FALSE, FALSE, sizeof(gint64));
        g_autoptr(GArray) seqs2 = g_array_new(FALSE, FALSE, sizeof(gint64));
        gboolean got_ret = FALSE;

        while (seqs->len < (guint)(last + 10 - k)) {
            g_autoptr(JsonNode) n = client_next(fl, WAIT_MS);
            JsonObject *o = qmp_json_node_object(n);
            if (!n)
                fail_msg("follower: %u records, expected %" G_GINT64_FORMAT, seqs->len, last + 10 - k);
            if (!qmp_json_get_string(o, "event")) {
                JsonObject *ret = qmp_json_node_object(assert_return(n, "7"));
                assert_int_equal(qmp_json_get_int_default(ret, "since", -1), k);
                assert_int_equal(seqs->len, 0); /* the reply comes first */
                got_ret = TRUE;
                continue;
            }
            assert_string_equal(qmp_json_get_string(o, "event"), "LOG");
            {
                gint64 s = qmp_json_get_int_default(qmp_json_get_object(o, "data"), "seq", -1);
                g_array_append_val(seqs, s);
            }
        }
        assert_true(got_ret);
        assert_seq_run(seqs, k + 1, last + 10);
        while (seqs2->len < 10) {
            g_autoptr(JsonNode) n = client_next(fl2, WAIT_MS);
            gint64 s;
            if (!n)
                fail_msg("second follower: %u records", seqs2->len);
            assert_string_equal(qmp_json_get_string(qmp_json_node_object(n), "event"), "LOG");
            s = qmp_json_get_int_default(qmp_json_get_object(qmp_json_node_object(n), "data"),
                                         "seq", -1);
            g_array_append_val(seqs2, s);
        }
        assert_seq_run(seqs2, last + 1, last + 10);
        /* and nothing more */
        {
            g_autoptr(JsonNode) n1 = client_next(fl, 100);
            g_autoptr(JsonNode) n2 = client_next(fl2, 1);
            assert_null(n1);
            assert_null(n2);
        }
    }
    /* a connection follows once */
    r2 = call(fl, "{\"execute\":\"events\",\"arguments\":{\"follow\":true},\"id\":9}");
    assert_error(r2, "Busy", "already follows", "9");
    assert_int_equal(status_int(c, "subscribers"), 2);
}

static void
test_log_gap(void **state)
{
    Fixture *f = *state;
    g_autofree char *conf = g_build_filename(f->dir, "hotplugd.conf", NULL);
    g_autofree char *text = g_strdup_printf("[hotplugd]\nstate-dir = %s\nsocket = %s\n"
                                            "log-max-size = 2K\nlog-segment-size = 512\n",
                                            f->state_dir, f->sock);
    g_autoptr(GError) error = NULL;
    DaemonConfig *cfg;
    Client *c, *fl;
    Collected col;
    gint64 first, last;
    g_autoptr(JsonNode) r = NULL;

    assert_true(g_file_set_contents(conf, text, -1, NULL));
    cfg = daemon_config_load(conf, &error);
    if (!cfg)
        fail_msg("%s", error->message);
    assert_int_equal(cfg->log_max_bytes, 2048);
    fixture_start(f, cfg);
    c = client_open(f);
    add_fake_vm(f, c, "vm1");
    emit_events(f, "d", 60, 40);
    wait_seq(f, c, 60);
    first = status_int(c, "first_seq");
    last = status_int(c, "last_seq");
    assert_true(first > 10);
    assert_true(last - first < 40);

    client_printf(c, "{\"execute\":\"events\",\"id\":1}");
    collect(c, &col, FALSE);
    assert_int_equal(col.gap_from, 1);
    assert_int_equal(col.gap_to, first - 1);
    assert_seq_run(col.seqs, first, last);
    collected_clear(&col);

    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"since\":5},\"id\":2}");
    collect(c, &col, FALSE);
    assert_int_equal(col.gap_from, 6);
    assert_int_equal(col.gap_to, first - 1);
    assert_seq_run(col.seqs, first, last);
    collected_clear(&col);

    /* just before the first kept record: no gap */
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"since\":%" G_GINT64_FORMAT "},\"id\":3}",
                  first - 1);
    collect(c, &col, FALSE);
    assert_int_equal(col.gap_from, -1);
    assert_seq_run(col.seqs, first, last);
    collected_clear(&col);

    /* a follower is told too, before its reply */
    fl = client_open(f);
    client_printf(fl, "{\"execute\":\"events\",\"arguments\":{\"since\":0,\"follow\":true},\"id\":4}");
    {
        g_autoptr(JsonNode) gap = client_next(fl, WAIT_MS);
        JsonObject *o = qmp_json_node_object(gap);
        assert_string_equal(qmp_json_get_string(o, "event"), "LOG_GAP");
        assert_int_equal(qmp_json_get_int_default(qmp_json_get_object(o, "data"), "from", -1), 1);
        assert_int_equal(qmp_json_get_int_default(qmp_json_get_object(o, "data"), "to", -1),
                         first - 1);
    }
    r = client_next(fl, WAIT_MS);
    assert_return(r, "4");
}

/* ---- the control server alone ------------------------------------------- */

typedef struct {
    ControlClient *last;
    guint executed;
} Echo;

static void
echo_execute_cb(ControlServer *srv, ControlClient *cl, const char *cmd, JsonObject *args,
                JsonNode *id, gpointer opaque)
{
    Echo *e = opaque;
    g_autofree char *line = g_strdup_printf("{\"event\":\"X\",\"data\":{\"p\":\"%0512d\"}}", 0);

    e->last = cl;
    e->executed++;
    if (g_str_equal(cmd, "fill") || g_str_equal(cmd, "flood")) {
        /* fill the client's output up to its cap */
        while (control_client_send_line(cl, line, strlen(line)))
            ;
        /* then close after the flush */
        if (g_str_equal(cmd, "flood"))
            control_client_close_after_flush(cl);
        return;
    }
    {
        g_autoptr(JsonNode) ret = json_node_init_object(json_node_alloc(), args);
        control_client_return(cl, id, ret);
    }
}

static void
echo_closed_cb(ControlServer *srv, ControlClient *cl, gpointer opaque)
{
    Echo *e = opaque;

    if (e->last == cl)
        e->last = NULL;
}

/* control_server_add_fd serves a socketpair like an accepted client; a
 * client closed after a flush that never reads is cut off after the
 * linger time, not kept for ever. */
static void
test_server_add_fd_and_linger(void **state)
{
    static const ControlCallbacks cb = {echo_execute_cb, echo_closed_cb};
    Fixture *f = *state;
    ControlOptions opts = {.path = f->sock, .mode = 0600, .max_output = 8192,
                           .close_linger_ms = 300};
    g_autoptr(GError) error = NULL;
    ControlServer *srv;
    Echo e = {0};
    Client *c = g_new0(Client, 1);
    int sv[2];
    g_autoptr(JsonNode) g = NULL, r = NULL;
    g_autofree char *text = NULL;
    gint64 t0, waited;
    guint rounds;

    srv = control_server_new(f->base, &opts, &cb, &e, &error);
    if (!srv)
        fail_msg("%s", error->message);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c->f = f;
    c->fd = sv[0];
    c->in = g_string_new(NULL);
    g_ptr_array_add(f->clients, c);
    assert_non_null(control_server_add_fd(srv, sv[1]));
    assert_int_equal(control_server_n_clients(srv), 1);
    g = client_next(c, WAIT_MS);
    assert_non_null(qmp_json_get_object(qmp_json_node_object(g), "QMP"));
    r = call(c, "{\"execute\":\"qmp_capabilities\"}");
    assert_return(r, NULL);
    g_clear_pointer(&r, json_node_unref);
    r = call(c, "{\"execute\":\"echo\",\"arguments\":{\"a\":1},\"id\":1}");
    text = node_text(r);
    assert_string_equal(text, "{\"return\":{\"a\":1},\"id\":1}");

    /* c stops reading; fill the kernel's buffer and the server's */
    c->paused = TRUE;
    for (rounds = 0; rounds < 2000; rounds++) {
        client_printf(c, "{\"execute\":\"fill\"}");
        for (guint i = 0; i < 3; i++)
            pump_once(f);
        if (e.last && control_client_pending_output(e.last) > 0)
            break;
    }
    assert_non_null(e.last);
    assert_true(control_client_pending_output(e.last) > 0);
    /* close after the flush: the flush never comes */
    client_printf(c, "{\"execute\":\"flood\"}");
    t0 = g_get_monotonic_time();
    WAIT_FOR(f, control_server_n_clients(srv) == 0, 3000);
    waited = g_get_monotonic_time() - t0;
    assert_null(e.last);
    assert_true(waited >= 250 * 1000);
    /* what it finally reads ends in EOF */
    c->paused = FALSE;
    WAIT_FOR(f, c->eof, WAIT_MS);
    control_server_free(srv);
    assert_false(g_file_test(f->sock, G_FILE_TEST_EXISTS));
}


/* ---- faults: input ------------------------------------------------------- */

/* Run hotplugctl against the fixture's daemon, pumping the loop meanwhile;
 * returns its exit status, stdout and stderr in *out and *err. */
static int
run_ctl(Fixture *f, char **out, char **err, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autofree char *out_path = g_build_filename(f->dir, "ctl.out", NULL);
    g_autofree char *err_path = g_build_filename(f->dir, "ctl.err", NULL);
    va_list ap;
    const char *a;
    pid_t pid;
    int st = 0;
    gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

    g_ptr_array_add(argv, (char *)HOTPLUGCTL_PATH);
    g_ptr_array_add(argv, (char *)"--socket");
    g_ptr_array_add(argv, f->sock);
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)))
        g_ptr_array_add(argv, (char *)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        execv(HOTPLUGCTL_PATH, (char **)argv->pdata);
        _exit(127);
    }
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (g_get_monotonic_time() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("hotplugctl did not finish in 30 s");
        }
        pump_once(f);
    }
    assert_true(g_file_get_contents(out_path, out, NULL, NULL));
    assert_true(g_file_get_contents(err_path, err, NULL, NULL));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The op's "timeout_ms" as the ops command shows it. */
static gint64
op_timeout_ms(Client *c, const char *device)
{
    g_autoptr(JsonNode) r = call(c, "{\"execute\":\"ops\",\"arguments\":{\"vm\":\"vm1\"},"
                                    "\"id\":\"ops\"}");
    JsonArray *a = qmp_json_node_array(assert_return(r, "\"ops\""));

    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *o = qmp_json_node_object(json_array_get_element(a, i));
        if (g_strcmp0(qmp_json_get_string(o, "device"), device) == 0)
            return qmp_json_get_int_default(o, "timeout_ms", -1);
    }
    fail_msg("no op for %s", device);
    return -1;
}

static void
assert_config_refused(Fixture *f, const char *text, const char *why)
{
    g_autofree char *path = g_build_filename(f->dir, "bad.conf", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(DaemonConfig) cfg = NULL;

    assert_true(g_file_set_contents(path, text, -1, NULL));
    cfg = daemon_config_load(path, &error);
    if (cfg)
        fail_msg("config accepted: %s", text);
    if (!strstr(error->message, why))
        fail_msg("config %s refused with '%s', want '%s'", text, error->message, why);
}

/* The example configuration (installed as /etc/hotplugd.conf) loads, and
 * [timeouts] takes every deadline class the engine has, by its name. */
static void
test_config_example(void **state)
{
    Fixture *f = *state;
    g_autofree char *example = g_build_filename(TOP_SRCDIR, "examples", "hotplugd.conf", NULL);
    g_autofree char *path = g_build_filename(f->dir, "all.conf", NULL);
    g_autoptr(GString) text = g_string_new("[timeouts]\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(DaemonConfig) cfg = daemon_config_load(example, &error);

    if (!cfg)
        fail_msg("%s: %s", example, error->message);
    g_clear_pointer(&cfg, daemon_config_free);
    for (guint c = 0; c < TIMEOUT_CLASS_COUNT; c++)
        g_string_append_printf(text, "%s = %u\n", timeout_class_name(c), 7 + c);
    assert_true(g_file_set_contents(path, text->str, -1, NULL));
    cfg = daemon_config_load(path, &error);
    if (!cfg)
        fail_msg("%s: %s", text->str, error->message);
    for (guint c = 0; c < TIMEOUT_CLASS_COUNT; c++)
        assert_int_equal(cfg->timeouts.ms[c], (7 + c) * 1000);
}

/* Deadlines are 64-bit milliseconds with a stated maximum (no wrap at
 * 2^32 ms), numbers are decimal only, id= is not a property, and
 * configuration values have a floor. */
static void
test_input_limits(void **state)
{
    Fixture *f = *state;
    Client *c;
    g_autofree char *out = NULL, *err = NULL;
    int rc;

    fixture_start(f, NULL);
    c = client_open(f);
    add_fake_vm(f, c, "vm1");
    fake_peer_auto(f->peer, "device_del", "{}");

    /* the protocol: 4294967.297 s is 4294967297 ms, not 1 ms */
    {
        g_autoptr(JsonNode) r = call(c, "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\","
                                        "\"id\":\"d1\",\"timeout\":4294967.297,\"no-wait\":true},"
                                        "\"id\":1}");
        assert_return(r, "1");
        assert_int_equal(op_timeout_ms(c, "d1"), G_GINT64_CONSTANT(4294967297));
    }
    call_error(c, "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"d0\","
                  "\"timeout\":31536000.001},\"id\":2}", "InvalidArgument", "(31536000)", "2");
    /* hotplugctl: the same through the command line */
    rc = run_ctl(f, &out, &err, "device", "del", "vm1", "d2", "--timeout", "4294967.297",
                 "--no-wait", NULL);
    if (rc != 0)
        fail_msg("hotplugctl: %d: %s%s", rc, out, err);
    assert_int_equal(op_timeout_ms(c, "d2"), G_GINT64_CONSTANT(4294967297));
    /* decimal numbers only */
    for (guint i = 0; i < 6; i++) {
        static const char *const bad[] = {"0x10", "1e3", "inf", " 5", "-1", "5s"};
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        rc = run_ctl(f, &out, &err, "device", "del", "vm1", "d3", "--timeout", bad[i],
                     "--no-wait", NULL);
        if (rc != 2 || !strstr(err, "bad value"))
            fail_msg("--timeout '%s': exit %d, %s", bad[i], rc, err);
    }
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    rc = run_ctl(f, &out, &err, "device", "del", "vm1", "d3", "--retry", "0x2", "--no-wait",
                 NULL);
    assert_int_equal(rc, 2);
    /* id= among the properties: a usage error, nothing sent to QEMU */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    rc = run_ctl(f, &out, &err, "device", "add", "vm1", "usb-kbd", "k1", "id=other", NULL);
    if (rc != 2 || !strstr(err, "names the device"))
        fail_msg("id=other: exit %d, %s%s", rc, out, err);
    call_error(c, "{\"execute\":\"device-add\",\"arguments\":{\"vm\":\"vm1\",\"driver\":\"usb-kbd\","
                  "\"id\":\"k1\",\"props\":[\"id=other\"]},\"id\":3}", "InvalidArgument",
               "the ID argument gives it", "3");
    for (guint i = 0; i < fake_peer_n_received(f->peer); i++)
        assert_string_not_equal(fake_peer_received_command(f->peer, i), "device_add");

    /* configuration: floors and decimal numbers */
    assert_config_refused(f, "[hotplugd]\nsubscriber-buffer = 1\n", "at least");
    assert_config_refused(f, "[hotplugd]\nsubscriber-buffer = 0x100000\n", "want a size");
    assert_config_refused(f, "[hotplugd]\nlog-segment-size = 1\n", "at least");
    assert_config_refused(f, "[timeouts]\npci = 0x10\n", "decimal number of seconds");
    assert_config_refused(f, "[timeouts]\npci = 0\n", "decimal number of seconds");
    assert_config_refused(f, "[timeouts]\npci = 4294967.297\n", "decimal number of seconds");
    assert_config_refused(f, "[retry]\ninterval = 1e3\n", "decimal number of seconds");
}


/* ---- faults: the state directory ------------------------------------------ */

static void
start_refused(Fixture *f, const char *why)
{
    g_autoptr(GError) error = NULL;
    Daemon *d = daemon_new(f->base, fixture_config(f), NULL, &error);

    if (d) {
        daemon_free(d);
        fail_msg("the daemon started (want refused: %s)", why);
    }
    if (!strstr(error->message, why))
        fail_msg("refused with '%s', want '%s'", error->message, why);
}

static void
assert_file_is(const char *path, const char *content)
{
    g_autofree char *text = NULL;

    assert_true(g_file_get_contents(path, &text, NULL, NULL));
    assert_string_equal(text, content);
}

/* Created 0700; refused when others may write to it or another user owns
 * it; a symbolic link at any of its files is refused, never followed; a
 * non-socket at --socket is refused, never deleted. */
static void
test_state_dir_hostile(void **state)
{
    Fixture *f = *state;
    g_autofree char *victim = g_build_filename(f->dir, "victim", NULL);
    static const char *const files[] = {"journal", "lock", "vms.json",
                                        "events/events-00000000000000000001.log"};
    struct stat st;

    /* a new one: 0700 */
    fixture_start(f, NULL);
    assert_int_equal(stat(f->state_dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    fixture_stop(f);

    /* writable by others, by its group; owned by someone else */
    assert_int_equal(chmod(f->state_dir, 0777), 0);
    start_refused(f, "writable by others");
    assert_int_equal(chmod(f->state_dir, 0770), 0);
    start_refused(f, "writable by its group");
    assert_int_equal(chmod(f->state_dir, 0700), 0);
    assert_int_equal(chown(f->state_dir, 65534, 65534), 0);
    start_refused(f, "owned by uid 65534");
    assert_int_equal(chown(f->state_dir, geteuid(), getegid()), 0);

    /* a symbolic link planted at each file: refused, the target untouched */
    for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *p = g_build_filename(f->state_dir, files[i], NULL);
        g_autofree char *saved = g_strconcat(p, ".saved", NULL);
        gboolean existed = g_file_test(p, G_FILE_TEST_EXISTS);

        assert_true(g_file_set_contents(victim, "precious\n", -1, NULL));
        if (existed)
            assert_int_equal(rename(p, saved), 0);
        assert_int_equal(symlink(victim, p), 0);
        start_refused(f, "symbolic link");
        assert_file_is(victim, "precious\n");
        assert_int_equal(unlink(p), 0);
        if (existed)
            assert_int_equal(rename(saved, p), 0);
    }

    /* a regular file at the socket path */
    assert_true(g_file_set_contents(f->sock, "not a socket\n", -1, NULL));
    start_refused(f, "not a socket");
    assert_file_is(f->sock, "not a socket\n");
    assert_int_equal(unlink(f->sock), 0);
    /* and it starts again once all is well */
    fixture_start(f, NULL);
}

/* A torn vms.json: the daemon does not start and does not touch it. */
static void
test_vms_json_torn(void **state)
{
    Fixture *f = *state;
    g_autofree char *vms = g_build_filename(f->state_dir, "vms.json", NULL);
    Client *c;

    fixture_start(f, NULL);
    c = client_open(f);
    add_fake_vm(f, c, "rt1");
    fixture_stop(f);
    assert_true(g_file_set_contents(vms, "{\n  \"rt1\" : \"/tmp/x.qmp\",\n  \"rt", -1, NULL));
    start_refused(f, "vms.json is damaged");
    assert_file_is(vms, "{\n  \"rt1\" : \"/tmp/x.qmp\",\n  \"rt");
}

/* ---- faults: a full disk ------------------------------------------------------- */

/* Fill the file system of dir to the last byte; returns the filler's path. */
static char *
fill_up(const char *dir)
{
    char *path = g_build_filename(dir, "filler", NULL);
    char buf[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    gsize chunk = sizeof buf;

    memset(buf, 'x', sizeof buf);
    assert_true(fd >= 0);
    while (chunk > 0) {
        if (write(fd, buf, chunk) < 0) {
            assert_int_equal(errno, ENOSPC);
            chunk /= 2;
        }
    }
    close(fd);
    return path;
}

static guint
log_count(const char *needle)
{
    guint n = 0;

    for (guint i = 0; i < daemon_log->len; i++)
        n += strstr(daemon_log->pdata[i], needle) != NULL;
    return n;
}

static gboolean
peer_got(FakePeer *p, const char *cmd, const char *arg)
{
    for (guint i = 0; p && i < fake_peer_n_received(p); i++)
        if (g_strcmp0(fake_peer_received_command(p, i), cmd) == 0 &&
            (!arg || strstr(fake_peer_received(p, i), arg)))
            return TRUE;
    return FALSE;
}

/* ENOSPC on the state directory (a small tmpfs the test fills): nothing
 * is sent to QEMU before its journal entry is stored, nothing is replied
 * as done before its record is on disk, changes are refused with
 * StorageError while reads work, one log message, and the daemon
 * recovers by itself when there is room again; vm-add fails when vms.json
 * could not be written. */
static void
test_storage_full(void **state)
{
    Fixture *f = *state;
    g_autofree char *mnt = g_build_filename(f->dir, "tmpfs", NULL);
    g_autofree char *filler = NULL;
    Client *c;

    if (geteuid() != 0)
        fail_msg("mounting the small tmpfs needs root (make check-unit leaves this test out)");
    assert_int_equal(g_mkdir_with_parents(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700") < 0)
        fail_msg("mount tmpfs: %s", g_strerror(errno));
    g_free(f->state_dir);
    f->state_dir = g_build_filename(mnt, "state", NULL);
    f->tmpfs = g_strdup(mnt);

    fixture_start(f, NULL);
    c = client_open(f);
    add_fake_vm(f, c, "vm1");
    fake_peer_auto(f->peer, "device_del", "{}");
    filler = fill_up(mnt);

    /* the first change: its journal entry cannot be stored, so device_del
     * is not sent; the client hears it was rejected, not done */
    {
        g_autoptr(JsonNode) r = call(c, "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\","
                                        "\"id\":\"d1\",\"no-wait\":true},\"id\":1}");
        g_autofree char *text = node_text(r);
        JsonObject *o = qmp_json_get_object(qmp_json_node_object(r), "return");
        JsonObject *e = qmp_json_get_object(o, "error");
        if (!o || g_strcmp0(qmp_json_get_string(o, "outcome"), "rejected") != 0 ||
            g_strcmp0(qmp_json_get_string(e, "class"), "StorageError") != 0)
            fail_msg("device-del on a full disk: %s", text);
    }
    pump_ms(f, 50);
    assert_false(peer_got(f->peer, "device_del", NULL));
    /* then changes are refused at once, with a clear error */
    call_error(c, "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"d2\"},"
                  "\"id\":2}", "StorageError", "cannot write its state directory", "2");
    call_error(c, "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"vm2\",\"qmp\":\"/x.qmp\"},"
                  "\"id\":3}", "StorageError", "changes are refused", "3");
    /* reads work */
    {
        g_autoptr(JsonNode) r = call(c, "{\"execute\":\"vm-list\",\"id\":4}");
        assert_return(r, "4");
        g_autoptr(JsonObject) st = status(c);
        assert_int_equal(qmp_json_get_int_default(st, "vms", -1), 1);
    }
    pump_ms(f, 1200); /* a few retries: still one message */
    assert_int_equal(log_count("cannot write the state directory"), 1);

    /* room again: it recovers by itself, and everything is written */
    assert_int_equal(unlink(filler), 0);
    WAIT_FOR(f, log_count("can be written again") == 1, WAIT_MS);
    {
        g_autoptr(JsonNode) r = call(c, "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\","
                                        "\"id\":\"d3\",\"no-wait\":true},\"id\":5}");
        assert_return(r, "5");
    }
    WAIT_FOR(f, peer_got(f->peer, "device_del", "d3"), WAIT_MS);
    assert_false(peer_got(f->peer, "device_del", "\"d1\""));
    {
        /* d1's records reached the log after all, in order */
        Collected col;
        gboolean found = FALSE;
        client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"device\":\"d1\"},\"id\":6}");
        collect(c, &col, FALSE);
        for (guint i = 0; i < col.records->len; i++)
            found |= g_strcmp0(qmp_json_get_string(col.records->pdata[i], "outcome"),
                               "rejected") == 0;
        assert_true(found);
        collected_clear(&col);
    }

    /* vm-add whose vms.json cannot be written fails, and the VM is not kept */
    g_free(filler);
    filler = fill_up(mnt);
    {
        g_autoptr(JsonNode) r = call(c, "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"vm3\","
                                        "\"qmp\":\"/nonexistent/vm3.qmp\"},\"id\":7}");
        assert_error(r, "StorageError", "", "7");
    }
    {
        g_autoptr(JsonObject) st = status(c);
        assert_int_equal(qmp_json_get_int_default(st, "vms", -1), 1);
    }
    assert_int_equal(unlink(filler), 0);
    WAIT_FOR(f, log_count("can be written again") == 2, WAIT_MS);
    fixture_stop(f);
    fixture_start(f, NULL);
    c = client_open(f);
    {
        g_autoptr(JsonObject) st = status(c);
        assert_int_equal(qmp_json_get_int_default(st, "vms", -1), 1);
    }
}


/* ---- faults: fairness ------------------------------------------------------------ */

/* One VM streaming RESET events: its storm is coalesced with a count, every
 * event is accounted for, and the other VMs' history stays in the log. */
static void
test_event_storm(void **state)
{
    Fixture *f = *state;
    DaemonConfig *cfg = fixture_config(f);
    g_autofree char *quiet = g_build_filename(f->dir, "quiet.qmp", NULL);
    const guint n_events = 5000;
    Client *c;
    Collected col;
    guint64 total = 0;
    guint n_records = 0;
    gint64 t0, secs;

    cfg->log_max_bytes = 64 * 1024;
    cfg->log_segment_bytes = 8 * 1024;
    fixture_start(f, cfg);
    c = client_open(f);
    {
        g_autoptr(JsonNode) r = call(c, "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"quiet\","
                                        "\"qmp\":\"%s\"},\"id\":1}", quiet);
        assert_return(r, "1");
    }
    add_fake_vm(f, c, "vm1");
    t0 = g_get_monotonic_time();
    for (guint i = 0; i < n_events; i++)
        fake_peer_event(f->peer, "RESET", "{\"guest\":true,\"reason\":\"guest-reset\"}");
    /* until every RESET is accounted for (the storm read, its last window
     * ended), however slow the machine */
    for (gint64 end = t0 + 60 * G_USEC_PER_SEC; total != n_events;) {
        if (g_get_monotonic_time() > end)
            fail_msg("%u records standing for %" G_GUINT64_FORMAT " RESETs after 60 s (sent %u)",
                     n_records, total, n_events);
        pump_ms(f, 300);
        total = 0;
        n_records = 0;
        client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"vm\":\"vm1\","
                         "\"kind\":\"qemu-event\"},\"id\":3}");
        collect(c, &col, FALSE);
        for (guint i = 0; i < col.records->len; i++) {
            JsonObject *rec = col.records->pdata[i];
            assert_string_equal(qmp_json_get_string(rec, "event"), "RESET");
            total += (guint64)qmp_json_get_int_default(rec, "count", 1);
            n_records++;
        }
        collected_clear(&col);
    }
    /* at most 10 one by one and one coalesced per second of the storm */
    secs = (g_get_monotonic_time() - t0) / G_USEC_PER_SEC + 1;
    if (n_records > 11 * (guint)secs)
        fail_msg("%u records in %" G_GINT64_FORMAT " s", n_records, secs);

    /* the quiet VM's history is still there, nothing dropped before it */
    client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"vm\":\"quiet\",\"kind\":\"vm\"},"
                     "\"id\":2}");
    collect(c, &col, FALSE);
    assert_int_equal(col.gap_from, -1);
    assert_true(col.records->len >= 1);
    assert_string_equal(qmp_json_get_string(col.records->pdata[0], "state"), "added");
    collected_clear(&col);
}

/* A cap on control clients with a clear refusal; a client that does not
 * negotiate is let go, so idle connections cannot lock everyone out. */
static void
test_client_cap(void **state)
{
    static const ControlCallbacks cb = {echo_execute_cb, echo_closed_cb};
    Fixture *f = *state;
    DaemonConfig *cfg = fixture_config(f);
    Client *cs[4];
    Client *extra;
    g_autoptr(JsonNode) n = NULL;

    cfg->max_clients = 4;
    fixture_start(f, cfg);
    for (guint i = 0; i < 4; i++)
        cs[i] = client_open(f);
    extra = client_new(f);
    n = client_next(extra, WAIT_MS);
    assert_error(n, "Busy", "try again later", NULL);
    g_clear_pointer(&n, json_node_unref);
    WAIT_FOR(f, extra->eof, WAIT_MS);
    /* the others are served all along */
    {
        g_autoptr(JsonObject) st = status(cs[0]);
        assert_int_equal(qmp_json_get_int_default(st, "clients", -1), 4);
    }
    /* one leaves: there is room again */
    g_ptr_array_remove(f->clients, cs[3]);
    {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
        while (status_int(cs[0], "clients") != 3) {
            if (g_get_monotonic_time() > end)
                fail_msg("the client that left is still counted");
            pump_ms(f, 5);
        }
    }
    (void)client_open(f);
    fixture_stop(f);

    /* idle, never negotiating: disconnected after negotiate_ms */
    {
        ControlOptions opts = {.path = f->sock, .mode = 0600, .max_clients = 2,
                               .negotiate_ms = 200};
        g_autoptr(GError) error = NULL;
        Echo e = {0};
        ControlServer *srv = control_server_new(f->base, &opts, &cb, &e, &error);
        Client *idle[2];

        if (!srv)
            fail_msg("%s", error->message);
        for (guint i = 0; i < 2; i++)
            idle[i] = client_new(f);
        WAIT_FOR(f, control_server_n_clients(srv) == 2, WAIT_MS);
        WAIT_FOR(f, idle[0]->eof && idle[1]->eof, WAIT_MS);
        WAIT_FOR(f, control_server_n_clients(srv) == 0, WAIT_MS);
        {
            /* and a new one gets in */
            Client *c = client_new(f);
            g_autoptr(JsonNode) g = client_next(c, WAIT_MS);
            assert_non_null(qmp_json_get_object(qmp_json_node_object(g), "QMP"));
        }
        g_ptr_array_set_size(f->clients, 0);
        control_server_free(srv);
    }
}


/* ---- faults: a hung QEMU, direct mode --------------------------------------------- */

typedef struct {
    struct event_base *base;
    FakePeer *peer;
    gboolean answer_capabilities;
} HungQemu;

static void
hung_accept_cb(evutil_socket_t lfd, short what, void *opaque)
{
    HungQemu *h = opaque;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0)
        return;
    if (h->peer)
        fake_peer_free(h->peer);
    h->peer = fake_peer_new_from_fd(h->base, fd);
    if (!h->answer_capabilities)
        fake_peer_step_hold(fake_peer_expect(h->peer, "qmp_capabilities", NULL));
    else
        fake_peer_step_hold(fake_peer_expect(h->peer, "device_del", NULL));
    fake_peer_greet(h->peer);
}

/* hotplugctl device del PATH ID --timeout 1 against a QEMU that greets and
 * never answers (negotiation, or device_del): it returns within the
 * deadline plus the grace, not-deleted, saying QEMU did not answer. */
static void
test_direct_hung_qemu(void **state)
{
    Fixture *f = *state;
    g_autofree char *path = g_build_filename(f->dir, "hung.qmp", NULL);
    HungQemu h = {.base = f->base};
    int lfd = unix_listen(path);
    struct event *ev = event_new(f->base, lfd, EV_READ | EV_PERSIST, hung_accept_cb, &h);

    event_add(ev, NULL);
    for (guint round = 0; round < 2; round++) {
        g_autofree char *out = NULL, *err = NULL;
        gint64 t0 = g_get_monotonic_time(), took;
        int rc;

        h.answer_capabilities = round == 1;
        rc = run_ctl(f, &out, &err, "device", "del", path, "d1", "--timeout", "1", NULL);
        took = (g_get_monotonic_time() - t0) / 1000;
        if (rc != 5 || !strstr(out, "not-deleted") || !strstr(out, "did not answer"))
            fail_msg("round %u: exit %d after %" G_GINT64_FORMAT " ms: %s%s", round, rc, took,
                     out, err);
        /* the deadline, the grace, and starting a process under load */
        if (took > 1000 + HOTPLUG_CONFIRM_GRACE_MS + 1500)
            fail_msg("round %u: took %" G_GINT64_FORMAT " ms", round, took);
    }
    event_free(ev);
    close(lfd);
    if (h.peer)
        fake_peer_free(h.peer);
}


/* The newest event-log segment of the fixture's state directory. */
static char *
newest_segment_path(Fixture *f)
{
    g_autofree char *dir = g_build_filename(f->state_dir, "events", NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_autofree char *best = NULL;
    const char *name;

    while (d && (name = g_dir_read_name(d)))
        if (g_str_has_prefix(name, "events-") && (!best || strcmp(name, best) > 0)) {
            g_free(best);
            best = g_strdup(name);
        }
    assert_non_null(best);
    return g_build_filename(dir, best, NULL);
}

/* An unplug whose outcome record cannot be written when the device goes:
 * the client is not told "deleted" until the record is on disk, and it is
 * written once writes work again (RLIMIT_FSIZE makes the log's appends
 * fail, like a full disk). */
static void
test_storage_outcome_waits(void **state)
{
    Fixture *f = *state;
    g_autofree char *seg = NULL;
    struct rlimit saved, rl;
    struct stat st;
    Client *c;
    g_autoptr(JsonNode) early = NULL, r = NULL;

    fixture_start(f, NULL);
    c = client_open(f);
    add_fake_vm(f, c, "vm1");
    fake_peer_auto(f->peer, "device_del", "{}");
    client_printf(c, "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm1\",\"id\":\"d5\","
                     "\"timeout\":30},\"id\":1}");
    {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
        while (!(f->peer && fake_peer_n_received(f->peer) > 0 &&
                 g_strcmp0(fake_peer_received_command(f->peer, fake_peer_n_received(f->peer) - 1),
                           "device_del") == 0) && g_get_monotonic_time() < end)
            pump_once(f);
    }
    pump_ms(f, 50);
    /* from now on, the log cannot grow */
    seg = newest_segment_path(f);
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    rl = saved;
    rl.rlim_cur = (rlim_t)st.st_size;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
    fake_peer_event(f->peer, "DEVICE_DELETED", "{\"device\":\"d5\",\"path\":\"/machine/peripheral/d5\"}");
    {
        /* progress events may come; the reply may not */
        gint64 end = g_get_monotonic_time() + 800 * 1000;
        while (!early && g_get_monotonic_time() < end) {
            JsonNode *n = client_next(c, 50);
            if (n && json_object_has_member(json_node_get_object(n), "event"))
                json_node_unref(n);
            else
                early = n;
        }
    }
    if (early) {
        g_autofree char *text = node_text(early);
        setrlimit(RLIMIT_FSIZE, &saved);
        fail_msg("told before the record was on disk: %s", text);
    }
    assert_non_null(log_find("cannot write the state directory"));
    /* room again: the record is written, then the client hears it */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, SIG_DFL);
    r = client_reply(c);
    {
        JsonObject *o = qmp_json_get_object(qmp_json_node_object(r), "return");
        g_autofree char *text = node_text(r);
        if (g_strcmp0(qmp_json_get_string(o, "outcome"), "deleted") != 0)
            fail_msg("reply: %s", text);
    }
    {
        Collected col;
        gboolean found = FALSE;
        client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"device\":\"d5\","
                         "\"kind\":\"outcome\"},\"id\":2}");
        collect(c, &col, FALSE);
        for (guint i = 0; i < col.records->len; i++)
            found |= g_strcmp0(qmp_json_get_string(col.records->pdata[i], "outcome"),
                               "deleted") == 0;
        assert_true(found);
        collected_clear(&col);
    }
}


/* The newest segment emptied while the daemon is down: no seq is issued
 * twice (a follower resuming with since=N must not skip records). */
static void
test_seq_after_emptied_segment(void **state)
{
    Fixture *f = *state;
    g_autofree char *seg = NULL;
    Client *c;
    gint64 last;

    fixture_start(f, NULL);
    c = client_open(f);
    add_fake_vm(f, c, "vm1");
    last = status_int(c, "last_seq");
    assert_true(last >= 2);
    fixture_stop(f);
    seg = newest_segment_path(f);
    assert_int_equal(truncate(seg, 0), 0);
    fixture_start(f, NULL);
    c = client_open(f);
    assert_true(status_int(c, "last_seq") >= last);
    add_fake_vm(f, c, "vm2");
    {
        Collected col;
        client_printf(c, "{\"execute\":\"events\",\"arguments\":{\"vm\":\"vm2\"},\"id\":9}");
        collect(c, &col, FALSE);
        assert_true(col.seqs->len >= 1);
        for (guint i = 0; i < col.seqs->len; i++)
            assert_true(g_array_index(col.seqs, gint64, i) > last);
        collected_clear(&col);
    }
}

/* `test-control --needs-root` runs the tests that mount a tmpfs
 * (tests/test-control-root.sh); without it, all the others. */
int
main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest root_tests[] = {
        T(test_storage_full),
    };
    const struct CMUnitTest tests[] = {
        T(test_greeting),
        T(test_negotiation),
        T(test_bad_messages),
        T(test_bad_arguments),
        T(test_long_line),
        T(test_nesting),
        T(test_two_values),
        T(test_slow_subscriber),
        T(test_unread_replies),
        T(test_disconnect_mid_request),
        T(test_sigpipe),
        T(test_runtime_vms_persist),
        T(test_second_daemon),
        T(test_events_resume),
        T(test_log_gap),
        T(test_server_add_fd_and_linger),
        T(test_input_limits),
        T(test_config_example),
        T(test_state_dir_hostile),
        T(test_vms_json_torn),
        T(test_seq_after_emptied_segment),
        T(test_storage_outcome_waits),
        T(test_event_storm),
        T(test_client_cap),
        T(test_direct_hung_qemu),
    };

    g_log_set_writer_func(test_log_writer, NULL, NULL);
    /* TEST_FILTER=test_name (cmocka's pattern) runs some of them */
    if (g_getenv("TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("TEST_FILTER"));
    if (argc > 1 && strcmp(argv[1], "--needs-root") == 0)
        return cmocka_run_group_tests(root_tests, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
