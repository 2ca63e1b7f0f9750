/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugctl memory ... and the memory library against a real QEMU 7.2
 * (x86 pc, TCG, -m 512M,slots=2,maxmem=2G), with the test guest where the
 * guest must act; and the memory and vcpu verbs through a hotplugd the
 * test starts.  Each test starts its own QEMU; teardown kills it, and the
 * hotplugd a test started. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "hotplug-memory.h"
#include "qemu-helper.h"
#include "qmp-conn.h"
#include "qmp-json.h"

#define BOOT_MS 90000
#define REPLY_MS 20000

typedef struct {
    TestQemu *qemu;
    struct event_base *base;
    QmpConn *spare; /* the test's own QMP connection */
    /* library-level tests */
    QmpConn *conn;
    HotplugVm *vm;
    GPtrArray *trace;
    gboolean resumed;
    /* through hotplugd */
    char *dir;     /* its state dir, control socket, log, QMP socket */
    GPid hotplugd; /* 0: none running */
} Fixture;

static int hotplugd_stop(Fixture *f);
static void rm_dir(const char *dir);

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->base = event_base_new();
    f->trace = g_ptr_array_new_with_free_func(g_free);
    *state = f;
    return 0;
}

static int
teardown(void **state)
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
    hotplugd_stop(f);
    g_clear_pointer(&f->qemu, test_qemu_free);
    if (f->dir)
        rm_dir(f->dir);
    g_free(f->dir);
    event_base_free(f->base);
    g_ptr_array_unref(f->trace);
    g_free(f);
    return 0;
}

static void
start_vm_extra(Fixture *f, gboolean guest, const char *cmdline, const char *const *extra)
{
    g_autoptr(GError) err = NULL;
    TestQemuOptions opts = {
        .machine = "pc",
        .with_guest = guest,
        .paused = !guest,
        .guest_cmdline = cmdline,
        .smp = "1,maxcpus=4",
        .mem = "512M,slots=2,maxmem=2G",
        .extra_args = extra,
    };

    if (guest && !test_qemu_guest_available(&err))
        fail_msg("%s", err->message);
    f->qemu = test_qemu_start(&opts, &err);
    if (!f->qemu)
        fail_msg("cannot start QEMU: %s", err->message);
    if (guest && !test_qemu_wait_console(f->qemu, "HOTPLUG-GUEST-READY", BOOT_MS, &err))
        fail_msg("guest did not boot: %s", err->message);
    f->spare = qmp_conn_new(f->base, test_qemu_spare_qmp_path(f->qemu), NULL);
    if (!qmp_conn_open(f->spare, &err) || !qmp_conn_wait_ready(f->spare, REPLY_MS, &err))
        fail_msg("spare QMP: %s", err->message);
}

static void
start_vm(Fixture *f, gboolean guest, const char *cmdline)
{
    start_vm_extra(f, guest, cmdline, NULL);
}

static JsonNode *
qmp(Fixture *f, const char *cmd, const char *args_json)
{
    g_autoptr(GError) err = NULL;
    JsonNode *args = args_json ? json_from_string(args_json, NULL) : NULL;
    JsonNode *ret = NULL;

    if (!qmp_conn_execute_sync(f->spare, cmd, args, &ret, REPLY_MS, &err))
        fail_msg("%s: %s", cmd, err->message);
    return ret;
}

static int
ctl(char **out, char **err, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    g_autofree char *o = NULL, *e = NULL;
    const char *a;
    va_list ap;
    int status = -1;

    g_ptr_array_add(argv, (gpointer)HOTPLUGCTL_PATH);
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)))
        g_ptr_array_add(argv, (gpointer)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &o, &e,
                      &status, &error))
        fail_msg("cannot run %s: %s", HOTPLUGCTL_PATH, error->message);
    if (g_getenv("HOTPLUG_TEST_VERBOSE"))
        fprintf(stderr, "hotplugctl ...: %s%s", o, e);
    if (out)
        *out = g_steal_pointer(&o);
    if (err)
        *err = g_steal_pointer(&e);
    if (!WIFEXITED(status))
        fail_msg("hotplugctl did not exit normally (status %d)", status);
    return WEXITSTATUS(status);
}

/* The one JSON object hotplugctl --json printed. */
static JsonNode *
json_result(const char *out)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *line = g_strstrip(g_strdup(out));
    JsonNode *n;

    if (strchr(line, '\n'))
        fail_msg("more than one line: %s", out);
    n = json_from_string(line, &err);
    if (!n || !JSON_NODE_HOLDS_OBJECT(n))
        fail_msg("not a JSON object: %s", out);
    return n;
}

static void
wait_console(Fixture *f, const char *needle)
{
    g_autoptr(GError) err = NULL;

    if (!test_qemu_wait_console(f->qemu, needle, BOOT_MS, &err))
        fail_msg("%s", err->message);
}

static gboolean
qom_has(Fixture *f, const char *path, const char *name)
{
    g_autofree char *args = g_strdup_printf("{\"path\": \"%s\"}", path);
    g_autoptr(JsonNode) ret = qmp(f, "qom-list", args);
    JsonArray *a = json_node_get_array(ret);

    for (guint i = 0; i < json_array_get_length(a); i++)
        if (g_str_equal(qmp_json_get_string(json_array_get_object_element(a, i), "name"), name))
            return TRUE;
    return FALSE;
}

static guint
n_memory_devices(Fixture *f)
{
    g_autoptr(JsonNode) ret = qmp(f, "query-memory-devices", NULL);
    return json_array_get_length(json_node_get_array(ret));
}

static void
add_dimm0(Fixture *f, const char *size)
{
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) r = NULL;
    JsonObject *o;

    assert_int_equal(ctl(&out, NULL, "--json", "memory", "add", test_qemu_qmp_path(f->qemu), size,
                         NULL),
                     0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "device"), "dimm0");
    assert_string_equal(qmp_json_get_string(o, "kind"), "memory");
    assert_string_equal(qmp_json_get_string(o, "outcome"), "added");
    assert_true(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_true(qom_has(f, "/objects", "mem-dimm0"));
}

/* A DIMM goes in, the guest onlines it (movable), and goes out: deleted,
 * and its backend is gone too. */
static void
test_dimm_plug_unplug(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, TRUE, NULL);
    sock = test_qemu_qmp_path(f->qemu);
    add_dimm0(f, "256M");
    wait_console(f, "HOTPLUG-GUEST: online memory33 movable");
    assert_int_equal(ctl(&out, NULL, "memory", "list", sock, NULL), 0);
    assert_non_null(strstr(out, "dimm0            dimm     256M       0    0    mem-dimm0            -\n"));

    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, &err, "--json", "memory", "del", sock, "dimm0", NULL), 0);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_string_equal(qmp_json_get_string(o, "action"), "unplug");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    printf("MEASURE dimm-unplug 256M: %" G_GINT64_FORMAT " ms\n",
           qmp_json_get_int_default(o, "elapsed_ms", -1));
    assert_false(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_false(qom_has(f, "/objects", "mem-dimm0"));
    assert_int_equal(n_memory_devices(f), 0);
    wait_console(f, "HOTPLUG-GUEST: removed memory33");

    /* an id that is not there: QEMU's own answer */
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "memory", "del", sock, "dimm0", NULL), 3);
    assert_non_null(strstr(out, "dimm0: rejected: DeviceNotFound: Device 'dimm0' not found"));
}

/* The guest onlined the DIMM as kernel memory and filled it: it cannot
 * offline it and refuses (ACPI_DEVICE_OST status 0x82): guest-error, exit
 * 4, and the DIMM and its backend stay. */
static void
test_dimm_refused(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, TRUE, "hp.mem=kernel hp.fillmem");
    sock = test_qemu_qmp_path(f->qemu);
    add_dimm0(f, "256M");
    wait_console(f, "HOTPLUG-GUEST: fillmem pinned");
    assert_int_equal(ctl(&out, &err, "--json", "memory", "del", sock, "dimm0", NULL), 4);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "guest-error");
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
    assert_non_null(strstr(qmp_json_get_string(o, "detail"), "status 0x82"));
    assert_true(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_true(qom_has(f, "/objects", "mem-dimm0"));
    assert_int_equal(n_memory_devices(f), 1);
}

/* Errors before anything is created, and an undo after a failing
 * device_add (no backend left behind).  No guest needed. */
static void
test_dimm_add_errors(void **state)
{
    Fixture *f = *state;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    const char *sock;
    JsonObject *o;

    start_vm(f, FALSE, NULL);
    sock = test_qemu_qmp_path(f->qemu);
    assert_int_equal(ctl(NULL, &err, "memory", "add", sock, "3M", NULL), 2);
    assert_non_null(strstr(err, "multiple of 2M"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "memory", "add", sock, "2G", NULL), 1);
    assert_non_null(strstr(err, "not enough room below maxmem: 512 MiB boot memory + 0 MiB "
                                "plugged + 2048 MiB asked is over maxmem 2048 MiB"));
    /* device_add refuses a node the VM does not have: the backend goes again */
    assert_int_equal(ctl(&out, NULL, "--json", "memory", "add", sock, "128M", "--node", "3",
                         "--id", "bad", NULL),
                     3);
    r = json_result(out);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "rejected");
    assert_non_null(strstr(qmp_json_get_string(o, "detail"), "step 2 of 2 (device_add)"));
    assert_false(qom_has(f, "/objects", "mem-bad"));
    assert_false(qom_has(f, "/machine/peripheral", "bad"));
    /* fill both slots, then one more */
    add_dimm0(f, "256M");
    g_clear_pointer(&out, g_free);
    assert_int_equal(ctl(&out, NULL, "memory", "add", sock, "128M", "--id", "x", NULL), 0);
    assert_non_null(strstr(out, "x: added"));
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "memory", "add", sock, "128M", NULL), 1);
    assert_non_null(strstr(err, "no free memory slot: all 2 slots are used"));
    assert_int_equal(n_memory_devices(f), 2);
    /* a device that is not memory is not removed by "memory del" */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(&out, &err, "device", "add", sock, "virtio-net-pci", "nic1", NULL), 0);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(NULL, &err, "memory", "del", sock, "nic1", NULL), 2);
    assert_non_null(strstr(err, "nic1 is a virtio-net-pci, not a memory device"));
}

/* ---- library level: --retry reaching deleted ------------------------------- */

static void
cont_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    Fixture *f = opaque;

    f->resumed = error == NULL;
}

static void
retry_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Fixture *f = opaque;

    g_ptr_array_add(f->trace,
                    g_strdup_printf("%s %u %s", hotplug_op_event_name(ev),
                                    hotplug_op_get_attempts(op),
                                    hotplug_outcome_name(ev == HOTPLUG_OP_EV_ATTEMPT_RESULT
                                                             ? hotplug_op_get_attempt_outcome(op)
                                                             : hotplug_op_get_outcome(op))));
    /* the paused guest could not answer attempt 1: let it run now */
    if (ev == HOTPLUG_OP_EV_ATTEMPT_RESULT && hotplug_op_get_attempts(op) == 1)
        assert_true(qmp_conn_execute(f->spare, "cont", NULL, cont_cb, f, NULL));
}

static void
test_dimm_retry_after_resume(void **state)
{
    static const HotplugVmListener l = {.op = retry_op_cb};
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(HotplugOp) op = NULL;
    g_autoptr(JsonNode) devices = NULL;
    g_autoptr(JsonNode) stopped = NULL;
    g_autofree char *backend = NULL;
    HotplugUnplugOptions opts = {.timeout_ms = 1500, .retries = 3, .retry_interval_ms = 500};
    g_autofree char *last = NULL;
    gboolean never = FALSE;

    start_vm(f, TRUE, NULL);
    add_dimm0(f, "128M");
    wait_console(f, "HOTPLUG-GUEST: online memory32 movable");
    stopped = qmp(f, "stop", NULL);

    f->conn = qmp_conn_new(f->base, test_qemu_qmp_path(f->qemu), NULL);
    if (!qmp_conn_open(f->conn, &err) || !qmp_conn_wait_ready(f->conn, REPLY_MS, &err))
        fail_msg("QMP: %s", err->message);
    f->vm = hotplug_vm_new("vm", f->conn, &(HotplugVmOptions){.gone_on_close = TRUE});
    hotplug_vm_add_listener(f->vm, &l, f);
    if (!qmp_conn_execute_sync(f->conn, "query-memory-devices", NULL, &devices, REPLY_MS, &err))
        fail_msg("%s", err->message);
    backend = hotplug_memory_backend_of(devices, "dimm0");
    assert_string_equal(backend, "mem-dimm0");
    op = hotplug_memory_del(f->vm, "dimm0", backend, &opts, NULL, &err);
    assert_non_null(op);
    /* 60 s at most: 4 attempts of 1.5 s and the guest's own time */
    for (guint i = 0; i < 300 && !hotplug_op_is_final(op); i++)
        qmp_loop_run_until(f->base, &never, 200);
    assert_true(f->resumed);
    assert_int_equal(hotplug_op_get_outcome(op), HOTPLUG_OUTCOME_DELETED);
    assert_true(hotplug_op_get_attempts(op) >= 2);
    assert_true(f->trace->len >= 5);
    assert_string_equal(f->trace->pdata[0], "request 0 pending");
    assert_string_equal(f->trace->pdata[1], "attempt 1 pending");
    assert_string_equal(f->trace->pdata[2], "attempt-result 1 not-deleted");
    assert_string_equal(f->trace->pdata[3], "attempt 2 pending");
    last = g_strdup_printf("outcome %u deleted", hotplug_op_get_attempts(op));
    assert_string_equal(f->trace->pdata[f->trace->len - 1], last);
    assert_false(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_false(qom_has(f, "/objects", "mem-dimm0"));
    wait_console(f, "HOTPLUG-GUEST: removed memory32");
}

/* ---- the verbs through hotplugd ------------------------------------------------ */

#define HOTPLUGD_READY_MS 15000
#define HOTPLUGD_STOP_MS 10000

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

/* build/hotplugd --foreground, beside build/hotplugctl, on f->dir */
static void
hotplugd_start(Fixture *f, const char *ctl_path)
{
    g_autofree char *bindir = g_path_get_dirname(HOTPLUGCTL_PATH);
    g_autofree char *prog = g_build_filename(bindir, "hotplugd", NULL);
    g_autofree char *state = g_build_filename(f->dir, "state", NULL);
    g_autofree char *log = g_build_filename(f->dir, "hotplugd.log", NULL);
    const char *argv[] = {prog, "--foreground", "--state-dir", state, "--socket", ctl_path, "-v",
                          NULL};
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

/* Stop it (SIGTERM, SIGKILL after HOTPLUGD_STOP_MS); its wait status, or
 * -1 when none ran or it had to be killed. */
static int
hotplugd_stop(Fixture *f)
{
    gint64 end = g_get_monotonic_time() + HOTPLUGD_STOP_MS * 1000;
    pid_t pid = f->hotplugd;
    int status = -1;

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

/* hotplugctl --json --socket CTL_PATH vm list, until vm is ready */
static void
hotplugd_wait_vm_ready(Fixture *f, const char *ctl_path, const char *vm)
{
    gint64 end = g_get_monotonic_time() + HOTPLUGD_READY_MS * 1000;
    g_autofree char *last = NULL;

    while (g_get_monotonic_time() < end) {
        g_autofree char *out = NULL, *err = NULL;
        g_autoptr(JsonNode) list = NULL;
        JsonArray *a;
        int rc = ctl(&out, &err, "--json", "--socket", ctl_path, "vm", "list", NULL);

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

/* Run hotplugctl --json --socket CTL_PATH ARGS... expecting exit `want`; its
 * one JSON result (NULL when want is not 0). */
static JsonNode *
hpd_json(Fixture *f, const char *ctl_path, int want, const char *verb, const char *what,
         const char *vm, const char *arg)
{
    g_autofree char *out = NULL, *err = NULL;
    int rc = ctl(&out, &err, "--json", "--socket", ctl_path, verb, what, vm, arg, NULL);

    if (rc != want) {
        g_autofree char *log = hotplugd_log(f);
        fail_msg("%s %s %s %s through hotplugd: exit %d, not %d: %s%s\nhotplugd: %s", verb, what,
                 vm, arg ? arg : "", rc, want, out, err, log);
    }
    return want == 0 ? json_result(out) : NULL;
}

static void
assert_result(JsonNode *r, const char *device, const char *kind, const char *action,
              const char *outcome)
{
    JsonObject *o = json_node_get_object(r);

    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_string_equal(qmp_json_get_string(o, "device"), device);
    assert_string_equal(qmp_json_get_string(o, "kind"), kind);
    assert_string_equal(qmp_json_get_string(o, "action"), action);
    assert_string_equal(qmp_json_get_string(o, "outcome"), outcome);
    assert_int_equal(qmp_json_get_int_default(o, "attempts", -1), 1);
}

/* memory add/list/del and vcpu enable/list/disable by VM name, through a
 * hotplugd started here on the VM's third QMP socket: the same outcomes as
 * in direct mode, and errors keep their class (exit code).  The vCPU is
 * unplugged last: QEMU 7.2 crashes on a hot-add after a vCPU unplug. */
static void
test_verbs_through_hotplugd(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) error = NULL;
    g_autofree char *hpd_qmp = NULL, *qmp_arg = NULL, *ctl_path = NULL;
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) r = NULL;
    const char *extra[3];
    JsonObject *o;
    JsonArray *a;
    gint64 end;
    int rc, status;

    f->dir = g_dir_make_tmp("mem-hpd-XXXXXX", &error);
    if (!f->dir)
        fail_msg("temp dir: %s", error->message);
    hpd_qmp = g_build_filename(f->dir, "hpd.sock", NULL);
    ctl_path = g_build_filename(f->dir, "ctl.sock", NULL);
    qmp_arg = g_strdup_printf("unix:%s,server=on,wait=off", hpd_qmp);
    extra[0] = "-qmp";
    extra[1] = qmp_arg;
    extra[2] = NULL;
    start_vm_extra(f, TRUE, NULL, extra);

    hotplugd_start(f, ctl_path);
    end = g_get_monotonic_time() + HOTPLUGD_READY_MS * 1000;
    do {
        g_clear_pointer(&out, g_free);
        g_clear_pointer(&err, g_free);
        rc = ctl(&out, &err, "--socket", ctl_path, "vm", "list", NULL);
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
    rc = ctl(&out, &err, "--socket", ctl_path, "vm", "add", "vm1", hpd_qmp, NULL);
    if (rc != 0)
        fail_msg("vm add: exit %d: %s%s", rc, out, err);
    hotplugd_wait_vm_ready(f, ctl_path, "vm1");

    /* a DIMM in and out */
    r = hpd_json(f, ctl_path, 0, "memory", "add", "vm1", "256M");
    assert_result(r, "dimm0", "memory", "plug", "added");
    g_clear_pointer(&r, json_node_unref);
    assert_true(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_true(qom_has(f, "/objects", "mem-dimm0"));
    wait_console(f, "HOTPLUG-GUEST: online memory33 movable");
    r = hpd_json(f, ctl_path, 0, "memory", "list", "vm1", NULL);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    a = qmp_json_get_array(o, "memory");
    assert_non_null(a);
    assert_int_equal(json_array_get_length(a), 1);
    o = json_array_get_object_element(a, 0);
    assert_string_equal(qmp_json_get_string(o, "id"), "dimm0");
    assert_string_equal(qmp_json_get_string(o, "backend"), "mem-dimm0");
    assert_int_equal(qmp_json_get_int_default(o, "size", -1), 256 << 20);
    g_clear_pointer(&r, json_node_unref);
    r = hpd_json(f, ctl_path, 0, "memory", "del", "vm1", "dimm0");
    assert_result(r, "dimm0", "memory", "unplug", "deleted");
    g_clear_pointer(&r, json_node_unref);
    assert_false(qom_has(f, "/machine/peripheral", "dimm0"));
    assert_false(qom_has(f, "/objects", "mem-dimm0"));
    assert_int_equal(n_memory_devices(f), 0);
    wait_console(f, "HOTPLUG-GUEST: removed memory33");
    /* checks that need QEMU keep their class through the daemon: no room
     * (Unsupported, 1), not a memory device (InvalidArgument, 2) */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(&out, &err, "--socket", ctl_path, "memory", "add", "vm1", "2G", NULL), 1);
    assert_non_null(strstr(err, "not enough room below maxmem"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(&out, &err, "--socket", ctl_path, "memory", "del", "vm1", "nosuch", NULL),
                     3);
    assert_non_null(strstr(out, "nosuch: rejected: DeviceNotFound"));

    /* a vCPU in */
    r = hpd_json(f, ctl_path, 0, "vcpu", "enable", "vm1", "1");
    assert_result(r, "cpu-s0-c1-t0", "vcpu", "plug", "added");
    g_clear_pointer(&r, json_node_unref);
    wait_console(f, "HOTPLUG-GUEST: online cpu1");
    r = hpd_json(f, ctl_path, 0, "vcpu", "list", "vm1", NULL);
    o = json_node_get_object(r);
    assert_string_equal(qmp_json_get_string(o, "vm"), "vm1");
    assert_int_equal(qmp_json_get_int_default(o, "vcpus", -1), 2);
    assert_int_equal(qmp_json_get_int_default(o, "maxcpus", -1), 4);
    a = qmp_json_get_array(o, "entities");
    assert_non_null(a);
    assert_string_equal(qmp_json_get_string(json_array_get_object_element(a, 1), "state"),
                        "online");
    g_clear_pointer(&r, json_node_unref);
    /* refused before anything is sent: boot CPU (2), no free slot (1) */
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(&out, &err, "--socket", ctl_path, "vcpu", "disable", "vm1", "0", NULL),
                     2);
    assert_non_null(strstr(err, "is a boot CPU"));
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    assert_int_equal(ctl(&out, &err, "--socket", ctl_path, "vcpu", "set", "vm1", "5", NULL), 1);
    assert_non_null(strstr(err, "no free slot for 5 vCPUs: the VM has 2 of at most 4"));
    /* and out again, last */
    r = hpd_json(f, ctl_path, 0, "vcpu", "disable", "vm1", "1");
    assert_result(r, "cpu-s0-c1-t0", "vcpu", "unplug", "deleted");
    assert_int_equal(qmp_json_get_int_default(json_node_get_object(r), "timeout_ms", -1), 60000);
    g_clear_pointer(&r, json_node_unref);
    assert_false(qom_has(f, "/machine/peripheral", "cpu-s0-c1-t0"));
    wait_console(f, "HOTPLUG-GUEST: removed cpu1");

    status = hotplugd_stop(f);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_autofree char *log = hotplugd_log(f);
        fail_msg("hotplugd did not stop cleanly (status %d)\nhotplugd: %s", status, log);
    }
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_dimm_plug_unplug),
        T(test_dimm_refused),
        T(test_dimm_add_errors),
        T(test_dimm_retry_after_resume),
        T(test_verbs_through_hotplugd),
    };
#undef T

    /* HOTPLUG_TEST_FILTER=test_node runs only the tests that match */
    if (g_getenv("HOTPLUG_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("HOTPLUG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
