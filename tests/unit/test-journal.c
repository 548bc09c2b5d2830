/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "journal.h"
#include "macro.h"
#include "test-util.h"

/* The write-ahead journal: what is appended (and acknowledged) is replayed
 * in order after a reopen, until a reset voids it; a torn or damaged
 * record ends the replay there, a torn header falls back to the other
 * slot, and a record that does not fit is refused with nothing written. */

typedef struct Seen {
        size_t n;
        uint32_t type[64];
        char text[64][64];
        int fail_at; /* 1-based: that call fails */
} Seen;

static int collect(uint32_t type, const void *payload, size_t len, void *userdata) {
        Seen *s = userdata;

        if (s->fail_at > 0 && (size_t) s->fail_at == s->n + 1)
                return -EIO;
        ck_assert_uint_lt(s->n, 64);
        s->type[s->n] = type;
        ck_assert_uint_lt(len, 64);
        memcpy(s->text[s->n], payload, len);
        s->text[s->n][len] = '\0';
        s->n++;
        return 0;
}

static void append(Journal *j, uint32_t type, const char *a, const char *b) {
        struct iovec iov[2] = { { UNCONST(a), strlen(a) }, { UNCONST(b), strlen(b) } };

        ck_assert_int_eq(journal_append(j, type, iov, 2), 0);
}

static void reopen(Journal *j, int dirfd, Seen *s) {
        journal_close(j);
        *s = (Seen){};
        ck_assert_int_eq(journal_open(j, dirfd, collect, s), 0);
}

START_TEST(test_records_replay_until_reset) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Journal j;
        Seen s = {};

        ck_assert_int_eq(journal_open(&j, dirfd, collect, &s), 0);
        ck_assert_uint_eq(s.n, 0);
        ck_assert(!j.recreated);
        ck_assert(journal_is_empty(&j));
        ck_assert_int_eq(test_file_size(dirfd, JOURNAL_NAME), JOURNAL_SIZE);
        /* Nothing is appended before the reset that follows an open. */
        {
                struct iovec iov = { UNCONST("x"), 1 };
                ck_assert_int_eq(journal_append(&j, JOURNAL_SUBMIT, &iov, 1), -EBUSY);
        }
        ck_assert_int_eq(journal_reset(&j), 0);
        append(&j, JOURNAL_SUBMIT, "one", "");
        append(&j, 7, "tw", "o");
        append(&j, JOURNAL_SUBMIT, "three", "!");
        ck_assert(!journal_is_empty(&j));
        reopen(&j, dirfd, &s);
        ck_assert_uint_eq(s.n, 3);
        ck_assert_str_eq(s.text[0], "one");
        ck_assert_str_eq(s.text[1], "two");
        ck_assert_uint_eq(s.type[1], 7);
        ck_assert_str_eq(s.text[2], "three!");
        /* Replayed again until a reset voids them all, durably; the next
         * records replay alone. */
        reopen(&j, dirfd, &s);
        ck_assert_uint_eq(s.n, 3);
        ck_assert_int_eq(journal_reset(&j), 0);
        ck_assert(journal_is_empty(&j));
        reopen(&j, dirfd, &s);
        ck_assert_uint_eq(s.n, 0);
        ck_assert_int_eq(journal_reset(&j), 0);
        append(&j, JOURNAL_SUBMIT, "five", "");
        ck_assert_int_eq(journal_reset(&j), 0);
        append(&j, JOURNAL_SUBMIT, "six", "");
        reopen(&j, dirfd, &s);
        ck_assert_uint_eq(s.n, 1);
        ck_assert_str_eq(s.text[0], "six");
        journal_close(&j);
        close(dirfd);
}
END_TEST

/* A crash in the middle of an append: the record is cut, or its payload
 * is damaged; the replay stops there, and the next append overwrites it. */
START_TEST(test_torn_or_damaged_record) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Journal j;
        Seen s = {};
        uint64_t end;

        ck_assert_int_eq(journal_open(&j, dirfd, collect, &s), 0);
        ck_assert_int_eq(journal_reset(&j), 0);
        append(&j, JOURNAL_SUBMIT, "kept", "");
        end = j.end;
        append(&j, JOURNAL_SUBMIT, "torn", "");
        append(&j, JOURNAL_SUBMIT, "after", "");
        journal_close(&j);
        fd = openat(dirfd, JOURNAL_NAME, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        /* One byte of the second payload flipped. */
        {
                char c;
                ck_assert_int_eq(pread(fd, &c, 1, (off_t) (end + sizeof(JournalRecord) + 1)), 1);
                c ^= 0x20;
                ck_assert_int_eq(pwrite(fd, &c, 1, (off_t) (end + sizeof(JournalRecord) + 1)), 1);
        }
        close(fd);
        ck_assert_int_eq(journal_open(&j, dirfd, collect, &s), 0);
        ck_assert_uint_eq(s.n, 1);
        ck_assert_str_eq(s.text[0], "kept");
        ck_assert_uint_eq(j.end, end);
        /* After the reset, a record of the same size where the damaged one
         * was does not bring back the stale one after it. */
        ck_assert_int_eq(journal_reset(&j), 0);
        append(&j, JOURNAL_SUBMIT, "kept", "");
        append(&j, JOURNAL_SUBMIT, "newr", "");
        reopen(&j, dirfd, &s);
        ck_assert_uint_eq(s.n, 2);
        ck_assert_str_eq(s.text[1], "newr");
        journal_close(&j);

        /* A record header of zeros (never written) ends it the same way. */
        fd = openat(dirfd, JOURNAL_NAME, O_RDWR | O_CLOEXEC);
        {
                JournalRecord zero = {};
                ck_assert_int_eq(pwrite(fd, &zero, sizeof(zero), (off_t) end), (ssize_t) sizeof(zero));
        }
        close(fd);
        ck_assert_int_eq(journal_open(&j, dirfd, collect, (s = (Seen){}, &s)), 0);
        ck_assert_uint_eq(s.n, 1);
        journal_close(&j);
        close(dirfd);
}
END_TEST

/* A reset writes the other header slot; torn, the previous generation
 * stands, with its records (already made durable elsewhere: replaying
 * them again changes nothing). */
START_TEST(test_torn_header_falls_back) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Journal j;
        Seen s = {};
        unsigned slot;

        ck_assert_int_eq(journal_open(&j, dirfd, collect, &s), 0);
        ck_assert_int_eq(journal_reset(&j), 0);
        append(&j, JOURNAL_SUBMIT, "old", "");
        ck_assert_int_eq(journal_reset(&j), 0);
        slot = j.slot;
        journal_close(&j);
        fd = openat(dirfd, JOURNAL_NAME, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pwrite(fd, "\xff\xff", 2, (off_t) (slot * JOURNAL_SLOT_SIZE + 12)), 2);
        close(fd);
        ck_assert_int_eq(journal_open(&j, dirfd, collect, &s), 0);
        ck_assert(!j.recreated);
        ck_assert_uint_eq(s.n, 1);
        ck_assert_str_eq(s.text[0], "old");
        ck_assert_uint_ne(j.slot, slot);
        journal_close(&j);

        /* Both headers gone: not a journal that could hold a record. */
        fd = openat(dirfd, JOURNAL_NAME, O_RDWR | O_CLOEXEC);
        ck_assert_int_eq(pwrite(fd, "\xff\xff", 2, (off_t) ((1 - slot) * JOURNAL_SLOT_SIZE + 12)), 2);
        close(fd);
        ck_assert_int_eq(journal_open(&j, dirfd, collect, (s = (Seen){}, &s)), 0);
        ck_assert(j.recreated);
        ck_assert_uint_eq(s.n, 0);
        journal_close(&j);

        /* Nor is a file of another size. */
        fd = openat(dirfd, JOURNAL_NAME, O_RDWR | O_CLOEXEC);
        ck_assert_int_eq(ftruncate(fd, 4096), 0);
        close(fd);
        ck_assert_int_eq(journal_open(&j, dirfd, collect, &s), 0);
        ck_assert(j.recreated);
        ck_assert_int_eq(test_file_size(dirfd, JOURNAL_NAME), JOURNAL_SIZE);
        journal_close(&j);
        close(dirfd);
}
END_TEST

START_TEST(test_full_and_too_large) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        char *big = malloc(JOURNAL_RECORD_MAX + 1);
        struct iovec iov = { big, JOURNAL_RECORD_MAX + 1 };
        Journal j;
        Seen s = {};
        uint64_t end, seq;
        int r, n = 0;

        ck_assert_ptr_nonnull(big);
        memset(big, 'x', JOURNAL_RECORD_MAX + 1);
        ck_assert_int_eq(journal_open(&j, dirfd, NULL, NULL), 0);
        ck_assert_int_eq(journal_reset(&j), 0);
        ck_assert_int_eq(journal_append(&j, JOURNAL_SUBMIT, &iov, 1), -E2BIG);
        iov.iov_len = JOURNAL_RECORD_MAX;
        while ((r = journal_append(&j, JOURNAL_SUBMIT, &iov, 1)) == 0)
                n++;
        ck_assert_int_eq(r, -ENOSPC);
        ck_assert_int_eq(n, (int) ((JOURNAL_SIZE - JOURNAL_DATA_START) / (JOURNAL_RECORD_MAX + 32)));
        /* Refused: nothing written, the small ones still fit. */
        end = j.end;
        seq = j.seq;
        iov.iov_len = 100;
        ck_assert_int_eq(journal_append(&j, JOURNAL_SUBMIT, &iov, 1), 0);
        ck_assert_uint_eq(j.seq, seq + 1);
        ck_assert_uint_gt(j.end, end);
        journal_close(&j);
        ck_assert_int_eq(journal_open(&j, dirfd, NULL, NULL), 0);
        ck_assert_uint_eq(j.replayed, (uint64_t) n + 1);
        ck_assert_int_eq(journal_reset(&j), 0);
        iov.iov_len = JOURNAL_RECORD_MAX;
        ck_assert_int_eq(journal_append(&j, JOURNAL_SUBMIT, &iov, 1), 0);
        journal_close(&j);
        (void) s;
        free(big);
        close(dirfd);
}
END_TEST

/* A replay that fails fails the open, and nothing is void: the next open
 * replays the same records. */
START_TEST(test_replay_failure) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Journal j;
        Seen s = { .fail_at = 2 };

        ck_assert_int_eq(journal_open(&j, dirfd, NULL, NULL), 0);
        ck_assert_int_eq(journal_reset(&j), 0);
        append(&j, JOURNAL_SUBMIT, "a", "");
        append(&j, JOURNAL_SUBMIT, "b", "");
        journal_close(&j);
        ck_assert_int_eq(journal_open(&j, dirfd, collect, &s), -EIO);
        ck_assert_int_eq(j.fd, -1);
        s = (Seen){};
        ck_assert_int_eq(journal_open(&j, dirfd, collect, &s), 0);
        ck_assert_uint_eq(s.n, 2);
        journal_close(&j);
        close(dirfd);
}
END_TEST

static Suite *journal_suite(void) {
        Suite *s = suite_create("journal");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_records_replay_until_reset);
        tcase_add_test(tc, test_torn_or_damaged_record);
        tcase_add_test(tc, test_torn_header_falls_back);
        tcase_add_test(tc, test_full_and_too_large);
        tcase_add_test(tc, test_replay_failure);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(journal_suite());
}
