/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fileio.h"
#include "spares.h"
#include "test-util.h"

/* Spare job directories from the helper thread: each holds the empty
 * files a job needs, names durable; one is made again after each take;
 * the untaken ones go with the Spares. */

static size_t count_entries(int dirfd) {
        size_t n = 0;
        int fd = dup(dirfd);
        DIR *d;
        struct dirent *de;

        ck_assert_int_ge(fd, 0);
        d = fdopendir(fd);
        ck_assert_ptr_nonnull(d);
        rewinddir(d);
        while ((de = readdir(d)))
                n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
        closedir(d);
        return n;
}

/* A spare, once the thread has one ready (within 10 s). */
static int take(Spares *sp, char name[static STORE_NEW_NAME_MAX]) {
        int fd = -1;

        for (int i = 0; i < 1000; i++) {
                if (spares_take(sp, name, &fd) == 0)
                        return fd;
                usleep(10000);
        }
        ck_abort_msg("no spare within 10 s");
        return -1;
}

static void assert_empty_file(int dirfd, const char *name) {
        struct stat st;

        ck_assert_int_eq(fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(st.st_size, 0);
        ck_assert_int_eq(st.st_mode & 07777, 0600);
}

START_TEST(test_spares_are_made_and_remade) {
        char path[PATH_MAX], a[STORE_NEW_NAME_MAX], b[STORE_NEW_NAME_MAX], c[STORE_NEW_NAME_MAX];
        int new_fd = test_tmpdir(path, sizeof(path)), fa, fb, fc;
        Spares *sp;

        ck_assert_int_eq(spares_new(&sp, new_fd), 0);
        fa = take(sp, a);
        fb = take(sp, b);
        fc = take(sp, c);
        ck_assert_str_ne(a, b);
        ck_assert_str_ne(b, c);
        assert_empty_file(fa, "input");
        assert_empty_file(fa, "job.json");
        assert_empty_file(fa, CKPT_LOG);
        assert_empty_file(fc, "input");
        /* Taken ones are the caller's; the thread refills to SPARES_MAX. */
        for (int i = 0; i < 1000 && count_entries(new_fd) < 3 + SPARES_MAX; i++)
                usleep(10000);
        ck_assert_uint_eq(count_entries(new_fd), 3 + SPARES_MAX);
        usleep(50000);
        ck_assert_uint_eq(count_entries(new_fd), 3 + SPARES_MAX);
        /* Freed: the untaken spares go, the taken stay. */
        sp = spares_free(sp);
        ck_assert_uint_eq(count_entries(new_fd), 3);
        ck_assert(test_file_exists(new_fd, a));
        close(fa);
        close(fb);
        close(fc);
        close(new_fd);
}
END_TEST

/* Nothing can be made (new/ is not a directory): takes find none, the
 * thread waits for the next take rather than spinning, and freeing still
 * stops it. */
START_TEST(test_no_spares_when_they_cannot_be_made) {
        char path[PATH_MAX], file[PATH_MAX + 8], name[STORE_NEW_NAME_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), not_dir, fd = -1;
        struct timespec c0, c1;
        Spares *sp;

        snprintf(file, sizeof(file), "%s/f", path);
        test_write_file(dirfd, "f", "x", 1);
        not_dir = open(file, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(not_dir, 0);
        ck_assert_int_eq(spares_new(&sp, not_dir), 0);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        for (int i = 0; i < 30; i++) {
                ck_assert_int_eq(spares_take(sp, name, &fd), -ENOENT);
                usleep(10000);
        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        /* A thread that retried without waiting would burn the 300 ms. */
        ck_assert_int_lt((c1.tv_sec - c0.tv_sec) * 1000 + (c1.tv_nsec - c0.tv_nsec) / 1000000, 100);
        sp = spares_free(sp);
        ck_assert_ptr_null(sp);
        close(not_dir);
        close(dirfd);
}
END_TEST

static Suite *spares_suite(void) {
        Suite *s = suite_create("spares");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_spares_are_made_and_remade);
        tcase_add_test(tc, test_no_spares_when_they_cannot_be_made);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(spares_suite());
}
