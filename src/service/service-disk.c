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
    HotplugOp *op;
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
    service_request_wait_started(req, vm, op, error, FALSE);
}

static HotplugOp *
service_disk_unplug(Service *svc, HotplugVm *vm, const char *id, const HotplugUnplugOptions *opts,
                    GError **error)
{
    return hotplug_disk_del(vm, id, opts, NULL, error);
}

static void
service_cmd_disk_del(Service *svc, ServiceRequest *req, JsonObject *args)
{
    service_request_unplug(req, args, service_disk_unplug);
}

/* the list never touches the VM: it may go meanwhile */
static void
service_cmd_disk_list_cb(JsonNode *result, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;

    service_call_reply(c, error ? NULL : json_node_copy(result), error);
}

static void
service_cmd_disk_list(Service *svc, ServiceRequest *req, JsonObject *args)
{
    ServiceCall *c = service_call_for_vm(svc, req, args);
    GError *error = NULL;

    if (c)
        service_call_started(c, hotplug_disk_list(c->vm, service_cmd_disk_list_cb, c, &error),
                             &error);
}

static const char *const service_args_disk_add[] = {"vm", "file", "id", "format", "readonly",
                                                    "iothreads", "queues", NULL};
static const char *const service_args_disk_del[] = {"vm", "id", SERVICE_UNPLUG_ARGS, NULL};
static const char *const service_args_disk_list[] = {"vm", NULL};

const ServiceCommand service_disk_commands[] = {
    {"disk-add", service_cmd_disk_add, service_args_disk_add},
    {"disk-del", service_cmd_disk_del, service_args_disk_del},
    {"disk-list", service_cmd_disk_list, service_args_disk_list},
    {NULL, NULL, NULL},
};
