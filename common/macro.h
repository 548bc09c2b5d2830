/* SPDX-License-Identifier: MIT */
#pragma once

/* Small helpers shared by every binary: cleanup attributes in the style of
 * systemd's macro.h, so that error paths cannot leak. */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* For APIs that take a non-const pointer they do not write through (iovec,
 * munmap): explicit, and silent under -Wcast-qual. */
#define UNCONST(p) ((void *) (uintptr_t) (p))

/* Take ownership of a pointer or fd out of a _cleanup_ variable. */
#define TAKE_PTR(p)                        \
        ({                                 \
                __typeof__(p) _p_ = (p);   \
                (p) = NULL;                \
                _p_;                       \
        })
#define TAKE_FD(fd)                        \
        ({                                 \
                int _fd_ = (fd);           \
                (fd) = -1;                 \
                _fd_;                      \
        })

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* A malloc'd copy of p[0..n); NULL when out of memory. */
static inline void *memdup(const void *p, size_t n) {
        void *q = malloc(n ? n : 1);

        return q ? memcpy(q, p, n) : NULL;
}

static inline void freep(void *p) {
        free(*(void **) p);
}

/* Closes and keeps errno: cleanup must not clobber the error being reported. */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

/* Grows the array *p (of *cap elements of size) to hold at least need,
 * doubling: amortized O(1) appends, as systemd's GREEDY_REALLOC. 0 or
 * -ENOMEM (then *p and *cap are unchanged). */
static inline int greedy_realloc(void **p, size_t *cap, size_t need, size_t size, size_t min) {
        size_t ncap;
        void *n;

        if (need <= *cap)
                return 0;
        ncap = *cap * 2 > need ? *cap * 2 : need;
        if (ncap < min)
                ncap = min;
        if (ncap > SIZE_MAX / size)
                return -ENOMEM;
        n = realloc(*p, ncap * size);
        if (!n)
                return -ENOMEM;
        *p = n;
        *cap = ncap;
        return 0;
}
#define GREEDY_REALLOC(array, cap, need) \
        greedy_realloc((void **) &(array), &(cap), (need), sizeof((array)[0]), 16)

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* -errno of the last failed call, never 0 (so a caller never mistakes a
 * failure whose errno was lost for success). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}

static inline int streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)

static inline bool has_prefix(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}
