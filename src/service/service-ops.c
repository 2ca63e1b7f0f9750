/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's "ops" command: the operations in flight and recently
 * finished, of every VM or of one. */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "service-priv.h"

static void
service_cmd_ops(Service *svc, ServiceRequest *req, JsonObject *args)
{
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    const char *only;

    if (!service_request_arg_string(req, args, "vm", FALSE, &only))
        return;
    if (only && !service_get_vm(svc, only)) {
        service_request_fail(
            req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_NOT_FOUND, "no VM named '%s'", only));
        return;
    }
    names = service_list_vms(svc);
    json_builder_begin_array(b);
    for (guint i = 0; i < names->len; i++) {
        HotplugVm *vm = service_get_vm(svc, names->pdata[i]);
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
    service_request_return(req, json_builder_get_root(b));
}

static const char *const service_args_ops[] = {"vm", NULL};

const ServiceCommand service_ops_commands[] = {
    {"ops", service_cmd_ops, service_args_ops},
    {NULL, NULL, NULL},
};
