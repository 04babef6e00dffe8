/* policy — the actor engine: checkpoint loading and the forward pass.
 *
 * A checkpoint is one safetensors file (docs/checkpoint.md). policy_load()
 * maps it, validates every byte it uses, plans the worst-case scratch arena
 * and returns a policy whose policy_step() computes one action without
 * allocating, locking or doing I/O.
 *
 * Threading: policy_load/policy_destroy are init-only, or run on a non-RT
 * thread while another policy steps (pacd's checkpoint reload; nn_set_threads
 * leaves the BLAS pool alone when its size does not change). policy_step is RT-safe
 * (no allocation, no syscalls beyond what the BLAS library does in its own
 * thread pool when threads > 1) and must not be called concurrently on one
 * policy_t.
 */
#ifndef PACD_POLICY_H
#define PACD_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define POLICY_MAX_FIELDS 32
#define POLICY_MAX_NAME 64
#define POLICY_MAX_ACTION 16
#define POLICY_MAX_ACTION_REPEAT 100 /* 5 s at 20 Hz */
#define POLICY_MAX_DIMS 4

typedef struct policy policy_t;

/* Where an observation field takes its values from: the "source" strings of
 * docs/checkpoint.md "observation" (policy_source_name), with the unit and
 * the values per tick. */
typedef enum {
    POLICY_SOURCE_JOINT_POSITIONS = 1,   /* "joint_positions": rad, one per joint */
    POLICY_SOURCE_JOINT_VELOCITIES = 2,  /* "joint_velocities": rad/s, one per joint */
    POLICY_SOURCE_GRIPPER_POSITION = 3,  /* "gripper_position": m, 1 */
    POLICY_SOURCE_GRIPPER_VELOCITY = 4,  /* "gripper_velocity": m/s, 1 */
    POLICY_SOURCE_GRASP = 5,             /* "grasp": 0/1, 1 */
    POLICY_SOURCE_END_EFFECTOR_POSE = 6, /* "end_effector_pose": x y z m, qw qx qy qz; 7 */
    POLICY_SOURCE_PREVIOUS_ACTION = 7,   /* "previous_action": the action, action dim */
    POLICY_SOURCE_CAMERA = 8,            /* "camera/<name>": uint8 image [H, W, 3] */
    POLICY_SOURCE_OBJECT_POSE = 9,       /* "object_pose/<name>": a simulated object's pose
                                            in the base frame, x y z m, qw qx qy qz; 7.
                                            Privileged: only a simulated scene's task has it
                                            (the daemon's [task] source = hal) */
    POLICY_SOURCE_GRIPPER_TO_OBJECT = 10, /* "gripper_to_object/<name>": end-effector position
                                            minus the object's position, base frame, x y z m;
                                            3 (robosuite's gripper_to_cube_pos). Privileged,
                                            as object_pose */
} policy_source_kind_t;

/* The kind of a source string: 0 and *kind, or -EINVAL when it names none
 * ("camera/", "object_pose/" and "gripper_to_object/" need a non-empty name
 * after them). */
int policy_source_parse(const char *source, policy_source_kind_t *kind);

/* The source string of a kind ("camera" for POLICY_SOURCE_CAMERA, whose
 * strings are "camera/<name>"; "object_pose" and "gripper_to_object" likewise), or "?" for a value
 * outside the enum. */
const char *policy_source_name(policy_source_kind_t kind);

/* How a checkpoint conditions the policy on the task (policy_spec_t.task_kind). */
typedef enum {
    POLICY_TASK_NONE = 0,     /* no task input */
    POLICY_TASK_ID = 1,       /* a task id in [0, task_count): policy_observation_t.task_id */
    POLICY_TASK_VECTOR = 2,   /* task_dim floats: policy_observation_t.task_vector */
} policy_task_kind_t;

/* One observation field the checkpoint asks for, in the order the input
 * vector concatenates them (docs/checkpoint.md "observation").
 * `source` is the source string of the metadata, `source_kind` its kind.
 * `history` >= 1: the field is stacked over the last `history` ticks, oldest
 * first, so it contributes history * size values. */
typedef struct {
    char name[POLICY_MAX_NAME];
    char source[POLICY_MAX_NAME];
    policy_source_kind_t source_kind;
    int ndim;
    int shape[POLICY_MAX_DIMS];
    int size;        /* product of shape */
    int history;     /* >= 1 */
    int is_image;    /* source_kind is POLICY_SOURCE_CAMERA: uint8 [H, W, 3] */
    int offset;      /* first index in the float observation vector (non-image fields) */
} policy_field_t;

typedef enum {
    POLICY_ACTION_JOINT_VELOCITY = 1,         /* rad/s, one per joint */
    POLICY_ACTION_JOINT_VELOCITY_GRIPPER = 2, /* rad/s per joint, then gripper [-1, 1] */
    POLICY_ACTION_CARTESIAN_VELOCITY = 3,     /* m/s x y z, rad/s about z [, gripper] */
    POLICY_ACTION_CARTESIAN_TWIST = 4,        /* m/s x y z, rad/s x y z [, gripper] */
} policy_action_space_t;

typedef struct {
    char architecture[POLICY_MAX_NAME]; /* "mlp" or "pac" */
    int n_fields;
    policy_field_t fields[POLICY_MAX_FIELDS];
    int obs_dim;       /* float values in the observation vector (non-image fields, with history) */
    int n_images;      /* image fields, in field order */
    int action_dim;
    policy_action_space_t action_space;
    float action_low[POLICY_MAX_ACTION];   /* bounds of the action spec, per dimension */
    float action_high[POLICY_MAX_ACTION];
    /* Control periods each action is held for ("repeat" in pacd.action,
     * 1..POLICY_MAX_ACTION_REPEAT, default 1): the loop runs the policy on
     * the first period of a decision and executes the same action, through
     * the safety filter, on the following repeat - 1 periods. */
    int action_repeat;
    char robot[POLICY_MAX_NAME];           /* robot the checkpoint was trained for, "" = any */
    char sha256[65];                       /* hex digest of the whole checkpoint file */
    int has_critic;                        /* policy_step also reports Q (PAC critic) */
    /* Task conditioning (pac): none, a task id in [0, task_count) from
     * policy_observation_t.task_id, or a task vector of task_dim floats from
     * policy_observation_t.task_vector. */
    policy_task_kind_t task_kind;
    int task_count;
    int task_dim;
} policy_spec_t;

/* The matrix kernel of the forward pass (nn/nn.h "Packed linear layers").
 * AUTO (the default) takes the fastest this CPU runs with `threads`:
 * avx512 with one thread where the CPU has AVX-512 (avx512f), else avx2
 * where it has AVX2 and FMA, else blas; blas with more threads. The others
 * force one kernel; one the CPU lacks makes policy_load fail with -ENOTSUP.
 * AMX (Intel Sapphire Rapids and later) computes each float product as
 * three bf16 products (two for a matrix whose weights are all bf16, as most
 * of a BF16 checkpoint's are after load-time folding; nn/nn.h
 * NN_GEMM_AMX; logits within ~1e-5 relative of float), so AUTO takes it only
 * for a PAC checkpoint whose matrices are all BF16 (their own rounding,
 * 2^-9, dwarfs its 2^-17), with one thread, where the CPU has it and its
 * self-check passes; otherwise it is taken only on purpose.
 * The packed kernels run on one thread whatever `threads` says. The mlp
 * architecture always runs on BLAS (it accepts every kernel the CPU has). */
typedef enum {
    POLICY_KERNEL_AUTO = 0,
    POLICY_KERNEL_AVX512 = 1,   /* AVX-512 packed panels */
    POLICY_KERNEL_AVX2 = 2,     /* AVX2 + FMA packed panels */
    POLICY_KERNEL_BLAS = 3,     /* OpenBLAS sgemm/sgemv */
    POLICY_KERNEL_AMX = 4,      /* AMX bf16x3 tiles (linear layers, convolutions) */
    POLICY_KERNEL_BLIS = 5,     /* BLIS bli_sgemm, one thread (builds with libblis-dev) */
} policy_kernel_t;

/* Parse "auto" | "avx512" | "avx2" | "blas" | "amx" | "blis". Returns 0 or -EINVAL. */
int policy_kernel_parse(const char *name, policy_kernel_t *out);

/* "auto", "avx512", "avx2", "blas", "amx", "blis", or "?". */
const char *policy_kernel_option_name(policy_kernel_t kernel);

/* 1 when this CPU runs `kernel` (auto and blas: always; blis: when built with
 * BLIS), else 0. Init-only. */
int policy_kernel_supported(policy_kernel_t kernel);

typedef struct {
    int threads;        /* BLAS threads, >= 1; 1 is the default */
    policy_kernel_t kernel;   /* matrix kernel; AUTO (0) is the default */
    /* Stochastic actions (pac only; the mlp ignores them). sample = 0 (the
     * default) deploys the deterministic action (argmax bin / Gaussian mean).
     * sample = 1 draws from the policy's distribution with the logits divided
     * by `temperature` (categorical) or the standard deviation multiplied by
     * it (Gaussian); temperature <= 0 means 1. The generator is seeded with
     * `seed` at load (same seed, same observations: same actions) and is
     * RT-safe (a counter-based PRNG in the policy, no allocation). */
    int sample;
    float temperature;
    uint64_t seed;
    /* Most bytes the loader may allocate for weights, packed copies, tables
     * and scratch memory (pac; the mlp's weights are the file's tensors).
     * 0 (the default): POLICY_LOAD_BASE_BYTES + 16 x the bytes of tensor
     * data in the file, far above what a real checkpoint needs (pac-m: 324
     * MB at the peak for 80 MB of tensors), so that metadata out of
     * proportion to the file (huge image sizes against small tables) is
     * refused before it allocates. */
    size_t max_load_bytes;
} policy_options_t;

#define POLICY_LOAD_BASE_BYTES ((size_t)256 << 20)

/* The observation for one step. `values` holds spec->obs_dim floats: every
 * non-image field in field order, each stacked oldest-first over its history.
 * `images[i]` is the i-th image field's newest frame, uint8 [H, W, 3]
 * row-major (may be NULL when spec->n_images == 0). */
typedef struct {
    const float *values;
    const uint8_t *const *images;
    /* Task conditioning (spec->task_kind): the task id (POLICY_TASK_ID, 0 by
     * default) or task_dim floats (POLICY_TASK_VECTOR; NULL is an error then).
     * Ignored otherwise. */
    int task_id;
    const float *task_vector;
} policy_observation_t;

/* Optional outputs of one step. */
typedef struct {
    int has_q_value;
    float q_value;
} policy_extra_t;

/* Load and validate a checkpoint. Init-only.
 * Sets the BLAS thread count to options->threads (process-wide: OpenBLAS has
 * one pool; options may be NULL for 1 thread) and runs one warm-up step so
 * that the BLAS library's first-call set-up happens here, not in the loop.
 * Returns the policy (caller owns it; free with policy_destroy) or NULL with
 * a message in err (errlen bytes) that names the file and the offending
 * tensor or metadata key (or, when options->kernel names a kernel this CPU
 * lacks, that kernel and the instructions missing; errno is then ENOTSUP), e.g. "model.safetensors: tensor 'mlp.0.weight':
 * data_offsets [0, 4096) end past the data section (3000 bytes)". */
policy_t *policy_load(const char *path, const policy_options_t *options,
                      char *err, size_t errlen);

/* Unmap and free; sets *self_p to NULL. NULL-safe. Init-only. */
void policy_destroy(policy_t **self_p);

/* The checkpoint's observation and action spec; valid until destroy. RT-safe. */
const policy_spec_t *policy_spec(const policy_t *self);

/* The path the checkpoint was loaded from, as given to policy_load; valid
 * until destroy. RT-safe. */
const char *policy_path(const policy_t *self);

/* The first difference between a running checkpoint's spec `a` and a
 * candidate's `b` in what a planned control loop depends on: the observation
 * fields (name, source, shape, history, offset, image or not), the
 * observation size and image count, the action space, dimension and bounds,
 * the task conditioning and the robot. Writes a sentence naming it into why
 * (n bytes) and returns 1; returns 0 when they agree on all of these. Any
 * thread; no allocation. */
int policy_spec_difference(const policy_spec_t *a, const policy_spec_t *b, char *why, size_t n);

/* Compute one action (spec->action_dim floats, action-spec units, inside
 * [action_low, action_high] unless the checkpoint is broken) from obs.
 * RT-safe: uses only the arena planned at load.
 * Returns 0; -EINVAL when self/obs/action is NULL (or obs->values/images is
 * NULL while the spec needs them); -EDOM when an observation value is NaN or
 * Inf; -ERANGE when the network overflowed to NaN (e.g. absurd inputs). On
 * any error `action` is left unchanged: the caller holds the arm.
 * `extra` may be NULL. */
int policy_step(policy_t *self, const policy_observation_t *obs, float *action,
                policy_extra_t *extra);

/* The matrix kernel the policy runs on, chosen at load: "avx512-packed",
 * "avx2-packed", "amx-bf16x3" or "blas" (nn_gemm_name). Valid until destroy. RT-safe. */
const char *policy_kernel(const policy_t *self);

/* Prepare the calling thread to step this policy: with the AMX kernel, takes
 * the per-thread first-use trap of the tile unit and faults in the stack its
 * kernel uses (nn_gemm_prepare_thread), so the first policy_step of a control
 * loop does not pay them; nothing for the other kernels. Call once from the
 * stepping thread before its first tick. Returns 0 or -ENOTSUP. Not RT-safe
 * itself (it may fault pages in). */
int policy_prepare_thread(const policy_t *self);

/* Scratch arena size in bytes planned at load (for telemetry/benchmarks). */
size_t policy_arena_bytes(const policy_t *self);

/* The raw policy-head output of the last successful policy_step (pac only),
 * for parity tests and debugging: *logits points at rows x cols floats,
 * row-major, valid until the next policy_step or policy_destroy.
 * Categorical head: rows = action_dim (one query per dimension) or 1 (one
 * query, cols = action_dim * bins, dimension-major), cols = bins.
 * Gaussian head: [action_dim, 2] (mean, log_std per dimension) or
 * [1, 2 * action_dim] (all means, then all log_stds). See docs/checkpoint.md.
 * RT-safe. Returns 0; -EINVAL on NULL arguments; -ENOTSUP for an architecture
 * without logits (mlp); -ENODATA before the first successful step. */
int policy_logits(const policy_t *self, const float **logits, int *rows, int *cols);

/* Start-up check of the BLAS library: writes a one-line report into
 * report[n] ("OpenBLAS 0.3.21 ... core Haswell, threads 1, sgemm self-check
 * ok (max rel err 1e-7)") naming the library's config
 * (openblas_get_config), its kernel family (openblas_get_corename) and the
 * result of a small sgemm (row-major, NoTrans/Trans, 37 x 29 x 53, alpha and
 * beta != 1) compared with a plain C double-precision reference.
 * Returns 0 when the result agrees within 1e-4 relative; -EIO when it does
 * not (the report then says which element differs and suggests unsetting
 * OPENBLAS_CORETYPE or using another BLAS kernel); -ENOMEM. Init-only
 * (allocates). report may be NULL when n is 0. */
int policy_blas_selfcheck(char *report, size_t n);

#endif
