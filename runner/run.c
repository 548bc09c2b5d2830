/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <systemd/sd-event.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "bitset.h"
#include "carry.h"
#include "commit.h"
#include "dispatch.h"
#include "fileio.h"
#include "ipc.h"
#include "json-util.h"
#include "items.h"
#include "log.h"
#include "macro.h"
#include "module.h"
#include "output.h"
#include "results.h"
#include "run-error.h"
#include "runner.h"
#include "start.h"
#include "worker.h"

/* "mplock-runner run": one per running job, started by mplockd with
 *   fd 3  the IPC socket (IPC_START arrives first)
 *   fd 4  the job's lock file, flock()ed before anything is touched
 *   fd 5  the input snapshot
 *   fd 6  a sealed memfd with the bitmap of committed items
 *
 * It forks the workers, hands out chunks of items, appends the blocks the
 * workers send to the results file, calls the module's save callback, and
 * commits: fdatasync the results file, then tell the daemon which items
 * are in it up to which length. The daemon writes the checkpoint; recovery
 * cuts the results file back to the last committed length, so each
 * committed item has exactly one record. */

typedef struct Runner Runner;

#define IPC_FD 3
#define LOCK_FD 4
#define INPUT_FD 5
#define BITMAP_FD 6

/* Chunks queued per worker: the next one is ready when one finishes. */
#define WORKER_DEPTH 2
#define WORKER_INIT_FAILURES_MAX 3
#define EXIT_WAIT_USEC (10 * 1000000ULL)

typedef struct Assignment {
        uint64_t first;
        uint32_t count;
        uint32_t done;
        uint64_t start_usec;
        bool single; /* a suspect item handed out alone */
} Assignment;

#define OUTPUT_LINE_MAX 16384

typedef struct Worker {
        Runner *runner;
        uint32_t no;
        pid_t pid;
        int cmd_fd, res_fd, out_fd;
        sd_event_source *io, *child, *out_io;
        /* What the worker prints, cut into lines for the journal. */
        char out[OUTPUT_LINE_MAX];
        size_t out_len;
        Assignment q[WORKER_DEPTH];
        unsigned nq;
        /* Timeouts: the worker counts its calls in shared memory; no
         * change for timeout_sec while it has work means it is stuck. */
        uint64_t seen_calls, seen_usec;
        bool timed_out;
        char *buf;
        size_t len, cap;
        bool ready, exiting;
} Worker;

struct Runner {
        sd_event *event;
        Job job;
        Output out;

        Items items;
        Bitset done; /* committed at start, then recorded by us */
        Module module;
        Host host;

        Worker *workers;
        WorkerProgress *progress; /* shared with the workers, one slot each */
        uint32_t init_failures;

        Dispatch dispatch;
        uint64_t outstanding; /* items handed out, not recorded */

        Commit commit;
        sd_event_source *ipc_source, *commit_timer, *exit_timer, *timeout_timer, *retry_timer;
        bool stopping, finishing, done_sent, handed_out;
};

#define runner_log(r, ...) output_log(&(r)->out, __VA_ARGS__)

static uint64_t now_us(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static _Noreturn void fail(Runner *r, uint32_t kind, const char *fmt, ...) _printf_(3, 4);
static _Noreturn void fail(Runner *r, uint32_t kind, const char *fmt, ...) {
        IpcFail f = { .kind = kind };
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (r)
                runner_log(r, LOG_ERR, "%s", msg);
        else
                log_error("%s", msg);
        (void) ipc_send2(IPC_FD, IPC_FAIL, &f, sizeof(f), msg, strlen(msg));
        /* Our process group: take the workers along. */
        (void) kill(0, SIGKILL);
        _exit(1);
}

static _Noreturn void fail_with(Runner *r, const RunError *e) {
        if (e->kind == RUN_ERROR_GONE) {
                /* Nobody to tell: the next runner resumes. */
                (void) kill(0, SIGKILL);
                _exit(1);
        }
        fail(r, e->kind, "%s", e->msg);
}

/* --- the job ------------------------------------------------------------ */

static void open_output(Runner *r) {
        RunError e;

        if (output_open_log(&r->out, &e) < 0 || output_open_results(&r->out, &e) < 0 ||
            carry_set_aside(&r->out, r->job.results_gen, r->job.results_len, &e) < 0 ||
            output_prepare_results(&r->out, r->job.results_gen, r->job.results_len, &r->job.results_len, &e) < 0)
                fail_with(r, &e);
}

/* --- commits ------------------------------------------------------------ */

static void commit(Runner *r) {
        RunError e;

        if (commit_flush(&r->commit, &e) < 0)
                fail_with(r, &e);
}

static void commit_everything(Runner *r) {
        RunError e;

        if (commit_all(&r->commit, &e) < 0)
                fail_with(r, &e);
}

static void save_batches(Runner *r, bool final) {
        RunError e;

        if (commit_save(&r->commit, final, &e) < 0)
                fail_with(r, &e);
}

static int send_commit(void *userdata, const IpcCommit *c, const IpcRange *ranges) {
        (void) userdata;
        return ipc_send2(IPC_FD, IPC_COMMIT, c, sizeof(*c), ranges, c->n_ranges * sizeof(IpcRange));
}

static int commit_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Runner *r = userdata;
        IpcProgress p = { .processed = r->commit.recorded };

        (void) usec;
        commit(r);
        for (uint32_t i = 0; i < r->job.n_workers; i++)
                p.workers += r->workers[i].pid > 0;
        (void) ipc_send(IPC_FD, IPC_PROGRESS, &p, sizeof(p));
        (void) sd_event_source_set_time_relative(s, (uint64_t) r->job.commit_interval_ms * 1000u);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* Appends a verified block to the results file, to be committed (and saved
 * before that, when the module has a save callback). */
/* failed: how many of the block's items failed (the caller counted them). */
static void append_block(Runner *r, const char *block, size_t len, uint32_t failed) {
        RunError e;

        if (commit_append(&r->commit, block, len, failed, false, &e) < 0)
                fail_with(r, &e);
}

/* Counts another attempt at an item; returns how many it has had. */
static uint32_t attempt_add(Runner *r, uint64_t index) {
        uint32_t n;

        if (dispatch_attempt(&r->dispatch, index, &n) < 0)
                fail(r, IPC_FAIL_TEMPORARY, "out of memory");
        return n;
}

static void retry_later(Runner *r, uint64_t index, uint32_t attempt);

/* Writes the items of a block that are final, in runs of consecutive
 * indices (a block covers consecutive items only); the others wait for
 * another attempt. */
static void append_final_items(Runner *r, const char *block) {
        ResultsBlockHeader h;
        ResultsItemIter it;
        ResultsItem item;
        ResultsBlock b = {};
        uint32_t failed = 0;
        bool open = false;

        memcpy(&h, block, sizeof(h));
        results_item_iter_init(&it, &h, block + sizeof(h));
        while (results_item_iter_next(&it, &item)) {
                uint32_t n = 0;

                if (dispatch_retryable(&r->dispatch, item.status) && (n = attempt_add(r, item.index)) < r->job.max_attempts) {
                        if (open) {
                                results_block_finish(&b);
                                append_block(r, b.buf, b.len, failed);
                                open = false;
                        }
                        retry_later(r, item.index, n);
                        continue;
                }
                if (!open) {
                        results_block_begin(&b, item.index);
                        open = true;
                        failed = 0;
                }
                if (results_block_add(&b, item.item, item.item_len, item.result, item.result_len, item.status) < 0)
                        fail(r, IPC_FAIL_TEMPORARY, "out of memory");
                failed += item.status != 0;
        }
        if (open) {
                results_block_finish(&b);
                append_block(r, b.buf, b.len, failed);
        }
        results_block_free(&b);
}

/* A block of results, checked against what the worker was given. */
static void record_block(Runner *r, Worker *w, const char *block, size_t len) {
        ResultsBlockHeader h;
        Assignment *a = &w->q[0];
        uint32_t failed, crashed;

        memcpy(&h, block, sizeof(h));
        if (w->nq == 0 || h.first != a->first + a->done || h.count > a->count - a->done)
                fail(r, IPC_FAIL_TEMPORARY, "worker %u sent results for items it was not given", w->no);
        if (results_block_verify_count(block, len, r->job.n_items, MPLOCK_ERR_CRASHED, &failed, &crashed) < 0)
                fail(r, IPC_FAIL_TEMPORARY, "worker %u sent a corrupt result block", w->no);
        /* retryable() per item, counted: failures other than a final crash */
        if (r->job.max_attempts > 1 && failed > crashed)
                append_final_items(r, block);
        else
                append_block(r, block, len, failed);
        r->outstanding -= h.count;

        a->done += h.count;
        if (a->done == a->count) {
                uint64_t now = now_us();
                if (a->start_usec > 0)
                        dispatch_measured(&r->dispatch, now - a->start_usec, a->count);
                memmove(&w->q[0], &w->q[1], (WORKER_DEPTH - 1) * sizeof(Assignment));
                w->nq--;
                if (w->nq > 0)
                        w->q[0].start_usec = now;
        }

        {
                RunError e;
                if (commit_recorded(&r->commit, &e) < 0)
                        fail_with(r, &e);
        }
}

/* A failure the runner records itself (a worker died on the item too often). */
static void record_failure(Runner *r, uint64_t index, const char *msg) {
        ResultsBlock b = {};
        Worker fake = { .nq = 1, .q[0] = { .first = index, .count = 1 } };
        uint64_t off = items_offset(&r->items, index);
        const char *item = r->items.map + off;

        results_block_begin(&b, index);
        if (results_block_add(&b, item, strlen(item), msg, strlen(msg), MPLOCK_ERR_CRASHED) < 0)
                fail(r, IPC_FAIL_TEMPORARY, "out of memory");
        results_block_finish(&b);
        r->outstanding++; /* record_block() counts it back */
        record_block(r, &fake, b.buf, b.len);
        results_block_free(&b);
}

/* --- dispatch ----------------------------------------------------------- */

static void requeue_push(Runner *r, uint64_t first, uint64_t count, bool suspect) {
        if (dispatch_requeue(&r->dispatch, first, count, suspect) < 0)
                fail(r, IPC_FAIL_TEMPORARY, "out of memory");
}

static void dispatch(Runner *r);

/* Moves retries whose backoff is over to the ready queue, and sets the
 * timer for the next one. */
static int retry_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Runner *r = userdata;
        uint64_t next;

        (void) s;
        (void) usec;
        if (dispatch_release_due(&r->dispatch, now_us(), &next) < 0)
                fail(r, IPC_FAIL_TEMPORARY, "out of memory");
        if (next != UINT64_MAX) {
                (void) sd_event_source_set_time(r->retry_timer, next);
                (void) sd_event_source_set_enabled(r->retry_timer, SD_EVENT_ONESHOT);
        }
        dispatch(r);
        return 0;
}

/* Another attempt at one item, alone, after 2^(attempt-1) retry delays. */
static void retry_later(Runner *r, uint64_t index, uint32_t attempt) {
        uint64_t when, armed = 0;
        int q;

        if (dispatch_retry_later(&r->dispatch, index, attempt, now_us(), &when) < 0)
                fail(r, IPC_FAIL_TEMPORARY, "out of memory");
        if (!r->retry_timer) {
                q = sd_event_add_time(r->event, &r->retry_timer, CLOCK_MONOTONIC, when, 0, retry_timer_handler, r);
                if (q < 0)
                        fail(r, IPC_FAIL_TEMPORARY, "sd-event: %s", strerror(-q));
                return;
        }
        if (sd_event_source_get_enabled(r->retry_timer, NULL) <= 0 ||
            sd_event_source_get_time(r->retry_timer, &armed) < 0 || armed > when) {
                (void) sd_event_source_set_time(r->retry_timer, when);
                (void) sd_event_source_set_enabled(r->retry_timer, SD_EVENT_ONESHOT);
        }
}

static void finish_if_done(Runner *r);

static void dispatch(Runner *r) {
        if (r->stopping) {
                finish_if_done(r);
                return;
        }
        for (uint32_t i = 0; i < r->job.n_workers; i++) {
                Worker *w = &r->workers[i];
                while (w->pid > 0 && w->ready && !w->exiting && w->nq < WORKER_DEPTH) {
                        Assignment a;
                        WorkerCmd cmd;
                        Chunk c;
                        if (!dispatch_next(&r->dispatch, &c))
                                break;
                        a = (Assignment){ .first = c.first, .count = c.count, .single = c.single };
                        cmd = (WorkerCmd){ .first = a.first,
                                           .offset = items_offset(&r->items, a.first),
                                           .count = a.count,
                                           .op = WORKER_CMD_RUN };
                        if (w->nq == 0) {
                                a.start_usec = now_us();
                                w->seen_usec = a.start_usec;
                                w->seen_calls = __atomic_load_n(&r->progress[w->no].calls, __ATOMIC_RELAXED);
                        }
                        w->q[w->nq++] = a;
                        r->outstanding += a.count;
                        /* The pipe has room for many commands. If the worker
                         * cannot be told, it must not sit idle while we wait
                         * for it: kill it, and its exit hands the chunk out
                         * again. */
                        if (write_full(w->cmd_fd, &cmd, sizeof(cmd)) < 0) {
                                (void) kill(w->pid, SIGKILL);
                                break;
                        }
                        if (!r->handed_out) {
                                r->handed_out = true;
                                runner_log(r, LOG_INFO, "First items handed out (from item %llu).",
                                           (unsigned long long) a.first);
                        }
                }
        }
        finish_if_done(r);
}

/* --- workers ------------------------------------------------------------ */

static int worker_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int worker_exited(sd_event_source *s, const siginfo_t *si, void *userdata);

/* One line a worker printed: into the job log, and into the journal with
 * the job's id when we log there. */
static void output_line(Runner *r, Worker *w, const char *line, size_t len, bool newline) {
        struct iovec iov[2] = { { (void *) UNCONST(line), len }, { (void *) UNCONST("\n"), 1 } };
        ssize_t n;

        do
                n = writev(r->out.log_fd, iov, newline ? 2 : 1);
        while (n < 0 && errno == EINTR);
        if (log_is_journal())
                (void) sd_journal_send("MESSAGE=%.*s", (int) len, line, "PRIORITY=%i", LOG_INFO,
                                       "SYSLOG_IDENTIFIER=mplock-worker", "MPLOCK_JOB=%llu", (unsigned long long) r->job.id,
                                       "MPLOCK_WORKER=%u", w->no, NULL);
}

static void output_flush(Runner *r, Worker *w, bool all) {
        size_t start = 0;

        for (;;) {
                char *nl = memchr(w->out + start, '\n', w->out_len - start);
                if (!nl)
                        break;
                output_line(r, w, w->out + start, (size_t) (nl - (w->out + start)), true);
                start = (size_t) (nl - w->out) + 1;
        }
        /* A line longer than the buffer is cut; a partial last line waits
         * for its end unless the worker is gone. */
        if (w->out_len - start == sizeof(w->out) || (all && w->out_len > start)) {
                output_line(r, w, w->out + start, w->out_len - start, all);
                start = w->out_len;
        }
        memmove(w->out, w->out + start, w->out_len - start);
        w->out_len -= start;
}

/* Reads what the worker printed; false at EOF. */
static bool output_read(Runner *r, Worker *w) {
        for (;;) {
                ssize_t n = read(w->out_fd, w->out + w->out_len, sizeof(w->out) - w->out_len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        output_flush(r, w, n == 0);
                        return n < 0 && errno == EAGAIN;
                }
                w->out_len += (size_t) n;
                output_flush(r, w, false);
        }
}

static int output_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;

        (void) fd;
        (void) revents;
        if (!output_read(w->runner, w))
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static void worker_spawn(Runner *r, Worker *w) {
        int cmd[2], res[2], out[2];
        pid_t pid, parent = getpid();
        int q;

        if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
                fail(r, IPC_FAIL_TEMPORARY, "pipe: %s", strerror(errno));
        /* Room for a few result blocks in flight. */
        (void) fcntl(res[1], F_SETPIPE_SZ, 1 << 20);
        pid = fork();
        if (pid < 0)
                fail(r, IPC_FAIL_TEMPORARY, "fork: %s", strerror(errno));
        if (pid == 0) {
                sigset_t all;
                int null_fd;

                (void) sigemptyset(&all);
                (void) sigprocmask(SIG_SETMASK, &all, NULL);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
                if (getppid() != parent)
                        _exit(1);
                /* stdin nothing, stdout and stderr to us (for the job log
                 * and the journal); the worker keeps only its pipes. */
                null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0 ||
                    dup2(cmd[0], 3) < 0 || dup2(res[1], 4) < 0)
                        _exit(1);
                if (syscall(SYS_close_range, 5U, ~0U, 0) < 0)
                        for (int fd = 5; fd < 65536; fd++)
                                (void) close(fd);
                /* The job's memory cap: private and heap memory of each
                 * worker (RLIMIT_DATA), so that an allocation past it fails
                 * in the module instead of pushing the machine into OOM. */
                if (r->job.memory_max > 0) {
                        struct rlimit rl = { .rlim_cur = r->job.memory_max, .rlim_max = r->job.memory_max };
                        if (setrlimit(RLIMIT_DATA, &rl) < 0)
                                _exit(1);
                }
                /* What only the runner uses would otherwise stay in each
                 * worker's RSS, growing with the job: the item index (the
                 * commands carry offsets) and the bitmap of committed items. */
                free(r->items.index);
                r->items.index = NULL;
                bitset_free(&r->done);
                /* Line-buffered output keeps lines of different workers apart in the log. */
                (void) setvbuf(stdout, NULL, _IOLBF, 0);
                worker_main(&r->module, &r->items, &r->host, w->no, 3, 4, &r->progress[w->no]);
        }
        safe_close(cmd[0]);
        safe_close(res[1]);
        safe_close(out[1]);
        w->pid = pid;
        w->cmd_fd = cmd[1];
        w->res_fd = res[0];
        w->out_fd = out[0];
        w->nq = 0;
        w->len = 0;
        w->out_len = 0;
        w->ready = w->exiting = w->timed_out = false;
        (void) fcntl(w->res_fd, F_SETFL, O_NONBLOCK);
        (void) fcntl(w->out_fd, F_SETFL, O_NONBLOCK);
        q = sd_event_add_io(r->event, &w->io, w->res_fd, EPOLLIN, worker_io, w);
        if (q >= 0)
                q = sd_event_add_io(r->event, &w->out_io, w->out_fd, EPOLLIN, output_io, w);
        if (q >= 0)
                q = sd_event_add_child(r->event, &w->child, pid, WEXITED, worker_exited, w);
        if (q < 0)
                fail(r, IPC_FAIL_TEMPORARY, "cannot watch worker: %s", strerror(-q));
}

/* Parses complete frames in the worker's buffer. */
static void worker_parse(Runner *r, Worker *w) {
        size_t off = 0;

        while (w->len - off >= sizeof(uint32_t)) {
                uint32_t magic;
                memcpy(&magic, w->buf + off, sizeof(magic));
                if (magic == RESULTS_BLOCK_MAGIC) {
                        ResultsBlockHeader h;
                        if (w->len - off < sizeof(h))
                                break;
                        memcpy(&h, w->buf + off, sizeof(h));
                        if (results_block_header_check(&h, r->job.n_items) < 0)
                                fail(r, IPC_FAIL_TEMPORARY, "worker %u sent a malformed block", w->no);
                        if (w->len - off < sizeof(h) + h.payload_len)
                                break;
                        record_block(r, w, w->buf + off, sizeof(h) + h.payload_len);
                        off += sizeof(h) + h.payload_len;
                } else if (magic == WORKER_FRAME_MAGIC) {
                        WorkerFrame f;
                        char msg[1024];
                        if (w->len - off < sizeof(f))
                                break;
                        memcpy(&f, w->buf + off, sizeof(f));
                        if (f.len > 4096)
                                fail(r, IPC_FAIL_TEMPORARY, "worker %u sent a malformed frame", w->no);
                        if (w->len - off < sizeof(f) + f.len)
                                break;
                        (void) snprintf(msg, sizeof(msg), "%.*s", (int) f.len, w->buf + off + sizeof(f));
                        off += sizeof(f) + f.len;
                        if (f.type == WORKER_FRAME_INIT_OK) {
                                w->ready = true;
                                r->init_failures = 0;
                        } else if (f.type == WORKER_FRAME_INIT_FAIL)
                                fail(r, IPC_FAIL_PERMANENT, "%s", msg);
                        else
                                fail(r, IPC_FAIL_TEMPORARY, "worker %u sent an unknown frame", w->no);
                } else
                        fail(r, IPC_FAIL_TEMPORARY, "worker %u sent garbage", w->no);
        }
        if (off > 0) {
                memmove(w->buf, w->buf + off, w->len - off);
                w->len -= off;
        }
}

/* Reads what the worker sent; false at EOF. */
static bool worker_read(Runner *r, Worker *w) {
        for (;;) {
                ssize_t n;
                if (w->cap - w->len < 65536) {
                        size_t ncap = MAX(w->cap * 2, (size_t) (1 << 20));
                        char *nb;
                        if (ncap > RESULTS_BLOCK_PAYLOAD_MAX + (1 << 20))
                                ncap = RESULTS_BLOCK_PAYLOAD_MAX + (1 << 20);
                        if (ncap <= w->cap)
                                fail(r, IPC_FAIL_TEMPORARY, "worker %u sent an oversized frame", w->no);
                        nb = realloc(w->buf, ncap);
                        if (!nb)
                                fail(r, IPC_FAIL_TEMPORARY, "out of memory");
                        w->buf = nb;
                        w->cap = ncap;
                }
                n = read(w->res_fd, w->buf + w->len, w->cap - w->len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return true;
                        return false;
                }
                if (n == 0)
                        return false;
                w->len += (size_t) n;
                worker_parse(r, w);
        }
}

static int worker_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        Runner *r = w->runner;

        (void) fd;
        (void) revents;
        if (!worker_read(r, w))
                /* EOF: the exit event does the rest. */
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        dispatch(r);
        return 0;
}

static void worker_detach(Worker *w) {
        w->out_io = sd_event_source_disable_unref(w->out_io);
        w->out_fd = safe_close(w->out_fd);
        w->io = sd_event_source_disable_unref(w->io);
        w->child = sd_event_source_disable_unref(w->child);
        w->cmd_fd = safe_close(w->cmd_fd);
        w->res_fd = safe_close(w->res_fd);
        w->pid = 0;
}

static int worker_exited(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Worker *w = userdata;
        Runner *r = w->runner;
        char how[96];

        (void) s;
        /* Everything it wrote before it died counts, and is logged. */
        if (w->res_fd >= 0)
                (void) worker_read(r, w);
        if (w->out_fd >= 0)
                (void) output_read(r, w);
        if (w->timed_out)
                (void) snprintf(how, sizeof(how), "timed out after %u s", r->job.timeout_sec);
        else if (si->si_code == CLD_EXITED)
                (void) snprintf(how, sizeof(how), "exited with status %d", si->si_status);
        else
                (void) snprintf(how, sizeof(how), "killed by signal %s", strsignal(si->si_status));
        worker_detach(w);

        if (w->exiting && si->si_code == CLD_EXITED && si->si_status == 0 && w->nq == 0) {
                finish_if_done(r);
                return 0;
        }
        if (r->stopping && w->nq == 0) {
                finish_if_done(r);
                return 0;
        }
        if (!w->ready) {
                r->init_failures++;
                if (r->init_failures >= WORKER_INIT_FAILURES_MAX)
                        fail(r, IPC_FAIL_PERMANENT, "workers die before init completes (worker %u %s)", w->no, how);
        }

        /* What it held goes back: the item in progress is a suspect (one
         * at a time from now on), the rest is simply handed out again. */
        for (unsigned k = 0; k < w->nq; k++) {
                Assignment *a = &w->q[k];
                uint64_t first = a->first + a->done, left = a->count - a->done;

                r->outstanding -= left;
                if (k > 0) {
                        requeue_push(r, first, left, false);
                        continue;
                }
                if (a->single) {
                        uint32_t n = attempt_add(r, first);
                        if (n >= r->job.max_attempts) {
                                char msg[160];
                                (void) snprintf(msg, sizeof(msg), "worker died on this item %u times (last: %s)", n,
                                                how);
                                runner_log(r, LOG_WARNING, "Item %llu failed: %s.", (unsigned long long) first, msg);
                                record_failure(r, first, msg);
                        } else {
                                runner_log(r, LOG_WARNING, "Worker %u %s on item %llu (attempt %u of %u).", w->no,
                                           how, (unsigned long long) first, n, r->job.max_attempts);
                                retry_later(r, first, n);
                        }
                } else {
                        runner_log(r, LOG_WARNING, "Worker %u %s within items %llu..%llu; trying them one by one.",
                                   w->no, how, (unsigned long long) first, (unsigned long long) (first + left - 1));
                        if (dispatch_requeue_suspects(&r->dispatch, first, left) < 0)
                                fail(r, IPC_FAIL_TEMPORARY, "out of memory");
                }
        }
        w->nq = 0;

        if (!r->stopping && r->commit.recorded < r->job.n_items)
                worker_spawn(r, w);
        dispatch(r);
        return 0;
}

/* A worker whose call count has not moved for timeout_sec while it had work
 * is stuck in one call of process: kill it, which counts an attempt for
 * its item like any other death. */
static int timeout_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Runner *r = userdata;
        uint64_t now = now_us(), limit = (uint64_t) r->job.timeout_sec * 1000000u;

        (void) usec;
        for (uint32_t i = 0; i < r->job.n_workers; i++) {
                Worker *w = &r->workers[i];
                uint64_t calls;

                if (w->pid <= 0 || w->nq == 0 || w->timed_out)
                        continue;
                calls = __atomic_load_n(&r->progress[i].calls, __ATOMIC_RELAXED);
                if (calls != w->seen_calls) {
                        w->seen_calls = calls;
                        w->seen_usec = now;
                } else if (now - w->seen_usec > limit) {
                        w->timed_out = true;
                        (void) kill(w->pid, SIGKILL);
                }
        }
        (void) sd_event_source_set_time_relative(s, MIN(limit / 4 + 1, (uint64_t) 1000000));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* --- the end ------------------------------------------------------------ */

static int exit_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Runner *r = userdata;

        (void) s;
        (void) usec;
        runner_log(r, LOG_WARNING, "Workers did not exit in time, killing them.");
        for (uint32_t i = 0; i < r->job.n_workers; i++)
                if (r->workers[i].pid > 0)
                        (void) kill(r->workers[i].pid, SIGKILL);
        return 0;
}

static bool all_workers_gone(Runner *r) {
        for (uint32_t i = 0; i < r->job.n_workers; i++)
                if (r->workers[i].pid > 0)
                        return false;
        return true;
}

static void workers_exit(Runner *r) {
        WorkerCmd cmd = { .op = WORKER_CMD_EXIT };

        for (uint32_t i = 0; i < r->job.n_workers; i++) {
                Worker *w = &r->workers[i];
                if (w->pid > 0 && !w->exiting) {
                        w->exiting = true;
                        (void) write_full(w->cmd_fd, &cmd, sizeof(cmd));
                }
        }
        if (!r->exit_timer)
                (void) sd_event_add_time_relative(r->event, &r->exit_timer, CLOCK_MONOTONIC, EXIT_WAIT_USEC, 0,
                                                  exit_timer_handler, r);
}

static void finish_if_done(Runner *r) {
        bool idle = r->outstanding == 0;

        if (r->commit.recorded == r->job.n_items && idle && !r->done_sent) {
                save_batches(r, true);
                commit_everything(r);
                if (r->commit.committed != r->job.n_items)
                        fail(r, IPC_FAIL_PERMANENT, "finished with %llu of %llu items committed (internal error)",
                             (unsigned long long) r->commit.committed, (unsigned long long) r->job.n_items);
                carry_remove(&r->out, r->job.results_gen);
                (void) ipc_send(IPC_FD, IPC_DONE, NULL, 0);
                r->done_sent = true;
                runner_log(r, LOG_INFO, "All %llu items done (%llu failed).", (unsigned long long) r->job.n_items,
                           (unsigned long long) r->commit.committed_failed);
                workers_exit(r);
        } else if (r->stopping && idle && !r->finishing) {
                /* A graceful stop: everything handed out is back. */
                r->finishing = true;
                save_batches(r, true);
                commit_everything(r);
                workers_exit(r);
        }
        if ((r->done_sent || r->finishing) && all_workers_gone(r))
                (void) sd_event_exit(r->event, 0);
}

static int ipc_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        static char buf[IPC_MSG_MAX] __attribute__((aligned(8)));
        Runner *r = userdata;
        const void *payload;
        uint32_t type;
        size_t len;
        int k;

        (void) s;
        (void) revents;
        k = ipc_recv(fd, buf, sizeof(buf), &type, &len, &payload);
        if (k == -EAGAIN)
                return 0;
        if (k <= 0) {
                /* mplockd is gone: stop at once, the next one resumes. */
                (void) kill(0, SIGKILL);
                _exit(1);
        }
        if (type == IPC_STOP && len == sizeof(IpcStop)) {
                IpcStop st;
                memcpy(&st, payload, sizeof(st));
                if (st.mode == IPC_STOP_CANCEL) {
                        runner_log(r, LOG_INFO, "Cancelled.");
                        (void) kill(0, SIGKILL); /* workers and us */
                        _exit(0);
                }
                if (!r->stopping) {
                        runner_log(r, LOG_INFO, "Stopping: finishing %llu items in flight.",
                                   (unsigned long long) r->outstanding);
                        r->stopping = true;
                }
                finish_if_done(r);
                return 0;
        }
        fail(r, IPC_FAIL_TEMPORARY, "unexpected message from mplockd");
}

static void runner_free(Runner *r) {
        for (uint32_t i = 0; r->workers && i < r->job.n_workers; i++) {
                worker_detach(&r->workers[i]);
                free(r->workers[i].buf);
        }
        free(r->workers);
        commit_free(&r->commit);
        dispatch_free(&r->dispatch);
        r->ipc_source = sd_event_source_disable_unref(r->ipc_source);
        r->commit_timer = sd_event_source_disable_unref(r->commit_timer);
        r->exit_timer = sd_event_source_disable_unref(r->exit_timer);
        r->timeout_timer = sd_event_source_disable_unref(r->timeout_timer);
        r->retry_timer = sd_event_source_disable_unref(r->retry_timer);
        r->event = sd_event_unref(r->event);
        if (r->progress && r->progress != MAP_FAILED)
                (void) munmap(r->progress, r->job.n_workers * sizeof(WorkerProgress));
        bitset_free(&r->done);
        items_close(&r->items);
        host_done(&r->host);
        module_unload(&r->module);
        output_close(&r->out);
        start_job_free(&r->job);
}

int run_main(void) {
        Runner r = {};
        char err[1024];
        RunError e;
        sigset_t mask;
        int q;

        /* Work nobody else can read unless the output directory allows. */
        umask(022);
        output_init(&r.out, NULL, 0);
        if (start_read(&r.job, IPC_FD, &e) < 0)
                fail_with(NULL, &e);
        output_init(&r.out, r.job.output, r.job.id);
        if (host_init(&r.host, r.job.shared, r.job.output, r.job.id, r.job.n_workers, r.job.batch_size) < 0)
                fail(NULL, IPC_FAIL_TEMPORARY, "out of memory");
        if (start_lock(LOCK_FD, START_LOCK_TIMEOUT_USEC, &e) < 0)
                fail_with(&r, &e);

        q = module_load(&r.module, r.job.module_path, err, sizeof(err));
        if (q < 0)
                fail(&r, IPC_FAIL_PERMANENT, "%s", err);
        open_output(&r);
        q = items_open(&r.items, INPUT_FD, r.job.n_items, r.job.input_bytes, r.job.input_crc, err, sizeof(err));
        if (q < 0)
                fail(&r, q == -ENOMEM ? IPC_FAIL_TEMPORARY : IPC_FAIL_PERMANENT, "%s", err);
        if (start_load_done(&r.done, BITMAP_FD, r.job.n_items, r.job.committed, &e) < 0)
                fail_with(&r, &e);
        r.dispatch = (Dispatch){ .n_items = r.job.n_items,
                                 .n_workers = r.job.n_workers,
                                 .batch_size = r.job.batch_size,
                                 .max_attempts = r.job.max_attempts,
                                 .retry_delay_ms = r.job.retry_delay_ms,
                                 .done = &r.done };
        {
                CommitConfig cfg = {
                        .results_fd = r.out.results_fd,
                        .results_len = r.job.results_len,
                        .done = &r.done,
                        .committed = r.job.committed,
                        .committed_failed = r.job.committed_failed,
                        .commit_items = r.job.commit_items,
                        .save_batch = r.job.save_batch,
                        .save = r.module.def->save,
                        .save_ctx = &r.host.ctx,
                        .send = send_commit,
                };
                if (commit_init(&r.commit, &cfg) < 0)
                        fail(&r, IPC_FAIL_TEMPORARY, "out of memory");
        }
        (void) close(INPUT_FD); /* the mapping stays */
        (void) close(BITMAP_FD);
        if (carry_copy(&r.out, &r.commit, r.job.results_gen, r.job.prev_results_len, r.job.n_items, &e) < 0)
                fail_with(&r, &e);

        (void) sigemptyset(&mask);
        (void) sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                fail(&r, IPC_FAIL_TEMPORARY, "sigprocmask: %s", strerror(errno));
        (void) signal(SIGPIPE, SIG_IGN);
        q = sd_event_new(&r.event);
        if (q < 0)
                fail(&r, IPC_FAIL_TEMPORARY, "sd_event_new: %s", strerror(-q));
        /* Blocking on purpose: a commit must not be lost to EAGAIN; we
         * only read when epoll says there is a message. */
        q = sd_event_add_io(r.event, &r.ipc_source, IPC_FD, EPOLLIN, ipc_handler, &r);
        if (q >= 0)
                q = sd_event_add_time_relative(r.event, &r.commit_timer, CLOCK_MONOTONIC,
                                               (uint64_t) r.job.commit_interval_ms * 1000u, 0, commit_timer_handler, &r);
        if (q < 0)
                fail(&r, IPC_FAIL_TEMPORARY, "sd-event: %s", strerror(-q));

        (void) ipc_send(IPC_FD, IPC_READY, NULL, 0);
        runner_log(&r, LOG_INFO, "Running %llu items (%llu committed before) with %u workers.",
                   (unsigned long long) r.job.n_items, (unsigned long long) r.commit.committed, r.job.n_workers);
        if (r.job.timeout_sec > 0)
                runner_log(&r, LOG_DEBUG, "A call of process may take %u s.", r.job.timeout_sec);

        r.workers = calloc(r.job.n_workers, sizeof(*r.workers));
        if (!r.workers)
                fail(&r, IPC_FAIL_TEMPORARY, "out of memory");
        r.progress = mmap(NULL, r.job.n_workers * sizeof(WorkerProgress), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (r.progress == MAP_FAILED)
                fail(&r, IPC_FAIL_TEMPORARY, "cannot map worker progress: %s", strerror(errno));
        if (r.job.timeout_sec > 0) {
                q = sd_event_add_time_relative(r.event, &r.timeout_timer, CLOCK_MONOTONIC,
                                               MIN((uint64_t) r.job.timeout_sec * 250000u + 1, (uint64_t) 1000000), 0,
                                               timeout_timer_handler, &r);
                if (q < 0)
                        fail(&r, IPC_FAIL_TEMPORARY, "sd-event: %s", strerror(-q));
        }
        for (uint32_t i = 0; i < r.job.n_workers; i++) {
                r.workers[i] = (Worker){ .runner = &r, .no = i, .cmd_fd = -1, .res_fd = -1, .out_fd = -1 };
                if (r.commit.recorded < r.job.n_items)
                        worker_spawn(&r, &r.workers[i]);
        }
        finish_if_done(&r);

        q = sd_event_loop(r.event);
        if (q < 0)
                fail(&r, IPC_FAIL_TEMPORARY, "event loop: %s", strerror(-q));
        runner_free(&r);
        return 0;
}
