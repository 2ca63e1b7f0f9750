/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hotplug engine of one VM: plugs and unplugs over its QMP
 * connection, QEMU's events matched to the operations waiting for them,
 * deadlines, retries, confirmation against QEMU's device tree, and each
 * operation's outcome. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <string.h>

#include "hotplug-vm-priv.h"
#include "hotplug-props.h"
#include "hotplug-topology.h"
#include "hotplug-vm.h"
#include "qmp-json.h"

#define PERIPHERAL "/machine/peripheral/"

/* ACPI _OST: source 3 is an eject request, 0x103 eject processing;
 * status 0x84 means "in progress", 1 and 0x80-0x83 are failures. */
#define ACPI_OST_EJECT_REQUEST    0x03
#define ACPI_OST_EJECT_PROCESSING 0x103
#define ACPI_OST_SUCCESS          0x00
#define ACPI_OST_IN_PROGRESS      0x84

typedef struct {
    guint id;
    HotplugVmListener cb;
    gpointer opaque;
} HotplugListenerEntry;

struct HotplugVm {
    char *name;
    QmpConn *conn;
    guint conn_listener;
    HotplugVmOptions opts;
    GHashTable *ops;           /* device -> HotplugOp (ref), not DONE */
    GArray *listeners;         /* HotplugListenerEntry */
    guint next_listener_id;
    guint dispatching;         /* listener dispatch depth */
    GHashTable *prop_cache;    /* driver -> HotplugPropTypes */
    gboolean pseries;          /* query-target said ppc64 */
    gboolean target_asked;     /* query-target sent on this connection */
    guint64 confirm_counter;   /* bumped by every confirmation request */
    gboolean confirm_inflight;
    GPtrArray *queries;        /* HotplugVmQuery in flight: cut loose on free */
    char *instance;            /* the QEMU instance seen at the last ready connection */
    HotplugTopology *topology; /* the last one QEMU described on this connection */
    gboolean topology_asked;   /* a query for the unplug deadlines is in flight */
    HotplugMachine machine;    /* what qom-get /machine type said */
    gboolean machine_known;
    gboolean machine_asked;
    HotplugPlacement *placement;
    TimeoutDeadline *settle;   /* looks at QOM while unplugs wait (hotplug_vm_settle_cb) */
};

gpointer
hotplug_vm_query_new(HotplugVm *vm, gsize size)
{
    HotplugVmQuery *q = g_malloc0(size);

    q->vm = vm;
    g_ptr_array_add(vm->queries, q);
    return q;
}

/* The query's VM (NULL if freed); the query leaves the VM's list. */
HotplugVm *
hotplug_vm_query_end(gpointer query)
{
    HotplugVmQuery *q = query;

    if (q->vm)
        g_ptr_array_remove_fast(q->vm->queries, q);
    return q->vm;
}

static void hotplug_vm_request_confirm(HotplugVm *vm, HotplugOp *op, HotplugConfirm why);
static void hotplug_vm_send_unplug(HotplugVm *vm, HotplugOp *op);
static void hotplug_vm_run_plug_step(HotplugVm *vm, HotplugOp *op);
static void hotplug_vm_device_gone(HotplugVm *vm, HotplugOp *op);
static void hotplug_vm_undo_next(HotplugVm *vm, HotplugOp *op);
static void hotplug_vm_ask_target(HotplugVm *vm);
static TimeoutClass hotplug_vm_timeout_class(HotplugVm *vm, HotplugKind kind,
                                             HotplugMechanism mech);
static void hotplug_vm_ask_topology(HotplugVm *vm);
static void hotplug_vm_ask_machine(HotplugVm *vm);
static gboolean hotplug_kind_is_pci(HotplugKind kind);

const char *
hotplug_op_event_name(HotplugOpEvent ev)
{
    switch (ev) {
    case HOTPLUG_OP_EV_REQUEST:
        return "request";
    case HOTPLUG_OP_EV_ATTEMPT:
        return "attempt";
    case HOTPLUG_OP_EV_ATTEMPT_RESULT:
        return "attempt-result";
    case HOTPLUG_OP_EV_OUTCOME:
        return "outcome";
    case HOTPLUG_OP_EV_LATE:
        return "late";
    case HOTPLUG_OP_EV_DROPPED:
        return "dropped";
    case HOTPLUG_OP_EV_STEP:
        return "step";
    }
    return "unknown";
}

/* ---- listeners ---------------------------------------------------- */

guint
hotplug_vm_add_listener(HotplugVm *vm, const HotplugVmListener *l, gpointer opaque)
{
    HotplugListenerEntry e = {++vm->next_listener_id, *l, opaque};

    g_array_append_val(vm->listeners, e);
    return e.id;
}

/* Drop the slots of removed listeners (every waiting request adds one:
 * without this the array grew by one slot per request for ever). */
static void
hotplug_vm_compact_listeners(HotplugVm *vm)
{
    for (guint i = vm->listeners->len; i > 0; i--)
        if (g_array_index(vm->listeners, HotplugListenerEntry, i - 1).id == 0)
            g_array_remove_index(vm->listeners, i - 1);
}

void
hotplug_vm_remove_listener(HotplugVm *vm, guint id)
{
    for (guint i = 0; i < vm->listeners->len; i++) {
        HotplugListenerEntry *e = &g_array_index(vm->listeners, HotplugListenerEntry, i);
        if (e->id == id) {
            /* keep the slot while a dispatch may be walking the array */
            memset(&e->cb, 0, sizeof(e->cb));
            e->id = 0;
        }
    }
    if (!vm->dispatching)
        hotplug_vm_compact_listeners(vm);
}

static void
hotplug_vm_emit(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev)
{
    if (qmp_debug_enabled())
        g_debug("%s: op %" G_GUINT64_FORMAT " %s %s: %s (%s, attempt %u)", vm->name, op->id,
                hotplug_action_name(op->action), op->device, hotplug_op_event_name(ev),
                hotplug_outcome_name(op->outcome ? op->outcome : op->attempt_outcome),
                op->attempts);
    hotplug_op_ref(op);
    vm->dispatching++;
    for (guint i = 0; i < vm->listeners->len; i++) {
        HotplugListenerEntry e = g_array_index(vm->listeners, HotplugListenerEntry, i);
        if (e.cb.op)
            e.cb.op(vm, op, ev, e.opaque);
    }
    if (--vm->dispatching == 0)
        hotplug_vm_compact_listeners(vm);
    hotplug_op_unref(op);
}

static void
hotplug_vm_emit_qemu_event(HotplugVm *vm, const QmpEvent *ev, HotplugOp *op)
{
    vm->dispatching++;
    for (guint i = 0; i < vm->listeners->len; i++) {
        HotplugListenerEntry e = g_array_index(vm->listeners, HotplugListenerEntry, i);
        if (e.cb.qemu_event)
            e.cb.qemu_event(vm, ev, op, e.opaque);
    }
    if (--vm->dispatching == 0)
        hotplug_vm_compact_listeners(vm);
}

/* ---- operation bookkeeping ------------------------------------------ */

HotplugOp *
hotplug_vm_find_op(HotplugVm *vm, const char *device)
{
    return g_hash_table_lookup(vm->ops, device);
}

static gint
hotplug_op_id_cmp(gconstpointer a, gconstpointer b)
{
    const HotplugOp *x = *(HotplugOp *const *)a, *y = *(HotplugOp *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

GPtrArray *
hotplug_vm_list_ops(HotplugVm *vm)
{
    GPtrArray *list = g_ptr_array_new();
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, vm->ops);
    while (g_hash_table_iter_next(&it, NULL, &value))
        g_ptr_array_add(list, value);
    g_ptr_array_sort(list, hotplug_op_id_cmp);
    return list;
}

static void
hotplug_vm_stop_timers(HotplugOp *op)
{
    if (op->deadline)
        timeout_deadline_cancel(op->deadline);
    if (op->retry)
        timeout_deadline_cancel(op->retry);
    if (op->repress)
        timeout_deadline_cancel(op->repress);
}

/* op is DONE: drop it from the table, and its link to the VM. */
static void
hotplug_vm_forget(HotplugVm *vm, HotplugOp *op)
{
    op->vm = NULL;
    if (g_hash_table_lookup(vm->ops, op->device) == op)
        g_hash_table_remove(vm->ops, op->device);
}

const char *
hotplug_vm_instance(HotplugVm *vm)
{
    if (qmp_conn_get_state(vm->conn) != QMP_CONN_READY)
        return NULL;
    return qmp_conn_get_peer_instance(vm->conn);
}

/* The op's commands go to the QEMU that serves the VM now. */
static void
hotplug_vm_mark_instance(HotplugVm *vm, HotplugOp *op)
{
    g_free(op->instance);
    op->instance = g_strdup(hotplug_vm_instance(vm));
}

/* A device plugged here: the cached topology learns its bus from its
 * device_add, so that its unplug need not ask QEMU for the whole topology
 * again (q35, virt).  Without bus= QEMU chose: nothing to note. */
static void
hotplug_vm_note_plugged(HotplugVm *vm, HotplugOp *op)
{
    if (!vm->topology || !op->steps)
        return;
    for (guint i = 0; i < op->steps->len; i++) {
        HotplugStep *s = op->steps->pdata[i];
        JsonObject *args = s->args ? qmp_json_node_object(s->args) : NULL;
        const char *bus = qmp_json_get_string(args, "bus");

        if (g_str_equal(s->cmd, "device_add") &&
            g_strcmp0(qmp_json_get_string(args, "id"), op->device) == 0 && bus && *bus) {
            hotplug_topology_note_device(vm->topology, op->device, bus);
            return;
        }
    }
}

/* The final outcome.  not-deleted and guest-error stay tracked, so a
 * later removal is reported as deleted-late. */
static void
hotplug_vm_finish(HotplugVm *vm, HotplugOp *op, HotplugOutcome outcome)
{
    /* a tracked unplug whose device went later, directly or after its
     * cleanup (hotplug_vm_device_gone marks that run DELETED_LATE) */
    gboolean late = op->state == HOTPLUG_OP_TRACKED ||
                    (op->state == HOTPLUG_OP_CLEANUP &&
                     op->attempt_outcome == HOTPLUG_OUTCOME_DELETED_LATE);

    hotplug_op_ref(op);
    hotplug_vm_stop_timers(op);
    op->confirm = HOTPLUG_CONFIRM_NONE;
    op->attempt_outcome = outcome;
    if (op->action == HOTPLUG_ACTION_PLUG)
        hotplug_placement_settle(vm->placement, op->device);
    if (op->action == HOTPLUG_ACTION_PLUG && outcome == HOTPLUG_OUTCOME_ADDED)
        hotplug_vm_note_plugged(vm, op);
    if (late && outcome == HOTPLUG_OUTCOME_DELETED) {
        op->outcome = HOTPLUG_OUTCOME_DELETED_LATE;
        op->state = HOTPLUG_OP_DONE;
        hotplug_vm_forget(vm, op);
        hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_LATE);
    } else {
        op->outcome = outcome;
        op->end_us = g_get_monotonic_time();
        if (outcome == HOTPLUG_OUTCOME_NOT_DELETED || outcome == HOTPLUG_OUTCOME_GUEST_ERROR) {
            op->state = HOTPLUG_OP_TRACKED;
        } else {
            op->state = HOTPLUG_OP_DONE;
            hotplug_vm_forget(vm, op);
        }
        hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_OUTCOME);
    }
    hotplug_op_unref(op);
}

/* An attempt ended without the device going: retry or give the outcome. */
static void
hotplug_vm_end_attempt(HotplugVm *vm, HotplugOp *op, HotplugOutcome outcome)
{
    gint64 next;

    if (op->attempts >= op->max_attempts) {
        hotplug_vm_finish(vm, op, outcome);
        return;
    }
    timeout_deadline_cancel(op->deadline);
    op->confirm = HOTPLUG_CONFIRM_NONE;
    op->deadline_probing = FALSE;
    op->attempt_outcome = outcome;
    op->state = HOTPLUG_OP_RETRY_WAIT;
    /* never sooner than the interval after the previous attempt */
    next = MAX(op->last_attempt_us + (gint64)op->retry_interval_ms * 1000, g_get_monotonic_time());
    timeout_deadline_arm_at(op->retry, next);
    hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_ATTEMPT_RESULT);
}

/* A tracked op is watched no more; its outcome stands. */
static void
hotplug_vm_drop_tracked(HotplugVm *vm, HotplugOp *op)
{
    hotplug_vm_stop_timers(op);
    op->state = HOTPLUG_OP_DONE;
    hotplug_op_ref(op);
    hotplug_vm_forget(vm, op);
    hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_DROPPED);
    hotplug_op_unref(op);
}

static void
hotplug_vm_gone_all(HotplugVm *vm, const char *why)
{
    g_autoptr(GPtrArray) ops = hotplug_vm_list_ops(vm);

    for (guint i = 0; i < ops->len; i++) {
        HotplugOp *op = ops->pdata[i];
        if (op->state == HOTPLUG_OP_TRACKED) {
            /* it already has its outcome; nothing more can come */
            hotplug_vm_drop_tracked(vm, op);
            continue;
        }
        if (op->state == HOTPLUG_OP_DONE)
            continue;
        hotplug_op_set_detail(op, "%s", why);
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_VM_GONE);
    }
}

/* ---- confirming against QEMU's own state ---------------------------- */

typedef struct {
    HotplugVmQuery base;
    guint64 ticket;
} HotplugConfirmQuery;

static gboolean
hotplug_peripheral_has(JsonArray *list, const char *device)
{
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");
        if (name && type && g_str_equal(name, device) && g_str_has_prefix(type, "child<"))
            return TRUE;
    }
    return FALSE;
}

static void hotplug_vm_send_confirm(HotplugVm *vm);

static void
hotplug_vm_confirm_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugConfirmQuery *q = opaque;
    HotplugVm *vm = hotplug_vm_query_end(q);
    guint64 ticket = q->ticket;
    g_autoptr(GPtrArray) ops = NULL;
    gboolean again = FALSE;

    g_free(q);
    if (!vm)
        return;
    vm->confirm_inflight = FALSE;
    ops = hotplug_vm_list_ops(vm);
    for (guint i = 0; i < ops->len; i++)
        hotplug_op_ref(ops->pdata[i]);
    for (guint i = 0; i < ops->len; i++) {
        HotplugOp *op = ops->pdata[i];
        HotplugConfirm why = op->confirm;

        if (why == HOTPLUG_CONFIRM_NONE || op->state == HOTPLUG_OP_DONE)
            continue;
        /* asked again after this query went out: wait for the next answer,
         * except for a deadline, which any check sent after it decides (a
         * stream of events asking for checks cannot postpone it) */
        if (op->confirm_ticket > ticket &&
            !(why == HOTPLUG_CONFIRM_DEADLINE && op->deadline_ticket <= ticket)) {
            again = TRUE;
            continue;
        }
        op->confirm = HOTPLUG_CONFIRM_NONE;
        if (why == HOTPLUG_CONFIRM_PLUG && !error) {
            gboolean present = hotplug_peripheral_has(qmp_json_node_array(ret), op->device);
            if (!present && op->steps && op->steps_sent) {
                /* a composite cut short: undo what may be in QEMU */
                hotplug_op_set_detail(op, "not present after hotplugd restarted; its steps "
                                      "were undone");
                op->state = HOTPLUG_OP_CLEANUP;
                op->steps_done = MIN(op->steps_sent, op->steps->len);
                op->lenient = TRUE;
                hotplug_vm_undo_next(vm, op);
                continue;
            }
            if (!present)
                hotplug_op_set_detail(op, "not present after hotplugd restarted");
            hotplug_vm_finish(vm, op, present ? HOTPLUG_OUTCOME_ADDED : HOTPLUG_OUTCOME_REJECTED);
            continue;
        }
        if (error) {
            /* QEMU cannot tell us: without a connection the VM is gone
             * for this unplug once its deadline has passed */
            if (why != HOTPLUG_CONFIRM_PROBE) {
                hotplug_op_set_detail(op, "cannot confirm: %s", error->message);
                hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_VM_GONE);
            }
            continue;
        }
        if (!hotplug_peripheral_has(qmp_json_node_array(ret), op->device)) {
            hotplug_vm_device_gone(vm, op);
            continue;
        }
        switch (why) {
        case HOTPLUG_CONFIRM_PLUG:
            break; /* present: handled below */
        case HOTPLUG_CONFIRM_DEADLINE:
            op->deadline_probing = FALSE;
            if (op->state == HOTPLUG_OP_WAITING) {
                hotplug_op_set_detail(op, "still present after %" G_GUINT64_FORMAT " ms", op->timeout_ms);
                hotplug_vm_end_attempt(vm, op, HOTPLUG_OUTCOME_NOT_DELETED);
            }
            break;
        case HOTPLUG_CONFIRM_GUEST_ERROR:
            if (op->state == HOTPLUG_OP_WAITING || op->state == HOTPLUG_OP_SENDING)
                hotplug_vm_end_attempt(vm, op, HOTPLUG_OUTCOME_GUEST_ERROR);
            break;
        default:
            break;
        }
    }
    for (guint i = 0; i < ops->len; i++)
        hotplug_op_unref(ops->pdata[i]);
    if (again)
        hotplug_vm_send_confirm(vm);
}

static void
hotplug_vm_send_confirm(HotplugVm *vm)
{
    HotplugConfirmQuery *q;
    JsonObject *args;
    g_autoptr(GError) error = NULL;

    if (vm->confirm_inflight)
        return; /* its reply sends the next one */
    q = hotplug_vm_query_new(vm, sizeof(HotplugConfirmQuery));
    q->ticket = vm->confirm_counter;
    args = json_object_new();
    json_object_set_string_member(args, "path", "/machine/peripheral");
    if (!qmp_conn_execute(vm->conn, "qom-list", json_node_init_object(json_node_alloc(), args),
                          hotplug_vm_confirm_cb, q, &error)) {
        json_object_unref(args);
        /* answer with the error at once, as the reply would */
        vm->confirm_inflight = TRUE;
        hotplug_vm_confirm_cb(vm->conn, NULL, error, q);
        return;
    }
    json_object_unref(args);
    vm->confirm_inflight = TRUE;
}

static void
hotplug_vm_request_confirm(HotplugVm *vm, HotplugOp *op, HotplugConfirm why)
{
    if (why > op->confirm)
        op->confirm = why;
    op->confirm_ticket = ++vm->confirm_counter;
    hotplug_vm_send_confirm(vm);
}

/* ---- cleanup after an unplug ---------------------------------------- */

/* A cleanup step whose object is still in use is tried again this often. */
#define HOTPLUG_CLEANUP_BUSY_MS 100
#define HOTPLUG_CLEANUP_BUSY_TRIES 30

/* QEMU's answer when the object a step names is not there (blockdev-del,
 * object-del, device_del): what a step done before a restart gets again. */
static gboolean
hotplug_error_is_not_found(const GError *error)
{
    return error->domain == QMP_ERROR &&
           (error->code == QMP_ERROR_DEVICE_NOT_FOUND || strstr(error->message, "not found") ||
            strstr(error->message, "Failed to find") || strstr(error->message, "Cannot find"));
}

static void hotplug_vm_run_cleanup(HotplugVm *vm, HotplugOp *op);

static void
hotplug_vm_cleanup_step_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugOp *op = opaque;
    HotplugStep *s;

    if (op->vm && op->state == HOTPLUG_OP_CLEANUP) {
        s = op->cleanup->pdata[op->cleanup_done];
        if (error && strstr(error->message, "in use") &&
            op->cleanup_busy < HOTPLUG_CLEANUP_BUSY_TRIES) {
            /* QEMU lets go of a backend shortly after the device left its
             * tree (a device found gone at a takeover may still hold it) */
            op->cleanup_busy++;
            timeout_deadline_arm(op->retry, HOTPLUG_CLEANUP_BUSY_MS);
            goto out;
        }
        op->cleanup_busy = 0;
        if (error && op->lenient && hotplug_error_is_not_found(error)) {
            /* taken over with this step on the wire: it was done */
            g_debug("%s: op %" G_GUINT64_FORMAT ": %s after the restart: %s", op->vm_name, op->id,
                    s->cmd, error->message);
        } else if (error) {
            g_autofree char *prev = g_steal_pointer(&op->detail);
            hotplug_op_set_detail(op, "%s%scleanup %s failed: %s", prev ? prev : "",
                                  prev ? "; " : "", s->cmd, error->message);
        }
        op->lenient = FALSE;
        op->cleanup_done++;
        hotplug_vm_run_cleanup(op->vm, op);
    }
out:
    hotplug_op_unref(op);
}

static void
hotplug_vm_run_cleanup(HotplugVm *vm, HotplugOp *op)
{
    g_autoptr(GError) error = NULL;
    HotplugStep *s;

    if (!op->cleanup || op->cleanup_done >= op->cleanup->len) {
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_DELETED);
        return;
    }
    /* stored before it goes: a restart resumes the cleanup here */
    hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_STEP);
    if (op->state != HOTPLUG_OP_CLEANUP || !op->vm)
        return;
    s = op->cleanup->pdata[op->cleanup_done];
    if (!qmp_conn_execute(vm->conn, s->cmd, s->args ? json_node_ref(s->args) : NULL,
                          hotplug_vm_cleanup_step_cb, hotplug_op_ref(op), &error)) {
        hotplug_op_unref(op);
        hotplug_op_set_detail(op, "device deleted, cleanup %s not sent: %s", s->cmd,
                              error->message);
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_DELETED);
    }
}

/* QEMU confirmed the device is gone. */
static void
hotplug_vm_device_gone(HotplugVm *vm, HotplugOp *op)
{
    if (op->action != HOTPLUG_ACTION_UNPLUG || op->state == HOTPLUG_OP_DONE ||
        op->state == HOTPLUG_OP_CLEANUP)
        return;
    hotplug_vm_stop_timers(op);
    if (op->state == HOTPLUG_OP_TRACKED) {
        /* report it late; cleanup still runs first */
        if (op->cleanup && op->cleanup_done < op->cleanup->len) {
            op->state = HOTPLUG_OP_CLEANUP;
            op->outcome = HOTPLUG_OUTCOME_NONE;
            op->attempt_outcome = HOTPLUG_OUTCOME_DELETED_LATE;
            hotplug_vm_run_cleanup(vm, op);
            return;
        }
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_DELETED);
        return;
    }
    op->state = HOTPLUG_OP_CLEANUP;
    hotplug_vm_run_cleanup(vm, op);
}

void
hotplug_op_set_cleanup(HotplugOp *op, GPtrArray *steps)
{
    if (op->cleanup)
        g_ptr_array_unref(op->cleanup);
    op->cleanup = steps;
    op->cleanup_done = 0;
}

/* ---- unplug ----------------------------------------------------------- */

/* The deadline runs from when device_del was sent.  When it passes, QEMU
 * is asked whether the device is still there; an answer that does not come
 * within HOTPLUG_CONFIRM_GRACE_MS, like a device_del that was never
 * answered, ends the attempt not-deleted: the device's state is unknown. */
static void
hotplug_vm_deadline_cb(TimeoutDeadline *d, gpointer opaque)
{
    HotplugOp *op = opaque;
    HotplugVm *vm = op->vm;

    if (!vm)
        return;
    if (op->state == HOTPLUG_OP_SENDING) {
        hotplug_op_set_detail(op, "QEMU did not answer device_del within %" G_GUINT64_FORMAT
                              " ms: the device's state is unknown", op->timeout_ms);
        hotplug_vm_end_attempt(vm, op, HOTPLUG_OUTCOME_NOT_DELETED);
        return;
    }
    if (op->state != HOTPLUG_OP_WAITING)
        return;
    if (op->deadline_probing) {
        op->deadline_probing = FALSE;
        op->confirm = HOTPLUG_CONFIRM_NONE;
        hotplug_op_set_detail(op, "QEMU did not answer whether the device is still there (%u ms "
                              "after the %" G_GUINT64_FORMAT " ms deadline): the device's state "
                              "is unknown", HOTPLUG_CONFIRM_GRACE_MS, op->timeout_ms);
        hotplug_vm_end_attempt(vm, op, HOTPLUG_OUTCOME_NOT_DELETED);
        return;
    }
    op->deadline_probing = TRUE;
    op->deadline_ticket = vm->confirm_counter + 1;
    timeout_deadline_arm(op->deadline, HOTPLUG_CONFIRM_GRACE_MS);
    hotplug_vm_request_confirm(vm, op, HOTPLUG_CONFIRM_DEADLINE);
}

static void
hotplug_vm_retry_cb(TimeoutDeadline *d, gpointer opaque)
{
    HotplugOp *op = opaque;

    if (op->vm && op->state == HOTPLUG_OP_RETRY_WAIT)
        hotplug_vm_send_unplug(op->vm, op);
    else if (op->vm && op->state == HOTPLUG_OP_CLEANUP && op->action == HOTPLUG_ACTION_UNPLUG)
        hotplug_vm_run_cleanup(op->vm, op); /* the step whose object was in use */
}

static gboolean
hotplug_error_is_in_progress(const GError *error)
{
    return error->domain == QMP_ERROR && error->code == QMP_ERROR_GENERIC &&
           strstr(error->message, "already in the process of unplug") != NULL;
}

/* Native PCIe: the guest is blinking the slot's power indicator, i.e. it
 * took a press and will remove the device when the blink ends.  Another
 * press now would cancel that (QEMU refuses it). */
static gboolean
hotplug_error_is_blinking(const GError *error)
{
    return error->domain == QMP_ERROR && error->code == QMP_ERROR_GENERIC &&
           strstr(error->message, "power indicator blinking") != NULL;
}

/* The deadline of the current attempt, counted from armed_at_us (when
 * device_del was sent, or when a late press took effect), by the op's
 * class when it gave none (the mechanism may be known only now). */
static void
hotplug_vm_arm_deadline(HotplugVm *vm, HotplugOp *op)
{
    if (op->timeout_by_class)
        op->timeout_ms = vm->opts.timeouts.ms[hotplug_vm_timeout_class(vm, op->kind, op->mech)];
    timeout_deadline_arm_at(op->deadline, op->armed_at_us + (gint64)op->timeout_ms * 1000);
}

/* How long to wait before pressing again after "already in the process
 * of unplug": QEMU lets a new press through 5 s (guest time) after the
 * previous one. */
#define HOTPLUG_REPRESS_MS 1000
/* A blinking power indicator: the guest took a press and removes the
 * device when its 5 s wait is over (6.1-6.4 s after the press under TCG). */
#define HOTPLUG_BLINK_MS 7000

/* The guest is blinking: its removal comes within the blink; the attempt
 * waits at least that long. */
static void
hotplug_vm_wait_blink(HotplugOp *op)
{
    gint64 until = g_get_monotonic_time() + (gint64)HOTPLUG_BLINK_MS * 1000;

    if (timeout_deadline_when(op->deadline) < until)
        timeout_deadline_arm_at(op->deadline, until);
}

static void
hotplug_vm_repress_reply_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugOp *op = opaque;
    HotplugVm *vm = op->vm;

    if (!vm || op->state != HOTPLUG_OP_WAITING)
        goto out;
    if (!error) {
        /* the attempt's press takes effect now: its deadline runs from here */
        hotplug_op_set_detail(op, "the press took effect after QEMU's unplug window");
        op->armed_at_us = g_get_monotonic_time();
        timeout_deadline_arm_at(op->deadline, op->armed_at_us + (gint64)op->timeout_ms * 1000);
    } else if (hotplug_error_is_in_progress(error)) {
        /* not yet: try again while the attempt lasts */
        timeout_deadline_arm(op->repress, HOTPLUG_REPRESS_MS);
    } else if (hotplug_error_is_blinking(error)) {
        /* the guest took an earlier press: its removal is coming */
        hotplug_op_set_detail(op, "the guest is blinking the slot's power indicator");
        hotplug_vm_wait_blink(op);
    } else if (error->domain == QMP_ERROR && error->code == QMP_ERROR_DEVICE_NOT_FOUND) {
        hotplug_vm_device_gone(vm, op);
    }
    /* anything else: keep waiting; the deadline decides */
out:
    hotplug_op_unref(op);
}

static void
hotplug_vm_repress_cb(TimeoutDeadline *d, gpointer opaque)
{
    HotplugOp *op = opaque;
    JsonObject *args;

    if (!op->vm || op->state != HOTPLUG_OP_WAITING)
        return;
    args = json_object_new();
    json_object_set_string_member(args, "id", op->device);
    if (!qmp_conn_execute(op->vm->conn, "device_del", json_node_init_object(json_node_alloc(), args),
                          hotplug_vm_repress_reply_cb, hotplug_op_ref(op), NULL))
        hotplug_op_unref(op);
    json_object_unref(args);
}

/* QEMU sends DEVICE_DELETED when a device is finalized, and some never
 * are once unplugged (a qemu-xhci controller, on 7.2 and 10.0): the guest
 * let it go and QOM no longer has it, but no event comes.  While unplugs
 * wait, the VM looks at QOM now and then (one qom-list for all of them),
 * so such a device ends deleted when it goes, not at its deadline; a
 * tracked one (not-deleted) is looked at less often. */
#define HOTPLUG_SETTLE_FIRST_MS 1000
#define HOTPLUG_SETTLE_WAITING_MS 2000
#define HOTPLUG_SETTLE_TRACKED_MS 10000

static void
hotplug_vm_settle_arm(HotplugVm *vm, guint64 ms)
{
    gint64 when = g_get_monotonic_time() + (gint64)ms * 1000;

    if (!timeout_deadline_is_armed(vm->settle) || timeout_deadline_when(vm->settle) > when)
        timeout_deadline_arm_at(vm->settle, when);
}

static void
hotplug_vm_settle_cb(TimeoutDeadline *d, gpointer opaque)
{
    HotplugVm *vm = opaque;
    GHashTableIter it;
    gpointer value;
    gboolean waiting = FALSE, tracked = FALSE;
    guint64 ticket;

    if (qmp_conn_get_state(vm->conn) != QMP_CONN_READY)
        return; /* the reconnection looks at every op anyway */
    ticket = ++vm->confirm_counter;
    g_hash_table_iter_init(&it, vm->ops);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        HotplugOp *op = value;

        if (op->action != HOTPLUG_ACTION_UNPLUG ||
            (op->state != HOTPLUG_OP_WAITING && op->state != HOTPLUG_OP_TRACKED))
            continue;
        waiting |= op->state == HOTPLUG_OP_WAITING;
        tracked |= op->state == HOTPLUG_OP_TRACKED;
        if (HOTPLUG_CONFIRM_PROBE > op->confirm)
            op->confirm = HOTPLUG_CONFIRM_PROBE;
        op->confirm_ticket = ticket;
    }
    if (!waiting && !tracked)
        return;
    hotplug_vm_send_confirm(vm);
    hotplug_vm_settle_arm(vm, waiting ? HOTPLUG_SETTLE_WAITING_MS : HOTPLUG_SETTLE_TRACKED_MS);
}

static void
hotplug_vm_unplug_reply_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugOp *op = opaque;
    HotplugVm *vm = op->vm;

    if (!vm || op->state != HOTPLUG_OP_SENDING)
        goto out; /* an event decided it before the reply came */
    if (!error || hotplug_error_is_in_progress(error) || hotplug_error_is_blinking(error)) {
        /* QEMU refusing a press because one is pending means the unplug
         * is pending: keep waiting, never rejected */
        if (error && hotplug_error_is_blinking(error))
            hotplug_op_set_detail(op, "the guest is blinking the slot's power indicator "
                                      "(it took an earlier press)");
        else if (error)
            hotplug_op_set_detail(op, "QEMU is still processing the previous request");
        op->state = HOTPLUG_OP_WAITING;
        hotplug_vm_arm_deadline(vm, op);
        hotplug_vm_settle_arm(vm, HOTPLUG_SETTLE_FIRST_MS);
        if (error && hotplug_error_is_blinking(error))
            hotplug_vm_wait_blink(op);
        /* a retry whose press did not take: press again once QEMU's
         * window for the earlier one is over (never during a blink) */
        if (error && hotplug_error_is_in_progress(error) && op->attempts > 1)
            timeout_deadline_arm(op->repress, HOTPLUG_REPRESS_MS);
        /* a guest refusal that came before the reply */
        if (op->confirm != HOTPLUG_CONFIRM_NONE)
            hotplug_vm_send_confirm(vm);
    } else if (error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED) {
        if (vm->opts.gone_on_close) {
            hotplug_op_set_detail(op, "%s", error->message);
            hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_VM_GONE);
        } else {
            /* reconciled on reconnect, or vm-gone at the deadline */
            op->state = HOTPLUG_OP_WAITING;
            timeout_deadline_arm_at(op->deadline,
                                    op->last_attempt_us + (gint64)op->timeout_ms * 1000);
        }
    } else if (error->domain == QMP_ERROR && error->code == QMP_ERROR_DEVICE_NOT_FOUND &&
               (op->attempts > 1 || op->was_tracked)) {
        /* we asked before, so it existed: now it is gone */
        hotplug_vm_device_gone(vm, op);
    } else {
        hotplug_op_set_error(op, error);
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_REJECTED);
    }
out:
    hotplug_op_unref(op);
}

static void
hotplug_vm_send_unplug(HotplugVm *vm, HotplugOp *op)
{
    g_autoptr(GError) error = NULL;
    JsonObject *args = json_object_new();

    op->attempts++;
    op->last_attempt_us = g_get_monotonic_time();
    op->state = HOTPLUG_OP_SENDING;
    op->attempt_outcome = HOTPLUG_OUTCOME_NONE;
    hotplug_vm_mark_instance(vm, op);
    hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_ATTEMPT);
    if (op->state != HOTPLUG_OP_SENDING) {
        json_object_unref(args);
        return;
    }
    json_object_set_string_member(args, "id", op->device);
    op->deadline_probing = FALSE;
    /* the deadline starts now, not when QEMU answers */
    op->armed_at_us = op->last_attempt_us;
    hotplug_vm_arm_deadline(vm, op);
    if (!qmp_conn_execute(vm->conn, "device_del", json_node_init_object(json_node_alloc(), args),
                          hotplug_vm_unplug_reply_cb, hotplug_op_ref(op), &error)) {
        hotplug_op_unref(op);
        hotplug_op_set_detail(op, "%s", error->message);
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_VM_GONE);
    }
    json_object_unref(args);
}

/* A new request on a device whose unplug is tracked: the tracked one
 * keeps its outcome and is watched no more. */
static void
hotplug_vm_supersede(HotplugVm *vm, HotplugOp *op)
{
    hotplug_vm_drop_tracked(vm, op);
}

static TimeoutClass
hotplug_vm_timeout_class(HotplugVm *vm, HotplugKind kind, HotplugMechanism mech)
{
    switch (kind) {
    case HOTPLUG_KIND_VCPU:
        return TIMEOUT_CLASS_CPU;
    case HOTPLUG_KIND_MEMORY:
        return TIMEOUT_CLASS_MEMORY;
    default:
        /* PCI-like devices, by the mechanism of their slot: native PCIe
         * waits 5 s for the attention button; pseries guests take
         * longer (libvirt: 10 s) */
        if (mech == HOTPLUG_MECH_PCIE_NATIVE)
            return TIMEOUT_CLASS_PCI_NATIVE;
        if (mech == HOTPLUG_MECH_SPAPR || vm->pseries)
            return TIMEOUT_CLASS_PCI_PSERIES;
        return TIMEOUT_CLASS_PCI;
    }
}

static gboolean
hotplug_kind_is_pci(HotplugKind kind)
{
    return kind == HOTPLUG_KIND_DEVICE || kind == HOTPLUG_KIND_DISK ||
           kind == HOTPLUG_KIND_HOSTDEV;
}

/* No topology yet, or one that does not know op's device. */
static gboolean
hotplug_vm_topology_lacks(HotplugVm *vm, HotplugOp *op)
{
    return !vm->topology || !hotplug_topology_knows_device(vm->topology, op->device);
}

/* The mechanism of op's slot decides its default deadline: pc is ACPI,
 * pseries DRC, q35 and virt by the port (from the topology; asked when
 * ask and it does not know the device yet).  An armed deadline moves to
 * match. */
static void
hotplug_vm_resolve_op(HotplugVm *vm, HotplugOp *op, gboolean ask)
{
    HotplugMechanism m = HOTPLUG_MECH_NONE;

    if (op->mech_known || op->action != HOTPLUG_ACTION_UNPLUG || !op->timeout_by_class ||
        !hotplug_kind_is_pci(op->kind) || op->state == HOTPLUG_OP_DONE)
        return;
    if (!vm->machine_known) {
        hotplug_vm_ask_machine(vm);
        return;
    }
    switch (vm->machine) {
    case HOTPLUG_MACHINE_PC:
        m = HOTPLUG_MECH_ACPI;
        break;
    case HOTPLUG_MACHINE_PSERIES:
        m = HOTPLUG_MECH_SPAPR;
        break;
    case HOTPLUG_MACHINE_Q35:
    case HOTPLUG_MACHINE_VIRT:
        /* a device the topology knows on no place of its own (a USB bus)
         * has no mechanism: asking again would not change that */
        if (ask && hotplug_vm_topology_lacks(vm, op)) {
            hotplug_vm_ask_topology(vm);
            return;
        }
        if (vm->topology)
            m = hotplug_topology_device_mechanism(vm->topology, op->device);
        break;
    default:
        break;
    }
    op->mech = m;
    op->mech_known = TRUE;
    if (op->state == HOTPLUG_OP_WAITING && timeout_deadline_is_armed(op->deadline))
        hotplug_vm_arm_deadline(vm, op);
}

/* Whether op's mechanism can only come from asking the topology: a q35
 * or virt VM whose topology does not know the device (yet). */
static gboolean
hotplug_vm_mech_needs_topology(HotplugVm *vm, HotplugOp *op)
{
    return vm->machine_known &&
           (vm->machine == HOTPLUG_MACHINE_Q35 || vm->machine == HOTPLUG_MACHINE_VIRT) &&
           hotplug_vm_topology_lacks(vm, op);
}

static void
hotplug_vm_resolve_all(HotplugVm *vm, gboolean ask)
{
    g_autoptr(GPtrArray) ops = hotplug_vm_list_ops(vm);

    for (guint i = 0; i < ops->len; i++)
        hotplug_vm_resolve_op(vm, ops->pdata[i], ask);
}

typedef struct {
    HotplugVmQuery base;
} HotplugMachineQuery;

static void
hotplug_vm_machine_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugVm *vm = hotplug_vm_query_end(opaque);
    const char *type = error ? NULL : qmp_json_node_string(ret);

    g_free(opaque);
    if (!vm || (error && error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED))
        return;
    vm->machine = hotplug_topology_machine_from_type(type);
    vm->machine_known = TRUE;
    hotplug_vm_resolve_all(vm, TRUE);
}

/* Asked once per connection, like query-target. */
static void
hotplug_vm_ask_machine(HotplugVm *vm)
{
    HotplugMachineQuery *q;
    JsonObject *args;

    if (vm->machine_asked)
        return;
    vm->machine_asked = TRUE;
    q = hotplug_vm_query_new(vm, sizeof(HotplugMachineQuery));
    args = json_object_new();
    json_object_set_string_member(args, "path", "/machine");
    json_object_set_string_member(args, "property", "type");
    if (!qmp_conn_execute(vm->conn, "qom-get", json_node_init_object(json_node_alloc(), args),
                          hotplug_vm_machine_cb, q, NULL)) {
        hotplug_vm_query_end(q);
        g_free(q);
        vm->machine_asked = FALSE;
    }
    json_object_unref(args);
}

typedef struct {
    HotplugVmQuery base;
} HotplugTopoQuery;

static void
hotplug_vm_topology_cb(HotplugTopology *t, const GError *error, gpointer opaque)
{
    HotplugVm *vm = hotplug_vm_query_end(opaque);

    g_free(opaque);
    if (!vm) {
        hotplug_topology_free(t);
        return;
    }
    vm->topology_asked = FALSE;
    if (t) {
        hotplug_topology_free(vm->topology);
        vm->topology = t;
    } else {
        g_debug("%s: no topology: %s", vm->name, error ? error->message : "?");
    }
    /* what it does not know now stays at the default */
    hotplug_vm_resolve_all(vm, FALSE);
}

static void
hotplug_vm_ask_topology(HotplugVm *vm)
{
    HotplugTopoQuery *q;

    if (vm->topology_asked)
        return;
    q = hotplug_vm_query_new(vm, sizeof(HotplugTopoQuery));
    if (!hotplug_topology_query(vm->conn, hotplug_vm_topology_cb, q, NULL)) {
        hotplug_vm_query_end(q);
        g_free(q);
        return;
    }
    vm->topology_asked = TRUE;
}

static gboolean
hotplug_vm_check_ready(HotplugVm *vm, GError **error)
{
    if (qmp_conn_get_state(vm->conn) == QMP_CONN_READY)
        return TRUE;
    g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE, "VM %s is not connected (%s)%s%s",
                vm->name, qmp_conn_state_name(qmp_conn_get_state(vm->conn)),
                qmp_conn_get_last_error(vm->conn) ? ": " : "",
                qmp_conn_get_last_error(vm->conn) ? qmp_conn_get_last_error(vm->conn)->message
                                                  : "");
    return FALSE;
}

HotplugOp *
hotplug_vm_unplug(HotplugVm *vm, HotplugKind kind, const char *device,
                  const HotplugUnplugOptions *opts, gboolean *attached, GError **error)
{
    return hotplug_vm_unplug_full(vm, kind, device, opts, NULL, FALSE, attached, error);
}

void
hotplug_vm_unplug_release(HotplugOp *op, GPtrArray *cleanup)
{
    if (!op->vm || op->state != HOTPLUG_OP_SENDING || op->attempts != 0) {
        if (cleanup)
            g_ptr_array_unref(cleanup);
        return;
    }
    if (cleanup)
        hotplug_op_set_cleanup(op, cleanup);
    hotplug_vm_send_unplug(op->vm, op);
}

HotplugOp *
hotplug_vm_unplug_full(HotplugVm *vm, HotplugKind kind, const char *device,
                       const HotplugUnplugOptions *opts, GPtrArray *cleanup, gboolean hold,
                       gboolean *attached, GError **error)
{
    g_autoptr(GPtrArray) owned_cleanup = cleanup;
    HotplugOp *op = device ? g_hash_table_lookup(vm->ops, device) : NULL;
    HotplugUnplugOptions none = {0};
    gboolean tracked, ask_topology = FALSE;

    if (attached)
        *attached = FALSE;
    if (!opts)
        opts = &none;
    if (!device || !*device) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no device id given");
        return NULL;
    }
    if (op && op->state != HOTPLUG_OP_TRACKED) {
        if (op->action == HOTPLUG_ACTION_UNPLUG) {
            if (attached)
                *attached = TRUE;
            return hotplug_op_ref(op);
        }
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "device %s of VM %s is being plugged (operation %" G_GUINT64_FORMAT ")",
                    device, vm->name, op->id);
        return NULL;
    }
    if (!hotplug_vm_check_ready(vm, error))
        return NULL;
    if (op)
        hotplug_vm_supersede(vm, op);
    /* a tracked unplug was superseded: QEMU had the device */
    tracked = op != NULL;
    op = hotplug_op_new(vm, vm->name, kind, HOTPLUG_ACTION_UNPLUG, device);
    op->was_tracked = tracked;
    op->timeout_by_class = opts->timeout_ms == 0;
    if (op->timeout_by_class && hotplug_kind_is_pci(kind)) {
        /* the mechanism of the device's slot decides its deadline: known
         * now, or asked.  Asking the topology is 5 queries and 2 per
         * device: they go after device_del, which would otherwise wait
         * behind them in QEMU's queue; the deadline moves when the
         * answer comes */
        hotplug_vm_ask_target(vm);
        if (hotplug_vm_mech_needs_topology(vm, op))
            ask_topology = TRUE;
        else
            hotplug_vm_resolve_op(vm, op, TRUE);
    }
    op->timeout_ms = opts->timeout_ms
                         ? opts->timeout_ms
                         : vm->opts.timeouts.ms[hotplug_vm_timeout_class(vm, kind, op->mech)];
    op->max_attempts = 1 + opts->retries;
    op->retry_interval_ms = opts->retry_interval_ms;
    op->deadline = timeout_deadline_new(qmp_conn_get_base(vm->conn), hotplug_vm_deadline_cb, op);
    op->retry = timeout_deadline_new(qmp_conn_get_base(vm->conn), hotplug_vm_retry_cb, op);
    if (owned_cleanup)
        hotplug_op_set_cleanup(op, g_steal_pointer(&owned_cleanup));
    op->repress = timeout_deadline_new(qmp_conn_get_base(vm->conn), hotplug_vm_repress_cb, op);
    /* the record exists before device_del goes out: an event that beats
     * the reply finds it */
    g_hash_table_insert(vm->ops, op->device, op);
    hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_REQUEST);
    hotplug_op_ref(op);
    if (op->state == HOTPLUG_OP_SENDING && !hold)
        hotplug_vm_send_unplug(vm, op);
    if (ask_topology)
        hotplug_vm_resolve_op(vm, op, TRUE);
    return op;
}

/* ---- plug ------------------------------------------------------------- */

HotplugStep *
hotplug_step_new(const char *cmd, JsonNode *args, const char *undo_cmd, JsonNode *undo_args)
{
    HotplugStep *s = g_new0(HotplugStep, 1);

    s->cmd = g_strdup(cmd);
    s->args = args;
    s->undo_cmd = g_strdup(undo_cmd);
    s->undo_args = undo_args;
    return s;
}

void
hotplug_step_free(HotplugStep *s)
{
    if (!s)
        return;
    g_free(s->cmd);
    g_free(s->undo_cmd);
    if (s->args)
        json_node_unref(s->args);
    if (s->undo_args)
        json_node_unref(s->undo_args);
    g_free(s);
}

static void
hotplug_vm_undo_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugOp *op = opaque;
    HotplugVm *vm = op->vm;

    if (!vm || op->state == HOTPLUG_OP_DONE)
        goto out;
    if (error && !(op->lenient && hotplug_error_is_not_found(error))) {
        HotplugStep *s = op->steps->pdata[op->steps_done - 1];
        g_autofree char *prev = g_steal_pointer(&op->detail);
        hotplug_op_set_detail(op, "%s%sundo %s failed: %s", prev ? prev : "", prev ? "; " : "",
                              s->undo_cmd, error->message);
    }
    op->steps_done--;
    hotplug_vm_run_plug_step(vm, op);
out:
    hotplug_op_unref(op);
}

/* Undo the steps done, newest first; then the outcome is rejected. */
static void
hotplug_vm_undo_next(HotplugVm *vm, HotplugOp *op)
{
    g_autoptr(GError) error = NULL;

    while (op->steps_done > 0) {
        HotplugStep *s = op->steps->pdata[op->steps_done - 1];
        if (!s->undo_cmd) {
            op->steps_done--;
            continue;
        }
        if (qmp_conn_execute(vm->conn, s->undo_cmd,
                             s->undo_args ? json_node_ref(s->undo_args) : NULL,
                             hotplug_vm_undo_cb, hotplug_op_ref(op), &error))
            return;
        hotplug_op_unref(op);
        g_clear_error(&error);
        op->steps_done--;
    }
    hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_REJECTED);
}

static void
hotplug_vm_plug_step_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugOp *op = opaque;
    HotplugVm *vm = op->vm;

    if (!vm || op->state != HOTPLUG_OP_SENDING)
        goto out;
    if (error) {
        HotplugStep *s = op->steps->pdata[op->steps_done];
        hotplug_op_set_error(op, error);
        if (op->steps->len > 1)
            hotplug_op_set_detail(op, "step %u of %u (%s) failed", op->steps_done + 1,
                                  op->steps->len, s->cmd);
        if (error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED) {
            hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_VM_GONE);
            goto out;
        }
        /* undo: the state machine walks steps_done back down */
        op->state = HOTPLUG_OP_CLEANUP;
        hotplug_vm_undo_next(vm, op);
        goto out;
    }
    op->steps_done++;
    hotplug_vm_run_plug_step(vm, op);
out:
    hotplug_op_unref(op);
}

static void
hotplug_vm_run_plug_step(HotplugVm *vm, HotplugOp *op)
{
    g_autoptr(GError) error = NULL;
    HotplugStep *s;

    if (op->state == HOTPLUG_OP_CLEANUP) {
        hotplug_vm_undo_next(vm, op);
        return;
    }
    if (op->steps_done >= op->steps->len) {
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_ADDED);
        return;
    }
    if (op->steps_done >= op->steps_sent) {
        /* stored before it goes: a restart knows what may be in QEMU */
        op->steps_sent = op->steps_done + 1;
        hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_STEP);
        if (op->state != HOTPLUG_OP_SENDING || !op->vm)
            return;
    }
    s = op->steps->pdata[op->steps_done];
    if (!qmp_conn_execute(vm->conn, s->cmd, s->args ? json_node_ref(s->args) : NULL,
                          hotplug_vm_plug_step_cb, hotplug_op_ref(op), &error)) {
        hotplug_op_unref(op);
        hotplug_op_set_error(op, error);
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_VM_GONE);
    }
}

static HotplugOp *
hotplug_vm_begin_plug(HotplugVm *vm, HotplugKind kind, const char *device, GError **error)
{
    HotplugOp *op;

    if (!device || !*device) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no device id given");
        return NULL;
    }
    op = g_hash_table_lookup(vm->ops, device);
    if (op && op->state != HOTPLUG_OP_TRACKED) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "device %s of VM %s has an operation under way (%" G_GUINT64_FORMAT ", %s)",
                    device, vm->name, op->id, hotplug_action_name(op->action));
        return NULL;
    }
    if (!hotplug_vm_check_ready(vm, error))
        return NULL;
    if (op)
        hotplug_vm_supersede(vm, op);
    op = hotplug_op_new(vm, vm->name, kind, HOTPLUG_ACTION_PLUG, device);
    g_hash_table_insert(vm->ops, op->device, hotplug_op_ref(op));
    hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_REQUEST);
    return op;
}

void
hotplug_op_refuse(HotplugOp *op, const GError *error)
{
    HotplugVm *vm = op->vm;

    if (!vm || op->state != HOTPLUG_OP_SENDING || op->attempts != 1 ||
        (op->action == HOTPLUG_ACTION_PLUG && op->steps_done != 0))
        return;
    hotplug_op_set_error(op, error);
    hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_REJECTED);
}

HotplugOp *
hotplug_vm_plug_refused(HotplugVm *vm, HotplugKind kind, const char *device, const GError *why,
                        GError **error)
{
    HotplugOp *op = hotplug_vm_begin_plug(vm, kind, device, error);

    if (!op)
        return NULL;
    hotplug_op_set_error(op, why);
    hotplug_op_set_detail(op, "nothing was sent to QEMU");
    op->attempts = 0;
    hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_REJECTED);
    return op;
}

static void
hotplug_vm_start_steps(HotplugVm *vm, HotplugOp *op, GPtrArray *steps)
{
    op->steps = steps;
    op->steps_done = 0;
    /* the attempt's record says the first step may be in QEMU */
    op->steps_sent = steps->len ? 1 : 0;
    op->attempts = 1;
    hotplug_vm_mark_instance(vm, op);
    hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_ATTEMPT);
    if (op->state == HOTPLUG_OP_SENDING)
        hotplug_vm_run_plug_step(vm, op);
}

HotplugOp *
hotplug_vm_plug(HotplugVm *vm, HotplugKind kind, const char *device, GPtrArray *steps,
                GError **error)
{
    HotplugOp *op = hotplug_vm_begin_plug(vm, kind, device, error);

    if (!op) {
        g_ptr_array_unref(steps);
        return NULL;
    }
    hotplug_vm_start_steps(vm, op, steps);
    return op;
}

typedef struct {
    HotplugOp *op;
    char *driver;
    char **props;
} HotplugPlugDevice;

static void
hotplug_vm_plug_device_go(HotplugVm *vm, HotplugPlugDevice *pd, HotplugPropTypes *types)
{
    g_autoptr(GError) error = NULL;
    JsonObject *args = json_object_new();
    GPtrArray *steps;
    JsonNode *args_node;

    json_object_set_string_member(args, "driver", pd->driver);
    json_object_set_string_member(args, "id", pd->op->device);
    args_node = json_node_init_object(json_node_alloc(), args);
    json_object_unref(args);
    if (!hotplug_props_convert(types, pd->driver, (const char *const *)pd->props, args,
                               &error)) {
        json_node_unref(args_node);
        hotplug_op_set_error(pd->op, error);
        hotplug_op_set_detail(pd->op, "nothing was sent to QEMU");
        pd->op->attempts = 0;
        hotplug_vm_finish(vm, pd->op, HOTPLUG_OUTCOME_REJECTED);
        return;
    }
    steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    g_ptr_array_add(steps, hotplug_step_new("device_add", args_node, NULL, NULL));
    hotplug_vm_start_steps(vm, pd->op, steps);
}

static void
hotplug_plug_device_free(HotplugPlugDevice *pd)
{
    hotplug_op_unref(pd->op);
    g_free(pd->driver);
    g_strfreev(pd->props);
    g_free(pd);
}

static void
hotplug_vm_dlp_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugPlugDevice *pd = opaque;
    HotplugVm *vm = pd->op->vm;
    HotplugPropTypes *types = NULL;

    if (!vm || pd->op->state != HOTPLUG_OP_SENDING)
        goto out;
    if (error && error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED) {
        hotplug_op_set_error(pd->op, error);
        hotplug_vm_finish(vm, pd->op, HOTPLUG_OUTCOME_VM_GONE);
        goto out;
    }
    if (!error) {
        types = hotplug_prop_types_new(ret);
        hotplug_vm_set_prop_types(vm, pd->driver, types);
    }
    /* an unknown driver: send anyway, QEMU's own error text is the answer */
    hotplug_vm_plug_device_go(vm, pd, types);
out:
    hotplug_plug_device_free(pd);
}

HotplugOp *
hotplug_vm_plug_device(HotplugVm *vm, const char *driver, const char *id,
                       const char *const *props, GError **error)
{
    HotplugPlugDevice *pd;
    HotplugPropTypes *types;
    g_autoptr(GError) local = NULL;
    JsonObject *args;
    HotplugOp *op;

    if (!driver || !*driver) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no driver given");
        return NULL;
    }
    /* the ID argument names the device and the driver argument its model:
     * a property may not say otherwise */
    for (guint i = 0; props && props[i]; i++) {
        if (g_str_has_prefix(props[i], "id=") || g_str_has_prefix(props[i], "driver=")) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "property '%.*s' is not allowed among the properties: the %s argument "
                        "gives it", (int)(strchr(props[i], '=') - props[i]), props[i],
                        props[i][0] == 'i' ? "ID" : "DRIVER");
            return NULL;
        }
    }
    op = hotplug_vm_begin_plug(vm, HOTPLUG_KIND_DEVICE, id, error);
    if (!op)
        return NULL;
    pd = g_new0(HotplugPlugDevice, 1);
    pd->op = hotplug_op_ref(op);
    pd->driver = g_strdup(driver);
    pd->props = g_strdupv((char **)props);

    types = g_hash_table_lookup(vm->prop_cache, driver);
    if (types || !props || !*props) {
        hotplug_vm_plug_device_go(vm, pd, types);
        hotplug_plug_device_free(pd);
        return op;
    }
    args = json_object_new();
    json_object_set_string_member(args, "typename", driver);
    if (!qmp_conn_execute(vm->conn, "device-list-properties",
                          json_node_init_object(json_node_alloc(), args), hotplug_vm_dlp_cb, pd,
                          &local)) {
        hotplug_op_set_error(op, local);
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_VM_GONE);
        hotplug_plug_device_free(pd);
    }
    json_object_unref(args);
    return op;
}

/* ---- device list -------------------------------------------------------- */

typedef struct {
    HotplugVmQuery base;
    HotplugDevicesFunc done;
    gpointer opaque;
} HotplugDevicesQuery;

static void
hotplug_vm_devices_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugDevicesQuery *q = opaque;
    HotplugVm *vm = hotplug_vm_query_end(q);
    g_autoptr(JsonNode) root = NULL;
    JsonArray *list, *out;

    if (!vm) {
        g_free(q);
        return;
    }
    if (error) {
        q->done(vm, NULL, error, q->opaque);
        g_free(q);
        return;
    }
    list = qmp_json_node_array(ret);
    out = json_array_new();
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");
        gsize tlen = type ? strlen(type) : 0;
        g_autofree char *bare = NULL;
        JsonObject *d;
        HotplugOp *op;

        if (!name || tlen < 7 || !g_str_has_prefix(type, "child<") || type[tlen - 1] != '>')
            continue;
        op = g_hash_table_lookup(vm->ops, name);
        d = json_object_new();
        json_object_set_string_member(d, "id", name);
        bare = g_strndup(type + 6, tlen - 7); /* without "child<" and ">" */
        json_object_set_string_member(d, "type", bare);
        if (op) {
            JsonObject *p = json_object_new();

            json_object_set_int_member(p, "op", (gint64)op->id);
            json_object_set_string_member(p, "action", hotplug_action_name(op->action));
            json_object_set_string_member(p, "state", hotplug_op_state_name(op->state));
            json_object_set_int_member(p, "attempts", op->attempts);
            json_object_set_object_member(d, "pending", p);
        } else {
            json_object_set_null_member(d, "pending");
        }
        json_array_add_object_element(out, d);
    }
    /* members set directly: a JsonBuilder cost a third of this callback */
    root = json_node_init_array(json_node_alloc(), out);
    json_array_unref(out);
    q->done(vm, root, NULL, q->opaque);
    g_free(q);
}

gboolean
hotplug_vm_query_devices(HotplugVm *vm, HotplugDevicesFunc done, gpointer opaque,
                         GError **error)
{
    HotplugDevicesQuery *q = hotplug_vm_query_new(vm, sizeof(HotplugDevicesQuery));
    JsonObject *args = json_object_new();
    gboolean ok;

    q->done = done;
    q->opaque = opaque;
    json_object_set_string_member(args, "path", "/machine/peripheral");
    ok = qmp_conn_execute(vm->conn, "qom-list", json_node_init_object(json_node_alloc(), args),
                          hotplug_vm_devices_cb, q, error);
    json_object_unref(args);
    if (!ok) {
        hotplug_vm_query_end(q);
        g_free(q);
    }
    return ok;
}

/* ---- QEMU events -------------------------------------------------------- */

/* The device id an event's path names, and whether the path is a child
 * of it (/machine/peripheral/net0/virtio-backend). */
static char *
hotplug_device_from_path(const char *path, gboolean *child)
{
    const char *rest, *slash;

    *child = FALSE;
    if (!path || !g_str_has_prefix(path, PERIPHERAL))
        return NULL;
    rest = path + strlen(PERIPHERAL);
    slash = strchr(rest, '/');
    if (slash) {
        *child = TRUE;
        return g_strndup(rest, slash - rest);
    }
    return *rest ? g_strdup(rest) : NULL;
}

static HotplugOp *
hotplug_vm_event_op(HotplugVm *vm, JsonObject *data, gboolean *child)
{
    g_autofree char *id = hotplug_device_from_path(qmp_json_get_string(data, "path"), child);
    const char *device = qmp_json_get_string(data, "device");

    if (!id && device) {
        *child = FALSE;
        return g_hash_table_lookup(vm->ops, device);
    }
    return id ? g_hash_table_lookup(vm->ops, id) : NULL;
}

static void
hotplug_vm_on_device_deleted(HotplugVm *vm, const QmpEvent *ev)
{
    gboolean child = FALSE;
    HotplugOp *op = hotplug_vm_event_op(vm, ev->data, &child);

    hotplug_vm_emit_qemu_event(vm, ev, op);
    if (vm->topology)
        hotplug_topology_forget_device(vm->topology, qmp_json_get_string(ev->data, "device"));
    if (!op || op->action != HOTPLUG_ACTION_UNPLUG)
        return;
    if (child) {
        /* a part of it went: check whether the whole did (x86 vCPUs
         * never get their own DEVICE_DELETED) */
        hotplug_vm_request_confirm(vm, op, HOTPLUG_CONFIRM_PROBE);
        return;
    }
    hotplug_vm_device_gone(vm, op);
}

static void
hotplug_vm_on_guest_error(HotplugVm *vm, const QmpEvent *ev)
{
    gboolean child = FALSE;
    HotplugOp *op = hotplug_vm_event_op(vm, ev->data, &child);

    hotplug_vm_emit_qemu_event(vm, ev, op);
    if (!op || child || op->action != HOTPLUG_ACTION_UNPLUG)
        return;
    if (op->state != HOTPLUG_OP_WAITING && op->state != HOTPLUG_OP_SENDING)
        return;
    hotplug_op_set_detail(op, "%s%s%s", ev->name,
                          qmp_json_get_string(ev->data, "msg") ? ": " : "",
                          qmp_json_get_string(ev->data, "msg") ?: "");
    hotplug_vm_request_confirm(vm, op, HOTPLUG_CONFIRM_GUEST_ERROR);
}

static void
hotplug_vm_on_acpi_ost(HotplugVm *vm, const QmpEvent *ev)
{
    JsonObject *info = qmp_json_get_object(ev->data, "info");
    const char *device = qmp_json_get_string(info, "device");
    HotplugOp *op = device ? g_hash_table_lookup(vm->ops, device) : NULL;
    gint64 source = qmp_json_get_int_default(info, "source", -1);
    gint64 status = qmp_json_get_int_default(info, "status", -1);

    hotplug_vm_emit_qemu_event(vm, ev, op);
    if (!op || op->action != HOTPLUG_ACTION_UNPLUG)
        return;
    if (source != ACPI_OST_EJECT_REQUEST && source != ACPI_OST_EJECT_PROCESSING)
        return;
    if (status == ACPI_OST_IN_PROGRESS)
        return;
    if (status == ACPI_OST_SUCCESS) {
        hotplug_vm_request_confirm(vm, op, HOTPLUG_CONFIRM_PROBE);
        return;
    }
    if (op->state != HOTPLUG_OP_WAITING && op->state != HOTPLUG_OP_SENDING)
        return;
    hotplug_op_set_detail(op, "the guest refused: ACPI_DEVICE_OST source 0x%" G_GINT64_MODIFIER
                          "x status 0x%" G_GINT64_MODIFIER "x", source, status);
    hotplug_vm_request_confirm(vm, op, HOTPLUG_CONFIRM_GUEST_ERROR);
}

static void hotplug_vm_probe_all(HotplugVm *vm);

/* op was sent to another QEMU than the one serving the VM now: whatever
 * it did went with that QEMU.  TRUE when op ended so. */
static gboolean
hotplug_vm_check_instance(HotplugVm *vm, HotplugOp *op)
{
    const char *now = hotplug_vm_instance(vm);

    if (!op->instance || !now || g_str_equal(op->instance, now) || op->state == HOTPLUG_OP_DONE)
        return FALSE;
    hotplug_op_ref(op);
    hotplug_vm_stop_timers(op);
    op->confirm = HOTPLUG_CONFIRM_NONE;
    if (op->state == HOTPLUG_OP_TRACKED) {
        /* its outcome was not-deleted/guest-error; the device is gone with
         * its QEMU, not deleted: a second outcome, as deleted-late would be */
        hotplug_op_set_detail(op, "QEMU was restarted (process %s, now %s): the device went "
                              "with the QEMU that refused or did not finish its unplug",
                              op->instance, now);
        op->outcome = HOTPLUG_OUTCOME_VM_GONE;
        op->attempt_outcome = HOTPLUG_OUTCOME_VM_GONE;
        op->state = HOTPLUG_OP_DONE;
        hotplug_vm_forget(vm, op);
        hotplug_vm_emit(vm, op, HOTPLUG_OP_EV_LATE);
    } else if (op->state == HOTPLUG_OP_CLEANUP && op->action == HOTPLUG_ACTION_UNPLUG) {
        /* the old QEMU confirmed the device gone; its backends went with it */
        hotplug_op_set_detail(op, "device deleted; QEMU was restarted (process %s, now %s) "
                              "before its cleanup finished", op->instance, now);
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_DELETED);
    } else {
        hotplug_op_set_detail(op, "QEMU was restarted (process %s, now %s): what the %s did "
                              "went with the QEMU it was sent to", op->instance, now,
                              op->action == HOTPLUG_ACTION_PLUG ? "plug" : "unplug");
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_VM_GONE);
    }
    hotplug_op_unref(op);
    return TRUE;
}

/* On every ready connection: a QEMU restarted on the same socket ends what
 * was sent to the old one, before anything is reconciled with the new. */
static void
hotplug_vm_check_instances(HotplugVm *vm)
{
    const char *now = hotplug_vm_instance(vm);
    g_autoptr(GPtrArray) ops = NULL;

    if (now && vm->instance && !g_str_equal(vm->instance, now)) {
        g_autofree char *old = g_steal_pointer(&vm->instance);

        g_message("%s: QEMU is another process now (%s, was %s)", vm->name, now, old);
        vm->instance = g_strdup(now);
        vm->dispatching++;
        for (guint i = 0; i < vm->listeners->len; i++) {
            HotplugListenerEntry e = g_array_index(vm->listeners, HotplugListenerEntry, i);
            if (e.cb.instance)
                e.cb.instance(vm, old, now, e.opaque);
        }
        if (--vm->dispatching == 0)
            hotplug_vm_compact_listeners(vm);
    } else if (now && !vm->instance) {
        vm->instance = g_strdup(now);
    }
    ops = hotplug_vm_list_ops(vm);
    for (guint i = 0; i < ops->len; i++)
        hotplug_op_ref(ops->pdata[i]);
    for (guint i = 0; i < ops->len; i++) {
        hotplug_vm_check_instance(vm, ops->pdata[i]);
        hotplug_op_unref(ops->pdata[i]);
    }
}

HotplugOp *
hotplug_vm_adopt(HotplugVm *vm, const HotplugAdopt *a, GError **error)
{
    HotplugOp *op;
    gint64 now_wall = g_get_real_time(), now = g_get_monotonic_time();

    if (!a->device || g_hash_table_contains(vm->ops, a->device)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "VM %s already has an operation on %s", vm->name,
                    a->device ? a->device : "(none)");
        return NULL;
    }
    op = hotplug_op_new(vm, vm->name, a->kind, a->action, a->device);
    op->id = a->id;
    op->attempts = a->attempts;
    op->max_attempts = MAX(1, a->max_attempts);
    op->timeout_ms = a->timeout_ms;
    op->retry_interval_ms = a->retry_interval_ms;
    op->start_wall_us = a->start_wall_us;
    op->start_us = now - MAX(0, now_wall - a->start_wall_us);
    op->last_attempt_us = now;
    op->cleanup = a->cleanup;
    op->cleanup_done = a->cleanup ? MIN(a->cleanup_done, a->cleanup->len) : 0;
    op->steps = a->steps;
    op->steps_sent = a->steps ? MIN(a->steps_sent, a->steps->len) : 0;
    op->instance = g_strdup(a->instance);
    op->adopted = TRUE;
    /* the cleanup step on the wire at the restart may have been done already */
    op->lenient = a->cleanup != NULL;
    op->deadline = timeout_deadline_new(qmp_conn_get_base(vm->conn), hotplug_vm_deadline_cb, op);
    op->retry = timeout_deadline_new(qmp_conn_get_base(vm->conn), hotplug_vm_retry_cb, op);
    op->repress = timeout_deadline_new(qmp_conn_get_base(vm->conn), hotplug_vm_repress_cb, op);
    g_hash_table_insert(vm->ops, op->device, op);
    if (a->action == HOTPLUG_ACTION_PLUG) {
        op->state = HOTPLUG_OP_SENDING;
        op->confirm = HOTPLUG_CONFIRM_PLUG;
    } else if (a->tracked != HOTPLUG_OUTCOME_NONE) {
        op->state = HOTPLUG_OP_TRACKED;
        op->outcome = a->tracked;
        op->attempt_outcome = a->tracked;
        op->end_us = now;
        op->confirm = HOTPLUG_CONFIRM_PROBE;
    } else {
        /* waiting (or between attempts): the deadline decides if QEMU
         * has not removed it; past deadlines fire at once */
        op->state = HOTPLUG_OP_WAITING;
        op->confirm = HOTPLUG_CONFIRM_PROBE;
        /* no deadline on record (QEMU had not answered yet): a full one */
        timeout_deadline_arm_at(op->deadline,
                                a->deadline_wall_us < 0
                                    ? now + (gint64)a->timeout_ms * 1000
                                    : now + MAX(0, a->deadline_wall_us - now_wall));
        /* what the deadline counts from, should the mechanism move it */
        op->armed_at_us = timeout_deadline_when(op->deadline) - (gint64)op->timeout_ms * 1000;
    }
    op->confirm_ticket = ++vm->confirm_counter;
    hotplug_op_ref(op);
    if (a->action == HOTPLUG_ACTION_UNPLUG && a->attempts == 0 &&
        a->tracked == HOTPLUG_OUTCOME_NONE) {
        /* stopped while it waited to send device_del (a disk's unplug asks
         * QEMU what the disk owns first): nothing went to QEMU */
        hotplug_op_set_detail(op, "hotplugd stopped before device_del was sent; nothing was "
                              "sent to QEMU");
        hotplug_vm_finish(vm, op, HOTPLUG_OUTCOME_REJECTED);
        return op;
    }
    if (qmp_conn_get_state(vm->conn) == QMP_CONN_READY && !hotplug_vm_check_instance(vm, op))
        hotplug_vm_send_confirm(vm);
    /* else the probe goes out when the connection is ready */
    return op;
}

static void
hotplug_vm_probe_all(HotplugVm *vm)
{
    g_autoptr(GPtrArray) ops = hotplug_vm_list_ops(vm);
    gboolean any = FALSE;

    for (guint i = 0; i < ops->len; i++) {
        HotplugOp *op = ops->pdata[i];
        if (op->confirm == HOTPLUG_CONFIRM_PLUG) {
            op->confirm_ticket = ++vm->confirm_counter;
            any = TRUE;
            continue;
        }
        if (op->action != HOTPLUG_ACTION_UNPLUG || op->state == HOTPLUG_OP_CLEANUP)
            continue;
        if (op->confirm < HOTPLUG_CONFIRM_PROBE)
            op->confirm = HOTPLUG_CONFIRM_PROBE;
        op->confirm_ticket = ++vm->confirm_counter;
        any = TRUE;
    }
    if (any)
        hotplug_vm_send_confirm(vm);
}

static void
hotplug_vm_conn_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    HotplugVm *vm = opaque;

    if (g_str_equal(ev->name, "DEVICE_DELETED")) {
        hotplug_vm_on_device_deleted(vm, ev);
    } else if (g_str_equal(ev->name, "DEVICE_UNPLUG_GUEST_ERROR") ||
               g_str_equal(ev->name, "MEM_UNPLUG_ERROR")) {
        hotplug_vm_on_guest_error(vm, ev);
    } else if (g_str_equal(ev->name, "ACPI_DEVICE_OST")) {
        hotplug_vm_on_acpi_ost(vm, ev);
    } else if (g_str_equal(ev->name, "RESET")) {
        /* a reset completes pending ACPI PCI unplugs in QEMU */
        hotplug_vm_emit_qemu_event(vm, ev, NULL);
        hotplug_vm_probe_all(vm);
    } else if (g_str_equal(ev->name, "SHUTDOWN")) {
        hotplug_vm_emit_qemu_event(vm, ev, NULL);
        hotplug_vm_gone_all(vm, "QEMU shut down");
    }
}

typedef struct {
    HotplugVmQuery base;
} HotplugTargetQuery;

static void
hotplug_vm_target_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugVm *vm = hotplug_vm_query_end(opaque);
    const char *arch = error ? NULL : qmp_json_get_string(qmp_json_node_object(ret), "arch");

    g_free(opaque);
    if (vm && arch)
        vm->pseries = g_str_equal(arch, "ppc64");
}

/* The target decides which deadline PCI-like unplugs get by default.
 * Asked once per connection, as soon as it is ready (a daemon knows it
 * long before any request); an unplug that comes first asks it ahead of
 * its device_del, whose answer (arming the deadline) comes after it. */
static void
hotplug_vm_ask_target(HotplugVm *vm)
{
    HotplugTargetQuery *q;

    if (vm->target_asked)
        return;
    vm->target_asked = TRUE;
    q = hotplug_vm_query_new(vm, sizeof(HotplugTargetQuery));

    if (!qmp_conn_execute(vm->conn, "query-target", NULL, hotplug_vm_target_cb, q, NULL)) {
        hotplug_vm_query_end(q);
        g_free(q);
    }
}

void
hotplug_vm_end_all(HotplugVm *vm, const char *why)
{
    hotplug_vm_gone_all(vm, why);
}

gboolean
hotplug_vm_is_pseries(HotplugVm *vm)
{
    return vm->pseries;
}

static void
hotplug_vm_conn_state_cb(QmpConn *conn, QmpConnState state, const GError *error,
                         gpointer opaque)
{
    HotplugVm *vm = opaque;

    if (state == QMP_CONN_CLOSED) {
        vm->confirm_inflight = FALSE;
        if (vm->opts.gone_on_close)
            hotplug_vm_gone_all(vm, error ? error->message : "QMP connection closed");
    } else if (state == QMP_CONN_READY) {
        /* QEMU may have changed while we were away */
        g_hash_table_remove_all(vm->prop_cache);
        g_clear_pointer(&vm->topology, hotplug_topology_free);
        vm->topology_asked = FALSE;
        vm->machine_known = vm->machine_asked = FALSE;
        hotplug_vm_ask_machine(vm);
        vm->target_asked = FALSE;
        hotplug_vm_ask_target(vm);
        hotplug_vm_check_instances(vm);
        hotplug_vm_probe_all(vm);
    }
}

/* ---- life cycle ----------------------------------------------------------- */

HotplugVm *
hotplug_vm_new(const char *name, QmpConn *conn, const HotplugVmOptions *opts)
{
    static const QmpConnListener l = {
        .event = hotplug_vm_conn_event_cb,
        .state = hotplug_vm_conn_state_cb,
    };
    HotplugVm *vm = g_new0(HotplugVm, 1);
    TimeoutPolicy defaults;

    vm->name = g_strdup(name);
    vm->conn = qmp_conn_ref(conn);
    if (opts)
        vm->opts = *opts;
    /* a class given no deadline gets its default */
    timeout_policy_init(&defaults);
    for (guint i = 0; i < TIMEOUT_CLASS_COUNT; i++)
        if (!vm->opts.timeouts.ms[i])
            vm->opts.timeouts.ms[i] = defaults.ms[i];
    vm->placement = hotplug_placement_new();
    vm->settle = timeout_deadline_new(qmp_conn_get_base(conn), hotplug_vm_settle_cb, vm);
    vm->ops = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                    (GDestroyNotify)hotplug_op_unref);
    vm->listeners = g_array_new(FALSE, TRUE, sizeof(HotplugListenerEntry));
    vm->prop_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify)hotplug_prop_types_free);
    vm->queries = g_ptr_array_new();
    vm->conn_listener = qmp_conn_add_listener(conn, &l, vm);
    if (qmp_conn_get_state(conn) == QMP_CONN_READY) {
        vm->instance = g_strdup(hotplug_vm_instance(vm));
        hotplug_vm_ask_target(vm);
        hotplug_vm_ask_machine(vm);
    }
    return vm;
}

void
hotplug_vm_free(HotplugVm *vm)
{
    GHashTableIter it;
    gpointer value;

    if (!vm)
        return;
    qmp_conn_remove_listener(vm->conn, vm->conn_listener);
    for (guint i = 0; i < vm->queries->len; i++)
        ((HotplugVmQuery *)vm->queries->pdata[i])->vm = NULL;
    g_ptr_array_unref(vm->queries);
    g_hash_table_iter_init(&it, vm->ops);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        HotplugOp *op = value;
        hotplug_vm_stop_timers(op);
        op->vm = NULL;
    }
    g_hash_table_unref(vm->ops);
    g_array_unref(vm->listeners);
    g_hash_table_unref(vm->prop_cache);
    hotplug_topology_free(vm->topology);
    hotplug_placement_free(vm->placement);
    timeout_deadline_free(vm->settle);
    qmp_conn_unref(vm->conn);
    g_free(vm->instance);
    g_free(vm->name);
    g_free(vm);
}

const char *
hotplug_vm_get_name(HotplugVm *vm)
{
    return vm->name;
}

QmpConn *
hotplug_vm_get_conn(HotplugVm *vm)
{
    return vm->conn;
}

HotplugPlacement *
hotplug_vm_get_placement(HotplugVm *vm)
{
    return vm->placement;
}

HotplugTopology *
hotplug_vm_get_topology(HotplugVm *vm)
{
    return vm->topology;
}

HotplugPropTypes *
hotplug_vm_get_prop_types(HotplugVm *vm, const char *driver)
{
    return g_hash_table_lookup(vm->prop_cache, driver);
}

void
hotplug_vm_set_prop_types(HotplugVm *vm, const char *driver, HotplugPropTypes *types)
{
    g_hash_table_insert(vm->prop_cache, g_strdup(driver), types);
}

void
hotplug_vm_set_topology(HotplugVm *vm, HotplugTopology *t)
{
    hotplug_topology_free(vm->topology);
    vm->topology = t;
    hotplug_vm_resolve_all(vm, TRUE);
}

gboolean
hotplug_vm_get_machine(HotplugVm *vm, HotplugMachine *out)
{
    if (vm->machine_known && out)
        *out = vm->machine;
    return vm->machine_known;
}

void
hotplug_vm_set_machine(HotplugVm *vm, HotplugMachine m)
{
    vm->machine = m;
    vm->machine_known = TRUE;
}
