/* SPDX-License-Identifier: MIT */
#include "bytescan.h"

#include <string.h>

#define ONES 0x0101010101010101ull
#define LOWS 0x7f7f7f7f7f7f7f7full

/* Bit 7 of each byte of the word that equals c, nothing else: exact, since
 * (b & 0x7f) + 0x7f cannot carry out of its byte (unlike the usual
 * has-a-zero test, which may flag the byte after a match). */
static inline uint64_t match_mask(uint64_t w, uint64_t cs) {
        uint64_t x = w ^ cs;

        return ~(((x & LOWS) + LOWS) | x | LOWS);
}

/* Matches in a mask: one per byte, summed by the multiply. */
static inline uint64_t mask_count(uint64_t m) {
        return ((m >> 7) * ONES) >> 56;
}

static inline uint64_t load(const unsigned char *p) {
        uint64_t w;

        memcpy(&w, p, sizeof(w));
        return w;
}

/* The word trick reads byte k of a word as bits 8k..8k+7. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WORDS 1
#else
#define WORDS 0
#endif

uint64_t bytes_count(const void *p, size_t len, unsigned char c) {
        const unsigned char *s = p;
        uint64_t n = 0, cs = c * ONES;
        size_t i = 0;

        if (WORDS)
                for (; i + 8 <= len; i += 8)
                        n += mask_count(match_mask(load(s + i), cs));
        for (; i < len; i++)
                n += s[i] == c;
        return n;
}

uint64_t bytes_replace(void *p, size_t len, unsigned char from, unsigned char to) {
        unsigned char *s = p;
        uint64_t n = 0, cs = from * ONES, flip = (unsigned char) (from ^ to) * ONES;
        size_t i = 0;

        if (WORDS)
                for (; i + 8 <= len; i += 8) {
                        uint64_t w = load(s + i), m = match_mask(w, cs);
                        if (!m)
                                continue;
                        n += mask_count(m);
                        /* 0xff in the matching bytes: from ^ (from ^ to) is to. */
                        w ^= ((m >> 7) * 0xff) & flip;
                        memcpy(s + i, &w, sizeof(w));
                }
        for (; i < len; i++)
                if (s[i] == from) {
                        s[i] = to;
                        n++;
                }
        return n;
}

/* The j-th match at offset pos (j counted from 1). */
static inline void note(uint64_t j, size_t pos, uint64_t stride, uint64_t *index, uint64_t n_index) {
        if (j % stride == 0 && j / stride < n_index)
                index[j / stride] = (uint64_t) pos + 1;
}

uint64_t bytes_index(const void *p, size_t len, unsigned char c, uint64_t stride, uint64_t *index,
                     uint64_t n_index) {
        const unsigned char *s = p;
        uint64_t n = 0, cs = c * ONES;
        size_t i = 0;

        if (stride == 0)
                return bytes_count(p, len, c);
        if (WORDS)
                for (; i + 8 <= len; i += 8) {
                        uint64_t m = match_mask(load(s + i), cs), k = mask_count(m);
                        /* Most words end no stride: counted whole. */
                        if (n % stride + k < stride) {
                                n += k;
                                continue;
                        }
                        for (; m; m &= m - 1)
                                note(++n, i + (size_t) __builtin_ctzll(m) / 8, stride, index, n_index);
                }
        for (; i < len; i++)
                if (s[i] == c)
                        note(++n, i, stride, index, n_index);
        return n;
}
