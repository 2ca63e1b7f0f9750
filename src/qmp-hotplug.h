/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmp-hotplug.h: the one header of libqmp-hotplug's public API.
 *
 *     #include <qmp-hotplug/qmp-hotplug.h>
 *
 * with the flags of `pkg-config --cflags qmp-hotplug`. */
#pragma once

#include "qmp-hotplug-version.h"

#include "qmp-error.h"
#include "qmp-json.h"
#include "qmp-message.h"
#include "qmp-greeting.h"
#include "qmp-conn.h"
#include "qmp-caps.h"
#include "timeout.h"
#include "hotplug-outcome.h"
#include "hotplug-op.h"
#include "hotplug-props.h"
#include "hotplug-vm.h"
#include "hotplug-vcpu.h"
#include "hotplug-memory.h"
#include "hotplug-disk.h"
#include "hotplug-hostdev.h"
#include "hotplug-topology.h"
#include "hotplug-hostpool.h"
#include "service.h"
