/* rt_seqbox — a single-writer, many-reader, lock-free mailbox for
 * one small struct (a double-buffered seqlock over atomic 64-bit words).
 *
 * The writer fills the slot readers are not pointed at, then publishes its
 * index, so a writer preempted mid-write never makes readers retry; a reader
 * retries only when a publication happens during its copy (the copy takes
 * ~100 ns against 1 ms between publications in the sim). Checking that the
 * published index did not move makes every read return exactly the latest
 * published value, so successive reads never go back in time (without that
 * check, a reader could return the value being published next and then the
 * one before it; tests/rt/test_rt_seqbox.c checks for it). All shared
 * words are C11 atomics, so the scheme is free of data races and clean under
 * TSan. Ordering without standalone fences (GCC's TSan does not support
 * them): the writer marks the slot odd, stores the words with release (so
 * the odd mark is visible before any new word), then marks it even with
 * release; the reader loads the mark with acquire and the words with acquire
 * (so its second load of the mark comes after them). A reader that saw any
 * word of a newer write therefore sees the newer mark and retries. On x86-64
 * all of these are plain moves.
 *
 * Used by the HAL backends for their state and command mailboxes. */
#ifndef RT_SEQBOX_H
#define RT_SEQBOX_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RT_SEQBOX_WORDS 48 /* capacity, 64-bit words (384 bytes) */

typedef struct {
    _Atomic uint64_t seq; /* odd while being written */
    _Atomic uint64_t words[RT_SEQBOX_WORDS];
} rt_seqbox_slot_t;

typedef struct {
    _Atomic uint64_t published; /* number of publications; current slot = published & 1 */
    rt_seqbox_slot_t slot[2];
} rt_seqbox_t;

/* Words needed for `size` bytes. */
#define RT_SEQBOX_NWORDS(size) (((size) + 7) / 8)

/* Zero the box (before any thread uses it). Init-only. */
static inline void rt_seqbox_init(rt_seqbox_t *box)
{
    atomic_init(&box->published, 0);
    for (int s = 0; s < 2; s++) {
        atomic_init(&box->slot[s].seq, 0);
        for (int i = 0; i < RT_SEQBOX_WORDS; i++)
            atomic_init(&box->slot[s].words[i], 0);
    }
}

/* Publish `size` bytes (size <= 8 * RT_SEQBOX_WORDS) from src. Only one
 * thread may write a given box. RT-safe: no allocation, no syscalls. */
static inline void rt_seqbox_write(rt_seqbox_t *box, const void *src, size_t size)
{
    uint64_t buf[RT_SEQBOX_WORDS] = {0};
    size_t n = RT_SEQBOX_NWORDS(size);
    memcpy(buf, src, size);
    uint64_t pub = atomic_load_explicit(&box->published, memory_order_relaxed);
    rt_seqbox_slot_t *s = &box->slot[(pub + 1) & 1];
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
    for (size_t i = 0; i < n; i++)
        atomic_store_explicit(&s->words[i], buf[i], memory_order_release);
    atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
    atomic_store_explicit(&box->published, pub + 1, memory_order_release);
}

/* Copy the latest published value (size bytes) into dst. 0, or -EAGAIN if no
 * consistent copy was obtained in a bounded number of tries (dst untouched).
 * RT-safe: never blocks. */
static inline int rt_seqbox_read(rt_seqbox_t *box, void *dst, size_t size)
{
    uint64_t buf[RT_SEQBOX_WORDS];
    size_t n = RT_SEQBOX_NWORDS(size);
    for (int tries = 0; tries < 64; tries++) {
        uint64_t pub = atomic_load_explicit(&box->published, memory_order_acquire);
        rt_seqbox_slot_t *s = &box->slot[pub & 1];
        uint64_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (s1 & 1)
            continue;
        for (size_t i = 0; i < n; i++)
            buf[i] = atomic_load_explicit(&s->words[i], memory_order_acquire);
        uint64_t s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
        uint64_t pub2 = atomic_load_explicit(&box->published, memory_order_acquire);
        if (s1 == s2 && pub == pub2) {
            memcpy(dst, buf, size);
            return 0;
        }
    }
    return -EAGAIN;
}

#endif
