/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hotplugd.conf: reading and checking the config file (state directory,
 * control socket, defaults, VMs). */
#define G_LOG_DOMAIN "hotplugd"
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon-config.h"
#include "hotplug-outcome.h"
#include "hotplug-props.h"
#include "service.h"

char *
daemon_default_state_dir(void)
{
    if (getuid() == 0)
        return g_strdup("/var/lib/hotplugd");
    return g_build_filename(g_get_user_state_dir(), "hotplugd", NULL);
}

char *
daemon_default_socket(void)
{
    const char *runtime = g_getenv("XDG_RUNTIME_DIR");

    if (getuid() == 0 || !runtime || !*runtime)
        return g_strdup("/run/hotplugd/control.sock");
    return g_build_filename(runtime, "hotplugd", "control.sock", NULL);
}

DaemonConfig *
daemon_config_new_defaults(void)
{
    DaemonConfig *cfg = g_new0(DaemonConfig, 1);

    cfg->state_dir = daemon_default_state_dir();
    cfg->socket_path = daemon_default_socket();
    cfg->socket_mode = 0600;
    cfg->log_max_bytes = 64ull << 20;
    cfg->log_segment_bytes = 4ull << 20;
    cfg->subscriber_buffer = 4u << 20;
    timeout_policy_init(&cfg->timeouts);
    cfg->unplug.retry_interval_ms = 2000;
    cfg->vms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return cfg;
}

void
daemon_config_free(DaemonConfig *cfg)
{
    if (!cfg)
        return;
    g_free(cfg->state_dir);
    g_free(cfg->socket_path);
    g_free(cfg->socket_group);
    g_free(cfg->watch_dir);
    g_hash_table_unref(cfg->vms);
    g_free(cfg);
}

/* A decimal number of seconds from floor_ms to a day. */
static gboolean
daemon_config_seconds(GKeyFile *kf, const char *group, const char *key, guint64 floor_ms,
                      guint64 *ms, GError **error)
{
    g_autofree char *text = g_key_file_get_string(kf, group, key, NULL);
    guint64 v = 0;

    if (!text)
        return TRUE;
    if (!timeout_parse_seconds(text, DAEMON_CONFIG_MAX_SECONDS * 1000, &v) || v < floor_ms) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "[%s] %s = %s: want a decimal number of seconds from %g to %u", group, key,
                    text, floor_ms / 1000.0, DAEMON_CONFIG_MAX_SECONDS);
        return FALSE;
    }
    *ms = v;
    return TRUE;
}

/* A size (decimal digits, optionally K, M, G, T) of at least floor bytes. */
static gboolean
daemon_config_size(GKeyFile *kf, const char *group, const char *key, guint64 floor,
                   guint64 *out, GError **error)
{
    g_autofree char *text = g_key_file_get_string(kf, group, key, NULL);
    guint64 v = 0;

    if (!text)
        return TRUE;
    if (!hotplug_parse_size(text, &v) || v == 0) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "[%s] %s = %s: want a size such as 64M", group, key, text);
        return FALSE;
    }
    if (v < floor) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                    "[%s] %s = %s: at least %" G_GUINT64_FORMAT " bytes", group, key, text,
                    floor);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

static gboolean
daemon_config_check_keys(GKeyFile *kf, const char *group, const char *const *allowed,
                         GError **error)
{
    g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);

    for (guint i = 0; keys && keys[i]; i++) {
        if (!g_strv_contains(allowed, keys[i])) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "unknown key '%s' in [%s]", keys[i], group);
            return FALSE;
        }
    }
    return TRUE;
}

DaemonConfig *
daemon_config_load(const char *path, GError **error)
{
    static const char *const hotplugd_keys[] = {
        "state-dir", "socket", "socket-mode", "socket-group", "watch-dir",
        "log-max-size", "log-segment-size", "subscriber-buffer", "max-clients", NULL};
    /* one key per deadline class, named by the timeout module */
    const char *timeout_keys[TIMEOUT_CLASS_COUNT + 1];
    static const char *const retry_keys[] = {"count", "interval", NULL};
    static const char *const vm_keys[] = {"qmp", NULL};
    g_autoptr(DaemonConfig) cfg = daemon_config_new_defaults();
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_auto(GStrv) groups = NULL;
    g_autoptr(GError) local = NULL;

    for (guint c = 0; c < TIMEOUT_CLASS_COUNT; c++)
        timeout_keys[c] = timeout_class_name(c);
    timeout_keys[TIMEOUT_CLASS_COUNT] = NULL;
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &local)) {
        g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "%s: %s", path,
                    local->message);
        return NULL;
    }
    groups = g_key_file_get_groups(kf, NULL);
    for (guint i = 0; groups[i]; i++) {
        const char *g = groups[i];
        const char *const *allowed;

        if (g_str_equal(g, "hotplugd"))
            allowed = hotplugd_keys;
        else if (g_str_equal(g, "timeouts"))
            allowed = timeout_keys;
        else if (g_str_equal(g, "retry"))
            allowed = retry_keys;
        else if (g_str_has_prefix(g, "vm "))
            allowed = vm_keys;
        else {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "%s: unknown section [%s] (known: [hotplugd], [timeouts], [retry], "
                        "[vm NAME])", path, g);
            return NULL;
        }
        if (!daemon_config_check_keys(kf, g, allowed, &local)) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID, "%s: %s", path,
                        local->message);
            return NULL;
        }
        if (g_str_has_prefix(g, "vm ")) {
            const char *name = g + 3;
            g_autofree char *qmp = g_key_file_get_string(kf, g, "qmp", NULL);
            if (!service_vm_name_valid(name) || !qmp || !*qmp) {
                g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                            "%s: [%s] needs a VM name of letters, digits, '-', '_', '.' and a "
                            "qmp = PATH", path, g);
                return NULL;
            }
            g_hash_table_insert(cfg->vms, g_strdup(name), g_steal_pointer(&qmp));
        }
    }

#define STR_KEY(key, field)                                                                    \
    do {                                                                                       \
        char *v_ = g_key_file_get_string(kf, "hotplugd", key, NULL);                           \
        if (v_) {                                                                              \
            g_free(cfg->field);                                                                \
            cfg->field = v_;                                                                   \
        }                                                                                      \
    } while (0)
    STR_KEY("state-dir", state_dir);
    STR_KEY("socket", socket_path);
    STR_KEY("socket-group", socket_group);
    STR_KEY("watch-dir", watch_dir);
#undef STR_KEY
    {
        g_autofree char *mode = g_key_file_get_string(kf, "hotplugd", "socket-mode", NULL);
        if (mode) {
            char *end = NULL;
            guint64 m = g_ascii_strtoull(mode, &end, 8);
            if (!g_ascii_isdigit(*mode) || *end || m > 0777) {
                g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                            "%s: socket-mode = %s: want an octal mode such as 0660", path, mode);
                return NULL;
            }
            cfg->socket_mode = (guint)m;
        }
    }
    {
        guint64 sub = cfg->subscriber_buffer;
        if (!daemon_config_size(kf, "hotplugd", "log-max-size", DAEMON_CONFIG_MIN_LOG_SIZE,
                                &cfg->log_max_bytes, error) ||
            !daemon_config_size(kf, "hotplugd", "log-segment-size",
                                DAEMON_CONFIG_MIN_SEGMENT_SIZE, &cfg->log_segment_bytes, error) ||
            !daemon_config_size(kf, "hotplugd", "subscriber-buffer",
                                DAEMON_CONFIG_MIN_SUBSCRIBER_BUFFER, &sub, error))
            return NULL;
        cfg->subscriber_buffer = (gsize)sub;
    }
    {
        g_autofree char *text = g_key_file_get_string(kf, "hotplugd", "max-clients", NULL);
        if (text) {
            guint64 n = 0;
            gboolean ok = *text != '\0';
            for (const char *p = text; ok && *p; p++) {
                ok = g_ascii_isdigit(*p) && n <= 65536;
                n = n * 10 + (guint64)(*p - '0');
            }
            if (!ok || n < 1 || n > 65536) {
                g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                            "[hotplugd] max-clients = %s: want a whole number from 1 to 65536",
                            text);
                return NULL;
            }
            cfg->max_clients = (guint)n;
        }
    }
    for (guint c = 0; c < TIMEOUT_CLASS_COUNT; c++) {
        guint64 ms = cfg->timeouts.ms[c];
        if (!daemon_config_seconds(kf, "timeouts", timeout_class_name(c), 1, &ms, error))
            return NULL;
        cfg->timeouts.ms[c] = (guint)ms;
    }
    if (g_key_file_has_key(kf, "retry", "count", NULL)) {
        gint n = g_key_file_get_integer(kf, "retry", "count", &local);
        if (local || n < 0 || n > 1000) {
            g_set_error(error, HOTPLUG_ERROR, HOTPLUG_ERROR_INVALID,
                        "%s: [retry] count: want a whole number from 0 to 1000", path);
            return NULL;
        }
        cfg->unplug.retries = (guint)n;
    }
    if (!daemon_config_seconds(kf, "retry", "interval", 0, &cfg->unplug.retry_interval_ms, error))
        return NULL;
    return g_steal_pointer(&cfg);
}
