/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QMP errors: QEMU's own error classes, and what the wire can do wrong. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define QMP_ERROR (qmp_error_quark())
GQuark qmp_error_quark(void);

typedef enum {
    /* Classes QEMU sends in {"error": {"class": ...}} */
    QMP_ERROR_GENERIC,           /* GenericError */
    QMP_ERROR_COMMAND_NOT_FOUND, /* CommandNotFound */
    QMP_ERROR_DEVICE_NOT_ACTIVE, /* DeviceNotActive */
    QMP_ERROR_DEVICE_NOT_FOUND,  /* DeviceNotFound */
    QMP_ERROR_KVM_MISSING_CAP,   /* KVMMissingCap */
    QMP_ERROR_UNKNOWN_CLASS,     /* a class we do not know; message is "Class: desc" */
    /* Local errors */
    QMP_ERROR_PROTOCOL,  /* the peer broke the protocol */
    QMP_ERROR_TOO_LONG,  /* a line over the length cap */
    QMP_ERROR_TOO_DEEP,  /* JSON nested deeper than the cap */
    QMP_ERROR_CONNECT,   /* could not connect */
    QMP_ERROR_CLOSED,    /* the connection closed or was lost */
    QMP_ERROR_TIMEOUT,   /* a local wait ran out */
} QmpErrorCode;

/* "GenericError" etc. for a QEMU class, NULL for a local error. */
const char *qmp_error_class_name(const GError *error);
/* TRUE when the error came from QEMU (an {"error": ...} reply). */
gboolean qmp_error_is_qemu(const GError *error);
/* Build a GError from the object under "error"; keeps class and desc. */
GError *qmp_error_from_json(JsonObject *error_obj);

G_END_DECLS
