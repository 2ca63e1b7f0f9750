/* hotplugctl hostdev ...: VFIO host PCI devices. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "hotplug-hostdev.h"

#define CLI_QUERY_TIMEOUT_MS 30000

/* Where sysfs is: $HOTPLUG_SYSFS_ROOT (tests point it at a fake tree), else /sys. */
static const char *
cmd_hostdev_sysfs_root(void)
{
    const char *root = g_getenv("HOTPLUG_SYSFS_ROOT");

    return root && *root ? root : HOTPLUG_SYSFS_ROOT_DEFAULT;
}

typedef struct {
    gboolean done;
    GError *error;
} CliHostdevSync;

static void
cmd_hostdev_sync_cb(HotplugHostdev *hd, const GError *error, gpointer opaque)
{
    CliHostdevSync *s = opaque;

    s->done = TRUE;
    if (error)
        s->error = g_error_copy(error);
}

static int
cmd_hostdev_add_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'd'},
        {0},
    };
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GPtrArray) pos = g_ptr_array_new();
    g_autofree char *addr = NULL;
    CliHostdevSync sync = {0};
    HotplugHostdev *hd;
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
        case ':':
            return cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (pos->len != 2)
        return cli_usage_error(cmd, pos->len < 1   ? "missing VM"
                                    : pos->len < 2 ? "missing PCI_ADDR"
                                                   : "too many arguments");
    if (!id || !*id)
        return cli_usage_error(cmd, "missing --id ID");
    if (!hotplug_pci_addr_parse(pos->pdata[1], &addr, &error))
        return cli_op_error(ctx, error);

    vm = cli_engine_open(ctx, pos->pdata[0], &error);
    if (!vm)
        return cli_op_error(ctx, error);
    /* direct mode has no registry file: what QEMU shows is the accounting */
    hd = hotplug_hostdev_new(vm, NULL, cmd_hostdev_sysfs_root());
    if (!hotplug_hostdev_sync(hd, cmd_hostdev_sync_cb, &sync, &error) ||
        !qmp_loop_run_until(ctx->base, &sync.done, CLI_QUERY_TIMEOUT_MS)) {
        if (!error)
            g_set_error(&error, QMP_ERROR, QMP_ERROR_TIMEOUT, "no answer from %s",
                        (char *)pos->pdata[0]);
        rc = cli_op_error(ctx, error);
    } else if (sync.error) {
        rc = cli_op_error(ctx, sync.error);
    } else {
        op = hotplug_hostdev_add(hd, addr, id, &error);
        rc = op ? cli_op_wait(ctx, vm, op, FALSE) : cli_op_error(ctx, error);
    }
    g_clear_error(&sync.error);
    hotplug_hostdev_free(hd);
    cli_engine_close(vm);
    return rc;
}

static int
cmd_hostdev_del_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autofree char **pos = NULL;
    CliUnplugArgs args;
    HotplugHostdev *hd;
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
    hd = hotplug_hostdev_new(vm, NULL, cmd_hostdev_sysfs_root());
    op = hotplug_hostdev_del(hd, pos[1], &args.unplug, NULL, &error);
    rc = op ? cli_op_wait(ctx, vm, op, args.no_wait) : cli_op_error(ctx, error);
    hotplug_hostdev_free(hd);
    cli_engine_close(vm);
    return rc;
}

const CliCmd cli_hostdev_cmds[] = {
    {
        .group = "hostdev",
        .name = "add",
        .usage = "VM PCI_ADDR --id ID",
        .summary = "hand a host PCI device to the VM (device_add vfio-pci)",
        .help = "PCI_ADDR is DDDD:BB:DD.F (hex), e.g. 0000:01:00.0.  Before anything is\n"
                "sent, the host is checked under $HOTPLUG_SYSFS_ROOT (default /sys): the\n"
                "device exists, is bound to vfio-pci, has an IOMMU group, and the other\n"
                "devices of its group are bound to vfio-pci or to nothing.  A device\n"
                "already assigned to a VM we manage is refused (in direct mode: one that\n"
                "this QEMU already has in a vfio-pci device).\n"
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
