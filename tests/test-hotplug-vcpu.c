/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vCPU and memory hotplug (hotplug-vcpu.c, hotplug-memory.c): parsing
 * query-hotpluggable-cpus, choosing entities, and the operations against
 * the scripted fake peer; and their service commands
 * (service-vcpu.c, service-memory.c) against a fake peer on a UNIX socket: argument
 * checks that send nothing, error classes, the replies ({"ops": [...]},
 * "hint"), a conflict refused before anything is sent, a VM removed while
 * its command waits for QEMU.  Replies are QEMU 7.2's own (x86 pc,
 * pseries). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib/gstdio.h>

#include "fake-peer.h"
#include "hotplug-memory.h"
#include "service.h"
#include "hotplug-vcpu.h"
#include "qmp-json.h"

/* x86 pc, -smp 1,maxcpus=4; QEMU lists the possible CPUs last first.  The
 * boot CPU is core 0; core 1 was hot-plugged as cpu-s0-c1-t0. */
#define X86_HOTPLUGGABLE                                                                           \
    "[{\"props\": {\"core-id\": 3, \"thread-id\": 0, \"node-id\": 0, \"socket-id\": 0}, "        \
    "\"vcpus-count\": 1, \"type\": \"qemu64-x86_64-cpu\"}, "                                       \
    "{\"props\": {\"core-id\": 2, \"thread-id\": 0, \"node-id\": 0, \"socket-id\": 0}, "          \
    "\"vcpus-count\": 1, \"type\": \"qemu64-x86_64-cpu\"}, "                                       \
    "{\"props\": {\"core-id\": 1, \"thread-id\": 0, \"node-id\": 0, \"socket-id\": 0}, "          \
    "\"vcpus-count\": 1, \"qom-path\": \"/machine/peripheral/cpu-s0-c1-t0\", "                    \
    "\"type\": \"qemu64-x86_64-cpu\"}, "                                                           \
    "{\"props\": {\"core-id\": 0, \"thread-id\": 0, \"node-id\": 0, \"socket-id\": 0}, "          \
    "\"vcpus-count\": 1, \"qom-path\": \"/machine/unattached/device[0]\", "                       \
    "\"type\": \"qemu64-x86_64-cpu\"}]"
#define X86_CPUS_FAST                                                                              \
    "[{\"thread-id\": 3906, \"props\": {\"core-id\": 0, \"thread-id\": 0, \"node-id\": 0, "       \
    "\"socket-id\": 0}, \"qom-path\": \"/machine/unattached/device[0]\", \"cpu-index\": 0, "      \
    "\"target\": \"x86_64\"}, "                                                                    \
    "{\"thread-id\": 6188, \"props\": {\"core-id\": 1, \"thread-id\": 0, \"node-id\": 0, "        \
    "\"socket-id\": 0}, \"qom-path\": \"/machine/peripheral/cpu-s0-c1-t0\", \"cpu-index\": 1, "   \
    "\"target\": \"x86_64\"}]"

/* pseries, -smp 2,threads=2,maxcpus=8: cores of two threads.  Core 2 was
 * hot-plugged as cpu-c2; its threads are children of the core. */
#define PPC_HOTPLUGGABLE                                                                           \
    "[{\"props\": {\"core-id\": 6, \"node-id\": 0}, \"vcpus-count\": 2, "                          \
    "\"type\": \"power9_v2.0-spapr-cpu-core\"}, "                                                  \
    "{\"props\": {\"core-id\": 4, \"node-id\": 0}, \"vcpus-count\": 2, "                           \
    "\"type\": \"power9_v2.0-spapr-cpu-core\"}, "                                                  \
    "{\"props\": {\"core-id\": 2, \"node-id\": 0}, \"vcpus-count\": 2, "                           \
    "\"qom-path\": \"/machine/peripheral/cpu-c2\", \"type\": \"power9_v2.0-spapr-cpu-core\"}, "    \
    "{\"props\": {\"core-id\": 0, \"node-id\": 0}, \"vcpus-count\": 2, "                           \
    "\"qom-path\": \"/machine/unattached/device[1]\", \"type\": \"power9_v2.0-spapr-cpu-core\"}]"
#define PPC_CPUS_FAST                                                                              \
    "[{\"thread-id\": 100, \"props\": {\"core-id\": 0, \"node-id\": 0}, "                          \
    "\"qom-path\": \"/machine/unattached/device[1]/thread[0]\", \"cpu-index\": 0, "               \
    "\"target\": \"ppc64\"}, "                                                                     \
    "{\"thread-id\": 101, \"props\": {\"core-id\": 0, \"node-id\": 0}, "                           \
    "\"qom-path\": \"/machine/unattached/device[1]/thread[1]\", \"cpu-index\": 1, "               \
    "\"target\": \"ppc64\"}, "                                                                     \
    "{\"thread-id\": 203, \"props\": {\"core-id\": 2, \"node-id\": 0}, "                           \
    "\"qom-path\": \"/machine/peripheral/cpu-c2/thread[1]\", \"cpu-index\": 3, "                  \
    "\"target\": \"ppc64\"}, "                                                                     \
    "{\"thread-id\": 202, \"props\": {\"core-id\": 2, \"node-id\": 0}, "                           \
    "\"qom-path\": \"/machine/peripheral/cpu-c2/thread[0]\", \"cpu-index\": 2, "                  \
    "\"target\": \"ppc64\"}]"

/* x86 with two NUMA nodes (-numa node,cpus=0-1 -numa node,cpus=2-3), all
 * but the boot CPU free; one slot carries a prop this code does not know. */
#define NUMA_HOTPLUGGABLE                                                                          \
    "[{\"props\": {\"core-id\": 3, \"thread-id\": 0, \"node-id\": 1, \"socket-id\": 0, "          \
    "\"x-future-id\": 7}, \"vcpus-count\": 1, \"type\": \"qemu64-x86_64-cpu\"}, "                  \
    "{\"props\": {\"core-id\": 2, \"thread-id\": 0, \"node-id\": 1, \"socket-id\": 0}, "          \
    "\"vcpus-count\": 1, \"type\": \"qemu64-x86_64-cpu\"}, "                                       \
    "{\"props\": {\"core-id\": 1, \"thread-id\": 0, \"node-id\": 0, \"socket-id\": 0}, "          \
    "\"vcpus-count\": 1, \"type\": \"qemu64-x86_64-cpu\"}, "                                       \
    "{\"props\": {\"core-id\": 0, \"thread-id\": 0, \"node-id\": 0, \"socket-id\": 0}, "          \
    "\"vcpus-count\": 1, \"qom-path\": \"/machine/unattached/device[0]\", "                       \
    "\"type\": \"qemu64-x86_64-cpu\"}]"

static JsonNode *
parse(const char *json)
{
    g_autoptr(GError) error = NULL;
    JsonNode *n = json_from_string(json, &error);

    assert_null(error);
    assert_non_null(n);
    return n;
}

static HotplugCpuSlots *
slots_from(const char *hotpluggable, const char *cpus_fast)
{
    g_autoptr(JsonNode) h = parse(hotpluggable);
    g_autoptr(JsonNode) c = cpus_fast ? parse(cpus_fast) : NULL;
    g_autoptr(GError) error = NULL;
    HotplugCpuSlots *s = hotplug_cpu_slots_new(h, c, &error);

    assert_null(error);
    assert_non_null(s);
    return s;
}

static void
assert_error(const GError *error, gint code, const char *needle)
{
    assert_non_null(error);
    if (!strstr(error->message, needle))
        fail_msg("error \"%s\" lacks \"%s\"", error->message, needle);
    assert_int_equal(error->domain, HOTPLUG_ERROR);
    assert_int_equal(error->code, code);
}

/* ---- parsing --------------------------------------------------------- */

static void
test_parse_x86(void **state)
{
    g_autoptr(HotplugCpuSlots) s = slots_from(X86_HOTPLUGGABLE, X86_CPUS_FAST);
    const HotplugCpuEntity *e;
    const gint64 *tids;
    guint n;

    assert_int_equal(hotplug_cpu_slots_n_entities(s), 4);
    assert_int_equal(hotplug_cpu_slots_present_vcpus(s), 2);
    assert_int_equal(hotplug_cpu_slots_max_vcpus(s), 4);
    for (guint i = 0; i < 4; i++) {
        e = hotplug_cpu_slots_entity(s, i);
        assert_int_equal(hotplug_cpu_entity_index(e), i);
        assert_int_equal(hotplug_cpu_entity_first_vcpu(e), i);
        assert_int_equal(hotplug_cpu_entity_vcpus_count(e), 1);
        assert_int_equal(hotplug_cpu_entity_prop(e, "core-id"), i);
        assert_int_equal(hotplug_cpu_entity_prop(e, "die-id"), -1);
        assert_string_equal(hotplug_cpu_entity_type(e), "qemu64-x86_64-cpu");
        assert_ptr_equal(hotplug_cpu_slots_find_vcpu(s, i), e);
    }
    assert_null(hotplug_cpu_slots_find_vcpu(s, 4));

    e = hotplug_cpu_slots_entity(s, 0);
    assert_true(hotplug_cpu_entity_present(e));
    assert_true(hotplug_cpu_entity_is_boot(e));
    assert_null(hotplug_cpu_entity_device_id(e));
    tids = hotplug_cpu_entity_thread_ids(e, &n);
    assert_int_equal(n, 1);
    assert_int_equal(tids[0], 3906);

    e = hotplug_cpu_slots_entity(s, 1);
    assert_true(hotplug_cpu_entity_present(e));
    assert_false(hotplug_cpu_entity_is_boot(e));
    assert_string_equal(hotplug_cpu_entity_device_id(e), "cpu-s0-c1-t0");
    assert_string_equal(hotplug_cpu_entity_qom_path(e), "/machine/peripheral/cpu-s0-c1-t0");
    assert_int_equal(hotplug_cpu_entity_thread_ids(e, &n)[0], 6188);
    assert_ptr_equal(hotplug_cpu_slots_find_device(s, "cpu-s0-c1-t0"), e);

    e = hotplug_cpu_slots_entity(s, 3);
    assert_false(hotplug_cpu_entity_present(e));
    assert_null(hotplug_cpu_entity_qom_path(e));
    assert_string_equal(hotplug_cpu_entity_device_id(e), "cpu-s0-c3-t0");
    assert_int_equal(hotplug_cpu_entity_thread_ids(e, &n)[0], -1);
}

static void
test_parse_pseries_cores(void **state)
{
    g_autoptr(HotplugCpuSlots) s = slots_from(PPC_HOTPLUGGABLE, PPC_CPUS_FAST);
    const HotplugCpuEntity *e;
    const gint64 *tids;
    guint n;

    assert_int_equal(hotplug_cpu_slots_n_entities(s), 4);
    assert_int_equal(hotplug_cpu_slots_present_vcpus(s), 4);
    assert_int_equal(hotplug_cpu_slots_max_vcpus(s), 8);
    e = hotplug_cpu_slots_entity(s, 0);
    assert_true(hotplug_cpu_entity_is_boot(e));
    tids = hotplug_cpu_entity_thread_ids(e, &n);
    assert_int_equal(n, 2);
    assert_int_equal(tids[0], 100);
    assert_int_equal(tids[1], 101);
    e = hotplug_cpu_slots_entity(s, 1);
    assert_int_equal(hotplug_cpu_entity_first_vcpu(e), 2);
    assert_int_equal(hotplug_cpu_entity_vcpus_count(e), 2);
    assert_string_equal(hotplug_cpu_entity_device_id(e), "cpu-c2");
    /* threads are placed by cpu-index, whatever order QEMU lists them in */
    tids = hotplug_cpu_entity_thread_ids(e, &n);
    assert_int_equal(tids[0], 202);
    assert_int_equal(tids[1], 203);
    assert_ptr_equal(hotplug_cpu_slots_find_vcpu(s, 3), e);
    assert_ptr_equal(hotplug_cpu_slots_find_vcpu(s, 7), hotplug_cpu_slots_entity(s, 3));
    assert_string_equal(hotplug_cpu_entity_device_id(hotplug_cpu_slots_entity(s, 3)), "cpu-c6");
}

static void
test_parse_errors(void **state)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) empty = parse("[]");
    g_autoptr(JsonNode) obj = parse("{}");
    g_autoptr(JsonNode) bad = parse("[{\"props\": {}, \"vcpus-count\": 1}]");
    g_autoptr(JsonNode) badcount =
        parse("[{\"props\": {}, \"type\": \"x\", \"vcpus-count\": \"two\"}]");
    g_autoptr(HotplugCpuSlots) s = NULL;

    assert_null(hotplug_cpu_slots_new(empty, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_UNSUPPORTED, "no hotpluggable CPUs");
    g_clear_error(&error);
    assert_null(hotplug_cpu_slots_new(obj, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_FAILED, "did not return a list");
    g_clear_error(&error);
    assert_null(hotplug_cpu_slots_new(bad, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_FAILED, "lacks type");
    g_clear_error(&error);
    /* a vcpus-count of the wrong type reads as absent (1), never a critical */
    s = hotplug_cpu_slots_new(badcount, obj, &error);
    assert_null(error);
    assert_int_equal(hotplug_cpu_slots_max_vcpus(s), 1);
    assert_string_equal(hotplug_cpu_entity_device_id(hotplug_cpu_slots_entity(s, 0)), "cpu-v0");
}

static void
test_to_json(void **state)
{
    g_autoptr(HotplugCpuSlots) s = slots_from(X86_HOTPLUGGABLE, X86_CPUS_FAST);
    g_autoptr(JsonNode) rows = hotplug_cpu_slots_to_json(s, NULL);
    g_autofree char *text = json_to_string(rows, FALSE);
    JsonArray *a = json_node_get_array(rows);
    JsonObject *r0 = json_array_get_object_element(a, 0);
    JsonObject *r1 = json_array_get_object_element(a, 1);
    JsonObject *r3 = json_array_get_object_element(a, 3);

    assert_int_equal(json_array_get_length(a), 4);
    assert_string_equal(qmp_json_get_string(r0, "state"), "online");
    assert_true(qmp_json_get_bool_default(r0, "boot", FALSE));
    assert_int_equal(qmp_json_get_int_default(r0, "node", -1), 0);
    assert_int_equal(qmp_json_get_int_default(r0, "socket-id", -1), 0);
    assert_int_equal(qmp_json_get_int_default(r1, "core-id", -1), 1);
    assert_string_equal(qmp_json_get_string(r1, "device"), "cpu-s0-c1-t0");
    assert_string_equal(qmp_json_get_string(r1, "qom-path"), "/machine/peripheral/cpu-s0-c1-t0");
    assert_int_equal(json_array_get_int_element(qmp_json_get_array(r1, "thread-ids"), 0), 6188);
    assert_string_equal(qmp_json_get_string(r3, "state"), "offline");
    assert_null(qmp_json_get_string(r3, "qom-path"));
    assert_non_null(strstr(text, "\"vcpus\":[3]"));
}

/* ---- choosing entities ------------------------------------------------------ */

static void
test_select_count(void **state)
{
    g_autoptr(HotplugCpuSlots) s = slots_from(X86_HOTPLUGGABLE, NULL);
    g_autoptr(GError) error = NULL;
    GPtrArray *sel;
    gboolean plug;

    /* up: lowest free first */
    sel = hotplug_cpu_select_count(s, 4, &plug, &error);
    assert_non_null(sel);
    assert_true(plug);
    assert_int_equal(sel->len, 2);
    assert_int_equal(hotplug_cpu_entity_index(sel->pdata[0]), 2);
    assert_int_equal(hotplug_cpu_entity_index(sel->pdata[1]), 3);
    g_ptr_array_unref(sel);
    /* nothing to do */
    sel = hotplug_cpu_select_count(s, 2, &plug, &error);
    assert_non_null(sel);
    assert_int_equal(sel->len, 0);
    g_ptr_array_unref(sel);
    /* down: highest hot-plugged first */
    sel = hotplug_cpu_select_count(s, 1, &plug, &error);
    assert_non_null(sel);
    assert_false(plug);
    assert_int_equal(sel->len, 1);
    assert_string_equal(hotplug_cpu_entity_device_id(sel->pdata[0]), "cpu-s0-c1-t0");
    g_ptr_array_unref(sel);
    /* no free slot beyond maxcpus */
    assert_null(hotplug_cpu_select_count(s, 5, &plug, &error));
    assert_error(error, HOTPLUG_ERROR_UNSUPPORTED, "no free slot for 5 vCPUs");
    assert_non_null(strstr(error->message, "at most 4 (maxcpus)"));
    g_clear_error(&error);
    /* boot CPUs never go */
    assert_null(hotplug_cpu_select_count(s, 0, &plug, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "boot vCPUs");
}

static void
test_select_count_cores(void **state)
{
    g_autoptr(HotplugCpuSlots) s = slots_from(PPC_HOTPLUGGABLE, PPC_CPUS_FAST);
    g_autoptr(GError) error = NULL;
    GPtrArray *sel;
    gboolean plug;

    sel = hotplug_cpu_select_count(s, 8, &plug, &error);
    assert_non_null(sel);
    assert_true(plug);
    assert_int_equal(sel->len, 2);
    g_ptr_array_unref(sel);
    sel = hotplug_cpu_select_count(s, 2, &plug, &error);
    assert_non_null(sel);
    assert_false(plug);
    assert_int_equal(sel->len, 1);
    assert_string_equal(hotplug_cpu_entity_device_id(sel->pdata[0]), "cpu-c2");
    g_ptr_array_unref(sel);
    /* 5 is not a whole number of 2-thread cores */
    assert_null(hotplug_cpu_select_count(s, 5, &plug, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "cannot be reached with whole entities");
    assert_non_null(strstr(error->message, "power9_v2.0-spapr-cpu-core"));
    assert_non_null(strstr(error->message, "nearest count is 6"));
    g_clear_error(&error);
    assert_null(hotplug_cpu_select_count(s, 3, &plug, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "cannot be reached with whole entities");
}

static void
test_select_ids_thread_of_core(void **state)
{
    g_autoptr(HotplugCpuSlots) s = slots_from(PPC_HOTPLUGGABLE, PPC_CPUS_FAST);
    g_autoptr(GError) error = NULL;
    const guint one[] = {4};
    const guint both[] = {5, 4, 4};
    const guint on[] = {2, 3};
    const guint boot[] = {0, 1};
    GPtrArray *sel;

    /* one thread of a 2-thread core: an error that names the entity */
    assert_null(hotplug_cpu_select_ids(s, one, 1, TRUE, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "vcpus-count mismatch");
    assert_non_null(strstr(error->message, "entity 2 (cpu-c4, core-id=4, node-id=0, "
                                           "power9_v2.0-spapr-cpu-core, vCPUs 4-5)"));
    assert_non_null(strstr(error->message, "give all of 4-5"));
    g_clear_error(&error);
    /* the whole core (duplicates are fine) */
    sel = hotplug_cpu_select_ids(s, both, 3, TRUE, -1, &error);
    assert_non_null(sel);
    assert_int_equal(sel->len, 1);
    assert_string_equal(hotplug_cpu_entity_device_id(sel->pdata[0]), "cpu-c4");
    g_ptr_array_unref(sel);
    /* enabling a plugged core, disabling a boot core */
    assert_null(hotplug_cpu_select_ids(s, on, 2, TRUE, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "already plugged");
    g_clear_error(&error);
    sel = hotplug_cpu_select_ids(s, on, 2, FALSE, -1, &error);
    assert_non_null(sel);
    assert_int_equal(sel->len, 1);
    g_ptr_array_unref(sel);
    assert_null(hotplug_cpu_select_ids(s, boot, 2, FALSE, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "is a boot CPU");
}

static void
test_select_ids_errors(void **state)
{
    g_autoptr(HotplugCpuSlots) s = slots_from(X86_HOTPLUGGABLE, X86_CPUS_FAST);
    g_autoptr(GError) error = NULL;
    const guint free_one[] = {3};
    const guint boot[] = {0};
    const guint far[] = {9};
    GPtrArray *sel;

    assert_null(hotplug_cpu_select_ids(s, far, 1, TRUE, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "no vCPU 9: this VM has vCPU ids 0-3");
    g_clear_error(&error);
    assert_null(hotplug_cpu_select_ids(s, boot, 1, FALSE, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "boot CPU");
    g_clear_error(&error);
    assert_null(hotplug_cpu_select_ids(s, free_one, 1, FALSE, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "is not plugged");
    g_clear_error(&error);
    assert_null(hotplug_cpu_select_ids(s, free_one, 0, TRUE, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "no vCPU id given");
    g_clear_error(&error);
    assert_null(hotplug_cpu_select_ids(s, free_one, 1, TRUE, 1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "is on NUMA node 0, not 1");
    g_clear_error(&error);
    sel = hotplug_cpu_select_ids(s, free_one, 1, TRUE, 0, &error);
    assert_non_null(sel);
    g_ptr_array_unref(sel);
}

static void
test_select_anonymous(void **state)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugCpuSlots) s = slots_from(
        "[{\"props\": {\"core-id\": 1}, \"vcpus-count\": 1, \"type\": \"t\", "
        "\"qom-path\": \"/machine/peripheral-anon/device[3]\"}, "
        "{\"props\": {\"core-id\": 0}, \"vcpus-count\": 1, \"type\": \"t\", "
        "\"qom-path\": \"/machine/unattached/device[0]\"}]",
        NULL);
    const guint one[] = {1};
    const HotplugCpuEntity *e = hotplug_cpu_slots_entity(s, 1);
    gboolean plug;

    assert_false(hotplug_cpu_entity_is_boot(e));
    assert_null(hotplug_cpu_entity_device_id(e));
    assert_null(hotplug_cpu_select_ids(s, one, 1, FALSE, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "without a device id");
    g_clear_error(&error);
    assert_null(hotplug_cpu_select_count(s, 1, &plug, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "without a device id");
}

static void
test_select_node(void **state)
{
    g_autoptr(HotplugCpuSlots) s = slots_from(NUMA_HOTPLUGGABLE, NULL);
    g_autoptr(GError) error = NULL;
    GPtrArray *sel;

    sel = hotplug_cpu_select_node(s, 1, 1, &error);
    assert_non_null(sel);
    assert_int_equal(sel->len, 1);
    assert_int_equal(hotplug_cpu_entity_first_vcpu(sel->pdata[0]), 2);
    g_ptr_array_unref(sel);
    sel = hotplug_cpu_select_node(s, 0, 1, &error);
    assert_non_null(sel);
    assert_int_equal(hotplug_cpu_entity_first_vcpu(sel->pdata[0]), 1);
    g_ptr_array_unref(sel);
    assert_null(hotplug_cpu_select_node(s, 0, 2, &error));
    assert_error(error, HOTPLUG_ERROR_UNSUPPORTED, "no free slot on NUMA node 0: 2 asked, 1 free");
    g_clear_error(&error);
    assert_null(hotplug_cpu_select_node(s, 2, 1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "no vCPU slot on NUMA node 2 (nodes with vCPU "
                                               "slots: 0, 1)");
}

static void
test_error_hints(void **state)
{
    g_autoptr(GError) legacy = g_error_new(
        QMP_ERROR, QMP_ERROR_GENERIC,
        "acpi: device unplug request for not supported device type: qemu64-x86_64-cpu");
    g_autoptr(GError) boot = g_error_new(QMP_ERROR, QMP_ERROR_GENERIC, "Boot CPU is unpluggable");
    g_autoptr(GError) other = g_error_new(QMP_ERROR, QMP_ERROR_GENERIC, "something else");
    g_autoptr(GError) slots = g_error_new(QMP_ERROR, QMP_ERROR_GENERIC, "no free slots available");
    g_autoptr(GError) space = g_error_new(
        QMP_ERROR, QMP_ERROR_GENERIC,
        "not enough space, currently 0x40000000 in use of total space for memory devices "
        "0x60000000");

    assert_non_null(strstr(hotplug_vcpu_error_hint(legacy), "legacy"));
    assert_non_null(strstr(hotplug_vcpu_error_hint(boot), "boot CPU"));
    assert_null(hotplug_vcpu_error_hint(other));
    assert_null(hotplug_vcpu_error_hint(NULL));
    assert_non_null(strstr(hotplug_memory_error_hint(slots), "slots=N"));
    assert_non_null(strstr(hotplug_memory_error_hint(space), "maxmem"));
    assert_null(hotplug_memory_error_hint(other));
}

/* ---- memory: pure helpers ---------------------------------------------------- */

#define MEM_DEVICES                                                                                \
    "[{\"type\": \"dimm\", \"data\": {\"memdev\": \"/objects/mem-dimm0\", \"hotplugged\": true, " \
    "\"addr\": 4294967296, \"hotpluggable\": true, \"size\": 268435456, \"slot\": 0, "            \
    "\"node\": 0, \"id\": \"dimm0\"}}, "                                                           \
    "{\"type\": \"dimm\", \"data\": {\"memdev\": \"/objects/mem-dimm2\", \"hotplugged\": true, " \
    "\"addr\": 4563402752, \"hotpluggable\": true, \"size\": 134217728, \"slot\": 1, "            \
    "\"node\": 1, \"id\": \"other\"}}]"
#define MACHINE_MEMORY "{\"size\": 536870912, \"slots\": 2, \"max-size\": 2147483648}"

static void
test_memory_helpers(void **state)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) devs = parse(MEM_DEVICES);
    g_autoptr(JsonNode) one = parse("[{\"type\": \"dimm\", \"data\": {\"size\": 268435456, "
                                    "\"id\": \"d\", \"memdev\": \"/objects/m\"}}]");
    g_autoptr(JsonNode) none = parse("[]");
    g_autoptr(JsonNode) machine = parse(MACHINE_MEMORY);
    g_autoptr(JsonNode) nohp = parse("{\"size\": 536870912, \"slots\": 0, "
                                     "\"max-size\": 536870912}");
    g_autoptr(JsonNode) rows = hotplug_memory_list_to_json(devs, NULL);
    g_autofree char *id0 = hotplug_memory_free_id(none);
    g_autofree char *id1 = hotplug_memory_free_id(devs);
    g_autofree char *be0 = hotplug_memory_backend_of(devs, "dimm0");
    g_autofree char *be1 = hotplug_memory_backend_of(devs, "other");
    g_autofree char *bef = hotplug_memory_backend_for("x");
    JsonObject *r1;
    guint64 size = 0;

    assert_true(hotplug_memory_parse_size("256M", &size, &error));
    assert_int_equal(size, 256 << 20);
    assert_true(hotplug_memory_parse_size("1G", &size, &error));
    assert_int_equal(size, 1 << 30);
    assert_true(hotplug_memory_parse_size("2097152", &size, &error));
    assert_false(hotplug_memory_parse_size("1M", &size, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "multiple of 2M");
    g_clear_error(&error);
    assert_false(hotplug_memory_parse_size("0", &size, &error));
    g_clear_error(&error);
    assert_false(hotplug_memory_parse_size("lots", &size, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "bad size 'lots'");
    g_clear_error(&error);

    assert_string_equal(id0, "dimm0");
    /* dimm0 is taken, and dimm1 is free but mem-dimm1 ... is free too;
     * dimm2's backend name is in use by "other" */
    assert_string_equal(id1, "dimm1");
    assert_string_equal(be0, "mem-dimm0");
    assert_string_equal(be1, "mem-dimm2");
    assert_string_equal(bef, "mem-x");
    assert_null(hotplug_memory_backend_of(devs, "nope"));

    assert_true(hotplug_memory_check_room(machine, none, 1 << 30, &error));
    assert_true(hotplug_memory_check_room(NULL, none, 1 << 30, &error));
    assert_false(hotplug_memory_check_room(machine, devs, 256 << 20, &error));
    assert_error(error, HOTPLUG_ERROR_UNSUPPORTED, "no free memory slot: all 2 slots are used");
    g_clear_error(&error);
    assert_true(hotplug_memory_check_room(machine, one, G_GUINT64_CONSTANT(1280) << 20, &error));
    assert_false(hotplug_memory_check_room(machine, one, G_GUINT64_CONSTANT(1536) << 20, &error));
    assert_error(error, HOTPLUG_ERROR_UNSUPPORTED, "not enough room below maxmem: 512 MiB boot "
                                                   "memory + 256 MiB plugged + 1536 MiB asked "
                                                   "is over maxmem 2048 MiB");
    g_clear_error(&error);
    assert_false(hotplug_memory_check_room(nohp, none, 256 << 20, &error));
    assert_error(error, HOTPLUG_ERROR_UNSUPPORTED, "memory hotplug is not enabled");
    g_clear_error(&error);
    {
        /* QEMU 7.2 without slots/maxmem answers only the size */
        g_autoptr(JsonNode) bare = json_from_string("{\"size\": 134217728}", NULL);
        assert_false(hotplug_memory_check_room(bare, none, 256 << 20, &error));
        assert_error(error, HOTPLUG_ERROR_UNSUPPORTED, "memory hotplug is not enabled");
        g_clear_error(&error);
    }

    assert_int_equal(json_array_get_length(json_node_get_array(rows)), 2);
    r1 = json_array_get_object_element(json_node_get_array(rows), 1);
    assert_string_equal(qmp_json_get_string(r1, "id"), "other");
    assert_string_equal(qmp_json_get_string(r1, "backend"), "mem-dimm2");
    assert_int_equal(qmp_json_get_int_default(r1, "size", 0), 134217728);
    assert_int_equal(qmp_json_get_int_default(r1, "node", -1), 1);
    assert_int_equal(qmp_json_get_int_default(r1, "slot", -1), 1);
    assert_true(qmp_json_get_bool_default(r1, "hotplugged", FALSE));
}

/* ---- operations against the fake peer ------------------------------------------- */

typedef struct {
    struct event_base *base;
    struct event *tick;
    FakePeer *peer;
    QmpConn *conn;
    HotplugVm *vm;
    GPtrArray *trace; /* "ATTEMPT_RESULT vm1/cpu..." etc. */
    guint listener;
} Fixture;

static void
tick_cb(evutil_socket_t fd, short what, void *opaque)
{
}

static void
fixture_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Fixture *f = opaque;

    g_ptr_array_add(f->trace, g_strdup_printf("%s %s %s", hotplug_op_event_name(ev),
                                              hotplug_op_get_device(op),
                                              hotplug_outcome_name(hotplug_op_get_outcome(op))));
}

static int
setup(void **state)
{
    static const HotplugVmListener l = {.op = fixture_op_cb};
    Fixture *f = g_new0(Fixture, 1);
    g_autoptr(GError) error = NULL;
    int fd = -1;

    f->base = event_base_new();
    f->tick = evtimer_new(f->base, tick_cb, NULL);
    f->peer = fake_peer_new(f->base, &fd);
    /* the engine may ask it (the default deadline of PCI-like unplugs) */
    fake_peer_auto(f->peer, "query-target", "{\"arch\": \"x86_64\"}");
    fake_peer_greet(f->peer);
    f->conn = qmp_conn_new_fd(f->base, fd, NULL);
    if (!qmp_conn_wait_ready(f->conn, 5000, &error))
        fail_msg("not ready: %s", error->message);
    f->vm = hotplug_vm_new("vm1", f->conn, &(HotplugVmOptions){.gone_on_close = TRUE});
    f->trace = g_ptr_array_new_with_free_func(g_free);
    f->listener = hotplug_vm_add_listener(f->vm, &l, f);
    *state = f;
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
    event_free(f->tick);
    event_base_free(f->base);
    g_ptr_array_unref(f->trace);
    g_free(f);
    return 0;
}

static void
loop_once(Fixture *f)
{
    struct timeval tv = {0, 20000};

    evtimer_add(f->tick, &tv);
    event_base_loop(f->base, EVLOOP_ONCE);
    evtimer_del(f->tick);
}

static void
wait_final(Fixture *f, HotplugOp *op)
{
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (!hotplug_op_is_final(op) && g_get_monotonic_time() < end)
        loop_once(f);
    if (!hotplug_op_is_final(op))
        fail_msg("op %s not final; peer: %s", hotplug_op_get_device(op),
                 fake_peer_describe_failures(f->peer));
}

static void
assert_peer_done(Fixture *f)
{
    if (!fake_peer_all_done(f->peer)) {
        g_autofree char *why = fake_peer_describe_failures(f->peer);
        fail_msg("fake peer: %s", why);
    }
}

/* The index of the first received command named cmd at or after from. */
static gint
received_index(Fixture *f, const char *cmd, guint from)
{
    for (guint i = from; i < fake_peer_n_received(f->peer); i++)
        if (g_str_equal(fake_peer_received_command(f->peer, i), cmd))
            return (gint)i;
    return -1;
}

typedef struct {
    gboolean done;
    HotplugCpuSlots *slots;
    GError *error;
} SlotsResult;

static void
slots_cb(QmpConn *conn, HotplugCpuSlots *slots, const GError *error, gpointer opaque)
{
    SlotsResult *r = opaque;

    r->done = TRUE;
    r->slots = slots;
    if (error)
        r->error = g_error_copy(error);
}

static HotplugCpuSlots *
query_slots(Fixture *f, const char *hotpluggable, const char *cpus_fast)
{
    SlotsResult r = {0};
    g_autoptr(GError) error = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "query-hotpluggable-cpus", NULL);
    fake_peer_step_return(s, hotpluggable);
    s = fake_peer_expect(f->peer, "query-cpus-fast", NULL);
    fake_peer_step_return(s, cpus_fast);
    assert_true(hotplug_cpu_slots_query(f->conn, slots_cb, &r, &error));
    assert_true(qmp_loop_run_until(f->base, &r.done, 5000));
    assert_null(r.error);
    assert_non_null(r.slots);
    return r.slots;
}

static void
test_query(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugCpuSlots) s = query_slots(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    guint n;

    assert_int_equal(hotplug_cpu_slots_present_vcpus(s), 2);
    assert_int_equal(hotplug_cpu_entity_thread_ids(hotplug_cpu_slots_entity(s, 1), &n)[0], 6188);
    assert_peer_done(f);
}

static void
test_query_error(void **state)
{
    Fixture *f = *state;
    SlotsResult r = {0};
    g_autoptr(GError) error = NULL;
    FakeStep *s;

    s = fake_peer_expect(f->peer, "query-hotpluggable-cpus", NULL);
    fake_peer_step_error(s, "GenericError", "machine does not support hot-plugging CPUs");
    s = fake_peer_expect(f->peer, "query-cpus-fast", NULL);
    fake_peer_step_return(s, X86_CPUS_FAST);
    assert_true(hotplug_cpu_slots_query(f->conn, slots_cb, &r, &error));
    assert_true(qmp_loop_run_until(f->base, &r.done, 5000));
    assert_null(r.slots);
    assert_non_null(r.error);
    /* said plainly, QEMU's words kept */
    assert_true(g_error_matches(r.error, HOTPLUG_ERROR, HOTPLUG_ERROR_UNSUPPORTED));
    assert_string_equal(r.error->message, "this QEMU does not support vCPU hotplug on this "
                                          "machine (machine does not support hot-plugging CPUs)");
    g_error_free(r.error);
    assert_peer_done(f);
}

static void
test_plug_passes_props(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugCpuSlots) s = query_slots(f, NUMA_HOTPLUGGABLE, "[]");
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) sent = NULL;
    JsonObject *args;

    fake_peer_expect(f->peer, "device_add",
                     "{\"driver\": \"qemu64-x86_64-cpu\", \"id\": \"cpu-s0-c3-t0\", "
                     "\"core-id\": 3, \"thread-id\": 0, \"node-id\": 1, \"socket-id\": 0, "
                     "\"x-future-id\": 7}");
    op = hotplug_vcpu_plug(f->vm, hotplug_cpu_slots_entity(s, 3), &error);
    assert_non_null(op);
    assert_int_equal(hotplug_op_get_kind(op), HOTPLUG_KIND_VCPU);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
    assert_peer_done(f);
    /* exactly these members, values of QEMU's own types */
    sent = parse(fake_peer_received(f->peer, fake_peer_n_received(f->peer) - 1));
    args = qmp_json_get_object(json_node_get_object(sent), "arguments");
    assert_int_equal(json_object_get_size(args), 7);
    assert_int_equal(qmp_json_get_int_default(args, "x-future-id", -1), 7);

    /* a plugged one is not plugged again */
    assert_null(hotplug_vcpu_plug(f->vm, hotplug_cpu_slots_entity(s, 0), &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "already plugged");
}

static void
test_plug_rejected(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugCpuSlots) s = query_slots(f, NUMA_HOTPLUGGABLE, "[]");
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *st;

    st = fake_peer_expect(f->peer, "device_add", "{\"id\": \"cpu-s0-c1-t0\"}");
    fake_peer_step_error(st, "GenericError", "CPU[1] with APIC ID 1 exists");
    op = hotplug_vcpu_plug(f->vm, hotplug_cpu_slots_entity(s, 1), &error);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_string_equal(hotplug_op_get_error(op)->message, "CPU[1] with APIC ID 1 exists");
    assert_non_null(hotplug_vcpu_error_hint(hotplug_op_get_error(op)));
    assert_peer_done(f);
}

/* x86: the guest ejects, QEMU sends ACPI_DEVICE_OST and DEVICE_DELETED for
 * .../lapic only; the qom-list confirmation decides deleted. */
static void
test_unplug_x86_confirmed(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugCpuSlots) s = query_slots(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *st;

    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"cpu-s0-c1-t0\"}");
    fake_peer_step_event_before(st, "ACPI_DEVICE_OST",
                                "{\"info\": {\"device\": \"cpu-s0-c1-t0\", \"source\": 3, "
                                "\"status\": 132, \"slot\": \"1\", \"slot-type\": \"CPU\"}}");
    fake_peer_step_event_after(st, "DEVICE_DELETED",
                               "{\"path\": \"/machine/peripheral/cpu-s0-c1-t0/lapic\"}");
    fake_peer_step_event_after(st, "ACPI_DEVICE_OST",
                               "{\"info\": {\"source\": 3, \"status\": 0, \"slot\": \"1\", "
                               "\"slot-type\": \"CPU\"}}");
    st = fake_peer_expect(f->peer, "qom-list", "{\"path\": \"/machine/peripheral\"}");
    fake_peer_step_return(st, "[{\"name\": \"type\", \"type\": \"string\"}]");
    op = hotplug_vcpu_unplug(f->vm, hotplug_cpu_slots_entity(s, 1), NULL, NULL, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_kind(op), HOTPLUG_KIND_VCPU);
    assert_int_equal(hotplug_op_get_attempts(op), 1);
    /* the CPU class deadline, not the PCI one */
    assert_int_equal(hotplug_op_get_timeout_ms(op), 60000);
    assert_peer_done(f);

    /* boot CPUs are refused before anything is sent */
    assert_null(hotplug_vcpu_unplug(f->vm, hotplug_cpu_slots_entity(s, 0), NULL, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "boot CPU");
    g_clear_error(&error);
    assert_null(hotplug_vcpu_unplug(f->vm, hotplug_cpu_slots_entity(s, 3), NULL, NULL, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "is not plugged");
}

static void
test_unplug_guest_error(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugCpuSlots) s = query_slots(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *st;

    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"cpu-s0-c1-t0\"}");
    fake_peer_step_event_after(st, "ACPI_DEVICE_OST",
                               "{\"info\": {\"device\": \"cpu-s0-c1-t0\", \"source\": 3, "
                               "\"status\": 130, \"slot\": \"1\", \"slot-type\": \"CPU\"}}");
    st = fake_peer_expect(f->peer, "qom-list", "{\"path\": \"/machine/peripheral\"}");
    fake_peer_step_return(st, "[{\"name\": \"type\", \"type\": \"string\"}, "
                              "{\"name\": \"cpu-s0-c1-t0\", "
                              "\"type\": \"child<qemu64-x86_64-cpu>\"}]");
    op = hotplug_vcpu_unplug(f->vm, hotplug_cpu_slots_entity(s, 1), NULL, NULL, &error);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_GUEST_ERROR);
    assert_non_null(strstr(hotplug_op_get_detail(op), "status 0x82"));
    assert_int_equal(hotplug_outcome_exit_code(hotplug_op_get_outcome(op)), 4);
    assert_peer_done(f);
}

static void
test_unplug_legacy_mode(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugCpuSlots) s = query_slots(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *st;

    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"cpu-s0-c1-t0\"}");
    fake_peer_step_error(st, "GenericError",
                         "acpi: device unplug request for not supported device type: "
                         "qemu64-x86_64-cpu");
    op = hotplug_vcpu_unplug(f->vm, hotplug_cpu_slots_entity(s, 1), NULL, NULL, &error);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_non_null(strstr(hotplug_vcpu_error_hint(hotplug_op_get_error(op)), "legacy mode"));
    assert_peer_done(f);
}

/* pseries: a core of two threads goes as a whole; DEVICE_DELETED comes for
 * its children first, then for the core itself. */
static void
test_unplug_core_entity(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugCpuSlots) s = query_slots(f, PPC_HOTPLUGGABLE, PPC_CPUS_FAST);
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(GPtrArray) sel = NULL;
    const guint ids[] = {2, 3};
    FakeStep *st;

    sel = hotplug_cpu_select_ids(s, ids, 2, FALSE, -1, &error);
    assert_non_null(sel);
    assert_int_equal(sel->len, 1);
    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"cpu-c2\"}");
    fake_peer_step_event_after(st, "DEVICE_DELETED",
                               "{\"path\": \"/machine/peripheral/cpu-c2/thread[0]/icp\"}");
    fake_peer_step_event_after(st, "DEVICE_DELETED",
                               "{\"path\": \"/machine/peripheral/cpu-c2/thread[0]\"}");
    fake_peer_step_event_after(st, "DEVICE_DELETED",
                               "{\"device\": \"cpu-c2\", \"path\": \"/machine/peripheral/cpu-c2\"}");
    /* the child events may ask QEMU; the core's own event decides */
    fake_peer_auto(f->peer, "qom-list", "[{\"name\": \"type\", \"type\": \"string\"}]");
    op = hotplug_vcpu_unplug(f->vm, sel->pdata[0], NULL, NULL, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_string_equal(hotplug_op_get_device(op), "cpu-c2");
    assert_peer_done(f);
}

static void
test_unplug_core_guest_error_retry(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugCpuSlots) s = query_slots(f, PPC_HOTPLUGGABLE, PPC_CPUS_FAST);
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    HotplugUnplugOptions opts = {.retries = 1, .retry_interval_ms = 10};
    FakeStep *st;

    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"cpu-c2\"}");
    fake_peer_step_event_after(st, "DEVICE_UNPLUG_GUEST_ERROR",
                               "{\"device\": \"cpu-c2\", \"path\": \"/machine/peripheral/cpu-c2\"}");
    st = fake_peer_expect(f->peer, "qom-list", "{\"path\": \"/machine/peripheral\"}");
    fake_peer_step_return(st, "[{\"name\": \"cpu-c2\", "
                              "\"type\": \"child<power9_v2.0-spapr-cpu-core>\"}]");
    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"cpu-c2\"}");
    fake_peer_step_event_after(st, "DEVICE_DELETED",
                               "{\"device\": \"cpu-c2\", \"path\": \"/machine/peripheral/cpu-c2\"}");
    op = hotplug_vcpu_unplug(f->vm, hotplug_cpu_slots_entity(s, 1), &opts, NULL, &error);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_attempts(op), 2);
    assert_peer_done(f);
}

/* ---- memory operations ---------------------------------------------------------- */

static void
test_memory_add(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;

    fake_peer_expect(f->peer, "object-add",
                     "{\"qom-type\": \"memory-backend-ram\", \"id\": \"mem-dimm0\", "
                     "\"size\": 268435456}");
    fake_peer_expect(f->peer, "device_add",
                     "{\"driver\": \"pc-dimm\", \"id\": \"dimm0\", \"memdev\": \"mem-dimm0\", "
                     "\"node\": 1}");
    op = hotplug_memory_add(f->vm, "dimm0", 256 << 20, 1, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_ADDED);
    assert_int_equal(hotplug_op_get_kind(op), HOTPLUG_KIND_MEMORY);
    assert_peer_done(f);
    assert_null(hotplug_memory_add(f->vm, "a/b", 256 << 20, -1, &error));
    assert_error(error, HOTPLUG_ERROR_INVALID, "bad memory device id");
}

/* device_add fails: the backend is deleted again, the outcome is rejected
 * with QEMU's error. */
static void
test_memory_add_undo(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) sent = NULL;
    FakeStep *st;

    fake_peer_expect(f->peer, "object-add", "{\"id\": \"mem-big\"}");
    st = fake_peer_expect(f->peer, "device_add", "{\"id\": \"big\"}");
    fake_peer_step_error(st, "GenericError",
                         "not enough space, currently 0x40000000 in use of total space for "
                         "memory devices 0x60000000");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"mem-big\"}");
    op = hotplug_memory_add(f->vm, "big", G_GUINT64_CONSTANT(1) << 30, -1, &error);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_REJECTED);
    assert_non_null(strstr(hotplug_op_get_error(op)->message, "not enough space"));
    assert_non_null(strstr(hotplug_op_get_detail(op), "step 2 of 2 (device_add)"));
    assert_peer_done(f);
    /* no node given: no node member */
    sent = parse(fake_peer_received(f->peer, (guint)received_index(f, "device_add", 0)));
    assert_false(json_object_has_member(
        qmp_json_get_object(json_node_get_object(sent), "arguments"), "node"));
}

/* The backend goes only after the DIMM is gone. */
static void
test_memory_del_cleanup(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *st;
    gint del, obj;

    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"dimm0\"}");
    fake_peer_step_event_after(st, "ACPI_DEVICE_OST",
                               "{\"info\": {\"device\": \"dimm0\", \"source\": 3, "
                               "\"status\": 132, \"slot\": \"0\", \"slot-type\": \"DIMM\"}}");
    fake_peer_step_event_after(st, "DEVICE_DELETED",
                               "{\"device\": \"dimm0\", \"path\": \"/machine/peripheral/dimm0\"}");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"mem-dimm0\"}");
    op = hotplug_memory_del(f->vm, "dimm0", "mem-dimm0", NULL, NULL, &error);
    assert_non_null(op);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_int_equal(hotplug_op_get_kind(op), HOTPLUG_KIND_MEMORY);
    assert_null(hotplug_op_get_detail(op));
    assert_peer_done(f);
    del = received_index(f, "device_del", 0);
    obj = received_index(f, "object-del", 0);
    assert_true(del >= 0 && obj > del);
}

/* Refused by the guest (status 0x82): guest-error, and the backend stays. */
static void
test_memory_del_refused(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = NULL;
    FakeStep *st;

    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"dimm0\"}");
    fake_peer_step_event_after(st, "ACPI_DEVICE_OST",
                               "{\"info\": {\"device\": \"dimm0\", \"source\": 3, "
                               "\"status\": 130, \"slot\": \"0\", \"slot-type\": \"DIMM\"}}");
    st = fake_peer_expect(f->peer, "qom-list", "{\"path\": \"/machine/peripheral\"}");
    fake_peer_step_return(st, "[{\"name\": \"dimm0\", \"type\": \"child<pc-dimm>\"}]");
    op = hotplug_memory_del(f->vm, "dimm0", "mem-dimm0", NULL, NULL, &error);
    wait_final(f, op);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_GUEST_ERROR);
    assert_int_equal(received_index(f, "object-del", 0), -1);
    assert_peer_done(f);
}

/* ---- the service commands -------------------------------------------------------- */

#define SVC_WAIT_MS 5000

typedef struct {
    gboolean done;
    JsonNode *ret;
    GError *error;
} SvcReply;

typedef struct {
    struct event_base *base;
    char *dir;
    char *path; /* the QMP socket the service connects to */
    int listen_fd;
    FakePeer *peer;
    Service *svc;
    SvcReply r;
} SvcFixture;

static void
svc_spin_until(SvcFixture *f, const gboolean *flag, guint ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;

    while (!(flag && *flag) && g_get_monotonic_time() < end)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
}

/* A direct-mode service with VM "vm1" on a fake peer, ready. */
static int
svc_setup(void **state)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    g_autoptr(GError) error = NULL;
    ServiceOptions so = {.direct = TRUE};
    SvcFixture *f = g_new0(SvcFixture, 1);
    gint64 end;
    int fd = -1;

    *state = f;
    f->base = event_base_new();
    f->dir = g_dir_make_tmp("svc-vcpu-XXXXXX", &error);
    assert_non_null(f->dir);
    f->path = g_build_filename(f->dir, "qmp.sock", NULL);
    g_strlcpy(sun.sun_path, f->path, sizeof(sun.sun_path));
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(f->listen_fd, 4), 0);
    so.default_unplug.retry_interval_ms = 2000;
    f->svc = service_new(f->base, &so);
    if (!service_add_vm(f->svc, "vm1", f->path, &error))
        fail_msg("add_vm: %s", error->message);
    end = g_get_monotonic_time() + SVC_WAIT_MS * 1000;
    while (fd < 0 && g_get_monotonic_time() < end) {
        fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), g_usleep(500);
    }
    if (fd < 0)
        fail_msg("accept: %s", g_strerror(errno));
    f->peer = fake_peer_new_from_fd(f->base, fd);
    fake_peer_auto(f->peer, "query-target", "{\"arch\": \"x86_64\"}");
    fake_peer_greet(f->peer);
    if (!qmp_conn_wait_ready(hotplug_vm_get_conn(service_get_vm(f->svc, "vm1")),
                             SVC_WAIT_MS, &error))
        fail_msg("vm1 not ready: %s", error->message);
    return 0;
}

static void
svc_reply_clear(SvcReply *r)
{
    if (r->ret)
        json_node_unref(r->ret);
    g_clear_error(&r->error);
    memset(r, 0, sizeof(*r));
}

static int
svc_teardown(void **state)
{
    SvcFixture *f = *state;

    service_free(f->svc);
    if (f->peer)
        fake_peer_free(f->peer);
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    g_unlink(f->path);
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
    svc_reply_clear(&f->r);
    event_base_free(f->base);
    g_free(f);
    return 0;
}

static void
svc_reply_cb(ServiceRequest *req, JsonNode *ret, const GError *error, gpointer opaque)
{
    SvcReply *r = opaque;

    assert_false(r->done);
    r->done = TRUE;
    if (error)
        r->error = g_error_copy(error);
    else
        r->ret = json_node_ref(ret);
}

/* Start cmd with args (JSON text, "vm": "vm1" added); the reply lands in
 * r (cleared first). */
static void
svc_start_into(SvcFixture *f, SvcReply *r, const char *cmd, const char *args_json)
{
    static const ServiceRequestCallbacks cb = {.reply = svc_reply_cb};
    g_autoptr(JsonNode) args = parse(args_json);

    svc_reply_clear(r);
    json_object_set_string_member(json_node_get_object(args), "vm", "vm1");
    service_execute(f->svc, cmd, json_node_get_object(args), &cb, r);
}

/* The same, into f->r. */
static void
svc_start(SvcFixture *f, const char *cmd, const char *args_json)
{
    svc_start_into(f, &f->r, cmd, args_json);
}

/* Run cmd and wait for its reply. */
static void
svc_run(SvcFixture *f, const char *cmd, const char *args_json)
{
    svc_start(f, cmd, args_json);
    svc_spin_until(f, &f->r.done, SVC_WAIT_MS);
    if (!f->r.done)
        fail_msg("%s: no reply in %d ms; peer: %s", cmd, SVC_WAIT_MS,
                 fake_peer_describe_failures(f->peer));
}

static void
svc_assert_fails(SvcFixture *f, const char *cls, const char *message)
{
    if (!f->r.error) {
        g_autofree char *text = f->r.ret ? json_to_string(f->r.ret, FALSE) : g_strdup("?");
        fail_msg("expected %s '%s', got %s", cls, message, text);
    }
    assert_string_equal(service_error_class(f->r.error), cls);
    if (!strstr(f->r.error->message, message))
        fail_msg("error \"%s\" lacks \"%s\"", f->r.error->message, message);
}

static JsonObject *
svc_ret(SvcFixture *f)
{
    JsonObject *o;

    if (f->r.error)
        fail_msg("expected a result, got %s: %s", service_error_class(f->r.error),
                 f->r.error->message);
    o = qmp_json_node_object(f->r.ret);
    assert_non_null(o);
    return o;
}

/* Op i of an {"ops": [...]} reply. */
static JsonObject *
svc_op(SvcFixture *f, guint i)
{
    JsonArray *ops = qmp_json_get_array(svc_ret(f), "ops");

    assert_non_null(ops);
    assert_true(i < json_array_get_length(ops));
    return qmp_json_node_object(json_array_get_element(ops, i));
}

static void
svc_assert_peer_done(SvcFixture *f)
{
    for (int i = 0; i < 40; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK), g_usleep(500);
    if (!fake_peer_all_done(f->peer)) {
        g_autofree char *why = fake_peer_describe_failures(f->peer);
        fail_msg("fake peer: %s", why);
    }
}

/* The commands the peer received, qmp_capabilities and query-target (the
 * engine's own, when it asks) left out. */
static char *
svc_commands(SvcFixture *f)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < fake_peer_n_received(f->peer); i++) {
        const char *c = fake_peer_received_command(f->peer, i);
        if (!g_str_equal(c, "qmp_capabilities") && !g_str_equal(c, "query-target"))
            g_string_append_printf(s, "%s%s", s->len ? " " : "", c);
    }
    return g_string_free(s, FALSE);
}

static void
svc_expect_cpus(SvcFixture *f, const char *hotpluggable, const char *cpus_fast)
{
    fake_peer_step_return(fake_peer_expect(f->peer, "query-hotpluggable-cpus", NULL),
                          hotpluggable);
    fake_peer_step_return(fake_peer_expect(f->peer, "query-cpus-fast", NULL), cpus_fast);
}

/* Every command is registered. */
static void
test_svc_registered(void **state)
{
    SvcFixture *f = *state;
    g_autoptr(GPtrArray) names = service_list_commands(f->svc);
    const char *want[] = {"vcpu-list",  "vcpu-set",   "vcpu-enable", "vcpu-disable",
                          "memory-add", "memory-del", "memory-list"};

    for (guint i = 0; i < G_N_ELEMENTS(want); i++)
        if (!g_ptr_array_find_with_equal_func(names, want[i], g_str_equal, NULL))
            fail_msg("command %s not registered", want[i]);
}

/* Bad arguments are refused (InvalidArgument: exit 2) before anything is
 * sent to QEMU. */
static void
test_svc_args(void **state)
{
    SvcFixture *f = *state;
    g_autofree char *cmds = NULL;

    svc_run(f, "vcpu-set", "{}");
    svc_assert_fails(f, "InvalidArgument", "argument 'count' is missing");
    svc_run(f, "vcpu-set", "{\"count\": 0}");
    svc_assert_fails(f, "InvalidArgument", "argument 'count' must be at least 1");
    svc_run(f, "vcpu-set", "{\"count\": \"2\"}");
    svc_assert_fails(f, "InvalidArgument", "argument 'count' must be a whole number from 0 to 65536");
    svc_run(f, "vcpu-set", "{\"count\": 2, \"timeout\": \"soon\"}");
    svc_assert_fails(f, "InvalidArgument", "argument 'timeout' must be a number of seconds");
    svc_run(f, "vcpu-enable", "{}");
    svc_assert_fails(f, "InvalidArgument", "argument 'ids' is missing (or give 'node'");
    svc_run(f, "vcpu-enable", "{\"ids\": [1, \"2\"]}");
    svc_assert_fails(f, "InvalidArgument",
                     "argument 'ids' must be an array of vCPU ids (whole numbers from 0 to 65535)");
    svc_run(f, "vcpu-enable", "{\"ids\": [65536]}");
    svc_assert_fails(f, "InvalidArgument", "argument 'ids' must be an array of vCPU ids");
    svc_run(f, "vcpu-enable", "{\"ids\": 1}");
    svc_assert_fails(f, "InvalidArgument", "argument 'ids' must be an array of vCPU ids");
    svc_run(f, "vcpu-enable", "{\"node\": -1}");
    svc_assert_fails(f, "InvalidArgument", "argument 'node' must be a whole number from 0 to 65535");
    svc_run(f, "vcpu-disable", "{\"ids\": []}");
    svc_assert_fails(f, "InvalidArgument", "argument 'ids' is missing");
    svc_run(f, "vcpu-disable", "{\"ids\": [1], \"retry\": 5000}");
    svc_assert_fails(f, "InvalidArgument", "argument 'retry' must be a whole number from 0 to 1000");
    svc_run(f, "memory-add", "{}");
    svc_assert_fails(f, "InvalidArgument", "argument 'size' is missing");
    svc_run(f, "memory-add", "{\"size\": \"3M\"}");
    svc_assert_fails(f, "InvalidArgument", "size 3M (3145728 bytes) is not a non-zero multiple of 2M");
    svc_run(f, "memory-add", "{\"size\": 3145728}");
    svc_assert_fails(f, "InvalidArgument", "size 3145728 (3145728 bytes) is not a non-zero");
    svc_run(f, "memory-add", "{\"size\": -2097152}");
    svc_assert_fails(f, "InvalidArgument", "argument 'size' must be a number of bytes or a size");
    svc_run(f, "memory-add", "{\"size\": \"lots\"}");
    svc_assert_fails(f, "InvalidArgument", "bad size 'lots'");
    svc_run(f, "memory-add", "{\"size\": \"128M\", \"id\": \"a/b\"}");
    svc_assert_fails(f, "InvalidArgument", "bad id 'a/b'");
    svc_run(f, "memory-del", "{}");
    svc_assert_fails(f, "InvalidArgument", "argument 'id' is missing");
    svc_run(f, "memory-del", "{\"id\": \"dimm0\", \"no-wait\": 1}");
    svc_assert_fails(f, "InvalidArgument", "argument 'no-wait' must be true or false");
    svc_run(f, "vcpu-enable", "{\"ids\": [1], \"timeout\": 5}");
    svc_assert_fails(f, "InvalidArgument", "vcpu-enable takes no argument 'timeout'");
    /* an unknown VM */
    {
        static const ServiceRequestCallbacks cb = {.reply = svc_reply_cb};
        g_autoptr(JsonNode) args = parse("{\"vm\": \"nope\"}");
        svc_reply_clear(&f->r);
        service_execute(f->svc, "vcpu-list", json_node_get_object(args), &cb, &f->r);
        assert_true(f->r.done);
        svc_assert_fails(f, "NotFound", "no VM named 'nope'");
    }
    svc_assert_peer_done(f);
    cmds = svc_commands(f);
    assert_string_equal(cmds, "");
}

/* vcpu-list: the joined view, with the VM's name. */
static void
test_svc_vcpu_list(void **state)
{
    SvcFixture *f = *state;
    JsonObject *o;
    JsonArray *ents;

    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    svc_run(f, "vcpu-list", "{}");
    o = svc_ret(f);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_int_equal(qmp_json_get_int_default(o, "vcpus", -1), 2);
    assert_int_equal(qmp_json_get_int_default(o, "maxcpus", -1), 4);
    ents = qmp_json_get_array(o, "entities");
    assert_int_equal(json_array_get_length(ents), 4);
    assert_string_equal(qmp_json_get_string(json_array_get_object_element(ents, 1), "device"),
                        "cpu-s0-c1-t0");
    svc_assert_peer_done(f);

    /* a machine without vCPU hotplug: said plainly, QEMU's words kept */
    fake_peer_step_error(fake_peer_expect(f->peer, "query-hotpluggable-cpus", NULL),
                         "GenericError", "machine does not support hot-plugging CPUs");
    fake_peer_step_return(fake_peer_expect(f->peer, "query-cpus-fast", NULL), X86_CPUS_FAST);
    svc_run(f, "vcpu-list", "{}");
    svc_assert_fails(f, "Unsupported", "this QEMU does not support vCPU hotplug on this machine "
                                       "(machine does not support hot-plugging CPUs)");
    svc_assert_peer_done(f);
}

/* vcpu-set up: both free slots at once, one reply with both ops and what
 * changed; then unchanged; then errors that name the limit. */
static void
test_svc_vcpu_set(void **state)
{
    SvcFixture *f = *state;
    g_autofree char *cmds = NULL;
    JsonObject *o;

    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    fake_peer_expect(f->peer, "device_add", "{\"id\": \"cpu-s0-c2-t0\", \"core-id\": 2}");
    fake_peer_expect(f->peer, "device_add", "{\"id\": \"cpu-s0-c3-t0\", \"core-id\": 3}");
    svc_run(f, "vcpu-set", "{\"count\": 4}");
    o = svc_ret(f);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_int_equal(qmp_json_get_int_default(o, "vcpus", -1), 4);
    assert_int_equal(qmp_json_get_int_default(o, "from", -1), 2);
    assert_string_equal(qmp_json_get_string(o, "action"), "plug");
    assert_int_equal(qmp_json_get_int_default(o, "n_entities", -1), 2);
    assert_true(qmp_json_get_bool_default(o, "changed", FALSE));
    assert_int_equal(json_array_get_length(qmp_json_get_array(o, "ops")), 2);
    assert_string_equal(qmp_json_get_string(svc_op(f, 0), "device"), "cpu-s0-c2-t0");
    assert_string_equal(qmp_json_get_string(svc_op(f, 0), "outcome"), "added");
    assert_string_equal(qmp_json_get_string(svc_op(f, 1), "device"), "cpu-s0-c3-t0");
    assert_string_equal(qmp_json_get_string(svc_op(f, 1), "outcome"), "added");
    assert_false(json_object_has_member(svc_op(f, 0), "hint"));
    svc_assert_peer_done(f);

    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    svc_run(f, "vcpu-set", "{\"count\": 2}");
    o = svc_ret(f);
    assert_false(qmp_json_get_bool_default(o, "changed", TRUE));
    assert_int_equal(qmp_json_get_int_default(o, "vcpus", -1), 2);
    assert_int_equal(json_array_get_length(qmp_json_get_array(o, "ops")), 0);
    svc_assert_peer_done(f);

    /* over maxcpus: Unsupported (exit 1); below the boot vCPUs: InvalidArgument */
    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    svc_run(f, "vcpu-set", "{\"count\": 9}");
    svc_assert_fails(f, "Unsupported",
                     "no free slot for 9 vCPUs: the VM has 2 of at most 4 (maxcpus)");
    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    svc_run(f, "vcpu-disable", "{\"ids\": [0]}");
    svc_assert_fails(f, "InvalidArgument", "is a boot CPU");
    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    svc_run(f, "vcpu-enable", "{\"ids\": [1]}");
    svc_assert_fails(f, "InvalidArgument", "is already plugged");
    /* pseries: whole cores only */
    svc_expect_cpus(f, PPC_HOTPLUGGABLE, PPC_CPUS_FAST);
    svc_run(f, "vcpu-set", "{\"count\": 5}");
    svc_assert_fails(f, "InvalidArgument", "5 vCPUs cannot be reached with whole entities");
    svc_expect_cpus(f, PPC_HOTPLUGGABLE, PPC_CPUS_FAST);
    svc_run(f, "vcpu-disable", "{\"ids\": [2]}");
    svc_assert_fails(f, "InvalidArgument", "vcpus-count mismatch");
    svc_assert_peer_done(f);
    cmds = svc_commands(f);
    assert_string_equal(cmds, "query-hotpluggable-cpus query-cpus-fast device_add device_add "
                              "query-hotpluggable-cpus query-cpus-fast "
                              "query-hotpluggable-cpus query-cpus-fast "
                              "query-hotpluggable-cpus query-cpus-fast "
                              "query-hotpluggable-cpus query-cpus-fast "
                              "query-hotpluggable-cpus query-cpus-fast "
                              "query-hotpluggable-cpus query-cpus-fast");
}

/* vcpu-enable by node; vcpu-disable in legacy CPU hotplug mode: rejected,
 * with the explanation in "hint". */
static void
test_svc_vcpu_enable_disable_hint(void **state)
{
    SvcFixture *f = *state;
    JsonObject *o;

    svc_expect_cpus(f, NUMA_HOTPLUGGABLE, "[]");
    fake_peer_expect(f->peer, "device_add", "{\"id\": \"cpu-s0-c2-t0\", \"node-id\": 1}");
    svc_run(f, "vcpu-enable", "{\"node\": 1}");
    assert_string_equal(qmp_json_get_string(svc_op(f, 0), "device"), "cpu-s0-c2-t0");
    assert_string_equal(qmp_json_get_string(svc_op(f, 0), "outcome"), "added");
    svc_expect_cpus(f, NUMA_HOTPLUGGABLE, "[]");
    svc_run(f, "vcpu-enable", "{\"node\": 5}");
    svc_assert_fails(f, "InvalidArgument", "no vCPU slot on NUMA node 5");
    svc_assert_peer_done(f);

    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    fake_peer_step_error(fake_peer_expect(f->peer, "device_del", "{\"id\": \"cpu-s0-c1-t0\"}"),
                         "GenericError",
                         "acpi: device unplug request for not supported device type: "
                         "qemu64-x86_64-cpu");
    svc_run(f, "vcpu-disable", "{\"ids\": [1], \"timeout\": 1.5}");
    o = svc_op(f, 0);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_string_equal(qmp_json_get_string(o, "action"), "unplug");
    assert_int_equal(qmp_json_get_int_default(o, "timeout_ms", -1), 1500);
    assert_string_equal(qmp_json_get_string(qmp_json_get_object(o, "error"), "class"),
                        "GenericError");
    assert_non_null(qmp_json_get_string(o, "hint"));
    assert_non_null(strstr(qmp_json_get_string(o, "hint"), "legacy mode"));
    svc_assert_peer_done(f);
}

/* A plug of a vCPU under way: a vcpu-set that would plug it too is
 * refused (Busy) and sends nothing. */
static void
test_svc_vcpu_busy(void **state)
{
    SvcFixture *f = *state;
    g_autofree char *cmds = NULL;
    SvcReply first = {0};
    FakeStep *held;

    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    held = fake_peer_expect(f->peer, "device_add", "{\"id\": \"cpu-s0-c2-t0\"}");
    fake_peer_step_hold(held);
    svc_start_into(f, &first, "vcpu-enable", "{\"ids\": [2]}");
    svc_spin_until(f, NULL, 200);
    assert_true(fake_peer_step_received(held));
    assert_false(first.done);
    svc_expect_cpus(f, X86_HOTPLUGGABLE, X86_CPUS_FAST);
    svc_run(f, "vcpu-set", "{\"count\": 4}");
    svc_assert_fails(f, "Busy", "device cpu-s0-c2-t0 of VM vm1 has an operation under way");
    svc_assert_fails(f, "Busy", "nothing was started");
    /* the first one goes on */
    fake_peer_step_release(f->peer, held);
    svc_spin_until(f, &first.done, SVC_WAIT_MS);
    assert_true(first.done);
    assert_null(first.error);
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(json_array_get_element(
                                                qmp_json_get_array(qmp_json_node_object(first.ret),
                                                                   "ops"),
                                                0)),
                                            "outcome"),
                        "added");
    svc_assert_peer_done(f);
    cmds = svc_commands(f);
    assert_string_equal(cmds, "query-hotpluggable-cpus query-cpus-fast device_add "
                              "query-hotpluggable-cpus query-cpus-fast");
    svc_reply_clear(&first);
}

/* The VM goes while its command waits for QEMU: VmGone, nothing touched
 * after. */
static void
test_svc_vm_removed(void **state)
{
    SvcFixture *f = *state;
    g_autoptr(GError) error = NULL;
    FakeStep *held;

    held = fake_peer_expect(f->peer, "query-memory-devices", NULL);
    fake_peer_step_hold(held);
    svc_start(f, "memory-add", "{\"size\": \"128M\"}");
    svc_spin_until(f, NULL, 200);
    assert_true(fake_peer_step_received(held));
    assert_false(f->r.done);
    assert_true(service_remove_vm(f->svc, "vm1", &error));
    assert_true(f->r.done);
    svc_assert_fails(f, "VmGone", "VM vm1 went away while its command waited for QEMU");
    assert_null(service_get_vm(f->svc, "vm1"));
}

/* memory-add: room checked from QEMU's view, a free id, the composite
 * plug; refusals with their class; a rejected device_add with a hint. */
static void
test_svc_memory_add(void **state)
{
    SvcFixture *f = *state;
    g_autofree char *cmds = NULL;
    JsonObject *o;

    fake_peer_step_return(fake_peer_expect(f->peer, "query-memory-devices", NULL), MEM_DEVICES);
    fake_peer_step_return(
        fake_peer_expect(f->peer, "qom-get", "{\"path\": \"/machine\", \"property\": \"memory\"}"),
        MACHINE_MEMORY);
    svc_run(f, "memory-add", "{\"size\": \"128M\"}");
    svc_assert_fails(f, "Unsupported", "no free memory slot: all 2 slots are used");
    svc_assert_peer_done(f);

    fake_peer_step_return(fake_peer_expect(f->peer, "query-memory-devices", NULL), "[]");
    fake_peer_step_return(fake_peer_expect(f->peer, "qom-get", NULL), MACHINE_MEMORY);
    svc_run(f, "memory-add", "{\"size\": 2147483648}");
    svc_assert_fails(f, "Unsupported", "not enough room below maxmem: 512 MiB boot memory + "
                                       "0 MiB plugged + 2048 MiB asked");
    svc_assert_peer_done(f);

    /* an older QEMU without /machine memory: QEMU judges */
    fake_peer_step_return(fake_peer_expect(f->peer, "query-memory-devices", NULL), "[]");
    fake_peer_step_error(fake_peer_expect(f->peer, "qom-get", NULL), "GenericError",
                         "Property 'pc-i440fx-7.2-machine.memory' not found");
    fake_peer_expect(f->peer, "object-add",
                     "{\"qom-type\": \"memory-backend-ram\", \"id\": \"mem-dimm0\", "
                     "\"size\": 268435456}");
    fake_peer_expect(f->peer, "device_add",
                     "{\"driver\": \"pc-dimm\", \"id\": \"dimm0\", \"memdev\": \"mem-dimm0\", "
                     "\"node\": 1}");
    svc_run(f, "memory-add", "{\"size\": \"256M\", \"node\": 1}");
    o = svc_ret(f);
    assert_string_equal(qmp_json_get_string(o, "device"), "dimm0");
    assert_string_equal(qmp_json_get_string(o, "kind"), "memory");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_false(json_object_has_member(o, "hint"));
    svc_assert_peer_done(f);

    fake_peer_step_return(fake_peer_expect(f->peer, "query-memory-devices", NULL), "[]");
    fake_peer_step_return(fake_peer_expect(f->peer, "qom-get", NULL), MACHINE_MEMORY);
    fake_peer_expect(f->peer, "object-add", "{\"id\": \"mem-m1\"}");
    fake_peer_step_error(fake_peer_expect(f->peer, "device_add", "{\"id\": \"m1\"}"),
                         "GenericError",
                         "'DIMM property node has value 3' which exceeds the number of numa "
                         "nodes: 1");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"mem-m1\"}");
    svc_run(f, "memory-add", "{\"size\": \"128M\", \"node\": 3, \"id\": \"m1\"}");
    o = svc_ret(f);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_non_null(qmp_json_get_string(o, "hint"));
    assert_non_null(strstr(qmp_json_get_string(o, "hint"), "--node must name a NUMA node"));
    svc_assert_peer_done(f);
    cmds = svc_commands(f);
    assert_string_equal(cmds, "query-memory-devices qom-get query-memory-devices qom-get "
                              "query-memory-devices qom-get object-add device_add "
                              "query-memory-devices qom-get object-add device_add object-del");
}

/* memory-del: the backend of a DIMM goes after it; a device that is not
 * memory is refused (InvalidArgument); an unknown id is QEMU's to answer;
 * memory-list names its VM. */
static void
test_svc_memory_del_list(void **state)
{
    SvcFixture *f = *state;
    g_autofree char *cmds = NULL;
    JsonObject *o;
    FakeStep *st;

    fake_peer_step_return(fake_peer_expect(f->peer, "query-memory-devices", NULL), MEM_DEVICES);
    st = fake_peer_expect(f->peer, "device_del", "{\"id\": \"other\"}");
    fake_peer_step_event_after(st, "DEVICE_DELETED",
                               "{\"device\": \"other\", \"path\": \"/machine/peripheral/other\"}");
    fake_peer_expect(f->peer, "object-del", "{\"id\": \"mem-dimm2\"}");
    svc_run(f, "memory-del", "{\"id\": \"other\"}");
    o = svc_ret(f);
    assert_string_equal(qmp_json_get_string(o, "device"), "other");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    svc_assert_peer_done(f);

    fake_peer_step_return(fake_peer_expect(f->peer, "query-memory-devices", NULL), MEM_DEVICES);
    fake_peer_step_return(
        fake_peer_expect(f->peer, "qom-list", "{\"path\": \"/machine/peripheral\"}"),
        "[{\"name\": \"type\", \"type\": \"string\"}, "
        "{\"name\": \"nic1\", \"type\": \"child<virtio-net-pci>\"}]");
    svc_run(f, "memory-del", "{\"id\": \"nic1\"}");
    svc_assert_fails(f, "InvalidArgument",
                     "nic1 is a virtio-net-pci, not a memory device: use 'device del'");
    svc_assert_peer_done(f);

    fake_peer_step_return(fake_peer_expect(f->peer, "query-memory-devices", NULL), "[]");
    fake_peer_step_return(fake_peer_expect(f->peer, "qom-list", NULL), "[]");
    fake_peer_step_error(fake_peer_expect(f->peer, "device_del", "{\"id\": \"gone\"}"),
                         "DeviceNotFound", "Device 'gone' not found");
    svc_run(f, "memory-del", "{\"id\": \"gone\"}");
    o = svc_ret(f);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_string_equal(qmp_json_get_string(qmp_json_get_object(o, "error"), "class"),
                        "DeviceNotFound");
    svc_assert_peer_done(f);

    fake_peer_step_return(fake_peer_expect(f->peer, "query-memory-devices", NULL), MEM_DEVICES);
    svc_run(f, "memory-list", "{}");
    o = svc_ret(f);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_int_equal(json_array_get_length(qmp_json_get_array(o, "memory")), 2);
    svc_assert_peer_done(f);
    cmds = svc_commands(f);
    assert_string_equal(cmds, "query-memory-devices device_del object-del "
                              "query-memory-devices qom-list "
                              "query-memory-devices qom-list device_del query-memory-devices");
}

int
main(void)
{
#define T(fn) cmocka_unit_test(fn)
#define F(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define S(fn) cmocka_unit_test_setup_teardown(fn, svc_setup, svc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_parse_x86),
        T(test_parse_pseries_cores),
        T(test_parse_errors),
        T(test_to_json),
        T(test_select_count),
        T(test_select_count_cores),
        T(test_select_ids_thread_of_core),
        T(test_select_ids_errors),
        T(test_select_anonymous),
        T(test_select_node),
        T(test_error_hints),
        T(test_memory_helpers),
        F(test_query),
        F(test_query_error),
        F(test_plug_passes_props),
        F(test_plug_rejected),
        F(test_unplug_x86_confirmed),
        F(test_unplug_guest_error),
        F(test_unplug_legacy_mode),
        F(test_unplug_core_entity),
        F(test_unplug_core_guest_error_retry),
        F(test_memory_add),
        F(test_memory_add_undo),
        F(test_memory_del_cleanup),
        F(test_memory_del_refused),
        S(test_svc_registered),
        S(test_svc_args),
        S(test_svc_vcpu_list),
        S(test_svc_vcpu_set),
        S(test_svc_vcpu_enable_disable_hint),
        S(test_svc_vcpu_busy),
        S(test_svc_vm_removed),
        S(test_svc_memory_add),
        S(test_svc_memory_del_list),
    };
#undef T
#undef F
#undef S

    return cmocka_run_group_tests(tests, NULL, NULL);
}
