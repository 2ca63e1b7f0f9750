/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmp-hotplug-info: connect to one QEMU's QMP socket with libqmp-hotplug,
 * print QEMU's greeting and what the VM can hot(un)plug, and exit.
 *
 * Build against the installed library:
 *
 *     cc -o qmp-hotplug-info qmp-hotplug-info.c $(pkg-config --cflags --libs qmp-hotplug)
 *
 * Run:
 *
 *     ./qmp-hotplug-info /run/vm1.qmp
 *
 * The socket serves one client at a time: point this at a spare -qmp
 * socket, not the one hotplugd holds.  Exit status 0 on success, 1 when
 * the VM cannot be reached or does not answer, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <glib.h>

#include <qmp-hotplug/qmp-hotplug.h>

#define INFO_TIMEOUT_MS 10000

typedef struct {
    gboolean done;
    QmpCaps *caps;
    GError *error;
} InfoProbe;

/* Called once, from the event loop, when every probe query has answered. */
static void
info_caps_cb(QmpConn *conn G_GNUC_UNUSED, QmpCaps *caps, const GError *error,
             gpointer opaque)
{
    InfoProbe *p = opaque;

    p->done = TRUE;
    p->caps = caps; /* transfer full; NULL on error */
    if (error)
        p->error = g_error_copy(error);
}

int
main(int argc, char **argv)
{
    struct event_base *base;
    g_autoptr(QmpConn) conn = NULL;
    g_autoptr(GError) error = NULL;
    const QmpGreeting *g;
    InfoProbe probe = {0};
    int rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s QMP_SOCKET\n", argv[0]);
        return 2;
    }
    base = event_base_new();
    conn = qmp_conn_new(base, argv[1], NULL);

    /* Connect, read the greeting, negotiate (qmp_capabilities). */
    if (!qmp_conn_open(conn, &error) || !qmp_conn_wait_ready(conn, INFO_TIMEOUT_MS, &error)) {
        fprintf(stderr, "%s: %s\n", argv[1], error->message);
        goto out;
    }

    g = qmp_conn_get_greeting(conn);
    printf("QEMU %d.%d.%d", g->major, g->minor, g->micro);
    if (g->package && *g->package)
        printf(" (%s)", g->package);
    printf("\nQMP capabilities offered:");
    for (char **c = g->capabilities; c && *c; c++)
        printf(" %s", *c);
    printf("\n");

    /* What this QEMU can do for hotplug: one asynchronous probe. */
    if (!qmp_caps_probe(conn, info_caps_cb, &probe, &error)) {
        fprintf(stderr, "%s: %s\n", argv[1], error->message);
        goto out;
    }
    if (!qmp_loop_run_until(base, &probe.done, INFO_TIMEOUT_MS)) {
        fprintf(stderr, "%s: no answer within %d ms\n", argv[1], INFO_TIMEOUT_MS);
        /* closing makes the probe finish (with an error) before we return */
        qmp_conn_close(conn);
        qmp_caps_free(probe.caps);
        g_clear_error(&probe.error);
        goto out;
    }
    if (probe.error) {
        fprintf(stderr, "%s: %s\n", argv[1], probe.error->message);
        g_error_free(probe.error);
        goto out;
    }
    printf("machine: %s\nrun state: %s\nhotplug capabilities:",
           qmp_caps_machine_type(probe.caps) ? qmp_caps_machine_type(probe.caps) : "?",
           qmp_caps_run_state(probe.caps) ? qmp_caps_run_state(probe.caps) : "?");
    for (const char *const *c = qmp_caps_list(probe.caps); *c; c++)
        printf(" %s", *c);
    printf("\n");
    qmp_caps_free(probe.caps);
    rc = 0;

out:
    qmp_conn_close(conn);
    g_clear_pointer(&conn, qmp_conn_unref);
    event_base_free(base);
    return rc;
}
