/* nn_slab — a chain of slabs, huge-page ones for big models, that long-lived
 * tables (packed weights, the tables a step reads) are carved from.
 *
 * Every step of a big model reads nearly all of its packed weights and tables,
 * more than L2 holds, so each step brings them from L3 or memory; with 4 KB
 * pages about every 4 KB of that costs a TLB miss (in a VM a nested page
 * walk). A huge slab is 2 MB aligned and marked MADV_HUGEPAGE before it is
 * first touched: with transparent huge pages ("madvise" or "always" in
 * /sys/kernel/mm/transparent_hugepage/enabled) one TLB entry covers 2 MB.
 * Elsewhere the advice is ignored and they are ordinary pages. Requests are
 * carved in order (allocate in the order a step reads); slabs double from
 * NN_SLAB_HUGE up to NN_SLAB_MAX (a larger request gets a slab of its own);
 * the tail of a slab that a request did not fit stays unused.
 *
 * A small model (tables of some KB, e.g. a tiny test checkpoint or a small
 * MLP actor) would pay a whole fresh 2 MB slab per chain, and with huge pages
 * the kernel clears a whole 2 MB page on its first touch. The owner that can
 * estimate a chain's total says so first (nn_slab_expect): below NN_SLAB_HUGE
 * the chain starts with a small slab of that size (ordinary pages, not
 * advised, NN_ARENA_ALIGN aligned), and a chain that outgrows it goes on
 * doubling, into huge slabs once a slab reaches NN_SLAB_HUGE. Each request is
 * zeroed when carved; the untouched tail of a slab is never written (in an
 * AddressSanitizer build it is poisoned: reading past a request is reported).
 * Keep one chain per kind of table so that each stays contiguous. All
 * functions init-only. */
#ifndef PACD_NN_SLAB_H
#define PACD_NN_SLAB_H

#include <stddef.h>

#define NN_SLAB_HUGE ((size_t)2 << 20)   /* x86-64 huge page, bytes */
#define NN_SLAB_MAX ((size_t)16 << 20)   /* largest slab of the doubling, bytes */
#define NN_SLAB_PAGE ((size_t)4 << 10)   /* small slabs: at least, and a multiple of, bytes */

/* A chain of slabs; zero-initialise it, free with nn_slab_free. */
typedef struct nn_slab {
    float *next;         /* first free float of the current slab */
    size_t left, bytes;  /* floats left in it; its size in bytes */
    size_t expect;       /* nn_slab_expect's estimate, bytes (0: none) */
    void **chunks;       /* every slab allocated (owned) */
    int n_chunks, cap_chunks;
} nn_slab_t;

/* Bytes a request of n_floats takes from a slab (rounded up to
 * NN_ARENA_ALIGN, at least one float), or 0 when n_floats is too large
 * (above SIZE_MAX / 8). */
size_t nn_slab_request_bytes(size_t n_floats);

/* Estimate of the bytes (sum of nn_slab_request_bytes) the chain's requests
 * will take, given before its first nn_slab_alloc (ignored after it). Below
 * NN_SLAB_HUGE the first slab is that size rounded up to NN_SLAB_PAGE
 * (NN_SLAB_PAGE at least) instead of a 2 MB huge slab; 0 or NN_SLAB_HUGE and
 * above: huge slabs from the start, as without an estimate. Only a hint: a
 * low estimate costs another slab, a high one unused address space. */
void nn_slab_expect(nn_slab_t *s, size_t bytes);

/* n_floats zeroed floats, NN_ARENA_ALIGN aligned, valid until nn_slab_free;
 * NULL when out of memory or n_floats is too large. */
float *nn_slab_alloc(nn_slab_t *s, size_t n_floats);

/* Free every slab; the chain is empty again, without an estimate. NULL-safe. */
void nn_slab_free(nn_slab_t *s);

#endif
