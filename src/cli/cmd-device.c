/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl device ...: add, remove and list devices. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "qmp-json.h"

static int
cmd_device_add_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *args;
    JsonArray *props;
    int rc;

    if (argc < 4)
        return cli_usage_error(cmd, "missing %s", argc < 2 ? "VM" : argc < 3 ? "DRIVER" : "ID");
    props = json_array_new();
    for (int i = 4; i < argc; i++) {
        if (argv[i][0] == '-') {
            json_array_unref(props);
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        }
        if (g_str_has_prefix(argv[i], "id=") || g_str_has_prefix(argv[i], "driver=")) {
            json_array_unref(props);
            return cli_usage_error(cmd, "'%s': the %s argument names the device's %s, not a "
                                   "property", argv[i], argv[i][0] == 'i' ? "ID" : "DRIVER",
                                   argv[i][0] == 'i' ? "id" : "model");
        }
        json_array_add_string_element(props, argv[i]);
    }
    args = json_object_new();
    json_object_set_string_member(args, "driver", argv[2]);
    json_object_set_string_member(args, "id", argv[3]);
    json_object_set_array_member(args, "props", props);
    rc = cli_request(ctx, argv[1], "device-add", args, &ret);
    return rc ? rc : cli_print_op_result(ctx, ret);
}

static int
cmd_device_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    return cli_exec_unplug(ctx, cmd, argc, argv, "device-del");
}

static int
cmd_device_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonArray *a;
    int rc;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    rc = cli_request(ctx, argv[1], "device-list", json_object_new(), &ret);
    if (rc)
        return rc;
    if (ctx->json) {
        cli_print_json(ret);
        return CLI_EXIT_OK;
    }
    a = qmp_json_node_array(ret);
    printf("%-24s %-32s %s\n", "ID", "TYPE", "PENDING");
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(a, i));
        JsonObject *p = qmp_json_get_object(e, "pending");
        g_autofree char *pending = p ? g_strdup_printf("%s %s (op %" G_GINT64_FORMAT ")",
                                                       qmp_json_get_string(p, "action"),
                                                       qmp_json_get_string(p, "state"),
                                                       qmp_json_get_int_default(p, "op", 0))
                                     : g_strdup("-");
        printf("%-24s %-32s %s\n", qmp_json_get_string(e, "id"), qmp_json_get_string(e, "type"),
               pending);
    }
    return CLI_EXIT_OK;
}

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
        .exec = cmd_device_list_exec,
    },
    {0},
};
