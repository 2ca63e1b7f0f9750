/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Disk hotplug: blockdev nodes, IOThreads and a virtio-blk-pci device as
 * one composite operation (see hotplug-disk.h for the naming scheme). */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <string.h>

#include "hotplug-disk.h"
#include "hotplug-priv.h"
#include "qmp-json.h"

#define PERIPHERAL "/machine/peripheral/"
#define SUFFIX_FILE "-file"
#define SUFFIX_FMT "-fmt"
#define SUFFIX_IOTHREAD "-iothread"

char *
hotplug_disk_file_node(const char *id)
{
    return g_strconcat(id, SUFFIX_FILE, NULL);
}

char *
hotplug_disk_format_node(const char *id)
{
    return g_strconcat(id, SUFFIX_FMT, NULL);
}

char *
hotplug_disk_iothread_id(const char *id, guint index)
{
    return g_strdup_printf("%s" SUFFIX_IOTHREAD "%u", id, index);
}

gboolean
hotplug_disk_id_valid(const char *id, GError **error)
{
    if (!id || !*id) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no disk ID given (--id ID)");
        return FALSE;
    }
    if (strlen(id) > HOTPLUG_DISK_ID_MAX) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "disk ID '%s' is too long: at most %d characters (its node names, "
                    "ID" SUFFIX_FILE " and ID" SUFFIX_FMT ", must fit QEMU's 31)",
                    id, HOTPLUG_DISK_ID_MAX);
        return FALSE;
    }
    if (!g_ascii_isalpha(id[0])) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "disk ID '%s' must start with a letter", id);
        return FALSE;
    }
    for (const char *c = id; *c; c++) {
        if (!g_ascii_isalnum(*c) && *c != '-' && *c != '.' && *c != '_') {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "disk ID '%s' may hold only letters, digits, '-', '.' and '_'", id);
            return FALSE;
        }
    }
    return TRUE;
}

/* {"name": value} as a node, for the one-member undo arguments. */
static JsonNode *
hotplug_disk_args1(const char *name, const char *value)
{
    JsonObject *o = json_object_new();
    JsonNode *n;

    json_object_set_string_member(o, name, value);
    n = json_node_init_object(json_node_alloc(), o);
    json_object_unref(o);
    return n;
}

static JsonNode *
hotplug_disk_object_node(JsonObject *o)
{
    JsonNode *n = json_node_init_object(json_node_alloc(), o);

    json_object_unref(o);
    return n;
}

static gboolean
hotplug_disk_check_options(const char *id, const HotplugDiskOptions *opts,
                           const QmpGreeting *greeting, GError **error)
{
    const char *format = opts->format ? opts->format : "raw";

    if (!hotplug_disk_id_valid(id, error))
        return FALSE;
    if (!opts->file || !*opts->file) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no image file given");
        return FALSE;
    }
    if (!g_str_equal(format, "raw") && !g_str_equal(format, "qcow2")) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "unknown image format '%s': raw or qcow2", format);
        return FALSE;
    }
    if (opts->iothreads > HOTPLUG_DISK_IOTHREADS_MAX) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "--iothreads %u: at most %d",
                    opts->iothreads, HOTPLUG_DISK_IOTHREADS_MAX);
        return FALSE;
    }
    if (opts->queues > HOTPLUG_DISK_QUEUES_MAX) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "--queues %u: at most %d",
                    opts->queues, HOTPLUG_DISK_QUEUES_MAX);
        return FALSE;
    }
    if (opts->iothreads > 1 && opts->queues && opts->queues < opts->iothreads) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "--queues %u is fewer than --iothreads %u: every IOThread needs a queue",
                    opts->queues, opts->iothreads);
        return FALSE;
    }
    if (opts->iothreads > 1 &&
        !qmp_greeting_version_at_least(greeting, HOTPLUG_DISK_VQ_MAPPING_MAJOR,
                                       HOTPLUG_DISK_VQ_MAPPING_MINOR)) {
        g_autofree char *found = greeting ? g_strdup_printf("QEMU %d.%d.%d", greeting->major,
                                                            greeting->minor, greeting->micro)
                                          : g_strdup("a QEMU of unknown version");
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED,
                    "--iothreads %u needs the virtio-blk iothread-vq-mapping property, which "
                    "QMP device_add takes from QEMU %d.%d on; this VM runs %s (use "
                    "--iothreads 1 or 0)",
                    opts->iothreads, HOTPLUG_DISK_VQ_MAPPING_MAJOR, HOTPLUG_DISK_VQ_MAPPING_MINOR,
                    found);
        return FALSE;
    }
    return TRUE;
}

/* iothread-vq-mapping: queue q goes to IOThread q % N; without a queue
 * count QEMU spreads them the same way itself. */
static JsonArray *
hotplug_disk_vq_mapping(const char *id, guint iothreads, guint queues)
{
    JsonArray *map = json_array_new();

    for (guint i = 0; i < iothreads; i++) {
        JsonObject *e = json_object_new();
        g_autofree char *name = hotplug_disk_iothread_id(id, i);

        json_object_set_string_member(e, "iothread", name);
        if (queues) {
            JsonArray *vqs = json_array_new();
            for (guint q = i; q < queues; q += iothreads)
                json_array_add_int_element(vqs, q);
            json_object_set_array_member(e, "vqs", vqs);
        }
        json_array_add_object_element(map, e);
    }
    return map;
}

GPtrArray *
hotplug_disk_build_steps(const char *id, const HotplugDiskOptions *opts,
                         const QmpGreeting *greeting, GError **error)
{
    g_autoptr(GPtrArray) steps = NULL;
    g_autofree char *file_node = NULL;
    g_autofree char *fmt_node = NULL;
    JsonObject *o;
    guint queues;

    if (!hotplug_disk_check_options(id, opts, greeting, error))
        return NULL;
    steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    file_node = hotplug_disk_file_node(id);
    fmt_node = hotplug_disk_format_node(id);

    o = json_object_new();
    json_object_set_string_member(o, "driver", "file");
    json_object_set_string_member(o, "node-name", file_node);
    json_object_set_string_member(o, "filename", opts->file);
    if (opts->readonly)
        json_object_set_boolean_member(o, "read-only", TRUE);
    g_ptr_array_add(steps,
                    hotplug_step_new("blockdev-add", hotplug_disk_object_node(o), "blockdev-del",
                                     hotplug_disk_args1("node-name", file_node)));

    o = json_object_new();
    json_object_set_string_member(o, "driver", opts->format ? opts->format : "raw");
    json_object_set_string_member(o, "node-name", fmt_node);
    json_object_set_string_member(o, "file", file_node);
    if (opts->readonly)
        json_object_set_boolean_member(o, "read-only", TRUE);
    g_ptr_array_add(steps,
                    hotplug_step_new("blockdev-add", hotplug_disk_object_node(o), "blockdev-del",
                                     hotplug_disk_args1("node-name", fmt_node)));

    for (guint i = 0; i < opts->iothreads; i++) {
        g_autofree char *name = hotplug_disk_iothread_id(id, i);
        o = json_object_new();
        json_object_set_string_member(o, "qom-type", "iothread");
        json_object_set_string_member(o, "id", name);
        g_ptr_array_add(steps, hotplug_step_new("object-add", hotplug_disk_object_node(o),
                                                "object-del", hotplug_disk_args1("id", name)));
    }

    o = json_object_new();
    json_object_set_string_member(o, "driver", "virtio-blk-pci");
    json_object_set_string_member(o, "id", id);
    json_object_set_string_member(o, "drive", fmt_node);
    if (opts->bus)
        json_object_set_string_member(o, "bus", opts->bus);
    if (opts->addr)
        json_object_set_string_member(o, "addr", opts->addr);
    /* N IOThreads need N virtqueues at least, or some have nothing to do */
    queues = opts->queues ? opts->queues : (opts->iothreads > 1 ? opts->iothreads : 0);
    if (queues)
        json_object_set_int_member(o, "num-queues", queues);
    if (opts->iothreads == 1) {
        g_autofree char *name = hotplug_disk_iothread_id(id, 0);
        json_object_set_string_member(o, "iothread", name);
    } else if (opts->iothreads > 1) {
        json_object_set_array_member(o, "iothread-vq-mapping",
                                     hotplug_disk_vq_mapping(id, opts->iothreads, queues));
    }
    /* a device_add that failed left nothing; one that worked is the plug */
    g_ptr_array_add(steps, hotplug_step_new("device_add", hotplug_disk_object_node(o), NULL, NULL));
    return g_steal_pointer(&steps);
}

HotplugOp *
hotplug_disk_add(HotplugVm *vm, const char *id, const HotplugDiskOptions *opts, GError **error)
{
    GPtrArray *steps =
        hotplug_disk_build_steps(id, opts, qmp_conn_get_greeting(hotplug_vm_get_conn(vm)), error);

    if (!steps)
        return NULL;
    return hotplug_vm_plug(vm, HOTPLUG_KIND_DISK, id, steps, error);
}

/* ---- del ---------------------------------------------------------------- */

/* What the disk owns, found in QEMU before device_del goes out.  Replies
 * come in the order of the commands, so both answers are in before any
 * outcome of the device_del that follows them: the cleanup is set in time. */
typedef struct {
    HotplugOp *op;
    char *id;
    guint pending;
    gboolean have_fmt, have_file;
    GPtrArray *iothreads; /* char *, in index order */
} HotplugDiskDel;

static void
hotplug_disk_del_free(HotplugDiskDel *d)
{
    if (d->op)
        hotplug_op_unref(d->op);
    g_free(d->id);
    g_ptr_array_unref(d->iothreads);
    g_free(d);
}

/* The IOThread index of name when it is ID-iothreadK of id, else -1. */
static gint64
hotplug_disk_iothread_index(const char *id, const char *name)
{
    gsize n = strlen(id);
    const char *rest;
    char *end = NULL;
    guint64 k;

    if (strncmp(name, id, n) != 0 || !g_str_has_prefix(name + n, SUFFIX_IOTHREAD))
        return -1;
    rest = name + n + strlen(SUFFIX_IOTHREAD);
    if (!g_ascii_isdigit(*rest))
        return -1;
    k = g_ascii_strtoull(rest, &end, 10);
    if (*end || k > G_MAXINT32 || (rest[0] == '0' && rest[1]))
        return -1;
    return (gint64)k;
}

static gint
hotplug_disk_iothread_cmp(gconstpointer a, gconstpointer b, gpointer id)
{
    gint64 x = hotplug_disk_iothread_index(id, *(const char *const *)a);
    gint64 y = hotplug_disk_iothread_index(id, *(const char *const *)b);

    return x < y ? -1 : x > y;
}

static void
hotplug_disk_del_ready(HotplugDiskDel *d)
{
    GPtrArray *steps;
    g_autofree char *fmt = hotplug_disk_format_node(d->id);
    g_autofree char *file = hotplug_disk_file_node(d->id);

    if (--d->pending)
        return;
    if (!d->op) {
        hotplug_disk_del_free(d);
        return;
    }
    steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    /* the format node holds the file node: it goes first */
    if (d->have_fmt)
        g_ptr_array_add(steps, hotplug_step_new("blockdev-del",
                                                hotplug_disk_args1("node-name", fmt), NULL, NULL));
    if (d->have_file)
        g_ptr_array_add(steps, hotplug_step_new("blockdev-del",
                                                hotplug_disk_args1("node-name", file), NULL, NULL));
    g_ptr_array_sort_with_data(d->iothreads, hotplug_disk_iothread_cmp, d->id);
    for (guint i = 0; i < d->iothreads->len; i++)
        g_ptr_array_add(steps, hotplug_step_new("object-del",
                                                hotplug_disk_args1("id", d->iothreads->pdata[i]),
                                                NULL, NULL));
    if (d->op->state == HOTPLUG_OP_DONE || d->op->state == HOTPLUG_OP_CLEANUP) {
        /* cannot happen with QEMU's in-order replies; say so if it does */
        g_warning("disk %s: unplug ended before its backends were known; they stay", d->id);
        g_ptr_array_unref(steps);
    } else {
        hotplug_op_set_cleanup(d->op, steps);
    }
    hotplug_disk_del_free(d);
}

static void
hotplug_disk_del_nodes_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugDiskDel *d = opaque;
    JsonArray *nodes = error ? NULL : qmp_json_node_array(ret);
    g_autofree char *fmt = hotplug_disk_format_node(d->id);
    g_autofree char *file = hotplug_disk_file_node(d->id);

    if (error)
        g_warning("disk %s: query-named-block-nodes: %s", d->id, error->message);
    for (guint i = 0; nodes && i < json_array_get_length(nodes); i++) {
        JsonObject *n = qmp_json_node_object(json_array_get_element(nodes, i));
        const char *name = qmp_json_get_string(n, "node-name");
        if (name && g_str_equal(name, fmt))
            d->have_fmt = TRUE;
        else if (name && g_str_equal(name, file))
            d->have_file = TRUE;
    }
    hotplug_disk_del_ready(d);
}

static void
hotplug_disk_del_objects_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugDiskDel *d = opaque;
    JsonArray *list = error ? NULL : qmp_json_node_array(ret);

    if (error)
        g_warning("disk %s: qom-list /objects: %s", d->id, error->message);
    for (guint i = 0; list && i < json_array_get_length(list); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(list, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");
        if (name && type && g_str_equal(type, "child<iothread>") &&
            hotplug_disk_iothread_index(d->id, name) >= 0)
            g_ptr_array_add(d->iothreads, g_strdup(name));
    }
    hotplug_disk_del_ready(d);
}

static JsonNode *
hotplug_disk_flat_args(void)
{
    JsonObject *o = json_object_new();

    json_object_set_boolean_member(o, "flat", TRUE);
    return hotplug_disk_object_node(o);
}

HotplugOp *
hotplug_disk_del(HotplugVm *vm, const char *id, const HotplugUnplugOptions *opts,
                 gboolean *attached, GError **error)
{
    QmpConn *conn = hotplug_vm_get_conn(vm);
    HotplugDiskDel *d;
    HotplugOp *op;
    gboolean att = FALSE;

    if (!id || !*id) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "no disk ID given");
        return NULL;
    }
    op = hotplug_vm_find_op(vm, id);
    /* an unplug under way (joined, with its cleanup), a plug (busy), or
     * no connection: the engine says what happens */
    if ((op && op->state != HOTPLUG_OP_TRACKED) || qmp_conn_get_state(conn) != QMP_CONN_READY)
        return hotplug_vm_unplug(vm, HOTPLUG_KIND_DISK, id, opts, attached, error);

    d = g_new0(HotplugDiskDel, 1);
    d->id = g_strdup(id);
    d->iothreads = g_ptr_array_new_with_free_func(g_free);
    /* the queries go before device_del, see HotplugDiskDel */
    if (qmp_conn_execute(conn, "query-named-block-nodes", hotplug_disk_flat_args(),
                         hotplug_disk_del_nodes_cb, d, NULL))
        d->pending++;
    if (qmp_conn_execute(conn, "qom-list", hotplug_disk_args1("path", "/objects"),
                         hotplug_disk_del_objects_cb, d, NULL))
        d->pending++;
    op = hotplug_vm_unplug(vm, HOTPLUG_KIND_DISK, id, opts, &att, error);
    if (attached)
        *attached = att;
    /* no new unplug: nothing to clean up, the answers just drop */
    if (op && !att)
        d->op = hotplug_op_ref(op);
    if (!d->pending)
        hotplug_disk_del_free(d);
    return op;
}

/* ---- list --------------------------------------------------------------- */

typedef struct {
    QmpConn *conn;
    HotplugDiskListFunc done;
    gpointer opaque;
    guint pending;
    GError *error;
    JsonNode *block;   /* query-block */
    JsonNode *nodes;   /* query-named-block-nodes */
    JsonNode *objects; /* qom-list /objects */
    GHashTable *ops;   /* device -> JsonNode {op, action, state, attempts} */
} HotplugDiskList;

static void
hotplug_disk_list_free(HotplugDiskList *l)
{
    qmp_conn_unref(l->conn);
    g_clear_error(&l->error);
    if (l->block)
        json_node_unref(l->block);
    if (l->nodes)
        json_node_unref(l->nodes);
    if (l->objects)
        json_node_unref(l->objects);
    g_hash_table_unref(l->ops);
    g_free(l);
}

/* The device ID a query-block "qdev" names: "disk1", or a QOM path
 * "/machine/peripheral/disk1/virtio-backend". */
static char *
hotplug_disk_qdev_id(const char *qdev)
{
    const char *rest, *slash;

    if (!qdev || !*qdev)
        return NULL;
    if (!strchr(qdev, '/'))
        return g_strdup(qdev);
    if (!g_str_has_prefix(qdev, PERIPHERAL))
        return NULL;
    rest = qdev + strlen(PERIPHERAL);
    slash = strchr(rest, '/');
    return slash ? g_strndup(rest, slash - rest) : g_strdup(rest);
}

static JsonObject *
hotplug_disk_find_node(JsonArray *nodes, const char *name)
{
    for (guint i = 0; nodes && i < json_array_get_length(nodes); i++) {
        JsonObject *n = qmp_json_node_object(json_array_get_element(nodes, i));
        const char *nn = qmp_json_get_string(n, "node-name");
        if (nn && g_str_equal(nn, name))
            return n;
    }
    return NULL;
}

/* The disk ID of one of our node names (ID-fmt, ID-file), or NULL. */
static char *
hotplug_disk_node_owner(const char *node)
{
    g_autofree char *id = NULL;

    if (g_str_has_suffix(node, SUFFIX_FMT))
        id = g_strndup(node, strlen(node) - strlen(SUFFIX_FMT));
    else if (g_str_has_suffix(node, SUFFIX_FILE))
        id = g_strndup(node, strlen(node) - strlen(SUFFIX_FILE));
    return id && hotplug_disk_id_valid(id, NULL) ? g_steal_pointer(&id) : NULL;
}

/* The disk ID of one of our IOThread ids (ID-iothreadK), or NULL. */
static char *
hotplug_disk_iothread_owner(const char *name)
{
    const char *at = g_strrstr(name, SUFFIX_IOTHREAD);
    g_autofree char *id = NULL;

    if (!at)
        return NULL;
    id = g_strndup(name, at - name);
    if (!hotplug_disk_id_valid(id, NULL) || hotplug_disk_iothread_index(id, name) < 0)
        return NULL;
    return g_steal_pointer(&id);
}

/* IOThread ids by disk, then by index (d1-iothread2 before d1-iothread10). */
static gint
hotplug_disk_name_cmp(gconstpointer a, gconstpointer b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    g_autofree char *ox = hotplug_disk_iothread_owner(x);
    g_autofree char *oy = hotplug_disk_iothread_owner(y);
    gint c;

    if (!ox || !oy || (c = strcmp(ox, oy)) != 0)
        return strcmp(x, y);
    c = (gint)(hotplug_disk_iothread_index(ox, x) - hotplug_disk_iothread_index(oy, y));
    return c < 0 ? -1 : c > 0;
}

static void
hotplug_disk_list_finish(HotplugDiskList *l)
{
    JsonArray *block = qmp_json_node_array(l->block);
    JsonArray *nodes = qmp_json_node_array(l->nodes);
    JsonArray *objects = qmp_json_node_array(l->objects);
    g_autoptr(GHashTable) disks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GPtrArray) iothreads = g_ptr_array_new();
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;

    /* IOThreads of the scheme, in order */
    for (guint i = 0; objects && i < json_array_get_length(objects); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(objects, i));
        const char *name = qmp_json_get_string(e, "name");
        const char *type = qmp_json_get_string(e, "type");
        if (name && type && g_str_equal(type, "child<iothread>"))
            g_ptr_array_add(iothreads, (gpointer)name);
    }
    g_ptr_array_sort(iothreads, hotplug_disk_name_cmp);

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "disks");
    json_builder_begin_array(b);
    for (guint i = 0; block && i < json_array_get_length(block); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(block, i));
        JsonObject *ins = qmp_json_get_object(e, "inserted");
        g_autofree char *id = hotplug_disk_qdev_id(qmp_json_get_string(e, "qdev"));
        g_autofree char *fmt = NULL;
        g_autofree char *file = NULL;
        const char *node = qmp_json_get_string(ins, "node-name");
        JsonObject *fmt_node, *file_node;
        JsonNode *pending;

        if (!id || !node || g_hash_table_contains(disks, id))
            continue;
        fmt = hotplug_disk_format_node(id);
        if (!g_str_equal(node, fmt))
            continue; /* not a disk of ours */
        file = hotplug_disk_file_node(id);
        fmt_node = hotplug_disk_find_node(nodes, fmt);
        file_node = hotplug_disk_find_node(nodes, file);
        g_hash_table_add(disks, g_strdup(id));

        json_builder_begin_object(b);
        json_builder_set_member_name(b, "id");
        json_builder_add_string_value(b, id);
        json_builder_set_member_name(b, "file");
        json_builder_add_string_value(b, qmp_json_get_string(file_node, "file")
                                             ?: qmp_json_get_string(ins, "file") ?: "");
        json_builder_set_member_name(b, "format");
        json_builder_add_string_value(b, qmp_json_get_string(fmt_node, "drv")
                                             ?: qmp_json_get_string(ins, "drv") ?: "");
        json_builder_set_member_name(b, "readonly");
        json_builder_add_boolean_value(b, qmp_json_get_bool_default(ins, "ro", FALSE));
        json_builder_set_member_name(b, "node");
        json_builder_add_string_value(b, fmt);
        json_builder_set_member_name(b, "file_node");
        if (file_node)
            json_builder_add_string_value(b, file);
        else
            json_builder_add_null_value(b);
        json_builder_set_member_name(b, "iothreads");
        json_builder_begin_array(b);
        for (guint k = 0; k < iothreads->len; k++)
            if (hotplug_disk_iothread_index(id, iothreads->pdata[k]) >= 0)
                json_builder_add_string_value(b, iothreads->pdata[k]);
        json_builder_end_array(b);
        json_builder_set_member_name(b, "pending");
        pending = g_hash_table_lookup(l->ops, id);
        if (pending)
            json_builder_add_value(b, json_node_copy(pending));
        else
            json_builder_add_null_value(b);
        json_builder_end_object(b);
    }
    json_builder_end_array(b);

    json_builder_set_member_name(b, "leftover");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "nodes");
    json_builder_begin_array(b);
    for (guint i = 0; nodes && i < json_array_get_length(nodes); i++) {
        JsonObject *n = qmp_json_node_object(json_array_get_element(nodes, i));
        const char *name = qmp_json_get_string(n, "node-name");
        g_autofree char *owner = name ? hotplug_disk_node_owner(name) : NULL;
        if (owner && !g_hash_table_contains(disks, owner))
            json_builder_add_string_value(b, name);
    }
    json_builder_end_array(b);
    json_builder_set_member_name(b, "iothreads");
    json_builder_begin_array(b);
    for (guint k = 0; k < iothreads->len; k++) {
        g_autofree char *owner = hotplug_disk_iothread_owner(iothreads->pdata[k]);
        if (owner && !g_hash_table_contains(disks, owner))
            json_builder_add_string_value(b, iothreads->pdata[k]);
    }
    json_builder_end_array(b);
    json_builder_end_object(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    l->done(root, NULL, l->opaque);
}

static void
hotplug_disk_list_step_done(HotplugDiskList *l)
{
    if (--l->pending)
        return;
    if (l->error)
        l->done(NULL, l->error, l->opaque);
    else
        hotplug_disk_list_finish(l);
    hotplug_disk_list_free(l);
}

static void
hotplug_disk_list_store(HotplugDiskList *l, JsonNode **slot, const char *what, JsonNode *ret,
                        const GError *error)
{
    if (error) {
        if (!l->error)
            l->error = g_error_new(error->domain, error->code, "%s: %s", what, error->message);
    } else {
        *slot = json_node_ref(ret);
    }
    hotplug_disk_list_step_done(l);
}

static void
hotplug_disk_list_block_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugDiskList *l = opaque;

    hotplug_disk_list_store(l, &l->block, "query-block", ret, error);
}

static void
hotplug_disk_list_nodes_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugDiskList *l = opaque;

    hotplug_disk_list_store(l, &l->nodes, "query-named-block-nodes", ret, error);
}

static void
hotplug_disk_list_objects_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    HotplugDiskList *l = opaque;

    hotplug_disk_list_store(l, &l->objects, "qom-list /objects", ret, error);
}

static JsonNode *
hotplug_disk_pending_json(const HotplugOp *op)
{
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "op", (gint64)hotplug_op_get_id(op));
    json_object_set_string_member(o, "action", hotplug_action_name(hotplug_op_get_action(op)));
    json_object_set_string_member(o, "state", hotplug_op_state_name(hotplug_op_get_state(op)));
    json_object_set_int_member(o, "attempts", hotplug_op_get_attempts(op));
    return hotplug_disk_object_node(o);
}

gboolean
hotplug_disk_list(HotplugVm *vm, HotplugDiskListFunc done, gpointer opaque, GError **error)
{
    static const struct {
        const char *cmd;
        QmpReplyFunc cb;
    } queries[] = {
        {"query-block", hotplug_disk_list_block_cb},
        {"query-named-block-nodes", hotplug_disk_list_nodes_cb},
        {"qom-list", hotplug_disk_list_objects_cb},
    };
    QmpConn *conn = hotplug_vm_get_conn(vm);
    g_autoptr(GPtrArray) ops = NULL;
    HotplugDiskList *l;

    if (qmp_conn_get_state(conn) != QMP_CONN_READY) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE, "VM %s is not connected (%s)",
                    hotplug_vm_get_name(vm), qmp_conn_state_name(qmp_conn_get_state(conn)));
        return FALSE;
    }
    l = g_new0(HotplugDiskList, 1);
    l->conn = qmp_conn_ref(conn);
    l->done = done;
    l->opaque = opaque;
    l->ops =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)json_node_unref);
    ops = hotplug_vm_list_ops(vm);
    for (guint i = 0; i < ops->len; i++)
        g_hash_table_insert(l->ops, g_strdup(hotplug_op_get_device(ops->pdata[i])),
                            hotplug_disk_pending_json(ops->pdata[i]));
    /* one extra count: a failure to send cannot finish it early */
    l->pending = 1;
    for (guint i = 0; i < G_N_ELEMENTS(queries); i++) {
        g_autoptr(GError) local = NULL;
        JsonNode *args = i == 1   ? hotplug_disk_flat_args()
                         : i == 2 ? hotplug_disk_args1("path", "/objects")
                                  : NULL;
        if (!qmp_conn_execute(conn, queries[i].cmd, args, queries[i].cb, l, &local)) {
            if (!l->error)
                l->error = g_steal_pointer(&local);
            break;
        }
        l->pending++;
    }
    if (l->pending == 1 && l->error) {
        g_propagate_error(error, g_steal_pointer(&l->error));
        hotplug_disk_list_free(l);
        return FALSE;
    }
    hotplug_disk_list_step_done(l);
    return TRUE;
}
