/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A scripted fake QMP peer: see fake-peer.h. */
#define G_LOG_DOMAIN "fake-peer"
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-glib/json-glib.h>

#include "fake-peer.h"

struct FakeStep {
    FakePeer *peer;
    guint index;
    char *command;
    JsonNode *args_subset;    /* NULL: no check */
    GPtrArray *events_before; /* FakeEvent, sent when the command arrives */
    GPtrArray *events_after;  /* FakeEvent, sent after the reply */
    char *reply_member;       /* "return": JSON text; or NULL with an error */
    char *error_class;
    char *error_desc;
    gboolean hold;
    gboolean received;
    gboolean answered;
    JsonNode *id; /* the id of the command that consumed the step */
};

struct FakePeer {
    struct event_base *base;
    int fd; /* -1 after hangup */
    struct event *read_ev;
    struct event *write_ev;
    struct evbuffer *out;
    gboolean client_closed;
    gint64 timestamp_us;

    /* splitting the client's byte stream into top-level JSON values */
    GString *in;
    gsize scan; /* bytes of in already scanned */
    guint depth;
    gboolean in_string, escaped;

    GPtrArray *steps; /* FakeStep, in order */
    guint next_step;
    GHashTable *autos;       /* command -> return JSON text */
    GHashTable *auto_args;   /* "command args-JSON" -> reply JSON text ({"return"}/{"error"}) */
    GPtrArray *received;     /* char *, raw command text */
    char *arch;              /* what query-target answers */
    GPtrArray *received_cmd; /* char *, "execute" name ("" if none) */
    GPtrArray *failures;     /* char * */
    guint unanswered, max_unanswered;
};

/* An event a step sends; its timestamp is taken when it is sent. */
typedef struct {
    char *name;
    char *data_json; /* may be NULL */
} FakeEvent;

static void fake_peer_read_cb(evutil_socket_t fd, short what, void *opaque);
static void fake_peer_write_cb(evutil_socket_t fd, short what, void *opaque);

static void
fake_event_free(FakeEvent *e)
{
    g_free(e->name);
    g_free(e->data_json);
    g_free(e);
}

static FakeEvent *
fake_event_new(const char *name, const char *data_json)
{
    FakeEvent *e = g_new0(FakeEvent, 1);

    e->name = g_strdup(name);
    e->data_json = g_strdup(data_json);
    return e;
}

static void
fake_step_free(FakeStep *s)
{
    g_free(s->command);
    if (s->args_subset)
        json_node_unref(s->args_subset);
    g_ptr_array_unref(s->events_before);
    g_ptr_array_unref(s->events_after);
    g_free(s->reply_member);
    g_free(s->error_class);
    g_free(s->error_desc);
    if (s->id)
        json_node_unref(s->id);
    g_free(s);
}

FakePeer *
fake_peer_new_from_fd(struct event_base *base, int fd)
{
    FakePeer *p;

    g_return_val_if_fail(base && fd >= 0, NULL);
    p = g_new0(FakePeer, 1);
    p->base = base;
    p->fd = fd;
    evutil_make_socket_nonblocking(p->fd);
    p->read_ev = event_new(base, p->fd, EV_READ | EV_PERSIST, fake_peer_read_cb, p);
    p->write_ev = event_new(base, p->fd, EV_WRITE, fake_peer_write_cb, p);
    event_add(p->read_ev, NULL);
    p->out = evbuffer_new();
    p->timestamp_us = -1;
    p->in = g_string_new(NULL);
    p->steps = g_ptr_array_new_with_free_func((GDestroyNotify)fake_step_free);
    p->autos = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    p->auto_args = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    p->received = g_ptr_array_new_with_free_func(g_free);
    p->arch = g_strdup("x86_64");
    p->received_cmd = g_ptr_array_new_with_free_func(g_free);
    p->failures = g_ptr_array_new_with_free_func(g_free);
    return p;
}

FakePeer *
fake_peer_new(struct event_base *base, int *client_fd)
{
    int sv[2];

    g_return_val_if_fail(base && client_fd, NULL);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        g_error("socketpair: %s", g_strerror(errno));
    *client_fd = sv[1];
    return fake_peer_new_from_fd(base, sv[0]);
}

static void
fake_peer_close_fd(FakePeer *p)
{
    if (p->fd < 0)
        return;
    event_del(p->read_ev);
    event_del(p->write_ev);
    close(p->fd);
    p->fd = -1;
    evbuffer_drain(p->out, evbuffer_get_length(p->out));
}

void
fake_peer_free(FakePeer *p)
{
    if (!p)
        return;
    fake_peer_close_fd(p);
    event_free(p->read_ev);
    event_free(p->write_ev);
    evbuffer_free(p->out);
    g_string_free(p->in, TRUE);
    g_ptr_array_unref(p->steps);
    g_hash_table_unref(p->autos);
    g_hash_table_unref(p->auto_args);
    g_ptr_array_unref(p->received);
    g_free(p->arch);
    g_ptr_array_unref(p->received_cmd);
    g_ptr_array_unref(p->failures);
    g_free(p);
}

static void G_GNUC_PRINTF(2, 3) fake_peer_fail(FakePeer *p, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_debug("failure: %s", msg);
    g_ptr_array_add(p->failures, msg);
}

/* ---- output --------------------------------------------------------- */

/* Write as much as the socket takes now; wait for room for the rest. */
static void
fake_peer_flush(FakePeer *p)
{
    while (p->fd >= 0 && evbuffer_get_length(p->out)) {
        gsize n = MIN(evbuffer_get_length(p->out), 65536);
        const unsigned char *data = evbuffer_pullup(p->out, (ev_ssize_t)n);
        ssize_t w = send(p->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(p->write_ev, NULL);
                return;
            }
            /* the client is gone: nothing more can be delivered */
            g_debug("send: %s", g_strerror(errno));
            evbuffer_drain(p->out, evbuffer_get_length(p->out));
            return;
        }
        evbuffer_drain(p->out, (size_t)w);
    }
}

static void
fake_peer_write_cb(evutil_socket_t fd, short what, void *opaque)
{
    fake_peer_flush(opaque);
}

void
fake_peer_send_raw(FakePeer *p, const char *bytes, gsize len)
{
    if (p->fd < 0)
        return;
    evbuffer_add(p->out, bytes, len);
    fake_peer_flush(p);
}

void
fake_peer_send(FakePeer *p, const char *json)
{
    g_autofree char *line = g_strconcat(json, "\r\n", NULL);

    fake_peer_send_raw(p, line, strlen(line));
}

static char *
fake_peer_event_line(FakePeer *p, const char *name, const char *data_json)
{
    gint64 ts = p->timestamp_us >= 0 ? p->timestamp_us : g_get_real_time();
    g_autoptr(JsonNode) name_node = json_node_init_string(json_node_alloc(), name);
    g_autofree char *name_text = json_to_string(name_node, FALSE);
    GString *s = g_string_new(NULL);

    g_string_append_printf(s,
                           "{\"timestamp\": {\"seconds\": %" G_GINT64_FORMAT
                           ", \"microseconds\": %" G_GINT64_FORMAT "}, \"event\": %s",
                           ts / G_USEC_PER_SEC, ts % G_USEC_PER_SEC, name_text);
    if (data_json)
        g_string_append_printf(s, ", \"data\": %s", data_json);
    g_string_append_c(s, '}');
    return g_string_free(s, FALSE);
}

void
fake_peer_event(FakePeer *p, const char *name, const char *data_json)
{
    g_autofree char *line = fake_peer_event_line(p, name, data_json);

    fake_peer_send(p, line);
}

void
fake_peer_set_timestamp(FakePeer *p, gint64 timestamp_us)
{
    p->timestamp_us = timestamp_us;
}

void
fake_peer_greet_custom(FakePeer *p, const char *greeting_json)
{
    fake_peer_send(p, greeting_json);
}

void
fake_peer_greet(FakePeer *p)
{
    fake_peer_greet_custom(p, FAKE_PEER_GREETING_7_2);
}

void
fake_peer_hangup(FakePeer *p)
{
    fake_peer_close_fd(p);
}

gboolean
fake_peer_client_closed(FakePeer *p)
{
    return p->client_closed;
}

/* ---- script --------------------------------------------------------- */

static JsonNode *
fake_peer_parse_json(const char *text, const char *what)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;

    if (!json_parser_load_from_data(parser, text, -1, &err))
        g_error("fake peer: bad JSON for %s: %s: %s", what, err->message, text);
    return json_parser_steal_root(parser);
}

FakeStep *
fake_peer_expect(FakePeer *p, const char *command, const char *args_subset_json)
{
    FakeStep *s = g_new0(FakeStep, 1);

    s->peer = p;
    s->index = p->steps->len;
    s->command = g_strdup(command);
    if (args_subset_json) {
        s->args_subset = fake_peer_parse_json(args_subset_json, command);
        if (!JSON_NODE_HOLDS_OBJECT(s->args_subset))
            g_error("fake peer: arguments of %s must be an object", command);
    }
    s->events_before = g_ptr_array_new_with_free_func((GDestroyNotify)fake_event_free);
    s->events_after = g_ptr_array_new_with_free_func((GDestroyNotify)fake_event_free);
    g_ptr_array_add(p->steps, s);
    return s;
}

void
fake_peer_step_event_before(FakeStep *s, const char *name, const char *data_json)
{
    if (data_json)
        json_node_unref(fake_peer_parse_json(data_json, name)); /* validate now */
    g_ptr_array_add(s->events_before, fake_event_new(name, data_json));
}

void
fake_peer_step_event_after(FakeStep *s, const char *name, const char *data_json)
{
    if (data_json)
        json_node_unref(fake_peer_parse_json(data_json, name));
    g_ptr_array_add(s->events_after, fake_event_new(name, data_json));
}

void
fake_peer_step_return(FakeStep *s, const char *return_json)
{
    json_node_unref(fake_peer_parse_json(return_json, s->command)); /* validate now */
    g_free(s->reply_member);
    s->reply_member = g_strdup(return_json);
    g_clear_pointer(&s->error_class, g_free);
    g_clear_pointer(&s->error_desc, g_free);
}

void
fake_peer_step_error(FakeStep *s, const char *cls, const char *desc)
{
    g_clear_pointer(&s->reply_member, g_free);
    g_free(s->error_class);
    g_free(s->error_desc);
    s->error_class = g_strdup(cls);
    s->error_desc = g_strdup(desc);
}

void
fake_peer_step_hold(FakeStep *s)
{
    s->hold = TRUE;
}

gboolean
fake_peer_step_received(FakeStep *s)
{
    return s->received;
}

gboolean
fake_peer_step_is_held(FakeStep *s)
{
    return s->received && !s->answered;
}

static char *
fake_peer_auto_key(const char *command, JsonNode *args)
{
    g_autofree char *a = NULL;

    if (args && JSON_NODE_HOLDS_OBJECT(args) && json_object_get_size(json_node_get_object(args)))
        a = json_to_string(args, FALSE);
    return g_strdup_printf("%s %s", command, a ? a : "{}");
}

void
fake_peer_auto_args(FakePeer *p, const char *command, const char *args_json,
                    const char *reply_json)
{
    g_autoptr(JsonNode) args = args_json ? json_from_string(args_json, NULL) : NULL;

    g_hash_table_replace(p->auto_args, fake_peer_auto_key(command, args), g_strdup(reply_json));
}

void
fake_peer_auto(FakePeer *p, const char *command, const char *return_json)
{
    json_node_unref(fake_peer_parse_json(return_json, command));
    g_hash_table_replace(p->autos, g_strdup(command), g_strdup(return_json));
}

/* {"return": ret, "id": id} or {"id": id, "error": {...}} like QEMU. */
static void
fake_peer_send_reply(FakePeer *p, JsonNode *id, const char *ret_json, const char *cls,
                     const char *desc)
{
    g_autofree char *id_text = id ? json_to_string(id, FALSE) : NULL;
    g_autoptr(GString) s = g_string_new(NULL);

    if (ret_json) {
        g_string_append_printf(s, "{\"return\": %s", ret_json);
        if (id_text)
            g_string_append_printf(s, ", \"id\": %s", id_text);
        g_string_append_c(s, '}');
    } else {
        g_autoptr(JsonNode) cls_node = json_node_init_string(json_node_alloc(), cls);
        g_autoptr(JsonNode) desc_node = json_node_init_string(json_node_alloc(), desc);
        g_autofree char *cls_text = json_to_string(cls_node, FALSE);
        g_autofree char *desc_text = json_to_string(desc_node, FALSE);

        g_string_append_c(s, '{');
        if (id_text)
            g_string_append_printf(s, "\"id\": %s, ", id_text);
        g_string_append_printf(s, "\"error\": {\"class\": %s, \"desc\": %s}}", cls_text, desc_text);
    }
    fake_peer_send(p, s->str);
    if (p->unanswered)
        p->unanswered--;
}

static void
fake_peer_step_answer(FakePeer *p, FakeStep *s)
{
    s->answered = TRUE;
    if (s->error_class)
        fake_peer_send_reply(p, s->id, NULL, s->error_class, s->error_desc);
    else
        fake_peer_send_reply(p, s->id, s->reply_member ? s->reply_member : "{}", NULL, NULL);
    for (guint i = 0; i < s->events_after->len; i++) {
        FakeEvent *e = g_ptr_array_index(s->events_after, i);
        fake_peer_event(p, e->name, e->data_json);
    }
}

void
fake_peer_step_release(FakePeer *p, FakeStep *s)
{
    g_return_if_fail(s->peer == p);
    if (!s->received) {
        fake_peer_fail(p, "step %u (%s) released before its command arrived", s->index, s->command);
        return;
    }
    if (s->answered) {
        fake_peer_fail(p, "step %u (%s) released twice", s->index, s->command);
        return;
    }
    fake_peer_step_answer(p, s);
}

static gboolean
fake_peer_args_match(JsonNode *subset, JsonNode *args)
{
    JsonObject *want, *have;
    g_autoptr(GList) names = NULL;

    if (!subset)
        return TRUE;
    want = json_node_get_object(subset);
    if (json_object_get_size(want) == 0)
        return TRUE;
    if (!args || !JSON_NODE_HOLDS_OBJECT(args))
        return FALSE;
    have = json_node_get_object(args);
    names = json_object_get_members(want);
    for (GList *l = names; l; l = l->next) {
        JsonNode *a = json_object_get_member(want, l->data);
        JsonNode *b = json_object_get_member(have, l->data);
        if (!b || !json_node_equal(a, b))
            return FALSE;
    }
    return TRUE;
}

/* TRUE when a step not yet consumed expects cmd. */
static gboolean
fake_peer_scripts(FakePeer *p, const char *cmd)
{
    for (guint i = p->next_step; i < p->steps->len; i++) {
        FakeStep *s = g_ptr_array_index(p->steps, i);
        if (g_str_equal(s->command, cmd))
            return TRUE;
    }
    return FALSE;
}

/* TRUE when a step not yet consumed expects qom-get of /machine's type. */
static gboolean
fake_peer_scripts_machine_type(FakePeer *p)
{
    for (guint i = p->next_step; i < p->steps->len; i++) {
        FakeStep *s = g_ptr_array_index(p->steps, i);
        JsonObject *want = s->args_subset && JSON_NODE_HOLDS_OBJECT(s->args_subset)
                               ? json_node_get_object(s->args_subset)
                               : NULL;
        const char *prop = want && json_object_has_member(want, "property")
                               ? json_object_get_string_member(want, "property")
                               : NULL;
        if (g_str_equal(s->command, "qom-get") && g_strcmp0(prop, "type") == 0)
            return TRUE;
    }
    return FALSE;
}

void
fake_peer_set_arch(FakePeer *p, const char *arch)
{
    g_free(p->arch);
    p->arch = g_strdup(arch);
}

static void
fake_peer_handle_command(FakePeer *p, const char *text, gsize len)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *copy = g_strndup(text, len);
    JsonObject *obj;
    JsonNode *exec, *args, *id;
    const char *cmd = NULL;
    const char *auto_ret;
    FakeStep *next;

    g_debug("<- %s", copy);
    /* the engine's incidental target probe: answered like QEMU, and kept
     * out of what tests see on the wire (unless a step scripts it) */
    if (strstr(copy, "\"execute\":\"query-target\"") && !fake_peer_scripts(p, "query-target")) {
        g_autoptr(JsonNode) root = json_from_string(copy, NULL);
        JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
        g_autofree char *ret = g_strdup_printf("{\"arch\": \"%s\"}", p->arch);
        p->unanswered++;
        fake_peer_send_reply(p, o ? json_object_get_member(o, "id") : NULL, ret, NULL, NULL);
        return;
    }
    /* ... and so is its machine-type probe */
    if (strstr(copy, "\"execute\":\"qom-get\"") && strstr(copy, "\"path\":\"/machine\"") &&
        strstr(copy, "\"property\":\"type\"") && !fake_peer_scripts_machine_type(p) &&
        !g_hash_table_contains(p->auto_args, "qom-get {\"path\":\"/machine\",\"property\":\"type\"}")) {
        g_autoptr(JsonNode) root = json_from_string(copy, NULL);
        JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
        const char *type = g_str_equal(p->arch, "ppc64")     ? "\"pseries-7.2-machine\""
                           : g_str_equal(p->arch, "aarch64") ? "\"virt-7.2-machine\""
                                                             : "\"pc-i440fx-7.2-machine\"";
        p->unanswered++;
        fake_peer_send_reply(p, o ? json_object_get_member(o, "id") : NULL, type, NULL, NULL);
        return;
    }
    g_ptr_array_add(p->received, g_strdup(copy));
    if (!json_parser_load_from_data(parser, copy, (gssize)len, &err) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser))) {
        g_ptr_array_add(p->received_cmd, g_strdup(""));
        fake_peer_fail(p, "malformed command: %s", copy);
        /* QEMU answers unparsable input with an id-less error */
        fake_peer_send(p, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse "
                          "error\"}}");
        return;
    }
    obj = json_node_get_object(json_parser_get_root(parser));
    exec = json_object_get_member(obj, "execute");
    if (!exec)
        exec = json_object_get_member(obj, "exec-oob");
    if (exec && JSON_NODE_HOLDS_VALUE(exec) && json_node_get_value_type(exec) == G_TYPE_STRING)
        cmd = json_node_get_string(exec);
    args = json_object_get_member(obj, "arguments");
    id = json_object_get_member(obj, "id");
    g_ptr_array_add(p->received_cmd, g_strdup(cmd ? cmd : ""));
    p->unanswered++;
    p->max_unanswered = MAX(p->max_unanswered, p->unanswered);

    if (!cmd) {
        fake_peer_fail(p, "command without \"execute\": %s", copy);
        fake_peer_send_reply(p, id, NULL, "GenericError", "Expected 'execute' in QMP input");
        return;
    }

    next = p->next_step < p->steps->len ? g_ptr_array_index(p->steps, p->next_step) : NULL;
    if (next && g_str_equal(next->command, cmd)) {
        if (!fake_peer_args_match(next->args_subset, args)) {
            g_autofree char *want = json_to_string(next->args_subset, FALSE);
            fake_peer_fail(p, "step %u: %s arguments do not contain %s: %s", next->index, cmd, want,
                           copy);
            fake_peer_send_reply(p, id, NULL, "GenericError", "unexpected command");
            return;
        }
        p->next_step++;
        next->received = TRUE;
        next->id = id ? json_node_copy(id) : NULL;
        for (guint i = 0; i < next->events_before->len; i++) {
            FakeEvent *e = g_ptr_array_index(next->events_before, i);
            fake_peer_event(p, e->name, e->data_json);
        }
        if (!next->hold)
            fake_peer_step_answer(p, next);
        return;
    }
    {
        g_autofree char *key = fake_peer_auto_key(cmd, args);
        const char *reply = g_hash_table_lookup(p->auto_args, key);
        if (reply) {
            g_autoptr(JsonNode) r = json_from_string(reply, NULL);
            JsonObject *ro = r && JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
            JsonObject *e = ro && json_object_has_member(ro, "error")
                                ? json_object_get_object_member(ro, "error")
                                : NULL;
            if (e) {
                fake_peer_send_reply(p, id, NULL, json_object_get_string_member(e, "class"),
                                     json_object_get_string_member(e, "desc"));
            } else {
                g_autofree char *ret =
                    ro && json_object_has_member(ro, "return")
                        ? json_to_string(json_object_get_member(ro, "return"), FALSE)
                        : g_strdup("{}");
                fake_peer_send_reply(p, id, ret, NULL, NULL);
            }
            return;
        }
    }
    if ((auto_ret = g_hash_table_lookup(p->autos, cmd))) {
        fake_peer_send_reply(p, id, auto_ret, NULL, NULL);
        return;
    }
    if (g_str_equal(cmd, "qmp_capabilities")) {
        gboolean scripted = FALSE;
        for (guint i = p->next_step; i < p->steps->len; i++) {
            FakeStep *s = g_ptr_array_index(p->steps, i);
            scripted |= g_str_equal(s->command, "qmp_capabilities");
        }
        if (!scripted) {
            fake_peer_send_reply(p, id, "{}", NULL, NULL);
            return;
        }
    }
    if (next)
        fake_peer_fail(p, "step %u: expected %s, got: %s", next->index, next->command, copy);
    else
        fake_peer_fail(p, "no more steps, got: %s", copy);
    fake_peer_send_reply(p, id, NULL, "GenericError", "unexpected command");
}

/* ---- input ---------------------------------------------------------- */

/* Cut complete top-level JSON values out of p->in and handle them.  A
 * value in progress always starts at offset 0; p->scan bytes of it have
 * been scanned (depth, in_string, escaped describe them). */
static void
fake_peer_split(FakePeer *p)
{
    for (;;) {
        gsize i;
        gboolean complete = FALSE;

        if (p->depth == 0) {
            gsize ws = 0;
            while (ws < p->in->len && strchr(" \t\r\n", p->in->str[ws]))
                ws++;
            g_string_erase(p->in, 0, (gssize)ws);
            p->scan = 0;
            if (!p->in->len)
                return;
            if (p->in->str[0] != '{' && p->in->str[0] != '[') {
                /* garbage at top level: up to the next space or value */
                gsize end = 1;
                while (end < p->in->len && !strchr(" \t\r\n{[", p->in->str[end]))
                    end++;
                if (end == p->in->len)
                    return; /* maybe more of it to come */
                fake_peer_handle_command(p, p->in->str, end);
                g_string_erase(p->in, 0, (gssize)end);
                continue;
            }
        }
        for (i = p->scan; i < p->in->len; i++) {
            char ch = p->in->str[i];

            if (p->in_string) {
                if (p->escaped)
                    p->escaped = FALSE;
                else if (ch == '\\')
                    p->escaped = TRUE;
                else if (ch == '"')
                    p->in_string = FALSE;
                continue;
            }
            if (ch == '"') {
                p->in_string = TRUE;
            } else if (ch == '{' || ch == '[') {
                p->depth++;
            } else if (ch == '}' || ch == ']') {
                if (--p->depth == 0) {
                    complete = TRUE;
                    break;
                }
            }
        }
        if (!complete) {
            p->scan = p->in->len;
            return;
        }
        fake_peer_handle_command(p, p->in->str, i + 1);
        g_string_erase(p->in, 0, (gssize)(i + 1));
        p->scan = 0;
    }
}

static void
fake_peer_read_cb(evutil_socket_t fd, short what, void *opaque)
{
    FakePeer *p = opaque;
    char buf[65536];
    ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        g_debug("recv: %s", g_strerror(errno));
        n = 0;
    }
    if (n == 0) {
        g_debug("client closed");
        p->client_closed = TRUE;
        event_del(p->read_ev);
        return;
    }
    g_string_append_len(p->in, buf, n);
    fake_peer_split(p);
}

/* ---- results -------------------------------------------------------- */

guint
fake_peer_n_received(FakePeer *p)
{
    return p->received->len;
}

const char *
fake_peer_received(FakePeer *p, guint i)
{
    g_return_val_if_fail(i < p->received->len, NULL);
    return g_ptr_array_index(p->received, i);
}

const char *
fake_peer_received_command(FakePeer *p, guint i)
{
    g_return_val_if_fail(i < p->received_cmd->len, NULL);
    return g_ptr_array_index(p->received_cmd, i);
}

guint
fake_peer_n_unanswered(FakePeer *p)
{
    return p->unanswered;
}

guint
fake_peer_max_unanswered(FakePeer *p)
{
    return p->max_unanswered;
}

gboolean
fake_peer_all_done(FakePeer *p)
{
    return p->failures->len == 0 && p->next_step == p->steps->len;
}

char *
fake_peer_describe_failures(FakePeer *p)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < p->failures->len; i++)
        g_string_append_printf(s, "%s\n", (const char *)g_ptr_array_index(p->failures, i));
    for (guint i = p->next_step; i < p->steps->len; i++) {
        FakeStep *st = g_ptr_array_index(p->steps, i);
        g_string_append_printf(s, "step %u (%s) never received\n", st->index, st->command);
    }
    for (guint i = 0; i < p->next_step; i++) {
        FakeStep *st = g_ptr_array_index(p->steps, i);
        if (st->hold && !st->answered)
            g_string_append_printf(s, "step %u (%s) still held\n", st->index, st->command);
    }
    if (!s->len)
        g_string_append(s, "(no failures)");
    return g_string_free(s, FALSE);
}
