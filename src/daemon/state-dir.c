/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd's state directory: its checks and the files opened relative to it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state-dir.h"

static gboolean G_GNUC_PRINTF(3, 4)
state_set_errno(GError **error, int errsv, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errsv), "%s: %s", what,
                errsv == ELOOP ? "is a symbolic link (refused)" : g_strerror(errsv));
    return FALSE;
}

int
state_dir_open(const char *path, GError **error)
{
    struct stat st;
    int fd;

    if (g_mkdir_with_parents(path, 0700) < 0) {
        state_set_errno(error, errno, "cannot create state-dir %s", path);
        return -1;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        state_set_errno(error, errno, "cannot open state-dir %s", path);
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        state_set_errno(error, errno, "state-dir %s", path);
        close(fd);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                    "state-dir %s is owned by uid %u, not by this user (uid %u): refused", path,
                    (guint)st.st_uid, (guint)geteuid());
        close(fd);
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                    "state-dir %s is writable by %s (mode %04o): refused; make it 0700",
                    path, (st.st_mode & S_IWOTH) ? "others" : "its group",
                    (guint)(st.st_mode & 07777));
        close(fd);
        return -1;
    }
    return fd;
}

int
state_file_open(int dfd, const char *dir_name, const char *name, int flags, GError **error)
{
    int fd;

    do
        fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        state_set_errno(error, errno, "%s/%s", dir_name, name);
    return fd;
}

char *
state_file_read(int dfd, const char *dir_name, const char *name, gsize *len, GError **error)
{
    g_autoptr(GString) buf = g_string_new(NULL);
    char chunk[8192];
    struct stat st;
    int fd = state_file_open(dfd, dir_name, name, O_RDONLY, error);

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0) {
        int errsv = errno;
        close(fd);
        state_set_errno(error, errsv, "%s/%s", dir_name, name);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s/%s: not a regular file",
                    dir_name, name);
        return NULL;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int errsv = errno;
            close(fd);
            state_set_errno(error, errsv, "reading %s/%s", dir_name, name);
            return NULL;
        }
        if (n == 0)
            break;
        g_string_append_len(buf, chunk, n);
    }
    close(fd);
    if (len)
        *len = buf->len;
    return g_string_free(g_steal_pointer(&buf), FALSE);
}

gboolean
state_file_write_atomic(int dfd, const char *dir_name, const char *name, const char *data,
                        gsize len, GError **error)
{
    g_autofree char *tmp = g_strconcat(name, ".tmp", NULL);
    gsize done = 0;
    int errsv = 0;
    int fd;

    unlinkat(dfd, tmp, 0);
    fd = state_file_open(dfd, dir_name, tmp, O_WRONLY | O_CREAT | O_EXCL, error);
    if (fd < 0)
        return FALSE;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errsv = errno;
            break;
        }
        done += (gsize)n;
    }
    if (!errsv && fdatasync(fd) < 0)
        errsv = errno;
    if (close(fd) < 0 && !errsv)
        errsv = errno;
    if (!errsv && renameat(dfd, tmp, dfd, name) < 0)
        errsv = errno;
    if (errsv) {
        unlinkat(dfd, tmp, 0);
        return state_set_errno(error, errsv, "writing %s/%s", dir_name, name);
    }
    if (fsync(dfd) < 0)
        return state_set_errno(error, errno, "syncing %s", dir_name);
    return TRUE;
}
