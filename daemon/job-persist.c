/* SPDX-License-Identifier: MIT */
#include "job-persist.h"

#include "jobs.h"
#include "jobs-journal.h"
#include "log.h"
#include "macro.h"
#include "store.h"
#include "syncer.h"

#define PERSIST_RETRY_USEC (5 * 1000000ULL)

static int persist_retry_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;

        (void) s;
        (void) usec;
        j->persist_retry = sd_event_source_disable_unref(j->persist_retry);
        if (j->persist_error && job_persist(j) >= 0)
                log_job(LOG_NOTICE, j->spec.id, "State %s written after all.", job_state_to_string(job_state(j)));
        return 0;
}

/* What a state.json write came to: r < 0 is tried again later. */
static int persisted(Job *j, int r) {
        j->persist_error = r < 0 ? r : 0;
        if (r >= 0) {
                j->persist_retry = sd_event_source_disable_unref(j->persist_retry);
                return 0;
        }
        /* The state in memory is right; after a restart the job would be
         * where the file says until this is written: tried again. */
        log_job_errno(LOG_ERR, r, j->spec.id, "Cannot persist state %s, trying again in %llu s: %m",
                      job_state_to_string(job_state(j)), (unsigned long long) (PERSIST_RETRY_USEC / 1000000));
        if (!j->persist_retry &&
            sd_event_add_time_relative(j->jobs->event, &j->persist_retry, CLOCK_MONOTONIC, PERSIST_RETRY_USEC, 0,
                                       persist_retry_handler, j) >= 0)
                (void) sd_event_source_set_description(j->persist_retry, "persist-retry");
        return r;
}

int job_persist(Job *j) {
        int r;

        /* A write of an older state may be with the syncer: it goes first. */
        syncer_drain(j->jobs->syncer);
        /* A state.json in a directory whose own files a crash could lose
         * would outlive them: those first. */
        r = jobs_journal_settle(j->jobs, j);
        if (r >= 0)
                r = store_write_status(j->dirfd, &j->status);
        return persisted(j, r);
}

static void state_written(Job *j, int r, uint64_t tag) {
        (void) tag;
        if (j)
                (void) persisted(j, r);
}

/* state.json written by the syncer, off the loop, the job's files first
 * if need be (as job_persist); in the loop if it cannot take it. */
static void job_persist_async(Job *j) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = store_render_status(&j->status, &text, &len);

        if (r >= 0)
                r = jobs_write_later(j->jobs, j, store_write_status_text, text, len, true, 0, state_written);
        if (r < 0)
                (void) job_persist(j);
}

static int persist_later_handler(sd_event_source *s, void *userdata) {
        Job *j = userdata;

        (void) s;
        j->persist_later = sd_event_source_disable_unref(j->persist_later);
        job_persist_async(j);
        return 0;
}

/* Writes state.json at idle priority, by the syncer: requests already
 * waiting (the next Submit of a client that was just told) go first, and
 * its syncs do not hold the loop. Whatever the state is by then is
 * written. */
void job_persist_later(Job *j) {
        int r;

        if (j->persist_later)
                return;
        r = sd_event_add_defer(j->jobs->event, &j->persist_later, persist_later_handler, j);
        if (r >= 0)
                r = sd_event_source_set_priority(j->persist_later, SD_EVENT_PRIORITY_IDLE);
        if (r < 0) {
                j->persist_later = sd_event_source_disable_unref(j->persist_later);
                (void) job_persist(j);
                return;
        }
        (void) sd_event_source_set_description(j->persist_later, "persist-state");
}
