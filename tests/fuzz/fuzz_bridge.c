/* libFuzzer harness: what pacd's remote backend takes from a robot-side
 * driver (docs/bridge.md): a BridgeMessage unpacked as the I/O thread does,
 * and a DriverState checked against both robot descriptions
 * (bridge_check_state). tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>

#include "bridge_wire.h"
#include "hal_robot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > BRIDGE_MAX_MESSAGE)
        return 0;
    Pacd__V1__BridgeMessage *m = pacd__v1__bridge_message__unpack(NULL, size, data);
    if (!m)
        return 0;
    if (m->body_case == PACD__V1__BRIDGE_MESSAGE__BODY_STATE) {
        char why[160];
        bridge_check_state(m->state, hal_robot_find("panda"), 0.05, 1.5, why, sizeof why);
        bridge_check_state(m->state, hal_robot_find("sawyer"), 0.05, 1.5, why, sizeof why);
    }
    pacd__v1__bridge_message__free_unpacked(m, NULL);
    return 0;
}
