/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internals shared by service.c and the command tables of the
 * service in service-*.c. */
#pragma once

#include "hotplug-hostdev.h"
#include "service.h"

G_BEGIN_DECLS

/* ---- service-disk.c ---------------------------------------------------- */

/* "disk-add", "disk-del", "disk-list", "hostdev-add", "hostdev-del" */
extern const ServiceCommand service_disk_commands[];

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

/* ---- service-vcpu.c ----------------------------------------------------- */

/* "vcpu-list", "vcpu-set", "vcpu-enable", "vcpu-disable", "memory-add",
 * "memory-del", "memory-list" */
extern const ServiceCommand service_vcpu_commands[];

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

/* The service's host device registry, read from the state file on first
 * use; NULL + error while that file cannot be read. */
HotplugHostdevRegistry *service_get_hostdev_registry(Service *svc, GError **error);
/* The host devices of the VM named name, or NULL. */
ServiceHostdev *service_get_hostdev(Service *svc, const char *name);

G_END_DECLS
