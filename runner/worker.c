/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "clock.h"
#include "fileio.h"
#include "macro.h"
#include "items.h"
#include "host.h"
#include "module.h"
#include "results.h"
#include "runner.h"
#include "stats.h"
#include "worker.h"

/* A worker: init once, then run chunks of items as the runner hands them
 * out, sending result blocks back as they fill. Items are read straight
 * from the shared snapshot mapping; nothing per item crosses a pipe. */

/* The items of the call in progress (count 0: none), for the marks on
 * what the module prints. */
static struct {
        uint64_t first;
        uint32_t count;
} current;

/* A write of the module's stdout or stderr: the mark, then the bytes, to
 * the job log's pipe, in one writev. */
static ssize_t marked_write(void *cookie, const char *buf, size_t size) {
        int fd = *(const int *) cookie;
        char mark[WORKER_MARK_MAX];
        struct iovec iov[2];
        size_t n = (size_t) snprintf(mark, sizeof(mark), "%c%llu %u %zu\n", WORKER_MARK,
                                     (unsigned long long) current.first, current.count, size);
        ssize_t k;

        iov[0] = (struct iovec){ mark, n };
        iov[1] = (struct iovec){ (void *) UNCONST(buf), size };
        do
                k = writev(fd, iov, 2);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -1;
        /* A short write (a signal): the rest must follow, or the span is torn. */
        if ((size_t) k < n && write_full(fd, mark + k, n - (size_t) k) < 0)
                return -1;
        if ((size_t) k < n + size && write_full(fd, buf + (k > (ssize_t) n ? (size_t) k - n : 0),
                                                size - (k > (ssize_t) n ? (size_t) k - n : 0)) < 0)
                return -1;
        return (ssize_t) size;
}

/* stdout and stderr as the module sees them: streams that mark what they
 * write (worker.h), so that the job log names the item a line was printed
 * for. Bytes written past stdio (write(2), a child process) are named by
 * the runner after the call it sees in progress. */
static void mark_stdio(void) {
        static const int fds[2] = { STDOUT_FILENO, STDERR_FILENO };
        static const cookie_io_functions_t io = { .write = marked_write };
        FILE *out, *err;

        (void) fflush(stdout);
        (void) fflush(stderr);
        out = fopencookie((void *) UNCONST(&fds[0]), "w", io);
        err = fopencookie((void *) UNCONST(&fds[1]), "w", io);
        if (!out || !err) {
                if (out)
                        (void) fclose(out);
                if (err)
                        (void) fclose(err);
                return; /* unmarked: named after the call in progress */
        }
        /* As the runner set them: lines of different workers stay apart. */
        (void) setvbuf(out, NULL, _IOLBF, 0);
        (void) setvbuf(err, NULL, _IONBF, 0);
        stdout = out;
        stderr = err;
}

static _Noreturn void worker_exit(int code) {
        /* Flush the module's stdio into the job log before leaving. */
        (void) fflush(stdout);
        (void) fflush(stderr);
        _exit(code);
}

static void send_frame_bytes(int fd, uint32_t type, int32_t code, const void *data, size_t len) {
        WorkerFrame f = { .magic = WORKER_FRAME_MAGIC, .type = type, .code = code,
                          .len = (uint32_t) MIN(len, (size_t) WORKER_FRAME_MAX) };

        if (write_full(fd, &f, sizeof(f)) < 0 || (f.len && write_full(fd, data, f.len) < 0))
                worker_exit(1); /* the runner is gone */
}

static void send_frame(int fd, uint32_t type, int32_t code, const char *msg) {
        send_frame_bytes(fd, type, code, msg, msg ? strlen(msg) : 0);
}

/* A module's log line, for the runner to write where the job's go, after
 * the items of the call it came from. */
static void worker_log(void *userdata, int level, const char *message) {
        char text[WORKER_FRAME_MAX + 1];

        if (current.count == 1)
                (void) snprintf(text, sizeof(text), "item %llu: %s", (unsigned long long) current.first, message);
        else if (current.count > 1)
                (void) snprintf(text, sizeof(text), "items %llu..%llu: %s", (unsigned long long) current.first,
                                (unsigned long long) (current.first + current.count - 1), message);
        else
                (void) snprintf(text, sizeof(text), "%s", message);
        send_frame(*(const int *) userdata, WORKER_FRAME_LOG, level, text);
}

/* The items of the call whose errors are final: the runner must know
 * before it reads the block they are in. */
static void send_finals(int fd, const ResultSlots *slots, const mplock_item *items, size_t n) {
        uint64_t idx[WORKER_FRAME_MAX / sizeof(uint64_t)];
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                if (!slots->slots[i].final || slots->slots[i].status == 0)
                        continue;
                idx[k++] = items[i].index;
                if (k == ELEMENTSOF(idx)) {
                        send_frame_bytes(fd, WORKER_FRAME_FINAL, 0, idx, sizeof(idx));
                        k = 0;
                }
        }
        if (k > 0)
                send_frame_bytes(fd, WORKER_FRAME_FINAL, 0, idx, k * sizeof(idx[0]));
}

static void block_send(ResultsBlock *b, int fd) {
        results_block_finish(b);
        if (write_full(fd, b->buf, b->len) < 0)
                worker_exit(1);
}

/* Adds one item's outcome and joblog to block (sent first if it would
 * overflow): whether it failed. */
static bool add_outcome(ResultsBlock *block, int res_fd, const mplock_item *it, const ResultSlot *s, int r,
                        const ResultsMeta *meta) {
        char msg[160];
        const char *rdata = s->data;
        size_t rlen = s->len;
        int32_t status = s->status;
        int q;

        if (!s->set) {
                if (r < 0)
                        (void) snprintf(msg, sizeof(msg), "process failed with %d%s%s", r, r > -4096 ? ": " : "",
                                        r > -4096 ? strerror(-r) : "");
                else if (r > 0)
                        /* Positive returns are reserved and count as 0;
                         * say so, since a module author may have meant an
                         * errno. */
                        (void) snprintf(msg, sizeof(msg), "process returned %d (positive: taken as 0) and set no "
                                        "result for this item", r);
                else
                        (void) snprintf(msg, sizeof(msg), "process set no result for this item");
                rdata = msg;
                rlen = strlen(msg);
                status = r < 0 ? r : MPLOCK_ERR_NO_RESULT;
        }
        if (results_block_payload(block) > 0 &&
            results_block_payload(block) + rlen + it->len + RESULTS_ITEM_HEADER_V2_MAX > RESULTS_BLOCK_PAYLOAD_MAX) {
                block_send(block, res_fd);
                results_block_begin(block, it->index);
        }
        q = results_block_add(block, it->data, it->len, rdata, rlen, status, meta);
        if (q == -E2BIG) {
                /* Item and result together do not fit any block: record the
                 * failure without them. */
                static const char big[] = "item and result too large for a results block";
                q = results_block_add(block, it->data, 0, big, sizeof(big) - 1, MPLOCK_ERR_TOO_LARGE, meta);
        }
        if (q < 0)
                worker_exit(1);
        return status != 0;
}

typedef struct WorkerCall {
        const struct mplock_module *def;
        const Items *items;
        mplock_ctx *ctx;
        void *state;
        mplock_item *batch_items;
        uint32_t batch;
        ResultSlots *slots;
        mplock_results *res;
        ResultsBlock *block;
        int res_fd;
        uint32_t worker_no;
        WorkerProgress *progress;
        /* The worker's slowest items, and those of them new in this chunk,
         * for the runner (WORKER_FRAME_SLOW), timed in ticks (below); and
         * the ticks and microseconds of its chunks so far, to convert. */
        StatsTop slowest, fresh;
        uint64_t ticks, usec;
        double usec_per_tick; /* measured at the start, refined by the chunks */
        /* Whether this chunk times each call: not once the calls of the
         * last one took under TIME_CALLS_USEC on average (see run_chunk). */
        bool coarse;
        uint64_t calls; /* of process, over the chunks so far */
} WorkerCall;

/* Calls this short are not timed one by one: a clock read is 10 to 25 ns
 * of W1's 70 ns calls, and their run time, in microseconds, reads 0
 * anyway. Their items get their chunk's average (0 under a microsecond),
 * and stats' slowest items come from the chunks of longer calls. */
#define TIME_CALLS_USEC 2.0

/* The clock of a call: the TSC where there is one (11 ns a read here,
 * against 27 for clock_gettime, on W1's 150 ns calls), converted with
 * the ratio of ticks to CLOCK_MONOTONIC over the worker's chunks (the
 * TSC of every CPU of today runs at one constant rate); elsewhere the
 * monotonic clock itself, in nanoseconds. */
static inline uint64_t ticks_now(void) {
#if defined(__x86_64__) || defined(__i386__)
        return __rdtsc();
#else
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
#endif
}

/* The ticks' length, before the first chunk: a spin of 50 us against
 * the monotonic clock (a worker's fork costs far more). */
static double ticks_calibrate(void) {
        uint64_t u0 = now_usec(), t0 = ticks_now(), u, t;

        do
                u = now_usec();
        while (u - u0 < 50);
        t = ticks_now();
        return t > t0 ? (double) (u - u0) / (double) (t - t0) : 0.0;
}

/* A slot's counter, added to: its worker is the only writer. */
static void progress_add(uint64_t *v, uint64_t d) {
        __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
}

/* One call's ticks, its share for each item: the floor of the slowest
 * kept is all most calls are compared with. */
static void note_call(WorkerCall *w, uint64_t ticks, size_t nb) {
        uint64_t per;

        if (ticks <= stats_top_floor(&w->slowest))
                return;
        per = ticks / nb;
        for (size_t k = 0; k < nb; k++)
                if (stats_top_add(&w->slowest, w->batch_items[k].index, per))
                        (void) stats_top_add(&w->fresh, w->batch_items[k].index, per);
}

/* The chunk's time and items into the slot; its newcomers to the slowest
 * to the runner, in microseconds. */
static void chunk_done(WorkerCall *w, uint64_t start_usec, uint64_t start_ticks, uint64_t items, uint64_t calls) {
        uint64_t busy = now_usec() - start_usec, t = ticks_now();
        StatsSlow v[STATS_SLOW_MAX];
        uint32_t n;

        progress_add(&w->progress->busy_usec, busy);
        progress_add(&w->progress->items, items);
        w->usec += busy;
        w->ticks += t > start_ticks ? t - start_ticks : 0;
        w->calls += calls;
        /* Over 10 ms of chunks the ratio is better than the spin's. */
        if (w->usec >= 10000 && w->ticks > 0)
                w->usec_per_tick = (double) w->usec / (double) w->ticks;
        w->coarse = calls > 0 && (double) busy < TIME_CALLS_USEC * (double) calls;
        if (w->fresh.n == 0)
                return;
        n = stats_top_sorted(&w->fresh, v);
        w->fresh.n = 0;
        for (uint32_t k = 0; k < n; k++)
                v[k].usec = (uint64_t) ((double) v[k].usec * w->usec_per_tick);
        send_frame_bytes(w->res_fd, WORKER_FRAME_SLOW, 0, v, n * sizeof(v[0]));
}

/* The items of a chunk, a call of process per batch, their outcomes into
 * blocks. */
static void run_chunk(WorkerCall *w, const WorkerCmd *cmd) {
        uint64_t off = cmd->offset, i, calls = 0, start = now_usec(), start_ticks = ticks_now(), t = start_ticks;
        /* Untimed calls: what the worker's earlier calls took on average. */
        uint64_t average = w->coarse && w->calls ? (uint64_t) ((double) w->usec / (double) w->calls) : 0;

        results_block_begin(w->block, cmd->first);
        for (i = 0; i < cmd->count;) {
                size_t nb = (size_t) MIN((uint64_t) w->batch, cmd->count - i);
                ResultsMeta meta = { .attempts = cmd->attempt, .worker = w->worker_no };
                uint64_t now, call;
                bool failed;
                int r;

                for (size_t k = 0; k < nb; k++) {
                        const char *d = w->items->map + off;
                        size_t len = strlen(d);
                        w->batch_items[k] = (mplock_item){ .data = d, .len = len, .index = cmd->first + i + k };
                        off += len + 1;
                }
                if (result_slots_reset(w->slots, nb) < 0)
                        worker_exit(1);
                w->slots->attempt = cmd->attempt;
                current.first = cmd->first + i;
                current.count = (uint32_t) nb;
                __atomic_store_n(&w->progress->item_first, current.first, __ATOMIC_RELAXED);
                __atomic_store_n(&w->progress->item_count, current.count, __ATOMIC_RELEASE);
                r = w->def->process(w->ctx, w->state, w->batch_items, nb, w->res);
                /* What it left in stdout's buffer belongs to this call;
                 * asked first, without the stream's lock (fflush takes it,
                 * which cost W1 as much as the rest of the loop). */
                if (__fpending(stdout) > 0)
                        (void) fflush(stdout);
                current.count = 0;
                __atomic_store_n(&w->progress->item_count, 0, __ATOMIC_RELEASE);
                /* One store a call: the runner's timeout watch. */
                __atomic_store_n(&w->progress->calls, w->progress->calls + 1, __ATOMIC_RELAXED);
                /* One clock read a call, for the joblog's run time and the
                 * slowest items: from the previous one, so that a call's
                 * time holds the previous one's results too (and a CPU
                 * whose TSC is behind another's makes it 0); a batch's
                 * time is shared out evenly over its items. */
                calls++;
                if (w->coarse)
                        meta.run_usec = average / nb;
                else {
                        now = ticks_now();
                        call = now > t ? now - t : 0;
                        t = now;
                        meta.run_usec = (uint64_t) ((double) call * w->usec_per_tick) / nb;
                        note_call(w, call, nb);
                }
                send_finals(w->res_fd, w->slots, w->batch_items, nb);
                failed = false;
                for (size_t k = 0; k < nb; k++)
                        failed |= add_outcome(w->block, w->res_fd, &w->batch_items[k], &w->slots->slots[k], r,
                                              &meta);
                i += nb;
                if (failed && i < cmd->count && __atomic_load_n(&w->progress->send_failures, __ATOMIC_RELAXED)) {
                        block_send(w->block, w->res_fd);
                        results_block_begin(w->block, cmd->first + i);
                }
                if (i < cmd->count && __atomic_load_n(&w->progress->cut, __ATOMIC_RELAXED)) {
                        if (w->block->count > 0)
                                block_send(w->block, w->res_fd);
                        chunk_done(w, start, start_ticks, i, calls);
                        worker_exit(0);
                }
                if (results_block_payload(w->block) >= RESULTS_BLOCK_TARGET && i < cmd->count) {
                        block_send(w->block, w->res_fd);
                        results_block_begin(w->block, cmd->first + i);
                }
        }
        if (w->block->count > 0)
                block_send(w->block, w->res_fd);
        chunk_done(w, start, start_ticks, cmd->count, calls);
}

/* init, with its reason when it fails. */
static void *worker_init(const struct mplock_module *def, mplock_ctx *ctx, Host *host, uint32_t worker_no,
                         int res_fd) {
        char msg[HOST_MESSAGE_MAX + 64];
        void *state = NULL;
        int r;

        if (!def->init)
                return NULL;
        r = def->init(ctx, &state);
        if (r >= 0)
                return state;
        if (host->error_message[0])
                (void) snprintf(msg, sizeof(msg), "init failed in worker %u: %s", worker_no, host->error_message);
        else
                (void) snprintf(msg, sizeof(msg), "init failed in worker %u with %d%s%s", worker_no, r,
                                r > -4096 ? ": " : "", r > -4096 ? strerror(-r) : "");
        send_frame(res_fd, WORKER_FRAME_INIT_FAIL, r, msg);
        worker_exit(1);
}

_Noreturn void worker_main(const Module *mod, const Items *items, Host *host, uint32_t worker_no, int cmd_fd,
                           int res_fd, WorkerProgress *progress) {
        uint32_t batch = host->ctx.batch_size ? host->ctx.batch_size : 1;
        mplock_ctx ctx = host->ctx;
        ResultSlots slots = {};
        mplock_results res = { .api = &host_api, .host = &slots };
        ResultsBlock block = {};
        uint64_t t0 = now_usec();
        WorkerCall w = { .def = mod->def, .items = items, .ctx = &ctx, .batch = batch, .slots = &slots,
                         .res = &res, .block = &block, .res_fd = res_fd, .worker_no = worker_no,
                         .progress = progress };

        ctx.worker = worker_no;
        mark_stdio();
        host->log = worker_log;
        host->log_userdata = &w.res_fd;
        w.batch_items = calloc(batch, sizeof(*w.batch_items));
        if (!w.batch_items || result_slots_reset(&slots, batch) < 0) {
                send_frame(res_fd, WORKER_FRAME_INIT_FAIL, -ENOMEM, "out of memory");
                worker_exit(1);
        }
        w.usec_per_tick = ticks_calibrate();
        w.state = worker_init(mod->def, &ctx, host, worker_no, res_fd);
        progress_add(&progress->init_usec, now_usec() - t0);
        send_frame(res_fd, WORKER_FRAME_INIT_OK, 0, NULL);

        for (;;) {
                WorkerCmd cmd;
                uint64_t t = now_usec();
                ssize_t n = read_full(cmd_fd, &cmd, sizeof(cmd));

                if (n != (ssize_t) sizeof(cmd))
                        worker_exit(n == 0 ? 0 : 1); /* runner gone */
                if (cmd.op == WORKER_CMD_EXIT) {
                        if (mod->def->fini)
                                mod->def->fini(&ctx, w.state);
                        worker_exit(0);
                }
                if (cmd.op != WORKER_CMD_RUN || cmd.count == 0 || cmd.first >= items->n ||
                    cmd.count > items->n - cmd.first || cmd.offset >= items->size)
                        worker_exit(1);
                /* Waiting for work is waiting for a chunk that came: the
                 * time after the last one is not. */
                progress_add(&progress->wait_usec, now_usec() - t);
                run_chunk(&w, &cmd);
        }
}
