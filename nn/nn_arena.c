/* nn_arena — the scratch arena planner (nn.h: nn_arena_*): buffers are
 * reserved in a stack discipline while a model loads, then the peak is
 * allocated once. */
#include "nn.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct nn_arena {
    size_t top;      /* planning stack top, bytes */
    size_t peak;     /* high-water mark, bytes */
    int committed;
    unsigned char *mem;
};

nn_arena_t *nn_arena_new(void)
{
    return calloc(1, sizeof(nn_arena_t));
}

void nn_arena_destroy(nn_arena_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->mem);
    free(*self_p);
    *self_p = NULL;
}

size_t nn_arena_reserve(nn_arena_t *self, size_t n_floats)
{
    if (!self || self->committed || n_floats > (SIZE_MAX / 2) / sizeof(float))
        return (size_t)-1;
    size_t bytes = n_floats * sizeof(float);
    bytes = (bytes + NN_ARENA_ALIGN - 1) / NN_ARENA_ALIGN * NN_ARENA_ALIGN;
    if (bytes == 0)
        bytes = NN_ARENA_ALIGN;   /* distinct offsets for empty buffers */
    if (self->top > SIZE_MAX / 2 - bytes)
        return (size_t)-1;
    size_t off = self->top;
    self->top += bytes;
    if (self->top > self->peak)
        self->peak = self->top;
    return off;
}

size_t nn_arena_mark(const nn_arena_t *self)
{
    return self ? self->top : 0;
}

void nn_arena_release(nn_arena_t *self, size_t mark)
{
    if (self && !self->committed && mark <= self->top)
        self->top = mark;
}

int nn_arena_commit(nn_arena_t *self)
{
    if (!self)
        return -EINVAL;
    if (self->committed)
        return -EALREADY;
    size_t bytes = self->peak ? self->peak : NN_ARENA_ALIGN;
    self->mem = aligned_alloc(NN_ARENA_ALIGN, bytes);
    if (!self->mem)
        return -ENOMEM;
    memset(self->mem, 0, bytes);
    self->peak = bytes;
    self->committed = 1;
    return 0;
}

float *nn_arena_ptr(const nn_arena_t *self, size_t offset)
{
    if (!self || !self->committed || offset >= self->peak)
        return NULL;
    return (float *)(void *)(self->mem + offset);
}

size_t nn_arena_bytes(const nn_arena_t *self)
{
    return self ? self->peak : 0;
}
