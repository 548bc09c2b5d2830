/* SPDX-License-Identifier: MIT */
/* square: each item is an integer; its result is the square, in decimal.
 * The Python mp_lock library's own test: items "0".."9" sum to 285.
 *
 * Shared data: "sleep_us" (default 0) makes each item take that long, to
 * pace demos and crash tests.
 *
 * Its save callback appends "index<TAB>result" lines to OUTPUT/square.saved,
 * to show how a save callback sees batches. Like every save callback it is
 * at-least-once: after a crash, a batch may be appended again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <mplock/module.h>

static int square_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                          mplock_results *out) {
        int64_t us = 0;

        (void) state;
        (void) ctx->api->shared_int(ctx, "sleep_us", &us);
        for (size_t i = 0; i < n; i++) {
                char *end;
                long long v;

                if (us > 0) {
                        struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
                        nanosleep(&ts, NULL);
                }

                errno = 0;
                v = strtoll(items[i].data, &end, 10);
                if (errno != 0 || end == items[i].data || *end != '\0' || v > 3037000499LL || v < -3037000499LL)
                        mplock_result_error(out, i, EINVAL, "not an integer in range");
                else
                        mplock_result_printf(out, i, "%lld", v * v);
        }
        return 0;
}

static int square_save(const mplock_ctx *ctx, const mplock_entry *entries, size_t n) {
        char path[4096];
        FILE *f;
        int fd;

        snprintf(path, sizeof(path), "%s/square.saved", ctx->output_dir);
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        f = fdopen(fd, "a");
        if (!f) {
                close(fd);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                if (entries[i].status == 0)
                        fprintf(f, "%llu\t%.*s\n", (unsigned long long) entries[i].index, (int) entries[i].result_len,
                                entries[i].result);
        /* Durable before we return: mplock commits the batch after this. */
        if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
                fclose(f);
                return -EIO;
        }
        return fclose(f) == 0 ? 0 : -EIO;
}

MPLOCK_MODULE_DEFINE(.name = "square", .process = square_process, .save = square_save);
