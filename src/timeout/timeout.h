/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deadlines on libevent timers.  An armed deadline is one timer in
 * libevent's heap: thousands cost nothing while idle, and a cancelled one
 * never fires. */
#pragma once

#include <event2/event.h>
#include <glib.h>

G_BEGIN_DECLS

typedef struct TimeoutDeadline TimeoutDeadline;
typedef void (*TimeoutFunc)(TimeoutDeadline *d, gpointer opaque);

TimeoutDeadline *timeout_deadline_new(struct event_base *base, TimeoutFunc fn, gpointer opaque);
void timeout_deadline_free(TimeoutDeadline *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TimeoutDeadline, timeout_deadline_free)

/* Arm (or re-arm) to fire ms milliseconds from now. */
void timeout_deadline_arm(TimeoutDeadline *d, guint64 ms);
/* Arm to fire at a g_get_monotonic_time() instant (now if past). */
void timeout_deadline_arm_at(TimeoutDeadline *d, gint64 when_us);
void timeout_deadline_cancel(TimeoutDeadline *d);
gboolean timeout_deadline_is_armed(const TimeoutDeadline *d);
/* The instant it fires (monotonic µs), or -1 when not armed. */
gint64 timeout_deadline_when(const TimeoutDeadline *d);
/* Milliseconds left (0 when due), or -1 when not armed. */
gint64 timeout_deadline_remaining_ms(const TimeoutDeadline *d);
/* How late the last firing was, in µs (for benchmarks). */
gint64 timeout_deadline_last_lateness_us(const TimeoutDeadline *d);

/* Default unplug deadlines per device class, in milliseconds. */
typedef enum {
    TIMEOUT_CLASS_PCI,
    TIMEOUT_CLASS_PCI_PSERIES,
    TIMEOUT_CLASS_CPU,
    TIMEOUT_CLASS_MEMORY,
    TIMEOUT_CLASS_PCI_NATIVE,  /* native PCIe hotplug (pciehp) */
    TIMEOUT_CLASS_COUNT,
} TimeoutClass;

typedef struct {
    guint ms[TIMEOUT_CLASS_COUNT];
} TimeoutPolicy;

/* PCI (ACPI) 5 s (libvirt's), pseries PCI 10 s, native PCIe 15 s (the
 * guest waits 5 s after the attention button, then removes the device),
 * CPU 60 s, memory 30 s. */
void timeout_policy_init(TimeoutPolicy *p);
const char *timeout_class_name(TimeoutClass c);
/* "pci", "cpu" ... -> class; FALSE when unknown. */
gboolean timeout_class_from_name(const char *name, TimeoutClass *out);

G_END_DECLS
