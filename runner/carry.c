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
#include "retrysel.h"
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

/* What a carry-over copies and counts. */
typedef struct Carry {
        const RetrySel *sel;
        CommitRun run;                /* records saved before */
        uint64_t copied, kept_failed; /* of them, failed records kept as they are */
        uint64_t kept_failed_all;     /* failed records not chosen, committed before too */
} Carry;

/* A failed record stays unless this retry runs its item again. */
static bool carried(const Carry *k, const ResultsItem *item) {
        return item->status == 0 || (k->sel && !retry_sel_wants(k->sel, item->index, item->status));
}

/* One block of the previous file: its records to carry, not in done, in
 * runs of consecutive indices (a block holds consecutive items only), each
 * with its joblog as it was. */
static int copy_block(Carry *k, const ResultsBlockHeader *h, const char *payload, RunError *e) {
        ResultsItemIter it;
        ResultsItem item;
        int r;

        results_item_iter_init(&it, h, payload);
        while (results_item_iter_next(&it, &item)) {
                k->kept_failed_all += item.status != 0 && carried(k, &item);
                if (!carried(k, &item) || bitset_test(k->run.commit->done, item.index))
                        r = commit_run_end(&k->run, e);
                else {
                        r = commit_run_add(&k->run, item.index, &item, e);
                        k->copied++;
                        k->kept_failed += item.status != 0;
                }
                if (r < 0)
                        return r;
        }
        return commit_run_end(&k->run, e);
}

static int copy_file(ResultsFile *f, Carry *k, const char *prev, RunError *e) {
        int r = 0;

        for (size_t i = 0; i < f->n_blocks && r >= 0; i++) {
                ResultsBlockHeader h;
                const char *payload;

                r = results_file_read_block(f, i, &h, &payload);
                if (r < 0) {
                        r = run_error(e, IPC_FAIL_PERMANENT, r, "previous results %s are damaged: %s", prev,
                                      strerror(-r));
                        break;
                }
                r = copy_block(k, &h, payload, e);
                if (r >= 0 && k->run.commit->n_pending >= IPC_COMMIT_RANGES_MAX)
                        r = commit_flush(k->run.commit, e);
        }
        return r < 0 ? r : commit_all(k->run.commit, e);
}

int carry_copy(const Output *o, Commit *c, uint32_t gen, uint64_t prev_len, uint64_t n_items, const RetrySel *sel,
               uint64_t *ret_kept_failed, RunError *e) {
        char prev[OUTPUT_PATH_MAX];
        _cleanup_close_ int fd = -1;
        Carry k = { .sel = sel };
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
        commit_run_init(&k.run, c, true);
        r = results_file_open(&f, fd, prev_len, n_items);
        if (r < 0)
                return run_error(e, IPC_FAIL_PERMANENT, r, "previous results %s are damaged: %s", prev,
                                 strerror(-r));
        r = copy_file(&f, &k, prev, e);
        results_file_close(&f);
        commit_run_free(&k.run);
        if (r < 0)
                return r;
        *ret_kept_failed = k.kept_failed_all;
        if (k.copied > k.kept_failed)
                output_log(o, LOG_INFO, "Retry: %llu results carried over from the previous run.",
                           (unsigned long long) (k.copied - k.kept_failed));
        if (k.kept_failed > 0)
                output_log(o, LOG_INFO, "Retry: %llu failed items are not chosen (--code, --items): their errors "
                           "are kept.", (unsigned long long) k.kept_failed);
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
