/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QmpConn, QmpCaps and `hotplugctl vm info` against a real QEMU (paused,
 * no guest), whichever the rig runs: versions are checked against what the
 * binary under test reports.  Every QEMU a test starts is killed in its
 * teardown, whatever happened in the test. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>

#include <event2/event.h>
#include <glib/gstdio.h>

#include "qmp-caps.h"
#include "qmp-conn.h"
#include "qmp-json.h"
#include "rig.h"

#define READY_MS RIG_REPLY_MS
#define REPLY_MS RIG_REPLY_MS

typedef struct {
    struct event_base *base;
    RigVm *qemu[2];
    QmpConn *conn;
    char *dir;      /* a temp dir of the test's own, or NULL */
    GArray *states; /* QmpConnState seen by the listener */
    GPtrArray *state_errors;
    guint n_done;
} Fixture;

typedef struct {
    Fixture *f;
    guint calls;
    GError *error;
    JsonNode *ret;
} Reply;

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->base = event_base_new();
    f->states = g_array_new(FALSE, FALSE, sizeof(QmpConnState));
    f->state_errors = g_ptr_array_new_with_free_func(g_free);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    if (f->conn)
        qmp_conn_unref(f->conn);
    for (guint i = 0; i < G_N_ELEMENTS(f->qemu); i++)
        g_clear_pointer(&f->qemu[i], rig_vm_free);
    if (f->dir)
        rig_rm_tree(f->dir);
    g_free(f->dir);
    g_array_unref(f->states);
    g_ptr_array_unref(f->state_errors);
    event_base_free(f->base);
    g_free(f);
    return 0;
}

static void
state_cb(QmpConn *conn, QmpConnState state, const GError *error, gpointer opaque)
{
    Fixture *f = opaque;

    g_array_append_val(f->states, state);
    g_ptr_array_add(f->state_errors, g_strdup(error ? error->message : ""));
}

static const QmpConnListener listener = {.state = state_cb};

static RigVm *
start_qemu(Fixture *f, guint slot, const char *const *extra_args)
{
    RigVmOptions opts = {
        .machine = RIG_MACHINE_PC,
        .smp = "1,maxcpus=2",
        .extra_args = extra_args,
    };

    assert_null(f->qemu[slot]);
    f->qemu[slot] = rig_vm_start(&opts);
    return f->qemu[slot];
}

/* The version of the binary under test, as query-version on its spare
 * socket says (the connection under test does not see that one). */
typedef struct {
    int major, minor, micro;
    char *machine; /* pc's versioned type: "pc-i440fx-MAJOR.MINOR" */
} Version;

static void
version_of(RigVm *vm, Version *v)
{
    rig_vm_version(vm, &v->major, &v->minor, &v->micro);
    assert_true(v->major > 0);
    v->machine = g_strdup_printf("pc-i440fx-%d.%d", v->major, v->minor);
}

/* The hotplug capabilities the QEMU under test has on pc, sorted as
 * qmp_caps_list sorts them, from its own schema as the spare socket shows
 * it (QEMU 10 has no MEM_UNPLUG_ERROR, for one), and iothread-vq-mapping
 * from 9.2 on (device_add takes it). */
static GPtrArray *
want_caps(RigVm *vm, const Version *v)
{
    static const struct {
        const char *cap, *meta, *name;
    } caps[] = {
        {"acpi-device-ost-event", "event", "ACPI_DEVICE_OST"},
        {"blockdev", "command", "blockdev-add"},
        {"cpu-hotplug", "command", "query-hotpluggable-cpus"},
        {"device-unplug-guest-error-event", "event", "DEVICE_UNPLUG_GUEST_ERROR"},
        {"iothread-vq-mapping", NULL, NULL},
        {"iothreads", "command", "query-iothreads"},
        {"mem-unplug-error-event", "event", "MEM_UNPLUG_ERROR"},
        {"memory-hotplug", "command", "query-memory-devices"},
    };
    GPtrArray *want = g_ptr_array_new();

    for (guint i = 0; i < G_N_ELEMENTS(caps); i++) {
        gboolean has = caps[i].meta ? rig_vm_schema_has(vm, caps[i].meta, caps[i].name)
                                    : v->major > 9 || (v->major == 9 && v->minor >= 2);
        if (has)
            g_ptr_array_add(want, (gpointer)caps[i].cap);
    }
    return want;
}

static void
connect_conn(Fixture *f, const char *path, const QmpConnOptions *opts)
{
    g_autoptr(GError) err = NULL;

    f->conn = qmp_conn_new(f->base, path, opts);
    qmp_conn_add_listener(f->conn, &listener, f);
    if (!qmp_conn_open(f->conn, &err) || !qmp_conn_wait_ready(f->conn, READY_MS, &err))
        fail_msg("connecting to %s: %s", path, err->message);
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
}

static void
reply_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    Reply *r = opaque;

    r->calls++;
    r->f->n_done++;
    if (error) {
        r->error = g_error_copy(error);
        /* a QEMU error comes with its "error" object, a local one without */
        if (qmp_error_is_qemu(error) != (ret != NULL))
            fail_msg("error %s with ret %p", error->message, (void *)ret);
    } else {
        r->ret = json_node_ref(ret);
    }
}

static void
reply_clear(Reply *r)
{
    g_clear_error(&r->error);
    g_clear_pointer(&r->ret, json_node_unref);
}

/* ---- QMP ------------------------------------------------------------ */

static void
test_connect_greeting(void **state)
{
    Fixture *f = *state;
    RigVm *q = start_qemu(f, 0, NULL);
    const QmpGreeting *g;
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) ret = NULL;
    Version v = {0};
    JsonObject *o;

    version_of(q, &v);
    connect_conn(f, rig_vm_qmp_path(q), NULL);
    g = qmp_conn_get_greeting(f->conn);
    assert_non_null(g);
    assert_int_equal(g->major, v.major);
    assert_int_equal(g->minor, v.minor);
    assert_int_equal(g->micro, v.micro);
    assert_non_null(g->package);
    assert_true(strlen(g->package) > 0);
    assert_true(qmp_greeting_has_capability(g, "oob"));
    assert_true(qmp_greeting_version_at_least(g, v.major, v.minor));
    assert_true(qmp_greeting_version_at_least(g, v.major - 1, v.minor + 1));
    assert_false(qmp_greeting_version_at_least(g, v.major, v.minor + 1));
    assert_false(qmp_greeting_version_at_least(g, v.major + 1, 0));
    g_free(v.machine);
    /* connecting, greeting, negotiating, ready */
    assert_int_equal(f->states->len, 4);
    assert_int_equal(g_array_index(f->states, QmpConnState, 0), QMP_CONN_CONNECTING);
    assert_int_equal(g_array_index(f->states, QmpConnState, 1), QMP_CONN_GREETING);
    assert_int_equal(g_array_index(f->states, QmpConnState, 2), QMP_CONN_NEGOTIATING);
    assert_int_equal(g_array_index(f->states, QmpConnState, 3), QMP_CONN_READY);

    if (!qmp_conn_execute_sync(f->conn, "query-status", NULL, &ret, REPLY_MS, &err))
        fail_msg("query-status: %s", err->message);
    o = qmp_json_node_object(ret);
    assert_string_equal(qmp_json_get_string(o, "status"), "prelaunch");
    assert_false(qmp_json_get_bool_default(o, "running", TRUE));

    /* query-version agrees with the greeting */
    g_clear_pointer(&ret, json_node_unref);
    if (!qmp_conn_execute_sync(f->conn, "query-version", NULL, &ret, REPLY_MS, &err))
        fail_msg("query-version: %s", err->message);
    o = qmp_json_get_object(qmp_json_node_object(ret), "qemu");
    assert_int_equal(qmp_json_get_int_default(o, "major", -1), g->major);
    assert_int_equal(qmp_json_get_int_default(o, "minor", -1), g->minor);
    assert_int_equal(qmp_json_get_int_default(o, "micro", -1), g->micro);
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(ret), "package"), g->package);
}

typedef struct {
    gboolean done;
    QmpCaps *caps;
    GError *error;
} Probe;

static void
probe_cb(QmpConn *conn, QmpCaps *caps, const GError *error, gpointer opaque)
{
    Probe *p = opaque;

    p->done = TRUE;
    p->caps = caps;
    if (error)
        p->error = g_error_copy(error);
}

static void
test_caps_probe(void **state)
{
    Fixture *f = *state;
    RigVm *q = start_qemu(f, 0, NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpCaps) caps = NULL;
    g_autoptr(GPtrArray) want = NULL;
    const char *const *list;
    Version v = {0};
    Probe p = {0};

    version_of(q, &v);
    want = want_caps(q, &v);
    connect_conn(f, rig_vm_qmp_path(q), NULL);
    assert_true(qmp_caps_probe(f->conn, probe_cb, &p, &err));
    assert_true(qmp_loop_run_until(f->base, &p.done, REPLY_MS));
    if (p.error)
        fail_msg("probe: %s", p.error->message);
    caps = p.caps;
    assert_non_null(caps);
    assert_int_equal(qmp_caps_version_major(caps), v.major);
    assert_int_equal(qmp_caps_version_minor(caps), v.minor);
    assert_int_equal(qmp_caps_version_micro(caps), qmp_conn_get_greeting(f->conn)->micro);
    assert_string_equal(qmp_caps_package(caps), qmp_conn_get_greeting(f->conn)->package);
    assert_string_equal(qmp_caps_machine_type(caps), v.machine);
    g_free(v.machine);
    assert_string_equal(qmp_caps_run_state(caps), "prelaunch");
    assert_true(qmp_caps_cpu_hotplug(caps));
    assert_true(qmp_caps_has_event(caps, "DEVICE_UNPLUG_GUEST_ERROR"));
    assert_true(qmp_caps_has_event(caps, "DEVICE_DELETED"));
    assert_true(qmp_caps_has_event(caps, "ACPI_DEVICE_OST"));
    assert_int_equal(qmp_caps_has_event(caps, "MEM_UNPLUG_ERROR"),
                     rig_vm_schema_has(q, "event", "MEM_UNPLUG_ERROR"));
    assert_true(qmp_caps_has_command(caps, "device_add"));
    assert_true(qmp_caps_has_command(caps, "device_del"));
    assert_true(qmp_caps_has_command(caps, "blockdev-add"));
    assert_true(qmp_caps_has_command(caps, "query-hotpluggable-cpus"));
    assert_false(qmp_caps_has_command(caps, "DEVICE_DELETED"));
    assert_false(qmp_caps_has_event(caps, "device_del"));
    assert_false(qmp_caps_has_command(caps, "no-such-command"));

    /* sorted, and what this QEMU on pc has */
    list = qmp_caps_list(caps);
    for (guint i = 0; i < want->len; i++)
        assert_string_equal(list[i], want->pdata[i]);
    assert_null(list[want->len]);
}

/* A machine without CPU hotplug: query-hotpluggable-cpus fails, which is a
 * fact, not a probe failure. */
static void
test_caps_probe_no_cpu_hotplug(void **state)
{
    Fixture *f = *state;
    RigVmOptions opts = {.machine = RIG_MACHINE_NONE};
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpCaps) caps = NULL;
    Probe p = {0};

    f->qemu[0] = rig_vm_start(&opts);
    connect_conn(f, rig_vm_qmp_path(f->qemu[0]), NULL);
    assert_true(qmp_caps_probe(f->conn, probe_cb, &p, &err));
    assert_true(qmp_loop_run_until(f->base, &p.done, REPLY_MS));
    if (p.error)
        fail_msg("probe: %s", p.error->message);
    caps = p.caps;
    assert_false(qmp_caps_cpu_hotplug(caps));
    assert_string_equal(qmp_caps_machine_type(caps), "none");
    assert_string_not_equal(qmp_caps_list(caps)[0], "cpu-hotplug");
}

static void
test_command_errors(void **state)
{
    Fixture *f = *state;
    RigVm *q = start_qemu(f, 0, NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) args = json_from_string("{\"id\": \"nope\"}", NULL);
    g_autoptr(JsonNode) ret = NULL;

    connect_conn(f, rig_vm_qmp_path(q), NULL);

    assert_false(
        qmp_conn_execute_sync(f->conn, "device_del", json_node_ref(args), &ret, REPLY_MS, &err));
    assert_null(ret);
    assert_true(err->domain == QMP_ERROR);
    assert_int_equal(err->code, QMP_ERROR_DEVICE_NOT_FOUND);
    assert_string_equal(qmp_error_class_name(err), "DeviceNotFound");
    assert_string_equal(err->message, "Device 'nope' not found");
    assert_true(qmp_error_is_qemu(err));
    g_clear_error(&err);

    assert_false(qmp_conn_execute_sync(f->conn, "no-such-command", NULL, &ret, REPLY_MS, &err));
    assert_int_equal(err->code, QMP_ERROR_COMMAND_NOT_FOUND);
    assert_string_equal(qmp_error_class_name(err), "CommandNotFound");
    assert_string_equal(err->message, "The command no-such-command has not been found");
    g_clear_error(&err);

    assert_false(qmp_conn_execute_sync(f->conn, "device_add",
                                       json_from_string("{\"driver\": \"no-such-driver\"}", NULL),
                                       &ret, REPLY_MS, &err));
    assert_int_equal(err->code, QMP_ERROR_GENERIC);
    assert_string_equal(qmp_error_class_name(err), "GenericError");
    assert_string_equal(err->message, "'no-such-driver' is not a valid device model name");
    g_clear_error(&err);

    /* still usable */
    assert_true(qmp_conn_execute_sync(f->conn, "query-status", NULL, &ret, REPLY_MS, &err));
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
}

/* More than 8 commands at once against the real thing: all complete, in
 * order, and the big query-qmp-schema reply comes through whole. */
static void
test_many_commands(void **state)
{
    Fixture *f = *state;
    RigVm *q = start_qemu(f, 0, NULL);
    Reply r[20];

    connect_conn(f, rig_vm_qmp_path(q), NULL);
    for (guint i = 0; i < G_N_ELEMENTS(r); i++) {
        g_autoptr(GError) err = NULL;
        r[i] = (Reply){.f = f};
        assert_true(qmp_conn_execute(f->conn, i == 10 ? "query-qmp-schema" : "query-status", NULL,
                                     reply_cb, &r[i], &err));
    }
    {
        gboolean done = FALSE;
        gint64 end = g_get_monotonic_time() + REPLY_MS * 1000;
        while (f->n_done < G_N_ELEMENTS(r) && g_get_monotonic_time() < end)
            qmp_loop_run_until(f->base, &done, 100);
    }
    for (guint i = 0; i < G_N_ELEMENTS(r); i++) {
        assert_int_equal(r[i].calls, 1);
        if (r[i].error)
            fail_msg("command %u: %s", i, r[i].error->message);
        if (i == 10)
            assert_true(json_array_get_length(qmp_json_node_array(r[i].ret)) > 1000);
        else
            assert_string_equal(qmp_json_get_string(qmp_json_node_object(r[i].ret), "status"),
                                "prelaunch");
        reply_clear(&r[i]);
    }
}

/* QEMU is SIGKILLed with commands queued (not yet written): each gets one
 * QMP_ERROR_CLOSED, the listener sees CLOSED, and nothing kills the test
 * (the write hits a dead socket). */
static void
test_qemu_killed_while_pending(void **state)
{
    Fixture *f = *state;
    RigVm *q = start_qemu(f, 0, NULL);
    Reply r[12];
    gboolean never = FALSE;

    connect_conn(f, rig_vm_qmp_path(q), NULL);
    for (guint i = 0; i < G_N_ELEMENTS(r); i++) {
        g_autoptr(GError) err = NULL;
        r[i] = (Reply){.f = f};
        assert_true(qmp_conn_execute(f->conn, "query-qmp-schema", NULL, reply_cb, &r[i], &err));
    }
    rig_vm_kill(q);
    assert_false(rig_vm_is_running(q));
    {
        gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        while (qmp_conn_get_state(f->conn) != QMP_CONN_CLOSED && g_get_monotonic_time() < end)
            qmp_loop_run_until(f->base, &never, 100);
    }
    assert_int_equal(qmp_conn_get_state(f->conn), QMP_CONN_CLOSED);
    qmp_loop_run_until(f->base, &never, 100);
    for (guint i = 0; i < G_N_ELEMENTS(r); i++) {
        assert_int_equal(r[i].calls, 1);
        assert_non_null(r[i].error);
        assert_true(r[i].error->domain == QMP_ERROR);
        assert_int_equal(r[i].error->code, QMP_ERROR_CLOSED);
        reply_clear(&r[i]);
    }
    assert_int_equal(g_array_index(f->states, QmpConnState, f->states->len - 1), QMP_CONN_CLOSED);
    assert_int_equal(qmp_conn_get_last_error(f->conn)->code, QMP_ERROR_CLOSED);
    assert_true(strlen(g_ptr_array_index(f->state_errors, f->state_errors->len - 1)) > 0);
}

/* QEMU dies and a new one comes up on the same socket path: READY again. */
static void
test_reconnect_after_restart(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autofree char *path = NULL, *qmp_arg = NULL;
    QmpConnOptions opts = {.reconnect = TRUE, .backoff_initial_ms = 50, .backoff_max_ms = 400};
    const char *args[3];
    g_autoptr(JsonNode) ret = NULL;
    guint ready_count = 0, closed_between = 0;

    f->dir = rig_make_tmp("test-qmp-qemu-XXXXXX");
    assert_non_null(f->dir);
    path = g_build_filename(f->dir, "fixed.sock", NULL);
    qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", path);
    args[0] = "-qmp";
    args[1] = qmp_arg;
    args[2] = NULL;

    start_qemu(f, 0, args);
    connect_conn(f, path, &opts);
    assert_true(qmp_conn_execute_sync(f->conn, "query-status", NULL, &ret, REPLY_MS, &err));
    g_clear_pointer(&ret, json_node_unref);

    rig_vm_kill(f->qemu[0]);
    {
        gboolean never = FALSE;
        gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        while (qmp_conn_get_state(f->conn) == QMP_CONN_READY && g_get_monotonic_time() < end)
            qmp_loop_run_until(f->base, &never, 50);
    }
    assert_int_not_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
    /* it keeps trying while nothing is there */
    {
        gboolean never = FALSE;
        qmp_loop_run_until(f->base, &never, 300);
    }
    assert_int_not_equal(qmp_conn_get_state(f->conn), QMP_CONN_READY);
    g_clear_pointer(&f->qemu[0], rig_vm_free);

    start_qemu(f, 1, args);
    if (!qmp_conn_wait_ready(f->conn, READY_MS, &err))
        fail_msg("no reconnect: %s", err->message);
    /* ... ready, closed, (connecting, closed)*, connecting ... ready */
    for (guint i = 0; i < f->states->len; i++) {
        QmpConnState st = g_array_index(f->states, QmpConnState, i);
        ready_count += st == QMP_CONN_READY;
        closed_between += ready_count == 1 && st == QMP_CONN_CLOSED;
    }
    assert_int_equal(ready_count, 2);
    assert_true(closed_between >= 1);
    assert_int_equal(g_array_index(f->states, QmpConnState, f->states->len - 1), QMP_CONN_READY);
    {
        int major;
        rig_vm_version(f->qemu[1], &major, NULL, NULL);
        assert_int_equal(qmp_conn_get_greeting(f->conn)->major, major);
    }
    assert_true(qmp_conn_execute_sync(f->conn, "query-status", NULL, &ret, REPLY_MS, &err));
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(ret), "status"), "prelaunch");
}

/* ---- hotplugctl vm info ---------------------------------------------- */

/* The capability line of `vm info` for this QEMU. */
static char *
caps_line(RigVm *vm, const Version *v)
{
    g_autoptr(GPtrArray) want = want_caps(vm, v);

    g_ptr_array_add(want, NULL);
    return g_strjoinv(" ", (char **)want->pdata);
}

static void
test_hotplugctl_vm_info(void **state)
{
    Fixture *f = *state;
    RigVm *q = start_qemu(f, 0, NULL);
    const char *path = rig_vm_qmp_path(q);
    g_autoptr(RigCtl) r = rig_ctl("vm", "info", path, NULL);
    g_autofree char *line = NULL, *qemu = NULL, *machine = NULL, *caps = NULL, *want = NULL;
    Version v = {0};

    rig_ctl_assert_exit(r, 0);
    version_of(q, &v);
    line = g_strdup_printf("vm:           %s\n", path);
    assert_true(g_str_has_prefix(r->out, line));
    qemu = g_strdup_printf("\nqemu:         %d.%d.%d", v.major, v.minor, v.micro);
    assert_non_null(strstr(r->out, qemu));
    machine = g_strdup_printf("\nmachine:      %s\n", v.machine);
    assert_non_null(strstr(r->out, machine));
    assert_non_null(strstr(r->out, "\nstatus:       prelaunch\n"));
    caps = caps_line(q, &v);
    want = g_strdup_printf("\ncapabilities: %s\n", caps);
    if (!strstr(r->out, want))
        fail_msg("want%s in:\n%s", want, r->out);
    assert_string_equal(r->err, "");
    g_free(v.machine);
}

static void
test_hotplugctl_vm_info_json(void **state)
{
    Fixture *f = *state;
    RigVm *q = start_qemu(f, 0, NULL);
    const char *path = rig_vm_qmp_path(q);
    g_autoptr(RigCtl) r = rig_ctl("--json", "vm", "info", path, NULL);
    g_autoptr(GPtrArray) want = NULL;
    g_autofree char *version = NULL;
    Version v = {0};
    JsonObject *o;
    JsonArray *caps;

    rig_ctl_assert_exit(r, 0);
    version_of(q, &v);
    /* one object on one line */
    assert_true(g_str_has_suffix(r->out, "}\n"));
    assert_ptr_equal(strchr(r->out, '\n'), r->out + strlen(r->out) - 1);
    o = rig_ctl_result(r);
    assert_string_equal(qmp_json_get_string(o, "vm"), path);
    version = g_strdup_printf("%d.%d.%d", v.major, v.minor, v.micro);
    assert_string_equal(qmp_json_get_string(o, "version"), version);
    assert_true(strlen(qmp_json_get_string(o, "package")) > 0);
    assert_string_equal(qmp_json_get_string(o, "machine"), v.machine);
    assert_string_equal(qmp_json_get_string(o, "status"), "prelaunch");
    caps = qmp_json_get_array(o, "capabilities");
    assert_non_null(caps);
    want = want_caps(q, &v);
    assert_int_equal(json_array_get_length(caps), want->len);
    for (guint i = 0; i < want->len; i++)
        assert_string_equal(qmp_json_node_string(json_array_get_element(caps, i)), want->pdata[i]);
    g_free(v.machine);
}

static void
test_hotplugctl_vm_info_missing(void **state)
{
    Fixture *f = *state;
    g_autofree char *path = NULL, *want = NULL, *desc = NULL;
    g_autoptr(RigCtl) r = NULL;
    g_autoptr(RigCtl) j = NULL;
    JsonObject *e;

    f->dir = rig_make_tmp("test-qmp-qemu-XXXXXX");
    path = g_build_filename(f->dir, "missing.sock", NULL);
    r = rig_ctl("vm", "info", path, NULL);
    rig_ctl_assert_exit(r, 1);
    want = g_strdup_printf("hotplugctl: cannot connect to %s: No such file or directory\n", path);
    assert_string_equal(r->err, want);
    assert_string_equal(r->out, "");
    j = rig_ctl("--json", "vm", "info", path, NULL);
    rig_ctl_assert_exit(j, 1);
    assert_string_equal(j->err, want);
    e = qmp_json_get_object(rig_ctl_result(j), "error");
    assert_non_null(e);
    /* the class is the service layer's (service.h): the VM is not there */
    assert_string_equal(qmp_json_get_string(e, "class"), "VmGone");
    desc = g_strdup_printf("cannot connect to %s: No such file or directory", path);
    assert_string_equal(qmp_json_get_string(e, "desc"), desc);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_connect_greeting),
        T(test_caps_probe),
        T(test_caps_probe_no_cpu_hotplug),
        T(test_command_errors),
        T(test_many_commands),
        T(test_qemu_killed_while_pending),
        T(test_reconnect_after_restart),
        T(test_hotplugctl_vm_info),
        T(test_hotplugctl_vm_info_json),
        T(test_hotplugctl_vm_info_missing),
    };
#undef T

    if (g_getenv("QMP_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("QMP_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
