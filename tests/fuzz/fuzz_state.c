/* libFuzzer harness: the state socket's decoders as pacd's ingest calls
 * them. The first byte picks the message: 0 RobotState (7 joints),
 * 1 Reward, 2 teleop Action; the rest is the message.
 * tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>

#include "pacd_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *msg = data + 1;
    size_t len = size - 1;
    const char *why = NULL;
    switch (data[0] % 3) {
    case 0: {
        hal_state_t st;
        (void)validate_robot_state(msg, len, 7, &st, &why);
        break;
    }
    case 1: {
        validate_reward_t r;
        (void)validate_reward(msg, len, &r, &why);
        break;
    }
    default: {
        float values[16];
        int n = 0;
        uint64_t seq = 0;
        (void)validate_teleop_action(msg, len, values, 16, &n, &seq, NULL, &why);
        break;
    }
    }
    return 0;
}
