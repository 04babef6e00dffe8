/* pacd — the daemon's entry point: parse arguments, load everything, start
 * the threads, tell systemd, wait for SIGTERM/SIGINT, shut down in order. */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <zmq.h>

#include "hal.h"
#include "pacd_auth.h"
#include "pacd_cert.h"
#include "pacd_config.h"
#include "pacd_foxglove.h"
#include "pacd_ingest.h"
#include "log_writer.h"
#include "pacd_journal.h"
#include "pacd_lock.h"
#include "pacd_loop.h"
#include "pacd_service.h"
#include "policy.h"


static void usage(FILE *f)
{
    fprintf(f,
            "usage: pacd --config FILE        run the daemon\n"
            "       pacd --check-config FILE  validate the config and its checkpoint, then exit\n"
            "       pacd --version\n"
            "Config keys: deploy/pacd.conf. Protocol: docs/protocol.md.\n");
}

/* Load the config and the checkpoint and pick the robot description: the
 * default of [robot] name, or its variant with/without a gripper for
 * [robot] gripper = yes/no. With `probe` (--check-config, shadow mode) also
 * plan the loop against that description; in control mode the loop is
 * planned against what the backend reports it drives (hal_driven_robot). */
static int load_checked(const char *path, int probe, config_t *cfg, policy_t **policy,
                        const hal_robot_t **robot, char *err, size_t errlen)
{
    if (config_load(cfg, path, err, errlen) != 0)
        return -EINVAL;
    *robot = hal_robot_find(cfg->robot);
    if (!*robot) {
        snprintf(err, errlen, "%s: [robot] name = %s: no such robot description", path,
                 cfg->robot);
        return -EINVAL;
    }
    if (cfg->robot_gripper != CONFIG_GRIPPER_AUTO) {
        int want = cfg->robot_gripper == CONFIG_GRIPPER_YES;
        const hal_robot_t *v = hal_robot_variant(*robot, want);
        if (!v) {
            snprintf(err, errlen, "%s: [robot] gripper = %s: pacd has no description of the %s "
                     "%s a gripper; set [robot] gripper = auto",
                     path, want ? "yes" : "no", cfg->robot, want ? "with" : "without");
            return -EINVAL;
        }
        *robot = v;
    }
    policy_options_t po = config_policy_options(cfg);
    *policy = policy_load(cfg->checkpoint, &po, err, errlen);
    if (!*policy)
        return -EINVAL;
    if (!probe && !cfg->shadow)
        return 0;
    /* plan the loop for that description: checks fields, cameras, action */
    loop_deps_t ld = {.cfg = cfg, .policy = *policy, .robot = *robot};
    if (loop_check(&ld, err, errlen) != 0) {
        size_t n = strlen(err);
        if (cfg->robot_gripper == CONFIG_GRIPPER_AUTO && !(*robot)->has_gripper &&
            hal_robot_variant(*robot, 1) &&
            policy_spec(*policy)->action_space == POLICY_ACTION_JOINT_VELOCITY_GRIPPER &&
            n + 1 < errlen)
            snprintf(err + n, errlen - n, " (the default %s description has no gripper; "
                     "set [robot] gripper = yes for the %s with its gripper, as the mujoco "
                     "backend drives it in the robosuite scenes)", cfg->robot, cfg->robot);
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int check_only = 0, o;
    while ((o = getopt_long(argc, argv, "c:k:Vh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config_path = optarg; break;
        case 'k':
            config_path = optarg;
            check_only = 1;
            break;
        case 'V': printf("pacd %s (backends: %s)\n", PACD_VERSION, hal_backend_names()); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!config_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    journal_init();

    char err[1024] = "";
    /* [policy] blas_coretype: OpenBLAS picks its kernel when the library loads,
     * so a different one needs a fresh start of this program with the
     * variable set (same pid: systemd sees nothing). */
    {
        config_t pre;
        if (config_load(&pre, config_path, err, sizeof err) == 0) {
            const char *have = getenv("OPENBLAS_CORETYPE");
            if (pre.blas_coretype[0] && (!have || strcmp(have, pre.blas_coretype))) {
                setenv("OPENBLAS_CORETYPE", pre.blas_coretype, 1);
                config_free(&pre);
                execv("/proc/self/exe", argv);
                journal_printf(LOG_ERR, "pacd: cannot restart with OPENBLAS_CORETYPE=%s: %s\n",
                        getenv("OPENBLAS_CORETYPE"), strerror(errno));
                return 1;
            }
            config_free(&pre);
        }
        err[0] = '\0'; /* a bad config is reported below */
    }
    /* BLAS first: a kernel that computes wrong results must not drive an arm */
    char blas[512];
    if (policy_blas_selfcheck(blas, sizeof blas) != 0) {
        journal_printf(LOG_ERR, "pacd: %s\n", blas);
        return 1;
    }
    journal_printf(LOG_INFO, "pacd: %s\n", blas);
    config_t cfg;
    policy_t *policy = NULL;
    const hal_robot_t *robot = NULL;
    if (load_checked(config_path, check_only, &cfg, &policy, &robot, err, sizeof err) != 0) {
        journal_printf(LOG_ERR, "pacd: %s\n", err);
        policy_destroy(&policy);
        config_free(&cfg);
        return 1;
    }
    const policy_spec_t *spec = policy_spec(policy);
    journal_set_context(cfg.robot, spec->sha256);
    if (auth_check(&cfg, err, sizeof err) != 0) {
        journal_printf(LOG_ERR, "pacd: %s: %s\n", config_path, err);
        policy_destroy(&policy);
        config_free(&cfg);
        return 1;
    }
    if (check_only) {
        char grip[48] = "no gripper";
        if (robot->has_gripper)
            snprintf(grip, sizeof grip, "gripper %.4g m", robot->gripper_max);
        printf("%s: ok (robot %s, %s, backend %s, checkpoint %s: %s, %d observation values, "
               "%d images, action dim %d, sha256 %s, kernel %s)\n",
               config_path, cfg.robot, grip, cfg.backend, cfg.checkpoint, spec->architecture,
               spec->obs_dim, spec->n_images, spec->action_dim, spec->sha256,
               policy_kernel(policy));
        policy_destroy(&policy);
        config_free(&cfg);
        return 0;
    }

    /* one pacd per ipc:// endpoint: libzmq would unlink a running one's sockets */
    instance_lock_t lock = {0};
    {
        const char *eps[] = {cfg.camera_bind, cfg.state_bind, cfg.telemetry_bind,
                             cfg.control_bind};
        if (instance_lock(&lock, eps, 4, err, sizeof err) != 0) {
            journal_printf(LOG_ERR, "pacd: %s\n", err);
            policy_destroy(&policy);
            config_free(&cfg);
            return 1;
        }
    }

    journal_printf(LOG_INFO, "pacd %s: robot %s (%s backend), checkpoint %s (%s, sha256 %.16s...), "
            "kernel %s, %.1f Hz\n", PACD_VERSION, cfg.robot, cfg.backend, cfg.checkpoint,
            spec->architecture, spec->sha256, policy_kernel(policy), cfg.rate_hz);

    /* SIGTERM/SIGINT (stop) and SIGHUP (reload the configured checkpoint)
     * are taken by sigwait in this thread only */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (cfg.lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        journal_printf(LOG_WARNING, "pacd: mlockall failed (%s): page faults may delay the loop "
                "(raise LimitMEMLOCK or set [pacd] lock_memory = false)\n", strerror(errno));

    int rc = 1;
    void *zctx = zmq_ctx_new();
    hal_t *hal = NULL;
    logger_t *logger = NULL;
    ingest_t *ingest = NULL;
    loop_t *loop = NULL;
    service_t *service = NULL;
    foxglove_t *foxglove = NULL;
    /* the ZAP handler is bound before any socket: libzmq admits every key
     * when none is */
    auth_t *auth = auth_new(&cfg, zctx, err, sizeof err);
    if (!auth)
        goto out;
    /* the mujoco backend publishes like real drivers do: to pacd's own sockets */
    config_hal_options_t ho;
    config_hal_options(&cfg, &ho);
    /* with CURVE the backend connects with pacd's own key (admitted on the
     * ingest endpoints); filesystem ipc:// endpoints carry no CURVE */
    const cert_t *own = auth_server_cert(auth);
    if (own && auth_endpoint_kind(cfg.camera_bind) == auth_endpoint_kind(cfg.state_bind) &&
        auth_endpoint_kind(cfg.state_bind) != AUTH_EP_IPC) {
        ho.mujoco.curve_server_key = own->public_z85;
        ho.mujoco.curve_public_key = own->public_z85;
        ho.mujoco.curve_secret_key = own->secret_z85;
    }
    /* CURVE on the bridge: pacd is the client, with its own key pair */
    cert_t driver_cert;
    if (!strcmp(cfg.backend, "remote") && cfg.driver_public_key[0]) {
        if (!own) {
            snprintf(err, sizeof err, "%s: [robot] driver_public_key needs [security] "
                     "server_secret_key", config_path);
            goto out;
        }
        if (cert_load(cfg.driver_public_key, 0, &driver_cert, err, sizeof err) != 0)
            goto out;
        ho.remote.curve_server_key = driver_cert.public_z85;
        ho.remote.curve_public_key = own->public_z85;
        ho.remote.curve_secret_key = own->secret_z85;
    }
    if (!cfg.shadow) {
        hal = hal_new(robot, &ho.hal, err, sizeof err);
        if (!hal)
            goto out;
        robot = hal_driven_robot(hal); /* what the backend drives: plan the loop for it */
        if (robot->has_gripper)
            journal_printf(LOG_INFO, "pacd: the %s backend drives the %s with a gripper "
                    "(%.4g m open, %.3g m/s)\n", cfg.backend, robot->name,
                    robot->gripper_max, robot->gripper_speed);
        else
            journal_printf(LOG_INFO, "pacd: the %s backend drives the %s without a gripper\n",
                    cfg.backend, robot->name);
    } else if (!cfg.state_bind[0]) {
        snprintf(err, sizeof err, "%s: [pacd] mode = shadow needs [ingest] state_bind: the robot "
                 "state comes from there", config_path);
        goto out;
    }
    logger_config_t lc = {
        .directory = cfg.log_directory,
        .ring_steps = (size_t)cfg.log_ring_steps,
        .ring_frames = (size_t)cfg.log_ring_frames,
        .max_frame_bytes = 0,
        .fsync_interval_ms = cfg.log_fsync_interval_ms,
        .keep_bytes = (uint64_t)(cfg.log_keep_gb * 1024.0 * 1024.0 * 1024.0),
    };
    for (int i = 0; i < cfg.n_cameras; i++) {
        size_t b = (size_t)cfg.cameras[i].width * (size_t)cfg.cameras[i].height * 3;
        if (b > lc.max_frame_bytes)
            lc.max_frame_bytes = b;
    }
    if (!lc.max_frame_bytes)
        lc.max_frame_bytes = 1;
    logger = logger_new(&lc, err, sizeof err);
    if (!logger)
        goto out;
    ingest = ingest_new(&cfg, zctx, auth, robot->n_joints, err, sizeof err);
    if (!ingest)
        goto out;
    loop_deps_t ld = {.cfg = &cfg, .policy = policy, .robot = robot, .hal = hal, .ingest = ingest,
                      .logger = logger};
    loop = loop_new(&ld, err, sizeof err);
    if (!loop)
        goto out;
    uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
        watchdog_usec = 0;
    int e = loop_start(loop, watchdog_usec);
    if (e != 0) {
        snprintf(err, sizeof err, "cannot start the control loop thread: %s", strerror(-e));
        goto out;
    }
    if (cfg.rt_priority == 0)
        journal_printf(LOG_WARNING, "pacd: [pacd] rt_priority = 0: the control loop runs WITHOUT "
                "real-time scheduling and may miss deadlines under load (telemetry: realtime = "
                "false); set rt_priority = auto\n");
    else {
        int policy, prio;
        loop_scheduling(loop, &policy, &prio);
        if (policy == SCHED_FIFO)
            journal_printf(LOG_INFO, "pacd: the control loop runs SCHED_FIFO, priority %d\n", prio);
        /* otherwise the loop's LOOP_EV_RT_FALLBACK event says why, loudly */
    }
    if (cfg.foxglove_enabled) {
        /* the live view: its own thread, fed by the service and the ingest tap */
        foxglove = foxglove_new(&cfg, ingest, robot->name, err, sizeof err);
        if (!foxglove)
            goto out;
        journal_printf(LOG_INFO, "pacd: Foxglove live view on ws://%s%s%s:%d (docs/monitoring.md)\n",
                       strchr(cfg.foxglove_bind, ':') ? "[" : "", cfg.foxglove_bind,
                       strchr(cfg.foxglove_bind, ':') ? "]" : "", cfg.foxglove_port);
    }
    service_deps_t sd = {.cfg = &cfg, .loop = loop, .hal = hal, .ingest = ingest, .logger = logger,
                         .zmq_ctx = zctx, .auth = auth, .robot = robot->name,
                         .foxglove = foxglove};
    service = service_new(&sd, err, sizeof err);
    if (!service)
        goto out;
    e = auth_start(auth);
    if (e != 0) {
        snprintf(err, sizeof err, "cannot start the authentication thread: %s", strerror(-e));
        goto out;
    }

    sd_notify(0, "READY=1\nSTATUS=idle");
    loop_arm_watchdog(loop);
    journal_printf(LOG_NOTICE, "pacd: ready: telemetry %s, control %s, cameras %s, state %s, "
            "logs in %s\n", cfg.telemetry_bind, cfg.control_bind,
            cfg.camera_bind[0] ? cfg.camera_bind : "(none)",
            cfg.state_bind[0] ? cfg.state_bind : "(none)", cfg.log_directory);

    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        /* the service thread loads and checks it, off the control loop */
        journal_printf(LOG_NOTICE, "pacd: SIGHUP: reloading the checkpoint %s\n", cfg.checkpoint);
        service_request_reload(service);
    }
    journal_printf(LOG_NOTICE, "pacd: %s: holding the arm, closing the episode log\n",
            strsignal(sig));
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
    rc = 0;
    err[0] = '\0';
out:
    if (rc != 0 && err[0])
        journal_printf(LOG_ERR, "pacd: %s\n", err);
    loop_stop(loop);               /* ends the episode, holds the arm */
    service_destroy(&service);     /* after the loop: drains its last events */
    foxglove_destroy(&foxglove);   /* after the service that feeds it */
    if (loop)                      /* the one it ran last (a reload may have swapped it) */
        policy = loop_policy(loop);
    loop_destroy(&loop);
    ingest_destroy(&ingest);
    logger_destroy(&logger);       /* writes every queued record, closes the file */
    hal_destroy(&hal);
    auth_destroy(&auth);           /* after every socket it secured */
    policy_destroy(&policy);
    zmq_ctx_term(zctx);
    instance_unlock(&lock);
    config_free(&cfg);
    return rc;
}
