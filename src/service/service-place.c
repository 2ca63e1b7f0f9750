/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where a plug goes: the service's side of placement (hotplug-topology.h)
 * for device-add, disk-add and hostdev-add.  A refusal before anything is
 * sent (occupied port, no free place, a bus without hotplug) is an
 * operation that ends rejected; a place found is added to the reply as
 * "bus" and "addr". */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "hotplug-topology.h"
#include "service-priv.h"

typedef struct {
    ServiceRequest *req;
    HotplugKind kind;
    char *id;
    ServicePlacedFunc go;
    gpointer data;
    GDestroyNotify destroy;
} ServicePlace;

static void
service_place_free(ServicePlace *p)
{
    if (p->destroy)
        p->destroy(p->data);
    g_free(p->id);
    g_free(p);
}

static void
service_place_cb(HotplugVm *vm, HotplugPlacementResult *r, const GError *error, gpointer opaque)
{
    ServicePlace *p = opaque;
    g_autoptr(HotplugPlacementResult) res = r;

    if (!vm || (error && ((error->domain == HOTPLUG_ERROR && error->code == HOTPLUG_ERROR_VM_GONE) ||
                          (error->domain == QMP_ERROR && error->code == QMP_ERROR_CLOSED)))) {
        service_request_fail(p->req, g_error_copy(error));
    } else if (error) {
        GError *e = NULL;
        HotplugOp *op = hotplug_vm_plug_refused(vm, p->kind, p->id, error, &e);
        service_request_wait_started(p->req, vm, op, e, FALSE);
    } else {
        if (r) {
            JsonObject *extra = json_object_new();
            g_autofree char *addr = hotplug_placement_result_addr(r);

            json_object_set_string_member(extra, "bus", r->bus);
            json_object_set_string_member(extra, "addr", addr);
            service_request_set_hint(p->req, NULL, extra);
        }
        p->go(p->req, vm, r, p->data);
    }
    service_place_free(p);
}

void
service_place(ServiceRequest *req, HotplugVm *vm, HotplugKind kind, const char *driver,
              const char *id, const char *const *props, const char *bus, ServicePlacedFunc go,
              gpointer data, GDestroyNotify destroy)
{
    ServicePlace *p = g_new0(ServicePlace, 1);
    GError *error = NULL;
    gboolean ok;

    p->req = req;
    p->kind = kind;
    p->id = g_strdup(id);
    p->go = go;
    p->data = data;
    p->destroy = destroy;
    if (driver)
        ok = hotplug_vm_place_device(vm, driver, id, props, service_place_cb, p, &error);
    else
        ok = hotplug_vm_place(vm, id, bus, service_place_cb, p, &error);
    if (!ok) {
        service_place_free(p);
        service_request_fail(req, error);
    }
}
