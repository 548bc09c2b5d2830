/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "retrysel.h"
#include "test-util.h"

static RetrySel *sel_new(void) {
        RetrySel *s = calloc(1, sizeof(*s));

        ck_assert_ptr_nonnull(s);
        return s;
}

START_TEST(test_parse_and_text) {
        RetrySel *s = sel_new();
        char *t;

        ck_assert_int_eq(retry_sel_parse_codes(s, "503,7,-5,7"), 0);
        ck_assert_int_eq(retry_sel_parse_codes(s, "-2147483648,2147483647"), 0);
        ck_assert_int_eq(retry_sel_parse_items(s, "20-30,3,10-19,4,31", 100), 0);
        retry_sel_normalize(s);
        t = retry_sel_codes_text(s);
        ck_assert_str_eq(t, "-2147483648,-5,7,503,2147483647");
        free(t);
        t = retry_sel_items_text(s);
        ck_assert_str_eq(t, "3-4,10-31");
        free(t);
        free(s);

        s = sel_new();
        ck_assert_ptr_null(retry_sel_codes_text(s));
        ck_assert_ptr_null(retry_sel_items_text(s));
        ck_assert(retry_sel_all(s));
        free(s);
}
END_TEST

START_TEST(test_parse_bad) {
        static const char *const bad_codes[] = { "", ",", "7,", ",7", "0", "7,,8", "x", "7-8", "2147483648",
                                                 "-2147483649", "+7", " 7", "99999999999999999999999" };
        static const char *const bad_items[] = { "", ",", "3,", "-3", "3-", "5-3", "a", "3-4-5", "1,,2", " 1" };

        for (size_t i = 0; i < ELEMENTSOF(bad_codes); i++) {
                RetrySel *s = sel_new();
                ck_assert_msg(retry_sel_parse_codes(s, bad_codes[i]) == -EINVAL, "%s", bad_codes[i]);
                free(s);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_items); i++) {
                RetrySel *s = sel_new();
                ck_assert_msg(retry_sel_parse_items(s, bad_items[i], 100) == -EINVAL, "%s", bad_items[i]);
                free(s);
        }
        {
                RetrySel *s = sel_new();
                ck_assert_int_eq(retry_sel_parse_items(s, "99", 100), 0);
                ck_assert_int_eq(retry_sel_parse_items(s, "100", 100), -ERANGE);
                ck_assert_int_eq(retry_sel_parse_items(s, "5-100", 100), -ERANGE);
                free(s);
        }
}
END_TEST

START_TEST(test_bounds) {
        RetrySel *s = sel_new();

        for (uint32_t i = 0; i < RETRY_SEL_MAX; i++) {
                ck_assert_int_eq(retry_sel_add_code(s, (int64_t) i + 1), 0);
                ck_assert_int_eq(retry_sel_add_range(s, 2 * i, 2 * i, 1u << 20), 0);
        }
        ck_assert_int_eq(retry_sel_add_code(s, -1), -E2BIG);
        ck_assert_int_eq(retry_sel_add_range(s, 5000, 5000, 1u << 20), -E2BIG);
        ck_assert_int_eq(retry_sel_parse_codes(s, "9"), -E2BIG);
        retry_sel_normalize(s);
        {
                /* The longest text fits the bound. */
                char *c = retry_sel_codes_text(s), *t = retry_sel_items_text(s);
                ck_assert_ptr_nonnull(c);
                ck_assert_ptr_nonnull(t);
                ck_assert_uint_le(strlen(c) + strlen(t), RETRY_SEL_TEXT_MAX);
                free(c);
                free(t);
        }
        free(s);
}
END_TEST

START_TEST(test_wants) {
        RetrySel *s = sel_new();

        /* Nothing chosen: every failed item. */
        ck_assert(retry_sel_wants(s, 5, 7));
        ck_assert_int_eq(retry_sel_parse_codes(s, "7,503"), 0);
        retry_sel_normalize(s);
        ck_assert(retry_sel_wants(s, 5, 7));
        ck_assert(retry_sel_wants(s, 900, 503));
        ck_assert(!retry_sel_wants(s, 5, 8));
        ck_assert(!retry_sel_wants(s, 5, -7));
        /* Both: both must hold. */
        ck_assert_int_eq(retry_sel_parse_items(s, "3,10-20", 1000), 0);
        retry_sel_normalize(s);
        ck_assert(retry_sel_wants(s, 3, 7));
        ck_assert(retry_sel_wants(s, 10, 503));
        ck_assert(retry_sel_wants(s, 20, 7));
        ck_assert(!retry_sel_wants(s, 21, 7));
        ck_assert(!retry_sel_wants(s, 9, 7));
        ck_assert(!retry_sel_wants(s, 4, 7));
        ck_assert(!retry_sel_wants(s, 15, 8));
        ck_assert(!retry_sel_wants(s, 0, 7));
        free(s);
}
END_TEST

static Suite *retrysel_suite(void) {
        Suite *s = suite_create("retrysel");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_parse_and_text);
        tcase_add_test(tc, test_parse_bad);
        tcase_add_test(tc, test_bounds);
        tcase_add_test(tc, test_wants);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(retrysel_suite());
}
