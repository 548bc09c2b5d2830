/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "bitmap.h"
#include "test-util.h"

/* Reference: one bit at a time, the obvious way. */
static void ref_set(uint64_t *bm, uint64_t first, uint64_t count) {
        for (uint64_t i = first; i < first + count; i++)
                bm[i / 64] |= UINT64_C(1) << (i % 64);
}

START_TEST(test_words) {
        ck_assert_uint_eq(bitmap_words(0), 0);
        ck_assert_uint_eq(bitmap_words(1), 1);
        ck_assert_uint_eq(bitmap_words(64), 1);
        ck_assert_uint_eq(bitmap_words(65), 2);
        ck_assert_uint_eq(bitmap_words(128), 2);
}
END_TEST

START_TEST(test_set_range_boundaries) {
        /* Every start and length around the word boundaries of a 4-word
         * map, against the reference, including the bits left alone. */
        for (uint64_t first = 0; first < 200; first++)
                for (uint64_t count = 0; first + count <= 256; count += (count < 70 ? 1 : 37)) {
                        uint64_t bm[4] = {}, ref[4] = {};

                        bitmap_set_range(bm, first, count);
                        ref_set(ref, first, count);
                        ck_assert_msg(memcmp(bm, ref, sizeof(bm)) == 0, "first=%llu count=%llu",
                                      (unsigned long long) first, (unsigned long long) count);
                        ck_assert_uint_eq(bitmap_popcount(bm, 256), count);
                }
}
END_TEST

START_TEST(test_set_range_keeps_other_bits) {
        uint64_t bm[3] = { UINT64_C(1) << 5, 0, UINT64_C(1) << 63 };

        bitmap_set_range(bm, 60, 8); /* 60..67, across words 0 and 1 */
        ck_assert_uint_eq(bm[0], (UINT64_C(1) << 5) | (UINT64_C(0xf) << 60));
        ck_assert_uint_eq(bm[1], UINT64_C(0xf));
        ck_assert_uint_eq(bm[2], UINT64_C(1) << 63);
        ck_assert(bitmap_test(bm, 5));
        ck_assert(!bitmap_test(bm, 6));
        ck_assert(bitmap_test(bm, 67));
        ck_assert(!bitmap_test(bm, 68));
        ck_assert(bitmap_test(bm, 191));
}
END_TEST

START_TEST(test_any_in_range) {
        /* One bit set at a time; every range that does or does not hold it. */
        static const uint64_t bits[] = { 0, 1, 62, 63, 64, 65, 127, 128, 190, 191 };

        for (size_t b = 0; b < ELEMENTSOF(bits); b++) {
                uint64_t bm[3] = {};

                bitmap_set_range(bm, bits[b], 1);
                for (uint64_t first = 0; first < 192; first++)
                        for (uint64_t count = 0; first + count <= 192; count++) {
                                bool expect = bits[b] >= first && bits[b] < first + count;
                                ck_assert_msg(bitmap_any_in_range(bm, first, count) == expect,
                                              "bit=%llu first=%llu count=%llu", (unsigned long long) bits[b],
                                              (unsigned long long) first, (unsigned long long) count);
                        }
        }
}
END_TEST

START_TEST(test_any_in_range_empty_map) {
        uint64_t bm[4] = {};

        ck_assert(!bitmap_any_in_range(bm, 0, 256));
        ck_assert(!bitmap_any_in_range(bm, 3, 0));
        bm[3] = UINT64_MAX;
        ck_assert(!bitmap_any_in_range(bm, 0, 192));
        ck_assert(bitmap_any_in_range(bm, 0, 193));
        ck_assert(bitmap_any_in_range(bm, 191, 2));
}
END_TEST

START_TEST(test_popcount) {
        uint64_t bm[3] = {};

        ck_assert_uint_eq(bitmap_popcount(bm, 0), 0);
        ck_assert_uint_eq(bitmap_popcount(bm, 150), 0);
        bitmap_set_range(bm, 0, 150);
        ck_assert_uint_eq(bitmap_popcount(bm, 150), 150);
        /* Only the words of the first n_items count. */
        ck_assert_uint_eq(bitmap_popcount(bm, 64), 64);
        ck_assert_uint_eq(bitmap_popcount(bm, 65), 128);
}
END_TEST

static Suite *bitmap_suite(void) {
        Suite *s = suite_create("bitmap");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_words);
        tcase_add_test(tc, test_set_range_boundaries);
        tcase_add_test(tc, test_set_range_keeps_other_bits);
        tcase_add_test(tc, test_any_in_range);
        tcase_add_test(tc, test_any_in_range_empty_map);
        tcase_add_test(tc, test_popcount);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(bitmap_suite());
}
