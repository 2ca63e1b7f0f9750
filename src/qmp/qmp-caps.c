/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What one QEMU can do: its version, QMP schema, run state and hotpluggable
 * CPUs, probed once per connection. */
#define G_LOG_DOMAIN "qmp"
#include "config.h"

#include <string.h>

#include "qmp-caps.h"
#include "qmp-json.h"

struct QmpCaps {
    int major, minor, micro;
    char *package;
    char *machine_type;
    char *run_state;
    gboolean cpu_hotplug;
    GHashTable *commands;
    GHashTable *events;
    GPtrArray *list;  /* computed on demand */
};

QmpCaps *
qmp_caps_new(void)
{
    QmpCaps *caps = g_new0(QmpCaps, 1);

    caps->commands = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    caps->events = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return caps;
}

void
qmp_caps_free(QmpCaps *caps)
{
    if (!caps)
        return;
    g_free(caps->package);
    g_free(caps->machine_type);
    g_free(caps->run_state);
    g_hash_table_unref(caps->commands);
    g_hash_table_unref(caps->events);
    if (caps->list)
        g_ptr_array_unref(caps->list);
    g_free(caps);
}

void
qmp_caps_set_schema(QmpCaps *caps, JsonNode *schema_ret)
{
    JsonArray *arr = qmp_json_node_array(schema_ret);

    /* the list is computed from the schema: compute it again */
    if (caps->list) {
        g_ptr_array_unref(caps->list);
        caps->list = NULL;
    }

    for (guint i = 0; arr && i < json_array_get_length(arr); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(arr, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *meta = qmp_json_get_string(e, "meta-type");

        if (!name || !meta)
            continue;
        if (g_str_equal(meta, "command"))
            g_hash_table_add(caps->commands, g_strdup(name));
        else if (g_str_equal(meta, "event"))
            g_hash_table_add(caps->events, g_strdup(name));
    }
}

gboolean
qmp_caps_has_command(const QmpCaps *caps, const char *name)
{
    return g_hash_table_contains(caps->commands, name);
}

gboolean
qmp_caps_has_event(const QmpCaps *caps, const char *name)
{
    return g_hash_table_contains(caps->events, name);
}

int qmp_caps_version_major(const QmpCaps *caps) { return caps->major; }
int qmp_caps_version_minor(const QmpCaps *caps) { return caps->minor; }
int qmp_caps_version_micro(const QmpCaps *caps) { return caps->micro; }
const char *qmp_caps_package(const QmpCaps *caps) { return caps->package; }
const char *qmp_caps_machine_type(const QmpCaps *caps) { return caps->machine_type; }
const char *qmp_caps_run_state(const QmpCaps *caps) { return caps->run_state; }
gboolean qmp_caps_cpu_hotplug(const QmpCaps *caps) { return caps->cpu_hotplug; }

static int
qmp_caps_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *const *
qmp_caps_list(QmpCaps *caps)
{
    static const struct {
        const char *cap;
        gboolean is_event;
        const char *name;
    } by_schema[] = {
        {"device-unplug-guest-error-event", TRUE, "DEVICE_UNPLUG_GUEST_ERROR"},
        {"mem-unplug-error-event", TRUE, "MEM_UNPLUG_ERROR"},
        {"acpi-device-ost-event", TRUE, "ACPI_DEVICE_OST"},
        {"memory-hotplug", FALSE, "query-memory-devices"},
        {"blockdev", FALSE, "blockdev-add"},
        {"iothreads", FALSE, "query-iothreads"},
    };

    if (caps->list)
        return (const char *const *)caps->list->pdata;
    caps->list = g_ptr_array_new();
    if (caps->cpu_hotplug)
        g_ptr_array_add(caps->list, (gpointer) "cpu-hotplug");
    for (guint i = 0; i < G_N_ELEMENTS(by_schema); i++) {
        GHashTable *set = by_schema[i].is_event ? caps->events : caps->commands;
        if (g_hash_table_contains(set, by_schema[i].name))
            g_ptr_array_add(caps->list, (gpointer)by_schema[i].cap);
    }
    /* QMP device_add drops iothread-vq-mapping before QEMU 9.2 */
    if (caps->major > 9 || (caps->major == 9 && caps->minor >= 2))
        g_ptr_array_add(caps->list, (gpointer) "iothread-vq-mapping");
    g_ptr_array_sort(caps->list, qmp_caps_name_cmp);
    g_ptr_array_add(caps->list, NULL);
    return (const char *const *)caps->list->pdata;
}

JsonNode *
qmp_caps_to_json(QmpCaps *caps)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    const char *const *list = qmp_caps_list(caps);

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "version");
    {
        g_autofree char *version = g_strdup_printf("%d.%d.%d", caps->major, caps->minor,
                                                   caps->micro);
        json_builder_add_string_value(b, version);
    }
    json_builder_set_member_name(b, "package");
    json_builder_add_string_value(b, caps->package ? caps->package : "");
    json_builder_set_member_name(b, "machine");
    json_builder_add_string_value(b, caps->machine_type ? caps->machine_type : "");
    json_builder_set_member_name(b, "status");
    json_builder_add_string_value(b, caps->run_state ? caps->run_state : "");
    json_builder_set_member_name(b, "capabilities");
    json_builder_begin_array(b);
    for (; *list; list++)
        json_builder_add_string_value(b, *list);
    json_builder_end_array(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

/* ---- the probe ---------------------------------------------------- */

typedef struct {
    QmpCaps *caps;
    QmpCapsFunc done;
    gpointer opaque;
    guint pending;
    GError *error;
} QmpCapsProbe;

static void
qmp_caps_probe_step_done(QmpConn *conn, QmpCapsProbe *p)
{
    if (--p->pending)
        return;
    if (p->error) {
        qmp_caps_free(p->caps);
        p->done(conn, NULL, p->error, p->opaque);
        g_error_free(p->error);
    } else {
        p->done(conn, p->caps, NULL, p->opaque);
    }
    g_free(p);
}

static void
qmp_caps_fail(QmpCapsProbe *p, const char *what, const GError *error)
{
    if (!p->error)
        p->error = g_error_new(error->domain, error->code, "%s: %s", what, error->message);
}

static void
qmp_caps_version_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    QmpCapsProbe *p = opaque;

    if (error) {
        qmp_caps_fail(p, "query-version", error);
    } else {
        JsonObject *o = qmp_json_node_object(ret);
        JsonObject *q = qmp_json_get_object(o, "qemu");
        p->caps->major = (int)qmp_json_get_int_default(q, "major", 0);
        p->caps->minor = (int)qmp_json_get_int_default(q, "minor", 0);
        p->caps->micro = (int)qmp_json_get_int_default(q, "micro", 0);
        p->caps->package = g_strdup(qmp_json_get_string(o, "package") ?: "");
    }
    qmp_caps_probe_step_done(conn, p);
}

static void
qmp_caps_schema_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    QmpCapsProbe *p = opaque;

    if (error)
        qmp_caps_fail(p, "query-qmp-schema", error);
    else
        qmp_caps_set_schema(p->caps, ret);
    qmp_caps_probe_step_done(conn, p);
}

static void
qmp_caps_status_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    QmpCapsProbe *p = opaque;

    if (error)
        qmp_caps_fail(p, "query-status", error);
    else
        p->caps->run_state = g_strdup(qmp_json_get_string(qmp_json_node_object(ret), "status"));
    qmp_caps_probe_step_done(conn, p);
}

static void
qmp_caps_machine_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    QmpCapsProbe *p = opaque;
    const char *type = error ? NULL : qmp_json_node_string(ret);

    /* "pc-i440fx-7.2-machine" -> "pc-i440fx-7.2"; not fatal when absent */
    if (type) {
        gsize n = strlen(type);
        if (g_str_has_suffix(type, "-machine"))
            n -= strlen("-machine");
        p->caps->machine_type = g_strndup(type, n);
    }
    qmp_caps_probe_step_done(conn, p);
}

static void
qmp_caps_cpus_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    QmpCapsProbe *p = opaque;

    /* machines without CPU hotplug answer with an error: a fact, not a failure */
    p->caps->cpu_hotplug = !error && qmp_json_node_array(ret) != NULL;
    qmp_caps_probe_step_done(conn, p);
}

static JsonNode *
qmp_caps_qom_get_args(const char *path, const char *property)
{
    JsonObject *o = json_object_new();
    JsonNode *n;

    json_object_set_string_member(o, "path", path);
    json_object_set_string_member(o, "property", property);
    n = json_node_init_object(json_node_alloc(), o);
    json_object_unref(o);
    return n;
}

gboolean
qmp_caps_probe(QmpConn *conn, QmpCapsFunc done, gpointer opaque, GError **error)
{
    static const struct {
        const char *cmd;
        QmpReplyFunc cb;
    } steps[] = {
        {"query-version", qmp_caps_version_cb},
        {"query-qmp-schema", qmp_caps_schema_cb},
        {"query-status", qmp_caps_status_cb},
        {"qom-get", qmp_caps_machine_cb},
        {"query-hotpluggable-cpus", qmp_caps_cpus_cb},
    };
    QmpCapsProbe *p = g_new0(QmpCapsProbe, 1);

    p->caps = qmp_caps_new();
    p->done = done;
    p->opaque = opaque;
    /* one extra count so a synchronous failure mid-way cannot finish early */
    p->pending = 1;
    for (guint i = 0; i < G_N_ELEMENTS(steps); i++) {
        g_autoptr(GError) local = NULL;
        JsonNode *args = g_str_equal(steps[i].cmd, "qom-get")
                             ? qmp_caps_qom_get_args("/machine", "type")
                             : NULL;
        if (!qmp_conn_execute(conn, steps[i].cmd, args, steps[i].cb, p, &local)) {
            if (p->pending == 1) {
                qmp_caps_free(p->caps);
                g_free(p);
                g_propagate_error(error, g_steal_pointer(&local));
                return FALSE;
            }
            /* report it through done, after the ones already sent */
            qmp_caps_fail(p, steps[i].cmd, local);
            break;
        }
        p->pending++;
    }
    qmp_caps_probe_step_done(conn, p);
    return TRUE;
}
