/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl vm ...: the VMs hotplugd knows, and what a VM is and can do. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "qmp-json.h"

static int
cmd_vm_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonArray *a;
    int rc;

    if (argc != 1)
        return cli_usage_error(cmd, "too many arguments");
    rc = cli_request_daemon(ctx, "vm-list", json_object_new(), &ret);
    if (rc)
        return rc;
    if (ctx->json) {
        cli_print_json(ret);
        return CLI_EXIT_OK;
    }
    a = qmp_json_node_array(ret);
    printf("%-20s %-12s %-5s %s\n", "NAME", "STATE", "OPS", "QMP");
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *o = qmp_json_node_object(json_array_get_element(a, i));
        const char *err = qmp_json_get_string(o, "error");
        printf("%-20s %-12s %-5" G_GINT64_FORMAT " %s%s%s%s\n", qmp_json_get_string(o, "name"),
               qmp_json_get_string(o, "state"), qmp_json_get_int_default(o, "ops", 0),
               qmp_json_get_string(o, "qmp"), err ? " (" : "", err ? err : "", err ? ")" : "");
    }
    return CLI_EXIT_OK;
}

static int
cmd_vm_add_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    g_autofree char *abs = NULL;
    JsonObject *args;
    int rc;

    if (argc != 3)
        return cli_usage_error(cmd, argc < 3 ? "missing NAME or QMP_PATH" : "too many arguments");
    /* the daemon may run elsewhere in the file system: give it a full path */
    abs = g_canonicalize_filename(argv[2], NULL);
    args = json_object_new();
    json_object_set_string_member(args, "name", argv[1]);
    json_object_set_string_member(args, "qmp", abs);
    rc = cli_request_daemon(ctx, "vm-add", args, &ret);
    if (rc)
        return rc;
    if (ctx->json)
        cli_print_json(ret);
    else
        printf("%s: added (%s)\n", argv[1], abs);
    return CLI_EXIT_OK;
}

static int
cmd_vm_remove_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *args;
    int rc;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing NAME" : "too many arguments");
    args = json_object_new();
    json_object_set_string_member(args, "name", argv[1]);
    rc = cli_request_daemon(ctx, "vm-remove", args, &ret);
    if (rc)
        return rc;
    if (ctx->json)
        cli_print_json(ret);
    else
        printf("%s: removed\n", argv[1]);
    return CLI_EXIT_OK;
}

static int
cmd_vm_info_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *o;
    JsonArray *caps;
    int rc;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    rc = cli_request(ctx, argv[1], "vm-info", json_object_new(), &ret);
    if (rc)
        return rc;
    if (ctx->json) {
        cli_print_json(ret);
        return CLI_EXIT_OK;
    }
    o = qmp_json_node_object(ret);
    printf("vm:           %s\n", qmp_json_get_string(o, "vm"));
    printf("qemu:         %s\n", qmp_json_get_string(o, "version"));
    printf("package:      %s\n", qmp_json_get_string(o, "package"));
    printf("machine:      %s\n", qmp_json_get_string(o, "machine"));
    printf("status:       %s\n", qmp_json_get_string(o, "status"));
    printf("capabilities:");
    caps = qmp_json_get_array(o, "capabilities");
    for (guint i = 0; caps && i < json_array_get_length(caps); i++)
        printf(" %s", qmp_json_node_string(json_array_get_element(caps, i)));
    printf("\n");
    caps = qmp_json_get_array(o, "hotplug_mechanisms");
    if (caps) {
        printf("mechanisms:  ");
        for (guint i = 0; i < json_array_get_length(caps); i++)
            printf(" %s", qmp_json_node_string(json_array_get_element(caps, i)));
        printf("%s\n", json_array_get_length(caps) ? "" : " none (no hotpluggable place)");
    }
    return CLI_EXIT_OK;
}

static int
cmd_vm_slots_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *o;
    JsonArray *places;
    int rc;

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    rc = cli_request(ctx, argv[1], "vm-slots", json_object_new(), &ret);
    if (rc)
        return rc;
    if (ctx->json) {
        cli_print_json(ret);
        return CLI_EXIT_OK;
    }
    o = qmp_json_node_object(ret);
    places = qmp_json_get_array(o, "places");
    printf("machine: %s (%s)\n", qmp_json_get_string(o, "machine"),
           qmp_json_get_string(o, "machine_type"));
    printf("%-12s %-6s %-20s %-12s %-12s %s\n", "BUS", "ADDR", "KIND", "PORT", "MECHANISM",
           "OCCUPANT");
    for (guint i = 0; places && i < json_array_get_length(places); i++) {
        JsonObject *p = qmp_json_node_object(json_array_get_element(places, i));
        const char *occ = qmp_json_get_string(p, "occupant");
        const char *why = qmp_json_get_string(p, "why");

        printf("%-12s %-6s %-20s %-12s %-12s %s%s%s%s\n", qmp_json_get_string(p, "bus"),
               qmp_json_get_string(p, "addr"), qmp_json_get_string(p, "kind"),
               qmp_json_get_string(p, "port") ?: "-", qmp_json_get_string(p, "mechanism"),
               occ ? occ : "(free)", why ? " [" : "", why ? why : "", why ? "]" : "");
    }
    if (!places || json_array_get_length(places) == 0)
        printf("(no hotpluggable place: q35 and virt need pcie-root-ports, e.g.\n"
               " -device pcie-root-port,id=rp1,chassis=1,bus=pcie.0)\n");
    return CLI_EXIT_OK;
}

const CliCmd cli_vm_cmds[] = {
    {
        .group = "vm",
        .name = "list",
        .usage = "",
        .summary = "the VMs hotplugd manages, with their connection state",
        .exec = cmd_vm_list_exec,
    },
    {
        .group = "vm",
        .name = "add",
        .usage = "NAME QMP_PATH",
        .summary = "register a VM with hotplugd by the path of its QMP socket",
        .exec = cmd_vm_add_exec,
    },
    {
        .group = "vm",
        .name = "remove",
        .usage = "NAME",
        .summary = "stop managing a VM (its pending operations end as vm-gone)",
        .exec = cmd_vm_remove_exec,
    },
    {
        .group = "vm",
        .name = "info",
        .usage = "VM",
        .summary = "QEMU version, package, machine type, run state and hotplug capabilities",
        .help = "Probes query-version, query-qmp-schema, query-status, the machine type and\n"
                "query-hotpluggable-cpus, and prints what it found, with the hotplug mechanisms\n"
                "that serve the VM's places (see 'vm slots').  Only what works on the machine\n"
                "is listed (aarch64 virt without its ACPI GED device has no memory-hotplug).\n"
                "With --json, one object with vm, version, package, machine, status,\n"
                "capabilities and hotplug_mechanisms.",
        .exec = cmd_vm_info_exec,
    },
    {
        .group = "vm",
        .name = "slots",
        .usage = "VM",
        .summary = "every hotpluggable place (port, bridge slot, root bus slot), its hotplug "
                   "mechanism and occupant",
        .help = "Asks QEMU (query-pci, and qom-get/qom-list on the machine, its ACPI device,\n"
                "the bridges and ports) and prints one row per place: the bus to name with\n"
                "bus= (device add) or --bus (disk add, hostdev add), its addr, the kind of\n"
                "place, the port or bridge offering it, its mechanism (acpi, pcie-native,\n"
                "spapr, or none with the reason) and the device there.  An add with no bus\n"
                "takes the first free place whose mechanism works, in this order.  With\n"
                "--json, one object {machine, machine_type, places: [{bus, slot, addr,\n"
                "kind, port, mechanism, why, occupant}]}.",
        .exec = cmd_vm_slots_exec,
    },
    {0},
};
