#include "pacd_ingest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "pacd_proto.h"
#include "pacd_validate.h"
#include "rt_clock.h"
#include "rt_tbuf.h"

typedef struct {
    ingest_frame_t meta[3];
    uint8_t *pixels[3];
    rt_tbuf_t tb;
    size_t bytes;              /* width * height * 3 */
    /* the live view's tap (ingest_viewer_frame): a second triple buffer, one
     * non-RT reader; filled at most every viewer_interval_ns while wanted */
    ingest_frame_t viewer_meta[3];
    uint8_t *viewer_pixels[3];
    rt_tbuf_t viewer_tb;
    atomic_int viewer_wanted;
    int64_t viewer_last_ns;
} camera_slot_t;

typedef struct {
    hal_state_t value[3];
    rt_tbuf_t tb;
} state_slot_t;


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
        validate_reward_t value[3];
        rt_tbuf_t tb;
    } reward;
    struct {
        ingest_teleop_t value[3];
        rt_tbuf_t tb;
    } teleop;
    frame_decoder_t *decoder;  /* JPEG, resizing; owned by the ingest thread */
    int64_t viewer_interval_ns;   /* > 0: the camera tap is on ([foxglove]) */
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    _Atomic uint64_t frames_received, frames_malformed, frames_oversized, frames_misshaped;
    _Atomic uint64_t states_received, states_rejected, rewards_received, peers_disconnected;
    _Atomic uint64_t frames_resized, teleop_received;
    _Atomic uint64_t frames_too_large, names_refused, values_rejected, rewards_rejected;
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

/* Count a refused message by its validate_* code (pacd_validate.h). */
static void count_frame_error(ingest_t *self, int rc)
{
    switch (rc) {
    case -EILSEQ:
        count(&self->names_refused);
        count(&self->frames_malformed);
        break;
    case -ERANGE:
        count(&self->values_rejected);
        count(&self->frames_misshaped);
        break;
    case -E2BIG:
        count(&self->frames_too_large);
        count(&self->frames_oversized);
        break;
    case -EMSGSIZE: count(&self->frames_oversized); break;
    case -EINVAL: count(&self->frames_misshaped); break;
    default: count(&self->frames_malformed); break;
    }
}

static void count_state_error(ingest_t *self, int rc)
{
    if (rc == -EILSEQ)
        count(&self->names_refused);
    else if (rc == -ERANGE)
        count(&self->values_rejected);
    count(&self->states_rejected);
}

static void handle_camera(ingest_t *self, const char *topic, size_t topic_len,
                          const uint8_t *data, size_t len)
{
    uint8_t *dst[CONFIG_MAX_CAMERAS] = {0};
    for (int i = 0; i < self->n_cameras; i++)
        dst[i] = self->cameras[i].pixels[rt_tbuf_back(&self->cameras[i].tb)];
    frame_info_t fi;
    int rc = frame_decode_message(self->decoder, self->cfg->cameras, self->n_cameras,
                                  (const uint8_t *)topic, topic_len, data, len, dst, &fi, NULL);
    if (rc != 0) {
        count_frame_error(self, rc);
        return;
    }
    const config_camera_t *cc = &self->cfg->cameras[fi.camera];
    camera_slot_t *slot = &self->cameras[fi.camera];
    unsigned b = rt_tbuf_back(&slot->tb);
    ingest_frame_t *m = &slot->meta[b];
    m->pixels = slot->pixels[b];
    m->width = (uint32_t)cc->width;
    m->height = (uint32_t)cc->height;
    m->seq = fi.seq;
    m->capture_time_unix_ns = fi.capture_time_unix_ns;
    m->arrival_mono_ns = rt_clock_mono_ns();
    m->encoding = fi.encoding;
    rt_tbuf_publish(&slot->tb);
    if (self->viewer_interval_ns > 0 &&
        atomic_load_explicit(&slot->viewer_wanted, memory_order_relaxed) &&
        m->arrival_mono_ns - slot->viewer_last_ns >= self->viewer_interval_ns) {
        /* the live view's copy, at its image rate: the loop's buffers stay its own */
        unsigned v = rt_tbuf_back(&slot->viewer_tb);
        memcpy(slot->viewer_pixels[v], m->pixels, slot->bytes);
        slot->viewer_meta[v] = *m;
        slot->viewer_meta[v].pixels = slot->viewer_pixels[v];
        rt_tbuf_publish(&slot->viewer_tb);
        slot->viewer_last_ns = m->arrival_mono_ns;
    }
    if (fi.resized)
        count(&self->frames_resized);
    count(&self->frames_received);
}

static void handle_state(ingest_t *self, const char *topic, size_t topic_len,
                         const uint8_t *data, size_t len)
{
    int rc;
    if (topic_len == 6 && !memcmp(topic, "reward", 6)) {
        unsigned b = rt_tbuf_back(&self->reward.tb);
        rc = validate_reward(data, len, &self->reward.value[b], NULL);
        if (rc) {
            count(&self->rewards_rejected);
            count_state_error(self, rc);
            return;
        }
        rt_tbuf_publish(&self->reward.tb);
        count(&self->rewards_received);
        return;
    }
    if (topic_len == 13 && !memcmp(topic, "teleop_action", 13)) {
        ingest_teleop_t *a = &self->teleop.value[rt_tbuf_back(&self->teleop.tb)];
        rc = validate_teleop_action(data, len, a->values, INGEST_MAX_TELEOP, &a->n, &a->seq,
                                    &a->space, NULL);
        if (rc) {
            count_state_error(self, rc);
            return;
        }
        a->arrival_mono_ns = rt_clock_mono_ns();
        rt_tbuf_publish(&self->teleop.tb);
        count(&self->teleop_received);
        return;
    }
    if (topic_len != 11 || memcmp(topic, "robot_state", 11)) {
        count(&self->states_rejected);
        return;
    }
    unsigned b = rt_tbuf_back(&self->state.tb);
    hal_state_t *h = &self->state.value[b];
    rc = validate_robot_state(data, len, self->n_joints, h, NULL);
    if (rc) {
        count_state_error(self, rc);
        return;
    }
    h->time_mono_ns = rt_clock_mono_ns();
    rt_tbuf_publish(&self->state.tb);
    count(&self->states_received);
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
    int event;
    while ((event = auth_monitor_event(mon)) >= 0) {
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
    rt_tbuf_init(&self->state.tb);
    rt_tbuf_init(&self->reward.tb);
    rt_tbuf_init(&self->teleop.tb);
    for (int i = 0; i < cfg->n_cameras; i++) {
        camera_slot_t *c = &self->cameras[i];
        rt_tbuf_init(&c->tb);
        rt_tbuf_init(&c->viewer_tb);
        c->bytes = (size_t)cfg->cameras[i].width * (size_t)cfg->cameras[i].height * 3;
        int viewer = cfg->foxglove_enabled && cfg->foxglove_image_rate_hz > 0;
        for (int k = 0; k < 3; k++) {
            c->pixels[k] = calloc(1, c->bytes);
            if (viewer)
                c->viewer_pixels[k] = calloc(1, c->bytes);
            if (!c->pixels[k] || (viewer && !c->viewer_pixels[k])) {
                snprintf(err, errlen, "out of memory for camera '%s' buffers",
                         cfg->cameras[i].name);
                ingest_destroy(&self);
                return NULL;
            }
        }
    }
    if (cfg->foxglove_enabled && cfg->foxglove_image_rate_hz > 0)
        self->viewer_interval_ns = (int64_t)(1e9 / cfg->foxglove_image_rate_hz);
    int any_resize = 0;
    for (int i = 0; i < cfg->n_cameras; i++)
        any_resize |= cfg->cameras[i].resize;
    self->decoder = frame_decoder_new(cfg->max_frame_pixels, any_resize);
    if (!self->decoder) {
        snprintf(err, errlen, "out of memory for the frame decoder ([ingest] max_frame_pixels "
                 "= %zu)", cfg->max_frame_pixels);
        ingest_destroy(&self);
        return NULL;
    }
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
        for (int k = 0; k < 3; k++) {
            free(self->cameras[i].pixels[k]);
            free(self->cameras[i].viewer_pixels[k]);
        }
    }
    frame_decoder_destroy(&self->decoder);
    free(self);
    *self_p = NULL;
}

const ingest_frame_t *ingest_latest_frame(ingest_t *self, int index)
{
    if (!self || index < 0 || index >= self->n_cameras)
        return NULL;
    camera_slot_t *c = &self->cameras[index];
    int i = rt_tbuf_acquire(&c->tb);
    return i < 0 ? NULL : &c->meta[i];
}

int ingest_latest_state(ingest_t *self, hal_state_t *state)
{
    int i = rt_tbuf_acquire(&self->state.tb);
    if (i < 0)
        return 0;
    *state = self->state.value[i];
    return 1;
}

int ingest_take_state(ingest_t *self, hal_state_t *state)
{
    int is_new;
    int i = rt_tbuf_acquire_new(&self->state.tb, &is_new);
    if (i < 0 || !is_new)
        return 0;
    *state = self->state.value[i];
    return 1;
}

int ingest_latest_teleop(ingest_t *self, ingest_teleop_t *out)
{
    int i = rt_tbuf_acquire(&self->teleop.tb);
    if (i < 0) {
        out->n = 0;
        return 0;
    }
    *out = self->teleop.value[i];
    return out->n;
}

int ingest_take_reward(ingest_t *self, float *reward, float *discount, int *is_terminal,
                       ingest_task_info_t *info)
{
    int is_new;
    int i = rt_tbuf_acquire_new(&self->reward.tb, &is_new);
    if (i < 0 || !is_new)
        return 0;
    *reward = self->reward.value[i].reward;
    *discount = self->reward.value[i].discount;
    *is_terminal = self->reward.value[i].is_terminal;
    if (info)
        *info = self->reward.value[i].info;
    return 1;
}

void ingest_viewer_want(ingest_t *self, int index, int want)
{
    if (self && index >= 0 && index < self->n_cameras)
        atomic_store_explicit(&self->cameras[index].viewer_wanted, want, memory_order_relaxed);
}

const ingest_frame_t *ingest_viewer_frame(ingest_t *self, int index)
{
    if (!self || self->viewer_interval_ns <= 0 || index < 0 || index >= self->n_cameras)
        return NULL;
    camera_slot_t *c = &self->cameras[index];
    int is_new;
    int i = rt_tbuf_acquire_new(&c->viewer_tb, &is_new);
    return i < 0 || !is_new ? NULL : &c->viewer_meta[i];
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
    s->frames_too_large = atomic_load(&self->frames_too_large);
    s->names_refused = atomic_load(&self->names_refused);
    s->values_rejected = atomic_load(&self->values_rejected);
    s->rewards_rejected = atomic_load(&self->rewards_rejected);
}
