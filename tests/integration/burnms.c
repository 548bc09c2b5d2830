/* SPDX-License-Identifier: MIT */
/* burnms: a test module that spins the CPU for as many milliseconds as
 * its item says ("20"), then returns the item: items of known, different
 * durations, for test_stats. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <mplock/module.h>

static int64_t cpu_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static volatile uint64_t burn_sink;

static int burnms_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                          mplock_results *out) {
        (void) ctx;
        (void) state;
        for (size_t i = 0; i < n; i++) {
                /* CPU time: at least that long on the wall, however busy
                 * the machine is. */
                int64_t end = cpu_ns() + strtol(items[i].data, NULL, 10) * 1000000;
                uint64_t x = 0;

                while (cpu_ns() < end)
                        for (int k = 0; k < 1000; k++)
                                x += (uint64_t) k * (x | 1);
                burn_sink = x;
                mplock_result_set(out, i, items[i].data, items[i].len);
        }
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "burnms", .process = burnms_process);
