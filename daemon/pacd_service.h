/* service — the non-real-time side of pacd: telemetry PUB, control ROUTER
 * (answering REQ clients with explicit envelopes),
 * turning loop events into journal lines, systemd STATUS=.
 *
 * One thread: it polls the control socket until the next telemetry tick,
 * answers Commands (forwarding them to the loop's command queue and waiting
 * for the loop's result), publishes Telemetry at [telemetry] rate_hz, and
 * drains the loop's event ring to stderr (journald) with sd-daemon priority
 * prefixes. Each Telemetry it publishes also goes to the Foxglove live view
 * (deps->foxglove, foxglove_offer_telemetry) when there is one. It is the only consumer of the loop's status and events.
 *
 * RELOAD (and SIGHUP through service_request_reload) loads a checkpoint on
 * this thread, checks it (its spec against the loop's, a test step on a
 * neutral observation) and offers it to the loop, which swaps it in at the
 * next episode boundary (loop_offer_policy). While it loads, telemetry and
 * other commands wait; the control loop does not.
 *
 * Threading: all functions init-only (main thread), but
 * service_request_reload.
 */
#ifndef PACD_SERVICE_H
#define PACD_SERVICE_H

#include <stddef.h>

#include "pacd_auth.h"
#include "pacd_config.h"
#include "pacd_foxglove.h"
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
    foxglove_t *foxglove;       /* the live view, fed each Telemetry; NULL = off */
} service_deps_t;

/* Bind the telemetry and control sockets and start the thread. If
 * cfg->autostart, the thread starts an episode once running. Caller owns the
 * result; NULL + message in err when a socket cannot be bound. */
service_t *service_new(const service_deps_t *deps, char *err, size_t errlen);

/* Ask the service thread to reload the configured [policy] checkpoint (what
 * SIGHUP does); it does so within a telemetry period, and the outcome shows
 * in the journal and in telemetry (reloads, reload_error). Any thread;
 * async-signal-safe (one atomic store). NULL-safe. */
void service_request_reload(service_t *self);

/* Stop the thread (after draining events), close sockets, free;
 * *self_p = NULL. NULL-safe. */
void service_destroy(service_t **self_p);

#endif
