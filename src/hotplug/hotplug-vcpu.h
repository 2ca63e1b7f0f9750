/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vCPU hot(un)plug: QEMU's hotpluggable CPU entities, which of them to
 * plug or unplug, and the operations that do it (on the engine of
 * hotplug-vm.h).
 *
 * query-hotpluggable-cpus is the source of truth.  An entity is what
 * device_add/device_del act on: one vCPU on x86, one core of
 * vcpus-count threads on pseries.  Entities are numbered in QEMU's own
 * order of possible CPUs (the reverse of the reply's order), and vCPU ids
 * are handed out in that order, vcpus-count per entity: on x86 and
 * pseries this is QEMU's cpu-index.
 *
 * A vCPU this code plugs gets the device id "cpu-" followed by its
 * topology, e.g. cpu-s0-c1-t0 (s socket, d die, cl cluster, c core, t
 * thread, each only when QEMU reports it), or cpu-v<first vCPU id> when
 * QEMU reports none of them.  It lives at /machine/peripheral/<id>, where
 * the engine confirms its removal; that is the same object as the
 * entity's qom-path. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-vm.h"
#include "qmp-conn.h"

G_BEGIN_DECLS

typedef struct HotplugCpuSlots HotplugCpuSlots;
typedef struct HotplugCpuEntity HotplugCpuEntity;

/* Join the replies of query-hotpluggable-cpus and query-cpus-fast
 * (cpus_fast may be NULL: no host thread ids).  Errors:
 * HOTPLUG_ERROR_UNSUPPORTED when the machine has no hotpluggable CPUs. */
HotplugCpuSlots *hotplug_cpu_slots_new(JsonNode *hotpluggable, JsonNode *cpus_fast,
                                       GError **error);
void hotplug_cpu_slots_free(HotplugCpuSlots *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugCpuSlots, hotplug_cpu_slots_free)

guint hotplug_cpu_slots_n_entities(const HotplugCpuSlots *s);
/* Entity i, in QEMU's order of possible CPUs.  Borrowed. */
const HotplugCpuEntity *hotplug_cpu_slots_entity(const HotplugCpuSlots *s, guint i);
/* vCPUs present (plugged), and the most there can be (maxcpus). */
guint hotplug_cpu_slots_present_vcpus(const HotplugCpuSlots *s);
guint hotplug_cpu_slots_max_vcpus(const HotplugCpuSlots *s);
/* The entity holding vCPU id, or NULL. */
const HotplugCpuEntity *hotplug_cpu_slots_find_vcpu(const HotplugCpuSlots *s, guint vcpu);
/* The entity whose device id (own or planned) is id, or NULL. */
const HotplugCpuEntity *hotplug_cpu_slots_find_device(const HotplugCpuSlots *s, const char *id);

guint hotplug_cpu_entity_index(const HotplugCpuEntity *e);
const char *hotplug_cpu_entity_type(const HotplugCpuEntity *e);
guint hotplug_cpu_entity_vcpus_count(const HotplugCpuEntity *e);
/* Its first vCPU id; it holds first .. first + vcpus_count - 1. */
guint hotplug_cpu_entity_first_vcpu(const HotplugCpuEntity *e);
/* The props object exactly as QEMU reported it.  Borrowed. */
JsonObject *hotplug_cpu_entity_props(const HotplugCpuEntity *e);
/* A topology prop ("node-id", "core-id" ...), or -1 when QEMU gave none. */
gint64 hotplug_cpu_entity_prop(const HotplugCpuEntity *e, const char *name);
/* NULL when the slot is free. */
const char *hotplug_cpu_entity_qom_path(const HotplugCpuEntity *e);
gboolean hotplug_cpu_entity_present(const HotplugCpuEntity *e);
/* Present and created with the machine (-smp): never unplugged. */
gboolean hotplug_cpu_entity_is_boot(const HotplugCpuEntity *e);
/* The device id: its own when plugged under /machine/peripheral, the one
 * this code gives it when free, NULL when it is a boot CPU or was plugged
 * without an id. */
const char *hotplug_cpu_entity_device_id(const HotplugCpuEntity *e);
/* Host thread ids of its online vCPUs (query-cpus-fast), -1 per vCPU
 * QEMU did not report.  n is set to vcpus_count. */
const gint64 *hotplug_cpu_entity_thread_ids(const HotplugCpuEntity *e, guint *n);

/* The "vcpu list" rows: [{entity, vcpus: [..], type, vcpus-count, props,
 * socket-id .. thread-id, node (or null), state, qom-path, device,
 * thread-ids}] where state is online/offline, or plugging/unplugging
 * when vm (may be NULL) has an operation on the entity's device. */
JsonNode *hotplug_cpu_slots_to_json(const HotplugCpuSlots *s, HotplugVm *vm);

/* ---- choosing entities (all return borrowed entities, in order) ---- */

/* What "vcpu set COUNT" plugs (*plug TRUE, lowest free entities first)
 * or unplugs (*plug FALSE, highest present ones first, boot CPUs never).
 * Empty when COUNT vCPUs are present already.  Errors name the limit:
 * HOTPLUG_ERROR_UNSUPPORTED no free slot (maxcpus), HOTPLUG_ERROR_INVALID
 * boot vCPUs or a COUNT that whole entities cannot make. */
GPtrArray *hotplug_cpu_select_count(const HotplugCpuSlots *s, guint count, gboolean *plug,
                                    GError **error);
/* The entities of vCPU ids, to plug (enable: each must be free) or
 * unplug (each present, not a boot CPU, with a device id).  An id that is
 * one thread of a vcpus-count > 1 entity is an error naming the entity
 * unless all of its vCPU ids are given.  node >= 0: each must be on that
 * NUMA node. */
GPtrArray *hotplug_cpu_select_ids(const HotplugCpuSlots *s, const guint *ids, guint n_ids,
                                  gboolean enable, gint64 node, GError **error);
/* n free entities on NUMA node `node` (lowest first).  Errors:
 * HOTPLUG_ERROR_INVALID no such node, HOTPLUG_ERROR_UNSUPPORTED not
 * enough free slots there (the message tells how many are). */
GPtrArray *hotplug_cpu_select_node(const HotplugCpuSlots *s, gint64 node, guint n,
                                   GError **error);

/* ---- operations ------------------------------------------------------ */

/* device_add of a free entity: driver = its type, id = its device id,
 * props passed through as QEMU reported them.  Outcome added/rejected. */
HotplugOp *hotplug_vcpu_plug(HotplugVm *vm, const HotplugCpuEntity *e, GError **error);
/* device_del of a present entity (HOTPLUG_KIND_VCPU), with the engine's
 * deadline, confirmation and retries. */
HotplugOp *hotplug_vcpu_unplug(HotplugVm *vm, const HotplugCpuEntity *e,
                               const HotplugUnplugOptions *opts, gboolean *attached,
                               GError **error);

/* For people: what a QEMU error on a vCPU plug/unplug means and what to
 * do, or NULL when there is nothing to add to QEMU's text (legacy CPU
 * hotplug mode, boot CPU, maxcpus ...). */
const char *hotplug_vcpu_error_hint(const GError *error);

/* ---- querying ----------------------------------------------------------- */

/* slots (NULL on error) is handed over: done frees it. */
typedef void (*HotplugCpuSlotsFunc)(QmpConn *conn, HotplugCpuSlots *slots, const GError *error,
                                    gpointer opaque);
/* Send query-hotpluggable-cpus and query-cpus-fast; done gets the joined
 * slots (or an error), exactly once. */
gboolean hotplug_cpu_slots_query(QmpConn *conn, HotplugCpuSlotsFunc done, gpointer opaque,
                                 GError **error);

G_END_DECLS
