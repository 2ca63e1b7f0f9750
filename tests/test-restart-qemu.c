/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Restarts against a real QEMU (tests/rig.h), no guest (-S: an unplug stays
 * pending until the test resets the machine) unless said:
 *  - the engine's identity of the QEMU process (hotplug_vm_instance) and
 *    its listeners across a restart of QEMU on the same socket;
 *  - QEMU killed and started again on the same socket while an unplug is
 *    pending (hotplugd live), and the same with hotplugd killed -9 across
 *    the QEMU restart (a pending unplug and a tracked not-deleted one):
 *    vm-gone, never deleted or deleted-late;
 *  - hotplugd killed -9 at each step of `disk add`, `disk del`, `memory add`
 *    and `memory del`: after its restart nothing of the half-done composite
 *    is left in QEMU and the same ID can be added again.  hotplugd reaches
 *    QEMU through a proxy in this test that stops at a chosen command (before
 *    passing it on, or after QEMU answered it without passing the answer
 *    back), so the kill lands exactly there; the product has no hook for it. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hotplug-vm.h"
#include "qmp-json.h"
#include "rig.h"

#define OUTCOME_MS 30000

/* ---- the event log ----------------------------------------------------- */

/* The outcomes the log holds for device, oldest first. */
static GPtrArray *
outcomes_of(RigHotplugd *d, const char *device)
{
    g_autofree char *out = NULL, *err = NULL;
    g_auto(GStrv) lines = NULL;
    GPtrArray *list = g_ptr_array_new_with_free_func(g_free);
    int rc = rig_hotplugd_ctl_text(d, &out, &err, "--json", "events", NULL);

    if (rc != 0)
        fail_msg("events: exit %d: %s", rc, err);
    lines = g_strsplit(out, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        g_autoptr(JsonNode) n = NULL;
        JsonObject *o;

        if (!*lines[i])
            continue;
        n = rig_json_parse(lines[i]);
        o = qmp_json_node_object(n);
        if (g_strcmp0(qmp_json_get_string(o, "kind"), "outcome") == 0 &&
            g_strcmp0(qmp_json_get_string(o, "device"), device) == 0)
            g_ptr_array_add(list, g_strdup(qmp_json_get_string(o, "outcome")));
    }
    return list;
}

/* Wait until device has n outcomes in the log; the n-th one. */
static char *
wait_outcome(RigHotplugd *d, const char *device, guint n)
{
    gint64 end = g_get_monotonic_time() + (gint64)OUTCOME_MS * 1000;

    for (;;) {
        g_autoptr(GPtrArray) list = outcomes_of(d, device);

        if (list->len >= n)
            return g_strdup(list->pdata[n - 1]);
        if (g_get_monotonic_time() > end)
            fail_msg("%s: %u outcome(s) in the log after %u ms, waited for %u", device, list->len,
                     OUTCOME_MS, n);
        g_usleep(100 * 1000);
    }
}

static RigVm *
start_vm(const char *const *extra)
{
    RigVmOptions o = {.machine = RIG_MACHINE_PC, .extra_args = extra};

    return rig_vm_start(&o);
}

/* ---- QEMU restarted on the same socket --------------------------------- */

/* hotplugd stays up; QEMU is killed and started again while device_del
 * waits for a guest that never answers, and another unplug is tracked
 * (not-deleted): the new QEMU lacks both devices, but that is not a
 * deletion. */
static void
test_qemu_restart_live(void **state)
{
    g_autoptr(RigVm) vm = start_vm(NULL);
    g_autoptr(RigHotplugd) d = rig_hotplugd_new(NULL);
    g_autoptr(RigCtl) r = NULL;
    g_autofree char *outcome = NULL;
    RigCtlRun *run;

    rig_vm_qmp_ok(vm, "device_add", "{\"driver\": \"e1000\", \"id\": \"n1\"}");
    rig_vm_qmp_ok(vm, "device_add", "{\"driver\": \"e1000\", \"id\": \"n2\"}");
    rig_hotplugd_start(d);
    rig_hotplugd_add_vm(d, "vm1", rig_vm_qmp_path(vm));
    /* n2: not-deleted, tracked */
    r = rig_hotplugd_ctl(d, "device", "del", "vm1", "n2", "--timeout", "1", NULL);
    rig_ctl_assert_exit(r, 5);
    g_clear_pointer(&r, rig_ctl_free);
    run = rig_hotplugd_ctl_start(d, "device", "del", "vm1", "n1", "--timeout", "120", NULL);
    /* device_del reached QEMU: the attempt is in the log */
    {
        gint64 end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
        g_autofree char *out = NULL;

        for (;;) {
            g_clear_pointer(&out, g_free);
            rig_hotplugd_ctl_text(d, &out, NULL, "--json", "ops", NULL);
            if (out && strstr(out, "\"waiting\""))
                break;
            if (g_get_monotonic_time() > end)
                fail_msg("the unplug never waited: %s", out ? out : "");
            g_usleep(50 * 1000);
        }
    }
    rig_vm_restart(vm);
    assert_false(rig_vm_peripheral_has(vm, "n1"));
    r = rig_ctl_wait(run, OUTCOME_MS);
    rig_ctl_assert_exit(r, 6);
    assert_non_null(strstr(r->out, "vm-gone"));
    assert_non_null(strstr(r->out, "restarted"));
    outcome = wait_outcome(d, "n1", 1);
    assert_string_equal(outcome, "vm-gone");
    /* the tracked one: vm-gone as its second outcome, not deleted-late */
    g_free(outcome);
    outcome = wait_outcome(d, "n2", 2);
    assert_string_equal(outcome, "vm-gone");
    rig_hotplugd_stop(d);
}

typedef struct {
    guint calls;
    char *old, *now;
} InstanceSeen;

static void
instance_cb(HotplugVm *vm, const char *old, const char *now, gpointer opaque)
{
    InstanceSeen *seen = opaque;

    seen->calls++;
    g_free(seen->old);
    g_free(seen->now);
    seen->old = g_strdup(old);
    seen->now = g_strdup(now);
}

/* The engine's identity of the QEMU process: QEMU's pid and its start time,
 * the same across reconnects to one process, another after a restart on the
 * same socket, which listeners hear of (before the operations are
 * reconciled). */
static void
test_instance_identity(void **state)
{
    static const HotplugVmListener l = {.instance = instance_cb};
    g_autoptr(RigVm) vm = start_vm(NULL);
    QmpConnOptions co = {.reconnect = TRUE, .backoff_initial_ms = 50, .backoff_max_ms = 200};
    g_autoptr(QmpConn) conn = qmp_conn_new(rig_vm_base(vm), rig_vm_qmp_path(vm), &co);
    g_autoptr(GError) error = NULL;
    g_autofree char *first = NULL, *want = NULL;
    InstanceSeen seen = {0};
    HotplugVm *hv;

    assert_true(qmp_conn_open(conn, &error));
    if (!qmp_conn_wait_ready(conn, 20000, &error))
        fail_msg("%s", error->message);
    hv = hotplug_vm_new("vm1", conn, NULL);
    hotplug_vm_add_listener(hv, &l, &seen);
    assert_non_null(hotplug_vm_instance(hv));
    first = g_strdup(hotplug_vm_instance(hv));
    want = g_strdup_printf("%d:", (int)rig_vm_pid(vm));
    assert_true(g_str_has_prefix(first, want));
    rig_vm_restart(vm);
    RIG_RUN_UNTIL(vm, seen.calls > 0, 20000);
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.old, first);
    assert_string_equal(seen.now, hotplug_vm_instance(hv));
    assert_string_not_equal(seen.now, first);
    g_free(want);
    want = g_strdup_printf("%d:", (int)rig_vm_pid(vm));
    assert_true(g_str_has_prefix(seen.now, want));
    hotplug_vm_free(hv);
    qmp_conn_close(conn);
    g_free(seen.old);
    g_free(seen.now);
}

/* hotplugd killed -9 with an unplug pending and one tracked (not-deleted),
 * QEMU restarted while it is down: the journal names the QEMU each went to,
 * and the takeover sees another one. */
static void
test_qemu_restart_daemon_down(void **state)
{
    g_autoptr(RigVm) vm = start_vm(NULL);
    g_autoptr(RigHotplugd) d = rig_hotplugd_new(NULL);
    g_autoptr(RigCtl) r1 = NULL, r2 = NULL;
    g_autofree char *o1 = NULL, *o2 = NULL, *o2b = NULL;

    rig_vm_qmp_ok(vm, "device_add", "{\"driver\": \"e1000\", \"id\": \"n1\"}");
    rig_vm_qmp_ok(vm, "device_add", "{\"driver\": \"e1000\", \"id\": \"n2\"}");
    rig_hotplugd_start(d);
    rig_hotplugd_add_vm(d, "vm1", rig_vm_qmp_path(vm));
    r2 = rig_hotplugd_ctl(d, "device", "del", "vm1", "n2", "--timeout", "1", NULL);
    rig_ctl_assert_exit(r2, 5); /* not-deleted: tracked */
    r1 = rig_hotplugd_ctl(d, "device", "del", "vm1", "n1", "--timeout", "120", "--no-wait", NULL);
    rig_ctl_assert_exit(r1, 0);
    rig_hotplugd_kill9(d);
    rig_vm_restart(vm);
    rig_hotplugd_start(d);
    rig_hotplugd_wait_vm_ready(d, "vm1");
    o1 = wait_outcome(d, "n1", 1);
    assert_string_equal(o1, "vm-gone");
    o2 = wait_outcome(d, "n2", 1);
    assert_string_equal(o2, "not-deleted");
    o2b = wait_outcome(d, "n2", 2);
    assert_string_equal(o2b, "vm-gone");
    rig_hotplugd_stop(d);
}

/* ---- a proxy that stops at a chosen command ------------------------------ */

typedef struct {
    char *listen_path;
    const char *target_path;
    int lfd;
    GThread *thread;
    GMutex lock;
    gboolean stop;
    /* the trigger: the nth client line holding match */
    char *match;
    guint nth;
    gboolean after_reply; /* pass it on; hold back QEMU's answer */
    gboolean fired;
    /* counting: answers QEMU gave to lines holding count_match */
    char *count_match;
    guint answered;
} Proxy;

static int
proxy_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, path, sizeof sa.sun_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static gboolean
write_all(int fd, const char *buf, gsize len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        buf += n;
        len -= (gsize)n;
    }
    return TRUE;
}

/* The "id" of a QMP line as JSON text, or NULL. */
static char *
line_id(const char *line)
{
    g_autoptr(JsonParser) p = json_parser_new();
    JsonObject *o;
    JsonNode *id;

    if (!json_parser_load_from_data(p, line, -1, NULL))
        return NULL;
    o = qmp_json_node_object(json_parser_get_root(p));
    id = o ? json_object_get_member(o, "id") : NULL;
    return id ? json_to_string(id, FALSE) : NULL;
}

/* One client (hotplugd) until it goes. */
static void
proxy_serve(Proxy *p, int cfd)
{
    int qfd = proxy_connect(p->target_path);
    g_autoptr(GString) cbuf = g_string_new(NULL), qbuf = g_string_new(NULL);
    g_autoptr(GPtrArray) counted = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *held_id = NULL;
    gboolean frozen = FALSE;
    guint seen = 0;

    if (qfd < 0)
        return;
    for (;;) {
        struct pollfd pf[2] = {{cfd, POLLIN, 0}, {qfd, POLLIN, 0}};
        char buf[4096];
        ssize_t n;

        g_mutex_lock(&p->lock);
        if (p->stop) {
            g_mutex_unlock(&p->lock);
            break;
        }
        g_mutex_unlock(&p->lock);
        if (poll(pf, 2, 100) <= 0)
            continue;
        if (pf[0].revents) {
            n = read(cfd, buf, sizeof buf);
            if (n <= 0)
                break; /* hotplugd went */
            g_string_append_len(cbuf, buf, n);
            for (char *nl; (nl = strchr(cbuf->str, '\n'));) {
                gsize len = (gsize)(nl - cbuf->str) + 1;
                g_autofree char *line = g_strndup(cbuf->str, len);
                gboolean pass = !frozen;

                g_string_erase(cbuf, 0, (gssize)len);
                g_mutex_lock(&p->lock);
                if (!frozen && p->match && !p->fired && strstr(line, p->match) && ++seen == p->nth) {
                    if (p->after_reply) {
                        held_id = line_id(line);
                    } else {
                        p->fired = TRUE;
                        pass = FALSE;
                    }
                    frozen = TRUE; /* nothing more goes to QEMU */
                }
                if (pass && p->count_match && strstr(line, p->count_match)) {
                    char *id = line_id(line);
                    if (id)
                        g_ptr_array_add(counted, id);
                }
                g_mutex_unlock(&p->lock);
                if (pass && !write_all(qfd, line, len))
                    goto out;
            }
        }
        if (pf[1].revents) {
            n = read(qfd, buf, sizeof buf);
            if (n <= 0)
                break;
            g_string_append_len(qbuf, buf, n);
            for (char *nl; (nl = strchr(qbuf->str, '\n'));) {
                gsize len = (gsize)(nl - qbuf->str) + 1;
                g_autofree char *line = g_strndup(qbuf->str, len);
                g_autofree char *id = line_id(line);
                gboolean pass = TRUE;

                g_string_erase(qbuf, 0, (gssize)len);
                g_mutex_lock(&p->lock);
                if (held_id && id && g_str_equal(id, held_id)) {
                    p->fired = TRUE;
                    g_clear_pointer(&held_id, g_free);
                }
                if (p->fired && frozen)
                    pass = FALSE; /* hotplugd hears nothing more */
                for (guint i = 0; id && i < counted->len; i++) {
                    if (g_str_equal(counted->pdata[i], id)) {
                        p->answered++;
                        g_ptr_array_remove_index(counted, i);
                        break;
                    }
                }
                g_mutex_unlock(&p->lock);
                if (pass && !write_all(cfd, line, len))
                    goto out;
            }
        }
    }
out:
    close(qfd);
}

static gpointer
proxy_thread(gpointer data)
{
    Proxy *p = data;

    for (;;) {
        struct pollfd pf = {p->lfd, POLLIN, 0};
        int cfd;

        g_mutex_lock(&p->lock);
        if (p->stop) {
            g_mutex_unlock(&p->lock);
            return NULL;
        }
        g_mutex_unlock(&p->lock);
        if (poll(&pf, 1, 100) <= 0)
            continue;
        cfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        proxy_serve(p, cfd);
        close(cfd);
    }
}

static Proxy *
proxy_new(const char *dir, const char *target)
{
    Proxy *p = g_new0(Proxy, 1);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    p->listen_path = g_build_filename(dir, "proxy.sock", NULL);
    p->target_path = target;
    g_mutex_init(&p->lock);
    g_strlcpy(sa.sun_path, p->listen_path, sizeof sa.sun_path);
    p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->lfd >= 0);
    unlink(p->listen_path);
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(p->lfd, 4), 0);
    p->thread = g_thread_new("proxy", proxy_thread, p);
    return p;
}

static void
proxy_free(Proxy *p)
{
    g_mutex_lock(&p->lock);
    p->stop = TRUE;
    g_mutex_unlock(&p->lock);
    g_thread_join(p->thread);
    close(p->lfd);
    unlink(p->listen_path);
    g_free(p->listen_path);
    g_free(p->match);
    g_free(p->count_match);
    g_mutex_clear(&p->lock);
    g_free(p);
}

/* Stop at the nth client line holding match (before passing it on, or
 * after QEMU answered it); count the answers to lines holding count. */
static void
proxy_arm(Proxy *p, const char *match, guint nth, gboolean after_reply, const char *count)
{
    g_mutex_lock(&p->lock);
    g_free(p->match);
    p->match = g_strdup(match);
    p->nth = nth;
    p->after_reply = after_reply;
    p->fired = FALSE;
    g_free(p->count_match);
    p->count_match = g_strdup(count);
    p->answered = 0;
    g_mutex_unlock(&p->lock);
}

static void
proxy_disarm(Proxy *p)
{
    proxy_arm(p, NULL, 0, FALSE, NULL);
}

static gboolean
proxy_fired(Proxy *p)
{
    gboolean f;

    g_mutex_lock(&p->lock);
    f = p->fired;
    g_mutex_unlock(&p->lock);
    return f;
}

static guint
proxy_answered(Proxy *p)
{
    guint n;

    g_mutex_lock(&p->lock);
    n = p->answered;
    g_mutex_unlock(&p->lock);
    return n;
}

static void
wait_for(gboolean (*cond)(Proxy *), Proxy *p, const char *what)
{
    gint64 end = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    while (!cond(p)) {
        if (g_get_monotonic_time() > end)
            fail_msg("timed out waiting for %s", what);
        g_usleep(20 * 1000);
    }
}

static gboolean
proxy_device_del_answered(Proxy *p)
{
    return proxy_answered(p) > 0;
}

/* ---- what QEMU holds ---------------------------------------------------- */

/* Names of block nodes, IOThreads/memory backends and devices that start
 * with prefix, as one string for messages ("" when none). */
static char *
qemu_leftovers(RigVm *vm, const char *id, const char *backend)
{
    g_autoptr(JsonNode) nodes = rig_vm_qmp(vm, "query-named-block-nodes", "{\"flat\": true}");
    g_autoptr(JsonNode) objects = rig_vm_qmp(vm, "qom-list", "{\"path\": \"/objects\"}");
    g_autoptr(GString) s = g_string_new(NULL);
    g_autofree char *prefix = g_strconcat(id, "-", NULL);
    JsonArray *a;

    a = qmp_json_node_array(nodes);
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        const char *n =
            qmp_json_get_string(qmp_json_node_object(json_array_get_element(a, i)), "node-name");
        if (n && g_str_has_prefix(n, prefix))
            g_string_append_printf(s, "node %s ", n);
    }
    a = qmp_json_node_array(objects);
    for (guint i = 0; a && i < json_array_get_length(a); i++) {
        const char *n =
            qmp_json_get_string(qmp_json_node_object(json_array_get_element(a, i)), "name");
        if (n && (g_str_has_prefix(n, prefix) || g_strcmp0(n, backend) == 0))
            g_string_append_printf(s, "object %s ", n);
    }
    if (rig_vm_peripheral_has(vm, id))
        g_string_append_printf(s, "device %s", id);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* ---- kill -9 in the middle of a composite -------------------------------- */

typedef struct {
    const char *match; /* the command to stop at */
    guint nth;
    gboolean after_reply;
} KillPoint;

/* hotplugd on the proxy; ctl the request (ARGV with @ID@ replaced); kill it
 * at kp; start it again; the op's outcome. */
static char *
kill_at(RigHotplugd *d, Proxy *p, RigVm *vm, const KillPoint *kp, const char *const *argv,
        const char *id, gboolean reset_after_device_del, gboolean reset_while_down)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(RigCtl) r = NULL;
    g_autoptr(GPtrArray) before = outcomes_of(d, id);
    RigCtlRun *run;

    g_ptr_array_add(args, g_strdup(rig_hotplugd_socket(d)));
    for (guint i = 0; argv[i]; i++)
        g_ptr_array_add(args, g_str_equal(argv[i], "@ID@") ? g_strdup(id) : g_strdup(argv[i]));
    g_ptr_array_add(args, NULL);
    proxy_arm(p, kp->match, kp->nth, kp->after_reply,
              reset_after_device_del ? "\"device_del\"" : NULL);
    {
        g_autoptr(GPtrArray) full = g_ptr_array_new();
        g_ptr_array_add(full, "--socket");
        for (guint i = 0; i < args->len; i++)
            g_ptr_array_add(full, args->pdata[i]);
        run = rig_ctl_startv((const char *const *)full->pdata);
    }
    if (reset_after_device_del) {
        /* the guest never answers: a reset completes the unplug */
        wait_for(proxy_device_del_answered, p, "device_del's answer");
        rig_vm_qmp_ok(vm, "system_reset", NULL);
    }
    wait_for(proxy_fired, p, kp->match);
    rig_hotplugd_kill9(d);
    r = rig_ctl_wait(run, OUTCOME_MS);
    proxy_disarm(p);
    if (reset_while_down)
        rig_vm_qmp_ok(vm, "system_reset", NULL);
    rig_hotplugd_start(d);
    rig_hotplugd_wait_vm_ready(d, "vm1");
    return wait_outcome(d, id, before->len + 1);
}

/* A 1 MiB raw image of its own for disk id (one writer per image). */
static char *
make_image(RigVm *vm, const char *id)
{
    g_autofree char *name = g_strconcat(id, ".img", NULL);
    char *img = g_build_filename(rig_vm_dir(vm), name, NULL);

    assert_true(g_file_set_contents(img, "", 0, NULL));
    assert_int_equal(truncate(img, 1 << 20), 0);
    return img;
}

static RigHotplugd *
start_daemon_on_proxy(Proxy *p)
{
    RigHotplugd *d = rig_hotplugd_new(NULL);

    rig_hotplugd_start(d);
    rig_hotplugd_add_vm(d, "vm1", p->listen_path);
    return d;
}

static void
test_kill_disk_add(void **state)
{
    static const KillPoint points[] = {
        {"\"blockdev-add\"", 1, FALSE}, {"\"blockdev-add\"", 1, TRUE},
        {"\"blockdev-add\"", 2, FALSE}, {"\"blockdev-add\"", 2, TRUE},
        {"\"object-add\"", 1, FALSE},   {"\"object-add\"", 1, TRUE},
        {"\"device_add\"", 1, FALSE},   {"\"device_add\"", 1, TRUE},
    };
    g_autoptr(RigVm) vm = start_vm(NULL);
    Proxy *p = proxy_new(rig_vm_dir(vm), rig_vm_qmp_path(vm));
    g_autoptr(RigHotplugd) d = NULL;

    d = start_daemon_on_proxy(p);
    for (guint i = 0; i < G_N_ELEMENTS(points); i++) {
        g_autofree char *id = g_strdup_printf("d%u", i);
        g_autofree char *img = make_image(vm, id);
        const char *argv[] = {"disk", "add", "vm1", img, "--id", "@ID@", "--iothreads", "1", NULL};
        g_autofree char *outcome = kill_at(d, p, vm, &points[i], argv, id, FALSE, FALSE);
        g_autofree char *left = qemu_leftovers(vm, id, NULL);
        g_autoptr(RigCtl) again = NULL;

        print_message("# disk add killed at %s #%u %s: %s\n", points[i].match, points[i].nth,
                      points[i].after_reply ? "answered" : "unsent", outcome);
        if (g_str_equal(outcome, "added")) {
            /* only when device_add was done: everything is there */
            if (!points[i].after_reply || !g_str_equal(points[i].match, "\"device_add\""))
                fail_msg("%s: added after a kill before device_add was answered", id);
            assert_true(rig_vm_peripheral_has(vm, id));
            continue;
        }
        assert_string_equal(outcome, "rejected");
        if (*left)
            fail_msg("%s: left in QEMU after the restart: %s", id, left);
        again = rig_hotplugd_ctl(d, "disk", "add", "vm1", img, "--id", id, "--iothreads", "1",
                                 NULL);
        rig_ctl_assert_exit(again, 0);
        assert_true(rig_vm_peripheral_has(vm, id));
    }
    rig_hotplugd_stop(d);
    proxy_free(p);
}

static void
test_kill_disk_del(void **state)
{
    static const KillPoint points[] = {
        {"\"device_del\"", 1, TRUE},   {"\"blockdev-del\"", 1, FALSE},
        {"\"blockdev-del\"", 1, TRUE}, {"\"blockdev-del\"", 2, FALSE},
        {"\"blockdev-del\"", 2, TRUE}, {"\"object-del\"", 1, FALSE},
        {"\"object-del\"", 1, TRUE},
    };
    g_autoptr(RigVm) vm = start_vm(NULL);
    Proxy *p = proxy_new(rig_vm_dir(vm), rig_vm_qmp_path(vm));
    g_autoptr(RigHotplugd) d = NULL;

    d = start_daemon_on_proxy(p);
    for (guint i = 0; i < G_N_ELEMENTS(points); i++) {
        const char *argv[] = {"disk", "del", "vm1", "@ID@", "--timeout", "60", NULL};
        g_autofree char *id = g_strdup_printf("e%u", i);
        g_autofree char *img = make_image(vm, id);
        g_autoptr(RigCtl) add = rig_hotplugd_ctl(d, "disk", "add", "vm1", img, "--id", id,
                                                 "--iothreads", "1", NULL);
        g_autofree char *outcome = NULL, *left = NULL;
        g_autoptr(RigCtl) again = NULL;
        gboolean reset = !g_str_equal(points[i].match, "\"device_del\"");

        rig_ctl_assert_exit(add, 0);
        /* killed with device_del answered and the device still there: it
         * goes while hotplugd is down */
        outcome = kill_at(d, p, vm, &points[i], argv, id, reset, !reset);
        print_message("# disk del killed at %s #%u %s: %s\n", points[i].match, points[i].nth,
                      points[i].after_reply ? "answered" : "unsent", outcome);
        assert_string_equal(outcome, "deleted");
        left = qemu_leftovers(vm, id, NULL);
        if (*left)
            fail_msg("%s: left in QEMU after the restart: %s", id, left);
        again = rig_hotplugd_ctl(d, "disk", "add", "vm1", img, "--id", id, NULL);
        rig_ctl_assert_exit(again, 0);
    }
    rig_hotplugd_stop(d);
    proxy_free(p);
}

static const char *const mem_args[] = {"-m", "256M,slots=4,maxmem=2G", NULL};

/* No guest: a DIMM added stays; each round has its own ID. */
static void
test_kill_memory_add(void **state)
{
    static const KillPoint points[] = {
        {"\"object-add\"", 1, FALSE},
        {"\"object-add\"", 1, TRUE},
        {"\"device_add\"", 1, FALSE},
        {"\"device_add\"", 1, TRUE},
    };
    g_autoptr(RigVm) vm = start_vm(mem_args);
    Proxy *p = proxy_new(rig_vm_dir(vm), rig_vm_qmp_path(vm));
    g_autoptr(RigHotplugd) d = start_daemon_on_proxy(p);

    for (guint i = 0; i < G_N_ELEMENTS(points); i++) {
        g_autofree char *id = g_strdup_printf("m%u", i);
        g_autofree char *backend = g_strconcat("mem-", id, NULL);
        const char *argv[] = {"memory", "add", "vm1", "128M", "--id", "@ID@", NULL};
        g_autofree char *outcome = kill_at(d, p, vm, &points[i], argv, id, FALSE, FALSE);
        g_autofree char *left = qemu_leftovers(vm, id, backend);
        g_autoptr(RigCtl) again = NULL;

        print_message("# memory add killed at %s %s: %s\n", points[i].match,
                      points[i].after_reply ? "answered" : "unsent", outcome);
        if (g_str_equal(outcome, "added")) {
            if (!points[i].after_reply || !g_str_equal(points[i].match, "\"device_add\""))
                fail_msg("%s: added after a kill before device_add was answered", id);
            assert_true(rig_vm_peripheral_has(vm, id));
            continue;
        }
        assert_string_equal(outcome, "rejected");
        if (*left)
            fail_msg("%s: left in QEMU after the restart: %s", id, left);
        again = rig_hotplugd_ctl(d, "memory", "add", "vm1", "128M", "--id", id, NULL);
        rig_ctl_assert_exit(again, 0);
    }
    rig_hotplugd_stop(d);
    proxy_free(p);
}

/* With the test guest, which gives hot-added memory back (movable): the
 * kill lands between the DIMM's removal and its backend's object-del. */
static void
test_kill_memory_del(void **state)
{
    static const KillPoint points[] = {
        {"\"object-del\"", 1, FALSE},
        {"\"object-del\"", 1, TRUE},
    };
    RigVmOptions o = {
        .machine = RIG_MACHINE_PC,
        .guest = TRUE,
        .mem = "512M,slots=2,maxmem=2G",
        .guest_cmdline = "hp.mem=movable",
    };
    g_autoptr(RigVm) vm = rig_vm_start(&o);
    Proxy *p = proxy_new(rig_vm_dir(vm), rig_vm_qmp_path(vm));
    g_autoptr(RigHotplugd) d = start_daemon_on_proxy(p);

    for (guint i = 0; i < G_N_ELEMENTS(points); i++) {
        const char *argv[] = {"memory", "del", "vm1", "@ID@", "--timeout", "60", NULL};
        g_autoptr(RigCtl) add = rig_hotplugd_ctl(d, "memory", "add", "vm1", "128M", "--id", "m1",
                                                 NULL);
        g_autofree char *outcome = NULL, *left = NULL;

        rig_ctl_assert_exit(add, 0);
        outcome = kill_at(d, p, vm, &points[i], argv, "m1", FALSE, FALSE);
        print_message("# memory del killed at %s %s: %s\n", points[i].match,
                      points[i].after_reply ? "answered" : "unsent", outcome);
        assert_string_equal(outcome, "deleted");
        left = qemu_leftovers(vm, "m1", "mem-m1");
        if (*left)
            fail_msg("m1: left in QEMU after the restart: %s", left);
    }
    rig_hotplugd_stop(d);
    proxy_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instance_identity),
        cmocka_unit_test(test_qemu_restart_live),
        cmocka_unit_test(test_qemu_restart_daemon_down),
        cmocka_unit_test(test_kill_disk_add),
        cmocka_unit_test(test_kill_disk_del),
        cmocka_unit_test(test_kill_memory_add),
        cmocka_unit_test(test_kill_memory_del),
    };

    signal(SIGPIPE, SIG_IGN);
    if (g_getenv("RESTART_TEST_FILTER"))
        cmocka_set_test_filter(g_getenv("RESTART_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
