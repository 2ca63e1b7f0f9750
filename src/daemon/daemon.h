/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd: the service, its durable event log and journal, the control
 * socket, and the VMs from the config, the runtime and a watched directory. */
#pragma once

#include <event2/event.h>
#include <glib.h>

#include "daemon-config.h"

G_BEGIN_DECLS

typedef struct Daemon Daemon;

/* Take the state directory (refusing a second daemon on it), open the log
 * and journal, listen on the control socket, register the VMs and take
 * over the operations a previous run left open.  cfg is taken;
 * config_path (may be NULL) is re-read on SIGHUP. */
Daemon *daemon_new(struct event_base *base, DaemonConfig *cfg, const char *config_path,
                   GError **error);
/* Run until SIGTERM/SIGINT; returns the exit status. */
int daemon_run(Daemon *d);
/* Ask daemon_run to return (as SIGTERM does). */
void daemon_stop(Daemon *d);
void daemon_free(Daemon *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Daemon, daemon_free)

/* Whether informational messages (each added or deleted outcome) are
 * logged at all (hotplugd -v); FALSE by default. */
void daemon_set_info_logging(gboolean on);

/* Re-read the config file: VMs added or removed, nothing else touched. */
gboolean daemon_reload(Daemon *d, GError **error);

G_END_DECLS
