#include "pacd_text.h"

#include <string.h>

/* The escaped form of byte i of s into tmp; returns its length (1, 2 or 4). */
static size_t escape_byte(const char *s, size_t i, char tmp[4])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = (unsigned char)s[i];
    if (c == '\\') {
        tmp[0] = tmp[1] = '\\';
        return 2;
    }
    if (c >= 0x20 && c < 0x7f && !(c == '<' && i == 0)) {
        tmp[0] = (char)c;
        return 1;
    }
    tmp[0] = '\\';
    tmp[1] = 'x';
    tmp[2] = hex[c >> 4];
    tmp[3] = hex[c & 15];
    return 4;
}

char *text_escape(char *out, size_t outlen, const char *s, size_t n)
{
    if (!out || outlen == 0)
        return out;
    char tmp[4];
    size_t need = 0;
    for (size_t i = 0; i < n && need < outlen; i++)
        need += escape_byte(s, i, tmp);
    /* all of it fits, or as much as leaves room for "..." */
    size_t room = need < outlen ? outlen - 1 : (outlen > 4 ? outlen - 4 : 0);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = escape_byte(s, i, tmp);
        if (o + k > room)
            break;
        memcpy(out + o, tmp, k);
        o += k;
    }
    if (need >= outlen && outlen > 4) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

char *text_escape_str(char *out, size_t outlen, const char *s)
{
    return text_escape(out, outlen, s ? s : "", s ? strlen(s) : 0);
}
