/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The floor client (bench-floor.h): QMP with blocking I/O and string search. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-floor.h"
#include "bench-stats.h"

#define BENCH_FLOOR_BUF_SIZE (1024 * 1024)

/* Sort one line: an event (DEVICE_DELETED is remembered) or a reply
 * (returns 1; an error reply ends the program). */
static int
bench_floor_handle_line(BenchFloor *f, const char *line)
{
    const char *p;
    long id;

    if (strncmp(line, "{\"timestamp\"", 12) == 0) {
        if (strstr(line, "\"event\": \"DEVICE_DELETED\"") && (p = strstr(line, "\"device\": \""))) {
            const char *end;
            p += strlen("\"device\": \"");
            end = strchr(p, '"');
            if (!end || end - p >= BENCH_FLOOR_ID_LEN)
                bench_die("odd DEVICE_DELETED: %s", line);
            if (f->n_deleted == BENCH_FLOOR_MAX_IDS)
                bench_die("too many DEVICE_DELETED events not waited for");
            memcpy(f->deleted[f->n_deleted], p, (size_t)(end - p));
            f->deleted[f->n_deleted][end - p] = '\0';
            f->n_deleted++;
        }
        return 0;
    }
    if (strncmp(line, "{\"QMP\"", 6) == 0)
        bench_die("unexpected greeting: %s", line);
    if (strstr(line, "\"error\": "))
        bench_die("QEMU refused command %ld: %s", f->next_reply, line);
    p = strstr(line, "\"id\": ");
    if (!p)
        bench_die("reply without id: %s", line);
    id = strtol(p + strlen("\"id\": "), NULL, 10);
    if (id != f->next_reply)
        bench_die("reply for id %ld, expected %ld: %s", id, f->next_reply, line);
    f->next_reply++;
    return 1;
}

static void
bench_floor_wait_reply(BenchFloor *f)
{
    while (!bench_floor_handle_line(f, bench_line_read(&f->line)))
        ;
}

static void
bench_floor_wait_deleted(BenchFloor *f, const char *dev)
{
    for (;;) {
        for (int i = 0; i < f->n_deleted; i++) {
            if (strcmp(f->deleted[i], dev) == 0) {
                memmove(f->deleted[i], f->deleted[i + 1],
                        (size_t)(f->n_deleted - i - 1) * BENCH_FLOOR_ID_LEN);
                f->n_deleted--;
                return;
            }
        }
        bench_floor_handle_line(f, bench_line_read(&f->line));
    }
}

/* Send one command (compact JSON, no line ending: QEMU needs none). */
static void __attribute__((format(printf, 2, 3))) bench_floor_send(BenchFloor *f, const char *fmt, ...)
{
    char cmd[1024], line[1200];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd))
        bench_die("command too long");
    n = snprintf(line, sizeof(line), "{%s,\"id\":%ld}", cmd, f->next_id++);
    bench_line_write(&f->line, line, (size_t)n);
}

static void
bench_floor_dev_name(BenchFloorDevs *d, char *out, size_t size)
{
    snprintf(out, size, "%s%ld", d->prefix, d->seq++);
}

static void
bench_floor_send_add(BenchFloor *f, BenchFloorDevs *d, const char *dev)
{
    if (d->bus && *d->bus)
        bench_floor_send(f,
                   "\"execute\":\"device_add\",\"arguments\":{\"driver\":\"%s\",\"id\":\"%s\","
                   "\"bus\":\"%s\"}",
                   d->driver, dev, d->bus);
    else
        bench_floor_send(f, "\"execute\":\"device_add\",\"arguments\":{\"driver\":\"%s\",\"id\":\"%s\"}",
                   d->driver, dev);
}

static void
bench_floor_send_del(BenchFloor *f, const char *dev)
{
    bench_floor_send(f, "\"execute\":\"device_del\",\"arguments\":{\"id\":\"%s\"}", dev);
}

/* One device_add -> device_del -> DEVICE_DELETED cycle; times in µs. */
void
bench_floor_cycle(BenchFloor *f, BenchFloorDevs *d, double *cycle, double *add, double *del)
{
    char dev[BENCH_FLOOR_ID_LEN];
    double t0, t1, t2;

    bench_floor_dev_name(d, dev, sizeof(dev));
    t0 = bench_now_us();
    bench_floor_send_add(f, d, dev);
    bench_floor_wait_reply(f);
    t1 = bench_now_us();
    bench_floor_send_del(f, dev);
    bench_floor_wait_reply(f);
    bench_floor_wait_deleted(f, dev);
    t2 = bench_now_us();
    *cycle = t2 - t0;
    *add = t1 - t0;
    *del = t2 - t1;
}

/* One round trip of cmd (the command's members, without "id"), in µs. */
static double
bench_floor_round_trip(BenchFloor *f, const char *cmd)
{
    double t0 = bench_now_us();

    bench_floor_send(f, "%s", cmd);
    bench_floor_wait_reply(f);
    return bench_now_us() - t0;
}

double
bench_floor_query(BenchFloor *f)
{
    return bench_floor_round_trip(f, "\"execute\":\"query-status\"");
}

/* qom-list /machine/peripheral: what the engine's device list asks */
double
bench_floor_qomlist(BenchFloor *f)
{
    return bench_floor_round_trip(
        f, "\"execute\":\"qom-list\",\"arguments\":{\"path\":\"/machine/peripheral\"}");
}

/* Plug k devices, then time k device_del sent at once until every
 * DEVICE_DELETED has come. */
double
bench_floor_burst(BenchFloor *f, BenchFloorDevs *d, int k)
{
    char devs[BENCH_FLOOR_MAX_IDS][BENCH_FLOOR_ID_LEN];
    double t0;

    for (int i = 0; i < k; i++) {
        bench_floor_dev_name(d, devs[i], sizeof(devs[i]));
        bench_floor_send_add(f, d, devs[i]);
        bench_floor_wait_reply(f);
    }
    t0 = bench_now_us();
    for (int i = 0; i < k; i++)
        bench_floor_send_del(f, devs[i]);
    for (int i = 0; i < k; i++)
        bench_floor_wait_reply(f);
    for (int i = 0; i < k; i++)
        bench_floor_wait_deleted(f, devs[i]);
    return bench_now_us() - t0;
}

void
bench_floor_open(BenchFloor *f, const char *path)
{
    f->next_id = 1;
    f->next_reply = 1;
    f->n_deleted = 0;
    if (!f->line.peer)
        f->line.peer = "QEMU";
    bench_line_open(&f->line, path, BENCH_FLOOR_BUF_SIZE);
    if (strncmp(bench_line_read(&f->line), "{\"QMP\"", 6) != 0)
        bench_die("no QMP greeting");
    bench_floor_send(f, "\"execute\":\"qmp_capabilities\"");
    bench_floor_wait_reply(f);
}

void
bench_floor_close(BenchFloor *f)
{
    bench_line_close(&f->line);
}
