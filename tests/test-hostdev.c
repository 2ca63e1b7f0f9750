/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VFIO host devices: PCI address parsing, the host checks against a fake
 * sysfs tree made here, the registry (claims, persistence across reload),
 * and hostdev add/del against a scripted fake QEMU: the exact device_add,
 * "already assigned" across VMs, release only on a confirmed unplug, and
 * the sync with what QEMU shows (direct mode); claims per IOMMU group, the
 * lock per group shared between processes (two registries of this process
 * stand for two processes: flock conflicts between open files), other
 * processes' /dev/vfio/N in a fake /proc, release when the tenant is gone,
 * and the pool (listing with states, late bindings and unbindings). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib/gstdio.h>

#include "fake-peer.h"
#include "hotplug-hostdev.h"
#include "hotplug-hostpool.h"
#include "hotplug-vm.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define WAIT_MS 5000
#define ADDR "0000:01:00.0"

typedef struct {
    FakePeer *peer;
    QmpConn *conn;
    HotplugVm *vm;
    HotplugHostdev *hd;
} TestVm;

typedef struct {
    struct event_base *base;
    char *dir; /* temp dir: sysfs/ and the registry file */
    char *sysfs;
    char *state_file;
    HotplugHostdevRegistry *reg;
    TestVm a, b;
    gboolean sync_done;
    GError *sync_error;
} Fixture;

/* ---- the fake sysfs tree -------------------------------------------------- */

static void
must(gboolean ok, const char *what)
{
    if (!ok)
        fail_msg("%s: %s", what, g_strerror(errno));
}

/* ROOT/bus/pci/devices/ADDR with a driver link (driver may be NULL) and an
 * iommu_group link to ROOT/kernel/iommu_groups/GROUP (group may be NULL),
 * which lists the device in its devices/. */
static void
make_dev(const char *root, const char *addr, const char *driver, const char *group)
{
    g_autofree char *dev = g_build_filename(root, "bus", "pci", "devices", addr, NULL);

    must(g_mkdir_with_parents(dev, 0755) == 0, dev);
    if (driver) {
        g_autofree char *link = g_build_filename(dev, "driver", NULL);
        g_autofree char *target =
            g_build_filename("..", "..", "..", "bus", "pci", "drivers", driver, NULL);
        must(symlink(target, link) == 0, link);
    }
    if (group) {
        g_autofree char *gdir = g_build_filename(root, "kernel", "iommu_groups", group, NULL);
        g_autofree char *members = g_build_filename(gdir, "devices", NULL);
        g_autofree char *glink = g_build_filename(dev, "iommu_group", NULL);
        g_autofree char *mlink = g_build_filename(members, addr, NULL);

        must(g_mkdir_with_parents(members, 0755) == 0, members);
        must(symlink(gdir, glink) == 0, glink);
        must(symlink(dev, mlink) == 0, mlink);
    }
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

/* ---- fixture --------------------------------------------------------------- */

static void
test_vm_open(Fixture *f, TestVm *t, const char *name)
{
    g_autoptr(GError) error = NULL;
    HotplugVmOptions opts = {.gone_on_close = TRUE};
    int fd;

    t->peer = fake_peer_new(f->base, &fd);
    fake_peer_greet(t->peer);
    t->conn = qmp_conn_new_fd(f->base, fd, NULL);
    if (!qmp_conn_wait_ready(t->conn, WAIT_MS, &error))
        fail_msg("QMP not ready: %s", error->message);
    t->vm = hotplug_vm_new(name, t->conn, &opts);
    t->hd = hotplug_hostdev_new(t->vm, f->reg, f->sysfs);
}

static void
test_vm_close(TestVm *t)
{
    if (!t->vm)
        return;
    hotplug_hostdev_free(t->hd);
    hotplug_vm_free(t->vm);
    qmp_conn_close(t->conn);
    qmp_conn_unref(t->conn);
    fake_peer_free(t->peer);
}

static int
setup(void **state)
{
    g_autoptr(GError) error = NULL;
    Fixture *f = g_new0(Fixture, 1);

    f->base = event_base_new();
    f->dir = g_dir_make_tmp("hostdev-XXXXXX", &error);
    assert_non_null(f->dir);
    f->sysfs = g_build_filename(f->dir, "sys", NULL);
    f->state_file = g_build_filename(f->dir, "hostdevs.json", NULL);
    must(g_mkdir(f->sysfs, 0755) == 0, f->sysfs);
    *state = f;
    return 0;
}

/* With a registry on a state file and two VMs sharing it. */
static int
setup_vms(void **state)
{
    g_autoptr(GError) error = NULL;
    Fixture *f;

    setup(state);
    f = *state;
    f->reg = hotplug_hostdev_registry_new(f->state_file, &error);
    assert_non_null(f->reg);
    test_vm_open(f, &f->a, "vm-a");
    test_vm_open(f, &f->b, "vm-b");
    make_dev(f->sysfs, ADDR, "vfio-pci", "12");
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    test_vm_close(&f->a);
    test_vm_close(&f->b);
    hotplug_hostdev_registry_free(f->reg);
    rm_rf(f->dir);
    g_free(f->dir);
    g_free(f->sysfs);
    g_free(f->state_file);
    g_clear_error(&f->sync_error);
    event_base_free(f->base);
    g_free(f);
    return 0;
}

static void
spin_ms(Fixture *f, const gboolean *flag, guint ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;

    while (!*flag && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
}

static void
spin(Fixture *f, const gboolean *flag)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

    while (!*flag && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
}

static void
wait_final(Fixture *f, HotplugOp *op)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

    while (!hotplug_op_is_final(op) && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    assert_true(hotplug_op_is_final(op));
}

static void
wait_state(Fixture *f, HotplugOp *op, HotplugOpState st)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;

    while (hotplug_op_get_state(op) != st && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    assert_int_equal(hotplug_op_get_state(op), st);
}

static void
assert_peer_done(Fixture *f, TestVm *t)
{
    for (int i = 0; i < 20; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK), g_usleep(500);
    if (!fake_peer_all_done(t->peer)) {
        g_autofree char *why = fake_peer_describe_failures(t->peer);
        fail_msg("fake peer: %s", why);
    }
}

/* Commands other than qmp_capabilities the VM's QEMU received. */
static guint
n_commands(TestVm *t)
{
    guint n = 0;

    for (guint i = 0; i < fake_peer_n_received(t->peer); i++)
        n += !g_str_equal(fake_peer_received_command(t->peer, i), "qmp_capabilities");
    return n;
}

/* The arguments of the last command received, compact. */
static char *
last_args(TestVm *t)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    guint n = fake_peer_n_received(t->peer);
    JsonObject *o;

    assert_true(n > 0);
    assert_true(json_parser_load_from_data(parser, fake_peer_received(t->peer, n - 1), -1, NULL));
    o = json_node_get_object(json_parser_get_root(parser));
    return json_to_string(json_object_get_member(o, "arguments"), FALSE);
}

static void
assert_error(const GError *error, gint code, const char *message)
{
    assert_non_null(error);
    assert_true(error->domain == HOTPLUG_ERROR);
    if (error->code != code || !g_str_equal(error->message, message))
        fail_msg("got code %d '%s'\nwant code %d '%s'", error->code, error->message, code, message);
}

/* ---- PCI addresses ---------------------------------------------------------- */

static void
test_addr_parse(void **state)
{
    static const char *const bad[] = {
        "01:00.0",       "0000:01:00.8", "0000:01:20.0", "0000:01:00",
        "0000:01:00.0 ", "zzzz:01:00.0", "0000-01-00.0", "",
        "00000:01:00.0", "0000:1:00.0",
    };
    char *norm = NULL;

    assert_true(hotplug_pci_addr_parse("0000:01:00.0", &norm, NULL));
    assert_string_equal(norm, "0000:01:00.0");
    g_free(norm);
    assert_true(hotplug_pci_addr_parse("00AB:CD:1F.7", &norm, NULL));
    assert_string_equal(norm, "00ab:cd:1f.7");
    g_free(norm);
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        if (hotplug_pci_addr_parse(bad[i], NULL, &error))
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID));
        assert_non_null(strstr(error->message, "bad PCI address"));
    }
    {
        g_autoptr(GError) error = NULL;
        assert_false(hotplug_pci_addr_parse(NULL, NULL, &error));
        assert_error(error, HOTPLUG_ERROR_INVALID,
                     "bad PCI address '': expected DDDD:BB:DD.F in hex, e.g. 0000:01:00.0");
    }
}

/* ---- the host checks ---------------------------------------------------------- */

static void
test_check_not_found(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *msg = g_strdup_printf(
        "PCI device 0000:05:00.0 not found on this host (no %s/bus/pci/devices/0000:05:00.0)",
        f->sysfs);

    assert_false(hotplug_hostdev_check_host(f->sysfs, "0000:05:00.0", NULL, &error));
    assert_error(error, HOTPLUG_ERROR_FAILED, msg);
}

static void
test_check_not_vfio(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;

    make_dev(f->sysfs, ADDR, "e1000e", "3");
    assert_false(hotplug_hostdev_check_host(f->sysfs, ADDR, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_FAILED,
                 "PCI device 0000:01:00.0 is bound to e1000e, not vfio-pci; bind it to "
                 "vfio-pci first (e.g. driverctl set-override 0000:01:00.0 vfio-pci)");
}

static void
test_check_no_driver(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;

    make_dev(f->sysfs, ADDR, NULL, "3");
    assert_false(hotplug_hostdev_check_host(f->sysfs, ADDR, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_FAILED,
                 "PCI device 0000:01:00.0 is not bound to any driver; bind it to vfio-pci "
                 "first (e.g. driverctl set-override 0000:01:00.0 vfio-pci)");
}

static void
test_check_no_group(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *msg = g_strdup_printf(
        "PCI device 0000:01:00.0 has no IOMMU group (no %s/bus/pci/devices/0000:01:00.0/"
        "iommu_group): is the IOMMU on (intel_iommu=on or amd_iommu=on)?",
        f->sysfs);

    make_dev(f->sysfs, ADDR, "vfio-pci", NULL);
    assert_false(hotplug_hostdev_check_host(f->sysfs, ADDR, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_FAILED, msg);
}

static void
test_check_group_viable(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *group = NULL;

    make_dev(f->sysfs, ADDR, "vfio-pci", "7");
    make_dev(f->sysfs, "0000:00:01.0", "pcieport", "7"); /* a bridge: fine */
    make_dev(f->sysfs, "0000:01:00.2", NULL, "7");       /* unbound: fine */
    assert_true(hotplug_hostdev_check_host(f->sysfs, ADDR, &group, &error));
    assert_string_equal(group, "7");
    make_dev(f->sysfs, "0000:01:00.1", "snd_hda_intel", "7");
    assert_false(hotplug_hostdev_check_host(f->sysfs, ADDR, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_FAILED,
                 "IOMMU group 7 of PCI device 0000:01:00.0 is not viable: 0000:01:00.1 in the "
                 "same group is bound to snd_hda_intel; bind every device of the group to "
                 "vfio-pci (or unbind it)");
}

static void
test_check_ok(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *group = NULL;

    make_dev(f->sysfs, ADDR, "vfio-pci", "12");
    make_dev(f->sysfs, "0000:01:00.1", "vfio-pci", "12");
    assert_true(hotplug_hostdev_check_host(f->sysfs, ADDR, &group, &error));
    assert_null(error);
    assert_string_equal(group, "12");
}

/* ---- the registry ------------------------------------------------------------- */

static void
test_registry_claims(void **state)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugHostdevRegistry) reg = hotplug_hostdev_registry_new(NULL, &error);
    g_autoptr(JsonNode) list = NULL;
    g_autofree char *text = NULL;
    const char *vm = NULL, *dev = NULL;

    assert_non_null(reg);
    assert_false(hotplug_hostdev_registry_lookup(reg, ADDR, NULL, NULL));
    assert_true(hotplug_hostdev_registry_claim(reg, ADDR, "vm1", "gpu0", &error));
    /* again for the same device: fine */
    assert_true(hotplug_hostdev_registry_claim(reg, ADDR, "vm1", "gpu0", &error));
    assert_true(hotplug_hostdev_registry_lookup(reg, ADDR, &vm, &dev));
    assert_string_equal(vm, "vm1");
    assert_string_equal(dev, "gpu0");
    assert_string_equal(hotplug_hostdev_registry_find(reg, "vm1", "gpu0"), ADDR);
    assert_null(hotplug_hostdev_registry_find(reg, "vm2", "gpu0"));
    assert_false(hotplug_hostdev_registry_claim(reg, ADDR, "vm2", "gpu0", &error));
    assert_error(error, HOTPLUG_ERROR_BUSY,
                 "host PCI device 0000:01:00.0 is already assigned to a VM we manage (VM vm1, "
                 "device gpu0)");
    g_clear_error(&error);
    assert_true(hotplug_hostdev_registry_claim(reg, "0000:02:00.0", "vm2", "nic", &error));
    assert_true(hotplug_hostdev_registry_claim(reg, "0000:00:1f.0", "vm1", "x", &error));
    list = hotplug_hostdev_registry_to_json(reg);
    text = json_to_string(list, FALSE);
    assert_string_equal(text, "[{\"address\":\"0000:00:1f.0\",\"vm\":\"vm1\",\"device\":\"x\"},"
                              "{\"address\":\"0000:01:00.0\",\"vm\":\"vm1\",\"device\":\"gpu0\"},"
                              "{\"address\":\"0000:02:00.0\",\"vm\":\"vm2\",\"device\":\"nic\"}]");
    assert_int_equal(hotplug_hostdev_registry_release_vm(reg, "vm1"), 2);
    assert_false(hotplug_hostdev_registry_lookup(reg, ADDR, NULL, NULL));
    assert_true(hotplug_hostdev_registry_release(reg, "0000:02:00.0", &error));
    assert_false(hotplug_hostdev_registry_lookup(reg, "0000:02:00.0", NULL, NULL));
    /* releasing what is not claimed is fine */
    assert_true(hotplug_hostdev_registry_release(reg, "0000:02:00.0", &error));
}

static void
test_registry_persistence(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    HotplugHostdevRegistry *reg;
    g_autofree char *text = NULL;
    const char *vm = NULL, *dev = NULL;
    GStatBuf st;

    /* no file yet: empty */
    reg = hotplug_hostdev_registry_new(f->state_file, &error);
    assert_non_null(reg);
    assert_false(g_file_test(f->state_file, G_FILE_TEST_EXISTS));
    assert_true(hotplug_hostdev_registry_claim(reg, ADDR, "vm-a", "gpu0", &error));
    assert_true(hotplug_hostdev_registry_claim(reg, "0000:02:00.0", "vm-b", "nic0", &error));
    hotplug_hostdev_registry_free(reg);

    assert_int_equal(g_stat(f->state_file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(g_file_get_contents(f->state_file, &text, NULL, NULL));
    assert_non_null(strstr(text, "\"version\" : 1"));

    /* a restart: the claims are back, and still exclusive */
    reg = hotplug_hostdev_registry_new(f->state_file, &error);
    assert_non_null(reg);
    assert_true(hotplug_hostdev_registry_lookup(reg, ADDR, &vm, &dev));
    assert_string_equal(vm, "vm-a");
    assert_string_equal(dev, "gpu0");
    assert_true(hotplug_hostdev_registry_lookup(reg, "0000:02:00.0", &vm, &dev));
    assert_string_equal(vm, "vm-b");
    assert_false(hotplug_hostdev_registry_claim(reg, ADDR, "vm-b", "gpu9", &error));
    g_clear_error(&error);
    assert_true(hotplug_hostdev_registry_release(reg, ADDR, &error));
    hotplug_hostdev_registry_free(reg);

    reg = hotplug_hostdev_registry_new(f->state_file, &error);
    assert_non_null(reg);
    assert_false(hotplug_hostdev_registry_lookup(reg, ADDR, NULL, NULL));
    assert_true(hotplug_hostdev_registry_lookup(reg, "0000:02:00.0", NULL, NULL));
    hotplug_hostdev_registry_free(reg);
}

static void
test_registry_bad_file(void **state)
{
    Fixture *f = *state;
    static const char *const bad[] = {
        "not json",
        "[]",
        "{\"version\": 2, \"hostdevs\": []}",
        "{\"version\": 1, \"hostdevs\": [{\"address\": \"01:00.0\", \"vm\": \"a\", "
        "\"device\": \"b\"}]}",
        "{\"version\": 1, \"hostdevs\": [{\"address\": \"0000:01:00.0\", \"vm\": \"a\"}]}",
        "{\"version\": 1, \"hostdevs\": [{\"address\": \"0000:01:00.0\", \"vm\": \"a\", "
        "\"device\": \"b\"}, {\"address\": \"0000:01:00.0\", \"vm\": \"c\", \"device\": \"d\"}]}",
    };

    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        HotplugHostdevRegistry *reg;

        assert_true(g_file_set_contents(f->state_file, bad[i], -1, NULL));
        reg = hotplug_hostdev_registry_new(f->state_file, &error);
        if (reg)
            fail_msg("accepted: %s", bad[i]);
        assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED));
        assert_non_null(strstr(error->message, f->state_file));
    }
}

/* A registry whose file cannot be written claims nothing. */
static void
test_registry_unwritable(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *path = g_build_filename(f->dir, "no-such-dir", "hostdevs.json", NULL);
    g_autoptr(HotplugHostdevRegistry) reg = hotplug_hostdev_registry_new(path, &error);

    assert_non_null(reg);
    assert_false(hotplug_hostdev_registry_claim(reg, ADDR, "vm-a", "gpu0", &error));
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED));
    assert_true(g_str_has_prefix(error->message, "cannot save the host device registry: "));
    assert_false(hotplug_hostdev_registry_lookup(reg, ADDR, NULL, NULL));
}

/* ---- hostdev add / del --------------------------------------------------------- */

static HotplugOp *
add_ok(Fixture *f, TestVm *t, const char *addr, const char *id)
{
    g_autoptr(GError) error = NULL;
    HotplugOp *op;

    fake_peer_expect(t->peer, "device_add", NULL);
    op = hotplug_hostdev_add(t->hd, addr, id, &error);
    if (!op)
        fail_msg("hostdev add: %s", error->message);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
    return op;
}

/* The JSON sent when everything is right, and the claim it made. */
static void
test_add_json(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = add_ok(f, &f->a, "0000:01:00.0", "gpu0");
    g_autofree char *args = last_args(&f->a);
    const char *vm = NULL, *dev = NULL;

    assert_int_equal(hotplug_op_get_kind(op), HOTPLUG_KIND_HOSTDEV);
    assert_int_equal(n_commands(&f->a), 1);
    assert_string_equal(fake_peer_received_command(f->a.peer, 1), "device_add");
    assert_string_equal(args,
                        "{\"driver\":\"vfio-pci\",\"id\":\"gpu0\",\"host\":\"0000:01:00.0\"}");
    assert_true(hotplug_hostdev_registry_lookup(f->reg, ADDR, &vm, &dev));
    assert_string_equal(vm, "vm-a");
    assert_string_equal(dev, "gpu0");
    assert_peer_done(f, &f->a);
}

/* Uppercase hex is normalized before the host check and the device_add. */
static void
test_add_normalized(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autofree char *args = NULL;

    make_dev(f->sysfs, "0000:af:00.1", "vfio-pci", "40");
    op = add_ok(f, &f->a, "0000:AF:00.1", "hd1");
    args = last_args(&f->a);
    assert_string_equal(args, "{\"driver\":\"vfio-pci\",\"id\":\"hd1\",\"host\":\"0000:af:00.1\"}");
}

/* A second VM of the same registry cannot have it; nothing goes to its QEMU. */
static void
test_add_already_assigned(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = add_ok(f, &f->a, ADDR, "gpu0");

    assert_null(hotplug_hostdev_add(f->b.hd, ADDR, "gpu0", &error));
    assert_error(error, HOTPLUG_ERROR_BUSY,
                 "host PCI device 0000:01:00.0 is already assigned to a VM we manage (VM vm-a, "
                 "device gpu0)");
    assert_int_equal(n_commands(&f->b), 0);
    g_clear_error(&error);
    /* nor the same VM under another id */
    assert_null(hotplug_hostdev_add(f->a.hd, ADDR, "gpu1", &error));
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BUSY));
    g_clear_error(&error);
    /* and one device id holds one host device */
    make_dev(f->sysfs, "0000:02:00.0", "vfio-pci", "13");
    assert_null(hotplug_hostdev_add(f->a.hd, "0000:02:00.0", "gpu0", &error));
    assert_error(error, HOTPLUG_ERROR_BUSY,
                 "device gpu0 of VM vm-a already holds host PCI device 0000:01:00.0");
    assert_int_equal(n_commands(&f->a), 1);
    assert_peer_done(f, &f->a);
    assert_peer_done(f, &f->b);
}

/* Host checks refuse before anything is claimed or sent. */
static void
test_add_host_refused(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;

    make_dev(f->sysfs, "0000:03:00.0", "nvidia", "20");
    assert_null(hotplug_hostdev_add(f->a.hd, "0000:03:00.0", "gpu0", &error));
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED));
    assert_non_null(strstr(error->message, "is bound to nvidia, not vfio-pci"));
    g_clear_error(&error);
    assert_null(hotplug_hostdev_add(f->a.hd, "0000:04:00.0", "gpu0", &error));
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_FAILED));
    assert_non_null(strstr(error->message, "not found on this host"));
    g_clear_error(&error);
    assert_null(hotplug_hostdev_add(f->a.hd, "0000:04:00", "gpu0", &error));
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID));
    g_clear_error(&error);
    assert_null(hotplug_hostdev_add(f->a.hd, ADDR, "", &error));
    assert_true(g_error_matches(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID));
    assert_int_equal(n_commands(&f->a), 0);
    assert_false(hotplug_hostdev_registry_lookup(f->reg, "0000:03:00.0", NULL, NULL));
    assert_false(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
}

/* QEMU refuses the device_add: the claim goes, another VM may have it. */
static void
test_add_rejected_releases(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(HotplugOp) op2 = NULL;

    fake_peer_step_error(fake_peer_expect(f->a.peer, "device_add", NULL), "GenericError",
                         "vfio 0000:01:00.0: group 12 is not viable");
    op = hotplug_hostdev_add(f->a.hd, ADDR, "gpu0", &error);
    assert_non_null(op);
    /* claimed while in flight */
    assert_true(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_string_equal(hotplug_op_get_error(op)->message,
                        "vfio 0000:01:00.0: group 12 is not viable");
    assert_false(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    op2 = add_ok(f, &f->b, ADDR, "gpu0");
    assert_peer_done(f, &f->a);
}

/* hotplugd killed between the claim and device_add's answer: after the
 * restart the plug is taken over, QEMU lacks the device, and the claim made
 * before the restart goes with the rejected outcome. */
static void
test_adopted_plug_releases(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    GPtrArray *steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    HotplugAdopt a = {
        .id = 7, .kind = HOTPLUG_KIND_HOSTDEV, .action = HOTPLUG_ACTION_PLUG, .device = "gpu0",
        .attempts = 1, .max_attempts = 1, .start_wall_us = g_get_real_time(),
        .deadline_wall_us = -1, .steps_sent = 1,
    };

    g_ptr_array_add(steps, hotplug_step_new("device_add", NULL, NULL, NULL));
    a.steps = steps;
    a.instance = hotplug_vm_instance(f->a.vm);
    assert_true(hotplug_hostdev_registry_claim(f->reg, ADDR, "vm-a", "gpu0", &error));
    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-list", NULL),
                          "[{\"name\": \"type\", \"type\": \"string\"}]");
    op = hotplug_vm_adopt(f->a.vm, &a, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_false(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    assert_peer_done(f, &f->a);
}

/* Released on deleted; kept on not-deleted until deleted-late; kept on
 * a rejected device_del. */
static void
test_del_release(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) add = add_ok(f, &f->a, ADDR, "gpu0");
    g_autoptr(HotplugOp) del = NULL;
    g_autoptr(HotplugOp) del2 = NULL;
    g_autoptr(HotplugOp) del3 = NULL;
    g_autoptr(HotplugOp) add2 = NULL;
    HotplugUnplugOptions uo = {.timeout_ms = 50};

    /* QEMU refuses: still ours */
    fake_peer_step_error(fake_peer_expect(f->a.peer, "device_del", NULL), "GenericError",
                         "Bus 'pci.0' does not support hotplugging");
    del = hotplug_hostdev_del(f->a.hd, "gpu0", &uo, NULL, &error);
    assert_non_null(del);
    wait_final(f, del);
    assert_int_equal(hotplug_op_get_outcome(del), HOTPLUG_OUTCOME_REJECTED);
    assert_true(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));

    /* not deleted by the deadline: still ours */
    fake_peer_expect(f->a.peer, "device_del", "{\"id\": \"gpu0\"}");
    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-list", NULL),
                          "[{\"name\": \"gpu0\", \"type\": \"child<vfio-pci>\"}]");
    del2 = hotplug_hostdev_del(f->a.hd, "gpu0", &uo, NULL, &error);
    assert_non_null(del2);
    assert_int_equal(hotplug_op_get_kind(del2), HOTPLUG_KIND_HOSTDEV);
    wait_final(f, del2);
    assert_int_equal(hotplug_op_get_outcome(del2), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_true(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    assert_null(hotplug_hostdev_add(f->b.hd, ADDR, "gpu0", &error));
    g_clear_error(&error);

    /* QEMU confirms it late: free */
    fake_peer_event(f->a.peer, "DEVICE_DELETED",
                    "{\"device\": \"gpu0\", \"path\": \"/machine/peripheral/gpu0\"}");
    wait_state(f, del2, HOTPLUG_OP_DONE);
    assert_int_equal(hotplug_op_get_outcome(del2), HOTPLUG_OUTCOME_DELETED_LATE);
    assert_false(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    assert_peer_done(f, &f->a);

    /* the other VM takes it, and gives it back on a plain deleted */
    add2 = add_ok(f, &f->b, ADDR, "gpu0");
    fake_peer_step_event_after(fake_peer_expect(f->b.peer, "device_del", NULL), "DEVICE_DELETED",
                               "{\"device\": \"gpu0\", \"path\": \"/machine/peripheral/gpu0\"}");
    del3 = hotplug_hostdev_del(f->b.hd, "gpu0", NULL, NULL, &error);
    assert_non_null(del3);
    wait_final(f, del3);
    assert_int_equal(hotplug_op_get_outcome(del3), HOTPLUG_OUTCOME_DELETED);
    assert_false(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    assert_peer_done(f, &f->b);
}

/* ---- sync with QEMU (direct mode) ------------------------------------------------ */

static void
sync_cb(HotplugHostdev *hd, const GError *error, gpointer opaque)
{
    Fixture *f = opaque;

    f->sync_done = TRUE;
    if (error)
        f->sync_error = g_error_copy(error);
}

static void
test_sync(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugHostdev) hd = NULL;
    HotplugHostdevRegistry *reg;
    const char *vm = NULL, *dev = NULL;

    /* no registry given: a private one, filled from QEMU */
    hd = hotplug_hostdev_new(f->a.vm, NULL, f->sysfs);
    reg = hotplug_hostdev_get_registry(hd);
    assert_true(reg != f->reg);
    /* a claim QEMU does not back up goes */
    assert_true(hotplug_hostdev_registry_claim(reg, "0000:09:00.0", "vm-a", "old", &error));
    /* another VM's claims are not this sync's business */
    assert_true(hotplug_hostdev_registry_claim(reg, "0000:08:00.0", "vm-x", "y", &error));
    fake_peer_step_return(
        fake_peer_expect(f->a.peer, "qom-list", "{\"path\": \"/machine/peripheral\"}"),
        "[{\"name\": \"type\", \"type\": \"string\"}, {\"name\": \"hd0\", \"type\": "
        "\"child<vfio-pci>\"}, {\"name\": \"net0\", \"type\": \"child<virtio-net-pci>\"}]");
    fake_peer_step_return(
        fake_peer_expect(f->a.peer, "qom-list", "{\"path\": \"/machine/peripheral-anon\"}"),
        "[{\"name\": \"device[0]\", \"type\": \"child<vfio-pci>\"}]");
    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-get",
                                           "{\"path\": \"/machine/peripheral/hd0\", "
                                           "\"property\": \"host\"}"),
                          "\"0000:02:00.0\"");
    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-get",
                                           "{\"path\": \"/machine/peripheral-anon/device[0]\", "
                                           "\"property\": \"host\"}"),
                          "\"0000:03:00.0\"");
    assert_true(hotplug_hostdev_sync(hd, sync_cb, f, &error));
    spin(f, &f->sync_done);
    assert_true(f->sync_done);
    assert_null(f->sync_error);
    assert_peer_done(f, &f->a);

    assert_true(hotplug_hostdev_registry_lookup(reg, "0000:02:00.0", &vm, &dev));
    assert_string_equal(vm, "vm-a");
    assert_string_equal(dev, "hd0");
    assert_true(hotplug_hostdev_registry_lookup(reg, "0000:03:00.0", &vm, &dev));
    assert_string_equal(dev, "/machine/peripheral-anon/device[0]");
    assert_false(hotplug_hostdev_registry_lookup(reg, "0000:09:00.0", NULL, NULL));
    assert_true(hotplug_hostdev_registry_lookup(reg, "0000:08:00.0", NULL, NULL));

    /* what QEMU shows is refused, before the host is even looked at */
    assert_null(hotplug_hostdev_add(hd, "0000:02:00.0", "again", &error));
    assert_error(error, HOTPLUG_ERROR_BUSY,
                 "host PCI device 0000:02:00.0 is already assigned to a VM we manage (VM vm-a, "
                 "device hd0)");
}

/* A sync whose QEMU goes away ends with the error. */
static void
test_sync_error(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;

    fake_peer_step_error(fake_peer_expect(f->a.peer, "qom-list", NULL), "GenericError", "boom");
    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-list", NULL), "[]");
    assert_true(hotplug_hostdev_sync(f->a.hd, sync_cb, f, &error));
    spin(f, &f->sync_done);
    assert_true(f->sync_done);
    assert_non_null(f->sync_error);
    assert_string_equal(f->sync_error->message, "/machine/peripheral: boom");
}

/* A QEMU without /machine/peripheral-anon: nothing there, no error. */
static void
test_sync_no_anon(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;

    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-list", NULL),
                          "[{\"name\": \"gpu0\", \"type\": \"child<vfio-pci>\"}]");
    fake_peer_step_error(fake_peer_expect(f->a.peer, "qom-list", NULL), "DeviceNotFound",
                         "Device '/machine/peripheral-anon' not found");
    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-get", NULL), "\"0000:01:00.0\"");
    assert_true(hotplug_hostdev_sync(f->a.hd, sync_cb, f, &error));
    spin(f, &f->sync_done);
    assert_true(f->sync_done);
    assert_null(f->sync_error);
    assert_string_equal(hotplug_hostdev_registry_find(f->reg, "vm-a", "gpu0"), ADDR);
    assert_peer_done(f, &f->a);
}

/* hd freed while a sync is in flight: no callback, no crash. */
static void
test_sync_cut_loose(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    gboolean flag = FALSE;

    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-list", NULL), "[]");
    fake_peer_step_return(fake_peer_expect(f->a.peer, "qom-list", NULL), "[]");
    assert_true(hotplug_hostdev_sync(f->a.hd, sync_cb, f, &error));
    hotplug_hostdev_free(f->a.hd);
    f->a.hd = hotplug_hostdev_new(f->a.vm, f->reg, f->sysfs);
    spin_ms(f, &flag, 300); /* the replies come and go */
    assert_false(f->sync_done);
    assert_peer_done(f, &f->a);
}

/* ---- IOMMU groups, locks shared between processes, other users ------------------ */

/* ROOT/proc/PID/fd/3 -> /dev/vfio/GROUP and ROOT/proc/PID/comm */
static char *
make_proc_user(const char *dir, int pid, const char *group)
{
    g_autofree char *proc = g_build_filename(dir, "proc", NULL);
    g_autofree char *p = g_strdup_printf("%d", pid);
    g_autofree char *fds = g_build_filename(proc, p, "fd", NULL);
    g_autofree char *link = g_build_filename(fds, "3", NULL);
    g_autofree char *target = g_strdup_printf("/dev/vfio/%s", group);
    g_autofree char *comm = g_build_filename(proc, p, "comm", NULL);

    must(g_mkdir_with_parents(fds, 0755) == 0, fds);
    must(symlink(target, link) == 0, link);
    must(g_file_set_contents(comm, "qemu-system-x86\n", -1, NULL), comm);
    return g_steal_pointer(&proc);
}

static void
test_group_claims(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugHostdevRegistry) reg = hotplug_hostdev_registry_new(NULL, &error);
    g_autofree char *locks = g_build_filename(f->dir, "locks", NULL);

    make_dev(f->sysfs, "0000:03:00.0", "vfio-pci", "9");
    make_dev(f->sysfs, "0000:03:00.1", "vfio-pci", "9");
    hotplug_hostdev_registry_set_host(reg, f->sysfs, locks, f->dir /* no processes */);
    assert_true(hotplug_hostdev_registry_claim_new(reg, "0000:03:00.0", "vm1", "nic0", &error));
    /* the other function of the group: not for another VM */
    assert_false(hotplug_hostdev_registry_claim_new(reg, "0000:03:00.1", "vm2", "nic1", &error));
    assert_error(error, HOTPLUG_ERROR_BUSY,
                 "host PCI device 0000:03:00.1 is in IOMMU group 9, which is assigned to VM vm1 "
                 "(device nic0 holds 0000:03:00.0); a group goes to one VM");
    g_clear_error(&error);
    /* the same VM may have the whole group */
    assert_true(hotplug_hostdev_registry_claim_new(reg, "0000:03:00.1", "vm1", "nic1", &error));
    assert_true(hotplug_hostdev_registry_release(reg, "0000:03:00.0", &error));
    assert_false(hotplug_hostdev_registry_claim_new(reg, "0000:03:00.0", "vm2", "nic0", &error));
    g_clear_error(&error);
    assert_true(hotplug_hostdev_registry_release(reg, "0000:03:00.1", &error));
    assert_true(hotplug_hostdev_registry_claim_new(reg, "0000:03:00.0", "vm2", "nic0", &error));
}

static void
test_group_lock_across_registries(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugHostdevRegistry) daemon = hotplug_hostdev_registry_new(f->state_file, &error);
    g_autoptr(HotplugHostdevRegistry) direct = hotplug_hostdev_registry_new(NULL, &error);
    g_autofree char *locks = g_build_filename(f->dir, "locks", NULL);
    g_autofree char *lock_file = g_build_filename(locks, "vfio-group-12.lock", NULL);
    g_autofree char *text = NULL;
    g_autofree char *want = NULL;
    g_autoptr(JsonObject) holder = NULL;

    make_dev(f->sysfs, ADDR, "vfio-pci", "12");
    hotplug_hostdev_registry_set_host(daemon, f->sysfs, locks, f->dir);
    hotplug_hostdev_registry_set_host(direct, f->sysfs, locks, f->dir);
    g_clear_pointer(&holder, json_object_unref);
    assert_false(hotplug_hostdev_lock_peek(locks, "12", &holder));
    assert_true(hotplug_hostdev_registry_claim_new(daemon, ADDR, "vm1", "gpu0", &error));
    /* the lock file names the claimer */
    assert_true(g_file_get_contents(lock_file, &text, NULL, NULL));
    want = g_strdup_printf("{\"pid\":%d,\"vm\":\"vm1\",\"device\":\"gpu0\",\"persistent\":true,"
                           "\"owner\":\"%s\"}\n",
                           getpid(), f->state_file);
    assert_string_equal(text, want);
    g_clear_pointer(&holder, json_object_unref);
    assert_true(hotplug_hostdev_lock_peek(locks, "12", &holder));
    assert_string_equal(qmp_json_get_string(holder, "vm"), "vm1");
    /* flock conflicts between two open files even in one process: another process */
    assert_false(hotplug_hostdev_registry_claim_new(direct, ADDR, "/run/vm2.qmp", "gpu", &error));
    g_clear_pointer(&want, g_free);
    want = g_strdup_printf("IOMMU group 12 is claimed by VM vm1 (device gpu0) of process %d "
                           "(lock %s)",
                           getpid(), lock_file);
    assert_error(error, HOTPLUG_ERROR_BUSY, want);
    g_clear_error(&error);
    assert_false(hotplug_hostdev_registry_lookup(direct, ADDR, NULL, NULL));

    /* the daemon dies (kill -9: its locks go, its state file stays) */
    g_clear_pointer(&daemon, hotplug_hostdev_registry_free);
    g_clear_pointer(&text, g_free);
    assert_true(g_file_get_contents(lock_file, &text, NULL, NULL));
    assert_true(strlen(text) > 0);
    /* a persistent claim of another VM by a hotplugd that is not running: refused */
    {
        g_autofree char *stale = g_strdup_printf(
            "{\"pid\":%d,\"vm\":\"vm1\",\"device\":\"gpu0\",\"persistent\":true}\n", 0x7ffffff0);
        must(g_file_set_contents(lock_file, stale, -1, NULL), lock_file);
    }
    assert_false(hotplug_hostdev_registry_claim_new(direct, ADDR, "/run/vm2.qmp", "gpu", &error));
    assert_non_null(strstr(error->message, "a hotplugd that is not running"));
    g_clear_error(&error);
    /* the daemon comes back: it takes the lock again for its claim */
    daemon = hotplug_hostdev_registry_new(f->state_file, &error);
    assert_non_null(daemon);
    hotplug_hostdev_registry_set_host(daemon, f->sysfs, locks, f->dir);
    g_clear_pointer(&holder, json_object_unref);
    assert_true(hotplug_hostdev_lock_peek(locks, "12", &holder));
    assert_false(hotplug_hostdev_registry_claim_new(direct, ADDR, "/run/vm2.qmp", "gpu", &error));
    g_clear_error(&error);
    /* it releases: the lock is free and empty, the direct claim goes through */
    assert_true(hotplug_hostdev_registry_release(daemon, ADDR, &error));
    g_clear_pointer(&holder, json_object_unref);
    assert_false(hotplug_hostdev_lock_peek(locks, "12", &holder));
    assert_null(holder);
    assert_true(hotplug_hostdev_registry_claim_new(direct, ADDR, "/run/vm2.qmp", "gpu", &error));
    /* a direct-mode claim does not outlive its process: no lock, not persistent */
    g_clear_pointer(&direct, hotplug_hostdev_registry_free);
    g_clear_pointer(&holder, json_object_unref);
    assert_false(hotplug_hostdev_lock_peek(locks, "12", &holder));
    assert_false(qmp_json_get_bool_default(holder, "persistent", TRUE));
    assert_true(hotplug_hostdev_registry_claim_new(daemon, ADDR, "vm3", "gpu", &error));

    /* killed between taking the lock and saving the claim: the lock names
     * the daemon's state file but the file has no claim; the daemon, back,
     * empties it, and only it may (another daemon is refused meanwhile) */
    assert_true(hotplug_hostdev_registry_release(daemon, ADDR, &error));
    g_clear_pointer(&daemon, hotplug_hostdev_registry_free);
    {
        g_autofree char *stale = g_strdup_printf("{\"pid\":%d,\"vm\":\"vm4\",\"device\":\"g\","
                                                 "\"persistent\":true,\"owner\":\"%s\"}\n",
                                                 0x7ffffff0, f->state_file);
        g_autofree char *other_state = g_build_filename(f->dir, "other.json", NULL);
        g_autoptr(HotplugHostdevRegistry) other = hotplug_hostdev_registry_new(other_state, &error);

        must(g_file_set_contents(lock_file, stale, -1, NULL), lock_file);
        hotplug_hostdev_registry_set_host(other, f->sysfs, locks, f->dir);
        assert_false(hotplug_hostdev_registry_claim_new(other, ADDR, "vm5", "g", &error));
        g_clear_error(&error);
    }
    daemon = hotplug_hostdev_registry_new(f->state_file, &error);
    hotplug_hostdev_registry_set_host(daemon, f->sysfs, locks, f->dir);
    g_clear_pointer(&text, g_free);
    assert_true(g_file_get_contents(lock_file, &text, NULL, NULL));
    assert_string_equal(text, "");
    direct = hotplug_hostdev_registry_new(NULL, &error);
    hotplug_hostdev_registry_set_host(direct, f->sysfs, locks, f->dir);
    assert_true(hotplug_hostdev_registry_claim_new(direct, ADDR, "/run/vm6.qmp", "g", &error));
}

static void
test_group_open_elsewhere(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugHostdevRegistry) reg = hotplug_hostdev_registry_new(NULL, &error);
    g_autofree char *locks = g_build_filename(f->dir, "locks", NULL);
    g_autofree char *proc = NULL;
    g_autofree char *comm = NULL;

    make_dev(f->sysfs, ADDR, "vfio-pci", "12");
    proc = make_proc_user(f->dir, 4242, "12");
    hotplug_hostdev_registry_set_host(reg, f->sysfs, locks, proc);
    assert_int_equal(hotplug_hostdev_group_user(proc, "12", &comm), 4242);
    assert_string_equal(comm, "qemu-system-x86");
    assert_int_equal(hotplug_hostdev_group_user(proc, "13", NULL), 0);
    assert_false(hotplug_hostdev_registry_claim_new(reg, ADDR, "vm1", "gpu0", &error));
    assert_error(error, HOTPLUG_ERROR_BUSY,
                 "IOMMU group 12 of host PCI device 0000:01:00.0 is in use: /dev/vfio/12 is open "
                 "in process 4242 (qemu-system-x86), which is not a VM we manage");
    g_clear_error(&error);
    /* and its lock was not kept */
    {
        g_autoptr(JsonObject) holder = NULL;
        g_clear_pointer(&holder, json_object_unref);
        assert_false(hotplug_hostdev_lock_peek(locks, "12", &holder));
    }
    /* what QEMU already shows (sync) is claimed whoever has it open */
    assert_true(hotplug_hostdev_registry_claim(reg, ADDR, "vm1", "gpu0", &error));
}

static void
test_tenant_gone(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *locks = g_build_filename(f->dir, "locks", NULL);
    g_autofree char *proc = g_build_filename(f->dir, "proc", NULL);
    g_autofree char *fdlink = g_build_filename(proc, "777", "fd", "3", NULL);
    g_autofree char *u = NULL;

    must(g_mkdir_with_parents(proc, 0755) == 0, proc);
    hotplug_hostdev_registry_set_host(f->reg, f->sysfs, locks, proc);
    assert_true(hotplug_hostdev_registry_claim_new(f->reg, ADDR, "vm-a", "gpu0", &error));
    /* the QEMU is exiting but still has the group open: kept */
    u = make_proc_user(f->dir, 777, "12");
    assert_int_equal(hotplug_hostdev_tenant_gone(f->a.hd), 1);
    assert_true(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    /* another VM's device is not touched */
    assert_int_equal(hotplug_hostdev_tenant_gone(f->b.hd), 0);
    assert_true(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    /* closed: released */
    must(g_unlink(fdlink) == 0, fdlink);
    assert_int_equal(hotplug_hostdev_tenant_gone(f->a.hd), 0);
    assert_false(hotplug_hostdev_registry_lookup(f->reg, ADDR, NULL, NULL));
    assert_true(hotplug_hostdev_registry_claim_new(f->reg, ADDR, "vm-b", "gpu0", &error));
}

typedef struct {
    GPtrArray *events; /* "event address" */
} PoolSeen;

static void
pool_change_cb(HotplugHostpool *pool, const char *event, JsonObject *dev, gpointer opaque)
{
    PoolSeen *s = opaque;

    g_ptr_array_add(s->events,
                    g_strdup_printf("%s %s", event, qmp_json_get_string(dev, "address")));
}

static void
test_pool(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugHostdevRegistry) reg = hotplug_hostdev_registry_new(NULL, &error);
    g_autoptr(HotplugHostdevRegistry) other = hotplug_hostdev_registry_new(NULL, &error);
    g_autofree char *locks = g_build_filename(f->dir, "locks", NULL);
    g_autofree char *proc = NULL;
    g_autoptr(HotplugHostpool) pool = NULL;
    g_autoptr(JsonNode) list = NULL;
    g_autofree char *text = NULL;
    g_autofree char *want = NULL;
    g_autofree char *vendor =
        g_build_filename(f->sysfs, "bus", "pci", "devices", ADDR, "vendor", NULL);
    g_autofree char *device =
        g_build_filename(f->sysfs, "bus", "pci", "devices", ADDR, "device", NULL);
    g_autofree char *drv = NULL;
    PoolSeen seen = {g_ptr_array_new_with_free_func(g_free)};

    make_dev(f->sysfs, ADDR, "vfio-pci", "12");
    make_dev(f->sysfs, "0000:02:00.0", "vfio-pci", "13");
    make_dev(f->sysfs, "0000:03:00.0", "e1000e", "14");
    make_dev(f->sysfs, "0000:04:00.0", "vfio-pci", "15");
    must(g_file_set_contents(vendor, "0x8086\n", -1, NULL), vendor);
    must(g_file_set_contents(device, "0x10d3\n", -1, NULL), device);
    proc = make_proc_user(f->dir, 4242, "15");
    hotplug_hostdev_registry_set_host(reg, f->sysfs, locks, proc);
    hotplug_hostdev_registry_set_host(other, f->sysfs, locks, proc);
    pool = hotplug_hostpool_new(f->sysfs);
    hotplug_hostpool_set_change_func(pool, pool_change_cb, &seen);
    assert_true(hotplug_hostdev_registry_claim_new(reg, ADDR, "vm1", "nic0", &error));
    assert_true(hotplug_hostdev_registry_claim_new(other, "0000:02:00.0", "vm9", "x", &error));
    /* as written by another process (ours is not named: it is the asker) */
    {
        g_autofree char *lf = g_build_filename(locks, "vfio-group-13.lock", NULL);
        g_autofree char *line = g_strdup_printf(
            "{\"pid\":%d,\"vm\":\"vm9\",\"device\":\"x\",\"persistent\":false}\n", getppid());
        FILE *fp = fopen(lf, "r+"); /* in place: the flock is on this inode */

        must(fp != NULL, lf);
        must(ftruncate(fileno(fp), 0) == 0 && fputs(line, fp) >= 0 && fclose(fp) == 0, lf);
    }
    list = hotplug_hostpool_list(pool, reg, locks, proc);
    text = json_to_string(list, FALSE);
    want = g_strdup_printf(
        "[{\"address\":\"0000:01:00.0\",\"vendor-device\":\"8086:10d3\",\"group\":\"12\","
        "\"members\":[\"0000:01:00.0\"],\"state\":\"claimed\",\"vm\":\"vm1\",\"device\":\"nic0\"},"
        "{\"address\":\"0000:02:00.0\",\"vendor-device\":\"?:?\",\"group\":\"13\","
        "\"members\":[\"0000:02:00.0\"],\"state\":\"claimed\",\"vm\":\"vm9\",\"device\":\"x\","
        "\"pid\":%d,\"claimer-running\":true},"
        "{\"address\":\"0000:04:00.0\",\"vendor-device\":\"?:?\",\"group\":\"15\","
        "\"members\":[\"0000:04:00.0\"],\"state\":\"in-use\",\"pid\":4242,"
        "\"process\":\"qemu-system-x86\"}]",
        getppid());
    assert_string_equal(text, want);
    assert_int_equal(seen.events->len, 0);
    /* a late binding, an unbinding */
    drv = g_build_filename(f->sysfs, "bus", "pci", "devices", "0000:03:00.0", "driver", NULL);
    must(g_unlink(drv) == 0, drv);
    must(symlink("../../../bus/pci/drivers/vfio-pci", drv) == 0, drv);
    g_clear_pointer(&drv, g_free);
    drv = g_build_filename(f->sysfs, "bus", "pci", "devices", "0000:04:00.0", "driver", NULL);
    must(g_unlink(drv) == 0, drv);
    assert_int_equal(hotplug_hostpool_rescan(pool), 2);
    assert_int_equal(seen.events->len, 2);
    assert_string_equal(seen.events->pdata[0], "gone 0000:04:00.0");
    assert_string_equal(seen.events->pdata[1], "available 0000:03:00.0");
    assert_int_equal(hotplug_hostpool_rescan(pool), 0);
    g_clear_pointer(&list, json_node_unref);
    list = hotplug_hostpool_list(pool, reg, locks, proc);
    assert_int_equal(json_array_get_length(json_node_get_array(list)), 3);
    assert_string_equal(
        qmp_json_get_string(json_array_get_object_element(json_node_get_array(list), 2), "state"),
        "free");
    g_ptr_array_unref(seen.events);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test_setup_teardown(test_check_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_not_vfio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_no_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_no_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_group_viable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_ok, setup, teardown),
        cmocka_unit_test(test_registry_claims),
        cmocka_unit_test_setup_teardown(test_registry_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_bad_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_unwritable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_json, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_add_normalized, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_add_already_assigned, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_add_host_refused, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_add_rejected_releases, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_adopted_plug_releases, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_del_release, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_sync, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_sync_error, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_sync_no_anon, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_sync_cut_loose, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_group_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_lock_across_registries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_open_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_gone, setup_vms, teardown),
        cmocka_unit_test_setup_teardown(test_pool, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
