/* SPDX-License-Identifier: MIT */
/*
 * mplock module ABI: the one public header of mplock.
 *
 * A module is a shared object that defines one symbol, `mplock_module`, with
 * MPLOCK_MODULE_DEFINE(). Build it with
 *
 *     cc -shared -fPIC $(pkg-config --cflags mplock-module) m.c -o m.so
 *
 * and submit it with `mplockctl submit --module ./m.so ...`. See module.md.
 *
 * Callbacks, and the process they run in:
 *   init     optional; once in each worker process, before any item. Gets the
 *            job's shared data; what it stores in *state is given to process
 *            and fini in that worker.
 *   process  required; in worker processes, many at a time. Gets one item, or
 *            up to batch_size items when the job was submitted with
 *            --batch-size N > 1, and sets one result (or error) per item.
 *   fini     optional; once in each worker that ends normally.
 *   save     optional; in the job runner only, never concurrently, with a
 *            batch of finished items every save_batch results and at the end.
 *            At-least-once: after a crash, the batch that was being saved may
 *            be given to save again.
 *
 * A worker that crashes or is killed is replaced; the item it was working on
 * counts one attempt. Everything here is C99 and has no link-time dependency
 * on mplock: the host's services are reached through ctx->api.
 */
#ifndef MPLOCK_MODULE_H
#define MPLOCK_MODULE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change. A module built for another version is
 * refused when the job is submitted. */
#define MPLOCK_MODULE_ABI_VERSION 1
#define MPLOCK_MODULE_SYMBOL "mplock_module"

/* Largest result (or error message) one item may produce. */
#define MPLOCK_RESULT_MAX (16u * 1024u * 1024u)

/* ctx->worker in the job runner, where save is called. */
#define MPLOCK_WORKER_SAVER UINT32_MAX

/* One input item. data points into a read-only mapping of the job's input
 * list and is NUL-terminated (the NUL is not counted in len); it stays valid
 * until process returns. Items are identified by index, never by text. */
typedef struct mplock_item {
        const char *data;
        size_t len;
        uint64_t index; /* 0-based position in the input list */
} mplock_item;

/* One finished item, as given to save. For a failed item, status is its
 * non-zero error code and result holds the error message. */
typedef struct mplock_entry {
        uint64_t index;
        const char *item;
        size_t item_len;
        const char *result;
        size_t result_len;
        int32_t status;
} mplock_entry;

struct mplock_ctx;
struct mplock_results;

/* Services the host gives a module. Every function returns 0 or a negative
 * errno: -ENOENT for a missing key, -EINVAL for a value of another type,
 * -E2BIG for a result over MPLOCK_RESULT_MAX, -ERANGE for a bad index or an
 * integer outside int64_t. */
typedef struct mplock_api {
        uint32_t size; /* sizeof(struct mplock_api) of the host */

        /* The shared data is the JSON object given at submission; these look
         * up its top-level keys. Strings stay valid for the process's life. */
        int (*shared_int)(const struct mplock_ctx *ctx, const char *key, int64_t *ret);
        int (*shared_double)(const struct mplock_ctx *ctx, const char *key, double *ret);
        int (*shared_bool)(const struct mplock_ctx *ctx, const char *key, int *ret);
        int (*shared_string)(const struct mplock_ctx *ctx, const char *key, const char **ret);
        /* For an array value: its length, and its elements as strings
         * (numbers are given in their JSON spelling). */
        int (*shared_array_size)(const struct mplock_ctx *ctx, const char *key, size_t *ret);
        int (*shared_array_string)(const struct mplock_ctx *ctx, const char *key, size_t i, const char **ret);

        /* Results of process: i is the position in the items array. Setting
         * a result twice keeps the last one. */
        int (*result_set)(struct mplock_results *res, size_t i, const void *data, size_t len);
        int (*result_error)(struct mplock_results *res, size_t i, int32_t code, const char *message);
} mplock_api;

typedef struct mplock_ctx {
        uint32_t size; /* sizeof(struct mplock_ctx) of the host */
        uint64_t job_id;
        uint32_t worker;  /* 0-based worker number, MPLOCK_WORKER_SAVER in save */
        uint32_t workers; /* worker processes of this job */
        uint32_t batch_size;
        const char *output_dir; /* absolute; results and the job log live here */
        const char *shared_json; /* the shared data as JSON text, "{}" if none */
        const mplock_api *api;
        void *host; /* the host's; modules leave it alone */
} mplock_ctx;

typedef struct mplock_results {
        const mplock_api *api;
        void *host;
} mplock_results;

struct mplock_module {
        uint32_t abi_version; /* MPLOCK_MODULE_ABI_VERSION */
        uint32_t size;        /* sizeof(struct mplock_module) */
        const char *name;

        /* 0 on success; a negative errno (or any negative number) fails the
         * worker's start, which the job reports. */
        int (*init)(const mplock_ctx *ctx, void **state);
        /* n >= 1 items. An item left without result_set/result_error fails
         * with "no result". A negative return fails every item of the call
         * that has no result yet, with the returned value as its code. */
        int (*process)(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                       mplock_results *out);
        void (*fini)(const mplock_ctx *ctx, void *state);
        /* 0 on success; a negative return fails the job (the batch is given
         * to save again when the job is resumed). */
        int (*save)(const mplock_ctx *ctx, const mplock_entry *entries, size_t n);
};

#define MPLOCK_MODULE_DEFINE(...)                                                                    \
        __attribute__((visibility("default"))) const struct mplock_module mplock_module = {          \
                .abi_version = MPLOCK_MODULE_ABI_VERSION,                                            \
                .size = sizeof(struct mplock_module),                                                \
                __VA_ARGS__}

/* Convenience wrappers. */
static inline int mplock_result_set(mplock_results *res, size_t i, const void *data, size_t len) {
        return res->api->result_set(res, i, data, len);
}

static inline int mplock_result_string(mplock_results *res, size_t i, const char *s) {
        return res->api->result_set(res, i, s, strlen(s));
}

static inline int mplock_result_error(mplock_results *res, size_t i, int32_t code, const char *message) {
        return res->api->result_error(res, i, code, message);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline int mplock_result_printf(mplock_results *res, size_t i, const char *fmt, ...) {
        char small[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0)
                return -22; /* EINVAL */
        if ((size_t) n < sizeof(small))
                return res->api->result_set(res, i, small, (size_t) n);
        {
                /* Heap, not stack: a result may be up to MPLOCK_RESULT_MAX. */
                char *big = (char *) malloc((size_t) n + 1);
                int r;
                if (!big)
                        return -12; /* ENOMEM */
                va_start(ap, fmt);
                (void) vsnprintf(big, (size_t) n + 1, fmt, ap);
                va_end(ap);
                r = res->api->result_set(res, i, big, (size_t) n);
                free(big);
                return r;
        }
}

#ifdef __cplusplus
}
#endif

#endif
