/* arch_pac_load — the PAC actor's load: metadata, weights (read, converted,
 * packed into huge-page slabs), the scratch arena plan and the warm-up step;
 * the driver table policy_arch_pac. See arch_pac.h for the design. */
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

#include "arch_pac.h"

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


/* Count bytes against the load budget before allocating them: 0, or -1 with
 * L->rc = -EFBIG and the message in L->err. Init-only. */
static int charge_load_budget(pac_loader_t *L, size_t bytes, const char *what)
{
    if (L->rc)
        return -1;
    if (bytes <= L->budget && L->used <= L->budget - bytes) {
        L->used += bytes;
        return 0;
    }
    pacd_errf(L->err, L->errlen, "%s: loading needs more than %zu MiB (at the %s); the "
              "metadata (image sizes, width, observation size) is out of proportion to the "
              "tensors in the file", L->path, L->budget >> 20, what);
    L->rc = -EFBIG;
    return -1;
}

/* Room for one more entry in a list of n of *cap pointers (pac_loader_t.load_only, freed
 * by free_load_only): 0 or -1. Init-only. */
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
 * freed when pac_load returns (free_load_only). NULL and L->rc = -ENOMEM when out
 * of memory. Init-only. */
float *pac_alloc_load_only(pac_loader_t *L, size_t n)
{
    if (L->rc)
        return NULL;
    if (list_reserve(&L->load_only, L->n_load_only, &L->cap_load_only) != 0)
        goto oom;
    if (n > SIZE_MAX / sizeof(float) / 2) {
        (void)charge_load_budget(L, SIZE_MAX, "load-only weights");
        return NULL;
    }
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + NN_ARENA_ALIGN - 1) / NN_ARENA_ALIGN * NN_ARENA_ALIGN;
    if (charge_load_budget(L, bytes, "load-only weights"))
        return NULL;
    float *p = aligned_alloc(NN_ARENA_ALIGN, bytes);
    if (!p)
        goto oom;
    memset(p, 0, bytes);
    L->load_only[L->n_load_only++] = p;
    return p;
oom:
    pacd_errf(L->err, L->errlen, "%s: out of memory for %zu weights", L->path, n);
    L->rc = -ENOMEM;
    return NULL;
}

/* Free the pac_alloc_load_only memory (pac_load, on every return). Init-only: malloc_trim
 * walks the heap. */
static void free_load_only(pac_loader_t *L)
{
    for (int i = 0; i < L->n_load_only; i++)
        free(L->load_only[i]);
    free(L->load_only);
    L->load_only = NULL;
    L->n_load_only = L->cap_load_only = 0;
#if defined(__GLIBC__)
    /* glibc keeps freed heap pages mapped (its mmap threshold grows with
     * every large free): give the raw weights' pages back to the system */
    (void)malloc_trim(0);
#endif
}

/* Memory that steps read. Every step reads nearly all the packed weights
 * (pac-s ~23 MB with AMX's hi + lo halves, pac-m ~130 MB; a few serve only
 * the load, e.g. the projections of constant queries) and some MB of other tables
 * (biases, norms, the encoder's K/V tables of pac_plan_encoder_kv), so they are
 * carved, in load order (about the step's order), out of huge-page slabs
 * (nn_slab.h; small ones for a small model: expect_slab_bytes), two chains:
 * packed weights and the other tables. The floats come zeroed. NULL and
 * L->rc = -ENOMEM when out of memory. Init-only. */
static float *slab_alloc(pac_loader_t *L, nn_slab_t *s, size_t n)
{
    const size_t bytes = nn_slab_request_bytes(n);
    if (!bytes) {
        (void)charge_load_budget(L, SIZE_MAX, "weight tables");
        return NULL;
    }
    if (L->rc || charge_load_budget(L, bytes, "weight tables"))
        return NULL;
    float *p = nn_slab_alloc(s, n);
    if (!p) {
        pacd_errf(L->err, L->errlen, "%s: out of memory for %zu weights", L->path, n);
        L->rc = -ENOMEM;
    }
    return p;
}

/* Tell the two slab chains (nn_slab_expect) about what they will hold, from the
 * file's tensors as F32 (numel times 4 bytes each; ckpt_open checked numel
 * against the tensor's bytes, so this is at most twice the file): packed
 * weights up to twice that plus 16 KB (packing pads small widths to whole
 * panels: the tiny fuzz seeds pack to 1.8-2.1 times their F32 bytes with the
 * AVX-512 kernel, pac-s to 1.09; AMX's 32 x 32 tiles pad tiny widths more),
 * the other tables up to that plus 16 KB (tiny seeds 0.8-0.9, pac-s 0.04). A
 * model under about 1 MB of F32 (tables: 2 MB) thus gets small slabs instead
 * of two fresh 2 MB huge ones, a bigger one huge slabs as before; a low
 * estimate costs only another slab. Init-only. */
static void expect_slab_bytes(ckpt_t *ck, pac_t *m)
{
    size_t f32 = 0;
    for (int i = 0; i < ckpt_tensor_count(ck); i++)
        f32 += (size_t)ckpt_tensor_at(ck, i)->numel * sizeof(float);
    nn_slab_expect(&m->wslab, 2 * f32 + ((size_t)16 << 10));
    nn_slab_expect(&m->cslab, f32 + ((size_t)16 << 10));
}

/* n floats (zeroed) that steps read, other than packed weights; NULL and
 * L->rc = -ENOMEM when out of memory. Init-only. */
float *pac_alloc_table(pac_loader_t *L, size_t n)
{
    return slab_alloc(L, &L->m->cslab, n);
}

/* n floats for packed weights (as pac_alloc_table). Init-only. */
static float *alloc_packed(pac_loader_t *L, size_t n)
{
    return slab_alloc(L, &L->m->wslab, n);
}

/* Read tensor `name` of the given shape into new F32 memory: memory steps
 * read (pac_alloc_table) or, load_only 1, load-only memory
 * (pac_alloc_load_only). NULL with L->rc set (and the message in L->err) when
 * the tensor is missing, has another shape or dtype, holds a non-finite value
 * (ckpt_read_f32), or memory runs out. Init-only. */
static float *read_tensor_f32(pac_loader_t *L, int load_only, const char *name, int ndim,
                              int64_t d0, int64_t d1, int64_t d2, int64_t d3)
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
    float *p = load_only ? pac_alloc_load_only(L, n) : pac_alloc_table(L, n);
    if (!p)
        return NULL;
    rc = ckpt_read_f32(L->ck, name, ndim, shape, p, L->err, L->errlen);
    if (rc)
        L->rc = rc;
    return rc ? NULL : p;
}

/* A tensor that steps read / one read only while loading. */
static float *read_table(pac_loader_t *L, const char *name, int ndim, int64_t d0, int64_t d1,
                         int64_t d2, int64_t d3)
{
    return read_tensor_f32(L, 0, name, ndim, d0, d1, d2, d3);
}

static float *read_load_only(pac_loader_t *L, const char *name, int ndim, int64_t d0, int64_t d1,
                             int64_t d2, int64_t d3)
{
    return read_tensor_f32(L, 1, name, ndim, d0, d1, d2, d3);
}

/* read_tensor_f32 of a tensor named by a format (at most 2 dimensions);
 * read_table_fmt: memory steps read, read_load_only_fmt: load-only. */
static float *read_tensor_f32_fmt(pac_loader_t *L, int load_only, int ndim, int64_t d0,
                                  int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static float *read_tensor_f32_fmt(pac_loader_t *L, int load_only, int ndim, int64_t d0,
                                  int64_t d1, const char *fmt, ...)
{
    char name[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return read_tensor_f32(L, load_only, name, ndim, d0, d1, 0, 0);
}
#define read_table_fmt(L, ...) read_tensor_f32_fmt((L), 0, __VA_ARGS__)
#define read_load_only_fmt(L, ...) read_tensor_f32_fmt((L), 1, __VA_ARGS__)

/* Pack w[out, in] for the step's kernel into new memory (a copy for BLAS),
 * so that w itself can be load-only. */
void pac_pack_weights(pac_loader_t *L, float *w, int out, int in, nn_packed_t *p)
{
    if (L->rc)
        return;
    float *dst = alloc_packed(L, nn_pack_floats_w(L->m->gk, w, out, in));
    if (!dst)
        return;
    int rc = nn_pack(L->m->gk, w, out, in, dst, p);
    if (rc) {
        pacd_errf(L->err, L->errlen, "%s: cannot pack a %dx%d weight matrix for the %s "
                  "kernel", L->path, out, in, nn_gemm_name(L->m->gk));
        L->rc = rc;
    }
}

/* Read the load-only weight named by fmt (one %s: pre) and pack it into *p. */
static float *read_packed(pac_loader_t *L, nn_packed_t *p, int out, int in, const char *fmt,
                          const char *pre)
{
    char name[192];
    snprintf(name, sizeof name, fmt, pre);
    float *w = read_load_only(L, name, 2, out, in, 0, 0);
    pac_pack_weights(L, w, out, in, p);
    return w;
}

/* Load one block (prefix.ln_q/ln_kv/attn/ln_mlp/mlp for cross; ln1/attn/ln2/mlp
 * for self). */
static void load_block(pac_loader_t *L, block_t *b, const char *pre, int self)
{
    pac_t *m = L->m;
    int d = m->d, hd = d * m->ratio;
    float scale = 1.0f / sqrtf((float)m->dh);
    if (self) {
        b->ln_q_w = read_table_fmt(L, 1, d, 0, "%s.ln1.weight", pre);
        b->ln_q_b = read_table_fmt(L, 1, d, 0, "%s.ln1.bias", pre);
        b->ln_m_w = read_table_fmt(L, 1, d, 0, "%s.ln2.weight", pre);
        b->ln_m_b = read_table_fmt(L, 1, d, 0, "%s.ln2.bias", pre);
    } else {
        b->ln_q_w = read_table_fmt(L, 1, d, 0, "%s.ln_q.weight", pre);
        b->ln_q_b = read_table_fmt(L, 1, d, 0, "%s.ln_q.bias", pre);
        b->ln_kv_w = read_table_fmt(L, 1, d, 0, "%s.ln_kv.weight", pre);
        b->ln_kv_b = read_table_fmt(L, 1, d, 0, "%s.ln_kv.bias", pre);
        b->ln_m_w = read_table_fmt(L, 1, d, 0, "%s.ln_mlp.weight", pre);
        b->ln_m_b = read_table_fmt(L, 1, d, 0, "%s.ln_mlp.bias", pre);
    }
    float *wq = read_load_only_fmt(L, 2, d, d, "%s.attn.q.weight", pre);
    float *bq = read_table_fmt(L, 1, d, 0, "%s.attn.q.bias", pre);
    float *wk = read_load_only_fmt(L, 2, d, d, "%s.attn.k.weight", pre);
    float *bk = read_table_fmt(L, 1, d, 0, "%s.attn.k.bias", pre);
    float *wv = read_load_only_fmt(L, 2, d, d, "%s.attn.v.weight", pre);
    float *bv = read_table_fmt(L, 1, d, 0, "%s.attn.v.bias", pre);
    (void)read_packed(L, &b->wo, d, d, "%s.attn.o.weight", pre);
    b->bo = read_table_fmt(L, 1, d, 0, "%s.attn.o.bias", pre);
    (void)read_packed(L, &b->fc1_w, hd, d, "%s.mlp.fc1.weight", pre);
    b->fc1_b = read_table_fmt(L, 1, hd, 0, "%s.mlp.fc1.bias", pre);
    (void)read_packed(L, &b->fc2_w, d, hd, "%s.mlp.fc2.weight", pre);
    b->fc2_b = read_table_fmt(L, 1, d, 0, "%s.mlp.fc2.bias", pre);
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
        float *wqkv = pac_alloc_load_only(L, 3 * dd);
        b->bqkv = pac_alloc_table(L, 3 * (size_t)d);
        if (L->rc)
            return;
        memcpy(wqkv, wq, dd * sizeof(float));
        memcpy(wqkv + dd, wk, dd * sizeof(float));
        memcpy(wqkv + 2 * dd, wv, dd * sizeof(float));
        pac_pack_weights(L, wqkv, 3 * d, d, &b->wqkv);
        memcpy(b->bqkv, bq, (size_t)d * sizeof(float));
        memcpy(b->bqkv + d, bk, (size_t)d * sizeof(float));
        memcpy(b->bqkv + 2 * d, bv, (size_t)d * sizeof(float));
    } else {
        pac_pack_weights(L, wq, d, d, &b->wq);
        b->bq = bq;
        float *wkv = pac_alloc_load_only(L, 2 * dd);
        b->bkv = pac_alloc_table(L, 2 * (size_t)d);
        if (L->rc)
            return;
        memcpy(wkv, wk, dd * sizeof(float));
        memcpy(wkv + dd, wv, dd * sizeof(float));
        b->wkv_raw = wkv;
        pac_pack_weights(L, wkv, 2 * d, d, &b->wkv);
        memcpy(b->bkv, bk, (size_t)d * sizeof(float));
        memcpy(b->bkv + d, bv, (size_t)d * sizeof(float));
    }
}

/* Project constant queries q0 [nq, d] once: q_const = LN(q0) Wq^T + bq. */
static void const_queries(pac_loader_t *L, block_t *b, const float *q0, int nq)
{
    pac_t *m = L->m;
    float *t = pac_alloc_load_only(L, (size_t)nq * m->d);
    b->q_const = pac_alloc_table(L, (size_t)nq * m->d);
    if (L->rc)
        return;
    nn_layernorm(q0, nq, m->d, b->ln_q_w, b->ln_q_b, PAC_LN_EPS, t);
    nn_linear_packed(t, nq, &b->wq, b->bq, b->q_const);
}

/* Conv layer weights: torch [cout, cin, k, k] -> [cout, (kh, kw, cin)], or
 * the Winograd transform when c->nc.winograd; GroupNorm parameters when
 * gwname is not NULL. */
static void load_conv(pac_loader_t *L, conv_t *c, float wscale, const char *wname,
                      const char *bname, const char *gwname, const char *gbname)
{
    nn_conv_t *nc = &c->nc;
    int k = nc->k, ci = nc->cin, co = nc->cout;
    float *w = read_load_only(L, wname, 4, co, ci, k, k);
    nc->b = read_table(L, bname, 1, co, 0, 0, 0);
    if (gwname) {
        c->gn_w = read_table(L, gwname, 1, co, 0, 0, 0);
        c->gn_b = read_table(L, gbname, 1, co, 0, 0, 0);
    }
    /* AMX with weights that are all bf16 (a BF16 checkpoint): im2col keeps
     * them bf16, so they are stored and streamed at 2 bytes each (9 per
     * channel pair, against Winograd's 16 transformed floats, which are not
     * bf16 any more) */
    if (nc->winograd && w && L->m->gk == NN_GEMM_AMX &&
        nn_all_bf16(w, (size_t)co * ci * k * k))
        nc->winograd = 0;
    if (nc->winograd) {
        float *u = pac_alloc_load_only(L, (size_t)16 * co * ci);
        if (L->rc)
            return;
        nn_conv_winograd_weights(w, co, ci, wscale, u);
        for (int xi = 0; xi < 16; xi++)
            pac_pack_weights(L, u + (size_t)xi * co * ci, co, ci, &nc->wu[xi]);
        return;
    }
    float *cw = pac_alloc_load_only(L, (size_t)co * k * k * ci);
    if (L->rc)
        return;
    nn_conv_im2col_weights(w, co, ci, k, wscale, cw);
    pac_pack_weights(L, cw, co, k * k * ci, &nc->w);
}

/* ---- metadata ---------------------------------------------------------- */

static int get_int(pac_loader_t *L, json_t *obj, const char *ctx, const char *key, long lo, long hi,
                   int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': %s\"%s\" must be an integer "
                  "in [%ld, %ld]", L->path, ctx, key, lo, hi);
        return L->rc = -EINVAL;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int check_keys(pac_loader_t *L, json_t *obj, const char *ctx, const char *const *known)
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
            pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': %sunknown key '%s' "
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

static int parse_model(pac_loader_t *L, const char *text, const policy_spec_t *spec, img_cfg_t *img)
{
    pac_t *m = L->m;
    if (!text) {
        pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model' is missing; a pac checkpoint "
                  "needs {\"width\", \"heads\", \"latents\", \"blocks\", ...} "
                  "(docs/checkpoint.md)", L->path);
        return L->rc = -EINVAL;
    }
    json_t *root = policy_json_object(L->path, "pacd.model", text, L->err, L->errlen);
    if (!root)
        return L->rc = -EINVAL;
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
        pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': width %d is not a multiple "
                  "of heads %d", L->path, m->d, m->heads);
        goto bad;
    }
    m->dh = m->d / m->heads;
    /* image encoder */
    json_t *ie = json_object_get(root, "image_encoder");
    if (spec->n_images > 0 && !json_is_object(ie)) {
        pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': the observation has %d "
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
            pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': image_encoder: "
                      "\"activation\" must be \"relu\" or \"gelu\"", L->path);
            goto bad;
        }
        json_t *convs = json_object_get(ie, "convs");
        if (!json_is_array(convs) || json_array_size(convs) < 1 ||
            json_array_size(convs) > PAC_MAX_CONVS) {
            pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': image_encoder: "
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
                pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': %snot an object",
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
                pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': %schannels %d is "
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
        m->task_kind = POLICY_TASK_NONE;
    } else if (tt && strcmp(tt, "embedding") == 0) {
        m->task_kind = POLICY_TASK_ID;
        if (get_int(L, task, "task: ", "count", 1, PAC_MAX_TASKS, &m->task_count))
            goto fail;
    } else if (tt && strcmp(tt, "vector") == 0) {
        m->task_kind = POLICY_TASK_VECTOR;
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
        pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': \"queries\" must be "
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
        static const char *const crk[] = { "value_bins", "value_min", "value_max",
                                           "action_hidden", NULL };
        if (!json_is_object(cr) || check_keys(L, cr, "critic: ", crk) ||
            get_int(L, cr, "critic: ", "value_bins", 2, PAC_MAX_BINS, &m->v_bins))
            goto bad_critic;
        /* optional: absent or 0 is the linear action input (checkpoints from before it) */
        if (json_object_get(cr, "action_hidden") &&
            get_int(L, cr, "critic: ", "action_hidden", 0, PAC_MAX_ACTION_HIDDEN, &m->c_hidden))
            goto fail;
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
    pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': \"task\" must be {\"type\": "
              "\"none\"}, {\"type\": \"embedding\", \"count\": N} or {\"type\": \"vector\", "
              "\"dim\": D}", L->path);
    goto bad;
bad_head:
    pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': \"head\" must be {\"type\": "
              "\"categorical\", \"bins\": K} or {\"type\": \"gaussian\"}", L->path);
    goto bad;
bad_critic:
    pacd_errf(L->err, L->errlen, "%s: metadata 'pacd.model': \"critic\" must be null or "
              "{\"value_bins\": B >= 2, \"value_min\": a, \"value_max\": b} with finite "
              "a < b, and optionally \"action_hidden\": H in [0, %d] (0: linear action "
              "input)", L->path, PAC_MAX_ACTION_HIDDEN);
bad:
    L->rc = -EINVAL;
fail:
    json_decref(root);
    return L->rc ? L->rc : -EINVAL;
}

/* ---- load -------------------------------------------------------------- */

/* Forget the load-only tables (pac_alloc_load_only memory) before free_load_only frees them.
 * Init-only. */
static void forget_load_only(pac_t *m)
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
        pacd_errf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    pac_loader_t L = { .m = m, .ck = ck, .path = path, .err = err, .errlen = errlen };
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
    expect_slab_bytes(ck, m);
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
        if (f->source_kind == POLICY_SOURCE_PREVIOUS_ACTION)
            has_prev = 1;
        else
            has_prop = 1;
    }
    int g_prop = has_prop ? 0 : -1;
    int g_prev = has_prev ? has_prop : -1;
    int g_cam0 = has_prop + has_prev;
    int g_task = g_cam0 + spec->n_images;
    int n_groups = g_task + (m->task_kind != POLICY_TASK_NONE ? 1 : 0);
    float *modality = read_load_only(&L, "modality", 2, n_groups, d, 0, 0);

    /* proprioception tokens */
    m->n_tokens = m->obs_dim;
    if (m->obs_dim > 0) {
        m->mean = read_table(&L, "obs_norm.mean", 1, m->obs_dim, 0, 0, 0);
        m->std = read_table(&L, "obs_norm.std", 1, m->obs_dim, 0, 0, 0);
        m->prop_w = read_load_only(&L, "proprio.weight", 2, m->obs_dim, d, 0, 0);
        float *pb = read_load_only(&L, "proprio.bias", 1, d, 0, 0, 0);
        m->prop_add = read_load_only(&L, "proprio.pos", 2, m->obs_dim, d, 0, 0);
        if (L.rc)
            goto fail;
        for (int i = 0; i < m->obs_dim; i++) {
            if (m->std[i] < 0.0f) {
                pacd_errf(err, errlen, "%s: tensor 'obs_norm.std': element %d is negative "
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
            int g = f->source_kind == POLICY_SOURCE_PREVIOUS_ACTION ? g_prev : g_prop;
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
                pacd_errf(err, errlen, "%s: metadata 'pacd.model': image_encoder: convs[%d] "
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
        cam->proj_raw = read_load_only_fmt(&L, 2, d, c, "cameras.%d.proj.weight", ci);
        float *pb = read_load_only_fmt(&L, 1, d, 0, "cameras.%d.proj.bias", ci);
        float *pr = read_load_only_fmt(&L, 2, h, d, "cameras.%d.pos_row", ci);
        float *pc = read_load_only_fmt(&L, 2, w, d, "cameras.%d.pos_col", ci);
        cam->tok_add = pac_alloc_load_only(&L, (size_t)p * d);
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
    if (m->task_kind != POLICY_TASK_NONE) {
        const float *mod = modality + (size_t)g_task * d;
        m->task_row = m->n_tokens++;
        if (m->task_kind == POLICY_TASK_ID) {
            m->task_tab = read_table(&L, "task.embed", 2, m->task_count, d, 0, 0);
            for (int t = 0; !L.rc && t < m->task_count; t++)
                for (int j = 0; j < d; j++)
                    m->task_tab[(size_t)t * d + j] += mod[j];
        } else {
            m->task_w = read_table(&L, "task.proj.weight", 2, d, m->task_dim, 0, 0);
            m->task_add = read_table(&L, "task.proj.bias", 1, d, 0, 0, 0);
            for (int j = 0; !L.rc && j < d; j++)
                m->task_add[j] += mod[j];
        }
    }
    spec->task_kind = m->task_kind;
    spec->task_count = m->task_count;
    spec->task_dim = m->task_dim;

    /* encoder */
    m->latents = read_table(&L, "encoder.latents", 2, m->n_lat, d, 0, 0);
    load_block(&L, &m->enc_cross, "encoder.cross", 0);
    const_queries(&L, &m->enc_cross, m->latents, m->n_lat);
    pac_plan_encoder_kv(&L);
    if (m->n_blocks) {
        m->blocks = calloc((size_t)m->n_blocks, sizeof *m->blocks);
        if (!m->blocks) {
            pacd_errf(err, errlen, "%s: out of memory", path);
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
    m->queries = read_table(&L, "policy.queries", 2, m->n_q, d, 0, 0);
    load_block(&L, &m->dec, "policy.cross", 0);
    const_queries(&L, &m->dec, m->queries, m->n_q);
    pac_plan_decoder(&L);
    m->dec_ln_w = read_table(&L, "policy.ln.weight", 1, d, 0, 0, 0);
    m->dec_ln_b = read_table(&L, "policy.ln.bias", 1, d, 0, 0, 0);
    pac_pack_weights(&L, read_load_only(&L, "policy.out.weight", 2, m->out_cols, d, 0, 0),
                     m->out_cols, d, &m->dec_out_w);
    m->dec_out_b = read_table(&L, "policy.out.bias", 1, m->out_cols, 0, 0, 0);
    /* critic */
    if (m->has_critic) {
        m->c_query = read_table(&L, "critic.query", 1, d, 0, 0, 0);
        const int ch = m->c_hidden, A = m->action_dim;
        if (ch) {
            /* the MLP action input (nn.Sequential: .0 Linear, .1 GELU, .2 Linear);
             * read_load_only checks each shape against the file before allocating */
            pac_pack_weights(&L, read_load_only(&L, "critic.action_proj.0.weight", 2, ch, A,
                                                0, 0), ch, A, &m->c_aw1);
            m->c_ab1 = read_table(&L, "critic.action_proj.0.bias", 1, ch, 0, 0, 0);
            pac_pack_weights(&L, read_load_only(&L, "critic.action_proj.2.weight", 2, d, ch,
                                                0, 0), d, ch, &m->c_aw2);
            m->c_ab2 = read_table(&L, "critic.action_proj.2.bias", 1, d, 0, 0, 0);
        } else {
            m->c_aw = read_table(&L, "critic.action_proj.weight", 2, d, A, 0, 0);
            m->c_ab = read_table(&L, "critic.action_proj.bias", 1, d, 0, 0, 0);
        }
        load_block(&L, &m->crit, "critic.cross", 0);
        m->c_ln_w = read_table(&L, "critic.ln.weight", 1, d, 0, 0, 0);
        m->c_ln_b = read_table(&L, "critic.ln.bias", 1, d, 0, 0, 0);
        pac_pack_weights(&L, read_load_only(&L, "critic.out.weight", 2, m->v_bins, d, 0, 0),
                         m->v_bins, d, &m->c_out_w);
        m->c_out_b = read_table(&L, "critic.out.bias", 1, m->v_bins, 0, 0, 0);
        m->support = pac_alloc_table(&L, (size_t)m->v_bins);
        for (int i = 0; !L.rc && i < m->v_bins; i++)
            m->support[i] = m->v_min + (m->v_max - m->v_min) * (float)i / (float)(m->v_bins - 1);
    }
    spec->has_critic = m->has_critic;
    if (L.rc)
        goto fail;
    const char *stray = ckpt_first_unused(ck);
    if (stray) {
        pacd_errf(err, errlen, "%s: tensor '%s' is not part of the pac model that "
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
        pacd_errf(err, errlen, "%s: out of memory", path);
        L.rc = -ENOMEM;
        goto fail;
    }
    size_t max_y = 1;
    for (int c = 0; c < m->n_cams; c++) {
        size_t py = (size_t)m->cams[c].grid_h * m->cams[c].grid_w * 3 * D;
        max_y = py > max_y ? py : max_y;
    }
    pac_scratch_t *sc = &m->scratch;
    const struct {
        float **buf;
        size_t floats;
    } plan[] = {
        { &sc->task_token, D },   /* the other tokens' K/V rows: pac_plan_encoder_kv */
        { &sc->kv_norm, lx_max },
        { &sc->kv, kv_max },
        { &sc->scores, s_max },
        { &sc->attn_out, nq_max * D },
        { &sc->latents, N * D },
        { &sc->q_norm, nq_max * D },
        { &sc->q, nq_max * D },
        { &sc->mlp_hidden, nq_max * D * (size_t)m->ratio },
        { &sc->dec_x, Q * D },
        { &sc->logits, Q * (size_t)m->out_cols },
        { &sc->critic_logits, (size_t)(m->v_bins > 0 ? m->v_bins : 1) },
        { &sc->critic_x, D },
        { &sc->critic_hidden, (size_t)(m->c_hidden > 0 ? m->c_hidden : 1) },
        { &sc->im2col, m->n_cams ? max_cols : 1 },
        { &sc->feat_a, m->n_cams ? max_feat : 1 },
        { &sc->feat_b, m->n_cams ? max_feat : 1 },
        { &sc->feat_c, m->n_cams ? max_feat : 1 },
        { &sc->cam_kv3, max_y },
        { &sc->dec_ctx, m->dec_fast ? hq * D : 1 },
        { &sc->winograd, max_wino },
        { &sc->zeros, max_cin },
    };
    enum { N_SCRATCH = sizeof plan / sizeof plan[0] };
    size_t offset[N_SCRATCH];
    for (int i = 0; i < N_SCRATCH; i++) {
        offset[i] = nn_arena_reserve(m->arena, plan[i].floats);
        if (offset[i] == (size_t)-1)
            L.rc = -ENOMEM;   /* reported below */
    }
    if (!L.rc && charge_load_budget(&L, nn_arena_bytes(m->arena), "scratch arena"))
        goto fail;
    if (L.rc || nn_arena_commit(m->arena) != 0) {
        pacd_errf(err, errlen, "%s: cannot allocate the %zu-byte scratch arena", path,
                  nn_arena_bytes(m->arena));
        L.rc = -ENOMEM;
        goto fail;
    }
    for (int i = 0; i < N_SCRATCH; i++)
        *plan[i].buf = nn_arena_ptr(m->arena, offset[i]);
    m->conv_scratch = (nn_conv_scratch_t){ .cols = sc->im2col, .winograd = sc->winograd,
                                           .zeros = sc->zeros };

    pac_plan_link(m);
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
        float *tv = m->task_kind == POLICY_TASK_VECTOR
                        ? calloc((size_t)m->task_dim, sizeof(float)) : NULL;
        if ((max_img && !blank) || (m->task_kind == POLICY_TASK_VECTOR && !tv)) {
            free(blank);
            free(tv);
            pacd_errf(err, errlen, "%s: out of memory", path);
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
    forget_load_only(m);
    free_load_only(&L);
    return 0;
fail:
    {
        void *v = m;
        pac_destroy(&v);
    }
    free_load_only(&L);
    return L.rc ? L.rc : -EINVAL;
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
    *logits = m->scratch.logits;
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
