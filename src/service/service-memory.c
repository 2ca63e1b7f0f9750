/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's memory commands: "memory-add", "memory-del" and
 * "memory-list", over hotplug-memory.h.  Each asks QEMU for its memory
 * devices first (query-memory-devices, and what /machine can hold), then
 * chooses what to do and starts its operation. */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include <string.h>

#include "hotplug-memory.h"
#include "qmp-json.h"
#include "service-priv.h"

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
service_cmd_memory_add_room_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
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

    if (!service_call_answered(c, error))
        return;
    c->devices = json_node_ref(ret);
    service_call_execute(g_steal_pointer(&c), "qom-get", service_path_args("/machine", "memory"),
                         service_cmd_memory_add_room_cb);
}

static void
service_cmd_memory_add(Service *svc, ServiceRequest *req, JsonObject *args)
{
    g_autoptr(ServiceCall) c = service_call_for_vm(svc, req, args);
    const char *id;

    if (!c)
        return;
    if (!service_size_arg(c, args) || !service_request_arg_node(c->req, args, &c->node) ||
        !service_request_arg_string(req, args, "id", FALSE, &id))
        return;
    if (id && (!*id || strchr(id, '/'))) {
        service_request_fail(req,
                             g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "bad id '%s'", id));
        return;
    }
    c->id = g_strdup(id);
    service_call_execute(g_steal_pointer(&c), "query-memory-devices", NULL,
                         service_cmd_memory_add_cb);
}

/* The unplug of DIMM c->id, its backend (may be NULL) deleted after it. */
static void
service_memory_del(ServiceCall *c, HotplugVm *vm, const char *backend)
{
    HotplugOp *op;
    GError *error = NULL;

    op = hotplug_memory_del(vm, c->id, backend, &c->unplug, NULL, &error);
    service_request_wait_started(c->req, vm, op, error, c->no_wait);
}

static void
service_cmd_memory_del_type_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
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

    if (!(vm = service_call_answered(c, error)))
        return;
    backend = hotplug_memory_backend_of(ret, c->id);
    if (backend) {
        service_memory_del(c, vm, backend);
        return;
    }
    /* not a memory device: say what it is, if anything */
    service_call_execute(g_steal_pointer(&c), "qom-list",
                         service_path_args("/machine/peripheral", NULL),
                         service_cmd_memory_del_type_cb);
}

static void
service_cmd_memory_del(Service *svc, ServiceRequest *req, JsonObject *args)
{
    g_autoptr(ServiceCall) c = service_call_for_vm(svc, req, args);
    const char *id;

    if (!c)
        return;
    if (!service_request_arg_string(req, args, "id", TRUE, &id) ||
        !service_request_unplug_args(req, args, &c->unplug, &c->no_wait))
        return;
    c->id = g_strdup(id);
    service_call_execute(g_steal_pointer(&c), "query-memory-devices", NULL,
                         service_cmd_memory_del_cb);
}

static void
service_cmd_memory_list_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    g_autoptr(ServiceCall) c = opaque;
    HotplugVm *vm;
    JsonObject *o;
    JsonNode *reply;

    if (!(vm = service_call_answered(c, error)))
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
    ServiceCall *c = service_call_for_vm(svc, req, args);

    if (c)
        service_call_execute(c, "query-memory-devices", NULL, service_cmd_memory_list_cb);
}

/* The arguments each command takes: anything else is refused
 * (service_execute checks them). */
static const char *const service_args_memory_add[] = {"vm", "size", "node", "id", NULL};
static const char *const service_args_memory_del[] = {"vm", "id", SERVICE_UNPLUG_ARGS, NULL};
static const char *const service_args_memory_list[] = {"vm", NULL};

const ServiceCommand service_memory_commands[] = {
    {"memory-add", service_cmd_memory_add, service_args_memory_add},
    {"memory-del", service_cmd_memory_del, service_args_memory_del},
    {"memory-list", service_cmd_memory_list, service_args_memory_list},
    {NULL, NULL, NULL},
};
