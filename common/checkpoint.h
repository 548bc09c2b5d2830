/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bitmap.h"
#include "bitset.h"
#include "ipc.h"

/* One job's record of committed items, in the job's state directory:
 *
 *   ckpt.log   a header, then append-only records, each {seq, results_len,
 *              done/failed totals, ranges of committed indices} with a
 *              CRC-32C; fdatasync'ed before the commit counts.
 *   ckpt.snap  the whole bitmap at some seq, written atomically; the log is
 *              then replaced by an empty one (compaction).
 *
 * Recovery loads the snapshot, replays log records with a higher seq in
 * order, and stops at the first torn, corrupt or out-of-sequence record,
 * cutting the log back to the last good one. Every file is parsed as
 * untrusted input. */

#define CKPT_LOG "ckpt.log"
#define CKPT_SNAP "ckpt.snap"
#define CKPT_LOG_MAGIC "MPLCKLOG"
#define CKPT_SNAP_MAGIC "MPLCKSNP"
#define CKPT_RECORD_MAGIC 0x434c504du /* "MPLC" */
#define CKPT_VERSION 1u

typedef struct CkptLogHeader {
        char magic[8];
        uint32_t version;
        uint32_t gen; /* results generation: 0, then one more per retry */
        uint64_t n_items;
        uint32_t reserved2;
        uint32_t crc;
} CkptLogHeader;

typedef struct CkptRecord {
        uint32_t magic;
        uint32_t n_ranges;
        uint64_t seq;
        uint64_t results_len;
        uint64_t done_total;
        uint64_t failed_total;
        uint32_t reserved;
        uint32_t crc; /* of this header with crc = 0, then the ranges */
        /* IpcRange ranges[n_ranges]; */
} CkptRecord;

typedef struct CkptSnapHeader {
        char magic[8];
        uint32_t version;
        uint32_t header_size;
        uint64_t n_items;
        uint64_t seq;
        uint64_t results_len;
        uint64_t done;
        uint64_t failed;
        uint32_t bitmap_crc;
        uint32_t crc;
} CkptSnapHeader;

_Static_assert(sizeof(CkptLogHeader) == 32, "log header layout");
_Static_assert(sizeof(CkptRecord) == 48, "record layout");
_Static_assert(sizeof(CkptSnapHeader) == 64, "snapshot header layout");

typedef struct Checkpoint {
        int dirfd; /* the job's directory; not owned */
        int log_fd;
        uint32_t gen;
        uint64_t n_items;
        Bitset bits; /* the committed items */
        uint64_t seq, results_len, done, failed;
        uint64_t log_size;
        bool log_name_unsynced; /* created since: the directory needs an fsync */
        bool read_only; /* checkpoint_peek(): nothing is cut, nothing committed */
        /* Compact once the log is this large (0: the default). */
        uint64_t compact_threshold;
        /* What recovery found, for the log and for tests. */
        uint64_t recovered_records;
        uint64_t torn_bytes;
} Checkpoint;

/* Creates an empty log for a new job (atomically, fsynced). A job need not
 * have one: without a log (and without a snapshot) it has committed
 * nothing, and its first commit creates the log. */
int checkpoint_create(int dirfd, uint64_t n_items);
/* Creates the empty log of a new job, unsynced: its name becomes durable
 * with the job directory's fsync, so the first commit needs no directory
 * fsync. An empty log is a job that has committed nothing. */
int checkpoint_create_empty(int dirfd);
/* Starts results generation gen over (a retry): the snapshot goes, then an
 * empty log of that generation replaces the old one. */
int checkpoint_restart(int dirfd, uint64_t n_items, uint32_t gen);
/* Recovers the checkpoint of a job; -EBADMSG if the log header or the
 * snapshot is unusable, or a snapshot has no log (which a crash alone
 * cannot cause). No log at all is generation 0 with nothing committed. */
int checkpoint_open(Checkpoint *c, int dirfd, uint64_t n_items);
/* Reads what another process's checkpoint has made durable, while that
 * process may be committing: the same recovery, but nothing is cut back
 * (a torn tail may be a record being written) and commits are refused.
 * Whatever the interleaving with a compaction, the state found is one
 * that was durable at some point, never more than is. */
int checkpoint_peek(Checkpoint *c, int dirfd, uint64_t n_items);
/* Chunk size of the committed set (bitset.h), BITSET_SHIFT_MAX unless a
 * test or fuzzer lowers it to cross chunks with small jobs; the files do
 * not depend on it. */
extern unsigned checkpoint_chunk_shift;
void checkpoint_close(Checkpoint *c);

/* Validates a commit from a runner (-EINVAL: ranges out of bounds, already
 * committed, or totals that do not add up; nothing changes), appends and
 * fdatasyncs its record (-errno on I/O failure; nothing changes, the log is
 * cut back), then applies it. Compacts when the log has grown large. */
int checkpoint_commit(Checkpoint *c, const IpcCommit *commit, const IpcRange *ranges);
int checkpoint_compact(Checkpoint *c);

static inline bool checkpoint_is_done(const Checkpoint *c, uint64_t i) {
        return bitset_test(&c->bits, i);
}

/* A sealed memfd holding the bitmap (the plain layout of bitset.h), handed
 * to the runner; empty chunks are holes, which take no memory. */
int checkpoint_bitmap_memfd(const Checkpoint *c);

