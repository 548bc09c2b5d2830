/* SPDX-License-Identifier: MIT */
#include "slurm-cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

extern char **environ;

static int64_t now_ms(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int spawn(char *const argv[], int out_w, int err_w, pid_t *ret) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        sigset_t none, all;
        int r;

        if (sigemptyset(&none) < 0 || sigfillset(&all) < 0)
                return -EINVAL;
        if (posix_spawn_file_actions_init(&fa) != 0)
                return -ENOMEM;
        if (posix_spawnattr_init(&at) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -ENOMEM;
        }
        r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
        /* Our blocked SIGCHLD and ignored SIGPIPE are not the command's. */
        if (r == 0)
                r = posix_spawnattr_setsigmask(&at, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&at, &all);
        if (r == 0)
                r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnp(ret, argv[0], &fa, &at, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        return -r;
}

/* Appends what fd has to the buffer, up to its bound: 1 while open. */
static int drain(int fd, char *buf, size_t *len, size_t max, bool keep_tail) {
        char tmp[4096];
        ssize_t n = read(fd, tmp, sizeof(tmp));

        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 1 : -errno;
        if (n == 0)
                return 0;
        if (keep_tail && *len + (size_t) n > max) {
                size_t keep = max > (size_t) n ? max - (size_t) n : 0;
                memmove(buf, buf + *len - (*len > keep ? keep : *len), *len > keep ? keep : *len);
                *len = *len > keep ? keep : *len;
        }
        if (*len + (size_t) n > max)
                n = (ssize_t) (max - *len);
        memcpy(buf + *len, tmp, (size_t) n);
        *len += (size_t) n;
        return 1;
}

static int collect(int out_r, int err_r, SlurmCmd *c) {
        struct pollfd p[2] = { { .fd = out_r, .events = POLLIN }, { .fd = err_r, .events = POLLIN } };
        size_t err_len = 0;
        int64_t deadline = now_ms() + SLURM_CMD_TIMEOUT_MS;

        while (p[0].fd >= 0 || p[1].fd >= 0) {
                int64_t left = deadline - now_ms();
                int r;

                if (left <= 0)
                        return -ETIMEDOUT;
                r = poll(p, 2, (int) left);
                if (r < 0 && errno != EINTR)
                        return -errno;
                for (int k = 0; k < 2 && r > 0; k++) {
                        if (p[k].fd < 0 || !p[k].revents)
                                continue;
                        r = k == 0 ? drain(p[k].fd, c->out, &c->out_len, SLURM_CMD_OUT_MAX, false)
                                   : drain(p[k].fd, c->err, &err_len, sizeof(c->err) - 1, true);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                p[k].fd = -1;
                        r = 1;
                }
        }
        c->out[c->out_len] = 0;
        c->err[err_len] = 0;
        return 0;
}

int slurm_cmd(char *const argv[], SlurmCmd *c) {
        _cleanup_close_ int out_r = -1, out_w = -1, err_r = -1, err_w = -1;
        int fds[2], status, r;
        pid_t pid;

        *c = (SlurmCmd){ .out = malloc(SLURM_CMD_OUT_MAX + 1) };
        if (!c->out)
                return -ENOMEM;
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        out_r = fds[0], out_w = fds[1];
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        err_r = fds[0], err_w = fds[1];
        r = spawn(argv, out_w, err_w, &pid);
        if (r < 0)
                return r;
        out_w = safe_close(out_w);
        err_w = safe_close(err_w);
        r = collect(out_r, err_r, c);
        if (r < 0)
                (void) kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        c->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return r;
}

void slurm_cmd_done(SlurmCmd *c) {
        c->out = mfree(c->out);
}
