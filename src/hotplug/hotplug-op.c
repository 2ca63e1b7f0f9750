/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One hotplug operation: its kinds, actions and states by name, its
 * counters and timing, and its SPEC result object. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <stdarg.h>

#include "hotplug-priv.h"
#include "qmp-error.h"
#include "qmp-json.h"

static guint64 hotplug_op_next_id = 1;

void
hotplug_op_set_next_id(guint64 next)
{
    hotplug_op_next_id = next;
}

static const char *const hotplug_kind_names[] = {
    [HOTPLUG_KIND_DEVICE] = "device",   [HOTPLUG_KIND_VCPU] = "vcpu",
    [HOTPLUG_KIND_MEMORY] = "memory",   [HOTPLUG_KIND_DISK] = "disk",
    [HOTPLUG_KIND_HOSTDEV] = "hostdev",
};

const char *
hotplug_kind_name(HotplugKind k)
{
    return k < G_N_ELEMENTS(hotplug_kind_names) ? hotplug_kind_names[k] : "unknown";
}

gboolean
hotplug_kind_from_name(const char *name, HotplugKind *out)
{
    for (guint i = 0; i < G_N_ELEMENTS(hotplug_kind_names); i++) {
        if (g_str_equal(name, hotplug_kind_names[i])) {
            *out = i;
            return TRUE;
        }
    }
    return FALSE;
}

const char *
hotplug_action_name(HotplugAction a)
{
    return a == HOTPLUG_ACTION_PLUG ? "plug" : "unplug";
}

const char *
hotplug_op_state_name(HotplugOpState s)
{
    switch (s) {
    case HOTPLUG_OP_SENDING:
        return "sending";
    case HOTPLUG_OP_WAITING:
        return "waiting";
    case HOTPLUG_OP_RETRY_WAIT:
        return "retry-wait";
    case HOTPLUG_OP_CLEANUP:
        return "cleanup";
    case HOTPLUG_OP_TRACKED:
        return "tracked";
    case HOTPLUG_OP_DONE:
        return "done";
    }
    return "unknown";
}

HotplugOp *
hotplug_op_new(struct HotplugVm *vm, const char *vm_name, HotplugKind kind,
               HotplugAction action, const char *device)
{
    HotplugOp *op = g_new0(HotplugOp, 1);

    op->ref = 1;
    op->id = hotplug_op_next_id++;
    op->vm = vm;
    op->vm_name = g_strdup(vm_name);
    op->device = g_strdup(device);
    op->kind = kind;
    op->action = action;
    op->state = HOTPLUG_OP_SENDING;
    op->max_attempts = 1;
    op->start_us = g_get_monotonic_time();
    op->start_wall_us = g_get_real_time();
    op->end_us = -1;
    return op;
}

HotplugOp *
hotplug_op_ref(HotplugOp *op)
{
    op->ref++;
    return op;
}

void
hotplug_op_unref(HotplugOp *op)
{
    if (!op || --op->ref > 0)
        return;
    timeout_deadline_free(op->deadline);
    timeout_deadline_free(op->retry);
    timeout_deadline_free(op->repress);
    g_clear_error(&op->error);
    if (op->steps)
        g_ptr_array_unref(op->steps);
    if (op->cleanup)
        g_ptr_array_unref(op->cleanup);
    g_free(op->detail);
    g_free(op->instance);
    g_free(op->device);
    g_free(op->vm_name);
    g_free(op);
}

void
hotplug_op_set_detail(HotplugOp *op, const char *fmt, ...)
{
    va_list ap;

    g_free(op->detail);
    va_start(ap, fmt);
    op->detail = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

void
hotplug_op_set_error(HotplugOp *op, const GError *error)
{
    g_clear_error(&op->error);
    if (error)
        op->error = g_error_copy(error);
}

guint64 hotplug_op_get_id(const HotplugOp *op) { return op->id; }
const char *hotplug_op_get_vm_name(const HotplugOp *op) { return op->vm_name; }
const char *hotplug_op_get_device(const HotplugOp *op) { return op->device; }
HotplugKind hotplug_op_get_kind(const HotplugOp *op) { return op->kind; }
HotplugAction hotplug_op_get_action(const HotplugOp *op) { return op->action; }
HotplugOpState hotplug_op_get_state(const HotplugOp *op) { return op->state; }
HotplugOutcome hotplug_op_get_outcome(const HotplugOp *op) { return op->outcome; }
HotplugOutcome hotplug_op_get_attempt_outcome(const HotplugOp *op) { return op->attempt_outcome; }
guint hotplug_op_get_attempts(const HotplugOp *op) { return op->attempts; }
guint hotplug_op_get_max_attempts(const HotplugOp *op) { return op->max_attempts; }
guint64 hotplug_op_get_timeout_ms(const HotplugOp *op) { return op->timeout_ms; }
const GError *hotplug_op_get_error(const HotplugOp *op) { return op->error; }
const char *hotplug_op_get_detail(const HotplugOp *op) { return op->detail; }

gboolean
hotplug_op_is_final(const HotplugOp *op)
{
    return op->outcome != HOTPLUG_OUTCOME_NONE;
}

gint64
hotplug_op_get_elapsed_ms(const HotplugOp *op)
{
    gint64 end = op->end_us >= 0 ? op->end_us : g_get_monotonic_time();
    return (end - op->start_us) / 1000;
}

gint64
hotplug_op_get_remaining_ms(const HotplugOp *op)
{
    return op->deadline ? timeout_deadline_remaining_ms(op->deadline) : -1;
}

gint64
hotplug_op_get_start_wall_us(const HotplugOp *op)
{
    return op->start_wall_us;
}

guint64
hotplug_op_get_retry_interval_ms(const HotplugOp *op)
{
    return op->retry_interval_ms;
}

gint64
hotplug_op_get_deadline_wall_us(const HotplugOp *op)
{
    gint64 when = op->deadline ? timeout_deadline_when(op->deadline) : -1;
    return when < 0 ? -1 : g_get_real_time() + (when - g_get_monotonic_time());
}

GPtrArray *
hotplug_op_get_cleanup(const HotplugOp *op)
{
    return op->cleanup;
}

guint
hotplug_op_get_cleanup_done(const HotplugOp *op)
{
    return op->cleanup_done;
}

GPtrArray *
hotplug_op_get_steps(const HotplugOp *op)
{
    return op->steps;
}

guint
hotplug_op_get_steps_sent(const HotplugOp *op)
{
    return op->steps_sent;
}

const char *
hotplug_op_get_instance(const HotplugOp *op)
{
    return op->instance;
}

gboolean
hotplug_op_is_adopted(const HotplugOp *op)
{
    return op->adopted;
}

gint64
hotplug_op_get_next_attempt_ms(const HotplugOp *op)
{
    return op->retry ? timeout_deadline_remaining_ms(op->retry) : -1;
}

/* The class an error of ours reads as in a reply (QEMU's own when it
 * came from QEMU). */
static const char *
hotplug_op_error_class(const GError *error)
{
    const char *cls = qmp_error_class_name(error);

    if (cls)
        return cls;
    if (error->domain != HOTPLUG_ERROR)
        return "LocalError";
    switch (error->code) {
    case HOTPLUG_ERROR_BAD_PROPERTY:
        return "InvalidProperty";
    case HOTPLUG_ERROR_STORAGE:
        return "StorageError";
    /* refusals before anything was sent (placement) */
    case HOTPLUG_ERROR_BUSY:
        return "Busy";
    case HOTPLUG_ERROR_UNSUPPORTED:
        return "Unsupported";
    case HOTPLUG_ERROR_INVALID:
        return "InvalidArgument";
    default:
        return "LocalError";
    }
}

/* A string as JSON; what is not UTF-8 (a message from the host, say) is
 * made so: the object goes out as text and is read back by a strict reader */
static void
hotplug_op_write_text(GString *out, const char *s)
{
    g_autofree char *valid = NULL;

    if (!g_utf8_validate(s, -1, NULL))
        s = valid = g_utf8_make_valid(s, -1);
    qmp_json_write_string(out, s);
}

void
hotplug_op_write_json(const HotplugOp *op, GString *out)
{
    HotplugOutcome shown = op->outcome != HOTPLUG_OUTCOME_NONE ? op->outcome : op->attempt_outcome;
    const char *const strs[][2] = {
        {"vm", op->vm_name},
        {"device", op->device},
        {"kind", hotplug_kind_name(op->kind)},
        {"action", hotplug_action_name(op->action)},
        {"outcome", hotplug_outcome_name(shown)},
        {"state", hotplug_op_state_name(op->state)},
    };

    qmp_json_append_lit(out, "{\"op\":");
    qmp_json_write_int(out, (gint64)op->id);
    for (guint i = 0; i < G_N_ELEMENTS(strs); i++) {
        qmp_json_append_name(out, strs[i][0]);
        if (strs[i][1])
            hotplug_op_write_text(out, strs[i][1]);
        else
            qmp_json_append_lit(out, "null");
    }
    qmp_json_append_name(out, "attempts");
    qmp_json_write_int(out, op->attempts);
    qmp_json_append_name(out, "max_attempts");
    qmp_json_write_int(out, op->max_attempts);
    qmp_json_append_name(out, "elapsed_ms");
    qmp_json_write_int(out, hotplug_op_get_elapsed_ms(op));
    if (op->action == HOTPLUG_ACTION_UNPLUG) {
        qmp_json_append_name(out, "timeout_ms");
        qmp_json_write_int(out, op->timeout_ms);
    }
    /* once a deadline fired: how late (for benchmarks) */
    if (op->deadline && timeout_deadline_last_lateness_us(op->deadline) > 0) {
        qmp_json_append_name(out, "deadline_late_us");
        qmp_json_write_int(out, timeout_deadline_last_lateness_us(op->deadline));
    }
    if (op->error) {
        qmp_json_append_lit(out, ",\"error\":{\"class\":");
        qmp_json_write_string(out, hotplug_op_error_class(op->error));
        qmp_json_append_lit(out, ",\"desc\":");
        hotplug_op_write_text(out, op->error->message);
        g_string_append_c(out, '}');
    }
    if (op->detail) {
        qmp_json_append_name(out, "detail");
        hotplug_op_write_text(out, op->detail);
    }
    g_string_append_c(out, '}');
}

JsonNode *
hotplug_op_to_json(const HotplugOp *op)
{
    g_autoptr(GString) text = g_string_sized_new(320);
    g_autoptr(GError) error = NULL;
    JsonNode *n;

    /* one writer of an op's members: the object is read back from it */
    hotplug_op_write_json(op, text);
    n = qmp_json_parse(text->str, text->len, 4, &error);
    if (!n) {
        /* cannot be (strings are made UTF-8 and escaped): a bug, not a crash */
        g_critical("op %" G_GUINT64_FORMAT ": its JSON is not JSON: %s", op->id, error->message);
        n = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(n, json_object_new());
    }
    return n;
}
