/* SPDX-License-Identifier: MIT */
/* The machine's ceiling for W9: P processes, each posix_spawn()ing
 * `true N` and waiting for it, N items in all, nothing else. A command
 * runner can only add to this; mplock's W9 is measured against it
 * (bench/run.py). Prints the seconds. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int spawn_range(int from, int to) {
        for (int i = from; i < to; i++) {
                char num[16], *argv[] = { "/usr/bin/true", num, NULL };
                pid_t pid;
                int st;
                (void) snprintf(num, sizeof(num), "%d", i + 1);
                if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) != pid)
                        return 1;
        }
        return 0;
}

int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 10000, p = argc > 2 ? atoi(argv[2]) : 2, bad = 0;
        struct timespec a, b;

        if (n < 1 || p < 1 || p > 64)
                return 2;
        (void) clock_gettime(CLOCK_MONOTONIC, &a);
        for (int k = 0; k < p; k++) {
                pid_t pid = fork();
                if (pid < 0)
                        return 1;
                if (pid == 0)
                        _exit(spawn_range(n * k / p, n * (k + 1) / p));
        }
        for (int k = 0; k < p; k++) {
                int st;
                if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        bad = 1;
        }
        (void) clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%.6f\n", (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) * 1e-9);
        return bad;
}
