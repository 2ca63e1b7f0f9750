/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd end to end: the real hotplugd and hotplugctl binaries against
 * two real QEMU VMs (x86 pc, TCG) with the test guest, which ejects PCI
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

#include "qmp-json.h"
#include "rig.h"

#define READY_MS 20000
#define SEEN_MS 10000
#define CTL_MS 30000
#define KILL_CYCLES 60

typedef struct {
    RigVm *q1, *q2;
    char *dir;
} Group;

typedef struct {
    Group *g;
    RigHotplugd *d; /* its dir: state/, ctl.sock, hotplugd.conf, hotplugd.log, watch/ */
    char *watch;
} Fixture;

/* ---- group: two VMs with the guest --------------------------------------- */

static int
group_setup(void **state)
{
    Group *g = g_new0(Group, 1);
    RigVmOptions opts = {.machine = RIG_MACHINE_PC, .guest = TRUE};

    *state = g;
    g->q1 = rig_vm_start(&opts);
    g->q2 = rig_vm_start(&opts);
    g->dir = rig_make_tmp("test-daemon-qemu-XXXXXX");
    return 0;
}

static int
group_teardown(void **state)
{
    Group *g = *state;

    g_clear_pointer(&g->q1, rig_vm_free);
    g_clear_pointer(&g->q2, rig_vm_free);
    if (g->dir && !g_getenv("HOTPLUG_TEST_KEEP"))
        rig_rm_tree(g->dir);
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
    g_autofree char *dir = g_strdup_printf("%s/t%u", g->dir, ++n);

    f->g = g;
    f->d = rig_hotplugd_new(dir);
    f->watch = g_build_filename(dir, "watch", NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;
    Group *g = f->g;

    rig_hotplugd_free(f->d);
    *state = g;
    g_free(f->watch);
    g_free(f);
    return 0;
}

/* ---- hotplugd ------------------------------------------------------------------- */

static void
write_config(Fixture *f, gboolean with_vm2_watch)
{
    g_autofree char *text = g_strdup_printf(
        "[hotplugd]\nstate-dir = %s\nsocket = %s\n%s%s%s"
        "[retry]\ncount = 0\n"
        "[vm vm1]\nqmp = %s\n",
        rig_hotplugd_state_dir(f->d), rig_hotplugd_socket(f->d),
        with_vm2_watch ? "watch-dir = " : "", with_vm2_watch ? f->watch : "",
        with_vm2_watch ? "\n" : "", rig_vm_qmp_path(f->g->q1));

    rig_hotplugd_set_config(f->d, text);
}

/* (Re)start hotplugd; back once vm1 (from the config) is ready again. */
static void
daemon_restart(Fixture *f)
{
    rig_hotplugd_start(f->d);
    rig_hotplugd_wait_vm_ready(f->d, "vm1");
}

/* hotplugctl --socket CTL ARGS... in the background, collected by ctl_done() */
#define ctl_async(f, ...) rig_hotplugd_ctl_start((f)->d, __VA_ARGS__)

static void
ctl_done(RigCtlRun *run)
{
    g_autoptr(RigCtl) r = rig_ctl_wait(run, CTL_MS);
}

/* device add + del through hotplugd; the del's outcome must be deleted */
static void
plug_unplug(Fixture *f, RigVm *q, const char *vm, const char *id)
{
    gsize seen = rig_vm_console_count(q, "HOTPLUG-GUEST: added pci");
    gsize gone = rig_vm_console_count(q, "HOTPLUG-GUEST: removed pci");
    g_autofree char *out = NULL, *err = NULL;
    g_autoptr(JsonNode) n = NULL;
    JsonObject *o;
    int rc;

    rc = rig_hotplugd_ctl_text(f->d, &out, &err, "--json", "device", "add", vm, "e1000", id, NULL);
    if (rc != 0)
        fail_msg("device add %s %s: exit %d: %s%s", vm, id, rc, out, err);
    n = rig_json_parse(out);
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(n), "outcome"), "added");
    /* the guest must know the device to eject it */
    if (!rig_vm_wait_console_count(q, "HOTPLUG-GUEST: added pci", seen + 1, SEEN_MS))
        fail_msg("the guest of %s did not see %s", vm, id);
    g_clear_pointer(&out, g_free);
    g_clear_pointer(&err, g_free);
    g_clear_pointer(&n, json_node_unref);
    rc = rig_hotplugd_ctl_text(f->d, &out, &err, "--json", "device", "del", vm, id, "--timeout", "10", NULL);
    if (rc != 0)
        fail_msg("device del %s %s: exit %d: %s%s", vm, id, rc, out, err);
    n = rig_json_parse(out);
    o = qmp_json_node_object(n);
    assert_string_equal(qmp_json_get_string(o, "outcome"), "deleted");
    assert_string_equal(qmp_json_get_string(o, "vm"), vm);
    assert_string_equal(qmp_json_get_string(o, "device"), id);
    assert_int_equal(qmp_json_get_int_default(o, "attempts", 0), 1);
    if (!rig_vm_wait_console_count(q, "HOTPLUG-GUEST: removed pci", gone + 1, SEEN_MS))
        fail_msg("the guest of %s did not report %s gone", vm, id);
}

/* Every record of the log, oldest first (new objects). */
static GPtrArray *
read_log(Fixture *f)
{
    g_autofree char *out = NULL, *err = NULL;
    g_auto(GStrv) lines = NULL;
    GPtrArray *recs = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
    int rc = rig_hotplugd_ctl_text(f->d, &out, &err, "--json", "events", NULL);

    if (rc != 0)
        fail_msg("events: exit %d: %s", rc, err);
    lines = g_strsplit(out, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        g_autoptr(JsonNode) n = NULL;
        if (!*lines[i])
            continue;
        n = rig_json_parse(lines[i]);
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
    rig_hotplugd_start(f->d);
    rig_hotplugd_wait_vm_ready(f->d, "vm1");
    {
        g_autofree char *st = rig_hotplugd_vm_state(f->d, "vm2");
        assert_null(st);
    }
    /* vm2 appears at run time: a socket (here a symlink to one) in the
     * watched directory; other files are ignored */
    assert_true(g_file_set_contents(other, "x", -1, NULL));
    assert_int_equal(symlink(rig_vm_qmp_path(f->g->q2), link), 0);
    rig_hotplugd_wait_vm_ready(f->d, "vm2");
    assert_int_equal(rig_hotplugd_ctl_text(f->d, &out, NULL, "--json", "vm", "list", NULL), 0);
    list = rig_json_parse(out);
    a = qmp_json_node_array(list);
    assert_int_equal(json_array_get_length(a), 2);
    for (guint i = 0; i < 2; i++) {
        JsonObject *vm = qmp_json_node_object(json_array_get_element(a, i));
        assert_string_equal(qmp_json_get_string(vm, "name"), i == 0 ? "vm1" : "vm2");
        assert_string_equal(qmp_json_get_string(vm, "state"), "ready");
        assert_string_equal(qmp_json_get_string(vm, "qmp"),
                            i == 0 ? rig_vm_qmp_path(f->g->q1) : link);
    }
    plug_unplug(f, f->g->q1, "vm1", "a1");
    plug_unplug(f, f->g->q2, "vm2", "a2");
    /* the socket leaves the directory: the VM goes, the other stays */
    assert_int_equal(unlink(link), 0);
    {
        gint64 end = g_get_monotonic_time() + READY_MS * 1000;
        char *st;
        while ((st = rig_hotplugd_vm_state(f->d, "vm2")) && g_get_monotonic_time() < end) {
            g_free(st);
            g_usleep(20000);
        }
        assert_null(st);
    }
    rig_hotplugd_wait_vm_ready(f->d, "vm1");
    assert_int_equal(rig_hotplugd_term(f->d), 0);
}

/* ---- (b) a subscriber while unplugs happen ---------------------------------------- */

static void
test_subscriber(void **state)
{
    Fixture *f = *state;
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(GHashTable) ops = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    gint64 prev = -1, first = -1;
    guint n_records = 0, unplugs = 0;
    RigCtlRun *sub;

    write_config(f, FALSE);
    rig_hotplugd_start(f->d);
    rig_hotplugd_wait_vm_ready(f->d, "vm1");
    sub = rig_hotplugd_ctl_start(f->d, "--json", "events", "--follow", NULL);
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
            g_file_get_contents(rig_ctl_run_out_path(sub), &text, NULL, NULL);
            if (rig_count(text, "\"outcome\":\"deleted\"") >= 3 ||
                g_get_monotonic_time() > end)
                break;
            g_usleep(20000);
        }
    }
    /* the subscriber ends with its signal */
    kill(rig_ctl_run_pid(sub), SIGTERM);
    rig_ctl_run_free(sub);

    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        g_autoptr(JsonNode) n = NULL;
        JsonObject *rec;
        gint64 seq;
        const char *kind, *action;

        if (!*lines[i])
            continue;
        n = rig_json_parse(lines[i]);
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
    assert_int_equal(rig_hotplugd_term(f->d), 0);
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

    if (rig_hotplugd_ctl_text(f->d, &out, NULL, "--json", "ops", NULL) != 0)
        return FALSE;
    node = rig_json_parse(out);
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
    rig_hotplugd_start(f->d);
    rig_hotplugd_wait_vm_ready(f->d, "vm1");
    for (guint i = 0; i < KILL_CYCLES; i++) {
        g_autofree char *id = g_strdup_printf("k%u", i);
        gsize seen = rig_vm_console_count(f->g->q1, "HOTPLUG-GUEST: added pci");
        gboolean nw = g_rand_boolean(rnd);
        /* a kill in one cycle of two: while hotplugctl adds, while it
         * deletes, or just after a --no-wait delete returned (the unplug
         * is in flight then: the guest takes ~60 ms) */
        guint kill_at = g_rand_int_range(rnd, 0, 6); /* 0: add, 1: del, 2: after del */
        guint delay_us = (guint)g_rand_int_range(rnd, 0, kill_at == 2 ? 40000 : 150000);
        RigCtlRun *run;

        if (i == KILL_CYCLES - 10 && !in_flight_kills) {
            nw = TRUE;
            kill_at = 2;
        }

        if (!rig_hotplugd_pid(f->d))
            daemon_restart(f);
        run = ctl_async(f, "device", "add", "vm1", "e1000", id, NULL);
        if (kill_at == 0) {
            g_usleep(delay_us);
            rig_hotplugd_kill9(f->d);
            kills++;
        }
        ctl_done(run);
        if (!rig_hotplugd_pid(f->d))
            daemon_restart(f);
        /* give the guest a moment to see it (best effort: the outcome
         * may be anything, it just must be one) */
        rig_vm_wait_console_count(f->g->q1, "HOTPLUG-GUEST: added pci", seen + 1, 1500);
        if (nw)
            no_wait++;
        run = nw ? ctl_async(f, "device", "del", "vm1", id, "--timeout", "3", "--no-wait", NULL)
                 : ctl_async(f, "device", "del", "vm1", id, "--timeout", "3", NULL);
        if (kill_at == 1) {
            g_usleep(delay_us);
            rig_hotplugd_kill9(f->d);
            kills++;
        }
        ctl_done(run);
        if (kill_at == 2) {
            g_usleep(delay_us);
            rig_hotplugd_kill9(f->d);
            kills++;
            in_flight_kills += nw;
        }
    }
    if (!rig_hotplugd_pid(f->d))
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
    log = rig_hotplugd_log(f->d);
    takeovers = rig_count(log, "taken over from the journal");
    print_message("# %u cycles, %u kill -9 (%u just after a --no-wait del), %u starts, "
                  "%u --no-wait: %u ops (%" G_GSIZE_FORMAT " taken over after a kill), "
                  "%u deleted, %u deleted-late, %u records, %.1f s\n",
                  KILL_CYCLES, kills, in_flight_kills, rig_hotplugd_starts(f->d), no_wait, n_ops, takeovers,
                  n_deleted, n_late, recs->len, (g_get_monotonic_time() - t0) / 1e6);
    /* every cycle made two ops, unless hotplugd died before it took one */
    assert_true(n_ops >= 2 * KILL_CYCLES - kills);
    assert_true(n_ops <= 2 * KILL_CYCLES);
    assert_true(kills >= 5);
    /* some kills found an op in flight, and the restart finished it */
    assert_true(takeovers >= 1);
    /* the guest works: most unplugs end deleted */
    assert_true(n_deleted >= KILL_CYCLES / 2);
    assert_int_equal(rig_hotplugd_term(f->d), 0);
}

/* ---- a kill between an op's journal record and its request record ------------------ */

/* hotplugd(8) DURABILITY: a new op goes into the journal before its request
 * record.  A kill -9 between the two leaves the op in the journal and no
 * request in the log; the restart finishes the op (an unplug not sent yet
 * ends rejected) and must log its request first.  test_kill9 hits that
 * window only by chance; here the journal is left as the kill leaves it. */
static void
test_killed_before_request(void **state)
{
    Fixture *f = *state;
    g_autoptr(GPtrArray) before = NULL;
    g_autoptr(GPtrArray) recs = NULL;
    g_autofree char *journal = NULL, *put = NULL;
    gint64 last = 0, req_seq = -1, out_seq = -1;
    guint n_deleted, n_late;
    const char *text;
    int fd;

    write_config(f, FALSE);
    daemon_restart(f);
    before = read_log(f);
    if (before->len)
        last = qmp_json_get_int_default(before->pdata[before->len - 1], "seq", 0);
    assert_int_equal(rig_hotplugd_term(f->d), 0);

    /* the op's first journal record, as the daemon writes it just before
     * the request record (attempts 0; log_seq the log's last seq) */
    journal = g_build_filename(rig_hotplugd_state_dir(f->d), "journal", NULL);
    put = g_strdup_printf("{\"put\":{\"op\":900,\"vm\":\"vm1\",\"device\":\"ghost0\","
                          "\"device_kind\":\"device\",\"action\":\"unplug\",\"state\":\"sending\","
                          "\"attempts\":0,\"max_attempts\":1,\"timeout_ms\":5000,"
                          "\"retry_interval_ms\":2000,\"start_wall_us\":%" G_GINT64_FORMAT ","
                          "\"deadline_wall_us\":-1,\"log_seq\":%" G_GINT64_FORMAT "}}\n",
                          g_get_real_time(), last);
    fd = open(journal, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        fail_msg("%s: %s", journal, g_strerror(errno));
    assert_int_equal(write(fd, put, strlen(put)), (ssize_t)strlen(put));
    close(fd);

    daemon_restart(f);
    recs = read_log(f);
    /* every outcome after its op's request, every request with an outcome */
    check_ops(recs, &n_deleted, &n_late);
    for (guint i = 0; i < recs->len; i++) {
        JsonObject *rec = recs->pdata[i];
        const char *kind = qmp_json_get_string(rec, "kind");

        if (qmp_json_get_int_default(rec, "op", 0) != 900)
            continue;
        if (g_strcmp0(kind, "request") == 0) {
            req_seq = qmp_json_get_int_default(rec, "seq", -1);
            assert_string_equal(qmp_json_get_string(rec, "device"), "ghost0");
            assert_string_equal(qmp_json_get_string(rec, "action"), "unplug");
            text = qmp_json_get_string(qmp_json_get_object(rec, "detail"), "text");
            assert_non_null(text);
            assert_non_null(strstr(text, "restart"));
        } else if (g_strcmp0(kind, "outcome") == 0) {
            out_seq = qmp_json_get_int_default(rec, "seq", -1);
            assert_string_equal(qmp_json_get_string(rec, "outcome"), "rejected");
        }
    }
    if (req_seq <= last || out_seq <= req_seq)
        fail_msg("op 900: request at seq %" G_GINT64_FORMAT ", outcome at seq %" G_GINT64_FORMAT
                 " (the log ended at %" G_GINT64_FORMAT " before)", req_seq, out_seq, last);
    assert_seq_complete(recs);
    assert_int_equal(rig_hotplugd_term(f->d), 0);
}

/* ---- SIGTERM ---------------------------------------------------------------------------- */

static void
test_sigterm(void **state)
{
    Fixture *f = *state;
    const char *argv[] = {HOTPLUGD_PATH, "--foreground", "--config", rig_hotplugd_config(f->d),
                          NULL};
    g_autoptr(GError) error = NULL;
    g_autoptr(RigCtl) sub_end = NULL;
    g_autofree char *err_text = NULL;
    g_autofree char *log = NULL;
    RigCtlRun *sub;
    int status;

    write_config(f, FALSE);
    rig_hotplugd_start(f->d);
    rig_hotplugd_wait_vm_ready(f->d, "vm1");
    /* a second hotplugd on the same state directory is refused */
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                      &err_text, &status, &error))
        fail_msg("cannot run the second hotplugd: %s", error->message);
    if (!WIFEXITED(status))
        fail_msg("the second hotplugd: status 0x%x", status);
    assert_int_equal(WEXITSTATUS(status), 1);
    {
        g_autofree char *want =
            g_strdup_printf("another hotplugd (pid %d) runs on %s", (int)rig_hotplugd_pid(f->d),
                            rig_hotplugd_state_dir(f->d));
        if (!strstr(err_text, want))
            fail_msg("expected '%s' in: %s", want, err_text);
    }
    assert_true(rig_socket_accepts(rig_hotplugd_socket(f->d)));

    /* a subscriber is there when the daemon stops */
    sub = rig_hotplugd_ctl_start(f->d, "events", "--follow", NULL);
    g_usleep(300000);
    status = rig_hotplugd_term(f->d);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(g_file_test(rig_hotplugd_socket(f->d), G_FILE_TEST_EXISTS));
    sub_end = rig_ctl_wait(sub, 10000);
    assert_int_equal(sub_end->status, 1);
    assert_non_null(strstr(sub_end->err, "hotplugd went away after seq"));
    /* the log says it stopped cleanly; the state directory is free again */
    log = rig_hotplugd_log(f->d);
    assert_non_null(strstr(log, "signal 15: stopping"));
    assert_non_null(strstr(log, "stopped"));
    rig_hotplugd_start(f->d);
    rig_hotplugd_wait_vm_ready(f->d, "vm1");
    assert_int_equal(rig_hotplugd_term(f->d), 0);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_two_vms),
        T(test_subscriber),
        T(test_kill9),
        T(test_killed_before_request),
        T(test_sigterm),
    };

    /* TEST_FILTER=test_name (cmocka's pattern) runs some of them */
    if (g_getenv("TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
