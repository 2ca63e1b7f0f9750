/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A VM's PCI topology and hotplug mechanisms (see hotplug-topology.h):
 * the facts are gathered from QEMU in three pipelined rounds, then one
 * pure function turns them into places. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <string.h>

#include "hotplug-vm-priv.h"
#include "hotplug-topology.h"
#include "qmp-json.h"

#define PCI_SLOTS 32

struct HotplugTopology {
    HotplugMachine machine;
    char *machine_type;
    GPtrArray *places;       /* HotplugPlace */
    GHashTable *device_bus;  /* device id -> QOM path of its parent bus */
    GHashTable *bus_place;   /* QOM path of a bus -> first HotplugPlace on it (borrowed) */
    gboolean memory_hotplug; /* the machine can hot-plug memory at all */
    char *memory_why;        /* ... or why not */
};

const char *
hotplug_mechanism_name(HotplugMechanism m)
{
    switch (m) {
    case HOTPLUG_MECH_ACPI:
        return "acpi";
    case HOTPLUG_MECH_PCIE_NATIVE:
        return "pcie-native";
    case HOTPLUG_MECH_SPAPR:
        return "spapr";
    case HOTPLUG_MECH_NONE:
        break;
    }
    return "none";
}

const char *
hotplug_machine_name(HotplugMachine m)
{
    switch (m) {
    case HOTPLUG_MACHINE_PC:
        return "pc";
    case HOTPLUG_MACHINE_Q35:
        return "q35";
    case HOTPLUG_MACHINE_VIRT:
        return "virt";
    case HOTPLUG_MACHINE_PSERIES:
        return "pseries";
    case HOTPLUG_MACHINE_OTHER:
        break;
    }
    return "other";
}

static void
hotplug_place_free(HotplugPlace *p)
{
    g_free(p->bus);
    g_free(p->bus_path);
    g_free(p->port);
    g_free(p->why);
    g_free(p->occupant);
    g_free(p);
}

void
hotplug_topology_free(HotplugTopology *t)
{
    if (!t)
        return;
    g_free(t->machine_type);
    g_free(t->memory_why);
    g_ptr_array_unref(t->places);
    g_hash_table_unref(t->device_bus);
    g_hash_table_unref(t->bus_place);
    g_free(t);
}

HotplugMachine
hotplug_topology_machine_from_type(const char *type)
{
    if (!type)
        return HOTPLUG_MACHINE_OTHER;
    if (strstr(type, "q35"))
        return HOTPLUG_MACHINE_Q35;
    if (strstr(type, "i440fx") || g_str_has_prefix(type, "pc-") || g_str_equal(type, "pc"))
        return HOTPLUG_MACHINE_PC;
    if (g_str_has_prefix(type, "virt"))
        return HOTPLUG_MACHINE_VIRT;
    if (g_str_has_prefix(type, "pseries"))
        return HOTPLUG_MACHINE_PSERIES;
    return HOTPLUG_MACHINE_OTHER;
}

typedef enum {
    BRIDGE_NONE,
    BRIDGE_ROOT_PORT,
    BRIDGE_DOWNSTREAM_PORT,
    BRIDGE_PCI,
} BridgeKind;

static BridgeKind
hotplug_bridge_kind(const char *type)
{
    if (!type)
        return BRIDGE_NONE;
    if (g_str_equal(type, "pcie-root-port") || g_str_equal(type, "ioh3420"))
        return BRIDGE_ROOT_PORT;
    if (g_str_equal(type, "xio3130-downstream"))
        return BRIDGE_DOWNSTREAM_PORT;
    if (g_str_equal(type, "pci-bridge") || g_str_equal(type, "pci-bridge-seat") ||
        g_str_equal(type, "pcie-pci-bridge"))
        return BRIDGE_PCI;
    return BRIDGE_NONE;
}

static const char *
hotplug_root_bus_name(HotplugMachine m)
{
    switch (m) {
    case HOTPLUG_MACHINE_PC:
    case HOTPLUG_MACHINE_PSERIES:
        return "pci.0";
    case HOTPLUG_MACHINE_Q35:
    case HOTPLUG_MACHINE_VIRT:
        return "pcie.0";
    default:
        return NULL;
    }
}

/* A parent_bus path names the root bus when it is not under a peripheral
 * device and ends in the root bus's name. */
static gboolean
hotplug_is_root_bus_path(HotplugMachine m, const char *path)
{
    const char *name = hotplug_root_bus_name(m);
    const char *slash;

    if (!name || !path || g_str_has_prefix(path, "/machine/peripheral"))
        return FALSE;
    slash = strrchr(path, '/');
    return slash && g_str_equal(slash + 1, name);
}

static gboolean
hotplug_json_bool(JsonObject *o, const char *name, gboolean *out)
{
    JsonNode *n = o ? json_object_get_member(o, name) : NULL;

    if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_BOOLEAN)
        return FALSE;
    *out = json_node_get_boolean(n);
    return TRUE;
}

typedef struct {
    JsonObject *dev;
    BridgeKind kind;
    gint64 addr;
    const char *parent_bus;
} BridgeRef;

static gint
hotplug_bridge_cmp(gconstpointer a, gconstpointer b)
{
    const BridgeRef *x = a, *y = b;
    int c;

    /* ports before pci-bridge slots; then by where they sit */
    if ((x->kind == BRIDGE_PCI) != (y->kind == BRIDGE_PCI))
        return x->kind == BRIDGE_PCI ? 1 : -1;
    c = g_strcmp0(x->parent_bus, y->parent_bus);
    if (c)
        return c;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static char *
hotplug_occupant_name(JsonObject *dev)
{
    const char *id = qmp_json_get_string(dev, "id");
    const char *path = qmp_json_get_string(dev, "path");

    if (path && g_str_has_prefix(path, "/machine/peripheral-anon/"))
        return g_strdup_printf("(anonymous %s)", qmp_json_get_string(dev, "type") ?: "device");
    return g_strdup(id);
}

static HotplugPlace *
hotplug_place_add(HotplugTopology *t, const char *bus, const char *bus_path, guint slot,
                  const char *kind, const char *port, HotplugMechanism mech, const char *why)
{
    HotplugPlace *p = g_new0(HotplugPlace, 1);

    p->bus = g_strdup(bus);
    p->bus_path = g_strdup(bus_path);
    p->slot = slot;
    p->kind = kind;
    p->port = g_strdup(port);
    p->mechanism = mech;
    p->why = mech == HOTPLUG_MECH_NONE ? g_strdup(why) : NULL;
    g_ptr_array_add(t->places, p);
    if (bus_path && !g_hash_table_contains(t->bus_place, bus_path))
        g_hash_table_insert(t->bus_place, g_strdup(bus_path), p);
    return p;
}

static void
hotplug_place_occupy(HotplugPlace *p, const char *who)
{
    if (!p->occupant) {
        p->occupant = g_strdup(who);
    } else {
        char *both = g_strdup_printf("%s, %s", p->occupant, who);
        g_free(p->occupant);
        p->occupant = both;
    }
}

/* The place on bus_path at slot (ports have one). */
static HotplugPlace *
hotplug_topology_place_at(HotplugTopology *t, const char *bus_path, guint slot)
{
    for (guint i = 0; i < t->places->len; i++) {
        HotplugPlace *p = t->places->pdata[i];
        if (g_strcmp0(p->bus_path, bus_path) != 0)
            continue;
        if (g_str_has_suffix(p->kind, "-port") || p->slot == slot)
            return p;
    }
    return NULL;
}

static HotplugMechanism
hotplug_port_mechanism(HotplugMachine m, gboolean acpi_bridge, JsonObject *knobs, const char **why)
{
    gboolean v, native = TRUE;

    if (hotplug_json_bool(knobs, "hotplug", &v) && !v) {
        *why = "the port was created with hotplug=off";
        return HOTPLUG_MECH_NONE;
    }
    if (m == HOTPLUG_MACHINE_Q35 && acpi_bridge)
        return HOTPLUG_MECH_ACPI;
    if (hotplug_json_bool(knobs, "x-native-hotplug", &v))
        native = v;
    else if (hotplug_json_bool(knobs, "x-do-not-expose-native-hotplug-cap", &v))
        native = !v;
    if (!native) {
        *why = "native hotplug is off on the port and ACPI PCI hotplug is off";
        return HOTPLUG_MECH_NONE;
    }
    if (m == HOTPLUG_MACHINE_Q35 || m == HOTPLUG_MACHINE_VIRT)
        return HOTPLUG_MECH_PCIE_NATIVE;
    *why = "this machine has no hotplug for PCIe ports";
    return HOTPLUG_MECH_NONE;
}

HotplugTopology *
hotplug_topology_new_from_facts(JsonObject *facts, GError **error)
{
    g_autoptr(HotplugTopology) t = g_new0(HotplugTopology, 1);
    JsonObject *acpi = qmp_json_get_object(facts, "acpi");
    JsonArray *devices = qmp_json_get_array(facts, "devices");
    JsonArray *pci = qmp_json_get_array(facts, "query-pci");
    g_autoptr(GArray) bridges = g_array_new(FALSE, FALSE, sizeof(BridgeRef));
    gboolean acpi_bridge = FALSE, acpi_root = TRUE;
    const char *root_name;
    const char *root_path = NULL;

    t->places = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_place_free);
    t->device_bus = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    t->bus_place = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    t->machine_type = g_strdup(qmp_json_get_string(facts, "type"));
    if (!t->machine_type) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "QEMU did not say its machine type");
        return NULL;
    }
    t->machine = hotplug_topology_machine_from_type(t->machine_type);
    root_name = hotplug_root_bus_name(t->machine);
    hotplug_json_bool(acpi, "acpi-pci-hotplug-with-bridge-support", &acpi_bridge);
    hotplug_json_bool(acpi, "acpi-root-pci-hotplug", &acpi_root);
    /* virt hot-plugs memory only through its ACPI GED device, which QEMU
     * creates only when the VM boots with ACPI (UEFI firmware) */
    t->memory_hotplug = TRUE;
    if (t->machine == HOTPLUG_MACHINE_VIRT) {
        gboolean ged = FALSE;
        hotplug_json_bool(facts, "acpi-ged", &ged);
        if (!ged) {
            t->memory_hotplug = FALSE;
            t->memory_why = g_strdup("this virt VM has no ACPI GED device (it booted without "
                                     "ACPI: -kernel without UEFI firmware, or acpi=off); QEMU "
                                     "hot-plugs memory on virt only through it");
        }
    }

    for (guint i = 0; devices && i < json_array_get_length(devices); i++) {
        JsonObject *d = qmp_json_node_object(json_array_get_element(devices, i));
        const char *id = qmp_json_get_string(d, "id");
        const char *pb = qmp_json_get_string(d, "parent_bus");
        BridgeRef b = {d, hotplug_bridge_kind(qmp_json_get_string(d, "type")),
                       qmp_json_get_int_default(d, "addr", 0), pb};

        if (id && pb)
            g_hash_table_insert(t->device_bus, g_strdup(id), g_strdup(pb));
        if (pb && !root_path && hotplug_is_root_bus_path(t->machine, pb))
            root_path = pb;
        if (b.kind != BRIDGE_NONE && qmp_json_get_string(d, "bus_child"))
            g_array_append_val(bridges, b);
    }
    g_array_sort(bridges, hotplug_bridge_cmp);

    /* the root bus of pc and pseries takes hotplug */
    if (t->machine == HOTPLUG_MACHINE_PC || t->machine == HOTPLUG_MACHINE_PSERIES) {
        JsonObject *bus0 = pci && json_array_get_length(pci) > 0
                               ? qmp_json_node_object(json_array_get_element(pci, 0))
                               : NULL;
        JsonArray *devs = qmp_json_get_array(bus0, "devices");
        HotplugMechanism m = t->machine == HOTPLUG_MACHINE_PSERIES
                                 ? HOTPLUG_MECH_SPAPR
                                 : (acpi_root ? HOTPLUG_MECH_ACPI : HOTPLUG_MECH_NONE);
        g_autofree char *path =
            g_strdup(root_path ? root_path
                               : (t->machine == HOTPLUG_MACHINE_PC ? "/machine/i440fx/pci.0"
                                                                   : "/machine/unattached/pci.0"));
        HotplugPlace *slots[PCI_SLOTS];

        for (guint s = 0; s < PCI_SLOTS; s++)
            slots[s] = hotplug_place_add(t, root_name, path, s, "root-bus", NULL, m,
                                         "ACPI hotplug of the root bus is off "
                                         "(PIIX4_PM.acpi-root-pci-hotplug=off)");
        for (guint i = 0; devs && i < json_array_get_length(devs); i++) {
            JsonObject *d = qmp_json_node_object(json_array_get_element(devs, i));
            gint64 slot = qmp_json_get_int_default(d, "slot", -1);
            const char *qid = qmp_json_get_string(d, "qdev_id");
            JsonObject *ci = qmp_json_get_object(d, "class_info");
            g_autofree char *who = NULL;

            if (slot < 0 || slot >= PCI_SLOTS)
                continue;
            if (qid && *qid)
                who = g_strdup(qid);
            else
                who = g_strdup_printf("built-in: %s", qmp_json_get_string(ci, "desc") ?: "device");
            /* one name per slot even for multifunction devices */
            if (!slots[slot]->occupant)
                hotplug_place_occupy(slots[slot], who);
        }
    }

    /* ports and bridges, in placement order */
    for (guint i = 0; i < bridges->len; i++) {
        BridgeRef *b = &g_array_index(bridges, BridgeRef, i);
        const char *id = qmp_json_get_string(b->dev, "id");
        const char *path = qmp_json_get_string(b->dev, "path");
        const char *child = qmp_json_get_string(b->dev, "bus_child");
        JsonObject *knobs = qmp_json_get_object(b->dev, "knobs");
        g_autofree char *bus_path = g_strdup_printf("%s/%s", path, child);
        g_autofree char *port = hotplug_occupant_name(b->dev);
        const char *why = NULL;
        HotplugMechanism m;

        (void)id;
        if (b->kind == BRIDGE_PCI) {
            gboolean acpi_ok =
                (t->machine == HOTPLUG_MACHINE_PC || t->machine == HOTPLUG_MACHINE_Q35) &&
                acpi_bridge;
            m = acpi_ok ? HOTPLUG_MECH_ACPI : HOTPLUG_MECH_NONE;
            why = "bridge slots need ACPI PCI hotplug (SHPC is not supported)";
            for (guint s = 0; s < PCI_SLOTS; s++)
                hotplug_place_add(t, child, bus_path, s, "pci-bridge", port, m, why)->anonymous =
                    g_str_has_prefix(path, "/machine/peripheral-anon/");
            continue;
        }
        m = hotplug_port_mechanism(t->machine, acpi_bridge, knobs, &why);
        hotplug_place_add(t, child, bus_path, 0,
                          b->kind == BRIDGE_ROOT_PORT ? "pcie-root-port" : "pcie-downstream-port",
                          port, m, why)
            ->anonymous = g_str_has_prefix(path, "/machine/peripheral-anon/");
    }

    /* occupants behind ports and bridges */
    for (guint i = 0; devices && i < json_array_get_length(devices); i++) {
        JsonObject *d = qmp_json_node_object(json_array_get_element(devices, i));
        const char *pb = qmp_json_get_string(d, "parent_bus");
        gint64 addr = qmp_json_get_int_default(d, "addr", -1);
        HotplugPlace *p;
        g_autofree char *who = NULL;

        if (!pb || addr < 0 || hotplug_is_root_bus_path(t->machine, pb))
            continue;
        p = hotplug_topology_place_at(t, pb, (guint)(addr >> 3) % PCI_SLOTS);
        if (!p)
            continue;
        who = hotplug_occupant_name(d);
        hotplug_place_occupy(p, who);
    }
    return g_steal_pointer(&t);
}

HotplugMachine
hotplug_topology_get_machine(const HotplugTopology *t)
{
    return t->machine;
}

const char *
hotplug_topology_get_machine_type(const HotplugTopology *t)
{
    return t->machine_type;
}

gboolean
hotplug_topology_memory_hotplug(const HotplugTopology *t, const char **why)
{
    if (why)
        *why = t->memory_why;
    return t->memory_hotplug;
}

GPtrArray *
hotplug_topology_get_places(const HotplugTopology *t)
{
    return t->places;
}

const HotplugPlace *
hotplug_topology_find(const HotplugTopology *t, const char *bus, gint slot)
{
    const HotplugPlace *first = NULL;

    for (guint i = 0; i < t->places->len; i++) {
        const HotplugPlace *p = t->places->pdata[i];
        if (p->anonymous || g_strcmp0(p->bus, bus) != 0)
            continue;
        if (slot >= 0) {
            if ((gint)p->slot == slot || g_str_has_suffix(p->kind, "-port"))
                return p;
            continue;
        }
        if (!first)
            first = p;
        if (!p->occupant)
            return p;
    }
    return first;
}

HotplugMechanism
hotplug_topology_device_mechanism(const HotplugTopology *t, const char *device)
{
    const char *pb = device ? g_hash_table_lookup(t->device_bus, device) : NULL;
    const HotplugPlace *p = pb ? g_hash_table_lookup(t->bus_place, pb) : NULL;

    return p ? p->mechanism : HOTPLUG_MECH_NONE;
}

gboolean
hotplug_topology_knows_device(const HotplugTopology *t, const char *device)
{
    return device && g_hash_table_contains(t->device_bus, device);
}

void
hotplug_topology_note_device(HotplugTopology *t, const char *device, const char *bus)
{
    const char *path = "";

    g_return_if_fail(device != NULL && bus != NULL);
    for (guint i = 0; i < t->places->len; i++) {
        const HotplugPlace *p = t->places->pdata[i];

        if (!p->anonymous && p->bus_path && g_str_equal(p->bus, bus)) {
            path = p->bus_path;
            break;
        }
    }
    /* "": a bus of no place, so no mechanism (device_bus keys no place by "") */
    g_hash_table_insert(t->device_bus, g_strdup(device), g_strdup(path));
}

void
hotplug_topology_forget_device(HotplugTopology *t, const char *device)
{
    if (device)
        g_hash_table_remove(t->device_bus, device);
}

GArray *
hotplug_topology_mechanisms(const HotplugTopology *t)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(HotplugMechanism));
    gboolean seen[HOTPLUG_MECH_SPAPR + 1] = {FALSE};

    for (guint i = 0; i < t->places->len; i++) {
        const HotplugPlace *p = t->places->pdata[i];
        seen[p->mechanism] = TRUE;
    }
    for (HotplugMechanism m = HOTPLUG_MECH_ACPI; m <= HOTPLUG_MECH_SPAPR; m++)
        if (seen[m])
            g_array_append_val(a, m);
    return a;
}

JsonNode *
hotplug_topology_to_json(const HotplugTopology *t)
{
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "machine");
    json_builder_add_string_value(b, hotplug_machine_name(t->machine));
    json_builder_set_member_name(b, "machine_type");
    json_builder_add_string_value(b, t->machine_type);
    json_builder_set_member_name(b, "places");
    json_builder_begin_array(b);
    for (guint i = 0; i < t->places->len; i++) {
        const HotplugPlace *p = t->places->pdata[i];
        g_autofree char *addr = g_strdup_printf("0x%x", p->slot);

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "bus");
        json_builder_add_string_value(b, p->bus);
        json_builder_set_member_name(b, "slot");
        json_builder_add_int_value(b, p->slot);
        json_builder_set_member_name(b, "addr");
        json_builder_add_string_value(b, addr);
        json_builder_set_member_name(b, "kind");
        json_builder_add_string_value(b, p->kind);
        json_builder_set_member_name(b, "port");
        if (p->port)
            json_builder_add_string_value(b, p->port);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "mechanism");
        json_builder_add_string_value(b, hotplug_mechanism_name(p->mechanism));
        if (p->anonymous) {
            json_builder_set_member_name(b, "anonymous");
            json_builder_add_boolean_value(b, TRUE);
        }
        if (p->why) {
            json_builder_set_member_name(b, "why");
            json_builder_add_string_value(b, p->why);
        }
        json_builder_set_member_name(b, "occupant");
        if (p->occupant)
            json_builder_add_string_value(b, p->occupant);
        else
            json_builder_add_null_value(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

char *
hotplug_topology_no_place_hint(const HotplugTopology *t)
{
    switch (t->machine) {
    case HOTPLUG_MACHINE_Q35:
    case HOTPLUG_MACHINE_VIRT:
        return g_strdup("no free hotpluggable place: every pcie-root-port is occupied (or there "
                        "is none; the root bus pcie.0 takes no hotplug); start the VM with more, "
                        "e.g. -device pcie-root-port,id=rp9,chassis=9,bus=pcie.0");
    case HOTPLUG_MACHINE_PC:
        return g_strdup("no free hotpluggable slot on pci.0 or any pci-bridge; start the VM with "
                        "a bridge, e.g. -device pci-bridge,id=br1,chassis_nr=1");
    default:
        return g_strdup("no free hotpluggable place on this machine");
    }
}

/* ---- gathering the facts from QEMU ----------------------------------- */

typedef struct TopoQuery TopoQuery;

typedef void (*TopoApply)(TopoQuery *q, JsonObject *target, JsonNode *ret, const GError *error);

typedef struct {
    TopoQuery *q;
    JsonObject *target; /* where the answer goes (borrowed from facts) */
    char *member;
    TopoApply apply;
} TopoReply;

struct TopoQuery {
    QmpConn *conn;
    HotplugTopologyFunc done;
    gpointer opaque;
    JsonObject *facts;
    guint round;
    guint outstanding;
    gboolean failed;
    GError *error;
    char *acpi_path;
};

static void hotplug_topology_next_round(TopoQuery *q);

static void
hotplug_topo_finish(TopoQuery *q)
{
    g_autoptr(HotplugTopology) t = NULL;
    g_autoptr(GError) error = NULL;

    if (q->error) {
        q->done(NULL, q->error, q->opaque);
    } else {
        t = hotplug_topology_new_from_facts(q->facts, &error);
        if (t)
            q->done(g_steal_pointer(&t), NULL, q->opaque);
        else
            q->done(NULL, error, q->opaque);
    }
    g_clear_error(&q->error);
    json_object_unref(q->facts);
    qmp_conn_unref(q->conn);
    g_free(q->acpi_path);
    g_free(q);
}

static void
hotplug_topo_reply_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    TopoReply *r = opaque;
    TopoQuery *q = r->q;

    if (error && error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED && !q->error)
        q->error = g_error_copy(error);
    else if (r->apply)
        r->apply(q, r->target, ret, error);
    else if (!error && ret)
        json_object_set_member(r->target, r->member, qmp_json_deep_copy(ret));
    g_free(r->member);
    g_free(r);
    if (--q->outstanding == 0) {
        if (q->error)
            hotplug_topo_finish(q);
        else
            hotplug_topology_next_round(q);
    }
}

static void
hotplug_topo_send(TopoQuery *q, const char *cmd, JsonObject *args, JsonObject *target,
                  const char *member, TopoApply apply)
{
    TopoReply *r = g_new0(TopoReply, 1);
    g_autoptr(GError) error = NULL;

    r->q = q;
    r->target = target;
    r->member = g_strdup(member);
    r->apply = apply;
    q->outstanding++;
    if (!qmp_conn_execute(q->conn, cmd,
                          args ? json_node_init_object(json_node_alloc(), args) : NULL,
                          hotplug_topo_reply_cb, r, &error)) {
        /* as if the reply came with the error (the count keeps us alive) */
        if (!q->error)
            q->error = g_error_copy(error);
        q->outstanding--;
        g_free(r->member);
        g_free(r);
    }
    if (args)
        json_object_unref(args);
}

static JsonObject *
hotplug_topo_args(const char *path, const char *property)
{
    JsonObject *a = json_object_new();

    json_object_set_string_member(a, "path", path);
    if (property)
        json_object_set_string_member(a, "property", property);
    return a;
}

static void
hotplug_topo_qom_get(TopoQuery *q, const char *path, const char *prop, JsonObject *target,
                     const char *member)
{
    hotplug_topo_send(q, "qom-get", hotplug_topo_args(path, prop), target, member, NULL);
}

/* qom-list of /machine/peripheral(-anon): one device entry per child. */
static void
hotplug_topo_apply_list(TopoQuery *q, JsonObject *target, JsonNode *ret, const GError *error)
{
    JsonArray *list = error ? NULL : qmp_json_node_array(ret);
    JsonArray *devices = qmp_json_get_array(q->facts, "devices");
    const char *base = qmp_json_get_string(target, "base");

    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");
        JsonObject *d;

        if (!name || !type || !g_str_has_prefix(type, "child<") || !g_str_has_suffix(type, ">"))
            continue;
        d = json_object_new();
        json_object_set_string_member(d, "id", name);
        {
            g_autofree char *path = g_strdup_printf("%s/%s", base, name);
            json_object_set_string_member(d, "path", path);
        }
        {
            g_autofree char *bare = g_strndup(type + 6, strlen(type) - 7);
            json_object_set_string_member(d, "type", bare);
        }
        json_array_add_object_element(devices, d);
    }
}

/* qom-list of a bridge: the name of its bus child, and which knobs it has. */
static void
hotplug_topo_apply_bridge(TopoQuery *q, JsonObject *target, JsonNode *ret, const GError *error)
{
    JsonArray *list = error ? NULL : qmp_json_node_array(ret);
    JsonArray *have = json_array_new();

    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");

        if (!name || !type)
            continue;
        if (g_str_equal(type, "child<PCIE>") || g_str_equal(type, "child<PCI>"))
            json_object_set_string_member(target, "bus_child", name);
        else if (g_str_equal(name, "x-native-hotplug") ||
                 g_str_equal(name, "x-do-not-expose-native-hotplug-cap") ||
                 g_str_equal(name, "hotplug"))
            json_array_add_string_element(have, name);
    }
    json_object_set_array_member(target, "has_knobs", have);
}

/* qom-list /machine/unattached: is there an acpi-ged device? */
static void
hotplug_topo_apply_ged(TopoQuery *q, JsonObject *target, JsonNode *ret, const GError *error)
{
    JsonArray *list = error ? NULL : qmp_json_node_array(ret);
    gboolean ged = FALSE;

    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        ged |= g_strcmp0(qmp_json_get_string(e, "type"), "child<acpi-ged>") == 0;
    }
    json_object_set_boolean_member(target, "acpi-ged", ged);
}

static void
hotplug_topology_next_round(TopoQuery *q)
{
    JsonArray *devices = qmp_json_get_array(q->facts, "devices");
    guint round = ++q->round;

    if (round == 2) {
        const char *acpi = qmp_json_get_string(q->facts, "acpi-device");
        JsonObject *acpi_obj = json_object_new();

        json_object_set_object_member(q->facts, "acpi", acpi_obj);
        if (hotplug_topology_machine_from_type(qmp_json_get_string(q->facts, "type")) ==
            HOTPLUG_MACHINE_VIRT)
            hotplug_topo_send(q, "qom-list", hotplug_topo_args("/machine/unattached", NULL),
                              q->facts, NULL, hotplug_topo_apply_ged);
        if (acpi) {
            hotplug_topo_qom_get(q, acpi, "acpi-pci-hotplug-with-bridge-support", acpi_obj,
                                 "acpi-pci-hotplug-with-bridge-support");
            if (hotplug_topology_machine_from_type(qmp_json_get_string(q->facts, "type")) ==
                HOTPLUG_MACHINE_PC)
                hotplug_topo_qom_get(q, acpi, "acpi-root-pci-hotplug", acpi_obj,
                                     "acpi-root-pci-hotplug");
        }
        for (guint i = 0; i < json_array_get_length(devices); i++) {
            JsonObject *d = json_array_get_object_element(devices, i);
            const char *path = qmp_json_get_string(d, "path");

            hotplug_topo_qom_get(q, path, "parent_bus", d, "parent_bus");
            hotplug_topo_qom_get(q, path, "addr", d, "addr");
            if (hotplug_bridge_kind(qmp_json_get_string(d, "type")) != BRIDGE_NONE)
                hotplug_topo_send(q, "qom-list", hotplug_topo_args(path, NULL), d, NULL,
                                  hotplug_topo_apply_bridge);
        }
    } else if (round == 3) {
        for (guint i = 0; i < json_array_get_length(devices); i++) {
            JsonObject *d = json_array_get_object_element(devices, i);
            JsonArray *have = qmp_json_get_array(d, "has_knobs");
            JsonObject *knobs;

            if (!have)
                continue;
            knobs = json_object_new();
            json_object_set_object_member(d, "knobs", knobs);
            for (guint k = 0; k < json_array_get_length(have); k++)
                hotplug_topo_qom_get(q, qmp_json_get_string(d, "path"),
                                     json_array_get_string_element(have, k), knobs,
                                     json_array_get_string_element(have, k));
        }
    }
    if (q->outstanding == 0) /* nothing asked this round, or all failed to go out */
        round >= 3 || q->error ? hotplug_topo_finish(q) : hotplug_topology_next_round(q);
}

gboolean
hotplug_topology_query(QmpConn *conn, HotplugTopologyFunc done, gpointer opaque, GError **error)
{
    TopoQuery *q;
    JsonObject *periph, *anon;

    if (qmp_conn_get_state(conn) != QMP_CONN_READY) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE, "the VM is not connected (%s)",
                    qmp_conn_state_name(qmp_conn_get_state(conn)));
        return FALSE;
    }
    q = g_new0(TopoQuery, 1);
    q->conn = qmp_conn_ref(conn);
    q->done = done;
    q->opaque = opaque;
    q->facts = json_object_new();
    q->round = 1;
    json_object_set_array_member(q->facts, "devices", json_array_new());
    periph = json_object_new();
    json_object_set_string_member(periph, "base", "/machine/peripheral");
    anon = json_object_new();
    json_object_set_string_member(anon, "base", "/machine/peripheral-anon");
    /* kept alive by facts until the end */
    json_object_set_object_member(q->facts, "_periph", periph);
    json_object_set_object_member(q->facts, "_anon", anon);
    q->outstanding++; /* hold the round open while it is being sent */
    hotplug_topo_qom_get(q, "/machine", "type", q->facts, "type");
    hotplug_topo_send(q, "query-pci", NULL, q->facts, "query-pci", NULL);
    hotplug_topo_send(q, "qom-list", hotplug_topo_args("/machine/peripheral", NULL), periph, NULL,
                      hotplug_topo_apply_list);
    hotplug_topo_send(q, "qom-list", hotplug_topo_args("/machine/peripheral-anon", NULL), anon,
                      NULL, hotplug_topo_apply_list);
    hotplug_topo_qom_get(q, "/machine", "acpi-device", q->facts, "acpi-device");
    if (--q->outstanding == 0) {
        /* nothing went out: the connection went away meanwhile */
        if (!q->error)
            q->error = g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE, "the VM went away");
        hotplug_topo_finish(q);
    }
    return TRUE;
}

/* ---- placement -------------------------------------------------------- */

typedef struct {
    char *device;
    char *bus;
    guint slot;
    gboolean settled;    /* its plug ended */
    guint64 settled_gen; /* ... when this many queries had begun */
} HotplugReservation;

struct HotplugPlacement {
    GPtrArray *reserved; /* HotplugReservation */
    guint64 gen;         /* placement queries begun */
    guint inflight;      /* placement queries not answered yet */
};

static void
hotplug_reservation_free(HotplugReservation *r)
{
    g_free(r->device);
    g_free(r->bus);
    g_free(r);
}

HotplugPlacement *
hotplug_placement_new(void)
{
    HotplugPlacement *p = g_new0(HotplugPlacement, 1);

    p->reserved = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_reservation_free);
    return p;
}

void
hotplug_placement_free(HotplugPlacement *p)
{
    if (!p)
        return;
    g_ptr_array_unref(p->reserved);
    g_free(p);
}

static void
hotplug_placement_drop(HotplugPlacement *p, const char *device)
{
    for (guint i = p->reserved->len; i > 0; i--) {
        HotplugReservation *r = p->reserved->pdata[i - 1];
        if (g_str_equal(r->device, device))
            g_ptr_array_remove_index(p->reserved, i - 1);
    }
}

void
hotplug_placement_settle(HotplugPlacement *p, const char *device)
{
    for (guint i = 0; i < p->reserved->len; i++) {
        HotplugReservation *r = p->reserved->pdata[i];
        if (g_str_equal(r->device, device) && !r->settled) {
            r->settled = TRUE;
            r->settled_gen = p->gen;
        }
    }
    if (p->inflight == 0)
        for (guint i = p->reserved->len; i > 0; i--)
            if (((HotplugReservation *)p->reserved->pdata[i - 1])->settled)
                g_ptr_array_remove_index(p->reserved, i - 1);
}

/* Who holds bus/slot for a query that began as number gen, or NULL.  A
 * plug that ended before the query began is in QEMU's answer already. */
static const char *
hotplug_placement_holder(HotplugPlacement *p, const char *bus, guint slot, guint64 gen,
                         const char *self)
{
    for (guint i = 0; i < p->reserved->len; i++) {
        HotplugReservation *r = p->reserved->pdata[i];
        if (g_str_equal(r->device, self) || g_strcmp0(r->bus, bus) != 0 || r->slot != slot)
            continue;
        if (r->settled && r->settled_gen < gen)
            continue;
        return r->device;
    }
    return NULL;
}

void
hotplug_placement_result_free(HotplugPlacementResult *r)
{
    if (!r)
        return;
    g_free(r->bus);
    g_free(r);
}

typedef struct {
    HotplugVmQuery base;
    guint64 gen;
    char *device;
    char *bus;
    HotplugPlaceFunc done;
    gpointer opaque;
} PlaceQuery;

static const char *
hotplug_place_taken_by(HotplugPlacement *pl, const HotplugPlace *p, guint64 gen, const char *self)
{
    if (p->occupant)
        return p->occupant;
    return hotplug_placement_holder(pl, p->bus, p->slot, gen, self);
}

static HotplugPlacementResult *
hotplug_topology_choose(HotplugTopology *t, HotplugPlacement *pl, guint64 gen, const char *device,
                        const char *bus, GError **error)
{
    g_autoptr(HotplugPlacementResult) r = g_new0(HotplugPlacementResult, 1);
    const HotplugPlace *found = NULL, *any = NULL;
    const char *holder = NULL;

    for (guint i = 0; i < t->places->len; i++) {
        const HotplugPlace *p = t->places->pdata[i];

        if (p->anonymous || (bus && g_strcmp0(p->bus, bus) != 0))
            continue;
        if (!any)
            any = p;
        if (p->mechanism == HOTPLUG_MECH_NONE)
            continue;
        if (hotplug_place_taken_by(pl, p, gen, device)) {
            if (!holder)
                holder = hotplug_place_taken_by(pl, p, gen, device);
            continue;
        }
        found = p;
        break;
    }
    if (!found) {
        if (!bus) {
            g_autofree char *hint = hotplug_topology_no_place_hint(t);
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED, "%s", hint);
        } else if (!any) {
            const char *root = hotplug_root_bus_name(t->machine);
            if (root && g_str_equal(bus, root) &&
                (t->machine == HOTPLUG_MACHINE_Q35 || t->machine == HOTPLUG_MACHINE_VIRT))
                g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                            "bus %s takes no hotplug on this machine: name a pcie-root-port, "
                            "or give no bus to have one chosen (see 'vm slots')",
                            bus);
            /* not a PCI bus this machine has (a USB, SCSI or virtio-serial
             * bus, or a typo): not ours to place; QEMU checks it */
            return NULL;
        } else if (any->mechanism == HOTPLUG_MECH_NONE) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                        "bus %s takes no hotplug: %s", bus, any->why ? any->why : "unknown");
        } else {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                        "bus %s is occupied by %s (a %s takes one device; see 'vm slots')", bus,
                        holder ? holder : "another device", any->kind);
        }
        return NULL;
    }
    r->bus = g_strdup(found->bus);
    r->slot = found->slot;
    r->mechanism = found->mechanism;
    r->automatic = bus == NULL;
    return g_steal_pointer(&r);
}

static void
hotplug_vm_place_cb(HotplugTopology *t, const GError *error, gpointer opaque)
{
    PlaceQuery *q = opaque;
    HotplugVm *vm = hotplug_vm_query_end(q);
    g_autoptr(GError) local = NULL;
    HotplugPlacementResult *r = NULL;
    HotplugPlacement *pl;

    if (!vm) {
        g_autoptr(GError) gone =
            g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE, "the VM was removed");
        hotplug_topology_free(t);
        q->done(NULL, NULL, gone, q->opaque);
        goto out;
    }
    pl = hotplug_vm_get_placement(vm);
    pl->inflight--;
    if (!t) {
        q->done(vm, NULL, error, q->opaque);
        goto out;
    }
    r = hotplug_topology_choose(t, pl, q->gen, q->device, q->bus, &local);
    if (r) {
        HotplugReservation *res = g_new0(HotplugReservation, 1);
        hotplug_placement_drop(pl, q->device);
        res->device = g_strdup(q->device);
        res->bus = g_strdup(r->bus);
        res->slot = r->slot;
        g_ptr_array_add(pl->reserved, res);
    }
    hotplug_vm_set_topology(vm, t);
    q->done(vm, r, local, q->opaque);
out:
    g_free(q->device);
    g_free(q->bus);
    g_free(q);
}

/* Whether bus is a PCI bus of the machine t describes (a port's, a
 * bridge's or the root bus). */
static gboolean
hotplug_topology_has_pci_bus(const HotplugTopology *t, const char *bus)
{
    const char *root = hotplug_root_bus_name(t->machine);

    return (root && g_str_equal(bus, root)) || hotplug_topology_find(t, bus, -1) != NULL;
}

static gboolean
hotplug_vm_place_known(HotplugVm *vm, const char *device, const char *bus, HotplugPlaceFunc done,
                       gpointer opaque, GError **error)
{
    HotplugPlacement *pl = hotplug_vm_get_placement(vm);
    HotplugMachine m;
    PlaceQuery *q;

    if (!device || !*device) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no device id given");
        return FALSE;
    }
    /* pc and pseries: QEMU's own choice (the lowest free slot of the root
     * bus, which takes hotplug) and its own checks of a named bus serve;
     * q35 and virt need a port chosen and checked */
    if (hotplug_vm_get_machine(vm, &m) && m != HOTPLUG_MACHINE_Q35 && m != HOTPLUG_MACHINE_VIRT) {
        done(vm, NULL, NULL, opaque);
        return TRUE;
    }
    /* a bus that was no PCI bus at the last look (a USB controller's, say)
     * needs no fresh topology: QEMU checks it.  (A PCI bus that came since
     * is unknown to that look, and so is left to QEMU's checks too.) */
    if (bus && *bus && hotplug_vm_get_topology(vm) &&
        !hotplug_topology_has_pci_bus(hotplug_vm_get_topology(vm), bus)) {
        done(vm, NULL, NULL, opaque);
        return TRUE;
    }
    q = hotplug_vm_query_new(vm, sizeof(PlaceQuery));
    q->gen = ++pl->gen;
    q->device = g_strdup(device);
    q->bus = g_strdup(bus && *bus ? bus : NULL);
    q->done = done;
    q->opaque = opaque;
    if (!hotplug_topology_query(hotplug_vm_get_conn(vm), hotplug_vm_place_cb, q, error)) {
        hotplug_vm_query_end(q);
        g_free(q->device);
        g_free(q->bus);
        g_free(q);
        return FALSE;
    }
    pl->inflight++;
    return TRUE;
}

void
hotplug_vm_release_place(HotplugVm *vm, const char *device)
{
    hotplug_placement_settle(hotplug_vm_get_placement(vm), device);
}

/* ---- placing a device_add ---------------------------------------------- */

typedef struct {
    HotplugVmQuery base;
    char *driver;
    char *id;
    char *bus;
    HotplugPlaceFunc done;
    gpointer opaque;
} PlaceDeviceQuery;

static void
hotplug_place_device_free(PlaceDeviceQuery *q)
{
    g_free(q->driver);
    g_free(q->id);
    g_free(q->bus);
    g_free(q);
}

static void
hotplug_vm_place_device_dlp_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    PlaceDeviceQuery *q = opaque;
    HotplugVm *vm = hotplug_vm_query_end(q);
    gboolean pci = FALSE;
    g_autoptr(GError) local = NULL;

    if (!vm) {
        g_autoptr(GError) gone =
            g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE, "the VM was removed");
        q->done(NULL, NULL, gone, q->opaque);
        goto out;
    }
    if (error && error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED) {
        q->done(vm, NULL, error, q->opaque);
        goto out;
    }
    /* a PCI device has "multifunction"; anything else (or an unknown
     * driver: QEMU's own error text will answer) is not placed */
    if (!error) {
        HotplugPropTypes *types = hotplug_prop_types_new(ret);

        pci = hotplug_prop_types_lookup(types, "multifunction") != NULL;
        hotplug_vm_set_prop_types(vm, q->driver, types);
    }
    if (!pci) {
        q->done(vm, NULL, NULL, q->opaque);
        goto out;
    }
    if (!hotplug_vm_place_known(vm, q->id, NULL, q->done, q->opaque, &local))
        q->done(vm, NULL, local, q->opaque);
out:
    hotplug_place_device_free(q);
}

static gboolean
hotplug_vm_place_device_known(HotplugVm *vm, const char *driver, const char *id,
                              const char *const *props, HotplugPlaceFunc done, gpointer opaque,
                              GError **error)
{
    const char *bus = NULL;
    PlaceDeviceQuery *q;
    JsonObject *args;
    gboolean ok;

    HotplugMachine m;

    for (guint i = 0; props && props[i]; i++)
        if (g_str_has_prefix(props[i], "bus="))
            bus = props[i] + 4;
    HotplugPropTypes *known;

    if (bus ||
        (hotplug_vm_get_machine(vm, &m) && m != HOTPLUG_MACHINE_Q35 && m != HOTPLUG_MACHINE_VIRT))
        return hotplug_vm_place_known(vm, id, bus, done, opaque, error);
    /* what the driver is was learnt on this connection already */
    known = hotplug_vm_get_prop_types(vm, driver);
    if (known) {
        if (!hotplug_prop_types_lookup(known, "multifunction")) {
            done(vm, NULL, NULL, opaque);
            return TRUE;
        }
        return hotplug_vm_place_known(vm, id, NULL, done, opaque, error);
    }
    q = hotplug_vm_query_new(vm, sizeof(PlaceDeviceQuery));
    q->driver = g_strdup(driver);
    q->id = g_strdup(id);
    q->done = done;
    q->opaque = opaque;
    args = json_object_new();
    json_object_set_string_member(args, "typename", driver);
    ok = qmp_conn_execute(hotplug_vm_get_conn(vm), "device-list-properties",
                          json_node_init_object(json_node_alloc(), args),
                          hotplug_vm_place_device_dlp_cb, q, error);
    json_object_unref(args);
    if (!ok) {
        hotplug_vm_query_end(q);
        hotplug_place_device_free(q);
    }
    return ok;
}

char *
hotplug_placement_result_addr(const HotplugPlacementResult *r)
{
    return g_strdup_printf("0x%x", r->slot);
}

/* ---- the machine first -------------------------------------------------- */

/* A placement asked before the machine is known: ask it (qom-get /machine
 * type), then go on. */
typedef struct {
    HotplugVmQuery base;
    char *driver; /* NULL: hotplug_vm_place */
    char *id;
    char *bus;
    char **props;
    HotplugPlaceFunc done;
    gpointer opaque;
} MachineFirst;

static void
hotplug_machine_first_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    MachineFirst *q = opaque;
    HotplugVm *vm = hotplug_vm_query_end(q);
    g_autoptr(GError) local = NULL;
    gboolean ok;

    if (!vm) {
        local = g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE, "the VM was removed");
        q->done(NULL, NULL, local, q->opaque);
    } else if (error && error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED) {
        q->done(vm, NULL, error, q->opaque);
    } else {
        if (!error)
            hotplug_vm_set_machine(vm,
                                   hotplug_topology_machine_from_type(qmp_json_node_string(ret)));
        ok = q->driver ? hotplug_vm_place_device_known(vm, q->driver, q->id,
                                                       (const char *const *)q->props, q->done,
                                                       q->opaque, &local)
                       : hotplug_vm_place_known(vm, q->id, q->bus, q->done, q->opaque, &local);
        if (!ok)
            q->done(vm, NULL, local, q->opaque);
    }
    g_free(q->driver);
    g_free(q->id);
    g_free(q->bus);
    g_strfreev(q->props);
    g_free(q);
}

static gboolean
hotplug_machine_first(HotplugVm *vm, const char *driver, const char *id, const char *bus,
                      const char *const *props, HotplugPlaceFunc done, gpointer opaque,
                      GError **error)
{
    MachineFirst *q = hotplug_vm_query_new(vm, sizeof(MachineFirst));
    JsonObject *args = json_object_new();
    gboolean ok;

    q->driver = g_strdup(driver);
    q->id = g_strdup(id);
    q->bus = g_strdup(bus);
    q->props = g_strdupv((char **)props);
    q->done = done;
    q->opaque = opaque;
    json_object_set_string_member(args, "path", "/machine");
    json_object_set_string_member(args, "property", "type");
    ok = qmp_conn_execute(hotplug_vm_get_conn(vm), "qom-get",
                          json_node_init_object(json_node_alloc(), args), hotplug_machine_first_cb,
                          q, error);
    json_object_unref(args);
    if (!ok) {
        hotplug_vm_query_end(q);
        g_free(q->driver);
        g_free(q->id);
        g_free(q->bus);
        g_strfreev(q->props);
        g_free(q);
    }
    return ok;
}

gboolean
hotplug_vm_place(HotplugVm *vm, const char *device, const char *bus, HotplugPlaceFunc done,
                 gpointer opaque, GError **error)
{
    if (!hotplug_vm_get_machine(vm, NULL))
        return hotplug_machine_first(vm, NULL, device, bus, NULL, done, opaque, error);
    return hotplug_vm_place_known(vm, device, bus, done, opaque, error);
}

gboolean
hotplug_vm_place_device(HotplugVm *vm, const char *driver, const char *id, const char *const *props,
                        HotplugPlaceFunc done, gpointer opaque, GError **error)
{
    if (!hotplug_vm_get_machine(vm, NULL))
        return hotplug_machine_first(vm, driver, id, NULL, props, done, opaque, error);
    return hotplug_vm_place_device_known(vm, driver, id, props, done, opaque, error);
}
