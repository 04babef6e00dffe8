/* Test helpers: write safetensors files (valid or deliberately broken) and a
 * small hand-checkable MLP checkpoint. Header-only; used by the policy tests. */
#ifndef PACD_TEST_ST_FIXTURE_H
#define PACD_TEST_ST_FIXTURE_H

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;
    const char *dtype;     /* written verbatim */
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} st_entry_t;

/* Write raw bytes. Returns 0 or -errno. */
static inline int st_write_raw(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    size_t n = len ? fwrite(buf, 1, len, f) : 0;
    int rc = fclose(f);
    return (n == len && rc == 0) ? 0 : -EIO;
}

/* Write: u64 header length, header text, data. */
static inline int st_write_parts(const char *path, uint64_t hlen, const char *header,
                                 size_t header_bytes, const void *data, size_t dlen)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    int ok = fwrite(&hlen, 8, 1, f) == 1;
    if (header_bytes)
        ok = ok && fwrite(header, 1, header_bytes, f) == header_bytes;
    if (dlen)
        ok = ok && fwrite(data, 1, dlen, f) == dlen;
    return (fclose(f) == 0 && ok) ? 0 : -EIO;
}

/* Write a header given as JSON text followed by dlen bytes of data. */
static inline int st_write_header(const char *path, const char *header, const void *data,
                                  size_t dlen)
{
    return st_write_parts(path, strlen(header), header, strlen(header), data, dlen);
}

/* Write a well-formed file: entries laid out contiguously in order; metadata
 * is a jansson object of strings (borrowed) or NULL. */
static inline int st_write(const char *path, const st_entry_t *e, int n, json_t *metadata)
{
    json_t *hdr = json_object();
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < e[i].ndim; d++)
            json_array_append_new(shape, json_integer(e[i].shape[d]));
        json_object_set_new(hdr, e[i].name, json_pack("{s:s, s:o, s:[I, I]}",
            "dtype", e[i].dtype, "shape", shape, "data_offsets",
            (json_int_t)total, (json_int_t)(total + e[i].nbytes)));
        total += e[i].nbytes;
    }
    if (metadata)
        json_object_set(hdr, "__metadata__", metadata);
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    unsigned char *data = malloc(total ? total : 1);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        memcpy(data + off, e[i].data, e[i].nbytes);
        off += e[i].nbytes;
    }
    int rc = st_write_header(path, text, data, total);
    free(data);
    free(text);
    return rc;
}

/* Changes st_rewrite makes to a copy of a safetensors file. */
typedef struct {
    void (*edit_meta)(json_t *metadata, void *arg);   /* edits __metadata__ (an object
                                                          of strings), or NULL */
    void *arg;               /* passed to edit_meta */
    const char *drop;        /* leave this tensor out, or NULL */
    const char *grow;        /* this tensor one larger in its first dimension (zero
                                bytes), or NULL */
} st_edit_t;

/* Copy the safetensors file src to dst with the changes in *e (test data
 * only; a file written by pacd_torch.export or st_write). The tensors' data
 * is laid out anew, contiguously, in header order. Returns 0 or -1. */
static inline int st_rewrite(const char *src, const char *dst, const st_edit_t *e)
{
    int rc = -1;
    unsigned char *buf = NULL, *data = NULL;
    json_t *hdr = NULL, *out = json_object();
    char *text = NULL;
    FILE *f = fopen(src, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0)
        goto done;
    long len = ftell(f);
    uint64_t hlen;
    if (len < 8 || fseek(f, 0, SEEK_SET) != 0 || !(buf = malloc((size_t)len)) ||
        fread(buf, 1, (size_t)len, f) != (size_t)len)
        goto done;
    memcpy(&hlen, buf, 8);
    if (hlen > (uint64_t)len - 8 || !(hdr = json_loadb((const char *)buf + 8, hlen, 0, NULL)))
        goto done;
    const unsigned char *src_data = buf + 8 + hlen;
    size_t src_len = (size_t)len - 8 - hlen;
    if (!(data = malloc(src_len + 65536)))
        goto done;
    size_t total = 0;
    const char *name;
    json_t *v;
    json_object_foreach(hdr, name, v) {
        if (strcmp(name, "__metadata__") == 0) {
            json_t *meta = json_deep_copy(v);
            if (e->edit_meta)
                e->edit_meta(meta, e->arg);
            json_object_set_new(out, name, meta);
            continue;
        }
        if (e->drop && strcmp(name, e->drop) == 0)
            continue;
        json_t *t = json_deep_copy(v), *shape = json_object_get(t, "shape");
        json_t *offs = json_object_get(t, "data_offsets");
        size_t b0 = (size_t)json_integer_value(json_array_get(offs, 0));
        size_t b1 = (size_t)json_integer_value(json_array_get(offs, 1));
        size_t n = b1 - b0;
        if (b1 < b0 || b1 > src_len) {
            json_decref(t);
            goto done;
        }
        if (e->grow && strcmp(name, e->grow) == 0) {
            size_t numel = 1;
            json_int_t d0 = json_integer_value(json_array_get(shape, 0));
            json_array_set_new(shape, 0, json_integer(d0 + 1));
            for (size_t d = 0; d < json_array_size(shape); d++)
                numel *= (size_t)json_integer_value(json_array_get(shape, d));
            size_t elem = strcmp(json_string_value(json_object_get(t, "dtype")), "F32") == 0
                              ? 4 : 2;
            size_t grown = numel * elem;
            if (grown > n + 65536) {
                json_decref(t);
                goto done;
            }
            memset(data + total, 0, grown);
            n = grown;
        } else {
            memcpy(data + total, src_data + b0, n);
        }
        json_object_set_new(t, "data_offsets", json_pack("[I, I]", (json_int_t)total,
                                                         (json_int_t)(total + n)));
        json_object_set_new(out, name, t);
        total += n;
    }
    text = json_dumps(out, JSON_COMPACT);
    if (text)
        rc = st_write_header(dst, text, data, total) == 0 ? 0 : -1;
done:
    if (f)
        fclose(f);
    free(text);
    json_decref(out);
    json_decref(hdr);
    free(data);
    free(buf);
    return rc;
}

/* f32 -> bf16 / f16 for values exactly representable there (test data only). */
static inline uint16_t st_to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16);
}

static inline uint16_t st_to_f16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000u;
    int exp = (int)((b >> 23) & 0xffu);
    uint32_t frac = b & 0x7fffffu;
    if (exp == 0 && frac == 0)
        return (uint16_t)sign;
    return (uint16_t)(sign | (uint32_t)(exp - 127 + 15) << 10 | frac >> 13);
}

/* The hand-checkable MLP (docs in test_policy_ckpt.c):
 * obs_dim 2, hidden [3] relu, tanh head, action dim 2, low [-1, 0], high [1, 2]. */
static const float FX_MEAN[2] = { 1.0f, -1.0f };
static const float FX_STD[2] = { 2.0f, 0.5f };
static const float FX_W0[6] = { 1.0f, 0.0f, 0.0f, 1.0f, 1.0f, -1.0f };   /* [3, 2] */
static const float FX_B0[3] = { 0.0f, -3.0f, 0.5f };
static const float FX_WH[6] = { 0.5f, 1.0f, 1.0f, -1.0f, 0.0f, 2.0f };  /* [2, 3] */
static const float FX_BH[2] = { 0.0f, 0.25f };

typedef struct {
    const char *dtype;         /* dtype of the layer weights: "F32" (default), "F16", "BF16" */
    const char *omit_tensor;   /* leave this tensor out */
    const char *omit_meta;     /* leave this metadata key out */
    const char *meta_key;      /* set this metadata key ... */
    const char *meta_value;    /* ... to this value */
    const char *extra_tensor;  /* add a [1] F32 tensor of this name */
    int nan_weight;            /* put a NaN into head.weight */
    int no_metadata;           /* write no __metadata__ at all */
} fx_opts_t;

static inline int fx_write_mlp(const char *path, const fx_opts_t *o)
{
    static const fx_opts_t none = { 0 };
    if (!o)
        o = &none;
    const char *dt = o->dtype ? o->dtype : "F32";
    int half = strcmp(dt, "F32") != 0;
    const float *src[4] = { FX_W0, FX_B0, FX_WH, FX_BH };
    const int counts[4] = { 6, 3, 6, 2 };
    float f32[4][6];
    uint16_t h16[4][6];
    for (int t = 0; t < 4; t++) {
        for (int i = 0; i < counts[t]; i++) {
            f32[t][i] = src[t][i];
            if (o->nan_weight && t == 2 && i == 4)
                f32[t][i] = NAN;
            h16[t][i] = strcmp(dt, "BF16") == 0 ? st_to_bf16(f32[t][i]) : st_to_f16(f32[t][i]);
        }
    }
    if (o->nan_weight)
        h16[2][4] = strcmp(dt, "BF16") == 0 ? 0x7fc0 : 0x7e00;
    static const float extra = 1.0f;
    st_entry_t all[7] = {
        { "obs_norm.mean", "F32", 1, { 2 }, FX_MEAN, sizeof FX_MEAN },
        { "obs_norm.std", "F32", 1, { 2 }, FX_STD, sizeof FX_STD },
        { "layers.0.weight", dt, 2, { 3, 2 }, half ? (void *)h16[0] : (void *)f32[0], 0 },
        { "layers.0.bias", dt, 1, { 3 }, half ? (void *)h16[1] : (void *)f32[1], 0 },
        { "head.weight", dt, 2, { 2, 3 }, half ? (void *)h16[2] : (void *)f32[2], 0 },
        { "head.bias", dt, 1, { 2 }, half ? (void *)h16[3] : (void *)f32[3], 0 },
        { o->extra_tensor, "F32", 1, { 1 }, &extra, 4 },
    };
    for (int t = 0; t < 4; t++)
        all[2 + t].nbytes = (size_t)counts[t] * (half ? 2 : 4);
    st_entry_t e[7];
    int n = 0;
    for (int i = 0; i < 7; i++) {
        if (!all[i].name || (o->omit_tensor && strcmp(o->omit_tensor, all[i].name) == 0))
            continue;
        e[n++] = all[i];
    }
    json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
        "pacd.format", "pacd-checkpoint",
        "pacd.format_version", "1",
        "pacd.architecture", "mlp",
        "pacd.robot", "panda",
        "pacd.model", "{\"hidden\": [3], \"activation\": \"relu\", \"head\": \"tanh\"}",
        "pacd.observation",
        "[{\"name\": \"q\", \"source\": \"joint_positions\", \"shape\": [2], \"history\": 1}]",
        "pacd.action",
        "{\"space\": \"joint_velocity\", \"dim\": 2, \"low\": [-1, 0], \"high\": [1, 2]}");
    if (o->omit_meta)
        json_object_del(meta, o->omit_meta);
    if (o->meta_key)
        json_object_set_new(meta, o->meta_key, json_string(o->meta_value));
    int rc = st_write(path, e, n, o->no_metadata ? NULL : meta);
    json_decref(meta);
    return rc;
}

/* The action of the fixture for obs, computed by hand:
 * obs [3, 0] -> x = [(3-1)/2, (0+1)/0.5] = [1, 2]
 * layer 0: W0 x + b0 = [1, 2-3, 1-2+0.5] = [1, -1, -0.5] -> relu [1, 0, 0]
 * head: WH h + bH = [0.5, -1 + 0.25] = [0.5, -0.75]
 * action = low + (tanh(y) + 1) / 2 * (high - low) = [tanh(0.5), 1 + tanh(-0.75)]. */
static const float FX_OBS[2] = { 3.0f, 0.0f };

static inline void fx_expected(double out[2])
{
    out[0] = tanh(0.5);
    out[1] = 1.0 + tanh(-0.75);
}

static inline int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static inline void st_rmtree(const char *dir)
{
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
