/* Stress test of the lock-free mailbox (rt/rt_seqbox.h): a writer
 * thread publishes records whose words all carry the same counter; readers
 * must never see a torn record, and must see the counter never go back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "rt_seqbox.h"

#define RECORD_WORDS RT_SEQBOX_WORDS
#define WRITES 200000

typedef struct {
    uint64_t w[RECORD_WORDS];
} record_t;

typedef struct {
    rt_seqbox_t box;
    atomic_int done;
} shared_t;

static void *writer(void *arg)
{
    shared_t *sh = arg;
    record_t r;
    for (uint64_t k = 1; k <= WRITES; k++) {
        for (int i = 0; i < RECORD_WORDS; i++)
            r.w[i] = k * 1000003u + (uint64_t)i;
        rt_seqbox_write(&sh->box, &r, sizeof r);
    }
    atomic_store(&sh->done, 1);
    return NULL;
}

static void test_no_torn_reads(void **st)
{
    (void)st;
    static shared_t sh;
    rt_seqbox_init(&sh.box);
    atomic_init(&sh.done, 0);
    record_t first;
    for (int i = 0; i < RECORD_WORDS; i++)
        first.w[i] = (uint64_t)i; /* counter 0 */
    rt_seqbox_write(&sh.box, &first, sizeof first);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer, &sh), 0);
    uint64_t last = 0, reads = 0, again = 0;
    record_t r;
    while (!atomic_load(&sh.done)) {
        int rc = rt_seqbox_read(&sh.box, &r, sizeof r);
        if (rc == -EAGAIN) {
            again++;
            continue;
        }
        assert_int_equal(rc, 0);
        uint64_t k = r.w[0] / 1000003u;
        for (int i = 0; i < RECORD_WORDS; i++)
            if (r.w[i] != k * 1000003u + (uint64_t)i)
                fail_msg("torn read: word %d = %llu in record %llu", i,
                         (unsigned long long)r.w[i], (unsigned long long)k);
        assert_true(k >= last);
        last = k;
        reads++;
    }
    pthread_join(t, NULL);
    assert_int_equal(rt_seqbox_read(&sh.box, &r, sizeof r), 0);
    assert_true(r.w[0] == (uint64_t)WRITES * 1000003u);
    print_message("%llu consistent reads, %llu gave up (-EAGAIN)\n", (unsigned long long)reads,
                  (unsigned long long)again);
}

/* A record smaller than the box only touches its own bytes. */
static void test_partial_size(void **st)
{
    (void)st;
    static rt_seqbox_t box;
    rt_seqbox_init(&box);
    char in[13] = "hello, robot", out[13] = {0};
    rt_seqbox_write(&box, in, sizeof in);
    assert_int_equal(rt_seqbox_read(&box, out, sizeof out), 0);
    assert_memory_equal(in, out, sizeof in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_torn_reads),
        cmocka_unit_test(test_partial_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
