/* SPDX-License-Identifier: MIT */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fileio.h"
#include "macro.h"

#define PAD8(n) (((n) + 7u) & ~(uint64_t) 7u)

static void header_init(JournalHeader *h, uint64_t gen) {
        memset(h, 0, sizeof(*h));
        memcpy(h->magic, JOURNAL_MAGIC, 8);
        h->version = JOURNAL_VERSION;
        h->gen = gen;
        h->crc = crc32c(0, h, offsetof(JournalHeader, crc));
}

static bool header_valid(const JournalHeader *h) {
        return memcmp(h->magic, JOURNAL_MAGIC, 8) == 0 && h->version == JOURNAL_VERSION &&
               h->crc == crc32c(0, h, offsetof(JournalHeader, crc));
}

static uint32_t record_crc(const JournalRecord *rec, const void *payload) {
        JournalRecord copy = *rec;

        copy.crc = 0;
        return crc32c(crc32c(0, &copy, sizeof(copy)), payload, rec->len);
}

/* Zeros in every block, written out: an overwrite then changes no
 * metadata, so fdatasync writes the data and nothing else. Made under a
 * temporary name, so that a crash leaves no short journal. */
static int journal_create(int dirfd) {
        static const char zeros[65536];
        const char *tmp = ".#" JOURNAL_NAME ".new";
        _cleanup_close_ int fd = -1;
        JournalHeader h;
        int r = 0;

        (void) unlinkat(dirfd, tmp, 0);
        fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        for (uint64_t off = 0; off < JOURNAL_SIZE && r >= 0; off += sizeof(zeros))
                r = pwrite_full(fd, zeros, sizeof(zeros), (off_t) off);
        header_init(&h, 1);
        if (r >= 0)
                r = pwrite_full(fd, &h, sizeof(h), 0);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && renameat(dirfd, tmp, dirfd, JOURNAL_NAME) < 0)
                r = -errno;
        if (r >= 0)
                r = fsync_dirfd(dirfd);
        if (r < 0)
                (void) unlinkat(dirfd, tmp, 0);
        return r;
}

/* The current generation: the valid header with the higher gen. */
static int read_headers(Journal *j) {
        JournalHeader h[2];
        bool ok[2];

        for (unsigned i = 0; i < 2; i++) {
                ssize_t n = pread_full(j->fd, &h[i], sizeof(h[i]), (off_t) (i * JOURNAL_SLOT_SIZE));
                if (n < 0)
                        return (int) n;
                ok[i] = (size_t) n == sizeof(h[i]) && header_valid(&h[i]);
        }
        if (!ok[0] && !ok[1])
                return -EBADMSG;
        j->slot = !ok[0] || (ok[1] && h[1].gen > h[0].gen) ? 1 : 0;
        j->gen = h[j->slot].gen;
        return 0;
}

/* Every record of the generation, in order, until the first that is not. */
static int scan(Journal *j, JournalReplay replay, void *userdata) {
        _cleanup_free_ void *payload = malloc(JOURNAL_RECORD_MAX);
        uint64_t off = JOURNAL_DATA_START;

        if (!payload)
                return -ENOMEM;
        j->seq = 0;
        while (off + sizeof(JournalRecord) <= JOURNAL_SIZE) {
                JournalRecord rec;
                ssize_t n = pread_full(j->fd, &rec, sizeof(rec), (off_t) off);
                int r;

                if (n < 0)
                        return (int) n;
                if ((size_t) n < sizeof(rec) || rec.magic != JOURNAL_RECORD_MAGIC || rec.gen != j->gen ||
                    rec.seq != j->seq + 1 || rec.len > JOURNAL_RECORD_MAX ||
                    rec.len > JOURNAL_SIZE - off - sizeof(rec))
                        break;
                n = pread_full(j->fd, payload, rec.len, (off_t) (off + sizeof(rec)));
                if (n < 0)
                        return (int) n;
                if ((size_t) n < rec.len || record_crc(&rec, payload) != rec.crc)
                        break;
                if (replay) {
                        r = replay(rec.type, payload, rec.len, userdata);
                        if (r < 0)
                                return r;
                }
                j->seq = rec.seq;
                j->replayed++;
                off += PAD8(sizeof(rec) + rec.len);
        }
        j->end = off;
        return 0;
}

static int open_existing(Journal *j, int dirfd) {
        struct stat st;

        j->fd = openat(dirfd, JOURNAL_NAME, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (j->fd < 0)
                return -errno;
        if (fstat(j->fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size != JOURNAL_SIZE)
                return -EBADMSG;
        return read_headers(j);
}

int journal_open(Journal *j, int dirfd, JournalReplay replay, void *userdata) {
        int r;

        *j = (Journal){ .fd = -1 };
        r = open_existing(j, dirfd);
        if (r == -ENOENT || r == -EBADMSG) {
                /* Missing, or not a journal that could hold a record: a
                 * record is acknowledged only once its header is durable. */
                j->fd = safe_close(j->fd);
                j->recreated = r == -EBADMSG;
                r = journal_create(dirfd);
                if (r >= 0)
                        r = open_existing(j, dirfd);
        }
        if (r >= 0)
                r = scan(j, replay, userdata);
        if (r < 0)
                j->fd = safe_close(j->fd);
        j->opened = true;
        return r;
}

void journal_close(Journal *j) {
        j->fd = safe_close(j->fd);
}

int journal_append(Journal *j, uint32_t type, const struct iovec *iov, size_t n_iov) {
        JournalRecord rec = { .magic = JOURNAL_RECORD_MAGIC, .type = type, .gen = j->gen, .seq = j->seq + 1 };
        uint32_t crc;
        uint64_t len = 0, off;
        int r;

        if (j->opened)
                return -EBUSY;
        for (size_t i = 0; i < n_iov; i++)
                len += iov[i].iov_len;
        if (len > JOURNAL_RECORD_MAX)
                return -E2BIG;
        if (j->end + PAD8(sizeof(rec) + len) > JOURNAL_SIZE)
                return -ENOSPC;
        rec.len = (uint32_t) len;
        crc = crc32c(0, &rec, sizeof(rec)); /* crc = 0 while it is computed */
        for (size_t i = 0; i < n_iov; i++)
                crc = crc32c(crc, iov[i].iov_base, iov[i].iov_len);
        rec.crc = crc;

        off = j->end + sizeof(rec);
        for (size_t i = 0; i < n_iov; i++) {
                r = pwrite_full(j->fd, iov[i].iov_base, iov[i].iov_len, (off_t) off);
                if (r < 0)
                        return r;
                off += iov[i].iov_len;
        }
        /* The header last: a record is whole before it can be seen. (A
         * crash can still write the blocks in any order; the CRC decides.) */
        r = pwrite_full(j->fd, &rec, sizeof(rec), (off_t) j->end);
        if (r >= 0 && fdatasync(j->fd) < 0)
                r = -errno;
        if (r < 0)
                return r;
        j->seq = rec.seq;
        j->end += PAD8(sizeof(rec) + len);
        return 0;
}

int journal_reset(Journal *j) {
        unsigned slot = 1 - j->slot;
        JournalHeader h;
        int r;

        header_init(&h, j->gen + 1);
        r = pwrite_full(j->fd, &h, sizeof(h), (off_t) (slot * JOURNAL_SLOT_SIZE));
        if (r >= 0 && fdatasync(j->fd) < 0)
                r = -errno;
        if (r < 0)
                return r;
        j->slot = slot;
        j->gen = h.gen;
        j->seq = 0;
        j->end = JOURNAL_DATA_START;
        j->opened = false;
        return 0;
}

int journal_submit_parse(const void *payload, size_t len, uint64_t *ret_id, const char **ret_spec,
                         size_t *ret_spec_len, const void **ret_input, size_t *ret_input_len) {
        JournalSubmit h;

        if (len < sizeof(h))
                return -EBADMSG;
        memcpy(&h, payload, sizeof(h));
        if (h.spec_len == 0 || h.spec_len > len - sizeof(h) || h.reserved != 0)
                return -EBADMSG;
        *ret_id = h.id;
        *ret_spec = (const char *) payload + sizeof(h);
        *ret_spec_len = h.spec_len;
        *ret_input = (const char *) payload + sizeof(h) + h.spec_len;
        *ret_input_len = len - sizeof(h) - h.spec_len;
        return 0;
}
