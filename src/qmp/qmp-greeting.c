/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QEMU's QMP greeting: its version and capabilities. */
#define G_LOG_DOMAIN "qmp"
#include "config.h"

#include "qmp-error.h"
#include "qmp-greeting.h"
#include "qmp-json.h"

void
qmp_greeting_free(QmpGreeting *g)
{
    if (!g)
        return;
    g_free(g->package);
    g_strfreev(g->capabilities);
    g_free(g);
}

QmpGreeting *
qmp_greeting_parse(JsonObject *qmp, GError **error)
{
    g_autoptr(QmpGreeting) g = g_new0(QmpGreeting, 1);
    JsonObject *version, *qemu;
    JsonArray *caps;
    GPtrArray *list;

    version = qmp_json_get_object(qmp, "version");
    qemu = qmp_json_get_object(version, "qemu");
    if (!qemu) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP greeting has no version.qemu");
        return NULL;
    }
    g->major = (int)qmp_json_get_int_default(qemu, "major", -1);
    g->minor = (int)qmp_json_get_int_default(qemu, "minor", -1);
    g->micro = (int)qmp_json_get_int_default(qemu, "micro", -1);
    if (g->major < 0 || g->minor < 0 || g->micro < 0) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP greeting has a bad version");
        return NULL;
    }
    g->package = g_strdup(qmp_json_get_string(version, "package") ?: "");

    list = g_ptr_array_new();
    caps = qmp_json_get_array(qmp, "capabilities");
    for (guint i = 0; caps && i < json_array_get_length(caps); i++) {
        const char *cap = qmp_json_node_string(json_array_get_element(caps, i));
        if (cap)
            g_ptr_array_add(list, g_strdup(cap));
    }
    g_ptr_array_add(list, NULL);
    g->capabilities = (char **)g_ptr_array_free(list, FALSE);
    return g_steal_pointer(&g);
}

gboolean
qmp_greeting_has_capability(const QmpGreeting *g, const char *cap)
{
    return g && g_strv_contains((const char *const *)g->capabilities, cap);
}

gboolean
qmp_greeting_version_at_least(const QmpGreeting *g, int major, int minor)
{
    return g && (g->major > major || (g->major == major && g->minor >= minor));
}
