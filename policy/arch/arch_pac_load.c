/* policy_pac — the Perceiver Actor-Critic (PAC) actor, architecture "pac"
 * (docs/checkpoint.md "Architecture pac"; the PyTorch twin is
 * policy/torch/pacd_torch/pac.py and computes the same).
 *
 * Every size comes from the checkpoint metadata. Plan at load: all weights are
 * converted to F32 and laid out for the step (conv weights reordered to
 * channels-last patches with the 1/255 image scale folded into the first
 * layer, 3x3 stride-1 convolutions transformed for Winograd F(2x2, 3x3), K/V
 * and Q/K/V projections fused, the constant queries of the encoder and the
 * policy decoder projected once, every matrix packed for the matrix kernel
 * (policy_options_t.kernel; "auto" takes nn_gemm_best: AVX-512 panels with
 * one thread where the CPU has AVX-512, else AVX2 panels where it has AVX2 +
 * FMA, OpenBLAS otherwise or with more threads; "amx", only on request, runs
 * the linear layers and convolutions on AMX bf16x3 tiles and the rest on
 * AVX-512), the exact algebraic
 * shortcuts planned (enc_kv_plan: the encoder's K/V straight
 * from proprioception values and camera features; dec_plan: the policy
 * decoder's attention without K/V over the latents), the worst-case scratch
 * arena is reserved and one warm-up step runs. policy_step then only uses
 * the arena.
 *
 * Layout: token matrices are [tokens, width] row-major; feature maps are
 * channels-last [H * W, C]; attention scores one head at a time, transposed
 * [t, nq] on the packed (AVX-512 / AVX2) paths (nn_attention). Element-wise
 * loops run as clones for the chosen kernel's instruction set (NN_CLONES).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cblas.h>

#include "policy_impl.h"
#include "nn.h"
#include "nn_conv.h"
#include "nn_gemm_isa.h"
#include "nn_slab.h"

#define PAC_MAX_WIDTH 4096
#define PAC_MAX_HEADS 64
#define PAC_MAX_LATENTS 1024
#define PAC_MAX_BLOCKS 64
#define PAC_MAX_RATIO 16
#define PAC_MAX_CONVS 8
#define PAC_MAX_RES 8
#define PAC_MAX_CHANNELS 2048
#define PAC_MAX_KERNEL 15
#define PAC_MAX_BINS 4096
#define PAC_MAX_TASKS 65536
#define PAC_MAX_TASK_DIM 4096
#define PAC_MIN_STD 1e-6f      /* as the mlp's obs_norm */
#define PAC_LN_EPS 1e-5f       /* PyTorch nn.LayerNorm default */
#define PAC_GN_EPS 1e-5f       /* PyTorch nn.GroupNorm default */
#define PAC_LOG_STD_MIN (-5.0f)
#define PAC_LOG_STD_MAX 2.0f

typedef enum { HEAD_CATEGORICAL = 1, HEAD_GAUSSIAN = 2 } pac_head_t;

/* A convolution layer of the image encoder and the GroupNorm after it. */
typedef struct {
    nn_conv_t nc;        /* Winograd (nc.winograd) for 3x3, stride 1, pad 1 on floats */
    float *gn_w, *gn_b;  /* [cout] */
} conv_t;

typedef struct {
    int field;           /* index in spec->fields */
    int n_convs, n_res;
    conv_t convs[PAC_MAX_CONVS];
    conv_t res[PAC_MAX_RES][2];
    int grid_h, grid_w, channels;
    float *proj_raw;     /* [d, channels] (load only: NULL after) */
    float *tok_add;      /* [grid_h * grid_w, d]: proj bias + pos_row + pos_col + modality
                            (load only: NULL after) */
    /* encoder cross-attention K/V straight from the features (see enc_kv_plan) */
    nn_packed_t kv3;     /* [3d, channels]: Wg P' (K then V), then P' */
    float *tok_ca;       /* [grid_h * grid_w, d]: centred tok_add */
    float *tok_e;        /* [grid_h * grid_w, 2d]: Wg centred tok_add */
    int row0;            /* first token row */
} camera_t;

/* pre-LayerNorm cross-attention block (also the self-attention block, with
 * wqkv fused) */
typedef struct {
    float *ln_q_w, *ln_q_b, *ln_kv_w, *ln_kv_b;
    nn_packed_t wq;      /* [d, d] pre-scaled by 1/sqrt(dh) (cross, non-constant queries) */
    nn_packed_t wkv;     /* [2d, d]: k then v (cross) */
    nn_packed_t wqkv;    /* [3d, d]: q (pre-scaled unless q_scale != 1), k, v (self) */
    float q_scale;       /* self: 1, or 1/sqrt(dh) applied to q after wqkv (AMX with
                            bf16 weights: pre-scaling would make them inexact) */
    nn_packed_t wo, fc1_w, fc2_w;
    float *bq, *bkv, *bqkv, *bo;
    float *ln_m_w, *ln_m_b;
    float *fc1_b, *fc2_b;
    float *wkv_raw;      /* [2d, d] k then v, unpacked (load only: NULL after) */
    float *q_const;      /* [nq, d] projected constant queries (pre-scaled), or NULL */
} block_t;

typedef struct {
    int d, heads, dh, n_lat, n_blocks, ratio;
    nn_gemm_kind_t gk;   /* matrix kernel, chosen at load */
    int obs_dim, action_dim;
    int n_tokens;
    /* observation */
    float *mean, *std;
    float *prop_w;       /* [obs_dim, d] (load only: NULL after) */
    float *prop_add;     /* [obs_dim, d]: bias + pos + modality (load only: NULL after) */
    float *prop_kv;      /* [obs_dim, 2, 2d]: A_i, B_i (see enc_kv_plan) */
    double *prop_q;      /* [obs_dim, 3]: |Cw_i|^2, Cw_i.Ca_i, |Ca_i|^2 */
    float *enc_c0;       /* [2d]: beta_kv Wkv^T + bkv */
    int n_cams;
    camera_t cams[POLICY_MAX_FIELDS];
    nn_act_t img_act;
    int gn_groups;
    int task_kind, task_count, task_dim;
    float *task_tab;     /* [task_count, d] embedding + modality */
    float *task_w, *task_add;   /* [d, task_dim], [d] bias + modality */
    int task_row;
    /* encoder */
    float *latents;      /* [n_lat, d] */
    block_t enc_cross;
    block_t *blocks;
    /* policy decoder */
    int n_q, out_cols;
    pac_head_t head;
    int bins;
    float *queries;      /* [n_q, d] */
    block_t dec;
    int dec_fast;        /* dec_plan applies */
    nn_packed_t dec_u;   /* [heads * n_q, d]: Wk_h^T q_h,i (see dec_plan) */
    nn_packed_t dec_wv[PAC_MAX_HEADS];   /* [dh, d] each: Wv rows of head h */
    float *dec_ln_w, *dec_ln_b, *dec_out_b;
    nn_packed_t dec_out_w;
    float low[POLICY_MAX_ACTION], high[POLICY_MAX_ACTION];
    /* critic */
    int has_critic, v_bins;
    float v_min, v_max;
    float *c_query, *c_aw, *c_ab;   /* [d], [d, action_dim], [d] */
    block_t crit;
    float *c_ln_w, *c_ln_b, *c_out_b, *support;
    nn_packed_t c_out_w;
    /* sampling */
    int sample;
    float temperature;
    uint64_t rng;
    /* weights storage */
    nn_slab_t wslab;     /* packed weights (pk_alloc) */
    nn_slab_t cslab;     /* the other tables a step reads (wnew) */
    /* plan */
    nn_arena_t *arena;
    size_t o_x, o_lx, o_kv, o_s, o_o, o_lat, o_lq, o_q, o_h, o_z, o_log, o_cl, o_xn, o_zc;
    size_t o_cols, o_fa, o_fb, o_fc, o_y, o_dz, o_wv, o_wz;
    float *x, *lx, *kv, *s, *o, *lat, *lq, *q, *h, *z, *logits, *cl, *xn, *zc;
    float *cols, *fa, *fb, *fc, *y, *dz, *wv, *wz;
    nn_conv_scratch_t conv_scratch;   /* cols, wv, wz */
    int have_logits;
} pac_t;

static int pac_step(void *impl, const policy_observation_t *obs, float *action,
                    policy_extra_t *extra);

static void pac_destroy(void **impl_p)
{
    if (!impl_p || !*impl_p)
        return;
    pac_t *m = *impl_p;
    nn_slab_free(&m->wslab);
    nn_slab_free(&m->cslab);
    free(m->blocks);
    nn_arena_destroy(&m->arena);
    free(m);
    *impl_p = NULL;
}

/* ---- weights --------------------------------------------------------- */

typedef struct {
    pac_t *m;
    ckpt_t *ck;
    const char *path;
    char *err;
    size_t errlen;
    int rc;
    float **tmp;         /* load-only memory (tnew), freed when pac_load returns */
    int n_tmp, cap_tmp;
    size_t used, budget; /* bytes allocated so far / allowed (policy_options_t.max_load_bytes) */
} ld_t;

/* Count bytes against the load budget before allocating them: 0, or -1 with
 * L->rc = -EFBIG and the message in L->err. Init-only. */
static int ld_charge(ld_t *L, size_t bytes, const char *what)
{
    if (L->rc)
        return -1;
    if (bytes <= L->budget && L->used <= L->budget - bytes) {
        L->used += bytes;
        return 0;
    }
    policy_errf(L->err, L->errlen, "%s: loading needs more than %zu MiB (at the %s); the "
                "metadata (image sizes, width, observation size) is out of proportion to the "
                "tensors in the file", L->path, L->budget >> 20, what);
    L->rc = -EFBIG;
    return -1;
}

/* Room for one more entry in a list of n of *cap pointers (ld_t.tmp, freed
 * by ld_free_tmp): 0 or -1. Init-only. */
static int list_reserve(float ***list, int n, int *cap)
{
    if (n < *cap)
        return 0;
    int c = *cap ? *cap * 2 : 64;
    float **a = realloc(*list, sizeof *a * (size_t)c);
    if (!a)
        return -1;
    *list = a;
    *cap = c;
    return 0;
}

/* Load-only memory of n floats, zeroed (raw weights before packing, transforms):
 * freed when pac_load returns (ld_free_tmp). NULL and L->rc = -ENOMEM when out
 * of memory. Init-only. */
static float *tnew(ld_t *L, size_t n)
{
    if (L->rc)
        return NULL;
    if (list_reserve(&L->tmp, L->n_tmp, &L->cap_tmp) != 0)
        goto oom;
    if (n > SIZE_MAX / sizeof(float) / 2) {
        (void)ld_charge(L, SIZE_MAX, "load-only weights");
        return NULL;
    }
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + NN_ARENA_ALIGN - 1) / NN_ARENA_ALIGN * NN_ARENA_ALIGN;
    if (ld_charge(L, bytes, "load-only weights"))
        return NULL;
    float *p = aligned_alloc(NN_ARENA_ALIGN, bytes);
    if (!p)
        goto oom;
    memset(p, 0, bytes);
    L->tmp[L->n_tmp++] = p;
    return p;
oom:
    policy_errf(L->err, L->errlen, "%s: out of memory for %zu weights", L->path, n);
    L->rc = -ENOMEM;
    return NULL;
}

/* Free the tnew memory (pac_load, on every return). Init-only: malloc_trim
 * walks the heap. */
static void ld_free_tmp(ld_t *L)
{
    for (int i = 0; i < L->n_tmp; i++)
        free(L->tmp[i]);
    free(L->tmp);
    L->tmp = NULL;
    L->n_tmp = L->cap_tmp = 0;
#if defined(__GLIBC__)
    /* glibc keeps freed heap pages mapped (its mmap threshold grows with
     * every large free): give the raw weights' pages back to the system */
    (void)malloc_trim(0);
#endif
}

/* Memory that steps read. Every step reads nearly all the packed weights
 * (pac-s ~23 MB with AMX's hi + lo halves, pac-m ~130 MB; a few serve only
 * the load, e.g. the projections of constant queries) and some MB of other tables
 * (biases, norms, the encoder's K/V tables of enc_kv_plan), so they are
 * carved, in load order (about the step's order), out of huge-page slabs
 * (nn_slab.h), two chains: packed weights and the other tables. The floats
 * come zeroed. NULL and L->rc = -ENOMEM when out of memory. Init-only. */
static float *slab_alloc(ld_t *L, nn_slab_t *s, size_t n)
{
    const size_t bytes = nn_slab_request_bytes(n);
    if (!bytes) {
        (void)ld_charge(L, SIZE_MAX, "weight tables");
        return NULL;
    }
    if (L->rc || ld_charge(L, bytes, "weight tables"))
        return NULL;
    float *p = nn_slab_alloc(s, n);
    if (!p) {
        policy_errf(L->err, L->errlen, "%s: out of memory for %zu weights", L->path, n);
        L->rc = -ENOMEM;
    }
    return p;
}

/* n floats (zeroed) that steps read, other than packed weights; NULL and
 * L->rc = -ENOMEM when out of memory. Init-only. */
static float *wnew(ld_t *L, size_t n)
{
    return slab_alloc(L, &L->m->cslab, n);
}

/* n floats for packed weights (as wnew). Init-only. */
static float *pk_alloc(ld_t *L, size_t n)
{
    return slab_alloc(L, &L->m->wslab, n);
}

/* Read tensor `name` of the given shape into new F32 memory: memory steps
 * read (wnew) or, tmp 1, load-only memory (tnew). NULL with L->rc set (and
 * the message in L->err) when the tensor is missing, has another shape or
 * dtype, holds a non-finite value (ckpt_read_f32), or memory runs out.
 * Init-only. */
static float *rd_mem(ld_t *L, int tmp, const char *name, int ndim, int64_t d0, int64_t d1,
                     int64_t d2, int64_t d3)
{
    if (L->rc)
        return NULL;
    int64_t shape[4] = { d0, d1, d2, d3 };
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    /* the shape (from the metadata) must be that of a tensor in the file
     * before memory of its size is allocated */
    int rc = ckpt_check_shape(L->ck, name, ndim, shape, L->err, L->errlen);
    if (rc) {
        L->rc = rc;
        return NULL;
    }
    float *p = tmp ? tnew(L, n) : wnew(L, n);
    if (!p)
        return NULL;
    rc = ckpt_read_f32(L->ck, name, ndim, shape, p, L->err, L->errlen);
    if (rc)
        L->rc = rc;
    return rc ? NULL : p;
}

/* A tensor that steps read / one read only while loading. */
static float *rd(ld_t *L, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                 int64_t d3)
{
    return rd_mem(L, 0, name, ndim, d0, d1, d2, d3);
}

static float *rdt(ld_t *L, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                  int64_t d3)
{
    return rd_mem(L, 1, name, ndim, d0, d1, d2, d3);
}

/* rd_mem of a tensor named by a format (at most 2 dimensions); rdf: memory
 * steps read, rdft: load-only. */
static float *rdf_mem(ld_t *L, int tmp, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static float *rdf_mem(ld_t *L, int tmp, int ndim, int64_t d0, int64_t d1, const char *fmt, ...)
{
    char name[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return rd_mem(L, tmp, name, ndim, d0, d1, 0, 0);
}
#define rdf(L, ...) rdf_mem((L), 0, __VA_ARGS__)
#define rdft(L, ...) rdf_mem((L), 1, __VA_ARGS__)

/* Pack w[out, in] for the step's kernel into new memory (a copy for BLAS),
 * so that w itself can be load-only. */
static void pk(ld_t *L, float *w, int out, int in, nn_packed_t *p)
{
    if (L->rc)
        return;
    float *dst = pk_alloc(L, nn_pack_floats_w(L->m->gk, w, out, in));
    if (!dst)
        return;
    int rc = nn_pack(L->m->gk, w, out, in, dst, p);
    if (rc) {
        policy_errf(L->err, L->errlen, "%s: cannot pack a %dx%d weight matrix for the %s "
                    "kernel", L->path, out, in, nn_gemm_name(L->m->gk));
        L->rc = rc;
    }
}

static float *rdpk(ld_t *L, nn_packed_t *p, int out, int in, const char *fmt, const char *pre)
{
    char name[192];
    snprintf(name, sizeof name, fmt, pre);
    float *w = rdt(L, name, 2, out, in, 0, 0);
    pk(L, w, out, in, p);
    return w;
}

/* Load one block (prefix.ln_q/ln_kv/attn/ln_mlp/mlp for cross; ln1/attn/ln2/mlp
 * for self). */
static void load_block(ld_t *L, block_t *b, const char *pre, int self)
{
    pac_t *m = L->m;
    int d = m->d, hd = d * m->ratio;
    float scale = 1.0f / sqrtf((float)m->dh);
    if (self) {
        b->ln_q_w = rdf(L, 1, d, 0, "%s.ln1.weight", pre);
        b->ln_q_b = rdf(L, 1, d, 0, "%s.ln1.bias", pre);
        b->ln_m_w = rdf(L, 1, d, 0, "%s.ln2.weight", pre);
        b->ln_m_b = rdf(L, 1, d, 0, "%s.ln2.bias", pre);
    } else {
        b->ln_q_w = rdf(L, 1, d, 0, "%s.ln_q.weight", pre);
        b->ln_q_b = rdf(L, 1, d, 0, "%s.ln_q.bias", pre);
        b->ln_kv_w = rdf(L, 1, d, 0, "%s.ln_kv.weight", pre);
        b->ln_kv_b = rdf(L, 1, d, 0, "%s.ln_kv.bias", pre);
        b->ln_m_w = rdf(L, 1, d, 0, "%s.ln_mlp.weight", pre);
        b->ln_m_b = rdf(L, 1, d, 0, "%s.ln_mlp.bias", pre);
    }
    float *wq = rdft(L, 2, d, d, "%s.attn.q.weight", pre);
    float *bq = rdf(L, 1, d, 0, "%s.attn.q.bias", pre);
    float *wk = rdft(L, 2, d, d, "%s.attn.k.weight", pre);
    float *bk = rdf(L, 1, d, 0, "%s.attn.k.bias", pre);
    float *wv = rdft(L, 2, d, d, "%s.attn.v.weight", pre);
    float *bv = rdf(L, 1, d, 0, "%s.attn.v.bias", pre);
    (void)rdpk(L, &b->wo, d, d, "%s.attn.o.weight", pre);
    b->bo = rdf(L, 1, d, 0, "%s.attn.o.bias", pre);
    (void)rdpk(L, &b->fc1_w, hd, d, "%s.mlp.fc1.weight", pre);
    b->fc1_b = rdf(L, 1, hd, 0, "%s.mlp.fc1.bias", pre);
    (void)rdpk(L, &b->fc2_w, d, hd, "%s.mlp.fc2.weight", pre);
    b->fc2_b = rdf(L, 1, d, 0, "%s.mlp.fc2.bias", pre);
    if (L->rc)
        return;
    size_t dd = (size_t)d * d;
    /* AMX keeps bf16 weights at half the bytes only while they stay bf16:
     * then a scale that is not a power of two goes onto q after the product */
    int e2;
    b->q_scale = 1.0f;
    if (self && m->gk == NN_GEMM_AMX && frexpf(scale, &e2) != 0.5f && nn_all_bf16(wq, dd) &&
        nn_all_bf16(wk, dd) && nn_all_bf16(wv, dd))
        b->q_scale = scale;
    if (b->q_scale == 1.0f) {
        for (size_t i = 0; i < dd; i++)
            wq[i] *= scale;
        for (int i = 0; i < d; i++)
            bq[i] *= scale;
    }
    if (self) {
        float *wqkv = tnew(L, 3 * dd);
        b->bqkv = wnew(L, 3 * (size_t)d);
        if (L->rc)
            return;
        memcpy(wqkv, wq, dd * sizeof(float));
        memcpy(wqkv + dd, wk, dd * sizeof(float));
        memcpy(wqkv + 2 * dd, wv, dd * sizeof(float));
        pk(L, wqkv, 3 * d, d, &b->wqkv);
        memcpy(b->bqkv, bq, (size_t)d * sizeof(float));
        memcpy(b->bqkv + d, bk, (size_t)d * sizeof(float));
        memcpy(b->bqkv + 2 * d, bv, (size_t)d * sizeof(float));
    } else {
        pk(L, wq, d, d, &b->wq);
        b->bq = bq;
        float *wkv = tnew(L, 2 * dd);
        b->bkv = wnew(L, 2 * (size_t)d);
        if (L->rc)
            return;
        memcpy(wkv, wk, dd * sizeof(float));
        memcpy(wkv + dd, wv, dd * sizeof(float));
        b->wkv_raw = wkv;
        pk(L, wkv, 2 * d, d, &b->wkv);
        memcpy(b->bkv, bk, (size_t)d * sizeof(float));
        memcpy(b->bkv + d, bv, (size_t)d * sizeof(float));
    }
}

/* Project constant queries q0 [nq, d] once: q_const = LN(q0) Wq^T + bq. */
static void const_queries(ld_t *L, block_t *b, const float *q0, int nq)
{
    pac_t *m = L->m;
    float *t = tnew(L, (size_t)nq * m->d);
    b->q_const = wnew(L, (size_t)nq * m->d);
    if (L->rc)
        return;
    nn_layernorm(q0, nq, m->d, b->ln_q_w, b->ln_q_b, PAC_LN_EPS, t);
    nn_linear_packed(t, nq, &b->wq, b->bq, b->q_const);
}

/* Conv layer weights: torch [cout, cin, k, k] -> [cout, (kh, kw, cin)], or
 * the Winograd transform when c->nc.winograd; GroupNorm parameters when
 * gwname is not NULL. */
static void load_conv(ld_t *L, conv_t *c, float wscale, const char *wname, const char *bname,
                      const char *gwname, const char *gbname)
{
    nn_conv_t *nc = &c->nc;
    int k = nc->k, ci = nc->cin, co = nc->cout;
    float *w = rdt(L, wname, 4, co, ci, k, k);
    nc->b = rd(L, bname, 1, co, 0, 0, 0);
    if (gwname) {
        c->gn_w = rd(L, gwname, 1, co, 0, 0, 0);
        c->gn_b = rd(L, gbname, 1, co, 0, 0, 0);
    }
    /* AMX with weights that are all bf16 (a BF16 checkpoint): im2col keeps
     * them bf16, so they are stored and streamed at 2 bytes each (9 per
     * channel pair, against Winograd's 16 transformed floats, which are not
     * bf16 any more) */
    if (nc->winograd && w && L->m->gk == NN_GEMM_AMX &&
        nn_all_bf16(w, (size_t)co * ci * k * k))
        nc->winograd = 0;
    if (nc->winograd) {
        float *u = tnew(L, (size_t)16 * co * ci);
        if (L->rc)
            return;
        nn_conv_winograd_weights(w, co, ci, wscale, u);
        for (int xi = 0; xi < 16; xi++)
            pk(L, u + (size_t)xi * co * ci, co, ci, &nc->wu[xi]);
        return;
    }
    float *cw = tnew(L, (size_t)co * k * k * ci);
    if (L->rc)
        return;
    nn_conv_im2col_weights(w, co, ci, k, wscale, cw);
    pk(L, cw, co, k * k * ci, &nc->w);
}

/* ---- metadata ---------------------------------------------------------- */

static int get_int(ld_t *L, json_t *obj, const char *ctx, const char *key, long lo, long hi,
                   int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': %s\"%s\" must be an integer "
                    "in [%ld, %ld]", L->path, ctx, key, lo, hi);
        return L->rc = -EINVAL;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int check_keys(ld_t *L, json_t *obj, const char *ctx, const char *const *known)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok) {
            char list[256] = "";
            for (int i = 0; known[i]; i++) {
                strncat(list, known[i], sizeof list - strlen(list) - 1);
                if (known[i + 1])
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': %sunknown key '%s' "
                        "(this pacd knows %s)", L->path, ctx, key, list);
            return L->rc = -EINVAL;
        }
    }
    return 0;
}

typedef struct {
    int n_convs, k[PAC_MAX_CONVS], s[PAC_MAX_CONVS], p[PAC_MAX_CONVS], c[PAC_MAX_CONVS];
    int n_res;
} img_cfg_t;

static int parse_model(ld_t *L, const char *text, const policy_spec_t *spec, img_cfg_t *img)
{
    pac_t *m = L->m;
    if (!text) {
        policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model' is missing; a pac checkpoint "
                    "needs {\"width\", \"heads\", \"latents\", \"blocks\", ...} "
                    "(docs/checkpoint.md)", L->path);
        return L->rc = -EINVAL;
    }
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': not a JSON object%s%s",
                    L->path, root ? "" : ": ", root ? "" : jerr.text);
        json_decref(root);
        return L->rc = -EINVAL;
    }
    static const char *const top[] = { "width", "heads", "latents", "blocks", "mlp_ratio",
        "image_encoder", "task", "queries", "head", "critic", NULL };
    if (check_keys(L, root, "", top) ||
        get_int(L, root, "", "width", 1, PAC_MAX_WIDTH, &m->d) ||
        get_int(L, root, "", "heads", 1, PAC_MAX_HEADS, &m->heads) ||
        get_int(L, root, "", "latents", 1, PAC_MAX_LATENTS, &m->n_lat) ||
        get_int(L, root, "", "blocks", 0, PAC_MAX_BLOCKS, &m->n_blocks) ||
        get_int(L, root, "", "mlp_ratio", 1, PAC_MAX_RATIO, &m->ratio))
        goto fail;
    if (m->d % m->heads) {
        policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': width %d is not a multiple "
                    "of heads %d", L->path, m->d, m->heads);
        goto bad;
    }
    m->dh = m->d / m->heads;
    /* image encoder */
    json_t *ie = json_object_get(root, "image_encoder");
    if (spec->n_images > 0 && !json_is_object(ie)) {
        policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': the observation has %d "
                    "camera field(s) but \"image_encoder\" is not an object", L->path,
                    spec->n_images);
        goto bad;
    }
    if (spec->n_images > 0) {
        static const char *const ik[] = { "convs", "groups", "activation", "residual_blocks",
                                          NULL };
        if (check_keys(L, ie, "image_encoder: ", ik) ||
            get_int(L, ie, "image_encoder: ", "groups", 1, PAC_MAX_CHANNELS, &m->gn_groups) ||
            get_int(L, ie, "image_encoder: ", "residual_blocks", 0, PAC_MAX_RES, &img->n_res))
            goto fail;
        const char *act = json_string_value(json_object_get(ie, "activation"));
        if (!act || nn_act_parse(act, &m->img_act) ||
            (m->img_act != NN_ACT_RELU && m->img_act != NN_ACT_GELU)) {
            policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': image_encoder: "
                        "\"activation\" must be \"relu\" or \"gelu\"", L->path);
            goto bad;
        }
        json_t *convs = json_object_get(ie, "convs");
        if (!json_is_array(convs) || json_array_size(convs) < 1 ||
            json_array_size(convs) > PAC_MAX_CONVS) {
            policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': image_encoder: "
                        "\"convs\" must be an array of 1-%d layers", L->path, PAC_MAX_CONVS);
            goto bad;
        }
        img->n_convs = (int)json_array_size(convs);
        for (int i = 0; i < img->n_convs; i++) {
            json_t *c = json_array_get(convs, (size_t)i);
            char ctx[64];
            snprintf(ctx, sizeof ctx, "image_encoder: convs[%d]: ", i);
            static const char *const ck[] = { "kernel", "stride", "padding", "channels", NULL };
            if (!json_is_object(c)) {
                policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': %snot an object",
                            L->path, ctx);
                goto bad;
            }
            if (check_keys(L, c, ctx, ck) ||
                get_int(L, c, ctx, "kernel", 1, PAC_MAX_KERNEL, &img->k[i]) ||
                get_int(L, c, ctx, "stride", 1, PAC_MAX_KERNEL, &img->s[i]) ||
                get_int(L, c, ctx, "padding", 0, PAC_MAX_KERNEL - 1, &img->p[i]) ||
                get_int(L, c, ctx, "channels", 1, PAC_MAX_CHANNELS, &img->c[i]))
                goto fail;
            if (img->c[i] % m->gn_groups) {
                policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': %schannels %d is "
                            "not a multiple of the GroupNorm groups %d", L->path, ctx,
                            img->c[i], m->gn_groups);
                goto bad;
            }
        }
    }
    /* task */
    json_t *task = json_object_get(root, "task");
    const char *tt = task ? json_string_value(json_object_get(task, "type")) : "none";
    static const char *const tk[] = { "type", "count", "dim", NULL };
    if (task && (!json_is_object(task) || check_keys(L, task, "task: ", tk)))
        goto bad_task;
    if (tt && strcmp(tt, "none") == 0) {
        m->task_kind = 0;
    } else if (tt && strcmp(tt, "embedding") == 0) {
        m->task_kind = 1;
        if (get_int(L, task, "task: ", "count", 1, PAC_MAX_TASKS, &m->task_count))
            goto fail;
    } else if (tt && strcmp(tt, "vector") == 0) {
        m->task_kind = 2;
        if (get_int(L, task, "task: ", "dim", 1, PAC_MAX_TASK_DIM, &m->task_dim))
            goto fail;
    } else {
        goto bad_task;
    }
    /* queries, head */
    const char *qs = json_string_value(json_object_get(root, "queries"));
    if (!json_object_get(root, "queries") || (qs && strcmp(qs, "per_dimension") == 0)) {
        m->n_q = spec->action_dim;
    } else if (qs && strcmp(qs, "single") == 0) {
        m->n_q = 1;
    } else {
        policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': \"queries\" must be "
                    "\"per_dimension\" or \"single\"", L->path);
        goto bad;
    }
    json_t *head = json_object_get(root, "head");
    const char *ht = json_string_value(json_object_get(head, "type"));
    static const char *const hk[] = { "type", "bins", NULL };
    if (!json_is_object(head) || check_keys(L, head, "head: ", hk))
        goto bad_head;
    if (ht && strcmp(ht, "categorical") == 0) {
        m->head = HEAD_CATEGORICAL;
        if (get_int(L, head, "head: ", "bins", 2, PAC_MAX_BINS, &m->bins))
            goto fail;
        m->out_cols = m->n_q == 1 ? m->bins * spec->action_dim : m->bins;
    } else if (ht && strcmp(ht, "gaussian") == 0 && !json_object_get(head, "bins")) {
        m->head = HEAD_GAUSSIAN;
        m->out_cols = m->n_q == 1 ? 2 * spec->action_dim : 2;
    } else {
        goto bad_head;
    }
    /* critic */
    json_t *cr = json_object_get(root, "critic");
    if (cr && !json_is_null(cr)) {
        static const char *const crk[] = { "value_bins", "value_min", "value_max", NULL };
        if (!json_is_object(cr) || check_keys(L, cr, "critic: ", crk) ||
            get_int(L, cr, "critic: ", "value_bins", 2, PAC_MAX_BINS, &m->v_bins))
            goto bad_critic;
        json_t *lo = json_object_get(cr, "value_min"), *hi = json_object_get(cr, "value_max");
        if (!json_is_number(lo) || !json_is_number(hi) ||
            !isfinite(json_number_value(lo)) || !isfinite(json_number_value(hi)) ||
            !(json_number_value(lo) < json_number_value(hi)) ||
            fabs(json_number_value(lo)) > 1e9 || fabs(json_number_value(hi)) > 1e9)
            goto bad_critic;
        m->has_critic = 1;
        m->v_min = (float)json_number_value(lo);
        m->v_max = (float)json_number_value(hi);
    }
    json_decref(root);
    return 0;
bad_task:
    policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': \"task\" must be {\"type\": "
                "\"none\"}, {\"type\": \"embedding\", \"count\": N} or {\"type\": \"vector\", "
                "\"dim\": D}", L->path);
    goto bad;
bad_head:
    policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': \"head\" must be {\"type\": "
                "\"categorical\", \"bins\": K} or {\"type\": \"gaussian\"}", L->path);
    goto bad;
bad_critic:
    policy_errf(L->err, L->errlen, "%s: metadata 'pacd.model': \"critic\" must be null or "
                "{\"value_bins\": B >= 2, \"value_min\": a, \"value_max\": b} with finite "
                "a < b", L->path);
bad:
    L->rc = -EINVAL;
fail:
    json_decref(root);
    return L->rc ? L->rc : -EINVAL;
}

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
    int d = m->d;
    nn_layernorm(x, nq, d, b->ln_m_w, b->ln_m_b, PAC_LN_EPS, m->lq);
    nn_linear_packed_gelu(m->lq, nq, &b->fc1_w, b->fc1_b, m->h);   /* GELU fused */
    nn_linear_packed_acc(m->h, nq, &b->fc2_w, b->fc2_b, x);
}

/* Cross block: x[nq, d] (holds the queries' residual input on entry, the
 * block output on exit) attends to kv_src[t, d]. */
static void cross_attend(pac_t *m, const block_t *b, float *x, int nq, int t)
{
    int d = m->d;
    const float *q = b->q_const;
    if (!q) {
        nn_layernorm(x, nq, d, b->ln_q_w, b->ln_q_b, PAC_LN_EPS, m->lq);
        nn_linear_packed(m->lq, nq, &b->wq, b->bq, m->q);
        q = m->q;
    }
    attention(m, q, d, nq, m->kv, m->kv + d, 2 * d, t, m->s, m->o);
    nn_linear_packed_acc(m->o, nq, &b->wo, b->bo, x);
    mlp_residual(m, b, x, nq);
}

static void cross_block(pac_t *m, const block_t *b, float *x, int nq, const float *kv_src,
                        int t)
{
    nn_layernorm(kv_src, t, m->d, b->ln_kv_w, b->ln_kv_b, PAC_LN_EPS, m->lx);
    nn_linear_packed(m->lx, t, &b->wkv, b->bkv, m->kv);
    cross_attend(m, b, x, nq, t);
}

/* The policy decoder's cross block by dec_plan: m->z holds the queries on
 * entry, the block output on exit. */
static void dec_block(pac_t *m)
{
    const block_t *b = &m->dec;
    const int d = m->d, H = m->heads, dh = m->dh, nq = m->n_q, N = m->n_lat, hq = H * nq;
    nn_layernorm(m->lat, N, d, b->ln_kv_w, b->ln_kv_b, PAC_LN_EPS, m->lx);
    nn_linear_packed(m->lx, N, &m->dec_u, NULL, m->s);          /* scores^T [N, hq] */
    nn_softmax_cols(m->gk, m->s, N, hq, hq);
    nn_gemm_tn(m->gk, m->s, hq, hq, N, m->lx, d, d, m->dz, d);   /* [hq, d] */
    for (int h = 0; h < H; h++) {
        nn_linear_packed(m->dz + (size_t)h * nq * d, nq, &m->dec_wv[h], b->bkv + d + h * dh,
                         m->q);
        for (int i = 0; i < nq; i++)
            memcpy(m->o + (size_t)i * d + (size_t)h * dh, m->q + (size_t)i * dh,
                   (size_t)dh * sizeof(float));
    }
    nn_linear_packed_acc(m->o, nq, &b->wo, b->bo, m->z);
    mlp_residual(m, b, m->z, nq);
}

static void self_block(pac_t *m, const block_t *b, float *x, int n)
{
    int d = m->d;
    nn_layernorm(x, n, d, b->ln_q_w, b->ln_q_b, PAC_LN_EPS, m->lq);
    nn_linear_packed(m->lq, n, &b->wqkv, b->bqkv, m->kv);
    if (b->q_scale != 1.0f)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                m->kv[(size_t)i * 3 * d + j] *= b->q_scale;
    attention(m, m->kv, 3 * d, n, m->kv + d, m->kv + 2 * d, 3 * d, n, m->s, m->o);
    nn_linear_packed_acc(m->o, n, &b->wo, b->bo, x);
    mlp_residual(m, b, x, n);
}

/* ---- encoder K/V rows (enc_kv_plan), vectorised per CPU ------------------ */

#define PAC_LANES 16

/* Camera cells: Y = [K/V part | centred token part] from the kv3 product. */
static inline __attribute__((always_inline)) void cam_kv_body(pac_t *m, const camera_t *cam,
                                                              int p)
{
    const int d = m->d, d2 = 2 * d, d3 = 3 * d, dv = d / PAC_LANES * PAC_LANES;
    for (int t = 0; t < p; t++) {
        const float *yr = m->y + (size_t)t * d3, *ca = cam->tok_ca + (size_t)t * d;
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
        float *kv = m->kv + (size_t)(cam->row0 + t) * d2;
        const float *c0 = m->enc_c0;
        for (int r = 0; r < d2; r++)
            kv[r] = (yr[r] + e[r]) * inv + c0[r];
    }
}

/* Proprioception values: kv_i = (v A_i + B_i) / sigma_i(v) + c0. */
static inline __attribute__((always_inline)) void prop_kv_body(pac_t *m, const float *o)
{
    const int d = m->d, d2 = 2 * d;
    for (int i = 0; i < m->obs_dim; i++) {
        const float xn = (o[i] - m->mean[i]) / m->std[i];
        const double *qd = m->prop_q + 3 * i;
        const double var = ((double)xn * xn * qd[0] + 2.0 * xn * qd[1] + qd[2]) / d + PAC_LN_EPS;
        const float inv = (float)(1.0 / sqrt(var)), s1 = xn * inv;
        const float *A = m->prop_kv + (size_t)i * 2 * d2, *B = A + d2, *c0 = m->enc_c0;
        float *kv = m->kv + (size_t)i * d2;
        for (int r = 0; r < d2; r++)
            kv[r] = s1 * A[r] + inv * B[r] + c0[r];
    }
}

NN_CLONES(cam_kv, cam_kv_body, (pac_t *m, const camera_t *cam, int p), (m, cam, p))
NN_CLONES(prop_kv, prop_kv_body, (pac_t *m, const float *o), (m, o))

/* Camera encoder: image -> its token rows of the encoder's K/V (m->kv). */
static void camera_tokens(pac_t *m, const camera_t *cam, const uint8_t *img)
{
    float *cur = m->fa, *tmp = m->fb, *tmp2 = m->fc;
    for (int l = 0; l < cam->n_convs; l++) {
        const conv_t *c = &cam->convs[l];
        if (l == 0) {
            nn_conv_im2col_u8(m->gk, &c->nc, img, m->cols);
            nn_conv_gemm(&c->nc, m->cols, tmp);
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
    /* K/V rows of the encoder cross-attention (enc_kv_plan) */
    nn_linear_packed(cur, p, &cam->kv3, NULL, m->y);
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
static void enc_kv_plan(ld_t *L)
{
    pac_t *m = L->m;
    const block_t *b = &m->enc_cross;
    int d = m->d, d2 = 2 * d;
    if (L->rc)
        return;
    double *wg = malloc(sizeof(double) * (size_t)d2 * d);
    double *cv = malloc(sizeof(double) * (size_t)d * 2);
    m->enc_c0 = wnew(L, (size_t)d2);
    if (!wg || !cv || L->rc) {
        free(wg);
        free(cv);
        if (!L->rc) {
            policy_errf(L->err, L->errlen, "%s: out of memory", L->path);
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
        m->prop_kv = wnew(L, (size_t)m->obs_dim * 2 * d2);
        m->prop_q = (double *)(void *)wnew(L, (size_t)m->obs_dim * 3 * 2);
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
        float *w3 = tnew(L, (size_t)3 * d * ch);
        cam->tok_ca = wnew(L, (size_t)p * d);
        cam->tok_e = wnew(L, (size_t)p * d2);
        double *col = malloc(sizeof(double) * (size_t)d);
        if (L->rc || !col) {
            free(col);
            if (!L->rc) {
                policy_errf(L->err, L->errlen, "%s: out of memory", L->path);
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
        pk(L, w3, 3 * d, ch, &cam->kv3);
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
static void dec_plan(ld_t *L)
{
    pac_t *m = L->m;
    const block_t *b = &m->dec;
    const int d = m->d, H = m->heads, dh = m->dh, nq = m->n_q, hq = H * nq;
    if (L->rc || hq > d || !b->q_const || !b->wkv_raw)
        return;
    float *u = tnew(L, (size_t)hq * d);
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
    pk(L, u, hq, d, &m->dec_u);
    for (int h = 0; h < H; h++)
        pk(L, b->wkv_raw + ((size_t)d + (size_t)h * dh) * d, dh, d, &m->dec_wv[h]);
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

static void pac_link_plan(pac_t *m)
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
    if (m->task_kind)
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
        link_block(&prev, &m->crit, 0, 1);
        link_one(&prev, &m->c_out_w);
    }
}

/* ---- load -------------------------------------------------------------- */

/* Forget the load-only tables (tnew memory) before ld_free_tmp frees them.
 * Init-only. */
static void pac_drop_tmp(pac_t *m)
{
    m->prop_w = m->prop_add = NULL;
    for (int c = 0; c < m->n_cams; c++)
        m->cams[c].proj_raw = m->cams[c].tok_add = NULL;
    m->enc_cross.wkv_raw = m->dec.wkv_raw = m->crit.wkv_raw = NULL;
}

static int pac_load(ckpt_t *ck, policy_spec_t *spec, const policy_options_t *options,
                    void **impl_out, char *err, size_t errlen)
{
    const char *path = ckpt_path(ck);
    pac_t *m = calloc(1, sizeof *m);
    if (!m) {
        policy_errf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    ld_t L = { .m = m, .ck = ck, .path = path, .err = err, .errlen = errlen };
    if (options && options->max_load_bytes) {
        L.budget = options->max_load_bytes;
    } else {
        size_t data = 0;
        for (int i = 0; i < ckpt_tensor_count(ck); i++) {
            const ckpt_tensor_t *t = ckpt_tensor_at(ck, i);
            data += (size_t)(t->end - t->begin);
        }
        L.budget = POLICY_LOAD_BASE_BYTES + 16 * data;
    }
    m->gk = policy_gemm_kind(options);
    img_cfg_t img = { 0 };
    if (parse_model(&L, ckpt_metadata(ck, "pacd.model"), spec, &img))
        goto fail;
    int d = m->d;
    m->obs_dim = spec->obs_dim;
    m->action_dim = spec->action_dim;
    memcpy(m->low, spec->action_low, sizeof m->low);
    memcpy(m->high, spec->action_high, sizeof m->high);
    m->sample = options && options->sample;
    m->temperature = options && options->temperature > 0.0f ? options->temperature : 1.0f;
    m->rng = options ? options->seed : 0;

    /* modality groups: proprio, previous_action, cameras, task */
    int has_prop = 0, has_prev = 0;
    for (int i = 0; i < spec->n_fields; i++) {
        const policy_field_t *f = &spec->fields[i];
        if (f->is_image)
            continue;
        if (strcmp(f->source, "previous_action") == 0)
            has_prev = 1;
        else
            has_prop = 1;
    }
    int g_prop = has_prop ? 0 : -1;
    int g_prev = has_prev ? has_prop : -1;
    int g_cam0 = has_prop + has_prev;
    int g_task = g_cam0 + spec->n_images;
    int n_groups = g_task + (m->task_kind ? 1 : 0);
    float *modality = rdt(&L, "modality", 2, n_groups, d, 0, 0);

    /* proprioception tokens */
    m->n_tokens = m->obs_dim;
    if (m->obs_dim > 0) {
        m->mean = rd(&L, "obs_norm.mean", 1, m->obs_dim, 0, 0, 0);
        m->std = rd(&L, "obs_norm.std", 1, m->obs_dim, 0, 0, 0);
        m->prop_w = rdt(&L, "proprio.weight", 2, m->obs_dim, d, 0, 0);
        float *pb = rdt(&L, "proprio.bias", 1, d, 0, 0, 0);
        m->prop_add = rdt(&L, "proprio.pos", 2, m->obs_dim, d, 0, 0);
        if (L.rc)
            goto fail;
        for (int i = 0; i < m->obs_dim; i++) {
            if (m->std[i] < 0.0f) {
                policy_errf(err, errlen, "%s: tensor 'obs_norm.std': element %d is negative "
                            "(%g); a standard deviation must be >= 0", path, i,
                            (double)m->std[i]);
                L.rc = -EINVAL;
                goto fail;
            }
            if (m->std[i] < PAC_MIN_STD)
                m->std[i] = PAC_MIN_STD;
        }
        for (int fi = 0; fi < spec->n_fields; fi++) {
            const policy_field_t *f = &spec->fields[fi];
            if (f->is_image)
                continue;
            int g = strcmp(f->source, "previous_action") == 0 ? g_prev : g_prop;
            for (int i = f->offset; i < f->offset + f->size * f->history; i++)
                for (int j = 0; j < d; j++)
                    m->prop_add[(size_t)i * d + j] += pb[j] + modality[(size_t)g * d + j];
        }
    } else {
        /* a camera-only observation: the twin still has empty obs_norm buffers */
        (void)ckpt_find(ck, "obs_norm.mean");
        (void)ckpt_find(ck, "obs_norm.std");
    }

    /* cameras */
    size_t max_cols = 1, max_feat = 1, max_wino = 1, max_cin = 1;
    for (int fi = 0; fi < spec->n_fields && !L.rc; fi++) {
        const policy_field_t *f = &spec->fields[fi];
        if (!f->is_image)
            continue;
        camera_t *cam = &m->cams[m->n_cams];
        int ci = m->n_cams++;
        cam->field = fi;
        cam->n_convs = img.n_convs;
        cam->n_res = img.n_res;
        int h = f->shape[0], w = f->shape[1], c = 3;
        char a[128], b[128], ga[128], gb[128];
        for (int l = 0; l < img.n_convs; l++) {
            nn_conv_t *cv = &cam->convs[l].nc;
            cv->cin = c;
            cv->cout = img.c[l];
            cv->k = img.k[l];
            cv->stride = img.s[l];
            cv->pad = img.p[l];
            cv->hin = h;
            cv->win = w;
            cv->hout = (h + 2 * cv->pad - cv->k) / cv->stride + 1;
            cv->wout = (w + 2 * cv->pad - cv->k) / cv->stride + 1;
            if (h + 2 * cv->pad < cv->k || w + 2 * cv->pad < cv->k || cv->hout < 1 ||
                cv->wout < 1) {
                policy_errf(err, errlen, "%s: metadata 'pacd.model': image_encoder: convs[%d] "
                            "(kernel %d, stride %d, padding %d) does not fit the %dx%d map of "
                            "field '%s'", path, l, cv->k, cv->stride, cv->pad, h, w, f->name);
                L.rc = -EINVAL;
                goto fail;
            }
            snprintf(a, sizeof a, "cameras.%d.convs.%d.weight", ci, l);
            snprintf(b, sizeof b, "cameras.%d.convs.%d.bias", ci, l);
            snprintf(ga, sizeof ga, "cameras.%d.norms.%d.weight", ci, l);
            snprintf(gb, sizeof gb, "cameras.%d.norms.%d.bias", ci, l);
            cv->winograd = l > 0 && cv->k == 3 && cv->stride == 1 && cv->pad == 1;
            load_conv(&L, &cam->convs[l], l == 0 ? 1.0f / 255.0f : 1.0f, a, b, ga, gb);
            if (cv->winograd) {
                max_wino = nn_conv_winograd_floats(cv) > max_wino ? nn_conv_winograd_floats(cv)
                                                                  : max_wino;
                max_cin = (size_t)cv->cin > max_cin ? (size_t)cv->cin : max_cin;
            }
            size_t P = (size_t)cv->hout * cv->wout;
            size_t K = (size_t)cv->k * cv->k * cv->cin;
            max_cols = P * K > max_cols ? P * K : max_cols;
            max_feat = P * cv->cout > max_feat ? P * cv->cout : max_feat;
            h = cv->hout;
            w = cv->wout;
            c = cv->cout;
        }
        for (int r = 0; r < img.n_res; r++)
            for (int j = 0; j < 2; j++) {
                nn_conv_t *cv = &cam->res[r][j].nc;
                cv->cin = cv->cout = c;
                cv->k = 3;
                cv->stride = cv->pad = 1;
                cv->hin = cv->hout = h;
                cv->win = cv->wout = w;
                snprintf(a, sizeof a, "cameras.%d.res.%d.conv%d.weight", ci, r, j + 1);
                snprintf(b, sizeof b, "cameras.%d.res.%d.conv%d.bias", ci, r, j + 1);
                snprintf(ga, sizeof ga, "cameras.%d.res.%d.norm%d.weight", ci, r, j + 1);
                snprintf(gb, sizeof gb, "cameras.%d.res.%d.norm%d.bias", ci, r, j + 1);
                cv->winograd = 1;
                load_conv(&L, &cam->res[r][j], 1.0f, a, b, ga, gb);   /* may turn wino off */
                if (cv->winograd)
                    max_wino = nn_conv_winograd_floats(cv) > max_wino
                                   ? nn_conv_winograd_floats(cv) : max_wino;
                max_cin = (size_t)c > max_cin ? (size_t)c : max_cin;
                size_t P = (size_t)h * w, K = (size_t)9 * c;
                max_cols = P * K > max_cols ? P * K : max_cols;
            }
        cam->grid_h = h;
        cam->grid_w = w;
        cam->channels = c;
        cam->row0 = m->n_tokens;
        int p = h * w;
        m->n_tokens += p;
        cam->proj_raw = rdft(&L, 2, d, c, "cameras.%d.proj.weight", ci);
        float *pb = rdft(&L, 1, d, 0, "cameras.%d.proj.bias", ci);
        float *pr = rdft(&L, 2, h, d, "cameras.%d.pos_row", ci);
        float *pc = rdft(&L, 2, w, d, "cameras.%d.pos_col", ci);
        cam->tok_add = tnew(&L, (size_t)p * d);
        if (L.rc)
            goto fail;
        const float *mod = modality + (size_t)(g_cam0 + ci) * d;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int j = 0; j < d; j++)
                    cam->tok_add[((size_t)y * w + x) * d + j] =
                        pb[j] + pr[(size_t)y * d + j] + pc[(size_t)x * d + j] + mod[j];
    }
    if (L.rc)
        goto fail;

    /* task */
    if (m->task_kind) {
        const float *mod = modality + (size_t)g_task * d;
        m->task_row = m->n_tokens++;
        if (m->task_kind == 1) {
            m->task_tab = rd(&L, "task.embed", 2, m->task_count, d, 0, 0);
            for (int t = 0; !L.rc && t < m->task_count; t++)
                for (int j = 0; j < d; j++)
                    m->task_tab[(size_t)t * d + j] += mod[j];
        } else {
            m->task_w = rd(&L, "task.proj.weight", 2, d, m->task_dim, 0, 0);
            m->task_add = rd(&L, "task.proj.bias", 1, d, 0, 0, 0);
            for (int j = 0; !L.rc && j < d; j++)
                m->task_add[j] += mod[j];
        }
    }
    spec->task_kind = m->task_kind;
    spec->task_count = m->task_count;
    spec->task_dim = m->task_dim;

    /* encoder */
    m->latents = rd(&L, "encoder.latents", 2, m->n_lat, d, 0, 0);
    load_block(&L, &m->enc_cross, "encoder.cross", 0);
    const_queries(&L, &m->enc_cross, m->latents, m->n_lat);
    enc_kv_plan(&L);
    if (m->n_blocks) {
        m->blocks = calloc((size_t)m->n_blocks, sizeof *m->blocks);
        if (!m->blocks) {
            policy_errf(err, errlen, "%s: out of memory", path);
            L.rc = -ENOMEM;
            goto fail;
        }
    }
    for (int i = 0; i < m->n_blocks && !L.rc; i++) {
        char pre[64];
        snprintf(pre, sizeof pre, "encoder.blocks.%d", i);
        load_block(&L, &m->blocks[i], pre, 1);
    }
    /* policy decoder */
    m->queries = rd(&L, "policy.queries", 2, m->n_q, d, 0, 0);
    load_block(&L, &m->dec, "policy.cross", 0);
    const_queries(&L, &m->dec, m->queries, m->n_q);
    dec_plan(&L);
    m->dec_ln_w = rd(&L, "policy.ln.weight", 1, d, 0, 0, 0);
    m->dec_ln_b = rd(&L, "policy.ln.bias", 1, d, 0, 0, 0);
    pk(&L, rdt(&L, "policy.out.weight", 2, m->out_cols, d, 0, 0), m->out_cols, d,
       &m->dec_out_w);
    m->dec_out_b = rd(&L, "policy.out.bias", 1, m->out_cols, 0, 0, 0);
    /* critic */
    if (m->has_critic) {
        m->c_query = rd(&L, "critic.query", 1, d, 0, 0, 0);
        m->c_aw = rd(&L, "critic.action_proj.weight", 2, d, m->action_dim, 0, 0);
        m->c_ab = rd(&L, "critic.action_proj.bias", 1, d, 0, 0, 0);
        load_block(&L, &m->crit, "critic.cross", 0);
        m->c_ln_w = rd(&L, "critic.ln.weight", 1, d, 0, 0, 0);
        m->c_ln_b = rd(&L, "critic.ln.bias", 1, d, 0, 0, 0);
        pk(&L, rdt(&L, "critic.out.weight", 2, m->v_bins, d, 0, 0), m->v_bins, d,
           &m->c_out_w);
        m->c_out_b = rd(&L, "critic.out.bias", 1, m->v_bins, 0, 0, 0);
        m->support = wnew(&L, (size_t)m->v_bins);
        for (int i = 0; !L.rc && i < m->v_bins; i++)
            m->support[i] = m->v_min + (m->v_max - m->v_min) * (float)i / (float)(m->v_bins - 1);
    }
    spec->has_critic = m->has_critic;
    if (L.rc)
        goto fail;
    const char *stray = ckpt_first_unused(ck);
    if (stray) {
        policy_errf(err, errlen, "%s: tensor '%s' is not part of the pac model that "
                    "'pacd.model' and 'pacd.observation' describe; the metadata and the "
                    "tensors disagree", path, stray);
        L.rc = -EINVAL;
        goto fail;
    }

    /* plan the arena */
    size_t T = (size_t)m->n_tokens, N = (size_t)m->n_lat, Q = (size_t)m->n_q;
    size_t D = (size_t)d;
    size_t nq_max = N > Q ? N : Q;
    size_t s_max = nn_attention_scratch_floats(m->gk, (int)N, (int)T, m->dh);
    size_t s_b = nn_attention_scratch_floats(m->gk, (int)N, (int)N, m->dh);
    s_max = s_b > s_max ? s_b : s_max;
    s_b = nn_attention_scratch_floats(m->gk, (int)Q, (int)N, m->dh);
    s_max = s_b > s_max ? s_b : s_max;
    s_b = nn_attention_scratch_floats(m->gk, 1, (int)N, m->dh);
    s_max = s_b > s_max ? s_b : s_max;
    size_t hq = (size_t)m->heads * Q;
    s_max = N * hq > s_max ? N * hq : s_max;
    size_t kv_max = T * 2 * D > N * 3 * D ? T * 2 * D : N * 3 * D;
    size_t lx_max = N * D;   /* LN of the latents (decoder, critic) or of the task token */
    m->arena = nn_arena_new();
    if (!m->arena) {
        policy_errf(err, errlen, "%s: out of memory", path);
        L.rc = -ENOMEM;
        goto fail;
    }
    m->o_x = nn_arena_reserve(m->arena, D);   /* the task token (the others: enc_kv_plan) */
    m->o_lx = nn_arena_reserve(m->arena, lx_max);
    m->o_kv = nn_arena_reserve(m->arena, kv_max);
    m->o_s = nn_arena_reserve(m->arena, s_max);
    m->o_o = nn_arena_reserve(m->arena, nq_max * D);
    m->o_lat = nn_arena_reserve(m->arena, N * D);
    m->o_lq = nn_arena_reserve(m->arena, nq_max * D);
    m->o_q = nn_arena_reserve(m->arena, nq_max * D);
    m->o_h = nn_arena_reserve(m->arena, nq_max * D * (size_t)m->ratio);
    m->o_z = nn_arena_reserve(m->arena, Q * D);
    m->o_log = nn_arena_reserve(m->arena, Q * (size_t)m->out_cols);
    m->o_cl = nn_arena_reserve(m->arena, (size_t)(m->v_bins > 0 ? m->v_bins : 1));
    m->o_xn = nn_arena_reserve(m->arena, (size_t)(m->obs_dim > 0 ? m->obs_dim : 1));
    m->o_zc = nn_arena_reserve(m->arena, D);
    m->o_cols = nn_arena_reserve(m->arena, m->n_cams ? max_cols : 1);
    m->o_fa = nn_arena_reserve(m->arena, m->n_cams ? max_feat : 1);
    m->o_fb = nn_arena_reserve(m->arena, m->n_cams ? max_feat : 1);
    m->o_fc = nn_arena_reserve(m->arena, m->n_cams ? max_feat : 1);
    size_t max_y = 1;
    for (int c = 0; c < m->n_cams; c++) {
        size_t py = (size_t)m->cams[c].grid_h * m->cams[c].grid_w * 3 * D;
        max_y = py > max_y ? py : max_y;
    }
    m->o_y = nn_arena_reserve(m->arena, max_y);
    m->o_dz = nn_arena_reserve(m->arena, m->dec_fast ? hq * D : 1);
    m->o_wv = nn_arena_reserve(m->arena, max_wino);
    m->o_wz = nn_arena_reserve(m->arena, max_cin);   /* zeros (padding), never written */
    if (m->o_fc == (size_t)-1 || m->o_y == (size_t)-1 || m->o_dz == (size_t)-1 ||
        m->o_wv == (size_t)-1 || m->o_wz == (size_t)-1)
        L.rc = -ENOMEM;   /* reported below */
    else if (ld_charge(&L, nn_arena_bytes(m->arena), "scratch arena"))
        goto fail;
    if (L.rc || nn_arena_commit(m->arena) != 0) {
        policy_errf(err, errlen, "%s: cannot allocate the %zu-byte scratch arena", path,
                    nn_arena_bytes(m->arena));
        L.rc = -ENOMEM;
        goto fail;
    }
#define P(f) m->f = nn_arena_ptr(m->arena, m->o_##f)
    P(x); P(lx); P(kv); P(s); P(o); P(lat); P(lq); P(q); P(h); P(z);
    P(cols); P(fa); P(fb); P(fc); P(xn); P(zc); P(y); P(dz); P(wv); P(wz);
    m->conv_scratch = (nn_conv_scratch_t){ .cols = m->cols, .winograd = m->wv, .zeros = m->wz };
    m->logits = nn_arena_ptr(m->arena, m->o_log);
    m->cl = nn_arena_ptr(m->arena, m->o_cl);
#undef P

    pac_link_plan(m);
    /* warm-up step (BLAS first-call set-up at init, not in the loop); the
     * sampling generator is restored so the seed alone decides the draws */
    {
        uint64_t rng = m->rng;
        float *vals = m->obs_dim ? m->mean : NULL;
        const uint8_t *imgs[POLICY_MAX_FIELDS];
        size_t max_img = 0;
        for (int c = 0; c < m->n_cams; c++) {
            const policy_field_t *f = &spec->fields[m->cams[c].field];
            max_img = (size_t)f->size > max_img ? (size_t)f->size : max_img;
        }
        uint8_t *blank = max_img ? calloc(max_img, 1) : NULL;
        float *tv = m->task_kind == 2 ? calloc((size_t)m->task_dim, sizeof(float)) : NULL;
        if ((max_img && !blank) || (m->task_kind == 2 && !tv)) {
            free(blank);
            free(tv);
            policy_errf(err, errlen, "%s: out of memory", path);
            L.rc = -ENOMEM;
            goto fail;
        }
        for (int c = 0; c < m->n_cams; c++)
            imgs[c] = blank;
        policy_observation_t warm = { .values = vals, .images = imgs, .task_id = 0,
                                      .task_vector = tv };
        float a[POLICY_MAX_ACTION];
        policy_extra_t ex;
        (void)pac_step(m, &warm, a, &ex);
        free(blank);
        free(tv);
        m->rng = rng;
        m->have_logits = 0;
    }
    *impl_out = m;
    pac_drop_tmp(m);
    ld_free_tmp(&L);
    return 0;
fail:
    {
        void *v = m;
        pac_destroy(&v);
    }
    ld_free_tmp(&L);
    return L.rc ? L.rc : -EINVAL;
}

/* ---- step -------------------------------------------------------------- */

/* Deployment (or sampled) action from the logits. Returns 0 or -ERANGE. */
static int choose_action(pac_t *m, float *a)
{
    int A = m->action_dim;
    if (m->head == HEAD_CATEGORICAL) {
        int K = m->bins;
        for (int j = 0; j < A; j++) {
            float *l = m->logits + (size_t)j * K;   /* [A, K] either way */
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
            mean = m->logits[j];
            log_std = m->logits[A + j];
        } else {
            mean = m->logits[2 * j];
            log_std = m->logits[2 * j + 1];
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

static int pac_step(void *impl, const policy_observation_t *obs, float *action,
                    policy_extra_t *extra)
{
    pac_t *m = impl;
    int d = m->d;
    const float *o = obs->values;
    for (int i = 0; i < m->obs_dim; i++)
        if (!isfinite(o[i]))
            return -EDOM;
    for (int c = 0; c < m->n_cams; c++)
        if (!obs->images[c])
            return -EINVAL;
    if (m->task_kind == 1 && (obs->task_id < 0 || obs->task_id >= m->task_count))
        return -EINVAL;
    if (m->task_kind == 2) {
        if (!obs->task_vector)
            return -EINVAL;
        for (int i = 0; i < m->task_dim; i++)
            if (!isfinite(obs->task_vector[i]))
                return -EDOM;
    }
    m->have_logits = 0;
    /* encoder K/V rows, token by token (enc_kv_plan); proprioception first */
    int d2 = 2 * d;
    NN_PICK(m->gk, prop_kv, prop_kv_body, (m, o));
    for (int c = 0; c < m->n_cams; c++)
        camera_tokens(m, &m->cams[c], obs->images[c]);
    if (m->task_kind == 1) {
        memcpy(m->x, m->task_tab + (size_t)obs->task_id * d,
               (size_t)d * sizeof(float));
    } else if (m->task_kind == 2) {
        float *x = m->x;
        memcpy(x, m->task_add, (size_t)d * sizeof(float));
        cblas_sgemv(CblasRowMajor, CblasNoTrans, d, m->task_dim, 1.0f, m->task_w, m->task_dim,
                    obs->task_vector, 1, 1.0f, x, 1);
    }
    if (m->task_kind) {
        const block_t *b = &m->enc_cross;
        float *x = m->x;
        nn_layernorm(x, 1, d, b->ln_kv_w, b->ln_kv_b, PAC_LN_EPS, m->lx);
        nn_linear_packed(m->lx, 1, &b->wkv, b->bkv, m->kv + (size_t)m->task_row * d2);
    }
    /* encoder */
    memcpy(m->lat, m->latents, (size_t)m->n_lat * d * sizeof(float));
    cross_attend(m, &m->enc_cross, m->lat, m->n_lat, m->n_tokens);
    for (int i = 0; i < m->n_blocks; i++)
        self_block(m, &m->blocks[i], m->lat, m->n_lat);
    /* policy decoder */
    memcpy(m->z, m->queries, (size_t)m->n_q * d * sizeof(float));
    if (m->dec_fast)
        dec_block(m);
    else
        cross_block(m, &m->dec, m->z, m->n_q, m->lat, m->n_lat);
    nn_layernorm(m->z, m->n_q, d, m->dec_ln_w, m->dec_ln_b, PAC_LN_EPS, m->z);
    nn_linear_packed(m->z, m->n_q, &m->dec_out_w, m->dec_out_b, m->logits);
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
        memcpy(m->zc, m->c_query, (size_t)d * sizeof(float));
        nn_linear_acc(au, 1, m->action_dim, m->c_aw, m->c_ab, d, m->zc);
        cross_block(m, &m->crit, m->zc, 1, m->lat, m->n_lat);
        nn_layernorm(m->zc, 1, d, m->c_ln_w, m->c_ln_b, PAC_LN_EPS, m->zc);
        nn_linear_packed(m->zc, 1, &m->c_out_w, m->c_out_b, m->cl);
        nn_softmax(m->cl, 1, m->v_bins);
        double q = 0.0;
        for (int i = 0; i < m->v_bins; i++)
            q += (double)m->cl[i] * m->support[i];
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

static size_t pac_arena_bytes(const void *impl)
{
    const pac_t *m = impl;
    return nn_arena_bytes(m->arena);
}

static int pac_logits(const void *impl, const float **logits, int *rows, int *cols)
{
    const pac_t *m = impl;
    if (!m->have_logits)
        return -ENODATA;
    *logits = m->logits;
    *rows = m->n_q;
    *cols = m->out_cols;
    return 0;
}

static const char *pac_kernel(const void *impl)
{
    return nn_gemm_name(((const pac_t *)impl)->gk);
}

const policy_arch_t policy_arch_pac = {
    .name = "pac",
    .load = pac_load,
    .step = pac_step,
    .arena_bytes = pac_arena_bytes,
    .destroy = pac_destroy,
    .logits = pac_logits,
    .kernel = pac_kernel,
};
