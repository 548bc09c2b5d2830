/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "syncer.h"
#include "test-util.h"

/* The syncer runs work in its own thread, one at a time, in the order
 * queued, and hands each end back in the loop in that order; a drain
 * waits for all of it and delivers the ends itself. */

#define N 50

typedef struct Log {
        pthread_t loop_thread;
        int ran[N], n_ran;     /* by the works, in the thread */
        int ended[N], n_ended; /* by the dones, in the loop */
        bool off_loop, overlap;
        int running;
} Log;

typedef struct Item {
        Log *log;
        int no;
} Item;

static int work(void *arg) {
        Item *it = arg;
        Log *l = it->log;

        if (__atomic_add_fetch(&l->running, 1, __ATOMIC_SEQ_CST) > 1)
                l->overlap = true;
        if (!pthread_equal(pthread_self(), l->loop_thread))
                l->off_loop = true;
        usleep(200); /* long enough for a second thread to be seen */
        l->ran[l->n_ran++] = it->no;
        __atomic_sub_fetch(&l->running, 1, __ATOMIC_SEQ_CST);
        return it->no % 7 == 0 ? -EIO : 0;
}

static void done(int r, void *arg) {
        Item *it = arg;
        Log *l = it->log;

        ck_assert(pthread_equal(pthread_self(), l->loop_thread));
        ck_assert_int_eq(r, it->no % 7 == 0 ? -EIO : 0);
        l->ended[l->n_ended++] = it->no;
        free(it);
}

static void queue_n(Syncer *s, Log *l, int from, int to) {
        for (int i = from; i < to; i++) {
                Item *it = malloc(sizeof(*it));
                ck_assert_ptr_nonnull(it);
                *it = (Item){ l, i };
                ck_assert_int_eq(syncer_queue(s, work, done, it), 0);
        }
}

START_TEST(test_work_runs_in_order_off_the_loop_and_ends_in_the_loop) {
        sd_event *e = NULL;
        Syncer *s = NULL;
        Log l = { .loop_thread = pthread_self() };

        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(syncer_new(&s, e), 0);
        queue_n(s, &l, 0, N);
        /* The loop hears of the ends through its eventfd. */
        for (int k = 0; k < 10000 && l.n_ended < N; k++)
                ck_assert_int_ge(sd_event_run(e, 100000), 0);
        ck_assert_int_eq(l.n_ran, N);
        ck_assert_int_eq(l.n_ended, N);
        for (int i = 0; i < N; i++) {
                ck_assert_int_eq(l.ran[i], i);
                ck_assert_int_eq(l.ended[i], i);
        }
        ck_assert(l.off_loop);
        ck_assert(!l.overlap);
        s = syncer_free(s);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_a_drain_delivers_every_end_without_the_loop) {
        sd_event *e = NULL;
        Syncer *s = NULL;
        Log l = { .loop_thread = pthread_self() };

        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(syncer_new(&s, e), 0);
        queue_n(s, &l, 0, 20);
        syncer_drain(s);
        ck_assert_int_eq(l.n_ran, 20);
        ck_assert_int_eq(l.n_ended, 20);
        for (int i = 0; i < 20; i++)
                ck_assert_int_eq(l.ended[i], i);
        /* Nothing is delivered twice when the loop comes to the eventfd. */
        ck_assert_int_ge(sd_event_run(e, 0), 0);
        ck_assert_int_eq(l.n_ended, 20);
        /* Freeing drains what is still queued. */
        queue_n(s, &l, 20, 30);
        s = syncer_free(s);
        ck_assert_ptr_null(s);
        ck_assert_int_eq(l.n_ended, 30);
        ck_assert_int_eq(l.ended[29], 29);
        sd_event_unref(e);
}
END_TEST

START_TEST(test_a_drain_of_none_is_nothing) {
        syncer_drain(NULL);
        ck_assert_ptr_null(syncer_free(NULL));
}
END_TEST

static Suite *syncer_suite(void) {
        Suite *s = suite_create("syncer");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_work_runs_in_order_off_the_loop_and_ends_in_the_loop);
        tcase_add_test(tc, test_a_drain_delivers_every_end_without_the_loop);
        tcase_add_test(tc, test_a_drain_of_none_is_nothing);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(syncer_suite());
}
