#include "pacd_service.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <zmq.h>

#include "pacd_journal.h"
#include "pacd_proto.h"
#include "pacd_text.h"
#include "pacd_validate.h"
#include "rt_clock.h"

#define MAX_REQUEST_BYTES 4096

struct service {
    service_deps_t d;
    void *pub, *rep;          /* telemetry PUB; control ROUTER (answers REQ clients) */
    pthread_t thread;
    int started;
    atomic_int stop;
    int window;
    uint32_t *buf[7];         /* timing copies: loop_timings_t's series in its order */
    uint32_t *sorted;
    uint64_t episode_counter;
    loop_state_t last_state;
    uint64_t control_malformed;   /* control requests dropped or refused as malformed */
    char last_status[256];
    uint64_t commands_invalid;  /* refused by validate_command_fields (service thread only) */
    uint64_t episodes_refused_disk;  /* START_EPISODE refused by the disk guard */
    /* checkpoint reload (service thread only, but reload_requested) */
    atomic_int reload_requested;     /* SIGHUP: reload the configured checkpoint */
    uint64_t reloads_failed;
    char reload_error[512];          /* why the last reload was refused; "" after one succeeds */
    char pending_sha256[65];         /* offered, not yet swapped in (while loop_policy_pending) */
    char running_path[CONFIG_PATH];  /* of the policy the loop runs (telemetry) */
    char pending_path[CONFIG_PATH];  /* of the offered one */
    uint64_t swaps_seen;             /* loop_status_t.models_swapped seen last */
    char reply_message[1024];        /* Reply.message of the command being answered */
};

static const char *state_name(loop_state_t s)
{
    switch (s) {
    case LOOP_IDLE: return "idle";
    case LOOP_RUNNING: return "running";
    case LOOP_HOLDING: return "holding";
    case LOOP_ESTOPPED: return "e-stopped";
    case LOOP_FAULT: return "fault";
    }
    return "unknown";
}

static const char *end_reason_name(loop_end_reason_t r)
{
    switch (r) {
    case LOOP_END_NONE: return "none";
    case LOOP_END_REQUESTED: return "end_episode";
    case LOOP_END_TERMINAL: return "task ended";
    case LOOP_END_MAX_STEPS: return "max_steps";
    case LOOP_END_ESTOP: return "e-stop";
    case LOOP_END_SHUTDOWN: return "shutdown";
    case LOOP_END_LOG_FAILED: return "log failed";
    }
    return "unknown";
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Percentiles of samples; skip_zero drops zeros (ticks without inference). */
static void percentiles(service_t *self, const uint32_t *v, int n, int skip_zero,
                        Pacd__V1__Percentiles *p)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!skip_zero || v[i])
            self->sorted[k++] = v[i];
    if (k == 0)
        return;
    qsort(self->sorted, (size_t)k, sizeof(uint32_t), cmp_u32);
    p->p50_us = self->sorted[(k - 1) / 2];
    p->p99_us = self->sorted[(int)((k - 1) * 0.99 + 0.5)];
    p->max_us = self->sorted[k - 1];
}

/* Everything a Telemetry message holds, built from the loop's newest status.
 * The strings and arrays point into *st / *ls, which must outlive the pack. */
typedef struct {
    Pacd__V1__Telemetry t;
    Pacd__V1__Percentiles period, lateness, inference, loop, safety, hal, log_push;
    loop_status_t st;
    logger_stats_t ls;
    char fault[96];           /* loop_fault_text of st */
    Pacd__V1__RobotState robot_state;
    Pacd__V1__Pose ee_pose;
    Pacd__V1__TaskValue task_value[LOGGER_MAX_TASK_INFO];
    Pacd__V1__TaskValue *task_ptr[LOGGER_MAX_TASK_INFO];
    hal_counters_t hc;        /* hal_driver_error points into it */
    Pacd__V1__DriverCounters driver_counters;
} telemetry_t;

static void build_telemetry(service_t *self, telemetry_t *tm)
{
    loop_status(self->d.loop, &tm->st);
    logger_get_stats(self->d.logger, &tm->ls);
    ingest_stats_t is;
    ingest_get_stats(self->d.ingest, &is);
    loop_timings_t tt = {.period_us = self->buf[0], .lateness_us = self->buf[1],
                         .loop_us = self->buf[2], .inference_us = self->buf[3],
                         .safety_us = self->buf[4], .hal_us = self->buf[5],
                         .log_push_us = self->buf[6]};
    loop_timings(self->d.loop, &tt);

    Pacd__V1__Telemetry *t = &tm->t;
    pacd__v1__telemetry__init(t);
    pacd__v1__percentiles__init(&tm->period);
    pacd__v1__percentiles__init(&tm->lateness);
    pacd__v1__percentiles__init(&tm->inference);
    pacd__v1__percentiles__init(&tm->loop);
    pacd__v1__percentiles__init(&tm->safety);
    pacd__v1__percentiles__init(&tm->hal);
    pacd__v1__percentiles__init(&tm->log_push);
    percentiles(self, tt.period_us, tt.n, 0, &tm->period);
    percentiles(self, tt.lateness_us, tt.n, 0, &tm->lateness);
    percentiles(self, tt.inference_us, tt.n, 1, &tm->inference);
    percentiles(self, tt.loop_us, tt.n, 0, &tm->loop);
    percentiles(self, tt.safety_us, tt.n, 1, &tm->safety);
    percentiles(self, tt.hal_us, tt.n, 1, &tm->hal);
    percentiles(self, tt.log_push_us, tt.n, 1, &tm->log_push);
    loop_status_t *st = &tm->st;
    t->state = (Pacd__V1__State)st->state;
    t->episode_id = st->episode_id;
    t->step = st->step;
    t->tick_count = st->tick_count;
    t->deadline_misses = st->deadline_misses;
    t->period = &tm->period;
    t->lateness = &tm->lateness;
    t->inference = &tm->inference;
    t->loop = &tm->loop;
    t->safety = &tm->safety;
    t->hal = &tm->hal;
    t->log_push = &tm->log_push;
    t->window_ticks = (uint32_t)tt.n;
    t->stale_steps = st->stale_steps;
    t->frames_received = is.frames_received;
    t->frames_malformed = is.frames_malformed;
    t->frames_oversized = is.frames_oversized;
    t->frames_misshaped = is.frames_misshaped;
    t->frames_dropped = is.frames_malformed + is.frames_oversized + is.frames_misshaped;
    t->peers_disconnected = is.peers_disconnected;
    t->frames_resized = is.frames_resized;
    t->teleop_actions_received = is.teleop_actions_received;
    t->frames_too_large = is.frames_too_large;
    t->names_refused = is.names_refused;
    t->values_rejected = is.values_rejected + self->commands_invalid;
    t->rewards_rejected = is.rewards_rejected;
    hal_counters_t hc = {0};
    if (self->d.hal && hal_counters(self->d.hal, &tm->hc) == 0) {
        hc = tm->hc;
        t->hal_watchdog_holds = hc.watchdog_holds;
        t->hal_limit_stops = hc.limit_stops;
        t->hal_overruns = hc.overruns;
        t->hal_bad_commands = hc.bad_commands;
        t->hal_link_up = hc.link_up != 0;
        t->hal_link_losses = hc.link_losses;
        t->hal_link_reconnects = hc.link_reconnects;
        t->hal_states_received = hc.states_received;
        t->hal_states_rejected = hc.states_rejected;
        t->hal_targets_sent = hc.targets_sent;
        t->hal_targets_unsent = hc.targets_unsent;
        t->hal_versions_refused = hc.versions_refused;
        t->hal_states_old = hc.states_old;
        t->hal_driver_errors = hc.driver_errors;
        t->hal_driver_mode = (Pacd__V1__DriverState__Mode)hc.driver.mode;
        t->hal_driver_error = tm->hc.driver.error;
        if (hc.driver.mode != 0) {
            Pacd__V1__DriverCounters *dc = &tm->driver_counters;
            pacd__v1__driver_counters__init(dc);
            dc->ticks = hc.driver.ticks;
            dc->overruns = hc.driver.overruns;
            dc->targets_received = hc.driver.targets_received;
            dc->targets_refused = hc.driver.targets_refused;
            dc->targets_old = hc.driver.targets_old;
            dc->stale_stops = hc.driver.stale_stops;
            dc->holds = hc.driver.holds;
            dc->velocity_clamps = hc.driver.velocity_clamps;
            t->hal_driver_counters = dc;
        }
    }
    t->mode = self->d.cfg->teleop ? "teleop" : self->d.cfg->shadow ? "shadow" : "control";
    if (st->has_robot_state) {
        const hal_state_t *hs = &st->robot_state;
        pacd_proto_robot_state(&tm->robot_state, &tm->ee_pose, self->d.robot, hs->n_joints, hs->q,
                               hs->dq, hs->gripper_position, hs->gripper_velocity, hs->grasp,
                               hs->ee_pose, hs->time_unix_ns, hs->seq);
        t->robot_state = &tm->robot_state;
    }
    for (int i = 0; i < st->n_task_info && i < LOGGER_MAX_TASK_INFO; i++) {
        pacd__v1__task_value__init(&tm->task_value[i]);
        tm->task_value[i].name = st->task_info_name[i];
        tm->task_value[i].value = st->task_info_value[i];
        tm->task_ptr[i] = &tm->task_value[i];
        t->n_task_info = (size_t)i + 1;
    }
    t->task_info = tm->task_ptr;
    t->episodes_terminal = st->episodes_terminal;
    t->episode_seed = st->episode_seed;
    t->last_episode_end = (Pacd__V1__EpisodeEnd)st->last_end_reason;
    t->episodes_log_failed = st->episodes_log_failed;
    t->episodes_refused_disk = self->episodes_refused_disk;
    uint64_t free_bytes = 0;
    if (logger_free_bytes(self->d.cfg->log_directory, &free_bytes) == 0)
        t->log_free_bytes = free_bytes;
    t->log_error = tm->ls.last_error;
    t->log_files_deleted = tm->ls.files_deleted;
    t->states_received = is.states_received;
    t->states_rejected = is.states_rejected;
    t->log_steps_dropped = tm->ls.steps_dropped;
    t->log_frames_dropped = tm->ls.frames_dropped;
    t->log_steps_written = tm->ls.steps_written;
    t->log_write_errors = tm->ls.write_errors;
    t->safety_holds = st->safety_holds;
    t->safety_clamps = st->safety_clamps;
    t->n_last_action = (size_t)st->action_dim;
    t->last_action = st->last_action;
    t->action_space = (Pacd__V1__ActionSpace)st->action_space;
    t->has_step = st->has_step;
    t->n_step_policy_action = (size_t)st->step_policy_dim;
    t->step_policy_action = st->step_policy_action;
    t->n_step_teleop_action = (size_t)st->step_teleop_dim;
    t->step_teleop_action = st->step_teleop_action;
    t->step_reward = st->step_reward;
    t->step_discount = st->step_discount;
    foxglove_stats_t fs;
    foxglove_get_stats(self->d.foxglove, &fs);
    t->foxglove_clients = (uint32_t)fs.clients;
    t->foxglove_clients_accepted = fs.clients_accepted;
    t->foxglove_clients_refused = fs.clients_refused;
    t->foxglove_clients_dropped_slow = fs.clients_dropped_slow;
    t->foxglove_clients_dropped_bad = fs.clients_dropped_bad;
    t->time_unix_ns = rt_clock_unix_ns();
    t->robot = (char *)self->d.robot;
    t->backend = self->d.cfg->shadow ? "shadow" : (char *)self->d.cfg->backend;
    /* the offered policy runs once the loop counts the swap and no other waits */
    int pending = loop_policy_pending(self->d.loop);
    if (st->models_swapped != self->swaps_seen && !pending) {
        self->swaps_seen = st->models_swapped;
        memcpy(self->running_path, self->pending_path, sizeof self->running_path);
        self->pending_sha256[0] = '\0';
    }
    t->checkpoint_sha256 = st->model_sha256;
    t->checkpoint_path = self->running_path;
    t->reloads = st->models_swapped;
    t->reloads_failed = self->reloads_failed;
    t->reload_error = self->reload_error;
    t->reload_pending_sha256 = pending ? self->pending_sha256 : "";
    t->log_path = tm->ls.current_path[0] ? tm->ls.current_path : tm->ls.last_path;
    t->has_q_value = st->has_q_value;
    t->q_value = st->q_value;
    t->episodes = st->episodes;
    t->fault = (char *)loop_fault_text(st->fault, st->fault_errno, tm->fault, sizeof tm->fault);
    t->commands_rejected = st->commands_rejected + self->commands_invalid;
    int policy, prio;
    loop_scheduling(self->d.loop, &policy, &prio);
    t->realtime = policy == SCHED_FIFO;
    t->sched_policy = policy == SCHED_FIFO ? "SCHED_FIFO" : policy == SCHED_RR ? "SCHED_RR"
                                                                              : "SCHED_OTHER";
    t->sched_priority = (uint32_t)prio;
    t->control_malformed = self->control_malformed;
    t->hal_errors = st->hal_errors;
    auth_stats_t as;
    auth_get_stats(self->d.auth, &as);
    t->insecure = as.insecure;
    t->curve = as.curve;
    t->auth_admitted = as.admitted;
    t->auth_denied_unknown_key = as.denied_unknown_key;
    t->auth_denied_wrong_role = as.denied_wrong_role;
    t->auth_handshake_failed = as.handshake_failed;
    t->auth_denied = as.denied_unknown_key + as.denied_wrong_role + as.handshake_failed;
}

static void publish_telemetry(service_t *self)
{
    telemetry_t tm;
    build_telemetry(self, &tm);
    size_t n = pacd__v1__telemetry__get_packed_size(&tm.t);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return;
    pacd__v1__telemetry__pack(&tm.t, buf);
    zmq_send(self->pub, "telemetry", 9, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(self->pub, buf, n, ZMQ_DONTWAIT);
    foxglove_offer_telemetry(self->d.foxglove, buf, n); /* the live view's copy */
    free(buf);

    /* systemd STATUS= on change */
    char status[sizeof self->last_status];
    snprintf(status, sizeof status, "STATUS=%s%s%s%s%s%s", state_name(tm.st.state),
             tm.st.episode_id[0] ? ", episode " : "", tm.st.episode_id,
             tm.fault[0] ? ", " : "", tm.fault,
             tm.t.realtime ? "" : " (loop not real-time)");
    if (strcmp(status, self->last_status)) {
        sd_notify(0, status);
        memcpy(self->last_status, status, sizeof status);
    }
}

static void print_event(const service_t *self, const loop_event_t *ev)
{
    const config_t *cfg = self->d.cfg;
    switch (ev->code) {
    case LOOP_EV_STATE:
        journal_printf(LOG_NOTICE, "pacd: state %s -> %s\n", state_name((loop_state_t)ev->a),
                state_name((loop_state_t)ev->b));
        break;
    case LOOP_EV_EPISODE_BEGIN:
        journal_set_episode(ev->episode_id);
        journal_printf(LOG_INFO, "pacd: episode %s started (max_steps %llu)\n", ev->episode_id,
                (unsigned long long)ev->a);
        break;
    case LOOP_EV_EPISODE_END: {
        loop_end_reason_t why = (loop_end_reason_t)(ev->b & 0xff);
        if (why == LOOP_END_LOG_FAILED) {
            logger_stats_t ls;
            logger_get_stats(self->d.logger, &ls);
            journal_printf(LOG_ERR, "pacd: episode %s ended after %lld steps: its log could not "
                           "be written (%s); the arm holds. What was written is kept up to the "
                           "last complete record\n", ev->episode_id, (long long)ev->a,
                           ls.last_error);
        } else {
            journal_printf(LOG_INFO, "pacd: episode %s ended after %lld steps (%s, %s)\n",
                           ev->episode_id, (long long)ev->a,
                           (ev->b & 0x100) ? "terminal" : "truncated", end_reason_name(why));
        }
        journal_set_episode(NULL);
        break;
    }
    case LOOP_EV_STALE_BEGIN:
        if (ev->a == LOOP_STALE_ROBOT_STATE)
            journal_printf(LOG_WARNING, "pacd: robot state is %lld us old: holding the arm\n",
                    (long long)ev->b);
        else if (ev->a == LOOP_STALE_TELEOP && ev->b < 0)
            journal_printf(LOG_WARNING, "pacd: teleop mode: no teleoperator action since the "
                    "episode began (topic teleop_action): holding the arm\n");
        else if (ev->a == LOOP_STALE_TELEOP)
            journal_printf(LOG_WARNING, "pacd: teleop mode: the newest teleoperator action is "
                    "%lld ms old (max_age_ms %d): holding the arm\n", (long long)ev->b / 1000,
                    cfg->teleop_max_age_ms);
        else if (ev->a == LOOP_STALE_TASK)
            journal_printf(LOG_WARNING, "pacd: the scene's task has not been read in this "
                    "episode yet: holding the arm\n");
        else if (ev->a == LOOP_STALE_TELEOP_SHAPE)
            journal_printf(LOG_WARNING, "pacd: teleop mode: the teleoperator action has another "
                    "action space or size than the checkpoint's: holding the arm\n");
        else if (ev->a >= 0 && ev->a < cfg->n_cameras && ev->b < 0)
            journal_printf(LOG_WARNING, "pacd: camera '%s' has sent no frame yet: holding the "
                    "arm\n", cfg->cameras[ev->a].name);
        else if (ev->a >= 0 && ev->a < cfg->n_cameras)
            journal_printf(LOG_WARNING, "pacd: camera '%s' is stale (newest frame %lld ms old, "
                    "max_age_ms %d): holding the arm\n", cfg->cameras[ev->a].name,
                    (long long)ev->b / 1000, cfg->cameras[ev->a].max_age_ms);
        else
            journal_printf(LOG_WARNING, "pacd: inputs are stale: holding the arm\n");
        break;
    case LOOP_EV_STALE_END:
        journal_printf(LOG_NOTICE, "pacd: inputs fresh again\n");
        break;
    case LOOP_EV_SAFETY_HOLD:
        journal_printf(LOG_WARNING, "pacd: safety filter held the arm (flags 0x%llx: "
                "non-finite/bad-shape/out-of-spec action)\n", (unsigned long long)ev->a);
        break;
    case LOOP_EV_DEADLINE_MISS:
        journal_printf(LOG_WARNING, "pacd: deadline missed by %lld us (%lld misses so far)\n",
                (long long)ev->a, (long long)ev->b);
        break;
    case LOOP_EV_HAL_ERROR:
        journal_printf(LOG_ERR, "pacd: HAL error %s: %s; the arm holds (fault)\n",
                ev->b ? "commanding" : "reading state", strerror((int)-ev->a));
        break;
    case LOOP_EV_LOG_DROP:
        journal_printf(LOG_WARNING, "pacd: logger ring full: %s dropped (disk too slow?)\n",
                ev->a == 0 ? "step" : ev->a == 1 ? "camera frame" : ev->a == 2 ? "robot state"
                                                                   : "episode boundary");
        break;
    case LOOP_EV_MODEL_SWAP: {
        loop_status_t st;
        loop_status(self->d.loop, &st);
        journal_set_model(st.model_sha256);
        journal_printf(LOG_NOTICE, "pacd: checkpoint swapped in: it runs from the next episode "
                       "on (reload %lld)\n", (long long)ev->a);
        break;
    }
    case LOOP_EV_RT_FALLBACK:
        journal_printf(LOG_WARNING, "pacd: cannot use SCHED_FIFO priority %d (%s): the control "
                "loop runs WITHOUT real-time scheduling and may miss deadlines under load "
                "(telemetry: realtime = false); give pacd CAP_SYS_NICE or a LimitRTPRIO of at "
                "least %d (deploy/pacd.service does)\n", cfg->rt_priority,
                strerror((int)ev->a), cfg->rt_priority);
        break;
    }
}

/* The id the next episode gets; the counter advances only when the loop
 * accepts the start (refused starts use up no numbers). */
static void make_episode_id(service_t *self, char *out)
{
    logger_episode_id(out, rt_clock_unix_ns(), self->d.robot,
                      (uint32_t)((self->episode_counter + 1) % 10000));
}

/* splitmix64's output function: distinct seeds for consecutive counts. */
static uint64_t episode_seed_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The checkpoint's self-check after loading: one step on a neutral
 * observation (zeros, black images, the configured task) must succeed and
 * give finite actions inside the action bounds. 0, or -errno with why. */
static int policy_selfcheck(const config_t *cfg, policy_t *p, char *why, size_t n)
{
    const policy_spec_t *spec = policy_spec(p);
    float *values = calloc((size_t)(spec->obs_dim > 0 ? spec->obs_dim : 1), sizeof(float));
    uint8_t *images[POLICY_MAX_FIELDS] = {0};
    int rc = values ? 0 : -ENOMEM;
    for (int i = 0, k = 0; rc == 0 && i < spec->n_fields; i++)
        if (spec->fields[i].is_image &&
            !(images[k++] = calloc((size_t)(spec->fields[i].size > 0 ? spec->fields[i].size : 1), 1)))
            rc = -ENOMEM;
    float action[POLICY_MAX_ACTION];
    for (int i = 0; i < POLICY_MAX_ACTION; i++)
        action[i] = NAN;
    if (rc == 0) {
        policy_observation_t ob = {.values = values, .images = (const uint8_t *const *)images,
                                   .task_id = spec->task_kind == POLICY_TASK_ID ? cfg->task_id : 0};
        policy_extra_t extra = {0};
        rc = policy_step(p, &ob, action, &extra);
        if (rc)
            snprintf(why, n, "its test step on a neutral observation failed: %s", strerror(-rc));
    } else {
        snprintf(why, n, "out of memory for its test step");
    }
    for (int i = 0; rc == 0 && i < spec->action_dim; i++)
        if (!isfinite(action[i]) || action[i] < spec->action_low[i] ||
            action[i] > spec->action_high[i]) {
            snprintf(why, n, "its test step on a neutral observation gave action %d = %g, "
                     "outside its bounds [%g, %g]", i, action[i], spec->action_low[i],
                     spec->action_high[i]);
            rc = -ERANGE;
        }
    free(values);
    for (int i = 0; i < POLICY_MAX_FIELDS; i++)
        free(images[i]);
    return rc;
}

/* Load the checkpoint at path ("" = the configured one), check it and offer
 * it to the loop. 0 with what happened in message, or -errno with why in
 * error; either way one journal line (the path escaped: it may come from a
 * peer). The running policy is untouched on failure. */
static int reload_checkpoint(service_t *self, const char *path, const char *who, char *error,
                             size_t errlen, char *message, size_t msglen)
{
    const config_t *cfg = self->d.cfg;
    if (!path || !path[0])
        path = cfg->checkpoint;
    policy_options_t po = config_policy_options(cfg);
    char why[768] = "";
    int rc = 0;
    policy_t *p = policy_load(path, &po, why, sizeof why);
    if (!p)
        rc = -EINVAL;
    if (p && (rc = loop_policy_compatible(self->d.loop, p, why, sizeof why)) == 0)
        rc = policy_selfcheck(cfg, p, why, sizeof why);
    char epath[TEXT_ESCAPED_MAX * 2], ewho[TEXT_ESCAPED_MAX];
    text_escape_str(epath, sizeof epath, path);
    text_escape_str(ewho, sizeof ewho, who && who[0] ? who : "");
    if (rc) {
        policy_destroy(&p);
        snprintf(error, errlen, "reload: %s; the running checkpoint stays", why);
        snprintf(self->reload_error, sizeof self->reload_error, "%s", why);
        self->reloads_failed++;
        char ewhy[1024];
        text_escape(ewhy, sizeof ewhy, why, strlen(why));
        journal_printf(LOG_WARNING, "pacd: reload of %s%s%s refused: %s; the running "
                       "checkpoint stays\n", epath, ewho[0] ? " by " : "", ewho, ewhy);
        return rc;
    }
    const policy_spec_t *spec = policy_spec(p);
    char sha[65];
    snprintf(sha, sizeof sha, "%s", spec->sha256);
    snprintf(self->pending_path, sizeof self->pending_path, "%s", path);
    snprintf(self->pending_sha256, sizeof self->pending_sha256, "%s", sha);
    int replaced = loop_offer_policy(self->d.loop, &p);
    self->reload_error[0] = '\0';
    loop_status_t st;
    loop_status(self->d.loop, &st);
    snprintf(message, msglen, "loaded %s (%s, sha256 %s); it runs from the next episode on%s%s",
             path, spec->architecture, sha,
             st.state == LOOP_RUNNING || st.state == LOOP_HOLDING
                 ? " (after the running one)" : " (no episode runs: from now)",
             replaced ? "; it replaces a reload that was still waiting" : "");
    journal_printf(LOG_NOTICE, "pacd: reload of %s%s%s: loaded and checked (sha256 %.16s...); "
                   "it runs from the next episode on\n", epath, ewho[0] ? " by " : "", ewho, sha);
    return 0;
}

/* Service thread, every iteration: free the policy the loop replaced and
 * run a reload SIGHUP asked for. */
static void reload_housekeeping(service_t *self)
{
    loop_reap_policies(self->d.loop);
    if (atomic_exchange(&self->reload_requested, 0)) {
        char error[1024], message[1024];
        (void)reload_checkpoint(self, NULL, "SIGHUP", error, sizeof error, message,
                                sizeof message);
    }
}

void service_request_reload(service_t *self)
{
    if (self)
        atomic_store(&self->reload_requested, 1);
}

/* Forward a command to the loop; fill reply. */
static void run_command(service_t *self, const Pacd__V1__Command *c, Pacd__V1__Reply *r,
                        char *error, size_t errlen, char *episode_id)
{
    loop_cmd_t lc = {0};
    const char *why = NULL;
    if (validate_command_fields(c, &why) != 0) {
        /* NaN / Inf / absurd numbers never reach the loop or the logs */
        snprintf(error, errlen, "%s (docs/protocol.md, \"Field limits\")", why);
        self->commands_invalid++;
        r->ok = 0;
        return;
    }
    if (c->type == PACD__V1__COMMAND__TYPE__RELOAD) {
        r->ok = reload_checkpoint(self, c->checkpoint, c->client, error, errlen,
                                  self->reply_message, sizeof self->reply_message) == 0;
        return;
    }
    switch (c->type) {
    case PACD__V1__COMMAND__TYPE__START_EPISODE:
        lc.type = LOOP_CMD_START_EPISODE;
        lc.max_steps = c->max_steps;
        lc.task_id = c->has_task_id ? c->task_id : -1;
        if (c->has_task_id && c->task_id < 0) {
            snprintf(error, errlen, "task_id must be >= 0");
            r->ok = 0;
            return;
        }
        lc.task_seed = -1;
        if (c->has_seed && (!self->d.cfg->reset_on_start || !self->d.hal)) {
            snprintf(error, errlen, "start_episode: a seed places the task at the reset, but "
                     "%s: set [episode] reset_on_start = true", self->d.hal ? "[episode] "
                     "reset_on_start is false" : "there is no arm to reset (shadow mode)");
            r->ok = 0;
            return;
        }
        if (c->has_seed && c->seed > (uint64_t)INT64_MAX) {
            snprintf(error, errlen, "start_episode: seed must be 0..2^63-1");
            self->commands_invalid++;
            r->ok = 0;
            return;
        }
        {
            /* the disk guard: no episode starts that its log has no room for */
            char why[224];
            uint64_t min_free = (uint64_t)self->d.cfg->log_min_free_mb * 1024u * 1024u;
            if (logger_check_free_space(self->d.cfg->log_directory, min_free, NULL, why,
                                        sizeof why) != 0) {
                snprintf(error, errlen, "start_episode: %s", why);
                self->episodes_refused_disk++;
                r->ok = 0;
                return;
            }
        }
        make_episode_id(self, lc.episode_id);
        break;
    case PACD__V1__COMMAND__TYPE__END_EPISODE:
        lc.type = LOOP_CMD_END_EPISODE;
        lc.is_terminal = c->is_terminal;
        lc.has_final_reward = c->final_reward != 0.0f;
        lc.final_reward = c->final_reward;
        break;
    case PACD__V1__COMMAND__TYPE__HOLD: lc.type = LOOP_CMD_HOLD; break;
    case PACD__V1__COMMAND__TYPE__RESUME: lc.type = LOOP_CMD_RESUME; break;
    case PACD__V1__COMMAND__TYPE__ESTOP: lc.type = LOOP_CMD_ESTOP; break;
    case PACD__V1__COMMAND__TYPE__CLEAR_ESTOP: lc.type = LOOP_CMD_CLEAR_ESTOP; break;
    default:
        snprintf(error, errlen, "unknown command type %d: use status, start_episode, "
                 "end_episode, hold, resume, estop, clear_estop or reload", (int)c->type);
        r->ok = 0;
        return;
    }
    if (lc.type == LOOP_CMD_START_EPISODE && self->d.cfg->reset_on_start && self->d.hal) {
        /* reset only from IDLE: the loop holds the arm there and commands nothing */
        loop_status_t st;
        loop_status(self->d.loop, &st);
        if (st.state != LOOP_IDLE) {
            snprintf(error, errlen, "start_episode: pacd is %s; an episode starts from idle "
                     "(end_episode or clear_estop first)", state_name(st.state));
            r->ok = 0;
            return;
        }
        /* every reset episode has a task seed: the client's, or one drawn
         * from [robot] seed and the episode count */
        uint64_t x = self->d.cfg->sim_seed + self->episode_counter + 1;
        lc.task_seed = c->has_seed ? (int64_t)c->seed : (int64_t)(episode_seed_mix(x) >> 1);
        int rc = hal_reset_seeded(self->d.hal, (uint64_t)lc.task_seed);
        if (rc == -ENOTSUP && c->has_seed) {
            snprintf(error, errlen, "start_episode: the %s backend cannot reset, so a seed "
                     "places nothing", hal_backend_name(self->d.hal));
            r->ok = 0;
            return;
        }
        if (rc == -ENOTSUP)
            lc.task_seed = -1;
        if (rc != 0 && rc != -ENOTSUP) {
            snprintf(error, errlen, "start_episode: resetting the arm failed: %s", strerror(-rc));
            r->ok = 0;
            return;
        }
    }
    if (loop_submit(self->d.loop, &lc) != 0) {
        snprintf(error, errlen, "the control loop's command queue is full; retry");
        r->ok = 0;
        return;
    }
    loop_result_t res;
    int timeout_ms = (int)(2000.0 / self->d.cfg->rate_hz) + 1000;
    if (loop_wait_result(self->d.loop, lc.seq, timeout_ms, &res) != 0) {
        snprintf(error, errlen, "the control loop did not answer within %d ms", timeout_ms);
        r->ok = 0;
        return;
    }
    r->ok = res.rc == 0;
    if (res.rc != 0)
        snprintf(error, errlen, "%s", res.error);
    if (lc.type == LOOP_CMD_START_EPISODE && res.rc == 0) {
        self->episode_counter++;
        snprintf(episode_id, LOOP_EPISODE_ID, "%s", lc.episode_id);
    }
}

/* Send a reply to the peer `rid` as a REQ envelope [rid, "", body]. A ROUTER
 * socket without ZMQ_ROUTER_MANDATORY drops a message to a peer that has
 * gone, as a whole: the next reply is not affected. */
static void send_reply(service_t *self, zmq_msg_t *rid, const void *body, size_t n)
{
    zmq_send(self->rep, zmq_msg_data(rid), zmq_msg_size(rid), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(self->rep, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(self->rep, body, n, ZMQ_DONTWAIT);
}

/* One request from the ROUTER control socket. A REQ client's request arrives
 * as [routing id, "" (delimiter), Command]; anything without the delimiter
 * (a raw or mis-framed peer) is dropped and counted, never answered, so it
 * cannot disturb the routing of other clients' replies. */
static void handle_request(service_t *self)
{
    zmq_msg_t part[3];
    int nparts = 0, total = 0, more = 1;
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&part[i]);
    /* read every part of the message; keep the first three */
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_t *m = nparts < 3 ? &part[nparts] : &tmp;
        if (m == &tmp)
            zmq_msg_init(&tmp);
        int rc = zmq_msg_recv(m, self->rep, total == 0 ? ZMQ_DONTWAIT : 0);
        if (rc >= 0) {
            more = zmq_msg_more(m);
            total++;
        }
        if (m == &tmp)
            zmq_msg_close(&tmp);
        if (rc < 0)
            break;
        if (nparts < 3)
            nparts++;
    }
    if (total == 0)
        goto out;
    if (total < 3 || zmq_msg_size(&part[1]) != 0) {
        self->control_malformed++;
        goto out;
    }

    Pacd__V1__Reply r;
    pacd__v1__reply__init(&r);
    char error[1024] = "";
    char episode_id[LOOP_EPISODE_ID] = "";
    Pacd__V1__Command *c = NULL;
    self->reply_message[0] = '\0';
    zmq_msg_t *m = &part[2];
    if (total > 3)
        snprintf(error, sizeof error, "request of %d frames: send one pacd.v1.Command in one "
                 "frame", total - 2);
    else if (zmq_msg_size(m) > MAX_REQUEST_BYTES)
        snprintf(error, sizeof error, "request of %zu bytes is larger than %d: not a pacd.v1.Command",
                 zmq_msg_size(m), MAX_REQUEST_BYTES);
    else
        c = pacd__v1__command__unpack(NULL, zmq_msg_size(m), zmq_msg_data(m));
    if (!c) {
        if (!error[0])
            snprintf(error, sizeof error, "request is not a pacd.v1.Command protobuf");
        self->control_malformed++;
        r.ok = 0;
    } else if (c->type == PACD__V1__COMMAND__TYPE__STATUS) {
        r.ok = 1;
    } else {
        run_command(self, c, &r, error, sizeof error, episode_id);
        if (c->client && c->client[0] && c->type != PACD__V1__COMMAND__TYPE__RELOAD) {
            /* a reload prints its own line (reload_checkpoint) */
            char who[TEXT_ESCAPED_MAX], why[2 * TEXT_ESCAPED_MAX];
            journal_printf(LOG_INFO, "pacd: command %d from %s: %s%s\n", (int)c->type,
                    text_escape_str(who, sizeof who, c->client), r.ok ? "ok" : "rejected: ",
                    r.ok ? "" : text_escape_str(why, sizeof why, error));
        }
    }
    if (c)
        pacd__v1__command__free_unpacked(c, NULL);
    telemetry_t tm;
    build_telemetry(self, &tm);
    r.status = &tm.t;
    r.error = error;
    r.episode_id = episode_id[0] ? episode_id : tm.st.episode_id;
    r.log_path = (char *)tm.t.log_path;
    r.message = self->reply_message;
    size_t n = pacd__v1__reply__get_packed_size(&r);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf) {
        pacd__v1__reply__pack(&r, buf);
        send_reply(self, &part[0], buf, n);
        free(buf);
    } else {
        send_reply(self, &part[0], "", 0);
    }
out:
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&part[i]);
}

static void drain_events(service_t *self)
{
    loop_event_t ev;
    while (loop_pop_event(self->d.loop, &ev))
        print_event(self, &ev);
}

static void *service_thread(void *arg)
{
    service_t *self = arg;
    int64_t period = (int64_t)(1e9 / self->d.cfg->telemetry_rate_hz);
    int64_t next = rt_clock_mono_ns();
    if (self->d.cfg->autostart) {
        Pacd__V1__Command c;
        pacd__v1__command__init(&c);
        c.type = PACD__V1__COMMAND__TYPE__START_EPISODE;
        Pacd__V1__Reply r;
        pacd__v1__reply__init(&r);
        char error[256] = "", id[LOOP_EPISODE_ID] = "";
        run_command(self, &c, &r, error, sizeof error, id);
        if (!r.ok)
            journal_printf(LOG_ERR, "pacd: autostart failed: %s\n", error);
    }
    while (!atomic_load(&self->stop)) {
        reload_housekeeping(self);
        int64_t now = rt_clock_mono_ns();
        if (now >= next) {
            publish_telemetry(self);
            drain_events(self);
            fflush(stderr);
            next += period;
            if (next < now)
                next = now + period;
        }
        long timeout = (long)((next - rt_clock_mono_ns()) / 1000000);
        if (timeout < 0)
            timeout = 0;
        /* the simulated clock: also every tick's status, when the loop says
         * it is out (loop_tick_fd) */
        int tick_fd = loop_tick_fd(self->d.loop);
        zmq_pollitem_t items[2] = {{self->rep, 0, ZMQ_POLLIN, 0}, {NULL, tick_fd, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, tick_fd >= 0 ? 2 : 1, timeout) > 0) {
            if (items[0].revents & ZMQ_POLLIN)
                handle_request(self);
            if (tick_fd >= 0 && (items[1].revents & ZMQ_POLLIN)) {
                uint64_t n = loop_status_count(self->d.loop);
                publish_telemetry(self);
                loop_telemetry_sent(self->d.loop, n);
                drain_events(self);
            }
        }
    }
    drain_events(self);
    fflush(stderr);
    return NULL;
}

static void *bind_socket(void *ctx, auth_t *auth, int type, const char *endpoint,
                         const char *what, char *err, size_t errlen)
{
    void *s = zmq_socket(ctx, type);
    int linger = 0;
    if (!s) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (type == ZMQ_ROUTER) {
        int64_t maxmsg = MAX_REQUEST_BYTES * 4;
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
        /* A ZAP domain makes libzmq refuse ZMTP 1.0 peers at the greeting
         * (any first byte but 0xFF): raw TCP garbage is disconnected at
         * once instead of being decoded as 1.0 frames. Without a ZAP handler
         * (no [security] keys; ZMQ_ZAP_ENFORCE_DOMAIN off) ZMTP 3 clients
         * are admitted as before; with one, the handler admits NULL-mechanism
         * peers (ipc:// endpoints, guarded by the socket file's mode) and
         * auth_bind makes tcp:// endpoints CURVE servers. */
        const char *dn = auth_domain_name(AUTH_DOMAIN_CONTROL);
        zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, dn, strlen(dn));
    }
    if (auth_bind(auth, s, endpoint,
                  type == ZMQ_PUB ? AUTH_DOMAIN_TELEMETRY : AUTH_DOMAIN_CONTROL, 0) != 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "cannot bind the %s socket to %s: %s (%schange %s in the config)",
                 what, endpoint, zmq_strerror(e),
                 e == EADDRINUSE ? "another pacd or another program listens there, "
                                   "`ss -ltnp` names it; stop it or " : "",
                 type == ZMQ_PUB ? "[telemetry] bind" : "[control] bind");
        zmq_close(s);
        return NULL;
    }
    return s;
}

service_t *service_new(const service_deps_t *deps, char *err, size_t errlen)
{
    service_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->d = *deps;
    snprintf(self->running_path, sizeof self->running_path, "%s", deps->cfg->checkpoint);
    self->window = loop_window(deps->loop);
    int bufs_ok = 1;
    for (int i = 0; i < 7; i++)
        bufs_ok &= (self->buf[i] = calloc((size_t)self->window, sizeof(uint32_t))) != NULL;
    self->sorted = calloc((size_t)self->window, sizeof(uint32_t));
    if (!bufs_ok || !self->sorted) {
        snprintf(err, errlen, "out of memory");
        service_destroy(&self);
        return NULL;
    }
    self->pub = bind_socket(deps->zmq_ctx, deps->auth, ZMQ_PUB, deps->cfg->telemetry_bind, "telemetry", err,
                            errlen);
    if (!self->pub) {
        service_destroy(&self);
        return NULL;
    }
    self->rep = bind_socket(deps->zmq_ctx, deps->auth, ZMQ_ROUTER, deps->cfg->control_bind, "control", err,
                            errlen);
    if (!self->rep) {
        service_destroy(&self);
        return NULL;
    }
    if (pthread_create(&self->thread, NULL, service_thread, self) != 0) {
        snprintf(err, errlen, "cannot start the service thread");
        service_destroy(&self);
        return NULL;
    }
    self->started = 1;
    return self;
}

void service_destroy(service_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    service_t *self = *self_p;
    if (self->started) {
        atomic_store(&self->stop, 1);
        pthread_join(self->thread, NULL);
    }
    if (self->pub)
        zmq_close(self->pub);
    if (self->rep)
        zmq_close(self->rep);
    for (int i = 0; i < 7; i++)
        free(self->buf[i]);
    free(self->sorted);
    free(self);
    *self_p = NULL;
}
