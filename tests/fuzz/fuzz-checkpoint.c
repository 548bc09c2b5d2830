/* SPDX-License-Identifier: MIT */
/* Fuzz target: checkpoint recovery of a damaged or hostile state
 * directory. The input is cut in two: a snapshot (may be empty: none) and
 * a log. The item count comes from the first bytes. Recovery must either
 * refuse (-EBADMSG and such) or produce a state that is consistent, and a
 * commit after it must work. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fileio.h"
#include "fuzz-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put(int dirfd, const char *name, const uint8_t *data, size_t len) {
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write_full(fd, data, len) < 0)
                abort();
        close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int dirfd = fuzz_scratch_dir("ckpt");
        uint64_t n_items;
        uint16_t split;
        Checkpoint c;

        if (size < 4)
                return 0;
        n_items = 1 + (data[0] | (uint64_t) data[1] << 8) % 5000;
        /* Chunks of 64 to 8,192 items: small jobs cross chunk boundaries. */
        checkpoint_chunk_shift = BITSET_SHIFT_MIN + (data[2] & 7);
        split = (uint16_t) (data[2] | data[3] << 8);
        data += 4;
        size -= 4;
        if (split > size)
                split = (uint16_t) size;
        (void) unlinkat(dirfd, CKPT_SNAP, 0);
        if (split > 0)
                put(dirfd, CKPT_SNAP, data, split);
        put(dirfd, CKPT_LOG, data + split, size - split);

        if (checkpoint_open(&c, dirfd, n_items) < 0)
                return 0;
        /* What recovery accepted must add up. */
        if (c.done > n_items || c.failed > c.done || c.bits.count != c.done)
                abort();
        {
                uint64_t n = 0;
                for (uint64_t i = 0; i < n_items; i++)
                        n += bitset_test(&c.bits, i);
                if (n != c.done)
                        abort();
        }
        /* And the log must take a new commit after it. */
        for (uint64_t i = 0; i < n_items; i++)
                if (!bitset_test(&c.bits, i)) {
                        IpcRange r = { i, 1 };
                        IpcCommit cm = { .results_len = c.results_len + 1, .done_total = c.done + 1,
                                         .failed_total = c.failed, .n_ranges = 1 };
                        if (checkpoint_commit(&c, &cm, &r) < 0)
                                abort();
                        break;
                }
        checkpoint_close(&c);
        return 0;
}
