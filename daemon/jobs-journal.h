/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Job Job;
typedef struct Jobs Jobs;

/* The jobs' use of the write-ahead journal (journal.h): a new job is made
 * durable by one record instead of the fsyncs of its files and
 * directories; those follow in a checkpoint, in the syncer's thread, and before
 * anything else of a journaled job becomes durable (its first commit, a
 * state.json), before a Remove and at exit. Then the journal is reset.
 * At start, every record is made whole in the jobs' files first. */

/* Opens the journal and restores what its records say (store.h), then
 * resets it. A journal that cannot be made is logged and done without;
 * one whose records cannot be restored stops the start (-errno). */
int jobs_journal_open(Jobs *jobs);
void jobs_journal_close(Jobs *jobs);

/* Makes a new job durable: its id, job.json text and input (read from
 * input_fd, input_len bytes), in one record. -E2BIG, -ENOSPC, -EBUSY or
 * -ENODEV (no journal) when the job must be made durable the slow way;
 * -errno on I/O error. */
int jobs_journal_submit(Jobs *jobs, uint64_t id, const char *spec, size_t spec_len, int input_fd,
                        uint64_t input_len);
/* j was made durable by its record: it waits for a checkpoint, which
 * the syncer's thread does (syncer.h), off the loop. */
void jobs_journal_pending(Jobs *jobs, Job *j);
/* j's own files (and its name in jobs/) synced, its record left in the
 * journal: what must come before anything else of j is made durable (its
 * first commit, a state.json). 0 at once if they are. */
int jobs_journal_settle(Jobs *jobs, Job *j);

/* A file of j's written by the syncer, off the loop: write(dirfd, data,
 * len) on a descriptor of its own, after j's own files if settle (as
 * jobs_journal_settle) and they are not synced yet. done(j, r, tag) comes
 * in the loop; j is NULL if the job was removed meanwhile. data is
 * copied. -errno (nothing queued) when there is no syncer or it cannot
 * take it: the caller writes in the loop. */
typedef int (*JobFileWrite)(int dirfd, const void *data, size_t len);
typedef void (*JobWriteDone)(Job *j, int r, uint64_t tag);
int jobs_write_later(Jobs *jobs, Job *j, JobFileWrite write, const void *data, size_t len, bool settle,
                     uint64_t tag, JobWriteDone done);
/* Syncs every journaled job's files and the jobs directory, then resets
 * the journal. 0 when there was nothing to do. */
int jobs_checkpoint(Jobs *jobs);
