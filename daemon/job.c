/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "mplockd.h"
#include "varlink-names.h"

/* A runner that dies this many times in a row without committing anything
 * fails its job instead of being restarted for ever. */
#define RUNNER_CRASH_MAX 5

static const char *const state_names[_JOB_STATE_MAX] = {
        [JOB_QUEUED] = "queued",
        [JOB_RUNNING] = "running",
        [JOB_PAUSED] = "paused",
        [JOB_COMPLETED] = "completed",
        [JOB_COMPLETED_WITH_FAILURES] = "completed_with_failures",
        [JOB_FAILED] = "failed",
        [JOB_CANCELLED] = "cancelled",
};

const char *job_state_to_string(JobState s) {
        return s >= 0 && s < _JOB_STATE_MAX ? state_names[s] : "invalid";
}

JobState job_state_from_string(const char *s) {
        if (!s)
                return _JOB_STATE_INVALID;
        for (int i = 0; i < _JOB_STATE_MAX; i++)
                if (streq(state_names[i], s))
                        return (JobState) i;
        return _JOB_STATE_INVALID;
}

uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

Job *job_new(Manager *m) {
        Job *j = calloc(1, sizeof(*j));

        if (!j)
                return NULL;
        j->manager = m;
        j->dirfd = -1;
        j->runner_fd = -1;
        j->ckpt.log_fd = -1;
        return j;
}

void job_free(Job *j) {
        if (!j)
                return;
        while (j->waiters)
                job_remove_waiter(j, j->waiters);
        runner_detach(j);
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        job_unload_checkpoint(j);
        j->dirfd = safe_close(j->dirfd);
        job_spec_done(&j->spec);
        free(j->error);
        free(j->runner_error);
        free(j->pause_reason);
        free(j->halt_reason);
        free(j);
}

int manager_add_job(Manager *m, Job *j) {
        size_t i;

        if (GREEDY_REALLOC(m->jobs, m->jobs_cap, m->n_jobs + 1) < 0)
                return log_oom();
        /* Ids only grow, so this is an append except at start-up. */
        for (i = m->n_jobs; i > 0 && m->jobs[i - 1]->spec.id > j->spec.id; i--)
                m->jobs[i] = m->jobs[i - 1];
        m->jobs[i] = j;
        m->n_jobs++;
        return 0;
}

void manager_remove_job(Manager *m, Job *j) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i] == j) {
                        memmove(m->jobs + i, m->jobs + i + 1, (m->n_jobs - i - 1) * sizeof(*m->jobs));
                        m->n_jobs--;
                        break;
                }
        job_free(j);
}

Job *manager_find_job(Manager *m, uint64_t id) {
        size_t lo = 0, hi = m->n_jobs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (m->jobs[mid]->spec.id == id)
                        return m->jobs[mid];
                if (m->jobs[mid]->spec.id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

int job_load_checkpoint(Job *j) {
        int r;

        if (j->ckpt_loaded)
                return 0;
        r = checkpoint_open(&j->ckpt, j->dirfd, j->spec.n_items);
        if (r < 0)
                return r;
        if (j->ckpt.gen != j->results_gen) {
                /* state.json and the log disagree on the generation: only
                 * a crash in the middle of starting a retry leaves that,
                 * and then the job is still ended (not loaded here). */
                checkpoint_close(&j->ckpt);
                return -EBADMSG;
        }
        j->ckpt_loaded = true;
        j->done = j->ckpt.done;
        j->failed = j->ckpt.failed;
        j->results_len = j->ckpt.results_len;
        return 0;
}

void job_unload_checkpoint(Job *j) {
        if (!j->ckpt_loaded)
                return;
        checkpoint_close(&j->ckpt);
        j->ckpt_loaded = false;
}

void job_add_waiter(Job *j, Connection *c, bool is_cancel) {
        c->wait_job = j;
        c->wait_is_cancel = is_cancel;
        c->wait_next = j->waiters;
        j->waiters = c;
}

void job_remove_waiter(Job *j, Connection *c) {
        for (Connection **p = &j->waiters; *p; p = &(*p)->wait_next)
                if (*p == c) {
                        *p = c->wait_next;
                        break;
                }
        c->wait_job = NULL;
        c->wait_next = NULL;
}

/* Answers the waiters whose wait is over: everybody once the job has
 * ended, Pause callers once it is paused. */
static void job_wake_waiters(Job *j) {
        Connection **p = &j->waiters;

        while (*p) {
                Connection *c = *p;
                json_object *params;

                /* A pause by a fault (it has a reason) needs somebody:
                 * Wait returns then too; a pause asked for does not. */
                if (!job_state_is_final(j->state) &&
                    !(j->state == JOB_PAUSED && (c->wait_for_pause || (j->error && !c->wait_is_cancel)))) {
                        p = &c->wait_next;
                        continue;
                }
                job_remove_waiter(j, c); /* unlinks *p */
                params = json_object_new_object();
                if (params && json_add(params, "job", job_to_json(j)) < 0) {
                        json_object_put(params);
                        params = NULL;
                }
                if (!params) {
                        connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                        continue;
                }
                connection_reply(c, params);
        }
}

/* error: the reason shown with a failed or paused job; NULL clears it. */
int job_set_state(Job *j, JobState s, const char *error) {
        JobState old = j->state;
        int r;

        j->state = s;
        free(j->error);
        j->error = error ? strdup(error) : NULL;
        if (s == JOB_RUNNING && j->started_usec == 0)
                j->started_usec = now_usec(CLOCK_REALTIME);
        if (s != JOB_RUNNING) {
                /* Only a running job holds workers or waits to restart. */
                if (j->slots > 0) {
                        j->manager->workers_in_use -= j->slots;
                        j->slots = 0;
                }
                j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        }
        if (job_state_is_final(s))
                j->finished_usec = now_usec(CLOCK_REALTIME);

        r = store_write_state(j);
        if (r < 0)
                /* The in-memory state is right; on restart the job will
                 * resume from the previous state, which is safe. */
                log_job_errno(LOG_ERR, r, j->spec.id, "Cannot persist state %s: %m", job_state_to_string(s));

        if (old != s)
                log_job(s == JOB_FAILED || s == JOB_CANCELLED || (s == JOB_PAUSED && j->error) ? LOG_WARNING : LOG_INFO,
                        j->spec.id, "%s%s%s (%llu/%llu items, %llu failed)", job_state_to_string(s),
                        j->error ? ": " : "", j->error ? j->error : "", (unsigned long long) j->done,
                        (unsigned long long) j->spec.n_items, (unsigned long long) j->failed);

        if (s != JOB_RUNNING && old == JOB_RUNNING)
                manager_schedule(j->manager); /* its workers are free */
        if (job_state_is_final(s) || s == JOB_PAUSED) {
                job_unload_checkpoint(j);
                job_wake_waiters(j);
        }
        manager_notify_status(j->manager);
        return r;
}

static JobState completed_state(Job *j) {
        return j->failed > 0 ? JOB_COMPLETED_WITH_FAILURES : JOB_COMPLETED;
}

static int retry_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        int r;

        (void) s;
        (void) usec;
        j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
        if (j->manager->stopping || job_state_is_final(j->state))
                return 0;
        if (j->done == j->spec.n_items) {
                (void) job_set_state(j, completed_state(j), NULL);
                return 0;
        }
        r = spawn_runner(j);
        if (r < 0) {
                /* Whatever stops us from starting a runner (a full disk,
                 * no descriptors) is not the job's fault: pause it. */
                char msg[256];
                (void) snprintf(msg, sizeof(msg), "cannot start the job runner: %s", strerror(-r));
                (void) job_set_state(j, JOB_PAUSED, msg);
        }
        return 0;
}

void job_runner_exited(Job *j, int code, int status) {
        Manager *m = j->manager;
        char msg[512];
        uint64_t delay;
        int r;

        if (code == CLD_EXITED)
                (void) snprintf(msg, sizeof(msg), "exit status %d", status);
        else
                (void) snprintf(msg, sizeof(msg), "killed by signal %s", strsignal(status));

        if (j->cancel_requested) {
                (void) job_set_state(j, JOB_CANCELLED, NULL);
                return;
        }
        if (j->done == j->spec.n_items) {
                /* Every item is committed (and so saved): whatever the
                 * runner did after that cannot change the results. */
                if (!(j->runner_done && code == CLD_EXITED && status == 0))
                        log_job(LOG_WARNING, j->spec.id, "Runner ended badly (%s) after committing every item.", msg);
                (void) job_set_state(j, completed_state(j), NULL);
                return;
        }
        if (j->halt_reason) {
                (void) job_set_state(j, JOB_FAILED, j->halt_reason);
                return;
        }
        if (j->runner_error && j->runner_error_kind == IPC_FAIL_PERMANENT) {
                (void) job_set_state(j, JOB_FAILED, j->runner_error);
                return;
        }
        if (j->runner_error && j->runner_error_kind == IPC_FAIL_STORAGE && !j->pause_reason)
                j->pause_reason = strdup(j->runner_error);
        if (j->pause_requested || j->pause_reason) {
                /* Asked for, or storage failed: nothing more can be
                 * committed until somebody resumes the job. */
                _cleanup_free_ char *reason = TAKE_PTR(j->pause_reason);
                j->pause_requested = false;
                (void) job_set_state(j, JOB_PAUSED, reason);
                return;
        }
        if (m->stopping) {
                /* Stays "running" on disk: resumed at the next start. */
                log_job(LOG_INFO, j->spec.id, "Runner stopped (%s) at %llu/%llu items.", msg,
                        (unsigned long long) j->done, (unsigned long long) j->spec.n_items);
                return;
        }

        if (j->done > j->done_at_start)
                j->crashes = 0;
        j->crashes++;
        if (j->crashes >= RUNNER_CRASH_MAX) {
                char e[768];
                (void) snprintf(e, sizeof(e), "job runner failed %u times in a row without progress, last: %s%s%s",
                                j->crashes, j->runner_error ? j->runner_error : msg, j->runner_error ? "; " : "",
                                j->runner_error ? msg : "");
                (void) job_set_state(j, JOB_FAILED, e);
                return;
        }
        delay = UINT64_C(500000) << (j->crashes - 1);
        log_job(LOG_WARNING, j->spec.id, "Runner ended unexpectedly (%s%s%s); restarting in %llu ms.", msg,
                j->runner_error ? ": " : "", j->runner_error ? j->runner_error : "",
                (unsigned long long) (delay / 1000));
        r = sd_event_add_time_relative(m->event, &j->retry_timer, CLOCK_MONOTONIC, delay, 0, retry_timer_handler, j);
        if (r < 0) {
                (void) snprintf(msg, sizeof(msg), "cannot schedule a restart: %s", strerror(-r));
                (void) job_set_state(j, JOB_FAILED, msg);
                return;
        }
        (void) sd_event_source_set_description(j->retry_timer, "runner-retry");
}

static uint32_t job_slots_needed(Job *j) {
        Manager *m = j->manager;
        uint64_t left = j->spec.n_items > j->done ? j->spec.n_items - j->done : 1;
        uint32_t need = MIN(j->spec.workers, m->settings.max_workers);

        if (left < need)
                need = (uint32_t) left;
        return need ? need : 1;
}

static uint32_t workers_of_uid(Manager *m, uid_t uid) {
        uint32_t n = 0;

        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i]->spec.uid == uid)
                        n += m->jobs[i]->slots;
        return n;
}

static void manager_schedule_once(Manager *m) {
        /* First come, first served: a job that does not fit yet holds back
         * the ones behind it, so that large jobs cannot starve. */
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                uint32_t need;
                int r;

                if (j->state != JOB_QUEUED)
                        continue;
                need = job_slots_needed(j);
                /* A user over their own share waits without holding back
                 * the other users' jobs. */
                if (workers_of_uid(m, j->spec.uid) + MIN(need, m->settings.max_workers_per_uid) >
                    m->settings.max_workers_per_uid)
                        continue;
                need = MIN(need, m->settings.max_workers_per_uid);
                if (m->workers_in_use + need > m->settings.max_workers)
                        break;
                r = job_load_checkpoint(j);
                if (r < 0) {
                        char msg[256];
                        if (error_is_storage(r) || r == -EMFILE || r == -ENFILE || r == -ENOMEM) {
                                /* The disk or the system, not the checkpoint:
                                 * wait for its owner to resume it. */
                                (void) snprintf(msg, sizeof(msg), "cannot read the checkpoint: %s", strerror(-r));
                                (void) job_set_state(j, JOB_PAUSED, msg);
                                continue;
                        }
                        (void) snprintf(msg, sizeof(msg), "checkpoint cannot be recovered: %s", strerror(-r));
                        (void) job_set_state(j, JOB_FAILED, msg);
                        continue;
                }
                if (j->done == j->spec.n_items) {
                        /* Everything was committed before a restart; commits
                         * come after saves, so nothing is left to run. */
                        (void) job_set_state(j, completed_state(j), NULL);
                        continue;
                }
                j->slots = need;
                m->workers_in_use += need;
                j->crashes = 0;
                r = spawn_runner(j);
                if (r < 0) {
                        char msg[256];
                        (void) snprintf(msg, sizeof(msg), "cannot start the job runner: %s", strerror(-r));
                        (void) job_set_state(j, JOB_PAUSED, msg);
                        continue;
                }
                (void) job_set_state(j, JOB_RUNNING, NULL);
        }
}

void manager_schedule(Manager *m) {
        if (m->stopping)
                return;
        /* Finishing a job schedules again; do that in this loop, not by
         * recursion. */
        if (m->in_schedule) {
                m->reschedule = true;
                return;
        }
        m->in_schedule = true;
        do {
                m->reschedule = false;
                manager_schedule_once(m);
        } while (m->reschedule && !m->stopping);
        m->in_schedule = false;
}

void job_cancel(Job *j) {
        j->cancel_requested = true;
        if (j->runner_pid > 0) {
                runner_stop(j, IPC_STOP_CANCEL);
                return;
        }
        (void) job_set_state(j, JOB_CANCELLED, NULL);
}

/* Stops handing out items: the runner finishes what is in flight, commits
 * and exits; the job then waits, paused, until resumed (also across
 * restarts). reason: a storage fault, or NULL when the owner asked. */
void job_pause(Job *j, const char *reason) {
        if (reason && !j->pause_reason)
                j->pause_reason = strdup(reason);
        if (j->runner_pid > 0) {
                j->pause_requested = true;
                if (!j->stop_sent)
                        runner_stop(j, IPC_STOP_GRACEFUL);
                return;
        }
        if (!job_state_is_final(j->state)) {
                _cleanup_free_ char *r = TAKE_PTR(j->pause_reason);
                (void) job_set_state(j, JOB_PAUSED, r);
        }
}

/* Runs the failed (and never finished) items of an ended job again, in a
 * new results generation: the runner carries the successful records over,
 * through ordinary commits, then processes the rest. */
int job_retry(Job *j) {
        uint32_t gen = j->results_gen + 1;
        int r;

        /* The new generation's empty checkpoint first; state.json last:
         * until it is written the job is still the ended old one. */
        job_unload_checkpoint(j);
        r = checkpoint_restart(j->dirfd, j->spec.n_items, gen);
        if (r < 0)
                return r;
        j->prev_results_len = j->results_len;
        j->results_gen = gen;
        j->done = j->failed = j->processed = j->results_len = 0;
        j->finished_usec = 0;
        j->crashes = 0;
        j->cancel_requested = j->pause_requested = false;
        j->halt_reason = mfree(j->halt_reason);
        (void) job_set_state(j, JOB_QUEUED, NULL);
        log_job(LOG_INFO, j->spec.id, "Retrying: generation %u starts from %llu bytes of results.", gen,
                (unsigned long long) j->prev_results_len);
        manager_schedule(j->manager);
        return 0;
}

void job_resume(Job *j) {
        if (j->state != JOB_PAUSED)
                return;
        j->crashes = 0;
        (void) job_set_state(j, JOB_QUEUED, NULL);
        manager_schedule(j->manager);
}

bool manager_all_runners_gone(Manager *m) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i]->runner_pid > 0)
                        return false;
        return m->n_submissions == 0;
}

void manager_stop_all(Manager *m) {
        m->stopping = true;
        submit_abort_all(m);
        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                j->retry_timer = sd_event_source_disable_unref(j->retry_timer);
                if (j->runner_pid > 0)
                        runner_stop(j, IPC_STOP_GRACEFUL);
        }
        if (manager_all_runners_gone(m))
                (void) sd_event_exit(m->event, 0);
}
