/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The built-in results file, OUTPUT/mplock-<job>.results:
 *
 *   file header   ResultsFileHeader (32 bytes)
 *   blocks        each a ResultsBlockHeader and a payload of `count` items
 *                 with consecutive indices first, first+1, ...; per item an
 *                 item header, the item bytes, then the result bytes (the
 *                 error message when status != 0).
 *
 * Version 2 added what a joblog says of each item: its attempts, the
 * worker that ran it and how long the call took. Its blocks have their own
 * magic (RESULTS_BLOCK_MAGIC_V2) and per item a longer header (below); a
 * block of either kind says by its magic how its items are laid out, so
 * every reader takes both, in a file of either version: a version-1 file
 * (an earlier mplock's, or a retry's carried file) reads as before, and a
 * version-1 file a newer runner resumes is upgraded in place (its header
 * says version 2 from the first block that runner appends).
 *
 * Blocks are in completion order, not input order; each is covered by a
 * CRC-32C. Integers are in host byte order. The runner appends blocks; a
 * checkpoint record names the file length up to which blocks are committed,
 * and recovery cuts the file back to it, so that every committed index has
 * exactly one record and nothing else is in the file. */

#define RESULTS_FILE_MAGIC "MPLRES\0\1"
#define RESULTS_BLOCK_MAGIC 0x424c504du    /* "MPLB": items with a ResultsItemHeader */
#define RESULTS_BLOCK_MAGIC_V2 0x324c504du /* "MPL2": items with the joblog (below) */
#define RESULTS_VERSION 2u
#define RESULTS_VERSION_MIN 1u
/* A block holds at most this much payload (one item's result can be up to
 * MPLOCK_RESULT_MAX, plus its item). */
#define RESULTS_BLOCK_PAYLOAD_MAX (64u * 1024u * 1024u)
/* Workers close a block once it holds this much. */
#define RESULTS_BLOCK_TARGET (64u * 1024u)

typedef struct ResultsFileHeader {
        char magic[8];
        uint32_t version;
        uint32_t header_size;
        uint64_t job_id;
        uint32_t gen; /* results generation: one more per retry */
        uint32_t crc; /* of the 28 bytes before it */
} ResultsFileHeader;

typedef struct ResultsBlockHeader {
        uint32_t magic;
        uint32_t count;
        uint64_t first;
        uint32_t payload_len;
        uint32_t crc; /* of this header with crc = 0, then the payload */
} ResultsBlockHeader;

typedef struct ResultsItemHeader {
        uint32_t item_len;
        uint32_t result_len;
        int32_t status; /* 0, or the item's error code */
} ResultsItemHeader;

/* The joblog of an item (version 2). */
typedef struct ResultsMeta {
        uint32_t attempts; /* the attempt whose outcome this is (1, 2, ...); 0: not known (version 1) */
        uint32_t worker;   /* its worker's number (slot) */
        uint64_t run_usec; /* its call of process, wall clock */
} ResultsMeta;

/* A version-2 item header is version 1's, then attempts, worker and
 * run_usec as LEB128 varints: 3 bytes more than version 1 for a fast item
 * (W1's file, about 25 bytes an item, grew by 80% with a fixed 32-byte
 * header, and the job's write and sync with it: 1.47 times as long; by
 * 32% with 20 bytes). attempts and worker are at most UINT16_MAX. */
#define RESULTS_ITEM_HEADER_V2_MIN (sizeof(ResultsItemHeader) + 3)
#define RESULTS_ITEM_HEADER_V2_MAX (sizeof(ResultsItemHeader) + 3 + 3 + 10)
_Static_assert(sizeof(ResultsFileHeader) == 32, "file header layout");
_Static_assert(sizeof(ResultsBlockHeader) == 24, "block header layout");
_Static_assert(sizeof(ResultsItemHeader) == 12, "item header layout");

void results_file_header_init(ResultsFileHeader *h, uint64_t job_id, uint32_t gen);
/* 0 if valid (either version), -EBADMSG otherwise. */
int results_file_header_check(const ResultsFileHeader *h);

/* Builds one block in memory (used by workers), always of version 2. */
typedef struct ResultsBlock {
        char *buf; /* header + payload */
        size_t len, cap;
        uint64_t first;
        uint32_t count;
} ResultsBlock;

void results_block_free(ResultsBlock *b);
void results_block_begin(ResultsBlock *b, uint64_t first);
/* Appends the next index (first + count), with its joblog (NULL: not
 * known). -E2BIG if the payload would pass RESULTS_BLOCK_PAYLOAD_MAX,
 * -ENOMEM. */
int results_block_add(ResultsBlock *b, const void *item, size_t item_len, const void *result,
                      size_t result_len, int32_t status, const ResultsMeta *meta);
/* Fills in the header and checksum; the block is then b->buf[0..b->len). */
void results_block_finish(ResultsBlock *b);
static inline size_t results_block_payload(const ResultsBlock *b) {
        return b->len - sizeof(ResultsBlockHeader);
}

/* Bytes of an item's header in a block with this magic (the least, for
 * version 2); 0 if it is none. */
static inline size_t results_item_header_size(uint32_t magic) {
        return magic == RESULTS_BLOCK_MAGIC_V2 ? RESULTS_ITEM_HEADER_V2_MIN
               : magic == RESULTS_BLOCK_MAGIC  ? sizeof(ResultsItemHeader)
                                               : 0;
}

/* Checks a block header's fields before anything is read or allocated for
 * it: magic (either version), count >= 1, payload length within limits, first + count within
 * n_items. -EBADMSG if not. */
int results_block_header_check(const ResultsBlockHeader *h, uint64_t n_items);
/* Checks a whole block (header then payload, contiguous): CRC and that the
 * items fill the payload exactly. -EBADMSG if not. */
int results_block_verify(const void *block, size_t len, uint64_t n_items);
/* The same, and counts the failed items and, of those, the ones whose
 * status is `special`, in the pass the check makes anyway (the runner would
 * otherwise walk every block twice more). */
int results_block_verify_count(const void *block, size_t len, uint64_t n_items, int32_t special,
                               uint32_t *ret_failed, uint32_t *ret_special);

/* Iterates the items of a verified block's payload. */
typedef struct ResultsItem {
        uint64_t index;
        const char *item;
        size_t item_len;
        const char *result;
        size_t result_len;
        int32_t status;
        ResultsMeta meta; /* zeros in a version-1 block */
} ResultsItem;

typedef struct ResultsItemIter {
        const char *p, *end;
        uint64_t next_index;
        bool v2;
} ResultsItemIter;

void results_item_iter_init(ResultsItemIter *it, const ResultsBlockHeader *h, const void *payload);
bool results_item_iter_next(ResultsItemIter *it, ResultsItem *ret);

/* Reading a results file in input order (daemon, client, tests), with
 * pread only: the file belongs to a user, and a mapping of it could be
 * truncated under the reader (SIGBUS). */
typedef struct ResultsBlockRef {
        uint64_t first;
        uint32_t count;
        uint32_t payload_len;
        uint64_t offset; /* of the block header in the file */
} ResultsBlockRef;

typedef struct ResultsFile {
        int fd;           /* not owned */
        uint64_t size;    /* bytes considered */
        uint64_t valid_end; /* end of the last block with a plausible header */
        uint64_t n_items;
        uint64_t job_id;
        ResultsBlockRef *blocks; /* sorted by first */
        size_t n_blocks;
        uint64_t n_results;
        char *buf;        /* the block being read */
        size_t buf_cap;
} ResultsFile;

/* Indexes the blocks of fd by their headers, up to `limit` bytes (the
 * committed length; UINT64_MAX for the whole file, stopping at the first
 * torn block). With a finite limit the blocks must end exactly there
 * (-EBADMSG otherwise; -ENODATA if the file is shorter). Overlapping indices
 * (an index recorded twice) are -ENOTUNIQ. n_items bounds every index. */
int results_file_open(ResultsFile *f, int fd, uint64_t limit, uint64_t n_items);
void results_file_close(ResultsFile *f);
/* Reads and verifies block k (CRC, item layout): -EBADMSG if it is corrupt.
 * *ret_header and *ret_payload stay valid until the next read. */
int results_file_read_block(ResultsFile *f, size_t k, ResultsBlockHeader *ret_header, const char **ret_payload);
/* The first block k whose range ends after index (binary search). */
size_t results_file_find(const ResultsFile *f, uint64_t index);
