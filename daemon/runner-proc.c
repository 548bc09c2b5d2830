/* SPDX-License-Identifier: MIT */
#include "runner-proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fork.h"
#include "log.h"
#include "macro.h"

/* Runners are told at most 64 messages' worth per wakeup, so that one busy
 * runner cannot keep the loop from everybody else. */
#define RUNNER_MESSAGES_PER_WAKEUP 64
#define RUNNER_FAIL_MESSAGE_MAX 1024u

struct RunnerProc {
        sd_event *event;
        pid_t pid;
        int fd;
        sd_event_source *io, *child, *kill_timer;
        const RunnerEvents *ev;
        void *userdata;
        bool stop_sent, ignored;
};

static uint8_t ipc_buf[IPC_MSG_MAX] __attribute__((aligned(8)));

pid_t runner_exec(const RunnerLaunch *launch, char **argv, const int *fds, size_t n_fds) {
        ForkOptions o = {
                .flags = FORK_RESET_SIGNALS | FORK_NEW_SESSION | FORK_DEATHSIG | FORK_CLOSE_FDS | FORK_NULL_STDIN |
                         FORK_NO_NEW_PRIVS,
                .fds = fds,
                .n_fds = n_fds,
                .stdout_fd = -1,
                .stderr_fd = -1, /* ours: the journal under systemd */
                .identity = launch->identity,
                .rlimit_nproc = launch->identity && launch->identity->drop ? launch->nproc : 0,
        };
        pid_t pid = fork_sandboxed(&o);

        if (pid == 0)
                fork_exec(launch->path, argv);
        return pid;
}

static int reap_handler(sd_event_source *s, const siginfo_t *si, void *userdata) {
        (void) si;
        (void) userdata;
        (void) sd_event_source_set_floating(s, false);
        sd_event_source_disable_unref(s);
        return 0;
}

void runner_kill_and_reap(sd_event *event, pid_t pid) {
        sd_event_source *s = NULL;

        (void) kill(-pid, SIGKILL);
        if (sd_event_add_child(event, &s, pid, WEXITED, reap_handler, NULL) < 0) {
                /* Cannot watch it: reaping it now, after SIGKILL, is the
                 * lesser evil to a zombie for ever. */
                (void) waitpid(pid, NULL, 0);
                return;
        }
        (void) sd_event_source_set_description(s, "reap");
        (void) sd_event_source_set_floating(s, true);
        sd_event_source_unref(s);
}

pid_t runner_proc_pid(const RunnerProc *p) {
        return p ? p->pid : 0;
}

bool runner_proc_stop_sent(const RunnerProc *p) {
        return p && p->stop_sent;
}

void runner_proc_kill(RunnerProc *p) {
        /* While the runner's zombie holds its pid, the group cannot have
         * been reused. */
        if (p && p->pid > 0)
                (void) kill(-p->pid, SIGKILL);
}

void runner_proc_ignore(RunnerProc *p) {
        p->ignored = true;
}

static void runner_proc_detach(RunnerProc *p) {
        p->io = sd_event_source_disable_unref(p->io);
        p->child = sd_event_source_disable_unref(p->child);
        p->kill_timer = sd_event_source_disable_unref(p->kill_timer);
        p->fd = safe_close(p->fd);
}

RunnerProc *runner_proc_free(RunnerProc *p) {
        if (!p)
                return NULL;
        runner_proc_kill(p); /* only when the job goes away with it alive */
        runner_proc_detach(p);
        free(p);
        return NULL;
}

static int kill_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        RunnerProc *p = userdata;

        (void) s;
        (void) usec;
        log_warning("Runner %d did not stop in time, killing it.", (int) p->pid);
        runner_proc_kill(p);
        return 0;
}

void runner_proc_stop(RunnerProc *p, uint32_t mode, uint64_t kill_after_usec) {
        IpcStop st = { .mode = mode };
        int r;

        if (!p || p->pid <= 0)
                return;
        /* One that cannot hear us is stopped the hard way, which is safe:
         * everything it has not committed is done again. */
        if (p->fd < 0 || ipc_send(p->fd, IPC_STOP, &st, sizeof(st)) < 0)
                runner_proc_kill(p);
        p->stop_sent = true;
        p->kill_timer = sd_event_source_disable_unref(p->kill_timer);
        r = sd_event_add_time_relative(p->event, &p->kill_timer, CLOCK_MONOTONIC, kill_after_usec, 0,
                                       kill_timer_handler, p);
        if (r < 0)
                runner_proc_kill(p);
        else
                (void) sd_event_source_set_description(p->kill_timer, "runner-kill");
}

static void protocol_error(RunnerProc *p, const char *what) {
        char msg[256];

        (void) snprintf(msg, sizeof(msg), "job runner broke the protocol: %s", what);
        p->ev->fail(p->userdata, IPC_FAIL_PERMANENT, msg);
        runner_proc_kill(p);
        p->ignored = true;
}

static void handle_commit(RunnerProc *p, const void *payload, size_t len) {
        IpcCommit c;
        int r;

        if (len < sizeof(c)) {
                protocol_error(p, "short commit");
                return;
        }
        memcpy(&c, payload, sizeof(c));
        if (c.n_ranges == 0 || c.n_ranges > IPC_COMMIT_RANGES_MAX || len != sizeof(c) + c.n_ranges * sizeof(IpcRange)) {
                protocol_error(p, "commit of the wrong length");
                return;
        }
        /* Aligned: the payload sits 8 bytes into an aligned buffer. */
        r = p->ev->commit(p->userdata, &c, (const IpcRange *) (const void *) ((const char *) payload + sizeof(c)));
        if (r == -EINVAL)
                protocol_error(p, "commit of items that are out of range or already committed");
        else if (r < 0) {
                /* Whatever it sends from now on cannot be recorded. */
                p->ignored = true;
                runner_proc_kill(p);
        }
}

static void handle_fail(RunnerProc *p, const void *payload, size_t len) {
        char msg[RUNNER_FAIL_MESSAGE_MAX + 1];
        IpcFail f;
        size_t n;

        if (len < sizeof(f)) {
                protocol_error(p, "short failure message");
                return;
        }
        memcpy(&f, payload, sizeof(f));
        n = MIN(len - sizeof(f), (size_t) RUNNER_FAIL_MESSAGE_MAX);
        memcpy(msg, (const char *) payload + sizeof(f), n);
        msg[n] = '\0';
        /* Shown to users and logged: printable characters only. */
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) msg[i] < 0x20 || msg[i] == 0x7f)
                        msg[i] = msg[i] ? ' ' : '\0';
        p->ev->fail(p->userdata, f.kind == IPC_FAIL_PERMANENT || f.kind == IPC_FAIL_STORAGE ? f.kind : IPC_FAIL_TEMPORARY,
                    msg);
}

static void handle_message(RunnerProc *p, uint32_t type, const void *payload, size_t len) {
        IpcProgress pr;

        switch (type) {
        case IPC_READY:
                p->ev->ready(p->userdata);
                break;
        case IPC_COMMIT:
                handle_commit(p, payload, len);
                break;
        case IPC_DONE:
                if (p->ev->done(p->userdata) < 0)
                        protocol_error(p, "done before every item was committed");
                break;
        case IPC_FAIL:
                handle_fail(p, payload, len);
                break;
        case IPC_PROGRESS:
                if (len != sizeof(pr)) {
                        protocol_error(p, "progress of the wrong length");
                        break;
                }
                memcpy(&pr, payload, sizeof(pr));
                p->ev->progress(p->userdata, pr.processed, pr.workers);
                break;
        default:
                protocol_error(p, "unknown message type");
        }
}

/* Reads up to max messages: 1 if there may be more, 0 if there are none
 * now (or none ever again). */
static int runner_read(RunnerProc *p, unsigned max) {
        for (unsigned k = 0; k < max; k++) {
                uint32_t type;
                size_t len;
                const void *payload;
                int r = ipc_recv(p->fd, ipc_buf, sizeof(ipc_buf), &type, &len, &payload);

                if (r == -EAGAIN)
                        return 0;
                if (r <= 0) {
                        if (r < 0 && r != -ECONNRESET && !p->ignored)
                                protocol_error(p, "malformed message");
                        /* EOF: the exit status comes with SIGCHLD. */
                        p->io = sd_event_source_disable_unref(p->io);
                        p->fd = safe_close(p->fd);
                        return 0;
                }
                if (!p->ignored)
                        handle_message(p, type, payload, len);
        }
        return 1;
}

static int runner_io_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) s;
        (void) fd;
        (void) revents;
        (void) runner_read(userdata, RUNNER_MESSAGES_PER_WAKEUP);
        return 0;
}

static int runner_child_handler(sd_event_source *s, const siginfo_t *si, void *userdata) {
        RunnerProc *p = userdata;

        (void) s;
        /* No worker may outlive its runner. */
        runner_proc_kill(p);
        /* What it sent before it died counts (its last commit). */
        while (p->fd >= 0 && runner_read(p, RUNNER_MESSAGES_PER_WAKEUP) > 0)
                ;
        p->pid = 0;
        runner_proc_detach(p);
        p->ev->exited(p->userdata, si->si_code, si->si_status);
        return 0;
}

static int runner_proc_watch(RunnerProc *p) {
        int r;

        if (fcntl(p->fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(p->event, &p->io, p->fd, EPOLLIN, runner_io_handler, p);
        if (r >= 0)
                r = sd_event_add_child(p->event, &p->child, p->pid, WEXITED, runner_child_handler, p);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(p->io, "runner-ipc");
        (void) sd_event_source_set_description(p->child, "runner-exit");
        return 0;
}

int runner_proc_start(RunnerProc **ret, sd_event *event, const RunnerLaunch *launch, const char *start,
                      size_t start_len, const int fds[3], const RunnerEvents *ev, void *userdata) {
        char *argv[] = { (char *) "mplock-runner", (char *) "run", NULL };
        _cleanup_close_ int sv0 = -1, sv1 = -1;
        int sv[2], child_fds[4], r;
        RunnerProc *p;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        sv0 = sv[0];
        sv1 = sv[1];
        /* Queued before the runner exists: the first thing it reads. */
        r = ipc_send(sv0, IPC_START, start, start_len);
        if (r < 0)
                return r;
        child_fds[0] = sv1;
        memcpy(child_fds + 1, fds, 3 * sizeof(int));
        pid = runner_exec(launch, argv, child_fds, ELEMENTSOF(child_fds));
        if (pid < 0)
                return pid;
        p = calloc(1, sizeof(*p));
        if (!p) {
                runner_kill_and_reap(event, pid);
                return -ENOMEM;
        }
        *p = (RunnerProc){ .event = event, .pid = pid, .fd = TAKE_FD(sv0), .ev = ev, .userdata = userdata };
        r = runner_proc_watch(p);
        if (r < 0) {
                runner_proc_detach(p);
                runner_kill_and_reap(event, pid);
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}
