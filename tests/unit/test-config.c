/* SPDX-License-Identifier: MIT */
/* daemon/config.c: the settings table, flags and the config file. */
#include <check.h>
#include <errno.h>
#include <limits.h>

#include "config.h"
#include "test-util.h"

static void write_conf(int dirfd, const char *text) {
        test_write_file(dirfd, "mplockd.conf", text, strlen(text));
}

START_TEST(test_set_values_and_ranges) {
        Settings s;
        uint64_t mask = 0;

        settings_defaults(&s);
        ck_assert_int_eq(settings_set(&s, "max-workers", "7", &mask), 0);
        ck_assert_uint_eq(s.max_workers, 7);
        ck_assert_uint_ne(mask, 0);
        ck_assert_int_eq(settings_set(&s, "max-workers", "0", NULL), -ERANGE);
        ck_assert_int_eq(settings_set(&s, "max-workers", "65537", NULL), -ERANGE);
        ck_assert_int_eq(settings_set(&s, "max-workers", "-1", NULL), -EINVAL);
        ck_assert_int_eq(settings_set(&s, "max-workers", "7x", NULL), -EINVAL);
        ck_assert_int_eq(settings_set(&s, "max-workers", "", NULL), -EINVAL);
        ck_assert_uint_eq(s.max_workers, 7); /* refused values change nothing */
        ck_assert_int_eq(settings_set(&s, "no-such-setting", "1", NULL), -ENOENT);

        /* Sizes take binary suffixes; other settings do not. */
        ck_assert_int_eq(settings_set(&s, "max-message-size", "64K", NULL), 0);
        ck_assert_uint_eq(s.max_message, 65536);
        ck_assert_int_eq(settings_set(&s, "max-input-size", "2g", NULL), 0);
        ck_assert_uint_eq(s.max_input_bytes, UINT64_C(2) << 30);
        ck_assert_int_eq(settings_set(&s, "max-message-size", "1K", NULL), -ERANGE); /* under 4096 */
        ck_assert_int_eq(settings_set(&s, "max-workers", "2K", NULL), -EINVAL);
        ck_assert_int_eq(settings_set(&s, "max-input-size", "18446744073709551615T", NULL), -EINVAL);
        /* memory-max: 0 for none, else what Submit accepts (at least 16M),
         * or every submission without its own cap would be refused. */
        ck_assert_int_eq(settings_set(&s, "memory-max", "1M", NULL), -ERANGE);
        ck_assert_int_eq(settings_set(&s, "memory-max", "16M", NULL), 0);
        ck_assert_uint_eq(s.memory_max, UINT64_C(16) << 20);
        ck_assert_int_eq(settings_set(&s, "memory-max", "0", NULL), 0);
        ck_assert_uint_eq(s.memory_max, 0);

        /* Seconds are kept in microseconds. */
        ck_assert_int_eq(settings_set(&s, "stop-timeout", "3", NULL), 0);
        ck_assert_uint_eq(s.stop_timeout_usec, 3000000);
        ck_assert_int_eq(settings_set(&s, "item-timeout", "0", NULL), 0);
        ck_assert_uint_eq(s.item_timeout_usec, 0);
}
END_TEST

START_TEST(test_every_setting_has_a_name_and_a_working_default) {
        Settings s;

        ck_assert_uint_gt(settings_count(), 10);
        for (size_t i = 0; i < settings_count(); i++)
                ck_assert_ptr_nonnull(settings_name(i));
        ck_assert_ptr_null(settings_name(settings_count()));
        settings_defaults(&s);
        ck_assert_uint_ge(s.max_workers, 1);
        ck_assert_uint_eq(s.commit_interval_usec, 200 * 1000);
        ck_assert_uint_eq(s.max_attempts, 3);
}
END_TEST

START_TEST(test_file_applies_over_defaults) {
        char path[PATH_MAX], file[PATH_MAX + 32];
        int dirfd = test_tmpdir(path, sizeof(path));
        Settings s;

        snprintf(file, sizeof(file), "%s/mplockd.conf", path);
        write_conf(dirfd, "# comment\n\n  max-workers=3  \nmax-jobs = 12 # trailing comment\n"
                          "\tcommit-interval\t=\t50\nmax-message-size = 1M\n");
        settings_defaults(&s);
        ck_assert_int_eq(settings_load_file(&s, file, 0), 0);
        ck_assert_uint_eq(s.max_workers, 3);
        ck_assert_uint_eq(s.max_jobs, 12);
        ck_assert_uint_eq(s.commit_interval_usec, 50 * 1000);
        ck_assert_uint_eq(s.max_message, 1u << 20);
        close(dirfd);
}
END_TEST

START_TEST(test_command_line_wins) {
        char path[PATH_MAX], file[PATH_MAX + 32];
        int dirfd = test_tmpdir(path, sizeof(path));
        uint64_t mask = 0;
        Settings s;

        snprintf(file, sizeof(file), "%s/mplockd.conf", path);
        write_conf(dirfd, "max-workers = 3\nmax-jobs = 12\n");
        settings_defaults(&s);
        ck_assert_int_eq(settings_set(&s, "max-workers", "9", &mask), 0);
        ck_assert_int_eq(settings_load_file(&s, file, mask), 0);
        ck_assert_uint_eq(s.max_workers, 9);
        ck_assert_uint_eq(s.max_jobs, 12);
        close(dirfd);
}
END_TEST

START_TEST(test_bad_files_change_nothing) {
        static const char *const bad[] = {
                "max-workers = 3\nmax-workers\n",        /* no '=' */
                "max-workers = 3\nbogus = 1\n",          /* unknown name */
                "max-workers = 3\nmax-jobs = 0\n",       /* out of range */
                "max-workers = 3\nmax-jobs = twelve\n",  /* not a number */
                "max-workers = 3\n= 4\n",                /* no name */
        };
        char path[PATH_MAX], file[PATH_MAX + 32];
        int dirfd = test_tmpdir(path, sizeof(path));
        Settings s, before;

        snprintf(file, sizeof(file), "%s/mplockd.conf", path);
        settings_defaults(&before);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                write_conf(dirfd, bad[i]);
                s = before;
                ck_assert_int_lt(settings_load_file(&s, file, 0), 0);
                ck_assert_msg(memcmp(&s, &before, sizeof(s)) == 0, "file %zu changed settings", i);
        }
        close(dirfd);
}
END_TEST

START_TEST(test_missing_file_is_no_error) {
        Settings s, before;

        settings_defaults(&s);
        before = s;
        ck_assert_int_eq(settings_load_file(&s, "/nonexistent/mplockd.conf", 0), 0);
        ck_assert_int_eq(memcmp(&s, &before, sizeof(s)), 0);
}
END_TEST

static Suite *config_suite(void) {
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_set_values_and_ranges);
        tcase_add_test(tc, test_every_setting_has_a_name_and_a_working_default);
        tcase_add_test(tc, test_file_applies_over_defaults);
        tcase_add_test(tc, test_command_line_wins);
        tcase_add_test(tc, test_bad_files_change_nothing);
        tcase_add_test(tc, test_missing_file_is_no_error);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(config_suite());
}
