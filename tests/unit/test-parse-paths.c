/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "parse.h"
#include "paths.h"
#include "test-util.h"

/* --- parse.h ---------------------------------------------------------------- */

START_TEST(test_parse_u64) {
        static const char *const invalid[] = { "", "-1", "+1", "1x", " 1", "1 ", "0x10", "x", "-0", "1.0", "1e3",
                                               "\t1", "1\n", "--1" };
        uint64_t v;

        ck_assert_int_eq(parse_u64("0", &v), 0);
        ck_assert_uint_eq(v, 0);
        ck_assert_int_eq(parse_u64("42", &v), 0);
        ck_assert_uint_eq(v, 42);
        /* Decimal, even with leading zeros (not octal). */
        ck_assert_int_eq(parse_u64("010", &v), 0);
        ck_assert_uint_eq(v, 10);
        ck_assert_int_eq(parse_u64("18446744073709551615", &v), 0);
        ck_assert_uint_eq(v, UINT64_MAX);

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                v = 7;
                ck_assert_msg(parse_u64(invalid[i], &v) == -EINVAL, "\"%s\" not refused", invalid[i]);
                ck_assert_uint_eq(v, 7); /* untouched */
        }
        ck_assert_int_eq(parse_u64(NULL, &v), -EINVAL);

        v = 7;
        ck_assert_int_eq(parse_u64("18446744073709551616", &v), -ERANGE);
        ck_assert_int_eq(parse_u64("99999999999999999999999", &v), -ERANGE);
        ck_assert_uint_eq(v, 7);
}
END_TEST

START_TEST(test_parse_u32) {
        uint32_t v = 7;

        ck_assert_int_eq(parse_u32("4294967295", &v), 0);
        ck_assert_uint_eq(v, UINT32_MAX);
        ck_assert_int_eq(parse_u32("0", &v), 0);
        ck_assert_uint_eq(v, 0);
        v = 7;
        ck_assert_int_eq(parse_u32("4294967296", &v), -ERANGE);
        ck_assert_int_eq(parse_u32("18446744073709551615", &v), -ERANGE);
        ck_assert_int_eq(parse_u32("18446744073709551616", &v), -ERANGE);
        ck_assert_int_eq(parse_u32("", &v), -EINVAL);
        ck_assert_int_eq(parse_u32("-1", &v), -EINVAL);
        ck_assert_int_eq(parse_u32("+1", &v), -EINVAL);
        ck_assert_int_eq(parse_u32("1x", &v), -EINVAL);
        ck_assert_int_eq(parse_u32(" 1", &v), -EINVAL);
        ck_assert_uint_eq(v, 7);
}
END_TEST

START_TEST(test_parse_uint_range) {
        uint64_t v = 7;

        ck_assert_int_eq(parse_uint_range("1", 1, 10, &v), 0);
        ck_assert_uint_eq(v, 1);
        ck_assert_int_eq(parse_uint_range("10", 1, 10, &v), 0);
        ck_assert_uint_eq(v, 10);
        v = 7;
        ck_assert_int_eq(parse_uint_range("0", 1, 10, &v), -ERANGE);
        ck_assert_int_eq(parse_uint_range("11", 1, 10, &v), -ERANGE);
        ck_assert_int_eq(parse_uint_range("18446744073709551616", 1, 10, &v), -ERANGE);
        ck_assert_int_eq(parse_uint_range("", 1, 10, &v), -EINVAL);
        ck_assert_int_eq(parse_uint_range("-1", 0, UINT64_MAX, &v), -EINVAL);
        ck_assert_int_eq(parse_uint_range("+1", 0, UINT64_MAX, &v), -EINVAL);
        ck_assert_int_eq(parse_uint_range("1x", 0, UINT64_MAX, &v), -EINVAL);
        ck_assert_int_eq(parse_uint_range(" 1", 0, UINT64_MAX, &v), -EINVAL);
        ck_assert_uint_eq(v, 7);
        ck_assert_int_eq(parse_uint_range("18446744073709551615", 0, UINT64_MAX, &v), 0);
        ck_assert_uint_eq(v, UINT64_MAX);
        ck_assert_int_eq(parse_uint_range("5", 5, 5, &v), 0);
        ck_assert_uint_eq(v, 5);
}
END_TEST

/* --- paths.h ---------------------------------------------------------------- */

static void check_absolute(const char *in, const char *expect) {
        char *out = NULL;

        ck_assert_int_eq(path_make_absolute(in, &out), 0);
        ck_assert_msg(streq(out, expect), "\"%s\" -> \"%s\", expected \"%s\"", in, out, expect);
        free(out);
}

START_TEST(test_path_absolute) {
        check_absolute("/", "/");
        check_absolute("/a/./b/../c", "/a/c");
        check_absolute("/..", "/");
        check_absolute("/../..", "/");
        check_absolute("/../a", "/a");
        check_absolute("/a/..", "/");
        check_absolute("/a/b/../..", "/");
        check_absolute("/a/b/../../..", "/");
        check_absolute("//a//b//", "/a/b");
        check_absolute("/a/b/.", "/a/b");
        check_absolute("/./", "/");
        check_absolute("/a/.b/..c/...", "/a/.b/..c/...");
        check_absolute("/aa/../b", "/b");
        check_absolute("/a/bb/../cc/./../d", "/a/d");
}
END_TEST

START_TEST(test_path_relative) {
        /* Relative paths are taken against the working directory, which the
         * test sets so that the result is known. */
        char path[PATH_MAX], expect[PATH_MAX + 32];
        int dirfd = test_tmpdir(path, sizeof(path));

        ck_assert_int_eq(chdir(path), 0);
        snprintf(expect, sizeof(expect), "%s/a/b", path);
        check_absolute("a/b", expect);
        check_absolute("a//b/", expect);
        check_absolute("./a/./b/.", expect);
        check_absolute("a/c/../b", expect);
        check_absolute(".", path);
        check_absolute("./", path);
        {
                /* ".." climbs out of the working directory lexically. */
                char parent[PATH_MAX];

                snprintf(parent, sizeof(parent), "%s", path);
                *strrchr(parent, '/') = '\0';
                check_absolute("..", parent);
                snprintf(expect, sizeof(expect), "%s/x", parent);
                check_absolute("../x", expect);
        }

        ck_assert_int_eq(chdir("/"), 0);
        check_absolute("a/b", "/a/b");
        check_absolute("..", "/");
        check_absolute(".", "/");
        close(dirfd);
}
END_TEST

START_TEST(test_path_invalid) {
        char *out = (char *) 1;

        ck_assert_int_eq(path_make_absolute("", &out), -EINVAL);
        ck_assert_int_eq(path_make_absolute(NULL, &out), -EINVAL);
        ck_assert_ptr_eq(out, (char *) 1);
}
END_TEST

START_TEST(test_paths_env) {
        /* Check forks every test: the environment changes stay here. */
        char *p = NULL;

        ck_assert_int_eq(paths_socket(true, &p), 0);
        ck_assert_str_eq(p, "/run/mplockd/io.mplock.Manager");
        free(p);
        ck_assert_int_eq(paths_state_dir(true, &p), 0);
        ck_assert_str_eq(p, "/var/lib/mplockd");
        free(p);

        ck_assert_int_eq(setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1), 0);
        ck_assert_int_eq(paths_socket(false, &p), 0);
        ck_assert_str_eq(p, "/run/user/4242/mplockd/io.mplock.Manager");
        free(p);

        ck_assert_int_eq(setenv("XDG_STATE_HOME", "/home/u/.state", 1), 0);
        ck_assert_int_eq(paths_state_dir(false, &p), 0);
        ck_assert_str_eq(p, "/home/u/.state/mplockd");
        free(p);
        /* Relative XDG values are ignored, as the spec asks. */
        ck_assert_int_eq(setenv("XDG_STATE_HOME", "rel", 1), 0);
        ck_assert_int_eq(setenv("HOME", "/home/u", 1), 0);
        ck_assert_int_eq(paths_state_dir(false, &p), 0);
        ck_assert_str_eq(p, "/home/u/.local/state/mplockd");
        free(p);

        ck_assert_int_eq(setenv("RUNTIME_DIRECTORY", "/run/a:/run/b", 1), 0);
        ck_assert_str_eq(paths_systemd_dir("RUNTIME_DIRECTORY"), "/run/a");
        ck_assert_int_eq(setenv("RUNTIME_DIRECTORY", "/run/only", 1), 0);
        ck_assert_str_eq(paths_systemd_dir("RUNTIME_DIRECTORY"), "/run/only");
        ck_assert_int_eq(setenv("RUNTIME_DIRECTORY", "relative", 1), 0);
        ck_assert_ptr_null(paths_systemd_dir("RUNTIME_DIRECTORY"));
        ck_assert_int_eq(unsetenv("RUNTIME_DIRECTORY"), 0);
        ck_assert_ptr_null(paths_systemd_dir("RUNTIME_DIRECTORY"));
}
END_TEST

/* --- fileio.h --------------------------------------------------------------- */

/* Entries of a directory other than "." and "..". */
static unsigned count_entries(const char *path, const char *prefix) {
        DIR *d = opendir(path);
        struct dirent *de;
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
                    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

static void check_content(int dirfd, const char *name, const char *expect, size_t len) {
        char *buf = NULL;
        size_t got = 0;

        ck_assert_int_eq(read_file_at(dirfd, name, 1 << 20, &buf, &got), 0);
        ck_assert_uint_eq(got, len);
        ck_assert_mem_eq(buf, expect, len);
        free(buf);
}

START_TEST(test_write_atomic) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        struct stat st;
        ino_t ino;

        umask(022);
        ck_assert_int_eq(write_file_atomic_at(dirfd, "f", "first", 5, 0600), 0);
        check_content(dirfd, "f", "first", 5);
        ck_assert_int_eq(fstatat(dirfd, "f", &st, 0), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ino = st.st_ino;

        /* Replaced, not rewritten in place: a new inode, the new mode. */
        ck_assert_int_eq(write_file_atomic_at(dirfd, "f", "second, longer", 14, 0644), 0);
        check_content(dirfd, "f", "second, longer", 14);
        ck_assert_int_eq(fstatat(dirfd, "f", &st, 0), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);
        ck_assert_uint_ne(st.st_ino, ino);

        /* Shorter content leaves nothing of the old behind. */
        ck_assert_int_eq(write_file_atomic_at(dirfd, "f", "3", 1, 0640), 0);
        check_content(dirfd, "f", "3", 1);
        ck_assert_int_eq(fstatat(dirfd, "f", &st, 0), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0640);

        /* Empty content, and a mode the umask would have cut. */
        ck_assert_int_eq(write_file_atomic_at(dirfd, "e", "", 0, 0666), 0);
        check_content(dirfd, "e", "", 0);
        ck_assert_int_eq(fstatat(dirfd, "e", &st, 0), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0666);

        /* No temporary files anywhere. */
        ck_assert_uint_eq(count_entries(path, ""), 2);
        close(dirfd);
}
END_TEST

START_TEST(test_write_atomic_refused) {
        char path[PATH_MAX], name[260];
        int dirfd = test_tmpdir(path, sizeof(path));

        ck_assert_int_eq(write_file_atomic_at(dirfd, "f", "keep", 4, 0600), 0);

        /* Names are names, not paths. */
        ck_assert_int_eq(write_file_atomic_at(dirfd, "sub/f", "x", 1, 0600), -EINVAL);
        ck_assert_int_eq(write_file_atomic_at(dirfd, "/etc/f", "x", 1, 0600), -EINVAL);
        ck_assert_int_eq(write_file_atomic_at(dirfd, "f/", "x", 1, 0600), -EINVAL);
        /* Too long for the temporary name. */
        memset(name, 'n', 201);
        name[201] = '\0';
        ck_assert_int_eq(write_file_atomic_at(dirfd, name, "x", 1, 0600), -EINVAL);
        ck_assert_uint_eq(count_entries(path, ""), 1);
        check_content(dirfd, "f", "keep", 4);

        /* A failure after the temporary file exists (the target is a
         * directory, so the rename fails) removes it again. */
        ck_assert_int_eq(mkdirat(dirfd, "d", 0755), 0);
        ck_assert_int_eq(mkdirat(dirfd, "d/x", 0755), 0);
        ck_assert_int_lt(write_file_atomic_at(dirfd, "d", "x", 1, 0600), 0);
        ck_assert_uint_eq(count_entries(path, ".#"), 0);
        ck_assert_uint_eq(count_entries(path, ""), 2);

        /* A directory we cannot write to. */
        if (geteuid() != 0) {
                int ro = openat(dirfd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                ck_assert_int_ge(ro, 0);
                ck_assert_int_eq(fchmod(ro, 0555), 0);
                ck_assert_int_eq(write_file_atomic_at(ro, "f", "x", 1, 0600), -EACCES);
                ck_assert_int_eq(fchmod(ro, 0755), 0);
                close(ro);
        }
        /* A bad directory fd. */
        ck_assert_int_eq(write_file_atomic_at(-1, "f", "x", 1, 0600), -EBADF);
        close(dirfd);
}
END_TEST

START_TEST(test_read_file_at) {
        char path[PATH_MAX], *buf = NULL;
        int dirfd = test_tmpdir(path, sizeof(path));
        size_t len = 0;

        test_write_file(dirfd, "f", "abc\0def", 7);
        ck_assert_int_eq(read_file_at(dirfd, "f", 7, &buf, &len), 0);
        ck_assert_uint_eq(len, 7);
        ck_assert_mem_eq(buf, "abc\0def", 8); /* and a NUL after it */
        free(buf);
        ck_assert_int_eq(read_file_at(dirfd, "f", 6, &buf, &len), -EFBIG);
        ck_assert_int_eq(read_file_at(dirfd, "missing", 6, &buf, &len), -ENOENT);
        ck_assert_int_eq(mkdirat(dirfd, "d", 0755), 0);
        ck_assert_int_eq(read_file_at(dirfd, "d", 6, &buf, &len), -EBADF);
        ck_assert_int_eq(symlinkat("f", dirfd, "link"), 0);
        ck_assert_int_eq(read_file_at(dirfd, "link", 100, &buf, &len), -ELOOP);
        close(dirfd);
}
END_TEST

START_TEST(test_read_virtual_file_at) {
        char path[PATH_MAX], buf[4];
        int dirfd = test_tmpdir(path, sizeof(path));

        /* st_size of /proc files is 0: read until EOF all the same. */
        ck_assert_int_gt(read_virtual_file_at(AT_FDCWD, "/proc/self/statm", buf, sizeof(buf)), 0);
        test_write_file(dirfd, "f", "abcdef", 6);
        ck_assert_int_eq(read_virtual_file_at(dirfd, "f", buf, sizeof(buf)), 3);
        ck_assert_str_eq(buf, "abc"); /* cut, and NUL-terminated */
        test_write_file(dirfd, "e", "", 0);
        ck_assert_int_eq(read_virtual_file_at(dirfd, "e", buf, sizeof(buf)), 0);
        ck_assert_str_eq(buf, "");
        ck_assert_int_eq(read_virtual_file_at(dirfd, "f", buf, 0), -EINVAL);
        ck_assert_int_eq(read_virtual_file_at(dirfd, "missing", buf, sizeof(buf)), -ENOENT);
        ck_assert_int_eq(symlinkat("f", dirfd, "link"), 0);
        ck_assert_int_eq(read_virtual_file_at(dirfd, "link", buf, sizeof(buf)), -ELOOP);
        close(dirfd);
}
END_TEST

static Suite *parse_paths_suite(void) {
        Suite *s = suite_create("parse-paths");
        TCase *tc_parse = tcase_create("parse"), *tc_paths = tcase_create("paths"), *tc_io = tcase_create("fileio");

        tcase_add_test(tc_parse, test_parse_u64);
        tcase_add_test(tc_parse, test_parse_u32);
        tcase_add_test(tc_parse, test_parse_uint_range);
        suite_add_tcase(s, tc_parse);

        tcase_add_test(tc_paths, test_path_absolute);
        tcase_add_test(tc_paths, test_path_relative);
        tcase_add_test(tc_paths, test_path_invalid);
        tcase_add_test(tc_paths, test_paths_env);
        suite_add_tcase(s, tc_paths);

        tcase_add_test(tc_io, test_write_atomic);
        tcase_add_test(tc_io, test_write_atomic_refused);
        tcase_add_test(tc_io, test_read_file_at);
        tcase_add_test(tc_io, test_read_virtual_file_at);
        suite_add_tcase(s, tc_io);
        return s;
}

int main(void) {
        return test_run_suite(parse_paths_suite());
}
