/* SPDX-License-Identifier: MIT */
/* A module built against the 1.0 header (tests/modules/abi-1.0), as a
 * module built before 1.1 was: its definition is shorter, and it must
 * still load and run with every callback it has. */
#include <mplock/module.h>

static int v10_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                       mplock_results *out) {
        (void) ctx;
        (void) state;
        for (size_t i = 0; i < n; i++)
                mplock_result_printf(out, i, "v10:%s", items[i].data);
        return 0;
}

static int v10_save(const mplock_ctx *ctx, const mplock_entry *entries, size_t n) {
        (void) ctx;
        (void) entries;
        return n > 0 ? 0 : -22;
}

MPLOCK_MODULE_DEFINE(.name = "v10", .process = v10_process, .save = v10_save);
