/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

/* A thread that makes files durable off the event loop: the journal's
 * checkpoint, a completed job's state.json, a job's stats. Each costs two
 * to five fsyncs, and in the loop they held whatever arrived meanwhile
 * (the next Submit of a client that was just told its job ended) for as
 * long as the disk took, several milliseconds on a busy machine.
 *
 * Work runs in the order it was queued, one at a time; its end is handed
 * back in the loop, through an eventfd, in the same order. The work
 * function makes file system calls only (no logging, nothing of the
 * loop's); it gets descriptors of its own (dup'ed by whoever queues it),
 * so that what the loop closes meanwhile does not matter. Whatever must
 * follow such a write (a synchronous state write of the same job, a
 * removal) drains the queue first: syncer_drain(). */

typedef struct Syncer Syncer;

/* In the thread: 0 or -errno. */
typedef int (*SyncWork)(void *arg);
/* In the loop, after the work: its result; frees arg. */
typedef void (*SyncDone)(int r, void *arg);

int syncer_new(Syncer **ret, sd_event *event);
/* Drains the queue, then stops the thread. */
Syncer *syncer_free(Syncer *s);
/* -ENOMEM (nothing queued: the caller does the work itself). */
int syncer_queue(Syncer *s, SyncWork work, SyncDone done, void *arg);
/* Waits for every work queued, and calls their done, before it returns. */
void syncer_drain(Syncer *s);
