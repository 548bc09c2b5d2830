/* SPDX-License-Identifier: MIT */
/* A valid module using every callback, for test-module: init reads the
 * shared data through the host API, process answers "<prefix><item>" or
 * fails items that start with '!', save counts what it is given. */
#include <errno.h>
#include <mplock/module.h>

typedef struct State {
        const char *prefix;
        int64_t fail_code;
} State;

static State the_state;
static size_t saved;

static int good_init(const mplock_ctx *ctx, void **state) {
        int r;

        r = ctx->api->shared_string(ctx, "prefix", &the_state.prefix);
        if (r == -ENOENT)
                the_state.prefix = "";
        else if (r < 0)
                return r;
        r = ctx->api->shared_int(ctx, "fail_code", &the_state.fail_code);
        if (r == -ENOENT)
                the_state.fail_code = -42;
        else if (r < 0)
                return r;
        *state = &the_state;
        return 0;
}

static int good_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                        mplock_results *out) {
        const State *s = state;

        (void) ctx;
        for (size_t i = 0; i < n; i++) {
                if (items[i].len > 0 && items[i].data[0] == '!')
                        mplock_result_error(out, i, (int32_t) s->fail_code, items[i].data + 1);
                else
                        mplock_result_printf(out, i, "%s%s", s->prefix, items[i].data);
        }
        return 0;
}

static int good_save(const mplock_ctx *ctx, const mplock_entry *entries, size_t n) {
        (void) ctx;
        (void) entries;
        saved += n;
        return (int) saved;
}

MPLOCK_MODULE_DEFINE(.name = "good", .init = good_init, .process = good_process, .save = good_save);
