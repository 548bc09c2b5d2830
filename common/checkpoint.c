/* SPDX-License-Identifier: MIT */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

#define CKPT_COMPACT_DEFAULT (4u * 1024u * 1024u)

static void log_header_init(CkptLogHeader *h, uint64_t n_items, uint32_t gen) {
        memset(h, 0, sizeof(*h));
        memcpy(h->magic, CKPT_LOG_MAGIC, 8);
        h->version = CKPT_VERSION;
        h->gen = gen;
        h->n_items = n_items;
        h->crc = crc32c(0, h, offsetof(CkptLogHeader, crc));
}

int checkpoint_create(int dirfd, uint64_t n_items) {
        CkptLogHeader h;

        log_header_init(&h, n_items, 0);
        return write_file_atomic_at(dirfd, CKPT_LOG, &h, sizeof(h), 0600);
}

int checkpoint_create_empty(int dirfd) {
        int fd = openat(dirfd, CKPT_LOG, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0)
                return -errno;
        safe_close(fd);
        return 0;
}

int checkpoint_restart(int dirfd, uint64_t n_items, uint32_t gen) {
        CkptLogHeader h;

        /* The snapshot first: a snapshot of the old generation must never
         * stand beside the new log. (Until the new log is in place the job
         * is still its old, ended self, whose checkpoint nothing reads.) */
        if (unlinkat(dirfd, CKPT_SNAP, 0) < 0 && errno != ENOENT)
                return -errno;
        if (fsync_dirfd(dirfd) < 0)
                return -errno;
        log_header_init(&h, n_items, gen);
        return write_file_atomic_at(dirfd, CKPT_LOG, &h, sizeof(h), 0600);
}

static uint32_t record_crc(const CkptRecord *rec, const IpcRange *ranges) {
        CkptRecord copy = *rec;

        copy.crc = 0;
        return crc32c(crc32c(0, &copy, sizeof(copy)), ranges, (size_t) rec->n_ranges * sizeof(IpcRange));
}

/* Checks a set of ranges against the bitmap: in bounds, disjoint from what
 * is committed and from each other. Returns the number of items or -EINVAL. */
static int64_t ranges_check(const Checkpoint *c, const IpcRange *ranges, uint32_t n) {
        uint64_t total = 0;

        for (uint32_t i = 0; i < n; i++) {
                const IpcRange *r = &ranges[i];
                if (r->count == 0 || r->first >= c->n_items || r->count > c->n_items - r->first)
                        return -EINVAL;
                if (bitset_any_in_range(&c->bits, r->first, r->count))
                        return -EINVAL;
                /* Ranges within one record are sent sorted and coalesced by
                 * runners; demand it, so overlap checks stay linear. */
                if (i > 0 && ranges[i - 1].first + ranges[i - 1].count > r->first)
                        return -EINVAL;
                total += r->count;
        }
        return (int64_t) total;
}

static int snapshot_load(Checkpoint *c) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint64_t *buf = NULL;
        CkptSnapHeader h;
        size_t bytes = (size_t) bitmap_words(c->n_items) * sizeof(uint64_t);
        struct stat st;
        ssize_t n;
        uint32_t crc, bitmap_crc = 0;
        int r;

        fd = openat(c->dirfd, CKPT_SNAP, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size != sizeof(h) + bytes)
                return -EBADMSG;
        n = read_full(fd, &h, sizeof(h));
        if (n < 0)
                return (int) n;
        crc = crc32c(0, &h, offsetof(CkptSnapHeader, crc));
        if ((size_t) n != sizeof(h) || memcmp(h.magic, CKPT_SNAP_MAGIC, 8) != 0 || h.version != CKPT_VERSION ||
            h.header_size != sizeof(h) || h.crc != crc || h.n_items != c->n_items || h.done > c->n_items ||
            h.failed > h.done)
                return -EBADMSG;
        /* A chunk at a time, so that the whole bitmap is never in memory. */
        buf = malloc((c->bits.n_chunks ? bitset_chunk_words(&c->bits, 0) : 1) * sizeof(uint64_t));
        if (!buf)
                return -ENOMEM;
        for (uint64_t k = 0; k < c->bits.n_chunks; k++) {
                size_t len = (size_t) bitset_chunk_words(&c->bits, k) * sizeof(uint64_t);
                n = read_full(fd, buf, len);
                if (n < 0)
                        return (int) n;
                if ((size_t) n != len)
                        return -EBADMSG;
                bitmap_crc = crc32c(bitmap_crc, buf, len);
                /* Bits past n_items must be clear (-EBADMSG otherwise). */
                r = bitset_load_chunk(&c->bits, k, buf);
                if (r < 0)
                        return r;
        }
        if (bitmap_crc != h.bitmap_crc || c->bits.count != h.done)
                return -EBADMSG;
        c->seq = h.seq;
        c->results_len = h.results_len;
        c->done = h.done;
        c->failed = h.failed;
        return 0;
}

/* Replays the log; cuts it back at the first bad record. */
static int log_replay(Checkpoint *c) {
        _cleanup_free_ IpcRange *ranges = NULL;
        size_t ranges_cap = 0;
        CkptLogHeader h;
        struct stat st;
        uint64_t off, snap_seq;
        ssize_t n;

        if (fstat(c->log_fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        n = pread_full(c->log_fd, &h, sizeof(h), 0);
        if (n < 0)
                return (int) n;
        if ((size_t) n != sizeof(h) || memcmp(h.magic, CKPT_LOG_MAGIC, 8) != 0 || h.version != CKPT_VERSION ||
            h.crc != crc32c(0, &h, offsetof(CkptLogHeader, crc)) || h.n_items != c->n_items)
                return -EBADMSG;
        c->gen = h.gen;

        snap_seq = c->seq;
        off = sizeof(h);
        for (;;) {
                CkptRecord rec;
                size_t rbytes;
                int64_t total;

                n = pread_full(c->log_fd, &rec, sizeof(rec), (off_t) off);
                if (n < 0)
                        return (int) n;
                if ((size_t) n < sizeof(rec))
                        break;
                if (rec.magic != CKPT_RECORD_MAGIC || rec.n_ranges == 0 || rec.n_ranges > IPC_COMMIT_RANGES_MAX)
                        break;
                rbytes = (size_t) rec.n_ranges * sizeof(IpcRange);
                if (rec.n_ranges > ranges_cap) {
                        IpcRange *nr = realloc(ranges, rbytes);
                        if (!nr)
                                return -ENOMEM;
                        ranges = nr;
                        ranges_cap = rec.n_ranges;
                }
                n = pread_full(c->log_fd, ranges, rbytes, (off_t) (off + sizeof(rec)));
                if (n < 0)
                        return (int) n;
                if ((size_t) n < rbytes || record_crc(&rec, ranges) != rec.crc)
                        break;
                if (rec.seq <= snap_seq && c->recovered_records == 0) {
                        /* Already in the snapshot (a crash between writing
                         * the snapshot and replacing the log): such records
                         * can only come first. */
                        off += sizeof(rec) + rbytes;
                        continue;
                }
                if (rec.seq != c->seq + 1)
                        break;
                total = ranges_check(c, ranges, rec.n_ranges);
                if (total < 0 || rec.done_total != c->done + (uint64_t) total || rec.failed_total < c->failed ||
                    rec.failed_total - c->failed > (uint64_t) total || rec.results_len < c->results_len)
                        break;
                for (uint32_t i = 0; i < rec.n_ranges; i++) {
                        /* Out of memory is not damage: fail, cut nothing. */
                        int q = bitset_set_range(&c->bits, ranges[i].first, ranges[i].count);
                        if (q < 0)
                                return q;
                }
                c->seq = rec.seq;
                c->done = rec.done_total;
                c->failed = rec.failed_total;
                c->results_len = rec.results_len;
                c->recovered_records++;
                off += sizeof(rec) + rbytes;
        }

        if ((uint64_t) st.st_size > off && !c->read_only) {
                /* A torn or corrupt tail: nothing after it was acknowledged as
                 * durable in order, so cut it off before appending again. */
                c->torn_bytes = (uint64_t) st.st_size - off;
                if (ftruncate(c->log_fd, (off_t) off) < 0)
                        return -errno;
                if (fsync(c->log_fd) < 0)
                        return -errno;
        }
        c->log_size = off;
        return 0;
}

/* 1 if the log holds no header yet: created empty with the job, or torn
 * in the job's first commit (which writes header and record together, so
 * a log shorter than a header never held a durable record). It is cut
 * back to empty, and the first commit writes the header. 0 otherwise. */
static int log_fresh(Checkpoint *c) {
        struct stat st;

        if (fstat(c->log_fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if ((uint64_t) st.st_size >= sizeof(CkptLogHeader) || c->seq != 0 || c->done != 0)
                return 0;
        if (st.st_size > 0 && !c->read_only) {
                c->torn_bytes = (uint64_t) st.st_size;
                if (ftruncate(c->log_fd, 0) < 0 || fsync(c->log_fd) < 0)
                        return -errno;
        }
        c->log_size = 0;
        return 1;
}

unsigned checkpoint_chunk_shift = BITSET_SHIFT_MAX;

static int open_as(Checkpoint *c, int dirfd, uint64_t n_items, bool read_only) {
        int r;

        *c = (Checkpoint){ .dirfd = dirfd, .log_fd = -1, .n_items = n_items, .read_only = read_only };
        r = bitset_init_shift(&c->bits, n_items, checkpoint_chunk_shift);
        if (r < 0)
                return r;
        r = snapshot_load(c);
        if (r < 0)
                goto fail;
        c->log_fd = openat(dirfd, CKPT_LOG, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW);
        if (c->log_fd < 0 && errno == ENOENT && c->seq == 0 && c->done == 0)
                /* Never committed: no log yet, and no snapshot (which only
                 * compaction of a log writes). The first commit makes it. */
                return 0;
        if (c->log_fd < 0) {
                r = errno == ENOENT ? -EBADMSG : -errno;
                goto fail;
        }
        r = log_fresh(c);
        if (r == 0)
                r = log_replay(c);
        if (r < 0)
                goto fail;
        return 0;
fail:
        checkpoint_close(c);
        return r;
}

int checkpoint_open(Checkpoint *c, int dirfd, uint64_t n_items) {
        return open_as(c, dirfd, n_items, false);
}

int checkpoint_peek(Checkpoint *c, int dirfd, uint64_t n_items) {
        return open_as(c, dirfd, n_items, true);
}

void checkpoint_close(Checkpoint *c) {
        c->log_fd = safe_close(c->log_fd);
        bitset_free(&c->bits);
}

/* The header of an empty log, written with the job's first record and
 * made durable by the same fdatasync. */
static int log_write_header(Checkpoint *c) {
        CkptLogHeader h;
        int r;

        log_header_init(&h, c->n_items, c->gen);
        r = pwrite_full(c->log_fd, &h, sizeof(h), 0);
        if (r < 0) {
                (void) ftruncate(c->log_fd, 0);
                return r;
        }
        c->log_size = sizeof(h);
        return 0;
}

/* The log of a job's first commit, for a job made without one, with its
 * header; its directory entry becomes durable with the commit. */
static int log_create(Checkpoint *c) {
        CkptLogHeader h;
        int fd, r;

        log_header_init(&h, c->n_items, c->gen);
        fd = openat(c->dirfd, CKPT_LOG, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        r = pwrite_full(fd, &h, sizeof(h), 0);
        if (r < 0) {
                (void) unlinkat(c->dirfd, CKPT_LOG, 0);
                safe_close(fd);
                return r;
        }
        c->log_fd = fd;
        c->log_size = sizeof(h);
        c->log_name_unsynced = true;
        return 0;
}

int checkpoint_commit(Checkpoint *c, const IpcCommit *commit, const IpcRange *ranges) {
        CkptRecord rec;
        int64_t total;
        int r;

        if (c->read_only)
                return -EROFS;
        if (commit->n_ranges == 0 || commit->n_ranges > IPC_COMMIT_RANGES_MAX)
                return -EINVAL;
        total = ranges_check(c, ranges, commit->n_ranges);
        if (total < 0)
                return (int) total;
        if (commit->done_total != c->done + (uint64_t) total || commit->failed_total < c->failed ||
            commit->failed_total - c->failed > (uint64_t) total || commit->results_len < c->results_len)
                return -EINVAL;
        /* Memory first: once the record is durable, applying it must not fail. */
        for (uint32_t i = 0; i < commit->n_ranges; i++) {
                r = bitset_reserve_range(&c->bits, ranges[i].first, ranges[i].count);
                if (r < 0)
                        return r;
        }

        rec = (CkptRecord){
                .magic = CKPT_RECORD_MAGIC,
                .n_ranges = commit->n_ranges,
                .seq = c->seq + 1,
                .results_len = commit->results_len,
                .done_total = commit->done_total,
                .failed_total = commit->failed_total,
        };
        rec.crc = record_crc(&rec, ranges);

        r = c->log_fd < 0 ? log_create(c) : c->log_size == 0 ? log_write_header(c) : 0;
        if (r < 0)
                return r;
        r = pwrite_full(c->log_fd, &rec, sizeof(rec), (off_t) c->log_size);
        if (r >= 0)
                r = pwrite_full(c->log_fd, ranges, (size_t) commit->n_ranges * sizeof(IpcRange),
                                (off_t) (c->log_size + sizeof(rec)));
        if (r >= 0 && fdatasync(c->log_fd) < 0)
                r = -errno;
        /* A new log: its name too, or the commit could vanish with it. */
        if (r >= 0 && c->log_name_unsynced) {
                if (fsync(c->dirfd) < 0)
                        r = -errno;
                else
                        c->log_name_unsynced = false;
        }
        if (r < 0) {
                /* Leave no half record for the next append to follow. */
                (void) ftruncate(c->log_fd, (off_t) c->log_size);
                return r;
        }

        for (uint32_t i = 0; i < commit->n_ranges; i++)
                (void) bitset_set_range(&c->bits, ranges[i].first, ranges[i].count); /* reserved */
        c->seq = rec.seq;
        c->done = commit->done_total;
        c->failed = commit->failed_total;
        c->results_len = commit->results_len;
        c->log_size += sizeof(rec) + (size_t) commit->n_ranges * sizeof(IpcRange);

        if (c->log_size > (c->compact_threshold ? c->compact_threshold : CKPT_COMPACT_DEFAULT)) {
                r = checkpoint_compact(c);
                if (r < 0)
                        /* The commit itself is durable; compaction can wait. */
                        log_warning_errno(r, "Checkpoint compaction failed, continuing with the log: %m");
        }
        return 0;
}

int checkpoint_compact(Checkpoint *c) {
        _cleanup_free_ struct iovec *iov = NULL;
        CkptSnapHeader h;
        CkptLogHeader lh;
        int fd = -1, r;

        if (c->read_only)
                return -EROFS;
        /* The header, then the bitmap a chunk at a time (empty and full
         * chunks from shared read-only words): never the whole of it. */
        iov = calloc(c->bits.n_chunks + 1, sizeof(*iov));
        if (!iov)
                return -ENOMEM;
        memset(&h, 0, sizeof(h));
        memcpy(h.magic, CKPT_SNAP_MAGIC, 8);
        h.version = CKPT_VERSION;
        h.header_size = sizeof(h);
        h.n_items = c->n_items;
        h.seq = c->seq;
        h.results_len = c->results_len;
        h.done = c->done;
        h.failed = c->failed;
        for (uint64_t k = 0; k < c->bits.n_chunks; k++) {
                iov[k + 1].iov_base = UNCONST(bitset_chunk_data(&c->bits, k));
                iov[k + 1].iov_len = (size_t) bitset_chunk_words(&c->bits, k) * sizeof(uint64_t);
                h.bitmap_crc = crc32c(h.bitmap_crc, iov[k + 1].iov_base, iov[k + 1].iov_len);
        }
        h.crc = crc32c(0, &h, offsetof(CkptSnapHeader, crc));
        iov[0] = (struct iovec){ .iov_base = &h, .iov_len = sizeof(h) };

        /* Snapshot first: until the new log is in place, the old log's
         * records are either in the snapshot (seq <= h.seq, skipped) or not. */
        r = write_file_atomic_iov_at(c->dirfd, CKPT_SNAP, iov, (size_t) c->bits.n_chunks + 1, 0600);
        if (r < 0)
                return r;
        /* The new log's descriptor comes from its creation: once it has
         * replaced the old one by name, nothing can fail that would leave
         * us appending to the unlinked old file. */
        log_header_init(&lh, c->n_items, c->gen);
        r = write_file_atomic_at_keep(c->dirfd, CKPT_LOG, &lh, sizeof(lh), 0600, &fd);
        if (fd >= 0) {
                safe_close(c->log_fd);
                c->log_fd = fd;
                c->log_size = sizeof(lh);
                c->log_name_unsynced = r < 0; /* the directory fsync failed */
        }
        return r;
}

int checkpoint_bitmap_memfd(const Checkpoint *c) {
        size_t bytes = (size_t) bitmap_words(c->n_items) * sizeof(uint64_t);
        _cleanup_close_ int fd = -1;
        off_t off = 0;
        int r;

        fd = memfd_create("mplock-done", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) bytes) < 0)
                return -errno;
        for (uint64_t k = 0; k < c->bits.n_chunks; k++) {
                size_t len = (size_t) bitset_chunk_words(&c->bits, k) * sizeof(uint64_t);
                if (c->bits.set[k] > 0) {
                        r = pwrite_full(fd, bitset_chunk_data(&c->bits, k), len, off);
                        if (r < 0)
                                return r;
                }
                off += (off_t) len;
        }
        /* Sealed, so that it cannot be changed under the daemon's feet or
         * grown while the runner reads it. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        return TAKE_FD(fd);
}
