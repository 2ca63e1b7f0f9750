/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Start a real QEMU for a test, and always kill it again.
 *
 * Every QEMU runs with -accel tcg -nodefaults -display none in its own temp
 * dir (g_dir_make_tmp "qhp-XXXXXX"), which holds:
 *   qmp.sock        QMP for the code under test   (test_qemu_qmp_path)
 *   qmp-spare.sock  QMP for the test's own checks (test_qemu_spare_qmp_path)
 *   console.log     the serial console (ttyS0)
 *   qemu.log        QEMU's stdout and stderr
 * Tests may put their own files (disk images ...) there too; the dir is
 * removed by test_qemu_free() unless $HOTPLUG_TEST_KEEP is set.
 *
 * The QEMU binary is $QEMU, else the one configure found, else
 * qemu-system-x86_64 from $PATH. The child gets PR_SET_PDEATHSIG(SIGKILL):
 * it dies with the thread that started it, so start it from the test's main
 * thread.
 */
#pragma once
#include <glib.h>

typedef struct TestQemu TestQemu;

typedef struct {
  const char *machine;            /* "pc" (default) or "q35" */
  gboolean with_guest;            /* boot tests/guest kernel+initrd; else no kernel */
  gboolean paused;                /* add -S */
  const char *guest_cmdline;      /* extra kernel command line words, may be NULL */
  const char *smp;                /* e.g. "1,maxcpus=4"; NULL = default "1" */
  const char *mem;                /* e.g. "512M,slots=2,maxmem=2G"; NULL = "256M" */
  const char *const *extra_args;  /* NULL-terminated extra qemu args, may be NULL */
  const char *qemu_binary;        /* e.g. "qemu-system-ppc64" (looked up in $PATH);
                                     NULL = $QEMU or the x86 one configure found */
} TestQemuOptions;

/* Start QEMU (-accel tcg, -nodefaults, -display none, two -qmp unix sockets in a fresh
 * temp dir: one for the code under test, one spare for the test's own checks; serial
 * console to a file in that dir). Returns once both QMP sockets accept connections
 * (poll, up to 20 s), else error with the tail of QEMU's stderr in the message.
 * The QEMU child gets prctl(PR_SET_PDEATHSIG, SIGKILL) so it dies with the test. */
TestQemu   *test_qemu_start(const TestQemuOptions *opts, GError **error);
const char *test_qemu_qmp_path(TestQemu *q);        /* for the code under test */
const char *test_qemu_spare_qmp_path(TestQemu *q);  /* the test's own */
const char *test_qemu_dir(TestQemu *q);             /* the temp dir */
GPid        test_qemu_pid(TestQemu *q);
/* Wait until the console file contains `needle` (e.g. "HOTPLUG-GUEST-READY"). */
gboolean    test_qemu_wait_console(TestQemu *q, const char *needle, guint timeout_ms, GError **error);
char       *test_qemu_console(TestQemu *q);          /* whole console so far */
gboolean    test_qemu_is_running(TestQemu *q);       /* waitpid WNOHANG */
void        test_qemu_kill(TestQemu *q);             /* SIGKILL + waitpid, idempotent */
void        test_qemu_free(TestQemu *q);             /* kills if running, removes temp dir */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestQemu, test_qemu_free)
/* Where the guest lives: $HOTPLUG_GUEST_DIR or ~/.cache/qmp-hotplug/guest.
 * Returns FALSE with an error saying to run tests/guest/build-guest.sh when missing. */
gboolean    test_qemu_guest_available(GError **error);
