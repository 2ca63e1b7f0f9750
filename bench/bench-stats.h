/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Latency samples for the benchmarks: collect, summarise, save.
 *
 * Plain C (no glib), so the floor client stays minimal.  Percentiles use
 * the nearest-rank method, the same as bench/run-overhead.sh. */
#pragma once

#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *metric; /* "cycle", "query", ... */
    double *us;
    size_t n, cap;
} BenchSamples;

/* Monotonic time in microseconds. */
double bench_now_us(void);

void bench_samples_init(BenchSamples *s, const char *metric);
void bench_samples_add(BenchSamples *s, double us);
void bench_samples_clear(BenchSamples *s);
/* Nearest-rank percentile (0 < p <= 100) of the samples; 0 when empty. */
double bench_samples_percentile(const BenchSamples *s, double p);
double bench_samples_mean(const BenchSamples *s);
/* "RESULT LABEL METRIC n=N median_us=.. p99_us=.. mean_us=.. min_us=.. max_us=.." */
void bench_samples_report(const BenchSamples *s, const char *label, FILE *out);
/* Append "METRIC VALUE_US" lines to path; 0 on success, -1 (errno set) on failure. */
int bench_samples_save(const BenchSamples *s, const char *path);
