/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Operation outcomes by name and their exit codes; the HOTPLUG_ERROR
 * domain. */
#include "config.h"

#include "hotplug-outcome.h"

G_DEFINE_QUARK(hotplug-error-quark, hotplug_error)

static const char *const hotplug_outcome_names[] = {
    [HOTPLUG_OUTCOME_NONE] = "pending",
    [HOTPLUG_OUTCOME_ADDED] = "added",
    [HOTPLUG_OUTCOME_DELETED] = "deleted",
    [HOTPLUG_OUTCOME_GUEST_ERROR] = "guest-error",
    [HOTPLUG_OUTCOME_NOT_DELETED] = "not-deleted",
    [HOTPLUG_OUTCOME_REJECTED] = "rejected",
    [HOTPLUG_OUTCOME_VM_GONE] = "vm-gone",
    [HOTPLUG_OUTCOME_DELETED_LATE] = "deleted-late",
};

const char *
hotplug_outcome_name(HotplugOutcome o)
{
    return o < G_N_ELEMENTS(hotplug_outcome_names) ? hotplug_outcome_names[o] : "unknown";
}

gboolean
hotplug_outcome_from_name(const char *name, HotplugOutcome *out)
{
    for (guint i = 0; i < G_N_ELEMENTS(hotplug_outcome_names); i++) {
        if (g_str_equal(name, hotplug_outcome_names[i])) {
            *out = i;
            return TRUE;
        }
    }
    return FALSE;
}

int
hotplug_outcome_exit_code(HotplugOutcome o)
{
    switch (o) {
    case HOTPLUG_OUTCOME_ADDED:
    case HOTPLUG_OUTCOME_DELETED:
    case HOTPLUG_OUTCOME_DELETED_LATE:
        return 0;
    case HOTPLUG_OUTCOME_REJECTED:
        return 3;
    case HOTPLUG_OUTCOME_GUEST_ERROR:
        return 4;
    case HOTPLUG_OUTCOME_NOT_DELETED:
        return 5;
    case HOTPLUG_OUTCOME_VM_GONE:
        return 6;
    case HOTPLUG_OUTCOME_NONE:
        break;
    }
    return 1;
}
