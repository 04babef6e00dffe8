#include "pacd_ingest.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libswscale/swscale.h>
#include <turbojpeg.h>
#include <zmq.h>

#include "pacd_proto.h"
#include "pacd_tbuf.h"
#include "pacd_time.h"

typedef struct {
    ingest_frame_t meta[3];
    uint8_t *pixels[3];
    tbuf_t tb;
    size_t bytes;              /* width * height * 3 */
    struct SwsContext *sws;    /* resize = true: area averaging to the configured size */
} camera_slot_t;

typedef struct {
    hal_state_t value[3];
    tbuf_t tb;
} state_slot_t;

typedef struct {
    float reward, discount;
    int is_terminal;
    ingest_task_info_t info;
} reward_t;

struct ingest {
    const config_t *cfg;
    auth_t *auth;
    void *camera_sock, *state_sock;
    void *camera_mon, *state_mon;   /* socket monitors (disconnect events) */
    int n_joints;
    int n_cameras;
    camera_slot_t cameras[CONFIG_MAX_CAMERAS];
    state_slot_t state;
    struct {
        reward_t value[3];
        tbuf_t tb;
    } reward;
    struct {
        float values[3][INGEST_MAX_TELEOP];
        int n[3];
        uint64_t seq[3];
        tbuf_t tb;
    } teleop;
    tjhandle jpeg;
    uint8_t *scratch;          /* a decoded frame of another size, before resizing */
    size_t scratch_bytes;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    _Atomic uint64_t frames_received, frames_malformed, frames_oversized, frames_misshaped;
    _Atomic uint64_t states_received, states_rejected, rewards_received, peers_disconnected;
    _Atomic uint64_t frames_resized, teleop_received;
};

static void count(_Atomic uint64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

static void *open_sub(void *ctx, auth_t *auth, auth_domain_t domain, const char *endpoint,
                      size_t max_bytes, void **mon, const char *monitor_name, char *err,
                      size_t errlen)
{
    void *s = zmq_socket(ctx, ZMQ_SUB);
    if (!s) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int64_t maxmsg = (int64_t)max_bytes;
    int linger = 0, hwm = 16;
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_socket_monitor(s, monitor_name,
                           ZMQ_EVENT_DISCONNECTED | AUTH_HANDSHAKE_EVENTS) == 0) {
        *mon = zmq_socket(ctx, ZMQ_PAIR);
        if (*mon && zmq_connect(*mon, monitor_name) != 0) {
            zmq_close(*mon);
            *mon = NULL;
        }
    }
    if (auth_bind(auth, s, endpoint, domain, 1) != 0) {
        snprintf(err, errlen, "cannot bind %s: %s (is another pacd running? change "
                 "[ingest] in the config)", endpoint, zmq_strerror(zmq_errno()));
        if (*mon) {
            zmq_close(*mon);
            *mon = NULL;
        }
        zmq_close(s);
        return NULL;
    }
    return s;
}

static int camera_index(const ingest_t *self, const char *name)
{
    for (int i = 0; i < self->n_cameras; i++)
        if (!strcmp(self->cfg->cameras[i].name, name))
            return i;
    return -1;
}

/* Make the frame's pixels: RGB8 at the configured size, decoding JPEG and
 * (when the camera has resize = true) area-averaging another size.
 * 0, -EBADMSG (malformed), -EMSGSIZE (oversized), -EINVAL (mis-shaped). */
static int decode_frame(ingest_t *self, const config_camera_t *cc, camera_slot_t *slot,
                        const Pacd__V1__CameraFrame *f, uint8_t *dst)
{
    int same = f->width == (uint32_t)cc->width && f->height == (uint32_t)cc->height;
    if (!same && (!cc->resize || f->width == 0 || f->height == 0 || f->width > 8192 ||
                  f->height > 8192))
        return -EINVAL;
    size_t src_bytes = (size_t)f->width * f->height * 3;
    const uint8_t *src;
    if (f->encoding == PACD__V1__CAMERA_FRAME__ENCODING__RGB8) {
        if (f->data.len > src_bytes)
            return -EMSGSIZE;
        if (f->data.len != src_bytes)
            return -EINVAL;
        if (same) {
            memcpy(dst, f->data.data, src_bytes);
            return 0;
        }
        src = f->data.data;
    } else if (f->encoding == PACD__V1__CAMERA_FRAME__ENCODING__JPEG) {
        /* a JPEG is never larger than its raw pixels plus headers */
        if (f->data.len > src_bytes + 65536)
            return -EMSGSIZE;
        int w = 0, h = 0, subsamp = 0, cs = 0;
        if (!self->jpeg ||
            tjDecompressHeader3(self->jpeg, f->data.data, (unsigned long)f->data.len, &w, &h,
                                &subsamp, &cs) != 0 || w <= 0 || h <= 0)
            return -EBADMSG;
        if ((uint32_t)w != f->width || (uint32_t)h != f->height)
            return -EINVAL;
        uint8_t *out = dst;
        if (!same) {
            if (self->scratch_bytes < src_bytes) {
                uint8_t *n = realloc(self->scratch, src_bytes);
                if (!n)
                    return -EMSGSIZE;
                self->scratch = n;
                self->scratch_bytes = src_bytes;
            }
            out = self->scratch;
        }
        if (tjDecompress2(self->jpeg, f->data.data, (unsigned long)f->data.len, out, w, 0, h,
                          TJPF_RGB, TJFLAG_ACCURATEDCT) != 0)
            return -EBADMSG;
        if (same)
            return 0;
        src = self->scratch;
    } else {
        return -EBADMSG;
    }
    /* area averaging (libswscale SWS_AREA) to the configured size */
    slot->sws = sws_getCachedContext(slot->sws, (int)f->width, (int)f->height, AV_PIX_FMT_RGB24,
                                     cc->width, cc->height, AV_PIX_FMT_RGB24, SWS_AREA, NULL,
                                     NULL, NULL);
    if (!slot->sws)
        return -EINVAL;
    const uint8_t *src_planes[1] = {src};
    int src_stride[1] = {(int)f->width * 3};
    uint8_t *dst_planes[1] = {dst};
    int dst_stride[1] = {cc->width * 3};
    if (sws_scale(slot->sws, src_planes, src_stride, 0, (int)f->height, dst_planes, dst_stride) !=
        cc->height)
        return -EINVAL;
    count(&self->frames_resized);
    return 0;
}

static void handle_camera(ingest_t *self, const char *topic, size_t topic_len,
                          const uint8_t *data, size_t len)
{
    if (topic_len < 8 || memcmp(topic, "camera/", 7)) {
        count(&self->frames_malformed);
        return;
    }
    Pacd__V1__CameraFrame *f = pacd__v1__camera_frame__unpack(NULL, len, data);
    if (!f) {
        count(&self->frames_malformed);
        return;
    }
    if (!f->camera || !f->camera[0]) {
        /* no camera name: protobuf-c accepted bytes that are no CameraFrame */
        count(&self->frames_malformed);
        goto out;
    }
    int idx = camera_index(self, f->camera);
    /* the topic must name the same camera as the message */
    if (idx < 0 || strlen(f->camera) != topic_len - 7 ||
        memcmp(topic + 7, f->camera, topic_len - 7)) {
        count(&self->frames_misshaped);
        goto out;
    }
    const config_camera_t *cc = &self->cfg->cameras[idx];
    camera_slot_t *slot = &self->cameras[idx];
    unsigned b = tbuf_back(&slot->tb);
    int rc = decode_frame(self, cc, slot, f, slot->pixels[b]);
    if (rc != 0) {
        count(rc == -EMSGSIZE ? &self->frames_oversized
              : rc == -EBADMSG ? &self->frames_malformed
                               : &self->frames_misshaped);
        goto out;
    }
    ingest_frame_t *m = &slot->meta[b];
    m->pixels = slot->pixels[b];
    m->width = (uint32_t)cc->width;
    m->height = (uint32_t)cc->height;
    m->seq = f->seq;
    m->capture_time_unix_ns = f->capture_time_unix_ns;
    m->arrival_mono_ns = time_mono_ns();
    m->encoding = f->encoding;
    tbuf_publish(&slot->tb);
    count(&self->frames_received);
out:
    pacd__v1__camera_frame__free_unpacked(f, NULL);
}

static int all_finite(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static void handle_state(ingest_t *self, const char *topic, size_t topic_len,
                         const uint8_t *data, size_t len)
{
    if (topic_len == 6 && !memcmp(topic, "reward", 6)) {
        Pacd__V1__Reward *r = pacd__v1__reward__unpack(NULL, len, data);
        if (!r || !isfinite(r->reward) || !isfinite(r->discount)) {
            count(&self->states_rejected);
        } else {
            unsigned b = tbuf_back(&self->reward.tb);
            reward_t *v = &self->reward.value[b];
            v->reward = r->reward;
            v->discount = r->discount;
            v->is_terminal = r->is_terminal;
            v->info.n = 0;
            for (size_t i = 0; i < r->n_info && v->info.n < INGEST_MAX_TASK_INFO; i++) {
                const Pacd__V1__TaskValue *t = r->info[i];
                if (!t->name || !t->name[0] || !isfinite(t->value))
                    continue;
                snprintf(v->info.name[v->info.n], INGEST_TASK_NAME, "%s", t->name);
                v->info.value[v->info.n++] = t->value;
            }
            tbuf_publish(&self->reward.tb);
            count(&self->rewards_received);
        }
        if (r)
            pacd__v1__reward__free_unpacked(r, NULL);
        return;
    }
    if (topic_len == 13 && !memcmp(topic, "teleop_action", 13)) {
        Pacd__V1__Action *a = pacd__v1__action__unpack(NULL, len, data);
        int ok = a && a->n_values > 0 && a->n_values <= INGEST_MAX_TELEOP;
        for (size_t i = 0; ok && i < a->n_values; i++)
            ok = isfinite(a->values[i]);
        if (!ok) {
            count(&self->states_rejected);
        } else {
            unsigned b = tbuf_back(&self->teleop.tb);
            memcpy(self->teleop.values[b], a->values, sizeof(float) * a->n_values);
            self->teleop.n[b] = (int)a->n_values;
            self->teleop.seq[b] = a->seq;
            tbuf_publish(&self->teleop.tb);
            count(&self->teleop_received);
        }
        if (a)
            pacd__v1__action__free_unpacked(a, NULL);
        return;
    }
    if (topic_len != 11 || memcmp(topic, "robot_state", 11)) {
        count(&self->states_rejected);
        return;
    }
    Pacd__V1__RobotState *s = pacd__v1__robot_state__unpack(NULL, len, data);
    if (!s) {
        count(&self->states_rejected);
        return;
    }
    if (s->n_joint_positions != (size_t)self->n_joints ||
        s->n_joint_velocities != (size_t)self->n_joints ||
        !all_finite(s->joint_positions, s->n_joint_positions) ||
        !all_finite(s->joint_velocities, s->n_joint_velocities)) {
        count(&self->states_rejected);
        pacd__v1__robot_state__free_unpacked(s, NULL);
        return;
    }
    unsigned b = tbuf_back(&self->state.tb);
    hal_state_t *h = &self->state.value[b];
    memset(h, 0, sizeof *h);
    h->n_joints = self->n_joints;
    memcpy(h->q, s->joint_positions, sizeof(double) * (size_t)self->n_joints);
    memcpy(h->dq, s->joint_velocities, sizeof(double) * (size_t)self->n_joints);
    h->gripper_position = s->gripper_position;
    h->gripper_velocity = s->gripper_velocity;
    h->grasp = s->grasp;
    if (s->end_effector) {
        const Pacd__V1__Pose *p = s->end_effector;
        double pose[7] = {p->x, p->y, p->z, p->qw, p->qx, p->qy, p->qz};
        memcpy(h->ee_pose, pose, sizeof pose);
    }
    h->time_unix_ns = s->time_unix_ns;
    h->time_mono_ns = time_mono_ns();
    h->seq = s->seq;
    tbuf_publish(&self->state.tb);
    count(&self->states_received);
    pacd__v1__robot_state__free_unpacked(s, NULL);
}

/* Receive one multipart message; dispatch if it is [topic, payload]. */
static void drain(ingest_t *self, void *sock, int is_camera)
{
    for (int budget = 0; budget < 64; budget++) {
        zmq_msg_t parts[2];
        zmq_msg_init(&parts[0]);
        zmq_msg_init(&parts[1]);
        int n = 0, more = 1, bad = 0;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_t *m = n < 2 ? &parts[n] : &tmp;
            if (n >= 2)
                zmq_msg_init(&tmp);
            if (zmq_msg_recv(m, sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                if (n >= 2)
                    zmq_msg_close(&tmp);
                if (n == 0) {
                    zmq_msg_close(&parts[0]);
                    zmq_msg_close(&parts[1]);
                    return; /* EAGAIN: nothing more */
                }
                bad = 1;
                break;
            }
            more = zmq_msg_more(m);
            if (n >= 2) {
                zmq_msg_close(&tmp);
                bad = 1;
            }
            n++;
        }
        if (bad || n != 2) {
            count(is_camera ? &self->frames_malformed : &self->states_rejected);
        } else if (is_camera) {
            handle_camera(self, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                          zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]));
        } else {
            handle_state(self, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                         zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]));
        }
        zmq_msg_close(&parts[0]);
        zmq_msg_close(&parts[1]);
    }
}

static void drain_monitor(ingest_t *self, void *mon)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        /* first frame: 16-bit event + 32-bit value; second: endpoint */
        uint16_t event = 0;
        if (zmq_msg_size(&m) >= 6)
            memcpy(&event, zmq_msg_data(&m), sizeof event);
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, mon, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (event == ZMQ_EVENT_DISCONNECTED)
            count(&self->peers_disconnected);
        else
            auth_handshake_event(self->auth, mon == self->camera_mon ? AUTH_DOMAIN_CAMERA
                                                                     : AUTH_DOMAIN_STATE, event);
    }
}

static void *ingest_thread(void *arg)
{
    ingest_t *self = arg;
    zmq_pollitem_t items[4];
    void *socks[4];
    int kinds[4]; /* 0 camera, 1 state, 2 monitor */
    int n = 0;
    if (self->camera_sock) {
        items[n] = (zmq_pollitem_t){self->camera_sock, 0, ZMQ_POLLIN, 0};
        socks[n] = self->camera_sock;
        kinds[n++] = 0;
    }
    if (self->state_sock) {
        items[n] = (zmq_pollitem_t){self->state_sock, 0, ZMQ_POLLIN, 0};
        socks[n] = self->state_sock;
        kinds[n++] = 1;
    }
    if (self->camera_mon) {
        items[n] = (zmq_pollitem_t){self->camera_mon, 0, ZMQ_POLLIN, 0};
        socks[n] = self->camera_mon;
        kinds[n++] = 2;
    }
    if (self->state_mon) {
        items[n] = (zmq_pollitem_t){self->state_mon, 0, ZMQ_POLLIN, 0};
        socks[n] = self->state_mon;
        kinds[n++] = 2;
    }
    while (!atomic_load(&self->stop)) {
        int rc = zmq_poll(items, n, 100);
        if (rc < 0) {
            if (zmq_errno() == ETERM)
                break;
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            if (kinds[i] == 2)
                drain_monitor(self, socks[i]);
            else
                drain(self, socks[i], kinds[i] == 0);
        }
    }
    return NULL;
}

ingest_t *ingest_new(const config_t *cfg, void *zmq_ctx, auth_t *auth, int n_joints, char *err,
                     size_t errlen)
{
    ingest_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    self->auth = auth;
    self->n_joints = n_joints;
    self->n_cameras = cfg->n_cameras;
    tbuf_init(&self->state.tb);
    tbuf_init(&self->reward.tb);
    tbuf_init(&self->teleop.tb);
    for (int i = 0; i < cfg->n_cameras; i++) {
        camera_slot_t *c = &self->cameras[i];
        tbuf_init(&c->tb);
        c->bytes = (size_t)cfg->cameras[i].width * (size_t)cfg->cameras[i].height * 3;
        for (int k = 0; k < 3; k++) {
            c->pixels[k] = calloc(1, c->bytes);
            if (!c->pixels[k]) {
                snprintf(err, errlen, "out of memory for camera '%s' buffers",
                         cfg->cameras[i].name);
                ingest_destroy(&self);
                return NULL;
            }
        }
    }
    self->jpeg = tjInitDecompress();
    char mon[64];
    if (cfg->camera_bind[0]) {
        snprintf(mon, sizeof mon, "inproc://pacd-ingest-camera-mon-%p", (void *)self);
        self->camera_sock = open_sub(zmq_ctx, auth, AUTH_DOMAIN_CAMERA, cfg->camera_bind,
                                     cfg->max_message_bytes, &self->camera_mon, mon, err, errlen);
        if (!self->camera_sock) {
            ingest_destroy(&self);
            return NULL;
        }
    }
    if (cfg->state_bind[0]) {
        snprintf(mon, sizeof mon, "inproc://pacd-ingest-state-mon-%p", (void *)self);
        self->state_sock = open_sub(zmq_ctx, auth, AUTH_DOMAIN_STATE, cfg->state_bind,
                                    cfg->max_message_bytes, &self->state_mon, mon, err, errlen);
        if (!self->state_sock) {
            ingest_destroy(&self);
            return NULL;
        }
    }
    if (pthread_create(&self->thread, NULL, ingest_thread, self) != 0) {
        snprintf(err, errlen, "cannot start the ingest thread");
        ingest_destroy(&self);
        return NULL;
    }
    self->thread_started = 1;
    return self;
}

void ingest_destroy(ingest_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ingest_t *self = *self_p;
    if (self->thread_started) {
        atomic_store(&self->stop, 1);
        pthread_join(self->thread, NULL);
    }
    if (self->camera_sock) {
        zmq_socket_monitor(self->camera_sock, NULL, 0);
        zmq_close(self->camera_sock);
    }
    if (self->state_sock) {
        zmq_socket_monitor(self->state_sock, NULL, 0);
        zmq_close(self->state_sock);
    }
    if (self->camera_mon)
        zmq_close(self->camera_mon);
    if (self->state_mon)
        zmq_close(self->state_mon);
    for (int i = 0; i < CONFIG_MAX_CAMERAS; i++) {
        for (int k = 0; k < 3; k++)
            free(self->cameras[i].pixels[k]);
        sws_freeContext(self->cameras[i].sws);
    }
    free(self->scratch);
    if (self->jpeg)
        tjDestroy(self->jpeg);
    free(self);
    *self_p = NULL;
}

const ingest_frame_t *ingest_latest_frame(ingest_t *self, int index)
{
    if (!self || index < 0 || index >= self->n_cameras)
        return NULL;
    camera_slot_t *c = &self->cameras[index];
    int i = tbuf_acquire(&c->tb);
    return i < 0 ? NULL : &c->meta[i];
}

int ingest_latest_state(ingest_t *self, hal_state_t *state)
{
    int i = tbuf_acquire(&self->state.tb);
    if (i < 0)
        return 0;
    *state = self->state.value[i];
    return 1;
}

int ingest_take_state(ingest_t *self, hal_state_t *state)
{
    int is_new;
    int i = tbuf_acquire_new(&self->state.tb, &is_new);
    if (i < 0 || !is_new)
        return 0;
    *state = self->state.value[i];
    return 1;
}

int ingest_latest_teleop(ingest_t *self, float *values, int max, uint64_t *seq)
{
    int i = tbuf_acquire(&self->teleop.tb);
    if (i < 0)
        return 0;
    int n = self->teleop.n[i] < max ? self->teleop.n[i] : max;
    memcpy(values, self->teleop.values[i], sizeof(float) * (size_t)n);
    *seq = self->teleop.seq[i];
    return n;
}

int ingest_take_reward(ingest_t *self, float *reward, float *discount, int *is_terminal,
                       ingest_task_info_t *info)
{
    int is_new;
    int i = tbuf_acquire_new(&self->reward.tb, &is_new);
    if (i < 0 || !is_new)
        return 0;
    *reward = self->reward.value[i].reward;
    *discount = self->reward.value[i].discount;
    *is_terminal = self->reward.value[i].is_terminal;
    if (info)
        *info = self->reward.value[i].info;
    return 1;
}

void ingest_get_stats(ingest_t *self, ingest_stats_t *s)
{
    s->frames_received = atomic_load(&self->frames_received);
    s->frames_malformed = atomic_load(&self->frames_malformed);
    s->frames_oversized = atomic_load(&self->frames_oversized);
    s->frames_misshaped = atomic_load(&self->frames_misshaped);
    s->states_received = atomic_load(&self->states_received);
    s->states_rejected = atomic_load(&self->states_rejected);
    s->rewards_received = atomic_load(&self->rewards_received);
    s->peers_disconnected = atomic_load(&self->peers_disconnected);
    s->frames_resized = atomic_load(&self->frames_resized);
    s->teleop_actions_received = atomic_load(&self->teleop_received);
}
