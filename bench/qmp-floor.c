/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmp-floor: the baseline for the overhead benchmark.
 *
 * The least a client must do for a hotplug cycle on one QMP socket:
 * negotiate, then device_add -> device_del -> wait for DEVICE_DELETED, and
 * query-status round trips.  Blocking I/O with poll() for timeouts, plain
 * string search on QEMU's replies, no JSON library.  Whatever the engine
 * or hotplugd add on top of this is their overhead.
 *
 * Works against QEMU (qemu-xhci,id=xhci) and against bench/qmp-sim. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench-line.h"
#include "bench-stats.h"

#define FLOOR_BUF_SIZE (1024 * 1024)
#define FLOOR_MAX_IDS 256
#define FLOOR_ID_LEN 64

typedef struct {
    BenchLine line;
    long next_id;    /* id of the next command sent */
    long next_reply; /* id the next reply must carry (QEMU answers in order) */
    char deleted[FLOOR_MAX_IDS][FLOOR_ID_LEN]; /* DEVICE_DELETED seen, not yet waited for */
    int n_deleted;
} Floor;

/* Sort one line: an event (DEVICE_DELETED is remembered) or a reply
 * (returns 1; an error reply ends the program). */
static int
floor_handle_line(Floor *f, const char *line)
{
    const char *p;
    long id;

    if (strncmp(line, "{\"timestamp\"", 12) == 0) {
        if (strstr(line, "\"event\": \"DEVICE_DELETED\"") && (p = strstr(line, "\"device\": \""))) {
            const char *end;
            p += strlen("\"device\": \"");
            end = strchr(p, '"');
            if (!end || end - p >= FLOOR_ID_LEN)
                bench_die("odd DEVICE_DELETED: %s", line);
            if (f->n_deleted == FLOOR_MAX_IDS)
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
floor_wait_reply(Floor *f)
{
    while (!floor_handle_line(f, bench_line_read(&f->line)))
        ;
}

static void
floor_wait_deleted(Floor *f, const char *dev)
{
    for (;;) {
        for (int i = 0; i < f->n_deleted; i++) {
            if (strcmp(f->deleted[i], dev) == 0) {
                memmove(f->deleted[i], f->deleted[i + 1],
                        (size_t)(f->n_deleted - i - 1) * FLOOR_ID_LEN);
                f->n_deleted--;
                return;
            }
        }
        floor_handle_line(f, bench_line_read(&f->line));
    }
}

/* Send one command (compact JSON, no line ending: QEMU needs none). */
static void __attribute__((format(printf, 2, 3))) floor_send(Floor *f, const char *fmt, ...)
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

typedef struct {
    const char *driver, *bus, *prefix;
    long seq;
} FloorDevs;

static void
floor_dev_name(FloorDevs *d, char *out, size_t size)
{
    snprintf(out, size, "%s%ld", d->prefix, d->seq++);
}

static void
floor_send_add(Floor *f, FloorDevs *d, const char *dev)
{
    if (d->bus && *d->bus)
        floor_send(f,
                   "\"execute\":\"device_add\",\"arguments\":{\"driver\":\"%s\",\"id\":\"%s\","
                   "\"bus\":\"%s\"}",
                   d->driver, dev, d->bus);
    else
        floor_send(f, "\"execute\":\"device_add\",\"arguments\":{\"driver\":\"%s\",\"id\":\"%s\"}",
                   d->driver, dev);
}

static void
floor_send_del(Floor *f, const char *dev)
{
    floor_send(f, "\"execute\":\"device_del\",\"arguments\":{\"id\":\"%s\"}", dev);
}

/* One device_add -> device_del -> DEVICE_DELETED cycle; times in µs. */
static void
floor_cycle(Floor *f, FloorDevs *d, double *cycle, double *add, double *del)
{
    char dev[FLOOR_ID_LEN];
    double t0, t1, t2;

    floor_dev_name(d, dev, sizeof(dev));
    t0 = bench_now_us();
    floor_send_add(f, d, dev);
    floor_wait_reply(f);
    t1 = bench_now_us();
    floor_send_del(f, dev);
    floor_wait_reply(f);
    floor_wait_deleted(f, dev);
    t2 = bench_now_us();
    *cycle = t2 - t0;
    *add = t1 - t0;
    *del = t2 - t1;
}

static double
floor_query(Floor *f)
{
    double t0 = bench_now_us();

    floor_send(f, "\"execute\":\"query-status\"");
    floor_wait_reply(f);
    return bench_now_us() - t0;
}

/* qom-list /machine/peripheral: what the engine's device list asks */
static double
floor_qomlist(Floor *f)
{
    double t0 = bench_now_us();

    floor_send(f, "\"execute\":\"qom-list\",\"arguments\":{\"path\":\"/machine/peripheral\"}");
    floor_wait_reply(f);
    return bench_now_us() - t0;
}

/* Plug k devices, then time k device_del sent at once until every
 * DEVICE_DELETED has come. */
static double
floor_burst(Floor *f, FloorDevs *d, int k)
{
    char devs[FLOOR_MAX_IDS][FLOOR_ID_LEN];
    double t0;

    for (int i = 0; i < k; i++) {
        floor_dev_name(d, devs[i], sizeof(devs[i]));
        floor_send_add(f, d, devs[i]);
        floor_wait_reply(f);
    }
    t0 = bench_now_us();
    for (int i = 0; i < k; i++)
        floor_send_del(f, devs[i]);
    for (int i = 0; i < k; i++)
        floor_wait_reply(f);
    for (int i = 0; i < k; i++)
        floor_wait_deleted(f, devs[i]);
    return bench_now_us() - t0;
}

static void
floor_usage(FILE *out)
{
    fprintf(out, "usage: qmp-floor SOCKET [options]\n"
                 "  --cycles N      device_add/device_del/DEVICE_DELETED cycles (default 500)\n"
                 "  --queries N     query-status round trips (default 500)\n"
                 "  --lists N       qom-list /machine/peripheral round trips (default 0)\n"
                 "  --warmup N      untimed cycles and queries first (default 10)\n"
                 "  --burst K       also time K unplugs at once against 1 (default 0: no)\n"
                 "  --bursts R      rounds of that (default 50)\n"
                 "  --driver D      device driver (default usb-kbd)\n"
                 "  --bus B         bus property, \"\" for none (default xhci.0)\n"
                 "  --prefix P      device ids P0, P1, ... (default floor)\n"
                 "  --label L       label of the RESULT lines (default floor)\n"
                 "  --samples FILE  append every sample as \"METRIC MICROSECONDS\"\n"
                 "  --timeout MS    give up waiting for QEMU after MS (default 10000)\n");
}

static long
floor_parse_count(const char *opt, const char *text, long max)
{
    char *end;
    long v = strtol(text, &end, 10);

    if (!*text || *end || v < 0 || v > max) {
        fprintf(stderr, "qmp-floor: bad value '%s' for --%s\n", text, opt);
        floor_usage(stderr);
        exit(2);
    }
    return v;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cycles", required_argument, NULL, 'c'},
        {"queries", required_argument, NULL, 'q'},
        {"lists", required_argument, NULL, 'L'},
        {"warmup", required_argument, NULL, 'w'},
        {"burst", required_argument, NULL, 'k'},
        {"bursts", required_argument, NULL, 'r'},
        {"driver", required_argument, NULL, 'd'},
        {"bus", required_argument, NULL, 'b'},
        {"prefix", required_argument, NULL, 'p'},
        {"label", required_argument, NULL, 'l'},
        {"samples", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    long cycles = 500, queries = 500, lists = 0, warmup = 10, burst = 0, bursts = 50;
    const char *label = "floor", *samples = NULL;
    FloorDevs devs = {"usb-kbd", "xhci.0", "floor", 0};
    Floor f = {.line = {.timeout_ms = 10000, .peer = "QEMU"}, .next_id = 1, .next_reply = 1};
    BenchSamples s_cycle, s_add, s_del, s_query, s_list, s_one, s_burst;
    char burst_metric[32];
    double c, a, d;
    int ch;

    bench_set_program("qmp-floor");
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cycles = floor_parse_count("cycles", optarg, 10000000);
            break;
        case 'q':
            queries = floor_parse_count("queries", optarg, 10000000);
            break;
        case 'L':
            lists = floor_parse_count("lists", optarg, 10000000);
            break;
        case 'w':
            warmup = floor_parse_count("warmup", optarg, 1000000);
            break;
        case 'k':
            burst = floor_parse_count("burst", optarg, FLOOR_MAX_IDS / 2);
            break;
        case 'r':
            bursts = floor_parse_count("bursts", optarg, 1000000);
            break;
        case 'd':
            devs.driver = optarg;
            break;
        case 'b':
            devs.bus = optarg;
            break;
        case 'p':
            devs.prefix = optarg;
            break;
        case 'l':
            label = optarg;
            break;
        case 's':
            samples = optarg;
            break;
        case 't':
            f.line.timeout_ms = (int)floor_parse_count("timeout", optarg, 3600000);
            break;
        case 'h':
            floor_usage(stdout);
            return 0;
        default:
            floor_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        floor_usage(stderr);
        return 2;
    }
    bench_line_open(&f.line, argv[optind], FLOOR_BUF_SIZE);
    if (strncmp(bench_line_read(&f.line), "{\"QMP\"", 6) != 0)
        bench_die("no QMP greeting");
    floor_send(&f, "\"execute\":\"qmp_capabilities\"");
    floor_wait_reply(&f);

    bench_samples_init(&s_cycle, "cycle");
    bench_samples_init(&s_add, "add");
    bench_samples_init(&s_del, "del");
    bench_samples_init(&s_query, "query");
    bench_samples_init(&s_list, "qomlist");
    bench_samples_init(&s_one, "unplug1");
    snprintf(burst_metric, sizeof(burst_metric), "unplug%ld", burst);
    bench_samples_init(&s_burst, burst_metric);

    for (long i = 0; i < warmup; i++) {
        floor_cycle(&f, &devs, &c, &a, &d);
        floor_query(&f);
    }
    for (long i = 0; i < cycles; i++) {
        floor_cycle(&f, &devs, &c, &a, &d);
        bench_samples_add(&s_cycle, c);
        bench_samples_add(&s_add, a);
        bench_samples_add(&s_del, d);
    }
    for (long i = 0; i < queries; i++)
        bench_samples_add(&s_query, floor_query(&f));
    for (long i = 0; i < lists; i++)
        bench_samples_add(&s_list, floor_qomlist(&f));
    for (long i = 0; burst > 1 && i < bursts; i++) {
        bench_samples_add(&s_one, floor_burst(&f, &devs, 1));
        bench_samples_add(&s_burst, floor_burst(&f, &devs, (int)burst));
    }

    {
        BenchSamples *all[] = {&s_cycle, &s_add, &s_del, &s_query, &s_list, &s_one, &s_burst};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
            if (!all[i]->n)
                continue;
            bench_samples_report(all[i], label, stdout);
            if (samples && bench_samples_save(all[i], samples) < 0)
                bench_die("cannot write %s: %s", samples, strerror(errno));
            bench_samples_clear(all[i]);
        }
    }
    bench_line_close(&f.line);
    return 0;
}
