/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Type-checked reads of JSON that came from a peer, and a deep copy. */
#include "config.h"

#include "qmp-json.h"

JsonObject *
qmp_json_node_object(JsonNode *node)
{
    return node && JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
}

JsonArray *
qmp_json_node_array(JsonNode *node)
{
    return node && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node) : NULL;
}

const char *
qmp_json_node_string(JsonNode *node)
{
    if (node && JSON_NODE_HOLDS_VALUE(node) && json_node_get_value_type(node) == G_TYPE_STRING)
        return json_node_get_string(node);
    return NULL;
}

const char *
qmp_json_get_string(JsonObject *obj, const char *name)
{
    return obj ? qmp_json_node_string(json_object_get_member(obj, name)) : NULL;
}

gboolean
qmp_json_get_int(JsonObject *obj, const char *name, gint64 *out)
{
    JsonNode *n = obj ? json_object_get_member(obj, name) : NULL;

    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
        return FALSE;
    *out = json_node_get_int(n);
    return TRUE;
}

gint64
qmp_json_get_int_default(JsonObject *obj, const char *name, gint64 def)
{
    gint64 v;
    return qmp_json_get_int(obj, name, &v) ? v : def;
}

gboolean
qmp_json_get_bool_default(JsonObject *obj, const char *name, gboolean def)
{
    JsonNode *n = obj ? json_object_get_member(obj, name) : NULL;

    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
        return def;
    return json_node_get_boolean(n);
}

JsonObject *
qmp_json_get_object(JsonObject *obj, const char *name)
{
    return obj ? qmp_json_node_object(json_object_get_member(obj, name)) : NULL;
}

JsonArray *
qmp_json_get_array(JsonObject *obj, const char *name)
{
    return obj ? qmp_json_node_array(json_object_get_member(obj, name)) : NULL;
}

JsonNode *
qmp_json_deep_copy(JsonNode *node)
{
    if (JSON_NODE_HOLDS_OBJECT(node)) {
        JsonObject *src = json_node_get_object(node);
        g_autoptr(JsonObject) dst = json_object_new();
        g_autoptr(GList) names = src ? json_object_get_members(src) : NULL;

        for (GList *l = names; l; l = l->next)
            json_object_set_member(dst, l->data,
                                   qmp_json_deep_copy(json_object_get_member(src, l->data)));
        return json_node_init_object(json_node_alloc(), dst);
    }
    if (JSON_NODE_HOLDS_ARRAY(node)) {
        JsonArray *src = json_node_get_array(node);
        guint n = src ? json_array_get_length(src) : 0;
        g_autoptr(JsonArray) dst = json_array_sized_new(n);

        for (guint i = 0; i < n; i++)
            json_array_add_element(dst, qmp_json_deep_copy(json_array_get_element(src, i)));
        return json_node_init_array(json_node_alloc(), dst);
    }
    return json_node_copy(node);
}
