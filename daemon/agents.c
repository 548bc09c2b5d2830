/* SPDX-License-Identifier: MIT */
#include "agents.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-env.h"
#include "identity.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "fork.h"

/* An agent answers a whole burst of tasks; more is a protocol violation. */
#define AGENT_MESSAGES_PER_WAKEUP 64

typedef struct Agent Agent;

struct AgentTask {
        Agent *agent; /* NULL once the agent is gone (then it is over) */
        AgentTask *prev, *next;
        uint64_t tag;
        pid_t pid;
        bool exited;
        sd_event_source *kill_deadline;
        AgentTaskExited exited_cb;
        void *userdata;
};

struct Agent {
        Agents *agents;
        Agent *prev, *next;
        uid_t uid;
        gid_t gid;
        pid_t pid;
        int fd;
        sd_event_source *io, *child, *idle_timer;
        AgentTask *tasks;
        size_t n_tasks;
};

struct Agents {
        sd_event *event;
        AgentsConfig config;
        Agent *list;
        uint64_t next_tag;
};

static uint8_t buf[IPC_MSG_MAX] __attribute__((aligned(8)));

/* "mplock-runner ARGV..." as identity, with fds at 3, 4, ... */
static pid_t runner_exec(const char *path, const Identity *identity, uint64_t nproc, char **argv, char **envp,
                         const int *fds, size_t n_fds) {
        ForkOptions o = {
                .flags = FORK_RESET_SIGNALS | FORK_NEW_SESSION | FORK_DEATHSIG | FORK_CLOSE_FDS | FORK_NULL_STDIN |
                         FORK_NO_NEW_PRIVS,
                .fds = fds,
                .n_fds = n_fds,
                .stdout_fd = -1,
                .stderr_fd = -1, /* ours: the journal under systemd */
                .identity = identity,
                .rlimit_nproc = identity->drop ? nproc : 0,
        };
        pid_t pid = fork_sandboxed(&o);

        if (pid == 0)
                fork_execve(path, argv, envp);
        return pid;
}

static int reap_handler(sd_event_source *s, const siginfo_t *si, void *userdata) {
        (void) si;
        (void) userdata;
        /* Ours first: set_floating(false) drops the loop's reference, and
         * with no other one s would be disconnected here, on which
         * sd_event_source_disable_unref() aborts (assert in sd-event 252). */
        sd_event_source_ref(s);
        (void) sd_event_source_set_floating(s, false);
        sd_event_source_disable_unref(s);
        return 0;
}

/* SIGKILLs pid (a child of ours, not yet reaped) and reaps it from the
 * event loop, so that nothing waits for it here. */
static void kill_and_reap(sd_event *event, pid_t pid) {
        sd_event_source *s = NULL;

        (void) kill(pid, SIGKILL);
        if (sd_event_add_child(event, &s, pid, WEXITED, reap_handler, NULL) < 0) {
                /* Cannot watch it: reaping it now, after SIGKILL, is the
                 * lesser evil to a zombie for ever. */
                (void) waitpid(pid, NULL, 0);
                return;
        }
        (void) sd_event_source_set_description(s, "reap");
        (void) sd_event_source_set_floating(s, true);
        sd_event_source_unref(s);
}


int agents_new(Agents **ret, sd_event *event, const AgentsConfig *config) {
        Agents *a = calloc(1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        *a = (Agents){ .event = event, .config = *config, .next_tag = 1 };
        *ret = a;
        return 0;
}

sd_event *agents_event(const Agents *a) {
        return a->event;
}

pid_t agent_task_pid(const AgentTask *t) {
        return t->pid;
}

static void task_unlink(AgentTask *t) {
        Agent *ag = t->agent;

        if (!ag)
                return;
        if (t->prev)
                t->prev->next = t->next;
        else
                ag->tasks = t->next;
        if (t->next)
                t->next->prev = t->prev;
        ag->n_tasks--;
        t->agent = NULL;
        t->prev = t->next = NULL;
}

static void agent_arm_idle(Agent *ag);

/* The task is over (really, or because its agent is gone): tell its owner. */
static void task_over(AgentTask *t, int code, int status) {
        Agent *ag = t->agent;

        task_unlink(t);
        t->exited = true;
        t->kill_deadline = sd_event_source_disable_unref(t->kill_deadline);
        if (ag)
                agent_arm_idle(ag);
        if (t->exited_cb)
                t->exited_cb(t, code, status, t->userdata);
}

/* Kills the agent (our own child: its pid cannot have been reused before
 * we reap it) and ends all its tasks. */
static void agent_kill(Agent *ag, const char *why) {
        if (why)
                log_warning("Agent of uid %u (pid %d) %s; killing it.", (unsigned) ag->uid, (int) ag->pid, why);
        if (ag->pid > 0)
                (void) kill(ag->pid, SIGKILL);
        ag->io = sd_event_source_disable_unref(ag->io);
        ag->fd = safe_close(ag->fd);
        while (ag->tasks)
                task_over(ag->tasks, CLD_KILLED, SIGKILL);
}

static void agent_free(Agent *ag) {
        Agents *a = ag->agents;

        agent_kill(ag, NULL);
        if (ag->prev)
                ag->prev->next = ag->next;
        else
                a->list = ag->next;
        if (ag->next)
                ag->next->prev = ag->prev;
        ag->idle_timer = sd_event_source_disable_unref(ag->idle_timer);
        ag->child = sd_event_source_disable_unref(ag->child);
        if (ag->pid > 0)
                /* Killed above; reaped from the loop, without us. */
                kill_and_reap(a->event, ag->pid);
        free(ag);
}

static int idle_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Agent *ag = userdata;

        (void) s;
        (void) usec;
        if (ag->n_tasks == 0)
                agent_free(ag);
        return 0;
}

static void agent_arm_idle(Agent *ag) {
        Agents *a = ag->agents;

        if (ag->n_tasks > 0 || !ag->io)
                return;
        ag->idle_timer = sd_event_source_disable_unref(ag->idle_timer);
        if (sd_event_add_time_relative(a->event, &ag->idle_timer, CLOCK_MONOTONIC, a->config.idle_usec, 0,
                                       idle_handler, ag) >= 0)
                (void) sd_event_source_set_description(ag->idle_timer, "agent-idle");
}

static AgentTask *agent_find_task(Agent *ag, uint64_t tag) {
        for (AgentTask *t = ag->tasks; t; t = t->next)
                if (t->tag == tag)
                        return t;
        return NULL;
}

static void handle_spawned(Agent *ag, const AgentSpawned *m) {
        AgentTask *t = agent_find_task(ag, m->tag);

        if (!t)
                return; /* forgotten meanwhile */
        if (m->error < 0 || m->pid < 0) {
                task_over(t, CLD_EXITED, 127);
                return;
        }
        /* 0: the agent answered itself (a check of a module it knows);
         * the end follows. */
        t->pid = m->pid;
}

static void handle_exited(Agent *ag, const AgentExited *m) {
        AgentTask *t = agent_find_task(ag, m->tag);

        if (t)
                task_over(t, m->code, m->status);
}

/* One message from the agent: 0, or -EBADMSG for a violation. */
static int agent_read_one(Agent *ag) {
        const void *payload;
        uint32_t type;
        size_t len;
        int r = ipc_recv(ag->fd, buf, sizeof(buf), &type, &len, &payload);

        if (r <= 0)
                return r == -EAGAIN ? -EAGAIN : r == 0 ? -ECONNRESET : -EBADMSG;
        if (type == IPC_AGENT_SPAWNED && len == sizeof(AgentSpawned)) {
                AgentSpawned m;
                memcpy(&m, payload, sizeof(m));
                handle_spawned(ag, &m);
        } else if (type == IPC_AGENT_EXITED && len == sizeof(AgentExited)) {
                AgentExited m;
                memcpy(&m, payload, sizeof(m));
                handle_exited(ag, &m);
        } else
                return -EBADMSG;
        return 0;
}

static int agent_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Agent *ag = userdata;

        (void) s;
        (void) fd;
        (void) revents;
        for (int k = 0; k < AGENT_MESSAGES_PER_WAKEUP && ag->io; k++) {
                int r = agent_read_one(ag);
                if (r == -EAGAIN)
                        return 0;
                if (r == -ECONNRESET) {
                        agent_kill(ag, "went away");
                        return 0;
                }
                if (r < 0) {
                        agent_kill(ag, "broke the protocol");
                        return 0;
                }
        }
        return 0;
}

static int agent_exited(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Agent *ag = userdata;

        (void) s;
        (void) si;
        ag->child = sd_event_source_disable_unref(ag->child); /* reaped */
        ag->pid = 0;
        agent_free(ag);
        return 0;
}

static int agent_start(Agents *a, uid_t uid, gid_t gid, Agent **ret) {
        const char *argv[] = { "mplock-runner", "agent", NULL };
        char **env = NULL;
        Identity id;
        Agent *ag = calloc(1, sizeof(*ag));
        int sv[2], r;
        pid_t pid;

        if (!ag)
                return -ENOMEM;
        /* Ours non-blocking (an agent that does not read is broken), its
         * own blocking (we may be slow to read). */
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                free(ag);
                return -errno;
        }
        if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
                r = -errno;
                safe_close(sv[0]);
                safe_close(sv[1]);
                free(ag);
                return r;
        }
        identity_resolve(&id, uid, gid);
        r = agent_env_build(uid, &env);
        pid = r < 0 ? r
                    : runner_exec(a->config.runner_path, &id, a->config.nproc, (char **) UNCONST(argv), env, &sv[1],
                                  1);
        env = agent_env_free(env);
        safe_close(sv[1]);
        *ag = (Agent){ .agents = a, .uid = uid, .gid = gid, .pid = pid > 0 ? pid : 0, .fd = sv[0] };
        r = pid < 0 ? pid : sd_event_add_io(a->event, &ag->io, ag->fd, EPOLLIN, agent_io, ag);
        if (r >= 0)
                r = sd_event_add_child(a->event, &ag->child, pid, WEXITED, agent_exited, ag);
        ag->next = a->list;
        if (a->list)
                a->list->prev = ag;
        a->list = ag;
        if (r < 0) {
                agent_free(ag);
                return r;
        }
        (void) sd_event_source_set_description(ag->io, "agent");
        *ret = ag;
        return 0;
}

static int agent_get(Agents *a, uid_t uid, gid_t gid, Agent **ret) {
        for (Agent *ag = a->list; ag; ag = ag->next)
                if (ag->uid == uid && ag->gid == gid && ag->io) {
                        *ret = ag;
                        return 0;
                }
        return agent_start(a, uid, gid, ret);
}

static int send_spawn(Agent *ag, uint64_t tag, uint32_t mode, const char *const *args, size_t n_args,
                      const int *fds, size_t n_fds) {
        char text[IPC_MSG_MAX - sizeof(IpcHeader) - sizeof(AgentSpawn)];
        AgentSpawn sp = { .tag = tag, .mode = mode, .n_args = (uint32_t) n_args };
        size_t len = 0;

        if (n_args == 0 || n_args > AGENT_ARGS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n_args; i++) {
                size_t l = strlen(args[i]) + 1;
                if (len + l > sizeof(text))
                        return -E2BIG;
                memcpy(text + len, args[i], l);
                len += l;
        }
        /* Non-blocking: an agent that does not read its requests is a
         * broken one. */
        return ipc_send_fds(ag->fd, IPC_AGENT_SPAWN, &sp, sizeof(sp), text, len, fds, n_fds);
}

int agents_spawn(Agents *a, uid_t uid, gid_t gid, uint32_t mode, const char *const *args, size_t n_args,
                 const int *fds, size_t n_fds, AgentTaskExited exited, void *userdata, AgentTask **ret) {
        AgentTask *t;
        Agent *ag;
        int r;

        r = agent_get(a, uid, gid, &ag);
        if (r < 0)
                return r;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        *t = (AgentTask){ .agent = ag, .tag = a->next_tag++, .exited_cb = exited, .userdata = userdata };
        r = send_spawn(ag, t->tag, mode, args, n_args, fds, n_fds);
        if (r < 0) {
                free(t);
                if (r != -E2BIG)
                        agent_kill(ag, "does not take requests");
                return r;
        }
        ag->idle_timer = sd_event_source_disable_unref(ag->idle_timer);
        t->next = ag->tasks;
        if (ag->tasks)
                ag->tasks->prev = t;
        ag->tasks = t;
        ag->n_tasks++;
        *ret = t;
        return 0;
}

static int kill_deadline_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        AgentTask *t = userdata;

        (void) s;
        (void) usec;
        t->kill_deadline = sd_event_source_disable_unref(t->kill_deadline);
        if (t->agent)
                agent_kill(t->agent, "did not end a task it was told to kill");
        return 0;
}

void agent_task_kill(AgentTask *t) {
        AgentKill k = { .tag = t->tag, .signal = SIGKILL };
        Agent *ag = t->agent;

        if (!ag || t->exited)
                return;
        if (ipc_send(ag->fd, IPC_AGENT_KILL, &k, sizeof(k)) < 0) {
                agent_kill(ag, "does not take requests");
                return;
        }
        if (!t->kill_deadline &&
            sd_event_add_time_relative(ag->agents->event, &t->kill_deadline, CLOCK_MONOTONIC,
                                       ag->agents->config.kill_wait_usec, 0, kill_deadline_handler, t) >= 0)
                (void) sd_event_source_set_description(t->kill_deadline, "agent-kill-deadline");
}

AgentTask *agent_task_free(AgentTask *t) {
        Agent *ag;

        if (!t)
                return NULL;
        t->exited_cb = NULL; /* whatever happens now, nobody is told */
        ag = t->agent;
        if (ag && !t->exited) {
                AgentKill k = { .tag = t->tag, .signal = SIGKILL };
                if (ipc_send(ag->fd, IPC_AGENT_KILL, &k, sizeof(k)) < 0)
                        agent_kill(ag, "does not take requests");
        }
        task_unlink(t);
        if (ag && ag->io)
                agent_arm_idle(ag);
        sd_event_source_disable_unref(t->kill_deadline);
        free(t);
        return NULL;
}

Agents *agents_free(Agents *a) {
        if (!a)
                return NULL;
        while (a->list)
                agent_free(a->list);
        free(a);
        return NULL;
}
