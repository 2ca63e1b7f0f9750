/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hotplug engine of one VM: issues plugs and unplugs over its QMP
 * connection, watches QEMU's events, and decides each operation's outcome.
 *
 * Operations on different devices run concurrently; one device has at
 * most one operation at a time.  Every unplug has its own deadline.  An
 * outcome is decided by QEMU's signals and confirmed against QEMU's own
 * state (qom-list /machine/peripheral) whenever a signal is ambiguous or
 * missing: the confirmed state wins. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

#include "hotplug-op.h"
#include "qmp-conn.h"
#include "timeout.h"

G_BEGIN_DECLS

typedef struct HotplugVm HotplugVm;

typedef enum {
    HOTPLUG_OP_EV_REQUEST,         /* the operation was created */
    HOTPLUG_OP_EV_ATTEMPT,         /* attempt N was sent to QEMU */
    HOTPLUG_OP_EV_ATTEMPT_RESULT,  /* an attempt ended and another follows */
    HOTPLUG_OP_EV_OUTCOME,         /* the final outcome */
    HOTPLUG_OP_EV_LATE,            /* deleted-late, after a final outcome */
    HOTPLUG_OP_EV_DROPPED,         /* a tracked op is watched no more (a new request
                                    * replaced it, or its VM went); its outcome stands */
} HotplugOpEvent;

const char *hotplug_op_event_name(HotplugOpEvent ev);

typedef struct {
    void (*op)(HotplugVm *vm, HotplugOp *op, HotplugOpEvent ev, gpointer opaque);
    /* A QEMU event that matters to hotplug (DEVICE_DELETED,
     * ACPI_DEVICE_OST, ...), after the engine has acted on it.  op is the
     * operation it was matched to, or NULL (e.g. a guest-initiated eject). */
    void (*qemu_event)(HotplugVm *vm, const QmpEvent *ev, HotplugOp *op, gpointer opaque);
} HotplugVmListener;

typedef struct {
    TimeoutPolicy timeouts;  /* zero: timeout_policy_init() defaults */
    /* When the QMP connection closes: TRUE (direct mode) ends every pending
     * unplug as vm-gone at once; FALSE (a reconnecting daemon) keeps them
     * until they are reconciled on reconnect or their deadline passes. */
    gboolean gone_on_close;
} HotplugVmOptions;

typedef struct {
    guint timeout_ms;          /* 0: the class default */
    guint retries;             /* extra attempts after guest-error/not-deleted */
    guint retry_interval_ms;   /* at least this long between attempts */
} HotplugUnplugOptions;

/* conn may be in any state; the engine watches it. */
HotplugVm *hotplug_vm_new(const char *name, QmpConn *conn, const HotplugVmOptions *opts);
void hotplug_vm_free(HotplugVm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HotplugVm, hotplug_vm_free)

const char *hotplug_vm_get_name(HotplugVm *vm);
QmpConn *hotplug_vm_get_conn(HotplugVm *vm);
guint hotplug_vm_add_listener(HotplugVm *vm, const HotplugVmListener *l, gpointer opaque);
void hotplug_vm_remove_listener(HotplugVm *vm, guint id);

/* End every pending operation as vm-gone (and stop watching tracked
 * ones), as when QEMU goes away: before a VM is removed. */
void hotplug_vm_end_all(HotplugVm *vm, const char *why);
/* TRUE once QEMU said it is a ppc64 target (pseries deadlines apply). */
gboolean hotplug_vm_is_pseries(HotplugVm *vm);

/* The operation (not DONE) for device, or NULL.  Borrowed. */
HotplugOp *hotplug_vm_find_op(HotplugVm *vm, const char *device);
/* Every operation not DONE (borrowed, in id order). */
GPtrArray *hotplug_vm_list_ops(HotplugVm *vm);

/* Unplug device.  When an unplug of it is already pending, that one is
 * returned and *attached is set: no second device_del is sent.  Returns a
 * new reference; the outcome comes through the listeners. */
HotplugOp *hotplug_vm_unplug(HotplugVm *vm, HotplugKind kind, const char *device,
                             const HotplugUnplugOptions *opts, gboolean *attached,
                             GError **error);

/* One QMP command of a composite plug, and how to undo it. */
typedef struct {
    char *cmd;
    JsonNode *args;       /* owned */
    char *undo_cmd;       /* NULL: nothing to undo */
    JsonNode *undo_args;  /* owned */
} HotplugStep;

HotplugStep *hotplug_step_new(const char *cmd, JsonNode *args, const char *undo_cmd,
                              JsonNode *undo_args);
void hotplug_step_free(HotplugStep *s);

/* Run steps (taken) in order; if one fails, undo the ones done, in
 * reverse.  Outcome added or rejected (the failing step named in detail). */
HotplugOp *hotplug_vm_plug(HotplugVm *vm, HotplugKind kind, const char *device,
                           GPtrArray *steps, GError **error);

/* device_add DRIVER with id and PROP=VALUE strings, each converted to the
 * type QEMU gives for it in device-list-properties (cached per driver).
 * An unknown property ends the op rejected (HOTPLUG_ERROR_BAD_PROPERTY)
 * before anything is sent. */
HotplugOp *hotplug_vm_plug_device(HotplugVm *vm, const char *driver, const char *id,
                                  const char *const *props, GError **error);

/* A plug refused before anything was sent (no free place, an occupied
 * port ...): an operation that ends rejected at once with why as its
 * error.  Returns a new reference. */
HotplugOp *hotplug_vm_plug_refused(HotplugVm *vm, HotplugKind kind, const char *device,
                                   const GError *why, GError **error);

/* Steps to run after an unplug's device is gone (backend objects etc.);
 * the outcome is announced after them.  steps is taken. */
void hotplug_op_set_cleanup(HotplugOp *op, GPtrArray *steps);

/* An operation a daemon's journal had open when it stopped.  The engine
 * takes it over: an unplug waits for its remaining deadline (at once when
 * it passed while the daemon was down), and as soon as QEMU answers, its
 * device tree decides: gone is deleted (deleted-late when it was tracked),
 * present keeps waiting; a VM that never answers is vm-gone.  A plug ends
 * added when the device is there, else rejected. */
typedef struct {
    guint64 id;
    HotplugKind kind;
    HotplugAction action;
    const char *device;
    guint attempts;
    guint max_attempts;
    guint timeout_ms;
    guint retry_interval_ms;
    gint64 start_wall_us;
    gint64 deadline_wall_us;   /* -1: none armed (retry-wait, tracked) */
    HotplugOutcome tracked;    /* NOT_DELETED / GUEST_ERROR when it ended so; else NONE */
    GPtrArray *cleanup;        /* HotplugStep, taken; may be NULL */
} HotplugAdopt;

HotplugOp *hotplug_vm_adopt(HotplugVm *vm, const HotplugAdopt *a, GError **error);

typedef void (*HotplugDevicesFunc)(HotplugVm *vm, JsonNode *devices /* array, borrowed */,
                                   const GError *error, gpointer opaque);
/* The devices under /machine/peripheral: [{id, type, pending}] where
 * pending is the state of an operation on it, or null. */
gboolean hotplug_vm_query_devices(HotplugVm *vm, HotplugDevicesFunc done, gpointer opaque,
                                  GError **error);

G_END_DECLS
