/* SPDX-License-Identifier: MIT */
#include "fork.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"

/* Between fork and exec only async-signal-safe calls: no stdio, no malloc,
 * no strerror; the error is written as a number. */
static void put(const char *s) {
        (void) !write(STDERR_FILENO, s, strlen(s));
}

static _Noreturn void child_fail(const char *what) {
        char num[16];
        int e = errno, i = (int) sizeof(num) - 1;

        num[i] = '\0';
        do
                num[--i] = (char) ('0' + e % 10);
        while ((e /= 10) > 0 && i > 0);
        put("mplock: child setup failed: ");
        put(what);
        put(": errno ");
        put(num + i);
        put("\n");
        _exit(127);
}

static void reset_signals(void) {
        sigset_t none;

        (void) sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);
}

static void set_limit(int resource, uint64_t value, const char *what) {
        struct rlimit rl = { .rlim_cur = value, .rlim_max = value };

        if (value > 0 && setrlimit(resource, &rl) < 0)
                child_fail(what);
}

/* Moves fds[] to 3.. (out of the way first, so that no move overwrites a
 * descriptor still to be moved), then closes everything above them. */
static void arrange_fds(const ForkOptions *o) {
        int tmp[FORK_FDS_MAX];
        unsigned first_free = 3 + (unsigned) o->n_fds;

        for (size_t i = 0; i < o->n_fds; i++)
                if ((tmp[i] = fcntl(o->fds[i], F_DUPFD, (int) first_free)) < 0)
                        child_fail("F_DUPFD");
        for (size_t i = 0; i < o->n_fds; i++) {
                if (dup3(tmp[i], 3 + (int) i, o->flags & FORK_KEEP_CLOEXEC ? O_CLOEXEC : 0) < 0)
                        child_fail("dup3");
                (void) close(tmp[i]);
        }
        if (!(o->flags & FORK_CLOSE_FDS))
                return;
        if (syscall(SYS_close_range, first_free, ~0U, 0) < 0)
                for (int fd = (int) first_free; fd < 65536; fd++)
                        (void) close(fd);
}

static void arrange_stdio(const ForkOptions *o) {
        if (o->flags & FORK_NULL_STDIN) {
                int fd = open("/dev/null", O_RDONLY);
                if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
                        child_fail("/dev/null");
                if (fd > STDERR_FILENO)
                        (void) close(fd);
        }
        if (o->stdout_fd >= 0 && dup2(o->stdout_fd, STDOUT_FILENO) < 0)
                child_fail("dup2 stdout");
        if (o->stderr_fd >= 0 && dup2(o->stderr_fd, STDERR_FILENO) < 0)
                child_fail("dup2 stderr");
}

static void child_setup(const ForkOptions *o, pid_t parent) {
        if (o->flags & FORK_RESET_SIGNALS)
                reset_signals();
        if ((o->flags & FORK_NEW_SESSION) && setsid() < 0)
                child_fail("setsid");
        set_limit(RLIMIT_NPROC, o->rlimit_nproc, "RLIMIT_NPROC");
        set_limit(RLIMIT_DATA, o->rlimit_data, "RLIMIT_DATA");
        if (o->identity && identity_apply(o->identity) < 0)
                child_fail("identity");
        if ((o->flags & FORK_NO_NEW_PRIVS) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_fail("PR_SET_NO_NEW_PRIVS");
        /* After the identity change, which clears it. */
        if (o->flags & FORK_DEATHSIG) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                        child_fail("PR_SET_PDEATHSIG");
                if (getppid() != parent)
                        _exit(127); /* the parent is gone already */
        }
        /* stdio before the others: a passed fd may be moved onto 1 or 2
         * only through stdout_fd/stderr_fd, never by arrange_fds. */
        arrange_stdio(o);
        arrange_fds(o);
}

pid_t fork_sandboxed(const ForkOptions *o) {
        pid_t parent = getpid(), pid;

        if (o->n_fds > FORK_FDS_MAX)
                return -E2BIG;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_setup(o, parent);
        return pid;
}

_Noreturn void fork_exec(const char *path, char *const *argv) {
        execv(path, argv);
        child_fail(path);
}

_Noreturn void fork_execve(const char *path, char *const *argv, char *const *envp) {
        execve(path, argv, envp);
        child_fail(path);
}
