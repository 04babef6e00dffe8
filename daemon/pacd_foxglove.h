/* foxglove — the live view: pacd serves the Foxglove WebSocket protocol
 * (docs/monitoring.md) so Foxglove (the app or the web page) can show the
 * telemetry, the robot state, the actions, rewards, Q values and the camera
 * images while pacd runs.
 *
 * One thread of its own (normal scheduling) runs a libwebsockets server on
 * [foxglove] bind:port. It accepts the subprotocols "foxglove.websocket.v1"
 * and "foxglove.sdk.v1", sends serverInfo and one advertise of every channel
 * (protobuf, with the FileDescriptorSet the episode logs embed, base64), and
 * answers subscribe / unsubscribe. It is fed, never by the control loop:
 *  - the service thread hands it every Telemetry it publishes
 *    (foxglove_offer_telemetry: one copy under a mutex only the two take),
 *    from which it cuts the robot state, action, policy and teleoperator
 *    actions, reward and Q value channels;
 *  - the ingest thread's camera tap (ingest_viewer_frame) gives it camera
 *    frames at [foxglove] image_rate_hz, which it sends as
 *    foxglove.CompressedImage (JPEG) or foxglove.RawImage (rgb8).
 * Each client has a send queue; a client with more than [foxglove]
 * send_queue_kb queued (it does not read) is disconnected, as is one that
 * sends anything but JSON text of the protocol (binary, invalid JSON, a
 * message over 64 KiB). Connections beyond max_clients are refused.
 *
 * Threading: foxglove_new/foxglove_destroy are init-only (main thread);
 * foxglove_offer_telemetry belongs to the service thread;
 * foxglove_get_stats to any thread.
 */
#ifndef PACD_FOXGLOVE_H
#define PACD_FOXGLOVE_H

#include <stddef.h>
#include <stdint.h>

#include "pacd_config.h"
#include "pacd_ingest.h"

typedef struct foxglove foxglove_t;

typedef struct {
    uint64_t clients_accepted;     /* connections that completed the handshake */
    uint64_t clients_refused;      /* over max_clients */
    uint64_t clients_dropped_slow; /* send queue over the limit */
    uint64_t clients_dropped_bad;  /* sent binary, invalid JSON or an oversized message */
    uint64_t messages_sent;        /* message data frames queued to clients */
    int clients;                   /* connected now */
} foxglove_stats_t;

/* Bind [foxglove] bind:port and start the thread. `ingest` (not owned,
 * outlives the server) gives the camera frames; `robot` names the server
 * in serverInfo. Init-only. NULL + message in err when the port cannot be
 * bound or memory is short. */
foxglove_t *foxglove_new(const config_t *cfg, ingest_t *ingest, const char *robot, char *err,
                         size_t errlen);

/* Service thread: a packed pacd.v1.Telemetry (n bytes, copied) for the
 * viewers; wakes the server thread. Never blocks for long (a mutex only
 * the server thread shares, held for a copy). NULL-safe (no server). */
void foxglove_offer_telemetry(foxglove_t *self, const uint8_t *buf, size_t n);

/* Counters, any thread. */
void foxglove_get_stats(foxglove_t *self, foxglove_stats_t *out);

/* Stop the thread, close every connection, free; *self_p = NULL.
 * NULL-safe. Init-only. */
void foxglove_destroy(foxglove_t **self_p);

#endif
