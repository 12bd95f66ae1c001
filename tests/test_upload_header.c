/*
 * test_upload_header.c - what the upload header reader accepts and refuses.
 *
 * Every input is parsed from a copy that ends exactly where a PROT_NONE
 * page begins (picohttpparser's test.c does the same), so a read past the
 * end of any input below faults at once instead of passing unnoticed.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "upload_header.h"
#include "parser_check.h"

static int parse(const char *json, size_t len, struct upload_header *h,
                 const char **why)
{
    struct guarded g = guarded_copy(json, len);
    int rc;

    *why = "(not set)";
    rc = upload_header_parse(g.data, len, h, why);
    guarded_free(&g);
    return rc;
}

static void parses_at(const char *file, int line, const char *json,
                      size_t len, struct upload_header *h)
{
    const char *why;

    if (parse(json, len, h, &why) != 0)
        failed_at(file, line, "expected %s to parse, but it was refused: "
                  "%s at byte %zu", show(json, len), why, h->error_offset);
}

static void refused_at(const char *file, int line, const char *json,
                       size_t len, const char *reason)
{
    struct upload_header h;
    const char *why;

    if (parse(json, len, &h, &why) == 0)
        failed_at(file, line, "expected %s to be refused with \"%s\", but "
                  "it parsed", show(json, len), reason);
    if (strcmp(why, reason) != 0)
        failed_at(file, line, "expected %s to be refused with \"%s\", but "
                  "the reason was \"%s\"", show(json, len), reason, why);
}

/* Literals, so that sizeof counts an embedded NUL. */
#define PARSES(lit, h) parses_at(__FILE__, __LINE__, lit, sizeof lit - 1, h)
#define REFUSED(lit, reason) \
    refused_at(__FILE__, __LINE__, lit, sizeof lit - 1, reason)

static void name_ok_at(const char *file, int line, const char *name,
                       size_t len)
{
    struct guarded g = guarded_copy(name, len);
    const char *why = "(not set)";
    int rc = upload_filename_ok(g.data, len, &why);

    guarded_free(&g);
    if (rc != 0)
        failed_at(file, line, "expected the name %s to be accepted, but: %s",
                  show(name, len), why);
}

static void name_refused_at(const char *file, int line, const char *name,
                            size_t len, const char *reason)
{
    struct guarded g = guarded_copy(name, len);
    const char *why = "(not set)";
    int rc = upload_filename_ok(g.data, len, &why);

    guarded_free(&g);
    if (rc == 0)
        failed_at(file, line, "expected the name %s to be refused with "
                  "\"%s\", but it was accepted", show(name, len), reason);
    if (strcmp(why, reason) != 0)
        failed_at(file, line, "expected the name %s to be refused with "
                  "\"%s\", but the reason was \"%s\"", show(name, len),
                  reason, why);
}

#define NAME_OK(lit) name_ok_at(__FILE__, __LINE__, lit, sizeof lit - 1)
#define NAME_REFUSED(lit, reason) \
    name_refused_at(__FILE__, __LINE__, lit, sizeof lit - 1, reason)

static void expect_text(const char *what, const char *got, size_t got_len,
                        const char *want, size_t want_len)
{
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        char g[512];

        snprintf(g, sizeof g, "%s", show(got, got_len));
        print_error("expected %s to be %s, got %s\n", what,
                    show(want, want_len), g);
        fail();
    }
}

#define EXPECT_FILENAME(h, lit) \
    expect_text("filename", (h)->filename, (h)->filename_len, lit, \
                sizeof lit - 1)

/* ---- what python's json.dumps writes --------------------------------- */

static void reads_a_put_header_written_by_json_dumps(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"cmd\": \"put\", \"filename\": \"a.txt\", \"filesize\": 123}",
           &h);
    assert_string_equal(h.cmd, "put");
    EXPECT_FILENAME(&h, "a.txt");
    assert_int_equal(h.filesize, 123);
    assert_int_equal(h.present, UPLOAD_HAVE_CMD | UPLOAD_HAVE_FILENAME |
                                    UPLOAD_HAVE_FILESIZE);
}

static void decodes_a_non_ascii_name_escaped_by_json_dumps(void **state)
{
    struct upload_header h;

    (void)state;
    /* json.dumps({"cmd": "put", "filename": "文件 é.txt", ...}) */
    PARSES("{\"cmd\": \"put\", \"filename\": \"\\u6587\\u4ef6 \\u00e9.txt\", "
           "\"filesize\": 5}", &h);
    EXPECT_FILENAME(&h, "\xE6\x96\x87\xE4\xBB\xB6 \xC3\xA9.txt");
}

static void decodes_a_surrogate_pair_into_one_character(void **state)
{
    struct upload_header h;

    (void)state;
    /* json.dumps writes U+1F600 as a UTF-16 pair; upper case hex too. */
    PARSES("{\"filename\": \"\\ud83d\\uDE00.png\"}", &h);
    EXPECT_FILENAME(&h, "\xF0\x9F\x98\x80.png");
}

static void reads_raw_utf8_written_with_ensure_ascii_false(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"cmd\": \"put\", \"filename\": \"\xE6\x96\x87\xE4\xBB\xB6.txt\""
           ", \"filesize\": 2}", &h);
    EXPECT_FILENAME(&h, "\xE6\x96\x87\xE4\xBB\xB6.txt");
}

static void reads_keys_in_any_order(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"filesize\": 7, \"filename\": \"b\", \"cmd\": \"put\"}", &h);
    assert_string_equal(h.cmd, "put");
    EXPECT_FILENAME(&h, "b");
    assert_int_equal(h.filesize, 7);
}

static void reads_compact_separators_and_surrounding_whitespace(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES(" \t\r\n{\"cmd\":\"get\",\"filename\":\"c\"}\r\n ", &h);
    assert_string_equal(h.cmd, "get");
    EXPECT_FILENAME(&h, "c");
}

static void skips_unknown_keys_of_every_scalar_type(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"v\": 2, \"md5\": \"d41d8cd9\", \"f\": -1.5e+3, \"t\": true, "
           "\"n\": null, \"x\": false, \"cmd\": \"put\", \"filename\": \"a\", "
           "\"filesize\": 0, \"z\": 0.0}", &h);
    assert_string_equal(h.cmd, "put");
    assert_int_equal(h.filesize, 0);
}

static void accepts_an_unknown_key_given_twice(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"x\": 1, \"x\": 2, \"cmd\": \"list\"}", &h);
    assert_string_equal(h.cmd, "list");
}

static void marks_absent_keys_and_sets_filesize_to_minus_one(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"cmd\": \"list\"}", &h);
    assert_string_equal(h.cmd, "list");
    assert_int_equal(h.present, UPLOAD_HAVE_CMD);
    assert_int_equal(h.filesize, -1);
    assert_int_equal(h.filename_len, 0);
    assert_string_equal(h.filename, "");
}

static void reads_an_empty_object_as_no_keys(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{ }", &h);
    assert_int_equal(h.present, 0);
    assert_string_equal(h.cmd, "");
}

static void decodes_every_simple_escape(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"filename\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", &h);
    EXPECT_FILENAME(&h, "\"\\/\b\f\n\r\t");
}

static void compares_keys_after_unescaping_them(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"cm\\u0064\": \"put\"}", &h);
    assert_string_equal(h.cmd, "put");
}

static void keeps_a_nul_in_the_filename_visible_by_length(void **state)
{
    struct upload_header h;
    const char *why = NULL;

    (void)state;
    PARSES("{\"filename\": \"a\\u0000/../b\"}", &h);
    assert_int_equal(h.filename_len, 7);
    assert_int_equal(upload_filename_ok(h.filename, h.filename_len, &why), -1);
    assert_string_equal(why, "filename contains NUL");
}

static void reads_filesize_up_to_int64_max(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"filesize\": 9223372036854775807}", &h);
    assert_true(h.filesize == INT64_MAX);
}

static void reads_minus_zero_as_filesize_zero(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"filesize\": -0}", &h);
    assert_int_equal(h.filesize, 0);
}

static void accepts_a_filename_of_255_bytes(void **state)
{
    struct upload_header h;
    char json[400], name[256];

    (void)state;
    memset(name, 'n', 255);
    name[255] = '\0';
    snprintf(json, sizeof json, "{\"filename\": \"%s\"}", name);
    parses_at(__FILE__, __LINE__, json, strlen(json), &h);
    assert_int_equal(h.filename_len, 255);
    assert_string_equal(h.filename, name);
}

static void accepts_a_255_byte_filename_written_as_escapes(void **state)
{
    struct upload_header h;
    char json[2048];
    size_t n = 0;
    int i;

    (void)state;
    /* 85 times U+6587, three UTF-8 bytes each, six JSON bytes each. */
    n += (size_t)snprintf(json + n, sizeof json - n, "{\"filename\": \"");
    for (i = 0; i < 85; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "\\u6587");
    n += (size_t)snprintf(json + n, sizeof json - n, "\"}");
    parses_at(__FILE__, __LINE__, json, n, &h);
    assert_int_equal(h.filename_len, 255);
}

static void accepts_a_cmd_of_15_bytes(void **state)
{
    struct upload_header h;

    (void)state;
    PARSES("{\"cmd\": \"abcdefghijklmno\"}", &h);
    assert_string_equal(h.cmd, "abcdefghijklmno");
}

/* ---- the shape of the document ---------------------------------------- */

static void refuses_empty_input(void **state)
{
    (void)state;
    REFUSED("", "unexpected end of input");
    REFUSED(" \r\n\t", "unexpected end of input");
}

static void refuses_a_document_that_is_not_an_object(void **state)
{
    (void)state;
    REFUSED("[]", "header is not a JSON object");
    REFUSED("\"put\"", "header is not a JSON object");
    REFUSED("42", "header is not a JSON object");
    REFUSED("null", "header is not a JSON object");
}

static void refuses_data_after_the_object(void **state)
{
    (void)state;
    REFUSED("{}{}", "data after the object");
    REFUSED("{\"cmd\": \"list\"} x", "data after the object");
    REFUSED("{}\0", "data after the object");
}

static void refuses_every_truncation_of_a_valid_header(void **state)
{
    static const char json[] =
        "{\"cmd\": \"put\", \"filename\": \"\\ud83d\\ude00\xC3\xA9\", "
        "\"filesize\": 12, \"t\": true, \"f\": -1.5e3}";
    struct upload_header h;
    const char *why;
    size_t len;

    (void)state;
    for (len = 0; len < sizeof json - 1; len++)
        if (parse(json, len, &h, &why) == 0)
            failed_at(__FILE__, __LINE__, "expected the first %zu bytes of "
                      "%s to be refused, but they parsed", len,
                      show(json, sizeof json - 1));
}

static void refuses_a_trailing_comma(void **state)
{
    (void)state;
    REFUSED("{\"cmd\": \"put\",}", "expected a string key");
}

static void refuses_a_missing_colon_or_comma(void **state)
{
    (void)state;
    REFUSED("{\"cmd\" \"put\"}", "expected ':' after key");
    REFUSED("{\"cmd\": \"put\" \"filesize\": 1}", "expected ',' or '}'");
}

static void refuses_python_repr_instead_of_json(void **state)
{
    (void)state;
    REFUSED("{'cmd': 'put'}", "expected a string key");
    REFUSED("{\"cmd\": 'put'}", "invalid value");
    REFUSED("{\"t\": True}", "invalid value");
    REFUSED("{\"n\": None}", "invalid value");
}

static void refuses_an_unquoted_key(void **state)
{
    (void)state;
    REFUSED("{cmd: \"put\"}", "expected a string key");
}

static void refuses_nested_values_under_any_key(void **state)
{
    (void)state;
    REFUSED("{\"cmd\": {\"x\": 1}}", "nested value not allowed");
    REFUSED("{\"filename\": [\"a\"]}", "nested value not allowed");
    REFUSED("{\"extra\": []}", "nested value not allowed");
    REFUSED("{\"extra\": {}}", "nested value not allowed");
}

static void refuses_a_known_key_given_twice(void **state)
{
    (void)state;
    REFUSED("{\"cmd\": \"put\", \"cmd\": \"get\"}", "duplicate key");
    REFUSED("{\"filesize\": 1, \"filesize\": 1}", "duplicate key");
    /* Spelt differently, the same key once unescaped. */
    REFUSED("{\"filename\": \"a\", \"file\\u006eame\": \"b\"}",
            "duplicate key");
}

static void reports_the_offset_of_the_offending_byte(void **state)
{
    struct upload_header h;
    const char *why;

    (void)state;
    assert_int_equal(parse("{\"cmd\": \"p\\x\"}", 14, &h, &why), -1);
    assert_string_equal(why, "invalid escape");
    assert_int_equal(h.error_offset, 10);
}

/* ---- values of the known keys ----------------------------------------- */

static void refuses_cmd_and_filename_that_are_not_strings(void **state)
{
    (void)state;
    REFUSED("{\"cmd\": 1}", "cmd is not a string");
    REFUSED("{\"cmd\": null}", "cmd is not a string");
    REFUSED("{\"filename\": 1}", "filename is not a string");
    REFUSED("{\"filename\": false}", "filename is not a string");
}

static void refuses_a_filename_of_256_bytes(void **state)
{
    char json[400], name[257];

    (void)state;
    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(json, sizeof json, "{\"filename\": \"%s\"}", name);
    refused_at(__FILE__, __LINE__, json, strlen(json), "filename too long");
}

static void refuses_a_cmd_of_16_bytes(void **state)
{
    (void)state;
    REFUSED("{\"cmd\": \"abcdefghijklmnop\"}", "cmd too long");
}

static void refuses_a_cmd_with_a_nul(void **state)
{
    (void)state;
    REFUSED("{\"cmd\": \"put\\u0000x\"}", "cmd contains NUL");
}

static void refuses_a_filesize_that_is_not_an_integer(void **state)
{
    (void)state;
    REFUSED("{\"filesize\": \"123\"}", "filesize is not an integer");
    REFUSED("{\"filesize\": null}", "filesize is not an integer");
    REFUSED("{\"filesize\": 1.0}", "filesize is not an integer");
    REFUSED("{\"filesize\": 1e3}", "filesize is not an integer");
    REFUSED("{\"filesize\": 1E+0}", "filesize is not an integer");
}

static void refuses_a_negative_filesize(void **state)
{
    (void)state;
    REFUSED("{\"filesize\": -1}", "filesize is negative");
    REFUSED("{\"filesize\": -99999999999999999999}", "filesize is negative");
}

static void refuses_a_filesize_past_int64_max(void **state)
{
    (void)state;
    REFUSED("{\"filesize\": 9223372036854775808}", "filesize too large");
    REFUSED("{\"filesize\": 18446744073709551616}", "filesize too large");
    REFUSED("{\"filesize\": 100000000000000000000000}", "filesize too large");
}

/* ---- RFC 8259 numbers and literals ------------------------------------ */

static void refuses_numbers_outside_the_json_grammar(void **state)
{
    (void)state;
    REFUSED("{\"x\": 01}", "invalid number");
    REFUSED("{\"x\": -}", "invalid number");
    REFUSED("{\"x\": 1.}", "invalid number");
    REFUSED("{\"x\": 1.e5}", "invalid number");
    REFUSED("{\"x\": 1e}", "invalid number");
    REFUSED("{\"x\": 1e+}", "invalid number");
    REFUSED("{\"x\": -a}", "invalid number");
    REFUSED("{\"x\": .5}", "invalid value");
    REFUSED("{\"x\": +1}", "invalid value");
    REFUSED("{\"x\": 0x10}", "expected ',' or '}'");
}

static void refuses_nan_and_infinity_that_python_writes(void **state)
{
    (void)state;
    REFUSED("{\"x\": NaN}", "invalid value");
    REFUSED("{\"x\": Infinity}", "invalid value");
    REFUSED("{\"x\": -Infinity}", "invalid number");
}

static void refuses_misspelt_literals(void **state)
{
    (void)state;
    REFUSED("{\"x\": tru}", "invalid value");
    REFUSED("{\"x\": nul", "invalid value");
    REFUSED("{\"x\": falsey}", "expected ',' or '}'");
}

/* ---- strings ---------------------------------------------------------- */

static void refuses_raw_control_characters_in_strings(void **state)
{
    (void)state;
    REFUSED("{\"filename\": \"a\tb\"}", "control character in string");
    REFUSED("{\"filename\": \"a\nb\"}", "control character in string");
    REFUSED("{\"filename\": \"a\0b\"}", "control character in string");
    REFUSED("{\"k\x1F\": 1}", "control character in string");
}

static void refuses_invalid_escapes(void **state)
{
    (void)state;
    REFUSED("{\"filename\": \"\\x41\"}", "invalid escape");
    REFUSED("{\"filename\": \"\\'\"}", "invalid escape");
    REFUSED("{\"filename\": \"\\U0041\"}", "invalid escape");
    REFUSED("{\"filename\": \"\\\0\"}", "invalid escape");
    REFUSED("{\"filename\": \"\\u12\"}", "invalid \\u escape");
    REFUSED("{\"filename\": \"\\u12G4\"}", "invalid \\u escape");
    REFUSED("{\"filename\": \"\\", "unterminated string");
}

static void refuses_a_lone_surrogate(void **state)
{
    (void)state;
    REFUSED("{\"filename\": \"\\ud83d\"}", "lone surrogate");
    REFUSED("{\"filename\": \"\\ude00\"}", "lone surrogate");
    REFUSED("{\"filename\": \"\\ud83d\\u0041\"}", "lone surrogate");
    REFUSED("{\"filename\": \"\\ud83d\\ud83d\"}", "lone surrogate");
    REFUSED("{\"filename\": \"\\ude00\\ud83d\"}", "lone surrogate");
    REFUSED("{\"filename\": \"\\ud83dx\"}", "lone surrogate");
}

static void refuses_invalid_utf8(void **state)
{
    (void)state;
    /* Overlong forms ('/' in two bytes, in three), an encoded surrogate,
     * past U+10FFFF, a stray continuation byte, a sequence cut short. */
    REFUSED("{\"filename\": \"\xC0\xAF\"}", "invalid UTF-8");
    REFUSED("{\"filename\": \"\xE0\x80\xAF\"}", "invalid UTF-8");
    REFUSED("{\"filename\": \"\xED\xA0\x80\"}", "invalid UTF-8");
    REFUSED("{\"filename\": \"\xF4\x90\x80\x80\"}", "invalid UTF-8");
    REFUSED("{\"filename\": \"\x80\"}", "invalid UTF-8");
    REFUSED("{\"filename\": \"\xE6\x96\"}", "invalid UTF-8");
    REFUSED("{\"filename\": \"\xFF\"}", "invalid UTF-8");
    REFUSED("{\"x\": \"\xF5\x80\x80\x80\"}", "invalid UTF-8");
    REFUSED("{\"k\xC3\": 1}", "invalid UTF-8");
}

static void refuses_an_unterminated_string(void **state)
{
    (void)state;
    REFUSED("{\"filename\": \"abc", "unterminated string");
    REFUSED("{\"filename\": \"\xE6\x96", "invalid UTF-8");
}

/* ---- upload_filename_ok ------------------------------------------------ */

static void filename_ok_accepts_plain_and_utf8_names(void **state)
{
    (void)state;
    NAME_OK("a.txt");
    NAME_OK("\xE6\x96\x87\xE4\xBB\xB6 \xC3\xA9.txt");
    NAME_OK("...");
    NAME_OK(".hidden");
    NAME_OK("a..b");
    NAME_OK("back\\slash");
    NAME_OK("\xC2\xA0nbsp");
}

static void filename_ok_refuses_empty_dot_and_dot_dot(void **state)
{
    (void)state;
    NAME_REFUSED("", "filename is empty");
    NAME_REFUSED(".", "filename is . or ..");
    NAME_REFUSED("..", "filename is . or ..");
}

static void filename_ok_refuses_any_slash(void **state)
{
    (void)state;
    NAME_REFUSED("/etc/passwd", "filename contains '/'");
    NAME_REFUSED("../x", "filename contains '/'");
    NAME_REFUSED("a/b", "filename contains '/'");
    NAME_REFUSED("a/", "filename contains '/'");
}

static void filename_ok_refuses_nul(void **state)
{
    (void)state;
    NAME_REFUSED("a\0b", "filename contains NUL");
}

static void filename_ok_refuses_control_characters(void **state)
{
    (void)state;
    NAME_REFUSED("a\nb", "filename contains a control character");
    NAME_REFUSED("\t", "filename contains a control character");
    NAME_REFUSED("a\x7F", "filename contains a control character");
    NAME_REFUSED("a\xC2\x85", "filename contains a control character");
}

static void filename_ok_refuses_invalid_utf8(void **state)
{
    (void)state;
    NAME_REFUSED("a\xC0\xAF", "filename is not valid UTF-8");
    NAME_REFUSED("a\xC3", "filename is not valid UTF-8");
}

static void filename_ok_refuses_more_than_255_bytes(void **state)
{
    char name[256];
    const char *why = NULL;

    (void)state;
    memset(name, 'n', sizeof name);
    name_ok_at(__FILE__, __LINE__, name, 255);
    assert_int_equal(upload_filename_ok(name, 256, &why), -1);
    assert_string_equal(why, "filename too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_a_put_header_written_by_json_dumps),
        cmocka_unit_test(decodes_a_non_ascii_name_escaped_by_json_dumps),
        cmocka_unit_test(decodes_a_surrogate_pair_into_one_character),
        cmocka_unit_test(reads_raw_utf8_written_with_ensure_ascii_false),
        cmocka_unit_test(reads_keys_in_any_order),
        cmocka_unit_test(reads_compact_separators_and_surrounding_whitespace),
        cmocka_unit_test(skips_unknown_keys_of_every_scalar_type),
        cmocka_unit_test(accepts_an_unknown_key_given_twice),
        cmocka_unit_test(marks_absent_keys_and_sets_filesize_to_minus_one),
        cmocka_unit_test(reads_an_empty_object_as_no_keys),
        cmocka_unit_test(decodes_every_simple_escape),
        cmocka_unit_test(compares_keys_after_unescaping_them),
        cmocka_unit_test(keeps_a_nul_in_the_filename_visible_by_length),
        cmocka_unit_test(reads_filesize_up_to_int64_max),
        cmocka_unit_test(reads_minus_zero_as_filesize_zero),
        cmocka_unit_test(accepts_a_filename_of_255_bytes),
        cmocka_unit_test(accepts_a_255_byte_filename_written_as_escapes),
        cmocka_unit_test(accepts_a_cmd_of_15_bytes),
        cmocka_unit_test(refuses_empty_input),
        cmocka_unit_test(refuses_a_document_that_is_not_an_object),
        cmocka_unit_test(refuses_data_after_the_object),
        cmocka_unit_test(refuses_every_truncation_of_a_valid_header),
        cmocka_unit_test(refuses_a_trailing_comma),
        cmocka_unit_test(refuses_a_missing_colon_or_comma),
        cmocka_unit_test(refuses_python_repr_instead_of_json),
        cmocka_unit_test(refuses_an_unquoted_key),
        cmocka_unit_test(refuses_nested_values_under_any_key),
        cmocka_unit_test(refuses_a_known_key_given_twice),
        cmocka_unit_test(reports_the_offset_of_the_offending_byte),
        cmocka_unit_test(refuses_cmd_and_filename_that_are_not_strings),
        cmocka_unit_test(refuses_a_filename_of_256_bytes),
        cmocka_unit_test(refuses_a_cmd_of_16_bytes),
        cmocka_unit_test(refuses_a_cmd_with_a_nul),
        cmocka_unit_test(refuses_a_filesize_that_is_not_an_integer),
        cmocka_unit_test(refuses_a_negative_filesize),
        cmocka_unit_test(refuses_a_filesize_past_int64_max),
        cmocka_unit_test(refuses_numbers_outside_the_json_grammar),
        cmocka_unit_test(refuses_nan_and_infinity_that_python_writes),
        cmocka_unit_test(refuses_misspelt_literals),
        cmocka_unit_test(refuses_raw_control_characters_in_strings),
        cmocka_unit_test(refuses_invalid_escapes),
        cmocka_unit_test(refuses_a_lone_surrogate),
        cmocka_unit_test(refuses_invalid_utf8),
        cmocka_unit_test(refuses_an_unterminated_string),
        cmocka_unit_test(filename_ok_accepts_plain_and_utf8_names),
        cmocka_unit_test(filename_ok_refuses_empty_dot_and_dot_dot),
        cmocka_unit_test(filename_ok_refuses_any_slash),
        cmocka_unit_test(filename_ok_refuses_nul),
        cmocka_unit_test(filename_ok_refuses_control_characters),
        cmocka_unit_test(filename_ok_refuses_invalid_utf8),
        cmocka_unit_test(filename_ok_refuses_more_than_255_bytes),
        cmocka_unit_test(guard_page_faults_on_a_read_past_the_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
