/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl: running a command in-process (direct mode) or through
 * hotplugd, showing progress, and turning results into exit codes. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "service.h"
#include "qmp-json.h"

#define CLI_CONNECT_TIMEOUT_MS 15000
#define CLI_PROGRESS_MS 100
#define CLI_DEFAULT_RETRY_INTERVAL_MS 2000

char *
cli_default_socket(void)
{
    const char *runtime = g_getenv("XDG_RUNTIME_DIR");

    if (getuid() == 0 || !runtime || !*runtime)
        return g_strdup("/run/hotplugd/control.sock");
    return g_build_filename(runtime, "hotplugd", "control.sock", NULL);
}

gboolean
cli_parse_seconds(const char *text, guint64 *ms)
{
    return timeout_parse_seconds(text, TIMEOUT_MAX_MS, ms);
}

/* Decimal digits only (no sign, no spaces, no hex), at most max. */
static gboolean
cli_parse_count(const char *text, guint64 max, guint64 *out)
{
    guint64 v = 0;

    if (!*text)
        return FALSE;
    for (const char *p = text; *p; p++) {
        if (!g_ascii_isdigit(*p))
            return FALSE;
        v = v * 10 + (guint64)(*p - '0');
        if (v > max)
            return FALSE;
    }
    *out = v;
    return TRUE;
}

char **
cli_parse_args(const CliCmd *cmd, int argc, char **argv, gboolean unplug,
               const struct option *extra, JsonObject *args)
{
    static const struct option unplug_opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"retry", required_argument, NULL, 'r'},
        {"retry-interval", required_argument, NULL, 'i'},
        {"no-wait", no_argument, NULL, 'n'},
    };
    g_autoptr(GArray) opts = g_array_new(TRUE, TRUE, sizeof(struct option));
    GPtrArray *pos = g_ptr_array_new();
    const char *name = NULL;
    int ch, index;
    guint64 ms;

    if (unplug)
        g_array_append_vals(opts, unplug_opts, G_N_ELEMENTS(unplug_opts));
    for (; extra && extra->name; extra++)
        g_array_append_vals(opts, extra, 1);
    opterr = 0;
    optind = 0;
    while ((ch = getopt_long(argc, argv, "-:", (struct option *)opts->data, &index)) != -1) {
        const char *opt = argv[optind - 1];
        name = ch == 't' ? "--timeout" : ch == 'r' ? "--retry" : ch == 'i' ? "--retry-interval" : opt;
        switch (ch) {
        case 1:
            g_ptr_array_add(pos, optarg);
            break;
        case 't':
            if (!cli_parse_seconds(optarg, &ms) || ms == 0)
                goto bad_value;
            json_object_set_double_member(args, "timeout", ms / 1000.0);
            break;
        case 'r': {
            guint64 n;
            if (!cli_parse_count(optarg, 1000, &n))
                goto bad_value;
            json_object_set_int_member(args, "retry", (gint64)n);
            break;
        }
        case 'i':
            if (!cli_parse_seconds(optarg, &ms))
                goto bad_value;
            json_object_set_double_member(args, "retry-interval", ms / 1000.0);
            break;
        case 'n':
            json_object_set_boolean_member(args, "no-wait", TRUE);
            break;
        case ':':
            cli_usage_error(cmd, "option '%s' needs a value", opt);
            goto fail;
        default:
            if (ch >= 256) {
                const struct option *o = &g_array_index(opts, struct option, index);
                json_object_set_string_member(args, o->name, optarg ? optarg : "");
                break;
            }
            cli_usage_error(cmd, "unknown option '%s'", opt);
            goto fail;
        }
    }
    g_ptr_array_add(pos, NULL);
    return (char **)g_ptr_array_free(pos, FALSE);

bad_value:
    cli_usage_error(cmd, "bad value '%s' for %s", optarg, name);
fail:
    g_ptr_array_free(pos, TRUE);
    return NULL;
}

/* ---- waiting, with progress --------------------------------------------- */

typedef struct {
    CliContext *ctx;
    gboolean done;
    JsonNode *ret;
    GError *error;
    /* progress, from the latest ATTEMPT event */
    char *device;
    guint attempt, max_attempts;
    gint64 attempt_start_us;
    gint64 timeout_ms;
    gboolean progress_shown;
    struct event *tick;
} CliWait;

static void
cli_progress_clear(CliWait *w)
{
    if (w->progress_shown) {
        fprintf(stderr, "\r\033[K");
        w->progress_shown = FALSE;
    }
}

static void
cli_wait_event(CliWait *w, const char *name, JsonNode *data)
{
    JsonObject *o = qmp_json_node_object(data);
    const char *device = qmp_json_get_string(o, "device");

    if (!o || !device)
        return;
    if (g_str_equal(name, "ATTEMPT")) {
        g_free(w->device);
        w->device = g_strdup(device);
        w->attempt = (guint)qmp_json_get_int_default(o, "attempts", 0);
        w->max_attempts = (guint)qmp_json_get_int_default(o, "max_attempts", 1);
        w->timeout_ms = g_str_equal(qmp_json_get_string(o, "action") ?: "", "unplug")
                            ? qmp_json_get_int_default(o, "timeout_ms", 0)
                            : 0;
        w->attempt_start_us = g_get_monotonic_time();
    } else if (g_str_equal(name, "ATTEMPT_RESULT") && !w->ctx->json) {
        const char *detail = qmp_json_get_string(o, "detail");
        cli_progress_clear(w);
        fprintf(stderr, "%s: attempt %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT ": %s%s%s%s\n",
                device, qmp_json_get_int_default(o, "attempts", 0),
                qmp_json_get_int_default(o, "max_attempts", 0),
                qmp_json_get_string(o, "outcome") ?: "?", detail ? " (" : "", detail ? detail : "",
                detail ? "); trying again" : "; trying again");
        w->timeout_ms = 0;
    }
}

static void
cli_tick_cb(evutil_socket_t fd, short what, void *opaque)
{
    CliWait *w = opaque;
    double elapsed;

    if (!w->ctx->tty || w->ctx->json || !w->device || !w->timeout_ms)
        return;
    elapsed = (g_get_monotonic_time() - w->attempt_start_us) / 1e6;
    fprintf(stderr, "\r\033[K%s: waiting for QEMU, %.1f s of %.1f s (attempt %u/%u)", w->device,
            elapsed, w->timeout_ms / 1000.0, w->attempt, w->max_attempts);
    w->progress_shown = TRUE;
}

static void
cli_wait_run(CliWait *w)
{
    struct timeval tv = {0, CLI_PROGRESS_MS * 1000};

    w->tick = event_new(w->ctx->base, -1, EV_PERSIST, cli_tick_cb, w);
    event_add(w->tick, &tv);
    qmp_loop_run_until(w->ctx->base, &w->done, 0);
    event_free(w->tick);
    cli_progress_clear(w);
    g_free(w->device);
}

/* ---- direct mode ------------------------------------------------------ */

const char *
cli_lock_root(void)
{
    const char *root = g_getenv("HOTPLUG_LOCK_ROOT");

    return root && *root ? root : NULL;
}

static void
cli_direct_reply_cb(ServiceRequest *req, JsonNode *ret, const GError *error, gpointer opaque)
{
    CliWait *w = opaque;

    w->done = TRUE;
    if (error)
        w->error = g_error_copy(error);
    else
        w->ret = json_node_ref(ret);
}

static void
cli_direct_event_cb(ServiceRequest *req, const char *name, JsonNode *data, gpointer opaque)
{
    cli_wait_event(opaque, name, data);
}

static int
cli_request_direct(CliContext *ctx, const char *vm, const char *cmd, JsonObject *args,
                   JsonNode **ret)
{
    static const ServiceRequestCallbacks cb = {.reply = cli_direct_reply_cb,
                                               .event = cli_direct_event_cb};
    ServiceOptions opts = {.direct = TRUE};
    g_autoptr(Service) svc = NULL;
    g_autoptr(GError) error = NULL;
    CliWait w = {.ctx = ctx};

    opts.default_unplug.retry_interval_ms = CLI_DEFAULT_RETRY_INTERVAL_MS;
    /* tests point it at a fake tree; empty or unset: /sys */
    opts.sysfs_root = g_getenv("HOTPLUG_SYSFS_ROOT");
    if (opts.sysfs_root && !*opts.sysfs_root)
        opts.sysfs_root = NULL;
    opts.hostdev_lock_root = cli_lock_root();
    svc = service_new(ctx->base, &opts);
    if (!service_add_vm(svc, vm, vm, &error))
        return cli_error(ctx, CLI_EXIT_ERROR, error);
    {
        /* an unplug with a deadline waits for QEMU's greeting and
         * negotiation no longer than the deadline plus the grace */
        JsonNode *t = json_object_get_member(args, "timeout");
        guint wait_ms = CLI_CONNECT_TIMEOUT_MS;
        gboolean unplug = t && JSON_NODE_HOLDS_VALUE(t) && json_object_has_member(args, "id");

        if (unplug)
            wait_ms = (guint)MIN((double)CLI_CONNECT_TIMEOUT_MS,
                                 json_node_get_double(t) * 1000.0 + HOTPLUG_CONFIRM_GRACE_MS);
        if (!qmp_conn_wait_ready(hotplug_vm_get_conn(service_get_vm(svc, vm)), wait_ms,
                                 &error)) {
            JsonObject *o;

            if (!unplug || !g_error_matches(error, QMP_ERROR, QMP_ERROR_TIMEOUT))
                return cli_error(ctx, CLI_EXIT_ERROR, error);
            /* nothing was sent: the device was not deleted */
            *ret = json_node_new(JSON_NODE_OBJECT);
            o = json_object_new();
            json_object_set_string_member(o, "vm", vm);
            json_object_set_string_member(o, "device", qmp_json_get_string(args, "id"));
            json_object_set_string_member(o, "action", "unplug");
            json_object_set_string_member(o, "outcome", "not-deleted");
            json_object_set_string_member(o, "state", "done");
            json_object_set_string_member(o, "detail", "QEMU did not answer (greeting and "
                                                       "negotiation) within the deadline: "
                                                       "nothing was sent");
            json_node_take_object(*ret, o);
            return CLI_EXIT_OK;
        }
    }
    service_execute(svc, cmd, args, &cb, &w);
    if (!w.done)
        cli_wait_run(&w);
    if (w.error) {
        int rc = cli_error(ctx, cli_exit_for_error(w.error), w.error);
        g_error_free(w.error);
        return rc;
    }
    *ret = w.ret;
    return CLI_EXIT_OK;
}

/* ---- through hotplugd ---------------------------------------------------- */

static void
cli_daemon_reply_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    CliWait *w = opaque;
    JsonObject *e = error ? qmp_json_node_object(ret) : NULL;

    w->done = TRUE;
    if (e)
        w->error = service_error_from_class(qmp_json_get_string(e, "class"),
                                            qmp_json_get_string(e, "desc"));
    else if (error)
        w->error = g_error_copy(error);
    else
        w->ret = json_node_ref(ret);
}

static void
cli_daemon_event_cb(QmpConn *conn, const QmpEvent *ev, gpointer opaque)
{
    JsonNode *data = json_node_init_object(json_node_alloc(), ev->data);

    cli_wait_event(opaque, ev->name, data);
    json_node_unref(data);
}

int
cli_request_daemon(CliContext *ctx, const char *cmd, JsonObject *args, JsonNode **ret)
{
    static const QmpConnListener l = {.event = cli_daemon_event_cb};
    g_autofree char *path = ctx->socket_path ? g_strdup(ctx->socket_path) : cli_default_socket();
    g_autoptr(QmpConn) conn = qmp_conn_new(ctx->base, path, NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonObject) owned = args;
    CliWait w = {.ctx = ctx};

    qmp_conn_add_listener(conn, &l, &w);
    if (!qmp_conn_open(conn, &error) ||
        !qmp_conn_wait_ready(conn, CLI_CONNECT_TIMEOUT_MS, &error)) {
        g_autoptr(GError) e = g_error_new(
            HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
            "cannot reach hotplugd at %s: %s\n(is hotplugd running?  --socket PATH or "
            "$HOTPLUGD_SOCKET name another one; a QMP socket path as VM works without it)",
            path, error->message);
        return cli_error(ctx, CLI_EXIT_ERROR, e);
    }
    if (!qmp_conn_execute(conn, cmd, json_node_init_object(json_node_alloc(), args),
                          cli_daemon_reply_cb, &w, &error))
        return cli_error(ctx, CLI_EXIT_ERROR, error);
    cli_wait_run(&w);
    qmp_conn_close(conn);
    if (w.error) {
        int rc = cli_error(ctx, cli_exit_for_error(w.error), w.error);
        g_error_free(w.error);
        return rc;
    }
    *ret = w.ret;
    return CLI_EXIT_OK;
}

int
cli_request(CliContext *ctx, const char *vm, const char *cmd, JsonObject *args, JsonNode **ret)
{
    g_autoptr(JsonObject) owned = args;

    if (vm)
        json_object_set_string_member(args, "vm", vm);
    if (vm && cli_vm_is_path(vm))
        return cli_request_direct(ctx, vm, cmd, args, ret);
    return cli_request_daemon(ctx, cmd, json_object_ref(args), ret);
}

/* ---- results ---------------------------------------------------------------- */

int
cli_exit_for_error(const GError *error)
{
    const char *cls = service_error_class(error);

    if (g_str_equal(cls, "InvalidArgument") || g_str_equal(cls, "InvalidProperty"))
        return CLI_EXIT_USAGE;
    if (g_str_equal(cls, "VmGone"))
        return CLI_EXIT_VM_GONE;
    return CLI_EXIT_ERROR;
}

static int
cli_print_one_op(CliContext *ctx, JsonObject *o)
{
    const char *outcome = qmp_json_get_string(o, "outcome") ?: "?";
    const char *state = qmp_json_get_string(o, "state") ?: "";
    const char *detail = qmp_json_get_string(o, "detail");
    JsonObject *err = qmp_json_get_object(o, "error");
    gint64 attempts = qmp_json_get_int_default(o, "attempts", 0);
    HotplugOutcome oc;

    if (g_str_equal(outcome, "pending")) {
        if (!ctx->json)
            printf("%s: %s requested, QEMU accepted it (operation %" G_GINT64_FORMAT
                   "); the outcome goes to the event log\n",
                   qmp_json_get_string(o, "device"), qmp_json_get_string(o, "action"),
                   qmp_json_get_int_default(o, "op", 0));
        return CLI_EXIT_OK;
    }
    if (!ctx->json) {
        printf("%s: %s", qmp_json_get_string(o, "device"), outcome);
        if (err)
            printf(": %s: %s", qmp_json_get_string(err, "class"),
                   qmp_json_get_string(err, "desc"));
        printf(" (%" G_GINT64_FORMAT " attempt%s, %" G_GINT64_FORMAT " ms)", attempts,
               attempts == 1 ? "" : "s", qmp_json_get_int_default(o, "elapsed_ms", 0));
        if (detail)
            printf(": %s", detail);
        if (g_str_equal(state, "tracked"))
            printf(" [still tracked]");
        printf("\n");
    }
    if (err && g_strcmp0(qmp_json_get_string(err, "class"), "InvalidProperty") == 0)
        return CLI_EXIT_USAGE;
    if (!hotplug_outcome_from_name(outcome, &oc))
        return CLI_EXIT_ERROR;
    return hotplug_outcome_exit_code(oc);
}

int
cli_print_op_result(CliContext *ctx, JsonNode *ret)
{
    JsonObject *o = qmp_json_node_object(ret);
    JsonArray *ops = qmp_json_get_array(o, "ops");
    int worst = CLI_EXIT_OK;

    if (ctx->json)
        cli_print_json(ret);
    if (!ops)
        return o ? cli_print_one_op(ctx, o) : CLI_EXIT_ERROR;
    for (guint i = 0; i < json_array_get_length(ops); i++) {
        JsonObject *op = qmp_json_node_object(json_array_get_element(ops, i));
        int rc = op ? cli_print_one_op(ctx, op) : CLI_EXIT_ERROR;
        worst = MAX(worst, rc);
    }
    return worst;
}

int
cli_exec_unplug(CliContext *ctx, const CliCmd *cmd, int argc, char **argv, const char *command)
{
    g_autoptr(JsonNode) ret = NULL;
    g_autofree char **pos = NULL;
    JsonObject *args = json_object_new();
    int rc;

    pos = cli_parse_args(cmd, argc, argv, TRUE, NULL, args);
    if (!pos || g_strv_length(pos) != 2) {
        json_object_unref(args);
        return pos ? cli_usage_error(cmd, g_strv_length(pos) < 2 ? "missing VM or ID"
                                                                : "too many arguments")
                   : CLI_EXIT_USAGE;
    }
    json_object_set_string_member(args, "id", pos[1]);
    rc = cli_request(ctx, pos[0], command, args, &ret);
    return rc ? rc : cli_print_op_result(ctx, ret);
}
