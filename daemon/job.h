/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "checkpoint.h"
#include "ipc.h"
#include "jobspec.h"

/* One job: its state machine and its runner. Only this file and jobs.c
 * change a Job; the API layer reads it (spec, status, progress) and asks
 * for transitions with the job_* calls below. What happens is told through
 * the jobs' observer (jobs.h): never a socket, never JSON. */

typedef struct Jobs Jobs;
typedef struct RetrySel RetrySel;
typedef struct RunnerProc RunnerProc;

typedef struct Job {
        Jobs *jobs;
        JobSpec spec;
        JobStatus status;
        int dirfd;

        uint64_t processed; /* done, or more: finished but not yet committed */
        Checkpoint ckpt;
        bool ckpt_loaded;
        /* A completed state, written once nothing more urgent is pending. */
        sd_event_source *persist_later;
        /* The last state.json write failed (-errno; 0: on disk): whoever
         * asked for the change hears it, and it is tried again. */
        int persist_error;
        sd_event_source *persist_retry;
        /* Durable through the journal only: its files are synced (a
         * checkpoint) before anything else of it is made durable. */
        bool journaled;
        /* Its files and its name in jobs/ are synced (a checkpoint round,
         * or jobs_journal_settle), its record still in the journal. */
        bool files_synced;

        /* The runner of this run, and what it told us. */
        RunnerProc *runner;
        sd_event_source *restart_timer; /* after a runner crash */
        /* Paused by a fault (a full disk): tried again after a growing
         * delay, until it runs or somebody pauses it on purpose. */
        sd_event_source *fault_timer;
        uint32_t fault_resumes;
        uint32_t slots;                 /* workers held from the global cap */
        uint32_t live_workers;
        bool runner_done, cancel_requested, pause_requested;
        char *pause_reason; /* a storage fault, shown while paused */
        char *halt_reason;  /* set once --halt-on-failure is reached */
        char *runner_error; /* from its failure report */
        uint32_t runner_error_kind;
        uint32_t crashes; /* runner deaths without progress */
        /* A runner may have given items to save before (any run but the
         * first after submission, in this daemon's life or an earlier one). */
        bool ran;
        uint64_t done_at_start;
        /* Its job.json or state.json did not load at start: kept, paused,
         * with the reason, its files untouched; only Remove acts on it. */
        bool damaged;

        /* Its scope (job-scope.c): being made, or made (cgroup set). */
        struct ScopeRequest *scope_req;
        int scope_pidfd;
        char *cgroup;
        struct JobRunUsage *run_usage; /* the running scope's, last read */

        /* A Slurm job's shards, as its coordinator last told (informational). */
        char slurm_array[IPC_SLURM_ID_MAX];
        IpcShard *shards;
        uint32_t n_shards;

        /* Where its run's time went, as its runner last told (an
         * IpcStats message, checked); written to the job's stats file
         * when the runner has ended, then dropped from memory. */
        void *stats;
        size_t stats_len;
        uint64_t stats_seq; /* counts the messages: a write in flight is of one */

        /* Items per second over recent commits, for status. */
        uint64_t rate_done, rate_usec;
        double rate;
} Job;

static inline JobState job_state(const Job *j) {
        return (JobState) j->status.state;
}

/* Trouble of the disk or the system (a full disk, an I/O error, no
 * descriptors) that should pause a job, as opposed to damage or a bug
 * that fails it. */
static inline bool job_error_is_transient(int r) {
        r = r < 0 ? -r : r;
        return r == ENOSPC || r == EDQUOT || r == EIO || r == EROFS || r == EFBIG || r == EMFILE || r == ENFILE ||
               r == ENOMEM;
}

/* The owner's requests. Each is refused by the API when it does not apply
 * (cancel of an ended job, ...); here they act. */
void job_cancel(Job *j);
/* reason: a storage fault, or NULL when the owner asked. */
void job_pause(Job *j, const char *reason);
/* A job paused by a fault (a reason in its status) tries again later by
 * itself (the setting fault-resume-delay); job_set_state() arms it, and
 * loading a job paused so does. */
void job_arm_fault_timer(Job *j);
/* A job paused by a fault stays paused: no more tries by itself (its
 * owner paused it on purpose). */
void job_hold(Job *j);
void job_resume(Job *j);
/* -errno if the new results generation could not be started; the job is
 * then unchanged. */
int job_retry(Job *j, const RetrySel *sel);

/* For jobs.c: loading, scheduling, starting and stopping. */
Job *job_new(Jobs *jobs);
Job *job_free(Job *j);
int job_load_checkpoint(Job *j);
/* Sets the state (and its reason, NULL to clear), persists it (-errno if
 * that failed: the change stands in memory) and tells the observer. */
int job_set_state(Job *j, JobState s, const char *error);
/* Starts a runner with the job's slots; -errno. */
int job_start_runner(Job *j);
void job_stop_runner(Job *j);
/* An ended job whose on-end command is owed (JobStatus.ends is past
 * .notified) has it run; job_set_state() does this at each end. */
void job_notify(Job *j);
/* The command of that end ran: no longer owed, on disk too. */
void job_notified(Job *j, uint32_t end);
/* Workers this job would take if it started now. */
uint32_t job_slots_needed(const Job *j);
