/* hotplugctl memory ...: add, remove and list DIMMs. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "hotplug-memory.h"
#include "qmp-json.h"

#define CLI_QUERY_TIMEOUT_MS 30000

/* A query for the top level: the reply, or NULL after printing the error. */
static JsonNode *
cmd_memory_query(CliContext *ctx, HotplugVm *vm, const char *cmd, JsonNode *args, int *rc)
{
    g_autoptr(GError) error = NULL;
    JsonNode *ret = NULL;

    if (!qmp_conn_execute_sync(hotplug_vm_get_conn(vm), cmd, args, &ret, CLI_QUERY_TIMEOUT_MS,
                               &error)) {
        *rc = cli_op_error(ctx, error);
        return NULL;
    }
    return ret;
}

static JsonNode *
cmd_memory_path_args(const char *path, const char *property)
{
    JsonObject *o = json_object_new();
    JsonNode *n = json_node_init_object(json_node_alloc(), o);

    json_object_set_string_member(o, "path", path);
    if (property)
        json_object_set_string_member(o, "property", property);
    json_object_unref(o);
    return n;
}

static void
cmd_memory_hint(HotplugOp *op)
{
    const char *hint;

    if (hotplug_op_get_outcome(op) != HOTPLUG_OUTCOME_REJECTED)
        return;
    hint = hotplug_memory_error_hint(hotplug_op_get_error(op));
    if (hint)
        fprintf(stderr, "hotplugctl: %s: %s\n", hotplug_op_get_device(op), hint);
}

/* ---- memory add -------------------------------------------------------------- */

static int
cmd_memory_add_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"node", required_argument, NULL, 'n'},
        {"id", required_argument, NULL, 'i'},
        {0},
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) pos = g_ptr_array_new();
    g_autoptr(JsonNode) devices = NULL;
    g_autoptr(JsonNode) machine = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autofree char *id = NULL;
    gint64 node = -1;
    guint64 size;
    HotplugVm *vm;
    char *end;
    int ch, rc = CLI_EXIT_OK;

    opterr = 0;
    while ((ch = getopt_long(argc, argv, "-", opts, NULL)) != -1) {
        switch (ch) {
        case 1:
            g_ptr_array_add(pos, optarg);
            break;
        case 'n':
            node = (gint64)g_ascii_strtoull(optarg, &end, 10);
            if (!g_ascii_isdigit(*optarg) || *end || node > 65535)
                return cli_usage_error(cmd, "bad NUMA node '%s'", optarg);
            break;
        case 'i':
            if (!*optarg || strchr(optarg, '/'))
                return cli_usage_error(cmd, "bad id '%s'", optarg);
            g_free(id);
            id = g_strdup(optarg);
            break;
        default:
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (pos->len != 2)
        return cli_usage_error(cmd, pos->len < 2 ? "missing VM or SIZE" : "too many arguments");
    if (!hotplug_memory_parse_size(pos->pdata[1], &size, &error))
        return cli_usage_error(cmd, "%s", error->message);
    vm = cli_engine_open(ctx, pos->pdata[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    devices = cmd_memory_query(ctx, vm, "query-memory-devices", NULL, &rc);
    if (!devices)
        goto out;
    /* where QEMU can tell (qom-get /machine memory, QEMU 6.0 and later),
     * refuse what cannot fit before anything is created */
    qmp_conn_execute_sync(hotplug_vm_get_conn(vm), "qom-get",
                          cmd_memory_path_args("/machine", "memory"), &machine,
                          CLI_QUERY_TIMEOUT_MS, NULL);
    if (!hotplug_memory_check_room(machine, devices, size, &error)) {
        rc = cli_op_error(ctx, error);
        goto out;
    }
    if (!id)
        id = hotplug_memory_free_id(devices);
    op = hotplug_memory_add(vm, id, size, node, &error);
    if (!op) {
        rc = cli_op_error(ctx, error);
        goto out;
    }
    rc = cli_op_wait(ctx, vm, op, FALSE);
    cmd_memory_hint(op);
out:
    cli_engine_close(vm);
    return rc;
}

/* ---- memory del ------------------------------------------------------------------ */

/* The type of /machine/peripheral/id, or NULL when there is none. */
static char *
cmd_memory_peripheral_type(HotplugVm *vm, const char *id)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonArray *list;

    if (!qmp_conn_execute_sync(hotplug_vm_get_conn(vm), "qom-list",
                               cmd_memory_path_args("/machine/peripheral", NULL), &ret,
                               CLI_QUERY_TIMEOUT_MS, NULL))
        return NULL;
    list = qmp_json_node_array(ret);
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");
        if (name && type && g_str_equal(name, id) && g_str_has_prefix(type, "child<"))
            return g_strndup(type + 6, strlen(type) - 7);
    }
    return NULL;
}

static int
cmd_memory_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) devices = NULL;
    g_autofree char **pos = NULL;
    g_autofree char *backend = NULL;
    CliUnplugArgs args;
    HotplugVm *vm;
    int rc = CLI_EXIT_OK;

    pos = cli_parse_unplug_args(cmd, argc, argv, &args);
    if (!pos)
        return CLI_EXIT_USAGE;
    if (g_strv_length(pos) != 2)
        return cli_usage_error(cmd, g_strv_length(pos) < 2 ? "missing VM or ID"
                                                           : "too many arguments");
    vm = cli_engine_open(ctx, pos[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    devices = cmd_memory_query(ctx, vm, "query-memory-devices", NULL, &rc);
    if (!devices)
        goto out;
    backend = hotplug_memory_backend_of(devices, pos[1]);
    if (!backend) {
        g_autofree char *type = cmd_memory_peripheral_type(vm, pos[1]);
        if (type) {
            rc = cli_usage_error(cmd, "%s is a %s, not a memory device: use 'device del'", pos[1],
                                 type);
            goto out;
        }
        /* unknown: QEMU's own answer (DeviceNotFound) is the result */
    }
    op = hotplug_memory_del(vm, pos[1], backend, &args.unplug, NULL, &error);
    rc = op ? cli_op_wait(ctx, vm, op, args.no_wait) : cli_op_error(ctx, error);
out:
    cli_engine_close(vm);
    return rc;
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

static int
cmd_memory_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) devices = NULL;
    g_autoptr(JsonNode) rows = NULL;
    HotplugVm *vm;
    int rc = CLI_EXIT_OK;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    vm = cli_engine_open(ctx, argv[1], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    devices = cmd_memory_query(ctx, vm, "query-memory-devices", NULL, &rc);
    if (!devices)
        goto out;
    rows = hotplug_memory_list_to_json(devices, vm);
    if (ctx->json) {
        JsonObject *o = json_object_new();
        g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(), o);
        json_object_set_string_member(o, "vm", argv[1]);
        json_object_set_member(o, "memory", json_node_ref(rows));
        json_object_unref(o);
        cli_print_json(root);
    } else {
        JsonArray *a = json_node_get_array(rows);
        printf("%-16s %-8s %-10s %-4s %-4s %-20s %s\n", "ID", "TYPE", "SIZE", "NODE", "SLOT",
               "BACKEND", "PENDING");
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonObject *e = json_array_get_object_element(a, i);
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
                p ? g_strdup_printf("%s %s (op %" G_GINT64_FORMAT ")",
                                    qmp_json_get_string(p, "action"),
                                    qmp_json_get_string(p, "state"),
                                    qmp_json_get_int_default(p, "op", 0))
                  : g_strdup("-");
            const char *eid = qmp_json_get_string(e, "id");
            const char *be = qmp_json_get_string(e, "backend");
            printf("%-16s %-8s %-10s %-4s %-4s %-20s %s\n", eid ? eid : "-",
                   qmp_json_get_string(e, "type"), sizetext, nodetext, slottext, be ? be : "-",
                   pending);
        }
    }
out:
    cli_engine_close(vm);
    return rc;
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
