/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "schema.h"

/* A job as mplockd keeps it and its runner receives it. Each struct has one
 * table (jobspec.c) that writes and reads it everywhere: job.json,
 * state.json, the runner's start message, the Job of the Varlink interface.
 * Adding an option is one field here and one row there. */

typedef enum JobSeparator {
        JOB_SEPARATOR_NEWLINE,
        JOB_SEPARATOR_NUL,
        _JOB_SEPARATOR_MAX,
} JobSeparator;

typedef enum JobState {
        JOB_QUEUED,
        JOB_RUNNING,
        JOB_PAUSED,                  /* by its owner, or by a storage fault */
        JOB_COMPLETED,
        JOB_COMPLETED_WITH_FAILURES, /* every item has a record, some are errors */
        JOB_FAILED,
        JOB_CANCELLED,
        _JOB_STATE_MAX,
        _JOB_STATE_INVALID = -1,
} JobState;

static inline bool job_state_is_final(JobState s) {
        return s == JOB_COMPLETED || s == JOB_COMPLETED_WITH_FAILURES || s == JOB_FAILED || s == JOB_CANCELLED;
}
const char *job_state_to_string(JobState s);

/* What a client asked for, and what the submission found; never changes
 * once the job exists. */
typedef struct JobSpec {
        uint64_t id;
        char *name;
        char *module;      /* absolute */
        char *input;       /* as given: absolute path, or "(inline)" */
        char *output;      /* absolute directory */
        char *shared_json; /* compact JSON object text */
        uint32_t workers;
        uint32_t batch_size;
        uint32_t save_batch;
        uint64_t timeout_usec;  /* per call of process; 0: none */
        uint32_t max_attempts;  /* per item */
        char *halt;             /* --halt-on-failure as given ("10", "5%"), or NULL */
        uint64_t halt_failures; /* stop once this many items failed; 0: never */
        uint64_t memory_max;    /* bytes: the job's scope (MemoryMax), and per worker (RLIMIT_DATA); 0: none */
        /* The job's scope (issue 14): 0 is systemd's default, or none. */
        uint64_t tasks_max;
        uint32_t cpu_weight, cpu_quota, io_weight; /* quota: percent of one CPU */
        /* Worker recycling: a worker past either is replaced (init again); 0: never. */
        uint64_t max_items_per_worker, max_worker_memory;
        int separator;          /* JobSeparator, of the input file */
        uint64_t n_items;
        uint64_t input_bytes; /* snapshot size */
        uint32_t input_crc;   /* snapshot fingerprint */
        uint32_t uid;
        uint32_t gid;
        uint64_t created_usec; /* CLOCK_REALTIME */
        uint32_t umask;        /* the submitter's, for what the job creates */
        char *module_stamp;    /* the module file as checked at submission (check-cache.h), or NULL */
        /* Run as a Slurm job array (docs/slurm.md): 1, and its shards (0:
         * the coordinator picks), partition and sbatch options (words, each
         * "--name" or "--name=value"), or NULL. */
        uint32_t slurm, shards;
        char *partition, *slurm_options;
        /* A shell command run as the owner each time the job ends
         * (daemon/notifier.c), or NULL. */
        char *on_end;
        /* --reuse (docs/architecture.md): an ended job of the same owner,
         * module and shared data whose successful results are taken for
         * the items of equal text; 0: none. Its results file's directory,
         * committed length, generation and items, and its module stamp, as
         * they were at submission: the runner checks them before it copies
         * anything. */
        uint64_t reuse_job;
        char *reuse_output;
        uint64_t reuse_len, reuse_items;
        uint32_t reuse_gen;
        char *reuse_stamp;
} JobSpec;

/* Where a job stands, as state.json keeps it. */
typedef struct JobStatus {
        int state; /* JobState */
        char *error; /* why it failed or was paused by a fault */
        uint64_t started_usec, finished_usec; /* CLOCK_REALTIME, 0: not yet */
        /* Counters survive while the checkpoint is not loaded (ended jobs). */
        uint64_t done, failed, results_len;
        /* Retries: results generation (0, then one more per retry) and the
         * committed length of the previous generation's results file,
         * whose successful records the new generation starts from. */
        uint32_t results_gen;
        uint64_t prev_results_len;
        /* A retry of some failed items only (retrysel.h): their codes and
         * index ranges as canonical text, NULL: every failed item. */
        char *retry_codes, *retry_items;
        /* What the runs that ended used, from their scopes' cgroups (the
         * peak: the highest of them); the running one's adds to it. */
        uint64_t cpu_usec, memory_peak, io_read_bytes, io_write_bytes, oom_kills;
        /* A job with an on-end command: how many times it has ended, and
         * the last end whose command has run. While they differ, the
         * command is owed: it runs (again) at the next start. */
        uint32_t ends, notified;
        /* Results taken from the --reuse job instead of running. */
        uint64_t reused;
} JobStatus;

/* What a runner is told beside the spec: how far the job is, and the
 * daemon's settings for this run. */
typedef struct RunnerStart {
        uint32_t workers; /* granted for this run: at most the spec's */
        uint64_t results_len, done, failed;
        uint32_t results_gen;
        uint64_t prev_results_len;
        char *retry_codes, *retry_items; /* as JobStatus's */
        uint64_t commit_interval_usec;
        uint32_t commit_items;
        uint64_t retry_delay_usec;
        uint64_t callback_timeout_usec; /* init and the save callbacks; 0: none */
        /* 1 unless this is the first run of the job since it was submitted:
         * then items may have been given to save before (mplock_batch). */
        uint32_t resumed;
        /* 1: start no process (workers, save_init's code) before
         * IPC_PLACED: mplockd is moving us into the job's scope. */
        uint32_t wait_placed;
} RunnerStart;

extern const Schema job_spec_schema;
extern const Schema job_status_schema;
extern const Schema runner_start_schema;

/* The runner's start message: the spec's SCHEMA_RUNNER fields and the
 * RunnerStart, in one JSON object. to_json: malloc'ed text, NULL on ENOMEM.
 * from_json: -EINVAL (*err says which field) for anything else than
 * exactly those fields, each in bounds. */
char *runner_start_to_json(const JobSpec *spec, const RunnerStart *st, size_t *ret_len);
int runner_start_from_json(json_object *o, JobSpec *spec, RunnerStart *st, JsonError *err);

/* Free the strings (and zero them). */
void job_spec_done(JobSpec *spec);
void job_status_done(JobStatus *st);

/* Limits that hold wherever a spec comes from. */
#define JOB_TIMEOUT_MAX_SEC 604800u /* a week */
/* Items of one job, and so a halt count, at most (job.json's bound). */
#define JOB_ITEMS_MAX (UINT64_C(1) << 40)
#define JOB_ATTEMPTS_MAX 1000u
#define JOB_TASKS_MAX 4194304u   /* the kernel's pid_max at most */
#define JOB_CPU_QUOTA_MAX 102400u /* percent: 1024 CPUs */
#define JOB_NAME_MAX 128u
#define JOB_SHARDS_MAX 1024u
#define JOB_SLURM_OPTIONS_MAX 1024u /* bytes */
#define JOB_PARTITION_MAX 64u
#define JOB_ON_END_MAX 4096u /* bytes of an on-end command */
/* A job submitted without one (or stored before it was kept). */
#define JOB_UMASK_DEFAULT 022u
