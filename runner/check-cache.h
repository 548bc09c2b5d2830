/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

/* The agent's memory of modules that passed a submission check: a check of
 * the same file (same device, inode, size, modification and change times)
 * within CHECK_CACHE_USEC needs no process, no dlopen. Only the module's
 * verdict is kept; the output directory is checked every time. The verdict
 * is a courtesy (the runner loads the module again and reports what fails),
 * so a module whose libraries changed under it is found at its run. */

#define CHECK_CACHE_MAX 32
#define CHECK_CACHE_USEC (60u * 1000000u)

typedef struct CheckFile {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
} CheckFile;

typedef struct CheckCacheEntry {
        char *path; /* NULL: a free slot */
        CheckFile file;
        uint64_t when_usec;
} CheckCacheEntry;

typedef struct CheckCache {
        CheckCacheEntry entries[CHECK_CACHE_MAX];
} CheckCache;

/* What stat() says of path now: 0, or -errno. */
int check_file_identify(const char *path, CheckFile *ret);
/* What a module file holds, as text ("size:crc32c" in hex), kept in
 * job.json so that a run loads only what was submitted: by content, so
 * that a file put back as it was is the same module. Read as whoever
 * calls (the submitter), at most CHECK_FILE_STAMP_READ_MAX bytes. */
#define CHECK_FILE_STAMP_MAX 40
#define CHECK_FILE_STAMP_READ_MAX (UINT64_C(1) << 30)
int check_file_stamp(const char *path, char buf[static CHECK_FILE_STAMP_MAX]);
/* Whether path was found good, as the file it is now, within the window. */
bool check_cache_hit(const CheckCache *c, const char *path, const CheckFile *now, uint64_t now_usec);
/* Remembers path as good, as the file it was when its check began; the
 * oldest entry goes when the cache is full. -ENOMEM leaves it unchanged. */
int check_cache_remember(CheckCache *c, const char *path, const CheckFile *f, uint64_t now_usec);
void check_cache_clear(CheckCache *c);
