/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: parsing and sorting QMP messages, greetings, errors,
 * command lines and the schema part of QmpCaps. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "qmp-caps.h"
#include "qmp-error.h"
#include "qmp-greeting.h"
#include "qmp-json.h"
#include "qmp-message.h"

/* What QEMU 7.2.22 on Debian 12 sends, byte for byte (without "\r\n"). */
#define GREETING_7_2                                                                               \
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "             \
    "\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}"

static QmpMessage *
parse_ok(const char *text)
{
    g_autoptr(GError) err = NULL;
    QmpMessage *msg = qmp_message_parse(text, strlen(text), 0, &err);

    if (!msg)
        fail_msg("parsing %s failed: %s", text, err->message);
    assert_non_null(msg->root);
    return msg;
}

/* Parse text (of len bytes) with max_depth, expect code, return the message. */
static char *
parse_fail(const char *text, gsize len, guint max_depth, int code)
{
    g_autoptr(GError) err = NULL;
    QmpMessage *msg = qmp_message_parse(text, len, max_depth, &err);

    if (msg) {
        qmp_message_free(msg);
        fail_msg("parsing %.*s succeeded, expected error %d", (int)len, text, code);
    }
    assert_non_null(err);
    assert_true(err->domain == QMP_ERROR);
    if (err->code != code)
        fail_msg("parsing %.*s: error %d (%s), expected %d", (int)len, text, err->code,
                 err->message, code);
    return g_strdup(err->message);
}

static char *
parse_fail_text(const char *text, int code)
{
    return parse_fail(text, strlen(text), 0, code);
}

static char *
nested(guint depth, const char *inner)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < depth; i++)
        g_string_append_c(s, '[');
    g_string_append(s, inner);
    for (guint i = 0; i < depth; i++)
        g_string_append_c(s, ']');
    return g_string_free(s, FALSE);
}

/* ---- classification ------------------------------------------------- */

static void
test_greeting(void **state)
{
    g_autoptr(QmpMessage) msg = parse_ok(GREETING_7_2);
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpGreeting) g = NULL;

    assert_int_equal(msg->type, QMP_MSG_GREETING);
    assert_non_null(msg->greeting);
    assert_false(msg->has_id);
    assert_null(msg->event);
    assert_null(msg->ret);
    assert_null(msg->error);

    g = qmp_greeting_parse(msg->greeting, &err);
    assert_non_null(g);
    assert_null(err);
    assert_int_equal(g->major, 7);
    assert_int_equal(g->minor, 2);
    assert_int_equal(g->micro, 22);
    assert_string_equal(g->package, "Debian 1:7.2+dfsg-7+deb12u18+b3");
    assert_non_null(g->capabilities);
    assert_string_equal(g->capabilities[0], "oob");
    assert_null(g->capabilities[1]);
    assert_true(qmp_greeting_has_capability(g, "oob"));
    assert_false(qmp_greeting_has_capability(g, "oo"));
    assert_false(qmp_greeting_has_capability(NULL, "oob"));
}

static void
test_greeting_version_at_least(void **state)
{
    QmpGreeting g = {.major = 7, .minor = 2, .micro = 22};

    assert_true(qmp_greeting_version_at_least(&g, 7, 2));
    assert_true(qmp_greeting_version_at_least(&g, 7, 1));
    assert_true(qmp_greeting_version_at_least(&g, 7, 0));
    assert_true(qmp_greeting_version_at_least(&g, 6, 9));
    assert_true(qmp_greeting_version_at_least(&g, 2, 12));
    assert_false(qmp_greeting_version_at_least(&g, 7, 3));
    assert_false(qmp_greeting_version_at_least(&g, 8, 0));
    assert_false(qmp_greeting_version_at_least(&g, 8, 2));
    assert_false(qmp_greeting_version_at_least(NULL, 0, 0));
}

static void
test_greeting_variants(void **state)
{
    /* no capabilities member, no package */
    {
        g_autoptr(QmpMessage) msg =
            parse_ok("{\"QMP\":{\"version\":{\"qemu\":{\"major\":9,\"minor\":1,\"micro\":0}}}}");
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpGreeting) g = qmp_greeting_parse(msg->greeting, &err);
        assert_non_null(g);
        assert_int_equal(g->major, 9);
        assert_int_equal(g->minor, 1);
        assert_int_equal(g->micro, 0);
        assert_string_equal(g->package, "");
        assert_non_null(g->capabilities);
        assert_null(g->capabilities[0]);
        assert_false(qmp_greeting_has_capability(g, "oob"));
    }
    /* no version.qemu */
    {
        g_autoptr(QmpMessage) msg = parse_ok("{\"QMP\":{\"capabilities\":[]}}");
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpGreeting) g = qmp_greeting_parse(msg->greeting, &err);
        assert_null(g);
        assert_int_equal(err->code, QMP_ERROR_PROTOCOL);
        assert_string_equal(err->message, "QMP greeting has no version.qemu");
    }
    /* a missing micro is a bad version */
    {
        g_autoptr(QmpMessage) msg =
            parse_ok("{\"QMP\":{\"version\":{\"qemu\":{\"major\":7,\"minor\":2}}}}");
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpGreeting) g = qmp_greeting_parse(msg->greeting, &err);
        assert_null(g);
        assert_int_equal(err->code, QMP_ERROR_PROTOCOL);
        assert_string_equal(err->message, "QMP greeting has a bad version");
    }
    /* "QMP" not an object */
    g_free(parse_fail_text("{\"QMP\": 1}", QMP_ERROR_PROTOCOL));
}

static void
test_event_with_data(void **state)
{
    const char *text = "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 123456}, "
                       "\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": "
                       "\"/machine/peripheral/nic1\", \"device\": \"nic1\"}}";
    g_autoptr(QmpMessage) msg = parse_ok(text);

    assert_int_equal(msg->type, QMP_MSG_EVENT);
    assert_string_equal(msg->event, "DEVICE_DELETED");
    assert_non_null(msg->data);
    assert_int_equal(json_object_get_size(msg->data), 2);
    assert_string_equal(qmp_json_get_string(msg->data, "device"), "nic1");
    assert_string_equal(qmp_json_get_string(msg->data, "path"), "/machine/peripheral/nic1");
    assert_true(msg->timestamp_us == G_GINT64_CONSTANT(1700000000123456));
    assert_false(msg->has_id);
}

static void
test_event_without_data(void **state)
{
    /* a real QEMU STOP event: timestamp, no data */
    {
        g_autoptr(QmpMessage) msg =
            parse_ok("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}");
        assert_int_equal(msg->type, QMP_MSG_EVENT);
        assert_string_equal(msg->event, "STOP");
        assert_non_null(msg->data);
        assert_int_equal(json_object_get_size(msg->data), 0);
        assert_true(msg->timestamp_us == 1000002);
    }
    /* no timestamp at all */
    {
        g_autoptr(QmpMessage) msg = parse_ok("{\"event\": \"RESUME\"}");
        assert_int_equal(msg->type, QMP_MSG_EVENT);
        assert_string_equal(msg->event, "RESUME");
        assert_non_null(msg->data);
        assert_int_equal(json_object_get_size(msg->data), 0);
        assert_true(msg->timestamp_us == -1);
    }
    /* "data": null reads as an empty object */
    {
        g_autoptr(QmpMessage) msg = parse_ok("{\"event\": \"X\", \"data\": null}");
        assert_non_null(msg->data);
        assert_int_equal(json_object_get_size(msg->data), 0);
    }
    /* timestamp without microseconds */
    {
        g_autoptr(QmpMessage) msg = parse_ok("{\"event\": \"X\", \"timestamp\": {\"seconds\": 5}}");
        assert_true(msg->timestamp_us == 5000000);
    }
    /* data of the wrong type */
    g_autofree char *m1 = parse_fail_text("{\"event\": \"X\", \"data\": 5}", QMP_ERROR_PROTOCOL);
    assert_string_equal(m1, "QMP event X: data is not an object");
    g_autofree char *m2 = parse_fail_text("{\"event\": 5}", QMP_ERROR_PROTOCOL);
    assert_string_equal(m2, "QMP event name is not a string");
}

/* Timestamps outside what a gint64 of microseconds holds read as absent
 * (and must not overflow: the fuzzer runs with UBSan). */
static void
test_event_timestamp_range(void **state)
{
    {
        g_autoptr(QmpMessage) msg =
            parse_ok("{\"event\": \"X\", \"timestamp\": {\"seconds\": 9223372036854775807, "
                     "\"microseconds\": 999999}}");
        assert_true(msg->timestamp_us == -1);
    }
    {
        g_autoptr(QmpMessage) msg =
            parse_ok("{\"event\": \"X\", \"timestamp\": {\"seconds\": 9223372036854, "
                     "\"microseconds\": 9223372036854775807}}");
        assert_true(msg->timestamp_us == -1);
    }
    {
        g_autoptr(QmpMessage) msg =
            parse_ok("{\"event\": \"X\", \"timestamp\": {\"seconds\": 1, \"microseconds\": -5}}");
        assert_true(msg->timestamp_us == -1);
    }
    {
        g_autoptr(QmpMessage) msg =
            parse_ok("{\"event\": \"X\", \"timestamp\": {\"seconds\": -1, \"microseconds\": 0}}");
        assert_true(msg->timestamp_us == -1);
    }
    {
        /* the largest representable one */
        g_autoptr(QmpMessage) msg =
            parse_ok("{\"event\": \"X\", \"timestamp\": {\"seconds\": 9223372036853, "
                     "\"microseconds\": 999999}}");
        assert_true(msg->timestamp_us == G_GINT64_CONSTANT(9223372036853999999));
    }
}

static void
test_return(void **state)
{
    g_autoptr(QmpMessage) msg = parse_ok(
        "{\"return\": {\"status\": \"prelaunch\", \"singlestep\": false, \"running\": false}, "
        "\"id\": 42}");

    assert_int_equal(msg->type, QMP_MSG_RETURN);
    assert_true(msg->has_id);
    assert_true(msg->id_is_int);
    assert_true(msg->id == 42);
    assert_non_null(msg->ret);
    assert_string_equal(qmp_json_get_string(qmp_json_node_object(msg->ret), "status"), "prelaunch");
    assert_null(msg->error);
    assert_null(msg->event);

    /* return values of other types */
    {
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": [], \"id\": 0}");
        assert_true(JSON_NODE_HOLDS_ARRAY(m->ret));
        assert_true(m->id_is_int);
        assert_true(m->id == 0);
    }
    {
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": \"pc-i440fx-7.2-machine\", \"id\": 9}");
        assert_string_equal(qmp_json_node_string(m->ret), "pc-i440fx-7.2-machine");
    }
    {
        /* the largest id */
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": {}, \"id\": 9223372036854775807}");
        assert_true(m->id_is_int);
        assert_true(m->id == G_MAXINT64);
    }
}

static void
test_reply_ids(void **state)
{
    {
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": {}}");
        assert_int_equal(m->type, QMP_MSG_RETURN);
        assert_false(m->has_id);
        assert_false(m->id_is_int);
    }
    {
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": {}, \"id\": \"abc\"}");
        assert_true(m->has_id);
        assert_false(m->id_is_int);
    }
    {
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": {}, \"id\": \"7\"}");
        assert_true(m->has_id);
        assert_false(m->id_is_int);
    }
    {
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": {}, \"id\": 1.5}");
        assert_true(m->has_id);
        assert_false(m->id_is_int);
    }
    {
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": {}, \"id\": null}");
        assert_true(m->has_id);
        assert_false(m->id_is_int);
    }
    {
        g_autoptr(QmpMessage) m = parse_ok("{\"return\": {}, \"id\": {\"a\": 1}}");
        assert_true(m->has_id);
        assert_false(m->id_is_int);
    }
    {
        /* QEMU's answer to unparsable input: an error without id */
        g_autoptr(QmpMessage) m = parse_ok("{\"error\": {\"class\": \"GenericError\", \"desc\": "
                                           "\"JSON parse error, invalid keyword 'garbage'\"}}");
        assert_int_equal(m->type, QMP_MSG_ERROR);
        assert_false(m->has_id);
    }
}

static void
test_error(void **state)
{
    g_autoptr(QmpMessage) msg = parse_ok("{\"id\": 3, \"error\": {\"class\": \"DeviceNotFound\", "
                                         "\"desc\": \"Device 'nope' not found\"}}");
    g_autoptr(GError) err = NULL;

    assert_int_equal(msg->type, QMP_MSG_ERROR);
    assert_true(msg->has_id);
    assert_true(msg->id_is_int);
    assert_true(msg->id == 3);
    assert_non_null(msg->error);
    assert_null(msg->ret);

    err = qmp_error_from_json(msg->error);
    assert_true(err->domain == QMP_ERROR);
    assert_int_equal(err->code, QMP_ERROR_DEVICE_NOT_FOUND);
    assert_string_equal(err->message, "Device 'nope' not found");
    assert_string_equal(qmp_error_class_name(err), "DeviceNotFound");
    assert_true(qmp_error_is_qemu(err));

    g_autofree char *m = parse_fail_text("{\"error\": \"boom\", \"id\": 1}", QMP_ERROR_PROTOCOL);
    assert_string_equal(m, "QMP \"error\" is not an object");
}

static GError *
error_from_text(const char *text)
{
    g_autoptr(JsonNode) node = json_from_string(text, NULL);

    assert_non_null(node);
    return qmp_error_from_json(json_node_get_object(node));
}

static void
test_error_classes(void **state)
{
    static const struct {
        const char *cls;
        int code;
    } classes[] = {
        {"GenericError", QMP_ERROR_GENERIC},
        {"CommandNotFound", QMP_ERROR_COMMAND_NOT_FOUND},
        {"DeviceNotActive", QMP_ERROR_DEVICE_NOT_ACTIVE},
        {"DeviceNotFound", QMP_ERROR_DEVICE_NOT_FOUND},
        {"KVMMissingCap", QMP_ERROR_KVM_MISSING_CAP},
    };

    for (guint i = 0; i < G_N_ELEMENTS(classes); i++) {
        g_autofree char *text =
            g_strdup_printf("{\"class\": \"%s\", \"desc\": \"d%u\"}", classes[i].cls, i);
        g_autofree char *desc = g_strdup_printf("d%u", i);
        g_autoptr(GError) err = error_from_text(text);
        assert_int_equal(err->code, classes[i].code);
        assert_string_equal(err->message, desc);
        assert_string_equal(qmp_error_class_name(err), classes[i].cls);
        assert_true(qmp_error_is_qemu(err));
    }
    {
        /* an unknown class keeps both in the message */
        g_autoptr(GError) err = error_from_text("{\"class\": \"FooError\", \"desc\": \"bar\"}");
        assert_int_equal(err->code, QMP_ERROR_UNKNOWN_CLASS);
        assert_string_equal(err->message, "FooError: bar");
        assert_string_equal(qmp_error_class_name(err), "UnknownClass");
        assert_true(qmp_error_is_qemu(err));
    }
    {
        /* class matching is exact */
        g_autoptr(GError) err = error_from_text("{\"class\": \"genericerror\", \"desc\": \"x\"}");
        assert_int_equal(err->code, QMP_ERROR_UNKNOWN_CLASS);
        assert_string_equal(err->message, "genericerror: x");
    }
    {
        g_autoptr(GError) err = error_from_text("{\"class\": \"GenericError\"}");
        assert_int_equal(err->code, QMP_ERROR_GENERIC);
        assert_string_equal(err->message, "(QEMU gave no description)");
    }
    {
        g_autoptr(GError) err = error_from_text("{\"desc\": \"lonely\"}");
        assert_int_equal(err->code, QMP_ERROR_UNKNOWN_CLASS);
        assert_string_equal(err->message, "(no class): lonely");
    }
    {
        /* wrongly typed members read as absent */
        g_autoptr(GError) err = error_from_text("{\"class\": 4, \"desc\": [1]}");
        assert_int_equal(err->code, QMP_ERROR_UNKNOWN_CLASS);
        assert_string_equal(err->message, "(no class): (QEMU gave no description)");
    }
    {
        /* local errors have no class */
        g_autoptr(GError) err = g_error_new_literal(QMP_ERROR, QMP_ERROR_CLOSED, "x");
        g_autoptr(GError) other = g_error_new_literal(G_FILE_ERROR, QMP_ERROR_GENERIC, "x");
        assert_null(qmp_error_class_name(err));
        assert_false(qmp_error_is_qemu(err));
        assert_null(qmp_error_class_name(other));
        assert_false(qmp_error_is_qemu(other));
        assert_null(qmp_error_class_name(NULL));
        assert_false(qmp_error_is_qemu(NULL));
    }
}

static void
test_not_messages(void **state)
{
    static const char *const not_objects[] = {"[1, 2]", "42", "\"str\"", "null", "true", "[]"};
    static const char *const malformed[] = {
        "{\"return\": ",      "{\"return\": {}",   "{\"return\" {}}",   "garbage",
        "{\"return\": {}} x", "{\"return\": tru}", "{\"return\": {},}",
    };

    for (guint i = 0; i < G_N_ELEMENTS(not_objects); i++) {
        g_autofree char *m =
            parse_fail(not_objects[i], strlen(not_objects[i]), 0, QMP_ERROR_PROTOCOL);
        assert_string_equal(m, "QMP message is not a JSON object");
    }
    for (guint i = 0; i < G_N_ELEMENTS(malformed); i++) {
        g_autofree char *m = parse_fail(malformed[i], strlen(malformed[i]), 0, QMP_ERROR_PROTOCOL);
        assert_true(g_str_has_prefix(m, "malformed QMP message: "));
    }
    {
        g_autofree char *m = parse_fail_text("{\"foo\": 1}", QMP_ERROR_PROTOCOL);
        assert_string_equal(m, "QMP message is neither greeting, event nor reply");
    }
    {
        g_autofree char *m = parse_fail_text("{}", QMP_ERROR_PROTOCOL);
        assert_string_equal(m, "QMP message is neither greeting, event nor reply");
    }
    g_free(parse_fail_text("", QMP_ERROR_PROTOCOL));
    g_free(parse_fail_text("   ", QMP_ERROR_PROTOCOL));
}

/* json-glib 1.6 takes '{...}{...}' as valid (and leaks all roots but
 * one): a second value on a line is malformed. */
static void
test_two_values(void **state)
{
    static const char *const lines[] = {
        "{\"return\": {}}{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, "
        "\"major\": 7}}, \"capabilities\": []}}",
        "{\"return\": {}, \"id\": 1}{\"event\": \"X\"}",
        "{\"return\": {}, \"id\": 1} {\"event\": \"X\"}",
        "{\"return\": {}, \"id\": 1}[]",
        "[]{}",
        "5 {\"return\": {}}",
        "null {\"return\": {\"a\": {}}}",
        "\"s\" []",
    };

    for (guint i = 0; i < G_N_ELEMENTS(lines); i++) {
        g_autofree char *m = parse_fail(lines[i], strlen(lines[i]), 0, QMP_ERROR_PROTOCOL);
        if (!g_str_has_prefix(m, "malformed QMP message: "))
            fail_msg("%s: %s", lines[i], m);
    }
    /* spaces around one value, braces in a string: one value */
    {
        const char *spaced = "  {\"return\": [1, {}]}  \r\n";
        const char *quoted = "{\"return\": \"}{\\\"[\"}";
        g_autoptr(QmpMessage) m1 = parse_ok(spaced);
        g_autoptr(QmpMessage) m2 = parse_ok(quoted);
        assert_string_equal(qmp_json_node_string(m2->ret), "}{\"[");
    }
    /* the length counts, not the terminator */
    {
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpMessage) msg = qmp_message_parse("{\"return\": {}}{}", 14, 0, &err);
        assert_non_null(msg);
    }
    /* a brace in a string after the value is only a string */
    {
        const char *line = "{\"return\": \"}{\", \"id\": 1}";
        g_autoptr(QmpMessage) msg = parse_ok(line);
        assert_string_equal(qmp_json_node_string(msg->ret), "}{");
    }
}

static void
test_nul_byte(void **state)
{
    static const char with_nul[] = "{\"return\": {}, \"id\": 1}\0";
    static const char nul_in_string[] = "{\"return\": \"a\0b\", \"id\": 1}";
    g_autofree char *m1 = parse_fail(with_nul, sizeof(with_nul) - 1, 0, QMP_ERROR_PROTOCOL);
    g_autofree char *m2 =
        parse_fail(nul_in_string, sizeof(nul_in_string) - 1, 0, QMP_ERROR_PROTOCOL);

    assert_int_equal(sizeof(with_nul) - 1, 24);
    assert_string_equal(m1, "QMP message contains a NUL byte");
    assert_string_equal(m2, "QMP message contains a NUL byte");
    /* the length given is what counts, not the terminator */
    {
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpMessage) msg = qmp_message_parse(with_nul, sizeof(with_nul) - 2, 0, &err);
        assert_non_null(msg);
        assert_int_equal(msg->type, QMP_MSG_RETURN);
    }
}

static void
test_depth(void **state)
{
    /* {"return": [[[ ... ]]]}: the object counts as one level */
    for (guint cap = 1; cap <= 8; cap++) {
        g_autofree char *at = nested(cap - 1, "1");
        g_autofree char *over = nested(cap, "1");
        g_autofree char *line_at = g_strdup_printf("{\"return\": %s, \"id\": 1}", at);
        g_autofree char *line_over = g_strdup_printf("{\"return\": %s, \"id\": 1}", over);
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpMessage) msg = qmp_message_parse(line_at, strlen(line_at), cap, &err);
        g_autofree char *m = NULL;

        if (!msg)
            fail_msg("cap %u: %s: %s", cap, line_at, err->message);
        m = parse_fail(line_over, strlen(line_over), cap, QMP_ERROR_TOO_DEEP);
        g_autofree char *want = g_strdup_printf("QMP message nested deeper than %u levels", cap);
        assert_string_equal(m, want);
    }
    /* the default cap (0 means QMP_DEFAULT_MAX_DEPTH = 64) */
    {
        g_autofree char *at = nested(QMP_DEFAULT_MAX_DEPTH - 1, "0");
        g_autofree char *over = nested(QMP_DEFAULT_MAX_DEPTH, "0");
        g_autofree char *line_at = g_strdup_printf("{\"return\": %s}", at);
        g_autofree char *line_over = g_strdup_printf("{\"return\": %s}", over);
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpMessage) msg = qmp_message_parse(line_at, strlen(line_at), 0, &err);
        g_autofree char *m = NULL;

        if (!msg)
            fail_msg("default cap: %s", err->message);
        m = parse_fail(line_over, strlen(line_over), 0, QMP_ERROR_TOO_DEEP);
        assert_string_equal(m, "QMP message nested deeper than 64 levels");
    }
    /* braces and brackets inside strings do not count */
    {
        const char *line = "{\"return\": \"{{{{[[[[\\\"{{{{\", \"id\": 1}";
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpMessage) msg = qmp_message_parse(line, strlen(line), 1, &err);
        if (!msg)
            fail_msg("%s: %s", line, err->message);
        assert_string_equal(qmp_json_node_string(msg->ret), "{{{{[[[[\"{{{{");
    }
    {
        /* an escaped backslash ends the escape: the quote after it closes the string */
        const char *line = "{\"return\": [\"\\\\\", [[1]]]}";
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpMessage) msg = qmp_message_parse(line, strlen(line), 4, &err);
        assert_non_null(msg);
        g_free(parse_fail(line, strlen(line), 3, QMP_ERROR_TOO_DEEP));
    }
}

/* Members of the wrong type read as absent: none of this may raise a
 * g_critical (the tests run with G_DEBUG=fatal-criticals). */
static void
test_wrong_types(void **state)
{
    static const char *const greetings[] = {
        "{\"QMP\": {\"version\": \"7.2\"}}",
        "{\"QMP\": {\"version\": {\"qemu\": \"7.2\"}}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": \"7\", \"minor\": 2, \"micro\": 0}}}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7.5, \"minor\": 2, \"micro\": 0}}}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": -7, \"minor\": 2, \"micro\": 0}}}}",
        "{\"QMP\": {\"version\": {\"qemu\": [7, 2, 0]}}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, "
        "\"package\": 5}, \"capabilities\": {\"oob\": true}}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, "
        "\"package\": null}, \"capabilities\": [1, null, {}, [], \"oob\"]}}",
        "{\"QMP\": {\"version\": null, \"capabilities\": null}}",
        "{\"QMP\": {}}",
    };
    static const int greeting_ok[] = {0, 0, 0, 0, 0, 0, 1, 1, 0, 0};
    static const char *const others[] = {
        "{\"event\": \"X\", \"timestamp\": \"now\"}",
        "{\"event\": \"X\", \"timestamp\": {\"seconds\": \"1\", \"microseconds\": \"2\"}}",
        "{\"event\": \"X\", \"timestamp\": {\"seconds\": 1.5, \"microseconds\": []}}",
        "{\"event\": \"X\", \"timestamp\": [1, 2]}",
        "{\"return\": null, \"id\": [1]}",
        "{\"return\": {}, \"id\": true}",
        "{\"error\": {}, \"id\": 1.0}",
        "{\"error\": {\"class\": null, \"desc\": null}}",
        "{\"error\": {\"class\": {}, \"desc\": {}}, \"id\": \"x\"}",
    };

    G_STATIC_ASSERT(G_N_ELEMENTS(greetings) == G_N_ELEMENTS(greeting_ok));
    for (guint i = 0; i < G_N_ELEMENTS(greetings); i++) {
        g_autoptr(QmpMessage) msg = parse_ok(greetings[i]);
        g_autoptr(GError) err = NULL;
        g_autoptr(QmpGreeting) g = qmp_greeting_parse(msg->greeting, &err);
        if (!!g != greeting_ok[i])
            fail_msg("greeting %u: %s", i, greetings[i]);
        if (g) {
            assert_string_equal(g->package, "");
            assert_int_equal(qmp_greeting_has_capability(g, "oob"), i == 7);
        } else {
            assert_int_equal(err->code, QMP_ERROR_PROTOCOL);
        }
    }
    for (guint i = 0; i < G_N_ELEMENTS(others); i++) {
        g_autoptr(QmpMessage) msg = parse_ok(others[i]);
        if (msg->type == QMP_MSG_EVENT)
            assert_true(msg->timestamp_us == -1);
        if (msg->type == QMP_MSG_ERROR) {
            g_autoptr(GError) err = qmp_error_from_json(msg->error);
            assert_int_equal(err->code, QMP_ERROR_UNKNOWN_CLASS);
        }
        if ((msg->type == QMP_MSG_RETURN || msg->type == QMP_MSG_ERROR) && msg->id_is_int)
            fail_msg("%s: id read as an integer", others[i]);
    }
    /* the qmp-json accessors themselves */
    {
        g_autoptr(JsonNode) n = json_from_string(
            "{\"s\": 1, \"i\": \"2\", \"b\": 0, \"o\": [], \"a\": {}, \"ok\": true}", NULL);
        JsonObject *o = json_node_get_object(n);
        gint64 v = 77;
        assert_null(qmp_json_get_string(o, "s"));
        assert_null(qmp_json_get_string(o, "missing"));
        assert_false(qmp_json_get_int(o, "i", &v));
        assert_true(v == 77);
        assert_true(qmp_json_get_int_default(o, "i", -3) == -3);
        assert_true(qmp_json_get_int(o, "s", &v));
        assert_true(v == 1);
        assert_true(qmp_json_get_bool_default(o, "b", TRUE));
        assert_true(qmp_json_get_bool_default(o, "ok", FALSE));
        assert_null(qmp_json_get_object(o, "o"));
        assert_null(qmp_json_get_array(o, "a"));
        assert_non_null(qmp_json_get_object(o, "a"));
        assert_non_null(qmp_json_get_array(o, "o"));
        assert_null(qmp_json_get_string(NULL, "s"));
        assert_null(qmp_json_get_object(NULL, "s"));
        assert_null(qmp_json_node_object(NULL));
        assert_null(qmp_json_node_array(NULL));
        assert_null(qmp_json_node_string(NULL));
    }
}

/* ---- command lines -------------------------------------------------- */

static void
test_command_line(void **state)
{
    g_autofree char *l1 = qmp_command_line("query-status", NULL, 1);
    g_autoptr(JsonNode) args = json_from_string(
        "{ \"id\" : \"nic1\", \"nested\": { \"list\": [1, 2, \"x\"], \"b\": false } }", NULL);
    g_autofree char *l2 = qmp_command_line("device_del", args, 7);
    g_autofree char *l3 = qmp_command_line("we\"ird\\cmd", NULL, G_MAXINT64);
    g_autoptr(JsonNode) empty = json_from_string("{}", NULL);
    g_autofree char *l4 = qmp_command_line("qmp_capabilities", empty, 0);
    g_autoptr(JsonNode) oob = json_from_string("{\"enable\": [\"oob\"]}", NULL);
    g_autofree char *l5 = qmp_command_line("qmp_capabilities", oob, 1);

    assert_string_equal(l1, "{\"execute\":\"query-status\",\"id\":1}");
    assert_string_equal(l2, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"nic1\","
                            "\"nested\":{\"list\":[1,2,\"x\"],\"b\":false}},\"id\":7}");
    assert_string_equal(l3, "{\"execute\":\"we\\\"ird\\\\cmd\",\"id\":9223372036854775807}");
    assert_string_equal(l4, "{\"execute\":\"qmp_capabilities\",\"arguments\":{},\"id\":0}");
    assert_string_equal(l5,
                        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]},"
                        "\"id\":1}");
    /* args is not taken */
    assert_string_equal(json_object_get_string_member(json_node_get_object(args), "id"), "nic1");
    /* no line ending */
    assert_false(strchr(l2, '\n'));
    assert_false(strchr(l2, '\r'));

    /* and it parses back */
    {
        g_autoptr(JsonNode) back = json_from_string(l2, NULL);
        JsonObject *o = json_node_get_object(back);
        assert_string_equal(json_object_get_string_member(o, "execute"), "device_del");
        assert_true(json_object_get_int_member(o, "id") == 7);
    }
    {
        g_autoptr(JsonNode) n = json_from_string("{ \"a\" : [ 1 , { } ] }", NULL);
        g_autofree char *s = qmp_json_to_string(n);
        assert_string_equal(s, "{\"a\":[1,{}]}");
    }
}

/* The hand-written writer says what json-glib's generator says, for every
 * kind of value, and escapes what JSON needs escaped. */
static void
test_json_write_matches_generator(void **state)
{
    static const char *const inputs[] = {
        "{}",
        "[]",
        "null",
        "{\"a\":[1,-2,{\"b\":null,\"c\":true,\"d\":false}],\"e\":\"\"}",
        "{\"seq\":9223372036854775807,\"min\":-9223372036854775807}",
        "{\"q\":\"say \\\"hi\\\" \\\\ /\",\"ctl\":\"\\n\\r\\t\\b\\f\\u0001\\u001e\"}",
        "{\"utf8\":\"gr\\u00fc\\u00dfe \\u65e5\\u672c \\ud83d\\ude00\"}",
        "{\"nested\":[[[]],[{}],{\"x\":[{\"y\":[]}]}]}",
        "{\"dup order\":1,\"b\":2,\"a\":3}",
    };

    for (guint i = 0; i < G_N_ELEMENTS(inputs); i++) {
        g_autoptr(JsonNode) n = json_from_string(inputs[i], NULL);
        g_autofree char *want = json_to_string(n, FALSE);
        g_autofree char *got = qmp_json_to_string(n);

        assert_non_null(n);
        assert_string_equal(got, want);
    }
    /* every control character is escaped (json-glib 1.6's generator lets
     * 0x1f through raw) and reads back as itself */
    {
        char raw[33];
        g_autoptr(JsonNode) n = NULL;
        g_autofree char *text = NULL;
        g_autoptr(JsonNode) back = NULL;

        for (int c = 1; c < 32; c++)
            raw[c - 1] = (char)c;
        raw[31] = '"';
        raw[32] = '\0';
        n = json_node_init_string(json_node_alloc(), raw);
        text = qmp_json_to_string(n);
        for (const char *p = text; *p; p++)
            assert_true((unsigned char)*p >= 0x20);
        back = json_from_string(text, NULL);
        assert_non_null(back);
        assert_string_equal(json_node_get_string(back), raw);
    }
    /* a double stays a double, and the same number */
    {
        static const double values[] = {0.5, -1.25e-7, 3.0, 1e300};

        for (guint i = 0; i < G_N_ELEMENTS(values); i++) {
            g_autoptr(JsonNode) n = json_node_init_double(json_node_alloc(), values[i]);
            g_autofree char *text = qmp_json_to_string(n);
            g_autoptr(JsonNode) back = json_from_string(text, NULL);

            assert_non_null(back);
            assert_int_equal(json_node_get_value_type(back), G_TYPE_DOUBLE);
            assert_true(json_node_get_double(back) == values[i]);
        }
    }
    /* members spliced into an object being written */
    {
        static const char *const skip[] = {"seq", NULL};
        g_autoptr(JsonNode) n = json_from_string("{\"a\":1,\"seq\":9,\"b\":[\"x\"]}", NULL);
        g_autoptr(GString) out = g_string_new("{\"seq\":1");

        qmp_json_write_members(out, json_node_get_object(n), TRUE, skip);
        g_string_append_c(out, '}');
        assert_string_equal(out->str, "{\"seq\":1,\"a\":1,\"b\":[\"x\"]}");
    }
}

/* The one-pass reader reads valid JSON as json-glib does (same tree, same
 * types, same text written back), and refuses, with a message, what
 * json-glib lets through or mishandles. */
static void
assert_parse_like_json_glib(const char *text)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) want = json_from_string(text, NULL);
    g_autoptr(JsonNode) got = qmp_json_parse(text, strlen(text), 0, &error);
    g_autofree char *want_text = NULL, *got_text = NULL;

    if (!got)
        fail_msg("refused %s: %s", text, error->message);
    assert_non_null(want);
    want_text = qmp_json_to_string(want);
    got_text = qmp_json_to_string(got);
    assert_string_equal(got_text, want_text);
    if (!json_node_equal(got, want))
        fail_msg("not the same tree (types?): %s", text);
}

static void
test_json_parse(void **state)
{
    static const char *const valid[] = {
        "{}", "[]", "null", "true", "false", "0", "-0", "17", "\"\"", " { } ",
        "{\"a\":[1,-2,{\"b\":null,\"c\":true,\"d\":false}],\"e\":\"\"}",
        "{\"seq\":9223372036854775807,\"min\":-9223372036854775807}",
        "{\"big\":18446744073709551615}",
        "{\"real\":[0.5,-1.25e-7,3E2,1e+3,2.5E-3]}",
        "{\"q\":\"say \\\"hi\\\" \\\\ \\/\",\"ctl\":\"\\n\\r\\t\\b\\f\\u0001\\u001e\"}",
        "{\"utf8\":\"gr\\u00fc\\u00dfe \\u65e5\\u672c \\ud83d\\ude00 raw: gr\xc3\xbc\xc3\x9f\"}",
        "{\"nested\":[[[]],[{}],{\"x\":[{\"y\":[]}]}]}",
        "{\"dup\":1,\"b\":2,\"dup\":3}",
        " \t\r\n{ \"ws\" :\t[ 1 ,\n2 ] }\r\n",
        "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, "
        "\"id\": 5}",
        "{\"a-very-long-member-name-that-does-not-fit-in-the-buffer-kept-on-the-stack-for-"
        "names-so-it-goes-to-the-heap-instead-of-the-stack-which-is-fine\":[\"x\\ty\"]}",
    };
    static const struct {
        const char *text;
        const char *says;
    } refused[] = {
        {"", "the text ends"},
        {"   ", "the text ends"},
        {"{", "ends inside an object"},
        {"{\"a\":1", "ends inside an object"},
        {"{\"a\":1,}", "member name"},
        {"{\"a\" 1}", "':'"},
        {"{a:1}", "member name"},
        {"[1,2", "ends inside an array"},
        {"[1 2]", "',' or ']'"},
        {"{}{}", "more than one JSON value"},
        {"5 {}", "more than one JSON value"},
        {"{} x", "more than one JSON value"},
        {"nul", "expected a value"},
        {"True", "expected a value"},
        {"'a'", "expected a value"},
        {"01", "leading zero"},
        {"-", "without digits"},
        {"1.", "after '.'"},
        {"1e", "exponent"},
        {"1e999", "too large"},
        {"[-2E+400]", "too large"},
        {"+1", "expected a value"},
        {"0x10", "more than one JSON value"},
        {"\"abc", "does not end"},
        {"\"a\\", "does not end"},
        {"\"\\x\"", "unknown escape"},
        {"\"\\u12\"", "4 hex digits"},
        {"\"\\ud83d\"", "lone high surrogate"},
        {"\"\\ud83d\\u0041\"", "lone high surrogate"},
        {"\"\\ude00\"", "lone low surrogate"},
        {"\"\\u0000\"", "NUL"},
        {"\"a\tb\"", "control character"},
        {"\"\xff\"", "UTF-8"},
        {"\"\xc3\"", "UTF-8"},
        {"{\"\xed\xa0\x80\":1}", "UTF-8"},
    };
    (void)state;

    for (guint i = 0; i < G_N_ELEMENTS(valid); i++)
        assert_parse_like_json_glib(valid[i]);
    for (guint i = 0; i < G_N_ELEMENTS(refused); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(JsonNode) n = qmp_json_parse(refused[i].text, strlen(refused[i].text), 0, &error);

        if (n)
            fail_msg("accepted %s", refused[i].text);
        assert_true(g_error_matches(error, QMP_ERROR, QMP_ERROR_PROTOCOL));
        if (!strstr(error->message, refused[i].says))
            fail_msg("%s: \"%s\" does not say \"%s\"", refused[i].text, error->message,
                     refused[i].says);
    }
    /* what hotplugd wrote itself: a raw control character (json-glib
     * 1.6's generator left 0x1f unescaped) and deep nesting are read, a
     * NUL and a second value still are not */
    {
        static const char raw[] = "{\"d\":\"a\x1f" "b\"}";
        static const char nul[] = "{\"d\":\"a\0b\"}";
        g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL;
        g_autoptr(JsonNode) n = qmp_json_parse_stored(raw, sizeof raw - 1, NULL);
        g_autoptr(GString) deep = g_string_new(NULL);
        g_autoptr(JsonNode) d = NULL;

        assert_null(qmp_json_parse(raw, sizeof raw - 1, 0, &e1));
        assert_non_null(strstr(e1->message, "control character (0x1f)"));
        assert_non_null(n);
        assert_string_equal(qmp_json_get_string(json_node_get_object(n), "d"), "a\x1f" "b");
        assert_null(qmp_json_parse_stored(nul, sizeof nul - 1, &e2));
        assert_null(qmp_json_parse_stored("{}{}", 4, &e3));
        for (guint i = 0; i < 200; i++)
            g_string_append_c(deep, '[');
        for (guint i = 0; i < 200; i++)
            g_string_append_c(deep, ']');
        d = qmp_json_parse_stored(deep->str, deep->len, NULL);
        assert_non_null(d);
    }
    /* an integer past 2^64 - 1 is a double (json-glib 1.6 reads it as -1);
     * so is one below -2^63; -2^63 itself is a gint64 */
    {
        g_autoptr(JsonNode) lo = qmp_json_parse("-9223372036854775808", 20, 0, NULL);
        g_autoptr(JsonNode) below = qmp_json_parse("-9223372036854775809", 20, 0, NULL);
        assert_int_equal(json_node_get_value_type(lo), G_TYPE_INT64);
        assert_true(json_node_get_int(lo) == G_MININT64);
        assert_int_equal(json_node_get_value_type(below), G_TYPE_DOUBLE);
    }
    {
        g_autoptr(JsonNode) n = qmp_json_parse("100000000000000000000000", 24, 0, NULL);
        assert_non_null(n);
        assert_int_equal(json_node_get_value_type(n), G_TYPE_DOUBLE);
        assert_true(json_node_get_double(n) == 1e23);
    }
    /* a NUL byte inside the given length, in a string and outside */
    {
        static const char nul_in_string[] = "{\"a\":\"x\0y\"}";
        static const char nul_after[] = "{\"a\":1}\0";
        g_autoptr(GError) e1 = NULL, e2 = NULL;

        assert_null(qmp_json_parse(nul_in_string, sizeof nul_in_string - 1, 0, &e1));
        assert_non_null(strstr(e1->message, "control character (0x00)"));
        assert_null(qmp_json_parse(nul_after, sizeof nul_after - 1, 0, &e2));
        assert_non_null(strstr(e2->message, "NUL byte"));
    }
    /* the length is obeyed: no NUL needed, nothing read past it */
    {
        g_autoptr(JsonNode) n = qmp_json_parse("{\"a\":12}garbage", 8, 0, NULL);
        g_autoptr(GError) error = NULL;
        assert_non_null(n);
        assert_int_equal(qmp_json_get_int_default(json_node_get_object(n), "a", 0), 12);
        assert_null(qmp_json_parse("{\"a\":12}garbage", 7, 0, &error));
    }
    /* depth: max_depth levels are read, one more is refused */
    {
        g_autoptr(GString) ok = g_string_new(NULL);
        g_autoptr(GString) deep = g_string_new(NULL);
        g_autoptr(GError) error = NULL;
        g_autoptr(JsonNode) n = NULL;

        for (guint i = 0; i < QMP_DEFAULT_MAX_DEPTH; i++)
            g_string_append_c(ok, '[');
        for (guint i = 0; i < QMP_DEFAULT_MAX_DEPTH; i++)
            g_string_append_c(ok, ']');
        n = qmp_json_parse(ok->str, ok->len, 0, NULL);
        assert_non_null(n);
        for (guint i = 0; i < 100000; i++)
            g_string_append(deep, "{\"a\":[");
        assert_null(qmp_json_parse(deep->str, deep->len, 0, &error));
        assert_true(g_error_matches(error, QMP_ERROR, QMP_ERROR_TOO_DEEP));
        g_clear_error(&error);
        assert_null(qmp_json_parse(ok->str, ok->len, 3, &error));
        assert_true(g_error_matches(error, QMP_ERROR, QMP_ERROR_TOO_DEEP));
    }
    /* every line QEMU sent in the captures reads as json-glib reads it */
    {
        static const char *const files[] = {"qemu-guest-hotplug.txt", "qemu-memory.txt",
                                            "qemu-negotiation.txt", "qemu-schema.txt",
                                            "qemu-usb-unplug.txt", "qemu-guest-refuses.txt"};
        guint lines = 0;

        for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
            g_autofree char *path =
                g_build_filename(TOP_SRCDIR, "tests",
                                 "fuzz", "corpus", files[i], NULL);
            g_autofree char *text = NULL;
            g_auto(GStrv) split = NULL;

            if (!g_file_get_contents(path, &text, NULL, NULL))
                fail_msg("cannot read %s", path);
            split = g_strsplit(text, "\n", -1);
            for (guint k = 0; split[k]; k++) {
                g_strchomp(split[k]);
                if (split[k][0] != '{')
                    continue;
                assert_parse_like_json_glib(split[k]);
                lines++;
            }
        }
        print_message("# %u captured QEMU lines read alike\n", lines);
        assert_true(lines > 20);
    }
}

/* ---- capabilities from a schema ----------------------------------- */

static const char tiny_schema[] =
    "[{\"name\": \"device_del\", \"ret-type\": \"0\", \"meta-type\": \"command\", "
    "\"arg-type\": \"1\"},"
    " {\"name\": \"DEVICE_DELETED\", \"meta-type\": \"event\", \"arg-type\": \"2\"},"
    " {\"name\": \"DEVICE_UNPLUG_GUEST_ERROR\", \"meta-type\": \"event\", \"arg-type\": \"3\"},"
    " {\"name\": \"ACPI_DEVICE_OST\", \"meta-type\": \"event\", \"arg-type\": \"4\"},"
    " {\"name\": \"query-memory-devices\", \"meta-type\": \"command\"},"
    " {\"name\": \"blockdev-add\", \"meta-type\": \"command\"},"
    " {\"name\": \"int\", \"meta-type\": \"builtin\", \"json-type\": \"int\"},"
    " {\"name\": \"1\", \"meta-type\": \"object\", \"members\": []},"
    " 5, null, [], {\"name\": 3, \"meta-type\": \"command\"},"
    " {\"meta-type\": \"command\"}, {\"name\": \"no-meta\"},"
    " {\"name\": \"MEM_UNPLUG_ERROR\", \"meta-type\": [\"event\"]}]";

static void
test_caps_schema(void **state)
{
    g_autoptr(QmpCaps) caps = qmp_caps_new();
    g_autoptr(JsonNode) schema = json_from_string(tiny_schema, NULL);
    const char *const *list;
    const char *const want[] = {"acpi-device-ost-event", "blockdev",
                                "device-unplug-guest-error-event", "memory-hotplug", NULL};

    assert_non_null(schema);
    qmp_caps_set_schema(caps, schema);
    assert_true(qmp_caps_has_command(caps, "device_del"));
    assert_true(qmp_caps_has_command(caps, "blockdev-add"));
    assert_true(qmp_caps_has_command(caps, "query-memory-devices"));
    assert_false(qmp_caps_has_command(caps, "DEVICE_DELETED"));
    assert_false(qmp_caps_has_command(caps, "device_add"));
    assert_false(qmp_caps_has_command(caps, "int"));
    assert_false(qmp_caps_has_command(caps, "no-meta"));
    assert_true(qmp_caps_has_event(caps, "DEVICE_DELETED"));
    assert_true(qmp_caps_has_event(caps, "DEVICE_UNPLUG_GUEST_ERROR"));
    assert_false(qmp_caps_has_event(caps, "device_del"));
    assert_false(qmp_caps_has_event(caps, "MEM_UNPLUG_ERROR"));

    list = qmp_caps_list(caps);
    for (guint i = 0; i < G_N_ELEMENTS(want); i++) {
        if (!want[i])
            assert_null(list[i]);
        else
            assert_string_equal(list[i], want[i]);
    }
    /* computed once */
    assert_ptr_equal(qmp_caps_list(caps), list);
    assert_false(qmp_caps_cpu_hotplug(caps));
    assert_null(qmp_caps_package(caps));
    assert_null(qmp_caps_machine_type(caps));
    assert_null(qmp_caps_run_state(caps));

    {
        g_autoptr(JsonNode) j = qmp_caps_to_json(caps);
        g_autofree char *text = qmp_json_to_string(j);
        assert_string_equal(text, "{\"version\":\"0.0.0\",\"package\":\"\",\"machine\":\"\","
                                  "\"status\":\"\",\"capabilities\":[\"acpi-device-ost-event\","
                                  "\"blockdev\",\"device-unplug-guest-error-event\","
                                  "\"memory-hotplug\"]}");
    }
}

static void
test_caps_schema_not_array(void **state)
{
    g_autoptr(QmpCaps) caps = qmp_caps_new();
    g_autoptr(JsonNode) obj = json_from_string("{\"name\": \"device_del\"}", NULL);
    g_autoptr(JsonNode) str = json_from_string("\"x\"", NULL);

    qmp_caps_set_schema(caps, obj);
    qmp_caps_set_schema(caps, str);
    qmp_caps_set_schema(caps, NULL);
    assert_false(qmp_caps_has_command(caps, "device_del"));
    assert_null(qmp_caps_list(caps)[0]);
}

/* A later refresh (qmp-caps.h: "tests, and a later refresh") must show in
 * qmp_caps_list: the cached list is dropped when the schema changes. */
static void
test_caps_list_after_refresh(void **state)
{
    QmpCaps *caps = qmp_caps_new();
    JsonNode *schema = json_from_string(tiny_schema, NULL);
    char *first;

    assert_null(qmp_caps_list(caps)[0]);
    qmp_caps_set_schema(caps, schema);
    assert_true(qmp_caps_has_command(caps, "blockdev-add"));
    first = g_strdup(qmp_caps_list(caps)[0]);
    qmp_caps_free(caps);
    json_node_unref(schema);
    assert_non_null(first);
    assert_string_equal(first, "acpi-device-ost-event");
    g_free(first);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_greeting_version_at_least),
        cmocka_unit_test(test_greeting_variants),
        cmocka_unit_test(test_event_with_data),
        cmocka_unit_test(test_event_without_data),
        cmocka_unit_test(test_event_timestamp_range),
        cmocka_unit_test(test_return),
        cmocka_unit_test(test_reply_ids),
        cmocka_unit_test(test_error),
        cmocka_unit_test(test_error_classes),
        cmocka_unit_test(test_not_messages),
        cmocka_unit_test(test_two_values),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_command_line),
        cmocka_unit_test(test_json_write_matches_generator),
        cmocka_unit_test(test_json_parse),
        cmocka_unit_test(test_caps_schema),
        cmocka_unit_test(test_caps_schema_not_array),
        cmocka_unit_test(test_caps_list_after_refresh),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
