/* SPDX-License-Identifier: MIT */
#pragma once

/* Helpers shared by the unit tests: temporary directories and running a
 * suite. Everything is static inline so that a test that does not use a
 * helper does not trip -Wunused-function. */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

/* One base directory per test binary, made and removed by the parent: Check
 * forks every test, and a test that fails an assertion exits at once, so
 * per-test cleanup would leak. Tests make their own directories below. */
static char test_base[64];

static inline void test_base_init(void) {
        snprintf(test_base, sizeof(test_base), "/tmp/mplock-unit-XXXXXX");
        if (!mkdtemp(test_base)) {
                perror("mkdtemp");
                exit(EXIT_FAILURE);
        }
}

static inline void test_base_cleanup(void) {
        if (test_base[0])
                (void) rm_rf_at(AT_FDCWD, test_base);
}

/* A fresh directory for one test; its path in path (PATH_MAX), an
 * O_DIRECTORY fd returned. */
static inline int test_tmpdir(char *path, size_t n) {
        int fd;

        ck_assert_msg(test_base[0], "test_base_init() not called");
        snprintf(path, n, "%s/t-XXXXXX", test_base);
        ck_assert_ptr_nonnull(mkdtemp(path));
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        return fd;
}

static inline off_t test_file_size(int dirfd, const char *name) {
        struct stat st;

        ck_assert_int_eq(fstatat(dirfd, name, &st, 0), 0);
        return st.st_size;
}

static inline bool test_file_exists(int dirfd, const char *name) {
        return faccessat(dirfd, name, F_OK, 0) == 0;
}

/* Flips every bit of one byte of dirfd/name. */
static inline void test_flip_byte(int dirfd, const char *name, off_t off) {
        unsigned char c;
        int fd;

        fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pread(fd, &c, 1, off), 1);
        c ^= 0xff;
        ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
        close(fd);
}

static inline void test_write_file(int dirfd, const char *name, const void *data, size_t len) {
        int fd;

        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write_full(fd, data, len), 0);
        close(fd);
}

/* Copies dirfd/from to dirfd/to, replacing it. */
static inline void test_copy_file(int dirfd, const char *from, const char *to) {
        char *buf = NULL;
        size_t len = 0;

        ck_assert_int_eq(read_file_at(dirfd, from, 64u << 20, &buf, &len), 0);
        test_write_file(dirfd, to, buf, len);
        free(buf);
}

static inline int test_run_suite(Suite *s) {
        SRunner *sr = srunner_create(s);
        int failed;

        test_base_init();
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        test_base_cleanup();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
