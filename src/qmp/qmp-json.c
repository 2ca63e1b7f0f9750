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
