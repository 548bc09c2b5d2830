/* SPDX-License-Identifier: MIT */
/* echo: the result is the item itself. Does nothing else, which makes it
 * the module for measuring mplock's own overhead per item. */
#include <mplock/module.h>

static int echo_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                        mplock_results *out) {
        (void) ctx;
        (void) state;
        for (size_t i = 0; i < n; i++)
                mplock_result_set(out, i, items[i].data, items[i].len);
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "echo", .process = echo_process);
