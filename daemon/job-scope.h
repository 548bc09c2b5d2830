/* SPDX-License-Identifier: MIT */
#pragma once

#include "job.h"
#include "scope.h"

/* job-scope.c: a job's runs in systemd scopes (scope.h): placed when the
 * runner is ready, killed whole when it ends, accounted in between. */

/* The running scope's use as last read from its cgroup, and when: Status
 * and List answer from it for a second rather than read every running
 * job's cgroup files on every call. */
typedef struct JobRunUsage {
        ScopeUsage usage;
        uint64_t read_usec; /* CLOCK_MONOTONIC of the event loop; 0: not yet */
} JobRunUsage;

/* The runner said READY: into a scope, then it may start its work (at
 * once when there is no manager, or the move failed). */
void job_scope_place(Job *j);
/* The runner is gone: what is left of the scope is killed (however it
 * detached), and its use is added to the job's. */
bool job_scope_end(Job *j); /* true: the job's use changed */
/* Reads the scope's use now (the job is done: before the runner exits). */
void job_scope_sample(Job *j);
/* Reads it if the last reading is older than JOB_USAGE_MAX_AGE_USEC: as
 * the job goes, so that its use does not hang on the last reading alone,
 * taken as the scope may be going away. */
void job_scope_refresh(Job *j);
void job_scope_free(Job *j);

/* The job's use over all its runs, the running one's at most
 * JOB_USAGE_MAX_AGE_USEC old: false when nothing accounts for it. */
#define JOB_USAGE_MAX_AGE_USEC 1000000u
bool job_usage(const Job *j, ScopeUsage *ret);
/* "scope" or "process-group": what holds the running job. */
const char *job_isolation(const Job *j);
