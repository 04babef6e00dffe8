/* arch_pac — internal types of the Perceiver Actor-Critic (PAC) actor, architecture "pac"
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
 * AVX-512; "blis", only on request, runs the matrix products on BLIS's
 * bli_sgemm), the exact algebraic
 * shortcuts planned (pac_plan_encoder_kv: the encoder's K/V straight
 * from proprioception values and camera features; pac_plan_decoder: the policy
 * decoder's attention without K/V over the latents), the worst-case scratch
 * arena is reserved and one warm-up step runs. policy_step then only uses
 * the arena.
 *
 * Layout: token matrices are [tokens, width] row-major; feature maps are
 * channels-last [H * W, C]; attention scores one head at a time, transposed
 * [t, nq] on the packed (AVX-512 / AVX2) paths (nn_attention). Element-wise
 * loops run as clones for the chosen kernel's instruction set (NN_CLONES).
 *
 * Files: arch_pac_load.c (metadata, weights, the load and the driver table),
 * arch_pac_plan.c (the encoder K/V and decoder plans, the prefetch chain),
 * arch_pac_step.c (the forward pass, the step and sampling). Not public. */
#ifndef PACD_ARCH_PAC_H
#define PACD_ARCH_PAC_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"
#include "nn_conv.h"
#include "nn_slab.h"
#include "policy_impl.h"

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
#define PAC_MAX_ACTION_HIDDEN 4096   /* critic "action_hidden" H */
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
    /* encoder cross-attention K/V straight from the features (see pac_plan_encoder_kv) */
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

/* The step's scratch buffers, float32 row-major, carved from the arena that
 * pac_load plans (largest use over the step; n_tok = n_tokens, nq = n_lat or
 * n_q, whichever block runs). */
typedef struct {
    float *task_token;    /* [d]: the task token (task_kind != POLICY_TASK_NONE) */
    float *kv_norm;       /* [n_lat, d]: LayerNorm of a cross block's K/V source */
    float *kv;            /* [n_tok, 2d] encoder K/V rows, or [n_lat, 3d] Q/K/V of a
                             self block */
    float *scores;        /* nn_attention scratch; the decoder's scores^T [n_lat, heads n_q] */
    float *attn_out;      /* [nq, d]: attention output, heads side by side */
    float *latents;       /* [n_lat, d]: the latent stream of the encoder */
    float *q_norm;        /* [nq, d]: LayerNorm of the queries (or of x before an MLP) */
    float *q;             /* [nq, d]: projected queries */
    float *mlp_hidden;    /* [nq, ratio d]: GELU(fc1) of a block's MLP */
    float *dec_x;         /* [n_q, d]: the policy decoder's query stream */
    float *logits;        /* [n_q, out_cols]: the policy head's output */
    float *critic_logits; /* [v_bins]: the critic head's output, then its softmax */
    float *critic_x;      /* [d]: the critic's query stream */
    float *critic_hidden; /* [c_hidden]: GELU(action_proj.0(a_unit)) of the critic's MLP
                             action input (c_hidden > 0) */
    float *im2col;        /* camera convolutions: im2col patches (nn_conv_cols_floats) */
    float *feat_a, *feat_b, *feat_c;   /* camera feature maps [H * W, C], rotated */
    float *cam_kv3;       /* [grid cells, 3d]: the camera's kv3 product */
    float *dec_ctx;       /* [heads n_q, d]: pac_plan_decoder's attention-weighted latents */
    float *winograd;      /* Winograd scratch (nn_conv_winograd_floats) */
    float *zeros;         /* [widest cin] zeros (Winograd padding), never written */
} pac_scratch_t;

typedef struct {
    int d, heads, dh, n_lat, n_blocks, ratio;
    nn_gemm_kind_t gk;   /* matrix kernel, chosen at load */
    int obs_dim, action_dim;
    int n_tokens;
    /* observation */
    float *mean, *std;
    float *prop_w;       /* [obs_dim, d] (load only: NULL after) */
    float *prop_add;     /* [obs_dim, d]: bias + pos + modality (load only: NULL after) */
    float *prop_kv;      /* [obs_dim, 2, 2d]: A_i, B_i (see pac_plan_encoder_kv) */
    double *prop_q;      /* [obs_dim, 3]: |Cw_i|^2, Cw_i.Ca_i, |Ca_i|^2 */
    float *enc_c0;       /* [2d]: beta_kv Wkv^T + bkv */
    int n_cams;
    camera_t cams[POLICY_MAX_FIELDS];
    nn_act_t img_act;
    int gn_groups;
    policy_task_kind_t task_kind;
    int task_count, task_dim;
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
    int dec_fast;        /* pac_plan_decoder applies */
    nn_packed_t dec_u;   /* [heads * n_q, d]: Wk_h^T q_h,i (see pac_plan_decoder) */
    nn_packed_t dec_wv[PAC_MAX_HEADS];   /* [dh, d] each: Wv rows of head h */
    float *dec_ln_w, *dec_ln_b, *dec_out_b;
    nn_packed_t dec_out_w;
    float low[POLICY_MAX_ACTION], high[POLICY_MAX_ACTION];
    /* critic; its query is c_query + action_proj(a_unit), a_unit the action
     * mapped to [-1, 1] per dimension (docs/checkpoint.md "Critic") */
    int has_critic, v_bins;
    float v_min, v_max;
    float *c_query;      /* [d] */
    int c_hidden;        /* "action_hidden" H: 0 the linear action input, else the MLP */
    float *c_aw, *c_ab;  /* H = 0: action_proj [d, action_dim], [d] (unpacked, BLAS sgemv) */
    nn_packed_t c_aw1, c_aw2;   /* H > 0: action_proj.0 [H, action_dim], .2 [d, H], packed */
    float *c_ab1, *c_ab2;       /* H > 0: their biases [H], [d] */
    block_t crit;
    float *c_ln_w, *c_ln_b, *c_out_b, *support;
    nn_packed_t c_out_w;
    /* sampling */
    int sample;
    float temperature;
    uint64_t rng;
    /* weights storage */
    nn_slab_t wslab;     /* packed weights (alloc_packed) */
    nn_slab_t cslab;     /* the other tables a step reads (pac_alloc_table) */
    /* plan */
    nn_arena_t *arena;
    pac_scratch_t scratch;            /* the step's buffers, in the arena */
    nn_conv_scratch_t conv_scratch;   /* scratch.im2col, .winograd, .zeros */
    int have_logits;
} pac_t;

/* ---- the load ------------------------------------------------------------ */

/* State of one load (arch_pac_load.c); the planning passes receive it too. */
typedef struct {
    pac_t *m;
    ckpt_t *ck;
    const char *path;
    char *err;
    size_t errlen;
    int rc;
    float **load_only;   /* load-only memory (pac_alloc_load_only), freed when pac_load
                            returns */
    int n_load_only, cap_load_only;
    size_t used, budget; /* bytes allocated so far / allowed (policy_options_t.max_load_bytes) */
} pac_loader_t;

/* Columns per vector of the element-wise K/V row loops (AVX-512 width). */
#define PAC_LANES 16

/* Load-only memory of n floats, zeroed (raw weights before packing,
 * transforms): freed when the load returns. NULL and L->rc = -ENOMEM when out
 * of memory (or -EFBIG past the load budget). Init-only. */
float *pac_alloc_load_only(pac_loader_t *L, size_t n);

/* n floats (zeroed) that steps read, other than packed weights, from the
 * table slab chain (huge-page slabs unless the model is small); NULL with
 * L->rc set as pac_alloc_load_only. Init-only. */
float *pac_alloc_table(pac_loader_t *L, size_t n);

/* Pack w[out, in] for the step's kernel (L->m->gk) into new slab memory (a
 * copy for BLAS), so that w itself can be load-only; L->rc set on error.
 * Init-only. */
void pac_pack_weights(pac_loader_t *L, float *w, int out, int in, nn_packed_t *p);

/* The encoder's cross-attention K/V straight from proprioception values and
 * camera features (arch_pac_plan.c). Init-only. */
void pac_plan_encoder_kv(pac_loader_t *L);

/* The policy decoder's attention without K/V over the latents, when it
 * applies (m->dec_fast; arch_pac_plan.c). Init-only. */
void pac_plan_decoder(pac_loader_t *L);

/* Link every packed layer to the one that runs after it (nn_packed_t.then),
 * in step order. Init-only. */
void pac_plan_link(pac_t *m);

/* One step (policy_arch_t.step; arch_pac_step.c). RT-safe. */
int pac_step(void *impl, const policy_observation_t *obs, float *action, policy_extra_t *extra);

#endif
