/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's disk commands: "disk-add", "disk-del" and "disk-list",
 * over hotplug-disk.h (a virtio-blk disk on its own blockdev nodes and
 * IOThreads). */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "hotplug-disk.h"
#include "service-priv.h"

typedef struct {
    char *id;
    char *file;
    char *format;
    HotplugDiskOptions opts;
} ServiceDiskAdd;

static void
service_disk_add_free(ServiceDiskAdd *a)
{
    g_free(a->id);
    g_free(a->file);
    g_free(a->format);
    g_free(a);
}

/* placed: plug it there */
static void
service_disk_add_go(ServiceRequest *req, HotplugVm *vm, const HotplugPlacementResult *r,
                    gpointer data)
{
    ServiceDiskAdd *a = data;
    g_autofree char *addr = r ? hotplug_placement_result_addr(r) : NULL;
    GError *error = NULL;
    HotplugOp *op;

    a->opts.bus = r ? r->bus : NULL;
    a->opts.addr = addr;
    op = hotplug_disk_add(vm, a->id, &a->opts, &error);
    if (!op)
        hotplug_vm_release_place(vm, a->id);
    service_request_wait_started(req, vm, op, error, FALSE);
}

static void
service_cmd_disk_add(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    ServiceDiskAdd *a;
    HotplugDiskOptions o = {0};
    guint64 iothreads = 0, queues = 0;
    const char *id, *bus = NULL;
    GError *error = NULL;

    if (!vm || !service_request_arg_string(req, args, "file", TRUE, &o.file) ||
        !service_request_arg_string(req, args, "bus", FALSE, &bus) ||
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
    /* options that need no QEMU are refused before anything is asked */
    {
        g_autoptr(GPtrArray) check = hotplug_disk_build_steps(id, &o, NULL, &error);
        if (!check && !g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED)) {
            service_request_fail(req, error);
            return;
        }
        g_clear_error(&error);
    }
    a = g_new0(ServiceDiskAdd, 1);
    a->id = g_strdup(id);
    a->opts = o;
    a->opts.file = a->file = g_strdup(o.file);
    a->opts.format = a->format = g_strdup(o.format);
    service_place(req, vm, HOTPLUG_KIND_DISK, NULL, id, NULL, bus, service_disk_add_go, a,
                  (GDestroyNotify)service_disk_add_free);
}

static HotplugOp *
service_disk_unplug(Service *svc, HotplugVm *vm, const char *id, const HotplugUnplugOptions *opts,
                    gboolean *attached, GError **error)
{
    return hotplug_disk_del(vm, id, opts, attached, error);
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
                                                    "iothreads", "queues", "bus", NULL};
static const char *const service_args_disk_del[] = {"vm", "id", SERVICE_UNPLUG_ARGS, NULL};
static const char *const service_args_disk_list[] = {"vm", NULL};

const ServiceCommand service_disk_commands[] = {
    {"disk-add", service_cmd_disk_add, service_args_disk_add},
    {"disk-del", service_cmd_disk_del, service_args_disk_del},
    {"disk-list", service_cmd_disk_list, service_args_disk_list},
    {NULL, NULL, NULL},
};
