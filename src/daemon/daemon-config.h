/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd.conf: where state lives, the control socket, defaults, VMs. */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "hotplug-vm.h"
#include "timeout.h"

G_BEGIN_DECLS

/* Floors and ceilings of configuration values.  A LOG event carries one
 * record, and a record can hold a QEMU event's data as QEMU sent it: the
 * subscriber buffer holds at least one such line of the control protocol. */
#define DAEMON_CONFIG_MAX_SECONDS 86400u
#define DAEMON_CONFIG_MIN_SUBSCRIBER_BUFFER (1u << 20)
#define DAEMON_CONFIG_MIN_SEGMENT_SIZE 512u
#define DAEMON_CONFIG_MIN_LOG_SIZE 1024u

typedef struct {
    char *state_dir;
    char *socket_path;
    guint socket_mode;        /* default 0600 */
    char *socket_group;       /* NULL: none (then 0660 makes sense) */
    char *watch_dir;          /* NULL: no watched directory */
    guint64 log_max_bytes;    /* event log retention */
    guint64 log_segment_bytes;
    gsize subscriber_buffer;  /* bytes a slow subscriber may lag */
    guint max_clients;        /* control clients at once; 0: CONTROL_DEFAULT_MAX_CLIENTS */
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
