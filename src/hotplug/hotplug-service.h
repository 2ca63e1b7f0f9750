/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hotplug service: VMs by name and the commands that act on them.
 *
 * One service runs inside hotplugd (many VMs, reconnecting) and one inside
 * hotplugctl in direct mode (one VM, named by its socket path).  Both run
 * the same commands — "device-del", "vm-info", ... with JSON arguments —
 * so every verb is implemented once.  The control protocol's commands are
 * these commands. */
#pragma once

#include <event2/event.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-vm.h"
#include "qmp-conn.h"

G_BEGIN_DECLS

typedef struct HotplugService HotplugService;
typedef struct HotplugRequest HotplugRequest;

typedef struct {
    gboolean direct;                     /* direct mode: no reconnect, vm-gone on close */
    TimeoutPolicy timeouts;              /* zero: defaults */
    HotplugUnplugOptions default_unplug; /* retry policy when a request gives none */
    const char *sysfs_root;              /* host device checks; NULL: /sys */
    const char *hostdev_state_file;      /* host device claims; NULL: in memory */
} HotplugServiceOptions;

typedef struct {
    /* The one reply: ret (borrowed) or error. */
    void (*reply)(HotplugRequest *req, JsonNode *ret, const GError *error, gpointer opaque);
    /* Progress of the request ("ATTEMPT", "ATTEMPT_RESULT"), data borrowed. */
    void (*event)(HotplugRequest *req, const char *name, JsonNode *data, gpointer opaque);
} HotplugRequestCallbacks;

typedef struct {
    void (*op)(HotplugService *svc, HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev,
               gpointer opaque);
    void (*qemu_event)(HotplugService *svc, HotplugVm *vm, const QmpEvent *ev, HotplugOp *op,
                       gpointer opaque);
    /* state: "added", "removed", "connecting", "connected", "disconnected" */
    void (*vm_state)(HotplugService *svc, const char *vm, const char *state, const char *detail,
                     gpointer opaque);
} HotplugServiceListener;

HotplugService *hotplug_service_new(struct event_base *base, const HotplugServiceOptions *opts);
void hotplug_service_free(HotplugService *svc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugService, hotplug_service_free)
struct event_base *hotplug_service_get_base(HotplugService *svc);
const HotplugServiceOptions *hotplug_service_get_options(HotplugService *svc);

guint hotplug_service_add_listener(HotplugService *svc, const HotplugServiceListener *l,
                                   gpointer opaque);
void hotplug_service_remove_listener(HotplugService *svc, guint id);

/* VMs.  Names: letters, digits, '-', '_', '.', at most 64. */
gboolean hotplug_vm_name_valid(const char *name);
gboolean hotplug_service_add_vm(HotplugService *svc, const char *name, const char *qmp_path,
                                GError **error);
gboolean hotplug_service_remove_vm(HotplugService *svc, const char *name, GError **error);
HotplugVm *hotplug_service_get_vm(HotplugService *svc, const char *name);
const char *hotplug_service_get_vm_path(HotplugService *svc, const char *name);
/* Names, sorted (a new array of borrowed strings). */
GPtrArray *hotplug_service_list_vms(HotplugService *svc);

/* Run a command.  The reply may come before this returns.  args may be
 * NULL (no arguments); it is not taken. */
HotplugRequest *hotplug_service_execute(HotplugService *svc, const char *cmd, JsonObject *args,
                                        const HotplugRequestCallbacks *cb, gpointer opaque);
/* The requester went away: no more callbacks for req. */
void hotplug_request_cancel(HotplugRequest *req);

/* ---- for command implementations ------------------------------------ */

typedef void (*HotplugCommandFunc)(HotplugService *svc, HotplugRequest *req, JsonObject *args);
typedef struct {
    const char *name;
    HotplugCommandFunc run;
    /* The argument names it takes (NULL-terminated; "vm" included when it
     * takes one).  Any other argument is refused with InvalidArgument
     * before run is called.  NULL: no check. */
    const char *const *args;
} HotplugCommand;

/* Add a table of commands (ending with {NULL}); the table must live as
 * long as the service. */
void hotplug_service_register(HotplugService *svc, const HotplugCommand *cmds);
/* Sorted names of every command (new array, borrowed strings). */
GPtrArray *hotplug_service_list_commands(HotplugService *svc);

HotplugService *hotplug_request_get_service(HotplugRequest *req);
void hotplug_request_return(HotplugRequest *req, JsonNode *ret /* taken */);
void hotplug_request_fail(HotplugRequest *req, GError *error /* taken */);
void hotplug_request_event(HotplugRequest *req, const char *name, JsonNode *data);
/* Reply with the op's result object when it is final (or accepted, with
 * no_wait); ATTEMPT_RESULT events meanwhile.  Takes a reference. */
void hotplug_request_wait_op(HotplugRequest *req, HotplugVm *vm, HotplugOp *op,
                             gboolean no_wait);
/* Several ops: reply {"ops": [...]} when all are final (or accepted). */
void hotplug_request_wait_ops(HotplugRequest *req, HotplugVm *vm, GPtrArray *ops,
                              gboolean no_wait);

/* The VM named by args' "vm" member; on failure replies with the error and
 * returns NULL (the handler then just returns). */
HotplugVm *hotplug_request_get_vm(HotplugRequest *req, JsonObject *args);
/* Argument getters: on a missing required or wrongly typed argument they
 * reply with an InvalidArgument error and return FALSE. */
gboolean hotplug_request_arg_string(HotplugRequest *req, JsonObject *args, const char *name,
                                    gboolean required, const char **out);
gboolean hotplug_request_arg_uint(HotplugRequest *req, JsonObject *args, const char *name,
                                  gboolean required, guint64 max, guint64 *out);
gboolean hotplug_request_arg_bool(HotplugRequest *req, JsonObject *args, const char *name,
                                  gboolean *out);
/* "timeout", "retry", "retry-interval" (seconds, may be fractional) and
 * "no-wait", with the service's defaults. */
gboolean hotplug_request_unplug_args(HotplugRequest *req, JsonObject *args,
                                     HotplugUnplugOptions *opts, gboolean *no_wait);

/* Error classes on the wire: QEMU's own for QEMU errors; InvalidArgument,
 * InvalidProperty, Busy, Unsupported, VmGone, NotFound, Failed for ours. */
const char *hotplug_error_class(const GError *error);
GError *hotplug_error_from_class(const char *cls, const char *desc);

G_END_DECLS
