/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl disk ...: virtio-blk disks on their own blockdev nodes and IOThreads. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "hotplug-disk.h"
#include "qmp-json.h"

/* the long options of disk add, beyond cli_parse_args' own */
enum {
    CMD_DISK_OPT_ID = 256,
    CMD_DISK_OPT_FORMAT,
    CMD_DISK_OPT_READONLY,
    CMD_DISK_OPT_IOTHREADS,
    CMD_DISK_OPT_QUEUES,
    CMD_DISK_OPT_BUS,
};

static gboolean
cmd_disk_parse_count(const char *text, guint max, guint *out)
{
    char *end = NULL;
    guint64 n;

    if (!text || !g_ascii_isdigit(*text))
        return FALSE;
    n = g_ascii_strtoull(text, &end, 10);
    if (*end || n > max)
        return FALSE;
    *out = (guint)n;
    return TRUE;
}

static int
cmd_disk_add_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    static const struct option extra[] = {
        {"id", required_argument, NULL, CMD_DISK_OPT_ID},
        {"format", required_argument, NULL, CMD_DISK_OPT_FORMAT},
        {"readonly", no_argument, NULL, CMD_DISK_OPT_READONLY},
        {"iothreads", required_argument, NULL, CMD_DISK_OPT_IOTHREADS},
        {"queues", required_argument, NULL, CMD_DISK_OPT_QUEUES},
        {"bus", required_argument, NULL, CMD_DISK_OPT_BUS},
        {0},
    };
    g_autoptr(JsonObject) parsed = json_object_new();
    g_autoptr(JsonNode) ret = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) steps = NULL;
    g_autofree char **pos = NULL;
    g_autofree char *file = NULL;
    HotplugDiskOptions o = {0};
    QmpGreeting any = {.major = 99};
    const char *id, *text;
    JsonObject *args;
    guint n;
    int rc;

    pos = cli_parse_args(cmd, argc, argv, FALSE, extra, parsed);
    if (!pos)
        return CLI_EXIT_USAGE;
    n = g_strv_length(pos);
    if (n != 2)
        return cli_usage_error(cmd, n < 1   ? "missing VM"
                                    : n < 2 ? "missing FILE"
                                            : "too many arguments");
    id = qmp_json_get_string(parsed, "id");
    if (!id)
        return cli_usage_error(cmd, "missing --id ID");
    o.format = qmp_json_get_string(parsed, "format");
    o.readonly = json_object_has_member(parsed, "readonly");
    if ((text = qmp_json_get_string(parsed, "iothreads")) &&
        !cmd_disk_parse_count(text, HOTPLUG_DISK_IOTHREADS_MAX, &o.iothreads))
        return cli_usage_error(cmd, "bad value '%s' for --iothreads: 0 to %d", text,
                               HOTPLUG_DISK_IOTHREADS_MAX);
    if ((text = qmp_json_get_string(parsed, "queues")) &&
        (!cmd_disk_parse_count(text, HOTPLUG_DISK_QUEUES_MAX, &o.queues) || !o.queues))
        return cli_usage_error(cmd, "bad value '%s' for --queues: 1 to %d", text,
                               HOTPLUG_DISK_QUEUES_MAX);
    /* QEMU opens the file from its own working directory, not ours */
    file = g_canonicalize_filename(pos[1], NULL);
    o.file = file;
    /* the checks that need no QEMU come first: a usage error stays one */
    steps = hotplug_disk_build_steps(id, &o, &any, &error);
    if (!steps)
        return cli_error(ctx, cli_exit_for_error(error), error);

    args = json_object_new();
    json_object_set_string_member(args, "file", file);
    json_object_set_string_member(args, "id", id);
    if (o.format)
        json_object_set_string_member(args, "format", o.format);
    if (o.readonly)
        json_object_set_boolean_member(args, "readonly", TRUE);
    if (o.iothreads)
        json_object_set_int_member(args, "iothreads", o.iothreads);
    if (o.queues)
        json_object_set_int_member(args, "queues", o.queues);
    if ((text = qmp_json_get_string(parsed, "bus")))
        json_object_set_string_member(args, "bus", text);
    rc = cli_request(ctx, pos[0], "disk-add", args, &ret);
    return rc ? rc : cli_print_op_result(ctx, ret);
}

static int
cmd_disk_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    return cli_exec_unplug(ctx, cmd, argc, argv, "disk-del");
}

static char *
cmd_disk_join(JsonArray *a)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        const char *v = qmp_json_node_string(json_array_get_element(a, i));
        g_string_append_printf(s, "%s%s", s->len ? "," : "", v ? v : "?");
    }
    if (!s->len)
        g_string_append(s, "-");
    return g_string_free(s, FALSE);
}

static void
cmd_disk_list_print(JsonObject *root)
{
    JsonArray *disks = qmp_json_get_array(root, "disks");
    JsonObject *left = qmp_json_get_object(root, "leftover");
    g_autofree char *lnodes = cmd_disk_join(qmp_json_get_array(left, "nodes"));
    g_autofree char *lthreads = cmd_disk_join(qmp_json_get_array(left, "iothreads"));

    printf("%-16s %-6s %-3s %-28s %-20s %s\n", "ID", "FORMAT", "RO", "IOTHREADS", "PENDING",
           "FILE");
    for (guint i = 0; disks && i < json_array_get_length(disks); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(disks, i));
        JsonObject *p = qmp_json_get_object(e, "pending");
        g_autofree char *threads = cmd_disk_join(qmp_json_get_array(e, "iothreads"));
        g_autofree char *pending =
            p ? g_strdup_printf("%s %s (op %" G_GINT64_FORMAT ")", qmp_json_get_string(p, "action"),
                                qmp_json_get_string(p, "state"),
                                qmp_json_get_int_default(p, "op", 0))
              : g_strdup("-");
        printf("%-16s %-6s %-3s %-28s %-20s %s\n", qmp_json_get_string(e, "id"),
               qmp_json_get_string(e, "format"),
               qmp_json_get_bool_default(e, "readonly", FALSE) ? "yes" : "no", threads, pending,
               qmp_json_get_string(e, "file"));
    }
    if (!g_str_equal(lnodes, "-") || !g_str_equal(lthreads, "-"))
        printf("leftover without a device: nodes %s; iothreads %s\n", lnodes, lthreads);
}

static int
cmd_disk_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *o;
    int rc;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    if (argv[1][0] == '-')
        return cli_usage_error(cmd, "unknown option '%s'", argv[1]);
    rc = cli_request(ctx, argv[1], "disk-list", json_object_new(), &ret);
    if (rc)
        return rc;
    o = qmp_json_node_object(ret);
    if (!o) {
        fprintf(stderr, "hotplugctl: disk-list: the reply is not an object\n");
        return CLI_EXIT_ERROR;
    }
    if (ctx->json)
        cli_print_json(ret);
    else
        cmd_disk_list_print(o);
    return CLI_EXIT_OK;
}

#define CLI_DISK_UNPLUG_HELP                                                                       \
    "  --timeout SEC          deadline for each attempt (default 5)\n"                             \
    "  --retry N              after guest-error or not-deleted, ask again up to N times\n"         \
    "  --retry-interval SEC   at least SEC between attempts (default 2)\n"                         \
    "  --no-wait              return once QEMU accepted the request (exit 0)\n"                    \
    "\n"                                                                                           \
    "Once QEMU has removed the device, its nodes (ID-fmt, ID-file) are deleted\n"                  \
    "(blockdev-del) and its IOThreads (ID-iothreadK) too (object-del).  When the\n"                \
    "unplug ends not-deleted they stay, and go when a later deleted-late comes.\n"                 \
    "Outcomes: deleted (exit 0), rejected (3), guest-error (4), not-deleted (5),\n"                \
    "vm-gone (6)."

const CliCmd cli_disk_cmds[] = {
    {
        .group = "disk",
        .name = "add",
        .usage = "VM FILE --id ID [--format raw|qcow2] [--readonly] [--iothreads N] "
                 "[--queues Q] [--bus BUS]",
        .summary = "hot-plug a virtio-blk disk on its own blockdev nodes and IOThreads",
        .help = "Runs blockdev-add (file node ID-file, format node ID-fmt), object-add\n"
                "iothread ID-iothread0.. for each IOThread, then device_add virtio-blk-pci\n"
                "with id ID.  If a step fails, the steps done are undone in reverse order\n"
                "and the failing step is named with QEMU's error text: nothing stays.\n"
                "\n"
                "  --id ID         the device ID (a letter, then letters, digits, - . _;\n"
                "                  at most 26 characters)\n"
                "  --format F      raw (default) or qcow2; the image is never probed\n"
                "  --readonly      open the image read-only\n"
                "  --iothreads N   0 (default): none; 1: the iothread property; N > 1:\n"
                "                  iothread-vq-mapping (needs QEMU 9.2 or later)\n"
                "  --queues Q      num-queues (at least N with --iothreads N > 1; default N\n"
                "                  then, so every IOThread has a queue); queue q goes to\n"
                "                  IOThread q % N\n"
                "  --bus BUS       the bus to plug it on (see 'vm slots'): a free\n"
                "                  pcie-root-port, a pci-bridge, pci.0 on pc; without it\n"
                "                  the first free place whose hotplug works.  An occupied\n"
                "                  port or no free place is refused before anything is sent.\n"
                "                  The result says where: bus and addr.\n"
                "\n"
                "FILE is made absolute first (QEMU opens it).  Exit 0 added, 1 this QEMU\n"
                "cannot do it (e.g. --iothreads 2 before QEMU 9.2), 2 bad arguments,\n"
                "3 rejected by QEMU, 6 VM gone.",
        .exec = cmd_disk_add_exec,
    },
    {
        .group = "disk",
        .name = "del",
        .usage = "VM ID [--timeout SEC] [--retry N] [--retry-interval SEC] [--no-wait]",
        .summary = "hot-unplug a disk, then delete its nodes and IOThreads",
        .help = CLI_DISK_UNPLUG_HELP,
        .exec = cmd_disk_del_exec,
    },
    {
        .group = "disk",
        .name = "list",
        .usage = "VM",
        .summary = "disks plugged by disk add, their image, nodes and IOThreads",
        .help = "Joins query-block, query-named-block-nodes and qom-list /objects.  Nodes\n"
                "and IOThreads of the naming scheme that no device uses are shown as\n"
                "leftover (an unplug not finished, or an interrupted plug).",
        .exec = cmd_disk_list_exec,
    },
    {0},
};
