/* arch_pac_plan — the PAC actor's load-time plans: the encoder's K/V rows
 * straight from the inputs (pac_plan_encoder_kv), the policy decoder's
 * attention folded through the latents (pac_plan_decoder) and the chain of
 * packed layers in step order (pac_plan_link). Init-only. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "arch_pac.h"

/* Encoder cross-attention K/V without the input tokens.
 *
 * Every input token reaches the model only through ln_kv and the fused K/V
 * projection: kv(x) = LN(x) Wkv^T + bkv. With C the centring map
 * (Cx = x - mean(x)), Wg = Wkv diag(gamma_kv) and c0 = beta_kv Wkv^T + bkv,
 *   kv(x) = Wg Cx / sigma(x) + c0,  sigma(x) = sqrt(|Cx|^2 / d + eps),
 * exactly (LayerNorm's biased variance is |Cx|^2 / d). Both token kinds are
 * affine in what the step knows:
 *  - proprioception i (value v, normalised): x = v w_i + a_i, so
 *    kv = (v A_i + B_i) / sigma + c0 with A_i = Wg Cw_i, B_i = Wg Ca_i and
 *    sigma^2 = (v^2 |Cw_i|^2 + 2 v Cw_i.Ca_i + |Ca_i|^2) / d + eps:
 *    O(d) per token instead of a d x 2d product;
 *  - camera cell t (features f_t, channels c): x = P f_t + a_t, so with
 *    P' = C P, kv = (Wg P' f_t + Wg Ca_t) / sigma + c0 and Cx = P' f_t + Ca_t:
 *    one [c -> 3d] product (K/V from c-wide features, plus Cx for sigma)
 *    replaces the [c -> d] projection and the [d -> 2d] K/V product.
 * Products are formed in double at load. Init-only. */
void pac_plan_encoder_kv(pac_loader_t *L)
{
    pac_t *m = L->m;
    const block_t *b = &m->enc_cross;
    int d = m->d, d2 = 2 * d;
    if (L->rc)
        return;
    double *wg = malloc(sizeof(double) * (size_t)d2 * d);
    double *cv = malloc(sizeof(double) * (size_t)d * 2);
    m->enc_c0 = pac_alloc_table(L, (size_t)d2);
    if (!wg || !cv || L->rc) {
        free(wg);
        free(cv);
        if (!L->rc) {
            pacd_errf(L->err, L->errlen, "%s: out of memory", L->path);
            L->rc = -ENOMEM;
        }
        return;
    }
    for (int r = 0; r < d2; r++) {
        double c = b->bkv[r];
        for (int j = 0; j < d; j++) {
            double w = b->wkv_raw[(size_t)r * d + j];
            wg[(size_t)r * d + j] = w * b->ln_kv_w[j];
            c += w * b->ln_kv_b[j];
        }
        m->enc_c0[r] = (float)c;
    }
    /* centre a d-vector (float in) into out (double) */
#define CENTRE(src, out)                                                        \
    do {                                                                        \
        double mu_ = 0.0;                                                       \
        for (int j_ = 0; j_ < d; j_++)                                          \
            mu_ += (src)[j_];                                                   \
        mu_ /= d;                                                               \
        for (int j_ = 0; j_ < d; j_++)                                          \
            (out)[j_] = (double)(src)[j_] - mu_;                                \
    } while (0)
    /* dst[r] = sum_j wg[r, j] v[j] for r < 2d */
#define WG_TIMES(v, dst, stride)                                                \
    for (int r_ = 0; r_ < d2; r_++) {                                           \
        double a_ = 0.0;                                                        \
        const double *w_ = wg + (size_t)r_ * d;                                 \
        for (int j_ = 0; j_ < d; j_++)                                          \
            a_ += w_[j_] * (v)[j_];                                             \
        (dst)[(size_t)r_ * (stride)] = (float)a_;                               \
    }
    if (m->obs_dim > 0) {
        m->prop_kv = pac_alloc_table(L, (size_t)m->obs_dim * 2 * d2);
        m->prop_q = (double *)(void *)pac_alloc_table(L, (size_t)m->obs_dim * 3 * 2);
        for (int i = 0; !L->rc && i < m->obs_dim; i++) {
            double *cw = cv, *ca = cv + d;
            CENTRE(m->prop_w + (size_t)i * d, cw);
            CENTRE(m->prop_add + (size_t)i * d, ca);
            float *A = m->prop_kv + (size_t)i * 2 * d2, *B = A + d2;
            WG_TIMES(cw, A, 1);
            WG_TIMES(ca, B, 1);
            double ww = 0.0, wa = 0.0, aa = 0.0;
            for (int j = 0; j < d; j++) {
                ww += cw[j] * cw[j];
                wa += cw[j] * ca[j];
                aa += ca[j] * ca[j];
            }
            m->prop_q[3 * i] = ww;
            m->prop_q[3 * i + 1] = wa;
            m->prop_q[3 * i + 2] = aa;
        }
    }
    for (int ci = 0; !L->rc && ci < m->n_cams; ci++) {
        camera_t *cam = &m->cams[ci];
        int ch = cam->channels, p = cam->grid_h * cam->grid_w;
        float *w3 = pac_alloc_load_only(L, (size_t)3 * d * ch);
        cam->tok_ca = pac_alloc_table(L, (size_t)p * d);
        cam->tok_e = pac_alloc_table(L, (size_t)p * d2);
        double *col = malloc(sizeof(double) * (size_t)d);
        if (L->rc || !col) {
            free(col);
            if (!L->rc) {
                pacd_errf(L->err, L->errlen, "%s: out of memory", L->path);
                L->rc = -ENOMEM;
            }
            break;
        }
        for (int c = 0; c < ch; c++) {
            /* column c of P' = C P, then column c of Wg P' */
            double mu = 0.0;
            for (int j = 0; j < d; j++)
                mu += cam->proj_raw[(size_t)j * ch + c];
            mu /= d;
            for (int j = 0; j < d; j++) {
                col[j] = cam->proj_raw[(size_t)j * ch + c] - mu;
                w3[((size_t)d2 + j) * ch + c] = (float)col[j];
            }
            WG_TIMES(col, w3 + c, ch);
        }
        for (int t = 0; t < p; t++) {
            double *ca = cv;
            CENTRE(cam->tok_add + (size_t)t * d, ca);
            for (int j = 0; j < d; j++)
                cam->tok_ca[(size_t)t * d + j] = (float)ca[j];
            WG_TIMES(ca, cam->tok_e + (size_t)t * d2, 1);
        }
        free(col);
        pac_pack_weights(L, w3, 3 * d, ch, &cam->kv3);
    }
#undef CENTRE
#undef WG_TIMES
    free(wg);
    free(cv);
}

/* Policy decoder attention without K or V over the latents.
 *
 * Its queries are constants (q_h,i for head h, query i, scaled, from
 * const_queries), so with l_t = LN_kv(latent t):
 *   score[h, i, t] = q_h,i . (Wk_h l_t + bk_h) = l_t . u_h,i + q_h,i . bk_h,
 * u_h,i = Wk_h^T q_h,i precomputed, and the last term is the same for every
 * t, which the softmax ignores. The attention output is
 *   o_h,i = sum_t a_h,i,t (Wv_h l_t + bv_h) = Wv_h (sum_t a_h,i,t l_t) + bv_h
 * as each softmax row sums to 1. So a step does [N, d] x [d, heads * n_q]
 * for the scores, [heads * n_q, N] x [N, d] for the weighted latents and
 * heads products [n_q, d] x [d, dh], instead of the [N, d] x [d, 2d] K/V
 * product: exact up to float rounding. Used when heads * n_q <= d.
 * Init-only. */
void pac_plan_decoder(pac_loader_t *L)
{
    pac_t *m = L->m;
    const block_t *b = &m->dec;
    const int d = m->d, H = m->heads, dh = m->dh, nq = m->n_q, hq = H * nq;
    if (L->rc || hq > d || !b->q_const || !b->wkv_raw)
        return;
    float *u = pac_alloc_load_only(L, (size_t)hq * d);
    if (L->rc)
        return;
    for (int h = 0; h < H; h++)
        for (int i = 0; i < nq; i++) {
            const float *q = b->q_const + (size_t)i * d + (size_t)h * dh;
            float *ur = u + ((size_t)h * nq + i) * d;
            for (int j = 0; j < d; j++) {
                double acc = 0.0;
                for (int c = 0; c < dh; c++)
                    acc += (double)q[c] * b->wkv_raw[((size_t)h * dh + c) * d + j];
                ur[j] = (float)acc;
            }
        }
    pac_pack_weights(L, u, hq, d, &m->dec_u);
    for (int h = 0; h < H; h++)
        pac_pack_weights(L, b->wkv_raw + ((size_t)d + (size_t)h * dh) * d, dh, d, &m->dec_wv[h]);
    m->dec_fast = !L->rc;
}

/* Link every packed layer to the one pac_step runs after it (nn_packed_t.then),
 * so the kernel prefetches the next layer's first panel while this one's last
 * panel runs: the order below is pac_step's (a new nn_linear_packed* call in
 * the step needs its link here, or only the prefetch is lost). A hint only
 * (the results do not depend on it). Init-only. */
static void link_one(nn_packed_t **prev, nn_packed_t *p)
{
    if (!p->w || p->in <= 0 || p->out <= 0)
        return;   /* not packed; layers packed but not run (wq with constant
                     queries) are left out by the callers */
    if (*prev)
        (*prev)->then = p;
    *prev = p;
}

static void link_conv(nn_packed_t **prev, nn_conv_t *c)
{
    if (c->winograd)
        for (int xi = 0; xi < 16; xi++)
            link_one(prev, &c->wu[xi]);
    else
        link_one(prev, &c->w);
}

static void link_block(nn_packed_t **prev, block_t *b, int self, int kv)
{
    if (self)
        link_one(prev, &b->wqkv);
    if (kv)
        link_one(prev, &b->wkv);
    if (!self && !b->q_const)
        link_one(prev, &b->wq);
    link_one(prev, &b->wo);
    link_one(prev, &b->fc1_w);
    link_one(prev, &b->fc2_w);
}

void pac_plan_link(pac_t *m)
{
    nn_packed_t *prev = NULL;
    for (int c = 0; c < m->n_cams; c++) {
        camera_t *cam = &m->cams[c];
        for (int l = 0; l < cam->n_convs; l++)
            link_conv(&prev, &cam->convs[l].nc);
        for (int r = 0; r < cam->n_res; r++) {
            link_conv(&prev, &cam->res[r][0].nc);
            link_conv(&prev, &cam->res[r][1].nc);
        }
        link_one(&prev, &cam->kv3);
    }
    if (m->task_kind != POLICY_TASK_NONE)
        link_one(&prev, &m->enc_cross.wkv);
    link_block(&prev, &m->enc_cross, 0, 0);
    for (int i = 0; i < m->n_blocks; i++)
        link_block(&prev, &m->blocks[i], 1, 0);
    if (m->dec_fast) {
        link_one(&prev, &m->dec_u);
        for (int h = 0; h < m->heads; h++)
            link_one(&prev, &m->dec_wv[h]);
        link_block(&prev, &m->dec, 0, 0);
    } else {
        link_block(&prev, &m->dec, 0, 1);
    }
    link_one(&prev, &m->dec_out_w);
    if (m->has_critic) {
        if (m->c_hidden) {
            link_one(&prev, &m->c_aw1);
            link_one(&prev, &m->c_aw2);
        }
        link_block(&prev, &m->crit, 0, 1);
        link_one(&prev, &m->c_out_w);
    }
}
