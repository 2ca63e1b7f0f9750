/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd's control socket: QMP-shaped JSON lines over a UNIX socket.
 *
 * A client gets a greeting, sends qmp_capabilities, then commands
 * {"execute", "arguments", "id"}; it gets {"return"} or {"error": {"class",
 * "desc"}} with the same id, and {"event"} messages.  Input lines are
 * capped; output a client does not read is capped too: past the cap the
 * client is told and disconnected, never buffered without bound. */
#pragma once

#include <event2/event.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

#define CONTROL_PROTOCOL_VERSION 1
#define CONTROL_MAX_LINE (1u << 20)
#define CONTROL_CLOSE_LINGER_MS 10000
/* Clients at once; one more is told so (Busy) and disconnected. */
#define CONTROL_DEFAULT_MAX_CLIENTS 256
/* A client that has not negotiated by then is disconnected. */
#define CONTROL_NEGOTIATE_MS 10000

typedef struct ControlServer ControlServer;
typedef struct ControlClient ControlClient;

typedef struct {
    /* A command after negotiation.  id may be NULL; borrowed. */
    void (*execute)(ControlServer *srv, ControlClient *cl, const char *cmd, JsonObject *args,
                    JsonNode *id, gpointer opaque);
    /* The client is going; it must not be used after this returns. */
    void (*closed)(ControlServer *srv, ControlClient *cl, gpointer opaque);
} ControlCallbacks;

typedef struct {
    const char *path;
    guint mode;           /* 0600 */
    const char *group;    /* NULL */
    gsize max_output;     /* bytes queued to one client before it is cut off */
    const char *version;  /* for the greeting */
    guint close_linger_ms; /* a client closed after a flush that does not read is
                              cut off after this; 0: CONTROL_CLOSE_LINGER_MS */
    guint max_clients;     /* 0: CONTROL_DEFAULT_MAX_CLIENTS */
    guint negotiate_ms;    /* 0: CONTROL_NEGOTIATE_MS */
} ControlOptions;

ControlServer *control_server_new(struct event_base *base, const ControlOptions *opts,
                                  const ControlCallbacks *cb, gpointer opaque, GError **error);
/* Stop accepting (SIGTERM); clients stay until freed. */
void control_server_stop_accepting(ControlServer *srv);
void control_server_free(ControlServer *srv);
guint control_server_n_clients(ControlServer *srv);
/* Serve an already connected socket as a client (tests, fuzzing): it is
 * greeted like an accepted one; the server owns fd from now on. */
ControlClient *control_server_add_fd(ControlServer *srv, int fd);

void control_client_return(ControlClient *cl, JsonNode *id, JsonNode *ret);
/* The same in two steps: the reply's line (no line ending) now, with ret
 * as JSON text (len bytes) or as a node (NULL: {}); sent later (a reply
 * held until the disk has its records). */
GString *control_render_return(JsonNode *id, const char *ret, gsize len);
GString *control_render_return_node(JsonNode *id, JsonNode *ret);
void control_client_return_line(ControlClient *cl, const char *line, gsize len);
void control_client_error(ControlClient *cl, JsonNode *id, const char *cls, const char *desc);
void control_client_event(ControlClient *cl, const char *name, JsonNode *data);
/* The same with data as JSON text (len bytes), or NULL for none. */
void control_client_event_text(ControlClient *cl, const char *name, const char *data, gsize len);
/* A ready-made line (no line ending).  FALSE when the client's output is
 * over its cap (the line is not queued). */
gboolean control_client_send_line(ControlClient *cl, const char *line, gsize len);
/* Lines already ending in "\r\n", queued at once and shared (a reference
 * is held until they are written): FALSE (nothing queued) when they would
 * take the output past its cap. */
gboolean control_client_send_block(ControlClient *cl, GBytes *lines);
gsize control_client_pending_output(ControlClient *cl);
/* Close after what is queued has been written (or at once if it cannot be). */
void control_client_close_after_flush(ControlClient *cl);
pid_t control_client_pid(ControlClient *cl);
uid_t control_client_uid(ControlClient *cl);
guint64 control_client_id(ControlClient *cl);
/* Called when the client's output drops below half its cap (to pace a
 * backlog); NULL to stop. */
void control_client_set_drain_cb(ControlClient *cl, void (*fn)(ControlClient *, gpointer),
                                 gpointer opaque);
void control_client_set_data(ControlClient *cl, gpointer data, GDestroyNotify destroy);
gpointer control_client_get_data(ControlClient *cl);

G_END_DECLS
