/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Disk hotplug against a real QEMU 7.2 with the test guest (pc machine;
 * the guest ejects the PCI device, so unplugs complete): raw and qcow2
 * images made with qemu-img, --iothreads 1, rollback of a failing
 * device_add and of a failing blockdev-add with nothing left behind
 * (query-named-block-nodes, qom-list /objects), --iothreads 4 refused on
 * 7.2, not-deleted then deleted-late with the backends removed only then,
 * and the hotplugctl verbs, in direct mode and through a hotplugd started
 * by the test.  One QEMU for the whole group; the group teardown kills it
 * whatever happened, and a test's teardown kills its hotplugd. */
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
#include "qemu-helper.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define READY_MS 20000
#define REPLY_MS 20000
#define GUEST_MS 120000
#define OP_MS 30000

typedef struct {
    struct event_base *base;
    char *dir; /* our own temp dir: images and the CLI's QMP socket */
    char *raw, *qcow2, *cli_sock;
    char *hpd_sock; /* QEMU's QMP socket for hotplugd */
    GPid hotplugd;  /* a hotplugd the test started, or 0 */
    TestQemu *qemu;
    QmpConn *conn;  /* the engine's */
    QmpConn *spare; /* the test's own checks */
    HotplugVm *vm;
} Fixture;

/* dir and everything in it (hotplugd's state dir has subdirectories) */
static void
rm_dir(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
            rm_dir(p);
        else
            g_unlink(p);
    }
    g_rmdir(dir);
}

static gboolean
run(const char *const *argv, char **out, char **err, int *status, GError **error)
{
    return g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err, status,
                        error);
}

static gboolean
make_image(const char *qemu_img, const char *format, const char *path, GError **error)
{
    const char *argv[] = {qemu_img, "create", "-q", "-f", format, path, "16M", NULL};
    g_autofree char *err = NULL;
    int status;

    if (!run(argv, NULL, &err, &status, error))
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
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
    g_autofree char *cli_arg = NULL;
    g_autofree char *hpd_arg = NULL;
    Fixture *f = g_new0(Fixture, 1);
    HotplugVmOptions vo = {.gone_on_close = TRUE};
    const char *extra[5];
    TestQemuOptions opts = {.machine = "pc", .with_guest = TRUE, .extra_args = extra};

    *state = f;
    f->base = event_base_new();
    if (!qemu_img) {
        print_error("qemu-img not found: install Debian's qemu-utils\n");
        return -1;
    }
    f->dir = g_dir_make_tmp("disk-qemu-XXXXXX", &error);
    if (!f->dir) {
        print_error("temp dir: %s\n", error->message);
        return -1;
    }
    f->raw = g_build_filename(f->dir, "disk.raw", NULL);
    f->qcow2 = g_build_filename(f->dir, "disk.qcow2", NULL);
    f->cli_sock = g_build_filename(f->dir, "cli.sock", NULL);
    f->hpd_sock = g_build_filename(f->dir, "hpd.sock", NULL);
    if (!make_image(qemu_img, "raw", f->raw, &error) ||
        !make_image(qemu_img, "qcow2", f->qcow2, &error)) {
        print_error("%s\n", error->message);
        return -1;
    }
    /* a third QMP socket for hotplugctl, a fourth for hotplugd: one client
     * per socket */
    cli_arg = g_strdup_printf("unix:%s,server=on,wait=off", f->cli_sock);
    hpd_arg = g_strdup_printf("unix:%s,server=on,wait=off", f->hpd_sock);
    extra[0] = "-qmp";
    extra[1] = cli_arg;
    extra[2] = "-qmp";
    extra[3] = hpd_arg;
    extra[4] = NULL;
    f->qemu = test_qemu_start(&opts, &error);
    if (!f->qemu) {
        print_error("cannot start QEMU: %s\n", error->message);
        return -1;
    }
    if (!test_qemu_wait_console(f->qemu, "HOTPLUG-GUEST-READY", GUEST_MS, &error)) {
        print_error("the guest did not come up: %s\n", error->message);
        return -1;
    }
    f->conn = qmp_conn_new(f->base, test_qemu_qmp_path(f->qemu), NULL);
    f->spare = qmp_conn_new(f->base, test_qemu_spare_qmp_path(f->qemu), NULL);
    if (!qmp_conn_open(f->conn, &error) || !qmp_conn_wait_ready(f->conn, READY_MS, &error) ||
        !qmp_conn_open(f->spare, &error) || !qmp_conn_wait_ready(f->spare, READY_MS, &error)) {
        print_error("QMP: %s\n", error->message);
        return -1;
    }
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
    if (f->spare) {
        qmp_conn_close(f->spare);
        qmp_conn_unref(f->spare);
    }
    g_clear_pointer(&f->qemu, test_qemu_free);
    if (f->dir)
        rm_dir(f->dir);
    g_free(f->dir);
    g_free(f->raw);
    g_free(f->qcow2);
    g_free(f->cli_sock);
    g_free(f->hpd_sock);
    event_base_free(f->base);
    g_free(f);
    return 0;
}

/* ---- checks through the spare socket --------------------------------------- */

static JsonNode *
spare(Fixture *f, const char *cmd, const char *args_json)
{
    g_autoptr(GError) error = NULL;
    JsonNode *args = args_json ? json_from_string(args_json, NULL) : NULL;
    JsonNode *ret = NULL;

    if (!qmp_conn_execute_sync(f->spare, cmd, args, &ret, REPLY_MS, &error))
        fail_msg("%s: %s", cmd, error->message);
    return ret;
}

static gint
str_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a b c": the sorted node names QEMU has (auto-named ones left out). */
static char *
node_names(Fixture *f)
{
    g_autoptr(JsonNode) ret = spare(f, "query-named-block-nodes", "{\"flat\": true}");
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
    g_autoptr(JsonNode) ret = spare(f, "qom-list", "{\"path\": \"/objects\"}");
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
    g_autoptr(JsonNode) ret = spare(f, "qom-list", "{\"path\": \"/machine/peripheral\"}");
    JsonArray *a = qmp_json_node_array(ret);

    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        const char *n =
            qmp_json_get_string(qmp_json_node_object(json_array_get_element(a, i)), "name");
        if (n && g_str_equal(n, id))
            return TRUE;
    }
    return FALSE;
}

static void
wait_final(Fixture *f, HotplugOp *op)
{
    gint64 end = g_get_monotonic_time() + OP_MS * 1000;

    while (!hotplug_op_is_final(op) && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(1000);
    if (!hotplug_op_is_final(op))
        fail_msg("op on %s still %s after %d ms", hotplug_op_get_device(op),
                 hotplug_op_state_name(hotplug_op_get_state(op)), OP_MS);
}

static void
wait_done(Fixture *f, HotplugOp *op)
{
    gint64 end = g_get_monotonic_time() + OP_MS * 1000;

    while (hotplug_op_get_state(op) != HOTPLUG_OP_DONE && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(1000);
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
    blocks = spare(f, "query-block", NULL);
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
        g_autoptr(JsonNode) ret = spare(f, "qom-get", args);
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
    g_autoptr(JsonNode) r = spare(f, "device_add",
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

/* QEMU 7.2 drops iothread-vq-mapping in device_add: refused up front. */
static void
test_iothreads4_refused(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL;
    g_autofree char *objects1 = NULL;
    g_autofree char *want = NULL;
    const QmpGreeting *g = qmp_conn_get_greeting(f->conn);
    HotplugDiskOptions o = {.file = f->raw, .iothreads = 4, .queues = 8};

    assert_int_equal(g->major, 7);
    assert_int_equal(g->minor, 2);
    assert_null(hotplug_disk_add(f->vm, "d4", &o, &error));
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED));
    want = g_strdup_printf("--iothreads 4 needs the virtio-blk iothread-vq-mapping property, "
                           "which QMP device_add takes from QEMU 9.2 on; this VM runs QEMU "
                           "7.2.%d (use --iothreads 1 or 0)",
                           g->micro);
    assert_string_equal(error->message, want);
    assert_null(hotplug_vm_find_op(f->vm, "d4"));
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_string_equal(nodes1, nodes0);
    assert_string_equal(objects1, objects0);
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
    r1 = spare(f, "stop", NULL);
    del = hotplug_disk_del(f->vm, "dlate", &uo, NULL, &error);
    assert_non_null(del);
    wait_final(f, del);
    assert_op(del, HOTPLUG_OUTCOME_NOT_DELETED);
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_true(has_word(nodes1, "dlate-fmt"));
    assert_true(has_word(nodes1, "dlate-file"));
    assert_true(has_word(objects1, "dlate-iothread0"));

    r2 = spare(f, "cont", NULL);
    wait_done(f, del);
    assert_op(del, HOTPLUG_OUTCOME_DELETED_LATE);
    assert_false(device_present(f, "dlate"));
    nodes2 = node_names(f);
    objects2 = object_names(f);
    assert_string_equal(nodes2, nodes0);
    assert_string_equal(objects2, objects0);
}

/* ---- hotplugctl ------------------------------------------------------------ */

static int
cli(Fixture *f, char **out, char **err, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    const char *arg;
    va_list ap;
    int status;

    g_ptr_array_add(argv, (gpointer)HOTPLUGCTL_PATH);
    va_start(ap, err);
    while ((arg = va_arg(ap, const char *)))
        g_ptr_array_add(argv, (gpointer)arg);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    if (!run((const char *const *)argv->pdata, out, err, &status, &error))
        fail_msg("running hotplugctl: %s", error->message);
    if (!WIFEXITED(status))
        fail_msg("hotplugctl died (status %d): %s", status, *err);
    return WEXITSTATUS(status);
}

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

    rc = cli(f, &out, &err, "disk", "add", f->cli_sock, f->qcow2, "--id", "dcli", "--format",
             "qcow2", "--iothreads", "1", NULL);
    if (rc != 0)
        fail_msg("disk add: exit %d: %s%s", rc, out, err);
    assert_true(g_str_has_prefix(out, "dcli: added"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    rc = cli(f, &out, &err, "--json", "disk", "list", f->cli_sock, NULL);
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

    /* refused on this QEMU, naming both versions: exit 1, nothing sent */
    rc = cli(f, &out, &err, "disk", "add", f->cli_sock, f->raw, "--id", "d4", "--iothreads", "4",
             NULL);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "QEMU 9.2"));
    assert_non_null(strstr(err, "this VM runs QEMU 7.2."));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* bad input: exit 2 */
    rc = cli(f, &out, &err, "disk", "add", f->cli_sock, f->raw, "--id", "d5", "--format", "vmdk",
             NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "unknown image format 'vmdk'"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    rc = cli(f, &out, &err, "disk", "add", f->cli_sock, f->raw, NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "missing --id ID"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* a QEMU error: exit 3 with its text */
    rc = cli(f, &out, &err, "disk", "add", f->cli_sock, "/nonexistent/x.img", "--id", "dnx", NULL);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "dnx: rejected"));
    assert_non_null(strstr(out, "step 1 of 3 (blockdev-add) failed"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    rc = cli(f, &out, &err, "disk", "del", f->cli_sock, "dcli", "--timeout", "20", NULL);
    if (rc != 0)
        fail_msg("disk del: exit %d: %s%s", rc, out, err);
    assert_true(g_str_has_prefix(out, "dcli: deleted"));
    nodes1 = node_names(f);
    objects1 = object_names(f);
    assert_string_equal(nodes1, nodes0);
    assert_string_equal(objects1, objects0);
}

/* ---- hotplugctl through hotplugd ---------------------------------------------- */

#define HOTPLUGD_READY_MS 15000
#define HOTPLUGD_STOP_MS 10000

/* build/hotplugd, beside build/hotplugctl */
static char *
hotplugd_path(void)
{
    g_autofree char *dir = g_path_get_dirname(HOTPLUGCTL_PATH);

    return g_build_filename(dir, "hotplugd", NULL);
}

/* The last lines hotplugd wrote, for failure messages. */
static char *
hotplugd_log(Fixture *f)
{
    g_autofree char *path = g_build_filename(f->dir, "hotplugd.log", NULL);
    g_autofree char *text = NULL;
    gsize len = 0;

    if (!g_file_get_contents(path, &text, &len, NULL))
        return g_strdup("(no log)");
    return g_strdup(len > 2000 ? text + len - 2000 : text);
}

static void
hotplugd_start(Fixture *f, const char *state_dir, const char *ctl)
{
    g_autofree char *prog = hotplugd_path();
    g_autofree char *log = g_build_filename(f->dir, "hotplugd.log", NULL);
    const char *argv[] = {prog,  "--foreground", "--state-dir", state_dir, "--socket",
                          ctl,   "-v",           NULL};
    g_autoptr(GError) error = NULL;
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0)
        fail_msg("%s: %s", log, g_strerror(errno));
    if (!g_spawn_async_with_fds(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                &f->hotplugd, -1, fd, fd, &error)) {
        close(fd);
        fail_msg("cannot start %s: %s", prog, error->message);
    }
    close(fd);
}

/* Stop it (SIGTERM, SIGKILL after HOTPLUGD_STOP_MS); its wait status. */
static int
hotplugd_stop(Fixture *f)
{
    gint64 end = g_get_monotonic_time() + HOTPLUGD_STOP_MS * 1000;
    int status = -1;
    pid_t pid = f->hotplugd;

    if (pid <= 0)
        return -1;
    f->hotplugd = 0;
    kill(pid, SIGTERM);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (g_get_monotonic_time() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        g_usleep(10000);
    }
    return status;
}

static int
test_teardown_hotplugd(void **state)
{
    Fixture *f = *state;

    hotplugd_stop(f);
    return 0;
}

/* hotplugctl --json --socket ctl vm list, until vm is connected */
static void
hotplugd_wait_vm_ready(Fixture *f, const char *ctl, const char *vm)
{
    gint64 end = g_get_monotonic_time() + HOTPLUGD_READY_MS * 1000;
    g_autofree char *last = NULL;

    while (g_get_monotonic_time() < end) {
        g_autofree char *out = NULL, *err = NULL;
        g_autoptr(JsonNode) list = NULL;
        JsonArray *a;
        int rc = cli(f, &out, &err, "--json", "--socket", ctl, "vm", "list", NULL);

        g_free(last);
        last = g_strdup_printf("exit %d: %s%s", rc, out, err);
        list = rc == 0 ? json_from_string(out, NULL) : NULL;
        a = list ? qmp_json_node_array(list) : NULL;
        for (guint i = 0; a && i < json_array_get_length(a); i++) {
            JsonObject *o = qmp_json_node_object(json_array_get_element(a, i));
            if (!g_strcmp0(qmp_json_get_string(o, "name"), vm) &&
                !g_strcmp0(qmp_json_get_string(o, "state"), "ready"))
                return;
        }
        g_usleep(50000);
    }
    {
        g_autofree char *log = hotplugd_log(f);
        fail_msg("VM %s not ready in hotplugd after %d ms; vm list: %s\nhotplugd: %s", vm,
                 HOTPLUGD_READY_MS, last, log);
    }
}

/* disk add / list / del by VM name, through a hotplugd started here */
static void
test_cli_hotplugd(void **state)
{
    Fixture *f = *state;
    g_autofree char *state_dir = g_build_filename(f->dir, "hotplugd", NULL);
    g_autofree char *ctl = g_build_filename(f->dir, "ctl.sock", NULL);
    g_autofree char *out = NULL, *err = NULL;
    g_autofree char *nodes0 = node_names(f);
    g_autofree char *objects0 = object_names(f);
    g_autofree char *nodes1 = NULL, *objects1 = NULL;
    g_autofree char *nodes2 = NULL, *objects2 = NULL;
    g_autofree char *claims = NULL;
    g_autoptr(JsonNode) list = NULL;
    gint64 end = g_get_monotonic_time() + HOTPLUGD_READY_MS * 1000;
    JsonObject *root, *d;
    JsonArray *disks;
    int rc, status;

    hotplugd_start(f, state_dir, ctl);
    /* up once its control socket answers */
    do {
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        rc = cli(f, &out, &err, "--socket", ctl, "vm", "list", NULL);
        if (rc != 0)
            g_usleep(50000);
    } while (rc != 0 && g_get_monotonic_time() < end);
    if (rc != 0) {
        g_autofree char *log = hotplugd_log(f);
        fail_msg("hotplugd did not answer in %d ms: %s\nhotplugd: %s", HOTPLUGD_READY_MS, err,
                 log);
    }
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    rc = cli(f, &out, &err, "--socket", ctl, "vm", "add", "vm1", f->hpd_sock, NULL);
    if (rc != 0)
        fail_msg("vm add: exit %d: %s%s", rc, out, err);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    hotplugd_wait_vm_ready(f, ctl, "vm1");

    rc = cli(f, &out, &err, "--socket", ctl, "disk", "add", "vm1", f->qcow2, "--id", "dhpd",
             "--format", "qcow2", "--iothreads", "1", NULL);
    if (rc != 0) {
        g_autofree char *log = hotplugd_log(f);
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

    rc = cli(f, &out, &err, "--json", "--socket", ctl, "disk", "list", "vm1", NULL);
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

    /* errors keep their class through the daemon: Unsupported is exit 1 */
    rc = cli(f, &out, &err, "--socket", ctl, "disk", "add", "vm1", f->raw, "--id", "d4",
             "--iothreads", "4", NULL);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "QEMU 9.2"));
    assert_non_null(strstr(err, "this VM runs QEMU 7.2."));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    /* the hostdev verbs run in hotplugd too: its host check (/sys) refuses
     * a device no host has (exit 1), QEMU rejects an unknown ID (exit 3) */
    rc = cli(f, &out, &err, "--socket", ctl, "hostdev", "add", "vm1", "ffff:ff:1f.7", "--id",
             "hd0", NULL);
    assert_int_equal(rc, 1);
    if (!strstr(err, "PCI device ffff:ff:1f.7 not found on this host"))
        fail_msg("hostdev add: %s", err);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    rc = cli(f, &out, &err, "--socket", ctl, "hostdev", "del", "vm1", "nosuch", NULL);
    assert_int_equal(rc, 3);
    if (!strstr(out, "nosuch: rejected") || !strstr(out, "nosuch"))
        fail_msg("hostdev del: %s%s", out, err);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);

    rc = cli(f, &out, &err, "--socket", ctl, "disk", "del", "vm1", "dhpd", "--timeout", "20",
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
    claims = g_build_filename(state_dir, "hostdevs.json", NULL);
    if (g_file_test(claims, G_FILE_TEST_EXISTS)) {
        g_autofree char *text = NULL;
        assert_true(g_file_get_contents(claims, &text, NULL, NULL));
        if (strstr(text, "ffff:ff:1f.7"))
            fail_msg("%s: %s", claims, text);
    }

    status = hotplugd_stop(f);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_autofree char *log = hotplugd_log(f);
        fail_msg("hotplugd did not stop cleanly (status %d)\nhotplugd: %s", status, log);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_iothread),
        cmocka_unit_test(test_qcow2_iothread),
        cmocka_unit_test(test_qcow2_readonly),
        cmocka_unit_test(test_rollback_device_add),
        cmocka_unit_test(test_rollback_blockdev),
        cmocka_unit_test(test_iothreads4_refused),
        cmocka_unit_test(test_cli),
        cmocka_unit_test_teardown(test_cli_hotplugd, test_teardown_hotplugd),
        cmocka_unit_test(test_not_deleted_then_late),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
