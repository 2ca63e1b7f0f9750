/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-fdatasync: what one fdatasync of a 200-byte record costs on the
 * filesystem of DIR, by how the record reaches the file.
 *
 *   bench-fdatasync DIR [--records N] [--rounds R]
 *
 *   append      pwrite past the end, as hotplugd's event log and journal
 *               write (the file grows: the sync writes its size too)
 *   prezeroed   pwrite over a file written with zeros and synced first
 *               (the size does not change)
 *   fallocated  pwrite inside fallocate(0)'d space (the size does not
 *               change; the extent turns from unwritten to written)
 *   keep-size   pwrite past the end into fallocate(KEEP_SIZE)'d space
 *
 * Each record is one pwrite then one fdatasync, timed around the
 * fdatasync, in this thread.  Rounds alternate the four (the order turns
 * every round) so drift hits all alike; prints the median and p99 of each
 * and each ÷ append.  A measuring aid for the log's format: a file of
 * fixed size would take the size change off every sync, at the price of
 * a zero tail that every reader would have to skip. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "bench-stats.h"

#define BENCH_FDATASYNC_RECORD 200

typedef enum {
    BENCH_FDATASYNC_APPEND,
    BENCH_FDATASYNC_PREZEROED,
    BENCH_FDATASYNC_FALLOCATED,
    BENCH_FDATASYNC_KEEP_SIZE,
    BENCH_FDATASYNC_N_MODES,
} BenchFdatasyncMode;

static const char *const bench_fdatasync_names[] = {"append", "prezeroed", "fallocated",
                                                   "keep-size"};

/* A fresh file for n records, made ready the mode's way; -1 on error. */
static int
bench_fdatasync_open(const char *path, BenchFdatasyncMode mode, int n)
{
    off_t size = (off_t)n * BENCH_FDATASYNC_RECORD;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int r = 0;

    if (fd < 0)
        return -1;
    if (mode == BENCH_FDATASYNC_PREZEROED) {
        static const char zeros[65536];

        for (off_t off = 0; off < size && r == 0; off += (off_t)sizeof zeros)
            r = pwrite(fd, zeros, sizeof zeros, off) == (ssize_t)sizeof zeros ? 0 : -1;
    } else if (mode == BENCH_FDATASYNC_FALLOCATED) {
        r = fallocate(fd, 0, 0, size);
    } else if (mode == BENCH_FDATASYNC_KEEP_SIZE) {
        r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size);
    }
    if (r < 0 || fsync(fd) < 0) {
        int errsv = errno;
        close(fd);
        errno = errsv;
        return -1;
    }
    return fd;
}

int
main(int argc, char **argv)
{
    g_autofree char *path = NULL;
    BenchSamples s[BENCH_FDATASYNC_N_MODES];
    char line[BENCH_FDATASYNC_RECORD];
    int records = 2000, rounds = 10, per;
    const char *dir;

    if (argc < 2 || argv[1][0] == '-') {
        g_printerr("usage: bench-fdatasync DIR [--records N] [--rounds R]\n");
        return 2;
    }
    dir = argv[1];
    for (int i = 2; i < argc; i++) {
        if (i + 1 < argc && g_str_equal(argv[i], "--records"))
            records = atoi(argv[++i]);
        else if (i + 1 < argc && g_str_equal(argv[i], "--rounds"))
            rounds = atoi(argv[++i]);
        else {
            g_printerr("bench-fdatasync: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (records < 1 || rounds < 1 || records < rounds) {
        g_printerr("bench-fdatasync: --records wants 1 or more and at least --rounds\n");
        return 2;
    }
    per = records / rounds;
    path = g_build_filename(dir, "bench-fdatasync.data", NULL);
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    for (int m = 0; m < BENCH_FDATASYNC_N_MODES; m++)
        bench_samples_init(&s[m], bench_fdatasync_names[m]);
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < BENCH_FDATASYNC_N_MODES; k++) {
            BenchFdatasyncMode mode = (BenchFdatasyncMode)((k + r) % BENCH_FDATASYNC_N_MODES);
            int fd = bench_fdatasync_open(path, mode, per);

            if (fd < 0) {
                g_printerr("bench-fdatasync: %s (%s): %s\n", path, bench_fdatasync_names[mode],
                           g_strerror(errno));
                unlink(path);
                return 1;
            }
            for (int i = 0; i < per; i++) {
                double t0;

                if (pwrite(fd, line, sizeof line, (off_t)i * (off_t)sizeof line) !=
                    (ssize_t)sizeof line) {
                    g_printerr("bench-fdatasync: pwrite: %s\n", g_strerror(errno));
                    close(fd);
                    unlink(path);
                    return 1;
                }
                t0 = bench_now_us();
                if (fdatasync(fd) < 0) {
                    g_printerr("bench-fdatasync: fdatasync: %s\n", g_strerror(errno));
                    close(fd);
                    unlink(path);
                    return 1;
                }
                bench_samples_add(&s[mode], bench_now_us() - t0);
            }
            close(fd);
        }
    }
    unlink(path);
    for (int m = 0; m < BENCH_FDATASYNC_N_MODES; m++)
        bench_samples_report(&s[m], "fdatasync", stdout);
    for (int m = 1; m < BENCH_FDATASYNC_N_MODES; m++)
        printf("%s / append: median %.2f x, p99 %.2f x\n", bench_fdatasync_names[m],
               bench_samples_percentile(&s[m], 50) / bench_samples_percentile(&s[0], 50),
               bench_samples_percentile(&s[m], 99) / bench_samples_percentile(&s[0], 99));
    for (int m = 0; m < BENCH_FDATASYNC_N_MODES; m++)
        bench_samples_clear(&s[m]);
    return 0;
}
