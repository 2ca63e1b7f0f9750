/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The durable event log: segment files of JSON lines, seq numbers that
 * survive restarts, dropping old segments by size, and reading back. */
#define G_LOG_DOMAIN "event-log"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event-log.h"
#include "syncer.h"
#include "qmp-json.h"

G_DEFINE_QUARK(event-log-error-quark, event_log_error)

#define SEG_PREFIX "events-"
#define SEG_SUFFIX ".log"
#define SEG_DIGITS 20
#define HWM_NAME "seq.hwm"
#define HWM_TMP_NAME "seq.hwm.tmp"
/* The last seq flushed (so perhaps sent to someone): 20 digits and a
 * newline, rewritten in place by each flush. */
#define FLUSHED_NAME "seq.flushed"
#define FLUSHED_LEN 21

typedef struct {
    guint64 first; /* the seq in the file name */
    guint64 size;  /* bytes of whole records */
} EventLogSegment;

/* Read-back index: where the record seq starts in its segment, for every
 * EVENT_LOG_MARK_STEP-th record, learnt when appending and when reading. */
#define EVENT_LOG_MARK_STEP 64
typedef struct {
    guint64 seq;
    guint64 off;
} EventLogMark;

struct EventLog {
    char *dir;
    int dir_fd;
    guint64 max_bytes;
    guint64 segment_bytes;
    GArray *segs; /* EventLogSegment, oldest first; the last one is open as fd */
    int fd;       /* the newest segment, read-write */
    guint64 total;
    guint64 last_seq;
    guint64 hwm_reserved; /* what seq.hwm holds on disk */
    guint64 hwm_segment;
    /* seq.hwm to write with the next sync (the loop only asks for it) */
    gboolean hwm_pending;
    guint64 hwm_want_reserved, hwm_want_segment;
    gboolean hwm_in_batch; /* the batch under way writes hwm_want_* */
    guint64 hwm_batch_reserved, hwm_batch_segment;
    /* full segments written since their last fdatasync, still open: the
     * next sync makes them durable (the loop does not wait for it) */
    GArray *old_fds;
    guint old_fds_in_batch;
    int flushed_fd;       /* seq.flushed */
    guint64 flushed_seq;  /* what it holds */
    gboolean dirty;     /* written since the last fdatasync */
    gboolean dir_dirty; /* a segment was created since the directory's last fsync */
    gboolean tail_bad;  /* a failed write may have left bytes past the newest size */
    gint64 time_secs;      /* the second time_base says */
    char time_base[32];    /* "2026-11-22T01:23:45" */
    GArray *marks; /* EventLogMark, by seq */
};

static gboolean event_log_set_errno(GError **error, int errsv, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static guint64 event_log_read_flushed(EventLog *log);

static gboolean
event_log_set_errno(GError **error, int errsv, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, EVENT_LOG_ERROR, EVENT_LOG_ERROR_IO, "%s: %s", what, g_strerror(errsv));
    return FALSE;
}

static EventLogSegment *
event_log_newest(EventLog *log)
{
    if (log->segs->len == 0)
        return NULL;
    return &g_array_index(log->segs, EventLogSegment, log->segs->len - 1);
}

static char *
event_log_seg_name(guint64 first)
{
    return g_strdup_printf(SEG_PREFIX "%0*" G_GUINT64_FORMAT SEG_SUFFIX, SEG_DIGITS, first);
}

/* "events-00000000000000000042.log" -> 42 */
static gboolean
event_log_seg_parse_name(const char *name, guint64 *first)
{
    gsize plen = strlen(SEG_PREFIX);
    guint64 v = 0;

    if (strlen(name) != plen + SEG_DIGITS + strlen(SEG_SUFFIX) ||
        !g_str_has_prefix(name, SEG_PREFIX) || !g_str_has_suffix(name, SEG_SUFFIX))
        return FALSE;
    for (gsize i = plen; i < plen + SEG_DIGITS; i++) {
        if (!g_ascii_isdigit(name[i]))
            return FALSE;
        if (v > (G_MAXUINT64 - 9) / 10)
            return FALSE;
        v = v * 10 + (guint64)(name[i] - '0');
    }
    if (v == 0)
        return FALSE;
    *first = v;
    return TRUE;
}

static gint
event_log_seg_cmp(gconstpointer a, gconstpointer b)
{
    const EventLogSegment *sa = a;
    const EventLogSegment *sb = b;

    return sa->first < sb->first ? -1 : sa->first > sb->first;
}

/* pwrite all of buf at off; on failure *done says how much went out. */
static gboolean
event_log_pwrite_all(int fd, const char *buf, gsize len, guint64 off, gsize *done, int *errsv)
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

static const char *
event_log_skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* The seq of a line we wrote ({"seq":N,...}) without parsing all of it. */
static gboolean
event_log_line_seq(const char *line, gsize len, guint64 *seq)
{
    const char *end = line + len;
    const char *p = event_log_skip_ws(line, end);
    guint64 v = 0;

    if (p >= end || *p != '{')
        return FALSE;
    p = event_log_skip_ws(p + 1, end);
    if (end - p < 5 || memcmp(p, "\"seq\"", 5) != 0)
        return FALSE;
    p = event_log_skip_ws(p + 5, end);
    if (p >= end || *p != ':')
        return FALSE;
    p = event_log_skip_ws(p + 1, end);
    if (p >= end || !g_ascii_isdigit(*p))
        return FALSE;
    while (p < end && g_ascii_isdigit(*p)) {
        if (v > (G_MAXINT64 - 9) / 10)
            return FALSE;
        v = v * 10 + (guint64)(*p - '0');
        p++;
    }
    if (p >= end || (*p != ',' && *p != '}' && *p != ' '))
        return FALSE;
    *seq = v;
    return v >= 1;
}

/* Full parse of one line: a new ref to the object when it is a record. */
static JsonObject *
event_log_parse_line(const char *line, gsize len, guint64 *seq)
{
    g_autoptr(JsonNode) root = qmp_json_parse_stored(line, len, NULL);
    JsonObject *obj = qmp_json_node_object(root);
    gint64 v = 0;

    if (!obj || !qmp_json_get_int(obj, "seq", &v) || v < 1)
        return NULL;
    *seq = (guint64)v;
    return json_object_ref(obj);
}

/* RFC 3339 UTC with microseconds, appended: the date and time part is
 * formatted once per second. */
static void
event_log_append_time(EventLog *log, GString *out, gint64 usec)
{
    gint64 secs = usec / G_USEC_PER_SEC;
    int frac = (int)(usec % G_USEC_PER_SEC);
    char digits[8];

    if (secs != log->time_secs) {
        time_t t = (time_t)secs;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(log->time_base, sizeof log->time_base, "%Y-%m-%dT%H:%M:%S", &tm);
        log->time_secs = secs;
    }
    g_string_append(out, log->time_base);
    for (int k = 6; k >= 1; k--) {
        digits[k] = (char)('0' + frac % 10);
        frac /= 10;
    }
    digits[0] = '.';
    g_string_append_len(out, digits, 7);
    g_string_append_c(out, 'Z');
}

/* seq.hwm: "<reserved> <segment>\n", written atomically and durably. */
static gboolean
event_log_write_hwm(EventLog *log, guint64 reserved, guint64 segment, GError **error)
{
    char buf[64];
    int len = g_snprintf(buf, sizeof buf, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n", reserved,
                         segment);
    gsize done = 0;
    int errsv = 0;
    int fd;

    fd = openat(log->dir_fd, HWM_TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return event_log_set_errno(error, errno, "creating %s/%s", log->dir, HWM_TMP_NAME);
    if (!event_log_pwrite_all(fd, buf, (gsize)len, 0, &done, &errsv) || fdatasync(fd) < 0) {
        if (errsv == 0)
            errsv = errno;
        close(fd);
        unlinkat(log->dir_fd, HWM_TMP_NAME, 0);
        return event_log_set_errno(error, errsv, "writing %s/%s", log->dir, HWM_TMP_NAME);
    }
    if (close(fd) < 0) {
        errsv = errno;
        unlinkat(log->dir_fd, HWM_TMP_NAME, 0);
        return event_log_set_errno(error, errsv, "writing %s/%s", log->dir, HWM_TMP_NAME);
    }
    if (renameat(log->dir_fd, HWM_TMP_NAME, log->dir_fd, HWM_NAME) < 0) {
        errsv = errno;
        unlinkat(log->dir_fd, HWM_TMP_NAME, 0);
        return event_log_set_errno(error, errsv, "renaming %s/%s", log->dir, HWM_TMP_NAME);
    }
    /* Makes the rename durable, and any segment created before it. */
    if (fsync(log->dir_fd) < 0)
        return event_log_set_errno(error, errno, "syncing %s", log->dir);
    log->dir_dirty = FALSE;
    log->hwm_reserved = reserved;
    log->hwm_segment = segment;
    return TRUE;
}

/* Missing or unreadable seq.hwm reads as 0 0. */
static void
event_log_read_hwm(EventLog *log)
{
    char buf[64];
    ssize_t n;
    char *end = NULL;
    guint64 reserved, segment;
    int fd;

    log->hwm_reserved = 0;
    log->hwm_segment = 0;
    fd = openat(log->dir_fd, HWM_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            g_warning("%s/%s: %s", log->dir, HWM_NAME, g_strerror(errno));
        return;
    }
    do
        n = pread(fd, buf, sizeof buf - 1, 0);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0)
        goto bad;
    buf[n] = '\0';
    if (!g_ascii_isdigit(buf[0]))
        goto bad;
    reserved = g_ascii_strtoull(buf, &end, 10);
    if (*end != ' ' || !g_ascii_isdigit(end[1]))
        goto bad;
    segment = g_ascii_strtoull(end + 1, &end, 10);
    if (*end != '\n' || reserved > G_MAXINT64 || segment > G_MAXINT64)
        goto bad;
    log->hwm_reserved = reserved;
    log->hwm_segment = segment;
    return;
bad:
    g_warning("%s/%s: not a valid high-water mark, ignored", log->dir, HWM_NAME);
}

/* Creates segment `first` and makes it the one written to.  The previous
 * one must have been synced by the caller. */
static gboolean
event_log_new_segment(EventLog *log, guint64 first, GError **error)
{
    g_autofree char *name = event_log_seg_name(first);
    EventLogSegment seg = {first, 0};
    struct stat st;
    int fd;

    fd = openat(log->dir_fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return event_log_set_errno(error, errno, "creating %s/%s", log->dir, name);
    if (fstat(fd, &st) < 0) {
        int errsv = errno;

        close(fd);
        return event_log_set_errno(error, errsv, "%s/%s", log->dir, name);
    }
    if (st.st_size != 0) {
        close(fd);
        g_set_error(error, EVENT_LOG_ERROR, EVENT_LOG_ERROR_IO,
                    "%s/%s: a new segment already exists and is not empty", log->dir, name);
        return FALSE;
    }
    if (log->fd >= 0)
        close(log->fd);
    log->fd = fd;
    log->dirty = FALSE;
    log->tail_bad = FALSE;
    log->dir_dirty = TRUE;
    g_array_append_val(log->segs, seg);
    g_debug("%s: new segment %s", log->dir, name);
    return TRUE;
}

/* Index of the first mark with a seq above seq (marks->len when none). */
static guint
event_log_mark_upper(EventLog *log, guint64 seq)
{
    guint lo = 0, hi = log->marks->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;

        if (g_array_index(log->marks, EventLogMark, mid).seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void
event_log_mark_add(EventLog *log, guint64 seq, guint64 off)
{
    EventLogMark m = {seq, off};
    guint i = event_log_mark_upper(log, seq);

    if (i > 0 && g_array_index(log->marks, EventLogMark, i - 1).seq == seq)
        return;
    g_array_insert_val(log->marks, i, m);
}

/* Where to start reading for seq in the segment that begins at first: the
 * offset of the closest mark at or below seq in that segment, or 0. */
static guint64
event_log_mark_find(EventLog *log, guint64 first, guint64 seq)
{
    guint i = event_log_mark_upper(log, seq);
    const EventLogMark *m;

    if (i == 0)
        return 0;
    m = &g_array_index(log->marks, EventLogMark, i - 1);
    return m->seq >= first ? m->off : 0;
}

/* Drops oldest segments while over max_bytes; never the newest. */
static void
event_log_retain(EventLog *log)
{
    while (log->segs->len > 1 && log->total > log->max_bytes) {
        EventLogSegment *s = &g_array_index(log->segs, EventLogSegment, 0);
        g_autofree char *name = event_log_seg_name(s->first);

        if (unlinkat(log->dir_fd, name, 0) < 0 && errno != ENOENT) {
            g_warning("retention: removing %s/%s: %s", log->dir, name, g_strerror(errno));
            return;
        }
        g_debug("retention: removed %s/%s (%" G_GUINT64_FORMAT " bytes)", log->dir, name, s->size);
        log->total -= s->size;
        g_array_remove_index(log->segs, 0);
        if (log->segs->len) {
            guint n = event_log_mark_upper(
                log, g_array_index(log->segs, EventLogSegment, 0).first - 1);
            g_array_remove_range(log->marks, 0, n);
        }
    }
}

/* Reads segment fd from the start: *valid_end gets the end of the last good
 * record, *last_start its start and *last its seq (0 when none).  Lines are
 * checked by their seq prefix only, unless full. */
static gboolean
event_log_scan(EventLog *log, int fd, guint64 first, gboolean full, guint64 *valid_end,
               guint64 *last_start, guint64 *last, GError **error)
{
    FILE *f;
    int dfd;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    guint64 off = 0;

    *valid_end = 0;
    *last_start = 0;
    *last = 0;
    dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return event_log_set_errno(error, errno, "%s", log->dir);
    f = fdopen(dfd, "r");
    if (!f) {
        int errsv = errno;

        close(dfd);
        return event_log_set_errno(error, errsv, "%s", log->dir);
    }
    rewind(f);
    while ((n = getline(&line, &cap, f)) > 0) {
        guint64 seq = 0;
        gboolean ok;

        if (line[n - 1] != '\n')
            break; /* torn: no end of line */
        if (full) {
            g_autoptr(JsonObject) obj = event_log_parse_line(line, (gsize)n - 1, &seq);

            ok = obj != NULL;
        } else {
            ok = event_log_line_seq(line, (gsize)n - 1, &seq);
        }
        if (ok && seq > *last && seq >= first) {
            *last = seq;
            *last_start = off;
            *valid_end = off + (guint64)n;
        }
        off += (guint64)n;
    }
    if (ferror(f)) {
        int errsv = errno;

        free(line);
        fclose(f);
        return event_log_set_errno(error, errsv, "reading %s", log->dir);
    }
    free(line);
    fclose(f);
    return TRUE;
}

/* Finds the last good record of the newest segment and cuts what follows
 * (a torn record).  *found_last: its seq, or first - 1 when empty. */
static gboolean
event_log_recover_newest(EventLog *log, guint64 *found_last, GError **error)
{
    EventLogSegment *seg = event_log_newest(log);
    g_autofree char *name = event_log_seg_name(seg->first);
    guint64 valid_end, last_start, last;
    struct stat st;

    log->fd = openat(log->dir_fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (log->fd < 0)
        return event_log_set_errno(error, errno, "opening %s/%s", log->dir, name);
    if (fstat(log->fd, &st) < 0)
        return event_log_set_errno(error, errno, "%s/%s", log->dir, name);
    if (!event_log_scan(log, log->fd, seg->first, FALSE, &valid_end, &last_start, &last, error))
        return FALSE;
    if (last > 0) {
        /* The prefix looked right; make sure the whole last record does. */
        gsize len = (gsize)(valid_end - last_start);
        g_autofree char *buf = g_malloc(len);
        ssize_t r;
        guint64 seq = 0;
        g_autoptr(JsonObject) obj = NULL;

        do
            r = pread(log->fd, buf, len, (off_t)last_start);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return event_log_set_errno(error, errno, "reading %s/%s", log->dir, name);
        if ((gsize)r == len)
            obj = event_log_parse_line(buf, len - 1, &seq);
        if (!obj || seq != last) {
            g_message("%s/%s: last record is not valid JSON, checking every record", log->dir,
                      name);
            if (!event_log_scan(log, log->fd, seg->first, TRUE, &valid_end, &last_start, &last,
                                error))
                return FALSE;
        }
    }
    if ((guint64)st.st_size > valid_end) {
        g_message("%s/%s: cutting a torn record (%" G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT
                  ")",
                  log->dir, name, (guint64)st.st_size - valid_end, valid_end);
        if (ftruncate(log->fd, (off_t)valid_end) < 0 || fdatasync(log->fd) < 0)
            return event_log_set_errno(error, errno, "truncating %s/%s", log->dir, name);
    }
    seg->size = valid_end;
    *found_last = last > 0 ? last : seg->first - 1;
    return TRUE;
}

EventLog *
event_log_open(const char *dir, const EventLogOptions *opts, GError **error)
{
    g_autoptr(EventLog) log = NULL;
    g_autoptr(GDir) d = NULL;
    const char *name;
    guint64 found_last = 0;
    guint64 newest = 0;
    GError *err = NULL;

    g_return_val_if_fail(dir != NULL, NULL);
    g_return_val_if_fail(error == NULL || *error == NULL, NULL);

    log = g_new0(EventLog, 1);
    log->dir = g_strdup(dir);
    log->dir_fd = -1;
    log->fd = -1;
    log->flushed_fd = -1;
    log->segs = g_array_new(FALSE, FALSE, sizeof(EventLogSegment));
    log->marks = g_array_new(FALSE, FALSE, sizeof(EventLogMark));
    log->old_fds = g_array_new(FALSE, FALSE, sizeof(int));
    log->time_secs = -1;
    log->max_bytes = opts && opts->max_bytes ? opts->max_bytes : EVENT_LOG_DEFAULT_MAX_BYTES;
    log->segment_bytes =
        opts && opts->segment_bytes ? opts->segment_bytes : EVENT_LOG_DEFAULT_SEGMENT_BYTES;

    if (g_mkdir_with_parents(dir, 0700) < 0) {
        event_log_set_errno(error, errno, "creating %s", dir);
        return NULL;
    }
    log->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (log->dir_fd < 0) {
        event_log_set_errno(error, errno, "opening %s", dir);
        return NULL;
    }
    d = g_dir_open(dir, 0, &err);
    if (!d) {
        g_set_error(error, EVENT_LOG_ERROR, EVENT_LOG_ERROR_IO, "%s", err->message);
        g_error_free(err);
        return NULL;
    }
    while ((name = g_dir_read_name(d))) {
        EventLogSegment seg = {0, 0};
        struct stat st;

        if (g_str_equal(name, HWM_TMP_NAME)) {
            /* A crash while writing seq.hwm: the old one is still there. */
            unlinkat(log->dir_fd, name, 0);
            continue;
        }
        if (!event_log_seg_parse_name(name, &seg.first))
            continue;
        if (fstatat(log->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            event_log_set_errno(error, errno, "%s/%s", dir, name);
            return NULL;
        }
        if (!S_ISREG(st.st_mode)) {
            /* never followed, never replaced: someone must look at it */
            g_set_error(error, EVENT_LOG_ERROR, EVENT_LOG_ERROR_IO,
                        "%s/%s: not a regular file (a symbolic link?): refused", dir, name);
            return NULL;
        }
        seg.size = (guint64)st.st_size;
        g_array_append_val(log->segs, seg);
    }
    g_array_sort(log->segs, event_log_seg_cmp);
    event_log_read_hwm(log);

    if (log->segs->len > 0) {
        if (!event_log_recover_newest(log, &found_last, error))
            return NULL;
        newest = event_log_newest(log)->first;
    }
    log->last_seq = found_last;
    log->flushed_seq = event_log_read_flushed(log);
    if (found_last < log->flushed_seq) {
        /* Records that were flushed (and maybe sent) are gone from the
         * segments (emptied or cut by hand): never give their seq again. */
        g_warning("%s: the segments end at seq %" G_GUINT64_FORMAT " but seq %" G_GUINT64_FORMAT
                  " was written before; seq continues after %" G_GUINT64_FORMAT,
                  dir, found_last, log->flushed_seq, MAX(log->flushed_seq, log->hwm_reserved));
        log->last_seq = MAX(log->flushed_seq, log->hwm_reserved);
    }
    if (log->hwm_segment > newest) {
        /* The segment seq.hwm names is gone (removed by hand): the last
         * records cannot be read back; continue after the reservation. */
        g_warning("%s: newest segments are missing; seq continues after %" G_GUINT64_FORMAT, dir,
                  MAX(found_last, log->hwm_reserved));
        log->last_seq = MAX(log->last_seq, log->hwm_reserved);
    }
    if (log->segs->len == 0 || log->last_seq != found_last) {
        /* Keep "a segment's first record has the seq of its name". */
        if (!event_log_new_segment(log, log->last_seq + 1, error))
            return NULL;
    }
    for (guint i = 0; i < log->segs->len; i++)
        log->total += g_array_index(log->segs, EventLogSegment, i).size;
    event_log_retain(log);
    g_debug("%s: %u segments, %" G_GUINT64_FORMAT " bytes, seq %" G_GUINT64_FORMAT
            "..%" G_GUINT64_FORMAT,
            dir, log->segs->len, log->total, event_log_first_seq(log), log->last_seq);
    return g_steal_pointer(&log);
}

void
event_log_free(EventLog *log)
{
    g_autoptr(GError) err = NULL;

    if (!log)
        return;
    if (log->fd >= 0 && !event_log_flush(log, &err))
        g_warning("%s: %s", log->dir, err->message);
    if (log->fd >= 0)
        close(log->fd);
    for (guint i = 0; i < log->old_fds->len; i++)
        close(g_array_index(log->old_fds, int, i));
    g_array_unref(log->old_fds);
    if (log->dir_fd >= 0)
        close(log->dir_fd);
    if (log->flushed_fd >= 0)
        close(log->flushed_fd);
    g_array_unref(log->segs);
    if (log->marks)
        g_array_unref(log->marks);
    g_free(log->dir);
    g_free(log);
}

/* The stored line: seq, time, then the record's members (record's but its
 * own "seq" and "time", or members as given), and "\n". */
static GString *
event_log_line(EventLog *log, JsonObject *record, const char *members, gsize len, guint64 seq)
{
    static const char *const ours[] = {"seq", "time", NULL};
    GString *line = g_string_sized_new(record ? 256 : len + 64);
    char num[24];

    g_string_append(line, "{\"seq\":");
    g_string_append_len(line, num, qmp_json_format_uint(num, seq));
    g_string_append(line, ",\"time\":\"");
    event_log_append_time(log, line, g_get_real_time());
    g_string_append_c(line, '"');
    if (record)
        qmp_json_write_members(line, record, TRUE, ours);
    else
        g_string_append_len(line, members, (gssize)len);
    g_string_append(line, "}\n");
    return line;
}

static guint64 event_log_append_line(EventLog *log, JsonObject *record, const char *members,
                                     gsize len, GString **line_out, GError **error);

guint64
event_log_append(EventLog *log, JsonObject *record, JsonObject **out, GError **error)
{
    g_autoptr(GString) line = NULL;
    guint64 seq;

    if (out)
        *out = NULL;
    g_return_val_if_fail(record != NULL, 0);
    seq = event_log_append_line(log, record, NULL, 0, out ? &line : NULL, error);
    if (seq && out) {
        /* the stored record, read back from its own line */
        *out = event_log_parse_line(line->str, line->len - 1, &(guint64){0});
    }
    return seq;
}

guint64
event_log_append_members(EventLog *log, const char *members, gsize len, char **text_out,
                         GError **error)
{
    GString *line = NULL;
    guint64 seq;

    if (text_out)
        *text_out = NULL;
    g_return_val_if_fail(members != NULL && (!len || members[0] == ','), 0);
    seq = event_log_append_line(log, NULL, members, len, text_out ? &line : NULL, error);
    if (seq && text_out) {
        g_string_truncate(line, line->len - 1);
        *text_out = g_string_free(line, FALSE);
    }
    return seq;
}

static guint64
event_log_append_line(EventLog *log, JsonObject *record, const char *members, gsize len,
                      GString **line_out, GError **error)
{
    g_autoptr(GString) line = NULL;
    EventLogSegment *cur;
    guint64 seq;
    gsize done = 0;
    int errsv = 0;

    g_return_val_if_fail(log != NULL, 0);
    g_return_val_if_fail(error == NULL || *error == NULL, 0);

    seq = log->last_seq + 1;
    if (seq > G_MAXINT64 - EVENT_LOG_HWM_STEP) {
        g_set_error(error, EVENT_LOG_ERROR, EVENT_LOG_ERROR_INVALID, "%s: seq exhausted", log->dir);
        return 0;
    }
    line = event_log_line(log, record, members, len, seq);

    cur = event_log_newest(log);
    if (log->tail_bad) {
        /* A failed write left part of a record: cut it before going on. */
        if (ftruncate(log->fd, (off_t)cur->size) < 0)
            return event_log_set_errno(error, errno, "%s: repairing the newest segment", log->dir);
        log->tail_bad = FALSE;
    }
    if (cur->size >= log->segment_bytes) {
        int old = log->fd;

        /* the full segment is synced by the next flush, off the loop */
        if (log->dirty) {
            log->fd = -1;
            if (!event_log_new_segment(log, seq, error)) {
                log->fd = old;
                return 0;
            }
            g_array_append_val(log->old_fds, old);
        } else if (!event_log_new_segment(log, seq, error)) {
            return 0;
        }
        log->dirty = FALSE;
        cur = event_log_newest(log);
    }
    {
        /* a new reservation (or segment) for seq.hwm: written and made
         * durable by the next flush, before it announces anything */
        guint64 reserved = log->hwm_pending ? log->hwm_want_reserved : log->hwm_reserved;
        guint64 segment = log->hwm_pending ? log->hwm_want_segment : log->hwm_segment;

        if (seq > reserved || segment != cur->first) {
            log->hwm_want_reserved = MAX(reserved, seq - 1 + EVENT_LOG_HWM_STEP);
            log->hwm_want_segment = cur->first;
            log->hwm_pending = TRUE;
        }
    }

    if (!event_log_pwrite_all(log->fd, line->str, line->len, cur->size, &done, &errsv)) {
        if (done > 0 && ftruncate(log->fd, (off_t)cur->size) < 0)
            log->tail_bad = TRUE;
        return event_log_set_errno(error, errsv, "%s: appending a record", log->dir);
    }
    if ((seq - cur->first) % EVENT_LOG_MARK_STEP == 0)
        event_log_mark_add(log, seq, cur->size);
    cur->size += line->len;
    log->total += line->len;
    log->last_seq = seq;
    log->dirty = TRUE;
    if (log->total > log->max_bytes)
        event_log_retain(log);
    if (line_out)
        *line_out = g_steal_pointer(&line);
    return seq;
}

gboolean
event_log_flush(EventLog *log, GError **error)
{
    g_return_val_if_fail(log != NULL, FALSE);

    while (log->old_fds->len) {
        int old = g_array_index(log->old_fds, int, 0);

        if (fdatasync(old) < 0)
            return event_log_set_errno(error, errno, "%s: syncing", log->dir);
        close(old);
        g_array_remove_index(log->old_fds, 0);
    }
    if (log->dirty) {
        if (fdatasync(log->fd) < 0)
            return event_log_set_errno(error, errno, "%s: syncing", log->dir);
        log->dirty = FALSE;
    }
    if (log->hwm_pending) {
        if (!event_log_write_hwm(log, log->hwm_want_reserved, log->hwm_want_segment, error))
            return FALSE;
        log->hwm_pending = FALSE;
    }
    if (log->dir_dirty) {
        if (fsync(log->dir_fd) < 0)
            return event_log_set_errno(error, errno, "syncing %s", log->dir);
        log->dir_dirty = FALSE;
    }
    if (log->flushed_fd >= 0 && log->last_seq > log->flushed_seq) {
        /* in place, same size: takes no new block on a full disk */
        char buf[FLUSHED_LEN + 1];
        gsize done = 0;
        int errsv = 0;

        g_snprintf(buf, sizeof buf, "%020" G_GUINT64_FORMAT "\n", log->last_seq);
        if (!event_log_pwrite_all(log->flushed_fd, buf, FLUSHED_LEN, 0, &done, &errsv))
            return event_log_set_errno(error, errsv, "writing %s/%s", log->dir, FLUSHED_NAME);
        log->flushed_seq = log->last_seq;
    }
    return TRUE;
}

gboolean
event_log_sync_prepare(EventLog *log, SyncBatch *b, guint64 *seq, GError **error)
{
    g_return_val_if_fail(log != NULL && b != NULL, FALSE);

    for (guint i = 0; i < log->old_fds->len; i++)
        if (!sync_batch_add_sync(b, g_array_index(log->old_fds, int, i), FALSE, log->dir, error))
            return FALSE;
    log->old_fds_in_batch = log->old_fds->len;
    if (log->dirty) {
        if (!sync_batch_add_sync(b, log->fd, FALSE, log->dir, error))
            return FALSE;
        log->dirty = FALSE;
    }
    if (log->hwm_pending) {
        /* seq.hwm.tmp written and synced, renamed over seq.hwm, and the
         * directory synced below: all in the sync thread */
        char buf[64];
        int len = g_snprintf(buf, sizeof buf, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT "\n",
                             log->hwm_want_reserved, log->hwm_want_segment);
        g_autoptr(GPtrArray) data = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
        int fd = openat(log->dir_fd, HWM_TMP_NAME,
                        O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        gboolean ok;

        if (fd < 0) {
            log->dirty = TRUE;
            return event_log_set_errno(error, errno, "creating %s/%s", log->dir, HWM_TMP_NAME);
        }
        g_ptr_array_add(data, g_bytes_new(buf, (gsize)len));
        ok = sync_batch_add_write(b, fd, g_steal_pointer(&data), 0, HWM_TMP_NAME, error) &&
             sync_batch_add_sync(b, fd, FALSE, HWM_TMP_NAME, error) &&
             sync_batch_add_rename(b, log->dir_fd, HWM_TMP_NAME, HWM_NAME, HWM_NAME, error);
        close(fd);
        if (!ok) {
            log->dirty = TRUE;
            return FALSE;
        }
        log->hwm_batch_reserved = log->hwm_want_reserved;
        log->hwm_batch_segment = log->hwm_want_segment;
        log->hwm_in_batch = TRUE;
        log->hwm_pending = FALSE;
        log->dir_dirty = TRUE;
    }
    if (log->dir_dirty) {
        if (!sync_batch_add_sync(b, log->dir_fd, TRUE, log->dir, error)) {
            log->dirty = TRUE;
            event_log_sync_failed(log);
            return FALSE;
        }
        log->dir_dirty = FALSE;
    }
    *seq = log->last_seq;
    return TRUE;
}

void
event_log_sync_failed(EventLog *log)
{
    g_return_if_fail(log != NULL);
    /* not known to be on disk: the next flush syncs again */
    log->dirty = TRUE;
    log->dir_dirty = TRUE;
    log->old_fds_in_batch = 0;
    if (log->hwm_in_batch) {
        /* written again, with whatever was asked for since */
        if (!log->hwm_pending) {
            log->hwm_want_reserved = log->hwm_batch_reserved;
            log->hwm_want_segment = log->hwm_batch_segment;
        }
        log->hwm_pending = TRUE;
        log->hwm_in_batch = FALSE;
    }
}

gboolean
event_log_mark_flushed(EventLog *log, guint64 seq, GError **error)
{
    char buf[FLUSHED_LEN + 1];
    gsize done = 0;
    int errsv = 0;

    g_return_val_if_fail(log != NULL, FALSE);

    /* the batch made these durable */
    for (guint i = 0; i < log->old_fds_in_batch; i++)
        close(g_array_index(log->old_fds, int, i));
    g_array_remove_range(log->old_fds, 0, log->old_fds_in_batch);
    log->old_fds_in_batch = 0;
    if (log->hwm_in_batch) {
        log->hwm_reserved = log->hwm_batch_reserved;
        log->hwm_segment = log->hwm_batch_segment;
        log->hwm_in_batch = FALSE;
    }
    if (log->flushed_fd < 0 || seq <= log->flushed_seq)
        return TRUE;
    /* in place, same size: takes no new block on a full disk */
    g_snprintf(buf, sizeof buf, "%020" G_GUINT64_FORMAT "\n", seq);
    if (!event_log_pwrite_all(log->flushed_fd, buf, FLUSHED_LEN, 0, &done, &errsv))
        return event_log_set_errno(error, errsv, "writing %s/%s", log->dir, FLUSHED_NAME);
    log->flushed_seq = seq;
    return TRUE;
}

/* seq.flushed: the last seq ever flushed, 0 when missing or unreadable. */
static guint64
event_log_read_flushed(EventLog *log)
{
    char buf[FLUSHED_LEN + 1];
    char *end = NULL;
    ssize_t n;
    guint64 v;

    log->flushed_fd = openat(log->dir_fd, FLUSHED_NAME,
                             O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (log->flushed_fd < 0) {
        g_warning("%s/%s: %s", log->dir, FLUSHED_NAME, g_strerror(errno));
        return 0;
    }
    do
        n = pread(log->flushed_fd, buf, FLUSHED_LEN, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (n != FLUSHED_LEN || !g_ascii_isdigit(buf[0])) {
        g_warning("%s/%s: not a valid mark, ignored", log->dir, FLUSHED_NAME);
        return 0;
    }
    v = g_ascii_strtoull(buf, &end, 10);
    if (*end != '\n' || v > G_MAXINT64) {
        g_warning("%s/%s: not a valid mark, ignored", log->dir, FLUSHED_NAME);
        return 0;
    }
    return v;
}

guint64
event_log_first_seq(EventLog *log)
{
    g_return_val_if_fail(log != NULL, 0);

    for (guint i = 0; i < log->segs->len; i++) {
        const EventLogSegment *s = &g_array_index(log->segs, EventLogSegment, i);

        if (s->size > 0)
            return s->first;
    }
    return 0;
}

guint64
event_log_last_seq(EventLog *log)
{
    g_return_val_if_fail(log != NULL, 0);
    return log->last_seq;
}

guint64
event_log_size(EventLog *log)
{
    g_return_val_if_fail(log != NULL, 0);
    return log->total;
}

/* Index of the segment that holds seq (the last one whose name <= seq). */
static guint
event_log_find_segment(EventLog *log, guint64 seq)
{
    guint lo = 0;
    guint hi = log->segs->len;

    while (hi - lo > 1) {
        guint mid = lo + (hi - lo) / 2;

        if (g_array_index(log->segs, EventLogSegment, mid).first <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

gboolean
event_log_read_since(EventLog *log, guint64 since, EventLogFunc fn, gpointer opaque,
                     guint64 *gap_from, guint64 *gap_to, GError **error)
{
    g_autoptr(GArray) firsts = NULL;
    guint64 first, gap_end, limit, delivered;
    char *line = NULL;
    size_t cap = 0;
    gboolean ok = TRUE;
    gboolean stop = FALSE;

    g_return_val_if_fail(log != NULL, FALSE);
    g_return_val_if_fail(fn != NULL, FALSE);
    g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

    first = event_log_first_seq(log);
    gap_end = first ? first - 1 : log->last_seq;
    if (gap_from)
        *gap_from = since < gap_end ? since + 1 : 0;
    if (gap_to)
        *gap_to = since < gap_end ? gap_end : 0;

    limit = log->last_seq;
    if (since >= limit || first == 0)
        return TRUE;

    /* The segments to read, taken now (fn cannot change them, but be sure). */
    firsts = g_array_new(FALSE, FALSE, sizeof(guint64));
    for (guint i = event_log_find_segment(log, since + 1); i < log->segs->len; i++)
        g_array_append_val(firsts, g_array_index(log->segs, EventLogSegment, i).first);

    delivered = since;
    for (guint i = 0; i < firsts->len && !stop; i++) {
        guint64 seg_first = g_array_index(firsts, guint64, i);
        g_autofree char *name = event_log_seg_name(seg_first);
        guint64 off = event_log_mark_find(log, seg_first, delivered + 1);
        ssize_t n;
        FILE *f;
        int fd;

        fd = openat(log->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            ok = event_log_set_errno(error, errno, "opening %s/%s", log->dir, name);
            break;
        }
        f = fdopen(fd, "r");
        if (!f) {
            ok = event_log_set_errno(error, errno, "opening %s/%s", log->dir, name);
            close(fd);
            break;
        }
        if (off > 0 && fseeko(f, (off_t)off, SEEK_SET) < 0)
            off = 0, rewind(f);
        while (!stop && (n = getline(&line, &cap, f)) > 0) {
            g_autoptr(JsonObject) obj = NULL;
            guint64 seq = 0;
            guint64 full_seq = 0;
            guint64 line_off = off;

            if (line[n - 1] != '\n')
                break;
            off += (guint64)n;
            if (event_log_line_seq(line, (gsize)n - 1, &seq)) {
                if (seq >= seg_first && (seq - seg_first) % EVENT_LOG_MARK_STEP == 0 &&
                    seq <= log->last_seq)
                    event_log_mark_add(log, seq, line_off);
                if (seq <= delivered)
                    continue;
            }
            if (seq > limit) {
                stop = TRUE;
                break;
            }
            obj = event_log_parse_line(line, (gsize)n - 1, &full_seq);
            if (!obj) {
                g_warning("%s/%s: skipping a record that is not valid JSON", log->dir, name);
                continue;
            }
            if (full_seq <= delivered)
                continue;
            if (full_seq > limit) {
                stop = TRUE;
                break;
            }
            delivered = full_seq;
            if (!fn(obj, opaque))
                stop = TRUE;
        }
        if (!stop && ferror(f)) {
            ok = event_log_set_errno(error, errno, "reading %s/%s", log->dir, name);
            stop = TRUE;
        }
        fclose(f);
    }
    free(line);
    return ok;
}

gboolean
event_log_filter_match_fields(const EventLogFilter *f, const char *vm, const char *device,
                              const char *kind)
{
    if (!f)
        return TRUE;
    if (f->vm && g_strcmp0(vm, f->vm) != 0)
        return FALSE;
    if (f->device && g_strcmp0(device, f->device) != 0)
        return FALSE;
    if (f->kind && g_strcmp0(kind, f->kind) != 0)
        return FALSE;
    return TRUE;
}

gboolean
event_log_filter_match(const EventLogFilter *f, JsonObject *record)
{
    g_return_val_if_fail(record != NULL, FALSE);

    return event_log_filter_match_fields(f, qmp_json_get_string(record, "vm"),
                                         qmp_json_get_string(record, "device"),
                                         qmp_json_get_string(record, "kind"));
}
