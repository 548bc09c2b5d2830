/* SPDX-License-Identifier: MIT */
/* Fuzz target: a results file, as mplockctl and the daemon's Results
 * method read it (it lives in a user's directory: anything can be there). */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fileio.h"
#include "results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static int fd = -1;
        ResultsFile f;

        if (fd < 0) {
                fd = memfd_create("results", MFD_CLOEXEC);
                if (fd < 0)
                        abort();
        }
        if (ftruncate(fd, 0) < 0 || pwrite_full(fd, data, size, 0) < 0)
                abort();
        /* Both ways: up to a committed length, and the whole file. */
        for (int strict = 0; strict < 2; strict++) {
                if (results_file_open(&f, fd, strict ? size : UINT64_MAX, 100000) < 0)
                        continue;
                for (size_t k = 0; k < f.n_blocks; k++) {
                        ResultsBlockHeader h;
                        const char *payload;
                        ResultsItemIter it;
                        ResultsItem item;
                        if (results_file_read_block(&f, k, &h, &payload) < 0)
                                continue;
                        results_item_iter_init(&it, &h, payload);
                        while (results_item_iter_next(&it, &item))
                                /* A block of version 1 has no joblog. */
                                if (item.index >= 100000 ||
                                    (h.magic == RESULTS_BLOCK_MAGIC && (item.meta.attempts || item.meta.run_usec)))
                                        abort();
                }
                results_file_close(&f);
        }
        return 0;
}
