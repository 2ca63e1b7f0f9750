/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The facts QEMU tells in its greeting. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct {
    int major, minor, micro;
    char *package;        /* e.g. "Debian 1:7.2+dfsg-7+deb12u18" */
    char **capabilities;  /* e.g. {"oob", NULL} */
} QmpGreeting;

QmpGreeting *qmp_greeting_parse(JsonObject *qmp, GError **error);
gboolean qmp_greeting_has_capability(const QmpGreeting *g, const char *cap);
/* TRUE when the QEMU version is >= major.minor */
gboolean qmp_greeting_version_at_least(const QmpGreeting *g, int major, int minor);
void qmp_greeting_free(QmpGreeting *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpGreeting, qmp_greeting_free)

G_END_DECLS
