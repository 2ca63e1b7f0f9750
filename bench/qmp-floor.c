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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-floor.h"
#include "bench-stats.h"

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
    BenchFloorDevs devs = {"usb-kbd", "xhci.0", "floor", 0};
    BenchFloor f = {.line = {.timeout_ms = 10000, .peer = "QEMU"}};
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
            burst = floor_parse_count("burst", optarg, BENCH_FLOOR_MAX_IDS / 2);
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
    bench_floor_open(&f, argv[optind]);

    bench_samples_init(&s_cycle, "cycle");
    bench_samples_init(&s_add, "add");
    bench_samples_init(&s_del, "del");
    bench_samples_init(&s_query, "query");
    bench_samples_init(&s_list, "qomlist");
    bench_samples_init(&s_one, "unplug1");
    snprintf(burst_metric, sizeof(burst_metric), "unplug%ld", burst);
    bench_samples_init(&s_burst, burst_metric);

    for (long i = 0; i < warmup; i++) {
        bench_floor_cycle(&f, &devs, &c, &a, &d);
        bench_floor_query(&f);
    }
    for (long i = 0; i < cycles; i++) {
        bench_floor_cycle(&f, &devs, &c, &a, &d);
        bench_samples_add(&s_cycle, c);
        bench_samples_add(&s_add, a);
        bench_samples_add(&s_del, d);
    }
    for (long i = 0; i < queries; i++)
        bench_samples_add(&s_query, bench_floor_query(&f));
    for (long i = 0; i < lists; i++)
        bench_samples_add(&s_list, bench_floor_qomlist(&f));
    for (long i = 0; burst > 1 && i < bursts; i++) {
        bench_samples_add(&s_one, bench_floor_burst(&f, &devs, 1));
        bench_samples_add(&s_burst, bench_floor_burst(&f, &devs, (int)burst));
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
    bench_floor_close(&f);
    return 0;
}
