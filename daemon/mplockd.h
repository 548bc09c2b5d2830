/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "checkpoint.h"
#include "json-util.h"
#include "varlink.h"

typedef struct Manager Manager;
typedef struct Job Job;
typedef struct Connection Connection;
typedef struct Submission Submission;

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

/* Limits and knobs; defaults in main.c, all settable by flags. */
typedef struct Settings {
        uint32_t max_workers;        /* global cap on worker processes */
        uint32_t max_workers_per_job;
        uint32_t max_jobs;           /* jobs kept (all states) */
        uint32_t max_active_jobs;    /* queued + running */
        uint32_t max_connections;
        uint32_t max_connections_per_uid;
        size_t max_message;          /* one Varlink message, bytes */
        size_t max_shared;           /* shared data JSON, bytes */
        uint64_t max_items;          /* per job */
        uint64_t max_input_bytes;    /* per job */
        uint32_t max_batch_size;
        uint32_t max_save_batch;
        uint32_t commit_interval_ms; /* runner group commit */
        uint32_t commit_items;
        uint32_t max_attempts;       /* default per item: failures and worker deaths */
        uint32_t retry_delay_ms;     /* first backoff before another attempt */
        uint32_t item_timeout_sec;   /* default for jobs; 0: none */
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
} Settings;

/* config.c: one table for flags and the config file. */
void settings_defaults(Settings *s);
/* -ENOENT for an unknown name, -EINVAL/-ERANGE for a bad value; marks the
 * setting in *mask (if given). */
int settings_set(Settings *s, const char *name, const char *value, uint64_t *mask);
size_t settings_count(void);
const char *settings_name(size_t i);
void settings_help(FILE *f);
/* Applies "name = value" lines of path over *s, except what cmdline_mask
 * marks; all or nothing. A missing file is no error. */
int settings_load_file(Settings *s, const char *path, uint64_t cmdline_mask);

/* What a client asked for; immutable once the job exists (job.json). */
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
        uint32_t timeout_sec;  /* per call of process; 0: none */
        uint32_t max_attempts; /* per item */
        char *halt;            /* --halt-on-failure as given ("10", "5%"), or NULL */
        uint64_t halt_failures; /* stop once this many items failed; 0: never */
        uint64_t memory_max;   /* bytes of data per worker (RLIMIT_DATA); 0: none */
        bool nul_separated;
        uint64_t n_items;
        uint64_t input_bytes;  /* snapshot size */
        uint32_t input_crc;    /* snapshot fingerprint */
        uid_t uid;
        gid_t gid;
        uint64_t created_usec; /* CLOCK_REALTIME */
} JobSpec;

struct Job {
        Manager *manager;
        JobSpec spec;
        JobState state;
        char *error;
        uint64_t started_usec, finished_usec;
        int dirfd;

        /* Counters survive while the bitmap is unloaded (final jobs). */
        uint64_t done, failed, results_len;
        uint64_t processed; /* done, or more: finished but not yet committed */
        /* Retries: results generation (0, then one more per retry) and the
         * committed length of the previous generation's results file,
         * whose successful records the new generation starts from. */
        uint32_t results_gen;
        uint64_t prev_results_len;
        Checkpoint ckpt;
        bool ckpt_loaded;

        /* Runner. */
        pid_t runner_pid;
        int runner_fd;
        sd_event_source *runner_io;
        sd_event_source *runner_child;
        sd_event_source *kill_timer;  /* SIGKILL after a stop timeout */
        sd_event_source *retry_timer; /* restart after a runner crash */
        uint32_t slots;               /* workers held from the global cap */
        uint32_t live_workers;
        bool runner_ready, runner_done, stop_sent, cancel_requested, pause_requested;
        bool runner_ignored; /* after a failed checkpoint write: its messages no longer count */
        char *pause_reason; /* a storage fault, shown while paused */
        char *halt_reason;  /* set once --halt-on-failure is reached */
        uint32_t crashes;             /* runner deaths without progress */
        uint64_t done_at_start;
        char *runner_error;           /* from an IPC_FAIL message */
        uint32_t runner_error_kind;

        /* Rate, for status: items per second over recent commits. */
        uint64_t rate_done, rate_usec;
        double rate;

        /* Connections waiting for this job to finish (Wait, Cancel). */
        Connection *waiters;
};

struct Manager {
        sd_event *event;
        Settings settings;     /* in force */
        Settings cmdline;      /* defaults and the command line */
        uint64_t cmdline_mask; /* which settings the command line set */
        char *config_path;
        char *state_dir;
        int state_fd; /* state dir */
        int jobs_fd;  /* state_dir/jobs */
        char *socket_path;
        char *runner_path;
        bool socket_activated;
        bool system_instance;

        int listen_fd;
        sd_event_source *listen_source;
        Connection *connections;
        uint32_t n_connections;

        Job **jobs; /* sorted by id */
        size_t n_jobs, jobs_cap;
        uint64_t next_id;
        uint32_t workers_in_use;

        Submission *submissions;
        uint32_t n_submissions;

        sd_event_source *status_timer;
        bool in_schedule, reschedule;
        bool stopping;
};

/* control.c: the Varlink socket and its connections. */
struct Connection {
        Manager *manager;
        Connection *prev, *next;
        int fd;
        uid_t uid;
        gid_t gid;
        pid_t pid;
        bool admin; /* root, or in the admin group: sees every job */
        uint64_t last_activity_usec, partial_since_usec;
        sd_event_source *io;
        sd_event_source *defer;
        VarlinkBuf in;
        char *out;
        size_t out_len, out_sent, out_cap;
        /* The call being answered; more calls wait in `in` until it ends. */
        VarlinkCall call;
        bool busy, more, oneway;
        bool eof;     /* the client will send no more */
        bool closing; /* flush output, then close */
        /* Waiting for a job to end (Wait, Cancel) or to pause (Pause). */
        Job *wait_job;
        Connection *wait_next;
        bool wait_is_cancel, wait_for_pause;
        Submission *submission;
};

int control_listen(Manager *m);
void control_sweep(Manager *m);
void control_close_all(Manager *m);
/* Replies to the connection's current call and moves on to the next. */
void connection_reply(Connection *c, json_object *params);
void connection_reply_continues(Connection *c, json_object *params);
void connection_error(Connection *c, const char *error, json_object *params);
void connection_error_param(Connection *c, const char *field, const char *reason);

/* manager.c: Varlink method handlers. */
void manager_dispatch_call(Connection *c);
json_object *job_to_json(Job *j);
void manager_notify_status(Manager *m);

/* job.c: job table, state machine, scheduling. */
Job *job_new(Manager *m);
void job_free(Job *j);
int manager_add_job(Manager *m, Job *j);
void manager_remove_job(Manager *m, Job *j);
Job *manager_find_job(Manager *m, uint64_t id);
const char *job_state_to_string(JobState s);
JobState job_state_from_string(const char *s);
static inline bool job_state_is_final(JobState s) {
        return s == JOB_COMPLETED || s == JOB_COMPLETED_WITH_FAILURES || s == JOB_FAILED || s == JOB_CANCELLED;
}
int job_set_state(Job *j, JobState s, const char *error);
void manager_schedule(Manager *m);
void job_cancel(Job *j);
void job_pause(Job *j, const char *reason);
void job_resume(Job *j);
int job_retry(Job *j);
void job_add_waiter(Job *j, Connection *c, bool is_cancel);
void job_remove_waiter(Job *j, Connection *c);
int job_load_checkpoint(Job *j);
void job_unload_checkpoint(Job *j);
void job_runner_exited(Job *j, int code, int status);
bool manager_all_runners_gone(Manager *m);
void manager_stop_all(Manager *m);

/* store.c: the state directory and each job's files. */
int store_open(Manager *m);
int store_load_jobs(Manager *m);
int store_write_spec(int dirfd, const JobSpec *spec);
int store_write_state(Job *j);
int store_write_next_id(Manager *m);
int store_remove_job(Manager *m, uint64_t id);
void job_spec_done(JobSpec *s);

/* submit.c: Submit, from request to durable job. */
void submit_start(Connection *c);
/* What a Submit call may carry; the fuzzer validates with the same table. */
extern const JsonField submit_fields[];
extern const size_t submit_n_fields;
void submission_abort(Submission *s);
void submit_abort_all(Manager *m);

/* spawn.c: starting and watching runners. */
int spawn_runner(Job *j);
void runner_stop(Job *j, uint32_t mode);
void runner_detach(Job *j);
/* Opens a file of a job's owner as that owner: fd or -errno. */
int open_as_owner(const char *path, int flags, uid_t uid, gid_t gid);
/* Runs the helper for checks as the owner: pid, or -errno. */
int spawn_helper(Manager *m, char **argv, const int *fds, size_t n_fds, uid_t uid, gid_t gid);

uint64_t now_usec(clockid_t clock);

/* Storage trouble (a full disk, an I/O error) that should pause a job, as
 * opposed to damage or a bug that fails it. */
static inline bool error_is_storage(int r) {
        r = r < 0 ? -r : r;
        return r == ENOSPC || r == EDQUOT || r == EIO || r == EROFS || r == EFBIG;
}
