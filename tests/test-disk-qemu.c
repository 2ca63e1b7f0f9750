/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Disk hotplug against a real QEMU with the test guest (pc machine;
 * the guest ejects the PCI device, so unplugs complete): raw and qcow2
 * images made with qemu-img, --iothreads 1, rollback of a failing
 * device_add and of a failing blockdev-add with nothing left behind
 * (query-named-block-nodes, qom-list /objects), --iothreads 4 accepted or
 * refused as the QEMU under test decides, not-deleted then deleted-late
 * with the backends removed only then,
 * and the hotplugctl verbs, in direct mode and through a hotplugd started
 * by the test.  One QEMU for the whole group; the group teardown kills it
 * whatever happened; a test's teardown kills its hotplugd and unplugs any
 * disk a failed test left behind, so that the next one finds the images
 * unlocked. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib/gstdio.h>

#include "hotplug-disk.h"
#include "hotplug-vm.h"
#include "qmp-conn.h"
#include "qmp-json.h"
#include "rig.h"

#define READY_MS RIG_REPLY_MS
#define REPLY_MS RIG_REPLY_MS
#define OP_MS 30000

typedef struct {
    char *dir; /* our own temp dir: images */
    char *raw, *qcow2;
    const char *cli_sock; /* QEMU's QMP socket for hotplugctl */
    const char *hpd_sock; /* QEMU's QMP socket for hotplugd */
    RigHotplugd *hotplugd; /* a hotplugd the test started, or NULL */
    RigVm *qemu;
    QmpConn *conn;  /* the engine's */
    HotplugVm *vm;
} Fixture;

static gboolean
make_image(const char *qemu_img, const char *format, const char *path, GError **error)
{
    const char *argv[] = {qemu_img, "create", "-q", "-f", format, path, "16M", NULL};
    g_autofree char *err = NULL;
    int status;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err, &status,
                      error))
        return FALSE;
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_set_error(error, G_SPAWN_ERROR, G_SPAWN_ERROR_FAILED, "qemu-img create %s: %s", path,
                    err);
        return FALSE;
    }
    return TRUE;
}

static int
group_setup(void **state)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *qemu_img = rig_qemu_img(&error);
    Fixture *f = g_new0(Fixture, 1);
    HotplugVmOptions vo = {.gone_on_close = TRUE};
    /* a third QMP socket for hotplugctl, a fourth for hotplugd: one client
     * per socket */
    RigVmOptions opts = {.machine = RIG_MACHINE_PC, .guest = TRUE, .n_extra_qmp = 2};

    *state = f;
    if (!qemu_img)
        fail_msg("%s", error->message);
    f->dir = rig_make_tmp("disk-qemu-XXXXXX");
    f->raw = g_build_filename(f->dir, "disk.raw", NULL);
    f->qcow2 = g_build_filename(f->dir, "disk.qcow2", NULL);
    if (!make_image(qemu_img, "raw", f->raw, &error) ||
        !make_image(qemu_img, "qcow2", f->qcow2, &error))
        fail_msg("%s", error->message);
    f->qemu = rig_vm_start(&opts);
    f->cli_sock = rig_vm_extra_qmp_path(f->qemu, 1);
    f->hpd_sock = rig_vm_extra_qmp_path(f->qemu, 2);
    f->conn = qmp_conn_new(rig_vm_base(f->qemu), rig_vm_qmp_path(f->qemu), NULL);
    if (!qmp_conn_open(f->conn, &error) || !qmp_conn_wait_ready(f->conn, READY_MS, &error))
        fail_msg("QMP: %s", error->message);
    f->vm = hotplug_vm_new("vm", f->conn, &vo);
    return 0;
}

static int
group_teardown(void **state)
{
    Fixture *f = *state;

    if (f->vm)
        hotplug_vm_free(f->vm);
    if (f->conn) {
        qmp_conn_close(f->conn);
        qmp_conn_unref(f->conn);
    }
    g_clear_pointer(&f->qemu, rig_vm_free);
    if (f->dir)
        rig_rm_tree(f->dir);
    g_free(f->dir);
    g_free(f->raw);
    g_free(f->qcow2);
    g_free(f);
    return 0;
}

/* The QEMU under test takes --iothreads N > 1 (the product detects it). */
static gboolean
has_vq_mapping(Fixture *f)
{
    return rig_vm_has_cap(f->qemu, "iothread-vq-mapping");
}

/* ---- checks through the spare socket --------------------------------------- */

static gint
str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a b c": the sorted node names QEMU has (auto-named ones left out). */
static char *
node_names(Fixture *f)
{
    g_autoptr(JsonNode) ret = rig_vm_qmp(f->qemu, "query-named-block-nodes", "{\"flat\": true}");
    JsonArray *a = qmp_json_node_array(ret);
    g_autoptr(GPtrArray) names = g_ptr_array_new();

    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        const char *n =
            qmp_json_get_string(qmp_json_node_object(json_array_get_element(a, i)), "node-name");
        if (n && n[0] != '#')
            g_ptr_array_add(names, (gpointer)n);
    }
    g_ptr_array_sort(names, str_cmp);
    g_ptr_array_add(names, NULL);
    return g_strjoinv(" ", (char **)names->pdata);
}

/* "a b c": the sorted names under /objects. */
static char *
object_names(Fixture *f)
{
    g_autoptr(JsonNode) ret = rig_vm_qmp(f->qemu, "qom-list", "{\"path\": \"/objects\"}");
    JsonArray *a = qmp_json_node_array(ret);
    g_autoptr(GPtrArray) names = g_ptr_array_new();

    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *e = qmp_json_node_object(json_array_get_element(a, i));
        const char *type = qmp_json_get_string(e, "type");
        if (type && g_str_has_prefix(type, "child<"))
            g_ptr_array_add(names, (gpointer)qmp_json_get_string(e, "name"));
    }
    g_ptr_array_sort(names, str_cmp);
    g_ptr_array_add(names, NULL);
    return g_strjoinv(" ", (char **)names->pdata);
}

static gboolean
has_word(const char *list, const char *word)
{
    g_auto(GStrv) words = g_strsplit(list, " ", -1);

    return g_strv_contains((const char *const *)words, word);
}

static gboolean
device_present(Fixture *f, const char *id)
{
    return rig_vm_peripheral_has(f->qemu, id);
}

static void
wait_final(Fixture *f, HotplugOp *op)
{
    gint64 end = g_get_monotonic_time() + OP_MS * 1000;

    while (!hotplug_op_is_final(op) && g_get_monotonic_time() < end)
        event_base_loop(rig_vm_base(f->qemu), EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(1000);
    if (!hotplug_op_is_final(op))
        fail_msg("op on %s still %s after %d ms", hotplug_op_get_device(op),
                 hotplug_op_state_name(hotplug_op_get_state(op)), OP_MS);
}

static void
wait_done(Fixture *f, HotplugOp *op)
{
    gint64 end = g_get_monotonic_time() + OP_MS * 1000;

    while (hotplug_op_get_state(op) != HOTPLUG_OP_DONE && g_get_monotonic_time() < end)
        event_base_loop(rig_vm_base(f->qemu), EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(1000);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_DONE);
}

static void
assert_op(HotplugOp *op, HotplugOutcome want)
{
    if (hotplug_op_get_outcome(op) != want) {
        const GError *e = hotplug_op_get_error(op);
        fail_msg("%s: %s, want %s (error: %s; detail: %s)", hotplug_op_get_device(op),
                 hotplug_outcome_name(hotplug_op_get_outcome(op)), hotplug_outcome_name(want),
                 e ? e->message : "-", hotplug_op_get_detail(op) ?: "-");
    }
}

/* ---- add and del ---------------------------------------------------------- */

static void
add_del(Fixture *f, const char *id, const HotplugDiskOptions *o, const char *want_format)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) add = NULL;
    g_autoptr(HotplugOp) del = NULL;
    g_autoptr(JsonNode) blocks = NULL;
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL;
    g_autofree char *objects1 = NULL;
    g_autofree char *nodes2 = NULL;
    g_autofree char *objects2 = NULL;
    g_autofree char *fmt = hotplug_disk_format_node(id);
    g_autofree char *file = hotplug_disk_file_node(id);
    g_autofree char *iot = hotplug_disk_iothread_id(id, 0);
    gboolean found = FALSE;
    JsonArray *a;

    add = hotplug_disk_add(f->vm, id, o, &error);
    if (!add)
        fail_msg("disk add %s: %s", id, error->message);
    wait_final(f, add);
    assert_op(add, HOTPLUG_OUTCOME_ADDED);
    assert_true(device_present(f, id));
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_true(has_word(nodes1, fmt));
    assert_true(has_word(nodes1, file));
    assert_int_equal(has_word(objects1, iot), o->iothreads == 1);

    /* QEMU's view of the device: our format node, the image, read-only or not */
    blocks = rig_vm_qmp(f->qemu, "query-block", NULL);
    a = qmp_json_node_array(blocks);
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *b = qmp_json_node_object(json_array_get_element(a, i));
        JsonObject *ins = qmp_json_get_object(b, "inserted");
        g_autofree char *qdev = g_strdup_printf("/machine/peripheral/%s/virtio-backend", id);
        if (!g_strcmp0(qmp_json_get_string(b, "qdev"), qdev)) {
            found = TRUE;
            assert_string_equal(qmp_json_get_string(ins, "node-name"), fmt);
            assert_string_equal(qmp_json_get_string(ins, "drv"), want_format);
            assert_int_equal(qmp_json_get_bool_default(ins, "ro", !o->readonly), o->readonly);
        }
    }
    assert_true(found);
    if (o->iothreads == 1) {
        g_autofree char *path = g_strdup_printf("/machine/peripheral/%s", id);
        g_autofree char *args =
            g_strdup_printf("{\"path\": \"%s\", \"property\": \"iothread\"}", path);
        g_autoptr(JsonNode) ret = rig_vm_qmp(f->qemu, "qom-get", args);
        g_autofree char *want = g_strdup_printf("/objects/%s", iot);
        const char *have = qmp_json_node_string(ret);
        if (!have || (!g_str_equal(have, iot) && !g_str_equal(have, want)))
            fail_msg("iothread of %s is '%s'", id, have ? have : "(not a string)");
    }

    del = hotplug_disk_del(f->vm, id, NULL, NULL, &error);
    if (!del)
        fail_msg("disk del %s: %s", id, error->message);
    wait_final(f, del);
    assert_op(del, HOTPLUG_OUTCOME_DELETED);
    /* no cleanup step failed */
    if (hotplug_op_get_detail(del))
        fail_msg("detail: %s", hotplug_op_get_detail(del));
    assert_false(device_present(f, id));
    nodes2 = node_names(f);
    objects2 = object_names(f);
    assert_string_equal(nodes2, nodes0);
    assert_string_equal(objects2, objects0);
}

static void
test_raw_iothread(void **state)
{
    Fixture *f = *state;
    HotplugDiskOptions o = {.file = f->raw, .iothreads = 1};

    add_del(f, "draw", &o, "raw");
}

static void
test_qcow2_iothread(void **state)
{
    Fixture *f = *state;
    HotplugDiskOptions o = {.file = f->qcow2, .format = "qcow2", .iothreads = 1, .queues = 2};

    add_del(f, "dqcow", &o, "qcow2");
}

static void
test_qcow2_readonly(void **state)
{
    Fixture *f = *state;
    HotplugDiskOptions o = {.file = f->qcow2, .format = "qcow2", .readonly = TRUE};

    add_del(f, "dro", &o, "qcow2");
}

/* device_add fails (the ID is taken): nodes and IOThread are undone. */
static void
test_rollback_device_add(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) r = rig_vm_qmp(f->qemu, "device_add",
                                  "{\"driver\": \"virtio-rng-pci\", \"id\": "
                                  "\"busy0\"}");
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL;
    g_autofree char *objects1 = NULL;
    HotplugDiskOptions o = {.file = f->raw, .iothreads = 1};
    const GError *err;

    op = hotplug_disk_add(f->vm, "busy0", &o, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_op(op, HOTPLUG_OUTCOME_REJECTED);
    err = hotplug_op_get_error(op);
    assert_string_equal(qmp_error_class_name(err), "GenericError");
    if (!strstr(err->message, "Duplicate") || !strstr(err->message, "busy0"))
        fail_msg("QEMU's text: %s", err->message);
    /* the failing step is named, and no undo failed */
    assert_string_equal(hotplug_op_get_detail(op), "step 4 of 4 (device_add) failed");
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_false(has_word(nodes1, "busy0-fmt"));
    assert_false(has_word(nodes1, "busy0-file"));
    assert_false(has_word(objects1, "busy0-iothread0"));
    assert_string_equal(nodes1, nodes0);
    assert_string_equal(objects1, objects0);
    assert_true(device_present(f, "busy0")); /* the other device is untouched */
}

/* blockdev-add of the format node fails: the file node is undone. */
static void
test_rollback_blockdev(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL;
    g_autofree char *objects1 = NULL;
    HotplugDiskOptions o = {.file = f->raw, .format = "qcow2", .iothreads = 1};

    op = hotplug_disk_add(f->vm, "dbad", &o, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_op(op, HOTPLUG_OUTCOME_REJECTED);
    assert_string_equal(hotplug_op_get_error(op)->message, "Image is not in qcow2 format");
    assert_string_equal(hotplug_op_get_detail(op), "step 2 of 4 (blockdev-add) failed");
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_string_equal(nodes1, nodes0);
    assert_string_equal(objects1, objects0);
    assert_false(device_present(f, "dbad"));
}

/* --iothreads 4 (iothread-vq-mapping) where the QEMU under test takes it:
 * added, four IOThreads, and deleted again with nothing left behind (the
 * VM is shared).  Where it does not: refused up front, naming both the
 * version that takes it and the one the VM runs, nothing sent. */
static void
test_iothreads4(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) add = NULL;
    g_autoptr(HotplugOp) del = NULL;
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL;
    g_autofree char *objects1 = NULL;
    g_autofree char *want = NULL;
    HotplugDiskOptions o = {.file = f->raw, .iothreads = 4, .queues = 8};
    int major, minor, micro;

    rig_vm_version(f->qemu, &major, &minor, &micro);
    if (has_vq_mapping(f)) {
        add = hotplug_disk_add(f->vm, "d4", &o, &error);
        if (!add)
            fail_msg("disk add d4: %s", error->message);
        wait_final(f, add);
        assert_op(add, HOTPLUG_OUTCOME_ADDED);
        assert_true(device_present(f, "d4"));
        objects1 = object_names(f);
        for (guint i = 0; i < 4; i++) {
            g_autofree char *iot = hotplug_disk_iothread_id("d4", i);
            assert_true(has_word(objects1, iot));
        }
        g_clear_pointer(&objects1, g_free);
        del = hotplug_disk_del(f->vm, "d4", NULL, NULL, &error);
        if (!del)
            fail_msg("disk del d4: %s", error->message);
        wait_final(f, del);
        assert_op(del, HOTPLUG_OUTCOME_DELETED);
        assert_false(device_present(f, "d4"));
    } else {
        assert_null(hotplug_disk_add(f->vm, "d4", &o, &error));
        assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED));
        want = g_strdup_printf("--iothreads 4 needs the virtio-blk iothread-vq-mapping property, "
                               "which QMP device_add takes from QEMU %d.%d on; this VM runs QEMU "
                               "%d.%d.%d (use --iothreads 1 or 0)",
                               HOTPLUG_DISK_VQ_MAPPING_MAJOR, HOTPLUG_DISK_VQ_MAPPING_MINOR, major,
                               minor, micro);
        assert_string_equal(error->message, want);
        assert_null(hotplug_vm_find_op(f->vm, "d4"));
    }
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_string_equal(nodes1, nodes0);
    assert_string_equal(objects1, objects0);
}

/* hotplugctl ... disk add SOCK|VM FILE --id ID --iothreads 4 (sock NULL: through
 * hotplugd to vm1): added and deleted again, or refused (exit 1) naming
 * both versions, as the QEMU under test decides. */
static void
cli_iothreads4(Fixture *f, const char *sock)
{
    g_autofree char *out = NULL, *err = NULL, *runs = NULL, *takes = NULL;
    int major, minor, micro, rc;

    rig_vm_version(f->qemu, &major, &minor, &micro);
    if (sock)
        rc = rig_ctl_text(&out, &err, "disk", "add", sock, f->raw, "--id", "d4", "--iothreads",
                          "4", NULL);
    else
        rc = rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "disk", "add", "vm1", f->raw, "--id",
                                   "d4", "--iothreads", "4", NULL);
    if (has_vq_mapping(f)) {
        if (rc != 0)
            fail_msg("disk add --iothreads 4: exit %d: %s%s", rc, out, err);
        assert_true(g_str_has_prefix(out, "d4: added"));
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        if (sock)
            rc = rig_ctl_text(&out, &err, "disk", "del", sock, "d4", "--timeout", "20", NULL);
        else
            rc = rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "disk", "del", "vm1", "d4",
                                       "--timeout", "20", NULL);
        if (rc != 0)
            fail_msg("disk del d4: exit %d: %s%s", rc, out, err);
        assert_true(g_str_has_prefix(out, "d4: deleted"));
        assert_false(device_present(f, "d4"));
    } else {
        /* Unsupported is exit 1, and nothing was sent */
        assert_int_equal(rc, 1);
        takes = g_strdup_printf("QEMU %d.%d", HOTPLUG_DISK_VQ_MAPPING_MAJOR,
                                HOTPLUG_DISK_VQ_MAPPING_MINOR);
        runs = g_strdup_printf("this VM runs QEMU %d.%d.%d", major, minor, micro);
        if (!strstr(err, takes) || !strstr(err, runs))
            fail_msg("want '%s' and '%s' in: %s", takes, runs, err);
        assert_false(device_present(f, "d4"));
    }
}

/* The VM is paused: the unplug ends not-deleted and the backends stay;
 * once it runs, the guest ejects, the backends go, and deleted-late. */
static void
test_not_deleted_then_late(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) add = NULL;
    g_autoptr(HotplugOp) del = NULL;
    g_autoptr(JsonNode) r1 = NULL;
    g_autoptr(JsonNode) r2 = NULL;
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL;
    g_autofree char *objects1 = NULL;
    g_autofree char *nodes2 = NULL;
    g_autofree char *objects2 = NULL;
    HotplugDiskOptions o = {.file = f->raw, .iothreads = 1};
    HotplugUnplugOptions uo = {.timeout_ms = 1000};

    add = hotplug_disk_add(f->vm, "dlate", &o, &error);
    assert_non_null(add);
    wait_final(f, add);
    assert_op(add, HOTPLUG_OUTCOME_ADDED);
    /* let the guest see the new device before it is paused */
    g_usleep(1000 * 1000);
    r1 = rig_vm_qmp(f->qemu, "stop", NULL);
    del = hotplug_disk_del(f->vm, "dlate", &uo, NULL, &error);
    assert_non_null(del);
    wait_final(f, del);
    assert_op(del, HOTPLUG_OUTCOME_NOT_DELETED);
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_true(has_word(nodes1, "dlate-fmt"));
    assert_true(has_word(nodes1, "dlate-file"));
    assert_true(has_word(objects1, "dlate-iothread0"));

    r2 = rig_vm_qmp(f->qemu, "cont", NULL);
    wait_done(f, del);
    assert_op(del, HOTPLUG_OUTCOME_DELETED_LATE);
    assert_false(device_present(f, "dlate"));
    nodes2 = node_names(f);
    objects2 = object_names(f);
    assert_string_equal(nodes2, nodes0);
    assert_string_equal(objects2, objects0);
}

/* ---- hotplugctl ------------------------------------------------------------ */

static void
test_cli(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL;
    g_autofree char *objects1 = NULL;
    g_autoptr(JsonNode) list = NULL;
    JsonArray *disks;
    JsonObject *d;
    int rc;

    rc = rig_ctl_text(&out, &err, "disk", "add", f->cli_sock, f->qcow2, "--id", "dcli", "--format",
             "qcow2", "--iothreads", "1", NULL);
    if (rc != 0)
        fail_msg("disk add: exit %d: %s%s", rc, out, err);
    assert_true(g_str_has_prefix(out, "dcli: added"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    rc = rig_ctl_text(&out, &err, "--json", "disk", "list", f->cli_sock, NULL);
    assert_int_equal(rc, 0);
    list = json_from_string(out, NULL);
    assert_non_null(list);
    disks = qmp_json_get_array(qmp_json_node_object(list), "disks");
    assert_non_null(disks);
    assert_int_equal(json_array_get_length(disks), 1);
    d = qmp_json_node_object(json_array_get_element(disks, 0));
    assert_string_equal(qmp_json_get_string(d, "id"), "dcli");
    assert_string_equal(qmp_json_get_string(d, "file"), f->qcow2);
    assert_string_equal(qmp_json_get_string(d, "format"), "qcow2");
    assert_string_equal(qmp_json_get_string(d, "node"), "dcli-fmt");
    assert_string_equal(qmp_json_get_string(d, "file_node"), "dcli-file");
    assert_int_equal(json_array_get_length(qmp_json_get_array(d, "iothreads")), 1);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* --iothreads 4: as the QEMU under test decides */
    cli_iothreads4(f, f->cli_sock);

    /* bad input: exit 2 */
    rc = rig_ctl_text(&out, &err, "disk", "add", f->cli_sock, f->raw, "--id", "d5", "--format", "vmdk",
             NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "unknown image format 'vmdk'"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    rc = rig_ctl_text(&out, &err, "disk", "add", f->cli_sock, f->raw, NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "missing --id ID"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* a QEMU error: exit 3 with its text */
    rc = rig_ctl_text(&out, &err, "disk", "add", f->cli_sock, "/nonexistent/x.img", "--id", "dnx", NULL);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "dnx: rejected"));
    assert_non_null(strstr(out, "step 1 of 3 (blockdev-add) failed"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    rc = rig_ctl_text(&out, &err, "disk", "del", f->cli_sock, "dcli", "--timeout", "20", NULL);
    if (rc != 0)
        fail_msg("disk del: exit %d: %s%s", rc, out, err);
    assert_true(g_str_has_prefix(out, "dcli: deleted"));
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_string_equal(nodes1, nodes0);
    assert_string_equal(objects1, objects0);
}

/* ---- hotplugctl through hotplugd ---------------------------------------------- */

/* Whatever a test left plugged goes (the VM and its images are shared);
 * its hotplugd stops. */
static int
test_teardown(void **state)
{
    static const char *const ids[] = {"draw", "dqcow", "dro", "dbad", "d4", "dcli",
                                      "dnx",  "d5",    "dhpd", "dlate"};
    Fixture *f = *state;

    g_clear_pointer(&f->hotplugd, rig_hotplugd_free);
    rig_vm_qmp_error(f->qemu, "cont", NULL); /* a failed test may have left it stopped */
    for (guint i = 0; i < G_N_ELEMENTS(ids); i++) {
        g_autoptr(HotplugOp) op = NULL;

        if (!device_present(f, ids[i]) || hotplug_vm_find_op(f->vm, ids[i]))
            continue;
        op = hotplug_disk_del(f->vm, ids[i], NULL, NULL, NULL);
        if (op)
            wait_final(f, op);
    }
    return 0;
}

/* disk add / list / del by VM name, through a hotplugd started here */
static void
test_cli_hotplugd(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL, *objects1 = NULL;
    g_autofree char *nodes2 = NULL, *objects2 = NULL;
    g_autofree char *claims = NULL;
    g_autoptr(JsonNode) list = NULL;
    JsonObject *root, *d;
    JsonArray *disks;
    int rc;

    f->hotplugd = rig_hotplugd_new(NULL);
    rig_hotplugd_start(f->hotplugd);
    rig_hotplugd_add_vm(f->hotplugd, "vm1", f->hpd_sock);

    rc = rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "disk", "add", "vm1", f->qcow2, "--id", "dhpd",
             "--format", "qcow2", "--iothreads", "1", NULL);
    if (rc != 0) {
        g_autofree char *log = rig_hotplugd_log(f->hotplugd);
        fail_msg("disk add through hotplugd: exit %d: %s%s\nhotplugd: %s", rc, out, err, log);
    }
    assert_true(g_str_has_prefix(out, "dhpd: added"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_true(device_present(f, "dhpd"));
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_true(has_word(nodes1, "dhpd-fmt"));
    assert_true(has_word(nodes1, "dhpd-file"));
    assert_true(has_word(objects1, "dhpd-iothread0"));

    rc = rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "--json", "disk", "list", "vm1", NULL);
    assert_int_equal(rc, 0);
    list = json_from_string(out, NULL);
    root = list ? qmp_json_node_object(list) : NULL;
    if (!root)
        fail_msg("disk list --json: not an object: %s", out);
    assert_string_equal(qmp_json_get_string(root, "vm"), "vm1");
    disks = qmp_json_get_array(root, "disks");
    assert_non_null(disks);
    assert_int_equal(json_array_get_length(disks), 1);
    d = qmp_json_node_object(json_array_get_element(disks, 0));
    assert_string_equal(qmp_json_get_string(d, "id"), "dhpd");
    assert_string_equal(qmp_json_get_string(d, "file"), f->qcow2);
    assert_string_equal(qmp_json_get_string(d, "format"), "qcow2");
    assert_string_equal(qmp_json_get_string(d, "node"), "dhpd-fmt");
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* errors keep their class through the daemon (Unsupported is exit 1),
     * or --iothreads 4 works through it */
    cli_iothreads4(f, NULL);

    /* the hostdev verbs run in hotplugd too: its host check (/sys) refuses
     * a device no host has (exit 1), QEMU rejects an unknown ID (exit 3) */
    rc = rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "hostdev", "add", "vm1", "ffff:ff:1f.7", "--id",
             "hd0", NULL);
    assert_int_equal(rc, 1);
    if (!strstr(err, "PCI device ffff:ff:1f.7 not found on this host"))
        fail_msg("hostdev add: %s", err);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    rc = rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "hostdev", "del", "vm1", "nosuch", NULL);
    assert_int_equal(rc, 3);
    if (!strstr(out, "nosuch: rejected") || !strstr(out, "nosuch"))
        fail_msg("hostdev del: %s%s", out, err);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    rc = rig_hotplugd_ctl_text(f->hotplugd, &out, &err, "disk", "del", "vm1", "dhpd", "--timeout", "20",
             NULL);
    if (rc != 0)
        fail_msg("disk del through hotplugd: exit %d: %s%s", rc, out, err);
    assert_true(g_str_has_prefix(out, "dhpd: deleted"));
    assert_false(device_present(f, "dhpd"));
    nodes2 = node_names(f);
    objects2 = object_names(f);
    assert_string_equal(nodes2, nodes0);
    assert_string_equal(objects2, objects0);

    /* no claim was made: the daemon's registry file holds none */
    claims = g_build_filename(rig_hotplugd_state_dir(f->hotplugd), "hostdevs.json", NULL);
    if (g_file_test(claims, G_FILE_TEST_EXISTS)) {
        g_autofree char *text = NULL;
        assert_true(g_file_get_contents(claims, &text, NULL, NULL));
        if (strstr(text, "ffff:ff:1f.7"))
            fail_msg("%s: %s", claims, text);
    }

    rig_hotplugd_stop(f->hotplugd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_raw_iothread, test_teardown),
        cmocka_unit_test_teardown(test_qcow2_iothread, test_teardown),
        cmocka_unit_test_teardown(test_qcow2_readonly, test_teardown),
        cmocka_unit_test_teardown(test_rollback_device_add, test_teardown),
        cmocka_unit_test_teardown(test_rollback_blockdev, test_teardown),
        cmocka_unit_test_teardown(test_iothreads4, test_teardown),
        cmocka_unit_test_teardown(test_cli, test_teardown),
        cmocka_unit_test_teardown(test_cli_hotplugd, test_teardown),
        cmocka_unit_test_teardown(test_not_deleted_then_late, test_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
