/* pacd-policy-eval — run a checkpoint outside the daemon.
 *
 *   pacd-policy-eval --spec CHECKPOINT
 *       print the observation/action spec as JSON on stdout
 *   pacd-policy-eval [--input FILE] [--output FILE] [--threads N] CHECKPOINT
 *       read observations (rows of obs_dim float32, little-endian) from FILE
 *       or stdin, write one action row (action_dim float32) per observation
 *       to FILE or stdout.
 * Exit status 0 on success, 1 on a load or I/O error (message on stderr),
 * 2 on a usage error. Used by tests/integration/test_policy_parity.py. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_nn.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pacd-policy-eval [--spec] [--input FILE] [--output FILE] [--threads N] "
            "CHECKPOINT\n"
            "  --spec          print the checkpoint's observation/action spec as JSON\n"
            "  --input FILE    observations, float32 rows of obs_dim (default: stdin)\n"
            "  --output FILE   actions, float32 rows of action_dim (default: stdout)\n"
            "  --threads N     BLAS threads (default 1)\n");
}

static const char *space_name(policy_action_space_t s)
{
    switch (s) {
    case POLICY_ACTION_JOINT_VELOCITY: return "joint_velocity";
    case POLICY_ACTION_JOINT_VELOCITY_GRIPPER: return "joint_velocity_gripper";
    case POLICY_ACTION_CARTESIAN_VELOCITY: return "cartesian_velocity";
    }
    return "?";
}

static int print_spec(const policy_t *p)
{
    const policy_spec_t *s = policy_spec(p);
    json_t *root = json_object();
    json_t *fields = json_array();
    for (int i = 0; i < s->n_fields; i++) {
        const policy_field_t *f = &s->fields[i];
        json_t *shape = json_array();
        for (int d = 0; d < f->ndim; d++)
            json_array_append_new(shape, json_integer(f->shape[d]));
        json_array_append_new(fields, json_pack("{s:s, s:s, s:o, s:i, s:i, s:b, s:i}",
            "name", f->name, "source", f->source, "shape", shape, "size", f->size,
            "history", f->history, "is_image", f->is_image, "offset", f->offset));
    }
    json_t *low = json_array(), *high = json_array();
    for (int i = 0; i < s->action_dim; i++) {
        json_array_append_new(low, json_real(s->action_low[i]));
        json_array_append_new(high, json_real(s->action_high[i]));
    }
    json_object_set_new(root, "architecture", json_string(s->architecture));
    json_object_set_new(root, "robot", json_string(s->robot));
    json_object_set_new(root, "sha256", json_string(s->sha256));
    json_object_set_new(root, "obs_dim", json_integer(s->obs_dim));
    json_object_set_new(root, "n_images", json_integer(s->n_images));
    json_object_set_new(root, "fields", fields);
    json_object_set_new(root, "action", json_pack("{s:s, s:i, s:o, s:o}",
        "space", space_name(s->action_space), "dim", s->action_dim, "low", low, "high", high));
    json_object_set_new(root, "arena_bytes", json_integer((json_int_t)policy_arena_bytes(p)));
    json_object_set_new(root, "blas_core", json_string(nn_blas_corename()));
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    fputc('\n', stdout);
    json_decref(root);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "spec", no_argument, NULL, 's' },
        { "input", required_argument, NULL, 'i' },
        { "output", required_argument, NULL, 'o' },
        { "threads", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int spec = 0, threads = 1;
    const char *in_path = NULL, *out_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "si:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': spec = 1; break;
        case 'i': in_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 't':
            threads = atoi(optarg);
            if (threads < 1) {
                fprintf(stderr, "pacd-policy-eval: --threads must be >= 1\n");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    char err[512];
    policy_options_t options = { .threads = threads };
    policy_t *p = policy_load(argv[optind], &options, err, sizeof err);
    if (!p) {
        fprintf(stderr, "pacd-policy-eval: %s\n", err);
        return 1;
    }
    int status = 0;
    if (spec) {
        status = print_spec(p);
        policy_destroy(&p);
        return status;
    }
    const policy_spec_t *s = policy_spec(p);
    if (s->n_images > 0) {
        fprintf(stderr, "pacd-policy-eval: the checkpoint takes camera fields; this tool feeds "
                "only the float observation vector\n");
        policy_destroy(&p);
        return 1;
    }
    FILE *in = in_path && strcmp(in_path, "-") ? fopen(in_path, "rb") : stdin;
    FILE *out = out_path && strcmp(out_path, "-") ? fopen(out_path, "wb") : stdout;
    if (!in || !out) {
        fprintf(stderr, "pacd-policy-eval: cannot open %s: %s\n",
                !in ? in_path : out_path, strerror(errno));
        status = 1;
        goto done;
    }
    float *obs = calloc((size_t)s->obs_dim, sizeof(float));
    float action[POLICY_MAX_ACTION];
    if (!obs) {
        status = 1;
        goto done;
    }
    policy_observation_t o = { .values = obs, .images = NULL };
    for (long row = 0;; row++) {
        size_t got = fread(obs, sizeof(float), (size_t)s->obs_dim, in);
        if (got == 0 && feof(in))
            break;
        if (got != (size_t)s->obs_dim) {
            fprintf(stderr, "pacd-policy-eval: observation row %ld is short (%zu of %d floats)\n",
                    row, got, s->obs_dim);
            status = 1;
            break;
        }
        int rc = policy_step(p, &o, action, NULL);
        if (rc != 0) {
            fprintf(stderr, "pacd-policy-eval: row %ld: policy_step failed: %s\n", row,
                    rc == -EDOM ? "observation holds NaN or Inf" : strerror(-rc));
            status = 1;
            break;
        }
        if (fwrite(action, sizeof(float), (size_t)s->action_dim, out) != (size_t)s->action_dim) {
            fprintf(stderr, "pacd-policy-eval: write failed: %s\n", strerror(errno));
            status = 1;
            break;
        }
    }
    free(obs);
done:
    if (in && in != stdin)
        fclose(in);
    if (out && out != stdout && fclose(out) != 0)
        status = 1;
    if (out == stdout && fflush(stdout) != 0)
        status = 1;
    policy_destroy(&p);
    return status;
}
