/* hotplugctl: the verb table, the options every verb shares, output. */
#pragma once

#include <event2/event.h>
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

/* One table per verb group, each ending with a zeroed entry. */
extern const CliCmd cli_vm_cmds[];
extern const CliCmd cli_device_cmds[];

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
/* Connect to VM in direct mode and wait for QMP to be ready.  A VM name
 * (daemon mode) is refused with a clear message until hotplugd exists. */
QmpConn *cli_vm_connect(CliContext *ctx, const char *vm, GError **error);

/* Print a JSON node as one compact line on stdout. */
void cli_print_json(JsonNode *node);

/* ---- operations (cli-op.c) ---------------------------------------- */

/* The options every unplug verb takes. */
typedef struct {
    HotplugUnplugOptions unplug;
    gboolean no_wait;
} CliUnplugArgs;

/* Parse argv (argv[0] is the verb) into positional arguments (returned,
 * NULL-terminated, borrowed strings) and the unplug options.  On a usage
 * error prints it and returns NULL. */
char **cli_parse_unplug_args(const CliCmd *cmd, int argc, char **argv, CliUnplugArgs *out);
/* Parse "SEC" (may be fractional) into milliseconds. */
gboolean cli_parse_seconds(const char *text, guint *ms);

/* Direct mode: connect to the socket and start an engine on it. */
HotplugVm *cli_engine_open(CliContext *ctx, const char *vm, GError **error);
void cli_engine_close(HotplugVm *vm);

/* Wait for op to end (or, with no_wait, to be accepted by QEMU), showing
 * attempts and progress; print the result; return the exit code. */
int cli_op_wait(CliContext *ctx, HotplugVm *vm, HotplugOp *op, gboolean no_wait);
/* Exit code and message for an error from hotplug_vm_*(). */
int cli_op_error(CliContext *ctx, const GError *error);

G_END_DECLS
