/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

typedef struct Commit Commit;
typedef struct Items Items;
typedef struct Job Job;
typedef struct Output Output;
typedef struct RunError RunError;

/* reuse.c: --reuse JOB. Before any item is handed out, the earlier job's
 * successful results are appended for every item of this job not yet
 * recorded whose text equals the earlier item's, as ordinary records
 * (given to save, then committed), so exactly-once holds as for any
 * result. The earlier job's results file is read as its owner's, up to
 * the committed length mplockd noted at submission; a file that is not
 * that one (gone, replaced, another generation, damaged, another module
 * since) is skipped with a warning in the job's log, and its items run.
 * Idempotent: a later run finds the copied items recorded. */

/* The most items a job may have for reuse: the lookup table takes 16
 * bytes per item, twice over. */
#define REUSE_ITEMS_MAX (UINT64_C(1) << 24)

/* *ret_copied: the records appended (not committed yet). Errors are
 * those of the results file of this job, or ENOMEM. */
int reuse_copy(const Job *job, const Items *items, Commit *c, const Output *o, uint64_t *ret_copied, RunError *e);
