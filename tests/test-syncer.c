/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the syncer (batches of fdatasync/fsync/write/rename run by
 * its threads off the loop, reported back into the loop). */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "syncer.h"

typedef struct {
    char *dir;
    int dir_fd;
    struct event_base *base;
    guint done;
    gboolean ok;
    char *message;
    gboolean step_done[8];
} Fixture;

static int
setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->dir = g_dir_make_tmp("test-syncer-XXXXXX", NULL);
    assert_non_null(f->dir);
    f->dir_fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->dir_fd >= 0);
    f->base = event_base_new();
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    Fixture *f = *state;
    g_autoptr(GDir) d = g_dir_open(f->dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(f->dir, name, NULL);
        g_unlink(p);
    }
    g_rmdir(f->dir);
    close(f->dir_fd);
    event_base_free(f->base);
    g_free(f->message);
    g_free(f->dir);
    g_free(f);
    return 0;
}

static void
done_cb(SyncBatch *b, const GError *error, gpointer opaque)
{
    Fixture *f = opaque;

    f->done++;
    f->ok = error == NULL;
    g_free(f->message);
    f->message = error ? g_strdup(error->message) : NULL;
    for (guint i = 0; i < G_N_ELEMENTS(f->step_done); i++)
        f->step_done[i] = sync_batch_step_done(b, i);
    event_base_loopbreak(f->base);
}

static GPtrArray *
pieces(const char *a, const char *b)
{
    GPtrArray *p = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);

    g_ptr_array_add(p, g_bytes_new(a, strlen(a)));
    g_ptr_array_add(p, g_bytes_new(b, strlen(b)));
    return p;
}

/* A write, its sync and a rename in one lane, a directory sync in the
 * other: all done, reported once, in the loop. */
static void
test_batch_runs_off_the_loop(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(Syncer) s = syncer_new(f->base, done_cb, f, &err);
    g_autofree char *content = NULL;
    g_autofree char *path = g_build_filename(f->dir, "b", NULL);
    SyncBatch *b = sync_batch_new();
    int fd = openat(f->dir_fd, "a", O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    assert_non_null(s);
    assert_true(fd >= 0);
    sync_batch_set_lane(b, 1);
    assert_true(sync_batch_add_write(b, fd, pieces("one\n", "two\n"), 0, "a", &err));
    assert_true(sync_batch_add_sync(b, fd, FALSE, "a", &err));
    assert_true(sync_batch_add_rename(b, f->dir_fd, "a", "b", "a -> b", &err));
    sync_batch_set_lane(b, 0);
    assert_true(sync_batch_add_sync(b, f->dir_fd, TRUE, "dir", &err));
    /* the batch has its own descriptors */
    close(fd);
    assert_int_equal(sync_batch_n_steps(b), 4);
    assert_false(syncer_busy(s));
    syncer_submit(s, b);
    assert_true(syncer_busy(s));
    event_base_dispatch(f->base);
    assert_int_equal(f->done, 1);
    assert_true(f->ok);
    assert_false(syncer_busy(s));
    for (guint i = 0; i < 4; i++)
        assert_true(f->step_done[i]);
    assert_true(g_file_get_contents(path, &content, NULL, NULL));
    assert_string_equal(content, "one\ntwo\n");
}

/* A failing step stops its lane and fails the batch, naming the step; an
 * optional one fails nothing. */
static void
test_failures(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    g_autoptr(Syncer) s = syncer_new(f->base, done_cb, f, &err);
    SyncBatch *b = sync_batch_new();

    assert_true(sync_batch_add_rename(b, f->dir_fd, "missing", "x", "renaming missing", &err));
    assert_true(sync_batch_add_sync(b, f->dir_fd, TRUE, "dir", &err));
    sync_batch_set_lane(b, 1);
    assert_true(sync_batch_add_sync(b, f->dir_fd, TRUE, "dir", &err));
    syncer_submit(s, b);
    event_base_dispatch(f->base);
    assert_int_equal(f->done, 1);
    assert_false(f->ok);
    assert_non_null(strstr(f->message, "renaming missing"));
    assert_false(f->step_done[0]);
    assert_false(f->step_done[1]); /* after the failure in its lane */
    assert_true(f->step_done[2]);  /* the other lane ran */

    b = sync_batch_new();
    sync_batch_set_optional(b, TRUE);
    assert_true(sync_batch_add_rename(b, f->dir_fd, "missing", "x", "optional", &err));
    sync_batch_set_optional(b, FALSE);
    sync_batch_set_lane(b, 1);
    assert_true(sync_batch_add_sync(b, f->dir_fd, TRUE, "dir", &err));
    syncer_submit(s, b);
    event_base_dispatch(f->base);
    assert_int_equal(f->done, 2);
    assert_true(f->ok);
    assert_false(f->step_done[0]);
    assert_true(f->step_done[1]);
}

/* syncer_wait blocks until the batch ran and reports it; freeing a syncer
 * with a batch in flight waits for it without reporting. */
static void
test_wait_and_free(void **state)
{
    Fixture *f = *state;
    g_autoptr(GError) err = NULL;
    Syncer *s = syncer_new(f->base, done_cb, f, &err);
    SyncBatch *b = sync_batch_new();

    assert_true(sync_batch_add_sync(b, f->dir_fd, TRUE, "dir", &err));
    syncer_submit(s, b);
    syncer_wait(s);
    assert_int_equal(f->done, 1);
    assert_true(f->ok);
    assert_false(syncer_busy(s));

    b = sync_batch_new();
    assert_true(sync_batch_add_sync(b, f->dir_fd, TRUE, "dir", &err));
    syncer_submit(s, b);
    syncer_free(s);
    assert_int_equal(f->done, 1);

    /* and inline, without a syncer */
    b = sync_batch_new();
    assert_true(sync_batch_add_rename(b, f->dir_fd, "missing", "x", "inline", &err));
    assert_false(sync_batch_run(b, &err));
    assert_non_null(strstr(err->message, "inline"));
    sync_batch_free(b);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_batch_runs_off_the_loop),
        T(test_failures),
        T(test_wait_and_free),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
