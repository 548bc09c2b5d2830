/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A set of item indices 0..n-1 (the committed items of a job), stored as a
 * bitmap cut into chunks of 2^shift bits, where a chunk with no bit set
 * takes no memory and neither does one with every bit set. Jobs are done
 * mostly in order, so only the few chunks at the frontier are held: the
 * memory stays flat however long the job, while any pattern of completed
 * items can still be represented.
 *
 * The serialized form (snapshots, the memfd handed to runners) is the plain
 * bitmap: bitmap_words(n) native words, bit i of word i/64 for item i, bits
 * past n clear. The last chunk is never collapsed, so that those bits stay
 * clear in it. */

#define BITSET_SHIFT_MIN 6u
#define BITSET_SHIFT_MAX 18u /* 262,144 items, 32 KiB a chunk */

typedef struct Bitset {
        uint64_t n;     /* items */
        uint64_t count; /* items in the set */
        uint64_t n_chunks;
        unsigned shift;
        uint64_t **chunk; /* NULL: none set; bitset_full: all set; or the words */
        uint32_t *set;    /* bits set in each chunk */
} Bitset;

extern uint64_t *const bitset_full;

/* -ENOMEM, or -EINVAL for a shift out of range. */
int bitset_init(Bitset *b, uint64_t n);
int bitset_init_shift(Bitset *b, uint64_t n, unsigned shift);
void bitset_free(Bitset *b);

static inline bool bitset_test(const Bitset *b, uint64_t i) {
        const uint64_t *c = b->chunk[i >> b->shift];
        uint64_t j = i & ((UINT64_C(1) << b->shift) - 1);

        if (!c || c == bitset_full)
                return c != NULL;
        return (c[j / 64] >> (j % 64)) & 1;
}

/* true if any item of first..first+count-1 is in the set (in bounds). */
bool bitset_any_in_range(const Bitset *b, uint64_t first, uint64_t count);
/* Allocates what setting the range will need, so that a later
 * bitset_set_range() of it cannot fail. */
int bitset_reserve_range(Bitset *b, uint64_t first, uint64_t count);
/* Adds a range (in bounds; items already in are fine). -ENOMEM only if the
 * range was not reserved. */
int bitset_set_range(Bitset *b, uint64_t first, uint64_t count);
/* The first index >= from not in the set, or n. */
uint64_t bitset_next_clear(const Bitset *b, uint64_t from);

/* The serialized form, a chunk at a time: chunk k's words (shorter for the
 * last chunk) and a pointer to them valid until the set changes. */
uint64_t bitset_chunk_words(const Bitset *b, uint64_t k);
const uint64_t *bitset_chunk_data(const Bitset *b, uint64_t k);
/* Replaces chunk k with the given words (bitset_chunk_words(b, k) of them).
 * -EBADMSG if bits past n are set, -ENOMEM. */
int bitset_load_chunk(Bitset *b, uint64_t k, const uint64_t *words);
