/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One QMP message: a line parsed within depth limits and sorted into
 * greeting, event or reply; a command written as one line. */
#define G_LOG_DOMAIN "qmp"
#include "config.h"

#include <string.h>

#include "qmp-error.h"
#include "qmp-json.h"
#include "qmp-message.h"

void
qmp_message_free(QmpMessage *msg)
{
    if (!msg)
        return;
    if (msg->root)
        json_node_unref(msg->root);
    g_free(msg);
}

static gboolean
qmp_message_read_id(QmpMessage *msg, JsonObject *obj)
{
    JsonNode *id = json_object_get_member(obj, "id");

    if (!id)
        return TRUE;
    msg->has_id = TRUE;
    if (JSON_NODE_HOLDS_VALUE(id) && json_node_get_value_type(id) == G_TYPE_INT64) {
        msg->id_is_int = TRUE;
        msg->id = json_node_get_int(id);
    }
    return TRUE;
}

static gboolean
qmp_message_sort(QmpMessage *msg, GError **error)
{
    JsonObject *obj;
    JsonNode *member;

    if (!JSON_NODE_HOLDS_OBJECT(msg->root)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP message is not a JSON object");
        return FALSE;
    }
    obj = json_node_get_object(msg->root);

    if ((member = json_object_get_member(obj, "return"))) {
        msg->type = QMP_MSG_RETURN;
        msg->ret = member;
        return qmp_message_read_id(msg, obj);
    }
    if ((member = json_object_get_member(obj, "error"))) {
        if (!JSON_NODE_HOLDS_OBJECT(member)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP \"error\" is not an object");
            return FALSE;
        }
        msg->type = QMP_MSG_ERROR;
        msg->error = json_node_get_object(member);
        return qmp_message_read_id(msg, obj);
    }
    if ((member = json_object_get_member(obj, "event"))) {
        JsonNode *data = json_object_get_member(obj, "data");
        JsonNode *ts = json_object_get_member(obj, "timestamp");

        if (!JSON_NODE_HOLDS_VALUE(member) || json_node_get_value_type(member) != G_TYPE_STRING) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP event name is not a string");
            return FALSE;
        }
        msg->type = QMP_MSG_EVENT;
        msg->event = json_node_get_string(member);
        if (data && JSON_NODE_HOLDS_OBJECT(data)) {
            msg->data = json_node_get_object(data);
        } else if (data && !JSON_NODE_HOLDS_NULL(data)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP event %s: data is not an object",
                        msg->event);
            return FALSE;
        } else {
            /* give listeners an object to read from, owned by the root */
            json_object_set_object_member(obj, "data", json_object_new());
            msg->data = json_object_get_object_member(obj, "data");
        }
        msg->timestamp_us = -1;
        if (ts && JSON_NODE_HOLDS_OBJECT(ts)) {
            JsonObject *t = json_node_get_object(ts);
            gint64 s = qmp_json_get_int_default(t, "seconds", -1);
            gint64 us = qmp_json_get_int_default(t, "microseconds", 0);
            /* out of range reads as absent (and must not overflow) */
            if (s >= 0 && s <= (G_MAXINT64 - (G_USEC_PER_SEC - 1)) / G_USEC_PER_SEC && us >= 0 &&
                us < G_USEC_PER_SEC)
                msg->timestamp_us = s * G_USEC_PER_SEC + us;
        }
        return TRUE;
    }
    if ((member = json_object_get_member(obj, "QMP"))) {
        if (!JSON_NODE_HOLDS_OBJECT(member)) {
            g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP greeting is not an object");
            return FALSE;
        }
        msg->type = QMP_MSG_GREETING;
        msg->greeting = json_node_get_object(member);
        return TRUE;
    }
    g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                "QMP message is neither greeting, event nor reply");
    return FALSE;
}

QmpMessage *
qmp_message_parse(const char *line, gsize len, guint max_depth, GError **error)
{
    g_autoptr(QmpMessage) msg = NULL;
    g_autoptr(GError) local = NULL;
    JsonNode *root;

    if (max_depth == 0)
        max_depth = QMP_DEFAULT_MAX_DEPTH;
    if (memchr(line, '\0', len)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP message contains a NUL byte");
        return NULL;
    }
    root = qmp_json_parse(line, len, max_depth, &local);
    if (!root) {
        if (g_error_matches(local, QMP_ERROR, QMP_ERROR_TOO_DEEP))
            g_set_error(error, QMP_ERROR, QMP_ERROR_TOO_DEEP,
                        "QMP message nested deeper than %u levels", max_depth);
        else
            g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "malformed QMP message: %s",
                        local->message);
        return NULL;
    }
    msg = g_new0(QmpMessage, 1);
    msg->root = root;
    if (!qmp_message_sort(msg, error))
        return NULL;
    return g_steal_pointer(&msg);
}

char *
qmp_json_to_string(JsonNode *node)
{
    GString *out = g_string_sized_new(128);

    qmp_json_write_node(out, node);
    return g_string_free(out, FALSE);
}

char *
qmp_command_line(const char *cmd, JsonNode *args, gint64 id)
{
    GString *out = g_string_sized_new(128);

    g_string_append(out, "{\"execute\":");
    qmp_json_write_string(out, cmd);
    if (args) {
        g_string_append(out, ",\"arguments\":");
        qmp_json_write_node(out, args);
    }
    g_string_append_printf(out, ",\"id\":%" G_GINT64_FORMAT "}", id);
    return g_string_free(out, FALSE);
}
