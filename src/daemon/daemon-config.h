/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd.conf: where state lives, the control socket, defaults, VMs. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "hotplug-vm.h"
#include "timeout.h"

G_BEGIN_DECLS

typedef struct {
    char *state_dir;
    char *socket_path;
    guint socket_mode;        /* default 0600 */
    char *socket_group;       /* NULL: none (then 0660 makes sense) */
    char *watch_dir;          /* NULL: no watched directory */
    guint64 log_max_bytes;    /* event log retention */
    guint64 log_segment_bytes;
    gsize subscriber_buffer;  /* bytes a slow subscriber may lag */
    TimeoutPolicy timeouts;
    HotplugUnplugOptions unplug;  /* default retry policy */
    GHashTable *vms;          /* [vm NAME] qmp=PATH: name -> path */
} DaemonConfig;

DaemonConfig *daemon_config_new_defaults(void);
/* Read FILE (all keys optional); unknown groups or keys are errors, so a
 * typo never passes silently. */
DaemonConfig *daemon_config_load(const char *path, GError **error);
void daemon_config_free(DaemonConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DaemonConfig, daemon_config_free)

/* The defaults for the state directory and control socket, for root and
 * for others ($XDG_RUNTIME_DIR, $XDG_STATE_HOME). */
char *daemon_default_state_dir(void);
char *daemon_default_socket(void);

G_END_DECLS
