/* auth — who may talk to pacd: CurveZMQ on TCP endpoints, a ZAP handler
 * (RFC 27) with allow-list directories, ipc socket permissions
 * (docs/security.md).
 *
 * With [security] server_secret_key set, every socket pacd binds on tcp://
 * is a CURVE server with that key and a ZAP domain naming the endpoint; the
 * ZAP handler (inproc://zeromq.zap.01, its own non-RT thread) admits a client
 * key only when it is in a directory that grants the endpoint:
 *
 *   telemetry  monitor_keys, operator_keys
 *   control    operator_keys
 *   camera     publisher_keys (and pacd's own key: the mujoco backend)
 *   state      publisher_keys (and pacd's own key)
 *
 * A directory is re-read when it changes (its mtime/ctime, checked on each
 * ZAP request, i.e. on each new connection): removing a certificate revokes
 * it for new connections without a restart. ipc:// endpoints carry no CURVE;
 * their socket file gets mode 0660 and the process's group.
 *
 * Threading: auth_new, auth_bind, auth_start, auth_destroy are init-only
 * (main thread). auth_get_stats and auth_handshake_event are safe from any
 * thread (atomics); neither is for the control loop.
 */
#ifndef PACD_AUTH_H
#define PACD_AUTH_H

#include <stdint.h>
#include <zmq.h>

#include "pacd_config.h"

typedef struct auth auth_t;

typedef enum {
    AUTH_DOMAIN_TELEMETRY = 0,
    AUTH_DOMAIN_CONTROL,
    AUTH_DOMAIN_CAMERA,
    AUTH_DOMAIN_STATE,
    AUTH_N_DOMAINS
} auth_domain_t;

/* What an endpoint string binds to. */
typedef enum {
    AUTH_EP_IPC = 0,        /* ipc:// (file permissions guard it) */
    AUTH_EP_LOOPBACK,       /* tcp:// on 127.0.0.0/8, [::1], localhost or lo */
    AUTH_EP_NETWORK,        /* any other tcp:// (*, 0.0.0.0, a LAN address, an interface) */
    AUTH_EP_OTHER,          /* another transport (inproc, pgm, ...): treated as network */
} auth_endpoint_kind_t;

/* Socket-monitor events auth_handshake_event counts (handshakes that failed
 * before ZAP: no CURVE, wrong server key, garbage). */
#define AUTH_HANDSHAKE_EVENTS (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | \
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)

typedef struct {
    int curve;                  /* CURVE on the TCP endpoints */
    int insecure;               /* [security] insecure = true and no CURVE */
    uint64_t admitted;          /* ZAP: key allowed */
    uint64_t denied_unknown_key; /* ZAP: key in no allow-list (also: revoked) */
    uint64_t denied_wrong_role; /* ZAP: key listed, but not for this endpoint */
    uint64_t handshake_failed;  /* no CURVE / wrong server key / bad handshake */
} auth_stats_t;

/* Classify a bind endpoint (pure string logic). Safe anywhere. */
auth_endpoint_kind_t auth_endpoint_kind(const char *endpoint);

/* The name of a domain ("telemetry", "control", "camera", "state"). */
const char *auth_domain_name(auth_domain_t d);

/* Check the [security] config without opening sockets (--check-config):
 * CURVE available, the secret key file private and valid, the directories
 * readable. 0 or -EINVAL/-EACCES/-ENOTSUP with a message in err. Init-only. */
int auth_check(const config_t *cfg, char *err, size_t errlen);

/* Load the keys (as auth_check) and, with CURVE, bind the ZAP handler's REP
 * socket on zmq_ctx (before any other socket binds: libzmq admits every key
 * when no handler is bound). The thread starts with auth_start. Prints the
 * security mode (and the insecure warning) to stderr. Caller owns the
 * result; NULL + message in err on failure. Init-only. */
auth_t *auth_new(const config_t *cfg, void *zmq_ctx, char *err, size_t errlen);

/* zmq_bind with security: CURVE server options and the ZAP domain on tcp://
 * endpoints when CURVE is on; for ipc:// chmod 0660 and chown to the
 * process's group after binding. `owner_monitors`: the caller already runs a
 * socket monitor on sock and passes AUTH_HANDSHAKE_EVENTS to
 * auth_handshake_event; else auth monitors the socket itself. self may be
 * NULL (plain bind + ipc permissions). Returns 0, or -1 with errno set (as
 * zmq_bind; zmq_strerror(zmq_errno()) describes it). Init-only. */
int auth_bind(auth_t *self, void *sock, const char *endpoint, auth_domain_t domain,
              int owner_monitors);

/* Start the ZAP/monitor thread (after every auth_bind). 0 or -errno. Init-only. */
int auth_start(auth_t *self);

/* Count a socket-monitor event of a socket bound with owner_monitors = 1.
 * NULL-safe; any thread. */
void auth_handshake_event(auth_t *self, auth_domain_t domain, int event);

/* Read one event from a socket monitor's PAIR socket `mon` without waiting:
 * the 16-bit event of its first frame (the rest of the message, value and
 * endpoint, is read and dropped). Returns the event, or -1 when none was
 * queued. Safe from the thread that owns mon; not RT-safe. */
int auth_monitor_event(void *mon);

/* pacd's own certificate (public and secret key) when CURVE is on, else
 * NULL: in-process publishers (the mujoco backend) connect with it. The
 * pointer lives as long as self. Init-only. */
const struct cert_s *auth_server_cert(const auth_t *self);

/* Counters and mode. NULL self gives zeros. Any thread. */
void auth_get_stats(const auth_t *self, auth_stats_t *out);

/* Stop the thread, close the ZAP and monitor sockets (before zmq_ctx_term),
 * free; *self_p = NULL. NULL-safe. Init-only. */
void auth_destroy(auth_t **self_p);

#endif
