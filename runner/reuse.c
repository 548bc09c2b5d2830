/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bitset.h"
#include "commit.h"
#include "crc32c.h"
#include "fileio.h"
#include "items.h"
#include "log.h"
#include "macro.h"
#include "output.h"
#include "results.h"
#include "reuse.h"
#include "run-error.h"
#include "start.h"

/* This job's items not yet recorded, by text: open addressing, at most
 * half full. A slot is taken once a result was found for it. */
typedef struct Slot {
        uint64_t index1; /* item index + 1; 0: empty */
        uint64_t off;    /* of its text in the snapshot */
        bool taken;
} Slot;

typedef struct Table {
        Slot *slots;
        size_t mask;
        const Items *items;
} Table;

/* The run of consecutive indices being copied into one block. */
typedef struct Copy {
        CommitRun run; /* given to save like any result */
        uint64_t copied;
} Copy;

static size_t slot_of(const Table *t, const char *text, size_t len) {
        return crc32c(0, text, len) & t->mask;
}

static int table_build(Table *t, const Items *items, const Bitset *done) {
        size_t cap = 16;
        const char *p = items->map;

        while (cap < 2 * items->n)
                cap *= 2;
        t->slots = calloc(cap, sizeof(Slot));
        if (!t->slots)
                return -ENOMEM;
        t->mask = cap - 1;
        t->items = items;
        for (uint64_t i = 0; i < items->n; i++) {
                size_t len = strlen(p), k;

                if (!bitset_test(done, i)) {
                        for (k = slot_of(t, p, len); t->slots[k].index1; k = (k + 1) & t->mask)
                                ;
                        t->slots[k] = (Slot){ .index1 = i + 1, .off = (uint64_t) (p - items->map) };
                }
                p += len + 1;
        }
        return 0;
}

static bool slot_is(const Table *t, const Slot *s, const char *text, size_t len) {
        const char *mine = t->items->map + s->off;

        return memcmp(mine, text, len) == 0 && mine[len] == '\0';
}

/* As it was made in the earlier job: attempts, worker, run time. */
static int copy_to(Copy *cp, uint64_t index, const ResultsItem *it, RunError *e) {
        int r = commit_run_add(&cp->run, index, it, e);

        cp->copied += r >= 0;
        return r;
}

/* One earlier result: to every item of this job of its text. Equal texts
 * share a probe chain and are taken together, so meeting one taken means
 * all are (the earlier job's duplicates cost one probe each). */
static int match(Table *t, Copy *cp, const ResultsItem *it, RunError *e) {
        int r;

        if (it->status != 0 || memchr(it->item, '\0', it->item_len))
                return 0;
        for (size_t k = slot_of(t, it->item, it->item_len); t->slots[k].index1; k = (k + 1) & t->mask) {
                Slot *s = &t->slots[k];

                if (!slot_is(t, s, it->item, it->item_len))
                        continue;
                if (s->taken)
                        return 0;
                s->taken = true;
                r = copy_to(cp, s->index1 - 1, it, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The earlier job's file, if it is the one mplockd noted: its descriptor
 * and *f open, or -errno and the reason to skip it in why. */
static int open_earlier(const Job *job, ResultsFile *f, char *why, size_t n) {
        char path[OUTPUT_PATH_MAX];
        _cleanup_close_ int fd = -1;
        ResultsFileHeader h;
        struct stat st;
        int r;

        (void) snprintf(path, sizeof(path), "%s/mplock-%llu.results", job->reuse_output,
                        (unsigned long long) job->reuse_job);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
                r = -errno;
                (void) snprintf(why, n, "cannot open %s: %s", path, strerror(-r));
                return r;
        }
        /* In a shared directory, a file put there by someone else. */
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
                (void) snprintf(why, n, "%s is not your own regular file", path);
                return -EPERM;
        }
        if (pread_full(fd, &h, sizeof(h), 0) != (ssize_t) sizeof(h) || results_file_header_check(&h) < 0 ||
            h.job_id != job->reuse_job || h.gen != job->reuse_gen) {
                (void) snprintf(why, n, "%s is no longer the one of the ended job (retried since?)", path);
                return -ESTALE;
        }
        r = results_file_open(f, fd, job->reuse_len, job->reuse_items);
        if (r < 0) {
                (void) snprintf(why, n, "%s cannot be read up to its committed length: %s", path, strerror(-r));
                return r;
        }
        return TAKE_FD(fd);
}

/* Every block of f, in the earlier job's input order: a list shared in
 * the same order gives runs of consecutive indices, one block each. */
static int copy_file(ResultsFile *f, Table *t, Copy *cp, char *why, size_t n, RunError *e) {
        for (size_t k = 0; k < f->n_blocks; k++) {
                ResultsBlockHeader h;
                const char *payload;
                ResultsItemIter it;
                ResultsItem item;
                int r = results_file_read_block(f, k, &h, &payload);

                if (r < 0) {
                        /* What was copied before is sound (each block is
                         * checked before use); the rest runs. */
                        (void) snprintf(why, n, "its results are damaged after %llu: %s",
                                        (unsigned long long) cp->copied, strerror(-r));
                        return 0;
                }
                results_item_iter_init(&it, &h, payload);
                while (results_item_iter_next(&it, &item))
                        if ((r = match(t, cp, &item, e)) < 0)
                                return r;
                if (cp->run.commit->n_pending >= IPC_COMMIT_RANGES_MAX && (r = commit_run_end(&cp->run, e)) >= 0)
                        r = commit_recorded(cp->run.commit, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

int reuse_copy(const Job *job, const Items *items, Commit *c, const Output *o, uint64_t *ret_copied, RunError *e) {
        _cleanup_close_ int fd = -1;
        char why[OUTPUT_PATH_MAX + 128] = "";
        Copy cp = {};
        Table t = {};
        ResultsFile f;
        int r;

        *ret_copied = 0;
        if (job->reuse_job == 0 || c->recorded == job->n_items)
                return 0;
        if (job->n_items > REUSE_ITEMS_MAX) {
                output_log(o, LOG_WARNING, "Reuse: more than %llu items; nothing reused, every item runs.",
                           (unsigned long long) REUSE_ITEMS_MAX);
                return 0;
        }
        if (job->reuse_stamp && job->module_stamp && !streq(job->reuse_stamp, job->module_stamp)) {
                output_log(o, LOG_WARNING, "Reuse: the module changed since job %llu ran; nothing reused.",
                           (unsigned long long) job->reuse_job);
                return 0;
        }
        fd = open_earlier(job, &f, why, sizeof(why));
        if (fd < 0) {
                output_log(o, LOG_WARNING, "Reuse of job %llu: %s; its items run.", (unsigned long long) job->reuse_job,
                           why);
                return 0;
        }
        commit_run_init(&cp.run, c, false);
        r = table_build(&t, items, c->done);
        if (r >= 0)
                r = copy_file(&f, &t, &cp, why, sizeof(why), e);
        else
                r = run_error(e, IPC_FAIL_TEMPORARY, r, "out of memory");
        if (r >= 0)
                r = commit_run_end(&cp.run, e);
        commit_run_free(&cp.run);
        results_file_close(&f);
        free(t.slots);
        if (r < 0)
                return r;
        if (why[0])
                output_log(o, LOG_WARNING, "Reuse of job %llu: %s; the rest runs.", (unsigned long long) job->reuse_job,
                           why);
        *ret_copied = cp.copied;
        return 0;
}
