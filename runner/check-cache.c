/* SPDX-License-Identifier: MIT */
#include "check-cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "crc32c.h"
#include "macro.h"

int check_file_identify(const char *path, CheckFile *ret) {
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        *ret = (CheckFile){ .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim,
                            .ctime = st.st_ctim };
        return 0;
}

static bool same_time(struct timespec a, struct timespec b) {
        return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool same_file(const CheckFile *a, const CheckFile *b) {
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size && same_time(a->mtime, b->mtime) &&
               same_time(a->ctime, b->ctime);
}

static ssize_t find(const CheckCache *c, const char *path) {
        for (size_t i = 0; i < CHECK_CACHE_MAX; i++)
                if (c->entries[i].path && strcmp(c->entries[i].path, path) == 0)
                        return (ssize_t) i;
        return -1;
}

bool check_cache_hit(const CheckCache *c, const char *path, const CheckFile *now, uint64_t now_usec) {
        ssize_t i = find(c, path);
        const CheckCacheEntry *e = i >= 0 ? &c->entries[i] : NULL;

        /* A clock that went back counts as expired too. */
        return e && now_usec >= e->when_usec && now_usec - e->when_usec < CHECK_CACHE_USEC &&
               same_file(&e->file, now);
}

int check_cache_remember(CheckCache *c, const char *path, const CheckFile *f, uint64_t now_usec) {
        ssize_t i = find(c, path);
        CheckCacheEntry *slot = i >= 0 ? &c->entries[i] : NULL;
        char *copy = NULL;

        if (!slot) {
                copy = strdup(path);
                if (!copy)
                        return -ENOMEM;
                slot = &c->entries[0];
                for (size_t k = 0; k < CHECK_CACHE_MAX && slot->path; k++)
                        if (!c->entries[k].path || c->entries[k].when_usec < slot->when_usec)
                                slot = &c->entries[k];
                free(slot->path);
                slot->path = copy;
        }
        slot->file = *f;
        slot->when_usec = now_usec;
        return 0;
}

void check_cache_clear(CheckCache *c) {
        for (size_t i = 0; i < CHECK_CACHE_MAX; i++) {
                free(c->entries[i].path);
                c->entries[i].path = NULL;
        }
}

int check_file_stamp(const char *path, char buf[static CHECK_FILE_STAMP_MAX]) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        _cleanup_free_ char *chunk = NULL;
        uint64_t total = 0;
        uint32_t crc = 0;
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        chunk = malloc(1 << 20);
        if (!chunk)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, chunk, 1 << 20);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                total += (uint64_t) n;
                if (total > CHECK_FILE_STAMP_READ_MAX)
                        return -EFBIG;
                crc = crc32c(crc, chunk, (size_t) n);
        }
        (void) snprintf(buf, CHECK_FILE_STAMP_MAX, "%llx:%08x", (unsigned long long) total, crc);
        return 0;
}
