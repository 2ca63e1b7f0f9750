/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the in-flight operations journal (put/replace/remove,
 * replay, torn last line, compaction, crashes at any point). */
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "qmp-json.h"

typedef struct {
    char *dir;
    char *path; /* dir/state/journal */
    char *tmp;  /* path.tmp */
} Fixture;

/* A child that dies of SIGKILL keeps its journal here (reachable for
 * valgrind). */
static Journal *child_journal;
/* The parent's allocations a child inherits, also reachable from here. */
static gpointer volatile inherited[4];

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

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->dir = g_dir_make_tmp("test-journal-XXXXXX", NULL);
    assert_non_null(f->dir);
    f->path = g_build_filename(f->dir, "state", "journal", NULL);
    f->tmp = g_strconcat(f->path, ".tmp", NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    rm_tree(f->dir);
    g_free(f->dir);
    g_free(f->path);
    g_free(f->tmp);
    g_free(f);
    return 0;
}

static Journal *
open_ok(const char *path)
{
    g_autoptr(GError) err = NULL;
    Journal *j = journal_open(path, &err);

    if (!j)
        fail_msg("journal_open(%s): %s", path, err->message);
    return j;
}

static JsonObject *
make_record(guint64 op, const char *state, gint64 attempt)
{
    JsonObject *r = json_object_new();
    g_autoptr(JsonObject) detail = json_object_new();

    json_object_set_int_member(r, "op", (gint64)op);
    json_object_set_string_member(r, "vm", "vm1");
    json_object_set_string_member(r, "device", "nic1");
    json_object_set_string_member(r, "state", state);
    json_object_set_int_member(r, "attempt", attempt);
    json_object_set_string_member(detail, "note", "line one\nline two");
    json_object_set_object_member(r, "detail", json_object_ref(detail));
    return r;
}

static void
put_ok(Journal *j, guint64 op, const char *state, gint64 attempt)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) r = make_record(op, state, attempt);

    if (!journal_put(j, op, r, &err))
        fail_msg("journal_put(%" G_GUINT64_FORMAT "): %s", op, err->message);
}

static void
remove_ok(Journal *j, guint64 op)
{
    g_autoptr(GError) err = NULL;

    if (!journal_remove(j, op, &err))
        fail_msg("journal_remove(%" G_GUINT64_FORMAT "): %s", op, err->message);
}

/* The open records are exactly ops[] with states[] (NULL: any). */
static void
assert_open(Journal *j, const guint64 *ops, const char *const *states, guint n)
{
    g_autoptr(GPtrArray) recs = journal_open_records(j);

    assert_int_equal(journal_n_open(j), n);
    assert_int_equal(recs->len, n);
    for (guint i = 0; i < n; i++) {
        JsonObject *r = recs->pdata[i];
        gint64 op = -1;

        assert_true(qmp_json_get_int(r, "op", &op));
        if ((guint64)op != ops[i])
            fail_msg("open record %u is op %" G_GINT64_FORMAT ", expected %" G_GUINT64_FORMAT, i,
                     op, ops[i]);
        if (states && states[i])
            assert_string_equal(qmp_json_get_string(r, "state"), states[i]);
        assert_string_equal(qmp_json_get_string(qmp_json_get_object(r, "detail"), "note"),
                            "line one\nline two");
    }
}

static guint
count_lines(const char *path)
{
    g_autofree char *content = NULL;
    gsize len = 0;
    guint n = 0;

    assert_true(g_file_get_contents(path, &content, &len, NULL));
    for (gsize i = 0; i < len; i++)
        n += content[i] == '\n';
    return n;
}

static guint64
file_size(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        fail_msg("stat %s: %s", path, g_strerror(errno));
    return (guint64)st.st_size;
}

static void
append_bytes(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* ------------------------------------------------------------------------ */

static void
test_put_replace_remove(void **state)
{
    Fixture *f = *state;
    g_autoptr(Journal) j = open_ok(f->path);
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonObject) r = make_record(7, "sending", 1);
    g_autoptr(GPtrArray) recs = NULL;
    const guint64 ops12[] = {1, 2};
    const char *const st12[] = {"waiting", "sending"};
    const guint64 ops2[] = {2};
    g_autofree char *content = NULL;
    guint64 size;

    assert_true(g_file_test(f->path, G_FILE_TEST_IS_REGULAR));
    assert_int_equal(journal_n_open(j), 0);
    assert_int_equal(journal_max_op(j), 0);

    put_ok(j, 2, "sending", 1);
    put_ok(j, 1, "sending", 1);
    put_ok(j, 1, "waiting", 1); /* replaces */
    assert_open(j, ops12, st12, 2);
    assert_int_equal(journal_max_op(j), 2);

    /* The journal keeps its own copy. */
    assert_true(journal_put(j, 7, r, &err));
    json_object_set_string_member(r, "state", "changed");
    json_object_set_string_member(qmp_json_get_object(r, "detail"), "note", "changed");
    recs = journal_open_records(j);
    assert_int_equal(recs->len, 3);
    assert_string_equal(qmp_json_get_string(recs->pdata[2], "state"), "sending");
    assert_int_equal(journal_max_op(j), 7);
    remove_ok(j, 7);

    remove_ok(j, 1);
    assert_open(j, ops2, NULL, 1);
    assert_int_equal(journal_max_op(j), 7);

    /* Removing an op that is not open writes nothing. */
    size = file_size(f->path);
    remove_ok(j, 1);
    remove_ok(j, 12345);
    assert_int_equal(file_size(f->path), size);

    /* The lines on disk. */
    assert_true(journal_flush(j, &err));
    assert_true(g_file_get_contents(f->path, &content, NULL, NULL));
    assert_true(g_str_has_prefix(
        content, "{\"put\":{\"op\":2,\"vm\":\"vm1\",\"device\":\"nic1\",\"state\":\"sending\","
                 "\"attempt\":1,\"detail\":{\"note\":\"line one\\nline two\"}}}\n"));
    assert_true(g_str_has_suffix(content, "\n{\"del\":7}\n{\"del\":1}\n"));
    assert_int_equal(count_lines(f->path), 6);
}

static void
test_invalid_put(void **state)
{
    Fixture *f = *state;
    g_autoptr(Journal) j = open_ok(f->path);
    g_autoptr(JsonObject) r = make_record(3, "sending", 1);
    g_autoptr(JsonObject) no_op = json_object_new();
    g_autoptr(JsonObject) str_op = json_object_new();
    GError *err = NULL;

    json_object_set_string_member(str_op, "op", "3");
    assert_false(journal_put(j, 4, r, &err)); /* op differs */
    assert_true(g_error_matches(err, JOURNAL_ERROR, JOURNAL_ERROR_INVALID));
    g_clear_error(&err);
    assert_false(journal_put(j, 3, no_op, &err));
    assert_true(g_error_matches(err, JOURNAL_ERROR, JOURNAL_ERROR_INVALID));
    g_clear_error(&err);
    assert_false(journal_put(j, 3, str_op, &err));
    assert_true(g_error_matches(err, JOURNAL_ERROR, JOURNAL_ERROR_INVALID));
    g_clear_error(&err);
    json_object_set_int_member(r, "op", 0);
    assert_false(journal_put(j, 0, r, &err));
    assert_true(g_error_matches(err, JOURNAL_ERROR, JOURNAL_ERROR_INVALID));
    g_clear_error(&err);
    assert_int_equal(journal_n_open(j), 0);
    assert_int_equal(journal_max_op(j), 0);
    assert_int_equal(file_size(f->path), 0);
}

static void
test_replay(void **state)
{
    Fixture *f = *state;
    const guint64 ops[] = {3, 5, 9};
    const char *const sts[] = {"retry-wait", "waiting", "sending"};
    g_autoptr(GPtrArray) before = NULL;
    g_autoptr(GPtrArray) after = NULL;
    Journal *j = open_ok(f->path);

    put_ok(j, 5, "sending", 1);
    put_ok(j, 3, "sending", 1);
    put_ok(j, 11, "sending", 1);
    put_ok(j, 9, "sending", 1);
    put_ok(j, 5, "waiting", 1);
    put_ok(j, 3, "retry-wait", 2);
    remove_ok(j, 11);
    before = journal_open_records(j);
    journal_free(j);

    j = open_ok(f->path);
    assert_open(j, ops, sts, 3);
    assert_int_equal(journal_max_op(j), 11);
    after = journal_open_records(j);
    for (guint i = 0; i < 3; i++) {
        g_autoptr(JsonNode) a = json_node_init_object(json_node_alloc(), before->pdata[i]);
        g_autoptr(JsonNode) b = json_node_init_object(json_node_alloc(), after->pdata[i]);

        assert_true(json_node_equal(a, b));
    }
    assert_int_equal(qmp_json_get_int_default(after->pdata[0], "attempt", 0), 2);

    /* Goes on where it was. */
    remove_ok(j, 3);
    put_ok(j, 12, "sending", 1);
    journal_free(j);
    j = open_ok(f->path);
    {
        const guint64 ops2[] = {5, 9, 12};

        assert_open(j, ops2, NULL, 3);
    }
    assert_int_equal(journal_max_op(j), 12);
    journal_free(j);
}

static void
test_torn_line(void **state)
{
    Fixture *f = *state;
    const guint64 ops[] = {1, 2};
    guint64 good;
    Journal *j = open_ok(f->path);

    put_ok(j, 1, "sending", 1);
    put_ok(j, 2, "sending", 1);
    journal_free(j);
    good = file_size(f->path);

    /* kill -9 in the middle of writing a put and of a del. */
    append_bytes(f->path, "{\"put\":{\"op\":3,\"vm\":\"vm");
    j = open_ok(f->path);
    assert_int_equal(file_size(f->path), good);
    assert_open(j, ops, NULL, 2);
    assert_int_equal(journal_max_op(j), 2);
    journal_free(j);

    append_bytes(f->path, "{\"del\":1");
    j = open_ok(f->path);
    assert_int_equal(file_size(f->path), good);
    assert_open(j, ops, NULL, 2);

    /* A whole last line that is not a journal line is cut too. */
    journal_free(j);
    append_bytes(f->path, "{\"put\":{\"vm\":\"no op\"}}\n\xff\xfe\n");
    j = open_ok(f->path);
    assert_int_equal(file_size(f->path), good);
    assert_open(j, ops, NULL, 2);

    /* And it goes on cleanly after the cut. */
    put_ok(j, 3, "sending", 1);
    remove_ok(j, 1);
    journal_free(j);
    j = open_ok(f->path);
    {
        const guint64 ops2[] = {2, 3};

        assert_open(j, ops2, NULL, 2);
    }
    assert_int_equal(journal_max_op(j), 3);
    assert_int_equal(count_lines(f->path), 4);
    journal_free(j);
}

/* A bad line in the middle (not from a crash): skipped, the rest applies. */
static void
test_bad_middle_line(void **state)
{
    Fixture *f = *state;
    const guint64 ops[] = {2, 3};
    Journal *j = open_ok(f->path);

    put_ok(j, 1, "sending", 1);
    put_ok(j, 2, "sending", 1);
    journal_free(j);
    append_bytes(f->path, "garbage\n{\"del\":1}\n");
    j = open_ok(f->path);
    assert_int_equal(count_lines(f->path), 4);
    put_ok(j, 3, "sending", 1);
    journal_free(j);
    j = open_ok(f->path);
    assert_open(j, ops, NULL, 2);
    assert_int_equal(journal_max_op(j), 3);
    assert_int_equal(count_lines(f->path), 5);
    journal_free(j);
}

/* A line as json-glib 1.6's generator wrote it before our own writer: a
 * raw 0x1f in a string.  The op it holds stays open after a restart. */
static void
test_raw_control_line(void **state)
{
    Fixture *f = *state;
    Journal *j = open_ok(f->path);
    g_autoptr(GPtrArray) recs = NULL;
    gboolean seen = FALSE;

    put_ok(j, 1, "sending", 1);
    journal_free(j);
    append_bytes(f->path, "{\"put\":{\"op\":7,\"vm\":\"vm1\",\"device\":\"nic7\",\"state\":"
                          "\"waiting\",\"attempt\":1,\"detail\":{\"note\":\"a\x1f" "b\"}}}\n");
    j = open_ok(f->path);
    assert_int_equal(journal_n_open(j), 2);
    recs = journal_open_records(j);
    for (guint i = 0; i < recs->len; i++) {
        JsonObject *r = recs->pdata[i];
        if (qmp_json_get_int_default(r, "op", 0) != 7)
            continue;
        assert_string_equal(qmp_json_get_string(qmp_json_get_object(r, "detail"), "note"),
                            "a\x1f" "b");
        seen = TRUE;
    }
    assert_true(seen);
    journal_free(j);
}

static void
test_compaction(void **state)
{
    Fixture *f = *state;
    g_autofree char *content = NULL;
    guint64 ops[10];
    Journal *j = open_ok(f->path);
    guint lines;

    for (guint64 op = 1; op <= 600; op++)
        put_ok(j, op, "sending", 1);
    assert_int_equal(count_lines(f->path), 600);
    /* 600 + k lines, 600 - k open: compaction when k = 401 (1001 lines) */
    for (guint64 op = 1; op <= 400; op++)
        remove_ok(j, op);
    assert_int_equal(count_lines(f->path), 1000);
    remove_ok(j, 401);
    assert_int_equal(count_lines(f->path), 1 + 199);
    assert_true(g_file_get_contents(f->path, &content, NULL, NULL));
    assert_true(g_str_has_prefix(content, "{\"max_op\":600}\n{\"put\":{\"op\":402,"));
    assert_false(g_file_test(f->tmp, G_FILE_TEST_EXISTS));
    for (guint64 op = 402; op <= 590; op++)
        remove_ok(j, op);
    lines = count_lines(f->path);
    assert_int_equal(lines, 200 + 189);
    for (guint i = 0; i < 10; i++)
        ops[i] = 591 + i;
    assert_open(j, ops, NULL, 10);
    assert_int_equal(journal_max_op(j), 600);
    journal_free(j);

    j = open_ok(f->path);
    assert_open(j, ops, NULL, 10);
    assert_int_equal(journal_max_op(j), 600);

    /* Every op ends, the file is compacted again: max_op survives. */
    for (guint i = 0; i < 10; i++)
        remove_ok(j, ops[i]);
    for (guint64 op = 1; op <= 700; op++) {
        put_ok(j, op, "sending", 1);
        remove_ok(j, op);
    }
    assert_true(count_lines(f->path) < 1000);
    assert_int_equal(journal_max_op(j), 700);
    journal_free(j);
    j = open_ok(f->path);
    assert_int_equal(journal_n_open(j), 0);
    assert_int_equal(journal_max_op(j), 700);
    journal_free(j);

    /* Lower op ids than max_op (after all ended) do not lower it. */
    j = open_ok(f->path);
    put_ok(j, 5, "sending", 1);
    assert_int_equal(journal_max_op(j), 700);
    journal_free(j);
}

/* A long file from an old run is compacted on open. */
static void
test_compaction_on_open(void **state)
{
    Fixture *f = *state;
    const guint64 ops[] = {1200};
    GString *s = g_string_new(NULL);
    Journal *j;

    {
        g_autofree char *d = g_path_get_dirname(f->path);

        assert_int_equal(g_mkdir_with_parents(d, 0700), 0);
    }
    for (guint op = 1; op <= 1200; op++) {
        g_string_append_printf(s,
                               "{\"put\":{\"op\":%u,\"state\":\"sending\",\"detail\":"
                               "{\"note\":\"line one\\nline two\"}}}\n",
                               op);
        if (op < 1200)
            g_string_append_printf(s, "{\"del\":%u}\n", op);
    }
    assert_true(g_file_set_contents(f->path, s->str, (gssize)s->len, NULL));
    g_string_free(s, TRUE);
    j = open_ok(f->path);
    assert_open(j, ops, NULL, 1);
    assert_int_equal(journal_max_op(j), 1200);
    assert_int_equal(count_lines(f->path), 2);
    journal_free(j);
}

/* kill -9 during a compaction: the tmp file is left, the journal intact. */
static void
test_stale_tmp(void **state)
{
    Fixture *f = *state;
    const guint64 ops[] = {1, 4};
    Journal *j = open_ok(f->path);

    put_ok(j, 1, "sending", 1);
    put_ok(j, 4, "waiting", 1);
    put_ok(j, 6, "sending", 1);
    remove_ok(j, 6);
    journal_free(j);

    /* A half-written compaction that even looks valid: never used. */
    assert_true(
        g_file_set_contents(f->tmp, "{\"max_op\":99}\n{\"put\":{\"op\":50}}\n{\"put\"", -1, NULL));
    j = open_ok(f->path);
    assert_false(g_file_test(f->tmp, G_FILE_TEST_EXISTS));
    assert_open(j, ops, NULL, 2);
    assert_int_equal(journal_max_op(j), 6);
    journal_free(j);
}

/* Put, then kill -9 before any flush or free: replayed. */
static void
test_killed_before_flush(void **state)
{
    Fixture *f = *state;
    const guint64 ops[] = {2, 3};
    const char *const sts[] = {"waiting", "sending"};
    int status = 0;
    pid_t pid;
    Journal *j;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_journal = journal_open(f->path, NULL);
        if (!child_journal)
            _exit(2);
        for (guint64 op = 1; op <= 3; op++) {
            g_autoptr(JsonObject) r = make_record(op, "sending", 1);

            if (!journal_put(child_journal, op, r, NULL))
                _exit(3);
        }
        {
            g_autoptr(JsonObject) r = make_record(2, "waiting", 1);

            if (!journal_put(child_journal, 2, r, NULL) || !journal_remove(child_journal, 1, NULL))
                _exit(4);
        }
        kill(getpid(), SIGKILL);
        _exit(5);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("child did not die of SIGKILL (status 0x%x)", status);
    j = open_ok(f->path);
    assert_open(j, ops, sts, 2);
    assert_int_equal(journal_max_op(j), 3);
    journal_free(j);
}

/* What the lines of text say, applied the simplest way: open ops into
 * model (keys[] holds them), the highest op seen into *max. */
static void
reference_replay(const char *text, GHashTable *model, gint64 *keys, guint64 *max)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autoptr(JsonParser) p = json_parser_new();

    for (guint i = 0; lines[i]; i++) {
        JsonObject *o;
        gint64 v;

        if (!lines[i][0])
            continue;
        assert_true(json_parser_load_from_data(p, lines[i], -1, NULL));
        o = qmp_json_node_object(json_parser_get_root(p));
        assert_non_null(o);
        if (qmp_json_get_int(o, "max_op", &v)) {
            *max = MAX(*max, (guint64)v);
        } else if (qmp_json_get_int(o, "del", &v)) {
            g_hash_table_remove(model, &v);
        } else {
            assert_true(qmp_json_get_int(qmp_json_get_object(o, "put"), "op", &v));
            keys[v] = v;
            g_hash_table_add(model, &keys[v]);
            *max = MAX(*max, (guint64)v);
        }
    }
}

/* Children put and remove at random (compactions included) and are killed
 * at random; the file is also cut inside its last line.  The replay always
 * matches what the child had written. */
static void
test_kill_at_random_moments(void **state)
{
    Fixture *f = *state;
    g_autoptr(GRand) rand = g_rand_new_with_seed(7);
    g_autoptr(GHashTable) model = g_hash_table_new(g_int64_hash, g_int64_equal);
    static gint64 keys[100000];
    guint64 next_op = 1;
    guint64 model_max = 0;

    inherited[0] = rand;
    inherited[1] = model;

    for (guint round = 0; round < 20; round++) {
        guint n = (guint)g_rand_int_range(rand, 0, 300);
        guint32 seed = g_rand_int(rand);
        g_autoptr(GPtrArray) recs = NULL;
        int status = 0;
        pid_t pid;
        Journal *j;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* the same choices as the model below, from the same seed */
            GRand *r = g_rand_new_with_seed(seed);
            guint64 op = next_op;

            inherited[2] = r;

            child_journal = journal_open(f->path, NULL);
            if (!child_journal)
                _exit(2);
            for (guint i = 0; i < n; i++) {
                g_autoptr(GPtrArray) open = journal_open_records(child_journal);

                if (open->len > 0 && g_rand_int_range(r, 0, 100) < 48) {
                    gint64 victim = qmp_json_get_int_default(
                        open->pdata[g_rand_int_range(r, 0, (gint32)open->len)], "op", 0);

                    if (!journal_remove(child_journal, (guint64)victim, NULL))
                        _exit(3);
                } else {
                    g_autoptr(JsonObject) rec = make_record(op, "sending", 1);

                    if (!journal_put(child_journal, op++, rec, NULL))
                        _exit(4);
                }
                if (g_rand_int_range(r, 0, 10) == 0 && !journal_flush(child_journal, NULL))
                    _exit(5);
            }
            kill(getpid(), SIGKILL);
            _exit(6);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status))
            fail_msg("round %u: child exited with %d", round, WEXITSTATUS(status));

        /* Replay the same choices on the model. */
        {
            g_autoptr(GRand) r = g_rand_new_with_seed(seed);

            for (guint i = 0; i < n; i++) {
                guint size = g_hash_table_size(model);

                if (size > 0 && g_rand_int_range(r, 0, 100) < 48) {
                    /* open records are in op order */
                    g_autoptr(GList) l = g_hash_table_get_keys(model);
                    gint64 *sorted = g_new(gint64, size);
                    guint k = 0;
                    gint32 pick;

                    for (GList *it = l; it; it = it->next)
                        sorted[k++] = *(gint64 *)it->data;
                    for (guint a = 1; a < size; a++)
                        for (guint b = a; b > 0 && sorted[b - 1] > sorted[b]; b--) {
                            gint64 t = sorted[b];

                            sorted[b] = sorted[b - 1];
                            sorted[b - 1] = t;
                        }
                    pick = g_rand_int_range(r, 0, (gint32)size);
                    g_hash_table_remove(model, &(gint64){sorted[pick]});
                    g_free(sorted);
                } else {
                    keys[next_op] = (gint64)next_op;
                    g_hash_table_add(model, &keys[next_op]);
                    model_max = next_op;
                    next_op++;
                }
                g_rand_int_range(r, 0, 10);
            }
        }

        j = open_ok(f->path);
        recs = journal_open_records(j);
        if (recs->len != g_hash_table_size(model))
            fail_msg("round %u: %u open, expected %u", round, recs->len, g_hash_table_size(model));
        for (guint i = 0; i < recs->len; i++) {
            gint64 op = qmp_json_get_int_default(recs->pdata[i], "op", 0);

            if (!g_hash_table_contains(model, &op))
                fail_msg("round %u: op %" G_GINT64_FORMAT " open, not expected", round, op);
        }
        assert_int_equal(journal_max_op(j), model_max);
        journal_free(j);

        /* Sometimes cut into the last line, as a kill in the middle of a
         * write would: the replay must equal the state before that line. */
        if (g_rand_boolean(rand) && file_size(f->path) > 0) {
            g_autofree char *content = NULL;
            g_autoptr(GPtrArray) recs2 = NULL;
            gsize len = 0;
            const char *last;
            guint64 keep;

            assert_true(g_file_get_contents(f->path, &content, &len, NULL));
            content[len - 1] = '\0';
            last = strrchr(content, '\n');
            last = last ? last + 1 : content;
            keep = (guint64)(last - content) +
                   (guint64)g_rand_int_range(rand, 0, (gint32)(content + len - last));
            assert_int_equal(truncate(f->path, (off_t)keep), 0);
            /* The model becomes what the whole lines say. */
            content[last - content] = '\0';
            g_hash_table_remove_all(model);
            model_max = 0;
            reference_replay(content, model, keys, &model_max);
            j = open_ok(f->path);
            assert_int_equal(file_size(f->path), (guint64)(last - content));
            recs2 = journal_open_records(j);
            assert_int_equal(recs2->len, g_hash_table_size(model));
            for (guint i = 0; i < recs2->len; i++) {
                gint64 op = qmp_json_get_int_default(recs2->pdata[i], "op", 0);

                assert_true(g_hash_table_contains(model, &op));
            }
            assert_int_equal(journal_max_op(j), model_max);
            journal_free(j);
        }
    }
}

/* The child of test_write_error: 0 when all went as expected. */
static int
write_error_child(const char *path)
{
    g_autoptr(Journal) j = NULL;
    g_autoptr(GError) e = NULL;
    g_autoptr(GPtrArray) recs = NULL;
    struct rlimit rl;
    guint64 good;

    signal(SIGXFSZ, SIG_IGN);
    j = journal_open(path, NULL);
    if (!j)
        return 2;
    for (guint64 op = 1; op <= 3; op++) {
        g_autoptr(JsonObject) r = make_record(op, "sending", 1);

        if (!journal_put(j, op, r, NULL))
            return 3;
    }
    good = file_size(path);
    if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 4;
    rl.rlim_cur = good + 30; /* part of the next line only */
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 5;
    for (guint i = 0; i < 2; i++) {
        g_autoptr(JsonObject) r = make_record(4, "sending", 1);

        if (journal_put(j, 4, r, &e))
            return 6;
        if (!g_error_matches(e, JOURNAL_ERROR, JOURNAL_ERROR_IO) ||
            !strstr(e->message, "File too large"))
            return 7;
        g_clear_error(&e);
        /* the file as before; memory has the op (the flush writes it) */
        if (file_size(path) != good || journal_n_open(j) != 4 || journal_max_op(j) != 4)
            return 8;
    }
    rl.rlim_cur = good; /* not even the first byte of a del */
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 9;
    if (journal_remove(j, 1, &e) || !e)
        return 10;
    g_clear_error(&e);
    if (file_size(path) != good || journal_n_open(j) != 3)
        return 11;
    /* the flush cannot write the whole file again either */
    if (journal_flush(j, &e) || !e)
        return 15;
    g_clear_error(&e);
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 12;
    {
        g_autoptr(JsonObject) r = make_record(4, "sending", 1);

        if (!journal_put(j, 4, r, NULL) || !journal_remove(j, 1, NULL))
            return 13;
    }
    if (!journal_flush(j, NULL))
        return 14;
    return 0;
}

/* A write that fails part-way (EFBIG through RLIMIT_FSIZE, like ENOSPC):
 * an error, the file as before, the state in memory as asked; the flush
 * with room again writes the whole file (max_op and the open records). */
static void
test_write_error(void **state)
{
    Fixture *f = *state;
    const guint64 ops[] = {2, 3, 4};
    int status = 0;
    pid_t pid;
    Journal *j;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(write_error_child(f->path));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child failed at check %d", WEXITSTATUS(status));
    j = open_ok(f->path);
    assert_open(j, ops, NULL, 3);
    assert_int_equal(journal_max_op(j), 4);
    assert_int_equal(count_lines(f->path), 4);
    journal_free(j);
}

static void
test_unusable_path(void **state)
{
    Fixture *f = *state;
    g_autofree char *file = g_build_filename(f->dir, "plain-file", NULL);
    g_autofree char *under = g_build_filename(file, "journal", NULL);
    g_autoptr(GError) err = NULL;
    Journal *j;

    assert_true(g_file_set_contents(file, "x", 1, NULL));
    j = journal_open(under, &err);
    assert_null(j);
    assert_true(g_error_matches(err, JOURNAL_ERROR, JOURNAL_ERROR_IO));
    g_clear_error(&err);
    /* the journal path is a directory */
    assert_int_equal(g_mkdir_with_parents(f->path, 0700), 0);
    j = journal_open(f->path, &err);
    assert_null(j);
    assert_true(g_error_matches(err, JOURNAL_ERROR, JOURNAL_ERROR_IO));
    assert_non_null(strstr(err->message, f->path));
}


/* Deferred compaction (hotplugd's syncer): the compacted file is written
 * at the flush, synced and renamed by the batch; lines written before the
 * batch ran go to both files, so the journal on disk is whole at every
 * moment, before and after the rename. */
static void
test_deferred_compaction(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    guint64 ops[251];
    Journal *j = open_ok(f->path);
    Journal *r;

    journal_set_deferred_compaction(j, TRUE);
    for (guint64 op = 1; op <= 600; op++)
        put_ok(j, op, "sending", 1);
    for (guint64 op = 1; op <= 450; op++)
        remove_ok(j, op);
    /* past the threshold, but nothing is compacted inside put/remove */
    assert_int_equal(count_lines(f->path), 1050);
    {
        g_autoptr(SyncBatch) b = sync_batch_new();

        assert_true(journal_sync_prepare(j, b, TRUE, &err));
        /* fdatasync, the compacted file's sync, its rename, the directory */
        assert_true(sync_batch_n_steps(b) >= 3);
        assert_true(g_file_test(f->tmp, G_FILE_TEST_EXISTS));
        /* written while the batch is on its way: in both files */
        put_ok(j, 601, "sending", 1);
        remove_ok(j, 451);
        assert_int_equal(count_lines(f->path), 1052);
        /* a crash now: the old file is the journal, and it is whole */
        r = open_ok(f->path);
        for (guint i = 0; i < 150; i++)
            ops[i] = 452 + i;
        assert_open(r, ops, NULL, 150);
        journal_free(r);
    }
    /* that open removed the unfinished compaction: the rename path is
     * checked on a fresh journal below */
    journal_free(j);

    j = open_ok(f->path);
    journal_set_deferred_compaction(j, TRUE);
    for (guint64 op = 1000; op <= 1700; op++)
        put_ok(j, op, "sending", 1);
    for (guint64 op = 1000; op <= 1600; op++)
        remove_ok(j, op);
    {
        g_autoptr(SyncBatch) b = sync_batch_new();

        assert_true(journal_sync_prepare(j, b, TRUE, &err));
        put_ok(j, 1701, "sending", 1);
        remove_ok(j, 1601);
        assert_true(sync_batch_run(b, &err));
        journal_sync_done(j, b, TRUE);
    }
    assert_false(g_file_test(f->tmp, G_FILE_TEST_EXISTS));
    /* max_op, the open records, and the two lines written meanwhile */
    assert_int_equal(count_lines(f->path), 1 + 150 + 100 + 2);
    put_ok(j, 1702, "sending", 1);
    assert_true(journal_flush(j, &err));
    journal_free(j);
    j = open_ok(f->path);
    for (guint i = 0; i < 150; i++)
        ops[i] = 452 + i;
    for (guint i = 0; i < 101; i++)
        ops[150 + i] = 1602 + i;
    assert_open(j, ops, NULL, 251);
    assert_int_equal(journal_max_op(j), 1702);
    journal_free(j);
}

/* Prepares a batch (lazy_too as given), checks its number of steps, runs it. */
static void
sync_steps(Journal *j, gboolean lazy_too, guint n_steps)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(SyncBatch) b = sync_batch_new();

    assert_true(journal_sync_prepare(j, b, lazy_too, &err));
    assert_int_equal(sync_batch_n_steps(b), n_steps);
    assert_true(sync_batch_run(b, &err));
    journal_sync_done(j, b, TRUE);
}

/* A removal of an op whose outcome is logged (journal_remove_logged) does
 * not make the next batch sync the journal on its own: only a batch that
 * takes lazy changes too (the daemon's sweep, a stop) or a change that
 * must be durable does.  The line is written at once all the same. */
static void
test_logged_removal_lazy(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    Journal *j = open_ok(f->path);
    const guint64 open2[] = {2};

    journal_set_deferred_compaction(j, TRUE);
    put_ok(j, 1, "sending", 1);
    put_ok(j, 2, "sending", 1);
    sync_steps(j, FALSE, 2); /* the file and its new directory entry */
    assert_false(journal_has_unsynced(j));

    /* a logged removal alone: written, not synced... */
    assert_true(journal_remove_logged(j, 1, &err));
    assert_int_equal(count_lines(f->path), 3);
    assert_true(journal_has_unsynced(j));
    sync_steps(j, FALSE, 0);
    assert_true(journal_has_unsynced(j));
    /* ...until a batch takes lazy changes too */
    sync_steps(j, TRUE, 1);
    assert_false(journal_has_unsynced(j));
    sync_steps(j, TRUE, 0);

    /* a put after a logged removal takes it along */
    put_ok(j, 3, "sending", 1);
    sync_steps(j, FALSE, 1);
    assert_true(journal_remove_logged(j, 3, &err));
    put_ok(j, 4, "sending", 1);
    sync_steps(j, FALSE, 1);
    assert_false(journal_has_unsynced(j));
    /* a removal that must be durable (journal_remove) is synced alone */
    assert_true(journal_remove_logged(j, 4, &err));
    sync_steps(j, FALSE, 0);
    put_ok(j, 5, "sending", 1);
    sync_steps(j, FALSE, 1);
    remove_ok(j, 5);
    sync_steps(j, FALSE, 1);
    assert_false(journal_has_unsynced(j));
    journal_free(j);

    /* every removal is in the file */
    j = open_ok(f->path);
    assert_open(j, open2, NULL, 1);
    journal_free(j);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_put_replace_remove),
        T(test_invalid_put),
        T(test_replay),
        T(test_torn_line),
        T(test_bad_middle_line),
        T(test_raw_control_line),
        T(test_compaction),
        T(test_compaction_on_open),
        T(test_deferred_compaction),
        T(test_logged_removal_lazy),
        T(test_stale_tmp),
        T(test_killed_before_flush),
        T(test_kill_at_random_moments),
        T(test_write_error),
        T(test_unusable_path),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
