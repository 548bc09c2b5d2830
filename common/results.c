/* SPDX-License-Identifier: MIT */
#include "results.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "fileio.h"
#include "macro.h"

void results_file_header_init(ResultsFileHeader *h, uint64_t job_id, uint32_t gen) {
        memset(h, 0, sizeof(*h));
        memcpy(h->magic, RESULTS_FILE_MAGIC, 8);
        h->version = RESULTS_VERSION;
        h->header_size = sizeof(*h);
        h->job_id = job_id;
        h->gen = gen;
        h->crc = crc32c(0, h, offsetof(ResultsFileHeader, crc));
}

int results_file_header_check(const ResultsFileHeader *h) {
        if (memcmp(h->magic, RESULTS_FILE_MAGIC, 8) != 0 || h->version < RESULTS_VERSION_MIN ||
            h->version > RESULTS_VERSION ||
            h->header_size != sizeof(*h) || h->crc != crc32c(0, h, offsetof(ResultsFileHeader, crc)))
                return -EBADMSG;
        return 0;
}

void results_block_free(ResultsBlock *b) {
        free(b->buf);
        *b = (ResultsBlock){};
}

static int block_reserve(ResultsBlock *b, size_t extra) {
        size_t need = b->len + extra, ncap;
        char *n;

        if (need <= b->cap)
                return 0;
        ncap = MAX(b->cap * 2, MAX(need, (size_t) RESULTS_BLOCK_TARGET + 4096));
        n = realloc(b->buf, ncap);
        if (!n)
                return -ENOMEM;
        b->buf = n;
        b->cap = ncap;
        return 0;
}

void results_block_begin(ResultsBlock *b, uint64_t first) {
        b->first = first;
        b->count = 0;
        b->len = sizeof(ResultsBlockHeader);
}

static size_t put_varint(char *p, uint64_t v) {
        size_t n = 0;

        for (; v >= 0x80; v >>= 7)
                p[n++] = (char) (v | 0x80);
        p[n++] = (char) v;
        return n;
}

/* false: it runs past end, or past 64 bits. */
static inline bool get_varint(const char **p, const char *end, uint64_t *ret) {
        uint64_t v = 0;

        /* One byte, as the attempt, the worker and a short call's time
         * mostly are: the runner reads three per item it commits. */
        if (*p < end && !((uint8_t) **p & 0x80)) {
                *ret = (uint8_t) *(*p)++;
                return true;
        }
        for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
                uint8_t b = (uint8_t) *(*p)++;

                v |= (uint64_t) (b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *ret = v;
                        return true;
                }
        }
        return false;
}

/* The joblog after a version-2 item's first 12 bytes. */
static inline bool get_meta(const char **p, const char *end, ResultsMeta *m) {
        uint64_t attempts, worker;

        if (!get_varint(p, end, &attempts) || !get_varint(p, end, &worker) || !get_varint(p, end, &m->run_usec) ||
            attempts > UINT16_MAX || worker > UINT16_MAX)
                return false;
        m->attempts = (uint32_t) attempts;
        m->worker = (uint32_t) worker;
        return true;
}

int results_block_add(ResultsBlock *b, const void *item, size_t item_len, const void *result,
                      size_t result_len, int32_t status, const ResultsMeta *meta) {
        ResultsItemHeader ih;
        char m[RESULTS_ITEM_HEADER_V2_MAX - sizeof(ResultsItemHeader)];
        size_t mn = 0, add;
        int r;

        mn += put_varint(m + mn, meta ? MIN(meta->attempts, (uint32_t) UINT16_MAX) : 0);
        mn += put_varint(m + mn, meta ? MIN(meta->worker, (uint32_t) UINT16_MAX) : 0);
        mn += put_varint(m + mn, meta ? meta->run_usec : 0);
        add = sizeof(ih) + mn + item_len + result_len;

        if (item_len > UINT32_MAX || result_len > UINT32_MAX ||
            results_block_payload(b) + add > RESULTS_BLOCK_PAYLOAD_MAX)
                return -E2BIG;
        r = block_reserve(b, add);
        if (r < 0)
                return r;
        ih = (ResultsItemHeader){ .item_len = (uint32_t) item_len, .result_len = (uint32_t) result_len,
                                  .status = status };
        memcpy(b->buf + b->len, &ih, sizeof(ih));
        b->len += sizeof(ih);
        memcpy(b->buf + b->len, m, mn);
        b->len += mn;
        if (item_len) {
                memcpy(b->buf + b->len, item, item_len);
                b->len += item_len;
        }
        if (result_len) {
                memcpy(b->buf + b->len, result, result_len);
                b->len += result_len;
        }
        b->count++;
        return 0;
}

void results_block_finish(ResultsBlock *b) {
        ResultsBlockHeader h = {
                .magic = RESULTS_BLOCK_MAGIC_V2,
                .count = b->count,
                .first = b->first,
                .payload_len = (uint32_t) results_block_payload(b),
                .crc = 0,
        };
        uint32_t crc;

        if (block_reserve(b, 0) < 0 || !b->buf)
                return; /* begin() on an empty block always reserves; cannot happen */
        crc = crc32c(0, &h, sizeof(h));
        crc = crc32c(crc, b->buf + sizeof(h), h.payload_len);
        h.crc = crc;
        memcpy(b->buf, &h, sizeof(h));
}

int results_block_header_check(const ResultsBlockHeader *h, uint64_t n_items) {
        size_t ih = results_item_header_size(h->magic);

        if (ih == 0 || h->count == 0 || h->payload_len > RESULTS_BLOCK_PAYLOAD_MAX ||
            (uint64_t) h->count * ih > h->payload_len || h->first >= n_items ||
            h->count > n_items - h->first)
                return -EBADMSG;
        return 0;
}

int results_block_verify(const void *block, size_t len, uint64_t n_items) {
        return results_block_verify_count(block, len, n_items, 0, NULL, NULL);
}

int results_block_verify_count(const void *block, size_t len, uint64_t n_items, int32_t special,
                               uint32_t *ret_failed, uint32_t *ret_special) {
        ResultsBlockHeader h;
        const char *p, *end;
        uint32_t crc, failed = 0, n_special = 0;
        bool v2;

        if (len < sizeof(h))
                return -EBADMSG;
        memcpy(&h, block, sizeof(h));
        if (results_block_header_check(&h, n_items) < 0 || len != sizeof(h) + h.payload_len)
                return -EBADMSG;
        crc = h.crc;
        h.crc = 0;
        if (crc32c(crc32c(0, &h, sizeof(h)), (const char *) block + sizeof(h), h.payload_len) != crc)
                return -EBADMSG;

        p = (const char *) block + sizeof(h);
        end = p + h.payload_len;
        v2 = h.magic == RESULTS_BLOCK_MAGIC_V2;
        for (uint32_t i = 0; i < h.count; i++) {
                ResultsItemHeader ih;
                ResultsMeta m;
                if ((size_t) (end - p) < sizeof(ih))
                        return -EBADMSG;
                memcpy(&ih, p, sizeof(ih));
                p += sizeof(ih);
                if (v2 && !get_meta(&p, end, &m))
                        return -EBADMSG;
                if ((uint64_t) ih.item_len + ih.result_len > (uint64_t) (end - p))
                        return -EBADMSG;
                p += (size_t) ih.item_len + ih.result_len;
                failed += ih.status != 0;
                n_special += ih.status != 0 && ih.status == special;
        }
        if (p != end)
                return -EBADMSG;
        if (ret_failed)
                *ret_failed = failed;
        if (ret_special)
                *ret_special = n_special;
        return 0;
}

void results_item_iter_init(ResultsItemIter *it, const ResultsBlockHeader *h, const void *payload) {
        it->p = payload;
        it->end = (const char *) payload + h->payload_len;
        it->next_index = h->first;
        it->v2 = h->magic == RESULTS_BLOCK_MAGIC_V2;
}

bool results_item_iter_next(ResultsItemIter *it, ResultsItem *ret) {
        ResultsItemHeader ih;

        if ((size_t) (it->end - it->p) < sizeof(ih))
                return false;
        memcpy(&ih, it->p, sizeof(ih));
        it->p += sizeof(ih);
        ret->meta = (ResultsMeta){};
        /* Only verified blocks are walked: the joblog is whole. */
        if (it->v2 && !get_meta(&it->p, it->end, &ret->meta))
                return false;
        ret->index = it->next_index++;
        ret->item = it->p;
        ret->item_len = ih.item_len;
        it->p += ih.item_len;
        ret->result = it->p;
        ret->result_len = ih.result_len;
        it->p += ih.result_len;
        ret->status = ih.status;
        return true;
}

static int ref_cmp(const void *a, const void *b) {
        const ResultsBlockRef *x = a, *y = b;
        return x->first < y->first ? -1 : x->first > y->first;
}

void results_file_close(ResultsFile *f) {
        free(f->blocks);
        free(f->buf);
        *f = (ResultsFile){ .fd = -1 };
}

int results_file_open(ResultsFile *f, int fd, uint64_t limit, uint64_t n_items) {
        struct stat st;
        ResultsFileHeader fh;
        uint64_t off, size;
        size_t cap = 0;
        bool strict = limit != UINT64_MAX;
        ssize_t n;
        int r;

        *f = (ResultsFile){ .fd = fd, .n_items = n_items };
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        size = (uint64_t) st.st_size;
        if (strict) {
                if (size < limit)
                        return -ENODATA; /* shorter than what was committed */
                size = limit;
        }
        f->size = size;
        if (size == 0)
                return 0; /* nothing committed yet */
        n = pread_full(fd, &fh, sizeof(fh), 0);
        if (n < 0)
                return (int) n;
        if ((size_t) n < sizeof(fh) || size < sizeof(fh) || results_file_header_check(&fh) < 0)
                return strict || (size_t) n == sizeof(fh) ? -EBADMSG : 0;
        f->job_id = fh.job_id;

        for (off = sizeof(fh); off < size;) {
                ResultsBlockHeader h;
                n = pread_full(fd, &h, sizeof(h), (off_t) off);
                if (n < 0) {
                        r = (int) n;
                        goto fail;
                }
                if ((size_t) n < sizeof(h) || size - off < sizeof(h) || results_block_header_check(&h, n_items) < 0 ||
                    size - off - sizeof(h) < h.payload_len)
                        break;
                if (GREEDY_REALLOC(f->blocks, cap, f->n_blocks + 1) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
                f->blocks[f->n_blocks++] = (ResultsBlockRef){
                        .first = h.first, .count = h.count, .payload_len = h.payload_len, .offset = off };
                f->n_results += h.count;
                off += sizeof(h) + h.payload_len;
        }
        f->valid_end = off;
        if (strict && off != size) {
                r = -EBADMSG;
                goto fail;
        }

        if (f->n_blocks > 1)
                qsort(f->blocks, f->n_blocks, sizeof(*f->blocks), ref_cmp);
        for (size_t i = 1; i < f->n_blocks; i++)
                if (f->blocks[i - 1].first + f->blocks[i - 1].count > f->blocks[i].first) {
                        r = -ENOTUNIQ;
                        goto fail;
                }
        return 0;

fail:
        results_file_close(f);
        return r;
}

int results_file_read_block(ResultsFile *f, size_t k, ResultsBlockHeader *ret_header, const char **ret_payload) {
        const ResultsBlockRef *ref = &f->blocks[k];
        size_t len = sizeof(ResultsBlockHeader) + ref->payload_len;
        ssize_t n;

        if (len > f->buf_cap) {
                char *nb = realloc(f->buf, len);
                if (!nb)
                        return -ENOMEM;
                f->buf = nb;
                f->buf_cap = len;
        }
        n = pread_full(f->fd, f->buf, len, (off_t) ref->offset);
        if (n < 0)
                return (int) n;
        if ((size_t) n != len || results_block_verify(f->buf, len, f->n_items) < 0)
                return -EBADMSG;
        memcpy(ret_header, f->buf, sizeof(*ret_header));
        /* The file may have changed since it was indexed. */
        if (ret_header->first != ref->first || ret_header->count != ref->count)
                return -EBADMSG;
        *ret_payload = f->buf + sizeof(ResultsBlockHeader);
        return 0;
}

size_t results_file_find(const ResultsFile *f, uint64_t index) {
        size_t lo = 0, hi = f->n_blocks;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (f->blocks[mid].first + f->blocks[mid].count <= index)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}
