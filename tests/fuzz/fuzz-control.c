/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness for hotplugd's control protocol: the line handling of
 * ControlServer (src/daemon/control.c).
 *
 * The input is what a control client sends.  It goes to a ControlServer
 * through a socketpair (control_server_add_fd), in chunks whose size comes
 * from the input, with the loop run after each.  The harness's command
 * handler answers:
 *   echo   {"return": ARGS}              error  {"error": ...} from ARGS
 *   event  an event with ARGS as data    flood  lines up to the output cap
 *   close  close after the flush         data   attach client data
 *   anything else: CommandNotFound.
 * The first input byte picks a reader: odd = the test end drains what the
 * server writes after every chunk; even = it reads nothing until the end
 * (a client that never reads: output cap, read back-pressure, linger).
 * Oracles: every complete line the server sends is one JSON object with
 * exactly one of QMP/return/error/event; after the client hangs up and
 * everything is read, the server has no client left (nothing stuck, no
 * leak: LeakSanitizer); no crash, no UBSan report, no g_critical (fatal).
 *
 * Build and run: tests/fuzz/run.sh [SECONDS] (both harnesses); by hand:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -Ibuild -Isrc/qmp -Isrc/hotplug -Isrc/daemon \
 *       $(pkg-config --cflags glib-2.0 json-glib-1.0 libevent) \
 *       tests/fuzz/fuzz-control.c src/daemon/control.c src/hotplug/hotplug-outcome.c \
 *       src/qmp/qmp-*.c $(pkg-config --libs glib-2.0 json-glib-1.0 libevent) \
 *       -o build/fuzz-control
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "control.h"
#include "qmp-json.h"

#define FUZZ_MAX_OUTPUT 4096
#define FUZZ_LINGER_MS 20

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *fuzz_base;
static ControlServer *fuzz_srv;
static char *fuzz_dir;

static GLogWriterOutput
fuzz_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer opaque)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        return g_log_writer_default(level, fields, n_fields, opaque);
    return G_LOG_WRITER_HANDLED;
}

static void
fuzz_execute_cb(ControlServer *srv, ControlClient *cl, const char *cmd, JsonObject *args,
                JsonNode *id, gpointer opaque)
{
    if (!cmd || !args)
        __builtin_trap();
    if (g_str_equal(cmd, "echo")) {
        g_autoptr(JsonNode) ret = json_node_init_object(json_node_alloc(), args);
        control_client_return(cl, id, ret);
    } else if (g_str_equal(cmd, "error")) {
        control_client_error(cl, id, qmp_json_get_string(args, "class") ?: "GenericError",
                             qmp_json_get_string(args, "desc") ?: "");
    } else if (g_str_equal(cmd, "event")) {
        g_autoptr(JsonNode) data = json_node_init_object(json_node_alloc(), args);
        control_client_event(cl, qmp_json_get_string(args, "name") ?: "X", data);
    } else if (g_str_equal(cmd, "flood")) {
        static const char line[] = "{\"event\":\"FLOOD\",\"data\":{}}";
        while (control_client_send_line(cl, line, sizeof(line) - 1))
            ;
    } else if (g_str_equal(cmd, "close")) {
        control_client_error(cl, id, "GenericError", "closing");
        control_client_close_after_flush(cl);
    } else if (g_str_equal(cmd, "data")) {
        control_client_set_data(cl, g_strdup(cmd), g_free);
        control_client_return(cl, id, NULL);
    } else {
        control_client_error(cl, id, "CommandNotFound", "no such command");
    }
}

static void
fuzz_closed_cb(ControlServer *srv, ControlClient *cl, gpointer opaque)
{
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const ControlCallbacks cb = {fuzz_execute_cb, fuzz_closed_cb};
    g_autoptr(GError) error = NULL;
    g_autofree char *path = NULL;
    ControlOptions opts = {.mode = 0600,
                           .max_output = FUZZ_MAX_OUTPUT,
                           .version = "fuzz",
                           .close_linger_ms = FUZZ_LINGER_MS};

    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    g_log_set_writer_func(fuzz_log_writer, NULL, NULL);
    fuzz_base = event_base_new();
    fuzz_dir = g_dir_make_tmp("fuzz-control-XXXXXX", &error);
    if (!fuzz_dir)
        g_error("%s", error->message);
    path = g_build_filename(fuzz_dir, "ctl.sock", NULL);
    opts.path = path;
    fuzz_srv = control_server_new(fuzz_base, &opts, &cb, NULL, &error);
    if (!fuzz_srv)
        g_error("%s", error->message);
    /* only socketpair clients */
    control_server_stop_accepting(fuzz_srv);
    rmdir(fuzz_dir);
    return 0;
}

/* Every complete line in out is one JSON object of a known kind. */
static void
fuzz_check_lines(GString *out)
{
    char *nl;

    while ((nl = memchr(out->str, '\n', out->len))) {
        gsize len = (gsize)(nl - out->str);
        g_autoptr(JsonParser) p = json_parser_new();
        JsonObject *o;
        guint kinds = 0;

        if (len == 0 || out->str[len - 1] != '\r' ||
            !json_parser_load_from_data(p, out->str, (gssize)len - 1, NULL) ||
            !(o = qmp_json_node_object(json_parser_get_root(p)))) {
            /* lines are JSON objects ending in \r\n */
            fprintf(stderr, "fuzz-control: bad line from the server: %.*s\n", (int)len, out->str);
            __builtin_trap();
        }
        kinds += json_object_has_member(o, "QMP");
        kinds += json_object_has_member(o, "return");
        kinds += json_object_has_member(o, "error");
        kinds += json_object_has_member(o, "event");
        if (kinds != 1) {
            fprintf(stderr, "fuzz-control: not one kind of message: %.*s\n", (int)len, out->str);
            __builtin_trap();
        }
        g_string_erase(out, 0, (gssize)len + 1);
    }
}

static void
fuzz_read(int fd, GString *out)
{
    char buf[16384];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        g_string_append_len(out, buf, (gsize)n);
        fuzz_check_lines(out);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GString) out = g_string_new(NULL);
    gboolean reads = size > 0 && (data[0] & 1);
    size_t chunk = 1 + (size > 1 ? data[1] % 61 : 0) * (size > 2048 ? 37 : 1);
    size_t off = 0;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        __builtin_trap();
    if (!control_server_add_fd(fuzz_srv, sv[1]))
        __builtin_trap();
    while (off < size) {
        ssize_t w = send(sv[0], data + off, MIN(chunk, size - off), MSG_DONTWAIT | MSG_NOSIGNAL);

        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break; /* the server closed it */
        if (w > 0)
            off += (size_t)w;
        for (int i = 0; i < 3; i++)
            event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
        if (reads || w <= 0)
            fuzz_read(sv[0], out);
    }
    /* hang up and read everything: the server must let the client go */
    shutdown(sv[0], SHUT_WR);
    for (int i = 0; i < 2000 && control_server_n_clients(fuzz_srv) > 0; i++) {
        event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
        fuzz_read(sv[0], out);
        if (i > 100)
            g_usleep(1000); /* a linger timer may be running */
    }
    if (control_server_n_clients(fuzz_srv) != 0)
        __builtin_trap();
    close(sv[0]);
    event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
    return 0;
}
