/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's VM commands: "vm-list", "vm-add", "vm-remove" and
 * "vm-info" (what QEMU is and can do, probed on its connection). */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "qmp-caps.h"
#include "service-priv.h"

static void
service_cmd_vm_list(Service *svc, ServiceRequest *req, JsonObject *args)
{
    g_autoptr(GPtrArray) names = service_list_vms(svc);
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_array(b);
    for (guint i = 0; i < names->len; i++) {
        const char *name = names->pdata[i];
        HotplugVm *vm = service_get_vm(svc, name);
        QmpConn *conn = hotplug_vm_get_conn(vm);
        const GError *err = qmp_conn_get_last_error(conn);
        QmpConnState st = qmp_conn_get_state(conn);
        g_autoptr(GPtrArray) ops = hotplug_vm_list_ops(vm);

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, name);
        json_builder_set_member_name(b, "qmp");
        json_builder_add_string_value(b, service_get_vm_path(svc, name));
        json_builder_set_member_name(b, "state");
        json_builder_add_string_value(b, qmp_conn_state_name(st));
        json_builder_set_member_name(b, "ops");
        json_builder_add_int_value(b, ops->len);
        if (err && st != QMP_CONN_READY) {
            json_builder_set_member_name(b, "error");
            json_builder_add_string_value(b, err->message);
        }
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    service_request_return(req, json_builder_get_root(b));
}

static void
service_cmd_vm_add(Service *svc, ServiceRequest *req, JsonObject *args)
{
    const char *name, *qmp;
    GError *error = NULL;
    g_autoptr(JsonObject) empty = json_object_new();

    if (!service_request_arg_string(req, args, "name", TRUE, &name) ||
        !service_request_arg_string(req, args, "qmp", TRUE, &qmp))
        return;
    if (!service_add_vm(svc, name, qmp, &error)) {
        service_request_fail(req, error);
        return;
    }
    /* json_node_init_object takes its own reference on the object */
    service_request_return(req, json_node_init_object(json_node_alloc(), empty));
}

static void
service_cmd_vm_remove(Service *svc, ServiceRequest *req, JsonObject *args)
{
    const char *name;
    GError *error = NULL;
    g_autoptr(JsonObject) empty = json_object_new();

    if (!service_request_arg_string(req, args, "name", TRUE, &name))
        return;
    if (!service_remove_vm(svc, name, &error)) {
        service_request_fail(req, error);
        return;
    }
    /* json_node_init_object takes its own reference on the object */
    service_request_return(req, json_node_init_object(json_node_alloc(), empty));
}

static void
service_cmd_vm_info_cb(QmpConn *conn, QmpCaps *caps, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    JsonNode *ret = NULL;

    if (!error) {
        ret = qmp_caps_to_json(caps);
        qmp_caps_free(caps);
    }
    service_call_reply(c, ret, error);
}

static void
service_cmd_vm_info(Service *svc, ServiceRequest *req, JsonObject *args)
{
    ServiceCall *c = service_call_for_vm(svc, req, args);
    GError *error = NULL;

    if (c)
        service_call_started(
            c, qmp_caps_probe(hotplug_vm_get_conn(c->vm), service_cmd_vm_info_cb, c, &error),
            &error);
}

static const char *const service_args_vm_list[] = {NULL};
static const char *const service_args_vm_add[] = {"name", "qmp", NULL};
static const char *const service_args_vm_remove[] = {"name", NULL};
static const char *const service_args_vm_info[] = {"vm", NULL};

const ServiceCommand service_vm_commands[] = {
    {"vm-list", service_cmd_vm_list, service_args_vm_list},
    {"vm-add", service_cmd_vm_add, service_args_vm_add},
    {"vm-remove", service_cmd_vm_remove, service_args_vm_remove},
    {"vm-info", service_cmd_vm_info, service_args_vm_info},
    {NULL, NULL, NULL},
};
