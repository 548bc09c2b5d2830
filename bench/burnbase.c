/* SPDX-License-Identifier: MIT */
/* burnbase PROCS ITEMS MS: W2's work without mplock. PROCS processes each
 * spin ITEMS x MS milliseconds of thread CPU time, exactly as the burn
 * module does; prints the wall time in seconds. What this machine gives
 * over the ideal (other tenants, interrupts) shows here too, so W2 is
 * compared with it in the same run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(clockid_t c) {
        struct timespec ts;
        clock_gettime(c, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static volatile uint64_t sink;

int main(int argc, char **argv) {
        int procs, items;
        int64_t ns, t0;

        if (argc != 4)
                return 2;
        procs = atoi(argv[1]);
        items = atoi(argv[2]);
        ns = (int64_t) atoi(argv[3]) * 1000000;
        t0 = now_ns(CLOCK_MONOTONIC);
        for (int p = 0; p < procs; p++) {
                pid_t pid = fork();
                if (pid < 0)
                        return 1;
                if (pid == 0) {
                        uint64_t x = 0;
                        for (int i = 0; i < items; i++) {
                                int64_t end = now_ns(CLOCK_THREAD_CPUTIME_ID) + ns;
                                while (now_ns(CLOCK_THREAD_CPUTIME_ID) < end)
                                        for (int k = 0; k < 1000; k++)
                                                x += (uint64_t) k * (x | 1);
                                sink = x;
                        }
                        _exit(0);
                }
        }
        while (wait(NULL) > 0)
                ;
        printf("%.6f\n", (double) (now_ns(CLOCK_MONOTONIC) - t0) / 1e9);
        return 0;
}
