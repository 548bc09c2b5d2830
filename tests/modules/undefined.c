/* SPDX-License-Identifier: MIT */
/* A module that needs a function nobody defines: dlopen(RTLD_NOW) must fail
 * at load time rather than the first item crashing. */
#include <mplock/module.h>

extern int mplock_no_such_function(void);

static int undefined_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                             mplock_results *out) {
        (void) ctx;
        (void) state;
        (void) items;
        (void) out;
        return mplock_no_such_function() + (int) n;
}

MPLOCK_MODULE_DEFINE(.name = "undefined", .process = undefined_process);
