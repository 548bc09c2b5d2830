/* SPDX-License-Identifier: MIT */
/* flaky: misbehaves on purpose, for tests. The shared data lists items (by
 * their text) for each misdeed:
 *   "fail":  the item gets an error (code 42)
 *   "segv":  the worker crashes with SIGSEGV
 *   "abort": the worker calls abort()
 *   "exit":  the worker calls exit(0) in the middle of process
 *   "hang":  the worker loops for ever
 *   "once":  the worker crashes the first time it sees the item, in each
 *            output directory (a marker file remembers), then succeeds
 *   "failonce": the item gets an error the first time only (a marker file)
 *   "gate":  the item gets an error while OUTPUT/flaky-gate exists
 *   "bigalloc": allocates and touches 10 GiB (an error if malloc fails)
 *   "closefds": closes descriptors 0 to 10, then answers
 *   "fork":  forks a child that sleeps 300 s, then answers
 * and "sleep_ms" makes every item take that long. Other items: result = item. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mplock/module.h>

static int listed(const mplock_ctx *ctx, const char *key, const char *item) {
        size_t n = 0;

        if (ctx->api->shared_array_size(ctx, key, &n) < 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                const char *s;
                if (ctx->api->shared_array_string(ctx, key, i, &s) == 0 && strcmp(s, item) == 0)
                        return 1;
        }
        return 0;
}

/* True the first time an item is seen with this tag in this output
 * directory: a marker file, created exclusively, remembers it. */
static int first_time(const mplock_ctx *ctx, const char *tag, const char *item) {
        char path[4096];
        int fd;

        snprintf(path, sizeof(path), "%s/flaky-%s-%s", ctx->output_dir, tag, item);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                return 0;
        close(fd);
        return 1;
}

static int flaky_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                         mplock_results *out) {
        int64_t ms = 0;

        (void) state;
        (void) ctx->api->shared_int(ctx, "sleep_ms", &ms);
        for (size_t i = 0; i < n; i++) {
                const char *it = items[i].data;

                if (ms > 0) {
                        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
                        nanosleep(&ts, NULL);
                }
                if (listed(ctx, "segv", it))
                        raise(SIGSEGV);
                if (listed(ctx, "abort", it))
                        abort();
                if (listed(ctx, "exit", it))
                        exit(0);
                if (listed(ctx, "hang", it))
                        for (;;)
                                pause();
                if (listed(ctx, "once", it) && first_time(ctx, "once", it))
                        raise(SIGKILL);
                if (listed(ctx, "bigalloc", it)) {
                        size_t big = (size_t) 10 << 30;
                        char *p = malloc(big);
                        if (!p) {
                                mplock_result_error(out, i, ENOMEM, "cannot allocate 10 GiB");
                                continue;
                        }
                        memset(p, 1, big);
                        free(p);
                }
                if (listed(ctx, "closefds", it))
                        for (int fd = 0; fd <= 10; fd++)
                                close(fd);
                if (listed(ctx, "fork", it) && fork() == 0) {
                        sleep(300); /* longer than any test waits for the job */
                        _exit(0);
                }
                if (listed(ctx, "failonce", it) && first_time(ctx, "failonce", it)) {
                        mplock_result_error(out, i, 43, "flaky fails this item once");
                        continue;
                }
                if (listed(ctx, "gate", it)) {
                        char path[4096];
                        snprintf(path, sizeof(path), "%s/flaky-gate", ctx->output_dir);
                        if (access(path, F_OK) == 0) {
                                mplock_result_error(out, i, 44, "flaky's gate is closed");
                                continue;
                        }
                }
                if (listed(ctx, "fail", it)) {
                        char msg[256];
                        snprintf(msg, sizeof(msg), "flaky refuses item %s", it);
                        mplock_result_error(out, i, 42, msg);
                        continue;
                }
                mplock_result_set(out, i, it, items[i].len);
        }
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "flaky", .process = flaky_process);
