/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "test-util.h"

#define N_ITEMS 1000u
#define LOG_HDR ((off_t) sizeof(CkptLogHeader))

static size_t record_size(uint32_t n_ranges) {
        return sizeof(CkptRecord) + (size_t) n_ranges * sizeof(IpcRange);
}

/* What the checkpoint should hold, tracked independently of it. */
typedef struct Model {
        uint64_t bitmap[(N_ITEMS + 63) / 64];
        uint64_t seq, done, failed, results_len;
} Model;

/* The set's serialized form (what snapshots and the memfd hold) against
 * a plain bitmap, and its membership bit by bit. */
static void bits_assert(const Bitset *b, const uint64_t *words, uint64_t n) {
        uint64_t off = 0;

        ck_assert_uint_eq(b->n, n);
        for (uint64_t k = 0; k < b->n_chunks; k++) {
                uint64_t nw = bitset_chunk_words(b, k);
                ck_assert_mem_eq(bitset_chunk_data(b, k), words + off, nw * sizeof(uint64_t));
                off += nw;
        }
        ck_assert_uint_eq(off, bitmap_words(n));
        /* One assertion for the loop: each one in a forked test is a write
         * to Check's pipe, too slow a million times over. */
        for (uint64_t i = 0; i < n; i++)
                if (bitset_test(b, i) != bitmap_test(words, i))
                        ck_abort_msg("item %llu differs", (unsigned long long) i);
        ck_assert_uint_eq(b->count, bitmap_popcount(words, n));
}

static void model_assert(const Model *m, const Checkpoint *c) {
        ck_assert_uint_eq(c->seq, m->seq);
        ck_assert_uint_eq(c->done, m->done);
        ck_assert_uint_eq(c->failed, m->failed);
        ck_assert_uint_eq(c->results_len, m->results_len);
        bits_assert(&c->bits, m->bitmap, N_ITEMS);
        ck_assert_uint_eq(c->bits.count, m->done);
}

/* Commits ranges with totals that add up, and applies them to the model. */
static void commit_ok(Checkpoint *c, Model *m, const IpcRange *ranges, uint32_t n, uint64_t new_failed) {
        IpcCommit commit = { .n_ranges = n };
        uint64_t count = 0;

        for (uint32_t i = 0; i < n; i++)
                count += ranges[i].count;
        commit.done_total = m->done + count;
        commit.failed_total = m->failed + new_failed;
        commit.results_len = m->results_len + 100 * count;
        ck_assert_int_eq(checkpoint_commit(c, &commit, ranges), 0);
        for (uint32_t i = 0; i < n; i++)
                bitmap_set_range(m->bitmap, ranges[i].first, ranges[i].count);
        m->seq++;
        m->done = commit.done_total;
        m->failed = commit.failed_total;
        m->results_len = commit.results_len;
        model_assert(m, c);
}

static void commit_one(Checkpoint *c, Model *m, uint64_t first, uint64_t count, uint64_t new_failed) {
        IpcRange r = { first, count };

        commit_ok(c, m, &r, 1, new_failed);
}

static void reopen_n(Checkpoint *c, int dirfd, uint64_t n_items) {
        checkpoint_close(c);
        ck_assert_int_eq(checkpoint_open(c, dirfd, n_items), 0);
}

static void reopen(Checkpoint *c, int dirfd) {
        reopen_n(c, dirfd, N_ITEMS);
}

/* Five one-range commits: records of 64 bytes each after the header. */
static void five_commits(Checkpoint *c, Model *m) {
        commit_one(c, m, 0, 10, 1);
        commit_one(c, m, 60, 10, 0);
        commit_one(c, m, 128, 64, 5);
        commit_one(c, m, 500, 1, 1);
        commit_one(c, m, 999, 1, 0);
}

/* Appends a record the way checkpoint_commit() would, but with whatever
 * fields the test wants, so that well-formed but wrong records can be fed
 * to recovery. */
static void append_raw_record(int dirfd, const CkptRecord *rec_in, const IpcRange *ranges) {
        CkptRecord rec = *rec_in;
        int fd;

        rec.crc = 0;
        rec.crc = crc32c(crc32c(0, &rec, sizeof(rec)), ranges, (size_t) rec.n_ranges * sizeof(IpcRange));
        fd = openat(dirfd, CKPT_LOG, O_WRONLY | O_APPEND | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write_full(fd, &rec, sizeof(rec)), 0);
        ck_assert_int_eq(write_full(fd, ranges, (size_t) rec.n_ranges * sizeof(IpcRange)), 0);
        close(fd);
}

static void truncate_log(int dirfd, off_t size) {
        int fd = openat(dirfd, CKPT_LOG, O_WRONLY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, size), 0);
        close(fd);
}

START_TEST(test_empty) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), LOG_HDR);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.n_items, N_ITEMS);
        ck_assert_uint_eq(c.log_size, (uint64_t) LOG_HDR);
        ck_assert_uint_eq(c.recovered_records, 0);
        ck_assert_uint_eq(c.torn_bytes, 0);
        ck_assert(!checkpoint_is_done(&c, 0));
        ck_assert(!test_file_exists(dirfd, CKPT_SNAP));
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_zero_items) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        IpcRange r = { 0, 1 };
        IpcCommit commit = { .done_total = 1, .n_ranges = 1 };

        ck_assert_int_eq(checkpoint_create(dirfd, 0), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, 0), 0);
        ck_assert_uint_eq(c.done, 0);
        ck_assert_uint_eq(c.seq, 0);
        /* Nothing can be committed in an empty job. */
        ck_assert_int_eq(checkpoint_commit(&c, &commit, &r), -EINVAL);
        /* A snapshot of no bits at all is still a valid snapshot. */
        ck_assert_int_eq(checkpoint_compact(&c), 0);
        checkpoint_close(&c);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, 0), 0);
        ck_assert_uint_eq(c.seq, 0);
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_missing_or_garbage_log) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;

        /* No log (and no snapshot): a job that has committed nothing yet,
         * generation 0. */
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        ck_assert_int_eq(c.log_fd, -1);
        ck_assert_uint_eq(c.gen, 0);
        ck_assert_uint_eq(c.done, 0);
        checkpoint_close(&c);

        /* A whole header's worth that is not a header is damage. */
        test_write_file(dirfd, CKPT_LOG, "garbage garbage garbage garbage garbage", 39);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), -EBADMSG);
        ck_assert_ptr_null(c.bits.chunk);
        ck_assert_int_eq(c.log_fd, -1);
        close(dirfd);
}
END_TEST

/* A job's first commit creates its log; the name is durable with it. */
START_TEST(test_first_commit_creates_the_log) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};
        struct stat st;

        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        ck_assert_int_eq(fstatat(dirfd, CKPT_LOG, &st, 0), -1);
        commit_one(&c, &m, 0, 10, 1);
        ck_assert_int_eq(fstatat(dirfd, CKPT_LOG, &st, 0), 0);
        ck_assert_int_eq(st.st_size, LOG_HDR + (off_t) record_size(1));
        ck_assert(!c.log_name_unsynced);
        commit_one(&c, &m, 10, 5, 0);
        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 2);
        /* Compaction leaves a snapshot and a new log; a snapshot whose log
         * is gone is damage, not a job that never committed. */
        ck_assert_int_eq(checkpoint_compact(&c), 0);
        checkpoint_close(&c);
        ck_assert_int_eq(unlinkat(dirfd, CKPT_LOG, 0), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), -EBADMSG);
        ck_assert_ptr_null(c.bits.chunk);
        close(dirfd);
}
END_TEST

/* A new job's log is created empty with the job; its first commit writes
 * the header with the record, and needs no directory fsync. A log shorter
 * than a header is a first commit that never became durable: cut back to
 * empty, not damage. */
START_TEST(test_empty_log_of_a_new_job) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};

        ck_assert_int_eq(checkpoint_create_empty(dirfd), 0);
        ck_assert_int_eq(checkpoint_create_empty(dirfd), -EEXIST);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        ck_assert_int_ge(c.log_fd, 0);
        ck_assert_uint_eq(c.log_size, 0);
        commit_one(&c, &m, 0, 10, 1);
        ck_assert(!c.log_name_unsynced);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), LOG_HDR + (off_t) record_size(1));
        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 1);
        ck_assert_uint_eq(c.gen, 0);
        checkpoint_close(&c);

        /* Torn inside the header of the first commit. */
        test_write_file(dirfd, CKPT_LOG, "MPLCK", 5);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        ck_assert_uint_eq(c.torn_bytes, 5);
        ck_assert_uint_eq(c.done, 0);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), 0);
        m = (Model){};
        commit_one(&c, &m, 5, 3, 0);
        reopen(&c, dirfd);
        model_assert(&m, &c);
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_commits_persist) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        IpcRange multi[] = { { 300, 5 }, { 306, 58 }, { 600, 100 } };
        Checkpoint c;
        Model m = {};

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        five_commits(&c, &m);
        /* Several ranges in one record, across word boundaries. */
        commit_ok(&c, &m, multi, ELEMENTSOF(multi), 7);
        ck_assert_uint_eq(c.log_size, LOG_HDR + 5 * record_size(1) + record_size(3));
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), (off_t) c.log_size);

        ck_assert(checkpoint_is_done(&c, 9));
        ck_assert(!checkpoint_is_done(&c, 10));
        ck_assert(!checkpoint_is_done(&c, 305));
        ck_assert(checkpoint_is_done(&c, 306));
        ck_assert(checkpoint_is_done(&c, 999));

        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.seq, 6);
        ck_assert_uint_eq(c.done, 10 + 10 + 64 + 1 + 1 + 5 + 58 + 100);
        ck_assert_uint_eq(c.failed, 1 + 5 + 1 + 7);
        ck_assert_uint_eq(c.recovered_records, 6);
        ck_assert_uint_eq(c.torn_bytes, 0);
        ck_assert_uint_eq(c.log_size, LOG_HDR + 5 * record_size(1) + record_size(3));

        /* Appending after recovery continues the sequence. */
        commit_one(&c, &m, 20, 5, 0);
        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 7);
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

/* Each refused commit must leave memory and the log file exactly as they
 * were. */
static void assert_refused(Checkpoint *c, int dirfd, const Model *m, uint64_t results_len, uint64_t done_total,
                           uint64_t failed_total, const IpcRange *ranges, uint32_t n) {
        IpcCommit commit = {
                .results_len = results_len, .done_total = done_total, .failed_total = failed_total, .n_ranges = n
        };
        uint64_t log_size = c->log_size;

        ck_assert_int_eq(checkpoint_commit(c, &commit, ranges), -EINVAL);
        model_assert(m, c);
        ck_assert_uint_eq(c->log_size, log_size);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), (off_t) log_size);
}

START_TEST(test_invalid_commits) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};
        uint64_t rl, d, f;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        five_commits(&c, &m); /* 0..9, 60..69, 128..191, 500, 999 committed */
        rl = m.results_len + 1000;
        d = m.done;
        f = m.failed;

        /* Out of bounds. */
        assert_refused(&c, dirfd, &m, rl, d + 1, f, (IpcRange[]){ { N_ITEMS, 1 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d + 2, f, (IpcRange[]){ { N_ITEMS - 1, 2 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d + 5, f, (IpcRange[]){ { UINT64_MAX - 1, 5 } }, 1);
        /* first + count wraps around: must not pass as small. */
        assert_refused(&c, dirfd, &m, rl, d + 1, f, (IpcRange[]){ { 200, UINT64_MAX } }, 1);
        /* Empty range, and no range at all. */
        assert_refused(&c, dirfd, &m, rl, d, f, (IpcRange[]){ { 200, 0 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d, f, (IpcRange[]){ { 200, 1 } }, 0);
        /* More ranges than a record may hold: refused before reading them. */
        assert_refused(&c, dirfd, &m, rl, d + 1, f, (IpcRange[]){ { 200, 1 } }, IPC_COMMIT_RANGES_MAX + 1);
        /* Overlapping what is committed: inside, at either edge, spanning. */
        assert_refused(&c, dirfd, &m, rl, d + 10, f, (IpcRange[]){ { 5, 10 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d + 1, f, (IpcRange[]){ { 9, 1 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d + 5, f, (IpcRange[]){ { 55, 6 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d + 100, f, (IpcRange[]){ { 450, 100 } }, 1);
        /* A good range followed by one overlapping the committed ones. */
        assert_refused(&c, dirfd, &m, rl, d + 2, f, (IpcRange[]){ { 200, 1 }, { 500, 1 } }, 2);
        /* Unsorted, overlapping and repeated ranges within one commit. */
        assert_refused(&c, dirfd, &m, rl, d + 10, f, (IpcRange[]){ { 250, 5 }, { 240, 5 } }, 2);
        assert_refused(&c, dirfd, &m, rl, d + 20, f, (IpcRange[]){ { 240, 10 }, { 245, 10 } }, 2);
        assert_refused(&c, dirfd, &m, rl, d + 10, f, (IpcRange[]){ { 240, 5 }, { 240, 5 } }, 2);
        /* Totals that do not add up. */
        assert_refused(&c, dirfd, &m, rl, d + 4, f, (IpcRange[]){ { 240, 5 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d + 6, f, (IpcRange[]){ { 240, 5 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d, f, (IpcRange[]){ { 240, 5 } }, 1);
        /* More new failures than new items, and failures going backwards. */
        assert_refused(&c, dirfd, &m, rl, d + 5, f + 6, (IpcRange[]){ { 240, 5 } }, 1);
        assert_refused(&c, dirfd, &m, rl, d + 5, f - 1, (IpcRange[]){ { 240, 5 } }, 1);
        /* The results file cannot shrink. */
        assert_refused(&c, dirfd, &m, m.results_len - 1, d + 5, f, (IpcRange[]){ { 240, 5 } }, 1);

        /* Nothing of the above reached the log. */
        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 5);

        /* The limits themselves are fine: every new item failed, the
         * results file did not grow, two adjacent ranges. */
        {
                IpcRange ok[] = { { 240, 5 }, { 245, 5 } };
                IpcCommit commit = { .results_len = m.results_len, .done_total = d + 10, .failed_total = f + 10,
                                     .n_ranges = 2 };

                ck_assert_int_eq(checkpoint_commit(&c, &commit, ok), 0);
                bitmap_set_range(m.bitmap, 240, 10);
                m.seq++;
                m.done += 10;
                m.failed += 10;
                model_assert(&m, &c);
        }
        commit_one(&c, &m, 10, 50, 0); /* right between two committed ranges */
        reopen(&c, dirfd);
        model_assert(&m, &c);
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_torn_last_record) {
        /* Cut the last record at every interesting place: in its ranges, in
         * its header, right after its magic, one byte into it. */
        static const off_t cuts[] = { 1, 8, 16, 17, 40, 48, 60, 63 };

        for (size_t k = 0; k < ELEMENTSOF(cuts); k++) {
                char path[PATH_MAX];
                int dirfd = test_tmpdir(path, sizeof(path));
                Checkpoint c;
                Model m = {}, before;
                off_t size;

                ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
                ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
                commit_one(&c, &m, 0, 10, 1);
                commit_one(&c, &m, 60, 10, 0);
                commit_one(&c, &m, 128, 64, 5);
                commit_one(&c, &m, 500, 1, 1);
                before = m;
                commit_one(&c, &m, 999, 1, 0);
                checkpoint_close(&c);

                size = test_file_size(dirfd, CKPT_LOG);
                ck_assert_int_eq(size, LOG_HDR + 5 * (off_t) record_size(1));
                truncate_log(dirfd, size - cuts[k]);

                ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
                model_assert(&before, &c);
                ck_assert_uint_eq(c.recovered_records, 4);
                ck_assert_uint_eq(c.torn_bytes, record_size(1) - (size_t) cuts[k]);
                /* The tail is cut off, so the next record follows the last
                 * good one directly. */
                ck_assert_uint_eq(c.log_size, LOG_HDR + 4 * record_size(1));
                ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), (off_t) c.log_size);

                m = before;
                commit_one(&c, &m, 700, 3, 2);
                ck_assert_uint_eq(c.seq, 5);
                reopen(&c, dirfd);
                model_assert(&m, &c);
                ck_assert(!checkpoint_is_done(&c, 999));
                ck_assert(checkpoint_is_done(&c, 702));
                ck_assert_uint_eq(c.recovered_records, 5);
                ck_assert_uint_eq(c.torn_bytes, 0);
                checkpoint_close(&c);
                close(dirfd);
        }
}
END_TEST

/* Flips one byte at offset `at` of the last of five records and checks
 * that recovery stops right before it. */
static void check_corrupt_last(off_t at) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {}, before;
        IpcRange last[] = { { 700, 5 }, { 800, 100 } };
        off_t start;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        commit_one(&c, &m, 0, 10, 1);
        commit_one(&c, &m, 60, 10, 0);
        commit_one(&c, &m, 128, 64, 5);
        commit_one(&c, &m, 500, 1, 1);
        before = m;
        start = (off_t) c.log_size;
        commit_ok(&c, &m, last, ELEMENTSOF(last), 3);
        checkpoint_close(&c);

        test_flip_byte(dirfd, CKPT_LOG, start + at);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        model_assert(&before, &c);
        ck_assert_msg(c.recovered_records == 4, "byte %lld: %llu records recovered", (long long) at,
                      (unsigned long long) c.recovered_records);
        ck_assert_uint_eq(c.torn_bytes, record_size(2));
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), start);

        /* And the log is usable again. */
        m = before;
        commit_one(&c, &m, 999, 1, 0);
        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 5);
        checkpoint_close(&c);
        close(dirfd);
}

START_TEST(test_corrupt_last_record_ranges) {
        for (off_t at = (off_t) sizeof(CkptRecord); at < (off_t) record_size(2); at += 3)
                check_corrupt_last(at);
}
END_TEST

START_TEST(test_corrupt_last_record_header) {
        for (off_t at = 0; at < (off_t) sizeof(CkptRecord); at++)
                check_corrupt_last(at);
}
END_TEST

START_TEST(test_corrupt_middle_record) {
        /* Everything after a bad record is dropped, even good records: they
         * were only ever acknowledged after it. */
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {}, before;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        commit_one(&c, &m, 0, 10, 1);
        commit_one(&c, &m, 60, 10, 0);
        before = m;
        commit_one(&c, &m, 128, 64, 5);
        commit_one(&c, &m, 500, 1, 1);
        checkpoint_close(&c);

        test_flip_byte(dirfd, CKPT_LOG, LOG_HDR + 2 * (off_t) record_size(1) + 20);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        model_assert(&before, &c);
        ck_assert_uint_eq(c.recovered_records, 2);
        ck_assert_uint_eq(c.torn_bytes, 2 * record_size(1));
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_replay_checks_records) {
        /* Records with a good CRC whose contents do not follow from the
         * state before them: recovery stops at each, as it would refuse the
         * commit. A well-formed record is accepted, proving the helper. */
        static const struct {
                int64_t dseq;
                uint64_t first, count;
                int64_t ddone, dfailed, dresults;
                bool ok;
        } cases[] = {
                { 1, 200, 10, 10, 0, 0, true },      /* fine */
                { 2, 200, 10, 10, 0, 0, false },     /* seq gap */
                { 1, 5, 10, 10, 0, 0, false },       /* overlaps committed */
                { 1, 995, 10, 10, 0, 0, false },     /* out of bounds */
                { 1, 200, 0, 0, 0, 0, false },       /* empty range */
                { 1, 200, 10, 11, 0, 0, false },     /* done_total off */
                { 1, 200, 10, 10, 11, 0, false },    /* more failed than done */
                { 1, 200, 10, 10, -1, 0, false },    /* failed going back */
                { 1, 200, 10, 10, 0, -1, false },    /* results file shrinking */
        };

        for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
                char path[PATH_MAX];
                int dirfd = test_tmpdir(path, sizeof(path));
                Checkpoint c;
                Model m = {};
                IpcRange r = { cases[k].first, cases[k].count };
                CkptRecord rec;
                off_t good;

                ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
                ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
                five_commits(&c, &m);
                good = (off_t) c.log_size;
                checkpoint_close(&c);

                rec = (CkptRecord){
                        .magic = CKPT_RECORD_MAGIC,
                        .n_ranges = 1,
                        .seq = m.seq + (uint64_t) cases[k].dseq,
                        .results_len = m.results_len + (uint64_t) cases[k].dresults,
                        .done_total = m.done + (uint64_t) cases[k].ddone,
                        .failed_total = m.failed + (uint64_t) cases[k].dfailed,
                };
                append_raw_record(dirfd, &rec, &r);

                ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
                if (cases[k].ok) {
                        bitmap_set_range(m.bitmap, r.first, r.count);
                        m.seq = rec.seq;
                        m.done = rec.done_total;
                        m.failed = rec.failed_total;
                        m.results_len = rec.results_len;
                        ck_assert_uint_eq(c.recovered_records, 6);
                        ck_assert_uint_eq(c.torn_bytes, 0);
                } else {
                        ck_assert_msg(c.recovered_records == 5, "case %zu", k);
                        ck_assert_uint_eq(c.torn_bytes, record_size(1));
                        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), good);
                }
                model_assert(&m, &c);
                checkpoint_close(&c);
                close(dirfd);
        }
}
END_TEST

START_TEST(test_replay_too_many_ranges) {
        /* A header claiming more ranges than any record may hold is garbage,
         * not an allocation to attempt. */
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};
        CkptRecord rec;
        int fd;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        commit_one(&c, &m, 0, 10, 0);
        checkpoint_close(&c);

        rec = (CkptRecord){ .magic = CKPT_RECORD_MAGIC, .n_ranges = UINT32_MAX, .seq = 2 };
        fd = openat(dirfd, CKPT_LOG, O_WRONLY | O_APPEND | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write_full(fd, &rec, sizeof(rec)), 0);
        close(fd);

        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.torn_bytes, sizeof(rec));
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

/* A reader beside a committing writer (a Slurm shard's checkpoint, read
 * by the coordinator): what it finds is durable, and it cuts nothing. */
START_TEST(test_peek_reads_without_cutting) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c, p;
        Model m = {}, before;
        IpcRange one = { 900, 1 };
        IpcCommit ic = { .results_len = 1u << 20, .n_ranges = 1 };
        off_t size;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        commit_one(&c, &m, 0, 10, 1);
        before = m;
        commit_one(&c, &m, 60, 10, 0);
        size = test_file_size(dirfd, CKPT_LOG);
        /* The writer's last record half written: */
        truncate_log(dirfd, size - 7);
        ck_assert_int_eq(checkpoint_peek(&p, dirfd, N_ITEMS), 0);
        model_assert(&before, &p);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), size - 7);
        ic.done_total = p.done + 1;
        ic.failed_total = p.failed;
        ck_assert_int_eq(checkpoint_commit(&p, &ic, &one), -EROFS);
        ck_assert_int_eq(checkpoint_compact(&p), -EROFS);
        checkpoint_close(&p);
        checkpoint_close(&c);

        /* After a compaction, the snapshot and a fresh log. */
        m = before;
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        commit_one(&c, &m, 60, 10, 0);
        ck_assert_int_eq(checkpoint_compact(&c), 0);
        commit_one(&c, &m, 100, 5, 2);
        ck_assert_int_eq(checkpoint_peek(&p, dirfd, N_ITEMS), 0);
        model_assert(&m, &p);
        checkpoint_close(&p);
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_compaction) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        c.compact_threshold = 200;

        /* 32 + 2 * 64 = 160: still below the threshold. */
        commit_one(&c, &m, 0, 10, 1);
        commit_one(&c, &m, 60, 10, 0);
        ck_assert(!test_file_exists(dirfd, CKPT_SNAP));
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), LOG_HDR + 2 * (off_t) record_size(1));

        /* 224 > 200: this commit compacts. */
        commit_one(&c, &m, 128, 64, 5);
        ck_assert(test_file_exists(dirfd, CKPT_SNAP));
        ck_assert_int_eq(test_file_size(dirfd, CKPT_SNAP),
                         (off_t) (sizeof(CkptSnapHeader) + bitmap_words(N_ITEMS) * sizeof(uint64_t)));
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), LOG_HDR);
        ck_assert_uint_eq(c.log_size, (uint64_t) LOG_HDR);
        model_assert(&m, &c);

        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 0);
        ck_assert_uint_eq(c.torn_bytes, 0);
        c.compact_threshold = 200;

        /* More commits go to the new log, on top of the snapshot. */
        commit_one(&c, &m, 500, 1, 1);
        commit_one(&c, &m, 999, 1, 0);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), LOG_HDR + 2 * (off_t) record_size(1));
        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 2);
        ck_assert_uint_eq(c.seq, 5);
        c.compact_threshold = 200;

        /* A second compaction replaces the first snapshot. */
        commit_one(&c, &m, 300, 100, 50);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), LOG_HDR);
        commit_one(&c, &m, 700, 5, 0);
        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 1);
        ck_assert_uint_eq(c.seq, 7);

        /* No temporary files are left behind by the atomic writes. */
        {
                DIR *d = opendir(path);
                struct dirent *de;
                unsigned n = 0;

                ck_assert_ptr_nonnull(d);
                while ((de = readdir(d)))
                        if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                                n++;
                closedir(d);
                ck_assert_uint_eq(n, 2);
        }
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_snapshot_ahead_of_log) {
        /* A crash between writing the snapshot and replacing the log leaves
         * the old log, whose records are all in the snapshot already. */
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {}, at3;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        commit_one(&c, &m, 0, 10, 1);
        commit_one(&c, &m, 60, 10, 0);
        commit_one(&c, &m, 128, 64, 5);
        at3 = m;
        test_copy_file(dirfd, CKPT_LOG, "old.log");
        ck_assert_int_eq(checkpoint_compact(&c), 0);
        checkpoint_close(&c);
        ck_assert_int_eq(renameat(dirfd, "old.log", dirfd, CKPT_LOG), 0);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_LOG), LOG_HDR + 3 * (off_t) record_size(1));

        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        model_assert(&at3, &c);
        ck_assert_uint_eq(c.recovered_records, 0); /* skipped, not replayed */
        ck_assert_uint_eq(c.torn_bytes, 0);
        ck_assert_uint_eq(c.log_size, LOG_HDR + 3 * record_size(1));

        /* New records go after the old ones and are replayed on top of the
         * snapshot. */
        commit_one(&c, &m, 500, 1, 1);
        commit_one(&c, &m, 999, 1, 0);
        reopen(&c, dirfd);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.recovered_records, 2);
        ck_assert_uint_eq(c.seq, 5);
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_corrupt_snapshot) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        off_t snap_size = (off_t) (sizeof(CkptSnapHeader) + bitmap_words(N_ITEMS) * sizeof(uint64_t));
        Checkpoint c;
        Model m = {};

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        five_commits(&c, &m);
        ck_assert_int_eq(checkpoint_compact(&c), 0);
        checkpoint_close(&c);
        test_copy_file(dirfd, CKPT_SNAP, "good.snap");

        /* Every header byte, and bytes spread over the bitmap (bits past
         * n_items included: the last byte). */
        for (off_t at = 0; at < snap_size; at += at < (off_t) sizeof(CkptSnapHeader) ? 1 : 7) {
                test_copy_file(dirfd, "good.snap", CKPT_SNAP);
                test_flip_byte(dirfd, CKPT_SNAP, at);
                ck_assert_msg(checkpoint_open(&c, dirfd, N_ITEMS) == -EBADMSG, "byte %lld", (long long) at);
                ck_assert_ptr_null(c.bits.chunk);
                ck_assert_int_eq(c.log_fd, -1);
        }
        test_copy_file(dirfd, "good.snap", CKPT_SNAP);
        test_flip_byte(dirfd, CKPT_SNAP, snap_size - 1);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), -EBADMSG);

        /* Truncated, and grown. */
        test_copy_file(dirfd, "good.snap", CKPT_SNAP);
        {
                int fd = openat(dirfd, CKPT_SNAP, O_WRONLY | O_CLOEXEC);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(ftruncate(fd, snap_size - 1), 0);
                ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), -EBADMSG);
                ck_assert_int_eq(ftruncate(fd, snap_size + 8), 0);
                ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), -EBADMSG);
                close(fd);
        }

        /* The intact snapshot still works. */
        test_copy_file(dirfd, "good.snap", CKPT_SNAP);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        model_assert(&m, &c);
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_wrong_n_items) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        /* A well-formed header for another item count. */
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS + 1), -EBADMSG);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS - 1), -EBADMSG);
        ck_assert_ptr_null(c.bits.chunk);

        /* Every byte of the log header matters. */
        for (off_t at = 0; at < LOG_HDR; at++) {
                test_flip_byte(dirfd, CKPT_LOG, at);
                ck_assert_msg(checkpoint_open(&c, dirfd, N_ITEMS) == -EBADMSG, "byte %lld", (long long) at);
                test_flip_byte(dirfd, CKPT_LOG, at);
        }

        /* A snapshot for another item count (same bitmap size). */
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        five_commits(&c, &m);
        ck_assert_int_eq(checkpoint_compact(&c), 0);
        checkpoint_close(&c);
        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS + 1), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS + 1), -EBADMSG);
        close(dirfd);
}
END_TEST

START_TEST(test_bitmap_memfd) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        size_t bytes = bitmap_words(N_ITEMS) * sizeof(uint64_t);
        uint64_t buf[(N_ITEMS + 63) / 64 + 1];
        Checkpoint c;
        Model m = {};
        struct stat st;
        int fd, seals;
        void *p;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        five_commits(&c, &m);

        fd = checkpoint_bitmap_memfd(&c);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, (off_t) bytes);
        ck_assert_int_eq(pread_full(fd, buf, sizeof(buf), 0), (ssize_t) bytes);
        bits_assert(&c.bits, buf, N_ITEMS);
        ck_assert_mem_eq(buf, m.bitmap, bytes);

        seals = fcntl(fd, F_GET_SEALS);
        ck_assert_int_ge(seals, 0);
        ck_assert(seals & F_SEAL_WRITE);
        ck_assert(seals & F_SEAL_GROW);
        ck_assert(seals & F_SEAL_SHRINK);
        ck_assert(seals & F_SEAL_SEAL);
        /* The seals hold: no writes, no resizing, no shared writable map. */
        ck_assert_int_eq(pwrite(fd, "x", 1, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(ftruncate(fd, 0), -1);
        ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1); /* F_SEAL_SEAL */
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert(p == MAP_FAILED);
        ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
        close(fd);

        /* It is a copy: later commits do not show in an earlier memfd. */
        fd = checkpoint_bitmap_memfd(&c);
        ck_assert_int_ge(fd, 0);
        commit_one(&c, &m, 300, 1, 0);
        ck_assert_int_eq(pread_full(fd, buf, bytes, 0), (ssize_t) bytes);
        ck_assert(!bitmap_test(buf, 300));
        close(fd);

        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

/* A job of several 262,144-item chunks: a full chunk, a partial one, an
 * empty one and a partial last one, through commits, compaction, recovery
 * and the memfd. The plain bitmap is the model. */
#define BIG_ITEMS (3 * 262144 + 1000)

START_TEST(test_chunks) {
        static uint64_t model[(BIG_ITEMS + 63) / 64], buf[(BIG_ITEMS + 63) / 64];
        static const IpcRange ranges[][2] = {
                { { 0, 100000 }, { 100000, 162000 } }, /* most of chunk 0, in two ranges */
                { { 262000, 200 }, { 300000, 7 } },    /* across 0|1 (0 is full now), inside 1 */
                { { 3 * 262144 + 999, 1 }, { 0, 0 } }, /* the very last item */
                { { 3 * 262144, 10 }, { 0, 0 } },      /* the start of the last chunk */
        };
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        size_t bytes = bitmap_words(BIG_ITEMS) * sizeof(uint64_t);
        uint64_t done = 0;
        Checkpoint c;
        struct stat st;

        unsigned saved_shift = checkpoint_chunk_shift;

        checkpoint_chunk_shift = BITSET_SHIFT_MAX;
        memset(model, 0, sizeof(model));
        ck_assert_int_eq(checkpoint_create(dirfd, BIG_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, BIG_ITEMS), 0);
        ck_assert_uint_eq(c.bits.n_chunks, 4);
        for (size_t k = 0; k < ELEMENTSOF(ranges); k++) {
                uint32_t n = ranges[k][1].count ? 2 : 1;
                IpcCommit cm = { .n_ranges = n };
                for (uint32_t i = 0; i < n; i++) {
                        done += ranges[k][i].count;
                        bitmap_set_range(model, ranges[k][i].first, ranges[k][i].count);
                }
                cm.done_total = done;
                cm.results_len = done;
                ck_assert_int_eq(checkpoint_commit(&c, &cm, ranges[k]), 0);
                bits_assert(&c.bits, model, BIG_ITEMS);
        }
        /* Chunk 0 is full and chunk 2 empty: neither holds memory. */
        ck_assert_ptr_eq(c.bits.chunk[0], bitset_full);
        ck_assert_ptr_null(c.bits.chunk[2]);
        /* Recovery from the log, then from a snapshot. */
        reopen_n(&c, dirfd, BIG_ITEMS);
        bits_assert(&c.bits, model, BIG_ITEMS);
        ck_assert_uint_eq(c.recovered_records, ELEMENTSOF(ranges));
        ck_assert_int_eq(checkpoint_compact(&c), 0);
        ck_assert_int_eq(test_file_size(dirfd, CKPT_SNAP), (off_t) (sizeof(CkptSnapHeader) + bytes));
        reopen_n(&c, dirfd, BIG_ITEMS);
        bits_assert(&c.bits, model, BIG_ITEMS);
        ck_assert_uint_eq(c.recovered_records, 0);
        ck_assert_uint_eq(c.done, done);
        /* The memfd holds the plain bitmap. */
        fd = checkpoint_bitmap_memfd(&c);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, (off_t) bytes);
        ck_assert_int_eq(pread_full(fd, buf, bytes, 0), (ssize_t) bytes);
        ck_assert_mem_eq(buf, model, bytes);
        close(fd);
        /* A bit past the end in a snapshot is damage, found on open. */
        checkpoint_close(&c);
        test_flip_byte(dirfd, CKPT_SNAP, (off_t) (sizeof(CkptSnapHeader) + bytes - 1));
        ck_assert_int_eq(checkpoint_open(&c, dirfd, BIG_ITEMS), -EBADMSG);
        close(dirfd);
        checkpoint_chunk_shift = saved_shift; /* for CK_FORK=no */
}
END_TEST

#ifdef MPLOCK_TEST_FAULTS
/* Fault injection for the test-checkpoint-faults build only, which links with
 * -Wl,--wrap=openat64 -Wl,--wrap=openat: opens made by checkpoint.c and
 * fileio.c can be made to fail. */
int __real_openat64(int dirfd, const char *path, int flags, ...);
int __wrap_openat64(int dirfd, const char *path, int flags, ...);
int __real_openat(int dirfd, const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);

static enum {
        FAIL_NONE,
        FAIL_LOG_REOPEN, /* the open of the new log at the end of a compaction */
        FAIL_CREATE,     /* creating any file (disk full) */
} fail_mode;

static int injected_failure(const char *path, int flags) {
        if (fail_mode == FAIL_LOG_REOPEN && streq(path, CKPT_LOG) && !(flags & O_CREAT))
                return EMFILE;
        if (fail_mode == FAIL_CREATE && (flags & O_CREAT))
                return ENOSPC;
        return 0;
}

int __wrap_openat64(int dirfd, const char *path, int flags, ...) {
        mode_t mode = 0;
        va_list ap;
        int e;

        va_start(ap, flags);
        if (flags & (O_CREAT | __O_TMPFILE))
                mode = va_arg(ap, mode_t);
        va_end(ap);
        e = injected_failure(path, flags);
        if (e != 0) {
                errno = e;
                return -1;
        }
        return __real_openat64(dirfd, path, flags, mode);
}

int __wrap_openat(int dirfd, const char *path, int flags, ...) {
        mode_t mode = 0;
        va_list ap;
        int e;

        va_start(ap, flags);
        if (flags & (O_CREAT | __O_TMPFILE))
                mode = va_arg(ap, mode_t);
        va_end(ap);
        e = injected_failure(path, flags);
        if (e != 0) {
                errno = e;
                return -1;
        }
        return __real_openat(dirfd, path, flags, mode);
}

START_TEST(test_compact_reopen_failure_loses_commits) {
        /* Regression: checkpoint_compact() used to rename the new, empty
         * log into place and only then open it. When that open failed it
         * kept appending to the old, unlinked log and acknowledged commits
         * that a restart then lost (here: after a disk-full compaction).
         * It now keeps the descriptor from the log's creation. */
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        struct stat st;
        Checkpoint c;
        Model m = {};

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        c.compact_threshold = 200;
        commit_one(&c, &m, 0, 10, 1);
        commit_one(&c, &m, 60, 10, 0);
        fail_mode = FAIL_LOG_REOPEN;
        commit_one(&c, &m, 128, 64, 5); /* compacts; the reopen fails */
        fail_mode = FAIL_NONE;
        ck_assert_int_eq(fstat(c.log_fd, &st), 0); /* st_nlink == 0: unlinked */

        fail_mode = FAIL_CREATE;
        commit_one(&c, &m, 500, 1, 1); /* acknowledged; its compaction fails */
        fail_mode = FAIL_NONE;
        checkpoint_close(&c);           /* a crash: nothing more is written */

        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        ck_assert_msg(c.seq == m.seq, "seq %llu after restart, %llu acknowledged (old log had %llu links)",
                      (unsigned long long) c.seq, (unsigned long long) m.seq, (unsigned long long) st.st_nlink);
        model_assert(&m, &c);
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

#endif

/* Regressions: log_replay() (daemon/checkpoint.c) once skipped stale
 * records anywhere in the log and accepted records without ranges. */

START_TEST(test_replay_stale_record_stops) {
        /* "stops at the first torn, corrupt or out-of-sequence record": a
         * record whose seq is not above the one before it is out of
         * sequence, but it is skipped (as if it were covered by a snapshot,
         * though there is none) and replay goes on after it. */
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};
        IpcRange r = { 200, 10 };
        CkptRecord rec;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        five_commits(&c, &m);
        checkpoint_close(&c);

        /* A stale copy of record 1, then a well-formed record 6. */
        rec = (CkptRecord){ .magic = CKPT_RECORD_MAGIC, .n_ranges = 1, .seq = 1, .results_len = 1000, .done_total = 10 };
        append_raw_record(dirfd, &rec, (IpcRange[]){ { 0, 10 } });
        rec = (CkptRecord){ .magic = CKPT_RECORD_MAGIC,
                            .n_ranges = 1,
                            .seq = 6,
                            .results_len = m.results_len,
                            .done_total = m.done + 10,
                            .failed_total = m.failed };
        append_raw_record(dirfd, &rec, &r);

        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.torn_bytes, 2 * record_size(1));
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

START_TEST(test_replay_zero_range_record) {
        /* checkpoint_commit() refuses a commit without ranges, but replay
         * accepts such a record and advances seq and results_len by it. */
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Checkpoint c;
        Model m = {};
        CkptRecord rec;

        ck_assert_int_eq(checkpoint_create(dirfd, N_ITEMS), 0);
        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        five_commits(&c, &m);
        checkpoint_close(&c);

        rec = (CkptRecord){ .magic = CKPT_RECORD_MAGIC,
                            .n_ranges = 0,
                            .seq = 6,
                            .results_len = m.results_len + 5,
                            .done_total = m.done,
                            .failed_total = m.failed };
        append_raw_record(dirfd, &rec, NULL);

        ck_assert_int_eq(checkpoint_open(&c, dirfd, N_ITEMS), 0);
        model_assert(&m, &c);
        ck_assert_uint_eq(c.torn_bytes, record_size(0));
        checkpoint_close(&c);
        close(dirfd);
}
END_TEST

static Suite *checkpoint_suite(void) {
        Suite *s = suite_create("checkpoint");
        TCase *tc = tcase_create("core");

        /* The corruption loops fsync a few hundred small files. */
        tcase_set_timeout(tc, 50);
        tcase_add_test(tc, test_empty);
        tcase_add_test(tc, test_zero_items);
        tcase_add_test(tc, test_missing_or_garbage_log);
        tcase_add_test(tc, test_first_commit_creates_the_log);
        tcase_add_test(tc, test_empty_log_of_a_new_job);
        tcase_add_test(tc, test_commits_persist);
        tcase_add_test(tc, test_invalid_commits);
        tcase_add_test(tc, test_torn_last_record);
        tcase_add_test(tc, test_corrupt_last_record_ranges);
        tcase_add_test(tc, test_corrupt_last_record_header);
        tcase_add_test(tc, test_corrupt_middle_record);
        tcase_add_test(tc, test_replay_checks_records);
        tcase_add_test(tc, test_replay_too_many_ranges);
        tcase_add_test(tc, test_compaction);
        tcase_add_test(tc, test_peek_reads_without_cutting);
        tcase_add_test(tc, test_snapshot_ahead_of_log);
        tcase_add_test(tc, test_corrupt_snapshot);
        tcase_add_test(tc, test_wrong_n_items);
        tcase_add_test(tc, test_bitmap_memfd);
        tcase_add_test(tc, test_chunks);
        suite_add_tcase(s, tc);
        {
                TCase *tc_bugs = tcase_create("regressions");

                tcase_add_test(tc_bugs, test_replay_stale_record_stops);
                tcase_add_test(tc_bugs, test_replay_zero_range_record);
#ifdef MPLOCK_TEST_FAULTS
                tcase_add_test(tc_bugs, test_compact_reopen_failure_loses_commits);
#endif
                suite_add_tcase(s, tc_bugs);
        }
        return s;
}

int main(void) {
        int r = test_run_suite(checkpoint_suite());

        /* Again with 64-item chunks of the committed set: every test then
         * crosses empty, full and partial chunks with its 1,000 items. */
        checkpoint_chunk_shift = BITSET_SHIFT_MIN;
        if (test_run_suite(checkpoint_suite()) != EXIT_SUCCESS)
                r = EXIT_FAILURE;
        return r;
}
