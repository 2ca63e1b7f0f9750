/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's device commands: "device-add", "device-del" and
 * "device-list", over hotplug-vm.h (any -device QEMU can hotplug). */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "qmp-json.h"
#include "service-priv.h"

/* "props": an object of strings, or an array of "PROP=VALUE" strings */
static char **
service_cmd_props(ServiceRequest *req, JsonObject *args)
{
    JsonNode *n = json_object_get_member(args, "props");
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    if (n && JSON_NODE_HOLDS_OBJECT(n)) {
        JsonObject *o = json_node_get_object(n);
        g_autoptr(GList) names = json_object_get_members(o);
        for (GList *l = names; l; l = l->next) {
            JsonNode *v = json_object_get_member(o, l->data);
            const char *text = qmp_json_node_string(v);
            g_autofree char *scalar = NULL;
            if (!text && JSON_NODE_HOLDS_VALUE(v)) {
                scalar = json_to_string(v, FALSE);
                text = scalar;
            }
            if (!text) {
                g_ptr_array_unref(out);
                service_request_bad_arg(req, "props", "values must be strings or numbers");
                return NULL;
            }
            g_ptr_array_add(out, g_strdup_printf("%s=%s", (char *)l->data, text));
        }
    } else if (n && JSON_NODE_HOLDS_ARRAY(n)) {
        JsonArray *a = json_node_get_array(n);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            const char *text = qmp_json_node_string(json_array_get_element(a, i));
            if (!text) {
                g_ptr_array_unref(out);
                service_request_bad_arg(req, "props", "must hold PROP=VALUE strings");
                return NULL;
            }
            g_ptr_array_add(out, g_strdup(text));
        }
    } else if (n && !JSON_NODE_HOLDS_NULL(n)) {
        g_ptr_array_unref(out);
        service_request_bad_arg(req, "props", "must be an object or an array");
        return NULL;
    }
    g_ptr_array_set_free_func(out, NULL);
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

typedef struct {
    char *driver;
    char *id;
    char **props;
} ServiceDeviceAdd;

static void
service_device_add_free(ServiceDeviceAdd *a)
{
    g_free(a->driver);
    g_free(a->id);
    g_strfreev(a->props);
    g_free(a);
}

static gboolean
service_props_have(char **props, const char *name)
{
    g_autofree char *prefix = g_strdup_printf("%s=", name);

    for (guint i = 0; props && props[i]; i++)
        if (g_str_has_prefix(props[i], prefix))
            return TRUE;
    return FALSE;
}

/* placed (or not PCI): send it there */
static void
service_device_add_go(ServiceRequest *req, HotplugVm *vm, const HotplugPlacementResult *r,
                      gpointer data)
{
    ServiceDeviceAdd *a = data;
    g_autoptr(GPtrArray) props = g_ptr_array_new_with_free_func(g_free);
    GError *error = NULL;
    HotplugOp *op;

    for (guint i = 0; a->props && a->props[i]; i++)
        g_ptr_array_add(props, g_strdup(a->props[i]));
    if (r && !service_props_have(a->props, "bus"))
        g_ptr_array_add(props, g_strdup_printf("bus=%s", r->bus));
    if (r && !service_props_have(a->props, "addr")) {
        g_autofree char *addr = hotplug_placement_result_addr(r);
        g_ptr_array_add(props, g_strdup_printf("addr=%s", addr));
    }
    g_ptr_array_add(props, NULL);
    op = hotplug_vm_plug_device(vm, a->driver, a->id, (const char *const *)props->pdata, &error);
    if (!op)
        hotplug_vm_release_place(vm, a->id);
    service_request_wait_started(req, vm, op, error, FALSE);
}

static void
service_cmd_device_add(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    g_auto(GStrv) props = NULL;
    ServiceDeviceAdd *a;
    const char *driver, *id;

    if (!vm || !service_request_arg_string(req, args, "driver", TRUE, &driver) ||
        !service_request_arg_string(req, args, "id", TRUE, &id) ||
        !(props = service_cmd_props(req, args)))
        return;
    /* where it goes is decided (and checked) before anything is sent */
    a = g_new0(ServiceDeviceAdd, 1);
    a->driver = g_strdup(driver);
    a->id = g_strdup(id);
    a->props = g_steal_pointer(&props);
    service_place(req, vm, HOTPLUG_KIND_DEVICE, a->driver, a->id, (const char *const *)a->props,
                  NULL, service_device_add_go, a, (GDestroyNotify)service_device_add_free);
}

static HotplugOp *
service_device_unplug(Service *svc, HotplugVm *vm, const char *id,
                      const HotplugUnplugOptions *opts, gboolean *attached, GError **error)
{
    return hotplug_vm_unplug(vm, HOTPLUG_KIND_DEVICE, id, opts, attached, error);
}

static void
service_cmd_device_del(Service *svc, ServiceRequest *req, JsonObject *args)
{
    service_request_unplug(req, args, service_device_unplug);
}

static void
service_cmd_device_list_cb(HotplugVm *vm, JsonNode *devices, const GError *error, gpointer opaque)
{
    ServiceRequest *req = opaque;

    if (error)
        service_request_fail(req, g_error_copy(error));
    else
        service_request_return(req, json_node_ref(devices));
}

static void
service_cmd_device_list(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    GError *error = NULL;

    if (vm && !hotplug_vm_query_devices(vm, service_cmd_device_list_cb, req, &error))
        service_request_fail(req, error);
}

static const char *const service_args_device_add[] = {"vm", "driver", "id", "props", NULL};
static const char *const service_args_device_del[] = {"vm", "id", SERVICE_UNPLUG_ARGS, NULL};
static const char *const service_args_device_list[] = {"vm", NULL};

const ServiceCommand service_device_commands[] = {
    {"device-add", service_cmd_device_add, service_args_device_add},
    {"device-del", service_cmd_device_del, service_args_device_del},
    {"device-list", service_cmd_device_list, service_args_device_list},
    {NULL, NULL, NULL},
};
