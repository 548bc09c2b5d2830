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

#include "bitset.h"
#include "commit.h"
#include "ipc.h"
#include "mplock/module.h"
#include "results.h"
#include "run-error.h"
#include "test-util.h"

/* The commit pipeline on a real results file, with the IPC send and the
 * module's save callback captured. This binary links with
 * -Wl,--wrap=fdatasync: the wrapper counts the syncs of the results file
 * (and fails one on cue), so that each captured commit can check that the
 * file was synced before it was sent. */

#define N_ITEMS 100000u
#define BEFORE 100u       /* items committed by earlier runners */
#define BEFORE_FAILED 3u

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

typedef struct Sent {
        IpcCommit c;
        IpcRange *ranges;
} Sent;

/* What the callbacks saw. Each test runs in its own forked process. */
static struct {
        int fd;                /* the results file */
        unsigned syncs;        /* fdatasync() calls on it */
        unsigned syncs_at_send; /* ... when the last commit was sent */
        off_t synced_size;     /* its size at the last one */
        int sync_error;        /* the next fdatasync() fails with it */
        Sent *sent;
        size_t n_sent;
        int send_error;
        size_t *batches; /* sizes of the save() calls */
        size_t n_batches;
        size_t last_at; /* 1-based batch that was the last, 0: none */
        uint64_t *saved; /* indices given to save(), in order */
        size_t n_saved;
        int save_error;
} T;

int __wrap_fdatasync(int fd) {
        struct stat st;

        if (fd != T.fd)
                return __real_fdatasync(fd);
        if (T.sync_error) {
                errno = T.sync_error;
                T.sync_error = 0;
                return -1;
        }
        T.syncs++;
        ck_assert_int_eq(fstat(fd, &st), 0);
        T.synced_size = st.st_size;
        return __real_fdatasync(fd);
}

/* The file up to c->results_len holds exactly the items committed so far. */
static void check_committed_prefix(const IpcCommit *c) {
        ResultsFile f;

        ck_assert_int_eq(results_file_open(&f, T.fd, c->results_len, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_results, c->done_total - BEFORE);
        results_file_close(&f);
}

static int capture_send(void *userdata, const IpcCommit *c, const IpcRange *ranges) {
        Sent *s;

        ck_assert_ptr_eq(userdata, &T);
        /* fdatasync first, of at least what is committed. */
        ck_assert_msg(T.syncs > T.syncs_at_send, "commit sent without a sync of the results file");
        ck_assert_int_ge(T.synced_size, (off_t) c->results_len);
        T.syncs_at_send = T.syncs;
        if (T.send_error)
                return T.send_error;
        ck_assert_uint_ge(c->n_ranges, 1);
        ck_assert_uint_le(c->n_ranges, IPC_COMMIT_RANGES_MAX);
        for (uint32_t k = 1; k < c->n_ranges; k++)
                if (ranges[k - 1].first + ranges[k - 1].count >= ranges[k].first)
                        ck_abort_msg("ranges %u and %u not sorted or not coalesced", k - 1, k);
        check_committed_prefix(c);

        T.sent = realloc(T.sent, (T.n_sent + 1) * sizeof(*T.sent));
        ck_assert_ptr_nonnull(T.sent);
        s = &T.sent[T.n_sent++];
        s->c = *c;
        s->ranges = malloc(c->n_ranges * sizeof(IpcRange));
        ck_assert_ptr_nonnull(s->ranges);
        memcpy(s->ranges, ranges, c->n_ranges * sizeof(IpcRange));
        return 0;
}

static int capture_save(void *userdata, const mplock_entry *entries, size_t n, bool last) {
        char want[64];

        ck_assert_ptr_eq(userdata, &T);
        if (T.save_error)
                return T.save_error;
        T.last_at = last ? T.n_batches + 1 : T.last_at;
        T.batches = realloc(T.batches, (T.n_batches + 1) * sizeof(*T.batches));
        T.saved = realloc(T.saved, (T.n_saved + n) * sizeof(*T.saved));
        ck_assert_ptr_nonnull(T.batches);
        ck_assert_ptr_nonnull(T.saved);
        T.batches[T.n_batches++] = n;
        for (size_t k = 0; k < n; k++) {
                int len = snprintf(want, sizeof(want), "result-%llu", (unsigned long long) entries[k].index);
                if (entries[k].result_len != (size_t) len || memcmp(entries[k].result, want, (size_t) len) != 0 ||
                    entries[k].status != 0)
                        ck_abort_msg("entry %llu: wrong result", (unsigned long long) entries[k].index);
                T.saved[T.n_saved++] = entries[k].index;
        }
        return 0;
}

typedef struct Fixture {
        char dir[PATH_MAX];
        int dirfd;
        Bitset done;
        Commit c;
        CommitConfig cfg;
} Fixture;

/* A fresh results file (header only) and the configuration the tests start
 * from: no save callback, a commit window larger than any test. */
static void setup(Fixture *x) {
        ResultsFileHeader h;

        memset(&T, 0, sizeof(T));
        x->dirfd = test_tmpdir(x->dir, sizeof(x->dir));
        T.fd = openat(x->dirfd, "results", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(T.fd, 0);
        results_file_header_init(&h, 1, 0);
        ck_assert_int_eq(pwrite_full(T.fd, &h, sizeof(h), 0), 0);
        ck_assert_int_eq(bitset_init(&x->done, N_ITEMS), 0);
        ck_assert_int_eq(bitset_set_range(&x->done, N_ITEMS - BEFORE, BEFORE), 0);
        x->cfg = (CommitConfig){
                .results_fd = T.fd,
                /* A fresh file: its directory is synced with the first commit. */
                .dir_fd = x->dirfd,
                .results_len = sizeof(h),
                .done = &x->done,
                .committed = BEFORE,
                .committed_failed = BEFORE_FAILED,
                .commit_items = 1000000,
                .save_batch = 15,
                .send = capture_send,
                .send_userdata = &T,
        };
}

static void start(Fixture *x) {
        ck_assert_int_eq(commit_init(&x->c, &x->cfg), 0);
}

static void with_save(Fixture *x) {
        x->cfg.save = capture_save;
        x->cfg.save_userdata = &T;
}

/* Items first..first+count-1; with fail_mod, every index divisible by it
 * fails. Returns how many failed. */
static uint32_t make_block(ResultsBlock *b, uint64_t first, uint32_t count, unsigned fail_mod) {
        uint32_t failed = 0;

        results_block_begin(b, first);
        for (uint64_t i = first; i < first + count; i++) {
                char item[32], result[32];
                bool bad = fail_mod && i % fail_mod == 0;
                int il = snprintf(item, sizeof(item), "item-%llu", (unsigned long long) i);
                int rl = snprintf(result, sizeof(result), "%s-%llu", bad ? "bad" : "result", (unsigned long long) i);
                ck_assert_int_eq(results_block_add(b, item, (size_t) il, result, (size_t) rl, bad ? -5 : 0, NULL), 0);
                failed += bad;
        }
        results_block_finish(b);
        return failed;
}

static int append_full(Fixture *x, uint64_t first, uint32_t count, unsigned fail_mod, bool saved, RunError *e) {
        ResultsBlock b = {};
        uint32_t failed = make_block(&b, first, count, fail_mod);
        int r = commit_append(&x->c, b.buf, b.len, failed, saved, e);

        results_block_free(&b);
        return r;
}

static void append(Fixture *x, uint64_t first, uint32_t count) {
        RunError e;

        if (append_full(x, first, count, 0, false, &e) < 0)
                ck_abort_msg("append %llu+%u: %s", (unsigned long long) first, count, e.msg);
}

/* As a worker's block arrives: append, then save and maybe commit. */
static void record(Fixture *x, uint64_t first, uint32_t count) {
        RunError e;

        append(x, first, count);
        if (commit_recorded(&x->c, &e) < 0)
                ck_abort_msg("commit_recorded: %s", e.msg);
}

static void expect_ranges(size_t sent, const IpcRange *want, uint32_t n) {
        const Sent *s;

        ck_assert_uint_gt(T.n_sent, sent);
        s = &T.sent[sent];
        ck_assert_uint_eq(s->c.n_ranges, n);
        for (uint32_t k = 0; k < n; k++)
                ck_assert_msg(s->ranges[k].first == want[k].first && s->ranges[k].count == want[k].count,
                              "commit %zu range %u: %llu+%llu, expected %llu+%llu", sent, k,
                              (unsigned long long) s->ranges[k].first, (unsigned long long) s->ranges[k].count,
                              (unsigned long long) want[k].first, (unsigned long long) want[k].count);
}

static void teardown(Fixture *x) {
        commit_free(&x->c);
        bitset_free(&x->done);
        close(T.fd);
        close(x->dirfd);
}

START_TEST(test_ranges_sorted_and_coalesced) {
        RunError e;
        Fixture x;
        ResultsFile f;
        struct stat st;

        setup(&x);
        start(&x);
        ck_assert_int_eq(commit_flush(&x.c, &e), 0); /* nothing yet: nothing sent */
        ck_assert_uint_eq(T.n_sent, 0);

        /* Completion order is not index order. */
        ck_assert_int_eq(append_full(&x, 20, 10, 0, false, &e), 0);
        ck_assert_int_eq(append_full(&x, 0, 10, 4, false, &e), 0); /* 0, 4, 8 fail */
        ck_assert_int_eq(append_full(&x, 10, 10, 0, false, &e), 0);
        ck_assert_int_eq(append_full(&x, 40, 5, 0, false, &e), 0);
        ck_assert_int_eq(append_full(&x, 50, 1, 0, false, &e), 0);
        ck_assert_uint_eq(x.c.recorded, BEFORE + 36);
        /* Failures counted as they are recorded (the runner's halt). */
        ck_assert_uint_eq(x.c.recorded_failed, BEFORE_FAILED + 3);
        ck_assert_uint_eq(x.c.uncommitted, 36);
        ck_assert_int_eq(x.c.dir_fd, x.dirfd);
        ck_assert_int_eq(commit_flush(&x.c, &e), 1);
        ck_assert_int_eq(x.c.dir_fd, -1); /* synced once, with the first commit */
        expect_ranges(0, (const IpcRange[]){ { 0, 30 }, { 40, 5 }, { 50, 1 } }, 3);
        ck_assert_int_eq(fstat(T.fd, &st), 0);
        ck_assert_uint_eq(T.sent[0].c.results_len, (uint64_t) st.st_size);
        ck_assert_uint_eq(T.sent[0].c.done_total, BEFORE + 36);
        ck_assert_uint_eq(T.sent[0].c.failed_total, BEFORE_FAILED + 3);
        ck_assert_uint_eq(x.c.uncommitted, 0);
        ck_assert_uint_eq(x.c.n_pending, 0);

        /* Totals are the job's, cumulative. */
        ck_assert_int_eq(append_full(&x, 30, 10, 5, false, &e), 0); /* 30, 35 fail */
        ck_assert_int_eq(commit_all(&x.c, &e), 0);
        ck_assert_uint_eq(T.n_sent, 2);
        expect_ranges(1, (const IpcRange[]){ { 30, 10 } }, 1);
        ck_assert_uint_eq(T.sent[1].c.done_total, BEFORE + 46);
        ck_assert_uint_eq(T.sent[1].c.failed_total, BEFORE_FAILED + 5);
        ck_assert_uint_eq(x.c.committed, BEFORE + 46);
        ck_assert_uint_eq(x.c.committed_failed, BEFORE_FAILED + 5);
        ck_assert_uint_gt(T.sent[1].c.results_len, T.sent[0].c.results_len);

        /* Every record is in the file once; done has every item. */
        ck_assert_int_eq(results_file_open(&f, T.fd, UINT64_MAX, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_results, 46);
        results_file_close(&f);
        ck_assert_uint_eq(x.done.count, BEFORE + 46);
        ck_assert(bitset_test(&x.done, 39) && !bitset_test(&x.done, 45));
        teardown(&x);
}
END_TEST

START_TEST(test_commit_window) {
        Fixture x;

        setup(&x);
        x.cfg.commit_items = 30;
        start(&x);
        record(&x, 0, 10);
        record(&x, 10, 10);
        ck_assert_uint_eq(T.n_sent, 0);
        record(&x, 20, 10); /* 30 waiting: the window is full */
        ck_assert_uint_eq(T.n_sent, 1);
        expect_ranges(0, (const IpcRange[]){ { 0, 30 } }, 1);
        record(&x, 30, 10);
        ck_assert_uint_eq(T.n_sent, 1);
        teardown(&x);
}
END_TEST

START_TEST(test_save_batches) {
        RunError e;
        Fixture x;

        setup(&x);
        with_save(&x);
        start(&x);
        record(&x, 0, 10);
        ck_assert_uint_eq(T.n_batches, 0);
        record(&x, 10, 10);
        ck_assert_uint_eq(T.n_batches, 1);
        record(&x, 20, 10); /* 15 unsaved: exactly a batch */
        ck_assert_uint_eq(T.n_batches, 2);
        ck_assert_uint_eq(x.c.unsaved, 0);
        record(&x, 30, 10);
        ck_assert_uint_eq(T.n_batches, 2);
        ck_assert_uint_eq(x.c.unsaved, 10);
        /* A stop: what is left, as one smaller batch, not the last. */
        ck_assert_int_eq(commit_save(&x.c, true, false, &e), 0);
        ck_assert_uint_eq(T.last_at, 0);
        ck_assert_uint_eq(T.n_batches, 3);
        ck_assert_uint_eq(T.batches[0], 15);
        ck_assert_uint_eq(T.batches[1], 15);
        ck_assert_uint_eq(T.batches[2], 10);
        ck_assert_uint_eq(T.n_saved, 40);
        for (size_t k = 0; k < 40; k++)
                ck_assert_uint_eq(T.saved[k], k);
        ck_assert_uint_eq(x.c.unsaved, 0);
        ck_assert_int_eq(commit_save(&x.c, true, false, &e), 0); /* nothing more */
        ck_assert_uint_eq(T.n_batches, 3);
        /* The job's end with nothing left: an empty last batch. */
        ck_assert_int_eq(commit_save(&x.c, true, true, &e), 0);
        ck_assert_uint_eq(T.n_batches, 4);
        ck_assert_uint_eq(T.batches[3], 0);
        ck_assert_uint_eq(T.last_at, 4);
        /* The end with items left: they are the last batch, nothing after. */
        record(&x, 40, 20);
        ck_assert_uint_eq(T.n_batches, 5); /* 15 of them */
        ck_assert_int_eq(commit_save(&x.c, true, true, &e), 0);
        ck_assert_uint_eq(T.n_batches, 6);
        ck_assert_uint_eq(T.batches[5], 5);
        ck_assert_uint_eq(T.last_at, 6);
        teardown(&x);
}
END_TEST

START_TEST(test_only_saved_blocks_commit) {
        RunError e;
        Fixture x;
        off_t first_end;
        struct stat st;

        setup(&x);
        with_save(&x);
        start(&x);
        record(&x, 0, 10);
        ck_assert_int_eq(fstat(T.fd, &st), 0);
        first_end = st.st_size;
        record(&x, 10, 10); /* saves 0..14: the second block is half saved */
        ck_assert_uint_eq(T.n_batches, 1);

        ck_assert_int_eq(commit_flush(&x.c, &e), 1);
        expect_ranges(0, (const IpcRange[]){ { 0, 10 } }, 1);
        ck_assert_uint_eq(T.sent[0].c.results_len, (uint64_t) first_end);
        ck_assert_uint_eq(T.sent[0].c.done_total, BEFORE + 10);
        /* The rest waits for save, and commit_all does not spin on it. */
        ck_assert_int_eq(commit_flush(&x.c, &e), 0);
        ck_assert_int_eq(commit_all(&x.c, &e), 0);
        ck_assert_uint_eq(T.n_sent, 1);
        ck_assert_uint_eq(x.c.n_pending, 1);

        ck_assert_int_eq(commit_save(&x.c, true, false, &e), 0);
        ck_assert_int_eq(commit_all(&x.c, &e), 0);
        ck_assert_uint_eq(T.n_sent, 2);
        expect_ranges(1, (const IpcRange[]){ { 10, 10 } }, 1);
        ck_assert_uint_eq(x.c.committed, BEFORE + 20);
        teardown(&x);
}
END_TEST

START_TEST(test_no_save_commits_what_waited_and_saves_nothing) {
        RunError e;
        Fixture x;

        setup(&x);
        with_save(&x);
        start(&x);
        record(&x, 0, 10); /* less than a batch: waits for save */
        ck_assert_int_eq(commit_flush(&x.c, &e), 0);
        commit_no_save(&x.c); /* save_init said MPLOCK_SAVE_NOTHING */
        ck_assert_uint_eq(x.c.unsaved, 0);
        ck_assert_int_eq(commit_flush(&x.c, &e), 1);
        expect_ranges(0, (const IpcRange[]){ { 0, 10 } }, 1);
        record(&x, 10, 40);
        ck_assert_int_eq(commit_save(&x.c, true, true, &e), 0);
        ck_assert_int_eq(commit_all(&x.c, &e), 0);
        ck_assert_uint_eq(T.n_batches, 0);
        ck_assert_uint_eq(x.c.committed, BEFORE + 50);
        ck_assert_uint_eq(x.c.n_pending, 0);
        teardown(&x);
}
END_TEST

START_TEST(test_carried_blocks_skip_save) {
        RunError e;
        Fixture x;

        setup(&x);
        with_save(&x);
        start(&x);
        /* A retry's carried-over records were saved by an earlier run. */
        ck_assert_int_eq(append_full(&x, 0, 10, 0, true, &e), 0);
        append(&x, 10, 10);
        ck_assert_int_eq(append_full(&x, 20, 5, 0, true, &e), 0);
        ck_assert_uint_eq(x.c.unsaved, 10);

        /* In file order: the unsaved block holds back the one after it. */
        ck_assert_int_eq(commit_flush(&x.c, &e), 1);
        expect_ranges(0, (const IpcRange[]){ { 0, 10 } }, 1);
        ck_assert_int_eq(commit_save(&x.c, true, false, &e), 0);
        ck_assert_uint_eq(T.n_batches, 1);
        ck_assert_uint_eq(T.batches[0], 10);
        ck_assert_uint_eq(T.saved[0], 10);
        ck_assert_int_eq(commit_flush(&x.c, &e), 1);
        expect_ranges(1, (const IpcRange[]){ { 10, 15 } }, 1);
        ck_assert_uint_eq(x.c.n_pending, 0);
        teardown(&x);
}
END_TEST

START_TEST(test_ranges_max_split) {
        RunError e;
        Fixture x;
        const uint32_t n = IPC_COMMIT_RANGES_MAX + 5;

        /* Blocks that do not touch: one range each. The commit that the
         * full window of blocks forces carries exactly the maximum. */
        setup(&x);
        start(&x);
        for (uint32_t i = 0; i < IPC_COMMIT_RANGES_MAX - 1; i++)
                record(&x, 2 * (uint64_t) i, 1);
        ck_assert_uint_eq(T.n_sent, 0);
        for (uint32_t i = IPC_COMMIT_RANGES_MAX - 1; i < n; i++) {
                record(&x, 2 * (uint64_t) i, 1);
                ck_assert_uint_eq(T.n_sent, 1);
        }
        ck_assert_uint_eq(T.sent[0].c.n_ranges, IPC_COMMIT_RANGES_MAX);
        ck_assert_uint_eq(T.sent[0].ranges[IPC_COMMIT_RANGES_MAX - 1].first, 2 * (IPC_COMMIT_RANGES_MAX - 1));
        ck_assert_uint_eq(T.sent[0].c.done_total, BEFORE + IPC_COMMIT_RANGES_MAX);
        ck_assert_int_eq(commit_all(&x.c, &e), 0);
        ck_assert_uint_eq(T.n_sent, 2);
        ck_assert_uint_eq(T.sent[1].c.n_ranges, 5);
        ck_assert_uint_eq(T.sent[1].c.done_total, BEFORE + n);
        teardown(&x);

        /* Adjacent blocks: still at most the maximum of blocks per commit,
         * each commit one range. */
        setup(&x);
        start(&x);
        for (uint32_t i = 0; i < n; i++)
                append(&x, i, 1);
        ck_assert_int_eq(commit_all(&x.c, &e), 0);
        ck_assert_uint_eq(T.n_sent, 2);
        expect_ranges(0, (const IpcRange[]){ { 0, IPC_COMMIT_RANGES_MAX } }, 1);
        expect_ranges(1, (const IpcRange[]){ { IPC_COMMIT_RANGES_MAX, 5 } }, 1);
        teardown(&x);
}
END_TEST

START_TEST(test_sync_failure_sends_nothing) {
        RunError e;
        Fixture x;

        setup(&x);
        start(&x);
        append(&x, 0, 10);
        T.sync_error = EIO;
        ck_assert_int_eq(commit_flush(&x.c, &e), -EIO);
        ck_assert_uint_eq(e.kind, IPC_FAIL_STORAGE);
        ck_assert_str_eq(e.msg, "cannot sync the results file: Input/output error");
        ck_assert_uint_eq(T.n_sent, 0);
        ck_assert_uint_eq(x.c.n_pending, 1);
        ck_assert_uint_eq(x.c.committed, BEFORE);
        ck_assert_int_eq(commit_flush(&x.c, &e), 1);
        expect_ranges(0, (const IpcRange[]){ { 0, 10 } }, 1);
        teardown(&x);
}
END_TEST

static void save_fails_with(int err, uint32_t kind, const char *msg) {
        RunError e;
        Fixture x;

        setup(&x);
        with_save(&x);
        start(&x);
        record(&x, 0, 10);
        append(&x, 10, 10);
        T.save_error = err;
        ck_assert_int_lt(commit_recorded(&x.c, &e), 0);
        ck_assert_uint_eq(e.kind, kind);
        ck_assert_str_eq(e.msg, msg);
        /* Nothing unsaved is committed, not even the block save did not
         * get to. */
        ck_assert_int_eq(commit_flush(&x.c, &e), 0);
        ck_assert_int_eq(commit_all(&x.c, &e), 0);
        ck_assert_uint_eq(T.n_sent, 0);
        ck_assert_uint_eq(x.c.committed, BEFORE);
        ck_assert_uint_eq(x.c.unsaved, 20);
        teardown(&x);
}

START_TEST(test_save_failure_commits_nothing) {
        save_fails_with(-ENOSPC, IPC_FAIL_STORAGE, "save callback failed with -28: No space left on device");
        save_fails_with(-EINVAL, IPC_FAIL_PERMANENT, "save callback failed with -22: Invalid argument");
        save_fails_with(-5000, IPC_FAIL_PERMANENT, "save callback failed with -5000");
}
END_TEST

START_TEST(test_send_failure_is_gone) {
        RunError e;
        Fixture x;

        setup(&x);
        start(&x);
        append(&x, 0, 10);
        T.send_error = -EPIPE;
        ck_assert_int_eq(commit_flush(&x.c, &e), -EPIPE);
        ck_assert_uint_eq(e.kind, RUN_ERROR_GONE);
        ck_assert_uint_eq(x.c.committed, BEFORE);
        teardown(&x);
}
END_TEST

START_TEST(test_append_errors) {
        RunError e;
        Fixture x;
        struct stat st;
        int fd;

        setup(&x);
        start(&x);
        append(&x, 0, 10);
        ck_assert_int_eq(fstat(T.fd, &st), 0);
        ck_assert_int_eq(append_full(&x, 5, 10, 0, false, &e), -EEXIST);
        ck_assert_uint_eq(e.kind, IPC_FAIL_PERMANENT);
        ck_assert_str_eq(e.msg, "items 5..14 recorded twice (internal error)");
        ck_assert_int_eq(append_full(&x, N_ITEMS - 1, 1, 0, false, &e), -EEXIST); /* committed before */
        ck_assert_int_eq((int) test_file_size(x.dirfd, "results"), (int) st.st_size);
        ck_assert_uint_eq(x.c.n_pending, 1);
        ck_assert_uint_eq(x.c.recorded, BEFORE + 10);

        /* A write that fails is described with its kind. */
        fd = openat(x.dirfd, "results", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        x.c.results_fd = fd;
        ck_assert_int_eq(append_full(&x, 20, 10, 0, false, &e), -EBADF);
        ck_assert_uint_eq(e.kind, IPC_FAIL_TEMPORARY);
        ck_assert_str_eq(e.msg, "cannot write the results file: Bad file descriptor");
        ck_assert(!bitset_test(&x.done, 20));
        close(fd);
        teardown(&x);
}
END_TEST

/* Records one by one, as a carry-over, a reuse or a block with retries
 * append them: a run ends at a gap, at a full block and at the end; each
 * run is one block with its own failures, and nothing is lost or doubled. */
START_TEST(test_commit_run) {
        static const uint64_t want_first[] = { 0, 3, 7 };
        char big[RESULTS_BLOCK_TARGET / 2];
        ResultsFile f;
        CommitRun run;
        RunError e;
        Fixture x;
        uint64_t blocks_before;

        setup(&x);
        start(&x);
        commit_run_init(&run, &x.c, true);
        ck_assert_int_eq(commit_run_end(&run, &e), 0); /* nothing open: nothing appended */
        ck_assert_uint_eq(x.c.n_pending, 0);
        for (uint64_t i = 0; i < 10; i++) {
                ResultsItem it = { .index = i, .item = "it", .item_len = 2, .result = i % 3 ? "ok" : "bad",
                                   .result_len = i % 3 ? 2 : 3, .status = i % 3 ? 0 : -5 };
                if (i == 2 || i == 6) /* not these: a gap each */
                        ck_assert_int_eq(commit_run_end(&run, &e), 0);
                else
                        ck_assert_int_eq(commit_run_add(&run, i, &it, &e), 0);
        }
        ck_assert_int_eq(commit_run_end(&run, &e), 0);
        ck_assert_uint_eq(x.c.n_pending, 3);
        for (size_t k = 0; k < 3; k++)
                ck_assert_uint_eq(x.c.pending[(x.c.pending_head + k) % x.c.cap_pending].first, want_first[k]);
        /* 0, 3 and 9 failed; 6 was never added. */
        ck_assert_uint_eq(x.c.recorded, BEFORE + 8);
        ck_assert_uint_eq(x.c.recorded_failed, BEFORE_FAILED + 3);
        ck_assert_uint_eq(x.c.unsaved, 0); /* saved before: nothing for save */

        /* A run past the block target is cut into blocks, consecutive still. */
        memset(big, 'x', sizeof(big));
        blocks_before = x.c.n_pending;
        for (uint64_t i = 20; i < 26; i++) {
                ResultsItem it = { .index = i, .item = "b", .item_len = 1, .result = big, .result_len = sizeof(big) };
                ck_assert_int_eq(commit_run_add(&run, i, &it, &e), 0);
        }
        ck_assert_int_eq(commit_run_end(&run, &e), 0);
        ck_assert_uint_eq(x.c.n_pending - blocks_before, 3);
        ck_assert_uint_eq(x.c.recorded, BEFORE + 14);
        commit_run_free(&run);

        ck_assert_int_eq(commit_all(&x.c, &e), 0);
        ck_assert_int_eq(results_file_open(&f, T.fd, UINT64_MAX, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_blocks, 6);
        results_file_close(&f);
        teardown(&x);
}
END_TEST

static Suite *commit_suite(void) {
        Suite *s = suite_create("commit");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_ranges_sorted_and_coalesced);
        tcase_add_test(tc, test_commit_window);
        tcase_add_test(tc, test_save_batches);
        tcase_add_test(tc, test_only_saved_blocks_commit);
        tcase_add_test(tc, test_no_save_commits_what_waited_and_saves_nothing);
        tcase_add_test(tc, test_carried_blocks_skip_save);
        tcase_add_test(tc, test_ranges_max_split);
        tcase_add_test(tc, test_sync_failure_sends_nothing);
        tcase_add_test(tc, test_save_failure_commits_nothing);
        tcase_add_test(tc, test_send_failure_is_gone);
        tcase_add_test(tc, test_append_errors);
        tcase_add_test(tc, test_commit_run);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(commit_suite());
}
