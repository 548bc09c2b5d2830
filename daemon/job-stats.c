/* SPDX-License-Identifier: MIT */
#include "job-stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "jobs-journal.h"
#include "jobs.h"
#include "log.h"
#include "macro.h"
#include "store.h"

int job_stats_received(void *userdata, const void *payload, size_t len) {
        Job *j = userdata;
        IpcStats h;
        void *copy;

        memcpy(&h, payload, sizeof(h));
        if (h.n_workers > MAX(j->spec.workers, j->slots))
                return -EINVAL;
        for (uint32_t k = 0; k < h.n_slow; k++)
                if (h.slow[k].index >= j->spec.n_items)
                        return -EINVAL;
        copy = memdup(payload, len);
        if (!copy)
                return -ENOMEM; /* informational: the last ones stay */
        free(j->stats);
        j->stats = copy;
        j->stats_len = len;
        j->stats_seq++;
        return 0;
}

static void stats_written(Job *j, int r) {
        if (r < 0) {
                log_job(LOG_WARNING, j->spec.id, "Cannot write its stats, keeping them in memory: %s", strerror(-r));
                return;
        }
        j->stats = mfree(j->stats);
        j->stats_len = 0;
}

/* The job keeps its own copy (Stats reads it) until the file holds it;
 * newer stats that came meanwhile are the next write's. */
static void stats_write_done(Job *j, int r, uint64_t seq) {
        if (j && j->stats_seq == seq)
                stats_written(j, r);
}

/* The ended run's stats into the job's directory, by the syncer (a later
 * run replaces them, docs/architecture.md). Kept in memory if they
 * cannot be written. */
void job_save_stats(Job *j) {
        if (!j->stats)
                return;
        if (jobs_write_later(j->jobs, j, store_write_stats, j->stats, j->stats_len, false, j->stats_seq,
                             stats_write_done) < 0)
                stats_written(j, store_write_stats(j->dirfd, j->stats, j->stats_len));
}

int job_read_stats(const Job *j, void **ret, size_t *ret_len, bool *ret_live) {
        /* Its runner sends them before DONE: once done, they are final
         * although the runner may not have exited yet. */
        *ret_live = j->stats && j->runner && !j->runner_done;
        if (!j->stats)
                return j->damaged ? -ENOENT : store_load_stats(j->dirfd, ret, ret_len);
        *ret = memdup(j->stats, j->stats_len);
        if (!*ret)
                return -ENOMEM;
        *ret_len = j->stats_len;
        return 0;
}
