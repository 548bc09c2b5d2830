/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stats.h"

typedef struct Items Items;
typedef struct Pool Pool;

/* run-stats.c: where this run's time goes, for "mplockctl stats". The
 * workers count their own time in their slots of shared memory (worker.h)
 * and send the items that join their slowest; here are the job's slowest,
 * the rate of items over the run (one clock read per result block) and
 * the time in save. Sent to mplockd as IPC_STATS every
 * RUN_STATS_INTERVAL_USEC and before the end. */
#define RUN_STATS_INTERVAL_USEC (2 * 1000000ULL)

typedef struct RunStats {
        uint64_t started_usec; /* CLOCK_REALTIME */
        uint64_t start_usec;   /* CLOCK_MONOTONIC */
        uint64_t sent_usec;
        uint64_t items;
        uint64_t save_usec, save_calls;
        StatsTop slowest;
        StatsRate rate;
} RunStats;

void run_stats_init(RunStats *s);
/* n items came back from a worker, now. */
void run_stats_recorded(RunStats *s, uint64_t n);
/* The message: IpcStats and a row per worker slot of p, the slowest items'
 * first bytes from items. Malloc'd; -ENOMEM. */
int run_stats_build(RunStats *s, const Pool *p, const Items *items, void **ret, size_t *ret_len);
/* Builds and sends it on fd when due (force: now). Informational: a
 * failure is ignored, mplockd being gone is seen elsewhere. */
void run_stats_send(RunStats *s, const Pool *p, const Items *items, int fd, bool force);
