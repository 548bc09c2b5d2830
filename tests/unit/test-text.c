/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include "text.h"

#define V(s) utf8_valid(s, sizeof(s) - 1)

START_TEST(test_utf8) {
        ck_assert(V(""));
        ck_assert(V("plain ascii \t\n"));
        ck_assert(V("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")); /* é € 😀 */
        ck_assert(V("\xed\x9f\xbf"));                             /* U+D7FF, below the surrogates */
        ck_assert(V("\xf4\x8f\xbf\xbf"));                         /* U+10FFFF */
        ck_assert(utf8_valid("a\0b", 3));                         /* NUL is a character */
        ck_assert(!V("\x80"));                                    /* a lone continuation byte */
        ck_assert(!V("\xc3"));                                    /* cut */
        ck_assert(!V("\xe2\x82"));                                /* cut */
        ck_assert(!V("\xc0\xaf"));                                /* overlong "/" */
        ck_assert(!V("\xc1\xbf"));
        ck_assert(!V("\xe0\x80\xaf"));                            /* overlong */
        ck_assert(!V("\xf0\x80\x80\xaf"));                        /* overlong */
        ck_assert(!V("\xed\xa0\x80"));                            /* U+D800, a surrogate */
        ck_assert(!V("\xf4\x90\x80\x80"));                        /* past U+10FFFF */
        ck_assert(!V("\xf5\x80\x80\x80"));
        ck_assert(!V("\xff"));
        ck_assert(!V("ok\xc3("));                                 /* bad continuation */
}
END_TEST

START_TEST(test_sanitize) {
        size_t n;
        char *t = utf8_sanitize("ok \xc3\xa9 \xff\xc3(", 9, &n);

        ck_assert_str_eq(t, "ok \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd(");
        ck_assert_uint_eq(n, strlen(t));
        ck_assert(utf8_valid(t, n));
        free(t);
}
END_TEST

static void roundtrip(const char *data, size_t len, const char *want) {
        size_t n, m;
        char *enc = base64_encode(data, len, &n), *dec;

        ck_assert_ptr_nonnull(enc);
        ck_assert_str_eq(enc, want);
        ck_assert_uint_eq(n, strlen(want));
        ck_assert_int_eq(base64_decode(enc, n, &dec, &m), 0);
        ck_assert_uint_eq(m, len);
        ck_assert(memcmp(dec, data, len) == 0);
        free(enc);
        free(dec);
}

START_TEST(test_base64_vectors) {
        /* RFC 4648, section 10. */
        roundtrip("", 0, "");
        roundtrip("f", 1, "Zg==");
        roundtrip("fo", 2, "Zm8=");
        roundtrip("foo", 3, "Zm9v");
        roundtrip("foob", 4, "Zm9vYg==");
        roundtrip("fooba", 5, "Zm9vYmE=");
        roundtrip("foobar", 6, "Zm9vYmFy");
        roundtrip("\0\xff\xfe", 3, "AP/+");
}
END_TEST

START_TEST(test_base64_every_byte) {
        unsigned char buf[256 * 3];
        size_t n, m;
        char *enc, *dec;

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (unsigned char) (i * 37 + i / 256);
        for (size_t len = 0; len <= sizeof(buf); len += len < 10 ? 1 : 97) {
                enc = base64_encode(buf, len, &n);
                ck_assert_int_eq(base64_decode(enc, n, &dec, &m), 0);
                ck_assert_uint_eq(m, len);
                ck_assert(memcmp(dec, buf, len) == 0);
                free(enc);
                free(dec);
        }
}
END_TEST

START_TEST(test_base64_refused) {
        static const char *bad[] = { "Z", "Zg=", "Zg", "Z===", "=Zg=", "Zg=a", "Zm9v!A==", "Zm 9", "Zg==Zg==" };
        char *dec;
        size_t m;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ck_assert_msg(base64_decode(bad[i], strlen(bad[i]), &dec, &m) == -EINVAL, "%s", bad[i]);
}
END_TEST

static Suite *text_suite(void) {
        Suite *s = suite_create("text");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_utf8);
        tcase_add_test(tc, test_sanitize);
        tcase_add_test(tc, test_base64_vectors);
        tcase_add_test(tc, test_base64_every_byte);
        tcase_add_test(tc, test_base64_refused);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(text_suite());
}
