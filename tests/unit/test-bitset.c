/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "bitset.h"
#include "test-util.h"

/* The chunked set against a plain bitmap (bitmap.c, tested on its own),
 * with small chunks so that every boundary case is cheap to reach. */

#define MAX_ITEMS 1000u

typedef struct Ref {
        uint64_t bm[(MAX_ITEMS + 63) / 64];
        uint64_t n;
} Ref;

/* Every observable of b against ref: membership, count, next_clear, the
 * serialized form, and that empty and full chunks hold no words. */
static void assert_same(const Bitset *b, const Ref *ref) {
        uint64_t words = bitmap_words(ref->n), off = 0;

        ck_assert_uint_eq(b->n, ref->n);
        ck_assert_uint_eq(b->count, bitmap_popcount(ref->bm, ref->n));
        /* Loops assert only on failure: each passing assertion in a forked
         * test is a write to Check's pipe. */
        for (uint64_t i = 0; i < ref->n; i++)
                if (bitset_test(b, i) != bitmap_test(ref->bm, i))
                        ck_abort_msg("item %llu", (unsigned long long) i);
        for (uint64_t i = ref->n + 1, expect = ref->n; i-- > 0;) {
                if (i < ref->n && !bitmap_test(ref->bm, i))
                        expect = i;
                if (bitset_next_clear(b, i) != expect)
                        ck_abort_msg("next_clear(%llu) = %llu, expected %llu", (unsigned long long) i,
                                     (unsigned long long) bitset_next_clear(b, i), (unsigned long long) expect);
        }
        for (uint64_t k = 0; k < b->n_chunks; k++) {
                uint64_t nw = bitset_chunk_words(b, k);
                ck_assert_mem_eq(bitset_chunk_data(b, k), ref->bm + off, nw * sizeof(uint64_t));
                off += nw;
                if (k + 1 < b->n_chunks) {
                        bool none = !bitmap_any_in_range(ref->bm, k << b->shift, UINT64_C(1) << b->shift);
                        bool all = bitmap_popcount(bitset_chunk_data(b, k), UINT64_C(1) << b->shift) ==
                                   UINT64_C(1) << b->shift;
                        ck_assert(!none || b->chunk[k] == NULL);
                        ck_assert(!all || b->chunk[k] == bitset_full);
                }
        }
        ck_assert_uint_eq(off, words);
}

static void both_set(Bitset *b, Ref *ref, uint64_t first, uint64_t count) {
        ck_assert_int_eq(bitset_set_range(b, first, count), 0);
        bitmap_set_range(ref->bm, first, count);
}

START_TEST(test_init) {
        Bitset b;

        ck_assert_int_eq(bitset_init_shift(&b, 10, 5), -EINVAL);
        ck_assert_int_eq(bitset_init_shift(&b, 10, 19), -EINVAL);
        ck_assert_int_eq(bitset_init(&b, 0), 0);
        ck_assert_uint_eq(b.n_chunks, 0);
        ck_assert_uint_eq(bitset_next_clear(&b, 0), 0);
        ck_assert(!bitset_any_in_range(&b, 0, 0));
        bitset_free(&b);
        ck_assert_int_eq(bitset_init(&b, 10000000), 0);
        ck_assert_uint_eq(b.n_chunks, 39); /* 262,144 items a chunk */
        ck_assert_uint_eq(bitset_chunk_words(&b, 0), 4096);
        ck_assert_uint_eq(bitset_chunk_words(&b, 38), bitmap_words(10000000 - 38 * 262144));
        bitset_free(&b);
        bitset_free(&b); /* twice is harmless */
}
END_TEST

START_TEST(test_ranges_every_boundary) {
        /* Every start and length around chunk and word boundaries, for
         * sizes that end on, before and after a chunk boundary. */
        static const uint64_t sizes[] = { 1, 63, 64, 65, 127, 128, 129, 300 };

        for (size_t s = 0; s < ELEMENTSOF(sizes); s++) {
                uint64_t n = sizes[s];
                for (uint64_t first = 0; first < n; first += (first < 10 ? 1 : 7))
                        for (uint64_t count = 1; first + count <= n; count += (count < 70 ? 1 : 29)) {
                                Bitset b;
                                Ref ref = { .n = n };

                                ck_assert_int_eq(bitset_init_shift(&b, n, 6), 0);
                                both_set(&b, &ref, first, count);
                                ck_assert_uint_eq(b.count, count);
                                for (uint64_t i = 0; i < n; i++)
                                        if (bitset_test(&b, i) != (i >= first && i < first + count))
                                                ck_abort_msg("item %llu", (unsigned long long) i);
                                ck_assert(bitset_any_in_range(&b, first, count));
                                ck_assert(!bitset_any_in_range(&b, 0, first) || first == 0);
                                if (first + count < n)
                                        ck_assert(!bitset_any_in_range(&b, first + count, n - first - count));
                                ck_assert_uint_eq(bitset_next_clear(&b, first), first + count);
                                bitset_free(&b);
                        }
        }
}
END_TEST

START_TEST(test_random_against_plain) {
        /* Random ranges, overlapping what is set already, in random order,
         * until everything is set: the case of a job done out of order. */
        static const unsigned shifts[] = { 6, 7, 9 };

        srandom(12345);
        for (size_t s = 0; s < ELEMENTSOF(shifts); s++)
                for (uint64_t n = MAX_ITEMS - 3; n <= MAX_ITEMS; n++) {
                        Bitset b;
                        Ref ref = { .n = n };
                        int steps = 0;

                        ck_assert_int_eq(bitset_init_shift(&b, n, shifts[s]), 0);
                        while (b.count < n) {
                                uint64_t first = (uint64_t) random() % n;
                                uint64_t count = 1 + (uint64_t) random() % (random() % 4 == 0 ? 200 : 20);
                                if (count > n - first)
                                        count = n - first;
                                both_set(&b, &ref, first, count);
                                if (++steps % 16 == 0)
                                        assert_same(&b, &ref);
                                for (int q = 0; q < 20; q++) {
                                        uint64_t f = (uint64_t) random() % n, c = 1 + (uint64_t) random() % 150;
                                        if (c > n - f)
                                                c = n - f;
                                        if (bitset_any_in_range(&b, f, c) != bitmap_any_in_range(ref.bm, f, c))
                                                ck_abort_msg("any_in_range(%llu, %llu)", (unsigned long long) f,
                                                             (unsigned long long) c);
                                }
                        }
                        assert_same(&b, &ref);
                        /* All set: every chunk but the last holds no words. */
                        for (uint64_t k = 0; k + 1 < b.n_chunks; k++)
                                ck_assert_ptr_eq(b.chunk[k], bitset_full);
                        ck_assert_uint_eq(bitset_next_clear(&b, 0), n);
                        bitset_free(&b);
                }
}
END_TEST

START_TEST(test_in_order_stays_small) {
        /* A job committed in order holds at most the chunk at the frontier. */
        Bitset b;
        uint64_t n = 10 * 262144 + 5;

        ck_assert_int_eq(bitset_init(&b, n), 0);
        for (uint64_t first = 0; first < n; first += 4000) {
                uint64_t held = 0;
                ck_assert_int_eq(bitset_set_range(&b, first, first + 4000 <= n ? 4000 : n - first), 0);
                for (uint64_t k = 0; k < b.n_chunks; k++)
                        held += b.chunk[k] && b.chunk[k] != bitset_full;
                ck_assert_uint_le(held, 1);
        }
        ck_assert_uint_eq(b.count, n);
        bitset_free(&b);
}
END_TEST

START_TEST(test_load_roundtrip_and_errors) {
        Bitset a, b;
        Ref ref = { .n = 300 };
        uint64_t words[4];

        ck_assert_int_eq(bitset_init_shift(&a, 300, 7), 0);
        both_set(&a, &ref, 0, 128);  /* chunk 0 full */
        both_set(&a, &ref, 130, 5);  /* chunk 1 partial, chunk 2 (last) empty */
        both_set(&a, &ref, 299, 1);  /* the last item */
        ck_assert_int_eq(bitset_init_shift(&b, 300, 7), 0);
        for (uint64_t k = 0; k < a.n_chunks; k++)
                ck_assert_int_eq(bitset_load_chunk(&b, k, bitset_chunk_data(&a, k)), 0);
        assert_same(&b, &ref);
        ck_assert_ptr_eq(b.chunk[0], bitset_full);

        /* Loading replaces, and keeps the count right. */
        memset(words, 0, sizeof(words));
        ck_assert_int_eq(bitset_load_chunk(&b, 0, words), 0);
        ck_assert_ptr_null(b.chunk[0]);
        ck_assert_uint_eq(b.count, 6);

        /* Bits past n in the last chunk (300 = 2 * 128 + 44) are damage. */
        memset(words, 0, sizeof(words));
        words[0] = UINT64_C(1) << 44;
        ck_assert_int_eq(bitset_load_chunk(&b, 2, words), -EBADMSG);
        ck_assert_uint_eq(b.count, 6); /* unchanged */
        /* A full last chunk is kept as words, so that those bits stay clear. */
        words[0] = (UINT64_C(1) << 44) - 1;
        ck_assert_int_eq(bitset_load_chunk(&b, 2, words), 0);
        ck_assert_ptr_nonnull(b.chunk[2]);
        ck_assert_ptr_ne(b.chunk[2], bitset_full);
        ck_assert_uint_eq(b.count, 5 + 44);
        bitset_free(&a);
        bitset_free(&b);
}
END_TEST

START_TEST(test_reserve_then_set) {
        /* What the checkpoint relies on: a reserved range sets without
         * allocating, and setting what is set already changes nothing. */
        Bitset b;
        Ref ref = { .n = 500 };

        ck_assert_int_eq(bitset_init_shift(&b, 500, 6), 0);
        ck_assert_int_eq(bitset_reserve_range(&b, 10, 200), 0);
        both_set(&b, &ref, 10, 200);
        both_set(&b, &ref, 50, 100);
        both_set(&b, &ref, 0, 500);
        assert_same(&b, &ref);
        ck_assert_uint_eq(b.count, 500);
        bitset_free(&b);
}
END_TEST

static Suite *bitset_suite(void) {
        Suite *s = suite_create("bitset");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_init);
        tcase_add_test(tc, test_ranges_every_boundary);
        tcase_add_test(tc, test_random_against_plain);
        tcase_add_test(tc, test_in_order_stays_small);
        tcase_add_test(tc, test_load_roundtrip_and_errors);
        tcase_add_test(tc, test_reserve_then_set);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(bitset_suite());
}
