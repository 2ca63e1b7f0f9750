/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Memory hot(un)plug: DIMM sizes and ids, the memory-backend-ram and
 * pc-dimm pair as one composite operation, and the memory QEMU shows. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <string.h>

#include "hotplug-memory.h"
#include "hotplug-props.h"
#include "qmp-json.h"

#define BACKEND_PREFIX "mem-"
#define OBJECTS "/objects/"

gboolean
hotplug_memory_parse_size(const char *text, guint64 *out, GError **error)
{
    guint64 v;

    if (!text || !hotplug_parse_size(text, &v)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "bad size '%s': give bytes or a number with K, M, G or T (e.g. 512M, 1G)",
                    text ? text : "");
        return FALSE;
    }
    if (v == 0 || v % HOTPLUG_MEMORY_ALIGN) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "size %s (%" G_GUINT64_FORMAT " bytes) is not a non-zero multiple of 2M, "
                    "which QEMU's pc-dimm needs (Linux guests use memory in 128M blocks: "
                    "multiples of 128M are best)",
                    text, v);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

char *
hotplug_memory_backend_for(const char *id)
{
    return g_strconcat(BACKEND_PREFIX, id, NULL);
}

/* data of a query-memory-devices entry */
static JsonObject *
hotplug_memory_entry_data(JsonArray *list, guint i, const char **type)
{
    JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));

    *type = qmp_json_get_string(e, "type");
    return qmp_json_get_object(e, "data");
}

static const char *
hotplug_memory_memdev_id(JsonObject *data)
{
    const char *memdev = qmp_json_get_string(data, "memdev");

    if (!memdev)
        return NULL;
    return g_str_has_prefix(memdev, OBJECTS) ? memdev + strlen(OBJECTS) : memdev;
}

char *
hotplug_memory_free_id(JsonNode *memory_devices)
{
    JsonArray *list = qmp_json_node_array(memory_devices);

    for (guint n = 0;; n++) {
        g_autofree char *id = g_strdup_printf("dimm%u", n);
        g_autofree char *backend = hotplug_memory_backend_for(id);
        gboolean used = FALSE;

        for (guint i = 0; list && i < json_array_get_length(list) && !used; i++) {
            const char *type;
            JsonObject *data = hotplug_memory_entry_data(list, i, &type);
            const char *did = qmp_json_get_string(data, "id");
            const char *mid = hotplug_memory_memdev_id(data);
            used = (did && (g_str_equal(did, id))) || (mid && g_str_equal(mid, backend));
        }
        if (!used)
            return g_steal_pointer(&id);
    }
}

char *
hotplug_memory_backend_of(JsonNode *memory_devices, const char *id)
{
    JsonArray *list = qmp_json_node_array(memory_devices);

    for (guint i = 0; id && list && i < json_array_get_length(list); i++) {
        const char *type;
        JsonObject *data = hotplug_memory_entry_data(list, i, &type);
        const char *did = qmp_json_get_string(data, "id");
        if (did && g_str_equal(did, id))
            return g_strdup(hotplug_memory_memdev_id(data));
    }
    return NULL;
}

gboolean
hotplug_memory_check_room(JsonNode *machine_memory, JsonNode *memory_devices, guint64 size,
                          GError **error)
{
    JsonObject *m = qmp_json_node_object(machine_memory);
    JsonArray *list = qmp_json_node_array(memory_devices);
    gint64 base = qmp_json_get_int_default(m, "size", -1);
    gint64 slots = qmp_json_get_int_default(m, "slots", -1);
    gint64 max = qmp_json_get_int_default(m, "max-size", -1);
    guint64 used = 0;
    guint used_slots = 0;

    if (!m || base < 0)
        return TRUE; /* QEMU judges */
    /* QEMU 7.2 leaves slots and max-size out when -m gave none: that, or
     * zero of them, is a VM without memory hotplug */
    if (slots <= 0 || max <= base) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                    "memory hotplug is not enabled for this VM: it was started without memory "
                    "slots or maxmem; start it with -m SIZE,slots=N,maxmem=MAX");
        return FALSE;
    }
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        const char *type;
        JsonObject *data = hotplug_memory_entry_data(list, i, &type);
        used += (guint64)MAX(0, qmp_json_get_int_default(data, "size", 0));
        if (type && (g_str_equal(type, "dimm") || g_str_equal(type, "nvdimm")))
            used_slots++;
    }
    if (used_slots >= slots) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                    "no free memory slot: all %" G_GINT64_FORMAT " slots are used (-m ...,"
                    "slots=%" G_GINT64_FORMAT "); remove a DIMM first, or start the VM with more "
                    "slots",
                    slots, slots);
        return FALSE;
    }
    if ((guint64)base + used + size > (guint64)max) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                    "not enough room below maxmem: %" G_GUINT64_FORMAT " MiB boot memory + "
                    "%" G_GUINT64_FORMAT " MiB plugged + %" G_GUINT64_FORMAT " MiB asked is "
                    "over maxmem %" G_GUINT64_FORMAT " MiB",
                    (guint64)base >> 20, used >> 20, size >> 20, (guint64)max >> 20);
        return FALSE;
    }
    return TRUE;
}

static JsonNode *
hotplug_memory_id_args(const char *id)
{
    JsonObject *o = json_object_new();
    JsonNode *n = json_node_init_object(json_node_alloc(), o);

    json_object_set_string_member(o, "id", id);
    json_object_unref(o);
    return n;
}

HotplugOp *
hotplug_memory_add(HotplugVm *vm, const char *id, guint64 size, gint64 node, GError **error)
{
    g_autofree char *backend = NULL;
    GPtrArray *steps;
    JsonObject *obj, *dev;
    JsonNode *obj_node, *dev_node;

    if (!id || !*id || strchr(id, '/')) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "bad memory device id '%s'",
                    id ? id : "");
        return NULL;
    }
    if (size == 0 || size > G_MAXINT64) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "bad memory size");
        return NULL;
    }
    backend = hotplug_memory_backend_for(id);
    obj = json_object_new();
    obj_node = json_node_init_object(json_node_alloc(), obj);
    json_object_set_string_member(obj, "qom-type", "memory-backend-ram");
    json_object_set_string_member(obj, "id", backend);
    json_object_set_int_member(obj, "size", (gint64)size);
    json_object_unref(obj);
    dev = json_object_new();
    dev_node = json_node_init_object(json_node_alloc(), dev);
    json_object_set_string_member(dev, "driver", "pc-dimm");
    json_object_set_string_member(dev, "id", id);
    json_object_set_string_member(dev, "memdev", backend);
    if (node >= 0)
        json_object_set_int_member(dev, "node", node);
    json_object_unref(dev);

    steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    g_ptr_array_add(steps, hotplug_step_new("object-add", obj_node, "object-del",
                                            hotplug_memory_id_args(backend)));
    g_ptr_array_add(steps, hotplug_step_new("device_add", dev_node, NULL, NULL));
    return hotplug_vm_plug(vm, HOTPLUG_KIND_MEMORY, id, steps, error);
}

HotplugOp *
hotplug_memory_del(HotplugVm *vm, const char *id, const char *backend,
                   const HotplugUnplugOptions *opts, gboolean *attached, GError **error)
{
    gboolean joined = FALSE;
    HotplugOp *op = hotplug_vm_unplug(vm, HOTPLUG_KIND_MEMORY, id, opts, &joined, error);

    if (attached)
        *attached = joined;
    /* device_del is on the wire; its answer comes from the loop, so the
     * cleanup is in place before the DIMM can be found gone */
    if (op && !joined && backend) {
        GPtrArray *cleanup = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
        g_ptr_array_add(cleanup,
                        hotplug_step_new("object-del", hotplug_memory_id_args(backend), NULL, NULL));
        hotplug_op_set_cleanup(op, cleanup);
    }
    return op;
}

static void
hotplug_memory_copy_int(JsonBuilder *b, JsonObject *data, const char *from, const char *to)
{
    gint64 v;

    json_builder_set_member_name(b, to);
    if (qmp_json_get_int(data, from, &v))
        json_builder_add_int_value(b, v);
    else
        json_builder_add_null_value(b);
}

JsonNode *
hotplug_memory_list_to_json(JsonNode *memory_devices, HotplugVm *vm)
{
    JsonArray *list = qmp_json_node_array(memory_devices);
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_array(b);
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        const char *type;
        JsonObject *data = hotplug_memory_entry_data(list, i, &type);
        const char *id = qmp_json_get_string(data, "id");
        HotplugOp *op = vm && id ? hotplug_vm_find_op(vm, id) : NULL;

        if (!data)
            continue;
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "id");
        if (id)
            json_builder_add_string_value(b, id);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "type");
        json_builder_add_string_value(b, type ? type : "unknown");
        hotplug_memory_copy_int(b, data, "size", "size");
        hotplug_memory_copy_int(b, data, "node", "node");
        hotplug_memory_copy_int(b, data, "slot", "slot");
        hotplug_memory_copy_int(b, data, "addr", "addr");
        json_builder_set_member_name(b, "memdev");
        if (qmp_json_get_string(data, "memdev"))
            json_builder_add_string_value(b, qmp_json_get_string(data, "memdev"));
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "backend");
        if (hotplug_memory_memdev_id(data))
            json_builder_add_string_value(b, hotplug_memory_memdev_id(data));
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "hotplugged");
        json_builder_add_boolean_value(b, qmp_json_get_bool_default(data, "hotplugged", FALSE));
        json_builder_set_member_name(b, "hotpluggable");
        json_builder_add_boolean_value(b, qmp_json_get_bool_default(data, "hotpluggable", FALSE));
        json_builder_set_member_name(b, "pending");
        if (op) {
            json_builder_begin_object(b);
            json_builder_set_member_name(b, "op");
            json_builder_add_int_value(b, (gint64)hotplug_op_get_id(op));
            json_builder_set_member_name(b, "action");
            json_builder_add_string_value(b, hotplug_action_name(hotplug_op_get_action(op)));
            json_builder_set_member_name(b, "state");
            json_builder_add_string_value(b, hotplug_op_state_name(hotplug_op_get_state(op)));
            json_builder_set_member_name(b, "attempts");
            json_builder_add_int_value(b, hotplug_op_get_attempts(op));
            json_builder_end_object(b);
        } else {
            json_builder_add_null_value(b);
        }
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    return json_builder_get_root(b);
}

const char *
hotplug_memory_error_hint(const GError *error)
{
    if (!error)
        return NULL;
    if (strstr(error->message, "no free slots"))
        return "every memory slot of the VM is used (-m ...,slots=N): remove a DIMM first";
    if (strstr(error->message, "not enough space"))
        return "the DIMM does not fit below maxmem (-m ...,maxmem=MAX): use a smaller size or "
               "remove a DIMM first";
    if (strstr(error->message, "must be multiple of"))
        return "QEMU needs the size to be a multiple of the alignment it names";
    if (strstr(error->message, "acpi-ged"))
        return "this VM has no ACPI GED device (aarch64 virt booted without ACPI, e.g. "
               "-kernel without UEFI firmware, or acpi=off), and QEMU hot-plugs memory on "
               "virt only through it: boot the VM with UEFI firmware (-bios QEMU_EFI.fd) and "
               "ACPI on";
    if (strstr(error->message, "maxmem") || strstr(error->message, "not enabled") ||
        strstr(error->message, "slots where allocated"))
        return "memory hotplug needs the VM started with -m SIZE,slots=N,maxmem=MAX";
    if (strstr(error->message, "numa") || strstr(error->message, "node"))
        return "--node must name a NUMA node the VM was started with (-numa node,...)";
    if (strstr(error->message, "already exists") || strstr(error->message, "Duplicate"))
        return "that id is in use: choose another --id (see 'hotplugctl memory list')";
    return NULL;
}
