/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service: its VMs by name (each a QMP connection, its engine and its
 * host devices), the listeners that hear them, the table of commands, and
 * requests from service_execute to their one reply; the error classes of
 * the wire.  The commands themselves live in service-*.c, one file per
 * group. */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include <string.h>

#include "hotplug-hostpool.h"
#include "qmp-json.h"
#include "service-priv.h"

typedef struct {
    char *name;
    char *path;
    QmpConn *conn;
    HotplugVm *vm;
    guint conn_listener;
    guint vm_listener;
    Service *svc;
    ServiceHostdev *hostdev;
} ServiceVm;

typedef struct {
    guint id;
    ServiceListener cb;
    gpointer opaque;
} ServiceListenerEntry;

struct Service {
    struct event_base *base;
    ServiceOptions opts;
    GHashTable *vms;      /* name -> ServiceVm */
    GHashTable *commands; /* name -> ServiceCommand (borrowed) */
    GArray *listeners;    /* ServiceListenerEntry */
    guint next_listener_id;
    GHashTable *requests;                  /* ServiceRequest set: still waiting for a reply */
    char *sysfs_root, *hostdev_state_file; /* opts' strings point here */
    char *lock_root;
    HotplugHostdevRegistry *hostdevs; /* made on first use */
    HotplugHostpool *hostpool;        /* made on first use */
};

struct ServiceRequest {
    Service *svc;
    char *cmd;
    ServiceRequestCallbacks cb;
    gpointer opaque;
    gboolean cancelled;
    gboolean replied;
    /* waiting for ops */
    HotplugVm *vm;
    GPtrArray *ops;
    gboolean multi; /* reply {"ops": [...]} rather than one op */
    gboolean no_wait;
    guint vm_listener;
    struct event *poll; /* with no_wait: notices when QEMU accepted */
    struct event *own;  /* a joining unplug's own deadline */
    guint own_ms;
    /* adds to the reply of wait_op(s) (service_request_set_reply_func) */
    ServiceRequestReplyFunc reply_func;
    gpointer reply_data;
    GDestroyNotify reply_destroy;
};

/* ---- errors on the wire ----------------------------------------------- */

static const struct {
    int code;
    const char *cls;
} service_error_classes[] = {
    {HOTPLUG_ERROR_INVALID, "InvalidArgument"},
    {HOTPLUG_ERROR_BAD_PROPERTY, "InvalidProperty"},
    {HOTPLUG_ERROR_BUSY, "Busy"},
    {HOTPLUG_ERROR_UNSUPPORTED, "Unsupported"},
    {HOTPLUG_ERROR_VM_GONE, "VmGone"},
    {HOTPLUG_ERROR_NOT_FOUND, "NotFound"},
    {HOTPLUG_ERROR_STORAGE, "StorageError"},
    {HOTPLUG_ERROR_FAILED, "Failed"},
};

const char *
service_error_class(const GError *error)
{
    const char *cls = qmp_error_class_name(error);

    if (cls)
        return cls;
    if (error->domain == HOTPLUG_ERROR)
        for (guint i = 0; i < G_N_ELEMENTS(service_error_classes); i++)
            if (service_error_classes[i].code == error->code)
                return service_error_classes[i].cls;
    if (error->domain == QMP_ERROR &&
        (error->code == QMP_ERROR_CLOSED || error->code == QMP_ERROR_CONNECT))
        return "VmGone";
    return "Failed";
}

GError *
service_error_from_class(const char *cls, const char *desc)
{
    JsonObject *o;
    GError *e;

    if (!cls)
        cls = "Failed";
    if (!desc)
        desc = "(no description)";
    for (guint i = 0; i < G_N_ELEMENTS(service_error_classes); i++)
        if (g_str_equal(cls, service_error_classes[i].cls))
            return g_error_new_literal(HOTPLUG_ERROR, service_error_classes[i].code, desc);
    o = json_object_new();
    json_object_set_string_member(o, "class", cls);
    json_object_set_string_member(o, "desc", desc);
    e = qmp_error_from_json(o);
    json_object_unref(o);
    return e;
}

/* ---- listeners ---------------------------------------------------------- */

guint
service_add_listener(Service *svc, const ServiceListener *l, gpointer opaque)
{
    ServiceListenerEntry e = {++svc->next_listener_id, *l, opaque};

    g_array_append_val(svc->listeners, e);
    return e.id;
}

void
service_remove_listener(Service *svc, guint id)
{
    for (guint i = 0; i < svc->listeners->len; i++) {
        ServiceListenerEntry *e = &g_array_index(svc->listeners, ServiceListenerEntry, i);
        if (e->id == id) {
            memset(&e->cb, 0, sizeof(e->cb));
            e->id = 0;
        }
    }
}

#define SERVICE_EMIT(svc, member, ...)                                                             \
    do {                                                                                           \
        for (guint i_ = 0; i_ < (svc)->listeners->len; i_++) {                                     \
            ServiceListenerEntry e_ = g_array_index((svc)->listeners, ServiceListenerEntry, i_);   \
            if (e_.cb.member)                                                                      \
                e_.cb.member((svc), __VA_ARGS__, e_.opaque);                                       \
        }                                                                                          \
    } while (0)

static void
service_vm_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    ServiceVm *sv = opaque;
    SERVICE_EMIT(sv->svc, op, vm, op, ev);
}

static void
service_vm_qemu_event_cb(HotplugVm *vm, const QmpEvent *ev, HotplugOp *op, gpointer opaque)
{
    ServiceVm *sv = opaque;
    SERVICE_EMIT(sv->svc, qemu_event, vm, ev, op);
}

static void
service_vm_state(Service *svc, const char *vm, const char *state, const char *detail)
{
    SERVICE_EMIT(svc, vm_state, vm, state, detail);
}

static void
service_conn_state_cb(QmpConn *conn, QmpConnState state, const GError *error, gpointer opaque)
{
    ServiceVm *sv = opaque;

    switch (state) {
    case QMP_CONN_READY:
        service_hostdev_connected(sv->hostdev);
        service_vm_state(sv->svc, sv->name, "connected", NULL);
        break;
    case QMP_CONN_CLOSED:
        service_vm_state(sv->svc, sv->name, "disconnected", error ? error->message : NULL);
        service_hostdev_disconnected(sv->hostdev);
        break;
    default:
        break;
    }
}

/* ---- VMs ------------------------------------------------------------------ */

gboolean
service_vm_name_valid(const char *name)
{
    gsize n = name ? strlen(name) : 0;

    if (n == 0 || n > 64)
        return FALSE;
    for (const char *p = name; *p; p++)
        if (!g_ascii_isalnum(*p) && !strchr("-_.", *p))
            return FALSE;
    return TRUE;
}

static void
service_vm_free(ServiceVm *sv)
{
    service_hostdev_free(sv->hostdev);
    hotplug_vm_remove_listener(sv->vm, sv->vm_listener);
    qmp_conn_remove_listener(sv->conn, sv->conn_listener);
    hotplug_vm_free(sv->vm);
    qmp_conn_close(sv->conn);
    qmp_conn_unref(sv->conn);
    g_free(sv->name);
    g_free(sv->path);
    g_free(sv);
}

gboolean
service_add_vm(Service *svc, const char *name, const char *qmp_path, GError **error)
{
    static const QmpConnListener cl = {.state = service_conn_state_cb};
    static const HotplugVmListener vl = {
        .op = service_vm_op_cb,
        .qemu_event = service_vm_qemu_event_cb,
    };
    QmpConnOptions copts = {.reconnect = !svc->opts.direct};
    HotplugVmOptions vopts = {.timeouts = svc->opts.timeouts, .gone_on_close = svc->opts.direct};
    ServiceVm *sv;

    /* direct mode names the VM by its path */
    if (!svc->opts.direct && !service_vm_name_valid(name)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "bad VM name '%s': use letters, digits, '-', '_' and '.', at most 64", name);
        return FALSE;
    }
    if (!qmp_path || !*qmp_path) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no QMP socket path given");
        return FALSE;
    }
    if (g_hash_table_contains(svc->vms, name)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY, "VM %s is already registered", name);
        return FALSE;
    }
    sv = g_new0(ServiceVm, 1);
    sv->svc = svc;
    sv->name = g_strdup(name);
    sv->path = g_strdup(qmp_path);
    sv->conn = qmp_conn_new(svc->base, qmp_path, &copts);
    sv->vm = hotplug_vm_new(name, sv->conn, &vopts);
    sv->hostdev = service_hostdev_new(svc, sv->vm);
    sv->conn_listener = qmp_conn_add_listener(sv->conn, &cl, sv);
    sv->vm_listener = hotplug_vm_add_listener(sv->vm, &vl, sv);
    g_hash_table_insert(svc->vms, sv->name, sv);
    service_vm_state(svc, name, "added", qmp_path);
    if (!qmp_conn_open(sv->conn, error)) {
        g_hash_table_remove(svc->vms, name);
        return FALSE;
    }
    return TRUE;
}

/* The requests waiting now, to walk while ending some of them. */
static GPtrArray *
service_requests_snapshot(Service *svc)
{
    GPtrArray *arr = g_ptr_array_sized_new(g_hash_table_size(svc->requests));
    GHashTableIter it;
    gpointer req;

    g_hash_table_iter_init(&it, svc->requests);
    while (g_hash_table_iter_next(&it, &req, NULL))
        g_ptr_array_add(arr, req);
    return arr;
}

gboolean
service_remove_vm(Service *svc, const char *name, GError **error)
{
    g_autofree char *copy = g_strdup(name);
    ServiceVm *sv = g_hash_table_lookup(svc->vms, name);

    if (!sv) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_NOT_FOUND, "no VM named '%s'", name);
        return FALSE;
    }
    /* its pending operations end as vm-gone (their requesters hear it),
     * and nothing may wait on it once it is freed */
    hotplug_vm_end_all(sv->vm, "the VM was removed from hotplugd");
    {
        /* failing one may end others: look each up again */
        g_autoptr(GPtrArray) reqs = service_requests_snapshot(svc);
        for (guint i = reqs->len; i > 0; i--) {
            ServiceRequest *req = reqs->pdata[i - 1];
            if (g_hash_table_contains(svc->requests, req) && req->vm == sv->vm && req->ops)
                service_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE,
                                                      "VM %s was removed", copy));
        }
    }
    g_hash_table_remove(svc->vms, name);
    /* its host devices are free for other VMs now */
    if (svc->hostdevs)
        hotplug_hostdev_registry_release_vm(svc->hostdevs, copy);
    service_vm_state(svc, copy, "removed", NULL);
    return TRUE;
}

static void
service_hostdev_notify_cb(HotplugHostdevRegistry *reg, const char *event, const char *addr,
                          const char *group, const char *vm, const char *device, const char *why,
                          gpointer opaque)
{
    Service *svc = opaque;
    g_autoptr(JsonObject) info = json_object_new();

    json_object_set_string_member(info, "address", addr);
    if (group)
        json_object_set_string_member(info, "group", group);
    json_object_set_string_member(info, "vm", vm);
    json_object_set_string_member(info, "device", device);
    if (why)
        json_object_set_string_member(info, "why", why);
    SERVICE_EMIT(svc, hostdev, event, info);
}

HotplugHostdevRegistry *
service_get_hostdev_registry(Service *svc, GError **error)
{
    if (!svc->hostdevs) {
        svc->hostdevs = hotplug_hostdev_registry_new(svc->hostdev_state_file, error);
        if (!svc->hostdevs)
            return NULL;
        hotplug_hostdev_registry_set_host(svc->hostdevs, svc->sysfs_root, svc->lock_root, NULL);
        hotplug_hostdev_registry_set_notify(svc->hostdevs, service_hostdev_notify_cb, svc);
    }
    return svc->hostdevs;
}

const char *
service_get_lock_root(Service *svc)
{
    return svc->lock_root;
}

static void
service_hostpool_change_cb(HotplugHostpool *pool, const char *event, JsonObject *dev,
                           gpointer opaque)
{
    Service *svc = opaque;
    g_autoptr(JsonNode) wrap = json_node_init_object(json_node_alloc(), dev);
    g_autoptr(JsonNode) copy = qmp_json_deep_copy(wrap);

    g_message("host device %s (%s, IOMMU group %s): %s", qmp_json_get_string(dev, "address"),
              qmp_json_get_string(dev, "vendor-device"),
              qmp_json_get_string(dev, "group") ? qmp_json_get_string(dev, "group") : "none",
              event);
    SERVICE_EMIT(svc, hostdev, event, json_node_get_object(copy));
}

HotplugHostpool *
service_get_hostpool(Service *svc)
{
    if (!svc->hostpool) {
        svc->hostpool = hotplug_hostpool_new(svc->sysfs_root);
        hotplug_hostpool_set_change_func(svc->hostpool, service_hostpool_change_cb, svc);
    }
    return svc->hostpool;
}

static void
service_hostpool_tick_cb(HotplugHostpool *pool, gpointer opaque)
{
    Service *svc = opaque;
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init(&it, svc->vms);
    while (g_hash_table_iter_next(&it, NULL, &value))
        service_hostdev_recheck(((ServiceVm *)value)->hostdev);
}

void
service_watch_hostdevs(Service *svc)
{
    g_autoptr(GError) error = NULL;
    HotplugHostpool *pool = service_get_hostpool(svc);

    if (!service_get_hostdev_registry(svc, &error))
        g_warning("host devices: %s", error->message);
    hotplug_hostpool_watch(pool, svc->base, service_hostpool_tick_cb, svc);
    g_message("host device pool watched by %s", hotplug_hostpool_get_mechanism(pool));
}

ServiceHostdev *
service_get_hostdev(Service *svc, const char *name)
{
    ServiceVm *sv = g_hash_table_lookup(svc->vms, name);
    return sv ? sv->hostdev : NULL;
}

HotplugVm *
service_get_vm(Service *svc, const char *name)
{
    ServiceVm *sv = g_hash_table_lookup(svc->vms, name);
    return sv ? sv->vm : NULL;
}

const char *
service_get_vm_path(Service *svc, const char *name)
{
    ServiceVm *sv = g_hash_table_lookup(svc->vms, name);
    return sv ? sv->path : NULL;
}

static gint
service_strptr_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *
service_list_vms(Service *svc)
{
    GPtrArray *names = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, svc->vms);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_ptr_array_add(names, key);
    g_ptr_array_sort(names, service_strptr_cmp);
    return names;
}

/* ---- the service ----------------------------------------------------------- */

Service *
service_new(struct event_base *base, const ServiceOptions *opts)
{
    Service *svc = g_new0(Service, 1);
    gboolean defaults = TRUE;

    svc->base = base;
    if (opts)
        svc->opts = *opts;
    for (guint i = 0; i < TIMEOUT_CLASS_COUNT; i++)
        if (svc->opts.timeouts.ms[i])
            defaults = FALSE;
    if (defaults)
        timeout_policy_init(&svc->opts.timeouts);
    svc->opts.sysfs_root = svc->sysfs_root = g_strdup(svc->opts.sysfs_root);
    svc->opts.hostdev_state_file = svc->hostdev_state_file = g_strdup(svc->opts.hostdev_state_file);
    svc->opts.hostdev_lock_root = svc->lock_root = g_strdup(
        svc->opts.hostdev_lock_root ? svc->opts.hostdev_lock_root : HOTPLUG_LOCK_ROOT_DEFAULT);
    svc->vms =
        g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)service_vm_free);
    svc->commands = g_hash_table_new(g_str_hash, g_str_equal);
    svc->listeners = g_array_new(FALSE, TRUE, sizeof(ServiceListenerEntry));
    svc->requests = g_hash_table_new(g_direct_hash, g_direct_equal);
    service_register(svc, service_vm_commands);
    service_register(svc, service_device_commands);
    service_register(svc, service_ops_commands);
    service_register(svc, service_disk_commands);
    service_register(svc, service_hostdev_commands);
    service_register(svc, service_vcpu_commands);
    service_register(svc, service_memory_commands);
    return svc;
}

static void service_request_free(ServiceRequest *req);

void
service_free(Service *svc)
{
    if (!svc)
        return;
    /* requests still waiting get no reply: their requester is going too.
     * Those waiting on ops leave their VM first; the rest end when closing
     * the VMs fails their QMP commands. */
    {
        g_autoptr(GPtrArray) reqs = service_requests_snapshot(svc);
        for (guint i = 0; i < reqs->len; i++)
            ((ServiceRequest *)reqs->pdata[i])->cancelled = TRUE;
        for (guint i = reqs->len; i > 0; i--) {
            ServiceRequest *req = reqs->pdata[i - 1];
            if (g_hash_table_contains(svc->requests, req) && req->ops)
                service_request_free(req);
        }
    }
    g_array_set_size(svc->listeners, 0);
    g_hash_table_unref(svc->vms);
    for (;;) {
        GHashTableIter it;
        gpointer req;

        g_hash_table_iter_init(&it, svc->requests);
        if (!g_hash_table_iter_next(&it, &req, NULL))
            break;
        service_request_free(req);
    }
    g_hash_table_unref(svc->requests);
    g_hash_table_unref(svc->commands);
    g_array_unref(svc->listeners);
    hotplug_hostpool_free(svc->hostpool);
    hotplug_hostdev_registry_free(svc->hostdevs);
    g_free(svc->lock_root);
    g_free(svc->sysfs_root);
    g_free(svc->hostdev_state_file);
    g_free(svc);
}

struct event_base *
service_get_base(Service *svc)
{
    return svc->base;
}

const ServiceOptions *
service_get_options(Service *svc)
{
    return &svc->opts;
}

void
service_register(Service *svc, const ServiceCommand *cmds)
{
    for (; cmds->name; cmds++)
        g_hash_table_insert(svc->commands, (gpointer)cmds->name, (gpointer)cmds);
}

GPtrArray *
service_list_commands(Service *svc)
{
    GPtrArray *names = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, svc->commands);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_ptr_array_add(names, key);
    g_ptr_array_sort(names, service_strptr_cmp);
    return names;
}

gboolean
service_has_command(Service *svc, const char *name)
{
    return g_hash_table_contains(svc->commands, name);
}

/* ---- requests ---------------------------------------------------------------- */

static void
service_request_free(ServiceRequest *req)
{
    g_hash_table_remove(req->svc->requests, req);
    if (req->vm_listener && req->vm)
        hotplug_vm_remove_listener(req->vm, req->vm_listener);
    if (req->poll)
        event_free(req->poll);
    if (req->own)
        event_free(req->own);
    if (req->ops)
        g_ptr_array_unref(req->ops);
    if (req->reply_destroy)
        req->reply_destroy(req->reply_data);
    g_free(req->cmd);
    g_free(req);
}

ServiceRequest *
service_execute(Service *svc, const char *cmd, JsonObject *args, const ServiceRequestCallbacks *cb,
                gpointer opaque)
{
    ServiceRequest *req = g_new0(ServiceRequest, 1);
    const ServiceCommand *c = g_hash_table_lookup(svc->commands, cmd);
    g_autoptr(JsonObject) empty = NULL;

    req->svc = svc;
    req->cmd = g_strdup(cmd);
    req->cb = *cb;
    req->opaque = opaque;
    g_hash_table_add(svc->requests, req);
    if (!c) {
        service_request_fail(
            req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_NOT_FOUND, "unknown command '%s'", cmd));
        return NULL;
    }
    if (!args)
        args = empty = json_object_new();
    if (c->args) {
        g_autoptr(GList) names = json_object_get_members(args);
        for (GList *l = names; l; l = l->next) {
            if (!g_strv_contains(c->args, l->data)) {
                g_autofree char *known = g_strjoinv(", ", (char **)c->args);
                service_request_fail(
                    req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                                     "%s takes no argument '%s' (%s%s)", cmd, (char *)l->data,
                                     *known ? "it takes: " : "it takes none", known));
                return NULL;
            }
        }
    }
    c->run(svc, req, args);
    /* replied at once: req is gone */
    return g_hash_table_contains(svc->requests, req) ? req : NULL;
}

void
service_request_cancel(ServiceRequest *req)
{
    if (!req)
        return;
    req->cancelled = TRUE;
    /* a waiting request ends here; a handler mid-flight replies into the void */
    if (req->ops)
        service_request_free(req);
}

Service *
service_request_get_service(ServiceRequest *req)
{
    return req->svc;
}

void
service_request_return(ServiceRequest *req, JsonNode *ret)
{
    g_autoptr(JsonNode) owned = ret;

    if (!req->replied && !req->cancelled && req->cb.reply)
        req->cb.reply(req, ret, NULL, req->opaque);
    req->replied = TRUE;
    service_request_free(req);
}

void
service_request_fail(ServiceRequest *req, GError *error)
{
    g_autoptr(GError) owned = error;

    if (!req->replied && !req->cancelled && req->cb.reply)
        req->cb.reply(req, NULL, error, req->opaque);
    req->replied = TRUE;
    service_request_free(req);
}

void
service_request_event(ServiceRequest *req, const char *name, JsonNode *data)
{
    if (!req->cancelled && req->cb.event)
        req->cb.event(req, name, data, req->opaque);
}

/* An op's progress: its object as data (as text to event_text when set) */
static void
service_request_op_event(ServiceRequest *req, const char *name, HotplugOp *op)
{
    if (req->cancelled)
        return;
    if (req->cb.event_text) {
        g_autoptr(GString) text = g_string_sized_new(320);

        hotplug_op_write_json(op, text);
        req->cb.event_text(req, name, text->str, text->len, req->opaque);
    } else if (req->cb.event) {
        g_autoptr(JsonNode) data = hotplug_op_to_json(op);
        req->cb.event(req, name, data, req->opaque);
    }
}

static gboolean
service_request_ops_settled(ServiceRequest *req)
{
    for (guint i = 0; i < req->ops->len; i++) {
        HotplugOp *op = req->ops->pdata[i];
        if (hotplug_op_is_final(op))
            continue;
        if (req->no_wait && hotplug_op_get_state(op) != HOTPLUG_OP_SENDING)
            continue;
        return FALSE;
    }
    return TRUE;
}

void
service_request_set_reply_func(ServiceRequest *req, ServiceRequestReplyFunc func, gpointer data,
                               GDestroyNotify destroy)
{
    if (req->reply_destroy)
        req->reply_destroy(req->reply_data);
    req->reply_func = func;
    req->reply_data = data;
    req->reply_destroy = destroy;
}

/* The reply of wait_op(s), with what the command's reply func adds. */
static void
service_request_return_ops(ServiceRequest *req, JsonNode *ret)
{
    if (req->reply_func && JSON_NODE_HOLDS_OBJECT(ret))
        req->reply_func(req, json_node_get_object(ret), req->reply_data);
    service_request_return(req, ret);
}

/* Reply once every op is settled. */
static void
service_request_check_ops(ServiceRequest *req)
{
    g_autoptr(JsonBuilder) b = NULL;

    if (!service_request_ops_settled(req))
        return;
    if (!req->multi && !req->reply_func && req->cb.reply_text) {
        /* the op's text as it is: no object to build, write and free */
        HotplugOp *op = req->ops->pdata[0];
        g_autoptr(GString) text = g_string_sized_new(320);
        /* the outcome the text shows (the attempt's while there is none) */
        HotplugOutcome shown = hotplug_op_get_outcome(op) != HOTPLUG_OUTCOME_NONE
                                   ? hotplug_op_get_outcome(op)
                                   : hotplug_op_get_attempt_outcome(op);

        hotplug_op_write_json(op, text);
        if (!req->replied && !req->cancelled)
            req->cb.reply_text(req, text->str, text->len, hotplug_outcome_name(shown),
                               req->opaque);
        req->replied = TRUE;
        service_request_free(req);
        return;
    }
    if (!req->multi) {
        service_request_return_ops(req, hotplug_op_to_json(req->ops->pdata[0]));
        return;
    }
    b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "ops");
    json_builder_begin_array(b);
    for (guint i = 0; i < req->ops->len; i++)
        json_builder_add_value(b, hotplug_op_to_json(req->ops->pdata[i]));
    json_builder_end_array(b);
    json_builder_end_object(b);
    service_request_return_ops(req, json_builder_get_root(b));
}

static void
service_request_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    ServiceRequest *req = opaque;

    if (!g_ptr_array_find(req->ops, op, NULL))
        return;
    if (ev == HOTPLUG_OP_EV_ATTEMPT_RESULT || ev == HOTPLUG_OP_EV_ATTEMPT)
        service_request_op_event(req, ev == HOTPLUG_OP_EV_ATTEMPT ? "ATTEMPT" : "ATTEMPT_RESULT",
                                 op);
    if (ev == HOTPLUG_OP_EV_OUTCOME)
        service_request_check_ops(req);
}

static void
service_request_poll_cb(evutil_socket_t fd, short what, void *opaque)
{
    service_request_check_ops(opaque);
}

static void
service_request_wait(ServiceRequest *req, HotplugVm *vm, GPtrArray *ops, gboolean no_wait,
                     gboolean multi)
{
    static const HotplugVmListener l = {.op = service_request_op_cb};

    req->multi = multi;
    req->vm = vm;
    req->no_wait = no_wait;
    req->ops = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_op_unref);
    for (guint i = 0; i < ops->len; i++)
        g_ptr_array_add(req->ops, hotplug_op_ref(ops->pdata[i]));
    if (service_request_ops_settled(req)) {
        service_request_check_ops(req);
        return;
    }
    req->vm_listener = hotplug_vm_add_listener(vm, &l, req);
    /* an attempt already under way was announced before we listened */
    for (guint i = 0; i < req->ops->len; i++) {
        HotplugOp *op = req->ops->pdata[i];
        if (!hotplug_op_is_final(op) && hotplug_op_get_attempts(op) > 0)
            service_request_op_event(req, "ATTEMPT", op);
    }
    if (no_wait) {
        /* acceptance is a reply, not an op event: look every 10 ms */
        struct timeval tv = {0, 10000};
        req->poll = event_new(req->svc->base, -1, EV_PERSIST, service_request_poll_cb, req);
        event_add(req->poll, &tv);
    }
}

void
service_request_wait_ops(ServiceRequest *req, HotplugVm *vm, GPtrArray *ops, gboolean no_wait)
{
    service_request_wait(req, vm, ops, no_wait, TRUE);
}

void
service_request_wait_op(ServiceRequest *req, HotplugVm *vm, HotplugOp *op, gboolean no_wait)
{
    g_autoptr(GPtrArray) ops = g_ptr_array_new();

    g_ptr_array_add(ops, op);
    service_request_wait(req, vm, ops, no_wait, FALSE);
}

void
service_request_wait_started(ServiceRequest *req, HotplugVm *vm, HotplugOp *op, GError *error,
                             gboolean no_wait)
{
    g_autoptr(HotplugOp) owned = op;

    if (!op) {
        service_request_fail(req, error);
        return;
    }
    service_request_wait_op(req, vm, op, no_wait);
}

/* A joining unplug's own deadline passed first: its answer is
 * not-deleted, while the operation it joined goes on. */
static void
service_request_own_cb(evutil_socket_t fd, short what, void *opaque)
{
    ServiceRequest *req = opaque;
    HotplugOp *op = req->ops && req->ops->len ? req->ops->pdata[0] : NULL;
    JsonNode *ret;
    JsonObject *o;
    g_autofree char *detail = NULL;

    if (!op || hotplug_op_is_final(op))
        return;
    ret = hotplug_op_to_json(op);
    o = json_node_get_object(ret);
    json_object_set_string_member(o, "outcome", "not-deleted");
    json_object_set_boolean_member(o, "joined", TRUE);
    json_object_set_int_member(o, "timeout_ms", req->own_ms);
    detail = g_strdup_printf("still present after this request's own deadline of %u ms; the "
                             "unplug it joined (operation %" G_GUINT64_FORMAT ") goes on",
                             req->own_ms, hotplug_op_get_id(op));
    json_object_set_string_member(o, "detail", detail);
    service_request_return_ops(req, ret);
}

void
service_request_unplug(ServiceRequest *req, JsonObject *args, ServiceUnplugFunc unplug)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    HotplugUnplugOptions opts;
    gboolean no_wait, attached = FALSE;
    const char *id;
    GError *error = NULL;
    HotplugOp *op;
    guint ms;

    if (!vm || !service_request_arg_string(req, args, "id", TRUE, &id) ||
        !service_request_unplug_args(req, args, &opts, &no_wait))
        return;
    op = unplug(req->svc, vm, id, &opts, &attached, &error);
    /* joining an unplug under way: wait for it, but no longer than this
     * request's own deadline (its --timeout, else the operation's) */
    ms = op && opts.timeout_ms ? opts.timeout_ms : (op ? hotplug_op_get_timeout_ms(op) : 0);
    if (op && attached && !no_wait && !hotplug_op_is_final(op) && ms) {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        req->own_ms = ms;
        req->own = event_new(req->svc->base, -1, 0, service_request_own_cb, req);
        event_add(req->own, &tv);
    }
    service_request_wait_started(req, vm, op, error, no_wait);
}
