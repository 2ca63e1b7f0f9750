/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The syncer: a thread that runs a batch of fdatasync/fsync/rename steps
 * off the event loop, in order, and reports back into the loop. */
#pragma once

#include <event2/event.h>
#include <glib.h>

G_BEGIN_DECLS

#define SYNCER_ERROR (syncer_error_quark())
GQuark syncer_error_quark(void);

typedef enum {
    SYNCER_ERROR_IO, /* a step failed (message has errno text) */
} SyncerErrorCode;

/* What one flush has to make durable: steps run in the order added; the
 * first that fails stops the batch.  Descriptors are dup()ed when added,
 * so the caller may close or replace its own at once. */
typedef struct SyncBatch SyncBatch;

SyncBatch *sync_batch_new(void);
void sync_batch_free(SyncBatch *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SyncBatch, sync_batch_free)

/* fdatasync(fd) (fsync when full); what names it in an error message. */
gboolean sync_batch_add_sync(SyncBatch *b, int fd, gboolean full, const char *what, GError **error);
/* pwrite(fd, ..., off) of data's GBytes one after the other; takes data
 * (also on failure) */
gboolean sync_batch_add_write(SyncBatch *b, int fd, GPtrArray *data, guint64 off, const char *what,
                              GError **error);
/* renameat(dir_fd, from, dir_fd, to) */
gboolean sync_batch_add_rename(SyncBatch *b, int dir_fd, const char *from, const char *to,
                               const char *what, GError **error);
guint sync_batch_n_steps(SyncBatch *b);
/* Steps go to lane 0 unless set: each lane runs in its own thread, in the
 * order its steps were added, side by side with the other lanes. */
#define SYNC_LANES 2
void sync_batch_set_lane(SyncBatch *b, guint lane);
/* Steps added next may fail without failing the batch (the rest of their
 * lane does not run then). */
void sync_batch_set_optional(SyncBatch *b, gboolean optional);
/* Whether step (its index when added) succeeded once the batch ran. */
gboolean sync_batch_step_done(SyncBatch *b, guint step);
/* Runs the steps in the calling thread. */
gboolean sync_batch_run(SyncBatch *b, GError **error);

typedef struct Syncer Syncer;
/* Called in the loop when a batch ran; error NULL when all steps succeeded.
 * The batch is freed after the call. */
typedef void (*SyncerDoneFunc)(SyncBatch *b, const GError *error, gpointer opaque);

Syncer *syncer_new(struct event_base *base, SyncerDoneFunc done, gpointer opaque, GError **error);
/* Waits for a batch in flight (its done callback is not called), then ends the thread. */
void syncer_free(Syncer *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Syncer, syncer_free)
/* One batch at a time: only while !syncer_busy(). Takes b. */
void syncer_submit(Syncer *s, SyncBatch *b);
gboolean syncer_busy(Syncer *s);
/* Blocks until the batch in flight ran and calls its done callback. */
void syncer_wait(Syncer *s);
/* Loop time of the last batch, submit to done, in µs (a measuring aid). */
gint64 syncer_last_us(Syncer *s);

G_END_DECLS
