/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "bitset.h"
#include "macro.h"

#define CHUNK_WORDS_MAX (UINT64_C(1) << (BITSET_SHIFT_MAX - 6))

/* What an empty or a full chunk reads as; never written. */
static const uint64_t zeros[CHUNK_WORDS_MAX];
static const uint64_t ones[CHUNK_WORDS_MAX] = { [0 ... CHUNK_WORDS_MAX - 1] = UINT64_MAX };
/* Read-only memory: a stray write through it faults instead of spreading. */
uint64_t *const bitset_full = UNCONST(ones);

static uint64_t chunk_bits(const Bitset *b) {
        return UINT64_C(1) << b->shift;
}

static bool is_last(const Bitset *b, uint64_t k) {
        return k + 1 == b->n_chunks;
}

/* Bits of chunk k that are items. */
static uint64_t chunk_items(const Bitset *b, uint64_t k) {
        return is_last(b, k) ? b->n - (k << b->shift) : chunk_bits(b);
}

uint64_t bitset_chunk_words(const Bitset *b, uint64_t k) {
        return bitmap_words(chunk_items(b, k));
}

int bitset_init_shift(Bitset *b, uint64_t n, unsigned shift) {
        *b = (Bitset){ .n = n, .shift = shift };
        if (shift < BITSET_SHIFT_MIN || shift > BITSET_SHIFT_MAX)
                return -EINVAL;
        b->n_chunks = (n + chunk_bits(b) - 1) >> shift;
        /* One pointer and one count per chunk: 12 bytes per 262,144 items. */
        b->chunk = calloc(b->n_chunks ? b->n_chunks : 1, sizeof(*b->chunk));
        b->set = calloc(b->n_chunks ? b->n_chunks : 1, sizeof(*b->set));
        if (!b->chunk || !b->set) {
                bitset_free(b);
                return -ENOMEM;
        }
        return 0;
}

int bitset_init(Bitset *b, uint64_t n) {
        return bitset_init_shift(b, n, BITSET_SHIFT_MAX);
}

static void chunk_drop(Bitset *b, uint64_t k) {
        if (b->chunk[k] != bitset_full)
                free(b->chunk[k]);
        b->chunk[k] = NULL;
}

void bitset_free(Bitset *b) {
        if (b->chunk)
                for (uint64_t k = 0; k < b->n_chunks; k++)
                        chunk_drop(b, k);
        free(b->chunk);
        free(b->set);
        *b = (Bitset){};
}

/* The part of first..first+count-1 inside chunk k, as chunk-local bits. */
static void clip(const Bitset *b, uint64_t k, uint64_t first, uint64_t count, uint64_t *lo, uint64_t *hi) {
        uint64_t start = k << b->shift, end = start + chunk_items(b, k);

        *lo = (first > start ? first : start) - start;
        *hi = (first + count < end ? first + count : end) - start;
}

bool bitset_any_in_range(const Bitset *b, uint64_t first, uint64_t count) {
        if (count == 0)
                return false;
        for (uint64_t k = first >> b->shift; k <= (first + count - 1) >> b->shift; k++) {
                uint64_t lo, hi;

                if (!b->chunk[k])
                        continue;
                if (b->chunk[k] == bitset_full)
                        return true;
                clip(b, k, first, count, &lo, &hi);
                if (bitmap_any_in_range(b->chunk[k], lo, hi - lo))
                        return true;
        }
        return false;
}

/* Whether setting lo..hi-1 of chunk k needs the chunk's words. */
static bool needs_words(const Bitset *b, uint64_t k, uint64_t lo, uint64_t hi) {
        if (b->chunk[k] == bitset_full)
                return false;
        return is_last(b, k) || lo > 0 || hi < chunk_bits(b);
}

int bitset_reserve_range(Bitset *b, uint64_t first, uint64_t count) {
        if (count == 0)
                return 0;
        for (uint64_t k = first >> b->shift; k <= (first + count - 1) >> b->shift; k++) {
                uint64_t lo, hi;

                clip(b, k, first, count, &lo, &hi);
                if (!b->chunk[k] && needs_words(b, k, lo, hi)) {
                        b->chunk[k] = calloc(bitset_chunk_words(b, k), sizeof(uint64_t));
                        if (!b->chunk[k])
                                return -ENOMEM;
                }
        }
        return 0;
}

int bitset_set_range(Bitset *b, uint64_t first, uint64_t count) {
        int r;

        r = bitset_reserve_range(b, first, count);
        if (r < 0)
                return r;
        if (count == 0)
                return 0;
        for (uint64_t k = first >> b->shift; k <= (first + count - 1) >> b->shift; k++) {
                uint64_t lo, hi, added = 0, *w;

                clip(b, k, first, count, &lo, &hi);
                if (b->chunk[k] == bitset_full)
                        continue;
                if (!needs_words(b, k, lo, hi)) {
                        /* The whole chunk: it becomes full, words or not. */
                        chunk_drop(b, k);
                        b->chunk[k] = bitset_full;
                        b->count += chunk_bits(b) - b->set[k];
                        b->set[k] = (uint32_t) chunk_bits(b);
                        continue;
                }
                w = b->chunk[k];
                for (uint64_t i = lo; i < hi;) {
                        uint64_t bit = i % 64, n = hi - i < 64 - bit ? hi - i : 64 - bit;
                        uint64_t mask = (n == 64 ? UINT64_MAX : ((UINT64_C(1) << n) - 1)) << bit;

                        added += (uint64_t) __builtin_popcountll(mask & ~w[i / 64]);
                        w[i / 64] |= mask;
                        i += n;
                }
                b->set[k] += (uint32_t) added;
                b->count += added;
                if (!is_last(b, k) && b->set[k] == chunk_bits(b)) {
                        chunk_drop(b, k);
                        b->chunk[k] = bitset_full;
                }
        }
        return 0;
}

uint64_t bitset_next_clear(const Bitset *b, uint64_t from) {
        if (from >= b->n)
                return b->n;
        for (uint64_t k = from >> b->shift; k < b->n_chunks; k++) {
                uint64_t start = k << b->shift, lo = from > start ? from - start : 0, items = chunk_items(b, k);
                const uint64_t *w = b->chunk[k];

                if (!w)
                        return start + lo;
                if (w == bitset_full)
                        continue;
                for (uint64_t i = lo; i < items;) {
                        uint64_t free_bits = ~w[i / 64] >> (i % 64);

                        if (free_bits) {
                                i += (uint64_t) __builtin_ctzll(free_bits);
                                return i < items ? start + i : b->n;
                        }
                        i = (i / 64 + 1) * 64;
                }
        }
        return b->n;
}

const uint64_t *bitset_chunk_data(const Bitset *b, uint64_t k) {
        if (!b->chunk[k])
                return zeros;
        return b->chunk[k]; /* full chunks are never the last: all ones is right */
}

int bitset_load_chunk(Bitset *b, uint64_t k, const uint64_t *words) {
        uint64_t nw = bitset_chunk_words(b, k), items = chunk_items(b, k), n = 0, *copy;

        if (items % 64 && (words[nw - 1] >> (items % 64)))
                return -EBADMSG;
        n = bitmap_popcount(words, items);
        if (n == 0 || (n == chunk_bits(b) && !is_last(b, k)))
                copy = n ? bitset_full : NULL;
        else {
                copy = malloc(nw * sizeof(uint64_t));
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, words, nw * sizeof(uint64_t));
        }
        chunk_drop(b, k);
        b->chunk[k] = copy;
        b->count = b->count - b->set[k] + n;
        b->set[k] = (uint32_t) n;
        return 0;
}
