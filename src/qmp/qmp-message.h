/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One QMP message: parsing and sorting a line into greeting, event or reply. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define QMP_DEFAULT_MAX_LINE  (16u * 1024 * 1024)
#define QMP_DEFAULT_MAX_DEPTH 64u

typedef enum {
    QMP_MSG_GREETING,
    QMP_MSG_EVENT,
    QMP_MSG_RETURN,
    QMP_MSG_ERROR,
} QmpMsgType;

typedef struct {
    QmpMsgType type;
    JsonNode *root;        /* owns everything below */
    /* QMP_MSG_RETURN / QMP_MSG_ERROR */
    gboolean has_id;
    gboolean id_is_int;
    gint64 id;             /* when id_is_int */
    JsonNode *ret;         /* QMP_MSG_RETURN: the "return" member (borrowed) */
    JsonObject *error;     /* QMP_MSG_ERROR: the "error" object (borrowed) */
    /* QMP_MSG_EVENT */
    const char *event;     /* borrowed */
    JsonObject *data;      /* borrowed; an empty object when absent */
    gint64 timestamp_us;   /* from "timestamp", or -1 */
    /* QMP_MSG_GREETING */
    JsonObject *greeting;  /* the object under "QMP" (borrowed) */
} QmpMessage;

/* Parse one line (without its line ending) and sort it.  Errors are
 * QMP_ERROR_TOO_DEEP or QMP_ERROR_PROTOCOL. */
QmpMessage *qmp_message_parse(const char *line, gsize len, guint max_depth, GError **error);
void qmp_message_free(QmpMessage *msg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpMessage, qmp_message_free)

/* Compact JSON text of a node (for the wire and for logs). */
char *qmp_json_to_string(JsonNode *node);

/* {"execute":cmd,"arguments":args,"id":id} as compact JSON with no line
 * ending: QEMU's JSON streamer needs none, and reads one byte per syscall.
 * args may be NULL; it is not taken. */
char *qmp_command_line(const char *cmd, JsonNode *args, gint64 id);

G_END_DECLS
