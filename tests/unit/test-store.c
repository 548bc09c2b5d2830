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
#include "macro.h"
#include "store.h"
#include "test-util.h"

static JobSpec spec_of(uint64_t id) {
        return (JobSpec){ .id = id, .name = strdup("n"), .module = strdup("/m.so"), .input = strdup("(inline)"),
                          .output = strdup("/o"), .shared_json = strdup("{}"), .workers = 2, .batch_size = 1,
                          .save_batch = 10, .max_attempts = 3, .n_items = 5, .input_bytes = 10, .uid = 7 };
}

/* job.json of a submission, as submit.c writes it (synced here). */
static int store_create_spec(int dirfd, const JobSpec *spec) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = store_spec_text(spec, &text, &len);

        return r < 0 ? r : store_create_spec_text(dirfd, text, len, true);
}

START_TEST(test_spec_round_trip_and_damage) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        JobSpec a = spec_of(9), b = {};

        ck_assert_int_eq(store_create_spec(dirfd, &a), 0);
        /* In place only in a fresh directory: never over an existing job. */
        ck_assert_int_eq(store_create_spec(dirfd, &a), -EEXIST);
        ck_assert_int_eq(store_load_spec(dirfd, 9, &b), 0);
        ck_assert_str_eq(b.module, "/m.so");
        ck_assert_uint_eq(b.n_items, 5);
        job_spec_done(&b);
        /* The directory of job 9 holding another id is not job 9. */
        ck_assert_int_eq(store_load_spec(dirfd, 8, &b), -EBADMSG);
        ck_assert_ptr_null(b.module);
        /* Replaced atomically; then damage of every kind. */
        a.workers = 4;
        ck_assert_int_eq(store_write_spec(dirfd, &a), 0);
        ck_assert_int_eq(store_load_spec(dirfd, 9, &b), 0);
        ck_assert_uint_eq(b.workers, 4);
        job_spec_done(&b);
        test_write_file(dirfd, "job.json", "{\"version\":2}", 13);
        ck_assert_int_eq(store_load_spec(dirfd, 9, &b), -EBADMSG);
        test_write_file(dirfd, "job.json", "[1]", 3);
        ck_assert_int_eq(store_load_spec(dirfd, 9, &b), -EBADMSG);
        test_write_file(dirfd, "job.json", "{\"version\":1,", 13);
        ck_assert_int_eq(store_load_spec(dirfd, 9, &b), -EBADMSG);
        job_spec_done(&a);
        close(dirfd);
}
END_TEST

START_TEST(test_status) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path));
        JobStatus a = { .state = JOB_PAUSED, .error = strdup("disk full"), .done = 3, .results_gen = 2 }, b = {};

        /* No state.json: submitted and never changed, queued. */
        ck_assert_int_eq(store_load_status(dirfd, &b), 0);
        ck_assert_int_eq(b.state, JOB_QUEUED);
        ck_assert_uint_eq(b.done, 0);
        ck_assert_int_eq(store_write_status(dirfd, &a), 0);
        ck_assert_int_eq(store_load_status(dirfd, &b), 0);
        ck_assert_int_eq(b.state, JOB_PAUSED);
        ck_assert_str_eq(b.error, "disk full");
        ck_assert_uint_eq(b.done, 3);
        ck_assert_uint_eq(b.results_gen, 2);
        job_status_done(&b);
        test_write_file(dirfd, "state.json", "{\"state\":\"resting\"}", 19);
        ck_assert_int_eq(store_load_status(dirfd, &b), -EBADMSG);
        test_write_file(dirfd, "state.json", "{\"state\":\"queued\",\"x\":1}", 24);
        ck_assert_int_eq(store_load_status(dirfd, &b), -EBADMSG);
        job_status_done(&a);
        close(dirfd);
}
END_TEST

START_TEST(test_directories) {
        char path[PATH_MAX], name[STORE_NEW_NAME_MAX], spare[STORE_NEW_NAME_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), sfd, jfd, nfd, newfd, k;
        uint64_t *ids = NULL, next;
        size_t n;
        struct stat st;
        char state[PATH_MAX + 16];
        JobSpec spec = {}, loaded = {};

        (void) snprintf(state, sizeof(state), "%s/state", path);
        ck_assert_int_eq(store_open(state, &sfd, &jfd, &nfd), 0);
        ck_assert_int_eq(fstat(sfd, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0700);
        /* A submission under way in new/, then published as job 12. */
        ck_assert_int_eq(store_new_job_dir(nfd, name, &newfd), 0);
        ck_assert(test_file_exists(nfd, name));
        ck_assert_int_eq(store_publish_job_dir(nfd, name, jfd, 12, true), 0);
        ck_assert(!test_file_exists(nfd, name));
        ck_assert(test_file_exists(jfd, "12"));
        close(newfd);
        ck_assert_int_eq(mkdirat(jfd, "3", 0700), 0);
        ck_assert_int_eq(mkdirat(jfd, "not-a-job", 0700), 0);
        /* Left by a crash: a submission, a spare, an older version's
         * submission in jobs/, a temporary file. */
        ck_assert_int_eq(store_new_job_dir(nfd, name, &newfd), 0);
        close(newfd);
        ck_assert_int_eq(store_new_job_dir(nfd, spare, &newfd), 0);
        ck_assert_int_eq(store_create_empty(newfd, "input"), 0);
        ck_assert_int_eq(store_create_empty(newfd, "input"), -EEXIST);
        close(newfd);
        ck_assert_int_eq(mkdirat(jfd, STORE_NEW_PREFIX "old", 0700), 0);
        test_write_file(sfd, ".#next-id.abc", "x", 1);
        ck_assert_int_eq(store_list_jobs(jfd, &ids, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_uint_eq(ids[0], 3);
        ck_assert_uint_eq(ids[1], 12);
        free(ids);
        ck_assert_int_eq(store_load_next_id(sfd, &next), 0);
        ck_assert_uint_eq(next, 0);
        ck_assert_int_eq(store_write_next_id(sfd, 40), 0);
        ck_assert_int_eq(store_load_next_id(sfd, &next), 0);
        ck_assert_uint_eq(next, 40);
        close(sfd);
        close(jfd);
        close(nfd);
        /* At the next start, what a crash left goes; the jobs stay. */
        ck_assert_int_eq(chmod(state, 0755), 0);
        ck_assert_int_eq(store_open(state, &sfd, &jfd, &nfd), 0);
        ck_assert(!test_file_exists(nfd, name));
        ck_assert(!test_file_exists(nfd, spare));
        ck_assert(!test_file_exists(jfd, STORE_NEW_PREFIX "old"));
        ck_assert(!test_file_exists(sfd, ".#next-id.abc"));
        ck_assert(test_file_exists(jfd, "12"));
        ck_assert(test_file_exists(jfd, "not-a-job"));
        ck_assert_int_eq(fstat(sfd, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0700);
        k = store_open_job(jfd, 12);
        ck_assert_int_ge(k, 0);
        /* job.json may be an empty file already (a spare's), not more. */
        spec = spec_of(12);
        ck_assert_int_eq(store_create_empty(k, "job.json"), 0);
        ck_assert_int_eq(store_create_spec(k, &spec), 0);
        ck_assert_int_eq(store_load_spec(k, spec.id, &loaded), 0);
        ck_assert_str_eq(loaded.module, spec.module);
        ck_assert_int_eq(store_create_spec(k, &spec), -EEXIST);
        job_spec_done(&loaded);
        job_spec_done(&spec);
        close(k);
        ck_assert_int_eq(store_remove_job(jfd, 12), 0);
        ck_assert_int_eq(store_open_job(jfd, 12), -ENOENT);
        close(sfd);
        close(jfd);
        close(nfd);
        close(dirfd);
}
END_TEST

static int make_log(int dirfd) {
        return store_create_empty(dirfd, "ckpt.log");
}

START_TEST(test_restore_from_a_record) {
        char path[PATH_MAX], state[PATH_MAX + 16];
        int dirfd = test_tmpdir(path, sizeof(path)), sfd, jfd, nfd, k;
        static const char input[] = "a\0bb\0";
        _cleanup_free_ char *text = NULL, *got = NULL;
        JobSpec spec = spec_of(5), loaded = {};
        StoreRecord rec = { .id = 5, .input = input, .input_len = sizeof(input) - 1, .log_name = "ckpt.log",
                            .create_log = make_log };
        size_t len;

        (void) snprintf(state, sizeof(state), "%s/state", path);
        close(dirfd);
        ck_assert_int_eq(store_open(state, &sfd, &jfd, &nfd), 0);
        ck_assert_int_eq(store_spec_text(&spec, &text, &len), 0);
        rec.spec = text;
        rec.spec_len = len;
        /* The rename was lost: the job is made whole and published. */
        ck_assert_int_eq(store_restore_job(jfd, nfd, &rec), 1);
        k = store_open_job(jfd, 5);
        ck_assert_int_ge(k, 0);
        ck_assert_int_eq(store_load_spec(k, 5, &loaded), 0);
        ck_assert_str_eq(loaded.module, "/m.so");
        job_spec_done(&loaded);
        ck_assert(test_file_exists(k, "ckpt.log"));
        /* Nothing missing: nothing written. */
        ck_assert_int_eq(store_restore_job(jfd, nfd, &rec), 0);
        /* A file left short, another lost: both again; state.json kept. */
        test_write_file(k, "input", "a", 1);
        ck_assert_int_eq(unlinkat(k, "job.json", 0), 0);
        test_write_file(k, "state.json", "{}", 2);
        ck_assert_int_eq(store_restore_job(jfd, nfd, &rec), 1);
        ck_assert_int_eq(read_file_at(k, "input", 64, &got, &len), 0);
        ck_assert_uint_eq(len, sizeof(input) - 1);
        ck_assert_mem_eq(got, input, len);
        ck_assert_int_eq(store_load_spec(k, 5, &loaded), 0);
        job_spec_done(&loaded);
        ck_assert(test_file_exists(k, "state.json"));
        job_spec_done(&spec);
        close(k);
        close(sfd);
        close(jfd);
        close(nfd);
}
END_TEST

static Suite *store_suite(void) {
        Suite *s = suite_create("store");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_spec_round_trip_and_damage);
        tcase_add_test(tc, test_status);
        tcase_add_test(tc, test_directories);
        tcase_add_test(tc, test_restore_from_a_record);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(store_suite());
}
