/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Type-checked reads of JSON that came from a peer: a member of the wrong
 * type reads as absent, never as a critical warning. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

const char *qmp_json_get_string(JsonObject *obj, const char *name);
gboolean qmp_json_get_int(JsonObject *obj, const char *name, gint64 *out);
gint64 qmp_json_get_int_default(JsonObject *obj, const char *name, gint64 def);
gboolean qmp_json_get_bool_default(JsonObject *obj, const char *name, gboolean def);
JsonObject *qmp_json_get_object(JsonObject *obj, const char *name);
JsonArray *qmp_json_get_array(JsonObject *obj, const char *name);
/* The object a node holds, or NULL. */
JsonObject *qmp_json_node_object(JsonNode *node);
JsonArray *qmp_json_node_array(JsonNode *node);
const char *qmp_json_node_string(JsonNode *node);
/* A copy that shares nothing with node (json_node_copy shares the objects
 * and arrays inside). */
JsonNode *qmp_json_deep_copy(JsonNode *node);

G_END_DECLS
