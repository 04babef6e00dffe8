/* proto — generated pacd.v1 messages plus the schema embedded in logs. */
#ifndef PACD_PROTO_H
#define PACD_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include "pacd.pb-c.h"

/* Serialized google.protobuf.FileDescriptorSet of proto/pacd.proto (with
 * imports): the MCAP schema data of every pacd.v1 channel. Immutable. */
extern const unsigned char pacd_proto_descriptor_set[];
extern const size_t pacd_proto_descriptor_set_len;

/* Serialized FileDescriptorSet of proto/foxglove_image.proto (messages
 * foxglove.CompressedImage and foxglove.RawImage, with
 * google/protobuf/timestamp.proto): the schema of the Foxglove live view's
 * camera channels (daemon/pacd_foxglove.c). Immutable. */
extern const unsigned char pacd_foxglove_image_descriptor_set[];
extern const size_t pacd_foxglove_image_descriptor_set_len;

/* The one RobotState encoding (the mujoco backend's state socket, the
 * episode logs' robot_state channel): fill *m, and *pose it points to, from
 * a robot state. q, dq: n_joints each (rad, rad/s), borrowed by *m, not
 * copied: they must outlive the pack; robot likewise (NULL packs as "").
 * Gripper position / velocity in m, m/s; grasp 0 or 1; ee_pose x, y, z (m),
 * qw, qx, qy, qz (unit quaternion) in the base frame. No allocation: safe
 * anywhere. */
void pacd_proto_robot_state(Pacd__V1__RobotState *m, Pacd__V1__Pose *pose, const char *robot,
                            int n_joints, const double *q, const double *dq,
                            double gripper_position, double gripper_velocity, int grasp,
                            const double ee_pose[7], int64_t time_unix_ns, uint64_t seq);

#endif
