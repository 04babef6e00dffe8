/* nn_slab — slabs for long-lived tables, huge-page ones for big models (see
 * nn_slab.h). */
#include "nn_slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "nn.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NN_SLAB_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define NN_SLAB_ASAN 1
#endif
#ifdef NN_SLAB_ASAN
#include <sanitizer/asan_interface.h>
/* the uncarved part of a slab is poisoned: a read past a request is reported */
#define SLAB_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SLAB_POISON(p, n) ((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

size_t nn_slab_request_bytes(size_t n_floats)
{
    if (n_floats > SIZE_MAX / sizeof(float) / 2)
        return 0;
    return round_up((n_floats ? n_floats : 1) * sizeof(float), NN_ARENA_ALIGN);
}

void nn_slab_expect(nn_slab_t *s, size_t bytes)
{
    if (!s->n_chunks)
        s->expect = bytes;
}

/* Size in bytes of the next slab of the chain for a request of `bytes`
 * (nn_slab_request_bytes, so at most about SIZE_MAX / 2): double the last
 * slab up to NN_SLAB_MAX, or start at the estimate when small, else at
 * NN_SLAB_HUGE; at least the request; from NN_SLAB_HUGE up a multiple of it. */
static size_t next_slab_bytes(const nn_slab_t *s, size_t bytes)
{
    size_t sb;
    if (s->bytes)
        sb = s->bytes > NN_SLAB_MAX / 2 ? NN_SLAB_MAX : 2 * s->bytes;
    else if (s->expect && s->expect < NN_SLAB_HUGE)
        sb = s->expect;
    else
        sb = NN_SLAB_HUGE;
    sb = bytes > sb ? bytes : sb;
    if (sb >= NN_SLAB_HUGE)
        return round_up(sb, NN_SLAB_HUGE);
    return sb < NN_SLAB_PAGE ? NN_SLAB_PAGE : round_up(sb, NN_SLAB_PAGE);
}

float *nn_slab_alloc(nn_slab_t *s, size_t n_floats)
{
    const size_t bytes = nn_slab_request_bytes(n_floats);
    if (!bytes)
        return NULL;
    if (!s->next || bytes > s->left * sizeof(float)) {
        const size_t sb = next_slab_bytes(s, bytes);
        const int huge = sb >= NN_SLAB_HUGE;
        if (s->n_chunks == s->cap_chunks) {
            int cap = s->cap_chunks ? s->cap_chunks * 2 : 64;
            void **a = realloc(s->chunks, sizeof *a * (size_t)cap);
            if (!a)
                return NULL;
            s->chunks = a;
            s->cap_chunks = cap;
        }
        float *p = aligned_alloc(huge ? NN_SLAB_HUGE : NN_ARENA_ALIGN, sb);
        if (!p)
            return NULL;
        if (huge)
            (void)madvise(p, sb, MADV_HUGEPAGE);   /* advice: fine when refused */
        SLAB_POISON(p, sb);
        s->chunks[s->n_chunks++] = p;
        s->next = p;
        s->left = sb / sizeof(float);
        s->bytes = sb;
    }
    float *p = s->next;
    s->next += bytes / sizeof(float);
    s->left -= bytes / sizeof(float);
    SLAB_UNPOISON(p, bytes);
    memset(p, 0, bytes);   /* zeroed as carved: the slab's unused tail stays untouched */
    return p;
}

void nn_slab_free(nn_slab_t *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_chunks; i++)
        free(s->chunks[i]);
    free(s->chunks);
    memset(s, 0, sizeof *s);
}
