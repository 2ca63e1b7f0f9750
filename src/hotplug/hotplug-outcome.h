/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What an operation ended in (SPEC "Outcomes"), and the exit code of each. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define HOTPLUG_ERROR (hotplug_error_quark())
GQuark hotplug_error_quark(void);

typedef enum {
    HOTPLUG_ERROR_FAILED,        /* anything else */
    HOTPLUG_ERROR_INVALID,       /* bad input from the user (usage-level) */
    HOTPLUG_ERROR_BAD_PROPERTY,  /* a property the driver does not have */
    HOTPLUG_ERROR_BUSY,          /* an operation on that device is under way */
    HOTPLUG_ERROR_UNSUPPORTED,   /* this QEMU or machine cannot do it */
    HOTPLUG_ERROR_VM_GONE,       /* the VM's QMP connection is gone */
    HOTPLUG_ERROR_NOT_FOUND,     /* no such VM, command or operation */
    HOTPLUG_ERROR_STORAGE,       /* the daemon cannot write its state (disk full, I/O error) */
} HotplugErrorCode;

typedef enum {
    HOTPLUG_OUTCOME_NONE,         /* not decided yet */
    HOTPLUG_OUTCOME_ADDED,
    HOTPLUG_OUTCOME_DELETED,
    HOTPLUG_OUTCOME_GUEST_ERROR,
    HOTPLUG_OUTCOME_NOT_DELETED,
    HOTPLUG_OUTCOME_REJECTED,
    HOTPLUG_OUTCOME_VM_GONE,
    HOTPLUG_OUTCOME_DELETED_LATE,
} HotplugOutcome;

/* "deleted", "guest-error", ... ("pending" for NONE) */
const char *hotplug_outcome_name(HotplugOutcome o);
gboolean hotplug_outcome_from_name(const char *name, HotplugOutcome *out);
/* SPEC exit codes: added/deleted/deleted-late 0, rejected 3, guest-error 4,
 * not-deleted 5, vm-gone 6. */
int hotplug_outcome_exit_code(HotplugOutcome o);

G_END_DECLS
