/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fileio.h"
#include "jobs-journal.h"
#include "jobs.h"
#include "macro.h"
#include "store.h"
#include "syncer.h"
#include "test-util.h"

/* The jobs' use of the journal at start: a job acknowledged through its
 * record whose files a crash lost (here: never written) is made whole and
 * published before the jobs are loaded, and the journal is reset; a
 * journal that exists but cannot be read stops the start. */

static JobSpec spec_of(uint64_t id) {
        return (JobSpec){ .id = id, .name = strdup("n"), .module = strdup("/m.so"), .input = strdup("(inline)"),
                          .output = strdup("/o"), .shared_json = strdup("{}"), .workers = 2, .batch_size = 1,
                          .save_batch = 10, .max_attempts = 3, .n_items = 2, .input_bytes = 4, .uid = 7 };
}

static void open_state(const char *path, Jobs *jobs) {
        char state[PATH_MAX + 16];

        (void) snprintf(state, sizeof(state), "%s/state", path);
        *jobs = (Jobs){ .journal = { .fd = -1 } };
        ck_assert_int_eq(store_open(state, &jobs->state_fd, &jobs->jobs_fd, &jobs->new_fd), 0);
}

static void close_state(Jobs *jobs) {
        jobs_journal_close(jobs);
        close(jobs->state_fd);
        close(jobs->jobs_fd);
        close(jobs->new_fd);
}

/* A record as a submission leaves it, and nothing else of the job. */
static void journal_job(Jobs *jobs, uint64_t id, const char *input, size_t input_len) {
        _cleanup_free_ char *text = NULL;
        JobSpec spec = spec_of(id);
        size_t len;
        int fd;

        ck_assert_int_eq(store_spec_text(&spec, &text, &len), 0);
        fd = memfd_create("input", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pwrite_full(fd, input, input_len, 0), 0);
        ck_assert_int_eq(jobs_journal_submit(jobs, id, text, len, fd, input_len), 0);
        close(fd);
        job_spec_done(&spec);
}

START_TEST(test_a_journaled_job_is_restored_at_start) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), k;
        static const char input[] = "a\0bb\0";
        _cleanup_free_ char *got = NULL;
        JobSpec loaded = {};
        Jobs jobs;
        size_t len;

        close(dirfd);
        open_state(path, &jobs);
        ck_assert_int_eq(jobs_journal_open(&jobs), 0);
        ck_assert(jobs.journal_ok);
        journal_job(&jobs, 5, input, sizeof(input) - 1);
        /* The crash: job 5 has nothing but its record. */
        close_state(&jobs);
        open_state(path, &jobs);
        ck_assert_int_eq(store_open_job(jobs.jobs_fd, 5), -ENOENT);
        ck_assert_int_eq(jobs_journal_open(&jobs), 0);
        k = store_open_job(jobs.jobs_fd, 5);
        ck_assert_int_ge(k, 0);
        ck_assert_int_eq(store_load_spec(k, 5, &loaded), 0);
        ck_assert_uint_eq(loaded.n_items, 2);
        job_spec_done(&loaded);
        ck_assert_int_eq(read_file_at(k, "input", 64, &got, &len), 0);
        ck_assert_uint_eq(len, sizeof(input) - 1);
        ck_assert_mem_eq(got, input, len);
        ck_assert(test_file_exists(k, CKPT_LOG));
        close(k);
        /* Reset once restored: a Remove now is not undone by a replay. */
        ck_assert(journal_is_empty(&jobs.journal));
        ck_assert_int_eq(store_remove_job(jobs.jobs_fd, 5), 0);
        close_state(&jobs);
        open_state(path, &jobs);
        ck_assert_int_eq(jobs_journal_open(&jobs), 0);
        ck_assert_uint_eq(jobs.journal.replayed, 0);
        ck_assert_int_eq(store_open_job(jobs.jobs_fd, 5), -ENOENT);
        close_state(&jobs);
}
END_TEST

START_TEST(test_a_journal_that_cannot_be_read_stops_the_start) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        Jobs jobs;

        close(dirfd);
        open_state(path, &jobs);
        ck_assert_int_eq(mkdirat(jobs.state_fd, JOURNAL_NAME, 0700), 0);
        ck_assert_int_lt(jobs_journal_open(&jobs), 0);
        ck_assert(!jobs.journal_ok);
        close_state(&jobs);
}
END_TEST

START_TEST(test_a_record_of_a_job_too_large_is_refused) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        Jobs jobs;

        close(dirfd);
        open_state(path, &jobs);
        ck_assert_int_eq(jobs_journal_open(&jobs), 0);
        fd = memfd_create("input", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, JOURNAL_RECORD_MAX), 0);
        /* The submission then syncs the job's files instead. */
        ck_assert_int_eq(jobs_journal_submit(&jobs, 9, "{}", 2, fd, JOURNAL_RECORD_MAX), -E2BIG);
        ck_assert(journal_is_empty(&jobs.journal));
        close(fd);
        close_state(&jobs);
}
END_TEST

/* A job in the table, journaled, with the files a checkpoint syncs. */
static Job *table_job(Jobs *jobs, uint64_t id) {
        Job *j = calloc(1, sizeof(*j));
        char name[32];

        ck_assert_ptr_nonnull(j);
        (void) snprintf(name, sizeof(name), "%llu", (unsigned long long) id);
        ck_assert_int_eq(mkdirat(jobs->jobs_fd, name, 0700), 0);
        j->dirfd = openat(jobs->jobs_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(j->dirfd, 0);
        ck_assert_int_eq(write_file_atomic_at(j->dirfd, "input", "a", 1, 0600), 0);
        ck_assert_int_eq(write_file_atomic_at(j->dirfd, "job.json", "{}", 2, 0600), 0);
        j->jobs = jobs;
        j->spec.id = id;
        j->journaled = true;
        jobs->jobs[jobs->n_jobs++] = j;
        return j;
}

static int blocked(void *arg) {
        char c;

        return read(*(int *) arg, &c, 1) == 1 ? 0 : -EIO;
}

static void unblocked(int r, void *arg) {
        (void) arg;
        ck_assert_int_eq(r, 0);
}

/* The checkpoint runs in the syncer's thread while the loop appends: a
 * round voids the journal only if no record came after it was made; the
 * jobs it synced are marked, and the next round takes the rest. */
START_TEST(test_a_checkpoint_round_leaves_a_record_that_came_meanwhile) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), gate[2];
        Job *table[2], *a, *b;
        sd_event *e = NULL;
        Jobs jobs;

        close(dirfd);
        open_state(path, &jobs);
        ck_assert_int_eq(jobs_journal_open(&jobs), 0);
        ck_assert_int_ge(sd_event_new(&e), 0);
        jobs.event = e;
        jobs.jobs = table;
        ck_assert_int_eq(syncer_new(&jobs.syncer, e), 0);
        ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0);
        /* The thread waits at the gate: the round made next waits behind it. */
        ck_assert_int_eq(syncer_queue(jobs.syncer, blocked, unblocked, &gate[0]), 0);

        journal_job(&jobs, 5, "a", 1);
        a = table_job(&jobs, 5);
        jobs_journal_pending(&jobs, a);
        ck_assert_int_ge(sd_event_run(e, 0), 0); /* the idle defer: the round, of job 5 */
        ck_assert(jobs.checkpoint_queued);
        journal_job(&jobs, 6, "a", 1);
        b = table_job(&jobs, 6);
        jobs_journal_pending(&jobs, b);
        ck_assert_int_eq(write(gate[1], "x", 1), 1);
        syncer_drain(jobs.syncer);
        ck_assert(!jobs.checkpoint_queued);
        ck_assert(!journal_is_empty(&jobs.journal)); /* job 6's record stays */
        ck_assert(a->journaled && a->files_synced);
        ck_assert(b->journaled && !b->files_synced);

        /* The next round (kicked by the end of this one) takes job 6;
         * the syncer's eventfd, still readable, comes before the idle defer. */
        for (int k = 0; k < 5 && !jobs.checkpoint_queued; k++)
                ck_assert_int_ge(sd_event_run(e, 0), 0);
        ck_assert(jobs.checkpoint_queued);
        syncer_drain(jobs.syncer);
        ck_assert(journal_is_empty(&jobs.journal));
        ck_assert(!a->journaled && !b->journaled && !a->files_synced && !b->files_synced);

        jobs.syncer = syncer_free(jobs.syncer);
        close_state(&jobs);
        jobs.checkpoint_source = sd_event_source_unref(jobs.checkpoint_source);
        for (size_t i = 0; i < jobs.n_jobs; i++) {
                close(table[i]->dirfd);
                free(table[i]);
        }
        close(gate[0]);
        close(gate[1]);
        sd_event_unref(e);
}
END_TEST

static Suite *jobs_journal_suite(void) {
        Suite *s = suite_create("jobs-journal");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_a_journaled_job_is_restored_at_start);
        tcase_add_test(tc, test_a_journal_that_cannot_be_read_stops_the_start);
        tcase_add_test(tc, test_a_record_of_a_job_too_large_is_refused);
        tcase_add_test(tc, test_a_checkpoint_round_leaves_a_record_that_came_meanwhile);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(jobs_journal_suite());
}
