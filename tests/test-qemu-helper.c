/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Self-test of tests/qemu-helper.c: a real QEMU starts, answers, and dies. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "qemu-helper.h"

#define GUEST_BOOT_TIMEOUT_MS 60000

static void assert_no_error(TestQemu *q, GError *error) {
  if (!q || error)
    fail_msg("test_qemu_start: %s", error ? error->message : "(NULL without error)");
}

static gboolean is_socket(const char *path) {
  GStatBuf st;

  return g_lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static gboolean pid_alive(GPid pid) {
  return kill(pid, 0) == 0;
}

/* The pid is gone for good: reaped, so kill() says ESRCH. */
static void assert_pid_gone(GPid pid) {
  int r = kill(pid, 0);
  int err = errno;

  assert_int_equal(r, -1);
  assert_int_equal(err, ESRCH);
}

/* Read from fd until `needle` shows up (TRUE) or 10 s pass (FALSE). */
static gboolean read_until(int fd, GString *buf, const char *needle) {
  gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

  while (!strstr(buf->str, needle)) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char chunk[1024];
    ssize_t n;

    if (g_get_monotonic_time() >= deadline)
      return FALSE;
    if (poll(&pfd, 1, 100) <= 0)
      continue;
    n = read(fd, chunk, sizeof(chunk));
    if (n <= 0)
      return FALSE;
    g_string_append_len(buf, chunk, n);
  }
  return TRUE;
}

/* Ask QEMU for its run state over a QMP socket; returns the raw reply text. */
static char *qmp_query_status(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  g_autoptr(GString) buf = g_string_new(NULL);
  static const char cmds[] = "{\"execute\": \"qmp_capabilities\"}\n"
                             "{\"execute\": \"query-status\"}\n";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    int err = errno;

    close(fd);
    fail_msg("connect %s: %s", path, g_strerror(err));
  }
  if (!read_until(fd, buf, "\"QMP\"") ||
      write(fd, cmds, sizeof(cmds) - 1) != (ssize_t)(sizeof(cmds) - 1) ||
      !read_until(fd, buf, "\"running\"")) {
    close(fd);
    fail_msg("no query-status reply on %s; got: %s", path, buf->str);
  }
  close(fd);
  return g_strdup(buf->str);
}

static int teardown_qemu(void **state) {
  test_qemu_free(*state);
  *state = NULL;
  return 0;
}

static void test_paused_no_guest(void **state) {
  TestQemuOptions opts = {.paused = TRUE};
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *status = NULL;
  TestQemu *q;
  GPid pid;

  q = *state = test_qemu_start(&opts, &error);
  assert_no_error(q, error);

  dir = g_strdup(test_qemu_dir(q));
  assert_true(g_file_test(dir, G_FILE_TEST_IS_DIR));
  assert_true(g_str_has_prefix(test_qemu_qmp_path(q), dir));
  assert_true(g_str_has_prefix(test_qemu_spare_qmp_path(q), dir));
  assert_string_not_equal(test_qemu_qmp_path(q), test_qemu_spare_qmp_path(q));
  assert_true(is_socket(test_qemu_qmp_path(q)));
  assert_true(is_socket(test_qemu_spare_qmp_path(q)));

  pid = test_qemu_pid(q);
  assert_true(pid > 0);
  assert_true(pid_alive(pid));
  assert_true(test_qemu_is_running(q));

  /* both monitors answer, and -S left the VM in prelaunch */
  status = qmp_query_status(test_qemu_spare_qmp_path(q));
  assert_non_null(strstr(status, "\"prelaunch\""));
  g_free(g_steal_pointer(&status));
  status = qmp_query_status(test_qemu_qmp_path(q));
  assert_non_null(strstr(status, "\"prelaunch\""));

  /* no guest, so nothing ever shows up on the console */
  assert_false(test_qemu_wait_console(q, "HOTPLUG-GUEST-READY", 200, &error));
  assert_non_null(error);
  assert_non_null(strstr(error->message, "did not show"));
  g_clear_error(&error);

  test_qemu_kill(q);
  assert_false(test_qemu_is_running(q));
  assert_pid_gone(pid);
  test_qemu_kill(q); /* idempotent */
  assert_false(test_qemu_is_running(q));

  /* a dead QEMU fails a console wait at once */
  assert_false(test_qemu_wait_console(q, "HOTPLUG-GUEST-READY", 60000, &error));
  assert_non_null(error);
  assert_non_null(strstr(error->message, "killed by signal 9"));

  test_qemu_free(q);
  *state = NULL;
  assert_false(g_file_test(dir, G_FILE_TEST_EXISTS));
}

static void test_free_kills_running(void **state) {
  g_autoptr(GError) error = NULL;
  TestQemu *q;
  GPid pid;

  q = *state = test_qemu_start(NULL, &error);
  assert_no_error(q, error);
  pid = test_qemu_pid(q);
  assert_true(pid_alive(pid));
  test_qemu_free(q);
  *state = NULL;
  assert_pid_gone(pid);
}

static void test_guest_boots(void **state) {
  TestQemuOptions opts = {
      .with_guest = TRUE,
      .smp = "1,maxcpus=4",
      .mem = "512M,slots=2,maxmem=2G",
      .guest_cmdline = "hp.mem=movable",
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *console = NULL;
  TestQemu *q;

  if (!test_qemu_guest_available(&error))
    fail_msg("%s", error->message);
  q = *state = test_qemu_start(&opts, &error);
  assert_no_error(q, error);
  if (!test_qemu_wait_console(q, "HOTPLUG-GUEST-READY", GUEST_BOOT_TIMEOUT_MS, &error))
    fail_msg("%s", error->message);
  console = test_qemu_console(q);
  assert_non_null(strstr(console, "HOTPLUG-GUEST: options cpu=1 mem=movable"));
  assert_true(test_qemu_is_running(q));
}

static void test_qemu_missing(void **state) {
  g_autoptr(GError) error = NULL;
  g_autofree char *saved = g_strdup(g_getenv("QEMU"));
  TestQemu *q;

  g_setenv("QEMU", "/nonexistent/qemu-system-x86_64", TRUE);
  q = *state = test_qemu_start(NULL, &error);
  if (saved)
    g_setenv("QEMU", saved, TRUE);
  else
    g_unsetenv("QEMU");
  assert_null(q);
  assert_non_null(error);
  assert_non_null(strstr(error->message, "QEMU not found"));
}

static void test_bad_option_reports_stderr(void **state) {
  static const char *const extra[] = {"-no-such-option", NULL};
  TestQemuOptions opts = {.paused = TRUE, .extra_args = extra};
  g_autoptr(GError) error = NULL;
  TestQemu *q;

  q = *state = test_qemu_start(&opts, &error);
  assert_null(q);
  assert_non_null(error);
  if (!strstr(error->message, "-no-such-option"))
    fail_msg("QEMU's stderr is not in the error: %s", error->message);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_paused_no_guest, teardown_qemu),
      cmocka_unit_test_teardown(test_free_kills_running, teardown_qemu),
      cmocka_unit_test_teardown(test_guest_boots, teardown_qemu),
      cmocka_unit_test_teardown(test_qemu_missing, teardown_qemu),
      cmocka_unit_test_teardown(test_bad_option_reports_stderr, teardown_qemu),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
