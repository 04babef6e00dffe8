/* cert: CZMQ certificate files (ZPL) — parsing, the secret file's mode,
 * generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "pacd_cert.h"

static char tmpdir[256];
static char pub_z85[41], sec_z85[41];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pacd-test-cert-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return zmq_curve_keypair(pub_z85, sec_z85);
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int parse(const char *text, cert_t *c, char *err)
{
    return cert_parse(text, strlen(text), c, err, 256);
}

static void test_parse_public_and_secret(void **state)
{
    (void)state;
    char text[1024], err[256] = "";
    cert_t c;
    snprintf(text, sizeof text,
             "#   ZeroMQ CURVE Public Certificate\n\nmetadata\n    name = \"x\"\n"
             "curve\n    public-key = \"%s\"\n", pub_z85);
    assert_int_equal(parse(text, &c, err), 0);
    assert_string_equal(c.public_z85, pub_z85);
    assert_false(c.has_secret);
    uint8_t want[32];
    zmq_z85_decode(want, pub_z85);
    assert_memory_equal(c.public_key, want, 32);
    /* CRLF, single quotes, an unquoted value with a comment, a tab */
    snprintf(text, sizeof text, "curve\r\n\tpublic-key = '%s'\r\n    secret-key = %s # mine\r\n",
             pub_z85, sec_z85);
    assert_int_equal(parse(text, &c, err), 0);
    assert_true(c.has_secret);
    assert_string_equal(c.secret_z85, sec_z85);
    /* '#' is a Z85 digit: inside an unquoted value it is not a comment */
    const char *hash_key = "0000#00000000000000000000000000000000000";
    snprintf(text, sizeof text, "curve\n    public-key = %s # a comment\n", hash_key);
    assert_int_equal(parse(text, &c, err), 0);
    assert_string_equal(c.public_z85, hash_key);
    /* a key in another section is not the curve key */
    snprintf(text, sizeof text, "metadata\n    public-key = \"%s\"\ncurve\n", pub_z85);
    assert_int_equal(parse(text, &c, err), -EINVAL);
    assert_non_null(strstr(err, "no public-key"));
}

static void test_parse_rejects(void **state)
{
    (void)state;
    char text[1024], err[256] = "";
    cert_t c;
    assert_int_equal(parse("", &c, err), -EINVAL);
    assert_int_equal(parse("curve\n    public-key = \"short\"\n", &c, err), -EINVAL);
    assert_non_null(strstr(err, "40 Z85"));
    /* a character outside Z85 (space is not in the alphabet) */
    snprintf(text, sizeof text, "curve\n    public-key = \"%.39s \"\n", pub_z85);
    assert_int_equal(parse(text, &c, err), -EINVAL);
    snprintf(text, sizeof text, "curve\n    public-key = \"%s\n", pub_z85);
    assert_int_equal(parse(text, &c, err), -EINVAL);
    assert_non_null(strstr(err, "quote"));
    snprintf(text, sizeof text, "curve\n    public-key = \"%s\"\n    public-key = \"%s\"\n",
             pub_z85, pub_z85);
    assert_int_equal(parse(text, &c, err), -EINVAL);
    assert_non_null(strstr(err, "twice"));
    /* a secret key of another pair */
    char p2[41], s2[41];
    assert_int_equal(zmq_curve_keypair(p2, s2), 0);
    snprintf(text, sizeof text, "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
             pub_z85, s2);
    assert_int_equal(parse(text, &c, err), -EINVAL);
    assert_non_null(strstr(err, "does not belong"));
    /* an embedded NUL */
    char nul[] = "curve\n    public-key = \"\0\"\n";
    assert_int_equal(cert_parse(nul, sizeof nul - 1, &c, err, sizeof err), -EINVAL);
}

static void test_generate_and_load(void **state)
{
    (void)state;
    char path[512], sec[600], err[512] = "";
    snprintf(path, sizeof path, "%s/alice", tmpdir);
    snprintf(sec, sizeof sec, "%s_secret", path);
    cert_t g, pub, s;
    assert_int_equal(cert_generate(path, "alice", &g, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(sec, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(cert_load(path, 0, &pub, err, sizeof err), 0);
    assert_int_equal(cert_load(sec, 1, &s, err, sizeof err), 0);
    assert_string_equal(pub.public_z85, g.public_z85);
    assert_string_equal(s.secret_z85, g.secret_z85);
    assert_false(pub.has_secret);
    /* the public certificate is not a secret key */
    assert_int_equal(cert_load(path, 1, &s, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "no secret-key"));
    /* never overwrites */
    assert_int_equal(cert_generate(path, "alice", &g, err, sizeof err), -EEXIST);
    /* a secret others can read is refused, with the fix in the message */
    assert_int_equal(chmod(sec, 0640), 0);
    assert_int_equal(cert_load(sec, 1, &s, err, sizeof err), -EACCES);
    assert_non_null(strstr(err, "chmod 600"));
    /* a public certificate may be world-readable */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(cert_load(path, 0, &pub, err, sizeof err), 0);
    assert_int_equal(cert_load("/nonexistent/x", 0, &pub, err, sizeof err), -ENOENT);
    assert_int_equal(cert_generate(path, "bad\"name", &g, err, sizeof err), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_public_and_secret),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_generate_and_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
