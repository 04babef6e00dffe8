/* Unit tests of the nn engine (nn/) against direct loops and known values,
 * of the arena planner and of the slab chains (nn_slab). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "nn_slab.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Every matrix kernel this CPU and build run (BLAS always, the packed ones
 * where the CPU has their instructions, BLIS in a build with it); returns how
 * many were written to kinds[5]. */
static int cpu_kinds(nn_gemm_kind_t kinds[5])
{
    const nn_gemm_kind_t all[5] = { NN_GEMM_BLAS, NN_GEMM_AVX512, NN_GEMM_AVX2, NN_GEMM_AMX,
                                    NN_GEMM_BLIS };
    static int said;
    if (!nn_gemm_blis_available() && !said++)
        print_message("blis kernel: skipped, built without BLIS (libblis-dev)\n");
    int n = 0;
    for (int i = 0; i < 5; i++)
        if (nn_gemm_cpu_has(all[i]))
            kinds[n++] = all[i];
    return n;
}

/* nn_linear for batch 1 (sgemv) and batch > 1 (sgemm), with and without bias,
 * against a double-precision loop over the [out, in] weight layout. */
static void test_linear_matches_loop(void **state)
{
    (void)state;
    const int shapes[][3] = { { 1, 7, 5 }, { 4, 7, 5 }, { 1, 64, 33 }, { 9, 31, 17 }, { 1, 1, 1 } };
    unsigned s = 1;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int n = shapes[k][0], in = shapes[k][1], out = shapes[k][2];
        float *x = malloc(sizeof(float) * (size_t)(n * in));
        float *w = malloc(sizeof(float) * (size_t)(out * in));
        float *b = malloc(sizeof(float) * (size_t)out);
        float *y = malloc(sizeof(float) * (size_t)(n * out));
        for (int i = 0; i < n * in; i++) x[i] = frand(&s);
        for (int i = 0; i < out * in; i++) w[i] = frand(&s);
        for (int i = 0; i < out; i++) b[i] = frand(&s);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            for (int i = 0; i < n * out; i++) y[i] = NAN;   /* scratch garbage */
            nn_linear(x, n, in, w, with_bias ? b : NULL, out, y);
            for (int r = 0; r < n; r++) {
                for (int o = 0; o < out; o++) {
                    double acc = with_bias ? b[o] : 0.0;
                    for (int i = 0; i < in; i++)
                        acc += (double)x[r * in + i] * w[o * in + i];
                    assert_float_equal(y[r * out + o], acc, 1e-5 * (1 + fabs(acc)));
                }
            }
        }
        free(x); free(w); free(b); free(y);
    }
}

/* Packed linear layers, every kernel the CPU runs, against a double-precision
 * loop: row counts around the register blocks (8 rows AVX-512, 6 AVX2; AMX
 * 16 and 32), column counts around the panels (32 / 16 columns; masked
 * tails), K past AMX's 512-column chunks, with and without bias, overwrite
 * and accumulate. Float kernels: within float rounding (1e-5 relative plus
 * 2^-20 sum |x w|); AMX (bf16x3): each product within 2^-15 of |x w|, so the
 * sum within 2^-15 sum |x w| more. */
static void test_linear_packed_matches_loop(void **state)
{
    (void)state;
    const int shapes[][3] = { { 1, 7, 5 }, { 8, 64, 32 }, { 9, 31, 17 }, { 13, 40, 65 },
                              { 5, 256, 101 }, { 32, 3, 48 }, { 1, 257, 33 }, { 2, 1, 1 },
                              { 16, 18, 16 }, { 7, 5, 31 }, { 6, 20, 16 }, { 11, 9, 15 },
                              { 12, 33, 47 }, { 5, 4, 8 }, { 18, 17, 9 }, { 25, 64, 24 },
                              { 33, 600, 40 }, { 17, 1100, 33 }, { 32, 256, 64 },
                              /* AMX's epilogue among the next panel's products: one-kb
                               * chunks after full ones, 16/17/31/32-row blocks, several
                               * panels and chunks */
                              { 33, 544, 65 }, { 48, 600, 65 }, { 49, 96, 65 }, { 31, 96, 65 },
                              { 64, 64, 96 }, { 16, 600, 65 }, { 15, 64, 70 }, { 9, 31, 65 },
                              { 25, 20, 70 }, { 40, 1100, 101 } };
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds);
    unsigned s = 7;
    for (int ki = 0; ki < n_kinds; ki++) {
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            int n = shapes[k][0], in = shapes[k][1], out = shapes[k][2];
            float *x = malloc(sizeof(float) * (size_t)(n * in));
            float *w = malloc(sizeof(float) * (size_t)(out * in));
            float *b = malloc(sizeof(float) * (size_t)out);
            float *y = malloc(sizeof(float) * (size_t)(n * out) + 64);
            float *y0 = malloc(sizeof(float) * (size_t)(n * out));
            size_t pf = nn_pack_floats(kinds[ki], out, in);
            assert_true(pf >= (size_t)out * in);
            float *pw = aligned_alloc(NN_ARENA_ALIGN, (pf * sizeof(float) + 63) / 64 * 64);
            assert_non_null(pw);
            for (int i = 0; i < n * in; i++) x[i] = frand(&s);
            for (int i = 0; i < out * in; i++) w[i] = frand(&s);
            for (int i = 0; i < out; i++) b[i] = frand(&s);
            for (int i = 0; i < n * out; i++) y0[i] = frand(&s);
            nn_packed_t p;
            assert_int_equal(nn_pack(kinds[ki], w, out, in, pw, &p), 0);
            for (int mode = 0; mode < 4; mode++) {
                int with_bias = mode & 1, acc = mode >> 1;
                for (int i = 0; i < n * out; i++) y[i] = acc ? y0[i] : NAN;
                y[n * out] = 1234.5f;   /* the element after y stays untouched */
                if (acc)
                    nn_linear_packed_acc(x, n, &p, with_bias ? b : NULL, y);
                else
                    nn_linear_packed(x, n, &p, with_bias ? b : NULL, y);
                assert_true(y[n * out] == 1234.5f);
                for (int r = 0; r < n; r++)
                    for (int o = 0; o < out; o++) {
                        double e = (with_bias ? b[o] : 0.0) + (acc ? y0[r * out + o] : 0.0);
                        double mag = 0.0;
                        for (int i = 0; i < in; i++) {
                            e += (double)x[r * in + i] * w[o * in + i];
                            mag += fabs((double)x[r * in + i] * w[o * in + i]);
                        }
                        /* float: also 2^-20 sum |x w| (long sums that cancel, e.g. K 1100) */
                        double tol = 1e-5 * (1 + fabs(e)) + mag / 1048576.0;
                        if (kinds[ki] == NN_GEMM_AMX)
                            tol += mag / 32768.0;
                        assert_float_equal(y[r * out + o], e, tol);
                    }
            }
            free(x); free(w); free(b); free(y); free(y0); free(pw);
        }
    }
    /* bad arguments */
    nn_packed_t p;
    float w1[4] = { 0 }, pw1[4];
    assert_int_equal(nn_pack(NN_GEMM_BLAS, w1, 0, 4, pw1, &p), -EINVAL);
    assert_int_equal(nn_pack(NN_GEMM_BLAS, NULL, 1, 4, pw1, &p), -EINVAL);
    assert_int_equal(nn_pack(NN_GEMM_BLAS, w1, 1, 4, pw1, NULL), -EINVAL);
    assert_int_equal(nn_pack((nn_gemm_kind_t)7, w1, 1, 4, pw1, &p), -EINVAL);
    if (!nn_gemm_cpu_has_avx512())
        assert_int_equal(nn_pack(NN_GEMM_AVX512, w1, 1, 4, pw1, &p), -ENOTSUP);
    if (!nn_gemm_cpu_has_avx2())
        assert_int_equal(nn_pack(NN_GEMM_AVX2, w1, 1, 4, pw1, &p), -ENOTSUP);
    if (!nn_gemm_cpu_has_amx())
        assert_int_equal(nn_pack(NN_GEMM_AMX, w1, 1, 4, pw1, &p), -ENOTSUP);
    if (!nn_gemm_blis_available())
        assert_int_equal(nn_pack(NN_GEMM_BLIS, w1, 1, 4, pw1, &p), -ENOTSUP);
    assert_int_equal(nn_gemm_best(2), NN_GEMM_BLAS);
    assert_int_equal(nn_gemm_best(1), nn_gemm_cpu_has_avx512() ? NN_GEMM_AVX512
                                      : nn_gemm_cpu_has_avx2() ? NN_GEMM_AVX2 : NN_GEMM_BLAS);
    assert_int_equal(nn_pack_floats(NN_GEMM_AVX512, 33, 3), 64 * 3);
    assert_int_equal(nn_pack_floats(NN_GEMM_AVX2, 33, 3), 48 * 3);
    assert_int_equal(nn_pack_floats(NN_GEMM_BLAS, 33, 3), 33 * 3);
    assert_int_equal(nn_pack_floats(NN_GEMM_AMX, 33, 3), 64 * 32);   /* K padded to 32 */
    assert_string_equal(nn_gemm_name(NN_GEMM_AMX), "amx-bf16x3");
    assert_string_equal(nn_gemm_name(NN_GEMM_AVX2), "avx2-packed");
    assert_string_equal(nn_gemm_name(NN_GEMM_AVX512), "avx512-packed");
    assert_string_equal(nn_gemm_name(NN_GEMM_BLAS), "blas");
    assert_string_equal(nn_gemm_name(NN_GEMM_BLIS), "blis");
    assert_int_equal(nn_pack_floats(NN_GEMM_BLIS, 33, 3), 33 * 3);
}

/* nn_packed_t.then (the next layer's first panel prefetched during this
 * layer's last panel) is a hint: with it linked to layers of other shapes
 * (K smaller and larger than this one's, one panel and several) or of
 * another kind, every result is bit-identical to the unlinked one, for the
 * plain, accumulating and GELU entry points and row counts below, at and
 * above the register block. */
static void test_linear_packed_then(void **state)
{
    (void)state;
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds);
    const int rows[] = { 1, 5, 8, 13, 32 };
    const int next_in[] = { 3, 64, 1100 };
    unsigned s = 11;
    for (int ki = 0; ki < n_kinds; ki++) {
        const int in = 96, out = 70;
        float *w = malloc(sizeof(float) * out * in), *x = malloc(sizeof(float) * 32 * in);
        float *b = malloc(sizeof(float) * out);
        float *y0 = malloc(sizeof(float) * 32 * out), *y1 = malloc(sizeof(float) * 32 * out);
        float *pw = aligned_alloc(NN_ARENA_ALIGN,
                                  (nn_pack_floats(kinds[ki], out, in) * sizeof(float) + 63) / 64 *
                                      64);
        assert_non_null(pw);
        for (int i = 0; i < out * in; i++) w[i] = frand(&s);
        for (int i = 0; i < 32 * in; i++) x[i] = frand(&s);
        for (int i = 0; i < out; i++) b[i] = frand(&s);
        nn_packed_t p;
        assert_int_equal(nn_pack(kinds[ki], w, out, in, pw, &p), 0);
        assert_null(p.then);
        for (size_t j = 0; j < sizeof next_in / sizeof next_in[0]; j++)
            for (int other = 0; other < 2; other++) {
                /* the next layer: same kind, or BLAS (another kind: ignored) */
                nn_gemm_kind_t nk = other ? NN_GEMM_BLAS : kinds[ki];
                const int nin = next_in[j], nout = 40;
                float *nw = calloc((size_t)nout * nin, sizeof(float));
                float *npw = aligned_alloc(NN_ARENA_ALIGN,
                                           (nn_pack_floats(nk, nout, nin) * sizeof(float) + 63) /
                                               64 * 64);
                assert_non_null(npw);
                nn_packed_t q;
                assert_int_equal(nn_pack(nk, nw, nout, nin, npw, &q), 0);
                for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
                    for (int mode = 0; mode < 3; mode++) {
                        const int n = rows[r];
                        for (int link = 0; link < 2; link++) {
                            float *y = link ? y1 : y0;
                            p.then = link ? &q : NULL;
                            for (int i = 0; i < n * out; i++)
                                y[i] = (float)i * 0.25f;
                            if (mode == 0)
                                nn_linear_packed(x, n, &p, b, y);
                            else if (mode == 1)
                                nn_linear_packed_acc(x, n, &p, b, y);
                            else
                                nn_linear_packed_gelu(x, n, &p, b, y);
                        }
                        assert_memory_equal(y0, y1, sizeof(float) * (size_t)n * out);
                    }
                p.then = NULL;
                free(nw);
                free(npw);
            }
        free(w); free(x); free(b); free(y0); free(y1); free(pw);
    }
}

/* nn_attention, every kernel the CPU runs, against a double-precision loop:
 * query counts around the 8- and 6-row blocks and 32- and 16-query panels,
 * head widths below, at and above 32 and 16 (masked V reads), strided q/k/v/o
 * as the PAC blocks use them, and scores (up to ~200) that would overflow an
 * unstabilised softmax. */
static void test_attention_matches_loop(void **state)
{
    (void)state;
    const int shapes[][4] = { /* nq, t, heads, dh */
        { 1, 7, 1, 4 }, { 5, 32, 8, 32 }, { 32, 210, 8, 32 }, { 33, 9, 2, 48 },
        { 8, 1, 3, 16 }, { 64, 64, 8, 64 }, { 3, 40, 4, 7 }, { 17, 13, 2, 24 },
        { 6, 6, 4, 16 }, { 16, 7, 3, 8 }, { 11, 50, 1, 17 } };
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds);
    unsigned s = 11;
    for (int ki = 0; ki < n_kinds; ki++)
        for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
            int nq = shapes[c][0], t = shapes[c][1], heads = shapes[c][2], dh = shapes[c][3];
            int d = heads * dh, ldq = d + 3, ldkv = 2 * d, ldo = d + 1;
            float *q = malloc(sizeof(float) * (size_t)nq * ldq);
            float *kv = malloc(sizeof(float) * (size_t)t * ldkv);
            float *o = malloc(sizeof(float) * (size_t)nq * ldo);
            size_t sf = nn_attention_scratch_floats(kinds[ki], nq, t, dh);
            float *sc = aligned_alloc(NN_ARENA_ALIGN, (sf * sizeof(float) + 63) / 64 * 64);
            double *p = malloc(sizeof(double) * (size_t)t);
            assert_true(q && kv && o && sc && p);
            for (int i = 0; i < nq * ldq; i++) q[i] = 4.0f * frand(&s);
            for (int i = 0; i < t * ldkv; i++) kv[i] = (c == 2 ? 10.0f : 1.0f) * frand(&s);
            for (int i = 0; i < nq * ldo; i++) o[i] = 777.0f;
            nn_attention(kinds[ki], q, ldq, nq, kv, kv + d, ldkv, t, heads, dh, o, ldo, sc);
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < nq; i++) {
                    double mx = -1e300, sum = 0.0, amax = 0.0;
                    for (int j = 0; j < t; j++) {
                        double a = 0.0;
                        for (int e = 0; e < dh; e++)
                            a += (double)q[i * ldq + h * dh + e] * kv[j * ldkv + h * dh + e];
                        p[j] = a;
                        mx = a > mx ? a : mx;
                        amax = fabs(a) > amax ? fabs(a) : amax;
                    }
                    for (int j = 0; j < t; j++)
                        sum += p[j] = exp(p[j] - mx);
                    for (int e = 0; e < dh; e++) {
                        double acc = 0.0;
                        for (int j = 0; j < t; j++)
                            acc += p[j] / sum * kv[j * ldkv + d + h * dh + e];
                        /* float scores carry ~1e-7 relative error, so the
                         * tolerance grows with their magnitude */
                        double tol = 2e-5 * (1 + fabs(acc)) * (amax > 10.0 ? amax / 10.0 : 1.0);
                        assert_float_equal(o[i * ldo + h * dh + e], acc, tol);
                    }
                }
            for (int i = 0; i < nq; i++)   /* the padding column is not written */
                assert_true(o[i * ldo + d] == 777.0f);
            free(q); free(kv); free(o); free(sc); free(p);
        }
}

/* nn_gemm_tn (a read transposed, b in place, column tails masked) and
 * nn_softmax_cols, every kernel the CPU runs, against double-precision loops;
 * ldb = 16 / 32 with b not 64-byte aligned (only packed panels may be read
 * with aligned loads). */
static void test_gemm_tn_and_softmax_cols(void **state)
{
    (void)state;
    const int shapes[][3] = { { 40, 32, 256 }, { 1, 1, 1 }, { 9, 13, 33 }, { 8, 64, 32 },
                              { 17, 5, 70 }, { 6, 7, 16 }, { 13, 3, 29 }, { 7, 9, 13 },
                              { 12, 24, 8 }, { 5, 11, 23 } };   /* m, k, n */
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds);
    unsigned s = 21;
    for (int ki = 0; ki < n_kinds; ki++)
        for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
            int m = shapes[c][0], k = shapes[c][1], n = shapes[c][2];
            int lda = m + 2, ldb = n + 3, ldc = n + 1;
            float *a = malloc(sizeof(float) * (size_t)k * lda);
            float *a0 = malloc(sizeof(float) * (size_t)k * lda);
            /* b one float past a 64-byte boundary */
            float *b_mem = aligned_alloc(64, (sizeof(float) * ((size_t)k * ldb + 1) + 63) / 64 * 64);
            float *b = b_mem ? b_mem + 1 : NULL;
            float *cc = malloc(sizeof(float) * (size_t)m * ldc);
            assert_true(a && a0 && b && cc);
            for (int i = 0; i < k * lda; i++) a0[i] = a[i] = 20.0f * frand(&s);
            for (int i = 0; i < k * ldb; i++) b[i] = frand(&s);
            for (int i = 0; i < m * ldc; i++) cc[i] = 555.0f;
            /* softmax down the first m columns of a[k, lda] */
            nn_softmax_cols(kinds[ki], a, k, m, lda);
            for (int j = 0; j < m; j++) {
                double mx = -1e300, sum = 0.0;
                for (int r = 0; r < k; r++)
                    mx = a0[r * lda + j] > mx ? a0[r * lda + j] : mx;
                for (int r = 0; r < k; r++)
                    sum += exp(a0[r * lda + j] - mx);
                for (int r = 0; r < k; r++) {
                    double want = exp(a0[r * lda + j] - mx) / sum;
                    assert_float_equal(a[r * lda + j], want, 1e-6 + 1e-5 * want);
                }
            }
            for (int r = 0; r < k; r++)   /* columns past m untouched */
                for (int j = m; j < lda; j++)
                    assert_true(a[r * lda + j] == a0[r * lda + j]);
            nn_gemm_tn(kinds[ki], a, lda, m, k, b, ldb, n, cc, ldc);
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double e = 0.0;
                    for (int r = 0; r < k; r++)
                        e += (double)a[r * lda + i] * b[r * ldb + j];
                    assert_float_equal(cc[i * ldc + j], e, 1e-5 * (1 + fabs(e)));
                }
                assert_true(cc[i * ldc + n] == 555.0f);
            }
            free(a); free(a0); free(b_mem); free(cc);
        }
}

/* The packed kernels' exp (degree-7 polynomial after range reduction; AVX2
 * builds 2^n in the exponent field, AVX-512 uses scalef) through
 * nn_softmax_cols on scores spread over [-120, 10] (the < -87 lanes flush to
 * 0): each within 2e-6 relative of a double-precision softmax, and the two
 * instruction sets agree to 1 ulp where both run. */
static void test_packed_exp_accuracy(void **state)
{
    (void)state;
    enum { T = 64, NC = 37, LD = 40 };
    static float st0[T * LD], st[3][T * LD];
    unsigned s = 5;
    for (int i = 0; i < T * LD; i++)
        st0[i] = 65.0f * frand(&s) - 55.0f;
    st0[3 * LD + 2] = 10.0f;   /* column 2: the others far below its max */
    for (int r = 0; r < T; r++)
        if (r != 3)
            st0[r * LD + 2] = -110.0f + (float)r * 0.01f;
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds), n_packed = 0;
    for (int ki = 0; ki < n_kinds; ki++) {
        if (kinds[ki] == NN_GEMM_BLAS || kinds[ki] == NN_GEMM_BLIS)
            continue;
        float *x = st[n_packed++];
        memcpy(x, st0, sizeof st0);
        nn_softmax_cols(kinds[ki], x, T, NC, LD);
        for (int j = 0; j < NC; j++) {
            double mx = -1e300, sum = 0.0;
            for (int r = 0; r < T; r++)
                mx = st0[r * LD + j] > mx ? st0[r * LD + j] : mx;
            for (int r = 0; r < T; r++)
                sum += exp((double)st0[r * LD + j] - mx);
            for (int r = 0; r < T; r++) {
                double d = (double)st0[r * LD + j] - mx;
                double want = exp(d) / sum;
                if (d < -87.5)
                    assert_true(x[r * LD + j] == 0.0f);
                else if (d > -80.0)
                    assert_float_equal(x[r * LD + j], want, 2e-6 * want + 1e-37);
            }
        }
    }
    for (int i = 1; i < n_packed; i++)
        for (int e = 0; e < T * LD; e++)
            assert_float_equal(st[i][e], st[0][e], 1.2e-7 * fabsf(st[0][e]) + 1e-38);
}

static void test_activations(void **state)
{
    (void)state;
    float x[5] = { -2.0f, -1.0f, 0.0f, 1.0f, 3.0f };
    float r[5], t[5], g[5], id[5];
    memcpy(r, x, sizeof x); memcpy(t, x, sizeof x); memcpy(g, x, sizeof x);
    memcpy(id, x, sizeof x);
    nn_activation(NN_ACT_RELU, r, 5);
    nn_activation(NN_ACT_TANH, t, 5);
    nn_activation(NN_ACT_GELU, g, 5);
    nn_activation(NN_ACT_IDENTITY, id, 5);
    const float relu_want[5] = { 0, 0, 0, 1, 3 };
    /* GELU(x) = x * Phi(x); Phi(1) = 0.8413447460685429, Phi(-1) = 0.15865525393145707,
     * Phi(-2) = 0.022750131948179195, Phi(3) = 0.9986501019683699 (normal CDF tables) */
    const double gelu_want[5] = { -2 * 0.022750131948179195, -0.15865525393145707, 0.0,
                                  0.8413447460685429, 3 * 0.9986501019683699 };
    for (int i = 0; i < 5; i++) {
        assert_true(r[i] == relu_want[i]);
        assert_float_equal(t[i], tanh((double)x[i]), 1e-6);
        assert_float_equal(g[i], gelu_want[i], 1e-6);
        assert_true(id[i] == x[i]);
    }
    nn_act_t a;
    assert_int_equal(nn_act_parse("gelu", &a), 0);
    assert_int_equal(a, NN_ACT_GELU);
    assert_string_equal(nn_act_name(a), "gelu");
    assert_int_equal(nn_act_parse("swish", &a), -EINVAL);
    assert_int_equal(nn_act_parse(NULL, &a), -EINVAL);
}

static void test_layernorm(void **state)
{
    (void)state;
    /* row [1, 2, 3, 4]: mean 2.5, biased var 1.25 */
    float x[8] = { 1, 2, 3, 4, 10, 10, 10, 10 };
    float gamma[4] = { 1, 2, 1, 1 }, beta[4] = { 0, 0, 1, 0 };
    float y[8];
    nn_layernorm(x, 2, 4, gamma, beta, 1e-5f, y);
    double inv = 1.0 / sqrt(1.25 + 1e-5);
    assert_float_equal(y[0], -1.5 * inv, 1e-6);
    assert_float_equal(y[1], -0.5 * inv * 2, 1e-6);
    assert_float_equal(y[2], 0.5 * inv + 1, 1e-6);
    assert_float_equal(y[3], 1.5 * inv, 1e-6);
    /* constant row: zero variance -> beta */
    assert_float_equal(y[4], 0.0, 1e-6);
    assert_float_equal(y[6], 1.0, 1e-6);
    /* in place, no affine */
    nn_layernorm(x, 1, 4, NULL, NULL, 1e-5f, x);
    assert_float_equal(x[3], 1.5 * inv, 1e-6);
}

static void test_softmax(void **state)
{
    (void)state;
    float x[6] = { 0, 0, 0, 1000, 1001, 1002 };   /* second row would overflow naively */
    nn_softmax(x, 2, 3);
    for (int i = 0; i < 3; i++)
        assert_float_equal(x[i], 1.0 / 3.0, 1e-6);
    double e = exp(1.0), z = 1 + e + e * e;
    assert_float_equal(x[3], 1 / z, 1e-6);
    assert_float_equal(x[4], e / z, 1e-6);
    assert_float_equal(x[5], e * e / z, 1e-6);
}

/* nn_gelu's erf approximation against libm's erf in double, over [-6, 6] */
static void test_erf_gelu(void **state)
{
    (void)state;
    double worst = 0.0;
    for (int i = -60000; i <= 60000; i++) {
        float x = (float)i * 1e-4f;
        double err = fabs((double)nn_erf(x) - erf((double)x));
        worst = err > worst ? err : worst;
    }
    assert_true(worst < 1e-6);
    float g[5] = { -3.0f, -1.0f, 0.0f, 0.5f, 4.0f };
    nn_gelu(g, 5);
    const double in[5] = { -3.0, -1.0, 0.0, 0.5, 4.0 };
    for (int i = 0; i < 5; i++)
        assert_true(fabs(g[i] - 0.5 * in[i] * (1.0 + erf(in[i] / sqrt(2.0)))) < 1e-6);
    /* the vector path over a dense range, a count that is not a multiple of 16 */
    enum { NG = 2003 };
    float *v = malloc(sizeof(float) * NG);
    assert_non_null(v);
    for (int i = 0; i < NG; i++)
        v[i] = -7.0f + 14.0f * (float)i / (NG - 1);
    nn_gelu(v, NG);
    for (int i = 0; i < NG; i++) {
        double t = (double)(-7.0f + 14.0f * (float)i / (NG - 1));
        double want = 0.5 * t * (1.0 + erf(t / sqrt(2.0)));
        assert_float_equal(v[i], want, 1e-6 * (1.0 + fabs(want)));
    }
    free(v);
}

/* GroupNorm over channels-last [p, c] against a direct computation */
static void test_groupnorm(void **state)
{
    (void)state;
    enum { P = 5, C = 6, G = 3 };
    float x[P * C], y[P * C], gamma[C], beta[C];
    for (int i = 0; i < P * C; i++)
        x[i] = sinf((float)i * 1.3f) * 3.0f + (float)(i % C);
    for (int c = 0; c < C; c++) {
        gamma[c] = 0.5f + (float)c;
        beta[c] = (float)c - 2.0f;
    }
    nn_groupnorm_hwc(x, P, C, G, gamma, beta, 1e-5f, NN_ACT_RELU, y);
    for (int g = 0; g < G; g++) {
        double mean = 0, var = 0;
        for (int p = 0; p < P; p++)
            for (int c = g * 2; c < g * 2 + 2; c++)
                mean += x[p * C + c];
        mean /= P * 2;
        for (int p = 0; p < P; p++)
            for (int c = g * 2; c < g * 2 + 2; c++)
                var += (x[p * C + c] - mean) * (x[p * C + c] - mean);
        var /= P * 2;
        for (int p = 0; p < P; p++)
            for (int c = g * 2; c < g * 2 + 2; c++) {
                double want = (x[p * C + c] - mean) / sqrt(var + 1e-5) * gamma[c] + beta[c];
                want = want > 0 ? want : 0;
                assert_true(fabs(y[p * C + c] - want) < 1e-4);
            }
    }
}

/* GroupNorm over the shapes that take every path: positions beyond one
 * block of 64, channels beyond one chunk of 256 (groups split across
 * chunks), groups wider than a chunk, and ReLU / identity / GELU. */
static void test_groupnorm_shapes(void **state)
{
    (void)state;
    const int shapes[][3] = { { 1, 4, 1 }, { 200, 32, 8 }, { 64, 512, 8 }, { 7, 600, 2 },
                              { 130, 96, 3 }, { 3, 300, 100 } };
    const nn_act_t acts[3] = { NN_ACT_RELU, NN_ACT_IDENTITY, NN_ACT_GELU };
    unsigned s = 5;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int P = shapes[k][0], C = shapes[k][1], G = shapes[k][2], cg = C / G;
        float *x = malloc(sizeof(float) * (size_t)P * C), *y = malloc(sizeof(float) * (size_t)P * C);
        float *gamma = malloc(sizeof(float) * (size_t)C), *beta = malloc(sizeof(float) * (size_t)C);
        assert_true(x && y && gamma && beta);
        for (int i = 0; i < P * C; i++)
            x[i] = 2.0f * frand(&s) + (float)(i % C) * 0.01f + 5.0f;   /* mean far from 0 */
        for (int c = 0; c < C; c++) {
            gamma[c] = 1.0f + frand(&s);
            beta[c] = frand(&s);
        }
        nn_act_t act = acts[k % 3];
        nn_groupnorm_hwc(x, P, C, G, gamma, beta, 1e-5f, act, y);
        for (int g = 0; g < G; g++) {
            double mean = 0, var = 0;
            for (int p = 0; p < P; p++)
                for (int c = g * cg; c < (g + 1) * cg; c++)
                    mean += x[p * C + c];
            mean /= (double)P * cg;
            for (int p = 0; p < P; p++)
                for (int c = g * cg; c < (g + 1) * cg; c++)
                    var += (x[p * C + c] - mean) * (x[p * C + c] - mean);
            var /= (double)P * cg;
            for (int p = 0; p < P; p++)
                for (int c = g * cg; c < (g + 1) * cg; c++) {
                    double v = (x[p * C + c] - mean) / sqrt(var + 1e-5) * gamma[c] + beta[c];
                    if (act == NN_ACT_RELU)
                        v = v > 0 ? v : 0;
                    else if (act == NN_ACT_GELU)
                        v = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
                    assert_float_equal(y[p * C + c], v, 2e-5 * (1 + fabs(v)));
                }
        }
        free(x); free(y); free(gamma); free(beta);
    }
}

static void test_arena(void **state)
{
    (void)state;
    nn_arena_t *a = nn_arena_new();
    assert_non_null(a);
    size_t o1 = nn_arena_reserve(a, 3);     /* 12 bytes -> one 64-byte block */
    size_t mark = nn_arena_mark(a);
    size_t o2 = nn_arena_reserve(a, 100);   /* 400 -> 448 */
    assert_int_equal(o1, 0);
    assert_int_equal(o2, NN_ARENA_ALIGN);
    assert_int_equal(nn_arena_bytes(a), 64 + 448);
    nn_arena_release(a, mark);
    size_t o3 = nn_arena_reserve(a, 16);    /* reuses o2's bytes */
    assert_int_equal(o3, o2);
    assert_int_equal(nn_arena_bytes(a), 64 + 448);   /* peak kept */
    assert_null(nn_arena_ptr(a, o1));                /* not committed yet */
    assert_int_equal(nn_arena_commit(a), 0);
    assert_int_equal(nn_arena_commit(a), -EALREADY);
    assert_true(nn_arena_reserve(a, 1) == (size_t)-1);
    float *p1 = nn_arena_ptr(a, o1), *p3 = nn_arena_ptr(a, o3);
    assert_non_null(p1);
    assert_int_equal((uintptr_t)p1 % NN_ARENA_ALIGN, 0);
    assert_int_equal((uintptr_t)p3 % NN_ARENA_ALIGN, 0);
    assert_true(p3[15] == 0.0f);
    p3[15] = 1.0f;   /* inside the block */
    assert_null(nn_arena_ptr(a, 64 + 448));
    assert_true(nn_arena_reserve(a, SIZE_MAX / 2) == (size_t)-1);
    nn_arena_destroy(&a);
    assert_null(a);
    nn_arena_destroy(&a);
}

/* 1 when the n floats at p are all 0.0f. */
static int all_zero(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0.0f)
            return 0;
    return 1;
}

/* nn_slab: a small estimate gives a small first slab (ordinary alignment, not
 * 2 MB) that a later request outgrows into a second, doubled one; a request
 * past NN_SLAB_HUGE gets a huge slab of its own; without an estimate (or with
 * a large one) the first slab is a 2 MB-aligned huge one as before; every
 * request comes zeroed, also from memory a freed chain had dirtied. */
static void test_slab(void **state)
{
    (void)state;
    assert_int_equal(nn_slab_request_bytes(0), NN_ARENA_ALIGN);
    assert_int_equal(nn_slab_request_bytes(100), 448);
    assert_int_equal(nn_slab_request_bytes(SIZE_MAX / 4), 0);

    /* dirty some small-slab memory first, so that the chain below may get it back */
    nn_slab_t d = { 0 };
    nn_slab_expect(&d, 10000);
    float *q = nn_slab_alloc(&d, 3000);
    assert_non_null(q);
    memset(q, 0xff, 3000 * sizeof(float));
    nn_slab_free(&d);
    assert_int_equal(d.n_chunks, 0);
    assert_int_equal(d.expect, 0);

    nn_slab_t s = { 0 };
    nn_slab_expect(&s, 10000);               /* -> a 12 KB first slab */
    float *a = nn_slab_alloc(&s, 100);       /* 448 bytes */
    float *b = nn_slab_alloc(&s, 2000);      /* 8000: fits (8448 of 12288) */
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(s.n_chunks, 1);
    assert_int_equal(s.bytes, 12288);
    assert_ptr_equal(b, a + 448 / sizeof(float));   /* carved in order */
    assert_int_equal((uintptr_t)a % NN_ARENA_ALIGN, 0);
    assert_true(all_zero(a, 100) && all_zero(b, 2000));
    a[99] = b[0] = b[1999] = 1.0f;           /* every float handed out is writable */
    nn_slab_expect(&s, (size_t)64 << 20);    /* after the first request: ignored */
    float *c = nn_slab_alloc(&s, 1000);      /* 4032: past the slab -> a second one */
    assert_non_null(c);
    assert_int_equal(s.n_chunks, 2);
    assert_int_equal(s.bytes, 2 * 12288);
    assert_true(s.bytes < NN_SLAB_HUGE);
    assert_true(all_zero(c, 1000));
    assert_true(a[99] == 1.0f && b[0] == 1.0f && b[1999] == 1.0f);   /* untouched */

    const size_t big = (size_t)3 << 19;      /* 6 MB of floats: a huge slab of its own */
    float *e = nn_slab_alloc(&s, big);
    assert_non_null(e);
    assert_int_equal(s.n_chunks, 3);
    assert_int_equal(s.bytes, (size_t)6 << 20);
    assert_int_equal((uintptr_t)e % NN_SLAB_HUGE, 0);
    assert_true(all_zero(e, big));
    e[big - 1] = 1.0f;
    assert_null(nn_slab_alloc(&s, SIZE_MAX / 4));
    nn_slab_free(&s);
    assert_int_equal(s.n_chunks, 0);
    assert_null(s.chunks);
    nn_slab_free(NULL);

    /* no estimate, and an estimate of NN_SLAB_HUGE or more: huge slabs from the start */
    for (int k = 0; k < 2; k++) {
        nn_slab_t h = { 0 };
        if (k)
            nn_slab_expect(&h, NN_SLAB_HUGE);
        float *f = nn_slab_alloc(&h, 16);
        assert_non_null(f);
        assert_int_equal(h.bytes, NN_SLAB_HUGE);
        assert_int_equal((uintptr_t)f % NN_SLAB_HUGE, 0);
        assert_true(all_zero(f, 16));
        float *g = nn_slab_alloc(&h, NN_SLAB_HUGE / sizeof(float));   /* 2 MB: next slab */
        assert_non_null(g);
        assert_int_equal(h.n_chunks, 2);
        assert_int_equal(h.bytes, 2 * NN_SLAB_HUGE);                  /* doubled */
        nn_slab_free(&h);
    }

    /* a tiny estimate still gets a whole page */
    nn_slab_t t = { 0 };
    nn_slab_expect(&t, 1);
    assert_non_null(nn_slab_alloc(&t, 1));
    assert_int_equal(t.bytes, NN_SLAB_PAGE);
    nn_slab_free(&t);
}

static void test_threads_and_core(void **state)
{
    (void)state;
    nn_set_threads(0);   /* clamped to 1, must not crash */
    nn_set_threads(1);
    const char *core = nn_blas_corename();
    assert_non_null(core);
    assert_true(strlen(core) > 0);
}

/* nn_linear_packed_gelu (GELU in the tile's store) against nn_linear_packed
 * then nn_gelu: the same floats with the AVX-512 and AMX kernels (nn_gelu's
 * operations), within float rounding with the others (AVX2 divides). */
static void test_linear_packed_gelu(void **state)
{
    (void)state;
    const int shapes[][3] = { { 1, 7, 5 },    { 32, 64, 128 },  { 13, 40, 65 },
                              { 25, 33, 47 }, { 33, 600, 65 },  { 17, 1100, 70 },
                              { 48, 544, 96 }, { 9, 31, 65 } };
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds);
    unsigned s = 11;
    for (int ki = 0; ki < n_kinds; ki++) {
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            int n = shapes[k][0], in = shapes[k][1], out = shapes[k][2];
            float *x = malloc(sizeof(float) * (size_t)(n * in));
            float *w = malloc(sizeof(float) * (size_t)(out * in));
            float *b = malloc(sizeof(float) * (size_t)out);
            float *y = malloc(sizeof(float) * (size_t)(n * out));
            float *y0 = malloc(sizeof(float) * (size_t)(n * out));
            size_t pf = nn_pack_floats(kinds[ki], out, in);
            float *pw = aligned_alloc(NN_ARENA_ALIGN, (pf * sizeof(float) + 63) / 64 * 64);
            assert_non_null(pw);
            for (int i = 0; i < n * in; i++) x[i] = 3.0f * frand(&s);
            for (int i = 0; i < out * in; i++) w[i] = frand(&s);
            for (int i = 0; i < out; i++) b[i] = frand(&s);
            nn_packed_t p;
            assert_int_equal(nn_pack(kinds[ki], w, out, in, pw, &p), 0);
            nn_linear_packed(x, n, &p, b, y0);
            nn_gelu(y0, (size_t)n * out);
            nn_linear_packed_gelu(x, n, &p, b, y);
            for (int i = 0; i < n * out; i++) {
                if (kinds[ki] == NN_GEMM_AVX512 || kinds[ki] == NN_GEMM_AMX)
                    assert_true(y[i] == y0[i]);
                else
                    assert_float_equal(y[i], y0[i], 1e-5 * (1 + fabs(y0[i])));
            }
            free(x); free(w); free(b); free(y); free(y0); free(pw);
        }
    }
}

/* y[n, out] = x[n, in] W^T (no bias) within AMX's bf16x3 bound, 2^-15 sum
 * |x w| per output, of a double-precision loop. */
static void assert_amx_product(const float *x, const float *w, const float *y, int n, int in,
                               int out)
{
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            double e = 0.0, mag = 0.0;
            for (int i = 0; i < in; i++) {
                e += (double)x[r * in + i] * w[o * in + i];
                mag += fabs((double)x[r * in + i] * w[o * in + i]);
            }
            assert_float_equal(y[r * out + o], e, mag / 32768.0 + 1e-6);
        }
}

/* AMX skips the a_lo products of a block whose inputs are all exact bf16
 * (pixel values 0..255): the result must stay right with such inputs, and a
 * single non-bf16 input in the block must still get its a_lo products. */
static void test_amx_bf16_exact_inputs(void **state)
{
    (void)state;
    if (!nn_gemm_cpu_has_amx())
        skip();
    enum { N = 40, IN = 48, OUT = 33 };
    static float x[N * IN], w[OUT * IN], y[N * OUT];
    unsigned s = 3;
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)(i * 37 % 256);
    for (int i = 0; i < OUT * IN; i++)
        w[i] = frand(&s) / 255.0f;
    float *pw = aligned_alloc(NN_ARENA_ALIGN, nn_pack_floats(NN_GEMM_AMX, OUT, IN) * 4);
    assert_non_null(pw);
    nn_packed_t p;
    assert_int_equal(nn_pack(NN_GEMM_AMX, w, OUT, IN, pw, &p), 0);
    for (int variant = 0; variant < 2; variant++) {
        if (variant)
            x[5 * IN + 7] = 100.3f;   /* not a bf16: row 5's block needs a_lo */
        nn_linear_packed(x, N, &p, NULL, y);
        assert_amx_product(x, w, y, N, IN, OUT);
    }
    free(pw);
}

/* Weights that are all exactly bf16 (a BF16 checkpoint): AMX stores only the
 * hi tiles (half the floats of nn_pack_floats) and must still be right across
 * 16- and 32-row blocks, K chunks and column tails; one weight with low bits
 * set brings the lo tiles back. The float kernels' sizes do not change. */
static void test_amx_bf16_weights(void **state)
{
    (void)state;
    const int shapes[][3] = { { 5, 600, 45 }, { 37, 600, 45 }, { 32, 1030, 70 }, { 16, 33, 33 } };
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds);
    unsigned s = 29;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int n = shapes[k][0], in = shapes[k][1], out = shapes[k][2];
        float *x = malloc(sizeof(float) * (size_t)(n * in));
        float *w = malloc(sizeof(float) * (size_t)(out * in));
        float *y = malloc(sizeof(float) * (size_t)(n * out));
        assert_true(x && w && y);
        for (int i = 0; i < n * in; i++)
            x[i] = frand(&s);
        for (int i = 0; i < out * in; i++) {
            float v = frand(&s);
            uint32_t u;
            memcpy(&u, &v, sizeof u);
            u &= 0xffff0000u;
            memcpy(&w[i], &u, sizeof u);
        }
        for (int ki = 0; ki < n_kinds; ki++)
            if (kinds[ki] != NN_GEMM_AMX)
                assert_int_equal(nn_pack_floats_w(kinds[ki], w, out, in),
                                 nn_pack_floats(kinds[ki], out, in));
        if (nn_gemm_cpu_has_amx()) {
            const size_t full = nn_pack_floats(NN_GEMM_AMX, out, in);
            for (int variant = 0; variant < 2; variant++) {
                if (variant)
                    w[out * in - 1] += 1e-4f;   /* no longer a bf16 */
                const size_t pf = nn_pack_floats_w(NN_GEMM_AMX, w, out, in);
                assert_int_equal(pf, variant ? full : full / 2);
                float *pw = aligned_alloc(NN_ARENA_ALIGN, (pf * sizeof(float) + 63) / 64 * 64);
                assert_non_null(pw);
                nn_packed_t p;
                assert_int_equal(nn_pack(NN_GEMM_AMX, w, out, in, pw, &p), 0);
                assert_int_equal(p.lo, variant);
                nn_linear_packed(x, n, &p, NULL, y);
                assert_amx_product(x, w, y, n, in, out);
                free(pw);
            }
        }
        free(x); free(w); free(y);
    }
}

/* A fresh thread prepared with nn_gemm_prepare_thread runs every kernel;
 * AMX where the CPU lacks it is refused. */
struct prep_arg {
    nn_gemm_kind_t kind;
    int rc;
    float y[4];
};

static void *prep_thread(void *p)
{
    struct prep_arg *a = p;
    a->rc = nn_gemm_prepare_thread(a->kind);
    if (a->rc == 0) {
        const float w[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, x[4] = { 1, -1, 0.5f, 2 };
        _Alignas(64) float pw[64 * 32];
        nn_packed_t pk;
        if (nn_pack(a->kind, w, 2, 4, pw, &pk) == 0)
            nn_linear_packed(x, 1, &pk, NULL, a->y);
    }
    return NULL;
}

static void test_prepare_thread(void **state)
{
    (void)state;
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds);
    for (int ki = 0; ki < n_kinds; ki++) {
        struct prep_arg a = { .kind = kinds[ki] };
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, prep_thread, &a), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(a.rc, 0);
        /* x . w rows: 1 - 2 + 1.5 + 8 = 8.5; 5 - 6 + 3.5 + 16 = 18.5 (exact in bf16x3) */
        assert_float_equal(a.y[0], 8.5f, 1e-6);
        assert_float_equal(a.y[1], 18.5f, 1e-6);
    }
    if (!nn_gemm_cpu_has_amx())
        assert_int_equal(nn_gemm_prepare_thread(NN_GEMM_AMX), -ENOTSUP);
}

/* nn_gemm_selfcheck passes on every kernel this CPU runs (the load-time
 * check the AMX kernel must pass) and refuses one it lacks. */
static void test_gemm_selfcheck(void **state)
{
    (void)state;
    nn_gemm_kind_t kinds[5];
    int n_kinds = cpu_kinds(kinds);
    char rep[256];
    for (int ki = 0; ki < n_kinds; ki++) {
        assert_int_equal(nn_gemm_selfcheck(kinds[ki], rep, sizeof rep), 0);
        assert_non_null(strstr(rep, "self-check ok"));
        assert_non_null(strstr(rep, nn_gemm_name(kinds[ki])));
    }
    if (!nn_gemm_cpu_has_amx())
        assert_int_equal(nn_gemm_selfcheck(NN_GEMM_AMX, rep, sizeof rep), -ENOTSUP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_matches_loop),
        cmocka_unit_test(test_linear_packed_matches_loop),
        cmocka_unit_test(test_linear_packed_then),
        cmocka_unit_test(test_gemm_selfcheck),
        cmocka_unit_test(test_amx_bf16_exact_inputs),
        cmocka_unit_test(test_amx_bf16_weights),
        cmocka_unit_test(test_prepare_thread),
        cmocka_unit_test(test_linear_packed_gelu),
        cmocka_unit_test(test_attention_matches_loop),
        cmocka_unit_test(test_gemm_tn_and_softmax_cols),
        cmocka_unit_test(test_packed_exp_accuracy),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_erf_gelu),
        cmocka_unit_test(test_groupnorm),
        cmocka_unit_test(test_groupnorm_shapes),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_slab),
        cmocka_unit_test(test_threads_and_core),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
