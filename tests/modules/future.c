/* SPDX-License-Identifier: MIT */
/* A module that needs a minor version of the ABI this host lacks. */
#include <mplock/module.h>

static int future_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                          mplock_results *out) {
        (void) ctx;
        (void) state;
        (void) items;
        (void) n;
        (void) out;
        return 0;
}

__attribute__((visibility("default"))) const struct mplock_module mplock_module = {
        .abi_version = MPLOCK_ABI_MAJOR,
        .size = sizeof(struct mplock_module),
        .abi_minor = 99,
        .name = "future",
        .process = future_process,
};
