/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fileio.h"
#include "fork.h"
#include "ipc.h"
#include "json-util.h"
#include "macro.h"
#include "run-error.h"
#include "runner.h"
#include "slurm.h"
#include "start.h"

/* "mplock-runner shard DIR" (slurm.h): what mplockd is for a local job,
 * for one shard on a node. It holds the shard's lock, keeps the shard's
 * checkpoint (common/checkpoint.c, beside the shard's results), and runs
 * an ordinary runner over the shard's items, whose commits it makes
 * durable there. SIGTERM (a pause, Slurm's end of the task) is a graceful
 * stop: what is in flight is finished and committed. */

typedef struct Driver {
        char dir[4096];
        char host[256];
        uint32_t index;
        int sfd;         /* the shard's directory */
        Checkpoint ck;
        uint64_t n_items;
        bool done, stopping;
        uint32_t fail_kind;
} Driver;

static int msg(const char *fmt, ...) _printf_(1, 2);
static int msg(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) fputs("mplock-runner shard: ", stderr);
        (void) vfprintf(stderr, fmt, ap);
        (void) fputc('\n', stderr);
        va_end(ap);
        return 0;
}

/* The start message of the shard, with what its checkpoint says. */
static char *start_message(Driver *d, size_t *len) {
        _cleanup_free_ char *text = NULL;
        const char *why = NULL, *t;
        char *ret = NULL;
        json_object *o;
        size_t n;
        int r;

        r = read_file_at(d->sfd, "start.json", IPC_MSG_MAX - 64, &text, &n);
        if (r < 0) {
                msg("cannot read %s/shard-%" PRIu32 "/start.json: %s", d->dir, d->index, strerror(-r));
                return NULL;
        }
        o = json_parse_strict(text, n, 64, &why);
        if (!o || !json_get(o, "items")) {
                msg("%s/shard-%" PRIu32 "/start.json is damaged", d->dir, d->index);
                json_object_put(o);
                return NULL;
        }
        d->n_items = json_get_uint(o, "items", 0);
        r = checkpoint_open(&d->ck, d->sfd, d->n_items);
        if (r < 0) {
                msg("cannot recover the shard's checkpoint: %s", strerror(-r));
                json_object_put(o);
                return NULL;
        }
        /* Resumed: an earlier task of this shard may have given items to save. */
        bool resumed = d->ck.seq > 0 || faccessat(d->sfd, "started", F_OK, 0) == 0;
        if (json_add_u64(o, "results_len", d->ck.results_len) >= 0 && json_add_u64(o, "done", d->ck.done) >= 0 &&
            json_add_u64(o, "failed", d->ck.failed) >= 0 && json_add_u64(o, "resumed", resumed) >= 0 &&
            (t = json_compact(o, len)))
                ret = strndup(t, *len);
        json_object_put(o);
        return ret;
}

static int on_message(Driver *d, uint32_t type, const void *payload, size_t len) {
        IpcCommit c;
        int r;

        switch (type) {
        case IPC_READY:
        case IPC_PROGRESS:
        case IPC_STATS: /* a shard's own: not shown (yet) */
                return 0;
        case IPC_COMMIT:
                if (len < sizeof(c))
                        return -EBADMSG;
                memcpy(&c, payload, sizeof(c));
                if (len != sizeof(c) + (size_t) c.n_ranges * sizeof(IpcRange))
                        return -EBADMSG;
                r = checkpoint_commit(&d->ck, &c, (const IpcRange *) ((const char *) payload + sizeof(c)));
                if (r < 0)
                        msg("cannot commit to the shard's checkpoint: %s", strerror(-r));
                return r;
        case IPC_DONE:
                d->done = d->ck.done == d->n_items;
                return d->done ? 0 : -EBADMSG;
        case IPC_FAIL:
                if (len < sizeof(IpcFail))
                        return -EBADMSG;
                memcpy(&d->fail_kind, payload, sizeof(d->fail_kind));
                msg("the shard's runner failed: %.*s", (int) (len - sizeof(IpcFail)),
                    (const char *) payload + sizeof(IpcFail));
                return 0;
        default:
                return -EBADMSG;
        }
}

/* The runner's messages until it exits; SIGTERM tells it to stop. */
static int serve(Driver *d, int sock, int sigfd) {
        static char buf[IPC_MSG_MAX] __attribute__((aligned(8)));
        struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };

        for (;;) {
                const void *payload;
                uint32_t type;
                size_t len;
                int r;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        IpcStop st = { .mode = IPC_STOP_GRACEFUL };
                        if (read(sigfd, &si, sizeof(si)) == sizeof(si) && !d->stopping) {
                                msg("signal %u: the shard stops after its items in flight", si.ssi_signo);
                                d->stopping = true;
                                (void) ipc_send(sock, IPC_STOP, &st, sizeof(st));
                        }
                }
                if (!p[0].revents)
                        continue;
                r = ipc_recv(sock, buf, sizeof(buf), &type, &len, &payload);
                if (r == -EAGAIN)
                        continue;
                if (r <= 0)
                        return r; /* the runner is gone */
                r = on_message(d, type, payload, len);
                if (r < 0)
                        return r;
        }
}

static int run_shard(Driver *d) {
        _cleanup_close_ int lock = -1, input = -1, memfd = -1, sigfd = -1;
        _cleanup_free_ char *start = NULL;
        int sv[2], status, r;
        sigset_t mask;
        RunError e;
        size_t len;
        pid_t pid;

        lock = openat(d->sfd, "input", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        input = openat(d->sfd, "input", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (lock < 0 || input < 0)
                return msg("cannot open the shard's input: %m"), SHARD_EXIT_UNREACHABLE;
        /* The lock before the checkpoint: a task of this shard that Slurm
         * is still killing may be committing. */
        if (start_lock(lock, START_LOCK_TIMEOUT_USEC * 2, &e) < 0)
                return msg("%s", e.msg), 1;
        start = start_message(d, &len);
        if (!start)
                return SHARD_EXIT_FAILED;
        if (d->ck.done == d->n_items)
                return msg("shard %" PRIu32 " was done already", d->index), SHARD_EXIT_DONE;
        /* Where it ran, for status (and: it ran, for "resumed"). */
        r = write_file_atomic_at(d->sfd, "started", d->host, strlen(d->host), 0644);
        if (r < 0)
                msg("cannot record that the shard started (status will not name its node): %s", strerror(-r));
        memfd = checkpoint_bitmap_memfd(&d->ck);
        if (memfd < 0)
                return msg("cannot pass the committed set: %s", strerror(-memfd)), 1;
        if (sigemptyset(&mask) < 0 || sigaddset(&mask, SIGTERM) < 0 || sigaddset(&mask, SIGINT) < 0 ||
            sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sigfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0)
                return msg("signals: %m"), 1;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return msg("socketpair: %m"), 1;
        const int fds[4] = { sv[1], lock, input, memfd };
        const ForkOptions fo = { .flags = FORK_RESET_SIGNALS | FORK_NEW_SESSION | FORK_DEATHSIG | FORK_CLOSE_FDS |
                                          FORK_KEEP_CLOEXEC | FORK_NULL_STDIN,
                                 .fds = fds, .n_fds = 4, .stdout_fd = -1, .stderr_fd = -1 };
        pid = fork_sandboxed(&fo);
        if (pid == 0)
                _exit(run_main());
        (void) close(sv[1]);
        if (pid < 0) {
                (void) close(sv[0]);
                return msg("fork: %s", strerror((int) -pid)), 1;
        }
        r = ipc_send(sv[0], IPC_START, start, len);
        if (r >= 0)
                r = serve(d, sv[0], sigfd);
        if (r < 0)
                (void) kill(-pid, SIGKILL);
        (void) close(sv[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (d->done)
                return SHARD_EXIT_DONE;
        if (d->fail_kind == IPC_FAIL_PERMANENT)
                return SHARD_EXIT_FAILED;
        return 1;
}

int shard_main(int argc, char **argv) {
        const char *idx = getenv("SLURM_ARRAY_TASK_ID");
        _cleanup_close_ int dirfd = -1;
        char name[32];
        Driver d = { .sfd = -1 };
        int r;

        if (argc != 3 && argc != 4)
                return msg("usage: mplock-runner shard DIR [INDEX]"), 2;
        if (argc == 4)
                idx = argv[3];
        if (!idx || !idx[0] || strspn(idx, "0123456789") != strlen(idx) || strlen(idx) > 5)
                return msg("no shard index ($SLURM_ARRAY_TASK_ID)"), 2;
        d.index = (uint32_t) strtoul(idx, NULL, 10);
        (void) snprintf(d.dir, sizeof(d.dir), "%s", argv[2]);
        (void) gethostname(d.host, sizeof(d.host) - 1);
        umask(077);
        dirfd = open(d.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return msg("the shared directory %s is not reachable on %s: %m", d.dir, d.host),
                       SHARD_EXIT_UNREACHABLE;
        (void) snprintf(name, sizeof(name), "shard-%" PRIu32, d.index);
        d.sfd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (d.sfd < 0)
                return msg("%s/%s is not reachable on %s: %m", d.dir, name, d.host), SHARD_EXIT_UNREACHABLE;
        r = run_shard(&d);
        checkpoint_close(&d.ck);
        (void) close(d.sfd);
        return r;
}
