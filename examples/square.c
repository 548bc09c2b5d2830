/* SPDX-License-Identifier: MIT */
/* square: each item is an integer; its result is the square, in decimal.
 * The Python mp_lock library's own test: items "0".."9" sum to 285.
 *
 * Shared data: "sleep_us" (default 0) makes each item take that long, to
 * pace demos and crash tests.
 *
 * Its save callback appends "index<TAB>result" lines to OUTPUT/square.saved,
 * to show how a save callback sees batches. Like every save callback it is
 * at-least-once: after a crash, a batch may be appended again (see
 * cut_torn_tail for the one thing that needs care). */
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

/* A save killed half-way (its runner died) leaves a torn last line. That
 * batch was not committed, so mplock gives it to save again: cut the torn
 * line off before appending, and nothing is lost or garbled. */
static int cut_torn_tail(int fd) {
        char buf[4096];
        off_t size = lseek(fd, 0, SEEK_END), pos;

        if (size < 0)
                return -errno;
        for (pos = size; pos > 0;) {
                size_t n = pos < (off_t) sizeof(buf) ? (size_t) pos : sizeof(buf);
                ssize_t k = pread(fd, buf, n, pos - (off_t) n);
                if (k != (ssize_t) n)
                        return -EIO;
                for (size_t i = n; i > 0; i--)
                        if (buf[i - 1] == '\n') {
                                off_t end = pos - (off_t) n + (off_t) i;
                                return end == size || ftruncate(fd, end) == 0 ? 0 : -errno;
                        }
                pos -= (off_t) n;
        }
        return size == 0 || ftruncate(fd, 0) == 0 ? 0 : -errno;
}

static int square_save(const mplock_ctx *ctx, const mplock_entry *entries, size_t n) {
        char path[4096], *buf;
        size_t len = 0;
        int fd, r;

        snprintf(path, sizeof(path), "%s/square.saved", ctx->output_dir);
        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        r = cut_torn_tail(fd);
        /* The whole batch in one write: at most one torn line. */
        buf = malloc(n * 64 + 1);
        if (r == 0 && !buf)
                r = -ENOMEM;
        for (size_t i = 0; r == 0 && i < n; i++)
                if (entries[i].status == 0)
                        len += (size_t) snprintf(buf + len, 64, "%llu\t%.*s\n", (unsigned long long) entries[i].index,
                                                 (int) (entries[i].result_len < 40 ? entries[i].result_len : 40),
                                                 entries[i].result);
        if (r == 0 && write(fd, buf, len) != (ssize_t) len)
                r = -EIO;
        /* Durable before we return: mplock commits the batch after this. */
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        free(buf);
        if (close(fd) < 0 && r == 0)
                r = -EIO;
        return r;
}

MPLOCK_MODULE_DEFINE(.name = "square", .process = square_process, .save = square_save);
