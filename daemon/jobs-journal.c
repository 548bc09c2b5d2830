/* SPDX-License-Identifier: MIT */
#include "jobs-journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fileio.h"
#include "jobs.h"
#include "log.h"
#include "macro.h"
#include "store.h"
#include "syncer.h"

static int replay_one(uint32_t type, const void *payload, size_t len, void *userdata) {
        Jobs *jobs = userdata;
        StoreRecord rec = { .log_name = CKPT_LOG, .create_log = checkpoint_create_empty };
        int r;

        if (type != JOURNAL_SUBMIT)
                return log_error_errno(EBADMSG, "Journal record of unknown type %u: not made by this version?",
                                       type);
        r = journal_submit_parse(payload, len, &rec.id, &rec.spec, &rec.spec_len, &rec.input, &rec.input_len);
        if (r < 0 || rec.id == 0)
                return log_error_errno(EBADMSG, "Journal record of a new job does not parse.");
        r = store_restore_job(jobs->jobs_fd, jobs->new_fd, &rec);
        if (r < 0)
                return log_job_errno(LOG_ERR, r, rec.id, "Cannot restore the job from the journal: %m");
        if (r > 0)
                log_job(LOG_NOTICE, rec.id, "Restored from the journal what a crash lost of the job's files.");
        return 0;
}

int jobs_journal_open(Jobs *jobs) {
        int r;

        r = journal_open(&jobs->journal, jobs->state_fd, replay_one, jobs);
        if (r < 0) {
                if (faccessat(jobs->state_fd, JOURNAL_NAME, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                        /* Records may be in it: starting without them would
                         * lose acknowledged jobs. */
                        return log_error_errno(r, "Cannot recover the journal: %m");
                log_warning_errno(r, "Cannot make the journal, submitting without it: %m");
                return 0;
        }
        if (jobs->journal.recreated)
                log_warning("The journal was not valid and was made anew.");
        /* What was restored is synced: the records can go. */
        r = jobs->journal.replayed > 0 ? fsync_dirfd(jobs->jobs_fd) : 0;
        if (r >= 0)
                r = journal_reset(&jobs->journal);
        if (r < 0) {
                journal_close(&jobs->journal);
                return log_error_errno(r, "Cannot reset the journal: %m");
        }
        jobs->journal_ok = true;
        return 0;
}

void jobs_journal_close(Jobs *jobs) {
        jobs->checkpoint_source = sd_event_source_disable_unref(jobs->checkpoint_source);
        journal_close(&jobs->journal);
        jobs->journal_ok = false;
}

int jobs_journal_submit(Jobs *jobs, uint64_t id, const char *spec, size_t spec_len, int input_fd,
                        uint64_t input_len) {
        JournalSubmit h = { .id = id, .spec_len = (uint32_t) spec_len };
        _cleanup_free_ char *input = NULL;
        struct iovec iov[3];
        ssize_t n;
        int r;

        if (!jobs->journal_ok)
                return -ENODEV;
        if (spec_len + input_len + sizeof(h) > JOURNAL_RECORD_MAX)
                return -E2BIG;
        input = malloc(MAX(input_len, (uint64_t) 1));
        if (!input)
                return -ENOMEM;
        n = pread_full(input_fd, input, (size_t) input_len, 0);
        if (n < 0)
                return (int) n;
        if ((uint64_t) n != input_len)
                return -EIO;
        iov[0] = (struct iovec){ &h, sizeof(h) };
        iov[1] = (struct iovec){ UNCONST(spec), spec_len };
        iov[2] = (struct iovec){ input, (size_t) input_len };
        (void) pthread_mutex_lock(&jobs->journal_lock);
        r = journal_append(&jobs->journal, JOURNAL_SUBMIT, iov, 3);
        (void) pthread_mutex_unlock(&jobs->journal_lock);
        if (r == -ENOSPC)
                /* Full until the jobs it holds are checkpointed. */
                (void) sd_event_source_set_enabled(jobs->checkpoint_source, SD_EVENT_ONESHOT);
        return r;
}

/* --- a checkpoint round, in the syncer's thread -------------------------- */

/* The journaled jobs whose files are not synced yet, and where the journal
 * was when the round was made: a record that came after it is of a job
 * the round does not sync, so the journal is then left as it is. */
typedef struct Round {
        Jobs *jobs;
        uint64_t gen, seq;
        bool reset;
        size_t n;
        uint64_t *ids;
        int *fds;
} Round;

static void round_free(Round *rd) {
        for (size_t i = 0; i < rd->n; i++)
                safe_close(rd->fds[i]);
        free(rd->ids);
        free(rd->fds);
        free(rd);
}

static int round_work(void *arg) {
        Round *rd = arg;
        Jobs *jobs = rd->jobs;
        int r = 0;

        for (size_t i = 0; i < rd->n && r >= 0; i++)
                r = store_sync_job_files(rd->fds[i]);
        if (r >= 0)
                r = fsync_dirfd(jobs->jobs_fd);
        if (r < 0)
                return r;
        (void) pthread_mutex_lock(&jobs->journal_lock);
        if (jobs->journal.gen == rd->gen && jobs->journal.seq == rd->seq) {
                r = journal_reset(&jobs->journal);
                rd->reset = r >= 0;
        }
        (void) pthread_mutex_unlock(&jobs->journal_lock);
        return r;
}

/* The journal is void: no job is durable through it any more. */
static void journal_cleared(Jobs *jobs) {
        for (size_t i = 0; i < jobs->n_jobs; i++)
                jobs->jobs[i]->journaled = jobs->jobs[i]->files_synced = false;
}

static bool any_journaled(const Jobs *jobs) {
        for (size_t i = 0; i < jobs->n_jobs; i++)
                if (jobs->jobs[i]->journaled)
                        return true;
        return false;
}

static void round_done(int r, void *arg) {
        Round *rd = arg;
        Jobs *jobs = rd->jobs;

        jobs->checkpoint_queued = false;
        if (r < 0)
                /* The records stay; the next trigger tries again. */
                log_warning_errno(r, "Cannot checkpoint the journal: %m");
        else {
                for (size_t i = 0; i < rd->n; i++) {
                        Job *j = jobs_find(jobs, rd->ids[i]);
                        if (j)
                                j->files_synced = true;
                }
                if (rd->reset)
                        journal_cleared(jobs);
                else if (any_journaled(jobs))
                        /* Records came meanwhile: their jobs next. */
                        (void) sd_event_source_set_enabled(jobs->checkpoint_source, SD_EVENT_ONESHOT);
        }
        round_free(rd);
}

static int round_add(Round *rd, const Job *j) {
        int fd = fcntl(j->dirfd, F_DUPFD_CLOEXEC, 3);

        if (fd < 0)
                return -errno;
        rd->ids[rd->n] = j->spec.id;
        rd->fds[rd->n++] = fd;
        return 0;
}

/* A round to the syncer: 0, or -errno (the caller checkpoints itself). */
static int checkpoint_queue(Jobs *jobs) {
        Round *rd = calloc(1, sizeof(*rd));
        int r = 0;

        if (!rd)
                return -ENOMEM;
        *rd = (Round){ .jobs = jobs, .gen = jobs->journal.gen, .seq = jobs->journal.seq };
        rd->ids = calloc(MAX(jobs->n_jobs, (size_t) 1), sizeof(*rd->ids));
        rd->fds = calloc(MAX(jobs->n_jobs, (size_t) 1), sizeof(*rd->fds));
        if (!rd->ids || !rd->fds)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < jobs->n_jobs; i++)
                if (jobs->jobs[i]->journaled && !jobs->jobs[i]->files_synced)
                        r = round_add(rd, jobs->jobs[i]);
        if (r >= 0)
                r = syncer_queue(jobs->syncer, round_work, round_done, rd);
        if (r < 0) {
                round_free(rd);
                return r;
        }
        jobs->checkpoint_queued = true;
        return 0;
}

static int checkpoint_handler(sd_event_source *s, void *userdata) {
        Jobs *jobs = userdata;
        int r;

        (void) s;
        if (!jobs->journal_ok || journal_is_empty(&jobs->journal))
                return 0;
        /* One round at a time: its end starts the next if need be. */
        if (jobs->checkpoint_queued || (jobs->syncer && checkpoint_queue(jobs) >= 0))
                return 0;
        r = jobs_checkpoint(jobs);
        if (r < 0)
                /* The records stay; the next trigger tries again. */
                log_warning_errno(r, "Cannot checkpoint the journal: %m");
        return 0;
}

void jobs_journal_pending(Jobs *jobs, Job *j) {
        int r;

        j->journaled = true;
        if (!jobs->checkpoint_source) {
                r = sd_event_add_defer(jobs->event, &jobs->checkpoint_source, checkpoint_handler, jobs);
                if (r >= 0)
                        r = sd_event_source_set_priority(jobs->checkpoint_source, SD_EVENT_PRIORITY_IDLE);
                if (r < 0) {
                        /* It happens at the job's first commit, then. */
                        jobs->checkpoint_source = sd_event_source_disable_unref(jobs->checkpoint_source);
                        return;
                }
                (void) sd_event_source_set_description(jobs->checkpoint_source, "journal-checkpoint");
        }
        (void) sd_event_source_set_enabled(jobs->checkpoint_source, SD_EVENT_ONESHOT);
}

int jobs_checkpoint(Jobs *jobs) {
        int r;

        syncer_drain(jobs->syncer); /* no round in flight, none to come */
        if (!jobs->journal_ok || journal_is_empty(&jobs->journal))
                return 0;
        for (size_t i = 0; i < jobs->n_jobs; i++) {
                Job *j = jobs->jobs[i];
                if (!j->journaled || j->files_synced)
                        continue;
                r = store_sync_job_files(j->dirfd);
                if (r < 0)
                        return log_job_errno(LOG_ERR, r, j->spec.id, "Cannot sync the job's files: %m");
        }
        r = fsync_dirfd(jobs->jobs_fd);
        if (r >= 0) {
                (void) pthread_mutex_lock(&jobs->journal_lock);
                r = journal_reset(&jobs->journal);
                (void) pthread_mutex_unlock(&jobs->journal_lock);
        }
        if (r < 0)
                return r;
        journal_cleared(jobs);
        return 0;
}

int jobs_journal_settle(Jobs *jobs, Job *j) {
        int r;

        if (!j->journaled || j->files_synced)
                return 0;
        syncer_drain(jobs->syncer); /* a round in flight may be syncing it */
        if (!j->journaled || j->files_synced)
                return 0;
        r = store_sync_job_files(j->dirfd);
        if (r >= 0)
                r = fsync_dirfd(jobs->jobs_fd);
        if (r < 0)
                return log_job_errno(LOG_ERR, r, j->spec.id, "Cannot sync the job's files: %m");
        j->files_synced = true;
        return 0;
}

/* --- a file of a job's, by the syncer ------------------------------------ */

typedef struct JobWrite {
        Jobs *jobs;
        uint64_t id, tag;
        int dirfd;
        bool settle;
        JobFileWrite write;
        JobWriteDone done;
        void *data;
        size_t len;
} JobWrite;

static void job_write_free(JobWrite *w) {
        safe_close(w->dirfd);
        free(w->data);
        free(w);
}

static int job_write_work(void *arg) {
        JobWrite *w = arg;
        int r = 0;

        if (w->settle) {
                r = store_sync_job_files(w->dirfd);
                if (r >= 0)
                        r = fsync_dirfd(w->jobs->jobs_fd);
        }
        return r < 0 ? r : w->write(w->dirfd, w->data, w->len);
}

static void job_write_done(int r, void *arg) {
        JobWrite *w = arg;
        Job *j = jobs_find(w->jobs, w->id);

        if (j && w->settle && r >= 0)
                j->files_synced = true;
        w->done(j, r, w->tag);
        job_write_free(w);
}

int jobs_write_later(Jobs *jobs, Job *j, JobFileWrite write, const void *data, size_t len, bool settle,
                     uint64_t tag, JobWriteDone done) {
        JobWrite *w;
        int r;

        if (!jobs->syncer)
                return -ENODEV;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (JobWrite){ .jobs = jobs, .id = j->spec.id, .tag = tag, .write = write, .done = done, .len = len,
                         .settle = settle && j->journaled && !j->files_synced,
                         .dirfd = fcntl(j->dirfd, F_DUPFD_CLOEXEC, 3), .data = len ? memdup(data, len) : NULL };
        r = w->dirfd < 0 ? -errno : !w->data && len ? -ENOMEM : syncer_queue(jobs->syncer, job_write_work, job_write_done, w);
        if (r < 0)
                job_write_free(w);
        return r;
}
