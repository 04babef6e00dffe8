#include "pacd_foxglove.h"

#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <turbojpeg.h>

#include "pacd_journal.h"
#include "pacd_proto.h"
#include "rt_clock.h"

#define FG_MAX_RX (64 * 1024)   /* largest client message (JSON text) */
#define FG_MAX_SUBS 64          /* subscriptions per client */
#define FG_HEADER 13            /* opcode, subscription id u32, log time u64 */

/* Channel ids (1..): the telemetry's parts, then one per camera. */
enum {
    CH_TELEMETRY = 1,
    CH_ROBOT_STATE,
    CH_ACTION,
    CH_POLICY_ACTION,
    CH_TELEOP_ACTION,
    CH_REWARD,
    CH_Q_VALUE,
    CH_CAMERA0,
};
#define FG_MAX_CHANNELS (CH_CAMERA0 + CONFIG_MAX_CAMERAS)

static const struct {
    const char *topic, *schema;
} fixed_channels[CH_CAMERA0] = {
    [CH_TELEMETRY] = {"/pacd/telemetry", "pacd.v1.Telemetry"},
    [CH_ROBOT_STATE] = {"/pacd/robot_state", "pacd.v1.RobotState"},
    [CH_ACTION] = {"/pacd/action", "pacd.v1.Action"},
    [CH_POLICY_ACTION] = {"/pacd/policy_action", "pacd.v1.Action"},
    [CH_TELEOP_ACTION] = {"/pacd/teleop_action", "pacd.v1.Action"},
    [CH_REWARD] = {"/pacd/reward", "pacd.v1.Reward"},
    [CH_Q_VALUE] = {"/pacd/q_value", "pacd.v1.TaskValue"},
};

/* One queued WebSocket message; data has LWS_PRE bytes of room in front. */
typedef struct fg_msg {
    struct fg_msg *next;
    size_t len;
    int binary;
    int limited;              /* counted in the client's queue (all but the greeting) */
    unsigned char data[];
} fg_msg_t;

/* One connection (libwebsockets' per-session data, zeroed by it). */
typedef struct client {
    struct client *next;
    struct lws *wsi;
    fg_msg_t *head, *tail;
    size_t queued;            /* bytes queued, but the greeting's */
    int n_subs;
    uint32_t sub_id[FG_MAX_SUBS];
    int sub_channel[FG_MAX_SUBS];
    unsigned char *rx;        /* a fragmented text message being assembled */
    size_t rx_len;
    int dropping;             /* being disconnected: send and read nothing more */
    char peer[64];
} client_t;

struct foxglove {
    const config_t *cfg;
    ingest_t *ingest;
    struct lws_context *ctx;
    pthread_t thread;
    int started;
    atomic_int stop;
    /* service thread -> server thread: the newest packed Telemetry */
    pthread_mutex_t lock;
    uint8_t *pending;
    size_t pending_len, pending_cap;
    int pending_new;
    uint8_t *work;            /* server thread: the one being sent */
    size_t work_len, work_cap;
    int64_t last_telemetry_ns;  /* when the last one went out (CLOCK_MONOTONIC) */
    int64_t telemetry_min_ns;   /* half the telemetry period: the simulated clock's
                                   telemetry every tick is thinned to about its rate */
    /* server thread only */
    client_t *clients;
    int n_clients;
    int n_channels;           /* CH_CAMERA0 - 1 + cameras */
    char *server_info, *advertise;
    tjhandle tj;
    unsigned char *jpeg;      /* tjBufSize of the largest camera */
    unsigned long jpeg_cap;
    uint8_t *image;           /* an encoded image message */
    size_t image_cap;
    lws_sorted_usec_list_t image_sul;
    lws_usec_t image_poll_us;
    _Atomic uint64_t accepted, refused, dropped_slow, dropped_bad, sent;
    atomic_int connected;
};

/* ---- queueing ---- */

static void count(_Atomic uint64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

/* Disconnect c from outside its own callback (libwebsockets closes it on its
 * next turn); its queue goes at once. */
static void drop_client(foxglove_t *self, client_t *c, _Atomic uint64_t *counter,
                        const char *why)
{
    if (c->dropping)
        return;
    c->dropping = 1;
    count(counter);
    journal_printf(LOG_WARNING, "pacd: foxglove: viewer %s disconnected: %s\n", c->peer, why);
    for (fg_msg_t *m = c->head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    c->head = c->tail = NULL;
    c->queued = 0;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    (void)self;
}

/* A message with room for LWS_PRE in front of len bytes. */
static fg_msg_t *msg_new(size_t len, int binary)
{
    fg_msg_t *m = malloc(sizeof *m + LWS_PRE + len);
    if (m) {
        m->next = NULL;
        m->len = len;
        m->binary = binary;
    }
    return m;
}

/* Queue m to c (taking it). A message beyond the client's queue limit drops
 * the client: it does not read. `limited` = 0 only for the greeting
 * (serverInfo, advertise), which is sent whatever the limit. */
static void enqueue(foxglove_t *self, client_t *c, fg_msg_t *m, int limited)
{
    if (c->dropping) {
        free(m);
        return;
    }
    if (limited && c->queued + m->len > self->cfg->foxglove_send_queue_bytes) {
        free(m);
        char why[160];
        snprintf(why, sizeof why, "its send queue passed [foxglove] send_queue_kb = %zu (it "
                 "does not read fast enough)", self->cfg->foxglove_send_queue_bytes / 1024);
        drop_client(self, c, &self->dropped_slow, why);
        return;
    }
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    m->limited = limited;
    if (limited)
        c->queued += m->len;
    lws_callback_on_writable(c->wsi);
}

static void enqueue_text(foxglove_t *self, client_t *c, const char *text, int limited)
{
    size_t n = strlen(text);
    fg_msg_t *m = msg_new(n, 0);
    if (!m)
        return;
    memcpy(m->data + LWS_PRE, text, n);
    enqueue(self, c, m, limited);
}

/* {"op":"status","level":L,"message":...} to c. */
static void send_status(foxglove_t *self, client_t *c, int level, const char *message)
{
    json_t *j = json_pack("{s:s, s:i, s:s}", "op", "status", "level", level, "message", message);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        enqueue_text(self, c, s, 1);
    free(s);
    json_decref(j);
}

static int subscribed(const client_t *c, int channel)
{
    for (int i = 0; i < c->n_subs; i++)
        if (c->sub_channel[i] == channel)
            return 1;
    return 0;
}

static int anyone_subscribed(const foxglove_t *self, int channel)
{
    for (const client_t *c = self->clients; c; c = c->next)
        if (!c->dropping && subscribed(c, channel))
            return 1;
    return 0;
}

/* Message data (opcode 0x01) of `channel` to every subscription of it. */
static void publish(foxglove_t *self, int channel, uint64_t log_time_ns, const uint8_t *payload,
                    size_t len)
{
    for (client_t *c = self->clients; c; c = c->next) {
        if (c->dropping)
            continue;
        for (int i = 0; i < c->n_subs; i++) {
            if (c->sub_channel[i] != channel)
                continue;
            fg_msg_t *m = msg_new(FG_HEADER + len, 1);
            if (!m)
                return;
            unsigned char *p = m->data + LWS_PRE;
            p[0] = 0x01;
            for (int k = 0; k < 4; k++)
                p[1 + k] = (unsigned char)(c->sub_id[i] >> (8 * k));
            for (int k = 0; k < 8; k++)
                p[5 + k] = (unsigned char)(log_time_ns >> (8 * k));
            memcpy(p + FG_HEADER, payload, len);
            count(&self->sent);
            enqueue(self, c, m, 1);
            if (c->dropping)
                break;
        }
    }
}

/* The camera tap runs only while someone watches that camera. */
static void update_camera_wants(foxglove_t *self)
{
    for (int i = 0; i < self->cfg->n_cameras; i++)
        ingest_viewer_want(self->ingest, i, anyone_subscribed(self, CH_CAMERA0 + i));
}

/* ---- the channels' payloads ---- */

/* Pack a protobuf-c message with a scratch buffer and publish it. */
static void publish_packed(foxglove_t *self, int channel, uint64_t log_time,
                           const ProtobufCMessage *msg)
{
    if (!anyone_subscribed(self, channel))
        return;
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return;
    protobuf_c_message_pack(msg, buf);
    publish(self, channel, log_time, buf, n);
    free(buf);
}

static void publish_action(foxglove_t *self, int channel, const Pacd__V1__Telemetry *t,
                           Pacd__V1__ActionSpace space, size_t n, float *values)
{
    Pacd__V1__Action a;
    pacd__v1__action__init(&a);
    a.space = space;
    a.n_values = n;
    a.values = values;
    a.time_unix_ns = t->time_unix_ns;
    a.seq = t->tick_count;
    publish_packed(self, channel, (uint64_t)t->time_unix_ns, &a.base);
}

/* The newest Telemetry the service handed over, cut into the channels. */
static void take_telemetry(foxglove_t *self)
{
    pthread_mutex_lock(&self->lock);
    if (!self->pending_new) {
        pthread_mutex_unlock(&self->lock);
        return;
    }
    uint8_t *b = self->work;
    size_t cap = self->work_cap;
    self->work = self->pending;
    self->work_cap = self->pending_cap;
    self->work_len = self->pending_len;
    self->pending = b;
    self->pending_cap = cap;
    self->pending_new = 0;
    pthread_mutex_unlock(&self->lock);
    if (!self->clients)
        return;
    int64_t now = rt_clock_mono_ns();
    if (now - self->last_telemetry_ns < self->telemetry_min_ns)
        return;
    self->last_telemetry_ns = now;
    Pacd__V1__Telemetry *t = pacd__v1__telemetry__unpack(NULL, self->work_len, self->work);
    if (!t)
        return;
    uint64_t log_time = (uint64_t)t->time_unix_ns;
    publish(self, CH_TELEMETRY, log_time, self->work, self->work_len);
    if (t->robot_state)
        publish_packed(self, CH_ROBOT_STATE, log_time, &t->robot_state->base);
    publish_action(self, CH_ACTION, t, t->action_space, t->n_last_action, t->last_action);
    if (t->has_step) {
        publish_action(self, CH_POLICY_ACTION, t, PACD__V1__ACTION_SPACE__ACTION_SPACE_UNSPECIFIED,
                       t->n_step_policy_action, t->step_policy_action);
        if (t->n_step_teleop_action)
            publish_action(self, CH_TELEOP_ACTION, t,
                           PACD__V1__ACTION_SPACE__ACTION_SPACE_UNSPECIFIED,
                           t->n_step_teleop_action, t->step_teleop_action);
        Pacd__V1__Reward r;
        pacd__v1__reward__init(&r);
        r.reward = t->step_reward;
        r.discount = t->step_discount;
        r.time_unix_ns = t->time_unix_ns;
        r.n_info = t->n_task_info;
        r.info = t->task_info;
        publish_packed(self, CH_REWARD, log_time, &r.base);
    }
    if (t->has_q_value) {
        Pacd__V1__TaskValue q;
        pacd__v1__task_value__init(&q);
        q.name = "q_value";
        q.value = t->q_value;
        publish_packed(self, CH_Q_VALUE, log_time, &q.base);
    }
    pacd__v1__telemetry__free_unpacked(t, NULL);
}

/* Protobuf wire helpers for the two Foxglove image messages (encoded by
 * hand: their schema is only advertised, proto/foxglove_image.proto). */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t put_len(uint8_t *p, int field, const void *data, size_t len)
{
    size_t n = put_varint(p, (uint64_t)field << 3 | 2);
    n += put_varint(p + n, len);
    memcpy(p + n, data, len);
    return n + len;
}

static size_t put_fixed32(uint8_t *p, int field, uint32_t v)
{
    size_t n = put_varint(p, (uint64_t)field << 3 | 5);
    for (int k = 0; k < 4; k++)
        p[n++] = (uint8_t)(v >> (8 * k));
    return n;
}

/* Encode camera i's frame as foxglove.CompressedImage (JPEG) or RawImage
 * into self->image; its length, or 0. */
static size_t encode_image(foxglove_t *self, int i, const ingest_frame_t *f)
{
    const char *name = self->cfg->cameras[i].name;
    size_t name_len = strlen(name);
    int64_t t_ns = f->capture_time_unix_ns > 0 ? f->capture_time_unix_ns : rt_clock_unix_ns();
    uint8_t ts[24];
    size_t tn = 0;
    tn += put_varint(ts + tn, 1 << 3 | 0);
    tn += put_varint(ts + tn, (uint64_t)(t_ns / 1000000000));
    tn += put_varint(ts + tn, 2 << 3 | 0);
    tn += put_varint(ts + tn, (uint64_t)(t_ns % 1000000000));
    const uint8_t *data = f->pixels;
    size_t data_len = (size_t)f->width * f->height * 3;
    if (self->cfg->foxglove_image_jpeg) {
        unsigned long jn = self->jpeg_cap;
        if (tjCompress2(self->tj, f->pixels, (int)f->width, 0, (int)f->height, TJPF_RGB,
                        &self->jpeg, &jn, TJSAMP_420, self->cfg->foxglove_jpeg_quality,
                        TJFLAG_NOREALLOC) != 0)
            return 0;
        data = self->jpeg;
        data_len = jn;
    }
    size_t need = data_len + name_len + sizeof ts + 64;
    if (need > self->image_cap) {
        uint8_t *b = realloc(self->image, need);
        if (!b)
            return 0;
        self->image = b;
        self->image_cap = need;
    }
    uint8_t *p = self->image;
    size_t n = put_len(p, 1, ts, tn);
    if (self->cfg->foxglove_image_jpeg) {
        n += put_len(p + n, 2, data, data_len);
        n += put_len(p + n, 3, "jpeg", 4);
        n += put_len(p + n, 4, name, name_len);
    } else {
        n += put_fixed32(p + n, 2, f->width);
        n += put_fixed32(p + n, 3, f->height);
        n += put_len(p + n, 4, "rgb8", 4);
        n += put_fixed32(p + n, 5, f->width * 3);
        n += put_len(p + n, 6, data, data_len);
        n += put_len(p + n, 7, name, name_len);
    }
    return n;
}

/* Timer: send the cameras' tapped frames (image_rate_hz) to their viewers. */
static void image_tick(lws_sorted_usec_list_t *sul)
{
    foxglove_t *self = lws_container_of(sul, foxglove_t, image_sul);
    for (int i = 0; i < self->cfg->n_cameras; i++) {
        if (!anyone_subscribed(self, CH_CAMERA0 + i))
            continue;
        const ingest_frame_t *f = ingest_viewer_frame(self->ingest, i);
        if (!f)
            continue;
        size_t n = encode_image(self, i, f);
        int64_t t_ns = f->capture_time_unix_ns > 0 ? f->capture_time_unix_ns
                                                   : rt_clock_unix_ns();
        if (n)
            publish(self, CH_CAMERA0 + i, (uint64_t)t_ns, self->image, n);
    }
    lws_sul_schedule(self->ctx, 0, &self->image_sul, image_tick, self->image_poll_us);
}

/* ---- the protocol ---- */

static int find_sub(const client_t *c, uint32_t id)
{
    for (int i = 0; i < c->n_subs; i++)
        if (c->sub_id[i] == id)
            return i;
    return -1;
}

/* A complete text message from c. 0, or -1: close c (not the protocol). */
static int handle_text(foxglove_t *self, client_t *c, char *why, size_t whylen)
{
    json_error_t e;
    json_t *j = json_loadb((const char *)c->rx, c->rx_len, JSON_REJECT_DUPLICATES, &e);
    const char *op = j && json_is_object(j) ? json_string_value(json_object_get(j, "op")) : NULL;
    if (!op) {
        snprintf(why, whylen, "it sent a text message that is not a JSON object with an \"op\"");
        json_decref(j);
        return -1;
    }
    char msg[160];
    int changed = 0;
    if (!strcmp(op, "subscribe")) {
        json_t *subs = json_object_get(j, "subscriptions");
        size_t k;
        json_t *s;
        if (!json_is_array(subs))
            send_status(self, c, 2, "subscribe: \"subscriptions\" must be an array");
        json_array_foreach(json_is_array(subs) ? subs : NULL, k, s) {
            json_t *jid = json_object_get(s, "id"), *jch = json_object_get(s, "channelId");
            json_int_t id = json_integer_value(jid), ch = json_integer_value(jch);
            if (!json_is_integer(jid) || !json_is_integer(jch) || id < 0 || id > UINT32_MAX) {
                send_status(self, c, 2, "subscribe: each subscription needs an integer \"id\" "
                            "(0..2^32-1) and \"channelId\"");
            } else if (ch < 1 || ch > self->n_channels) {
                snprintf(msg, sizeof msg, "subscribe: no channel %lld", (long long)ch);
                send_status(self, c, 2, msg);
            } else if (find_sub(c, (uint32_t)id) >= 0) {
                snprintf(msg, sizeof msg, "subscribe: subscription id %lld is in use",
                         (long long)id);
                send_status(self, c, 2, msg);
            } else if (c->n_subs >= FG_MAX_SUBS) {
                send_status(self, c, 2, "subscribe: too many subscriptions");
            } else {
                c->sub_id[c->n_subs] = (uint32_t)id;
                c->sub_channel[c->n_subs++] = (int)ch;
                changed = 1;
            }
        }
    } else if (!strcmp(op, "unsubscribe")) {
        json_t *ids = json_object_get(j, "subscriptionIds");
        size_t k;
        json_t *s;
        if (!json_is_array(ids))
            send_status(self, c, 2, "unsubscribe: \"subscriptionIds\" must be an array");
        json_array_foreach(json_is_array(ids) ? ids : NULL, k, s) {
            json_int_t id = json_integer_value(s);
            int i = json_is_integer(s) && id >= 0 && id <= UINT32_MAX ? find_sub(c, (uint32_t)id)
                                                                     : -1;
            if (i < 0) {
                send_status(self, c, 1, "unsubscribe: no such subscription");
                continue;
            }
            c->n_subs--;
            c->sub_id[i] = c->sub_id[c->n_subs];
            c->sub_channel[i] = c->sub_channel[c->n_subs];
            changed = 1;
        }
    } else {
        /* the capabilities pacd announces are none: no publishing, parameters,
         * services or assets */
        char opb[48];
        snprintf(opb, sizeof opb, "%s", op);
        for (char *q = opb; *q; q++)
            if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
                *q = '?';
        snprintf(msg, sizeof msg, "pacd does not support \"%s\" (capabilities: none)", opb);
        send_status(self, c, 1, msg);
    }
    json_decref(j);
    if (changed)
        update_camera_wants(self);
    return 0;
}

static void unlink_client(foxglove_t *self, client_t *c)
{
    for (client_t **p = &self->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            self->n_clients--;
            break;
        }
    for (fg_msg_t *m = c->head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    c->head = c->tail = NULL;
    free(c->rx);
    c->rx = NULL;
    atomic_store(&self->connected, self->n_clients);
    update_camera_wants(self);
}

/* Close c from its own callback with a WebSocket close reason. */
static int reject(foxglove_t *self, client_t *c, const char *why)
{
    if (!c->dropping) {
        c->dropping = 1;
        count(&self->dropped_bad);
        journal_printf(LOG_WARNING, "pacd: foxglove: viewer %s disconnected: %s\n", c->peer, why);
    }
    lws_close_reason(c->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, (unsigned char *)"protocol error",
                     14);
    return -1;
}

static int fg_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    foxglove_t *self = lws_context_user(lws_get_context(wsi));
    client_t *c = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* libwebsockets takes the first protocol for a client that names
         * none; the protocol says a client names one of ours */
        if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) <= 0)
            return 1;
        if (self->n_clients >= self->cfg->foxglove_max_clients) {
            count(&self->refused);
            return 1;
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED: {
        memset(c, 0, sizeof *c);
        c->wsi = wsi;
        if (lws_get_peer_simple(wsi, c->peer, sizeof c->peer) == NULL)
            snprintf(c->peer, sizeof c->peer, "?");
        c->next = self->clients;
        self->clients = c;
        self->n_clients++;
        atomic_store(&self->connected, self->n_clients);
        count(&self->accepted);
        journal_printf(LOG_INFO, "pacd: foxglove: viewer %s connected (%s, %d of at most %d)\n",
                       c->peer, lws_get_protocol(wsi)->name, self->n_clients,
                       self->cfg->foxglove_max_clients);
        enqueue_text(self, c, self->server_info, 0);
        enqueue_text(self, c, self->advertise, 0);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        if (c->dropping)
            return -1;
        if (lws_frame_is_binary(wsi))
            return reject(self, c, "it sent a binary message (pacd takes no client data)");
        if (c->rx_len + len > FG_MAX_RX)
            return reject(self, c, "it sent a message over 64 KiB");
        if (len) {
            unsigned char *b = realloc(c->rx, c->rx_len + len);
            if (!b)
                return reject(self, c, "out of memory for its message");
            c->rx = b;
            memcpy(c->rx + c->rx_len, in, len);
            c->rx_len += len;
        }
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            char why[128];
            int rc = handle_text(self, c, why, sizeof why);
            c->rx_len = 0;
            if (rc != 0)
                return reject(self, c, why);
        }
        return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (c->dropping)
            return -1;
        fg_msg_t *m = c->head;
        if (!m)
            return 0;
        c->head = m->next;
        if (!c->head)
            c->tail = NULL;
        if (m->limited)
            c->queued -= m->len;
        int n = lws_write(wsi, m->data + LWS_PRE, m->len,
                          m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        int short_write = n < (int)m->len;
        free(m);
        if (short_write)
            return -1;
        if (c->head)
            lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLOSED:
        if (c->wsi == wsi) {
            if (!c->dropping)
                journal_printf(LOG_INFO, "pacd: foxglove: viewer %s left\n", c->peer);
            unlink_client(self, c);
        }
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        take_telemetry(self);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* Both names Foxglove's clients ask for; the first also answers plain HTTP
 * (404). */
static const struct lws_protocols protocols[] = {
    {"foxglove.websocket.v1", fg_callback, sizeof(client_t), 4096, 0, NULL, 0},
    {"foxglove.sdk.v1", fg_callback, sizeof(client_t), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
    journal_printf(level == LLL_ERR ? LOG_ERR : LOG_WARNING, "pacd: foxglove: libwebsockets: %s",
                   line);
}

static void *server_thread(void *arg)
{
    foxglove_t *self = arg;
    if (self->image_poll_us > 0)
        lws_sul_schedule(self->ctx, 0, &self->image_sul, image_tick, self->image_poll_us);
    while (!atomic_load(&self->stop))
        if (lws_service(self->ctx, 0) < 0)
            break;
    return NULL;
}

/* serverInfo and advertise, once: the schema is the FileDescriptorSet the
 * episode logs embed (base64). */
static int build_json(foxglove_t *self, const char *robot)
{
    char name[128];
    snprintf(name, sizeof name, "pacd %s (%s)", PACD_VERSION, robot);
    char session[32];
    snprintf(session, sizeof session, "%lld", (long long)rt_clock_unix_ns());
    json_t *info = json_pack("{s:s, s:s, s:[], s:[], s:{s:s, s:s}, s:s}", "op", "serverInfo",
                             "name", name, "capabilities", "supportedEncodings", "metadata",
                             "robot", robot, "pacd_version", PACD_VERSION, "sessionId", session);
    size_t n1 = pacd_proto_descriptor_set_len, n2 = pacd_foxglove_image_descriptor_set_len;
    char *b1 = malloc(n1 * 4 / 3 + 8), *b2 = malloc(n2 * 4 / 3 + 8);
    json_t *chans = json_array();
    int ok = info && b1 && b2 && chans &&
             lws_b64_encode_string((const char *)pacd_proto_descriptor_set, (int)n1, b1,
                                   (int)(n1 * 4 / 3 + 8)) > 0 &&
             lws_b64_encode_string((const char *)pacd_foxglove_image_descriptor_set, (int)n2, b2,
                                   (int)(n2 * 4 / 3 + 8)) > 0;
    for (int ch = 1; ok && ch <= self->n_channels; ch++) {
        char topic[96];
        const char *schema = b1, *schema_name;
        if (ch < CH_CAMERA0) {
            snprintf(topic, sizeof topic, "%s", fixed_channels[ch].topic);
            schema_name = fixed_channels[ch].schema;
        } else {
            snprintf(topic, sizeof topic, "/pacd/camera/%s",
                     self->cfg->cameras[ch - CH_CAMERA0].name);
            schema = b2;
            schema_name = self->cfg->foxglove_image_jpeg ? "foxglove.CompressedImage"
                                                        : "foxglove.RawImage";
        }
        ok = json_array_append_new(chans, json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "id", ch,
                                                    "topic", topic, "encoding", "protobuf",
                                                    "schemaName", schema_name, "schema", schema,
                                                    "schemaEncoding", "protobuf")) == 0;
    }
    json_t *adv = ok ? json_pack("{s:s, s:O}", "op", "advertise", "channels", chans) : NULL;
    if (adv && info) {
        self->server_info = json_dumps(info, JSON_COMPACT);
        self->advertise = json_dumps(adv, JSON_COMPACT);
    }
    json_decref(info);
    json_decref(adv);
    json_decref(chans);
    free(b1);
    free(b2);
    return self->server_info && self->advertise ? 0 : -ENOMEM;
}

foxglove_t *foxglove_new(const config_t *cfg, ingest_t *ingest, const char *robot, char *err,
                         size_t errlen)
{
    foxglove_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = cfg;
    self->ingest = ingest;
    pthread_mutex_init(&self->lock, NULL);
    self->n_channels = CH_CAMERA0 - 1 + cfg->n_cameras;
    self->telemetry_min_ns = (int64_t)(0.5e9 / cfg->telemetry_rate_hz);
    if (cfg->n_cameras && cfg->foxglove_image_rate_hz > 0) {
        self->image_poll_us = (lws_usec_t)(1e6 / cfg->foxglove_image_rate_hz / 2);
        if (self->image_poll_us < 5000)
            self->image_poll_us = 5000;
        int w = 0, h = 0;
        for (int i = 0; i < cfg->n_cameras; i++)
            if (cfg->cameras[i].width * cfg->cameras[i].height > w * h) {
                w = cfg->cameras[i].width;
                h = cfg->cameras[i].height;
            }
        if (cfg->foxglove_image_jpeg) {
            self->tj = tjInitCompress();
            self->jpeg_cap = tjBufSize(w, h, TJSAMP_420);
            self->jpeg = tjAlloc((int)self->jpeg_cap);
            if (!self->tj || !self->jpeg) {
                snprintf(err, errlen, "[foxglove]: cannot set up the JPEG encoder");
                foxglove_destroy(&self);
                return NULL;
            }
        }
    }
    if (build_json(self, robot) != 0) {
        snprintf(err, errlen, "out of memory");
        foxglove_destroy(&self);
        return NULL;
    }
    lws_set_log_level(LLL_ERR, lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = cfg->foxglove_port;
    info.iface = cfg->foxglove_bind;
    info.protocols = protocols;
    info.user = self;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.count_threads = 1;
    info.timeout_secs = 10;          /* a peer that stalls its handshake */
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (!strchr(cfg->foxglove_bind, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    self->ctx = lws_create_context(&info);
    if (!self->ctx) {
        snprintf(err, errlen, "cannot serve the Foxglove live view on %s port %d (another "
                 "program listens there? `ss -ltnp` names it; change [foxglove] port or bind)",
                 cfg->foxglove_bind, cfg->foxglove_port);
        foxglove_destroy(&self);
        return NULL;
    }
    if (pthread_create(&self->thread, NULL, server_thread, self) != 0) {
        snprintf(err, errlen, "cannot start the Foxglove live view thread");
        foxglove_destroy(&self);
        return NULL;
    }
    self->started = 1;
    return self;
}

void foxglove_offer_telemetry(foxglove_t *self, const uint8_t *buf, size_t n)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    if (n > self->pending_cap) {
        uint8_t *b = realloc(self->pending, n);
        if (!b) {
            pthread_mutex_unlock(&self->lock);
            return;
        }
        self->pending = b;
        self->pending_cap = n;
    }
    memcpy(self->pending, buf, n);
    self->pending_len = n;
    self->pending_new = 1;
    pthread_mutex_unlock(&self->lock);
    lws_cancel_service(self->ctx);
}

void foxglove_get_stats(foxglove_t *self, foxglove_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self)
        return;
    out->clients_accepted = atomic_load(&self->accepted);
    out->clients_refused = atomic_load(&self->refused);
    out->clients_dropped_slow = atomic_load(&self->dropped_slow);
    out->clients_dropped_bad = atomic_load(&self->dropped_bad);
    out->messages_sent = atomic_load(&self->sent);
    out->clients = atomic_load(&self->connected);
}

void foxglove_destroy(foxglove_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    foxglove_t *self = *self_p;
    if (self->started) {
        atomic_store(&self->stop, 1);
        lws_cancel_service(self->ctx);
        pthread_join(self->thread, NULL);
    }
    if (self->ctx)
        lws_context_destroy(self->ctx);  /* closes the connections: CLOSED frees each */
    if (self->tj)
        tjDestroy(self->tj);
    if (self->jpeg)
        tjFree(self->jpeg);
    free(self->image);
    free(self->server_info);
    free(self->advertise);
    free(self->pending);
    free(self->work);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
