/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

/* The agents: one warm "mplock-runner agent" per user with work, exec'd
 * once as that user, which forks the user's checks and runners when told
 * (runner/agent.h). Starting a task then costs a fork in the user's
 * process instead of an exec of ours. Everything an agent says is the
 * user's word: it can only lie about its own user's tasks, and an agent
 * that breaks the protocol, or does not kill a task when told, is killed
 * (it is our child) with all its tasks. */

typedef struct Agents Agents;
typedef struct AgentTask AgentTask;

/* code and status as in siginfo: CLD_EXITED and the exit status, or
 * CLD_KILLED and the signal. Called once; the task may be freed then. */
typedef void (*AgentTaskExited)(AgentTask *t, int code, int status, void *userdata);

typedef struct AgentsConfig {
        const char *runner_path;
        uint64_t nproc;          /* RLIMIT_NPROC of a user's processes; 0: none */
        uint64_t idle_usec;      /* an agent without tasks exits after this */
        uint64_t kill_wait_usec; /* a task killed must be gone by then */
} AgentsConfig;

int agents_new(Agents **ret, sd_event *event, const AgentsConfig *config);
Agents *agents_free(Agents *a);
sd_event *agents_event(const Agents *a);

/* Starts mode (AGENT_MODE_*) with args in uid's agent (started if need
 * be), the descriptors becoming its 3, 4, ... ; they stay the caller's. */
int agents_spawn(Agents *a, uid_t uid, gid_t gid, uint32_t mode, const char *const *args, size_t n_args,
                 const int *fds, size_t n_fds, AgentTaskExited exited, void *userdata, AgentTask **ret);
/* SIGKILL to the task's process group. */
void agent_task_kill(AgentTask *t);
/* Forgets the task, killing it if it has not ended: no more events. */
AgentTask *agent_task_free(AgentTask *t);
/* Its pid in the agent's word (0 until known). */
pid_t agent_task_pid(const AgentTask *t);
