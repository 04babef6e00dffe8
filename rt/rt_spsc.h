/* rt_spsc — a bounded lock-free single-producer/single-consumer queue of
 * fixed-size slots (C11 atomics). One thread produces, one thread consumes;
 * the control loop may be either side.
 *
 * Two ways to use it, freely mixed:
 *   - copying: rt_spsc_push (producer) / rt_spsc_pop (consumer);
 *   - zero-copy: the producer fills a slot in place (rt_spsc_claim, then
 *     rt_spsc_publish), the consumer reads it in place (rt_spsc_peek, then
 *     rt_spsc_release). Records reach the consumer exactly once, in the order
 *     they were published.
 *
 * Capacity is exactly the `cap` given to rt_spsc_init: cap slots can be
 * published and not yet released at once; one more claim/push fails (the
 * queue never waits, the caller decides: drop and count, retry later).
 *
 * Memory: one block of cap slots of `stride` bytes, allocated in rt_spsc_init
 * (aligned_alloc, not zeroed: a slot is read only after it was published).
 * Each slot starts on a 64-byte boundary and the stride is elem rounded up
 * to 64 bytes, so the slot the producer is filling and the slot the
 * consumer is reading never share a cache line. The producer's index and
 * the consumer's index sit in separate cache lines too (64-byte padding
 * between them, so the queue needs no over-aligned allocation when embedded
 * in a calloc'ed struct), and each side keeps a private copy of the other
 * side's index, re-reading the shared one only when the copy says full or
 * empty.
 *
 * Threads:
 *   init-only (allocate/free; no other thread may be using the queue):
 *     rt_spsc_init, rt_spsc_free;
 *   producer thread only: rt_spsc_claim, rt_spsc_publish, rt_spsc_push;
 *   consumer thread only: rt_spsc_peek, rt_spsc_release, rt_spsc_pop;
 *   any thread: rt_spsc_capacity.
 * Every producer and consumer call is RT-safe, safe in the control loop: no
 * allocation, no lock, no system call, never waits; O(1) (push/pop: plus a
 * memcpy of elem bytes).
 */
#ifndef RT_SPSC_H
#define RT_SPSC_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RT_SPSC_CACHE_LINE 64
#define RT_SPSC_MAX_CAP ((size_t)1 << 30)

typedef struct {
    /* constant after rt_spsc_init */
    unsigned char *buf;          /* cap slots, 64-byte aligned */
    size_t elem;                 /* bytes of a record */
    size_t stride;               /* bytes per slot: elem rounded up to 64 */
    size_t cap;                  /* capacity, slots (exact) */

    char pad_p[RT_SPSC_CACHE_LINE];
    /* producer's cache line */
    _Atomic size_t tail;         /* slots ever published */
    size_t tail_slot;            /* index of the next slot to fill (tail % cap) */
    size_t head_seen;            /* producer's copy of head */

    char pad_c[RT_SPSC_CACHE_LINE];
    /* consumer's cache line */
    _Atomic size_t head;         /* slots ever released */
    size_t head_slot;            /* index of the oldest slot (head % cap) */
    size_t tail_seen;            /* consumer's copy of tail */

    char pad_end[RT_SPSC_CACHE_LINE];
} rt_spsc_t;

/* Allocate exactly cap slots for records of elem bytes, each slot 64-byte
 * aligned. Init-only. 0; -EINVAL when elem or cap is 0 or cap > 2^30 (*q
 * untouched); -ENOMEM when the block cannot be had (q->buf NULL). */
static inline int rt_spsc_init(rt_spsc_t *q, size_t elem, size_t cap)
{
    if (elem == 0 || cap == 0 || cap > RT_SPSC_MAX_CAP)
        return -EINVAL;
    memset(q, 0, sizeof *q);
    if (elem > SIZE_MAX - (RT_SPSC_CACHE_LINE - 1))
        return -ENOMEM;
    size_t stride = (elem + RT_SPSC_CACHE_LINE - 1) & ~(size_t)(RT_SPSC_CACHE_LINE - 1);
    if (stride > SIZE_MAX / cap)
        return -ENOMEM;
    q->buf = aligned_alloc(RT_SPSC_CACHE_LINE, stride * cap);
    if (!q->buf)
        return -ENOMEM;
    q->elem = elem;
    q->stride = stride;
    q->cap = cap;
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    return 0;
}

/* Free the slots. Init-only; safe on a zeroed or already freed queue. */
static inline void rt_spsc_free(rt_spsc_t *q)
{
    free(q->buf);
    q->buf = NULL;
}

/* Capacity in slots (exactly the cap given to rt_spsc_init). Any thread. */
static inline size_t rt_spsc_capacity(const rt_spsc_t *q)
{
    return q->cap;
}

/* Producer: the next free slot (elem writable bytes, 64-byte aligned), or
 * NULL when cap slots are published and not yet released. The slot is the
 * producer's until rt_spsc_publish; claiming again before publishing returns
 * the same slot (a claimed slot that is never published costs nothing).
 * RT-safe. */
static inline void *rt_spsc_claim(rt_spsc_t *q)
{
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (t - q->head_seen >= q->cap) {
        /* acquire: the consumer is done with the slot it released */
        q->head_seen = atomic_load_explicit(&q->head, memory_order_acquire);
        if (t - q->head_seen >= q->cap)
            return NULL;
    }
    return q->buf + q->tail_slot * q->stride;
}

/* Producer: hand the slot from the last successful rt_spsc_claim to the
 * consumer. Only after a claim that returned a slot. RT-safe. */
static inline void rt_spsc_publish(rt_spsc_t *q)
{
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    q->tail_slot = q->tail_slot + 1 == q->cap ? 0 : q->tail_slot + 1;
    /* release: the slot's contents are visible before the new tail */
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
}

/* Producer: copy elem bytes from *v in. 0, or -ENOSPC when full (nothing
 * written). RT-safe. */
static inline int rt_spsc_push(rt_spsc_t *q, const void *v)
{
    void *slot = rt_spsc_claim(q);
    if (!slot)
        return -ENOSPC;
    memcpy(slot, v, q->elem);
    rt_spsc_publish(q);
    return 0;
}

/* Consumer: the oldest published slot (read in place), or NULL when empty.
 * It stays the consumer's, unchanged, until rt_spsc_release; peeking again
 * returns the same slot. RT-safe. */
static inline void *rt_spsc_peek(rt_spsc_t *q)
{
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (h == q->tail_seen) {
        /* acquire: the slot's contents as the producer published them */
        q->tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (h == q->tail_seen)
            return NULL;
    }
    return q->buf + q->head_slot * q->stride;
}

/* Consumer: give the oldest slot (the one rt_spsc_peek returned) back to the
 * producer; the next peek returns the record after it. Only after a peek
 * that returned a slot. RT-safe. */
static inline void rt_spsc_release(rt_spsc_t *q)
{
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    q->head_slot = q->head_slot + 1 == q->cap ? 0 : q->head_slot + 1;
    /* release: done reading before the producer may reuse the slot */
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
}

/* Consumer: copy the oldest record to *v (elem bytes) and release it. 1 if
 * one was there, 0 if empty. RT-safe. */
static inline int rt_spsc_pop(rt_spsc_t *q, void *v)
{
    const void *slot = rt_spsc_peek(q);
    if (!slot)
        return 0;
    memcpy(v, slot, q->elem);
    rt_spsc_release(q);
    return 1;
}

#endif
