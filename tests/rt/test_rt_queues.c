/* rt_spsc and rt_tbuf: ordering, exact capacity, slot alignment, the zero-copy
 * calls (wrap-around, full, release order), and two-thread stress runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "rt_spsc.h"
#include "rt_tbuf.h"

static void test_spsc_order_and_full(void **state)
{
    (void)state;
    rt_spsc_t q;
    assert_int_equal(rt_spsc_init(&q, sizeof(int), 5), 0); /* exactly 5, not rounded up */
    assert_int_equal(rt_spsc_capacity(&q), 5);
    int v;
    assert_int_equal(rt_spsc_pop(&q, &v), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rt_spsc_push(&q, &i), 0);
    int x = 99;
    assert_int_equal(rt_spsc_push(&q, &x), -ENOSPC);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rt_spsc_pop(&q, &v), 1);
        assert_int_equal(v, i);
    }
    assert_int_equal(rt_spsc_pop(&q, &v), 0);
    rt_spsc_free(&q);
    rt_spsc_free(&q); /* twice is harmless */
    assert_int_equal(rt_spsc_init(&q, 0, 4), -EINVAL);
    assert_int_equal(rt_spsc_init(&q, 8, 0), -EINVAL);
    assert_int_equal(rt_spsc_init(&q, 8, ((size_t)1 << 30) + 1), -EINVAL);
    assert_int_equal(rt_spsc_init(&q, SIZE_MAX / 2, 4), -ENOMEM);
    assert_null(q.buf);
}

/* Every slot starts on a 64-byte boundary and no two slots share a cache
 * line, whatever the record size; the producer's and the consumer's index
 * are on different cache lines. */
static void test_spsc_slots_aligned(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 8, 63, 64, 65, 200};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        rt_spsc_t q;
        assert_int_equal(rt_spsc_init(&q, sizes[s], 3), 0);
        uintptr_t prev = 0;
        for (int i = 0; i < 3; i++) {
            unsigned char *slot = rt_spsc_claim(&q);
            assert_non_null(slot);
            uintptr_t a = (uintptr_t)slot;
            assert_int_equal(a % 64, 0);
            if (i > 0)
                assert_true(a - prev >= 64 && a - prev >= sizes[s]);
            memset(slot, 0xab, sizes[s]); /* elem bytes writable (ASan checks) */
            rt_spsc_publish(&q);
            prev = a;
        }
        rt_spsc_free(&q);
    }
    /* producer fields [tail, head_seen], consumer fields [head, tail_seen] */
    rt_spsc_t q;
    uintptr_t p_end = (uintptr_t)&q.head_seen + sizeof q.head_seen;
    uintptr_t c_begin = (uintptr_t)&q.head;
    assert_true((uintptr_t)&q.tail < p_end && (uintptr_t)&q.tail_slot < p_end);
    assert_true((uintptr_t)&q.tail_seen > c_begin && (uintptr_t)&q.head_slot > c_begin);
    assert_true(c_begin >= p_end + 64);
}

/* Zero-copy: fill in place, read in place; the ring wraps around many times
 * and a record comes out exactly as it went in. */
static void test_spsc_claim_publish_wraparound(void **state)
{
    (void)state;
    rt_spsc_t q;
    assert_int_equal(rt_spsc_init(&q, sizeof(uint64_t), 3), 0);
    assert_null(rt_spsc_peek(&q));
    uint64_t next_in = 0, next_out = 0;
    void *addr[3] = {0};
    for (int round = 0; round < 50; round++) {
        int n_in = 1 + round % 3; /* 1..3: every phase of the ring */
        for (int i = 0; i < n_in; i++) {
            uint64_t *slot = rt_spsc_claim(&q);
            assert_non_null(slot);
            /* the slot is the producer's until it publishes: claiming
             * again gives the same one, the consumer sees nothing */
            assert_ptr_equal(rt_spsc_claim(&q), slot);
            *slot = next_in;
            if (next_in < 3)
                addr[next_in] = slot;
            else
                assert_ptr_equal(slot, addr[next_in % 3]); /* slots used in turn */
            if (i == 0)
                assert_null(rt_spsc_peek(&q)); /* unpublished: not the consumer's yet */
            rt_spsc_publish(&q);
            next_in++;
        }
        while (next_out < next_in) {
            uint64_t *slot = rt_spsc_peek(&q);
            assert_non_null(slot);
            assert_ptr_equal(rt_spsc_peek(&q), slot); /* peek does not consume */
            assert_int_equal(*slot, next_out);
            rt_spsc_release(&q);
            next_out++;
        }
        assert_null(rt_spsc_peek(&q));
    }
    assert_true(next_in > 3 * 30); /* wrapped around many times */
    rt_spsc_free(&q);
}

/* Full: claim fails until the consumer releases; a slot it has peeked but
 * not released stays its own; releases free the oldest slot first. */
static void test_spsc_full_and_release_order(void **state)
{
    (void)state;
    rt_spsc_t q;
    assert_int_equal(rt_spsc_init(&q, sizeof(int), 4), 0);
    int *slots[4];
    for (int i = 0; i < 4; i++) {
        slots[i] = rt_spsc_claim(&q);
        assert_non_null(slots[i]);
        *slots[i] = 10 + i;
        rt_spsc_publish(&q);
    }
    assert_null(rt_spsc_claim(&q)); /* full */
    int x = 1;
    assert_int_equal(rt_spsc_push(&q, &x), -ENOSPC);

    int *oldest = rt_spsc_peek(&q);
    assert_ptr_equal(oldest, slots[0]);
    assert_null(rt_spsc_claim(&q)); /* peeked is not released */
    assert_int_equal(*oldest, 10);

    rt_spsc_release(&q); /* frees slot 0, the oldest */
    int *again = rt_spsc_claim(&q);
    assert_ptr_equal(again, slots[0]);
    *again = 14;
    rt_spsc_publish(&q);
    assert_null(rt_spsc_claim(&q)); /* full again */

    /* the rest come out oldest first, then the one written over slot 0 */
    for (int want = 11; want <= 14; want++) {
        int *p = rt_spsc_peek(&q);
        assert_non_null(p);
        assert_int_equal(*p, want);
        rt_spsc_release(&q);
    }
    assert_null(rt_spsc_peek(&q));
    /* copying and zero-copy calls mix */
    x = 7;
    assert_int_equal(rt_spsc_push(&q, &x), 0);
    int *p = rt_spsc_peek(&q);
    assert_non_null(p);
    assert_int_equal(*p, 7);
    rt_spsc_release(&q);
    int *c = rt_spsc_claim(&q);
    *c = 8;
    rt_spsc_publish(&q);
    int v = 0;
    assert_int_equal(rt_spsc_pop(&q, &v), 1);
    assert_int_equal(v, 8);
    assert_int_equal(rt_spsc_pop(&q, &v), 0);
    rt_spsc_free(&q);
}

#define N 200000
static rt_spsc_t sq;

static void *producer(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < N;) {
        if (rt_spsc_push(&sq, &i) == 0)
            i++;
    }
    return NULL;
}

static void test_spsc_two_threads(void **state)
{
    (void)state;
    assert_int_equal(rt_spsc_init(&sq, sizeof(uint64_t), 64), 0);
    pthread_t t;
    pthread_create(&t, NULL, producer, NULL);
    uint64_t want = 0, v;
    while (want < N)
        if (rt_spsc_pop(&sq, &v)) {
            assert_int_equal(v, want);
            want++;
        }
    pthread_join(t, NULL);
    rt_spsc_free(&sq);
}

/* Two threads, zero-copy: every record is built in its slot and checked in
 * its slot, arrives once and in order, and is never seen half-written
 * (TSan build: no data race on the slots). Capacity 7, so the ring wraps
 * around at every phase. */
#define REC_WORDS 9 /* 72 bytes: a record spans two cache lines */
typedef struct {
    uint64_t seq;
    uint64_t words[REC_WORDS - 1]; /* each seq * (k + 1) */
} rec_t;
static rt_spsc_t zq;

static void *zc_producer(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < N;) {
        rec_t *r = rt_spsc_claim(&zq);
        if (!r) {
            sched_yield();
            continue;
        }
        r->seq = i;
        for (int k = 0; k < REC_WORDS - 1; k++)
            r->words[k] = i * (uint64_t)(k + 1);
        rt_spsc_publish(&zq);
        i++;
    }
    return NULL;
}

static void test_spsc_zero_copy_two_threads(void **state)
{
    (void)state;
    assert_int_equal(rt_spsc_init(&zq, sizeof(rec_t), 7), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, zc_producer, NULL), 0);
    uint64_t want = 0;
    while (want < N) {
        const rec_t *r = rt_spsc_peek(&zq);
        if (!r) {
            sched_yield();
            continue;
        }
        assert_int_equal(r->seq, want); /* in order, none lost, none twice */
        for (int k = 0; k < REC_WORDS - 1; k++)
            assert_int_equal(r->words[k], want * (uint64_t)(k + 1));
        rt_spsc_release(&zq);
        want++;
    }
    pthread_join(t, NULL);
    assert_null(rt_spsc_peek(&zq)); /* nothing after the last */
    rt_spsc_free(&zq);
}

typedef struct {
    uint64_t a, b; /* always equal in a published slot */
} pair_t;
static pair_t slots[3];
static rt_tbuf_t tb;

static void *writer(void *arg)
{
    (void)arg;
    for (uint64_t i = 1; i <= N; i++) {
        unsigned k = rt_tbuf_back(&tb);
        slots[k].a = i;
        slots[k].b = i;
        rt_tbuf_publish(&tb);
    }
    return NULL;
}

static void test_tbuf_newest_and_consistent(void **state)
{
    (void)state;
    rt_tbuf_init(&tb);
    assert_int_equal(rt_tbuf_acquire(&tb), -1);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    uint64_t last = 0;
    while (last < N) {
        int k = rt_tbuf_acquire(&tb);
        if (k < 0)
            continue;
        assert_int_equal(slots[k].a, slots[k].b); /* never a torn value */
        assert_true(slots[k].a >= last);          /* never older than before */
        last = slots[k].a;
    }
    pthread_join(t, NULL);
    int is_new;
    int k = rt_tbuf_acquire_new(&tb, &is_new);
    assert_int_equal(slots[k].a, N);
    k = rt_tbuf_acquire_new(&tb, &is_new);
    assert_int_equal(is_new, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spsc_order_and_full),
        cmocka_unit_test(test_spsc_slots_aligned),
        cmocka_unit_test(test_spsc_claim_publish_wraparound),
        cmocka_unit_test(test_spsc_full_and_release_order),
        cmocka_unit_test(test_spsc_two_threads),
        cmocka_unit_test(test_spsc_zero_copy_two_threads),
        cmocka_unit_test(test_tbuf_newest_and_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
