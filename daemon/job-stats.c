/* SPDX-License-Identifier: MIT */
#include "job-stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "jobs.h"
#include "log.h"
#include "macro.h"
#include "store.h"
#include "syncer.h"

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

/* The stats for the syncer's thread: a copy, so that the job keeps its
 * own (Stats reads them) until the file holds them. */
typedef struct StatsWrite {
        Jobs *jobs;
        uint64_t id, seq;
        int dirfd;
        void *data;
        size_t len;
} StatsWrite;

static void stats_write_free(StatsWrite *w) {
        safe_close(w->dirfd);
        free(w->data);
        free(w);
}

static int stats_write_work(void *arg) {
        StatsWrite *w = arg;

        return store_write_stats(w->dirfd, w->data, w->len);
}

static void stats_written(Job *j, int r) {
        if (r < 0) {
                log_job(LOG_WARNING, j->spec.id, "Cannot write its stats, keeping them in memory: %s", strerror(-r));
                return;
        }
        j->stats = mfree(j->stats);
        j->stats_len = 0;
}

static void stats_write_done(int r, void *arg) {
        StatsWrite *w = arg;
        Job *j = jobs_find(w->jobs, w->id);

        /* Newer ones came meanwhile: they are the next write's. */
        if (j && j->stats_seq == w->seq)
                stats_written(j, r);
        stats_write_free(w);
}

/* The ended run's stats into the job's directory, by the syncer (a later
 * run replaces them, docs/architecture.md). Kept in memory if they
 * cannot be written. */
void job_save_stats(Job *j) {
        StatsWrite *w;
        int r = -ENOMEM;

        if (!j->stats)
                return;
        w = j->jobs->syncer ? calloc(1, sizeof(*w)) : NULL;
        if (w) {
                *w = (StatsWrite){ .jobs = j->jobs, .id = j->spec.id, .seq = j->stats_seq, .len = j->stats_len,
                                   .dirfd = fcntl(j->dirfd, F_DUPFD_CLOEXEC, 3),
                                   .data = memdup(j->stats, j->stats_len) };
                r = w->dirfd < 0 ? -errno : !w->data ? -ENOMEM : 0;
                if (r >= 0)
                        r = syncer_queue(j->jobs->syncer, stats_write_work, stats_write_done, w);
                if (r < 0)
                        stats_write_free(w);
        }
        if (r < 0)
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
