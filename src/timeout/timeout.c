/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deadlines on libevent timers, and the default timeout of each class of
 * device. */
#define G_LOG_DOMAIN "timeout"
#include "config.h"

#include "timeout.h"

struct TimeoutDeadline {
    struct event *ev;
    TimeoutFunc fn;
    gpointer opaque;
    gint64 when_us;  /* -1 when not armed */
    gint64 lateness_us;
};

static void
timeout_deadline_fire_cb(evutil_socket_t fd, short what, void *opaque)
{
    TimeoutDeadline *d = opaque;
    gint64 early = d->when_us - g_get_monotonic_time();

    /* libevent 2.1 times with CLOCK_MONOTONIC_COARSE (4 ms ticks here) and
     * can wake a few ms early: never fire before the instant asked for */
    if (early > 0) {
        struct timeval tv = {early / G_USEC_PER_SEC, early % G_USEC_PER_SEC};
        evtimer_add(d->ev, &tv);
        return;
    }
    d->lateness_us = MAX(0, g_get_monotonic_time() - d->when_us);
    d->when_us = -1;
    d->fn(d, d->opaque);
}

TimeoutDeadline *
timeout_deadline_new(struct event_base *base, TimeoutFunc fn, gpointer opaque)
{
    TimeoutDeadline *d = g_new0(TimeoutDeadline, 1);

    d->ev = evtimer_new(base, timeout_deadline_fire_cb, d);
    /* on a base with priorities (hotplugd's), a deadline that is due runs
     * before the I/O that is ready in the same loop turn */
    event_priority_set(d->ev, 0);
    d->fn = fn;
    d->opaque = opaque;
    d->when_us = -1;
    return d;
}

void
timeout_deadline_free(TimeoutDeadline *d)
{
    if (!d)
        return;
    event_free(d->ev);
    g_free(d);
}

void
timeout_deadline_arm_at(TimeoutDeadline *d, gint64 when_us)
{
    gint64 delta = MAX(0, when_us - g_get_monotonic_time());
    struct timeval tv = {delta / G_USEC_PER_SEC, delta % G_USEC_PER_SEC};

    d->when_us = when_us;
    evtimer_add(d->ev, &tv);
}

void
timeout_deadline_arm(TimeoutDeadline *d, guint64 ms)
{
    timeout_deadline_arm_at(d, g_get_monotonic_time() + (gint64)ms * 1000);
}

void
timeout_deadline_cancel(TimeoutDeadline *d)
{
    evtimer_del(d->ev);
    d->when_us = -1;
}

gboolean
timeout_deadline_is_armed(const TimeoutDeadline *d)
{
    return d->when_us >= 0;
}

gint64
timeout_deadline_when(const TimeoutDeadline *d)
{
    return d->when_us;
}

gint64
timeout_deadline_remaining_ms(const TimeoutDeadline *d)
{
    if (d->when_us < 0)
        return -1;
    return MAX(0, (d->when_us - g_get_monotonic_time() + 999) / 1000);
}

gint64
timeout_deadline_last_lateness_us(const TimeoutDeadline *d)
{
    return d->lateness_us;
}

static const char *const timeout_class_names[TIMEOUT_CLASS_COUNT] = {
    [TIMEOUT_CLASS_PCI] = "pci",
    [TIMEOUT_CLASS_PCI_PSERIES] = "pci-pseries",
    [TIMEOUT_CLASS_CPU] = "cpu",
    [TIMEOUT_CLASS_MEMORY] = "memory",
    [TIMEOUT_CLASS_PCI_NATIVE] = "pci-native",
};

void
timeout_policy_init(TimeoutPolicy *p)
{
    p->ms[TIMEOUT_CLASS_PCI] = 5000;
    p->ms[TIMEOUT_CLASS_PCI_PSERIES] = 10000;
    /* a TCG guest took up to 23 s to eject a vCPU: 2.5x that */
    p->ms[TIMEOUT_CLASS_CPU] = 60000;
    p->ms[TIMEOUT_CLASS_MEMORY] = 30000;
    /* pciehp: 5 s attention-button wait, removal at 6.1-6.4 s under TCG */
    p->ms[TIMEOUT_CLASS_PCI_NATIVE] = 15000;
}

const char *
timeout_class_name(TimeoutClass c)
{
    return c < TIMEOUT_CLASS_COUNT ? timeout_class_names[c] : "unknown";
}

gboolean
timeout_class_from_name(const char *name, TimeoutClass *out)
{
    for (guint i = 0; i < TIMEOUT_CLASS_COUNT; i++) {
        if (g_str_equal(name, timeout_class_names[i])) {
            *out = i;
            return TRUE;
        }
    }
    return FALSE;
}
