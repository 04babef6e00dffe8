/* libFuzzer harness: arbitrary bytes as pacd's INI config through
 * config_load_buffer (inih, every [section] key, the cross-key checks).
 * tests/fuzz/README.md says how to run it. */
#include <stddef.h>
#include <stdint.h>

#include "pacd_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static config_t cfg;   /* ~10 KB: not on the stack */
    char err[512];
    if (config_load_buffer(&cfg, "/etc/pacd/pacd.conf", (const char *)data, size, err,
                           sizeof err) == 0)
        config_free(&cfg);
    return 0;
}
