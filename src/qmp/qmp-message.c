/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One QMP message: a line parsed within depth limits and sorted into
 * greeting, event or reply; a command written as one line. */
#define G_LOG_DOMAIN "qmp"
#include "config.h"

#include <string.h>

#include "qmp-error.h"
#include "qmp-json.h"
#include "qmp-message.h"

guint
qmp_json_depth(const char *text, gsize len, guint max_depth)
{
    guint depth = 0, deepest = 0;
    gboolean in_string = FALSE, escaped = FALSE;

    for (gsize i = 0; i < len; i++) {
        char ch = text[i];
        if (in_string) {
            if (escaped)
                escaped = FALSE;
            else if (ch == '\\')
                escaped = TRUE;
            else if (ch == '"')
                in_string = FALSE;
            continue;
        }
        switch (ch) {
        case '"':
            in_string = TRUE;
            break;
        case '{':
        case '[':
            depth++;
            if (depth > deepest) {
                deepest = depth;
                if (deepest > max_depth)
                    return max_depth + 1;
            }
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
    }
    return deepest;
}

/* TRUE when text holds a second JSON value after the first: json-glib
 * 1.6 accepts '{...}{...}' and '5 {...}' and leaks all but one root. */
gboolean
qmp_json_has_second_value(const char *text, gsize len)
{
    guint depth = 0;
    gboolean in_string = FALSE, escaped = FALSE, seen = FALSE;

    for (gsize i = 0; i < len; i++) {
        char ch = text[i];
        if (in_string) {
            if (escaped)
                escaped = FALSE;
            else if (ch == '\\')
                escaped = TRUE;
            else if (ch == '"')
                in_string = FALSE;
            continue;
        }
        if (ch == '{' || ch == '[') {
            if (depth == 0 && seen)
                return TRUE;
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth > 0)
                depth--;
        } else if (ch == '"') {
            in_string = TRUE;
        }
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
            seen = TRUE;
    }
    return FALSE;
}

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
    g_autoptr(JsonParser) parser = NULL;
    g_autoptr(QmpMessage) msg = NULL;
    g_autoptr(GError) local = NULL;

    if (max_depth == 0)
        max_depth = QMP_DEFAULT_MAX_DEPTH;
    if (qmp_json_depth(line, len, max_depth) > max_depth) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_TOO_DEEP,
                    "QMP message nested deeper than %u levels", max_depth);
        return NULL;
    }
    if (memchr(line, '\0', len)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "QMP message contains a NUL byte");
        return NULL;
    }
    if (qmp_json_has_second_value(line, len)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                    "malformed QMP message: more than one JSON value");
        return NULL;
    }
    if (!qmp_json_escapes_valid(line, len)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL,
                    "malformed QMP message: a \\u escape is not 4 hex digits or a lone "
                    "surrogate");
        return NULL;
    }
    parser = json_parser_new();
    if (!json_parser_load_from_data(parser, line, (gssize)len, &local)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "malformed QMP message: %s",
                    local->message);
        return NULL;
    }
    msg = g_new0(QmpMessage, 1);
    if (!json_parser_get_root(parser)) {
        g_set_error(error, QMP_ERROR, QMP_ERROR_PROTOCOL, "empty QMP message");
        return NULL;
    }
    msg->root = json_parser_steal_root(parser);
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
