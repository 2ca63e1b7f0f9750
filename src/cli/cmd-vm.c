/* hotplugctl vm ...: what a VM is and can do. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <stdio.h>

#include "cli.h"
#include "qmp-caps.h"

#define CLI_PROBE_TIMEOUT_MS 30000

typedef struct {
    gboolean done;
    QmpCaps *caps;
    GError *error;
} CliProbe;

static void
cmd_vm_probe_cb(QmpConn *conn, QmpCaps *caps, const GError *error, gpointer opaque)
{
    CliProbe *p = opaque;

    p->done = TRUE;
    p->caps = caps;
    if (error)
        p->error = g_error_copy(error);
}

static int
cmd_vm_info_exec(CliContext *ctx, const CliCmd *cmd, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(QmpConn) conn = NULL;
    g_autoptr(QmpCaps) caps = NULL;
    CliProbe p = {0};

    if (argc != 2)
        return cli_usage_error(cmd, argc < 2 ? "missing VM" : "too many arguments");
    conn = cli_vm_connect(ctx, argv[1], &error);
    if (!conn)
        return cli_error(ctx, CLI_EXIT_ERROR, error);
    if (!qmp_caps_probe(conn, cmd_vm_probe_cb, &p, &error))
        return cli_error(ctx, CLI_EXIT_ERROR, error);
    if (!qmp_loop_run_until(ctx->base, &p.done, CLI_PROBE_TIMEOUT_MS)) {
        g_set_error(&error, QMP_ERROR, QMP_ERROR_TIMEOUT, "%s did not answer the probe in %d s",
                    argv[1], CLI_PROBE_TIMEOUT_MS / 1000);
        qmp_conn_close(conn); /* the probe's callbacks run now, against p */
        g_clear_pointer(&p.caps, qmp_caps_free);
        g_clear_error(&p.error);
        return cli_error(ctx, CLI_EXIT_ERROR, error);
    }
    if (p.error) {
        error = p.error;
        return cli_error(ctx, CLI_EXIT_ERROR, error);
    }
    caps = p.caps;

    if (ctx->json) {
        g_autoptr(JsonNode) root = qmp_caps_to_json(caps);
        JsonObject *o = json_node_get_object(root);
        json_object_set_string_member(o, "vm", argv[1]);
        cli_print_json(root);
    } else {
        const char *const *list = qmp_caps_list(caps);
        printf("vm:           %s\n", argv[1]);
        printf("qemu:         %d.%d.%d\n", qmp_caps_version_major(caps),
               qmp_caps_version_minor(caps), qmp_caps_version_micro(caps));
        printf("package:      %s\n", qmp_caps_package(caps));
        printf("machine:      %s\n", qmp_caps_machine_type(caps) ?: "(unknown)");
        printf("status:       %s\n", qmp_caps_run_state(caps) ?: "(unknown)");
        printf("capabilities:");
        for (; *list; list++)
            printf(" %s", *list);
        printf("\n");
    }
    qmp_conn_close(conn);
    return CLI_EXIT_OK;
}

const CliCmd cli_vm_cmds[] = {
    {
        .group = "vm",
        .name = "info",
        .usage = "VM",
        .summary = "QEMU version, package, machine type, run state and hotplug capabilities",
        .help = "Connects to the VM's QMP socket, probes query-version, query-qmp-schema,\n"
                "query-status, the machine type and query-hotpluggable-cpus, and prints\n"
                "what it found.  With --json, one object with version, package, machine,\n"
                "status and capabilities.",
        .exec = cmd_vm_info_exec,
    },
    {0},
};
