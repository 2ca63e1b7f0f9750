/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd end to end: the real hotplugd and hotplugctl binaries against
 * two real QEMU 7.2 VMs (x86 pc, TCG) with the test guest, which ejects PCI
 * devices (an e1000 unplug takes ~60 ms).
 *
 *   two VMs         one from the config file, one added at run time through
 *                   the watched directory (a symlink NAME.qmp appears: inotify);
 *                   both ready in `vm list`; add + del on each gives `deleted`
 *   subscriber      `events --follow --json` while unplugs happen: request,
 *                   attempt, outcome records in seq order, no gap
 *   kill -9         hotplugd killed at random moments during 60 add/del
 *                   cycles (some --no-wait, so ops are in flight), restarted
 *                   on the same state directory each time; then from the
 *                   event log: every op has exactly one final outcome (and at
 *                   most one deleted-late after not-deleted/guest-error), and
 *                   seq runs 1, 2, 3, ... with no gap and no repeat
 *   SIGTERM         a clean stop (exit 0), the socket removed, a subscriber
 *                   told; a second hotplugd on the state directory refused
 *
 * Both QEMUs boot once for the whole group; each test runs its own hotplugd
 * on its own state directory.  $DAEMON_TEST_SEED replays a kill schedule;
 * $HOTPLUG_TEST_VERBOSE shows hotplugctl's output. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "qemu-helper.h"
#include "qmp-json.h"

#define BOOT_MS 120000
#define READY_MS 20000
#define SEEN_MS 10000
#define KILL_CYCLES 60

typedef struct {
    TestQemu *q1, *q2;
    char *dir;
} Group;

typedef struct {
    Group *g;
    char *dir;       /* this test's: state/, ctl.sock, hotplugd.conf, hotplugd.log, watch/ */
    char *state_dir, *sock, *conf, *log, *watch;
    GPid daemon;     /* 0: not running */
    guint starts;
} Fixture;

static void
rm_tree(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *name;

    if (d) {
        while ((name = g_dir_read_name(d))) {
            g_autofree char *sub = g_build_filename(path, name, NULL);
            struct stat st;

            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                rm_tree(sub);
            else
                unlink(sub);
        }
    }
    rmdir(path);
}

static gsize
count_substr(const char *text, const char *needle)
{
    gsize n = 0;

    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* "HOTPLUG-GUEST: added pci" lines so far */
static gsize
guest_count(TestQemu *q, const char *what)
{
    g_autofree char *console = test_qemu_console(q);

    return count_substr(console, what);
}

/* ---- group: two VMs with the guest --------------------------------------- */

static int
group_setup(void **state)
{
    Group *g = g_new0(Group, 1);
    TestQemuOptions opts = {.machine = "pc", .with_guest = TRUE};
    g_autoptr(GError) err = NULL;
    gint64 t0 = g_get_monotonic_time();

    *state = g;
    if (!test_qemu_guest_available(&err)) {
        fprintf(stderr, "test-daemon-qemu: %s\n", err->message);
        return -1;
    }
    g->q1 = test_qemu_start(&opts, &err);
    if (g->q1)
        g->q2 = test_qemu_start(&opts, &err);
    if (!g->q1 || !g->q2) {
        fprintf(stderr, "test-daemon-qemu: cannot start QEMU: %s\n", err->message);
        return -1;
    }
    if (!test_qemu_wait_console(g->q1, "HOTPLUG-GUEST-READY", BOOT_MS, &err) ||
        !test_qemu_wait_console(g->q2, "HOTPLUG-GUEST-READY", BOOT_MS, &err)) {
        fprintf(stderr, "test-daemon-qemu: the guest did not boot: %s\n", err->message);
        return -1;
    }
    print_message("# two guests booted in %.1f s\n", (g_get_monotonic_time() - t0) / 1e6);
    g->dir = g_dir_make_tmp("test-daemon-qemu-XXXXXX", &err);
    return g->dir ? 0 : -1;
}

static int
group_teardown(void **state)
{
    Group *g = *state;

    g_clear_pointer(&g->q1, test_qemu_free);
    g_clear_pointer(&g->q2, test_qemu_free);
    if (g->dir && !g_getenv("HOTPLUG_TEST_KEEP"))
        rm_tree(g->dir);
    g_free(g->dir);
    g_free(g);
    return 0;
}

static int
setup(void **state)
{
    static guint n;
    Group *g = *state;
    Fixture *f = g_new0(Fixture, 1);

    f->g = g;
    f->dir = g_strdup_printf("%s/t%u", g->dir, ++n);
    g_assert(g_mkdir_with_parents(f->dir, 0700) == 0);
    f->state_dir = g_build_filename(f->dir, "state", NULL);
    f->sock = g_build_filename(f->dir, "ctl.sock", NULL);
    f->conf = g_build_filename(f->dir, "hotplugd.conf", NULL);
    f->log = g_build_filename(f->dir, "hotplugd.log", NULL);
    f->watch = g_build_filename(f->dir, "watch", NULL);
    *state = f;
    return 0;
}

static void
daemon_kill9(Fixture *f)
{
    int status;

    if (!f->daemon)
        return;
    kill(f->daemon, SIGKILL);
    waitpid(f->daemon, &status, 0);
    f->daemon = 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;
    Group *g = f->g;

    daemon_kill9(f);
    *state = g;
    g_free(f->dir);
    g_free(f->state_dir);
    g_free(f->sock);
    g_free(f->conf);
    g_free(f->log);
    g_free(f->watch);
    g_free(f);
    return 0;
}

/* ---- hotplugd ------------------------------------------------------------------- */

static void
die_with_parent(gpointer unused)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void
write_config(Fixture *f, gboolean with_vm2_watch)
{
    g_autofree char *text = g_strdup_printf(
        "[hotplugd]\nstate-dir = %s\nsocket = %s\n%s%s%s"
        "[retry]\ncount = 0\n"
        "[vm vm1]\nqmp = %s\n",
        f->state_dir, f->sock, with_vm2_watch ? "watch-dir = " : "",
        with_vm2_watch ? f->watch : "", with_vm2_watch ? "\n" : "",
        test_qemu_qmp_path(f->g->q1));

    assert_true(g_file_set_contents(f->conf, text, -1, NULL));
}

static gboolean
socket_accepts(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    gboolean up;

    g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
    up = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
    if (fd >= 0)
        close(fd);
    return up;
}

static GPid
spawn(const char *const *argv, int out_fd, int err_fd)
{
    g_autoptr(GError) error = NULL;
    GPid pid = 0;

    if (!g_spawn_async_with_fds(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                                die_with_parent, NULL, &pid, -1, out_fd, err_fd, &error))
        fail_msg("cannot run %s: %s", argv[0], error->message);
    return pid;
}

/* Start hotplugd on f's config; return once its socket accepts. */
static void
daemon_start(Fixture *f)
{
    const char *argv[] = {HOTPLUGD_PATH, "--foreground", "--config", f->conf, "-v", NULL};
    int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    assert_true(fd >= 0);
    assert_int_equal(f->daemon, 0);
    f->daemon = spawn(argv, fd, fd);
    close(fd);
    f->starts++;
    while (!socket_accepts(f->sock)) {
        int status;
        if (waitpid(f->daemon, &status, WNOHANG) == f->daemon) {
            g_autofree char *log = NULL;
            f->daemon = 0;
            g_file_get_contents(f->log, &log, NULL, NULL);
            fail_msg("hotplugd exited (status 0x%x) at start:\n%s", status, log ? log : "");
        }
        if (g_get_monotonic_time() > end)
            fail_msg("hotplugd did not listen on %s within 10 s", f->sock);
        g_usleep(5000);
    }
}

/* SIGTERM; the exit status */
static int
daemon_term(Fixture *f)
{
    int status = -1;
    gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    kill(f->daemon, SIGTERM);
    while (waitpid(f->daemon, &status, WNOHANG) != f->daemon) {
        if (g_get_monotonic_time() > end)
            fail_msg("hotplugd did not stop within 10 s of SIGTERM");
        g_usleep(5000);
    }
    f->daemon = 0;
    return status;
}

/* ---- hotplugctl --------------------------------------------------------------------- */

static GPtrArray *
ctl_argv(Fixture *f, va_list ap)
{
    GPtrArray *argv = g_ptr_array_new();
    const char *a;

    g_ptr_array_add(argv, (gpointer)HOTPLUGCTL_PATH);
    g_ptr_array_add(argv, (gpointer)"--socket");
    g_ptr_array_add(argv, f->sock);
    while ((a = va_arg(ap, const char *)))
        g_ptr_array_add(argv, (gpointer)a);
    g_ptr_array_add(argv, NULL);
    return argv;
}

/* hotplugctl --socket SOCK ARGS... NULL; its exit code (out/err may be NULL) */
static int
ctl(Fixture *f, char **out, char **err, ...)
{
    g_autoptr(GPtrArray) argv = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *o = NULL, *e = NULL;
    int status = -1;
    va_list ap;

    va_start(ap, err);
    argv = ctl_argv(f, ap);
    va_end(ap);
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, die_with_parent, NULL,
                      &o, &e, &status, &error))
        fail_msg("cannot run %s: %s", HOTPLUGCTL_PATH, error->message);
    if (g_getenv("HOTPLUG_TEST_VERBOSE")) {
        g_autofree char *cmd = g_strjoinv(" ", (char **)argv->pdata + 3);
        fprintf(stderr, "hotplugctl %s: status %d\n%s%s", cmd, status, o, e);
    }
    if (!WIFEXITED(status))
        fail_msg("hotplugctl did not exit normally (status 0x%x): %s", status, e);
    if (out)
        *out = g_steal_pointer(&o);
    if (err)
        *err = g_steal_pointer(&e);
    return WEXITSTATUS(status);
}

/* hotplugctl ARGS... NULL in the background, output to /dev/null */
static GPid
ctl_async(Fixture *f, ...)
{
    g_autoptr(GPtrArray) argv = NULL;
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    va_list ap;
    GPid pid;

    va_start(ap, f);
    argv = ctl_argv(f, ap);
    va_end(ap);
    pid = spawn((const char *const *)argv->pdata, null, null);
    close(null);
    return pid;
}

/* Wait for a child for up to ms; SIGKILL and fail after that. */
static int
wait_child(GPid pid, guint ms, const char *what)
{
    int status = -1;
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (g_get_monotonic_time() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s did not end within %u ms", what, ms);
        }
        g_usleep(2000);
    }
    return status;
}

static JsonNode *
parse_json(const char *text)
{
    g_autoptr(GError) error = NULL;
    JsonNode *n = json_from_string(text, &error);

    if (!n)
        fail_msg("hotplugctl printed bad JSON (%s): %.300s", error->message, text);
    return n;
}

/* The state of VM name in `vm list --json`, or NULL (a new string). */
static char *
vm_state(Fixture *f, const char *name)
{
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) n = NULL;
    JsonArray *a;

    if (ctl(f, &out, NULL, "--json", "vm", "list", NULL) != 0)
        return NULL;
    n = parse_json(out);
    a = qmp_json_node_array(n);
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        JsonObject *vm = qmp_json_node_object(json_array_get_element(a, i));
        if (g_strcmp0(qmp_json_get_string(vm, "name"), name) == 0)
            return g_strdup(qmp_json_get_string(vm, "state"));
    }
    return NULL;
}

static void
wait_vm_ready(Fixture *f, const char *name)
{
    gint64 end = g_get_monotonic_time() + READY_MS * 1000;

    for (;;) {
        g_autofree char *st = vm_state(f, name);
        if (g_strcmp0(st, "ready") == 0)
            return;
        if (g_get_monotonic_time() > end)
            fail_msg("VM %s is not ready in hotplugd (state %s)", name, st ? st : "(absent)");
        g_usleep(20000);
    }
}

/* Wait until the guest has reported `count` lines of what. */
static gboolean
wait_guest(TestQemu *q, const char *what, gsize count, guint ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

    while (guest_count(q, what) < count) {
        if (g_get_monotonic_time() > end)
            return FALSE;
        g_usleep(10000);
    }
    return TRUE;
}

/* (Re)start hotplugd; back once vm1 (from the config) is ready again. */
static void
daemon_restart(Fixture *f)
{
    daemon_start(f);
    wait_vm_ready(f, "vm1");
}

/* device add + del through hotplugd; the del's outcome must be deleted */
static void
plug_unplug(Fixture *f, TestQemu *q, const char *vm, const char *id)
{
    gsize seen = guest_count(q, "HOTPLUG-GUEST: added pci");
    gsize gone = guest_count(q, "HOTPLUG-GUEST: removed pci");
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) n = NULL;
    JsonObject *o;
    int rc;

    rc = ctl(f, &out, &err, "--json", "device", "add", vm, "e1000", id, NULL);
    if (rc != 0)
        fail_msg("device add %s %s: exit %d: %s%s", vm, id, rc, out, err);
    n = parse_json(out);
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(n), "outcome"), "added");
    /* the guest must know the device to eject it */
    if (!wait_guest(q, "HOTPLUG-GUEST: added pci", seen + 1, SEEN_MS))
        fail_msg("the guest of %s did not see %s", vm, id);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_clear_pointer(&n, json_node_unref);
    rc = ctl(f, &out, &err, "--json", "device", "del", vm, id, "--timeout", "10", NULL);
    if (rc != 0)
        fail_msg("device del %s %s: exit %d: %s%s", vm, id, rc, out, err);
    n = parse_json(out);
    o = qmp_json_node_object(n);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_string_equal(qmp_json_get_string(o, "vm"), vm);
    assert_string_equal(qmp_json_get_string(o, "device"), id);
    assert_int_equal(qmp_json_get_int_default(o, "attempts", 0), 1);
    if (!wait_guest(q, "HOTPLUG-GUEST: removed pci", gone + 1, SEEN_MS))
        fail_msg("the guest of %s did not report %s gone", vm, id);
}

/* Every record of the log, oldest first (new objects). */
static GPtrArray *
read_log(Fixture *f)
{
    g_autofree char *out = NULL, *err = NULL;
    g_auto(GStrv) lines = NULL;
    GPtrArray *recs = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
    int rc = ctl(f, &out, &err, "--json", "events", NULL);

    if (rc != 0)
        fail_msg("events: exit %d: %s", rc, err);
    lines = g_strsplit(out, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        g_autoptr(JsonNode) n = NULL;
        if (!*lines[i])
            continue;
        n = parse_json(lines[i]);
        assert_non_null(qmp_json_node_object(n));
        g_ptr_array_add(recs, json_object_ref(qmp_json_node_object(n)));
    }
    return recs;
}

/* seq is 1, 2, 3, ... n */
static void
assert_seq_complete(GPtrArray *recs)
{
    for (guint i = 0; i < recs->len; i++) {
        gint64 seq = qmp_json_get_int_default(recs->pdata[i], "seq", -1);
        if (seq != (gint64)i + 1)
            fail_msg("record %u has seq %" G_GINT64_FORMAT " (expected %u): a gap or a repeat",
                     i, seq, i + 1);
    }
}

/* ---- (a) two VMs: config and watched directory ---------------------------------- */

static void
test_two_vms(void **state)
{
    Fixture *f = *state;
    g_autofree char *link = g_build_filename(f->watch, "vm2.qmp", NULL);
    g_autofree char *other = g_build_filename(f->watch, "notes.txt", NULL);
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) list = NULL;
    JsonArray *a;

    assert_int_equal(g_mkdir_with_parents(f->watch, 0700), 0);
    write_config(f, TRUE);
    daemon_start(f);
    wait_vm_ready(f, "vm1");
    {
        g_autofree char *st = vm_state(f, "vm2");
        assert_null(st);
    }
    /* vm2 appears at run time: a socket (here a symlink to one) in the
     * watched directory; other files are ignored */
    assert_true(g_file_set_contents(other, "x", -1, NULL));
    assert_int_equal(symlink(test_qemu_qmp_path(f->g->q2), link), 0);
    wait_vm_ready(f, "vm2");
    assert_int_equal(ctl(f, &out, NULL, "--json", "vm", "list", NULL), 0);
    list = parse_json(out);
    a = qmp_json_node_array(list);
    assert_int_equal(json_array_get_length(a), 2);
    for (guint i = 0; i < 2; i++) {
        JsonObject *vm = qmp_json_node_object(json_array_get_element(a, i));
        assert_string_equal(qmp_json_get_string(vm, "name"), i == 0 ? "vm1" : "vm2");
        assert_string_equal(qmp_json_get_string(vm, "state"), "ready");
        assert_string_equal(qmp_json_get_string(vm, "qmp"),
                            i == 0 ? test_qemu_qmp_path(f->g->q1) : link);
    }
    plug_unplug(f, f->g->q1, "vm1", "a1");
    plug_unplug(f, f->g->q2, "vm2", "a2");
    /* the socket leaves the directory: the VM goes, the other stays */
    assert_int_equal(unlink(link), 0);
    {
        gint64 end = g_get_monotonic_time() + READY_MS * 1000;
        char *st;
        while ((st = vm_state(f, "vm2")) && g_get_monotonic_time() < end) {
            g_free(st);
            g_usleep(20000);
        }
        assert_null(st);
    }
    wait_vm_ready(f, "vm1");
    assert_int_equal(daemon_term(f), 0);
}

/* ---- (b) a subscriber while unplugs happen ---------------------------------------- */

static void
test_subscriber(void **state)
{
    Fixture *f = *state;
    g_autofree char *follow_out = g_build_filename(f->dir, "follow.out", NULL);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(GHashTable) ops = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    const char *argv[] = {HOTPLUGCTL_PATH, "--socket", f->sock, "--json", "events", "--follow",
                          NULL};
    gint64 prev = -1, first = -1;
    guint n_records = 0, unplugs = 0;
    GPid sub;
    int fd, status;

    write_config(f, FALSE);
    daemon_start(f);
    wait_vm_ready(f, "vm1");
    fd = open(follow_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    sub = spawn(argv, fd, -1);
    close(fd);
    g_usleep(300000); /* subscribed */
    for (guint i = 0; i < 3; i++) {
        g_autofree char *id = g_strdup_printf("s%u", i);
        plug_unplug(f, f->g->q1, "vm1", id);
    }
    /* the last outcome reaches the subscriber */
    {
        gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        for (;;) {
            g_free(text);
            text = NULL;
            g_file_get_contents(follow_out, &text, NULL, NULL);
            if (count_substr(text, "\"outcome\":\"deleted\"") >= 3 ||
                g_get_monotonic_time() > end)
                break;
            g_usleep(20000);
        }
    }
    kill(sub, SIGTERM);
    status = wait_child(sub, 5000, "the subscriber");
    assert_true(WIFSIGNALED(status) || WIFEXITED(status));

    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        g_autoptr(JsonNode) n = NULL;
        JsonObject *rec;
        gint64 seq;
        const char *kind, *action;

        if (!*lines[i])
            continue;
        n = parse_json(lines[i]);
        rec = qmp_json_node_object(n);
        seq = qmp_json_get_int_default(rec, "seq", -1);
        /* in order, without a gap */
        if (prev >= 0 && seq != prev + 1)
            fail_msg("the subscriber got seq %" G_GINT64_FORMAT " after %" G_GINT64_FORMAT, seq,
                     prev);
        if (first < 0)
            first = seq;
        prev = seq;
        n_records++;
        kind = qmp_json_get_string(rec, "kind");
        action = qmp_json_get_string(rec, "action");
        if (g_strcmp0(action, "unplug") == 0) {
            /* request, then attempt(s), then the outcome */
            g_autofree char *op = g_strdup_printf("%" G_GINT64_FORMAT,
                                                  qmp_json_get_int_default(rec, "op", -1));
            const char *seen = g_hash_table_lookup(ops, op);
            if (g_str_equal(kind, "request")) {
                assert_null(seen);
                g_hash_table_insert(ops, g_strdup(op), g_strdup("request"));
            } else if (g_str_equal(kind, "attempt")) {
                assert_non_null(seen);
                assert_true(g_str_equal(seen, "request") || g_str_equal(seen, "attempt"));
                g_hash_table_insert(ops, g_strdup(op), g_strdup("attempt"));
            } else if (g_str_equal(kind, "outcome")) {
                assert_non_null(seen);
                assert_string_equal(seen, "attempt");
                assert_string_equal(qmp_json_get_string(rec, "outcome"), "deleted");
                g_hash_table_insert(ops, g_strdup(op), g_strdup("outcome"));
                unplugs++;
            }
        }
    }
    assert_int_equal(unplugs, 3);
    assert_true(n_records >= 3 * 6); /* plug: request, attempt, outcome; the same for unplug */
    print_message("# the subscriber got seq %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT "\n", first,
                  prev);
    assert_int_equal(daemon_term(f), 0);
}

/* ---- (c) kill -9 at random moments ----------------------------------------------------- */

static gboolean
is_first_outcome(const char *o)
{
    static const char *const finals[] = {"deleted", "added", "rejected", "vm-gone",
                                         "not-deleted", "guest-error", NULL};
    return o && g_strv_contains(finals, o);
}

/* Every op: one request, exactly one final outcome (at most one
 * deleted-late after not-deleted/guest-error); returns the number of ops. */
static guint
check_ops(GPtrArray *recs, guint *n_deleted, guint *n_late)
{
    /* op id -> its first outcome; ops with a request; ops with a deleted-late */
    g_autoptr(GHashTable) req = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) outcome = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                                          g_free);
    g_autoptr(GHashTable) late = g_hash_table_new(g_direct_hash, g_direct_equal);
    GHashTableIter it;
    gpointer key;

    *n_deleted = *n_late = 0;
    for (guint i = 0; i < recs->len; i++) {
        JsonObject *rec = recs->pdata[i];
        const char *kind = qmp_json_get_string(rec, "kind");
        gint64 op;
        gpointer k;

        if (!qmp_json_get_int(rec, "op", &op))
            continue;
        assert_true(op > 0);
        k = GSIZE_TO_POINTER((gsize)op);
        if (g_strcmp0(kind, "request") == 0) {
            if (g_hash_table_contains(req, k))
                fail_msg("op %" G_GINT64_FORMAT " has two request records", op);
            g_hash_table_add(req, k);
        } else if (g_strcmp0(kind, "outcome") == 0) {
            const char *o = qmp_json_get_string(rec, "outcome");
            const char *prev = g_hash_table_lookup(outcome, k);
            if (!g_hash_table_contains(req, k))
                fail_msg("op %" G_GINT64_FORMAT ": outcome %s before any request", op, o);
            if (!prev) {
                if (!is_first_outcome(o))
                    fail_msg("op %" G_GINT64_FORMAT ": first outcome is %s", op, o);
                g_hash_table_insert(outcome, k, g_strdup(o));
                if (g_str_equal(o, "deleted"))
                    (*n_deleted)++;
            } else if (g_strcmp0(o, "deleted-late") == 0 &&
                       (g_str_equal(prev, "not-deleted") || g_str_equal(prev, "guest-error")) &&
                       !g_hash_table_contains(late, k)) {
                g_hash_table_add(late, k);
                (*n_late)++;
            } else {
                fail_msg("op %" G_GINT64_FORMAT " (%s %s): outcome %s after %s (seq %" G_GINT64_FORMAT
                         ")", op, qmp_json_get_string(rec, "action"),
                         qmp_json_get_string(rec, "device"), o, prev,
                         qmp_json_get_int_default(rec, "seq", -1));
            }
        } else if (!g_hash_table_contains(req, k) && g_strcmp0(kind, "qemu-event") != 0) {
            fail_msg("op %" G_GINT64_FORMAT ": a %s record before its request", op, kind);
        }
    }
    g_hash_table_iter_init(&it, req);
    while (g_hash_table_iter_next(&it, &key, NULL))
        if (!g_hash_table_contains(outcome, key))
            fail_msg("op %" G_GSIZE_FORMAT " has no outcome in the log", GPOINTER_TO_SIZE(key));
    return g_hash_table_size(req);
}

/* All ops final (done or tracked) in `ops`. */
static gboolean
ops_settled(Fixture *f, guint *n)
{
    g_autofree char *out = NULL;
    g_autoptr(JsonNode) node = NULL;
    JsonArray *a;

    if (ctl(f, &out, NULL, "--json", "ops", NULL) != 0)
        return FALSE;
    node = parse_json(out);
    a = qmp_json_node_array(node);
    *n = a ? json_array_get_length(a) : 0;
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        const char *st = qmp_json_get_string(qmp_json_node_object(json_array_get_element(a, i)),
                                              "state");
        if (g_strcmp0(st, "done") != 0 && g_strcmp0(st, "tracked") != 0)
            return FALSE;
    }
    return TRUE;
}

static void
test_kill9(void **state)
{
    Fixture *f = *state;
    const char *seed_env = g_getenv("DAEMON_TEST_SEED");
    guint32 seed = seed_env ? (guint32)g_ascii_strtoull(seed_env, NULL, 10) : g_random_int();
    g_autoptr(GRand) rnd = g_rand_new_with_seed(seed);
    g_autoptr(GPtrArray) recs = NULL;
    guint kills = 0, no_wait = 0, n_ops, n_deleted, n_late, open_ops = 0, in_flight_kills = 0;
    gsize takeovers;
    g_autofree char *log = NULL;
    gint64 t0 = g_get_monotonic_time();

    print_message("# seed %u (DAEMON_TEST_SEED replays it)\n", seed);
    write_config(f, FALSE);
    daemon_start(f);
    wait_vm_ready(f, "vm1");
    for (guint i = 0; i < KILL_CYCLES; i++) {
        g_autofree char *id = g_strdup_printf("k%u", i);
        gsize seen = guest_count(f->g->q1, "HOTPLUG-GUEST: added pci");
        gboolean nw = g_rand_boolean(rnd);
        /* a kill in one cycle of two: while hotplugctl adds, while it
         * deletes, or just after a --no-wait delete returned (the unplug
         * is in flight then: the guest takes ~60 ms) */
        guint kill_at = g_rand_int_range(rnd, 0, 6); /* 0: add, 1: del, 2: after del */
        guint delay_us = (guint)g_rand_int_range(rnd, 0, kill_at == 2 ? 40000 : 150000);
        GPid pid;

        if (i == KILL_CYCLES - 10 && !in_flight_kills) {
            nw = TRUE;
            kill_at = 2;
        }

        if (!f->daemon)
            daemon_restart(f);
        pid = ctl_async(f, "device", "add", "vm1", "e1000", id, NULL);
        if (kill_at == 0) {
            g_usleep(delay_us);
            daemon_kill9(f);
            kills++;
        }
        wait_child(pid, 30000, "hotplugctl device add");
        if (!f->daemon)
            daemon_restart(f);
        /* give the guest a moment to see it (best effort: the outcome
         * may be anything, it just must be one) */
        wait_guest(f->g->q1, "HOTPLUG-GUEST: added pci", seen + 1, 1500);
        if (nw)
            no_wait++;
        pid = nw ? ctl_async(f, "device", "del", "vm1", id, "--timeout", "3", "--no-wait", NULL)
                 : ctl_async(f, "device", "del", "vm1", id, "--timeout", "3", NULL);
        if (kill_at == 1) {
            g_usleep(delay_us);
            daemon_kill9(f);
            kills++;
        }
        wait_child(pid, 30000, "hotplugctl device del");
        if (kill_at == 2) {
            g_usleep(delay_us);
            daemon_kill9(f);
            kills++;
            in_flight_kills += nw;
        }
    }
    if (!f->daemon)
        daemon_restart(f);
    /* the last ops settle (deadlines are 3 s) */
    {
        gint64 end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
        while (!ops_settled(f, &open_ops)) {
            if (g_get_monotonic_time() > end)
                fail_msg("ops did not settle within 20 s");
            g_usleep(100000);
        }
    }
    recs = read_log(f);
    assert_true(recs->len > 0);
    assert_seq_complete(recs);
    n_ops = check_ops(recs, &n_deleted, &n_late);
    assert_true(g_file_get_contents(f->log, &log, NULL, NULL));
    takeovers = count_substr(log, "taken over from the journal");
    print_message("# %u cycles, %u kill -9 (%u just after a --no-wait del), %u starts, "
                  "%u --no-wait: %u ops (%" G_GSIZE_FORMAT " taken over after a kill), "
                  "%u deleted, %u deleted-late, %u records, %.1f s\n",
                  KILL_CYCLES, kills, in_flight_kills, f->starts, no_wait, n_ops, takeovers,
                  n_deleted, n_late, recs->len, (g_get_monotonic_time() - t0) / 1e6);
    /* every cycle made two ops, unless hotplugd died before it took one */
    assert_true(n_ops >= 2 * KILL_CYCLES - kills);
    assert_true(n_ops <= 2 * KILL_CYCLES);
    assert_true(kills >= 5);
    /* some kills found an op in flight, and the restart finished it */
    assert_true(takeovers >= 1);
    /* the guest works: most unplugs end deleted */
    assert_true(n_deleted >= KILL_CYCLES / 2);
    assert_int_equal(daemon_term(f), 0);
}

/* ---- SIGTERM ---------------------------------------------------------------------------- */

static void
test_sigterm(void **state)
{
    Fixture *f = *state;
    const char *argv[] = {HOTPLUGD_PATH, "--foreground", "--config", f->conf, NULL};
    g_autofree char *err_text = NULL;
    g_autofree char *err_path = g_build_filename(f->dir, "second.err", NULL);
    g_autofree char *sub_err = g_build_filename(f->dir, "sub.err", NULL);
    g_autofree char *lock = NULL;
    int fd, efd, status;
    GPid second, sub;

    write_config(f, FALSE);
    daemon_start(f);
    wait_vm_ready(f, "vm1");
    /* a second hotplugd on the same state directory is refused */
    fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    second = spawn(argv, -1, fd);
    close(fd);
    status = wait_child(second, 10000, "the second hotplugd");
    if (!WIFEXITED(status))
        fail_msg("the second hotplugd: status 0x%x", status);
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_true(g_file_get_contents(err_path, &err_text, NULL, NULL));
    {
        g_autofree char *want = g_strdup_printf("another hotplugd (pid %d) runs on %s",
                                                (int)f->daemon, f->state_dir);
        if (!strstr(err_text, want))
            fail_msg("expected '%s' in: %s", want, err_text);
    }
    assert_true(socket_accepts(f->sock));

    /* a subscriber is there when the daemon stops */
    efd = open(sub_err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    {
        const char *sargv[] = {HOTPLUGCTL_PATH, "--socket", f->sock, "events", "--follow", NULL};
        sub = spawn(sargv, fd, efd);
    }
    close(fd);
    close(efd);
    g_usleep(300000);
    status = daemon_term(f);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(g_file_test(f->sock, G_FILE_TEST_EXISTS));
    status = wait_child(sub, 10000, "the subscriber");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    g_clear_pointer(&err_text, g_free);
    assert_true(g_file_get_contents(sub_err, &err_text, NULL, NULL));
    assert_non_null(strstr(err_text, "hotplugd went away after seq"));
    /* the log says it stopped cleanly; the state directory is free again */
    {
        g_autofree char *log = NULL;
        assert_true(g_file_get_contents(f->log, &log, NULL, NULL));
        assert_non_null(strstr(log, "signal 15: stopping"));
        assert_non_null(strstr(log, "stopped"));
    }
    daemon_start(f);
    wait_vm_ready(f, "vm1");
    assert_int_equal(daemon_term(f), 0);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_two_vms),
        T(test_subscriber),
        T(test_kill9),
        T(test_sigterm),
    };

    /* TEST_FILTER=test_name (cmocka's pattern) runs some of them */
    if (g_getenv("TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
