/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One hotplug operation: a plug or an unplug of one device of one VM,
 * from request to outcome. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-outcome.h"

G_BEGIN_DECLS

typedef struct HotplugOp HotplugOp;

typedef enum {
    HOTPLUG_KIND_DEVICE,
    HOTPLUG_KIND_VCPU,
    HOTPLUG_KIND_MEMORY,
    HOTPLUG_KIND_DISK,
    HOTPLUG_KIND_HOSTDEV,
} HotplugKind;

typedef enum {
    HOTPLUG_ACTION_PLUG,
    HOTPLUG_ACTION_UNPLUG,
} HotplugAction;

typedef enum {
    HOTPLUG_OP_SENDING,     /* commands on the wire, no answer yet */
    HOTPLUG_OP_WAITING,     /* QEMU accepted the unplug; waiting for it to happen */
    HOTPLUG_OP_RETRY_WAIT,  /* an attempt ended; the next one is scheduled */
    HOTPLUG_OP_CLEANUP,     /* device gone; removing its backends */
    HOTPLUG_OP_TRACKED,     /* ended not-deleted/guest-error; still watched */
    HOTPLUG_OP_DONE,
} HotplugOpState;

const char *hotplug_kind_name(HotplugKind k);
gboolean hotplug_kind_from_name(const char *name, HotplugKind *out);
const char *hotplug_action_name(HotplugAction a);
const char *hotplug_op_state_name(HotplugOpState s);

/* Operation ids come from one process-wide counter; a daemon restoring
 * its journal sets the next one. */
void hotplug_op_set_next_id(guint64 next);

HotplugOp *hotplug_op_ref(HotplugOp *op);
void hotplug_op_unref(HotplugOp *op);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugOp, hotplug_op_unref)

guint64 hotplug_op_get_id(const HotplugOp *op);
const char *hotplug_op_get_vm_name(const HotplugOp *op);
const char *hotplug_op_get_device(const HotplugOp *op);
HotplugKind hotplug_op_get_kind(const HotplugOp *op);
HotplugAction hotplug_op_get_action(const HotplugOp *op);
HotplugOpState hotplug_op_get_state(const HotplugOp *op);
/* Final outcome (NONE while undecided; DELETED_LATE after a late finish). */
HotplugOutcome hotplug_op_get_outcome(const HotplugOp *op);
/* The outcome of the latest attempt, final or not. */
HotplugOutcome hotplug_op_get_attempt_outcome(const HotplugOp *op);
guint hotplug_op_get_attempts(const HotplugOp *op);
guint hotplug_op_get_max_attempts(const HotplugOp *op);
gint64 hotplug_op_get_elapsed_ms(const HotplugOp *op);
/* Milliseconds to the current deadline, -1 when none is armed. */
gint64 hotplug_op_get_remaining_ms(const HotplugOp *op);
guint64 hotplug_op_get_timeout_ms(const HotplugOp *op);
/* Wall-clock time (g_get_real_time) of the request, and of the current
 * deadline (-1 when none is armed): what a journal keeps across restarts. */
gint64 hotplug_op_get_start_wall_us(const HotplugOp *op);
gint64 hotplug_op_get_deadline_wall_us(const HotplugOp *op);
guint64 hotplug_op_get_retry_interval_ms(const HotplugOp *op);
/* The cleanup steps (HotplugStep) of an unplug, or NULL, and how many of
 * them are done (the next one may be on the wire). */
GPtrArray *hotplug_op_get_cleanup(const HotplugOp *op);
guint hotplug_op_get_cleanup_done(const HotplugOp *op);
/* The steps (HotplugStep) of a plug, or NULL, and how many of them may
 * have reached QEMU: what a restart undoes when the plug did not finish. */
GPtrArray *hotplug_op_get_steps(const HotplugOp *op);
guint hotplug_op_get_steps_sent(const HotplugOp *op);
/* The QEMU instance (hotplug_vm_instance) its commands went to, or NULL. */
const char *hotplug_op_get_instance(const HotplugOp *op);
/* TRUE when it was taken over from a journal after a restart. */
gboolean hotplug_op_is_adopted(const HotplugOp *op);
/* Milliseconds until the next attempt may go, -1 when none is scheduled. */
gint64 hotplug_op_get_next_attempt_ms(const HotplugOp *op);
/* QEMU's error (class kept, see qmp_error_class_name), or a local one. */
const GError *hotplug_op_get_error(const HotplugOp *op);
/* What was seen, for people: "ACPI_DEVICE_OST status 0x82", ... */
const char *hotplug_op_get_detail(const HotplugOp *op);
gboolean hotplug_op_is_final(const HotplugOp *op);

/* The SPEC result object: vm, device, kind, action, outcome, attempts,
 * elapsed_ms, op, and error {class, desc} / detail when present. */
JsonNode *hotplug_op_to_json(const HotplugOp *op);
/* The same object as JSON text, appended to out. */
void hotplug_op_write_json(const HotplugOp *op, GString *out);

G_END_DECLS
