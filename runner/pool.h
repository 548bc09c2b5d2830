/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "capture.h"
#include "itemlog.h"

typedef struct Bitset Bitset;
typedef struct Commit Commit;
typedef struct Dispatch Dispatch;
typedef struct Host Host;
typedef struct Items Items;
typedef struct Module Module;
typedef struct Output Output;
typedef struct RunError RunError;
typedef struct RunStats RunStats;
typedef struct WorkerProgress WorkerProgress;

/* pool.c: the worker processes. Spawning them, handing them chunks,
 * reading their frames and result blocks (checked against what each was
 * given, then recorded through commit.c), their exits and what goes back
 * to the queue, the per-call timeout watch, and telling them to exit. */

/* Chunks queued per worker: the next one is ready when one finishes. */
#define POOL_WORKER_DEPTH 2
/* Workers that die before init completes, in a row, fail the job. */
#define POOL_INIT_FAILURES_MAX 3
/* Final errors a worker may announce ahead of its blocks: more than any
 * chunk holds. */
#define POOL_FINALS_MAX 131072
/* How long workers told to exit may take. */
#define POOL_EXIT_WAIT_USEC (10 * 1000000ULL)

typedef struct Pool Pool;

/* A chunk a worker has. */
typedef struct Assignment {
        uint64_t first;
        uint32_t count;
        uint32_t done; /* items of it recorded */
        uint64_t start_usec;
        bool single; /* a suspect item handed out alone */
} Assignment;

typedef struct Worker {
        Pool *pool;
        uint32_t no;
        pid_t pid;
        int cmd_fd, res_fd;
        sd_event_source *io, *child;
        Capture out; /* what it prints */
        Assignment q[POOL_WORKER_DEPTH];
        unsigned nq;
        /* Timeouts: the worker counts its calls in shared memory; no
         * change for timeout_sec while it has work means it is stuck. */
        uint64_t seen_calls, seen_usec;
        uint64_t spawned_usec;
        /* Its slot's processes so far, and how long they lived (stats). */
        uint64_t life_usec;
        uint32_t spawns;
        bool init_timed_out;
        bool timed_out;
        char *buf; /* what it sent, not parsed yet */
        size_t len, cap;
        /* Indices whose errors the module made final, for its next blocks. */
        uint64_t *finals;
        size_t n_finals, cap_finals;
        bool ready, exiting;
        bool recycling;      /* told to exit to be replaced */
        uint64_t items_given; /* since it was spawned */
        /* It sent what the protocol does not allow (user code writing on
         * its pipe): killed, what it still sends is not read. */
        bool broken;
} Worker;

/* How the pool tells the top. */
typedef struct PoolHooks {
        /* After an event that may have changed what is left: finish? */
        void (*changed)(void *userdata);
        /* A failure in an event handler: reports it and does not return. */
        void (*failed)(void *userdata, const RunError *e);
        void *userdata;
} PoolHooks;

/* The caller sets the first block (nothing of it is owned); the rest
 * starts zeroed. */
struct Pool {
        sd_event *event;
        const Output *out;
        const Module *module;
        Items *items;
        Host *host;
        Bitset *done;
        Dispatch *dispatch;
        Commit *commit;
        RunStats *stats;
        uint64_t n_items, memory_max;
        /* Recycling: a worker given this many items, or this large (RSS),
         * gets no more, ends what it has and is replaced; 0: never. */
        uint64_t max_items_per_worker, max_worker_memory;
        uint64_t halt_failures; /* stop once this many items failed (0: never) */
        uint32_t n_workers, max_attempts, timeout_sec;
        uint32_t init_timeout_sec; /* a worker's init, at most; 0: none */
        PoolHooks hooks;

        Worker *workers;
        WorkerProgress *progress; /* shared with the workers, one slot each */
        uint32_t init_failures;
        ItemLog itemlog; /* lines about single items' attempts, rate-limited */
        uint64_t recycled; /* workers replaced by recycling */
        uint64_t outstanding; /* items handed out, not recorded */
        bool stopping;        /* set by the top: hand out nothing, replace no one */
        bool halted;          /* --halt-on-failure reached: chunks in flight are cut */
        bool handed_out;
        sd_event_source *timeout_timer, *exit_timer, *retry_timer;
};

/* Sets up the workers' slots and the timeout watch, and spawns the
 * workers unless every item has a record. */
int pool_start(Pool *p, RunError *e);
/* Hands chunks to the workers that are ready and have room. */
void pool_feed(Pool *p);
/* Another attempt at index, alone, once its backoff is over (the retry
 * timer is set for the earliest). */
int pool_retry_later(Pool *p, uint64_t index, uint32_t attempt, RunError *e);
/* --halt-on-failure, once reached by what was recorded: nothing more is
 * handed out, retries included, and each worker ends its chunk after the
 * call it is in (what it did not reach is not done, and not an attempt). */
void pool_check_halt(Pool *p);
/* Tells every worker to exit after what it has; kills them if they take
 * longer than POOL_EXIT_WAIT_USEC. */
void pool_exit(Pool *p);
bool pool_gone(const Pool *p);
uint32_t pool_alive(const Pool *p);
void pool_free(Pool *p);
