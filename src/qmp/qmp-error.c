/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QMP errors: QEMU's error objects as GErrors that keep their class. */
#define G_LOG_DOMAIN "qmp"
#include "config.h"

#include "qmp-error.h"
#include "qmp-json.h"

G_DEFINE_QUARK(qmp-error-quark, qmp_error)

static const char *const qmp_error_classes[] = {
    [QMP_ERROR_GENERIC] = "GenericError",
    [QMP_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
    [QMP_ERROR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [QMP_ERROR_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [QMP_ERROR_KVM_MISSING_CAP] = "KVMMissingCap",
};

gboolean
qmp_error_is_qemu(const GError *error)
{
    return error && error->domain == QMP_ERROR && error->code <= QMP_ERROR_UNKNOWN_CLASS;
}

const char *
qmp_error_class_name(const GError *error)
{
    if (!qmp_error_is_qemu(error))
        return NULL;
    if (error->code == QMP_ERROR_UNKNOWN_CLASS)
        return "UnknownClass";
    return qmp_error_classes[error->code];
}

GError *
qmp_error_from_json(JsonObject *error_obj)
{
    const char *cls = NULL;
    const char *desc = NULL;

    cls = qmp_json_get_string(error_obj, "class");
    desc = qmp_json_get_string(error_obj, "desc");
    if (!desc)
        desc = "(QEMU gave no description)";
    if (cls) {
        for (guint i = 0; i < G_N_ELEMENTS(qmp_error_classes); i++) {
            if (g_str_equal(cls, qmp_error_classes[i]))
                return g_error_new_literal(QMP_ERROR, i, desc);
        }
    }
    return g_error_new(QMP_ERROR, QMP_ERROR_UNKNOWN_CLASS, "%s: %s", cls ? cls : "(no class)", desc);
}
