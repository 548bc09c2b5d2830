/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bitset.h"
#include "carry.h"
#include "commit.h"
#include "fileio.h"
#include "log.h"
#include "output.h"
#include "results.h"
#include "run-error.h"

#define PREV_SUFFIX ".prev.results"

int carry_set_aside(Output *o, uint32_t gen, uint64_t committed_len, RunError *e) {
        char path[OUTPUT_PATH_MAX], prev[OUTPUT_PATH_MAX];
        int r;

        /* A later runner of the generation finds it moved already. */
        if (gen == 0 || committed_len > 0 || output_results_gen(o->results_fd, o->job_id) != (int64_t) gen - 1)
                return 0;
        output_path(o, ".results", path, sizeof(path));
        output_path(o, PREV_SUFFIX, prev, sizeof(prev));
        if (rename(path, prev) < 0)
                return run_error_io(e, -errno, "cannot move %s aside: %s", path, strerror(errno));
        r = fsync_parent_at(AT_FDCWD, path);
        if (r < 0)
                return run_error_io(e, r, "cannot sync %s: %s", o->dir, strerror(-r));
        o->results_fd = safe_close(o->results_fd);
        o->results_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (o->results_fd < 0)
                return run_error_io(e, -errno, "cannot create results file %s: %s", path, strerror(errno));
        return 0;
}

/* Appends the run of b, if one is open, as records saved before. */
static int flush_run(Commit *c, ResultsBlock *b, bool *open, RunError *e) {
        if (!*open)
                return 0;
        *open = false;
        results_block_finish(b);
        return commit_append(c, b->buf, b->len, 0, true, e);
}

/* One block of the previous file: its successful items not in done, in
 * runs of consecutive indices (a block holds consecutive items only). */
static int copy_block(Commit *c, const ResultsBlockHeader *h, const char *payload, ResultsBlock *b,
                      uint64_t *copied, RunError *e) {
        ResultsItemIter it;
        ResultsItem item;
        bool open = false;
        int r;

        results_item_iter_init(&it, h, payload);
        while (results_item_iter_next(&it, &item)) {
                if (item.status != 0 || bitset_test(c->done, item.index)) {
                        r = flush_run(c, b, &open, e);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!open) {
                        results_block_begin(b, item.index);
                        open = true;
                }
                if (results_block_add(b, item.item, item.item_len, item.result, item.result_len, 0) < 0)
                        return run_error(e, IPC_FAIL_TEMPORARY, -ENOMEM, "out of memory");
                (*copied)++;
        }
        return flush_run(c, b, &open, e);
}

static int copy_file(ResultsFile *f, Commit *c, const char *prev, uint64_t *copied, RunError *e) {
        ResultsBlock b = {};
        int r = 0;

        for (size_t k = 0; k < f->n_blocks && r >= 0; k++) {
                ResultsBlockHeader h;
                const char *payload;

                r = results_file_read_block(f, k, &h, &payload);
                if (r < 0) {
                        r = run_error(e, IPC_FAIL_PERMANENT, r, "previous results %s are damaged: %s", prev,
                                      strerror(-r));
                        break;
                }
                r = copy_block(c, &h, payload, &b, copied, e);
                if (r >= 0 && c->n_pending >= IPC_COMMIT_RANGES_MAX)
                        r = commit_flush(c, e);
        }
        results_block_free(&b);
        return r < 0 ? r : commit_all(c, e);
}

int carry_copy(const Output *o, Commit *c, uint32_t gen, uint64_t prev_len, uint64_t n_items, RunError *e) {
        char prev[OUTPUT_PATH_MAX];
        _cleanup_close_ int fd = -1;
        uint64_t copied = 0;
        ResultsFile f;
        int r;

        if (gen == 0)
                return 0;
        output_path(o, PREV_SUFFIX, prev, sizeof(prev));
        fd = open(prev, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno == ENOENT && c->committed > 0)
                        return 0; /* done and removed before a restart */
                if (errno == ENOENT && prev_len == 0)
                        return 0; /* nothing was committed before the retry */
                return run_error_io(e, -errno, "cannot open the previous results %s: %s", prev, strerror(errno));
        }
        r = results_file_open(&f, fd, prev_len, n_items);
        if (r < 0)
                return run_error(e, IPC_FAIL_PERMANENT, r, "previous results %s are damaged: %s", prev,
                                 strerror(-r));
        r = copy_file(&f, c, prev, &copied, e);
        results_file_close(&f);
        if (r < 0)
                return r;
        if (copied > 0)
                output_log(o, LOG_INFO, "Retry: %llu results carried over from the previous run.",
                           (unsigned long long) copied);
        return 0;
}

void carry_remove(const Output *o, uint32_t gen) {
        char prev[OUTPUT_PATH_MAX];

        if (gen == 0)
                return;
        output_path(o, PREV_SUFFIX, prev, sizeof(prev));
        if (unlink(prev) < 0 && errno != ENOENT)
                output_log(o, LOG_WARNING, "Cannot remove %s: %s", prev, strerror(errno));
}
