/* spsc — a bounded lock-free single-producer/single-consumer queue of
 * fixed-size elements (C11 atomics). One thread pushes, one thread pops.
 *
 * spsc_init/spsc_free are init-only (they allocate); spsc_push/spsc_pop are
 * RT-safe and never wait.
 */
#ifndef PACD_SPSC_H
#define PACD_SPSC_H

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *buf;
    size_t elem;                 /* bytes per element */
    size_t cap;                  /* capacity, elements (a power of two) */
    _Atomic size_t head;         /* next to pop (consumer) */
    _Atomic size_t tail;         /* next to push (producer) */
} spsc_t;

/* Allocate room for at least `cap` elements of `elem` bytes. 0 or -ENOMEM / -EINVAL. */
static inline int spsc_init(spsc_t *q, size_t elem, size_t cap)
{
    size_t c = 1;
    if (elem == 0 || cap == 0 || cap > ((size_t)1 << 30))
        return -EINVAL;
    while (c < cap)
        c <<= 1;
    q->buf = calloc(c, elem);
    if (!q->buf)
        return -ENOMEM;
    q->elem = elem;
    q->cap = c;
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    return 0;
}

static inline void spsc_free(spsc_t *q)
{
    free(q->buf);
    q->buf = NULL;
}

/* Producer: copy *v in. 0, or -ENOSPC when full (nothing written). */
static inline int spsc_push(spsc_t *q, const void *v)
{
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    if (t - h == q->cap)
        return -ENOSPC;
    memcpy(q->buf + (t & (q->cap - 1)) * q->elem, v, q->elem);
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return 0;
}

/* Consumer: copy the oldest element to *v. 1 if one was there, 0 if empty. */
static inline int spsc_pop(spsc_t *q, void *v)
{
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (h == t)
        return 0;
    memcpy(v, q->buf + (h & (q->cap - 1)) * q->elem, q->elem);
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return 1;
}

#endif
