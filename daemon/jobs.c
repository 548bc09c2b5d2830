/* SPDX-License-Identifier: MIT */
#include "jobs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "jobs-journal.h"
#include "log.h"
#include "macro.h"
#include "notifier.h"
#include "runner-proc.h"
#include "store.h"
#include "syncer.h"

static int schedule_handler(sd_event_source *s, void *userdata);

static void on_end_delivered(uint64_t id, uint32_t end, void *userdata) {
        Job *j = jobs_find(userdata, id);

        /* A job removed meanwhile owes nothing any more. */
        if (j)
                job_notified(j, end);
}

int jobs_new(Jobs **ret, sd_event *event, const Settings *settings, int state_fd, int jobs_fd, int new_fd,
             Agents *agents, JobsObserver observer, void *userdata) {
        Jobs *jobs = calloc(1, sizeof(*jobs));
        int r;

        if (!jobs)
                return -ENOMEM;
        *jobs = (Jobs){ .event = event, .settings = settings, .state_fd = state_fd, .jobs_fd = jobs_fd,
                        .new_fd = new_fd, .agents = agents, .next_id = 1, .observer = observer,
                        .observer_userdata = userdata, .journal = { .fd = -1 } };
        r = notifier_new(&jobs->notifier, agents, &settings->max_on_end_per_uid, &settings->on_end_timeout_usec,
                         on_end_delivered, jobs);
        if (r < 0) {
                free(jobs);
                return r;
        }
        r = sd_event_add_defer(event, &jobs->schedule_source, schedule_handler, jobs);
        if (r < 0) {
                notifier_free(jobs->notifier);
                free(jobs);
                return r;
        }
        (void) pthread_mutex_init(&jobs->journal_lock, NULL);
        r = syncer_new(&jobs->syncer, event);
        if (r < 0)
                /* Slower, not wrong: the syncs are done in the loop. */
                log_warning_errno(r, "Cannot start the syncer thread, syncing in the event loop: %m");
        (void) sd_event_source_set_enabled(jobs->schedule_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(jobs->schedule_source, "schedule");
        *ret = jobs;
        return 0;
}

Jobs *jobs_free(Jobs *jobs) {
        if (!jobs)
                return NULL;
        /* Stopping: the jobs' own files are made durable, the journal is
         * left void; what the syncer has is written first (its ends find
         * their jobs), and nothing is queued after. */
        (void) jobs_checkpoint(jobs);
        jobs->syncer = syncer_free(jobs->syncer);
        jobs_journal_close(jobs);
        /* What runs is killed: it is still owed on disk, and runs again at
         * the next start. */
        jobs->notifier = notifier_free(jobs->notifier);
        for (size_t i = 0; i < jobs->n_jobs; i++)
                job_free(jobs->jobs[i]);
        free(jobs->jobs);
        sd_event_source_disable_unref(jobs->schedule_source);
        (void) pthread_mutex_destroy(&jobs->journal_lock);
        free(jobs);
        return NULL;
}

void jobs_emit(Jobs *jobs, Job *j, JobEvent event) {
        if (jobs->observer)
                jobs->observer(j, event, jobs->observer_userdata);
}

Job *jobs_find(Jobs *jobs, uint64_t id) {
        size_t lo = 0, hi = jobs->n_jobs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (jobs->jobs[mid]->spec.id == id)
                        return jobs->jobs[mid];
                if (jobs->jobs[mid]->spec.id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* Ids only grow, so this is an append except while loading. */
static int jobs_insert(Jobs *jobs, Job *j) {
        size_t i;

        if (GREEDY_REALLOC(jobs->jobs, jobs->cap_jobs, jobs->n_jobs + 1) < 0)
                return -ENOMEM;
        for (i = jobs->n_jobs; i > 0 && jobs->jobs[i - 1]->spec.id > j->spec.id; i--)
                jobs->jobs[i] = jobs->jobs[i - 1];
        jobs->jobs[i] = j;
        jobs->n_jobs++;
        return 0;
}

uint64_t jobs_take_id(Jobs *jobs) {
        /* Not persisted: the job's directory carries its id once it
         * exists, and an id lost in a crash before that was never given to
         * anybody. (Remove persists the counter.) */
        return jobs->next_id++;
}

int jobs_add(Jobs *jobs, JobSpec *spec, int dirfd, bool journaled) {
        Job *j = job_new(jobs);
        int r;

        if (!j)
                return -ENOMEM;
        j->spec = *spec;
        *spec = (JobSpec){};
        j->dirfd = dirfd;
        j->status.state = JOB_QUEUED;
        r = jobs_insert(jobs, j);
        if (r < 0) {
                /* Published and durable all the same (the next start loads
                 * it): by its own files, the journal record aside. */
                if (journaled && store_sync_job_files(dirfd) >= 0)
                        (void) fsync_dirfd(jobs->jobs_fd);
                job_free(j);
                return r;
        }
        if (journaled)
                jobs_journal_pending(jobs, j);
        log_job(LOG_INFO, j->spec.id, "Submitted by uid %u: %s over %llu items of %s, %u workers.",
                (unsigned) j->spec.uid, j->spec.module, (unsigned long long) j->spec.n_items, j->spec.input,
                j->spec.workers);
        jobs_emit(jobs, j, JOB_EVENT_STATE);
        jobs_schedule(jobs);
        return 0;
}

int jobs_remove(Jobs *jobs, Job *j) {
        int r;

        /* Not one record may still describe a job that is gone: a replay
         * would bring it back. */
        r = jobs_checkpoint(jobs);
        if (r < 0)
                return r;
        /* Once its directory is gone, only next-id remembers that this id
         * was used: write it first. */
        r = store_write_next_id(jobs->state_fd, jobs->next_id);
        if (r >= 0)
                r = store_remove_job(jobs->jobs_fd, j->spec.id);
        if (r < 0)
                return r;
        /* Its state is gone with its directory. */
        j->persist_later = sd_event_source_disable_unref(j->persist_later);
        for (size_t i = 0; i < jobs->n_jobs; i++)
                if (jobs->jobs[i] == j) {
                        memmove(jobs->jobs + i, jobs->jobs + i + 1, (jobs->n_jobs - i - 1) * sizeof(*jobs->jobs));
                        jobs->n_jobs--;
                        break;
                }
        job_free(j);
        jobs_schedule(jobs); /* a runner that was exiting gave its workers back */
        return 0;
}

/* --- loading -------------------------------------------------------------- */

static void job_recover(Job *j) {
        char msg[256];
        int r;

        /* Unfinished: recover its checkpoint now, so that status is right
         * and a broken one is reported before it would run. A paused job
         * stays paused until somebody resumes it. */
        r = job_load_checkpoint(j);
        if (r < 0) {
                (void) snprintf(msg, sizeof(msg), "checkpoint cannot be recovered: %s", strerror(-r));
                (void) job_set_state(j, JOB_FAILED, msg);
                return;
        }
        if (j->ckpt.torn_bytes > 0)
                log_job(LOG_NOTICE, j->spec.id, "Checkpoint log had a torn tail of %llu bytes, cut off.",
                        (unsigned long long) j->ckpt.torn_bytes);
        log_job(LOG_INFO, j->spec.id, "Recovered: %llu of %llu items committed, will resume.",
                (unsigned long long) j->status.done, (unsigned long long) j->spec.n_items);
        j->status.state = JOB_QUEUED;
}

/* A job whose files do not load is not dropped: it may be unfinished, and
 * its owner must hear of it. It stays in the table, paused with the
 * reason, owned by whoever its job.json still names (else root), its
 * files as they are, until it is repaired (and mplockd restarted) or
 * removed. */
static int job_keep_damaged(Job *j, uint64_t id, const char *what, int err) {
        char msg[320];
        uint32_t uid = 0;

        job_spec_done(&j->spec);
        job_status_done(&j->status);
        if (j->dirfd >= 0)
                (void) store_peek_uid(j->dirfd, &uid);
        (void) snprintf(msg, sizeof(msg),
                        "cannot load %s: %s; its files are kept as they are: repair them and restart mplockd, or "
                        "remove the job",
                        what, strerror(-err));
        j->spec = (JobSpec){ .id = id, .uid = uid, .name = strdup("(damaged)"), .module = strdup(""),
                             .input = strdup(""), .output = strdup(""), .shared_json = strdup("{}") };
        j->status = (JobStatus){ .state = JOB_PAUSED, .error = strdup(msg) };
        j->damaged = true;
        log_job(LOG_ERR, id, "Kept as damaged, paused: %s.", msg);
        return j->spec.name && j->spec.module && j->spec.input && j->spec.output && j->spec.shared_json &&
                               j->status.error
                       ? 0
                       : -ENOMEM;
}

static int job_load(Jobs *jobs, uint64_t id) {
        Job *j = job_new(jobs);
        int r;

        if (!j)
                return -ENOMEM;
        j->dirfd = store_open_job(jobs->jobs_fd, id);
        j->spec.max_attempts = 3; /* jobs stored before it was kept */
        j->spec.umask = JOB_UMASK_DEFAULT;
        j->ran = true; /* whatever it did before, we cannot know */
        r = j->dirfd < 0 ? j->dirfd : store_load_spec(j->dirfd, id, &j->spec);
        if (r < 0)
                r = job_keep_damaged(j, id, j->dirfd < 0 ? "the job's directory" : "job.json", r);
        else if ((r = store_load_status(j->dirfd, &j->status)) < 0)
                r = job_keep_damaged(j, id, "state.json", r);
        else if (!job_state_is_final(job_state(j)) && job_state(j) != JOB_PAUSED)
                job_recover(j);
        else if (job_state(j) == JOB_PAUSED && j->status.error)
                job_arm_fault_timer(j);
        if (r >= 0)
                r = jobs_insert(jobs, j);
        if (r < 0)
                job_free(j);
        return r;
}

int jobs_load(Jobs *jobs) {
        _cleanup_free_ uint64_t *ids = NULL;
        uint64_t saved = 0;
        size_t n = 0;
        int r;

        r = jobs_journal_open(jobs);
        if (r < 0)
                return r;
        r = store_list_jobs(jobs->jobs_fd, &ids, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot read the jobs directory: %m");
        for (size_t i = 0; i < n; i++) {
                /* Never hand out an id again, even one whose job is broken. */
                jobs->next_id = MAX(jobs->next_id, ids[i] + 1);
                (void) job_load(jobs, ids[i]);
        }
        /* Removed jobs leave no directory behind; the counter remembers
         * their ids so that none is handed out twice. */
        r = store_load_next_id(jobs->state_fd, &saved);
        if (r < 0)
                log_warning_errno(r, "Cannot read next-id, continuing from %llu: %m",
                                  (unsigned long long) jobs->next_id);
        jobs->next_id = MAX(jobs->next_id, saved);
        /* Ended, and its on-end command owed: a crash (or a stop) came
         * between the end and the command's exit. It runs (again). */
        for (size_t i = 0; i < jobs->n_jobs; i++)
                job_notify(jobs->jobs[i]);
        return 0;
}

/* --- scheduling ----------------------------------------------------------- */

static uint32_t workers_of_uid(const Jobs *jobs, uid_t uid) {
        uint32_t n = 0;

        for (size_t i = 0; i < jobs->n_jobs; i++)
                if (jobs->jobs[i]->spec.uid == uid)
                        n += jobs->jobs[i]->slots;
        return n;
}

/* A queued job's checkpoint, read before it runs: false if the job could
 * not be loaded (it is paused or failed then) or needs no runner. */
static bool job_ready_to_run(Job *j) {
        char msg[256];
        int r = job_load_checkpoint(j);

        if (r < 0) {
                bool system = job_error_is_transient(r);
                /* The disk or the system, not the checkpoint: wait for its
                 * owner to resume it. */
                (void) snprintf(msg, sizeof(msg), "%s: %s",
                                system ? "cannot read the checkpoint" : "checkpoint cannot be recovered",
                                strerror(-r));
                (void) job_set_state(j, system ? JOB_PAUSED : JOB_FAILED, msg);
                return false;
        }
        if (j->status.done == j->spec.n_items) {
                /* Everything was committed before a restart; commits come
                 * after saves, so nothing is left to run. */
                (void) job_set_state(j, j->status.failed > 0 ? JOB_COMPLETED_WITH_FAILURES : JOB_COMPLETED, NULL);
                return false;
        }
        return true;
}

static void job_run(Jobs *jobs, Job *j, uint32_t slots) {
        char msg[256];
        int r;

        j->slots = slots;
        jobs->workers_in_use += slots;
        j->crashes = 0;
        r = job_start_runner(j);
        if (r < 0) {
                /* Not the job's fault (a full disk, no descriptors). */
                (void) snprintf(msg, sizeof(msg), "cannot start the job runner: %s", strerror(-r));
                (void) job_set_state(j, JOB_PAUSED, msg);
                return;
        }
        (void) job_set_state(j, JOB_RUNNING, NULL);
}

/* First come, first served: a job that does not fit yet holds back the
 * ones behind it, so that large jobs cannot starve; a user over their own
 * share waits without holding back the other users' jobs. */
static int schedule_handler(sd_event_source *s, void *userdata) {
        Jobs *jobs = userdata;
        const Settings *st = jobs->settings;

        (void) s;
        for (size_t i = 0; i < jobs->n_jobs && !jobs->stopping; i++) {
                Job *j = jobs->jobs[i];
                uint32_t need;

                /* Queued again (a retry) while its last runner exits. */
                if (job_state(j) != JOB_QUEUED || j->runner)
                        continue;
                need = job_slots_needed(j);
                if (workers_of_uid(jobs, j->spec.uid) + need > st->max_workers_per_uid)
                        continue;
                if (jobs->workers_in_use + need > st->max_workers)
                        break;
                if (job_ready_to_run(j))
                        job_run(jobs, j, need);
        }
        return 0;
}

void jobs_schedule(Jobs *jobs) {
        if (!jobs->stopping)
                (void) sd_event_source_set_enabled(jobs->schedule_source, SD_EVENT_ONESHOT);
}

void jobs_usage(Jobs *jobs, uid_t uid, JobsUsage *ret) {
        *ret = (JobsUsage){ .jobs = jobs->n_jobs };
        for (size_t i = 0; i < jobs->n_jobs; i++) {
                const Job *j = jobs->jobs[i];
                if (job_state_is_final(job_state(j)))
                        continue;
                ret->active++;
                if (j->spec.uid == uid) {
                        ret->active_of_uid++;
                        ret->input_of_uid += j->spec.input_bytes;
                }
        }
}

void jobs_stop_all(Jobs *jobs) {
        jobs->stopping = true;
        (void) sd_event_source_set_enabled(jobs->schedule_source, SD_EVENT_OFF);
        for (size_t i = 0; i < jobs->n_jobs; i++)
                job_stop_runner(jobs->jobs[i]);
}

bool jobs_runners_gone(const Jobs *jobs) {
        for (size_t i = 0; i < jobs->n_jobs; i++)
                if (jobs->jobs[i]->runner)
                        return false;
        return true;
}
