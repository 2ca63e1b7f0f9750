/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Start a real QEMU for a test, and always kill it again. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#undef G_LOG_DOMAIN
#define G_LOG_DOMAIN "test-qemu"

#include "qemu-helper.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_TIMEOUT_US (20 * G_USEC_PER_SEC)
#define POLL_INTERVAL_US (20 * 1000)
#define TAIL_BYTES 2048

struct TestQemu {
  GPid pid;
  gboolean reaped;
  int status; /* waitpid status once reaped */
  char *dir;
  char *qmp_path;
  char *spare_path;
  char *console_path;
  char *log_path;
};

static GQuark test_qemu_error_quark(void) {
  return g_quark_from_static_string("test-qemu-error-quark");
}
#define TEST_QEMU_ERROR (test_qemu_error_quark())
#define TEST_QEMU_ERROR_FAILED 0

static char *guest_dir(void) {
  const char *env = g_getenv("HOTPLUG_GUEST_DIR");

  if (env && *env)
    return g_strdup(env);
  return g_build_filename(g_get_home_dir(), ".cache", "qmp-hotplug", "guest", NULL);
}

static gboolean nonempty_file(const char *path) {
  GStatBuf st;

  return g_stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

gboolean test_qemu_guest_available(GError **error) {
  g_autofree char *dir = guest_dir();
  const char *files[] = {"vmlinuz", "initrd.img"};

  for (gsize i = 0; i < G_N_ELEMENTS(files); i++) {
    g_autofree char *path = g_build_filename(dir, files[i], NULL);

    if (!nonempty_file(path)) {
      g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                  "test guest missing: no %s (guest dir: $HOTPLUG_GUEST_DIR or "
                  "~/.cache/qmp-hotplug/guest); build it with "
#ifdef TOP_SRCDIR
                  TOP_SRCDIR "/"
#endif
                  "tests/guest/build-guest.sh",
                  path);
      return FALSE;
    }
  }
  return TRUE;
}

static const char *default_qemu(void) {
#ifdef QEMU_BINARY
  if (QEMU_BINARY[0] != '\0')
    return QEMU_BINARY;
#endif
  return "qemu-system-x86_64";
}

static char *find_qemu(GError **error) {
  const char *env = g_getenv("QEMU");
  const char *name = (env && *env) ? env : default_qemu();
  char *path;

  if (strchr(name, '/')) {
    if (g_file_test(name, G_FILE_TEST_IS_EXECUTABLE) &&
        !g_file_test(name, G_FILE_TEST_IS_DIR))
      return g_strdup(name);
    path = g_find_program_in_path("qemu-system-x86_64");
    if (!env && path)
      return path; /* the configured path went away; use $PATH's */
    g_free(path);
    g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                "QEMU not found: %s is not an executable%s; install "
                "qemu-system-x86 (scripts/deps.sh) or set $QEMU",
                name, env ? " (from $QEMU)" : "");
    return NULL;
  }
  path = g_find_program_in_path(name);
  if (!path)
    g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                "QEMU not found: no %s in $PATH; install qemu-system-x86 "
                "(scripts/deps.sh) or set $QEMU",
                name);
  return path;
}

/* The last TAIL_BYTES of a file, from a line start, or a placeholder. */
static char *file_tail(const char *path) {
  g_autofree char *text = NULL;
  gsize len = 0;
  const char *start;

  if (!g_file_get_contents(path, &text, &len, NULL) || len == 0)
    return g_strdup("(empty)");
  for (gsize i = 0; i < len; i++)
    if (text[i] == '\0')
      text[i] = ' ';
  start = text;
  if (len > TAIL_BYTES) {
    const char *nl;

    start = text + len - TAIL_BYTES;
    nl = strchr(start, '\n');
    if (nl && nl[1] != '\0')
      start = nl + 1;
  }
  return g_strstrip(g_strdup(start));
}

static char *describe_status(TestQemu *q) {
  if (!q->reaped)
    return g_strdup("is still running");
  if (WIFEXITED(q->status))
    return g_strdup_printf("exited with status %d", WEXITSTATUS(q->status));
  if (WIFSIGNALED(q->status))
    return g_strdup_printf("was killed by signal %d (%s)", WTERMSIG(q->status),
                           g_strsignal(WTERMSIG(q->status)));
  return g_strdup_printf("ended with wait status 0x%x", (unsigned)q->status);
}

/* Runs in the child between fork and exec: die with the parent. */
static void child_setup(gpointer data) {
  pid_t parent = (pid_t)GPOINTER_TO_INT(data);

  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127); /* the parent died before prctl took effect */
}

/* Connect to a QMP socket and wait for the greeting; then hang up. */
static gboolean probe_qmp(const char *path, gint64 deadline) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  char buf[256];
  gboolean ok = FALSE;
  int fd;

  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return FALSE;
  g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
    gsize got = 0;

    while (got < sizeof(buf) - 1) {
      struct pollfd pfd = {.fd = fd, .events = POLLIN};
      gint64 left_ms = (deadline - g_get_monotonic_time()) / 1000;
      ssize_t n;
      int r;

      if (left_ms <= 0)
        break;
      r = poll(&pfd, 1, (int)MIN(left_ms, 1000));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      n = read(fd, buf + got, sizeof(buf) - 1 - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += (gsize)n;
      buf[got] = '\0';
      if (strstr(buf, "\"QMP\"")) {
        ok = TRUE;
        break;
      }
    }
  }
  close(fd);
  return ok;
}

static void rm_rf(const char *path) {
  GStatBuf st;

  if (g_lstat(path, &st) != 0)
    return;
  if (S_ISDIR(st.st_mode)) {
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;

    if (dir) {
      while ((name = g_dir_read_name(dir))) {
        g_autofree char *child = g_build_filename(path, name, NULL);

        rm_rf(child);
      }
      g_dir_close(dir);
    }
    g_rmdir(path);
  } else {
    g_unlink(path);
  }
}

static void add_arg(GPtrArray *argv, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void add_arg(GPtrArray *argv, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  g_ptr_array_add(argv, g_strdup_vprintf(fmt, ap));
  va_end(ap);
}

static gboolean spawn_qemu(TestQemu *q, const TestQemuOptions *opts, GError **error) {
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *qemu = NULL;
  g_autofree char *cmdline = NULL;
  g_autofree char *cmdline_path = NULL;
  int devnull, logfd;
  gboolean ok;

  if (opts->qemu_binary) {
    qemu = g_find_program_in_path(opts->qemu_binary);
    if (!qemu) {
      g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                  "QEMU not found: no %s in $PATH (for qemu-system-ppc64: "
                  "apt-get install qemu-system-ppc)",
                  opts->qemu_binary);
      return FALSE;
    }
  } else {
    qemu = find_qemu(error);
  }
  if (!qemu)
    return FALSE;

  g_ptr_array_add(argv, g_strdup(qemu));
  add_arg(argv, "-accel");
  add_arg(argv, "tcg");
  add_arg(argv, "-machine");
  add_arg(argv, "%s", opts->machine ? opts->machine : "pc");
  add_arg(argv, "-nodefaults");
  add_arg(argv, "-no-user-config");
  add_arg(argv, "-display");
  add_arg(argv, "none");
  add_arg(argv, "-m");
  add_arg(argv, "%s", opts->mem ? opts->mem : "256M");
  add_arg(argv, "-smp");
  add_arg(argv, "%s", opts->smp ? opts->smp : "1");
  add_arg(argv, "-qmp");
  add_arg(argv, "unix:%s,server=on,wait=off", q->qmp_path);
  add_arg(argv, "-qmp");
  add_arg(argv, "unix:%s,server=on,wait=off", q->spare_path);
  add_arg(argv, "-serial");
  add_arg(argv, "file:%s", q->console_path);
  if (opts->paused)
    add_arg(argv, "-S");
  if (opts->with_guest) {
    g_autofree char *gdir = guest_dir();

    if (!test_qemu_guest_available(error))
      return FALSE;
    add_arg(argv, "-kernel");
    g_ptr_array_add(argv, g_build_filename(gdir, "vmlinuz", NULL));
    add_arg(argv, "-initrd");
    g_ptr_array_add(argv, g_build_filename(gdir, "initrd.img", NULL));
    add_arg(argv, "-append");
    add_arg(argv, "console=ttyS0 quiet%s%s", opts->guest_cmdline ? " " : "",
            opts->guest_cmdline ? opts->guest_cmdline : "");
  }
  for (const char *const *a = opts->extra_args; a && *a; a++)
    add_arg(argv, "%s", *a);
  g_ptr_array_add(argv, NULL);

  /* For whoever debugs a failure: the exact command, one word per line. */
  cmdline = g_strjoinv("\n", (char **)argv->pdata);
  cmdline_path = g_build_filename(q->dir, "cmdline", NULL);
  g_file_set_contents(cmdline_path, cmdline, -1, NULL);

  devnull = g_open("/dev/null", O_RDONLY | O_CLOEXEC, 0);
  logfd = g_open(q->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (devnull < 0 || logfd < 0) {
    int err = errno;

    g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED, "cannot open %s: %s",
                devnull < 0 ? "/dev/null" : q->log_path, g_strerror(err));
    if (devnull >= 0)
      close(devnull);
    if (logfd >= 0)
      close(logfd);
    return FALSE;
  }
  ok = g_spawn_async_with_fds(q->dir, (char **)argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                              child_setup, GINT_TO_POINTER((int)getpid()), &q->pid, devnull,
                              logfd, logfd, error);
  close(devnull);
  close(logfd);
  if (!ok) {
    g_prefix_error(error, "cannot start %s: ", qemu);
    q->reaped = TRUE;
    return FALSE;
  }
  return TRUE;
}

static gboolean wait_ready(TestQemu *q, GError **error) {
  gint64 deadline = g_get_monotonic_time() + READY_TIMEOUT_US;
  gboolean qmp_ok = FALSE, spare_ok = FALSE;

  for (;;) {
    if (!test_qemu_is_running(q)) {
      g_autofree char *how = describe_status(q);
      g_autofree char *tail = file_tail(q->log_path);

      g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                  "QEMU %s before its QMP sockets were ready; QEMU output:\n%s", how, tail);
      return FALSE;
    }
    if (!qmp_ok)
      qmp_ok = probe_qmp(q->qmp_path, deadline);
    if (qmp_ok && !spare_ok)
      spare_ok = probe_qmp(q->spare_path, deadline);
    if (qmp_ok && spare_ok)
      return TRUE;
    if (g_get_monotonic_time() >= deadline) {
      g_autofree char *tail = file_tail(q->log_path);

      g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                  "QEMU's QMP sockets did not answer within %d s (%s: %s, %s: %s); "
                  "QEMU output:\n%s",
                  (int)(READY_TIMEOUT_US / G_USEC_PER_SEC), q->qmp_path,
                  qmp_ok ? "ok" : "no greeting", q->spare_path,
                  spare_ok ? "ok" : "no greeting", tail);
      return FALSE;
    }
    g_usleep(POLL_INTERVAL_US);
  }
}

TestQemu *test_qemu_start(const TestQemuOptions *opts, GError **error) {
  static const TestQemuOptions defaults;
  g_autoptr(TestQemu) q = NULL;
  struct sockaddr_un sa;
  GError *local = NULL;
  char *dir;

  g_return_val_if_fail(error == NULL || *error == NULL, NULL);
  if (!opts)
    opts = &defaults;

  dir = g_dir_make_tmp("qhp-XXXXXX", &local);
  if (!dir) {
    g_propagate_prefixed_error(error, local, "cannot create the QEMU temp dir: ");
    return NULL;
  }
  q = g_new0(TestQemu, 1);
  q->reaped = TRUE; /* nothing to kill yet */
  q->dir = dir;
  q->qmp_path = g_build_filename(dir, "qmp.sock", NULL);
  q->spare_path = g_build_filename(dir, "qmp-spare.sock", NULL);
  q->console_path = g_build_filename(dir, "console.log", NULL);
  q->log_path = g_build_filename(dir, "qemu.log", NULL);

  if (strlen(q->spare_path) >= sizeof(sa.sun_path)) {
    g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                "temp dir %s is too long for a unix socket path; set TMPDIR to "
                "something short such as /tmp",
                dir);
    return NULL;
  }
  if (strchr(dir, ',')) {
    g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                "temp dir %s contains a comma, which QEMU options cannot take; "
                "set TMPDIR to something plain such as /tmp",
                dir);
    return NULL;
  }

  if (!spawn_qemu(q, opts, error))
    return NULL;
  q->reaped = FALSE;
  if (!wait_ready(q, error))
    return NULL;
  return g_steal_pointer(&q);
}

const char *test_qemu_qmp_path(TestQemu *q) {
  g_return_val_if_fail(q != NULL, NULL);
  return q->qmp_path;
}

const char *test_qemu_spare_qmp_path(TestQemu *q) {
  g_return_val_if_fail(q != NULL, NULL);
  return q->spare_path;
}

const char *test_qemu_dir(TestQemu *q) {
  g_return_val_if_fail(q != NULL, NULL);
  return q->dir;
}

GPid test_qemu_pid(TestQemu *q) {
  g_return_val_if_fail(q != NULL, 0);
  return q->pid;
}

char *test_qemu_console(TestQemu *q) {
  char *text = NULL;
  gsize len = 0;

  g_return_val_if_fail(q != NULL, NULL);
  if (!g_file_get_contents(q->console_path, &text, &len, NULL))
    return g_strdup("");
  /* a stray NUL on the serial line must not hide what follows it */
  for (gsize i = 0; i < len; i++)
    if (text[i] == '\0')
      text[i] = ' ';
  return text;
}

gboolean test_qemu_wait_console(TestQemu *q, const char *needle, guint timeout_ms,
                                GError **error) {
  gint64 deadline;

  g_return_val_if_fail(q != NULL, FALSE);
  g_return_val_if_fail(needle != NULL, FALSE);
  g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

  deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
  for (;;) {
    /* check liveness first: output written just before exit still counts */
    gboolean running = test_qemu_is_running(q);
    g_autofree char *text = test_qemu_console(q);

    if (strstr(text, needle))
      return TRUE;
    if (!running) {
      g_autofree char *how = describe_status(q);
      g_autofree char *ctail = file_tail(q->console_path);
      g_autofree char *qtail = file_tail(q->log_path);

      g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                  "QEMU %s before the console showed \"%s\"; console:\n%s\nQEMU output:\n%s",
                  how, needle, ctail, qtail);
      return FALSE;
    }
    if (g_get_monotonic_time() >= deadline) {
      g_autofree char *ctail = file_tail(q->console_path);

      g_set_error(error, TEST_QEMU_ERROR, TEST_QEMU_ERROR_FAILED,
                  "the console did not show \"%s\" within %u ms; console:\n%s", needle,
                  timeout_ms, ctail);
      return FALSE;
    }
    g_usleep(POLL_INTERVAL_US);
  }
}

gboolean test_qemu_is_running(TestQemu *q) {
  g_return_val_if_fail(q != NULL, FALSE);
  while (!q->reaped) {
    int status = 0;
    pid_t r = waitpid(q->pid, &status, WNOHANG);

    if (r == 0)
      return TRUE;
    if (r == q->pid) {
      q->reaped = TRUE;
      q->status = status;
    } else if (r < 0 && errno != EINTR) {
      q->reaped = TRUE; /* reaped by someone else; exit status unknown */
      q->status = 0;
    }
  }
  return FALSE;
}

void test_qemu_kill(TestQemu *q) {
  g_return_if_fail(q != NULL);
  if (!test_qemu_is_running(q))
    return;
  kill(q->pid, SIGKILL);
  for (;;) {
    int status = 0;
    pid_t r = waitpid(q->pid, &status, 0);

    if (r == q->pid)
      q->status = status;
    if (r >= 0 || errno != EINTR)
      break;
  }
  q->reaped = TRUE;
  g_spawn_close_pid(q->pid);
}

void test_qemu_free(TestQemu *q) {
  if (!q)
    return;
  test_qemu_kill(q);
  if (q->dir) {
    const char *keep = g_getenv("HOTPLUG_TEST_KEEP");

    if (keep && *keep)
      g_printerr("test-qemu: keeping %s (HOTPLUG_TEST_KEEP is set)\n", q->dir);
    else
      rm_rf(q->dir);
  }
  g_free(q->dir);
  g_free(q->qmp_path);
  g_free(q->spare_path);
  g_free(q->console_path);
  g_free(q->log_path);
  g_free(q);
}
