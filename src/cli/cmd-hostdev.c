/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl hostdev ...: VFIO host PCI devices. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>

#include "cli.h"
#include "hotplug-hostdev.h"
#include "qmp-json.h"

/* the long option of hostdev add, beyond cli_parse_args' own */
enum {
    CMD_HOSTDEV_OPT_ID = 256,
    CMD_HOSTDEV_OPT_BUS,
};

static int
cmd_hostdev_add_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    static const struct option extra[] = {
        {"id", required_argument, NULL, CMD_HOSTDEV_OPT_ID},
        {"bus", required_argument, NULL, CMD_HOSTDEV_OPT_BUS},
        {0},
    };
    g_autoptr(JsonObject) parsed = json_object_new();
    g_autoptr(JsonNode) ret = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char **pos = NULL;
    g_autofree char *addr = NULL;
    const char *id;
    JsonObject *args;
    guint n;
    int rc;

    pos = cli_parse_args(cmd, argc, argv, FALSE, extra, parsed);
    if (!pos)
        return CLI_EXIT_USAGE;
    n = g_strv_length(pos);
    if (n != 2)
        return cli_usage_error(cmd, n < 1   ? "missing VM"
                                    : n < 2 ? "missing PCI_ADDR"
                                            : "too many arguments");
    id = qmp_json_get_string(parsed, "id");
    if (!id || !*id)
        return cli_usage_error(cmd, "missing --id ID");
    /* a malformed address needs no QEMU to be refused */
    if (!hotplug_pci_addr_parse(pos[1], &addr, &error))
        return cli_error(ctx, cli_exit_for_error(error), error);

    /* the host checks run where the service runs: here in direct mode
     * (under $HOTPLUG_SYSFS_ROOT), in hotplugd otherwise */
    args = json_object_new();
    json_object_set_string_member(args, "addr", addr);
    json_object_set_string_member(args, "id", id);
    if (qmp_json_get_string(parsed, "bus"))
        json_object_set_string_member(args, "bus", qmp_json_get_string(parsed, "bus"));
    rc = cli_request(ctx, pos[0], "hostdev-add", args, &ret);
    return rc ? rc : cli_print_op_result(ctx, ret);
}

static int
cmd_hostdev_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    return cli_exec_unplug(ctx, cmd, argc, argv, "hostdev-del");
}

const CliCmd cli_hostdev_cmds[] = {
    {
        .group = "hostdev",
        .name = "add",
        .usage = "VM PCI_ADDR --id ID [--bus BUS]",
        .summary = "hand a host PCI device to the VM (device_add vfio-pci)",
        .help = "PCI_ADDR is DDDD:BB:DD.F (hex), e.g. 0000:01:00.0.  Before anything is\n"
                "sent, the host is checked under $HOTPLUG_SYSFS_ROOT (default /sys): the\n"
                "device exists, is bound to vfio-pci, has an IOMMU group, and the other\n"
                "devices of its group are bound to vfio-pci or to nothing.  A device\n"
                "already assigned to a VM we manage is refused (in direct mode: one that\n"
                "this QEMU already has in a vfio-pci device).\n"
                "--bus BUS places it in the guest (see 'vm slots'); without it, the first\n"
                "free place whose hotplug works.  The result says where: bus and addr.\n"
                "Exit 0 added, 1 refused by the host checks or already assigned, 2 bad\n"
                "arguments, 3 rejected by QEMU, 6 VM gone.",
        .exec = cmd_hostdev_add_exec,
    },
    {
        .group = "hostdev",
        .name = "del",
        .usage = "VM ID [--timeout SEC] [--retry N] [--retry-interval SEC] [--no-wait]",
        .summary = "hot-unplug a host device; it is free again once QEMU confirms it",
        .help = "  --timeout SEC          deadline for each attempt (default 5)\n"
                "  --retry N              after guest-error or not-deleted, ask again up to\n"
                "                         N times\n"
                "  --retry-interval SEC   at least SEC between attempts (default 2)\n"
                "  --no-wait              return once QEMU accepted the request (exit 0)\n"
                "\n"
                "Outcomes: deleted (exit 0), rejected (3), guest-error (4), not-deleted (5),\n"
                "vm-gone (6).  The host device stays assigned until QEMU confirms the\n"
                "unplug (deleted, or a later deleted-late).",
        .exec = cmd_hostdev_del_exec,
    },
    {0},
};
