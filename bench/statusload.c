/* SPDX-License-Identifier: MIT */
/* Status calls per second from many concurrent clients (benchmark W5):
 * N connections, each sending io.mplock.Manager.Status {id} and waiting for
 * its reply before the next, for S seconds; prints calls/s and the latency
 * percentiles. C and epoll, so that the load generator is not the limit.
 *
 * Usage: statusload SOCKET JOB_ID CLIENTS SECONDS */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

typedef struct Client {
        int fd;
        size_t got;
        double sent_at;
} Client;

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char call[128], buf[65536];
        int n, ep, len;
        double seconds, start, end;
        Client *cl;
        double *lat;
        size_t n_lat = 0, cap_lat = 1 << 22;
        unsigned long long calls = 0;

        if (argc != 5) {
                fprintf(stderr, "usage: statusload SOCKET JOB_ID CLIENTS SECONDS\n");
                return 2;
        }
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
        len = snprintf(call, sizeof(call), "{\"method\":\"io.mplock.Manager.Status\",\"parameters\":{\"id\":%s}}",
                       argv[2]) + 1; /* with its NUL */
        n = atoi(argv[3]);
        seconds = atof(argv[4]);
        cl = calloc((size_t) n, sizeof(*cl));
        lat = malloc(cap_lat * sizeof(double));
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (!cl || !lat || ep < 0)
                return 1;
        for (int i = 0; i < n; i++) {
                struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t) i };
                cl[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (cl[i].fd < 0 || connect(cl[i].fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        perror("connect");
                        return 1;
                }
                epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &ev);
        }
        start = now();
        end = start + seconds;
        for (int i = 0; i < n; i++) {
                cl[i].sent_at = now();
                if (write(cl[i].fd, call, (size_t) len) != len)
                        return 1;
        }
        while (now() < end) {
                struct epoll_event evs[256];
                int k = epoll_wait(ep, evs, 256, 100);
                for (int e = 0; e < k; e++) {
                        Client *c = &cl[evs[e].data.u32];
                        ssize_t r = read(c->fd, buf, sizeof(buf));
                        if (r <= 0) {
                                fprintf(stderr, "a connection closed\n");
                                return 1;
                        }
                        /* One reply per call, ended by its NUL. */
                        if (memchr(buf, 0, (size_t) r)) {
                                double t = now();
                                calls++;
                                if (n_lat < cap_lat)
                                        lat[n_lat++] = t - c->sent_at;
                                c->sent_at = t;
                                if (write(c->fd, call, (size_t) len) != len)
                                        return 1;
                        }
                }
        }
        qsort(lat, n_lat, sizeof(double), cmp);
        printf("{\"calls\": %llu, \"seconds\": %.3f, \"per_second\": %.0f, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
               calls, now() - start, (double) calls / (now() - start), n_lat ? lat[n_lat / 2] * 1e3 : 0.0,
               n_lat ? lat[n_lat * 99 / 100] * 1e3 : 0.0);
        return 0;
}
