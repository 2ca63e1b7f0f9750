/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmp-sim: one libevent process serving N simulated QEMU 7.2 monitors on
 * UNIX sockets (DIR/vm1.sock ... DIR/vmN.sock), for the scale benchmarks
 * and for tests of the engine without QEMU.
 *
 * Each monitor behaves like QEMU 7.2.22's on a "pc" machine started with
 * -device qemu-xhci,id=xhci: the same greeting, capabilities negotiation,
 * reply and error texts, key order and "\r\n" line endings.  An accepted
 * device_del completes after a delay drawn from --delay-ms with
 * DEVICE_DELETED, or is refused by the "guest" (DEVICE_UNPLUG_GUEST_ERROR),
 * or never completes; --refuse-share and --never-share set the shares, and
 * device ids that start with "refuse" or "never" always do that.
 *
 * Texts copied from QEMU are marked "QEMU 7.2:". */
#define G_LOG_DOMAIN "qmp-sim"
#define _GNU_SOURCE /* accept4 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "qmp-json.h"

#define SIM_MAX_DEPTH 1024                /* QEMU's MAX_NESTING */
#define SIM_MAX_REQUEST (1024 * 1024)     /* bytes of one request */
#define SIM_MAX_OUTPUT (64 * 1024 * 1024) /* queued for a client that does not read */
#define SIM_BACKLOG 16
#define SIM_EMFILE_BACKOFF_MS 100
#define SIM_JUNK_MAX 32

/* QEMU 7.2: the greeting of Debian's 7.2.22 (with oob). */
static const char sim_greeting[] =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
    "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}\r\n";

static const char sim_machine_type[] = "pc-i440fx-7.2-machine";

/* QEMU 7.2: query-status of a running VM. */
static const char sim_status_json[] = "{\"status\": \"running\", \"singlestep\": false, "
                                      "\"running\": true}";

/* The answers below are QEMU 7.2.22's own, captured from it. */
/* QEMU 7.2: query-qmp-schema, cut down to the commands and events the
 * simulator implements (and the argument types they name). */
static const char sim_schema_json[] =
    "[{\"name\": \"qmp_capabilities\", \"ret-type\": \"0\", \"meta-type\": \"command\", "
    "\"arg-type\": \"172\"}, {\"name\": \"172\", \"members\": [{\"name\": \"enable\", "
    "\"default\": null, \"type\": \"[418]\"}], \"meta-type\": \"object\"}, {\"name\": \"418\", "
    "\"members\": [{\"name\": \"oob\"}], \"meta-type\": \"enum\", \"values\": [\"oob\"]}, "
    "{\"name\": \"query-status\", \"ret-type\": \"1\", \"meta-type\": \"command\", "
    "\"arg-type\": \"0\"}, {\"name\": \"0\", \"members\": [], \"meta-type\": \"object\"}, "
    "{\"name\": \"query-version\", \"ret-type\": \"173\", \"meta-type\": \"command\", "
    "\"arg-type\": \"0\"}, {\"name\": \"query-qmp-schema\", \"ret-type\": \"[175]\", "
    "\"meta-type\": \"command\", \"arg-type\": \"0\"}, {\"name\": \"qom-list\", "
    "\"ret-type\": \"[177]\", \"meta-type\": \"command\", \"arg-type\": \"176\"}, "
    "{\"name\": \"176\", \"members\": [{\"name\": \"path\", \"type\": \"str\"}], "
    "\"meta-type\": \"object\"}, {\"name\": \"str\", \"json-type\": \"string\", "
    "\"meta-type\": \"builtin\"}, {\"name\": \"qom-get\", \"ret-type\": \"any\", "
    "\"meta-type\": \"command\", \"arg-type\": \"178\"}, {\"name\": \"178\", "
    "\"members\": [{\"name\": \"path\", \"type\": \"str\"}, {\"name\": \"property\", "
    "\"type\": \"str\"}], \"meta-type\": \"object\"}, {\"name\": \"device_add\", "
    "\"ret-type\": \"0\", \"meta-type\": \"command\", \"arg-type\": \"186\", "
    "\"features\": [\"json-cli\", \"json-cli-hotplug\"]}, {\"name\": \"186\", "
    "\"members\": [{\"name\": \"driver\", \"type\": \"str\"}, {\"name\": \"bus\", "
    "\"default\": null, \"type\": \"str\"}, {\"name\": \"id\", \"default\": null, "
    "\"type\": \"str\"}], \"meta-type\": \"object\"}, {\"name\": \"device_del\", "
    "\"ret-type\": \"0\", \"meta-type\": \"command\", \"arg-type\": \"187\"}, "
    "{\"name\": \"187\", \"members\": [{\"name\": \"id\", \"type\": \"str\"}], "
    "\"meta-type\": \"object\"}, {\"name\": \"device-list-properties\", "
    "\"ret-type\": \"[177]\", \"meta-type\": \"command\", \"arg-type\": \"185\"}, "
    "{\"name\": \"185\", \"members\": [{\"name\": \"typename\", \"type\": \"str\"}], "
    "\"meta-type\": \"object\"}, {\"name\": \"query-hotpluggable-cpus\", "
    "\"ret-type\": \"[200]\", \"meta-type\": \"command\", \"arg-type\": \"0\"}, "
    "{\"name\": \"DEVICE_DELETED\", \"meta-type\": \"event\", \"arg-type\": \"188\"}, "
    "{\"name\": \"188\", \"members\": [{\"name\": \"device\", \"default\": null, "
    "\"type\": \"str\"}, {\"name\": \"path\", \"type\": \"str\"}], \"meta-type\": \"object\"}, "
    "{\"name\": \"DEVICE_UNPLUG_GUEST_ERROR\", \"meta-type\": \"event\", "
    "\"arg-type\": \"189\"}, {\"name\": \"189\", \"members\": [{\"name\": \"device\", "
    "\"default\": null, \"type\": \"str\"}, {\"name\": \"path\", \"type\": \"str\"}], "
    "\"meta-type\": \"object\"}]";

static const char sim_props_usb_kbd[] =
    "[{\"name\": \"pcap\", \"type\": \"str\"}, {\"name\": \"port\", \"type\": \"str\"}, "
    "{\"default-value\": true, \"name\": \"msos-desc\", \"description\": \"on/off\", "
    "\"type\": \"bool\"}, {\"name\": \"serial\", \"type\": \"str\"}, {\"default-value\": 2, "
    "\"name\": \"usb_version\", \"type\": \"uint32\"}, {\"name\": \"display\", "
    "\"type\": \"str\"}, {\"name\": \"attached\", \"type\": \"bool\"}]";

static const char sim_props_e1000[] =
    "[{\"name\": \"failover_pair_id\", \"type\": \"str\"}, {\"name\": \"romfile\", "
    "\"type\": \"str\"}, {\"default-value\": -1, \"name\": \"addr\", "
    "\"description\": \"Slot and optional function number, example: 06.0 or 06\", "
    "\"type\": \"int32\"}, {\"default-value\": 4294967295, \"name\": \"romsize\", "
    "\"type\": \"uint32\"}, {\"default-value\": true, \"name\": \"x-pcie-lnksta-dllla\", "
    "\"description\": \"on/off\", \"type\": \"bool\"}, {\"default-value\": 1, "
    "\"name\": \"rombar\", \"type\": \"uint32\"}, {\"default-value\": true, "
    "\"name\": \"x-pcie-extcap-init\", \"description\": \"on/off\", \"type\": \"bool\"}, "
    "{\"default-value\": 0, \"name\": \"acpi-index\", \"type\": \"uint32\"}, "
    "{\"default-value\": false, \"name\": \"multifunction\", \"description\": \"on/off\", "
    "\"type\": \"bool\"}, {\"default-value\": true, \"name\": \"init-vet\", "
    "\"description\": \"on/off\", \"type\": \"bool\"}, {\"default-value\": true, "
    "\"name\": \"mitigation\", \"description\": \"on/off\", \"type\": \"bool\"}, "
    "{\"name\": \"netdev\", \"description\": \"ID of a netdev to use as a backend\", "
    "\"type\": \"str\"}, {\"default-value\": true, \"name\": \"autonegotiation\", "
    "\"description\": \"on/off\", \"type\": \"bool\"}, {\"default-value\": true, "
    "\"name\": \"extra_mac_registers\", \"description\": \"on/off\", \"type\": \"bool\"}, "
    "{\"default-value\": true, \"name\": \"migrate_tso_props\", \"description\": \"on/off\", "
    "\"type\": \"bool\"}, {\"name\": \"mac\", \"description\": \"Ethernet 6-byte MAC Address, "
    "example: 52:54:00:12:34:56\", \"type\": \"str\"}, {\"name\": \"bootindex\", "
    "\"type\": \"int32\"}]";

static const char sim_props_qemu_xhci[] =
    "[{\"name\": \"failover_pair_id\", \"type\": \"str\"}, {\"name\": \"romfile\", "
    "\"type\": \"str\"}, {\"default-value\": -1, \"name\": \"addr\", "
    "\"description\": \"Slot and optional function number, example: 06.0 or 06\", "
    "\"type\": \"int32\"}, {\"default-value\": 4294967295, \"name\": \"romsize\", "
    "\"type\": \"uint32\"}, {\"default-value\": true, \"name\": \"x-pcie-lnksta-dllla\", "
    "\"description\": \"on/off\", \"type\": \"bool\"}, {\"default-value\": 1, "
    "\"name\": \"rombar\", \"type\": \"uint32\"}, {\"default-value\": true, "
    "\"name\": \"x-pcie-extcap-init\", \"description\": \"on/off\", \"type\": \"bool\"}, "
    "{\"default-value\": 0, \"name\": \"acpi-index\", \"type\": \"uint32\"}, "
    "{\"default-value\": false, \"name\": \"multifunction\", \"description\": \"on/off\", "
    "\"type\": \"bool\"}, {\"name\": \"host\", \"type\": \"link<device>\"}, "
    "{\"default-value\": 4, \"name\": \"p3\", \"type\": \"uint32\"}, {\"default-value\": true, "
    "\"name\": \"streams\", \"description\": \"on/off\", \"type\": \"bool\"}, "
    "{\"default-value\": 4, \"name\": \"p2\", \"type\": \"uint32\"}, {\"name\": \"xhci-core\", "
    "\"type\": \"child<base-xhci>\"}]";

static const char sim_hotpluggable_cpus_json[] =
    "[{\"props\": {\"core-id\": 0, \"thread-id\": 0, \"socket-id\": 0}, \"vcpus-count\": 1, "
    "\"qom-path\": \"/machine/unattached/device[0]\", \"type\": \"qemu64-x86_64-cpu\"}]";

static const char sim_version_json[] = "{\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
                                       "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}";

/* ---- the simulated machine ------------------------------------------- */

typedef enum {
    SIM_BUS_NONE,
    SIM_BUS_PCI,
    SIM_BUS_USB,
} SimBus;

typedef struct {
    const char *name;
    SimBus plugs_into;
    SimBus provides;        /* a bus "<id>.0" */
    const char *props_json; /* device-list-properties */
} SimDriver;

static const SimDriver sim_drivers[] = {
    {"usb-kbd", SIM_BUS_USB, SIM_BUS_NONE, sim_props_usb_kbd},
    {"e1000", SIM_BUS_PCI, SIM_BUS_NONE, sim_props_e1000},
    {"qemu-xhci", SIM_BUS_PCI, SIM_BUS_USB, sim_props_qemu_xhci},
};

static const char *
sim_bus_name(SimBus b)
{
    return b == SIM_BUS_USB ? "USB" : "PCI";
}

typedef enum {
    SIM_FATE_DELETE,
    SIM_FATE_REFUSE,
    SIM_FATE_NEVER,
} SimFate;

typedef struct Sim Sim;
typedef struct SimVm SimVm;

typedef struct {
    SimVm *vm;
    char *name; /* the id, or "device[N]" under peripheral-anon */
    gboolean anon;
    const SimDriver *driver;
    gboolean pending; /* device_del accepted, not finished */
    SimFate fate;
    struct event *timer; /* the unplug's completion, while scheduled */
} SimDevice;

typedef struct {
    SimVm *vm;
    int fd;
    struct event *read_ev;
    struct event *write_ev; /* created when a write first blocks */
    GString *out;           /* output the socket did not take yet */
    GByteArray *partial;    /* a request cut by a read */
    guint depth;            /* of the request being read; 0 between requests */
    gboolean in_str, esc;
    gboolean negotiated;
    gboolean broken; /* a write failed: close at the next read */
    guint junk_len;
    char junk[SIM_JUNK_MAX + 1];
} SimConn;

struct SimVm {
    Sim *sim;
    guint index;
    char *path;
    int listen_fd;
    struct event *accept_ev;
    SimConn *conn;      /* one client at a time, like QEMU */
    GPtrArray *devices; /* SimDevice, oldest first */
    guint next_anon;
};

typedef struct {
    guint64 connections, commands, errors, events, events_lost;
    guint64 unplugs, deleted, refused, never;
} SimStats;

struct Sim {
    struct event_base *base;
    char *dir;
    guint n_vms;
    SimVm **vms;
    double delay_mean_ms, delay_jitter_ms;
    double refuse_share, never_share;
    GRand *rand;
    JsonParser *parser; /* one request at a time */
    SimStats st;
    char readbuf[64 * 1024];
};

static void sim_conn_close(SimConn *c);

/* ---- JSON text the way QEMU writes it -------------------------------- */

/* QEMU 7.2 (qobject/qjson.c): printable ASCII as is, the rest escaped,
 * \u with upper-case hex. */
static void
sim_json_append_string(GString *s, const char *str)
{
    g_string_append_c(s, '"');
    for (const char *p = str; *p;) {
        gunichar c = g_utf8_get_char_validated(p, -1);

        if (c == (gunichar)-1 || c == (gunichar)-2) {
            c = 0xFFFD;
            p++;
        } else {
            p = g_utf8_next_char(p);
        }
        switch (c) {
        case '"':
            g_string_append(s, "\\\"");
            break;
        case '\\':
            g_string_append(s, "\\\\");
            break;
        case '\b':
            g_string_append(s, "\\b");
            break;
        case '\f':
            g_string_append(s, "\\f");
            break;
        case '\n':
            g_string_append(s, "\\n");
            break;
        case '\r':
            g_string_append(s, "\\r");
            break;
        case '\t':
            g_string_append(s, "\\t");
            break;
        default:
            if (c >= 0x20 && c <= 0x7e) {
                g_string_append_c(s, (char)c);
            } else if (c >= 0x10000) {
                c -= 0x10000;
                g_string_append_printf(s, "\\u%04X\\u%04X", 0xD800 | (c >> 10),
                                       0xDC00 | (c & 0x3FF));
            } else {
                g_string_append_printf(s, "\\u%04X", c);
            }
        }
    }
    g_string_append_c(s, '"');
}

/* QEMU's separators: ", " and ": ". */
static void
sim_json_append(GString *s, JsonNode *node)
{
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: {
        JsonObject *o = json_node_get_object(node);
        GList *names = json_object_get_members(o);

        g_string_append_c(s, '{');
        for (GList *l = names; l; l = l->next) {
            if (l != names)
                g_string_append(s, ", ");
            sim_json_append_string(s, l->data);
            g_string_append(s, ": ");
            sim_json_append(s, json_object_get_member(o, l->data));
        }
        g_string_append_c(s, '}');
        g_list_free(names);
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *a = json_node_get_array(node);

        g_string_append_c(s, '[');
        for (guint i = 0; i < json_array_get_length(a); i++) {
            if (i)
                g_string_append(s, ", ");
            sim_json_append(s, json_array_get_element(a, i));
        }
        g_string_append_c(s, ']');
        break;
    }
    case JSON_NODE_NULL:
        g_string_append(s, "null");
        break;
    case JSON_NODE_VALUE:
        switch (json_node_get_value_type(node)) {
        case G_TYPE_STRING:
            sim_json_append_string(s, json_node_get_string(node));
            break;
        case G_TYPE_INT64:
            g_string_append_printf(s, "%" G_GINT64_FORMAT, json_node_get_int(node));
            break;
        case G_TYPE_BOOLEAN:
            g_string_append(s, json_node_get_boolean(node) ? "true" : "false");
            break;
        default: {
            char buf[G_ASCII_DTOSTR_BUF_SIZE];
            g_string_append(s,
                            g_ascii_formatd(buf, sizeof(buf), "%.17g", json_node_get_double(node)));
            break;
        }
        }
        break;
    }
}

/* ---- output ---------------------------------------------------------- */

static void
sim_conn_write_cb(evutil_socket_t fd, short what, void *opaque)
{
    SimConn *c = opaque;

    while (c->out && c->out->len) {
        ssize_t n = send(c->fd, c->out->str, c->out->len, MSG_NOSIGNAL);
        if (n > 0) {
            g_string_erase(c->out, 0, n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return; /* still armed */
        } else {
            c->broken = TRUE;
            shutdown(c->fd, SHUT_RDWR); /* the read side closes it */
            break;
        }
    }
    event_del(c->write_ev);
    g_string_free(c->out, TRUE);
    c->out = NULL;
}

/* Write now; what the socket does not take waits for write readiness. */
static void
sim_conn_write(SimConn *c, const char *data, gsize len)
{
    if (c->broken)
        return;
    if (c->out) {
        g_string_append_len(c->out, data, len);
        if (c->out->len > SIM_MAX_OUTPUT) {
            g_message("vm%u: client does not read; dropping it", c->vm->index);
            c->broken = TRUE;
            shutdown(c->fd, SHUT_RDWR);
        }
        return;
    }
    while (len) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            c->broken = TRUE;
            shutdown(c->fd, SHUT_RDWR);
            return;
        }
    }
    if (!len)
        return;
    c->out = g_string_new_len(data, len);
    if (!c->write_ev)
        c->write_ev =
            event_new(c->vm->sim->base, c->fd, EV_WRITE | EV_PERSIST, sim_conn_write_cb, c);
    event_add(c->write_ev, NULL);
}

static void
sim_conn_write_string(SimConn *c, GString *s)
{
    g_string_append(s, "\r\n");
    sim_conn_write(c, s->str, s->len);
}

/* {"return": RET, "id": ID}: ret_json is JSON text. */
static void
sim_conn_return(SimConn *c, JsonNode *id, const char *ret_json)
{
    g_autoptr(GString) s = g_string_sized_new(64 + strlen(ret_json));

    c->vm->sim->st.commands++;
    g_string_append(s, "{\"return\": ");
    g_string_append(s, ret_json);
    if (id) {
        g_string_append(s, ", \"id\": ");
        sim_json_append(s, id);
    }
    g_string_append_c(s, '}');
    sim_conn_write_string(c, s);
}

/* {"id": ID, "error": {"class": CLS, "desc": DESC}} */
static void G_GNUC_PRINTF(4, 5)
    sim_conn_error(SimConn *c, JsonNode *id, const char *cls, const char *fmt, ...)
{
    g_autoptr(GString) s = g_string_sized_new(128);
    g_autofree char *desc = NULL;
    va_list ap;

    va_start(ap, fmt);
    desc = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    c->vm->sim->st.commands++;
    c->vm->sim->st.errors++;
    g_string_append_c(s, '{');
    if (id) {
        g_string_append(s, "\"id\": ");
        sim_json_append(s, id);
        g_string_append(s, ", ");
    }
    g_string_append(s, "\"error\": {\"class\": ");
    sim_json_append_string(s, cls);
    g_string_append(s, ", \"desc\": ");
    sim_json_append_string(s, desc);
    g_string_append(s, "}}");
    sim_conn_write_string(c, s);
}

/* An event for the VM's client, if one has negotiated (QEMU sends none
 * before that); lost otherwise, as in QEMU. */
static void
sim_vm_event(SimVm *vm, const char *name, const char *data_json)
{
    g_autoptr(GString) s = NULL;
    gint64 now;

    if (!vm->conn || !vm->conn->negotiated || vm->conn->broken) {
        vm->sim->st.events_lost++;
        return;
    }
    now = g_get_real_time();
    s = g_string_sized_new(128);
    g_string_append_printf(s,
                           "{\"timestamp\": {\"seconds\": %" G_GINT64_FORMAT
                           ", \"microseconds\": %" G_GINT64_FORMAT "}, \"event\": \"%s\", "
                           "\"data\": %s}",
                           now / G_USEC_PER_SEC, now % G_USEC_PER_SEC, name, data_json);
    vm->sim->st.events++;
    sim_conn_write_string(vm->conn, s);
}

/* ---- devices --------------------------------------------------------- */

static void
sim_device_free(SimDevice *d)
{
    if (d->timer)
        event_free(d->timer);
    g_free(d->name);
    g_free(d);
}

static SimDevice *
sim_vm_find(SimVm *vm, const char *name, gboolean anon)
{
    for (guint i = 0; i < vm->devices->len; i++) {
        SimDevice *d = vm->devices->pdata[i];
        if (d->anon == anon && g_str_equal(d->name, name))
            return d;
    }
    return NULL;
}

static char *
sim_device_path(SimDevice *d)
{
    return g_strdup_printf("/machine/%s/%s", d->anon ? "peripheral-anon" : "peripheral", d->name);
}

/* {"device": ID, "path": PATH}; no "device" for an anonymous one. */
static char *
sim_device_event_data(SimDevice *d)
{
    g_autoptr(GString) s = g_string_new("{");
    g_autofree char *path = sim_device_path(d);

    if (!d->anon) {
        g_string_append(s, "\"device\": ");
        sim_json_append_string(s, d->name);
        g_string_append(s, ", ");
    }
    g_string_append(s, "\"path\": ");
    sim_json_append_string(s, path);
    g_string_append_c(s, '}');
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* The unplug's end: gone (DEVICE_DELETED) or refused by the guest. */
static void
sim_device_finish_unplug(SimDevice *d)
{
    SimVm *vm = d->vm;
    g_autofree char *data = sim_device_event_data(d);

    if (d->fate == SIM_FATE_REFUSE) {
        d->pending = FALSE;
        if (d->timer) {
            event_free(d->timer);
            d->timer = NULL;
        }
        vm->sim->st.refused++;
        sim_vm_event(vm, "DEVICE_UNPLUG_GUEST_ERROR", data);
        return;
    }
    vm->sim->st.deleted++;
    g_ptr_array_remove(vm->devices, d); /* frees d */
    sim_vm_event(vm, "DEVICE_DELETED", data);
}

static void
sim_device_timer_cb(evutil_socket_t fd, short what, void *opaque)
{
    sim_device_finish_unplug(opaque);
}

static SimFate
sim_draw_fate(Sim *sim, const char *name)
{
    double u;

    if (g_str_has_prefix(name, "refuse"))
        return SIM_FATE_REFUSE;
    if (g_str_has_prefix(name, "never"))
        return SIM_FATE_NEVER;
    u = g_rand_double(sim->rand);
    if (u < sim->refuse_share)
        return SIM_FATE_REFUSE;
    if (u < sim->refuse_share + sim->never_share)
        return SIM_FATE_NEVER;
    return SIM_FATE_DELETE;
}

/* Milliseconds until the guest acts: uniform in MEAN +- JITTER, >= 0. */
static double
sim_draw_delay_ms(Sim *sim)
{
    double d = sim->delay_mean_ms;

    if (sim->delay_jitter_ms > 0)
        d += sim->delay_jitter_ms * (2.0 * g_rand_double(sim->rand) - 1.0);
    return MAX(d, 0.0);
}

/* ---- commands -------------------------------------------------------- */

typedef void (*SimCmdFunc)(SimConn *c, JsonObject *args, JsonNode *id);

typedef struct {
    const char *name;
    SimCmdFunc fn;
    /* string parameters, the first n_required of them required; NULL:
     * the handler checks its arguments itself */
    const char *const *params;
    guint n_required;
} SimCmd;

/* QEMU 7.2's visitor errors, in its order: declared members first. */
static gboolean
sim_check_args(SimConn *c, const SimCmd *cmd, JsonObject *args, JsonNode *id)
{
    g_autoptr(GList) names = NULL;

    for (guint i = 0; cmd->params[i]; i++) {
        JsonNode *v = args ? json_object_get_member(args, cmd->params[i]) : NULL;
        if (!v) {
            if (i < cmd->n_required) {
                sim_conn_error(c, id, "GenericError", "Parameter '%s' is missing", cmd->params[i]);
                return FALSE;
            }
            continue;
        }
        if (!qmp_json_node_string(v)) {
            sim_conn_error(c, id, "GenericError",
                           "Invalid parameter type for '%s', expected: string", cmd->params[i]);
            return FALSE;
        }
    }
    names = args ? json_object_get_members(args) : NULL;
    for (GList *l = names; l; l = l->next)
        if (!g_strv_contains(cmd->params, l->data)) {
            sim_conn_error(c, id, "GenericError", "Parameter '%s' is unexpected",
                           (const char *)l->data);
            return FALSE;
        }
    return TRUE;
}

static void
sim_cmd_qmp_capabilities(SimConn *c, JsonObject *args, JsonNode *id)
{
    JsonNode *enable = args ? json_object_get_member(args, "enable") : NULL;
    g_autoptr(GList) names = args ? json_object_get_members(args) : NULL;

    for (GList *l = names; l; l = l->next)
        if (!g_str_equal(l->data, "enable")) {
            sim_conn_error(c, id, "GenericError", "Parameter '%s' is unexpected",
                           (const char *)l->data);
            return;
        }
    if (enable && !JSON_NODE_HOLDS_NULL(enable)) {
        JsonArray *a = qmp_json_node_array(enable);
        if (!a) {
            sim_conn_error(c, id, "GenericError",
                           "Invalid parameter type for 'enable', expected: array");
            return;
        }
        for (guint i = 0; i < json_array_get_length(a); i++) {
            const char *cap = qmp_json_node_string(json_array_get_element(a, i));
            if (!cap) {
                sim_conn_error(c, id, "GenericError",
                               "Invalid parameter type for 'null', expected: string");
                return;
            }
            if (!g_str_equal(cap, "oob")) {
                /* QEMU 7.2: yes, 'null' */
                sim_conn_error(c, id, "GenericError", "Parameter 'null' does not accept value '%s'",
                               cap);
                return;
            }
        }
    }
    if (c->negotiated) {
        sim_conn_error(c, id, "CommandNotFound",
                       "Capabilities negotiation is already complete, command ignored");
        return;
    }
    c->negotiated = TRUE;
    sim_conn_return(c, id, "{}");
}

static void
sim_cmd_query_status(SimConn *c, JsonObject *args, JsonNode *id)
{
    sim_conn_return(c, id, sim_status_json);
}

/* what QEMU 7.2 answers on x86 (the engine asks it on connect) */
static void
sim_cmd_query_target(SimConn *c, JsonObject *args, JsonNode *id)
{
    sim_conn_return(c, id, "{\"arch\": \"x86_64\"}");
}

static void
sim_cmd_query_version(SimConn *c, JsonObject *args, JsonNode *id)
{
    sim_conn_return(c, id, sim_version_json);
}

static void
sim_cmd_query_qmp_schema(SimConn *c, JsonObject *args, JsonNode *id)
{
    sim_conn_return(c, id, sim_schema_json);
}

static void
sim_cmd_query_hotpluggable_cpus(SimConn *c, JsonObject *args, JsonNode *id)
{
    sim_conn_return(c, id, sim_hotpluggable_cpus_json);
}

static const SimDriver *
sim_find_driver(const char *name)
{
    for (guint i = 0; i < G_N_ELEMENTS(sim_drivers); i++)
        if (g_str_equal(sim_drivers[i].name, name))
            return &sim_drivers[i];
    return NULL;
}

static void
sim_cmd_device_list_properties(SimConn *c, JsonObject *args, JsonNode *id)
{
    const char *name = qmp_json_get_string(args, "typename");
    const SimDriver *drv = sim_find_driver(name);

    if (!drv) {
        sim_conn_error(c, id, "DeviceNotFound", "Device '%s' not found", name);
        return;
    }
    sim_conn_return(c, id, drv->props_json);
}

/* What a QOM path names. */
typedef enum {
    SIM_QOM_NONE,
    SIM_QOM_MACHINE,
    SIM_QOM_PERIPHERAL,
    SIM_QOM_PERIPHERAL_ANON,
    SIM_QOM_DEVICE,
} SimQom;

static SimQom
sim_vm_resolve(SimVm *vm, const char *path, SimDevice **dev)
{
    const char *rest;

    *dev = NULL;
    if (g_str_equal(path, "/machine"))
        return SIM_QOM_MACHINE;
    if (g_str_equal(path, "/machine/peripheral"))
        return SIM_QOM_PERIPHERAL;
    if (g_str_equal(path, "/machine/peripheral-anon"))
        return SIM_QOM_PERIPHERAL_ANON;
    if (g_str_has_prefix(path, "/machine/peripheral/")) {
        rest = path + strlen("/machine/peripheral/");
        *dev = sim_vm_find(vm, rest, FALSE);
    } else if (g_str_has_prefix(path, "/machine/peripheral-anon/")) {
        rest = path + strlen("/machine/peripheral-anon/");
        *dev = sim_vm_find(vm, rest, TRUE);
    }
    return *dev ? SIM_QOM_DEVICE : SIM_QOM_NONE;
}

static void
sim_cmd_qom_list(SimConn *c, JsonObject *args, JsonNode *id)
{
    const char *path = qmp_json_get_string(args, "path");
    g_autoptr(GString) s = g_string_new("[{\"name\": \"type\", \"type\": \"string\"}");
    SimDevice *dev;
    SimQom what = sim_vm_resolve(c->vm, path, &dev);

    switch (what) {
    case SIM_QOM_NONE:
        sim_conn_error(c, id, "DeviceNotFound", "Device '%s' not found", path);
        return;
    case SIM_QOM_MACHINE:
        g_string_append(s, ", {\"name\": \"peripheral-anon\", \"type\": \"child<container>\"}, "
                           "{\"name\": \"peripheral\", \"type\": \"child<container>\"}, "
                           "{\"name\": \"unattached\", \"type\": \"child<container>\"}");
        break;
    case SIM_QOM_PERIPHERAL:
    case SIM_QOM_PERIPHERAL_ANON:
        for (guint i = 0; i < c->vm->devices->len; i++) {
            SimDevice *d = c->vm->devices->pdata[i];
            if (d->anon != (what == SIM_QOM_PERIPHERAL_ANON))
                continue;
            g_string_append(s, ", {\"name\": ");
            sim_json_append_string(s, d->name);
            g_string_append_printf(s, ", \"type\": \"child<%s>\"}", d->driver->name);
        }
        break;
    case SIM_QOM_DEVICE:
        g_string_append(s, ", {\"name\": \"parent_bus\", \"type\": \"link<bus>\"}, "
                           "{\"name\": \"realized\", \"type\": \"bool\"}, "
                           "{\"name\": \"hotplugged\", \"type\": \"bool\"}, "
                           "{\"name\": \"hotpluggable\", \"type\": \"bool\"}");
        break;
    }
    g_string_append_c(s, ']');
    sim_conn_return(c, id, s->str);
}

static void
sim_cmd_qom_get(SimConn *c, JsonObject *args, JsonNode *id)
{
    const char *path = qmp_json_get_string(args, "path");
    const char *prop = qmp_json_get_string(args, "property");
    const char *type_name;
    g_autoptr(GString) s = g_string_new(NULL);
    SimDevice *dev;

    switch (sim_vm_resolve(c->vm, path, &dev)) {
    case SIM_QOM_NONE:
        sim_conn_error(c, id, "DeviceNotFound", "Device '%s' not found", path);
        return;
    case SIM_QOM_MACHINE:
        type_name = sim_machine_type;
        break;
    case SIM_QOM_DEVICE:
        type_name = dev->driver->name;
        if (g_str_equal(prop, "realized") || g_str_equal(prop, "hotplugged") ||
            g_str_equal(prop, "hotpluggable")) {
            sim_conn_return(c, id, "true");
            return;
        }
        break;
    default:
        type_name = "container";
        break;
    }
    if (!g_str_equal(prop, "type")) {
        sim_conn_error(c, id, "GenericError", "Property '%s.%s' not found", type_name, prop);
        return;
    }
    sim_json_append_string(s, type_name);
    sim_conn_return(c, id, s->str);
}

/* QEMU's id_wellformed(): a letter, then letters, digits, '-', '.', '_'. */
static gboolean
sim_id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0]))
        return FALSE;
    for (const char *p = id + 1; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_')
            return FALSE;
    return TRUE;
}

/* The kind of bus "NAME.0" is, SIM_BUS_NONE when there is none. */
static SimBus
sim_vm_find_bus(SimVm *vm, const char *bus)
{
    const char *dot = strrchr(bus, '.');
    g_autofree char *owner = NULL;
    SimDevice *d;

    if (g_str_equal(bus, "pci.0"))
        return SIM_BUS_PCI;
    if (!dot || !g_str_equal(dot, ".0"))
        return SIM_BUS_NONE;
    owner = g_strndup(bus, dot - bus);
    d = sim_vm_find(vm, owner, FALSE);
    return d ? d->driver->provides : SIM_BUS_NONE;
}

static gboolean
sim_vm_has_bus(SimVm *vm, SimBus kind)
{
    if (kind == SIM_BUS_PCI)
        return TRUE;
    for (guint i = 0; i < vm->devices->len; i++)
        if (((SimDevice *)vm->devices->pdata[i])->driver->provides == kind)
            return TRUE;
    return FALSE;
}

static void
sim_cmd_device_add(SimConn *c, JsonObject *args, JsonNode *id)
{
    SimVm *vm = c->vm;
    JsonNode *driver_node = args ? json_object_get_member(args, "driver") : NULL;
    JsonNode *id_node = args ? json_object_get_member(args, "id") : NULL;
    JsonNode *bus_node = args ? json_object_get_member(args, "bus") : NULL;
    const char *driver = qmp_json_node_string(driver_node);
    const char *dev_id = qmp_json_node_string(id_node);
    const char *bus = qmp_json_node_string(bus_node);
    g_autoptr(GList) names = NULL;
    const SimDriver *drv;
    SimDevice *d;

    if (!driver_node) {
        sim_conn_error(c, id, "GenericError", "Parameter 'driver' is missing");
        return;
    }
    if (!driver || (id_node && !dev_id) || (bus_node && !bus)) {
        sim_conn_error(c, id, "GenericError", "Invalid parameter type for '%s', expected: string",
                       !driver                ? "driver"
                       : (id_node && !dev_id) ? "id"
                                              : "bus");
        return;
    }
    drv = sim_find_driver(driver);
    if (!drv) {
        sim_conn_error(c, id, "GenericError", "'%s' is not a valid device model name", driver);
        return;
    }
    if (bus) {
        SimBus kind = sim_vm_find_bus(vm, bus);
        if (kind == SIM_BUS_NONE) {
            sim_conn_error(c, id, "GenericError", "Bus '%s' not found", bus);
            return;
        }
        if (kind != drv->plugs_into) {
            sim_conn_error(c, id, "GenericError", "Device '%s' can't go on %s bus", driver,
                           sim_bus_name(kind));
            return;
        }
    } else if (!sim_vm_has_bus(vm, drv->plugs_into)) {
        sim_conn_error(c, id, "GenericError", "No '%s' bus found for device '%s'",
                       drv->plugs_into == SIM_BUS_USB ? "usb-bus" : "PCI", driver);
        return;
    }
    if (dev_id && !sim_id_wellformed(dev_id)) {
        sim_conn_error(c, id, "GenericError", "Parameter 'id' expects an identifier");
        return;
    }
    if (dev_id && sim_vm_find(vm, dev_id, FALSE)) {
        sim_conn_error(c, id, "GenericError", "Duplicate device ID '%s'", dev_id);
        return;
    }
    /* the driver's own properties (values are not checked) */
    names = json_object_get_members(args);
    for (GList *l = names; l; l = l->next) {
        const char *p = l->data;
        g_autofree char *needle = NULL;
        if (g_str_equal(p, "driver") || g_str_equal(p, "id") || g_str_equal(p, "bus"))
            continue;
        needle = g_strdup_printf("\"name\": \"%s\"", p);
        if (!strstr(drv->props_json, needle)) {
            sim_conn_error(c, id, "GenericError", "Property '%s.%s' not found", driver, p);
            return;
        }
    }
    d = g_new0(SimDevice, 1);
    d->vm = vm;
    d->driver = drv;
    if (dev_id) {
        d->name = g_strdup(dev_id);
    } else {
        d->anon = TRUE;
        d->name = g_strdup_printf("device[%u]", vm->next_anon++);
    }
    g_ptr_array_add(vm->devices, d);
    sim_conn_return(c, id, "{}");
}

static void
sim_cmd_device_del(SimConn *c, JsonObject *args, JsonNode *id)
{
    SimVm *vm = c->vm;
    Sim *sim = vm->sim;
    const char *dev_id = qmp_json_get_string(args, "id");
    SimDevice *d = NULL;
    double delay_ms;

    if (dev_id[0] == '/') {
        switch (sim_vm_resolve(vm, dev_id, &d)) {
        case SIM_QOM_NONE:
            sim_conn_error(c, id, "DeviceNotFound", "Device '%s' not found", dev_id);
            return;
        case SIM_QOM_DEVICE:
            break;
        default:
            sim_conn_error(c, id, "GenericError", "%s is not a hotpluggable device", dev_id);
            return;
        }
    } else {
        d = sim_vm_find(vm, dev_id, FALSE);
        if (!d) {
            sim_conn_error(c, id, "DeviceNotFound", "Device '%s' not found", dev_id);
            return;
        }
    }
    if (d->pending) {
        sim_conn_error(c, id, "GenericError", "Device %s is already in the process of unplug",
                       dev_id);
        return;
    }
    d->pending = TRUE;
    d->fate = sim_draw_fate(sim, d->name);
    sim->st.unplugs++;
    sim_conn_return(c, id, "{}");
    if (d->fate == SIM_FATE_NEVER) {
        sim->st.never++;
        return;
    }
    delay_ms = sim_draw_delay_ms(sim);
    if (delay_ms <= 0) {
        /* like usb-kbd in QEMU: gone at once, the event after the reply */
        sim_device_finish_unplug(d);
        return;
    }
    {
        gint64 us = (gint64)(delay_ms * 1000.0 + 0.5);
        struct timeval tv = {us / G_USEC_PER_SEC, us % G_USEC_PER_SEC};
        d->timer = evtimer_new(sim->base, sim_device_timer_cb, d);
        evtimer_add(d->timer, &tv);
    }
}

static const char *const sim_params_none[] = {NULL};
static const char *const sim_params_path[] = {"path", NULL};
static const char *const sim_params_qom_get[] = {"path", "property", NULL};
static const char *const sim_params_typename[] = {"typename", NULL};
static const char *const sim_params_id[] = {"id", NULL};

static const SimCmd sim_cmds[] = {
    {"qmp_capabilities", sim_cmd_qmp_capabilities, NULL, 0},
    {"query-status", sim_cmd_query_status, sim_params_none, 0},
    {"query-version", sim_cmd_query_version, sim_params_none, 0},
    {"query-target", sim_cmd_query_target, sim_params_none, 0},
    {"query-qmp-schema", sim_cmd_query_qmp_schema, sim_params_none, 0},
    {"query-hotpluggable-cpus", sim_cmd_query_hotpluggable_cpus, sim_params_none, 0},
    {"device-list-properties", sim_cmd_device_list_properties, sim_params_typename, 1},
    {"qom-list", sim_cmd_qom_list, sim_params_path, 1},
    {"qom-get", sim_cmd_qom_get, sim_params_qom_get, 2},
    {"device_add", sim_cmd_device_add, NULL, 0},
    {"device_del", sim_cmd_device_del, sim_params_id, 1},
};

/* ---- requests -------------------------------------------------------- */

/* One complete top-level JSON value from the client. */
static void
sim_conn_request(SimConn *c, const char *text, gsize len)
{
    Sim *sim = c->vm->sim;
    g_autoptr(GError) err = NULL;
    g_autoptr(GList) members = NULL;
    JsonObject *req, *args = NULL;
    JsonNode *id, *exec, *args_node;
    const char *name;
    gboolean oob = FALSE;
    const SimCmd *cmd = NULL;

    if (!json_parser_load_from_data(sim->parser, text, (gssize)len, &err)) {
        sim_conn_error(c, NULL, "GenericError", "JSON parse error, %s", err->message);
        return;
    }
    req = qmp_json_node_object(json_parser_get_root(sim->parser));
    if (!req) {
        sim_conn_error(c, NULL, "GenericError", "QMP input must be a JSON object");
        return;
    }
    id = json_object_get_member(req, "id");
    members = json_object_get_members(req);
    for (GList *l = members; l; l = l->next) {
        const char *m = l->data;
        if (!g_str_equal(m, "execute") && !g_str_equal(m, "exec-oob") &&
            !g_str_equal(m, "arguments") && !g_str_equal(m, "id")) {
            sim_conn_error(c, id, "GenericError", "QMP input member '%s' is unexpected", m);
            return;
        }
    }
    exec = json_object_get_member(req, "execute");
    if (!exec) {
        exec = json_object_get_member(req, "exec-oob");
        oob = TRUE;
    }
    if (!exec) {
        sim_conn_error(c, id, "GenericError", "QMP input lacks member 'execute'");
        return;
    }
    name = qmp_json_node_string(exec);
    if (!name) {
        sim_conn_error(c, id, "GenericError", "QMP input member '%s' must be a string",
                       oob ? "exec-oob" : "execute");
        return;
    }
    args_node = json_object_get_member(req, "arguments");
    if (args_node) {
        args = qmp_json_node_object(args_node);
        if (!args) {
            sim_conn_error(c, id, "GenericError", "QMP input member 'arguments' must be an object");
            return;
        }
    }
    for (guint i = 0; i < G_N_ELEMENTS(sim_cmds); i++)
        if (g_str_equal(sim_cmds[i].name, name))
            cmd = &sim_cmds[i];
    if (!c->negotiated && (!cmd || cmd->fn != sim_cmd_qmp_capabilities)) {
        sim_conn_error(c, id, "CommandNotFound",
                       "Expecting capabilities negotiation with 'qmp_capabilities'");
        return;
    }
    if (!cmd) {
        sim_conn_error(c, id, "CommandNotFound", "The command %s has not been found", name);
        return;
    }
    if (oob) {
        sim_conn_error(c, id, "GenericError", "The command %s does not support OOB", name);
        return;
    }
    if (cmd->params && !sim_check_args(c, cmd, args, id))
        return;
    cmd->fn(c, args, id);
}

static void
sim_conn_junk_end(SimConn *c)
{
    if (!c->junk_len)
        return;
    c->junk[MIN(c->junk_len, SIM_JUNK_MAX)] = '\0';
    sim_conn_error(c, NULL, "GenericError", "JSON parse error, invalid keyword '%s'", c->junk);
    c->junk_len = 0;
}

/* Split the byte stream into top-level JSON values by bracket depth
 * outside strings; no line endings needed, as with QEMU. */
static void
sim_conn_feed(SimConn *c, const char *buf, gsize n)
{
    gsize start = 0;

    for (gsize i = 0; i < n; i++) {
        char ch = buf[i];

        if (c->depth == 0) {
            if (ch == '{' || ch == '[') {
                sim_conn_junk_end(c);
                c->depth = 1;
                start = i;
            } else if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
                sim_conn_junk_end(c);
            } else {
                if (c->junk_len < SIM_JUNK_MAX)
                    c->junk[c->junk_len] = ch;
                c->junk_len++;
            }
            continue;
        }
        if (c->in_str) {
            if (c->esc)
                c->esc = FALSE;
            else if (ch == '\\')
                c->esc = TRUE;
            else if (ch == '"')
                c->in_str = FALSE;
            continue;
        }
        if (ch == '"') {
            c->in_str = TRUE;
        } else if (ch == '{' || ch == '[') {
            if (++c->depth > SIM_MAX_DEPTH) {
                g_message("vm%u: request nested too deep; dropping the client", c->vm->index);
                c->broken = TRUE;
                return;
            }
        } else if ((ch == '}' || ch == ']') && --c->depth == 0) {
            if (c->partial) {
                g_byte_array_append(c->partial, (const guint8 *)buf + start, i + 1 - start);
                sim_conn_request(c, (const char *)c->partial->data, c->partial->len);
                g_byte_array_unref(c->partial);
                c->partial = NULL;
            } else {
                sim_conn_request(c, buf + start, i + 1 - start);
            }
        }
    }
    if (c->depth > 0) {
        if (!c->partial)
            c->partial = g_byte_array_new();
        g_byte_array_append(c->partial, (const guint8 *)buf + start, n - start);
        if (c->partial->len > SIM_MAX_REQUEST) {
            g_message("vm%u: request over %d bytes; dropping the client", c->vm->index,
                      SIM_MAX_REQUEST);
            c->broken = TRUE;
        }
    }
}

/* ---- connections ----------------------------------------------------- */

static void
sim_conn_read_cb(evutil_socket_t fd, short what, void *opaque)
{
    SimConn *c = opaque;
    Sim *sim = c->vm->sim;
    ssize_t n = recv(fd, sim->readbuf, sizeof(sim->readbuf), 0);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        sim_conn_close(c);
        return;
    }
    if (!c->broken)
        sim_conn_feed(c, sim->readbuf, (gsize)n);
    if (c->broken)
        sim_conn_close(c);
}

static void
sim_conn_close(SimConn *c)
{
    SimVm *vm = c->vm;

    event_free(c->read_ev);
    if (c->write_ev)
        event_free(c->write_ev);
    close(c->fd);
    if (c->out)
        g_string_free(c->out, TRUE);
    if (c->partial)
        g_byte_array_unref(c->partial);
    g_free(c);
    vm->conn = NULL;
    /* the next client waiting in the backlog gets its greeting now */
    event_add(vm->accept_ev, NULL);
}

static void
sim_accept_retry_cb(evutil_socket_t fd, short what, void *opaque)
{
    SimVm *vm = opaque;

    if (!vm->conn)
        event_add(vm->accept_ev, NULL);
}

static void
sim_vm_accept_cb(evutil_socket_t lfd, short what, void *opaque)
{
    SimVm *vm = opaque;
    SimConn *c;
    int fd;

    if (vm->conn)
        return;
    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            /* back off instead of spinning on a full table */
            struct timeval tv = {0, SIM_EMFILE_BACKOFF_MS * 1000};
            g_warning("vm%u: accept: %s; retrying in %d ms", vm->index, g_strerror(errno),
                      SIM_EMFILE_BACKOFF_MS);
            event_del(vm->accept_ev);
            event_base_once(vm->sim->base, -1, EV_TIMEOUT, sim_accept_retry_cb, vm, &tv);
        }
        return;
    }
    vm->sim->st.connections++;
    c = g_new0(SimConn, 1);
    c->vm = vm;
    c->fd = fd;
    c->read_ev = event_new(vm->sim->base, fd, EV_READ | EV_PERSIST, sim_conn_read_cb, c);
    event_add(c->read_ev, NULL);
    vm->conn = c;
    /* one client at a time: the next waits in the backlog */
    event_del(vm->accept_ev);
    sim_conn_write(c, sim_greeting, strlen(sim_greeting));
}

/* ---- VMs ------------------------------------------------------------- */

static SimVm *
sim_vm_new(Sim *sim, guint index, GError **error)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    g_autofree char *path = g_strdup_printf("%s/vm%u.sock", sim->dir, index);
    SimVm *vm;
    SimDevice *xhci;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
                    "socket path %s is longer than %zu bytes", path, sizeof(sun.sun_path) - 1);
        return NULL;
    }
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "socket: %s",
                    g_strerror(errno));
        return NULL;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, SIM_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e), "cannot listen on %s: %s", path,
                    g_strerror(e));
        return NULL;
    }
    vm = g_new0(SimVm, 1);
    vm->sim = sim;
    vm->index = index;
    vm->path = g_steal_pointer(&path);
    vm->listen_fd = fd;
    vm->devices = g_ptr_array_new_with_free_func((GDestroyNotify)sim_device_free);
    /* -device qemu-xhci,id=xhci: usb-kbd goes on bus xhci.0 */
    xhci = g_new0(SimDevice, 1);
    xhci->vm = vm;
    xhci->name = g_strdup("xhci");
    xhci->driver = sim_find_driver("qemu-xhci");
    g_ptr_array_add(vm->devices, xhci);
    vm->accept_ev = event_new(sim->base, fd, EV_READ | EV_PERSIST, sim_vm_accept_cb, vm);
    event_add(vm->accept_ev, NULL);
    return vm;
}

static void
sim_vm_free(SimVm *vm)
{
    if (!vm)
        return;
    if (vm->conn)
        sim_conn_close(vm->conn);
    event_free(vm->accept_ev);
    close(vm->listen_fd);
    unlink(vm->path);
    g_ptr_array_unref(vm->devices);
    g_free(vm->path);
    g_free(vm);
}

/* ---- the process ----------------------------------------------------- */

static guint64
sim_rss_kib(void)
{
    g_autofree char *text = NULL;
    unsigned long size = 0, resident = 0;

    if (!g_file_get_contents("/proc/self/statm", &text, NULL, NULL) ||
        sscanf(text, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (guint64)resident * (guint64)sysconf(_SC_PAGESIZE) / 1024;
}

static void
sim_print_stats(Sim *sim)
{
    guint clients = 0, devices = 0, pending = 0;

    for (guint i = 0; i < sim->n_vms; i++) {
        SimVm *vm = sim->vms[i];
        clients += vm->conn != NULL;
        devices += vm->devices->len;
        for (guint j = 0; j < vm->devices->len; j++)
            pending += ((SimDevice *)vm->devices->pdata[j])->pending;
    }
    printf("qmp-sim stats: vms=%u clients=%u connections=%" G_GUINT64_FORMAT
           " commands=%" G_GUINT64_FORMAT " errors=%" G_GUINT64_FORMAT " events=%" G_GUINT64_FORMAT
           " events_lost=%" G_GUINT64_FORMAT " unplugs=%" G_GUINT64_FORMAT
           " deleted=%" G_GUINT64_FORMAT " refused=%" G_GUINT64_FORMAT " never=%" G_GUINT64_FORMAT
           " devices=%u pending=%u rss_kib=%" G_GUINT64_FORMAT "\n",
           sim->n_vms, clients, sim->st.connections, sim->st.commands, sim->st.errors,
           sim->st.events, sim->st.events_lost, sim->st.unplugs, sim->st.deleted, sim->st.refused,
           sim->st.never, devices, pending, sim_rss_kib());
    fflush(stdout);
}

static void
sim_signal_cb(evutil_socket_t sig, short what, void *opaque)
{
    Sim *sim = opaque;

    if (sig == SIGUSR1)
        sim_print_stats(sim);
    else
        event_base_loopbreak(sim->base);
}

/* Every VM needs two descriptors (listener and client). */
static gboolean
sim_raise_nofile(guint n_vms, GError **error)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)n_vms * 2 + 32;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES,
                    "%u VMs need %lu file descriptors; the hard limit is %lu", n_vms,
                    (unsigned long)need, (unsigned long)rl.rlim_cur);
        return FALSE;
    }
    return TRUE;
}

static gboolean
sim_parse_share(const char *opt, const char *text, double *out, GError **error)
{
    char *end = NULL;
    double v = g_ascii_strtod(text, &end);

    if (!*text || *end || !(v >= 0.0 && v <= 1.0)) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "%s wants a share between 0 and 1, not '%s'", opt, text);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

static gboolean
sim_parse_delay(const char *text, double *mean, double *jitter, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(text, ",", 3);
    guint n = g_strv_length(parts);
    char *end = NULL;

    if (n < 1 || n > 2)
        goto bad;
    *mean = g_ascii_strtod(parts[0], &end);
    if (!*parts[0] || *end || !(*mean >= 0.0 && *mean < 86400e3))
        goto bad;
    *jitter = 0;
    if (n == 2) {
        *jitter = g_ascii_strtod(parts[1], &end);
        if (!*parts[1] || *end || !(*jitter >= 0.0 && *jitter < 86400e3))
            goto bad;
    }
    return TRUE;
bad:
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--delay-ms wants MEAN[,JITTER] in milliseconds, not '%s'", text);
    return FALSE;
}

int
main(int argc, char **argv)
{
    g_autofree char *dir = NULL, *delay = NULL, *refuse = NULL, *never = NULL;
    gint vms = 1;
    gint64 seed = 1;
    gboolean stats = FALSE;
    GOptionEntry entries[] = {
        {"dir", 0, 0, G_OPTION_ARG_FILENAME, &dir, "Directory for the sockets vm1.sock ...", "DIR"},
        {"vms", 0, 0, G_OPTION_ARG_INT, &vms, "Number of simulated VMs (default 1)", "N"},
        {"delay-ms", 0, 0, G_OPTION_ARG_STRING, &delay,
         "Unplug completion delay, uniform in MEAN +- JITTER ms (default 0)", "MEAN[,JITTER]"},
        {"refuse-share", 0, 0, G_OPTION_ARG_STRING, &refuse,
         "Share of unplugs the guest refuses (default 0)", "P"},
        {"never-share", 0, 0, G_OPTION_ARG_STRING, &never,
         "Share of unplugs that never complete (default 0)", "P"},
        {"seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Random seed (default 1)", "S"},
        {"stats", 0, 0, G_OPTION_ARG_NONE, &stats, "Print the statistics line at exit too", NULL},
        {NULL},
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- simulated QEMU QMP monitors");
    g_autoptr(GError) error = NULL;
    struct event *sigs[3];
    const int signums[3] = {SIGTERM, SIGINT, SIGUSR1};
    Sim *sim;
    int rc = 0;

    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(
        ctx, "Sockets are DIR/vm1.sock ... DIR/vmN.sock.  SIGUSR1 prints a statistics line;\n"
             "SIGTERM or SIGINT ends the simulator and removes the sockets.\n"
             "Device ids starting with \"refuse\" or \"never\" always get that fate.\n");
    if (!g_option_context_parse(ctx, &argc, &argv, &error))
        goto usage;
    if (!dir) {
        g_set_error(&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--dir is required");
        goto usage;
    }
    if (vms < 1 || vms > 1000000) {
        g_set_error(&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--vms wants 1 or more");
        goto usage;
    }
    sim = g_new0(Sim, 1);
    if ((delay && !sim_parse_delay(delay, &sim->delay_mean_ms, &sim->delay_jitter_ms, &error)) ||
        (refuse && !sim_parse_share("--refuse-share", refuse, &sim->refuse_share, &error)) ||
        (never && !sim_parse_share("--never-share", never, &sim->never_share, &error))) {
        g_free(sim);
        goto usage;
    }
    if (sim->refuse_share + sim->never_share > 1.0 + 1e-9) {
        g_set_error(&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "--refuse-share and --never-share add up to more than 1");
        g_free(sim);
        goto usage;
    }
    if (!sim_raise_nofile((guint)vms, &error)) {
        g_printerr("qmp-sim: %s\n", error->message);
        g_free(sim);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sim->dir = g_steal_pointer(&dir);
    sim->base = event_base_new();
    sim->rand = g_rand_new_with_seed((guint32)seed);
    sim->parser = json_parser_new_immutable();
    sim->vms = g_new0(SimVm *, vms);
    for (gint i = 0; i < vms; i++) {
        sim->vms[i] = sim_vm_new(sim, (guint)i + 1, &error);
        if (!sim->vms[i]) {
            g_printerr("qmp-sim: %s\n", error->message);
            rc = 1;
            break;
        }
        sim->n_vms++;
    }
    for (guint i = 0; i < G_N_ELEMENTS(sigs); i++) {
        sigs[i] = evsignal_new(sim->base, signums[i], sim_signal_cb, sim);
        event_add(sigs[i], NULL);
    }
    if (rc == 0) {
        printf("qmp-sim: ready vms=%u dir=%s\n", sim->n_vms, sim->dir);
        fflush(stdout);
        event_base_dispatch(sim->base);
        if (stats)
            sim_print_stats(sim);
    }
    for (guint i = 0; i < sim->n_vms; i++)
        sim_vm_free(sim->vms[i]);
    for (guint i = 0; i < G_N_ELEMENTS(sigs); i++)
        event_free(sigs[i]);
    g_free(sim->vms);
    g_object_unref(sim->parser);
    g_rand_free(sim->rand);
    event_base_free(sim->base);
    g_free(sim->dir);
    g_free(sim);
    return rc;

usage:
    g_printerr("qmp-sim: %s\n", error->message);
    return 2;
}
