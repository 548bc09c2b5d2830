/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "mplockd.h"

/* Children see exactly these descriptors: 0 /dev/null, 1 and 2 the daemon's
 * (the journal under systemd), and the ones passed from 3 on. */

#define MAX_GROUPS 1024

static uint8_t ipc_buf[IPC_MSG_MAX];

typedef struct Identity {
        bool drop;
        uid_t uid;
        gid_t gid;
        gid_t groups[MAX_GROUPS];
        int n_groups;
        uint32_t nproc; /* RLIMIT_NPROC once dropped: a module cannot fork without bound */
} Identity;

/* Resolved in the parent: getpwuid() and friends are not safe after fork. */
static int identity_resolve(Identity *id, uid_t uid, gid_t gid) {
        struct passwd *pw;

        *id = (Identity){ .uid = uid, .gid = gid };
        if (geteuid() != 0 || uid == 0)
                return 0; /* a user instance runs everything as its user */
        id->drop = true;
        errno = 0;
        pw = getpwuid(uid);
        id->n_groups = MAX_GROUPS;
        if (!pw || getgrouplist(pw->pw_name, gid, id->groups, &id->n_groups) < 0) {
                /* A uid with no passwd entry still gets its primary group. */
                id->groups[0] = gid;
                id->n_groups = 1;
        }
        return 0;
}

/* Opens path with the file system identity of uid (its gid and groups):
 * the kernel then checks every path component with that user's rights,
 * and this process's capabilities do not apply to it. Only the system
 * instance (root) switches; a user instance opens as itself. */
int open_as_owner(const char *path, int flags, uid_t uid, gid_t gid) {
        gid_t saved[MAX_GROUPS];
        Identity id;
        int n_saved, fd, err;

        (void) identity_resolve(&id, uid, gid);
        if (!id.drop) {
                fd = open(path, flags);
                return fd < 0 ? -errno : fd;
        }
        n_saved = getgroups(MAX_GROUPS, saved);
        if (n_saved < 0)
                return -errno;
        if (setgroups((size_t) id.n_groups, id.groups) < 0)
                return -errno;
        (void) setfsgid(gid);
        (void) setfsuid(uid);
        /* setfsuid() cannot fail loudly: ask what is in force. */
        if ((uid_t) setfsuid((uid_t) -1) != uid || (gid_t) setfsgid((gid_t) -1) != gid) {
                fd = -1;
                err = EPERM;
        } else {
                fd = open(path, flags);
                err = errno;
        }
        (void) setfsuid(geteuid());
        (void) setfsgid(getegid());
        if (setgroups((size_t) n_saved, saved) < 0 || (uid_t) setfsuid((uid_t) -1) != geteuid() ||
            (gid_t) setfsgid((gid_t) -1) != getegid()) {
                /* Cannot get our own identity back: do not go on as
                 * somebody else. */
                log_error_errno(errno, "Cannot restore our identity after opening as uid %u: %m", (unsigned) uid);
                abort();
        }
        return fd < 0 ? -err : fd;
}

_noreturn_ static void child_fail(const char *what) {
        /* stderr is the daemon's; keep it to one line and async-signal-safe. */
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "mplockd: child setup failed: %s: %s\n", what, strerror(errno));
        if (n > 0)
                (void) !write(STDERR_FILENO, buf, (size_t) MIN(n, (int) sizeof(buf) - 1));
        _exit(127);
}

static void child_exec(const char *path, char **argv, const int *fds, size_t n_fds, const Identity *id,
                       pid_t parent) {
        sigset_t all;
        int null_fd, tmp[16];

        /* Signals: nothing blocked, nothing ignored, as a fresh process. */
        (void) sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);

        /* Own session and process group: the daemon can signal the runner
         * and all its workers at once. */
        if (setsid() < 0)
                child_fail("setsid");

        if (id->drop) {
                struct rlimit rl = { .rlim_cur = id->nproc, .rlim_max = id->nproc };
                /* Counted per user over the whole system, checked at fork. */
                if (id->nproc > 0 && setrlimit(RLIMIT_NPROC, &rl) < 0)
                        child_fail("setrlimit(RLIMIT_NPROC)");
                if (setgroups((size_t) id->n_groups, id->groups) < 0)
                        child_fail("setgroups");
                if (setresgid(id->gid, id->gid, id->gid) < 0)
                        child_fail("setresgid");
                if (setresuid(id->uid, id->uid, id->uid) < 0)
                        child_fail("setresuid");
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                child_fail("PR_SET_NO_NEW_PRIVS");
        /* After the identity change, which clears it. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                child_fail("PR_SET_PDEATHSIG");
        if (getppid() != parent)
                _exit(127); /* the daemon is already gone */

        if (n_fds > ELEMENTSOF(tmp))
                child_fail("too many descriptors");
        /* Move the passed descriptors out of the way, then into place. */
        for (size_t i = 0; i < n_fds; i++) {
                tmp[i] = fcntl(fds[i], F_DUPFD, 3 + (int) n_fds);
                if (tmp[i] < 0)
                        child_fail("dup");
        }
        for (size_t i = 0; i < n_fds; i++)
                if (dup2(tmp[i], 3 + (int) i) < 0)
                        child_fail("dup2");
        null_fd = open("/dev/null", O_RDONLY);
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0)
                child_fail("/dev/null");
        if (syscall(SYS_close_range, 3 + (unsigned) n_fds, ~0U, 0) < 0)
                for (int fd = 3 + (int) n_fds; fd < 65536; fd++)
                        (void) close(fd);

        execv(path, argv);
        child_fail(path);
}

int spawn_helper(Manager *m, char **argv, const int *fds, size_t n_fds, uid_t uid, gid_t gid) {
        Identity id;
        pid_t parent = getpid(), pid;

        (void) identity_resolve(&id, uid, gid);
        id.nproc = m->settings.max_processes_per_uid;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_exec(m->runner_path, argv, fds, n_fds, &id, parent);
        return pid;
}

void runner_detach(Job *j) {
        j->runner_io = sd_event_source_disable_unref(j->runner_io);
        j->runner_child = sd_event_source_disable_unref(j->runner_child);
        j->kill_timer = sd_event_source_disable_unref(j->kill_timer);
        j->runner_fd = safe_close(j->runner_fd);
        if (j->runner_pid > 0) {
                /* Only when the job object goes away with its runner alive
                 * (daemon exit): take the whole process group down. */
                (void) kill(-j->runner_pid, SIGKILL);
                j->runner_pid = 0;
        }
}

static void runner_kill(Job *j) {
        if (j->runner_pid > 0)
                (void) kill(-j->runner_pid, SIGKILL);
}

static int kill_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;

        (void) s;
        (void) usec;
        log_job(LOG_WARNING, j->spec.id, "Runner did not stop in time, killing it.");
        runner_kill(j);
        return 0;
}

void runner_stop(Job *j, uint32_t mode) {
        Manager *m = j->manager;
        IpcStop st = { .mode = mode };
        uint64_t timeout = mode == IPC_STOP_CANCEL ? 1000000 : m->settings.stop_timeout_usec;
        int r;

        if (j->runner_pid <= 0)
                return;
        if (j->runner_fd >= 0) {
                r = ipc_send(j->runner_fd, IPC_STOP, &st, sizeof(st));
                if (r < 0)
                        /* It cannot hear us: stopping it the hard way is safe,
                         * everything it has not committed is redone. */
                        runner_kill(j);
        }
        j->stop_sent = true;
        j->kill_timer = sd_event_source_disable_unref(j->kill_timer);
        r = sd_event_add_time_relative(m->event, &j->kill_timer, CLOCK_MONOTONIC, timeout, 0, kill_timer_handler, j);
        if (r < 0)
                runner_kill(j);
        else
                (void) sd_event_source_set_description(j->kill_timer, "runner-kill");
}

static void runner_protocol_error(Job *j, const char *what) {
        char msg[256];

        (void) snprintf(msg, sizeof(msg), "job runner broke the protocol: %s", what);
        log_job(LOG_ERR, j->spec.id, "%s", msg);
        free(j->runner_error);
        j->runner_error = strdup(msg);
        j->runner_error_kind = IPC_FAIL_PERMANENT;
        runner_kill(j);
}

/* Items per second, of processed items (committed or not: commits can
 * wait for a save batch): from the runner's start until a first second has
 * passed, then a moving average over roughly one-second windows. */
static void update_rate(Job *j) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), dt = now - j->rate_usec;
        double inst;

        if (j->rate_usec == 0 || dt < 200000)
                return;
        inst = (double) (j->processed - j->rate_done) * 1e6 / (double) dt;
        if (j->rate <= 0)
                j->rate = inst;
        else if (dt >= 1000000)
                j->rate = 0.5 * j->rate + 0.5 * inst;
        else
                return;
        j->rate_usec = now;
        j->rate_done = j->processed;
}

static void handle_commit(Job *j, const void *payload, size_t len) {
        IpcCommit c;
        const IpcRange *ranges;
        int r;

        if (len < sizeof(c)) {
                runner_protocol_error(j, "short commit");
                return;
        }
        memcpy(&c, payload, sizeof(c));
        if (c.n_ranges == 0 || c.n_ranges > IPC_COMMIT_RANGES_MAX || len != sizeof(c) + c.n_ranges * sizeof(IpcRange)) {
                runner_protocol_error(j, "commit of the wrong length");
                return;
        }
        if (!j->ckpt_loaded) {
                runner_protocol_error(j, "commit without a checkpoint");
                return;
        }
        /* Alignment: the payload sits 8 bytes into an aligned buffer. */
        ranges = (const IpcRange *) ((const char *) payload + sizeof(c));
        r = checkpoint_commit(&j->ckpt, &c, ranges);
        if (r == -EINVAL) {
                runner_protocol_error(j, "commit of items that are out of range or already committed");
                return;
        }
        if (r < 0) {
                /* Nothing more can be committed: pause the job until its
                 * owner has made room and resumes it. What the runner has
                 * not committed is done again then. */
                char msg[256];
                (void) snprintf(msg, sizeof(msg), "cannot write the checkpoint: %s", strerror(-r));
                log_job(LOG_ERR, j->spec.id, "%s; pausing the job.", msg);
                if (!j->pause_reason)
                        j->pause_reason = strdup(msg);
                /* Whatever it sends from now on (a commit, DONE) cannot be
                 * recorded: ignore it until it is gone. */
                j->runner_ignored = true;
                runner_kill(j);
                return;
        }
        j->done = j->ckpt.done;
        j->failed = j->ckpt.failed;
        j->results_len = j->ckpt.results_len;
        j->processed = MAX(j->processed, j->done);
        update_rate(j);
        if (j->spec.halt_failures > 0 && j->failed >= j->spec.halt_failures && !j->halt_reason) {
                /* As GNU parallel's --halt soon: no new items; those in
                 * flight finish and are committed; then the job fails. */
                char msg[256];
                (void) snprintf(msg, sizeof(msg), "halted after %llu failed items (--halt-on-failure %s)",
                                (unsigned long long) j->failed, j->spec.halt);
                j->halt_reason = strdup(msg);
                log_job(LOG_WARNING, j->spec.id, "%s.", msg);
                /* A cancel already under way keeps its shorter deadline. */
                if (!j->stop_sent)
                        runner_stop(j, IPC_STOP_GRACEFUL);
        }
}

static void handle_fail(Job *j, const void *payload, size_t len) {
        IpcFail f;
        size_t n;
        char *msg;

        if (len < sizeof(f)) {
                runner_protocol_error(j, "short failure message");
                return;
        }
        memcpy(&f, payload, sizeof(f));
        n = MIN(len - sizeof(f), (size_t) 1024);
        msg = malloc(n + 1);
        if (!msg)
                return;
        memcpy(msg, (const char *) payload + sizeof(f), n);
        msg[n] = '\0';
        /* Shown to users and logged: printable characters only. */
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) msg[i] < 0x20 || msg[i] == 0x7f)
                        msg[i] = msg[i] ? ' ' : '\0';
        free(j->runner_error);
        j->runner_error = msg;
        j->runner_error_kind = f.kind == IPC_FAIL_PERMANENT || f.kind == IPC_FAIL_STORAGE ? f.kind : IPC_FAIL_TEMPORARY;
        log_job(LOG_ERR, j->spec.id, "Runner reports: %s", msg);
}

static int runner_io_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Job *j = userdata;

        (void) s;
        (void) revents;
        for (int k = 0; k < 64; k++) {
                uint32_t type;
                size_t len;
                const void *payload;
                int r = ipc_recv(fd, ipc_buf, sizeof(ipc_buf), &type, &len, &payload);

                if (r == -EAGAIN)
                        return 0;
                if (r > 0 && j->runner_ignored)
                        continue;
                if (r <= 0) {
                        if (r < 0 && r != -ECONNRESET && !j->runner_ignored)
                                runner_protocol_error(j, "malformed message");
                        /* EOF: wait for the exit status. */
                        j->runner_io = sd_event_source_disable_unref(j->runner_io);
                        j->runner_fd = safe_close(j->runner_fd);
                        return 0;
                }
                switch (type) {
                case IPC_READY:
                        j->runner_ready = true;
                        break;
                case IPC_COMMIT:
                        handle_commit(j, payload, len);
                        break;
                case IPC_DONE:
                        if (j->done != j->spec.n_items)
                                runner_protocol_error(j, "done before every item was committed");
                        else
                                j->runner_done = true;
                        break;
                case IPC_FAIL:
                        handle_fail(j, payload, len);
                        break;
                case IPC_PROGRESS:
                        if (len == sizeof(IpcProgress)) {
                                IpcProgress p;
                                memcpy(&p, payload, sizeof(p));
                                j->live_workers = MIN(p.workers, j->spec.workers);
                                /* Informational only: never more than there is. */
                                j->processed = MAX(j->done, MIN(p.processed, j->spec.n_items));
                                update_rate(j);
                        }
                        break;
                default:
                        runner_protocol_error(j, "unknown message type");
                        return 0;
                }
        }
        return 0;
}

static int runner_child_handler(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Job *j = userdata;
        Manager *m = j->manager;

        (void) s;
        /* The zombie still holds its pid, so the group id cannot have been
         * reused: make sure no worker outlives its runner. */
        (void) kill(-j->runner_pid, SIGKILL);
        /* Read whatever the runner sent before it died (its last commit). */
        if (j->runner_io)
                (void) runner_io_handler(NULL, j->runner_fd, 0, j);
        j->runner_pid = 0;
        runner_detach(j);
        j->live_workers = 0;
        job_runner_exited(j, si->si_code, si->si_status);
        if (m->stopping && manager_all_runners_gone(m))
                (void) sd_event_exit(m->event, 0);
        return 0;
}

static json_object *start_message(Job *j) {
        Manager *m = j->manager;
        json_object *o = json_object_new_object(), *shared;
        const char *why;

        if (!o)
                return NULL;
        shared = json_parse_strict(j->spec.shared_json, strlen(j->spec.shared_json), VARLINK_JSON_DEPTH, &why);
        if (json_add_u64(o, "id", j->spec.id) < 0 || json_add_str(o, "module", j->spec.module) < 0 ||
            json_add_str(o, "output", j->spec.output) < 0 || json_add(o, "shared", shared) < 0 ||
            json_add_u64(o, "workers", j->slots) < 0 || json_add_u64(o, "batch_size", j->spec.batch_size) < 0 ||
            json_add_u64(o, "save_batch", j->spec.save_batch) < 0 || json_add_u64(o, "items", j->spec.n_items) < 0 ||
            json_add_u64(o, "input_bytes", j->spec.input_bytes) < 0 ||
            json_add_u64(o, "input_crc", j->spec.input_crc) < 0 ||
            json_add_u64(o, "results_len", j->ckpt.results_len) < 0 || json_add_u64(o, "done", j->ckpt.done) < 0 ||
            json_add_u64(o, "failed", j->ckpt.failed) < 0 ||
            json_add_u64(o, "commit_interval_ms", m->settings.commit_interval_ms) < 0 ||
            json_add_u64(o, "commit_items", m->settings.commit_items) < 0 ||
            json_add_u64(o, "max_attempts", j->spec.max_attempts) < 0 ||
            json_add_u64(o, "retry_delay_ms", m->settings.retry_delay_ms) < 0 ||
            json_add_u64(o, "timeout_sec", j->spec.timeout_sec) < 0 ||
            json_add_u64(o, "memory_max", j->spec.memory_max) < 0 ||
            json_add_u64(o, "results_gen", j->results_gen) < 0 ||
            json_add_u64(o, "prev_results_len", j->prev_results_len) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

int spawn_runner(Job *j) {
        Manager *m = j->manager;
        _cleanup_close_ int lock_fd = -1, input_fd = -1, bitmap_fd = -1;
        int sv[2] = { -1, -1 }, fds[4];
        char *argv[] = { (char *) "mplock-runner", (char *) "run", NULL };
        json_object *start = NULL;
        const char *text;
        size_t len;
        Identity id;
        pid_t pid, parent = getpid();
        int r;

        r = job_load_checkpoint(j);
        if (r < 0)
                return r;
        lock_fd = openat(j->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock_fd < 0)
                return log_job_errno(LOG_ERR, errno, j->spec.id, "Cannot open lock file: %m");
        input_fd = openat(j->dirfd, "input", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (input_fd < 0)
                return log_job_errno(LOG_ERR, errno, j->spec.id, "Cannot open input snapshot: %m");
        bitmap_fd = checkpoint_bitmap_memfd(&j->ckpt);
        if (bitmap_fd < 0)
                return log_job_errno(LOG_ERR, bitmap_fd, j->spec.id, "Cannot pass checkpoint to runner: %m");
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return log_job_errno(LOG_ERR, errno, j->spec.id, "socketpair: %m");

        start = start_message(j);
        if (!start) {
                r = log_oom();
                goto fail;
        }
        text = json_compact(start, &len);
        /* Queued in the socket before the runner exists: it reads it first. */
        r = text ? ipc_send(sv[0], IPC_START, text, len) : -ENOMEM;
        json_object_put(start);
        if (r < 0) {
                log_job_errno(LOG_ERR, r, j->spec.id, "Cannot send job to runner: %m");
                goto fail;
        }

        (void) identity_resolve(&id, j->spec.uid, j->spec.gid);
        id.nproc = m->settings.max_processes_per_uid;
        fds[0] = sv[1];
        fds[1] = lock_fd;
        fds[2] = input_fd;
        fds[3] = bitmap_fd;
        pid = fork();
        if (pid < 0) {
                r = log_job_errno(LOG_ERR, errno, j->spec.id, "fork: %m");
                goto fail;
        }
        if (pid == 0)
                child_exec(m->runner_path, argv, fds, ELEMENTSOF(fds), &id, parent);

        sv[1] = safe_close(sv[1]);
        j->runner_pid = pid;
        j->runner_fd = sv[0];
        sv[0] = -1;
        j->runner_ready = j->runner_done = j->stop_sent = j->runner_ignored = false;
        j->cancel_requested = false;
        free(j->runner_error);
        j->runner_error = NULL;
        /* A pause reason belongs to the runner that hit it: a later runner
         * that crashes must not be paused for an old full disk. */
        j->pause_reason = mfree(j->pause_reason);
        j->runner_error_kind = 0;
        j->done_at_start = j->done;
        j->processed = j->done;
        j->rate_usec = now_usec(CLOCK_MONOTONIC);
        j->rate_done = j->done;
        j->rate = 0;

        if (fcntl(j->runner_fd, F_SETFL, O_NONBLOCK) < 0)
                r = -errno;
        else
                r = sd_event_add_io(m->event, &j->runner_io, j->runner_fd, EPOLLIN, runner_io_handler, j);
        if (r >= 0)
                r = sd_event_add_child(m->event, &j->runner_child, pid, WEXITED, runner_child_handler, j);
        if (r < 0) {
                log_job_errno(LOG_ERR, r, j->spec.id, "Cannot watch runner: %m");
                runner_detach(j);
                return r;
        }
        (void) sd_event_source_set_description(j->runner_io, "runner-ipc");
        (void) sd_event_source_set_description(j->runner_child, "runner-exit");
        log_job(LOG_INFO, j->spec.id, "Runner %d started with %u workers at %llu/%llu items.", (int) pid, j->slots,
                (unsigned long long) j->done, (unsigned long long) j->spec.n_items);
        return 0;

fail:
        safe_close(sv[0]);
        safe_close(sv[1]);
        return r;
}
