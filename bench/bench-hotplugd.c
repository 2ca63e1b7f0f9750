/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-hotplugd: the hotplug cycle of qmp-floor, through hotplugd over
 * one persistent control connection, with the same statistics, so the
 * daemon's rows can be compared with the floor's line by line.
 *
 *   cycle     device-add -> reply "added", device-del -> reply "deleted"
 *   add/del   the two halves of a cycle
 *   ctlquery  query-hotplugd round trip (the daemon answers it itself)
 *   qomlist   device-list round trip (the daemon asks QEMU: qom-list
 *             /machine/peripheral, and answers with the device array)
 *   unplug1   one device-del; unplugK: K device-del sent at once, until
 *             the K-th reply (devices plugged beforehand, untimed)
 *
 * Like qmp-floor, plain C with blocking I/O, poll() for timeouts and
 * string search on the daemon's replies (compact JSON from json-glib,
 * "id" last), so the client adds as little as the floor's client does.
 *
 * With --floor SOCKET it also runs the floor (bench-floor.h) on QEMU's own
 * QMP socket, sample by sample beside the daemon: each floor sample and
 * its daemon sample run back to back, the order turned every pair, so
 * whatever slows the machine for a while slows both alike.  Run in
 * separate blocks instead, the floor's median moved 10-20 % between
 * blocks of one run, more than the margins the targets leave. */
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

#include "bench-floor.h"
#include "bench-line.h"
#include "bench-stats.h"

#define HD_BUF_SIZE (4 * 1024 * 1024)
#define HD_MAX_BURST 128
#define HD_ID_LEN 64

typedef struct {
    BenchLine line;
    long next_id;
    const char *vm;
} Hd;

static void __attribute__((format(printf, 3, 4)))
hd_format(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        bench_die("arguments too long");
}

/* Send {"execute":CMD[,"arguments":ARGS],"id":N}; returns N. */
static long
hd_send(Hd *h, const char *cmd, const char *args)
{
    char line[1024];
    long id = h->next_id++;
    int n;

    if (args)
        n = snprintf(line, sizeof(line), "{\"execute\":\"%s\",\"arguments\":%s,\"id\":%ld}\n", cmd,
                     args, id);
    else
        n = snprintf(line, sizeof(line), "{\"execute\":\"%s\",\"id\":%ld}\n", cmd, id);
    if (n < 0 || (size_t)n >= sizeof(line))
        bench_die("command too long");
    bench_line_write(&h->line, line, (size_t)n);
    return id;
}

/* The id of a reply line (the last member, as the daemon writes it), or
 * -1 for an event. */
static long
hd_reply_id(const char *line)
{
    const char *p = NULL, *q = line;

    if (strncmp(line, "{\"event\"", 8) == 0)
        return -1;
    if (strncmp(line, "{\"return\"", 9) != 0 && strncmp(line, "{\"error\"", 8) != 0)
        bench_die("unexpected line: %s", line);
    while ((q = strstr(q, ",\"id\":")))
        p = q++;
    if (!p)
        bench_die("reply without id: %s", line);
    return strtol(p + 6, NULL, 10);
}

/* Wait for the reply to id (events and other replies are skipped). */
static char *
hd_wait_reply(Hd *h, long id)
{
    for (;;) {
        char *line = bench_line_read(&h->line);
        long got = hd_reply_id(line);

        if (got < 0)
            continue;
        if (strncmp(line, "{\"error\"", 8) == 0)
            bench_die("hotplugd refused command %ld: %s", got, line);
        if (got != id)
            bench_die("reply for id %ld, expected %ld: %s", got, id, line);
        return line;
    }
}

/* The reply must be an operation whose outcome is want. */
static void
hd_expect_outcome(const char *line, const char *want)
{
    char pattern[64];

    snprintf(pattern, sizeof(pattern), "\"outcome\":\"%s\"", want);
    if (!strstr(line, pattern))
        bench_die("expected outcome %s: %s", want, line);
}

typedef struct {
    const char *driver, *bus, *prefix;
    long seq;
} HdDevs;

static void
hd_dev_name(HdDevs *d, char *out, size_t size)
{
    snprintf(out, size, "%s%ld", d->prefix, d->seq++);
}

static long
hd_send_add(Hd *h, HdDevs *d, const char *dev)
{
    char args[512];

    if (d->bus && *d->bus)
        hd_format(args, sizeof(args),
                  "{\"vm\":\"%s\",\"driver\":\"%s\",\"id\":\"%s\",\"props\":{\"bus\":\"%s\"}}",
                  h->vm, d->driver, dev, d->bus);
    else
        hd_format(args, sizeof(args), "{\"vm\":\"%s\",\"driver\":\"%s\",\"id\":\"%s\"}", h->vm,
                  d->driver, dev);
    return hd_send(h, "device-add", args);
}

static long
hd_send_del(Hd *h, const char *dev)
{
    char args[256];

    hd_format(args, sizeof(args), "{\"vm\":\"%s\",\"id\":\"%s\"}", h->vm, dev);
    return hd_send(h, "device-del", args);
}

static void
hd_plug(Hd *h, HdDevs *d, const char *dev)
{
    hd_expect_outcome(hd_wait_reply(h, hd_send_add(h, d, dev)), "added");
}

static void
hd_cycle(Hd *h, HdDevs *d, double *cycle, double *add, double *del)
{
    char dev[HD_ID_LEN];
    double t0, t1, t2;

    hd_dev_name(d, dev, sizeof(dev));
    t0 = bench_now_us();
    hd_plug(h, d, dev);
    t1 = bench_now_us();
    hd_expect_outcome(hd_wait_reply(h, hd_send_del(h, dev)), "deleted");
    t2 = bench_now_us();
    *cycle = t2 - t0;
    *add = t1 - t0;
    *del = t2 - t1;
}

static double
hd_ctlquery(Hd *h)
{
    double t0 = bench_now_us();
    char *line = hd_wait_reply(h, hd_send(h, "query-hotplugd", NULL));

    if (!strstr(line, "\"protocol\":"))
        bench_die("odd query-hotplugd reply: %s", line);
    return bench_now_us() - t0;
}

static double
hd_qomlist(Hd *h)
{
    char args[128];
    double t0;
    char *line;

    hd_format(args, sizeof(args), "{\"vm\":\"%s\"}", h->vm);
    t0 = bench_now_us();
    line = hd_wait_reply(h, hd_send(h, "device-list", args));
    if (strncmp(line, "{\"return\":[", 11) != 0)
        bench_die("odd device-list reply: %s", line);
    return bench_now_us() - t0;
}

/* Plug k devices, then time k device-del sent at once until every reply
 * (each says deleted; replies may come in any order). */
static double
hd_burst(Hd *h, HdDevs *d, int k)
{
    char devs[HD_MAX_BURST][HD_ID_LEN];
    long first = 0;
    int got = 0;
    char seen[HD_MAX_BURST] = {0};
    double t0;

    for (int i = 0; i < k; i++) {
        hd_dev_name(d, devs[i], sizeof(devs[i]));
        hd_plug(h, d, devs[i]);
    }
    t0 = bench_now_us();
    for (int i = 0; i < k; i++) {
        long id = hd_send_del(h, devs[i]);
        if (i == 0)
            first = id;
    }
    while (got < k) {
        char *line = bench_line_read(&h->line);
        long id = hd_reply_id(line);

        if (id < 0)
            continue;
        if (id < first || id >= first + k || seen[id - first])
            bench_die("unexpected reply id %ld: %s", id, line);
        if (strncmp(line, "{\"error\"", 8) == 0)
            bench_die("hotplugd refused command %ld: %s", id, line);
        hd_expect_outcome(line, "deleted");
        seen[id - first] = 1;
        got++;
    }
    return bench_now_us() - t0;
}

/* Until the VM's QMP connection is ready (hotplugd connects in the
 * background). */
static void
hd_wait_vm_ready(Hd *h)
{
    char pattern[256];
    double until = bench_now_us() + (double)h->line.timeout_ms * 1000.0;

    hd_format(pattern, sizeof(pattern), "\"name\":\"%s\",", h->vm);
    for (;;) {
        char *line = hd_wait_reply(h, hd_send(h, "vm-list", NULL));
        char *p = strstr(line, pattern);
        char *end = p ? strchr(p, '}') : NULL;

        if (!p)
            bench_die("hotplugd has no VM %s: %s", h->vm, line);
        if (end) {
            *end = '\0';
            if (strstr(p, "\"state\":\"ready\""))
                return;
        }
        if (bench_now_us() > until)
            bench_die("VM %s not ready within %d ms", h->vm, h->line.timeout_ms);
        usleep(20000);
    }
}

/* One pair of --floor: "METRIC ORDER FLOOR_US DAEMON_US" to out (if any). */
static void
hd_pair(FILE *out, const char *metric, int floor_first, double floor_us, double daemon_us)
{
    if (out)
        fprintf(out, "%s %s %.1f %.1f\n", metric, floor_first ? "floor-first" : "daemon-first",
                floor_us, daemon_us);
}

/* n round trips of hd_fn into hs; with a floor (fl), each beside one of
 * floor_fn into fs, the floor first in even pairs (see main). */
static void
hd_paired(long n, Hd *h, double (*hd_fn)(Hd *), BenchSamples *hs, BenchFloor *fl,
          double (*floor_fn)(BenchFloor *), BenchSamples *fs, FILE *pairs, const char *metric)
{
    for (long i = 0; i < n; i++) {
        int floor_first = fl && i % 2 == 0;
        double f_us = 0, h_us;

        if (floor_first)
            f_us = floor_fn(fl);
        h_us = hd_fn(h);
        if (fl && !floor_first)
            f_us = floor_fn(fl);
        bench_samples_add(hs, h_us);
        if (fl) {
            bench_samples_add(fs, f_us);
            hd_pair(pairs, metric, floor_first, f_us, h_us);
        }
    }
}

/* Print the seven metrics' RESULT lines under label, append their samples
 * to path (if any), and free them. */
static void
hd_report(BenchSamples *all[7], const char *label, const char *path)
{
    for (size_t i = 0; i < 7; i++) {
        if (!all[i]->n)
            continue;
        bench_samples_report(all[i], label, stdout);
        if (path && bench_samples_save(all[i], path) < 0)
            bench_die("cannot write %s: %s", path, strerror(errno));
        bench_samples_clear(all[i]);
    }
}

static void
hd_usage(FILE *out)
{
    fprintf(out, "usage: bench-hotplugd CONTROL_SOCKET VM [options]\n"
                 "  --cycles N      device-add/device-del cycles (default 500)\n"
                 "  --queries N     query-hotplugd round trips (default 500)\n"
                 "  --lists N       device-list round trips (default 500)\n"
                 "  --warmup N      untimed cycles, queries and lists first (default 10)\n"
                 "  --burst K       also time K unplugs at once against 1 (default 0: no)\n"
                 "  --bursts R      rounds of that (default 50)\n"
                 "  --driver D      device driver (default usb-kbd)\n"
                 "  --bus B         bus property, \"\" for none (default xhci.0)\n"
                 "  --prefix P      device ids P0, P1, ... (default hotplugd)\n"
                 "  --label L       label of the RESULT lines (default hotplugd)\n"
                 "  --samples FILE  append every sample as \"METRIC MICROSECONDS\"\n"
                 "  --timeout MS    give up waiting after MS (default 10000)\n"
                 "  --floor SOCKET  also run the floor on this QMP socket of the same QEMU,\n"
                 "                  each sample paired with the daemon's (order turned every pair)\n"
                 "  --floor-prefix P     the floor's device ids (default floor)\n"
                 "  --floor-label L      label of the floor's RESULT lines (default floor)\n"
                 "  --floor-samples FILE the floor's samples, as --samples\n"
                 "  --pairs FILE    append every pair as \"METRIC ORDER FLOOR_US DAEMON_US\",\n"
                 "                  ORDER floor-first or daemon-first\n");
}

static long
hd_parse_count(const char *opt, const char *text, long max)
{
    char *end;
    long v = strtol(text, &end, 10);

    if (!*text || *end || v < 0 || v > max) {
        fprintf(stderr, "bench-hotplugd: bad value '%s' for --%s\n", text, opt);
        hd_usage(stderr);
        exit(2);
    }
    return v;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cycles", required_argument, NULL, 'c'},  {"queries", required_argument, NULL, 'q'},
        {"lists", required_argument, NULL, 'L'},   {"warmup", required_argument, NULL, 'w'},
        {"burst", required_argument, NULL, 'k'},   {"bursts", required_argument, NULL, 'r'},
        {"driver", required_argument, NULL, 'd'},  {"bus", required_argument, NULL, 'b'},
        {"prefix", required_argument, NULL, 'p'},  {"label", required_argument, NULL, 'l'},
        {"samples", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
        {"floor", required_argument, NULL, 'F'},   {"floor-prefix", required_argument, NULL, 'P'},
        {"floor-label", required_argument, NULL, 'B'}, {"floor-samples", required_argument, NULL, 'S'},
        {"pairs", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},          {0},
    };
    long cycles = 500, queries = 500, lists = 500, warmup = 10, burst = 0, bursts = 50;
    const char *label = "hotplugd", *samples = NULL;
    const char *floor_path = NULL, *floor_label = "floor", *floor_samples = NULL, *pairs_path = NULL;
    FILE *pairs = NULL;
    HdDevs devs = {"usb-kbd", "xhci.0", "hotplugd", 0};
    BenchFloorDevs fdevs = {"usb-kbd", "xhci.0", "floor", 0};
    Hd h = {.line = {.timeout_ms = 10000, .peer = "hotplugd"}, .next_id = 1};
    BenchFloor fl = {.line = {.timeout_ms = 10000, .peer = "QEMU"}};
    BenchSamples s_cycle, s_add, s_del, s_query, s_list, s_one, s_burst;
    BenchSamples f_cycle, f_add, f_del, f_query, f_list, f_one, f_burst;
    char burst_metric[32];
    double c, a, d;
    int ch;

    bench_set_program("bench-hotplugd");
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cycles = hd_parse_count("cycles", optarg, 10000000);
            break;
        case 'q':
            queries = hd_parse_count("queries", optarg, 10000000);
            break;
        case 'L':
            lists = hd_parse_count("lists", optarg, 10000000);
            break;
        case 'w':
            warmup = hd_parse_count("warmup", optarg, 1000000);
            break;
        case 'k':
            burst = hd_parse_count("burst", optarg, HD_MAX_BURST);
            break;
        case 'r':
            bursts = hd_parse_count("bursts", optarg, 1000000);
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
            h.line.timeout_ms = (int)hd_parse_count("timeout", optarg, 3600000);
            fl.line.timeout_ms = h.line.timeout_ms;
            break;
        case 'A':
            pairs_path = optarg;
            break;
        case 'F':
            floor_path = optarg;
            break;
        case 'P':
            fdevs.prefix = optarg;
            break;
        case 'B':
            floor_label = optarg;
            break;
        case 'S':
            floor_samples = optarg;
            break;
        case 'h':
            hd_usage(stdout);
            return 0;
        default:
            hd_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 2) {
        hd_usage(stderr);
        return 2;
    }
    h.vm = argv[optind + 1];
    bench_line_open(&h.line, argv[optind], HD_BUF_SIZE);
    if (strncmp(bench_line_read(&h.line), "{\"QMP\"", 6) != 0)
        bench_die("no greeting from hotplugd");
    hd_wait_reply(&h, hd_send(&h, "qmp_capabilities", NULL));
    hd_wait_vm_ready(&h);

    if (floor_path)
        bench_floor_open(&fl, floor_path);
    if (pairs_path && !(pairs = fopen(pairs_path, "a")))
        bench_die("cannot open %s: %s", pairs_path, strerror(errno));
    fdevs.driver = devs.driver;
    fdevs.bus = devs.bus;

    bench_samples_init(&s_cycle, "cycle");
    bench_samples_init(&s_add, "add");
    bench_samples_init(&s_del, "del");
    bench_samples_init(&s_query, "ctlquery");
    bench_samples_init(&s_list, "qomlist");
    bench_samples_init(&s_one, "unplug1");
    snprintf(burst_metric, sizeof(burst_metric), "unplug%ld", burst);
    bench_samples_init(&s_burst, burst_metric);
    bench_samples_init(&f_cycle, "cycle");
    bench_samples_init(&f_add, "add");
    bench_samples_init(&f_del, "del");
    bench_samples_init(&f_query, "query");
    bench_samples_init(&f_list, "qomlist");
    bench_samples_init(&f_one, "unplug1");
    bench_samples_init(&f_burst, burst_metric);

    for (long i = 0; i < warmup; i++) {
        hd_cycle(&h, &devs, &c, &a, &d);
        hd_ctlquery(&h);
        hd_qomlist(&h);
        if (floor_path) {
            bench_floor_cycle(&fl, &fdevs, &c, &a, &d);
            bench_floor_query(&fl);
            bench_floor_qomlist(&fl);
        }
    }
    /* With --floor, pair i runs the floor first when i is even, the
     * daemon first when odd. */
    for (long i = 0; i < cycles; i++) {
        int floor_first = floor_path && i % 2 == 0;
        double fc = 0, fa = 0, fd = 0;

        if (floor_first)
            bench_floor_cycle(&fl, &fdevs, &fc, &fa, &fd);
        hd_cycle(&h, &devs, &c, &a, &d);
        if (floor_path && !floor_first)
            bench_floor_cycle(&fl, &fdevs, &fc, &fa, &fd);
        bench_samples_add(&s_cycle, c);
        bench_samples_add(&s_add, a);
        bench_samples_add(&s_del, d);
        if (floor_path) {
            bench_samples_add(&f_cycle, fc);
            bench_samples_add(&f_add, fa);
            bench_samples_add(&f_del, fd);
            hd_pair(pairs, "cycle", floor_first, fc, c);
            hd_pair(pairs, "add", floor_first, fa, a);
            hd_pair(pairs, "del", floor_first, fd, d);
        }
    }
    hd_paired(queries, &h, hd_ctlquery, &s_query, floor_path ? &fl : NULL, bench_floor_query,
              &f_query, pairs, "query");
    hd_paired(lists, &h, hd_qomlist, &s_list, floor_path ? &fl : NULL, bench_floor_qomlist,
              &f_list, pairs, "qomlist");
    for (long i = 0; burst > 1 && i < bursts; i++) {
        int floor_first = floor_path && i % 2 == 0;

        if (floor_first) {
            bench_samples_add(&f_one, bench_floor_burst(&fl, &fdevs, 1));
            bench_samples_add(&f_burst, bench_floor_burst(&fl, &fdevs, (int)burst));
        }
        bench_samples_add(&s_one, hd_burst(&h, &devs, 1));
        bench_samples_add(&s_burst, hd_burst(&h, &devs, (int)burst));
        if (floor_path && !floor_first) {
            bench_samples_add(&f_one, bench_floor_burst(&fl, &fdevs, 1));
            bench_samples_add(&f_burst, bench_floor_burst(&fl, &fdevs, (int)burst));
        }
    }

    hd_report((BenchSamples *[]){&s_cycle, &s_add, &s_del, &s_query, &s_list, &s_one, &s_burst}, label,
              samples);
    if (floor_path) {
        hd_report((BenchSamples *[]){&f_cycle, &f_add, &f_del, &f_query, &f_list, &f_one, &f_burst},
                  floor_label, floor_samples);
        bench_floor_close(&fl);
    }
    if (pairs && fclose(pairs) != 0)
        bench_die("cannot write %s: %s", pairs_path, strerror(errno));
    bench_line_close(&h.line);
    return 0;
}
