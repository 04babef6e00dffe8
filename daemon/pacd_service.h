/* service — the non-real-time side of pacd: telemetry PUB, control ROUTER
 * (answering REQ clients with explicit envelopes),
 * turning loop events into journal lines, systemd STATUS=.
 *
 * One thread: it polls the control socket until the next telemetry tick,
 * answers Commands (forwarding them to the loop's command queue and waiting
 * for the loop's result), publishes Telemetry at [telemetry] rate_hz, and
 * drains the loop's event ring to stderr (journald) with sd-daemon priority
 * prefixes. It is the only consumer of the loop's status and events.
 *
 * Threading: all functions init-only (main thread).
 */
#ifndef PACD_SERVICE_H
#define PACD_SERVICE_H

#include <stddef.h>

#include "pacd_auth.h"
#include "pacd_config.h"
#include "pacd_ingest.h"
#include "log_writer.h"
#include "pacd_loop.h"

typedef struct service service_t;

typedef struct {
    const config_t *cfg;
    loop_t *loop;
    hal_t *hal;                 /* NULL in shadow mode */
    ingest_t *ingest;
    logger_t *logger;
    void *zmq_ctx;
    auth_t *auth;               /* security of the sockets; NULL = none */
    const char *robot;
    const char *checkpoint_sha256;
} service_deps_t;

/* Bind the telemetry and control sockets and start the thread. If
 * cfg->autostart, the thread starts an episode once running. Caller owns the
 * result; NULL + message in err when a socket cannot be bound. */
service_t *service_new(const service_deps_t *deps, char *err, size_t errlen);

/* Stop the thread (after draining events), close sockets, free;
 * *self_p = NULL. NULL-safe. */
void service_destroy(service_t **self_p);

#endif
