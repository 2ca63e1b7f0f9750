/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service commands for vCPUs and memory: "vcpu-list", "vcpu-set",
 * "vcpu-enable", "vcpu-disable", "memory-add", "memory-del" and
 * "memory-list", over hotplug-vcpu.h and hotplug-memory.h.  Each asks QEMU
 * first (query-hotpluggable-cpus, query-memory-devices ...), then chooses
 * what to do and starts its operations. */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include <string.h>

#include "hotplug-memory.h"
#include "service-priv.h"
#include "hotplug-vcpu.h"
#include "qmp-json.h"

#define HOTPLUG_VCPU_ID_MAX 65535
#define HOTPLUG_VCPU_COUNT_MAX 65536

/* Query the call's vCPU slots; done gets c. */
static void
service_call_query_cpus(ServiceCall *c, HotplugCpuSlotsFunc done)
{
    GError *error = NULL;

    if (!hotplug_cpu_slots_query(hotplug_vm_get_conn(c->vm), done, c, &error)) {
        service_request_fail(c->req, error);
        service_call_free(c);
    }
}

static JsonNode *
service_path_args(const char *path, const char *property)
{
    JsonObject *o = json_object_new();
    JsonNode *n = json_node_init_object(json_node_alloc(), o);

    json_object_set_string_member(o, "path", path);
    if (property)
        json_object_set_string_member(o, "property", property);
    json_object_unref(o);
    return n;
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
        return service_request_bad_arg(c->req, "ids",
                                       "must be an array of vCPU ids (whole numbers from 0 to "
                                       G_STRINGIFY(HOTPLUG_VCPU_ID_MAX) ")");
    return TRUE;
}

/* Start one operation per entity, all at once, and reply {"ops": [...]}
 * (with extra's members, taken) once each is final.  A conflict with an
 * operation under way fails the call before anything is sent. */
static void
service_vcpu_start(ServiceCall *c, HotplugVm *vm, GPtrArray *entities,
                           gboolean plug, JsonObject *extra)
{
    g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_op_unref);
    g_autoptr(JsonObject) owned = extra;

    for (guint i = 0; i < entities->len; i++) {
        const char *id = hotplug_cpu_entity_device_id(entities->pdata[i]);
        HotplugOp *op = id ? hotplug_vm_find_op(vm, id) : NULL;

        /* an unplug under way is joined, anything else conflicts */
        if (op && hotplug_op_get_state(op) != HOTPLUG_OP_TRACKED &&
            (plug || hotplug_op_get_action(op) != HOTPLUG_ACTION_UNPLUG)) {
            service_request_fail(
                c->req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
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

    if (error) {
        service_call_fail(c, error);
        return;
    }
    if (!(vm = service_call_vm(c)))
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
    HotplugVm *vm = service_request_get_vm(req, args);

    if (vm)
        service_call_query_cpus(service_call_new(svc, req, vm),
                                        service_cmd_vcpu_list_cb);
}

static void
service_cmd_vcpu_set_cb(QmpConn *conn, HotplugCpuSlots *slots, const GError *error,
                        gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autoptr(HotplugCpuSlots) s = slots;
    g_autoptr(GPtrArray) entities = NULL;
    GError *err = NULL;
    gboolean plug = FALSE;
    HotplugVm *vm;
    JsonObject *o;

    if (error) {
        service_call_fail(c, error);
        return;
    }
    if (!(vm = service_call_vm(c)))
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
    HotplugVm *vm = service_request_get_vm(req, args);
    g_autoptr(ServiceCall) c = NULL;
    guint64 count;

    if (!vm)
        return;
    c = service_call_new(svc, req, vm);
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

    if (error) {
        service_call_fail(c, error);
        return;
    }
    if (!(vm = service_call_vm(c)))
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
    HotplugVm *vm = service_request_get_vm(req, args);
    g_autoptr(ServiceCall) c = NULL;

    if (!vm)
        return;
    c = service_call_new(svc, req, vm);
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

    if (error) {
        service_call_fail(c, error);
        return;
    }
    if (!(vm = service_call_vm(c)))
        return;
    entities = hotplug_cpu_select_ids(s, (const guint *)c->ids->data, c->ids->len, FALSE, -1,
                                      &err);
    if (!entities) {
        service_request_fail(c->req, err);
        return;
    }
    service_vcpu_start(c, vm, entities, FALSE, NULL);
}

static void
service_cmd_vcpu_disable(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    g_autoptr(ServiceCall) c = NULL;

    if (!vm)
        return;
    c = service_call_new(svc, req, vm);
    if (!service_vcpu_ids(c, args) ||
        !service_request_unplug_args(req, args, &c->unplug, &c->no_wait))
        return;
    if (c->ids->len == 0) {
        service_request_bad_arg(req, "ids", "is missing");
        return;
    }
    service_call_query_cpus(g_steal_pointer(&c), service_cmd_vcpu_disable_cb);
}

/* ---- memory ------------------------------------------------------------------ */

/* "size": bytes, or a string like "512M"; a non-zero multiple of 2M. */
static gboolean
service_size_arg(ServiceCall *c, JsonObject *args)
{
    JsonNode *n = json_object_get_member(args, "size");
    g_autofree char *text = NULL;
    GError *error = NULL;

    if (!n || JSON_NODE_HOLDS_NULL(n))
        return service_request_bad_arg(c->req, "size", "is missing");
    if (qmp_json_node_string(n))
        text = g_strdup(qmp_json_node_string(n));
    else if (JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64 &&
             json_node_get_int(n) >= 0)
        text = g_strdup_printf("%" G_GINT64_FORMAT, json_node_get_int(n));
    else
        return service_request_bad_arg(c->req, "size",
                                       "must be a number of bytes or a size like 512M");
    if (!hotplug_memory_parse_size(text, &c->size, &error)) {
        service_request_fail(c->req, error);
        return FALSE;
    }
    return TRUE;
}

static void
service_cmd_memory_add_room_cb(QmpConn *conn, JsonNode *ret, const GError *error,
                               gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autoptr(HotplugOp) op = NULL;
    GError *err = NULL;
    HotplugVm *vm;

    if (service_call_lost(c, ret, error) || !(vm = service_call_vm(c)))
        return;
    /* where QEMU can tell (qom-get /machine memory, QEMU 6.0 and later),
     * refuse what cannot fit before anything is created */
    if (!hotplug_memory_check_room(error ? NULL : ret, c->devices, c->size, &err)) {
        service_request_fail(c->req, err);
        return;
    }
    if (!c->id)
        c->id = hotplug_memory_free_id(c->devices);
    op = hotplug_memory_add(vm, c->id, c->size, c->node, &err);
    if (!op) {
        service_request_fail(c->req, err);
        return;
    }
    service_request_set_hint(c->req, hotplug_memory_error_hint, NULL);
    service_request_wait_op(c->req, vm, op, FALSE);
}

static void
service_cmd_memory_add_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    HotplugVm *vm;

    if (error) {
        service_call_fail(c, error);
        return;
    }
    if (!(vm = service_call_vm(c)))
        return;
    c->devices = json_node_ref(ret);
    service_call_execute(g_steal_pointer(&c), vm, "qom-get",
                                 service_path_args("/machine", "memory"),
                                 service_cmd_memory_add_room_cb);
}

static void
service_cmd_memory_add(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    g_autoptr(ServiceCall) c = NULL;
    const char *id;

    if (!vm)
        return;
    c = service_call_new(svc, req, vm);
    if (!service_size_arg(c, args) || !service_request_arg_node(c->req, args, &c->node) ||
        !service_request_arg_string(req, args, "id", FALSE, &id))
        return;
    if (id && (!*id || strchr(id, '/'))) {
        service_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                                              "bad id '%s'", id));
        return;
    }
    c->id = g_strdup(id);
    service_call_execute(g_steal_pointer(&c), vm, "query-memory-devices", NULL,
                                 service_cmd_memory_add_cb);
}

/* The unplug of DIMM c->id, its backend (may be NULL) deleted after it. */
static void
service_memory_del(ServiceCall *c, HotplugVm *vm, const char *backend)
{
    g_autoptr(HotplugOp) op = NULL;
    GError *error = NULL;

    op = hotplug_memory_del(vm, c->id, backend, &c->unplug, NULL, &error);
    if (!op) {
        service_request_fail(c->req, error);
        return;
    }
    service_request_wait_op(c->req, vm, op, c->no_wait);
}

static void
service_cmd_memory_del_type_cb(QmpConn *conn, JsonNode *ret, const GError *error,
                               gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    JsonArray *list = error ? NULL : qmp_json_node_array(ret);
    HotplugVm *vm;

    if (service_call_lost(c, ret, error) || !(vm = service_call_vm(c)))
        return;
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");
        if (name && type && g_str_equal(name, c->id) && g_str_has_prefix(type, "child<") &&
            g_str_has_suffix(type, ">")) {
            g_autofree char *what = g_strndup(type + 6, strlen(type) - 7);
            service_request_fail(c->req,
                                 g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                                             "%s is a %s, not a memory device: use 'device del'",
                                             c->id, what));
            return;
        }
    }
    /* unknown: QEMU's own answer (DeviceNotFound) is the result */
    service_memory_del(c, vm, NULL);
}

static void
service_cmd_memory_del_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    g_autofree char *backend = NULL;
    HotplugVm *vm;

    if (error) {
        service_call_fail(c, error);
        return;
    }
    if (!(vm = service_call_vm(c)))
        return;
    backend = hotplug_memory_backend_of(ret, c->id);
    if (backend) {
        service_memory_del(c, vm, backend);
        return;
    }
    /* not a memory device: say what it is, if anything */
    service_call_execute(g_steal_pointer(&c), vm, "qom-list",
                                 service_path_args("/machine/peripheral", NULL),
                                 service_cmd_memory_del_type_cb);
}

static void
service_cmd_memory_del(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    g_autoptr(ServiceCall) c = NULL;
    const char *id;

    if (!vm)
        return;
    c = service_call_new(svc, req, vm);
    if (!service_request_arg_string(req, args, "id", TRUE, &id) ||
        !service_request_unplug_args(req, args, &c->unplug, &c->no_wait))
        return;
    c->id = g_strdup(id);
    service_call_execute(g_steal_pointer(&c), vm, "query-memory-devices", NULL,
                                 service_cmd_memory_del_cb);
}

static void
service_cmd_memory_list_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    HotplugVm *vm;
    JsonObject *o;
    JsonNode *reply;

    if (error) {
        service_call_fail(c, error);
        return;
    }
    if (!(vm = service_call_vm(c)))
        return;
    o = json_object_new();
    reply = json_node_init_object(json_node_alloc(), o);
    json_object_set_string_member(o, "vm", c->name);
    json_object_set_member(o, "memory", hotplug_memory_list_to_json(ret, vm));
    json_object_unref(o);
    service_request_return(c->req, reply);
}

static void
service_cmd_memory_list(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);

    if (vm)
        service_call_execute(service_call_new(svc, req, vm), vm,
                                     "query-memory-devices", NULL, service_cmd_memory_list_cb);
}

/* The arguments each command takes: anything else is refused
 * (service_execute checks them). */
static const char *const service_args_vcpu_vm[] = {"vm", NULL};
static const char *const service_args_vcpu_set[] = {"vm", "count", SERVICE_UNPLUG_ARGS, NULL};
static const char *const service_args_vcpu_enable[] = {"vm", "ids", "node", NULL};
static const char *const service_args_vcpu_disable[] = {"vm", "ids", SERVICE_UNPLUG_ARGS, NULL};
static const char *const service_args_memory_add[] = {"vm", "size", "node", "id", NULL};
static const char *const service_args_memory_del[] = {"vm", "id", SERVICE_UNPLUG_ARGS, NULL};

const ServiceCommand service_vcpu_commands[] = {
    {"vcpu-list", service_cmd_vcpu_list, service_args_vcpu_vm},
    {"vcpu-set", service_cmd_vcpu_set, service_args_vcpu_set},
    {"vcpu-enable", service_cmd_vcpu_enable, service_args_vcpu_enable},
    {"vcpu-disable", service_cmd_vcpu_disable, service_args_vcpu_disable},
    {"memory-add", service_cmd_memory_add, service_args_memory_add},
    {"memory-del", service_cmd_memory_del, service_args_memory_del},
    {"memory-list", service_cmd_memory_list, service_args_vcpu_vm},
    {NULL, NULL, NULL},
};
