/* SPDX-License-Identifier: MIT */
#include "run-stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "ipc.h"
#include "items.h"
#include "macro.h"
#include "pool.h"
#include "worker.h"

void run_stats_init(RunStats *s) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        *s = (RunStats){ .started_usec = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u,
                         .start_usec = now_usec() };
        s->sent_usec = s->start_usec;
        stats_rate_init(&s->rate, s->start_usec);
}

void run_stats_recorded(RunStats *s, uint64_t n) {
        s->items += n;
        stats_rate_add(&s->rate, now_usec(), n);
}

/* Its first bytes, cut where a UTF-8 character starts. */
static void slow_text(const Items *items, IpcStatsSlow *o) {
        uint64_t off = items_offset(items, o->index);
        const char *d = items->map + off;
        size_t len = strnlen(d, items->size - off), n = MIN(len, (size_t) IPC_STATS_TEXT_MAX - 1);

        while (n < len && n > 0 && ((unsigned char) d[n] & 0xc0) == 0x80)
                n--;
        memcpy(o->text, d, n);
        o->text[n] = '\0';
        o->len = len;
}

static void worker_row(const Pool *p, uint32_t i, uint64_t now, IpcStatsWorker *o) {
        const WorkerProgress *g = &p->progress[i];
        const Worker *w = &p->workers[i];

        *o = (IpcStatsWorker){
                .life_usec = w->life_usec + (w->pid > 0 ? now - w->spawned_usec : 0),
                .init_usec = __atomic_load_n(&g->init_usec, __ATOMIC_RELAXED),
                .busy_usec = __atomic_load_n(&g->busy_usec, __ATOMIC_RELAXED),
                .wait_usec = __atomic_load_n(&g->wait_usec, __ATOMIC_RELAXED),
                .items = __atomic_load_n(&g->items, __ATOMIC_RELAXED),
                .spawns = w->spawns,
        };
}

int run_stats_build(RunStats *s, const Pool *p, const Items *items, void **ret, size_t *ret_len) {
        uint32_t n_workers = p->workers && p->progress ? MIN(p->n_workers, IPC_STATS_WORKERS_MAX) : 0;
        size_t len = sizeof(IpcStats) + n_workers * sizeof(IpcStatsWorker);
        uint64_t now = now_usec();
        StatsSlow slow[STATS_SLOW_MAX];
        IpcStats *h;
        char *buf;

        buf = calloc(1, len);
        if (!buf)
                return -ENOMEM;
        h = (IpcStats *) (void *) buf;
        stats_rate_extend(&s->rate, now);
        *h = (IpcStats){
                .magic = IPC_STATS_MAGIC,
                .n_workers = n_workers,
                .n_buckets = s->rate.n,
                .started_usec = s->started_usec,
                .elapsed_usec = now - s->start_usec,
                .items = s->items,
                .save_usec = s->save_usec,
                .save_calls = s->save_calls,
                .bucket_usec = s->rate.bucket_usec,
        };
        memcpy(h->buckets, s->rate.counts, sizeof(h->buckets));
        h->n_slow = stats_top_sorted(&s->slowest, slow);
        for (uint32_t k = 0; k < h->n_slow; k++) {
                h->slow[k] = (IpcStatsSlow){ .index = slow[k].index, .usec = slow[k].usec };
                slow_text(items, &h->slow[k]);
        }
        for (uint32_t i = 0; i < n_workers; i++)
                worker_row(p, i, now, (IpcStatsWorker *) (void *) (buf + sizeof(*h)) + i);
        *ret = buf;
        *ret_len = len;
        return 0;
}

void run_stats_send(RunStats *s, const Pool *p, const Items *items, int fd, bool force) {
        _cleanup_free_ void *buf = NULL;
        size_t len;

        if (!force && now_usec() - s->sent_usec < RUN_STATS_INTERVAL_USEC)
                return;
        s->sent_usec = now_usec();
        if (run_stats_build(s, p, items, &buf, &len) < 0)
                return;
        (void) ipc_send(fd, IPC_STATS, buf, len);
}
