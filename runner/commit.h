/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc.h"
#include "results.h"

typedef struct Bitset Bitset;
typedef struct RunError RunError;
struct mplock_ctx;
struct mplock_entry;

/* commit.c: from a verified result block to committed items. A block is
 * appended to the results file and kept pending; when the module has a
 * save callback, its items are given to save in batches of save_batch; a
 * commit takes the pending blocks that are saved, in file order (the
 * commit names a length of the file), fdatasyncs the results file, and
 * only then tells mplockd which items are in it. */

/* The module's saving: entries[0..n); last: the job's last batch (then n
 * may be 0). 0 or a negative error. */
typedef int (*CommitSaveFn)(void *userdata, const struct mplock_entry *entries, size_t n, bool last);
/* Tells mplockd about one commit: c, then c->n_ranges ranges. 0, or -errno
 * when mplockd is gone. */
typedef int (*CommitSendFn)(void *userdata, const IpcCommit *c, const IpcRange *ranges);

typedef struct CommitConfig {
        int results_fd;       /* appended to, not owned */
        /* A results file whose name may not be durable yet (just made):
         * its directory is fsynced once, with the first commit. */
        int dir_fd;           /* not owned; -1: none needed */
        uint64_t results_len; /* its committed length: where blocks go */
        Bitset *done;         /* gets the items of every block appended */
        uint64_t committed, committed_failed; /* the job's totals so far */
        uint64_t commit_items; /* commit once this many items wait */
        uint32_t save_batch;
        CommitSaveFn save;     /* NULL: a block is committable once written */
        void *save_userdata;
        CommitSendFn send;
        void *send_userdata;
} CommitConfig;

/* A block written to the results file and not yet committed. */
typedef struct Pending {
        uint64_t first;
        uint32_t count;
        uint32_t failed;
        uint64_t end;   /* results file length after this block */
        char *block;    /* kept for save(), NULL otherwise */
        uint32_t saved; /* items of it given to save() (all, without a block) */
        uint32_t saved_off; /* where the first item not given to save() starts in the payload */
} Pending;

typedef struct Commit {
        int results_fd;
        int dir_fd; /* -1 once the results file's name is durable */
        uint64_t results_len; /* end of the results file */
        Bitset *done;
        uint64_t commit_items;
        uint32_t save_batch;
        CommitSaveFn save;
        void *save_userdata;
        CommitSendFn send;
        void *send_userdata;

        Pending *pending; /* in file order, from pending_head */
        size_t pending_head, n_pending, cap_pending;
        IpcRange *ranges; /* IPC_COMMIT_RANGES_MAX, to build a commit in */
        uint64_t unsaved;     /* items written, not given to save() */
        uint64_t uncommitted; /* items written, not committed */
        uint64_t recorded;    /* items with a record: committed before, and written */
        uint64_t recorded_failed; /* of them, failed */
        uint64_t committed, committed_failed;
} Commit;

int commit_init(Commit *c, const CommitConfig *cfg);
void commit_free(Commit *c);

/* Appends a verified block (len bytes) to the results file. failed: how
 * many of its items failed. saved: they were given to save before (a
 * retry carries them over), so they are committed without it. */
int commit_append(Commit *c, const void *block, size_t len, uint32_t failed, bool saved, RunError *e);
/* Gives save() what is unsaved in batches of save_batch items, and with
 * final the rest too; with last (the job's end) that rest, even none, is
 * the last batch. */
int commit_save(Commit *c, bool final, bool last, RunError *e);
/* The module saves nothing in this job (its save_init said so): what is
 * pending counts as saved, and no save() is called from now on. */
void commit_no_save(Commit *c);
/* One commit of the saved pending blocks, at most IPC_COMMIT_RANGES_MAX of
 * them: 1 if one was sent, 0 if nothing was committable. */
int commit_flush(Commit *c, RunError *e);
/* Commits until nothing committable is left (everything, once saved). */
int commit_all(Commit *c, RunError *e);
/* After a worker's block: full save batches, and a commit once
 * commit_items items or IPC_COMMIT_RANGES_MAX blocks wait. */
int commit_recorded(Commit *c, RunError *e);

/* Records appended in runs of consecutive indices, each run one block,
 * ended by a gap, a full block or commit_run_end(): how a carry-over, a
 * reuse, a block with items to retry and a Slurm shard's copy append
 * item by item. saved: as commit_append's (given to save before). */
typedef struct CommitRun {
        Commit *commit;
        bool saved;
        ResultsBlock b;
        bool open;
        uint64_t next;   /* the index that extends the open run */
        uint32_t failed; /* of the open run */
} CommitRun;

void commit_run_init(CommitRun *cr, Commit *c, bool saved);
/* it, as item index, with its status and joblog: 0, or -errno in e. */
int commit_run_add(CommitRun *cr, uint64_t index, const ResultsItem *it, RunError *e);
/* The open run, if any, appended. */
int commit_run_end(CommitRun *cr, RunError *e);
void commit_run_free(CommitRun *cr);
