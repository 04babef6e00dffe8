/* ckpt — safetensors checkpoint reader. See policy_ckpt.h and docs/checkpoint.md. */
#include "policy_ckpt.h"
#include "pacd_err.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pacd reads little-endian safetensors data directly; add byte swapping for this host"
#endif

struct ckpt {
    char *path;
    int fd;
    uint8_t *map;
    size_t size;
    const uint8_t *data;     /* start of the data section */
    uint64_t data_len;
    json_t *header;          /* owns the tensor names */
    json_t *metadata;        /* borrowed from header, may be NULL */
    int n_tensors;
    ckpt_tensor_t *tensors;  /* sorted by begin */
    unsigned char *used;
    char sha256[65];
};

float ckpt_f16_to_f32(uint16_t h)
{
    /* binary16: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits. */
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t frac = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (frac == 0) {
            bits = sign;
        } else {
            /* subnormal: value = frac * 2^-24, exact in binary32 */
            float v = ldexpf((float)frac, -24);
            return sign ? -v : v;
        }
    } else if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (frac << 13);   /* Inf or NaN */
    } else {
        bits = sign | ((exp + 127u - 15u) << 23) | (frac << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float ckpt_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

const char *ckpt_dtype_name(ckpt_dtype_t dtype)
{
    switch (dtype) {
    case CKPT_F32: return "F32";
    case CKPT_F16: return "F16";
    case CKPT_BF16: return "BF16";
    }
    return "?";
}

static size_t dtype_size(ckpt_dtype_t dtype)
{
    return dtype == CKPT_F32 ? 4 : 2;
}

static int parse_dtype(const char *s, ckpt_dtype_t *out)
{
    if (strcmp(s, "F32") == 0) { *out = CKPT_F32; return 0; }
    if (strcmp(s, "F16") == 0) { *out = CKPT_F16; return 0; }
    if (strcmp(s, "BF16") == 0) { *out = CKPT_BF16; return 0; }
    return -1;
}

static int cmp_tensor(const void *a, const void *b)
{
    const ckpt_tensor_t *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int compute_sha256(const uint8_t *buf, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -EIO;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

/* Parse one tensor entry into t. Returns 0 or -EINVAL with err set. */
static int parse_entry(const char *path, const char *name, json_t *entry,
                       uint64_t data_len, ckpt_tensor_t *t, char *err, size_t errlen)
{
    if (!json_is_object(entry)) {
        pacd_errf(err, errlen, "%s: tensor '%s': header entry is not a JSON object "
                  "(expected {\"dtype\", \"shape\", \"data_offsets\"})", path, name);
        return -EINVAL;
    }
    json_t *jd = json_object_get(entry, "dtype");
    json_t *js = json_object_get(entry, "shape");
    json_t *jo = json_object_get(entry, "data_offsets");
    if (!jd || !js || !jo) {
        pacd_errf(err, errlen, "%s: tensor '%s': header entry lacks \"%s\"", path, name,
                  !jd ? "dtype" : !js ? "shape" : "data_offsets");
        return -EINVAL;
    }
    if (!json_is_string(jd)) {
        pacd_errf(err, errlen, "%s: tensor '%s': dtype is not a string", path, name);
        return -EINVAL;
    }
    if (parse_dtype(json_string_value(jd), &t->dtype) != 0) {
        pacd_errf(err, errlen, "%s: tensor '%s': dtype '%s' is not supported (pacd reads "
                  "F32, F16 and BF16); re-export the checkpoint with --dtype f32",
                  path, name, json_string_value(jd));
        return -EINVAL;
    }
    if (!json_is_array(js) || json_array_size(js) > CKPT_MAX_DIMS) {
        pacd_errf(err, errlen, "%s: tensor '%s': shape is not an array of at most %d integers",
                  path, name, CKPT_MAX_DIMS);
        return -EINVAL;
    }
    t->ndim = (int)json_array_size(js);
    t->numel = 1;
    int overflow = 0;
    for (int d = 0; d < t->ndim; d++) {
        json_t *v = json_array_get(js, (size_t)d);
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            pacd_errf(err, errlen, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                      path, name, d);
            return -EINVAL;
        }
        t->shape[d] = (int64_t)json_integer_value(v);
        if (t->shape[d] != 0 && t->numel > INT64_MAX / 8 / t->shape[d])
            overflow = 1;
        else
            t->numel *= t->shape[d];
    }
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1))) {
        pacd_errf(err, errlen, "%s: tensor '%s': data_offsets is not an array of two integers",
                  path, name);
        return -EINVAL;
    }
    json_int_t b = json_integer_value(json_array_get(jo, 0));
    json_int_t e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b) {
        pacd_errf(err, errlen, "%s: tensor '%s': data_offsets [%lld, %lld) is not a valid range",
                  path, name, (long long)b, (long long)e);
        return -EINVAL;
    }
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->end > data_len) {
        pacd_errf(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu) end past the data "
                  "section (%llu bytes); the file is truncated or its header is wrong",
                  path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                  (unsigned long long)data_len);
        return -EINVAL;
    }
    if (overflow) {
        pacd_errf(err, errlen, "%s: tensor '%s': shape holds more elements than any file can "
                  "(the product overflows)", path, name);
        return -EINVAL;
    }
    if ((uint64_t)t->numel * dtype_size(t->dtype) != t->end - t->begin) {
        pacd_errf(err, errlen, "%s: tensor '%s': shape holds %lld %s values (%llu bytes) but "
                  "data_offsets span %llu bytes", path, name, (long long)t->numel,
                  ckpt_dtype_name(t->dtype),
                  (unsigned long long)t->numel * dtype_size(t->dtype),
                  (unsigned long long)(t->end - t->begin));
        return -EINVAL;
    }
    return 0;
}

static int parse_header(ckpt_t *self, const char *hdr, size_t hlen, char *err, size_t errlen)
{
    const char *path = self->path;
    json_error_t jerr;
    self->header = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!self->header) {
        pacd_errf(err, errlen, "%s: header is not valid JSON: %s (line %d, column %d); "
                  "the file is not a safetensors checkpoint or is damaged",
                  path, jerr.text, jerr.line, jerr.column);
        return -EINVAL;
    }
    if (!json_is_object(self->header)) {
        pacd_errf(err, errlen, "%s: header is not a JSON object", path);
        return -EINVAL;
    }
    size_t n = json_object_size(self->header);
    self->tensors = calloc(n ? n : 1, sizeof *self->tensors);
    self->used = calloc(n ? n : 1, 1);
    if (!self->tensors || !self->used) {
        pacd_errf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    const char *key;
    json_t *val;
    json_object_foreach(self->header, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                pacd_errf(err, errlen, "%s: \"__metadata__\" is not a JSON object", path);
                return -EINVAL;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    pacd_errf(err, errlen, "%s: metadata '%s': value is not a string "
                              "(safetensors metadata maps strings to strings)", path, mk);
                    return -EINVAL;
                }
            }
            self->metadata = val;
            continue;
        }
        ckpt_tensor_t *t = &self->tensors[self->n_tensors];
        t->name = key;
        int rc = parse_entry(path, key, val, self->data_len, t, err, errlen);
        if (rc)
            return rc;
        t->data = self->data + t->begin;
        self->n_tensors++;
    }
    qsort(self->tensors, (size_t)self->n_tensors, sizeof *self->tensors, cmp_tensor);
    const ckpt_tensor_t *prev = NULL;
    for (int i = 0; i < self->n_tensors; i++) {
        const ckpt_tensor_t *t = &self->tensors[i];
        if (t->begin == t->end)
            continue;   /* empty tensors occupy no bytes */
        if (prev && t->begin < prev->end) {
            pacd_errf(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu) overlap tensor "
                      "'%s' [%llu, %llu)", path, t->name, (unsigned long long)t->begin,
                      (unsigned long long)t->end, prev->name, (unsigned long long)prev->begin,
                      (unsigned long long)prev->end);
            return -EINVAL;
        }
        prev = t;
    }
    return 0;
}

ckpt_t *ckpt_open(const char *path, char *err, size_t errlen)
{
    if (!path) {
        pacd_errf(err, errlen, "checkpoint path is NULL");
        return NULL;
    }
    ckpt_t *self = calloc(1, sizeof *self);
    if (!self) {
        pacd_errf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    self->fd = -1;
    if (!(self->path = strdup(path))) {
        pacd_errf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    self->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (self->fd < 0) {
        pacd_errf(err, errlen, "%s: cannot open checkpoint: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(self->fd, &st) != 0) {
        pacd_errf(err, errlen, "%s: cannot stat checkpoint: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        pacd_errf(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size < 8) {
        pacd_errf(err, errlen, "%s: file is %lld bytes, shorter than the 8-byte safetensors "
                  "header length; it is truncated or not a checkpoint",
                  path, (long long)st.st_size);
        goto fail;
    }
    self->size = (size_t)st.st_size;
    self->map = mmap(NULL, self->size, PROT_READ, MAP_PRIVATE, self->fd, 0);
    if (self->map == MAP_FAILED) {
        self->map = NULL;
        pacd_errf(err, errlen, "%s: cannot map checkpoint: %s", path, strerror(errno));
        goto fail;
    }
    close(self->fd);   /* the mapping stays valid */
    self->fd = -1;
    uint64_t hlen;
    memcpy(&hlen, self->map, 8);   /* little-endian host (checked at compile time) */
    if (hlen > CKPT_MAX_HEADER) {
        pacd_errf(err, errlen, "%s: header length %llu is absurd (limit %u bytes); the file is "
                  "not a safetensors checkpoint",
                  path, (unsigned long long)hlen, CKPT_MAX_HEADER);
        goto fail;
    }
    if (hlen > self->size - 8) {
        pacd_errf(err, errlen, "%s: header length %llu is past the end of the file (%zu bytes); "
                  "the file is truncated", path, (unsigned long long)hlen, self->size);
        goto fail;
    }
    if (hlen < 2) {
        pacd_errf(err, errlen, "%s: header length %llu is too short for a JSON object", path,
                  (unsigned long long)hlen);
        goto fail;
    }
    self->data = self->map + 8 + hlen;
    self->data_len = self->size - 8 - hlen;
    if (parse_header(self, (const char *)self->map + 8, (size_t)hlen, err, errlen) != 0)
        goto fail;
    if (compute_sha256(self->map, self->size, self->sha256) != 0) {
        pacd_errf(err, errlen, "%s: SHA-256 computation failed (libcrypto)", path);
        goto fail;
    }
    return self;
fail:
    ckpt_destroy(&self);
    return NULL;
}

void ckpt_destroy(ckpt_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ckpt_t *self = *self_p;
    if (self->map)
        munmap(self->map, self->size);
    if (self->fd >= 0)
        close(self->fd);
    json_decref(self->header);
    free(self->tensors);
    free(self->used);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const char *ckpt_path(const ckpt_t *self) { return self ? self->path : NULL; }
const char *ckpt_sha256(const ckpt_t *self) { return self ? self->sha256 : NULL; }
int ckpt_tensor_count(const ckpt_t *self) { return self ? self->n_tensors : 0; }

const ckpt_tensor_t *ckpt_tensor_at(const ckpt_t *self, int i)
{
    if (!self || i < 0 || i >= self->n_tensors)
        return NULL;
    return &self->tensors[i];
}

const ckpt_tensor_t *ckpt_find(ckpt_t *self, const char *name)
{
    if (!self || !name)
        return NULL;
    for (int i = 0; i < self->n_tensors; i++) {
        if (strcmp(self->tensors[i].name, name) == 0) {
            self->used[i] = 1;
            return &self->tensors[i];
        }
    }
    return NULL;
}

const char *ckpt_first_unused(const ckpt_t *self)
{
    if (!self)
        return NULL;
    for (int i = 0; i < self->n_tensors; i++)
        if (!self->used[i])
            return self->tensors[i].name;
    return NULL;
}

const char *ckpt_metadata(const ckpt_t *self, const char *key)
{
    if (!self || !key || !self->metadata)
        return NULL;
    return json_string_value(json_object_get(self->metadata, key));
}

static void format_shape(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int d = 0; d < ndim && off < len; d++)
        off += (size_t)snprintf(buf + off, len - off, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

/* ckpt_check_shape's work: the tensor, or NULL with *rc and err set. */
static const ckpt_tensor_t *find_shaped(ckpt_t *self, const char *name, int ndim,
                                        const int64_t *shape, int *rc, char *err,
                                        size_t errlen)
{
    const ckpt_tensor_t *t = ckpt_find(self, name);
    if (!t) {
        pacd_errf(err, errlen, "%s: tensor '%s' is missing from the checkpoint", self->path,
                  name);
        *rc = -ENOENT;
        return NULL;
    }
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        char want[160], got[160];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        pacd_errf(err, errlen, "%s: tensor '%s': shape %s, expected %s from the metadata",
                  self->path, name, got, want);
        *rc = -EINVAL;
        return NULL;
    }
    return t;
}

int ckpt_check_shape(ckpt_t *self, const char *name, int ndim, const int64_t *shape,
                     char *err, size_t errlen)
{
    if (!self || !name || ndim < 0 || ndim > CKPT_MAX_DIMS || (ndim && !shape)) {
        pacd_errf(err, errlen, "ckpt_check_shape: invalid arguments");
        return -EINVAL;
    }
    int rc = 0;
    return find_shaped(self, name, ndim, shape, &rc, err, errlen) ? 0 : rc;
}

int ckpt_read_f32(ckpt_t *self, const char *name, int ndim, const int64_t *shape,
                  float *dst, char *err, size_t errlen)
{
    if (!self || !name || ndim < 0 || ndim > CKPT_MAX_DIMS || (ndim && !shape) || !dst) {
        pacd_errf(err, errlen, "ckpt_read_f32: invalid arguments");
        return -EINVAL;
    }
    int rc = 0;
    const ckpt_tensor_t *t = find_shaped(self, name, ndim, shape, &rc, err, errlen);
    if (!t)
        return rc;
    for (int64_t i = 0; i < t->numel; i++) {
        float v;
        if (t->dtype == CKPT_F32) {
            memcpy(&v, t->data + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            v = t->dtype == CKPT_F16 ? ckpt_f16_to_f32(h) : ckpt_bf16_to_f32(h);
        }
        if (!isfinite(v)) {
            pacd_errf(err, errlen, "%s: tensor '%s': element %lld is %s; the checkpoint holds "
                      "diverged weights",
                      self->path, name, (long long)i, isnan(v) ? "NaN" : "Inf");
            return -EDOM;
        }
        dst[i] = v;
    }
    return 0;
}
