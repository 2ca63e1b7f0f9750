/* hotplugctl: running one operation in direct mode and telling what happened. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

#define CLI_PROGRESS_MS 100
#define CLI_DEFAULT_RETRY_INTERVAL_MS 2000

gboolean
cli_parse_seconds(const char *text, guint *ms)
{
    char *end = NULL;
    double v = g_ascii_strtod(text, &end);

    if (!*text || *end || !isfinite(v) || v < 0 || v > 86400.0 * 365)
        return FALSE;
    *ms = (guint)llround(v * 1000.0);
    return TRUE;
}

char **
cli_parse_unplug_args(const CliCmd *cmd, int argc, char **argv, CliUnplugArgs *out)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"retry", required_argument, NULL, 'r'},
        {"retry-interval", required_argument, NULL, 'i'},
        {"no-wait", no_argument, NULL, 'n'},
        {0},
    };
    gboolean interval_given = FALSE;
    GPtrArray *pos = g_ptr_array_new();
    char *end;
    int ch;

    *out = (CliUnplugArgs){0};
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "-", opts, NULL)) != -1) {
        switch (ch) {
        case 1:
            g_ptr_array_add(pos, optarg);
            break;
        case 't':
            if (!cli_parse_seconds(optarg, &out->unplug.timeout_ms) || !out->unplug.timeout_ms)
                goto bad_value;
            break;
        case 'r': {
            guint64 n = g_ascii_strtoull(optarg, &end, 10);
            if (!*optarg || *end || n > 1000)
                goto bad_value;
            out->unplug.retries = (guint)n;
            break;
        }
        case 'i':
            if (!cli_parse_seconds(optarg, &out->unplug.retry_interval_ms))
                goto bad_value;
            interval_given = TRUE;
            break;
        case 'n':
            out->no_wait = TRUE;
            break;
        default:
            cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
            g_ptr_array_free(pos, TRUE);
            return NULL;
        }
    }
    if (!interval_given)
        out->unplug.retry_interval_ms = CLI_DEFAULT_RETRY_INTERVAL_MS;
    if (out->no_wait && out->unplug.retries) {
        cli_usage_error(cmd, "--retry needs to wait: it cannot go with --no-wait in direct mode");
        g_ptr_array_free(pos, TRUE);
        return NULL;
    }
    g_ptr_array_add(pos, NULL);
    return (char **)g_ptr_array_free(pos, FALSE);

bad_value:
    cli_usage_error(cmd, "bad value '%s' for %s", optarg, argv[optind - 1]);
    g_ptr_array_free(pos, TRUE);
    return NULL;
}

HotplugVm *
cli_engine_open(CliContext *ctx, const char *vm, GError **error)
{
    g_autoptr(QmpConn) conn = cli_vm_connect(ctx, vm, error);
    HotplugVmOptions opts = {.gone_on_close = TRUE};

    if (!conn)
        return NULL;
    return hotplug_vm_new(vm, conn, &opts);
}

void
cli_engine_close(HotplugVm *vm)
{
    QmpConn *conn = qmp_conn_ref(hotplug_vm_get_conn(vm));

    hotplug_vm_free(vm);
    qmp_conn_close(conn);
    qmp_conn_unref(conn);
}

typedef struct {
    CliContext *ctx;
    HotplugOp *op;
    gboolean no_wait;
    gboolean done;
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
cli_op_event_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    CliWait *w = opaque;

    if (op != w->op)
        return;
    if (ev == HOTPLUG_OP_EV_ATTEMPT_RESULT && !w->ctx->json) {
        const char *detail = hotplug_op_get_detail(op);
        cli_progress_clear(w);
        fprintf(stderr, "%s: attempt %u/%u: %s%s%s%s; next attempt in %.1f s\n",
                hotplug_op_get_device(op), hotplug_op_get_attempts(op),
                hotplug_op_get_max_attempts(op),
                hotplug_outcome_name(hotplug_op_get_attempt_outcome(op)), detail ? " (" : "",
                detail ? detail : "", detail ? ")" : "",
                MAX(0, hotplug_op_get_next_attempt_ms(op)) / 1000.0);
    }
    if (ev == HOTPLUG_OP_EV_OUTCOME)
        w->done = TRUE;
}

static void
cli_tick_cb(evutil_socket_t fd, short what, void *opaque)
{
    CliWait *w = opaque;
    HotplugOp *op = w->op;
    gint64 remaining = hotplug_op_get_remaining_ms(op);

    if (w->no_wait && hotplug_op_get_state(op) != HOTPLUG_OP_SENDING) {
        w->done = TRUE;
        return;
    }
    if (w->ctx->tty && !w->ctx->json && hotplug_op_get_action(op) == HOTPLUG_ACTION_UNPLUG) {
        fprintf(stderr, "\r\033[K%s: %s, %.1f s", hotplug_op_get_device(op),
                hotplug_op_state_name(hotplug_op_get_state(op)),
                hotplug_op_get_elapsed_ms(op) / 1000.0);
        if (remaining >= 0)
            fprintf(stderr, ", deadline in %.1f s", remaining / 1000.0);
        fprintf(stderr, " (attempt %u/%u)", hotplug_op_get_attempts(op),
                hotplug_op_get_max_attempts(op));
        w->progress_shown = TRUE;
    }
}

static void
cli_op_print(CliContext *ctx, HotplugOp *op, gboolean no_wait)
{
    const GError *err = hotplug_op_get_error(op);
    const char *detail = hotplug_op_get_detail(op);
    HotplugOutcome outcome = hotplug_op_get_outcome(op);

    if (ctx->json) {
        g_autoptr(JsonNode) node = hotplug_op_to_json(op);
        cli_print_json(node);
        return;
    }
    if (outcome == HOTPLUG_OUTCOME_NONE && no_wait) {
        printf("%s: unplug requested; QEMU accepted it (operation %" G_GUINT64_FORMAT ")\n",
               hotplug_op_get_device(op), hotplug_op_get_id(op));
        return;
    }
    printf("%s: %s", hotplug_op_get_device(op), hotplug_outcome_name(outcome));
    if (err) {
        const char *cls = qmp_error_class_name(err);
        printf(": %s%s%s", cls ? cls : "", cls ? ": " : "", err->message);
    }
    printf(" (%u attempt%s, %" G_GINT64_FORMAT " ms)", hotplug_op_get_attempts(op),
           hotplug_op_get_attempts(op) == 1 ? "" : "s", hotplug_op_get_elapsed_ms(op));
    if (detail)
        printf(": %s", detail);
    printf("\n");
}

int
cli_op_wait(CliContext *ctx, HotplugVm *vm, HotplugOp *op, gboolean no_wait)
{
    static const HotplugVmListener l = {.op = cli_op_event_cb};
    struct timeval tv = {0, CLI_PROGRESS_MS * 1000};
    CliWait w = {ctx, op, no_wait, FALSE, FALSE, NULL};
    const GError *err;
    guint id;

    if (!hotplug_op_is_final(op)) {
        id = hotplug_vm_add_listener(vm, &l, &w);
        w.tick = event_new(ctx->base, -1, EV_PERSIST, cli_tick_cb, &w);
        event_add(w.tick, &tv);
        qmp_loop_run_until(ctx->base, &w.done, 0);
        event_free(w.tick);
        hotplug_vm_remove_listener(vm, id);
        cli_progress_clear(&w);
    }
    cli_op_print(ctx, op, no_wait);
    err = hotplug_op_get_error(op);
    if (err && err->domain == HOTPLUG_ERROR &&
        (err->code == HOTPLUG_ERROR_BAD_PROPERTY || err->code == HOTPLUG_ERROR_INVALID))
        return CLI_EXIT_USAGE;
    if (!hotplug_op_is_final(op))
        return CLI_EXIT_OK; /* --no-wait, accepted */
    return hotplug_outcome_exit_code(hotplug_op_get_outcome(op));
}

int
cli_op_error(CliContext *ctx, const GError *error)
{
    int code = CLI_EXIT_ERROR;

    if (error->domain == HOTPLUG_ERROR) {
        switch (error->code) {
        case HOTPLUG_ERROR_INVALID:
        case HOTPLUG_ERROR_BAD_PROPERTY:
            code = CLI_EXIT_USAGE;
            break;
        case HOTPLUG_ERROR_VM_GONE:
            code = CLI_EXIT_VM_GONE;
            break;
        default:
            break;
        }
    }
    return cli_error(ctx, code, error);
}
