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

#include "agents.h"
#include "log.h"
#include "macro.h"
#include "stats.h"

/* Runners are told at most 64 messages' worth per wakeup, so that one busy
 * runner cannot keep the loop from everybody else. */
#define RUNNER_MESSAGES_PER_WAKEUP 64
#define RUNNER_FAIL_MESSAGE_MAX 1024u

struct RunnerProc {
        sd_event *event;
        AgentTask *task;
        int fd;
        sd_event_source *io, *kill_timer;
        const RunnerEvents *ev;
        void *userdata;
        pid_t ready_pid; /* the sender of IPC_READY, as the kernel says */
        bool stop_sent, ignored;
};

static uint8_t ipc_buf[IPC_MSG_MAX] __attribute__((aligned(8)));

pid_t runner_proc_pid(const RunnerProc *p) {
        return p && p->task ? agent_task_pid(p->task) : 0;
}

pid_t runner_proc_ready_pid(const RunnerProc *p) {
        return p ? p->ready_pid : 0;
}

int runner_proc_placed(RunnerProc *p) {
        if (!p || p->fd < 0)
                return -ENOTCONN;
        return ipc_send(p->fd, IPC_PLACED, NULL, 0);
}

bool runner_proc_stop_sent(const RunnerProc *p) {
        return p && p->stop_sent;
}

void runner_proc_kill(RunnerProc *p) {
        /* Its agent kills the group while the runner's zombie holds its
         * id, so that it cannot have been reused. */
        if (p && p->task)
                agent_task_kill(p->task);
}

void runner_proc_ignore(RunnerProc *p) {
        p->ignored = true;
}

static void runner_proc_detach(RunnerProc *p) {
        p->io = sd_event_source_disable_unref(p->io);
        p->kill_timer = sd_event_source_disable_unref(p->kill_timer);
        p->fd = safe_close(p->fd);
}

RunnerProc *runner_proc_free(RunnerProc *p) {
        if (!p)
                return NULL;
        /* Killed if it is still alive (the job goes away with it). */
        p->task = agent_task_free(p->task);
        runner_proc_detach(p);
        free(p);
        return NULL;
}

static int kill_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        RunnerProc *p = userdata;

        (void) s;
        (void) usec;
        log_warning("Runner %d did not stop in time, killing it.", (int) runner_proc_pid(p));
        runner_proc_kill(p);
        return 0;
}

static void stop_with(RunnerProc *p, uint32_t mode, uint32_t flags, uint64_t kill_after_usec);

void runner_proc_stop(RunnerProc *p, uint32_t mode, uint64_t kill_after_usec) {
        stop_with(p, mode, 0, kill_after_usec);
}

void runner_proc_pause(RunnerProc *p, uint64_t kill_after_usec) {
        stop_with(p, IPC_STOP_GRACEFUL, IPC_STOP_FLAG_PAUSE, kill_after_usec);
}

static void stop_with(RunnerProc *p, uint32_t mode, uint32_t flags, uint64_t kill_after_usec) {
        IpcStop st = { .mode = mode, .flags = flags };
        int r;

        if (!p || !p->task)
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

/* A Slurm job's ids and node names: what squeue prints, nothing else. */
static bool slurm_text_ok(const char *s, size_t max) {
        size_t n = strnlen(s, max);

        return n < max && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._,-[]") == n;
}

static void handle_shards(RunnerProc *p, const void *payload, size_t len) {
        IpcShards h;
        const IpcShard *v;

        if (len < sizeof(h)) {
                protocol_error(p, "short shards message");
                return;
        }
        memcpy(&h, payload, sizeof(h));
        if (h.n == 0 || h.n > IPC_SHARDS_MAX || len != sizeof(h) + h.n * sizeof(IpcShard) ||
            !slurm_text_ok(h.array, sizeof(h.array))) {
                protocol_error(p, "shards message of the wrong form");
                return;
        }
        /* Aligned: IpcShards is a multiple of 8 bytes. */
        v = (const IpcShard *) (const void *) ((const char *) payload + sizeof(h));
        for (uint32_t k = 0; k < h.n; k++)
                if (v[k].state >= _IPC_SHARD_STATE_MAX || v[k].done > v[k].items || v[k].failed > v[k].done ||
                    !slurm_text_ok(v[k].job, sizeof(v[k].job)) || !slurm_text_ok(v[k].node, sizeof(v[k].node))) {
                        protocol_error(p, "a shard of the wrong form");
                        return;
                }
        if (p->ev->shards)
                p->ev->shards(p->userdata, h.array, v, h.n);
}

static void handle_stats(RunnerProc *p, const void *payload, size_t len) {
        if (stats_msg_check(payload, len) < 0) {
                protocol_error(p, "stats message of the wrong form");
                return;
        }
        if (p->ev->stats && p->ev->stats(p->userdata, payload, len) == -EINVAL)
                protocol_error(p, "stats of items or workers the job does not have");
}

static void handle_message(RunnerProc *p, uint32_t type, const void *payload, size_t len, const struct ucred *cred) {
        IpcReused ru;
        IpcProgress pr;

        switch (type) {
        case IPC_READY:
                if (p->ready_pid == 0)
                        p->ready_pid = cred->pid;
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
        case IPC_SHARDS:
                handle_shards(p, payload, len);
                break;
        case IPC_REUSED:
                if (len != sizeof(IpcReused)) {
                        protocol_error(p, "reused count of the wrong length");
                        break;
                }
                memcpy(&ru, payload, sizeof(ru));
                if (!p->ev->reused || p->ev->reused(p->userdata, ru.count) < 0)
                        protocol_error(p, "more results reused than the job has items");
                break;
        case IPC_STATS:
                handle_stats(p, payload, len);
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
                struct ucred cred;
                int r = ipc_recv_cred(p->fd, ipc_buf, sizeof(ipc_buf), &type, &len, &payload, &cred);

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
                        handle_message(p, type, payload, len, &cred);
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

static void runner_exited(AgentTask *t, int code, int status, void *userdata) {
        RunnerProc *p = userdata;

        (void) t;
        /* What it sent before it died counts (its last commit). */
        while (p->fd >= 0 && runner_read(p, RUNNER_MESSAGES_PER_WAKEUP) > 0)
                ;
        p->task = agent_task_free(p->task);
        runner_proc_detach(p);
        p->ev->exited(p->userdata, code, status);
}

int runner_proc_start(RunnerProc **ret, Agents *agents, uid_t uid, gid_t gid, const char *start, size_t start_len,
                      const int fds[3], const char *warm_python, const RunnerEvents *ev, void *userdata) {
        const char *const args[] = { "run", "--warm-python", warm_python };
        _cleanup_close_ int sv0 = -1, sv1 = -1;
        int sv[2], child_fds[4], r;
        RunnerProc *p;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        sv0 = sv[0];
        sv1 = sv[1];
        /* Queued before the runner exists: the first thing it reads. */
        r = ipc_send(sv0, IPC_START, start, start_len);
        if (r < 0)
                return r;
        if (fcntl(sv0, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        /* Each message then carries its sender's pid, checked by the
         * kernel: the runner's, for its scope (not the agent's word). */
        if (setsockopt(sv0, SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int)) < 0)
                return -errno;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (RunnerProc){ .event = agents_event(agents), .fd = -1, .ev = ev, .userdata = userdata };
        child_fds[0] = sv1;
        memcpy(child_fds + 1, fds, 3 * sizeof(int));
        p->fd = TAKE_FD(sv0);
        r = sd_event_add_io(p->event, &p->io, p->fd, EPOLLIN, runner_io_handler, p);
        if (r >= 0)
                r = agents_spawn(agents, uid, gid, AGENT_MODE_RUN, args, warm_python ? 3 : 1, child_fds,
                                 ELEMENTSOF(child_fds), runner_exited, p, &p->task);
        if (r < 0) {
                runner_proc_detach(p);
                free(p);
                return r;
        }
        (void) sd_event_source_set_description(p->io, "runner-ipc");
        *ret = p;
        return 0;
}
