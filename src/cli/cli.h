/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl: the verb table, the options every verb shares, output. */
#pragma once

#include <event2/event.h>
#include <getopt.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-vm.h"
#include "qmp-conn.h"

G_BEGIN_DECLS

/* Exit codes of SPEC "Outcomes" */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERROR = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_REJECTED = 3,
    CLI_EXIT_GUEST_ERROR = 4,
    CLI_EXIT_NOT_DELETED = 5,
    CLI_EXIT_VM_GONE = 6,
};

typedef struct {
    struct event_base *base;
    gboolean json;
    int verbose;
    const char *socket_path;  /* hotplugd control socket */
    gboolean tty;             /* stdout is a terminal */
} CliContext;

typedef struct CliCmd CliCmd;
struct CliCmd {
    const char *group;    /* "vm", "device", ... */
    const char *name;     /* "info" */
    const char *usage;    /* "VM" */
    const char *summary;  /* one line */
    const char *help;     /* more lines for `--help`, or NULL */
    /* argv[0] is the verb name; returns an exit code */
    int (*exec)(CliContext *ctx, const CliCmd *cmd, int argc, char **argv);
};

/* The options and outcomes every unplug verb shares, for its --help. */
#define CLI_UNPLUG_HELP                                                                      \
    "  --timeout SEC          deadline for each attempt (default: 5 for PCI devices,\n"      \
    "                         60 for vCPUs, 30 for memory)\n"                                    \
    "  --retry N              after guest-error or not-deleted, ask again up to N times\n"   \
    "  --retry-interval SEC   at least SEC between attempts (default 2)\n"                    \
    "  --no-wait              return once QEMU accepted the request (exit 0)\n"              \
    "\n"                                                                                     \
    "Outcomes: deleted (exit 0), rejected (3: QEMU refused the command), guest-error\n"      \
    "(4: the guest refused), not-deleted (5: still present at the deadline),\n"              \
    "vm-gone (6: QEMU went away).  A removal is always confirmed against QEMU's\n"           \
    "own device tree before not-deleted is reported."

/* One table per verb group, each ending with a zeroed entry. */
extern const CliCmd cli_vm_cmds[];
extern const CliCmd cli_device_cmds[];
extern const CliCmd cli_vcpu_cmds[];
extern const CliCmd cli_memory_cmds[];
extern const CliCmd cli_disk_cmds[];
extern const CliCmd cli_hostdev_cmds[];
extern const CliCmd cli_ops_cmds[];
extern const CliCmd cli_events_cmds[];

/* Run hotplugctl; returns the exit code. */
int cli_main(int argc, char **argv);

/* Print "usage: hotplugctl GROUP NAME USAGE" and the help to stream. */
void cli_print_cmd_help(FILE *stream, const CliCmd *cmd);
/* A usage error for cmd: message on stderr, returns CLI_EXIT_USAGE. */
int cli_usage_error(const CliCmd *cmd, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* An error: message on stderr (or an {"error":...} object with --json),
 * returns code. */
int cli_error(CliContext *ctx, int code, const GError *error);

/* TRUE when VM names a QMP socket (direct mode): anything with a '/'. */
gboolean cli_vm_is_path(const char *vm);

/* Print a JSON node as one compact line on stdout. */
void cli_print_json(JsonNode *node);

/* ---- requests (cli-request.c) ---------------------------------------
 *
 * How a verb works: it turns argv into a service command and JSON
 * arguments ("device-del" {"id": ...}) and calls cli_request(), which runs
 * the command in-process for a socket path or through hotplugd for a VM
 * name.  The command itself lives in the library as a ServiceCommand
 * (src/service/service-*.c, one file per group like this directory's
 * cmd-*.c), so hotplugd and direct mode run the same code. */

/* Run cmd with args (taken) and put its result in *ret.  A VM that is a
 * socket path runs in-process (direct mode); a VM name, or vm NULL, goes
 * to hotplugd.  args gets "vm" set when vm is given.  Attempt results and
 * (on a terminal) progress are shown while waiting.  Returns 0, or an
 * exit code after printing the error. */
int cli_request(CliContext *ctx, const char *vm, const char *cmd, JsonObject *args,
                JsonNode **ret);
/* The same, refusing direct mode with a message naming what needs hotplugd. */
int cli_request_daemon(CliContext *ctx, const char *cmd, JsonObject *args, JsonNode **ret);
/* $HOTPLUG_LOCK_ROOT (tests), or NULL: the default lock root. */
const char *cli_lock_root(void);

/* Parse argv (argv[0] is the verb) into positional arguments (returned,
 * NULL-terminated, borrowed) and the unplug options --timeout, --retry,
 * --retry-interval, --no-wait, set in args only when given.  extra lists
 * more options the verb takes, as getopt long options with flag NULL and
 * val >= 256; they land in args under their name (strings; "" for
 * no_argument).  On a usage error prints it and returns NULL. */
char **cli_parse_args(const CliCmd *cmd, int argc, char **argv, gboolean unplug,
                      const struct option *extra, JsonObject *args);
/* The whole of an unplug verb "GROUP del VM ID [unplug options]": run
 * command (e.g. "disk-del") and print its result; returns the exit code. */
int cli_exec_unplug(CliContext *ctx, const CliCmd *cmd, int argc, char **argv,
                    const char *command);
/* Parse "SEC" (may be fractional) into milliseconds. */
gboolean cli_parse_seconds(const char *text, guint64 *ms);

/* Print an op result ({...outcome...} or {"ops": [...]}) and return its
 * exit code (the worst of several). */
int cli_print_op_result(CliContext *ctx, JsonNode *ret);
/* Exit code for an error (by its class). */
int cli_exit_for_error(const GError *error);

/* Default control socket: $XDG_RUNTIME_DIR/hotplugd/control.sock, or
 * /run/hotplugd/control.sock for root. */
char *cli_default_socket(void);

G_END_DECLS
