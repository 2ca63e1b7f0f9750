/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-sync: what one group-commit flush costs hotplugd when it syncs one
 * file and when it syncs two, through the daemon's own Syncer (a thread
 * per lane, the lanes side by side, done told to the loop through its
 * pipe), on the filesystem of DIR.
 *
 *   bench-sync DIR [--flushes N] [--rounds R]
 *
 * Each flush appends a 200-byte line to log (and, for "two", a 60-byte
 * line to journal: a journal removal), hands the batch to the syncer and
 * waits in the loop until its done callback ran: the time from the submit
 * to the callback.  Rounds alternate "one" and "two" (the order flips
 * every round) so drift hits both; prints the median and p99 of each and
 * two ÷ one.  What it stands for: hotplugd syncs the journal in a flush
 * only when a change that must be durable was written (hotplugd(8),
 * DURABILITY); the outcome of an add removes the op from the journal, and
 * that removal alone no longer makes its flush sync a second file. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib.h>

#include "bench-stats.h"
#include "syncer.h"

typedef struct {
    struct event_base *base;
    gboolean done;
    gboolean failed;
} BenchSync;

static void
bench_sync_done_cb(SyncBatch *b, const GError *error, gpointer opaque)
{
    BenchSync *bs = opaque;

    if (error) {
        g_printerr("bench-sync: %s\n", error->message);
        bs->failed = TRUE;
    }
    bs->done = TRUE;
    event_base_loopbreak(bs->base);
}

static gboolean
bench_sync_append(int fd, guint64 *off, gsize len)
{
    char line[256];

    memset(line, 'x', len - 1);
    line[len - 1] = '\n';
    if (pwrite(fd, line, len, (off_t)*off) != (ssize_t)len) {
        perror("bench-sync: pwrite");
        return FALSE;
    }
    *off += len;
    return TRUE;
}

/* One flush: the appends, the batch, the wait (or, with no syncer, the
 * batch run in this thread); its time in µs, < 0 on error. */
static double
bench_sync_flush(BenchSync *bs, Syncer *s, int log_fd, guint64 *log_off, int j_fd,
                 guint64 *j_off, gboolean two)
{
    g_autoptr(GError) error = NULL;
    SyncBatch *b = sync_batch_new();
    gint64 t0;

    if (!bench_sync_append(log_fd, log_off, 200) ||
        (two && !bench_sync_append(j_fd, j_off, 60))) {
        sync_batch_free(b);
        return -1;
    }
    t0 = g_get_monotonic_time();
    if (!sync_batch_add_sync(b, log_fd, FALSE, "log", &error)) {
        g_printerr("bench-sync: %s\n", error->message);
        sync_batch_free(b);
        return -1;
    }
    if (two) {
        sync_batch_set_lane(b, 1);
        if (!sync_batch_add_sync(b, j_fd, FALSE, "journal", &error)) {
            g_printerr("bench-sync: %s\n", error->message);
            sync_batch_free(b);
            return -1;
        }
    }
    if (!s) {
        gboolean ok = sync_batch_run(b, &error);

        sync_batch_free(b);
        if (!ok) {
            g_printerr("bench-sync: %s\n", error->message);
            return -1;
        }
        return (double)(g_get_monotonic_time() - t0);
    }
    bs->done = FALSE;
    syncer_submit(s, b);
    while (!bs->done)
        event_base_loop(bs->base, EVLOOP_ONCE);
    return bs->failed ? -1 : (double)(g_get_monotonic_time() - t0);
}

int
main(int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *log_path = NULL, *j_path = NULL;
    BenchSamples one, two, inl;
    guint64 log_off = 0, j_off = 0;
    int flushes = 2000, rounds = 10, log_fd, j_fd;
    BenchSync bs = {0};
    Syncer *s;
    const char *dir;

    if (argc < 2 || argv[1][0] == '-') {
        g_printerr("usage: bench-sync DIR [--flushes N] [--rounds R]\n");
        return 2;
    }
    dir = argv[1];
    for (int i = 2; i < argc; i++) {
        if (i + 1 < argc && g_str_equal(argv[i], "--flushes"))
            flushes = atoi(argv[++i]);
        else if (i + 1 < argc && g_str_equal(argv[i], "--rounds"))
            rounds = atoi(argv[++i]);
        else {
            g_printerr("bench-sync: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (flushes < 2 || rounds < 1) {
        g_printerr("bench-sync: --flushes wants 2 or more, --rounds 1 or more\n");
        return 2;
    }
    log_path = g_build_filename(dir, "bench-sync.log", NULL);
    j_path = g_build_filename(dir, "bench-sync.journal", NULL);
    log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    j_fd = open(j_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0 || j_fd < 0) {
        g_printerr("bench-sync: cannot create files in %s: %s\n", dir, g_strerror(errno));
        return 1;
    }
    bench_samples_init(&one, "one_file");
    bench_samples_init(&two, "two_files");
    bench_samples_init(&inl, "one_file_inline");
    bs.base = event_base_new();
    if (!(s = syncer_new(bs.base, bench_sync_done_cb, &bs, &error))) {
        g_printerr("bench-sync: %s\n", error->message);
        return 1;
    }
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 3; k++) {
            /* one, two, inline; the order turns every round */
            int which = (k + r) % 3;
            int n = flushes / 2 / rounds > 0 ? flushes / 2 / rounds : 1;
            BenchSamples *to = which == 0 ? &one : which == 1 ? &two : &inl;

            for (int i = 0; i < n; i++) {
                double us = bench_sync_flush(&bs, which == 2 ? NULL : s, log_fd, &log_off, j_fd,
                                             &j_off, which == 1);
                if (us < 0)
                    return 1;
                bench_samples_add(to, us);
            }
        }
    }
    syncer_free(s);
    event_base_free(bs.base);
    close(log_fd);
    close(j_fd);
    unlink(log_path);
    unlink(j_path);
    bench_samples_report(&inl, "sync", stdout);
    bench_samples_report(&one, "sync", stdout);
    bench_samples_report(&two, "sync", stdout);
    printf("two files / one file: median %.2f x, p99 %.2f x\n",
           bench_samples_percentile(&two, 50) / bench_samples_percentile(&one, 50),
           bench_samples_percentile(&two, 99) / bench_samples_percentile(&one, 99));
    printf("one file through the syncer / in the loop's thread: median %.2f x, p99 %.2f x\n",
           bench_samples_percentile(&one, 50) / bench_samples_percentile(&inl, 50),
           bench_samples_percentile(&one, 99) / bench_samples_percentile(&inl, 99));
    bench_samples_clear(&one);
    bench_samples_clear(&two);
    bench_samples_clear(&inl);
    return 0;
}
