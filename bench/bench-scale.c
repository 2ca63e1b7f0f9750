/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-scale: drive hotplugd with many VMs (bench/qmp-sim) over one
 * control connection, K requests in flight per VM, and report what the
 * daemon does with them (issue 7, "Scale").
 *
 *   bench-scale run CONTROL_SOCKET --vms N --pid HOTPLUGD_PID [options]
 *       waits until the N VMs vm1..vmN are connected (idle RSS), plugs a
 *       pool of devices per VM (K device-add in flight per VM), then
 *       unplugs them all (K device-del in flight per VM) and reports
 *       operations per second, request-to-outcome latency, the daemon's
 *       CPU per 1,000 operations and RSS, the lateness of never-completing
 *       unplugs past their deadline, and whether every reply had the
 *       outcome its device id asks for.  --ops FILE writes every operation
 *       for `verify`: "OP VM DEVICE ACTION EXPECTED GOT SENT_MS REPLIED_MS
 *       ELAPSED_MS DEADLINE_LATE_US" (times from the start of the plugs).
 *   bench-scale idle CONTROL_SOCKET --vms N --pid HOTPLUGD_PID
 *       only the RSS once N VMs are connected (N may be 0).
 *   bench-scale verify --ops FILE --events FILE
 *       checks the event log (`hotplugctl --json events`, one record per
 *       line) against the operations: each has exactly one outcome record,
 *       the one its device id asks for, and nothing else has any.
 *
 * Device ids encode their fate in qmp-sim: "neverJ" never completes (the
 * deadline ends it not-deleted), "refuseJ" is refused by the guest
 * (guest-error), "dJ" is deleted after qmp-sim's --delay-ms.  Of the pool
 * of each VM, J % 10 == 0 is never, J % 10 == 5 refuse, the rest d.
 *
 * Replies are read with string search (the daemon writes compact JSON,
 * "id" last), so the client stays cheap next to the daemon on a small
 * machine; `verify` parses every record with json-glib. */
#define G_LOG_DOMAIN "bench-scale"
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "bench-stats.h"
#include "qmp-json.h"

typedef enum {
    FATE_ADDED = 'A',
    FATE_DELETED = 'D',
    FATE_GUEST_ERROR = 'G',
    FATE_NOT_DELETED = 'N',
} Fate;

typedef struct {
    guint vm;    /* index, 0-based */
    guint dev;   /* pool index */
    char action; /* 'a' add, 'd' del */
    char expect; /* Fate */
    char got;    /* Fate or '?' */
    gint64 op;   /* the daemon's op id */
    double t_send, t_reply;
    gint64 elapsed_ms, timeout_ms, deadline_late_us;
} Req;

typedef struct {
    guint next; /* next pool index to act on */
    guint inflight;
} Vm;

typedef struct {
    struct event_base *base;
    struct bufferevent *bev;
    const char *socket;
    int pid;
    guint n_vms, inflight, pool;
    double delay_ms, never_timeout_s, timeout_s;
    guint phase_timeout_s;
    Vm *vms;
    GArray *reqs;    /* Req by request id - 1 */
    guint64 next_id; /* control request ids: 1.. are reqs; others are above REQ_ID_MAX */
    char phase;      /* 'a', 'd' or 0 */
    guint pending;   /* requests of the phase not answered */
    guint left;      /* devices of the phase not yet requested */
    guint wrong, errors;
    GString *first_wrong;
    /* control (non-operation) requests */
    guint64 ctl_id;
    gboolean ctl_done;
    char *ctl_reply;
    gboolean greeted;
    gboolean failed;
    char *fail_msg;
    struct event *timer;
    double t0; /* the start of the plug phase */
} Scale;

#define CTL_ID_BASE 1000000000000ull

static void G_GNUC_NORETURN G_GNUC_PRINTF(1, 2) scale_die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench-scale: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

/* ---- the daemon's figures from /proc ------------------------------------- */

static long
scale_rss_kib(int pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents(path, &text, NULL, NULL))
        scale_die("cannot read %s", path);
    p = strstr(text, "VmRSS:");
    if (!p)
        scale_die("no VmRSS in %s", path);
    return strtol(p + 6, NULL, 10);
}

/* user + system CPU seconds of pid */
static double
scale_cpu_s(int pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *text = NULL;
    g_auto(GStrv) f = NULL;
    const char *p;

    if (!g_file_get_contents(path, &text, NULL, NULL))
        scale_die("cannot read %s", path);
    p = strrchr(text, ')');
    if (!p)
        scale_die("odd %s", path);
    f = g_strsplit(p + 2, " ", 0);
    if (g_strv_length(f) < 13)
        scale_die("odd %s", path);
    /* fields 14 and 15 of stat(5); f[0] is field 3 */
    return (double)(g_ascii_strtoull(f[11], NULL, 10) + g_ascii_strtoull(f[12], NULL, 10)) /
           (double)sysconf(_SC_CLK_TCK);
}

static double
scale_self_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* ---- the connection ----------------------------------------------------------- */

static void
scale_send(Scale *s, const char *line)
{
    bufferevent_write(s->bev, line, strlen(line));
    bufferevent_write(s->bev, "\n", 1);
}

static Fate
scale_fate_of(guint dev)
{
    if (dev % 10 == 0)
        return FATE_NOT_DELETED;
    if (dev % 10 == 5)
        return FATE_GUEST_ERROR;
    return FATE_DELETED;
}

static void
scale_dev_name(guint dev, char *out, gsize size)
{
    switch (scale_fate_of(dev)) {
    case FATE_NOT_DELETED:
        g_snprintf(out, size, "never%u", dev);
        break;
    case FATE_GUEST_ERROR:
        g_snprintf(out, size, "refuse%u", dev);
        break;
    default:
        g_snprintf(out, size, "d%u", dev);
        break;
    }
}

/* The next operation of the phase on VM vm. */
static void
scale_issue(Scale *s, guint vm)
{
    Vm *v = &s->vms[vm];
    Req r = {0};
    char dev[32], line[512];

    r.vm = vm;
    r.dev = v->next++;
    r.action = s->phase;
    r.expect = s->phase == 'a' ? FATE_ADDED : (char)scale_fate_of(r.dev);
    r.got = '?';
    r.op = -1;
    r.elapsed_ms = r.timeout_ms = -1;
    scale_dev_name(r.dev, dev, sizeof(dev));
    if (s->phase == 'a')
        g_snprintf(
            line, sizeof(line),
            "{\"execute\":\"device-add\",\"arguments\":{\"vm\":\"vm%u\",\"driver\":\"usb-kbd\","
            "\"id\":\"%s\",\"props\":{\"bus\":\"xhci.0\"}},\"id\":%" G_GUINT64_FORMAT "}",
            vm + 1, dev, s->next_id);
    else
        g_snprintf(line, sizeof(line),
                   "{\"execute\":\"device-del\",\"arguments\":{\"vm\":\"vm%u\",\"id\":\"%s\","
                   "\"timeout\":%g},\"id\":%" G_GUINT64_FORMAT "}",
                   vm + 1, dev, r.expect == FATE_NOT_DELETED ? s->never_timeout_s : s->timeout_s,
                   s->next_id);
    s->next_id++;
    r.t_send = bench_now_us();
    g_array_append_val(s->reqs, r);
    v->inflight++;
    s->pending++;
    s->left--;
    scale_send(s, line);
}

static gint64
scale_int_after(const char *line, const char *key)
{
    const char *p = strstr(line, key);

    return p ? g_ascii_strtoll(p + strlen(key), NULL, 10) : -1;
}

static char
scale_outcome(const char *line)
{
    static const struct {
        const char *text;
        char fate;
    } map[] = {
        {"\"outcome\":\"added\"", FATE_ADDED},
        {"\"outcome\":\"deleted\"", FATE_DELETED},
        {"\"outcome\":\"guest-error\"", FATE_GUEST_ERROR},
        {"\"outcome\":\"not-deleted\"", FATE_NOT_DELETED},
    };

    for (guint i = 0; i < G_N_ELEMENTS(map); i++)
        if (strstr(line, map[i].text))
            return map[i].fate;
    return '?';
}

static void scale_wrong(Scale *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
scale_wrong(Scale *s, const char *fmt, ...)
{
    va_list ap;

    s->wrong++;
    if (s->first_wrong->len)
        return;
    va_start(ap, fmt);
    g_string_append_vprintf(s->first_wrong, fmt, ap);
    va_end(ap);
}

static void
scale_handle_reply(Scale *s, char *line, guint64 id)
{
    Req *r;
    Vm *v;

    if (id >= CTL_ID_BASE) {
        if (id != s->ctl_id)
            scale_die("reply for unknown control id %" G_GUINT64_FORMAT ": %s", id, line);
        g_free(s->ctl_reply);
        s->ctl_reply = g_strdup(line);
        s->ctl_done = TRUE;
        return;
    }
    if (id == 0 || id > s->reqs->len)
        scale_die("reply for unknown id %" G_GUINT64_FORMAT ": %.300s", id, line);
    r = &g_array_index(s->reqs, Req, id - 1);
    if (r->t_reply > 0)
        scale_die("second reply for id %" G_GUINT64_FORMAT ": %.300s", id, line);
    r->t_reply = bench_now_us();
    v = &s->vms[r->vm];
    v->inflight--;
    s->pending--;
    if (g_str_has_prefix(line, "{\"error\"")) {
        s->errors++;
        scale_wrong(s, "vm%u dev %u: error reply: %.300s", r->vm + 1, r->dev, line);
    } else {
        /* {"return":{"op":N,...}} or, settled at once, {"return":{"ops":[{"op":N,...}]}} */
        r->op = scale_int_after(line, "\"op\":");
        r->elapsed_ms = scale_int_after(line, "\"elapsed_ms\":");
        r->timeout_ms = scale_int_after(line, "\"timeout_ms\":");
        r->deadline_late_us = scale_int_after(line, "\"deadline_late_us\":");
        r->got = scale_outcome(line);
        if (r->got != r->expect)
            scale_wrong(s, "vm%u dev %u: outcome %c, expected %c: %.300s", r->vm + 1, r->dev,
                        r->got, r->expect, line);
    }
    if (s->left && v->next < s->pool)
        scale_issue(s, r->vm);
}

static void
scale_read_cb(struct bufferevent *bev, void *opaque)
{
    Scale *s = opaque;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        size_t len;
        g_autofree char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        const char *p, *q;

        if (!line)
            return;
        if (!s->greeted) {
            if (!g_str_has_prefix(line, "{\"QMP\""))
                scale_die("no greeting: %s", line);
            s->greeted = TRUE;
            s->ctl_done = TRUE;
            continue;
        }
        if (g_str_has_prefix(line, "{\"event\""))
            continue; /* ATTEMPT and ATTEMPT_RESULT of our requests */
        /* "id" is the last member */
        for (p = NULL, q = line; (q = strstr(q, ",\"id\":")); q++)
            p = q;
        if (!p)
            scale_die("line without id: %.300s", line);
        scale_handle_reply(s, line, g_ascii_strtoull(p + 6, NULL, 10));
    }
}

static void
scale_event_cb(struct bufferevent *bev, short what, void *opaque)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        scale_die("hotplugd closed the control connection");
}

static void
scale_connect(Scale *s)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(s->socket) >= sizeof(sun.sun_path))
        scale_die("socket path too long");
    strcpy(sun.sun_path, s->socket);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        scale_die("cannot connect to %s: %s", s->socket, g_strerror(errno));
    evutil_make_socket_nonblocking(fd);
    s->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(s->bev, scale_read_cb, NULL, scale_event_cb, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
scale_timeout_cb(evutil_socket_t fd, short what, void *opaque)
{
    Scale *s = opaque;

    s->failed = TRUE;
}

/* Run the loop until *flag (or the phase timeout). */
static void
scale_run_until(Scale *s, const gboolean *flag, const char *what)
{
    struct timeval tv = {s->phase_timeout_s, 0};

    s->failed = FALSE;
    evtimer_add(s->timer, &tv);
    while (!*flag && !s->failed)
        event_base_loop(s->base, EVLOOP_ONCE);
    evtimer_del(s->timer);
    if (!*flag)
        scale_die("%s: not done within %u s", what, s->phase_timeout_s);
}

/* A control request; its reply (a new string) */
static char *
scale_call(Scale *s, const char *cmd, const char *args)
{
    g_autofree char *line = NULL;

    s->ctl_id++;
    s->ctl_done = FALSE;
    line =
        args ? g_strdup_printf("{\"execute\":\"%s\",\"arguments\":%s,\"id\":%" G_GUINT64_FORMAT "}",
                               cmd, args, s->ctl_id)
             : g_strdup_printf("{\"execute\":\"%s\",\"id\":%" G_GUINT64_FORMAT "}", cmd, s->ctl_id);
    scale_send(s, line);
    scale_run_until(s, &s->ctl_done, cmd);
    if (g_str_has_prefix(s->ctl_reply, "{\"error\""))
        scale_die("%s refused: %s", cmd, s->ctl_reply);
    return g_steal_pointer(&s->ctl_reply);
}

static guint
scale_count(const char *text, const char *what)
{
    guint n = 0;

    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* Until every VM is connected. */
static void
scale_wait_ready(Scale *s)
{
    double until = bench_now_us() + s->phase_timeout_s * 1e6;

    for (;;) {
        g_autofree char *list = scale_call(s, "vm-list", NULL);
        guint n = scale_count(list, "\"name\":"), ready = scale_count(list, "\"state\":\"ready\"");

        if (n != s->n_vms)
            scale_die("hotplugd has %u VMs, expected %u", n, s->n_vms);
        if (ready == n)
            return;
        if (bench_now_us() > until)
            scale_die("%u of %u VMs ready after %u s", ready, n, s->phase_timeout_s);
        g_usleep(100000);
    }
}

static void
scale_open(Scale *s)
{
    s->base = event_base_new();
    s->timer = evtimer_new(s->base, scale_timeout_cb, s);
    scale_connect(s);
    s->ctl_id = CTL_ID_BASE;
    s->ctl_done = FALSE;
    scale_run_until(s, &s->ctl_done, "greeting");
    g_free(scale_call(s, "qmp_capabilities", NULL));
    scale_wait_ready(s);
}

/* ---- phases --------------------------------------------------------------------- */

typedef struct {
    double seconds, ops_s, cpu_s, cpu_per_1000, client_cpu_s;
    guint first, n; /* requests [first, first + n) */
} Phase;

static gboolean
scale_phase_done(Scale *s)
{
    return s->pending == 0 && s->left == 0;
}

static void
scale_phase(Scale *s, char action, Phase *ph)
{
    double t0, cpu0, self0;
    gboolean done = FALSE;

    for (guint i = 0; i < s->n_vms; i++)
        s->vms[i].next = 0;
    s->phase = action;
    s->left = s->n_vms * s->pool;
    ph->first = s->reqs->len;
    cpu0 = scale_cpu_s(s->pid);
    self0 = scale_self_cpu_s();
    t0 = bench_now_us();
    for (guint k = 0; k < s->inflight; k++)
        for (guint i = 0; i < s->n_vms; i++)
            if (s->vms[i].next < s->pool)
                scale_issue(s, i);
    {
        struct timeval tv = {s->phase_timeout_s, 0};
        s->failed = FALSE;
        evtimer_add(s->timer, &tv);
        while (!(done = scale_phase_done(s)) && !s->failed)
            event_base_loop(s->base, EVLOOP_ONCE);
        evtimer_del(s->timer);
    }
    if (!done)
        scale_die("%s phase: %u replies missing after %u s", action == 'a' ? "plug" : "unplug",
                  s->pending + s->left, s->phase_timeout_s);
    ph->n = s->reqs->len - ph->first;
    ph->seconds = (bench_now_us() - t0) / 1e6;
    ph->ops_s = ph->n / ph->seconds;
    ph->cpu_s = scale_cpu_s(s->pid) - cpu0;
    ph->cpu_per_1000 = ph->cpu_s / (ph->n / 1000.0);
    ph->client_cpu_s = scale_self_cpu_s() - self0;
    s->phase = 0;
}

static void
scale_write_ops(Scale *s, const char *path)
{
    g_autoptr(GString) out = g_string_new(NULL);
    g_autoptr(GError) error = NULL;

    for (guint i = 0; i < s->reqs->len; i++) {
        Req *r = &g_array_index(s->reqs, Req, i);
        char dev[32];

        scale_dev_name(r->dev, dev, sizeof(dev));
        g_string_append_printf(out,
                               "%" G_GINT64_FORMAT " vm%u %s %s %c %c %.3f %.3f %" G_GINT64_FORMAT
                               " %" G_GINT64_FORMAT "\n",
                               r->op, r->vm + 1, dev, r->action == 'a' ? "plug" : "unplug",
                               r->expect, r->got, (r->t_send - s->t0) / 1000.0,
                               (r->t_reply - s->t0) / 1000.0, r->elapsed_ms, r->deadline_late_us);
    }
    if (!g_file_set_contents(path, out->str, (gssize)out->len, &error))
        scale_die("%s", error->message);
}

static void
scale_report_latency(const char *label, BenchSamples *b, double minus_us)
{
    printf("RESULT scale %s n=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", label, b->n,
           (bench_samples_percentile(b, 50) - minus_us) / 1000.0,
           (bench_samples_percentile(b, 99) - minus_us) / 1000.0,
           (bench_samples_percentile(b, 100) - minus_us) / 1000.0);
}

static int
scale_cmd_run(Scale *s, const char *ops_path)
{
    Phase plug = {0}, unplug = {0};
    long rss_idle, rss_loaded, rss_after;
    BenchSamples lat_add, lat_del, lat_ge, late_deadline, late_outcome;
    guint n_never = 0;

    scale_open(s);
    g_usleep(500000);
    rss_idle = scale_rss_kib(s->pid);
    printf("RESULT scale idle vms=%u rss_kib=%ld\n", s->n_vms, rss_idle);
    fflush(stdout);

    s->vms = g_new0(Vm, s->n_vms);
    s->reqs = g_array_sized_new(FALSE, TRUE, sizeof(Req), s->n_vms * s->pool * 2);
    s->next_id = 1;
    s->first_wrong = g_string_new(NULL);
    s->t0 = bench_now_us();

    scale_phase(s, 'a', &plug);
    rss_loaded = scale_rss_kib(s->pid);
    printf("RESULT scale plug ops=%u seconds=%.2f ops_per_s=%.0f cpu_s=%.2f "
           "cpu_s_per_1000=%.3f client_cpu_s=%.2f rss_kib=%ld\n",
           plug.n, plug.seconds, plug.ops_s, plug.cpu_s, plug.cpu_per_1000, plug.client_cpu_s,
           rss_loaded);
    fflush(stdout);
    scale_phase(s, 'd', &unplug);
    rss_after = scale_rss_kib(s->pid);
    printf("RESULT scale unplug ops=%u seconds=%.2f ops_per_s=%.0f cpu_s=%.2f "
           "cpu_s_per_1000=%.3f client_cpu_s=%.2f rss_kib=%ld\n",
           unplug.n, unplug.seconds, unplug.ops_s, unplug.cpu_s, unplug.cpu_per_1000,
           unplug.client_cpu_s, rss_after);

    bench_samples_init(&lat_add, "add");
    bench_samples_init(&lat_del, "deleted");
    bench_samples_init(&lat_ge, "guest-error");
    bench_samples_init(&late_deadline, "late_deadline");
    bench_samples_init(&late_outcome, "late_outcome");
    for (guint i = 0; i < s->reqs->len; i++) {
        Req *r = &g_array_index(s->reqs, Req, i);
        double us = r->t_reply - r->t_send;

        if (r->action == 'a') {
            bench_samples_add(&lat_add, us);
            continue;
        }
        if (r->expect == FATE_DELETED)
            bench_samples_add(&lat_del, us);
        else if (r->expect == FATE_GUEST_ERROR)
            bench_samples_add(&lat_ge, us);
        else if (r->got == FATE_NOT_DELETED) {
            n_never++;
            /* the daemon's own measure of its timer (0 when not late);
             * the outcome also waits for the confirming qom-list, and
             * elapsed_ms counts from the request, before device_del's
             * reply armed the deadline */
            bench_samples_add(&late_deadline, (double)MAX(r->deadline_late_us, 0));
            bench_samples_add(&late_outcome, (double)(r->elapsed_ms - r->timeout_ms) * 1000.0);
        }
    }
    /* request -> outcome at the client, less what the simulated guest takes */
    scale_report_latency("latency_add", &lat_add, 0);
    scale_report_latency("latency_deleted_minus_delay", &lat_del, s->delay_ms * 1000.0);
    scale_report_latency("latency_guest_error_minus_delay", &lat_ge, s->delay_ms * 1000.0);
    /* never-completing unplugs: how late the deadline fired, and how far
     * past the deadline the outcome came */
    scale_report_latency("lateness_deadline", &late_deadline, 0);
    scale_report_latency("lateness_outcome", &late_outcome, 0);
    printf("RESULT scale outcomes total=%u wrong=%u error_replies=%u\n", s->reqs->len, s->wrong,
           s->errors);
    if (s->wrong)
        printf("first wrong: %s\n", s->first_wrong->str);
    if (ops_path)
        scale_write_ops(s, ops_path);
    bench_samples_clear(&lat_add);
    bench_samples_clear(&lat_del);
    bench_samples_clear(&lat_ge);
    bench_samples_clear(&late_deadline);
    bench_samples_clear(&late_outcome);
    return s->wrong ? 1 : 0;
}

static int
scale_cmd_idle(Scale *s)
{
    scale_open(s);
    g_usleep(500000);
    printf("RESULT scale idle vms=%u rss_kib=%ld\n", s->n_vms, scale_rss_kib(s->pid));
    return 0;
}

/* ---- verify: the event log against the operations -------------------------------- */

typedef struct {
    char *vm, *device, *action;
    char expect;
    guint outcomes;
    char got;
} VerifyOp;

static void
verify_op_free(VerifyOp *v)
{
    g_free(v->vm);
    g_free(v->device);
    g_free(v->action);
    g_free(v);
}

static char
verify_fate(const char *outcome)
{
    if (!outcome)
        return '?';
    if (g_str_equal(outcome, "added"))
        return FATE_ADDED;
    if (g_str_equal(outcome, "deleted"))
        return FATE_DELETED;
    if (g_str_equal(outcome, "guest-error"))
        return FATE_GUEST_ERROR;
    if (g_str_equal(outcome, "not-deleted"))
        return FATE_NOT_DELETED;
    return '!';
}

static int
scale_cmd_verify(const char *ops_path, const char *events_path)
{
    g_autoptr(GHashTable) ops =
        g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, (GDestroyNotify)verify_op_free);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    guint64 records = 0, outcome_records = 0, prev_seq = 0, seq_gaps = 0, stray = 0, bad = 0;
    guint missing = 0, repeated = 0, wrong = 0;
    GHashTableIter it;
    gpointer value;

    if (!g_file_get_contents(ops_path, &text, NULL, &error))
        scale_die("%s", error->message);
    lines = g_strsplit(text, "\n", 0);
    for (guint i = 0; lines[i]; i++) {
        g_auto(GStrv) f6 = NULL;
        VerifyOp *v;
        gint64 *key;

        if (!*lines[i])
            continue;
        f6 = g_strsplit(lines[i], " ", 0);
        if (g_strv_length(f6) < 6)
            scale_die("%s: odd line %s", ops_path, lines[i]);
        v = g_new0(VerifyOp, 1);
        v->vm = g_strdup(f6[1]);
        v->device = g_strdup(f6[2]);
        v->action = g_strdup(f6[3]);
        v->expect = f6[4][0];
        key = g_new(gint64, 1);
        *key = g_ascii_strtoll(f6[0], NULL, 10);
        if (*key < 1 || g_hash_table_contains(ops, key))
            scale_die("%s: op id %s missing or repeated", ops_path, f6[0]);
        g_hash_table_insert(ops, key, v);
    }

    f = fopen(events_path, "r");
    if (!f)
        scale_die("cannot open %s: %s", events_path, g_strerror(errno));
    while (getline(&line, &cap, f) > 0) {
        JsonObject *rec;
        gint64 seq = 0, op = 0;
        const char *kind;
        VerifyOp *v;

        if (!json_parser_load_from_data(parser, line, -1, &error))
            scale_die("%s: %s", events_path, error->message);
        rec = qmp_json_node_object(json_parser_get_root(parser));
        if (!rec || !qmp_json_get_int(rec, "seq", &seq))
            scale_die("%s: not a record: %s", events_path, line);
        records++;
        if (prev_seq && (guint64)seq != prev_seq + 1)
            seq_gaps++;
        prev_seq = (guint64)seq;
        kind = qmp_json_get_string(rec, "kind");
        if (g_strcmp0(kind, "outcome") != 0)
            continue;
        outcome_records++;
        if (!qmp_json_get_int(rec, "op", &op) || !(v = g_hash_table_lookup(ops, &op))) {
            stray++;
            continue;
        }
        if (g_strcmp0(qmp_json_get_string(rec, "vm"), v->vm) != 0 ||
            g_strcmp0(qmp_json_get_string(rec, "device"), v->device) != 0 ||
            g_strcmp0(qmp_json_get_string(rec, "action"), v->action) != 0) {
            if (bad++ == 0)
                fprintf(stderr, "bench-scale: record does not match its op: %s", line);
        }
        v->outcomes++;
        v->got = verify_fate(qmp_json_get_string(rec, "outcome"));
    }
    free(line);
    fclose(f);

    g_hash_table_iter_init(&it, ops);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        VerifyOp *v = value;
        if (v->outcomes == 0)
            missing++;
        else if (v->outcomes > 1)
            repeated++;
        else if (v->got != v->expect)
            wrong++;
    }
    printf("RESULT scale eventlog records=%" G_GUINT64_FORMAT " seq_gaps=%" G_GUINT64_FORMAT
           " outcome_records=%" G_GUINT64_FORMAT " ops=%u missing=%u repeated=%u wrong=%u "
           "mismatched=%" G_GUINT64_FORMAT " stray=%" G_GUINT64_FORMAT "\n",
           records, seq_gaps, outcome_records, g_hash_table_size(ops), missing, repeated, wrong,
           bad, stray);
    return missing || repeated || wrong || bad || stray || seq_gaps ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------------- */

static void
scale_usage(FILE *out)
{
    fprintf(out,
            "usage: bench-scale run CONTROL_SOCKET --vms N --pid PID [options]\n"
            "       bench-scale idle CONTROL_SOCKET --vms N --pid PID\n"
            "       bench-scale verify --ops FILE --events FILE\n"
            "  --vms N            VMs vm1..vmN registered with the daemon\n"
            "  --pid PID          hotplugd's pid (for /proc/PID: RSS and CPU)\n"
            "  --inflight K       requests in flight per VM (default 10)\n"
            "  --pool P           devices per VM: P plugs then P unplugs (default 10)\n"
            "  --delay-ms D       qmp-sim's unplug delay, subtracted from latencies (default 0)\n"
            "  --never-timeout S  deadline of never-completing unplugs, seconds (default 0.5)\n"
            "  --timeout S        deadline of the others (default 30)\n"
            "  --phase-timeout S  give up a phase after S seconds (default 600)\n"
            "  --ops FILE         write every operation (for verify)\n"
            "  --events FILE      verify: the event log, one JSON record per line\n");
}

static double
scale_parse_num(const char *opt, const char *text, double max)
{
    char *end = NULL;
    double v = g_ascii_strtod(text, &end);

    if (!*text || *end || v < 0 || v > max) {
        fprintf(stderr, "bench-scale: bad value '%s' for --%s\n", text, opt);
        scale_usage(stderr);
        exit(2);
    }
    return v;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"vms", required_argument, NULL, 'n'},      {"pid", required_argument, NULL, 'p'},
        {"inflight", required_argument, NULL, 'k'}, {"pool", required_argument, NULL, 'P'},
        {"delay-ms", required_argument, NULL, 'D'}, {"never-timeout", required_argument, NULL, 'N'},
        {"timeout", required_argument, NULL, 't'},  {"phase-timeout", required_argument, NULL, 'T'},
        {"ops", required_argument, NULL, 'o'},      {"events", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},           {0},
    };
    Scale s = {.inflight = 10,
               .pool = 10,
               .never_timeout_s = 0.5,
               .timeout_s = 30,
               .phase_timeout_s = 600,
               .pid = -1,
               .n_vms = G_MAXUINT};
    const char *ops_path = NULL, *events_path = NULL, *cmd;
    int ch;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            s.n_vms = (guint)scale_parse_num("vms", optarg, 100000);
            break;
        case 'p':
            s.pid = (int)scale_parse_num("pid", optarg, 1e9);
            break;
        case 'k':
            s.inflight = (guint)scale_parse_num("inflight", optarg, 1000);
            break;
        case 'P':
            s.pool = (guint)scale_parse_num("pool", optarg, 100000);
            break;
        case 'D':
            s.delay_ms = scale_parse_num("delay-ms", optarg, 3600000);
            break;
        case 'N':
            s.never_timeout_s = scale_parse_num("never-timeout", optarg, 3600);
            break;
        case 't':
            s.timeout_s = scale_parse_num("timeout", optarg, 3600);
            break;
        case 'T':
            s.phase_timeout_s = (guint)scale_parse_num("phase-timeout", optarg, 86400);
            break;
        case 'o':
            ops_path = optarg;
            break;
        case 'e':
            events_path = optarg;
            break;
        case 'h':
            scale_usage(stdout);
            return 0;
        default:
            scale_usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        scale_usage(stderr);
        return 2;
    }
    cmd = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (g_str_equal(cmd, "verify")) {
        if (optind != argc - 1 || !ops_path || !events_path) {
            scale_usage(stderr);
            return 2;
        }
        return scale_cmd_verify(ops_path, events_path);
    }
    if ((!g_str_equal(cmd, "run") && !g_str_equal(cmd, "idle")) || optind != argc - 2 ||
        s.n_vms == G_MAXUINT || s.pid <= 0 || s.inflight < 1) {
        scale_usage(stderr);
        return 2;
    }
    s.socket = argv[optind + 1];
    if (g_str_equal(cmd, "idle"))
        return scale_cmd_idle(&s);
    return scale_cmd_run(&s, ops_path);
}
