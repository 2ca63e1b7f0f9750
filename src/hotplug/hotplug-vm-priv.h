/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VM engine's internals that its topology and placement
 * (hotplug-topology.c) share with it (hotplug-vm.c). */
#pragma once

#include "hotplug-priv.h"
#include "hotplug-props.h"
#include "hotplug-topology.h"
#include "hotplug-vm.h"

/* Per-VM placement state (hotplug-topology.c): places reserved for plugs
 * under way. */
typedef struct HotplugPlacement HotplugPlacement;
typedef struct HotplugTopology HotplugTopology;
HotplugPlacement *hotplug_placement_new(void);
void hotplug_placement_free(HotplugPlacement *p);
/* The plug of device ended: its place counts as taken for topology
 * queries that began before now, free (or occupied, per QEMU) after. */
void hotplug_placement_settle(HotplugPlacement *p, const char *device);
HotplugPlacement *hotplug_vm_get_placement(HotplugVm *vm);
/* A fresh topology (taken): cached, and pending unplugs learn their
 * mechanism from it. */
void hotplug_vm_set_topology(HotplugVm *vm, HotplugTopology *t);

/* The topology of the last query on this connection, or NULL. */
HotplugTopology *hotplug_vm_get_topology(HotplugVm *vm);
/* device-list-properties of driver as learnt on this connection (NULL:
 * not asked yet); set takes types. */
HotplugPropTypes *hotplug_vm_get_prop_types(HotplugVm *vm, const char *driver);
void hotplug_vm_set_prop_types(HotplugVm *vm, const char *driver, HotplugPropTypes *types);

/* Anything in flight that points back at the VM: the first member of a
 * query's state; the VM cuts it loose when freed. */
typedef struct {
    HotplugVm *vm; /* NULL once the VM is freed */
} HotplugVmQuery;

/* A zeroed query of size bytes (at least a HotplugVmQuery) on vm's list. */
gpointer hotplug_vm_query_new(HotplugVm *vm, gsize size);
/* The query's VM (NULL if freed); the query leaves the VM's list. */
HotplugVm *hotplug_vm_query_end(gpointer query);

/* The machine QEMU said it is (qom-get /machine type, asked once per
 * connection); FALSE while unknown. */
gboolean hotplug_vm_get_machine(HotplugVm *vm, HotplugMachine *out);
void hotplug_vm_set_machine(HotplugVm *vm, HotplugMachine m);
