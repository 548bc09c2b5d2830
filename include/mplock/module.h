/* SPDX-License-Identifier: MIT */
/*
 * mplock module ABI 1.2: the one public header of mplock.
 *
 * A module is a shared object that defines one symbol, `mplock_module`, with
 * MPLOCK_MODULE_DEFINE(). Build it with
 *
 *     cc -shared -fPIC $(pkg-config --cflags mplock-module) m.c -o m.so
 *
 * and submit it with `mplockctl submit --module ./m.so ...`. See
 * mplock-module(3) and docs/module.md.
 *
 * Callbacks, and the process they run in:
 *   init       optional; once in each worker process, before any item. Gets
 *              the job's shared data; what it stores in *state is given to
 *              process and fini in that worker.
 *   process    required; in worker processes, many at a time. Gets one item,
 *              or up to batch_size items when the job was submitted with
 *              --batch-size N > 1, and sets one result (or error) per item.
 *   fini       optional; once in each worker that ends normally.
 *   save_init, save_batch, save_fini (1.1)
 *              optional; in the job runner only, never concurrently: a
 *              state made once, batches of finished items every save_batch
 *              results and a last one at the end, then the state's end.
 *   save       optional, the 1.0 form of save_batch (without a state).
 *
 * A worker that crashes or is killed is replaced; the item it was working on
 * counts one attempt. Nothing here needs the C library or has a link-time
 * dependency on mplock: the host's services are reached through ctx->api.
 *
 * Compatibility. MPLOCK_ABI_MAJOR changes only with a change that breaks
 * built modules; a module of another major version is refused when the job
 * is submitted. A minor version only adds: fields at the end of the structs
 * below, each of which carries its size (mplock_module.size, mplock_api.size,
 * mplock_ctx.size, mplock_batch.size). A module says the least minor version
 * it needs in mplock_module.abi_minor (MPLOCK_MODULE_DEFINE puts the one it
 * was built with) and is refused by an older host; a module that sets it
 * lower and uses newer services checks each with MPLOCK_API_HAS() first.
 * Modules built against 1.0 (without abi_minor) keep loading.
 */
#ifndef MPLOCK_MODULE_H
#define MPLOCK_MODULE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MPLOCK_ABI_MAJOR 1
#define MPLOCK_ABI_MINOR 2
/* What mplock_module.abi_version holds: the major version. */
#define MPLOCK_MODULE_ABI_VERSION MPLOCK_ABI_MAJOR
#define MPLOCK_MODULE_SYMBOL "mplock_module"

/* Largest result (or error message) one item may produce. */
#define MPLOCK_RESULT_MAX (16u * 1024u * 1024u)

/* ctx->worker in the job runner, where the save callbacks are called. */
#define MPLOCK_WORKER_SAVER UINT32_MAX

/* Error numbers, as the host returns them (negated) and as callbacks may
 * return them: Linux's values, named here so that a module needs no
 * <errno.h>. Any other negative number works too. */
#define MPLOCK_EPERM 1
#define MPLOCK_ENOENT 2
#define MPLOCK_EIO 5
#define MPLOCK_E2BIG 7
#define MPLOCK_ENOMEM 12
#define MPLOCK_EACCES 13
#define MPLOCK_EEXIST 17
#define MPLOCK_EINVAL 22
#define MPLOCK_ENOSPC 28
#define MPLOCK_ERANGE 34

/* The codes of errors the host records itself; keep a module's own codes
 * above -1000. */
#define MPLOCK_ERR_NO_RESULT (-1001) /* process set nothing for the item */
#define MPLOCK_ERR_CRASHED (-1002)   /* the worker died on it max_attempts times */
#define MPLOCK_ERR_TOO_LARGE (-1003) /* item and result too large for a results block */
#define MPLOCK_ERR_PROCESS (-1004)   /* an error set with code 0 */

/* Levels of api->log, as syslog's. */
#define MPLOCK_LOG_ERR 3
#define MPLOCK_LOG_WARNING 4
#define MPLOCK_LOG_NOTICE 5
#define MPLOCK_LOG_INFO 6
#define MPLOCK_LOG_DEBUG 7

/* Types of shared data values (api->shared_type). */
#define MPLOCK_JSON_NULL 0
#define MPLOCK_JSON_BOOL 1
#define MPLOCK_JSON_INT 2
#define MPLOCK_JSON_DOUBLE 3
#define MPLOCK_JSON_STRING 4
#define MPLOCK_JSON_ARRAY 5
#define MPLOCK_JSON_OBJECT 6

/* Flags of api->result_fail. */
#define MPLOCK_FAIL_PERMANENT 1u /* no other attempt: the error is final */

/* What save_init may return besides 0 (1.2): this job has nothing to
 * save. The host then calls no save_batch or save in it and commits items
 * without waiting for them to be saved; save_fini still comes. (A 1.1 host
 * takes it as 0 and saves as usual.) Other positive values are reserved
 * and taken as 0. */
#define MPLOCK_SAVE_NOTHING 1

/* Flags of mplock_batch. */
#define MPLOCK_BATCH_LAST 1u   /* no batch follows: every item of the job is in */
#define MPLOCK_BATCH_RESUMED 2u /* from a run that resumes an earlier one: items
                                 * of it may have been given to save before */

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

/* A batch for save_batch (1.1). */
typedef struct mplock_batch {
        uint32_t size;  /* sizeof(struct mplock_batch) of the host */
        uint32_t flags; /* MPLOCK_BATCH_* */
        uint64_t seq;   /* 1, 2, ...: the batches of this run of the job */
        const mplock_entry *entries;
        size_t n; /* save_batch entries; fewer, or none, in the last */
} mplock_batch;

struct mplock_ctx;
struct mplock_results;

/* Services the host gives a module. Every function that returns int returns
 * 0 or a negative error: -MPLOCK_ENOENT for a missing key, -MPLOCK_EINVAL for
 * a value of another type, -MPLOCK_E2BIG for a result over
 * MPLOCK_RESULT_MAX, -MPLOCK_ERANGE for a bad index or an integer outside
 * int64_t. Strings given out stay valid for the life of the process. */
typedef struct mplock_api {
        uint32_t size; /* sizeof(struct mplock_api) of the host */

        /* 1.0. The shared data is the JSON object given at submission; these
         * look up its top-level keys. */
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

        /* 1.1. An error with flags: MPLOCK_FAIL_PERMANENT records it as the
         * item's outcome at once, without the job's other attempts. */
        int (*result_fail)(struct mplock_results *res, size_t i, int32_t code, const char *message,
                           uint32_t flags);
        /* Which attempt at item i this call is: 1 the first time. */
        uint32_t (*attempt)(const struct mplock_results *res, size_t i);
        /* A result formatted as printf's. */
        int (*result_vprintf)(struct mplock_results *res, size_t i, const char *fmt, va_list ap);

        /* A line in the job log (mplockctl logs) and the journal, with the job's
         * id and the worker's number; printf's format. */
        void (*log)(const struct mplock_ctx *ctx, int level, const char *fmt, ...)
#if defined(__GNUC__)
                __attribute__((format(printf, 3, 4)))
#endif
                ;
        void (*vlog)(const struct mplock_ctx *ctx, int level, const char *fmt, va_list ap);
        /* The reason of the error init or save_init is about to return: the
         * job's failure then says it instead of a number. */
        void (*error_message)(const struct mplock_ctx *ctx, const char *message);

        /* The shared data at a JSON pointer (RFC 6901): "" is the whole
         * object, "/model/layers/0" its key "model", that key "layers",
         * element 0; "~1" stands for "/" and "~0" for "~" in a key. */
        int (*shared_type)(const struct mplock_ctx *ctx, const char *pointer, int *ret);
        int (*shared_get_int)(const struct mplock_ctx *ctx, const char *pointer, int64_t *ret);
        int (*shared_get_double)(const struct mplock_ctx *ctx, const char *pointer, double *ret);
        int (*shared_get_bool)(const struct mplock_ctx *ctx, const char *pointer, int *ret);
        int (*shared_get_string)(const struct mplock_ctx *ctx, const char *pointer, const char **ret,
                                 size_t *ret_len);
        /* Elements of an array, or keys of an object. */
        int (*shared_count)(const struct mplock_ctx *ctx, const char *pointer, size_t *ret);
        /* The i-th key of an object, in the order given: a module can refuse
         * keys it does not know (a misspelt option). */
        int (*shared_key)(const struct mplock_ctx *ctx, const char *pointer, size_t i, const char **ret);
        /* An array of numbers into out[0..max): *ret_n is how many it holds
         * (-MPLOCK_E2BIG, nothing written, if more than max). */
        int (*shared_doubles)(const struct mplock_ctx *ctx, const char *pointer, double *out, size_t max,
                              size_t *ret_n);
} mplock_api;

typedef struct mplock_ctx {
        uint32_t size; /* sizeof(struct mplock_ctx) of the host */
        uint64_t job_id;
        uint32_t worker;  /* 0-based worker number, MPLOCK_WORKER_SAVER in the saver */
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
        uint32_t abi_version; /* MPLOCK_ABI_MAJOR */
        uint32_t size;        /* sizeof(struct mplock_module) */
        const char *name;

        /* 0 on success; a negative number fails the worker's start, which
         * fails the job (with api->error_message's text if it was set). */
        int (*init)(const mplock_ctx *ctx, void **state);
        /* n >= 1 items. An item left without result_set/result_error fails
         * with "no result". A negative return fails every item of the call
         * that has no result yet, with the returned value as its code; a
         * positive one is reserved and counts as 0 (as for every callback). */
        int (*process)(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                       mplock_results *out);
        void (*fini)(const mplock_ctx *ctx, void *state);
        /* 1.0 saving: 0 on success; a negative return fails the job (the
         * batch is given to save again when the job is resumed). */
        int (*save)(const mplock_ctx *ctx, const mplock_entry *entries, size_t n);

        /* 1.1 */
        uint32_t abi_minor; /* the least minor version of the host this needs */
        uint32_t reserved;
        /* Once in the runner, before the first batch: what it stores in
         * *save_state goes to save_batch and save_fini. Returns 0,
         * MPLOCK_SAVE_NOTHING (1.2: no batches in this job), or a negative
         * error, which fails the job. */
        int (*save_init)(const mplock_ctx *ctx, void **save_state);
        /* Saving with a state: as save, and with the batch's number and
         * flags; the last batch (MPLOCK_BATCH_LAST, maybe empty) comes when
         * every item is in. Used instead of save when both are set. */
        int (*save_batch)(const mplock_ctx *ctx, void *save_state, const mplock_batch *batch);
        /* Once the runner ends normally (after the last batch, or when the
         * job is stopped or paused), whether or not save_init was set. */
        void (*save_fini)(const mplock_ctx *ctx, void *save_state);
};

/* Whether the host has api member m (from a minor version later than the
 * one the module requires). */
#define MPLOCK_API_HAS(ctx, m) \
        ((ctx)->api->size >= offsetof(struct mplock_api, m) + sizeof(((const struct mplock_api *) 0)->m))

#define MPLOCK_MODULE_DEFINE(...)                                                                    \
        __attribute__((visibility("default"))) const struct mplock_module mplock_module = {          \
                .abi_version = MPLOCK_ABI_MAJOR,                                                     \
                .size = sizeof(struct mplock_module),                                                \
                .abi_minor = MPLOCK_ABI_MINOR,                                                       \
                __VA_ARGS__}

/* Convenience wrappers. */
static inline int mplock_result_set(mplock_results *res, size_t i, const void *data, size_t len) {
        return res->api->result_set(res, i, data, len);
}

static inline int mplock_result_string(mplock_results *res, size_t i, const char *s) {
        size_t n = 0;

        while (s[n])
                n++;
        return res->api->result_set(res, i, s, n);
}

static inline int mplock_result_error(mplock_results *res, size_t i, int32_t code, const char *message) {
        return res->api->result_error(res, i, code, message);
}

/* An error that is not retried: the item's outcome at once. */
static inline int mplock_result_fail(mplock_results *res, size_t i, int32_t code, const char *message) {
        return res->api->result_fail(res, i, code, message, MPLOCK_FAIL_PERMANENT);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline int mplock_result_printf(mplock_results *res, size_t i, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = res->api->result_vprintf(res, i, fmt, ap);
        va_end(ap);
        return r;
}

#define mplock_log(ctx, level, ...) ((ctx)->api->log((ctx), (level), __VA_ARGS__))

#ifdef __cplusplus
}
#endif

#endif
