/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bitmap.h"
#include "bitset.h"
#include "ipc.h"
#include "jobspec.h"
#include "run-error.h"
#include "start.h"
#include "test-util.h"

/* What a runner gets from mplockd: the job description, the job's lock
 * (waited for with a blocking flock() and an alarm), the committed set. */

static uint64_t now_usec(void) {
        struct timespec ts;

        ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void lock_file(char *path, size_t n) {
        char dir[PATH_MAX];
        int dirfd = test_tmpdir(dir, sizeof(dir));

        test_write_file(dirfd, "lock", "", 0);
        close(dirfd);
        snprintf(path, n, "%s/lock", dir);
}

static int open_lock(const char *path) {
        int fd = open(path, O_RDWR | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return fd;
}

static volatile sig_atomic_t usr1_seen;

static void usr1_handler(int sig) {
        (void) sig;
        usr1_seen = 1;
}

static void alrm_marker(int sig) {
        (void) sig;
}

/* A child that holds the lock for hold_ms, then exits; returns once it
 * holds it. */
static pid_t hold_lock(const char *path, unsigned hold_ms) {
        int p[2];
        char c;
        pid_t pid;

        ck_assert_int_eq(pipe(p), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(path, O_RDWR | O_CLOEXEC);
                if (fd < 0 || flock(fd, LOCK_EX) < 0 || write(p[1], "x", 1) != 1)
                        _exit(1);
                usleep(hold_ms * 1000u);
                _exit(0);
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

static void reap(pid_t pid) {
        int status;

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
}

START_TEST(test_lock_free) {
        char path[PATH_MAX];
        RunError e;
        int fd;

        lock_file(path, sizeof(path));
        fd = open_lock(path);
        ck_assert_int_eq(start_lock(fd, 1000000, &e), 0);
        /* Held: another open file description cannot have it. */
        ck_assert_int_eq(flock(open_lock(path), LOCK_EX | LOCK_NB), -1);
        close(fd);
}
END_TEST

START_TEST(test_lock_timeout_restores_signals) {
        struct sigaction sa = { .sa_handler = alrm_marker }, now;
        struct itimerval it;
        sigset_t mask, blocked;
        char path[PATH_MAX];
        uint64_t t0, waited;
        RunError e;
        pid_t pid;
        int fd;

        lock_file(path, sizeof(path));
        pid = hold_lock(path, 3000);
        /* What the caller had: its own SIGALRM handler, SIGALRM blocked. */
        ck_assert_int_eq(sigemptyset(&sa.sa_mask), 0);
        sa.sa_flags = SA_RESTART;
        ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
        ck_assert_int_eq(sigemptyset(&mask), 0);
        ck_assert_int_eq(sigaddset(&mask, SIGALRM), 0);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &mask, NULL), 0);

        fd = open_lock(path);
        t0 = now_usec();
        ck_assert_int_eq(start_lock(fd, 300000, &e), -ETIMEDOUT);
        waited = now_usec() - t0;
        ck_assert_uint_eq(e.kind, IPC_FAIL_TEMPORARY);
        ck_assert_str_eq(e.msg, "the job is still locked by another runner");
        ck_assert_uint_ge(waited, 300000);
        ck_assert_uint_lt(waited, 2000000);

        /* Everything as it was: handler, flags, mask, no timer. */
        ck_assert_int_eq(sigaction(SIGALRM, NULL, &now), 0);
        ck_assert_ptr_eq((void *) now.sa_handler, (void *) alrm_marker);
        ck_assert(now.sa_flags & SA_RESTART);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, NULL, &blocked), 0);
        ck_assert(sigismember(&blocked, SIGALRM));
        ck_assert_int_eq(getitimer(ITIMER_REAL, &it), 0);
        ck_assert(it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0);
        ck_assert(it.it_interval.tv_sec == 0 && it.it_interval.tv_usec == 0);
        close(fd);
        reap(pid);
}
END_TEST

START_TEST(test_lock_waits_for_release) {
        char path[PATH_MAX];
        uint64_t t0, waited;
        RunError e;
        pid_t pid;
        int fd;

        lock_file(path, sizeof(path));
        pid = hold_lock(path, 300);
        fd = open_lock(path);
        t0 = now_usec();
        ck_assert_int_eq(start_lock(fd, 10000000, &e), 0);
        waited = now_usec() - t0;
        /* Woken by the release, not by polling or the alarm. */
        ck_assert_uint_ge(waited, 200000);
        ck_assert_uint_lt(waited, 5000000);
        close(fd);
        reap(pid);
}
END_TEST

START_TEST(test_lock_other_signal_keeps_waiting) {
        struct sigaction sa = { .sa_handler = usr1_handler }; /* no SA_RESTART */
        char path[PATH_MAX];
        uint64_t t0;
        RunError e;
        pid_t holder, poker;
        int fd;

        ck_assert_int_eq(sigemptyset(&sa.sa_mask), 0);
        ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
        lock_file(path, sizeof(path));
        holder = hold_lock(path, 3000);
        poker = fork();
        ck_assert_int_ge(poker, 0);
        if (poker == 0) {
                usleep(100000);
                kill(getppid(), SIGUSR1);
                _exit(0);
        }
        fd = open_lock(path);
        t0 = now_usec();
        ck_assert_int_eq(start_lock(fd, 500000, &e), -ETIMEDOUT);
        ck_assert(usr1_seen);
        ck_assert_uint_ge(now_usec() - t0, 500000);
        close(fd);
        reap(poker);
        reap(holder);
}
END_TEST

START_TEST(test_lock_error) {
        RunError e;

        ck_assert_int_eq(start_lock(-1, 1000000, &e), -EBADF);
        ck_assert_uint_eq(e.kind, IPC_FAIL_TEMPORARY);
        ck_assert_str_eq(e.msg, "cannot lock the job: Bad file descriptor");
}
END_TEST

/* start_read() of one message sent on a socketpair like the runner's. */
static int read_message(uint32_t type, const char *text, Job *job, RunError *e) {
        int sv[2], r;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        if (text)
                ck_assert_int_eq(ipc_send(sv[0], type, text, strlen(text)), 0);
        close(sv[0]);
        r = start_read(job, sv[1], e);
        close(sv[1]);
        return r;
}

/* A start message as mplockd writes it, with extra JSON members spliced
 * in before the closing brace. */
static int read_job(const JobSpec *spec, const RunnerStart *st, const char *extra, Job *job, RunError *e) {
        char text[4096];
        size_t len;
        char *json = runner_start_to_json(spec, st, &len);
        int r;

        ck_assert_ptr_nonnull(json);
        ck_assert_uint_gt(len, 2);
        snprintf(text, sizeof(text), "%.*s%s}", (int) len - 1, json, extra);
        free(json);
        r = read_message(IPC_START, text, job, e);
        return r;
}

static JobSpec test_spec(void) {
        return (JobSpec){
                .id = 7,
                .module = (char *) "/m.so",
                .output = (char *) "/out",
                .shared_json = (char *) "{\"k\":[1,2]}",
                .batch_size = 4,
                .save_batch = 5,
                .max_attempts = 3,
                .memory_max = 16777216,
                .timeout_usec = 30000000,
                .n_items = 100,
                .input_bytes = 200,
                .input_crc = 9,
        };
}

static RunnerStart test_start(void) {
        return (RunnerStart){
                .workers = 3,
                .results_len = 32,
                .done = 10,
                .failed = 2,
                .results_gen = 5,
                .prev_results_len = 64,
                .commit_interval_usec = 50000,
                .commit_items = 1000,
                .retry_delay_usec = 250000,
        };
}

START_TEST(test_read_start) {
        JobSpec spec = test_spec();
        RunnerStart st = test_start();
        RunError e;
        Job job;

        ck_assert_int_eq(read_job(&spec, &st, "", &job, &e), 0);
        ck_assert_uint_eq(job.id, 7);
        ck_assert_str_eq(job.module_path, "/m.so");
        ck_assert_str_eq(job.output, "/out");
        ck_assert_str_eq(job.shared, "{\"k\":[1,2]}");
        ck_assert_uint_eq(job.n_workers, 3);
        ck_assert_uint_eq(job.batch_size, 4);
        ck_assert_uint_eq(job.save_batch, 5);
        ck_assert_uint_eq(job.max_attempts, 3);
        ck_assert_uint_eq(job.memory_max, 16777216);
        ck_assert_uint_eq(job.timeout_sec, 30);
        ck_assert_uint_eq(job.n_items, 100);
        ck_assert_uint_eq(job.input_bytes, 200);
        ck_assert_uint_eq(job.input_crc, 9);
        ck_assert_uint_eq(job.results_len, 32);
        ck_assert_uint_eq(job.committed, 10);
        ck_assert_uint_eq(job.committed_failed, 2);
        ck_assert_uint_eq(job.results_gen, 5);
        ck_assert_uint_eq(job.prev_results_len, 64);
        ck_assert_uint_eq(job.commit_interval_ms, 50);
        ck_assert_uint_eq(job.commit_items, 1000);
        ck_assert_uint_eq(job.retry_delay_ms, 250);
        start_job_free(&job);
}
END_TEST

static void read_fails(int r, const RunError *e, uint32_t kind, const char *msg) {
        ck_assert_int_lt(r, 0);
        ck_assert_uint_eq(e->kind, kind);
        ck_assert_msg(strncmp(e->msg, msg, strlen(msg)) == 0, "\"%s\" does not start with \"%s\"", e->msg, msg);
}

START_TEST(test_read_start_refused) {
        static const char none[] = "no job description from mplockd";
        JobSpec spec = test_spec();
        RunnerStart st = test_start();
        RunError e;
        Job job;

        read_fails(read_message(IPC_START, NULL, &job, &e), &e, IPC_FAIL_TEMPORARY, none);
        read_fails(read_message(IPC_STOP, "{}", &job, &e), &e, IPC_FAIL_TEMPORARY, none);
        read_fails(read_message(IPC_START, "{\"id\":", &job, &e), &e, IPC_FAIL_PERMANENT,
                   "bad job description from mplockd (JSON: ");
        read_fails(read_job(&spec, &st, ",\"unknown\":1", &job, &e), &e, IPC_FAIL_PERMANENT,
                   "bad job description from mplockd (unknown: ");
        st.workers = 0;
        read_fails(read_job(&spec, &st, "", &job, &e), &e, IPC_FAIL_PERMANENT,
                   "bad job description from mplockd (workers: ");
        /* In bounds field by field, but impossible together. */
        st = test_start();
        st.done = 101;
        read_fails(read_job(&spec, &st, "", &job, &e), &e, IPC_FAIL_PERMANENT, "bad job description from mplockd");
        ck_assert_str_eq(e.msg, "bad job description from mplockd");
        start_job_free(&job);
}
END_TEST

/* A memfd with the plain bitmap of n items, bits [first, first+count). */
static int bitmap_memfd(uint64_t n, uint64_t first, uint64_t count, size_t cut) {
        size_t words = (size_t) bitmap_words(n);
        uint64_t *w = calloc(words ? words : 1, sizeof(uint64_t));
        int fd = memfd_create("bitmap", MFD_CLOEXEC);

        ck_assert_ptr_nonnull(w);
        ck_assert_int_ge(fd, 0);
        for (uint64_t i = first; i < first + count; i++)
                w[i / 64] |= UINT64_C(1) << (i % 64);
        ck_assert_int_eq(write_full(fd, w, words * sizeof(uint64_t) - cut), 0);
        free(w);
        return fd;
}

START_TEST(test_load_done) {
        const uint64_t n = 600000; /* three chunks */
        RunError e;
        Bitset done;
        int fd;

        fd = bitmap_memfd(n, 1000, 300000, 0);
        ck_assert_int_eq(start_load_done(&done, fd, n, 300000, &e), 0);
        ck_assert_uint_eq(done.count, 300000);
        ck_assert(!bitset_test(&done, 999) && bitset_test(&done, 1000) && bitset_test(&done, 300999));
        ck_assert(!bitset_test(&done, 301000));
        bitset_free(&done);

        ck_assert_int_lt(start_load_done(&done, fd, n, 299999, &e), 0);
        ck_assert_uint_eq(e.kind, IPC_FAIL_PERMANENT);
        ck_assert_str_eq(e.msg, "checkpoint bitmap does not match the committed count");
        bitset_free(&done);
        close(fd);

        fd = bitmap_memfd(n, 0, 10, 8);
        ck_assert_int_lt(start_load_done(&done, fd, n, 10, &e), 0);
        ck_assert_uint_eq(e.kind, IPC_FAIL_PERMANENT);
        ck_assert_str_eq(e.msg, "checkpoint bitmap is short");
        bitset_free(&done);
        close(fd);
}
END_TEST

static Suite *start_suite(void) {
        Suite *s = suite_create("start");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_lock_free);
        tcase_add_test(tc, test_lock_timeout_restores_signals);
        tcase_add_test(tc, test_lock_waits_for_release);
        tcase_add_test(tc, test_lock_other_signal_keeps_waiting);
        tcase_add_test(tc, test_lock_error);
        tcase_add_test(tc, test_read_start);
        tcase_add_test(tc, test_read_start_refused);
        tcase_add_test(tc, test_load_done);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(start_suite());
}
