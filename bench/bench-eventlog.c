/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-eventlog: the event log under load, through hotplugd (issue 7,
 * "Event log").
 *
 *   bench-eventlog run CONTROL_SOCKET --vms N --pid PID [options]
 *       opens S subscriber connections (`events` with follow), then runs
 *       the same load twice for --seconds each (device-add/device-del
 *       cycles on vm1..vmN, K in flight per VM: 7 records per cycle):
 *         phase A: every subscriber reads at once;
 *         phase B: subscriber 1 stops reading until the daemon must have
 *                  cut it off (the others got --stall-bytes more), then
 *                  reads what is left: its LOG events up to LOG_OVERFLOW's
 *                  last_seq, without a gap; it then resumes with
 *                  `events {since: last_seq, follow: true}`.
 *       Reports the rate at which records were appended (and fdatasync'ed
 *       before anyone heard of them), the rate of LOG events delivered to
 *       the subscribers, each phase's delivery lag (arrival - the record's
 *       "time") of the subscribers that read, and checks that every
 *       subscriber saw every seq once, in order.
 *   bench-eventlog raw --dir DIR [--seconds T] [--batch B]
 *       the baseline: the library's event log alone, in this process:
 *       records like the daemon's appended with a flush (fdatasync) every
 *       B records, on the same disk. */
#define G_LOG_DOMAIN "bench-eventlog"
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <glib.h>

#include "bench-stats.h"
#include "event-log.h"

#define EL_MAX_SUBS 256

typedef struct Bench Bench;

typedef enum {
    SUB_NEGOTIATING,
    SUB_SUBSCRIBING,
    SUB_LIVE,
    SUB_CUT, /* got LOG_OVERFLOW */
    SUB_CLOSED,
} SubState;

typedef struct {
    Bench *b;
    guint index;
    struct bufferevent *bev;
    SubState state;
    gboolean stalled;
    guint64 since; /* the subscription's start */
    guint64 last;  /* last seq received */
    guint64 overflow_seq;
    guint64 gaps, repeats;
    guint64 received; /* LOG events */
    guint64 bytes;
    BenchSamples lag; /* µs, of the current phase */
} Sub;

struct Bench {
    struct event_base *base;
    const char *socket;
    int pid;
    guint n_vms, inflight, n_subs;
    double seconds;
    guint64 stall_bytes;
    struct bufferevent *load;
    gboolean load_greeted;
    guint64 ctl_id;
    gboolean ctl_done;
    char *ctl_reply;
    Sub subs[EL_MAX_SUBS + 1]; /* the last one: the resumed slow subscriber */
    /* load */
    gboolean running;
    char phase;
    guint *vm_seq;
    guint64 next_load_id;
    guint load_pending;
    guint64 cycles, load_errors;
    struct event *timer;
    gboolean timed_out;
};

static void G_GNUC_NORETURN G_GNUC_PRINTF(1, 2) el_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench-eventlog: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

/* user + system CPU seconds of pid (fields 14 and 15 of /proc/PID/stat) */
static double
el_cpu_s(int pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *text = NULL;
    g_auto(GStrv) f = NULL;
    const char *p;

    if (!g_file_get_contents(path, &text, NULL, NULL) || !(p = strrchr(text, ')')))
        el_die("cannot read %s", path);
    f = g_strsplit(p + 2, " ", 0);
    if (g_strv_length(f) < 13)
        el_die("odd %s", path);
    return (double)(g_ascii_strtoull(f[11], NULL, 10) + g_ascii_strtoull(f[12], NULL, 10)) /
           (double)sysconf(_SC_CLK_TCK);
}

static double
el_now_real_us(void)
{
    return (double)g_get_real_time();
}

/* "2026-11-22T01:23:45.123456Z" -> µs since the epoch; 0 when odd.  The
 * followers read ~700,000 of these a second: the date and time part is
 * converted (sscanf, timegm: ~2 µs) once per second of records, the rest
 * by hand, so the lag measured is the daemon's and not this process's
 * own backlog (one CPU parsing every record 16 times). */
static double
el_parse_time(const char *p)
{
    static char cached[20];
    static double cached_us;
    int us = 0;

    for (int i = 0; i < 6; i++) {
        if (!g_ascii_isdigit(p[20 + i]))
            return 0;
        us = us * 10 + (p[20 + i] - '0');
    }
    if (p[19] != '.' || p[26] != 'Z')
        return 0;
    if (memcmp(p, cached, 19) != 0) {
        struct tm tm = {0};

        if (sscanf(p, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
            return 0;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        memcpy(cached, p, 19);
        cached_us = (double)timegm(&tm) * 1e6;
    }
    return cached_us + us;
}

static struct bufferevent *
el_connect(Bench *b, bufferevent_data_cb read_cb, bufferevent_event_cb event_cb, void *opaque)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct bufferevent *bev;
    int fd;

    if (strlen(b->socket) >= sizeof(sun.sun_path))
        el_die("socket path too long");
    strcpy(sun.sun_path, b->socket);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        el_die("cannot connect to %s: %s", b->socket, g_strerror(errno));
    evutil_make_socket_nonblocking(fd);
    bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, read_cb, NULL, event_cb, opaque);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return bev;
}

static void
el_send(struct bufferevent *bev, const char *line)
{
    bufferevent_write(bev, line, strlen(line));
    bufferevent_write(bev, "\n", 1);
}

/* ---- subscribers ------------------------------------------------------------- */

static void
el_sub_line(Sub *s, const char *line, size_t len)
{
    s->bytes += len + 2;
    switch (s->state) {
    case SUB_NEGOTIATING:
        if (g_str_has_prefix(line, "{\"QMP\"")) {
            el_send(s->bev, "{\"execute\":\"qmp_capabilities\",\"id\":1}");
            return;
        }
        if (!g_str_has_prefix(line, "{\"return\":{}"))
            el_die("subscriber %u: negotiation: %s", s->index + 1, line);
        s->state = SUB_SUBSCRIBING;
        if (s->since) {
            g_autofree char *cmd =
                g_strdup_printf("{\"execute\":\"events\",\"arguments\":{\"follow\":true,\"since\":"
                                "%" G_GUINT64_FORMAT "},\"id\":2}",
                                s->since);
            s->last = s->since;
            el_send(s->bev, cmd);
        } else {
            el_send(s->bev, "{\"execute\":\"events\",\"arguments\":{\"follow\":true},\"id\":2}");
        }
        return;
    case SUB_SUBSCRIBING:
        if (g_str_has_prefix(line, "{\"return\":")) {
            const char *p = strstr(line, "\"since\":");
            if (!p)
                el_die("subscriber %u: odd reply: %s", s->index + 1, line);
            s->since = g_ascii_strtoull(p + 8, NULL, 10);
            s->last = s->since;
            s->state = SUB_LIVE;
            return;
        }
        if (g_str_has_prefix(line, "{\"event\":\"LOG\""))
            break; /* the backlog after since comes before the reply */
        el_die("subscriber %u: events refused: %s", s->index + 1, line);
    case SUB_LIVE:
        if (g_str_has_prefix(line, "{\"event\":\"LOG_OVERFLOW\"")) {
            const char *p = strstr(line, "\"last_seq\":");
            if (!p)
                el_die("subscriber %u: odd LOG_OVERFLOW: %s", s->index + 1, line);
            s->overflow_seq = g_ascii_strtoull(p + 11, NULL, 10);
            s->state = SUB_CUT;
            return;
        }
        break;
    default:
        el_die("subscriber %u: a line after the end: %s", s->index + 1, line);
    }
    if (g_str_has_prefix(line, "{\"event\":\"LOG\",\"data\":{\"seq\":")) {
        guint64 seq = g_ascii_strtoull(line + 29, NULL, 10);
        const char *t = strstr(line, "\"time\":\"");
        double appended = t ? el_parse_time(t + 8) : 0;

        if (seq <= s->last)
            s->repeats++;
        else if (seq != s->last + 1)
            s->gaps++;
        s->last = MAX(s->last, seq);
        s->received++;
        if (appended > 0 && s->b->running)
            bench_samples_add(&s->lag, el_now_real_us() - appended);
        return;
    }
    if (g_str_has_prefix(line, "{\"event\":\"LOG_GAP\""))
        el_die("subscriber %u: LOG_GAP (retention): %s", s->index + 1, line);
    el_die("subscriber %u: unexpected: %s", s->index + 1, line);
}

static void
el_sub_read_cb(struct bufferevent *bev, void *opaque)
{
    Sub *s = opaque;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        size_t len;
        g_autofree char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);

        if (!line)
            return;
        el_sub_line(s, line, len);
    }
}

static void
el_sub_event_cb(struct bufferevent *bev, short what, void *opaque)
{
    Sub *s = opaque;

    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (s->state != SUB_CUT)
        el_die("subscriber %u: the daemon closed the connection", s->index + 1);
    s->state = SUB_CLOSED;
}

static void
el_sub_open(Bench *b, Sub *s, guint index, guint64 since)
{
    s->b = b;
    s->index = index;
    s->state = SUB_NEGOTIATING;
    s->since = since;
    bench_samples_init(&s->lag, "lag");
    s->bev = el_connect(b, el_sub_read_cb, el_sub_event_cb, s);
}

/* ---- the load and control calls -------------------------------------------------- */

static void el_load_issue(Bench *b, guint vm, gboolean add, guint n);

static void
el_load_reply(Bench *b, const char *line, guint64 id)
{
    guint vm, n;
    gboolean add;

    if (id >= 1000000000000ull) {
        if (id != b->ctl_id)
            el_die("reply for unknown id: %s", line);
        g_free(b->ctl_reply);
        b->ctl_reply = g_strdup(line);
        b->ctl_done = TRUE;
        return;
    }
    /* id = ((n * vms + vm) << 1) | add */
    add = id & 1;
    vm = (guint)((id >> 1) % b->n_vms);
    n = (guint)((id >> 1) / b->n_vms);
    b->load_pending--;
    if (g_str_has_prefix(line, "{\"error\"") ||
        !strstr(line, add ? "\"outcome\":\"added\"" : "\"outcome\":\"deleted\"")) {
        if (b->load_errors++ == 0)
            fprintf(stderr, "bench-eventlog: unexpected reply: %.300s\n", line);
    }
    if (add) {
        el_load_issue(b, vm, FALSE, n);
        return;
    }
    b->cycles++;
    if (b->running)
        el_load_issue(b, vm, TRUE, b->vm_seq[vm]++);
}

static void
el_load_issue(Bench *b, guint vm, gboolean add, guint n)
{
    char line[512];
    guint64 id = (((guint64)n * b->n_vms + vm) << 1) | (add ? 1 : 0);

    if (add)
        g_snprintf(
            line, sizeof(line),
            "{\"execute\":\"device-add\",\"arguments\":{\"vm\":\"vm%u\",\"driver\":\"usb-kbd\","
            "\"id\":\"%c%u\",\"props\":{\"bus\":\"xhci.0\"}},\"id\":%" G_GUINT64_FORMAT "}",
            vm + 1, b->phase, n, id);
    else
        g_snprintf(line, sizeof(line),
                   "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm%u\",\"id\":\"%c%u\"},"
                   "\"id\":%" G_GUINT64_FORMAT "}",
                   vm + 1, b->phase, n, id);
    b->load_pending++;
    el_send(b->load, line);
}

static void
el_load_read_cb(struct bufferevent *bev, void *opaque)
{
    Bench *b = opaque;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        size_t len;
        g_autofree char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        const char *p, *q;

        if (!line)
            return;
        if (!b->load_greeted) {
            b->load_greeted = TRUE;
            b->ctl_done = TRUE;
            continue;
        }
        if (g_str_has_prefix(line, "{\"event\""))
            continue;
        for (p = NULL, q = line; (q = strstr(q, ",\"id\":")); q++)
            p = q;
        if (!p)
            el_die("reply without id: %.300s", line);
        el_load_reply(b, line, g_ascii_strtoull(p + 6, NULL, 10));
    }
}

static void
el_load_event_cb(struct bufferevent *bev, short what, void *opaque)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        el_die("hotplugd closed the load connection");
}

static void
el_timeout_cb(evutil_socket_t fd, short what, void *opaque)
{
    ((Bench *)opaque)->timed_out = TRUE;
}

typedef gboolean (*ElCond)(Bench *b);

static void
el_run_until(Bench *b, ElCond cond, double seconds, const char *what)
{
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6)};

    b->timed_out = FALSE;
    evtimer_add(b->timer, &tv);
    while (!cond(b) && !b->timed_out)
        event_base_loop(b->base, EVLOOP_ONCE);
    evtimer_del(b->timer);
    if (!cond(b))
        el_die("%s: not done within %.0f s", what, seconds);
}

static gboolean
el_ctl_done(Bench *b)
{
    return b->ctl_done;
}

static char *
el_call(Bench *b, const char *cmd)
{
    g_autofree char *line = NULL;

    b->ctl_id++;
    b->ctl_done = FALSE;
    line = g_strdup_printf("{\"execute\":\"%s\",\"id\":%" G_GUINT64_FORMAT "}", cmd, b->ctl_id);
    el_send(b->load, line);
    el_run_until(b, el_ctl_done, 60, cmd);
    if (g_str_has_prefix(b->ctl_reply, "{\"error\""))
        el_die("%s: %s", cmd, b->ctl_reply);
    return g_steal_pointer(&b->ctl_reply);
}

static guint64
el_last_seq(Bench *b)
{
    g_autofree char *r = el_call(b, "query-hotplugd");
    const char *p = strstr(r, "\"last_seq\":");

    if (!p)
        el_die("odd query-hotplugd reply: %s", r);
    return g_ascii_strtoull(p + 11, NULL, 10);
}

static guint
el_count(const char *text, const char *what)
{
    guint n = 0;

    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static guint64 el_target;

static gboolean
el_subs_caught_up(Bench *b)
{
    for (guint i = 0; i <= b->n_subs; i++) {
        Sub *s = &b->subs[i];
        if (!s->bev || s->stalled || s->state == SUB_CUT || s->state == SUB_CLOSED)
            continue;
        if (s->state != SUB_LIVE || s->last < el_target)
            return FALSE;
    }
    return TRUE;
}

static gboolean
el_subs_live(Bench *b)
{
    for (guint i = 0; i < b->n_subs; i++)
        if (b->subs[i].state != SUB_LIVE)
            return FALSE;
    return TRUE;
}

static gboolean
el_load_idle(Bench *b)
{
    return b->load_pending == 0;
}

typedef struct {
    double cpu_s;         /* the daemon's, load and drain */
    double seconds;       /* load */
    double drain_seconds; /* until every reading subscriber had the last record */
    guint64 first_seq, last_seq;
    guint64 delivered; /* LOG events to the reading subscribers */
    guint readers;
    BenchSamples lag; /* all reading subscribers */
    double lag_p50_max, lag_p99_max;
} ElPhase;

static void
el_phase(Bench *b, char phase, gboolean with_slow, ElPhase *ph)
{
    guint64 received0[EL_MAX_SUBS];
    guint64 bytes0 = 0;
    double t0;

    b->phase = phase;
    for (guint i = 0; i < b->n_vms; i++)
        b->vm_seq[i] = 0;
    ph->first_seq = el_last_seq(b) + 1;
    ph->cpu_s = el_cpu_s(b->pid);
    for (guint i = 0; i < b->n_subs; i++) {
        received0[i] = b->subs[i].received;
        bench_samples_clear(&b->subs[i].lag);
    }
    if (with_slow) {
        b->subs[0].stalled = TRUE;
        bufferevent_disable(b->subs[0].bev, EV_READ);
        bytes0 = b->subs[1].bytes;
    }
    b->running = TRUE;
    t0 = bench_now_us();
    for (guint k = 0; k < b->inflight; k++)
        for (guint i = 0; i < b->n_vms; i++)
            el_load_issue(b, i, TRUE, b->vm_seq[i]++);
    {
        struct timeval tv = {(time_t)b->seconds,
                             (suseconds_t)((b->seconds - (time_t)b->seconds) * 1e6)};
        b->timed_out = FALSE;
        evtimer_add(b->timer, &tv);
        while (!b->timed_out) {
            event_base_loop(b->base, EVLOOP_ONCE);
            if (with_slow && b->subs[0].stalled && b->subs[1].bytes - bytes0 > b->stall_bytes) {
                /* the daemon had to cut it off by now: read what is left */
                b->subs[0].stalled = FALSE;
                bufferevent_enable(b->subs[0].bev, EV_READ);
            }
        }
    }
    b->running = FALSE;
    if (with_slow && b->subs[0].stalled) {
        /* the load ended first: read now (LOG_OVERFLOW comes only if the
         * daemon had to cut it off) */
        fprintf(stderr,
                "bench-eventlog: the others got only %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                " bytes during the stall\n",
                b->subs[1].bytes - bytes0, b->stall_bytes);
        b->subs[0].stalled = FALSE;
        bufferevent_enable(b->subs[0].bev, EV_READ);
    }
    el_run_until(b, el_load_idle, 120, "the load's last replies");
    ph->seconds = (bench_now_us() - t0) / 1e6;
    b->running = TRUE; /* lag of what is still on its way counts */
    ph->last_seq = el_last_seq(b);
    el_target = ph->last_seq;
    el_run_until(b, el_subs_caught_up, 120, "subscribers catching up");
    b->running = FALSE;
    ph->drain_seconds = (bench_now_us() - t0) / 1e6;
    ph->cpu_s = el_cpu_s(b->pid) - ph->cpu_s;
    bench_samples_init(&ph->lag, "lag");
    ph->readers = 0;
    ph->delivered = 0;
    ph->lag_p50_max = ph->lag_p99_max = 0;
    for (guint i = with_slow ? 1 : 0; i < b->n_subs; i++) {
        Sub *s = &b->subs[i];
        ph->readers++;
        ph->delivered += s->received - received0[i];
        for (size_t j = 0; j < s->lag.n; j++)
            bench_samples_add(&ph->lag, s->lag.us[j]);
        ph->lag_p50_max = MAX(ph->lag_p50_max, bench_samples_percentile(&s->lag, 50));
        ph->lag_p99_max = MAX(ph->lag_p99_max, bench_samples_percentile(&s->lag, 99));
    }
}

static void
el_phase_report(Bench *b, const char *name, ElPhase *ph)
{
    guint64 records = ph->last_seq - ph->first_seq + 1;

    printf("RESULT eventlog %s seconds=%.2f records=%" G_GUINT64_FORMAT " append_per_s=%.0f "
           "readers=%u delivered=%" G_GUINT64_FORMAT " fanout_per_s=%.0f "
           "lag_p50_ms=%.2f lag_p99_ms=%.2f lag_max_ms=%.2f worst_reader_p99_ms=%.2f "
           "daemon_cpu_s=%.2f cpu_ms_per_1000_records=%.1f\n",
           name, ph->seconds, records, records / ph->seconds, ph->readers, ph->delivered,
           ph->delivered / ph->drain_seconds, bench_samples_percentile(&ph->lag, 50) / 1000.0,
           bench_samples_percentile(&ph->lag, 99) / 1000.0,
           bench_samples_percentile(&ph->lag, 100) / 1000.0, ph->lag_p99_max / 1000.0, ph->cpu_s,
           ph->cpu_s * 1e3 / (records / 1000.0));
}

static gboolean
el_slow_closed(Bench *b)
{
    return b->subs[0].state == SUB_CLOSED;
}

static gboolean
el_resumed_caught_up(Bench *b)
{
    Sub *r = &b->subs[b->n_subs];

    return r->state == SUB_LIVE && r->last >= el_target;
}

static int
el_cmd_run(Bench *b)
{
    ElPhase a = {0}, bph = {0};
    Sub *slow, *resumed;
    guint64 errors = 0;
    int rc = 0;

    b->base = event_base_new();
    b->timer = evtimer_new(b->base, el_timeout_cb, b);
    b->vm_seq = g_new0(guint, b->n_vms);
    b->load = el_connect(b, el_load_read_cb, el_load_event_cb, b);
    b->ctl_id = 1000000000000ull;
    el_run_until(b, el_ctl_done, 30, "greeting");
    g_free(el_call(b, "qmp_capabilities"));
    for (;;) {
        g_autofree char *list = el_call(b, "vm-list");
        if (el_count(list, "\"name\":") != b->n_vms)
            el_die("hotplugd does not have %u VMs: %.300s", b->n_vms, list);
        if (el_count(list, "\"state\":\"ready\"") == b->n_vms)
            break;
        g_usleep(100000);
    }
    for (guint i = 0; i < b->n_subs; i++)
        el_sub_open(b, &b->subs[i], i, 0);
    el_run_until(b, el_subs_live, 30, "subscribing");

    el_phase(b, 'a', FALSE, &a);
    el_phase_report(b, "phase_a_all_read", &a);
    el_phase(b, 'b', TRUE, &bph);
    el_phase_report(b, "phase_b_one_stalled", &bph);

    /* the stalled one: its events up to LOG_OVERFLOW's last_seq, then the end */
    slow = &b->subs[0];
    if (slow->state == SUB_LIVE) {
        printf("RESULT eventlog slow overflow=no last_received=%" G_GUINT64_FORMAT "\n",
               slow->last);
        return 1;
    }
    el_run_until(b, el_slow_closed, 30, "the cut subscriber's end");
    printf("RESULT eventlog slow overflow=%s last_seq=%" G_GUINT64_FORMAT
           " last_received=%" G_GUINT64_FORMAT " since=%" G_GUINT64_FORMAT
           " gaps=%" G_GUINT64_FORMAT " repeats=%" G_GUINT64_FORMAT "\n",
           slow->overflow_seq ? "yes" : "no", slow->overflow_seq, slow->last, slow->since,
           slow->gaps, slow->repeats);
    if (!slow->overflow_seq || slow->last != slow->overflow_seq || slow->gaps || slow->repeats)
        rc = 1;
    /* ... resumes after it */
    resumed = &b->subs[b->n_subs];
    el_sub_open(b, resumed, b->n_subs, slow->overflow_seq);
    el_target = bph.last_seq;
    {
        double t0 = bench_now_us();
        el_run_until(b, el_resumed_caught_up, 120, "the resumed subscriber");
        printf("RESULT eventlog resumed since=%" G_GUINT64_FORMAT
               " first_expected=%" G_GUINT64_FORMAT " last=%" G_GUINT64_FORMAT
               " records=%" G_GUINT64_FORMAT " gaps=%" G_GUINT64_FORMAT
               " repeats=%" G_GUINT64_FORMAT " catch_up_s=%.2f\n",
               slow->overflow_seq, slow->overflow_seq + 1, resumed->last, resumed->received,
               resumed->gaps, resumed->repeats, (bench_now_us() - t0) / 1e6);
    }
    if (resumed->gaps || resumed->repeats || resumed->received != el_target - slow->overflow_seq)
        rc = 1;
    for (guint i = 1; i < b->n_subs; i++)
        errors += b->subs[i].gaps + b->subs[i].repeats;
    printf("RESULT eventlog readers gaps_or_repeats=%" G_GUINT64_FORMAT
           " load_cycles=%" G_GUINT64_FORMAT " load_errors=%" G_GUINT64_FORMAT "\n",
           errors, b->cycles, b->load_errors);
    if (errors || b->load_errors)
        rc = 1;
    return rc;
}

/* ---- raw: the library's event log alone ---------------------------------------- */

static int
el_cmd_raw(const char *dir, double seconds, guint batch)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(EventLog) log = event_log_open(dir, NULL, &error);
    guint64 n = 0;
    double t0, t;

    if (!log)
        el_die("%s", error->message);
    t0 = bench_now_us();
    do {
        for (guint i = 0; i < batch; i++, n++) {
            g_autoptr(JsonObject) rec = json_object_new();
            JsonObject *detail = json_object_new();
            g_autofree char *dev = g_strdup_printf("a%" G_GUINT64_FORMAT, n);

            /* shaped like the daemon's outcome record */
            json_object_set_string_member(rec, "vm", "vm17");
            json_object_set_string_member(rec, "kind", "outcome");
            json_object_set_int_member(rec, "op", (gint64)n + 1);
            json_object_set_string_member(rec, "device", dev);
            json_object_set_string_member(rec, "action", "unplug");
            json_object_set_string_member(rec, "outcome", "deleted");
            json_object_set_int_member(rec, "attempt", 1);
            json_object_set_int_member(rec, "elapsed_ms", 3);
            json_object_set_string_member(detail, "device_kind", "device");
            json_object_set_object_member(rec, "detail", detail);
            if (!event_log_append(log, rec, NULL, &error))
                el_die("%s", error->message);
        }
        if (!event_log_flush(log, &error))
            el_die("%s", error->message);
        t = bench_now_us();
    } while (t - t0 < seconds * 1e6);
    printf("RESULT eventlog raw batch=%u records=%" G_GUINT64_FORMAT
           " seconds=%.2f append_per_s=%.0f "
           "flushes_per_s=%.0f\n",
           batch, n, (t - t0) / 1e6, n / ((t - t0) / 1e6), n / batch / ((t - t0) / 1e6));
    return 0;
}

/* ---- main -------------------------------------------------------------------- */

static void
el_usage(FILE *out)
{
    fprintf(
        out,
        "usage: bench-eventlog run CONTROL_SOCKET --vms N --pid PID [options]\n"
        "       bench-eventlog raw --dir DIR [--seconds T] [--batch B]\n"
        "  --subscribers S    followers (default 16; the first one stalls in phase B)\n"
        "  --inflight K       load cycles in flight per VM (default 4)\n"
        "  --seconds T        each phase's load (run, default 5) or the raw run (default 3)\n"
        "  --stall-bytes B    phase B: the stalled follower reads again once the others got\n"
        "                     B bytes more (default 8 MiB: past the daemon's subscriber-buffer)\n"
        "  --batch B          raw: records per flush (default 1)\n");
}

static double
el_parse_num(const char *opt, const char *text, double max)
{
    char *end = NULL;
    double v = g_ascii_strtod(text, &end);

    if (!*text || *end || v < 0 || v > max) {
        fprintf(stderr, "bench-eventlog: bad value '%s' for --%s\n", text, opt);
        el_usage(stderr);
        exit(2);
    }
    return v;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"vms", required_argument, NULL, 'n'},
        {"pid", required_argument, NULL, 'p'},
        {"subscribers", required_argument, NULL, 'S'},
        {"inflight", required_argument, NULL, 'k'},
        {"seconds", required_argument, NULL, 's'},
        {"stall-bytes", required_argument, NULL, 'B'},
        {"dir", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    static Bench b = {
        .inflight = 4, .n_subs = 16, .seconds = -1, .stall_bytes = 8u << 20, .pid = -1};
    const char *dir = NULL, *cmd;
    guint batch = 1;
    int ch;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            b.n_vms = (guint)el_parse_num("vms", optarg, 100000);
            break;
        case 'p':
            b.pid = (int)el_parse_num("pid", optarg, 1e9);
            break;
        case 'S':
            b.n_subs = (guint)el_parse_num("subscribers", optarg, EL_MAX_SUBS);
            break;
        case 'k':
            b.inflight = (guint)el_parse_num("inflight", optarg, 1000);
            break;
        case 's':
            b.seconds = el_parse_num("seconds", optarg, 3600);
            break;
        case 'B':
            b.stall_bytes = (guint64)el_parse_num("stall-bytes", optarg, 1e12);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'b':
            batch = (guint)el_parse_num("batch", optarg, 1000000);
            break;
        case 'h':
            el_usage(stdout);
            return 0;
        default:
            el_usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        el_usage(stderr);
        return 2;
    }
    cmd = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (g_str_equal(cmd, "raw")) {
        if (!dir || optind != argc - 1 || batch < 1) {
            el_usage(stderr);
            return 2;
        }
        return el_cmd_raw(dir, b.seconds < 0 ? 3 : b.seconds, batch);
    }
    if (!g_str_equal(cmd, "run") || optind != argc - 2 || b.n_vms < 1 || b.n_subs < 2 ||
        b.inflight < 1 || b.pid <= 0) {
        el_usage(stderr);
        return 2;
    }
    b.socket = argv[optind + 1];
    if (b.seconds < 0)
        b.seconds = 5;
    return el_cmd_run(&b);
}
