/* ckpt — safetensors checkpoint reader (docs/checkpoint.md).
 *
 * A safetensors file is: 8 bytes little-endian u64 N, N bytes of UTF-8 JSON
 * header, then the data section of raw little-endian tensors. The header maps
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end)} (offsets
 * relative to the start of the data section) plus an optional "__metadata__"
 * object of string -> string (format: the Hugging Face safetensors spec).
 *
 * ckpt_open() maps the file read-only, validates the whole header (see
 * docs/checkpoint.md "Validation") and computes the SHA-256 of the file.
 * Tensor data is read through ckpt_read_f32(), which converts F16/BF16 to F32
 * into caller-owned memory, so nothing in the policy keeps pointing into the
 * mapping after load.
 *
 * Threading: every function here is init-only (it allocates or reads the
 * file); none is RT-safe. One ckpt_t must not be used from two threads.
 */
#ifndef PACD_POLICY_CKPT_H
#define PACD_POLICY_CKPT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_MAX_DIMS 8
/* Header size limit (bytes). The same limit as the reference safetensors
 * implementation (100 MB); a longer header is rejected as absurd. */
#define CKPT_MAX_HEADER (100u * 1000u * 1000u)

typedef struct ckpt ckpt_t;

typedef enum {
    CKPT_F32 = 1,   /* IEEE 754 binary32 */
    CKPT_F16 = 2,   /* IEEE 754 binary16 */
    CKPT_BF16 = 3,  /* bfloat16: the upper 16 bits of a binary32 */
} ckpt_dtype_t;

/* One tensor of the file. `data` points into the read-only mapping and is
 * valid until ckpt_destroy(); it may be unaligned. */
typedef struct {
    const char *name;
    ckpt_dtype_t dtype;
    int ndim;                      /* 0 (scalar) .. CKPT_MAX_DIMS */
    int64_t shape[CKPT_MAX_DIMS];  /* row-major, outermost dimension first */
    int64_t numel;                 /* product of shape (1 for a scalar) */
    uint64_t begin, end;           /* data_offsets, relative to the data section */
    const uint8_t *data;
} ckpt_tensor_t;

/* Open, map and validate `path`. Init-only.
 * Returns the checkpoint (caller owns it; free with ckpt_destroy) or NULL with
 * a message in err (errlen bytes, may be 0) that starts with the path and
 * names the offending tensor or key. Reasons: the file cannot be opened or
 * mapped (the errno text), is shorter than 8 bytes, its header length is past
 * the end of the file or above CKPT_MAX_HEADER, the header is not valid JSON
 * or not a JSON object, a tensor entry lacks or has a malformed dtype, shape
 * or data_offsets, a dtype other than F32/F16/BF16, a shape whose size does
 * not match its byte range, a byte range outside the data section, two
 * tensors whose byte ranges overlap, or "__metadata__" that is not an object
 * of strings. Metadata keys are checked by the policy loader, not here. */
ckpt_t *ckpt_open(const char *path, char *err, size_t errlen);

/* Unmap and free; sets *self_p to NULL. NULL-safe. Init-only. */
void ckpt_destroy(ckpt_t **self_p);

/* The path given to ckpt_open. Valid until destroy. */
const char *ckpt_path(const ckpt_t *self);

/* Lower-case hex SHA-256 of the whole file (64 chars + NUL). Valid until destroy. */
const char *ckpt_sha256(const ckpt_t *self);

/* Number of tensors and the i-th (0 <= i < count, in data-offset order), or NULL. */
int ckpt_tensor_count(const ckpt_t *self);
const ckpt_tensor_t *ckpt_tensor_at(const ckpt_t *self, int i);

/* The tensor called `name`, or NULL. Marks it as used (see ckpt_first_unused). */
const ckpt_tensor_t *ckpt_find(ckpt_t *self, const char *name);

/* Name of the first tensor (data-offset order) never returned by ckpt_find,
 * or NULL when every tensor was used. Lets a loader reject stray tensors. */
const char *ckpt_first_unused(const ckpt_t *self);

/* The "__metadata__" value for `key`, or NULL when absent. */
const char *ckpt_metadata(const ckpt_t *self, const char *key);

/* Find tensor `name` and check that its shape is exactly shape[0..ndim),
 * without reading it: lets a loader check shapes taken from the metadata
 * against the file before it allocates memory sized by them (the tensor's
 * bytes are inside the file, so such memory is bounded by the file size).
 * Marks the tensor as used. Returns 0, or -ENOENT (missing), -EINVAL (shape
 * mismatch, bad args) with a message in err naming the file and tensor. */
int ckpt_check_shape(ckpt_t *self, const char *name, int ndim, const int64_t *shape,
                     char *err, size_t errlen);

/* Find tensor `name`, check that its shape is exactly shape[0..ndim) and copy
 * it into dst (numel floats) converted to F32. Also rejects NaN/Inf values.
 * Returns 0, or -ENOENT (missing), -EINVAL (shape mismatch, bad args),
 * -EDOM (non-finite value) with a message in err naming the file and tensor. */
int ckpt_read_f32(ckpt_t *self, const char *name, int ndim, const int64_t *shape,
                  float *dst, char *err, size_t errlen);

/* Name of a dtype ("F32", "F16", "BF16"). */
const char *ckpt_dtype_name(ckpt_dtype_t dtype);

/* Element conversions (IEEE 754 binary16 incl. subnormals/Inf/NaN; bfloat16).
 * Pure functions, RT-safe. */
float ckpt_f16_to_f32(uint16_t h);
float ckpt_bf16_to_f32(uint16_t b);

#endif
