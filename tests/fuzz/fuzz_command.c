/* libFuzzer harness: a control request's Command as pacd's service decodes
 * and checks it (validate_command: unpack, then the numeric fields its type
 * uses). tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>

#include "pacd_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Pacd__V1__Command *c = NULL;
    const char *why = NULL;
    if (validate_command(data, size, &c, &why) == 0)
        pacd__v1__command__free_unpacked(c, NULL);
    return 0;
}
