/* logger — episode logs as MCAP files (log_writer.h, docs/episode-log.md).
 *
 * Producer side (the control loop): three single-producer/single-consumer
 * rings of fixed-size slots (rt/rt_spsc.h, zero-copy: records are built in
 * the slot and read from it), allocated in logger_new. Every push takes the
 * next value of a producer-owned sequence counter and, after the slot is
 * published (or the record dropped), stores it in `published` (release). The
 * writer thread reads `published` first and then merges the ring heads in
 * sequence order up to it, so records reach the file in exactly the order
 * they were pushed, whichever ring they went through.
 *
 * Writer side: one thread polls the rings every LOGGER_POLL_NS, converts
 * records to pacd.v1 protobuf (protobuf-c, packed into a reused buffer),
 * appends MCAP records to a batch (log_mcap.h) and writes each batch with
 * write(2) in one go, then fdatasync(2) at most every fsync_interval_ms.
 */
#include "log_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "log_mcap.h"
#include "pacd_proto.h"
#include "rt_clock.h"
#include "rt_spsc.h"

#ifndef PACD_VERSION
#define PACD_VERSION "0.0.0"
#endif

/* The producer side must stay lock-free (RT-safe). */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "the logger rings need lock-free 64-bit atomics");

#define LOGGER_POLL_NS 2000000L          /* writer idle poll: 2 ms */
#define LOGGER_BATCH_BYTES (1u << 20)    /* write a batch once it holds 1 MiB */

/* Schema and channel ids inside every episode file (docs/episode-log.md). */
enum { SCHEMA_STEP = 1, SCHEMA_FRAME = 2, SCHEMA_STATE = 3 };
enum { CHANNEL_STEP = 1, CHANNEL_STATE = 2, CHANNEL_CAMERA0 = 3 };

/* ------------------------------------------------------------------ */
/* Ring records                                                          */
/* ------------------------------------------------------------------ */

enum { ITEM_BEGIN = 1, ITEM_STEP = 2, ITEM_END = 3 };

typedef struct {
    uint64_t seq;
    int kind;
    union {
        logger_episode_t episode;
        logger_step_t step;
    } u;
} ctl_item_t;

typedef struct {
    uint64_t seq;
    char camera[LOGGER_NAME];
    uint32_t width, height;
    int encoding;
    int64_t capture_time_unix_ns;
    uint64_t frame_seq;
    size_t size;
    /* size bytes of data follow, aligned */
} frame_item_t;

#define FRAME_DATA_OFFSET ((sizeof(frame_item_t) + 15) & ~(size_t)15)

typedef struct {
    uint64_t seq;
    logger_robot_state_t state;
} state_item_t;

/* ------------------------------------------------------------------ */
/* Logger                                                               */
/* ------------------------------------------------------------------ */

typedef struct {
    int open;                /* an episode is current (its file may have failed) */
    int fd;                  /* -1 when no file (open failed or write failed) */
    logger_episode_t ep;
    char path[512];
    char camera[MCAP_MAX_CHANNELS][LOGGER_NAME];
    int n_cameras;
    uint64_t pend_steps, pend_frames, pend_states;  /* in the unwritten batch */
    int dirty;               /* written since the last fdatasync */
    int64_t last_sync_ns;
    uint64_t begin_seq;      /* sequence number of the episode's ITEM_BEGIN */
} episode_file_t;

struct logger {
    char directory[512];
    logger_config_t cfg;
    rt_spsc_t ctl, frames, states;

    /* producer-owned */
    uint64_t next_seq;
    uint64_t episode_seq;    /* seq of the open episode's ITEM_BEGIN; 0: none */
    /* writer -> producer: seq of the ITEM_BEGIN of the last episode whose
     * file failed (logger_episode_failed) */
    _Alignas(64) _Atomic uint64_t failed_seq;
    /* producer -> writer */
    _Alignas(64) _Atomic uint64_t published;
    /* writer -> flush */
    _Alignas(64) _Atomic uint64_t done;
    atomic_int stop;

    /* counters, any thread reads */
    _Atomic uint64_t episodes_opened, episodes_rejected;
    _Atomic uint64_t steps_written, frames_written, states_written;
    _Atomic uint64_t steps_dropped, frames_dropped, states_dropped;
    _Atomic uint64_t write_errors, bytes_written;
    _Atomic uint64_t episodes_failed, files_deleted;

    pthread_mutex_t text_lock;   /* paths and last_error; never taken by the producer */
    char current_path[512], last_path[512], last_error[256];

    /* writer-owned */
    pthread_t thread;
    int thread_started;
    mcap_writer_t *mcap;
    episode_file_t file;
    uint8_t *pack;           /* protobuf scratch */
    size_t pack_cap;
    Pacd__V1__Tensor tensors[LOGGER_MAX_FIELDS + 1];
    Pacd__V1__Tensor *tensor_ptrs[LOGGER_MAX_FIELDS + 1];
    uint32_t shapes[LOGGER_MAX_FIELDS + 1][4];
    Pacd__V1__FrameRef frame_refs[LOGGER_MAX_CAMERAS];
    Pacd__V1__FrameRef *frame_ref_ptrs[LOGGER_MAX_CAMERAS];
};

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void set_error(logger_t *self, const char *fmt, const char *a, int err)
{
    pthread_mutex_lock(&self->text_lock);
    if (snprintf(self->last_error, sizeof self->last_error, fmt, a, strerror(err)) < 0)
        self->last_error[0] = '\0';
    pthread_mutex_unlock(&self->text_lock);
}

static void set_path(logger_t *self, char *dst, const char *path)
{
    pthread_mutex_lock(&self->text_lock);
    if (snprintf(dst, 512, "%s", path) < 0)
        dst[0] = '\0';
    pthread_mutex_unlock(&self->text_lock);
}

/* mkdir -p. Writer thread / init only. 0 or -errno. */
static int make_dirs(const char *path)
{
    char tmp[512];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(tmp, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* ------------------------------------------------------------------ */
/* Writer: file I/O                                                     */
/* ------------------------------------------------------------------ */

/* The open episode's file failed (could not be created or written): tell
 * the producer (logger_episode_failed). Writer thread. */
static void episode_failed(logger_t *self)
{
    count(&self->episodes_failed, 1);
    atomic_store_explicit(&self->failed_seq, self->file.begin_seq, memory_order_release);
}

/* The current file failed: cut it back to its last complete record and
 * stop writing this episode. */
static void file_fail(logger_t *self, const char *what, int err)
{
    episode_file_t *f = &self->file;
    count(&self->write_errors, 1);
    set_error(self, what, f->path, err);
    episode_failed(self);
    if (f->fd >= 0) {
        uint64_t good = mcap_writer_offset(self->mcap);
        const uint8_t *d;
        size_t n;
        mcap_writer_pending(self->mcap, &d, &n);
        good -= n;
        if (ftruncate(f->fd, (off_t)good) == 0)
            (void)fdatasync(f->fd);
        close(f->fd);
        f->fd = -1;
        if (good == 0)
            unlink(f->path);   /* not even the header: nothing to read */
        else
            set_path(self, self->last_path, f->path);
    }
    count(&self->steps_dropped, f->pend_steps);
    count(&self->frames_dropped, f->pend_frames);
    count(&self->states_dropped, f->pend_states);
    f->pend_steps = f->pend_frames = f->pend_states = 0;
    mcap_writer_consume(self->mcap);
}

/* Write the pending batch. */
static void file_write(logger_t *self)
{
    episode_file_t *f = &self->file;
    const uint8_t *data;
    size_t len;
    mcap_writer_pending(self->mcap, &data, &len);
    if (f->fd < 0) {
        mcap_writer_consume(self->mcap);
        return;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(f->fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            file_fail(self, "cannot write episode log %s: %s; free disk space or fix the directory",
                      n < 0 ? errno : ENOSPC);
            return;
        }
        done += (size_t)n;
    }
    mcap_writer_consume(self->mcap);
    count(&self->bytes_written, len);
    count(&self->steps_written, f->pend_steps);
    count(&self->frames_written, f->pend_frames);
    count(&self->states_written, f->pend_states);
    f->pend_steps = f->pend_frames = f->pend_states = 0;
    if (len)
        f->dirty = 1;
}

static void file_sync(logger_t *self, int force)
{
    episode_file_t *f = &self->file;
    if (f->fd < 0 || !f->dirty)
        return;
    int64_t now = rt_clock_mono_ns();
    if (!force && now - f->last_sync_ns < (int64_t)self->cfg.fsync_interval_ms * 1000000LL)
        return;
    f->dirty = 0;
    f->last_sync_ns = now;
    if (fdatasync(f->fd) != 0) {
        /* what the kernel has is whole batches, but whether it reaches the
         * disk is unknown: stop writing this episode and close the file */
        int e = errno;
        count(&self->write_errors, 1);
        set_error(self, "cannot fdatasync episode log %s: %s; free disk space or fix the disk",
                  f->path, e);
        episode_failed(self);
        close(f->fd);
        f->fd = -1;
        set_path(self, self->last_path, f->path);
    }
}

/* Encoder ran out of memory: treat as an I/O failure of this file. */
static void encode_failed(logger_t *self, int rc)
{
    if (rc == -ENOMEM && self->file.fd >= 0)
        file_fail(self, "out of memory encoding episode log %s: %s", ENOMEM);
}

/* ------------------------------------------------------------------ */
/* Writer: episodes                                                     */
/* ------------------------------------------------------------------ */

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static char *layout_json(const logger_episode_t *ep)
{
    json_t *arr = json_array();
    const logger_obs_layout_t *l = &ep->layout;
    for (int i = 0; i < l->n_fields; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < l->ndim[i]; d++)
            json_array_append_new(shape, json_integer(l->shape[i][d]));
        json_array_append_new(arr, json_pack("{s:s, s:o, s:i, s:i}", "name", l->name[i],
                                             "shape", shape, "offset", l->offset[i],
                                             "size", l->size[i]));
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

/* ------------------------------------------------------------------ */
/* Writer: retention ([logger] keep_gb)                                 */
/* ------------------------------------------------------------------ */

typedef struct {
    char name[256];
    struct timespec mtime;
    uint64_t size;
} log_file_t;

static int log_file_older(const void *a, const void *b)
{
    const log_file_t *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Delete the oldest *.mcap files of the log directory (by modification time)
 * while all of them together are larger than keep_bytes. The newest file and
 * the open episode's file are never deleted. Writer thread (it allocates and
 * does directory I/O). */
static void retention(logger_t *self)
{
    uint64_t keep = self->cfg.keep_bytes;
    if (!keep)
        return;
    DIR *d = opendir(self->directory);
    if (!d)
        return;
    log_file_t *v = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        struct stat st;
        if (len < 6 || len >= sizeof v->name || e->d_name[0] == '.' ||
            strcmp(e->d_name + len - 5, ".mcap") != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            log_file_t *nv = realloc(v, nc * sizeof *nv);
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        memcpy(v[n].name, e->d_name, len + 1);
        v[n].mtime = st.st_mtim;
        v[n].size = (uint64_t)st.st_size;
        total += v[n].size;
        n++;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, log_file_older);
    const char *open_name = NULL;
    if (self->file.open && self->file.fd >= 0) {
        const char *slash = strrchr(self->file.path, '/');
        open_name = slash ? slash + 1 : self->file.path;
    }
    for (size_t i = 0; i + 1 < n && total > keep; i++) {
        if (open_name && strcmp(v[i].name, open_name) == 0)
            continue;
        if (unlinkat(dirfd(d), v[i].name, 0) == 0) {
            total -= v[i].size;
            count(&self->files_deleted, 1);
        } else {
            count(&self->write_errors, 1);
            set_error(self, "retention: cannot delete the episode log %s: %s", v[i].name, errno);
        }
    }
    free(v);
    closedir(d);
}

static void episode_close(logger_t *self)
{
    episode_file_t *f = &self->file;
    if (!f->open)
        return;
    if (f->fd >= 0) {
        int rc = mcap_writer_finish(self->mcap);
        if (rc != 0)
            encode_failed(self, rc);
        file_write(self);
    }
    if (f->fd >= 0) {
        file_sync(self, 1);
        if (close(f->fd) != 0) {
            count(&self->write_errors, 1);
            set_error(self, "cannot close episode log %s: %s", f->path, errno);
        }
        f->fd = -1;
        set_path(self, self->last_path, f->path);
    }
    set_path(self, self->current_path, "");
    f->open = 0;
    retention(self);
}

static void episode_open(logger_t *self, const logger_episode_t *ep, uint64_t begin_seq)
{
    episode_file_t *f = &self->file;
    episode_close(self);
    memset(f, 0, sizeof *f);
    f->ep = *ep;
    f->open = 1;
    f->fd = -1;
    f->begin_seq = begin_seq;
    f->last_sync_ns = rt_clock_mono_ns();
    if (snprintf(f->path, sizeof f->path, "%s/%s.mcap", self->directory, ep->episode_id) < 0)
        f->path[0] = '\0';

    int rc = make_dirs(self->directory);
    if (rc != 0) {
        count(&self->write_errors, 1);
        count(&self->episodes_rejected, 1);
        set_error(self, "cannot create the log directory for %s: %s; fix [logger] directory", f->path, -rc);
        episode_failed(self);
        return;
    }
    /* O_EXCL: an episode id names exactly one file; never overwrite a log. */
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int e = errno;
        count(&self->write_errors, 1);
        count(&self->episodes_rejected, 1);
        set_error(self, e == EEXIST ? "cannot create episode log %s: %s (episode ids must be unique)"
                                    : "cannot create episode log %s: %s", f->path, e);
        episode_failed(self);
        return;
    }
    count(&self->episodes_opened, 1);
    set_path(self, self->current_path, f->path);

    mcap_writer_t *w = self->mcap;
    rc = mcap_writer_start(w, "pacd", "pacd " PACD_VERSION);
    const uint8_t *desc = pacd_proto_descriptor_set;
    size_t desc_len = pacd_proto_descriptor_set_len;
    if (!rc) rc = mcap_writer_add_schema(w, SCHEMA_STEP, "pacd.v1.Step", "protobuf", desc, desc_len);
    if (!rc) rc = mcap_writer_add_schema(w, SCHEMA_FRAME, "pacd.v1.CameraFrame", "protobuf", desc, desc_len);
    if (!rc) rc = mcap_writer_add_schema(w, SCHEMA_STATE, "pacd.v1.RobotState", "protobuf", desc, desc_len);
    if (!rc) rc = mcap_writer_add_channel(w, CHANNEL_STEP, SCHEMA_STEP, "/pacd/step", "protobuf");
    if (!rc) rc = mcap_writer_add_channel(w, CHANNEL_STATE, SCHEMA_STATE, "/pacd/robot_state", "protobuf");

    char rate[32], space[16], start[32], task[16], seed[24];
    snprintf(task, sizeof task, "%d", ep->task_id);
    snprintf(seed, sizeof seed, "%lld", (long long)ep->task_seed);
    snprintf(rate, sizeof rate, "%.17g", ep->rate_hz);
    snprintf(space, sizeof space, "%d", ep->action_space);
    snprintf(start, sizeof start, "%lld", (long long)rt_clock_unix_ns());
    char *layout = layout_json(ep);
    const char *keys[] = {"log_format_version", "episode_id", "robot", "backend",
                          "checkpoint_path", "checkpoint_sha256", "pacd_version", "rate_hz",
                          "action_space", "observation_layout", "start_time_unix_ns", "config",
                          "policy_sampling", "task_id", "task_seed", "mode"};
    const char *values[] = {"1", ep->episode_id, str_or_empty(ep->robot), str_or_empty(ep->backend),
                            ep->checkpoint_path, ep->checkpoint_sha256,
                            ep->pacd_version ? ep->pacd_version : PACD_VERSION, rate, space,
                            layout ? layout : "[]", start, str_or_empty(ep->config_text),
                            ep->policy_sampling ? ep->policy_sampling : "deterministic", task,
                            seed, ep->mode ? ep->mode : "control"};
    if (!rc) rc = mcap_writer_add_metadata(w, "pacd", keys, values, sizeof keys / sizeof keys[0]);
    free(layout);
    if (rc)
        encode_failed(self, rc);
    file_write(self);
}

/* Pack msg into the scratch buffer; NULL when it cannot grow. */
static const uint8_t *pack_message(logger_t *self, const ProtobufCMessage *msg, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > self->pack_cap) {
        uint8_t *p = realloc(self->pack, n);
        if (!p)
            return NULL;
        self->pack = p;
        self->pack_cap = n;
    }
    *len = protobuf_c_message_pack(msg, self->pack);
    return self->pack;
}

static uint64_t log_time(int64_t t)
{
    return t > 0 ? (uint64_t)t : (uint64_t)rt_clock_unix_ns();
}

static int append(logger_t *self, uint16_t channel, int64_t t, const ProtobufCMessage *msg)
{
    size_t len = 0;
    const uint8_t *data = pack_message(self, msg, &len);
    if (!data) {
        encode_failed(self, -ENOMEM);
        return -ENOMEM;
    }
    int rc = mcap_writer_add_message(self->mcap, channel, log_time(t), log_time(t), data, len);
    if (rc)
        encode_failed(self, rc);
    return rc;
}

static void write_step(logger_t *self, const logger_step_t *s)
{
    episode_file_t *f = &self->file;
    if (f->fd < 0) {
        count(&self->steps_dropped, 1);
        return;
    }
    const logger_obs_layout_t *l = &f->ep.layout;
    Pacd__V1__Step m = PACD__V1__STEP__INIT;
    m.episode_id = f->ep.episode_id;
    m.step = s->step;
    int nt = 0;
    if (l->n_fields > 0) {
        for (int i = 0; i < l->n_fields; i++) {
            Pacd__V1__Tensor *t = &self->tensors[nt];
            pacd__v1__tensor__init(t);
            t->name = (char *)l->name[i];
            for (int d = 0; d < l->ndim[i]; d++)
                self->shapes[nt][d] = (uint32_t)l->shape[i][d];
            t->n_shape = (size_t)l->ndim[i];
            t->shape = self->shapes[nt];
            int avail = s->n_obs - l->offset[i];
            int size = l->size[i] < avail ? l->size[i] : avail;
            t->n_values = size > 0 ? (size_t)size : 0;
            t->values = (float *)&s->observation[l->offset[i]];
            self->tensor_ptrs[nt] = t;
            nt++;
        }
    } else if (s->n_obs > 0) {
        Pacd__V1__Tensor *t = &self->tensors[0];
        pacd__v1__tensor__init(t);
        t->name = "observation";
        self->shapes[0][0] = (uint32_t)s->n_obs;
        t->n_shape = 1;
        t->shape = self->shapes[0];
        t->n_values = (size_t)s->n_obs;
        t->values = (float *)s->observation;
        self->tensor_ptrs[0] = t;
        nt = 1;
    }
    m.n_observation = (size_t)nt;
    m.observation = self->tensor_ptrs;
    m.n_policy_action = (size_t)(s->policy_action_dim > 0 ? s->policy_action_dim : s->action_dim);
    m.policy_action = (float *)s->policy_action;
    Pacd__V1__Action a = PACD__V1__ACTION__INIT;
    a.space = (Pacd__V1__ActionSpace)s->action_space;
    a.n_values = (size_t)s->action_dim;
    a.values = (float *)s->action;
    a.time_unix_ns = s->time_unix_ns;
    a.seq = s->step;
    m.action = &a;
    m.reward = s->reward;
    m.discount = s->discount;
    m.is_first = s->is_first != 0;
    m.is_last = s->is_last != 0;
    m.is_terminal = s->is_terminal != 0;
    m.stale = s->stale != 0;
    m.held = s->held != 0;
    m.safety_flags = s->safety_flags;
    for (int i = 0; i < s->n_frames; i++) {
        Pacd__V1__FrameRef *r = &self->frame_refs[i];
        pacd__v1__frame_ref__init(r);
        r->camera = (char *)s->frames[i].camera;
        r->seq = s->frames[i].seq;
        r->capture_time_unix_ns = s->frames[i].capture_time_unix_ns;
        r->age_us = s->frames[i].age_us;
        self->frame_ref_ptrs[i] = r;
    }
    m.n_frames = (size_t)s->n_frames;
    m.frames = self->frame_ref_ptrs;
    m.tick_mono_ns = s->tick_mono_ns;
    m.time_unix_ns = s->time_unix_ns;
    m.inference_us = s->inference_us;
    m.has_q_value = s->has_q_value != 0;
    m.q_value = s->q_value;
    m.robot_state_seq = s->robot_state_seq;
    m.n_teleop_action = (size_t)s->teleop_dim;
    m.teleop_action = (float *)s->teleop_action;
    m.teleop_action_seq = s->teleop_seq;
    m.shadow = s->shadow != 0;
    m.teleop = s->teleop != 0;
    Pacd__V1__TaskValue tv[LOGGER_MAX_TASK_INFO], *tvp[LOGGER_MAX_TASK_INFO];
    int nti = s->n_task_info < 0                    ? 0
            : s->n_task_info > LOGGER_MAX_TASK_INFO ? LOGGER_MAX_TASK_INFO
                                                    : s->n_task_info;
    for (int i = 0; i < nti; i++) {
        pacd__v1__task_value__init(&tv[i]);
        tv[i].name = (char *)s->task_info_name[i];
        tv[i].value = s->task_info_value[i];
        tvp[i] = &tv[i];
    }
    m.n_task_info = (size_t)nti;
    m.task_info = tvp;
    if (append(self, CHANNEL_STEP, s->time_unix_ns, &m.base) == 0)
        f->pend_steps++;
    else
        count(&self->steps_dropped, 1);
}

static void write_frame(logger_t *self, const frame_item_t *fr)
{
    episode_file_t *f = &self->file;
    if (f->fd < 0) {
        count(&self->frames_dropped, 1);
        return;
    }
    int ci = -1;
    for (int i = 0; i < f->n_cameras; i++)
        if (strcmp(f->camera[i], fr->camera) == 0)
            ci = i;
    if (ci < 0) {
        char topic[LOGGER_NAME + 16];
        snprintf(topic, sizeof topic, "/pacd/camera/%s", fr->camera);
        int rc = -EINVAL;
        if (f->n_cameras < MCAP_MAX_CHANNELS - CHANNEL_CAMERA0)
            rc = mcap_writer_add_channel(self->mcap, (uint16_t)(CHANNEL_CAMERA0 + f->n_cameras),
                                         SCHEMA_FRAME, topic, "protobuf");
        if (rc) {
            encode_failed(self, rc);
            count(&self->frames_dropped, 1);
            return;
        }
        ci = f->n_cameras++;
        snprintf(f->camera[ci], LOGGER_NAME, "%s", fr->camera);
    }
    Pacd__V1__CameraFrame m = PACD__V1__CAMERA_FRAME__INIT;
    m.camera = (char *)fr->camera;
    m.width = fr->width;
    m.height = fr->height;
    m.encoding = (Pacd__V1__CameraFrame__Encoding)fr->encoding;
    m.data.len = fr->size;
    m.data.data = (uint8_t *)fr + FRAME_DATA_OFFSET;
    m.capture_time_unix_ns = fr->capture_time_unix_ns;
    m.seq = fr->frame_seq;
    if (append(self, (uint16_t)(CHANNEL_CAMERA0 + ci), fr->capture_time_unix_ns, &m.base) == 0)
        f->pend_frames++;
    else
        count(&self->frames_dropped, 1);
}

static void write_state(logger_t *self, const logger_robot_state_t *s)
{
    episode_file_t *f = &self->file;
    if (f->fd < 0) {
        count(&self->states_dropped, 1);
        return;
    }
    Pacd__V1__RobotState m;
    Pacd__V1__Pose pose;
    pacd_proto_robot_state(&m, &pose, str_or_empty(f->ep.robot), s->n_joints, s->q, s->dq,
                           s->gripper_position, s->gripper_velocity, s->grasp, s->ee_pose,
                           s->time_unix_ns, s->seq);
    if (append(self, CHANNEL_STATE, s->time_unix_ns, &m.base) == 0)
        f->pend_states++;
    else
        count(&self->states_dropped, 1);
}

/* ------------------------------------------------------------------ */
/* Writer thread                                                        */
/* ------------------------------------------------------------------ */

static uint64_t head_seq(rt_spsc_t *r, void **slot)
{
    *slot = rt_spsc_peek(r);
    return *slot ? *(const uint64_t *)*slot : UINT64_MAX;
}

/* Process every record with seq <= upto, in seq order. 1 if any. */
static int drain(logger_t *self, uint64_t upto)
{
    int any = 0;
    for (;;) {
        void *c, *fr, *st;
        uint64_t sc = head_seq(&self->ctl, &c);
        uint64_t sf = head_seq(&self->frames, &fr);
        uint64_t ss = head_seq(&self->states, &st);
        uint64_t m = sc < sf ? sc : sf;
        m = m < ss ? m : ss;
        if (m == UINT64_MAX || m > upto)
            break;
        any = 1;
        if (m == sc) {
            const ctl_item_t *it = c;
            if (it->kind == ITEM_BEGIN)
                episode_open(self, &it->u.episode, it->seq);
            else if (it->kind == ITEM_END)
                episode_close(self);
            else if (self->file.open)
                write_step(self, &it->u.step);
            else
                count(&self->steps_dropped, 1);
            rt_spsc_release(&self->ctl);
        } else if (m == sf) {
            if (self->file.open)
                write_frame(self, fr);
            else
                count(&self->frames_dropped, 1);
            rt_spsc_release(&self->frames);
        } else {
            if (self->file.open)
                write_state(self, &((const state_item_t *)st)->state);
            else
                count(&self->states_dropped, 1);
            rt_spsc_release(&self->states);
        }
        const uint8_t *d;
        size_t n;
        mcap_writer_pending(self->mcap, &d, &n);
        if (n >= LOGGER_BATCH_BYTES)
            file_write(self);
    }
    return any;
}

static void *writer_main(void *arg)
{
    logger_t *self = arg;
    retention(self);
    for (;;) {
        int stopping = atomic_load_explicit(&self->stop, memory_order_acquire);
        uint64_t upto = atomic_load_explicit(&self->published, memory_order_acquire);
        int any = drain(self, upto);
        if (self->file.open)
            file_write(self);
        file_sync(self, self->cfg.fsync_interval_ms <= 0);
        atomic_store_explicit(&self->done, upto, memory_order_release);
        if (stopping)
            break;
        if (!any)
            rt_clock_sleep_ns(LOGGER_POLL_NS);
    }
    episode_close(self);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Public API                                                           */
/* ------------------------------------------------------------------ */

logger_t *logger_new(const logger_config_t *config, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!config || !config->directory || !config->directory[0]) {
        snprintf(err, errlen, "logger: no log directory given; set [logger] directory");
        return NULL;
    }
    if (strlen(config->directory) + LOGGER_EPISODE_ID + 8 >= 512) {
        snprintf(err, errlen, "logger: log directory path is too long (%zu characters); use a shorter path",
                 strlen(config->directory));
        return NULL;
    }
    int rc = make_dirs(config->directory);
    if (rc != 0 || access(config->directory, W_OK) != 0) {
        snprintf(err, errlen, "logger: cannot use log directory %s: %s; create it or fix its permissions",
                 config->directory, strerror(rc ? -rc : errno));
        return NULL;
    }
    /* aligned: logger_t has 64-byte aligned (cache-line) members */
    size_t size = (sizeof(logger_t) + 63) / 64 * 64;
    logger_t *self = aligned_alloc(64, size);
    if (self)
        memset(self, 0, size);
    if (!self) {
        snprintf(err, errlen, "logger: out of memory");
        return NULL;
    }
    snprintf(self->directory, sizeof self->directory, "%s", config->directory);
    self->cfg = *config;
    self->cfg.directory = self->directory;
    if (self->cfg.ring_steps == 0)
        self->cfg.ring_steps = 256;
    if (self->cfg.ring_frames == 0)
        self->cfg.ring_frames = 32;
    if (self->cfg.max_frame_bytes == 0)
        self->cfg.max_frame_bytes = 1u << 20;
    if (self->cfg.fsync_interval_ms < 0)
        self->cfg.fsync_interval_ms = 1000;
    pthread_mutex_init(&self->text_lock, NULL);
    self->file.fd = -1;
    for (int i = 0; i < LOGGER_MAX_CAMERAS; i++)
        self->frame_ref_ptrs[i] = &self->frame_refs[i];

    size_t frame_slot = FRAME_DATA_OFFSET + self->cfg.max_frame_bytes;
    self->pack_cap = self->cfg.max_frame_bytes + 65536;
    self->pack = malloc(self->pack_cap);
    self->mcap = mcap_writer_new(LOGGER_BATCH_BYTES + self->pack_cap + 65536);
    if (self->cfg.max_frame_bytes > MCAP_MAX_RECORD_LEN / 2 || !self->pack || !self->mcap ||
        rt_spsc_init(&self->ctl, sizeof(ctl_item_t), self->cfg.ring_steps) ||
        rt_spsc_init(&self->frames, frame_slot, self->cfg.ring_frames) ||
        rt_spsc_init(&self->states, sizeof(state_item_t), self->cfg.ring_steps)) {
        snprintf(err, errlen, "logger: cannot allocate the rings (%zu steps, %zu frames of %zu bytes); "
                 "lower [logger] ring sizes or max_frame_bytes",
                 self->cfg.ring_steps, self->cfg.ring_frames, self->cfg.max_frame_bytes);
        logger_destroy(&self);
        return NULL;
    }
    if (pthread_create(&self->thread, NULL, writer_main, self) != 0) {
        snprintf(err, errlen, "logger: cannot start the writer thread");
        logger_destroy(&self);
        return NULL;
    }
    self->thread_started = 1;
    pthread_setname_np(self->thread, "pacd-logger");
    return self;
}

void logger_destroy(logger_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    logger_t *self = *self_p;
    if (self->thread_started) {
        atomic_store_explicit(&self->stop, 1, memory_order_release);
        pthread_join(self->thread, NULL);
    }
    mcap_writer_destroy(&self->mcap);
    free(self->pack);
    rt_spsc_free(&self->ctl);
    rt_spsc_free(&self->frames);
    rt_spsc_free(&self->states);
    pthread_mutex_destroy(&self->text_lock);
    free(self);
    *self_p = NULL;
}

static void publish_seq(logger_t *self, uint64_t seq)
{
    atomic_store_explicit(&self->published, seq, memory_order_release);
}

/* Producer: the record's sequence number and a free slot of ring for it, or
 * NULL when the ring is full: the record is dropped (counted in *dropped
 * when given), the loop does not wait. Always followed by push_done. */
static void *push_claim(logger_t *self, rt_spsc_t *ring, _Atomic uint64_t *dropped, uint64_t *seq)
{
    *seq = ++self->next_seq;
    void *slot = rt_spsc_claim(ring);
    if (!slot && dropped)
        count(dropped, 1);
    return slot;
}

/* Producer: publish the filled slot (when there was one), then the sequence
 * number up to which the writer merges the rings. 0, or -ENOSPC (dropped). */
static int push_done(logger_t *self, rt_spsc_t *ring, const void *slot, uint64_t seq)
{
    if (slot)
        rt_spsc_publish(ring);
    publish_seq(self, seq);
    return slot ? 0 : -ENOSPC;
}

static int valid_episode(const logger_episode_t *ep)
{
    const char *id = ep->episode_id;
    size_t n = strnlen(id, LOGGER_EPISODE_ID);
    if (n == 0 || n == LOGGER_EPISODE_ID || id[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    if (strnlen(ep->checkpoint_path, LOGGER_PATH) == LOGGER_PATH ||
        strnlen(ep->checkpoint_sha256, LOGGER_SHA256) == LOGGER_SHA256)
        return 0;
    const logger_obs_layout_t *l = &ep->layout;
    if (l->n_fields < 0 || l->n_fields > LOGGER_MAX_FIELDS)
        return 0;
    for (int i = 0; i < l->n_fields; i++) {
        if (strnlen(l->name[i], LOGGER_NAME) == LOGGER_NAME || l->ndim[i] < 0 || l->ndim[i] > 4 ||
            l->offset[i] < 0 || l->size[i] < 0 || l->offset[i] > LOGGER_MAX_OBS ||
            l->size[i] > LOGGER_MAX_OBS - l->offset[i])
            return 0;
        for (int d = 0; d < l->ndim[i]; d++)
            if (l->shape[i][d] < 0)
                return 0;
    }
    return 1;
}

static int push_ctl(logger_t *self, int kind, const void *payload, size_t size, uint64_t *seq_out)
{
    uint64_t seq;
    ctl_item_t *it = push_claim(self, &self->ctl, NULL, &seq);
    if (it) {
        it->seq = seq;
        it->kind = kind;
        if (size)
            memcpy(&it->u, payload, size);
    }
    if (seq_out)
        *seq_out = seq;
    return push_done(self, &self->ctl, it, seq);
}

int logger_begin_episode(logger_t *self, const logger_episode_t *episode)
{
    if (!self)
        return -EINVAL;
    if (!episode || !valid_episode(episode)) {
        count(&self->episodes_rejected, 1);
        return -EINVAL;
    }
    uint64_t seq;
    int rc = push_ctl(self, ITEM_BEGIN, episode, sizeof *episode, &seq);
    self->episode_seq = rc == 0 ? seq : 0;
    if (rc)
        count(&self->episodes_rejected, 1);
    return rc;
}

int logger_end_episode(logger_t *self)
{
    if (!self)
        return -EINVAL;
    self->episode_seq = 0;
    return push_ctl(self, ITEM_END, NULL, 0, NULL);
}

int logger_episode_failed(logger_t *self)
{
    if (!self || !self->episode_seq)
        return 0;
    return atomic_load_explicit(&self->failed_seq, memory_order_acquire) == self->episode_seq;
}

int logger_push_step(logger_t *self, const logger_step_t *step)
{
    if (!self)
        return -EINVAL;
    if (!step || step->n_obs < 0 || step->n_obs > LOGGER_MAX_OBS || step->action_dim < 0 ||
        step->action_dim > LOGGER_MAX_ACTION || step->policy_action_dim < 0 ||
        step->policy_action_dim > LOGGER_MAX_ACTION || step->n_frames < 0 ||
        step->n_frames > LOGGER_MAX_CAMERAS) {
        count(&self->steps_dropped, 1);
        return -EINVAL;
    }
    uint64_t seq;
    ctl_item_t *it = push_claim(self, &self->ctl, &self->steps_dropped, &seq);
    if (it) {
        it->seq = seq;
        it->kind = ITEM_STEP;
        it->u.step = *step;
        /* the writer relies on terminated camera names */
        for (int i = 0; i < step->n_frames; i++)
            it->u.step.frames[i].camera[LOGGER_NAME - 1] = '\0';
    }
    return push_done(self, &self->ctl, it, seq);
}

int logger_push_frame(logger_t *self, const logger_frame_t *frame)
{
    if (!self)
        return -EINVAL;
    if (!frame || !frame->camera || (frame->size > 0 && !frame->data) ||
        strnlen(frame->camera, LOGGER_NAME) == LOGGER_NAME || frame->camera[0] == '\0') {
        count(&self->frames_dropped, 1);
        return -EINVAL;
    }
    if (frame->size > self->cfg.max_frame_bytes) {
        count(&self->frames_dropped, 1);
        return -EMSGSIZE;
    }
    uint64_t seq;
    frame_item_t *it = push_claim(self, &self->frames, &self->frames_dropped, &seq);
    if (it) {
        it->seq = seq;
        memcpy(it->camera, frame->camera, strlen(frame->camera) + 1);
        it->width = frame->width;
        it->height = frame->height;
        it->encoding = frame->encoding;
        it->capture_time_unix_ns = frame->capture_time_unix_ns;
        it->frame_seq = frame->seq;
        it->size = frame->size;
        if (frame->size)
            memcpy((uint8_t *)it + FRAME_DATA_OFFSET, frame->data, frame->size);
    }
    return push_done(self, &self->frames, it, seq);
}

int logger_push_robot_state(logger_t *self, const logger_robot_state_t *state)
{
    if (!self)
        return -EINVAL;
    if (!state || state->n_joints < 0 || state->n_joints > LOGGER_MAX_JOINTS) {
        count(&self->states_dropped, 1);
        return -EINVAL;
    }
    uint64_t seq;
    state_item_t *it = push_claim(self, &self->states, &self->states_dropped, &seq);
    if (it) {
        it->seq = seq;
        it->state = *state;
    }
    return push_done(self, &self->states, it, seq);
}

void logger_get_stats(logger_t *self, logger_stats_t *stats)
{
    if (!stats)
        return;
    memset(stats, 0, sizeof *stats);
    if (!self)
        return;
    stats->episodes_opened = atomic_load(&self->episodes_opened);
    stats->episodes_rejected = atomic_load(&self->episodes_rejected);
    stats->steps_written = atomic_load(&self->steps_written);
    stats->frames_written = atomic_load(&self->frames_written);
    stats->states_written = atomic_load(&self->states_written);
    stats->steps_dropped = atomic_load(&self->steps_dropped);
    stats->frames_dropped = atomic_load(&self->frames_dropped);
    stats->states_dropped = atomic_load(&self->states_dropped);
    stats->write_errors = atomic_load(&self->write_errors);
    stats->bytes_written = atomic_load(&self->bytes_written);
    stats->episodes_failed = atomic_load(&self->episodes_failed);
    stats->files_deleted = atomic_load(&self->files_deleted);
    pthread_mutex_lock(&self->text_lock);
    memcpy(stats->current_path, self->current_path, sizeof stats->current_path);
    memcpy(stats->last_path, self->last_path, sizeof stats->last_path);
    memcpy(stats->last_error, self->last_error, sizeof stats->last_error);
    pthread_mutex_unlock(&self->text_lock);
}

int logger_flush(logger_t *self, int timeout_ms)
{
    if (!self)
        return -EINVAL;
    uint64_t target = atomic_load_explicit(&self->published, memory_order_acquire);
    int64_t deadline = rt_clock_mono_ns() + (int64_t)timeout_ms * 1000000LL;
    while (atomic_load_explicit(&self->done, memory_order_acquire) < target) {
        if (rt_clock_mono_ns() >= deadline)
            return -ETIMEDOUT;
        rt_clock_sleep_ns(1000000);
    }
    return 0;
}

int logger_episode_id(char out[LOGGER_EPISODE_ID], int64_t time_unix_ns, const char *robot,
                      uint32_t counter)
{
    if (!out)
        return -EINVAL;
    out[0] = '\0';
    if (time_unix_ns < 0)
        return -EINVAL;
    time_t secs = (time_t)(time_unix_ns / 1000000000LL);
    struct tm tm;
    char stamp[32];
    if (!gmtime_r(&secs, &tm) ||
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return -EINVAL;
    char name[17];
    size_t n = 0;
    for (const char *p = robot ? robot : ""; *p && n < 16; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        name[n++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') ? c : '_';
    }
    name[n] = '\0';
    int len = snprintf(out, LOGGER_EPISODE_ID, "%s-%s-%04u", stamp, n ? name : "robot", counter);
    return len > 0 && len < LOGGER_EPISODE_ID ? 0 : -EINVAL;
}

int logger_free_bytes(const char *directory, uint64_t *free_bytes)
{
    if (!directory || !free_bytes)
        return -EINVAL;
    struct statvfs sv;
    if (statvfs(directory, &sv) != 0)
        return -errno;
    *free_bytes = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    return 0;
}

int logger_check_free_space(const char *directory, uint64_t min_free_bytes, uint64_t *free_bytes,
                            char *why, size_t whylen)
{
    char dummy[8];
    if (!why || whylen == 0) {
        why = dummy;
        whylen = sizeof dummy;
    }
    why[0] = '\0';
    uint64_t avail = 0;
    if (free_bytes)
        *free_bytes = 0;
    if (min_free_bytes == 0)
        return 0;
    int rc = logger_free_bytes(directory, &avail);
    if (rc != 0) {
        snprintf(why, whylen, "cannot tell the free space of the log directory %s: %s; fix "
                 "[logger] directory", directory ? directory : "(none)", strerror(-rc));
        return rc;
    }
    if (free_bytes)
        *free_bytes = avail;
    if (avail >= min_free_bytes)
        return 0;
    snprintf(why, whylen, "the log directory %s has %.1f MB free, less than [logger] "
             "min_free_mb = %.0f: free disk space (or lower min_free_mb)", directory,
             (double)avail / (1024.0 * 1024.0), (double)min_free_bytes / (1024.0 * 1024.0));
    return -ENOSPC;
}
