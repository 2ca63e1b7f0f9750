/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's disk and hostdev commands against scripted fake QEMUs on
 * UNIX sockets (the service opens VMs by path): hostdev-add waits for the
 * sync with QEMU first (direct mode syncs only then), hotplugd-mode syncs
 * on connect into the state file, a claim of one VM refuses the device to
 * another until that VM is removed, a waiting hostdev-add ends VmGone when
 * its VM goes, an unreadable state file is an error and read again later,
 * disk-add argument checks that send nothing, disk-add's QMP and
 * disk-list's "vm". */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib/gstdio.h>

#include "fake-peer.h"
#include "service.h"
#include "qmp-json.h"

#define WAIT_MS 5000
#define ADDR "0000:01:00.0"

typedef struct {
    char *path; /* the QMP socket the service connects to */
    int listen_fd;
    FakePeer *peer; /* once the service connected */
} TestQmp;

typedef struct {
    struct event_base *base;
    char *dir;
    char *sysfs;
    char *state_file;
    Service *svc;
    TestQmp q1, q2;
} Fixture;

typedef struct {
    gboolean done;
    JsonNode *ret;
    GError *error;
} Reply;

/* ---- helpers ------------------------------------------------------------------ */

static void
must(gboolean ok, const char *what)
{
    if (!ok)
        fail_msg("%s: %s", what, g_strerror(errno));
}

static void
rm_rf(const char *path)
{
    g_autoptr(GDir) d = NULL;
    const char *name;

    if (g_file_test(path, G_FILE_TEST_IS_SYMLINK) || !g_file_test(path, G_FILE_TEST_IS_DIR)) {
        g_unlink(path);
        return;
    }
    d = g_dir_open(path, 0, NULL);
    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(path, name, NULL);
        rm_rf(p);
    }
    g_rmdir(path);
}

/* ROOT/bus/pci/devices/ADDR bound to vfio-pci, alone in IOMMU group 7 */
static void
make_vfio_dev(const char *root, const char *addr)
{
    g_autofree char *dev = g_build_filename(root, "bus", "pci", "devices", addr, NULL);
    g_autofree char *link = g_build_filename(dev, "driver", NULL);
    g_autofree char *gdir = g_build_filename(root, "kernel", "iommu_groups", "7", NULL);
    g_autofree char *members = g_build_filename(gdir, "devices", NULL);
    g_autofree char *glink = g_build_filename(dev, "iommu_group", NULL);
    g_autofree char *mlink = g_build_filename(members, addr, NULL);

    must(g_mkdir_with_parents(dev, 0755) == 0, dev);
    must(symlink("../../../bus/pci/drivers/vfio-pci", link) == 0, link);
    must(g_mkdir_with_parents(members, 0755) == 0, members);
    must(symlink(gdir, glink) == 0, glink);
    must(symlink(dev, mlink) == 0, mlink);
}

static void
spin_until(Fixture *f, const gboolean *flag, guint ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;

    while (!(flag && *flag) && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
}

static void
test_qmp_listen(Fixture *f, TestQmp *q, const char *name)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    q->path = g_build_filename(f->dir, name, NULL);
    g_strlcpy(sun.sun_path, q->path, sizeof(sun.sun_path));
    q->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    must(q->listen_fd >= 0, "socket");
    must(bind(q->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, q->path);
    must(listen(q->listen_fd, 4) == 0, "listen");
}

/* Accept the service's connection on q; the peer greets once scripted. */
static void
test_qmp_accept(Fixture *f, TestQmp *q)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
    int fd = -1;

    while (fd < 0 && g_get_monotonic_time() < end) {
        fd = accept4(q->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    }
    must(fd >= 0, "accept");
    q->peer = fake_peer_new_from_fd(f->base, fd);
}

static void
test_qmp_close(TestQmp *q)
{
    if (q->peer)
        fake_peer_free(q->peer);
    q->peer = NULL;
    if (q->listen_fd > 0)
        close(q->listen_fd);
    q->listen_fd = -1;
    g_free(q->path);
    q->path = NULL;
}

/* Register VM name on q and accept its connection (script the peer now). */
static void
vm_add(Fixture *f, TestQmp *q, const char *name)
{
    g_autoptr(GError) error = NULL;

    if (!service_add_vm(f->svc, name, q->path, &error))
        fail_msg("add_vm %s: %s", name, error->message);
    test_qmp_accept(f, q);
}

/* Greet and wait until the service's connection to VM name is ready. */
static void
vm_greet(Fixture *f, TestQmp *q, const char *name)
{
    g_autoptr(GError) error = NULL;

    fake_peer_greet(q->peer);
    if (!qmp_conn_wait_ready(hotplug_vm_get_conn(service_get_vm(f->svc, name)), WAIT_MS,
                             &error))
        fail_msg("%s not ready: %s", name, error->message);
}

static void
vm_connect(Fixture *f, TestQmp *q, const char *name)
{
    vm_add(f, q, name);
    vm_greet(f, q, name);
}

static void
assert_peer_done(Fixture *f, TestQmp *q)
{
    for (int i = 0; i < 40; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK), g_usleep(500);
    if (!fake_peer_all_done(q->peer)) {
        g_autofree char *why = fake_peer_describe_failures(q->peer);
        fail_msg("fake peer: %s", why);
    }
}

/* Commands the peer received, "qmp_capabilities" left out, space-separated. */
static char *
commands(TestQmp *q)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < fake_peer_n_received(q->peer); i++) {
        const char *c = fake_peer_received_command(q->peer, i);
        if (!g_str_equal(c, "qmp_capabilities"))
            g_string_append_printf(s, "%s%s", s->len ? " " : "", c);
    }
    return g_string_free(s, FALSE);
}

static void
reply_cb(ServiceRequest *req, JsonNode *ret, const GError *error, gpointer opaque)
{
    Reply *r = opaque;

    assert_false(r->done);
    r->done = TRUE;
    if (error)
        r->error = g_error_copy(error);
    else
        r->ret = json_node_ref(ret);
}

static void
reply_clear(Reply *r)
{
    if (r->ret)
        json_node_unref(r->ret);
    g_clear_error(&r->error);
    memset(r, 0, sizeof(*r));
}

/* Run cmd with args (JSON text) and wait for the reply. */
static void
run_cmd(Fixture *f, Reply *r, const char *cmd, const char *args_json)
{
    static const ServiceRequestCallbacks cb = {.reply = reply_cb};
    g_autoptr(JsonNode) args = json_from_string(args_json, NULL);

    assert_non_null(args);
    reply_clear(r);
    service_execute(f->svc, cmd, json_node_get_object(args), &cb, r);
    spin_until(f, &r->done, WAIT_MS);
    if (!r->done)
        fail_msg("%s: no reply in %d ms", cmd, WAIT_MS);
}

static void
assert_fails(Reply *r, const char *cls, const char *message)
{
    if (!r->error) {
        g_autofree char *text = r->ret ? json_to_string(r->ret, FALSE) : g_strdup("?");
        fail_msg("expected %s '%s', got %s", cls, message, text);
    }
    assert_string_equal(service_error_class(r->error), cls);
    assert_string_equal(r->error->message, message);
}

static void
assert_outcome(Reply *r, const char *device, const char *outcome)
{
    JsonObject *o;

    if (r->error)
        fail_msg("expected %s %s, got error %s", device, outcome, r->error->message);
    o = qmp_json_node_object(r->ret);
    assert_non_null(o);
    assert_string_equal(qmp_json_get_string(o, "device"), device);
    assert_string_equal(qmp_json_get_string(o, "outcome"), outcome);
}

static char *
read_state(Fixture *f)
{
    g_autofree char *text = NULL;

    if (!g_file_get_contents(f->state_file, &text, NULL, NULL))
        return g_strdup("(none)");
    /* compact, for exact comparisons */
    {
        g_autoptr(JsonNode) n = json_from_string(text, NULL);
        assert_non_null(n);
        return json_to_string(n, FALSE);
    }
}

/* ---- fixture ------------------------------------------------------------------ */

static int
setup_common(void **state, gboolean direct)
{
    g_autoptr(GError) error = NULL;
    Fixture *f = g_new0(Fixture, 1);
    ServiceOptions so = {.direct = direct};
    g_autofree char *locks = NULL;

    f->base = event_base_new();
    f->dir = g_dir_make_tmp("service-disk-XXXXXX", &error);
    assert_non_null(f->dir);
    f->sysfs = g_build_filename(f->dir, "sys", NULL);
    f->state_file = g_build_filename(f->dir, "hostdevs.json", NULL);
    make_vfio_dev(f->sysfs, ADDR);
    test_qmp_listen(f, &f->q1, "q1.sock");
    test_qmp_listen(f, &f->q2, "q2.sock");
    so.sysfs_root = f->sysfs;
    so.hostdev_state_file = direct ? NULL : f->state_file;
    so.hostdev_lock_root = locks = g_build_filename(f->dir, "locks", NULL);
    f->svc = service_new(f->base, &so);
    *state = f;
    return 0;
}

static int
setup_direct(void **state)
{
    return setup_common(state, TRUE);
}

static int
setup_daemon(void **state)
{
    return setup_common(state, FALSE);
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    service_free(f->svc);
    test_qmp_close(&f->q1);
    test_qmp_close(&f->q2);
    rm_rf(f->dir);
    g_free(f->dir);
    g_free(f->sysfs);
    g_free(f->state_file);
    event_base_free(f->base);
    g_free(f);
    return 0;
}

/* ---- hostdev ------------------------------------------------------------------- */

/* Direct mode: nothing is sent on connect; hostdev-add syncs, then adds. */
static void
test_direct_add_syncs_first(void **state)
{
    Fixture *f = *state;
    g_autofree char *args = g_strdup_printf(
        "{\"vm\": \"%s\", \"addr\": \"0000:01:00.0\", \"id\": \"hd0\"}", f->q1.path);
    g_autofree char *cmds0 = NULL;
    g_autofree char *cmds1 = NULL;
    Reply r = {0};

    vm_connect(f, &f->q1, f->q1.path);
    assert_peer_done(f, &f->q1);
    cmds0 = commands(&f->q1);
    assert_string_equal(cmds0, "");

    fake_peer_step_return(
        fake_peer_expect(f->q1.peer, "qom-list", "{\"path\": \"/machine/peripheral\"}"),
        "[{\"name\": \"type\", \"type\": \"string\"}]");
    fake_peer_step_return(
        fake_peer_expect(f->q1.peer, "qom-list", "{\"path\": \"/machine/peripheral-anon\"}"), "[]");
    fake_peer_expect(f->q1.peer, "device_add",
                     "{\"driver\": \"vfio-pci\", \"id\": \"hd0\", \"host\": \"0000:01:00.0\"}");
    run_cmd(f, &r, "hostdev-add", args);
    assert_outcome(&r, "hd0", "added");
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(r.ret), "kind"), "hostdev");
    assert_peer_done(f, &f->q1);
    cmds1 = commands(&f->q1);
    assert_string_equal(cmds1, "qom-list qom-list device_add");
    reply_clear(&r);
}

/* A VM that goes while its hostdev-add waits for the sync: VmGone. */
static void
test_add_waiting_vm_removed(void **state)
{
    Fixture *f = *state;
    static const ServiceRequestCallbacks cb = {.reply = reply_cb};
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) args = NULL;
    g_autofree char *text = g_strdup_printf(
        "{\"vm\": \"%s\", \"addr\": \"0000:01:00.0\", \"id\": \"hd0\"}", f->q1.path);
    g_autofree char *want =
        g_strdup_printf("VM %s went away before its host devices were known", f->q1.path);
    FakeStep *held;
    Reply r = {0};

    vm_connect(f, &f->q1, f->q1.path);
    held = fake_peer_expect(f->q1.peer, "qom-list", NULL);
    fake_peer_step_hold(held);
    args = json_from_string(text, NULL);
    assert_non_null(
        service_execute(f->svc, "hostdev-add", json_node_get_object(args), &cb, &r));
    {
        gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
        while (!fake_peer_step_received(held) && g_get_monotonic_time() < end)
            event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    }
    assert_true(fake_peer_step_received(held));
    assert_false(r.done);
    assert_true(service_remove_vm(f->svc, f->q1.path, &error));
    assert_true(r.done);
    assert_fails(&r, "VmGone", want);
    reply_clear(&r);
}

/* The two qom-lists of a sync; peripheral lists pdev (JSON array). */
static void
expect_sync(TestQmp *q, const char *pdev)
{
    fake_peer_step_return(
        fake_peer_expect(q->peer, "qom-list", "{\"path\": \"/machine/peripheral\"}"), pdev);
    fake_peer_step_return(
        fake_peer_expect(q->peer, "qom-list", "{\"path\": \"/machine/peripheral-anon\"}"), "[]");
}

/* hotplugd: the sync on connect claims what QEMU shows, in the state
 * file; another VM is refused that device until the VM is removed. */
static void
test_daemon_sync_claims(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *st1 = NULL, *st2 = NULL, *st3 = NULL, *cmds1 = NULL, *cmds2 = NULL;
    Reply r = {0};

    /* vm1's QEMU has gpu0 on ADDR */
    vm_add(f, &f->q1, "vm1");
    expect_sync(&f->q1, "[{\"name\": \"gpu0\", \"type\": \"child<vfio-pci>\"}]");
    fake_peer_step_return(fake_peer_expect(f->q1.peer, "qom-get",
                                           "{\"path\": \"/machine/peripheral/gpu0\", "
                                           "\"property\": \"host\"}"),
                          "\"0000:01:00.0\"");
    vm_greet(f, &f->q1, "vm1");
    assert_peer_done(f, &f->q1);
    st1 = read_state(f);
    assert_string_equal(st1, "{\"version\":1,\"hostdevs\":[{\"address\":\"0000:01:00.0\","
                             "\"vm\":\"vm1\",\"device\":\"gpu0\",\"group\":\"7\"}]}");

    /* vm2 syncs on connect too, then is refused ADDR without asking QEMU */
    vm_add(f, &f->q2, "vm2");
    expect_sync(&f->q2, "[]");
    vm_greet(f, &f->q2, "vm2");
    assert_peer_done(f, &f->q2);
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm2\", \"addr\": \"0000:01:00.0\", \"id\": \"hd1\"}");
    assert_fails(&r, "Busy",
                 "host PCI device 0000:01:00.0 is already assigned to a VM we manage (VM vm1, "
                 "device gpu0)");
    cmds2 = commands(&f->q2);
    assert_string_equal(cmds2, "qom-list qom-list");

    /* vm1 removed: its claims go, ADDR can go to vm2 */
    assert_true(service_remove_vm(f->svc, "vm1", &error));
    st2 = read_state(f);
    assert_string_equal(st2, "{\"version\":1,\"hostdevs\":[]}");
    fake_peer_expect(f->q2.peer, "device_add",
                     "{\"driver\": \"vfio-pci\", \"id\": \"hd1\", \"host\": \"0000:01:00.0\"}");
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm2\", \"addr\": \"0000:01:00.0\", \"id\": \"hd1\"}");
    assert_outcome(&r, "hd1", "added");
    assert_peer_done(f, &f->q2);
    st3 = read_state(f);
    assert_string_equal(st3, "{\"version\":1,\"hostdevs\":[{\"address\":\"0000:01:00.0\","
                             "\"vm\":\"vm2\",\"device\":\"hd1\",\"group\":\"7\"}]}");

    /* hostdev-del: the claim goes once QEMU confirms */
    fake_peer_step_event_after(fake_peer_expect(f->q2.peer, "device_del", "{\"id\": \"hd1\"}"),
                               "DEVICE_DELETED",
                               "{\"device\": \"hd1\", \"path\": \"/machine/peripheral/hd1\"}");
    run_cmd(f, &r, "hostdev-del", "{\"vm\": \"vm2\", \"id\": \"hd1\"}");
    assert_outcome(&r, "hd1", "deleted");
    g_free(st3);
    st3 = read_state(f);
    assert_string_equal(st3, "{\"version\":1,\"hostdevs\":[]}");
    cmds1 = commands(&f->q1);
    assert_string_equal(cmds1, "qom-list qom-list qom-get");
    reply_clear(&r);
}

/* An unreadable state file: hostdev commands fail with its error until
 * it is fixed; then the next one syncs and goes on. */
static void
hostdev_event_cb(Service *svc, const char *event, JsonObject *info, gpointer opaque)
{
    GPtrArray *seen = opaque;
    const char *why = json_object_has_member(info, "why")
                          ? json_object_get_string_member(info, "why")
                          : "-";

    g_ptr_array_add(seen, g_strdup_printf("%s %s %s %s", event,
                                          json_object_get_string_member(info, "address"),
                                          json_object_get_string_member(info, "vm"), why));
}

/* hotplugd: the VM's QEMU goes away (its connection closes): its claims go
 * (nobody has /dev/vfio/7 open here), are told to the listeners, and the
 * device can go to another VM. */
static void
test_daemon_tenant_gone(void **state)
{
    static const ServiceListener l = {.hostdev = hostdev_event_cb};
    Fixture *f = *state;
    g_autoptr(GPtrArray) seen = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *st = NULL;
    Reply r = {0};

    service_add_listener(f->svc, &l, seen);
    vm_add(f, &f->q1, "vm1");
    expect_sync(&f->q1, "[{\"name\": \"gpu0\", \"type\": \"child<vfio-pci>\"}]");
    fake_peer_step_return(fake_peer_expect(f->q1.peer, "qom-get",
                                           "{\"path\": \"/machine/peripheral/gpu0\", "
                                           "\"property\": \"host\"}"),
                          "\"0000:01:00.0\"");
    vm_greet(f, &f->q1, "vm1");
    assert_peer_done(f, &f->q1);
    assert_int_equal(seen->len, 1);
    assert_string_equal(seen->pdata[0], "claimed 0000:01:00.0 vm1 -");
    vm_add(f, &f->q2, "vm2");
    expect_sync(&f->q2, "[]");
    vm_greet(f, &f->q2, "vm2");
    assert_peer_done(f, &f->q2);

    /* vm1's QEMU exits */
    fake_peer_free(f->q1.peer);
    f->q1.peer = NULL;
    for (int i = 0; i < 200 && seen->len < 2; i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(1000);
    assert_int_equal(seen->len, 2);
    assert_string_equal(seen->pdata[1], "released 0000:01:00.0 vm1 tenant gone");
    st = read_state(f);
    assert_string_equal(st, "{\"version\":1,\"hostdevs\":[]}");
    fake_peer_expect(f->q2.peer, "device_add",
                     "{\"driver\": \"vfio-pci\", \"id\": \"hd1\", \"host\": \"0000:01:00.0\"}");
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm2\", \"addr\": \"0000:01:00.0\", \"id\": \"hd1\"}");
    assert_outcome(&r, "hd1", "added");
    assert_peer_done(f, &f->q2);
    reply_clear(&r);
}

static void
test_daemon_bad_state_file(void **state)
{
    Fixture *f = *state;
    g_autofree char *cmds = NULL;
    Reply r = {0};

    must(g_file_set_contents(f->state_file, "{\"version\": 2, \"hostdevs\": []}", -1, NULL),
         f->state_file);
    vm_connect(f, &f->q1, "vm1");
    assert_peer_done(f, &f->q1);
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm1\", \"addr\": \"0000:01:00.0\", \"id\": \"hd0\"}");
    {
        g_autofree char *want =
            g_strdup_printf("host device registry %s: not a version 1 registry ({\"version\": 1, "
                            "\"hostdevs\": [...]})",
                            f->state_file);
        assert_fails(&r, "Failed", want);
        run_cmd(f, &r, "hostdev-del", "{\"vm\": \"vm1\", \"id\": \"hd0\"}");
        assert_fails(&r, "Failed", want);
    }
    cmds = commands(&f->q1);
    assert_string_equal(cmds, "");

    g_unlink(f->state_file);
    expect_sync(&f->q1, "[]");
    fake_peer_expect(f->q1.peer, "device_add", "{\"host\": \"0000:01:00.0\"}");
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm1\", \"addr\": \"0000:01:00.0\", \"id\": \"hd0\"}");
    assert_outcome(&r, "hd0", "added");
    assert_peer_done(f, &f->q1);
    reply_clear(&r);
}

/* Bad addresses and a host check failure: nothing goes to QEMU. */
static void
test_hostdev_refused(void **state)
{
    Fixture *f = *state;
    g_autofree char *cmds = NULL;
    g_autofree char *want = NULL;
    Reply r = {0};

    vm_connect(f, &f->q1, "vm1");
    expect_sync(&f->q1, "[]");
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm1\", \"addr\": \"01:00.0\", \"id\": \"hd0\"}");
    assert_fails(&r, "InvalidArgument",
                 "bad PCI address '01:00.0': expected DDDD:BB:DD.F in hex, e.g. 0000:01:00.0");
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm1\", \"addr\": \"0000:01:00.0\"}");
    assert_fails(&r, "InvalidArgument", "argument 'id' is missing");
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm9\", \"addr\": \"0000:01:00.0\", \"id\": \"x\"}");
    assert_fails(&r, "NotFound", "no VM named 'vm9' (see 'vm list')");
    run_cmd(f, &r, "hostdev-add", "{\"vm\": \"vm1\", \"addr\": \"0000:02:00.0\", \"id\": \"hd0\"}");
    want = g_strdup_printf("PCI device 0000:02:00.0 not found on this host (no %s/bus/pci/devices/"
                           "0000:02:00.0)",
                           f->sysfs);
    assert_fails(&r, "Failed", want);
    assert_peer_done(f, &f->q1);
    cmds = commands(&f->q1);
    assert_string_equal(cmds, "qom-list qom-list");
    reply_clear(&r);
}

/* ---- disk ---------------------------------------------------------------------- */

/* Argument checks that send nothing. */
static void
test_disk_add_args(void **state)
{
    Fixture *f = *state;
    g_autofree char *cmds = NULL;
    Reply r = {0};

    vm_connect(f, &f->q1, "vm1");
    run_cmd(f, &r, "disk-add", "{\"vm\": \"vm1\", \"file\": \"d.img\", \"id\": \"d1\"}");
    assert_fails(&r, "InvalidArgument", "argument 'file' must be an absolute path, not 'd.img'");
    run_cmd(f, &r, "disk-add", "{\"vm\": \"vm1\", \"file\": \"/d.img\"}");
    assert_fails(&r, "InvalidArgument", "argument 'id' is missing");
    run_cmd(f, &r, "disk-add",
            "{\"vm\": \"vm1\", \"file\": \"/d.img\", \"id\": \"d1\", \"iothreads\": 65}");
    assert_fails(&r, "InvalidArgument", "argument 'iothreads' must be a whole number from 0 to 64");
    run_cmd(f, &r, "disk-add",
            "{\"vm\": \"vm1\", \"file\": \"/d.img\", \"id\": \"d1\", \"readonly\": \"yes\"}");
    assert_fails(&r, "InvalidArgument", "argument 'readonly' must be true or false");
    run_cmd(f, &r, "disk-add",
            "{\"vm\": \"vm1\", \"file\": \"/d.img\", \"id\": \"d1\", \"format\": \"vmdk\"}");
    assert_fails(&r, "InvalidArgument", "unknown image format 'vmdk': raw or qcow2");
    /* QEMU 7.2 (the greeting) has no iothread-vq-mapping in device_add */
    run_cmd(f, &r, "disk-add",
            "{\"vm\": \"vm1\", \"file\": \"/d.img\", \"id\": \"d1\", \"iothreads\": 2}");
    assert_string_equal(service_error_class(r.error), "Unsupported");
    run_cmd(f, &r, "disk-del", "{\"vm\": \"vm1\", \"id\": \"d1\", \"timeout\": \"soon\"}");
    assert_fails(&r, "InvalidArgument", "argument 'timeout' must be a number of seconds");
    assert_peer_done(f, &f->q1);
    cmds = commands(&f->q1);
    assert_string_equal(cmds, "");
    reply_clear(&r);
}

/* disk-add's QMP, and disk-list naming its VM. */
static void
test_disk_add_list(void **state)
{
    Fixture *f = *state;
    g_autofree char *cmds = NULL;
    JsonObject *o;
    Reply r = {0};

    vm_connect(f, &f->q1, "vm1");
    fake_peer_expect(f->q1.peer, "blockdev-add",
                     "{\"driver\": \"file\", \"node-name\": \"d1-file\", \"filename\": "
                     "\"/img/d.qcow2\", \"read-only\": true}");
    fake_peer_expect(f->q1.peer, "blockdev-add",
                     "{\"driver\": \"qcow2\", \"node-name\": \"d1-fmt\", \"file\": \"d1-file\"}");
    fake_peer_expect(f->q1.peer, "object-add",
                     "{\"qom-type\": \"iothread\", \"id\": "
                     "\"d1-iothread0\"}");
    fake_peer_expect(f->q1.peer, "device_add",
                     "{\"driver\": \"virtio-blk-pci\", \"id\": \"d1\", \"drive\": \"d1-fmt\", "
                     "\"num-queues\": 4, \"iothread\": \"d1-iothread0\"}");
    run_cmd(f, &r, "disk-add",
            "{\"vm\": \"vm1\", \"file\": \"/img/d.qcow2\", \"id\": \"d1\", \"format\": \"qcow2\", "
            "\"readonly\": true, \"iothreads\": 1, \"queues\": 4}");
    assert_outcome(&r, "d1", "added");
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(r.ret), "kind"), "disk");
    assert_peer_done(f, &f->q1);

    fake_peer_step_return(fake_peer_expect(f->q1.peer, "query-block", NULL), "[]");
    fake_peer_step_return(fake_peer_expect(f->q1.peer, "query-named-block-nodes", NULL), "[]");
    fake_peer_step_return(fake_peer_expect(f->q1.peer, "qom-list", "{\"path\": \"/objects\"}"),
                          "[]");
    run_cmd(f, &r, "disk-list", "{\"vm\": \"vm1\"}");
    assert_null(r.error);
    o = qmp_json_node_object(r.ret);
    assert_non_null(o);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_int_equal(json_array_get_length(qmp_json_get_array(o, "disks")), 0);
    assert_non_null(qmp_json_get_object(o, "leftover"));
    assert_peer_done(f, &f->q1);
    cmds = commands(&f->q1);
    assert_string_equal(cmds, "blockdev-add blockdev-add object-add device_add query-block "
                              "query-named-block-nodes qom-list");
    reply_clear(&r);
}

/* The commands are registered with the base ones. */
/* A device-del that joins an unplug under way has its own deadline: it
 * answers not-deleted (joined) when that passes, and the unplug it joined
 * goes on to its own outcome. */
static void
test_joined_unplug_own_deadline(void **state)
{
    static const ServiceRequestCallbacks cb = {.reply = reply_cb};
    Fixture *f = *state;
    Reply first = {0}, second = {0};
    g_autoptr(JsonNode) a1 = json_from_string("{\"vm\": \"vm1\", \"id\": \"n1\"}", NULL);
    g_autoptr(JsonNode) a2 =
        json_from_string("{\"vm\": \"vm1\", \"id\": \"n1\", \"timeout\": 0.3}", NULL);
    JsonObject *o;

    vm_connect(f, &f->q1, "vm1");
    fake_peer_expect(f->q1.peer, "device_del", "{\"id\": \"n1\"}");
    service_execute(f->svc, "device-del", json_node_get_object(a1), &cb, &first);
    spin_until(f, NULL, 100);
    service_execute(f->svc, "device-del", json_node_get_object(a2), &cb, &second);
    spin_until(f, &second.done, WAIT_MS);
    assert_true(second.done);
    assert_false(first.done);
    assert_outcome(&second, "n1", "not-deleted");
    o = qmp_json_node_object(second.ret);
    assert_true(qmp_json_get_bool_default(o, "joined", FALSE));
    assert_int_equal(qmp_json_get_int_default(o, "timeout_ms", -1), 300);
    /* the unplug it joined is still pending; QEMU completes it */
    fake_peer_event(f->q1.peer, "DEVICE_DELETED",
                    "{\"device\": \"n1\", \"path\": \"/machine/peripheral/n1\"}");
    spin_until(f, &first.done, WAIT_MS);
    assert_outcome(&first, "n1", "deleted");
    assert_peer_done(f, &f->q1);
    reply_clear(&first);
    reply_clear(&second);
}

static void
test_registered(void **state)
{
    Fixture *f = *state;
    g_autoptr(GPtrArray) names = service_list_commands(f->svc);
    const char *want[] = {"disk-add", "disk-del", "disk-list", "hostdev-add", "hostdev-del"};

    for (guint i = 0; i < G_N_ELEMENTS(want); i++) {
        gboolean found = FALSE;
        for (guint j = 0; j < names->len; j++)
            found |= g_str_equal(names->pdata[j], want[i]);
        if (!found)
            fail_msg("command %s not registered", want[i]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registered, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_direct_add_syncs_first, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_add_waiting_vm_removed, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_sync_claims, setup_daemon, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_tenant_gone, setup_daemon, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_bad_state_file, setup_daemon, teardown),
        cmocka_unit_test_setup_teardown(test_hostdev_refused, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_disk_add_args, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_disk_add_list, setup_direct, teardown),
        cmocka_unit_test_setup_teardown(test_joined_unplug_own_deadline, setup_direct, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
