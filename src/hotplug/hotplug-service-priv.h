/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internals shared by hotplug-service.c and the command tables of the
 * service in hotplug-service-*.c. */
#pragma once

#include "hotplug-hostdev.h"
#include "hotplug-service.h"

G_BEGIN_DECLS

/* ---- hotplug-service-disk.c --------------------------------------------- */

/* "disk-add", "disk-del", "disk-list", "hostdev-add", "hostdev-del" */
extern const HotplugCommand hotplug_disk_commands[];

/* The host devices of one VM of the service: its HotplugHostdev on the
 * service's registry (made once the registry can be read), and the
 * hostdev-add requests waiting for QEMU's view of the VM first. */
typedef struct HotplugServiceHostdev HotplugServiceHostdev;

HotplugServiceHostdev *hotplug_service_hostdev_new(HotplugService *svc, HotplugVm *vm);
/* Before vm is freed; waiting requests fail with VmGone. */
void hotplug_service_hostdev_free(HotplugServiceHostdev *sh);
/* vm's QEMU is (again) connected: what it shows is synced into the
 * registry (the daemon at once; direct mode when a hostdev-add asks). */
void hotplug_service_hostdev_connected(HotplugServiceHostdev *sh);

/* ---- hotplug-service-vcpu.c ---------------------------------------------- */

/* "vcpu-list", "vcpu-set", "vcpu-enable", "vcpu-disable", "memory-add",
 * "memory-del", "memory-list" */
extern const HotplugCommand hotplug_vcpu_commands[];

/* ---- hotplug-service.c ---------------------------------------------------- */

/* Called on the reply of hotplug_request_wait_op (the op's result) or
 * hotplug_request_wait_ops ({"ops": [...]}) just before it goes out, to
 * add members to it (a "hint" ...).  Set it before waiting; destroy (may
 * be NULL) frees data when req ends. */
typedef void (*HotplugRequestReplyFunc)(HotplugRequest *req, JsonObject *reply, gpointer data);
void hotplug_request_set_reply_func(HotplugRequest *req, HotplugRequestReplyFunc func,
                                    gpointer data, GDestroyNotify destroy);

/* The service's host device registry, read from the state file on first
 * use; NULL + error while that file cannot be read. */
HotplugHostdevRegistry *hotplug_service_get_hostdev_registry(HotplugService *svc, GError **error);
/* The host devices of the VM named name, or NULL. */
HotplugServiceHostdev *hotplug_service_get_hostdev(HotplugService *svc, const char *name);

G_END_DECLS
