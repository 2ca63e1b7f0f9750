/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hotplug engine against a real QEMU (x86 pc, TCG): one test per
 * outcome, driven through the real `hotplugctl` in direct mode (exit codes
 * and --json), and at the library level where direct mode cannot show it
 * (deleted-late, timings).  The test guest acts where a guest must (ACPI
 * PCI eject); the others run QEMU with -S and no guest.  Each test starts
 * its own QEMU; teardown kills it. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hotplug-vm.h"
#include "qmp-conn.h"
#include "qmp-json.h"
#include "rig.h"

#define REPLY_MS RIG_REPLY_MS
#define SEEN_MS 20000

typedef struct {
    RigVm *vm;
    /* library level */
    QmpConn *conn;
    HotplugVm *hvm;
    GPtrArray *trace;       /* "EVENT DEVICE OUTCOME ATTEMPTS" */
    GHashTable *deleted_us; /* device -> monotonic time of its DEVICE_DELETED */
    RigCtlRun *run;
} Fixture;

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->trace = g_ptr_array_new_with_free_func(g_free);
    f->deleted_us = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    if (f->hvm)
        hotplug_vm_free(f->hvm);
    if (f->conn) {
        qmp_conn_close(f->conn);
        qmp_conn_unref(f->conn);
    }
    /* QEMU goes first: a hotplugctl still waiting on it then ends */
    g_clear_pointer(&f->vm, rig_vm_free);
    rig_ctl_run_free(f->run);
    g_ptr_array_unref(f->trace);
    g_hash_table_unref(f->deleted_us);
    g_free(f);
    return 0;
}

static void
start_vm(Fixture *f, gboolean guest, const char *const *extra_args)
{
    RigVmOptions opts = {
        .machine = RIG_MACHINE_PC,
        .guest = guest,
        .extra_args = extra_args,
    };

    f->vm = rig_vm_start(&opts);
    rig_vm_spare(f->vm); /* its events from now on */
}

/* "DEVICE_DELETED PATH" of each DEVICE_DELETED the spare connection saw */
static GPtrArray *
deleted_events(Fixture *f)
{
    GPtrArray *evs = rig_vm_events(f->vm);
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < evs->len; i++) {
        RigEvent *e = evs->pdata[i];

        if (g_str_equal(e->name, "DEVICE_DELETED"))
            g_ptr_array_add(out, g_strdup_printf("%s %s", e->name,
                                                 qmp_json_get_string(e->data, "path") ?: "?"));
    }
    return out;
}

static guint
n_deleted_events(Fixture *f)
{
    g_autoptr(GPtrArray) evs = deleted_events(f);

    return evs->len;
}

/* A PCI device at slot (hex), hot-added from the spare connection; with a
 * guest, wait until the guest has seen it (it must, to eject it). */
static void
add_pci(Fixture *f, const char *driver, const char *id, guint slot, gboolean guest)
{
    g_autofree char *args = g_strdup_printf(
        "{\"driver\": \"%s\", \"id\": \"%s\", \"addr\": \"0x%x\"}", driver, id, slot);
    g_autofree char *needle = g_strdup_printf("added pci 0000:00:%02x.0", slot);

    rig_vm_qmp_ok(f->vm, "device_add", args);
    if (guest)
        rig_vm_wait_console(f->vm, needle, SEEN_MS);
}

/* hotplugctl ARGS... with exit code want; the test owns the result */
static RigCtl *
ctl_exit(int want, const char *const *args)
{
    RigCtl *r = rig_ctlv(args);

    rig_ctl_assert_exit(r, want);
    return r;
}

static void
assert_result(JsonObject *o, const char *device, const char *outcome)
{
    assert_string_equal(qmp_json_get_string(o, "device"), device);
    assert_string_equal(qmp_json_get_string(o, "outcome"), outcome);
    assert_non_null(qmp_json_get_string(o, "vm"));
    assert_true(json_object_has_member(o, "attempts"));
    assert_true(json_object_has_member(o, "elapsed_ms"));
}

/* ---- library level ---------------------------------------------------------- */

static void
vm_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Fixture *f = opaque;
    HotplugOutcome o = ev == HOTPLUG_OP_EV_ATTEMPT_RESULT ? hotplug_op_get_attempt_outcome(op)
                                                          : hotplug_op_get_outcome(op);

    g_ptr_array_add(f->trace, g_strdup_printf("%s %s %s %u", hotplug_op_event_name(ev),
                                              hotplug_op_get_device(op), hotplug_outcome_name(o),
                                              hotplug_op_get_attempts(op)));
}

static void
vm_qemu_event_cb(HotplugVm *vm, const QmpEvent *ev, HotplugOp *op, gpointer opaque)
{
    Fixture *f = opaque;
    const char *path = qmp_json_get_string(ev->data, "path");
    const char *device = qmp_json_get_string(ev->data, "device");
    gint64 *now;

    /* the device's own event, not a child's */
    if (!g_str_equal(ev->name, "DEVICE_DELETED") || !device || !path ||
        !g_str_has_prefix(path, "/machine/peripheral/") || strchr(path + 20, '/'))
        return;
    now = g_new(gint64, 1);
    *now = g_get_monotonic_time();
    g_hash_table_replace(f->deleted_us, g_strdup(device), now);
}

static void
open_vm(Fixture *f)
{
    static const HotplugVmListener l = {.op = vm_op_cb, .qemu_event = vm_qemu_event_cb};
    HotplugVmOptions opts = {.gone_on_close = TRUE};
    g_autoptr(GError) err = NULL;

    f->conn = qmp_conn_new(rig_vm_base(f->vm), rig_vm_qmp_path(f->vm), NULL);
    if (!qmp_conn_open(f->conn, &err) || !qmp_conn_wait_ready(f->conn, REPLY_MS, &err))
        fail_msg("QMP: %s", err->message);
    f->hvm = hotplug_vm_new("vm1", f->conn, &opts);
    hotplug_vm_add_listener(f->hvm, &l, f);
}

static HotplugOp *
lib_unplug(Fixture *f, const char *id, guint timeout_ms)
{
    HotplugUnplugOptions o = {.timeout_ms = timeout_ms};
    g_autoptr(GError) err = NULL;
    HotplugOp *op = hotplug_vm_unplug(f->hvm, HOTPLUG_KIND_DEVICE, id, &o, NULL, &err);

    if (!op)
        fail_msg("unplug %s: %s", id, err->message);
    return op;
}

static void
assert_trace(Fixture *f, ...)
{
    g_autoptr(GPtrArray) want = g_ptr_array_new();
    gboolean same;
    const char *s;
    va_list ap;

    va_start(ap, f);
    while ((s = va_arg(ap, const char *)))
        g_ptr_array_add(want, (gpointer)s);
    va_end(ap);
    same = want->len == f->trace->len;
    for (guint i = 0; same && i < want->len; i++)
        same = g_str_equal(want->pdata[i], f->trace->pdata[i]);
    if (!same) {
        g_autofree char *a = NULL, *b = NULL;
        g_ptr_array_add(want, NULL);
        g_ptr_array_add(f->trace, NULL);
        a = g_strjoinv("\n  ", (char **)want->pdata);
        b = g_strjoinv("\n  ", (char **)f->trace->pdata);
        fail_msg("trace differs\nwant:\n  %s\ngot:\n  %s", a, b);
    }
}

/* ---- one test per outcome ------------------------------------------------------- */

/* An e1000 the guest ejects: deleted, exit 0. */
static void
test_e1000_deleted(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    JsonObject *o;

    start_vm(f, TRUE, NULL);
    add_pci(f, "e1000", "nic1", 0x3, TRUE);
    {
        const char *a[] = {"--json", "device",    "del", rig_vm_qmp_path(f->vm),
                           "nic1",   "--timeout", "20",  NULL};
        r = ctl_exit(0, a);
    }
    o = rig_ctl_result(r);
    assert_result(o, "nic1", "deleted");
    assert_string_equal(qmp_json_get_string(o, "action"), "unplug");
    assert_string_equal(qmp_json_get_string(o, "vm"), rig_vm_qmp_path(f->vm));
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) < 20000);
    assert_false(json_object_has_member(o, "error"));
    print_message("# e1000 unplug with the guest: %" G_GINT64_FORMAT " ms\n",
                  qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_false(rig_vm_peripheral_has(f->vm, "nic1"));
    rig_vm_wait_console(f->vm, "removed pci 0000:00:03.0", SEEN_MS);
}

/* The guest paused: not-deleted, exit 5.  At the library level the
 * engine keeps tracking it and reports deleted-late once the guest runs. */
static void
test_e1000_paused_not_deleted_then_late(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autoptr(HotplugOp) op = NULL;
    JsonObject *o;
    gint64 t0;

    start_vm(f, TRUE, NULL);
    add_pci(f, "e1000", "nic1", 0x3, TRUE);
    rig_vm_qmp_ok(f->vm, "stop", NULL);
    {
        const char *a[] = {"--json", "device",    "del", rig_vm_qmp_path(f->vm),
                           "nic1",   "--timeout", "1",   NULL};
        r = ctl_exit(5, a);
    }
    o = rig_ctl_result(r);
    assert_result(o, "nic1", "not-deleted");
    assert_string_equal(qmp_json_get_string(o, "state"), "tracked");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) >= 1000);
    assert_true(rig_vm_peripheral_has(f->vm, "nic1"));

    /* library level: the same, then the guest runs again */
    open_vm(f);
    op = lib_unplug(f, "nic1", 1000);
    RIG_RUN_UNTIL(f->vm, hotplug_op_is_final(op), REPLY_MS);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_NOT_DELETED);
    assert_int_equal(hotplug_op_get_state(op), HOTPLUG_OP_TRACKED);
    print_message("# second device_del while paused: %s\n",
                  hotplug_op_get_detail(op) ? hotplug_op_get_detail(op) : "(no detail)");
    t0 = g_get_monotonic_time();
    rig_vm_qmp_ok(f->vm, "cont", NULL);
    RIG_RUN_UNTIL(f->vm, hotplug_op_get_state(op) == HOTPLUG_OP_DONE, SEEN_MS);
    print_message("# deleted-late %.0f ms after cont\n", (g_get_monotonic_time() - t0) / 1000.0);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED_LATE);
    assert_trace(f, "request nic1 pending 0", "attempt nic1 pending 1",
                 "outcome nic1 not-deleted 1", "late nic1 deleted-late 1", NULL);
    assert_false(rig_vm_peripheral_has(f->vm, "nic1"));
}

/* usb-kbd on qemu-xhci goes at once, no guest needed (VM paused with -S). */
static void
test_usb_kbd_synchronous(void **state)
{
    static const char *const xhci[] = {"-device", "qemu-xhci,id=xhci", NULL};
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    JsonObject *o;

    start_vm(f, FALSE, xhci);
    rig_vm_qmp_ok(f->vm, "device_add",
                  "{\"driver\": \"usb-kbd\", \"id\": \"kbd0\", \"bus\": \"xhci.0\"}");
    assert_true(rig_vm_peripheral_has(f->vm, "kbd0"));
    {
        const char *a[] = {"--json", "device",    "del", rig_vm_qmp_path(f->vm),
                           "kbd0",   "--timeout", "10",  NULL};
        r = ctl_exit(0, a);
    }
    o = rig_ctl_result(r);
    assert_result(o, "kbd0", "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) < 2000);
    assert_false(rig_vm_peripheral_has(f->vm, "kbd0"));
}

/* An id QEMU does not know: rejected, exit 3, QEMU's class and text. */
static void
test_unknown_id_rejected(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autoptr(RigCtl) human = NULL;
    JsonObject *o, *e;

    start_vm(f, FALSE, NULL);
    {
        const char *a[] = {"--json", "device", "del", rig_vm_qmp_path(f->vm), "nosuch", NULL};
        r = ctl_exit(3, a);
    }
    o = rig_ctl_result(r);
    assert_result(o, "nosuch", "rejected");
    e = qmp_json_get_object(o, "error");
    assert_non_null(e);
    assert_string_equal(qmp_json_get_string(e, "class"), "DeviceNotFound");
    assert_string_equal(qmp_json_get_string(e, "desc"), "Device 'nosuch' not found");
    /* and for people */
    {
        const char *a[] = {"device", "del", rig_vm_qmp_path(f->vm), "nosuch", NULL};
        human = ctl_exit(3, a);
    }
    if (!strstr(human->out, "rejected") || !strstr(human->out, "DeviceNotFound") ||
        !strstr(human->out, "Device 'nosuch' not found"))
        fail_msg("output lacks the outcome, class or text: %s", human->out);
}

/* QEMU killed while hotplugctl waits: vm-gone, exit 6. */
static void
test_qemu_killed_vm_gone(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    gint64 t0;

    start_vm(f, FALSE, NULL);
    add_pci(f, "e1000", "nic1", 0x3, FALSE); /* no guest: the eject never happens */
    t0 = g_get_monotonic_time();
    f->run = rig_ctl_start("--json", "device", "del", rig_vm_qmp_path(f->vm), "nic1", "--timeout",
                           "30", NULL);
    g_usleep(1500000);
    rig_vm_kill(f->vm);
    r = rig_ctl_wait(g_steal_pointer(&f->run), 30000);
    rig_ctl_assert_exit(r, 6);
    assert_result(rig_ctl_result(r), "nic1", "vm-gone");
    assert_true(g_get_monotonic_time() - t0 < 15 * G_USEC_PER_SEC);
}

/* virtio-net-pci: QEMU announces its virtio-backend child first; the
 * outcome is still deleted (once). */
static void
test_virtio_net_child_event_first(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autoptr(GPtrArray) evs = NULL;
    JsonObject *o;

    start_vm(f, TRUE, NULL);
    add_pci(f, "virtio-net-pci", "vnet0", 0x4, TRUE);
    {
        const char *a[] = {"--json", "device",    "del", rig_vm_qmp_path(f->vm),
                           "vnet0",  "--timeout", "20",  NULL};
        r = ctl_exit(0, a);
    }
    o = rig_ctl_result(r);
    assert_result(o, "vnet0", "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    /* what QEMU sent, as the spare connection saw it */
    RIG_RUN_UNTIL(f->vm, n_deleted_events(f) >= 2, REPLY_MS);
    evs = deleted_events(f);
    assert_int_equal(evs->len, 2);
    assert_string_equal(evs->pdata[0], "DEVICE_DELETED /machine/peripheral/vnet0/virtio-backend");
    assert_string_equal(evs->pdata[1], "DEVICE_DELETED /machine/peripheral/vnet0");
    assert_false(rig_vm_peripheral_has(f->vm, "vnet0"));
}

/* Paused guest, --timeout 1 --retry 3 --retry-interval 1; the test resumes
 * the guest after 1.5 s: a later attempt succeeds. */
static void
test_retry_succeeds_after_resume(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    JsonObject *o;

    start_vm(f, TRUE, NULL);
    add_pci(f, "e1000", "nic1", 0x3, TRUE);
    rig_vm_qmp_ok(f->vm, "stop", NULL);
    f->run = rig_ctl_start("--json", "device", "del", rig_vm_qmp_path(f->vm), "nic1", "--timeout",
                           "1", "--retry", "3", "--retry-interval", "1", NULL);
    g_usleep(1500000);
    rig_vm_qmp_ok(f->vm, "cont", NULL);
    r = rig_ctl_wait(g_steal_pointer(&f->run), 60000);
    rig_ctl_assert_exit(r, 0);
    o = rig_ctl_result(r);
    assert_result(o, "nic1", "deleted");
    print_message("# retry: deleted after %" G_GINT64_FORMAT " attempts, %" G_GINT64_FORMAT " ms\n",
                  qmp_json_get_int_default(o, "attempts", -1),
                  qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_true(qmp_json_get_int_default(o, "attempts", -1) >= 2);
    assert_int_equal(qmp_json_get_int_default(o, "max_attempts", -1), 4);
    assert_true(qmp_json_get_int_default(o, "elapsed_ms", -1) >= 1000);
    assert_false(rig_vm_peripheral_has(f->vm, "nic1"));
}

/* device add: bootindex=1 goes out as a number, bus as a string, addr as
 * QEMU's own text (slot 0x10, not 0x16), a bool property as a bool (PCI's
 * multifunction: every QEMU has it); an unknown property sends nothing. */
static void
test_device_add_props(void **state)
{
    Fixture *f = *state;
    g_autoptr(RigCtl) r = NULL;
    g_autoptr(RigCtl) r2 = NULL;
    g_autoptr(JsonNode) bootindex = NULL;
    g_autoptr(JsonNode) pci = NULL;
    g_auto(GStrv) lines = NULL;
    const char *add_line = NULL;
    gint64 slot = -1;
    JsonArray *buses, *devs;

    start_vm(f, FALSE, NULL);
    {
        const char *a[] = {
            "-v",    "-v",   "--json",      "device",    "add",       rig_vm_qmp_path(f->vm),
            "e1000", "nic9", "bootindex=1", "bus=pci.0", "addr=0x10", "multifunction=off",
            NULL};
        r = ctl_exit(0, a);
    }
    assert_result(rig_ctl_result(r), "nic9", "added");
    lines = g_strsplit(r->err, "\n", -1);
    for (guint i = 0; lines[i]; i++)
        if (strstr(lines[i], "\"execute\":\"device_add\""))
            add_line = lines[i];
    if (!add_line)
        fail_msg("no device_add in the QMP traffic (-v -v):\n%s", r->err);
    print_message("# %s\n", g_strstrip((char *)add_line));
    assert_non_null(strstr(add_line, "\"bootindex\":1"));
    assert_non_null(strstr(add_line, "\"bus\":\"pci.0\""));
    assert_non_null(strstr(add_line, "\"addr\":\"0x10\""));
    assert_non_null(strstr(add_line, "\"multifunction\":false"));
    bootindex = rig_vm_qmp(f->vm, "qom-get",
                           "{\"path\": \"/machine/peripheral/nic9\", \"property\": "
                           "\"bootindex\"}");
    assert_int_equal(json_node_get_int(bootindex), 1);
    pci = rig_vm_qmp(f->vm, "query-pci", NULL);
    buses = json_node_get_array(pci);
    devs = qmp_json_get_array(json_array_get_object_element(buses, 0), "devices");
    for (guint i = 0; devs && i < json_array_get_length(devs); i++) {
        JsonObject *d = json_array_get_object_element(devs, i);
        if (g_strcmp0(qmp_json_get_string(d, "qdev_id"), "nic9") == 0)
            slot = qmp_json_get_int_default(d, "slot", -1);
    }
    assert_int_equal(slot, 0x10);

    {
        const char *a[] = {"-v",    "-v",   "device",      "add",      rig_vm_qmp_path(f->vm),
                           "e1000", "nic8", "bootindex=2", "nosuch=1", NULL};
        r2 = ctl_exit(2, a);
    }
    assert_null(strstr(r2->err, "\"execute\":\"device_add\""));
    if (!strstr(r2->out, "nosuch") && !strstr(r2->err, "nosuch"))
        fail_msg("the unknown property is not named: %s%s", r2->out, r2->err);
    assert_false(rig_vm_peripheral_has(f->vm, "nic8"));
}

/* ---- measurements ------------------------------------------------------------- */

static int
cmp_gint64(gconstpointer a, gconstpointer b)
{
    gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
    return x < y ? -1 : x > y;
}

static gboolean
all_final(HotplugOp **ops, guint n)
{
    for (guint i = 0; i < n; i++)
        if (!hotplug_op_is_final(ops[i]))
            return FALSE;
    return TRUE;
}

/* device_del -> DEVICE_DELETED with the guest (median of 10), and four
 * unplugs sent together against one after another. */
static void
test_measure_latency_and_batching(void **state)
{
    Fixture *f = *state;
    g_autoptr(GArray) lat = g_array_new(FALSE, FALSE, sizeof(gint64));
    g_autoptr(GArray) outc = g_array_new(FALSE, FALSE, sizeof(gint64));
    HotplugOp *ops[4];
    gint64 t0, together_us, apart_us;

    start_vm(f, TRUE, NULL);
    open_vm(f);
    for (guint i = 0; i < 10; i++) {
        g_autofree char *id = g_strdup_printf("lat%u", i);
        g_autoptr(HotplugOp) op = NULL;
        gint64 *when, d;

        add_pci(f, "e1000", id, 0x5 + i, TRUE);
        t0 = g_get_monotonic_time();
        op = lib_unplug(f, id, 20000);
        RIG_RUN_UNTIL(f->vm, hotplug_op_is_final(op), REPLY_MS);
        assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
        d = g_get_monotonic_time() - t0;
        g_array_append_val(outc, d);
        /* QEMU sends DEVICE_DELETED when the device is finalized, which
         * can come after QOM dropped it: the VM's look at QOM (the settle
         * probe) may decide the outcome first.  The event must still come. */
        RIG_RUN_UNTIL(f->vm, g_hash_table_contains(f->deleted_us, id), REPLY_MS);
        when = g_hash_table_lookup(f->deleted_us, id);
        assert_non_null(when);
        d = *when - t0;
        g_array_append_val(lat, d);
    }
    g_array_sort(lat, cmp_gint64);
    g_array_sort(outc, cmp_gint64);
    print_message("# device_del -> DEVICE_DELETED with the guest, 10 e1000: median %.1f ms "
                  "(min %.1f, max %.1f); to the outcome: median %.1f ms\n",
                  (g_array_index(lat, gint64, 4) + g_array_index(lat, gint64, 5)) / 2000.0,
                  g_array_index(lat, gint64, 0) / 1000.0, g_array_index(lat, gint64, 9) / 1000.0,
                  (g_array_index(outc, gint64, 4) + g_array_index(outc, gint64, 5)) / 2000.0);

    /* four together */
    for (guint i = 0; i < 4; i++) {
        g_autofree char *id = g_strdup_printf("tog%u", i);
        add_pci(f, "e1000", id, 0x10 + i, TRUE);
    }
    t0 = g_get_monotonic_time();
    for (guint i = 0; i < 4; i++) {
        g_autofree char *id = g_strdup_printf("tog%u", i);
        ops[i] = lib_unplug(f, id, 20000);
    }
    RIG_RUN_UNTIL(f->vm, all_final(ops, 4), REPLY_MS);
    together_us = g_get_monotonic_time() - t0;
    for (guint i = 0; i < 4; i++) {
        assert_int_equal(hotplug_op_get_outcome(ops[i]), HOTPLUG_OUTCOME_DELETED);
        hotplug_op_unref(ops[i]);
    }

    /* four one after another */
    for (guint i = 0; i < 4; i++) {
        g_autofree char *id = g_strdup_printf("seq%u", i);
        add_pci(f, "e1000", id, 0x14 + i, TRUE);
    }
    t0 = g_get_monotonic_time();
    for (guint i = 0; i < 4; i++) {
        g_autofree char *id = g_strdup_printf("seq%u", i);
        g_autoptr(HotplugOp) op = lib_unplug(f, id, 20000);
        RIG_RUN_UNTIL(f->vm, hotplug_op_is_final(op), REPLY_MS);
        assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    }
    apart_us = g_get_monotonic_time() - t0;
    print_message("# 4 e1000 unplugs sent together: %.1f ms; one after another: %.1f ms\n",
                  together_us / 1000.0, apart_us / 1000.0);
    assert_true(together_us < apart_us);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_e1000_deleted),
        T(test_e1000_paused_not_deleted_then_late),
        T(test_usb_kbd_synchronous),
        T(test_unknown_id_rejected),
        T(test_qemu_killed_vm_gone),
        T(test_virtio_net_child_event_first),
        T(test_retry_succeeds_after_resume),
        T(test_device_add_props),
        T(test_measure_latency_and_batching),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
