/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl hostdev ...: VFIO host PCI devices: the pool, add, del. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "hotplug-hostdev.h"
#include "hotplug-hostpool.h"
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

static void
cmd_hostdev_print_list(JsonObject *r)
{
    JsonArray *a = qmp_json_get_array(r, "hostdevs");

    printf("%-13s %-10s %-6s %-9s %s\n", "ADDRESS", "VEN:DEV", "GROUP", "STATE", "HOLDER");
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *o = qmp_json_node_object(json_array_get_element(a, i));
        const char *state = qmp_json_get_string(o, "state");
        const char *group = qmp_json_get_string(o, "group");
        JsonArray *members = qmp_json_get_array(o, "members");
        g_autoptr(GString) holder = g_string_new("");
        g_autoptr(GString) with = g_string_new("");

        if (g_strcmp0(state, "claimed") == 0) {
            g_string_printf(holder, "VM %s (device %s)", qmp_json_get_string(o, "vm"),
                            qmp_json_get_string(o, "device"));
            if (json_object_has_member(o, "pid"))
                g_string_append_printf(
                    holder, " of process %" G_GINT64_FORMAT "%s",
                    qmp_json_get_int_default(o, "pid", 0),
                    qmp_json_get_bool_default(o, "claimer-running", TRUE) ? "" : ", not running");
        } else if (g_strcmp0(state, "in-use") == 0) {
            g_string_printf(holder, "process %" G_GINT64_FORMAT " (%s)",
                            qmp_json_get_int_default(o, "pid", 0),
                            qmp_json_get_string(o, "process"));
        } else {
            g_string_assign(holder, "-");
        }
        for (guint j = 0; members && j < json_array_get_length(members); j++) {
            const char *m = json_array_get_string_element(members, j);
            if (m && !g_str_equal(m, qmp_json_get_string(o, "address")))
                g_string_append_printf(with, "%s%s", with->len ? "," : "", m);
        }
        printf("%-13s %-10s %-6s %-9s %s%s%s\n", qmp_json_get_string(o, "address"),
               qmp_json_get_string(o, "vendor-device"), group ? group : "-", state, holder->str,
               with->len ? "  group also: " : "", with->str);
    }
}

static int
cmd_hostdev_list_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(JsonNode) ret = NULL;
    gboolean local = FALSE;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (g_str_equal(argv[i], "--local"))
            local = TRUE;
        else
            return cli_usage_error(cmd, "unknown argument");
    }
    if (local) {
        /* the host as this process sees it: no registry of its own */
        const char *sysfs = g_getenv("HOTPLUG_SYSFS_ROOT");
        const char *lock_root = cli_lock_root();
        g_autoptr(HotplugHostpool) pool = hotplug_hostpool_new(sysfs && *sysfs ? sysfs : NULL);
        JsonObject *o = json_object_new();

        json_object_set_member(
            o, "hostdevs",
            hotplug_hostpool_list(pool, NULL, lock_root ? lock_root : HOTPLUG_LOCK_ROOT_DEFAULT,
                                  NULL));
        json_object_set_string_member(o, "watch", "none");
        ret = json_node_init_object(json_node_alloc(), o);
        json_object_unref(o);
    } else {
        rc = cli_request_daemon(ctx, "hostdev-list", json_object_new(), &ret);
        if (rc)
            return rc;
    }
    if (ctx->json)
        cli_print_json(ret);
    else
        cmd_hostdev_print_list(qmp_json_node_object(ret));
    return CLI_EXIT_OK;
}

static int
cmd_hostdev_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    return cli_exec_unplug(ctx, cmd, argc, argv, "hostdev-del");
}

const CliCmd cli_hostdev_cmds[] = {
    {
        .group = "hostdev",
        .name = "list",
        .usage = "[--local]",
        .summary = "the host devices bound to vfio-pci: free, claimed by a VM, or in use by a process",
        .help = "One line per PCI function bound to vfio-pci: address, vendor:device, IOMMU\n"
                "group (and the group's other members), state and holder.  States:\n"
                "  free      nobody holds its group\n"
                "  claimed   a VM holds its group (VM, device; the claiming process when\n"
                "            it is another hotplugd or a direct-mode hotplugctl)\n"
                "  in-use    /dev/vfio/N is open in a process no claim names (its pid)\n"
                "Asks hotplugd; --local reads this host here instead (sysfs, the locks\n"
                "under $HOTPLUG_LOCK_ROOT or /run/qmp-hotplug, /proc).  With --json:\n"
                "{\"hostdevs\": [{address, vendor-device, group, members, state, vm?,\n"
                "device?, pid?, process?, claimer-running?}], \"watch\": \"uevent\"|\"poll\"}.",
        .exec = cmd_hostdev_list_exec,
    },
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
                "this QEMU already has in a vfio-pci device).  Claims are per IOMMU group:\n"
                "a member of a group another VM holds is refused naming that VM; so is a\n"
                "group another process (hotplugd, or hotplugctl in direct mode) holds the\n"
                "lock of ($HOTPLUG_LOCK_ROOT or /run/qmp-hotplug/vfio-group-N.lock), or\n"
                "whose /dev/vfio/N is open in any process (naming its pid).\n"
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
