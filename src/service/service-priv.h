/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's internals, shared by its rooms: each command group's
 * table (service-<group>.c), the per-VM host devices, ServiceCall
 * (service-call.c), the shared argument getters (service-args.c), and
 * what service.c offers the commands beyond service.h. */
#pragma once

#include "hotplug-hostdev.h"
#include "hotplug-topology.h"
#include "service.h"

G_BEGIN_DECLS

/* ---- service-vm.c ------------------------------------------------------ */

/* "vm-list", "vm-add", "vm-remove", "vm-info", "vm-slots" */
extern const ServiceCommand service_vm_commands[];

/* ---- service-device.c -------------------------------------------------- */

/* "device-add", "device-del", "device-list" */
extern const ServiceCommand service_device_commands[];

/* ---- service-ops.c ----------------------------------------------------- */

/* "ops" */
extern const ServiceCommand service_ops_commands[];

/* ---- service-disk.c ---------------------------------------------------- */

/* "disk-add", "disk-del", "disk-list" */
extern const ServiceCommand service_disk_commands[];

/* ---- service-hostdev.c -------------------------------------------------- */

/* "hostdev-add", "hostdev-del", "hostdev-list" */
extern const ServiceCommand service_hostdev_commands[];

/* The host devices of one VM of the service: its HotplugHostdev on the
 * service's registry (made once the registry can be read), and the
 * hostdev-add requests waiting for QEMU's view of the VM first. */
typedef struct ServiceHostdev ServiceHostdev;

ServiceHostdev *service_hostdev_new(Service *svc, HotplugVm *vm);
/* Before vm is freed; waiting requests fail with VmGone. */
void service_hostdev_free(ServiceHostdev *sh);
/* vm's QEMU is (again) connected: what it shows is synced into the
 * registry (the daemon at once; direct mode when a hostdev-add asks). */
void service_hostdev_connected(ServiceHostdev *sh);
/* vm's QMP connection closed (the daemon: it reconnects when it can). */
void service_hostdev_disconnected(ServiceHostdev *sh);
/* Re-check the claims kept when the tenant went (their /dev/vfio/N was
 * still open then). */
void service_hostdev_recheck(ServiceHostdev *sh);

/* ---- service-vcpu.c ----------------------------------------------------- */

/* "vcpu-list", "vcpu-set", "vcpu-enable", "vcpu-disable" */
extern const ServiceCommand service_vcpu_commands[];

/* ---- service-memory.c --------------------------------------------------- */

/* "memory-add", "memory-del", "memory-list" */
extern const ServiceCommand service_memory_commands[];

/* ---- service-call.c -------------------------------------------------------- */

/* A command between its QEMU queries: what it was asked, and its VM by
 * name, since the VM may be removed while QEMU answers. */
typedef struct ServiceCall ServiceCall;
struct ServiceCall {
    Service *svc;
    ServiceRequest *req;
    HotplugVm *vm; /* only compared once the queries are answered */
    char *name;
    /* vcpu-* */
    guint count; /* vcpu-set */
    GArray *ids; /* guint vCPU ids: vcpu-enable, vcpu-disable */
    gint64 node; /* -1: none given */
    HotplugUnplugOptions unplug;
    gboolean no_wait;
    /* memory-* */
    char *id;
    guint64 size;
    JsonNode *devices; /* query-memory-devices */
    /* vm-info */
    JsonNode *result;  /* the reply being built */
};

ServiceCall *service_call_new(Service *svc, ServiceRequest *req, HotplugVm *vm);
void service_call_free(ServiceCall *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ServiceCall, service_call_free)
/* The call's VM, still the one registered under its name; else the call
 * fails (VmGone) and NULL.  Only after a successful reply: a reply that
 * failed because the VM is being freed must not look. */
HotplugVm *service_call_vm(ServiceCall *c);
/* A query answered: its VM (service_call_vm).  A query that failed fails
 * the call: QEMU's refusal as it is, a lost connection (the VM went away,
 * was removed, or the service is ending) as VmGone naming the VM; NULL. */
HotplugVm *service_call_answered(ServiceCall *c, const GError *error);
/* A call on the VM named by args' "vm"; NULL when there is none (the
 * request is answered, as service_request_get_vm). */
ServiceCall *service_call_for_vm(Service *svc, ServiceRequest *req, JsonObject *args);
/* After starting what calls back with c: when that failed (ok FALSE) the
 * call fails with *error (taken) and is freed. */
void service_call_started(ServiceCall *c, gboolean ok, GError **error);
/* Send cmd (args taken) to the call's VM; done gets c.  On failure the
 * call is answered and freed. */
void service_call_execute(ServiceCall *c, const char *cmd, JsonNode *args, QmpReplyFunc done);
/* Reply ret (taken: an object, given the call's "vm"), or fail with a
 * copy of error. */
void service_call_reply(ServiceCall *c, JsonNode *ret, const GError *error);
/* A reply that failed without QEMU's word (the connection went): the
 * call fails with it.  QEMU's own refusals are for the caller to judge. */
gboolean service_call_lost(ServiceCall *c, JsonNode *ret, const GError *error);

/* What QEMU's error means, for people; NULL when nothing to add. */
typedef const char *(*ServiceHintFunc)(const GError *error);
/* Before waiting: rejected ops get hint's "hint", the reply extra's
 * members (taken; may be NULL). */
void service_request_set_hint(ServiceRequest *req, ServiceHintFunc hint, JsonObject *extra);

/* ---- service-place.c ----------------------------------------------------- */
/* A place was found (r, or NULL when the device takes none: not PCI). */
typedef void (*ServicePlacedFunc)(ServiceRequest *req, HotplugVm *vm,
                                  const HotplugPlacementResult *r, gpointer data);
/* Place the plug of id before it is sent: with driver, as a device_add of
 * it with props (bus= among them by hand, else automatic for a PCI
 * driver); without, on bus (NULL: automatic).  Then go (data freed with
 * destroy after), with "bus" and "addr" added to the reply; a refusal
 * ends in an operation rejected before anything was sent, and go is not
 * called. */
void service_place(ServiceRequest *req, HotplugVm *vm, HotplugKind kind, const char *driver,
                   const char *id, const char *const *props, const char *bus, ServicePlacedFunc go,
                   gpointer data, GDestroyNotify destroy);

/* ---- service-args.c ------------------------------------------------------ */

/* What every unplug command takes besides its own arguments. */
#define SERVICE_UNPLUG_ARGS "timeout", "retry", "retry-interval", "no-wait"

/* Reply InvalidArgument "argument 'NAME' WHAT"; returns FALSE. */
gboolean service_request_bad_arg(ServiceRequest *req, const char *name, const char *what);
/* "node": a NUMA node number, -1 when absent. */
gboolean service_request_arg_node(ServiceRequest *req, JsonObject *args, gint64 *node);

/* ---- service.c ----------------------------------------------------------- */

/* Called on the reply of service_request_wait_op (the op's result) or
 * service_request_wait_ops ({"ops": [...]}) just before it goes out, to
 * add members to it (a "hint" ...).  Set it before waiting; destroy (may
 * be NULL) frees data when req ends. */
typedef void (*ServiceRequestReplyFunc)(ServiceRequest *req, JsonObject *reply, gpointer data);
void service_request_set_reply_func(ServiceRequest *req, ServiceRequestReplyFunc func,
                                    gpointer data, GDestroyNotify destroy);

/* Wait for op (taken) as service_request_wait_op; when op is NULL, fail
 * with error (taken) instead. */
void service_request_wait_started(ServiceRequest *req, HotplugVm *vm, HotplugOp *op,
                                  GError *error, gboolean no_wait);

/* Starts the unplug of device id of vm with opts; NULL + error when it
 * cannot. */
typedef HotplugOp *(*ServiceUnplugFunc)(Service *svc, HotplugVm *vm, const char *id,
                                        const HotplugUnplugOptions *opts, gboolean *attached,
                                        GError **error);
/* The unplug commands that name one device: the VM and "id" from args,
 * the unplug arguments, then unplug, waited for.  One that joins an
 * unplug under way (*attached) answers not-deleted at its own deadline
 * if the unplug is still pending then. */
void service_request_unplug(ServiceRequest *req, JsonObject *args, ServiceUnplugFunc unplug);

/* The service's host device registry, read from the state file on first
 * use; NULL + error while that file cannot be read. */
HotplugHostdevRegistry *service_get_hostdev_registry(Service *svc, GError **error);
/* The host devices of the VM named name, or NULL. */
ServiceHostdev *service_get_hostdev(Service *svc, const char *name);
/* The pool of host devices (made on first use). */
struct HotplugHostpool *service_get_hostpool(Service *svc);
/* The lock root in effect (the option, or the default). */
const char *service_get_lock_root(Service *svc);

G_END_DECLS
