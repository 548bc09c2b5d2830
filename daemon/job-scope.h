/* SPDX-License-Identifier: MIT */
#pragma once

#include "job.h"
#include "scope.h"

/* job-scope.c: a job's runs in systemd scopes (scope.h): placed when the
 * runner is ready, killed whole when it ends, accounted in between. */

/* The runner said READY: into a scope, then it may start its work (at
 * once when there is no manager, or the move failed). */
void job_scope_place(Job *j);
/* The runner is gone: what is left of the scope is killed (however it
 * detached), and its use is added to the job's. */
bool job_scope_end(Job *j); /* true: the job's use changed */
/* Reads the scope's use now (the job is done: before the runner exits). */
void job_scope_sample(Job *j);
void job_scope_free(Job *j);

/* The job's use over all its runs: false when nothing accounts for it. */
bool job_usage(const Job *j, ScopeUsage *ret);
/* "scope" or "process-group": what holds the running job. */
const char *job_isolation(const Job *j);
