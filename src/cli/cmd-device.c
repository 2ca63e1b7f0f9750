/* hotplugctl device ...: add, remove and list devices. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "qmp-json.h"

#define CLI_QUERY_TIMEOUT_MS 30000

static int
cmd_device_add_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    HotplugVm *vm;
    int rc;

    if (argc < 4)
        return cli_usage_error(cmd, "missing %s", argc < 2 ? "VM" : argc < 3 ? "DRIVER" : "ID");
    for (int i = 4; i < argc; i++)
        if (argv[i][0] == '-')
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    vm = cli_engine_open(ctx, argv[1], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    op = hotplug_vm_plug_device(vm, argv[2], argv[3], (const char *const *)argv + 4, &error);
    if (!op) {
        rc = cli_op_error(ctx, error);
    } else {
        rc = cli_op_wait(ctx, vm, op, FALSE);
    }
    cli_engine_close(vm);
    return rc;
}

static int
cmd_device_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autofree char **pos = NULL;
    CliUnplugArgs args;
    HotplugVm *vm;
    int rc;

    pos = cli_parse_unplug_args(cmd, argc, argv, &args);
    if (!pos)
        return CLI_EXIT_USAGE;
    if (g_strv_length(pos) != 2)
        return cli_usage_error(cmd, g_strv_length(pos) < 2 ? "missing VM or ID"
                                                           : "too many arguments");
    vm = cli_engine_open(ctx, pos[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    op = hotplug_vm_unplug(vm, HOTPLUG_KIND_DEVICE, pos[1], &args.unplug, NULL, &error);
    rc = op ? cli_op_wait(ctx, vm, op, args.no_wait) : cli_op_error(ctx, error);
    cli_engine_close(vm);
    return rc;
}

typedef struct {
    gboolean done;
    JsonNode *devices;
    GError *error;
} CliDevices;

static void
cmd_device_list_cb(HotplugVm *vm, JsonNode *devices, const GError *error, gpointer opaque)
{
    CliDevices *d = opaque;

    d->done = TRUE;
    if (error)
        d->error = g_error_copy(error);
    else
        d->devices = json_node_ref(devices);
}

static int
cmd_device_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    CliDevices d = {0};
    HotplugVm *vm;
    int rc = CLI_EXIT_OK;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    vm = cli_engine_open(ctx, argv[1], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    if (!hotplug_vm_query_devices(vm, cmd_device_list_cb, &d, &error) ||
        !qmp_loop_run_until(ctx->base, &d.done, CLI_QUERY_TIMEOUT_MS)) {
        if (!error)
            g_set_error(&error, QMP_ERROR, QMP_ERROR_TIMEOUT, "no answer from %s", argv[1]);
        rc = cli_op_error(ctx, error);
    } else if (d.error) {
        rc = cli_op_error(ctx, d.error);
        g_error_free(d.error);
    } else if (ctx->json) {
        JsonObject *o = json_object_new();
        g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(), o);
        json_object_set_string_member(o, "vm", argv[1]);
        json_object_set_member(o, "devices", json_node_ref(d.devices));
        json_object_unref(o);
        cli_print_json(root);
    } else {
        JsonArray *a = json_node_get_array(d.devices);
        printf("%-24s %-32s %s\n", "ID", "TYPE", "PENDING");
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonObject *e = json_array_get_object_element(a, i);
            JsonObject *p = qmp_json_get_object(e, "pending");
            g_autofree char *pending = p ? g_strdup_printf("%s %s (op %" G_GINT64_FORMAT ")",
                                                           qmp_json_get_string(p, "action"),
                                                           qmp_json_get_string(p, "state"),
                                                           qmp_json_get_int_default(p, "op", 0))
                                         : g_strdup("-");
            printf("%-24s %-32s %s\n", qmp_json_get_string(e, "id"),
                   qmp_json_get_string(e, "type"), pending);
        }
    }
    if (d.devices)
        json_node_unref(d.devices);
    cli_engine_close(vm);
    return rc;
}

#define CLI_UNPLUG_HELP                                                                      \
    "  --timeout SEC          deadline for each attempt (default: 5 for PCI devices,\n"      \
    "                         30 for vCPUs and memory)\n"                                    \
    "  --retry N              after guest-error or not-deleted, ask again up to N times\n"   \
    "  --retry-interval SEC   at least SEC between attempts (default 2)\n"                    \
    "  --no-wait              return once QEMU accepted the request (exit 0)\n"              \
    "\n"                                                                                     \
    "Outcomes: deleted (exit 0), rejected (3: QEMU refused the command), guest-error\n"      \
    "(4: the guest refused), not-deleted (5: still present at the deadline),\n"              \
    "vm-gone (6: QEMU went away).  A removal is always confirmed against QEMU's\n"           \
    "own device tree before not-deleted is reported."

const CliCmd cli_device_cmds[] = {
    {
        .group = "device",
        .name = "add",
        .usage = "VM DRIVER ID [PROP=VALUE ...]",
        .summary = "hot-plug a device (device_add); outcome added or rejected",
        .help = "Each PROP=VALUE is converted to the type QEMU gives for that property in\n"
                "device-list-properties (bootindex=1 goes out as a number, bus=pci.0 as a\n"
                "string, on/off as a boolean, sizes with K/M/G suffixes as numbers).  A\n"
                "property the driver does not have is refused before anything is sent\n"
                "(exit 2).  Exit 0 added, 3 rejected by QEMU (its error class and text are\n"
                "shown), 6 VM gone.",
        .exec = cmd_device_add_exec,
    },
    {
        .group = "device",
        .name = "del",
        .usage = "VM ID [--timeout SEC] [--retry N] [--retry-interval SEC] [--no-wait]",
        .summary = "hot-unplug a device (device_del) and wait for the real outcome",
        .help = CLI_UNPLUG_HELP,
        .exec = cmd_device_del_exec,
    },
    {
        .group = "device",
        .name = "list",
        .usage = "VM",
        .summary = "devices under /machine/peripheral, with any pending operation",
        .help = NULL,
        .exec = cmd_device_list_exec,
    },
    {0},
};
