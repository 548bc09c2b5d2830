/* SPDX-License-Identifier: MIT */
#include "watchdog.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "macro.h"

static timer_t timer;
static int report_fd = -1;
static char message[160];
static size_t message_len;
/* Arming costs no system call while the timer is already set late
 * enough: save callbacks come a hundred thousand times in a job with small
 * batches. The timer is set half a bound past the deadline that set it,
 * so that the callbacks armed in the next half bound are covered too: a
 * callback is stopped between its bound and one and a half of it, and the
 * timer never goes off before a running callback's deadline (its signal
 * would interrupt the callback's system calls). */
static volatile sig_atomic_t armed;
static volatile int64_t deadline_ns; /* written only while not armed */
static volatile int64_t expiry_ns;   /* when the timer goes off; 0: not set */

static int64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void set_timer(int64_t at, int64_t now) {
        int64_t ns = at - now;
        struct itimerspec its = { .it_value = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 } };

        expiry_ns = at;
        (void) timer_settime(timer, 0, &its, NULL);
}

static void on_alarm(int sig) {
        IpcFail f = { .kind = IPC_FAIL_PERMANENT };
        int64_t now = now_ns();

        (void) sig;
        expiry_ns = 0;
        if (!armed)
                return;
        if (now < deadline_ns) {
                set_timer(deadline_ns, now); /* armed while this went off */
                return;
        }
        (void) ipc_send2(report_fd, IPC_FAIL, &f, sizeof(f), message, message_len);
        (void) kill(0, SIGKILL); /* the workers, and us */
        _exit(1);
}

int watchdog_init(int ipc_fd) {
        struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
        struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
        sigset_t set;

        report_fd = ipc_fd;
        (void) sigemptyset(&sa.sa_mask);
        if (sigaction(SIGALRM, &sa, NULL) < 0)
                return -errno;
        (void) sigemptyset(&set);
        (void) sigaddset(&set, SIGALRM);
        if (sigprocmask(SIG_UNBLOCK, &set, NULL) < 0)
                return -errno;
        return timer_create(CLOCK_MONOTONIC, &ev, &timer) < 0 ? -errno : 0;
}

void watchdog_arm(const char *what, uint32_t limit_sec) {
        int64_t now, bound = (int64_t) limit_sec * 1000000000;
        int n;

        if (limit_sec == 0)
                return;
        n = snprintf(message, sizeof(message), "%s took longer than %u s (callback-timeout)", what, limit_sec);
        message_len = n < 0 ? 0 : MIN((size_t) n, sizeof(message) - 1);
        now = now_ns();
        deadline_ns = now + bound;
        __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the message and deadline before armed */
        armed = 1;
        /* After armed: a handler that runs from here on sees this deadline. */
        if (expiry_ns < deadline_ns)
                set_timer(deadline_ns + bound / 2, now);
}

void watchdog_disarm(void) {
        armed = 0;
}
