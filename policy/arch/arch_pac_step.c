/* arch_pac_step — the PAC actor's step: the forward pass (camera encoders,
 * encoder K/V rows, cross- and self-attention blocks, the policy decoder and
 * the critic) over the arena planned at load, then the action: argmax bins or
 * means, or sampled (splitmix64). RT-safe. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#include "arch_pac.h"
#include "nn_gemm_isa.h"

/* ---- forward pieces ---------------------------------------------------- */

/* Multi-head attention: q [nq, ldq] (pre-scaled), k/v [t, ldkv] with head h at
 * column h*dh; out o [nq, d]. s: [nq, t] scratch. */
static void attention(const pac_t *m, const float *q, int ldq, int nq, const float *k,
                      const float *v, int ldkv, int t, float *s, float *o)
{
    nn_attention(m->gk, q, ldq, nq, k, v, ldkv, t, m->heads, m->dh, o, m->d, s);
}

/* x[nq, d] += mlp(LN(x)) */
static void mlp_residual(pac_t *m, const block_t *b, float *x, int nq)
{
    const pac_scratch_t *sc = &m->scratch;
    int d = m->d;
    nn_layernorm(x, nq, d, b->ln_m_w, b->ln_m_b, PAC_LN_EPS, sc->q_norm);
    nn_linear_packed_gelu(sc->q_norm, nq, &b->fc1_w, b->fc1_b, sc->mlp_hidden);   /* GELU fused */
    nn_linear_packed_acc(sc->mlp_hidden, nq, &b->fc2_w, b->fc2_b, x);
}

/* Cross block: x[nq, d] (holds the queries' residual input on entry, the
 * block output on exit) attends to kv_src[t, d]. */
static void cross_attend(pac_t *m, const block_t *b, float *x, int nq, int t)
{
    const pac_scratch_t *sc = &m->scratch;
    int d = m->d;
    const float *q = b->q_const;
    if (!q) {
        nn_layernorm(x, nq, d, b->ln_q_w, b->ln_q_b, PAC_LN_EPS, sc->q_norm);
        nn_linear_packed(sc->q_norm, nq, &b->wq, b->bq, sc->q);
        q = sc->q;
    }
    attention(m, q, d, nq, sc->kv, sc->kv + d, 2 * d, t, sc->scores, sc->attn_out);
    nn_linear_packed_acc(sc->attn_out, nq, &b->wo, b->bo, x);
    mlp_residual(m, b, x, nq);
}

static void cross_block(pac_t *m, const block_t *b, float *x, int nq, const float *kv_src,
                        int t)
{
    const pac_scratch_t *sc = &m->scratch;
    nn_layernorm(kv_src, t, m->d, b->ln_kv_w, b->ln_kv_b, PAC_LN_EPS, sc->kv_norm);
    nn_linear_packed(sc->kv_norm, t, &b->wkv, b->bkv, sc->kv);
    cross_attend(m, b, x, nq, t);
}

/* The policy decoder's cross block by pac_plan_decoder: scratch.dec_x holds the queries on
 * entry, the block output on exit. */
static void dec_block(pac_t *m)
{
    const pac_scratch_t *sc = &m->scratch;
    const block_t *b = &m->dec;
    const int d = m->d, H = m->heads, dh = m->dh, nq = m->n_q, N = m->n_lat, hq = H * nq;
    nn_layernorm(sc->latents, N, d, b->ln_kv_w, b->ln_kv_b, PAC_LN_EPS, sc->kv_norm);
    nn_linear_packed(sc->kv_norm, N, &m->dec_u, NULL, sc->scores);          /* scores^T [N, hq] */
    nn_softmax_cols(m->gk, sc->scores, N, hq, hq);
    nn_gemm_tn(m->gk, sc->scores, hq, hq, N, sc->kv_norm, d, d, sc->dec_ctx, d);   /* [hq, d] */
    for (int h = 0; h < H; h++) {
        nn_linear_packed(sc->dec_ctx + (size_t)h * nq * d, nq, &m->dec_wv[h], b->bkv + d + h * dh,
                         sc->q);
        for (int i = 0; i < nq; i++)
            memcpy(sc->attn_out + (size_t)i * d + (size_t)h * dh, sc->q + (size_t)i * dh,
                   (size_t)dh * sizeof(float));
    }
    nn_linear_packed_acc(sc->attn_out, nq, &b->wo, b->bo, sc->dec_x);
    mlp_residual(m, b, sc->dec_x, nq);
}

static void self_block(pac_t *m, const block_t *b, float *x, int n)
{
    const pac_scratch_t *sc = &m->scratch;
    int d = m->d;
    nn_layernorm(x, n, d, b->ln_q_w, b->ln_q_b, PAC_LN_EPS, sc->q_norm);
    nn_linear_packed(sc->q_norm, n, &b->wqkv, b->bqkv, sc->kv);
    if (b->q_scale != 1.0f)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                sc->kv[(size_t)i * 3 * d + j] *= b->q_scale;
    attention(m, sc->kv, 3 * d, n, sc->kv + d, sc->kv + 2 * d, 3 * d, n, sc->scores, sc->attn_out);
    nn_linear_packed_acc(sc->attn_out, n, &b->wo, b->bo, x);
    mlp_residual(m, b, x, n);
}

/* ---- encoder K/V rows (pac_plan_encoder_kv), vectorised per CPU ------------------ */

/* Camera cells: Y = [K/V part | centred token part] from the kv3 product. */
static inline __attribute__((always_inline)) void cam_kv_body(pac_t *m, const camera_t *cam,
                                                              int p)
{
    const pac_scratch_t *sc = &m->scratch;
    const int d = m->d, d2 = 2 * d, d3 = 3 * d, dv = d / PAC_LANES * PAC_LANES;
    for (int t = 0; t < p; t++) {
        const float *yr = sc->cam_kv3 + (size_t)t * d3, *ca = cam->tok_ca + (size_t)t * d;
        const float *yc = yr + d2, *e = cam->tok_e + (size_t)t * d2;
        float acc[PAC_LANES] = { 0 };
        for (int j = 0; j < dv; j += PAC_LANES)
            for (int l = 0; l < PAC_LANES; l++) {
                float c = yc[j + l] + ca[j + l];
                acc[l] += c * c;
            }
        double ss = 0.0;
        for (int l = 0; l < PAC_LANES; l++)
            ss += acc[l];
        for (int j = dv; j < d; j++) {
            float c = yc[j] + ca[j];
            ss += (double)c * c;
        }
        const float inv = (float)(1.0 / sqrt(ss / d + (double)PAC_LN_EPS));
        float *kv = sc->kv + (size_t)(cam->row0 + t) * d2;
        const float *c0 = m->enc_c0;
        for (int r = 0; r < d2; r++)
            kv[r] = (yr[r] + e[r]) * inv + c0[r];
    }
}

/* Proprioception values: kv_i = (v A_i + B_i) / sigma_i(v) + c0. */
static inline __attribute__((always_inline)) void prop_kv_body(pac_t *m, const float *o)
{
    const pac_scratch_t *sc = &m->scratch;
    const int d = m->d, d2 = 2 * d;
    for (int i = 0; i < m->obs_dim; i++) {
        const float xn = (o[i] - m->mean[i]) / m->std[i];
        const double *qd = m->prop_q + 3 * i;
        const double var = ((double)xn * xn * qd[0] + 2.0 * xn * qd[1] + qd[2]) / d + PAC_LN_EPS;
        const float inv = (float)(1.0 / sqrt(var)), s1 = xn * inv;
        const float *A = m->prop_kv + (size_t)i * 2 * d2, *B = A + d2, *c0 = m->enc_c0;
        float *kv = sc->kv + (size_t)i * d2;
        for (int r = 0; r < d2; r++)
            kv[r] = s1 * A[r] + inv * B[r] + c0[r];
    }
}

NN_CLONES(cam_kv, cam_kv_body, (pac_t *m, const camera_t *cam, int p), (m, cam, p))
NN_CLONES(prop_kv, prop_kv_body, (pac_t *m, const float *o), (m, o))

/* Camera encoder: image -> its token rows of the encoder's K/V (scratch.kv). */
static void camera_tokens(pac_t *m, const camera_t *cam, const uint8_t *img)
{
    const pac_scratch_t *sc = &m->scratch;
    float *cur = sc->feat_a, *tmp = sc->feat_b, *tmp2 = sc->feat_c;
    for (int l = 0; l < cam->n_convs; l++) {
        const conv_t *c = &cam->convs[l];
        if (l == 0) {
            nn_conv_im2col_u8(m->gk, &c->nc, img, sc->im2col);
            nn_conv_gemm(&c->nc, sc->im2col, tmp);
        } else {
            nn_conv_f32(m->gk, &c->nc, cur, tmp, &m->conv_scratch);
        }
        nn_groupnorm_hwc(tmp, c->nc.hout * c->nc.wout, c->nc.cout, m->gn_groups, c->gn_w, c->gn_b,
                         PAC_GN_EPS, m->img_act, tmp);
        float *t = cur;
        cur = tmp;
        tmp = t;
    }
    int p = cam->grid_h * cam->grid_w, ch = cam->channels;
    for (int r = 0; r < cam->n_res; r++) {
        const conv_t *c1 = &cam->res[r][0], *c2 = &cam->res[r][1];
        nn_conv_f32(m->gk, &c1->nc, cur, tmp, &m->conv_scratch);
        nn_groupnorm_hwc(tmp, p, ch, m->gn_groups, c1->gn_w, c1->gn_b, PAC_GN_EPS, m->img_act,
                         tmp);
        nn_conv_f32(m->gk, &c2->nc, tmp, tmp2, &m->conv_scratch);
        nn_groupnorm_hwc(tmp2, p, ch, m->gn_groups, c2->gn_w, c2->gn_b, PAC_GN_EPS,
                         NN_ACT_IDENTITY, tmp2);
        size_t n = (size_t)p * ch;
        for (size_t i = 0; i < n; i++)
            cur[i] += tmp2[i];
        if (m->img_act == NN_ACT_GELU)
            nn_gelu(cur, n);
        else
            nn_activation(m->img_act, cur, n);
    }
    /* K/V rows of the encoder cross-attention (pac_plan_encoder_kv) */
    nn_linear_packed(cur, p, &cam->kv3, NULL, sc->cam_kv3);
    NN_PICK(m->gk, cam_kv, cam_kv_body, (m, cam, p));
}

/* ---- RNG (splitmix64; RT-safe) ----------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1) */
static double rng_unit(uint64_t *s)
{
    return ((double)(rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_normal(uint64_t *s)
{
    double u1 = rng_unit(s), u2 = rng_unit(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- step -------------------------------------------------------------- */

/* Deployment (or sampled) action from the logits. Returns 0 or -ERANGE. */
static int choose_action(pac_t *m, float *a)
{
    const pac_scratch_t *sc = &m->scratch;
    int A = m->action_dim;
    if (m->head == HEAD_CATEGORICAL) {
        int K = m->bins;
        for (int j = 0; j < A; j++) {
            float *l = sc->logits + (size_t)j * K;   /* [A, K] either way */
            int best = 0;
            if (!m->sample) {
                for (int i = 0; i < K; i++) {
                    if (isnan(l[i]))
                        return -ERANGE;
                    if (l[i] > l[best])
                        best = i;
                }
            } else {
                float mx = l[0];
                for (int i = 0; i < K; i++) {
                    if (isnan(l[i]))
                        return -ERANGE;
                    mx = l[i] > mx ? l[i] : mx;
                }
                double sum = 0.0;
                for (int i = 0; i < K; i++)
                    sum += exp((double)(l[i] - mx) / m->temperature);
                double u = rng_unit(&m->rng) * sum, c = 0.0;
                best = K - 1;
                for (int i = 0; i < K; i++) {
                    c += exp((double)(l[i] - mx) / m->temperature);
                    if (u < c) {
                        best = i;
                        break;
                    }
                }
            }
            float v = m->low[j] + (m->high[j] - m->low[j]) * ((float)best / (float)(K - 1));
            a[j] = v < m->low[j] ? m->low[j] : v > m->high[j] ? m->high[j] : v;
        }
        return 0;
    }
    for (int j = 0; j < A; j++) {
        float mean, log_std;
        if (m->n_q == 1) {
            mean = sc->logits[j];
            log_std = sc->logits[A + j];
        } else {
            mean = sc->logits[2 * j];
            log_std = sc->logits[2 * j + 1];
        }
        if (isnan(mean) || isnan(log_std))
            return -ERANGE;
        float u = mean;
        if (m->sample) {
            float ls = log_std < PAC_LOG_STD_MIN ? PAC_LOG_STD_MIN
                     : log_std > PAC_LOG_STD_MAX ? PAC_LOG_STD_MAX : log_std;
            u = mean + m->temperature * expf(ls) * (float)rng_normal(&m->rng);
        }
        a[j] = policy_rescale(tanhf(u), m->low[j], m->high[j]);
        if (isnan(a[j]))
            return -ERANGE;
    }
    return 0;
}

int pac_step(void *impl, const policy_observation_t *obs, float *action, policy_extra_t *extra)
{
    pac_t *m = impl;
    const pac_scratch_t *sc = &m->scratch;
    int d = m->d;
    const float *o = obs->values;
    for (int i = 0; i < m->obs_dim; i++)
        if (!isfinite(o[i]))
            return -EDOM;
    for (int c = 0; c < m->n_cams; c++)
        if (!obs->images[c])
            return -EINVAL;
    if (m->task_kind == POLICY_TASK_ID &&
        (obs->task_id < 0 || obs->task_id >= m->task_count))
        return -EINVAL;
    if (m->task_kind == POLICY_TASK_VECTOR) {
        if (!obs->task_vector)
            return -EINVAL;
        for (int i = 0; i < m->task_dim; i++)
            if (!isfinite(obs->task_vector[i]))
                return -EDOM;
    }
    m->have_logits = 0;
    /* encoder K/V rows, token by token (pac_plan_encoder_kv); proprioception first */
    int d2 = 2 * d;
    NN_PICK(m->gk, prop_kv, prop_kv_body, (m, o));
    for (int c = 0; c < m->n_cams; c++)
        camera_tokens(m, &m->cams[c], obs->images[c]);
    if (m->task_kind == POLICY_TASK_ID) {
        memcpy(sc->task_token, m->task_tab + (size_t)obs->task_id * d,
               (size_t)d * sizeof(float));
    } else if (m->task_kind == POLICY_TASK_VECTOR) {
        float *x = sc->task_token;
        memcpy(x, m->task_add, (size_t)d * sizeof(float));
        cblas_sgemv(CblasRowMajor, CblasNoTrans, d, m->task_dim, 1.0f, m->task_w, m->task_dim,
                    obs->task_vector, 1, 1.0f, x, 1);
    }
    if (m->task_kind != POLICY_TASK_NONE) {
        const block_t *b = &m->enc_cross;
        float *x = sc->task_token;
        nn_layernorm(x, 1, d, b->ln_kv_w, b->ln_kv_b, PAC_LN_EPS, sc->kv_norm);
        nn_linear_packed(sc->kv_norm, 1, &b->wkv, b->bkv, sc->kv + (size_t)m->task_row * d2);
    }
    /* encoder */
    memcpy(sc->latents, m->latents, (size_t)m->n_lat * d * sizeof(float));
    cross_attend(m, &m->enc_cross, sc->latents, m->n_lat, m->n_tokens);
    for (int i = 0; i < m->n_blocks; i++)
        self_block(m, &m->blocks[i], sc->latents, m->n_lat);
    /* policy decoder */
    memcpy(sc->dec_x, m->queries, (size_t)m->n_q * d * sizeof(float));
    if (m->dec_fast)
        dec_block(m);
    else
        cross_block(m, &m->dec, sc->dec_x, m->n_q, sc->latents, m->n_lat);
    nn_layernorm(sc->dec_x, m->n_q, d, m->dec_ln_w, m->dec_ln_b, PAC_LN_EPS, sc->dec_x);
    nn_linear_packed(sc->dec_x, m->n_q, &m->dec_out_w, m->dec_out_b, sc->logits);
    float a[POLICY_MAX_ACTION];
    int rc = choose_action(m, a);
    if (rc)
        return rc;
    m->have_logits = 1;
    float qv = 0.0f;
    if (m->has_critic) {
        float au[POLICY_MAX_ACTION];
        for (int j = 0; j < m->action_dim; j++)
            au[j] = 2.0f * (a[j] - m->low[j]) / (m->high[j] - m->low[j]) - 1.0f;
        memcpy(sc->critic_x, m->c_query, (size_t)d * sizeof(float));
        if (m->c_hidden) {
            /* the MLP action input: critic_x += W2 GELU(W1 a_unit + b1) + b2 */
            nn_linear_packed_gelu(au, 1, &m->c_aw1, m->c_ab1, sc->critic_hidden);
            nn_linear_packed_acc(sc->critic_hidden, 1, &m->c_aw2, m->c_ab2, sc->critic_x);
        } else {
            nn_linear_acc(au, 1, m->action_dim, m->c_aw, m->c_ab, d, sc->critic_x);
        }
        cross_block(m, &m->crit, sc->critic_x, 1, sc->latents, m->n_lat);
        nn_layernorm(sc->critic_x, 1, d, m->c_ln_w, m->c_ln_b, PAC_LN_EPS, sc->critic_x);
        nn_linear_packed(sc->critic_x, 1, &m->c_out_w, m->c_out_b, sc->critic_logits);
        nn_softmax(sc->critic_logits, 1, m->v_bins);
        double q = 0.0;
        for (int i = 0; i < m->v_bins; i++)
            q += (double)sc->critic_logits[i] * m->support[i];
        qv = (float)q;
        if (!isfinite(qv))
            return -ERANGE;
    }
    memcpy(action, a, (size_t)m->action_dim * sizeof(float));
    if (extra) {
        extra->has_q_value = m->has_critic;
        extra->q_value = m->has_critic ? qv : 0.0f;
    }
    return 0;
}
