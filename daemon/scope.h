/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

/* scope.c: each job's runner and workers as a transient systemd scope,
 * mplock-job-<id>.scope in mplock-u<uid>.slice (issue 14,
 * docs/systemd.md), through sd-bus to the service manager of our
 * instance (the system manager for the system instance, the user's for a
 * user instance). The scope gives the job real limits (MemoryMax,
 * CPUWeight, CPUQuota, TasksMax, IOWeight), a kill of everything in it
 * however it detached, and accounting from its cgroup.
 *
 * No manager (started by hand, no session), or disabled: scopes_new
 * returns NULL and every job keeps its process group and rlimits. */

typedef struct Scopes Scopes;

typedef struct ScopeLimits {
        uint64_t memory_max; /* bytes; 0: none */
        uint64_t tasks_max;  /* 0: none */
        uint32_t cpu_weight; /* 1-10000; 0: systemd's default */
        uint32_t cpu_quota;  /* percent of one CPU; 0: none */
        uint32_t io_weight;  /* 1-10000; 0: default */
} ScopeLimits;

typedef struct ScopeUsage {
        bool cpu, memory, io; /* which of these the cgroup accounts */
        uint64_t cpu_usec;
        uint64_t memory_current, memory_peak;
        uint64_t oom_kills; /* processes the kernel killed for the job's MemoryMax */
        uint64_t io_read_bytes, io_write_bytes;
} ScopeUsage;

/* Called once: 0 when pid is in the scope (cgroup set: its path), or
 * -errno when it could not be put there (the job runs unscoped). */
typedef void (*ScopePlaced)(int error, const char *cgroup, void *userdata);

/* NULL with 0 when there is no manager to talk to: not an error. */
int scopes_new(Scopes **ret, sd_event *event, bool user_instance, uint32_t user_cpu_weight);
Scopes *scopes_free(Scopes *s);

typedef struct ScopeRequest ScopeRequest;

/* Moves pid (held by pidfd, which must stay open until placed is called:
 * that the process is alive at the end proves that the pid named it all
 * along) into a new scope for job id of uid. */
int scope_place(Scopes *s, uint64_t job, uid_t uid, pid_t pid, int pidfd, const ScopeLimits *limits, ScopePlaced placed,
                void *userdata, ScopeRequest **ret);
/* Forgets a request in flight: placed is not called. */
ScopeRequest *scope_request_free(ScopeRequest *r);

/* SIGKILL to every process of the job's scope (through the manager:
 * what detached with setsid or double fork included). Asynchronous;
 * a scope that is gone already is no error. */
void scope_kill(Scopes *s, uint64_t job);

/* The job's use so far, read from its cgroup (files of the kernel). */
int scope_usage(const char *cgroup, ScopeUsage *ret);

/* The cgroup controllers in force for it ("cpu memory pids"), space
 * separated; "" when the kernel applies none (limits are then not held). */
int scope_controllers(const char *cgroup, char *buf, size_t len);

/* For tests: the cgroup file system's mount point (/sys/fs/cgroup). */
void scope_set_cgroup_fs(const char *path);

/* "mplock-job-7.scope" */
int scope_unit_name(uint64_t job, char *buf, size_t len);
