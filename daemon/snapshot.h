/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writing a job's input snapshot (jobs/<id>/input): every item ended by a
 * NUL byte. Only mplockd writes it, from the bytes the submitter's check
 * sends through a pipe (or the items of the call), and it counts, limits
 * and fingerprints them as they come, a piece at a time: nothing that
 * runs as the user ever holds the file, and nothing has to read it back.
 * Dirty pages are written back as it goes, so that the final fsync has at
 * most SNAPSHOT_WINDOW * 2 bytes left to wait for. */

#define SNAPSHOT_WINDOW (8u * 1024u * 1024u)

typedef struct Snapshot {
        int fd; /* not owned */
        uint64_t max_bytes, max_items;
        uint64_t bytes, items, synced;
        uint32_t crc;
        char last;
} Snapshot;

void snapshot_init(Snapshot *s, int fd, uint64_t max_bytes, uint64_t max_items);
/* Appends data: -EFBIG past max_bytes, -E2BIG past max_items (nothing of
 * it written), -errno if writing failed. */
int snapshot_write(Snapshot *s, const void *data, size_t len);
/* The last item must be ended (-EBADMSG). Not synced: the job is made
 * durable by its journal record or an fsync of its files (submit.c). */
int snapshot_finish(Snapshot *s);
