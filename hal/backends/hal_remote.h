/* hal_remote — options of the `remote` backend: the arm is driven by a
 * robot-side driver process over the bridge protocol (ZeroMQ + protobuf,
 * docs/bridge.md; hal_remote.c). Pass a hal_remote_options_t as
 * hal_options_t.backend_options with backend = "remote". */
#ifndef PACD_HAL_REMOTE_H
#define PACD_HAL_REMOTE_H

/* Zero fields take the defaults. Read by hal_new only (strings copied). */
typedef struct {
    const char *endpoint;     /* the driver's bridge socket pacd connects to:
                                 tcp://HOST:PORT or ipc://PATH (required) */
    double policy_period_s;   /* the period targets are sent at, s; 0 = 0.05 */
    double link_timeout_s;    /* no valid state for this long = link lost, s; 0 = 0.1
                                 ([robot] state_max_age_ms) */
    double connect_timeout_s; /* hal_new waits this long for the handshake and
                                 the first state, s; 0 = 5 */
    /* CURVE (docs/bridge.md "Security"): all three set, or none (plain).
     * 40-character Z85 keys: the driver's public key ([robot]
     * driver_public_key) and pacd's own key pair ([security]
     * server_secret_key). */
    const char *curve_server_key;
    const char *curve_public_key;
    const char *curve_secret_key;
} hal_remote_options_t;

#endif
