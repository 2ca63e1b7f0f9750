/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The in-flight operations journal: the current state record of every open
 * operation, on disk before anything is sent to QEMU, so a restart after a
 * crash or kill -9 knows what was in flight.
 *
 * Storage: one append-only file of JSON lines
 *   {"put": RECORD}   RECORD (an object with "op") replaces op's record
 *   {"del": N}        op N ended
 *   {"max_op": N}     the highest op ever put (first line after compaction)
 * replayed on open; a torn last line (kill -9 in the middle of a write) is
 * cut away.  When the file holds many more lines than open ops, it is
 * compacted: the open records go to PATH.tmp, which is synced and renamed
 * over PATH (the directory synced too); a crash at any point leaves either
 * the old or the new file, and a stale PATH.tmp is removed on open.
 *
 * Durability: every put/remove is write(2)n at once (survives a kill -9 of
 * this process); journal_flush() fdatasync()s.  Single writer; not
 * thread-safe. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "syncer.h"

G_BEGIN_DECLS

#define JOURNAL_ERROR (journal_error_quark())
GQuark journal_error_quark(void);

typedef enum {
    JOURNAL_ERROR_IO,      /* a system call failed (message has errno text) */
    JOURNAL_ERROR_INVALID, /* bad argument */
} JournalErrorCode;

/* Compaction when the file has more than this many lines and more than
 * JOURNAL_COMPACT_RATIO lines per open op. */
#define JOURNAL_COMPACT_MIN_LINES 1000
#define JOURNAL_COMPACT_RATIO 4

typedef struct Journal Journal;

/* Creates or replays path (its directory is created 0700 if missing). */
Journal *journal_open(const char *path, GError **error);
void journal_free(Journal *j);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Journal, journal_free)

/* The op's current state record (an object with at least "op" (int), equal
 * to op >= 1); replaces the previous one.  Written (write(2)) at once,
 * before the caller sends anything to QEMU.  The journal keeps a copy (its
 * line).  The record's members are written with "op" first. */
gboolean journal_put(Journal *j, guint64 op, JsonObject *record, GError **error);
/* The same with the record as JSON object text, len bytes, that starts
 * with its "op" member: {"op":N,...} (what the daemon writes). */
gboolean journal_put_text(Journal *j, guint64 op, const char *record, gsize len,
                          GError **error);
/* The op ended (final outcome and nothing more to watch).  Removing an op
 * that is not open does nothing. */
gboolean journal_remove(Journal *j, guint64 op, GError **error);
/* The same for an op whose final outcome is already written to the event
 * log: the removal need not be durable before anything else (a restart
 * that finds the op still open finds that outcome, and drops it), so it
 * alone does not make journal_sync_prepare sync the file. */
gboolean journal_remove_logged(Journal *j, guint64 op, GError **error);
/* Anything written and not yet synced, logged removals included. */
gboolean journal_has_unsynced(Journal *j);
/* fdatasync if anything was written since the last flush. */
gboolean journal_flush(Journal *j, GError **error);
/* The flush in parts, for a syncer thread: add to b what makes every line
 * written so far durable (when only logged removals were written since the
 * last sync, only with lazy_too), and with deferred compaction the
 * compaction that is due (written now, synced and renamed by b); once b
 * ran (ok or not), journal_sync_done() in the loop.  One batch at a
 * time. */
gboolean journal_sync_prepare(Journal *j, SyncBatch *b, gboolean lazy_too, GError **error);
void journal_sync_done(Journal *j, SyncBatch *b, gboolean ok);
/* Compaction waits for journal_sync_prepare instead of running (and
 * syncing) inside journal_put/journal_remove. */
void journal_set_deferred_compaction(Journal *j, gboolean deferred);
/* Records of ops still open, in op order (new refs; caller unrefs the
 * array). */
GPtrArray *journal_open_records(Journal *j);
/* Highest op id ever put, also across compactions (0 when none). */
guint64 journal_max_op(Journal *j);
guint journal_n_open(Journal *j);

G_END_DECLS
