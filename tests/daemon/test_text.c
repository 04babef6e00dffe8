/* text_escape: peer-supplied strings become one printable, bounded line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "pacd_text.h"

static void test_printable_text_passes(void **state)
{
    (void)state;
    char out[64];
    assert_string_equal(text_escape_str(out, sizeof out, "pacctl on host-1 (v2)"),
                        "pacctl on host-1 (v2)");
    assert_string_equal(text_escape_str(out, sizeof out, NULL), "");
    assert_string_equal(text_escape_str(out, sizeof out, "a<0>b"), "a<0>b");
}

static void test_controls_newlines_escape_and_priority_prefix_are_escaped(void **state)
{
    (void)state;
    char out[128];
    assert_string_equal(text_escape_str(out, sizeof out, "\n<0>evil\x1b[31m"),
                        "\\x0a<0>evil\\x1b[31m");
    assert_string_equal(text_escape_str(out, sizeof out, "<3>forged"), "\\x3c3>forged");
    assert_string_equal(text_escape_str(out, sizeof out, "a\\x0ab\r\t\x7f\xc3\xa9"),
                        "a\\\\x0ab\\x0d\\x09\\x7f\\xc3\\xa9");
    /* an embedded NUL is shown, not taken as the end */
    assert_string_equal(text_escape(out, sizeof out, "front\0x", 7), "front\\x00x");
}

static void test_long_input_is_cut_with_dots(void **state)
{
    (void)state;
    char in[1000], out[TEXT_ESCAPED_MAX];
    memset(in, '\n', sizeof in);
    text_escape(out, sizeof out, in, sizeof in);
    size_t n = strlen(out);
    assert_true(n < sizeof out);
    assert_string_equal(out + n - 3, "...");
    /* cut at an escape boundary: only whole \x0a before the dots */
    assert_int_equal((n - 3) % 4, 0);
    for (size_t i = 0; i + 3 < n; i += 4)
        assert_memory_equal(out + i, "\\x0a", 4);
    /* exactly fitting input is not cut */
    char small[8];
    assert_string_equal(text_escape_str(small, sizeof small, "1234567"), "1234567");
    assert_string_equal(text_escape_str(small, sizeof small, "12345678"), "1234...");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printable_text_passes),
        cmocka_unit_test(test_controls_newlines_escape_and_priority_prefix_are_escaped),
        cmocka_unit_test(test_long_input_is_cut_with_dots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
