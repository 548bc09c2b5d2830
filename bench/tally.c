/* SPDX-License-Identifier: MIT */
/* tally: echo, and counts every item it processes in a shared file
 * (shared data "counter": a file of TALLY_SLOTS 64-bit counters, one per
 * worker number). The counts survive the workers being killed, so after a
 * crash and resume their sum minus the job's item count is the number of
 * items processed more than once. One relaxed atomic add per call: no
 * syscall on the hot path. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mplock/module.h>

#define TALLY_SLOTS 64

static int tally_init(const mplock_ctx *ctx, void **state) {
        const char *path;
        void *m;
        int fd;

        if (ctx->api->shared_string(ctx, "counter", &path) < 0)
                return -EINVAL;
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        m = mmap(NULL, TALLY_SLOTS * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
                return -errno;
        *state = (uint64_t *) m + ctx->worker % TALLY_SLOTS;
        return 0;
}

static int tally_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                         mplock_results *out) {
        (void) ctx;
        for (size_t i = 0; i < n; i++)
                mplock_result_set(out, i, items[i].data, items[i].len);
        __atomic_fetch_add((uint64_t *) state, n, __ATOMIC_RELAXED);
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "tally", .init = tally_init, .process = tally_process);
