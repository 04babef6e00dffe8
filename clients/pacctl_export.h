/* pacctl_export — `pacctl log export`: the command line of the HDF5 export
 * (log/log_export.h; docs/loop.md, "Data set").
 *
 * Threading: not RT-safe (reads files, allocates, writes HDF5); for the
 * command-line client and tests only.
 */
#ifndef PACCTL_EXPORT_H
#define PACCTL_EXPORT_H

/* Exit codes of pacctl_export_main. */
enum {
    PACCTL_EXPORT_OK = 0,        /* the data set was written (OUT renamed into place) */
    PACCTL_EXPORT_FAILED = 1,    /* a log was refused (mismatch, corrupt, no spec) or the
                                    write failed; no OUT file was created or replaced */
    PACCTL_EXPORT_USAGE = 2,     /* bad arguments */
};

/* `pacctl log export -o OUT.hdf5 [--checkpoint CKPT]... EPISODE.mcap...` with
 * argv[0] == "log", argv[1] == "export": log_export (log/log_export.h) with
 * these files. Messages go to stderr. Returns PACCTL_EXPORT_*. */
int pacctl_export_main(int argc, char **argv);

#endif
