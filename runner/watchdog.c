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
static volatile sig_atomic_t armed;

static void on_alarm(int sig) {
        IpcFail f = { .kind = IPC_FAIL_PERMANENT };

        (void) sig;
        if (!armed)
                return;
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
        struct itimerspec its = { .it_value = { .tv_sec = limit_sec } };
        int n;

        if (limit_sec == 0)
                return;
        n = snprintf(message, sizeof(message), "%s took longer than %u s (callback-timeout)", what, limit_sec);
        message_len = n < 0 ? 0 : MIN((size_t) n, sizeof(message) - 1);
        armed = 1;
        (void) timer_settime(timer, 0, &its, NULL);
}

void watchdog_disarm(void) {
        static const struct itimerspec off = {};

        armed = 0;
        (void) timer_settime(timer, 0, &off, NULL);
}
