/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd: see hotplugd(8). */
#define G_LOG_DOMAIN "hotplugd"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-glib/json-glib.h>

#include "daemon.h"

static int hotplugd_verbose;
static gboolean hotplugd_syslog;
static gboolean hotplugd_journal;

/* Every message of hotplugd and the library: to the journal with its
 * fields (PRIORITY, GLIB_DOMAIN, CODE_FILE, ...) when stderr is the
 * journal (hotplugd.service), to syslog when detached, else one plain line
 * on stderr.  g_message is notice, g_info info, g_debug debug (-v, -vv). */
static GLogWriterOutput
hotplugd_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                    gpointer opaque)
{
    const char *domain = NULL, *message = NULL;
    int prio;
    const char *tag;

    if ((level & G_LOG_LEVEL_DEBUG) && hotplugd_verbose < 2)
        return G_LOG_WRITER_HANDLED;
    if ((level & G_LOG_LEVEL_INFO) && hotplugd_verbose < 1)
        return G_LOG_WRITER_HANDLED;
    if (hotplugd_journal &&
        g_log_writer_journald(level, fields, n_fields, opaque) == G_LOG_WRITER_HANDLED)
        return G_LOG_WRITER_HANDLED;
    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "GLIB_DOMAIN") && fields[i].length < 0)
            domain = fields[i].value;
        else if (g_str_equal(fields[i].key, "MESSAGE") && fields[i].length < 0)
            message = fields[i].value;
    }
    if (!message)
        message = "(no message)";
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) {
        prio = LOG_ERR;
        tag = "error";
    } else if (level & G_LOG_LEVEL_WARNING) {
        prio = LOG_WARNING;
        tag = "warning";
    } else if (level & G_LOG_LEVEL_MESSAGE) {
        prio = LOG_NOTICE;
        tag = "notice";
    } else if (level & G_LOG_LEVEL_INFO) {
        prio = LOG_INFO;
        tag = "info";
    } else {
        prio = LOG_DEBUG;
        tag = "debug";
    }
    if (hotplugd_syslog) {
        syslog(prio, "%s: %s", domain ? domain : "hotplugd", message);
        return G_LOG_WRITER_HANDLED;
    }
    {
        /* localtime_r reads the zone once (a GDateTime per line would
         * stat /etc/localtime every time) */
        gint64 now = g_get_real_time();
        time_t secs = (time_t)(now / G_USEC_PER_SEC);
        struct tm tm;
        char ts[16] = "";

        localtime_r(&secs, &tm);
        strftime(ts, sizeof ts, "%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03d %s %s: %s\n", ts, (int)(now % G_USEC_PER_SEC / 1000), tag,
                domain ? domain : "hotplugd", message);
    }
    return G_LOG_WRITER_HANDLED;
}

static void
hotplugd_usage(FILE *f)
{
    fprintf(f,
            "usage: hotplugd [--config FILE] [--socket PATH] [--state-dir DIR] [--foreground] "
            "[-v]\n"
            "\n"
            "The qmp-hotplug daemon: owns the QMP connections of the VMs it manages, runs\n"
            "their hotplug operations with deadlines and retries, and keeps a durable\n"
            "event log and an in-flight journal under its state directory.\n"
            "\n"
            "  --config FILE     read FILE (hotplugd.conf(5)); no file by default\n"
            "  --socket PATH     control socket (default: $XDG_RUNTIME_DIR/hotplugd/control.sock,\n"
            "                    /run/hotplugd/control.sock for root)\n"
            "  --state-dir DIR   state directory (default: $XDG_STATE_HOME/hotplugd,\n"
            "                    /var/lib/hotplugd for root)\n"
            "  --foreground      stay in the foreground and log to stderr (else: detach,\n"
            "                    log to syslog)\n"
            "  -v, --verbose     more messages; twice: debug, with QMP traffic\n"
            "  -h, --help        this help\n"
            "  --version         print the version\n"
            "\n"
            "Signals: SIGHUP re-reads the config (VMs only), SIGTERM/SIGINT stop.\n"
            "See hotplugd(8), hotplugd.conf(5), hotplugctl(1).\n");
}

/* Detach; the parent exits once the child says it is ready, or prints why
 * it failed: one status byte, then the message. */
static int
hotplugd_daemonize(int *ready_fd)
{
    int pipefd[2];
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        char status = 1, msg[1024];
        ssize_t n;
        close(pipefd[1]);
        if (read(pipefd[0], &status, 1) != 1)
            status = 1;
        if (status && (n = read(pipefd[0], msg, sizeof(msg) - 1)) > 0) {
            msg[n] = '\0';
            fprintf(stderr, "hotplugd: cannot start: %s\n", msg);
        }
        _exit(status);
    }
    close(pipefd[0]);
    if (setsid() < 0)
        return -1;
    if (chdir("/") < 0)
        return -1;
    {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
            if (null > STDERR_FILENO)
                close(null);
        }
    }
    *ready_fd = pipefd[1];
    return 0;
}

static void
hotplugd_tell_parent(int *fd, char status, const char *msg)
{
    if (*fd < 0)
        return;
    if (write(*fd, &status, 1) != 1 || (msg && write(*fd, msg, strlen(msg)) < 0))
        g_debug("parent gone");
    close(*fd);
    *fd = -1;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"state-dir", required_argument, NULL, 'd'},
        {"foreground", no_argument, NULL, 'f'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    const char *config_path = NULL, *socket_path = NULL, *state_dir = NULL;
    g_autofree char *abs_config = NULL;
    gboolean foreground = FALSE;
    g_autoptr(GError) error = NULL;
    DaemonConfig *cfg;
    struct event_base *base;
    Daemon *d;
    int ready_fd = -1;
    int ch, rc;

    while ((ch = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 's':
            socket_path = optarg;
            break;
        case 'd':
            state_dir = optarg;
            break;
        case 'f':
            foreground = TRUE;
            break;
        case 'v':
            hotplugd_verbose++;
            break;
        case 'h':
            hotplugd_usage(stdout);
            return 0;
        case 'V':
            printf("hotplugd %s\n", PACKAGE_VERSION);
            return 0;
        default:
            hotplugd_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hotplugd: unexpected argument '%s'\n", argv[optind]);
        hotplugd_usage(stderr);
        return 2;
    }
    hotplugd_journal = foreground && g_log_writer_is_journald(fileno(stderr));
    g_log_set_writer_func(hotplugd_log_writer, NULL, NULL);
    /* messages nobody would see are not even formatted */
    g_log_set_debug_enabled(hotplugd_verbose >= 2);
    daemon_set_info_logging(hotplugd_verbose >= 1);
    /* SIGHUP re-reads it after we chdir("/") */
    abs_config = config_path ? g_canonicalize_filename(config_path, NULL) : NULL;
    config_path = abs_config;

    cfg = config_path ? daemon_config_load(config_path, &error) : daemon_config_new_defaults();
    if (!cfg) {
        fprintf(stderr, "hotplugd: %s\n", error->message);
        return 1;
    }
    if (socket_path) {
        g_free(cfg->socket_path);
        cfg->socket_path = g_canonicalize_filename(socket_path, NULL);
    }
    if (state_dir) {
        g_free(cfg->state_dir);
        cfg->state_dir = g_canonicalize_filename(state_dir, NULL);
    }
    if (!foreground) {
        hotplugd_syslog = TRUE;
        openlog("hotplugd", LOG_PID, LOG_DAEMON);
        if (hotplugd_daemonize(&ready_fd) < 0) {
            fprintf(stderr, "hotplugd: cannot detach: %s\n", g_strerror(errno));
            return 1;
        }
    }
    g_message("hotplugd %s (glib %u.%u.%u, json-glib %s, libevent %s)", PACKAGE_VERSION,
              glib_major_version, glib_minor_version, glib_micro_version, JSON_VERSION_S,
              event_get_version());
    {
        /* a loop busy with ready I/O looks at its timers (the deadlines,
         * priority 0) at least every 0.5 ms; timers on the precise monotonic
         * clock (and a timerfd), not the coarse one of 4 ms ticks */
        struct event_config *ecfg = event_config_new();
        struct timeval slice = {0, 500};

        event_config_set_max_dispatch_interval(ecfg, &slice, -1, 1);
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    d = daemon_new(base, cfg, config_path, &error);
    if (!d) {
        /* not g_critical: that is for bugs (and fatal under G_DEBUG=fatal-criticals) */
        /* in the foreground the log handler prints it on stderr; detached,
         * the parent prints what hotplugd_tell_parent sends it */
        g_warning("cannot start: %s", error->message);
        hotplugd_tell_parent(&ready_fd, 1, error->message);
        event_base_free(base);
        return 1;
    }
    hotplugd_tell_parent(&ready_fd, 0, NULL);
    rc = daemon_run(d);
    daemon_free(d);
    event_base_free(base);
    g_message("stopped");
    return rc;
}
