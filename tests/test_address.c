/*
 * Addresses: what ss_address_parse accepts, what it refuses and why, and
 * how ss_address_format writes them back.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/un.h>

static const char *roundtrip(const char *text)
{
    static char buf[SS_ADDRESS_STRLEN];
    ss_address a;
    int err = ss_address_parse(&a, text);

    expect_true(err == 0, "parse '%s': %s", text, ss_last_error());
    return ss_address_format(&a, buf, sizeof buf);
}

static void test_ipv4_with_port(void **state)
{
    (void)state;
    assert_string_equal(roundtrip("127.0.0.1:8080"), "127.0.0.1:8080");
    assert_string_equal(roundtrip("0.0.0.0:0"), "0.0.0.0:0");
}

static void test_bracketed_ipv6(void **state)
{
    ss_address a;

    (void)state;
    assert_string_equal(roundtrip("[::1]:8080"), "[::1]:8080");
    assert_int_equal(ss_address_parse(&a, "[::1]:8080"), 0);
    assert_int_equal(a.storage.ss_family, AF_INET6);
    assert_int_equal(ss_address_port(&a), 8080);
}

static void test_all_interfaces_is_dual_stack_wildcard(void **state)
{
    (void)state;
    assert_string_equal(roundtrip(":8080"), "[::]:8080");
    assert_string_equal(roundtrip("*:9"), "[::]:9");
}

static void test_host_name_resolves_preferring_ipv4(void **state)
{
    (void)state;
    assert_string_equal(roundtrip("localhost:80"), "127.0.0.1:80");
}

static void test_unix_paths(void **state)
{
    ss_address a;

    (void)state;
    assert_string_equal(roundtrip("/tmp/x.sock"), "/tmp/x.sock");
    assert_string_equal(roundtrip("./x.sock"), "./x.sock");
    assert_string_equal(roundtrip("unix:rel.sock"), "rel.sock");
    assert_int_equal(ss_address_parse(&a, "/tmp/x.sock"), 0);
    assert_int_equal(a.storage.ss_family, AF_UNIX);
    assert_int_equal(ss_address_port(&a), -1);
}

static void test_abstract_unix_name(void **state)
{
    ss_address a;
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a.storage;

    (void)state;
    assert_int_equal(ss_address_parse(&a, "@ss-test"), 0);
    assert_int_equal(sun->sun_path[0], '\0');
    assert_string_equal(roundtrip("@ss-test"), "@ss-test");
    assert_string_equal(roundtrip("unix:@name"), "@name");
}

static void expect_refused(const char *text, int err, const char *mention)
{
    ss_address a;
    int rc = ss_address_parse(&a, text);

    expect_true(rc == err, "parse '%s' returned %d (%s), expected %d",
                text ? text : "(null)", rc, ss_strerror(rc), err);
    expect_true(strstr(ss_last_error(), mention) != NULL,
                "the message '%s' should mention '%s'", ss_last_error(),
                mention);
}

static void test_bad_addresses_are_refused_with_a_reason(void **state)
{
    (void)state;
    expect_refused(NULL, -EINVAL, "empty");
    expect_refused("", -EINVAL, "empty");
    expect_refused("127.0.0.1", -EINVAL, "127.0.0.1");
    expect_refused("127.0.0.1:", -EINVAL, "missing port");
    expect_refused("127.0.0.1:http", -EINVAL, "not a number");
    expect_refused("127.0.0.1:80x", -EINVAL, "not a number");
    expect_refused("127.0.0.1:65536", -EINVAL, "out of range");
    expect_refused("127.0.0.1:-1", -EINVAL, "out of range");
    expect_refused("[::1", -EINVAL, "[::1");
    expect_refused("[nonsense]:80", -EINVAL, "nonsense");
    expect_refused("::1:80", -EINVAL, "brackets");
    expect_refused("no-such-host.invalid:80", -ENXIO, "no-such-host.invalid");
}

static void test_overlong_unix_path_is_enametoolong(void **state)
{
    char path[200];

    (void)state;
    memset(path, 'a', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    expect_refused(path, -ENAMETOOLONG, "Unix socket path");
}

static void test_format_truncates_to_the_buffer(void **state)
{
    ss_address a;
    char small[5];

    (void)state;
    assert_int_equal(ss_address_parse(&a, "127.0.0.1:8080"), 0);
    assert_string_equal(ss_address_format(&a, small, sizeof small), "127.");
    assert_string_equal(ss_address_format(NULL, small, sizeof small), "(nul");
}

static void test_format_unnamed_unix_peer(void **state)
{
    ss_address a = {.len = sizeof(sa_family_t)};
    char buf[SS_ADDRESS_STRLEN];

    (void)state;
    a.storage.ss_family = AF_UNIX;
    assert_string_equal(ss_address_format(&a, buf, sizeof buf), "(unnamed)");
}

static void test_version_and_strerror(void **state)
{
    (void)state;
    assert_non_null(strchr(ss_version(), '.'));
    assert_string_equal(ss_strerror(-ECONNRESET), strerror(ECONNRESET));
    assert_string_equal(ss_strerror(ECONNRESET), strerror(ECONNRESET));
    assert_int_equal(SS_ABORT, -ECANCELED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_with_port),
        cmocka_unit_test(test_bracketed_ipv6),
        cmocka_unit_test(test_all_interfaces_is_dual_stack_wildcard),
        cmocka_unit_test(test_host_name_resolves_preferring_ipv4),
        cmocka_unit_test(test_unix_paths),
        cmocka_unit_test(test_abstract_unix_name),
        cmocka_unit_test(test_bad_addresses_are_refused_with_a_reason),
        cmocka_unit_test(test_overlong_unix_path_is_enametoolong),
        cmocka_unit_test(test_format_truncates_to_the_buffer),
        cmocka_unit_test(test_format_unnamed_unix_peer),
        cmocka_unit_test(test_version_and_strerror),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
