/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A VM's PCI topology as QEMU itself describes it: every place a device
 * can be hot-plugged (a pcie-root-port or downstream port, a pci-bridge
 * slot, the root bus of pc or pseries), who occupies it, and the hotplug
 * mechanism that serves it (ACPI, native PCIe, pseries DRC).  Built from
 * query-pci and qom-get/qom-list on the machine, its ACPI device, and the
 * bridges and ports; placement of new devices on top of it. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-vm.h"
#include "qmp-conn.h"

G_BEGIN_DECLS

typedef enum {
    HOTPLUG_MECH_NONE,        /* no hotplug here */
    HOTPLUG_MECH_ACPI,        /* ACPI PCI hotplug (PIIX4 / ICH9) */
    HOTPLUG_MECH_PCIE_NATIVE, /* PCIe native hotplug (pciehp) */
    HOTPLUG_MECH_SPAPR,       /* pseries DRC */
} HotplugMechanism;

/* "none", "acpi", "pcie-native", "spapr" */
const char *hotplug_mechanism_name(HotplugMechanism m);

typedef enum {
    HOTPLUG_MACHINE_OTHER,
    HOTPLUG_MACHINE_PC, /* i440fx */
    HOTPLUG_MACHINE_Q35,
    HOTPLUG_MACHINE_VIRT, /* arm/aarch64 virt */
    HOTPLUG_MACHINE_PSERIES,
} HotplugMachine;

const char *hotplug_machine_name(HotplugMachine m);
/* From QEMU's machine type name ("pc-q35-7.2-machine" -> Q35). */
HotplugMachine hotplug_topology_machine_from_type(const char *type);

/* One hotpluggable place.  Fields are read-only for users. */
typedef struct {
    char *bus;        /* the bus name to give as bus= */
    char *bus_path;   /* the bus's QOM path */
    guint slot;       /* the device slot on that bus (a port: 0) */
    const char *kind; /* "pcie-root-port", "pcie-downstream-port",
                       * "pci-bridge", "root-bus" */
    char *port;       /* id of the port or bridge that offers it (NULL: root bus) */
    HotplugMechanism mechanism;
    char *why;          /* mechanism none: why not */
    char *occupant;     /* device id there ("built-in: ..." for board devices), or NULL */
    gboolean anonymous; /* its port has no id, so bus= cannot reach it: never chosen */
} HotplugPlace;

typedef struct HotplugTopology HotplugTopology;

void hotplug_topology_free(HotplugTopology *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugTopology, hotplug_topology_free)

typedef void (*HotplugTopologyFunc)(HotplugTopology *t /* taken, NULL on error */,
                                    const GError *error, gpointer opaque);

/* Ask QEMU (the connection must be READY).  done is called exactly once,
 * also with QMP_ERROR_CLOSED when the connection goes first. */
gboolean hotplug_topology_query(QmpConn *conn, HotplugTopologyFunc done, gpointer opaque,
                                GError **error);

HotplugMachine hotplug_topology_get_machine(const HotplugTopology *t);
/* QEMU's machine type name ("pc-q35-7.2-machine"). */
const char *hotplug_topology_get_machine_type(const HotplugTopology *t);
/* Whether the machine can hot-plug memory at all (aarch64 virt: only
 * with its ACPI GED device); *why (borrowed) says why not. */
gboolean hotplug_topology_memory_hotplug(const HotplugTopology *t, const char **why);
/* Every place (HotplugPlace, borrowed), in placement order. */
GPtrArray *hotplug_topology_get_places(const HotplugTopology *t);
/* The place for bus (and slot, -1: the port's one slot or the lowest
 * free one), or NULL. */
const HotplugPlace *hotplug_topology_find(const HotplugTopology *t, const char *bus, gint slot);
/* The mechanism serving the peripheral device id (NONE when unknown). */
HotplugMechanism hotplug_topology_device_mechanism(const HotplugTopology *t, const char *device);
/* Whether the topology knows where device is (QEMU's answer had it, or
 * it was noted since), also when that is no place of its own (a USB bus). */
gboolean hotplug_topology_knows_device(const HotplugTopology *t, const char *device);
/* A device plugged since the topology was asked: device_add put it on bus
 * (the bus= name given).  A bus that is no place of this topology (a USB,
 * SCSI or virtio-serial bus) is noted as no mechanism. */
void hotplug_topology_note_device(HotplugTopology *t, const char *device, const char *bus);
/* device is gone (DEVICE_DELETED): where it was is known no more. */
void hotplug_topology_forget_device(HotplugTopology *t, const char *device);
/* The mechanisms that serve some place of the VM, lowest enum first. */
GArray *hotplug_topology_mechanisms(const HotplugTopology *t);
/* {machine, machine_type, places: [{bus, slot, addr, kind, port, mechanism,
 * why, occupant}]} */
JsonNode *hotplug_topology_to_json(const HotplugTopology *t);

/* Pure model, for tests and the query above: the answers QEMU gave.
 * facts is an object {"type", "query-pci", "acpi": {prop: value},
 * "devices": [{id, path, type, parent_bus, addr, bus_child, knobs: {...}}]}. */
HotplugTopology *hotplug_topology_new_from_facts(JsonObject *facts, GError **error);

/* ---- placement ------------------------------------------------------- */

/* Where a device goes. */
typedef struct {
    char *bus;
    guint slot;
    HotplugMechanism mechanism;
    gboolean automatic; /* chosen by the product */
} HotplugPlacementResult;

void hotplug_placement_result_free(HotplugPlacementResult *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugPlacementResult, hotplug_placement_result_free)

/* vm is NULL (and error VM_GONE) when the VM was freed meanwhile. */
typedef void (*HotplugPlaceFunc)(HotplugVm *vm,
                                 HotplugPlacementResult *r /* taken, NULL on error */,
                                 const GError *error, gpointer opaque);

/* On pc and pseries (whose root bus takes hotplug) QEMU's own choice and
 * checks serve: done is called at once, with no place.  On q35 and virt:
 * choose a place for device (bus NULL: automatic, the first free place
 * whose mechanism works; else that bus, refused when it is occupied or
 * takes no hotplug).  The place is reserved for device until its plug
 * ends (or hotplug_vm_release_place), so two adds at once never get the
 * same place.  Errors: HOTPLUG_ERROR_BUSY (occupied, naming the
 * occupant), HOTPLUG_ERROR_UNSUPPORTED (no free place: says how to add a
 * port).  A bus that is no PCI bus of the machine (a USB or SCSI bus, or
 * a name QEMU does not know) is not placed: done is called with no place
 * and no error, and QEMU's own checks answer. */
gboolean hotplug_vm_place(HotplugVm *vm, const char *device, const char *bus, HotplugPlaceFunc done,
                          gpointer opaque, GError **error);
void hotplug_vm_release_place(HotplugVm *vm, const char *device);

/* "0x10": the addr= of a result. */
char *hotplug_placement_result_addr(const HotplugPlacementResult *r);

/* Place a device_add of driver with props: bus= in props places by hand
 * (hotplug_vm_place with that bus); without, a PCI driver (one with a
 * "multifunction" property, per device-list-properties) is placed
 * automatically, and anything else is not placed (done gets r NULL and
 * error NULL). */
gboolean hotplug_vm_place_device(HotplugVm *vm, const char *driver, const char *id,
                                 const char *const *props, HotplugPlaceFunc done, gpointer opaque,
                                 GError **error);

/* The text of the refusal when no place is free, for the machine. */
char *hotplug_topology_no_place_hint(const HotplugTopology *t);

G_END_DECLS
