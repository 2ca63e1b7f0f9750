/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-journal: what a journal compaction costs the event loop, with the
 * compaction inside journal_put/journal_remove (inline: serialize, write,
 * fdatasync, rename, fsync the directory) or deferred to the flush
 * (hotplugd: the loop gathers the cached lines, a sync thread writes,
 * syncs and renames).
 *
 *   bench-journal DIR [--open N] [--steps S] [--mode inline|deferred]
 *
 * Keeps N operations open (default 1242) and replaces one per step (a put
 * and a remove), flushing every 50 steps as a busy daemon would; a step
 * during which a compaction started is timed in the loop's thread (wall
 * and CPU).  The batch itself runs outside the timed part. */
#include "config.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "journal.h"
#include "syncer.h"

static JsonObject *
bench_journal_record(guint64 op)
{
    JsonObject *r = json_object_new();

    json_object_set_int_member(r, "op", (gint64)op);
    json_object_set_string_member(r, "vm", "vm123");
    json_object_set_string_member(r, "device", "d12345");
    json_object_set_string_member(r, "device_kind", "device");
    json_object_set_string_member(r, "action", "unplug");
    json_object_set_string_member(r, "state", "waiting");
    json_object_set_int_member(r, "attempts", 1);
    json_object_set_int_member(r, "max_attempts", 1);
    json_object_set_int_member(r, "timeout_ms", 500);
    json_object_set_int_member(r, "retry_interval_ms", 1000);
    json_object_set_int_member(r, "start_wall_us", 1733450000000000);
    json_object_set_int_member(r, "deadline_wall_us", 1733450000500000);
    json_object_set_int_member(r, "log_seq", 123456);
    return r;
}

static double
bench_journal_cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int
main(int argc, char **argv)
{
    guint n_open = 1242, steps = 20000;
    gboolean deferred = TRUE;
    g_autofree char *path = NULL, *tmp = NULL;
    g_autoptr(GError) error = NULL;
    Journal *j;
    guint64 op = 1;
    guint n_compact = 0;
    double wall = 0, cpu = 0, wall_max = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: bench-journal DIR [--open N] [--steps S] [--mode inline|deferred]\n");
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (g_str_equal(argv[i], "--open"))
            n_open = (guint)atoi(argv[i + 1]);
        else if (g_str_equal(argv[i], "--steps"))
            steps = (guint)atoi(argv[i + 1]);
        else if (g_str_equal(argv[i], "--mode"))
            deferred = g_str_equal(argv[i + 1], "deferred");
    }
    path = g_build_filename(argv[1], "journal", NULL);
    tmp = g_strconcat(path, ".tmp", NULL);
    if (!(j = journal_open(path, &error))) {
        fprintf(stderr, "bench-journal: %s\n", error->message);
        return 1;
    }
    journal_set_deferred_compaction(j, deferred);
    for (; op <= n_open; op++) {
        g_autoptr(JsonObject) r = bench_journal_record(op);
        journal_put(j, op, r, NULL);
    }
    journal_flush(j, NULL);
    for (guint s = 0; s < steps; s++, op++) {
        g_autoptr(JsonObject) r = bench_journal_record(op);
        g_autoptr(SyncBatch) b = NULL;
        struct stat st0, st1;
        gboolean compacted;
        double c0, w0, w;

        stat(path, &st0);
        c0 = bench_journal_cpu_us();
        w0 = (double)g_get_monotonic_time();
        journal_put(j, op, r, NULL);
        journal_remove(j, op - n_open, NULL);
        if (deferred && s % 50 == 0) {
            b = sync_batch_new();
            journal_sync_prepare(j, b, TRUE, NULL);
        }
        w = (double)g_get_monotonic_time() - w0;
        c0 = bench_journal_cpu_us() - c0;
        stat(path, &st1);
        /* inline: the file was replaced; deferred: the new one waits for its batch */
        compacted = st1.st_ino != st0.st_ino || g_file_test(tmp, G_FILE_TEST_EXISTS);
        if (compacted) {
            n_compact++;
            wall += w;
            cpu += c0;
            wall_max = MAX(wall_max, w);
        }
        if (b) {
            gboolean ok = sync_batch_run(b, NULL);
            journal_sync_done(j, b, ok);
        }
        if (!deferred && s % 50 == 0)
            journal_flush(j, NULL);
    }
    printf("RESULT journal mode=%s open=%u steps=%u compactions=%u loop_wall_us=%.0f loop_cpu_us=%.0f "
           "loop_wall_max_us=%.0f\n",
           deferred ? "deferred" : "inline", n_open, steps, n_compact,
           n_compact ? wall / n_compact : 0, n_compact ? cpu / n_compact : 0, wall_max);
    journal_free(j);
    return 0;
}
