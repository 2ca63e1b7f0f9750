/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service: VMs by name and the commands that act on them.
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

typedef struct Service Service;
typedef struct ServiceRequest ServiceRequest;

typedef struct {
    gboolean direct;                     /* direct mode: no reconnect, vm-gone on close */
    TimeoutPolicy timeouts;              /* zero: defaults */
    HotplugUnplugOptions default_unplug; /* retry policy when a request gives none */
    const char *sysfs_root;              /* host device checks; NULL: /sys */
    const char *hostdev_state_file;      /* host device claims; NULL: in memory */
    const char *hostdev_lock_root;       /* the lock per IOMMU group shared with other
                                            processes; NULL: /run/qmp-hotplug */
} ServiceOptions;

typedef struct {
    /* The one reply: ret (borrowed) or error. */
    void (*reply)(ServiceRequest *req, JsonNode *ret, const GError *error, gpointer opaque);
    /* Progress of the request ("ATTEMPT", "ATTEMPT_RESULT"), data borrowed. */
    void (*event)(ServiceRequest *req, const char *name, JsonNode *data, gpointer opaque);
    /* Optional, for a caller that only writes them out (hotplugd): the reply
     * of a request that waited for one operation, as ret's JSON text (len
     * bytes, borrowed) with the op's outcome, instead of reply; and an op's
     * progress with data as text, instead of event.  Replies built by
     * parts, or of several ops, still go to reply. */
    void (*reply_text)(ServiceRequest *req, const char *ret, gsize len, const char *outcome,
                       gpointer opaque);
    void (*event_text)(ServiceRequest *req, const char *name, const char *data, gsize len,
                       gpointer opaque);
} ServiceRequestCallbacks;

typedef struct {
    void (*op)(Service *svc, HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque);
    void (*qemu_event)(Service *svc, HotplugVm *vm, const QmpEvent *ev, HotplugOp *op,
                       gpointer opaque);
    /* state: "added", "removed", "connecting", "connected", "disconnected" */
    void (*vm_state)(Service *svc, const char *vm, const char *state, const char *detail,
                     gpointer opaque);
    /* The host device pool: event "available", "gone" (a binding to
     * vfio-pci came or went), "claimed", "released"; info (borrowed)
     * {address, group, ...}: vendor-device and members for the first two,
     * vm, device (and why for released) for the others. */
    void (*hostdev)(Service *svc, const char *event, JsonObject *info, gpointer opaque);
} ServiceListener;

Service *service_new(struct event_base *base, const ServiceOptions *opts);
void service_free(Service *svc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Service, service_free)
struct event_base *service_get_base(Service *svc);
const ServiceOptions *service_get_options(Service *svc);

guint service_add_listener(Service *svc, const ServiceListener *l, gpointer opaque);
void service_remove_listener(Service *svc, guint id);

/* VMs.  Names: letters, digits, '-', '_', '.', at most 64. */
gboolean service_vm_name_valid(const char *name);
gboolean service_add_vm(Service *svc, const char *name, const char *qmp_path, GError **error);
gboolean service_remove_vm(Service *svc, const char *name, GError **error);
HotplugVm *service_get_vm(Service *svc, const char *name);
const char *service_get_vm_path(Service *svc, const char *name);
/* Names, sorted (a new array of borrowed strings). */
GPtrArray *service_list_vms(Service *svc);

/* Watch the host device pool (uevents, or sysfs every second) and report
 * its changes to the listeners; also re-checks, every second, the claims
 * of VMs whose QEMU is gone but whose /dev/vfio/N was still open.  The
 * daemon calls it once at start; direct mode does not watch. */
void service_watch_hostdevs(Service *svc);

/* Run a command.  The reply may come before this returns.  args may be
 * NULL (no arguments); it is not taken. */
ServiceRequest *service_execute(Service *svc, const char *cmd, JsonObject *args,
                                const ServiceRequestCallbacks *cb, gpointer opaque);
/* The requester went away: no more callbacks for req. */
void service_request_cancel(ServiceRequest *req);

/* ---- for command implementations ------------------------------------ */

typedef void (*ServiceCommandFunc)(Service *svc, ServiceRequest *req, JsonObject *args);
typedef struct {
    const char *name;
    ServiceCommandFunc run;
    /* The argument names it takes (NULL-terminated; "vm" included when it
     * takes one).  Any other argument is refused with InvalidArgument
     * before run is called.  NULL: no check. */
    const char *const *args;
} ServiceCommand;

/* Add a table of commands (ending with {NULL}); the table must live as
 * long as the service. */
void service_register(Service *svc, const ServiceCommand *cmds);
/* Sorted names of every command (new array, borrowed strings). */
GPtrArray *service_list_commands(Service *svc);
/* TRUE when name is one of service_list_commands' (without building it). */
gboolean service_has_command(Service *svc, const char *name);

Service *service_request_get_service(ServiceRequest *req);
void service_request_return(ServiceRequest *req, JsonNode *ret /* taken */);
void service_request_fail(ServiceRequest *req, GError *error /* taken */);
void service_request_event(ServiceRequest *req, const char *name, JsonNode *data);
/* Reply with the op's result object when it is final (or accepted, with
 * no_wait); ATTEMPT_RESULT events meanwhile.  Takes a reference. */
void service_request_wait_op(ServiceRequest *req, HotplugVm *vm, HotplugOp *op, gboolean no_wait);
/* Several ops: reply {"ops": [...]} when all are final (or accepted). */
void service_request_wait_ops(ServiceRequest *req, HotplugVm *vm, GPtrArray *ops, gboolean no_wait);

/* The VM named by args' "vm" member; on failure replies with the error and
 * returns NULL (the handler then just returns). */
HotplugVm *service_request_get_vm(ServiceRequest *req, JsonObject *args);
/* Argument getters: on a missing required or wrongly typed argument they
 * reply with an InvalidArgument error and return FALSE. */
gboolean service_request_arg_string(ServiceRequest *req, JsonObject *args, const char *name,
                                    gboolean required, const char **out);
gboolean service_request_arg_uint(ServiceRequest *req, JsonObject *args, const char *name,
                                  gboolean required, guint64 max, guint64 *out);
gboolean service_request_arg_bool(ServiceRequest *req, JsonObject *args, const char *name,
                                  gboolean *out);
/* "timeout", "retry", "retry-interval" (seconds, may be fractional) and
 * "no-wait", with the service's defaults. */
gboolean service_request_unplug_args(ServiceRequest *req, JsonObject *args,
                                     HotplugUnplugOptions *opts, gboolean *no_wait);

/* Error classes on the wire: QEMU's own for QEMU errors; InvalidArgument,
 * InvalidProperty, Busy, Unsupported, VmGone, NotFound, Failed for ours. */
const char *service_error_class(const GError *error);
GError *service_error_from_class(const char *cls, const char *desc);

G_END_DECLS
