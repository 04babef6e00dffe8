#include "pacd_config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct {
    config_t *cfg;
    char dir[CONFIG_PATH];
    char *err;
    size_t errlen;
    int failed;
} parse_ctx_t;

void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->rate_hz = 20.0;
    cfg->rt_priority = 0;
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
    cfg->max_steps = 400;
    cfg->autostart = 0;
    snprintf(cfg->log_directory, sizeof cfg->log_directory, "/var/lib/pacd/episodes");
    cfg->log_ring_steps = 256;
    cfg->log_ring_frames = 64;
    cfg->log_fsync_interval_ms = 1000;
    cfg->log_robot_state = 1;
    snprintf(cfg->telemetry_bind, sizeof cfg->telemetry_bind, "tcp://127.0.0.1:5557");
    cfg->telemetry_rate_hz = 10.0;
    cfg->telemetry_window_ticks = 200;
    snprintf(cfg->control_bind, sizeof cfg->control_bind, "tcp://127.0.0.1:5558");
}

static int fail(parse_ctx_t *p, const char *section, const char *key,
                const char *value, const char *what)
{
    if (!p->failed)
        snprintf(p->err, p->errlen, "%s: [%s] %s = %s: %s", p->cfg->path, section,
                 key, value, what);
    p->failed = 1;
    return 0;
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

    if (!strncmp(section, "camera.", 7)) {
        const char *name = section + 7;
        if (!*name || strlen(name) >= CONFIG_NAME || strchr(name, '/'))
            return fail(p, section, key, value, "camera names are 1-63 characters without '/'");
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
        if (parse_long(value, 0, 99, &l))
            return fail(p, section, key, value, "expected 0 (normal) or a SCHED_FIFO priority 1..99");
        c->rt_priority = (int)l;
    } else if (KEY("pacd", "lock_memory")) {
        if (parse_bool(value, &b))
            return fail(p, section, key, value, "expected true or false");
        c->lock_memory = b;
    } else if (KEY("pacd", "mode")) {
        if (strcmp(value, "control") && strcmp(value, "shadow"))
            return fail(p, section, key, value, "expected control or shadow");
        c->shadow = !strcmp(value, "shadow");
    } else if (KEY("policy", "checkpoint")) {
        if (set_path(p, c->checkpoint, sizeof c->checkpoint, value))
            return fail(p, section, key, value, "path too long");
    } else if (KEY("policy", "threads")) {
        if (parse_long(value, 1, 64, &l))
            return fail(p, section, key, value, "expected 1..64 BLAS threads");
        c->policy_threads = (int)l;
    } else if (KEY("policy", "kernel")) {
        if (policy_kernel_parse(value, &c->policy_kernel))
            return fail(p, section, key, value, "expected auto, avx512, avx2, blas or amx");
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
    } else if (KEY("episode", "task_id")) {
        if (parse_long(value, 0, 1000000, &l))
            return fail(p, section, key, value, "expected a task id >= 0");
        c->task_id = (int)l;
    } else if (KEY("robot", "name")) {
        if (strcmp(value, "panda") && strcmp(value, "sawyer"))
            return fail(p, section, key, value, "expected panda or sawyer");
        set_str(c->robot, sizeof c->robot, value);
    } else if (KEY("robot", "backend")) {
        if (strcmp(value, "sim") && strcmp(value, "mujoco"))
            return fail(p, section, key, value, "expected sim or mujoco");
        set_str(c->backend, sizeof c->backend, value);
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
        if (set_str(c->camera_bind, sizeof c->camera_bind, value))
            return fail(p, section, key, value, "endpoint too long");
    } else if (KEY("ingest", "state_bind")) {
        if (set_str(c->state_bind, sizeof c->state_bind, value))
            return fail(p, section, key, value, "endpoint too long");
    } else if (KEY("ingest", "max_message_bytes")) {
        if (parse_long(value, 1024, 256L << 20, &l))
            return fail(p, section, key, value, "expected 1024..268435456 bytes");
        c->max_message_bytes = (size_t)l;
    } else if (KEY("episode", "max_steps")) {
        if (parse_long(value, 0, 100000000, &l))
            return fail(p, section, key, value, "expected 0 (unlimited) or a step count");
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
    } else if (KEY("telemetry", "bind")) {
        if (set_str(c->telemetry_bind, sizeof c->telemetry_bind, value))
            return fail(p, section, key, value, "endpoint too long");
    } else if (KEY("telemetry", "rate_hz")) {
        if (parse_double(value, 0.1, 1000.0, &d))
            return fail(p, section, key, value, "expected 0.1..1000 Hz");
        c->telemetry_rate_hz = d;
    } else if (KEY("telemetry", "window_ticks")) {
        if (parse_long(value, 10, 100000, &l))
            return fail(p, section, key, value, "expected 10..100000 ticks");
        c->telemetry_window_ticks = (int)l;
    } else if (KEY("control", "bind")) {
        if (set_str(c->control_bind, sizeof c->control_bind, value))
            return fail(p, section, key, value, "endpoint too long");
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

/* Parse cfg->text (read from path) into cfg (defaults already set). */
static int parse_text(config_t *cfg, const char *path, char *err, size_t errlen)
{
    parse_ctx_t p = {.cfg = cfg, .err = err, .errlen = errlen};
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(p.dir, sizeof p.dir, "%.*s", (int)(slash - path), path);
    int rc = ini_parse_string(cfg->text, handler, &p);
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
    if (!strcmp(cfg->backend, "mujoco") && !cfg->scene[0] && !cfg->shadow) {
        snprintf(err, errlen, "%s: [robot] backend = mujoco needs [robot] scene (a MuJoCo XML "
                 "scene, e.g. ../shared/data/menagerie/franka_emika_panda/scene_cam.xml)", path);
        config_free(cfg);
        return -EINVAL;
    }
    if (cfg->policy_sample)
        snprintf(cfg->policy_sampling, sizeof cfg->policy_sampling,
                 "sample temperature=%g seed=%llu", cfg->policy_temperature, cfg->policy_seed);
    else
        snprintf(cfg->policy_sampling, sizeof cfg->policy_sampling, "deterministic");
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
