/* policy — checkpoint metadata -> policy_spec_t, and dispatch on the
 * architecture. See policy.h and docs/checkpoint.md. */
#include "policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "policy_impl.h"
#include "nn.h"

/* Highest checkpoint format version this code reads (docs/checkpoint.md). */
#define POLICY_FORMAT_VERSION 1
#define POLICY_MAX_OBS_DIM (1 << 20)
#define POLICY_MAX_HISTORY 64

struct policy {
    policy_spec_t spec;
    const policy_arch_t *arch;
    void *impl;
    const char *kernel;   /* nn_gemm_name of the kernel in use */
    char *path;           /* the path it was loaded from (policy_path) */
};

static const policy_arch_t *const archs[] = { &policy_arch_mlp, &policy_arch_pac };

/* Copy a string metadata value of bounded length. */
static int copy_name(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= POLICY_MAX_NAME)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

static const char *require(const ckpt_t *ck, const char *key, char *err, size_t errlen)
{
    const char *v = ckpt_metadata(ck, key);
    if (!v)
        pacd_errf(err, errlen, "%s: metadata '%s' is missing; export the checkpoint "
                  "with pacd_torch.export (docs/checkpoint.md)", ckpt_path(ck), key);
    return v;
}

json_t *policy_json_object(const char *path, const char *key, const char *text, char *err,
                           size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        pacd_errf(err, errlen, "%s: metadata '%s': not a JSON object%s%s", path, key,
                  root ? "" : ": ", root ? "" : jerr.text);
        json_decref(root);
        return NULL;
    }
    return root;
}

/* The observation sources: string, kind and values per tick (SOURCE_ANY_1D:
 * any 1-D length, the robot's joint count, checked by the daemon;
 * SOURCE_ACTION_DIM: the checkpoint's action dim; 0: a camera image). */
enum { SOURCE_ANY_1D = -1, SOURCE_ACTION_DIM = -2 };
static const struct {
    const char *name;
    policy_source_kind_t kind;
    int size;
} source_table[] = {
    { "joint_positions", POLICY_SOURCE_JOINT_POSITIONS, SOURCE_ANY_1D },
    { "joint_velocities", POLICY_SOURCE_JOINT_VELOCITIES, SOURCE_ANY_1D },
    { "gripper_position", POLICY_SOURCE_GRIPPER_POSITION, 1 },
    { "gripper_velocity", POLICY_SOURCE_GRIPPER_VELOCITY, 1 },
    { "grasp", POLICY_SOURCE_GRASP, 1 },
    { "end_effector_pose", POLICY_SOURCE_END_EFFECTOR_POSE, 7 },
    { "previous_action", POLICY_SOURCE_PREVIOUS_ACTION, SOURCE_ACTION_DIM },
    { "camera", POLICY_SOURCE_CAMERA, 0 },   /* as "camera/<name>" */
    { "object_pose", POLICY_SOURCE_OBJECT_POSE, 7 },   /* as "object_pose/<name>" */
    { "gripper_to_object", POLICY_SOURCE_GRIPPER_TO_OBJECT, 3 }, /* "gripper_to_object/<name>" */
};
#define N_SOURCES (sizeof source_table / sizeof source_table[0])

/* The sources written "<name>/<what>": the prefix (with its '/') and kind. */
static const struct {
    const char *prefix;
    policy_source_kind_t kind;
} named_sources[] = {
    { "camera/", POLICY_SOURCE_CAMERA },
    { "object_pose/", POLICY_SOURCE_OBJECT_POSE },
    { "gripper_to_object/", POLICY_SOURCE_GRIPPER_TO_OBJECT },
};
#define N_NAMED (sizeof named_sources / sizeof named_sources[0])

int policy_source_parse(const char *source, policy_source_kind_t *kind)
{
    if (!source || !kind)
        return -EINVAL;
    for (size_t i = 0; i < N_NAMED; i++) {
        size_t n = strlen(named_sources[i].prefix);
        if (strncmp(source, named_sources[i].prefix, n) == 0) {
            if (source[n] == '\0')
                return -EINVAL;
            *kind = named_sources[i].kind;
            return 0;
        }
    }
    for (size_t i = 0; i < N_SOURCES; i++) {
        int named = 0;
        for (size_t j = 0; j < N_NAMED; j++)
            named |= source_table[i].kind == named_sources[j].kind;
        if (!named && strcmp(source, source_table[i].name) == 0) {
            *kind = source_table[i].kind;
            return 0;
        }
    }
    return -EINVAL;
}

const char *policy_source_name(policy_source_kind_t kind)
{
    for (size_t i = 0; i < N_SOURCES; i++)
        if (source_table[i].kind == kind)
            return source_table[i].name;
    return "?";
}

/* Values per tick of a source (SOURCE_ANY_1D: any 1-D length; 0: camera). */
static int source_size(policy_source_kind_t kind, int action_dim)
{
    for (size_t i = 0; i < N_SOURCES; i++)
        if (source_table[i].kind == kind)
            return source_table[i].size == SOURCE_ACTION_DIM ? action_dim
                                                             : source_table[i].size;
    return SOURCE_ANY_1D;
}

static int parse_field(const char *path, int idx, json_t *f, policy_spec_t *spec,
                       char *err, size_t errlen)
{
    policy_field_t *fd = &spec->fields[idx];
    if (!json_is_object(f)) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field %d is not an object",
                  path, idx);
        return -EINVAL;
    }
    const char *key;
    json_t *val;
    json_object_foreach(f, key, val) {
        if (strcmp(key, "name") && strcmp(key, "source") && strcmp(key, "shape") &&
            strcmp(key, "history")) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field %d: unknown key "
                      "'%s' (known: name, source, shape, history)", path, idx, key);
            return -EINVAL;
        }
    }
    const char *name = json_string_value(json_object_get(f, "name"));
    if (!name || !*name || copy_name(fd->name, name) != 0) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field %d: \"name\" must be "
                  "a string of 1-%d bytes", path, idx, POLICY_MAX_NAME - 1);
        return -EINVAL;
    }
    for (int j = 0; j < idx; j++) {
        if (strcmp(spec->fields[j].name, fd->name) == 0) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field name '%s' "
                      "appears twice", path, fd->name);
            return -EINVAL;
        }
    }
    const char *src = json_string_value(json_object_get(f, "source"));
    if (!src || policy_source_parse(src, &fd->source_kind) != 0 ||
        copy_name(fd->source, src) != 0) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field '%s': source '%s' is "
                  "unknown (known: joint_positions, joint_velocities, gripper_position, "
                  "gripper_velocity, grasp, end_effector_pose, previous_action, camera/<name>, "
                  "object_pose/<name>, gripper_to_object/<name>)",
                  path, fd->name, src ? src : "(none)");
        return -EINVAL;
    }
    json_t *shape = json_object_get(f, "shape");
    if (!json_is_array(shape) || json_array_size(shape) < 1 ||
        json_array_size(shape) > POLICY_MAX_DIMS) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field '%s': \"shape\" must "
                  "be an array of 1-%d positive integers", path, fd->name, POLICY_MAX_DIMS);
        return -EINVAL;
    }
    fd->ndim = (int)json_array_size(shape);
    long long size = 1;
    for (int d = 0; d < fd->ndim; d++) {
        json_t *v = json_array_get(shape, (size_t)d);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > POLICY_MAX_OBS_DIM) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field '%s': shape[%d] "
                      "must be a positive integer", path, fd->name, d);
            return -EINVAL;
        }
        fd->shape[d] = (int)json_integer_value(v);
        size *= fd->shape[d];
        if (size > POLICY_MAX_OBS_DIM * 16LL) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field '%s': shape is "
                      "too large", path, fd->name);
            return -EINVAL;
        }
    }
    fd->size = (int)size;
    fd->is_image = fd->source_kind == POLICY_SOURCE_CAMERA;
    const int want = source_size(fd->source_kind, spec->action_dim);
    int ok;
    if (fd->is_image)
        ok = fd->ndim == 3 && fd->shape[2] == 3;
    else if (want == SOURCE_ANY_1D)
        ok = fd->ndim == 1;
    else
        ok = fd->ndim == 1 && fd->shape[0] == want;
    if (!ok) {
        if (fd->is_image)
            pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field '%s': a camera "
                      "field has shape [H, W, 3]", path, fd->name);
        else if (want == SOURCE_ANY_1D)
            pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field '%s': source '%s' "
                      "has a 1-D shape", path, fd->name, src);
        else
            pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field '%s': source '%s' "
                      "has shape [%d]", path, fd->name, src, want);
        return -EINVAL;
    }
    json_t *hist = json_object_get(f, "history");
    if (!json_is_integer(hist) || json_integer_value(hist) < 1 ||
        json_integer_value(hist) > POLICY_MAX_HISTORY) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.observation': field '%s': \"history\" must "
                  "be an integer in [1, %d]", path, fd->name, POLICY_MAX_HISTORY);
        return -EINVAL;
    }
    fd->history = (int)json_integer_value(hist);
    if (fd->is_image) {
        fd->offset = -1;
        spec->n_images++;
    } else {
        fd->offset = spec->obs_dim;
        long long dim = (long long)spec->obs_dim + (long long)fd->size * fd->history;
        if (dim > POLICY_MAX_OBS_DIM) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.observation': the observation vector "
                      "exceeds %d values at field '%s'", path, POLICY_MAX_OBS_DIM, fd->name);
            return -EINVAL;
        }
        spec->obs_dim = (int)dim;
    }
    return 0;
}

static int parse_observation(const char *path, const char *text, policy_spec_t *spec,
                             char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -EINVAL;
    if (!root || !json_is_array(root) || json_array_size(root) < 1 ||
        json_array_size(root) > POLICY_MAX_FIELDS) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.observation': must be a JSON array of 1-%d "
                  "fields%s%s", path, POLICY_MAX_FIELDS, root ? "" : ": ",
                  root ? "" : jerr.text);
        goto out;
    }
    spec->n_fields = (int)json_array_size(root);
    for (int i = 0; i < spec->n_fields; i++)
        if ((rc = parse_field(path, i, json_array_get(root, (size_t)i), spec, err, errlen)))
            goto out;
    if (spec->obs_dim == 0 && spec->n_images == 0) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.observation': no values", path);
        rc = -EINVAL;
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static int parse_bounds(const char *path, json_t *arr, const char *which, int dim, float *out,
                        char *err, size_t errlen)
{
    if (!json_is_array(arr) || (int)json_array_size(arr) != dim) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.action': \"%s\" must be an array of %d "
                  "numbers (one per action dimension)", path, which, dim);
        return -EINVAL;
    }
    for (int i = 0; i < dim; i++) {
        json_t *v = json_array_get(arr, (size_t)i);
        double d = json_number_value(v);
        if (!json_is_number(v) || !isfinite(d) || fabs(d) > 1e6) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.action': %s[%d] is not a finite number",
                      path, which, i);
            return -EINVAL;
        }
        out[i] = (float)d;
    }
    return 0;
}

static int parse_action(const char *path, const char *text, policy_spec_t *spec,
                        char *err, size_t errlen)
{
    json_t *root = policy_json_object(path, "pacd.action", text, err, errlen);
    if (!root)
        return -EINVAL;
    int rc = -EINVAL;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "space") && strcmp(key, "dim") && strcmp(key, "low") &&
            strcmp(key, "high") && strcmp(key, "repeat")) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.action': unknown key '%s' (known: "
                      "space, dim, low, high, repeat)", path, key);
            goto out;
        }
    }
    const char *space = json_string_value(json_object_get(root, "space"));
    json_t *dim = json_object_get(root, "dim");
    if (!json_is_integer(dim) || json_integer_value(dim) < 1 ||
        json_integer_value(dim) > POLICY_MAX_ACTION) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.action': \"dim\" must be an integer in "
                  "[1, %d]", path, POLICY_MAX_ACTION);
        goto out;
    }
    spec->action_dim = (int)json_integer_value(dim);
    int d = spec->action_dim;
    json_t *repeat = json_object_get(root, "repeat");
    spec->action_repeat = 1;
    if (repeat) {
        if (!json_is_integer(repeat) || json_integer_value(repeat) < 1 ||
            json_integer_value(repeat) > POLICY_MAX_ACTION_REPEAT) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.action': \"repeat\" must be an integer "
                      "in [1, %d] (control periods each action is held for)", path,
                      POLICY_MAX_ACTION_REPEAT);
            goto out;
        }
        spec->action_repeat = (int)json_integer_value(repeat);
    }
    if (space && strcmp(space, "joint_velocity") == 0) {
        spec->action_space = POLICY_ACTION_JOINT_VELOCITY;
    } else if (space && strcmp(space, "joint_velocity_gripper") == 0 && d >= 2) {
        spec->action_space = POLICY_ACTION_JOINT_VELOCITY_GRIPPER;
    } else if (space && strcmp(space, "cartesian_velocity") == 0 && (d == 4 || d == 5)) {
        spec->action_space = POLICY_ACTION_CARTESIAN_VELOCITY;
    } else if (space && strcmp(space, "cartesian_twist") == 0 && (d == 6 || d == 7)) {
        spec->action_space = POLICY_ACTION_CARTESIAN_TWIST;
    } else {
        pacd_errf(err, errlen, "%s: metadata 'pacd.action': space '%s' with dim %d is not "
                  "supported (joint_velocity, joint_velocity_gripper with dim >= 2, "
                  "cartesian_velocity with dim 4 or 5, cartesian_twist with dim 6 or 7)",
                  path, space ? space : "(none)", d);
        goto out;
    }
    if ((rc = parse_bounds(path, json_object_get(root, "low"), "low", d, spec->action_low,
                           err, errlen)) ||
        (rc = parse_bounds(path, json_object_get(root, "high"), "high", d, spec->action_high,
                           err, errlen)))
        goto out;
    for (int i = 0; i < d; i++) {
        if (!(spec->action_low[i] < spec->action_high[i])) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.action': low[%d] = %g is not below "
                      "high[%d] = %g", path, i, (double)spec->action_low[i], i,
                      (double)spec->action_high[i]);
            rc = -EINVAL;
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Fill spec from the common metadata (docs/checkpoint.md "Metadata"). */
static int parse_spec(ckpt_t *ck, policy_spec_t *spec, char *err, size_t errlen)
{
    const char *path = ckpt_path(ck);
    const char *fmt = require(ck, "pacd.format", err, errlen);
    if (!fmt)
        return -EINVAL;
    if (strcmp(fmt, "pacd-checkpoint") != 0) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.format' is '%s', expected "
                  "'pacd-checkpoint'", path, fmt);
        return -EINVAL;
    }
    const char *ver = require(ck, "pacd.format_version", err, errlen);
    if (!ver)
        return -EINVAL;
    char *end = NULL;
    long v = strtol(ver, &end, 10);
    if (end == ver || *end != '\0' || v < 1) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.format_version' is '%s', expected a "
                  "positive integer", path, ver);
        return -EINVAL;
    }
    if (v > POLICY_FORMAT_VERSION) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.format_version' is %ld, newer than this "
                  "pacd reads (%d); upgrade pacd", path, v, POLICY_FORMAT_VERSION);
        return -EINVAL;
    }
    const char *arch = require(ck, "pacd.architecture", err, errlen);
    if (!arch)
        return -EINVAL;
    if (copy_name(spec->architecture, arch) != 0)
        spec->architecture[0] = '\0';
    const char *robot = require(ck, "pacd.robot", err, errlen);
    if (!robot)
        return -EINVAL;
    if (copy_name(spec->robot, robot) != 0) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.robot' is longer than %d bytes", path,
                  POLICY_MAX_NAME - 1);
        return -EINVAL;
    }
    const char *act = require(ck, "pacd.action", err, errlen);
    if (!act)
        return -EINVAL;
    int rc = parse_action(path, act, spec, err, errlen);
    if (rc)
        return rc;
    const char *obs = require(ck, "pacd.observation", err, errlen);
    if (!obs)
        return -EINVAL;
    if ((rc = parse_observation(path, obs, spec, err, errlen)))
        return rc;
    memcpy(spec->sha256, ckpt_sha256(ck), sizeof spec->sha256);
    return 0;
}

static const char *const kernel_names[] = { "auto", "avx512", "avx2", "blas", "amx",
                                               "blis" };

int policy_kernel_parse(const char *name, policy_kernel_t *out)
{
    for (size_t i = 0; name && i < sizeof kernel_names / sizeof kernel_names[0]; i++)
        if (strcmp(name, kernel_names[i]) == 0) {
            if (out)
                *out = (policy_kernel_t)i;
            return 0;
        }
    return -EINVAL;
}

const char *policy_kernel_option_name(policy_kernel_t kernel)
{
    return (unsigned)kernel < sizeof kernel_names / sizeof kernel_names[0]
               ? kernel_names[kernel] : "?";
}

int policy_kernel_supported(policy_kernel_t kernel)
{
    switch (kernel) {
    case POLICY_KERNEL_AUTO:
    case POLICY_KERNEL_BLAS: return 1;
    case POLICY_KERNEL_AVX512: return nn_gemm_cpu_has_avx512();
    case POLICY_KERNEL_AVX2: return nn_gemm_cpu_has_avx2();
    case POLICY_KERNEL_AMX: return nn_gemm_cpu_has_amx();
    case POLICY_KERNEL_BLIS: return nn_gemm_blis_available();
    }
    return 0;
}

nn_gemm_kind_t policy_gemm_kind(const policy_options_t *options)
{
    switch (options ? options->kernel : POLICY_KERNEL_AUTO) {
    case POLICY_KERNEL_AVX512: return NN_GEMM_AVX512;
    case POLICY_KERNEL_AVX2: return NN_GEMM_AVX2;
    case POLICY_KERNEL_BLAS: return NN_GEMM_BLAS;
    case POLICY_KERNEL_AMX: return NN_GEMM_AMX;
    case POLICY_KERNEL_BLIS: return NN_GEMM_BLIS;
    case POLICY_KERNEL_AUTO: break;
    }
    return nn_gemm_best(options && options->threads > 0 ? options->threads : 1);
}

/* Refuse a forced kernel the CPU lacks before anything is read. */
static int check_kernel(const char *path, const policy_options_t *opt, char *err, size_t errlen)
{
    policy_kernel_t k = opt ? opt->kernel : POLICY_KERNEL_AUTO;
    if ((unsigned)k >= sizeof kernel_names / sizeof kernel_names[0]) {
        pacd_errf(err, errlen, "%s: unknown matrix kernel %d (known: auto, avx512, avx2, "
                  "blas, amx, blis)", path, (int)k);
        return -EINVAL;
    }
    if (policy_kernel_supported(k))
        return 0;
    char have[80] = "auto";
    for (int i = POLICY_KERNEL_AVX512; i <= POLICY_KERNEL_BLIS; i++)
        if (policy_kernel_supported((policy_kernel_t)i)) {
            size_t n = strlen(have);
            snprintf(have + n, sizeof have - n, ", %s", kernel_names[i]);
        }
    if (k == POLICY_KERNEL_BLIS) {
        pacd_errf(err, errlen, "%s: matrix kernel blis asked for, but pacd was built without "
                  "BLIS (libblis-dev); it runs %s", path, have);
        return -ENOTSUP;
    }
    pacd_errf(err, errlen, "%s: matrix kernel %s asked for, but this CPU lacks %s; it runs "
              "%s", path, kernel_names[k],
              k == POLICY_KERNEL_AVX512 ? "AVX-512 (avx512f)"
              : k == POLICY_KERNEL_AMX ? "AMX with bf16 (amx-tile, amx-bf16, avx512bf16, and the "
                                         "kernel's tile-state permission)"
                                       : "AVX2 and FMA (avx2, fma)",
              have);
    return -ENOTSUP;
}

/* 1 when the checkpoint's matrices (every tensor of 2 or more dimensions)
 * are all BF16, and there is at least one. */
static int ckpt_matrices_bf16(const ckpt_t *ck)
{
    int n = 0;
    for (int i = 0; i < ckpt_tensor_count(ck); i++) {
        const ckpt_tensor_t *t = ckpt_tensor_at(ck, i);
        if (t->ndim < 2)
            continue;
        if (t->dtype != CKPT_BF16)
            return 0;
        n++;
    }
    return n > 0;
}

policy_t *policy_load(const char *path, const policy_options_t *options,
                      char *err, size_t errlen)
{
    pacd_errf(err, errlen, "no error");
    int krc = check_kernel(path, options, err, errlen);
    if (krc) {
        errno = -krc;
        return NULL;
    }
    if (policy_gemm_kind(options) == NN_GEMM_AMX) {
        /* bf16x3 is not float: check it is within its bound before trusting it */
        char rep[256];
        int src = nn_gemm_selfcheck(NN_GEMM_AMX, rep, sizeof rep);
        if (src) {
            pacd_errf(err, errlen, "%s: %s", path, rep);
            errno = -src;
            return NULL;
        }
    }
    ckpt_t *ck = ckpt_open(path, err, errlen);
    if (!ck)
        return NULL;
    policy_t *self = calloc(1, sizeof *self);
    if (!self) {
        pacd_errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (parse_spec(ck, &self->spec, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i]->name, self->spec.architecture) == 0)
            self->arch = archs[i];
    if (!self->arch) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.architecture' is '%s', which this pacd "
                  "does not run (known: mlp, pac)", path, ckpt_metadata(ck, "pacd.architecture"));
        goto fail;
    }
    policy_options_t eff = options ? *options : (policy_options_t){ .threads = 1 };
    /* auto on one thread takes AMX for a PAC checkpoint whose matrices are
     * BF16: its weights stay bf16 there (hi only), and the ~2^-17 relative
     * error of its products is far below the 2^-9 rounding the weights
     * already carry. Only when the self-check passes; else the float kernel. */
    if (eff.kernel == POLICY_KERNEL_AUTO && eff.threads <= 1 &&
        strcmp(self->spec.architecture, "pac") == 0 && ckpt_matrices_bf16(ck) &&
        nn_gemm_cpu_has_amx() && nn_gemm_selfcheck(NN_GEMM_AMX, NULL, 0) == 0)
        eff.kernel = POLICY_KERNEL_AMX;
    nn_set_threads(eff.threads);
    if (self->arch->load(ck, &self->spec, &eff, &self->impl, err, errlen) != 0)
        goto fail;
    self->kernel = self->arch->kernel ? self->arch->kernel(self->impl) : nn_gemm_name(NN_GEMM_BLAS);
    if (!(self->path = strdup(path))) {
        pacd_errf(err, errlen, "%s: out of memory", path);
        self->arch->destroy(&self->impl);
        goto fail;
    }
    ckpt_destroy(&ck);
    return self;
fail:
    ckpt_destroy(&ck);
    free(self);
    return NULL;
}

void policy_destroy(policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    policy_t *self = *self_p;
    if (self->arch && self->impl)
        self->arch->destroy(&self->impl);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const policy_spec_t *policy_spec(const policy_t *self)
{
    return self ? &self->spec : NULL;
}

int policy_step(policy_t *self, const policy_observation_t *obs, float *action,
                policy_extra_t *extra)
{
    if (!self || !obs || !action || (!obs->values && self->spec.obs_dim > 0) ||
        (!obs->images && self->spec.n_images > 0))
        return -EINVAL;
    return self->arch->step(self->impl, obs, action, extra);
}

int policy_prepare_thread(const policy_t *self)
{
    if (!self || !self->kernel || strcmp(self->kernel, nn_gemm_name(NN_GEMM_AMX)) != 0)
        return 0;
    return nn_gemm_prepare_thread(NN_GEMM_AMX);
}

const char *policy_path(const policy_t *self)
{
    return self ? self->path : NULL;
}

const char *policy_kernel(const policy_t *self)
{
    return self ? self->kernel : NULL;
}

size_t policy_arena_bytes(const policy_t *self)
{
    return self ? self->arch->arena_bytes(self->impl) : 0;
}

int policy_logits(const policy_t *self, const float **logits, int *rows, int *cols)
{
    if (!self || !logits || !rows || !cols)
        return -EINVAL;
    if (!self->arch->logits)
        return -ENOTSUP;
    return self->arch->logits(self->impl, logits, rows, cols);
}

int policy_blas_selfcheck(char *report, size_t n)
{
    return nn_blas_selfcheck(report, n);
}

int policy_spec_difference(const policy_spec_t *a, const policy_spec_t *b, char *why, size_t n)
{
    if (a->n_fields != b->n_fields) {
        snprintf(why, n, "%d observation field(s) where the running checkpoint has %d",
                 b->n_fields, a->n_fields);
        return 1;
    }
    for (int i = 0; i < a->n_fields; i++) {
        const policy_field_t *x = &a->fields[i], *y = &b->fields[i];
        int same_shape = x->ndim == y->ndim;
        for (int d = 0; same_shape && d < x->ndim; d++)
            same_shape = x->shape[d] == y->shape[d];
        if (strcmp(x->name, y->name) || strcmp(x->source, y->source) || !same_shape ||
            x->history != y->history || x->offset != y->offset || x->is_image != y->is_image) {
            snprintf(why, n, "observation field %d is '%s' (source %s, %d values, history %d) "
                     "where the running checkpoint has '%s' (source %s, %d values, history %d)",
                     i, y->name, y->source, y->size, y->history, x->name, x->source, x->size,
                     x->history);
            return 1;
        }
    }
    if (a->obs_dim != b->obs_dim || a->n_images != b->n_images) {
        snprintf(why, n, "observation of %d values and %d images where the running checkpoint "
                 "has %d and %d", b->obs_dim, b->n_images, a->obs_dim, a->n_images);
        return 1;
    }
    if (a->action_space != b->action_space || a->action_dim != b->action_dim) {
        snprintf(why, n, "action space %d of dimension %d where the running checkpoint has "
                 "space %d of dimension %d", (int)b->action_space, b->action_dim,
                 (int)a->action_space, a->action_dim);
        return 1;
    }
    for (int i = 0; i < a->action_dim; i++)
        if (a->action_low[i] != b->action_low[i] || a->action_high[i] != b->action_high[i]) {
            snprintf(why, n, "action bounds of dimension %d are [%g, %g] where the running "
                     "checkpoint has [%g, %g]", i, b->action_low[i], b->action_high[i],
                     a->action_low[i], a->action_high[i]);
            return 1;
        }
    if (a->task_kind != b->task_kind || a->task_count != b->task_count ||
        a->task_dim != b->task_dim) {
        snprintf(why, n, "task conditioning (kind %d, %d tasks, dimension %d) where the running "
                 "checkpoint has kind %d, %d tasks, dimension %d", (int)b->task_kind,
                 b->task_count, b->task_dim, (int)a->task_kind, a->task_count, a->task_dim);
        return 1;
    }
    if (strcmp(a->robot, b->robot)) {
        snprintf(why, n, "it was trained for robot '%s' where the running checkpoint names '%s'",
                 b->robot[0] ? b->robot : "(any)", a->robot[0] ? a->robot : "(any)");
        return 1;
    }
    return 0;
}
