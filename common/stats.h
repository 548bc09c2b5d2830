/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a job's time went ("mplockctl stats"): what the runner and its
 * workers keep, all of it of a fixed size whatever the job's length. The
 * wire and file form is IpcStats (ipc.h). */

#define STATS_SLOW_MAX 10u
#define STATS_BUCKETS_MAX 120u
/* The first width of a rate bucket; doubled each time the buckets fill. */
#define STATS_BUCKET_USEC_MIN 100000u
/* Any time or count past this is a lie (285 years in microseconds): and
 * below it a JSON number is exact. */
#define STATS_VALUE_MAX (UINT64_C(1) << 53)

typedef struct StatsSlow {
        uint64_t index;
        uint64_t usec;
} StatsSlow;

/* The slowest items seen: a min-heap, the fastest of them at the root, so
 * that an item is compared once against the floor and only one that
 * beats it costs more. */
typedef struct StatsTop {
        StatsSlow v[STATS_SLOW_MAX];
        uint32_t n;
} StatsTop;

/* What an item must take, more than, to be kept. */
static inline uint64_t stats_top_floor(const StatsTop *t) {
        return t->n < STATS_SLOW_MAX ? 0 : t->v[0].usec;
}
/* Keeps (index, usec) if it is among the slowest; an index already kept
 * (an item tried again) keeps its longer time. Whether it changed t. */
bool stats_top_add(StatsTop *t, uint64_t index, uint64_t usec);
/* The kept items, slowest first (ties by index); their count. */
uint32_t stats_top_sorted(const StatsTop *t, StatsSlow out[static STATS_SLOW_MAX]);

/* Items finished per bucket of time since start. When time passes the
 * last bucket, neighbours are merged pairwise and the width doubles: at
 * most STATS_BUCKETS_MAX buckets, for a job of any length. */
typedef struct StatsRate {
        uint64_t start_usec;
        uint64_t bucket_usec;
        uint32_t n; /* buckets in use: up to the one now */
        uint64_t counts[STATS_BUCKETS_MAX];
} StatsRate;

void stats_rate_init(StatsRate *r, uint64_t start_usec);
/* count items finished at now_usec (a time before start counts at start). */
void stats_rate_add(StatsRate *r, uint64_t now_usec, uint64_t count);
/* Makes the buckets reach now_usec (those with nothing stay 0). */
void stats_rate_extend(StatsRate *r, uint64_t now_usec);

struct IpcStats;
/* Whether an IpcStats of len bytes (payload) is well-formed: its size and
 * counts within the bounds above, every value below STATS_VALUE_MAX,
 * texts NUL-terminated. 0 or -EBADMSG. The daemon asks this of every
 * message of a runner and of the file it keeps. */
int stats_msg_check(const void *payload, size_t len);
