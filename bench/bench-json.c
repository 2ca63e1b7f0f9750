/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-json: what reading one line of JSON costs, json-glib's parser (the
 * baseline, what the daemon used until issue 15's third round) against
 * qmp_json_parse, on the lines the daemon reads most: a control request,
 * QEMU's reply and event, an event log record.  Both read the same lines
 * alternately in rounds, in one process; the figure is the ratio.
 *
 *   bench/bench-json [--rounds R] [--lines N]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "bench-stats.h"
#include "qmp-json.h"

static const char *const bench_json_lines[] = {
    /* a control request (bench-eventlog's device-add) */
    "{\"execute\":\"device-add\",\"arguments\":{\"vm\":\"vm0007\",\"driver\":\"usb-kbd\","
    "\"id\":\"d12345\",\"props\":{\"bus\":\"xhci.0\"}},\"id\":4711}",
    /* QEMU's reply and event, as QEMU 7.2 writes them */
    "{\"return\": {}, \"id\": 53}",
    "{\"timestamp\": {\"seconds\": 1796540009, \"microseconds\": 804904}, \"event\": "
    "\"DEVICE_DELETED\", \"data\": {\"device\": \"d12345\", \"path\": "
    "\"/machine/peripheral/d12345\"}}",
    /* an event log record read back for a follower behind */
    "{\"seq\":24,\"time\":\"2026-12-06T06:53:29.804137Z\",\"vm\":\"vm0007\",\"event\":"
    "\"outcome\",\"op\":7,\"device\":\"d12345\",\"kind\":\"device\",\"action\":\"add\","
    "\"outcome\":\"added\",\"attempts\":1,\"elapsed_ms\":0,\"detail\":\"\\u00e9 \\\"q\\\"\"}",
};

static double
bench_json_round(gboolean ours, guint n, JsonParser *parser)
{
    double t0 = bench_now_us();

    for (guint i = 0; i < n; i++) {
        const char *line = bench_json_lines[i % G_N_ELEMENTS(bench_json_lines)];
        gsize len = strlen(line);

        if (ours) {
            JsonNode *node = qmp_json_parse(line, len, 0, NULL);
            if (!node)
                abort();
            json_node_unref(node);
        } else if (!json_parser_load_from_data(parser, line, (gssize)len, NULL)) {
            abort();
        }
    }
    return (bench_now_us() - t0) * 1000.0 / n; /* ns per line */
}

int
main(int argc, char **argv)
{
    guint rounds = 20, lines = 40000;
    g_autoptr(JsonParser) parser = json_parser_new();
    BenchSamples glib, ours;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = (guint)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lines") && i + 1 < argc)
            lines = (guint)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench-json [--rounds R] [--lines N]\n"
                            "  per round, N lines read by json-glib and by qmp_json_parse,\n"
                            "  alternately; prints ns per line and the ratio\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!rounds || !lines) {
        fprintf(stderr, "bench-json: --rounds and --lines must be > 0\n");
        return 2;
    }
    bench_samples_init(&glib, "parse_ns");
    bench_samples_init(&ours, "parse_ns");
    bench_json_round(TRUE, lines / 10, parser); /* warm up */
    bench_json_round(FALSE, lines / 10, parser);
    for (guint r = 0; r < rounds; r++) {
        gboolean first = r % 2 == 0;
        double a = bench_json_round(first, lines, parser);
        double b = bench_json_round(!first, lines, parser);

        bench_samples_add(first ? &ours : &glib, a);
        bench_samples_add(first ? &glib : &ours, b);
    }
    printf("json-glib      median %.0f ns per line\n", bench_samples_percentile(&glib, 50));
    printf("qmp_json_parse median %.0f ns per line\n", bench_samples_percentile(&ours, 50));
    printf("ratio qmp_json_parse / json-glib: %.2f\n",
           bench_samples_percentile(&ours, 50) / bench_samples_percentile(&glib, 50));
    bench_samples_clear(&glib);
    bench_samples_clear(&ours);
    return 0;
}
