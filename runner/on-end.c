/* SPDX-License-Identifier: MIT */
#include "on-end.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fork.h"
#include "log.h"
#include "macro.h"
#include "output.h"
#include "parse.h"
#include "run-error.h"

/* The facts mplockd passes, each as "--name value". */
typedef struct OnEndArgs {
        const char *job, *name, *state, *done, *failed, *total, *output, *command;
        uint64_t job_id, timeout_sec;
} OnEndArgs;

static int parse_args(int argc, char **argv, OnEndArgs *a) {
        static const char *const names[] = { "--job",    "--name",   "--state",   "--done",
                                             "--failed", "--total",  "--output",  "--command" };
        const char **slots[] = { &a->job, &a->name, &a->state, &a->done, &a->failed, &a->total, &a->output,
                                 &a->command };
        const char *timeout = NULL;

        *a = (OnEndArgs){};
        for (int i = 1; i + 1 < argc; i += 2) {
                size_t k;

                for (k = 0; k < ELEMENTSOF(names); k++)
                        if (streq(argv[i], names[k])) {
                                *slots[k] = argv[i + 1];
                                break;
                        }
                if (k == ELEMENTSOF(names)) {
                        if (!streq(argv[i], "--timeout"))
                                return -EINVAL;
                        timeout = argv[i + 1];
                }
        }
        for (size_t k = 0; k < ELEMENTSOF(slots); k++)
                if (!*slots[k])
                        return -EINVAL;
        if (argc % 2 != 1 || !timeout || parse_u64(a->job, &a->job_id) < 0 ||
            parse_uint_range(timeout, 1, 604800, &a->timeout_sec) < 0)
                return -EINVAL;
        return 0;
}

/* The command's whole environment: the job's facts, and who its owner is
 * (from the agent's, which mplockd made for this user: nothing of
 * mplockd's own). */
static char **build_env(const OnEndArgs *a) {
        static const char *const own[] = { "PATH", "HOME", "USER", "LOGNAME", "SHELL" };
        const char *facts[][2] = {
                { "MPLOCK_JOB_ID", a->job },         { "MPLOCK_JOB_NAME", a->name },
                { "MPLOCK_JOB_STATE", a->state },    { "MPLOCK_JOB_DONE", a->done },
                { "MPLOCK_JOB_FAILED", a->failed },  { "MPLOCK_JOB_TOTAL", a->total },
                { "MPLOCK_JOB_OUTPUT", a->output },
        };
        char **env = calloc(ELEMENTSOF(facts) + ELEMENTSOF(own) + 1, sizeof(char *));
        size_t n = 0;

        if (!env)
                return NULL;
        for (size_t k = 0; k < ELEMENTSOF(facts); k++)
                if (asprintf(&env[n++], "%s=%s", facts[k][0], facts[k][1]) < 0)
                        return NULL; /* we exit at once: nothing to free */
        for (size_t k = 0; k < ELEMENTSOF(own); k++) {
                const char *v = getenv(own[k]);
                if (!v && streq(own[k], "PATH"))
                        v = "/usr/local/bin:/usr/bin:/bin";
                if (v && asprintf(&env[n++], "%s=%s", own[k], v) < 0)
                        return NULL;
        }
        return env;
}

/* The command's stdout and stderr: appended to the job's log, or, if that
 * cannot be opened, nowhere (never mplockd's journal stream). */
static int output_fd(Output *o, const OnEndArgs *a) {
        RunError e = {};

        output_init(o, a->output, a->job_id);
        if (output_open_log(o, &e) >= 0)
                return o->log_fd;
        log_job(LOG_WARNING, a->job_id, "On-end command: %s; its output is discarded.", e.msg);
        return open("/dev/null", O_WRONLY | O_CLOEXEC);
}

static pid_t spawn_shell(const OnEndArgs *a, char **env, int out) {
        char *argv[] = { (char *) "sh", (char *) "-c", (char *) UNCONST(a->command), NULL };
        const char *home = getenv("HOME");
        /* Our process group (the agent made us its leader): the agent's
         * kill of the task, and ours at the timeout, reach the command and
         * whatever it started. */
        ForkOptions fo = {
                .flags = FORK_RESET_SIGNALS | FORK_DEATHSIG | FORK_CLOSE_FDS | FORK_NULL_STDIN,
                .stdout_fd = out,
                .stderr_fd = out,
        };
        pid_t pid = fork_sandboxed(&fo);

        if (pid == 0) {
                if (!home || chdir(home) < 0)
                        (void) !chdir("/");
                fork_execve("/bin/sh", argv, env);
        }
        return pid;
}

/* Waits for pid until the deadline: its wait status, or -ETIME. */
static int wait_until(pid_t pid, uint64_t timeout_sec) {
        struct timespec end, now, left;
        sigset_t chld;
        int status;

        (void) sigemptyset(&chld);
        (void) sigaddset(&chld, SIGCHLD);
        (void) clock_gettime(CLOCK_MONOTONIC, &end);
        end.tv_sec += (time_t) timeout_sec;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return status;
                if (r < 0 && errno != EINTR)
                        return -errno;
                (void) clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
                        return -ETIME;
                left.tv_sec = end.tv_sec - now.tv_sec;
                left.tv_nsec = end.tv_nsec - now.tv_nsec;
                if (left.tv_nsec < 0) {
                        left.tv_sec--;
                        left.tv_nsec += 1000000000L;
                }
                (void) sigtimedwait(&chld, NULL, &left);
        }
}

int on_end_main(int argc, char **argv) {
        int out;
        OnEndArgs a;
        Output o;
        char **env;
        sigset_t chld;
        pid_t pid;
        int status;

        if (parse_args(argc, argv, &a) < 0) {
                log_error("on-end: bad arguments.");
                return 2;
        }
        out = output_fd(&o, &a);
        if (out < 0 || !(env = build_env(&a)))
                return 127;
        /* Blocked before the fork, so that its end is not missed; the
         * child resets its mask. */
        (void) sigemptyset(&chld);
        (void) sigaddset(&chld, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0)
                return 127;
        output_note(&o, "on-end command starting (job %s, %s, %s/%s items, %s failed)", a.job, a.state, a.done,
                    a.total, a.failed);
        pid = spawn_shell(&a, env, out);
        if (pid < 0) {
                output_note(&o, "on-end command not started: %s", strerror((int) -pid));
                return 127;
        }
        status = wait_until(pid, a.timeout_sec);
        if (status == -ETIME) {
                output_note(&o, "on-end command timed out after %llu s: killed", (unsigned long long) a.timeout_sec);
                /* The command, what it started, and us: our whole group. */
                (void) kill(0, SIGKILL);
                _exit(137);
        }
        if (status < 0)
                return 127;
        if (WIFSIGNALED(status)) {
                output_note(&o, "on-end command killed by signal %s", strsignal(WTERMSIG(status)));
                return 128 + WTERMSIG(status);
        }
        output_note(&o, "on-end command exited with status %d", WEXITSTATUS(status));
        return WEXITSTATUS(status);
}
