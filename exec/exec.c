/* SPDX-License-Identifier: MIT */
/*
 * mplock-exec: the command adapter (issue 13, docs/exec.md). A module that
 * runs a command per item, GNU parallel's way: the template's replacement
 * strings filled in (common/cmdline.c: never an item as shell code), the
 * command's stdout its result, its exit status its error.
 *
 * Shared data: {"exec": {"command": TEMPLATE, "env": ["K=V", ...],
 * "cwd": DIR, "max_output": BYTES, "timeout": SECONDS}}. mplockctl submit
 * --exec fills it in with the submitter's environment and directory; they
 * are applied to the commands only.
 *
 * Each command runs in a process group of its own, with stdin from
 * /dev/null and the worker's death as its own (PR_SET_PDEATHSIG); when it
 * ends, or its timeout passes (TERM, then KILL after KILL_GRACE_MS), or it
 * prints more than max_output, the whole group is killed: no process of
 * an item outlives it. Its stderr goes to the job log, line by line, with
 * the item's index; its last line is the message of a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mplock/module.h>

#include "cmdline.h"

#define OUTPUT_DEFAULT (1u << 20)
#define KILL_GRACE_MS 2000
/* After the command has ended, what is still in the pipes is read for at
 * most this long: a process that left its session (setsid) holds them
 * open and is no part of the item any more (its scope kills it later). */
#define DRAIN_MS 1000
#define ENV_MAX 4096
#define LINE_MAX_LOG 4096

typedef struct Exec {
        CmdTemplate tmpl;
        char **envp;
        const char *cwd;
        const char *path; /* PATH of envp, for the lookup of argv[0] */
        uint64_t max_output;
        int64_t timeout_ms; /* 0: none */
        /* Found once at init, not per item: argv[0] when the template
         * names it literally, /dev/null, the signals not at SIG_DFL. */
        char *argv0;
        int null_fd;
        sigset_t reset;
} Exec;

static int fail_init(const mplock_ctx *ctx, const char *msg) {
        ctx->api->error_message(ctx, msg);
        return -MPLOCK_EINVAL;
}

static int load_env(const mplock_ctx *ctx, Exec *x) {
        size_t n = 0;

        if (ctx->api->shared_count(ctx, "/exec/env", &n) < 0)
                n = 0;
        if (n > ENV_MAX)
                return fail_init(ctx, "exec.env has too many entries");
        x->envp = calloc(n + 1, sizeof(char *));
        if (!x->envp)
                return -MPLOCK_ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char ptr[64];
                const char *v;
                size_t len;
                (void) snprintf(ptr, sizeof(ptr), "/exec/env/%zu", i);
                if (ctx->api->shared_get_string(ctx, ptr, &v, &len) < 0 || !strchr(v, '=') || strlen(v) != len)
                        return fail_init(ctx, "exec.env must be strings NAME=value");
                x->envp[i] = (char *) (uintptr_t) v;
                if (strncmp(v, "PATH=", 5) == 0)
                        x->path = v + 5;
        }
        if (!x->path)
                x->path = "/usr/local/bin:/usr/bin:/bin";
        return 0;
}

/* argv[0] in the command's PATH, once: a literal first word of a direct
 * template (a shell template's is /bin/sh). Not found: NULL, and each
 * item looks again (so a program that appears later is found, and one
 * never found is each item's exit status 127). */
static char *find_argv0(const Exec *x) {
        const CmdPiece *p = x->tmpl.n_pieces ? &x->tmpl.pieces[0] : NULL;
        char buf[4096];
        struct stat st;

        if (x->tmpl.shell || !p || p->repl != CMD_REPL_NONE || !p->word_end || memchr(p->text, '/', p->len))
                return NULL;
        for (const char *d = x->path, *end; ; d = end + 1) {
                size_t n;
                end = strchr(d, ':');
                n = end ? (size_t) (end - d) : strlen(d);
                if (n && snprintf(buf, sizeof(buf), "%.*s/%.*s", (int) n, d, (int) p->len, p->text) < (int) sizeof(buf) &&
                    stat(buf, &st) == 0 && S_ISREG(st.st_mode) && access(buf, X_OK) == 0)
                        return strdup(buf);
                if (!end)
                        return NULL;
        }
}

/* The signals the commands must not inherit as they are: an ignored one
 * stays ignored across exec (SIGPIPE is, in the runner). */
static void find_reset(Exec *x) {
        (void) sigemptyset(&x->reset);
        for (int s = 1; s < NSIG; s++) {
                struct sigaction sa;
                if (s != SIGKILL && s != SIGSTOP && sigaction(s, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL)
                        (void) sigaddset(&x->reset, s);
        }
}

static int exec_init(const mplock_ctx *ctx, void **state) {
        char err[512], msg[600];
        const char *cmd;
        size_t len;
        int64_t v;
        Exec *x;
        int r;

        if (ctx->api->shared_get_string(ctx, "/exec/command", &cmd, &len) < 0 || strlen(cmd) != len)
                return fail_init(ctx, "this is mplock's command adapter: submit it with mplockctl submit --exec");
        x = calloc(1, sizeof(*x));
        if (!x)
                return -MPLOCK_ENOMEM;
        x->null_fd = -1;
        *state = x;
        r = cmd_template_parse(&x->tmpl, cmd, err, sizeof(err));
        if (r < 0) {
                (void) snprintf(msg, sizeof(msg), "the command: %s", r == -EINVAL ? err : "out of memory");
                return fail_init(ctx, msg);
        }
        if (ctx->api->shared_get_string(ctx, "/exec/cwd", &x->cwd, &len) < 0)
                x->cwd = "/";
        x->max_output = OUTPUT_DEFAULT;
        if (ctx->api->shared_get_int(ctx, "/exec/max_output", &v) == 0)
                x->max_output = v > 0 && v < (int64_t) MPLOCK_RESULT_MAX ? (uint64_t) v : MPLOCK_RESULT_MAX - 1;
        if (ctx->api->shared_get_int(ctx, "/exec/timeout", &v) == 0 && v > 0)
                x->timeout_ms = v * 1000;
        x->null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (x->null_fd < 0)
                return -MPLOCK_EIO;
        r = load_env(ctx, x);
        if (r < 0)
                return r;
        x->argv0 = find_argv0(x);
        find_reset(x);
        return 0;
}

static void exec_fini(const mplock_ctx *ctx, void *state) {
        Exec *x = state;

        (void) ctx;
        if (!x)
                return;
        cmd_template_free(&x->tmpl);
        free(x->envp);
        free(x->argv0);
        if (x->null_fd >= 0)
                close(x->null_fd);
        free(x);
}

/* --- one command ----------------------------------------------------------- */

static int64_t now_ms(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the child: argv[0] looked up in the command's PATH, not ours. */
static _Noreturn void child_exec(const Exec *x, char **argv) {
        char buf[4096];
        int e = ENOENT;

        if (x->argv0) {
                execve(x->argv0, argv, x->envp);
                if (errno != ENOENT)
                        _exit(126);
        }
        if (strchr(argv[0], '/')) {
                execve(argv[0], argv, x->envp);
                _exit(errno == ENOENT ? 127 : 126);
        }
        for (const char *p = x->path, *end; ; p = end + 1) {
                size_t n;
                end = strchr(p, ':');
                n = end ? (size_t) (end - p) : strlen(p);
                if (snprintf(buf, sizeof(buf), "%.*s%s%s", (int) n, p, n ? "/" : "", argv[0]) < (int) sizeof(buf)) {
                        execve(buf, argv, x->envp);
                        if (errno != ENOENT && errno != ENOTDIR)
                                e = errno;
                }
                if (!end)
                        break;
        }
        _exit(e == ENOENT ? 127 : 126);
}

/* Runs with every signal blocked (the parent's doing): no handler of the
 * worker runs here on memory vfork shares. Exec resets caught signals;
 * the ignored ones are reset here, then the mask is emptied. */
static _Noreturn void child(const Exec *x, char **argv, int out, int err, pid_t parent) {
        sigset_t none;

        (void) setpgid(0, 0);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(125);
        for (int s = 1; s < NSIG; s++)
                if (sigismember(&x->reset, s) == 1)
                        (void) signal(s, SIG_DFL);
        (void) sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(x->null_fd, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 || chdir(x->cwd) < 0)
                _exit(125);
        child_exec(x, argv);
}

typedef struct Run {
        char *out;
        size_t out_len, out_cap;
        char line[LINE_MAX_LOG], last[LINE_MAX_LOG];
        size_t line_len;
        bool too_much, timed_out;
} Run;

static void log_line(const mplock_ctx *ctx, Run *run, uint64_t index) {
        if (run->line_len == 0)
                return;
        run->line[run->line_len] = '\0';
        /* The log names the call's item itself; in a batch, which one. */
        if (ctx->batch_size > 1)
                ctx->api->log(ctx, MPLOCK_LOG_INFO, "item %llu: %s", (unsigned long long) index, run->line);
        else
                ctx->api->log(ctx, MPLOCK_LOG_INFO, "%s", run->line);
        memcpy(run->last, run->line, run->line_len + 1);
        run->line_len = 0;
}

static void take_err(const mplock_ctx *ctx, Run *run, const char *b, size_t n, uint64_t index) {
        for (size_t i = 0; i < n; i++) {
                if (b[i] == '\n') {
                        log_line(ctx, run, index);
                        continue;
                }
                if (run->line_len == LINE_MAX_LOG - 1)
                        log_line(ctx, run, index);
                run->line[run->line_len++] = b[i];
        }
}

static int take_out(Run *run, const char *b, size_t n, uint64_t max) {
        if (run->out_len + n > max) {
                run->too_much = true;
                return -1;
        }
        if (run->out_len + n > run->out_cap) {
                size_t cap = run->out_cap ? run->out_cap * 2 : 4096;
                char *p;
                while (cap < run->out_len + n)
                        cap *= 2;
                if (!(p = realloc(run->out, cap)))
                        return -1;
                run->out = p;
                run->out_cap = cap;
        }
        memcpy(run->out + run->out_len, b, n);
        run->out_len += n;
        return 0;
}

/* Reads both pipes until EOF, the timeout or too much output; the group
 * is killed (TERM then KILL) in the last two cases. */
static void collect(const mplock_ctx *ctx, const Exec *x, Run *run, pid_t pid, int fds[2], uint64_t index) {
        int64_t deadline = x->timeout_ms ? now_ms() + x->timeout_ms : 0, kill_at = 0, drain_end = 0;
        /* The command's end, as a descriptor: what it left running in its
         * group (holding the pipes open) is killed then. */
        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        struct pollfd p[3] = { { .fd = fds[0], .events = POLLIN }, { .fd = fds[1], .events = POLLIN },
                               { .fd = pidfd, .events = POLLIN } };
        char buf[65536];

        /* Until both pipes are closed and the command has ended (one that
         * closed its output is still timed). */
        while (p[0].fd >= 0 || p[1].fd >= 0 || p[2].fd >= 0) {
                int64_t now = now_ms(), wait = -1;
                int r;

                if (drain_end && now >= drain_end)
                        break;
                if (kill_at && now >= kill_at) {
                        (void) kill(-pid, SIGKILL);
                        kill_at = 0;
                }
                if (deadline && now >= deadline && !run->timed_out) {
                        run->timed_out = true;
                        (void) kill(-pid, SIGTERM);
                        kill_at = now + KILL_GRACE_MS;
                }
                if (kill_at)
                        wait = kill_at - now;
                else if (deadline && !run->timed_out)
                        wait = deadline - now;
                if (drain_end && (wait < 0 || drain_end - now < wait))
                        wait = drain_end - now;
                r = poll(p, 3, (int) (wait < 0 ? -1 : wait > 60000 ? 60000 : wait));
                if (r < 0 && errno != EINTR)
                        break;
                if (r > 0 && p[2].fd >= 0 && (p[2].revents & POLLIN)) {
                        (void) kill(-pid, SIGKILL);
                        p[2].fd = -1;
                        drain_end = now_ms() + DRAIN_MS;
                }
                for (int k = 0; k < 2 && r > 0; k++) {
                        ssize_t n;
                        if (p[k].fd < 0 || !(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        n = read(p[k].fd, buf, sizeof(buf));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0) {
                                p[k].fd = -1;
                                continue;
                        }
                        if (k == 1)
                                take_err(ctx, run, buf, (size_t) n, index);
                        else if (!run->too_much && take_out(run, buf, (size_t) n, x->max_output) < 0) {
                                (void) kill(-pid, SIGKILL);
                        }
                }
        }
        log_line(ctx, run, index);
        if (pidfd >= 0)
                close(pidfd);
}

static void report(const mplock_ctx *ctx, mplock_results *res, size_t i, const Exec *x, Run *run, int status) {
        char msg[LINE_MAX_LOG + 128];

        (void) ctx;
        if (run->too_much) {
                (void) snprintf(msg, sizeof(msg), "the command printed more than %llu bytes (--max-output)",
                                (unsigned long long) x->max_output);
                (void) res->api->result_fail(res, i, MPLOCK_E2BIG, msg, MPLOCK_FAIL_PERMANENT);
        } else if (run->timed_out) {
                (void) snprintf(msg, sizeof(msg), "timed out after %lld s; its process group was killed",
                                (long long) (x->timeout_ms / 1000));
                (void) res->api->result_error(res, i, 124, msg);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                (void) res->api->result_set(res, i, run->out ? run->out : "", run->out_len);
        else if (WIFEXITED(status)) {
                (void) snprintf(msg, sizeof(msg), "exit status %d%s%s", WEXITSTATUS(status), run->last[0] ? ": " : "",
                                run->last);
                (void) res->api->result_error(res, i, WEXITSTATUS(status), msg);
        } else {
                (void) snprintf(msg, sizeof(msg), "killed by signal %s%s%s", strsignal(WTERMSIG(status)),
                                run->last[0] ? ": " : "", run->last);
                (void) res->api->result_error(res, i, 128 + WTERMSIG(status), msg);
        }
}

static void run_one(const mplock_ctx *ctx, const Exec *x, const mplock_item *item, mplock_results *res, size_t i) {
        CmdItem it = { .data = item->data, .len = item->len, .seq = item->index + 1, .slot = ctx->worker + 1 };
        int out[2] = { -1, -1 }, err[2] = { -1, -1 }, status = 0, r;
        char **argv = NULL;
        sigset_t all, old;
        Run run = {};
        pid_t pid, me;

        r = cmd_template_expand(&x->tmpl, &it, &argv);
        if (r < 0) {
                (void) res->api->result_fail(res, i, -r,
                                             r == -EINVAL ? "the item holds a NUL byte: no argument can hold it"
                                             : r == -E2BIG ? "the command line for this item is too long"
                                                           : "out of memory",
                                             MPLOCK_FAIL_PERMANENT);
                return;
        }
        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
                (void) res->api->result_error(res, i, MPLOCK_EIO, strerror(errno));
                goto done;
        }
        /* vfork: the worker's pages are not copied for a child that only
         * sets itself up and execs (what posix_spawn does); the child
         * touches nothing of ours but its own stack frame. */
        me = getpid();
        (void) sigfillset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, &old);
        pid = vfork();
        if (pid == 0)
                child(x, argv, out[1], err[1], me);
        (void) sigprocmask(SIG_SETMASK, &old, NULL);
        if (pid < 0) {
                (void) res->api->result_error(res, i, MPLOCK_EIO, strerror(errno));
                goto done;
        }
        (void) setpgid(pid, pid); /* as the child does: whichever runs first */
        close(out[1]);
        close(err[1]);
        out[1] = err[1] = -1;
        collect(ctx, x, &run, pid, (int[]){ out[0], err[0] }, item->index);
        while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
                ;
        (void) kill(-pid, SIGKILL); /* what it left behind in its group */
        if (r < 0)
                (void) res->api->result_error(res, i, MPLOCK_EIO, "cannot wait for the command");
        else
                report(ctx, res, i, x, &run, status);
done:
        for (int k = 0; k < 2; k++) {
                if (out[k] >= 0)
                        close(out[k]);
                if (err[k] >= 0)
                        close(err[k]);
        }
        free(run.out);
        cmd_argv_free(argv);
}

static int exec_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n, mplock_results *out) {
        for (size_t i = 0; i < n; i++)
                run_one(ctx, state, &items[i], out, i);
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "exec", .init = exec_init, .process = exec_process, .fini = exec_fini);
