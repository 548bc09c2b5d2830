/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <locale.h>
#include <string.h>

#include "mplockctl.h"
#include "test-util.h"

START_TEST(test_numbers) {
        char b[32];

        format_percent(0, 10, b, sizeof(b));
        ck_assert_str_eq(b, "0.0%");
        format_percent(2, 3, b, sizeof(b));
        ck_assert_str_eq(b, "66.6%"); /* down, never up */
        format_percent(999999, 1000000, b, sizeof(b));
        ck_assert_str_eq(b, "99.9%"); /* 100% only when all are in */
        format_percent(5, 5, b, sizeof(b));
        ck_assert_str_eq(b, "100.0%");
        format_percent(0, 0, b, sizeof(b));
        ck_assert_str_eq(b, "100.0%");
        format_rate(0.0, b, sizeof(b));
        ck_assert_str_eq(b, "0/s");
        format_rate(2.345, b, sizeof(b));
        ck_assert_str_eq(b, "2.3/s");
        format_rate(812.6, b, sizeof(b));
        ck_assert_str_eq(b, "813/s");
        format_rate(45600.0, b, sizeof(b));
        ck_assert_str_eq(b, "45.6k/s");
        format_duration(59, b, sizeof(b));
        ck_assert_str_eq(b, "59s");
        format_duration(65, b, sizeof(b));
        ck_assert_str_eq(b, "1m05s");
        format_duration(3 * 3600 + 7 * 60, b, sizeof(b));
        ck_assert_str_eq(b, "3h07m");
        format_duration(5 * 86400 + 2 * 3600, b, sizeof(b));
        ck_assert_str_eq(b, "5d02h");
        format_size(512, b, sizeof(b));
        ck_assert_str_eq(b, "512B");
        format_size(1536, b, sizeof(b));
        ck_assert_str_eq(b, "1.5K");
        format_size(300ull << 20, b, sizeof(b));
        ck_assert_str_eq(b, "300M");
        format_size(3ull << 60, b, sizeof(b));
        ck_assert_str_eq(b, "3.0E");
        ck_assert(progress_fraction(1, 4) == 0.25);
        ck_assert(progress_fraction(7, 4) == 1.0);
        ck_assert(progress_fraction(0, 0) == 1.0);
}
END_TEST

START_TEST(test_bar_ascii) {
        Line l;

        line_init(&l, 80, false);
        line_bar(&l, 0.5, 12);
        ck_assert_str_eq(l.buf, "[#####-----]");
        ck_assert_uint_eq(l.cols, 12);
        line_init(&l, 80, false);
        line_bar(&l, 1.7, 5);
        ck_assert_str_eq(l.buf, "[###]");
        line_init(&l, 80, false);
        line_bar(&l, -1.0, 5);
        ck_assert_str_eq(l.buf, "[---]");
        line_init(&l, 4, false);
        line_bar(&l, 0.5, 5); /* wider than the line: left out */
        ck_assert_str_eq(l.buf, "");
}
END_TEST

START_TEST(test_bar_utf8) {
        Line l;

        line_init(&l, 80, true);
        /* 10 cells, 3/8 of the way: 3.75 cells, 3 full and 6/8 of one. */
        line_bar(&l, 0.375, 12);
        ck_assert_str_eq(l.buf, "[\u2588\u2588\u2588\u258a      ]");
        ck_assert_uint_eq(l.cols, 12);
        line_init(&l, 80, true);
        line_bar(&l, 1.0, 4);
        ck_assert_str_eq(l.buf, "[\u2588\u2588]");
}
END_TEST

START_TEST(test_line_columns) {
        Line l;

        line_init(&l, 80, false);
        line_put(&l, "ab", 5);
        line_put(&l, "|", 0);
        line_put(&l, "cd", -4);
        line_put(&l, "|", 0);
        line_put(&l, "toolong", 3);
        line_put(&l, "|", 0);
        line_put(&l, "toolong", -3);
        ck_assert_str_eq(l.buf, "   ab|cd  |too|too");
        ck_assert_uint_eq(l.cols, strlen(l.buf));
        /* Cut at the line's end. */
        line_init(&l, 6, false);
        line_printf(&l, 0, "%d-%s", 12, "abcdefg");
        ck_assert_str_eq(l.buf, "12-abc");
        line_put(&l, "more", -3);
        ck_assert_str_eq(l.buf, "12-abc");
}
END_TEST

START_TEST(test_line_is_printable_only) {
        Line l;

        /* A name cannot move the cursor or retitle the terminal. */
        line_init(&l, 80, false);
        line_put(&l, "a\033[2Jb\rc\td\x7f" "caf\xc3\xa9", 0);
        ck_assert_str_eq(l.buf, "a?[2Jb?c?d?caf??");
        ck_assert_uint_eq(text_width("a\033b", false), 3);
        ck_assert_ptr_nonnull(setlocale(LC_CTYPE, "C.UTF-8"));
        line_init(&l, 80, true);
        /* é stays; C1 CSI (U+009B), a lone continuation byte and a cut
         * sequence do not. */
        line_put(&l, "caf\xc3\xa9 \xc2\x9b" "2J \x80 \xe2\x82", 0);
        ck_assert_str_eq(l.buf, "caf\xc3\xa9 ?2J ? ??");
        ck_assert_uint_eq(l.cols, 13);
        /* Columns, not bytes: a wide character takes two, and is not cut in half. */
        line_init(&l, 5, true);
        line_put(&l, "ab\xe4\xb8\xad\xe4\xb8\xad", 0);
        ck_assert_str_eq(l.buf, "ab\xe4\xb8\xad");
        ck_assert_uint_eq(l.cols, 4);
        ck_assert_uint_eq(text_width("\xe4\xb8\xad\xc3\xa9", true), 3);
}
END_TEST

static Suite *progress_suite(void) {
        Suite *s = suite_create("progress");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_numbers);
        tcase_add_test(tc, test_bar_ascii);
        tcase_add_test(tc, test_bar_utf8);
        tcase_add_test(tc, test_line_columns);
        tcase_add_test(tc, test_line_is_printable_only);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(progress_suite());
}
