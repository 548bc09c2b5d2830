/* SPDX-License-Identifier: MIT */
/* The median time of fork, _exit and waitpid of a small process, in
 * microseconds: what each process of a job costs at least on this
 * machine (bench/run.py, W7). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec + (double) t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 200;
        double *t;

        if (n < 1 || n > 100000 || !(t = calloc((size_t) n, sizeof(*t))))
                return 2;
        for (int i = 0; i < n; i++) {
                double a = now();
                pid_t p = fork();
                if (p < 0)
                        return 1;
                if (p == 0)
                        _exit(0);
                if (waitpid(p, NULL, 0) < 0)
                        return 1;
                t[i] = now() - a;
        }
        qsort(t, (size_t) n, sizeof(*t), cmp);
        printf("%.1f\n", t[n / 2] * 1e6);
        free(t);
        return 0;
}
