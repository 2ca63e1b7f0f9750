/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What one QEMU can do, probed once per connection. */
#pragma once

#include <glib.h>

#include "qmp-conn.h"

G_BEGIN_DECLS

typedef struct QmpCaps QmpCaps;

typedef void (*QmpCapsFunc)(QmpConn *conn, QmpCaps *caps /* transfer full, NULL on error */,
                            const GError *error, gpointer opaque);

/* Ask query-version, query-qmp-schema, query-status, the machine type and
 * query-hotpluggable-cpus (concurrently), then call done once. */
gboolean qmp_caps_probe(QmpConn *conn, QmpCapsFunc done, gpointer opaque, GError **error);

/* Parse pieces directly (tests, and a later refresh). */
QmpCaps *qmp_caps_new(void);
void qmp_caps_set_schema(QmpCaps *caps, JsonNode *schema_ret);
gboolean qmp_caps_has_command(const QmpCaps *caps, const char *name);
gboolean qmp_caps_has_event(const QmpCaps *caps, const char *name);

int qmp_caps_version_major(const QmpCaps *caps);
int qmp_caps_version_minor(const QmpCaps *caps);
int qmp_caps_version_micro(const QmpCaps *caps);
const char *qmp_caps_package(const QmpCaps *caps);
const char *qmp_caps_machine_type(const QmpCaps *caps); /* "pc-i440fx-7.2" */
const char *qmp_caps_run_state(const QmpCaps *caps);    /* "running", "prelaunch" ... */
gboolean qmp_caps_cpu_hotplug(const QmpCaps *caps);
/* Hotplug capability names, sorted: "cpu-hotplug", "memory-hotplug",
 * "device-unplug-guest-error-event", ... (NULL-terminated, owned by caps) */
const char *const *qmp_caps_list(QmpCaps *caps);
/* Everything above as one JSON object (for --json and the daemon). */
JsonNode *qmp_caps_to_json(QmpCaps *caps);

void qmp_caps_free(QmpCaps *caps);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpCaps, qmp_caps_free)

G_END_DECLS
