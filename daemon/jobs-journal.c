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
        r = journal_append(&jobs->journal, JOURNAL_SUBMIT, iov, 3);
        if (r == -ENOSPC)
                /* Full until the jobs it holds are checkpointed. */
                (void) sd_event_source_set_enabled(jobs->checkpoint_source, SD_EVENT_ONESHOT);
        return r;
}

static int checkpoint_handler(sd_event_source *s, void *userdata) {
        Jobs *jobs = userdata;
        int r;

        (void) s;
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

        if (!jobs->journal_ok || journal_is_empty(&jobs->journal))
                return 0;
        for (size_t i = 0; i < jobs->n_jobs; i++) {
                Job *j = jobs->jobs[i];
                if (!j->journaled)
                        continue;
                r = store_sync_job_files(j->dirfd);
                if (r < 0)
                        return log_job_errno(LOG_ERR, r, j->spec.id, "Cannot sync the job's files: %m");
        }
        r = fsync_dirfd(jobs->jobs_fd);
        if (r >= 0)
                r = journal_reset(&jobs->journal);
        if (r < 0)
                return r;
        for (size_t i = 0; i < jobs->n_jobs; i++)
                jobs->jobs[i]->journaled = false;
        return 0;
}
