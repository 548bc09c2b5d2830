/* SPDX-License-Identifier: MIT */
/* A module built for an ABI version this mplock does not know, spelled out
 * by hand instead of with MPLOCK_MODULE_DEFINE. */
#include <mplock/module.h>

static int badabi_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                          mplock_results *out) {
        (void) ctx;
        (void) state;
        (void) items;
        (void) n;
        (void) out;
        return 0;
}

__attribute__((visibility("default"))) const struct mplock_module mplock_module = {
        .abi_version = 999,
        .size = sizeof(struct mplock_module),
        .name = "badabi",
        .process = badabi_process,
};
