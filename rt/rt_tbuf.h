/* tbuf — a lock-free triple buffer: one writer publishes whole values, one
 * reader always gets the newest complete one, neither ever waits.
 *
 * The three slots live in caller memory (slot i at base + i * stride); tbuf
 * only hands out indices. Writer: fill slot tbuf_back(), then
 * tbuf_publish(). Reader: tbuf_acquire() returns the index of the newest
 * slot, which stays untouched by the writer until the next acquire.
 * RT-safe for both sides (atomic exchange only).
 */
#ifndef PACD_TBUF_H
#define PACD_TBUF_H

#include <stdatomic.h>

#define TBUF_NEW 4u

typedef struct {
    unsigned back;          /* writer's slot */
    unsigned front;         /* reader's slot */
    _Atomic unsigned mid;   /* the slot in between, TBUF_NEW when unread */
    int has_value;          /* reader side: something was ever published */
} tbuf_t;

static inline void tbuf_init(tbuf_t *t)
{
    t->back = 0;
    t->front = 1;
    atomic_init(&t->mid, 2u);
    t->has_value = 0;
}

static inline unsigned tbuf_back(const tbuf_t *t) { return t->back; }

static inline void tbuf_publish(tbuf_t *t)
{
    t->back = atomic_exchange_explicit(&t->mid, t->back | TBUF_NEW, memory_order_acq_rel) & 3u;
}

/* Returns the newest slot index, or -1 if nothing was ever published. */
static inline int tbuf_acquire(tbuf_t *t)
{
    if (atomic_load_explicit(&t->mid, memory_order_acquire) & TBUF_NEW) {
        t->front = atomic_exchange_explicit(&t->mid, t->front, memory_order_acq_rel) & 3u;
        t->has_value = 1;
    }
    return t->has_value ? (int)t->front : -1;
}

/* Like tbuf_acquire but reports whether the value is new since the last call. */
static inline int tbuf_acquire_new(tbuf_t *t, int *is_new)
{
    *is_new = 0;
    if (atomic_load_explicit(&t->mid, memory_order_acquire) & TBUF_NEW) {
        t->front = atomic_exchange_explicit(&t->mid, t->front, memory_order_acq_rel) & 3u;
        t->has_value = 1;
        *is_new = 1;
    }
    return t->has_value ? (int)t->front : -1;
}

#endif
