/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pool of host devices bound to vfio-pci, and watching it change. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <errno.h>
#include <linux/netlink.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hotplug-hostpool.h"
#include "qmp-json.h"

struct HotplugHostpool {
    char *sysfs_root;
    GHashTable *devs; /* address -> JsonObject {address, vendor-device, group, members} */
    HotplugHostpoolChangeFunc change;
    gpointer change_opaque;
    void (*tick)(HotplugHostpool *pool, gpointer opaque);
    gpointer tick_opaque;
    int nl_fd;
    struct event *nl_ev;
    struct event *timer;
    const char *mechanism;
};

static char *
hotplug_hostpool_read_id(const char *dir, const char *name)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL))
        return g_strdup("?");
    g_strstrip(text);
    return g_strdup(g_str_has_prefix(text, "0x") ? text + 2 : text);
}

static gint
hotplug_hostpool_str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* {address, vendor-device, group, members} of a device bound to vfio-pci */
static JsonObject *
hotplug_hostpool_read_dev(const char *root, const char *addr)
{
    g_autofree char *dir = g_build_filename(root, "bus", "pci", "devices", addr, NULL);
    g_autofree char *vendor = hotplug_hostpool_read_id(dir, "vendor");
    g_autofree char *device = hotplug_hostpool_read_id(dir, "device");
    g_autofree char *vd = g_strdup_printf("%s:%s", vendor, device);
    g_autofree char *group = hotplug_hostdev_group_of(root, addr);
    g_autoptr(GPtrArray) members = g_ptr_array_new_with_free_func(g_free);
    JsonObject *o = json_object_new();
    JsonArray *m = json_array_new();

    if (group) {
        g_autofree char *mdir =
            g_build_filename(root, "kernel", "iommu_groups", group, "devices", NULL);
        g_autoptr(GDir) d = g_dir_open(mdir, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d)))
            g_ptr_array_add(members, g_strdup(name));
        g_ptr_array_sort(members, hotplug_hostpool_str_cmp);
    }
    for (guint i = 0; i < members->len; i++)
        json_array_add_string_element(m, members->pdata[i]);
    json_object_set_string_member(o, "address", addr);
    json_object_set_string_member(o, "vendor-device", vd);
    if (group)
        json_object_set_string_member(o, "group", group);
    else
        json_object_set_null_member(o, "group");
    json_object_set_array_member(o, "members", m);
    return o;
}

/* address -> JsonObject for every device bound to vfio-pci now */
static GHashTable *
hotplug_hostpool_scan(const char *root)
{
    GHashTable *devs =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)json_object_unref);
    g_autofree char *ddir = g_build_filename(root, "bus", "pci", "devices", NULL);
    g_autoptr(GDir) d = g_dir_open(ddir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *link = g_build_filename(ddir, name, "driver", NULL);
        g_autofree char *target = g_file_read_link(link, NULL);
        g_autofree char *driver = target ? g_path_get_basename(target) : NULL;

        if (driver && g_str_equal(driver, "vfio-pci"))
            g_hash_table_insert(devs, g_strdup(name), hotplug_hostpool_read_dev(root, name));
    }
    return devs;
}

HotplugHostpool *
hotplug_hostpool_new(const char *sysfs_root)
{
    HotplugHostpool *pool = g_new0(HotplugHostpool, 1);

    pool->sysfs_root = g_strdup(sysfs_root ? sysfs_root : HOTPLUG_SYSFS_ROOT_DEFAULT);
    pool->devs = hotplug_hostpool_scan(pool->sysfs_root);
    pool->nl_fd = -1;
    pool->mechanism = "none";
    return pool;
}

void
hotplug_hostpool_free(HotplugHostpool *pool)
{
    if (!pool)
        return;
    if (pool->nl_ev)
        event_free(pool->nl_ev);
    if (pool->timer)
        event_free(pool->timer);
    if (pool->nl_fd >= 0)
        close(pool->nl_fd);
    g_hash_table_unref(pool->devs);
    g_free(pool->sysfs_root);
    g_free(pool);
}

void
hotplug_hostpool_set_change_func(HotplugHostpool *pool, HotplugHostpoolChangeFunc func,
                                 gpointer opaque)
{
    pool->change = func;
    pool->change_opaque = opaque;
}

static gboolean
hotplug_hostpool_same(JsonObject *a, JsonObject *b)
{
    g_autofree char *ta = NULL, *tb = NULL;
    JsonNode *na = json_node_init_object(json_node_alloc(), a);
    JsonNode *nb = json_node_init_object(json_node_alloc(), b);

    ta = json_to_string(na, FALSE);
    tb = json_to_string(nb, FALSE);
    json_node_unref(na);
    json_node_unref(nb);
    return g_str_equal(ta, tb);
}

guint
hotplug_hostpool_rescan(HotplugHostpool *pool)
{
    GHashTable *now = hotplug_hostpool_scan(pool->sysfs_root);
    GHashTable *before = pool->devs;
    g_autoptr(GPtrArray) gone = g_ptr_array_new();
    g_autoptr(GPtrArray) added = g_ptr_array_new();
    GHashTableIter it;
    gpointer key, value;
    guint n;

    g_hash_table_iter_init(&it, before);
    while (g_hash_table_iter_next(&it, &key, &value))
        if (!g_hash_table_contains(now, key))
            g_ptr_array_add(gone, value);
    g_hash_table_iter_init(&it, now);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        JsonObject *old = g_hash_table_lookup(before, key);
        /* a device whose group changed is reported as new */
        if (!old || !hotplug_hostpool_same(old, value))
            g_ptr_array_add(added, value);
    }
    pool->devs = now;
    n = gone->len + added->len;
    for (guint i = 0; pool->change && i < gone->len; i++)
        pool->change(pool, "gone", gone->pdata[i], pool->change_opaque);
    for (guint i = 0; pool->change && i < added->len; i++)
        pool->change(pool, "available", added->pdata[i], pool->change_opaque);
    g_hash_table_unref(before);
    return n;
}

static void
hotplug_hostpool_after_scan(HotplugHostpool *pool)
{
    hotplug_hostpool_rescan(pool);
    if (pool->tick)
        pool->tick(pool, pool->tick_opaque);
}

static void
hotplug_hostpool_uevent_cb(evutil_socket_t fd, short what, void *opaque)
{
    HotplugHostpool *pool = opaque;
    gboolean relevant = FALSE;
    char buf[8192];
    ssize_t n;

    /* drain; one rescan for the lot */
    while ((n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0) {
        buf[n] = 0;
        for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1)
            if (g_str_equal(buf + off, "SUBSYSTEM=pci") || g_str_equal(buf + off, "SUBSYSTEM=vfio"))
                relevant = TRUE;
    }
    if (relevant)
        hotplug_hostpool_after_scan(pool);
}

static void
hotplug_hostpool_timer_cb(evutil_socket_t fd, short what, void *opaque)
{
    hotplug_hostpool_after_scan(opaque);
}

void
hotplug_hostpool_watch(HotplugHostpool *pool, struct event_base *base,
                       void (*tick)(HotplugHostpool *pool, gpointer opaque), gpointer tick_opaque)
{
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1};
    struct timeval second = {1, 0};
    int fd;

    pool->tick = tick;
    pool->tick_opaque = tick_opaque;
    /* the timer drives tick, and re-reads sysfs too: with uevents that only
     * catches what a full socket buffer (ENOBUFS) lost */
    pool->timer = event_new(base, -1, EV_PERSIST, hotplug_hostpool_timer_cb, pool);
    event_add(pool->timer, &second);
    /* uevents only describe the real /sys */
    if (!g_str_equal(pool->sysfs_root, HOTPLUG_SYSFS_ROOT_DEFAULT)) {
        pool->mechanism = "poll";
        return;
    }
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        g_message("no kernel uevents (%s): host devices are re-read every second",
                  g_strerror(errno));
        if (fd >= 0)
            close(fd);
        pool->mechanism = "poll";
        return;
    }
    pool->nl_fd = fd;
    pool->nl_ev = event_new(base, fd, EV_READ | EV_PERSIST, hotplug_hostpool_uevent_cb, pool);
    event_add(pool->nl_ev, NULL);
    pool->mechanism = "uevent";
}

const char *
hotplug_hostpool_get_mechanism(HotplugHostpool *pool)
{
    return pool->mechanism;
}

JsonNode *
hotplug_hostpool_list(HotplugHostpool *pool, HotplugHostdevRegistry *reg, const char *lock_root,
                      const char *proc_root)
{
    g_autoptr(GPtrArray) addrs = g_ptr_array_new();
    JsonArray *list = json_array_new();
    JsonNode *node;
    GHashTableIter it;
    gpointer key;

    hotplug_hostpool_rescan(pool);
    g_hash_table_iter_init(&it, pool->devs);
    while (g_hash_table_iter_next(&it, &key, NULL))
        g_ptr_array_add(addrs, key);
    g_ptr_array_sort(addrs, hotplug_hostpool_str_cmp);
    for (guint i = 0; i < addrs->len; i++) {
        const char *addr = addrs->pdata[i];
        JsonObject *dev = g_hash_table_lookup(pool->devs, addr);
        JsonNode *wrap = json_node_init_object(json_node_alloc(), dev);
        JsonNode *copy = qmp_json_deep_copy(wrap);
        JsonObject *o = json_node_get_object(copy);
        const char *group = qmp_json_get_string(dev, "group");
        const char *vm = NULL, *device = NULL;
        g_autoptr(JsonObject) holder = NULL;
        g_autofree char *comm = NULL;
        int pid;

        json_object_ref(o);
        json_node_unref(copy);
        json_node_unref(wrap);
        if (reg && hotplug_hostdev_registry_lookup(reg, addr, &vm, &device)) {
            json_object_set_string_member(o, "state", "claimed");
            json_object_set_string_member(o, "vm", vm);
            json_object_set_string_member(o, "device", device);
        } else if (group && (hotplug_hostdev_lock_peek(lock_root, group, &holder) ||
                             (holder && qmp_json_get_bool_default(holder, "persistent", FALSE)))) {
            /* another process's claim of the group (this device or a sibling) */
            gint64 hpid = qmp_json_get_int_default(holder, "pid", 0);
            json_object_set_string_member(o, "state", "claimed");
            json_object_set_string_member(
                o, "vm",
                qmp_json_get_string(holder, "vm") ? qmp_json_get_string(holder, "vm") : "?");
            json_object_set_string_member(o, "device",
                                          qmp_json_get_string(holder, "device")
                                              ? qmp_json_get_string(holder, "device")
                                              : "?");
            /* a sibling of a group this process holds: no pid to name */
            if (hpid != getpid()) {
                json_object_set_int_member(o, "pid", hpid);
                json_object_set_boolean_member(o, "claimer-running",
                                               hpid > 0 &&
                                                   (kill((pid_t)hpid, 0) == 0 || errno == EPERM));
            }
        } else if (group && (pid = hotplug_hostdev_group_user(proc_root, group, &comm))) {
            json_object_set_string_member(o, "state", "in-use");
            json_object_set_int_member(o, "pid", pid);
            json_object_set_string_member(o, "process", comm);
        } else {
            json_object_set_string_member(o, "state", "free");
        }
        json_array_add_object_element(list, o);
    }
    node = json_node_init_array(json_node_alloc(), list); /* takes its own reference */
    json_array_unref(list);
    return node;
}
