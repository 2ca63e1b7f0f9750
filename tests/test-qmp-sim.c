/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench/qmp-sim, the simulated QEMU monitors: QMP on the wire exactly as
 * QEMU 7.2 writes it, and the hotplug engine driven against it (which
 * proves the engine works with the simulator the scale benchmark uses). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib/gstdio.h>

#include "fake-peer.h"
#include "hotplug-vm.h"
#include "qmp-caps.h"
#include "qmp-conn.h"

#define WAIT_MS 5000

/* byte for byte what QEMU 7.2.22 sends */
#define GREETING FAKE_PEER_GREETING_7_2 "\r\n"

/* ---- the simulator process -------------------------------------------- */

typedef struct {
    char *dir;
    GPid pid;     /* 0 when not running */
    int out_fd;   /* its stdout */
    GString *out; /* what it printed so far */
    struct event_base *base;
} Fixture;

static void
sim_child_setup(gpointer data)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* Read the simulator's stdout until it holds needle (after offset from). */
static gboolean
sim_wait_output(Fixture *f, gsize from, const char *needle, guint timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while (!strstr(f->out->str + MIN(from, f->out->len), needle)) {
        struct pollfd pfd = {.fd = f->out_fd, .events = POLLIN};
        gint64 left = (end - g_get_monotonic_time()) / 1000;
        char buf[4096];
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return FALSE;
        n = read(f->out_fd, buf, sizeof(buf));
        if (n <= 0)
            return FALSE;
        g_string_append_len(f->out, buf, n);
    }
    return TRUE;
}

/* Start qmp-sim --dir f->dir --vms N and the extra arguments (NULL-ended). */
static void
sim_start(Fixture *f, guint vms, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) error = NULL;
    const char *arg;
    va_list ap;

    g_ptr_array_add(argv, g_strdup(QMP_SIM_PATH));
    g_ptr_array_add(argv, g_strdup("--dir"));
    g_ptr_array_add(argv, g_strdup(f->dir));
    g_ptr_array_add(argv, g_strdup("--vms"));
    g_ptr_array_add(argv, g_strdup_printf("%u", vms));
    va_start(ap, vms);
    while ((arg = va_arg(ap, const char *)))
        g_ptr_array_add(argv, g_strdup(arg));
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_async_with_pipes(NULL, (char **)argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                  sim_child_setup, NULL, &f->pid, NULL, &f->out_fd, NULL, &error))
        fail_msg("cannot start %s: %s", QMP_SIM_PATH, error->message);
    if (!sim_wait_output(f, 0, "qmp-sim: ready", WAIT_MS))
        fail_msg("qmp-sim did not get ready; it printed: %s", f->out->str);
}

/* SIGTERM and wait; returns the exit status (or -1 when it had to be killed). */
static int
sim_stop(Fixture *f)
{
    gint64 end = g_get_monotonic_time() + WAIT_MS * 1000;
    int status = 0;

    if (!f->pid)
        return -1;
    kill(f->pid, SIGTERM);
    while (waitpid(f->pid, &status, WNOHANG) == 0) {
        if (g_get_monotonic_time() > end) {
            kill(f->pid, SIGKILL);
            waitpid(f->pid, &status, 0);
            f->pid = 0;
            return -1;
        }
        g_usleep(10000);
    }
    g_spawn_close_pid(f->pid);
    f->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *
sim_sock(Fixture *f, guint vm)
{
    return g_strdup_printf("%s/vm%u.sock", f->dir, vm);
}

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->dir = g_dir_make_tmp("qmp-sim-XXXXXX", NULL);
    assert_non_null(f->dir);
    f->out = g_string_new(NULL);
    f->out_fd = -1;
    f->base = event_base_new();
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    if (f->pid) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
        g_spawn_close_pid(f->pid);
    }
    if (f->out_fd >= 0)
        close(f->out_fd);
    /* the simulator removes its sockets; a killed one leaves them */
    for (guint i = 1; i <= 1000; i++) {
        g_autofree char *p = sim_sock(f, i);
        g_unlink(p);
    }
    g_rmdir(f->dir);
    g_free(f->dir);
    g_string_free(f->out, TRUE);
    event_base_free(f->base);
    g_free(f);
    return 0;
}

/* ---- a raw client --------------------------------------------------------- */

typedef struct {
    int fd;
    GString *in;
} Raw;

static void
raw_connect(Raw *r, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(r->fd >= 0);
    assert_int_equal(connect(r->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    r->in = g_string_new(NULL);
}

static void
raw_close(Raw *r)
{
    close(r->fd);
    g_string_free(r->in, TRUE);
}

/* The next line including its "\r\n", or NULL after timeout_ms. */
static char *
raw_line(Raw *r, guint timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        char *nl = strchr(r->in->str, '\n');
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        gint64 left = (end - g_get_monotonic_time()) / 1000;
        char buf[4096];
        ssize_t n;

        if (nl) {
            char *line = g_strndup(r->in->str, nl + 1 - r->in->str);
            g_string_erase(r->in, 0, nl + 1 - r->in->str);
            return line;
        }
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return NULL;
        n = read(r->fd, buf, sizeof(buf));
        if (n <= 0)
            return NULL;
        g_string_append_len(r->in, buf, n);
    }
}

static void
raw_send(Raw *r, const char *text)
{
    assert_int_equal(write(r->fd, text, strlen(text)), (ssize_t)strlen(text));
}

/* The next line must be exactly want. */
static void
raw_expect(Raw *r, const char *want)
{
    g_autofree char *line = raw_line(r, WAIT_MS);

    if (!line)
        fail_msg("no line from qmp-sim; expected %s", want);
    assert_string_equal(line, want);
}

/* The next line must start with prefix (events carry a timestamp). */
static void
raw_expect_prefix(Raw *r, const char *prefix, const char *suffix)
{
    g_autofree char *line = raw_line(r, WAIT_MS);

    if (!line)
        fail_msg("no line from qmp-sim; expected %s...", prefix);
    if (!g_str_has_prefix(line, prefix) || !g_str_has_suffix(line, suffix))
        fail_msg("got %s, expected %s...%s", line, prefix, suffix);
}

static void
raw_negotiate(Raw *r)
{
    raw_expect(r, GREETING);
    raw_send(r, "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}");
    raw_expect(r, "{\"return\": {}}\r\n");
}

/* ---- the engine against the simulator -------------------------------------- */

typedef struct {
    QmpConn *conn;
    HotplugVm *vm;
    HotplugOp *wait_for;
    gboolean done;
} Engine;

static void
engine_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Engine *e = opaque;

    if (op == e->wait_for && ev == HOTPLUG_OP_EV_OUTCOME)
        e->done = TRUE;
}

static void
engine_open(Fixture *f, Engine *e, guint vm)
{
    static const HotplugVmListener l = {.op = engine_op_cb};
    HotplugVmOptions opts = {.gone_on_close = TRUE};
    g_autoptr(GError) error = NULL;
    g_autofree char *path = sim_sock(f, vm);

    e->conn = qmp_conn_new(f->base, path, NULL);
    if (!qmp_conn_open(e->conn, &error) || !qmp_conn_wait_ready(e->conn, WAIT_MS, &error))
        fail_msg("cannot connect to %s: %s", path, error->message);
    e->vm = hotplug_vm_new("sim", e->conn, &opts);
    hotplug_vm_add_listener(e->vm, &l, e);
}

static void
engine_close(Engine *e)
{
    hotplug_vm_free(e->vm);
    qmp_conn_close(e->conn);
    qmp_conn_unref(e->conn);
}

/* Wait for op's outcome (op is taken) and return it, referenced again. */
static HotplugOp *
engine_wait(Fixture *f, Engine *e, HotplugOp *op, guint timeout_ms)
{
    assert_non_null(op);
    e->wait_for = op;
    e->done = hotplug_op_is_final(op);
    if (!qmp_loop_run_until(f->base, &e->done, timeout_ms))
        fail_msg("no outcome for %s within %u ms (state %s)", hotplug_op_get_device(op), timeout_ms,
                 hotplug_op_state_name(hotplug_op_get_state(op)));
    e->wait_for = NULL;
    return op;
}

static void
engine_plug_kbd(Fixture *f, Engine *e, const char *id)
{
    static const char *const props[] = {"bus=xhci.0", NULL};
    g_autoptr(GError) error = NULL;
    g_autoptr(HotplugOp) op = hotplug_vm_plug_device(e->vm, "usb-kbd", id, props, &error);

    if (!op)
        fail_msg("plug %s: %s", id, error->message);
    engine_wait(f, e, op, WAIT_MS);
    assert_string_equal(hotplug_outcome_name(hotplug_op_get_outcome(op)), "added");
}

static HotplugOp *
engine_unplug(Fixture *f, Engine *e, const char *id, guint timeout_ms)
{
    HotplugUnplugOptions opts = {.timeout_ms = timeout_ms};
    g_autoptr(GError) error = NULL;
    HotplugOp *op = hotplug_vm_unplug(e->vm, HOTPLUG_KIND_DEVICE, id, &opts, NULL, &error);

    if (!op)
        fail_msg("unplug %s: %s", id, error->message);
    return engine_wait(f, e, op, WAIT_MS + timeout_ms);
}

typedef struct {
    gboolean done;
    JsonNode *devices;
} DeviceList;

static void
device_list_cb(HotplugVm *vm, JsonNode *devices, const GError *error, gpointer opaque)
{
    DeviceList *d = opaque;

    assert_null(error);
    d->devices = json_node_ref(devices);
    d->done = TRUE;
}

/* The ids under /machine/peripheral, comma-separated. */
static char *
engine_device_ids(Fixture *f, Engine *e)
{
    DeviceList d = {0};
    g_autoptr(GString) s = g_string_new(NULL);
    JsonArray *a;

    assert_true(hotplug_vm_query_devices(e->vm, device_list_cb, &d, NULL));
    assert_true(qmp_loop_run_until(f->base, &d.done, WAIT_MS));
    a = json_node_get_array(d.devices);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = json_array_get_object_element(a, i);
        g_string_append_printf(s, "%s%s:%s", i ? "," : "", json_object_get_string_member(o, "id"),
                               json_object_get_string_member(o, "type"));
    }
    json_node_unref(d.devices);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* ---- tests: the wire ------------------------------------------------------- */

static void
test_greeting_and_negotiation(void **state)
{
    Fixture *f = *state;
    g_autofree char *path = NULL;
    Raw r;

    sim_start(f, 3, NULL);
    path = sim_sock(f, 2);
    raw_connect(&r, path);
    raw_expect(&r, GREETING);
    raw_send(&r, "{\"execute\":\"query-status\",\"id\":1}");
    raw_expect(&r, "{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting "
                   "capabilities negotiation with 'qmp_capabilities'\"}}\r\n");
    raw_send(&r,
             "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},\"id\":2}");
    raw_expect(&r, "{\"return\": {}, \"id\": 2}\r\n");
    raw_send(&r, "{\"execute\":\"qmp_capabilities\",\"id\":3}");
    raw_expect(&r, "{\"id\": 3, \"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                   "\"Capabilities negotiation is already complete, command ignored\"}}\r\n");
    raw_send(&r, "{\"execute\":\"query-status\",\"id\":\"a\"}");
    raw_expect(&r, "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": "
                   "true}, \"id\": \"a\"}\r\n");
    raw_send(&r, "{\"execute\":\"nosuch\",\"id\":{\"x\":[1,true,null]}}");
    raw_expect(&r, "{\"id\": {\"x\": [1, true, null]}, \"error\": {\"class\": \"CommandNotFound\", "
                   "\"desc\": \"The command nosuch has not been found\"}}\r\n");
    raw_close(&r);
    assert_int_equal(sim_stop(f), 0);
}

static void
test_device_add_del_wire(void **state)
{
    Fixture *f = *state;
    g_autofree char *path = NULL;
    Raw r;

    sim_start(f, 1, NULL);
    path = sim_sock(f, 1);
    raw_connect(&r, path);
    raw_negotiate(&r);
    raw_send(&r, "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"usb-kbd\",\"id\":\"k1\","
                 "\"bus\":\"xhci.0\"},\"id\":1}");
    raw_expect(&r, "{\"return\": {}, \"id\": 1}\r\n");
    raw_send(&r, "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"usb-kbd\",\"id\":\"k1\","
                 "\"bus\":\"xhci.0\"},\"id\":2}");
    raw_expect(&r, "{\"id\": 2, \"error\": {\"class\": \"GenericError\", \"desc\": \"Duplicate "
                   "device ID 'k1'\"}}\r\n");
    raw_send(&r, "{\"execute\":\"qom-list\",\"arguments\":{\"path\":\"/machine/peripheral\"},"
                 "\"id\":3}");
    raw_expect(&r, "{\"return\": [{\"name\": \"type\", \"type\": \"string\"}, {\"name\": \"xhci\", "
                   "\"type\": \"child<qemu-xhci>\"}, {\"name\": \"k1\", \"type\": "
                   "\"child<usb-kbd>\"}], \"id\": 3}\r\n");
    raw_send(&r, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"k1\"},\"id\":4}");
    raw_expect(&r, "{\"return\": {}, \"id\": 4}\r\n");
    raw_expect_prefix(&r, "{\"timestamp\": {\"seconds\": ",
                      "}, \"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"k1\", "
                      "\"path\": \"/machine/peripheral/k1\"}}\r\n");
    raw_send(&r, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"k1\"},\"id\":5}");
    raw_expect(&r, "{\"id\": 5, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'k1' "
                   "not found\"}}\r\n");
    /* a never-completing unplug stays pending */
    raw_send(&r,
             "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"e1000\",\"id\":\"never1\"},"
             "\"id\":6}");
    raw_expect(&r, "{\"return\": {}, \"id\": 6}\r\n");
    raw_send(&r, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"never1\"},\"id\":7}");
    raw_expect(&r, "{\"return\": {}, \"id\": 7}\r\n");
    raw_send(&r, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"never1\"},\"id\":8}");
    raw_expect(&r, "{\"id\": 8, \"error\": {\"class\": \"GenericError\", \"desc\": \"Device never1 "
                   "is already in the process of unplug\"}}\r\n");
    /* a refused one comes back and may be asked again */
    raw_send(&r,
             "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"e1000\",\"id\":\"refuse1\"},"
             "\"id\":9}");
    raw_expect(&r, "{\"return\": {}, \"id\": 9}\r\n");
    raw_send(&r, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"refuse1\"},\"id\":10}");
    raw_expect(&r, "{\"return\": {}, \"id\": 10}\r\n");
    raw_expect_prefix(&r, "{\"timestamp\": ",
                      "\"event\": \"DEVICE_UNPLUG_GUEST_ERROR\", \"data\": {\"device\": "
                      "\"refuse1\", \"path\": \"/machine/peripheral/refuse1\"}}\r\n");
    raw_send(&r, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"refuse1\"},\"id\":11}");
    raw_expect(&r, "{\"return\": {}, \"id\": 11}\r\n");
    raw_expect_prefix(&r, "{\"timestamp\": ",
                      "\"event\": \"DEVICE_UNPLUG_GUEST_ERROR\", "
                      "\"data\": {\"device\": \"refuse1\", \"path\": "
                      "\"/machine/peripheral/refuse1\"}}\r\n");
    raw_close(&r);
}

static void
test_stream_framing(void **state)
{
    Fixture *f = *state;
    g_autofree char *path = NULL;
    Raw r;

    sim_start(f, 1, NULL);
    path = sim_sock(f, 1);
    raw_connect(&r, path);
    raw_negotiate(&r);
    /* two requests in one write, no line endings, a brace inside a string */
    raw_send(&r, "{\"execute\":\"query-status\",\"id\":\"}{\"}  {\"execute\":\"query-version\","
                 "\"id\":2}");
    raw_expect(&r, "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": "
                   "true}, \"id\": \"}{\"}\r\n");
    raw_expect(&r, "{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
                   "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"id\": 2}\r\n");
    /* one request cut in three writes */
    raw_send(&r, "{\"execute\":\"qom-g");
    g_usleep(50000);
    raw_send(&r, "et\",\"arguments\":{\"path\":\"/machine\",");
    g_usleep(50000);
    raw_send(&r, "\"property\":\"type\"},\"id\":3}");
    raw_expect(&r, "{\"return\": \"pc-i440fx-7.2-machine\", \"id\": 3}\r\n");
    /* junk, and input that is not an object */
    raw_send(&r, "x [1] {\"execute\":\"query-status\",\"arguments\":{\"a\":1},\"id\":4}");
    raw_expect(&r, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, "
                   "invalid keyword 'x'\"}}\r\n");
    raw_expect(&r, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON "
                   "object\"}}\r\n");
    raw_expect(&r, "{\"id\": 4, \"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'a' "
                   "is unexpected\"}}\r\n");
    /* non-ASCII ids come back escaped as QEMU escapes them */
    raw_send(&r, "{\"execute\":\"query-status\",\"id\":\"\xc3\xa9\\n\"}");
    raw_expect(&r, "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": "
                   "true}, \"id\": \"\\u00E9\\n\"}\r\n");
    raw_close(&r);
}

static void
test_one_client_at_a_time(void **state)
{
    Fixture *f = *state;
    g_autofree char *path = NULL;
    g_autofree char *none = NULL;
    Raw a, b;

    sim_start(f, 1, NULL);
    path = sim_sock(f, 1);
    raw_connect(&a, path);
    raw_expect(&a, GREETING);
    raw_connect(&b, path);
    none = raw_line(&b, 300);
    assert_null(none);
    raw_close(&a);
    raw_expect(&b, GREETING);
    raw_close(&b);
}

static void
test_stats_and_clean_exit(void **state)
{
    Fixture *f = *state;
    g_autofree char *path = NULL, *sock2 = NULL;
    gsize mark;
    Raw r;

    sim_start(f, 2, "--stats", NULL);
    path = sim_sock(f, 1);
    sock2 = sim_sock(f, 2);
    raw_connect(&r, path);
    raw_negotiate(&r);
    raw_send(&r,
             "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"usb-kbd\",\"id\":\"k\"}}");
    raw_expect(&r, "{\"return\": {}}\r\n");
    raw_send(&r, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"nope\"}}");
    raw_expect(&r, "{\"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'nope' not "
                   "found\"}}\r\n");
    raw_send(&r, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"k\"}}");
    raw_expect(&r, "{\"return\": {}}\r\n");
    raw_expect_prefix(&r, "{\"timestamp\": ",
                      "\"event\": \"DEVICE_DELETED\", \"data\": "
                      "{\"device\": \"k\", \"path\": "
                      "\"/machine/peripheral/k\"}}\r\n");
    mark = f->out->len;
    kill(f->pid, SIGUSR1);
    if (!sim_wait_output(f, mark, "rss_kib=", WAIT_MS))
        fail_msg("no statistics line after SIGUSR1: %s", f->out->str);
    assert_non_null(strstr(f->out->str + mark,
                           "qmp-sim stats: vms=2 clients=1 connections=1 commands=4 errors=1 "
                           "events=1 events_lost=0 unplugs=1 deleted=1 refused=0 never=0 "
                           "devices=2 pending=0 "));
    raw_close(&r);
    assert_true(g_file_test(path, G_FILE_TEST_EXISTS));
    mark = f->out->len;
    assert_int_equal(sim_stop(f), 0);
    /* --stats: one more line at exit; the sockets are gone */
    assert_true(sim_wait_output(f, mark, "qmp-sim stats: vms=2 clients=0", WAIT_MS));
    assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    assert_false(g_file_test(sock2, G_FILE_TEST_EXISTS));
}

static void
test_bad_options(void **state)
{
    const char *argv[] = {QMP_SIM_PATH, "--dir",         "/tmp", "--refuse-share",
                          "0.7",        "--never-share", "0.5",  NULL};
    g_autofree char *err = NULL;
    g_autoptr(GError) error = NULL;
    int status = 0;

    assert_true(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                             NULL, &err, &status, &error));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(err, "add up to more than 1"));
}

/* ---- tests: the engine -------------------------------------------------------- */

static void
test_engine_plug_unplug_deleted(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autofree char *before = NULL, *after = NULL;
    Engine e = {0};

    sim_start(f, 3, NULL);
    engine_open(f, &e, 1);
    engine_plug_kbd(f, &e, "k1");
    before = engine_device_ids(f, &e);
    assert_string_equal(before, "xhci:qemu-xhci,k1:usb-kbd");
    op = engine_unplug(f, &e, "k1", 0);
    assert_string_equal(hotplug_outcome_name(hotplug_op_get_outcome(op)), "deleted");
    assert_int_equal(hotplug_op_get_attempts(op), 1);
    assert_null(hotplug_op_get_error(op));
    after = engine_device_ids(f, &e);
    assert_string_equal(after, "xhci:qemu-xhci");
    engine_close(&e);
}

static void
test_engine_unknown_rejected(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    const GError *err;
    Engine e = {0};

    sim_start(f, 3, NULL);
    engine_open(f, &e, 2);
    op = engine_unplug(f, &e, "nosuch", 0);
    assert_string_equal(hotplug_outcome_name(hotplug_op_get_outcome(op)), "rejected");
    err = hotplug_op_get_error(op);
    assert_non_null(err);
    assert_string_equal(qmp_error_class_name(err), "DeviceNotFound");
    assert_string_equal(err->message, "Device 'nosuch' not found");
    engine_close(&e);
}

static void
test_engine_never_not_deleted(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    g_autofree char *ids = NULL;
    Engine e = {0};

    sim_start(f, 3, "--never-share", "1.0", NULL);
    engine_open(f, &e, 3);
    engine_plug_kbd(f, &e, "k1");
    op = engine_unplug(f, &e, "k1", 300);
    assert_string_equal(hotplug_outcome_name(hotplug_op_get_outcome(op)), "not-deleted");
    assert_int_equal(hotplug_op_get_attempts(op), 1);
    assert_true(hotplug_op_get_elapsed_ms(op) >= 300);
    /* still there, and still tracked */
    ids = engine_device_ids(f, &e);
    assert_string_equal(ids, "xhci:qemu-xhci,k1:usb-kbd");
    assert_ptr_equal(hotplug_vm_find_op(e.vm, "k1"), op);
    engine_close(&e);
}

static void
test_engine_refused_guest_error(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    const char *detail;
    Engine e = {0};

    sim_start(f, 1, "--refuse-share", "1", "--delay-ms", "20", NULL);
    engine_open(f, &e, 1);
    engine_plug_kbd(f, &e, "k1");
    op = engine_unplug(f, &e, "k1", 2000);
    assert_string_equal(hotplug_outcome_name(hotplug_op_get_outcome(op)), "guest-error");
    detail = hotplug_op_get_detail(op);
    assert_non_null(detail);
    assert_non_null(strstr(detail, "DEVICE_UNPLUG_GUEST_ERROR"));
    assert_true(hotplug_op_get_elapsed_ms(op) < 2000);
    engine_close(&e);
}

static void
test_engine_delay(void **state)
{
    Fixture *f = *state;
    g_autoptr(HotplugOp) op = NULL;
    Engine e = {0};

    sim_start(f, 1, "--delay-ms", "150,0", NULL);
    engine_open(f, &e, 1);
    engine_plug_kbd(f, &e, "k1");
    op = engine_unplug(f, &e, "k1", 0);
    assert_string_equal(hotplug_outcome_name(hotplug_op_get_outcome(op)), "deleted");
    assert_true(hotplug_op_get_elapsed_ms(op) >= 150);
    assert_true(hotplug_op_get_elapsed_ms(op) < 1500);
    engine_close(&e);
}

typedef struct {
    gboolean done;
    QmpCaps *caps;
} CapsWait;

static void
caps_cb(QmpConn *conn, QmpCaps *caps, const GError *error, gpointer opaque)
{
    CapsWait *w = opaque;

    assert_null(error);
    w->caps = caps;
    w->done = TRUE;
}

/* The capability probe asks query-version, query-qmp-schema,
 * query-status, qom-get /machine type and query-hotpluggable-cpus. */
static void
test_engine_caps_probe(void **state)
{
    Fixture *f = *state;
    CapsWait w = {0};
    QmpCaps *caps;
    Engine e = {0};

    sim_start(f, 1, NULL);
    engine_open(f, &e, 1);
    assert_true(qmp_caps_probe(e.conn, caps_cb, &w, NULL));
    assert_true(qmp_loop_run_until(f->base, &w.done, WAIT_MS));
    caps = w.caps;
    assert_non_null(caps);
    assert_int_equal(qmp_caps_version_major(caps), 7);
    assert_int_equal(qmp_caps_version_minor(caps), 2);
    assert_int_equal(qmp_caps_version_micro(caps), 22);
    assert_string_equal(qmp_caps_machine_type(caps), "pc-i440fx-7.2");
    assert_string_equal(qmp_caps_run_state(caps), "running");
    assert_true(qmp_caps_cpu_hotplug(caps));
    assert_true(qmp_caps_has_command(caps, "device_del"));
    assert_true(qmp_caps_has_event(caps, "DEVICE_DELETED"));
    assert_true(qmp_caps_has_event(caps, "DEVICE_UNPLUG_GUEST_ERROR"));
    assert_false(qmp_caps_has_command(caps, "blockdev-add"));
    qmp_caps_free(caps);
    engine_close(&e);
}

/* Many VMs at once on one loop: every unplug gets its outcome. */
static void
test_engine_many_vms(void **state)
{
    enum { N = 100 };
    Fixture *f = *state;
    Engine e[N];
    HotplugOp *ops[N];
    g_autoptr(GError) error = NULL;

    memset(e, 0, sizeof(e));
    sim_start(f, N, "--delay-ms", "30,20", NULL);
    for (guint i = 0; i < N; i++) {
        engine_open(f, &e[i], i + 1);
        engine_plug_kbd(f, &e[i], "kbd");
    }
    for (guint i = 0; i < N; i++) {
        ops[i] = hotplug_vm_unplug(e[i].vm, HOTPLUG_KIND_DEVICE, "kbd", NULL, NULL, &error);
        assert_non_null(ops[i]);
    }
    for (guint i = 0; i < N; i++) {
        engine_wait(f, &e[i], ops[i], WAIT_MS);
        assert_string_equal(hotplug_outcome_name(hotplug_op_get_outcome(ops[i])), "deleted");
        hotplug_op_unref(ops[i]);
    }
    for (guint i = 0; i < N; i++)
        engine_close(&e[i]);
}

int
main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_greeting_and_negotiation),
        T(test_device_add_del_wire),
        T(test_stream_framing),
        T(test_one_client_at_a_time),
        T(test_stats_and_clean_exit),
        T(test_bad_options),
        T(test_engine_plug_unplug_deleted),
        T(test_engine_unknown_rejected),
        T(test_engine_never_not_deleted),
        T(test_engine_refused_guest_error),
        T(test_engine_delay),
        T(test_engine_caps_probe),
        T(test_engine_many_vms),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
