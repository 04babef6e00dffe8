/* libFuzzer harness: a camera socket message as pacd's ingest takes it,
 * through frame_decode_message (topic and CameraFrame checks, RGB8 copy,
 * JPEG header check and decode, area-average resize). Input: one byte n,
 * then n bytes of topic (n is cut to what is there), then the message.
 * Two cameras: "front" 32x24 (exact size) and "wrist" 16x16 (resize = true);
 * frames may declare up to 64x64 pixels. tests/fuzz/README.md. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pacd_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const config_camera_t cams[2] = {
        {.name = "front", .width = 32, .height = 24, .max_age_ms = 200, .required = 1},
        {.name = "wrist", .width = 16, .height = 16, .max_age_ms = 200, .required = 1,
         .resize = 1},
    };
    static frame_decoder_t *dec;
    static uint8_t front[32 * 24 * 3], wrist[16 * 16 * 3];
    if (!dec && !(dec = frame_decoder_new(64 * 64, 1)))
        abort();
    if (size == 0)
        return 0;
    size_t n = data[0] < size - 1 ? data[0] : size - 1;
    uint8_t *const dst[2] = {front, wrist};
    frame_info_t info;
    const char *why = NULL;
    (void)frame_decode_message(dec, cams, 2, data + 1, n, data + 1 + n, size - 1 - n, dst, &info,
                               &why);
    return 0;
}
