/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One device plugged and unplugged with `hotplugctl --json` on a
 * pcie-root-port (bus= given) of each PCIe machine the product supports,
 * with its test guest booted:
 *
 *   aarch64 virt   native PCIe hotplug only: the guest waits 5 s after the
 *                  attention button, so removal takes ~6.3 s (--timeout 15)
 *   q35            ACPI PCI hotplug (QEMU's default): tens of ms
 *   q35 native     ICH9 ACPI hotplug off: native PCIe, like virt
 *
 * rp1 sits at 00:10.0 (tests/rig.h), so the device is 0000:01:00.0 in the
 * guest, which reports it on its console.  Each test starts its own QEMU;
 * teardown kills it. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "qmp-json.h"
#include "rig.h"

#define SEEN_MS 60000
#define NATIVE_WAIT_MS 5000 /* the guest's wait after the attention button */

static int
teardown(void **state)
{
    g_clear_pointer((RigVm **)state, rig_vm_free);
    return 0;
}

/* device add on rp1, the guest sees it; device del with --timeout
 * timeout_s: deleted, the guest saw it go.  The elapsed ms of the del. */
static gint64
plug_unplug_on_root_port(RigVm *vm, const char *driver, const char *timeout_s)
{
    const char *sock = rig_vm_qmp_path(vm);
    g_autoptr(RigCtl) add = NULL;
    g_autoptr(RigCtl) del = NULL;
    JsonObject *o;
    gint64 elapsed;

    add = rig_ctl("--json", "device", "add", sock, driver, "n1", "bus=rp1", NULL);
    rig_ctl_assert_exit(add, 0);
    o = rig_ctl_result(add);
    assert_string_equal(qmp_json_get_string(o, "device"), "n1");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_true(rig_vm_peripheral_has(vm, "n1"));
    {
        g_autoptr(JsonNode) bus = rig_vm_qmp(
            vm, "qom-get", "{\"path\": \"/machine/peripheral/n1\", \"property\": \"parent_bus\"}");
        const char *path = qmp_json_node_string(bus);

        /* QEMU put it below rp1 */
        if (!path || !strstr(path, "/rp1/"))
            fail_msg("n1's bus is %s, not rp1's", path ? path : "(none)");
    }
    /* the guest must have it to give it back */
    rig_vm_wait_console(vm, "HOTPLUG-GUEST: added pci 0000:01:00.0", SEEN_MS);

    del = rig_ctl("--json", "device", "del", sock, "n1", "--timeout", timeout_s, NULL);
    rig_ctl_assert_exit(del, 0);
    o = rig_ctl_result(del);
    assert_string_equal(qmp_json_get_string(o, "device"), "n1");
    assert_string_equal(qmp_json_get_string(o, "action"), "unplug");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    elapsed = qmp_json_get_int_default(o, "elapsed_ms", -1);
    assert_true(elapsed >= 0);
    assert_false(rig_vm_peripheral_has(vm, "n1"));
    rig_vm_wait_console(vm, "HOTPLUG-GUEST: removed pci 0000:01:00.0", SEEN_MS);
    return elapsed;
}

static void
test_virt_native(void **state)
{
    RigVmOptions opts = {.machine = RIG_MACHINE_VIRT, .guest = TRUE, .n_root_ports = 2};
    gint64 ms;
    RigVm *vm;

    vm = *state = rig_vm_start(&opts);
    ms = plug_unplug_on_root_port(vm, "virtio-net-pci", "15");
    print_message("# aarch64 virt, native PCIe: unplug %" G_GINT64_FORMAT " ms\n", ms);
    assert_true(ms >= NATIVE_WAIT_MS);
}

static void
test_q35_acpi(void **state)
{
    RigVmOptions opts = {.machine = RIG_MACHINE_Q35, .guest = TRUE, .n_root_ports = 2};
    gint64 ms;
    RigVm *vm;

    vm = *state = rig_vm_start(&opts);
    ms = plug_unplug_on_root_port(vm, "e1000e", "15");
    print_message("# q35, ACPI PCI hotplug: unplug %" G_GINT64_FORMAT " ms\n", ms);
    /* ACPI does not wait for the attention button's 5 s */
    assert_true(ms < NATIVE_WAIT_MS);
}

static void
test_q35_native(void **state)
{
    RigVmOptions opts = {.machine = RIG_MACHINE_Q35_NATIVE, .guest = TRUE, .n_root_ports = 2};
    gint64 ms;
    RigVm *vm;

    vm = *state = rig_vm_start(&opts);
    ms = plug_unplug_on_root_port(vm, "e1000e", "15");
    print_message("# q35, native PCIe hotplug: unplug %" G_GINT64_FORMAT " ms\n", ms);
    assert_true(ms >= NATIVE_WAIT_MS);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_teardown(fn, teardown)
    const struct CMUnitTest tests[] = {
        T(test_virt_native),
        T(test_q35_acpi),
        T(test_q35_native),
    };
#undef T

    if (g_getenv("HOTPLUG_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("HOTPLUG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
