/* bench_policy — time pacd's policy_step at batch 1 (prints figures, asserts nothing).
 *
 *   bench_policy CHECKPOINT OBS.bin [ITERS] [THREADS]
 *
 * OBS.bin: float32 rows of obs_dim (cycled). Prints one JSON line:
 * {"engine": "pacd", "checkpoint": ..., "us_per_step": median, "p99_us": ..., "corename": ...}
 * and writes the actions of the first rows to stderr-free ACTIONS file if
 * PACD_BENCH_ACTIONS is set (for the driver's cross-engine sanity print). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "policy.h"
#include "nn.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_policy CHECKPOINT OBS.bin [ITERS] [THREADS]\n");
        return 2;
    }
    int iters = argc > 3 ? atoi(argv[3]) : 2000;
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    if (iters < 1 || threads < 1) {
        fprintf(stderr, "bench_policy: ITERS and THREADS must be >= 1\n");
        return 2;
    }
    char err[512];
    policy_options_t opt = { .threads = threads };
    policy_t *p = policy_load(argv[1], &opt, err, sizeof err);
    if (!p) {
        fprintf(stderr, "bench_policy: %s\n", err);
        return 1;
    }
    const policy_spec_t *s = policy_spec(p);
    long bytes = 0;
    float *obs = bench_read_all(argv[2], &bytes);
    long rows = bytes / (long)(sizeof(float) * (size_t)s->obs_dim);
    if (!obs || rows < 1) {
        fprintf(stderr, "bench_policy: %s: cannot read observation rows of %d floats\n",
                argv[2], s->obs_dim);
        free(obs);
        policy_destroy(&p);
        return 1;
    }
    double *t = malloc(sizeof(double) * (size_t)iters);
    float action[POLICY_MAX_ACTION];
    const char *apath = getenv("PACD_BENCH_ACTIONS");
    if (apath) {
        FILE *af = fopen(apath, "wb");
        for (long r = 0; af && r < rows && r < 64; r++) {
            policy_observation_t o = { .values = obs + r * s->obs_dim };
            if (policy_step(p, &o, action, NULL) == 0)
                fwrite(action, sizeof(float), (size_t)s->action_dim, af);
        }
        if (af)
            fclose(af);
    }
    for (int i = 0; i < 200; i++) {   /* warm caches */
        policy_observation_t o = { .values = obs + (i % rows) * s->obs_dim };
        policy_step(p, &o, action, NULL);
    }
    for (int i = 0; i < iters; i++) {
        policy_observation_t o = { .values = obs + (i % rows) * s->obs_dim };
        int64_t t0 = rt_clock_mono_ns();
        policy_step(p, &o, action, NULL);
        t[i] = (rt_clock_mono_ns() - t0) * 1e-3;
    }
    bench_stats_t st = bench_stats(t, iters);
    printf("{\"engine\": \"pacd\", \"checkpoint\": \"%s\", \"iters\": %d, \"threads\": %d, "
           "\"us_per_step\": %.3f, \"mean_us\": %.3f, \"p99_us\": %.3f, \"arena_bytes\": %zu, "
           "\"corename\": \"%s\"}\n", argv[1], iters, threads, st.median_us, st.mean_us,
           st.p99_us, policy_arena_bytes(p), nn_blas_corename());
    free(t);
    free(obs);
    policy_destroy(&p);
    return 0;
}
