/* SPDX-License-Identifier: MIT */
#include "agent.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "check-cache.h"
#include "clock.h"
#include "fork.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "on-end.h"
#include "results-page.h"
#include "runner.h"

#define AGENT_FD 3
/* More tasks than mplockd ever gives one user at once. */
#define AGENT_TASKS_MAX 4096

typedef struct Agent Agent;

typedef struct Task {
        Agent *agent;
        struct Task *prev, *next;
        uint64_t tag;
        pid_t pid;
        sd_event_source *child;
        /* A check of inline items: its module, as it was when it began, is
         * remembered if it passes. */
        char *check_module;
        CheckFile check_file;
} Task;

struct Agent {
        char *title; /* our argv[1], "agent": ps shows what a task is */
        sd_event *event;
        sd_event_source *io;
        Task *tasks;
        size_t n_tasks;
        CheckCache checks;
        bool warm_tried; /* the Python bridge, warmed up here once (warm_python()) */
};

static uint8_t buf[IPC_MSG_MAX] __attribute__((aligned(8)));

static void task_free(Task *t) {
        Agent *a = t->agent;

        if (t->prev)
                t->prev->next = t->next;
        else
                a->tasks = t->next;
        if (t->next)
                t->next->prev = t->prev;
        a->n_tasks--;
        sd_event_source_disable_unref(t->child);
        free(t->check_module);
        free(t);
}

static Task *task_find(Agent *a, uint64_t tag) {
        for (Task *t = a->tasks; t; t = t->next)
                if (t->tag == tag)
                        return t;
        return NULL;
}

/* mplockd is gone or talks nonsense: stop; our children die with us. */
static _Noreturn void agent_quit(const char *why) {
        if (why)
                log_error("Agent: %s; exiting.", why);
        _exit(why ? 1 : 0);
}

static void agent_send(uint32_t type, const void *payload, size_t len) {
        if (ipc_send(AGENT_FD, type, payload, len) < 0)
                agent_quit(NULL);
}

static int task_exited(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Task *t = userdata;
        AgentExited e = { .tag = t->tag, .code = si->si_code, .status = si->si_status };

        (void) s;
        /* Its zombie still holds the group's id: nothing of the task may
         * outlive it. */
        (void) kill(-t->pid, SIGKILL);
        if (t->check_module && si->si_code == CLD_EXITED && si->si_status == 0)
                (void) check_cache_remember(&t->agent->checks, t->check_module, &t->check_file, now_usec());
        task_free(t);
        agent_send(IPC_AGENT_EXITED, &e, sizeof(e));
        return 0;
}

/* In the child: the task itself, with the descriptors at 3, 4, ...; ps
 * and /proc/PID/cmdline say "mplock-runner run" or "... check". */
static _Noreturn void task_run(char *title, uint32_t mode, char **argv, int argc) {
        /* At most as long as "agent", whose room it takes. */
        const char *name = mode == AGENT_MODE_CHECK    ? "check"
                           : mode == AGENT_MODE_RUN    ? "run"
                           : mode == AGENT_MODE_ON_END ? "onend"
                                                       : "pages";
        size_t room = strlen(title);
        int r = 127;

        if (strlen(name) <= room) {
                memset(title, 0, room);
                memcpy(title, name, strlen(name));
        }

        if (mode == AGENT_MODE_CHECK)
                r = check_main(argc, argv);
        else if (mode == AGENT_MODE_RUN)
                r = run_main();
        else if (mode == AGENT_MODE_RESULTS)
                r = results_page_main(argc, argv);
        else if (mode == AGENT_MODE_ON_END)
                r = on_end_main(argc, argv);
        (void) fflush(stdout);
        (void) fflush(stderr);
        _exit(r);
}

/* The NUL-terminated arguments of a request, checked to end inside it. */
static int parse_args(const char *p, size_t len, uint32_t n, char **argv) {
        const char *end = p + len;

        if (n == 0 || n > AGENT_ARGS_MAX)
                return -EBADMSG;
        for (uint32_t i = 0; i < n; i++) {
                const char *nul = memchr(p, '\0', (size_t) (end - p));
                if (!nul)
                        return -EBADMSG;
                argv[i] = (char *) UNCONST(p);
                p = nul + 1;
        }
        argv[n] = NULL;
        return p == end ? 0 : -EBADMSG;
}

static int task_start(Agent *a, const AgentSpawn *sp, char **argv, const int *fds, size_t n_fds) {
        ForkOptions o = {
                .flags = FORK_RESET_SIGNALS | FORK_NEW_SESSION | FORK_DEATHSIG | FORK_CLOSE_FDS | FORK_NULL_STDIN |
                         FORK_KEEP_CLOEXEC,
                .fds = fds,
                .n_fds = n_fds,
                .stdout_fd = -1,
                .stderr_fd = -1,
        };
        Task *t;
        pid_t pid;
        int r;

        if (a->n_tasks >= AGENT_TASKS_MAX || task_find(a, sp->tag))
                return -EBUSY;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        pid = fork_sandboxed(&o);
        if (pid == 0) {
                /* The agent's bookkeeping is not the task's: LeakSanitizer
                 * saw it as a leak when a worker of the task called exit(). */
                free(t);
                task_run(a->title, sp->mode, argv, (int) sp->n_args);
        }
        if (pid < 0) {
                free(t);
                return pid;
        }
        *t = (Task){ .agent = a, .tag = sp->tag, .pid = pid, .next = a->tasks };
        r = sd_event_add_child(a->event, &t->child, pid, WEXITED, task_exited, t);
        if (r < 0) {
                /* Unwatched, it would never be reported: it must not run. */
                (void) kill(-pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                free(t);
                return r;
        }
        if (a->tasks)
                a->tasks->prev = t;
        a->tasks = t;
        a->n_tasks++;
        return pid;
}

/* A check of inline items whose module passed a check before, as the same
 * file: answered here, without a process or a dlopen, the output directory
 * checked again. Any other check forks, and one of inline items that
 * passes is remembered. */
static void handle_check(Agent *a, const AgentSpawn *sp, char **argv, const int *fds, size_t n_fds) {
        AgentSpawned reply = { .tag = sp->tag };
        CheckArgs args;
        CheckFile file;
        bool cacheable = n_fds >= 1 && check_parse_args((int) sp->n_args, argv, &args) >= 0 && !args.input &&
                         check_file_identify(args.module, &file) >= 0;
        Task *t;
        int r;

        if (cacheable && !task_find(a, sp->tag) && check_cache_hit(&a->checks, args.module, &file, now_usec())) {
                AgentExited e = { .tag = sp->tag, .code = CLD_EXITED, .status = check_known_module(fds[0], &args) };
                agent_send(IPC_AGENT_SPAWNED, &reply, sizeof(reply)); /* pid 0: no process */
                agent_send(IPC_AGENT_EXITED, &e, sizeof(e));
                return;
        }
        r = task_start(a, sp, argv, fds, n_fds);
        if (r > 0 && cacheable && (t = task_find(a, sp->tag)) && (t->check_module = strdup(args.module)))
                t->check_file = file;
        reply.pid = r > 0 ? r : 0;
        reply.error = r < 0 ? r : 0;
        agent_send(IPC_AGENT_SPAWNED, &reply, sizeof(reply));
}

/* mplockd's hint that the runner it asks for runs a job of the Python
 * bridge at path (its own, never a path a client named): start Python
 * here once, so that this and every later runner of ours is forked with
 * the interpreter running, not starting it (tens of milliseconds a job).
 * It loads no job's code or data; a failure only costs the runner the
 * start it would have made anyway. */
static void warm_python(Agent *a, const char *path) {
        int (*warm)(void);
        void *dl;

        if (a->warm_tried)
                return;
        a->warm_tried = true;
        /* Never closed: it stays loaded for the runners to inherit. */
        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                log_debug("Agent: cannot load %s to warm it up: %s", path, dlerror());
                return;
        }
        warm = (int (*)(void)) dlsym(dl, "mplock_python_warm");
        if (!warm || warm() < 0)
                log_debug("Agent: %s did not warm up; its jobs start Python themselves.", path);
}

static void handle_spawn(Agent *a, const void *payload, size_t len, const int *fds, size_t n_fds) {
        AgentSpawn sp;
        AgentSpawned reply = {};
        char *argv[AGENT_ARGS_MAX + 1];
        int r;

        if (len < sizeof(sp))
                agent_quit("short spawn request");
        memcpy(&sp, payload, sizeof(sp));
        if ((sp.mode != AGENT_MODE_CHECK && sp.mode != AGENT_MODE_RUN && sp.mode != AGENT_MODE_RESULTS &&
             sp.mode != AGENT_MODE_ON_END) ||
            parse_args((const char *) payload + sizeof(sp), len - sizeof(sp), sp.n_args, argv) < 0)
                agent_quit("malformed spawn request");
        if (sp.mode == AGENT_MODE_CHECK) {
                handle_check(a, &sp, argv, fds, n_fds);
                return;
        }
        if (sp.mode == AGENT_MODE_RUN && sp.n_args == 3 && streq(argv[1], "--warm-python"))
                warm_python(a, argv[2]);
        r = task_start(a, &sp, argv, fds, n_fds);
        reply = (AgentSpawned){ .tag = sp.tag, .pid = r > 0 ? r : 0, .error = r < 0 ? r : 0 };
        agent_send(IPC_AGENT_SPAWNED, &reply, sizeof(reply));
}

static void handle_kill(Agent *a, const void *payload, size_t len) {
        AgentKill k;
        Task *t;

        if (len != sizeof(k))
                agent_quit("malformed kill request");
        memcpy(&k, payload, sizeof(k));
        t = task_find(a, k.tag);
        if (t && k.signal > 0 && k.signal < (uint32_t) _NSIG)
                (void) kill(-t->pid, (int) k.signal);
}

static int agent_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Agent *a = userdata;
        int fds[IPC_FDS_MAX];
        size_t n_fds = 0;
        const void *payload;
        uint32_t type;
        size_t len;
        int r;

        (void) s;
        (void) revents;
        r = ipc_recv_fds(fd, buf, sizeof(buf), &type, &len, &payload, fds, &n_fds);
        if (r == -EAGAIN)
                return 0;
        if (r <= 0)
                agent_quit(r == 0 ? NULL : "malformed message from mplockd");
        if (type == IPC_AGENT_SPAWN)
                handle_spawn(a, payload, len, fds, n_fds);
        else if (type == IPC_AGENT_KILL && n_fds == 0)
                handle_kill(a, payload, len);
        else
                agent_quit("unexpected message from mplockd");
        for (size_t i = 0; i < n_fds; i++)
                safe_close(fds[i]);
        return 0;
}

int agent_main(char **argv) {
        Agent a = { .title = argv[1] };
        sigset_t mask;
        int r;

        (void) sigemptyset(&mask);
        (void) sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "sigprocmask: %m"), 1;
        (void) signal(SIGPIPE, SIG_IGN);
        /* Not mplockd's working directory (an admin's, when started by
         * hand): what the user's code starts in is the root. */
        if (chdir("/") < 0)
                return log_error_errno(errno, "chdir: %m"), 1;
        r = sd_event_new(&a.event);
        if (r >= 0)
                r = sd_event_add_io(a.event, &a.io, AGENT_FD, EPOLLIN, agent_io, &a);
        if (r >= 0)
                r = sd_event_loop(a.event);
        if (r < 0)
                log_error_errno(r, "Agent: event loop: %m");
        check_cache_clear(&a.checks);
        return r < 0 ? 1 : 0;
}
