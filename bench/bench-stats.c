/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Latency samples for the benchmarks. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench-stats.h"

double
bench_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

void
bench_samples_init(BenchSamples *s, const char *metric)
{
    memset(s, 0, sizeof(*s));
    s->metric = metric;
}

void
bench_samples_add(BenchSamples *s, double us)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *p = realloc(s->us, cap * sizeof(*p));
        if (!p)
            abort();
        s->us = p;
        s->cap = cap;
    }
    s->us[s->n++] = us;
}

void
bench_samples_clear(BenchSamples *s)
{
    free(s->us);
    s->us = NULL;
    s->n = s->cap = 0;
}

static int
bench_double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double
bench_samples_percentile(const BenchSamples *s, double p)
{
    double *sorted, v;
    size_t rank;

    if (!s->n)
        return 0;
    sorted = malloc(s->n * sizeof(*sorted));
    if (!sorted)
        abort();
    memcpy(sorted, s->us, s->n * sizeof(*sorted));
    qsort(sorted, s->n, sizeof(*sorted), bench_double_cmp);
    /* nearest rank: the smallest value with at least p% at or below it */
    rank = (size_t)(p / 100.0 * (double)s->n);
    if ((double)rank < p / 100.0 * (double)s->n)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    v = sorted[rank - 1];
    free(sorted);
    return v;
}

double
bench_samples_mean(const BenchSamples *s)
{
    double sum = 0;

    for (size_t i = 0; i < s->n; i++)
        sum += s->us[i];
    return s->n ? sum / (double)s->n : 0;
}

void
bench_samples_report(const BenchSamples *s, const char *label, FILE *out)
{
    fprintf(out,
            "RESULT %s %s n=%zu median_us=%.1f p99_us=%.1f mean_us=%.1f min_us=%.1f "
            "max_us=%.1f\n",
            label, s->metric, s->n, bench_samples_percentile(s, 50),
            bench_samples_percentile(s, 99), bench_samples_mean(s),
            bench_samples_percentile(s, 0.0001), bench_samples_percentile(s, 100));
}

int
bench_samples_save(const BenchSamples *s, const char *path)
{
    FILE *f = fopen(path, "a");

    if (!f)
        return -1;
    for (size_t i = 0; i < s->n; i++)
        fprintf(f, "%s %.1f\n", s->metric, s->us[i]);
    return fclose(f) == 0 ? 0 : -1;
}
