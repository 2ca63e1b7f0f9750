/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VFIO host device hotplug: a host PCI function handed to a VM with
 * device_add vfio-pci, after checking the host (sysfs), and the accounting
 * that never hands one host device to two VMs.
 *
 * The accounting is a HotplugHostdevRegistry: host PCI address -> (VM,
 * device ID), shared by every VM of a process.  With a state file (the
 * daemon's) it survives restarts; without one (direct mode) it holds only
 * what QEMU itself shows (hotplug_hostdev_sync).  A claim is made before
 * device_add goes out and released when QEMU refused the device_add, or
 * when QEMU confirmed the unplug (outcome deleted or deleted-late): never
 * on not-deleted, guest-error or vm-gone. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-vm.h"

G_BEGIN_DECLS

/* The default sysfs root; HotplugHostdev takes another one for tests. */
#define HOTPLUG_SYSFS_ROOT_DEFAULT "/sys"
/* Where processes are looked for (who has /dev/vfio/N open). */
#define HOTPLUG_PROC_ROOT_DEFAULT "/proc"
/* The lock per IOMMU group shared by hotplugd and direct mode:
 * LOCK_ROOT/vfio-group-N.lock, flock()ed by the claimer while it holds the
 * group, holding one JSON line {"pid", "vm", "device", "persistent"}
 * (persistent: a hotplugd, whose claims survive it, plus "owner": its state
 * file; emptied on release). */
#define HOTPLUG_LOCK_ROOT_DEFAULT "/run/qmp-hotplug"

/* The IOMMU group of addr under sysfs_root (NULL: /sys), or NULL. */
char *hotplug_hostdev_group_of(const char *sysfs_root, const char *addr);
/* A process (not this one) with /dev/vfio/GROUP open, found in
 * PROC_ROOT/PID/fd (NULL: /proc), or 0.  *comm (may be NULL) gets its
 * name. */
int hotplug_hostdev_group_user(const char *proc_root, const char *group, char **comm);
/* TRUE when some process holds group's lock under lock_root; *holder gets
 * what the lock file says (or NULL), held or not (unref it). */
gboolean hotplug_hostdev_lock_peek(const char *lock_root, const char *group, JsonObject **holder);

/* Parse a PCI address DDDD:BB:DD.F (hex domain, bus, device <= 1f,
 * function 0-7).  *normalized gets it in lowercase, as sysfs and QEMU
 * write it.  HOTPLUG_ERROR_INVALID otherwise. */
gboolean hotplug_pci_addr_parse(const char *text, char **normalized, GError **error);

/* Check the host under sysfs_root (NULL: /sys): the device exists, is
 * bound to vfio-pci, has an IOMMU group, and every other device of that
 * group is bound to vfio-pci too, or to no driver (else VFIO refuses the
 * group).  *iommu_group (may be NULL) gets the group number.  Errors
 * (HOTPLUG_ERROR_FAILED) say what is wrong and how to fix it. */
gboolean hotplug_hostdev_check_host(const char *sysfs_root, const char *addr, char **iommu_group,
                                    GError **error);

/* ---- the registry ----------------------------------------------------- */

typedef struct HotplugHostdevRegistry HotplugHostdevRegistry;

/* state_file: where the claims live across restarts (JSON, rewritten
 * atomically on every change), or NULL for memory only.  A missing file
 * is an empty registry; an unreadable or malformed one is an error. */
HotplugHostdevRegistry *hotplug_hostdev_registry_new(const char *state_file, GError **error);
void hotplug_hostdev_registry_free(HotplugHostdevRegistry *reg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugHostdevRegistry, hotplug_hostdev_registry_free)

/* Where the registry looks at the host: sysfs_root (NULL: /sys) for IOMMU
 * groups, lock_root (NULL: no locks shared with other processes) for the
 * lock per group, proc_root (NULL: /proc) for other users of /dev/vfio/N.
 * Claims read from the state file take their groups' locks here (a lock
 * held elsewhere is logged).  Never called: no groups until the first
 * hotplug_hostdev_new() gives its sysfs_root, no locks. */
void hotplug_hostdev_registry_set_host(HotplugHostdevRegistry *reg, const char *sysfs_root,
                                       const char *lock_root, const char *proc_root);
const char *hotplug_hostdev_registry_get_lock_root(HotplugHostdevRegistry *reg);
const char *hotplug_hostdev_registry_get_proc_root(HotplugHostdevRegistry *reg);

/* Told of every claim ("claimed") and release ("released", why may be
 * NULL); group may be NULL. */
typedef void (*HotplugHostdevNotifyFunc)(HotplugHostdevRegistry *reg, const char *event,
                                         const char *addr, const char *group, const char *vm,
                                         const char *device, const char *why, gpointer opaque);
void hotplug_hostdev_registry_set_notify(HotplugHostdevRegistry *reg,
                                         HotplugHostdevNotifyFunc notify, gpointer opaque);

/* Claim addr (normalized) for device of vm.  Claiming it again for the
 * same (vm, device) is fine; for anything else HOTPLUG_ERROR_BUSY
 * "... already assigned to a VM we manage (VM vm1, device gpu0)".  Also
 * fails when the state file cannot be written (nothing is claimed then). */
gboolean hotplug_hostdev_registry_claim(HotplugHostdevRegistry *reg, const char *addr,
                                        const char *vm, const char *device, GError **error);
/* As claim, and also claims are per IOMMU group: a member of a group
 * another VM holds is refused (naming it); a group whose lock another
 * process holds, or whose /dev/vfio/N another process has open, is refused
 * naming that process.  For a new assignment (hostdev add); claim is for
 * what QEMU already shows. */
gboolean hotplug_hostdev_registry_claim_new(HotplugHostdevRegistry *reg, const char *addr,
                                            const char *vm, const char *device, GError **error);
/* Would claim_new succeed now?  Nothing is claimed or locked (for
 * refusing before the guest is even looked at; claim_new decides). */
gboolean hotplug_hostdev_registry_can_claim(HotplugHostdevRegistry *reg, const char *addr,
                                            const char *vm, const char *device, GError **error);
/* Release addr; why (may be NULL) goes to the notify function. */
gboolean hotplug_hostdev_registry_release_why(HotplugHostdevRegistry *reg, const char *addr,
                                              const char *why, GError **error);
/* Release addr.  FALSE only when the state file could not be written
 * (the claim is dropped in memory all the same). */
gboolean hotplug_hostdev_registry_release(HotplugHostdevRegistry *reg, const char *addr,
                                          GError **error);
/* TRUE when addr is claimed; *vm and *device (may be NULL) are borrowed. */
gboolean hotplug_hostdev_registry_lookup(HotplugHostdevRegistry *reg, const char *addr,
                                         const char **vm, const char **device);
/* The address claimed for (vm, device), or NULL (borrowed). */
const char *hotplug_hostdev_registry_find(HotplugHostdevRegistry *reg, const char *vm,
                                          const char *device);
/* Release every claim of vm (the VM was removed from the daemon, or its
 * QEMU is known to be gone).  Returns how many went. */
guint hotplug_hostdev_registry_release_vm(HotplugHostdevRegistry *reg, const char *vm);
/* [{address, vm, device, group?}], sorted by address. */
JsonNode *hotplug_hostdev_registry_to_json(HotplugHostdevRegistry *reg);

/* ---- one VM's host devices ------------------------------------------------ */

typedef struct HotplugHostdev HotplugHostdev;

/* Host devices of vm (borrowed: free this first), accounted in reg
 * (borrowed, shared by all VMs; NULL: a private in-memory one).  Listens
 * to vm's operations to release claims when QEMU confirms an unplug.
 * sysfs_root NULL: /sys. */
HotplugHostdev *hotplug_hostdev_new(HotplugVm *vm, HotplugHostdevRegistry *reg,
                                    const char *sysfs_root);
void hotplug_hostdev_free(HotplugHostdev *hd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugHostdev, hotplug_hostdev_free)

HotplugHostdevRegistry *hotplug_hostdev_get_registry(HotplugHostdev *hd);

typedef void (*HotplugHostdevSyncFunc)(HotplugHostdev *hd, const GError *error, gpointer opaque);

/* Align the registry with what QEMU shows for this VM: every vfio-pci
 * device under /machine/peripheral and /machine/peripheral-anon (its
 * "host" property) is claimed for it, and a claim of this VM whose device
 * QEMU no longer has (and no operation is pending on) is released.  For
 * direct mode before an add, and for the daemon on every (re)connect.
 * done is called once, later; not at all if hd is freed first. */
gboolean hotplug_hostdev_sync(HotplugHostdev *hd, HotplugHostdevSyncFunc done, gpointer opaque,
                              GError **error);

/* Validate pci_addr, check the host, claim it, then device_add vfio-pci
 * {"driver": "vfio-pci", "id": id, "host": addr}.  Refused before anything
 * is sent (NULL + error): HOTPLUG_ERROR_INVALID for a malformed address or
 * ID, HOTPLUG_ERROR_FAILED for a host check, HOTPLUG_ERROR_BUSY when the
 * device is already assigned to a VM we manage. */
HotplugOp *hotplug_hostdev_add(HotplugHostdev *hd, const char *pci_addr, const char *id,
                               GError **error);
/* The same at a place in the guest: bus= and addr= of the device_add
 * (either NULL: QEMU's choice). */
HotplugOp *hotplug_hostdev_add_at(HotplugHostdev *hd, const char *pci_addr, const char *id,
                                  const char *bus, const char *guest_addr, GError **error);

/* This VM's QEMU is gone (the caller decides how it knows): release its
 * claims, except those whose /dev/vfio/N is still open in some process (a
 * QEMU still exiting, or anyone else).  Returns how many were kept: call
 * again later for those. */
guint hotplug_hostdev_tenant_gone(HotplugHostdev *hd);

/* Unplug host device id with the engine's outcomes; its claim goes when
 * the outcome is deleted or deleted-late.  As hotplug_vm_unplug(). */
HotplugOp *hotplug_hostdev_del(HotplugHostdev *hd, const char *id, const HotplugUnplugOptions *opts,
                               gboolean *attached, GError **error);

G_END_DECLS
