/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitset.h"
#include "commit.h"
#include "fileio.h"
#include "macro.h"
#include "mplock/module.h"
#include "results.h"
#include "run-error.h"

int commit_init(Commit *c, const CommitConfig *cfg) {
        *c = (Commit){
                .results_fd = cfg->results_fd,
                .dir_fd = cfg->dir_fd,
                .results_len = cfg->results_len,
                .done = cfg->done,
                .commit_items = cfg->commit_items,
                .save_batch = cfg->save_batch,
                .save = cfg->save,
                .save_userdata = cfg->save_userdata,
                .send = cfg->send,
                .send_userdata = cfg->send_userdata,
                .recorded = cfg->committed,
                .recorded_failed = cfg->committed_failed,
                .committed = cfg->committed,
                .committed_failed = cfg->committed_failed,
        };
        c->ranges = malloc(IPC_COMMIT_RANGES_MAX * sizeof(*c->ranges));
        return c->ranges ? 0 : -ENOMEM;
}

void commit_free(Commit *c) {
        for (size_t k = c->pending_head; k < c->pending_head + c->n_pending; k++)
                free(c->pending[k].block);
        c->pending = mfree(c->pending);
        c->ranges = mfree(c->ranges);
        c->pending_head = c->n_pending = c->cap_pending = 0;
}

static int pending_push(Commit *c, const Pending *p) {
        if (c->pending_head > 0 && c->pending_head + c->n_pending == c->cap_pending) {
                memmove(c->pending, c->pending + c->pending_head, c->n_pending * sizeof(*c->pending));
                c->pending_head = 0;
        }
        if (GREEDY_REALLOC(c->pending, c->cap_pending, c->pending_head + c->n_pending + 1) < 0)
                return -ENOMEM;
        c->pending[c->pending_head + c->n_pending++] = *p;
        return 0;
}

int commit_append(Commit *c, const void *block, size_t len, uint32_t failed, bool saved, RunError *e) {
        ResultsBlockHeader h;
        Pending p;
        int r;

        memcpy(&h, block, sizeof(h));
        if (bitset_any_in_range(c->done, h.first, h.count))
                return run_error(e, IPC_FAIL_PERMANENT, -EEXIST, "items %llu..%llu recorded twice (internal error)",
                                 (unsigned long long) h.first, (unsigned long long) (h.first + h.count - 1));
        r = pwrite_full(c->results_fd, block, len, (off_t) c->results_len);
        if (r < 0)
                return run_error_io(e, r, "cannot write the results file: %s", strerror(-r));
        c->results_len += len;
        if (bitset_set_range(c->done, h.first, h.count) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");

        p = (Pending){ .first = h.first, .count = h.count, .failed = failed, .end = c->results_len };
        if (c->save && !saved) {
                p.block = malloc(len);
                if (!p.block)
                        return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
                memcpy(p.block, block, len);
                c->unsaved += h.count;
        } else
                p.saved = h.count; /* nothing of it for save() */
        if (pending_push(c, &p) < 0) {
                free(p.block);
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        }
        c->recorded += h.count;
        c->recorded_failed += failed;
        c->uncommitted += h.count;
        return 0;
}

/* An iterator at the first item of p not given to save(): resuming there
 * instead of skipping from the block's start keeps small save batches
 * linear in the block, not quadratic. */
static void unsaved_iter(const Pending *p, ResultsItemIter *it) {
        ResultsBlockHeader h;

        memcpy(&h, p->block, sizeof(h));
        results_item_iter_init(it, &h, p->block + sizeof(h));
        it->p += p->saved_off;
        it->next_index += p->saved;
}

/* Up to want unsaved items, from the pending blocks in order. */
static size_t collect_unsaved(Commit *c, mplock_entry *entries, size_t want) {
        size_t n = 0;

        for (size_t k = c->pending_head; k < c->pending_head + c->n_pending && n < want; k++) {
                Pending *p = &c->pending[k];
                ResultsItemIter it;
                ResultsItem item;

                if (p->saved == p->count)
                        continue;
                unsaved_iter(p, &it);
                while (n < want && results_item_iter_next(&it, &item))
                        entries[n++] = (mplock_entry){
                                .index = item.index,
                                .item = item.item,
                                .item_len = item.item_len,
                                .result = item.result,
                                .result_len = item.result_len,
                                .status = item.status,
                        };
        }
        return n;
}

/* Marks n items saved, in the order collect_unsaved() took them. */
static void mark_saved(Commit *c, size_t n) {
        size_t left = n;

        for (size_t k = c->pending_head; k < c->pending_head + c->n_pending && left > 0; k++) {
                Pending *p = &c->pending[k];
                uint32_t take = (uint32_t) MIN((uint64_t) (p->count - p->saved), (uint64_t) left);
                const char *start;
                ResultsItemIter it;
                ResultsItem item;

                if (take == 0)
                        continue;
                unsaved_iter(p, &it);
                start = it.p - p->saved_off;
                for (uint32_t i = 0; i < take && results_item_iter_next(&it, &item); i++)
                        ;
                p->saved_off = (uint32_t) (it.p - start);
                p->saved += take;
                left -= take;
        }
        c->unsaved -= n;
}

int commit_save(Commit *c, bool final, bool last, RunError *e) {
        _cleanup_free_ mplock_entry *entries = NULL;
        bool last_given = false;

        if (!c->save)
                return 0;
        final = final || last;
        while (c->unsaved >= c->save_batch || (final && c->unsaved > 0) || (last && !last_given)) {
                size_t want = (size_t) MIN((uint64_t) c->save_batch, c->unsaved), n;
                int r;

                if (!entries) {
                        entries = calloc(c->save_batch, sizeof(*entries));
                        if (!entries)
                                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
                }
                n = collect_unsaved(c, entries, want);
                last_given = last && c->unsaved == n;
                r = c->save(c->save_userdata, entries, n, last_given);
                if (r < 0)
                        /* A save that could not write (a full disk) pauses
                         * the job like our own writes; any other error is
                         * the module's verdict. */
                        return run_error(e, io_kind(r) == IPC_FAIL_STORAGE ? IPC_FAIL_STORAGE : IPC_FAIL_PERMANENT,
                                         r > -4096 ? r : -EIO, "save callback failed with %d%s%s", r,
                                         r > -4096 ? ": " : "", r > -4096 ? strerror(-r) : "");
                mark_saved(c, n);
        }
        return 0;
}

void commit_no_save(Commit *c) {
        for (size_t k = c->pending_head; k < c->pending_head + c->n_pending; k++) {
                Pending *p = &c->pending[k];
                p->block = mfree(p->block);
                p->saved = p->count;
        }
        c->unsaved = 0;
        c->save = NULL;
}

static int range_cmp(const void *a, const void *b) {
        const IpcRange *x = a, *y = b;
        return x->first < y->first ? -1 : x->first > y->first;
}

/* Sorts ranges[0..n) and merges the adjacent ones: how many are left. */
static uint32_t coalesce(IpcRange *ranges, size_t n) {
        uint32_t nr = 0;

        qsort(ranges, n, sizeof(ranges[0]), range_cmp);
        for (size_t k = 0; k < n; k++) {
                if (nr > 0 && ranges[nr - 1].first + ranges[nr - 1].count == ranges[k].first)
                        ranges[nr - 1].count += ranges[k].count;
                else
                        ranges[nr++] = ranges[k];
        }
        return nr;
}

/* Drops the first n pending blocks, now committed. */
static void pending_drop(Commit *c, size_t n) {
        for (size_t k = 0; k < n; k++)
                free(c->pending[c->pending_head + k].block);
        c->pending_head += n;
        c->n_pending -= n;
        if (c->n_pending == 0)
                c->pending_head = 0;
}

int commit_flush(Commit *c, RunError *e) {
        IpcCommit msg = {};
        uint64_t items = 0, failed = 0, end = 0;
        struct stat st;
        size_t n = 0;
        int r;

        for (; n < c->n_pending && n < IPC_COMMIT_RANGES_MAX; n++) {
                const Pending *p = &c->pending[c->pending_head + n];
                if (p->saved < p->count)
                        break; /* and what follows it in the file waits too */
                c->ranges[n] = (IpcRange){ .first = p->first, .count = p->count };
                items += p->count;
                failed += p->failed;
                end = p->end;
        }
        if (n == 0)
                return 0;

        /* The results must be on disk before the checkpoint says so. */
        if (fdatasync(c->results_fd) < 0)
                return run_error_io(e, -errno, "cannot sync the results file: %s", strerror(errno));
        /* And still where the job's owner will look: a file unlinked
         * (its directory removed) would take every commit with it. */
        if (fstat(c->results_fd, &st) < 0)
                return run_error_io(e, -errno, "cannot stat the results file: %s", strerror(errno));
        if (st.st_nlink == 0)
                return run_error(e, IPC_FAIL_PERMANENT, -ENOENT,
                                 "the results file was deleted while the job ran (or its output directory was): "
                                 "what was committed is lost with it");
        if (c->dir_fd >= 0) {
                if (fsync(c->dir_fd) < 0)
                        return run_error_io(e, -errno, "cannot sync the output directory: %s", strerror(errno));
                c->dir_fd = -1;
        }
        msg.results_len = end;
        msg.done_total = c->committed + items;
        msg.failed_total = c->committed_failed + failed;
        msg.n_ranges = coalesce(c->ranges, n);
        r = c->send(c->send_userdata, &msg, c->ranges);
        if (r < 0)
                /* mplockd is gone; our results are not committed. */
                return run_error(e, RUN_ERROR_GONE, r, "mplockd is gone");
        c->committed = msg.done_total;
        c->committed_failed = msg.failed_total;
        c->uncommitted -= items;
        pending_drop(c, n);
        return 1;
}

int commit_all(Commit *c, RunError *e) {
        while (c->n_pending > 0) {
                int r = commit_flush(c, e);
                if (r <= 0)
                        return r; /* 0: the rest waits for save() */
        }
        return 0;
}

int commit_recorded(Commit *c, RunError *e) {
        int r;

        r = commit_save(c, false, false, e);
        if (r < 0)
                return r;
        if (c->uncommitted >= c->commit_items || c->n_pending >= IPC_COMMIT_RANGES_MAX) {
                r = commit_flush(c, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

void commit_run_init(CommitRun *cr, Commit *c, bool saved) {
        *cr = (CommitRun){ .commit = c, .saved = saved };
}

int commit_run_end(CommitRun *cr, RunError *e) {
        if (!cr->open)
                return 0;
        cr->open = false;
        results_block_finish(&cr->b);
        return commit_append(cr->commit, cr->b.buf, cr->b.len, cr->failed, cr->saved, e);
}

int commit_run_add(CommitRun *cr, uint64_t index, const ResultsItem *it, RunError *e) {
        int r;

        if (cr->open && (index != cr->next || results_block_payload(&cr->b) >= RESULTS_BLOCK_TARGET)) {
                r = commit_run_end(cr, e);
                if (r < 0)
                        return r;
        }
        if (!cr->open) {
                results_block_begin(&cr->b, index);
                cr->open = true;
                cr->failed = 0;
        }
        if (results_block_add(&cr->b, it->item, it->item_len, it->result, it->result_len, it->status, &it->meta) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
        cr->next = index + 1;
        cr->failed += it->status != 0;
        return 0;
}

void commit_run_free(CommitRun *cr) {
        results_block_free(&cr->b);
        cr->open = false;
}
