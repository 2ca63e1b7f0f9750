/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The syncer: threads that make a batch of writes durable (fdatasync,
 * fsync, rename) while the event loop goes on, one per lane (the event
 * log's syncs and the journal's run side by side), and tell the loop
 * through a pipe when the whole batch is done. */
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
    SYNC_STEP_WRITE,
} SyncStepKind;

typedef struct {
    SyncStepKind kind;
    guint lane;
    gboolean optional; /* its failure stops its lane but fails nothing */
    gboolean done;
    int fd; /* ours (a dup) */
    char *from, *to;
    char *what;
    GPtrArray *data; /* SYNC_STEP_WRITE: GBytes, one after the other from off */
    guint64 off;
} SyncStep;

struct SyncBatch {
    GArray *steps; /* SyncStep */
    guint lane;    /* of the steps added next */
    gboolean optional;
    int errsv[SYNC_LANES];
    gint64 submitted_us;
};

struct Syncer {
    struct event_base *base;
    SyncerDoneFunc done;
    gpointer opaque;
    GThread *threads[SYNC_LANES];
    GMutex lock;
    GCond cond;       /* a batch came back (syncer_wait, syncer_free) */
    guint waiting;    /* threads in g_cond_wait on cond */
    GCond lane_cond[SYNC_LANES]; /* a batch for the lane, or quit */
    SyncBatch *todo;  /* handed to the threads */
    guint64 gen[SYNC_LANES]; /* batches handed to each lane so far */
    guint running;    /* lanes of todo not finished */
    SyncBatch *ready; /* back from them, for the loop */
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
    if (st->data)
        g_ptr_array_unref(st->data);
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
    SyncStep st = {kind, b->lane, b->optional, FALSE, -1, NULL, NULL, NULL, NULL, 0};

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

gboolean
sync_batch_add_write(SyncBatch *b, int fd, GPtrArray *data, guint64 off, const char *what,
                     GError **error)
{
    g_return_val_if_fail(b != NULL && data != NULL, FALSE);
    if (!sync_batch_add(b, SYNC_STEP_WRITE, fd, NULL, NULL, what, error)) {
        g_ptr_array_unref(data);
        return FALSE;
    }
    g_array_index(b->steps, SyncStep, b->steps->len - 1).data = data;
    g_array_index(b->steps, SyncStep, b->steps->len - 1).off = off;
    return TRUE;
}

guint
sync_batch_n_steps(SyncBatch *b)
{
    return b->steps->len;
}

void
sync_batch_set_lane(SyncBatch *b, guint lane)
{
    g_return_if_fail(b != NULL && lane < SYNC_LANES);
    b->lane = lane;
}

void
sync_batch_set_optional(SyncBatch *b, gboolean optional)
{
    g_return_if_fail(b != NULL);
    b->optional = optional;
}

gboolean
sync_batch_step_done(SyncBatch *b, guint step)
{
    return step < b->steps->len && g_array_index(b->steps, SyncStep, step).done;
}

/* In any thread: runs the steps of one lane, stops at its first failure. */
static void
sync_batch_exec(SyncBatch *b, guint lane)
{
    b->errsv[lane] = 0;
    for (guint i = 0; i < b->steps->len; i++) {
        SyncStep *st = &g_array_index(b->steps, SyncStep, i);
        int r;

        if (st->lane != lane)
            continue;
        switch (st->kind) {
        case SYNC_STEP_DATA:
            r = fdatasync(st->fd);
            break;
        case SYNC_STEP_FULL:
            r = fsync(st->fd);
            break;
        case SYNC_STEP_WRITE: {
            g_autoptr(GString) buf = g_string_new(NULL);
            gsize n = 0;

            for (guint k = 0; k < st->data->len; k++) {
                gsize len = 0;
                const char *p = g_bytes_get_data(st->data->pdata[k], &len);

                g_string_append_len(buf, p, (gssize)len);
            }
            r = 0;
            while (n < buf->len) {
                ssize_t w = pwrite(st->fd, buf->str + n, buf->len - n, (off_t)(st->off + n));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    if (w == 0)
                        errno = EIO;
                    r = -1;
                    break;
                }
                n += (gsize)w;
            }
            break;
        }
        default:
            r = renameat(st->fd, st->from, st->fd, st->to);
            break;
        }
        if (r < 0) {
            b->errsv[lane] = errno ? errno : EIO;
            return;
        }
        st->done = TRUE;
    }
}

/* The first step that did not run through, if any. */
static gboolean
sync_batch_error(SyncBatch *b, GError **error)
{
    for (guint i = 0; i < b->steps->len; i++) {
        SyncStep *st = &g_array_index(b->steps, SyncStep, i);

        if (!st->done && b->errsv[st->lane] && !st->optional) {
            g_set_error(error, SYNCER_ERROR, SYNCER_ERROR_IO, "%s: %s", st->what,
                        g_strerror(b->errsv[st->lane]));
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
sync_batch_run(SyncBatch *b, GError **error)
{
    g_return_val_if_fail(b != NULL, FALSE);
    for (guint lane = 0; lane < SYNC_LANES; lane++)
        sync_batch_exec(b, lane);
    return sync_batch_error(b, error);
}

typedef struct {
    Syncer *s;
    guint lane;
} SyncerLane;

static gpointer
syncer_thread(gpointer opaque)
{
    SyncerLane *me = opaque;
    Syncer *s = me->s;
    guint64 seen = 0;

    g_mutex_lock(&s->lock);
    for (;;) {
        SyncBatch *b;
        char c = 1;

        while (s->gen[me->lane] == seen && !s->quit)
            g_cond_wait(&s->lane_cond[me->lane], &s->lock);
        if (s->gen[me->lane] == seen)
            break;
        seen = s->gen[me->lane];
        b = s->todo;
        g_mutex_unlock(&s->lock);
        sync_batch_exec(b, me->lane);
        g_mutex_lock(&s->lock);
        if (--s->running == 0) {
            s->todo = NULL;
            s->ready = b;
            if (s->waiting) /* a broadcast is a system call even to no one */
                g_cond_broadcast(&s->cond);
            /* the loop takes the lock when it reads the pipe: tell it once
             * the lock is free, or it wakes to block on it */
            g_mutex_unlock(&s->lock);
            while (write(s->pipe_wr, &c, 1) < 0 && errno == EINTR)
                ;
            g_mutex_lock(&s->lock);
        }
    }
    g_mutex_unlock(&s->lock);
    g_free(me);
    return NULL;
}

static void
syncer_pipe_cb(evutil_socket_t fd, short what, void *opaque)
{
    Syncer *s = opaque;
    g_autoptr(SyncBatch) b = NULL;
    g_autoptr(GError) error = NULL;
    char buf[16];

    /* one byte per batch and one batch at a time: a short read emptied it */
    while (read(s->pipe_rd, buf, sizeof buf) == (ssize_t)sizeof buf)
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
    for (guint lane = 0; lane < SYNC_LANES; lane++)
        g_cond_init(&s->lane_cond[lane]);
    s->ev = event_new(base, s->pipe_rd, EV_READ | EV_PERSIST, syncer_pipe_cb, s);
    event_priority_set(s->ev, 0);
    event_add(s->ev, NULL);
    for (guint lane = 0; lane < SYNC_LANES; lane++) {
        SyncerLane *me = g_new0(SyncerLane, 1);

        me->s = s;
        me->lane = lane;
        s->threads[lane] = g_thread_try_new("hotplugd-sync", syncer_thread, me, error);
        if (!s->threads[lane]) {
            g_free(me);
            syncer_free(s);
            return NULL;
        }
    }
    return s;
}

void
syncer_free(Syncer *s)
{
    if (!s)
        return;
    g_mutex_lock(&s->lock);
    s->waiting++;
    while (s->todo)
        g_cond_wait(&s->cond, &s->lock);
    s->waiting--;
    s->quit = TRUE;
    for (guint lane = 0; lane < SYNC_LANES; lane++)
        g_cond_signal(&s->lane_cond[lane]);
    g_mutex_unlock(&s->lock);
    for (guint lane = 0; lane < SYNC_LANES; lane++)
        if (s->threads[lane])
            g_thread_join(s->threads[lane]);
    sync_batch_free(s->ready);
    if (s->ev)
        event_free(s->ev);
    close(s->pipe_rd);
    close(s->pipe_wr);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->cond);
    for (guint lane = 0; lane < SYNC_LANES; lane++)
        g_cond_clear(&s->lane_cond[lane]);
    g_free(s);
}

void
syncer_submit(Syncer *s, SyncBatch *b)
{
    gboolean busy_lane[SYNC_LANES] = {FALSE};

    g_return_if_fail(s != NULL && b != NULL);
    g_return_if_fail(!s->busy);

    /* only the threads of lanes with steps wake (a batch of the log alone
     * is most of them): a second thread woken for nothing costs the first
     * a contended lock and the batch a later end */
    for (guint i = 0; i < b->steps->len; i++)
        busy_lane[g_array_index(b->steps, SyncStep, i).lane] = TRUE;
    if (!b->steps->len)
        busy_lane[0] = TRUE; /* it still comes back through a thread */
    s->busy = TRUE;
    b->submitted_us = g_get_monotonic_time();
    g_mutex_lock(&s->lock);
    s->todo = b;
    s->running = 0;
    for (guint lane = 0; lane < SYNC_LANES; lane++) {
        if (!busy_lane[lane])
            continue;
        s->running++;
        s->gen[lane]++;
    }
    g_mutex_unlock(&s->lock);
    /* signalled once the lock is free: a thread woken while the loop holds
     * it would run only to block on it again (on a shared CPU, two more
     * context switches before the sync starts).  gen, which the threads
     * wait on, was set under the lock, so no wake-up is lost */
    for (guint lane = 0; lane < SYNC_LANES; lane++)
        if (busy_lane[lane])
            g_cond_signal(&s->lane_cond[lane]);
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
    s->waiting++;
    while (!s->ready)
        g_cond_wait(&s->cond, &s->lock);
    s->waiting--;
    g_mutex_unlock(&s->lock);
    syncer_pipe_cb(s->pipe_rd, EV_READ, s);
}
