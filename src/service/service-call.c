/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Commands that ask QEMU before they act (ServiceCall): what they were
 * asked, their VM by name while QEMU answers, how a lost connection
 * fails them; and the "hint" a rejected operation's reply carries. */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "qmp-json.h"
#include "service-priv.h"

ServiceCall *
service_call_new(Service *svc, ServiceRequest *req, HotplugVm *vm)
{
    ServiceCall *c = g_new0(ServiceCall, 1);

    c->svc = svc;
    c->req = req;
    c->vm = vm;
    c->name = g_strdup(hotplug_vm_get_name(vm));
    c->ids = g_array_new(FALSE, FALSE, sizeof(guint));
    c->node = -1;
    return c;
}

void
service_call_free(ServiceCall *c)
{
    if (!c)
        return;
    g_array_unref(c->ids);
    if (c->devices)
        json_node_unref(c->devices);
    if (c->result)
        json_node_unref(c->result);
    g_free(c->name);
    g_free(c->id);
    g_free(c);
}

HotplugVm *
service_call_vm(ServiceCall *c)
{
    HotplugVm *vm = service_get_vm(c->svc, c->name);

    if (vm != c->vm) {
        service_request_fail(c->req,
                             g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE,
                                         "VM %s was removed while its command ran", c->name));
        return NULL;
    }
    return vm;
}

/* A query failed: QEMU's refusal as it is; a lost connection (the VM went
 * away, was removed, or the service is ending) as VmGone naming the VM. */
static void
service_call_fail(ServiceCall *c, const GError *error)
{
    if (error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED)
        service_request_fail(c->req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE,
                                                 "VM %s went away while its command waited "
                                                 "for QEMU (%s)",
                                                 c->name, error->message));
    else
        service_request_fail(c->req, g_error_copy(error));
}

ServiceCall *
service_call_for_vm(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);

    return vm ? service_call_new(svc, req, vm) : NULL;
}

void
service_call_started(ServiceCall *c, gboolean ok, GError **error)
{
    if (ok)
        return;
    service_request_fail(c->req, g_steal_pointer(error));
    service_call_free(c);
}

void
service_call_execute(ServiceCall *c, const char *cmd, JsonNode *args, QmpReplyFunc done)
{
    GError *error = NULL;

    service_call_started(
        c, qmp_conn_execute(hotplug_vm_get_conn(c->vm), cmd, args, done, c, &error), &error);
}

void
service_call_reply(ServiceCall *c, JsonNode *ret, const GError *error)
{
    if (error) {
        service_request_fail(c->req, g_error_copy(error));
        return;
    }
    json_object_set_string_member(json_node_get_object(ret), "vm", c->name);
    service_request_return(c->req, ret);
}

HotplugVm *
service_call_answered(ServiceCall *c, const GError *error)
{
    if (error) {
        service_call_fail(c, error);
        return NULL;
    }
    return service_call_vm(c);
}

gboolean
service_call_lost(ServiceCall *c, JsonNode *ret, const GError *error)
{
    if (!error || ret)
        return FALSE;
    service_call_fail(c, error);
    return TRUE;
}

/* ---- what the replies of the operations carry ------------------------------- */

typedef struct {
    ServiceHintFunc hint;
    JsonObject *extra; /* members for the reply, or NULL */
} ServiceReplyAdd;

static void
service_reply_add_free(ServiceReplyAdd *a)
{
    if (a->extra)
        json_object_unref(a->extra);
    g_free(a);
}

/* A rejected op's result gets "hint": what QEMU's error means, for people. */
static void
service_add_hint(JsonObject *result, ServiceHintFunc hint)
{
    JsonObject *err = qmp_json_get_object(result, "error");
    g_autoptr(GError) e = NULL;
    const char *text;

    if (!hint || !result || !err ||
        g_strcmp0(qmp_json_get_string(result, "outcome"), "rejected") != 0)
        return;
    e = service_error_from_class(qmp_json_get_string(err, "class"),
                                 qmp_json_get_string(err, "desc"));
    text = hint(e);
    if (text)
        json_object_set_string_member(result, "hint", text);
}

static void
service_reply_add_cb(ServiceRequest *req, JsonObject *reply, gpointer data)
{
    ServiceReplyAdd *a = data;
    JsonArray *ops = qmp_json_get_array(reply, "ops");
    JsonObjectIter it;
    const char *name;
    JsonNode *value;

    if (ops) {
        for (guint i = 0; i < json_array_get_length(ops); i++)
            service_add_hint(qmp_json_node_object(json_array_get_element(ops, i)), a->hint);
    } else {
        service_add_hint(reply, a->hint);
    }
    if (!a->extra)
        return;
    json_object_iter_init(&it, a->extra);
    while (json_object_iter_next(&it, &name, &value))
        json_object_set_member(reply, name, json_node_copy(value));
}

void
service_request_set_hint(ServiceRequest *req, ServiceHintFunc hint, JsonObject *extra)
{
    ServiceReplyAdd *a = g_new0(ServiceReplyAdd, 1);

    a->hint = hint;
    a->extra = extra;
    service_request_set_reply_func(req, service_reply_add_cb, a,
                                   (GDestroyNotify)service_reply_add_free);
}
