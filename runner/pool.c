/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bitset.h"
#include "clock.h"
#include "commit.h"
#include "dispatch.h"
#include "fileio.h"
#include "fork.h"
#include "ipc.h"
#include "items.h"
#include "log.h"
#include "macro.h"
#include "output.h"
#include "nosignal.h"
#include "pool.h"
#include "record.h"
#include "results.h"
#include "run-error.h"
#include "stats.h"
#include "run-stats.h"
#include "runner.h"
#include "worker.h"

/* An event handler's failure: the top reports it and exits. */
static int pool_fail(Pool *p, const RunError *e) {
        p->hooks.failed(p->hooks.userdata, e);
        return 0;
}

static void pool_changed(Pool *p) {
        p->hooks.changed(p->hooks.userdata);
}

/* --- handing out -------------------------------------------------------- */

/* One chunk to w; false if there is none, or w cannot be told. */
static bool feed_one(Pool *p, Worker *w) {
        Assignment *a;
        WorkerCmd cmd;
        Chunk c;

        if (!dispatch_next(p->dispatch, &c))
                return false;
        /* A worker to be recycled gets no more than its due: the rest of
         * the chunk goes back, for another. */
        if (p->max_items_per_worker && c.count > 1 && w->items_given + c.count > p->max_items_per_worker) {
                uint32_t keep = (uint32_t) MAX(p->max_items_per_worker - MIN(w->items_given, p->max_items_per_worker),
                                               (uint64_t) 1);
                if (keep < c.count && dispatch_requeue(p->dispatch, c.first + keep, c.count - keep, false) == 0)
                        c.count = keep;
        }
        cmd = (WorkerCmd){ .first = c.first,
                           .offset = items_offset(p->items, c.first),
                           .count = c.count,
                           .op = WORKER_CMD_RUN,
                           /* An item with attempts behind it comes alone. */
                           .attempt = c.count == 1 ? dispatch_attempts_of(p->dispatch, c.first) + 1 : 1 };
        a = &w->q[w->nq++];
        *a = (Assignment){ .first = c.first, .count = c.count, .single = c.single };
        if (w->nq == 1) {
                a->start_usec = now_usec();
                w->seen_usec = a->start_usec;
                w->seen_calls = __atomic_load_n(&p->progress[w->no].calls, __ATOMIC_RELAXED);
        }
        p->outstanding += c.count;
        w->items_given += c.count;
        /* The pipe has room for many commands. If the worker cannot be
         * told, it must not sit idle while we wait for it: kill it, and
         * its exit hands the chunk out again. */
        if (write_full(w->cmd_fd, &cmd, sizeof(cmd)) < 0) {
                (void) kill(w->pid, SIGKILL);
                return false;
        }
        if (!p->handed_out) {
                p->handed_out = true;
                output_log(p->out, LOG_INFO, "First items handed out (from item %llu).", (unsigned long long) c.first);
        }
        return true;
}

void pool_check_halt(Pool *p) {
        if (p->halted || p->halt_failures == 0 || p->commit->recorded_failed < p->halt_failures)
                return;
        p->halted = p->stopping = true;
        output_log(p->out, LOG_WARNING, "Halting: %llu items failed (--halt-on-failure); %llu items in flight are "
                   "not done.", (unsigned long long) p->commit->recorded_failed, (unsigned long long) p->outstanding);
        for (uint32_t i = 0; i < p->n_workers; i++)
                __atomic_store_n(&p->progress[i].cut, 1, __ATOMIC_RELAXED);
}

/* Its resident memory, from /proc (our child, the same user). */
static uint64_t worker_rss(const Worker *w) {
        char path[64], buf[128];
        unsigned long long size, rss;

        (void) snprintf(path, sizeof(path), "/proc/%d/statm", (int) w->pid);
        if (read_virtual_file_at(AT_FDCWD, path, buf, sizeof(buf)) <= 0)
                return 0;
        if (sscanf(buf, "%llu %llu", &size, &rss) != 2)
                return 0;
        return (uint64_t) rss * (uint64_t) sysconf(_SC_PAGESIZE);
}

/* A worker past --max-items-per-worker or --max-worker-memory (modules
 * that leak) gets nothing more: it ends what it has and exits, and a
 * fresh one, with init run again, takes its place (worker_gone). */
static bool worker_recycle_due(Pool *p, Worker *w) {
        uint64_t rss = 0;
        WorkerCmd cmd = { .op = WORKER_CMD_EXIT };

        if (!(p->max_items_per_worker && w->items_given >= p->max_items_per_worker) &&
            !(p->max_worker_memory && (rss = worker_rss(w)) > p->max_worker_memory))
                return false;
        output_log(p->out, LOG_INFO, "Worker %u is replaced after %llu items%s%.0f%s.", w->no,
                   (unsigned long long) w->items_given, rss ? ", at " : "", (double) rss / 1048576.0,
                   rss ? " MB (--max-worker-memory)" : " (--max-items-per-worker)");
        w->exiting = w->recycling = true;
        if (write_full(w->cmd_fd, &cmd, sizeof(cmd)) < 0)
                (void) kill(w->pid, SIGKILL);
        return true;
}

void pool_feed(Pool *p) {
        if (p->stopping)
                return;
        for (uint32_t i = 0; i < p->n_workers; i++) {
                Worker *w = &p->workers[i];
                while (w->pid > 0 && w->ready && !w->exiting && w->nq < POOL_WORKER_DEPTH && !worker_recycle_due(p, w))
                        if (!feed_one(p, w))
                                break;
        }
}

/* --- retries ------------------------------------------------------------ */

/* Moves retries whose backoff is over to the ready queue, and sets the
 * timer for the next one. */
static int retry_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Pool *p = userdata;
        uint64_t next;
        RunError e;

        (void) usec;
        if (dispatch_release_due(p->dispatch, now_usec(), &next) < 0) {
                (void) run_error(&e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
                return pool_fail(p, &e);
        }
        if (next != UINT64_MAX) {
                (void) sd_event_source_set_time(s, next);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        pool_feed(p);
        pool_changed(p);
        return 0;
}

int pool_retry_later(Pool *p, uint64_t index, uint32_t attempt, RunError *e) {
        uint64_t when, armed = 0;
        int r;

        if (dispatch_retry_later(p->dispatch, index, attempt, now_usec(), &when) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        if (!p->retry_timer) {
                r = sd_event_add_time(p->event, &p->retry_timer, CLOCK_MONOTONIC, when, 0, retry_timer_handler, p);
                if (r < 0)
                        return run_error(e, IPC_FAIL_TEMPORARY, r, "sd-event: %s", strerror(-r));
                return 0;
        }
        /* The timer is set for the earliest retry. */
        if (sd_event_source_get_enabled(p->retry_timer, NULL) <= 0 ||
            sd_event_source_get_time(p->retry_timer, &armed) < 0 || armed > when) {
                (void) sd_event_source_set_time(p->retry_timer, when);
                (void) sd_event_source_set_enabled(p->retry_timer, SD_EVENT_ONESHOT);
        }
        return 0;
}

/* --- workers ------------------------------------------------------------ */

static int worker_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int worker_exited(sd_event_source *s, const siginfo_t *si, void *userdata);

/* In the child, set up by fork_sandboxed (its pipes as fds 3 and 4,
 * /dev/null and the job log's pipe as stdin, stdout and stderr, the
 * memory cap): what only the runner uses goes, then the worker's loop. */
static _Noreturn void worker_child(Pool *p, Worker *w) {
        /* Else it stays in each worker's RSS, growing with the job: the
         * item index (the commands carry offsets) and the committed set. */
        p->items->index = mfree(p->items->index);
        bitset_free(p->done);
        /* Line-buffered output keeps lines of different workers apart in the log. */
        (void) setvbuf(stdout, NULL, _IOLBF, 0);
        /* Before the module's code runs here: it may not signal the
         * runner, the group or everyone (nosignal.h). */
        if (nosignal_install(getppid(), getpgrp()) < 0)
                _exit(1);
        /* The runner is not dumpable; a worker's core is its own. */
        (void) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        worker_main(p->module, p->items, p->host, w->no, 3, 4, &p->progress[w->no]);
}

/* Our ends of a new worker's pipes, watched. */
static int worker_watch(Pool *p, Worker *w, pid_t pid, int cmd_fd, int res_fd, int out_fd, RunError *e) {
        int r;

        w->pid = pid;
        w->cmd_fd = cmd_fd;
        w->res_fd = res_fd;
        w->nq = 0;
        w->len = 0;
        w->ready = w->exiting = w->timed_out = w->init_timed_out = w->broken = w->recycling = false;
        w->items_given = 0;
        w->spawned_usec = now_usec();
        w->spawns++;
        r = fcntl(w->res_fd, F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
        if (r >= 0)
                r = sd_event_add_io(p->event, &w->io, w->res_fd, EPOLLIN, worker_io, w);
        /* The capture owns out_fd once started, even if that fails. */
        if (r >= 0)
                r = capture_start(&w->out, p->event, out_fd, p->out, w->no, &p->progress[w->no]);
        else
                safe_close(out_fd);
        if (r >= 0)
                r = sd_event_add_child(p->event, &w->child, pid, WEXITED, worker_exited, w);
        if (r < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, r, "cannot watch worker: %s", strerror(-r));
        return 0;
}

static void close_pipes(int fds[static 6]) {
        for (int i = 0; i < 6; i++)
                fds[i] = safe_close(fds[i]);
}

static int worker_spawn(Pool *p, Worker *w, RunError *e) {
        int fds[6] = { -1, -1, -1, -1, -1, -1 }, *cmd = fds, *res = fds + 2, *out = fds + 4;
        ForkOptions o;
        pid_t pid;
        int r;

        if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
                r = run_error(e, IPC_FAIL_TEMPORARY, -errno, "pipe: %s", strerror(errno));
                close_pipes(fds);
                return r;
        }
        /* Room for a few result blocks in flight; a smaller pipe only
         * means more wake-ups. */
        (void) fcntl(res[1], F_SETPIPE_SZ, 1 << 20);
        o = (ForkOptions){
                .flags = FORK_RESET_SIGNALS | FORK_DEATHSIG | FORK_CLOSE_FDS | FORK_NULL_STDIN |
                         FORK_KEEP_CLOEXEC,
                .fds = (const int[]){ cmd[0], res[1] },
                .n_fds = 2,
                .stdout_fd = out[1],
                .stderr_fd = out[1],
                /* The job's memory cap: private and heap memory of each
                 * worker, so that an allocation past it fails in the module
                 * instead of pushing the machine into the OOM killer. */
                .rlimit_data = p->memory_max,
        };
        pid = fork_sandboxed(&o);
        if (pid < 0) {
                r = run_error(e, IPC_FAIL_TEMPORARY, pid, "fork: %s", strerror(-pid));
                close_pipes(fds);
                return r;
        }
        if (pid == 0)
                worker_child(p, w);
        safe_close(cmd[0]);
        safe_close(res[1]);
        safe_close(out[1]);
        return worker_watch(p, w, pid, cmd[1], res[0], out[0], e);
}

/* A status frame: init done, or failed (which fails the job). */
/* Errors the module made final, for record.c, until their block comes. */
static int worker_finals(Worker *w, const char *data, uint32_t len, RunError *e) {
        size_t k = len / sizeof(uint64_t);

        if (len % sizeof(uint64_t) != 0 || w->n_finals + k > POOL_FINALS_MAX)
                return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent a malformed frame", w->no);
        if (GREEDY_REALLOC(w->finals, w->cap_finals, w->n_finals + k) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        memcpy(w->finals + w->n_finals, data, len);
        w->n_finals += k;
        return 0;
}

/* Items that joined the worker's slowest, into the job's. */
static int worker_slow(Pool *p, Worker *w, const char *data, uint32_t len, RunError *e) {
        if (len % sizeof(StatsSlow) != 0 || len / sizeof(StatsSlow) > STATS_SLOW_MAX)
                return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent a malformed frame", w->no);
        for (size_t k = 0; k < len / sizeof(StatsSlow); k++) {
                StatsSlow v;
                memcpy(&v, data + k * sizeof(v), sizeof(v));
                if (v.index >= p->n_items)
                        return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent a malformed frame", w->no);
                (void) stats_top_add(&p->stats->slowest, v.index, v.usec);
        }
        return 0;
}

static int worker_frame(Pool *p, Worker *w, const WorkerFrame *f, const char *text, RunError *e) {
        if (f->type == WORKER_FRAME_LOG) {
                output_log(p->out, f->code >= LOG_ERR && f->code <= LOG_DEBUG ? f->code : LOG_INFO,
                           "module (worker %u): %.*s", w->no, (int) MIN(f->len, 1000u), text);
                return 0;
        }
        if (f->type == WORKER_FRAME_FINAL)
                return worker_finals(w, text, f->len, e);
        if (f->type == WORKER_FRAME_SLOW)
                return worker_slow(p, w, text, f->len, e);
        if (f->type == WORKER_FRAME_INIT_OK) {
                w->ready = true;
                p->init_failures = 0;
                return 0;
        }
        if (f->type == WORKER_FRAME_INIT_FAIL)
                return run_error(e, IPC_FAIL_PERMANENT, -ENOEXEC, "%.*s", (int) MIN(f->len, 1023u), text);
        return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent an unknown frame", w->no);
}

/* The frames at buf (len bytes there), handled once complete: each
 * returns its size, or 0 if more is needed. */
static ssize_t parse_block(Pool *p, Worker *w, const char *buf, size_t len, RunError *e) {
        ResultsBlockHeader h;
        int r;

        if (len < sizeof(h))
                return 0;
        memcpy(&h, buf, sizeof(h));
        if (results_block_header_check(&h, p->n_items) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent a malformed block", w->no);
        if (len < sizeof(h) + h.payload_len)
                return 0;
        r = record_block(p, w, buf, sizeof(h) + h.payload_len, e);
        if (r < 0)
                return r;
        run_stats_recorded(p->stats, h.count);
        pool_check_halt(p);
        return (ssize_t) (sizeof(h) + h.payload_len);
}

static ssize_t parse_frame(Pool *p, Worker *w, const char *buf, size_t len, RunError *e) {
        WorkerFrame f;
        int r;

        if (len < sizeof(f))
                return 0;
        memcpy(&f, buf, sizeof(f));
        if (f.len > WORKER_FRAME_MAX)
                return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent a malformed frame", w->no);
        if (len < sizeof(f) + f.len)
                return 0;
        r = worker_frame(p, w, &f, buf + sizeof(f), e);
        return r < 0 ? r : (ssize_t) (sizeof(f) + f.len);
}

static ssize_t worker_parse_one(Pool *p, Worker *w, const char *buf, size_t len, RunError *e) {
        uint32_t magic;

        memcpy(&magic, buf, sizeof(magic));
        /* Workers write blocks of this version only. */
        if (magic == RESULTS_BLOCK_MAGIC_V2)
                return parse_block(p, w, buf, len, e);
        if (magic == WORKER_FRAME_MAGIC)
                return parse_frame(p, w, buf, len, e);
        return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent garbage", w->no);
}

/* Parses the complete frames in the worker's buffer. */
static int worker_parse(Pool *p, Worker *w, RunError *e) {
        size_t off = 0;

        while (w->len - off >= sizeof(uint32_t)) {
                ssize_t n = worker_parse_one(p, w, w->buf + off, w->len - off, e);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        break;
                off += (size_t) n;
        }
        if (off > 0) {
                memmove(w->buf, w->buf + off, w->len - off);
                w->len -= off;
        }
        return 0;
}

/* Room for a frame of any allowed size, in steps. */
static int worker_buffer(Worker *w, RunError *e) {
        size_t ncap = MAX(w->cap * 2, (size_t) (1 << 20));
        char *nb;

        if (w->cap - w->len >= 65536)
                return 0;
        ncap = MIN(ncap, (size_t) RESULTS_BLOCK_PAYLOAD_MAX + (1 << 20));
        if (ncap <= w->cap)
                return run_error(e, IPC_FAIL_TEMPORARY, -E2BIG, "worker %u sent an oversized frame", w->no);
        nb = realloc(w->buf, ncap);
        if (!nb)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        w->buf = nb;
        w->cap = ncap;
        return 0;
}

/* Reads and parses what the worker sent: 1 if more may come, 0 at EOF
 * (or a read error: its exit tells the rest). */
static int worker_read(Pool *p, Worker *w, RunError *e) {
        for (;;) {
                ssize_t n;
                int r = worker_buffer(w, e);
                if (r < 0)
                        return r;
                n = read(w->res_fd, w->buf + w->len, w->cap - w->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 1;
                if (n <= 0)
                        return 0;
                w->len += (size_t) n;
                r = worker_parse(p, w, e);
                if (r < 0)
                        return r;
        }
}

/* A worker's pipe holds what its module may have written too: garbage is
 * that worker's fault, not the job's. It is killed, and its items go back
 * as after a crash (the one in progress costs an attempt). */
static void worker_broke(Pool *p, Worker *w, const RunError *e, bool alive) {
        output_log(p->out, LOG_WARNING, "Worker %u broke the protocol (%s)%s; its items are tried again.", w->no,
                   e->msg, alive ? ": killed" : "");
        w->broken = true;
        w->len = 0;
        w->io = sd_event_source_disable_unref(w->io);
        if (alive)
                (void) kill(w->pid, SIGKILL);
}

static int worker_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        Pool *p = w->pool;
        RunError e;
        int r;

        (void) fd;
        (void) revents;
        r = worker_read(p, w, &e);
        if (r == -EBADMSG) {
                worker_broke(p, w, &e, true);
                return 0;
        }
        if (r < 0)
                return pool_fail(p, &e);
        if (r == 0)
                /* EOF: the exit event does the rest. */
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        pool_feed(p);
        pool_changed(p);
        return 0;
}

static void worker_detach(Worker *w) {
        w->n_finals = 0; /* of its blocks, none will come */
        capture_stop(&w->out);
        w->io = sd_event_source_disable_unref(w->io);
        w->child = sd_event_source_disable_unref(w->child);
        w->cmd_fd = safe_close(w->cmd_fd);
        w->res_fd = safe_close(w->res_fd);
        w->pid = 0;
}

/* --- exits -------------------------------------------------------------- */

static void describe_exit(const Pool *p, const Worker *w, const siginfo_t *si, char *how, size_t n) {
        if (w->broken)
                (void) snprintf(how, n, "broke the protocol");
        else if (w->init_timed_out)
                (void) snprintf(how, n, "took longer than %u s in init (callback-timeout)", p->init_timeout_sec);
        else if (w->timed_out)
                (void) snprintf(how, n, "timed out after %u s", p->timeout_sec);
        else if (si->si_code == CLD_EXITED)
                (void) snprintf(how, n, "exited with status %d", si->si_status);
        else
                (void) snprintf(how, n, "killed by signal %s", strsignal(si->si_status));
}

/* The worker died on the one item it had: an attempt, and the item fails
 * once it has had them all. */
static int suspect_died(Pool *p, Worker *w, uint64_t index, const char *how, RunError *e) {
        uint64_t start = w->q[0].start_usec;
        ResultsMeta meta = { .worker = w->no, .run_usec = start > 0 ? now_usec() - start : 0 };
        char msg[160];
        uint32_t n;
        int r;

        if (dispatch_attempt(p->dispatch, index, &n) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        if (n < p->max_attempts) {
                itemlog(&p->itemlog, LOG_WARNING, "item %llu attempt %u failed (worker %u %s), again in %llu ms",
                        (unsigned long long) index, n, w->no, how,
                        (unsigned long long) (dispatch_retry_delay(p->dispatch, n) / 1000));
                return pool_retry_later(p, index, n, e);
        }
        (void) snprintf(msg, sizeof(msg), "worker died on this item %u times (last: %s)", n, how);
        itemlog(&p->itemlog, LOG_WARNING, "item %llu failed after %u attempt%s (%d: %s)", (unsigned long long) index,
                n, n == 1 ? "" : "s", MPLOCK_ERR_CRASHED, msg);
        meta.attempts = n;
        r = record_failure(p, index, msg, &meta, e);
        if (r >= 0)
                pool_check_halt(p);
        return r;
}

/* What a dead worker held goes back: the item in progress is a suspect
 * (one at a time from now on), the rest is simply handed out again. */
static int give_back(Pool *p, Worker *w, const char *how, RunError *e) {
        for (unsigned k = 0; k < w->nq; k++) {
                const Assignment *a = &w->q[k];
                uint64_t first = a->first + a->done, left = a->count - a->done;
                int r;

                p->outstanding -= left;
                if (k > 0)
                        r = dispatch_requeue(p->dispatch, first, left, false);
                else if (a->single)
                        r = suspect_died(p, w, first, how, e);
                else {
                        output_log(p->out, LOG_WARNING,
                                   "Worker %u %s within items %llu..%llu; trying them one by one.", w->no, how,
                                   (unsigned long long) first, (unsigned long long) (first + left - 1));
                        r = dispatch_requeue_suspects(p->dispatch, first, left);
                }
                if (r == -ENOMEM)
                        return run_error(e, IPC_FAIL_TEMPORARY, r, "out of memory");
                if (r < 0)
                        return r;
        }
        w->nq = 0;
        return 0;
}

static int worker_gone(Pool *p, Worker *w, const siginfo_t *si, RunError *e) {
        char how[96];
        int r;

        /* Everything it wrote before it died counts, and is logged. */
        if (w->res_fd >= 0 && !w->broken) {
                r = worker_read(p, w, e);
                if (r == -EBADMSG)
                        worker_broke(p, w, e, false); /* it has exited */
                else if (r < 0)
                        return r;
        }
        (void) capture_read(&w->out);
        describe_exit(p, w, si, how, sizeof(how));
        w->life_usec += now_usec() - w->spawned_usec;
        worker_detach(w);

        if (w->recycling && si->si_code == CLD_EXITED && si->si_status == 0 && w->nq == 0 && !p->stopping &&
            p->commit->recorded < p->n_items) {
                p->recycled++;
                r = worker_spawn(p, w, e);
                if (r >= 0)
                        pool_feed(p);
                return r;
        }
        if ((w->exiting && si->si_code == CLD_EXITED && si->si_status == 0 && w->nq == 0) ||
            (p->stopping && w->nq == 0))
                return 0;
        if (p->halted && si->si_code == CLD_EXITED && si->si_status == 0) {
                /* It cut its chunk on the halt: the rest is not done, and
                 * nobody's fault. */
                for (unsigned k = 0; k < w->nq; k++)
                        p->outstanding -= w->q[k].count - w->q[k].done;
                w->nq = 0;
                return 0;
        }
        if (!w->ready && ++p->init_failures >= POOL_INIT_FAILURES_MAX)
                return run_error(e, IPC_FAIL_PERMANENT, -ECHILD, "workers die before init completes (worker %u %s)",
                                 w->no, how);
        r = give_back(p, w, how, e);
        if (r < 0)
                return r;
        if (!p->stopping && p->commit->recorded < p->n_items) {
                r = worker_spawn(p, w, e);
                if (r < 0)
                        return r;
        }
        pool_feed(p);
        return 0;
}

static int worker_exited(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Worker *w = userdata;
        Pool *p = w->pool;
        RunError e;

        (void) s;
        if (worker_gone(p, w, si, &e) < 0)
                return pool_fail(p, &e);
        pool_changed(p);
        return 0;
}

/* --- timeouts and the end ----------------------------------------------- */

/* A worker whose call count has not moved for timeout_sec while it had work
 * is stuck in one call of process: kill it, which counts an attempt for
 * its item like any other death. */
/* The period of the timeout watch: a quarter of the shorter limit, at
 * most a second. */
static uint64_t watch_period(const Pool *p) {
        uint64_t shortest = UINT64_MAX;

        if (p->timeout_sec > 0)
                shortest = (uint64_t) p->timeout_sec * 1000000u;
        if (p->init_timeout_sec > 0)
                shortest = MIN(shortest, (uint64_t) p->init_timeout_sec * 1000000u);
        return MIN(shortest / 4 + 1, (uint64_t) 1000000);
}

static int timeout_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Pool *p = userdata;
        uint64_t now = now_usec(), limit = (uint64_t) p->timeout_sec * 1000000u;
        uint64_t init_limit = (uint64_t) p->init_timeout_sec * 1000000u;

        (void) usec;
        for (uint32_t i = 0; i < p->n_workers; i++) {
                Worker *w = &p->workers[i];
                uint64_t calls;

                if (w->pid > 0 && !w->ready && init_limit > 0 && !w->init_timed_out &&
                    now - w->spawned_usec > init_limit) {
                        w->init_timed_out = true;
                        (void) kill(w->pid, SIGKILL);
                        continue;
                }
                if (w->pid <= 0 || w->nq == 0 || w->timed_out || limit == 0)
                        continue;
                calls = __atomic_load_n(&p->progress[i].calls, __ATOMIC_RELAXED);
                if (calls != w->seen_calls) {
                        w->seen_calls = calls;
                        w->seen_usec = now;
                } else if (now - w->seen_usec > limit) {
                        w->timed_out = true;
                        (void) kill(w->pid, SIGKILL);
                }
        }
        (void) sd_event_source_set_time_relative(s, watch_period(p));
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static int exit_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Pool *p = userdata;

        (void) s;
        (void) usec;
        output_log(p->out, LOG_WARNING, "Workers did not exit in time, killing them.");
        for (uint32_t i = 0; i < p->n_workers; i++)
                if (p->workers[i].pid > 0)
                        (void) kill(p->workers[i].pid, SIGKILL);
        return 0;
}

void pool_exit(Pool *p) {
        WorkerCmd cmd = { .op = WORKER_CMD_EXIT };

        for (uint32_t i = 0; i < p->n_workers; i++) {
                Worker *w = &p->workers[i];
                if (w->pid > 0 && !w->exiting) {
                        w->exiting = true;
                        /* One that cannot be told is killed by the timer. */
                        (void) write_full(w->cmd_fd, &cmd, sizeof(cmd));
                }
        }
        if (!p->exit_timer)
                (void) sd_event_add_time_relative(p->event, &p->exit_timer, CLOCK_MONOTONIC, POOL_EXIT_WAIT_USEC, 0,
                                                  exit_timer_handler, p);
}

bool pool_gone(const Pool *p) {
        return pool_alive(p) == 0;
}

uint32_t pool_alive(const Pool *p) {
        uint32_t n = 0;

        for (uint32_t i = 0; p->workers && i < p->n_workers; i++)
                n += p->workers[i].pid > 0;
        return n;
}

int pool_start(Pool *p, RunError *e) {
        int r;

        p->itemlog = (ItemLog){ .out = p->out };
        p->workers = calloc(p->n_workers, sizeof(*p->workers));
        if (!p->workers)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        p->progress = mmap(NULL, p->n_workers * sizeof(WorkerProgress), PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p->progress == MAP_FAILED) {
                p->progress = NULL;
                return run_error(e, IPC_FAIL_TEMPORARY, -errno, "cannot map worker progress: %s", strerror(errno));
        }
        for (uint32_t i = 0; i < p->n_workers && p->halt_failures > 0; i++)
                p->progress[i].send_failures = 1;
        if (p->timeout_sec > 0 || p->init_timeout_sec > 0) {
                r = sd_event_add_time_relative(p->event, &p->timeout_timer, CLOCK_MONOTONIC, watch_period(p), 0,
                                               timeout_timer_handler, p);
                if (r < 0)
                        return run_error(e, IPC_FAIL_TEMPORARY, r, "sd-event: %s", strerror(-r));
        }
        for (uint32_t i = 0; i < p->n_workers; i++) {
                Worker *w = &p->workers[i];
                *w = (Worker){ .pool = p, .no = i, .cmd_fd = -1, .res_fd = -1, .out.fd = -1 };
                if (p->commit->recorded < p->n_items) {
                        r = worker_spawn(p, w, e);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

void pool_free(Pool *p) {
        if (p->itemlog.out)
                itemlog_flush(&p->itemlog);
        for (uint32_t i = 0; p->workers && i < p->n_workers; i++) {
                worker_detach(&p->workers[i]);
                free(p->workers[i].buf);
                free(p->workers[i].finals);
        }
        p->workers = mfree(p->workers);
        p->timeout_timer = sd_event_source_disable_unref(p->timeout_timer);
        p->exit_timer = sd_event_source_disable_unref(p->exit_timer);
        p->retry_timer = sd_event_source_disable_unref(p->retry_timer);
        if (p->progress)
                (void) munmap(p->progress, p->n_workers * sizeof(WorkerProgress));
        p->progress = NULL;
}
