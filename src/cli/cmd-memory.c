/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl memory ...: add, remove and list DIMMs, as the service
 * commands "memory-add", "memory-del" and "memory-list"
 * (service-memory.c). */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "hotplug-memory.h"
#include "qmp-json.h"

/* the long options of memory add, beyond cli_parse_args' own */
enum {
    CMD_MEMORY_OPT_NODE = 256,
    CMD_MEMORY_OPT_ID,
};

/* ---- memory add -------------------------------------------------------------- */

static int
cmd_memory_add_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    static const struct option extra[] = {
        {"node", required_argument, NULL, CMD_MEMORY_OPT_NODE},
        {"id", required_argument, NULL, CMD_MEMORY_OPT_ID},
        {0},
    };
    g_autoptr(JsonObject) parsed = json_object_new();
    g_autoptr(JsonNode) ret = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char **pos = NULL;
    const char *node_text, *id, *hint;
    guint64 size, node = 0;
    JsonObject *args;
    char *end;
    int rc;

    pos = cli_parse_args(cmd, argc, argv, FALSE, extra, parsed);
    if (!pos)
        return CLI_EXIT_USAGE;
    node_text = qmp_json_get_string(parsed, "node");
    if (node_text) {
        node = g_ascii_strtoull(node_text, &end, 10);
        if (!g_ascii_isdigit(*node_text) || *end || node > 65535)
            return cli_usage_error(cmd, "bad NUMA node '%s'", node_text);
    }
    id = qmp_json_get_string(parsed, "id");
    if (id && (!*id || strchr(id, '/')))
        return cli_usage_error(cmd, "bad id '%s'", id);
    if (g_strv_length(pos) != 2)
        return cli_usage_error(cmd, g_strv_length(pos) < 2 ? "missing VM or SIZE"
                                                           : "too many arguments");
    if (!hotplug_memory_parse_size(pos[1], &size, &error))
        return cli_usage_error(cmd, "%s", error->message);

    args = json_object_new();
    json_object_set_int_member(args, "size", (gint64)size);
    if (node_text)
        json_object_set_int_member(args, "node", (gint64)node);
    if (id)
        json_object_set_string_member(args, "id", id);
    rc = cli_request(ctx, pos[0], "memory-add", args, &ret);
    if (rc)
        return rc;
    rc = cli_print_op_result(ctx, ret);
    hint = qmp_json_get_string(qmp_json_node_object(ret), "hint");
    if (hint)
        fprintf(stderr, "hotplugctl: %s: %s\n",
                qmp_json_get_string(qmp_json_node_object(ret), "device"), hint);
    return rc;
}

/* ---- memory del ------------------------------------------------------------------ */

static int
cmd_memory_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    return cli_exec_unplug(ctx, cmd, argc, argv, "memory-del");
}

/* ---- memory list ------------------------------------------------------------------ */

/* 1G, 256M, or bytes: what "memory add" takes */
static char *
cmd_memory_size_text(gint64 size)
{
    if (size < 0)
        return g_strdup("-");
    if (size && size % (G_GINT64_CONSTANT(1) << 30) == 0)
        return g_strdup_printf("%" G_GINT64_FORMAT "G", size >> 30);
    if (size && size % (G_GINT64_CONSTANT(1) << 20) == 0)
        return g_strdup_printf("%" G_GINT64_FORMAT "M", size >> 20);
    return g_strdup_printf("%" G_GINT64_FORMAT, size);
}

static void
cmd_memory_print_table(JsonArray *a)
{
    printf("%-16s %-8s %-10s %-4s %-4s %-20s %s\n", "ID", "TYPE", "SIZE", "NODE", "SLOT",
           "BACKEND", "PENDING");
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(a, i));
        JsonObject *p = qmp_json_get_object(e, "pending");
        gint64 size = qmp_json_get_int_default(e, "size", -1);
        gint64 node = qmp_json_get_int_default(e, "node", -1);
        gint64 slot = qmp_json_get_int_default(e, "slot", -1);
        g_autofree char *sizetext = cmd_memory_size_text(size);
        g_autofree char *nodetext = node >= 0 ? g_strdup_printf("%" G_GINT64_FORMAT, node)
                                              : g_strdup("-");
        g_autofree char *slottext = slot >= 0 ? g_strdup_printf("%" G_GINT64_FORMAT, slot)
                                              : g_strdup("-");
        g_autofree char *pending =
            p ? g_strdup_printf("%s %s (op %" G_GINT64_FORMAT ")", qmp_json_get_string(p, "action"),
                                qmp_json_get_string(p, "state"),
                                qmp_json_get_int_default(p, "op", 0))
              : g_strdup("-");
        const char *eid = qmp_json_get_string(e, "id");
        const char *type = qmp_json_get_string(e, "type");
        const char *be = qmp_json_get_string(e, "backend");

        printf("%-16s %-8s %-10s %-4s %-4s %-20s %s\n", eid ? eid : "-", type ? type : "-",
               sizetext, nodetext, slottext, be ? be : "-", pending);
    }
}

static int
cmd_memory_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *o;
    int rc;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    rc = cli_request(ctx, argv[1], "memory-list", json_object_new(), &ret);
    if (rc)
        return rc;
    o = qmp_json_node_object(ret);
    if (!o) {
        fprintf(stderr, "hotplugctl: memory-list: the reply is not an object\n");
        return CLI_EXIT_ERROR;
    }
    if (ctx->json)
        cli_print_json(ret);
    else
        cmd_memory_print_table(qmp_json_get_array(o, "memory"));
    return CLI_EXIT_OK;
}

#define CLI_MEMORY_UNPLUG_HELP                                                                 \
    "  --timeout SEC          deadline for each attempt (default 30)\n"                         \
    "  --retry N              after guest-error or not-deleted, ask again up to N times\n"     \
    "  --retry-interval SEC   at least SEC between attempts (default 2)\n"                      \
    "  --no-wait              return once QEMU accepted the request (exit 0)\n"                \
    "\n"                                                                                       \
    "The DIMM's backend object is deleted only after QEMU confirmed the DIMM gone.  A\n"      \
    "guest that cannot offline the memory refuses with ACPI_DEVICE_OST (status 0x82):\n"      \
    "guest-error (exit 4); --retry asks again.  Other outcomes: deleted (0), rejected\n"      \
    "(3), not-deleted (5), vm-gone (6)."

const CliCmd cli_memory_cmds[] = {
    {
        .group = "memory",
        .name = "add",
        .usage = "VM SIZE [--node N] [--id ID]",
        .summary = "hot-plug a DIMM (memory-backend-ram + pc-dimm); outcome added or rejected",
        .help = "SIZE takes K, M, G or T suffixes (binary) and must be a multiple of 2M\n"
                "(128M multiples suit Linux guests).  ID defaults to the first free dimmN;\n"
                "the backend object is mem-ID.  If device_add fails the backend is deleted\n"
                "again.  No free slot or no room below maxmem is refused before anything\n"
                "is sent (exit 1).  Exit 0 added, 2 usage, 3 rejected by QEMU.",
        .exec = cmd_memory_add_exec,
    },
    {
        .group = "memory",
        .name = "del",
        .usage = "VM ID [--timeout SEC] [--retry N] [--retry-interval SEC] [--no-wait]",
        .summary = "hot-unplug a DIMM, then delete its backend; wait for the real outcome",
        .help = CLI_MEMORY_UNPLUG_HELP,
        .exec = cmd_memory_del_exec,
    },
    {
        .group = "memory",
        .name = "list",
        .usage = "VM",
        .summary = "memory devices (query-memory-devices): size, node, slot, pending state",
        .help = NULL,
        .exec = cmd_memory_list_exec,
    },
    {0},
};
