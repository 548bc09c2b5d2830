/* SPDX-License-Identifier: MIT */
#include "stats.h"

#include <errno.h>
#include <string.h>

#include "ipc.h"
#include "macro.h"

_Static_assert(STATS_SLOW_MAX == IPC_STATS_SLOTS && STATS_BUCKETS_MAX == IPC_STATS_BUCKETS, "one size");

static void top_swap(StatsTop *t, uint32_t a, uint32_t b) {
        StatsSlow x = t->v[a];

        t->v[a] = t->v[b];
        t->v[b] = x;
}

static void top_sift_up(StatsTop *t, uint32_t i) {
        while (i > 0 && t->v[(i - 1) / 2].usec > t->v[i].usec) {
                top_swap(t, i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

static void top_sift_down(StatsTop *t, uint32_t i) {
        for (;;) {
                uint32_t l = 2 * i + 1, r = l + 1, m = i;

                if (l < t->n && t->v[l].usec < t->v[m].usec)
                        m = l;
                if (r < t->n && t->v[r].usec < t->v[m].usec)
                        m = r;
                if (m == i)
                        return;
                top_swap(t, i, m);
                i = m;
        }
}

bool stats_top_add(StatsTop *t, uint64_t index, uint64_t usec) {
        if (t->n == STATS_SLOW_MAX && usec <= t->v[0].usec)
                return false;
        for (uint32_t k = 0; k < t->n; k++)
                if (t->v[k].index == index) {
                        if (usec <= t->v[k].usec)
                                return false;
                        t->v[k].usec = usec; /* larger: it can only go down */
                        top_sift_down(t, k);
                        return true;
                }
        if (t->n < STATS_SLOW_MAX) {
                t->v[t->n] = (StatsSlow){ .index = index, .usec = usec };
                top_sift_up(t, t->n++);
                return true;
        }
        t->v[0] = (StatsSlow){ .index = index, .usec = usec };
        top_sift_down(t, 0);
        return true;
}

uint32_t stats_top_sorted(const StatsTop *t, StatsSlow out[static STATS_SLOW_MAX]) {
        uint32_t n = MIN(t->n, STATS_SLOW_MAX);

        memcpy(out, t->v, n * sizeof(*out));
        /* Ten at most: insertion sort. */
        for (uint32_t i = 1; i < n; i++)
                for (uint32_t k = i; k > 0; k--) {
                        StatsSlow a = out[k - 1], b = out[k];
                        if (a.usec > b.usec || (a.usec == b.usec && a.index < b.index))
                                break;
                        out[k - 1] = b;
                        out[k] = a;
                }
        return n;
}

void stats_rate_init(StatsRate *r, uint64_t start_usec) {
        *r = (StatsRate){ .start_usec = start_usec, .bucket_usec = STATS_BUCKET_USEC_MIN, .n = 1 };
}

/* Half as many buckets, twice as wide. */
static void rate_coarsen(StatsRate *r) {
        uint32_t k;

        for (k = 0; 2 * k < r->n; k++)
                r->counts[k] = r->counts[2 * k] + (2 * k + 1 < r->n ? r->counts[2 * k + 1] : 0);
        memset(r->counts + k, 0, (STATS_BUCKETS_MAX - k) * sizeof(r->counts[0]));
        r->n = k;
        r->bucket_usec *= 2;
}

/* The bucket of now_usec, coarsened until it fits. */
static uint32_t rate_bucket(StatsRate *r, uint64_t now_usec) {
        uint64_t t = now_usec > r->start_usec ? now_usec - r->start_usec : 0, b;

        while ((b = t / r->bucket_usec) >= STATS_BUCKETS_MAX && r->bucket_usec < STATS_VALUE_MAX)
                rate_coarsen(r);
        b = MIN(b, (uint64_t) STATS_BUCKETS_MAX - 1);
        r->n = MAX(r->n, (uint32_t) b + 1);
        return (uint32_t) b;
}

void stats_rate_add(StatsRate *r, uint64_t now_usec, uint64_t count) {
        uint32_t b = rate_bucket(r, now_usec);

        r->counts[b] = MIN(r->counts[b] + count, STATS_VALUE_MAX - 1);
}

void stats_rate_extend(StatsRate *r, uint64_t now_usec) {
        (void) rate_bucket(r, now_usec);
}

static bool value_ok(uint64_t v) {
        return v < STATS_VALUE_MAX;
}

static bool worker_ok(const void *p) {
        IpcStatsWorker x, *w = &x;

        memcpy(&x, p, sizeof(x));
        return value_ok(w->life_usec) && value_ok(w->init_usec) && value_ok(w->busy_usec) &&
               value_ok(w->wait_usec) && value_ok(w->items) && w->reserved == 0;
}

static bool slow_ok(const IpcStatsSlow *s) {
        return value_ok(s->index) && value_ok(s->usec) && value_ok(s->len) &&
               memchr(s->text, '\0', sizeof(s->text)) && strlen(s->text) <= s->len;
}

int stats_msg_check(const void *payload, size_t len) {
        IpcStats h;

        if (len < sizeof(h))
                return -EBADMSG;
        memcpy(&h, payload, sizeof(h));
        if (h.magic != IPC_STATS_MAGIC || h.n_buckets > STATS_BUCKETS_MAX || h.n_slow > STATS_SLOW_MAX ||
            h.n_workers > IPC_STATS_WORKERS_MAX || len != sizeof(h) + (size_t) h.n_workers * sizeof(IpcStatsWorker))
                return -EBADMSG;
        if (!value_ok(h.started_usec) || !value_ok(h.elapsed_usec) || !value_ok(h.items) ||
            !value_ok(h.save_usec) || !value_ok(h.save_calls) || h.bucket_usec < STATS_BUCKET_USEC_MIN ||
            !value_ok(h.bucket_usec))
                return -EBADMSG;
        for (uint32_t k = 0; k < STATS_BUCKETS_MAX; k++)
                if (!value_ok(h.buckets[k]) || (k >= h.n_buckets && h.buckets[k] != 0))
                        return -EBADMSG;
        for (uint32_t k = 0; k < STATS_SLOW_MAX; k++)
                if (k < h.n_slow && !slow_ok(&h.slow[k]))
                        return -EBADMSG;
        for (uint32_t k = 0; k < h.n_workers; k++)
                if (!worker_ok((const char *) payload + sizeof(h) + k * sizeof(IpcStatsWorker)))
                        return -EBADMSG;
        return 0;
}
