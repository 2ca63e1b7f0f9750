/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Disk hotplug against a scripted fake QEMU: the exact commands of a
 * composite plug, its rollback order, the version gate for
 * iothread-vq-mapping, the cleanup after an unplug (also when it comes
 * late), and disk list. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <event2/event.h>

#include "fake-peer.h"
#include "hotplug-disk.h"
#include "hotplug-vm.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define WAIT_MS 5000

#define GREETING_9_2                                                                               \
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 9}, "              \
    "\"package\": \"v9.2.0\"}, \"capabilities\": [\"oob\"]}}"

typedef struct {
    HotplugOpEvent ev;
    HotplugOutcome outcome;
    guint64 op;
} Seen;

typedef struct {
    struct event_base *base;
    FakePeer *peer;
    QmpConn *conn;
    HotplugVm *vm;
    GArray *seen; /* Seen */
    /* disk list */
    gboolean list_done;
    JsonNode *list;
    GError *list_error;
} Fixture;

static void
op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Fixture *f = opaque;
    Seen s = {ev, hotplug_op_get_outcome(op), hotplug_op_get_id(op)};

    g_array_append_val(f->seen, s);
}

static Fixture *
fixture_new(const char *greeting)
{
    static const HotplugVmListener l = {.op = op_cb};
    g_autoptr(GError) error = NULL;
    Fixture *f = g_new0(Fixture, 1);
    HotplugVmOptions opts = {.gone_on_close = TRUE};
    int fd;

    f->base = event_base_new();
    f->peer = fake_peer_new(f->base, &fd);
    fake_peer_greet_custom(f->peer, greeting);
    f->conn = qmp_conn_new_fd(f->base, fd, NULL);
    if (!qmp_conn_wait_ready(f->conn, WAIT_MS, &error))
        fail_msg("QMP not ready: %s", error->message);
    f->vm = hotplug_vm_new("vm1", f->conn, &opts);
    f->seen = g_array_new(FALSE, FALSE, sizeof(Seen));
    hotplug_vm_add_listener(f->vm, &l, f);
    return f;
}

static int
setup_92(void **state)
{
    *state = fixture_new(GREETING_9_2);
    return 0;
}

static int
setup_72(void **state)
{
    *state = fixture_new(FAKE_PEER_GREETING_7_2);
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    hotplug_vm_free(f->vm);
    qmp_conn_close(f->conn);
    qmp_conn_unref(f->conn);
    fake_peer_free(f->peer);
    event_base_free(f->base);
    g_array_unref(f->seen);
    if (f->list)
        json_node_unref(f->list);
    g_clear_error(&f->list_error);
    g_free(f);
    return 0;
}

static void
wait_final(Fixture *f, HotplugOp *op)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

    while (!hotplug_op_is_final(op) && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    assert_true(hotplug_op_is_final(op));
}

/* Run the loop until every scripted step went through (or WAIT_MS). */
static void
wait_steps(Fixture *f)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

    while (!fake_peer_all_done(f->peer) && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
}

static void
assert_peer_done(Fixture *f)
{
    g_autofree char *why = NULL;

    /* let anything still on the wire arrive */
    for (int i = 0; i < 20; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK), g_usleep(500);
    if (!fake_peer_all_done(f->peer)) {
        why = fake_peer_describe_failures(f->peer);
        fail_msg("fake peer: %s", why);
    }
}

/* The commands received after qmp_capabilities, as "cmd args-json". */
static GPtrArray *
received(Fixture *f)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < fake_peer_n_received(f->peer); i++) {
        g_autoptr(JsonParser) parser = json_parser_new();
        JsonObject *o;
        JsonNode *args;
        g_autofree char *text = NULL;

        if (g_str_equal(fake_peer_received_command(f->peer, i), "qmp_capabilities"))
            continue;
        assert_true(json_parser_load_from_data(parser, fake_peer_received(f->peer, i), -1, NULL));
        o = json_node_get_object(json_parser_get_root(parser));
        args = json_object_get_member(o, "arguments");
        text = args ? json_to_string(args, FALSE) : g_strdup("-");
        g_ptr_array_add(out,
                        g_strdup_printf("%s %s", fake_peer_received_command(f->peer, i), text));
    }
    return out;
}

static void
assert_received(Fixture *f, const char *const *want)
{
    g_autoptr(GPtrArray) got = received(f);
    guint n = g_strv_length((char **)want);

    for (guint i = 0; i < MAX(n, got->len); i++) {
        const char *w = i < n ? want[i] : "(nothing)";
        const char *g = i < got->len ? (const char *)got->pdata[i] : "(nothing)";
        if (!g_str_equal(w, g))
            fail_msg("command %u:\n  want %s\n  got  %s", i, w, g);
    }
}

static guint
count_seen(Fixture *f, HotplugOpEvent ev)
{
    guint n = 0;

    for (guint i = 0; i < f->seen->len; i++)
        n += g_array_index(f->seen, Seen, i).ev == ev;
    return n;
}

/* ---- pure: options and naming -------------------------------------------- */

static void
test_names(void **state)
{
    g_autofree char *a = hotplug_disk_file_node("disk1");
    g_autofree char *b = hotplug_disk_format_node("disk1");
    g_autofree char *c = hotplug_disk_iothread_id("disk1", 3);

    assert_string_equal(a, "disk1-file");
    assert_string_equal(b, "disk1-fmt");
    assert_string_equal(c, "disk1-iothread3");
}

static void
expect_invalid(const char *id, const HotplugDiskOptions *o, const char *needle)
{
    g_autoptr(GError) error = NULL;
    QmpGreeting g = {.major = 9, .minor = 2};
    GPtrArray *steps = hotplug_disk_build_steps(id, o, &g, &error);

    assert_null(steps);
    assert_non_null(error);
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID));
    if (!strstr(error->message, needle))
        fail_msg("'%s' does not say '%s'", error->message, needle);
}

static void
test_bad_options(void **state)
{
    HotplugDiskOptions ok = {.file = "/x.img"};
    HotplugDiskOptions o;

    expect_invalid(NULL, &ok, "no disk ID");
    expect_invalid("", &ok, "no disk ID");
    expect_invalid("1disk", &ok, "must start with a letter");
    expect_invalid("disk/1", &ok, "may hold only");
    expect_invalid("abcdefghijklmnopqrstuvwxyz0", &ok, "too long");
    o = ok;
    o.file = NULL;
    expect_invalid("d", &o, "no image file");
    o = ok;
    o.format = "vmdk";
    expect_invalid("d", &o, "unknown image format 'vmdk'");
    o = ok;
    o.iothreads = 4;
    o.queues = 2;
    expect_invalid("d", &o, "--queues 2 is fewer than --iothreads 4");
    o = ok;
    o.iothreads = HOTPLUG_DISK_IOTHREADS_MAX + 1;
    expect_invalid("d", &o, "--iothreads 65");
    o = ok;
    o.queues = HOTPLUG_DISK_QUEUES_MAX + 1;
    expect_invalid("d", &o, "--queues 1025");
}

static void
test_longest_id(void **state)
{
    g_autoptr(GError) error = NULL;
    HotplugDiskOptions o = {.file = "/x.img"};
    /* 26 characters: ID-file is 31, QEMU's limit */
    g_autoptr(GPtrArray) steps =
        hotplug_disk_build_steps("abcdefghijklmnopqrstuvwxyz", &o, NULL, &error);

    assert_non_null(steps);
    assert_int_equal(steps->len, 3);
}

/* ---- plug ------------------------------------------------------------------- */

/* The exact device_add of --iothreads 4 --queues 8 on QEMU 9.2. */
static void
test_add_vq_mapping(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    HotplugDiskOptions o = {
        .file = "/img/disk1.qcow2", .format = "qcow2", .iothreads = 4, .queues = 8};
    static const char *const want[] = {
        "blockdev-add {\"driver\":\"file\",\"node-name\":\"disk1-file\","
        "\"filename\":\"/img/disk1.qcow2\"}",
        "blockdev-add {\"driver\":\"qcow2\",\"node-name\":\"disk1-fmt\",\"file\":\"disk1-file\"}",
        "object-add {\"qom-type\":\"iothread\",\"id\":\"disk1-iothread0\"}",
        "object-add {\"qom-type\":\"iothread\",\"id\":\"disk1-iothread1\"}",
        "object-add {\"qom-type\":\"iothread\",\"id\":\"disk1-iothread2\"}",
        "object-add {\"qom-type\":\"iothread\",\"id\":\"disk1-iothread3\"}",
        "device_add {\"driver\":\"virtio-blk-pci\",\"id\":\"disk1\",\"drive\":\"disk1-fmt\","
        "\"num-queues\":8,\"iothread-vq-mapping\":["
        "{\"iothread\":\"disk1-iothread0\",\"vqs\":[0,4]},"
        "{\"iothread\":\"disk1-iothread1\",\"vqs\":[1,5]},"
        "{\"iothread\":\"disk1-iothread2\",\"vqs\":[2,6]},"
        "{\"iothread\":\"disk1-iothread3\",\"vqs\":[3,7]}]}",
        NULL,
    };

    for (guint i = 0; want[i]; i++)
        fake_peer_expect(f->peer,
                         i < 2   ? "blockdev-add"
                         : i < 6 ? "object-add"
                                 : "device_add",
                         NULL);
    op = hotplug_disk_add(f->vm, "disk1", &o, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
    assert_int_equal(hotplug_op_get_kind(op), HOTPLUG_KIND_DISK);
    assert_received(f, want);
    assert_peer_done(f);
}

/* --iothreads 1 uses the iothread property; --readonly on both nodes. */
static void
test_add_one_iothread(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    HotplugDiskOptions o = {.file = "/img/r.raw", .readonly = TRUE, .iothreads = 1, .queues = 2};
    static const char *const want[] = {
        "blockdev-add {\"driver\":\"file\",\"node-name\":\"d0-file\",\"filename\":\"/img/r.raw\","
        "\"read-only\":true}",
        "blockdev-add {\"driver\":\"raw\",\"node-name\":\"d0-fmt\",\"file\":\"d0-file\","
        "\"read-only\":true}",
        "object-add {\"qom-type\":\"iothread\",\"id\":\"d0-iothread0\"}",
        "device_add {\"driver\":\"virtio-blk-pci\",\"id\":\"d0\",\"drive\":\"d0-fmt\","
        "\"num-queues\":2,\"iothread\":\"d0-iothread0\"}",
        NULL,
    };

    fake_peer_expect(f->peer, "blockdev-add", NULL);
    fake_peer_expect(f->peer, "blockdev-add", NULL);
    fake_peer_expect(f->peer, "object-add", NULL);
    fake_peer_expect(f->peer, "device_add", NULL);
    op = hotplug_disk_add(f->vm, "d0", &o, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
    assert_received(f, want);
    assert_peer_done(f);
}

/* --iothreads N without --queues: N virtqueues, one per IOThread (QEMU's
 * default of one queue would leave N-1 IOThreads idle). */
static void
test_add_mapping_no_queues(void **state)
{
    g_autoptr(GError) error = NULL;
    QmpGreeting g = {.major = 10, .minor = 0};
    HotplugDiskOptions o = {.file = "/x", .iothreads = 2};
    g_autoptr(GPtrArray) steps = hotplug_disk_build_steps("d", &o, &g, &error);
    HotplugStep *s;
    g_autofree char *text = NULL;

    assert_non_null(steps);
    assert_int_equal(steps->len, 5);
    s = steps->pdata[4];
    assert_string_equal(s->cmd, "device_add");
    assert_null(s->undo_cmd);
    text = json_to_string(s->args, FALSE);
    assert_string_equal(text, "{\"driver\":\"virtio-blk-pci\",\"id\":\"d\",\"drive\":\"d-fmt\","
                              "\"num-queues\":2,"
                              "\"iothread-vq-mapping\":[{\"iothread\":\"d-iothread0\",\"vqs\":[0]},"
                              "{\"iothread\":\"d-iothread1\",\"vqs\":[1]}]}");
}

/* device_add fails: everything done is undone, newest first. */
static void
test_rollback_device_add(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    HotplugDiskOptions o = {.file = "/img/a.raw", .iothreads = 2};
    static const char *const want[] = {
        "blockdev-add {\"driver\":\"file\",\"node-name\":\"a-file\",\"filename\":\"/img/a.raw\"}",
        "blockdev-add {\"driver\":\"raw\",\"node-name\":\"a-fmt\",\"file\":\"a-file\"}",
        "object-add {\"qom-type\":\"iothread\",\"id\":\"a-iothread0\"}",
        "object-add {\"qom-type\":\"iothread\",\"id\":\"a-iothread1\"}",
        "device_add {\"driver\":\"virtio-blk-pci\",\"id\":\"a\",\"drive\":\"a-fmt\","
        "\"num-queues\":2,\"iothread-vq-mapping\":[{\"iothread\":\"a-iothread0\",\"vqs\":[0]},"
        "{\"iothread\":\"a-iothread1\",\"vqs\":[1]}]}",
        "object-del {\"id\":\"a-iothread1\"}",
        "object-del {\"id\":\"a-iothread0\"}",
        "blockdev-del {\"node-name\":\"a-fmt\"}",
        "blockdev-del {\"node-name\":\"a-file\"}",
        NULL,
    };
    const GError *err;

    fake_peer_expect(f->peer, "blockdev-add", NULL);
    fake_peer_expect(f->peer, "blockdev-add", NULL);
    fake_peer_expect(f->peer, "object-add", NULL);
    fake_peer_expect(f->peer, "object-add", NULL);
    fake_peer_step_error(fake_peer_expect(f->peer, "device_add", NULL), "GenericError",
                         "Duplicate device ID 'a' for device");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"a-iothread1\"}");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"a-iothread0\"}");
    fake_peer_expect(f->peer, "blockdev-del", "{\"node-name\": \"a-fmt\"}");
    fake_peer_expect(f->peer, "blockdev-del", "{\"node-name\": \"a-file\"}");
    op = hotplug_disk_add(f->vm, "a", &o, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    err = hotplug_op_get_error(op);
    assert_non_null(err);
    assert_string_equal(err->message, "Duplicate device ID 'a' for device");
    assert_string_equal(qmp_error_class_name(err), "GenericError");
    assert_string_equal(hotplug_op_get_detail(op), "step 5 of 5 (device_add) failed");
    assert_received(f, want);
    assert_peer_done(f);
}

/* A step in the middle fails: only what was done before it is undone. */
static void
test_rollback_middle(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    HotplugDiskOptions o = {.file = "/img/b.raw", .format = "qcow2", .iothreads = 1};
    static const char *const want[] = {
        "blockdev-add {\"driver\":\"file\",\"node-name\":\"b-file\",\"filename\":\"/img/b.raw\"}",
        "blockdev-add {\"driver\":\"qcow2\",\"node-name\":\"b-fmt\",\"file\":\"b-file\"}",
        "blockdev-del {\"node-name\":\"b-file\"}",
        NULL,
    };

    fake_peer_expect(f->peer, "blockdev-add", NULL);
    fake_peer_step_error(fake_peer_expect(f->peer, "blockdev-add", NULL), "GenericError",
                         "Image is not in qcow2 format");
    fake_peer_expect(f->peer, "blockdev-del", NULL);
    op = hotplug_disk_add(f->vm, "b", &o, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_string_equal(hotplug_op_get_error(op)->message, "Image is not in qcow2 format");
    assert_string_equal(hotplug_op_get_detail(op), "step 2 of 4 (blockdev-add) failed");
    assert_received(f, want);
    assert_peer_done(f);
}

/* QEMU 7.2: --iothreads N > 1 is refused before anything is sent. */
static void
test_vq_mapping_refused_72(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    HotplugDiskOptions o = {.file = "/img/c.raw", .iothreads = 4, .queues = 8};
    static const char *const none[] = {NULL};
    HotplugOp *op = hotplug_disk_add(f->vm, "c", &o, &error);

    assert_null(op);
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED));
    assert_string_equal(error->message,
                        "--iothreads 4 needs the virtio-blk iothread-vq-mapping property, which "
                        "QMP device_add takes from QEMU 9.2 on; this VM runs QEMU 7.2.22 (use "
                        "--iothreads 1 or 0)");
    assert_int_equal(f->seen->len, 0);
    assert_received(f, none);
    assert_peer_done(f);
}

/* ---- unplug ------------------------------------------------------------- */

#define NODES_REPLY                                                                                \
    "[{\"node-name\": \"e-fmt\", \"drv\": \"raw\"}, {\"node-name\": \"e-file\", \"drv\": "         \
    "\"file\"}, {\"node-name\": \"other-fmt\", \"drv\": \"raw\"}, {\"node-name\": "                \
    "\"#block123\", \"drv\": \"file\"}]"
#define OBJECTS_REPLY                                                                              \
    "[{\"name\": \"e-iothread10\", \"type\": \"child<iothread>\"}, {\"name\": "                    \
    "\"e-iothread2\", \"type\": \"child<iothread>\"}, {\"name\": \"e-iothreadx\", \"type\": "      \
    "\"child<iothread>\"}, {\"name\": \"other-iothread0\", \"type\": \"child<iothread>\"}, "       \
    "{\"name\": \"e-iothread3\", \"type\": \"child<memory-backend-ram>\"}]"

static void
script_del_queries(Fixture *f)
{
    fake_peer_step_return(fake_peer_expect(f->peer, "query-named-block-nodes", "{\"flat\": true}"),
                          NODES_REPLY);
    fake_peer_step_return(fake_peer_expect(f->peer, "qom-list", "{\"path\": \"/objects\"}"),
                          OBJECTS_REPLY);
}

static const char *const del_cleanup[] = {
    "blockdev-del {\"node-name\":\"e-fmt\"}",
    "blockdev-del {\"node-name\":\"e-file\"}",
    "object-del {\"id\":\"e-iothread2\"}",
    "object-del {\"id\":\"e-iothread10\"}",
};

static void
script_cleanup(Fixture *f)
{
    fake_peer_expect(f->peer, "blockdev-del", "{\"node-name\": \"e-fmt\"}");
    fake_peer_expect(f->peer, "blockdev-del", "{\"node-name\": \"e-file\"}");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"e-iothread2\"}");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"e-iothread10\"}");
}

static void
test_del_deleted(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    HotplugUnplugOptions uo = {.timeout_ms = 2000};
    g_autoptr(GPtrArray) want = g_ptr_array_new();
    FakeStep *s;

    script_del_queries(f);
    s = fake_peer_expect(f->peer, "device_del", "{\"id\": \"e\"}");
    fake_peer_step_event_after(s, "DEVICE_DELETED",
                               "{\"device\": \"e\", \"path\": \"/machine/peripheral/e\"}");
    script_cleanup(f);
    op = hotplug_disk_del(f->vm, "e", &uo, NULL, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_kind(op), HOTPLUG_KIND_DISK);
    assert_null(hotplug_op_get_detail(op));
    g_ptr_array_add(want, "query-named-block-nodes {\"flat\":true}");
    g_ptr_array_add(want, "qom-list {\"path\":\"/objects\"}");
    g_ptr_array_add(want, "device_del {\"id\":\"e\"}");
    for (guint i = 0; i < G_N_ELEMENTS(del_cleanup); i++)
        g_ptr_array_add(want, (gpointer)del_cleanup[i]);
    g_ptr_array_add(want, NULL);
    assert_received(f, (const char *const *)want->pdata);
    assert_peer_done(f);
    assert_int_equal(count_seen(f, HOTPLUG_OP_EV_OUTCOME), 1);
}

/* not-deleted keeps the backends; a late DEVICE_DELETED removes them,
 * then deleted-late is reported (once, as LATE). */
static void
test_del_not_deleted_then_late(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    HotplugUnplugOptions uo = {.timeout_ms = 50};
    static const char *const want_first[] = {
        "query-named-block-nodes {\"flat\":true}",
        "qom-list {\"path\":\"/objects\"}",
        "device_del {\"id\":\"e\"}",
        "qom-list {\"path\":\"/machine/peripheral\"}",
        NULL,
    };
    const char *want_all[G_N_ELEMENTS(want_first) + G_N_ELEMENTS(del_cleanup)] = {0};
    gint64 end;

    script_del_queries(f);
    fake_peer_expect(f->peer, "device_del", "{\"id\": \"e\"}");
    fake_peer_step_return(
        fake_peer_expect(f->peer, "qom-list", "{\"path\": \"/machine/peripheral\"}"),
        "[{\"name\": \"type\", \"type\": \"string\"}, "
        "{\"name\": \"e\", \"type\": \"child<virtio-blk-pci>\"}]");
    op = hotplug_disk_del(f->vm, "e", &uo, NULL, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    assert_peer_done(f);
    /* nothing was removed */
    assert_received(f, want_first);

    script_cleanup(f);
    fake_peer_event(f->peer, "DEVICE_DELETED",
                    "{\"device\": \"e\", \"path\": \"/machine/peripheral/e\"}");
    end = g_get_monotonic_time() + WAIT_MS * 1000;
    while (hotplug_op_get_state(op) != HOTPLUG_OP_DONE && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
    /* the detail of the not-deleted attempt; no cleanup failure added */
    assert_string_equal(hotplug_op_get_detail(op), "still present after 50 ms");
    for (guint i = 0; want_first[i]; i++)
        want_all[i] = want_first[i];
    for (guint i = 0; i < G_N_ELEMENTS(del_cleanup); i++)
        want_all[G_N_ELEMENTS(want_first) - 1 + i] = del_cleanup[i];
    assert_received(f, want_all);
    assert_peer_done(f);
    /* one outcome (not-deleted), one late report (deleted-late) */
    assert_int_equal(count_seen(f, HOTPLUG_OP_EV_OUTCOME), 1);
    assert_int_equal(count_seen(f, HOTPLUG_OP_EV_LATE), 1);
    assert_int_equal(g_array_index(f->seen, Seen, f->seen->len - 1).ev, HOTPLUG_OP_EV_LATE);
    assert_int_equal(g_array_index(f->seen, Seen, f->seen->len - 1).outcome,
                     HOTPLUG_OUTCOME_DELETED_LATE);
    assert_null(hotplug_vm_find_op(f->vm, "e"));
}

/* QEMU refuses device_del: nothing is cleaned up. */
static void
test_del_rejected(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    static const char *const want[] = {
        "query-named-block-nodes {\"flat\":true}",
        "qom-list {\"path\":\"/objects\"}",
        "device_del {\"id\":\"nope\"}",
        NULL,
    };

    fake_peer_step_return(fake_peer_expect(f->peer, "query-named-block-nodes", NULL), "[]");
    fake_peer_step_return(fake_peer_expect(f->peer, "qom-list", NULL), "[]");
    fake_peer_step_error(fake_peer_expect(f->peer, "device_del", NULL), "DeviceNotFound",
                         "Device 'nope' not found");
    op = hotplug_disk_del(f->vm, "nope", NULL, NULL, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_string_equal(hotplug_op_get_error(op)->message, "Device 'nope' not found");
    assert_received(f, want);
    assert_peer_done(f);
}

/* ---- list ------------------------------------------------------------------- */

static void
list_cb(JsonNode *result, const GError *error, gpointer opaque)
{
    Fixture *f = opaque;

    f->list_done = TRUE;
    if (error)
        f->list_error = g_error_copy(error);
    else
        f->list = json_node_ref(result);
}

static void
test_list(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    gint64 end;

    fake_peer_step_return(
        fake_peer_expect(f->peer, "query-block", NULL),
        "[{\"device\": \"\", \"qdev\": \"/machine/peripheral/d1/virtio-backend\", \"inserted\": "
        "{\"node-name\": \"d1-fmt\", \"file\": \"/img/1.qcow2\", \"drv\": \"qcow2\", \"ro\": "
        "true}}, "
        "{\"device\": \"\", \"qdev\": \"/machine/peripheral/x/virtio-backend\", \"inserted\": "
        "{\"node-name\": \"foreign\", \"file\": \"/img/x\", \"drv\": \"raw\", \"ro\": false}}, "
        "{\"device\": \"ide0-cd0\", \"qdev\": \"/machine/unattached/device[23]\", \"removable\": "
        "true}]");
    fake_peer_step_return(
        fake_peer_expect(f->peer, "query-named-block-nodes", "{\"flat\": true}"),
        "[{\"node-name\": \"d1-fmt\", \"drv\": \"qcow2\", \"file\": \"/img/1.qcow2\", \"ro\": "
        "true}, {\"node-name\": \"d1-file\", \"drv\": \"file\", \"file\": \"/img/1.qcow2\", "
        "\"ro\": true}, {\"node-name\": \"gone-fmt\", \"drv\": \"raw\", \"file\": \"/img/g\"}, "
        "{\"node-name\": \"foreign\", \"drv\": \"raw\"}, {\"node-name\": \"#block1\"}]");
    fake_peer_step_return(
        fake_peer_expect(f->peer, "qom-list", "{\"path\": \"/objects\"}"),
        "[{\"name\": \"d1-iothread1\", \"type\": \"child<iothread>\"}, {\"name\": "
        "\"d1-iothread0\", \"type\": \"child<iothread>\"}, {\"name\": \"gone-iothread0\", "
        "\"type\": \"child<iothread>\"}, {\"name\": \"pc.ram\", \"type\": "
        "\"child<memory-backend-ram>\"}]");
    assert_true(hotplug_disk_list(f->vm, list_cb, f, &error));
    end = g_get_monotonic_time() + WAIT_MS * 1000;
    while (!f->list_done && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    assert_true(f->list_done);
    assert_null(f->list_error);
    text = json_to_string(f->list, FALSE);
    assert_string_equal(
        text, "{\"disks\":[{\"id\":\"d1\",\"file\":\"/img/1.qcow2\",\"format\":\"qcow2\","
              "\"readonly\":true,\"node\":\"d1-fmt\",\"file_node\":\"d1-file\",\"iothreads\":"
              "[\"d1-iothread0\",\"d1-iothread1\"],\"pending\":null}],\"leftover\":{\"nodes\":"
              "[\"gone-fmt\"],\"iothreads\":[\"gone-iothread0\"]}}");
    assert_peer_done(f);
}

/* The connection goes while a list is in flight: done gets the error. */
static void
test_list_conn_lost(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    gint64 end;

    fake_peer_step_hold(fake_peer_expect(f->peer, "query-block", NULL));
    fake_peer_step_hold(fake_peer_expect(f->peer, "query-named-block-nodes", NULL));
    fake_peer_step_hold(fake_peer_expect(f->peer, "qom-list", NULL));
    assert_true(hotplug_disk_list(f->vm, list_cb, f, &error));
    wait_steps(f);
    fake_peer_hangup(f->peer);
    end = g_get_monotonic_time() + WAIT_MS * 1000;
    while (!f->list_done && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    assert_true(f->list_done);
    assert_null(f->list);
    assert_non_null(f->list_error);
    if (!g_str_has_prefix(f->list_error->message, "query-block: "))
        fail_msg("%s", f->list_error->message);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_longest_id),
        cmocka_unit_test(test_add_mapping_no_queues),
        cmocka_unit_test_setup_teardown(test_add_vq_mapping, setup_92, teardown),
        cmocka_unit_test_setup_teardown(test_add_one_iothread, setup_92, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_device_add, setup_92, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_middle, setup_92, teardown),
        cmocka_unit_test_setup_teardown(test_vq_mapping_refused_72, setup_72, teardown),
        cmocka_unit_test_setup_teardown(test_del_deleted, setup_72, teardown),
        cmocka_unit_test_setup_teardown(test_del_not_deleted_then_late, setup_72, teardown),
        cmocka_unit_test_setup_teardown(test_del_rejected, setup_72, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup_72, teardown),
        cmocka_unit_test_setup_teardown(test_list_conn_lost, setup_72, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
