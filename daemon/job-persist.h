/* SPDX-License-Identifier: MIT */
#pragma once

#include "job.h"

/* job-persist.c: a job's state.json, written when its state changes, in
 * the loop (every state somebody is told of once it is on disk) or later
 * by the syncer (a completed job, whose end its checkpoint holds anyway),
 * and written again, every few seconds, while a write fails. */

/* state.json now, the job's own files first if a crash could lose them:
 * 0, or the error (a retry is armed then, and the job's persist_error set). */
int job_persist(Job *j);
/* state.json at idle priority, by the syncer: whatever the state is by then. */
void job_persist_later(Job *j);
