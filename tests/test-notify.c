/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd's systemd notifications, seen from the service manager's side:
 * the test binds the $NOTIFY_SOCKET datagram socket, starts the built
 * hotplugd binary in the foreground on a temp state directory, and reads
 * what it sends.  Covered: READY=1; STATUS= with the VM counts of the
 * configuration; RELOADING=1 (with MONOTONIC_USEC=) then READY=1 around
 * SIGHUP; WATCHDOG=1 at half of $WATCHDOG_USEC, none when $WATCHDOG_PID
 * names another process or no watchdog is asked for; STOPPING=1 and exit
 * status 0 on SIGTERM; a VM (a fake QMP peer served by the test) that
 * connects and then hangs up: STATUS= follows it, and the plain stderr log
 * says so at warning level.  No QEMU. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <fcntl.h>
#include <glib.h>

#include "fake-peer.h"

#define START_MS 10000

typedef struct {
    char *dir;
    int fd;     /* the $NOTIFY_SOCKET we read */
    GPid pid;   /* hotplugd */
    gboolean reaped;
    struct event_base *base;  /* runs the fake VM */
    int listen_fd;            /* vm1.qmp, when the test serves the VM */
    struct event *accept_ev;
    FakePeer *peer;
} Fixture;

static int
notify_setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    g_autofree char *path = NULL;

    f->dir = g_dir_make_tmp("test-notify-XXXXXX", NULL);
    assert_non_null(f->dir);
    path = g_build_filename(f->dir, "notify.sock", NULL);
    assert_true(strlen(path) < sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path));
    f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(f->fd >= 0);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    f->pid = -1;
    f->listen_fd = -1;
    f->base = event_base_new();
    *state = f;
    return 0;
}

static int
notify_teardown(void **state)
{
    Fixture *f = *state;
    g_autofree char *cmd = NULL;

    if (f->pid > 0 && !f->reaped) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    close(f->fd);
    g_clear_pointer(&f->peer, fake_peer_free);
    if (f->accept_ev)
        event_free(f->accept_ev);
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    event_base_free(f->base);
    cmd = g_strdup_printf("rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        g_printerr("cannot remove %s\n", f->dir);
    g_free(f->dir);
    g_free(f);
    return 0;
}

/* Start hotplugd with these extra environment variables (NAME=VALUE, NULL
 * terminated) and a config naming one VM whose socket does not exist. */
static void
notify_start(Fixture *f, const char *const *env_extra)
{
    g_autofree char *config = g_build_filename(f->dir, "hotplugd.conf", NULL);
    g_autofree char *notify = g_build_filename(f->dir, "notify.sock", NULL);
    g_autofree char *sock = g_build_filename(f->dir, "control.sock", NULL);
    g_autofree char *state = g_build_filename(f->dir, "state", NULL);
    g_autofree char *vm1 = g_build_filename(f->dir, "vm1.qmp", NULL);
    g_autofree char *text = g_strdup_printf("[vm vm1]\nqmp = %s\n", vm1);
    const char *argv[] = {HOTPLUGD_PATH, "--foreground", "--config", config, "--socket", sock,
                          "--state-dir", state, NULL};
    g_auto(GStrv) envp = g_get_environ();
    g_autoptr(GError) error = NULL;

    assert_true(g_file_set_contents(config, text, -1, NULL));
    envp = g_environ_setenv(envp, "NOTIFY_SOCKET", notify, TRUE);
    envp = g_environ_unsetenv(envp, "WATCHDOG_USEC");
    envp = g_environ_unsetenv(envp, "WATCHDOG_PID");
    for (const char *const *e = env_extra; e && *e; e++) {
        g_auto(GStrv) kv = g_strsplit(*e, "=", 2);
        envp = g_environ_setenv(envp, kv[0], kv[1], TRUE);
    }
    {
        g_autofree char *log = g_build_filename(f->dir, "hotplugd.log", NULL);
        int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(logfd >= 0);
        if (!g_spawn_async_with_fds(NULL, (char **)argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, NULL,
                                    NULL, &f->pid, -1, -1, logfd, &error))
            fail_msg("cannot start %s: %s", HOTPLUGD_PATH, error->message);
        close(logfd);
    }
}

/* hotplugd's standard error so far */
static char *
notify_log(Fixture *f)
{
    g_autofree char *log = g_build_filename(f->dir, "hotplugd.log", NULL);
    char *text = NULL;

    assert_true(g_file_get_contents(log, &text, NULL, NULL));
    return text;
}

/* The fake VM: the first connection to vm1.qmp gets a fake QEMU 7.2 peer
 * (greeting, qmp_capabilities; every probe answered with an error). */
static void
notify_accept_cb(evutil_socket_t fd, short what, void *opaque)
{
    Fixture *f = opaque;
    int c = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);

    if (c < 0)
        return;
    if (f->peer) {
        close(c); /* a reconnect after the hang-up: refused */
        return;
    }
    f->peer = fake_peer_new_from_fd(f->base, c);
    fake_peer_greet(f->peer);
}

static void
notify_serve_vm(Fixture *f)
{
    g_autofree char *path = g_build_filename(f->dir, "vm1.qmp", NULL);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};

    memcpy(sun.sun_path, path, strlen(path));
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(f->listen_fd, 4), 0);
    f->accept_ev = event_new(f->base, f->listen_fd, EV_READ | EV_PERSIST, notify_accept_cb, f);
    event_add(f->accept_ev, NULL);
}

/* The next datagram within timeout_ms (a new string), or NULL. */
static char *
notify_recv(Fixture *f, int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    char buf[4096];

    for (;;) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        gint64 left = (end - g_get_monotonic_time()) / 1000;
        ssize_t n;

        if (left <= 0)
            return NULL;
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        if (poll(&p, 1, (int)MIN(left, 20)) <= 0)
            continue;
        n = recv(f->fd, buf, sizeof(buf) - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        buf[n] = '\0';
        return g_strdup(buf);
    }
}

/* Wait for a datagram that starts with prefix; the ones before it are
 * counted into *watchdogs when they are WATCHDOG=1. */
static char *
notify_expect(Fixture *f, const char *prefix, int timeout_ms, guint *watchdogs)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        gint64 left = (end - g_get_monotonic_time()) / 1000;
        char *msg = left > 0 ? notify_recv(f, (int)left) : NULL;

        if (!msg)
            fail_msg("no \"%s\" from hotplugd within %d ms", prefix, timeout_ms);
        if (g_str_has_prefix(msg, prefix))
            return msg;
        if (watchdogs && g_str_equal(msg, "WATCHDOG=1"))
            (*watchdogs)++;
        g_free(msg);
    }
}

/* SIGTERM: STOPPING=1, then exit status 0. */
static void
notify_stop(Fixture *f)
{
    int status;

    assert_int_equal(kill(f->pid, SIGTERM), 0);
    g_free(notify_expect(f, "STOPPING=1", START_MS, NULL));
    assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
    f->reaped = TRUE;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Count WATCHDOG=1 messages over ms milliseconds. */
static guint
notify_count_watchdogs(Fixture *f, int ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
    guint n = 0;

    for (;;) {
        gint64 left = (end - g_get_monotonic_time()) / 1000;
        g_autofree char *msg = left > 0 ? notify_recv(f, (int)left) : NULL;

        if (!msg)
            return n;
        if (g_str_equal(msg, "WATCHDOG=1"))
            n++;
    }
}

static void
test_ready_status_reload(void **state)
{
    Fixture *f = *state;
    g_autofree char *ready = NULL, *status = NULL, *reloading = NULL, *again = NULL;
    g_auto(GStrv) lines = NULL;
    gint64 before, usec;

    notify_start(f, NULL);
    ready = notify_expect(f, "READY=1", START_MS, NULL);
    assert_string_equal(ready, "READY=1");
    status = notify_expect(f, "STATUS=", START_MS, NULL);
    assert_string_equal(status, "STATUS=1 VMs (0 connected), 0 open operations");

    before = g_get_monotonic_time();
    assert_int_equal(kill(f->pid, SIGHUP), 0);
    reloading = notify_expect(f, "RELOADING=1", START_MS, NULL);
    lines = g_strsplit(reloading, "\n", -1);
    assert_int_equal(g_strv_length(lines), 2);
    assert_true(g_str_has_prefix(lines[1], "MONOTONIC_USEC="));
    usec = g_ascii_strtoll(lines[1] + strlen("MONOTONIC_USEC="), NULL, 10);
    /* CLOCK_MONOTONIC, taken after the signal went out */
    assert_true(usec >= before);
    assert_true(usec <= g_get_monotonic_time());
    again = notify_expect(f, "READY=1", START_MS, NULL);
    assert_string_equal(again, "READY=1");
    /* no watchdog asked for: none sent */
    assert_int_equal(notify_count_watchdogs(f, 600), 0);
    notify_stop(f);
}

static void
test_watchdog(void **state)
{
    Fixture *f = *state;
    const char *env[] = {"WATCHDOG_USEC=200000", NULL};
    guint n;

    notify_start(f, env);
    g_free(notify_expect(f, "READY=1", START_MS, NULL));
    /* every 100 ms: about 10 in a second; at least 4 even on a loaded host */
    n = notify_count_watchdogs(f, 1000);
    assert_true(n >= 4);
    assert_true(n <= 12);
    notify_stop(f);
}

static void
test_watchdog_other_pid(void **state)
{
    Fixture *f = *state;
    g_autofree char *other = g_strdup_printf("WATCHDOG_PID=%d", (int)getpid());
    const char *env[] = {"WATCHDOG_USEC=200000", other, NULL};

    notify_start(f, env);
    g_free(notify_expect(f, "READY=1", START_MS, NULL));
    /* $WATCHDOG_PID is the test, not hotplugd: hotplugd must not answer */
    assert_int_equal(notify_count_watchdogs(f, 600), 0);
    notify_stop(f);
}

static void
test_vm_lost(void **state)
{
    Fixture *f = *state;
    g_autofree char *log = NULL;

    notify_serve_vm(f);
    notify_start(f, NULL);
    g_free(notify_expect(f, "READY=1", START_MS, NULL));
    g_free(notify_expect(f, "STATUS=1 VMs (1 connected), 0 open operations", START_MS, NULL));
    fake_peer_hangup(f->peer);
    g_free(notify_expect(f, "STATUS=1 VMs (0 connected), 0 open operations", START_MS, NULL));
    notify_stop(f);
    /* not the journal: plain lines with the level; a lost VM is a warning */
    log = notify_log(f);
    assert_non_null(strstr(log, " notice hotplugd: hotplugd " PACKAGE_VERSION " ready"));
    assert_non_null(strstr(log, " warning hotplugd: VM vm1: connection lost"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_status_reload, notify_setup, notify_teardown),
        cmocka_unit_test_setup_teardown(test_watchdog, notify_setup, notify_teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_other_pid, notify_setup, notify_teardown),
        cmocka_unit_test_setup_teardown(test_vm_lost, notify_setup, notify_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
