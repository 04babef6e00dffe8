/* libFuzzer harness: arbitrary bytes as a checkpoint file through policy_load
 * (safetensors header and tensors, the metadata, each architecture's loader)
 * and, when it loads, one policy_step. tests/fuzz/README.md says how to run it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* policy_load maps a path: give it an in-memory file */
    int fd = memfd_create("ckpt", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char err[512];
    policy_t *p = policy_load(path, NULL, err, sizeof err);
    if (p) {
        const policy_spec_t *s = policy_spec(p);
        static float obs[1 << 16];
        float action[POLICY_MAX_ACTION];
        if (s->obs_dim <= (int)(sizeof obs / sizeof obs[0]) && s->n_images == 0) {
            policy_observation_t o = { .values = obs, .images = NULL };
            policy_step(p, &o, action, NULL);
        }
        policy_destroy(&p);
    }
    close(fd);
    return 0;
}
