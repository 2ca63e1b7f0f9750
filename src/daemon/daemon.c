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
#include "state-dir.h"
#include "syncer.h"

#define DAEMON_BACKLOG_CHUNK 256
/* Replies released at once by a durable batch, sent per loop turn: a
 * thousand of them would otherwise keep the deadlines waiting for ms. */
#define DAEMON_RELEASE_CHUNK 64

/* The longest a flush (and the replies and LOG events behind it) waits. */
#define DAEMON_FLUSH_MAX_DELAY_MS 10
/* journal removals of ops whose outcome is logged are synced with the next
 * journal change that must be, or at the latest this much later */
#define DAEMON_JOURNAL_SWEEP_MS 1000
/* While writes to the state directory fail, they are tried again this often. */
#define DAEMON_STORAGE_RETRY_MS 500
/* Per VM, at most this many QEMU events that belong to no operation are
 * recorded one by one in a window of DAEMON_EVENT_WINDOW_MS; the rest of
 * the window's events are coalesced: one record per event name at the
 * window's end, with "count" (how many events it stands for). */
#define DAEMON_EVENTS_PER_WINDOW 10
#define DAEMON_EVENT_WINDOW_MS 1000
/* The most of a QEMU event's data a qemu-event record holds (bytes of JSON). */
#define DAEMON_MAX_EVENT_DETAIL (64u * 1024)

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
    int state_fd;              /* the state directory; every file is opened relative to it */
    int lock_fd;
    Service *svc;
    guint svc_listener;
    EventLog *log;
    Journal *journal;
    ControlServer *ctl;
    struct event *flush_ev;
    struct event *flush_due_ev;  /* runs a flush that ready I/O keeps waiting */
    struct event *journal_sweep_ev; /* syncs the journal's logged removals */
    gboolean journal_sweep;      /* the next flush syncs them too */
    gboolean flush_pending;
    guint64 durable_seq;       /* the last seq flushed to disk */
    GPtrArray *announce;       /* DaemonAnnounce awaiting the flush */
    GPtrArray *deferred;       /* DaemonReply awaiting the flush */
    /* group commit: the syncer thread makes one batch durable at a time;
     * what is written meanwhile waits for the next */
    Syncer *syncer;
    guint64 sync_seq;          /* the last seq of the batch in flight */
    GPtrArray *sync_announce;  /* DaemonAnnounce released when it is done */
    GPtrArray *sync_deferred;  /* DaemonReply released when it is done */
    GPtrArray *releasing;      /* DaemonReply durable, sent DAEMON_RELEASE_CHUNK per turn */
    guint releasing_head;      /* the first of them not sent yet */
    struct event *release_ev;  /* sends the next chunk */
    gboolean flush_again;      /* a flush was asked for while a batch was in flight */
    GHashTable *subs;          /* ControlClient -> Subscription */
    GHashTable *vm_source;     /* name -> VmSource */
    GHashTable *calls;         /* DaemonCall set, for clients that go away */
    gboolean loading;          /* registering VMs at start: no runtime file writes */
    /* storage: while a write to the state directory fails, changes are
     * refused, records wait in the backlog (in order), and replies and LOG
     * events wait until everything before them is on disk */
    char *storage_error;       /* why, NULL while writes work */
    GPtrArray *backlog;        /* DaemonAnnounce: records not in the log yet */
    GHashTable *unjournaled;   /* op ids whose journal entry is not stored */
    struct event *storage_retry_ev;
    gboolean vms_dirty;        /* vms.json is behind the VMs added at run time */
    GHashTable *event_rate;    /* VM name -> DaemonEventRate */
    struct event *coalesce_ev; /* ends the window: writes the coalesced records */
    GError *vms_error;         /* the last vms.json write failed (for vm-add's reply) */
    int inotify_fd;
    struct event *inotify_ev;
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *status_ev;    /* STATUS= to systemd, at most once a second */
    struct event *watchdog_ev;  /* WATCHDOG=1, when the unit asks for it */
    int exit_status;
};

static void daemon_status_schedule(Daemon *d);
static void daemon_notify(const char *state);

struct Subscription {
    Daemon *d;
    ControlClient *cl;
    JsonNode *id;
    char *vm, *device, *kind;
    EventLogFilter filter;
    gboolean follow;
    gboolean live;
    guint64 cursor;  /* the last seq dealt with */
    struct event *more_ev; /* the next chunk of backlog, on a later turn */
    gboolean wait_flush;   /* records it must read are written, not durable yet */
};

typedef struct {
    Daemon *d;
    ControlClient *cl;
    JsonNode *id;
    ServiceRequest *req;
    gboolean mutates;   /* its reply waits until its records are on disk */
    char *vm_added;     /* vm-add: the name, rolled back if vms.json was not written */
} DaemonCall;

/* A reply held back until the records it speaks of are on disk: an error,
 * or a return already rendered (once the disk has its records, nothing is
 * left but writing it). */
typedef struct {
    ControlClient *cl;
    JsonNode *id;
    GString *ret;
    char *cls, *desc;
} DaemonReply;

static void
daemon_reply_free(DaemonReply *r)
{
    if (r->id)
        json_node_unref(r->id);
    if (r->ret)
        g_string_free(r->ret, TRUE);
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
        control_client_return_line(r->cl, r->ret->str, r->ret->len);
}

/* A record: in the backlog (seq 0, line its members as text, as
 * event_log_append_members takes them) until it is written, then on its way
 * to the subscribers (line the LOG event, rendered once for all of them). */
typedef struct {
    guint64 seq;
    char *vm, *device, *kind; /* what subscribers' filters look at */
    char *line;
} DaemonAnnounce;

static void
daemon_announce_free(DaemonAnnounce *a)
{
    g_free(a->vm);
    g_free(a->device);
    g_free(a->kind);
    g_free(a->line);
    g_free(a);
}

static void subscription_pump(Subscription *s);
static void subscription_pump_waiting(Daemon *d);
static void subscription_more_cb(evutil_socket_t fd, short what, void *opaque);
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

/* ---- durability: append now, sync off the loop, release once durable --- */

/* The LOG event of a stored record, from the record's own text. */
static char *
daemon_log_event_line(const char *text)
{
    gint64 now = g_get_real_time();
    GString *line = g_string_sized_new(strlen(text) + 96);
    char num[24];

    qmp_json_append_lit(line, "{\"event\":\"LOG\",\"data\":");
    qmp_json_append(line, text, strlen(text));
    qmp_json_append_lit(line, ",\"timestamp\":{\"seconds\":");
    qmp_json_append(line, num, qmp_json_format_uint(num, (guint64)(now / G_USEC_PER_SEC)));
    qmp_json_append_lit(line, ",\"microseconds\":");
    qmp_json_append(line, num, qmp_json_format_uint(num, (guint64)(now % G_USEC_PER_SEC)));
    qmp_json_append_lit(line, "}}");
    return g_string_free(line, FALSE);
}

static char *
daemon_render_log_event(JsonObject *rec)
{
    g_autoptr(GString) text = g_string_sized_new(256);

    qmp_json_write_object(text, rec);
    return daemon_log_event_line(text->str);
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

/* A write to the state directory failed: logged once, changes refused,
 * and everything is written again every DAEMON_STORAGE_RETRY_MS. */
static void
daemon_storage_failed(Daemon *d, const char *what, const GError *error)
{
    struct timeval tv = {0, DAEMON_STORAGE_RETRY_MS * 1000};

    if (!d->storage_error) {
        d->storage_error = g_strdup_printf("%s: %s", what, error->message);
        /* reads are answered with what is on disk, not held for the disk */
        subscription_pump_waiting(d);
        g_warning("cannot write the state directory %s (%s): changes are refused until writes "
                  "succeed again; reads are served", d->cfg->state_dir, d->storage_error);
    }
    if (!evtimer_pending(d->storage_retry_ev, NULL))
        evtimer_add(d->storage_retry_ev, &tv);
}

static void daemon_schedule_flush(Daemon *d);
static gboolean daemon_save_runtime_vms(Daemon *d, GError **error);
static void daemon_announce(Daemon *d, DaemonAnnounce *a, guint64 seq, char *text);

static void daemon_flush_cb(evutil_socket_t fd, short what, void *opaque);
static void daemon_release_some(Daemon *d);
static void daemon_flush(Daemon *d, gboolean inline_sync);

static void
daemon_storage_retry_cb(evutil_socket_t fd, short what, void *opaque)
{
    Daemon *d = opaque;

    event_del(d->flush_ev);
    daemon_flush(d, FALSE);
}

/* Append what waits in the backlog and write vms.json if it is behind:
 * TRUE when all of it is written (not yet synced). */
static gboolean
daemon_storage_append(Daemon *d)
{
    g_autoptr(GError) error = NULL;

    while (d->backlog->len) {
        DaemonAnnounce *a = d->backlog->pdata[0];
        char *text = NULL;
        guint64 seq = event_log_append_members(d->log, a->line, strlen(a->line), &text, &error);
        if (!seq) {
            daemon_storage_failed(d, "event log", error);
            return FALSE;
        }
        daemon_announce(d, g_ptr_array_steal_index(d->backlog, 0), seq, text);
    }
    if (d->vms_dirty) {
        if (!daemon_save_runtime_vms(d, &error)) {
            daemon_storage_failed(d, "vms.json", error);
            return FALSE;
        }
        d->vms_dirty = FALSE;
    }
    return TRUE;
}

/* The batch in flight did not reach the disk: what waited for it waits
 * again, in front of what came since, and the next flush syncs again. */
static void
daemon_sync_failed(Daemon *d, const GError *error)
{
    event_log_sync_failed(d->log);
    if (d->sync_deferred->len) {
        g_ptr_array_extend_and_steal(d->sync_deferred, g_steal_pointer(&d->deferred));
        d->deferred = g_steal_pointer(&d->sync_deferred);
        d->sync_deferred = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_reply_free);
    }
    if (d->sync_announce->len) {
        g_ptr_array_extend_and_steal(d->sync_announce, g_steal_pointer(&d->announce));
        d->announce = g_steal_pointer(&d->sync_announce);
        d->sync_announce = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_announce_free);
    }
    daemon_storage_failed(d, "syncing", error);
}

/* Send the next chunk of durable replies; the rest on a later turn. */
static void
daemon_release_some(Daemon *d)
{
    guint end = MIN(d->releasing->len, d->releasing_head + DAEMON_RELEASE_CHUNK);

    for (; d->releasing_head < end; d->releasing_head++)
        daemon_reply_send(d->releasing->pdata[d->releasing_head]);
    if (d->releasing_head < d->releasing->len) {
        event_active(d->release_ev, EV_TIMEOUT, 0);
        return;
    }
    g_ptr_array_set_size(d->releasing, 0);
    d->releasing_head = 0;
}

static void
daemon_release_cb(evutil_socket_t fd, short what, void *opaque)
{
    daemon_release_some(opaque);
}

/* The batch in flight is on disk: release the replies and LOG events that
 * waited for it. */
static void
daemon_sync_release(Daemon *d)
{
    g_autoptr(GPtrArray) batch = NULL;
    g_autoptr(GPtrArray) replies = NULL;
    g_autoptr(GList) subs = NULL;
    g_autoptr(GBytes) block = NULL;

    if (d->storage_error) {
        g_message("the state directory %s can be written again: changes are accepted",
                  d->cfg->state_dir);
        g_clear_pointer(&d->storage_error, g_free);
    }
    d->durable_seq = MAX(d->durable_seq, d->sync_seq);
    /* requesters hear their outcome once it is on disk, like subscribers:
     * in order, a chunk per loop turn */
    replies = g_steal_pointer(&d->sync_deferred);
    d->sync_deferred = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_reply_free);
    g_ptr_array_extend_and_steal(d->releasing, g_steal_pointer(&replies));
    daemon_release_some(d);
    /* announce only what is on disk */
    batch = g_steal_pointer(&d->sync_announce);
    d->sync_announce = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_announce_free);
    subscription_pump_waiting(d);
    subs = g_hash_table_get_values(d->subs);
    for (GList *l = subs; l; l = l->next) {
        Subscription *s = l->data;
        if (!s->live || !batch->len)
            continue;
        /* a subscriber that takes every record of the batch gets its lines
         * in one piece, built once for all of them */
        if (!s->filter.vm && !s->filter.device && !s->filter.kind &&
            s->cursor < ((DaemonAnnounce *)batch->pdata[0])->seq) {
            if (!block) {
                GString *text = g_string_sized_new(batch->len * 320);
                for (guint i = 0; i < batch->len; i++) {
                    g_string_append(text, ((DaemonAnnounce *)batch->pdata[i])->line);
                    g_string_append(text, "\r\n");
                }
                block = g_string_free_to_bytes(text);
            }
            if (control_client_send_block(s->cl, block)) {
                s->cursor = ((DaemonAnnounce *)batch->pdata[batch->len - 1])->seq;
                continue;
            }
            /* past its cap: record by record, up to where it overflows */
        }
        for (guint i = 0; i < batch->len && s->live; i++) {
            DaemonAnnounce *a = batch->pdata[i];
            if (a->seq <= s->cursor)
                continue;
            if (event_log_filter_match_fields(&s->filter, a->vm, a->device, a->kind) &&
                !control_client_send_line(s->cl, a->line, strlen(a->line))) {
                subscription_overflow(s);
                break;
            }
            s->cursor = a->seq;
        }
    }
}

static void
daemon_sync_done_cb(SyncBatch *b, const GError *error, gpointer opaque)
{
    Daemon *d = opaque;
    g_autoptr(GError) err = NULL;

    journal_sync_done(d->journal, b, error == NULL);
    if (error) {
        daemon_sync_failed(d, error);
        return;
    }
    if (!event_log_mark_flushed(d->log, d->sync_seq, &err)) {
        daemon_sync_failed(d, err);
        return;
    }
    daemon_sync_release(d);
    /* group commit: everything written while this batch was on its way */
    if (d->flush_again || d->deferred->len || d->announce->len) {
        d->flush_again = FALSE;
        daemon_schedule_flush(d);
    }
}

/* Writes what waits and hands the sync of everything written so far to
 * the syncer (or, inline, runs it here); the replies and LOG events that
 * wait for it go with the batch.  Nothing is replied or announced before
 * it is on disk. */
static void
daemon_flush(Daemon *d, gboolean inline_sync)
{
    g_autoptr(SyncBatch) b = NULL;
    g_autoptr(GError) error = NULL;

    evtimer_del(d->flush_due_ev);
    d->flush_pending = FALSE;
    if (d->syncer && syncer_busy(d->syncer)) {
        if (!inline_sync) {
            d->flush_again = TRUE;
            return;
        }
        syncer_wait(d->syncer);
    }
    if (!daemon_storage_append(d))
        return;
    b = sync_batch_new();
    if (!event_log_sync_prepare(d->log, b, &d->sync_seq, &error)) {
        daemon_storage_failed(d, "event log", error);
        return;
    }
    /* the journal's syncs run beside the event log's.  A removal of an op
     * whose outcome is in this batch's log records waits for a later sync
     * (two files synced take longer than one, bench/bench-sync, and nothing
     * depends on it: a restart drops an op whose outcome it finds logged) */
    sync_batch_set_lane(b, 1);
    if (!journal_sync_prepare(d->journal, b, inline_sync || d->journal_sweep, &error)) {
        event_log_sync_failed(d->log);
        daemon_storage_failed(d, "journal", error);
        return;
    }
    if (inline_sync || d->journal_sweep) {
        d->journal_sweep = FALSE;
        evtimer_del(d->journal_sweep_ev);
    } else if (journal_has_unsynced(d->journal) && !evtimer_pending(d->journal_sweep_ev, NULL)) {
        struct timeval tv = {DAEMON_JOURNAL_SWEEP_MS / 1000, (DAEMON_JOURNAL_SWEEP_MS % 1000) * 1000};

        evtimer_add(d->journal_sweep_ev, &tv);
    }
    g_ptr_array_extend_and_steal(d->sync_deferred, g_steal_pointer(&d->deferred));
    d->deferred = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_reply_free);
    g_ptr_array_extend_and_steal(d->sync_announce, g_steal_pointer(&d->announce));
    d->announce = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_announce_free);
    if (!sync_batch_n_steps(b) || inline_sync || !d->syncer) {
        gboolean ok = sync_batch_run(b, &error);

        daemon_sync_done_cb(b, ok ? NULL : error, d);
        return;
    }
    syncer_submit(d->syncer, g_steal_pointer(&b));
}

static void
daemon_flush_cb(evutil_socket_t fd, short what, void *opaque)
{
    daemon_flush(opaque, FALSE);
}

static void
daemon_schedule_flush(Daemon *d)
{
    struct timeval tv = {0, DAEMON_FLUSH_MAX_DELAY_MS * 1000};

    /* while writes fail, the retry timer runs the flush */
    if (d->flush_pending || d->storage_error)
        return;
    d->flush_pending = TRUE;
    event_active(d->flush_ev, EV_TIMEOUT, 0);
    evtimer_add(d->flush_due_ev, &tv);
}

static void
daemon_journal_sweep_cb(evutil_socket_t fd, short what, void *opaque)
{
    Daemon *d = opaque;

    d->journal_sweep = TRUE;
    daemon_schedule_flush(d);
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

/* The record a (taken), written as seq (its stored text, taken), goes to
 * subscribers after the flush. */
static void
daemon_announce(Daemon *d, DaemonAnnounce *a, guint64 seq, char *text)
{
    a->seq = seq;
    g_free(a->line);
    a->line = daemon_log_event_line(text);
    g_free(text);
    g_ptr_array_add(d->announce, a);
}

/* Append a record to the log: its members as text (taken; see
 * event_log_append_members), and what subscribers' filters look at.  It is
 * announced after the flush.  When the log cannot be written it waits in
 * the backlog (*seq_out is 0 then), and so does every record after it. */
static void
daemon_log_members(Daemon *d, GString *members, const char *vm, const char *device,
                   const char *kind, guint64 *seq_out)
{
    g_autoptr(GError) error = NULL;
    DaemonAnnounce *a = g_new0(DaemonAnnounce, 1);
    char *text = NULL;
    guint64 seq = 0;

    a->vm = g_strdup(vm);
    a->device = g_strdup(device);
    a->kind = g_strdup(kind);
    if (!d->backlog->len) {
        seq = event_log_append_members(d->log, members->str, members->len, &text, &error);
        if (!seq)
            daemon_storage_failed(d, "event log", error);
    }
    if (seq_out)
        *seq_out = seq;
    if (seq) {
        g_string_free(members, TRUE);
        daemon_announce(d, a, seq, text);
    } else {
        a->line = g_string_free(members, FALSE);
        g_ptr_array_add(d->backlog, a);
    }
    daemon_schedule_flush(d);
}

/* The same for a record built as an object (rec, taken). */
static void
daemon_log_record(Daemon *d, JsonObject *rec, guint64 *seq_out)
{
    static const char *const ours[] = {"seq", "time", NULL};
    g_autoptr(JsonObject) owned = rec;
    GString *members = g_string_sized_new(256);

    qmp_json_write_members(members, rec, TRUE, ours);
    daemon_log_members(d, members, qmp_json_get_string(rec, "vm"),
                       qmp_json_get_string(rec, "device"), qmp_json_get_string(rec, "kind"),
                       seq_out);
}

/* ---- records ------------------------------------------------------------ */


static void
daemon_write_steps(GString *out, const char *name, GPtrArray *steps)
{
    g_string_append_c(out, ',');
    qmp_json_write_string(out, name);
    g_string_append(out, ":[");
    for (guint i = 0; i < steps->len; i++) {
        HotplugStep *step = steps->pdata[i];

        g_string_append(out, i ? ",{\"cmd\":" : "{\"cmd\":");
        qmp_json_write_string(out, step->cmd);
        if (step->args) {
            g_string_append(out, ",\"args\":");
            qmp_json_write_node(out, step->args);
        }
        if (step->undo_cmd) {
            g_string_append(out, ",\"undo_cmd\":");
            qmp_json_write_string(out, step->undo_cmd);
        }
        if (step->undo_args) {
            g_string_append(out, ",\"undo_args\":");
            qmp_json_write_node(out, step->undo_args);
        }
        g_string_append_c(out, '}');
    }
    g_string_append_c(out, ']');
}

/* ,"name":v into an object being written (qmp_json_append_name) */
static void
daemon_write_int(GString *out, const char *name, gint64 v)
{
    qmp_json_append_name(out, name);
    qmp_json_write_int(out, v);
}

static void
daemon_write_str(GString *out, const char *name, const char *v)
{
    qmp_json_append_name(out, name);
    qmp_json_write_string(out, v ? v : "");
}

/* An op's record, as members for daemon_log_members: who, what, then the
 * members of its kind (written by the caller after these) */
static GString *
daemon_op_record(HotplugOp *op, const char *kind)
{
    GString *m = g_string_sized_new(320);

    daemon_write_str(m, "vm", hotplug_op_get_vm_name(op));
    daemon_write_str(m, "kind", kind);
    daemon_write_int(m, "op", (gint64)hotplug_op_get_id(op));
    daemon_write_str(m, "device", hotplug_op_get_device(op));
    daemon_write_str(m, "action", hotplug_action_name(hotplug_op_get_action(op)));
    return m;
}

static void
daemon_op_detail(GString *m, HotplugOp *op)
{
    const GError *err = hotplug_op_get_error(op);
    const char *text = hotplug_op_get_detail(op);

    qmp_json_append_lit(m, ",\"detail\":{\"device_kind\":");
    qmp_json_write_string(m, hotplug_kind_name(hotplug_op_get_kind(op)));
    if (text)
        daemon_write_str(m, "text", text);
    g_string_append_c(m, '}');
    if (err) {
        qmp_json_append_lit(m, ",\"error\":{\"class\":");
        qmp_json_write_string(m, service_error_class(err));
        daemon_write_str(m, "desc", err->message);
        g_string_append_c(m, '}');
    }
}

/* The op's journal record, as JSON text: what a restart needs to finish
 * it (written straight as text: it is rewritten at every step). */
static GString *
daemon_journal_record(HotplugOp *op, guint64 log_seq)
{
    GString *j = g_string_sized_new(320);
    GPtrArray *cleanup = hotplug_op_get_cleanup(op);
    GPtrArray *steps = hotplug_op_get_steps(op);
    HotplugOpState st = hotplug_op_get_state(op);
    const char *instance = hotplug_op_get_instance(op);
    char num[24];

    qmp_json_append_lit(j, "{\"op\":");
    qmp_json_append(j, num, qmp_json_format_uint(num, hotplug_op_get_id(op)));
    daemon_write_str(j, "vm", hotplug_op_get_vm_name(op));
    daemon_write_str(j, "device", hotplug_op_get_device(op));
    daemon_write_str(j, "device_kind", hotplug_kind_name(hotplug_op_get_kind(op)));
    daemon_write_str(j, "action", hotplug_action_name(hotplug_op_get_action(op)));
    daemon_write_str(j, "state", hotplug_op_state_name(st));
    daemon_write_int(j, "attempts", hotplug_op_get_attempts(op));
    daemon_write_int(j, "max_attempts", hotplug_op_get_max_attempts(op));
    daemon_write_int(j, "timeout_ms", (gint64)hotplug_op_get_timeout_ms(op));
    daemon_write_int(j, "retry_interval_ms", (gint64)hotplug_op_get_retry_interval_ms(op));
    daemon_write_int(j, "start_wall_us", hotplug_op_get_start_wall_us(op));
    daemon_write_int(j, "deadline_wall_us", hotplug_op_get_deadline_wall_us(op));
    if (st == HOTPLUG_OP_TRACKED)
        daemon_write_str(j, "tracked", hotplug_outcome_name(hotplug_op_get_outcome(op)));
    daemon_write_int(j, "log_seq", (gint64)log_seq);
    /* the QEMU process its commands went to: a restart compares it */
    if (instance)
        daemon_write_str(j, "qemu", instance);
    if (cleanup && cleanup->len) {
        daemon_write_steps(j, "cleanup", cleanup);
        daemon_write_int(j, "cleanup_done", hotplug_op_get_cleanup_done(op));
    }
    /* a plug's steps with their undo, and how many may be in QEMU */
    if (steps && steps->len && hotplug_op_get_action(op) == HOTPLUG_ACTION_PLUG) {
        daemon_write_steps(j, "steps", steps);
        daemon_write_int(j, "steps_sent", hotplug_op_get_steps_sent(op));
    }
    g_string_append_c(j, '}');
    return j;
}

/* An outcome in the daemon's own log: added and deleted at info, every
 * other outcome (not-deleted, guest-error, rejected, vm-gone, ...) at
 * notice, so the default level shows what did not go as asked. */
static gboolean daemon_info_logging;

void
daemon_set_info_logging(gboolean on)
{
    daemon_info_logging = on;
}

static void
daemon_log_outcome(HotplugVm *vm, HotplugOp *op)
{
    HotplugOutcome o = hotplug_op_get_outcome(op);
    const GError *err = hotplug_op_get_error(op);
    const char *why = err ? err->message : hotplug_op_get_detail(op);
    g_autofree char *text = NULL;

    if ((o == HOTPLUG_OUTCOME_ADDED || o == HOTPLUG_OUTCOME_DELETED) && !daemon_info_logging)
        return;
    text = g_strdup_printf(
        "op %" G_GUINT64_FORMAT ": %s %s on VM %s: %s after %u attempt(s)%s%s",
        hotplug_op_get_id(op), hotplug_kind_name(hotplug_op_get_kind(op)),
        hotplug_op_get_device(op), hotplug_vm_get_name(vm), hotplug_outcome_name(o),
        (unsigned)hotplug_op_get_attempts(op), why ? ": " : "", why ? why : "");

    if (o == HOTPLUG_OUTCOME_ADDED || o == HOTPLUG_OUTCOME_DELETED)
        g_info("%s", text);
    else
        g_message("%s", text);
}

static void
daemon_svc_op_cb(Service *svc, HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev,
                 gpointer opaque)
{
    Daemon *d = opaque;
    g_autoptr(GError) error = NULL;
    GString *rec = NULL; /* the record's members */
    guint64 seq = 0, id = hotplug_op_get_id(op);
    gboolean open = TRUE;
    gboolean journaled = FALSE;
    const char *kind = NULL;

    switch (ev) {
    case HOTPLUG_OP_EV_REQUEST:
        rec = daemon_op_record(op, kind = "request");
        if (hotplug_op_get_action(op) == HOTPLUG_ACTION_UNPLUG) {
            daemon_write_int(rec, "timeout_ms", (gint64)hotplug_op_get_timeout_ms(op));
            daemon_write_int(rec, "retries", hotplug_op_get_max_attempts(op) - 1);
        }
        daemon_op_detail(rec, op);
        break;
    case HOTPLUG_OP_EV_ATTEMPT:
        rec = daemon_op_record(op, kind = "attempt");
        daemon_write_int(rec, "attempt", hotplug_op_get_attempts(op));
        break;
    case HOTPLUG_OP_EV_ATTEMPT_RESULT:
        rec = daemon_op_record(op, kind = "attempt");
        daemon_write_int(rec, "attempt", hotplug_op_get_attempts(op));
        daemon_write_str(rec, "outcome", hotplug_outcome_name(hotplug_op_get_attempt_outcome(op)));
        daemon_write_int(rec, "elapsed_ms", hotplug_op_get_elapsed_ms(op));
        daemon_op_detail(rec, op);
        break;
    case HOTPLUG_OP_EV_STEP: {
        /* the next command of a composite goes to QEMU after this: only the
         * journal hears of it */
        g_autoptr(GString) j = daemon_journal_record(op, event_log_last_seq(d->log));
        if (!journal_put_text(d->journal, id, j->str, j->len, &error))
            daemon_storage_failed(d, "journal", error);
        daemon_schedule_flush(d);
        return;
    }
    case HOTPLUG_OP_EV_DROPPED:
        /* its outcome stands and was logged: it only leaves the journal */
        if (!journal_remove(d->journal, id, &error))
            g_warning("journal: op %" G_GUINT64_FORMAT ": %s", id, error->message);
        daemon_schedule_flush(d);
        return;
    case HOTPLUG_OP_EV_OUTCOME:
    case HOTPLUG_OP_EV_LATE:
        rec = daemon_op_record(op, kind = "outcome");
        daemon_write_str(rec, "outcome", hotplug_outcome_name(hotplug_op_get_outcome(op)));
        daemon_write_int(rec, "attempt", hotplug_op_get_attempts(op));
        daemon_write_int(rec, "elapsed_ms", hotplug_op_get_elapsed_ms(op));
        daemon_op_detail(rec, op);
        open = hotplug_op_get_state(op) == HOTPLUG_OP_TRACKED;
        daemon_log_outcome(vm, op);
        break;
    }
    if (ev == HOTPLUG_OP_EV_REQUEST) {
        /* a new op: the journal first, so a crash before its log record
         * still leaves an op the restart finishes (with an outcome).  Its
         * log_seq (the log's last record before this request) is where a
         * restart starts looking for what became of it: that serves after
         * the request record too, so the op is not written again below. */
        g_autoptr(GString) j = daemon_journal_record(op, event_log_last_seq(d->log));
        if (journal_put_text(d->journal, id, j->str, j->len, &error)) {
            journaled = TRUE;
        } else {
            daemon_storage_failed(d, "journal", error);
            g_hash_table_add(d->unjournaled, g_memdup2(&id, sizeof id));
        }
        g_clear_error(&error);
    }
    /* then the log, then the journal: a crash between the two leaves the
     * op open in the journal, and the restart finds its outcome in the log */
    daemon_log_members(d, rec, hotplug_op_get_vm_name(op), hotplug_op_get_device(op), kind, &seq);
    if (open && journaled) {
        /* written just before, and nothing in it changed since */
    } else if (open) {
        /* the journal keeps its own copy */
        g_autoptr(GString) j = daemon_journal_record(op, seq);
        if (!journal_put_text(d->journal, id, j->str, j->len, &error)) {
            daemon_storage_failed(d, "journal", error);
        } else {
            g_hash_table_remove(d->unjournaled, &id);
        }
    } else {
        g_hash_table_remove(d->unjournaled, &id);
        /* with its outcome in the log, the removal need not hold a sync */
        if (!(seq ? journal_remove_logged : journal_remove)(d->journal, id, &error))
            daemon_storage_failed(d, "journal", error);
    }
    if (ev == HOTPLUG_OP_EV_ATTEMPT && g_hash_table_contains(d->unjournaled, &id)) {
        /* nothing goes to QEMU that a restart would not know about */
        g_autoptr(GError) refused = g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_STORAGE,
                                                "not sent to QEMU: hotplugd cannot store the "
                                                "operation (%s)", d->storage_error);
        g_hash_table_remove(d->unjournaled, &id);
        hotplug_op_refuse(op, refused);
    }
    if (ev == HOTPLUG_OP_EV_REQUEST || !open)
        daemon_status_schedule(d);
}

/* ---- per-VM fairness: QEMU event storms are coalesced ------------------------- */

typedef struct {
    gint64 window_start;   /* monotonic µs */
    guint n_in_window;     /* events recorded one by one in it */
    GHashTable *pending;   /* event name -> DaemonCoalesced, past the quota */
} DaemonEventRate;

typedef struct {
    guint64 count;
    char *device;          /* of the last one, may be NULL */
    JsonObject *detail;    /* the last one's (a record's detail) */
} DaemonCoalesced;

static void
daemon_coalesced_free(DaemonCoalesced *c)
{
    g_free(c->device);
    if (c->detail)
        json_object_unref(c->detail);
    g_free(c);
}

static void
daemon_event_rate_free(DaemonEventRate *r)
{
    g_hash_table_unref(r->pending);
    g_free(r);
}

/* The record's "detail": QEMU's data, or its size when it is too big. */
static JsonNode *
daemon_event_detail(JsonObject *data)
{
    g_autoptr(GString) text = g_string_sized_new(256);

    qmp_json_write_object(text, data);
    /* a record fits in any subscriber buffer */
    if (text->len > DAEMON_MAX_EVENT_DETAIL) {
        JsonObject *o = json_object_new();
        JsonNode *r = json_node_new(JSON_NODE_OBJECT);
        json_object_set_boolean_member(o, "truncated", TRUE);
        json_object_set_int_member(o, "bytes", (gint64)text->len);
        json_node_take_object(r, o);
        return r;
    }
    return json_node_init_object(json_node_alloc(), data);
}

/* Write the coalesced records of every VM whose window has ended. */
static void
daemon_coalesce_flush(Daemon *d, gboolean all)
{
    GHashTableIter it;
    gpointer key, value;
    gint64 now = g_get_monotonic_time();
    gboolean more = FALSE;

    g_hash_table_iter_init(&it, d->event_rate);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        DaemonEventRate *r = value;
        GHashTableIter pit;
        gpointer name, cv;

        if (!all && now - r->window_start < DAEMON_EVENT_WINDOW_MS * 1000) {
            more |= g_hash_table_size(r->pending) > 0;
            continue;
        }
        g_hash_table_iter_init(&pit, r->pending);
        while (g_hash_table_iter_next(&pit, &name, &cv)) {
            DaemonCoalesced *c = cv;
            JsonObject *rec = json_object_new();

            json_object_set_string_member(rec, "vm", key);
            json_object_set_string_member(rec, "kind", "qemu-event");
            json_object_set_string_member(rec, "event", name);
            if (c->device)
                json_object_set_string_member(rec, "device", c->device);
            json_object_set_int_member(rec, "count", (gint64)c->count);
            json_object_set_member(rec, "detail", daemon_event_detail(c->detail));
            daemon_log_record(d, rec, NULL);
        }
        g_hash_table_remove_all(r->pending);
    }
    if (more) {
        struct timeval tv = {0, 100 * 1000};
        evtimer_add(d->coalesce_ev, &tv);
    }
}

static void
daemon_coalesce_cb(evutil_socket_t fd, short what, void *opaque)
{
    daemon_coalesce_flush(opaque, FALSE);
}

/* TRUE when the event is to be recorded now; FALSE: it was coalesced. */
static gboolean
daemon_event_admit(Daemon *d, const char *vm, const QmpEvent *ev, const char *device)
{
    DaemonEventRate *r = g_hash_table_lookup(d->event_rate, vm);
    gint64 now = g_get_monotonic_time();
    DaemonCoalesced *c;

    if (!r) {
        r = g_new0(DaemonEventRate, 1);
        r->pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify)daemon_coalesced_free);
        g_hash_table_insert(d->event_rate, g_strdup(vm), r);
    }
    if (now - r->window_start >= DAEMON_EVENT_WINDOW_MS * 1000) {
        if (g_hash_table_size(r->pending))
            daemon_coalesce_flush(d, FALSE);
        r->window_start = now;
        r->n_in_window = 0;
    }
    if (r->n_in_window < DAEMON_EVENTS_PER_WINDOW && !g_hash_table_size(r->pending)) {
        r->n_in_window++;
        return TRUE;
    }
    c = g_hash_table_lookup(r->pending, ev->name);
    if (!c) {
        c = g_new0(DaemonCoalesced, 1);
        g_hash_table_insert(r->pending, g_strdup(ev->name), c);
    }
    c->count++;
    g_free(c->device);
    c->device = g_strdup(device);
    if (c->detail)
        json_object_unref(c->detail);
    c->detail = json_object_ref(ev->data);
    if (!evtimer_pending(d->coalesce_ev, NULL)) {
        gint64 left_us = r->window_start + DAEMON_EVENT_WINDOW_MS * 1000 - now;
        struct timeval tv = {left_us / G_USEC_PER_SEC, left_us % G_USEC_PER_SEC};
        evtimer_add(d->coalesce_ev, &tv);
    }
    return FALSE;
}

static void
daemon_svc_qemu_event_cb(Service *svc, HotplugVm *vm, const QmpEvent *ev, HotplugOp *op,
                         gpointer opaque)
{
    Daemon *d = opaque;
    JsonObject *rec = NULL;
    const char *device = qmp_json_get_string(ev->data, "device");
    JsonObject *info = qmp_json_get_object(ev->data, "info");

    if (!device)
        device = qmp_json_get_string(info, "device");
    /* one VM's storm cannot fill the log: what belongs to no operation is
     * rate-limited per VM, the excess coalesced with a count.  A device
     * that went is a state change, always recorded (and a guest cannot
     * make QEMU send more of them than it has devices). */
    if (!op && !g_str_equal(ev->name, "DEVICE_DELETED") &&
        !daemon_event_admit(d, hotplug_vm_get_name(vm), ev, device))
        return;
    rec = json_object_new();
    json_object_set_string_member(rec, "vm", hotplug_vm_get_name(vm));
    json_object_set_string_member(rec, "kind", "qemu-event");
    json_object_set_string_member(rec, "event", ev->name);
    if (op) {
        json_object_set_int_member(rec, "op", (gint64)hotplug_op_get_id(op));
        device = hotplug_op_get_device(op);
    }
    if (device)
        json_object_set_string_member(rec, "device", device);
    json_object_set_member(rec, "detail", daemon_event_detail(ev->data));
    daemon_log_record(d, rec, NULL);
}

/* ---- VMs ------------------------------------------------------------------------- */

#define DAEMON_VMS_FILE "vms.json"

/* Write the VMs added at run time, atomically and durably. */
static gboolean
daemon_save_runtime_vms(Daemon *d, GError **error)
{
    g_autoptr(JsonNode) root = daemon_object_node();
    JsonObject *o = json_node_get_object(root);
    g_autoptr(GPtrArray) names = service_list_vms(d->svc);
    g_autofree char *text = NULL;

    for (guint i = 0; i < names->len; i++) {
        const char *name = names->pdata[i];
        if (GPOINTER_TO_INT(g_hash_table_lookup(d->vm_source, name)) == VM_FROM_RUNTIME)
            json_object_set_string_member(o, name, service_get_vm_path(d->svc, name));
    }
    text = json_to_string(root, TRUE);
    return state_file_write_atomic(d->state_fd, d->cfg->state_dir, DAEMON_VMS_FILE, text,
                                   strlen(text), error);
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
    /* a lost VM (QEMU exited or closed the socket) shows at the default level */
    if (g_str_equal(state, "disconnected"))
        g_warning("VM %s: connection lost%s%s", vm, detail ? ": " : "", detail ? detail : "");
    else if (g_str_equal(state, "connected"))
        g_info("VM %s: connected", vm);
    daemon_status_schedule(d);
    if (g_str_equal(state, "added") && !g_hash_table_contains(d->vm_source, vm)) {
        /* added over the control socket */
        g_hash_table_insert(d->vm_source, g_strdup(vm), GINT_TO_POINTER(VM_FROM_RUNTIME));
        save = TRUE;
    } else if (g_str_equal(state, "removed")) {
        save = GPOINTER_TO_INT(g_hash_table_lookup(d->vm_source, vm)) == VM_FROM_RUNTIME;
        g_hash_table_remove(d->vm_source, vm);
    }
    if (save && !d->loading) {
        g_autoptr(GError) error = NULL;
        if (!daemon_save_runtime_vms(d, &error)) {
            d->vms_dirty = TRUE;
            daemon_storage_failed(d, "vms.json", error);
            g_clear_error(&d->vms_error);
            d->vms_error = g_steal_pointer(&error);
        }
    }
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

/* vms.json that cannot be read is never overwritten: the daemon does not
 * start until someone repairs or removes it. */
static gboolean
daemon_load_runtime_vms(Daemon *d, GError **error)
{
    g_autoptr(JsonNode) root = NULL;
    g_autoptr(GError) local = NULL;
    g_autofree char *text = NULL;
    gsize len = 0;
    JsonObject *o;

    text = state_file_read(d->state_fd, d->cfg->state_dir, DAEMON_VMS_FILE, &len, &local);
    if (!text && g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return TRUE;
    if (!text) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "cannot read the VMs added at run time: %s", local->message);
        return FALSE;
    }
    root = qmp_json_parse_stored(text, len, &local);
    if (!(o = qmp_json_node_object(root))) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "%s/%s is damaged (%s): refusing to start rather than lose its VMs; "
                    "repair it or move it away", d->cfg->state_dir, DAEMON_VMS_FILE,
                    local ? local->message : "not a JSON object");
        return FALSE;
    }
    {
        g_autoptr(GList) names = json_object_get_members(o);
        for (GList *l = names; l; l = l->next) {
            const char *qmp = qmp_json_get_string(o, l->data);
            if (qmp)
                daemon_add_vm(d, l->data, qmp, VM_FROM_RUNTIME);
            else
                g_warning("%s/%s: %s: not a socket path, skipped", d->cfg->state_dir,
                          DAEMON_VMS_FILE, (const char *)l->data);
        }
    }
    return TRUE;
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
    GHashTable *requested; /* ops with a request record */
} DaemonScan;

static gboolean
daemon_scan_cb(JsonObject *rec, gpointer opaque)
{
    DaemonScan *scan = opaque;
    const char *kind = qmp_json_get_string(rec, "kind");
    gint64 op;

    if (!qmp_json_get_int(rec, "op", &op))
        return TRUE;
    if (g_strcmp0(kind, "outcome") == 0)
        g_hash_table_insert(scan->outcomes, GSIZE_TO_POINTER((gsize)op), json_object_ref(rec));
    else if (g_strcmp0(kind, "request") == 0)
        g_hash_table_add(scan->requested, GSIZE_TO_POINTER((gsize)op));
    return TRUE;
}

/* A log record of kind for op id, from its journal record j: what every
 * op's record starts with (as daemon_op_record writes it for a live op). */
static JsonObject *
daemon_journal_log_record(JsonObject *j, guint64 id, const char *kind)
{
    JsonObject *rec = json_object_new();

    json_object_set_string_member(rec, "vm", qmp_json_get_string(j, "vm") ?: "");
    json_object_set_string_member(rec, "kind", kind);
    json_object_set_int_member(rec, "op", (gint64)id);
    json_object_set_string_member(rec, "device", qmp_json_get_string(j, "device") ?: "");
    json_object_set_string_member(rec, "action", qmp_json_get_string(j, "action") ?: "");
    return rec;
}

/* The request record of an op that a kill took between its first journal
 * record and its request record (hotplugd(8) DURABILITY: the journal goes
 * first): written at the restart, before whatever becomes of the op, so
 * the log never has an outcome without its request. */
static void
daemon_log_lost_request(Daemon *d, JsonObject *j, guint64 id)
{
    JsonObject *rec = daemon_journal_log_record(j, id, "request");
    JsonObject *detail = json_object_new();

    if (g_strcmp0(qmp_json_get_string(j, "action"), "unplug") == 0) {
        json_object_set_int_member(rec, "timeout_ms", qmp_json_get_int_default(j, "timeout_ms", 0));
        json_object_set_int_member(rec, "retries",
                                   MAX(0, qmp_json_get_int_default(j, "max_attempts", 1) - 1));
    }
    json_object_set_string_member(detail, "device_kind",
                                  qmp_json_get_string(j, "device_kind") ?: "device");
    json_object_set_string_member(detail, "text",
                                  "logged at a restart: hotplugd stopped after it took the "
                                  "operation and before it logged the request");
    json_object_set_object_member(rec, "detail", detail);
    daemon_log_record(d, rec, NULL);
}

static GPtrArray *
daemon_journal_steps(JsonObject *j, const char *member)
{
    JsonArray *a = qmp_json_get_array(j, member);
    GPtrArray *steps;

    if (!a)
        return NULL;
    steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = qmp_json_node_object(json_array_get_element(a, i));
        const char *cmd = qmp_json_get_string(o, "cmd");
        JsonNode *args = o ? json_object_get_member(o, "args") : NULL;
        JsonNode *undo_args = o ? json_object_get_member(o, "undo_args") : NULL;
        const char *undo_cmd = qmp_json_get_string(o, "undo_cmd");
        if (cmd)
            g_ptr_array_add(steps, hotplug_step_new(cmd, args ? json_node_copy(args) : NULL,
                                                    undo_cmd,
                                                    undo_cmd && undo_args
                                                        ? json_node_copy(undo_args)
                                                        : NULL));
    }
    return steps;
}

static void
daemon_reconcile(Daemon *d)
{
    g_autoptr(GPtrArray) open = journal_open_records(d->journal);
    DaemonScan scan = {g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                             (GDestroyNotify)json_object_unref),
                       g_hash_table_new(g_direct_hash, g_direct_equal)};
    guint64 since = G_MAXUINT64;
    g_autoptr(GError) error = NULL;
    gboolean scanned = TRUE;

    hotplug_op_set_next_id(journal_max_op(d->journal) + 1);
    if (!open->len)
        goto out;
    for (guint i = 0; i < open->len; i++)
        since = MIN(since, (guint64)qmp_json_get_int_default(open->pdata[i], "log_seq", 0));
    /* outcomes logged after the journal's last word on each op */
    if (!event_log_read_since(d->log, since ? since - 1 : 0, daemon_scan_cb, &scan, NULL, NULL,
                              &error)) {
        g_warning("reading the event log: %s", error->message);
        scanned = FALSE;
    }

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
        /* its first journal record (no attempt yet) is written just before
         * its request record, and names the log's last seq before it: the
         * scan covers where the request would be (when it could read) */
        if (scanned && !logged_outcome && qmp_json_get_int_default(j, "attempts", 1) == 0 &&
            !g_hash_table_contains(scan.requested, GSIZE_TO_POINTER((gsize)id)))
            daemon_log_lost_request(d, j, id);
        if (logged_outcome)
            tracked = logged_outcome;
        if (!vm) {
            JsonObject *rec;
            journal_remove(d->journal, id, NULL);
            if (tracked)
                continue; /* it has its outcome already */
            rec = daemon_journal_log_record(j, id, "outcome");
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
        a.timeout_ms = (guint64)CLAMP(qmp_json_get_int_default(j, "timeout_ms", 5000), 0,
                                      (gint64)TIMEOUT_MAX_MS);
        a.retry_interval_ms = (guint64)CLAMP(qmp_json_get_int_default(j, "retry_interval_ms", 0),
                                             0, (gint64)TIMEOUT_MAX_MS);
        a.start_wall_us = qmp_json_get_int_default(j, "start_wall_us", g_get_real_time());
        a.deadline_wall_us = qmp_json_get_int_default(j, "deadline_wall_us", -1);
        if (!tracked || !hotplug_outcome_from_name(tracked, &a.tracked))
            a.tracked = HOTPLUG_OUTCOME_NONE;
        a.cleanup = daemon_journal_steps(j, "cleanup");
        a.cleanup_done = (guint)CLAMP(qmp_json_get_int_default(j, "cleanup_done", 0), 0, G_MAXINT);
        a.steps = daemon_journal_steps(j, "steps");
        a.steps_sent = (guint)CLAMP(qmp_json_get_int_default(j, "steps_sent", 0), 0, G_MAXINT);
        a.instance = qmp_json_get_string(j, "qemu");
        op = hotplug_vm_adopt(vm, &a, &err);
        if (!op) {
            if (a.cleanup)
                g_ptr_array_unref(a.cleanup);
            if (a.steps)
                g_ptr_array_unref(a.steps);
            g_warning("op %" G_GUINT64_FORMAT ": cannot take it over: %s", id, err->message);
            continue;
        }
        g_message("op %" G_GUINT64_FORMAT " (%s %s on %s) taken over from the journal", id,
                  qmp_json_get_string(j, "action"), a.device, vm_name);
    }
out:
    g_hash_table_unref(scan.outcomes);
    g_hash_table_unref(scan.requested);
}

/* ---- subscriptions ------------------------------------------------------------------ */

static void
subscription_free(Subscription *s)
{
    if (s->more_ev)
        event_free(s->more_ev);
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
            if (!s->follow && s->cursor < event_log_last_seq(s->d->log) && !s->d->storage_error) {
                /* the rest is written and on its way to the disk: the
                 * answer covers it, once it is there */
                s->wait_flush = TRUE;
                return;
            }
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
        /* one chunk per loop turn: a long backlog must not hold up the
         * deadlines and the other clients */
        event_active(s->more_ev, EV_TIMEOUT, 0);
        return;
    }
}

/* Reads that waited for a flush (or, while the disk fails, for nothing any
 * more) go on; a pump may end its subscription. */
static void
subscription_pump_waiting(Daemon *d)
{
    g_autoptr(GList) subs = g_hash_table_get_values(d->subs);

    for (GList *l = subs; l; l = l->next) {
        Subscription *s = l->data;

        if (s->wait_flush) {
            s->wait_flush = FALSE;
            subscription_pump(s);
        }
    }
}

static void
subscription_more_cb(evutil_socket_t fd, short what, void *opaque)
{
    subscription_pump(opaque);
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
    s->more_ev = event_new(d->base, -1, 0, subscription_more_cb, s);
    event_priority_set(s->more_ev, 2);
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
    g_free(c->vm_added);
    g_free(c);
}

/* The reply to call c: line (its return line, rendered; taken) or error;
 * outcome is the op's when the reply is one op's. */
static void
daemon_call_reply(DaemonCall *c, GString *line, const GError *error, const char *outcome)
{
    DaemonReply *r = g_new0(DaemonReply, 1);

    r->cl = c->cl;
    r->id = c->id ? json_node_copy(c->id) : NULL;
    if (!error && c->vm_added && c->d->vms_error) {
        /* a VM that would be gone after a restart is not added */
        r->cls = g_strdup("StorageError");
        r->desc = g_strdup_printf("VM %s not added: %s", c->vm_added, c->d->vms_error->message);
        g_clear_error(&c->d->vms_error);
        daemon_remove_vm(c->d, c->vm_added);
    } else if (error) {
        r->cls = g_strdup(service_error_class(error));
        r->desc = g_strdup(error->message);
    } else {
        r->ret = g_steal_pointer(&line);
    }
    if (line)
        g_string_free(line, TRUE);
    if (c->mutates && c->d->storage_error && !r->cls && g_strcmp0(outcome, "rejected") != 0) {
        /* done, but its records are not on disk yet: heard once they are */
        g_ptr_array_add(c->d->deferred, r);
    } else if (!c->d->storage_error && !c->d->flush_pending && !c->d->flush_again &&
               !c->d->deferred->len && syncer_busy(c->d->syncer)) {
        /* nothing written since the sync under way: it needs that one only */
        g_ptr_array_add(c->d->sync_deferred, r);
    } else if ((c->d->flush_pending || syncer_busy(c->d->syncer)) && !c->d->storage_error) {
        g_ptr_array_add(c->d->deferred, r);
    } else if (c->d->releasing->len) {
        /* behind the durable replies still being sent */
        g_ptr_array_add(c->d->releasing, r);
    } else {
        daemon_reply_send(r);
        daemon_reply_free(r);
    }
    g_hash_table_remove(c->d->calls, c);
}

static void
daemon_call_reply_cb(ServiceRequest *req, JsonNode *ret, const GError *error, gpointer opaque)
{
    DaemonCall *c = opaque;

    daemon_call_reply(c, error ? NULL : control_render_return_node(c->id, ret), error,
                      qmp_json_get_string(qmp_json_node_object(ret), "outcome"));
}

static void
daemon_call_reply_text_cb(ServiceRequest *req, const char *ret, gsize len, const char *outcome,
                          gpointer opaque)
{
    DaemonCall *c = opaque;

    daemon_call_reply(c, control_render_return(c->id, ret, len), NULL, outcome);
}

static void
daemon_call_event_cb(ServiceRequest *req, const char *name, JsonNode *data, gpointer opaque)
{
    DaemonCall *c = opaque;

    control_client_event(c->cl, name, data);
}

static void
daemon_call_event_text_cb(ServiceRequest *req, const char *name, const char *data, gsize len,
                          gpointer opaque)
{
    DaemonCall *c = opaque;

    control_client_event_text(c->cl, name, data, len);
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
    static const ServiceRequestCallbacks cb = {.reply = daemon_call_reply_cb,
                                               .event = daemon_call_event_cb,
                                               .reply_text = daemon_call_reply_text_cb,
                                               .event_text = daemon_call_event_text_cb};
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
        if (!service_has_command(d->svc, cmd)) {
            g_autofree char *desc = g_strdup_printf("unknown command '%s' (query-hotplugd "
                                                    "lists them)", cmd);
            control_client_error(cl, id, "CommandNotFound", desc);
            return;
        }
    }
    if (daemon_cmd_mutates(cmd)) {
        /* every change is logged with who asked: built here and handed to
         * the log writer as is (no printf per request) */
        g_autoptr(GString) text = g_string_sized_new(192);
        char num[24];
        GLogField fields[] = {
            {"GLIB_DOMAIN", G_LOG_DOMAIN, -1},
            {"PRIORITY", "5", -1},
            {"MESSAGE", NULL, -1},
        };

        g_string_append(text, "request ");
        g_string_append(text, cmd);
        g_string_append_c(text, ' ');
        qmp_json_write_object(text, args);
        g_string_append(text, " from pid ");
        g_string_append_len(text, num, qmp_json_format_uint(num, (guint64)MAX(0, control_client_pid(cl))));
        g_string_append(text, " uid ");
        g_string_append_len(text, num, qmp_json_format_uint(num, (guint64)control_client_uid(cl)));
        fields[2].value = text->str;
        g_log_structured_array(G_LOG_LEVEL_MESSAGE, fields, G_N_ELEMENTS(fields));
        if (d->storage_error) {
            g_autofree char *desc = g_strdup_printf(
                "hotplugd cannot write its state directory %s (%s): changes are refused until "
                "it can again; reads work", d->cfg->state_dir, d->storage_error);
            control_client_error(cl, id, "StorageError", desc);
            return;
        }
    }
    c = g_new0(DaemonCall, 1);
    c->d = d;
    c->cl = cl;
    c->id = id ? json_node_copy(id) : NULL;
    c->mutates = daemon_cmd_mutates(cmd);
    g_clear_error(&d->vms_error);
    if (g_str_equal(cmd, "vm-add"))
        c->vm_added = g_strdup(qmp_json_get_string(args, "name"));
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
    for (guint i = d->sync_deferred->len; i > 0; i--)
        if (((DaemonReply *)d->sync_deferred->pdata[i - 1])->cl == cl)
            g_ptr_array_remove_index(d->sync_deferred, i - 1);
    for (guint i = d->releasing->len; i > d->releasing_head; i--)
        if (((DaemonReply *)d->releasing->pdata[i - 1])->cl == cl)
            g_ptr_array_remove_index(d->releasing, i - 1);
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
        g_autofree char *reloading = g_strdup_printf(
            "RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT, g_get_monotonic_time());

        daemon_notify(reloading);
        if (!daemon_reload(d, &error))
            g_warning("reload failed, keeping the old configuration: %s", error->message);
        daemon_notify("READY=1");
        daemon_status_schedule(d);
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

    d->lock_fd = state_file_open(d->state_fd, d->cfg->state_dir, "lock", O_RDWR | O_CREAT, error);
    if (d->lock_fd < 0)
        return FALSE;
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

/* STATUS=: how many VMs, how many of them connected, how many operations
 * are open (what `systemctl status hotplugd` shows). */
static void
daemon_status_cb(evutil_socket_t fd, short what, void *opaque)
{
    Daemon *d = opaque;
    g_autoptr(GPtrArray) names = service_list_vms(d->svc);
    g_autofree char *text = NULL;
    guint up = 0;

    for (guint i = 0; i < names->len; i++) {
        HotplugVm *vm = service_get_vm(d->svc, names->pdata[i]);

        if (vm && qmp_conn_get_state(hotplug_vm_get_conn(vm)) == QMP_CONN_READY)
            up++;
    }
    text = g_strdup_printf("STATUS=%u VMs (%u connected), %u open operations", names->len, up,
                           journal_n_open(d->journal));
    daemon_notify(text);
}

static void
daemon_status_schedule(Daemon *d)
{
    struct timeval second = {1, 0};

    if (d->status_ev && !evtimer_pending(d->status_ev, NULL))
        evtimer_add(d->status_ev, &second);
}

static void
daemon_watchdog_cb(evutil_socket_t fd, short what, void *opaque)
{
    daemon_notify("WATCHDOG=1");
}

/* Under systemd: STATUS= updates, and WATCHDOG=1 at half the interval the
 * unit asks for (WatchdogSec= sets $WATCHDOG_USEC, for $WATCHDOG_PID). */
static void
daemon_notify_start(Daemon *d)
{
    const char *usec = g_getenv("WATCHDOG_USEC"), *pid = g_getenv("WATCHDOG_PID");
    guint64 us, p;

    if (!g_getenv("NOTIFY_SOCKET"))
        return;
    d->status_ev = evtimer_new(d->base, daemon_status_cb, d);
    daemon_status_cb(-1, 0, d);
    if (!usec || !g_ascii_string_to_unsigned(usec, 10, 1, G_MAXUINT64, &us, NULL))
        return;
    if (pid && *pid &&
        (!g_ascii_string_to_unsigned(pid, 10, 1, G_MAXINT, &p, NULL) || p != (guint64)getpid()))
        return;
    {
        struct timeval half = {(time_t)(us / 2 / G_USEC_PER_SEC),
                               (suseconds_t)(us / 2 % G_USEC_PER_SEC)};

        d->watchdog_ev = event_new(d->base, -1, EV_PERSIST, daemon_watchdog_cb, d);
        event_add(d->watchdog_ev, &half);
        g_info("watchdog: WATCHDOG=1 every %" G_GUINT64_FORMAT " ms", us / 2 / 1000);
    }
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
    d->state_fd = -1;
    d->inotify_fd = -1;
    d->announce = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_announce_free);
    d->deferred = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_reply_free);
    d->sync_announce = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_announce_free);
    d->sync_deferred = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_reply_free);
    d->releasing = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_reply_free);
    d->backlog = g_ptr_array_new_with_free_func((GDestroyNotify)daemon_announce_free);
    d->unjournaled = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    d->event_rate = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify)daemon_event_rate_free);
    d->subs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                    (GDestroyNotify)subscription_free);
    d->vm_source = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    d->calls = g_hash_table_new_full(g_direct_hash, g_direct_equal,
                                     (GDestroyNotify)daemon_call_free, NULL);
    if ((d->state_fd = state_dir_open(cfg->state_dir, error)) < 0)
        return NULL;
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
    journal_set_deferred_compaction(d->journal, TRUE);

    /* the flush runs after everything else that is ready in an iteration:
     * three priorities, events default to the middle one, the flush is last */
    if (event_base_priority_init(base, 3) < 0)
        g_warning("cannot set event priorities: the flush may run mid-iteration");
    d->flush_ev = event_new(base, -1, 0, daemon_flush_cb, d);
    event_priority_set(d->flush_ev, 2);
    d->flush_due_ev = evtimer_new(base, daemon_flush_due_cb, d);
    event_priority_set(d->flush_due_ev, 0);
    d->journal_sweep_ev = evtimer_new(base, daemon_journal_sweep_cb, d);
    d->release_ev = event_new(base, -1, 0, daemon_release_cb, d);
    event_priority_set(d->release_ev, 1);
    if (!(d->syncer = syncer_new(base, daemon_sync_done_cb, d, error)))
        return NULL;
    d->storage_retry_ev = evtimer_new(base, daemon_storage_retry_cb, d);
    d->coalesce_ev = evtimer_new(base, daemon_coalesce_cb, d);

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
    co.max_clients = cfg->max_clients;
    co.version = PACKAGE_VERSION;
    if (!(d->ctl = control_server_new(base, &co, &cc, d, error)))
        return NULL;

    /* claims read back take their locks before any VM is looked at */
    service_watch_hostdevs(d->svc);
    d->loading = TRUE;
    g_hash_table_iter_init(&it, cfg->vms);
    while (g_hash_table_iter_next(&it, &key, &value))
        daemon_add_vm(d, key, value, VM_FROM_CONFIG);
    if (!daemon_load_runtime_vms(d, error))
        return NULL;
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
    daemon_notify_start(d);
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
    if (d->log && d->journal && d->backlog && d->event_rate)
        daemon_coalesce_flush(d, TRUE);
    if (d->log && d->journal && d->backlog) {
        /* what can still be written is; a full disk loses only what was
         * never replied or announced (the clients are gone already) */
        g_ptr_array_set_size(d->deferred, 0);
        g_ptr_array_set_size(d->sync_deferred, 0);
        g_ptr_array_set_size(d->releasing, 0);
        d->releasing_head = 0;
        g_ptr_array_set_size(d->announce, 0);
        g_ptr_array_set_size(d->sync_announce, 0);
        g_hash_table_remove_all(d->subs);
        daemon_flush(d, TRUE);
        if (d->backlog->len || d->storage_error)
            g_warning("stopping with %u records not written: %s", d->backlog->len,
                      d->storage_error ? d->storage_error : "");
    }
    syncer_free(d->syncer);
    if (d->flush_ev)
        event_free(d->flush_ev);
    if (d->flush_due_ev)
        event_free(d->flush_due_ev);
    if (d->journal_sweep_ev)
        event_free(d->journal_sweep_ev);
    if (d->release_ev)
        event_free(d->release_ev);
    if (d->storage_retry_ev)
        event_free(d->storage_retry_ev);
    if (d->coalesce_ev)
        event_free(d->coalesce_ev);
    if (d->inotify_ev)
        event_free(d->inotify_ev);
    if (d->status_ev)
        event_free(d->status_ev);
    if (d->watchdog_ev)
        event_free(d->watchdog_ev);
    if (d->inotify_fd >= 0)
        close(d->inotify_fd);
    event_log_free(d->log);
    journal_free(d->journal);
    g_ptr_array_unref(d->announce);
    g_ptr_array_unref(d->deferred);
    g_ptr_array_unref(d->sync_announce);
    g_ptr_array_unref(d->sync_deferred);
    g_ptr_array_unref(d->releasing);
    if (d->backlog)
        g_ptr_array_unref(d->backlog);
    if (d->unjournaled)
        g_hash_table_unref(d->unjournaled);
    if (d->event_rate)
        g_hash_table_unref(d->event_rate);
    g_free(d->storage_error);
    g_clear_error(&d->vms_error);
    g_hash_table_unref(d->subs);
    g_hash_table_unref(d->vm_source);
    g_hash_table_unref(d->calls);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    if (d->state_fd >= 0)
        close(d->state_fd);
    daemon_config_free(d->cfg);
    g_free(d->config_path);
    g_free(d);
}
