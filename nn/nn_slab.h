/* nn_slab — a chain of huge-page slabs that long-lived tables (packed
 * weights, the tables a step reads) are carved from.
 *
 * Every step of a model reads nearly all of its packed weights and tables,
 * more than L2 holds, so each step brings them from L3 or memory; with 4 KB
 * pages about every 4 KB of that costs a TLB miss (in a VM a nested page
 * walk). A slab is 2 MB aligned and marked MADV_HUGEPAGE before it is first
 * touched: with transparent huge pages ("madvise" or "always" in
 * /sys/kernel/mm/transparent_hugepage/enabled) one TLB entry covers 2 MB.
 * Elsewhere the advice is ignored and they are ordinary pages. Requests are
 * carved in order (allocate in the order a step reads); slabs double from
 * NN_SLAB_HUGE up to NN_SLAB_MAX (a larger request gets a slab of its own);
 * the tail of a slab that a request did not fit stays unused. Keep one chain
 * per kind of table so that each stays contiguous. All functions init-only. */
#ifndef PACD_NN_SLAB_H
#define PACD_NN_SLAB_H

#include <stddef.h>

#define NN_SLAB_HUGE ((size_t)2 << 20)   /* x86-64 huge page, bytes */
#define NN_SLAB_MAX ((size_t)16 << 20)   /* largest slab of the doubling, bytes */

/* A chain of slabs; zero-initialise it, free with nn_slab_free. */
typedef struct nn_slab {
    float *next;         /* first free float of the current slab */
    size_t left, bytes;  /* floats left in it; its size in bytes */
    void **chunks;       /* every slab allocated (owned) */
    int n_chunks, cap_chunks;
} nn_slab_t;

/* Bytes a request of n_floats takes from a slab (rounded up to
 * NN_ARENA_ALIGN, at least one float), or 0 when n_floats is too large
 * (above SIZE_MAX / 8). */
size_t nn_slab_request_bytes(size_t n_floats);

/* n_floats zeroed floats, NN_ARENA_ALIGN aligned, valid until nn_slab_free;
 * NULL when out of memory or n_floats is too large. */
float *nn_slab_alloc(nn_slab_t *s, size_t n_floats);

/* Free every slab; the chain is empty again. NULL-safe. */
void nn_slab_free(nn_slab_t *s);

#endif
