/* logger — episode logs as MCAP files (docs/episode-log.md).
 *
 * The control loop hands fixed-size records to the logger through
 * lock-free single-producer/single-consumer rings (one for steps and
 * episode boundaries, one for camera frames, one for robot states); a writer
 * thread drains them, serialises protobuf (pacd.v1) and appends MCAP records
 * to one file per episode. When a ring is full the record is dropped and
 * counted; the producer never waits. Records reach the file in the order
 * they were pushed, across all three rings.
 *
 * Files: <directory>/<episode_id>.mcap, unchunked MCAP written append-only;
 * each batch of records goes to the kernel with one write(2) and the file is
 * fdatasync'ed at most every fsync_interval_ms (and at episode end). After a
 * crash every record before the last complete one is readable; an existing
 * file is never overwritten (the episode is refused and counted). When a
 * file cannot be created or written (disk full) it is cut back to its last
 * complete record and closed, and logger_episode_failed tells the producer.
 * Retention (keep_bytes) deletes the oldest files on the writer thread.
 *
 * Episode ids (made by the caller, see logger_episode_id):
 *   <UTC start, YYYYMMDDTHHMMSSZ>-<robot>-<counter, 4+ digits>
 *   e.g. 20261122T023000Z-panda-0001
 * They sort by start time, and the counter keeps two episodes started in the
 * same second apart. Allowed characters: A-Z a-z 0-9 - _ . (not first '.').
 *
 * Threading: logger_new/logger_destroy are init-only. logger_begin_episode,
 * logger_push_*, logger_end_episode and logger_episode_failed are RT-safe
 * and must all be called from one producer thread (the control loop);
 * logger_episode_id belongs to the service thread; logger_free_bytes and
 * logger_check_free_space to any thread but the loop. logger_get_stats is safe from any thread but not RT-safe (it takes
 * a mutex the writer holds for short string copies).
 *
 * Memory: allocated once in logger_new: ring_steps step slots (~2.7 KiB
 * each) plus as many robot-state slots, ring_frames frame slots of
 * max_frame_bytes each, and a batch buffer of about 1 MiB + max_frame_bytes.
 */
#ifndef LOG_WRITER_H
#define LOG_WRITER_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_robot.h" /* HAL_MAX_JOINTS, HAL_MAX_ACTION */
#include "policy.h"   /* POLICY_MAX_FIELDS, POLICY_MAX_ACTION, POLICY_MAX_NAME */

/* Sizes of the fixed records. The ones a checkpoint or a robot sets are the
 * policy's and the HAL's own limits, so every checkpoint pacd loads and every
 * robot it drives fits a record. */
#define LOGGER_MAX_OBS 512       /* float values of the flat observation (the logger's own) */
#define LOGGER_MAX_FIELDS POLICY_MAX_FIELDS   /* observation fields */
#define LOGGER_MAX_ACTION POLICY_MAX_ACTION   /* values of an action (policy, command, teleop) */
#define LOGGER_MAX_CAMERAS 4     /* frame references per step */
#define LOGGER_MAX_JOINTS HAL_MAX_JOINTS
#define LOGGER_NAME 64           /* observation field and camera names, with the NUL */
#define LOGGER_EPISODE_ID 48
#define LOGGER_MAX_TASK_INFO 8   /* task_info entries per step (Step.task_info) */
#define LOGGER_TASK_NAME 32      /* a task_info name, with the NUL */
#define LOGGER_PATH 512          /* a checkpoint path, with the NUL */
#define LOGGER_SHA256 65         /* a hex sha256 digest, with the NUL */

static_assert(HAL_MAX_ACTION <= LOGGER_MAX_ACTION, "a HAL command fits logger_step_t.action");
static_assert(POLICY_MAX_NAME <= LOGGER_NAME, "an observation field name fits the layout");

typedef struct logger logger_t;

typedef struct {
    const char *directory;     /* episode files go here; created if missing */
    size_t ring_steps;         /* step ring capacity, records (default 256); the
                                  robot-state ring gets the same capacity */
    size_t ring_frames;        /* frame ring capacity, frames (default 32) */
    size_t max_frame_bytes;    /* largest frame payload accepted (default 1 MiB) */
    int fsync_interval_ms;     /* fdatasync at most this often (default 1000 when
                                  negative; 0 = after every batch) */
    uint64_t keep_bytes;       /* retention: after each episode (and at start) the
                                  writer deletes the oldest *.mcap files of the
                                  directory while they add up to more than this,
                                  never the newest nor the open one; 0 = keep all */
} logger_config_t;

/* Observation layout: field i is name[i] with shape, values
 * [offset, offset + size) of logger_step_t.observation. Given once per
 * episode. */
typedef struct {
    int n_fields;
    char name[LOGGER_MAX_FIELDS][LOGGER_NAME];
    int ndim[LOGGER_MAX_FIELDS];
    int shape[LOGGER_MAX_FIELDS][4];
    int offset[LOGGER_MAX_FIELDS];
    int size[LOGGER_MAX_FIELDS];
} logger_obs_layout_t;

/* Written as the MCAP metadata record "pacd" at the head of every file. */
typedef struct {
    char episode_id[LOGGER_EPISODE_ID];  /* also names the file: <id>.mcap */
    const char *robot;                    /* pointers: must outlive the logger */
    const char *backend;
    /* copied with the record: a checkpoint swapped in later (pacctl reload)
     * cannot change or free what a queued episode header names */
    char checkpoint_path[LOGGER_PATH];
    char checkpoint_sha256[LOGGER_SHA256];
    const char *config_text;              /* the whole INI file */
    const char *pacd_version;
    double rate_hz;
    int action_space;                     /* pacd.v1.ActionSpace */
    const char *policy_sampling;          /* "deterministic" or "sample temperature=T seed=S" */
    int task_id;                          /* task the episode was started with (-1: none) */
    int64_t task_seed;                    /* the episode's task seed (the reset
                                             randomisation), -1: none */
    const char *mode;                     /* "control", "shadow" or "teleop"; NULL = control */
    logger_obs_layout_t layout;
} logger_episode_t;

typedef struct {
    char camera[LOGGER_NAME];
    uint64_t seq;
    int64_t capture_time_unix_ns;
    uint32_t age_us;
} logger_frame_ref_t;

/* One transition (pacd.v1.Step) as fixed-size plain data. */
typedef struct {
    uint64_t step;
    int n_obs;
    float observation[LOGGER_MAX_OBS];
    int action_dim;                          /* values of action[] (joint command) */
    int policy_action_dim;                   /* values of policy_action[]; 0 = action_dim */
    float policy_action[LOGGER_MAX_ACTION];
    float action[LOGGER_MAX_ACTION];       /* after the safety filter */
    int action_space;                       /* pacd.v1.ActionSpace */
    float reward;
    float discount;
    uint8_t is_first, is_last, is_terminal, stale, held, has_q_value;
    uint32_t safety_flags;
    float q_value;
    int n_frames;
    logger_frame_ref_t frames[LOGGER_MAX_CAMERAS];
    int64_t tick_mono_ns;
    int64_t time_unix_ns;
    uint32_t inference_us;
    uint64_t robot_state_seq;
    int teleop_dim;                         /* 0: no teleoperator action */
    float teleop_action[LOGGER_MAX_ACTION];
    uint64_t teleop_seq;
    uint8_t shadow;                         /* nothing was sent to an arm */
    uint8_t teleop;                         /* teleop mode: the teleoperator's action
                                               drove the arm unless the step held */
    int n_task_info;                        /* Step.task_info entries */
    char task_info_name[LOGGER_MAX_TASK_INFO][LOGGER_TASK_NAME];
    double task_info_value[LOGGER_MAX_TASK_INFO];
} logger_step_t;

/* A camera frame (pacd.v1.CameraFrame); data is copied into the ring. */
typedef struct {
    const char *camera;
    uint32_t width, height;
    int encoding;                  /* pacd.v1.CameraFrame.Encoding */
    const uint8_t *data;
    size_t size;
    int64_t capture_time_unix_ns;
    uint64_t seq;
} logger_frame_t;

/* Robot state (pacd.v1.RobotState). */
typedef struct {
    int n_joints;
    double q[LOGGER_MAX_JOINTS], dq[LOGGER_MAX_JOINTS];
    double gripper_position, gripper_velocity;
    int grasp;
    double ee_pose[7];
    int64_t time_unix_ns;
    uint64_t seq;
} logger_robot_state_t;

typedef struct {
    uint64_t episodes_opened;       /* episode files created */
    uint64_t steps_written, frames_written, states_written;  /* handed to the kernel */
    /* Not in any file: ring full, frame too big, invalid record, no episode
     * open (or its file could not be opened / failed), or lost in a failed
     * write. */
    uint64_t steps_dropped, frames_dropped, states_dropped;
    /* I/O errors (open, write, fdatasync: disk full ...), each also in
     * last_error. After a failed write the file is cut back to its last
     * complete record and the rest of that episode is dropped (counted
     * above; logger_episode_failed); the next episode tries again. Never
     * blocks the producer. */
    uint64_t write_errors;
    uint64_t episodes_rejected;     /* begin_episode refused (-EINVAL) or not opened */
    /* Episodes whose file could not be created or failed while written
     * (disk full, I/O error); logger_episode_failed tells the producer. */
    uint64_t episodes_failed;
    uint64_t files_deleted;         /* episode logs removed by retention (keep_bytes) */
    uint64_t bytes_written;
    char current_path[512];         /* open episode file, "" if none */
    char last_path[512];            /* the most recently closed episode file */
    char last_error[256];
} logger_stats_t;

/* Start the writer thread. Init-only. Caller owns the result.
 * NULL with a message in err when the directory cannot be created/written
 * or memory for the rings cannot be had. */
logger_t *logger_new(const logger_config_t *config, char *err, size_t errlen);

/* Flush every queued record, close the open episode (writing its summary and
 * footer), stop the thread and free. Sets *self_p to NULL. NULL-safe. */
void logger_destroy(logger_t **self_p);

/* Queue the start of an episode: the writer opens <directory>/<id>.mcap and
 * writes the header, schemas, channels and metadata. An episode still open is
 * closed first. The struct is copied; the strings it points to must outlive
 * the logger. RT-safe. 0, -ENOSPC when the ring is full, -EINVAL for an id
 * outside the allowed characters or a layout field outside
 * [0, LOGGER_MAX_OBS) (both counted in episodes_rejected). If the file
 * cannot be created (exists, directory unusable) the writer counts it in
 * write_errors/episodes_rejected and drops the episode's records. */
int logger_begin_episode(logger_t *self, const logger_episode_t *episode);

/* Queue one record (copied, frame data included). RT-safe. 0, -ENOSPC
 * (ring full, dropped and counted), -EMSGSIZE (frame larger than
 * max_frame_bytes, dropped and counted), -EINVAL (NULL / sizes over the
 * LOGGER_MAX_* limits / camera name empty or not terminated within
 * LOGGER_NAME; counted as dropped unless self is NULL). Records pushed while
 * no episode is open are dropped and counted by the writer. A step's
 * observation is split into tensors by the episode's layout (a field
 * reaching past n_obs is cut at n_obs); with no layout it is one tensor
 * "observation" of shape [n_obs]. */
int logger_push_step(logger_t *self, const logger_step_t *step);
int logger_push_frame(logger_t *self, const logger_frame_t *frame);
int logger_push_robot_state(logger_t *self, const logger_robot_state_t *state);

/* Queue the end of the open episode: the writer writes the summary and
 * footer and closes the file. RT-safe. 0 or -ENOSPC. */
int logger_end_episode(logger_t *self);

/* 1 when the file of the episode last begun with logger_begin_episode (and
 * not yet ended) failed in the writer: it could not be created, or a write or
 * fdatasync failed (disk full, I/O error). The writer has then cut the file
 * back to its last complete record, closed it and drops the episode's further
 * records; the producer should end the episode. 0 otherwise (also when no
 * episode is open or self is NULL). RT-safe (one atomic load); producer
 * thread only. */
int logger_episode_failed(logger_t *self);

/* The space unprivileged writers may still use on the filesystem holding
 * directory (statvfs: f_bavail * f_frsize) into *free_bytes. Any thread, not
 * RT-safe (a system call on the filesystem). 0, -EINVAL (NULL), or -errno of
 * statvfs (e.g. -ENOENT). */
int logger_free_bytes(const char *directory, uint64_t *free_bytes);

/* The disk guard's check before an episode starts: 0 when min_free_bytes is 0
 * (off; nothing is looked at) or the filesystem of directory has at least
 * min_free_bytes free (logger_free_bytes); -ENOSPC when it has less, and
 * -errno when statvfs fails, both with the reason and what to do in why
 * (whylen bytes, may be NULL). *free_bytes (may be NULL) gets the free space
 * (0 when not known). Not RT-safe: the service thread calls it. */
int logger_check_free_space(const char *directory, uint64_t min_free_bytes, uint64_t *free_bytes,
                            char *why, size_t whylen);

/* Snapshot of the counters. Any thread; not RT-safe (short mutex). */
void logger_get_stats(logger_t *self, logger_stats_t *stats);

/* Format an episode id into out: "<UTC time of time_unix_ns as
 * YYYYMMDDTHHMMSSZ>-<robot>-<counter as %04u>", robot reduced to
 * [a-z0-9_] (other characters become '_', at most 16 kept; "robot" when
 * empty or NULL). Service thread (gmtime_r and strftime); not called from the
 * control loop. 0, or -EINVAL when out is NULL or the time is before 1970. */
int logger_episode_id(char out[LOGGER_EPISODE_ID], int64_t time_unix_ns, const char *robot,
                      uint32_t counter);

/* Block until every record queued so far is written (tests, shutdown).
 * Not RT-safe. 0, or -ETIMEDOUT after timeout_ms. */
int logger_flush(logger_t *self, int timeout_ms);

#endif
