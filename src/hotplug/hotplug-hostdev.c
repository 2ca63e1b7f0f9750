/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VFIO host device hotplug and the accounting of host devices. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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
    char *group; /* IOMMU group, NULL when sysfs did not say */
} HotplugHostdevClaim;

struct HotplugHostdevRegistry {
    char *state_file;   /* NULL: memory only */
    GHashTable *claims; /* address -> HotplugHostdevClaim */
    char *sysfs_root;   /* where groups are read */
    char *lock_root;    /* NULL: no cross-process locks */
    char *proc_root;    /* where other users of /dev/vfio/N are looked for */
    GHashTable *locks;  /* group -> lock file fd (GINT_TO_POINTER(fd + 1)) */
    HotplugHostdevNotifyFunc notify;
    gpointer notify_opaque;
};

static void
hotplug_hostdev_claim_free(HotplugHostdevClaim *c)
{
    g_free(c->vm);
    g_free(c->device);
    g_free(c->group);
    g_free(c);
}

static void
hotplug_hostdev_registry_put(HotplugHostdevRegistry *reg, const char *addr, const char *vm,
                             const char *device, const char *group)
{
    HotplugHostdevClaim *c = g_new0(HotplugHostdevClaim, 1);

    c->vm = g_strdup(vm);
    c->device = g_strdup(device);
    c->group = g_strdup(group);
    g_hash_table_replace(reg->claims, g_strdup(addr), c);
}

/* ---- the host: groups, their users, the lock per group ------------------------- */

char *
hotplug_hostdev_group_of(const char *sysfs_root, const char *addr)
{
    g_autofree char *link = g_build_filename(sysfs_root ? sysfs_root : HOTPLUG_SYSFS_ROOT_DEFAULT,
                                             "bus", "pci", "devices", addr, "iommu_group", NULL);

    return hotplug_link_name(link);
}

int
hotplug_hostdev_group_user(const char *proc_root, const char *group, char **comm)
{
    const char *root = proc_root ? proc_root : HOTPLUG_PROC_ROOT_DEFAULT;
    g_autofree char *want = g_strdup_printf("/dev/vfio/%s", group);
    g_autoptr(GDir) dir = g_dir_open(root, 0, NULL);
    const char *name;
    int self = getpid();
    struct stat gs;
    /* a process in a chroot or another mount namespace shows another path
     * for the same device: the device number decides */
    gboolean have_rdev = stat(want, &gs) == 0 && S_ISCHR(gs.st_mode);

    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *fds = NULL;
        g_autoptr(GDir) fdir = NULL;
        const char *fd;
        int pid = atoi(name);

        if (pid <= 0 || pid == self || strspn(name, "0123456789") != strlen(name))
            continue;
        fds = g_build_filename(root, name, "fd", NULL);
        if (!(fdir = g_dir_open(fds, 0, NULL)))
            continue; /* gone, or not ours to look at */
        while ((fd = g_dir_read_name(fdir))) {
            g_autofree char *link = g_build_filename(fds, fd, NULL);
            g_autofree char *target = g_file_read_link(link, NULL);

            struct stat st;

            if (target && (g_str_equal(target, want) ||
                           (have_rdev && strstr(target, "vfio") && stat(link, &st) == 0 &&
                            S_ISCHR(st.st_mode) && st.st_rdev == gs.st_rdev))) {
                if (comm) {
                    g_autofree char *cpath = g_build_filename(root, name, "comm", NULL);
                    g_autofree char *text = NULL;

                    *comm = g_file_get_contents(cpath, &text, NULL, NULL)
                                ? g_strdup(g_strstrip(text))
                                : g_strdup("?");
                }
                return pid;
            }
        }
    }
    return 0;
}

static char *
hotplug_hostdev_lock_path(const char *lock_root, const char *group)
{
    g_autofree char *name = g_strdup_printf("vfio-group-%s.lock", group);

    return g_build_filename(lock_root, name, NULL);
}

/* The holder written in a lock file: {"pid", "vm", "device", "persistent"},
 * or NULL when empty or unreadable. */
static JsonObject *
hotplug_hostdev_lock_read_fd(int fd)
{
    g_autoptr(JsonNode) root = NULL;
    char buf[1024];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    JsonObject *o;

    if (n <= 0)
        return NULL;
    buf[n] = 0;
    root = qmp_json_parse_stored(buf, (gsize)n, NULL);
    o = qmp_json_node_object(root);
    return o ? json_object_ref(o) : NULL;
}

gboolean
hotplug_hostdev_lock_peek(const char *lock_root, const char *group, JsonObject **holder)
{
    g_autofree char *path = NULL;
    int fd;
    gboolean held = FALSE;

    *holder = NULL;
    if (!lock_root)
        return FALSE;
    path = hotplug_hostdev_lock_path(lock_root, group);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FALSE;
    /* a shared lock is refused exactly while someone holds the claim */
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
        held = TRUE;
    *holder = hotplug_hostdev_lock_read_fd(fd);
    close(fd);
    return held;
}

static char *
hotplug_hostdev_holder_text(JsonObject *h)
{
    if (!h)
        return g_strdup("a process that did not say which VM");
    return g_strdup_printf("VM %s (device %s) of process %" G_GINT64_FORMAT,
                           qmp_json_get_string(h, "vm") ? qmp_json_get_string(h, "vm") : "?",
                           qmp_json_get_string(h, "device") ? qmp_json_get_string(h, "device")
                                                            : "?",
                           qmp_json_get_int_default(h, "pid", 0));
}

static gboolean
hotplug_hostdev_pid_alive(gint64 pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Take the lock of group for (vm, device): held (flock) as long as a claim
 * of this registry is in the group.  Refused when another process holds
 * it, or when a persistent claimer (a hotplugd) that is not running left
 * a claim of another VM in it: it keeps or drops that claim when it comes
 * back, after asking QEMU. */
static gboolean
hotplug_hostdev_lock_group(HotplugHostdevRegistry *reg, const char *group, const char *vm,
                           const char *device, gboolean dry, GError **error)
{
    g_autofree char *path = NULL;
    g_autoptr(JsonObject) holder = NULL;
    g_autoptr(JsonBuilder) b = NULL;
    g_autoptr(JsonNode) node = NULL;
    g_autofree char *line = NULL;
    g_autofree char *js = NULL;
    int fd;

    if (!reg->lock_root || g_hash_table_contains(reg->locks, group))
        return TRUE;
    if (g_mkdir_with_parents(reg->lock_root, 0755) < 0) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "cannot create the host device lock directory %s: %s", reg->lock_root,
                    g_strerror(errno));
        return FALSE;
    }
    path = hotplug_hostdev_lock_path(reg->lock_root, group);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot open %s: %s", path,
                    g_strerror(errno));
        return FALSE;
    }
    /* an empty lock file held: someone looking (hostdev list), or a
     * claimer between its flock and its write; a moment settles it */
    for (int i = 0; i < 5 && flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK; i++) {
        g_autoptr(JsonObject) h = hotplug_hostdev_lock_read_fd(fd);
        if (h)
            break;
        g_usleep(2000);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        g_autofree char *who = NULL;
        int e = errno;

        holder = hotplug_hostdev_lock_read_fd(fd);
        close(fd);
        if (e != EWOULDBLOCK) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot lock %s: %s", path,
                        g_strerror(e));
            return FALSE;
        }
        who = hotplug_hostdev_holder_text(holder);
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "IOMMU group %s is claimed by %s (lock %s)", group, who, path);
        return FALSE;
    }
    holder = hotplug_hostdev_lock_read_fd(fd);
    /* a persistent claim left by a claimer that is gone: only that claimer
     * (the same state file) may take it over */
    if (holder && qmp_json_get_bool_default(holder, "persistent", FALSE) &&
        qmp_json_get_int_default(holder, "pid", 0) != getpid() &&
        g_strcmp0(qmp_json_get_string(holder, "vm"), vm) != 0 &&
        !(reg->state_file &&
          g_strcmp0(qmp_json_get_string(holder, "owner"), reg->state_file) == 0)) {
        g_autofree char *who = hotplug_hostdev_holder_text(holder);
        gint64 pid = qmp_json_get_int_default(holder, "pid", 0);

        close(fd);
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "IOMMU group %s is claimed by %s, a hotplugd that is %s; start it again (it "
                    "keeps or releases the claim after asking QEMU) or remove %s",
                    group, who, hotplug_hostdev_pid_alive(pid) ? "not holding it" : "not running",
                    path);
        return FALSE;
    }
    if (dry) {
        close(fd); /* could have it: nothing written, the flock goes */
        return TRUE;
    }
    b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "pid");
    json_builder_add_int_value(b, getpid());
    json_builder_set_member_name(b, "vm");
    json_builder_add_string_value(b, vm);
    json_builder_set_member_name(b, "device");
    json_builder_add_string_value(b, device);
    json_builder_set_member_name(b, "persistent");
    json_builder_add_boolean_value(b, reg->state_file != NULL);
    if (reg->state_file) {
        json_builder_set_member_name(b, "owner");
        json_builder_add_string_value(b, reg->state_file);
    }
    json_builder_end_object(b);
    node = json_builder_get_root(b);
    js = json_to_string(node, FALSE);
    line = g_strdup_printf("%s\n", js);
    if (ftruncate(fd, 0) < 0 || pwrite(fd, line, strlen(line), 0) != (ssize_t)strlen(line)) {
        int e = errno;
        close(fd);
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED, "cannot write %s: %s", path,
                    g_strerror(e));
        return FALSE;
    }
    g_hash_table_insert(reg->locks, g_strdup(group), GINT_TO_POINTER(fd + 1));
    return TRUE;
}

static gboolean
hotplug_hostdev_group_in_use(HotplugHostdevRegistry *reg, const char *group, const char *skip)
{
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, reg->claims);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        HotplugHostdevClaim *c = value;
        if (c->group && g_str_equal(c->group, group) && (!skip || !g_str_equal(key, skip)))
            return TRUE;
    }
    return FALSE;
}

/* Drop the lock of group (the claim file is emptied first). */
static void
hotplug_hostdev_unlock_group(HotplugHostdevRegistry *reg, const char *group)
{
    gpointer v = g_hash_table_lookup(reg->locks, group);
    int fd = GPOINTER_TO_INT(v) - 1;

    if (!v)
        return;
    if (ftruncate(fd, 0) < 0)
        g_warning("cannot empty the lock of IOMMU group %s: %s", group, g_strerror(errno));
    close(fd);
    g_hash_table_remove(reg->locks, group);
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
        if (c->group) {
            json_builder_set_member_name(b, "group");
            json_builder_add_string_value(b, c->group);
        }
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
    g_autoptr(JsonNode) node = NULL;
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
    node = qmp_json_parse_stored(text, len, &local);
    if (!node) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED,
                    "host device registry %s is not JSON: %s", reg->state_file, local->message);
        return FALSE;
    }
    root = qmp_json_node_object(node);
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
        hotplug_hostdev_registry_put(reg, norm, vm, device, qmp_json_get_string(e, "group"));
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
    reg->locks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    if (state_file && !hotplug_hostdev_registry_load(reg, error))
        return NULL;
    return g_steal_pointer(&reg);
}

void
hotplug_hostdev_registry_free(HotplugHostdevRegistry *reg)
{
    GHashTableIter it;
    gpointer v;

    if (!reg)
        return;
    /* the claims stay (in the state file); the locks go with the process */
    g_hash_table_iter_init(&it, reg->locks);
    while (g_hash_table_iter_next(&it, NULL, &v))
        close(GPOINTER_TO_INT(v) - 1);
    g_hash_table_unref(reg->locks);
    g_hash_table_unref(reg->claims);
    g_free(reg->state_file);
    g_free(reg->sysfs_root);
    g_free(reg->lock_root);
    g_free(reg->proc_root);
    g_free(reg);
}

void
hotplug_hostdev_registry_set_notify(HotplugHostdevRegistry *reg, HotplugHostdevNotifyFunc notify,
                                    gpointer opaque)
{
    reg->notify = notify;
    reg->notify_opaque = opaque;
}

static void
hotplug_hostdev_registry_notify(HotplugHostdevRegistry *reg, const char *event, const char *addr,
                                HotplugHostdevClaim *c, const char *why)
{
    if (reg->notify)
        reg->notify(reg, event, addr, c->group, c->vm, c->device, why, reg->notify_opaque);
}

/* Locks this registry's state file left behind (a kill -9 between taking
 * the lock and saving the claim) for groups it has no claim in: emptied. */
static void
hotplug_hostdev_registry_clear_stale(HotplugHostdevRegistry *reg)
{
    g_autoptr(GDir) dir = NULL;
    const char *name;

    if (!reg->lock_root || !reg->state_file || !(dir = g_dir_open(reg->lock_root, 0, NULL)))
        return;
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(reg->lock_root, name, NULL);
        g_autofree char *group = NULL;
        g_autoptr(JsonObject) holder = NULL;
        int fd;

        if (!g_str_has_prefix(name, "vfio-group-") || !g_str_has_suffix(name, ".lock"))
            continue;
        group = g_strndup(name + strlen("vfio-group-"),
                          strlen(name) - strlen("vfio-group-") - strlen(".lock"));
        if (hotplug_hostdev_group_in_use(reg, group, NULL))
            continue;
        if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && (holder = hotplug_hostdev_lock_read_fd(fd)) &&
            g_strcmp0(qmp_json_get_string(holder, "owner"), reg->state_file) == 0) {
            g_message("IOMMU group %s: a claim of VM %s that was never saved is dropped", group,
                      qmp_json_get_string(holder, "vm"));
            if (ftruncate(fd, 0) < 0)
                g_warning("cannot empty %s: %s", path, g_strerror(errno));
        }
        close(fd);
    }
}

void
hotplug_hostdev_registry_set_host(HotplugHostdevRegistry *reg, const char *sysfs_root,
                                  const char *lock_root, const char *proc_root)
{
    GHashTableIter it;
    gpointer key, value;

    g_free(reg->sysfs_root);
    g_free(reg->lock_root);
    g_free(reg->proc_root);
    reg->sysfs_root = g_strdup(sysfs_root);
    reg->lock_root = g_strdup(lock_root);
    reg->proc_root = g_strdup(proc_root);
    /* claims read back from the state file take their groups' locks again */
    hotplug_hostdev_registry_clear_stale(reg);
    g_hash_table_iter_init(&it, reg->claims);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        HotplugHostdevClaim *c = value;
        g_autoptr(GError) error = NULL;

        if (!c->group && reg->sysfs_root)
            c->group = hotplug_hostdev_group_of(reg->sysfs_root, key);
        if (c->group && !hotplug_hostdev_lock_group(reg, c->group, c->vm, c->device, FALSE, &error))
            g_warning("host device %s of VM %s: %s", (char *)key, c->vm, error->message);
    }
}

const char *
hotplug_hostdev_registry_get_lock_root(HotplugHostdevRegistry *reg)
{
    return reg->lock_root;
}

const char *
hotplug_hostdev_registry_get_proc_root(HotplugHostdevRegistry *reg)
{
    return reg->proc_root;
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

/* check_users: also refuse a group open in another process; dry: only
 * say whether the claim would be made. */
static gboolean
hotplug_hostdev_registry_claim_full(HotplugHostdevRegistry *reg, const char *addr, const char *vm,
                                    const char *device, gboolean check_users, gboolean dry,
                                    GError **error)
{
    HotplugHostdevClaim *c = g_hash_table_lookup(reg->claims, addr);
    g_autofree char *group = NULL;
    gboolean have = FALSE;
    GHashTableIter it;
    gpointer key, value;

    if (c) {
        if (g_str_equal(c->vm, vm) && g_str_equal(c->device, device))
            return TRUE;
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                    "host PCI device %s is already assigned to a VM we manage (VM %s, device %s)",
                    addr, c->vm, c->device);
        return FALSE;
    }
    group = reg->sysfs_root ? hotplug_hostdev_group_of(reg->sysfs_root, addr) : NULL;
    if (group) {
        /* a group goes to one VM: VFIO hands out groups, not functions */
        g_hash_table_iter_init(&it, reg->claims);
        while (g_hash_table_iter_next(&it, &key, &value)) {
            HotplugHostdevClaim *o = value;
            if (!o->group || !g_str_equal(o->group, group))
                continue;
            if (!g_str_equal(o->vm, vm)) {
                g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                            "host PCI device %s is in IOMMU group %s, which is assigned to VM %s "
                            "(device %s holds %s); a group goes to one VM",
                            addr, group, o->vm, o->device, (char *)key);
                return FALSE;
            }
            have = TRUE;
        }
        if (!have) {
            if (!hotplug_hostdev_lock_group(reg, group, vm, device, dry, error))
                return FALSE;
            if (check_users) {
                g_autofree char *comm = NULL;
                int pid = hotplug_hostdev_group_user(reg->proc_root, group, &comm);

                if (pid) {
                    if (!dry)
                        hotplug_hostdev_unlock_group(reg, group);
                    g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY,
                                "IOMMU group %s of host PCI device %s is in use: /dev/vfio/%s is "
                                "open in process %d (%s), which is not a VM we manage",
                                group, addr, group, pid, comm);
                    return FALSE;
                }
            }
        }
    }
    if (dry)
        return TRUE;
    hotplug_hostdev_registry_put(reg, addr, vm, device, group);
    if (!hotplug_hostdev_registry_save(reg, error)) {
        g_hash_table_remove(reg->claims, addr);
        if (group && !have)
            hotplug_hostdev_unlock_group(reg, group);
        return FALSE;
    }
    g_debug("host device %s claimed for %s (%s)", addr, vm, device);
    hotplug_hostdev_registry_notify(reg, "claimed", addr, g_hash_table_lookup(reg->claims, addr),
                                    NULL);
    return TRUE;
}

gboolean
hotplug_hostdev_registry_claim(HotplugHostdevRegistry *reg, const char *addr, const char *vm,
                               const char *device, GError **error)
{
    return hotplug_hostdev_registry_claim_full(reg, addr, vm, device, FALSE, FALSE, error);
}

gboolean
hotplug_hostdev_registry_claim_new(HotplugHostdevRegistry *reg, const char *addr, const char *vm,
                                   const char *device, GError **error)
{
    return hotplug_hostdev_registry_claim_full(reg, addr, vm, device, TRUE, FALSE, error);
}

gboolean
hotplug_hostdev_registry_can_claim(HotplugHostdevRegistry *reg, const char *addr, const char *vm,
                                   const char *device, GError **error)
{
    return hotplug_hostdev_registry_claim_full(reg, addr, vm, device, TRUE, TRUE, error);
}

/* Remove the claim of addr (c, owned by the table) and its group's lock
 * when it was the group's last. */
static void
hotplug_hostdev_registry_drop(HotplugHostdevRegistry *reg, const char *addr, const char *why)
{
    HotplugHostdevClaim *c = g_hash_table_lookup(reg->claims, addr);
    g_autofree char *group = NULL;
    g_autofree char *a = g_strdup(addr);

    if (!c)
        return;
    group = g_strdup(c->group);
    hotplug_hostdev_registry_notify(reg, "released", a, c, why);
    g_hash_table_remove(reg->claims, a);
    if (group && !hotplug_hostdev_group_in_use(reg, group, NULL))
        hotplug_hostdev_unlock_group(reg, group);
}

gboolean
hotplug_hostdev_registry_release(HotplugHostdevRegistry *reg, const char *addr, GError **error)
{
    return hotplug_hostdev_registry_release_why(reg, addr, NULL, error);
}

gboolean
hotplug_hostdev_registry_release_why(HotplugHostdevRegistry *reg, const char *addr, const char *why,
                                     GError **error)
{
    if (!g_hash_table_contains(reg->claims, addr))
        return TRUE;
    hotplug_hostdev_registry_drop(reg, addr, why);
    g_debug("host device %s released", addr);
    return hotplug_hostdev_registry_save(reg, error);
}

guint
hotplug_hostdev_registry_release_vm(HotplugHostdevRegistry *reg, const char *vm)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer key, value;
    guint n;

    g_hash_table_iter_init(&it, reg->claims);
    while (g_hash_table_iter_next(&it, &key, &value))
        if (g_str_equal(((HotplugHostdevClaim *)value)->vm, vm))
            g_ptr_array_add(gone, g_strdup(key));
    for (guint i = 0; i < gone->len; i++)
        hotplug_hostdev_registry_drop(reg, gone->pdata[i], "VM removed");
    n = gone->len;
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

    if (!hotplug_hostdev_registry_release_why(hd->reg, a, why, &error))
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
    /* a registry nobody pointed at the host reads groups where its VMs look */
    if (!reg->sysfs_root)
        reg->sysfs_root = g_strdup(hd->sysfs_root);
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
    if (!hotplug_hostdev_registry_claim_new(hd->reg, addr, vm_name, id, error))
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

guint
hotplug_hostdev_tenant_gone(HotplugHostdev *hd)
{
    const char *vm_name = hotplug_vm_get_name(hd->vm);
    g_autoptr(GPtrArray) addrs = g_ptr_array_new_with_free_func(g_free);
    GHashTableIter it;
    gpointer key, value;
    guint kept = 0;

    g_hash_table_iter_init(&it, hd->reg->claims);
    while (g_hash_table_iter_next(&it, &key, &value))
        if (g_str_equal(((HotplugHostdevClaim *)value)->vm, vm_name))
            g_ptr_array_add(addrs, g_strdup(key));
    for (guint i = 0; i < addrs->len; i++) {
        HotplugHostdevClaim *c = g_hash_table_lookup(hd->reg->claims, addrs->pdata[i]);
        g_autofree char *comm = NULL;
        int pid =
            c && c->group ? hotplug_hostdev_group_user(hd->reg->proc_root, c->group, &comm) : 0;

        if (!c)
            continue;
        if (pid) {
            /* a QEMU that is still exiting, or anyone else: not ours to hand out */
            g_message("%s: host device %s kept: /dev/vfio/%s is still open in process %d (%s)",
                      vm_name, (char *)addrs->pdata[i], c->group, pid, comm);
            kept++;
            continue;
        }
        hotplug_hostdev_release(hd, addrs->pdata[i], "tenant gone");
    }
    return kept;
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
