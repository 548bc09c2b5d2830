/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "ipc.h"

/* A job's runner, "mplock-runner run" forked by its owner's agent
 * (agents.h): started, stopped and watched here, its messages decoded and
 * checked here and reported through RunnerEvents. Nothing here knows
 * jobs. */

typedef struct Agents Agents;
typedef struct RunnerProc RunnerProc;

typedef struct RunnerEvents {
        void (*ready)(void *userdata);
        /* A commit, well-formed; 0 if recorded, -EINVAL if the runner
         * broke the rules (it is then killed as a protocol offender), any
         * other -errno if it could not be recorded (it is killed; what it
         * sends afterwards is ignored). */
        int (*commit)(void *userdata, const IpcCommit *commit, const IpcRange *ranges);
        /* -EINVAL if done is a lie. */
        int (*done)(void *userdata);
        /* The runner's own failure report, or a protocol violation
         * (IPC_FAIL_PERMANENT), with a printable message. */
        void (*fail)(void *userdata, uint32_t kind, const char *message);
        void (*progress)(void *userdata, uint64_t processed, uint32_t workers);
        /* A Slurm job's shards, checked (printable ids, counts in bounds). */
        void (*shards)(void *userdata, const char *array, const IpcShard *v, uint32_t n);
        /* count results were taken from the --reuse job; -EINVAL if that
         * cannot be (more than the job's items). */
        int (*reused)(void *userdata, uint64_t count);
        /* Where the run's time went: an IpcStats of len bytes, of the
         * right form (stats_msg_check); -EINVAL if it does not fit the job. */
        int (*stats)(void *userdata, const void *payload, size_t len);
        /* The runner is gone (siginfo code and status) and so are all the
         * processes of its group; the RunnerProc may be freed now. */
        void (*exited)(void *userdata, int code, int status);
} RunnerEvents;

/* Starts "mplock-runner run" in the agent of uid with fds[0..2] (lock,
 * input snapshot, committed-items memfd) as its 4, 5, 6 and the start
 * message (JSON text) queued on its socket (3). warm_python: the Python
 * bridge, for a job of it (the agent warms Python up first), else NULL.
 * Events go to ev. */
int runner_proc_start(RunnerProc **ret, Agents *agents, uid_t uid, gid_t gid, const char *start, size_t start_len,
                      const int fds[3], const char *warm_python, const RunnerEvents *ev, void *userdata);
/* Asks it to stop (IPC_STOP_GRACEFUL or IPC_STOP_CANCEL); SIGKILL to its
 * group after kill_after_usec, or at once if it cannot be told. */
void runner_proc_stop(RunnerProc *p, uint32_t mode, uint64_t kill_after_usec);
/* A graceful stop for the owner's pause (IPC_STOP_FLAG_PAUSE). */
void runner_proc_pause(RunnerProc *p, uint64_t kill_after_usec);
bool runner_proc_stop_sent(const RunnerProc *p);
void runner_proc_kill(RunnerProc *p);
/* What it sends from now on is dropped unread. */
void runner_proc_ignore(RunnerProc *p);
pid_t runner_proc_pid(const RunnerProc *p);
/* The pid that sent IPC_READY (SO_PASSCRED: the kernel's word, not the
 * agent's), 0 before. */
pid_t runner_proc_ready_pid(const RunnerProc *p);
/* Tells a runner that waits (RunnerStart.wait_placed) to start its work. */
int runner_proc_placed(RunnerProc *p);
/* Kills its process group if it is still alive; no more events. */
RunnerProc *runner_proc_free(RunnerProc *p);
