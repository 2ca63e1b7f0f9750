/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's VM commands: "vm-list", "vm-add", "vm-remove", "vm-info"
 * (what QEMU is and can do, probed on its connection) and "vm-slots"
 * (its hotpluggable places and their mechanisms). */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "qmp-caps.h"
#include "qmp-json.h"
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

/* the topology says which mechanisms serve the VM and whether memory can
 * be hot-plugged at all on its machine: vm-info lists only what works */
static void
service_cmd_vm_info_topology_cb(HotplugTopology *t, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autoptr(HotplugTopology) topo = t;
    JsonObject *o = json_node_get_object(c->result);

    if (error && ((error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED) ||
                  (error->domain == HOTPLUG_ERROR && error->code == HOTPLUG_ERROR_VM_GONE))) {
        service_call_reply(c, NULL, error);
        return;
    }
    if (t) {
        g_autoptr(GArray) mechs = hotplug_topology_mechanisms(t);
        JsonArray *a = json_array_new();
        JsonArray *caps = qmp_json_get_array(o, "capabilities");
        const char *why = NULL;

        for (guint i = 0; i < mechs->len; i++)
            json_array_add_string_element(
                a, hotplug_mechanism_name(g_array_index(mechs, HotplugMechanism, i)));
        json_object_set_array_member(o, "hotplug_mechanisms", a);
        if (caps && !hotplug_topology_memory_hotplug(t, &why)) {
            JsonArray *kept = json_array_new();
            for (guint i = 0; i < json_array_get_length(caps); i++) {
                const char *cap = qmp_json_node_string(json_array_get_element(caps, i));
                if (g_strcmp0(cap, "memory-hotplug") != 0)
                    json_array_add_string_element(kept, cap);
            }
            json_object_set_array_member(o, "capabilities", kept);
            json_object_set_string_member(o, "memory_hotplug_unavailable", why);
        }
    }
    service_call_reply(c, g_steal_pointer(&c->result), NULL);
}

static void
service_cmd_vm_info_cb(QmpConn *conn, QmpCaps *caps, const GError *error, gpointer opaque)
{
    ServiceCall *c = opaque;
    GError *local = NULL;

    if (error) {
        service_call_reply(c, NULL, error);
        service_call_free(c);
        return;
    }
    c->result = qmp_caps_to_json(caps);
    qmp_caps_free(caps);
    service_call_started(c, hotplug_topology_query(conn, service_cmd_vm_info_topology_cb, c, &local),
                         &local);
}

static void
service_cmd_vm_slots_cb(HotplugTopology *t, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autoptr(HotplugTopology) topo = t;

    service_call_reply(c, t ? hotplug_topology_to_json(t) : NULL, error);
}

static void
service_cmd_vm_slots(Service *svc, ServiceRequest *req, JsonObject *args)
{
    ServiceCall *c = service_call_for_vm(svc, req, args);
    GError *error = NULL;

    if (c)
        service_call_started(c,
                             hotplug_topology_query(hotplug_vm_get_conn(c->vm),
                                                    service_cmd_vm_slots_cb, c, &error),
                             &error);
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
static const char *const service_args_vm_slots[] = {"vm", NULL};

const ServiceCommand service_vm_commands[] = {
    {"vm-list", service_cmd_vm_list, service_args_vm_list},
    {"vm-add", service_cmd_vm_add, service_args_vm_add},
    {"vm-remove", service_cmd_vm_remove, service_args_vm_remove},
    {"vm-info", service_cmd_vm_info, service_args_vm_info},
    {"vm-slots", service_cmd_vm_slots, service_args_vm_slots},
    {NULL, NULL, NULL},
};
