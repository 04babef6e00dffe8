#include "pacd_proto.h"

void pacd_proto_robot_state(Pacd__V1__RobotState *m, Pacd__V1__Pose *pose, const char *robot,
                            int n_joints, const double *q, const double *dq,
                            double gripper_position, double gripper_velocity, int grasp,
                            const double ee_pose[7], int64_t time_unix_ns, uint64_t seq)
{
    pacd__v1__robot_state__init(m);
    pacd__v1__pose__init(pose);
    m->robot = (char *)robot;
    m->n_joint_positions = m->n_joint_velocities = (size_t)n_joints;
    m->joint_positions = (double *)q;
    m->joint_velocities = (double *)dq;
    m->gripper_position = gripper_position;
    m->gripper_velocity = gripper_velocity;
    m->grasp = grasp != 0;
    pose->x = ee_pose[0];
    pose->y = ee_pose[1];
    pose->z = ee_pose[2];
    pose->qw = ee_pose[3];
    pose->qx = ee_pose[4];
    pose->qy = ee_pose[5];
    pose->qz = ee_pose[6];
    m->end_effector = pose;
    m->time_unix_ns = time_unix_ns;
    m->seq = seq;
}
