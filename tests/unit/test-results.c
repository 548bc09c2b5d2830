/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "results.h"
#include "test-util.h"

#define N_ITEMS 100u
#define JOB_ID 0x1122334455667788ull

/* Item k of the test data: text, result and status all derived from k, so
 * that any record can be checked on its own. Every fifth item is empty,
 * every third failed, every seventh has an empty result. */
static void item_of(uint64_t k, char *item, size_t *item_len, char *result, size_t *result_len, int32_t *status) {
        *item_len = k % 5 == 0 ? 0 : (size_t) snprintf(item, 64, "item-%llu", (unsigned long long) k);
        *result_len = k % 7 == 0 ? 0
                                 : (size_t) snprintf(result, 128, "result of %llu: %0*llu", (unsigned long long) k,
                                                     (int) (k % 40), 0ull);
        *status = k % 3 == 0 ? -(int32_t) (k + 1) : 0;
}

/* Bytes of a LEB128 varint. */
static size_t varint_len(uint64_t v) {
        size_t n = 1;

        for (; v >= 0x80; v >>= 7)
                n++;
        return n;
}

/* The joblog of item k in the test data. */
static ResultsMeta meta_of(uint64_t k) {
        return (ResultsMeta){ .attempts = (uint32_t) (k % 4 + 1), .worker = (uint32_t) (k % 3),
                              .run_usec = k * 1000003u };
}

static void build_block(ResultsBlock *b, uint64_t first, uint32_t count) {
        results_block_begin(b, first);
        for (uint64_t k = first; k < first + count; k++) {
                char item[64], result[128];
                size_t il, rl;
                int32_t st;

                ResultsMeta m = meta_of(k);

                item_of(k, item, &il, result, &rl, &st);
                ck_assert_int_eq(results_block_add(b, item, il, result, rl, st, &m), 0);
        }
        results_block_finish(b);
        ck_assert_uint_eq(b->count, count);
}

/* Walks a verified block's items and compares each with item_of(). */
static void check_items(const ResultsBlockHeader *h, const char *payload, uint64_t first, uint32_t count) {
        ResultsItemIter it;
        ResultsItem ri;
        uint32_t n = 0;

        ck_assert_uint_eq(h->first, first);
        ck_assert_uint_eq(h->count, count);
        results_item_iter_init(&it, h, payload);
        while (results_item_iter_next(&it, &ri)) {
                char item[64], result[128];
                size_t il, rl;
                int32_t st;

                item_of(first + n, item, &il, result, &rl, &st);
                ck_assert_uint_eq(ri.index, first + n);
                ck_assert_uint_eq(ri.item_len, il);
                ck_assert_mem_eq(ri.item, item, il);
                ck_assert_uint_eq(ri.result_len, rl);
                ck_assert_mem_eq(ri.result, result, rl);
                ck_assert_int_eq(ri.status, st);
                if (h->magic == RESULTS_BLOCK_MAGIC_V2) {
                        ResultsMeta m = meta_of(first + n);
                        ck_assert_uint_eq(ri.meta.attempts, m.attempts);
                        ck_assert_uint_eq(ri.meta.worker, m.worker);
                        ck_assert_uint_eq(ri.meta.run_usec, m.run_usec);
                } else
                        ck_assert_uint_eq(ri.meta.attempts + ri.meta.worker + ri.meta.run_usec, 0);
                n++;
        }
        ck_assert_uint_eq(n, count);
}

START_TEST(test_file_header) {
        ResultsFileHeader h;

        results_file_header_init(&h, JOB_ID, 0);
        ck_assert_int_eq(results_file_header_check(&h), 0);
        ck_assert_mem_eq(h.magic, RESULTS_FILE_MAGIC, 8);
        ck_assert_uint_eq(h.header_size, sizeof(h));
        ck_assert_uint_eq(h.job_id, JOB_ID);
        ck_assert_uint_eq(h.version, RESULTS_VERSION);
        {
                /* Versions 1 and 2 are read; no other. */
                static const uint32_t versions[] = { 0, 1, 2, 3 };
                for (size_t i = 0; i < ELEMENTSOF(versions); i++) {
                        ResultsFileHeader v = h;
                        v.version = versions[i];
                        v.crc = crc32c(0, &v, offsetof(ResultsFileHeader, crc));
                        ck_assert_int_eq(results_file_header_check(&v), versions[i] == 1 || versions[i] == 2 ? 0 : -EBADMSG);
                }
        }
        for (size_t i = 0; i < sizeof(h); i++) {
                ResultsFileHeader bad = h;

                ((unsigned char *) &bad)[i] ^= 0x01;
                ck_assert_msg(results_file_header_check(&bad) == -EBADMSG, "byte %zu", i);
        }
}
END_TEST

START_TEST(test_block_build_and_verify) {
        ResultsBlock b = {};
        ResultsBlockHeader h;
        size_t payload = 0;

        build_block(&b, 10, 20);
        for (uint64_t k = 10; k < 30; k++) {
                char item[64], result[128];
                size_t il, rl;
                int32_t st;

                item_of(k, item, &il, result, &rl, &st);
                payload += sizeof(ResultsItemHeader) + varint_len(meta_of(k).attempts) +
                           varint_len(meta_of(k).worker) + varint_len(meta_of(k).run_usec) + il + rl;
        }
        ck_assert_uint_eq(results_block_payload(&b), payload);
        ck_assert_uint_eq(b.len, sizeof(ResultsBlockHeader) + payload);
        ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), 0);
        {
                /* 12, 15, ..., 27 failed; 15's status is -16 */
                uint32_t failed = 99, special = 99;

                ck_assert_int_eq(results_block_verify_count(b.buf, b.len, N_ITEMS, -16, &failed, &special), 0);
                ck_assert_uint_eq(failed, 6);
                ck_assert_uint_eq(special, 1);
                ck_assert_int_eq(results_block_verify_count(b.buf, b.len, N_ITEMS, 0, &failed, &special), 0);
                ck_assert_uint_eq(failed, 6);
                ck_assert_uint_eq(special, 0);
                ck_assert_int_eq(results_block_verify_count(b.buf, b.len - 1, N_ITEMS, 0, &failed, &special),
                                 -EBADMSG);
        }

        memcpy(&h, b.buf, sizeof(h));
        ck_assert_uint_eq(h.magic, RESULTS_BLOCK_MAGIC_V2);
        ck_assert_uint_eq(h.payload_len, payload);
        check_items(&h, b.buf + sizeof(h), 10, 20);

        /* Any single flipped byte, in the header or the payload, is caught. */
        for (size_t i = 0; i < b.len; i++) {
                b.buf[i] ^= 0x20;
                ck_assert_msg(results_block_verify(b.buf, b.len, N_ITEMS) == -EBADMSG, "byte %zu of %zu", i, b.len);
                b.buf[i] ^= 0x20;
        }
        ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), 0);

        /* Wrong lengths and too small a job. */
        ck_assert_int_eq(results_block_verify(b.buf, b.len - 1, N_ITEMS), -EBADMSG);
        ck_assert_int_eq(results_block_verify(b.buf, sizeof(h) - 1, N_ITEMS), -EBADMSG);
        ck_assert_int_eq(results_block_verify(b.buf, 0, N_ITEMS), -EBADMSG);
        ck_assert_int_eq(results_block_verify(b.buf, b.len, 30), 0);
        ck_assert_int_eq(results_block_verify(b.buf, b.len, 29), -EBADMSG);
        {
                char *longer = malloc(b.len + 1);

                ck_assert_ptr_nonnull(longer);
                memcpy(longer, b.buf, b.len);
                longer[b.len] = 0;
                ck_assert_int_eq(results_block_verify(longer, b.len + 1, N_ITEMS), -EBADMSG);
                free(longer);
        }

        /* The builder can be reused for the next block. */
        build_block(&b, 0, 1);
        ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), 0);
        memcpy(&h, b.buf, sizeof(h));
        check_items(&h, b.buf + sizeof(h), 0, 1);
        results_block_free(&b);
        ck_assert_ptr_null(b.buf);
}
END_TEST

START_TEST(test_block_bad_item_layout) {
        /* A block whose CRC is right but whose items do not fill the payload
         * exactly: item lengths are checked, not trusted. */
        ResultsBlock b = {};
        ResultsItemHeader ih;
        ResultsBlockHeader h;
        uint32_t crc;

        build_block(&b, 0, 3);
        memcpy(&ih, b.buf + sizeof(h), sizeof(ih));
        ih.result_len += 1000;
        memcpy(b.buf + sizeof(h), &ih, sizeof(ih));
        memcpy(&h, b.buf, sizeof(h));
        h.crc = 0;
        crc = crc32c(crc32c(0, &h, sizeof(h)), b.buf + sizeof(h), h.payload_len);
        h.crc = crc;
        memcpy(b.buf, &h, sizeof(h));
        ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), -EBADMSG);
        results_block_free(&b);
}
END_TEST

START_TEST(test_block_empty_items) {
        ResultsBlock b = {};
        ResultsBlockHeader h;
        ResultsItemIter it;
        ResultsItem ri;

        results_block_begin(&b, 5);
        ck_assert_int_eq(results_block_add(&b, NULL, 0, NULL, 0, 0, NULL), 0);
        ck_assert_int_eq(results_block_add(&b, "", 0, "", 0, -3, NULL), 0);
        results_block_finish(&b);
        ck_assert_uint_eq(b.len, sizeof(h) + 2 * RESULTS_ITEM_HEADER_V2_MIN);
        ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), 0);
        memcpy(&h, b.buf, sizeof(h));
        results_item_iter_init(&it, &h, b.buf + sizeof(h));
        ck_assert(results_item_iter_next(&it, &ri));
        ck_assert_uint_eq(ri.index, 5);
        ck_assert_uint_eq(ri.item_len + ri.result_len, 0);
        ck_assert(results_item_iter_next(&it, &ri));
        ck_assert_uint_eq(ri.index, 6);
        ck_assert_int_eq(ri.status, -3);
        ck_assert(!results_item_iter_next(&it, &ri));
        results_block_free(&b);
}
END_TEST

START_TEST(test_block_add_limits) {
        /* Sizes over the limits are refused before anything is read from
         * the (here tiny) buffers. */
        ResultsBlock b = {};
        char small[4] = "abc";

        results_block_begin(&b, 0);
        ck_assert_int_eq(results_block_add(&b, small, (size_t) UINT32_MAX + 1, small, 1, 0, NULL), -E2BIG);
        ck_assert_int_eq(results_block_add(&b, small, 1, small, (size_t) UINT32_MAX + 1, 0, NULL), -E2BIG);
        ck_assert_int_eq(results_block_add(&b, small, 1, small, RESULTS_BLOCK_PAYLOAD_MAX, 0, NULL), -E2BIG);
        ck_assert_int_eq(results_block_add(&b, small, 1, small, SIZE_MAX / 2, 0, NULL), -E2BIG);
        ck_assert_uint_eq(b.count, 0);
        ck_assert_uint_eq(results_block_payload(&b), 0);

        /* The payload limit is inclusive. */
        {
                size_t max_result = RESULTS_BLOCK_PAYLOAD_MAX - RESULTS_ITEM_HEADER_V2_MIN - 1;
                char *big = calloc(1, max_result + 1);

                ck_assert_ptr_nonnull(big);
                ck_assert_int_eq(results_block_add(&b, "x", 1, big, max_result, 0, NULL), 0);
                ck_assert_uint_eq(results_block_payload(&b), RESULTS_BLOCK_PAYLOAD_MAX);
                ck_assert_int_eq(results_block_add(&b, NULL, 0, NULL, 0, 0, NULL), -E2BIG);
                results_block_finish(&b);
                ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), 0);
                free(big);
        }
        results_block_free(&b);
}
END_TEST

START_TEST(test_block_header_check) {
        ResultsBlockHeader good = {
                .magic = RESULTS_BLOCK_MAGIC, .count = 10, .first = 90, .payload_len = 10 * sizeof(ResultsItemHeader)
        }, h;

        ck_assert_int_eq(results_block_header_check(&good, N_ITEMS), 0);

        h = good, h.magic++;
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), -EBADMSG);
        h = good, h.count = 0;
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), -EBADMSG);
        h = good, h.payload_len = RESULTS_BLOCK_PAYLOAD_MAX + 1;
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), -EBADMSG);
        /* Fewer payload bytes than the item headers alone need. */
        h = good, h.payload_len = 10 * sizeof(ResultsItemHeader) - 1;
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), -EBADMSG);
        /* Index bounds: first + count must stay within n_items. */
        h = good, h.first = 91;
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), -EBADMSG);
        h = good, h.first = N_ITEMS;
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), -EBADMSG);
        h = good, h.first = UINT64_MAX - 5; /* first + count wraps */
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), -EBADMSG);
        h = good, h.count = UINT32_MAX, h.payload_len = RESULTS_BLOCK_PAYLOAD_MAX;
        ck_assert_int_eq(results_block_header_check(&h, UINT64_MAX), -EBADMSG);
        ck_assert_int_eq(results_block_header_check(&good, 100), 0);
        ck_assert_int_eq(results_block_header_check(&good, 99), -EBADMSG);
        ck_assert_int_eq(results_block_header_check(&good, 0), -EBADMSG);
        /* A version-2 block's item headers are larger. */
        h = good, h.magic = RESULTS_BLOCK_MAGIC_V2;
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), -EBADMSG);
        h.payload_len = 10 * RESULTS_ITEM_HEADER_V2_MIN;
        ck_assert_int_eq(results_block_header_check(&h, N_ITEMS), 0);
}
END_TEST

/* A block as mplock before version 2 wrote it: 12-byte item headers. */
static void build_block_v1(ResultsBlock *b, uint64_t first, uint32_t count) {
        ResultsBlockHeader h = { .magic = RESULTS_BLOCK_MAGIC, .count = count, .first = first };
        size_t len = sizeof(h);

        b->buf = realloc(b->buf, sizeof(h) + count * (sizeof(ResultsItemHeader) + 64 + 128));
        ck_assert_ptr_nonnull(b->buf);
        for (uint64_t k = first; k < first + count; k++) {
                char item[64], result[128];
                ResultsItemHeader ih;
                size_t il, rl;
                int32_t st;

                item_of(k, item, &il, result, &rl, &st);
                ih = (ResultsItemHeader){ (uint32_t) il, (uint32_t) rl, st };
                memcpy(b->buf + len, &ih, sizeof(ih));
                memcpy(b->buf + len + sizeof(ih), item, il);
                memcpy(b->buf + len + sizeof(ih) + il, result, rl);
                len += sizeof(ih) + il + rl;
        }
        h.payload_len = (uint32_t) (len - sizeof(h));
        h.crc = crc32c(crc32c(0, &h, sizeof(h)), b->buf + sizeof(h), h.payload_len);
        memcpy(b->buf, &h, sizeof(h));
        b->len = b->cap = len;
        b->first = first;
        b->count = count;
}

START_TEST(test_block_v1) {
        ResultsBlock b = {};
        ResultsBlockHeader h;
        uint32_t failed = 0, special = 0;

        build_block_v1(&b, 10, 20);
        ck_assert_int_eq(results_block_verify_count(b.buf, b.len, N_ITEMS, -16, &failed, &special), 0);
        ck_assert_uint_eq(failed, 6);
        ck_assert_uint_eq(special, 1);
        memcpy(&h, b.buf, sizeof(h));
        check_items(&h, b.buf + sizeof(h), 10, 20);
        /* Taken for a version-2 block, its items would not fill it. */
        h.magic = RESULTS_BLOCK_MAGIC_V2;
        h.crc = 0;
        h.crc = crc32c(crc32c(0, &h, sizeof(h)), b.buf + sizeof(h), h.payload_len);
        memcpy(b.buf, &h, sizeof(h));
        ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), -EBADMSG);
        results_block_free(&b);
}
END_TEST

START_TEST(test_joblog_bounds) {
        /* Any run time round trips; attempts and workers past 16 bits are
         * kept at the most; a varint that runs past the block is damage. */
        ResultsMeta big = { .attempts = 70000, .worker = UINT32_MAX, .run_usec = UINT64_MAX };
        ResultsBlock b = {};
        ResultsBlockHeader h;
        ResultsItemIter it;
        ResultsItem ri;

        results_block_begin(&b, 0);
        ck_assert_int_eq(results_block_add(&b, "x", 1, "y", 1, 0, &big), 0);
        results_block_finish(&b);
        ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), 0);
        memcpy(&h, b.buf, sizeof(h));
        results_item_iter_init(&it, &h, b.buf + sizeof(h));
        ck_assert(results_item_iter_next(&it, &ri));
        ck_assert_uint_eq(ri.meta.attempts, UINT16_MAX);
        ck_assert_uint_eq(ri.meta.worker, UINT16_MAX);
        ck_assert_uint_eq(ri.meta.run_usec, UINT64_MAX);
        ck_assert_uint_eq(ri.item_len, 1);
        ck_assert_uint_eq(ri.result[0], 'y');
        /* The run time's last byte with its continuation bit set: it runs
         * into the item and on, to the end. */
        b.buf[sizeof(h) + sizeof(ResultsItemHeader) + 3 + 3 + 9] |= (char) 0x80;
        h.crc = 0;
        h.crc = crc32c(crc32c(0, &h, sizeof(h)), b.buf + sizeof(h), h.payload_len);
        memcpy(b.buf, &h, sizeof(h));
        ck_assert_int_eq(results_block_verify(b.buf, b.len, N_ITEMS), -EBADMSG);
        results_block_free(&b);
}
END_TEST

/* A results file: header, then blocks in the given order. */
typedef struct Span {
        uint64_t first;
        uint32_t count;
} Span;

static off_t write_results_file(int dirfd, const char *name, const Span *spans, size_t n) {
        ResultsFileHeader fh;
        off_t size = sizeof(fh);
        int fd;

        fd = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        results_file_header_init(&fh, JOB_ID, 0);
        ck_assert_int_eq(write(fd, &fh, sizeof(fh)), (ssize_t) sizeof(fh));
        for (size_t i = 0; i < n; i++) {
                ResultsBlock b = {};

                build_block(&b, spans[i].first, spans[i].count);
                ck_assert_int_eq(write(fd, b.buf, b.len), (ssize_t) b.len);
                size += (off_t) b.len;
                results_block_free(&b);
        }
        close(fd);
        return size;
}

static void append_bytes(int dirfd, const char *name, const void *p, size_t len) {
        int fd = openat(dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, p, len), (ssize_t) len);
        close(fd);
}

static int open_file(int dirfd, const char *name) {
        int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return fd;
}

/* Completion order, not input order; a gap at 18..29. */
static const Span spans[] = { { 15, 3 }, { 10, 5 }, { 30, 2 }, { 0, 10 }, { 40, 60 } };
static const Span sorted[] = { { 0, 10 }, { 10, 5 }, { 15, 3 }, { 30, 2 }, { 40, 60 } };

/* The blocks of `spans`, ending at valid_end. */
static void check_file(ResultsFile *f, uint64_t valid_end) {
        ck_assert_uint_eq(f->n_blocks, ELEMENTSOF(sorted));
        ck_assert_uint_eq(f->n_results, 10 + 5 + 3 + 2 + 60);
        ck_assert_uint_eq(f->job_id, JOB_ID);
        ck_assert_uint_eq(f->valid_end, valid_end);
        for (size_t k = 0; k < f->n_blocks; k++) {
                ResultsBlockHeader h;
                const char *payload;

                ck_assert_uint_eq(f->blocks[k].first, sorted[k].first);
                ck_assert_uint_eq(f->blocks[k].count, sorted[k].count);
                ck_assert_int_eq(results_file_read_block(f, k, &h, &payload), 0);
                check_items(&h, payload, sorted[k].first, sorted[k].count);
        }
        /* Reading again, in another order, reuses the buffer correctly. */
        for (size_t k = f->n_blocks; k-- > 0;) {
                ResultsBlockHeader h;
                const char *payload;

                ck_assert_int_eq(results_file_read_block(f, k, &h, &payload), 0);
                check_items(&h, payload, sorted[k].first, sorted[k].count);
        }
}

/* A file as mplock before version 2 wrote it (the header of version 1,
 * blocks with 12-byte item headers), then one block of version 2, as a
 * newer runner that resumed it appends. */
START_TEST(test_file_v1) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        ResultsFileHeader fh;
        ResultsBlock b = {};
        ResultsFile f;
        off_t size = sizeof(fh);

        fd = openat(dirfd, "v1", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        results_file_header_init(&fh, JOB_ID, 3);
        fh.version = 1;
        fh.crc = crc32c(0, &fh, offsetof(ResultsFileHeader, crc));
        ck_assert_int_eq(results_file_header_check(&fh), 0);
        ck_assert_int_eq(write(fd, &fh, sizeof(fh)), (ssize_t) sizeof(fh));
        for (size_t i = 0; i < ELEMENTSOF(spans); i++) {
                build_block_v1(&b, spans[i].first, spans[i].count);
                ck_assert_int_eq(write(fd, b.buf, b.len), (ssize_t) b.len);
                size += (off_t) b.len;
        }
        ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size, N_ITEMS), 0);
        check_file(&f, (uint64_t) size);
        results_file_close(&f);

        results_block_free(&b);
        build_block(&b, 18, 12);
        ck_assert_int_eq(write(fd, b.buf, b.len), (ssize_t) b.len);
        size += (off_t) b.len;
        ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_blocks, ELEMENTSOF(spans) + 1);
        for (size_t k = 0; k < f.n_blocks; k++) {
                ResultsBlockHeader h;
                const char *payload;

                ck_assert_int_eq(results_file_read_block(&f, k, &h, &payload), 0);
                check_items(&h, payload, f.blocks[k].first, f.blocks[k].count);
                ck_assert_uint_eq(h.magic, f.blocks[k].first == 18 ? RESULTS_BLOCK_MAGIC_V2 : RESULTS_BLOCK_MAGIC);
        }
        results_file_close(&f);
        results_block_free(&b);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_file_read) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        ResultsFile f;
        off_t size;

        size = write_results_file(dirfd, "r", spans, ELEMENTSOF(spans));
        fd = open_file(dirfd, "r");

        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), 0);
        ck_assert_uint_eq(f.size, (uint64_t) size);
        check_file(&f, (uint64_t) size);
        results_file_close(&f);

        ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size, N_ITEMS), 0);
        ck_assert_uint_eq(f.size, (uint64_t) size);
        check_file(&f, (uint64_t) size);
        results_file_close(&f);

        /* A committed length that ends inside a block, or inside the file
         * header, is not a committed length. */
        ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size - 1, N_ITEMS), -EBADMSG);
        ck_assert_int_eq(results_file_open(&f, fd, sizeof(ResultsFileHeader) + 1, N_ITEMS), -EBADMSG);
        ck_assert_int_eq(results_file_open(&f, fd, 10, N_ITEMS), -EBADMSG);
        /* Just the header: committed, but empty. */
        ck_assert_int_eq(results_file_open(&f, fd, sizeof(ResultsFileHeader), N_ITEMS), 0);
        ck_assert_uint_eq(f.n_blocks, 0);
        results_file_close(&f);
        ck_assert_int_eq(results_file_open(&f, fd, 0, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_blocks, 0);
        results_file_close(&f);

        /* A file shorter than what was committed. */
        ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size + 1, N_ITEMS), -ENODATA);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_file_torn_block) {
        /* Cut the final block anywhere: in its header, or in its payload. */
        static const size_t keep[] = { 1, 10, sizeof(ResultsBlockHeader) - 1, sizeof(ResultsBlockHeader),
                                       sizeof(ResultsBlockHeader) + 5 };

        for (size_t i = 0; i < ELEMENTSOF(keep); i++) {
                char path[PATH_MAX];
                int dirfd = test_tmpdir(path, sizeof(path)), fd;
                ResultsBlock b = {};
                ResultsFile f;
                off_t size;

                size = write_results_file(dirfd, "r", spans, ELEMENTSOF(spans));
                build_block(&b, 20, 5);
                ck_assert_uint_gt(b.len, keep[i]);
                append_bytes(dirfd, "r", b.buf, keep[i]);
                results_block_free(&b);
                fd = open_file(dirfd, "r");

                /* Whole file: the torn block is not there. */
                ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), 0);
                ck_assert_uint_eq(f.size, (uint64_t) size + keep[i]);
                check_file(&f, (uint64_t) size);
                ck_assert_uint_eq(results_file_find(&f, 20), 3);
                results_file_close(&f);

                /* Committed up to the end of the file: that is an error. */
                ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size + keep[i], N_ITEMS), -EBADMSG);
                /* Committed up to the last whole block: fine. */
                ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size, N_ITEMS), 0);
                ck_assert_uint_eq(f.size, (uint64_t) size);
                check_file(&f, (uint64_t) size);
                results_file_close(&f);
                close(fd);
                close(dirfd);
        }
}
END_TEST

START_TEST(test_file_corrupt_payload) {
        /* Opening reads headers only; the CRC is checked when a block is
         * read, and a bad one is reported, not returned. */
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        ResultsFileHeader fh;
        ResultsBlockHeader h;
        const char *payload;
        ResultsFile f;

        write_results_file(dirfd, "r", spans, ELEMENTSOF(spans));
        /* The last byte of the first block in the file ({15, 3}). */
        {
                ResultsBlock b = {};
                build_block(&b, 15, 3);
                test_flip_byte(dirfd, "r", (off_t) (sizeof(fh) + b.len - 1));
                results_block_free(&b);
        }
        fd = open_file(dirfd, "r");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_blocks, ELEMENTSOF(spans));
        ck_assert_uint_eq(f.blocks[2].first, 15);
        ck_assert_int_eq(results_file_read_block(&f, 2, &h, &payload), -EBADMSG);
        ck_assert_int_eq(results_file_read_block(&f, 1, &h, &payload), 0);
        check_items(&h, payload, 10, 5);
        results_file_close(&f);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_file_overlap) {
        static const Span overlap[] = { { 0, 10 }, { 20, 5 }, { 9, 2 } };
        static const Span dup[] = { { 30, 2 }, { 30, 2 } };
        static const Span adjacent[] = { { 10, 10 }, { 0, 10 } };
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        ResultsFile f;
        off_t size;

        size = write_results_file(dirfd, "overlap", overlap, ELEMENTSOF(overlap));
        fd = open_file(dirfd, "overlap");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), -ENOTUNIQ);
        ck_assert_ptr_null(f.blocks);
        ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size, N_ITEMS), -ENOTUNIQ);
        close(fd);

        write_results_file(dirfd, "dup", dup, ELEMENTSOF(dup));
        fd = open_file(dirfd, "dup");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), -ENOTUNIQ);
        close(fd);

        write_results_file(dirfd, "adjacent", adjacent, ELEMENTSOF(adjacent));
        fd = open_file(dirfd, "adjacent");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_blocks, 2);
        ck_assert_uint_eq(f.blocks[0].first, 0);
        ck_assert_uint_eq(f.blocks[1].first, 10);
        results_file_close(&f);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_file_index_bound) {
        /* Blocks are checked against the job's item count: a block past the
         * end stops the scan (and is an error when it is committed). */
        static const Span s[] = { { 0, 10 }, { 50, 10 } };
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        ResultsFile f;
        off_t size;

        size = write_results_file(dirfd, "r", s, ELEMENTSOF(s));
        fd = open_file(dirfd, "r");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, 60), 0);
        ck_assert_uint_eq(f.n_blocks, 2);
        results_file_close(&f);
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, 59), 0);
        ck_assert_uint_eq(f.n_blocks, 1);
        ck_assert_uint_lt(f.valid_end, (uint64_t) size);
        results_file_close(&f);
        ck_assert_int_eq(results_file_open(&f, fd, (uint64_t) size, 59), -EBADMSG);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_file_find) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        ResultsFile f;

        write_results_file(dirfd, "r", spans, ELEMENTSOF(spans));
        fd = open_file(dirfd, "r");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), 0);

        /* Blocks: [0,10) [10,15) [15,18) [30,32) [40,100). */
        ck_assert_uint_eq(results_file_find(&f, 0), 0);
        ck_assert_uint_eq(results_file_find(&f, 9), 0);
        ck_assert_uint_eq(results_file_find(&f, 10), 1);
        ck_assert_uint_eq(results_file_find(&f, 14), 1);
        ck_assert_uint_eq(results_file_find(&f, 15), 2);
        ck_assert_uint_eq(results_file_find(&f, 17), 2);
        /* In the gap: the next block after it. */
        ck_assert_uint_eq(results_file_find(&f, 18), 3);
        ck_assert_uint_eq(results_file_find(&f, 29), 3);
        ck_assert_uint_eq(results_file_find(&f, 31), 3);
        ck_assert_uint_eq(results_file_find(&f, 32), 4);
        ck_assert_uint_eq(results_file_find(&f, 99), 4);
        /* Past the end: n_blocks. */
        ck_assert_uint_eq(results_file_find(&f, 100), 5);
        ck_assert_uint_eq(results_file_find(&f, UINT64_MAX), 5);

        /* Against a linear scan for every index. */
        for (uint64_t i = 0; i <= N_ITEMS; i++) {
                size_t k = 0;

                while (k < f.n_blocks && f.blocks[k].first + f.blocks[k].count <= i)
                        k++;
                ck_assert_uint_eq(results_file_find(&f, i), k);
        }
        results_file_close(&f);
        close(fd);
        close(dirfd);
}
END_TEST

START_TEST(test_file_header_damage) {
        char path[PATH_MAX];
        int dirfd = test_tmpdir(path, sizeof(path)), fd;
        ResultsFileHeader fh;
        ResultsFile f;

        /* Empty file: nothing committed yet. */
        test_write_file(dirfd, "empty", "", 0);
        fd = open_file(dirfd, "empty");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_blocks, 0);
        results_file_close(&f);
        ck_assert_int_eq(results_file_open(&f, fd, 1, N_ITEMS), -ENODATA);
        close(fd);

        /* A torn file header: nothing there in the whole-file view; an
         * error once it counts as committed. */
        results_file_header_init(&fh, JOB_ID, 0);
        test_write_file(dirfd, "torn", &fh, 10);
        fd = open_file(dirfd, "torn");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), 0);
        ck_assert_uint_eq(f.n_blocks, 0);
        results_file_close(&f);
        ck_assert_int_eq(results_file_open(&f, fd, 10, N_ITEMS), -EBADMSG);
        close(fd);

        /* A damaged header. */
        write_results_file(dirfd, "bad", spans, ELEMENTSOF(spans));
        test_flip_byte(dirfd, "bad", 12);
        fd = open_file(dirfd, "bad");
        ck_assert_int_eq(results_file_open(&f, fd, UINT64_MAX, N_ITEMS), -EBADMSG);
        close(fd);

        /* Not a regular file. */
        ck_assert_int_eq(results_file_open(&f, dirfd, UINT64_MAX, N_ITEMS), -EBADF);
        close(dirfd);
}
END_TEST

static Suite *results_suite(void) {
        Suite *s = suite_create("results");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_file_header);
        tcase_add_test(tc, test_block_build_and_verify);
        tcase_add_test(tc, test_block_bad_item_layout);
        tcase_add_test(tc, test_block_empty_items);
        tcase_add_test(tc, test_block_add_limits);
        tcase_add_test(tc, test_block_header_check);
        tcase_add_test(tc, test_block_v1);
        tcase_add_test(tc, test_joblog_bounds);
        tcase_add_test(tc, test_file_v1);
        tcase_add_test(tc, test_file_read);
        tcase_add_test(tc, test_file_torn_block);
        tcase_add_test(tc, test_file_corrupt_payload);
        tcase_add_test(tc, test_file_overlap);
        tcase_add_test(tc, test_file_index_bound);
        tcase_add_test(tc, test_file_find);
        tcase_add_test(tc, test_file_header_damage);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(results_suite());
}
