/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The syncer: one thread that makes a batch of writes durable (fdatasync,
 * fsync, rename) while the event loop goes on, and tells the loop through
 * a pipe when the batch is done. */
#define G_LOG_DOMAIN "syncer"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "syncer.h"

G_DEFINE_QUARK(syncer-error-quark, syncer_error)

typedef enum {
    SYNC_STEP_DATA,
    SYNC_STEP_FULL,
    SYNC_STEP_RENAME,
} SyncStepKind;

typedef struct {
    SyncStepKind kind;
    int fd; /* ours (a dup) */
    char *from, *to;
    char *what;
} SyncStep;

struct SyncBatch {
    GArray *steps; /* SyncStep */
    guint n_done;
    int errsv;
    gint64 submitted_us;
};

struct Syncer {
    struct event_base *base;
    SyncerDoneFunc done;
    gpointer opaque;
    GThread *thread;
    GMutex lock;
    GCond cond;
    SyncBatch *todo;  /* handed to the thread */
    SyncBatch *ready; /* back from it, for the loop */
    gboolean busy;
    gboolean quit;
    int pipe_rd, pipe_wr;
    struct event *ev;
    gint64 last_us;
};

static void
sync_step_clear(gpointer p)
{
    SyncStep *st = p;

    if (st->fd >= 0)
        close(st->fd);
    g_free(st->from);
    g_free(st->to);
    g_free(st->what);
}

SyncBatch *
sync_batch_new(void)
{
    SyncBatch *b = g_new0(SyncBatch, 1);

    b->steps = g_array_new(FALSE, TRUE, sizeof(SyncStep));
    g_array_set_clear_func(b->steps, sync_step_clear);
    return b;
}

void
sync_batch_free(SyncBatch *b)
{
    if (!b)
        return;
    g_array_unref(b->steps);
    g_free(b);
}

static gboolean
sync_batch_add(SyncBatch *b, SyncStepKind kind, int fd, const char *from, const char *to,
               const char *what, GError **error)
{
    SyncStep st = {kind, -1, NULL, NULL, NULL};

    st.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (st.fd < 0) {
        int errsv = errno;
        g_set_error(error, SYNCER_ERROR, SYNCER_ERROR_IO, "%s: %s", what, g_strerror(errsv));
        return FALSE;
    }
    st.from = g_strdup(from);
    st.to = g_strdup(to);
    st.what = g_strdup(what);
    g_array_append_val(b->steps, st);
    return TRUE;
}

gboolean
sync_batch_add_sync(SyncBatch *b, int fd, gboolean full, const char *what, GError **error)
{
    g_return_val_if_fail(b != NULL, FALSE);
    return sync_batch_add(b, full ? SYNC_STEP_FULL : SYNC_STEP_DATA, fd, NULL, NULL, what, error);
}

gboolean
sync_batch_add_rename(SyncBatch *b, int dir_fd, const char *from, const char *to,
                      const char *what, GError **error)
{
    g_return_val_if_fail(b != NULL, FALSE);
    return sync_batch_add(b, SYNC_STEP_RENAME, dir_fd, from, to, what, error);
}

guint
sync_batch_n_steps(SyncBatch *b)
{
    return b->steps->len;
}

guint
sync_batch_n_done(SyncBatch *b)
{
    return b->n_done;
}

/* In any thread: runs the steps, stops at the first failure. */
static void
sync_batch_exec(SyncBatch *b)
{
    b->n_done = 0;
    b->errsv = 0;
    for (guint i = 0; i < b->steps->len; i++) {
        SyncStep *st = &g_array_index(b->steps, SyncStep, i);
        int r;

        switch (st->kind) {
        case SYNC_STEP_DATA:
            r = fdatasync(st->fd);
            break;
        case SYNC_STEP_FULL:
            r = fsync(st->fd);
            break;
        default:
            r = renameat(st->fd, st->from, st->fd, st->to);
            break;
        }
        if (r < 0) {
            b->errsv = errno ? errno : EIO;
            return;
        }
        b->n_done++;
    }
}

static gboolean
sync_batch_error(SyncBatch *b, GError **error)
{
    SyncStep *st;

    if (b->n_done == b->steps->len)
        return TRUE;
    st = &g_array_index(b->steps, SyncStep, b->n_done);
    g_set_error(error, SYNCER_ERROR, SYNCER_ERROR_IO, "%s: %s", st->what, g_strerror(b->errsv));
    return FALSE;
}

gboolean
sync_batch_run(SyncBatch *b, GError **error)
{
    g_return_val_if_fail(b != NULL, FALSE);
    sync_batch_exec(b);
    return sync_batch_error(b, error);
}

static gpointer
syncer_thread(gpointer opaque)
{
    Syncer *s = opaque;

    g_mutex_lock(&s->lock);
    for (;;) {
        SyncBatch *b;
        char c = 1;

        while (!s->todo && !s->quit)
            g_cond_wait(&s->cond, &s->lock);
        if (s->quit && !s->todo)
            break;
        b = s->todo;
        s->todo = NULL;
        g_mutex_unlock(&s->lock);
        sync_batch_exec(b);
        g_mutex_lock(&s->lock);
        s->ready = b;
        g_cond_broadcast(&s->cond);
        while (write(s->pipe_wr, &c, 1) < 0 && errno == EINTR)
            ;
    }
    g_mutex_unlock(&s->lock);
    return NULL;
}

static void
syncer_pipe_cb(evutil_socket_t fd, short what, void *opaque)
{
    Syncer *s = opaque;
    g_autoptr(SyncBatch) b = NULL;
    g_autoptr(GError) error = NULL;
    char buf[16];

    while (read(s->pipe_rd, buf, sizeof buf) > 0)
        ;
    g_mutex_lock(&s->lock);
    b = g_steal_pointer(&s->ready);
    g_mutex_unlock(&s->lock);
    if (!b)
        return;
    s->busy = FALSE;
    s->last_us = g_get_monotonic_time() - b->submitted_us;
    sync_batch_error(b, &error);
    s->done(b, error, s->opaque);
}

Syncer *
syncer_new(struct event_base *base, SyncerDoneFunc done, gpointer opaque, GError **error)
{
    Syncer *s;
    int p[2];

    g_return_val_if_fail(base != NULL && done != NULL, NULL);

    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        int errsv = errno;
        g_set_error(error, SYNCER_ERROR, SYNCER_ERROR_IO, "creating the syncer's pipe: %s",
                    g_strerror(errsv));
        return NULL;
    }
    s = g_new0(Syncer, 1);
    s->base = base;
    s->done = done;
    s->opaque = opaque;
    s->pipe_rd = p[0];
    s->pipe_wr = p[1];
    g_mutex_init(&s->lock);
    g_cond_init(&s->cond);
    s->ev = event_new(base, s->pipe_rd, EV_READ | EV_PERSIST, syncer_pipe_cb, s);
    event_priority_set(s->ev, 0);
    event_add(s->ev, NULL);
    s->thread = g_thread_try_new("hotplugd-sync", syncer_thread, s, error);
    if (!s->thread) {
        syncer_free(s);
        return NULL;
    }
    return s;
}

void
syncer_free(Syncer *s)
{
    if (!s)
        return;
    if (s->thread) {
        g_mutex_lock(&s->lock);
        while (s->todo)
            g_cond_wait(&s->cond, &s->lock);
        s->quit = TRUE;
        g_cond_broadcast(&s->cond);
        g_mutex_unlock(&s->lock);
        g_thread_join(s->thread);
    }
    sync_batch_free(s->ready);
    if (s->ev)
        event_free(s->ev);
    close(s->pipe_rd);
    close(s->pipe_wr);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    g_free(s);
}

void
syncer_submit(Syncer *s, SyncBatch *b)
{
    g_return_if_fail(s != NULL && b != NULL);
    g_return_if_fail(!s->busy);

    s->busy = TRUE;
    b->submitted_us = g_get_monotonic_time();
    g_mutex_lock(&s->lock);
    s->todo = b;
    g_cond_broadcast(&s->cond);
    g_mutex_unlock(&s->lock);
}

gboolean
syncer_busy(Syncer *s)
{
    return s->busy;
}

gint64
syncer_last_us(Syncer *s)
{
    return s->last_us;
}

void
syncer_wait(Syncer *s)
{
    g_return_if_fail(s != NULL);

    if (!s->busy)
        return;
    g_mutex_lock(&s->lock);
    while (!s->ready)
        g_cond_wait(&s->cond, &s->lock);
    g_mutex_unlock(&s->lock);
    syncer_pipe_cb(s->pipe_rd, EV_READ, s);
}
