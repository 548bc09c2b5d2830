/* SPDX-License-Identifier: MIT */
#include "job-scope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jobs.h"
#include "log.h"
#include "macro.h"
#include "runner-proc.h"

/* What the job keeps of its scope: its cgroup, and room for its use. */
static int keep_cgroup(Job *j, const char *cgroup) {
        j->cgroup = strdup(cgroup);
        j->run_usage = j->cgroup ? calloc(1, sizeof(JobRunUsage)) : NULL;
        if (!j->run_usage) {
                j->cgroup = mfree(j->cgroup);
                return -ENOMEM;
        }
        return 0;
}

static void placed(int error, const char *cgroup, void *userdata) {
        Job *j = userdata;
        int r;

        j->scope_req = NULL;
        j->scope_pidfd = safe_close(j->scope_pidfd);
        if (error < 0)
                log_job(LOG_WARNING, j->spec.id, "Runs without its scope (%s): process group and rlimits only.",
                        strerror(-error));
        else if ((r = keep_cgroup(j, cgroup)) < 0)
                /* The run is in the scope, but the job does not know it:
                 * it is accounted and killed as if it were not. */
                log_job_errno(LOG_WARNING, r, j->spec.id,
                              "In mplock-job-%llu.scope (%s), but cannot keep track of it: %m; "
                              "no usage, and killed by process group only.",
                              (unsigned long long) j->spec.id, cgroup);
        else
                log_job(LOG_INFO, j->spec.id, "In mplock-job-%llu.scope (%s).", (unsigned long long) j->spec.id,
                        cgroup);
        if (j->runner)
                (void) runner_proc_placed(j->runner);
}

void job_scope_place(Job *j) {
        ScopeLimits l = {.memory_max = j->spec.memory_max,
                         .tasks_max = j->spec.tasks_max,
                         .cpu_weight = j->spec.cpu_weight,
                         .cpu_quota = j->spec.cpu_quota,
                         .io_weight = j->spec.io_weight};
        pid_t pid = runner_proc_ready_pid(j->runner);
        int r;

        if (!j->jobs->scopes)
                return; /* the runner did not wait */
        if (pid <= 0) {
                placed(-ESRCH, NULL, j);
                return;
        }
        /* Held until the manager has moved it: alive then, the pid was
         * this process all along. */
        j->scope_pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (j->scope_pidfd < 0) {
                placed(-errno, NULL, j);
                return;
        }
        r = scope_place(j->jobs->scopes, j->spec.id, j->spec.uid, pid, j->scope_pidfd, &l, placed, j, &j->scope_req);
        if (r < 0)
                placed(r, NULL, j);
}

static uint64_t loop_now(const Job *j) {
        uint64_t now = 0;

        (void) sd_event_now(j->jobs->event, CLOCK_MONOTONIC, &now);
        return now;
}

/* Each controller's reading replaces the last one only when it was read:
 * the cgroup of a scope whose processes are gone may be removed any
 * moment, also between two of its files (a reading of cpu.stat alone
 * must not wipe the memory use read before). Counters only grow. r is
 * the job's, not const: a const Job's cache is still refreshed. */
static void read_usage(const Job *j, JobRunUsage *r) {
        ScopeUsage u, *last = &r->usage;

        (void) scope_usage(j->cgroup, &u);
        if (u.cpu) {
                last->cpu = true;
                last->cpu_usec = MAX(last->cpu_usec, u.cpu_usec);
        }
        if (u.memory) {
                last->memory = true;
                last->memory_current = u.memory_current;
                /* Without memory.peak (before Linux 5.19), the most seen. */
                last->memory_peak = MAX(last->memory_peak, MAX(u.memory_peak, u.memory_current));
                last->oom_kills = MAX(last->oom_kills, u.oom_kills);
        }
        if (u.io) {
                last->io = true;
                last->io_read_bytes = MAX(last->io_read_bytes, u.io_read_bytes);
                last->io_write_bytes = MAX(last->io_write_bytes, u.io_write_bytes);
        }
        /* A failed read is not tried again at once either. */
        r->read_usec = loop_now(j) ?: 1;
}

static void sample(Job *j) {
        if (j->cgroup)
                read_usage(j, j->run_usage);
}

void job_scope_sample(Job *j) {
        sample(j);
}

void job_scope_refresh(Job *j) {
        ScopeUsage ignored;

        (void) job_usage(j, &ignored);
}

bool job_scope_end(Job *j) {
        ScopeUsage *u = j->run_usage ? &j->run_usage->usage : NULL;

        j->scope_req = scope_request_free(j->scope_req);
        j->scope_pidfd = safe_close(j->scope_pidfd);
        if (!j->cgroup)
                return false;
        /* The last reading: the cgroup may be gone already (then the one
         * taken at DONE, or at the last status, stands). */
        sample(j);
        scope_kill(j->jobs->scopes, j->spec.id);
        if (u->oom_kills > 0)
                log_job(LOG_WARNING, j->spec.id,
                        "The kernel killed %llu processes of this run for the job's memory (--memory-max %llu): "
                        "each was an attempt of its item.",
                        (unsigned long long) u->oom_kills, (unsigned long long) j->spec.memory_max);
        j->status.cpu_usec += u->cpu_usec;
        j->status.memory_peak = MAX(j->status.memory_peak, u->memory_peak);
        j->status.io_read_bytes += u->io_read_bytes;
        j->status.io_write_bytes += u->io_write_bytes;
        j->status.oom_kills += u->oom_kills;
        j->cgroup = mfree(j->cgroup);
        j->run_usage = mfree(j->run_usage);
        return true;
}

void job_scope_free(Job *j) {
        j->scope_req = scope_request_free(j->scope_req);
        j->scope_pidfd = safe_close(j->scope_pidfd);
        j->cgroup = mfree(j->cgroup);
        j->run_usage = mfree(j->run_usage);
}

/* The running scope's use, read again once the last reading is older
 * than JOB_USAGE_MAX_AGE_USEC (a List over many jobs reads each at most
 * once a second). */
static ScopeUsage running_usage(const Job *j) {
        JobRunUsage *r = j->run_usage;

        if (!j->cgroup || !r)
                return (ScopeUsage){};
        if (r->read_usec == 0 || loop_now(j) - r->read_usec >= JOB_USAGE_MAX_AGE_USEC)
                read_usage(j, r);
        return r->usage;
}

bool job_usage(const Job *j, ScopeUsage *ret) {
        ScopeUsage now = running_usage(j);

        *ret = (ScopeUsage){
                .cpu = now.cpu || j->status.cpu_usec > 0,
                .memory = now.memory || j->status.memory_peak > 0,
                .io = now.io || j->status.io_read_bytes + j->status.io_write_bytes > 0,
                .cpu_usec = j->status.cpu_usec + now.cpu_usec,
                .memory_current = now.memory_current,
                .memory_peak = MAX(j->status.memory_peak, now.memory_peak),
                .io_read_bytes = j->status.io_read_bytes + now.io_read_bytes,
                .io_write_bytes = j->status.io_write_bytes + now.io_write_bytes,
                .oom_kills = j->status.oom_kills + now.oom_kills,
        };
        return ret->cpu || ret->memory || ret->io;
}

const char *job_isolation(const Job *j) {
        return j->cgroup ? "scope" : "process-group";
}
