/* hotplugctl vcpu ...: list, set, enable and disable vCPUs. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "hotplug-vcpu.h"
#include "qmp-json.h"

#define CLI_QUERY_TIMEOUT_MS 30000

typedef struct {
    gboolean done;
    HotplugCpuSlots *slots;
    GError *error;
} CliSlots;

static void
cmd_vcpu_slots_cb(QmpConn *conn, HotplugCpuSlots *slots, const GError *error, gpointer opaque)
{
    CliSlots *q = opaque;

    q->done = TRUE;
    q->slots = slots;
    if (error)
        q->error = g_error_copy(error);
}

/* The VM's hotpluggable CPUs, or NULL after printing the error (*rc). */
static HotplugCpuSlots *
cmd_vcpu_query(CliContext *ctx, HotplugVm *vm, int *rc)
{
    g_autoptr(GError) error = NULL;
    CliSlots q = {0};

    if (!hotplug_cpu_slots_query(hotplug_vm_get_conn(vm), cmd_vcpu_slots_cb, &q, &error)) {
        *rc = cli_op_error(ctx, error);
        return NULL;
    }
    if (!qmp_loop_run_until(ctx->base, &q.done, CLI_QUERY_TIMEOUT_MS)) {
        /* the reply may still come: close first, then it lands in q */
        g_set_error(&error, QMP_ERROR, QMP_ERROR_TIMEOUT, "no answer from %s",
                    hotplug_vm_get_name(vm));
        qmp_conn_close(hotplug_vm_get_conn(vm));
        hotplug_cpu_slots_free(q.slots);
        g_clear_error(&q.error);
        *rc = cli_op_error(ctx, error);
        return NULL;
    }
    if (q.error) {
        *rc = cli_op_error(ctx, q.error);
        g_error_free(q.error);
        return NULL;
    }
    return q.slots;
}

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

static void
cmd_vcpu_hint(CliContext *ctx, HotplugOp *op)
{
    const char *hint;

    if (hotplug_op_get_outcome(op) != HOTPLUG_OUTCOME_REJECTED)
        return;
    hint = hotplug_vcpu_error_hint(hotplug_op_get_error(op));
    if (hint)
        fprintf(stderr, "hotplugctl: %s: %s\n", hotplug_op_get_device(op), hint);
}

/* Start one operation per entity, all at once on the one engine, then
 * wait for each and report it.  The exit code is the worst one. */
static int
cmd_vcpu_run(CliContext *ctx, HotplugVm *vm, GPtrArray *entities, gboolean plug,
             const CliUnplugArgs *args)
{
    g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_op_unref);
    int worst = CLI_EXIT_OK;

    for (guint i = 0; i < entities->len; i++) {
        const HotplugCpuEntity *e = entities->pdata[i];
        g_autoptr(GError) error = NULL;
        HotplugOp *op = plug ? hotplug_vcpu_plug(vm, e, &error)
                             : hotplug_vcpu_unplug(vm, e, &args->unplug, NULL, &error);
        if (!op) {
            worst = MAX(worst, cli_op_error(ctx, error));
            continue;
        }
        g_ptr_array_add(ops, op);
    }
    for (guint i = 0; i < ops->len; i++) {
        HotplugOp *op = ops->pdata[i];
        int rc = cli_op_wait(ctx, vm, op, !plug && args->no_wait);
        cmd_vcpu_hint(ctx, op);
        worst = MAX(worst, rc);
    }
    return worst;
}

/* ---- vcpu list ------------------------------------------------------------ */

static char *
cmd_vcpu_topo_cell(const HotplugCpuEntity *e, const char *prop)
{
    gint64 v = hotplug_cpu_entity_prop(e, prop);
    return v >= 0 ? g_strdup_printf("%" G_GINT64_FORMAT, v) : g_strdup("-");
}

static void
cmd_vcpu_print_table(HotplugCpuSlots *s, HotplugVm *vm)
{
    g_autoptr(JsonNode) rows = hotplug_cpu_slots_to_json(s, vm);
    JsonArray *a = json_node_get_array(rows);

    printf("%-7s %-6s %-6s %-4s %-7s %-4s %-6s %-4s %-10s %-10s %s\n", "VCPU", "ENTITY",
           "SOCKET", "DIE", "CLUSTER", "CORE", "THREAD", "NODE", "STATE", "THREAD-ID",
           "QOM-PATH");
    for (guint i = 0; i < hotplug_cpu_slots_n_entities(s); i++) {
        const HotplugCpuEntity *e = hotplug_cpu_slots_entity(s, i);
        JsonObject *row = json_array_get_object_element(a, i);
        guint n, first = hotplug_cpu_entity_first_vcpu(e);
        const gint64 *tids = hotplug_cpu_entity_thread_ids(e, &n);
        g_autofree char *vcpus = n > 1 ? g_strdup_printf("%u-%u", first, first + n - 1)
                                       : g_strdup_printf("%u", first);
        g_autofree char *socket = cmd_vcpu_topo_cell(e, "socket-id");
        g_autofree char *die = cmd_vcpu_topo_cell(e, "die-id");
        g_autofree char *cluster = cmd_vcpu_topo_cell(e, "cluster-id");
        g_autofree char *core = cmd_vcpu_topo_cell(e, "core-id");
        g_autofree char *thread = cmd_vcpu_topo_cell(e, "thread-id");
        g_autofree char *node = cmd_vcpu_topo_cell(e, "node-id");
        g_autoptr(GString) tidtext = g_string_new(NULL);
        const char *path = hotplug_cpu_entity_qom_path(e);

        for (guint t = 0; t < n; t++) {
            if (tids[t] >= 0)
                g_string_append_printf(tidtext, "%s%" G_GINT64_FORMAT, tidtext->len ? "," : "",
                                       tids[t]);
        }
        printf("%-7s %-6u %-6s %-4s %-7s %-4s %-6s %-4s %-10s %-10s %s%s\n", vcpus, i, socket,
               die, cluster, core, thread, node, qmp_json_get_string(row, "state"),
               tidtext->len ? tidtext->str : "-", path ? path : "-",
               hotplug_cpu_entity_is_boot(e) ? " (boot)" : "");
    }
    printf("%u of at most %u vCPUs present; type %s, %u vCPU%s per entity\n",
           hotplug_cpu_slots_present_vcpus(s), hotplug_cpu_slots_max_vcpus(s),
           hotplug_cpu_entity_type(hotplug_cpu_slots_entity(s, 0)),
           hotplug_cpu_entity_vcpus_count(hotplug_cpu_slots_entity(s, 0)),
           hotplug_cpu_entity_vcpus_count(hotplug_cpu_slots_entity(s, 0)) == 1 ? "" : "s");
}

static int
cmd_vcpu_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugCpuSlots) s = NULL;
    HotplugVm *vm;
    int rc = CLI_EXIT_OK;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    vm = cli_engine_open(ctx, argv[1], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    s = cmd_vcpu_query(ctx, vm, &rc);
    if (s && ctx->json) {
        JsonObject *o = json_object_new();
        g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(), o);
        json_object_set_string_member(o, "vm", argv[1]);
        json_object_set_int_member(o, "vcpus", hotplug_cpu_slots_present_vcpus(s));
        json_object_set_int_member(o, "maxcpus", hotplug_cpu_slots_max_vcpus(s));
        json_object_set_member(o, "entities", hotplug_cpu_slots_to_json(s, vm));
        json_object_unref(o);
        cli_print_json(root);
    } else if (s) {
        cmd_vcpu_print_table(s, vm);
    }
    cli_engine_close(vm);
    return rc;
}

/* ---- vcpu set --------------------------------------------------------------- */

static int
cmd_vcpu_set_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugCpuSlots) s = NULL;
    g_autoptr(GPtrArray) entities = NULL;
    g_autofree char **pos = NULL;
    CliUnplugArgs args;
    gboolean plug = FALSE;
    HotplugVm *vm;
    guint count;
    int rc = CLI_EXIT_OK;

    pos = cli_parse_unplug_args(cmd, argc, argv, &args);
    if (!pos)
        return CLI_EXIT_USAGE;
    if (g_strv_length(pos) != 2)
        return cli_usage_error(cmd, g_strv_length(pos) < 2 ? "missing VM or COUNT"
                                                           : "too many arguments");
    if (!cmd_vcpu_parse_uint(pos[1], 65536, &count) || count == 0)
        return cli_usage_error(cmd, "bad COUNT '%s': a number of vCPUs, at least 1", pos[1]);
    vm = cli_engine_open(ctx, pos[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    s = cmd_vcpu_query(ctx, vm, &rc);
    if (!s)
        goto out;
    entities = hotplug_cpu_select_count(s, count, &plug, &error);
    if (!entities) {
        rc = cli_op_error(ctx, error);
    } else if (entities->len == 0) {
        if (ctx->json) {
            JsonObject *o = json_object_new();
            g_autoptr(JsonNode) root = json_node_init_object(json_node_alloc(), o);
            json_object_set_string_member(o, "vm", pos[0]);
            json_object_set_int_member(o, "vcpus", count);
            json_object_set_boolean_member(o, "changed", FALSE);
            json_object_unref(o);
            cli_print_json(root);
        } else {
            printf("%s has %u vCPUs already\n", pos[0], count);
        }
    } else {
        if (!ctx->json)
            fprintf(stderr, "%s: %u -> %u vCPUs: %s %u entit%s\n", pos[0],
                    hotplug_cpu_slots_present_vcpus(s), count, plug ? "plugging" : "unplugging",
                    entities->len, entities->len == 1 ? "y" : "ies");
        rc = cmd_vcpu_run(ctx, vm, entities, plug, &args);
    }
out:
    cli_engine_close(vm);
    return rc;
}

/* ---- vcpu enable / disable ---------------------------------------------------- */

static gboolean
cmd_vcpu_parse_ids(const CliCmd *cmd, char **words, GArray *ids)
{
    for (guint i = 0; words[i]; i++) {
        guint v;
        if (!cmd_vcpu_parse_uint(words[i], 65535, &v)) {
            cli_usage_error(cmd, "bad VCPU_ID '%s': a vCPU number as 'vcpu list' shows it",
                            words[i]);
            return FALSE;
        }
        g_array_append_val(ids, v);
    }
    return TRUE;
}

static int
cmd_vcpu_enable_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"node", required_argument, NULL, 'n'},
        {0},
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugCpuSlots) s = NULL;
    g_autoptr(GPtrArray) entities = NULL;
    g_autoptr(GPtrArray) pos = g_ptr_array_new();
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint));
    CliUnplugArgs none = {0};
    gint64 node = -1;
    HotplugVm *vm;
    int ch, rc = CLI_EXIT_OK;

    opterr = 0;
    while ((ch = getopt_long(argc, argv, "-", opts, NULL)) != -1) {
        guint v;
        switch (ch) {
        case 1:
            g_ptr_array_add(pos, optarg);
            break;
        case 'n':
            if (!cmd_vcpu_parse_uint(optarg, 65535, &v))
                return cli_usage_error(cmd, "bad NUMA node '%s'", optarg);
            node = v;
            break;
        default:
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    g_ptr_array_add(pos, NULL);
    if (pos->len < 2)
        return cli_usage_error(cmd, "missing VM");
    if (pos->len < 3 && node < 0)
        return cli_usage_error(cmd, "missing VCPU_ID (or --node N to pick a free one)");
    if (!cmd_vcpu_parse_ids(cmd, (char **)pos->pdata + 1, ids))
        return CLI_EXIT_USAGE;
    vm = cli_engine_open(ctx, pos->pdata[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    s = cmd_vcpu_query(ctx, vm, &rc);
    if (!s)
        goto out;
    if (ids->len)
        entities = hotplug_cpu_select_ids(s, (guint *)ids->data, ids->len, TRUE, node, &error);
    else
        entities = hotplug_cpu_select_node(s, node, 1, &error);
    rc = entities ? cmd_vcpu_run(ctx, vm, entities, TRUE, &none) : cli_op_error(ctx, error);
out:
    cli_engine_close(vm);
    return rc;
}

static int
cmd_vcpu_disable_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugCpuSlots) s = NULL;
    g_autoptr(GPtrArray) entities = NULL;
    g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint));
    g_autofree char **pos = NULL;
    CliUnplugArgs args;
    HotplugVm *vm;
    int rc = CLI_EXIT_OK;

    pos = cli_parse_unplug_args(cmd, argc, argv, &args);
    if (!pos)
        return CLI_EXIT_USAGE;
    if (g_strv_length(pos) < 2)
        return cli_usage_error(cmd, "missing %s", pos[0] ? "VCPU_ID" : "VM");
    if (!cmd_vcpu_parse_ids(cmd, pos + 1, ids))
        return CLI_EXIT_USAGE;
    vm = cli_engine_open(ctx, pos[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    s = cmd_vcpu_query(ctx, vm, &rc);
    if (!s)
        goto out;
    entities = hotplug_cpu_select_ids(s, (guint *)ids->data, ids->len, FALSE, -1, &error);
    rc = entities ? cmd_vcpu_run(ctx, vm, entities, FALSE, &args) : cli_op_error(ctx, error);
out:
    cli_engine_close(vm);
    return rc;
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
