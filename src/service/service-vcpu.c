/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's vCPU commands: "vcpu-list", "vcpu-set", "vcpu-enable" and
 * "vcpu-disable", over hotplug-vcpu.h.  Each asks QEMU for its hotpluggable
 * CPUs first (query-hotpluggable-cpus), then chooses what to do and starts
 * its operations. */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "hotplug-vcpu.h"
#include "qmp-json.h"
#include "service-priv.h"

#define HOTPLUG_VCPU_ID_MAX 65535
#define HOTPLUG_VCPU_COUNT_MAX 65536

/* Query the call's vCPU slots; done gets c. */
static void
service_call_query_cpus(ServiceCall *c, HotplugCpuSlotsFunc done)
{
    GError *error = NULL;

    service_call_started(c, hotplug_cpu_slots_query(hotplug_vm_get_conn(c->vm), done, c, &error),
                         &error);
}

/* ---- vCPUs ------------------------------------------------------------------ */

/* "ids": an array of vCPU ids, into c->ids; absent is empty. */
static gboolean
service_vcpu_ids(ServiceCall *c, JsonObject *args)
{
    JsonNode *n = json_object_get_member(args, "ids");
    JsonArray *a;

    if (!n || JSON_NODE_HOLDS_NULL(n))
        return TRUE;
    a = qmp_json_node_array(n);
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonNode *e = json_array_get_element(a, i);
        gint64 v;
        guint id;

        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_INT64)
            break;
        v = json_node_get_int(e);
        if (v < 0 || v > HOTPLUG_VCPU_ID_MAX)
            break;
        id = (guint)v;
        g_array_append_val(c->ids, id);
    }
    if (!a || c->ids->len != json_array_get_length(a))
        return service_request_bad_arg(
            c->req, "ids",
            "must be an array of vCPU ids (whole numbers from 0 to " G_STRINGIFY(
                HOTPLUG_VCPU_ID_MAX) ")");
    return TRUE;
}

/* Start one operation per entity, all at once, and reply {"ops": [...]}
 * (with extra's members, taken) once each is final.  A conflict with an
 * operation under way fails the call before anything is sent. */
static void
service_vcpu_start(ServiceCall *c, HotplugVm *vm, GPtrArray *entities, gboolean plug,
                   JsonObject *extra)
{
    g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_op_unref);
    g_autoptr(JsonObject) owned = extra;

    for (guint i = 0; i < entities->len; i++) {
        const char *id = hotplug_cpu_entity_device_id(entities->pdata[i]);
        HotplugOp *op = id ? hotplug_vm_find_op(vm, id) : NULL;

        /* an unplug under way is joined, anything else conflicts */
        if (op && hotplug_op_get_state(op) != HOTPLUG_OP_TRACKED &&
            (plug || hotplug_op_get_action(op) != HOTPLUG_ACTION_UNPLUG)) {
            service_request_fail(c->req,
                                 g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                                             "device %s of VM %s has an operation under way "
                                             "(%" G_GUINT64_FORMAT ", %s): nothing was started",
                                             id, c->name, hotplug_op_get_id(op),
                                             hotplug_action_name(hotplug_op_get_action(op))));
            return;
        }
    }
    for (guint i = 0; i < entities->len; i++) {
        const HotplugCpuEntity *e = entities->pdata[i];
        GError *error = NULL;
        HotplugOp *op = plug ? hotplug_vcpu_plug(vm, e, &error)
                             : hotplug_vcpu_unplug(vm, e, &c->unplug, NULL, &error);

        if (!op) {
            /* the ones started go on; 'ops' and the event log show them */
            if (ops->len)
                g_prefix_error(&error, "%u of %u operations started, then: ", ops->len,
                               entities->len);
            service_request_fail(c->req, error);
            return;
        }
        g_ptr_array_add(ops, op);
    }
    service_request_set_hint(c->req, hotplug_vcpu_error_hint, g_steal_pointer(&owned));
    service_request_wait_ops(c->req, vm, ops, !plug && c->no_wait);
}

static void
service_cmd_vcpu_list_cb(QmpConn *conn, HotplugCpuSlots *slots, const GError *error,
                         gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autoptr(HotplugCpuSlots) s = slots;
    HotplugVm *vm;
    JsonObject *o;
    JsonNode *ret;

    if (!(vm = service_call_answered(c, error)))
        return;
    o = json_object_new();
    ret = json_node_init_object(json_node_alloc(), o);
    json_object_set_string_member(o, "vm", c->name);
    json_object_set_int_member(o, "vcpus", hotplug_cpu_slots_present_vcpus(s));
    json_object_set_int_member(o, "maxcpus", hotplug_cpu_slots_max_vcpus(s));
    json_object_set_member(o, "entities", hotplug_cpu_slots_to_json(s, vm));
    json_object_unref(o);
    service_request_return(c->req, ret);
}

static void
service_cmd_vcpu_list(Service *svc, ServiceRequest *req, JsonObject *args)
{
    ServiceCall *c = service_call_for_vm(svc, req, args);

    if (c)
        service_call_query_cpus(c, service_cmd_vcpu_list_cb);
}

static void
service_cmd_vcpu_set_cb(QmpConn *conn, HotplugCpuSlots *slots, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autoptr(HotplugCpuSlots) s = slots;
    g_autoptr(GPtrArray) entities = NULL;
    GError *err = NULL;
    gboolean plug = FALSE;
    HotplugVm *vm;
    JsonObject *o;

    if (!(vm = service_call_answered(c, error)))
        return;
    entities = hotplug_cpu_select_count(s, c->count, &plug, &err);
    if (!entities) {
        service_request_fail(c->req, err);
        return;
    }
    o = json_object_new();
    json_object_set_string_member(o, "vm", c->name);
    json_object_set_int_member(o, "vcpus", c->count);
    json_object_set_int_member(o, "from", hotplug_cpu_slots_present_vcpus(s));
    json_object_set_boolean_member(o, "changed", entities->len > 0);
    if (entities->len == 0) {
        json_object_set_array_member(o, "ops", json_array_new());
        service_request_return(c->req, json_node_init_object(json_node_alloc(), o));
        json_object_unref(o);
        return;
    }
    json_object_set_string_member(o, "action", plug ? "plug" : "unplug");
    json_object_set_int_member(o, "n_entities", entities->len);
    service_vcpu_start(c, vm, entities, plug, o);
}

static void
service_cmd_vcpu_set(Service *svc, ServiceRequest *req, JsonObject *args)
{
    g_autoptr(ServiceCall) c = service_call_for_vm(svc, req, args);
    guint64 count;

    if (!c)
        return;
    if (!service_request_arg_uint(req, args, "count", TRUE, HOTPLUG_VCPU_COUNT_MAX, &count) ||
        !service_request_unplug_args(req, args, &c->unplug, &c->no_wait))
        return;
    if (count == 0) {
        service_request_bad_arg(req, "count", "must be at least 1 (a number of vCPUs)");
        return;
    }
    c->count = (guint)count;
    service_call_query_cpus(g_steal_pointer(&c), service_cmd_vcpu_set_cb);
}

static void
service_cmd_vcpu_enable_cb(QmpConn *conn, HotplugCpuSlots *slots, const GError *error,
                           gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autoptr(HotplugCpuSlots) s = slots;
    g_autoptr(GPtrArray) entities = NULL;
    GError *err = NULL;
    HotplugVm *vm;

    if (!(vm = service_call_answered(c, error)))
        return;
    if (c->ids->len)
        entities = hotplug_cpu_select_ids(s, (const guint *)c->ids->data, c->ids->len, TRUE,
                                          c->node, &err);
    else
        entities = hotplug_cpu_select_node(s, c->node, 1, &err);
    if (!entities) {
        service_request_fail(c->req, err);
        return;
    }
    service_vcpu_start(c, vm, entities, TRUE, NULL);
}

static void
service_cmd_vcpu_enable(Service *svc, ServiceRequest *req, JsonObject *args)
{
    g_autoptr(ServiceCall) c = service_call_for_vm(svc, req, args);

    if (!c)
        return;
    if (!service_vcpu_ids(c, args) || !service_request_arg_node(c->req, args, &c->node))
        return;
    if (c->ids->len == 0 && c->node < 0) {
        service_request_bad_arg(req, "ids",
                                "is missing (or give 'node' to plug the first free vCPU slot "
                                "of that NUMA node)");
        return;
    }
    service_call_query_cpus(g_steal_pointer(&c), service_cmd_vcpu_enable_cb);
}

static void
service_cmd_vcpu_disable_cb(QmpConn *conn, HotplugCpuSlots *slots, const GError *error,
                            gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autoptr(HotplugCpuSlots) s = slots;
    g_autoptr(GPtrArray) entities = NULL;
    GError *err = NULL;
    HotplugVm *vm;

    if (!(vm = service_call_answered(c, error)))
        return;
    entities = hotplug_cpu_select_ids(s, (const guint *)c->ids->data, c->ids->len, FALSE, -1, &err);
    if (!entities) {
        service_request_fail(c->req, err);
        return;
    }
    service_vcpu_start(c, vm, entities, FALSE, NULL);
}

static void
service_cmd_vcpu_disable(Service *svc, ServiceRequest *req, JsonObject *args)
{
    g_autoptr(ServiceCall) c = service_call_for_vm(svc, req, args);

    if (!c)
        return;
    if (!service_vcpu_ids(c, args) ||
        !service_request_unplug_args(req, args, &c->unplug, &c->no_wait))
        return;
    if (c->ids->len == 0) {
        service_request_bad_arg(req, "ids", "is missing");
        return;
    }
    service_call_query_cpus(g_steal_pointer(&c), service_cmd_vcpu_disable_cb);
}

/* The arguments each command takes: anything else is refused
 * (service_execute checks them). */
static const char *const service_args_vcpu_list[] = {"vm", NULL};
static const char *const service_args_vcpu_set[] = {"vm", "count", SERVICE_UNPLUG_ARGS, NULL};
static const char *const service_args_vcpu_enable[] = {"vm", "ids", "node", NULL};
static const char *const service_args_vcpu_disable[] = {"vm", "ids", SERVICE_UNPLUG_ARGS, NULL};

const ServiceCommand service_vcpu_commands[] = {
    {"vcpu-list", service_cmd_vcpu_list, service_args_vcpu_list},
    {"vcpu-set", service_cmd_vcpu_set, service_args_vcpu_set},
    {"vcpu-enable", service_cmd_vcpu_enable, service_args_vcpu_enable},
    {"vcpu-disable", service_cmd_vcpu_disable, service_args_vcpu_disable},
    {NULL, NULL, NULL},
};
