/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bitset.h"
#include "dispatch.h"
#include "runner.h"
#include "test-util.h"

/* The dispatch policy on its own: chunk sizes, what goes out next, the
 * requeue, attempts and backoff. No processes, no clock: time is an
 * argument. This binary links with -Wl,--wrap for malloc, calloc and
 * realloc, so that the -ENOMEM paths can be taken on cue. */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

/* While set, every allocation fails. */
static bool alloc_fails;

void *__wrap_malloc(size_t n) {
        return alloc_fails ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
        return alloc_fails ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
        return alloc_fails ? NULL : __real_realloc(p, n);
}

/* A job of n items, none of them done yet. */
static void setup(Dispatch *d, Bitset *done, uint64_t n, uint32_t workers, uint32_t batch) {
        ck_assert_int_eq(bitset_init(done, n), 0);
        *d = (Dispatch){ .n_items = n,
                         .n_workers = workers,
                         .batch_size = batch,
                         .max_attempts = 3,
                         .retry_delay_ms = 100,
                         .done = done };
}

static void teardown(Dispatch *d, Bitset *done) {
        dispatch_free(d);
        bitset_free(done);
}

static void expect_chunk(Dispatch *d, uint64_t first, uint32_t count, bool single) {
        Chunk c;

        ck_assert_msg(dispatch_next(d, &c), "no chunk, expected %llu+%u", (unsigned long long) first, count);
        ck_assert_msg(c.first == first && c.count == count && c.single == single,
                      "chunk %llu+%u%s, expected %llu+%u%s", (unsigned long long) c.first, c.count,
                      c.single ? " single" : "", (unsigned long long) first, count, single ? " single" : "");
}

static void expect_none(Dispatch *d) {
        Chunk c;

        ck_assert_msg(!dispatch_next(d, &c), "unexpected chunk %llu+%u", (unsigned long long) c.first, c.count);
}

/* Every item of the job handed out and done: only requeued items can come
 * out, and only they count as left. */
static void all_done(Dispatch *d, Bitset *done) {
        ck_assert_int_eq(bitset_set_range(done, 0, d->n_items), 0);
        d->cursor = d->n_items;
}

START_TEST(test_first_chunks_are_one_batch) {
        Dispatch d;
        Bitset done;

        setup(&d, &done, 100000, 2, 1);
        ck_assert_uint_eq(dispatch_chunk_size(&d), 1);
        expect_chunk(&d, 0, 1, false);
        expect_chunk(&d, 1, 1, false);
        teardown(&d, &done);

        setup(&d, &done, 100000, 2, 16);
        ck_assert_uint_eq(dispatch_chunk_size(&d), 16);
        expect_chunk(&d, 0, 16, false);
        expect_chunk(&d, 16, 16, false);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_measured_chunks_take_50ms) {
        Dispatch d;
        Bitset done;

        setup(&d, &done, 100000000, 2, 1);
        /* 10 items in 10 ms: 1 ms each, 50 to the chunk. */
        dispatch_measured(&d, 10000, 10);
        ck_assert(d.item_usec == 1000.0);
        ck_assert_uint_eq(dispatch_chunk_size(&d), 50);
        /* The estimate moves by 30% of each new measurement. */
        dispatch_measured(&d, 20000, 10);
        ck_assert(d.item_usec == 0.7 * 1000.0 + 0.3 * 2000.0);
        ck_assert_uint_eq(dispatch_chunk_size(&d), 38); /* 50000 / 1300 */

        d.item_usec = 1.0;
        ck_assert_uint_eq(dispatch_chunk_size(&d), 50000);
        d.item_usec = 0.1; /* 500,000 items: capped */
        ck_assert_uint_eq(dispatch_chunk_size(&d), DISPATCH_CHUNK_MAX);
        d.item_usec = 200000.0; /* slower than the target: still one item */
        ck_assert_uint_eq(dispatch_chunk_size(&d), 1);
        expect_chunk(&d, 0, 1, false);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_batch_rounding) {
        Dispatch d;
        Bitset done;

        setup(&d, &done, 100000000, 2, 7);
        d.item_usec = 2500.0; /* 20 items, up to 21 */
        ck_assert_uint_eq(dispatch_chunk_size(&d), 21);
        d.item_usec = 625.0; /* 80 items, up to 84 */
        ck_assert_uint_eq(dispatch_chunk_size(&d), 84);
        d.item_usec = 50000.0 / 14; /* 14: a multiple already */
        ck_assert_uint_eq(dispatch_chunk_size(&d), 14);
        /* Items slower than the target: no item fits, which rounds to
         * none and is then one item, not a batch (what the runner has
         * always done; process gets "up to batch_size" items). */
        d.item_usec = 100000.0;
        ck_assert_uint_eq(dispatch_chunk_size(&d), 1);
        expect_chunk(&d, 0, 1, false);
        teardown(&d, &done);

        /* Rounding comes after the cap, so that batches stay whole: a
         * chunk passes CHUNK_MAX by less than a batch. */
        setup(&d, &done, 100000000, 2, 1000);
        d.item_usec = 0.01;
        ck_assert_uint_eq(dispatch_chunk_size(&d), 66000);
        teardown(&d, &done);

        /* The guided tail is rounded up too: 10 items left, 2 workers. */
        setup(&d, &done, 10, 2, 8);
        d.item_usec = 1.0;
        ck_assert_uint_eq(dispatch_chunk_size(&d), 8);
        expect_chunk(&d, 0, 8, false);
        expect_chunk(&d, 8, 2, false); /* the end of the job cuts it */
        expect_none(&d);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_guided_tail) {
        Dispatch d;
        Bitset done;
        uint64_t left = 1000, handed = 0;
        uint32_t last = 0;
        Chunk c;

        /* Fast items: only guided self-scheduling limits the chunks, each
         * at most a quarter (2 workers) of what is left. */
        setup(&d, &done, 1000, 2, 1);
        d.item_usec = 0.001;
        while (dispatch_next(&d, &c)) {
                uint64_t want = (left + 3) / 4;
                if (c.first != handed || c.count != want || c.single)
                        ck_abort_msg("chunk %llu+%u with %llu left, expected %llu+%llu", (unsigned long long) c.first,
                                     c.count, (unsigned long long) left, (unsigned long long) handed,
                                     (unsigned long long) want);
                handed += c.count;
                left -= c.count;
                last = c.count;
        }
        ck_assert_uint_eq(handed, 1000);
        ck_assert_uint_eq(last, 1);
        teardown(&d, &done);

        /* Requeued items count as left: 4 workers, 100 requeued, nothing
         * else. */
        setup(&d, &done, 1000, 4, 1);
        all_done(&d, &done);
        d.item_usec = 0.001;
        ck_assert_uint_eq(dispatch_chunk_size(&d), 1);
        ck_assert_int_eq(dispatch_requeue(&d, 500, 100, false), 0);
        ck_assert_uint_eq(dispatch_chunk_size(&d), 13); /* (100 + 7) / 8 */
        expect_chunk(&d, 500, 13, false);
        expect_chunk(&d, 513, 11, false); /* (87 + 7) / 8 */
        teardown(&d, &done);
}
END_TEST

START_TEST(test_next_skips_done) {
        Dispatch d;
        Bitset done;

        setup(&d, &done, 40, 1, 1);
        ck_assert_int_eq(bitset_set_range(&done, 0, 10), 0);
        ck_assert_int_eq(bitset_set_range(&done, 15, 5), 0);
        ck_assert_int_eq(bitset_set_range(&done, 30, 10), 0);
        d.item_usec = 0.001;
        expect_chunk(&d, 10, 5, false); /* stops at 15 */
        expect_chunk(&d, 20, 10, false);
        expect_none(&d);
        expect_none(&d);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_next_covers_the_rest_once) {
        Dispatch d;
        Bitset done;
        uint64_t n = 20000, seen = 0;
        unsigned seed = 7;
        uint8_t *handed = calloc(n, 1);
        Chunk c;

        ck_assert_ptr_nonnull(handed);
        setup(&d, &done, n, 3, 4);
        /* Runs of done items of random lengths. */
        for (uint64_t i = 0; i < n;) {
                uint64_t len = 1 + (uint64_t) rand_r(&seed) % 300;
                len = MIN(len, n - i);
                if (rand_r(&seed) % 3 == 0)
                        ck_assert_int_eq(bitset_set_range(&done, i, len), 0);
                i += len;
        }
        d.item_usec = 5.0;
        while (dispatch_next(&d, &c))
                for (uint64_t i = c.first; i < c.first + c.count; i++) {
                        if (i >= n || bitset_test(&done, i) || handed[i])
                                ck_abort_msg("item %llu handed out wrongly", (unsigned long long) i);
                        handed[i] = 1;
                        seen++;
                }
        ck_assert_uint_eq(seen + done.count, n);
        free(handed);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_requeue_suspects_first) {
        Dispatch d;
        Bitset done;

        setup(&d, &done, 1000, 1, 1);
        all_done(&d, &done);
        d.item_usec = 0.001;
        ck_assert_int_eq(dispatch_requeue(&d, 100, 10, false), 0);
        ck_assert_int_eq(dispatch_requeue(&d, 200, 4, false), 0);
        ck_assert_int_eq(dispatch_requeue(&d, 300, 1, true), 0);
        ck_assert_int_eq(dispatch_requeue(&d, 301, 1, true), 0);
        ck_assert_int_eq(dispatch_requeue(&d, 400, 0, false), 0); /* nothing */
        ck_assert_uint_eq(d.requeue_items, 16);

        /* The suspect pushed last goes first, each alone. */
        expect_chunk(&d, 301, 1, true);
        expect_chunk(&d, 300, 1, true);
        /* A death within a chunk: its items one by one, in order, ahead of
         * what was queued. */
        ck_assert_int_eq(dispatch_requeue_suspects(&d, 50, 3), 0);
        expect_chunk(&d, 50, 1, true);
        expect_chunk(&d, 51, 1, true);
        expect_chunk(&d, 52, 1, true);
        /* A suspect range goes out one item at a time. */
        ck_assert_int_eq(dispatch_requeue(&d, 60, 2, true), 0);
        expect_chunk(&d, 60, 1, true);
        expect_chunk(&d, 61, 1, true);
        /* Plain ones in the order they came, cut to the guided size: 14
         * left of which at most half for one worker. */
        expect_chunk(&d, 100, 7, false);
        expect_chunk(&d, 107, 3, false); /* the rest of that range */
        expect_chunk(&d, 200, 2, false);
        expect_chunk(&d, 202, 1, false);
        expect_chunk(&d, 203, 1, false);
        ck_assert_uint_eq(d.requeue_items, 0);
        expect_none(&d);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_requeue_ring_against_a_deque) {
        /* Prepends, appends and pops at random, across the ring's growth
         * and wrap-around, against a plain array with a head in its
         * middle. */
        enum { OPS = 20000, SPAN = 2 * OPS + 1 };
        uint64_t *ref = calloc(SPAN, sizeof(uint64_t));
        size_t head = OPS, tail = OPS; /* ref[head..tail) */
        unsigned seed = 42;
        uint64_t next = 0;
        Dispatch d;
        Bitset done;

        ck_assert_ptr_nonnull(ref);
        setup(&d, &done, 10, 1, 1);
        all_done(&d, &done);
        for (int op = 0; op < OPS; op++) {
                int what = rand_r(&seed) % 3;
                Chunk c;

                if (what == 0 || (what == 2 && head == tail)) {
                        if (dispatch_requeue(&d, next, 1, false) < 0)
                                ck_abort_msg("requeue failed");
                        ref[tail++] = next++;
                } else if (what == 1) {
                        if (dispatch_requeue(&d, next, 1, true) < 0)
                                ck_abort_msg("requeue failed");
                        ref[--head] = next++;
                } else {
                        if (!dispatch_next(&d, &c) || c.count != 1 || c.first != ref[head])
                                ck_abort_msg("op %d: popped %llu, expected %llu", op, (unsigned long long) c.first,
                                             (unsigned long long) ref[head]);
                        head++;
                }
                if (d.n_requeue != tail - head)
                        ck_abort_msg("op %d: %zu queued, expected %zu", op, d.n_requeue, tail - head);
        }
        ck_assert_uint_gt(d.cap_requeue, 16);
        while (head < tail) {
                Chunk c;
                if (!dispatch_next(&d, &c) || c.first != ref[head])
                        ck_abort_msg("draining: popped %llu, expected %llu", (unsigned long long) c.first,
                                     (unsigned long long) ref[head]);
                head++;
        }
        expect_none(&d);
        free(ref);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_attempts_counted) {
        Dispatch d;
        Bitset done;
        uint32_t n;

        setup(&d, &done, 100000, 2, 1);
        for (uint32_t k = 1; k <= 5; k++) {
                ck_assert_int_eq(dispatch_attempt(&d, 5, &n), 0);
                ck_assert_uint_eq(n, k);
        }
        ck_assert_int_eq(dispatch_attempt(&d, 6, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(dispatch_attempt(&d, 0, &n), 0); /* index 0 is a key too */
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(dispatch_attempt(&d, 5, &n), 0);
        ck_assert_uint_eq(n, 6);
        ck_assert_uint_eq(d.n_attempts, 3);

        /* Many items: the hash grows and keeps every count. */
        for (uint64_t i = 1000; i < 21000; i++)
                if (dispatch_attempt(&d, i * 7, &n) < 0 || n != 1)
                        ck_abort_msg("item %llu: attempt %u", (unsigned long long) i, n);
        for (uint64_t i = 1000; i < 21000; i++)
                if (dispatch_attempt(&d, i * 7, &n) < 0 || n != 2)
                        ck_abort_msg("item %llu: attempt %u", (unsigned long long) i, n);
        ck_assert_uint_eq(d.n_attempts, 20003);
        ck_assert_uint_ge(d.cap_attempts, 2 * d.n_attempts);
        ck_assert_int_eq(dispatch_attempt(&d, 5, &n), 0);
        ck_assert_uint_eq(n, 7);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_retryable) {
        Dispatch d;
        Bitset done;

        setup(&d, &done, 10, 1, 1);
        ck_assert(!dispatch_retryable(&d, 0));
        ck_assert(!dispatch_retryable(&d, MPLOCK_ERR_CRASHED));
        ck_assert(dispatch_retryable(&d, -5));
        ck_assert(dispatch_retryable(&d, MPLOCK_ERR_NO_RESULT));
        ck_assert(dispatch_retryable(&d, 17));
        d.max_attempts = 1;
        ck_assert(!dispatch_retryable(&d, -5));
        teardown(&d, &done);
}
END_TEST

START_TEST(test_backoff) {
        static const uint64_t ms[] = { 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000 };
        Dispatch d;
        Bitset done;

        setup(&d, &done, 10, 1, 1);
        for (uint32_t a = 1; a <= ELEMENTSOF(ms); a++)
                ck_assert_uint_eq(dispatch_retry_delay(&d, a), ms[a - 1] * 1000);
        ck_assert_uint_eq(dispatch_retry_delay(&d, UINT32_MAX), DISPATCH_RETRY_DELAY_MAX_USEC);
        /* The doubling stops at 2^10: a short delay does not overflow. */
        d.retry_delay_ms = 1;
        ck_assert_uint_eq(dispatch_retry_delay(&d, 11), 1024000);
        ck_assert_uint_eq(dispatch_retry_delay(&d, 40), 1024000);
        d.retry_delay_ms = 3600000;
        ck_assert_uint_eq(dispatch_retry_delay(&d, 1), DISPATCH_RETRY_DELAY_MAX_USEC);
        d.retry_delay_ms = 0;
        ck_assert_uint_eq(dispatch_retry_delay(&d, 3), 0);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_release_due) {
        const uint64_t t0 = 1000000;
        uint64_t when, next;
        Dispatch d;
        Bitset done;

        setup(&d, &done, 1000, 1, 1);
        all_done(&d, &done);
        ck_assert_int_eq(dispatch_release_due(&d, t0, &next), 0);
        ck_assert_uint_eq(next, UINT64_MAX);

        ck_assert_int_eq(dispatch_retry_later(&d, 7, 1, t0, &when), 0);
        ck_assert_uint_eq(when, t0 + 100000);
        ck_assert_int_eq(dispatch_retry_later(&d, 8, 2, t0, &when), 0);
        ck_assert_uint_eq(when, t0 + 200000);
        ck_assert_int_eq(dispatch_retry_later(&d, 9, 1, t0 + 50000, &when), 0);
        ck_assert_uint_eq(when, t0 + 150000);
        ck_assert_int_eq(dispatch_requeue(&d, 500, 1, false), 0);

        /* Not yet: nothing moves, and the earliest is next. */
        ck_assert_int_eq(dispatch_release_due(&d, t0 + 99999, &next), 0);
        ck_assert_uint_eq(next, t0 + 100000);
        ck_assert_uint_eq(d.n_delayed, 3);
        ck_assert_uint_eq(d.n_requeue, 1);

        ck_assert_int_eq(dispatch_release_due(&d, t0 + 100000, &next), 0);
        ck_assert_uint_eq(next, t0 + 150000);
        ck_assert_uint_eq(d.n_delayed, 2);
        /* A released retry goes before what was queued, alone. */
        expect_chunk(&d, 7, 1, true);

        /* Both due: the last one moved goes first. */
        ck_assert_int_eq(dispatch_release_due(&d, t0 + 10000000, &next), 0);
        ck_assert_uint_eq(next, UINT64_MAX);
        ck_assert_uint_eq(d.n_delayed, 0);
        expect_chunk(&d, 9, 1, true);
        expect_chunk(&d, 8, 1, true);
        expect_chunk(&d, 500, 1, false);
        expect_none(&d);

        /* Many at once, past the ring's capacity, half of them due. */
        for (uint64_t i = 0; i < 200; i++)
                ck_assert_int_eq(dispatch_retry_later(&d, i, 1 + (uint32_t) (i % 2), t0, &when), 0);
        ck_assert_int_eq(dispatch_release_due(&d, t0 + 100000, &next), 0);
        ck_assert_uint_eq(next, t0 + 200000);
        ck_assert_uint_eq(d.n_requeue, 100);
        for (uint64_t i = 200; i > 0; i -= 2)
                expect_chunk(&d, i - 2, 1, true);
        ck_assert_int_eq(dispatch_release_due(&d, t0 + 200000, &next), 0);
        ck_assert_uint_eq(next, UINT64_MAX);
        for (uint64_t i = 200; i > 0; i -= 2)
                expect_chunk(&d, i - 1, 1, true);
        expect_none(&d);
        teardown(&d, &done);
}
END_TEST

START_TEST(test_enomem_leaves_state) {
        Dispatch d;
        Bitset done;
        uint64_t when = 0, next = 0;
        uint32_t n = 0;
        int r;

        setup(&d, &done, 1000, 1, 1);
        all_done(&d, &done);
        /* Fill the ring, the hash and the delayed list to their first
         * capacity, so that the next of each must allocate. */
        for (uint64_t i = 0; i < 16; i++)
                ck_assert_int_eq(dispatch_requeue(&d, i, 1, false), 0);
        ck_assert_uint_eq(d.cap_requeue, 16);
        for (uint64_t i = 0; i < 32; i++)
                ck_assert_int_eq(dispatch_attempt(&d, 100 + i, &n), 0);
        ck_assert_uint_eq(d.cap_attempts, 64);
        for (uint64_t i = 0; i < 16; i++)
                ck_assert_int_eq(dispatch_retry_later(&d, 200 + i, 1, 0, &when), 0);
        ck_assert_uint_eq(d.cap_delayed, 16);

        alloc_fails = true;
        r = dispatch_requeue(&d, 99, 1, true);
        alloc_fails = false;
        ck_assert_int_eq(r, -ENOMEM);
        ck_assert_uint_eq(d.n_requeue, 16);
        ck_assert_uint_eq(d.requeue_items, 16);

        alloc_fails = true;
        r = dispatch_requeue_suspects(&d, 50, 3);
        alloc_fails = false;
        ck_assert_int_eq(r, -ENOMEM);
        ck_assert_uint_eq(d.n_requeue, 16);

        alloc_fails = true;
        r = dispatch_attempt(&d, 100, &n);
        alloc_fails = false;
        ck_assert_int_eq(r, -ENOMEM);
        ck_assert_uint_eq(d.n_attempts, 32);

        alloc_fails = true;
        r = dispatch_retry_later(&d, 300, 1, 0, &when);
        alloc_fails = false;
        ck_assert_int_eq(r, -ENOMEM);
        ck_assert_uint_eq(d.n_delayed, 16);

        /* Releasing all 16 needs a larger ring: nothing moves. */
        alloc_fails = true;
        r = dispatch_release_due(&d, 10000000, &next);
        alloc_fails = false;
        ck_assert_int_eq(r, -ENOMEM);
        ck_assert_uint_eq(d.n_delayed, 16);
        ck_assert_uint_eq(d.n_requeue, 16);

        /* And everything still works, in order. */
        ck_assert_int_eq(dispatch_attempt(&d, 100, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(dispatch_release_due(&d, 10000000, &next), 0);
        ck_assert_uint_eq(d.n_requeue, 32);
        for (uint64_t i = 16; i > 0; i--)
                expect_chunk(&d, 200 + i - 1, 1, true);
        d.item_usec = 100000.0; /* one at a time */
        for (uint64_t i = 0; i < 16; i++)
                expect_chunk(&d, i, 1, false);
        expect_none(&d);
        teardown(&d, &done);
}
END_TEST

static Suite *dispatch_suite(void) {
        Suite *s = suite_create("dispatch");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_first_chunks_are_one_batch);
        tcase_add_test(tc, test_measured_chunks_take_50ms);
        tcase_add_test(tc, test_batch_rounding);
        tcase_add_test(tc, test_guided_tail);
        tcase_add_test(tc, test_next_skips_done);
        tcase_add_test(tc, test_next_covers_the_rest_once);
        tcase_add_test(tc, test_requeue_suspects_first);
        tcase_add_test(tc, test_requeue_ring_against_a_deque);
        tcase_add_test(tc, test_attempts_counted);
        tcase_add_test(tc, test_retryable);
        tcase_add_test(tc, test_backoff);
        tcase_add_test(tc, test_release_due);
        tcase_add_test(tc, test_enomem_leaves_state);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(dispatch_suite());
}
