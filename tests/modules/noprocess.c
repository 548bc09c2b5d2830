/* SPDX-License-Identifier: MIT */
/* Right ABI, but without the one callback a module must have. */
#include <mplock/module.h>

static int noprocess_save(const mplock_ctx *ctx, const mplock_entry *entries, size_t n) {
        (void) ctx;
        (void) entries;
        (void) n;
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "noprocess", .process = NULL, .save = noprocess_save);
