/* SPDX-License-Identifier: MIT */
#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "json-util.h"
#include "job-persist.h"
#include "job-scope.h"
#include "job-stats.h"
#include "jobs.h"
#include "jobs-journal.h"
#include "log.h"
#include "macro.h"
#include "notifier.h"
#include "retrysel.h"
#include "runner-proc.h"
#include "store.h"
#include "syncer.h"

/* A runner that dies this many times in a row without committing anything
 * fails its job instead of being restarted for ever. */
#define RUNNER_CRASH_MAX 5
#define RUNNER_RESTART_DELAY_USEC 500000u
/* A cancelled runner has this long to kill its workers itself. */
#define CANCEL_GRACE_USEC 1000000u

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

Job *job_new(Jobs *jobs) {
        Job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->jobs = jobs;
        j->dirfd = -1;
        j->scope_pidfd = -1;
        j->ckpt.log_fd = -1;
        return j;
}

static void job_unload_checkpoint(Job *j) {
        if (!j->ckpt_loaded)
                return;
        checkpoint_close(&j->ckpt);
        j->ckpt_loaded = false;
}

static void job_release_slots(Job *j);

Job *job_free(Job *j) {
        if (!j)
                return NULL;
        /* A completed job removed while its runner exits gives its
         * workers back with it. */
        job_release_slots(j);
        if (j->persist_later) {
                /* Stopping: what was deferred is written now. */
                j->persist_later = sd_event_source_disable_unref(j->persist_later);
                (void) job_persist(j);
        }
        j->runner = runner_proc_free(j->runner);
        job_scope_free(j);
        j->restart_timer = sd_event_source_disable_unref(j->restart_timer);
        j->fault_timer = sd_event_source_disable_unref(j->fault_timer);
        j->persist_retry = sd_event_source_disable_unref(j->persist_retry);
        job_unload_checkpoint(j);
        j->dirfd = safe_close(j->dirfd);
        job_spec_done(&j->spec);
        job_status_done(&j->status);
        free(j->runner_error);
        free(j->pause_reason);
        free(j->halt_reason);
        free(j->shards);
        free(j->stats);
        free(j);
        return NULL;
}

int job_load_checkpoint(Job *j) {
        int r;

        if (j->ckpt_loaded)
                return 0;
        r = checkpoint_open(&j->ckpt, j->dirfd, j->spec.n_items);
        if (r < 0)
                return r;
        if (j->ckpt.gen != j->status.results_gen) {
                /* state.json and the log disagree on the generation: only
                 * a crash in the middle of starting a retry leaves that,
                 * and then the job is still ended (not loaded here). */
                checkpoint_close(&j->ckpt);
                return -EBADMSG;
        }
        j->ckpt_loaded = true;
        j->status.done = j->ckpt.done;
        j->status.failed = j->ckpt.failed;
        j->status.results_len = j->ckpt.results_len;
        j->fault_resumes = 0; /* it moves again */
        return 0;
}

static void job_release_slots(Job *j) {
        j->jobs->workers_in_use -= j->slots;
        j->slots = 0;
}

static void job_log_state(Job *j, JobState old) {
        JobState s = job_state(j);
        const char *e = j->status.error;

        if (old == s)
                return;
        log_job(s == JOB_FAILED || s == JOB_CANCELLED || (s == JOB_PAUSED && e) ? LOG_WARNING : LOG_INFO, j->spec.id,
                "%s%s%s (%llu/%llu items, %llu failed)", job_state_to_string(s), e ? ": " : "", e ? e : "",
                (unsigned long long) j->status.done, (unsigned long long) j->spec.n_items,
                (unsigned long long) j->status.failed);
}

#define FAULT_RESUME_MAX_USEC (600 * 1000000ULL)

static int fault_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;

        (void) s;
        (void) usec;
        j->fault_timer = sd_event_source_disable_unref(j->fault_timer);
        if (job_state(j) != JOB_PAUSED || !j->status.error || j->damaged)
                return 0;
        j->fault_resumes++;
        log_job(LOG_NOTICE, j->spec.id, "Trying again after a fault: %s.", j->status.error);
        job_resume(j);
        return 0;
}

/* A pause with a reason is a fault that may pass (the disk was full): the
 * job tries again by itself, after a delay that doubles each time. */
void job_arm_fault_timer(Job *j) {
        uint64_t base = j->jobs->settings->fault_resume_usec, delay;
        int r;

        if (base == 0 || j->damaged)
                return;
        delay = j->fault_resumes >= 20 ? FAULT_RESUME_MAX_USEC : MIN(base << j->fault_resumes, FAULT_RESUME_MAX_USEC);
        r = sd_event_add_time_relative(j->jobs->event, &j->fault_timer, CLOCK_MONOTONIC, delay, 0,
                                       fault_timer_handler, j);
        if (r < 0) {
                log_job_errno(LOG_WARNING, r, j->spec.id, "Cannot schedule another try, resume by hand: %m");
                return;
        }
        (void) sd_event_source_set_description(j->fault_timer, "fault-resume");
        log_job(LOG_INFO, j->spec.id, "Trying again in %llu s (or mplockctl resume %llu).",
                (unsigned long long) (delay / 1000000), (unsigned long long) j->spec.id);
}

void job_hold(Job *j) {
        j->fault_timer = sd_event_source_disable_unref(j->fault_timer);
}

int job_set_state(Job *j, JobState s, const char *error) {
        JobState old = job_state(j);
        char *e = error ? strdup(error) : NULL;
        int r;

        if (error && !e)
                log_oom(); /* the state changes all the same, without its reason */
        j->status.state = s;
        free(j->status.error);
        j->status.error = e;
        if (s == JOB_RUNNING && j->status.started_usec == 0)
                j->status.started_usec = now_usec(CLOCK_REALTIME);
        if (job_state_is_final(s))
                j->status.finished_usec = now_usec(CLOCK_REALTIME);
        /* Owed from the write that makes the end durable: no crash can
         * leave it ended on disk with its on-end command forgotten. */
        if (job_state_is_final(s) && !job_state_is_final(old) && j->spec.on_end)
                j->status.ends++;
        if (s != JOB_RUNNING) {
                /* Only a running job holds workers or waits to restart; a
                 * completed one's runner holds them until it exits. */
                if (!j->runner)
                        job_release_slots(j);
                j->restart_timer = sd_event_source_disable_unref(j->restart_timer);
        }
        if (job_state_is_final(s) || s == JOB_PAUSED)
                job_unload_checkpoint(j);
        j->fault_timer = sd_event_source_disable_unref(j->fault_timer);
        job_log_state(j, old);
        if (s == JOB_PAUSED && e)
                job_arm_fault_timer(j);
        if (old == JOB_RUNNING && s != JOB_RUNNING)
                jobs_schedule(j->jobs); /* its workers are free */

        /* Running is not kept: after a restart a running job is queued
         * again anyway. A completed job's end follows from its checkpoint
         * (every item committed), so whoever waits for it is told first,
         * and state.json follows when the loop is idle; every other state
         * must be on disk before anybody hears of it. */
        if (s == JOB_RUNNING)
                r = 0;
        else if (s == JOB_COMPLETED || s == JOB_COMPLETED_WITH_FAILURES) {
                jobs_emit(j->jobs, j, JOB_EVENT_STATE);
                job_persist_later(j);
                job_notify(j);
                return 0;
        } else
                r = job_persist(j);
        jobs_emit(j->jobs, j, JOB_EVENT_STATE);
        job_notify(j);
        return r;
}

void job_notify(Job *j) {
        NotifyRequest req = {
                .job = j->spec.id,
                .end = j->status.ends,
                .uid = j->spec.uid,
                .gid = j->spec.gid,
                .command = j->spec.on_end,
                .name = j->spec.name,
                .state = job_state_to_string(job_state(j)),
                .output = j->spec.output,
                .done = j->status.done,
                .failed = j->status.failed,
                .total = j->spec.n_items,
        };

        if (!j->spec.on_end || !job_state_is_final(job_state(j)) || j->status.ends == j->status.notified)
                return;
        if (notifier_queue(j->jobs->notifier, &req) < 0)
                log_job(LOG_ERR, j->spec.id, "Out of memory for the on-end command: it runs at the next start.");
}

void job_notified(Job *j, uint32_t end) {
        if (end <= j->status.notified || end > j->status.ends)
                return;
        j->status.notified = end;
        /* If this cannot be written, it is tried again (persist_retry);
         * a crash meanwhile runs the command once more. */
        (void) job_persist(j);
}

static JobState completed_state(const Job *j) {
        return j->status.failed > 0 ? JOB_COMPLETED_WITH_FAILURES : JOB_COMPLETED;
}

uint32_t job_slots_needed(const Job *j) {
        const Settings *s = j->jobs->settings;
        uint64_t left = j->spec.n_items > j->status.done ? j->spec.n_items - j->status.done : 1;
        uint32_t need = MIN(j->spec.workers, s->max_workers);

        /* A Slurm job's workers are the cluster's; here it is one process. */
        if (j->spec.slurm)
                return 1;
        if (left < need)
                need = (uint32_t) left;
        return MIN(need ? need : 1, s->max_workers_per_uid);
}

/* --- what the runner tells us --------------------------------------------- */

/* Items per second, of processed items (committed or not: commits can wait
 * for a save batch): from the runner's start until a first second has
 * passed, then a moving average over roughly one-second windows. */
static void update_rate(Job *j) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), dt = now - j->rate_usec;
        double inst;

        if (j->rate_usec == 0 || dt < 200000)
                return;
        inst = (double) (j->processed - j->rate_done) * 1e6 / (double) dt;
        if (j->rate <= 0)
                j->rate = inst;
        else if (dt >= 1000000)
                j->rate = 0.5 * j->rate + 0.5 * inst;
        else
                return;
        j->rate_usec = now;
        j->rate_done = j->processed;
}

static void set_reason(char **where, const char *msg) {
        free(*where);
        *where = strdup(msg);
        if (!*where)
                log_oom();
}

static void check_halt(Job *j) {
        char msg[256];

        if (j->spec.halt_failures == 0 || j->status.failed < j->spec.halt_failures || j->halt_reason)
                return;
        /* As GNU parallel's --halt soon: no new items; those in flight
         * finish and are committed; then the job fails. */
        (void) snprintf(msg, sizeof(msg), "halted after %llu failed items (--halt-on-failure %s)",
                        (unsigned long long) j->status.failed, strna(j->spec.halt));
        set_reason(&j->halt_reason, msg);
        log_job(LOG_WARNING, j->spec.id, "%s.", msg);
        /* A cancel already under way keeps its shorter deadline. */
        if (!runner_proc_stop_sent(j->runner))
                runner_proc_stop(j->runner, IPC_STOP_GRACEFUL, j->jobs->settings->stop_timeout_usec);
}

static void on_ready(void *userdata) {
        job_scope_place(userdata);
}

static int on_commit(void *userdata, const IpcCommit *c, const IpcRange *ranges) {
        Job *j = userdata;
        char msg[256];
        int r;

        if (!j->ckpt_loaded)
                return -EINVAL;
        /* The first commit of a job made durable by the journal: its files
         * first (usually done already, while the runner started). */
        r = jobs_journal_settle(j->jobs, j);
        if (r >= 0)
                r = checkpoint_commit(&j->ckpt, c, ranges);
        if (r == -EINVAL)
                return r;
        if (r < 0) {
                /* Nothing more can be committed: pause the job until its
                 * owner has made room and resumes it. What the runner has
                 * not committed is done again then. */
                (void) snprintf(msg, sizeof(msg), "cannot write the checkpoint: %s", strerror(-r));
                log_job(LOG_ERR, j->spec.id, "%s; pausing the job.", msg);
                if (!j->pause_reason)
                        set_reason(&j->pause_reason, msg);
                return r;
        }
        j->status.done = j->ckpt.done;
        j->status.failed = j->ckpt.failed;
        j->status.results_len = j->ckpt.results_len;
        j->processed = MAX(j->processed, j->status.done);
        job_scope_refresh(j);
        update_rate(j);
        check_halt(j);
        jobs_emit(j->jobs, j, JOB_EVENT_PROGRESS);
        return 0;
}

static int on_done(void *userdata) {
        Job *j = userdata;

        if (j->status.done != j->spec.n_items)
                return -EINVAL;
        j->runner_done = true;
        job_scope_sample(j);
        /* Every item is committed, durably: the job is complete now, and
         * whoever waits is told without waiting for the runner to exit. Its
         * workers stay counted until it has. A cancel asked for meanwhile
         * is decided at the exit, as before. */
        if (!j->cancel_requested)
                (void) job_set_state(j, completed_state(j), NULL);
        return 0;
}

static void on_fail(void *userdata, uint32_t kind, const char *message) {
        Job *j = userdata;

        log_job(LOG_ERR, j->spec.id, "Runner reports: %s", message);
        set_reason(&j->runner_error, message);
        j->runner_error_kind = kind;
}

static void on_progress(void *userdata, uint64_t processed, uint32_t workers) {
        Job *j = userdata;

        /* Informational only: never more than there is. */
        j->live_workers = MIN(workers, j->spec.workers);
        j->processed = MAX(j->status.done, MIN(processed, j->spec.n_items));
        update_rate(j);
}

static void on_shards(void *userdata, const char *array, const IpcShard *v, uint32_t n) {
        Job *j = userdata;

        if (n != j->n_shards) {
                IpcShard *nv = realloc(j->shards, n * sizeof(*v));
                if (!nv)
                        return; /* informational: the last view stays */
                j->shards = nv;
                j->n_shards = n;
        }
        memcpy(j->shards, v, n * sizeof(*v));
        (void) snprintf(j->slurm_array, sizeof(j->slurm_array), "%s", array);
}

static int restart_timer_handler(sd_event_source *s, uint64_t usec, void *userdata);

/* The runner died without being asked to: start another after a growing
 * delay, or give up after RUNNER_CRASH_MAX deaths without progress. */
static void job_runner_crashed(Job *j, const char *how) {
        const char *e = j->runner_error;
        char msg[768];
        uint64_t delay;
        int r;

        if (j->status.done > j->done_at_start)
                j->crashes = 0;
        if (++j->crashes >= RUNNER_CRASH_MAX) {
                (void) snprintf(msg, sizeof(msg), "job runner failed %u times in a row without progress, last: %s%s%s",
                                j->crashes, e ? e : how, e ? "; " : "", e ? how : "");
                (void) job_set_state(j, JOB_FAILED, msg);
                return;
        }
        delay = (uint64_t) RUNNER_RESTART_DELAY_USEC << (j->crashes - 1);
        log_job(LOG_WARNING, j->spec.id, "Runner ended unexpectedly (%s%s%s); restarting in %llu ms.", how,
                e ? ": " : "", e ? e : "", (unsigned long long) (delay / 1000));
        r = sd_event_add_time_relative(j->jobs->event, &j->restart_timer, CLOCK_MONOTONIC, delay, 0,
                                       restart_timer_handler, j);
        if (r < 0) {
                (void) snprintf(msg, sizeof(msg), "cannot schedule a restart: %s", strerror(-r));
                (void) job_set_state(j, JOB_FAILED, msg);
                return;
        }
        (void) sd_event_source_set_description(j->restart_timer, "runner-restart");
}

/* What a runner's end means for the job, most decisive reason first. */
static void job_runner_ended(Job *j, const char *how, bool clean) {
        if (j->cancel_requested)
                (void) job_set_state(j, JOB_CANCELLED, NULL);
        else if (j->status.done == j->spec.n_items) {
                /* Every item is committed (and so saved): whatever the
                 * runner did after that cannot change the results. */
                if (!clean)
                        log_job(LOG_WARNING, j->spec.id, "Runner ended badly (%s) after committing every item.", how);
                (void) job_set_state(j, completed_state(j), NULL);
        } else if (j->halt_reason)
                (void) job_set_state(j, JOB_FAILED, j->halt_reason);
        else if (j->runner_error && j->runner_error_kind == IPC_FAIL_PERMANENT)
                (void) job_set_state(j, JOB_FAILED, j->runner_error);
        else {
                if (j->runner_error && j->runner_error_kind == IPC_FAIL_STORAGE && !j->pause_reason)
                        set_reason(&j->pause_reason, j->runner_error);
                if (j->pause_requested || j->pause_reason) {
                        /* Asked for, or storage failed: nothing more can be
                         * committed until somebody resumes the job. */
                        _cleanup_free_ char *reason = TAKE_PTR(j->pause_reason);
                        j->pause_requested = false;
                        (void) job_set_state(j, JOB_PAUSED, reason);
                } else if (j->jobs->stopping) {
                        /* Stays "running" on disk, with its times: resumed
                         * at the next start. */
                        log_job(LOG_INFO, j->spec.id, "Runner stopped (%s) at %llu/%llu items.", how,
                                (unsigned long long) j->status.done, (unsigned long long) j->spec.n_items);
                        (void) job_persist(j);
                } else
                        job_runner_crashed(j, how);
        }
}

static void on_exited(void *userdata, int code, int status) {
        Job *j = userdata;
        char how[128];
        bool used;

        if (code == CLD_EXITED)
                (void) snprintf(how, sizeof(how), "exit status %d", status);
        else
                (void) snprintf(how, sizeof(how), "killed by signal %s", strsignal(status));
        j->runner = runner_proc_free(j->runner);
        used = job_scope_end(j);
        j->live_workers = 0;
        job_save_stats(j);
        if (job_state_is_final(job_state(j))) {
                /* Its use, now complete, is kept with its state. */
                if (used)
                        (void) job_persist(j);
                /* Completed when it said it was done: only its workers are
                 * given back now. */
                if (code != CLD_EXITED || status != 0)
                        log_job(LOG_WARNING, j->spec.id, "Runner ended badly (%s) after committing every item.",
                                how);
                job_release_slots(j);
                jobs_schedule(j->jobs);
        } else
                job_runner_ended(j, how, j->runner_done && code == CLD_EXITED && status == 0);
        jobs_emit(j->jobs, j, JOB_EVENT_RUNNER_EXITED);
}

/* Counted once the runner has committed them (a crash of mplockd between
 * the commit and this loses the count of that run, not a result). */
static int on_reused(void *userdata, uint64_t count) {
        Job *j = userdata;

        if (j->spec.reuse_job == 0 || count > j->spec.n_items || j->status.reused > j->spec.n_items - count)
                return -EINVAL;
        /* The runner's log says so already. */
        j->status.reused += count;
        (void) job_persist(j);
        return 0;
}

static const RunnerEvents runner_events = {
        .ready = on_ready,
        .commit = on_commit,
        .done = on_done,
        .fail = on_fail,
        .progress = on_progress,
        .shards = on_shards,
        .reused = on_reused,
        .stats = job_stats_received,
        .exited = on_exited,
};

/* --- starting a runner ---------------------------------------------------- */

static char *start_message(Job *j, size_t *len) {
        const Settings *s = j->jobs->settings;
        RunnerStart st = {
                .workers = j->spec.slurm ? j->spec.workers : j->slots,
                .results_len = j->ckpt.results_len,
                .done = j->ckpt.done,
                .failed = j->ckpt.failed,
                .results_gen = j->status.results_gen,
                .prev_results_len = j->status.prev_results_len,
                .retry_codes = j->status.retry_codes,
                .retry_items = j->status.retry_items,
                .commit_interval_usec = s->commit_interval_usec,
                .commit_items = s->commit_items,
                .retry_delay_usec = s->retry_delay_usec,
                .callback_timeout_usec = s->callback_timeout_usec,
                .resumed = j->ran,
                .wait_placed = j->jobs->scopes != NULL,
        };

        return runner_start_to_json(&j->spec, &st, len);
}

/* What the runner gets, all read-only (it runs user code): the snapshot
 * twice, once to lock (the job's lock is a flock of its snapshot: no file
 * to create at each start) and once to map, and the committed set. */
static int runner_fds(Job *j, int fds[3]) {
        fds[1] = openat(j->dirfd, "input", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fds[1] < 0)
                return -errno;
        fds[0] = fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
        if (fds[0] < 0) {
                fds[1] = safe_close(fds[1]);
                return -errno;
        }
        fds[2] = checkpoint_bitmap_memfd(&j->ckpt);
        if (fds[2] < 0) {
                fds[0] = safe_close(fds[0]);
                fds[1] = safe_close(fds[1]);
                return fds[2];
        }
        return 0;
}

static void job_reset_run(Job *j) {
        j->runner_done = j->cancel_requested = false;
        j->runner_error = mfree(j->runner_error);
        /* A pause reason belongs to the runner that hit it: a later runner
         * that crashes must not be paused for an old full disk. */
        j->pause_reason = mfree(j->pause_reason);
        j->runner_error_kind = 0;
        j->done_at_start = j->status.done;
        j->processed = j->status.done;
        j->rate_usec = now_usec(CLOCK_MONOTONIC);
        j->rate_done = j->status.done;
        j->rate = 0;
}

int job_start_runner(Job *j) {
        _cleanup_free_ char *start = NULL;
        const char *warm;
        int fds[3], r;
        size_t len;

        r = job_load_checkpoint(j);
        if (r < 0)
                return r;
        r = runner_fds(j, fds);
        if (r < 0)
                return r;
        start = start_message(j, &len);
        warm = j->jobs->python_bridge && streq(j->spec.module, j->jobs->python_bridge) ? j->jobs->python_bridge : NULL;
        r = start ? runner_proc_start(&j->runner, j->jobs->agents, j->spec.uid, j->spec.gid, start, len, fds, warm,
                                      &runner_events, j)
                  : -ENOMEM;
        for (int k = 0; k < 3; k++)
                safe_close(fds[k]);
        if (r < 0)
                return r;
        j->ran = true;
        job_reset_run(j);
        log_job(LOG_INFO, j->spec.id, "Runner %d started with %u workers at %llu/%llu items.",
                (int) runner_proc_pid(j->runner), j->slots, (unsigned long long) j->status.done,
                (unsigned long long) j->spec.n_items);
        return 0;
}

void job_stop_runner(Job *j) {
        j->restart_timer = sd_event_source_disable_unref(j->restart_timer);
        if (j->runner)
                runner_proc_stop(j->runner, IPC_STOP_GRACEFUL, j->jobs->settings->stop_timeout_usec);
}

static void job_pause_for_start_failure(Job *j, int r) {
        char msg[256];

        /* Whatever stops us from starting a runner (a full disk, no
         * descriptors) is not the job's fault: pause it. */
        (void) snprintf(msg, sizeof(msg), "cannot start the job runner: %s", strerror(-r));
        (void) job_set_state(j, JOB_PAUSED, msg);
}

static int restart_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        int r;

        (void) s;
        (void) usec;
        j->restart_timer = sd_event_source_disable_unref(j->restart_timer);
        if (j->jobs->stopping || job_state_is_final(job_state(j)))
                return 0;
        if (j->status.done == j->spec.n_items) {
                (void) job_set_state(j, completed_state(j), NULL);
                return 0;
        }
        r = job_start_runner(j);
        if (r < 0)
                job_pause_for_start_failure(j, r);
        return 0;
}

/* --- the owner's requests ------------------------------------------------- */

void job_cancel(Job *j) {
        j->cancel_requested = true;
        if (j->runner) {
                /* A Slurm job's coordinator runs scancel and waits for it. */
                runner_proc_stop(j->runner, IPC_STOP_CANCEL, j->spec.slurm ? 10 * CANCEL_GRACE_USEC : CANCEL_GRACE_USEC);
                return;
        }
        (void) job_set_state(j, JOB_CANCELLED, NULL);
}

/* Stops handing out items: the runner finishes what is in flight, commits
 * and exits; the job then waits, paused, until resumed (also across
 * restarts). */
void job_pause(Job *j, const char *reason) {
        if (reason && !j->pause_reason)
                set_reason(&j->pause_reason, reason);
        if (j->runner) {
                j->pause_requested = true;
                if (!runner_proc_stop_sent(j->runner))
                        runner_proc_pause(j->runner, j->jobs->settings->stop_timeout_usec);
                return;
        }
        if (!job_state_is_final(job_state(j))) {
                _cleanup_free_ char *r = TAKE_PTR(j->pause_reason);
                (void) job_set_state(j, JOB_PAUSED, r);
        }
}

void job_resume(Job *j) {
        if (job_state(j) != JOB_PAUSED)
                return;
        j->crashes = 0;
        (void) job_set_state(j, JOB_QUEUED, NULL);
        jobs_schedule(j->jobs);
}

/* Runs the failed (and never finished) items of an ended job again, in a
 * new results generation: the runner carries the successful records over,
 * through ordinary commits, then processes the rest. The new generation's
 * empty checkpoint first, state.json last: until that is written the job
 * is still the ended old one, on disk and here. sel (normalized) may choose
 * some failed items only: the runner carries the others' records over. */
int job_retry(Job *j, const RetrySel *sel) {
        JobStatus next = {
                .state = JOB_QUEUED,
                .started_usec = j->status.started_usec,
                .results_gen = j->status.results_gen + 1,
                .prev_results_len = j->status.results_len,
                /* An on-end command still owed runs all the same (its
                 * facts are the notifier's already); the next end owes
                 * another. */
                .ends = j->status.ends,
                .notified = j->status.notified,
                /* Carried over with the other successful records. */
                .reused = j->status.reused,
                .retry_codes = retry_sel_codes_text(sel),
                .retry_items = retry_sel_items_text(sel),
        };
        int r;

        if ((sel->n_codes > 0 && !next.retry_codes) || (sel->n_ranges > 0 && !next.retry_items)) {
                job_status_done(&next);
                return -ENOMEM;
        }
        job_unload_checkpoint(j);
        r = checkpoint_restart(j->dirfd, j->spec.n_items, next.results_gen);
        if (r >= 0)
                r = store_write_status(j->dirfd, &next);
        if (r < 0) {
                job_status_done(&next);
                return log_job_errno(LOG_ERR, r, j->spec.id, "Cannot start a retry: %m");
        }
        job_status_done(&j->status);
        j->status = next;
        j->processed = 0;
        j->crashes = 0;
        j->cancel_requested = j->pause_requested = false;
        j->halt_reason = mfree(j->halt_reason);
        log_job(LOG_INFO, j->spec.id, "Retrying%s%s%s%s: generation %u starts from %llu bytes of results.",
                next.retry_codes ? " codes " : "", next.retry_codes ? next.retry_codes : "",
                next.retry_items ? " items " : "", next.retry_items ? next.retry_items : "", next.results_gen,
                (unsigned long long) next.prev_results_len);
        jobs_emit(j->jobs, j, JOB_EVENT_STATE);
        jobs_schedule(j->jobs);
        return 0;
}
