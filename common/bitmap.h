/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Bitmaps of item indices, 64 per word: the daemon's record of committed
 * items and the runner's of recorded ones. */

static inline uint64_t bitmap_words(uint64_t n_items) {
        return (n_items + 63) / 64;
}

static inline bool bitmap_test(const uint64_t *bm, uint64_t i) {
        return (bm[i / 64] >> (i % 64)) & 1;
}

void bitmap_set_range(uint64_t *bm, uint64_t first, uint64_t count);
/* true if any bit of the range is set */
bool bitmap_any_in_range(const uint64_t *bm, uint64_t first, uint64_t count);
uint64_t bitmap_popcount(const uint64_t *bm, uint64_t n_items);
