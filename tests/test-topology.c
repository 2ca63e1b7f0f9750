/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The PCI topology model, placement and per-mechanism unplug deadlines
 * (hotplug-topology.c, hotplug-vm.c) against the fake peer answering what
 * real QEMU 7.2 and 10.0 answered (tests/topology-captures.h and
 * topology-captures-10.h, made by tests/capture-topology.py): pc, q35 with ACPI hotplug, q35 with
 * native PCIe hotplug, aarch64 virt, pseries. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <event2/event.h>

#include "fake-peer.h"
#include "hotplug-topology.h"
#include "hotplug-vm.h"
#include "qmp-json.h"
#include "topology-captures-10.h"
#include "topology-captures.h"

#define WAIT_MS 5000

/* The answers of one QEMU generation (both run every case). */
typedef struct {
    const char *name;
    const TopologyCapture *pc, *q35_acpi, *q35_native, *virt, *virt_acpi, *pseries;
} CaptureSet;

static const CaptureSet sets[] = {
    {"QEMU 7.2", topology_capture_pc, topology_capture_q35_acpi, topology_capture_q35_native,
     topology_capture_virt, topology_capture_virt_acpi, topology_capture_pseries},
    {"QEMU 10.0", topology_capture_pc_10, topology_capture_q35_acpi_10,
     topology_capture_q35_native_10, topology_capture_virt_10, topology_capture_virt_acpi_10,
     topology_capture_pseries_10},
};
static const CaptureSet *set;

static int
group_setup_72(void **state)
{
    set = &sets[0];
    return 0;
}

static int
group_setup_10(void **state)
{
    set = &sets[1];
    return 0;
}

typedef struct {
    struct event_base *base;
    FakePeer *peer;
    QmpConn *conn;
    HotplugVm *vm;
    HotplugTopology *topo;
    gboolean done;
    GError *error;
    GPtrArray *outcomes; /* "DEVICE OUTCOME" per outcome/late event */
} Fixture;

static void
fixture_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Fixture *f = opaque;

    if (ev == HOTPLUG_OP_EV_OUTCOME || ev == HOTPLUG_OP_EV_LATE)
        g_ptr_array_add(f->outcomes,
                        g_strdup_printf("%s %s", hotplug_op_get_device(op),
                                        hotplug_outcome_name(hotplug_op_get_outcome(op))));
}

static Fixture *
fixture_new(const TopologyCapture *cap)
{
    static const HotplugVmListener l = {.op = fixture_op_cb};
    Fixture *f = g_new0(Fixture, 1);
    g_autoptr(GError) error = NULL;
    int fd = -1;

    f->base = event_base_new();
    f->peer = fake_peer_new(f->base, &fd);
    for (guint i = 0; cap[i].cmd; i++)
        fake_peer_auto_args(f->peer, cap[i].cmd, cap[i].args, cap[i].reply);
    fake_peer_greet(f->peer);
    f->conn = qmp_conn_new_fd(f->base, fd, NULL);
    if (!qmp_conn_wait_ready(f->conn, WAIT_MS, &error))
        fail_msg("not ready: %s", error->message);
    f->vm = hotplug_vm_new("vm1", f->conn, NULL);
    hotplug_vm_add_listener(f->vm, &l, f);
    f->outcomes = g_ptr_array_new_with_free_func(g_free);
    return f;
}

static void
fixture_free(Fixture *f)
{
    hotplug_vm_free(f->vm);
    hotplug_topology_free(f->topo);
    qmp_conn_close(f->conn);
    qmp_conn_unref(f->conn);
    fake_peer_free(f->peer);
    event_base_free(f->base);
    g_clear_error(&f->error);
    g_ptr_array_unref(f->outcomes);
    g_free(f);
}

static void
topo_cb(HotplugTopology *t, const GError *error, gpointer opaque)
{
    Fixture *f = opaque;

    f->topo = t;
    if (error)
        f->error = g_error_copy(error);
    f->done = TRUE;
}

static HotplugTopology *
query(Fixture *f)
{
    g_autoptr(GError) error = NULL;

    f->done = FALSE;
    assert_true(hotplug_topology_query(f->conn, topo_cb, f, &error));
    assert_true(qmp_loop_run_until(f->base, &f->done, WAIT_MS));
    if (!f->topo)
        fail_msg("no topology: %s", f->error ? f->error->message : "?");
    return f->topo;
}

/* The place on bus (slot for multi-slot buses), which must exist. */
static const HotplugPlace *
place(HotplugTopology *t, const char *bus, gint slot)
{
    const HotplugPlace *p = hotplug_topology_find(t, bus, slot);

    if (!p)
        fail_msg("no place %s slot %d", bus, slot);
    return p;
}

static void
test_pc(void **state)
{
    Fixture *f = fixture_new(set->pc);
    HotplugTopology *t = query(f);
    const HotplugPlace *p;
    guint root = 0, bridge = 0;

    assert_int_equal(hotplug_topology_get_machine(t), HOTPLUG_MACHINE_PC);
    for (guint i = 0; i < hotplug_topology_get_places(t)->len; i++) {
        p = hotplug_topology_get_places(t)->pdata[i];
        root += g_str_equal(p->kind, "root-bus");
        bridge += g_str_equal(p->kind, "pci-bridge");
        assert_int_equal(p->mechanism, HOTPLUG_MECH_ACPI);
    }
    assert_int_equal(root, 32);
    assert_int_equal(bridge, 32);
    p = place(t, "pci.0", 0);
    assert_string_equal(p->occupant, "built-in: Host bridge");
    p = place(t, "br1", 3);
    assert_string_equal(p->occupant, "nic1");
    assert_string_equal(p->port, "br1");
    assert_int_equal(hotplug_topology_device_mechanism(t, "nic0"), HOTPLUG_MECH_ACPI);
    assert_int_equal(hotplug_topology_device_mechanism(t, "nic1"), HOTPLUG_MECH_ACPI);
    /* nic0 and br1 sit on the root bus, named by their ids */
    {
        gboolean nic0 = FALSE, br1 = FALSE;
        for (guint s = 0; s < 32; s++) {
            p = place(t, "pci.0", s);
            nic0 |= g_strcmp0(p->occupant, "nic0") == 0;
            br1 |= g_strcmp0(p->occupant, "br1") == 0;
        }
        assert_true(nic0 && br1);
    }
    fixture_free(f);
}

static void
test_q35_acpi(void **state)
{
    Fixture *f = fixture_new(set->q35_acpi);
    HotplugTopology *t = query(f);
    const HotplugPlace *p;
    GPtrArray *places = hotplug_topology_get_places(t);

    assert_int_equal(hotplug_topology_get_machine(t), HOTPLUG_MACHINE_Q35);
    /* three named root ports and an anonymous one; pcie.0 takes no hotplug */
    assert_int_equal(places->len, 4);
    for (guint i = 0; i < places->len; i++) {
        p = places->pdata[i];
        assert_string_equal(p->kind, "pcie-root-port");
        assert_int_equal(p->mechanism, HOTPLUG_MECH_ACPI);
    }
    /* placement order: by address on pcie.0 */
    assert_string_equal(((HotplugPlace *)places->pdata[0])->bus, "rp1");
    assert_string_equal(((HotplugPlace *)places->pdata[1])->bus, "rp2");
    assert_string_equal(((HotplugPlace *)places->pdata[2])->bus, "rp3");
    assert_string_equal(place(t, "rp1", -1)->occupant, "nic0");
    assert_null(place(t, "rp2", -1)->occupant);
    assert_int_equal(hotplug_topology_device_mechanism(t, "nic0"), HOTPLUG_MECH_ACPI);
    assert_int_equal(hotplug_topology_device_mechanism(t, "rp1"), HOTPLUG_MECH_NONE);
    fixture_free(f);
}

static void
test_q35_native(void **state)
{
    Fixture *f = fixture_new(set->q35_native);
    HotplugTopology *t = query(f);
    const HotplugPlace *p;

    assert_int_equal(hotplug_topology_get_machine(t), HOTPLUG_MACHINE_Q35);
    p = place(t, "rp1", -1);
    assert_int_equal(p->mechanism, HOTPLUG_MECH_PCIE_NATIVE);
    assert_null(p->occupant);
    p = place(t, "rp2", -1);
    assert_int_equal(p->mechanism, HOTPLUG_MECH_PCIE_NATIVE);
    assert_string_equal(p->occupant, "nic0");
    p = place(t, "rp3", -1);
    assert_int_equal(p->mechanism, HOTPLUG_MECH_NONE);
    assert_non_null(strstr(p->why, "hotplug=off"));
    assert_int_equal(hotplug_topology_device_mechanism(t, "nic0"), HOTPLUG_MECH_PCIE_NATIVE);
    fixture_free(f);
}

static void
test_virt(void **state)
{
    Fixture *f = fixture_new(set->virt);
    HotplugTopology *t = query(f);
    GPtrArray *places = hotplug_topology_get_places(t);

    assert_int_equal(hotplug_topology_get_machine(t), HOTPLUG_MACHINE_VIRT);
    assert_int_equal(places->len, 2);
    assert_int_equal(place(t, "rp1", -1)->mechanism, HOTPLUG_MECH_PCIE_NATIVE);
    assert_null(place(t, "rp1", -1)->occupant);
    assert_string_equal(place(t, "rp2", -1)->occupant, "nic0");
    assert_int_equal(hotplug_topology_device_mechanism(t, "nic0"), HOTPLUG_MECH_PCIE_NATIVE);
    fixture_free(f);
}

/* virt hot-plugs memory only with its ACPI GED device */
static void
test_virt_memory_hotplug(void **state)
{
    Fixture *f = fixture_new(set->virt);
    const char *why = NULL;

    assert_false(hotplug_topology_memory_hotplug(query(f), &why));
    assert_non_null(strstr(why, "no ACPI GED device"));
    fixture_free(f);
    f = fixture_new(set->virt_acpi);
    assert_true(hotplug_topology_memory_hotplug(query(f), &why));
    assert_int_equal(place(f->topo, "rp1", -1)->mechanism, HOTPLUG_MECH_PCIE_NATIVE);
    fixture_free(f);
    f = fixture_new(set->q35_native);
    assert_true(hotplug_topology_memory_hotplug(query(f), NULL));
    fixture_free(f);
}

static void
test_pseries(void **state)
{
    Fixture *f = fixture_new(set->pseries);
    HotplugTopology *t = query(f);

    assert_int_equal(hotplug_topology_get_machine(t), HOTPLUG_MACHINE_PSERIES);
    assert_int_equal(hotplug_topology_get_places(t)->len, 32);
    assert_int_equal(place(t, "pci.0", 0)->mechanism, HOTPLUG_MECH_SPAPR);
    assert_string_equal(place(t, "pci.0", 0)->occupant, "nic0");
    assert_int_equal(hotplug_topology_device_mechanism(t, "nic0"), HOTPLUG_MECH_SPAPR);
    fixture_free(f);
}

/* ---- placement ---------------------------------------------------------- */

typedef struct {
    gboolean done;
    char *bus;
    guint slot;
    GError *error;
} PlaceWait;

static void
place_cb(HotplugVm *vm, HotplugPlacementResult *r, const GError *error, gpointer opaque)
{
    PlaceWait *w = opaque;

    if (r) {
        w->bus = g_strdup(r->bus);
        w->slot = r->slot;
        hotplug_placement_result_free(r);
    }
    if (error)
        w->error = g_error_copy(error);
    w->done = TRUE;
}

static void
place_wait_clear(PlaceWait *w)
{
    g_free(w->bus);
    g_clear_error(&w->error);
    memset(w, 0, sizeof(*w));
}

static void
test_place_concurrent(void **state)
{
    Fixture *f = fixture_new(set->q35_acpi);
    PlaceWait a = {0}, b = {0}, c = {0};
    g_autoptr(GError) error = NULL;

    /* three at once: rp2, rp3, then nothing (rp1 holds nic0; the
     * anonymous port has no bus name of its own) */
    assert_true(hotplug_vm_place(f->vm, "d1", NULL, place_cb, &a, &error));
    assert_true(hotplug_vm_place(f->vm, "d2", NULL, place_cb, &b, &error));
    assert_true(hotplug_vm_place(f->vm, "d3", NULL, place_cb, &c, &error));
    assert_true(qmp_loop_run_until(f->base, &c.done, WAIT_MS));
    assert_true(a.done && b.done);
    assert_string_equal(a.bus, "rp2");
    assert_string_equal(b.bus, "rp3");
    assert_null(c.bus);
    assert_true(g_error_matches(c.error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED));
    assert_non_null(strstr(c.error->message, "-device pcie-root-port"));
    /* d1's plug failed before it went out: its place is free again */
    hotplug_vm_release_place(f->vm, "d1");
    place_wait_clear(&c);
    assert_true(hotplug_vm_place(f->vm, "d3", NULL, place_cb, &c, &error));
    assert_true(qmp_loop_run_until(f->base, &c.done, WAIT_MS));
    assert_string_equal(c.bus, "rp2");
    place_wait_clear(&a);
    place_wait_clear(&b);
    place_wait_clear(&c);
    fixture_free(f);
}

static void
test_place_by_hand(void **state)
{
    Fixture *f = fixture_new(set->q35_native);
    PlaceWait w = {0};
    g_autoptr(GError) error = NULL;
    struct {
        const char *bus;
        gint code; /* -1: placed; -2: not placed, left to QEMU */
        const char *says;
    } cases[] = {
        {"rp1", -1, NULL},
        {"rp2", HOTPLUG_ERROR_BUSY, "occupied by nic0"},
        {"rp3", HOTPLUG_ERROR_UNSUPPORTED, "hotplug=off"},
        {"pcie.0", HOTPLUG_ERROR_UNSUPPORTED, "takes no hotplug"},
        /* a USB controller's bus, or a name QEMU will refuse itself */
        {"usbc.0", -2, NULL},
        {"nosuch", -2, NULL},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        assert_true(hotplug_vm_place(f->vm, "d1", cases[i].bus, place_cb, &w, &error));
        assert_true(qmp_loop_run_until(f->base, &w.done, WAIT_MS));
        if (cases[i].code == -1) {
            assert_string_equal(w.bus, cases[i].bus);
            assert_int_equal(w.slot, 0);
            hotplug_vm_release_place(f->vm, "d1");
        } else if (cases[i].code == -2) {
            assert_null(w.bus);
            if (w.error)
                fail_msg("bus %s: %s", cases[i].bus, w.error->message);
        } else {
            assert_null(w.bus);
            if (!g_error_matches(w.error, HOTPLUG_ERROR, cases[i].code) ||
                !strstr(w.error->message, cases[i].says))
                fail_msg("bus %s: %s", cases[i].bus, w.error ? w.error->message : "no error");
        }
        place_wait_clear(&w);
    }
    fixture_free(f);
}

/* ---- deadlines by mechanism, native PCIe busy answers --------------------- */

static HotplugOp *
unplug(Fixture *f, const char *device, guint retries)
{
    HotplugUnplugOptions o = {.retries = retries};
    g_autoptr(GError) error = NULL;
    HotplugOp *op = hotplug_vm_unplug(f->vm, HOTPLUG_KIND_DEVICE, device, &o, NULL, &error);

    if (!op)
        fail_msg("unplug: %s", error->message);
    return op;
}

static void
run_until_waiting(Fixture *f, HotplugOp *op)
{
    for (guint i = 0; i < 250 && hotplug_op_get_state(op) == HOTPLUG_OP_SENDING; i++)
        qmp_loop_run_until(f->base, &f->done, 20);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_WAITING);
    /* let the topology answer move the deadline */
    qmp_loop_run_until(f->base, &f->done, 300);
}

static void
test_deadline_by_mechanism(void **state)
{
    struct {
        const TopologyCapture *cap;
        const char *device;
        guint ms;
    } cases[] = {
        {set->q35_native, "nic0", 15000},
        {set->virt, "nic0", 15000},
        {set->q35_acpi, "nic0", 5000},
        {set->pc, "nic1", 5000},
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        Fixture *f = fixture_new(cases[i].cap);
        g_autoptr(HotplugOp) op = NULL;

        g_autofree char *args = g_strdup_printf("{\"id\": \"%s\"}", cases[i].device);

        fake_peer_expect(f->peer, "device_del", args);
        op = unplug(f, cases[i].device, 0);
        run_until_waiting(f, op);
        assert_int_equal(hotplug_op_get_timeout_ms(op), cases[i].ms);
        /* armed for the whole of it (the 300 ms of settling aside) */
        assert_true(hotplug_op_get_remaining_ms(op) > (gint64)cases[i].ms - 1500);
        assert_true(hotplug_op_get_remaining_ms(op) <= (gint64)cases[i].ms);
        g_clear_pointer(&op, hotplug_op_unref); /* its deadline is on the fixture's loop */
        fixture_free(f);
    }
}

/* With the machine known and the device not (yet) in a topology, the
 * unplug goes out first and the topology is asked after it: QEMU answers
 * in order, and device_del must not wait behind 5 + 2 per device queries.
 * The answer still moves the deadline to the slot's mechanism. */
static void
test_topology_asked_after_device_del(void **state)
{
    const TopologyCapture *caps[] = {set->q35_native, set->virt, set->q35_acpi};
    const guint ms[] = {15000, 15000, 5000};

    for (guint i = 0; i < G_N_ELEMENTS(caps); i++) {
        Fixture *f = fixture_new(caps[i]);
        g_autoptr(HotplugOp) op = NULL;
        guint before, n_pci = 0;

        /* hotplug_vm_new asked the machine type: let it be answered */
        for (guint k = 0; k < 50 && fake_peer_n_unanswered(f->peer); k++)
            qmp_loop_run_until(f->base, &f->done, 10);
        qmp_loop_run_until(f->base, &f->done, 50);
        before = fake_peer_n_received(f->peer);
        fake_peer_expect(f->peer, "device_del", "{\"id\": \"nic0\"}");
        op = unplug(f, "nic0", 0);
        run_until_waiting(f, op);
        assert_true(fake_peer_n_received(f->peer) > before + 1);
        assert_string_equal(fake_peer_received_command(f->peer, before), "device_del");
        for (guint k = before + 1; k < fake_peer_n_received(f->peer); k++)
            n_pci += g_str_equal(fake_peer_received_command(f->peer, k), "query-pci");
        assert_int_equal(n_pci, 1);
        assert_int_equal(hotplug_op_get_timeout_ms(op), ms[i]);
        g_clear_pointer(&op, hotplug_op_unref);
        fixture_free(f);
    }
}

/* The model: a device noted since the topology was asked is known, on
 * its place's mechanism, or on none for a bus that is no place (USB);
 * forgotten, it is unknown again. */
static void
test_note_device(void **state)
{
    Fixture *f = fixture_new(set->q35_native);
    HotplugTopology *t = query(f);

    assert_false(hotplug_topology_knows_device(t, "hp1"));
    hotplug_topology_note_device(t, "hp1", "rp1");
    assert_true(hotplug_topology_knows_device(t, "hp1"));
    assert_int_equal(hotplug_topology_device_mechanism(t, "hp1"), HOTPLUG_MECH_PCIE_NATIVE);
    hotplug_topology_note_device(t, "kbd1", "xhci.0");
    assert_true(hotplug_topology_knows_device(t, "kbd1"));
    assert_int_equal(hotplug_topology_device_mechanism(t, "kbd1"), HOTPLUG_MECH_NONE);
    hotplug_topology_note_device(t, "hp3", "rp3"); /* hotplug=off */
    assert_int_equal(hotplug_topology_device_mechanism(t, "hp3"), HOTPLUG_MECH_NONE);
    hotplug_topology_forget_device(t, "hp1");
    assert_false(hotplug_topology_knows_device(t, "hp1"));
    assert_int_equal(hotplug_topology_device_mechanism(t, "hp1"), HOTPLUG_MECH_NONE);
    assert_true(hotplug_topology_knows_device(t, "nic0")); /* QEMU's answer had it */
    fixture_free(f);
}

static guint
received_since(Fixture *f, guint from, const char *cmd)
{
    guint n = 0;

    for (guint k = from; k < fake_peer_n_received(f->peer); k++)
        n += g_str_equal(fake_peer_received_command(f->peer, k), cmd);
    return n;
}

/* Plug id with device_add on bus (through hotplug_vm_plug), until added. */
static void
plug_on(Fixture *f, const char *driver, const char *id, const char *bus)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autofree char *json =
        g_strdup_printf("{\"driver\": \"%s\", \"id\": \"%s\", \"bus\": \"%s\"}", driver, id, bus);
    GPtrArray *steps = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_step_free);
    guint had = f->outcomes->len;

    fake_peer_expect(f->peer, "device_add", json);
    g_ptr_array_add(steps, hotplug_step_new("device_add", json_from_string(json, NULL), NULL, NULL));
    op = hotplug_vm_plug(f->vm, HOTPLUG_KIND_DEVICE, id, steps, &error);
    if (!op)
        fail_msg("plug %s: %s", id, error->message);
    for (guint k = 0; k < 250 && f->outcomes->len == had; k++)
        qmp_loop_run_until(f->base, &f->done, 20);
    assert_int_equal(f->outcomes->len, had + 1);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
}

/* A device plugged here is noted in the cached topology: its unplug asks
 * QEMU nothing but device_del, and still gets its mechanism's deadline.
 * Once QEMU says it is gone, it is forgotten. */
static void
test_unplug_after_plug_asks_no_topology(void **state)
{
    const TopologyCapture *caps[] = {set->q35_native, set->virt};

    for (guint i = 0; i < G_N_ELEMENTS(caps); i++) {
        Fixture *f = fixture_new(caps[i]);
        g_autoptr(GError) error = NULL;
        PlaceWait w = {0};
        guint before;

        /* placing hp1 asks the topology, which the VM keeps */
        assert_true(hotplug_vm_place(f->vm, "hp1", "rp1", place_cb, &w, &error));
        assert_true(qmp_loop_run_until(f->base, &w.done, WAIT_MS));
        assert_string_equal(w.bus, "rp1");
        place_wait_clear(&w);
        plug_on(f, "virtio-net-pci", "hp1", "rp1");
        plug_on(f, "usb-kbd", "kbd1", "xhci.0");

        for (guint d = 0; d < 2; d++) {
            const char *dev = d == 0 ? "hp1" : "kbd1";
            g_autofree char *args = g_strdup_printf("{\"id\": \"%s\"}", dev);
            g_autoptr(HotplugOp) op = NULL;

            before = fake_peer_n_received(f->peer);
            fake_peer_expect(f->peer, "device_del", args);
            op = unplug(f, dev, 0);
            run_until_waiting(f, op);
            assert_int_equal(fake_peer_n_received(f->peer), before + 1);
            assert_int_equal(received_since(f, before, "device_del"), 1);
            /* native PCIe on rp1; a USB device has no mechanism: the default */
            assert_int_equal(hotplug_op_get_timeout_ms(op), d == 0 ? 15000 : 5000);
            fake_peer_event(f->peer, "DEVICE_DELETED",
                            d == 0 ? "{\"device\": \"hp1\", \"path\": \"/machine/peripheral/hp1\"}"
                                   : "{\"device\": \"kbd1\", \"path\": \"/machine/peripheral/kbd1\"}");
            for (guint k = 0; k < 100 && hotplug_op_get_state(op) != HOTPLUG_OP_DONE; k++)
                qmp_loop_run_until(f->base, &f->done, 10);
            assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
        }
        /* gone: a device of that id later is not taken for the old one */
        before = fake_peer_n_received(f->peer);
        {
            g_autoptr(HotplugOp) op = NULL;

            fake_peer_expect(f->peer, "device_del", "{\"id\": \"hp1\"}");
            op = unplug(f, "hp1", 0);
            run_until_waiting(f, op);
            assert_string_equal(fake_peer_received_command(f->peer, before), "device_del");
            assert_int_equal(received_since(f, before, "query-pci"), 1);
        }
        if (!fake_peer_all_done(f->peer))
            fail_msg("%s", fake_peer_describe_failures(f->peer));
        fixture_free(f);
    }
}

static void
test_native_blinking_is_pending(void **state)
{
    Fixture *f = fixture_new(set->q35_native);
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *s;

    /* someone pressed already: QEMU refuses the press during the blink */
    s = fake_peer_expect(f->peer, "device_del", "{\"id\": \"nic0\"}");
    fake_peer_step_error(s, "GenericError", "slot 0 is busy (power indicator blinking)");
    op = unplug(f, "nic0", 2);
    run_until_waiting(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NONE);
    assert_int_equal(hotplug_op_get_attempts(op), 1);
    assert_non_null(strstr(hotplug_op_get_detail(op), "blinking"));
    /* the guest removes it when the blink is over */
    fake_peer_event(f->peer, "DEVICE_DELETED",
                    "{\"device\": \"nic0\", \"path\": \"/machine/peripheral/nic0\"}");
    for (guint i = 0; i < 100 && !hotplug_op_is_final(op); i++)
        qmp_loop_run_until(f->base, &f->done, 20);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(f->outcomes->len, 1);
    assert_string_equal(f->outcomes->pdata[0], "nic0 deleted");
    assert_true(fake_peer_all_done(f->peer));
    g_clear_pointer(&op, hotplug_op_unref); /* its deadline is on the fixture's loop */
    fixture_free(f);
}

static void
test_native_retry_in_progress_presses_later(void **state)
{
    Fixture *f = fixture_new(set->q35_native);
    HotplugUnplugOptions o = {.timeout_ms = 1500, .retries = 1};
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GError) error = NULL;
    FakeStep *s;

    /* attempt 1 is accepted and the guest does nothing in time; the
     * retry's press is refused while QEMU's window for the first one
     * lasts; a later press goes through and the guest removes it */
    fake_peer_expect(f->peer, "device_del", "{\"id\": \"nic0\"}");
    s = fake_peer_expect(f->peer, "device_del", "{\"id\": \"nic0\"}");
    fake_peer_step_error(s, "GenericError", "Device nic0 is already in the process of unplug");
    s = fake_peer_expect(f->peer, "device_del", "{\"id\": \"nic0\"}");
    fake_peer_step_event_after(s, "DEVICE_DELETED",
                               "{\"device\": \"nic0\", \"path\": \"/machine/peripheral/nic0\"}");
    op = hotplug_vm_unplug(f->vm, HOTPLUG_KIND_DEVICE, "nic0", &o, NULL, &error);
    assert_non_null(op);
    for (guint i = 0; i < 300 && !hotplug_op_is_final(op); i++)
        qmp_loop_run_until(f->base, &f->done, 20);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    /* the second press was part of attempt 2, not an attempt of its own */
    assert_int_equal(hotplug_op_get_attempts(op), 2);
    assert_int_equal(f->outcomes->len, 1);
    if (!fake_peer_all_done(f->peer))
        fail_msg("%s", fake_peer_describe_failures(f->peer));
    g_clear_pointer(&op, hotplug_op_unref); /* its deadline is on the fixture's loop */
    fixture_free(f);
}

static void
test_late_after_not_deleted(void **state)
{
    Fixture *f = fixture_new(set->q35_native);
    HotplugUnplugOptions o = {.timeout_ms = 200};
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GError) error = NULL;

    fake_peer_expect(f->peer, "device_del", "{\"id\": \"nic0\"}");
    /* the confirmation's qom-list gets QEMU's own answer: nic0 is there */
    op = hotplug_vm_unplug(f->vm, HOTPLUG_KIND_DEVICE, "nic0", &o, NULL, &error);
    assert_non_null(op);
    for (guint i = 0; i < 100 && !hotplug_op_is_final(op); i++)
        qmp_loop_run_until(f->base, &f->done, 20);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    fake_peer_event(f->peer, "DEVICE_DELETED",
                    "{\"device\": \"nic0\", \"path\": \"/machine/peripheral/nic0\"}");
    for (guint i = 0; i < 100 && f->outcomes->len < 2; i++)
        qmp_loop_run_until(f->base, &f->done, 20);
    assert_int_equal(f->outcomes->len, 2);
    assert_string_equal(f->outcomes->pdata[0], "nic0 not-deleted");
    assert_string_equal(f->outcomes->pdata[1], "nic0 deleted-late");
    g_clear_pointer(&op, hotplug_op_unref); /* its deadline is on the fixture's loop */
    fixture_free(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pc),
        cmocka_unit_test(test_q35_acpi),
        cmocka_unit_test(test_q35_native),
        cmocka_unit_test(test_virt),
        cmocka_unit_test(test_pseries),
        cmocka_unit_test(test_virt_memory_hotplug),
        cmocka_unit_test(test_place_concurrent),
        cmocka_unit_test(test_place_by_hand),
        cmocka_unit_test(test_deadline_by_mechanism),
        cmocka_unit_test(test_topology_asked_after_device_del),
        cmocka_unit_test(test_note_device),
        cmocka_unit_test(test_unplug_after_plug_asks_no_topology),
        cmocka_unit_test(test_native_blinking_is_pending),
        cmocka_unit_test(test_native_retry_in_progress_presses_later),
        cmocka_unit_test(test_late_after_not_deleted),
    };

    int failed = cmocka_run_group_tests_name("QEMU 7.2 answers", tests, group_setup_72, NULL);

    failed += cmocka_run_group_tests_name("QEMU 10.0 answers", tests, group_setup_10, NULL);
    return failed;
}
