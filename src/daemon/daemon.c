/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd: the service and its VMs, the control requests run on it, the
 * durable event log and its subscribers, the journal of operations in
 * flight, and taking them over again after a restart. */
#define G_LOG_DOMAIN "hotplugd"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "event-log.h"
#include "service.h"
#include "journal.h"
#include "qmp-json.h"

#define DAEMON_BACKLOG_CHUNK 256
/* The longest a flush (and the replies and LOG events behind it) waits. */
#define DAEMON_FLUSH_MAX_DELAY_MS 10

typedef enum {
    VM_FROM_CONFIG,
    VM_FROM_RUNTIME,
    VM_FROM_WATCH,
} VmSource;

typedef struct Subscription Subscription;

struct Daemon {
    struct event_base *base;
    DaemonConfig *cfg;
    char *config_path;
    int lock_fd;
    Service *svc;
    guint svc_listener;
    EventLog *log;
    Journal *journal;
    ControlServer *ctl;
    struct event *flush_ev;
    struct event *flush_due_ev;  /* runs a flush that ready I/O keeps waiting */
    gboolean flush_pending;
    guint64 durable_seq;       /* the last seq flushed to disk */
    GPtrArray *announce;       /* DaemonAnnounce awaiting the flush */
    GPtrArray *deferred;       /* DaemonReply awaiting the flush */
    GHashTable *subs;          /* ControlClient -> Subscription */
    GHashTable *vm_source;     /* name -> VmSource */
    GHashTable *calls;         /* DaemonCall set, for clients that go away */
    gboolean loading;          /* registering VMs at start: no runtime file writes */
    int inotify_fd;
    struct event *inotify_ev;
    struct event *sig_term, *sig_int, *sig_hup;
    int exit_status;
};

struct Subscription {
    Daemon *d;
    ControlClient *cl;
    JsonNode *id;
    char *vm, *device, *kind;
    EventLogFilter filter;
    gboolean follow;
    gboolean live;
    guint64 cursor;  /* the last seq dealt with */
};

typedef struct {
    Daemon *d;
    ControlClient *cl;
    JsonNode *id;
    ServiceRequest *req;
} DaemonCall;

/* A reply held back until the records it speaks of are on disk. */
typedef struct {
    ControlClient *cl;
    JsonNode *id;
    JsonNode *ret;
    char *cls, *desc;
} DaemonReply;

static void
daemon_reply_free(DaemonReply *r)
{
    if (r->id)
        json_node_unref(r->id);
    if (r->ret)
        json_node_unref(r->ret);
    g_free(r->cls);
    g_free(r->desc);
    g_free(r);
}

static void
daemon_reply_send(DaemonReply *r)
{
    if (r->cls)
        control_client_error(r->cl, r->id, r->cls, r->desc);
    else
        control_client_return(r->cl, r->id, r->ret);
}

typedef struct {
    guint64 seq;
    JsonObject *rec;
    char *line;  /* the LOG event, rendered once for every subscriber */
} DaemonAnnounce;

static void
daemon_announce_free(DaemonAnnounce *a)
{
    json_object_unref(a->rec);
    g_free(a->line);
    g_free(a);
}

static void subscription_pump(Subscription *s);
static void subscription_end(Subscription *s);

/* A node with a new empty object (json_node_init_object would take its own
 * reference on the object, and the object would leak). */
static JsonNode *
daemon_object_node(void)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(n, json_object_new());
    return n;
}

/* ---- durability: append now, flush once per loop iteration ------------- */

static char *
daemon_render_log_event(JsonObject *rec)
{
    g_autoptr(JsonNode) data = json_node_init_object(json_node_alloc(), rec);
    g_autofree char *text = json_to_string(data, FALSE);
    gint64 now = g_get_real_time();

    return g_strdup_printf("{\"event\":\"LOG\",\"data\":%s,\"timestamp\":{\"seconds\":%" G_GINT64_FORMAT
                           ",\"microseconds\":%" G_GINT64_FORMAT "}}",
                           text, now / G_USEC_PER_SEC, now % G_USEC_PER_SEC);
}

static void
subscription_overflow(Subscription *s)
{
    g_autoptr(JsonNode) data = daemon_object_node();

    g_message("subscriber %" G_GUINT64_FORMAT " (pid %d) too slow: disconnected after seq %"
              G_GUINT64_FORMAT, control_client_id(s->cl), (int)control_client_pid(s->cl),
              s->cursor);
    json_object_set_int_member(json_node_get_object(data), "last_seq", (gint64)s->cursor);
    s->live = FALSE;
    s->follow = FALSE;
    control_client_event(s->cl, "LOG_OVERFLOW", data);
    /* may free s (through the closed callback) */
    control_client_close_after_flush(s->cl);
}

static void
daemon_flush_cb(evutil_socket_t fd, short what, void *opaque)
{
    Daemon *d = opaque;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) batch = NULL;
    g_autoptr(GList) subs = NULL;

    evtimer_del(d->flush_due_ev);
    d->flush_pending = FALSE;
    if (!event_log_flush(d->log, &error)) {
        g_warning("event log flush failed: %s", error->message);
        g_clear_error(&error);
    }
    if (!journal_flush(d->journal, &error))
        g_warning("journal flush failed: %s", error->message);
    d->durable_seq = event_log_last_seq(d->log);
    /* requesters hear their outcome once it is on disk, like subscribers */
    {
        g_autoptr(GPtrArray) replies = g_steal_pointer(&d->deferred);
        d->deferred = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_reply_free);
        for (guint i = 0; i < replies->len; i++)
            daemon_reply_send(replies->pdata[i]);
    }
    /* announce only what is on disk */
    batch = g_steal_pointer(&d->announce);
    d->announce = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_announce_free);
    subs = g_hash_table_get_values(d->subs);
    for (GList *l = subs; l; l = l->next) {
        Subscription *s = l->data;
        if (!s->live)
            continue;
        for (guint i = 0; i < batch->len && s->live; i++) {
            DaemonAnnounce *a = batch->pdata[i];
            if (a->seq <= s->cursor)
                continue;
            if (event_log_filter_match(&s->filter, a->rec) &&
                !control_client_send_line(s->cl, a->line, strlen(a->line))) {
                subscription_overflow(s);
                break;
            }
            s->cursor = a->seq;
        }
    }
}

static void
daemon_schedule_flush(Daemon *d)
{
    struct timeval tv = {0, DAEMON_FLUSH_MAX_DELAY_MS * 1000};

    if (d->flush_pending)
        return;
    d->flush_pending = TRUE;
    event_active(d->flush_ev, EV_TIMEOUT, 0);
    evtimer_add(d->flush_due_ev, &tv);
}

/* The flush runs last in a loop turn; a steady stream of ready I/O (many
 * VMs, a client's long pipeline) could hold it, and the replies and LOG
 * events that wait for it, for as long as the stream lasts. */
static void
daemon_flush_due_cb(evutil_socket_t fd, short what, void *opaque)
{
    Daemon *d = opaque;

    if (!d->flush_pending)
        return;
    event_del(d->flush_ev);
    daemon_flush_cb(-1, 0, d);
}

/* Append rec (taken) to the log; it is announced after the flush. */
static void
daemon_log_record(Daemon *d, JsonObject *rec, guint64 *seq_out)
{
    g_autoptr(JsonObject) owned = rec;
    g_autoptr(GError) error = NULL;
    JsonObject *stored = NULL;
    guint64 seq = event_log_append(d->log, rec, &stored, &error);
    DaemonAnnounce *a;

    if (seq_out)
        *seq_out = seq;
    if (!seq) {
        g_warning("event log append failed: %s", error->message);
        return;
    }
    a = g_new0(DaemonAnnounce, 1);
    a->seq = seq;
    a->rec = stored;
    a->line = daemon_render_log_event(stored);
    g_ptr_array_add(d->announce, a);
    daemon_schedule_flush(d);
}

/* ---- records ------------------------------------------------------------ */

static JsonObject *
daemon_op_record(HotplugOp *op, const char *kind)
{
    JsonObject *rec = json_object_new();

    json_object_set_string_member(rec, "vm", hotplug_op_get_vm_name(op));
    json_object_set_string_member(rec, "kind", kind);
    json_object_set_int_member(rec, "op", (gint64)hotplug_op_get_id(op));
    json_object_set_string_member(rec, "device", hotplug_op_get_device(op));
    json_object_set_string_member(rec, "action", hotplug_action_name(hotplug_op_get_action(op)));
    return rec;
}

static void
daemon_op_detail(JsonObject *rec, HotplugOp *op)
{
    const GError *err = hotplug_op_get_error(op);
    const char *text = hotplug_op_get_detail(op);
    JsonObject *detail = json_object_new();

    json_object_set_string_member(detail, "device_kind", hotplug_kind_name(hotplug_op_get_kind(op)));
    if (text)
        json_object_set_string_member(detail, "text", text);
    json_object_set_object_member(rec, "detail", detail);
    if (err) {
        JsonObject *e = json_object_new();
        json_object_set_string_member(e, "class", service_error_class(err));
        json_object_set_string_member(e, "desc", err->message);
        json_object_set_object_member(rec, "error", e);
    }
}

static JsonObject *
daemon_journal_record(HotplugOp *op, guint64 log_seq)
{
    JsonObject *j = json_object_new();
    GPtrArray *cleanup = hotplug_op_get_cleanup(op);
    HotplugOpState st = hotplug_op_get_state(op);

    json_object_set_int_member(j, "op", (gint64)hotplug_op_get_id(op));
    json_object_set_string_member(j, "vm", hotplug_op_get_vm_name(op));
    json_object_set_string_member(j, "device", hotplug_op_get_device(op));
    json_object_set_string_member(j, "device_kind", hotplug_kind_name(hotplug_op_get_kind(op)));
    json_object_set_string_member(j, "action", hotplug_action_name(hotplug_op_get_action(op)));
    json_object_set_string_member(j, "state", hotplug_op_state_name(st));
    json_object_set_int_member(j, "attempts", hotplug_op_get_attempts(op));
    json_object_set_int_member(j, "max_attempts", hotplug_op_get_max_attempts(op));
    json_object_set_int_member(j, "timeout_ms", hotplug_op_get_timeout_ms(op));
    json_object_set_int_member(j, "retry_interval_ms", hotplug_op_get_retry_interval_ms(op));
    json_object_set_int_member(j, "start_wall_us", hotplug_op_get_start_wall_us(op));
    json_object_set_int_member(j, "deadline_wall_us", hotplug_op_get_deadline_wall_us(op));
    if (st == HOTPLUG_OP_TRACKED)
        json_object_set_string_member(j, "tracked", hotplug_outcome_name(hotplug_op_get_outcome(op)));
    json_object_set_int_member(j, "log_seq", (gint64)log_seq);
    if (cleanup && cleanup->len) {
        JsonArray *a = json_array_new();
        for (guint i = 0; i < cleanup->len; i++) {
            HotplugStep *step = cleanup->pdata[i];
            JsonObject *o = json_object_new();
            json_object_set_string_member(o, "cmd", step->cmd);
            if (step->args)
                json_object_set_member(o, "args", json_node_copy(step->args));
            json_array_add_object_element(a, o);
        }
        json_object_set_array_member(j, "cleanup", a);
    }
    return j;
}

static void
daemon_svc_op_cb(Service *svc, HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev,
                 gpointer opaque)
{
    Daemon *d = opaque;
    g_autoptr(GError) error = NULL;
    JsonObject *rec = NULL;
    guint64 seq = 0, id = hotplug_op_get_id(op);
    gboolean open = TRUE;

    switch (ev) {
    case HOTPLUG_OP_EV_REQUEST:
        rec = daemon_op_record(op, "request");
        if (hotplug_op_get_action(op) == HOTPLUG_ACTION_UNPLUG) {
            json_object_set_int_member(rec, "timeout_ms", hotplug_op_get_timeout_ms(op));
            json_object_set_int_member(rec, "retries", hotplug_op_get_max_attempts(op) - 1);
        }
        daemon_op_detail(rec, op);
        break;
    case HOTPLUG_OP_EV_ATTEMPT:
        rec = daemon_op_record(op, "attempt");
        json_object_set_int_member(rec, "attempt", hotplug_op_get_attempts(op));
        break;
    case HOTPLUG_OP_EV_ATTEMPT_RESULT:
        rec = daemon_op_record(op, "attempt");
        json_object_set_int_member(rec, "attempt", hotplug_op_get_attempts(op));
        json_object_set_string_member(rec, "outcome",
                                      hotplug_outcome_name(hotplug_op_get_attempt_outcome(op)));
        json_object_set_int_member(rec, "elapsed_ms", hotplug_op_get_elapsed_ms(op));
        daemon_op_detail(rec, op);
        break;
    case HOTPLUG_OP_EV_DROPPED:
        /* its outcome stands and was logged: it only leaves the journal */
        if (!journal_remove(d->journal, id, &error))
            g_warning("journal: op %" G_GUINT64_FORMAT ": %s", id, error->message);
        daemon_schedule_flush(d);
        return;
    case HOTPLUG_OP_EV_OUTCOME:
    case HOTPLUG_OP_EV_LATE:
        rec = daemon_op_record(op, "outcome");
        json_object_set_string_member(rec, "outcome",
                                      hotplug_outcome_name(hotplug_op_get_outcome(op)));
        json_object_set_int_member(rec, "attempt", hotplug_op_get_attempts(op));
        json_object_set_int_member(rec, "elapsed_ms", hotplug_op_get_elapsed_ms(op));
        daemon_op_detail(rec, op);
        open = hotplug_op_get_state(op) == HOTPLUG_OP_TRACKED;
        break;
    }
    if (ev == HOTPLUG_OP_EV_REQUEST) {
        /* a new op: the journal first, so a crash before its log record
         * still leaves an op the restart finishes (with an outcome) */
        g_autoptr(JsonObject) j = daemon_journal_record(op, event_log_last_seq(d->log));
        if (!journal_put(d->journal, id, j, &error))
            g_warning("journal: op %" G_GUINT64_FORMAT ": %s", id, error->message);
        g_clear_error(&error);
    }
    /* then the log, then the journal: a crash between the two leaves the
     * op open in the journal, and the restart finds its outcome in the log */
    daemon_log_record(d, rec, &seq);
    if (open) {
        /* the journal keeps its own copy */
        g_autoptr(JsonObject) j = daemon_journal_record(op, seq);
        if (!journal_put(d->journal, id, j, &error))
            g_warning("journal: op %" G_GUINT64_FORMAT ": %s", id, error->message);
    } else if (!journal_remove(d->journal, id, &error))
        g_warning("journal: op %" G_GUINT64_FORMAT ": %s", id, error->message);
}

static void
daemon_svc_qemu_event_cb(Service *svc, HotplugVm *vm, const QmpEvent *ev, HotplugOp *op,
                         gpointer opaque)
{
    Daemon *d = opaque;
    JsonObject *rec = json_object_new();
    const char *device = qmp_json_get_string(ev->data, "device");
    JsonObject *info = qmp_json_get_object(ev->data, "info");

    if (!device)
        device = qmp_json_get_string(info, "device");
    json_object_set_string_member(rec, "vm", hotplug_vm_get_name(vm));
    json_object_set_string_member(rec, "kind", "qemu-event");
    json_object_set_string_member(rec, "event", ev->name);
    if (op) {
        json_object_set_int_member(rec, "op", (gint64)hotplug_op_get_id(op));
        device = hotplug_op_get_device(op);
    }
    if (device)
        json_object_set_string_member(rec, "device", device);
    json_object_set_member(rec, "detail",
                           json_node_init_object(json_node_alloc(), ev->data));
    daemon_log_record(d, rec, NULL);
}

/* ---- VMs ------------------------------------------------------------------------- */

static char *
daemon_runtime_vms_path(Daemon *d)
{
    return g_build_filename(d->cfg->state_dir, "vms.json", NULL);
}

/* Write the VMs added at run time, atomically. */
static void
daemon_save_runtime_vms(Daemon *d)
{
    g_autofree char *path = daemon_runtime_vms_path(d);
    g_autoptr(JsonNode) root = daemon_object_node();
    JsonObject *o = json_node_get_object(root);
    g_autoptr(GPtrArray) names = service_list_vms(d->svc);
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;

    for (guint i = 0; i < names->len; i++) {
        const char *name = names->pdata[i];
        if (GPOINTER_TO_INT(g_hash_table_lookup(d->vm_source, name)) == VM_FROM_RUNTIME)
            json_object_set_string_member(o, name, service_get_vm_path(d->svc, name));
    }
    text = json_to_string(root, TRUE);
    if (!g_file_set_contents_full(path, text, -1,
                                  G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                  0600, &error))
        g_warning("cannot save %s: %s", path, error->message);
}

/* {"kind": "hostdev", "event": ..., "vm"?, "address", "group", ...} */
static void
daemon_svc_hostdev_cb(Service *svc, const char *event, JsonObject *info, gpointer opaque)
{
    Daemon *d = opaque;
    JsonObject *rec = json_object_new();
    g_autoptr(GList) members = json_object_get_members(info);

    if (json_object_has_member(info, "vm"))
        json_object_set_string_member(rec, "vm", json_object_get_string_member(info, "vm"));
    json_object_set_string_member(rec, "kind", "hostdev");
    json_object_set_string_member(rec, "event", event);
    for (GList *l = members; l; l = l->next)
        if (!json_object_has_member(rec, l->data))
            json_object_set_member(rec, l->data,
                                   json_node_copy(json_object_get_member(info, l->data)));
    daemon_log_record(d, rec, NULL);
}

static void
daemon_svc_vm_state_cb(Service *svc, const char *vm, const char *state, const char *detail,
                       gpointer opaque)
{
    Daemon *d = opaque;
    JsonObject *rec = json_object_new();
    gboolean save = FALSE;

    json_object_set_string_member(rec, "vm", vm);
    json_object_set_string_member(rec, "kind", "vm");
    json_object_set_string_member(rec, "state", state);
    if (detail) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, g_str_equal(state, "added") ? "qmp" : "text", detail);
        json_object_set_object_member(rec, "detail", o);
    }
    daemon_log_record(d, rec, NULL);
    if (g_str_equal(state, "added") && !g_hash_table_contains(d->vm_source, vm)) {
        /* added over the control socket */
        g_hash_table_insert(d->vm_source, g_strdup(vm), GINT_TO_POINTER(VM_FROM_RUNTIME));
        save = TRUE;
    } else if (g_str_equal(state, "removed")) {
        save = GPOINTER_TO_INT(g_hash_table_lookup(d->vm_source, vm)) == VM_FROM_RUNTIME;
        g_hash_table_remove(d->vm_source, vm);
    }
    if (save && !d->loading)
        daemon_save_runtime_vms(d);
}

static gboolean
daemon_add_vm(Daemon *d, const char *name, const char *path, VmSource source)
{
    g_autoptr(GError) error = NULL;

    if (service_get_vm(d->svc, name))
        return TRUE;
    g_hash_table_insert(d->vm_source, g_strdup(name), GINT_TO_POINTER(source));
    if (!service_add_vm(d->svc, name, path, &error)) {
        g_hash_table_remove(d->vm_source, name);
        g_warning("VM %s (%s): %s", name, path, error->message);
        return FALSE;
    }
    g_message("VM %s: %s", name, path);
    return TRUE;
}

static void
daemon_remove_vm(Daemon *d, const char *name)
{
    g_autoptr(GError) error = NULL;

    if (!service_remove_vm(d->svc, name, &error))
        g_debug("%s", error->message);
    else
        g_message("VM %s removed", name);
}

static void
daemon_load_runtime_vms(Daemon *d)
{
    g_autofree char *path = daemon_runtime_vms_path(d);
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) error = NULL;
    JsonObject *o;

    if (!g_file_test(path, G_FILE_TEST_EXISTS))
        return;
    if (!json_parser_load_from_file(p, path, &error) ||
        !(o = qmp_json_node_object(json_parser_get_root(p)))) {
        g_warning("ignoring %s: %s", path, error ? error->message : "not a JSON object");
        return;
    }
    {
        g_autoptr(GList) names = json_object_get_members(o);
        for (GList *l = names; l; l = l->next) {
            const char *qmp = qmp_json_get_string(o, l->data);
            if (qmp)
                daemon_add_vm(d, l->data, qmp, VM_FROM_RUNTIME);
        }
    }
}

/* A watched socket: DIR/NAME.qmp is VM NAME. */
static char *
daemon_watch_name(const char *file)
{
    g_autofree char *stem = NULL;

    if (!g_str_has_suffix(file, ".qmp"))
        return NULL;
    stem = g_strndup(file, strlen(file) - 4);
    return service_vm_name_valid(stem) ? g_steal_pointer(&stem) : NULL;
}

static void
daemon_watch_added(Daemon *d, const char *file)
{
    g_autofree char *name = daemon_watch_name(file);
    g_autofree char *path = NULL;

    if (!name)
        return;
    path = g_build_filename(d->cfg->watch_dir, file, NULL);
    daemon_add_vm(d, name, path, VM_FROM_WATCH);
}

static void
daemon_watch_removed(Daemon *d, const char *file)
{
    g_autofree char *name = daemon_watch_name(file);

    if (name && GPOINTER_TO_INT(g_hash_table_lookup(d->vm_source, name)) == VM_FROM_WATCH &&
        service_get_vm(d->svc, name))
        daemon_remove_vm(d, name);
}

static void
daemon_inotify_cb(evutil_socket_t fd, short what, void *opaque)
{
    Daemon *d = opaque;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;

    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->len) {
                if (ev->mask & (IN_CREATE | IN_MOVED_TO))
                    daemon_watch_added(d, ev->name);
                else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                    daemon_watch_removed(d, ev->name);
            }
            p += sizeof(struct inotify_event) + ev->len;
        }
    }
}

static gboolean
daemon_watch_start(Daemon *d, GError **error)
{
    g_autoptr(GDir) dir = NULL;
    const char *file;

    if (!d->cfg->watch_dir)
        return TRUE;
    if (g_mkdir_with_parents(d->cfg->watch_dir, 0755) < 0) {
        int err = errno;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "watch-dir %s: %s",
                    d->cfg->watch_dir, g_strerror(err));
        return FALSE;
    }
    d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->inotify_fd < 0 ||
        inotify_add_watch(d->inotify_fd, d->cfg->watch_dir,
                          IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM) < 0) {
        int err = errno;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot watch %s: %s",
                    d->cfg->watch_dir, g_strerror(err));
        return FALSE;
    }
    d->inotify_ev = event_new(d->base, d->inotify_fd, EV_READ | EV_PERSIST, daemon_inotify_cb, d);
    event_add(d->inotify_ev, NULL);
    /* what is there already */
    dir = g_dir_open(d->cfg->watch_dir, 0, error);
    if (!dir)
        return FALSE;
    while ((file = g_dir_read_name(dir)))
        daemon_watch_added(d, file);
    return TRUE;
}

gboolean
daemon_reload(Daemon *d, GError **error)
{
    g_autoptr(DaemonConfig) fresh = NULL;
    g_autoptr(GPtrArray) names = NULL;
    GHashTableIter it;
    gpointer key, value;

    if (!d->config_path)
        return TRUE;
    fresh = daemon_config_load(d->config_path, error);
    if (!fresh)
        return FALSE;
    /* config VMs that went away, or moved */
    names = service_list_vms(d->svc);
    for (guint i = 0; i < names->len; i++) {
        g_autofree char *name = g_strdup(names->pdata[i]);
        const char *now = g_hash_table_lookup(fresh->vms, name);
        if (GPOINTER_TO_INT(g_hash_table_lookup(d->vm_source, name)) != VM_FROM_CONFIG)
            continue;
        if (!now || g_strcmp0(now, service_get_vm_path(d->svc, name)) != 0)
            daemon_remove_vm(d, name);
    }
    g_hash_table_iter_init(&it, fresh->vms);
    while (g_hash_table_iter_next(&it, &key, &value))
        daemon_add_vm(d, key, value, VM_FROM_CONFIG);
    /* keep the new VM table; other settings need a restart */
    g_hash_table_unref(d->cfg->vms);
    d->cfg->vms = g_hash_table_ref(fresh->vms);
    g_message("configuration reloaded from %s", d->config_path);
    return TRUE;
}

/* ---- restart: take over what the journal has open ---------------------------------- */

typedef struct {
    GHashTable *outcomes;  /* op -> JsonObject (the latest outcome record) */
} DaemonScan;

static gboolean
daemon_scan_cb(JsonObject *rec, gpointer opaque)
{
    DaemonScan *scan = opaque;
    gint64 op;

    if (g_strcmp0(qmp_json_get_string(rec, "kind"), "outcome") == 0 &&
        qmp_json_get_int(rec, "op", &op))
        g_hash_table_insert(scan->outcomes, GSIZE_TO_POINTER((gsize)op), json_object_ref(rec));
    return TRUE;
}

static GPtrArray *
daemon_cleanup_steps(JsonObject *j)
{
    JsonArray *a = qmp_json_get_array(j, "cleanup");
    GPtrArray *steps;

    if (!a)
        return NULL;
    steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = qmp_json_node_object(json_array_get_element(a, i));
        const char *cmd = qmp_json_get_string(o, "cmd");
        JsonNode *args = o ? json_object_get_member(o, "args") : NULL;
        if (cmd)
            g_ptr_array_add(steps, hotplug_step_new(cmd, args ? json_node_copy(args) : NULL,
                                                    NULL, NULL));
    }
    return steps;
}

static void
daemon_reconcile(Daemon *d)
{
    g_autoptr(GPtrArray) open = journal_open_records(d->journal);
    DaemonScan scan = {g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                             (GDestroyNotify)json_object_unref)};
    guint64 since = G_MAXUINT64;
    g_autoptr(GError) error = NULL;

    hotplug_op_set_next_id(journal_max_op(d->journal) + 1);
    if (!open->len)
        goto out;
    for (guint i = 0; i < open->len; i++)
        since = MIN(since, (guint64)qmp_json_get_int_default(open->pdata[i], "log_seq", 0));
    /* outcomes logged after the journal's last word on each op */
    if (!event_log_read_since(d->log, since ? since - 1 : 0, daemon_scan_cb, &scan, NULL, NULL,
                              &error))
        g_warning("reading the event log: %s", error->message);

    for (guint i = 0; i < open->len; i++) {
        JsonObject *j = open->pdata[i];
        guint64 id = (guint64)qmp_json_get_int_default(j, "op", 0);
        const char *vm_name = qmp_json_get_string(j, "vm");
        const char *tracked = qmp_json_get_string(j, "tracked");
        JsonObject *logged = g_hash_table_lookup(scan.outcomes, GSIZE_TO_POINTER((gsize)id));
        const char *logged_outcome = qmp_json_get_string(logged, "outcome");
        HotplugVm *vm = vm_name ? service_get_vm(d->svc, vm_name) : NULL;
        HotplugAdopt a = {0};
        g_autoptr(HotplugOp) op = NULL;
        g_autoptr(GError) err = NULL;

        if (logged_outcome && g_strcmp0(logged_outcome, "not-deleted") != 0 &&
            g_strcmp0(logged_outcome, "guest-error") != 0) {
            /* it ended and was told; only the journal did not hear */
            journal_remove(d->journal, id, NULL);
            continue;
        }
        if (logged_outcome)
            tracked = logged_outcome;
        if (!vm) {
            JsonObject *rec = json_object_new();
            journal_remove(d->journal, id, NULL);
            if (tracked)
                continue; /* it has its outcome already */
            json_object_set_string_member(rec, "vm", vm_name ? vm_name : "");
            json_object_set_string_member(rec, "kind", "outcome");
            json_object_set_int_member(rec, "op", (gint64)id);
            json_object_set_string_member(rec, "device", qmp_json_get_string(j, "device") ?: "");
            json_object_set_string_member(rec, "action", qmp_json_get_string(j, "action") ?: "");
            json_object_set_string_member(rec, "outcome", "vm-gone");
            json_object_set_int_member(rec, "attempt", qmp_json_get_int_default(j, "attempts", 0));
            json_object_set_int_member(rec, "elapsed_ms",
                                       (g_get_real_time() -
                                        qmp_json_get_int_default(j, "start_wall_us", 0)) / 1000);
            {
                JsonObject *detail = json_object_new();
                json_object_set_string_member(detail, "text",
                                              "the VM is no longer configured after a restart");
                json_object_set_object_member(rec, "detail", detail);
            }
            daemon_log_record(d, rec, NULL);
            continue;
        }
        hotplug_kind_from_name(qmp_json_get_string(j, "device_kind") ?: "device", &a.kind);
        a.id = id;
        a.action = g_strcmp0(qmp_json_get_string(j, "action"), "plug") == 0 ? HOTPLUG_ACTION_PLUG
                                                                             : HOTPLUG_ACTION_UNPLUG;
        a.device = qmp_json_get_string(j, "device");
        a.attempts = (guint)qmp_json_get_int_default(j, "attempts", 1);
        a.max_attempts = (guint)qmp_json_get_int_default(j, "max_attempts", 1);
        a.timeout_ms = (guint)qmp_json_get_int_default(j, "timeout_ms", 5000);
        a.retry_interval_ms = (guint)qmp_json_get_int_default(j, "retry_interval_ms", 0);
        a.start_wall_us = qmp_json_get_int_default(j, "start_wall_us", g_get_real_time());
        a.deadline_wall_us = qmp_json_get_int_default(j, "deadline_wall_us", -1);
        if (!tracked || !hotplug_outcome_from_name(tracked, &a.tracked))
            a.tracked = HOTPLUG_OUTCOME_NONE;
        a.cleanup = daemon_cleanup_steps(j);
        op = hotplug_vm_adopt(vm, &a, &err);
        if (!op) {
            g_warning("op %" G_GUINT64_FORMAT ": cannot take it over: %s", id, err->message);
            continue;
        }
        g_message("op %" G_GUINT64_FORMAT " (%s %s on %s) taken over from the journal", id,
                  qmp_json_get_string(j, "action"), a.device, vm_name);
    }
out:
    g_hash_table_unref(scan.outcomes);
}

/* ---- subscriptions ------------------------------------------------------------------ */

static void
subscription_free(Subscription *s)
{
    if (s->id)
        json_node_unref(s->id);
    g_free(s->vm);
    g_free(s->device);
    g_free(s->kind);
    g_free(s);
}

typedef struct {
    Subscription *s;
    guint sent;
    guint64 last;
    gboolean full;
} SubscriptionChunk;

static gboolean
subscription_chunk_cb(JsonObject *rec, gpointer opaque)
{
    SubscriptionChunk *c = opaque;
    Subscription *s = c->s;
    gint64 seq = qmp_json_get_int_default(rec, "seq", 0);

    if ((guint64)seq > s->d->durable_seq)
        return FALSE; /* not on disk yet: it comes with the next flush */
    if (event_log_filter_match(&s->filter, rec)) {
        g_autofree char *line = daemon_render_log_event(rec);
        if (!control_client_send_line(s->cl, line, strlen(line))) {
            c->full = TRUE;
            return FALSE;
        }
    }
    s->cursor = (guint64)seq;
    return ++c->sent < DAEMON_BACKLOG_CHUNK;
}

/* Send backlog while the client keeps up; go live once caught up. */
static void
subscription_pump(Subscription *s)
{
    while (!s->live && s->cl) {
        SubscriptionChunk c = {s, 0, 0, FALSE};
        g_autoptr(GError) error = NULL;

        if (control_client_pending_output(s->cl) > s->d->cfg->subscriber_buffer / 2)
            return; /* the drain callback calls again */
        if (!event_log_read_since(s->d->log, s->cursor, subscription_chunk_cb, &c, NULL, NULL,
                                  &error)) {
            control_client_error(s->cl, s->id, "Failed", error->message);
            subscription_end(s);
            return;
        }
        if (c.full)
            return;
        if (c.sent < DAEMON_BACKLOG_CHUNK || s->cursor >= s->d->durable_seq) {
            /* caught up with what is on disk */
            if (!s->follow) {
                g_autoptr(JsonNode) ret = daemon_object_node();
                json_object_set_int_member(json_node_get_object(ret), "last_seq", (gint64)s->cursor);
                control_client_return(s->cl, s->id, ret);
                subscription_end(s);
                return;
            }
            s->live = TRUE;
            s->cursor = MAX(s->cursor, s->d->durable_seq);
            return;
        }
    }
}

static void
subscription_drain_cb(ControlClient *cl, gpointer opaque)
{
    subscription_pump(opaque);
}

static void
subscription_end(Subscription *s)
{
    control_client_set_drain_cb(s->cl, NULL, NULL);
    g_hash_table_remove(s->d->subs, s->cl);
}

static void
daemon_cmd_events(Daemon *d, ControlClient *cl, JsonObject *args, JsonNode *id)
{
    Subscription *s;
    const char *vm = qmp_json_get_string(args, "vm");
    const char *device = qmp_json_get_string(args, "device");
    const char *kind = qmp_json_get_string(args, "kind");
    gboolean follow = qmp_json_get_bool_default(args, "follow", FALSE);
    gint64 since = -1;
    guint64 first;
    static const char *const kinds[] = {"vm",         "request", "attempt", "outcome",
                                        "qemu-event", "hostdev", NULL};
    static const char *const known[] = {"vm", "device", "kind", "follow", "since", NULL};
    g_autoptr(GList) members = json_object_get_members(args);

    /* a mistyped filter must not silently match everything */
    for (GList *l = members; l; l = l->next) {
        const char *m = l->data;
        JsonNode *n = json_object_get_member(args, m);
        g_autofree char *desc = NULL;

        if (!g_strv_contains(known, m))
            desc = g_strdup_printf("unknown argument '%s'", m);
        else if (g_str_equal(m, "follow") &&
                 (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN))
            desc = g_strdup("argument 'follow' must be true or false");
        else if (!g_str_equal(m, "follow") && !g_str_equal(m, "since") && !qmp_json_node_string(n))
            desc = g_strdup_printf("argument '%s' must be a string", m);
        if (desc) {
            control_client_error(cl, id, "InvalidArgument", desc);
            return;
        }
    }

    if (json_object_has_member(args, "since") && (!qmp_json_get_int(args, "since", &since) || since < 0)) {
        control_client_error(cl, id, "InvalidArgument", "argument 'since' must be a seq number (>= 0)");
        return;
    }
    if (kind && !g_strv_contains(kinds, kind)) {
        control_client_error(cl, id, "InvalidArgument",
                             "argument 'kind' must be vm, request, attempt, outcome or qemu-event");
        return;
    }
    if (g_hash_table_contains(d->subs, cl)) {
        control_client_error(cl, id, "Busy", "this connection already follows the event log");
        return;
    }
    s = g_new0(Subscription, 1);
    s->d = d;
    s->cl = cl;
    s->id = id ? json_node_copy(id) : NULL;
    s->vm = g_strdup(vm);
    s->device = g_strdup(device);
    s->kind = g_strdup(kind);
    s->filter = (EventLogFilter){s->vm, s->device, s->kind};
    s->follow = follow;
    s->cursor = since >= 0 ? (guint64)since : (follow ? d->durable_seq : 0);
    g_hash_table_insert(d->subs, cl, s);
    first = event_log_first_seq(d->log);
    if (first > 0 && s->cursor + 1 < first) {
        /* retention dropped these: say so instead of skipping them */
        g_autoptr(JsonNode) gap = daemon_object_node();
        json_object_set_int_member(json_node_get_object(gap), "from", (gint64)s->cursor + 1);
        json_object_set_int_member(json_node_get_object(gap), "to", (gint64)first - 1);
        control_client_event(cl, "LOG_GAP", gap);
    }
    if (follow) {
        g_autoptr(JsonNode) ret = daemon_object_node();
        json_object_set_int_member(json_node_get_object(ret), "since", (gint64)s->cursor);
        json_object_set_boolean_member(json_node_get_object(ret), "follow", TRUE);
        control_client_return(cl, id, ret);
    }
    control_client_set_drain_cb(cl, subscription_drain_cb, s);
    subscription_pump(s);
}

/* ---- control requests --------------------------------------------------------------- */

static void
daemon_call_free(DaemonCall *c)
{
    if (c->id)
        json_node_unref(c->id);
    g_free(c);
}

static void
daemon_call_reply_cb(ServiceRequest *req, JsonNode *ret, const GError *error, gpointer opaque)
{
    DaemonCall *c = opaque;
    DaemonReply *r = g_new0(DaemonReply, 1);

    r->cl = c->cl;
    r->id = c->id ? json_node_copy(c->id) : NULL;
    if (error) {
        r->cls = g_strdup(service_error_class(error));
        r->desc = g_strdup(error->message);
    } else {
        r->ret = json_node_copy(ret);
    }
    if (c->d->flush_pending) {
        g_ptr_array_add(c->d->deferred, r);
    } else {
        daemon_reply_send(r);
        daemon_reply_free(r);
    }
    g_hash_table_remove(c->d->calls, c);
}

static void
daemon_call_event_cb(ServiceRequest *req, const char *name, JsonNode *data, gpointer opaque)
{
    DaemonCall *c = opaque;

    control_client_event(c->cl, name, data);
}

static void
daemon_cmd_status(Daemon *d, ControlClient *cl, JsonNode *id)
{
    g_autoptr(JsonNode) ret = daemon_object_node();
    JsonObject *o = json_node_get_object(ret);
    g_autoptr(GPtrArray) vms = service_list_vms(d->svc);
    g_autoptr(GPtrArray) cmds = service_list_commands(d->svc);
    JsonArray *a = json_array_new();

    json_object_set_string_member(o, "version", PACKAGE_VERSION);
    json_object_set_int_member(o, "protocol", CONTROL_PROTOCOL_VERSION);
    json_object_set_int_member(o, "vms", vms->len);
    json_object_set_int_member(o, "open_ops", journal_n_open(d->journal));
    json_object_set_int_member(o, "first_seq", (gint64)event_log_first_seq(d->log));
    json_object_set_int_member(o, "last_seq", (gint64)event_log_last_seq(d->log));
    json_object_set_int_member(o, "subscribers", g_hash_table_size(d->subs));
    json_object_set_int_member(o, "clients", control_server_n_clients(d->ctl));
    for (guint i = 0; i < cmds->len; i++)
        json_array_add_string_element(a, cmds->pdata[i]);
    json_array_add_string_element(a, "events");
    json_array_add_string_element(a, "query-hotplugd");
    json_object_set_array_member(o, "commands", a);
    control_client_return(cl, id, ret);
}

static gboolean
daemon_cmd_mutates(const char *cmd)
{
    static const char *const readers[] = {"vm-list", "vm-info", "vm-slots", "device-list", "ops",
                                          "vcpu-list", "memory-list", "disk-list", NULL};
    return !g_strv_contains(readers, cmd);
}

static void
daemon_control_execute_cb(ControlServer *srv, ControlClient *cl, const char *cmd, JsonObject *args,
                          JsonNode *id, gpointer opaque)
{
    static const ServiceRequestCallbacks cb = {daemon_call_reply_cb, daemon_call_event_cb};
    Daemon *d = opaque;
    ServiceRequest *req;
    DaemonCall *c;

    if (g_str_equal(cmd, "events")) {
        daemon_cmd_events(d, cl, args, id);
        return;
    }
    if (g_str_equal(cmd, "query-hotplugd")) {
        if (json_object_get_size(args)) {
            control_client_error(cl, id, "InvalidArgument",
                                 "query-hotplugd takes no arguments (it takes none)");
            return;
        }
        daemon_cmd_status(d, cl, id);
        return;
    }
    {
        /* QMP's class for it, so a client can tell an older daemon from
         * a missing VM (NotFound) */
        g_autoptr(GPtrArray) cmds = service_list_commands(d->svc);
        if (!g_ptr_array_find_with_equal_func(cmds, cmd, g_str_equal, NULL)) {
            g_autofree char *desc = g_strdup_printf("unknown command '%s' (query-hotplugd "
                                                    "lists them)", cmd);
            control_client_error(cl, id, "CommandNotFound", desc);
            return;
        }
    }
    if (daemon_cmd_mutates(cmd)) {
        g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), args);
        g_autofree char *text = json_to_string(n, FALSE);
        g_message("request %s %s from pid %d uid %d", cmd, text, (int)control_client_pid(cl),
                  (int)control_client_uid(cl));
    }
    c = g_new0(DaemonCall, 1);
    c->d = d;
    c->cl = cl;
    c->id = id ? json_node_copy(id) : NULL;
    g_hash_table_add(d->calls, c);
    req = service_execute(d->svc, cmd, args, &cb, c);
    /* NULL: it replied already, and c is gone */
    if (req)
        c->req = req;
}

static void
daemon_control_closed_cb(ControlServer *srv, ControlClient *cl, gpointer opaque)
{
    Daemon *d = opaque;
    GHashTableIter it;
    gpointer key;

    g_hash_table_remove(d->subs, cl);
    for (guint i = d->deferred->len; i > 0; i--)
        if (((DaemonReply *)d->deferred->pdata[i - 1])->cl == cl)
            g_ptr_array_remove_index(d->deferred, i - 1);
    /* its requests go on (an unplug does not stop because a client left)
     * but nobody hears the reply */
    g_hash_table_iter_init(&it, d->calls);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        DaemonCall *c = key;
        if (c->cl == cl) {
            service_request_cancel(c->req);
            g_hash_table_iter_remove(&it);
        }
    }
}

/* ---- life cycle ---------------------------------------------------------------------- */

static void
daemon_signal_cb(evutil_socket_t sig, short what, void *opaque)
{
    Daemon *d = opaque;
    g_autoptr(GError) error = NULL;

    if (sig == SIGHUP) {
        if (!daemon_reload(d, &error))
            g_warning("reload failed, keeping the old configuration: %s", error->message);
        return;
    }
    g_message("signal %d: stopping", (int)sig);
    daemon_stop(d);
}

void
daemon_stop(Daemon *d)
{
    if (d->ctl)
        control_server_stop_accepting(d->ctl);
    event_base_loopexit(d->base, NULL);
}

static gboolean
daemon_lock(Daemon *d, GError **error)
{
    g_autofree char *path = g_build_filename(d->cfg->state_dir, "lock", NULL);
    g_autofree char *pid = NULL;

    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0) {
        int err = errno;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot open %s: %s", path,
                    g_strerror(err));
        return FALSE;
    }
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = pread(d->lock_fd, buf, sizeof(buf) - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        g_strchomp(buf);
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "another hotplugd%s%s%s runs on %s", *buf ? " (pid " : "", *buf ? buf : "",
                    *buf ? ")" : "", d->cfg->state_dir);
        return FALSE;
    }
    pid = g_strdup_printf("%d\n", (int)getpid());
    if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, pid, strlen(pid), 0) < 0)
        g_warning("cannot write the pid to %s", path);
    return TRUE;
}

/* systemd Type=notify without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void
daemon_notify(const char *state)
{
    const char *path = g_getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    socklen_t len;
    int fd;

    if (!path || !*path || strlen(path) >= sizeof(sun.sun_path))
        return;
    memcpy(sun.sun_path, path, strlen(path));
    if (sun.sun_path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract namespace */
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
        g_debug("sd_notify: %s", g_strerror(errno));
    close(fd);
}

Daemon *
daemon_new(struct event_base *base, DaemonConfig *cfg, const char *config_path, GError **error)
{
    static const ServiceListener sl = {
        .op = daemon_svc_op_cb,
        .qemu_event = daemon_svc_qemu_event_cb,
        .vm_state = daemon_svc_vm_state_cb,
        .hostdev = daemon_svc_hostdev_cb,
    };
    static const ControlCallbacks cc = {
        .execute = daemon_control_execute_cb,
        .closed = daemon_control_closed_cb,
    };
    g_autoptr(Daemon) d = g_new0(Daemon, 1);
    ServiceOptions so = {.direct = FALSE};
    EventLogOptions lo = {0};
    ControlOptions co = {0};
    g_autofree char *log_dir = NULL, *journal_path = NULL, *hostdevs_path = NULL;
    GHashTableIter it;
    gpointer key, value;

    d->base = base;
    d->cfg = cfg;
    d->config_path = g_strdup(config_path);
    d->lock_fd = -1;
    d->inotify_fd = -1;
    d->announce = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_announce_free);
    d->deferred = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_reply_free);
    d->subs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                    (GDestroyNotify)subscription_free);
    d->vm_source = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    d->calls = g_hash_table_new_full(g_direct_hash, g_direct_equal,
                                     (GDestroyNotify)daemon_call_free, NULL);
    if (g_mkdir_with_parents(cfg->state_dir, 0700) < 0) {
        int err = errno;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot create state-dir %s: %s",
                    cfg->state_dir, g_strerror(err));
        return NULL;
    }
    if (!daemon_lock(d, error))
        return NULL;
    log_dir = g_build_filename(cfg->state_dir, "events", NULL);
    lo.max_bytes = cfg->log_max_bytes;
    lo.segment_bytes = cfg->log_segment_bytes;
    if (!(d->log = event_log_open(log_dir, &lo, error)))
        return NULL;
    d->durable_seq = event_log_last_seq(d->log);
    journal_path = g_build_filename(cfg->state_dir, "journal", NULL);
    if (!(d->journal = journal_open(journal_path, error)))
        return NULL;

    /* the flush runs after everything else that is ready in an iteration:
     * three priorities, events default to the middle one, the flush is last */
    if (event_base_priority_init(base, 3) < 0)
        g_warning("cannot set event priorities: the flush may run mid-iteration");
    d->flush_ev = event_new(base, -1, 0, daemon_flush_cb, d);
    event_priority_set(d->flush_ev, 2);
    d->flush_due_ev = evtimer_new(base, daemon_flush_due_cb, d);
    event_priority_set(d->flush_due_ev, 0);

    so.timeouts = cfg->timeouts;
    so.default_unplug = cfg->unplug;
    so.hostdev_state_file = hostdevs_path = g_build_filename(cfg->state_dir, "hostdevs.json", NULL);
    /* tests run several daemons side by side; empty or unset: the default */
    so.hostdev_lock_root = g_getenv("HOTPLUG_LOCK_ROOT");
    if (so.hostdev_lock_root && !*so.hostdev_lock_root)
        so.hostdev_lock_root = NULL;
    so.sysfs_root = g_getenv("HOTPLUG_SYSFS_ROOT");
    if (so.sysfs_root && !*so.sysfs_root)
        so.sysfs_root = NULL;
    d->svc = service_new(base, &so);
    d->svc_listener = service_add_listener(d->svc, &sl, d);

    co.path = cfg->socket_path;
    co.mode = cfg->socket_mode;
    co.group = cfg->socket_group;
    co.max_output = cfg->subscriber_buffer;
    co.version = PACKAGE_VERSION;
    if (!(d->ctl = control_server_new(base, &co, &cc, d, error)))
        return NULL;

    /* claims read back take their locks before any VM is looked at */
    service_watch_hostdevs(d->svc);
    d->loading = TRUE;
    g_hash_table_iter_init(&it, cfg->vms);
    while (g_hash_table_iter_next(&it, &key, &value))
        daemon_add_vm(d, key, value, VM_FROM_CONFIG);
    daemon_load_runtime_vms(d);
    d->loading = FALSE;
    if (!daemon_watch_start(d, error))
        return NULL;
    daemon_reconcile(d);

    d->sig_term = evsignal_new(base, SIGTERM, daemon_signal_cb, d);
    d->sig_int = evsignal_new(base, SIGINT, daemon_signal_cb, d);
    d->sig_hup = evsignal_new(base, SIGHUP, daemon_signal_cb, d);
    event_add(d->sig_term, NULL);
    event_add(d->sig_int, NULL);
    event_add(d->sig_hup, NULL);
    return g_steal_pointer(&d);
}

int
daemon_run(Daemon *d)
{
    g_message("hotplugd %s ready: control socket %s, state %s (event log seq %" G_GUINT64_FORMAT
              ", %u open operations)",
              PACKAGE_VERSION, d->cfg->socket_path, d->cfg->state_dir,
              event_log_last_seq(d->log), journal_n_open(d->journal));
    daemon_notify("READY=1");
    event_base_dispatch(d->base);
    daemon_notify("STOPPING=1");
    return d->exit_status;
}

void
daemon_free(Daemon *d)
{
    if (!d)
        return;
    if (d->sig_term) {
        event_free(d->sig_term);
        event_free(d->sig_int);
        event_free(d->sig_hup);
    }
    /* clients first: their subscriptions and calls point into us */
    control_server_free(d->ctl);
    g_hash_table_remove_all(d->calls);
    if (d->svc) {
        service_remove_listener(d->svc, d->svc_listener);
        service_free(d->svc);
    }
    if (d->log)
        event_log_flush(d->log, NULL);
    if (d->journal)
        journal_flush(d->journal, NULL);
    if (d->flush_ev)
        event_free(d->flush_ev);
    if (d->flush_due_ev)
        event_free(d->flush_due_ev);
    if (d->inotify_ev)
        event_free(d->inotify_ev);
    if (d->inotify_fd >= 0)
        close(d->inotify_fd);
    event_log_free(d->log);
    journal_free(d->journal);
    g_ptr_array_unref(d->announce);
    g_ptr_array_unref(d->deferred);
    g_hash_table_unref(d->subs);
    g_hash_table_unref(d->vm_source);
    g_hash_table_unref(d->calls);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    daemon_config_free(d->cfg);
    g_free(d->config_path);
    g_free(d);
}
