#include "pacd_cert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static const char Z85_CHARS[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/* 40 Z85 characters -> 32 bytes; 0 or -1. */
static int z85_key(const char *s, size_t n, uint8_t *key, char *z85)
{
    if (n != CERT_Z85_LEN)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(Z85_CHARS, s[i]))
            return -1;
    memcpy(z85, s, n);
    z85[n] = '\0';
    return zmq_z85_decode(key, z85) ? 0 : -1;
}

static const char *trim(const char *b, const char *e, const char **end)
{
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    *end = e;
    return b;
}

int cert_parse(const char *text, size_t len, cert_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int in_curve = 0, has_public = 0, lineno = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *lb = p;
        p = nl ? nl + 1 : end;
        if (memchr(lb, '\0', (size_t)(le - lb))) {
            snprintf(err, errlen, "line %d holds a NUL byte: not a certificate", lineno);
            return -EINVAL;
        }
        const char *te;
        const char *t = trim(lb, le, &te);
        if (t == te || *t == '#')
            continue;
        if (t == lb) { /* no indentation: a section name */
            in_curve = (size_t)(te - t) == 5 && !memcmp(t, "curve", 5);
            continue;
        }
        if (!in_curve)
            continue;
        const char *eq = memchr(t, '=', (size_t)(te - t));
        if (!eq) /* a child section of curve: not ours */
            continue;
        const char *ke, *ve;
        const char *k = trim(t, eq, &ke);
        const char *v = trim(eq + 1, te, &ve);
        if (ve > v && (*v == '"' || *v == '\'')) {
            const char *q = memchr(v + 1, *v, (size_t)(ve - v - 1));
            if (!q) {
                snprintf(err, errlen, "line %d: unterminated quote", lineno);
                return -EINVAL;
            }
            ve = q;
            v++;
        } else {
            /* an unquoted value ends at white space ('#' is a Z85 digit, so
             * a comment must be set off by a space or a tab) */
            const char *w = v;
            while (w < ve && *w != ' ' && *w != '\t')
                w++;
            ve = w;
        }
        int is_pub = (size_t)(ke - k) == 10 && !memcmp(k, "public-key", 10);
        int is_sec = (size_t)(ke - k) == 10 && !memcmp(k, "secret-key", 10);
        if (!is_pub && !is_sec)
            continue;
        if ((is_pub && has_public) || (is_sec && out->has_secret)) {
            snprintf(err, errlen, "line %d: %.*s given twice", lineno, (int)(ke - k), k);
            return -EINVAL;
        }
        if (z85_key(v, (size_t)(ve - v), is_pub ? out->public_key : out->secret_key,
                    is_pub ? out->public_z85 : out->secret_z85) != 0) {
            snprintf(err, errlen, "line %d: %s is not a CURVE key (40 Z85 characters)", lineno,
                     is_pub ? "public-key" : "secret-key");
            return -EINVAL;
        }
        if (is_pub)
            has_public = 1;
        else
            out->has_secret = 1;
    }
    if (!has_public) {
        snprintf(err, errlen, "no public-key in a 'curve' section: not a CurveZMQ certificate "
                 "(make one with `pacctl keygen NAME`)");
        return -EINVAL;
    }
    if (out->has_secret) {
        char derived[CERT_Z85_LEN + 1];
        if (zmq_curve_public(derived, out->secret_z85) != 0 ||
            strcmp(derived, out->public_z85)) {
            snprintf(err, errlen, "the secret-key does not belong to the public-key");
            return -EINVAL;
        }
    }
    return 0;
}

int cert_load(const char *path, int want_secret, cert_t *out, char *err, size_t errlen)
{
    char why[160];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open the key file %s: %s", path, strerror(e));
        return e == ENOENT ? -ENOENT : -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file: give a certificate file", path);
        close(fd);
        return -EINVAL;
    }
    if (st.st_size > CERT_MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s is %lld bytes: too large for a certificate", path,
                 (long long)st.st_size);
        close(fd);
        return -EFBIG;
    }
    char buf[CERT_MAX_FILE_BYTES];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
            close(fd);
            return -e;
        }
        if (n == 0 || len + (size_t)n == sizeof buf) {
            len += (size_t)n;
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    int rc = cert_parse(buf, len, out, why, sizeof why);
    memset(buf, 0, sizeof buf);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return rc;
    }
    if (want_secret && !out->has_secret) {
        snprintf(err, errlen, "%s has no secret-key: give the NAME_secret file that `pacctl "
                 "keygen NAME` wrote, not the public certificate", path);
        return -EINVAL;
    }
    if (want_secret && (st.st_mode & 077)) {
        memset(out, 0, sizeof *out);
        snprintf(err, errlen, "the secret key file %s has mode %04o: group or others can read "
                 "or change it; run chmod 600 %s (and keep it owned by the user that uses it)",
                 path, (unsigned)(st.st_mode & 07777), path);
        return -EACCES;
    }
    return 0;
}

static int write_all(int fd, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = write(fd, s + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    return 0;
}

static int write_cert(const char *path, mode_t mode, const char *name, const cert_t *c,
                      int secret, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s%s", path, strerror(e),
                 e == EEXIST ? " (pacctl keygen never overwrites a key; pick another name)" : "");
        return -e;
    }
    char text[1024], when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    int len = snprintf(text, sizeof text,
                       "#   ****  Generated on %s UTC by pacctl keygen  ****\n"
                       "#   ZeroMQ CURVE %s Certificate\n"
                       "#   %s\n"
                       "\n"
                       "metadata\n"
                       "    name = \"%s\"\n"
                       "curve\n"
                       "    public-key = \"%s\"\n"
                       "%s%s%s",
                       when, secret ? "**Secret**" : "Public",
                       secret ? "DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its "
                                "permissions."
                              : "Exchange securely, or use a secure mechanism to verify the "
                                "contents of this file after exchange.",
                       name, c->public_z85, secret ? "    secret-key = \"" : "",
                       secret ? c->secret_z85 : "", secret ? "\"\n" : "");
    int rc = len > 0 && (size_t)len < sizeof text ? write_all(fd, text) : -ENAMETOOLONG;
    memset(text, 0, sizeof text);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
        unlink(path);
    }
    return rc;
}

int cert_generate(const char *path, const char *name, cert_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    for (const char *s = name; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || *s == 0x7f) {
            snprintf(err, errlen, "key name '%s' may not hold quotes, backslashes or control "
                     "characters", name);
            return -EINVAL;
        }
    if (strlen(name) > 200) {
        snprintf(err, errlen, "key name is longer than 200 characters");
        return -EINVAL;
    }
    char secret_path[4096];
    if ((size_t)snprintf(secret_path, sizeof secret_path, "%s_secret", path) >= sizeof secret_path) {
        snprintf(err, errlen, "path too long: %s", path);
        return -ENAMETOOLONG;
    }
    if (zmq_curve_keypair(out->public_z85, out->secret_z85) != 0) {
        snprintf(err, errlen, "zmq_curve_keypair failed: %s (libzmq built without CURVE?)",
                 zmq_strerror(zmq_errno()));
        return -ENOTSUP;
    }
    zmq_z85_decode(out->public_key, out->public_z85);
    zmq_z85_decode(out->secret_key, out->secret_z85);
    out->has_secret = 1;
    /* the secret first: if it exists already nothing is written */
    int rc = write_cert(secret_path, 0600, name, out, 1, err, errlen);
    if (rc != 0)
        return rc;
    rc = write_cert(path, 0644, name, out, 0, err, errlen);
    if (rc != 0)
        unlink(secret_path);
    return rc;
}
