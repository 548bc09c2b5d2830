/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fork.h"
#include "test-util.h"

/* What a child of fork_sandboxed() inherits: the descriptors it was
 * given, in order, and nothing else; a fresh signal state; its own
 * session; a death signal. It reports on fd 3, a pipe. */

static void child_report(void) {
        char line[512];
        int open_fds = 0, n;
        sigset_t mask;
        struct sigaction sa;
        int deathsig = 0;

        for (int fd = 0; fd < 1024; fd++)
                open_fds += fcntl(fd, F_GETFD) >= 0;
        (void) sigprocmask(SIG_SETMASK, NULL, &mask);
        (void) sigaction(SIGTERM, NULL, &sa);
        (void) prctl(PR_GET_PDEATHSIG, &deathsig);
        n = snprintf(line, sizeof(line), "fds=%d fd4=%d blocked=%d term_default=%d leader=%d deathsig=%d", open_fds,
                     fcntl(4, F_GETFD) >= 0, sigismember(&mask, SIGCHLD), sa.sa_handler == SIG_DFL,
                     getsid(0) == getpid(), deathsig);
        (void) !write(3, line, (size_t) n);
        _exit(0);
}

START_TEST(test_child_gets_what_it_is_given) {
        int report[2], extra[2], stray = open("/dev/null", O_RDONLY); /* not O_CLOEXEC: must still not leak */
        char buf[512] = "";
        sigset_t block;
        int status, fds[2];
        ForkOptions o = {
                .flags = FORK_RESET_SIGNALS | FORK_NEW_SESSION | FORK_DEATHSIG | FORK_CLOSE_FDS | FORK_NULL_STDIN,
                .fds = fds,
                .n_fds = 2,
                .stdout_fd = -1,
                .stderr_fd = -1,
        };
        pid_t pid;
        ssize_t n;

        ck_assert_int_ge(stray, 0);
        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(extra, O_CLOEXEC), 0);
        fds[0] = report[1];
        fds[1] = extra[0];
        (void) sigemptyset(&block);
        (void) sigaddset(&block, SIGCHLD);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &block, NULL), 0);
        (void) signal(SIGTERM, SIG_IGN);
        pid = fork_sandboxed(&o);
        if (pid == 0)
                child_report(); /* no ck_assert in the child: Check's pipe is gone */
        ck_assert_int_ge(pid, 0);
        close(report[1]);
        n = read_full(report[0], buf, sizeof(buf) - 1);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* 0-2, and the two passed as 3 and 4. */
        ck_assert_str_eq(buf, "fds=5 fd4=1 blocked=0 term_default=1 leader=1 deathsig=9");
        close(report[0]);
        close(extra[0]);
        close(extra[1]);
        close(stray);
}
END_TEST

/* The passed fds are inheritable across exec by default (mplockd hands
 * the agent its socket so), close-on-exec with FORK_KEEP_CLOEXEC (a
 * worker: what its module runs must not get the worker's channel). */
static int passed_fd_flags(ForkFlags extra) {
        int report[2], flags = -2;
        ForkOptions o = { .flags = FORK_CLOSE_FDS | extra, .n_fds = 1, .stdout_fd = -1, .stderr_fd = -1 };
        pid_t pid;

        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        o.fds = &report[1];
        pid = fork_sandboxed(&o);
        if (pid == 0) {
                int f = fcntl(3, F_GETFD);
                (void) !write(3, &f, sizeof(f));
                _exit(0);
        }
        ck_assert_int_gt(pid, 0);
        close(report[1]);
        ck_assert_int_eq(read_full(report[0], &flags, sizeof(flags)), (ssize_t) sizeof(flags));
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        close(report[0]);
        return flags;
}

START_TEST(test_keep_cloexec) {
        ck_assert_int_eq(passed_fd_flags(0), 0);
        ck_assert_int_eq(passed_fd_flags(FORK_KEEP_CLOEXEC), FD_CLOEXEC);
}
END_TEST

/* A child that cannot set itself up says so on stderr and exits 127. */
START_TEST(test_failed_setup_exits_127) {
        int err[2], status, bad = 1000;
        char buf[256] = "";
        ForkOptions o = { .flags = FORK_CLOSE_FDS, .fds = &bad, .n_fds = 1, .stdout_fd = -1 };
        pid_t pid;

        ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
        o.stderr_fd = err[1];
        pid = fork_sandboxed(&o);
        if (pid == 0)
                _exit(0); /* never reached: the setup fails first */
        ck_assert_int_gt(pid, 0);
        close(err[1]);
        ck_assert_int_gt(read_full(err[0], buf, sizeof(buf) - 1), 0);
        ck_assert_ptr_nonnull(strstr(buf, "mplock: child setup failed: F_DUPFD: errno 9"));
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 127);
        close(err[0]);
        ck_assert_int_eq(fork_sandboxed(&(ForkOptions){ .n_fds = FORK_FDS_MAX + 1 }), -E2BIG);
}
END_TEST

static Suite *fork_suite(void) {
        Suite *s = suite_create("fork");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_child_gets_what_it_is_given);
        tcase_add_test(tc, test_failed_setup_exits_127);
        tcase_add_test(tc, test_keep_cloexec);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(fork_suite());
}
