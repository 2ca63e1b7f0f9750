/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the durable event log (append, read back, seq across
 * restarts, retention gaps, torn records after a crash, kill -9 before a
 * flush, write errors, bounded memory on big logs). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "event-log.h"
#include "qmp-json.h"

typedef struct {
    char *dir; /* a fresh temporary directory; the log is in dir/log */
    char *log_dir;
} Fixture;

/* A child that dies of SIGKILL keeps its log here, so that valgrind sees it
 * as reachable rather than lost. */
static EventLog *child_log;

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

    f->dir = g_dir_make_tmp("test-event-log-XXXXXX", NULL);
    assert_non_null(f->dir);
    f->log_dir = g_build_filename(f->dir, "log", NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;

    rm_tree(f->dir);
    g_free(f->dir);
    g_free(f->log_dir);
    g_free(f);
    return 0;
}

static EventLog *
open_ok(const char *dir, guint64 max_bytes, guint64 segment_bytes)
{
    EventLogOptions opts = {max_bytes, segment_bytes};
    g_autoptr(GError) err = NULL;
    EventLog *log = event_log_open(dir, &opts, &err);

    if (!log)
        fail_msg("event_log_open(%s): %s", dir, err->message);
    return log;
}

static JsonObject *
make_record(const char *vm, const char *kind, const char *device, gint64 op)
{
    JsonObject *r = json_object_new();

    if (vm)
        json_object_set_string_member(r, "vm", vm);
    if (kind)
        json_object_set_string_member(r, "kind", kind);
    json_object_set_int_member(r, "op", op);
    if (device)
        json_object_set_string_member(r, "device", device);
    return r;
}

static guint64
append_ok(EventLog *log, JsonObject *rec, JsonObject **out)
{
    g_autoptr(GError) err = NULL;
    guint64 seq = event_log_append(log, rec, out, &err);

    if (seq == 0)
        fail_msg("event_log_append: %s", err->message);
    return seq;
}

static guint64
append_op(EventLog *log, gint64 op)
{
    g_autoptr(JsonObject) rec = make_record("vm1", "attempt", "nic1", op);

    return append_ok(log, rec, NULL);
}

static char *
to_string(JsonObject *obj)
{
    g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);

    return json_to_string(node, FALSE);
}

typedef struct {
    GPtrArray *recs;
    guint stop_after; /* 0: never */
    const EventLogFilter *filter;
} Collect;

static gboolean
collect_cb(JsonObject *record, gpointer opaque)
{
    Collect *c = opaque;

    if (event_log_filter_match(c->filter, record))
        g_ptr_array_add(c->recs, json_object_ref(record));
    return !(c->stop_after && c->recs->len >= c->stop_after);
}

/* Records with seq > since (at most stop_after when non-zero). */
static GPtrArray *
read_since(EventLog *log, guint64 since, guint stop_after, const EventLogFilter *filter,
           guint64 *gap_from, guint64 *gap_to)
{
    g_autoptr(GError) err = NULL;
    Collect c = {g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref), stop_after,
                 filter};

    if (!event_log_read_since(log, since, collect_cb, &c, gap_from, gap_to, &err))
        fail_msg("event_log_read_since(%" G_GUINT64_FORMAT "): %s", since, err->message);
    return c.recs;
}

static guint64
rec_seq(JsonObject *r)
{
    gint64 v = -1;

    assert_true(qmp_json_get_int(r, "seq", &v));
    return (guint64)v;
}

/* Every record's seq is from, from+1, ... */
static void
assert_seqs(GPtrArray *recs, guint64 from, guint n)
{
    assert_int_equal(recs->len, n);
    for (guint i = 0; i < recs->len; i++) {
        if (rec_seq(recs->pdata[i]) != from + i)
            fail_msg("record %u has seq %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, i,
                     rec_seq(recs->pdata[i]), from + i);
    }
}

static gint
cmp_str_ptr(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Segment file names in dir, sorted. */
static GPtrArray *
segments(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *name;

    assert_non_null(d);
    while ((name = g_dir_read_name(d))) {
        if (g_str_has_prefix(name, "events-") && g_str_has_suffix(name, ".log"))
            g_ptr_array_add(names, g_strdup(name));
    }
    g_ptr_array_sort(names, cmp_str_ptr);
    return names;
}

static char *
newest_segment(const char *dir)
{
    g_autoptr(GPtrArray) names = segments(dir);

    assert_true(names->len > 0);
    return g_build_filename(dir, names->pdata[names->len - 1], NULL);
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

static guint64
dir_bytes(const char *dir)
{
    g_autoptr(GPtrArray) names = segments(dir);
    guint64 total = 0;

    for (guint i = 0; i < names->len; i++) {
        g_autofree char *p = g_build_filename(dir, names->pdata[i], NULL);

        total += file_size(p);
    }
    return total;
}

/* ------------------------------------------------------------------------ */

static void
test_append_read_back(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(EventLog) log = event_log_open(f->log_dir, NULL, &err);
    g_autoptr(JsonObject) rec = make_record("vm1", "outcome", "nic1", 9);
    g_autoptr(JsonObject) detail = json_object_new();
    g_autoptr(JsonArray) arr = json_array_new();
    g_autoptr(JsonObject) rec2 = make_record("vm2", "request", "disk1", 10);
    g_autoptr(JsonObject) out1 = NULL;
    g_autoptr(JsonObject) out2 = NULL;
    g_autoptr(GPtrArray) recs = NULL;
    g_autoptr(GList) names = NULL;
    g_autofree char *s1 = NULL;
    g_autofree char *s2 = NULL;
    g_autofree char *seg = NULL;
    g_autofree char *content = NULL;
    g_autofree char *expect = NULL;
    guint64 gf = 99, gt = 99;
    static const char *const order[] = {"seq", "time", "vm", "kind", "op", "device", "detail"};
    guint i = 0;

    assert_non_null(log);
    assert_int_equal(event_log_first_seq(log), 0);
    assert_int_equal(event_log_last_seq(log), 0);
    recs = read_since(log, 0, 0, NULL, &gf, &gt);
    assert_int_equal(recs->len, 0);
    assert_int_equal(gf, 0);
    assert_int_equal(gt, 0);
    g_clear_pointer(&recs, g_ptr_array_unref);

    json_array_add_int_element(arr, 1);
    json_array_add_string_element(arr, "two\nlines \"quoted\"");
    json_object_set_array_member(detail, "list", json_array_ref(arr));
    json_object_set_object_member(rec, "detail", json_object_ref(detail));
    assert_int_equal(append_ok(log, rec, &out1), 1);
    assert_non_null(out1);

    /* seq, time first, then the record's members in order. */
    names = json_object_get_members(out1);
    assert_int_equal(g_list_length(names), G_N_ELEMENTS(order));
    for (GList *l = names; l; l = l->next, i++)
        assert_string_equal(l->data, order[i]);
    assert_int_equal(rec_seq(out1), 1);
    assert_string_equal(qmp_json_get_string(out1, "vm"), "vm1");
    assert_int_equal(qmp_json_get_int_default(out1, "op", 0), 9);

    /* The stored record is a copy: changing the caller's does not touch it. */
    json_array_add_int_element(arr, 3);
    json_object_set_string_member(rec, "vm", "changed");
    s1 = to_string(out1);
    assert_null(strstr(s1, "changed"));
    assert_non_null(strstr(s1, "[1,\"two\\nlines \\\"quoted\\\"\"]"));

    /* "seq" and "time" of the record are ignored. */
    json_object_set_int_member(rec2, "seq", 77);
    json_object_set_string_member(rec2, "time", "yesterday");
    assert_int_equal(append_ok(log, rec2, &out2), 2);
    assert_int_equal(rec_seq(out2), 2);
    assert_string_not_equal(qmp_json_get_string(out2, "time"), "yesterday");
    assert_int_equal(event_log_first_seq(log), 1);
    assert_int_equal(event_log_last_seq(log), 2);

    recs = read_since(log, 0, 0, NULL, &gf, &gt);
    assert_seqs(recs, 1, 2);
    assert_int_equal(gf, 0);
    assert_int_equal(gt, 0);
    {
        g_autofree char *r1 = to_string(recs->pdata[0]);
        g_autofree char *r2 = to_string(recs->pdata[1]);

        s2 = to_string(out2);
        assert_string_equal(r1, s1);
        assert_string_equal(r2, s2);
    }

    /* On disk: exactly two compact lines, one per record, in one segment. */
    assert_true(event_log_flush(log, &err));
    seg = newest_segment(f->log_dir);
    assert_true(g_str_has_suffix(seg, "events-00000000000000000001.log"));
    assert_true(g_file_get_contents(seg, &content, NULL, NULL));
    expect = g_strdup_printf("%s\n%s\n", s1, s2);
    assert_string_equal(content, expect);
    assert_int_equal(event_log_size(log), strlen(expect));
}

static void
test_seq_and_time(void **state)
{
    Fixture *f = *state;
    g_autoptr(EventLog) log = open_ok(f->log_dir, 0, 0);
    g_autoptr(GRegex) re =
        g_regex_new("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{6}Z$", 0, 0, NULL);
    g_autofree char *prev = NULL;
    gint64 before = g_get_real_time();

    for (guint i = 0; i < 50; i++) {
        g_autoptr(JsonObject) rec = make_record("vm1", "attempt", NULL, i);
        g_autoptr(JsonObject) out = NULL;
        g_autoptr(GDateTime) dt = NULL;
        const char *t;
        gint64 when;

        assert_int_equal(append_ok(log, rec, &out), i + 1);
        t = qmp_json_get_string(out, "time");
        assert_non_null(t);
        if (!g_regex_match(re, t, 0, NULL))
            fail_msg("time %s is not RFC 3339 UTC with microseconds", t);
        dt = g_date_time_new_from_iso8601(t, NULL);
        assert_non_null(dt);
        when = g_date_time_to_unix(dt) * G_USEC_PER_SEC + g_date_time_get_microsecond(dt);
        /* within a second of the clock around the call */
        assert_true(when >= before / G_USEC_PER_SEC * G_USEC_PER_SEC);
        assert_true(when <= g_get_real_time() + G_USEC_PER_SEC);
        if (prev)
            assert_true(strcmp(prev, t) <= 0);
        g_free(prev);
        prev = g_strdup(t);
    }
    assert_int_equal(event_log_last_seq(log), 50);
}

static void
test_reopen_continues(void **state)
{
    Fixture *f = *state;
    g_autoptr(GPtrArray) recs = NULL;
    EventLog *log = open_ok(f->log_dir, 0, 0);

    for (guint i = 1; i <= 5; i++)
        assert_int_equal(append_op(log, i), i);
    event_log_free(log);

    log = open_ok(f->log_dir, 0, 0);
    assert_int_equal(event_log_first_seq(log), 1);
    assert_int_equal(event_log_last_seq(log), 5);
    assert_int_equal(append_op(log, 6), 6);
    event_log_free(log);

    /* Open and close without appending: nothing changes. */
    log = open_ok(f->log_dir, 0, 0);
    event_log_free(log);
    log = open_ok(f->log_dir, 0, 0);
    assert_int_equal(event_log_last_seq(log), 6);
    recs = read_since(log, 0, 0, NULL, NULL, NULL);
    assert_seqs(recs, 1, 6);
    for (guint i = 0; i < 6; i++)
        assert_int_equal(qmp_json_get_int_default(recs->pdata[i], "op", 0), i + 1);
    assert_int_equal(append_op(log, 7), 7);
    event_log_free(log);
}

static void
test_read_since_middle(void **state)
{
    Fixture *f = *state;
    /* Small segments: the segment must be picked right for every since. */
    g_autoptr(EventLog) log = open_ok(f->log_dir, 0, 1000);
    g_autoptr(GPtrArray) names = NULL;

    for (guint i = 1; i <= 100; i++)
        assert_int_equal(append_op(log, i), i);
    names = segments(f->log_dir);
    assert_true(names->len >= 8);

    for (guint64 since = 0; since <= 102; since++) {
        g_autoptr(GPtrArray) recs = NULL;
        guint64 gf = 99, gt = 99;

        recs = read_since(log, since, 0, NULL, &gf, &gt);
        assert_seqs(recs, since + 1, since >= 100 ? 0 : 100 - since);
        for (guint i = 0; i < recs->len; i++)
            assert_int_equal(qmp_json_get_int_default(recs->pdata[i], "op", 0), since + 1 + i);
        assert_int_equal(gf, 0);
        assert_int_equal(gt, 0);
    }
    {
        /* The callback stops the reading. */
        g_autoptr(GPtrArray) recs = read_since(log, 42, 3, NULL, NULL, NULL);

        assert_seqs(recs, 43, 3);
    }
}


/* Reading back starts at the index mark nearest below since (every 64th
 * record, learnt when appending and when reading an older segment), in
 * big segments, after a restart, and after segments were dropped. */
static void
test_read_since_index(void **state)
{
    Fixture *f = *state;
    const guint64 sinces[] = {0, 1, 62, 63, 64, 65, 127, 128, 129, 500, 1022, 1023, 1024, 1999, 2000};
    EventLog *log = open_ok(f->log_dir, 0, 64 * 1024);

    for (guint i = 1; i <= 2000; i++)
        assert_int_equal(append_op(log, i), i);
    for (guint round = 0; round < 3; round++) {
        for (guint k = 0; k < G_N_ELEMENTS(sinces); k++) {
            guint64 since = sinces[k];
            g_autoptr(GPtrArray) recs = read_since(log, since, 70, NULL, NULL, NULL);
            guint64 total = round == 2 ? 2100 : 2000;
            guint n = since >= total ? 0 : (guint)MIN(70, total - since);

            assert_seqs(recs, since + 1, n);
            for (guint i = 0; i < recs->len; i++)
                assert_int_equal(qmp_json_get_int_default(recs->pdata[i], "op", 0), since + 1 + i);
        }
        /* round 1: marks learnt by reading only; round 2: and more appended */
        event_log_free(log);
        log = open_ok(f->log_dir, 0, 64 * 1024);
        if (round == 1)
            for (guint i = 2001; i <= 2100; i++)
                assert_int_equal(append_op(log, i), i);
    }
    {
        g_autoptr(GPtrArray) recs = read_since(log, 1990, 0, NULL, NULL, NULL);

        assert_seqs(recs, 1991, 110);
    }
    event_log_free(log);
}

static void
test_filters(void **state)
{
    Fixture *f = *state;
    g_autoptr(EventLog) log = open_ok(f->log_dir, 0, 0);
    static const char *const vms[] = {"vm1", "vm2"};
    static const char *const kinds[] = {"request", "attempt", "outcome"};
    static const char *const devs[] = {"nic1", "disk1", NULL};
    const EventLogFilter all = {NULL, NULL, NULL};
    const EventLogFilter vm1 = {"vm1", NULL, NULL};
    const EventLogFilter nic1 = {NULL, "nic1", NULL};
    const EventLogFilter outcome = {NULL, NULL, "outcome"};
    const EventLogFilter vm2_disk_attempt = {"vm2", "disk1", "attempt"};
    const EventLogFilter none = {"vm3", NULL, NULL};
    g_autoptr(JsonObject) bad = json_object_new();
    struct {
        const EventLogFilter *f;
        guint n;
    } cases[] = {
        {NULL, 18}, {&all, 18}, {&vm1, 9}, {&nic1, 6}, {&outcome, 6}, {&vm2_disk_attempt, 1},
        {&none, 0},
    };

    for (guint v = 0; v < G_N_ELEMENTS(vms); v++)
        for (guint k = 0; k < G_N_ELEMENTS(kinds); k++)
            for (guint d = 0; d < G_N_ELEMENTS(devs); d++) {
                g_autoptr(JsonObject) rec = make_record(vms[v], kinds[k], devs[d], 1);

                append_ok(log, rec, NULL);
            }
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GPtrArray) recs = read_since(log, 0, 0, cases[i].f, NULL, NULL);

        if (recs->len != cases[i].n)
            fail_msg("filter case %u: %u records, expected %u", i, recs->len, cases[i].n);
        for (guint r = 0; r < recs->len; r++) {
            JsonObject *o = recs->pdata[r];

            if (cases[i].f && cases[i].f->vm)
                assert_string_equal(qmp_json_get_string(o, "vm"), cases[i].f->vm);
            if (cases[i].f && cases[i].f->device)
                assert_string_equal(qmp_json_get_string(o, "device"), cases[i].f->device);
            if (cases[i].f && cases[i].f->kind)
                assert_string_equal(qmp_json_get_string(o, "kind"), cases[i].f->kind);
        }
    }
    /* Wrong types or missing members never match (and never warn). */
    json_object_set_int_member(bad, "vm", 1);
    json_object_set_null_member(bad, "kind");
    assert_false(event_log_filter_match(&vm1, bad));
    assert_false(event_log_filter_match(&outcome, bad));
    assert_false(event_log_filter_match(&nic1, bad));
    assert_true(event_log_filter_match(&all, bad));
    assert_true(event_log_filter_match(NULL, bad));
}

static void
test_retention_gap(void **state)
{
    Fixture *f = *state;
    const guint64 max_bytes = 4096, seg_bytes = 1024;
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(GPtrArray) recs = NULL;
    guint64 first, gf = 0, gt = 0, size;
    EventLog *log = open_ok(f->log_dir, max_bytes, seg_bytes);
    g_autofree char *oldest = NULL;

    for (guint i = 1; i <= 300; i++) {
        assert_int_equal(append_op(log, i), i);
        size = event_log_size(log);
        /* retention runs on each roll; the newest fills up to one record past */
        assert_true(size <= max_bytes + seg_bytes + 200);
        assert_int_equal(size, dir_bytes(f->log_dir));
    }
    first = event_log_first_seq(log);
    assert_true(first > 200);
    assert_int_equal(event_log_last_seq(log), 300);
    names = segments(f->log_dir);
    assert_true(names->len >= 4 && names->len <= 6);
    oldest = g_strdup_printf("events-%020" G_GUINT64_FORMAT ".log", first);
    assert_string_equal(names->pdata[0], oldest);

    /* Asking for dropped records: told exactly which range is gone. */
    recs = read_since(log, 0, 0, NULL, &gf, &gt);
    assert_int_equal(gf, 1);
    assert_int_equal(gt, first - 1);
    assert_seqs(recs, first, 300 - first + 1);
    g_clear_pointer(&recs, g_ptr_array_unref);

    recs = read_since(log, 10, 0, NULL, &gf, &gt);
    assert_int_equal(gf, 11);
    assert_int_equal(gt, first - 1);
    assert_seqs(recs, first, 300 - first + 1);
    g_clear_pointer(&recs, g_ptr_array_unref);

    recs = read_since(log, first - 2, 0, NULL, &gf, &gt);
    assert_int_equal(gf, first - 1);
    assert_int_equal(gt, first - 1);
    assert_seqs(recs, first, 300 - first + 1);
    g_clear_pointer(&recs, g_ptr_array_unref);

    /* Nothing dropped after since: no gap. */
    recs = read_since(log, first - 1, 0, NULL, &gf, &gt);
    assert_int_equal(gf, 0);
    assert_int_equal(gt, 0);
    assert_seqs(recs, first, 300 - first + 1);
    g_clear_pointer(&recs, g_ptr_array_unref);

    recs = read_since(log, first + 5, 0, NULL, &gf, &gt);
    assert_int_equal(gf, 0);
    assert_int_equal(gt, 0);
    assert_seqs(recs, first + 6, 300 - first - 5);
    g_clear_pointer(&recs, g_ptr_array_unref);

    size = event_log_size(log);
    event_log_free(log);

    /* The same after a restart. */
    log = open_ok(f->log_dir, max_bytes, seg_bytes);
    assert_int_equal(event_log_first_seq(log), first);
    assert_int_equal(event_log_last_seq(log), 300);
    assert_int_equal(event_log_size(log), size);
    recs = read_since(log, 0, 0, NULL, &gf, &gt);
    assert_int_equal(gf, 1);
    assert_int_equal(gt, first - 1);
    assert_seqs(recs, first, 300 - first + 1);
    event_log_free(log);

    /* A smaller max_bytes on open applies at once, the newest always stays. */
    log = open_ok(f->log_dir, 1, seg_bytes);
    g_clear_pointer(&names, g_ptr_array_unref);
    names = segments(f->log_dir);
    assert_int_equal(names->len, 1);
    assert_int_equal(event_log_last_seq(log), 300);
    assert_true(event_log_first_seq(log) > first);
    assert_int_equal(append_op(log, 301), 301);
    event_log_free(log);
}

static void
test_torn_record(void **state)
{
    Fixture *f = *state;
    g_autoptr(GPtrArray) recs = NULL;
    g_autofree char *seg = NULL;
    guint64 good;
    EventLog *log = open_ok(f->log_dir, 0, 0);

    for (guint i = 1; i <= 10; i++)
        append_op(log, i);
    event_log_free(log);
    seg = newest_segment(f->log_dir);
    good = file_size(seg);

    /* A crash in the middle of writing record 11: half a line. */
    append_bytes(seg, "{\"seq\":11,\"time\":\"2026-11-22T01:2");
    log = open_ok(f->log_dir, 0, 0);
    assert_int_equal(file_size(seg), good);
    assert_int_equal(event_log_last_seq(log), 10);
    assert_int_equal(append_op(log, 11), 11);
    event_log_free(log);
    good = file_size(seg);

    /* A whole line that is not valid JSON (the seq prefix looks right). */
    append_bytes(seg, "{\"seq\":12,\"time\":\"2026-11-22T01:23:45.123456Z\",\"vm\":\x01}\n");
    log = open_ok(f->log_dir, 0, 0);
    assert_int_equal(file_size(seg), good);
    assert_int_equal(event_log_last_seq(log), 11);
    event_log_free(log);

    /* Several lines of junk (a crash with blocks not written), a torn end. */
    append_bytes(seg, "\n\n{\"seq\":12,\"time\":\"x\"}garbage\nnot json\n{\"seq\":12,");
    log = open_ok(f->log_dir, 0, 0);
    assert_int_equal(file_size(seg), good);
    assert_int_equal(event_log_last_seq(log), 11);
    assert_int_equal(append_op(log, 12), 12);
    recs = read_since(log, 0, 0, NULL, NULL, NULL);
    assert_seqs(recs, 1, 12);
    for (guint i = 0; i < 12; i++)
        assert_int_equal(qmp_json_get_int_default(recs->pdata[i], "op", 0), i + 1);
    event_log_free(log);
}

/* The newest segment holds only part of its first record. */
static void
test_torn_first_record_of_segment(void **state)
{
    Fixture *f = *state;
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(GPtrArray) recs = NULL;
    g_autofree char *seg = NULL;
    guint64 newest_first;
    EventLog *log = open_ok(f->log_dir, 0, 600);

    for (guint i = 1; i <= 20; i++)
        append_op(log, i);
    event_log_free(log);
    names = segments(f->log_dir);
    seg = newest_segment(f->log_dir);
    newest_first = g_ascii_strtoull(strrchr(seg, '-') + 1, NULL, 10);
    assert_true(newest_first > 1 && newest_first <= 20);
    assert_int_equal(truncate(seg, 0), 0);
    append_bytes(seg, "{\"seq\":");
    {
        /* a crash tears only a record no flush covered: the last flush
         * was before it */
        g_autofree char *mark = g_build_filename(f->log_dir, "seq.flushed", NULL);
        g_autofree char *text = g_strdup_printf("%020" G_GUINT64_FORMAT "\n", newest_first - 1);
        assert_true(g_file_set_contents(mark, text, -1, NULL));
    }

    log = open_ok(f->log_dir, 0, 600);
    assert_int_equal(file_size(seg), 0);
    assert_int_equal(event_log_last_seq(log), newest_first - 1);
    assert_int_equal(append_op(log, 100), newest_first);
    recs = read_since(log, 0, 0, NULL, NULL, NULL);
    assert_seqs(recs, 1, newest_first);
    event_log_free(log);
}

/* Records that were flushed and then vanish from the segments (a segment
 * emptied or cut by hand): their seq is never given again. */
static void
test_seq_never_reused(void **state)
{
    Fixture *f = *state;
    g_autofree char *seg = NULL;
    guint64 last;
    EventLog *log = open_ok(f->log_dir, 0, 0);

    for (guint i = 1; i <= 3; i++)
        append_op(log, i);
    assert_true(event_log_flush(log, NULL));
    event_log_free(log);
    /* the newest (only) segment emptied */
    seg = newest_segment(f->log_dir);
    assert_int_equal(truncate(seg, 0), 0);
    log = open_ok(f->log_dir, 0, 0);
    assert_true(event_log_last_seq(log) >= 3);
    last = append_op(log, 4);
    assert_true(last > 3);
    for (guint i = 5; i <= 10; i++)
        append_op(log, i);
    last = event_log_last_seq(log);
    event_log_free(log);
    /* the newest segment cut in the middle of its records */
    g_clear_pointer(&seg, g_free);
    seg = newest_segment(f->log_dir);
    assert_int_equal(truncate(seg, (off_t)(file_size(seg) / 2)), 0);
    log = open_ok(f->log_dir, 0, 0);
    assert_true(event_log_last_seq(log) >= last);
    assert_true(append_op(log, 11) > last);
    last = event_log_last_seq(log);
    event_log_free(log);
    /* intact: exact, no skip */
    log = open_ok(f->log_dir, 0, 0);
    assert_int_equal(event_log_last_seq(log), last);
    assert_int_equal(append_op(log, 12), last + 1);
    event_log_free(log);
}

/* Appended, then kill -9 before any flush or free: still there. */
static void
test_killed_before_flush(void **state)
{
    Fixture *f = *state;
    g_autoptr(GPtrArray) recs = NULL;
    EventLog *log;
    int status = 0;
    pid_t pid;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_log = event_log_open(f->log_dir, NULL, NULL);
        if (!child_log)
            _exit(2);
        for (guint i = 1; i <= 3; i++) {
            g_autoptr(JsonObject) rec = make_record("vm9", "outcome", "nic9", i);

            if (event_log_append(child_log, rec, NULL, NULL) != i)
                _exit(3);
        }
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("child did not die of SIGKILL (status 0x%x)", status);

    log = open_ok(f->log_dir, 0, 0);
    assert_int_equal(event_log_last_seq(log), 3);
    recs = read_since(log, 0, 0, NULL, NULL, NULL);
    assert_seqs(recs, 1, 3);
    assert_string_equal(qmp_json_get_string(recs->pdata[2], "vm"), "vm9");
    assert_int_equal(append_op(log, 4), 4);
    event_log_free(log);
}

/* Children append a random number of records and die of SIGKILL; the
 * newest segment is then cut at a random byte of its last record (a kill in
 * the middle of a write).  seq stays gapless and unrepeated. */
static void
test_kill_at_random_moments(void **state)
{
    Fixture *f = *state;
    g_autoptr(GRand) rand = g_rand_new_with_seed(5);
    g_autoptr(GPtrArray) recs = NULL;
    guint64 expect_last = 0;
    EventLog *log;

    for (guint round = 0; round < 30; round++) {
        guint n = (guint)g_rand_int_range(rand, 0, 40);
        gboolean cut = g_rand_boolean(rand);
        int status = 0;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
            EventLogOptions opts = {8192, 700};

            child_log = event_log_open(f->log_dir, &opts, NULL);
            if (!child_log)
                _exit(2);
            for (guint i = 0; i < n; i++) {
                g_autoptr(JsonObject) rec = make_record("vm1", "attempt", "nic1", round);

                if (event_log_append(child_log, rec, NULL, NULL) == 0)
                    _exit(3);
                if (i % 7 == 0 && !event_log_flush(child_log, NULL))
                    _exit(4);
            }
            kill(getpid(), SIGKILL);
            _exit(5);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status))
            fail_msg("round %u: child exited with %d", round, WEXITSTATUS(status));
        expect_last += n;
        /* a crash tears only what no flush covered (a flushed record that
         * is cut is test_seq_never_reused's case) */
        if (cut && n > 0 && (n - 1) % 7 != 0) {
            g_autofree char *seg = newest_segment(f->log_dir);
            g_autofree char *content = NULL;
            gsize len = 0;
            const char *last_line;

            assert_true(g_file_get_contents(seg, &content, &len, NULL));
            if (len > 0) {
                content[len - 1] = '\0';
                last_line = strrchr(content, '\n');
                last_line = last_line ? last_line + 1 : content;
                /* keep 0 .. len-1 bytes of the last record */
                assert_int_equal(
                    truncate(seg, (off_t)((gsize)(last_line - content) +
                                          (gsize)g_rand_int_range(
                                              rand, 0, (gint32)(content + len - last_line)))),
                    0);
                expect_last--;
            }
        }
        log = open_ok(f->log_dir, 8192, 700);
        if (event_log_last_seq(log) != expect_last)
            fail_msg("round %u: last seq %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, round,
                     event_log_last_seq(log), expect_last);
        recs = read_since(log, 0, 0, NULL, NULL, NULL);
        if (recs->len > 0)
            assert_seqs(recs, event_log_first_seq(log),
                        (guint)(expect_last - event_log_first_seq(log) + 1));
        g_clear_pointer(&recs, g_ptr_array_unref);
        event_log_free(log);
    }
    assert_true(expect_last > 100);
}

static gsize
heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
}

typedef struct {
    guint64 next;
    guint n;
    gsize heap0;
    gsize heap_max;
} Scan;

static gboolean
scan_cb(JsonObject *record, gpointer opaque)
{
    Scan *s = opaque;
    gsize h = heap_in_use();

    if (rec_seq(record) != s->next)
        fail_msg("read seq %" G_GUINT64_FORMAT ", expected %" G_GUINT64_FORMAT, rec_seq(record),
                 s->next);
    s->next++;
    s->n++;
    if (h > s->heap_max)
        s->heap_max = h;
    return TRUE;
}

/* 100k records: append throughput (flush every 100), reading since a point
 * picks the segment by name, memory stays bounded. */
static void
test_many_records(void **state)
{
    Fixture *f = *state;
    g_autoptr(EventLog) log = open_ok(f->log_dir, 0, 0);
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) names = NULL;
    g_autofree char *oldest = NULL;
    const guint N = 100000;
    gint64 t0, t1;
    Scan s;

    t0 = g_get_monotonic_time();
    for (guint i = 1; i <= N; i++) {
        g_autoptr(JsonObject) rec = make_record("vm1", "outcome", "nic1", i);

        json_object_set_string_member(rec, "action", "unplug");
        json_object_set_string_member(rec, "outcome", "deleted");
        json_object_set_int_member(rec, "attempt", 1);
        json_object_set_int_member(rec, "elapsed_ms", 53);
        if (event_log_append(log, rec, NULL, &err) != i)
            fail_msg("append %u: %s", i, err ? err->message : "wrong seq");
        if (i % 100 == 0)
            assert_true(event_log_flush(log, &err));
    }
    t1 = g_get_monotonic_time();
    print_message(
        "appended %u records in %.2f s: %.0f records/s (flush every 100), %" G_GUINT64_FORMAT
        " bytes\n",
        N, (t1 - t0) / 1e6, N / ((t1 - t0) / 1e6), event_log_size(log));
    names = segments(f->log_dir);
    assert_true(names->len >= 3);
    assert_int_equal(event_log_first_seq(log), 1);

    /* Half of it (> 8 MiB), with memory bounded. */
    assert_true(event_log_size(log) > 16 * 1024 * 1024);
    s = (Scan){N / 2 + 1, 0, heap_in_use(), 0};
    t0 = g_get_monotonic_time();
    assert_true(event_log_read_since(log, N / 2, scan_cb, &s, NULL, NULL, &err));
    t1 = g_get_monotonic_time();
    assert_int_equal(s.n, N / 2);
    print_message("read %u records since %u in %.2f s; heap grew at most %zu bytes\n", N / 2, N / 2,
                  (t1 - t0) / 1e6, s.heap_max > s.heap0 ? s.heap_max - s.heap0 : 0);
    assert_true(s.heap_max < s.heap0 + 1024 * 1024);

    /* Replace the oldest segment with a directory: reading it fails, so a
     * read since a late seq proves it never opens that segment. */
    oldest = g_build_filename(f->log_dir, names->pdata[0], NULL);
    assert_int_equal(unlink(oldest), 0);
    assert_int_equal(mkdir(oldest, 0700), 0);
    s = (Scan){N - 9, 0, heap_in_use(), 0};
    t0 = g_get_monotonic_time();
    assert_true(event_log_read_since(log, N - 10, scan_cb, &s, NULL, NULL, &err));
    t1 = g_get_monotonic_time();
    assert_int_equal(s.n, 10);
    print_message("read the last 10 of %u records in %.3f s\n", N, (t1 - t0) / 1e6);
    s = (Scan){1, 0, heap_in_use(), 0};
    assert_false(event_log_read_since(log, 0, scan_cb, &s, NULL, NULL, &err));
    assert_non_null(err);
    assert_true(g_error_matches(err, EVENT_LOG_ERROR, EVENT_LOG_ERROR_IO));
    assert_int_equal(rmdir(oldest), 0);
}

/* The child of test_unwritable_dir: 0 when opening a read-only directory
 * fails as it should. */
static int
unwritable_child(const char *dir)
{
    g_autofree char *ro = g_build_filename(dir, "read-only", NULL);
    g_autoptr(GError) e = NULL;
    g_autoptr(EventLog) log = NULL;

    if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
        return 2;
    log = event_log_open(ro, NULL, &e);
    if (log)
        return 3;
    if (!g_error_matches(e, EVENT_LOG_ERROR, EVENT_LOG_ERROR_IO) ||
        !strstr(e->message, "Permission denied") || !strstr(e->message, ro))
        return 4;
    return 0;
}

static void
test_unwritable_dir(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autofree char *file = NULL;
    g_autofree char *under_file = NULL;
    g_autofree char *ro = g_build_filename(f->dir, "read-only", NULL);
    EventLog *log;
    int status = 0;
    pid_t pid;

    /* A directory we may not write to (as nobody when we are root). */
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(mkdir(ro, 0555), 0);
    g_clear_pointer(&ro, g_free); /* the child must not inherit allocations */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(unwritable_child(f->dir));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child failed at check %d", WEXITSTATUS(status));

    /* A path under a plain file. */
    file = g_build_filename(f->dir, "plain-file", NULL);
    under_file = g_build_filename(file, "log", NULL);
    assert_true(g_file_set_contents(file, "x", 1, NULL));
    log = event_log_open(under_file, NULL, &err);
    assert_null(log);
    assert_true(g_error_matches(err, EVENT_LOG_ERROR, EVENT_LOG_ERROR_IO));
    assert_non_null(strstr(err->message, under_file));
}

/* The child of test_write_error: 0 when all went as expected. */
static int
write_error_child(const char *dir)
{
    g_autoptr(EventLog) log = NULL;
    g_autofree char *seg = NULL;
    g_autoptr(GError) e = NULL;
    struct rlimit rl;
    guint64 good;

    signal(SIGXFSZ, SIG_IGN);
    log = event_log_open(dir, NULL, NULL);
    if (!log)
        return 2;
    for (guint i = 1; i <= 5; i++) {
        g_autoptr(JsonObject) rec = make_record("vm1", "attempt", "nic1", i);

        if (event_log_append(log, rec, NULL, NULL) != i)
            return 3;
    }
    seg = newest_segment(dir);
    good = file_size(seg);
    /* room for a part of the next record only */
    if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 4;
    rl.rlim_cur = good + 20;
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 5;
    for (guint i = 0; i < 3; i++) {
        g_autoptr(JsonObject) rec = make_record("vm1", "attempt", "nic1", 6);

        if (event_log_append(log, rec, NULL, &e) != 0)
            return 6;
        if (!g_error_matches(e, EVENT_LOG_ERROR, EVENT_LOG_ERROR_IO) ||
            !strstr(e->message, "File too large"))
            return 7;
        g_clear_error(&e);
        if (file_size(seg) != good || event_log_last_seq(log) != 5 || event_log_size(log) != good)
            return 8;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        return 9;
    {
        g_autoptr(JsonObject) rec = make_record("vm1", "attempt", "nic1", 6);

        if (event_log_append(log, rec, NULL, NULL) != 6)
            return 10;
    }
    if (!event_log_flush(log, NULL))
        return 11;
    return 0;
}

/* A write that fails part-way (EFBIG through RLIMIT_FSIZE, like ENOSPC)
 * leaves no partial record, and the log goes on once there is room. */
static void
test_write_error(void **state)
{
    Fixture *f = *state;
    g_autoptr(GPtrArray) recs = NULL;
    EventLog *log;
    int status = 0;
    pid_t pid;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(write_error_child(f->log_dir));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child failed at check %d", WEXITSTATUS(status));

    log = open_ok(f->log_dir, 0, 0);
    recs = read_since(log, 0, 0, NULL, NULL, NULL);
    assert_seqs(recs, 1, 6);
    for (guint i = 0; i < 6; i++)
        assert_int_equal(qmp_json_get_int_default(recs->pdata[i], "op", 0), i + 1);
    event_log_free(log);
}

/* seq is never reused even when segments are removed by hand. */
static void
test_hwm(void **state)
{
    Fixture *f = *state;
    g_autoptr(GPtrArray) names = NULL;
    g_autoptr(GPtrArray) recs = NULL;
    g_autofree char *hwm = g_build_filename(f->log_dir, "seq.hwm", NULL);
    g_autofree char *hwm_tmp = g_build_filename(f->log_dir, "seq.hwm.tmp", NULL);
    g_autofree char *newest = NULL;
    guint64 last, seq, gf = 0, gt = 0;
    EventLog *log = open_ok(f->log_dir, 0, 512);

    for (guint i = 1; i <= 50; i++)
        append_op(log, i);
    event_log_free(log);
    assert_true(g_file_test(hwm, G_FILE_TEST_IS_REGULAR));

    /* Without seq.hwm (and with a stale tmp), intact segments: exact. */
    assert_int_equal(unlink(hwm), 0);
    assert_true(g_file_set_contents(hwm_tmp, "999999 1\n", -1, NULL));
    log = open_ok(f->log_dir, 0, 512);
    assert_false(g_file_test(hwm_tmp, G_FILE_TEST_EXISTS));
    assert_int_equal(event_log_last_seq(log), 50);
    assert_int_equal(append_op(log, 51), 51);
    event_log_free(log);

    /* Every segment removed: seq continues after the reservation. */
    names = segments(f->log_dir);
    for (guint i = 0; i < names->len; i++) {
        g_autofree char *p = g_build_filename(f->log_dir, names->pdata[i], NULL);

        assert_int_equal(unlink(p), 0);
    }
    log = open_ok(f->log_dir, 0, 512);
    last = event_log_last_seq(log);
    assert_true(last >= 51);
    assert_int_equal(event_log_first_seq(log), 0);
    recs = read_since(log, 10, 0, NULL, &gf, &gt);
    assert_int_equal(recs->len, 0);
    assert_int_equal(gf, 11);
    assert_int_equal(gt, last);
    g_clear_pointer(&recs, g_ptr_array_unref);
    seq = append_op(log, 52);
    assert_int_equal(seq, last + 1);
    assert_int_equal(event_log_first_seq(log), seq);
    event_log_free(log);

    /* Intact again: continues exactly, no further skip. */
    log = open_ok(f->log_dir, 0, 512);
    assert_int_equal(event_log_last_seq(log), seq);
    for (guint i = 0; i < 30; i++)
        assert_int_equal(append_op(log, 53 + i), seq + 1 + i);
    last = event_log_last_seq(log);
    event_log_free(log);

    /* Only the newest segment removed: no seq of it is given again. */
    newest = newest_segment(f->log_dir);
    assert_int_equal(unlink(newest), 0);
    log = open_ok(f->log_dir, 0, 512);
    assert_true(event_log_last_seq(log) >= last);
    seq = append_op(log, 100);
    assert_true(seq > last);
    event_log_free(log);

    /* A garbled seq.hwm is ignored (segments intact: exact). */
    assert_true(g_file_set_contents(hwm, "garbage", -1, NULL));
    log = open_ok(f->log_dir, 0, 512);
    assert_int_equal(event_log_last_seq(log), seq);
    assert_int_equal(append_op(log, 101), seq + 1);
    event_log_free(log);
}

/* A record appended as members text (event_log_append_members, what the
 * daemon writes) is stored exactly like the same record appended as an
 * object, and the text it gives back is that stored line. */
static void
test_append_members(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(EventLog) log = event_log_open(f->log_dir, NULL, &err);
    g_autoptr(JsonObject) rec = make_record("vm \"1\"", "outcome", "nic1", 9);
    g_autoptr(JsonObject) detail = json_object_new();
    g_autoptr(GString) members = g_string_new(NULL);
    g_autoptr(GPtrArray) recs = NULL;
    g_autofree char *text = NULL;
    g_autofree char *s1 = NULL;
    g_autofree char *s2 = NULL;
    g_autofree char *expect = NULL;
    const char *comma;

    assert_non_null(log);
    json_object_set_string_member(detail, "text", "\u00e9\n");
    json_object_set_object_member(rec, "detail", json_object_ref(detail));
    qmp_json_write_members(members, rec, TRUE, NULL);
    assert_int_equal(append_ok(log, rec, NULL), 1);
    assert_int_equal(event_log_append_members(log, members->str, members->len, &text, &err), 2);
    assert_null(err);
    assert_true(g_str_has_prefix(text, "{\"seq\":2,\"time\":\""));
    comma = strchr(text + 20, ',');
    assert_non_null(comma);
    expect = g_strconcat(members->str, "}", NULL);
    assert_string_equal(comma, expect);
    recs = read_since(log, 0, 0, NULL, NULL, NULL);
    assert_int_equal(recs->len, 2);
    json_object_remove_member(recs->pdata[0], "seq");
    json_object_remove_member(recs->pdata[0], "time");
    json_object_remove_member(recs->pdata[1], "seq");
    json_object_remove_member(recs->pdata[1], "time");
    s1 = to_string(recs->pdata[0]);
    s2 = to_string(recs->pdata[1]);
    assert_string_equal(s1, s2);
    /* no members: seq and time only */
    assert_int_equal(event_log_append_members(log, "", 0, NULL, &err), 3);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_append_read_back),
        T(test_append_members),
        T(test_seq_and_time),
        T(test_reopen_continues),
        T(test_read_since_middle),
        T(test_read_since_index),
        T(test_filters),
        T(test_retention_gap),
        T(test_torn_record),
        T(test_torn_first_record_of_segment),
        T(test_killed_before_flush),
        T(test_kill_at_random_moments),
        T(test_many_records),
        T(test_unwritable_dir),
        T(test_write_error),
        T(test_hwm),
        T(test_seq_never_reused),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
