/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl: the verb tables, finding a verb by unique prefix, usage and
 * per-verb help, and the JSON and error output every verb shares. */
#define G_LOG_DOMAIN "hotplugctl"
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "service.h"

static const CliCmd *const cli_tables[] = {
    cli_vm_cmds,
    cli_device_cmds,
    cli_vcpu_cmds,
    cli_memory_cmds,
    cli_disk_cmds,
    cli_hostdev_cmds,
    cli_ops_cmds,
    cli_events_cmds,
};

void
cli_print_cmd_help(FILE *stream, const CliCmd *cmd)
{
    fprintf(stream, "usage: hotplugctl %s%s%s %s\n", cmd->group, *cmd->name ? " " : "", cmd->name,
            cmd->usage);
    fprintf(stream, "\n%s\n", cmd->summary);
    if (cmd->help)
        fprintf(stream, "\n%s\n", cmd->help);
}

int
cli_usage_error(const CliCmd *cmd, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "hotplugctl: %s\n", msg);
    if (cmd)
        fprintf(stderr, "usage: hotplugctl %s%s%s %s\n", cmd->group, *cmd->name ? " " : "",
                cmd->name, cmd->usage);
    return CLI_EXIT_USAGE;
}

void
cli_print_json(JsonNode *node)
{
    g_autofree char *text = json_to_string(node, FALSE);
    printf("%s\n", text);
    fflush(stdout);
}

int
cli_error(CliContext *ctx, int code, const GError *error)
{
    if (ctx->json) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        g_autoptr(JsonNode) root = NULL;
        const char *cls = service_error_class(error);

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "error");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "class");
        json_builder_add_string_value(b, cls);
        json_builder_set_member_name(b, "desc");
        json_builder_add_string_value(b, error->message);
        json_builder_end_object(b);
        json_builder_end_object(b);
        root = json_builder_get_root(b);
        cli_print_json(root);
    }
    fprintf(stderr, "hotplugctl: %s\n", error->message);
    return code;
}

gboolean
cli_vm_is_path(const char *vm)
{
    return strchr(vm, '/') != NULL;
}

/* ---- the verb table ------------------------------------------------- */

static void
cli_print_usage(FILE *stream)
{
    fprintf(stream,
            "usage: hotplugctl [--socket PATH] [--json] [-v] COMMAND ...\n"
            "\n"
            "VM is a QMP socket path (direct mode, anything containing '/') or the\n"
            "name of a VM registered with hotplugd.\n"
            "\n"
            "Commands:\n");
    for (guint t = 0; t < G_N_ELEMENTS(cli_tables); t++) {
        for (const CliCmd *c = cli_tables[t]; c->name; c++) {
            g_autofree char *left = g_strdup_printf("%s%s%s %s", c->group, *c->name ? " " : "",
                                                    c->name, c->usage);
            fprintf(stream, "  %-44s %s\n", left, c->summary);
        }
    }
    fprintf(stream,
            "\n"
            "Options:\n"
            "  --socket PATH  hotplugd control socket (also $HOTPLUGD_SOCKET)\n"
            "  --json         one JSON object per result\n"
            "  -v, --verbose  more messages on stderr (twice: QMP traffic)\n"
            "  -h, --help     this help; 'hotplugctl GROUP VERB --help' for one verb\n"
            "  --version      print the version\n"
            "\n"
            "Exit status: 0 done (added/deleted), 1 error, 2 usage error, 3 rejected by QEMU,\n"
            "4 refused by the guest, 5 not deleted by the deadline, 6 VM went away.\n"
            "See hotplugctl(1).\n");
}

/* Find name among candidates by exact match or unique prefix.  On
 * ambiguity, lists the candidates. */
static int
cli_match(const char *name, const char *const *candidates, guint n, const char *what)
{
    int found = -1;
    guint nmatch = 0;

    for (guint i = 0; i < n; i++) {
        if (g_str_equal(name, candidates[i]))
            return (int)i;
        if (g_str_has_prefix(candidates[i], name)) {
            found = (int)i;
            nmatch++;
        }
    }
    if (nmatch == 1)
        return found;
    if (nmatch == 0) {
        fprintf(stderr, "hotplugctl: unknown %s '%s'\n", what, name);
        return -1;
    }
    fprintf(stderr, "hotplugctl: ambiguous %s '%s': could be", what, name);
    for (guint i = 0; i < n; i++)
        if (g_str_has_prefix(candidates[i], name))
            fprintf(stderr, " %s", candidates[i]);
    fprintf(stderr, "\n");
    return -1;
}

static const CliCmd *
cli_find(const char *group, const char *verb)
{
    g_autoptr(GPtrArray) groups = g_ptr_array_new();
    g_autoptr(GPtrArray) verbs = g_ptr_array_new();
    g_autoptr(GPtrArray) entries = g_ptr_array_new();
    const char *gname;
    int gi, vi;

    for (guint t = 0; t < G_N_ELEMENTS(cli_tables); t++)
        g_ptr_array_add(groups, (gpointer)cli_tables[t][0].group);
    gi = cli_match(group, (const char *const *)groups->pdata, groups->len, "command");
    if (gi < 0)
        return NULL;
    gname = groups->pdata[gi];
    if (!*cli_tables[gi][0].name)
        return &cli_tables[gi][0]; /* a one-word command: ops, events */
    if (!verb) {
        fprintf(stderr, "hotplugctl: '%s' needs a verb:", gname);
        for (const CliCmd *c = cli_tables[gi]; c->name; c++)
            fprintf(stderr, " %s", c->name);
        fprintf(stderr, "\n");
        return NULL;
    }
    for (const CliCmd *c = cli_tables[gi]; c->name; c++) {
        g_ptr_array_add(verbs, (gpointer)c->name);
        g_ptr_array_add(entries, (gpointer)c);
    }
    {
        g_autofree char *what = g_strdup_printf("'%s' verb", gname);
        vi = cli_match(verb, (const char *const *)verbs->pdata, verbs->len, what);
    }
    return vi < 0 ? NULL : entries->pdata[vi];
}

static void
cli_log_handler(const char *domain, GLogLevelFlags level, const char *message, gpointer opaque)
{
    int verbose = GPOINTER_TO_INT(opaque);

    if ((level & G_LOG_LEVEL_DEBUG) && verbose < 2)
        return;
    if ((level & (G_LOG_LEVEL_INFO | G_LOG_LEVEL_MESSAGE)) && verbose < 1)
        return;
    fprintf(stderr, "hotplugctl: %s%s%s\n", domain ? domain : "", domain ? ": " : "", message);
}

int
cli_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    CliContext ctx = {0};
    const CliCmd *cmd;
    int ch, rc;

    ctx.socket_path = g_getenv("HOTPLUGD_SOCKET");
    /* '+': stop at the first non-option; verbs parse their own options */
    while ((ch = getopt_long(argc, argv, "+jvh", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            ctx.socket_path = optarg;
            break;
        case 'j':
            ctx.json = TRUE;
            break;
        case 'v':
            ctx.verbose++;
            break;
        case 'h':
            cli_print_usage(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("hotplugctl %s\n", PACKAGE_VERSION);
            return CLI_EXIT_OK;
        default:
            cli_print_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    cmd = cli_find(argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL);
    if (!cmd)
        return CLI_EXIT_USAGE;
    for (int i = optind + (*cmd->name ? 2 : 1); i < argc; i++) {
        if (g_str_equal(argv[i], "--"))
            break;
        if (g_str_equal(argv[i], "--help") || g_str_equal(argv[i], "-h")) {
            cli_print_cmd_help(stdout, cmd);
            return CLI_EXIT_OK;
        }
    }
    g_log_set_default_handler(cli_log_handler, GINT_TO_POINTER(ctx.verbose));
    /* -vv: the QMP traffic; otherwise it is not even formatted */
    g_log_set_debug_enabled(ctx.verbose >= 2);
    ctx.tty = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
    ctx.base = event_base_new();
    {
        /* the verb sees argv from its own name on; getopt starts afresh */
        int first = optind + (*cmd->name ? 1 : 0);
        optind = 0;
        rc = cmd->exec(&ctx, cmd, argc - first, argv + first);
    }
    event_base_free(ctx.base);
    return rc;
}
