/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl ops: operations in flight and recently finished. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "qmp-json.h"

static int
cmd_ops_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *args = json_object_new();
    JsonArray *a;
    int rc;

    if (argc > 2) {
        json_object_unref(args);
        return cli_usage_error(cmd, "too many arguments");
    }
    if (argc == 2 && cli_vm_is_path(argv[1])) {
        json_object_unref(args);
        return cli_usage_error(cmd, "ops needs hotplugd: in direct mode nothing outlives "
                                    "the command that started it");
    }
    if (argc == 2)
        json_object_set_string_member(args, "vm", argv[1]);
    rc = cli_request_daemon(ctx, "ops", args, &ret);
    if (rc)
        return rc;
    if (ctx->json) {
        cli_print_json(ret);
        return CLI_EXIT_OK;
    }
    a = qmp_json_node_array(ret);
    printf("%-6s %-14s %-16s %-7s %-10s %-13s %-8s %s\n", "OP", "VM", "DEVICE", "ACTION",
           "STATE", "OUTCOME", "ATTEMPT", "DEADLINE");
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *o = qmp_json_node_object(json_array_get_element(a, i));
        gint64 left = qmp_json_get_int_default(o, "deadline_in_ms", -1);
        g_autofree char *deadline = left >= 0 ? g_strdup_printf("%.1f s", left / 1000.0)
                                              : g_strdup("-");
        g_autofree char *attempt = g_strdup_printf(
            "%" G_GINT64_FORMAT "/%" G_GINT64_FORMAT, qmp_json_get_int_default(o, "attempts", 0),
            qmp_json_get_int_default(o, "max_attempts", 0));
        printf("%-6" G_GINT64_FORMAT " %-14s %-16s %-7s %-10s %-13s %-8s %s\n",
               qmp_json_get_int_default(o, "op", 0), qmp_json_get_string(o, "vm"),
               qmp_json_get_string(o, "device"), qmp_json_get_string(o, "action"),
               qmp_json_get_string(o, "state"), qmp_json_get_string(o, "outcome"), attempt,
               deadline);
    }
    return CLI_EXIT_OK;
}

const CliCmd cli_ops_cmds[] = {
    {
        .group = "ops",
        .name = "",
        .usage = "[VM]",
        .summary = "operations in flight or still tracked, with state and deadline",
        .help = "Needs hotplugd.  Lists every operation that has not ended, and unplugs that\n"
                "ended not-deleted or guest-error but are still watched for a late removal.",
        .exec = cmd_ops_exec,
    },
    {0},
};
