/* text — printing strings pacd did not write itself (Command.client, names
 * and error texts from peers) without letting them forge log lines.
 *
 * Threading: pure functions, no allocation: safe anywhere (the control loop
 * does not print, but may call it).
 */
#ifndef PACD_TEXT_H
#define PACD_TEXT_H

#include <stddef.h>

/* Longest escaped string text_escape writes into a buffer of this size
 * (including the NUL) before it cuts it short with "...". */
#define TEXT_ESCAPED_MAX 160

/* Write the n bytes of s (embedded NULs included) into out (outlen bytes,
 * >= 8) as one printable ASCII line: bytes 0x20..0x7e pass, except '\'
 * which becomes "\\"; every other byte (control characters, newline, ESC,
 * DEL, bytes >= 0x80, NUL) and a '<' in the first position (a journal
 * priority prefix such as "<0>") become "\xNN". Output longer than outlen - 1
 * is cut at an escape boundary and ends in "...". Always NUL-terminates.
 * Returns out. */
char *text_escape(char *out, size_t outlen, const char *s, size_t n);

/* text_escape of a NUL-terminated string; NULL prints as "". */
char *text_escape_str(char *out, size_t outlen, const char *s);

#endif
