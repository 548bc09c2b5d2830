/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>

#include "bitset.h"
#include "clock.h"
#include "fileio.h"
#include "ipc.h"
#include "jobspec.h"
#include "json-util.h"
#include "macro.h"
#include "retrysel.h"
#include "run-error.h"
#include "start.h"

static void json_putp(json_object **o) {
        if (*o)
                json_object_put(*o);
}

static void start_done(RunnerStart *st) {
        schema_done(&runner_start_schema, st);
}

/* A subset retry's choice, as mplockd checked it: anything else is its bug. */
static int job_retry_sel(Job *job, const RunnerStart *st, RunError *e) {
        int r = 0;

        if (!st->retry_codes && !st->retry_items)
                return 0;
        job->retry = calloc(1, sizeof(*job->retry));
        if (!job->retry)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        if (st->retry_codes)
                r = retry_sel_parse_codes(job->retry, st->retry_codes);
        if (r >= 0 && st->retry_items)
                r = retry_sel_parse_items(job->retry, st->retry_items, job->n_items);
        if (r < 0)
                return run_error(e, IPC_FAIL_PERMANENT, r, "bad retry selection from mplockd");
        retry_sel_normalize(job->retry);
        return 0;
}

/* The fields a runner uses, in its units; the strings are taken. */
static void job_from_spec(Job *job, JobSpec *spec, const RunnerStart *st) {
        *job = (Job){
                .id = spec->id,
                .module_path = TAKE_PTR(spec->module),
                .module_stamp = TAKE_PTR(spec->module_stamp),
                .output = TAKE_PTR(spec->output),
                .shared = TAKE_PTR(spec->shared_json),
                .n_workers = st->workers,
                .batch_size = spec->batch_size,
                .save_batch = spec->save_batch,
                .max_attempts = spec->max_attempts,
                .commit_interval_ms = (uint32_t) (st->commit_interval_usec / 1000),
                .commit_items = st->commit_items,
                .timeout_sec = (uint32_t) (spec->timeout_usec / 1000000),
                .retry_delay_ms = (uint32_t) (st->retry_delay_usec / 1000),
                .callback_timeout_sec = (uint32_t) (st->callback_timeout_usec / 1000000),
                .results_gen = st->results_gen,
                .prev_results_len = st->prev_results_len,
                .resumed = st->resumed != 0,
                .wait_placed = st->wait_placed != 0,
                .n_items = spec->n_items,
                .input_bytes = spec->input_bytes,
                .memory_max = spec->memory_max,
                .max_items_per_worker = spec->max_items_per_worker,
                .max_worker_memory = spec->max_worker_memory,
                .umask = spec->umask,
                .halt_failures = spec->halt_failures,
                .input_crc = spec->input_crc,
                .results_len = st->results_len,
                .committed = st->done,
                .committed_failed = st->failed,
                .slurm = spec->slurm != 0,
                .shards = spec->shards,
                .partition = TAKE_PTR(spec->partition),
                .slurm_options = TAKE_PTR(spec->slurm_options),
                .reuse_job = spec->reuse_job,
                .reuse_len = spec->reuse_len,
                .reuse_items = spec->reuse_items,
                .reuse_gen = spec->reuse_gen,
                .reuse_output = TAKE_PTR(spec->reuse_output),
                .reuse_stamp = TAKE_PTR(spec->reuse_stamp),
        };
}

int start_read(Job *job, int ipc_fd, RunError *e) {
        /* Static: IPC_MSG_MAX is too much for the stack, and this runs once. */
        static char buf[IPC_MSG_MAX] __attribute__((aligned(8)));
        _cleanup_(job_spec_done) JobSpec spec = { .max_attempts = 3, .umask = JOB_UMASK_DEFAULT };
        _cleanup_(json_putp) json_object *o = NULL;
        _cleanup_(start_done) RunnerStart st = {};
        const void *payload;
        const char *why = NULL;
        uint32_t type;
        JsonError err;
        size_t len;
        int r;

        *job = (Job){};
        r = ipc_recv(ipc_fd, buf, sizeof(buf), &type, &len, &payload);
        if (r <= 0 || type != IPC_START)
                return run_error(e, IPC_FAIL_TEMPORARY, r < 0 ? r : -EBADMSG, "no job description from mplockd");
        o = json_parse_strict(payload, len, 64, &why);
        r = o ? runner_start_from_json(o, &spec, &st, &err) : -EINVAL;
        if (r == -ENOMEM)
                return run_error(e, IPC_FAIL_TEMPORARY, r, "out of memory");
        if (r < 0)
                return run_error(e, IPC_FAIL_PERMANENT, r, "bad job description from mplockd (%s: %s)",
                                 o ? err.field : "JSON", o ? err.reason : why);
        job_from_spec(job, &spec, &st);
        if (job->committed > job->n_items)
                return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG, "bad job description from mplockd");
        r = job_retry_sel(job, &st, e);
        if (r < 0)
                return r;
        if (job->slurm) {
                job->start_json = strndup(payload, len);
                if (!job->start_json)
                        return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
                job->start_json_len = len;
        }
        return 0;
}

void start_job_free(Job *job) {
        free(job->module_path);
        free(job->module_stamp);
        free(job->output);
        free(job->shared);
        free(job->partition);
        free(job->slurm_options);
        free(job->reuse_output);
        free(job->reuse_stamp);
        free(job->start_json);
        free(job->retry);
        *job = (Job){};
}

static void alarm_noop(int sig) {
        (void) sig;
}

/* What start_lock() changes, to put back. */
typedef struct LockAlarm {
        struct sigaction old_action;
        sigset_t old_mask;
        struct itimerval old_timer;
} LockAlarm;

/* SIGALRM after usec, with a handler that does nothing and no SA_RESTART:
 * a blocked flock() returns EINTR. It fires again every 10 ms after that,
 * in case the first came just before flock() blocked. */
static int alarm_arm(LockAlarm *a, uint64_t usec) {
        struct sigaction sa = { .sa_handler = alarm_noop };
        struct itimerval it = {
                .it_value = { .tv_sec = (time_t) (usec / 1000000u), .tv_usec = (suseconds_t) (usec % 1000000u) },
                .it_interval = { .tv_sec = 0, .tv_usec = 10000 },
        };
        sigset_t alrm;
        int r;

        if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
                it.it_value.tv_usec = 1; /* zero would disarm */
        if (sigemptyset(&sa.sa_mask) < 0 || sigemptyset(&alrm) < 0 || sigaddset(&alrm, SIGALRM) < 0)
                return -EINVAL;
        if (sigaction(SIGALRM, &sa, &a->old_action) < 0)
                return -errno;
        if (sigprocmask(SIG_UNBLOCK, &alrm, &a->old_mask) < 0) {
                r = -errno;
                (void) sigaction(SIGALRM, &a->old_action, NULL);
                return r;
        }
        if (setitimer(ITIMER_REAL, &it, &a->old_timer) < 0) {
                r = -errno;
                (void) sigprocmask(SIG_SETMASK, &a->old_mask, NULL);
                (void) sigaction(SIGALRM, &a->old_action, NULL);
                return r;
        }
        return 0;
}

/* The timer first, so that no SIGALRM of ours arrives once the old handler
 * is back. (An old timer restarts with what it had left: the runner has
 * none.) */
static void alarm_disarm(LockAlarm *a) {
        (void) setitimer(ITIMER_REAL, &a->old_timer, NULL);
        (void) sigprocmask(SIG_SETMASK, &a->old_mask, NULL);
        (void) sigaction(SIGALRM, &a->old_action, NULL);
}

/* Blocks in flock() until the lock is free or the alarm ends the wait. */
static int lock_wait(int lock_fd, uint64_t deadline, RunError *e) {
        for (;;) {
                if (flock(lock_fd, LOCK_EX) == 0)
                        return 0;
                if (errno != EINTR)
                        return run_error(e, IPC_FAIL_TEMPORARY, -errno, "cannot lock the job: %s", strerror(errno));
                /* Our alarm, or another signal before it. */
                if (now_usec() >= deadline)
                        return run_error(e, IPC_FAIL_TEMPORARY, -ETIMEDOUT,
                                         "the job is still locked by another runner");
        }
}

int start_lock(int lock_fd, uint64_t timeout_usec, RunError *e) {
        uint64_t deadline = now_usec() + timeout_usec;
        LockAlarm a;
        int r;

        /* Free, as it nearly always is: no signals needed. */
        if (flock(lock_fd, LOCK_EX | LOCK_NB) == 0)
                return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
                return run_error(e, IPC_FAIL_TEMPORARY, -errno, "cannot lock the job: %s", strerror(errno));
        r = alarm_arm(&a, timeout_usec);
        if (r < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, r, "cannot lock the job: %s", strerror(-r));
        r = lock_wait(lock_fd, deadline, e);
        alarm_disarm(&a);
        return r;
}

/* One chunk of the serialized bitmap at off. */
static int load_chunk(Bitset *done, uint64_t k, int fd, off_t off, uint64_t *buf, RunError *e) {
        size_t len = (size_t) bitset_chunk_words(done, k) * sizeof(uint64_t);
        ssize_t n = pread_full(fd, buf, len, off);
        int r;

        if (n < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, (int) n, "cannot read the checkpoint bitmap: %s",
                                 strerror((int) -n));
        if ((size_t) n != len)
                return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG, "checkpoint bitmap is short");
        r = bitset_load_chunk(done, k, buf);
        if (r < 0)
                return run_error(e, r == -ENOMEM ? IPC_FAIL_TEMPORARY : IPC_FAIL_PERMANENT, r,
                                 "cannot load the checkpoint bitmap: %s", strerror(-r));
        return 0;
}

int start_load_done(Bitset *done, int bitmap_fd, uint64_t n_items, uint64_t committed, RunError *e) {
        _cleanup_free_ uint64_t *buf = NULL;
        off_t off = 0;
        int r;

        /* We keep only the chunks that are neither empty nor full, so that
         * memory stays flat. */
        r = bitset_init(done, n_items);
        if (r < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, r, "out of memory");
        buf = malloc((done->n_chunks ? bitset_chunk_words(done, 0) : 1) * sizeof(uint64_t));
        if (!buf)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        for (uint64_t k = 0; k < done->n_chunks; k++) {
                r = load_chunk(done, k, bitmap_fd, off, buf, e);
                if (r < 0)
                        return r;
                off += (off_t) bitset_chunk_words(done, k) * (off_t) sizeof(uint64_t);
        }
        if (done->count != committed)
                return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG,
                                 "checkpoint bitmap does not match the committed count");
        return 0;
}
