/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench-line.h"

static const char *bench_program = "bench";

void
bench_set_program(const char *name)
{
    bench_program = name;
}

void
bench_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", bench_program);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

void
bench_line_open(BenchLine *l, const char *path, size_t size)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    l->buf = malloc(size);
    if (!l->buf)
        bench_die("out of memory");
    l->size = size;
    l->rpos = l->wpos = 0;
    if (strlen(path) >= sizeof(sun.sun_path))
        bench_die("socket path too long: %s", path);
    strcpy(sun.sun_path, path);
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0 || connect(l->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        bench_die("cannot connect to %s: %s", path, strerror(errno));
}

void
bench_line_close(BenchLine *l)
{
    close(l->fd);
    free(l->buf);
    l->buf = NULL;
}

char *
bench_line_read(BenchLine *l)
{
    for (;;) {
        char *nl = memchr(l->buf + l->rpos, '\n', l->wpos - l->rpos);
        struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
        ssize_t n;
        int rc;

        if (nl) {
            char *line = l->buf + l->rpos;
            *nl = '\0';
            if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
            l->rpos = (size_t)(nl + 1 - l->buf);
            return line;
        }
        if (l->rpos == l->wpos) {
            l->rpos = l->wpos = 0;
        } else if (l->rpos > l->size / 2) {
            memmove(l->buf, l->buf + l->rpos, l->wpos - l->rpos);
            l->wpos -= l->rpos;
            l->rpos = 0;
        }
        if (l->wpos == l->size)
            bench_die("line longer than %zu bytes", l->size);
        rc = poll(&pfd, 1, l->timeout_ms);
        if (rc == 0)
            bench_die("no answer from %s within %d ms", l->peer, l->timeout_ms);
        if (rc < 0 && errno != EINTR)
            bench_die("poll: %s", strerror(errno));
        n = read(l->fd, l->buf + l->wpos, l->size - l->wpos);
        if (n == 0)
            bench_die("%s closed the connection", l->peer);
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            bench_die("read: %s", strerror(errno));
        if (n > 0)
            l->wpos += (size_t)n;
    }
}

void
bench_line_write(BenchLine *l, const char *text, size_t len)
{
    while (len) {
        ssize_t n = write(l->fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            bench_die("write: %s", strerror(errno));
        text += n;
        len -= (size_t)n;
    }
}
