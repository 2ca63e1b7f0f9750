/* hotplugctl disk ...: virtio-blk disks on their own blockdev nodes and IOThreads. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "hotplug-disk.h"
#include "qmp-json.h"

#define CLI_QUERY_TIMEOUT_MS 30000

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
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'd'},     {"format", required_argument, NULL, 'f'},
        {"readonly", no_argument, NULL, 'r'},     {"iothreads", required_argument, NULL, 't'},
        {"queues", required_argument, NULL, 'q'}, {0},
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GPtrArray) pos = g_ptr_array_new();
    g_autofree char *file = NULL;
    HotplugDiskOptions o = {0};
    const char *id = NULL;
    HotplugVm *vm;
    int ch, rc;

    opterr = 0;
    while ((ch = getopt_long(argc, argv, "-:", opts, NULL)) != -1) {
        switch (ch) {
        case 1:
            g_ptr_array_add(pos, optarg);
            break;
        case 'd':
            id = optarg;
            break;
        case 'f':
            o.format = optarg;
            break;
        case 'r':
            o.readonly = TRUE;
            break;
        case 't':
            if (!cmd_disk_parse_count(optarg, HOTPLUG_DISK_IOTHREADS_MAX, &o.iothreads))
                return cli_usage_error(cmd, "bad value '%s' for --iothreads: 0 to %d", optarg,
                                       HOTPLUG_DISK_IOTHREADS_MAX);
            break;
        case 'q':
            if (!cmd_disk_parse_count(optarg, HOTPLUG_DISK_QUEUES_MAX, &o.queues) || !o.queues)
                return cli_usage_error(cmd, "bad value '%s' for --queues: 1 to %d", optarg,
                                       HOTPLUG_DISK_QUEUES_MAX);
            break;
        case ':':
            return cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (pos->len != 2)
        return cli_usage_error(cmd, pos->len < 1   ? "missing VM"
                                    : pos->len < 2 ? "missing FILE"
                                                   : "too many arguments");
    if (!id)
        return cli_usage_error(cmd, "missing --id ID");
    /* QEMU opens the file from its own working directory, not ours */
    file = g_canonicalize_filename(pos->pdata[1], NULL);
    o.file = file;
    /* the checks that need no QEMU come first: a usage error stays one */
    {
        GPtrArray *steps = NULL;
        QmpGreeting any = {.major = 99};
        steps = hotplug_disk_build_steps(id, &o, &any, &error);
        if (!steps)
            return cli_op_error(ctx, error);
        g_ptr_array_unref(steps);
    }
    vm = cli_engine_open(ctx, pos->pdata[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    op = hotplug_disk_add(vm, id, &o, &error);
    rc = op ? cli_op_wait(ctx, vm, op, FALSE) : cli_op_error(ctx, error);
    cli_engine_close(vm);
    return rc;
}

static int
cmd_disk_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
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
        return cli_usage_error(cmd,
                               g_strv_length(pos) < 2 ? "missing VM or ID" : "too many arguments");
    vm = cli_engine_open(ctx, pos[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    op = hotplug_disk_del(vm, pos[1], &args.unplug, NULL, &error);
    rc = op ? cli_op_wait(ctx, vm, op, args.no_wait) : cli_op_error(ctx, error);
    cli_engine_close(vm);
    return rc;
}

typedef struct {
    gboolean done;
    JsonNode *result;
    GError *error;
} CliDiskList;

static void
cmd_disk_list_cb(JsonNode *result, const GError *error, gpointer opaque)
{
    CliDiskList *d = opaque;

    d->done = TRUE;
    if (error)
        d->error = g_error_copy(error);
    else
        d->result = json_node_ref(result);
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
    g_autoptr(GError) error = NULL;
    CliDiskList d = {0};
    HotplugVm *vm;
    int rc = CLI_EXIT_OK;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    if (argv[1][0] == '-')
        return cli_usage_error(cmd, "unknown option '%s'", argv[1]);
    vm = cli_engine_open(ctx, argv[1], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    if (!hotplug_disk_list(vm, cmd_disk_list_cb, &d, &error) ||
        !qmp_loop_run_until(ctx->base, &d.done, CLI_QUERY_TIMEOUT_MS)) {
        if (!error)
            g_set_error(&error, QMP_ERROR, QMP_ERROR_TIMEOUT, "no answer from %s", argv[1]);
        rc = cli_op_error(ctx, error);
    } else if (d.error) {
        rc = cli_op_error(ctx, d.error);
    } else if (ctx->json) {
        JsonObject *o = json_node_get_object(d.result);
        json_object_set_string_member(o, "vm", argv[1]);
        cli_print_json(d.result);
    } else {
        cmd_disk_list_print(json_node_get_object(d.result));
    }
    cli_engine_close(vm);
    /* closing the connection answers a query still in flight (timeout) */
    if (d.result)
        json_node_unref(d.result);
    if (d.error)
        g_error_free(d.error);
    return rc;
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
                 "[--queues Q]",
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
                "  --queues Q      num-queues; with N > 1 queue q goes to IOThread q % N\n"
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
