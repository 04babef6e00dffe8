/* MLP actor (architecture "mlp", docs/checkpoint.md "Architecture mlp").
 *
 *   x  = (observation - obs_norm.mean) / max(obs_norm.std, 1e-6)
 *   h0 = x;  h_{i+1} = act(layers.i.weight h_i + layers.i.bias)
 *   y  = head.weight h_L + head.bias
 *   tanh head:     action_j = rescale(tanh(y_j))
 *   gaussian head: y = [mean (dim), log_std (dim)]; action_j = rescale(tanh(mean_j))
 * where rescale maps [-1, 1] onto [action.low_j, action.high_j] and clamps.
 * The PyTorch twin (policy/torch/pacd_torch/mlp.py) computes the same. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_impl.h"
#include "nn.h"

#define MLP_MAX_LAYERS 16
#define MLP_MAX_WIDTH 65536
/* Lower clamp of the normalisation std: a feature that was constant in the
 * training data (std 0) is centred but not amplified beyond 1e6. */
#define MLP_MIN_STD 1e-6f

typedef enum { HEAD_TANH = 1, HEAD_GAUSSIAN = 2 } mlp_head_t;

typedef struct {
    int obs_dim, action_dim;
    int n_hidden;
    int width[MLP_MAX_LAYERS + 2];   /* width[0] = obs_dim, width[i+1] = hidden i, last = head out */
    nn_act_t act;
    mlp_head_t head;
    float *weights;                  /* one block holding everything below */
    float *mean, *std;
    float *w[MLP_MAX_LAYERS + 1], *b[MLP_MAX_LAYERS + 1];  /* hidden layers, then head */
    float low[POLICY_MAX_ACTION], high[POLICY_MAX_ACTION];
    nn_arena_t *arena;
    size_t off_x, off_ping, off_pong;
    float *x, *ping, *pong;          /* arena pointers, set after commit */
} mlp_t;

static int mlp_step(void *impl, const policy_observation_t *obs, float *action,
                    policy_extra_t *extra);

static void mlp_destroy(void **impl_p)
{
    if (!impl_p || !*impl_p)
        return;
    mlp_t *m = *impl_p;
    nn_arena_destroy(&m->arena);
    free(m->weights);
    free(m);
    *impl_p = NULL;
}

/* Parse "pacd.model" into m. */
static int parse_model(const char *path, const char *text, mlp_t *m, char *err, size_t errlen)
{
    if (!text) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.model' is missing; an mlp checkpoint needs "
                  "{\"hidden\": [...], \"activation\": ..., \"head\": ...}", path);
        return -EINVAL;
    }
    json_t *root = policy_json_object(path, "pacd.model", text, err, errlen);
    if (!root)
        return -EINVAL;
    int rc = -EINVAL;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "hidden") && strcmp(key, "activation") && strcmp(key, "head")) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.model': unknown key '%s' (this pacd "
                      "knows hidden, activation, head)", path, key);
            goto out;
        }
    }
    json_t *hidden = json_object_get(root, "hidden");
    if (!json_is_array(hidden) || json_array_size(hidden) > MLP_MAX_LAYERS) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.model': \"hidden\" must be an array of at "
                  "most %d layer widths", path, MLP_MAX_LAYERS);
        goto out;
    }
    m->n_hidden = (int)json_array_size(hidden);
    for (int i = 0; i < m->n_hidden; i++) {
        json_t *v = json_array_get(hidden, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > MLP_MAX_WIDTH) {
            pacd_errf(err, errlen, "%s: metadata 'pacd.model': hidden[%d] must be an integer "
                      "in [1, %d]", path, i, MLP_MAX_WIDTH);
            goto out;
        }
        m->width[i + 1] = (int)json_integer_value(v);
    }
    json_t *act = json_object_get(root, "activation");
    if (!json_is_string(act) || nn_act_parse(json_string_value(act), &m->act) != 0 ||
        m->act == NN_ACT_IDENTITY) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.model': \"activation\" must be \"relu\", "
                  "\"tanh\" or \"gelu\"", path);
        goto out;
    }
    json_t *head = json_object_get(root, "head");
    const char *hs = json_string_value(head);
    if (hs && strcmp(hs, "tanh") == 0) {
        m->head = HEAD_TANH;
    } else if (hs && strcmp(hs, "gaussian") == 0) {
        m->head = HEAD_GAUSSIAN;
    } else {
        pacd_errf(err, errlen, "%s: metadata 'pacd.model': \"head\" must be \"tanh\" or "
                  "\"gaussian\"", path);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Tensor names of layer i (0..n_hidden - 1: hidden, n_hidden: the head);
 * wname and bname hold 64 bytes. */
static void layer_names(int i, int n_hidden, char *wname, char *bname)
{
    if (i < n_hidden) {
        snprintf(wname, 64, "layers.%d.weight", i);
        snprintf(bname, 64, "layers.%d.bias", i);
    } else {
        snprintf(wname, 64, "head.weight");
        snprintf(bname, 64, "head.bias");
    }
}

static int mlp_load(ckpt_t *ck, policy_spec_t *spec, const policy_options_t *options,
                    void **impl_out, char *err, size_t errlen)
{
    (void)options;
    const char *path = ckpt_path(ck);
    if (spec->n_images > 0) {
        pacd_errf(err, errlen, "%s: metadata 'pacd.observation': the mlp architecture takes "
                  "no camera fields (found %d)", path, spec->n_images);
        return -EINVAL;
    }
    mlp_t *m = calloc(1, sizeof *m);
    if (!m) {
        pacd_errf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    int rc = parse_model(path, ckpt_metadata(ck, "pacd.model"), m, err, errlen);
    if (rc)
        goto fail;
    m->obs_dim = spec->obs_dim;
    m->action_dim = spec->action_dim;
    m->width[0] = spec->obs_dim;
    m->width[m->n_hidden + 1] = m->head == HEAD_GAUSSIAN ? 2 * spec->action_dim
                                                         : spec->action_dim;
    memcpy(m->low, spec->action_low, sizeof m->low);
    memcpy(m->high, spec->action_high, sizeof m->high);

    /* Every shape the metadata gives must be that of a tensor in the file
     * before anything sized by them is allocated: widths up to MLP_MAX_WIDTH
     * would otherwise ask for tens of GB on behalf of a file of a few bytes. */
    {
        int64_t shp[2] = { m->obs_dim, 0 };
        if ((rc = ckpt_check_shape(ck, "obs_norm.mean", 1, shp, err, errlen)) ||
            (rc = ckpt_check_shape(ck, "obs_norm.std", 1, shp, err, errlen)))
            goto fail;
        for (int i = 0; i <= m->n_hidden; i++) {
            char wname[64], bname[64];
            layer_names(i, m->n_hidden, wname, bname);
            int64_t ws[2] = { m->width[i + 1], m->width[i] };
            if ((rc = ckpt_check_shape(ck, wname, 2, ws, err, errlen)) ||
                (rc = ckpt_check_shape(ck, bname, 1, ws, err, errlen)))
                goto fail;
        }
    }

    /* weights: normalisation, then each layer (hidden..., head) */
    size_t total = 2 * (size_t)m->obs_dim;
    for (int i = 0; i <= m->n_hidden; i++)
        total += (size_t)m->width[i + 1] * ((size_t)m->width[i] + 1);
    m->weights = malloc(total * sizeof(float));
    if (!m->weights) {
        pacd_errf(err, errlen, "%s: out of memory for %zu weights", path, total);
        rc = -ENOMEM;
        goto fail;
    }
    float *p = m->weights;
    int64_t shp[2] = { m->obs_dim, 0 };
    m->mean = p; p += m->obs_dim;
    m->std = p; p += m->obs_dim;
    if ((rc = ckpt_read_f32(ck, "obs_norm.mean", 1, shp, m->mean, err, errlen)) ||
        (rc = ckpt_read_f32(ck, "obs_norm.std", 1, shp, m->std, err, errlen)))
        goto fail;
    for (int i = 0; i < m->obs_dim; i++) {
        if (m->std[i] < 0.0f) {
            pacd_errf(err, errlen, "%s: tensor 'obs_norm.std': element %d is negative (%g); "
                      "a standard deviation must be >= 0", path, i, (double)m->std[i]);
            rc = -EINVAL;
            goto fail;
        }
        if (m->std[i] < MLP_MIN_STD)
            m->std[i] = MLP_MIN_STD;
    }
    for (int i = 0; i <= m->n_hidden; i++) {
        char wname[64], bname[64];
        layer_names(i, m->n_hidden, wname, bname);
        int64_t ws[2] = { m->width[i + 1], m->width[i] };
        m->w[i] = p; p += (size_t)m->width[i + 1] * m->width[i];
        m->b[i] = p; p += m->width[i + 1];
        if ((rc = ckpt_read_f32(ck, wname, 2, ws, m->w[i], err, errlen)) ||
            (rc = ckpt_read_f32(ck, bname, 1, ws, m->b[i], err, errlen)))
            goto fail;
    }
    const char *stray = ckpt_first_unused(ck);
    if (stray) {
        pacd_errf(err, errlen, "%s: tensor '%s' is not part of an mlp with %d hidden layers; "
                  "the metadata and the tensors disagree", path, stray, m->n_hidden);
        rc = -EINVAL;
        goto fail;
    }

    /* plan: the normalised input, and two ping-pong buffers of the widest layer */
    int widest = 1;
    for (int i = 1; i <= m->n_hidden + 1; i++)
        widest = m->width[i] > widest ? m->width[i] : widest;
    m->arena = nn_arena_new();
    if (!m->arena) {
        rc = -ENOMEM;
        pacd_errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    m->off_x = nn_arena_reserve(m->arena, (size_t)m->obs_dim);
    m->off_ping = nn_arena_reserve(m->arena, (size_t)widest);
    m->off_pong = nn_arena_reserve(m->arena, (size_t)widest);
    if ((rc = nn_arena_commit(m->arena)) != 0) {
        pacd_errf(err, errlen, "%s: cannot allocate the %zu-byte scratch arena", path,
                  nn_arena_bytes(m->arena));
        goto fail;
    }
    m->x = nn_arena_ptr(m->arena, m->off_x);
    m->ping = nn_arena_ptr(m->arena, m->off_ping);
    m->pong = nn_arena_ptr(m->arena, m->off_pong);
    /* Warm-up step on the mean observation, so that lazy first-call work in
     * the BLAS library (buffer set-up) happens here, at init, not on the
     * first control tick. */
    {
        policy_observation_t warm = { .values = m->mean, .images = NULL };
        float a[POLICY_MAX_ACTION];
        (void)mlp_step(m, &warm, a, NULL);
    }
    *impl_out = m;
    return 0;
fail:
    {
        void *v = m;
        mlp_destroy(&v);
    }
    return rc ? rc : -EINVAL;
}

static int mlp_step(void *impl, const policy_observation_t *obs, float *action,
                    policy_extra_t *extra)
{
    mlp_t *m = impl;
    const float *o = obs->values;
    for (int i = 0; i < m->obs_dim; i++) {
        if (!isfinite(o[i]))
            return -EDOM;
        m->x[i] = (o[i] - m->mean[i]) / m->std[i];
    }
    const float *in = m->x;
    float *out = m->ping;
    for (int i = 0; i <= m->n_hidden; i++) {
        nn_linear(in, 1, m->width[i], m->w[i], m->b[i], m->width[i + 1], out);
        if (i < m->n_hidden)
            nn_activation(m->act, out, (size_t)m->width[i + 1]);
        in = out;
        out = out == m->ping ? m->pong : m->ping;
    }
    /* `in` holds the head output; for the gaussian head the first action_dim
     * values are the mean, and deployment acts on tanh(mean). */
    float *a = out;   /* the free ping-pong buffer (widest >= action_dim) */
    for (int j = 0; j < m->action_dim; j++) {
        a[j] = policy_rescale(tanhf(in[j]), m->low[j], m->high[j]);
        if (isnan(a[j]))
            return -ERANGE;   /* overflow inside the network: leave action untouched */
    }
    memcpy(action, a, (size_t)m->action_dim * sizeof(float));
    if (extra)
        extra->has_q_value = 0;
    return 0;
}

static size_t mlp_arena_bytes(const void *impl)
{
    const mlp_t *m = impl;
    return nn_arena_bytes(m->arena);
}

const policy_arch_t policy_arch_mlp = {
    .name = "mlp",
    .load = mlp_load,
    .step = mlp_step,
    .arena_bytes = mlp_arena_bytes,
    .destroy = mlp_destroy,
};
