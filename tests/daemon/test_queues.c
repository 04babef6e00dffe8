/* spsc and tbuf: ordering, capacity, and a two-thread stress run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "pacd_spsc.h"
#include "pacd_tbuf.h"

static void test_spsc_order_and_full(void **state)
{
    (void)state;
    spsc_t q;
    assert_int_equal(spsc_init(&q, sizeof(int), 5), 0); /* rounds up to 8 */
    int v;
    assert_int_equal(spsc_pop(&q, &v), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(spsc_push(&q, &i), 0);
    int x = 99;
    assert_int_equal(spsc_push(&q, &x), -ENOSPC);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(spsc_pop(&q, &v), 1);
        assert_int_equal(v, i);
    }
    assert_int_equal(spsc_pop(&q, &v), 0);
    assert_int_equal(spsc_init(&q, 0, 4), -EINVAL);
    spsc_free(&q);
}

#define N 200000
static spsc_t sq;

static void *producer(void *arg)
{
    (void)arg;
    for (uint64_t i = 0; i < N;) {
        if (spsc_push(&sq, &i) == 0)
            i++;
    }
    return NULL;
}

static void test_spsc_two_threads(void **state)
{
    (void)state;
    assert_int_equal(spsc_init(&sq, sizeof(uint64_t), 64), 0);
    pthread_t t;
    pthread_create(&t, NULL, producer, NULL);
    uint64_t want = 0, v;
    while (want < N)
        if (spsc_pop(&sq, &v)) {
            assert_int_equal(v, want);
            want++;
        }
    pthread_join(t, NULL);
    spsc_free(&sq);
}

typedef struct {
    uint64_t a, b; /* always equal in a published slot */
} pair_t;
static pair_t slots[3];
static tbuf_t tb;

static void *writer(void *arg)
{
    (void)arg;
    for (uint64_t i = 1; i <= N; i++) {
        unsigned k = tbuf_back(&tb);
        slots[k].a = i;
        slots[k].b = i;
        tbuf_publish(&tb);
    }
    return NULL;
}

static void test_tbuf_newest_and_consistent(void **state)
{
    (void)state;
    tbuf_init(&tb);
    assert_int_equal(tbuf_acquire(&tb), -1);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    uint64_t last = 0;
    while (last < N) {
        int k = tbuf_acquire(&tb);
        if (k < 0)
            continue;
        assert_int_equal(slots[k].a, slots[k].b); /* never a torn value */
        assert_true(slots[k].a >= last);          /* never older than before */
        last = slots[k].a;
    }
    pthread_join(t, NULL);
    int is_new;
    int k = tbuf_acquire_new(&tb, &is_new);
    assert_int_equal(slots[k].a, N);
    k = tbuf_acquire_new(&tb, &is_new);
    assert_int_equal(is_new, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spsc_order_and_full),
        cmocka_unit_test(test_spsc_two_threads),
        cmocka_unit_test(test_tbuf_newest_and_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
