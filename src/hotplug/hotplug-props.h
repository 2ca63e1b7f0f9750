/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PROP=VALUE strings to the JSON types QEMU expects for a driver. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct HotplugPropTypes HotplugPropTypes;

/* From a device-list-properties reply: [{name, type}, ...]. */
HotplugPropTypes *hotplug_prop_types_new(JsonNode *reply);
void hotplug_prop_types_free(HotplugPropTypes *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugPropTypes, hotplug_prop_types_free)
/* The QOM type of a property ("int32", "bool", "str" ...), or NULL. */
const char *hotplug_prop_types_lookup(HotplugPropTypes *t, const char *name);

/* value as a JSON node of the kind type wants: integers (decimal, 0x..)
 * for int and uint types, a byte count for "size" (K/M/G/T suffixes),
 * true/false for "bool" (on/off, yes/no, true/false), a string otherwise
 * and whenever the text does not fit (QEMU then says what is wrong). */
JsonNode *hotplug_prop_value(const char *type, const char *value);

/* Add each "PROP=VALUE" of props to obj, converted.  types may be NULL
 * (driver unknown to device-list-properties): values go as strings and
 * QEMU judges.  Errors: HOTPLUG_ERROR_INVALID for a malformed PROP=VALUE,
 * HOTPLUG_ERROR_BAD_PROPERTY for a property the driver lacks. */
gboolean hotplug_props_convert(HotplugPropTypes *types, const char *driver,
                               const char *const *props, JsonObject *obj, GError **error);

/* Parse "512M", "1G", "4096" (bytes), K/M/G/T binary suffixes. */
gboolean hotplug_parse_size(const char *text, guint64 *out);

G_END_DECLS
