/* hal_log — see hal_log.h. */
#include "hal_log.h"

#include <stdarg.h>
#include <stdio.h>

void hal_log(int prio, const char *who, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "<%d>%s: %s\n", prio, who, line);
    fflush(stderr);
}
