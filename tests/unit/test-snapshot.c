/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "snapshot.h"
#include "test-util.h"

static int new_file(void) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        int fd = openat(dirfd, "input", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

        ck_assert_int_ge(fd, 0);
        close(dirfd);
        return fd;
}

static off_t size_of(int fd) {
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        return st.st_size;
}

START_TEST(test_counts_and_fingerprint) {
        static const char a[] = "one\0two\0", b[] = "\0three\0";
        int fd = new_file();
        Snapshot s;

        snapshot_init(&s, fd, 1000, 1000);
        ck_assert_int_eq(snapshot_write(&s, a, sizeof(a) - 1), 0);
        ck_assert_int_eq(snapshot_write(&s, b, sizeof(b) - 1), 0);
        ck_assert_int_eq(snapshot_write(&s, "", 0), 0);
        ck_assert_uint_eq(s.items, 4); /* one, two, the empty item, three */
        ck_assert_uint_eq(s.bytes, sizeof(a) - 1 + sizeof(b) - 1);
        ck_assert_uint_eq(s.crc, crc32c(crc32c(0, a, sizeof(a) - 1), b, sizeof(b) - 1));
        ck_assert_int_eq(snapshot_finish(&s), 0);
        ck_assert_int_eq(size_of(fd), (off_t) s.bytes);
        close(fd);
}
END_TEST

START_TEST(test_limits_write_nothing_past_them) {
        int fd = new_file();
        Snapshot s;

        snapshot_init(&s, fd, 10, 2);
        ck_assert_int_eq(snapshot_write(&s, "12345\0", 6), 0);
        /* Five more bytes would be 11: refused whole, nothing written. */
        ck_assert_int_eq(snapshot_write(&s, "abcd\0", 5), -EFBIG);
        ck_assert_uint_eq(s.bytes, 6);
        ck_assert_int_eq(size_of(fd), 6);
        /* A third item, within the bytes: too many items. */
        ck_assert_int_eq(snapshot_write(&s, "a\0b\0", 4), -E2BIG);
        ck_assert_uint_eq(s.items, 1);
        ck_assert_int_eq(snapshot_write(&s, "xy\0", 3), 0);
        ck_assert_uint_eq(s.items, 2);
        ck_assert_int_eq(size_of(fd), 9);
        close(fd);
}
END_TEST

START_TEST(test_an_unended_item_is_refused) {
        int fd = new_file();
        Snapshot s;

        snapshot_init(&s, fd, 100, 100);
        ck_assert_int_eq(snapshot_write(&s, "a\0b", 3), 0);
        ck_assert_int_eq(snapshot_finish(&s), -EBADMSG);
        ck_assert_int_eq(snapshot_write(&s, "\0", 1), 0);
        ck_assert_int_eq(snapshot_finish(&s), 0);
        /* An empty list is a list of no items. */
        snapshot_init(&s, fd, 100, 100);
        ck_assert_int_eq(snapshot_finish(&s), 0);
        close(fd);
}
END_TEST

/* Past a few writeback windows, in pieces that straddle them. */
START_TEST(test_large_snapshot_in_pieces) {
        size_t piece = 1000003, total = 0;
        char *buf = malloc(piece);
        int fd = new_file();
        uint32_t crc = 0;
        Snapshot s;

        ck_assert_ptr_nonnull(buf);
        memset(buf, 'x', piece);
        for (size_t i = 99; i < piece; i += 100)
                buf[i] = '\0';
        buf[piece - 1] = '\0';
        snapshot_init(&s, fd, UINT64_MAX, UINT64_MAX);
        for (int k = 0; k < 30; k++) {
                ck_assert_int_eq(snapshot_write(&s, buf, piece), 0);
                crc = crc32c(crc, buf, piece);
                total += piece;
        }
        ck_assert_uint_ge(s.synced, 2 * SNAPSHOT_WINDOW);
        ck_assert_uint_le(s.bytes - s.synced, SNAPSHOT_WINDOW);
        ck_assert_int_eq(snapshot_finish(&s), 0);
        ck_assert_uint_eq(s.crc, crc);
        ck_assert_int_eq(size_of(fd), (off_t) total);
        free(buf);
        close(fd);
}
END_TEST

static Suite *snapshot_suite(void) {
        Suite *s = suite_create("snapshot");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_counts_and_fingerprint);
        tcase_add_test(tc, test_limits_write_nothing_past_them);
        tcase_add_test(tc, test_an_unended_item_is_refused);
        tcase_add_test(tc, test_large_snapshot_in_pieces);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(snapshot_suite());
}
