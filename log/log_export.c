/* log_export — episode logs as one HDF5 data set (log_export.h, docs/loop.md "Data set"). */
#include "log_export.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log_reader.h"
#include "pacd_proto.h"
#include "policy_ckpt.h"

#define MAX_CAMS 8

typedef struct {
    float *obs;          /* obs_dim */
    float *act;          /* action dim */
    float reward;
    uint8_t first, last, term, held;
    int has_frame[MAX_CAMS];
    uint64_t frame_seq[MAX_CAMS];
} step_t;

typedef struct {
    int cam;             /* camera field index */
    uint64_t seq;
    const uint8_t *msg;  /* CameraFrame bytes inside the file buffer */
    size_t len;
} frame_t;

typedef struct {
    const char *path;
    uint8_t *data;       /* the whole file */
    size_t len;
    char episode_id[64], robot[64], sha[80], task[64];
    double rate_hz;
    int64_t seed;
    int unfinished;
    int teleop;          /* mode "teleop": a teleoperator acted, not the checkpoint */
    json_t *obs_spec, *act_spec;
    char *obs_spec_text, *act_spec_text;   /* as given (checkpoint or log) */
    step_t *steps;
    size_t n_steps, cap_steps;
    frame_t *frames;
    size_t n_frames, cap_frames;
} episode_t;

/* Specs derived from the first episode's JSON. */
typedef struct {
    int obs_dim, act_dim;
    int cartesian;       /* cartesian_velocity / cartesian_twist: Step.action is the
                            joint command; the data set's action is the policy's
                            (or teleoperator's) action clamped to [low, high] */
    float act_low[64], act_high[64];
    int n_cams;
    char cam_name[MAX_CAMS][64];
    int cam_h[MAX_CAMS], cam_w[MAX_CAMS];
} layout_t;

static void errf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pacctl log export: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static char *mstrdup(mcap_str_t s)
{
    char *p = malloc((size_t)s.len + 1);
    if (p) {
        if (s.len)
            memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

typedef struct {
    const char *path;
    ckpt_t *ck;
} ckpt_ref_t;

/* ------------------------------------------------------------------ */
/* Specs                                                                */
/* ------------------------------------------------------------------ */

/* Fill *lay from the specs. 0 or -1 with a message naming `path`. */
static int spec_layout(const char *path, json_t *obs, json_t *act, layout_t *lay)
{
    memset(lay, 0, sizeof *lay);
    if (!json_is_array(obs) || json_array_size(obs) == 0) {
        errf("%s: the observation spec is not a non-empty JSON array", path);
        return -1;
    }
    size_t i;
    json_t *f;
    json_array_foreach(obs, i, f) {
        const char *source = json_string_value(json_object_get(f, "source"));
        json_t *shape = json_object_get(f, "shape");
        json_t *hist = json_object_get(f, "history");
        if (!source || !json_is_array(shape) || !json_is_integer(hist) ||
            !json_string_value(json_object_get(f, "name"))) {
            errf("%s: observation field %zu lacks name, source, shape or history", path, i);
            return -1;
        }
        long long n = 1;
        size_t k;
        json_t *d;
        json_array_foreach(shape, k, d) {
            if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > 100000) {
                errf("%s: observation field %zu has a bad shape", path, i);
                return -1;
            }
            n *= json_integer_value(d);
        }
        if (!strncmp(source, "camera/", 7)) {
            if (json_array_size(shape) != 3 || json_integer_value(json_array_get(shape, 2)) != 3 ||
                lay->n_cams >= MAX_CAMS) {
                errf("%s: camera field %zu must have shape [H, W, 3] (at most %d cameras)", path, i,
                     MAX_CAMS);
                return -1;
            }
            snprintf(lay->cam_name[lay->n_cams], sizeof lay->cam_name[0], "%s", source + 7);
            lay->cam_h[lay->n_cams] = (int)json_integer_value(json_array_get(shape, 0));
            lay->cam_w[lay->n_cams] = (int)json_integer_value(json_array_get(shape, 1));
            lay->n_cams++;
        } else {
            lay->obs_dim += (int)(n * json_integer_value(hist));
        }
    }
    json_t *dim = json_object_get(act, "dim");
    if (!json_is_object(act) || !json_is_integer(dim) || json_integer_value(dim) < 1 ||
        json_integer_value(dim) > 64) {
        errf("%s: the action spec has no valid \"dim\"", path);
        return -1;
    }
    lay->act_dim = (int)json_integer_value(dim);
    const char *space = json_string_value(json_object_get(act, "space"));
    lay->cartesian = space && !strncmp(space, "cartesian_", 10);
    json_t *low = json_object_get(act, "low"), *high = json_object_get(act, "high");
    if (lay->cartesian) {
        if (json_array_size(low) != (size_t)lay->act_dim ||
            json_array_size(high) != (size_t)lay->act_dim) {
            errf("%s: the Cartesian action spec needs \"low\" and \"high\" of dim values", path);
            return -1;
        }
        for (int i = 0; i < lay->act_dim; i++) {
            lay->act_low[i] = (float)json_number_value(json_array_get(low, (size_t)i));
            lay->act_high[i] = (float)json_number_value(json_array_get(high, (size_t)i));
        }
    }
    return 0;
}

/* First difference between two specs as text ("field 1 (joint_velocities): shape [7] vs [6]"). */
static void describe_obs_diff(json_t *a, json_t *b, char *out, size_t cap)
{
    size_t na = json_array_size(a), nb = json_array_size(b);
    for (size_t i = 0; i < na && i < nb; i++) {
        json_t *fa = json_array_get(a, i), *fb = json_array_get(b, i);
        if (json_equal(fa, fb))
            continue;
        const char *keys[] = {"name", "source", "shape", "history"};
        for (int k = 0; k < 4; k++) {
            json_t *va = json_object_get(fa, keys[k]), *vb = json_object_get(fb, keys[k]);
            if (va && vb && json_equal(va, vb))
                continue;
            char *sa = va ? json_dumps(va, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            char *sb = vb ? json_dumps(vb, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            snprintf(out, cap, "field %zu (%s): %s %s vs %s", i,
                     json_string_value(json_object_get(fb, "name")) ?: "?", keys[k],
                     sb ? sb : "(none)", sa ? sa : "(none)");
            free(sa);
            free(sb);
            return;
        }
        snprintf(out, cap, "field %zu differs", i);
        return;
    }
    snprintf(out, cap, "%zu fields vs %zu", nb, na);
}

static void describe_obj_diff(json_t *a, json_t *b, char *out, size_t cap)
{
    const char *keys[] = {"space", "dim", "low", "high"};
    for (int k = 0; k < 4; k++) {
        json_t *va = json_object_get(a, keys[k]), *vb = json_object_get(b, keys[k]);
        if (va && vb && json_equal(va, vb))
            continue;
        char *sa = va ? json_dumps(va, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        char *sb = vb ? json_dumps(vb, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        snprintf(out, cap, "%s %s vs %s", keys[k], sb ? sb : "(none)", sa ? sa : "(none)");
        free(sa);
        free(sb);
        return;
    }
    snprintf(out, cap, "they differ");
}

/* The specs of one episode: from its metadata, else from the matching checkpoint. */
static int episode_specs(episode_t *ep, ckpt_ref_t *ck, int n_ck)
{
    if (!ep->obs_spec_text || !ep->act_spec_text) {
        free(ep->obs_spec_text);
        free(ep->act_spec_text);
        ep->obs_spec_text = ep->act_spec_text = NULL;
        if (!ep->sha[0]) {
            errf("%s: the log names no checkpoint (checkpoint_sha256 is empty) and carries no "
                 "observation_spec/action_spec metadata; it cannot be exported", ep->path);
            return -1;
        }
        if (n_ck == 0) {
            errf("%s: the log has the observation layout but not the full observation/action spec; "
                 "give the checkpoint that acted (sha256 %s): --checkpoint CKPT", ep->path, ep->sha);
            return -1;
        }
        ckpt_ref_t *hit = NULL;
        for (int i = 0; i < n_ck; i++)
            if (!strcmp(ckpt_sha256(ck[i].ck), ep->sha))
                hit = &ck[i];
        if (!hit) {
            errf("%s: acted with the checkpoint of sha256 %s, but --checkpoint %s has sha256 %s%s; "
                 "give the checkpoint that acted", ep->path, ep->sha, ck[0].path, ckpt_sha256(ck[0].ck),
                 n_ck > 1 ? " (and no other --checkpoint matches)" : "");
            return -1;
        }
        const char *o = ckpt_metadata(hit->ck, "pacd.observation");
        const char *a = ckpt_metadata(hit->ck, "pacd.action");
        if (!o || !a) {
            errf("%s: lacks the metadata pacd.observation or pacd.action", hit->path);
            return -1;
        }
        ep->obs_spec_text = strdup(o);
        ep->act_spec_text = strdup(a);
    }
    json_error_t je;
    ep->obs_spec = json_loads(ep->obs_spec_text, 0, &je);
    ep->act_spec = ep->obs_spec ? json_loads(ep->act_spec_text, 0, &je) : NULL;
    if (!ep->obs_spec || !ep->act_spec) {
        errf("%s: the observation or action spec is not JSON: %s", ep->path, je.text);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading a log                                                        */
/* ------------------------------------------------------------------ */

static int push_step(episode_t *ep, const step_t *s)
{
    if (ep->n_steps == ep->cap_steps) {
        size_t cap = ep->cap_steps ? ep->cap_steps * 2 : 256;
        step_t *p = realloc(ep->steps, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        ep->steps = p;
        ep->cap_steps = cap;
    }
    ep->steps[ep->n_steps++] = *s;
    return 0;
}

static int push_frame(episode_t *ep, const frame_t *f)
{
    if (ep->n_frames == ep->cap_frames) {
        size_t cap = ep->cap_frames ? ep->cap_frames * 2 : 256;
        frame_t *p = realloc(ep->frames, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        ep->frames = p;
        ep->cap_frames = cap;
    }
    ep->frames[ep->n_frames++] = *f;
    return 0;
}

/* Pass 1: metadata only (robot, specs, ...). 0 or -1 (message printed). */
static int read_metadata(episode_t *ep)
{
    mcap_metadata_t md;
    ep->seed = -1;
    if (!log_find_metadata(ep->data, ep->len, "pacd", &md)) {
        errf("%s: no \"pacd\" metadata record (not a pacd episode log?); run `pacctl log verify %s`",
             ep->path, ep->path);
        return -1;
    }
    size_t pos = 0;
    mcap_str_t k, v;
    char buf[64];
    while (mcap_map_next(md.map, &pos, &k, &v) == 1) {
        if (mcap_str_eq(k, "episode_id"))
            log_str_copy(ep->episode_id, sizeof ep->episode_id, v);
        else if (mcap_str_eq(k, "robot"))
            log_str_copy(ep->robot, sizeof ep->robot, v);
        else if (mcap_str_eq(k, "checkpoint_sha256"))
            log_str_copy(ep->sha, sizeof ep->sha, v);
        else if (mcap_str_eq(k, "task"))
            log_str_copy(ep->task, sizeof ep->task, v);
        else if (mcap_str_eq(k, "mode"))
            ep->teleop = mcap_str_eq(v, "teleop");
        else if (mcap_str_eq(k, "rate_hz")) {
            log_str_copy(buf, sizeof buf, v);
            ep->rate_hz = strtod(buf, NULL);
        } else if (mcap_str_eq(k, "seed") || mcap_str_eq(k, "task_seed")) {
            log_str_copy(buf, sizeof buf, v);
            char *end;
            long long s = strtoll(buf, &end, 10);
            if (buf[0] && !*end)
                ep->seed = s;
        } else if (mcap_str_eq(k, "observation_spec")) {
            free(ep->obs_spec_text);
            ep->obs_spec_text = mstrdup(v);
        } else if (mcap_str_eq(k, "action_spec")) {
            free(ep->act_spec_text);
            ep->act_spec_text = mstrdup(v);
        }
    }
    return 0;
}

/* Pass 2: steps and frames. 0 or -1 (message printed). */
static int read_steps(episode_t *ep, const layout_t *lay)
{
    log_reader_t rd;
    log_reader_init(&rd, ep->data, ep->len, LOG_READER_DATA_ONLY);
    log_message_t m;
    mcap_read_status_t st;
    while ((st = log_reader_next(&rd, &m)) == MCAP_READ_RECORD) {
        int kind = m.known_channel ? m.kind : LOG_KIND_OTHER, cam = -1;
        if (kind == LOG_KIND_FRAME) {
            const char *pre = "/pacd/camera/";
            size_t pl = strlen(pre);
            for (int k = 0; k < lay->n_cams; k++)
                if (m.topic.len == pl + strlen(lay->cam_name[k]) &&
                    !memcmp(m.topic.ptr, pre, pl) &&
                    !memcmp(m.topic.ptr + pl, lay->cam_name[k], m.topic.len - pl))
                    cam = k;
        }
        if (kind == LOG_KIND_FRAME && cam >= 0) {
            Pacd__V1__CameraFrame *f = pacd__v1__camera_frame__unpack(NULL, m.data.len, m.data.ptr);
            if (!f) {
                errf("%s: camera frame at byte %" PRIu64 " does not decode; run `pacctl log verify %s`",
                     ep->path, m.offset, ep->path);
                return -1;
            }
            frame_t fr = {.cam = cam, .seq = f->seq, .msg = m.data.ptr, .len = m.data.len};
            pacd__v1__camera_frame__free_unpacked(f, NULL);
            if (push_frame(ep, &fr) != 0) {
                errf("out of memory");
                return -1;
            }
        } else if (kind == LOG_KIND_STEP) {
            Pacd__V1__Step *s = pacd__v1__step__unpack(NULL, m.data.len, m.data.ptr);
            if (!s) {
                errf("%s: step at byte %" PRIu64 " does not decode; run `pacctl log verify %s`",
                     ep->path, m.offset, ep->path);
                return -1;
            }
            int rc = 0;
            size_t n = 0;
            for (size_t t = 0; t < s->n_observation; t++)
                n += s->observation[t]->n_values;
            const float *av = s->action ? s->action->values : NULL;
            size_t na = s->action ? s->action->n_values : 0;
            if (lay->cartesian) {
                /* the action in the spec's space, as pacd feeds it back as
                 * previous_action: the teleoperator's (teleop mode) or the
                 * policy's, clamped to the bounds; zeros when the arm held */
                av = s->teleop ? s->teleop_action : s->policy_action;
                na = s->held ? 0 : s->teleop ? s->n_teleop_action : s->n_policy_action;
            }
            if (s->step != ep->n_steps) {
                errf("%s: step %" PRIu64 " follows step %zu; run `pacctl log verify %s`", ep->path,
                     (uint64_t)s->step, ep->n_steps ? ep->n_steps - 1 : 0, ep->path);
                rc = -1;
            } else if (n != (size_t)lay->obs_dim) {
                errf("%s: step %" PRIu64 " has %zu observation values, the observation spec gives %d",
                     ep->path, (uint64_t)s->step, n, lay->obs_dim);
                rc = -1;
            } else if (na != 0 && na != (size_t)lay->act_dim) {
                errf("%s: step %" PRIu64 " has an action of %zu values, the action spec's dim is %d",
                     ep->path, (uint64_t)s->step, na, lay->act_dim);
                rc = -1;
            }
            step_t st1 = {0};
            if (!rc) {
                st1.obs = malloc(sizeof(float) * (size_t)(lay->obs_dim ? lay->obs_dim : 1));
                st1.act = calloc((size_t)lay->act_dim, sizeof(float));
                if (!st1.obs || !st1.act) {
                    free(st1.obs);
                    free(st1.act);
                    errf("out of memory");
                    rc = -1;
                }
            }
            if (!rc) {
                size_t off = 0;
                for (size_t t = 0; t < s->n_observation; t++) {
                    memcpy(st1.obs + off, s->observation[t]->values,
                           s->observation[t]->n_values * sizeof(float));
                    off += s->observation[t]->n_values;
                }
                for (size_t i = 0; i < na; i++)
                    st1.act[i] = lay->cartesian
                                     ? fminf(fmaxf(av[i], lay->act_low[i]), lay->act_high[i])
                                     : av[i];
                st1.reward = s->reward;
                st1.first = (uint8_t)s->is_first;
                st1.last = (uint8_t)s->is_last;
                st1.term = (uint8_t)s->is_terminal;
                st1.held = (uint8_t)s->held;
                for (size_t r = 0; r < s->n_frames; r++)
                    for (int k = 0; k < lay->n_cams; k++)
                        if (s->frames[r]->camera && !strcmp(s->frames[r]->camera, lay->cam_name[k])) {
                            st1.has_frame[k] = 1;
                            st1.frame_seq[k] = s->frames[r]->seq;
                        }
                if (push_step(ep, &st1) != 0) {
                    free(st1.obs);
                    free(st1.act);
                    errf("out of memory");
                    rc = -1;
                }
            }
            pacd__v1__step__free_unpacked(s, NULL);
            if (rc)
                return -1;
        }
    }
    if (st == MCAP_READ_TRUNCATED) {
        ep->unfinished = 1;
    } else if (st == MCAP_READ_CORRUPT) {
        errf("%s is corrupt at byte %" PRIu64 " (%s); run `pacctl log verify %s`", ep->path,
             rd.rd.error_offset, rd.rd.error, ep->path);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* HDF5                                                                 */
/* ------------------------------------------------------------------ */

static int attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 ? -1 : (H5Awrite(a, t, &value) < 0 ? -1 : 0);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

/* A scalar attribute of file type ft, written from *v of memory type mt. */
static int attr_scalar(hid_t obj, const char *name, hid_t ft, hid_t mt, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 ? -1 : (H5Awrite(a, mt, v) < 0 ? -1 : 0);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

static int attr_i64(hid_t obj, const char *name, int64_t v)
{
    return attr_scalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int attr_f64(hid_t obj, const char *name, double v)
{
    return attr_scalar(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

/* Dataset `name` in group g: rank dims, file type ft, memory type mt, data buf.
 * chunk_rows > 0: chunked by that many rows. */
static int put(hid_t g, const char *name, int rank, const hsize_t *dims, hid_t ft, hid_t mt,
               const void *buf, int chunk_one_row)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk_one_row && dims[0] > 0) {
        hsize_t ch[8];
        for (int i = 0; i < rank; i++)
            ch[i] = i == 0 ? 1 : dims[i];
        H5Pset_chunk(dcpl, rank, ch);
    }
    hid_t ds = H5Dcreate2(g, name, ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds < 0 ? -1 : (H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : 0);
    if (ds >= 0)
        H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return rc;
}

/* Images [T, H, W, 3] of camera field k for every step. 0 or -1. */
static int episode_images(const episode_t *ep, const layout_t *lay, int k, uint8_t *out)
{
    size_t fsz = (size_t)lay->cam_h[k] * lay->cam_w[k] * 3;
    size_t missing = 0;
    for (size_t i = 0; i < ep->n_steps; i++) {
        uint8_t *dst = out + i * fsz;
        const frame_t *hit = NULL;
        if (ep->steps[i].has_frame[k]) {
            /* frames are logged in order; search backwards from the end */
            for (size_t j = ep->n_frames; j-- > 0;)
                if (ep->frames[j].cam == k && ep->frames[j].seq == ep->steps[i].frame_seq[k]) {
                    hit = &ep->frames[j];
                    break;
                }
        }
        if (!hit) {
            memset(dst, 0, fsz);
            missing++;
            continue;
        }
        Pacd__V1__CameraFrame *f = pacd__v1__camera_frame__unpack(NULL, hit->len, hit->msg);
        if (!f)
            return -1;
        int ok = f->encoding == PACD__V1__CAMERA_FRAME__ENCODING__RGB8 &&
                 (int)f->height == lay->cam_h[k] && (int)f->width == lay->cam_w[k] &&
                 f->data.len == fsz;
        if (!ok) {
            errf("%s: step %zu used camera '%s' frame %" PRIu64 " of %ux%u (encoding %d), the "
                 "observation spec wants %dx%d RGB8", ep->path, i, lay->cam_name[k],
                 (uint64_t)f->seq, f->width, f->height, (int)f->encoding, lay->cam_w[k], lay->cam_h[k]);
            pacd__v1__camera_frame__free_unpacked(f, NULL);
            return -1;
        }
        memcpy(dst, f->data.data, fsz);
        pacd__v1__camera_frame__free_unpacked(f, NULL);
    }
    if (missing)
        fprintf(stderr, "pacctl log export: %s: %zu of %zu steps have no logged frame of camera '%s' "
                "(none yet, or dropped by the logger); their images are zeros\n", ep->path, missing,
                ep->n_steps, lay->cam_name[k]);
    return 0;
}

static int write_demo(hid_t data, int idx, const episode_t *ep, const layout_t *lay)
{
    char name[32];
    snprintf(name, sizeof name, "demo_%d", idx);
    size_t T = ep->n_steps, N = T - 1;
    int rc = -1;
    hid_t g = H5Gcreate2(data, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t go = g >= 0 ? H5Gcreate2(g, "obs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    hid_t gn = go >= 0 ? H5Gcreate2(g, "next_obs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    size_t od = (size_t)lay->obs_dim, ad = (size_t)lay->act_dim;
    float *obs = malloc(sizeof(float) * T * (od ? od : 1));
    float *act = malloc(sizeof(float) * N * ad);
    float *rew = malloc(sizeof(float) * N);
    uint8_t *term = malloc(N), *last = malloc(N), *first = malloc(N), *held = malloc(N);
    uint8_t *img = NULL;
    if (gn < 0 || !obs || !act || !rew || !term || !last || !first || !held)
        goto out;
    for (size_t i = 0; i < T; i++)
        memcpy(obs + i * od, ep->steps[i].obs, od * sizeof(float));
    for (size_t i = 0; i < N; i++) {
        memcpy(act + i * ad, ep->steps[i].act, ad * sizeof(float));
        rew[i] = ep->steps[i + 1].reward;
        term[i] = ep->steps[i + 1].term;
        last[i] = ep->steps[i + 1].last;
        first[i] = ep->steps[i].first;
        held[i] = ep->steps[i].held;
    }
    hsize_t d2[2] = {N, od};
    if (put(go, "observation", 2, d2, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, obs, 0) < 0 ||
        put(gn, "observation", 2, d2, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, obs + od, 0) < 0)
        goto out;
    for (int k = 0; k < lay->n_cams; k++) {
        size_t fsz = (size_t)lay->cam_h[k] * lay->cam_w[k] * 3;
        free(img);
        img = malloc(fsz * T);
        if (!img || episode_images(ep, lay, k, img) < 0)
            goto out;
        char key[96];
        snprintf(key, sizeof key, "%s_image", lay->cam_name[k]);
        hsize_t d4[4] = {N, (hsize_t)lay->cam_h[k], (hsize_t)lay->cam_w[k], 3};
        if (put(go, key, 4, d4, H5T_STD_U8LE, H5T_NATIVE_UINT8, img, 1) < 0 ||
            put(gn, key, 4, d4, H5T_STD_U8LE, H5T_NATIVE_UINT8, img + fsz, 1) < 0)
            goto out;
    }
    hsize_t da[2] = {N, ad}, d1[1] = {N};
    if (put(g, "actions", 2, da, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, act, 0) < 0 ||
        put(g, "rewards", 1, d1, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rew, 0) < 0 ||
        put(g, "dones", 1, d1, H5T_STD_U8LE, H5T_NATIVE_UINT8, term, 0) < 0 ||
        put(g, "is_terminal", 1, d1, H5T_STD_U8LE, H5T_NATIVE_UINT8, term, 0) < 0 ||
        put(g, "is_last", 1, d1, H5T_STD_U8LE, H5T_NATIVE_UINT8, last, 0) < 0 ||
        put(g, "is_first", 1, d1, H5T_STD_U8LE, H5T_NATIVE_UINT8, first, 0) < 0 ||
        put(g, "held", 1, d1, H5T_STD_U8LE, H5T_NATIVE_UINT8, held, 0) < 0)
        goto out;
    if (attr_i64(g, "num_samples", (int64_t)N) < 0 || attr_str(g, "episode_id", ep->episode_id) < 0 ||
        attr_str(g, "model_sha256", ep->teleop ? "" : ep->sha) < 0 || attr_i64(g, "seed", ep->seed) < 0 ||
        attr_i64(g, "unfinished", ep->unfinished) < 0)
        goto out;
    rc = 0;
out:
    free(obs);
    free(act);
    free(rew);
    free(term);
    free(last);
    free(first);
    free(held);
    free(img);
    if (gn >= 0)
        H5Gclose(gn);
    if (go >= 0)
        H5Gclose(go);
    if (g >= 0)
        H5Gclose(g);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Command                                                              */
/* ------------------------------------------------------------------ */

/* Free the steps, frames and file bytes of an episode (its metadata stays). */
static void episode_release(episode_t *ep)
{
    for (size_t i = 0; i < ep->n_steps; i++) {
        free(ep->steps[i].obs);
        free(ep->steps[i].act);
    }
    free(ep->steps);
    free(ep->frames);
    free(ep->data);
    ep->steps = NULL;
    ep->frames = NULL;
    ep->data = NULL;
    ep->n_steps = ep->cap_steps = ep->n_frames = ep->cap_frames = 0;
}

static void episode_free(episode_t *ep)
{
    episode_release(ep);
    free(ep->obs_spec_text);
    free(ep->act_spec_text);
    json_decref(ep->obs_spec);
    json_decref(ep->act_spec);
}

static int cmp_episode(const void *a, const void *b)
{
    return strcmp(((const episode_t *)a)->episode_id, ((const episode_t *)b)->episode_id);
}

int log_export(const char *out, const char *const *logs, int n_logs,
               const char *const *checkpoints, int n_checkpoints)
{
    ckpt_ref_t ck[LOG_EXPORT_MAX_CHECKPOINTS];
    int n_ck = 0, n_eps = 0, code = LOG_EXPORT_FAILED;
    episode_t *eps = calloc((size_t)(n_logs > 0 ? n_logs : 1), sizeof *eps);
    char *tmp = NULL;
    hid_t file = -1;
    if (!eps)
        return LOG_EXPORT_FAILED;
    if (n_checkpoints > LOG_EXPORT_MAX_CHECKPOINTS) {
        errf("at most %d --checkpoint", LOG_EXPORT_MAX_CHECKPOINTS);
        goto done;
    }
    for (int i = 0; i < n_checkpoints; i++) {
        char err[512];
        ck[n_ck].path = checkpoints[i];
        ck[n_ck].ck = ckpt_open(checkpoints[i], err, sizeof err);
        if (!ck[n_ck].ck) {
            errf("%s", err);
            goto done;
        }
        n_ck++;
    }
    for (int i = 0; i < n_logs; i++)
        eps[n_eps++].path = logs[i];

    /* read every log's metadata and specs; all must agree with the first */
    layout_t lay;
    for (int e = 0; e < n_eps; e++) {
        episode_t *ep = &eps[e];
        int rc = log_read_file(ep->path, &ep->data, &ep->len);
        if (rc != 0) {
            errf("cannot read %s: %s", ep->path, strerror(-rc));
            goto done;
        }
        rc = read_metadata(ep) < 0 || episode_specs(ep, ck, n_ck) < 0;
        free(ep->data);   /* read again, one log at a time, when its steps are written */
        ep->data = NULL;
        if (rc)
            goto done;
        if (e == 0) {
            if (spec_layout(ep->path, ep->obs_spec, ep->act_spec, &lay) < 0)
                goto done;
            continue;
        }
        char why[512];
        if (strcmp(ep->robot, eps[0].robot)) {
            errf("%s: robot '%s' differs from %s's '%s'; a data set holds one robot", ep->path,
                 ep->robot, eps[0].path, eps[0].robot);
            goto done;
        }
        if (!json_equal(ep->obs_spec, eps[0].obs_spec)) {
            describe_obs_diff(eps[0].obs_spec, ep->obs_spec, why, sizeof why);
            errf("%s: observation spec differs from %s's: %s; a data set holds one observation spec",
                 ep->path, eps[0].path, why);
            goto done;
        }
        if (!json_equal(ep->act_spec, eps[0].act_spec)) {
            describe_obj_diff(eps[0].act_spec, ep->act_spec, why, sizeof why);
            errf("%s: action spec differs from %s's: %s; a data set holds one action spec", ep->path,
                 eps[0].path, why);
            goto done;
        }
    }
    /* order of start times (the episode ids sort that way) */
    qsort(eps, (size_t)n_eps, sizeof *eps, cmp_episode);
    for (int e = 1; e < n_eps; e++)
        if (!strcmp(eps[e].episode_id, eps[e - 1].episode_id)) {
            errf("%s and %s are the same episode (%s); give each log once", eps[e - 1].path,
                 eps[e].path, eps[e].episode_id);
            goto done;
        }

    /* temp file next to OUT, renamed into place at the end */
    char *dup = strdup(out);
    const char *dir = dup ? dirname(dup) : ".";
    size_t tl = strlen(dir) + 64;
    tmp = malloc(tl);
    if (!dup || !tmp) {
        free(dup);
        errf("out of memory");
        goto done;
    }
    snprintf(tmp, tl, "%s/.pacctl-export-XXXXXX", dir);
    free(dup);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        errf("cannot create a file in the directory of %s: %s", out, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto done;
    }
    close(fd);
    /* libhdf5 registers H5close() with atexit(); after a failed H5Fclose (a
     * write error: disk full) that termination crashes in libhdf5 1.10, so it
     * is called here only when every close succeeded. */
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t data = file >= 0 ? H5Gcreate2(file, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (data < 0) {
        errf("cannot create the HDF5 file %s", tmp);
        goto done;
    }
    int64_t total = 0;
    int demo = 0, werr = 0;
    for (int e = 0; e < n_eps && !werr; e++) {
        episode_t *ep = &eps[e];
        int rc = log_read_file(ep->path, &ep->data, &ep->len);
        if (rc != 0) {
            errf("cannot read %s: %s", ep->path, strerror(-rc));
            werr = 1;
            break;
        }
        if (read_steps(ep, &lay) < 0) {
            werr = 1;
            break;
        }
        if (ep->unfinished)
            fprintf(stderr, "pacctl log export: %s is unfinished (no footer: pacd was stopped mid-episode); "
                    "exporting its %zu complete steps (demo attribute unfinished = 1)\n", ep->path,
                    ep->n_steps);
        if (ep->n_steps < 2) {
            fprintf(stderr, "pacctl log export: %s: %zu step%s, no transition; left out\n", ep->path,
                    ep->n_steps, ep->n_steps == 1 ? "" : "s");
            episode_release(ep);
            continue;
        }
        if (write_demo(data, demo, ep, &lay) < 0) {
            errf("writing demo_%d (%s) to %s failed (disk full?)", demo, ep->path, out);
            werr = 1;
            break;
        }
        total += (int64_t)ep->n_steps - 1;
        demo++;
        episode_release(ep);   /* keep one log in memory at a time */
    }
    if (!werr && demo == 0) {
        errf("no episode with 2 or more steps; nothing to export");
        werr = 1;
    }
    if (!werr) {
        const char *task = eps[0].task;
        char env_name[160];
        snprintf(env_name, sizeof env_name, "pacd-%s-%s", eps[0].robot, task[0] ? task : "task");
        json_t *env = json_pack("{s:s, s:i, s:{s:s, s:s}}", "env_name", env_name, "type", 0,
                                "env_kwargs", "robot", eps[0].robot, "task", task);
        char *env_s = env ? json_dumps(env, JSON_COMPACT) : NULL;
        json_decref(env);
        werr = !env_s || attr_i64(data, "pacd_dataset_version", 1) < 0 ||
               attr_i64(data, "total", total) < 0 || attr_str(data, "robot", eps[0].robot) < 0 ||
               attr_str(data, "observation", eps[0].obs_spec_text) < 0 ||
               attr_str(data, "action", eps[0].act_spec_text) < 0 ||
               attr_f64(data, "rate_hz", eps[0].rate_hz) < 0 || attr_str(data, "task", task) < 0 ||
               attr_str(data, "env_args", env_s) < 0;
        free(env_s);
        if (werr)
            errf("writing the /data attributes to %s failed", out);
    }
    H5Gclose(data);
    herr_t cerr = H5Fclose(file);
    file = -1;
    if (!werr && cerr < 0) {
        errf("closing %s failed (disk full?)", tmp);
        werr = 1;
    }
    if (!werr && rename(tmp, out) != 0) {
        errf("cannot rename %s to %s: %s", tmp, out, strerror(errno));
        werr = 1;
    }
    if (!werr) {
        free(tmp);
        tmp = NULL;
        fprintf(stderr, "pacctl log export: wrote %s: %d demo%s, %" PRId64 " transitions\n", out, demo,
                demo == 1 ? "" : "s", total);
        code = LOG_EXPORT_OK;
        H5close();
    }
done:
    if (file >= 0)
        H5Fclose(file);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    for (int e = 0; e < n_eps; e++)
        episode_free(&eps[e]);
    free(eps);
    for (int i = 0; i < n_ck; i++)
        ckpt_destroy(&ck[i].ck);
    return code;
}
