/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The floor client: the least a C client must do for a hotplug cycle on
 * one QMP socket.  Blocking I/O with poll() for timeouts, plain string
 * search on QEMU's replies, no JSON library.  qmp-floor runs it alone;
 * bench-hotplugd --floor runs it sample by sample beside the daemon. */
#pragma once

#include "bench-line.h"

#define BENCH_FLOOR_MAX_IDS 256
#define BENCH_FLOOR_ID_LEN 64

typedef struct {
    BenchLine line;
    long next_id;    /* id of the next command sent */
    long next_reply; /* id the next reply must carry (QEMU answers in order) */
    char deleted[BENCH_FLOOR_MAX_IDS][BENCH_FLOOR_ID_LEN]; /* DEVICE_DELETED seen, not waited for */
    int n_deleted;
} BenchFloor;

typedef struct {
    const char *driver, *bus, *prefix;
    long seq;
} BenchFloorDevs;

/* Connect to QEMU's QMP socket at path, read the greeting, negotiate.
 * f->line.timeout_ms must be set.  Dies on any failure. */
void bench_floor_open(BenchFloor *f, const char *path);
void bench_floor_close(BenchFloor *f);

/* One device_add -> device_del -> DEVICE_DELETED cycle; times in µs. */
void bench_floor_cycle(BenchFloor *f, BenchFloorDevs *d, double *cycle, double *add, double *del);
/* One query-status round trip, in µs. */
double bench_floor_query(BenchFloor *f);
/* One qom-list /machine/peripheral round trip (what a device list asks), in µs. */
double bench_floor_qomlist(BenchFloor *f);
/* Plug k devices (untimed), then time k device_del sent at once until
 * every DEVICE_DELETED has come, in µs. */
double bench_floor_burst(BenchFloor *f, BenchFloorDevs *d, int k);
