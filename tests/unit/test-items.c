/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "items.h"
#include "test-util.h"

/* An input snapshot built in memory, with each item's expected offset. */
typedef struct Snapshot {
        char *data;
        size_t len;
        uint64_t n;
        uint64_t *offsets;
} Snapshot;

/* Item k: empty every tenth, a repeated "dup" every seventh, otherwise of
 * varying length so that offsets do not follow a pattern. */
static void snapshot_build(Snapshot *s, uint64_t n) {
        size_t cap = 64;

        *s = (Snapshot){ .n = n };
        s->offsets = calloc(n ? n : 1, sizeof(uint64_t));
        s->data = malloc(cap);
        ck_assert_ptr_nonnull(s->offsets);
        ck_assert_ptr_nonnull(s->data);
        for (uint64_t k = 0; k < n; k++) {
                char item[128];
                int len;

                if (k % 10 == 0)
                        len = 0, item[0] = '\0';
                else if (k % 7 == 0)
                        len = snprintf(item, sizeof(item), "dup");
                else
                        len = snprintf(item, sizeof(item), "item-%llu-%.*s", (unsigned long long) k, (int) (k % 50),
                                       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
                if (s->len + (size_t) len + 1 > cap) {
                        cap *= 2;
                        s->data = realloc(s->data, cap);
                        ck_assert_ptr_nonnull(s->data);
                }
                s->offsets[k] = s->len;
                memcpy(s->data + s->len, item, (size_t) len + 1);
                s->len += (size_t) len + 1;
        }
}

static void snapshot_free(Snapshot *s) {
        free(s->data);
        free(s->offsets);
}

static int snapshot_file(int dirfd, const char *name, const void *data, size_t len) {
        int fd;

        test_write_file(dirfd, name, data, len);
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        return fd;
}

static void check_all_offsets(const Items *it, const Snapshot *s) {
        ck_assert_uint_eq(it->n, s->n);
        ck_assert_uint_eq(it->size, s->len);
        for (uint64_t i = 0; i < s->n; i++) {
                uint64_t off = items_offset(it, i);

                ck_assert_msg(off == s->offsets[i], "item %llu at %llu, expected %llu", (unsigned long long) i,
                              (unsigned long long) off, (unsigned long long) s->offsets[i]);
                ck_assert_str_eq(it->map + off, s->data + s->offsets[i]);
        }
        /* Backwards too: no state is kept between lookups. */
        for (uint64_t i = s->n; i-- > 0;)
                ck_assert_uint_eq(items_offset(it, i), s->offsets[i]);
}

START_TEST(test_offsets) {
        char path[PATH_MAX], err[256] = "";
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Snapshot s;
        Items it;

        snapshot_build(&s, 1000);
        fd = snapshot_file(dirfd, "items", s.data, s.len);
        ck_assert_msg(items_open(&it, fd, s.n, s.len, crc32c(0, s.data, s.len), err, sizeof(err)) == 0, "%s", err);
        check_all_offsets(&it, &s);
        /* The snapshot has empty items and duplicates where expected. */
        ck_assert_str_eq(it.map + items_offset(&it, 0), "");
        ck_assert_str_eq(it.map + items_offset(&it, 990), "");
        ck_assert_str_eq(it.map + items_offset(&it, 7), "dup");
        ck_assert_str_eq(it.map + items_offset(&it, 21), "dup");
        ck_assert_str_eq(it.map + items_offset(&it, 999), s.data + s.offsets[999]);
        items_close(&it);
        ck_assert_ptr_null(it.map);
        ck_assert_ptr_null(it.index);
        snapshot_free(&s);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_stride_edges) {
        /* Counts around the sparse index's stride. */
        static const uint64_t counts[] = { 1,
                                           2,
                                           ITEMS_STRIDE - 1,
                                           ITEMS_STRIDE,
                                           ITEMS_STRIDE + 1,
                                           2 * ITEMS_STRIDE,
                                           2 * ITEMS_STRIDE + 1 };

        for (size_t k = 0; k < ELEMENTSOF(counts); k++) {
                char path[PATH_MAX], err[256] = "";
                int dirfd = test_tmpdir(path, sizeof(path)), fd;
                Snapshot s;
                Items it;

                snapshot_build(&s, counts[k]);
                fd = snapshot_file(dirfd, "items", s.data, s.len);
                ck_assert_msg(items_open(&it, fd, s.n, s.len, crc32c(0, s.data, s.len), err, sizeof(err)) == 0,
                              "%llu items: %s", (unsigned long long) counts[k], err);
                check_all_offsets(&it, &s);
                items_close(&it);
                snapshot_free(&s);
                close(fd);
                close(dirfd);
        }
}
END_TEST

START_TEST(test_all_empty_items) {
        /* Nothing but NULs: every item is empty. */
        char path[PATH_MAX], err[256] = "", zeros[300] = {};
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Items it;

        fd = snapshot_file(dirfd, "items", zeros, sizeof(zeros));
        ck_assert_int_eq(items_open(&it, fd, sizeof(zeros), sizeof(zeros), crc32c(0, zeros, sizeof(zeros)), err,
                                    sizeof(err)),
                         0);
        for (uint64_t i = 0; i < sizeof(zeros); i++)
                ck_assert_uint_eq(items_offset(&it, i), i);
        items_close(&it);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_zero_items) {
        char path[PATH_MAX], err[256] = "";
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Items it;

        fd = snapshot_file(dirfd, "items", "", 0);
        ck_assert_msg(items_open(&it, fd, 0, 0, crc32c(0, "", 0), err, sizeof(err)) == 0, "%s", err);
        ck_assert_uint_eq(it.n, 0);
        ck_assert_ptr_null(it.map);
        items_close(&it);
        /* The CRC of nothing is not checked against a mapping of nothing,
         * but an empty file with items promised is damage. */
        err[0] = '\0';
        ck_assert_int_eq(items_open(&it, fd, 3, 0, 0, err, sizeof(err)), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err, "empty"));
        ck_assert_ptr_null(it.index);
        close(fd);
        close(dirfd);
}
END_TEST

static void check_refused(int fd, uint64_t n, uint64_t bytes, uint32_t crc, const char *mention) {
        char err[256] = "";
        Items it;

        ck_assert_int_eq(items_open(&it, fd, n, bytes, crc, err, sizeof(err)), -EBADMSG);
        ck_assert_msg(strstr(err, mention), "\"%s\" does not mention \"%s\"", err, mention);
        ck_assert_ptr_null(it.map);
        ck_assert_ptr_null(it.index);
}

START_TEST(test_mismatch) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Snapshot s;
        uint32_t crc;

        snapshot_build(&s, 1000);
        crc = crc32c(0, s.data, s.len);
        fd = snapshot_file(dirfd, "items", s.data, s.len);

        check_refused(fd, s.n, s.len, crc ^ 1, "fingerprint");
        check_refused(fd, s.n, s.len, 0, "fingerprint");
        check_refused(fd, s.n, s.len + 1, crc, "bytes");
        check_refused(fd, s.n, s.len - 1, crc, "bytes");
        check_refused(fd, s.n, 0, crc, "bytes");
        check_refused(fd, s.n - 1, s.len, crc, "999 items");
        check_refused(fd, s.n + 1, s.len, crc, "1001 items");
        check_refused(fd, 0, s.len, crc, "0 items");
        close(fd);

        /* A changed item with the old fingerprint. */
        s.data[5] ^= 1;
        fd = snapshot_file(dirfd, "changed", s.data, s.len);
        check_refused(fd, s.n, s.len, crc, "fingerprint");
        close(fd);
        snapshot_free(&s);
        close(dirfd);
}
END_TEST

START_TEST(test_bad_layout) {
        /* The right fingerprint for bytes that are not n NUL-terminated
         * items. */
        static const struct {
                const char *data;
                size_t len;
                uint64_t n;
        } cases[] = {
                { "a\0b", 3, 2 },      /* last item unterminated */
                { "a\0b", 3, 1 },      /* trailing bytes */
                { "a\0b\0c\0", 6, 2 }, /* one item too many */
                { "abc", 3, 1 },       /* no NUL at all */
        };
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                int fd = snapshot_file(dirfd, "items", cases[k].data, cases[k].len);

                check_refused(fd, cases[k].n, cases[k].len, crc32c(0, cases[k].data, cases[k].len), "items");
                close(fd);
        }
        close(dirfd);
}
END_TEST

START_TEST(test_not_a_file) {
        char err[256] = "";
        Items it;

        ck_assert_int_eq(items_open(&it, -1, 1, 1, 0, err, sizeof(err)), -EBADF);
        ck_assert_ptr_nonnull(strstr(err, "stat"));
}
END_TEST

/* Regressions: bugs in items_open() (runner/items.c) found by these tests, fixed since. */

START_TEST(test_huge_n_index_overflow) {
        /* nidx = (n + ITEMS_STRIDE - 1) / ITEMS_STRIDE wraps to 0 for n near
         * UINT64_MAX: a one-slot index, then the scan writes index[1],
         * index[2], ... for every 64th item in the file. */
        char path[PATH_MAX], err[256] = "", buf[400];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Items it;

        for (size_t i = 0; i < sizeof(buf); i += 2)
                buf[i] = 'a', buf[i + 1] = '\0';
        fd = snapshot_file(dirfd, "items", buf, sizeof(buf));
        ck_assert_int_eq(items_open(&it, fd, UINT64_MAX, sizeof(buf), crc32c(0, buf, sizeof(buf)), err, sizeof(err)),
                         -EBADMSG);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_huge_n_error_message) {
        /* An item count the index cannot be allocated for fails with
         * -ENOMEM and leaves err untouched; run_main() then reports the
         * uninitialized err buffer. A count larger than the file is simply
         * damage (-EBADMSG, with a message). */
        char path[PATH_MAX], err[256] = "untouched", buf[4] = { 'a', 0, 'b', 0 };
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Items it;

        fd = snapshot_file(dirfd, "items", buf, sizeof(buf));
        ck_assert_int_eq(items_open(&it, fd, UINT64_C(1) << 62, sizeof(buf), crc32c(0, buf, sizeof(buf)), err,
                                    sizeof(err)),
                         -EBADMSG);
        ck_assert_str_ne(err, "untouched");
        close(fd);
        close(dirfd);
}
END_TEST

static Suite *items_suite(void) {
        Suite *s = suite_create("items");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_offsets);
        tcase_add_test(tc, test_stride_edges);
        tcase_add_test(tc, test_all_empty_items);
        tcase_add_test(tc, test_zero_items);
        tcase_add_test(tc, test_mismatch);
        tcase_add_test(tc, test_bad_layout);
        tcase_add_test(tc, test_not_a_file);
        suite_add_tcase(s, tc);
        {
                TCase *tc_bugs = tcase_create("regressions");

                tcase_add_test(tc_bugs, test_huge_n_index_overflow);
                tcase_add_test(tc_bugs, test_huge_n_error_message);
                suite_add_tcase(s, tc_bugs);
        }
        return s;
}

int main(void) {
        return test_run_suite(items_suite());
}
