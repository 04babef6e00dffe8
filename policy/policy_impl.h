/* Internal interface between policy.c (spec, dispatch) and the architectures
 * (arch/arch_mlp.c, arch/arch_pac_*.c). Not installed, not public. */
#ifndef PACD_POLICY_IMPL_H
#define PACD_POLICY_IMPL_H

#include <stddef.h>

#include <jansson.h>

#include "pacd_err.h"   /* pacd_errf */
#include "policy.h"
#include "policy_ckpt.h"
#include "nn.h"

/* Driver table of one architecture. Every entry is required unless marked
 * optional. */
typedef struct {
    const char *name;   /* value of "pacd.architecture" */
    /* Build the model from the checkpoint. `spec` is already filled from the
     * common metadata; the loader may check it further and fills the
     * architecture's own fields (has_critic, task_*). Init-only.
     * Returns 0 and *impl_out (caller owns, free with destroy) or a negative
     * errno with a message in err naming the file and tensor/key. */
    int (*load)(ckpt_t *ck, policy_spec_t *spec, const policy_options_t *options,
                void **impl_out, char *err, size_t errlen);
    /* One step; the arguments are already checked non-NULL. RT-safe. */
    int (*step)(void *impl, const policy_observation_t *obs, float *action,
                policy_extra_t *extra);
    size_t (*arena_bytes)(const void *impl);
    void (*destroy)(void **impl_p);
    /* Optional (NULL: -ENOTSUP): the last step's logits, see policy_logits. */
    int (*logits)(const void *impl, const float **logits, int *rows, int *cols);
    /* Optional (NULL: "blas"): the matrix kernel in use, see policy_kernel. */
    const char *(*kernel)(const void *impl);
} policy_arch_t;

/* The matrix kernel options ask for: the forced one, or with
 * POLICY_KERNEL_AUTO (or NULL options) nn_gemm_best(threads). policy_load has
 * already checked that the CPU runs it. Init-only. */
nn_gemm_kind_t policy_gemm_kind(const policy_options_t *options);

extern const policy_arch_t policy_arch_mlp;
extern const policy_arch_t policy_arch_pac;

/* The JSON object in the checkpoint metadata value text (key: its name, as
 * "pacd.model"); NULL when text is not one, with "<path>: metadata '<key>':
 * not a JSON object" (and the parser's message) in err. Duplicate keys are
 * refused. The caller json_decref()s it. Init-only. */
json_t *policy_json_object(const char *path, const char *key, const char *text, char *err,
                           size_t errlen);

/* Map a tanh output t in [-1, 1] to [low, high] and clamp (float rounding
 * never leaves the bounds): low + (t + 1) * 0.5 * (high - low). RT-safe. */
static inline float policy_rescale(float t, float low, float high)
{
    float a = low + (t + 1.0f) * 0.5f * (high - low);
    return a < low ? low : a > high ? high : a;
}

#endif
