/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The arguments of the service's commands: reading and checking each
 * JSON argument, the unplug options every unplug command takes, and the
 * VM a command names; a bad one is the request's InvalidArgument reply. */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include <math.h>

#include "qmp-json.h"
#include "service-priv.h"

#define SERVICE_NUMA_NODE_MAX 65535

gboolean
service_request_bad_arg(ServiceRequest *req, const char *name, const char *what)
{
    service_request_fail(
        req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "argument '%s' %s", name, what));
    return FALSE;
}

gboolean
service_request_arg_string(ServiceRequest *req, JsonObject *args, const char *name,
                           gboolean required, const char **out)
{
    JsonNode *n = json_object_get_member(args, name);

    *out = NULL;
    if (!n || JSON_NODE_HOLDS_NULL(n))
        return required ? service_request_bad_arg(req, name, "is missing") : TRUE;
    if (!(*out = qmp_json_node_string(n)))
        return service_request_bad_arg(req, name, "must be a string");
    if (required && !**out)
        return service_request_bad_arg(req, name, "must not be empty");
    return TRUE;
}

gboolean
service_request_arg_uint(ServiceRequest *req, JsonObject *args, const char *name, gboolean required,
                         guint64 max, guint64 *out)
{
    JsonNode *n = json_object_get_member(args, name);
    gint64 v;

    if (!n || JSON_NODE_HOLDS_NULL(n))
        return required ? service_request_bad_arg(req, name, "is missing") : TRUE;
    if (!qmp_json_get_int(args, name, &v) || v < 0 || (guint64)v > max) {
        g_autofree char *what =
            g_strdup_printf("must be a whole number from 0 to %" G_GUINT64_FORMAT, max);
        return service_request_bad_arg(req, name, what);
    }
    *out = (guint64)v;
    return TRUE;
}

gboolean
service_request_arg_bool(ServiceRequest *req, JsonObject *args, const char *name, gboolean *out)
{
    JsonNode *n = json_object_get_member(args, name);

    if (!n || JSON_NODE_HOLDS_NULL(n))
        return TRUE;
    if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
        return service_request_bad_arg(req, name, "must be true or false");
    *out = json_node_get_boolean(n);
    return TRUE;
}

/* seconds (integer or fractional) as milliseconds */
static gboolean
service_request_arg_seconds(ServiceRequest *req, JsonObject *args, const char *name, guint *ms)
{
    JsonNode *n = json_object_get_member(args, name);
    double v;

    if (!n || JSON_NODE_HOLDS_NULL(n))
        return TRUE;
    if (!JSON_NODE_HOLDS_VALUE(n) || (json_node_get_value_type(n) != G_TYPE_INT64 &&
                                      json_node_get_value_type(n) != G_TYPE_DOUBLE))
        return service_request_bad_arg(req, name, "must be a number of seconds");
    v = json_node_get_value_type(n) == G_TYPE_INT64 ? (double)json_node_get_int(n)
                                                    : json_node_get_double(n);
    if (!isfinite(v) || v < 0 || v > 86400.0 * 365)
        return service_request_bad_arg(req, name, "must be from 0 to a year of seconds");
    *ms = (guint)llround(v * 1000.0);
    return TRUE;
}

gboolean
service_request_unplug_args(ServiceRequest *req, JsonObject *args, HotplugUnplugOptions *opts,
                            gboolean *no_wait)
{
    guint64 retries;

    *opts = service_get_options(service_request_get_service(req))->default_unplug;
    *no_wait = FALSE;
    retries = opts->retries;
    if (!service_request_arg_seconds(req, args, "timeout", &opts->timeout_ms) ||
        !service_request_arg_uint(req, args, "retry", FALSE, 1000, &retries) ||
        !service_request_arg_seconds(req, args, "retry-interval", &opts->retry_interval_ms) ||
        !service_request_arg_bool(req, args, "no-wait", no_wait))
        return FALSE;
    opts->retries = (guint)retries;
    return TRUE;
}

HotplugVm *
service_request_get_vm(ServiceRequest *req, JsonObject *args)
{
    const char *name;
    HotplugVm *vm;

    if (!service_request_arg_string(req, args, "vm", TRUE, &name))
        return NULL;
    vm = service_get_vm(service_request_get_service(req), name);
    if (!vm)
        service_request_fail(req, g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_NOT_FOUND,
                                              "no VM named '%s' (see 'vm list')", name));
    return vm;
}

gboolean
service_request_arg_node(ServiceRequest *req, JsonObject *args, gint64 *node)
{
    guint64 v = G_MAXUINT64;

    if (!service_request_arg_uint(req, args, "node", FALSE, SERVICE_NUMA_NODE_MAX, &v))
        return FALSE;
    *node = v == G_MAXUINT64 ? -1 : (gint64)v;
    return TRUE;
}
