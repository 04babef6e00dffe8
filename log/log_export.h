/* pacctl_export — `pacctl log export`: pacd episode logs (MCAP,
 * docs/episode-log.md) into one HDF5 data set in robomimic's layout
 * (docs/loop.md, "Data set", format version 1).
 *
 * Threading: not RT-safe (reads files, allocates, writes HDF5); for the
 * command-line client and tests only.
 */
#ifndef LOG_EXPORT_H
#define LOG_EXPORT_H

/* Exit codes of pacctl_export_main. */
enum {
    PACCTL_EXPORT_OK = 0,        /* the data set was written (OUT renamed into place) */
    PACCTL_EXPORT_FAILED = 1,    /* a log was refused (mismatch, corrupt, no spec) or the
                                    write failed; no OUT file was created or replaced */
    PACCTL_EXPORT_USAGE = 2,     /* bad arguments */
};

/* `pacctl log export -o OUT.hdf5 [--checkpoint CKPT]... EPISODE.mcap...` with
 * argv[0] == "log", argv[1] == "export".
 * The observation and action specs come from the log's metadata keys
 * `observation_spec` / `action_spec` when present, else from the --checkpoint
 * whose SHA-256 equals the log's `checkpoint_sha256` (its `pacd.observation` /
 * `pacd.action` metadata). Writes to a temporary file in OUT's directory and
 * renames it to OUT at the end; on any error the temporary file is removed.
 * Messages go to stderr. Returns PACCTL_EXPORT_*. */
int pacctl_export_main(int argc, char **argv);

#endif
