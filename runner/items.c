/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "bytescan.h"
#include "crc32c.h"
#include "macro.h"
#include "items.h"

int items_open(Items *it, int fd, uint64_t n, uint64_t bytes, uint32_t crc, char *err, size_t errlen) {
        struct stat st;
        uint64_t nidx;

        *it = (Items){};
        if (fstat(fd, &st) < 0) {
                (void) snprintf(err, errlen, "cannot stat the input snapshot: %s", strerror(errno));
                return -errno;
        }
        if ((uint64_t) st.st_size != bytes) {
                (void) snprintf(err, errlen, "input snapshot has %llu bytes, expected %llu: the job's state is damaged",
                                (unsigned long long) st.st_size, (unsigned long long) bytes);
                return -EBADMSG;
        }
        /* Every item takes at least its NUL: more items than bytes is a
         * damaged job description, and would overflow the index size. */
        if (n > bytes && bytes > 0) {
                (void) snprintf(err, errlen, "job claims %llu items in a %llu-byte snapshot: its state is damaged",
                                (unsigned long long) n, (unsigned long long) bytes);
                return -EBADMSG;
        }
        if (bytes == 0 && n != 0) {
                (void) snprintf(err, errlen, "input snapshot is empty but should hold %llu items",
                                (unsigned long long) n);
                return -EBADMSG;
        }
        nidx = (n + ITEMS_STRIDE - 1) / ITEMS_STRIDE;
        it->index = calloc(nidx ? nidx : 1, sizeof(uint64_t));
        if (!it->index) {
                (void) snprintf(err, errlen, "out of memory for the index of %llu items", (unsigned long long) n);
                return -ENOMEM;
        }
        it->n = n;
        if (bytes == 0)
                return 0;
        /* Shared and read-only: every worker reads the same page cache. */
        it->map = mmap(NULL, (size_t) bytes, PROT_READ, MAP_SHARED, fd, 0);
        if (it->map == MAP_FAILED) {
                it->map = NULL;
                (void) snprintf(err, errlen, "cannot map the input snapshot: %s", strerror(errno));
                items_close(it);
                return -errno;
        }
        it->size = (size_t) bytes;
        (void) madvise(UNCONST(it->map), it->size, MADV_SEQUENTIAL);

        /* The list must not have changed since it was submitted. */
        if (crc32c(0, it->map, it->size) != crc) {
                (void) snprintf(err, errlen, "input snapshot does not match its fingerprint: the job's state is damaged");
                items_close(it);
                return -EBADMSG;
        }
        /* n items, each ended by its NUL, the last at the end. */
        if (bytes_index(it->map, it->size, 0, ITEMS_STRIDE, it->index, nidx) != n ||
            it->map[it->size - 1] != '\0') {
                (void) snprintf(err, errlen, "input snapshot does not hold %llu items: the job's state is damaged",
                                (unsigned long long) n);
                items_close(it);
                return -EBADMSG;
        }
        (void) madvise(UNCONST(it->map), it->size, MADV_NORMAL);
        return 0;
}

void items_close(Items *it) {
        if (it->map)
                (void) munmap(UNCONST(it->map), it->size);
        free(it->index);
        *it = (Items){};
}

uint64_t items_offset(const Items *it, uint64_t i) {
        uint64_t off = it->index[i / ITEMS_STRIDE];

        for (uint64_t k = i - i % ITEMS_STRIDE; k < i; k++)
                off += strlen(it->map + off) + 1;
        return off;
}
