/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The engine's internals: the fields of an operation, which the VM's
 * engine (hotplug-vm.c) and the composite kinds (hotplug-disk.c,
 * hotplug-hostdev.c) drive.  The operation knows its VM only as a pointer:
 * hotplug-op.c needs nothing of the VM, so the dependency runs one way. */
#pragma once

#include "hotplug-op.h"
#include "timeout.h"

struct HotplugVm;

typedef enum {
    HOTPLUG_CONFIRM_NONE,
    HOTPLUG_CONFIRM_PROBE,        /* a hint it may be gone: check, keep waiting if not */
    HOTPLUG_CONFIRM_DEADLINE,     /* the deadline passed */
    HOTPLUG_CONFIRM_GUEST_ERROR,  /* the guest refused */
    HOTPLUG_CONFIRM_PLUG,         /* a plug adopted after a restart: present or not? */
} HotplugConfirm;

struct HotplugOp {
    gint ref;
    guint64 id;
    struct HotplugVm *vm;  /* NULL once the VM is freed */
    char *vm_name;
    char *device;
    HotplugKind kind;
    HotplugAction action;
    HotplugOpState state;
    HotplugOutcome outcome;
    HotplugOutcome attempt_outcome;
    guint attempts;
    guint max_attempts;
    guint timeout_ms;
    gboolean timeout_by_class;  /* no timeout given: the class default applies */
    guint retry_interval_ms;
    gint64 start_us;
    gint64 start_wall_us;       /* g_get_real_time() at the request */
    gint64 end_us;
    gint64 last_attempt_us;
    TimeoutDeadline *deadline;  /* the unplug deadline */
    TimeoutDeadline *retry;     /* when the next attempt may go */
    GError *error;
    char *detail;
    HotplugConfirm confirm;     /* a confirmation asked for */
    guint64 confirm_ticket;     /* ... at this point of the VM's counter */
    GPtrArray *steps;           /* plug: HotplugStep to run */
    guint steps_done;
    GPtrArray *cleanup;         /* unplug: HotplugStep after the device is gone */
    guint cleanup_done;
    gboolean was_tracked;       /* superseded a tracked unplug: QEMU had the device */
    TimeoutDeadline *repress;   /* native PCIe: press again once QEMU lets it through */
    int mech;                   /* HotplugMechanism of the device's slot */
    gboolean mech_known;
    gint64 armed_at_us;         /* when the current attempt's deadline was armed */
};

HotplugOp *hotplug_op_new(struct HotplugVm *vm, const char *vm_name, HotplugKind kind,
                          HotplugAction action, const char *device);
void hotplug_op_set_detail(HotplugOp *op, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void hotplug_op_set_error(HotplugOp *op, const GError *error);
