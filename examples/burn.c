/* SPDX-License-Identifier: MIT */
/* burn: spins the CPU for shared "ms" milliseconds (default 5) per item, or
 * "us" microseconds if given, or with shared "per_item" true for as many
 * milliseconds as the item says ("20"), then returns the item. For
 * measuring how well work is spread, and items of known durations. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <mplock/module.h>

typedef struct {
        int64_t ns;
        int per_item; /* shared_bool's */
} Burn;

static int burn_init(const mplock_ctx *ctx, void **state) {
        Burn *b = calloc(1, sizeof(*b));
        int64_t ms = 5, us = -1;

        if (!b)
                return -12;
        if (ctx->api->shared_int(ctx, "ms", &ms) == -22 || ms < 0 || ctx->api->shared_int(ctx, "us", &us) == -22 ||
            ctx->api->shared_bool(ctx, "per_item", &b->per_item) == -22) {
                free(b);
                return -22; /* "ms" and "us" must be non-negative integers, "per_item" a boolean */
        }
        b->ns = us >= 0 ? us * 1000 : ms * 1000000;
        *state = b;
        return 0;
}

static int64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Where the busy work goes, so that the compiler keeps it. */
static volatile uint64_t burn_sink;

static int burn_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                        mplock_results *out) {
        const Burn *b = state;
        uint64_t x = 0;

        (void) ctx;
        for (size_t i = 0; i < n; i++) {
                int64_t end = now_ns() + (b->per_item ? strtol(items[i].data, NULL, 10) * 1000000 : b->ns);
                /* CPU time, not wall time: the work is the same however busy
                 * the machine is. */
                while (now_ns() < end)
                        for (int k = 0; k < 1000; k++)
                                x += (uint64_t) k * (x | 1);
                burn_sink = x;
                mplock_result_set(out, i, items[i].data, items[i].len);
        }
        return 0;
}

static void burn_fini(const mplock_ctx *ctx, void *state) {
        (void) ctx;
        free(state);
}

MPLOCK_MODULE_DEFINE(.name = "burn", .init = burn_init, .process = burn_process, .fini = burn_fini);
