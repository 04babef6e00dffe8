/* pacd_err — the one helper that writes an error message into a caller's
 * buffer, shared by every library that reports errors as text (hal, policy).
 * Depends on nothing but libc. */
#ifndef PACD_ERR_H
#define PACD_ERR_H

#include <stddef.h>

/* Formats fmt (printf) into err as vsnprintf does: at most errlen - 1
 * characters and a terminating NUL, a longer message truncated; writes
 * nothing when err is NULL or errlen is 0. Messages say "what went wrong;
 * what to do". Any thread; not for the control loop (formats text). */
void pacd_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
