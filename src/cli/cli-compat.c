/* hotplugctl: the older direct-mode API, kept while verbs move to service
 * commands (cli_request).  Each function is a thin layer over the service
 * and request code, not a second engine. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include "cli.h"
#include "hotplug-service.h"
#include "qmp-json.h"

#define CLI_CONNECT_TIMEOUT_MS 15000

char **
cli_parse_unplug_args(const CliCmd *cmd, int argc, char **argv, CliUnplugArgs *out)
{
    g_autoptr(JsonObject) args = json_object_new();
    char **pos = cli_parse_args(cmd, argc, argv, TRUE, NULL, args);
    JsonNode *n;

    *out = (CliUnplugArgs){.unplug.retry_interval_ms = 2000};
    if (!pos)
        return NULL;
    if ((n = json_object_get_member(args, "timeout")))
        out->unplug.timeout_ms = (guint)(json_node_get_double(n) * 1000 + 0.5);
    if ((n = json_object_get_member(args, "retry")))
        out->unplug.retries = (guint)json_node_get_int(n);
    if ((n = json_object_get_member(args, "retry-interval")))
        out->unplug.retry_interval_ms = (guint)(json_node_get_double(n) * 1000 + 0.5);
    out->no_wait = json_object_has_member(args, "no-wait");
    return pos;
}

HotplugVm *
cli_engine_open(CliContext *ctx, const char *vm, GError **error)
{
    g_autoptr(QmpConn) conn = NULL;
    HotplugVmOptions opts = {.gone_on_close = TRUE};

    if (!cli_vm_is_path(vm)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "this verb works in direct mode only for now: give the VM's QMP socket "
                    "path (anything with a '/'), not the name '%s'", vm);
        return NULL;
    }
    conn = qmp_conn_new(ctx->base, vm, NULL);
    if (!qmp_conn_open(conn, error) || !qmp_conn_wait_ready(conn, CLI_CONNECT_TIMEOUT_MS, error))
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
    HotplugOp *op;
    gboolean no_wait;
    gboolean done;
} CliCompatWait;

static void
cli_compat_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    CliCompatWait *w = opaque;

    if (op == w->op && ev == HOTPLUG_OP_EV_OUTCOME)
        w->done = TRUE;
}

static void
cli_compat_poll_cb(evutil_socket_t fd, short what, void *opaque)
{
    CliCompatWait *w = opaque;

    if (w->no_wait && hotplug_op_get_state(w->op) != HOTPLUG_OP_SENDING)
        w->done = TRUE;
}

int
cli_op_wait(CliContext *ctx, HotplugVm *vm, HotplugOp *op, gboolean no_wait)
{
    static const HotplugVmListener l = {.op = cli_compat_op_cb};
    CliCompatWait w = {op, no_wait, hotplug_op_is_final(op)};
    struct timeval tv = {0, 10000};
    g_autoptr(JsonNode) result = NULL;

    if (!w.done) {
        guint id = hotplug_vm_add_listener(vm, &l, &w);
        struct event *poll = event_new(ctx->base, -1, EV_PERSIST, cli_compat_poll_cb, &w);
        event_add(poll, &tv);
        qmp_loop_run_until(ctx->base, &w.done, 0);
        event_free(poll);
        hotplug_vm_remove_listener(vm, id);
    }
    result = hotplug_op_to_json(op);
    return cli_print_op_result(ctx, result);
}

int
cli_op_error(CliContext *ctx, const GError *error)
{
    return cli_error(ctx, cli_exit_for_error(error), error);
}
