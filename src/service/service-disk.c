/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's disk commands: "disk-add", "disk-del" and "disk-list",
 * over hotplug-disk.h (a virtio-blk disk on its own blockdev nodes and
 * IOThreads). */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "hotplug-disk.h"
#include "service-priv.h"

static void
service_cmd_disk_add(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    g_autoptr(HotplugOp) op = NULL;
    HotplugDiskOptions o = {0};
    guint64 iothreads = 0, queues = 0;
    const char *id;
    GError *error = NULL;

    if (!vm || !service_request_arg_string(req, args, "file", TRUE, &o.file) ||
        !service_request_arg_string(req, args, "id", TRUE, &id) ||
        !service_request_arg_string(req, args, "format", FALSE, &o.format) ||
        !service_request_arg_bool(req, args, "readonly", &o.readonly) ||
        !service_request_arg_uint(req, args, "iothreads", FALSE, HOTPLUG_DISK_IOTHREADS_MAX,
                                  &iothreads) ||
        !service_request_arg_uint(req, args, "queues", FALSE, HOTPLUG_DISK_QUEUES_MAX, &queues))
        return;
    /* QEMU opens the file from its own working directory, not the caller's */
    if (!g_path_is_absolute(o.file)) {
        service_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                                              "argument 'file' must be an absolute path, not '%s'",
                                              o.file));
        return;
    }
    o.iothreads = (guint)iothreads;
    o.queues = (guint)queues;
    op = hotplug_disk_add(vm, id, &o, &error);
    if (!op) {
        service_request_fail(req, error);
        return;
    }
    service_request_wait_op(req, vm, op, FALSE);
}

static void
service_cmd_disk_del(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    g_autoptr(HotplugOp) op = NULL;
    HotplugUnplugOptions opts;
    gboolean no_wait;
    const char *id;
    GError *error = NULL;

    if (!vm || !service_request_arg_string(req, args, "id", TRUE, &id) ||
        !service_request_unplug_args(req, args, &opts, &no_wait))
        return;
    op = hotplug_disk_del(vm, id, &opts, NULL, &error);
    if (!op) {
        service_request_fail(req, error);
        return;
    }
    service_request_wait_op(req, vm, op, no_wait);
}

static void
service_cmd_disk_list_cb(JsonNode *result, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    JsonNode *ret;

    if (error) {
        service_request_fail(c->req, g_error_copy(error));
        return;
    }
    /* the list never touches the VM: it may go meanwhile */
    ret = json_node_copy(result);
    json_object_set_string_member(json_node_get_object(ret), "vm", c->name);
    service_request_return(c->req, ret);
}

static void
service_cmd_disk_list(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    g_autoptr(ServiceCall) c = NULL;
    GError *error = NULL;

    if (!vm)
        return;
    c = service_call_new(svc, req, vm);
    if (!hotplug_disk_list(vm, service_cmd_disk_list_cb, c, &error)) {
        service_request_fail(req, error);
        return;
    }
    g_steal_pointer(&c);
}

static const char *const service_args_disk_add[] = {"vm",       "file",      "id",     "format",
                                                    "readonly", "iothreads", "queues", NULL};
static const char *const service_args_disk_del[] = {"vm", "id", SERVICE_UNPLUG_ARGS, NULL};
static const char *const service_args_disk_list[] = {"vm", NULL};

const ServiceCommand service_disk_commands[] = {
    {"disk-add", service_cmd_disk_add, service_args_disk_add},
    {"disk-del", service_cmd_disk_del, service_args_disk_del},
    {"disk-list", service_cmd_disk_list, service_args_disk_list},
    {NULL, NULL, NULL},
};
