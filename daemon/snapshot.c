/* SPDX-License-Identifier: MIT */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "bytescan.h"
#include "crc32c.h"
#include "fileio.h"

void snapshot_init(Snapshot *s, int fd, uint64_t max_bytes, uint64_t max_items) {
        *s = (Snapshot){ .fd = fd, .max_bytes = max_bytes, .max_items = max_items };
}

/* Writeback of the window just filled starts now; the one before it is
 * waited for, so that dirty data stays bounded (an fsync of a huge
 * snapshot at the end would stall the event loop). */
static void snapshot_writeback(Snapshot *s) {
        while (s->bytes - s->synced >= SNAPSHOT_WINDOW) {
                (void) sync_file_range(s->fd, (off_t) s->synced, SNAPSHOT_WINDOW, SYNC_FILE_RANGE_WRITE);
                if (s->synced >= SNAPSHOT_WINDOW)
                        (void) sync_file_range(s->fd, (off_t) (s->synced - SNAPSHOT_WINDOW), SNAPSHOT_WINDOW,
                                               SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                                       SYNC_FILE_RANGE_WAIT_AFTER);
                s->synced += SNAPSHOT_WINDOW;
        }
}

int snapshot_write(Snapshot *s, const void *data, size_t len) {
        uint64_t items;
        int r;

        if (len == 0)
                return 0;
        if (len > s->max_bytes - s->bytes)
                return -EFBIG;
        items = bytes_count(data, len, 0);
        if (items > s->max_items - s->items)
                return -E2BIG;
        r = pwrite_full(s->fd, data, len, (off_t) s->bytes);
        if (r < 0)
                return r;
        s->crc = crc32c(s->crc, data, len);
        s->bytes += len;
        s->items += items;
        s->last = ((const char *) data)[len - 1];
        snapshot_writeback(s);
        return 0;
}

int snapshot_finish(Snapshot *s) {
        /* Synced by whoever makes the job durable: its journal record, or
         * an fsync of its files. */
        return s->bytes > 0 && s->last != '\0' ? -EBADMSG : 0;
}
