#include "pacd_validate.h"
#include "pacd_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libswscale/swscale.h>
#include <turbojpeg.h>

/* The one place of truth for numeric limits (docs/protocol.md, "Field
 * limits", is printed from it). Joint limits are wider than any supported
 * arm's (Panda, Sawyer: |q| < 4.8 rad, |dq| < 4.6 rad/s) so that a driver's
 * overshoot is not refused; they only keep absurd values out of the logs. */
const validate_limit_t validate_limits[VL_COUNT] = {
    [VL_FRAME_WIDTH] = {"CameraFrame", "width", 1, 8192, "pixels",
                        "and width x height <= `[ingest] max_frame_pixels`; the camera's width "
                        "unless it has `resize = true`"},
    [VL_FRAME_HEIGHT] = {"CameraFrame", "height", 1, 8192, "pixels", "as width"},
    [VL_STATE_Q] = {"RobotState", "joint_positions[]", -10, 10, "rad",
                    "exactly one per arm joint"},
    [VL_STATE_DQ] = {"RobotState", "joint_velocities[]", -20, 20, "rad/s",
                     "exactly one per arm joint"},
    [VL_STATE_GRIPPER_POS] = {"RobotState", "gripper_position", -1, 1, "m", ""},
    [VL_STATE_GRIPPER_VEL] = {"RobotState", "gripper_velocity", -10, 10, "m/s", ""},
    [VL_STATE_EE_POS] = {"RobotState", "end_effector.x, .y, .z", -10, 10, "m", ""},
    [VL_STATE_EE_QUAT] = {"RobotState", "end_effector.qw, .qx, .qy, .qz", -1.001, 1.001, "",
                          "quaternion components"},
    [VL_REWARD_REWARD] = {"Reward", "reward", -1e6, 1e6, "", ""},
    [VL_REWARD_DISCOUNT] = {"Reward", "discount", 0, 1, "", ""},
    [VL_REWARD_INFO_VALUE] = {"Reward", "info[].value", -1e9, 1e9, "",
                              "the first 8 named entries are kept"},
    [VL_ACTION_SPACE] = {"Action", "space", 0, 4, "", "an ActionSpace value"},
    [VL_ACTION_VALUES] = {"Action", "values[]", -100, 100, "",
                          "1..16 values (topic `teleop_action`)"},
    [VL_COMMAND_MAX_STEPS] = {"Command", "max_steps", 0, CONFIG_MAX_STEPS_LIMIT, "steps",
                              "START_EPISODE; 0 = the config's"},
    [VL_COMMAND_TASK_ID] = {"Command", "task_id", 0, 1000000, "",
                            "START_EPISODE with `has_task_id`"},
    [VL_COMMAND_FINAL_REWARD] = {"Command", "final_reward", -1e6, 1e6, "", "END_EPISODE"},
};

static void set_why(const char **why, const char *text)
{
    if (why)
        *why = text;
}

int validate_in_limits(int id, double v)
{
    if (id < 0 || id >= VL_COUNT)
        return 0;
    return isfinite(v) && v >= validate_limits[id].min && v <= validate_limits[id].max;
}

int validate_limits_markdown(char *buf, size_t n)
{
    size_t used = 0;
    int k = snprintf(buf, n, "| message | field | min | max | unit | note |\n"
                             "|---|---|---|---|---|---|\n");
    if (k < 0 || (size_t)k >= n)
        return -ENOSPC;
    used = (size_t)k;
    for (int i = 0; i < VL_COUNT; i++) {
        const validate_limit_t *l = &validate_limits[i];
        k = snprintf(buf + used, n - used, "| %s | `%s` | %.15g | %.15g | %s | %s |\n",
                     l->message, l->field, l->min, l->max, l->unit, l->note);
        if (k < 0 || (size_t)k >= n - used)
            return -ENOSPC;
        used += (size_t)k;
    }
    return (int)used;
}

/* ---- wire-format walk for string fields ---- */

static int read_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return -1;
        uint8_t b = p[(*pos)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static int strings_ok(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                      int depth)
{
    if (depth > 8)
        return -EBADMSG;
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, v;
        if (read_varint(buf, len, &pos, &key))
            return -EBADMSG;
        switch (key & 7) {
        case 0:
            if (read_varint(buf, len, &pos, &v))
                return -EBADMSG;
            break;
        case 1:
            if (len - pos < 8)
                return -EBADMSG;
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                return -EBADMSG;
            pos += 4;
            break;
        case 2: {
            if (read_varint(buf, len, &pos, &v) || v > len - pos)
                return -EBADMSG;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX
                    ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3))
                    : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_STRING) {
                for (size_t i = 0; i < v; i++)
                    if (buf[pos + i] < 0x20 || buf[pos + i] == 0x7f)
                        return -EILSEQ;
            } else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = strings_ok(f->descriptor, buf + pos, (size_t)v, depth + 1);
                if (rc)
                    return rc;
            }
            pos += (size_t)v;
            break;
        }
        default:
            return -EBADMSG;
        }
    }
    return 0;
}

int validate_strings(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len)
{
    if (!desc || (!buf && len))
        return -EBADMSG;
    return strings_ok(desc, buf, len, 0);
}

/* ---- camera frames ---- */

int validate_camera_frame(const config_camera_t *cams, int n_cams, size_t max_pixels,
                          const uint8_t *topic, size_t topic_len, const uint8_t *buf,
                          size_t len, Pacd__V1__CameraFrame **out, int *camera,
                          const char **why)
{
    *out = NULL;
    *camera = -1;
    if (topic_len < 8 || memcmp(topic, "camera/", 7)) {
        set_why(why, "topic is not camera/<name>");
        return -EBADMSG;
    }
    for (size_t i = 7; i < topic_len; i++)
        if (topic[i] < 0x20 || topic[i] >= 0x7f) {
            set_why(why, "camera name in the topic holds a NUL or non-printable byte");
            return -EILSEQ;
        }
    Pacd__V1__CameraFrame *f = pacd__v1__camera_frame__unpack(NULL, len, buf);
    if (!f) {
        set_why(why, "not a pacd.v1.CameraFrame protobuf");
        return -EBADMSG;
    }
    int rc = validate_strings(&pacd__v1__camera_frame__descriptor, buf, len);
    if (rc) {
        set_why(why, rc == -EILSEQ ? "camera name holds a NUL or control byte"
                                   : "not a pacd.v1.CameraFrame protobuf");
        goto bad;
    }
    if (!f->camera || !f->camera[0]) {
        /* no camera name: protobuf-c accepted bytes that are no CameraFrame */
        set_why(why, "no camera name");
        rc = -EBADMSG;
        goto bad;
    }
    int idx = -1;
    for (int i = 0; i < n_cams; i++)
        if (!strcmp(cams[i].name, f->camera))
            idx = i;
    if (idx < 0 || strlen(f->camera) != topic_len - 7 ||
        memcmp(topic + 7, f->camera, topic_len - 7)) {
        set_why(why, idx < 0 ? "unknown camera" : "topic and camera name differ");
        rc = -EINVAL;
        goto bad;
    }
    if (!validate_in_limits(VL_FRAME_WIDTH, f->width) ||
        !validate_in_limits(VL_FRAME_HEIGHT, f->height)) {
        set_why(why, "width or height outside 1..8192");
        rc = -ERANGE;
        goto bad;
    }
    size_t pixels = (size_t)f->width * f->height;
    if (pixels > max_pixels) {
        set_why(why, "width x height above [ingest] max_frame_pixels");
        rc = -E2BIG;
        goto bad;
    }
    const config_camera_t *cc = &cams[idx];
    int same = f->width == (uint32_t)cc->width && f->height == (uint32_t)cc->height;
    if (!same && !cc->resize) {
        set_why(why, "frame size differs from the camera's (and resize = false)");
        rc = -EINVAL;
        goto bad;
    }
    size_t raw = pixels * 3;
    if (f->encoding == PACD__V1__CAMERA_FRAME__ENCODING__RGB8) {
        if (f->data.len > raw) {
            set_why(why, "RGB8 payload larger than width x height x 3");
            rc = -EMSGSIZE;
            goto bad;
        }
        if (f->data.len != raw) {
            set_why(why, "RGB8 payload size is not width x height x 3");
            rc = -EINVAL;
            goto bad;
        }
    } else if (f->encoding == PACD__V1__CAMERA_FRAME__ENCODING__JPEG) {
        /* a JPEG is never larger than its raw pixels plus headers */
        if (f->data.len > raw + 65536) {
            set_why(why, "JPEG larger than its raw pixels + 64 KiB");
            rc = -EMSGSIZE;
            goto bad;
        }
        if (f->data.len == 0) {
            set_why(why, "empty JPEG");
            rc = -EBADMSG;
            goto bad;
        }
    } else {
        set_why(why, "unknown encoding");
        rc = -EBADMSG;
        goto bad;
    }
    *out = f;
    *camera = idx;
    return 0;
bad:
    pacd__v1__camera_frame__free_unpacked(f, NULL);
    return rc;
}

struct frame_decoder {
    size_t max_pixels;
    tjhandle jpeg;
    uint8_t *scratch;          /* max_pixels * 3 bytes, or NULL */
    struct SwsContext *sws[CONFIG_MAX_CAMERAS];
    uint64_t resets;
};

frame_decoder_t *frame_decoder_new(size_t max_pixels, int with_scratch)
{
    frame_decoder_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->max_pixels = max_pixels;
    if (with_scratch) {
        /* malloc, not calloc: pages are only touched by decoding */
        self->scratch = malloc(max_pixels ? max_pixels * 3 : 1);
        if (!self->scratch) {
            free(self);
            return NULL;
        }
    }
    self->jpeg = tjInitDecompress(); /* NULL: retried at the next JPEG */
    return self;
}

void frame_decoder_destroy(frame_decoder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    frame_decoder_t *self = *self_p;
    if (self->jpeg)
        tjDestroy(self->jpeg);
    for (int i = 0; i < CONFIG_MAX_CAMERAS; i++)
        sws_freeContext(self->sws[i]);
    free(self->scratch);
    free(self);
    *self_p = NULL;
}

uint64_t frame_decoder_resets(const frame_decoder_t *self) { return self->resets; }

/* libturbojpeg 2.1 leaves a handle unusable after some errors (e.g. "Bogus
 * DQT index"): every later valid JPEG then fails. Start afresh. */
static void reset_jpeg(frame_decoder_t *self)
{
    if (self->jpeg)
        tjDestroy(self->jpeg);
    self->jpeg = tjInitDecompress();
    self->resets++;
}

int frame_decoder_decode(frame_decoder_t *self, const config_camera_t *cc, int camera,
                         const Pacd__V1__CameraFrame *f, uint8_t *dst, int *resized,
                         const char **why)
{
    if (resized)
        *resized = 0;
    if (camera < 0 || camera >= CONFIG_MAX_CAMERAS) {
        set_why(why, "camera index out of range");
        return -EINVAL;
    }
    int same = f->width == (uint32_t)cc->width && f->height == (uint32_t)cc->height;
    size_t pixels = (size_t)f->width * f->height;
    if (f->width == 0 || f->height == 0 || (!same && !cc->resize)) {
        set_why(why, "frame size differs from the camera's (and resize = false)");
        return -EINVAL;
    }
    if (pixels > self->max_pixels) {
        set_why(why, "width x height above [ingest] max_frame_pixels");
        return -E2BIG;
    }
    const uint8_t *src;
    if (f->encoding == PACD__V1__CAMERA_FRAME__ENCODING__RGB8) {
        if (f->data.len != pixels * 3) {
            set_why(why, "RGB8 payload size is not width x height x 3");
            return -EINVAL;
        }
        if (same) {
            memcpy(dst, f->data.data, pixels * 3);
            return 0;
        }
        src = f->data.data;
    } else if (f->encoding == PACD__V1__CAMERA_FRAME__ENCODING__JPEG) {
        if (!self->jpeg)
            reset_jpeg(self);
        int w = 0, h = 0, subsamp = 0, cs = 0;
        if (!self->jpeg ||
            tjDecompressHeader3(self->jpeg, f->data.data, (unsigned long)f->data.len, &w, &h,
                                &subsamp, &cs) != 0 || w <= 0 || h <= 0) {
            reset_jpeg(self);
            set_why(why, "bad JPEG header");
            return -EBADMSG;
        }
        if ((uint32_t)w != f->width || (uint32_t)h != f->height) {
            set_why(why, "JPEG size differs from the frame's width and height");
            return -EINVAL;
        }
        uint8_t *out = dst;
        if (!same) {
            if (!self->scratch) {
                set_why(why, "no resize buffer (no camera has resize = true)");
                return -EINVAL;
            }
            out = self->scratch;
        }
        int flags = TJFLAG_ACCURATEDCT;
#ifdef TJFLAG_STOPONWARNING
        flags |= TJFLAG_STOPONWARNING;
#endif
#ifdef TJFLAG_LIMITSCANS
        flags |= TJFLAG_LIMITSCANS;
#endif
        if (tjDecompress2(self->jpeg, f->data.data, (unsigned long)f->data.len, out, w, 0, h,
                          TJPF_RGB, flags) != 0) {
            reset_jpeg(self);
            set_why(why, "bad JPEG data");
            return -EBADMSG;
        }
        if (same)
            return 0;
        src = self->scratch;
    } else {
        set_why(why, "unknown encoding");
        return -EBADMSG;
    }
    /* area averaging (libswscale SWS_AREA) to the configured size */
    self->sws[camera] = sws_getCachedContext(self->sws[camera], (int)f->width, (int)f->height,
                                             AV_PIX_FMT_RGB24, cc->width, cc->height,
                                             AV_PIX_FMT_RGB24, SWS_AREA, NULL, NULL, NULL);
    if (!self->sws[camera]) {
        set_why(why, "cannot resize this frame");
        return -EINVAL;
    }
    const uint8_t *src_planes[1] = {src};
    int src_stride[1] = {(int)f->width * 3};
    uint8_t *dst_planes[1] = {dst};
    int dst_stride[1] = {cc->width * 3};
    if (sws_scale(self->sws[camera], src_planes, src_stride, 0, (int)f->height, dst_planes,
                  dst_stride) != cc->height) {
        set_why(why, "resizing failed");
        return -EINVAL;
    }
    if (resized)
        *resized = 1;
    return 0;
}

int frame_decode_message(frame_decoder_t *self, const config_camera_t *cams, int n_cams,
                         const uint8_t *topic, size_t topic_len, const uint8_t *buf,
                         size_t len, uint8_t *const *dst, frame_info_t *info,
                         const char **why)
{
    Pacd__V1__CameraFrame *f = NULL;
    int idx = -1;
    int rc = validate_camera_frame(cams, n_cams, self->max_pixels, topic, topic_len, buf, len,
                                   &f, &idx, why);
    if (rc)
        return rc;
    int resized = 0;
    rc = frame_decoder_decode(self, &cams[idx], idx, f, dst[idx], &resized, why);
    if (rc == 0 && info) {
        info->camera = idx;
        info->seq = f->seq;
        info->capture_time_unix_ns = f->capture_time_unix_ns;
        info->encoding = f->encoding;
        info->resized = resized;
    }
    pacd__v1__camera_frame__free_unpacked(f, NULL);
    return rc;
}

/* ---- state socket ---- */

static int all_in(int id, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!validate_in_limits(id, v[i]))
            return 0;
    return 1;
}

int validate_robot_state(const uint8_t *buf, size_t len, int n_joints, hal_state_t *out,
                         const char **why)
{
    Pacd__V1__RobotState *s = pacd__v1__robot_state__unpack(NULL, len, buf);
    if (!s) {
        set_why(why, "not a pacd.v1.RobotState protobuf");
        return -EBADMSG;
    }
    int rc = validate_strings(&pacd__v1__robot_state__descriptor, buf, len);
    if (rc) {
        set_why(why, "robot name holds a NUL or control byte");
        goto out;
    }
    if (n_joints < 0 || n_joints > HAL_MAX_JOINTS || s->n_joint_positions != (size_t)n_joints ||
        s->n_joint_velocities != (size_t)n_joints) {
        set_why(why, "joint count differs from the robot's");
        rc = -EINVAL;
        goto out;
    }
    const Pacd__V1__Pose *p = s->end_effector;
    double pos[3] = {0}, quat[4] = {0};
    if (p) {
        pos[0] = p->x, pos[1] = p->y, pos[2] = p->z;
        quat[0] = p->qw, quat[1] = p->qx, quat[2] = p->qy, quat[3] = p->qz;
    }
    if (!all_in(VL_STATE_Q, s->joint_positions, s->n_joint_positions) ||
        !all_in(VL_STATE_DQ, s->joint_velocities, s->n_joint_velocities) ||
        !validate_in_limits(VL_STATE_GRIPPER_POS, s->gripper_position) ||
        !validate_in_limits(VL_STATE_GRIPPER_VEL, s->gripper_velocity) ||
        !all_in(VL_STATE_EE_POS, pos, 3) || !all_in(VL_STATE_EE_QUAT, quat, 4)) {
        set_why(why, "a value is non-finite or outside its limits");
        rc = -ERANGE;
        goto out;
    }
    memset(out, 0, sizeof *out);
    out->n_joints = n_joints;
    memcpy(out->q, s->joint_positions, sizeof(double) * (size_t)n_joints);
    memcpy(out->dq, s->joint_velocities, sizeof(double) * (size_t)n_joints);
    out->gripper_position = s->gripper_position;
    out->gripper_velocity = s->gripper_velocity;
    out->grasp = s->grasp;
    memcpy(out->ee_pose, pos, sizeof pos);
    memcpy(out->ee_pose + 3, quat, sizeof quat);
    out->time_unix_ns = s->time_unix_ns;
    out->seq = s->seq;
out:
    pacd__v1__robot_state__free_unpacked(s, NULL);
    return rc;
}

int validate_reward(const uint8_t *buf, size_t len, validate_reward_t *out, const char **why)
{
    Pacd__V1__Reward *r = pacd__v1__reward__unpack(NULL, len, buf);
    if (!r) {
        set_why(why, "not a pacd.v1.Reward protobuf");
        return -EBADMSG;
    }
    int rc = validate_strings(&pacd__v1__reward__descriptor, buf, len);
    if (rc) {
        set_why(why, "a task value name holds a NUL or control byte");
        goto out;
    }
    rc = -ERANGE;
    if (!validate_in_limits(VL_REWARD_REWARD, r->reward) ||
        !validate_in_limits(VL_REWARD_DISCOUNT, r->discount)) {
        set_why(why, "reward or discount is non-finite or outside its limits");
        goto out;
    }
    for (size_t i = 0; i < r->n_info; i++)
        if (!validate_in_limits(VL_REWARD_INFO_VALUE, r->info[i]->value)) {
            set_why(why, "a task value is non-finite or outside its limits");
            goto out;
        }
    rc = 0;
    memset(out, 0, sizeof *out);
    out->reward = r->reward;
    out->discount = r->discount;
    out->is_terminal = r->is_terminal;
    for (size_t i = 0; i < r->n_info && out->info.n < INGEST_MAX_TASK_INFO; i++) {
        const Pacd__V1__TaskValue *t = r->info[i];
        if (!t->name || !t->name[0])
            continue;
        snprintf(out->info.name[out->info.n], INGEST_TASK_NAME, "%s", t->name);
        out->info.value[out->info.n++] = t->value;
    }
out:
    pacd__v1__reward__free_unpacked(r, NULL);
    return rc;
}

int validate_teleop_action(const uint8_t *buf, size_t len, float *values, int max, int *n,
                           uint64_t *seq, int *space, const char **why)
{
    Pacd__V1__Action *a = pacd__v1__action__unpack(NULL, len, buf);
    if (!a) {
        set_why(why, "not a pacd.v1.Action protobuf");
        return -EBADMSG;
    }
    int rc = 0;
    if (a->n_values < 1 || a->n_values > INGEST_MAX_TELEOP) {
        set_why(why, "an action has 1..16 values");
        rc = -EINVAL;
        goto out;
    }
    if (!validate_in_limits(VL_ACTION_SPACE, (double)a->space)) {
        set_why(why, "unknown action space");
        rc = -ERANGE;
        goto out;
    }
    for (size_t i = 0; i < a->n_values; i++)
        if (!validate_in_limits(VL_ACTION_VALUES, a->values[i])) {
            set_why(why, "an action value is non-finite or outside its limits");
            rc = -ERANGE;
            goto out;
        }
    int k = (int)a->n_values < max ? (int)a->n_values : max;
    if (k > 0)
        memcpy(values, a->values, sizeof(float) * (size_t)k);
    *n = (int)a->n_values;
    *seq = a->seq;
    if (space)
        *space = (int)a->space;
out:
    pacd__v1__action__free_unpacked(a, NULL);
    return rc;
}

/* ---- control ---- */

int validate_command_fields(const Pacd__V1__Command *c, const char **why)
{
    if (c->type == PACD__V1__COMMAND__TYPE__START_EPISODE) {
        if (!validate_in_limits(VL_COMMAND_MAX_STEPS, (double)c->max_steps)) {
            _Static_assert(CONFIG_MAX_STEPS_LIMIT == 100000000, "update the message below");
            set_why(why, "max_steps must be 0 (the config's) to 100000000");
            return -ERANGE;
        }
        if (c->has_task_id && !validate_in_limits(VL_COMMAND_TASK_ID, c->task_id)) {
            set_why(why, "task_id must be 0 to 1000000");
            return -ERANGE;
        }
    } else if (c->type == PACD__V1__COMMAND__TYPE__END_EPISODE) {
        if (!validate_in_limits(VL_COMMAND_FINAL_REWARD, c->final_reward)) {
            set_why(why, "final_reward must be a finite number in -1e6..1e6");
            return -ERANGE;
        }
    } else if (c->type == PACD__V1__COMMAND__TYPE__RELOAD && c->checkpoint && c->checkpoint[0]) {
        const char *p = c->checkpoint;
        size_t n = strnlen(p, CONFIG_PATH);
        if (n == CONFIG_PATH) {
            set_why(why, "reload: the checkpoint path must be shorter than 512 bytes");
            return -ERANGE;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
                set_why(why, "reload: the checkpoint path holds a control character");
                return -EINVAL;
            }
        if (p[0] != '/') {
            set_why(why, "reload: the checkpoint path must be absolute (pacd opens it on its "
                    "own host)");
            return -EINVAL;
        }
    }
    return 0;
}

int validate_command(const uint8_t *buf, size_t len, Pacd__V1__Command **out,
                     const char **why)
{
    *out = NULL;
    Pacd__V1__Command *c = pacd__v1__command__unpack(NULL, len, buf);
    if (!c) {
        set_why(why, "not a pacd.v1.Command protobuf");
        return -EBADMSG;
    }
    int rc = validate_command_fields(c, why);
    if (rc) {
        pacd__v1__command__free_unpacked(c, NULL);
        return rc;
    }
    *out = c;
    return 0;
}
