/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl vcpu ...: list, set, enable and disable vCPUs, as the
 * service commands "vcpu-list", "vcpu-set", "vcpu-enable" and
 * "vcpu-disable" (service-vcpu.c). */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "qmp-json.h"

/* the long option of vcpu enable, beyond cli_parse_args' own */
enum {
    CMD_VCPU_OPT_NODE = 256,
};

static gboolean
cmd_vcpu_parse_uint(const char *text, guint max, guint *out)
{
    char *end = NULL;
    guint64 v;

    if (!text || !g_ascii_isdigit(*text))
        return FALSE;
    v = g_ascii_strtoull(text, &end, 10);
    if (*end || v > max)
        return FALSE;
    *out = (guint)v;
    return TRUE;
}

/* A JSON integer, or -1. */
static gint64
cmd_vcpu_node_int(JsonNode *n)
{
    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
        return -1;
    return json_node_get_int(n);
}

/* Print each op of an {"ops": [...]} reply (one JSON line each with
 * --json) and, for a rejected one, what QEMU's error means ("hint").  The
 * exit code is the worst one. */
static int
cmd_vcpu_print_ops(CliContext *ctx, JsonNode *ret)
{
    JsonArray *ops = qmp_json_get_array(qmp_json_node_object(ret), "ops");
    int worst = CLI_EXIT_OK;

    if (!ops) {
        fprintf(stderr, "hotplugctl: the reply has no \"ops\"\n");
        return CLI_EXIT_ERROR;
    }
    for (guint i = 0; i < json_array_get_length(ops); i++) {
        JsonNode *n = json_array_get_element(ops, i);
        JsonObject *o = qmp_json_node_object(n);
        const char *hint = qmp_json_get_string(o, "hint");
        int rc = cli_print_op_result(ctx, n);

        if (hint)
            fprintf(stderr, "hotplugctl: %s: %s\n", qmp_json_get_string(o, "device"), hint);
        worst = MAX(worst, rc);
    }
    return worst;
}

/* ---- vcpu list ------------------------------------------------------------ */

static char *
cmd_vcpu_topo_cell(JsonObject *row, const char *member)
{
    gint64 v;

    return qmp_json_get_int(row, member, &v) && v >= 0 ? g_strdup_printf("%" G_GINT64_FORMAT, v)
                                                       : g_strdup("-");
}

static void
cmd_vcpu_print_table(JsonObject *list)
{
    JsonArray *a = qmp_json_get_array(list, "entities");
    guint n_rows = a ? json_array_get_length(a) : 0;
    JsonObject *first = n_rows ? qmp_json_node_object(json_array_get_element(a, 0)) : NULL;
    gint64 per_entity = qmp_json_get_int_default(first, "vcpus-count", 1);

    printf("%-7s %-6s %-6s %-4s %-7s %-4s %-6s %-4s %-10s %-10s %s\n", "VCPU", "ENTITY",
           "SOCKET", "DIE", "CLUSTER", "CORE", "THREAD", "NODE", "STATE", "THREAD-ID",
           "QOM-PATH");
    for (guint i = 0; i < n_rows; i++) {
        JsonObject *row = qmp_json_node_object(json_array_get_element(a, i));
        JsonArray *vl = qmp_json_get_array(row, "vcpus");
        JsonArray *tids = qmp_json_get_array(row, "thread-ids");
        guint n = vl ? json_array_get_length(vl) : 0;
        gint64 lo = n ? cmd_vcpu_node_int(json_array_get_element(vl, 0)) : -1;
        gint64 hi = n ? cmd_vcpu_node_int(json_array_get_element(vl, n - 1)) : -1;
        g_autofree char *vcpus = n > 1 ? g_strdup_printf("%" G_GINT64_FORMAT "-%" G_GINT64_FORMAT,
                                                         lo, hi)
                                       : g_strdup_printf("%" G_GINT64_FORMAT, lo);
        g_autofree char *socket = cmd_vcpu_topo_cell(row, "socket-id");
        g_autofree char *die = cmd_vcpu_topo_cell(row, "die-id");
        g_autofree char *cluster = cmd_vcpu_topo_cell(row, "cluster-id");
        g_autofree char *core = cmd_vcpu_topo_cell(row, "core-id");
        g_autofree char *thread = cmd_vcpu_topo_cell(row, "thread-id");
        g_autofree char *node = cmd_vcpu_topo_cell(row, "node");
        g_autoptr(GString) tidtext = g_string_new(NULL);
        const char *path = qmp_json_get_string(row, "qom-path");
        const char *state = qmp_json_get_string(row, "state");

        for (guint t = 0; tids && t < json_array_get_length(tids); t++) {
            gint64 tid = cmd_vcpu_node_int(json_array_get_element(tids, t));
            if (tid >= 0)
                g_string_append_printf(tidtext, "%s%" G_GINT64_FORMAT, tidtext->len ? "," : "",
                                       tid);
        }
        printf("%-7s %-6" G_GINT64_FORMAT " %-6s %-4s %-7s %-4s %-6s %-4s %-10s %-10s %s%s\n",
               vcpus, qmp_json_get_int_default(row, "entity", i), socket, die, cluster, core,
               thread, node, state ? state : "?", tidtext->len ? tidtext->str : "-",
               path ? path : "-", qmp_json_get_bool_default(row, "boot", FALSE) ? " (boot)" : "");
    }
    printf("%" G_GINT64_FORMAT " of at most %" G_GINT64_FORMAT " vCPUs present; type %s, %"
           G_GINT64_FORMAT " vCPU%s per entity\n",
           qmp_json_get_int_default(list, "vcpus", 0), qmp_json_get_int_default(list, "maxcpus", 0),
           qmp_json_get_string(first, "type") ?: "?", per_entity, per_entity == 1 ? "" : "s");
}

static int
cmd_vcpu_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *o;
    int rc;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    rc = cli_request(ctx, argv[1], "vcpu-list", json_object_new(), &ret);
    if (rc)
        return rc;
    o = qmp_json_node_object(ret);
    if (!o) {
        fprintf(stderr, "hotplugctl: vcpu-list: the reply is not an object\n");
        return CLI_EXIT_ERROR;
    }
    if (ctx->json)
        cli_print_json(ret);
    else
        cmd_vcpu_print_table(o);
    return CLI_EXIT_OK;
}

/* ---- vcpu set --------------------------------------------------------------- */

static int
cmd_vcpu_set_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    g_autofree char **pos = NULL;
    JsonObject *args = json_object_new();
    const char *vm, *action;
    JsonObject *o;
    guint count, n;
    int rc;

    pos = cli_parse_args(cmd, argc, argv, TRUE, NULL, args);
    n = pos ? g_strv_length(pos) : 0;
    if (!pos || n != 2 || !cmd_vcpu_parse_uint(pos[1], 65536, &count) || count == 0) {
        json_object_unref(args);
        if (!pos)
            return CLI_EXIT_USAGE;
        if (n != 2)
            return cli_usage_error(cmd, n < 2 ? "missing VM or COUNT" : "too many arguments");
        return cli_usage_error(cmd, "bad COUNT '%s': a number of vCPUs, at least 1", pos[1]);
    }
    json_object_set_int_member(args, "count", count);
    rc = cli_request(ctx, pos[0], "vcpu-set", args, &ret);
    if (rc)
        return rc;
    o = qmp_json_node_object(ret);
    vm = qmp_json_get_string(o, "vm") ?: pos[0];
    if (o && !qmp_json_get_bool_default(o, "changed", TRUE)) {
        if (ctx->json) {
            JsonObject *r = json_object_new();
            g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(), r);
            json_object_set_string_member(r, "vm", vm);
            json_object_set_int_member(r, "vcpus", count);
            json_object_set_boolean_member(r, "changed", FALSE);
            json_object_unref(r);
            cli_print_json(root);
        } else {
            printf("%s has %u vCPUs already\n", vm, count);
        }
        return CLI_EXIT_OK;
    }
    action = qmp_json_get_string(o, "action");
    if (!ctx->json && action) {
        gint64 k = qmp_json_get_int_default(o, "n_entities", 0);
        fprintf(stderr, "%s: %" G_GINT64_FORMAT " -> %u vCPUs: %s %" G_GINT64_FORMAT " entit%s\n",
                vm, qmp_json_get_int_default(o, "from", 0), count,
                g_str_equal(action, "plug") ? "plugging" : "unplugging", k, k == 1 ? "y" : "ies");
    }
    return cmd_vcpu_print_ops(ctx, ret);
}

/* ---- vcpu enable / disable ---------------------------------------------------- */

/* VCPU_ID words into a JSON array, or NULL after a usage error. */
static JsonArray *
cmd_vcpu_parse_ids(const CliCmd *cmd, char **words)
{
    JsonArray *ids = json_array_new();

    for (guint i = 0; words[i]; i++) {
        guint v;
        if (!cmd_vcpu_parse_uint(words[i], 65535, &v)) {
            cli_usage_error(cmd, "bad VCPU_ID '%s': a vCPU number as 'vcpu list' shows it",
                            words[i]);
            json_array_unref(ids);
            return NULL;
        }
        json_array_add_int_element(ids, v);
    }
    return ids;
}

static int
cmd_vcpu_enable_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    static const struct option extra[] = {
        {"node", required_argument, NULL, CMD_VCPU_OPT_NODE},
        {0},
    };
    g_autoptr(JsonObject) parsed = json_object_new();
    g_autoptr(JsonNode) ret = NULL;
    g_autofree char **pos = NULL;
    const char *text;
    JsonObject *args;
    JsonArray *ids;
    guint node = 0;
    gboolean with_node;
    int rc;

    pos = cli_parse_args(cmd, argc, argv, FALSE, extra, parsed);
    if (!pos)
        return CLI_EXIT_USAGE;
    text = qmp_json_get_string(parsed, "node");
    with_node = text != NULL;
    if (text && !cmd_vcpu_parse_uint(text, 65535, &node))
        return cli_usage_error(cmd, "bad NUMA node '%s'", text);
    if (!pos[0])
        return cli_usage_error(cmd, "missing VM");
    if (!pos[1] && !with_node)
        return cli_usage_error(cmd, "missing VCPU_ID (or --node N to pick a free one)");
    ids = cmd_vcpu_parse_ids(cmd, pos + 1);
    if (!ids)
        return CLI_EXIT_USAGE;
    args = json_object_new();
    json_object_set_array_member(args, "ids", ids);
    if (with_node)
        json_object_set_int_member(args, "node", node);
    rc = cli_request(ctx, pos[0], "vcpu-enable", args, &ret);
    return rc ? rc : cmd_vcpu_print_ops(ctx, ret);
}

static int
cmd_vcpu_disable_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    g_autofree char **pos = NULL;
    JsonObject *args = json_object_new();
    JsonArray *ids = NULL;
    int rc;

    pos = cli_parse_args(cmd, argc, argv, TRUE, NULL, args);
    if (!pos || g_strv_length(pos) < 2 || !(ids = cmd_vcpu_parse_ids(cmd, pos + 1))) {
        json_object_unref(args);
        if (pos && g_strv_length(pos) < 2)
            return cli_usage_error(cmd, "missing %s", pos[0] ? "VCPU_ID" : "VM");
        return CLI_EXIT_USAGE;
    }
    json_object_set_array_member(args, "ids", ids);
    rc = cli_request(ctx, pos[0], "vcpu-disable", args, &ret);
    return rc ? rc : cmd_vcpu_print_ops(ctx, ret);
}

#define CLI_VCPU_UNPLUG_HELP                                                                  \
    "  --timeout SEC          deadline for each attempt (default 60)\n"                       \
    "  --retry N              after guest-error or not-deleted, ask again up to N times\n"   \
    "  --retry-interval SEC   at least SEC between attempts (default 2)\n"                    \
    "  --no-wait              return once QEMU accepted the request (exit 0)\n"              \
    "\n"                                                                                     \
    "Each entity is unplugged with device_del and its removal confirmed against QEMU\n"     \
    "(its device is gone from /machine/peripheral, and so its slot from\n"                  \
    "query-hotpluggable-cpus), whatever events did or did not arrive.  Outcomes:\n"          \
    "deleted (0), rejected (3), guest-error (4: ACPI_DEVICE_OST failure or\n"              \
    "DEVICE_UNPLUG_GUEST_ERROR), not-deleted (5), vm-gone (6).  Several entities are\n"      \
    "unplugged at once and each is reported; the exit status is the worst one.\n"           \
    "Boot vCPUs (created with -smp) are never unplugged."

const CliCmd cli_vcpu_cmds[] = {
    {
        .group = "vcpu",
        .name = "list",
        .usage = "VM",
        .summary = "hotpluggable vCPU entities: ids, topology, node, state, host thread",
        .help = "One row per entity of query-hotpluggable-cpus (one vCPU on x86, one core of\n"
                "several threads on pseries), in QEMU's order, which numbers the vCPU ids.\n"
                "STATE is online (plugged), offline (free slot), or plugging/unplugging\n"
                "while an operation is under way; THREAD-ID is the host thread of each\n"
                "online vCPU (query-cpus-fast), for pinning.",
        .exec = cmd_vcpu_list_exec,
    },
    {
        .group = "vcpu",
        .name = "set",
        .usage = "VM COUNT [--timeout SEC] [--retry N] [--retry-interval SEC] [--no-wait]",
        .summary = "plug or unplug whole entities until COUNT vCPUs are present",
        .help = "Up: the lowest free entities are plugged.  Down: the highest hot-plugged\n"
                "ones are unplugged first; boot vCPUs never.  COUNT over maxcpus is refused\n"
                "(no free slot, exit 1); a COUNT whole entities cannot make (pseries cores\n"
                "of N threads) is refused naming the entity (exit 2).\n"
                "\n" CLI_VCPU_UNPLUG_HELP,
        .exec = cmd_vcpu_set_exec,
    },
    {
        .group = "vcpu",
        .name = "enable",
        .usage = "VM VCPU_ID... [--node N]",
        .summary = "plug the entities of the given vCPUs (device_add); outcome added or rejected",
        .help = "The driver is the entity's type and its props go to device_add as QEMU\n"
                "reports them; the device id is cpu-<topology>, e.g. cpu-s0-c1-t0.  Where an\n"
                "entity holds several vCPUs, all of its ids must be given.\n"
                "With --node N and no VCPU_ID, the lowest free entity on NUMA node N is\n"
                "plugged; with VCPU_IDs, each must be on node N.",
        .exec = cmd_vcpu_enable_exec,
    },
    {
        .group = "vcpu",
        .name = "disable",
        .usage = "VM VCPU_ID... [--timeout SEC] [--retry N] [--retry-interval SEC] [--no-wait]",
        .summary = "unplug the entities of the given vCPUs and wait for the real outcome",
        .help = CLI_VCPU_UNPLUG_HELP,
        .exec = cmd_vcpu_disable_exec,
    },
    {0},
};
