/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The line I/O both plain-C benchmark clients share (qmp-floor and
 * bench-hotplugd): blocking socket, poll() for timeouts, libc only. */
#pragma once

#include <stddef.h>

typedef struct {
    int fd;
    int timeout_ms;    /* for each wait on the peer */
    const char *peer;  /* "QEMU", "hotplugd": for messages */
    char *buf;
    size_t size, rpos, wpos;
} BenchLine;

/* The name in front of every message of bench_die. */
void bench_set_program(const char *name);
void bench_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Allocate a size-byte input buffer and connect to the UNIX socket path. */
void bench_line_open(BenchLine *l, const char *path, size_t size);
void bench_line_close(BenchLine *l);
/* The next line from the peer, without its line ending (valid until the
 * next call). */
char *bench_line_read(BenchLine *l);
void bench_line_write(BenchLine *l, const char *text, size_t len);
