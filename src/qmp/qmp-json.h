/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Type-checked reads of JSON that came from a peer: a member of the wrong
 * type reads as absent, never as a critical warning. */
#pragma once

#include <string.h>

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

/* Compact JSON text appended to out, as json_generator writes it (members
 * in insertion order, no spaces) without its allocations per value: the
 * hot paths (event log records, journal lines, QMP commands, replies)
 * write with these.  qmp_json_write_node: node (NULL: null);
 * qmp_json_write_object: obj; qmp_json_write_members: obj's members but
 * those named in skip (NULL-terminated, may be NULL), without the braces,
 * to splice into an object being written (after_others: a comma before
 * the first one); qmp_json_write_string: s as a JSON string, quotes
 * included; qmp_json_write_int: v. */
/* Append len bytes of s to out, in place when out has the room (glib
 * before 2.76 has no inline g_string_append, and the writers below append
 * short pieces by the hundred per operation); qmp_json_append_lit: a
 * string literal, its length known when compiled. */
static inline void
qmp_json_append(GString *out, const char *s, gsize len)
{
    if (out->len + len < out->allocated_len) {
        memcpy(out->str + out->len, s, len);
        out->len += len;
        out->str[out->len] = '\0';
    } else {
        g_string_append_len(out, s, (gssize)len);
    }
}
#define qmp_json_append_lit(out, lit) qmp_json_append((out), "" lit "", sizeof(lit) - 1)
/* ,"name": into an object being written, after other members; name is
 * one of ours (an identifier: nothing in it to escape). */
static inline void
qmp_json_append_name(GString *out, const char *name)
{
    qmp_json_append_lit(out, ",\"");
    qmp_json_append(out, name, strlen(name));
    qmp_json_append_lit(out, "\":");
}

void qmp_json_write_node(GString *out, JsonNode *node);
void qmp_json_write_object(GString *out, JsonObject *obj);
void qmp_json_write_members(GString *out, JsonObject *obj, gboolean after_others,
                            const char *const *skip);
void qmp_json_write_string(GString *out, const char *s);
void qmp_json_write_int(GString *out, gint64 v);
/* One JSON value (RFC 8259) from text, len bytes (no NUL needed), in one
 * pass: a new node, or NULL and error (QMP_ERROR_TOO_DEEP when nested
 * deeper than max_depth, 0 meaning QMP_DEFAULT_MAX_DEPTH; else
 * QMP_ERROR_PROTOCOL, the message saying what and at which byte).  It
 * refuses what json-glib 1.6's parser lets through or mishandles: text
 * after the value, a NUL byte, a lone surrogate or \u0000, invalid UTF-8,
 * a raw control character in a string.  Integers read as json-glib reads
 * them (up to 2^64 - 1, kept in a gint64); beyond that, and with a
 * fraction or exponent, a double.  Duplicate names: the last one wins. */
JsonNode *qmp_json_parse(const char *text, gsize len, guint max_depth, GError **error);
/* The same for text hotplugd wrote itself (event log and journal lines,
 * its state files): nesting up to 1,024 levels (they hold a request's
 * arguments a few levels down), and control characters in strings taken
 * as they stand, because json-glib 1.6's generator, which wrote these
 * files before 0.1.0's own writer, leaves 0x1f unescaped. */
JsonNode *qmp_json_parse_stored(const char *text, gsize len, GError **error);
/* v in decimal into buf (NUL-terminated); its length. */
gsize qmp_json_format_uint(char buf[24], guint64 v);

G_END_DECLS
