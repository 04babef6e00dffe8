/* rt_tbuf — a lock-free triple buffer: one writer publishes whole values, one
 * reader always gets the newest complete one, neither ever waits.
 *
 * The three slots live in caller memory (slot i at base + i * stride); tbuf
 * only hands out indices. Writer: fill slot rt_tbuf_back(), then
 * rt_tbuf_publish(). Reader: rt_tbuf_acquire() returns the index of the newest
 * slot, which stays untouched by the writer until the next acquire.
 * RT-safe for both sides (atomic exchange only).
 */
#ifndef RT_TBUF_H
#define RT_TBUF_H

#include <stdatomic.h>

#define RT_TBUF_NEW 4u

typedef struct {
    unsigned back;          /* writer's slot */
    unsigned front;         /* reader's slot */
    _Atomic unsigned mid;   /* the slot in between, RT_TBUF_NEW when unread */
    int has_value;          /* reader side: something was ever published */
} rt_tbuf_t;

/* Writer on slot 0, reader on slot 1, nothing published. Init-only (before
 * either side runs). */
static inline void rt_tbuf_init(rt_tbuf_t *t)
{
    t->back = 0;
    t->front = 1;
    atomic_init(&t->mid, 2u);
    t->has_value = 0;
}

/* Writer: the index (0..2) of the slot to fill next. RT-safe. */
static inline unsigned rt_tbuf_back(const rt_tbuf_t *t) { return t->back; }

/* Writer: hand the filled back slot to the reader and take another one as the
 * new back slot. RT-safe. */
static inline void rt_tbuf_publish(rt_tbuf_t *t)
{
    t->back = atomic_exchange_explicit(&t->mid, t->back | RT_TBUF_NEW, memory_order_acq_rel) & 3u;
}

/* Reader: the newest slot index (0..2), or -1 if nothing was ever published.
 * RT-safe. */
static inline int rt_tbuf_acquire(rt_tbuf_t *t)
{
    if (atomic_load_explicit(&t->mid, memory_order_acquire) & RT_TBUF_NEW) {
        t->front = atomic_exchange_explicit(&t->mid, t->front, memory_order_acq_rel) & 3u;
        t->has_value = 1;
    }
    return t->has_value ? (int)t->front : -1;
}

/* Reader: like rt_tbuf_acquire, and *is_new = 1 when the value is new since
 * the last call (else 0). RT-safe. */
static inline int rt_tbuf_acquire_new(rt_tbuf_t *t, int *is_new)
{
    *is_new = 0;
    if (atomic_load_explicit(&t->mid, memory_order_acquire) & RT_TBUF_NEW) {
        t->front = atomic_exchange_explicit(&t->mid, t->front, memory_order_acq_rel) & 3u;
        t->has_value = 1;
        *is_new = 1;
    }
    return t->has_value ? (int)t->front : -1;
}

#endif
