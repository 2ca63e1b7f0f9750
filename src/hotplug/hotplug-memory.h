/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Memory hot(un)plug with pc-dimm devices, on the engine of hotplug-vm.h.
 *
 * A DIMM ID is two QEMU objects: the backend memory-backend-ram with the
 * id "mem-ID", and the pc-dimm device ID using it (memdev).  Adding is a
 * two-step composite plug (object-add, device_add) whose backend is
 * deleted again when device_add fails; removing is an unplug of the
 * device whose cleanup (object-del of its backend, as query-memory-devices
 * names it) runs only once QEMU confirmed the DIMM gone. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-vm.h"

G_BEGIN_DECLS

/* The granularity checked before anything is sent: QEMU's pc-dimm on x86
 * wants multiples of 2 MiB (its own check covers other machines). */
#define HOTPLUG_MEMORY_ALIGN (G_GUINT64_CONSTANT(2) * 1024 * 1024)

/* "512M", "1G", "1048576" (bytes), K/M/G/T binary suffixes; must be a
 * non-zero multiple of HOTPLUG_MEMORY_ALIGN (HOTPLUG_ERROR_INVALID). */
gboolean hotplug_memory_parse_size(const char *text, guint64 *out, GError **error);

/* "mem-ID" */
char *hotplug_memory_backend_for(const char *id);
/* The first "dimmN" that neither a memory device (query-memory-devices
 * reply) nor a backend object uses. */
char *hotplug_memory_free_id(JsonNode *memory_devices);
/* The backend object id of memory device id (from its memdev path), or
 * NULL when no memory device has that id. */
char *hotplug_memory_backend_of(JsonNode *memory_devices, const char *id);

/* Refuse early what QEMU would refuse, with what to do about it:
 * machine_memory is qom-get /machine memory ({size, slots, max-size}),
 * memory_devices the query-memory-devices reply.  Errors:
 * HOTPLUG_ERROR_UNSUPPORTED: no memory hotplug (no slots/maxmem), slots
 * all used, or maxmem would be passed. */
gboolean hotplug_memory_check_room(JsonNode *machine_memory, JsonNode *memory_devices,
                                   guint64 size, GError **error);

/* object-add memory-backend-ram (size) + device_add pc-dimm (id, memdev,
 * node when node >= 0), as one composite plug of HOTPLUG_KIND_MEMORY. */
HotplugOp *hotplug_memory_add(HotplugVm *vm, const char *id, guint64 size, gint64 node,
                              GError **error);
/* Unplug DIMM id; backend (may be NULL: none) is deleted after the DIMM
 * is gone.  A guest that cannot offline the memory refuses through
 * ACPI_DEVICE_OST: guest-error; retries re-issue device_del. */
HotplugOp *hotplug_memory_del(HotplugVm *vm, const char *id, const char *backend,
                              const HotplugUnplugOptions *opts, gboolean *attached,
                              GError **error);

/* The "memory list" rows from a query-memory-devices reply: [{id, type,
 * size, node, slot, addr, memdev, backend, hotplugged, hotpluggable,
 * pending}], pending being the operation vm (may be NULL) has on it. */
JsonNode *hotplug_memory_list_to_json(JsonNode *memory_devices, HotplugVm *vm);

/* For people: what a QEMU error on a memory plug means and what to do, or
 * NULL. */
const char *hotplug_memory_error_hint(const GError *error);

G_END_DECLS
