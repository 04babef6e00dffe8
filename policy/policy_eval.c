/* pacd-policy-eval — run a checkpoint outside the daemon.
 *
 *   pacd-policy-eval --spec CHECKPOINT
 *       print the observation/action spec as JSON on stdout
 *   pacd-policy-eval [--input FILE] [--output FILE] [--threads N]
 *                    [--kernel auto|avx512|avx2|blas|amx|blis] CHECKPOINT
 *       read observations (rows of obs_dim float32, little-endian) from FILE
 *       or stdin, write one action row (action_dim float32) per observation
 *       to FILE or stdout.
 *   Camera fields (pac): --images FILE holds one row per observation: every
 *       image field's uint8 [H, W, 3] frame, in field order, concatenated.
 *   --logits FILE writes each step's logits (policy_logits, float32 rows);
 *   --q-values FILE each step's Q value (float32; NaN without a critic);
 *   --task-id N / --task-vectors FILE (rows of task_dim float32) condition a
 *   task; --sample [--temperature T] [--seed S] draw stochastic actions;
 *   --kernel forces the matrix kernel (policy_options_t.kernel; --spec
 *   reports the one in use as "kernel").
 * Exit status 0 on success, 1 on a load or I/O error (message on stderr),
 * 2 on a usage error, 3 when --kernel names a kernel this CPU lacks. Used by tests/integration/test_policy_parity.py. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "nn.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pacd-policy-eval [--spec] [--input FILE] [--output FILE] [--threads N] "
            "CHECKPOINT\n"
            "  --spec          print the checkpoint's observation/action spec as JSON\n"
            "  --input FILE    observations, float32 rows of obs_dim (default: stdin)\n"
            "  --output FILE   actions, float32 rows of action_dim (default: stdout)\n"
            "  --threads N     BLAS threads (default 1)\n"
            "  --kernel K      matrix kernel: auto (default), avx512, avx2, blas, amx or blis\n"
            "  --images FILE   uint8 rows: every camera field's [H, W, 3] frame, field order\n"
            "  --logits FILE   write each step's logits (float32 rows)\n"
            "  --q-values FILE write each step's critic Q value (float32; NaN without critic)\n"
            "  --task-id N     task id for task-embedding checkpoints (default 0)\n"
            "  --task-vectors FILE  float32 rows of task_dim for task-vector checkpoints\n"
            "  --sample        sample actions (--temperature T, default 1; --seed S)\n");
}

static const char *space_name(policy_action_space_t s)
{
    switch (s) {
    case POLICY_ACTION_JOINT_VELOCITY: return "joint_velocity";
    case POLICY_ACTION_JOINT_VELOCITY_GRIPPER: return "joint_velocity_gripper";
    case POLICY_ACTION_CARTESIAN_VELOCITY: return "cartesian_velocity";
    case POLICY_ACTION_CARTESIAN_TWIST: return "cartesian_twist";
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
    json_object_set_new(root, "kernel", json_string(policy_kernel(p)));
    json_object_set_new(root, "has_critic", json_boolean(s->has_critic));
    json_object_set_new(root, "action_repeat", json_integer(s->action_repeat));
    json_object_set_new(root, "task_kind", json_integer(s->task_kind));
    json_object_set_new(root, "task_count", json_integer(s->task_count));
    json_object_set_new(root, "task_dim", json_integer(s->task_dim));
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
        { "images", required_argument, NULL, 'I' },
        { "logits", required_argument, NULL, 'L' },
        { "q-values", required_argument, NULL, 'Q' },
        { "task-id", required_argument, NULL, 'T' },
        { "task-vectors", required_argument, NULL, 'V' },
        { "sample", no_argument, NULL, 'S' },
        { "temperature", required_argument, NULL, 'E' },
        { "seed", required_argument, NULL, 'D' },
        { "kernel", required_argument, NULL, 'K' },
        { NULL, 0, NULL, 0 },
    };
    int spec = 0, threads = 1, sample = 0, task_id = 0;
    policy_kernel_t kernel = POLICY_KERNEL_AUTO;
    float temperature = 1.0f;
    unsigned long long seed = 0;
    const char *in_path = NULL, *out_path = NULL, *img_path = NULL, *log_path = NULL;
    const char *q_path = NULL, *tv_path = NULL;
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
        case 'I': img_path = optarg; break;
        case 'L': log_path = optarg; break;
        case 'Q': q_path = optarg; break;
        case 'T': task_id = atoi(optarg); break;
        case 'V': tv_path = optarg; break;
        case 'S': sample = 1; break;
        case 'E': temperature = strtof(optarg, NULL); break;
        case 'D': seed = strtoull(optarg, NULL, 0); break;
        case 'K':
            if (policy_kernel_parse(optarg, &kernel) != 0) {
                fprintf(stderr, "pacd-policy-eval: --kernel must be auto, avx512, avx2, blas, "
                        "amx or blis\n");
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
    policy_options_t options = { .threads = threads, .kernel = kernel, .sample = sample,
                                 .temperature = temperature, .seed = seed };
    errno = 0;
    policy_t *p = policy_load(argv[optind], &options, err, sizeof err);
    if (!p) {
        int unsupported = errno == ENOTSUP;
        fprintf(stderr, "pacd-policy-eval: %s\n", err);
        return unsupported ? 3 : 1;
    }
    int status = 0;
    if (spec) {
        status = print_spec(p);
        policy_destroy(&p);
        return status;
    }
    const policy_spec_t *s = policy_spec(p);
    if (s->n_images > 0 && !img_path) {
        fprintf(stderr, "pacd-policy-eval: the checkpoint takes %d camera field(s): give their "
                "frames with --images FILE\n", s->n_images);
        policy_destroy(&p);
        return 1;
    }
    if (s->task_kind == POLICY_TASK_VECTOR && !tv_path) {
        fprintf(stderr, "pacd-policy-eval: the checkpoint takes a task vector of %d floats: "
                "give rows with --task-vectors FILE\n", s->task_dim);
        policy_destroy(&p);
        return 1;
    }
    size_t img_row = 0;
    for (int i = 0; i < s->n_fields; i++)
        if (s->fields[i].is_image)
            img_row += (size_t)s->fields[i].size;
    FILE *in = in_path && strcmp(in_path, "-") ? fopen(in_path, "rb") : stdin;
    FILE *out = out_path && strcmp(out_path, "-") ? fopen(out_path, "wb") : stdout;
    FILE *imf = img_path ? fopen(img_path, "rb") : NULL;
    FILE *lf = log_path ? fopen(log_path, "wb") : NULL;
    FILE *qf = q_path ? fopen(q_path, "wb") : NULL;
    FILE *tvf = tv_path ? fopen(tv_path, "rb") : NULL;
    float *obs = calloc((size_t)s->obs_dim + 1, sizeof(float));
    uint8_t *img = calloc(img_row + 1, 1);
    float *tv = calloc((size_t)s->task_dim + 1, sizeof(float));
    if (!in || !out || (img_path && !imf) || (log_path && !lf) || (q_path && !qf) ||
        (tv_path && !tvf)) {
        fprintf(stderr, "pacd-policy-eval: cannot open %s: %s\n",
                !in ? in_path : !out ? out_path : (img_path && !imf) ? img_path
                : (log_path && !lf) ? log_path : (q_path && !qf) ? q_path : tv_path,
                strerror(errno));
        status = 1;
        goto done;
    }
    float action[POLICY_MAX_ACTION];
    if (!obs || !img || !tv) {
        status = 1;
        goto done;
    }
    const uint8_t *imgs[POLICY_MAX_FIELDS];
    {
        size_t off = 0;
        int k = 0;
        for (int i = 0; i < s->n_fields; i++)
            if (s->fields[i].is_image) {
                imgs[k++] = img + off;
                off += (size_t)s->fields[i].size;
            }
    }
    policy_observation_t o = { .values = obs, .images = imgs, .task_id = task_id,
                               .task_vector = tv };
    for (long row = 0;; row++) {
        size_t got = s->obs_dim ? fread(obs, sizeof(float), (size_t)s->obs_dim, in) : 0;
        if (s->obs_dim && got == 0 && feof(in))
            break;
        if (got != (size_t)s->obs_dim) {
            fprintf(stderr, "pacd-policy-eval: observation row %ld is short (%zu of %d floats)\n",
                    row, got, s->obs_dim);
            status = 1;
            break;
        }
        if (imf) {
            size_t gi = fread(img, 1, img_row, imf);
            if (!s->obs_dim && gi == 0 && feof(imf))
                break;
            if (gi != img_row) {
                fprintf(stderr, "pacd-policy-eval: image row %ld is short (%zu of %zu bytes)\n",
                        row, gi, img_row);
                status = 1;
                break;
            }
        } else if (!s->obs_dim) {
            break;
        }
        if (tvf && fread(tv, sizeof(float), (size_t)s->task_dim, tvf) != (size_t)s->task_dim) {
            fprintf(stderr, "pacd-policy-eval: task vector row %ld is short\n", row);
            status = 1;
            break;
        }
        policy_extra_t extra = { 0 };
        int rc = policy_step(p, &o, action, &extra);
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
        if (lf) {
            const float *l;
            int r, c;
            if (policy_logits(p, &l, &r, &c) == 0)
                fwrite(l, sizeof(float), (size_t)r * (size_t)c, lf);
        }
        if (qf) {
            float q = extra.has_q_value ? extra.q_value : NAN;
            fwrite(&q, sizeof(float), 1, qf);
        }
    }
done:
    free(obs);
    free(img);
    free(tv);
    if (imf)
        fclose(imf);
    if (tvf)
        fclose(tvf);
    if (lf && fclose(lf) != 0)
        status = 1;
    if (qf && fclose(qf) != 0)
        status = 1;
    if (in && in != stdin)
        fclose(in);
    if (out && out != stdout && fclose(out) != 0)
        status = 1;
    if (out == stdout && fflush(stdout) != 0)
        status = 1;
    policy_destroy(&p);
    return status;
}
