/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

typedef struct Host Host;
typedef struct Items Items;
typedef struct Module Module;

/* worker.c: the worker process. Commands come on cmd_fd, result blocks
 * and status frames go out on res_fd. */
#define WORKER_CMD_RUN 1u
#define WORKER_CMD_EXIT 2u

typedef struct WorkerCmd {
        uint64_t first;
        uint64_t offset; /* of item first in the snapshot: workers keep no index */
        uint32_t count;
        uint32_t op;
        uint32_t attempt; /* of the chunk's items: 1, more for a retried item (alone) */
        uint32_t reserved;
} WorkerCmd;

/* Frames a worker sends besides result blocks. */
#define WORKER_FRAME_MAGIC 0x574c504du /* "MPLW" */
#define WORKER_FRAME_INIT_OK 1u
#define WORKER_FRAME_INIT_FAIL 2u
#define WORKER_FRAME_LOG 3u   /* code: the level; the text follows */
#define WORKER_FRAME_FINAL 4u /* uint64_t indices follow: errors not to retry, in the next block */
#define WORKER_FRAME_SLOW 5u  /* StatsSlow entries follow: items that joined the worker's slowest */
/* Text and index lists in one frame, at most. */
#define WORKER_FRAME_MAX 4096u

typedef struct WorkerFrame {
        uint32_t magic;
        uint32_t type;
        int32_t code;
        uint32_t len; /* message bytes that follow */
} WorkerFrame;

/* What the worker prints through stdio comes in spans, each after a mark
 * naming the items of the call it was printed in (capture.c takes it
 * off): WORKER_MARK, then "FIRST COUNT LENGTH\n" in decimal, then LENGTH
 * bytes. COUNT 0: outside a call (init, fini). One writev, no extra
 * system call. */
#define WORKER_MARK '\036'
#define WORKER_MARK_MAX 64u

/* Shared with the runner: how many calls of process the worker has made,
 * for the item timeout, and the items of the call in progress (count 0:
 * none), for what it prints past stdio. One cache line each. */
typedef struct WorkerProgress {
        uint64_t calls;
        uint64_t item_first;
        uint32_t item_count;
        /* Set by the runner (a halt): end the chunk after this call, send
         * what it has and exit; the rest of the chunk is not done. */
        uint32_t cut;
        /* Set by the runner for a job with --halt-on-failure: a failed item
         * is sent at once, not with the rest of its block, so that the
         * runner counts failures as they happen. */
        uint32_t send_failures;
        uint32_t reserved; /* aligns what follows */
        /* Where the slot's workers' time went (IpcStatsWorker), added to
         * by the worker in it once per chunk; a replacement goes on adding. */
        uint64_t init_usec, busy_usec, wait_usec, items;
} WorkerProgress;

_Static_assert(sizeof(WorkerProgress) == 64, "one cache line");

_Noreturn void worker_main(const Module *mod, const Items *items, Host *host, uint32_t worker_no, int cmd_fd,
                           int res_fd, WorkerProgress *progress);
