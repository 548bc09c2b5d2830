/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "clock.h"
#include "commit.h"
#include "dispatch.h"
#include "ipc.h"
#include "itemlog.h"
#include "items.h"
#include "log.h"
#include "pool.h"
#include "record.h"
#include "results.h"
#include "run-error.h"
#include "runner.h"

/* Appends the run in b, if one is open. */
/* Whether the module made item's error final (MPLOCK_FAIL_PERMANENT): the
 * index is taken off the worker's list. */
static bool take_final(Worker *w, uint64_t index) {
        for (size_t k = 0; k < w->n_finals; k++)
                if (w->finals[k] == index) {
                        w->finals[k] = w->finals[--w->n_finals];
                        return true;
                }
        return false;
}

/* Whether an item gets another attempt: counts one if it may. */
static int wants_retry(Pool *p, Worker *w, const ResultsItem *item, uint32_t *ret_attempts, RunError *e) {
        if (!dispatch_retryable(p->dispatch, item->status) || take_final(w, item->index))
                return 0;
        if (dispatch_attempt(p->dispatch, item->index, ret_attempts) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        return *ret_attempts < p->max_attempts;
}

/* The log's line about a failed attempt: tried again (after its backoff),
 * or the item's last. */
static void log_attempt(Pool *p, const ResultsItem *item, uint32_t attempts, bool again) {
        char msg[ITEMLOG_MESSAGE_MAX + 4];

        itemlog_message(item->result, item->result_len, msg);
        if (again)
                itemlog(&p->itemlog, LOG_NOTICE, "item %llu attempt %u failed (%d: %s), again in %llu ms",
                        (unsigned long long) item->index, attempts, item->status, msg,
                        (unsigned long long) (dispatch_retry_delay(p->dispatch, attempts) / 1000));
        else
                itemlog(&p->itemlog, LOG_WARNING, "item %llu failed after %u attempt%s (%d: %s)",
                        (unsigned long long) item->index, attempts, attempts == 1 ? "" : "s", item->status, msg);
}

static int record_items(Pool *p, Worker *w, const char *block, CommitRun *run, RunError *e) {
        ResultsBlockHeader h;
        ResultsItemIter it;
        ResultsItem item;
        int r;

        memcpy(&h, block, sizeof(h));
        results_item_iter_init(&it, &h, block + sizeof(h));
        while (results_item_iter_next(&it, &item)) {
                uint32_t n = 0;

                r = wants_retry(p, w, &item, &n, e);
                if (r < 0)
                        return r;
                if (item.status != 0)
                        log_attempt(p, &item, n ? n : MAX(item.meta.attempts, 1u), r > 0);
                if (r > 0) {
                        r = commit_run_end(run, e);
                        if (r >= 0)
                                r = pool_retry_later(p, item.index, n, e);
                } else
                        r = commit_run_add(run, item.index, &item, e);
                if (r < 0)
                        return r;
        }
        return commit_run_end(run, e);
}

/* Appends the items of a block that are final, in runs of consecutive
 * indices (a block covers consecutive items only); the others wait for
 * another attempt. */
static int record_final_items(Pool *p, Worker *w, const char *block, RunError *e) {
        CommitRun run;
        int r;

        commit_run_init(&run, p->commit, false);
        r = record_items(p, w, block, &run, e);
        commit_run_free(&run);
        return r;
}

/* count more items of w's first chunk are recorded. */
static void assignment_progress(Pool *p, Worker *w, uint32_t count) {
        Assignment *a = &w->q[0];
        uint64_t now;

        a->done += count;
        if (a->done < a->count)
                return;
        now = now_usec();
        if (a->start_usec > 0)
                dispatch_measured(p->dispatch, now - a->start_usec, a->count);
        memmove(&w->q[0], &w->q[1], (POOL_WORKER_DEPTH - 1) * sizeof(Assignment));
        w->nq--;
        if (w->nq > 0)
                w->q[0].start_usec = now;
}

int record_block(Pool *p, Worker *w, const char *block, size_t len, RunError *e) {
        const Assignment *a = &w->q[0];
        ResultsBlockHeader h;
        uint32_t failed, crashed;
        int r;

        memcpy(&h, block, sizeof(h));
        if (w->nq == 0 || h.first != a->first + a->done || h.count > a->count - a->done)
                return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent results for items it was not given",
                                 w->no);
        if (results_block_verify_count(block, len, p->n_items, MPLOCK_ERR_CRASHED, &failed, &crashed) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -EBADMSG, "worker %u sent a corrupt result block", w->no);
        /* dispatch_retryable() per item, counted: failures other than a
         * final crash. Most blocks have none and go in whole. */
        if (p->max_attempts > 1 && failed > crashed)
                r = record_final_items(p, w, block, e);
        else
                r = commit_append(p->commit, block, len, failed, false, e);
        if (w->n_finals > 0 && h.first + h.count >= w->q[0].first + w->q[0].count)
                w->n_finals = 0; /* its chunk is done: nothing of it is left to come */
        if (r < 0)
                return r;
        p->outstanding -= h.count;
        assignment_progress(p, w, h.count);
        return commit_recorded(p->commit, e);
}

int record_failure(Pool *p, uint64_t index, const char *msg, const ResultsMeta *meta, RunError *e) {
        const char *item = p->items->map + items_offset(p->items, index);
        ResultsBlock b = {};
        int r;

        results_block_begin(&b, index);
        if (results_block_add(&b, item, strlen(item), msg, strlen(msg), MPLOCK_ERR_CRASHED, meta) < 0)
                r = run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        else {
                results_block_finish(&b);
                r = commit_append(p->commit, b.buf, b.len, 1, false, e);
        }
        results_block_free(&b);
        return r < 0 ? r : commit_recorded(p->commit, e);
}
