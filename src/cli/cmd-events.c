/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl events: read or follow hotplugd's event log. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "service.h"
#include "qmp-json.h"

#define CLI_CONNECT_TIMEOUT_MS 15000

typedef struct {
    CliContext *ctx;
    gboolean done;
    gboolean follow;
    GError *error;
    guint64 last_seq;
    gboolean overflow;
} CliEvents;

static void
cmd_events_print(CliEvents *e, JsonObject *rec)
{
    const char *kind = qmp_json_get_string(rec, "kind") ?: "?";
    const char *device = qmp_json_get_string(rec, "device");
    JsonObject *detail = qmp_json_get_object(rec, "detail");
    JsonObject *err = qmp_json_get_object(rec, "error");
    gint64 op = qmp_json_get_int_default(rec, "op", -1);

    e->last_seq = (guint64)qmp_json_get_int_default(rec, "seq", (gint64)e->last_seq);
    if (e->ctx->json) {
        g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), rec);
        cli_print_json(n);
        return;
    }
    printf("%6" G_GINT64_FORMAT " %s %-10s %-10s", qmp_json_get_int_default(rec, "seq", 0),
           qmp_json_get_string(rec, "time") ?: "", qmp_json_get_string(rec, "vm") ?: "", kind);
    if (op >= 0)
        printf(" op %" G_GINT64_FORMAT, op);
    if (device)
        printf(" %s", device);
    if (g_str_equal(kind, "vm")) {
        printf(" %s", qmp_json_get_string(rec, "state") ?: "");
    } else if (g_str_equal(kind, "qemu-event")) {
        printf(" %s", qmp_json_get_string(rec, "event") ?: "");
    } else if (g_str_equal(kind, "hostdev")) {
        const char *group = qmp_json_get_string(rec, "group");
        const char *why = qmp_json_get_string(rec, "why");
        printf(" %s %s", qmp_json_get_string(rec, "event") ?: "",
               qmp_json_get_string(rec, "address") ?: "");
        if (qmp_json_get_string(rec, "vendor-device"))
            printf(" %s", qmp_json_get_string(rec, "vendor-device"));
        if (group)
            printf(" (IOMMU group %s)", group);
        if (why)
            printf(": %s", why);
    } else {
        const char *action = qmp_json_get_string(rec, "action");
        const char *outcome = qmp_json_get_string(rec, "outcome");
        gint64 attempt = qmp_json_get_int_default(rec, "attempt", -1);
        if (action)
            printf(" %s", action);
        if (attempt >= 0)
            printf(" attempt %" G_GINT64_FORMAT, attempt);
        if (outcome)
            printf(": %s", outcome);
        if (qmp_json_get_int_default(rec, "elapsed_ms", -1) >= 0 && outcome)
            printf(" (%" G_GINT64_FORMAT " ms)", qmp_json_get_int_default(rec, "elapsed_ms", 0));
    }
    if (err)
        printf(" [%s: %s]", qmp_json_get_string(err, "class"), qmp_json_get_string(err, "desc"));
    if (detail && qmp_json_get_string(detail, "text"))
        printf(" - %s", qmp_json_get_string(detail, "text"));
    printf("\n");
    fflush(stdout);
}

static void
cmd_events_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    CliEvents *e = opaque;

    if (g_str_equal(ev->name, "LOG")) {
        cmd_events_print(e, ev->data);
    } else if (g_str_equal(ev->name, "LOG_GAP")) {
        fprintf(stderr,
                "hotplugctl: records %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
                " are gone (log retention)\n",
                qmp_json_get_int_default(ev->data, "from", 0),
                qmp_json_get_int_default(ev->data, "to", 0));
    } else if (g_str_equal(ev->name, "LOG_OVERFLOW")) {
        e->overflow = TRUE;
        e->last_seq = (guint64)qmp_json_get_int_default(ev->data, "last_seq", (gint64)e->last_seq);
    }
}

static void
cmd_events_state_cb(QmpConn *conn, QmpConnState state, const GError *error, gpointer opaque)
{
    CliEvents *e = opaque;

    if (state == QMP_CONN_CLOSED)
        e->done = TRUE;
}

static void
cmd_events_reply_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    CliEvents *e = opaque;
    JsonObject *eo = error ? qmp_json_node_object(ret) : NULL;

    if (error) {
        e->error = eo ? service_error_from_class(qmp_json_get_string(eo, "class"),
                                                 qmp_json_get_string(eo, "desc"))
                      : g_error_copy(error);
        e->done = TRUE;
    } else if (!e->follow) {
        e->done = TRUE;
    }
}

static int
cmd_events_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    static const struct option extra[] = {
        {"follow", no_argument, NULL, 256},
        {"since", required_argument, NULL, 257},
        {"vm", required_argument, NULL, 258},
        {"device", required_argument, NULL, 259},
        {"kind", required_argument, NULL, 260},
        {0},
    };
    static const QmpConnListener l = {cmd_events_event_cb, cmd_events_state_cb};
    g_autoptr(JsonObject) args = json_object_new();
    g_autofree char **pos = NULL;
    g_autofree char *path = NULL;
    g_autoptr(QmpConn) conn = NULL;
    g_autoptr(GError) error = NULL;
    CliEvents e = {.ctx = ctx};
    const char *since;

    pos = cli_parse_args(cmd, argc, argv, FALSE, extra, args);
    if (!pos)
        return CLI_EXIT_USAGE;
    if (pos[0])
        return cli_usage_error(cmd, "unexpected argument '%s'", pos[0]);
    if (json_object_has_member(args, "follow")) {
        json_object_remove_member(args, "follow");
        json_object_set_boolean_member(args, "follow", TRUE);
        e.follow = TRUE;
    }
    if ((since = qmp_json_get_string(args, "since"))) {
        char *end = NULL;
        guint64 n = g_ascii_strtoull(since, &end, 10);
        if (!*since || *end)
            return cli_usage_error(cmd, "--since takes a seq number");
        json_object_set_int_member(args, "since", (gint64)n);
    }
    path = ctx->socket_path ? g_strdup(ctx->socket_path) : cli_default_socket();
    conn = qmp_conn_new(ctx->base, path, NULL);
    qmp_conn_add_listener(conn, &l, &e);
    if (!qmp_conn_open(conn, &error) || !qmp_conn_wait_ready(conn, CLI_CONNECT_TIMEOUT_MS, &error)) {
        g_autoptr(GError) err2 = g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                                             "the event log needs hotplugd: cannot reach it at %s: %s",
                                             path, error->message);
        return cli_error(ctx, CLI_EXIT_ERROR, err2);
    }
    if (!qmp_conn_execute(conn, "events", json_node_init_object(json_node_alloc(), args),
                          cmd_events_reply_cb, &e, &error))
        return cli_error(ctx, CLI_EXIT_ERROR, error);
    qmp_loop_run_until(ctx->base, &e.done, 0);
    qmp_conn_close(conn);
    if (e.error) {
        int rc = cli_error(ctx, cli_exit_for_error(e.error), e.error);
        g_error_free(e.error);
        return rc;
    }
    if (e.overflow) {
        fprintf(stderr,
                "hotplugctl: too slow for hotplugd: disconnected after seq %" G_GUINT64_FORMAT
                "; resume with --since %" G_GUINT64_FORMAT "\n",
                e.last_seq, e.last_seq);
        return CLI_EXIT_ERROR;
    }
    if (e.follow) {
        fprintf(stderr, "hotplugctl: hotplugd went away after seq %" G_GUINT64_FORMAT
                        "; resume with --since %" G_GUINT64_FORMAT "\n",
                e.last_seq, e.last_seq);
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

const CliCmd cli_events_cmds[] = {
    {
        .group = "events",
        .name = "",
        .usage = "[--follow] [--since SEQ] [--vm VM] [--device ID] [--kind KIND]",
        .summary = "read hotplugd's event log, or follow it as it grows",
        .help = "Needs hotplugd.  Prints the records after SEQ (all kept records by default;\n"
                "with --follow, from now on unless --since is given), filtered by VM, device\n"
                "and kind (vm, request, attempt, outcome, qemu-event, hostdev).  Records come from\n"
                "disk: a record is shown only once it is durable.  If retention dropped some\n"
                "of the records asked for, the range is named on stderr.  A subscriber that\n"
                "falls behind by more than the daemon's buffer is disconnected and told the\n"
                "last seq it got, to resume with --since without gaps or repeats.",
        .exec = cmd_events_exec,
    },
    {0},
};
