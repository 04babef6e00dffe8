/* pacctl_export — `pacctl log export` (pacctl_export.h, docs/loop.md "Data set"). */
#include "pacctl_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log_export.h"

#define USAGE "usage: pacctl log export -o OUT.hdf5 [--checkpoint CKPT]... EPISODE.mcap...\n"

int pacctl_export_main(int argc, char **argv)
{
    const char *out = NULL;
    const char *ckpts[LOG_EXPORT_MAX_CHECKPOINTS];
    int n_ckpts = 0, n_logs = 0;
    const char **logs = calloc((size_t)(argc > 0 ? argc : 1), sizeof *logs);
    if (!logs)
        return PACCTL_EXPORT_FAILED;
    int code = PACCTL_EXPORT_USAGE;
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--checkpoint") && i + 1 < argc) {
            if (n_ckpts == LOG_EXPORT_MAX_CHECKPOINTS) {
                fprintf(stderr, "pacctl log export: at most %d --checkpoint\n",
                        LOG_EXPORT_MAX_CHECKPOINTS);
                goto done;
            }
            ckpts[n_ckpts++] = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "pacctl log export: unknown option '%s'\n" USAGE "\n", argv[i]);
            goto done;
        } else {
            logs[n_logs++] = argv[i];
        }
    }
    if (!out || n_logs == 0) {
        fprintf(stderr, "pacctl log export: %s\n" USAGE "\n",
                !out ? "no output file (-o OUT.hdf5)" : "no episode log given");
        goto done;
    }
    code = log_export(out, logs, n_logs, ckpts, n_ckpts) == LOG_EXPORT_OK ? PACCTL_EXPORT_OK
                                                                           : PACCTL_EXPORT_FAILED;
done:
    free(logs);
    return code;
}
