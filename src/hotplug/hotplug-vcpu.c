/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vCPU hot(un)plug: QEMU's hotpluggable CPU entities, choosing which to
 * plug or unplug, and the operations that do it. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <string.h>

#include "hotplug-vcpu.h"
#include "qmp-json.h"

#define PERIPHERAL "/machine/peripheral/"
#define PERIPHERAL_ANON "/machine/peripheral-anon/"

struct HotplugCpuEntity {
    guint index;
    char *type;
    guint vcpus_count;
    guint first_vcpu;
    JsonObject *props;  /* as QEMU reported them */
    char *qom_path;     /* NULL: free */
    char *device_id;
    gboolean boot;
    gint64 *thread_ids; /* vcpus_count of them, -1 unknown */
};

struct HotplugCpuSlots {
    GPtrArray *entities; /* HotplugCpuEntity, by index */
    guint present;
    guint max;
};

/* Topology props, outermost first, and their letters in device ids. */
static const struct {
    const char *prop;
    const char *abbr;
} hotplug_cpu_topo[] = {
    {"drawer-id", "dr"}, {"book-id", "b"},   {"socket-id", "s"},
    {"die-id", "d"},     {"cluster-id", "cl"}, {"core-id", "c"},
    {"thread-id", "t"},
};

static void
hotplug_cpu_entity_free(HotplugCpuEntity *e)
{
    g_free(e->type);
    if (e->props)
        json_object_unref(e->props);
    g_free(e->qom_path);
    g_free(e->device_id);
    g_free(e->thread_ids);
    g_free(e);
}

void
hotplug_cpu_slots_free(HotplugCpuSlots *s)
{
    if (!s)
        return;
    g_ptr_array_unref(s->entities);
    g_free(s);
}

static char *
hotplug_cpu_make_id(const HotplugCpuEntity *e)
{
    GString *id = g_string_new("cpu");
    gboolean any = FALSE;

    for (guint i = 0; i < G_N_ELEMENTS(hotplug_cpu_topo); i++) {
        gint64 v;
        if (!qmp_json_get_int(e->props, hotplug_cpu_topo[i].prop, &v))
            continue;
        g_string_append_printf(id, "-%s%" G_GINT64_FORMAT, hotplug_cpu_topo[i].abbr, v);
        any = TRUE;
    }
    if (!any)
        g_string_append_printf(id, "-v%u", e->first_vcpu);
    return g_string_free(id, FALSE);
}

/* The entity a query-cpus-fast entry belongs to: same qom-path, or a
 * thread below it (pseries: .../core1/thread[0]). */
static HotplugCpuEntity *
hotplug_cpu_slots_owner(HotplugCpuSlots *s, const char *path)
{
    for (guint i = 0; path && i < s->entities->len; i++) {
        HotplugCpuEntity *e = s->entities->pdata[i];
        gsize n;
        if (!e->qom_path)
            continue;
        n = strlen(e->qom_path);
        if (g_str_equal(path, e->qom_path) ||
            (g_str_has_prefix(path, e->qom_path) && path[n] == '/'))
            return e;
    }
    return NULL;
}

static void
hotplug_cpu_slots_join(HotplugCpuSlots *s, JsonNode *cpus_fast)
{
    JsonArray *list = qmp_json_node_array(cpus_fast);
    g_autofree guint *seen = g_new0(guint, s->entities->len);

    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *c = qmp_json_node_object(json_array_get_element(list, i));
        HotplugCpuEntity *e = hotplug_cpu_slots_owner(s, qmp_json_get_string(c, "qom-path"));
        gint64 tid, idx;
        guint pos;

        if (!e || !qmp_json_get_int(c, "thread-id", &tid))
            continue;
        /* cpu-index places a thread within its entity; else arrival order */
        if (qmp_json_get_int(c, "cpu-index", &idx) && idx >= e->first_vcpu &&
            idx < (gint64)(e->first_vcpu + e->vcpus_count))
            pos = (guint)(idx - e->first_vcpu);
        else
            pos = seen[e->index];
        if (pos < e->vcpus_count)
            e->thread_ids[pos] = tid;
        seen[e->index]++;
    }
}

HotplugCpuSlots *
hotplug_cpu_slots_new(JsonNode *hotpluggable, JsonNode *cpus_fast, GError **error)
{
    JsonArray *list = qmp_json_node_array(hotpluggable);
    g_autoptr(HotplugCpuSlots) s = g_new0(HotplugCpuSlots, 1);
    guint n = list ? json_array_get_length(list) : 0;
    guint next_vcpu = 0;

    s->entities = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_cpu_entity_free);
    if (!list) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "query-hotpluggable-cpus did not return a list");
        return NULL;
    }
    /* QEMU lists its possible CPUs last first */
    for (guint k = 0; k < n; k++) {
        JsonObject *o = qmp_json_node_object(json_array_get_element(list, n - 1 - k));
        JsonObject *props = qmp_json_get_object(o, "props");
        const char *type = qmp_json_get_string(o, "type");
        gint64 count = qmp_json_get_int_default(o, "vcpus-count", 1);
        HotplugCpuEntity *e;

        if (!o || !type || !props || count < 1 || count > 4096) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                        "query-hotpluggable-cpus: entry %u lacks type, props or vcpus-count", k);
            return NULL;
        }
        e = g_new0(HotplugCpuEntity, 1);
        e->index = k;
        e->type = g_strdup(type);
        e->vcpus_count = (guint)count;
        e->first_vcpu = next_vcpu;
        next_vcpu += e->vcpus_count;
        e->props = json_object_ref(props);
        e->qom_path = g_strdup(qmp_json_get_string(o, "qom-path"));
        e->thread_ids = g_new(gint64, e->vcpus_count);
        for (guint t = 0; t < e->vcpus_count; t++)
            e->thread_ids[t] = -1;
        if (!e->qom_path) {
            e->device_id = hotplug_cpu_make_id(e);
        } else {
            const char *rest = e->qom_path + strlen(PERIPHERAL);
            s->present += e->vcpus_count;
            if (g_str_has_prefix(e->qom_path, PERIPHERAL) && *rest && !strchr(rest, '/'))
                e->device_id = g_strdup(rest);
            else if (!g_str_has_prefix(e->qom_path, PERIPHERAL_ANON))
                e->boot = TRUE;
        }
        g_ptr_array_add(s->entities, e);
    }
    if (n == 0) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                    "this machine has no hotpluggable CPUs (query-hotpluggable-cpus is empty)");
        return NULL;
    }
    s->max = next_vcpu;
    hotplug_cpu_slots_join(s, cpus_fast);
    return g_steal_pointer(&s);
}

guint
hotplug_cpu_slots_n_entities(const HotplugCpuSlots *s)
{
    return s->entities->len;
}

const HotplugCpuEntity *
hotplug_cpu_slots_entity(const HotplugCpuSlots *s, guint i)
{
    return i < s->entities->len ? s->entities->pdata[i] : NULL;
}

guint
hotplug_cpu_slots_present_vcpus(const HotplugCpuSlots *s)
{
    return s->present;
}

guint
hotplug_cpu_slots_max_vcpus(const HotplugCpuSlots *s)
{
    return s->max;
}

const HotplugCpuEntity *
hotplug_cpu_slots_find_vcpu(const HotplugCpuSlots *s, guint vcpu)
{
    for (guint i = 0; i < s->entities->len; i++) {
        const HotplugCpuEntity *e = s->entities->pdata[i];
        if (vcpu >= e->first_vcpu && vcpu < e->first_vcpu + e->vcpus_count)
            return e;
    }
    return NULL;
}

const HotplugCpuEntity *
hotplug_cpu_slots_find_device(const HotplugCpuSlots *s, const char *id)
{
    for (guint i = 0; id && i < s->entities->len; i++) {
        const HotplugCpuEntity *e = s->entities->pdata[i];
        if (e->device_id && g_str_equal(e->device_id, id))
            return e;
    }
    return NULL;
}

guint hotplug_cpu_entity_index(const HotplugCpuEntity *e) { return e->index; }
const char *hotplug_cpu_entity_type(const HotplugCpuEntity *e) { return e->type; }
guint hotplug_cpu_entity_vcpus_count(const HotplugCpuEntity *e) { return e->vcpus_count; }
guint hotplug_cpu_entity_first_vcpu(const HotplugCpuEntity *e) { return e->first_vcpu; }
JsonObject *hotplug_cpu_entity_props(const HotplugCpuEntity *e) { return e->props; }
const char *hotplug_cpu_entity_qom_path(const HotplugCpuEntity *e) { return e->qom_path; }
gboolean hotplug_cpu_entity_present(const HotplugCpuEntity *e) { return e->qom_path != NULL; }
gboolean hotplug_cpu_entity_is_boot(const HotplugCpuEntity *e) { return e->boot; }
const char *hotplug_cpu_entity_device_id(const HotplugCpuEntity *e) { return e->device_id; }

gint64
hotplug_cpu_entity_prop(const HotplugCpuEntity *e, const char *name)
{
    return qmp_json_get_int_default(e->props, name, -1);
}

const gint64 *
hotplug_cpu_entity_thread_ids(const HotplugCpuEntity *e, guint *n)
{
    *n = e->vcpus_count;
    return e->thread_ids;
}

/* "vCPU 3" or "vCPUs 4-7" */
static char *
hotplug_cpu_entity_vcpus_text(const HotplugCpuEntity *e)
{
    if (e->vcpus_count == 1)
        return g_strdup_printf("vCPU %u", e->first_vcpu);
    return g_strdup_printf("vCPUs %u-%u", e->first_vcpu, e->first_vcpu + e->vcpus_count - 1);
}

/* How people name an entity in a message: its id, or its topology. */
static char *
hotplug_cpu_entity_describe(const HotplugCpuEntity *e)
{
    g_autofree char *vcpus = hotplug_cpu_entity_vcpus_text(e);
    g_autoptr(GString) topo = g_string_new(NULL);

    for (guint i = 0; i < G_N_ELEMENTS(hotplug_cpu_topo); i++) {
        gint64 v;
        if (qmp_json_get_int(e->props, hotplug_cpu_topo[i].prop, &v))
            g_string_append_printf(topo, ", %s=%" G_GINT64_FORMAT, hotplug_cpu_topo[i].prop, v);
    }
    if (hotplug_cpu_entity_prop(e, "node-id") >= 0)
        g_string_append_printf(topo, ", node-id=%" G_GINT64_FORMAT,
                               hotplug_cpu_entity_prop(e, "node-id"));
    return g_strdup_printf("entity %u (%s%s, %s, %s)", e->index,
                           e->device_id ? e->device_id : e->qom_path ? e->qom_path : "free",
                           topo->str, e->type, vcpus);
}

JsonNode *
hotplug_cpu_slots_to_json(const HotplugCpuSlots *s, HotplugVm *vm)
{
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_array(b);
    for (guint i = 0; i < s->entities->len; i++) {
        const HotplugCpuEntity *e = s->entities->pdata[i];
        HotplugOp *op = vm && e->device_id ? hotplug_vm_find_op(vm, e->device_id) : NULL;
        const char *state = e->qom_path ? "online" : "offline";
        gint64 node = hotplug_cpu_entity_prop(e, "node-id");

        if (op && hotplug_op_get_state(op) != HOTPLUG_OP_TRACKED)
            state = hotplug_op_get_action(op) == HOTPLUG_ACTION_PLUG ? "plugging" : "unplugging";
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "entity");
        json_builder_add_int_value(b, e->index);
        json_builder_set_member_name(b, "vcpus");
        json_builder_begin_array(b);
        for (guint t = 0; t < e->vcpus_count; t++)
            json_builder_add_int_value(b, e->first_vcpu + t);
        json_builder_end_array(b);
        json_builder_set_member_name(b, "type");
        json_builder_add_string_value(b, e->type);
        json_builder_set_member_name(b, "vcpus-count");
        json_builder_add_int_value(b, e->vcpus_count);
        for (guint t = 0; t < G_N_ELEMENTS(hotplug_cpu_topo); t++) {
            gint64 v;
            if (!qmp_json_get_int(e->props, hotplug_cpu_topo[t].prop, &v))
                continue;
            json_builder_set_member_name(b, hotplug_cpu_topo[t].prop);
            json_builder_add_int_value(b, v);
        }
        json_builder_set_member_name(b, "node");
        if (node >= 0)
            json_builder_add_int_value(b, node);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "state");
        json_builder_add_string_value(b, state);
        json_builder_set_member_name(b, "boot");
        json_builder_add_boolean_value(b, e->boot);
        json_builder_set_member_name(b, "qom-path");
        if (e->qom_path)
            json_builder_add_string_value(b, e->qom_path);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "device");
        if (e->device_id)
            json_builder_add_string_value(b, e->device_id);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "thread-ids");
        json_builder_begin_array(b);
        for (guint t = 0; t < e->vcpus_count; t++) {
            if (e->thread_ids[t] >= 0)
                json_builder_add_int_value(b, e->thread_ids[t]);
            else
                json_builder_add_null_value(b);
        }
        json_builder_end_array(b);
        json_builder_set_member_name(b, "props");
        json_builder_add_value(b, json_node_init_object(json_node_alloc(), e->props));
        if (op) {
            json_builder_set_member_name(b, "pending");
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "op");
            json_builder_add_int_value(b, (gint64)hotplug_op_get_id(op));
            json_builder_set_member_name(b, "action");
            json_builder_add_string_value(b, hotplug_action_name(hotplug_op_get_action(op)));
            json_builder_set_member_name(b, "state");
            json_builder_add_string_value(b, hotplug_op_state_name(hotplug_op_get_state(op)));
            json_builder_end_object(b);
        }
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    return json_builder_get_root(b);
}

/* ---- choosing entities ------------------------------------------------- */

/* Why a present entity cannot be unplugged, or NULL when it can. */
static char *
hotplug_cpu_unplug_refusal(const HotplugCpuEntity *e)
{
    g_autofree char *what = hotplug_cpu_entity_describe(e);

    if (!e->qom_path)
        return g_strdup_printf("%s is not plugged", what);
    if (e->boot)
        return g_strdup_printf("%s is a boot CPU: it was created with the machine (-smp) and is "
                               "never unplugged; only hot-plugged vCPUs can be",
                               what);
    if (!e->device_id)
        return g_strdup_printf("%s was plugged without a device id (%s); hotplugctl unplugs only "
                               "vCPUs it can confirm under /machine/peripheral/ID",
                               what, e->qom_path);
    return NULL;
}

GPtrArray *
hotplug_cpu_select_count(const HotplugCpuSlots *s, guint count, gboolean *plug, GError **error)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new();
    guint total = s->present;

    *plug = count > s->present;
    if (count == s->present)
        return g_steal_pointer(&out);
    if (count > s->max) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                    "no free slot for %u vCPUs: the VM has %u of at most %u (maxcpus); "
                    "raise maxcpus (-smp ...,maxcpus=N) when starting the VM",
                    count, s->present, s->max);
        return NULL;
    }
    if (*plug) {
        for (guint i = 0; i < s->entities->len && total < count; i++) {
            HotplugCpuEntity *e = s->entities->pdata[i];
            if (e->qom_path)
                continue;
            g_ptr_array_add(out, e);
            total += e->vcpus_count;
        }
        if (total < count) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                        "no free slot: %u vCPUs present, only %u reachable (maxcpus %u)",
                        s->present, total, s->max);
            return NULL;
        }
    } else {
        for (guint i = s->entities->len; i-- > 0 && total > count;) {
            HotplugCpuEntity *e = s->entities->pdata[i];
            g_autofree char *why = NULL;
            if (!e->qom_path || e->boot)
                continue;
            why = hotplug_cpu_unplug_refusal(e);
            if (why) {
                g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                            "cannot go down to %u vCPUs: %s", count, why);
                return NULL;
            }
            g_ptr_array_add(out, e);
            total -= e->vcpus_count;
        }
        if (total > count) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "cannot go down to %u vCPUs: the %u left are boot vCPUs (created with "
                        "the machine by -smp), which are never unplugged",
                        count, total);
            return NULL;
        }
    }
    if (total != count) {
        const HotplugCpuEntity *e = out->pdata[out->len - 1];
        g_autofree char *what = hotplug_cpu_entity_describe(e);
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "%u vCPUs cannot be reached with whole entities: vCPUs are plugged %u at a "
                    "time here (vcpus-count of %s); the nearest count is %u",
                    count, e->vcpus_count, what, total);
        return NULL;
    }
    return g_steal_pointer(&out);
}

GPtrArray *
hotplug_cpu_select_ids(const HotplugCpuSlots *s, const guint *ids, guint n_ids, gboolean enable,
                       gint64 node, GError **error)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new();
    g_autofree guint *asked = g_new0(guint, s->entities->len);

    if (n_ids == 0) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no vCPU id given");
        return NULL;
    }
    for (guint i = 0; i < n_ids; i++) {
        const HotplugCpuEntity *e = hotplug_cpu_slots_find_vcpu(s, ids[i]);
        gboolean dup = FALSE;

        if (!e) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "no vCPU %u: this VM has vCPU ids 0-%u (maxcpus %u)", ids[i], s->max - 1,
                        s->max);
            return NULL;
        }
        for (guint j = 0; j < i; j++)
            dup |= ids[j] == ids[i];
        if (dup)
            continue;
        if (asked[e->index]++ == 0)
            g_ptr_array_add(out, (gpointer)e);
    }
    for (guint i = 0; i < out->len; i++) {
        const HotplugCpuEntity *e = out->pdata[i];
        g_autofree char *what = hotplug_cpu_entity_describe(e);
        g_autofree char *why = NULL;

        if (asked[e->index] != e->vcpus_count) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "vcpus-count mismatch: %s holds %u vCPUs and is plugged and unplugged "
                        "as a whole; give all of %u-%u, not one thread of it",
                        what, e->vcpus_count, e->first_vcpu, e->first_vcpu + e->vcpus_count - 1);
            return NULL;
        }
        if (node >= 0 && hotplug_cpu_entity_prop(e, "node-id") != node) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "%s is on NUMA node %" G_GINT64_FORMAT ", not %" G_GINT64_FORMAT, what,
                        hotplug_cpu_entity_prop(e, "node-id"), node);
            return NULL;
        }
        if (enable && e->qom_path) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "%s is already plugged (%s)",
                        what, e->qom_path);
            return NULL;
        }
        if (!enable && (why = hotplug_cpu_unplug_refusal(e))) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "%s", why);
            return NULL;
        }
    }
    return g_steal_pointer(&out);
}

GPtrArray *
hotplug_cpu_select_node(const HotplugCpuSlots *s, gint64 node, guint n, GError **error)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new();
    guint on_node = 0;

    for (guint i = 0; i < s->entities->len; i++) {
        HotplugCpuEntity *e = s->entities->pdata[i];

        if (hotplug_cpu_entity_prop(e, "node-id") != node)
            continue;
        on_node++;
        if (!e->qom_path && out->len < n)
            g_ptr_array_add(out, e);
    }
    if (on_node == 0) {
        g_autoptr(GString) nodes = g_string_new(NULL);
        gint64 max = -1;
        /* the nodes there are, each once, in order */
        for (guint i = 0; i < s->entities->len; i++)
            max = MAX(max, hotplug_cpu_entity_prop(s->entities->pdata[i], "node-id"));
        for (gint64 v = 0; v <= max && v < 1024; v++) {
            for (guint i = 0; i < s->entities->len; i++) {
                if (hotplug_cpu_entity_prop(s->entities->pdata[i], "node-id") == v) {
                    g_string_append_printf(nodes, "%s%" G_GINT64_FORMAT, nodes->len ? ", " : "",
                                           v);
                    break;
                }
            }
        }
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "no vCPU slot on NUMA node %" G_GINT64_FORMAT " (nodes with vCPU slots: %s)",
                    node, nodes->len ? nodes->str : "none reported");
        return NULL;
    }
    if (out->len < n) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                    "no free slot on NUMA node %" G_GINT64_FORMAT ": %u asked, %u free of %u",
                    node, n, out->len, on_node);
        return NULL;
    }
    return g_steal_pointer(&out);
}

/* ---- operations ----------------------------------------------------------- */

HotplugOp *
hotplug_vcpu_plug(HotplugVm *vm, const HotplugCpuEntity *e, GError **error)
{
    g_autofree char *what = hotplug_cpu_entity_describe(e);
    JsonObject *args;
    JsonObjectIter it;
    const char *name;
    JsonNode *value;
    GPtrArray *steps;

    if (e->qom_path) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "%s is already plugged (%s)",
                    what, e->qom_path);
        return NULL;
    }
    args = json_object_new();
    json_object_set_string_member(args, "driver", e->type);
    json_object_set_string_member(args, "id", e->device_id);
    /* every prop as QEMU gave it, known to us or not */
    json_object_iter_init(&it, e->props);
    while (json_object_iter_next(&it, &name, &value))
        if (!g_str_equal(name, "driver") && !g_str_equal(name, "id"))
            json_object_set_member(args, name, json_node_copy(value));
    steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    g_ptr_array_add(steps, hotplug_step_new("device_add",
                                            json_node_init_object(json_node_alloc(), args), NULL,
                                            NULL));
    json_object_unref(args);
    return hotplug_vm_plug(vm, HOTPLUG_KIND_VCPU, e->device_id, steps, error);
}

HotplugOp *
hotplug_vcpu_unplug(HotplugVm *vm, const HotplugCpuEntity *e, const HotplugUnplugOptions *opts,
                    gboolean *attached, GError **error)
{
    g_autofree char *why = hotplug_cpu_unplug_refusal(e);

    if (why) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "%s", why);
        return NULL;
    }
    return hotplug_vm_unplug(vm, HOTPLUG_KIND_VCPU, e->device_id, opts, attached, error);
}

const char *
hotplug_vcpu_error_hint(const GError *error)
{
    if (!error)
        return NULL;
    if (strstr(error->message, "device unplug request for not supported device type") &&
        strstr(error->message, "cpu"))
        return "QEMU's ACPI CPU hotplug is still in legacy mode for this VM: QEMU starts a PC "
               "in the old (pre-2.7) CPU hotplug interface, which can add vCPUs but not remove "
               "them, and switches to the modern one only when the guest OS has run the "
               "firmware's ACPI code that asks for it. That has not happened: the guest has "
               "not booted (yet), is paused early, or runs without ACPI (acpi=off, no ACPI "
               "processor support). Boot an ACPI guest fully and ask again.";
    if (strstr(error->message, "Boot CPU is unpluggable"))
        return "the boot CPU (vCPU 0) can never be removed";
    if (strstr(error->message, "must be in range"))
        return "the slot is beyond maxcpus: see 'hotplugctl vcpu list'";
    if (strstr(error->message, "exists"))
        return "that slot is already occupied: see 'hotplugctl vcpu list'";
    if (strstr(error->message, "invalid node-id"))
        return "the NUMA node of a vCPU slot is fixed by QEMU (-numa cpu,...): see 'hotplugctl "
               "vcpu list'";
    return NULL;
}

/* ---- querying ----------------------------------------------------------- */

typedef struct {
    HotplugCpuSlotsFunc done;
    gpointer opaque;
    guint pending;
    JsonNode *hotpluggable;
    JsonNode *cpus_fast;
    GError *error;
} HotplugCpuQuery;

static void
hotplug_cpu_query_finish(QmpConn *conn, HotplugCpuQuery *q)
{
    g_autoptr(GError) error = NULL;
    HotplugCpuSlots *slots = NULL;

    if (q->error)
        error = g_steal_pointer(&q->error);
    else
        slots = hotplug_cpu_slots_new(q->hotpluggable, q->cpus_fast, &error);
    q->done(conn, slots, slots ? NULL : error, q->opaque);
    if (q->hotpluggable)
        json_node_unref(q->hotpluggable);
    if (q->cpus_fast)
        json_node_unref(q->cpus_fast);
    g_free(q);
}

static void
hotplug_cpu_query_hotpluggable_cb(QmpConn *conn, JsonNode *ret, const GError *error,
                                  gpointer opaque)
{
    HotplugCpuQuery *q = opaque;

    /* QEMU 7.2: "The feature 'query-hotpluggable-cpus' is not enabled";
     * 10.0: "machine does not support hot-plugging CPUs" */
    if (error && !q->error &&
        ((strstr(error->message, "query-hotpluggable-cpus") &&
          strstr(error->message, "not enabled")) ||
         strstr(error->message, "does not support hot-plugging CPUs")))
        /* QEMU's own words name a command, not the limit: say it plainly */
        q->error = g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                               "this QEMU does not support vCPU hotplug on this machine (%s)",
                               error->message);
    else if (error && !q->error)
        q->error = g_error_copy(error);
    else if (ret)
        q->hotpluggable = json_node_ref(ret);
    if (--q->pending == 0)
        hotplug_cpu_query_finish(conn, q);
}

static void
hotplug_cpu_query_fast_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugCpuQuery *q = opaque;

    /* without thread ids the list is still right: only a lost connection
     * counts here */
    if (error && error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED && !q->error)
        q->error = g_error_copy(error);
    else if (ret)
        q->cpus_fast = json_node_ref(ret);
    if (--q->pending == 0)
        hotplug_cpu_query_finish(conn, q);
}

gboolean
hotplug_cpu_slots_query(QmpConn *conn, HotplugCpuSlotsFunc done, gpointer opaque, GError **error)
{
    HotplugCpuQuery *q = g_new0(HotplugCpuQuery, 1);

    q->done = done;
    q->opaque = opaque;
    q->pending = 2;
    if (!qmp_conn_execute(conn, "query-hotpluggable-cpus", NULL,
                          hotplug_cpu_query_hotpluggable_cb, q, error)) {
        g_free(q);
        return FALSE;
    }
    if (!qmp_conn_execute(conn, "query-cpus-fast", NULL, hotplug_cpu_query_fast_cb, q, NULL)) {
        /* the first one is answered (with an error) when the connection goes */
        q->pending--;
    }
    return TRUE;
}
