/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Disk hotplug: a virtio-blk-pci device on its own blockdev nodes and
 * IOThreads, plugged and unplugged as one composite operation.
 *
 * Everything a disk owns in QEMU is named after the disk's device ID, so
 * that a later `disk del` (maybe from another process) finds it again:
 *
 *   ID-file       the "file" protocol node (blockdev-add driver=file)
 *   ID-fmt        the format node (raw or qcow2) on top of ID-file; the
 *                 device's drive
 *   ID-iothreadK  IOThread object K (K = 0 .. N-1) of --iothreads N
 *   ID            the virtio-blk-pci device
 *
 * Node names are limited by QEMU to 31 characters, so ID is at most
 * HOTPLUG_DISK_ID_MAX characters: a letter, then letters, digits, '-',
 * '.' or '_'. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-vm.h"
#include "qmp-greeting.h"

G_BEGIN_DECLS

#define HOTPLUG_DISK_ID_MAX 26
#define HOTPLUG_DISK_IOTHREADS_MAX 64
#define HOTPLUG_DISK_QUEUES_MAX 1024

/* iothread-vq-mapping goes through QMP device_add from this QEMU on */
#define HOTPLUG_DISK_VQ_MAPPING_MAJOR 9
#define HOTPLUG_DISK_VQ_MAPPING_MINOR 2

typedef struct {
    const char *file;   /* the image, as QEMU will open it (absolute path) */
    const char *format; /* "raw" (NULL: raw) or "qcow2"; never probed */
    gboolean readonly;
    guint iothreads; /* 0: none, 1: iothread, N > 1: iothread-vq-mapping */
    guint queues;    /* num-queues; 0: QEMU's default, or N with --iothreads N > 1 */
    const char *bus;  /* the device's bus= (NULL: QEMU's choice) */
    const char *addr; /* its addr= (NULL: QEMU's choice) */
} HotplugDiskOptions;

/* The names of the scheme above (newly allocated). */
char *hotplug_disk_file_node(const char *id);
char *hotplug_disk_format_node(const char *id);
char *hotplug_disk_iothread_id(const char *id, guint index);

/* TRUE when id is a well-formed disk ID (see above). */
gboolean hotplug_disk_id_valid(const char *id, GError **error);

/* The QMP steps of `disk add` (HotplugStep, each with its undo), for a
 * QEMU that sent greeting (NULL: version unknown, treated as too old for
 * iothread-vq-mapping).  Errors: HOTPLUG_ERROR_INVALID for bad options,
 * HOTPLUG_ERROR_UNSUPPORTED (naming the QEMU version found and the one
 * needed) for --iothreads N > 1 before QEMU 9.2. */
GPtrArray *hotplug_disk_build_steps(const char *id, const HotplugDiskOptions *opts,
                                    const QmpGreeting *greeting, GError **error);

/* Plug the disk: blockdev-add ID-file, blockdev-add ID-fmt, object-add
 * ID-iothreadK for each IOThread, device_add virtio-blk-pci; a failing
 * step undoes the ones done, newest first.  Refused before anything is
 * sent (NULL + error) for bad options and unsupported IOThread setups. */
HotplugOp *hotplug_disk_add(HotplugVm *vm, const char *id, const HotplugDiskOptions *opts,
                            GError **error);

/* Unplug disk id with the engine's outcomes; once QEMU has removed the
 * device, blockdev-del ID-fmt, blockdev-del ID-file and object-del each
 * ID-iothreadK that exists.  A not-deleted unplug keeps them until the
 * device goes (deleted-late).  Arguments as hotplug_vm_unplug(). */
HotplugOp *hotplug_disk_del(HotplugVm *vm, const char *id, const HotplugUnplugOptions *opts,
                            gboolean *attached, GError **error);

/* result (borrowed): {"disks": [{id, file, format, readonly, node,
 * file_node, iothreads: [...], pending}], "leftover": {"nodes": [...],
 * "iothreads": [...]}}.  The disks are the devices whose drive is the
 * ID-fmt node of their own ID; leftover lists the nodes and IOThreads of
 * the scheme that no such device uses (an unplug that finished after
 * hotplugctl left, or an interrupted plug).  pending is {op, action,
 * state, attempts} of the operation on the disk, or null. */
typedef void (*HotplugDiskListFunc)(JsonNode *result, const GError *error, gpointer opaque);

/* Ask QEMU (query-block, query-named-block-nodes, qom-list /objects) and
 * join it with the operations pending on vm (taken now).  done is called
 * exactly once, later (when this returns TRUE), and never touches vm:
 * vm may be freed meanwhile. */
gboolean hotplug_disk_list(HotplugVm *vm, HotplugDiskListFunc done, gpointer opaque,
                           GError **error);

G_END_DECLS
