/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The service's VFIO host device commands: "hostdev-add", "hostdev-del"
 * and "hostdev-list", over hotplug-hostdev.h and hotplug-hostpool.h; and
 * the host devices of each VM of the service (ServiceHostdev): its claims
 * on the service's registry, synced with what QEMU shows before a new one
 * is made, and released when its QEMU is gone. */
#define G_LOG_DOMAIN "service"
#include "config.h"

#include "hotplug-hostdev.h"
#include "hotplug-hostpool.h"
#include "service-priv.h"

/* ---- the host devices of one VM ------------------------------------------ */

struct ServiceHostdev {
    Service *svc;
    HotplugVm *vm;
    HotplugHostdev *hd; /* NULL until the registry could be read */
    gboolean syncing;
    gboolean synced;    /* the registry holds what QEMU showed since it connected */
    GPtrArray *waiting; /* ServiceHostdevAdd, until the sync is done */
    gboolean gone_kept; /* the tenant went but some /dev/vfio/N was still open */
};

/* A hostdev-add waiting for the sync. */
typedef struct {
    ServiceRequest *req;
    char *addr;
    char *id;
    char *bus;
} ServiceHostdevAdd;

static void
service_hostdev_add_free(ServiceHostdevAdd *a)
{
    g_free(a->addr);
    g_free(a->id);
    g_free(a->bus);
    g_free(a);
}

ServiceHostdev *
service_hostdev_new(Service *svc, HotplugVm *vm)
{
    ServiceHostdev *sh = g_new0(ServiceHostdev, 1);

    sh->svc = svc;
    sh->vm = vm;
    sh->waiting = g_ptr_array_new_with_free_func((GDestroyNotify)service_hostdev_add_free);
    return sh;
}

/* Fail every waiting hostdev-add with a copy of error. */
static void
service_hostdev_fail_waiting(ServiceHostdev *sh, const GError *error)
{
    g_autoptr(GPtrArray) waiting = sh->waiting;

    sh->waiting = g_ptr_array_new_with_free_func((GDestroyNotify)service_hostdev_add_free);
    for (guint i = 0; i < waiting->len; i++) {
        ServiceHostdevAdd *a = waiting->pdata[i];
        service_request_fail(a->req, g_error_copy(error));
    }
}

void
service_hostdev_free(ServiceHostdev *sh)
{
    if (!sh)
        return;
    if (sh->waiting->len) {
        g_autoptr(GError) error = g_error_new(HOTPLUG_ERROR, HOTPLUG_ERROR_VM_GONE,
                                              "VM %s went away before its host devices were known",
                                              hotplug_vm_get_name(sh->vm));
        service_hostdev_fail_waiting(sh, error);
    }
    g_ptr_array_unref(sh->waiting);
    /* a sync in flight is cut loose: its callback never comes */
    hotplug_hostdev_free(sh->hd);
    g_free(sh);
}

/* The VM's HotplugHostdev, made on the service's registry when needed. */
static HotplugHostdev *
service_hostdev_get(ServiceHostdev *sh, GError **error)
{
    HotplugHostdevRegistry *reg;

    if (sh->hd)
        return sh->hd;
    reg = service_get_hostdev_registry(sh->svc, error);
    if (!reg)
        return NULL;
    sh->hd = hotplug_hostdev_new(sh->vm, reg, service_get_options(sh->svc)->sysfs_root);
    return sh->hd;
}

typedef struct {
    ServiceHostdev *sh;
    char *addr;
    char *id;
} ServiceHostdevPlaced;

static void
service_hostdev_placed_free(ServiceHostdevPlaced *p)
{
    g_free(p->addr);
    g_free(p->id);
    g_free(p);
}

/* placed: claim the host device and plug it there */
static void
service_hostdev_add_go(ServiceRequest *req, HotplugVm *vm, const HotplugPlacementResult *r,
                       gpointer data)
{
    ServiceHostdevPlaced *p = data;
    g_autofree char *guest_addr = r ? hotplug_placement_result_addr(r) : NULL;
    HotplugOp *op;
    GError *error = NULL;

    op = hotplug_hostdev_add_at(p->sh->hd, p->addr, p->id, r ? r->bus : NULL, guest_addr,
                                &error);
    if (!op)
        hotplug_vm_release_place(vm, p->id);
    service_request_wait_started(req, vm, op, error, FALSE);
}

static void
service_hostdev_add_now(ServiceHostdev *sh, ServiceRequest *req, const char *addr, const char *id,
                        const char *bus)
{
    ServiceHostdevPlaced *p;
    GError *error = NULL;

    /* a device that cannot be had is refused before the guest is looked at */
    if (!hotplug_hostdev_check_host(service_get_options(sh->svc)->sysfs_root, addr, NULL,
                                    &error) ||
        !hotplug_hostdev_registry_can_claim(hotplug_hostdev_get_registry(sh->hd), addr,
                                            hotplug_vm_get_name(sh->vm), id, &error)) {
        service_request_fail(req, error);
        return;
    }
    p = g_new0(ServiceHostdevPlaced, 1);
    p->sh = sh;
    p->addr = g_strdup(addr);
    p->id = g_strdup(id);
    service_place(req, sh->vm, HOTPLUG_KIND_HOSTDEV, NULL, id, NULL, bus, service_hostdev_add_go,
                  p, (GDestroyNotify)service_hostdev_placed_free);
}

static void
service_hostdev_sync_cb(HotplugHostdev *hd, const GError *error, gpointer opaque)
{
    ServiceHostdev *sh = opaque;
    g_autoptr(GPtrArray) waiting = NULL;

    sh->syncing = FALSE;
    if (error) {
        g_autoptr(GError) e =
            g_error_new(error->domain, error->code, "cannot see the host devices of VM %s: %s",
                        hotplug_vm_get_name(sh->vm), error->message);
        g_warning("%s", e->message);
        service_hostdev_fail_waiting(sh, e);
        return;
    }
    sh->synced = TRUE;
    waiting = sh->waiting;
    sh->waiting = g_ptr_array_new_with_free_func((GDestroyNotify)service_hostdev_add_free);
    for (guint i = 0; i < waiting->len; i++) {
        ServiceHostdevAdd *a = waiting->pdata[i];
        service_hostdev_add_now(sh, a->req, a->addr, a->id, a->bus);
    }
}

/* Align the registry with what QEMU shows; the waiting adds go on after. */
static void
service_hostdev_sync(ServiceHostdev *sh)
{
    g_autoptr(GError) error = NULL;

    if (sh->syncing)
        return;
    if (!service_hostdev_get(sh, &error) ||
        !hotplug_hostdev_sync(sh->hd, service_hostdev_sync_cb, sh, &error)) {
        g_warning("%s: host devices: %s", hotplug_vm_get_name(sh->vm), error->message);
        service_hostdev_fail_waiting(sh, error);
        return;
    }
    sh->syncing = TRUE;
}

void
service_hostdev_connected(ServiceHostdev *sh)
{
    sh->synced = FALSE;
    /* direct mode runs one command: only a hostdev-add needs the sync */
    if (!service_get_options(sh->svc)->direct)
        service_hostdev_sync(sh);
}

/* Is the QEMU that holds this VM's claims gone?  What the service knows
 * today: its QMP connection is closed (QEMU exited, or closed the socket).
 * Every release for a gone tenant asks here, so a stronger identity of the
 * QEMU instance can slot in. */
static gboolean
service_hostdev_tenant_is_gone(ServiceHostdev *sh)
{
    return qmp_conn_get_state(hotplug_vm_get_conn(sh->vm)) == QMP_CONN_CLOSED;
}

static void
service_hostdev_tenant_gone(ServiceHostdev *sh)
{
    g_autoptr(GError) error = NULL;

    if (!service_hostdev_tenant_is_gone(sh))
        return;
    if (!service_hostdev_get(sh, &error)) {
        g_warning("%s: host devices: %s", hotplug_vm_get_name(sh->vm), error->message);
        return;
    }
    /* the engine keeps any claim whose /dev/vfio/N is still open */
    sh->gone_kept = hotplug_hostdev_tenant_gone(sh->hd) > 0;
}

void
service_hostdev_disconnected(ServiceHostdev *sh)
{
    sh->synced = FALSE;
    /* in direct mode the connection is this command's, not the tenant's */
    if (!service_get_options(sh->svc)->direct)
        service_hostdev_tenant_gone(sh);
}

void
service_hostdev_recheck(ServiceHostdev *sh)
{
    if (sh->gone_kept)
        service_hostdev_tenant_gone(sh);
}

/* ---- hostdev commands ------------------------------------------------------- */

static void
service_cmd_hostdev_list(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugHostpool *pool = service_get_hostpool(svc);
    GError *error = NULL;
    HotplugHostdevRegistry *reg = service_get_hostdev_registry(svc, &error);
    JsonObject *o;

    if (!reg) {
        service_request_fail(req, error);
        return;
    }
    o = json_object_new();
    json_object_set_member(o, "hostdevs",
                           hotplug_hostpool_list(pool, reg, service_get_lock_root(svc), NULL));
    json_object_set_string_member(o, "watch", hotplug_hostpool_get_mechanism(pool));
    service_request_return(req, json_node_init_object(json_node_alloc(), o));
    json_object_unref(o);
}

static void
service_cmd_hostdev_add(Service *svc, ServiceRequest *req, JsonObject *args)
{
    HotplugVm *vm = service_request_get_vm(req, args);
    ServiceHostdev *sh;
    ServiceHostdevAdd *a;
    g_autofree char *addr = NULL;
    const char *pci, *id, *bus = NULL;
    GError *error = NULL;

    if (!vm || !service_request_arg_string(req, args, "addr", TRUE, &pci) ||
        !service_request_arg_string(req, args, "id", TRUE, &id) ||
        !service_request_arg_string(req, args, "bus", FALSE, &bus))
        return;
    if (!hotplug_pci_addr_parse(pci, &addr, &error)) {
        service_request_fail(req, error);
        return;
    }
    sh = service_get_hostdev(svc, hotplug_vm_get_name(vm));
    if (!service_hostdev_get(sh, &error)) {
        service_request_fail(req, error);
        return;
    }
    if (sh->synced) {
        service_hostdev_add_now(sh, req, addr, id, bus);
        return;
    }
    /* claims must match what QEMU shows before a new one is made */
    a = g_new0(ServiceHostdevAdd, 1);
    a->req = req;
    a->addr = g_steal_pointer(&addr);
    a->id = g_strdup(id);
    a->bus = g_strdup(bus);
    g_ptr_array_add(sh->waiting, a);
    service_hostdev_sync(sh);
}

static HotplugOp *
service_hostdev_unplug(Service *svc, HotplugVm *vm, const char *id,
                       const HotplugUnplugOptions *opts, gboolean *attached, GError **error)
{
    HotplugHostdev *hd =
        service_hostdev_get(service_get_hostdev(svc, hotplug_vm_get_name(vm)), error);

    return hd ? hotplug_hostdev_del(hd, id, opts, attached, error) : NULL;
}

static void
service_cmd_hostdev_del(Service *svc, ServiceRequest *req, JsonObject *args)
{
    service_request_unplug(req, args, service_hostdev_unplug);
}

static const char *const service_args_hostdev_add[] = {"vm", "addr", "id", "bus", NULL};
static const char *const service_args_hostdev_list[] = {NULL};
static const char *const service_args_hostdev_del[] = {"vm", "id", SERVICE_UNPLUG_ARGS, NULL};

const ServiceCommand service_hostdev_commands[] = {
    {"hostdev-add", service_cmd_hostdev_add, service_args_hostdev_add},
    {"hostdev-del", service_cmd_hostdev_del, service_args_hostdev_del},
    {"hostdev-list", service_cmd_hostdev_list, service_args_hostdev_list},
    {NULL, NULL, NULL},
};
