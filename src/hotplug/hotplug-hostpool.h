/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool of host devices: every PCI function bound to vfio-pci, with its
 * vendor:device, IOMMU group and the group's members, read from sysfs; and
 * each one's state for `hostdev list`: claimed by a VM (this process's
 * registry or another process's lock per group), in use by a process we do
 * not manage (it has /dev/vfio/N open), or free.
 *
 * Bindings and unbindings after start are seen through kernel uevents
 * (NETLINK_KOBJECT_UEVENT: the kernel sends "bind"/"unbind" for pci
 * devices, "add"/"remove" for vfio groups) read on a libevent fd; where the
 * socket cannot be had the pool re-reads sysfs every second.  Either way a
 * change is reported as "available" (now bound to vfio-pci) or "gone". */
#pragma once

#include <event2/event.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-hostdev.h"

G_BEGIN_DECLS

typedef struct HotplugHostpool HotplugHostpool;

/* event "available" or "gone"; dev (borrowed) is {address, vendor-device,
 * group, members} as last seen. */
typedef void (*HotplugHostpoolChangeFunc)(HotplugHostpool *pool, const char *event, JsonObject *dev,
                                          gpointer opaque);

/* sysfs_root NULL: /sys.  The first scan happens here (no changes are
 * reported for it). */
HotplugHostpool *hotplug_hostpool_new(const char *sysfs_root);
void hotplug_hostpool_free(HotplugHostpool *pool);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugHostpool, hotplug_hostpool_free)

void hotplug_hostpool_set_change_func(HotplugHostpool *pool, HotplugHostpoolChangeFunc func,
                                      gpointer opaque);
/* Re-read sysfs now; changes go to the change function.  Returns how many. */
guint hotplug_hostpool_rescan(HotplugHostpool *pool);
/* Watch for changes on base: uevents, else a 1 s timer.  Also calls tick
 * (may be NULL) after each rescan, for callers with their own re-checks. */
void hotplug_hostpool_watch(HotplugHostpool *pool, struct event_base *base,
                            void (*tick)(HotplugHostpool *pool, gpointer opaque),
                            gpointer tick_opaque);
/* "uevent", "poll" (watching by timer) or "none" (not watching). */
const char *hotplug_hostpool_get_mechanism(HotplugHostpool *pool);

/* [{address, vendor-device, group, members, state, ...}] sorted by address
 * after a rescan.  state: "claimed" (vm, device; pid of the claimer when it
 * is another process, "claimer-running": false for a hotplugd that is not
 * running), "in-use" (pid, process: /dev/vfio/N is open in a process no
 * claim names) or "free".  reg may be NULL; lock_root NULL: no locks looked
 * at; proc_root NULL: /proc. */
JsonNode *hotplug_hostpool_list(HotplugHostpool *pool, HotplugHostdevRegistry *reg,
                                const char *lock_root, const char *proc_root);

G_END_DECLS
