/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Bitset Bitset;

/* dispatch.c: which items go out next, in chunks of what size, and when an
 * item that failed is tried again. Pure policy: no descriptors, no event
 * loop, no logging; the time comes in as an argument (CLOCK_MONOTONIC
 * microseconds), and a failed allocation comes back as -ENOMEM with the
 * state as it was. */

/* Chunks aim at this much work, so that per-chunk costs vanish (each
 * chunk wakes the runner, which takes its CPU from a worker: at 5 ms,
 * 5 ms items ran 1% slower than bare processes, at 50 ms as fast; see
 * docs/performance.md); guided scheduling keeps the tail balanced, and
 * at most two chunks per worker are redone after a crash. */
#define DISPATCH_CHUNK_TARGET_USEC 50000.0
#define DISPATCH_CHUNK_MAX 65536u
/* A retry waits retry_delay_ms * 2^(attempt-1), at most this. */
#define DISPATCH_RETRY_DELAY_MAX_USEC (60 * 1000000ULL)

typedef struct Chunk {
        uint64_t first;
        uint32_t count;
        bool single; /* a suspect item handed out alone */
} Chunk;

/* Items to hand out again after a worker died, or a retry waiting out its
 * backoff. */
typedef struct Requeue {
        uint64_t first;
        uint64_t count;
        bool suspect;        /* one at a time: one of them may kill workers */
        uint64_t not_before; /* a retry's backoff ends (CLOCK_MONOTONIC us) */
} Requeue;

/* Attempts so far of the items that failed, in an open-addressing hash
 * (index + 1 as the key, 0: empty): a job whose items all fail once must
 * not pay a scan of every earlier failure per item. */
typedef struct Attempt {
        uint64_t key;
        uint32_t count;
} Attempt;

/* The caller sets the job's fields (the first block); the rest start
 * zeroed. */
typedef struct Dispatch {
        uint64_t n_items;
        uint32_t n_workers, batch_size, max_attempts, retry_delay_ms;
        const Bitset *done; /* items with a record: never handed out */

        uint64_t cursor;  /* every item before it was handed out once */
        Requeue *requeue; /* ready to hand out again, suspects first: a ring */
        size_t head_requeue, n_requeue, cap_requeue;
        uint64_t requeue_items; /* the sum of their counts */
        Requeue *delayed;       /* retries waiting for their backoff */
        size_t n_delayed, cap_delayed;
        Attempt *attempts;
        size_t n_attempts, cap_attempts;
        double item_usec; /* EWMA of time per item, 0 = unknown */
} Dispatch;

void dispatch_free(Dispatch *d);

/* How many items the next chunk should have. */
uint32_t dispatch_chunk_size(const Dispatch *d);
/* The next chunk: requeued items first (a suspect alone), then the next run
 * of items not in done. false if nothing is ready. */
bool dispatch_next(Dispatch *d, Chunk *ret);
/* A chunk of count items took usec: what chunk sizes follow. */
void dispatch_measured(Dispatch *d, uint64_t usec, uint32_t count);

/* Items to hand out again: plain ones after what is queued, a suspect
 * before it (suspects were in flight: they go first). */
int dispatch_requeue(Dispatch *d, uint64_t first, uint64_t count, bool suspect);
/* A chunk a worker died within: each item a suspect, before anything else,
 * in index order. */
int dispatch_requeue_suspects(Dispatch *d, uint64_t first, uint64_t count);

/* Whether an item that ended with status may get another attempt: a
 * module's error may, success and a death counted to the limit not. */
bool dispatch_retryable(const Dispatch *d, int32_t status);
/* How many attempts index has had that counted (0: none). */
uint32_t dispatch_attempts_of(const Dispatch *d, uint64_t index);
/* Counts one more attempt at index: *ret is how many it has had. */
int dispatch_attempt(Dispatch *d, uint64_t index, uint32_t *ret);
/* The backoff before attempt + 1, in microseconds. */
uint64_t dispatch_retry_delay(const Dispatch *d, uint32_t attempt);
/* Another attempt at index, alone, once its backoff is over: *ret_when. */
int dispatch_retry_later(Dispatch *d, uint64_t index, uint32_t attempt, uint64_t now_usec, uint64_t *ret_when);
/* Moves the retries due at now_usec to the front of the queue (the last
 * one moved first); *ret_next is when the next one is due, UINT64_MAX if
 * none waits. */
int dispatch_release_due(Dispatch *d, uint64_t now_usec, uint64_t *ret_next);
