/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "test-util.h"

/* Bit at a time, straight from the definition: whichever fast path
 * crc32c() picks on this CPU must agree with it. */
static uint32_t crc32c_ref(uint32_t crc, const unsigned char *p, size_t len) {
        crc = ~crc;
        while (len--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
        }
        return ~crc;
}

START_TEST(test_vectors) {
        static const unsigned char zeros[32] = {};
        unsigned char ones[32], inc[32];

        memset(ones, 0xff, sizeof(ones));
        for (unsigned i = 0; i < sizeof(inc); i++)
                inc[i] = (unsigned char) i;
        /* RFC 3720, appendix B.4, and the usual check value. */
        ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xe3069283u);
        ck_assert_uint_eq(crc32c(0, zeros, 32), 0x8a9136aau);
        ck_assert_uint_eq(crc32c(0, ones, 32), 0x62a8ab43u);
        ck_assert_uint_eq(crc32c(0, inc, 32), 0x46dd794eu);
        ck_assert_uint_eq(crc32c(0, "", 0), 0);
        ck_assert_uint_eq(crc32c(0x12345678u, NULL, 0), 0x12345678u);
}
END_TEST

START_TEST(test_against_reference) {
        /* Every alignment and length around the 8-byte steps. */
        unsigned char buf[300];

        srand(1);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (unsigned char) rand();
        for (size_t off = 0; off < 16; off++)
                for (size_t len = 0; off + len <= sizeof(buf); len += len < 40 ? 1 : 13)
                        ck_assert_msg(crc32c(0, buf + off, len) == crc32c_ref(0, buf + off, len), "off %zu len %zu",
                                      off, len);
}
END_TEST

START_TEST(test_extend) {
        /* crc32c(crc32c(0, a), b) == crc32c(0, a + b), at any split. */
        unsigned char buf[100];
        uint32_t whole;

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (unsigned char) (i * 7 + 3);
        whole = crc32c(0, buf, sizeof(buf));
        for (size_t split = 0; split <= sizeof(buf); split++)
                ck_assert_uint_eq(crc32c(crc32c(0, buf, split), buf + split, sizeof(buf) - split), whole);
}
END_TEST

static Suite *crc32c_suite(void) {
        Suite *s = suite_create("crc32c");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_vectors);
        tcase_add_test(tc, test_against_reference);
        tcase_add_test(tc, test_extend);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(crc32c_suite());
}
