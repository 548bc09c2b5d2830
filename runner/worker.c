/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "items.h"
#include "module.h"
#include "results.h"
#include "runner.h"
#include "worker.h"

/* A worker: init once, then run chunks of items as the runner hands them
 * out, sending result blocks back as they fill. Items are read straight
 * from the shared snapshot mapping; nothing per item crosses a pipe. */

static _Noreturn void worker_exit(int code) {
        /* Flush the module's stdio into the job log before leaving. */
        (void) fflush(stdout);
        (void) fflush(stderr);
        _exit(code);
}

static void send_frame(int fd, uint32_t type, int32_t code, const char *msg) {
        WorkerFrame f = { .magic = WORKER_FRAME_MAGIC, .type = type, .code = code, .len = msg ? (uint32_t) strlen(msg) : 0 };

        if (write_full(fd, &f, sizeof(f)) < 0 || (f.len && write_full(fd, msg, f.len) < 0))
                worker_exit(1); /* the runner is gone */
}

static void block_send(ResultsBlock *b, int fd) {
        results_block_finish(b);
        if (write_full(fd, b->buf, b->len) < 0)
                worker_exit(1);
}

_Noreturn void worker_main(const Module *mod, const Items *items, Host *host, uint32_t worker_no, int cmd_fd,
                           int res_fd, WorkerProgress *progress) {
        const struct mplock_module *def = mod->def;
        uint32_t batch = host->ctx.batch_size ? host->ctx.batch_size : 1;
        mplock_ctx ctx = host->ctx;
        ResultSlots slots = {};
        mplock_results res = { .api = &host_api, .host = &slots };
        ResultsBlock block = {};
        mplock_item *batch_items;
        void *state = NULL;
        int r;

        ctx.worker = worker_no;
        batch_items = calloc(batch, sizeof(*batch_items));
        if (!batch_items || result_slots_reset(&slots, batch) < 0) {
                send_frame(res_fd, WORKER_FRAME_INIT_FAIL, -ENOMEM, "out of memory");
                worker_exit(1);
        }
        if (def->init) {
                r = def->init(&ctx, &state);
                if (r < 0) {
                        char msg[128];
                        (void) snprintf(msg, sizeof(msg), "init failed in worker %u with %d%s%s", worker_no, r,
                                        r > -4096 ? ": " : "", r > -4096 ? strerror(-r) : "");
                        send_frame(res_fd, WORKER_FRAME_INIT_FAIL, r, msg);
                        worker_exit(1);
                }
        }
        send_frame(res_fd, WORKER_FRAME_INIT_OK, 0, NULL);

        for (;;) {
                WorkerCmd cmd;
                ssize_t n = read_full(cmd_fd, &cmd, sizeof(cmd));
                uint64_t off, i;

                if (n != (ssize_t) sizeof(cmd))
                        worker_exit(n == 0 ? 0 : 1); /* runner gone */
                if (cmd.op == WORKER_CMD_EXIT) {
                        if (def->fini)
                                def->fini(&ctx, state);
                        worker_exit(0);
                }
                if (cmd.op != WORKER_CMD_RUN || cmd.count == 0 || cmd.first >= items->n ||
                    cmd.count > items->n - cmd.first || cmd.offset >= items->size)
                        worker_exit(1);

                off = cmd.offset;
                results_block_begin(&block, cmd.first);
                for (i = 0; i < cmd.count;) {
                        size_t nb = (size_t) MIN((uint64_t) batch, cmd.count - i);

                        for (size_t k = 0; k < nb; k++) {
                                const char *d = items->map + off;
                                size_t len = strlen(d);
                                batch_items[k] = (mplock_item){ .data = d, .len = len, .index = cmd.first + i + k };
                                off += len + 1;
                        }
                        if (result_slots_reset(&slots, nb) < 0)
                                worker_exit(1);
                        r = def->process(&ctx, state, batch_items, nb, &res);
                        /* One store a call: the runner's timeout watch. */
                        __atomic_store_n(&progress->calls, progress->calls + 1, __ATOMIC_RELAXED);
                        for (size_t k = 0; k < nb; k++) {
                                ResultSlot *s = &slots.slots[k];
                                const mplock_item *it = &batch_items[k];
                                char msg[160];
                                const char *rdata;
                                size_t rlen;
                                int32_t status;
                                int q;

                                if (s->set) {
                                        rdata = s->data;
                                        rlen = s->len;
                                        status = s->status;
                                } else {
                                        if (r < 0)
                                                (void) snprintf(msg, sizeof(msg), "process failed with %d%s%s", r,
                                                                r > -4096 ? ": " : "", r > -4096 ? strerror(-r) : "");
                                        else
                                                (void) snprintf(msg, sizeof(msg), "process set no result for this item");
                                        rdata = msg;
                                        rlen = strlen(msg);
                                        status = r < 0 ? r : MPLOCK_ERR_NO_RESULT;
                                }
                                if (results_block_payload(&block) > 0 &&
                                    results_block_payload(&block) + rlen + it->len + sizeof(ResultsItemHeader) >
                                            RESULTS_BLOCK_PAYLOAD_MAX) {
                                        block_send(&block, res_fd);
                                        results_block_begin(&block, it->index);
                                }
                                q = results_block_add(&block, it->data, it->len, rdata, rlen, status);
                                if (q == -E2BIG) {
                                        /* Item and result together do not fit any block:
                                         * record the failure without them. */
                                        static const char big[] = "item and result too large for a results block";
                                        q = results_block_add(&block, it->data, 0, big, sizeof(big) - 1,
                                                              MPLOCK_ERR_TOO_LARGE);
                                }
                                if (q < 0)
                                        worker_exit(1);
                        }
                        i += nb;
                        if (results_block_payload(&block) >= RESULTS_BLOCK_TARGET && i < cmd.count) {
                                block_send(&block, res_fd);
                                results_block_begin(&block, cmd.first + i);
                        }
                }
                if (block.count > 0)
                        block_send(&block, res_fd);
        }
}
