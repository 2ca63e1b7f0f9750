/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PCIe machines with their test guest booted, through `hotplugctl --json`
 * in direct mode: q35 with ACPI PCI hotplug (QEMU's default), q35 with
 * native PCIe hotplug, aarch64 virt (native only).  One VM per machine,
 * shared by the cases of its group (TCG boots are slow), each case
 * leaving the ports as it found them:
 *
 *   places     vm slots lists the root ports with their mechanism
 *   add        device add with no bus lands on the lowest free root port and
 *              says where; bus= by hand; an occupied port is refused
 *              before anything is sent, naming its occupant; with every
 *              port taken the refusal says how to add one
 *   unplug     at the default deadline with a cooperating guest: deleted,
 *              exit 0; with --retry 2: deleted; paused then resumed: deleted
 *   joined     (native, through hotplugd) a device del joining one under way
 *              answers not-deleted at its own deadline; the first ends deleted
 *   disk       disk add with no bus and disk del: no block node left;
 *              (q35 ACPI) --iothreads 4 gives 4 virtqueues where QEMU maps them
 *   virt       without ACPI GED (booted with -kernel) vm info lists no memory
 *              or vCPU hotplug, and memory add / vcpu set say why
 *   virt-uefi  virt booted through UEFI firmware with acpi=on has the ACPI
 *              GED: vm info lists memory hotplug, memory add → added and the
 *              guest onlines the DIMM, memory del at the default deadline →
 *              deleted, the guest saw it go and no backend is left
 *
 * The unplug latency of each mechanism is printed ("LATENCY ...") against
 * its default deadline. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "qmp-json.h"
#include "rig.h"

#define SEEN_MS 90000

typedef struct {
    RigVm *vm;
    char *dir;
    char *raw;
    const char *mechanism; /* what vm slots must say */
    guint deadline_ms;     /* the mechanism's default deadline */
} Fixture;

static void
make_image(const char *path)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *qemu_img = rig_qemu_img(&error);
    const char *argv[] = {qemu_img, "create", "-q", "-f", "raw", path, "16M", NULL};
    int status;

    if (!qemu_img)
        fail_msg("%s", error->message);
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL, &status,
                      &error) ||
        !g_spawn_check_wait_status(status, &error))
        fail_msg("qemu-img create %s: %s", path, error->message);
}

static int
group_setup_with(void **state, RigMachine machine, const char *mechanism, guint deadline_ms)
{
    Fixture *f = g_new0(Fixture, 1);
    /* memory slots too: virt's refusal must be about what it lacks */
    RigVmOptions opts = {.machine = machine,
                         .guest = TRUE,
                         .n_root_ports = 3,
                         .mem = machine == RIG_MACHINE_VIRT ? "512M,slots=2,maxmem=1G" : NULL,
                         .n_extra_qmp = 1 /* for hotplugd */};

    *state = f;
    f->mechanism = mechanism;
    f->deadline_ms = deadline_ms;
    f->dir = rig_make_tmp("pcie-qemu-XXXXXX");
    f->raw = g_build_filename(f->dir, "disk.raw", NULL);
    make_image(f->raw);
    f->vm = rig_vm_start(&opts);
    return 0;
}

static int
group_setup_q35(void **state)
{
    return group_setup_with(state, RIG_MACHINE_Q35, "acpi", 5000);
}

static int
group_setup_q35_native(void **state)
{
    return group_setup_with(state, RIG_MACHINE_Q35_NATIVE, "pcie-native", 15000);
}

static int
group_setup_virt(void **state)
{
    return group_setup_with(state, RIG_MACHINE_VIRT, "pcie-native", 15000);
}

/* virt through UEFI (AAVMF) with acpi=on: the ACPI GED, so DIMMs */
static int
group_setup_virt_uefi(void **state)
{
    Fixture *f = g_new0(Fixture, 1);
    RigVmOptions opts = {
        .machine = RIG_MACHINE_VIRT, .uefi = TRUE, .guest = TRUE, .mem = "512M,slots=2,maxmem=2G"};

    *state = f;
    f->mechanism = "acpi-ged";
    f->deadline_ms = 30000; /* memory's default deadline */
    f->vm = rig_vm_start(&opts);
    return 0;
}

static int
group_teardown(void **state)
{
    Fixture *f = *state;

    if (!f)
        return 0;
    rig_vm_free(f->vm);
    if (f->dir)
        rig_rm_tree(f->dir);
    g_free(f->dir);
    g_free(f->raw);
    g_free(f);
    return 0;
}

static const char *
sock(Fixture *f)
{
    return rig_vm_qmp_path(f->vm);
}

/* The QOM parent bus of a device is the bus of port rpN. */
static void
assert_on_port(Fixture *f, const char *id, const char *port)
{
    g_autofree char *args =
        g_strdup_printf("{\"path\": \"/machine/peripheral/%s\", \"property\": \"parent_bus\"}", id);
    g_autoptr(JsonNode) bus = rig_vm_qmp(f->vm, "qom-get", args);
    g_autofree char *want = g_strdup_printf("/%s/%s", port, port);
    const char *path = qmp_json_node_string(bus);

    if (!path || !g_str_has_suffix(path, want))
        fail_msg("%s's bus is %s, not %s's", id, path ? path : "(none)", port);
}

/* The guest's name for the device behind rpN. */
static char *
guest_line(const char *what, guint port)
{
    return g_strdup_printf("HOTPLUG-GUEST: %s pci 0000:%02x:00.0", what, port);
}

/* The guest printed line once more than the before times it had.  A case
 * ends only once the guest is done with what it did: QEMU frees a slot
 * when the guest ejects, before the guest has finished with the removal,
 * and a device added to the same slot at that moment went unseen by the
 * guest once (QEMU 10.0, q35 ACPI: the next case waited 90 s for it). */
static void
wait_guest_line(Fixture *f, const char *line, gsize before)
{
    if (!rig_vm_wait_console_count(f->vm, line, before + 1, SEEN_MS))
        fail_msg("the guest never reported %s", line);
}

/* device add with no bus (or the props given): added, on the port; the
 * guest saw it. */
static void
add_nic(Fixture *f, const char *id, const char *bus_prop, const char *want_port)
{
    g_autoptr(RigCtl) r = NULL;
    g_autofree char *seen = NULL;
    JsonObject *o;
    gsize before;
    guint port = (guint)g_ascii_strtoull(want_port + 2, NULL, 10);

    seen = guest_line("added", port);
    before = rig_vm_console_count(f->vm, seen);
    if (bus_prop)
        r = rig_ctl("--json", "device", "add", sock(f), "virtio-net-pci", id, bus_prop, NULL);
    else
        r = rig_ctl("--json", "device", "add", sock(f), "virtio-net-pci", id, NULL);
    rig_ctl_assert_exit(r, 0);
    o = rig_ctl_result(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_string_equal(qmp_json_get_string(o, "bus"), want_port);
    assert_string_equal(qmp_json_get_string(o, "addr"), "0x0");
    assert_on_port(f, id, want_port);
    if (!rig_vm_wait_console_count(f->vm, seen, before + 1, SEEN_MS))
        fail_msg("the guest never reported %s", seen);
}

/* device del (extra args) of the device on rpN: deleted, exit 0; the guest
 * saw it go.  Its elapsed ms. */
static gint64
del_nic(Fixture *f, const char *id, guint port, const char *const *extra)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(RigCtl) r = NULL;
    g_autofree char *gone = guest_line("removed", port);
    gsize before = rig_vm_console_count(f->vm, gone);
    JsonObject *o;
    gint64 elapsed;

    for (const char *const *a = (const char *const[]){"--json", "device", "del", sock(f), id, NULL};
         *a; a++)
        g_ptr_array_add(argv, (gpointer)*a);
    for (guint i = 0; extra && extra[i]; i++)
        g_ptr_array_add(argv, (gpointer)extra[i]);
    g_ptr_array_add(argv, NULL);
    r = rig_ctlv((const char *const *)argv->pdata);
    rig_ctl_assert_exit(r, 0);
    o = rig_ctl_result(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    elapsed = qmp_json_get_int_default(o, "elapsed_ms", -1);
    assert_true(elapsed >= 0);
    assert_false(rig_vm_peripheral_has(f->vm, id));
    if (!rig_vm_wait_console_count(f->vm, gone, before + 1, SEEN_MS))
        fail_msg("the guest never reported %s", gone);
    return elapsed;
}

static void
report_latency(Fixture *f, const char *what, gint64 ms)
{
    int major, minor, micro;

    rig_vm_version(f->vm, &major, &minor, &micro);
    printf("LATENCY qemu %d.%d.%d %s %s: %" G_GINT64_FORMAT " ms (default deadline %u ms)\n", major,
           minor, micro, f->mechanism, what, ms, f->deadline_ms);
    fflush(stdout);
}

/* ---- the cases ----------------------------------------------------------- */

static void
test_slots(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = rig_ctl("--json", "vm", "slots", sock(f), NULL);
    g_autoptr(RigCtl) info = NULL;
    JsonObject *o;
    JsonArray *places;
    JsonArray *mechs;

    rig_ctl_assert_exit(r, 0);
    o = rig_ctl_result(r);
    places = qmp_json_get_array(o, "places");
    assert_non_null(places);
    assert_int_equal(json_array_get_length(places), 3);
    for (guint i = 0; i < 3; i++) {
        JsonObject *p = qmp_json_node_object(json_array_get_element(places, i));
        g_autofree char *bus = g_strdup_printf("rp%u", i + 1);
        assert_string_equal(qmp_json_get_string(p, "bus"), bus);
        assert_string_equal(qmp_json_get_string(p, "kind"), "pcie-root-port");
        assert_string_equal(qmp_json_get_string(p, "mechanism"), f->mechanism);
        assert_null(qmp_json_get_string(p, "occupant"));
    }
    info = rig_ctl("--json", "vm", "info", sock(f), NULL);
    rig_ctl_assert_exit(info, 0);
    mechs = qmp_json_get_array(rig_ctl_result(info), "hotplug_mechanisms");
    assert_non_null(mechs);
    assert_int_equal(json_array_get_length(mechs), 1);
    assert_string_equal(qmp_json_node_string(json_array_get_element(mechs, 0)), f->mechanism);
}

/* no bus: rp1; bus=rp2 by hand; rp1 again refused naming its occupant,
 * nothing sent; the default-deadline unplug of both: deleted */
static void
test_add_del(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) busy = NULL;
    JsonObject *o;
    const char *desc;

    add_nic(f, "n1", NULL, "rp1");
    add_nic(f, "n2", "bus=rp2", "rp2");
    busy = rig_ctl("--json", "device", "add", sock(f), "virtio-net-pci", "n3", "bus=rp1", NULL);
    rig_ctl_assert_exit(busy, 3);
    o = rig_ctl_result(busy);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 0);
    desc = qmp_json_get_string(qmp_json_get_object(o, "error"), "desc");
    if (!desc || !strstr(desc, "occupied by n1"))
        fail_msg("the refusal does not name n1: %s", desc ? desc : "(none)");
    assert_false(rig_vm_peripheral_has(f->vm, "n3"));
    report_latency(f, "device del", del_nic(f, "n1", 1, NULL));
    report_latency(f, "device del", del_nic(f, "n2", 2, NULL));
}

/* A bus that is no PCI bus (a USB controller's) is not placed: QEMU takes
 * bus=usbc.0 as given, and answers a bus it does not know itself. */
static void
test_usb_bus(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) ctl = NULL;
    g_autoptr(RigCtl) kbd = NULL;
    g_autoptr(RigCtl) bad = NULL;
    g_autoptr(RigCtl) del = NULL;
    g_autofree char *seen = guest_line("added", 1);
    gsize before = rig_vm_console_count(f->vm, seen);
    JsonObject *o;
    const char *desc;

    ctl = rig_ctl("--json", "device", "add", sock(f), "qemu-xhci", "usbc", NULL);
    rig_ctl_assert_exit(ctl, 0);
    assert_string_equal(qmp_json_get_string(rig_ctl_result(ctl), "bus"), "rp1");
    if (!rig_vm_wait_console_count(f->vm, seen, before + 1, SEEN_MS))
        fail_msg("the guest never reported %s", seen);

    kbd = rig_ctl("--json", "device", "add", sock(f), "usb-kbd", "kb1", "bus=usbc.0", NULL);
    rig_ctl_assert_exit(kbd, 0);
    o = rig_ctl_result(kbd);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_null(qmp_json_get_string(o, "bus"));
    assert_true(rig_vm_peripheral_has(f->vm, "kb1"));

    bad = rig_ctl("--json", "device", "add", sock(f), "usb-kbd", "kb2", "bus=nosuch.0", NULL);
    rig_ctl_assert_exit(bad, 3);
    o = rig_ctl_result(bad);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    desc = qmp_json_get_string(qmp_json_get_object(o, "error"), "desc");
    if (!desc || !strstr(desc, "nosuch.0"))
        fail_msg("QEMU's refusal does not name the bus: %s", desc ? desc : "(none)");
    assert_false(rig_vm_peripheral_has(f->vm, "kb2"));

    del = rig_ctl("--json", "device", "del", sock(f), "kb1", NULL);
    rig_ctl_assert_exit(del, 0);
    assert_string_equal(qmp_json_get_string(rig_ctl_result(del), "outcome"), "deleted");
    assert_false(rig_vm_peripheral_has(f->vm, "kb1"));
    report_latency(f, "usb controller del", del_nic(f, "usbc", 1, NULL));
}

/* every port taken: the refusal says how to give the VM more */
static void
test_no_free_port(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    const char *desc;

    add_nic(f, "n1", NULL, "rp1");
    add_nic(f, "n2", NULL, "rp2");
    add_nic(f, "n3", NULL, "rp3");
    r = rig_ctl("--json", "device", "add", sock(f), "virtio-net-pci", "n4", NULL);
    rig_ctl_assert_exit(r, 3);
    desc = qmp_json_get_string(qmp_json_get_object(rig_ctl_result(r), "error"), "desc");
    if (!desc || !strstr(desc, "-device pcie-root-port"))
        fail_msg("the refusal does not say how to add a port: %s", desc ? desc : "(none)");
    assert_false(rig_vm_peripheral_has(f->vm, "n4"));
    del_nic(f, "n3", 3, NULL);
    del_nic(f, "n2", 2, NULL);
    del_nic(f, "n1", 1, NULL);
}

static void
test_retry(void **state)
{
    Fixture *f = *state;
    const char *const retry[] = {"--retry", "2", NULL};

    add_nic(f, "n1", NULL, "rp1");
    report_latency(f, "device del --retry 2", del_nic(f, "n1", 1, retry));
}

/* the guest paused when the request comes: nothing happens until it runs
 * again, then the unplug completes within the default deadline */
static void
test_paused_then_resumed(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autofree char *gone = guest_line("removed", 1);
    gsize before = rig_vm_console_count(f->vm, gone);
    RigCtlRun *run;
    JsonObject *o;

    add_nic(f, "n1", NULL, "rp1");
    rig_vm_qmp_ok(f->vm, "stop", NULL);
    run = rig_ctl_start("--json", "device", "del", sock(f), "n1", NULL);
    g_usleep(1000 * 1000);
    assert_true(rig_vm_peripheral_has(f->vm, "n1"));
    rig_vm_qmp_ok(f->vm, "cont", NULL);
    r = rig_ctl_wait(run, f->deadline_ms + 30000);
    rig_ctl_assert_exit(r, 0);
    o = rig_ctl_result(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    report_latency(f, "device del, paused 1 s", qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_false(rig_vm_peripheral_has(f->vm, "n1"));
    /* the next case plugs on rp1 again: let the guest finish with it */
    if (!rig_vm_wait_console_count(f->vm, gone, before + 1, SEEN_MS))
        fail_msg("the guest never reported %s", gone);
}

/* "a b": the sorted node names QEMU has (auto-named ones left out) */
static char *
node_names(Fixture *f)
{
    g_autoptr(JsonNode) ret = rig_vm_qmp(f->vm, "query-named-block-nodes", "{\"flat\": true}");
    JsonArray *a = qmp_json_node_array(ret);
    GString *s = g_string_new(NULL);

    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        const char *n =
            qmp_json_get_string(qmp_json_node_object(json_array_get_element(a, i)), "node-name");
        if (n && n[0] != '#')
            g_string_append_printf(s, "%s%s", s->len ? " " : "", n);
    }
    return g_string_free(s, FALSE);
}

static void
test_disk(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) add = NULL;
    g_autoptr(RigCtl) del = NULL;
    g_autofree char *before = node_names(f);
    g_autofree char *after = NULL;
    g_autofree char *seen = guest_line("added", 1);
    g_autofree char *gone = guest_line("removed", 1);
    gsize n = rig_vm_console_count(f->vm, seen);
    gsize n_gone = rig_vm_console_count(f->vm, gone);
    JsonObject *o;

    add = rig_ctl("--json", "disk", "add", sock(f), f->raw, "--id", "d1", NULL);
    rig_ctl_assert_exit(add, 0);
    o = rig_ctl_result(add);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_string_equal(qmp_json_get_string(o, "bus"), "rp1");
    assert_on_port(f, "d1", "rp1");
    if (!rig_vm_wait_console_count(f->vm, seen, n + 1, SEEN_MS))
        fail_msg("the guest never reported %s", seen);
    del = rig_ctl("--json", "disk", "del", sock(f), "d1", NULL);
    rig_ctl_assert_exit(del, 0);
    o = rig_ctl_result(del);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    report_latency(f, "disk del", qmp_json_get_int_default(o, "elapsed_ms", -1));
    after = node_names(f);
    assert_string_equal(after, before);
    wait_guest_line(f, gone, n_gone);
    /* and by hand on rp3 */
    {
        g_autofree char *seen3 = guest_line("added", 3);
        g_autofree char *gone3 = guest_line("removed", 3);
        gsize n3 = rig_vm_console_count(f->vm, seen3);
        gsize n3_gone = rig_vm_console_count(f->vm, gone3);
        g_autoptr(RigCtl) a2 =
            rig_ctl("--json", "disk", "add", sock(f), f->raw, "--id", "d2", "--bus", "rp3", NULL);
        g_autoptr(RigCtl) d2 = NULL;

        rig_ctl_assert_exit(a2, 0);
        assert_string_equal(qmp_json_get_string(rig_ctl_result(a2), "bus"), "rp3");
        assert_on_port(f, "d2", "rp3");
        if (!rig_vm_wait_console_count(f->vm, seen3, n3 + 1, SEEN_MS))
            fail_msg("the guest never reported %s", seen3);
        d2 = rig_ctl("--json", "disk", "del", sock(f), "d2", NULL);
        rig_ctl_assert_exit(d2, 0);
        g_free(after);
        after = node_names(f);
        assert_string_equal(after, before);
        wait_guest_line(f, gone3, n3_gone);
    }
}

/* --iothreads 4 without --queues: where QEMU maps IOThreads to queues,
 * the disk gets 4 virtqueues, one per IOThread; --queues 2 is refused
 * before anything is sent */
static void
test_disk_iothreads(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) bad = rig_ctl("--json", "disk", "add", sock(f), f->raw, "--id", "d4",
                                    "--iothreads", "4", "--queues", "2", NULL);
    g_autoptr(RigCtl) add = NULL;
    g_autoptr(RigCtl) del = NULL;
    g_autofree char *seen = guest_line("added", 1);
    g_autofree char *gone = guest_line("removed", 1);
    gsize n = rig_vm_console_count(f->vm, seen);
    gsize n_gone = rig_vm_console_count(f->vm, gone);
    const char *desc;

    rig_ctl_assert_exit(bad, 2);
    desc = qmp_json_get_string(qmp_json_get_object(rig_ctl_result(bad), "error"), "desc");
    if (!desc || !strstr(desc, "every IOThread needs a queue"))
        fail_msg("--queues 2 --iothreads 4: %s", desc ? desc : "(none)");
    assert_false(rig_vm_peripheral_has(f->vm, "d4"));
    add = rig_ctl("--json", "disk", "add", sock(f), f->raw, "--id", "d4", "--iothreads", "4", NULL);
    if (!rig_vm_has_cap(f->vm, "iothread-vq-mapping")) {
        /* this QEMU cannot map IOThreads to queues: refused, nothing sent */
        rig_ctl_assert_exit(add, 1);
        assert_false(rig_vm_peripheral_has(f->vm, "d4"));
        return;
    }
    rig_ctl_assert_exit(add, 0);
    if (!rig_vm_wait_console_count(f->vm, seen, n + 1, SEEN_MS))
        fail_msg("the guest never reported %s", seen);
    {
        g_autoptr(JsonNode) q =
            rig_vm_qmp(f->vm, "qom-get",
                       "{\"path\": \"/machine/peripheral/d4\", \"property\": \"num-queues\"}");
        assert_int_equal(json_node_get_int(q), 4);
    }
    del = rig_ctl("--json", "disk", "del", sock(f), "d4", NULL);
    rig_ctl_assert_exit(del, 0);
    wait_guest_line(f, gone, n_gone);
}

/* Through hotplugd, a device del that joins a native unplug under way
 * answers at its own deadline (not-deleted, joined, exit 5); the unplug
 * it joined ends deleted at its own. */
static void
test_joined_del_own_deadline(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigHotplugd) d = rig_hotplugd_new(NULL);
    g_autoptr(RigCtl) add = NULL;
    g_autoptr(RigCtl) joined = NULL;
    g_autoptr(RigCtl) first = NULL;
    g_autofree char *seen = guest_line("added", 1);
    g_autofree char *gone = guest_line("removed", 1);
    gsize n_seen = rig_vm_console_count(f->vm, seen);
    gsize n_gone = rig_vm_console_count(f->vm, gone);
    RigCtlRun *run;
    JsonObject *o;

    rig_hotplugd_start(d);
    rig_hotplugd_add_vm(d, "vm1", rig_vm_extra_qmp_path(f->vm, 1));
    add = rig_hotplugd_ctl(d, "--json", "device", "add", "vm1", "virtio-net-pci", "j1", NULL);
    rig_ctl_assert_exit(add, 0);
    assert_string_equal(qmp_json_get_string(rig_ctl_result(add), "bus"), "rp1");
    if (!rig_vm_wait_console_count(f->vm, seen, n_seen + 1, SEEN_MS))
        fail_msg("the guest never reported %s", seen);
    run = rig_hotplugd_ctl_start(d, "--json", "device", "del", "vm1", "j1", NULL);
    g_usleep(500 * 1000);
    joined = rig_hotplugd_ctl(d, "--json", "device", "del", "vm1", "j1", "--timeout", "1", NULL);
    rig_ctl_assert_exit(joined, 5);
    o = rig_ctl_result(joined);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "not-deleted");
    assert_true(qmp_json_get_bool_default(o, "joined", FALSE));
    assert_int_equal(qmp_json_get_int_default(o, "timeout_ms", -1), 1000);
    first = rig_ctl_wait(run, f->deadline_ms + 30000);
    rig_ctl_assert_exit(first, 0);
    o = rig_ctl_result(first);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    report_latency(f, "device del through hotplugd", qmp_json_get_int_default(o, "elapsed_ms", -1));
    if (!rig_vm_wait_console_count(f->vm, gone, n_gone + 1, SEEN_MS))
        fail_msg("the guest never reported %s", gone);
    rig_hotplugd_stop(d);
}

/* aarch64 virt booted with -kernel (no UEFI firmware, so no ACPI GED):
 * vm info lists neither memory nor vCPU hotplug, and both verbs say
 * plainly why */
static void
test_virt_says_what_it_lacks(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) info = rig_ctl("--json", "vm", "info", sock(f), NULL);
    g_autoptr(RigCtl) mem = NULL;
    g_autoptr(RigCtl) cpu = NULL;
    JsonObject *o;
    JsonArray *caps;
    const char *hint;

    rig_ctl_assert_exit(info, 0);
    o = rig_ctl_result(info);
    caps = qmp_json_get_array(o, "capabilities");
    for (guint i = 0; caps && i < json_array_get_length(caps); i++) {
        const char *cap = qmp_json_node_string(json_array_get_element(caps, i));
        if (g_strcmp0(cap, "memory-hotplug") == 0 || g_strcmp0(cap, "cpu-hotplug") == 0)
            fail_msg("vm info lists %s, which this virt VM cannot do", cap);
    }
    assert_non_null(strstr(qmp_json_get_string(o, "memory_hotplug_unavailable"), "ACPI GED"));
    mem = rig_ctl("--json", "memory", "add", sock(f), "128M", NULL);
    rig_ctl_assert_exit(mem, 3);
    hint = qmp_json_get_string(rig_ctl_result(mem), "hint");
    if (!hint || !strstr(hint, "ACPI GED") || strstr(hint, "slots=N"))
        fail_msg("memory add hint: %s", hint ? hint : "(none)");
    cpu = rig_ctl("vcpu", "set", sock(f), "2", NULL);
    assert_int_not_equal(cpu->status, 0);
    if (!strstr(cpu->err, "does not support vCPU hotplug on this machine"))
        fail_msg("vcpu set says: %s", cpu->err);
}

static gboolean
caps_have(JsonObject *info, const char *want)
{
    JsonArray *caps = qmp_json_get_array(info, "capabilities");

    for (guint i = 0; caps && i < json_array_get_length(caps); i++)
        if (g_strcmp0(qmp_json_node_string(json_array_get_element(caps, i)), want) == 0)
            return TRUE;
    return FALSE;
}

/* virt with the ACPI GED: vm info lists memory hotplug; a DIMM goes in
 * (added, the guest onlines it movable) and out at the default deadline
 * (deleted, the guest removed it, neither the device nor its backend left) */
static void
test_virt_uefi_memory(void **state)
{
    Fixture *f = *state;
    const char *online = "HOTPLUG-GUEST: online memory";
    const char *gone = "HOTPLUG-GUEST: removed memory";
    gsize n_online = rig_vm_console_count(f->vm, online);
    gsize n_gone = rig_vm_console_count(f->vm, gone);
    g_autoptr(RigCtl) info = rig_ctl("--json", "vm", "info", sock(f), NULL);
    g_autoptr(RigCtl) add = NULL;
    g_autoptr(RigCtl) del = NULL;
    g_autofree char *console = NULL;
    char *line, *eol;
    JsonObject *o;
    gint64 elapsed;

    rig_ctl_assert_exit(info, 0);
    o = rig_ctl_result(info);
    if (!caps_have(o, "memory-hotplug"))
        fail_msg("vm info lists no memory-hotplug: %s",
                 qmp_json_get_string(o, "memory_hotplug_unavailable"));
    assert_null(qmp_json_get_string(o, "memory_hotplug_unavailable"));

    add = rig_ctl("--json", "memory", "add", sock(f), "128M", NULL);
    rig_ctl_assert_exit(add, 0);
    o = rig_ctl_result(add);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_string_equal(qmp_json_get_string(o, "device"), "dimm0");
    elapsed = qmp_json_get_int_default(o, "elapsed_ms", -1);
    assert_true(elapsed >= 0);
    report_latency(f, "memory add", elapsed);
    assert_true(rig_vm_peripheral_has(f->vm, "dimm0"));
    assert_true(rig_vm_qom_has(f->vm, "/objects", "mem-dimm0"));
    if (!rig_vm_wait_console_count(f->vm, online, n_online + 1, SEEN_MS))
        fail_msg("the guest never onlined the DIMM");
    console = rig_vm_console(f->vm);
    line = g_strrstr(console, online);
    eol = strchr(line, '\n');
    if (eol)
        *eol = '\0';
    if (!g_str_has_suffix(g_strchomp(line), " movable"))
        fail_msg("the guest onlined the DIMM, but not movable: %s", line);

    del = rig_ctl("--json", "memory", "del", sock(f), "dimm0", NULL);
    rig_ctl_assert_exit(del, 0);
    o = rig_ctl_result(del);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "timeout_ms", -1), f->deadline_ms);
    elapsed = qmp_json_get_int_default(o, "elapsed_ms", -1);
    assert_true(elapsed >= 0);
    report_latency(f, "memory del", elapsed);
    assert_false(rig_vm_peripheral_has(f->vm, "dimm0"));
    assert_false(rig_vm_qom_has(f->vm, "/objects", "mem-dimm0"));
    if (!rig_vm_wait_console_count(f->vm, gone, n_gone + 1, SEEN_MS))
        fail_msg("the guest never reported the DIMM removed");
}

int
main(void)
{
    const struct CMUnitTest cases[] = {
        cmocka_unit_test(test_slots),        cmocka_unit_test(test_add_del),
        cmocka_unit_test(test_retry),        cmocka_unit_test(test_paused_then_resumed),
        cmocka_unit_test(test_disk),         cmocka_unit_test(test_disk_iothreads),
        cmocka_unit_test(test_no_free_port), cmocka_unit_test(test_usb_bus),
    };
    const struct CMUnitTest native_cases[] = {
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_add_del),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_paused_then_resumed),
        cmocka_unit_test(test_joined_del_own_deadline),
        cmocka_unit_test(test_disk),
        cmocka_unit_test(test_no_free_port),
    };
    const struct CMUnitTest virt_cases[] = {
        cmocka_unit_test(test_virt_says_what_it_lacks),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_add_del),
        cmocka_unit_test(test_disk),
        cmocka_unit_test(test_usb_bus),
    };
    const struct CMUnitTest virt_uefi_cases[] = {
        cmocka_unit_test(test_virt_uefi_memory),
    };
    int failed = 0;

    failed += cmocka_run_group_tests_name("q35-acpi", cases, group_setup_q35, group_teardown);
    failed += cmocka_run_group_tests_name("q35-native", native_cases, group_setup_q35_native,
                                          group_teardown);
    failed += cmocka_run_group_tests_name("virt", virt_cases, group_setup_virt, group_teardown);
    failed += cmocka_run_group_tests_name("virt-uefi", virt_uefi_cases, group_setup_virt_uefi,
                                          group_teardown);
    return failed;
}
