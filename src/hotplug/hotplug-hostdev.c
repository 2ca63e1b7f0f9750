/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VFIO host device hotplug and the accounting of host devices. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "hotplug-hostdev.h"
#include "hotplug-priv.h"
#include "qmp-json.h"

#define REGISTRY_VERSION 1
#define VFIO_DRIVER "vfio-pci"

/* ---- PCI addresses ------------------------------------------------------ */

static gboolean
hotplug_hex_field(const char *s, guint len, guint *out)
{
    guint v = 0;

    for (guint i = 0; i < len; i++) {
        if (!g_ascii_isxdigit(s[i]))
            return FALSE;
        v = v * 16 + g_ascii_xdigit_value(s[i]);
    }
    *out = v;
    return TRUE;
}

gboolean
hotplug_pci_addr_parse(const char *text, char **normalized, GError **error)
{
    guint domain, bus, dev, fn;

    if (!text || strlen(text) != 12 || text[4] != ':' || text[7] != ':' || text[10] != '.' ||
        !hotplug_hex_field(text, 4, &domain) || !hotplug_hex_field(text + 5, 2, &bus) ||
        !hotplug_hex_field(text + 8, 2, &dev) || !hotplug_hex_field(text + 11, 1, &fn)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "bad PCI address '%s': expected DDDD:BB:DD.F in hex, e.g. 0000:01:00.0",
                    text ? text : "");
        return FALSE;
    }
    if (dev > 0x1f || fn > 7) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "bad PCI address '%s': the device is 00-1f and the function 0-7", text);
        return FALSE;
    }
    if (normalized)
        *normalized = g_strdup_printf("%04x:%02x:%02x.%x", domain, bus, dev, fn);
    return TRUE;
}

/* ---- the host: sysfs ------------------------------------------------------ */

/* The last component of the symlink path points to, or NULL. */
static char *
hotplug_link_name(const char *path)
{
    g_autofree char *target = g_file_read_link(path, NULL);

    return target ? g_path_get_basename(target) : NULL;
}

/* A device of the group that VFIO would not accept beside ours. */
static gboolean
hotplug_hostdev_check_group(const char *dev_dir, const char *addr, const char *group,
                            GError **error)
{
    g_autofree char *members = g_build_filename(dev_dir, "iommu_group", "devices", NULL);
    g_autoptr(GDir) dir = g_dir_open(members, 0, NULL);
    const char *name;

    if (!dir)
        return TRUE; /* no list to check: VFIO will say */
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *link = NULL;
        g_autofree char *driver = NULL;

        if (g_str_equal(name, addr))
            continue;
        link = g_build_filename(members, name, "driver", NULL);
        driver = hotplug_link_name(link);
        /* unbound devices and PCIe port bridges are fine for VFIO */
        if (!driver || g_str_equal(driver, VFIO_DRIVER) || g_str_equal(driver, "pcieport"))
            continue;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "IOMMU group %s of PCI device %s is not viable: %s in the same group is "
                    "bound to %s; bind every device of the group to vfio-pci (or unbind it)",
                    group, addr, name, driver);
        return FALSE;
    }
    return TRUE;
}

gboolean
hotplug_hostdev_check_host(const char *sysfs_root, const char *addr, char **iommu_group,
                           GError **error)
{
    const char *root = sysfs_root ? sysfs_root : HOTPLUG_SYSFS_ROOT_DEFAULT;
    g_autofree char *dev_dir = g_build_filename(root, "bus", "pci", "devices", addr, NULL);
    g_autofree char *driver_link = g_build_filename(dev_dir, "driver", NULL);
    g_autofree char *group_link = g_build_filename(dev_dir, "iommu_group", NULL);
    g_autofree char *driver = NULL;
    g_autofree char *group = NULL;

    if (!g_file_test(dev_dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "PCI device %s not found on this host (no %s)", addr, dev_dir);
        return FALSE;
    }
    driver = hotplug_link_name(driver_link);
    if (!driver) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "PCI device %s is not bound to any driver; bind it to vfio-pci first "
                    "(e.g. driverctl set-override %s vfio-pci)",
                    addr, addr);
        return FALSE;
    }
    if (!g_str_equal(driver, VFIO_DRIVER)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "PCI device %s is bound to %s, not vfio-pci; bind it to vfio-pci first "
                    "(e.g. driverctl set-override %s vfio-pci)",
                    addr, driver, addr);
        return FALSE;
    }
    group = hotplug_link_name(group_link);
    if (!group) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "PCI device %s has no IOMMU group (no %s): is the IOMMU on "
                    "(intel_iommu=on or amd_iommu=on)?",
                    addr, group_link);
        return FALSE;
    }
    if (!hotplug_hostdev_check_group(dev_dir, addr, group, error))
        return FALSE;
    if (iommu_group)
        *iommu_group = g_steal_pointer(&group);
    return TRUE;
}

/* ---- the registry ------------------------------------------------------- */

typedef struct {
    char *vm;
    char *device;
} HotplugHostdevClaim;

struct HotplugHostdevRegistry {
    char *state_file;   /* NULL: memory only */
    GHashTable *claims; /* address -> HotplugHostdevClaim */
};

static void
hotplug_hostdev_claim_free(HotplugHostdevClaim *c)
{
    g_free(c->vm);
    g_free(c->device);
    g_free(c);
}

static void
hotplug_hostdev_registry_put(HotplugHostdevRegistry *reg, const char *addr, const char *vm,
                             const char *device)
{
    HotplugHostdevClaim *c = g_new0(HotplugHostdevClaim, 1);

    c->vm = g_strdup(vm);
    c->device = g_strdup(device);
    g_hash_table_replace(reg->claims, g_strdup(addr), c);
}

static gint
hotplug_str_ptr_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

JsonNode *
hotplug_hostdev_registry_to_json(HotplugHostdevRegistry *reg)
{
    g_autoptr(GPtrArray) addrs = g_ptr_array_new();
    g_autoptr(JsonBuilder) b = json_builder_new();
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, reg->claims);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_ptr_array_add(addrs, key);
    g_ptr_array_sort(addrs, hotplug_str_ptr_cmp);
    json_builder_begin_array(b);
    for (guint i = 0; i < addrs->len; i++) {
        HotplugHostdevClaim *c = g_hash_table_lookup(reg->claims, addrs->pdata[i]);
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "address");
        json_builder_add_string_value(b, addrs->pdata[i]);
        json_builder_set_member_name(b, "vm");
        json_builder_add_string_value(b, c->vm);
        json_builder_set_member_name(b, "device");
        json_builder_add_string_value(b, c->device);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);
    return json_builder_get_root(b);
}

static gboolean
hotplug_hostdev_registry_save(HotplugHostdevRegistry *reg, GError **error)
{
    g_autoptr(JsonNode) list = NULL;
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *text = NULL;
    g_autoptr(GError) local = NULL;
    JsonObject *o;

    if (!reg->state_file)
        return TRUE;
    list = hotplug_hostdev_registry_to_json(reg);
    o = json_object_new();
    json_object_set_int_member(o, "version", REGISTRY_VERSION);
    json_object_set_member(o, "hostdevs", json_node_ref(list));
    root = json_node_init_object(json_node_alloc(), o);
    json_object_unref(o);
    text = json_to_string(root, TRUE);
    if (!g_file_set_contents_full(reg->state_file, text, -1,
                                  G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                  0600, &local)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "cannot save the host device registry: %s", local->message);
        return FALSE;
    }
    return TRUE;
}

static gboolean
hotplug_hostdev_registry_load(HotplugHostdevRegistry *reg, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) local = NULL;
    g_autofree char *text = NULL;
    gsize len;
    JsonObject *root;
    JsonArray *list;

    {
        /* never through a symbolic link planted at the path (it is
         * replaced by rename, which does not follow one, when written) */
        int fd = open(reg->state_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
            return TRUE;
        if (fd < 0) {
            int errsv = errno;
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                        "cannot read the host device registry %s: %s", reg->state_file,
                        errsv == ELOOP ? "is a symbolic link (refused)" : g_strerror(errsv));
            return FALSE;
        }
        close(fd);
    }
    if (!g_file_get_contents(reg->state_file, &text, &len, &local)) {
        if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            return TRUE;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "cannot read the host device registry: %s", local->message);
        return FALSE;
    }
    if (!json_parser_load_from_data(parser, text, (gssize)len, &local)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "host device registry %s is not JSON: %s", reg->state_file, local->message);
        return FALSE;
    }
    root = qmp_json_node_object(json_parser_get_root(parser));
    list = qmp_json_get_array(root, "hostdevs");
    if (!list || qmp_json_get_int_default(root, "version", 0) != REGISTRY_VERSION) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "host device registry %s: not a version %d registry "
                    "({\"version\": %d, \"hostdevs\": [...]})",
                    reg->state_file, REGISTRY_VERSION, REGISTRY_VERSION);
        return FALSE;
    }
    for (guint i = 0; i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *addr = qmp_json_get_string(e, "address");
        const char *vm = qmp_json_get_string(e, "vm");
        const char *device = qmp_json_get_string(e, "device");
        g_autofree char *norm = NULL;

        if (!addr || !vm || !device || !hotplug_pci_addr_parse(addr, &norm, NULL)) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                        "host device registry %s: entry %u is not {address, vm, device}",
                        reg->state_file, i);
            return FALSE;
        }
        if (g_hash_table_contains(reg->claims, norm)) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                        "host device registry %s: %s is claimed twice", reg->state_file, norm);
            return FALSE;
        }
        hotplug_hostdev_registry_put(reg, norm, vm, device);
    }
    return TRUE;
}

HotplugHostdevRegistry *
hotplug_hostdev_registry_new(const char *state_file, GError **error)
{
    g_autoptr(HotplugHostdevRegistry) reg = g_new0(HotplugHostdevRegistry, 1);

    reg->state_file = g_strdup(state_file);
    reg->claims = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)hotplug_hostdev_claim_free);
    if (state_file && !hotplug_hostdev_registry_load(reg, error))
        return NULL;
    return g_steal_pointer(&reg);
}

void
hotplug_hostdev_registry_free(HotplugHostdevRegistry *reg)
{
    if (!reg)
        return;
    g_hash_table_unref(reg->claims);
    g_free(reg->state_file);
    g_free(reg);
}

gboolean
hotplug_hostdev_registry_lookup(HotplugHostdevRegistry *reg, const char *addr, const char **vm,
                                const char **device)
{
    HotplugHostdevClaim *c = g_hash_table_lookup(reg->claims, addr);

    if (!c)
        return FALSE;
    if (vm)
        *vm = c->vm;
    if (device)
        *device = c->device;
    return TRUE;
}

const char *
hotplug_hostdev_registry_find(HotplugHostdevRegistry *reg, const char *vm, const char *device)
{
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, reg->claims);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        HotplugHostdevClaim *c = value;
        if (g_str_equal(c->vm, vm) && g_str_equal(c->device, device))
            return key;
    }
    return NULL;
}

gboolean
hotplug_hostdev_registry_claim(HotplugHostdevRegistry *reg, const char *addr, const char *vm,
                               const char *device, GError **error)
{
    HotplugHostdevClaim *c = g_hash_table_lookup(reg->claims, addr);

    if (c) {
        if (g_str_equal(c->vm, vm) && g_str_equal(c->device, device))
            return TRUE;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "host PCI device %s is already assigned to a VM we manage (VM %s, device %s)",
                    addr, c->vm, c->device);
        return FALSE;
    }
    hotplug_hostdev_registry_put(reg, addr, vm, device);
    if (!hotplug_hostdev_registry_save(reg, error)) {
        g_hash_table_remove(reg->claims, addr);
        return FALSE;
    }
    g_debug("host device %s claimed for %s (%s)", addr, vm, device);
    return TRUE;
}

gboolean
hotplug_hostdev_registry_release(HotplugHostdevRegistry *reg, const char *addr, GError **error)
{
    if (!g_hash_table_remove(reg->claims, addr))
        return TRUE;
    g_debug("host device %s released", addr);
    return hotplug_hostdev_registry_save(reg, error);
}

guint
hotplug_hostdev_registry_release_vm(HotplugHostdevRegistry *reg, const char *vm)
{
    g_autoptr(GError) error = NULL;
    GHashTableIter it;
    gpointer value;
    guint n = 0;

    g_hash_table_iter_init(&it, reg->claims);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        if (g_str_equal(((HotplugHostdevClaim *)value)->vm, vm)) {
            g_hash_table_iter_remove(&it);
            n++;
        }
    }
    if (n && !hotplug_hostdev_registry_save(reg, &error))
        g_warning("%s", error->message);
    return n;
}

/* ---- one VM's host devices ------------------------------------------------ */

struct HotplugHostdev {
    HotplugVm *vm;
    HotplugHostdevRegistry *reg;
    HotplugHostdevRegistry *own_reg; /* when none was given */
    char *sysfs_root;
    guint listener;
    GHashTable *plug_claims; /* op id (guint64 *) -> address: claims made by an add */
    GPtrArray *syncs;        /* HotplugHostdevSync in flight: cut loose on free */
};

static void
hotplug_hostdev_release(HotplugHostdev *hd, const char *addr, const char *why)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *a = g_strdup(addr);

    if (!hotplug_hostdev_registry_release(hd->reg, a, &error))
        g_warning("%s", error->message);
    g_message("%s: host device %s released (%s)", hotplug_vm_get_name(hd->vm), a, why);
}

static void
hotplug_hostdev_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    HotplugHostdev *hd = opaque;
    guint64 id = hotplug_op_get_id(op);
    HotplugOutcome outcome = hotplug_op_get_outcome(op);
    const char *addr;

    if (ev != HOTPLUG_OP_EV_OUTCOME && ev != HOTPLUG_OP_EV_LATE)
        return;
    if (hotplug_op_get_action(op) == HOTPLUG_ACTION_PLUG) {
        addr = g_hash_table_lookup(hd->plug_claims, &id);
        if (!addr && hotplug_op_is_adopted(op) && outcome == HOTPLUG_OUTCOME_REJECTED &&
            hotplug_op_get_kind(op) == HOTPLUG_KIND_HOSTDEV) {
            /* a plug taken over after a restart that QEMU does not have:
             * its claim (made before the restart) goes */
            addr = hotplug_hostdev_registry_find(hd->reg, hotplug_vm_get_name(vm),
                                                 hotplug_op_get_device(op));
            if (addr)
                hotplug_hostdev_release(hd, addr, "not plugged when hotplugd restarted");
            return;
        }
        if (!addr)
            return;
        /* QEMU refused the device_add: the device never went to the VM.
         * After vm-gone nobody knows: it stays claimed until a sync. */
        if (outcome == HOTPLUG_OUTCOME_REJECTED)
            hotplug_hostdev_release(hd, addr, "device_add rejected");
        g_hash_table_remove(hd->plug_claims, &id);
        return;
    }
    /* any unplug of a device holding a claim (hostdev del, device del) */
    if (outcome != HOTPLUG_OUTCOME_DELETED && outcome != HOTPLUG_OUTCOME_DELETED_LATE)
        return;
    addr =
        hotplug_hostdev_registry_find(hd->reg, hotplug_vm_get_name(vm), hotplug_op_get_device(op));
    if (addr)
        hotplug_hostdev_release(hd, addr, hotplug_outcome_name(outcome));
}

HotplugHostdev *
hotplug_hostdev_new(HotplugVm *vm, HotplugHostdevRegistry *reg, const char *sysfs_root)
{
    static const HotplugVmListener l = {.op = hotplug_hostdev_op_cb};
    HotplugHostdev *hd = g_new0(HotplugHostdev, 1);

    hd->vm = vm;
    if (!reg)
        reg = hd->own_reg = hotplug_hostdev_registry_new(NULL, NULL);
    hd->reg = reg;
    hd->sysfs_root = g_strdup(sysfs_root ? sysfs_root : HOTPLUG_SYSFS_ROOT_DEFAULT);
    hd->plug_claims = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    hd->syncs = g_ptr_array_new();
    hd->listener = hotplug_vm_add_listener(vm, &l, hd);
    return hd;
}

typedef struct {
    HotplugHostdev *hd; /* NULL once hd is freed */
    HotplugHostdevSyncFunc done;
    gpointer opaque;
    guint pending;
    GError *error;
    GHashTable *seen; /* device (id or QOM path) -> host address, or "" while asked */
} HotplugHostdevSync;

void
hotplug_hostdev_free(HotplugHostdev *hd)
{
    if (!hd)
        return;
    for (guint i = 0; i < hd->syncs->len; i++)
        ((HotplugHostdevSync *)hd->syncs->pdata[i])->hd = NULL;
    g_ptr_array_unref(hd->syncs);
    hotplug_vm_remove_listener(hd->vm, hd->listener);
    g_hash_table_unref(hd->plug_claims);
    hotplug_hostdev_registry_free(hd->own_reg);
    g_free(hd->sysfs_root);
    g_free(hd);
}

HotplugHostdevRegistry *
hotplug_hostdev_get_registry(HotplugHostdev *hd)
{
    return hd->reg;
}

HotplugOp *
hotplug_hostdev_add(HotplugHostdev *hd, const char *pci_addr, const char *id, GError **error)
{
    return hotplug_hostdev_add_at(hd, pci_addr, id, NULL, NULL, error);
}

HotplugOp *
hotplug_hostdev_add_at(HotplugHostdev *hd, const char *pci_addr, const char *id, const char *bus,
                       const char *guest_addr, GError **error)
{
    const char *vm_name = hotplug_vm_get_name(hd->vm);
    g_autofree char *addr = NULL;
    g_autofree char *group = NULL;
    const char *held, *owner_vm, *owner_dev;
    g_autoptr(GPtrArray) steps = NULL;
    JsonObject *args;
    HotplugOp *op;

    if (!hotplug_pci_addr_parse(pci_addr, &addr, error))
        return NULL;
    if (!id || !*id) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no device ID given (--id ID)");
        return NULL;
    }
    if (hotplug_hostdev_registry_lookup(hd->reg, addr, &owner_vm, &owner_dev)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "host PCI device %s is already assigned to a VM we manage (VM %s, device %s)",
                    addr, owner_vm, owner_dev);
        return NULL;
    }
    held = hotplug_hostdev_registry_find(hd->reg, vm_name, id);
    if (held) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "device %s of VM %s already holds host PCI device %s", id, vm_name, held);
        return NULL;
    }
    if (!hotplug_hostdev_check_host(hd->sysfs_root, addr, &group, error))
        return NULL;
    if (!hotplug_hostdev_registry_claim(hd->reg, addr, vm_name, id, error))
        return NULL;

    args = json_object_new();
    json_object_set_string_member(args, "driver", "vfio-pci");
    json_object_set_string_member(args, "id", id);
    json_object_set_string_member(args, "host", addr);
    if (bus)
        json_object_set_string_member(args, "bus", bus);
    if (guest_addr)
        json_object_set_string_member(args, "addr", guest_addr);
    steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    g_ptr_array_add(
        steps,
        hotplug_step_new("device_add", json_node_init_object(json_node_alloc(), args), NULL, NULL));
    json_object_unref(args);
    g_debug("%s: host device %s (IOMMU group %s) for %s", vm_name, addr, group, id);

    /* the outcome comes later through the listener, which finds the
     * claim in plug_claims; only a failure to send ends it at once */
    op = hotplug_vm_plug(hd->vm, HOTPLUG_KIND_HOSTDEV, id, g_steal_pointer(&steps), error);
    if (!op) {
        hotplug_hostdev_release(hd, addr, "not sent");
        return NULL;
    }
    if (hotplug_op_is_final(op)) {
        if (hotplug_op_get_outcome(op) == HOTPLUG_OUTCOME_REJECTED)
            hotplug_hostdev_release(hd, addr, "device_add rejected");
    } else {
        guint64 *key = g_new(guint64, 1);
        *key = hotplug_op_get_id(op);
        g_hash_table_insert(hd->plug_claims, key, g_strdup(addr));
    }
    return op;
}

HotplugOp *
hotplug_hostdev_del(HotplugHostdev *hd, const char *id, const HotplugUnplugOptions *opts,
                    gboolean *attached, GError **error)
{
    return hotplug_vm_unplug(hd->vm, HOTPLUG_KIND_HOSTDEV, id, opts, attached, error);
}

/* ---- sync with QEMU ------------------------------------------------------- */

static void
hotplug_hostdev_sync_free(HotplugHostdevSync *s)
{
    g_clear_error(&s->error);
    g_hash_table_unref(s->seen);
    g_free(s);
}

static void
hotplug_hostdev_sync_apply(HotplugHostdev *hd, HotplugHostdevSync *s)
{
    const char *vm_name = hotplug_vm_get_name(hd->vm);
    g_autoptr(GHashTable) hosts = g_hash_table_new(g_str_hash, g_str_equal);
    g_autoptr(GPtrArray) stale = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, s->seen);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        g_autofree char *addr = NULL;
        g_autoptr(GError) error = NULL;

        if (!hotplug_pci_addr_parse(value, &addr, NULL)) {
            g_warning("%s: vfio-pci device %s: no usable host address ('%s')", vm_name, (char *)key,
                      (char *)value);
            continue;
        }
        g_hash_table_add(hosts, key);
        if (!hotplug_hostdev_registry_claim(hd->reg, addr, vm_name, key, &error))
            g_warning("%s: QEMU shows host device %s in device %s: %s", vm_name, addr, (char *)key,
                      error->message);
    }
    /* claims of this VM that QEMU does not show, with nothing under way */
    g_hash_table_iter_init(&it, hd->reg->claims);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        HotplugHostdevClaim *c = value;
        if (g_str_equal(c->vm, vm_name) && !g_hash_table_contains(hosts, c->device) &&
            !hotplug_vm_find_op(hd->vm, c->device))
            g_ptr_array_add(stale, g_strdup(key));
    }
    for (guint i = 0; i < stale->len; i++)
        hotplug_hostdev_release(hd, stale->pdata[i], "QEMU does not have it");
}

static void
hotplug_hostdev_sync_step_done(HotplugHostdevSync *s)
{
    HotplugHostdev *hd = s->hd;

    if (--s->pending)
        return;
    if (hd) {
        g_ptr_array_remove_fast(hd->syncs, s);
        if (!s->error)
            hotplug_hostdev_sync_apply(hd, s);
        if (s->done)
            s->done(hd, s->error, s->opaque);
    }
    hotplug_hostdev_sync_free(s);
}

static void
hotplug_hostdev_sync_fail(HotplugHostdevSync *s, const char *what, const GError *error)
{
    if (!s->error)
        s->error = g_error_new(error->domain, error->code, "%s: %s", what, error->message);
}

typedef struct {
    HotplugHostdevSync *sync;
    char *device;
} HotplugHostdevGet;

static void
hotplug_hostdev_sync_host_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugHostdevGet *g = opaque;
    HotplugHostdevSync *s = g->sync;
    const char *host = error ? NULL : qmp_json_node_string(ret);

    if (error)
        hotplug_hostdev_sync_fail(s, "qom-get host", error);
    else
        g_hash_table_replace(s->seen, g_strdup(g->device), g_strdup(host ? host : ""));
    g_free(g->device);
    g_free(g);
    hotplug_hostdev_sync_step_done(s);
}

static void
hotplug_hostdev_sync_list(QmpConn *conn, HotplugHostdevSync *s, const char *base, JsonNode *ret,
                          const GError *error)
{
    JsonArray *list = error ? NULL : qmp_json_node_array(ret);
    gboolean anon = g_str_has_suffix(base, "-anon");

    if (error) {
        /* a QEMU without the container simply has no such devices */
        if (!g_error_matches(error, QMP_ERROR, QMP_ERROR_DEVICE_NOT_FOUND))
            hotplug_hostdev_sync_fail(s, base, error);
        return;
    }
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");
        g_autofree char *path = NULL;
        g_autoptr(GError) local = NULL;
        HotplugHostdevGet *g;
        JsonObject *args;

        if (!name || !type || !g_str_has_prefix(type, "child<vfio-pci"))
            continue;
        path = g_strdup_printf("%s/%s", base, name);
        g = g_new0(HotplugHostdevGet, 1);
        g->sync = s;
        /* devices with an id are known by it; the others by their path */
        g->device = g_strdup(anon ? path : name);
        args = json_object_new();
        json_object_set_string_member(args, "path", path);
        json_object_set_string_member(args, "property", "host");
        if (!qmp_conn_execute(conn, "qom-get", json_node_init_object(json_node_alloc(), args),
                              hotplug_hostdev_sync_host_cb, g, &local)) {
            hotplug_hostdev_sync_fail(s, "qom-get host", local);
            g_free(g->device);
            g_free(g);
        } else {
            s->pending++;
        }
        json_object_unref(args);
    }
}

static void
hotplug_hostdev_sync_peripheral_cb(QmpConn *conn, JsonNode *ret, const GError *error,
                                   gpointer opaque)
{
    HotplugHostdevSync *s = opaque;

    hotplug_hostdev_sync_list(conn, s, "/machine/peripheral", ret, error);
    hotplug_hostdev_sync_step_done(s);
}

static void
hotplug_hostdev_sync_anon_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugHostdevSync *s = opaque;

    hotplug_hostdev_sync_list(conn, s, "/machine/peripheral-anon", ret, error);
    hotplug_hostdev_sync_step_done(s);
}

gboolean
hotplug_hostdev_sync(HotplugHostdev *hd, HotplugHostdevSyncFunc done, gpointer opaque,
                     GError **error)
{
    static const struct {
        const char *path;
        QmpReplyFunc cb;
    } lists[] = {
        {"/machine/peripheral", hotplug_hostdev_sync_peripheral_cb},
        {"/machine/peripheral-anon", hotplug_hostdev_sync_anon_cb},
    };
    QmpConn *conn = hotplug_vm_get_conn(hd->vm);
    HotplugHostdevSync *s;

    if (qmp_conn_get_state(conn) != QMP_CONN_READY) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE, "VM %s is not connected (%s)",
                    hotplug_vm_get_name(hd->vm), qmp_conn_state_name(qmp_conn_get_state(conn)));
        return FALSE;
    }
    s = g_new0(HotplugHostdevSync, 1);
    s->hd = hd;
    s->done = done;
    s->opaque = opaque;
    s->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_ptr_array_add(hd->syncs, s);
    s->pending = 1; /* until both lists are sent */
    for (guint i = 0; i < G_N_ELEMENTS(lists); i++) {
        g_autoptr(GError) local = NULL;
        JsonObject *args = json_object_new();
        gboolean ok;

        json_object_set_string_member(args, "path", lists[i].path);
        ok = qmp_conn_execute(conn, "qom-list", json_node_init_object(json_node_alloc(), args),
                              lists[i].cb, s, &local);
        json_object_unref(args);
        if (!ok) {
            hotplug_hostdev_sync_fail(s, "qom-list", local);
            break;
        }
        s->pending++;
    }
    hotplug_hostdev_sync_step_done(s);
    return TRUE;
}
