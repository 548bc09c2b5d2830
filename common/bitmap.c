/* SPDX-License-Identifier: MIT */
#include "bitmap.h"

void bitmap_set_range(uint64_t *bm, uint64_t first, uint64_t count) {
        uint64_t i = first, end = first + count;

        while (i < end && (i % 64) != 0)
                bm[i / 64] |= UINT64_C(1) << (i % 64), i++;
        while (end - i >= 64)
                bm[i / 64] = UINT64_MAX, i += 64;
        while (i < end)
                bm[i / 64] |= UINT64_C(1) << (i % 64), i++;
}

bool bitmap_any_in_range(const uint64_t *bm, uint64_t first, uint64_t count) {
        uint64_t i = first, end = first + count;

        while (i < end && (i % 64) != 0) {
                if (bitmap_test(bm, i))
                        return true;
                i++;
        }
        while (end - i >= 64) {
                if (bm[i / 64])
                        return true;
                i += 64;
        }
        while (i < end) {
                if (bitmap_test(bm, i))
                        return true;
                i++;
        }
        return false;
}

uint64_t bitmap_popcount(const uint64_t *bm, uint64_t n_items) {
        uint64_t n = 0, words = bitmap_words(n_items);

        for (uint64_t w = 0; w < words; w++)
                n += (uint64_t) __builtin_popcountll(bm[w]);
        return n;
}
