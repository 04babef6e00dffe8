/* cert — CurveZMQ key files in CZMQ's certificate format (ZPL text), the
 * format zauth / zcertstore and `zcert_save` use, so keys made by either
 * tool work with the other:
 *
 *     #   ZeroMQ CURVE Public Certificate
 *     metadata
 *         name = "alice"
 *     curve
 *         public-key = "<40 Z85 characters>"
 *
 * The secret file (NAME_secret) has the same `curve` section plus
 * `secret-key = "<Z85>"`. Keys are 32 bytes (Z85: 40 characters).
 *
 * Used by pacd (its own secret key, the allow-list directories, the
 * bridge's driver_public_key), pacctl (keygen, --key/--server-key),
 * pacd-replay and the bridge drivers (bridge_bind, bridge_allow_start). Init-only / non-RT: these
 * read files and allocate nothing beyond the stack.
 */
#ifndef PACD_CERT_H
#define PACD_CERT_H

#include <stddef.h>
#include <stdint.h>

#define CERT_KEY_BYTES 32
#define CERT_Z85_LEN 40
#define CERT_MAX_FILE_BYTES 65536

typedef struct cert_s {
    uint8_t public_key[CERT_KEY_BYTES];
    uint8_t secret_key[CERT_KEY_BYTES];
    char public_z85[CERT_Z85_LEN + 1];
    char secret_z85[CERT_Z85_LEN + 1];
    int has_secret;               /* the file had a secret-key */
} cert_t;

/* Parse certificate text (len bytes, need not be NUL-terminated). Returns 0,
 * or -EINVAL with what is wrong in err (no `curve` section, no public-key,
 * a key that is not 40 Z85 characters, a secret-key that does not belong to
 * the public-key). */
int cert_parse(const char *text, size_t len, cert_t *out, char *err, size_t errlen);

/* Read and parse the certificate file at path. want_secret: the file must
 * hold a secret-key and must not be readable or writable by group or others
 * (mode & 077 == 0), else -EACCES with "chmod 600" in the message.
 * Returns 0, -ENOENT (cannot open), -EFBIG, -EINVAL, -EACCES; err names the
 * file and what to do. */
int cert_load(const char *path, int want_secret, cert_t *out, char *err, size_t errlen);

/* Make a new key pair (zmq_curve_keypair) and write it as PATH (public
 * certificate, mode 0644) and PATH_secret (mode 0600, created with
 * O_CREAT|O_EXCL, never chmod-ed after). `name` goes into the metadata.
 * Refuses to overwrite either file (-EEXIST). Returns 0 or a negative errno
 * with err set; on failure neither file is left behind. */
int cert_generate(const char *path, const char *name, cert_t *out, char *err, size_t errlen);

#endif
