/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "stats.h"
#include "test-util.h"

/* The reference: every value, sorted slowest first, the first ten. */
static int cmp_desc(const void *a, const void *b) {
        const StatsSlow *x = a, *y = b;

        if (x->usec != y->usec)
                return x->usec < y->usec ? 1 : -1;
        return x->index < y->index ? -1 : x->index > y->index;
}

START_TEST(test_top_keeps_slowest) {
        /* Random durations against a full sort, with many ties. */
        for (unsigned seed = 1; seed <= 50; seed++) {
                StatsSlow all[500], got[STATS_SLOW_MAX];
                StatsTop t = {};
                uint32_t n;

                srand(seed);
                for (uint64_t i = 0; i < ELEMENTSOF(all); i++) {
                        all[i] = (StatsSlow){ .index = i, .usec = (uint64_t) (rand() % 300) };
                        (void) stats_top_add(&t, i, all[i].usec);
                }
                qsort(all, ELEMENTSOF(all), sizeof(all[0]), cmp_desc);
                n = stats_top_sorted(&t, got);
                ck_assert_uint_eq(n, STATS_SLOW_MAX);
                /* The durations are the ten largest; a tie at the tenth may
                 * keep another index of the same duration. */
                for (uint32_t k = 0; k < n; k++)
                        ck_assert_uint_eq(got[k].usec, all[k].usec);
                ck_assert_uint_eq(stats_top_floor(&t), all[STATS_SLOW_MAX - 1].usec);
        }
}
END_TEST

START_TEST(test_top_few_and_floor) {
        StatsSlow got[STATS_SLOW_MAX];
        StatsTop t = {};

        ck_assert_uint_eq(stats_top_floor(&t), 0);
        ck_assert(stats_top_add(&t, 7, 5));
        ck_assert(stats_top_add(&t, 3, 9));
        ck_assert_uint_eq(stats_top_sorted(&t, got), 2);
        ck_assert_uint_eq(got[0].index, 3);
        ck_assert_uint_eq(got[1].index, 7);
        /* Not full: anything goes in, and the floor stays 0. */
        ck_assert_uint_eq(stats_top_floor(&t), 0);
        for (uint64_t i = 100; i < 108; i++)
                ck_assert(stats_top_add(&t, i, 10));
        ck_assert_uint_eq(stats_top_floor(&t), 5);
        /* Full: no faster than the floor, nor as fast. */
        ck_assert(!stats_top_add(&t, 200, 5));
        ck_assert(!stats_top_add(&t, 201, 1));
        ck_assert(stats_top_add(&t, 202, 6));
        ck_assert_uint_eq(stats_top_floor(&t), 6);
}
END_TEST

START_TEST(test_top_same_index) {
        StatsSlow got[STATS_SLOW_MAX];
        StatsTop t = {};

        /* An item tried again is one entry, with its longer time. */
        ck_assert(stats_top_add(&t, 4, 10));
        ck_assert(!stats_top_add(&t, 4, 8));
        ck_assert(stats_top_add(&t, 4, 30));
        ck_assert(stats_top_add(&t, 5, 20));
        ck_assert_uint_eq(stats_top_sorted(&t, got), 2);
        ck_assert_uint_eq(got[0].index, 4);
        ck_assert_uint_eq(got[0].usec, 30);
        ck_assert_uint_eq(got[1].index, 5);
        /* Full, the index at the root grows: the heap stays one. */
        for (uint64_t i = 10; i < 18; i++)
                (void) stats_top_add(&t, i, 25 + i);
        ck_assert_uint_eq(stats_top_floor(&t), 20);
        ck_assert(stats_top_add(&t, 5, 100));
        ck_assert_uint_eq(stats_top_sorted(&t, got), STATS_SLOW_MAX);
        ck_assert_uint_eq(got[0].index, 5);
        ck_assert_uint_eq(stats_top_floor(&t), 30);
}
END_TEST

static uint64_t rate_sum(const StatsRate *r) {
        uint64_t s = 0;

        for (uint32_t k = 0; k < STATS_BUCKETS_MAX; k++)
                s += r->counts[k];
        return s;
}

START_TEST(test_rate_buckets) {
        StatsRate r;

        stats_rate_init(&r, 1000);
        ck_assert_uint_eq(r.bucket_usec, STATS_BUCKET_USEC_MIN);
        stats_rate_add(&r, 1000, 3);
        stats_rate_add(&r, 500, 1); /* before the start: the first bucket */
        stats_rate_add(&r, 1000 + 250000, 5);
        ck_assert_uint_eq(r.n, 3);
        ck_assert_uint_eq(r.counts[0], 4);
        ck_assert_uint_eq(r.counts[1], 0);
        ck_assert_uint_eq(r.counts[2], 5);
        stats_rate_extend(&r, 1000 + 999999);
        ck_assert_uint_eq(r.n, 10);
        ck_assert_uint_eq(rate_sum(&r), 9);
}
END_TEST

START_TEST(test_rate_coarsens) {
        StatsRate r;
        uint64_t t;

        /* One item every 10 ms for an hour: never more than the maximum of
         * buckets, the width doubling, nothing lost. */
        stats_rate_init(&r, 0);
        for (t = 0; t < 3600ull * 1000000; t += 10000) {
                stats_rate_add(&r, t, 1);
                ck_assert_uint_le(r.n, STATS_BUCKETS_MAX);
        }
        ck_assert_uint_eq(rate_sum(&r), 360000);
        /* 100 ms doubled until 120 buckets hold an hour: 51.2 s. */
        ck_assert_uint_eq(r.bucket_usec, 51200000);
        ck_assert_uint_eq(r.n, (uint32_t) ((t - 10000) / r.bucket_usec + 1));
        /* Evenly spread: every full bucket holds the same. */
        for (uint32_t k = 0; k + 1 < r.n; k++)
                ck_assert_uint_eq(r.counts[k], 5120);
        for (uint32_t k = r.n; k < STATS_BUCKETS_MAX; k++)
                ck_assert_uint_eq(r.counts[k], 0);
}
END_TEST

START_TEST(test_rate_jump) {
        StatsRate r;

        /* A jump far ahead coarsens as often as it takes, at once. */
        stats_rate_init(&r, 0);
        stats_rate_add(&r, 0, 7);
        stats_rate_add(&r, 100ull * 24 * 3600 * 1000000, 1);
        ck_assert_uint_le(r.n, STATS_BUCKETS_MAX);
        ck_assert_uint_eq(r.counts[0], 7);
        ck_assert_uint_eq(r.counts[r.n - 1], 1);
        ck_assert_uint_eq(rate_sum(&r), 8);
}
END_TEST

static void *stats_msg(uint32_t n_workers, size_t *len) {
        IpcStats *h;

        *len = sizeof(*h) + n_workers * sizeof(IpcStatsWorker);
        h = calloc(1, *len);
        ck_assert_ptr_nonnull(h);
        h->magic = IPC_STATS_MAGIC;
        h->n_workers = n_workers;
        h->n_buckets = 2;
        h->buckets[0] = 5;
        h->buckets[1] = 7;
        h->bucket_usec = STATS_BUCKET_USEC_MIN;
        h->n_slow = 1;
        h->slow[0] = (IpcStatsSlow){ .index = 3, .usec = 20000, .len = 2, .text = "20" };
        return h;
}

START_TEST(test_msg_check) {
        size_t len;
        IpcStats *h = stats_msg(2, &len);
        IpcStatsWorker *w = (IpcStatsWorker *) (void *) (h + 1);

        ck_assert_int_eq(stats_msg_check(h, len), 0);
        /* The length must be the workers' exactly. */
        ck_assert_int_eq(stats_msg_check(h, len - 1), -EBADMSG);
        ck_assert_int_eq(stats_msg_check(h, sizeof(*h) - 1), -EBADMSG);
        h->n_workers = 3;
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        h->n_workers = 2;
        /* Counts and values in bounds. */
        h->n_buckets = STATS_BUCKETS_MAX + 1;
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        h->n_buckets = 1; /* a count past the buckets in use */
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        h->n_buckets = 2;
        h->bucket_usec = 1;
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        h->bucket_usec = STATS_BUCKET_USEC_MIN;
        w[1].busy_usec = STATS_VALUE_MAX;
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        w[1].busy_usec = 0;
        h->n_slow = STATS_SLOW_MAX + 1;
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        h->n_slow = 1;
        /* A text without its NUL, or longer than the item. */
        memset(h->slow[0].text, 'x', sizeof(h->slow[0].text));
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        strcpy(h->slow[0].text, "200");
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        h->slow[0].len = 3;
        ck_assert_int_eq(stats_msg_check(h, len), 0);
        h->magic++;
        ck_assert_int_eq(stats_msg_check(h, len), -EBADMSG);
        free(h);
}
END_TEST

static Suite *stats_suite(void) {
        Suite *s = suite_create("stats");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_top_keeps_slowest);
        tcase_add_test(tc, test_top_few_and_floor);
        tcase_add_test(tc, test_top_same_index);
        tcase_add_test(tc, test_rate_buckets);
        tcase_add_test(tc, test_rate_coarsens);
        tcase_add_test(tc, test_rate_jump);
        tcase_add_test(tc, test_msg_check);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(stats_suite());
}
