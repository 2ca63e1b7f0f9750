/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One JSON value (RFC 8259) read from a line, straight into json-glib
 * nodes: one pass, no scanner, no signals.  It refuses what json-glib 1.6
 * mishandles (a second value, a lone surrogate, a NUL, nesting without
 * end) as part of the read, so the hot readers (QMP messages, control
 * requests, event log and journal lines) need no checks of their own. */
#define G_LOG_DOMAIN "qmp"
#include "config.h"

#include <math.h>
#include <string.h>

#include "qmp-error.h"
#include "qmp-json.h"
#include "qmp-message.h"

typedef struct {
    const char *p, *end, *start;
    guint depth, max_depth;
    guchar min_char; /* the lowest byte a string may hold raw */
    GError **error;
    GString *buf; /* the string last read (unescaped) */
} QmpJsonReader;

static gboolean G_GNUC_PRINTF(3, 4)
    qmp_json_reader_fail(QmpJsonReader *r, gint code, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(r->error, QMP_ERROR, code, "%s (byte %" G_GSIZE_FORMAT ")", msg,
                (gsize)(r->p - r->start));
    return FALSE;
}

static void
qmp_json_reader_skip_ws(QmpJsonReader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int
qmp_json_hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        int d = g_ascii_xdigit_value(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* r->p is after the opening quote; on success the string is r->buf's
 * text (until the next string is read) and r->p is after the closing
 * quote. */
static gboolean
qmp_json_read_string(QmpJsonReader *r)
{
    static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
    const char *s = r->p, *q = s;

    if (!r->buf)
        r->buf = g_string_sized_new(256);
    g_string_truncate(r->buf, 0);
    for (;;) {
        const char *e;
        char utf8[6];
        gunichar u;
        int h;

        while (q < r->end && *q != '"' && *q != '\\' && (guchar)*q >= r->min_char)
            q++;
        if (q > s)
            g_string_append_len(r->buf, s, q - s);
        if (q >= r->end) {
            r->p = q;
            return qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a string does not end");
        }
        if (*q == '"')
            break;
        if (*q != '\\') {
            r->p = q;
            return qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL,
                                        "a control character (0x%02x) inside a string",
                                        (guint)(guchar)*q);
        }
        if (q + 1 >= r->end) {
            r->p = q;
            return qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a string does not end");
        }
        /* a one-letter escape: what it stands for is at its place in esc_out */
        if (q[1] != '\0' && (e = strchr(esc_in, q[1]))) {
            g_string_append_c(r->buf, esc_out[e - esc_in]);
            q += 2;
            s = q;
            continue;
        }
        if (q[1] != 'u') {
            r->p = q;
            return qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "an unknown escape \\%c",
                                        g_ascii_isprint(q[1]) ? q[1] : '?');
        }
        if (r->end - q < 6 || (h = qmp_json_hex4(q + 2)) < 0) {
            r->p = q;
            return qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a \\u escape is not 4 hex digits");
        }
        u = (gunichar)h;
        if (u >= 0xdc00 && u <= 0xdfff) {
            r->p = q;
            return qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL,
                                        "a \\u escape is a lone low surrogate, not valid UTF-8");
        }
        if (u >= 0xd800 && u <= 0xdbff) {
            int lo;
            if (r->end - q < 12 || q[6] != '\\' || q[7] != 'u' ||
                (lo = qmp_json_hex4(q + 8)) < 0xdc00 || lo > 0xdfff) {
                r->p = q;
                return qmp_json_reader_fail(
                    r, QMP_ERROR_PROTOCOL,
                    "a \\u escape is a lone high surrogate, not valid UTF-8");
            }
            u = 0x10000 + ((u - 0xd800) << 10) + ((gunichar)lo - 0xdc00);
            q += 6;
        }
        if (u == 0) {
            r->p = q;
            return qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL,
                                        "a \\u0000 escape (a string cannot hold NUL)");
        }
        g_string_append_len(r->buf, utf8, g_unichar_to_utf8(u, utf8));
        q += 6;
        s = q;
    }
    if (!g_utf8_validate_len(r->buf->str, r->buf->len, NULL)) {
        r->p = s;
        return qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a string is not valid UTF-8");
    }
    r->p = q + 1;
    return TRUE;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static JsonNode *
qmp_json_read_number(QmpJsonReader *r)
{
    const char *s = r->p, *q = s;
    gboolean neg = FALSE, real = FALSE;
    guint64 v = 0;
    gboolean overflow = FALSE;

    if (*q == '-') {
        neg = TRUE;
        q++;
    }
    if (q >= r->end || !g_ascii_isdigit(*q)) {
        qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a number without digits");
        return NULL;
    }
    if (*q == '0' && q + 1 < r->end && g_ascii_isdigit(q[1])) {
        qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a number with a leading zero");
        return NULL;
    }
    while (q < r->end && g_ascii_isdigit(*q)) {
        guint d = (guint)(*q - '0');
        if (v > (G_MAXUINT64 - d) / 10)
            overflow = TRUE;
        v = v * 10 + d;
        q++;
    }
    if (q < r->end && *q == '.') {
        real = TRUE;
        q++;
        if (q >= r->end || !g_ascii_isdigit(*q)) {
            r->p = q;
            qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a number without digits after '.'");
            return NULL;
        }
        while (q < r->end && g_ascii_isdigit(*q))
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        real = TRUE;
        q++;
        if (q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= r->end || !g_ascii_isdigit(*q)) {
            r->p = q;
            qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a number without exponent digits");
            return NULL;
        }
        while (q < r->end && g_ascii_isdigit(*q))
            q++;
    }
    r->p = q;
    /* below -2^63 no gint64 holds it */
    if (neg && v > (guint64)G_MAXINT64 + 1)
        overflow = TRUE;
    if (real || overflow) {
        char tmp[G_ASCII_DTOSTR_BUF_SIZE];
        g_autofree char *big = NULL;
        gsize n = (gsize)(q - s);
        char *text = n < sizeof tmp ? tmp : (big = g_malloc(n + 1));

        double d;

        memcpy(text, s, n);
        text[n] = '\0';
        d = g_ascii_strtod(text, NULL);
        if (isinf(d)) {
            r->p = s;
            qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a number too large for a double");
            return NULL;
        }
        return json_node_init_double(json_node_alloc(), d);
    }
    /* as json-glib 1.6 reads it: an integer up to 2^64 - 1, kept in a
     * gint64 (above 2^63 - 1 it wraps); negated as unsigned, so -2^63
     * is no overflow */
    return json_node_init_int(json_node_alloc(), (gint64)(neg ? 0 - v : v));
}

static gboolean
qmp_json_reader_keyword(QmpJsonReader *r, const char *word)
{
    gsize n = strlen(word);

    if ((gsize)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return FALSE;
    r->p += n;
    return TRUE;
}

static JsonNode *qmp_json_read_value(QmpJsonReader *r);

/* After an element of an object or array (what: "an object", "an array";
 * close: its closing bracket): 1 when a ',' says another follows, 0 when
 * the container ended, -1 (the error set) when neither. */
static int
qmp_json_reader_after_element(QmpJsonReader *r, char close, const char *what)
{
    qmp_json_reader_skip_ws(r);
    if (r->p < r->end && (*r->p == ',' || *r->p == close))
        return *r->p++ == ',' ? 1 : 0;
    if (r->p >= r->end)
        qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "the text ends inside %s", what);
    else
        qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "expected ',' or '%c' in %s", close, what);
    return -1;
}

static JsonNode *
qmp_json_read_object(QmpJsonReader *r)
{
    JsonObject *obj = json_object_new();
    JsonNode *node = json_node_init_object(json_node_alloc(), obj);
    int next = -1;

    json_object_unref(obj);
    r->p++; /* '{' */
    qmp_json_reader_skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return node;
    }
    for (;;) {
        char local[128];
        g_autofree char *heap = NULL;
        const char *name;
        JsonNode *member;

        qmp_json_reader_skip_ws(r);
        if (r->p >= r->end || *r->p != '"') {
            qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL,
                                 r->p >= r->end ? "the text ends inside an object"
                                                : "expected a member name (a string)");
            goto fail;
        }
        r->p++;
        if (!qmp_json_read_string(r))
            goto fail;
        /* the value may read strings of its own: the name is kept aside */
        if (r->buf->len < sizeof local) {
            memcpy(local, r->buf->str, r->buf->len + 1);
            name = local;
        } else {
            name = heap = g_strndup(r->buf->str, r->buf->len);
        }
        qmp_json_reader_skip_ws(r);
        if (r->p >= r->end || *r->p != ':') {
            qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "expected ':' after a member name");
            goto fail;
        }
        r->p++;
        if (!(member = qmp_json_read_value(r)))
            goto fail;
        json_object_set_member(obj, name, member);
        if ((next = qmp_json_reader_after_element(r, '}', "an object")) <= 0)
            break;
    }
    if (next == 0)
        return node;
fail:
    json_node_unref(node);
    return NULL;
}

static JsonNode *
qmp_json_read_array(QmpJsonReader *r)
{
    JsonArray *arr = json_array_new();
    JsonNode *node = json_node_init_array(json_node_alloc(), arr);
    int next = -1;

    json_array_unref(arr);
    r->p++; /* '[' */
    qmp_json_reader_skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return node;
    }
    for (;;) {
        JsonNode *element = qmp_json_read_value(r);

        if (!element)
            goto fail;
        json_array_add_element(arr, element);
        if ((next = qmp_json_reader_after_element(r, ']', "an array")) <= 0)
            break;
    }
    if (next == 0)
        return node;
fail:
    json_node_unref(node);
    return NULL;
}

static JsonNode *
qmp_json_read_value(QmpJsonReader *r)
{
    JsonNode *node = NULL;

    qmp_json_reader_skip_ws(r);
    if (r->p >= r->end) {
        qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "the text ends where a value should be");
        return NULL;
    }
    switch (*r->p) {
    case '{':
    case '[':
        if (r->depth >= r->max_depth) {
            qmp_json_reader_fail(r, QMP_ERROR_TOO_DEEP, "JSON nested deeper than %u levels",
                                 r->max_depth);
            return NULL;
        }
        r->depth++;
        node = *r->p == '{' ? qmp_json_read_object(r) : qmp_json_read_array(r);
        r->depth--;
        return node;
    case '"':
        r->p++;
        if (!qmp_json_read_string(r))
            return NULL;
        return json_node_init_string(json_node_alloc(), r->buf->str);
    case 't':
        if (qmp_json_reader_keyword(r, "true"))
            return json_node_init_boolean(json_node_alloc(), TRUE);
        break;
    case 'f':
        if (qmp_json_reader_keyword(r, "false"))
            return json_node_init_boolean(json_node_alloc(), FALSE);
        break;
    case 'n':
        if (qmp_json_reader_keyword(r, "null"))
            return json_node_init_null(json_node_alloc());
        break;
    default:
        if (*r->p == '-' || g_ascii_isdigit(*r->p))
            return qmp_json_read_number(r);
        break;
    }
    if (*r->p == '\0')
        qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a NUL byte");
    else
        qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "expected a value");
    return NULL;
}

static JsonNode *
qmp_json_parse_with(QmpJsonReader *r)
{
    JsonNode *node = qmp_json_read_value(r);

    if (node) {
        qmp_json_reader_skip_ws(r);
        if (r->p < r->end) {
            if (*r->p == '\0')
                qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "a NUL byte");
            else
                qmp_json_reader_fail(r, QMP_ERROR_PROTOCOL, "more than one JSON value");
            g_clear_pointer(&node, json_node_unref);
        }
    }
    if (r->buf)
        g_string_free(r->buf, TRUE);
    return node;
}

JsonNode *
qmp_json_parse(const char *text, gsize len, guint max_depth, GError **error)
{
    QmpJsonReader r = {.p = text, .end = text + len, .start = text, .error = error};

    r.max_depth = max_depth ? max_depth : QMP_DEFAULT_MAX_DEPTH;
    r.min_char = 0x20;
    return qmp_json_parse_with(&r);
}

/* Lines we wrote: a request's arguments (at most QMP_DEFAULT_MAX_DEPTH
 * deep) sit a few levels down in them. */
#define QMP_JSON_STORED_MAX_DEPTH 1024u

JsonNode *
qmp_json_parse_stored(const char *text, gsize len, GError **error)
{
    QmpJsonReader r = {.p = text, .end = text + len, .start = text, .error = error};

    r.max_depth = QMP_JSON_STORED_MAX_DEPTH;
    r.min_char = 0x01;
    return qmp_json_parse_with(&r);
}
