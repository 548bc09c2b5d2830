/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>

#include "jobspec.h"

/* The state directory, as files: pure (de)serialization, no job logic.
 *
 *   STATE/jobs/<id>/job.json    the JobSpec, written once
 *   STATE/jobs/<id>/state.json  the JobStatus, replaced at each change
 *   STATE/jobs/<id>/input       the input snapshot, NUL-terminated items; its
 *                               runner holds a flock() of it (the job's lock)
 *   STATE/jobs/<id>/ckpt.*      the checkpoint (checkpoint.h)
 *   STATE/jobs/<id>/stats       where the last run's time went: an IpcStats
 *                               message as its runner sent it (ipc.h),
 *                               written when the runner has ended
 *   STATE/jobs/.new-*           submissions in progress; removed at start
 *   STATE/next-id               the next job id, written when a job is
 *                               removed (the job directories carry the others)
 *
 * Every file is written with write_file_atomic_at(); a job directory
 * appears by rename() only once complete. Everything read is checked as
 * untrusted. */

#define STORE_NEW_PREFIX ".new-"
#define STORE_NEW_NAME_MAX 32

/* Opens (creating) the state directory, private and ours, its jobs/ and
 * its new/ (job directories not yet published), and removes what crashes
 * left: everything in new/ (submissions that never got an answer, spare
 * directories), .new-* in jobs/ (where older versions made them) and
 * temporary files. Logs what fails. */
int store_open(const char *state_dir, int *ret_state_fd, int *ret_jobs_fd, int *ret_new_fd);
/* The ids of the job directories, ascending (malloc'ed). */
int store_list_jobs(int jobs_fd, uint64_t **ret_ids, size_t *ret_n);
/* The directory of job id, with its stale temporary files removed. */
int store_open_job(int jobs_fd, uint64_t id);

/* *spec must start zeroed or with defaults for the optional fields; on
 * failure it is freed. -EBADMSG for a file that is not a job of this id. */
int store_write_spec(int dirfd, const JobSpec *spec);
/* job.json's text for spec (malloc'ed); and that text written into a
 * directory nobody sees yet (a submission's): in place, without the
 * temporary file and rename that a published directory needs, synced or
 * not (a journal record then makes the job durable). It may exist
 * already, empty (a spare directory's); -EEXIST if it holds anything. */
int store_spec_text(const JobSpec *spec, char **ret, size_t *ret_len);
int store_create_spec_text(int dirfd, const char *text, size_t len, bool sync);
/* fsync of a job's input and job.json, then of its directory: what a
 * journal checkpoint does for each job the journal made. */
int store_sync_job_files(int dirfd);

/* A job as its journal record has it (journal.h): its job.json text and
 * its input, byte for byte. */
typedef struct StoreRecord {
        uint64_t id;
        const char *spec;
        size_t spec_len;
        const void *input;
        size_t input_len;
        /* The checkpoint log a job directory holds, and how to make one. */
        const char *log_name;
        int (*create_log)(int dirfd);
} StoreRecord;
/* Makes jobs/<id> what rec says, durably: a file a crash lost or left
 * short is written again, a directory whose rename was lost is made again
 * and published. The checkpoint log and state.json, if there, are kept.
 * 0 if nothing was missing, 1 if something was restored, or -errno. */
int store_restore_job(int jobs_fd, int new_fd, const StoreRecord *rec);
int store_load_spec(int dirfd, uint64_t id, JobSpec *spec);
/* The owner a job.json names, read as leniently as it can be (for a job
 * whose job.json does not load): -EBADMSG if it names none. */
int store_peek_uid(int dirfd, uint32_t *ret_uid);
int store_write_status(int dirfd, const JobStatus *st);
/* The two halves of it: the text (malloc'd), in the loop; its atomic,
 * synced write, anywhere (the syncer's thread). */
int store_render_status(const JobStatus *st, char **ret, size_t *ret_len);
int store_write_status_text(int dirfd, const void *text, size_t len);
/* The last run's stats (an IpcStats message), replaced; read back into a
 * malloc'd buffer and checked (stats_msg_check): -ENOENT if there are
 * none, -EBADMSG if damaged. */
int store_write_stats(int dirfd, const void *data, size_t len);
int store_load_stats(int dirfd, void **ret, size_t *ret_len);
/* No state.json is a job that has never changed state since it was
 * submitted: queued, nothing done. */
int store_load_status(int dirfd, JobStatus *st);

/* A submission's directory: made empty in new/ under a unique name
 * (written into name), then, once complete and synced, renamed into jobs/
 * as the job's id, and made durable (sync), or left for a journal
 * checkpoint to sync. */
int store_new_job_dir(int new_fd, char name[static STORE_NEW_NAME_MAX], int *ret_dirfd);
int store_publish_job_dir(int new_fd, const char *name, int jobs_fd, uint64_t id, bool sync);
int store_remove_dir(int new_fd, const char *name);
/* An empty file, unsynced: a spare directory's input, job.json. */
int store_create_empty(int dirfd, const char *name);

/* 0 and the saved counter, or 0 if none was saved. */
int store_load_next_id(int state_fd, uint64_t *ret);
int store_write_next_id(int state_fd, uint64_t next);
int store_remove_job(int jobs_fd, uint64_t id);
