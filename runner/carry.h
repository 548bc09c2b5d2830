/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

typedef struct Commit Commit;
typedef struct Output Output;
typedef struct RetrySel RetrySel;
typedef struct RunError RunError;

/* carry.c: a retry's carry-over. A retry starts a new results generation;
 * its first runner moves the previous generation's results file aside
 * (mplock-<id>.prev.results), every runner of the generation carries the
 * successful records of it that are not committed yet into the new file
 * (and, in a retry of some failed items only, the failed records it does
 * not run again, as they are),
 * through ordinary commits (not given to save again), and the runner that
 * finishes the job removes it. Every step is idempotent, so a crash at any
 * point is resumed by the next runner. Nothing happens in generation 0. */

/* With nothing committed in generation gen yet, and the results file of
 * generation gen - 1 open in o: moves that file aside and opens a new,
 * empty results file in its place. */
int carry_set_aside(Output *o, uint32_t gen, uint64_t committed_len, RunError *e);
/* Carries the records of the previous generation's file, up to its
 * committed length prev_len, that are not in c->done and succeeded (or
 * failed, and sel does not choose them: NULL chooses every failed item),
 * and commits them. *ret_kept_failed: the failed records of the file sel
 * does not choose, committed now or before. */
int carry_copy(const Output *o, Commit *c, uint32_t gen, uint64_t prev_len, uint64_t n_items, const RetrySel *sel,
               uint64_t *ret_kept_failed, RunError *e);
/* Once the new generation holds every item. A failure is logged. */
void carry_remove(const Output *o, uint32_t gen);
