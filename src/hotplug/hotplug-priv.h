/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internals shared by hotplug-op.c and hotplug-vm.c. */
#pragma once

#include "hotplug-op.h"
#include "hotplug-vm.h"
#include "timeout.h"

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
    HotplugVm *vm;  /* NULL once the VM is freed */
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

HotplugOp *hotplug_op_new(HotplugVm *vm, HotplugKind kind, HotplugAction action,
                          const char *device);
void hotplug_op_set_detail(HotplugOp *op, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void hotplug_op_set_error(HotplugOp *op, const GError *error);

/* Per-VM placement state (hotplug-topology.c): places reserved for plugs
 * under way. */
typedef struct HotplugPlacement HotplugPlacement;
typedef struct HotplugTopology HotplugTopology;
HotplugPlacement *hotplug_placement_new(void);
void hotplug_placement_free(HotplugPlacement *p);
/* The plug of device ended: its place counts as taken for topology
 * queries that began before now, free (or occupied, per QEMU) after. */
void hotplug_placement_settle(HotplugPlacement *p, const char *device);
HotplugPlacement *hotplug_vm_get_placement(HotplugVm *vm);
/* A fresh topology (taken): cached, and pending unplugs learn their
 * mechanism from it. */
void hotplug_vm_set_topology(HotplugVm *vm, HotplugTopology *t);

/* Anything in flight that points back at the VM: the first member of a
 * query's state; the VM cuts it loose when freed. */
typedef struct {
    HotplugVm *vm;  /* NULL once the VM is freed */
} HotplugVmQuery;

/* A zeroed query of size bytes (at least a HotplugVmQuery) on vm's list. */
gpointer hotplug_vm_query_new(HotplugVm *vm, gsize size);
/* The query's VM (NULL if freed); the query leaves the VM's list. */
HotplugVm *hotplug_vm_query_end(gpointer query);
