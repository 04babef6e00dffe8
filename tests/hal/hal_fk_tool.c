/* hal-fk-tool — test helper: exposes hal_robot_fk and the robot tables to
 * tests/hal/test_fk.py.
 *   hal-fk-tool ROBOT fk      reads lines of n_joints q values (rad) on stdin,
 *                             prints "x y z qw qx qy qz" per line
 *   hal-fk-tool ROBOT limits  prints "q_min ...", "q_max ...", "q_home ...",
 *                             "gripper_max X" lines
 * Exit 0, or 2 with a message on bad usage / unknown robot / bad input. */
#include "hal_robot.h"

#include <stdio.h>
#include <string.h>

static void print_row(const char *name, const double *v, int n)
{
    printf("%s", name);
    for (int i = 0; i < n; i++)
        printf(" %.17g", v[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s panda|sawyer fk|limits\n", argv[0]);
        return 2;
    }
    const hal_robot_t *r = hal_robot_find(argv[1]);
    if (!r) {
        fprintf(stderr, "unknown robot '%s'; use panda or sawyer\n", argv[1]);
        return 2;
    }
    if (strcmp(argv[2], "limits") == 0) {
        print_row("q_min", r->q_min, r->n_joints);
        print_row("q_max", r->q_max, r->n_joints);
        print_row("q_home", r->q_home, r->n_joints);
        printf("gripper_max %.17g\n", r->has_gripper ? r->gripper_max : 0.0);
        return 0;
    }
    if (strcmp(argv[2], "fk") != 0) {
        fprintf(stderr, "unknown mode '%s'; use fk or limits\n", argv[2]);
        return 2;
    }
    double q[HAL_MAX_JOINTS];
    for (;;) {
        int got = 0;
        for (int i = 0; i < r->n_joints; i++) {
            if (scanf("%lf", &q[i]) != 1)
                break;
            got++;
        }
        if (got == 0)
            return 0;
        if (got != r->n_joints) {
            fprintf(stderr, "expected %d joint values per line, got %d\n", r->n_joints, got);
            return 2;
        }
        double pose[7];
        hal_robot_fk(r, q, pose);
        print_row("", pose, 7);
    }
}
