/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A scripted fake QMP peer over a socketpair, for tests.
 *
 * The peer runs on the same libevent base as the code under test: it
 * answers whenever the test runs the loop.  Script it with expected
 * commands (fake_peer_expect) and canned answers; anything unexpected is
 * recorded and answered with a GenericError, so a test can assert
 * fake_peer_all_done() at its end. */
#pragma once

#include <event2/event.h>
#include <glib.h>

G_BEGIN_DECLS

typedef struct FakePeer FakePeer;
typedef struct FakeStep FakeStep;

/* The greeting of the Debian 12 QEMU (7.2.22) with "oob", byte for byte. */
#define FAKE_PEER_GREETING_7_2                                                                     \
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "             \
    "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}"

/* socketpair; *client_fd gets the other end (give it to qmp_conn_new_fd). */
FakePeer *fake_peer_new(struct event_base *base, int *client_fd);
/* A peer over an already connected socket (e.g. one a test accepted on a
 * UNIX listener); the peer owns fd from now on. */
FakePeer *fake_peer_new_from_fd(struct event_base *base, int fd);
void fake_peer_free(FakePeer *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FakePeer, fake_peer_free)

/* QEMU 7.2.22 Debian greeting with "oob"; then answers qmp_capabilities
 * automatically (with {"return": {}}). */
void fake_peer_greet(FakePeer *p);
/* A raw greeting; qmp_capabilities is still answered automatically unless
 * fake_peer_expect("qmp_capabilities") is scripted. */
void fake_peer_greet_custom(FakePeer *p, const char *greeting_json);

/* json + "\r\n" */
void fake_peer_send(FakePeer *p, const char *json);
void fake_peer_send_raw(FakePeer *p, const char *bytes, gsize len);
/* {"timestamp": {...}, "event": name, "data": data} + "\r\n"; data may be
 * NULL (no "data" member). */
void fake_peer_event(FakePeer *p, const char *name, const char *data_json);
/* Timestamps of the events sent from now on (fake_peer_event and the
 * steps' events, stamped when they go out): a fixed time in microseconds,
 * or -1 (the default) for the real time. */
void fake_peer_set_timestamp(FakePeer *p, gint64 timestamp_us);
/* Close the peer end. */
void fake_peer_hangup(FakePeer *p);
/* TRUE once the code under test closed its end (the peer read EOF). */
gboolean fake_peer_client_closed(FakePeer *p);

/* Script: the next command must be `command` and its arguments must
 * contain args_subset_json (a JSON object whose members must all be equal
 * in the real arguments; NULL = no check).  Steps are consumed in order; a
 * command that does not match the next step (and is not auto-answered) is
 * recorded as a failure and answered with a GenericError "unexpected
 * command".  A step without a return or an error answers {"return": {}}. */
FakeStep *fake_peer_expect(FakePeer *p, const char *command, const char *args_subset_json);
void fake_peer_step_event_before(FakeStep *s, const char *name, const char *data_json);
void fake_peer_step_return(FakeStep *s, const char *return_json);
void fake_peer_step_error(FakeStep *s, const char *cls, const char *desc);
void fake_peer_step_event_after(FakeStep *s, const char *name, const char *data_json);
/* Do not reply yet (events before the reply are still sent on receipt). */
void fake_peer_step_hold(FakeStep *s);
/* Send the held reply (and the events after it) now.  The step's command
 * must have arrived. */
void fake_peer_step_release(FakePeer *p, FakeStep *s);
/* TRUE once the step's command has arrived. */
gboolean fake_peer_step_received(FakeStep *s);
/* TRUE while the step's command has arrived and its reply is held. */
gboolean fake_peer_step_is_held(FakeStep *s);

/* Any number of times: answer `command` with return_json. */
void fake_peer_auto(FakePeer *p, const char *command, const char *return_json);

/* Any number of times: answer `command` whose arguments are exactly
 * args_json (NULL or "{}": none; members in the order the code under test
 * sends them) with reply_json, a whole reply ({"return": ...} or {"error":
 * {"class", "desc"}}).  Checked after the scripted steps, before
 * fake_peer_auto. */
void fake_peer_auto_args(FakePeer *p, const char *command, const char *args_json,
                         const char *reply_json);

/* Every command received, in order, as the compact JSON text the code
 * under test sent. */
guint fake_peer_n_received(FakePeer *p);
const char *fake_peer_received(FakePeer *p, guint i);
/* The "execute" name of the i-th command received. */
const char *fake_peer_received_command(FakePeer *p, guint i);
/* Commands received that have not been answered yet (held steps). */
guint fake_peer_n_unanswered(FakePeer *p);
/* The most commands ever received and not yet answered at once. */
guint fake_peer_max_unanswered(FakePeer *p);

/* Every step consumed and no unexpected command. */
gboolean fake_peer_all_done(FakePeer *p);
/* A human-readable list of what went wrong (for assert messages). */
char *fake_peer_describe_failures(FakePeer *p);

/* query-target (the engine asks it before the first PCI-like unplug with
 * a default deadline) is answered {"arch": ARCH} (default "x86_64") and is
 * not listed among the received commands, unless a step scripts it. */
void fake_peer_set_arch(FakePeer *p, const char *arch);
/* Likewise the engine's machine probe, qom-get /machine "type": answered
 * by the arch (x86_64 "pc-i440fx-7.2-machine", ppc64 "pseries-7.2-machine",
 * aarch64 "virt-7.2-machine") and not listed, unless a step scripts a
 * qom-get of property "type". */
G_END_DECLS
