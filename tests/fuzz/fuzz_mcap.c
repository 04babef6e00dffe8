/* libFuzzer harness: arbitrary bytes as an episode log (MCAP) through the
 * reader behind `pacctl log verify` (log_verify_buffer) and
 * `pacctl log cat` (pacctl_log_cat_buffer, on each topic kind pacd writes).
 * tests/fuzz/README.md says how to run it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log_reader.h"
#include "pacctl_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null_out;
    if (!null_out && !(null_out = fopen("/dev/null", "w")))
        return 0;
    static log_report_t report;
    (void)log_verify_buffer(data, size, &report);
    static const char *const topics[] = { "/pacd/step", "/pacd/robot_state",
                                          "/pacd/camera/front", "/other" };
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        (void)pacctl_log_cat_buffer(data, size, "fuzz.mcap", topics[i], null_out, null_out);
    return 0;
}
