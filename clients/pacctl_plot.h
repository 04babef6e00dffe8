/* pacctl_plot — `pacctl log plot`: a figure of one episode log (or two,
 * overlaid) as PNG (docs/episode-log.md, "Plotting an episode").
 *
 * pacctl reads and checks the logs itself (log/log_reader.h), joins each
 * step with the robot state it used, adds the robot's joint limits
 * (hal/hal_robot.h, by the metadata's `robot`), and hands the series as one
 * JSON document on stdin to the Python plotter clients/pacd_plot.py
 * (matplotlib), which draws and writes the PNG. The plotter is found as
 * $PACD_PLOT_SCRIPT, else pacd_plot.py beside the pacctl executable (the
 * build directory's copy), else the installed copy (PACCTL_PLOT_SCRIPT);
 * the interpreter is $PACD_PYTHON, else /usr/bin/python3.
 *
 * Threading: not RT-safe (reads files, allocates, forks); for the
 * command-line client only.
 */
#ifndef PACCTL_PLOT_H
#define PACCTL_PLOT_H

/* Exit codes of pacctl_plot_main. */
enum {
    PACCTL_PLOT_OK = 0,          /* the PNG was written (or --data printed) */
    PACCTL_PLOT_CORRUPT = 1,     /* a log is corrupt (`pacctl log verify` says where) */
    PACCTL_PLOT_USAGE = 2,       /* bad arguments, or a log cannot be read (missing file) */
    PACCTL_PLOT_UNFINISHED = 3,  /* a log has no footer (crash, full disk); --unfinished plots it */
    PACCTL_PLOT_NO_STEPS = 4,    /* a log holds no step */
    PACCTL_PLOT_FAILED = 5,      /* the plotter was not found, or failed (its message on stderr) */
};

/* `pacctl log plot [-o OUT.png] [--compare OTHER.mcap] [--unfinished]
 * [--dump-json FILE] [--data] EPISODE.mcap` with argv[0] == "log",
 * argv[1] == "plot". Messages go to stderr. Returns PACCTL_PLOT_*. */
int pacctl_plot_main(int argc, char **argv);

#endif
