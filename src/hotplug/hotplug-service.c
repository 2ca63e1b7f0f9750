/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <math.h>
#include <string.h>

#include "hotplug-service.h"
#include "hotplug-service-priv.h"
#include "qmp-caps.h"
#include "qmp-json.h"

typedef struct {
    char *name;
    char *path;
    QmpConn *conn;
    HotplugVm *vm;
    guint conn_listener;
    guint vm_listener;
    HotplugService *svc;
    HotplugServiceHostdev *hostdev;
} HotplugServiceVm;

typedef struct {
    guint id;
    HotplugServiceListener cb;
    gpointer opaque;
} HotplugServiceListenerEntry;

struct HotplugService {
    struct event_base *base;
    HotplugServiceOptions opts;
    GHashTable *vms;       /* name -> HotplugServiceVm */
    GHashTable *commands;  /* name -> HotplugCommand (borrowed) */
    GArray *listeners;     /* HotplugServiceListenerEntry */
    guint next_listener_id;
    GPtrArray *requests;   /* HotplugRequest still waiting for a reply */
    char *sysfs_root, *hostdev_state_file; /* opts' strings point here */
    HotplugHostdevRegistry *hostdevs;      /* made on first use */
};

struct HotplugRequest {
    HotplugService *svc;
    char *cmd;
    HotplugRequestCallbacks cb;
    gpointer opaque;
    gboolean cancelled;
    gboolean replied;
    /* waiting for ops */
    HotplugVm *vm;
    GPtrArray *ops;
    gboolean multi;      /* reply {"ops": [...]} rather than one op */
    gboolean no_wait;
    guint vm_listener;
    struct event *poll;  /* with no_wait: notices when QEMU accepted */
    /* adds to the reply of wait_op(s) (hotplug_request_set_reply_func) */
    HotplugRequestReplyFunc reply_func;
    gpointer reply_data;
    GDestroyNotify reply_destroy;
};

static const HotplugCommand hotplug_service_base_commands[];

/* ---- errors on the wire ----------------------------------------------- */

static const struct {
    int code;
    const char *cls;
} hotplug_error_classes[] = {
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
hotplug_error_class(const GError *error)
{
    const char *cls = qmp_error_class_name(error);

    if (cls)
        return cls;
    if (error->domain == HOTPLUG_ERROR)
        for (guint i = 0; i < G_N_ELEMENTS(hotplug_error_classes); i++)
            if (hotplug_error_classes[i].code == error->code)
                return hotplug_error_classes[i].cls;
    if (error->domain == QMP_ERROR &&
        (error->code == QMP_ERROR_CLOSED || error->code == QMP_ERROR_CONNECT))
        return "VmGone";
    return "Failed";
}

GError *
hotplug_error_from_class(const char *cls, const char *desc)
{
    JsonObject *o;
    GError *e;

    if (!cls)
        cls = "Failed";
    if (!desc)
        desc = "(no description)";
    for (guint i = 0; i < G_N_ELEMENTS(hotplug_error_classes); i++)
        if (g_str_equal(cls, hotplug_error_classes[i].cls))
            return g_error_new_literal(HOTPLUG_ERROR, hotplug_error_classes[i].code, desc);
    o = json_object_new();
    json_object_set_string_member(o, "class", cls);
    json_object_set_string_member(o, "desc", desc);
    e = qmp_error_from_json(o);
    json_object_unref(o);
    return e;
}

/* ---- listeners ---------------------------------------------------------- */

guint
hotplug_service_add_listener(HotplugService *svc, const HotplugServiceListener *l,
                             gpointer opaque)
{
    HotplugServiceListenerEntry e = {++svc->next_listener_id, *l, opaque};

    g_array_append_val(svc->listeners, e);
    return e.id;
}

void
hotplug_service_remove_listener(HotplugService *svc, guint id)
{
    for (guint i = 0; i < svc->listeners->len; i++) {
        HotplugServiceListenerEntry *e =
            &g_array_index(svc->listeners, HotplugServiceListenerEntry, i);
        if (e->id == id) {
            memset(&e->cb, 0, sizeof(e->cb));
            e->id = 0;
        }
    }
}

#define HOTPLUG_SERVICE_EMIT(svc, member, ...)                                                \
    do {                                                                                      \
        for (guint i_ = 0; i_ < (svc)->listeners->len; i_++) {                               \
            HotplugServiceListenerEntry e_ =                                                  \
                g_array_index((svc)->listeners, HotplugServiceListenerEntry, i_);             \
            if (e_.cb.member)                                                                 \
                e_.cb.member((svc), __VA_ARGS__, e_.opaque);                                  \
        }                                                                                     \
    } while (0)

static void
hotplug_service_vm_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    HotplugServiceVm *sv = opaque;
    HOTPLUG_SERVICE_EMIT(sv->svc, op, vm, op, ev);
}

static void
hotplug_service_vm_qemu_event_cb(HotplugVm *vm, const QmpEvent *ev, HotplugOp *op,
                                 gpointer opaque)
{
    HotplugServiceVm *sv = opaque;
    HOTPLUG_SERVICE_EMIT(sv->svc, qemu_event, vm, ev, op);
}

static void
hotplug_service_vm_state(HotplugService *svc, const char *vm, const char *state,
                         const char *detail)
{
    HOTPLUG_SERVICE_EMIT(svc, vm_state, vm, state, detail);
}

static void
hotplug_service_conn_state_cb(QmpConn *conn, QmpConnState state, const GError *error,
                              gpointer opaque)
{
    HotplugServiceVm *sv = opaque;

    switch (state) {
    case QMP_CONN_READY:
        hotplug_service_hostdev_connected(sv->hostdev);
        hotplug_service_vm_state(sv->svc, sv->name, "connected", NULL);
        break;
    case QMP_CONN_CLOSED:
        hotplug_service_vm_state(sv->svc, sv->name, "disconnected",
                                 error ? error->message : NULL);
        break;
    default:
        break;
    }
}

/* ---- VMs ------------------------------------------------------------------ */

gboolean
hotplug_vm_name_valid(const char *name)
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
hotplug_service_vm_free(HotplugServiceVm *sv)
{
    hotplug_service_hostdev_free(sv->hostdev);
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
hotplug_service_add_vm(HotplugService *svc, const char *name, const char *qmp_path,
                       GError **error)
{
    static const QmpConnListener cl = {.state = hotplug_service_conn_state_cb};
    static const HotplugVmListener vl = {
        .op = hotplug_service_vm_op_cb,
        .qemu_event = hotplug_service_vm_qemu_event_cb,
    };
    QmpConnOptions copts = {.reconnect = !svc->opts.direct};
    HotplugVmOptions vopts = {.timeouts = svc->opts.timeouts, .gone_on_close = svc->opts.direct};
    HotplugServiceVm *sv;

    /* direct mode names the VM by its path */
    if (!svc->opts.direct && !hotplug_vm_name_valid(name)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "bad VM name '%s': use letters, digits, '-', '_' and '.', at most 64", name);
        return FALSE;
    }
    if (!qmp_path || !*qmp_path) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no QMP socket path given");
        return FALSE;
    }
    if (g_hash_table_contains(svc->vms, name)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY, "VM %s is already registered",
                    name);
        return FALSE;
    }
    sv = g_new0(HotplugServiceVm, 1);
    sv->svc = svc;
    sv->name = g_strdup(name);
    sv->path = g_strdup(qmp_path);
    sv->conn = qmp_conn_new(svc->base, qmp_path, &copts);
    sv->vm = hotplug_vm_new(name, sv->conn, &vopts);
    sv->hostdev = hotplug_service_hostdev_new(svc, sv->vm);
    sv->conn_listener = qmp_conn_add_listener(sv->conn, &cl, sv);
    sv->vm_listener = hotplug_vm_add_listener(sv->vm, &vl, sv);
    g_hash_table_insert(svc->vms, sv->name, sv);
    hotplug_service_vm_state(svc, name, "added", qmp_path);
    if (!qmp_conn_open(sv->conn, error)) {
        g_hash_table_remove(svc->vms, name);
        return FALSE;
    }
    return TRUE;
}

gboolean
hotplug_service_remove_vm(HotplugService *svc, const char *name, GError **error)
{
    g_autofree char *copy = g_strdup(name);
    HotplugServiceVm *sv = g_hash_table_lookup(svc->vms, name);

    if (!sv) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_NOT_FOUND, "no VM named '%s'", name);
        return FALSE;
    }
    /* its pending operations end as vm-gone (their requesters hear it),
     * and nothing may wait on it once it is freed */
    hotplug_vm_end_all(sv->vm, "the VM was removed from hotplugd");
    for (guint i = svc->requests->len; i > 0; i--) {
        HotplugRequest *req = svc->requests->pdata[i - 1];
        if (req->vm == sv->vm && req->ops)
            hotplug_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE,
                                                  "VM %s was removed", copy));
    }
    g_hash_table_remove(svc->vms, name);
    /* its host devices are free for other VMs now */
    if (svc->hostdevs)
        hotplug_hostdev_registry_release_vm(svc->hostdevs, copy);
    hotplug_service_vm_state(svc, copy, "removed", NULL);
    return TRUE;
}

HotplugHostdevRegistry *
hotplug_service_get_hostdev_registry(HotplugService *svc, GError **error)
{
    if (!svc->hostdevs)
        svc->hostdevs = hotplug_hostdev_registry_new(svc->hostdev_state_file, error);
    return svc->hostdevs;
}

HotplugServiceHostdev *
hotplug_service_get_hostdev(HotplugService *svc, const char *name)
{
    HotplugServiceVm *sv = g_hash_table_lookup(svc->vms, name);
    return sv ? sv->hostdev : NULL;
}

HotplugVm *
hotplug_service_get_vm(HotplugService *svc, const char *name)
{
    HotplugServiceVm *sv = g_hash_table_lookup(svc->vms, name);
    return sv ? sv->vm : NULL;
}

const char *
hotplug_service_get_vm_path(HotplugService *svc, const char *name)
{
    HotplugServiceVm *sv = g_hash_table_lookup(svc->vms, name);
    return sv ? sv->path : NULL;
}

static gint
hotplug_strptr_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

GPtrArray *
hotplug_service_list_vms(HotplugService *svc)
{
    GPtrArray *names = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, svc->vms);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_ptr_array_add(names, key);
    g_ptr_array_sort(names, hotplug_strptr_cmp);
    return names;
}

/* ---- the service ----------------------------------------------------------- */

HotplugService *
hotplug_service_new(struct event_base *base, const HotplugServiceOptions *opts)
{
    HotplugService *svc = g_new0(HotplugService, 1);
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
    svc->opts.hostdev_state_file = svc->hostdev_state_file =
        g_strdup(svc->opts.hostdev_state_file);
    svc->vms = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                     (GDestroyNotify)hotplug_service_vm_free);
    svc->commands = g_hash_table_new(g_str_hash, g_str_equal);
    svc->listeners = g_array_new(FALSE, TRUE, sizeof(HotplugServiceListenerEntry));
    svc->requests = g_ptr_array_new();
    hotplug_service_register(svc, hotplug_service_base_commands);
    hotplug_service_register(svc, hotplug_disk_commands);
    hotplug_service_register(svc, hotplug_vcpu_commands);
    return svc;
}

static void hotplug_request_free(HotplugRequest *req);

void
hotplug_service_free(HotplugService *svc)
{
    if (!svc)
        return;
    /* requests still waiting get no reply: their requester is going too.
     * Those waiting on ops leave their VM first; the rest end when closing
     * the VMs fails their QMP commands. */
    for (guint i = 0; i < svc->requests->len; i++)
        ((HotplugRequest *)svc->requests->pdata[i])->cancelled = TRUE;
    for (guint i = svc->requests->len; i > 0; i--) {
        HotplugRequest *req = svc->requests->pdata[i - 1];
        if (req->ops)
            hotplug_request_free(req);
    }
    g_array_set_size(svc->listeners, 0);
    g_hash_table_unref(svc->vms);
    while (svc->requests->len)
        hotplug_request_free(svc->requests->pdata[svc->requests->len - 1]);
    g_ptr_array_unref(svc->requests);
    g_hash_table_unref(svc->commands);
    g_array_unref(svc->listeners);
    hotplug_hostdev_registry_free(svc->hostdevs);
    g_free(svc->sysfs_root);
    g_free(svc->hostdev_state_file);
    g_free(svc);
}

struct event_base *
hotplug_service_get_base(HotplugService *svc)
{
    return svc->base;
}

const HotplugServiceOptions *
hotplug_service_get_options(HotplugService *svc)
{
    return &svc->opts;
}

void
hotplug_service_register(HotplugService *svc, const HotplugCommand *cmds)
{
    for (; cmds->name; cmds++)
        g_hash_table_insert(svc->commands, (gpointer)cmds->name, (gpointer)cmds);
}

GPtrArray *
hotplug_service_list_commands(HotplugService *svc)
{
    GPtrArray *names = g_ptr_array_new();
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, svc->commands);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_ptr_array_add(names, key);
    g_ptr_array_sort(names, hotplug_strptr_cmp);
    return names;
}

/* ---- requests ---------------------------------------------------------------- */

static void
hotplug_request_free(HotplugRequest *req)
{
    g_ptr_array_remove_fast(req->svc->requests, req);
    if (req->vm_listener && req->vm)
        hotplug_vm_remove_listener(req->vm, req->vm_listener);
    if (req->poll)
        event_free(req->poll);
    if (req->ops)
        g_ptr_array_unref(req->ops);
    if (req->reply_destroy)
        req->reply_destroy(req->reply_data);
    g_free(req->cmd);
    g_free(req);
}

HotplugRequest *
hotplug_service_execute(HotplugService *svc, const char *cmd, JsonObject *args,
                        const HotplugRequestCallbacks *cb, gpointer opaque)
{
    HotplugRequest *req = g_new0(HotplugRequest, 1);
    const HotplugCommand *c = g_hash_table_lookup(svc->commands, cmd);
    g_autoptr(JsonObject) empty = NULL;

    req->svc = svc;
    req->cmd = g_strdup(cmd);
    req->cb = *cb;
    req->opaque = opaque;
    g_ptr_array_add(svc->requests, req);
    if (!c) {
        hotplug_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_NOT_FOUND,
                                              "unknown command '%s'", cmd));
        return NULL;
    }
    if (!args)
        args = empty = json_object_new();
    if (c->args) {
        g_autoptr(GList) names = json_object_get_members(args);
        for (GList *l = names; l; l = l->next) {
            if (!g_strv_contains(c->args, l->data)) {
                g_autofree char *known = g_strjoinv(", ", (char **)c->args);
                hotplug_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                                                      "%s takes no argument '%s' (%s%s)", cmd,
                                                      (char *)l->data,
                                                      *known ? "it takes: " : "it takes none",
                                                      known));
                return NULL;
            }
        }
    }
    c->run(svc, req, args);
    /* replied at once: req is gone */
    return g_ptr_array_find(svc->requests, req, NULL) ? req : NULL;
}

void
hotplug_request_cancel(HotplugRequest *req)
{
    if (!req)
        return;
    req->cancelled = TRUE;
    /* a waiting request ends here; a handler mid-flight replies into the void */
    if (req->ops)
        hotplug_request_free(req);
}

HotplugService *
hotplug_request_get_service(HotplugRequest *req)
{
    return req->svc;
}

void
hotplug_request_return(HotplugRequest *req, JsonNode *ret)
{
    g_autoptr(JsonNode) owned = ret;

    if (!req->replied && !req->cancelled && req->cb.reply)
        req->cb.reply(req, ret, NULL, req->opaque);
    req->replied = TRUE;
    hotplug_request_free(req);
}

void
hotplug_request_fail(HotplugRequest *req, GError *error)
{
    g_autoptr(GError) owned = error;

    if (!req->replied && !req->cancelled && req->cb.reply)
        req->cb.reply(req, NULL, error, req->opaque);
    req->replied = TRUE;
    hotplug_request_free(req);
}

void
hotplug_request_event(HotplugRequest *req, const char *name, JsonNode *data)
{
    if (!req->cancelled && req->cb.event)
        req->cb.event(req, name, data, req->opaque);
}

static gboolean
hotplug_request_ops_settled(HotplugRequest *req)
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
hotplug_request_set_reply_func(HotplugRequest *req, HotplugRequestReplyFunc func, gpointer data,
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
hotplug_request_return_ops(HotplugRequest *req, JsonNode *ret)
{
    if (req->reply_func && JSON_NODE_HOLDS_OBJECT(ret))
        req->reply_func(req, json_node_get_object(ret), req->reply_data);
    hotplug_request_return(req, ret);
}

/* Reply once every op is settled. */
static void
hotplug_request_check_ops(HotplugRequest *req)
{
    g_autoptr(JsonBuilder) b = NULL;

    if (!hotplug_request_ops_settled(req))
        return;
    if (!req->multi) {
        hotplug_request_return_ops(req, hotplug_op_to_json(req->ops->pdata[0]));
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
    hotplug_request_return_ops(req, json_builder_get_root(b));
}

static void
hotplug_request_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    HotplugRequest *req = opaque;

    if (!g_ptr_array_find(req->ops, op, NULL))
        return;
    if (ev == HOTPLUG_OP_EV_ATTEMPT_RESULT || ev == HOTPLUG_OP_EV_ATTEMPT) {
        g_autoptr(JsonNode) data = hotplug_op_to_json(op);
        hotplug_request_event(req, ev == HOTPLUG_OP_EV_ATTEMPT ? "ATTEMPT" : "ATTEMPT_RESULT",
                              data);
    }
    if (ev == HOTPLUG_OP_EV_OUTCOME)
        hotplug_request_check_ops(req);
}

static void
hotplug_request_poll_cb(evutil_socket_t fd, short what, void *opaque)
{
    hotplug_request_check_ops(opaque);
}

static void
hotplug_request_wait(HotplugRequest *req, HotplugVm *vm, GPtrArray *ops, gboolean no_wait,
                     gboolean multi)
{
    static const HotplugVmListener l = {.op = hotplug_request_op_cb};

    req->multi = multi;
    req->vm = vm;
    req->no_wait = no_wait;
    req->ops = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_op_unref);
    for (guint i = 0; i < ops->len; i++)
        g_ptr_array_add(req->ops, hotplug_op_ref(ops->pdata[i]));
    if (hotplug_request_ops_settled(req)) {
        hotplug_request_check_ops(req);
        return;
    }
    req->vm_listener = hotplug_vm_add_listener(vm, &l, req);
    /* an attempt already under way was announced before we listened */
    for (guint i = 0; i < req->ops->len; i++) {
        HotplugOp *op = req->ops->pdata[i];
        if (!hotplug_op_is_final(op) && hotplug_op_get_attempts(op) > 0) {
            g_autoptr(JsonNode) data = hotplug_op_to_json(op);
            hotplug_request_event(req, "ATTEMPT", data);
        }
    }
    if (no_wait) {
        /* acceptance is a reply, not an op event: look every 10 ms */
        struct timeval tv = {0, 10000};
        req->poll = event_new(req->svc->base, -1, EV_PERSIST, hotplug_request_poll_cb, req);
        event_add(req->poll, &tv);
    }
}

void
hotplug_request_wait_ops(HotplugRequest *req, HotplugVm *vm, GPtrArray *ops, gboolean no_wait)
{
    hotplug_request_wait(req, vm, ops, no_wait, TRUE);
}

void
hotplug_request_wait_op(HotplugRequest *req, HotplugVm *vm, HotplugOp *op, gboolean no_wait)
{
    g_autoptr(GPtrArray) ops = g_ptr_array_new();

    g_ptr_array_add(ops, op);
    hotplug_request_wait(req, vm, ops, no_wait, FALSE);
}

/* ---- arguments ------------------------------------------------------------------ */

static gboolean
hotplug_request_bad_arg(HotplugRequest *req, const char *name, const char *what)
{
    hotplug_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                                          "argument '%s' %s", name, what));
    return FALSE;
}

gboolean
hotplug_request_arg_string(HotplugRequest *req, JsonObject *args, const char *name,
                           gboolean required, const char **out)
{
    JsonNode *n = json_object_get_member(args, name);

    *out = NULL;
    if (!n || JSON_NODE_HOLDS_NULL(n))
        return required ? hotplug_request_bad_arg(req, name, "is missing") : TRUE;
    if (!(*out = qmp_json_node_string(n)))
        return hotplug_request_bad_arg(req, name, "must be a string");
    if (required && !**out)
        return hotplug_request_bad_arg(req, name, "must not be empty");
    return TRUE;
}

gboolean
hotplug_request_arg_uint(HotplugRequest *req, JsonObject *args, const char *name,
                         gboolean required, guint64 max, guint64 *out)
{
    JsonNode *n = json_object_get_member(args, name);
    gint64 v;

    if (!n || JSON_NODE_HOLDS_NULL(n))
        return required ? hotplug_request_bad_arg(req, name, "is missing") : TRUE;
    if (!qmp_json_get_int(args, name, &v) || v < 0 || (guint64)v > max) {
        g_autofree char *what = g_strdup_printf("must be a whole number from 0 to %" G_GUINT64_FORMAT, max);
        return hotplug_request_bad_arg(req, name, what);
    }
    *out = (guint64)v;
    return TRUE;
}

gboolean
hotplug_request_arg_bool(HotplugRequest *req, JsonObject *args, const char *name, gboolean *out)
{
    JsonNode *n = json_object_get_member(args, name);

    if (!n || JSON_NODE_HOLDS_NULL(n))
        return TRUE;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
        return hotplug_request_bad_arg(req, name, "must be true or false");
    *out = json_node_get_boolean(n);
    return TRUE;
}

/* seconds (integer or fractional) as milliseconds */
static gboolean
hotplug_request_arg_seconds(HotplugRequest *req, JsonObject *args, const char *name, guint64 *ms)
{
    JsonNode *n = json_object_get_member(args, name);
    double v;

    if (!n || JSON_NODE_HOLDS_NULL(n))
        return TRUE;
    if (!JSON_NODE_HOLDS_VALUE(n) || (json_node_get_value_type(n) != G_TYPE_INT64 &&
                                      json_node_get_value_type(n) != G_TYPE_DOUBLE))
        return hotplug_request_bad_arg(req, name, "must be a number of seconds");
    v = json_node_get_value_type(n) == G_TYPE_INT64 ? (double)json_node_get_int(n)
                                                    : json_node_get_double(n);
    if (!isfinite(v) || v < 0 || v > (double)TIMEOUT_MAX_SECONDS)
        return hotplug_request_bad_arg(req, name, "must be from 0 to a year of seconds (31536000)");
    *ms = (guint64)llround(v * 1000.0);
    return TRUE;
}

gboolean
hotplug_request_unplug_args(HotplugRequest *req, JsonObject *args, HotplugUnplugOptions *opts,
                            gboolean *no_wait)
{
    guint64 retries;

    *opts = req->svc->opts.default_unplug;
    *no_wait = FALSE;
    retries = opts->retries;
    if (!hotplug_request_arg_seconds(req, args, "timeout", &opts->timeout_ms) ||
        !hotplug_request_arg_uint(req, args, "retry", FALSE, 1000, &retries) ||
        !hotplug_request_arg_seconds(req, args, "retry-interval", &opts->retry_interval_ms) ||
        !hotplug_request_arg_bool(req, args, "no-wait", no_wait))
        return FALSE;
    opts->retries = (guint)retries;
    return TRUE;
}

HotplugVm *
hotplug_request_get_vm(HotplugRequest *req, JsonObject *args)
{
    const char *name;
    HotplugVm *vm;

    if (!hotplug_request_arg_string(req, args, "vm", TRUE, &name))
        return NULL;
    vm = hotplug_service_get_vm(req->svc, name);
    if (!vm)
        hotplug_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_NOT_FOUND,
                                              "no VM named '%s' (see 'vm list')", name));
    return vm;
}

/* ---- the base commands -------------------------------------------------------------- */

static void
hotplug_cmd_vm_list(HotplugService *svc, HotplugRequest *req, JsonObject *args)
{
    g_autoptr(GPtrArray) names = hotplug_service_list_vms(svc);
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_array(b);
    for (guint i = 0; i < names->len; i++) {
        HotplugServiceVm *sv = g_hash_table_lookup(svc->vms, names->pdata[i]);
        const GError *err = qmp_conn_get_last_error(sv->conn);
        QmpConnState st = qmp_conn_get_state(sv->conn);
        g_autoptr(GPtrArray) ops = hotplug_vm_list_ops(sv->vm);

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, sv->name);
        json_builder_set_member_name(b, "qmp");
        json_builder_add_string_value(b, sv->path);
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
    hotplug_request_return(req, json_builder_get_root(b));
}

static void
hotplug_cmd_vm_add(HotplugService *svc, HotplugRequest *req, JsonObject *args)
{
    const char *name, *qmp;
    GError *error = NULL;
    g_autoptr(JsonObject) empty = json_object_new();

    if (!hotplug_request_arg_string(req, args, "name", TRUE, &name) ||
        !hotplug_request_arg_string(req, args, "qmp", TRUE, &qmp))
        return;
    if (!hotplug_service_add_vm(svc, name, qmp, &error)) {
        hotplug_request_fail(req, error);
        return;
    }
    /* json_node_init_object takes its own reference on the object */
    hotplug_request_return(req, json_node_init_object(json_node_alloc(), empty));
}

static void
hotplug_cmd_vm_remove(HotplugService *svc, HotplugRequest *req, JsonObject *args)
{
    const char *name;
    GError *error = NULL;
    g_autoptr(JsonObject) empty = json_object_new();

    if (!hotplug_request_arg_string(req, args, "name", TRUE, &name))
        return;
    if (!hotplug_service_remove_vm(svc, name, &error)) {
        hotplug_request_fail(req, error);
        return;
    }
    /* json_node_init_object takes its own reference on the object */
    hotplug_request_return(req, json_node_init_object(json_node_alloc(), empty));
}

static void
hotplug_cmd_vm_info_cb(QmpConn *conn, QmpCaps *caps, const GError *error, gpointer opaque)
{
    HotplugRequest *req = opaque;
    JsonNode *ret;

    if (error) {
        hotplug_request_fail(req, g_error_copy(error));
        return;
    }
    ret = qmp_caps_to_json(caps);
    json_object_set_string_member(json_node_get_object(ret), "vm",
                                  hotplug_vm_get_name(req->vm));
    qmp_caps_free(caps);
    req->vm = NULL;
    hotplug_request_return(req, ret);
}

static void
hotplug_cmd_vm_info(HotplugService *svc, HotplugRequest *req, JsonObject *args)
{
    HotplugVm *vm = hotplug_request_get_vm(req, args);
    GError *error = NULL;

    if (!vm)
        return;
    req->vm = vm;
    if (!qmp_caps_probe(hotplug_vm_get_conn(vm), hotplug_cmd_vm_info_cb, req, &error)) {
        req->vm = NULL;
        hotplug_request_fail(req, error);
    }
}

/* "props": an object of strings, or an array of "PROP=VALUE" strings */
static char **
hotplug_cmd_props(HotplugRequest *req, JsonObject *args)
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
                hotplug_request_bad_arg(req, "props", "values must be strings or numbers");
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
                hotplug_request_bad_arg(req, "props", "must hold PROP=VALUE strings");
                return NULL;
            }
            g_ptr_array_add(out, g_strdup(text));
        }
    } else if (n && !JSON_NODE_HOLDS_NULL(n)) {
        g_ptr_array_unref(out);
        hotplug_request_bad_arg(req, "props", "must be an object or an array");
        return NULL;
    }
    g_ptr_array_set_free_func(out, NULL);
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, FALSE);
}

static void
hotplug_cmd_device_add(HotplugService *svc, HotplugRequest *req, JsonObject *args)
{
    HotplugVm *vm = hotplug_request_get_vm(req, args);
    g_auto(GStrv) props = NULL;
    g_autoptr(HotplugOp) op = NULL;
    const char *driver, *id;
    GError *error = NULL;

    if (!vm || !hotplug_request_arg_string(req, args, "driver", TRUE, &driver) ||
        !hotplug_request_arg_string(req, args, "id", TRUE, &id) ||
        !(props = hotplug_cmd_props(req, args)))
        return;
    op = hotplug_vm_plug_device(vm, driver, id, (const char *const *)props, &error);
    if (!op) {
        hotplug_request_fail(req, error);
        return;
    }
    hotplug_request_wait_op(req, vm, op, FALSE);
}

static void
hotplug_cmd_device_del(HotplugService *svc, HotplugRequest *req, JsonObject *args)
{
    HotplugVm *vm = hotplug_request_get_vm(req, args);
    g_autoptr(HotplugOp) op = NULL;
    HotplugUnplugOptions opts;
    gboolean no_wait;
    const char *id;
    GError *error = NULL;

    if (!vm || !hotplug_request_arg_string(req, args, "id", TRUE, &id) ||
        !hotplug_request_unplug_args(req, args, &opts, &no_wait))
        return;
    op = hotplug_vm_unplug(vm, HOTPLUG_KIND_DEVICE, id, &opts, NULL, &error);
    if (!op) {
        hotplug_request_fail(req, error);
        return;
    }
    hotplug_request_wait_op(req, vm, op, no_wait);
}

static void
hotplug_cmd_device_list_cb(HotplugVm *vm, JsonNode *devices, const GError *error,
                           gpointer opaque)
{
    HotplugRequest *req = opaque;

    if (error)
        hotplug_request_fail(req, g_error_copy(error));
    else
        hotplug_request_return(req, json_node_ref(devices));
}

static void
hotplug_cmd_device_list(HotplugService *svc, HotplugRequest *req, JsonObject *args)
{
    HotplugVm *vm = hotplug_request_get_vm(req, args);
    GError *error = NULL;

    if (vm && !hotplug_vm_query_devices(vm, hotplug_cmd_device_list_cb, req, &error))
        hotplug_request_fail(req, error);
}

static void
hotplug_cmd_ops(HotplugService *svc, HotplugRequest *req, JsonObject *args)
{
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    const char *only;

    if (!hotplug_request_arg_string(req, args, "vm", FALSE, &only))
        return;
    if (only && !hotplug_service_get_vm(svc, only)) {
        hotplug_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_NOT_FOUND,
                                              "no VM named '%s'", only));
        return;
    }
    names = hotplug_service_list_vms(svc);
    json_builder_begin_array(b);
    for (guint i = 0; i < names->len; i++) {
        HotplugVm *vm = hotplug_service_get_vm(svc, names->pdata[i]);
        g_autoptr(GPtrArray) ops = NULL;

        if (only && !g_str_equal(only, names->pdata[i]))
            continue;
        ops = hotplug_vm_list_ops(vm);
        for (guint j = 0; j < ops->len; j++) {
            HotplugOp *op = ops->pdata[j];
            JsonNode *n = hotplug_op_to_json(op);
            gint64 left = hotplug_op_get_remaining_ms(op);
            if (left >= 0)
                json_object_set_int_member(json_node_get_object(n), "deadline_in_ms", left);
            json_builder_add_value(b, n);
        }
    }
    json_builder_end_array(b);
    hotplug_request_return(req, json_builder_get_root(b));
}

#define UNPLUG_ARGS "timeout", "retry", "retry-interval", "no-wait"
static const char *const hotplug_args_none[] = {NULL};
static const char *const hotplug_args_vm[] = {"vm", NULL};
static const char *const hotplug_args_vm_add[] = {"name", "qmp", NULL};
static const char *const hotplug_args_vm_remove[] = {"name", NULL};
static const char *const hotplug_args_device_add[] = {"vm", "driver", "id", "props", NULL};
static const char *const hotplug_args_device_del[] = {"vm", "id", UNPLUG_ARGS, NULL};

static const HotplugCommand hotplug_service_base_commands[] = {
    {"vm-list", hotplug_cmd_vm_list, hotplug_args_none},
    {"vm-add", hotplug_cmd_vm_add, hotplug_args_vm_add},
    {"vm-remove", hotplug_cmd_vm_remove, hotplug_args_vm_remove},
    {"vm-info", hotplug_cmd_vm_info, hotplug_args_vm},
    {"device-add", hotplug_cmd_device_add, hotplug_args_device_add},
    {"device-del", hotplug_cmd_device_del, hotplug_args_device_del},
    {"device-list", hotplug_cmd_device_list, hotplug_args_vm},
    {"ops", hotplug_cmd_ops, hotplug_args_vm},
    {NULL, NULL, NULL},
};
