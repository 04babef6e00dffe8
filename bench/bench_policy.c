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
#include <time.h>

#include "policy.h"
#include "policy_nn.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

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
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "bench_policy: %s: %s\n", argv[2], strerror(errno));
        policy_destroy(&p);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    long rows = bytes / (long)(sizeof(float) * (size_t)s->obs_dim);
    float *obs = rows > 0 ? malloc((size_t)bytes) : NULL;
    if (!obs || fread(obs, 1, (size_t)bytes, f) != (size_t)bytes) {
        fprintf(stderr, "bench_policy: %s: cannot read observation rows of %d floats\n",
                argv[2], s->obs_dim);
        fclose(f);
        free(obs);
        policy_destroy(&p);
        return 1;
    }
    fclose(f);
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
        double t0 = now_us();
        policy_step(p, &o, action, NULL);
        t[i] = now_us() - t0;
    }
    double sum = 0;
    for (int i = 0; i < iters; i++)
        sum += t[i];
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    printf("{\"engine\": \"pacd\", \"checkpoint\": \"%s\", \"iters\": %d, \"threads\": %d, "
           "\"us_per_step\": %.3f, \"mean_us\": %.3f, \"p99_us\": %.3f, \"arena_bytes\": %zu, "
           "\"corename\": \"%s\"}\n", argv[1], iters, threads, t[iters / 2], sum / iters,
           t[(size_t)(iters * 0.99)], policy_arena_bytes(p), nn_blas_corename());
    free(t);
    free(obs);
    policy_destroy(&p);
    return 0;
}
