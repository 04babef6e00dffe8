/* pacctl_plot — `pacctl log plot` (pacctl_plot.h, docs/episode-log.md). */
#include "pacctl_plot.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hal_robot.h"
#include "log_reader.h"
#include "pacd_proto.h"

#ifndef PACCTL_PLOT_SCRIPT
#define PACCTL_PLOT_SCRIPT "/usr/local/share/pacd/pacd_plot.py"
#endif

#define USAGE "usage: pacctl log plot [-o OUT.png] [--compare OTHER.mcap] [--unfinished]\n" \
              "                       [--dump-json FILE] [--data] EPISODE.mcap\n"

/* A finite number, or null (JSON has no NaN/Inf). */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *jfloats(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, jnum(v[i]));
    return a;
}

static json_t *jdoubles(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, jnum(v[i]));
    return a;
}

/* The logged robot states, by seq (ascending as logged; looked up by bisection). */
typedef struct {
    Pacd__V1__RobotState **s;
    size_t n, cap;
    int sorted;
} states_t;

static int states_push(states_t *st, Pacd__V1__RobotState *s)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 256;
        void *p = realloc(st->s, cap * sizeof *st->s);
        if (!p)
            return -ENOMEM;
        st->s = p;
        st->cap = cap;
    }
    if (st->n && st->s[st->n - 1]->seq >= s->seq)
        st->sorted = 0;
    st->s[st->n++] = s;
    return 0;
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = (*(Pacd__V1__RobotState *const *)a)->seq, y = (*(Pacd__V1__RobotState *const *)b)->seq;
    return x < y ? -1 : x > y;
}

static const Pacd__V1__RobotState *states_find(const states_t *st, uint64_t seq)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->s[mid]->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < st->n && st->s[lo]->seq == seq ? st->s[lo] : NULL;
}

static void states_free(states_t *st)
{
    for (size_t i = 0; i < st->n; i++)
        pacd__v1__robot_state__free_unpacked(st->s[i], NULL);
    free(st->s);
}

/* The observation tensor called name, or NULL. */
static const Pacd__V1__Tensor *tensor(const Pacd__V1__Step *s, const char *name)
{
    for (size_t i = 0; i < s->n_observation; i++)
        if (s->observation[i]->name && strcmp(s->observation[i]->name, name) == 0)
            return s->observation[i];
    return NULL;
}

/* Columns of the step series, one JSON array per field. */
typedef struct {
    json_t *step, *time_unix_ns, *tick_mono_ns, *inference_us, *reward, *q_value, *policy_action,
        *action, *action_space, *teleop_action, *stale, *held, *safety_flags, *is_terminal, *joint_positions,
        *joint_velocities, *joint_source;
} columns_t;

static void columns_add_step(columns_t *c, const Pacd__V1__Step *s, const states_t *states)
{
    json_array_append_new(c->step, json_integer((json_int_t)s->step));
    json_array_append_new(c->time_unix_ns, json_integer((json_int_t)s->time_unix_ns));
    json_array_append_new(c->tick_mono_ns, json_integer((json_int_t)s->tick_mono_ns));
    json_array_append_new(c->inference_us, json_integer((json_int_t)s->inference_us));
    json_array_append_new(c->reward, jnum(s->reward));
    json_array_append_new(c->q_value, s->has_q_value ? jnum(s->q_value) : json_null());
    json_array_append_new(c->policy_action, jfloats(s->policy_action, s->n_policy_action));
    json_array_append_new(c->action, s->action ? jfloats(s->action->values, s->action->n_values)
                                               : json_array());
    json_array_append_new(c->action_space, json_integer(s->action ? s->action->space : 0));
    json_array_append_new(c->teleop_action, s->n_teleop_action
                                                ? jfloats(s->teleop_action, s->n_teleop_action)
                                                : json_null());
    json_array_append_new(c->stale, json_boolean(s->stale));
    json_array_append_new(c->held, json_boolean(s->held));
    json_array_append_new(c->safety_flags, json_integer(s->safety_flags));
    json_array_append_new(c->is_terminal, json_boolean(s->is_terminal));
    /* the joints: the robot state the step used; else the observation's tensors */
    const Pacd__V1__RobotState *rs = states_find(states, s->robot_state_seq);
    const Pacd__V1__Tensor *tq = tensor(s, "joint_positions"), *tdq = tensor(s, "joint_velocities");
    if (rs && rs->n_joint_positions) {
        json_array_append_new(c->joint_positions, jdoubles(rs->joint_positions, rs->n_joint_positions));
        json_array_append_new(c->joint_velocities,
                              jdoubles(rs->joint_velocities, rs->n_joint_velocities));
        json_array_append_new(c->joint_source, json_string("robot_state"));
    } else if (tq) {
        json_array_append_new(c->joint_positions, jfloats(tq->values, tq->n_values));
        json_array_append_new(c->joint_velocities, tdq ? jfloats(tdq->values, tdq->n_values)
                                                       : json_null());
        json_array_append_new(c->joint_source, json_string("observation"));
    } else {
        json_array_append_new(c->joint_positions, json_null());
        json_array_append_new(c->joint_velocities, json_null());
        json_array_append_new(c->joint_source, json_null());
    }
}

/* The robot's joint limits (hal/hal_robot.h), or null for a robot pacd has no
 * description of. */
static json_t *limits_json(const char *robot)
{
    const hal_robot_t *r = hal_robot_find(robot);
    if (!r)
        return json_null();
    return json_pack("{s:s, s:s, s:o, s:o, s:o}", "robot", r->name, "source", r->limits_source,
                     "q_min", jdoubles(r->q_min, (size_t)r->n_joints), "q_max",
                     jdoubles(r->q_max, (size_t)r->n_joints), "dq_max",
                     jdoubles(r->dq_max, (size_t)r->n_joints));
}

/* One episode's document for the plotter: *doc, or an exit code with the
 * message on stderr. */
static int episode_doc(const char *path, int allow_unfinished, json_t **doc)
{
    *doc = NULL;
    log_report_t *r = malloc(sizeof *r);
    if (!r)
        return PACCTL_PLOT_USAGE;
    if (log_verify_file(path, r) != 0) {
        fprintf(stderr, "pacctl log plot: %s\n", r->error);
        free(r);
        return PACCTL_PLOT_USAGE;
    }
    if (r->status == LOG_INVALID) {
        fprintf(stderr, "pacctl log plot: %s is corrupt at byte %" PRIu64 ": %s (see `pacctl log "
                "verify %s`); nothing plotted\n", path, r->error_offset, r->error, path);
        free(r);
        return PACCTL_PLOT_CORRUPT;
    }
    if (r->status == LOG_INCOMPLETE && !allow_unfinished) {
        fprintf(stderr, "pacctl log plot: %s is unfinished (no footer: the writer stopped at byte "
                "%" PRIu64 ", e.g. a crash or a full disk); it holds %" PRIu64 " complete steps: "
                "--unfinished plots them\n", path, r->error_offset, r->steps);
        free(r);
        return PACCTL_PLOT_UNFINISHED;
    }
    if (r->steps == 0) {
        fprintf(stderr, "pacctl log plot: %s holds no steps (episode %s): nothing to plot\n", path,
                r->episode_id[0] ? r->episode_id : "(no id)");
        free(r);
        return PACCTL_PLOT_NO_STEPS;
    }
    const char *status = r->status == LOG_VALID ? "ok" : "unfinished";
    free(r);

    uint8_t *data;
    size_t len;
    int rc = log_read_file(path, &data, &len);
    if (rc != 0) {
        fprintf(stderr, "pacctl log plot: cannot read %s: %s\n", path, strerror(-rc));
        return PACCTL_PLOT_USAGE;
    }
    /* the metadata, every key as a string */
    json_t *meta = json_object();
    mcap_metadata_t md;
    char robot[32] = "";
    if (log_find_metadata(data, len, "pacd", &md)) {
        size_t pos = 0;
        mcap_str_t k, v;
        while (mcap_map_next(md.map, &pos, &k, &v) == 1) {
            char key[128];
            log_str_copy(key, sizeof key, k);
            json_t *val = json_stringn(v.ptr, v.len); /* NULL: not UTF-8 */
            json_object_set_new(meta, key, val ? val : json_null());
            if (mcap_str_eq(k, "robot"))
                log_str_copy(robot, sizeof robot, v);
        }
    }
    /* the robot states first (a step's state may be logged after it) */
    states_t states = {.sorted = 1};
    log_reader_t rd;
    log_message_t m;
    log_reader_init(&rd, data, len, LOG_READER_DATA_ONLY);
    while (log_reader_next(&rd, &m) == MCAP_READ_RECORD) {
        if (!m.known_channel || m.kind != LOG_KIND_STATE)
            continue;
        Pacd__V1__RobotState *s = pacd__v1__robot_state__unpack(NULL, m.data.len, m.data.ptr);
        if (s && states_push(&states, s) != 0)
            pacd__v1__robot_state__free_unpacked(s, NULL);
    }
    if (!states.sorted)
        qsort(states.s, states.n, sizeof *states.s, by_seq);
    columns_t c = {
        json_array(), json_array(), json_array(), json_array(), json_array(), json_array(),
        json_array(), json_array(), json_array(), json_array(), json_array(), json_array(),
        json_array(), json_array(), json_array(), json_array(), json_array(),
    };
    log_reader_init(&rd, data, len, LOG_READER_DATA_ONLY);
    while (log_reader_next(&rd, &m) == MCAP_READ_RECORD) {
        if (!m.known_channel || m.kind != LOG_KIND_STEP || !mcap_str_eq(m.topic, "/pacd/step"))
            continue;
        Pacd__V1__Step *s = pacd__v1__step__unpack(NULL, m.data.len, m.data.ptr);
        if (!s)
            continue; /* verify passed: every step decodes */
        columns_add_step(&c, s, &states);
        pacd__v1__step__free_unpacked(s, NULL);
    }
    states_free(&states);
    free(data);
    json_t *steps = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
        "step", c.step, "time_unix_ns", c.time_unix_ns, "tick_mono_ns", c.tick_mono_ns,
        "inference_us", c.inference_us, "reward", c.reward, "q_value", c.q_value, "policy_action",
        c.policy_action, "action", c.action, "action_space", c.action_space, "teleop_action", c.teleop_action, "stale", c.stale,
        "held", c.held, "safety_flags", c.safety_flags, "is_terminal", c.is_terminal,
        "joint_positions", c.joint_positions, "joint_velocities", c.joint_velocities,
        "joint_source", c.joint_source);
    *doc = json_pack("{s:s, s:s, s:o, s:o, s:o}", "file", path, "status", status, "metadata", meta,
                     "limits", limits_json(robot[0] ? robot : NULL), "steps", steps);
    if (!*doc) {
        fprintf(stderr, "pacctl log plot: out of memory\n");
        return PACCTL_PLOT_USAGE;
    }
    return PACCTL_PLOT_OK;
}

/* The plotter script: $PACD_PLOT_SCRIPT, pacd_plot.py beside this executable,
 * or the installed one. Writes it into out[cap]; 0, or -ENOENT. */
static int find_script(char *out, size_t cap)
{
    const char *env = getenv("PACD_PLOT_SCRIPT");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, R_OK) == 0 ? 0 : -ENOENT;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, cap, "%s/pacd_plot.py", exe);
            if (access(out, R_OK) == 0)
                return 0;
        }
    }
    snprintf(out, cap, "%s", PACCTL_PLOT_SCRIPT);
    return access(out, R_OK) == 0 ? 0 : -ENOENT;
}

/* Run the plotter with the document on its stdin; its exit code mapped to ours. */
static int run_plotter(json_t *doc, const char *out, const char *dump)
{
    char script[PATH_MAX + 32];
    if (find_script(script, sizeof script) != 0) {
        fprintf(stderr, "pacctl log plot: the plotter pacd_plot.py was not found (looked at "
                "$PACD_PLOT_SCRIPT, beside pacctl and at %s)\n", PACCTL_PLOT_SCRIPT);
        return PACCTL_PLOT_FAILED;
    }
    const char *py = getenv("PACD_PYTHON");
    if (!py || !*py)
        py = "/usr/bin/python3";
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!text) {
        fprintf(stderr, "pacctl log plot: out of memory\n");
        return PACCTL_PLOT_FAILED;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "pacctl log plot: pipe: %s\n", strerror(errno));
        free(text);
        return PACCTL_PLOT_FAILED;
    }
    const char *argv[8] = {py, script, "--output", out};
    int argc = 4;
    if (dump) {
        argv[argc++] = "--dump-json";
        argv[argc++] = dump;
    }
    argv[argc] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "pacctl log plot: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        free(text);
        return PACCTL_PLOT_FAILED;
    }
    if (pid == 0) {
        dup2(fds[0], STDIN_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(py, (char *const *)argv);
        fprintf(stderr, "pacctl log plot: cannot run %s: %s\n", py, strerror(errno));
        _exit(127);
    }
    close(fds[0]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fds[1], text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the plotter went away: its exit status says why */
        off += (size_t)w;
    }
    close(fds[1]);
    signal(SIGPIPE, old);
    free(text);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "pacctl log plot: waitpid: %s\n", strerror(errno));
            return PACCTL_PLOT_FAILED;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return PACCTL_PLOT_OK;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return PACCTL_PLOT_FAILED; /* the child said why */
    fprintf(stderr, "pacctl log plot: the plotter %s %s %d\n", script,
            WIFEXITED(status) ? "exited with" : "was killed by signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return PACCTL_PLOT_FAILED;
}

int pacctl_plot_main(int argc, char **argv)
{
    const char *path = NULL, *other = NULL, *out = "episode.png", *dump = NULL;
    int allow_unfinished = 0, data_only = 0;
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--compare") == 0 && i + 1 < argc)
            other = argv[++i];
        else if (strcmp(argv[i], "--dump-json") == 0 && i + 1 < argc)
            dump = argv[++i];
        else if (strcmp(argv[i], "--unfinished") == 0)
            allow_unfinished = 1;
        else if (strcmp(argv[i], "--data") == 0)
            data_only = 1;
        else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "pacctl log plot: unexpected argument '%s'\n" USAGE, argv[i]);
            return PACCTL_PLOT_USAGE;
        } else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "pacctl log plot: no file given\n" USAGE);
        return PACCTL_PLOT_USAGE;
    }
    json_t *episodes = json_array();
    const char *files[2] = {path, other};
    for (int k = 0; k < 2 && files[k]; k++) {
        json_t *doc;
        int code = episode_doc(files[k], allow_unfinished, &doc);
        if (code != PACCTL_PLOT_OK) {
            json_decref(episodes);
            return code;
        }
        json_array_append_new(episodes, doc);
    }
    json_t *all = json_pack("{s:i, s:o}", "format", 1, "episodes", episodes);
    int code;
    if (data_only) {
        code = json_dumpf(all, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9)) == 0 ? PACCTL_PLOT_OK
                                                                                   : PACCTL_PLOT_FAILED;
        fputc('\n', stdout);
    } else {
        code = run_plotter(all, out, dump);
    }
    json_decref(all);
    return code;
}
