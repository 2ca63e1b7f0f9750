/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The in-flight operations journal: an append-only file of JSON lines,
 * replayed at start and compacted as it grows. */
#define G_LOG_DOMAIN "journal"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "syncer.h"
#include "qmp-json.h"

G_DEFINE_QUARK(journal-error-quark, journal_error)

struct Journal {
    char *path;
    char *tmp_path;
    char *name;     /* the file, relative to dir_fd */
    char *tmp_name;
    gboolean stale;   /* a write failed: the file is behind the open records */
    char *dir;
    int fd;
    int dir_fd;
    guint64 size;     /* bytes of whole lines */
    guint n_lines;    /* lines in the file */
    guint compact_at; /* after a failed compaction: not again before this many lines */
    guint64 max_op;
    GTree *open;        /* guint64 *op -> JsonObject (our own copy) */
    gboolean dirty;     /* written since the last fdatasync */
    gboolean urgent;    /* ...and not only removals of logged outcomes */
    gboolean dir_dirty; /* the directory entry may not be durable yet */
    gboolean tail_bad;  /* a failed write may have left bytes past size */
    GHashTable *lines;  /* guint64 *op -> GBytes: the put line it was last written with */
    /* compaction through a syncer (journal_set_deferred_compaction) */
    gboolean deferred;    /* compact in journal_sync_prepare, not in put/remove */
    gboolean want_compact;
    int cfd;              /* the compacted file while its rename is in flight, or -1 */
    guint64 csize;
    guint clines;
    gboolean cbad;        /* a write to cfd failed: the compaction is dropped */
    guint rename_step;    /* the rename's index in the batch in flight */
};

static gboolean journal_set_errno(GError **error, int errsv, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static gboolean
journal_set_errno(GError **error, int errsv, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, JOURNAL_ERROR, JOURNAL_ERROR_IO, "%s: %s", what, g_strerror(errsv));
    return FALSE;
}

static gint
journal_op_cmp(gconstpointer a, gconstpointer b, gpointer unused)
{
    guint64 x = *(const guint64 *)a;
    guint64 y = *(const guint64 *)b;

    return x < y ? -1 : x > y;
}

static guint64 *
journal_op_key(guint64 op)
{
    guint64 *key = g_new(guint64, 1);

    *key = op;
    return key;
}

static JsonObject *
journal_object_copy(JsonObject *obj)
{
    g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);
    g_autoptr(JsonNode) copy = qmp_json_deep_copy(node);

    return json_object_ref(json_node_get_object(copy));
}

/* obj as one compact line, "\n" included. */
static void
journal_line(JsonObject *obj, GString *out)
{
    qmp_json_write_object(out, obj);
    g_string_append_c(out, '\n');
}

/* An open op's record: NULL when only its line is kept (journal_put);
 * the object when it was read back at start. */
static void
journal_record_unref(gpointer rec)
{
    if (rec)
        json_object_unref(rec);
}

static gboolean
journal_pwrite_all(int fd, const char *buf, gsize len, guint64 off, gsize *done, int *errsv)
{
    gsize n = 0;

    while (n < len) {
        ssize_t r = pwrite(fd, buf + n, len - n, (off_t)(off + n));

        if (r < 0) {
            if (errno == EINTR)
                continue;
            *errsv = errno;
            *done = n;
            return FALSE;
        }
        if (r == 0) {
            *errsv = EIO;
            *done = n;
            return FALSE;
        }
        n += (gsize)r;
    }
    *done = n;
    return TRUE;
}

/* Appends one line; on failure the file is as before (or marked for repair).
 * While a compaction's rename is in flight the line goes to both files. */
static gboolean
journal_write_text(Journal *j, const char *text, gsize len, gsize *done, GError **error)
{
    int errsv = 0;

    *done = 0;
    if (j->cfd >= 0 && !j->cbad) {
        if (!journal_pwrite_all(j->cfd, text, len, j->csize, done, &errsv))
            j->cbad = TRUE;
        j->csize += len;
        j->clines++;
    }
    if (j->tail_bad) {
        if (ftruncate(j->fd, (off_t)j->size) < 0)
            return journal_set_errno(error, errno, "%s: repairing", j->path);
        j->tail_bad = FALSE;
    }
    if (!journal_pwrite_all(j->fd, text, len, j->size, done, &errsv)) {
        if (*done > 0 && ftruncate(j->fd, (off_t)j->size) < 0)
            j->tail_bad = TRUE;
        return journal_set_errno(error, errsv, "%s: writing", j->path);
    }
    j->size += len;
    j->n_lines++;
    j->dirty = TRUE;
    j->urgent = TRUE;
    return TRUE;
}

static gboolean
journal_write_line(Journal *j, JsonObject *obj, GError **error)
{
    g_autoptr(GString) line = g_string_new(NULL);
    gsize done = 0;

    journal_line(obj, line);
    return journal_write_text(j, line->str, line->len, &done, error);
}

static gboolean
journal_compact_add_cb(gpointer key, gpointer value, gpointer opaque)
{
    gpointer *ctx = opaque;
    Journal *j = ctx[0];
    GBytes *cached = g_hash_table_lookup(j->lines, key);

    if (!cached) {
        /* read back at start: its line once, then kept */
        g_autoptr(JsonObject) put = json_object_new();
        GString *line = g_string_new(NULL);

        json_object_set_object_member(put, "put", json_object_ref(value));
        journal_line(put, line);
        cached = g_string_free_to_bytes(line);
        g_hash_table_replace(j->lines, journal_op_key(*(guint64 *)key), cached);
    }
    /* the line it was written with, shared, not JSON again */
    g_ptr_array_add(ctx[1], g_bytes_ref(cached));
    *(guint64 *)ctx[2] += g_bytes_get_size(cached);
    return FALSE;
}

/* max_op and the open records, as the compacted file holds them: lines
 * (GBytes) to write one after the other; *len gets their total. */
static GPtrArray *
journal_compact_content(Journal *j, guint64 *len)
{
    GPtrArray *pieces = g_ptr_array_new_full((guint)g_tree_nnodes(j->open) + 1,
                                             (GDestroyNotify)g_bytes_unref);
    g_autoptr(JsonObject) head = json_object_new();
    GString *line = g_string_new(NULL);
    gpointer ctx[3] = {j, pieces, len};

    json_object_set_int_member(head, "max_op", (gint64)j->max_op);
    journal_line(head, line);
    *len = line->len;
    g_ptr_array_add(pieces, g_string_free_to_bytes(line));
    g_tree_foreach(j->open, journal_compact_add_cb, ctx);
    return pieces;
}

/* Rewrites the file with only max_op and the open records. */
static gboolean
journal_compact(Journal *j, GError **error)
{
    g_autoptr(GString) buf = g_string_new(NULL);
    gsize done = 0;
    int errsv = 0;
    int fd;

    {
        guint64 len = 0;
        g_autoptr(GPtrArray) pieces = journal_compact_content(j, &len);

        for (guint i = 0; i < pieces->len; i++) {
            gsize n = 0;
            const char *p = g_bytes_get_data(pieces->pdata[i], &n);

            g_string_append_len(buf, p, (gssize)n);
        }
    }

    fd = openat(j->dir_fd, j->tmp_name, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                0600);
    if (fd < 0)
        return journal_set_errno(error, errno, "creating %s", j->tmp_path);
    if (!journal_pwrite_all(fd, buf->str, buf->len, 0, &done, &errsv) || fdatasync(fd) < 0 ||
        renameat(j->dir_fd, j->tmp_name, j->dir_fd, j->name) < 0) {
        if (errsv == 0)
            errsv = errno;
        close(fd);
        unlinkat(j->dir_fd, j->tmp_name, 0);
        return journal_set_errno(error, errsv, "compacting into %s", j->tmp_path);
    }
    /* The new file is the journal now, whatever happens next. */
    close(j->fd);
    j->fd = fd;
    j->size = buf->len;
    j->n_lines = 1 + (guint)g_tree_nnodes(j->open);
    j->dirty = FALSE;
    j->urgent = FALSE;
    j->tail_bad = FALSE;
    j->compact_at = 0;
    j->dir_dirty = TRUE;
    if (fsync(j->dir_fd) < 0)
        return journal_set_errno(error, errno, "syncing the directory of %s", j->path);
    j->dir_dirty = FALSE;
    g_debug("%s: compacted to %u lines", j->path, j->n_lines);
    return TRUE;
}

static void
journal_maybe_compact(Journal *j)
{
    g_autoptr(GError) err = NULL;
    guint n_open = (guint)g_tree_nnodes(j->open);

    if (j->n_lines <= JOURNAL_COMPACT_MIN_LINES || j->n_lines <= JOURNAL_COMPACT_RATIO * n_open ||
        j->n_lines <= j->compact_at)
        return;
    if (j->deferred) {
        j->want_compact = TRUE;
        return;
    }
    if (!journal_compact(j, &err)) {
        /* Not fatal: the long file is still right.  Try again later. */
        g_warning("%s", err->message);
        j->compact_at = j->n_lines + JOURNAL_COMPACT_MIN_LINES;
    }
}

/* Applies one replayed line; FALSE when it is not a journal line. */
static gboolean
journal_apply(Journal *j, JsonObject *line)
{
    JsonObject *rec;
    gint64 v;

    if ((rec = qmp_json_get_object(line, "put"))) {
        if (!qmp_json_get_int(rec, "op", &v) || v < 1)
            return FALSE;
        g_tree_replace(j->open, journal_op_key((guint64)v), journal_object_copy(rec));
        j->max_op = MAX(j->max_op, (guint64)v);
        return TRUE;
    }
    if (qmp_json_get_int(line, "del", &v) && v >= 1) {
        g_tree_remove(j->open, &(guint64){(guint64)v});
        return TRUE;
    }
    if (qmp_json_get_int(line, "max_op", &v) && v >= 0) {
        j->max_op = MAX(j->max_op, (guint64)v);
        return TRUE;
    }
    return FALSE;
}

static gboolean
journal_replay(Journal *j, GError **error)
{
    struct stat st;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    guint64 off = 0;
    guint64 valid_end = 0;
    guint n_valid = 0;
    guint n_lines = 0;
    guint n_bad = 0;
    FILE *f;
    int fd;

    if (fstat(j->fd, &st) < 0)
        return journal_set_errno(error, errno, "%s", j->path);
    fd = fcntl(j->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return journal_set_errno(error, errno, "%s", j->path);
    f = fdopen(fd, "r");
    if (!f) {
        int errsv = errno;

        close(fd);
        return journal_set_errno(error, errsv, "%s", j->path);
    }
    rewind(f);
    while ((n = getline(&line, &cap, f)) > 0) {
        g_autoptr(JsonNode) root = NULL;
        JsonObject *obj;

        if (line[n - 1] != '\n')
            break; /* torn */
        off += (guint64)n;
        n_lines++;
        root = qmp_json_parse_stored(line, (gsize)n - 1, NULL);
        if (!(obj = qmp_json_node_object(root)) || !journal_apply(j, obj)) {
            n_bad++;
            continue;
        }
        valid_end = off;
        n_valid = n_lines;
    }
    if (ferror(f)) {
        int errsv = errno;

        free(line);
        fclose(f);
        return journal_set_errno(error, errsv, "reading %s", j->path);
    }
    free(line);
    fclose(f);

    if (n_bad > n_lines - n_valid)
        g_warning("%s: skipped %u lines that are not journal records", j->path,
                  n_bad - (n_lines - n_valid));
    if ((guint64)st.st_size > valid_end) {
        g_message("%s: cutting a torn record (%" G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT
                  ")",
                  j->path, (guint64)st.st_size - valid_end, valid_end);
        if (ftruncate(j->fd, (off_t)valid_end) < 0 || fdatasync(j->fd) < 0)
            return journal_set_errno(error, errno, "truncating %s", j->path);
    }
    j->size = valid_end;
    j->n_lines = n_valid;
    return TRUE;
}

Journal *
journal_open(const char *path, GError **error)
{
    g_autoptr(Journal) j = NULL;

    g_return_val_if_fail(path != NULL, NULL);
    g_return_val_if_fail(error == NULL || *error == NULL, NULL);

    j = g_new0(Journal, 1);
    j->path = g_strdup(path);
    j->tmp_path = g_strconcat(path, ".tmp", NULL);
    j->dir = g_path_get_dirname(path);
    j->name = g_path_get_basename(path);
    j->tmp_name = g_strconcat(j->name, ".tmp", NULL);
    j->fd = -1;
    j->dir_fd = -1;
    j->cfd = -1;
    j->open = g_tree_new_full(journal_op_cmp, NULL, g_free, journal_record_unref);
    j->lines = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free,
                                     (GDestroyNotify)g_bytes_unref);

    if (g_mkdir_with_parents(j->dir, 0700) < 0) {
        journal_set_errno(error, errno, "creating %s", j->dir);
        return NULL;
    }
    /* the directory itself may be reached through a link (hotplugd checked
     * it); the journal in it is never */
    j->dir_fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dir_fd < 0) {
        journal_set_errno(error, errno, "opening %s", j->dir);
        return NULL;
    }
    /* A compaction that did not reach its rename: the journal is intact. */
    if (unlinkat(j->dir_fd, j->tmp_name, 0) == 0)
        g_message("%s: removed an unfinished compaction", j->tmp_path);
    else if (errno != ENOENT)
        g_warning("removing %s: %s", j->tmp_path, g_strerror(errno));

    /* relative to the directory, never through a symbolic link */
    j->fd = openat(j->dir_fd, j->name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        journal_set_errno(error, errno, errno == ELOOP ? "opening %s (a symbolic link: refused)"
                                                       : "opening %s", path);
        return NULL;
    }
    j->dir_dirty = TRUE; /* it may have just been created */
    if (!journal_replay(j, error))
        return NULL;
    g_debug("%s: %d open ops, max op %" G_GUINT64_FORMAT, path, g_tree_nnodes(j->open), j->max_op);
    journal_maybe_compact(j);
    return g_steal_pointer(&j);
}

void
journal_free(Journal *j)
{
    g_autoptr(GError) err = NULL;

    if (!j)
        return;
    if (j->cfd >= 0) {
        /* a compaction whose rename never ran: the journal is the old file */
        close(j->cfd);
        j->cfd = -1;
        unlinkat(j->dir_fd, j->tmp_name, 0);
    }
    if (j->fd >= 0 && !journal_flush(j, &err))
        g_warning("%s", err->message);
    if (j->fd >= 0)
        close(j->fd);
    if (j->dir_fd >= 0)
        close(j->dir_fd);
    g_tree_unref(j->open);
    g_hash_table_unref(j->lines);
    g_free(j->path);
    g_free(j->tmp_path);
    g_free(j->dir);
    g_free(j->name);
    g_free(j->tmp_name);
    g_free(j);
}

gboolean
journal_put_text(Journal *j, guint64 op, const char *record, gsize len, GError **error)
{
    g_autoptr(GString) line = NULL;
    char num[24];
    gsize n;
    gsize done = 0;

    g_return_val_if_fail(j != NULL, FALSE);
    g_return_val_if_fail(record != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    n = qmp_json_format_uint(num, op);
    if (op < 1 || op > G_MAXINT64 || len < 7 + n + 1 || memcmp(record, "{\"op\":", 6) != 0 ||
        memcmp(record + 6, num, n) != 0 || (record[6 + n] != ',' && record[6 + n] != '}') ||
        record[len - 1] != '}') {
        g_set_error(error, JOURNAL_ERROR, JOURNAL_ERROR_INVALID,
                    "journal record for op %" G_GUINT64_FORMAT " needs \"op\": %" G_GUINT64_FORMAT
                    " first", op, op);
        return FALSE;
    }
    /* the line is the journal's copy of the record: kept for compactions
     * (and parsed again only if journal_open_records asks for it) */
    line = g_string_sized_new(len + 10);
    g_string_append(line, "{\"put\":");
    g_string_append_len(line, record, (gssize)len);
    g_string_append(line, "}\n");
    /* the state in memory is right even when the file could not take it:
     * journal_flush writes the whole file again then */
    g_tree_replace(j->open, journal_op_key(op), NULL);
    g_hash_table_replace(j->lines, journal_op_key(op), g_bytes_new(line->str, line->len));
    j->max_op = MAX(j->max_op, op);
    if (!journal_write_text(j, line->str, line->len, &done, error)) {
        j->stale = TRUE;
        return FALSE;
    }
    journal_maybe_compact(j);
    return TRUE;
}

gboolean
journal_put(Journal *j, guint64 op, JsonObject *record, GError **error)
{
    g_autoptr(GString) text = NULL;
    gint64 v = 0;

    g_return_val_if_fail(j != NULL, FALSE);
    g_return_val_if_fail(record != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    if (op < 1 || op > G_MAXINT64 || !qmp_json_get_int(record, "op", &v) || (guint64)v != op) {
        g_set_error(error, JOURNAL_ERROR, JOURNAL_ERROR_INVALID,
                    "journal record for op %" G_GUINT64_FORMAT " needs \"op\": %" G_GUINT64_FORMAT,
                    op, op);
        return FALSE;
    }
    /* "op" first, as journal_put_text wants it */
    text = g_string_sized_new(256);
    g_string_append(text, "{\"op\":");
    qmp_json_write_int(text, (gint64)op);
    qmp_json_write_members(text, record, TRUE, (const char *const[]){"op", NULL});
    g_string_append_c(text, '}');
    return journal_put_text(j, op, text->str, text->len, error);
}

static gboolean
journal_remove_line(Journal *j, guint64 op, gboolean urgent, GError **error)
{
    g_autoptr(JsonObject) line = NULL;
    gboolean was_urgent = j->urgent;

    if (!g_tree_lookup_extended(j->open, &op, NULL, NULL))
        return TRUE;
    line = json_object_new();
    json_object_set_int_member(line, "del", (gint64)op);
    g_tree_remove(j->open, &op);
    g_hash_table_remove(j->lines, &op);
    if (!journal_write_line(j, line, error)) {
        j->stale = TRUE;
        return FALSE;
    }
    if (!urgent)
        j->urgent = was_urgent;
    journal_maybe_compact(j);
    return TRUE;
}

gboolean
journal_remove(Journal *j, guint64 op, GError **error)
{
    g_return_val_if_fail(j != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
    return journal_remove_line(j, op, TRUE, error);
}

gboolean
journal_remove_logged(Journal *j, guint64 op, GError **error)
{
    g_return_val_if_fail(j != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);
    return journal_remove_line(j, op, FALSE, error);
}

gboolean
journal_has_unsynced(Journal *j)
{
    g_return_val_if_fail(j != NULL, FALSE);
    return j->dirty || j->dir_dirty || j->stale;
}

gboolean
journal_flush(Journal *j, GError **error)
{
    g_return_val_if_fail(j != NULL, FALSE);

    if (j->stale) {
        /* a write failed: the file is behind memory; write all of it */
        if (!journal_compact(j, error))
            return FALSE;
        j->stale = FALSE;
    }
    if (j->dirty) {
        if (fdatasync(j->fd) < 0)
            return journal_set_errno(error, errno, "syncing %s", j->path);
        j->dirty = FALSE;
        j->urgent = FALSE;
    }
    if (j->dir_dirty) {
        if (fsync(j->dir_fd) < 0)
            return journal_set_errno(error, errno, "syncing %s", j->dir);
        j->dir_dirty = FALSE;
    }
    return TRUE;
}

static gboolean
journal_collect_cb(gpointer key, gpointer value, gpointer opaque)
{
    gpointer *ctx = opaque;
    Journal *j = ctx[0];
    GBytes *line;
    g_autoptr(JsonNode) root = NULL;
    JsonObject *put;
    gsize len = 0;
    const char *text;

    if (value) {
        g_ptr_array_add(ctx[1], json_object_ref(value));
        return FALSE;
    }
    /* only its line is kept: the record as written */
    line = g_hash_table_lookup(j->lines, key);
    text = line ? g_bytes_get_data(line, &len) : NULL;
    if (text)
        root = qmp_json_parse_stored(text, len, NULL);
    if ((put = qmp_json_get_object(qmp_json_node_object(root), "put")))
        g_ptr_array_add(ctx[1], json_object_ref(put));
    return FALSE;
}

GPtrArray *
journal_open_records(Journal *j)
{
    GPtrArray *arr;

    g_return_val_if_fail(j != NULL, NULL);

    arr = g_ptr_array_new_full((guint)g_tree_nnodes(j->open), (GDestroyNotify)json_object_unref);
    g_tree_foreach(j->open, journal_collect_cb, (gpointer[]){j, arr});
    return arr;
}

guint64
journal_max_op(Journal *j)
{
    g_return_val_if_fail(j != NULL, 0);
    return j->max_op;
}

guint
journal_n_open(Journal *j)
{
    g_return_val_if_fail(j != NULL, 0);
    return (guint)g_tree_nnodes(j->open);
}

void
journal_set_deferred_compaction(Journal *j, gboolean deferred)
{
    g_return_if_fail(j != NULL);
    j->deferred = deferred;
}

/* Creates the compacted file and adds to b its content (written by the
 * batch, off the loop), its sync and its rename; until the batch ran, lines
 * go to both files (the compacted one after its content). */
static gboolean
journal_compact_begin(Journal *j, SyncBatch *b, GError **error)
{
    guint64 len = 0;
    GPtrArray *buf = journal_compact_content(j, &len);
    int fd;

    fd = openat(j->dir_fd, j->tmp_name, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                0600);
    if (fd < 0) {
        g_ptr_array_unref(buf);
        return journal_set_errno(error, errno, "creating %s", j->tmp_path);
    }
    /* a compaction that fails is dropped (the long file stays right);
     * once renamed, the directory's sync is needed like any other */
    sync_batch_set_optional(b, TRUE);
    if (!sync_batch_add_write(b, fd, buf, 0, j->tmp_path, error) ||
        !sync_batch_add_sync(b, fd, FALSE, j->tmp_path, error) ||
        !sync_batch_add_rename(b, j->dir_fd, j->tmp_name, j->name, j->path, error)) {
        sync_batch_set_optional(b, FALSE);
        close(fd);
        unlinkat(j->dir_fd, j->tmp_name, 0);
        return FALSE;
    }
    sync_batch_set_optional(b, FALSE);
    j->rename_step = sync_batch_n_steps(b) - 1;
    if (!sync_batch_add_sync(b, j->dir_fd, TRUE, j->dir, error)) {
        /* the rename may run: the next flush syncs the directory */
        j->dir_dirty = TRUE;
    }
    j->cfd = fd;
    j->csize = len;
    j->clines = 1 + (guint)g_tree_nnodes(j->open);
    j->cbad = FALSE;
    j->want_compact = FALSE;
    return TRUE;
}

gboolean
journal_sync_prepare(Journal *j, SyncBatch *b, gboolean lazy_too, GError **error)
{
    g_return_val_if_fail(j != NULL && b != NULL, FALSE);
    g_return_val_if_fail(j->cfd < 0, FALSE);

    if (j->stale) {
        /* a write failed: the file is behind memory; write all of it */
        if (!journal_compact(j, error))
            return FALSE;
        j->stale = FALSE;
        j->want_compact = FALSE;
    }
    if (j->dirty && (j->urgent || lazy_too)) {
        if (!sync_batch_add_sync(b, j->fd, FALSE, j->path, error))
            return FALSE;
        j->dirty = FALSE;
        j->urgent = FALSE;
    }
    if (j->dir_dirty) {
        if (!sync_batch_add_sync(b, j->dir_fd, TRUE, j->dir, error)) {
            j->dirty = TRUE;
            j->urgent = TRUE;
            return FALSE;
        }
        j->dir_dirty = FALSE;
    }
    if (j->want_compact) {
        g_autoptr(GError) err = NULL;

        /* not fatal: the long file stays right; tried again later */
        if (!journal_compact_begin(j, b, &err)) {
            g_warning("%s", err->message);
            j->want_compact = FALSE;
            j->compact_at = j->n_lines + JOURNAL_COMPACT_MIN_LINES;
        }
    }
    return TRUE;
}

void
journal_sync_done(Journal *j, SyncBatch *b, gboolean ok)
{
    g_return_if_fail(j != NULL && b != NULL);

    if (!ok) {
        /* not known to be on disk: the next flush syncs again */
        j->dirty = TRUE;
        j->urgent = TRUE;
        j->dir_dirty = TRUE;
    }
    if (j->cfd < 0)
        return;
    if (sync_batch_step_done(b, j->rename_step)) {
        if (!sync_batch_step_done(b, j->rename_step + 1))
            j->dir_dirty = TRUE;
        /* the compacted file is the journal now, whatever happens next */
        close(j->fd);
        j->fd = j->cfd;
        j->size = j->csize;
        j->n_lines = j->clines;
        j->tail_bad = FALSE;
        j->compact_at = 0;
        j->dirty = TRUE; /* lines written to it since the batch left */
        j->urgent = TRUE;
        if (j->cbad)
            j->stale = TRUE;
        g_debug("%s: compacted to %u lines", j->path, j->n_lines);
    } else {
        close(j->cfd);
        unlinkat(j->dir_fd, j->tmp_name, 0);
        j->compact_at = j->n_lines + JOURNAL_COMPACT_MIN_LINES;
    }
    j->cfd = -1;
}
