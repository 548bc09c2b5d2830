/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "job.h"

/* job-stats.c: where a job's runs spent their time (mplockctl stats): the
 * running one's as its runner last told (IPC_STATS, every 2 s and before
 * DONE), kept in memory, and an ended run's in the job's stats file. */

/* The runner's message, of the right form (stats_msg_check): kept if it
 * fits the job (its workers, its items), -EINVAL if it does not. */
int job_stats_received(void *userdata, const void *payload, size_t len);
/* The run has ended: its stats into the job's directory (a later run
 * replaces them), or kept in memory if they cannot be written. */
void job_save_stats(Job *j);

/* A copy of its last run's stats (an IpcStats message, malloc'd): the
 * running one's as last told (*ret_live), else the stats file's (an ended
 * run's, until a new runner's first message). -ENOENT if it has none (it
 * never ran, or ran before mplock kept them), -EBADMSG if the file is
 * damaged, -ENOMEM. */
int job_read_stats(const Job *j, void **ret, size_t *ret_len, bool *ret_live);
