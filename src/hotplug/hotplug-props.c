/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PROP=VALUE strings to the JSON types QEMU expects for a driver, from
 * the driver's device-list-properties. */
#define G_LOG_DOMAIN "hotplug"
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hotplug-outcome.h"
#include "hotplug-props.h"
#include "qmp-json.h"

struct HotplugPropTypes {
    GHashTable *types;  /* name -> type */
};

/* Properties every device takes that device-list-properties leaves out. */
static const char *const hotplug_generic_props[] = {"bus", "id", NULL};

HotplugPropTypes *
hotplug_prop_types_new(JsonNode *reply)
{
    HotplugPropTypes *t = g_new0(HotplugPropTypes, 1);
    JsonArray *arr = qmp_json_node_array(reply);

    t->types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 0; arr && i < json_array_get_length(arr); i++) {
        JsonObject *p = qmp_json_node_object(json_array_get_element(arr, i));
        const char *name = qmp_json_get_string(p, "name");
        const char *type = qmp_json_get_string(p, "type");
        const char *desc = qmp_json_get_string(p, "description");
        /* a PCI address ("addr") says int32 but is QEMU's own text syntax,
         * hex slot[.fn]: as a number it means something else */
        if (type && desc && g_str_has_prefix(desc, "Slot and optional function number"))
            type = "str";
        if (name && type)
            g_hash_table_insert(t->types, g_strdup(name), g_strdup(type));
    }
    for (const char *const *g = hotplug_generic_props; *g; g++)
        if (!g_hash_table_contains(t->types, *g))
            g_hash_table_insert(t->types, g_strdup(*g), g_strdup("str"));
    return t;
}

void
hotplug_prop_types_free(HotplugPropTypes *t)
{
    if (!t)
        return;
    g_hash_table_unref(t->types);
    g_free(t);
}

const char *
hotplug_prop_types_lookup(HotplugPropTypes *t, const char *name)
{
    return g_hash_table_lookup(t->types, name);
}

gboolean
hotplug_parse_size(const char *text, guint64 *out)
{
    char *end = NULL;
    guint64 v, mult = 1;

    if (!text || !g_ascii_isdigit(*text))
        return FALSE;
    errno = 0;
    v = g_ascii_strtoull(text, &end, 10);
    if (errno)
        return FALSE;
    switch (g_ascii_toupper(*end)) {
    case '\0':
        break;
    case 'K':
        mult = 1ULL << 10;
        break;
    case 'M':
        mult = 1ULL << 20;
        break;
    case 'G':
        mult = 1ULL << 30;
        break;
    case 'T':
        mult = 1ULL << 40;
        break;
    default:
        return FALSE;
    }
    if (*end) {
        end++;
        if (g_ascii_toupper(*end) == 'B' || (g_ascii_toupper(*end) == 'I' &&
                                             g_ascii_toupper(end[1]) == 'B'))
            end += (*end == 'B' || *end == 'b') ? 1 : 2;
        if (*end)
            return FALSE;
    }
    if (v > G_MAXUINT64 / mult)
        return FALSE;
    *out = v * mult;
    return TRUE;
}

static gboolean
hotplug_parse_int(const char *text, gboolean is_unsigned, JsonNode **out)
{
    char *end = NULL;
    const char *p = text;
    gboolean neg = FALSE;
    guint64 v;

    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    if (!g_ascii_isdigit(*p) || (neg && is_unsigned))
        return FALSE;
    errno = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && !g_ascii_isxdigit(p[2]))
        return FALSE; /* "0x", "0x 5", "0x+5": strtoull would take them */
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        v = g_ascii_strtoull(p + 2, &end, 16);
    else
        v = g_ascii_strtoull(p, &end, 10);
    if (errno || *end || end == p)
        return FALSE;
    if (v > (guint64)G_MAXINT64 + (neg ? 1 : 0))
        return FALSE;
    if (neg)
        *out = json_node_init_int(json_node_alloc(),
                                  v == (guint64)G_MAXINT64 + 1 ? G_MININT64 : -(gint64)v);
    else
        *out = json_node_init_int(json_node_alloc(), (gint64)v);
    return TRUE;
}

JsonNode *
hotplug_prop_value(const char *type, const char *value)
{
    JsonNode *node = NULL;

    if (!type)
        type = "str";
    if (g_str_equal(type, "bool")) {
        static const char *const yes[] = {"on", "true", "yes", NULL};
        static const char *const no[] = {"off", "false", "no", NULL};
        if (g_strv_contains(yes, value))
            return json_node_init_boolean(json_node_alloc(), TRUE);
        if (g_strv_contains(no, value))
            return json_node_init_boolean(json_node_alloc(), FALSE);
    } else if (g_str_equal(type, "size")) {
        guint64 v;
        if (hotplug_parse_size(value, &v) && v <= G_MAXINT64)
            return json_node_init_int(json_node_alloc(), (gint64)v);
    } else if (g_str_has_prefix(type, "int") || g_str_has_prefix(type, "uint")) {
        if (hotplug_parse_int(value, type[0] == 'u', &node))
            return node;
    }
    return json_node_init_string(json_node_alloc(), value);
}

static int
hotplug_prop_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

gboolean
hotplug_props_convert(HotplugPropTypes *types, const char *driver, const char *const *props,
                      JsonObject *obj, GError **error)
{
    for (; props && *props; props++) {
        const char *eq = strchr(*props, '=');
        g_autofree char *name = NULL;
        const char *type = NULL;

        if (!eq || eq == *props) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "'%s' is not PROP=VALUE", *props);
            return FALSE;
        }
        name = g_strndup(*props, eq - *props);
        if (g_str_equal(name, "driver")) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "the driver is given as DRIVER, not as a property");
            return FALSE;
        }
        if (types) {
            type = hotplug_prop_types_lookup(types, name);
            if (!type) {
                g_autoptr(GPtrArray) known = g_ptr_array_new();
                g_autofree char *list = NULL;
                GHashTableIter it;
                gpointer key;

                g_hash_table_iter_init(&it, types->types);
                while (g_hash_table_iter_next(&it, &key, NULL))
                    g_ptr_array_add(known, key);
                g_ptr_array_sort(known, hotplug_prop_name_cmp);
                g_ptr_array_add(known, NULL);
                list = g_strjoinv(", ", (char **)known->pdata);
                g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_BAD_PROPERTY,
                            "%s has no property '%s' (it has: %s)", driver, name, list);
                return FALSE;
            }
        }
        json_object_set_member(obj, name, hotplug_prop_value(type, eq + 1));
    }
    return TRUE;
}
