/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-cache.h"
#include "test-util.h"

/* The agent's memory of modules that passed a check: a hit only for the
 * same path, as the same file, within the window; every change a user can
 * make to the file (rewrite, replace, touch, chmod) is a miss. Time is an
 * argument. */

#define T0 (UINT64_C(1000) * 1000000u)

static void make_file(const char *path, const char *text) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        ck_assert_int_eq(close(fd), 0);
}

static void identify(const char *path, CheckFile *f) {
        ck_assert_int_eq(check_file_identify(path, f), 0);
}

START_TEST(test_hit_for_the_same_file_only) {
        char dir[PATH_MAX], mod[PATH_MAX + 8], other[PATH_MAX + 8];
        CheckCache c = {};
        CheckFile f, g;
        int dirfd = test_tmpdir(dir, sizeof(dir));

        snprintf(mod, sizeof(mod), "%s/m.so", dir);
        snprintf(other, sizeof(other), "%s/o.so", dir);
        make_file(mod, "module one");
        make_file(other, "module one");
        identify(mod, &f);
        ck_assert(!check_cache_hit(&c, mod, &f, T0));
        ck_assert_int_eq(check_cache_remember(&c, mod, &f, T0), 0);
        ck_assert(check_cache_hit(&c, mod, &f, T0 + 1));
        ck_assert(check_cache_hit(&c, mod, &f, T0 + CHECK_CACHE_USEC - 1));
        /* Expired, or a clock that went back. */
        ck_assert(!check_cache_hit(&c, mod, &f, T0 + CHECK_CACHE_USEC));
        ck_assert(!check_cache_hit(&c, mod, &f, T0 - 1));
        /* Another path, even with the same content. */
        identify(other, &g);
        ck_assert(!check_cache_hit(&c, other, &g, T0 + 1));
        /* The path now names another file. */
        ck_assert(!check_cache_hit(&c, mod, &g, T0 + 1));
        check_cache_clear(&c);
        ck_assert(!check_cache_hit(&c, mod, &f, T0 + 1));
        close(dirfd);
}
END_TEST

START_TEST(test_every_change_is_a_miss) {
        char dir[PATH_MAX], mod[PATH_MAX + 8], tmp[PATH_MAX + 8];
        struct timespec times[2];
        CheckCache c = {};
        CheckFile f, now;
        int dirfd = test_tmpdir(dir, sizeof(dir));

        snprintf(mod, sizeof(mod), "%s/m.so", dir);
        snprintf(tmp, sizeof(tmp), "%s/m.so.new", dir);
        make_file(mod, "module one");
        identify(mod, &f);
        ck_assert_int_eq(check_cache_remember(&c, mod, &f, T0), 0);

        /* Rewritten in place, same size, times put back: ctime moved. */
        times[0] = f.mtime;
        times[1] = f.mtime;
        usleep(10000);
        make_file(mod, "module two");
        ck_assert_int_eq(utimensat(AT_FDCWD, mod, times, 0), 0);
        identify(mod, &now);
        ck_assert(!check_cache_hit(&c, mod, &now, T0 + 1));

        /* Remembered again, then replaced by rename: another inode. */
        ck_assert_int_eq(check_cache_remember(&c, mod, &now, T0), 0);
        ck_assert(check_cache_hit(&c, mod, &now, T0 + 1));
        make_file(tmp, "module two");
        ck_assert_int_eq(rename(tmp, mod), 0);
        identify(mod, &f);
        ck_assert(!check_cache_hit(&c, mod, &f, T0 + 1));

        /* A chmod changes ctime only. */
        ck_assert_int_eq(check_cache_remember(&c, mod, &f, T0), 0);
        usleep(10000);
        ck_assert_int_eq(chmod(mod, 0600), 0);
        identify(mod, &now);
        ck_assert(!check_cache_hit(&c, mod, &now, T0 + 1));
        check_cache_clear(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_not_a_regular_file) {
        char dir[PATH_MAX], missing[PATH_MAX + 8];
        CheckFile f;
        int dirfd = test_tmpdir(dir, sizeof(dir));

        snprintf(missing, sizeof(missing), "%s/none.so", dir);
        ck_assert_int_eq(check_file_identify(missing, &f), -ENOENT);
        ck_assert_int_eq(check_file_identify(dir, &f), -EINVAL);
        ck_assert_int_eq(check_file_identify("/dev/null", &f), -EINVAL);
        close(dirfd);
}
END_TEST

/* Bounded: the oldest entry makes room; remembering a path again
 * refreshes it in place. */
START_TEST(test_bounded_oldest_goes) {
        char dir[PATH_MAX], path[CHECK_CACHE_MAX + 1][PATH_MAX + 16];
        CheckCache c = {};
        CheckFile f[CHECK_CACHE_MAX + 1];
        int dirfd = test_tmpdir(dir, sizeof(dir));

        for (int i = 0; i <= CHECK_CACHE_MAX; i++) {
                snprintf(path[i], sizeof(path[i]), "%s/m%d.so", dir, i);
                make_file(path[i], "m");
                identify(path[i], &f[i]);
        }
        for (int i = 0; i < CHECK_CACHE_MAX; i++)
                ck_assert_int_eq(check_cache_remember(&c, path[i], &f[i], T0 + (uint64_t) i), 0);
        /* Path 0 again: refreshed, now the newest; path 1 is the oldest. */
        ck_assert_int_eq(check_cache_remember(&c, path[0], &f[0], T0 + CHECK_CACHE_MAX), 0);
        ck_assert_int_eq(check_cache_remember(&c, path[CHECK_CACHE_MAX], &f[CHECK_CACHE_MAX], T0 + 100), 0);
        ck_assert(check_cache_hit(&c, path[0], &f[0], T0 + 101));
        ck_assert(!check_cache_hit(&c, path[1], &f[1], T0 + 101));
        for (int i = 2; i <= CHECK_CACHE_MAX; i++)
                ck_assert(check_cache_hit(&c, path[i], &f[i], T0 + 101));
        check_cache_clear(&c);
        close(dirfd);
}
END_TEST

static Suite *check_cache_suite(void) {
        Suite *s = suite_create("check-cache");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_hit_for_the_same_file_only);
        tcase_add_test(tc, test_every_change_is_a_miss);
        tcase_add_test(tc, test_not_a_regular_file);
        tcase_add_test(tc, test_bounded_oldest_goes);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(check_cache_suite());
}
