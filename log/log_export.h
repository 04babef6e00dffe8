/* log_export — pacd episode logs (MCAP, docs/episode-log.md) into one HDF5
 * data set in robomimic's layout (docs/loop.md, "Data set", format version 1).
 * The engine of `pacctl log export`: its messages name pacctl's commands.
 *
 * Threading: not RT-safe (reads files, allocates, writes HDF5); for the
 * command-line client and tests only.
 */
#ifndef LOG_EXPORT_H
#define LOG_EXPORT_H

/* Results of log_export. */
enum {
    LOG_EXPORT_OK = 0,        /* the data set was written (out renamed into place) */
    LOG_EXPORT_FAILED = 1,    /* a log was refused (mismatch, corrupt, no spec), a checkpoint
                                 cannot be read or the write failed; no out file was created
                                 or replaced */
};

/* Most checkpoints log_export takes. */
#define LOG_EXPORT_MAX_CHECKPOINTS 16

/* Write the episode logs logs[0, n_logs) (n_logs >= 1) as one data set to
 * the file out. The observation and action specs come from each log's
 * metadata keys `observation_spec` / `action_spec` when present, else from
 * the checkpoint of checkpoints[0, n_checkpoints) whose SHA-256 equals the
 * log's `checkpoint_sha256` (its `pacd.observation` / `pacd.action`
 * metadata). Writes to a temporary file in out's directory and renames it to
 * out at the end; on any error the temporary file is removed. Messages go to
 * stderr, prefixed "pacctl log export: ". Returns LOG_EXPORT_*. */
int log_export(const char *out, const char *const *logs, int n_logs,
               const char *const *checkpoints, int n_checkpoints);

#endif
