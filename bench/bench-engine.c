/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-engine: the hotplug cycle of qmp-floor, through the library
 * in-process (QmpConn + HotplugVm on a libevent loop), with the same
 * statistics, so the two can be compared line by line.
 *
 *   cycle    hotplug_vm_plug_device -> added, hotplug_vm_unplug -> deleted
 *   add/del  the two halves of a cycle
 *   query    query-status through qmp_conn_execute
 *   qomlist  hotplug_vm_query_devices (qom-list /machine/peripheral, the
 *            device array built from it): what hotplugd's device-list runs
 *   unplug1  one unplug; unplugK: K unplugs of one VM issued at once */
#define G_LOG_DOMAIN "bench"
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <glib.h>

#include "bench-stats.h"
#include "hotplug-vm.h"
#include "qmp-conn.h"

typedef struct {
    struct event_base *base;
    QmpConn *conn;
    HotplugVm *vm;
    guint timeout_ms;
    const char *driver, *bus, *prefix;
    guint64 seq;
    GPtrArray *watch; /* HotplugOp whose outcome we wait for (borrowed) */
    guint outstanding;
    gboolean done;
} Bench;

static void G_GNUC_NORETURN G_GNUC_PRINTF(1, 2) bench_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench-engine: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static void
bench_op_cb(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque)
{
    Bench *b = opaque;

    if (ev != HOTPLUG_OP_EV_OUTCOME || !b->watch)
        return;
    for (guint i = 0; i < b->watch->len; i++) {
        if (b->watch->pdata[i] == op) {
            g_ptr_array_remove_index_fast(b->watch, i);
            if (--b->outstanding == 0)
                b->done = TRUE;
            return;
        }
    }
}

/* Run the loop until every op in ops has its outcome. */
static void
bench_wait_ops(Bench *b, HotplugOp **ops, guint n)
{
    b->watch = g_ptr_array_new();
    b->outstanding = 0;
    b->done = FALSE;
    for (guint i = 0; i < n; i++) {
        if (!hotplug_op_is_final(ops[i])) {
            g_ptr_array_add(b->watch, ops[i]);
            b->outstanding++;
        }
    }
    if (b->outstanding && !qmp_loop_run_until(b->base, &b->done, b->timeout_ms))
        bench_die("no outcome within %u ms", b->timeout_ms);
    g_ptr_array_unref(b->watch);
    b->watch = NULL;
}

static void
bench_expect(HotplugOp *op, HotplugOutcome want)
{
    const GError *err = hotplug_op_get_error(op);

    if (hotplug_op_get_outcome(op) != want)
        bench_die("%s of %s: %s, expected %s%s%s", hotplug_action_name(hotplug_op_get_action(op)),
                  hotplug_op_get_device(op), hotplug_outcome_name(hotplug_op_get_outcome(op)),
                  hotplug_outcome_name(want), err ? ": " : "", err ? err->message : "");
}

static char *
bench_dev_name(Bench *b)
{
    return g_strdup_printf("%s%" G_GUINT64_FORMAT, b->prefix, b->seq++);
}

static void
bench_plug(Bench *b, const char *dev)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *bus_prop = *b->bus ? g_strdup_printf("bus=%s", b->bus) : NULL;
    const char *props[] = {bus_prop, NULL};
    g_autoptr(HotplugOp) op = hotplug_vm_plug_device(b->vm, b->driver, dev, props, &error);

    if (!op)
        bench_die("plug %s: %s", dev, error->message);
    bench_wait_ops(b, &op, 1);
    bench_expect(op, HOTPLUG_OUTCOME_ADDED);
}

static HotplugOp *
bench_start_unplug(Bench *b, const char *dev)
{
    g_autoptr(GError) error = NULL;
    HotplugOp *op = hotplug_vm_unplug(b->vm, HOTPLUG_KIND_DEVICE, dev, NULL, NULL, &error);

    if (!op)
        bench_die("unplug %s: %s", dev, error->message);
    return op;
}

static void
bench_cycle(Bench *b, double *cycle, double *add, double *del)
{
    g_autofree char *dev = bench_dev_name(b);
    g_autoptr(HotplugOp) op = NULL;
    double t0, t1, t2;

    t0 = bench_now_us();
    bench_plug(b, dev);
    t1 = bench_now_us();
    op = bench_start_unplug(b, dev);
    bench_wait_ops(b, &op, 1);
    t2 = bench_now_us();
    bench_expect(op, HOTPLUG_OUTCOME_DELETED);
    *cycle = t2 - t0;
    *add = t1 - t0;
    *del = t2 - t1;
}

static void
bench_query_cb(QmpConn *conn, JsonNode *ret, const GError *error, gpointer opaque)
{
    Bench *b = opaque;

    if (error)
        bench_die("query-status: %s", error->message);
    b->done = TRUE;
}

static double
bench_query(Bench *b)
{
    g_autoptr(GError) error = NULL;
    double t0 = bench_now_us();

    b->done = FALSE;
    if (!qmp_conn_execute(b->conn, "query-status", NULL, bench_query_cb, b, &error))
        bench_die("query-status: %s", error->message);
    if (!qmp_loop_run_until(b->base, &b->done, b->timeout_ms))
        bench_die("no reply to query-status within %u ms", b->timeout_ms);
    return bench_now_us() - t0;
}

static void
bench_devices_cb(HotplugVm *vm, JsonNode *devices, const GError *error, gpointer opaque)
{
    Bench *b = opaque;

    if (error)
        bench_die("device list: %s", error->message);
    b->done = TRUE;
}

static double
bench_qomlist(Bench *b)
{
    g_autoptr(GError) error = NULL;
    double t0 = bench_now_us();

    b->done = FALSE;
    if (!hotplug_vm_query_devices(b->vm, bench_devices_cb, b, &error))
        bench_die("device list: %s", error->message);
    if (!qmp_loop_run_until(b->base, &b->done, b->timeout_ms))
        bench_die("no device list within %u ms", b->timeout_ms);
    return bench_now_us() - t0;
}

/* Plug k devices, then time k unplugs issued at once until every outcome. */
static double
bench_burst(Bench *b, guint k)
{
    g_autoptr(GPtrArray) devs = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) ops = g_ptr_array_new_with_free_func((GDestroyNotify)hotplug_op_unref);
    double t0, t1;

    for (guint i = 0; i < k; i++) {
        g_ptr_array_add(devs, bench_dev_name(b));
        bench_plug(b, devs->pdata[i]);
    }
    t0 = bench_now_us();
    for (guint i = 0; i < k; i++)
        g_ptr_array_add(ops, bench_start_unplug(b, devs->pdata[i]));
    bench_wait_ops(b, (HotplugOp **)ops->pdata, ops->len);
    t1 = bench_now_us();
    for (guint i = 0; i < k; i++)
        bench_expect(ops->pdata[i], HOTPLUG_OUTCOME_DELETED);
    return t1 - t0;
}

static void
bench_usage(FILE *out)
{
    fprintf(out, "usage: bench-engine SOCKET [options]\n"
                 "  --cycles N      plug/unplug cycles (default 500)\n"
                 "  --queries N     query-status round trips (default 500)\n"
                 "  --lists N       device list (qom-list) round trips (default 0)\n"
                 "  --warmup N      untimed cycles and queries first (default 10)\n"
                 "  --burst K       also time K unplugs at once against 1 (default 0: no)\n"
                 "  --bursts R      rounds of that (default 50)\n"
                 "  --driver D      device driver (default usb-kbd)\n"
                 "  --bus B         bus property, \"\" for none (default xhci.0)\n"
                 "  --prefix P      device ids P0, P1, ... (default engine)\n"
                 "  --label L       label of the RESULT lines (default engine)\n"
                 "  --samples FILE  append every sample as \"METRIC MICROSECONDS\"\n"
                 "  --timeout MS    give up waiting after MS (default 10000)\n");
}

static long
bench_parse_count(const char *opt, const char *text, long max)
{
    char *end;
    long v = strtol(text, &end, 10);

    if (!*text || *end || v < 0 || v > max) {
        fprintf(stderr, "bench-engine: bad value '%s' for --%s\n", text, opt);
        bench_usage(stderr);
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
    static const HotplugVmListener listener = {.op = bench_op_cb};
    HotplugVmOptions vm_opts = {.gone_on_close = TRUE};
    long cycles = 500, queries = 500, lists = 0, warmup = 10, burst = 0, bursts = 50;
    const char *label = "engine", *samples = NULL;
    Bench b = {.timeout_ms = 10000, .driver = "usb-kbd", .bus = "xhci.0", .prefix = "engine"};
    g_autoptr(GError) error = NULL;
    g_autofree char *burst_metric = NULL;
    BenchSamples s_cycle, s_add, s_del, s_query, s_list, s_one, s_burst;
    double c, a, d;
    int ch;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cycles = bench_parse_count("cycles", optarg, 10000000);
            break;
        case 'q':
            queries = bench_parse_count("queries", optarg, 10000000);
            break;
        case 'L':
            lists = bench_parse_count("lists", optarg, 10000000);
            break;
        case 'w':
            warmup = bench_parse_count("warmup", optarg, 1000000);
            break;
        case 'k':
            burst = bench_parse_count("burst", optarg, 128);
            break;
        case 'r':
            bursts = bench_parse_count("bursts", optarg, 1000000);
            break;
        case 'd':
            b.driver = optarg;
            break;
        case 'b':
            b.bus = optarg;
            break;
        case 'p':
            b.prefix = optarg;
            break;
        case 'l':
            label = optarg;
            break;
        case 's':
            samples = optarg;
            break;
        case 't':
            b.timeout_ms = (guint)bench_parse_count("timeout", optarg, 3600000);
            break;
        case 'h':
            bench_usage(stdout);
            return 0;
        default:
            bench_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        bench_usage(stderr);
        return 2;
    }
    b.base = event_base_new();
    b.conn = qmp_conn_new(b.base, argv[optind], NULL);
    if (!qmp_conn_open(b.conn, &error) || !qmp_conn_wait_ready(b.conn, b.timeout_ms, &error))
        bench_die("%s", error->message);
    b.vm = hotplug_vm_new("bench", b.conn, &vm_opts);
    hotplug_vm_add_listener(b.vm, &listener, &b);

    bench_samples_init(&s_cycle, "cycle");
    bench_samples_init(&s_add, "add");
    bench_samples_init(&s_del, "del");
    bench_samples_init(&s_query, "query");
    bench_samples_init(&s_list, "qomlist");
    bench_samples_init(&s_one, "unplug1");
    burst_metric = g_strdup_printf("unplug%ld", burst);
    bench_samples_init(&s_burst, burst_metric);

    for (long i = 0; i < warmup; i++) {
        bench_cycle(&b, &c, &a, &d);
        bench_query(&b);
    }
    for (long i = 0; i < cycles; i++) {
        bench_cycle(&b, &c, &a, &d);
        bench_samples_add(&s_cycle, c);
        bench_samples_add(&s_add, a);
        bench_samples_add(&s_del, d);
    }
    for (long i = 0; i < queries; i++)
        bench_samples_add(&s_query, bench_query(&b));
    for (long i = 0; i < lists; i++)
        bench_samples_add(&s_list, bench_qomlist(&b));
    for (long i = 0; burst > 1 && i < bursts; i++) {
        bench_samples_add(&s_one, bench_burst(&b, 1));
        bench_samples_add(&s_burst, bench_burst(&b, (guint)burst));
    }

    {
        BenchSamples *all[] = {&s_cycle, &s_add, &s_del, &s_query, &s_list, &s_one, &s_burst};
        for (guint i = 0; i < G_N_ELEMENTS(all); i++) {
            if (!all[i]->n)
                continue;
            bench_samples_report(all[i], label, stdout);
            if (samples && bench_samples_save(all[i], samples) < 0)
                bench_die("cannot write %s: %s", samples, g_strerror(errno));
            bench_samples_clear(all[i]);
        }
    }
    hotplug_vm_free(b.vm);
    qmp_conn_close(b.conn);
    qmp_conn_unref(b.conn);
    event_base_free(b.base);
    return 0;
}
