#include "pacd_config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/un.h>

/* keys seen so far, to refuse a key given twice in one section */
#define MAX_KEYS 512
typedef struct {
    char section[CONFIG_NAME + 16];
    char key[CONFIG_NAME];
    int line;
} seen_key_t;

#include "pacd_auth.h"

typedef struct {
    config_t *cfg;
    char dir[CONFIG_PATH];
    char *err;
    size_t errlen;
    int failed;
    const char *pos;              /* reader: next unread byte of cfg->text */
    int line;                     /* reader: number of the line being parsed */
    seen_key_t *seen;
    int n_seen;
} parse_ctx_t;

void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->rate_hz = 20.0;
    cfg->rt_priority = CONFIG_RT_PRIORITY_AUTO;
    cfg->rt_auto = 1;
    cfg->lock_memory = 1;
    cfg->policy_threads = 1;
    cfg->policy_temperature = 1.0;
    cfg->policy_seed = 0;
    snprintf(cfg->robot, sizeof cfg->robot, "panda");
    snprintf(cfg->backend, sizeof cfg->backend, "sim");
    cfg->sim_rate_hz = 1000.0;
    cfg->publish_state = 1;
    cfg->state_max_age_ms = 100;
    cfg->out_of_spec_factor = 2.0;
    cfg->limit_margin_rad = 0.02;
    snprintf(cfg->camera_bind, sizeof cfg->camera_bind, "tcp://127.0.0.1:5555");
    snprintf(cfg->state_bind, sizeof cfg->state_bind, "tcp://127.0.0.1:5556");
    cfg->max_message_bytes = 4u << 20;
    cfg->max_frame_pixels = 2048 * 2048;
    cfg->max_steps = 400;
    cfg->autostart = 0;
    cfg->teleop_max_age_ms = 200;
    snprintf(cfg->log_directory, sizeof cfg->log_directory, "/var/lib/pacd/episodes");
    cfg->log_ring_steps = 256;
    cfg->log_ring_frames = 64;
    cfg->log_fsync_interval_ms = 1000;
    cfg->log_robot_state = 1;
    cfg->log_min_free_mb = 1024;
    cfg->log_keep_gb = 0.0;
    snprintf(cfg->telemetry_bind, sizeof cfg->telemetry_bind, "tcp://127.0.0.1:5557");
    cfg->telemetry_rate_hz = 10.0;
    cfg->telemetry_window_ticks = 200;
    snprintf(cfg->control_bind, sizeof cfg->control_bind, "tcp://127.0.0.1:5558");
    cfg->foxglove_enabled = 0;
    snprintf(cfg->foxglove_bind, sizeof cfg->foxglove_bind, "127.0.0.1");
    cfg->foxglove_port = 8765;
    cfg->foxglove_image_rate_hz = 5.0;
    cfg->foxglove_image_jpeg = 1;
    cfg->foxglove_jpeg_quality = 85;
    cfg->foxglove_max_clients = 16;
    cfg->foxglove_send_queue_bytes = 8u << 20;
}

static int set_str(char *dst, size_t n, const char *value);

static int fail(parse_ctx_t *p, const char *section, const char *key,
                const char *value, const char *what)
{
    if (!p->failed)
        snprintf(p->err, p->errlen, "%s:%d: [%s] %s = %s: %s", p->cfg->path, p->line, section,
                 key, value, what);
    p->failed = 1;
    return 0;
}

/* inih's line reader over cfg->text (fgets semantics) that counts lines, so
 * errors can name them, and refuses lines inih would cut (> num - 1 bytes). */
static char *read_line(char *str, int num, void *stream)
{
    parse_ctx_t *p = stream;
    if (!p->pos || !*p->pos)
        return NULL;
    const char *nl = strchr(p->pos, '\n');
    size_t len = nl ? (size_t)(nl - p->pos) + 1 : strlen(p->pos);
    p->line++;
    if (num < 2)
        return NULL;
    if (len > (size_t)num - 1) {
        if (!p->failed)
            snprintf(p->err, p->errlen, "%s:%d: line longer than %d characters: shorten it "
                     "(a path, for example)", p->cfg->path, p->line, num - 2);
        p->failed = 1;
        p->pos += len;
        str[0] = '\n';
        str[1] = '\0';
        return str;
    }
    memcpy(str, p->pos, len);
    str[len] = '\0';
    p->pos += len;
    return str;
}

/* Refuse a key given twice in one section (inih calls the handler for each
 * and the last would silently win). Returns 0, or fails the parse. */
static int check_duplicate(parse_ctx_t *p, const char *section, const char *key,
                           const char *value)
{
    for (int i = 0; i < p->n_seen; i++)
        if (!strcmp(p->seen[i].section, section) && !strcmp(p->seen[i].key, key)) {
            char what[128];
            snprintf(what, sizeof what, "given twice (first on line %d); keep one",
                     p->seen[i].line);
            fail(p, section, key, value, what);
            return -1;
        }
    if (p->n_seen == MAX_KEYS) {
        fail(p, section, key, value, "too many keys");
        return -1;
    }
    seen_key_t *k = &p->seen[p->n_seen++];
    snprintf(k->section, sizeof k->section, "%s", section);
    snprintf(k->key, sizeof k->key, "%s", key);
    k->line = p->line;
    return 0;
}

int config_check_endpoint(const char *ep, char *why, size_t n)
{
    if (!strncmp(ep, "tcp://", 6)) {
        const char *hp = ep + 6;
        const char *colon = strrchr(hp, ':');
        if (!colon || colon == hp) {
            snprintf(why, n, "expected tcp://ADDRESS:PORT");
            return -EINVAL;
        }
        char *end;
        errno = 0;
        long port = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || port < 1 || port > 65535) {
            snprintf(why, n, "the port must be a number in 1..65535");
            return -EINVAL;
        }
        char host[256];
        size_t hl = (size_t)(colon - hp);
        if (hl >= sizeof host) {
            snprintf(why, n, "the address is too long");
            return -EINVAL;
        }
        memcpy(host, hp, hl);
        host[hl] = '\0';
        unsigned char addr[16];
        if (!strcmp(host, "*") || inet_pton(AF_INET, host, addr) == 1)
            return 0;
        if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
            host[hl - 1] = '\0';
            if (inet_pton(AF_INET6, host + 1, addr) == 1)
                return 0;
            snprintf(why, n, "'%s' is not an IPv6 address", host + 1);
            return -EINVAL;
        }
        if (if_nametoindex(host) != 0)
            return 0;
        snprintf(why, n, "'%s' is neither an IP address, '*' nor a network interface of this "
                 "machine (bind addresses are not looked up by name: write 127.0.0.1, "
                 "[::1] or an interface such as lo)", host);
        return -EINVAL;
    }
    if (!strncmp(ep, "ipc://", 6)) {
        const char *path = ep + 6;
        if (!*path) {
            snprintf(why, n, "expected ipc://PATH");
            return -EINVAL;
        }
        if (path[0] == '@')  /* Linux abstract socket: no file */
            return 0;
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            snprintf(why, n, "the socket path is longer than %zu characters",
                     sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
            return -EINVAL;
        }
        char dir[CONFIG_PATH];
        const char *slash = strrchr(path, '/');
        if (!slash)
            snprintf(dir, sizeof dir, ".");
        else if (slash == path)
            snprintf(dir, sizeof dir, "/");
        else
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(why, n, "the directory %s does not exist (create it, e.g. with "
                     "RuntimeDirectory= in the unit)", dir);
            return -ENOENT;
        }
        if (!slash || slash[1] == '\0') {
            snprintf(why, n, "expected ipc://DIRECTORY/NAME");
            return -EINVAL;
        }
        return 0;
    }
    snprintf(why, n, "unknown transport: use tcp://ADDRESS:PORT or ipc://PATH");
    return -EINVAL;
}

/* Check a bind endpoint key; "" passes when allow_empty ("no socket"). */
static int set_endpoint(parse_ctx_t *p, const char *section, const char *key, const char *value,
                        char *dst, size_t n, int allow_empty)
{
    char why[320];
    if (!*value && allow_empty) {
        dst[0] = '\0';
        return 1;
    }
    if (!*value)
        return fail(p, section, key, value, "an endpoint is needed (tcp://ADDRESS:PORT or "
                    "ipc://PATH)");
    if (set_str(dst, n, value))
        return fail(p, section, key, value, "endpoint too long");
    if (config_check_endpoint(value, why, sizeof why) != 0)
        return fail(p, section, key, value, why);
    return 1;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on") ||
        !strcmp(s, "1")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off") ||
        !strcmp(s, "0")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* Copy a path; relative paths are taken from the config file's directory. */
static int set_path(parse_ctx_t *p, char *dst, size_t n, const char *value)
{
    int len;
    if (value[0] == '/' || value[0] == '\0' || p->dir[0] == '\0')
        len = snprintf(dst, n, "%s", value);
    else
        len = snprintf(dst, n, "%s/%s", p->dir, value);
    return (len < 0 || (size_t)len >= n) ? -1 : 0;
}

static int set_str(char *dst, size_t n, const char *value)
{
    int len = snprintf(dst, n, "%s", value);
    return (len < 0 || (size_t)len >= n) ? -1 : 0;
}

static config_camera_t *camera_for(parse_ctx_t *p, const char *name)
{
    config_t *c = p->cfg;
    for (int i = 0; i < c->n_cameras; i++)
        if (!strcmp(c->cameras[i].name, name))
            return &c->cameras[i];
    if (c->n_cameras == CONFIG_MAX_CAMERAS)
        return NULL;
    config_camera_t *cam = &c->cameras[c->n_cameras++];
    snprintf(cam->name, sizeof cam->name, "%s", name);
    cam->width = 128; /* RGB stacking: 128x128 (PAC paper) */
    cam->height = 128;
    cam->max_age_ms = 200;
    cam->required = 1;
    return cam;
}

#define KEY(s, k) (!strcmp(section, s) && !strcmp(key, k))

static int handler(void *user, const char *section, const char *key, const char *value)
{
    parse_ctx_t *p = user;
    config_t *c = p->cfg;
    long l;
    double d;
    int b;

    if (p->failed)
        return 0;
    if (check_duplicate(p, section, key, value))
        return 0;

    if (!strncmp(section, "camera.", 7)) {
        const char *name = section + 7;
        int printable = 1;
        for (const char *ch = name; *ch; ch++)
            printable &= *ch >= 0x20 && *ch < 0x7f;
        if (!*name || strlen(name) >= CONFIG_NAME || strchr(name, '/') || !printable)
            return fail(p, section, key, value,
                        "camera names are 1-63 printable ASCII characters without '/'");
        config_camera_t *cam = camera_for(p, name);
        if (!cam)
            return fail(p, section, key, value, "too many cameras (at most 4)");
        if (!strcmp(key, "width") || !strcmp(key, "height")) {
            if (parse_long(value, 1, 4096, &l))
                return fail(p, section, key, value, "expected pixels in 1..4096");
            if (!strcmp(key, "width"))
                cam->width = (int)l;
            else
                cam->height = (int)l;
        } else if (!strcmp(key, "max_age_ms")) {
            if (parse_long(value, 1, 60000, &l))
                return fail(p, section, key, value, "expected milliseconds in 1..60000");
            cam->max_age_ms = (int)l;
        } else if (!strcmp(key, "required")) {
            if (parse_bool(value, &cam->required))
                return fail(p, section, key, value, "expected true or false");
        } else if (!strcmp(key, "resize")) {
            if (parse_bool(value, &cam->resize))
                return fail(p, section, key, value, "expected true or false");
        } else {
            return fail(p, section, key, value,
                        "unknown key (width, height, max_age_ms, required, resize)");
        }
        return 1;
    }

    if (KEY("pacd", "rate_hz")) {
        if (parse_double(value, 1.0, 1000.0, &d))
            return fail(p, section, key, value, "expected a rate in 1..1000 Hz");
        c->rate_hz = d;
    } else if (KEY("pacd", "rt_priority")) {
        if (!strcmp(value, "auto")) {
            c->rt_priority = CONFIG_RT_PRIORITY_AUTO;
            c->rt_auto = 1;
        } else if (parse_long(value, 0, 99, &l)) {
            return fail(p, section, key, value, "expected auto, 0 (normal scheduling) or a "
                        "SCHED_FIFO priority 1..99");
        } else {
            c->rt_priority = (int)l;
            c->rt_auto = 0;
        }
    } else if (KEY("pacd", "lock_memory")) {
        if (parse_bool(value, &b))
            return fail(p, section, key, value, "expected true or false");
        c->lock_memory = b;
    } else if (KEY("pacd", "mode")) {
        if (strcmp(value, "control") && strcmp(value, "shadow") && strcmp(value, "teleop"))
            return fail(p, section, key, value, "expected control, shadow or teleop");
        c->shadow = !strcmp(value, "shadow");
        c->teleop = !strcmp(value, "teleop");
    } else if (KEY("policy", "checkpoint")) {
        if (set_path(p, c->checkpoint, sizeof c->checkpoint, value))
            return fail(p, section, key, value, "path too long");
    } else if (KEY("policy", "threads")) {
        if (parse_long(value, 1, 64, &l))
            return fail(p, section, key, value, "expected 1..64 BLAS threads");
        c->policy_threads = (int)l;
    } else if (KEY("policy", "kernel")) {
        if (policy_kernel_parse(value, &c->policy_kernel))
            return fail(p, section, key, value, "expected auto, avx512, avx2, blas, amx or blis");
    } else if (KEY("policy", "blas_coretype")) {
        size_t n = strlen(value);
        if (n >= CONFIG_NAME || strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != n)
            return fail(p, section, key, value, "expected an OpenBLAS core name such as Haswell, "
                        "SkylakeX or Cooperlake (or nothing)");
        set_str(c->blas_coretype, sizeof c->blas_coretype, value);
    } else if (KEY("policy", "sample")) {
        if (parse_bool(value, &c->policy_sample))
            return fail(p, section, key, value, "expected true or false");
    } else if (KEY("policy", "temperature")) {
        if (parse_double(value, 1e-3, 100.0, &d))
            return fail(p, section, key, value, "expected a temperature in 0.001..100");
        c->policy_temperature = d;
    } else if (KEY("policy", "seed")) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end || value[0] == '-')
            return fail(p, section, key, value, "expected an unsigned integer");
        c->policy_seed = v;
    } else if (KEY("episode", "reset_on_start")) {
        if (parse_bool(value, &c->reset_on_start))
            return fail(p, section, key, value, "expected true or false");
    } else if (KEY("teleop", "max_age_ms")) {
        if (parse_long(value, 1, 10000, &l))
            return fail(p, section, key, value, "expected 1..10000 ms");
        c->teleop_max_age_ms = (int)l;
    } else if (KEY("task", "source")) {
        if (strcmp(value, "topic") && strcmp(value, "hal"))
            return fail(p, section, key, value, "expected topic (Reward messages on the state "
                        "socket) or hal (the simulated scene's own task, e.g. mujoco Lift)");
        c->task_from_hal = !strcmp(value, "hal");
    } else if (KEY("episode", "task_id")) {
        if (parse_long(value, 0, 1000000, &l))
            return fail(p, section, key, value, "expected a task id >= 0");
        c->task_id = (int)l;
    } else if (KEY("robot", "name")) {
        if (strcmp(value, "panda") && strcmp(value, "sawyer"))
            return fail(p, section, key, value, "expected panda or sawyer");
        set_str(c->robot, sizeof c->robot, value);
    } else if (KEY("robot", "backend")) {
        if (strcmp(value, "sim") && strcmp(value, "mujoco") && strcmp(value, "remote"))
            return fail(p, section, key, value, "expected sim, mujoco or remote (a robot-side "
                        "driver at [robot] driver_endpoint, docs/bridge.md)");
        set_str(c->backend, sizeof c->backend, value);
    } else if (KEY("robot", "driver_endpoint")) {
        return set_endpoint(p, section, key, value, c->driver_endpoint, sizeof c->driver_endpoint,
                            0);
    } else if (KEY("robot", "driver_public_key")) {
        if (set_path(p, c->driver_public_key, sizeof c->driver_public_key, value))
            return fail(p, section, key, value, "path too long");
    } else if (KEY("robot", "scene")) {
        if (set_path(p, c->scene, sizeof c->scene, value))
            return fail(p, section, key, value, "path too long");
    } else if (KEY("robot", "render_cameras")) {
        if (set_str(c->render_cameras, sizeof c->render_cameras, value))
            return fail(p, section, key, value, "list too long");
    } else if (KEY("robot", "ee_site")) {
        if (set_str(c->ee_site, sizeof c->ee_site, value))
            return fail(p, section, key, value, "name too long");
    } else if (KEY("robot", "seed")) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (errno || end == value || *end || value[0] == '-')
            return fail(p, section, key, value, "expected an unsigned integer");
        c->sim_seed = v;
    } else if (KEY("robot", "physics_rt_priority")) {
        if (parse_long(value, 0, 99, &l))
            return fail(p, section, key, value, "expected 0 (normal) or a SCHED_FIFO priority 1..99");
        c->physics_rt_priority = (int)l;
    } else if (KEY("robot", "gripper")) {
        if (!strcmp(value, "auto"))
            c->robot_gripper = CONFIG_GRIPPER_AUTO;
        else if (!strcmp(value, "yes"))
            c->robot_gripper = CONFIG_GRIPPER_YES;
        else if (!strcmp(value, "no"))
            c->robot_gripper = CONFIG_GRIPPER_NO;
        else
            return fail(p, section, key, value, "expected auto, yes or no");
    } else if (KEY("robot", "clock")) {
        if (strcmp(value, "real") && strcmp(value, "simulated"))
            return fail(p, section, key, value, "expected real (CLOCK_MONOTONIC) or simulated "
                        "(the loop steps a simulated arm and runs as fast as it can)");
        c->sim_clock = !strcmp(value, "simulated");
    } else if (KEY("robot", "publish_state")) {
        if (parse_bool(value, &c->publish_state))
            return fail(p, section, key, value, "expected true or false");
    } else if (KEY("safety", "workspace_min") || KEY("safety", "workspace_max")) {
        double v[3];
        if (sscanf(value, "%lf , %lf , %lf", &v[0], &v[1], &v[2]) != 3 || !isfinite(v[0]) ||
            !isfinite(v[1]) || !isfinite(v[2]))
            return fail(p, section, key, value, "expected x, y, z in m");
        memcpy(!strcmp(key, "workspace_min") ? c->workspace_min : c->workspace_max, v, sizeof v);
        c->has_workspace |= !strcmp(key, "workspace_min") ? 1 : 2;
    } else if (KEY("robot", "sim_rate_hz")) {
        if (parse_double(value, 100.0, 10000.0, &d))
            return fail(p, section, key, value, "expected 100..10000 Hz");
        c->sim_rate_hz = d;
    } else if (KEY("robot", "state_max_age_ms")) {
        if (parse_long(value, 1, 60000, &l))
            return fail(p, section, key, value, "expected milliseconds in 1..60000");
        c->state_max_age_ms = (int)l;
    } else if (KEY("safety", "out_of_spec_factor")) {
        if (parse_double(value, 1.0, 100.0, &d))
            return fail(p, section, key, value, "expected a factor in 1..100");
        c->out_of_spec_factor = d;
    } else if (KEY("safety", "limit_margin_rad")) {
        if (parse_double(value, 0.0, 0.5, &d))
            return fail(p, section, key, value, "expected 0..0.5 rad");
        c->limit_margin_rad = d;
    } else if (KEY("ingest", "camera_bind")) {
        return set_endpoint(p, section, key, value, c->camera_bind, sizeof c->camera_bind, 1);
    } else if (KEY("ingest", "state_bind")) {
        return set_endpoint(p, section, key, value, c->state_bind, sizeof c->state_bind, 1);
    } else if (KEY("ingest", "max_message_bytes")) {
        if (parse_long(value, 1024, 256L << 20, &l))
            return fail(p, section, key, value, "expected 1024..268435456 bytes");
        c->max_message_bytes = (size_t)l;
    } else if (KEY("ingest", "max_frame_pixels")) {
        if (parse_long(value, 1, 8192L * 8192, &l))
            return fail(p, section, key, value, "expected 1..67108864 pixels (width x height)");
        c->max_frame_pixels = (size_t)l;
    } else if (KEY("episode", "max_steps")) {
        if (parse_long(value, 0, CONFIG_MAX_STEPS_LIMIT, &l))
            return fail(p, section, key, value, "expected 0 (unlimited) or a step count "
                        "up to 100000000");
        c->max_steps = (int)l;
    } else if (KEY("episode", "autostart")) {
        if (parse_bool(value, &c->autostart))
            return fail(p, section, key, value, "expected true or false");
    } else if (KEY("logger", "directory")) {
        if (!*value || set_path(p, c->log_directory, sizeof c->log_directory, value))
            return fail(p, section, key, value, "expected a directory path");
    } else if (KEY("logger", "ring_steps")) {
        if (parse_long(value, 8, 1 << 20, &l))
            return fail(p, section, key, value, "expected 8..1048576 records");
        c->log_ring_steps = (int)l;
    } else if (KEY("logger", "ring_frames")) {
        if (parse_long(value, 2, 1 << 16, &l))
            return fail(p, section, key, value, "expected 2..65536 frames");
        c->log_ring_frames = (int)l;
    } else if (KEY("logger", "fsync_interval_ms")) {
        if (parse_long(value, 0, 600000, &l))
            return fail(p, section, key, value, "expected 0..600000 ms");
        c->log_fsync_interval_ms = (int)l;
    } else if (KEY("logger", "robot_state")) {
        if (parse_bool(value, &c->log_robot_state))
            return fail(p, section, key, value, "expected true or false");
    } else if (KEY("logger", "min_free_mb")) {
        if (parse_long(value, 0, 1L << 30, &l))
            return fail(p, section, key, value, "expected 0 (no check) .. 1073741824 MB");
        c->log_min_free_mb = l;
    } else if (KEY("logger", "keep_gb")) {
        if (parse_double(value, 0.0, 1e6, &d))
            return fail(p, section, key, value, "expected 0 (keep every log) .. 1000000 GB");
        c->log_keep_gb = d;
    } else if (KEY("telemetry", "bind")) {
        return set_endpoint(p, section, key, value, c->telemetry_bind, sizeof c->telemetry_bind, 0);
    } else if (KEY("telemetry", "rate_hz")) {
        if (parse_double(value, 0.1, 1000.0, &d))
            return fail(p, section, key, value, "expected 0.1..1000 Hz");
        c->telemetry_rate_hz = d;
    } else if (KEY("telemetry", "window_ticks")) {
        if (parse_long(value, 10, 100000, &l))
            return fail(p, section, key, value, "expected 10..100000 ticks");
        c->telemetry_window_ticks = (int)l;
    } else if (KEY("foxglove", "enabled")) {
        if (parse_bool(value, &c->foxglove_enabled))
            return fail(p, section, key, value, "expected true or false");
    } else if (KEY("foxglove", "bind")) {
        unsigned char a[sizeof(struct in6_addr)];
        if (strlen(value) >= sizeof c->foxglove_bind ||
            (inet_pton(AF_INET, value, a) != 1 && inet_pton(AF_INET6, value, a) != 1))
            return fail(p, section, key, value, "expected an IPv4 or IPv6 address, e.g. "
                        "127.0.0.1 (loopback only), ::1 or 0.0.0.0");
        snprintf(c->foxglove_bind, sizeof c->foxglove_bind, "%s", value);
    } else if (KEY("foxglove", "port")) {
        if (parse_long(value, 1, 65535, &l))
            return fail(p, section, key, value, "expected 1..65535");
        c->foxglove_port = (int)l;
    } else if (KEY("foxglove", "image_rate_hz")) {
        if (parse_double(value, 0.0, 60.0, &d))
            return fail(p, section, key, value, "expected 0 (no images) .. 60 Hz");
        c->foxglove_image_rate_hz = d;
    } else if (KEY("foxglove", "image_format")) {
        if (!strcmp(value, "jpeg"))
            c->foxglove_image_jpeg = 1;
        else if (!strcmp(value, "raw"))
            c->foxglove_image_jpeg = 0;
        else
            return fail(p, section, key, value, "expected jpeg (foxglove.CompressedImage) or "
                        "raw (foxglove.RawImage, rgb8)");
    } else if (KEY("foxglove", "jpeg_quality")) {
        if (parse_long(value, 1, 100, &l))
            return fail(p, section, key, value, "expected 1..100");
        c->foxglove_jpeg_quality = (int)l;
    } else if (KEY("foxglove", "max_clients")) {
        if (parse_long(value, 1, 256, &l))
            return fail(p, section, key, value, "expected 1..256 connections");
        c->foxglove_max_clients = (int)l;
    } else if (KEY("foxglove", "send_queue_kb")) {
        if (parse_long(value, 64, 1L << 20, &l))
            return fail(p, section, key, value, "expected 64..1048576 KiB");
        c->foxglove_send_queue_bytes = (size_t)l * 1024u;
    } else if (KEY("security", "server_secret_key") || KEY("security", "operator_keys") ||
               KEY("security", "monitor_keys") || KEY("security", "publisher_keys")) {
        char *dst = !strcmp(key, "server_secret_key") ? c->security_server_secret_key
                    : !strcmp(key, "operator_keys")   ? c->security_operator_keys
                    : !strcmp(key, "monitor_keys")    ? c->security_monitor_keys
                                                      : c->security_publisher_keys;
        if (set_path(p, dst, CONFIG_PATH, value))
            return fail(p, section, key, value, "path too long");
    } else if (KEY("security", "insecure")) {
        if (parse_bool(value, &c->security_insecure))
            return fail(p, section, key, value, "expected true or false");
    } else if (KEY("control", "bind")) {
        return set_endpoint(p, section, key, value, c->control_bind, sizeof c->control_bind, 0);
    } else {
        return fail(p, section, key, value, "unknown section or key (see deploy/pacd.conf)");
    }
    return 1;
}

static char *read_file(const char *path, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = errno;
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (cap - len - 1 == 0) {
            if (cap > (1u << 20)) {
                free(buf);
                buf = NULL;
                *err = EFBIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                *err = ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* [foxglove] bind is 127.0.0.0/8 or ::1. */
static int foxglove_bind_loopback(const config_t *cfg)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, cfg->foxglove_bind, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, cfg->foxglove_bind, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* [security]: allow-lists need CURVE; a non-loopback tcp:// endpoint needs
 * CURVE or insecure = true (pure checks: the files are read by auth). */
static int check_security(const config_t *cfg, const char *path, char *err, size_t errlen)
{
    int curve = cfg->security_server_secret_key[0] != '\0';
    if (!curve && (cfg->security_operator_keys[0] || cfg->security_monitor_keys[0] ||
                   cfg->security_publisher_keys[0])) {
        snprintf(err, errlen, "%s: [security] operator_keys, monitor_keys and publisher_keys "
                 "need [security] server_secret_key (pacd's own secret certificate, made with "
                 "`pacctl keygen`)", path);
        return -EINVAL;
    }
    if (cfg->driver_public_key[0] && !curve) {
        snprintf(err, errlen, "%s: [robot] driver_public_key (CURVE on the bridge) needs "
                 "[security] server_secret_key: pacd's own key pair, made with `pacctl keygen` "
                 "(docs/bridge.md \"Security\")", path);
        return -EINVAL;
    }
    if (cfg->security_insecure)
        return 0;
    /* a driver on the network needs CURVE on the bridge ([robot]
     * driver_public_key) or insecure = true */
    if (!strcmp(cfg->backend, "remote") && cfg->driver_endpoint[0] && !cfg->driver_public_key[0]) {
        auth_endpoint_kind_t k = auth_endpoint_kind(cfg->driver_endpoint);
        if (k == AUTH_EP_NETWORK || k == AUTH_EP_OTHER) {
            snprintf(err, errlen, "%s: [robot] driver_endpoint = %s is not a loopback or ipc:// "
                     "endpoint and the bridge has no CURVE ([robot] driver_public_key): anyone "
                     "who reaches it could feed forged robot states. Give the driver a key pair "
                     "and set [robot] driver_public_key (docs/bridge.md \"Security\"), reach it "
                     "through loopback / ipc://, or, on a cable you trust, set [security] "
                     "insecure = true", path, cfg->driver_endpoint);
            return -EINVAL;
        }
    }
    if (curve)
        return 0;
    const struct {
        const char *key, *ep;
    } eps[] = {{"[telemetry] bind", cfg->telemetry_bind}, {"[control] bind", cfg->control_bind},
               {"[ingest] camera_bind", cfg->camera_bind}, {"[ingest] state_bind", cfg->state_bind}};
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        auth_endpoint_kind_t k = eps[i].ep[0] ? auth_endpoint_kind(eps[i].ep) : AUTH_EP_IPC;
        if (k == AUTH_EP_NETWORK || k == AUTH_EP_OTHER) {
            snprintf(err, errlen, "%s: %s = %s is not a loopback or ipc:// endpoint and there "
                     "are no CURVE keys: anyone who reaches it could %s. Configure [security] "
                     "server_secret_key and the allow-lists (docs/security.md), bind to "
                     "127.0.0.1 or ipc://, or, on a network you trust, set [security] insecure "
                     "= true", path, eps[i].key, eps[i].ep,
                     i == 1 ? "start episodes and clear an e-stop"
                     : i == 0 ? "read the robot's telemetry"
                              : "feed forged inputs and rewards to the policy");
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_text(config_t *cfg, const char *path, char *err, size_t errlen);

int config_load(config_t *cfg, const char *path, char *err, size_t errlen)
{
    config_defaults(cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    int e = 0;
    cfg->text = read_file(path, &e);
    if (!cfg->text) {
        snprintf(err, errlen, "%s: cannot read the config file: %s", path, strerror(e));
        return -ENOENT;
    }
    return parse_text(cfg, path, err, errlen);
}

int config_load_buffer(config_t *cfg, const char *name, const char *data, size_t len,
                       char *err, size_t errlen)
{
    config_defaults(cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    if (len > (1u << 20) || (len && memchr(data, '\0', len))) {
        snprintf(err, errlen, "%s: %s", name, len > (1u << 20) ? "the config is over 1 MiB"
                 : "the config holds a NUL byte (not a text file)");
        return -EINVAL;
    }
    cfg->text = malloc(len + 1);
    if (!cfg->text) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    if (len)
        memcpy(cfg->text, data, len);
    cfg->text[len] = '\0';
    return parse_text(cfg, name, err, errlen);
}

/* 1 when the comma/space-separated list holds name. */
static int list_has(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ", ");
        if (len == n && !strncmp(p, name, n))
            return 1;
        p += len;
    }
    return 0;
}

/* [robot] clock = simulated: only where pacd can step the arm itself. 0 or
 * -EINVAL with the message. */
static int check_sim_clock(const config_t *cfg, const char *path, char *err, size_t errlen)
{
    if (!cfg->sim_clock)
        return 0;
    if (cfg->shadow) {
        snprintf(err, errlen, "%s: [robot] clock = simulated has no arm to step in shadow mode "
                 "(the robot states arriving on the state socket set its pace): use clock = real "
                 "or mode = control / teleop", path);
        return -EINVAL;
    }
    if (strcmp(cfg->backend, "mujoco")) {
        snprintf(err, errlen, "%s: [robot] clock = simulated needs a backend pacd can step, "
                 "backend = mujoco; the %s backend runs on the real clock (a backend that "
                 "drives hardware always does): use clock = real", path, cfg->backend);
        return -EINVAL;
    }
    for (int i = 0; i < cfg->n_cameras; i++)
        if (!list_has(cfg->render_cameras, cfg->cameras[i].name)) {
            snprintf(err, errlen, "%s: [robot] clock = simulated: [camera.%s] is not in [robot] "
                     "render_cameras; with the simulated clock every camera must be one the "
                     "backend renders on the tick (an outside camera runs on the real clock)",
                     path, cfg->cameras[i].name);
            return -EINVAL;
        }
    return 0;
}

/* Parse cfg->text (read from path) into cfg (defaults already set). */
static int parse_text(config_t *cfg, const char *path, char *err, size_t errlen)
{
    parse_ctx_t p = {.cfg = cfg, .err = err, .errlen = errlen};
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(p.dir, sizeof p.dir, "%.*s", (int)(slash - path), path);
    p.pos = cfg->text;
    p.seen = calloc(MAX_KEYS, sizeof *p.seen);
    if (!p.seen) {
        snprintf(err, errlen, "%s: out of memory", path);
        config_free(cfg);
        return -ENOMEM;
    }
    int rc = ini_parse_stream(read_line, &p, handler, &p);
    free(p.seen);
    if (p.failed) {
        config_free(cfg);
        return -EINVAL;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path, rc);
        config_free(cfg);
        return -EINVAL;
    }
    if (!cfg->checkpoint[0]) {
        snprintf(err, errlen, "%s: [policy] checkpoint is missing: give the path of a "
                 "pacd checkpoint (.safetensors)", path);
        config_free(cfg);
        return -EINVAL;
    }
    if (cfg->has_workspace && cfg->has_workspace != 3) {
        snprintf(err, errlen, "%s: [safety] workspace_min and workspace_max go together", path);
        config_free(cfg);
        return -EINVAL;
    }
    for (int i = 0; cfg->has_workspace && i < 3; i++)
        if (cfg->workspace_min[i] >= cfg->workspace_max[i]) {
            snprintf(err, errlen, "%s: [safety] workspace_min must be below workspace_max on "
                     "every axis", path);
            config_free(cfg);
            return -EINVAL;
        }
    if (cfg->task_from_hal && !cfg->reset_on_start && !cfg->shadow) {
        snprintf(err, errlen, "%s: [task] source = hal needs [episode] reset_on_start = true: "
                 "without a reset a solved task stays solved and the next episode would end "
                 "as a success at its first step", path);
        config_free(cfg);
        return -EINVAL;
    }
    if (cfg->task_from_hal && cfg->shadow) {
        snprintf(err, errlen, "%s: [task] source = hal needs an arm: shadow mode has none "
                 "(its rewards come on the state socket: source = topic)", path);
        config_free(cfg);
        return -EINVAL;
    }
    if (!strcmp(cfg->backend, "mujoco") && !cfg->scene[0] && !cfg->shadow) {
        snprintf(err, errlen, "%s: [robot] backend = mujoco needs [robot] scene (a MuJoCo XML "
                 "scene, e.g. ../shared/data/menagerie/franka_emika_panda/scene_cam.xml)", path);
        config_free(cfg);
        return -EINVAL;
    }
    if (!strcmp(cfg->backend, "remote") && !cfg->shadow && !cfg->driver_endpoint[0]) {
        snprintf(err, errlen, "%s: [robot] backend = remote needs [robot] driver_endpoint (where "
                 "the robot-side driver binds, e.g. tcp://192.168.1.2:5590 or ipc:///run/pacd/"
                 "driver; docs/bridge.md)", path);
        config_free(cfg);
        return -EINVAL;
    }
    if (check_sim_clock(cfg, path, err, errlen) != 0) {
        config_free(cfg);
        return -EINVAL;
    }
    for (int i = 0; i < cfg->n_cameras; i++)
        if ((size_t)cfg->cameras[i].width * (size_t)cfg->cameras[i].height >
            cfg->max_frame_pixels) {
            snprintf(err, errlen, "%s: [camera.%s] %dx%d is above [ingest] max_frame_pixels = "
                     "%zu: raise max_frame_pixels or make the camera smaller", path,
                     cfg->cameras[i].name, cfg->cameras[i].width, cfg->cameras[i].height,
                     cfg->max_frame_pixels);
            config_free(cfg);
            return -EINVAL;
        }
    /* one socket per endpoint (pacd would fail to bind the second) */
    const char *eps[] = {cfg->camera_bind, cfg->state_bind, cfg->telemetry_bind,
                         cfg->control_bind};
    const char *names[] = {"[ingest] camera_bind", "[ingest] state_bind", "[telemetry] bind",
                           "[control] bind"};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (eps[i][0] && !strcmp(eps[i], eps[j])) {
                snprintf(err, errlen, "%s: %s and %s are both %s: each socket needs its own "
                         "endpoint", path, names[i], names[j], eps[i]);
                config_free(cfg);
                return -EINVAL;
            }
    if (cfg->policy_sample)
        snprintf(cfg->policy_sampling, sizeof cfg->policy_sampling,
                 "sample temperature=%g seed=%llu", cfg->policy_temperature, cfg->policy_seed);
    else
        snprintf(cfg->policy_sampling, sizeof cfg->policy_sampling, "deterministic");
    if (check_security(cfg, path, err, errlen) != 0) {
        config_free(cfg);
        return -EINVAL;
    }
    if (cfg->foxglove_enabled && !cfg->security_insecure && !foxglove_bind_loopback(cfg)) {
        snprintf(err, errlen, "%s: [foxglove] bind = %s is not a loopback address and the live "
                 "view has no authentication: bind 127.0.0.1 (reach it over an SSH tunnel, "
                 "docs/monitoring.md) or, on a network you trust, set [security] insecure = "
                 "true", path, cfg->foxglove_bind);
        config_free(cfg);
        return -EINVAL;
    }
    if (cfg->telemetry_rate_hz > cfg->rate_hz * 2) {
        snprintf(err, errlen, "%s: [telemetry] rate_hz = %g is above twice [pacd] rate_hz = %g",
                 path, cfg->telemetry_rate_hz, cfg->rate_hz);
        config_free(cfg);
        return -EINVAL;
    }
    return 0;
}

void config_free(config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->text);
    cfg->text = NULL;
}

/* The endpoint a local publisher connects to for a socket pacd binds:
 * a wildcard TCP address (star or 0.0.0.0) becomes 127.0.0.1; others unchanged. */
static void connect_endpoint(const char *bind, char *out, size_t n)
{
    if (!strncmp(bind, "tcp://*:", 8))
        snprintf(out, n, "tcp://127.0.0.1:%s", bind + 8);
    else if (!strncmp(bind, "tcp://0.0.0.0:", 14))
        snprintf(out, n, "tcp://127.0.0.1:%s", bind + 14);
    else
        snprintf(out, n, "%s", bind);
}

policy_options_t config_policy_options(const config_t *cfg)
{
    return (policy_options_t){.threads = cfg->policy_threads,
                              .kernel = cfg->policy_kernel,
                              .sample = cfg->policy_sample,
                              .temperature = (float)cfg->policy_temperature,
                              .seed = cfg->policy_seed};
}

void config_hal_options(const config_t *cfg, config_hal_options_t *out)
{
    memset(out, 0, sizeof *out);
    connect_endpoint(cfg->camera_bind, out->camera_endpoint, sizeof out->camera_endpoint);
    connect_endpoint(cfg->state_bind, out->state_endpoint, sizeof out->state_endpoint);
    out->sim.rate_hz = cfg->sim_rate_hz;
    hal_mujoco_options_t *mo = &out->mujoco;
    mo->scene = cfg->scene[0] ? cfg->scene : NULL;
    mo->cameras = cfg->render_cameras;
    mo->camera_width = cfg->n_cameras ? cfg->cameras[0].width : 0;
    mo->camera_height = cfg->n_cameras ? cfg->cameras[0].height : 0;
    mo->camera_endpoint =
        out->camera_endpoint[0] && cfg->render_cameras[0] ? out->camera_endpoint : NULL;
    mo->state_endpoint = out->state_endpoint[0] && cfg->publish_state ? out->state_endpoint : NULL;
    mo->seed = cfg->sim_seed;
    mo->render_rate_hz = cfg->rate_hz;
    mo->ee_site = cfg->ee_site[0] ? cfg->ee_site : NULL;
    mo->physics_rt_priority = cfg->physics_rt_priority;
    out->remote.endpoint = cfg->driver_endpoint[0] ? cfg->driver_endpoint : NULL;
    out->remote.policy_period_s = 1.0 / cfg->rate_hz;
    out->remote.link_timeout_s = cfg->state_max_age_ms / 1000.0;
    out->hal.backend = cfg->backend;
    out->hal.fixed_robot = cfg->robot_gripper != CONFIG_GRIPPER_AUTO;
    out->hal.stepped = cfg->sim_clock;
    out->hal.backend_options = !strcmp(cfg->backend, "mujoco")   ? (const void *)mo
                               : !strcmp(cfg->backend, "remote") ? (const void *)&out->remote
                                                                 : (const void *)&out->sim;
}
