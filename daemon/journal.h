/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* The daemon's write-ahead journal, state/journal: what must be durable
 * before a client hears of it, in one preallocated file, so that making it
 * durable is one overwrite and one fdatasync (no file to create, no size
 * to change, no directory to sync). What a record says is made durable in
 * its usual files afterwards, off the client's path (a checkpoint); then
 * the journal starts a new generation and its records are void.
 *
 *   [slot 0: header][slot 1: header] ... records from JOURNAL_DATA_START
 *
 * Each header {magic, version, gen, crc} names the current generation; a
 * reset writes gen + 1 into the other slot and syncs it, so a torn header
 * leaves the previous one. A record {magic, type, gen, seq, len, crc} and
 * its payload, padded to 8 bytes; a scan stops at the first record that is
 * not of the generation, out of sequence, too long or fails its CRC-32C.
 * The file is parsed as untrusted input. */

#define JOURNAL_NAME "journal"
#define JOURNAL_SIZE (2u << 20)
#define JOURNAL_SLOT_SIZE 512u
#define JOURNAL_DATA_START 4096u
/* Larger payloads go the slow way (their own files, synced): small jobs
 * are what the journal is for, and its file stays small. */
#define JOURNAL_RECORD_MAX (256u << 10)
#define JOURNAL_MAGIC "MPLJRNL1"
#define JOURNAL_RECORD_MAGIC 0x4a4c504du /* "MPLJ" */
#define JOURNAL_VERSION 1u

enum {
        /* A new job: JournalSubmit, its job.json text, its input. */
        JOURNAL_SUBMIT = 1,
};

typedef struct JournalHeader {
        char magic[8];
        uint32_t version;
        uint32_t reserved;
        uint64_t gen;
        uint32_t reserved2;
        uint32_t crc;
} JournalHeader;

typedef struct JournalRecord {
        uint32_t magic;
        uint32_t type;
        uint64_t gen;
        uint64_t seq;
        uint32_t len; /* payload bytes, before padding */
        uint32_t crc; /* of this header with crc = 0, then the payload */
} JournalRecord;

typedef struct JournalSubmit {
        uint64_t id;
        uint32_t spec_len; /* job.json's bytes; the input follows them */
        uint32_t reserved;
} JournalSubmit;

_Static_assert(sizeof(JournalHeader) == 32, "journal header layout");
_Static_assert(sizeof(JournalRecord) == 32, "journal record layout");
_Static_assert(sizeof(JournalSubmit) == 16, "submit record layout");

typedef struct Journal {
        int fd;
        uint64_t gen;
        uint64_t seq; /* of the last record */
        uint64_t end; /* where the next record goes */
        unsigned slot; /* of the current header */
        /* Opened and not yet reset: records past a damaged one could be
         * taken for new ones, so nothing is appended before a reset. */
        bool opened;
        /* What opening found, for the log and for tests. */
        uint64_t replayed;
        bool recreated;
} Journal;

/* Called for each record of the current generation, in order; a negative
 * return stops the scan and fails journal_open. */
typedef int (*JournalReplay)(uint32_t type, const void *payload, size_t len, void *userdata);

/* Opens dirfd/journal, making it (zero-filled, synced, and its name) if it
 * is missing, and hands every record of the current generation to replay.
 * A journal with no valid header or of the wrong size is made anew
 * (recreated is set): it cannot hold an acknowledged record. The caller
 * makes what was replayed durable, then calls journal_reset(), before
 * which appends are refused (-EBUSY). */
int journal_open(Journal *j, int dirfd, JournalReplay replay, void *userdata);
void journal_close(Journal *j);

/* Writes a record and fdatasyncs it: once this returns 0 it survives a
 * crash. -E2BIG over JOURNAL_RECORD_MAX, -ENOSPC when it does not fit
 * before the next reset; nothing is written then. */
int journal_append(Journal *j, uint32_t type, const struct iovec *iov, size_t n_iov);
/* Voids every record (a new generation), durably. */
int journal_reset(Journal *j);
/* A SUBMIT payload's parts, pointing into it: -EBADMSG if they do not add
 * up. */
int journal_submit_parse(const void *payload, size_t len, uint64_t *ret_id, const char **ret_spec,
                         size_t *ret_spec_len, const void **ret_input, size_t *ret_input_len);

static inline bool journal_is_empty(const Journal *j) {
        return j->seq == 0;
}
