/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>
#include <stdio.h>

/* mplockd's limits and knobs: one table (config.c) for the command line
 * (--max-workers 8) and the config file (max-workers = 8). Times are kept
 * in microseconds; each setting's unit at the edge is in its help text. */
typedef struct Settings {
        uint32_t max_workers;        /* global cap on worker processes */
        uint32_t max_workers_per_job;
        uint32_t max_jobs;           /* jobs kept (all states) */
        uint32_t max_active_jobs;    /* queued + running */
        uint32_t max_connections;
        uint32_t max_connections_per_uid;
        uint64_t max_message;        /* one Varlink message, bytes */
        uint64_t max_queued_output;  /* replies not yet read, over all connections */
        uint64_t max_shared;         /* shared data JSON, bytes */
        uint64_t max_items;          /* per job */
        uint64_t max_input_bytes;    /* per job */
        uint32_t max_batch_size;
        uint32_t max_save_batch;
        uint64_t commit_interval_usec; /* runner group commit */
        uint32_t commit_items;
        uint32_t max_attempts;       /* default per item: failures and worker deaths */
        uint64_t retry_delay_usec;   /* first backoff before another attempt */
        uint64_t fault_resume_usec;  /* a job paused by a fault tries again after this, doubling; 0: never */
        uint64_t item_timeout_usec;  /* default for jobs; 0: none */
        uint64_t callback_timeout_usec; /* init, save_init, save, save_fini; 0: none */
        uint64_t memory_max;         /* default per-worker data limit; 0: none */
        uint64_t stop_timeout_usec;  /* graceful stop before SIGKILL */
        uint64_t check_timeout_usec; /* submission checks */
        uint32_t admin_gid;          /* UINT32_MAX: no admin group */
        uint32_t max_active_jobs_per_uid;
        uint32_t max_workers_per_uid;
        uint64_t max_input_per_uid;  /* bytes of input of a user's active jobs */
        uint32_t max_processes_per_uid; /* RLIMIT_NPROC of what runs as a user */
        uint64_t idle_timeout_usec;  /* a connection without a call */
        uint64_t message_timeout_usec; /* a message arriving piecemeal */
        /* Scopes (issue 14): used when a manager answers, unless 0. */
        uint32_t job_scopes;
        uint32_t user_cpu_weight;     /* of each user's slice */
        uint64_t max_memory_per_job;  /* largest --memory-max; 0: no bound */
        uint64_t max_tasks_per_job;   /* largest --tasks-max; 0: no bound */
        uint32_t max_cpu_quota;       /* largest --cpu-quota, percent; 0: no bound */
        /* On-end commands (submit --on-end): each for at most this long,
         * this many of one user's at once. */
        uint64_t on_end_timeout_usec;
        uint32_t max_on_end_per_uid;
} Settings;

void settings_defaults(Settings *s);
/* -ENOENT for an unknown name, -ESRCH for an unknown group, -EINVAL/-ERANGE
 * for a bad value; marks the setting in *mask (if given). */
int settings_set(Settings *s, const char *name, const char *value, uint64_t *mask);
size_t settings_count(void);
const char *settings_name(size_t i);
void settings_help(FILE *f);
/* Applies "name = value" lines of path over *s, except what cmdline_mask
 * marks; all or nothing (-errno, logged). A missing file is no error. */
int settings_load_file(Settings *s, const char *path, uint64_t cmdline_mask);
