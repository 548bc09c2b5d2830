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
/* Arming costs no system call while the timer is already set: save
 * callbacks come a hundred thousand times in a job with small batches.
 * The timer goes off at the earliest deadline and is set again from the
 * handler for the current one, if a callback is still running. */
static volatile sig_atomic_t armed, pending;
static volatile int64_t deadline_ns; /* written only while not armed */

static int64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void set_timer(int64_t ns) {
        struct itimerspec its = { .it_value = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 } };

        (void) timer_settime(timer, 0, &its, NULL);
}

static void on_alarm(int sig) {
        IpcFail f = { .kind = IPC_FAIL_PERMANENT };
        int64_t left;

        (void) sig;
        if (!armed) {
                pending = 0;
                return;
        }
        left = deadline_ns - now_ns();
        if (left > 0) {
                set_timer(left); /* an earlier callback's deadline */
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
        int n;

        if (limit_sec == 0)
                return;
        n = snprintf(message, sizeof(message), "%s took longer than %u s (callback-timeout)", what, limit_sec);
        message_len = n < 0 ? 0 : MIN((size_t) n, sizeof(message) - 1);
        deadline_ns = now_ns() + (int64_t) limit_sec * 1000000000;
        __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the message before armed */
        armed = 1;
        /* After armed: a handler that ran before this saw it clear and
         * cleared pending; one that runs after sets the timer itself. */
        if (!pending) {
                pending = 1;
                set_timer((int64_t) limit_sec * 1000000000);
        }
}

void watchdog_disarm(void) {
        armed = 0;
}
