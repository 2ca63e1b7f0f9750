/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd's state directory: created 0700, refused when another user owns
 * it or others may write to it, and every file in it opened relative to it
 * (openat) with O_NOFOLLOW | O_CLOEXEC, so a planted symbolic link is
 * refused instead of followed. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Create path (mode 0700, parents too) if missing, open it and check it:
 * owned by the effective uid, not writable by group or others.  Returns a
 * directory fd (O_CLOEXEC) or -1 with error set. */
int state_dir_open(const char *path, GError **error);

/* openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600); -1 with error
 * (G_FILE_ERROR, the errno's code) naming the file. */
int state_file_open(int dfd, const char *dir_name, const char *name, int flags,
                    GError **error);

/* name's contents, or NULL with error (G_FILE_ERROR_NOENT when missing). */
char *state_file_read(int dfd, const char *dir_name, const char *name, gsize *len,
                      GError **error);

/* Replace name atomically and durably: write NAME.tmp, fdatasync, rename,
 * fsync the directory.  On failure name is untouched. */
gboolean state_file_write_atomic(int dfd, const char *dir_name, const char *name,
                                 const char *data, gsize len, GError **error);

G_END_DECLS
