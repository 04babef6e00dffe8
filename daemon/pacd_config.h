/* config — pacd's INI configuration (libinih). Every key is documented in
 * deploy/pacd.conf; README.md lists them too.
 *
 * Init-only: parsed once at start-up before any thread runs.
 */
#ifndef PACD_CONFIG_H
#define PACD_CONFIG_H

#include <stddef.h>

#include "hal.h"
#include "hal_mujoco.h"
#include "hal_remote.h"
#include "hal_sim.h"
#include "policy.h"

#define CONFIG_MAX_CAMERAS 4
#define CONFIG_PATH 512
#define CONFIG_NAME 64
/* [episode] max_steps and START_EPISODE max_steps: at most this many steps
 * (about 58 days at 20 Hz) */
#define CONFIG_MAX_STEPS_LIMIT 100000000
/* [pacd] rt_priority = auto: this SCHED_FIFO priority where permitted */
#define CONFIG_RT_PRIORITY_AUTO 80

/* [robot] gripper: which description of the arm pacd plans for.
 * AUTO: control mode drives what the backend reports (mujoco: the gripper
 * variant in a scene with the gripper); shadow mode and --check-config use
 * the description's default (hal_robot_find). YES: the gripper variant
 * (hal_robot_variant(robot, 1)). NO: the description without a gripper. */
enum { CONFIG_GRIPPER_AUTO = 0, CONFIG_GRIPPER_YES = 1, CONFIG_GRIPPER_NO = 2 };

typedef struct {
    char name[CONFIG_NAME];   /* [camera.NAME] */
    int width, height;        /* pixels the frames must have */
    int max_age_ms;           /* older frames make the step stale (arm holds) */
    int required;             /* 1: a missing/stale frame holds the arm */
    int resize;               /* 1: frames of another size are area-averaged, 0: rejected */
} config_camera_t;

typedef struct {
    /* [pacd] */
    double rate_hz;               /* control rate, Hz (20: the PAC paper's control period, 50 ms) */
    int rt_priority;              /* SCHED_FIFO priority of the loop, 0 = normal scheduling;
                                     where not permitted pacd warns and runs normally */
    int rt_auto;                  /* rt_priority = auto (CONFIG_RT_PRIORITY_AUTO) */
    int lock_memory;              /* mlockall at start-up */
    int shadow;                   /* [pacd] mode = shadow: no arm; state from the state socket */
    int teleop;                   /* [pacd] mode = teleop: the teleoperator's action drives */
    /* [policy] */
    char checkpoint[CONFIG_PATH];
    int policy_threads;
    policy_kernel_t policy_kernel;   /* [policy] kernel: auto | avx512 | avx2 | blas */
    char blas_coretype[CONFIG_NAME]; /* OPENBLAS_CORETYPE to run with, "" = as loaded */
    int policy_sample;            /* 1: sample actions instead of argmax / mean */
    double policy_temperature;    /* logits / T (categorical), std * T (Gaussian) */
    unsigned long long policy_seed;
    char policy_sampling[96];     /* description logged in every episode */
    /* [robot] */
    char robot[CONFIG_NAME];      /* panda | sawyer */
    char backend[CONFIG_NAME];    /* sim */
    char driver_endpoint[CONFIG_PATH]; /* remote: the driver's bridge socket */
    char driver_public_key[CONFIG_PATH]; /* remote: the driver's public certificate; "" = no CURVE on the bridge */
    double sim_rate_hz;
    int state_max_age_ms;         /* robot state older than this: stale */
    char scene[CONFIG_PATH];      /* mujoco: the MuJoCo XML scene */
    char render_cameras[CONFIG_PATH]; /* mujoco: model cameras to render, comma list */
    char ee_site[CONFIG_NAME];    /* mujoco: site reported as the end-effector pose */
    unsigned long long sim_seed;  /* mujoco: seed of the reset randomisation */
    int publish_state;            /* mujoco: publish robot_state + reward to state_bind */
    int physics_rt_priority;      /* mujoco: SCHED_FIFO priority of the physics thread, 0 = normal */
    int robot_gripper;            /* [robot] gripper: CONFIG_GRIPPER_AUTO / _YES / _NO */
    int sim_clock;                /* [robot] clock = simulated: the loop is paced by the
                                     simulated time of a stepped backend (mujoco), not by
                                     CLOCK_MONOTONIC (docs/loop.md) */
    /* [safety] */
    double out_of_spec_factor;
    double limit_margin_rad;
    int has_workspace;            /* [safety] workspace_min/max given */
    double workspace_min[3], workspace_max[3]; /* m, base frame (Cartesian actions) */
    /* [ingest] */
    char camera_bind[CONFIG_PATH];   /* SUB socket for CameraFrame; "" = none */
    char state_bind[CONFIG_PATH];    /* SUB socket for RobotState / Reward */
    size_t max_message_bytes;        /* ZMQ_MAXMSGSIZE of both sockets */
    size_t max_frame_pixels;         /* largest width x height a camera frame may declare */
    /* [camera.NAME] */
    int n_cameras;
    config_camera_t cameras[CONFIG_MAX_CAMERAS];
    /* [episode] */
    int max_steps;                /* steps per episode (400 in RGB stacking); 0 = unlimited */
    int autostart;                /* start an episode when pacd is up */
    int task_id;                  /* default task of task-conditioned policies */
    int reset_on_start;           /* move the arm home (hal reset) before each episode */
    /* [teleop] */
    int teleop_max_age_ms;        /* teleop mode: an older teleoperator action holds the arm */
    /* [task] */
    int task_from_hal;            /* [task] source = hal: reward and success from the backend's
                                     own scene (hal_read_task) instead of the reward topic */
    /* [logger] */
    char log_directory[CONFIG_PATH];
    int log_ring_steps;
    int log_ring_frames;
    int log_fsync_interval_ms;
    int log_robot_state;          /* log a RobotState every tick */
    long log_min_free_mb;         /* disk guard: START_EPISODE is refused while the log
                                     directory's filesystem has less free (MiB); 0 = off */
    double log_keep_gb;           /* retention: keep the newest logs up to this (GiB); 0 = all */
    /* [telemetry] */
    char telemetry_bind[CONFIG_PATH];
    double telemetry_rate_hz;
    int telemetry_window_ticks;   /* ticks the percentiles cover */
    /* [control] */
    char control_bind[CONFIG_PATH];
    /* [foxglove] (docs/monitoring.md): the Foxglove WebSocket live view */
    int foxglove_enabled;         /* serve it (default false) */
    char foxglove_bind[64];       /* IPv4/IPv6 address literal; default 127.0.0.1 */
    int foxglove_port;            /* TCP port, 1..65535 (8765) */
    double foxglove_image_rate_hz;   /* camera images per second and camera; 0 = none */
    int foxglove_image_jpeg;      /* 1: foxglove.CompressedImage (JPEG); 0: foxglove.RawImage */
    int foxglove_jpeg_quality;    /* 1..100 */
    int foxglove_max_clients;     /* connections beyond it are refused */
    size_t foxglove_send_queue_bytes; /* a client with more queued is dropped (slow reader) */
    /* [security] (docs/security.md) */
    char security_server_secret_key[CONFIG_PATH]; /* pacd's secret certificate; "" = no CURVE */
    char security_operator_keys[CONFIG_PATH];  /* allow-list directories; "" = none */
    char security_monitor_keys[CONFIG_PATH];
    char security_publisher_keys[CONFIG_PATH];
    int security_insecure;        /* 1: non-loopback tcp:// without CURVE allowed */

    char path[CONFIG_PATH];       /* file it came from */
    char *text;                   /* the whole file, for the episode metadata */
} config_t;

/* Fill cfg with the documented defaults. Init-only. */
void config_defaults(config_t *cfg);

/* Parse and validate FILE into cfg (defaults first). Returns 0, or -EINVAL /
 * -ENOENT with a message in err naming the file, the line or the
 * [section] key and what is wrong. Relative paths in the file are taken
 * relative to the file's directory. Init-only. cfg->text is allocated:
 * release with config_free. */
int config_load(config_t *cfg, const char *path, char *err, size_t errlen);

/* Check that a bind endpoint can be bound: tcp://ADDRESS:PORT with an IPv4
 * address, [IPv6], '*' or an interface of this machine and a port 1..65535,
 * or ipc://PATH in an existing directory (ipc://@name: abstract). Returns 0,
 * or a negative errno with the reason in why. Init-only. */
int config_check_endpoint(const char *ep, char *why, size_t n);

/* Parse and validate the config text data[0, len) as config_load does the
 * file `name` (used in messages; relative paths are taken from its
 * directory). Same returns, plus -EINVAL for a NUL byte in the text or more
 * than 1 MiB, -ENOMEM. For tests and the fuzz harness (tests/fuzz). cfg->text
 * is allocated: release with config_free. Init-only. */
int config_load_buffer(config_t *cfg, const char *name, const char *data, size_t len,
                       char *err, size_t errlen);

/* Free what config_load allocated. NULL-safe. */
void config_free(config_t *cfg);

/* The HAL's options for a config: the generic block and each backend's
 * block, with the endpoints the mujoco backend connects to. hal.backend_options
 * points into the same struct: use it in place (do not copy it). */
typedef struct {
    hal_options_t hal;
    hal_sim_options_t sim;
    hal_mujoco_options_t mujoco;
    hal_remote_options_t remote;
    char camera_endpoint[CONFIG_PATH + 16];
    char state_endpoint[CONFIG_PATH + 16];
} config_hal_options_t;

/* Fill *out from the [robot] section of cfg (and [ingest]'s binds, as the
 * endpoints a local publisher connects to: a wildcard tcp address, * or
 * 0.0.0.0, becomes 127.0.0.1; the camera endpoint only when [robot]
 * render_cameras names cameras, the state endpoint only with
 * publish_state), for hal_new with cfg->backend. No CURVE keys: the caller
 * sets out->mujoco.curve_* when the ingest sockets use CURVE. The strings
 * point into cfg and out: both must outlive hal_new. Init-only. */
void config_hal_options(const config_t *cfg, config_hal_options_t *out);

/* The [policy] section as policy_load's options (threads, kernel, sampling,
 * temperature, seed). Any non-RT thread. */
policy_options_t config_policy_options(const config_t *cfg);

#endif
