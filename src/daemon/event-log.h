/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The durable event log: every record gets a seq (strictly increasing,
 * never reused across restarts) and a UTC time, and is appended as one JSON
 * line to a segment file.  Old segments are dropped by size (whenever the
 * total passes max_bytes, oldest first, never the newest); a reader that
 * asks for dropped records is told which range is gone.
 *
 * Storage, in one directory:
 *   events-<first seq, 20 digits>.log   JSON lines, compact, "\n"-terminated;
 *                                       a segment's first record (if any)
 *                                       has exactly the seq of its name
 *   seq.hwm                             "<reserved> <segment>\n": no seq above
 *                                       <reserved> was ever flushed, and
 *                                       <segment> was the newest segment then
 *
 * Why seq.hwm: seq normally continues after the last record found in the
 * newest segment (which retention never deletes).  If someone removes the
 * newest segments (or all of them), that record is gone, so the last seq
 * cannot be read back.  Before a record is flushed (so before anyone can
 * have seen it), seq.hwm must cover it (a reservation, raised
 * EVENT_LOG_HWM_STEP at a time, and on every new segment) and must name the
 * segment it went to: the flush that makes the record durable writes
 * seq.hwm first when needed; so when the segment named
 * in seq.hwm (or a newer one) is missing on open, seq continues after the
 * reservation: it may skip numbers, but never reuses one.  When the
 * segments are intact, seq continues exactly after the last record (no gap).
 *
 * Durability: event_log_append() write(2)s the whole line at once (a kill -9
 * right after it loses nothing); event_log_flush() fdatasync()s.  A torn
 * last line (kill -9 in the middle of a write, or a crash before the data
 * reached the disk) is truncated away on open; such a record was never
 * flushed, so never announced, and its seq is given again.
 *
 * Single writer: one EventLog per directory (the daemon locks its state
 * directory).  Not thread-safe. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "syncer.h"

G_BEGIN_DECLS

#define EVENT_LOG_ERROR (event_log_error_quark())
GQuark event_log_error_quark(void);

typedef enum {
    EVENT_LOG_ERROR_IO,      /* a system call failed (message has errno text) */
    EVENT_LOG_ERROR_INVALID, /* bad argument */
} EventLogErrorCode;

typedef struct EventLog EventLog;

typedef struct {
    guint64 max_bytes;     /* retention: total bytes of all segments; 0 = 64 MiB (the newest
                              segment is kept even when it alone is larger) */
    guint64 segment_bytes; /* a new segment starts past this; 0 = 4 MiB */
} EventLogOptions;

#define EVENT_LOG_DEFAULT_MAX_BYTES (64 * 1024 * 1024)
#define EVENT_LOG_DEFAULT_SEGMENT_BYTES (4 * 1024 * 1024)
/* How far seq.hwm reserves ahead of the last seq written. */
#define EVENT_LOG_HWM_STEP 65536

/* Opens (creates) the log in dir (created 0700 if missing).  opts may be
 * NULL.  Fails when dir is not usable for writing. */
EventLog *event_log_open(const char *dir, const EventLogOptions *opts, GError **error);
/* Flushes (a failure is logged) and closes. */
void event_log_free(EventLog *log);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EventLog, event_log_free)

/* Append one record: the stored record is a new object with "seq" then
 * "time" (RFC 3339 UTC with microseconds: "2026-11-22T01:23:45.123456Z")
 * first, then record's members in order ("seq" and "time" members of
 * record are ignored).  The line is written with write(2) at once (it
 * survives a kill -9 of this process); fsync happens in event_log_flush.
 * Returns the seq (>= 1) or 0 with error (then nothing was stored and the
 * seq is not used).  If out is non-NULL it gets a new reference to the
 * stored object (to announce it after the flush). */
guint64 event_log_append(EventLog *log, JsonObject *record, JsonObject **out, GError **error);
/* The same with the record as text: members is its members as JSON, len
 * bytes, each with a ',' before it (",\"vm\":\"a\",\"kind\":...", without
 * "seq" or "time"; the caller writes it right).  Gives the stored record's
 * text (its line without the "\n", g_free): what the daemon announces. */
guint64 event_log_append_members(EventLog *log, const char *members, gsize len,
                                 char **text_out, GError **error);
/* fdatasync when anything was appended since the last flush (and full
 * segments not synced yet), and write seq.hwm when appends asked for a new
 * reservation or segment in it.  Nothing is synced inside append. */
gboolean event_log_flush(EventLog *log, GError **error);
/* The same flush in parts, for a syncer thread: add to b what makes every
 * record appended so far durable (*seq: the last of them); once b ran,
 * event_log_mark_flushed(seq) in the loop, or event_log_sync_failed(). */
gboolean event_log_sync_prepare(EventLog *log, SyncBatch *b, guint64 *seq, GError **error);
void event_log_sync_failed(EventLog *log);
gboolean event_log_mark_flushed(EventLog *log, guint64 seq, GError **error);
/* Oldest record kept, 0 when empty. */
guint64 event_log_first_seq(EventLog *log);
/* Newest ever, 0 when none. */
guint64 event_log_last_seq(EventLog *log);

/* Called per record; the record is borrowed (ref it to keep it).  Return
 * FALSE to stop.  Must not append to the log. */
typedef gboolean (*EventLogFunc)(JsonObject *record, gpointer opaque);
/* Records with seq > since, oldest first, up to the last seq at the time of
 * the call.  When retention dropped some of since+1 .. first_seq-1,
 * *gap_from and *gap_to get that range (else both 0) so a subscriber is
 * told what is gone (gap pointers may be NULL).  Memory stays bounded by
 * the longest line.  FALSE with error only when a segment cannot be read. */
gboolean event_log_read_since(EventLog *log, guint64 since, EventLogFunc fn, gpointer opaque,
                              guint64 *gap_from, guint64 *gap_to, GError **error);

/* NULL members match all. */
typedef struct {
    const char *vm;
    const char *device;
    const char *kind;
} EventLogFilter;
/* TRUE when record's "vm", "device" and "kind" strings equal the filter's
 * non-NULL members (a NULL filter matches everything). */
gboolean event_log_filter_match(const EventLogFilter *f, JsonObject *record);
/* The same for a record's "vm", "device" and "kind" (NULL: absent). */
gboolean event_log_filter_match_fields(const EventLogFilter *f, const char *vm,
                                       const char *device, const char *kind);

/* Bytes on disk now (all segments; for tests/benchmarks). */
guint64 event_log_size(EventLog *log);

G_END_DECLS
