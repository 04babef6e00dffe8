/* nn_slab — huge-page slabs (see nn_slab.h). */
#include "nn_slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "nn.h"

size_t nn_slab_request_bytes(size_t n_floats)
{
    if (n_floats > SIZE_MAX / sizeof(float) / 2)
        return 0;
    return ((n_floats ? n_floats : 1) * sizeof(float) + NN_ARENA_ALIGN - 1) / NN_ARENA_ALIGN *
           NN_ARENA_ALIGN;
}

float *nn_slab_alloc(nn_slab_t *s, size_t n_floats)
{
    const size_t bytes = nn_slab_request_bytes(n_floats);
    if (!bytes)
        return NULL;
    if (!s->next || bytes > s->left * sizeof(float)) {
        size_t sb = s->bytes ? 2 * s->bytes : NN_SLAB_HUGE;
        sb = sb > NN_SLAB_MAX ? NN_SLAB_MAX : sb;
        sb = bytes > sb ? (bytes + NN_SLAB_HUGE - 1) / NN_SLAB_HUGE * NN_SLAB_HUGE : sb;
        if (s->n_chunks == s->cap_chunks) {
            int cap = s->cap_chunks ? s->cap_chunks * 2 : 64;
            void **a = realloc(s->chunks, sizeof *a * (size_t)cap);
            if (!a)
                return NULL;
            s->chunks = a;
            s->cap_chunks = cap;
        }
        float *p = aligned_alloc(NN_SLAB_HUGE, sb);
        if (!p)
            return NULL;
        (void)madvise(p, sb, MADV_HUGEPAGE);   /* advice: fine when refused */
        memset(p, 0, sb);
        s->chunks[s->n_chunks++] = p;
        s->next = p;
        s->left = sb / sizeof(float);
        s->bytes = sb;
    }
    float *p = s->next;
    s->next += bytes / sizeof(float);
    s->left -= bytes / sizeof(float);
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
