/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Compact JSON text from json-glib values (qmp-json.h). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "qmp-json.h"

void
qmp_json_write_string(GString *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    g_string_append_c(out, '"');
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        const char *esc = NULL;
        char u[7];

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            u[0] = '\\';
            u[1] = 'u';
            u[2] = '0';
            u[3] = '0';
            u[4] = hex[c >> 4];
            u[5] = hex[c & 0xf];
            u[6] = '\0';
            esc = u;
        }
        qmp_json_append(out, run, (gsize)(p - run));
        qmp_json_append(out, esc, strlen(esc));
        run = p + 1;
    }
    qmp_json_append(out, run, strlen(run));
    g_string_append_c(out, '"');
}

gsize
qmp_json_format_uint(char buf[24], guint64 v)
{
    char tmp[24];
    gsize n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (gsize i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

void
qmp_json_write_int(GString *out, gint64 v)
{
    char buf[24];

    if (v < 0) {
        g_string_append_c(out, '-');
        /* -(v + 1) + 1: G_MININT64 too */
        qmp_json_append(out, buf, qmp_json_format_uint(buf, (guint64)(-(v + 1)) + 1));
    } else {
        qmp_json_append(out, buf, qmp_json_format_uint(buf, (guint64)v));
    }
}

static void
qmp_json_write_value(GString *out, JsonNode *node)
{
    switch (json_node_get_value_type(node)) {
    case G_TYPE_INT64:
        qmp_json_write_int(out, json_node_get_int(node));
        break;
    case G_TYPE_BOOLEAN:
        g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
        break;
    case G_TYPE_STRING:
        qmp_json_write_string(out, json_node_get_string(node));
        break;
    case G_TYPE_DOUBLE: {
        char buf[G_ASCII_DTOSTR_BUF_SIZE];
        double v = json_node_get_double(node);

        if (!isfinite(v)) { /* JSON has no infinity or NaN */
            g_string_append(out, "null");
            break;
        }
        g_ascii_formatd(buf, sizeof buf, "%.17g", v);
        g_string_append(out, buf);
        /* a double stays a double when read back */
        if (!strpbrk(buf, ".eEn"))
            g_string_append(out, ".0");
        break;
    }
    default:
        g_string_append(out, "null");
    }
}

void
qmp_json_write_members(GString *out, JsonObject *obj, gboolean after_others,
                       const char *const *skip)
{
    JsonObjectIter it;
    const char *name;
    JsonNode *member;
    gboolean first = !after_others;

    json_object_iter_init_ordered(&it, obj);
    while (json_object_iter_next_ordered(&it, &name, &member)) {
        if (skip && g_strv_contains(skip, name))
            continue;
        if (!first)
            g_string_append_c(out, ',');
        first = FALSE;
        qmp_json_write_string(out, name);
        g_string_append_c(out, ':');
        qmp_json_write_node(out, member);
    }
}

void
qmp_json_write_object(GString *out, JsonObject *obj)
{
    g_string_append_c(out, '{');
    qmp_json_write_members(out, obj, FALSE, NULL);
    g_string_append_c(out, '}');
}

void
qmp_json_write_node(GString *out, JsonNode *node)
{
    if (!node) {
        g_string_append(out, "null");
        return;
    }
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: {
        JsonObject *obj = json_node_get_object(node);

        if (obj)
            qmp_json_write_object(out, obj);
        else
            g_string_append(out, "null");
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *arr = json_node_get_array(node);
        guint n = arr ? json_array_get_length(arr) : 0;

        g_string_append_c(out, '[');
        for (guint i = 0; i < n; i++) {
            if (i)
                g_string_append_c(out, ',');
            qmp_json_write_node(out, json_array_get_element(arr, i));
        }
        g_string_append_c(out, ']');
        break;
    }
    case JSON_NODE_VALUE:
        qmp_json_write_value(out, node);
        break;
    case JSON_NODE_NULL:
    default:
        g_string_append(out, "null");
    }
}
