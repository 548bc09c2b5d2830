/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "json-util.h"
#include "macro.h"

/* The services for modules (mplock_api). Modules are untrusted only in
 * that they may be wrong: every argument is checked, every error is a
 * negative errno, nothing here aborts. */

/* --- shared data ---------------------------------------------------------- */


static json_object *shared_lookup(const mplock_ctx *ctx, const char *key) {
        const Host *h = ctx ? ctx->host : NULL;

        if (!h || !key)
                return NULL;
        return json_get(h->shared, key);
}

static int int_of(json_object *v, int64_t *ret);
static int double_of(json_object *v, double *ret);

static int shared_int(const mplock_ctx *ctx, const char *key, int64_t *ret) {
        json_object *v = shared_lookup(ctx, key);

        return v ? int_of(v, ret) : -ENOENT;
}

static int shared_double(const mplock_ctx *ctx, const char *key, double *ret) {
        json_object *v = shared_lookup(ctx, key);

        return v ? double_of(v, ret) : -ENOENT;
}

static int shared_bool(const mplock_ctx *ctx, const char *key, int *ret) {
        json_object *v = shared_lookup(ctx, key);

        if (!v)
                return -ENOENT;
        if (!json_object_is_type(v, json_type_boolean))
                return -EINVAL;
        *ret = json_object_get_boolean(v);
        return 0;
}

static int shared_string(const mplock_ctx *ctx, const char *key, const char **ret) {
        json_object *v = shared_lookup(ctx, key);

        if (!v)
                return -ENOENT;
        if (!json_object_is_type(v, json_type_string))
                return -EINVAL;
        *ret = json_object_get_string(v);
        return 0;
}

static int shared_array_size(const mplock_ctx *ctx, const char *key, size_t *ret) {
        json_object *v = shared_lookup(ctx, key);

        if (!v)
                return -ENOENT;
        if (!json_object_is_type(v, json_type_array))
                return -EINVAL;
        *ret = json_object_array_length(v);
        return 0;
}

static int shared_array_string(const mplock_ctx *ctx, const char *key, size_t i, const char **ret) {
        json_object *v = shared_lookup(ctx, key), *e;

        if (!v)
                return -ENOENT;
        if (!json_object_is_type(v, json_type_array))
                return -EINVAL;
        if (i >= json_object_array_length(v))
                return -ERANGE;
        e = json_object_array_get_idx(v, i);
        if (!e || json_object_is_type(e, json_type_object) || json_object_is_type(e, json_type_array))
                return -EINVAL;
        /* json-c caches the string form inside the element: it lives as
         * long as the shared data, i.e. the whole process. */
        *ret = json_object_get_string(e);
        return 0;
}

/* The value at an RFC 6901 pointer into the shared data: "" is the whole
 * object; "/a/0" key "a", then element 0; "~1" is "/", "~0" "~". -ENOENT
 * if nothing is there, -EINVAL for a malformed pointer. */
static int shared_at(const mplock_ctx *ctx, const char *pointer, json_object **ret) {
        const Host *h = ctx ? ctx->host : NULL;
        json_object *v;
        char token[1024];

        if (!h || !pointer || (pointer[0] && pointer[0] != '/'))
                return -EINVAL;
        v = h->shared;
        while (*pointer) {
                size_t n = 0;
                const char *p = pointer + 1;

                for (; *p && *p != '/'; p++) {
                        char c = *p;
                        if (c == '~') {
                                if (p[1] != '0' && p[1] != '1')
                                        return -EINVAL;
                                c = p[1] == '0' ? '~' : '/';
                                p++;
                        }
                        if (n + 1 >= sizeof(token))
                                return -EINVAL;
                        token[n++] = c;
                }
                token[n] = '\0';
                pointer = p;
                if (json_object_is_type(v, json_type_object)) {
                        if (!json_object_object_get_ex(v, token, &v))
                                return -ENOENT;
                } else if (json_object_is_type(v, json_type_array)) {
                        char *end = NULL;
                        unsigned long long i;
                        if (!token[0] || (token[0] == '0' && token[1]) || token[0] < '0' || token[0] > '9')
                                return -ENOENT;
                        i = strtoull(token, &end, 10);
                        if (*end || i >= json_object_array_length(v))
                                return -ENOENT;
                        v = json_object_array_get_idx(v, (size_t) i);
                } else
                        return -ENOENT;
        }
        *ret = v;
        return 0;
}

static int shared_type(const mplock_ctx *ctx, const char *pointer, int *ret) {
        json_object *v;
        int r = shared_at(ctx, pointer, &v);

        if (r < 0)
                return r;
        switch (v ? json_object_get_type(v) : json_type_null) {
        case json_type_boolean:
                *ret = MPLOCK_JSON_BOOL;
                break;
        case json_type_int:
                *ret = MPLOCK_JSON_INT;
                break;
        case json_type_double:
                *ret = MPLOCK_JSON_DOUBLE;
                break;
        case json_type_string:
                *ret = MPLOCK_JSON_STRING;
                break;
        case json_type_array:
                *ret = MPLOCK_JSON_ARRAY;
                break;
        case json_type_object:
                *ret = MPLOCK_JSON_OBJECT;
                break;
        default:
                *ret = MPLOCK_JSON_NULL;
        }
        return 0;
}

/* json-c keeps integers above INT64_MAX as uint64 and clamps them when
 * asked for an int64: refuse instead of lying. */
static int int_of(json_object *v, int64_t *ret) {
        if (!v || !json_object_is_type(v, json_type_int))
                return -EINVAL;
        if (json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) != (uint64_t) INT64_MAX)
                return -ERANGE;
        *ret = json_object_get_int64(v);
        return 0;
}

static int double_of(json_object *v, double *ret) {
        if (!v || (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)))
                return -EINVAL;
        *ret = json_object_get_double(v);
        return 0;
}

static int shared_get_int(const mplock_ctx *ctx, const char *pointer, int64_t *ret) {
        json_object *v;
        int r = shared_at(ctx, pointer, &v);

        return r < 0 ? r : int_of(v, ret);
}

static int shared_get_double(const mplock_ctx *ctx, const char *pointer, double *ret) {
        json_object *v;
        int r = shared_at(ctx, pointer, &v);

        return r < 0 ? r : double_of(v, ret);
}

static int shared_get_bool(const mplock_ctx *ctx, const char *pointer, int *ret) {
        json_object *v;
        int r = shared_at(ctx, pointer, &v);

        if (r < 0)
                return r;
        if (!v || !json_object_is_type(v, json_type_boolean))
                return -EINVAL;
        *ret = json_object_get_boolean(v);
        return 0;
}

static int shared_get_string(const mplock_ctx *ctx, const char *pointer, const char **ret, size_t *ret_len) {
        json_object *v;
        int r = shared_at(ctx, pointer, &v);

        if (r < 0)
                return r;
        if (!v || !json_object_is_type(v, json_type_string))
                return -EINVAL;
        *ret = json_object_get_string(v);
        if (ret_len)
                *ret_len = (size_t) json_object_get_string_len(v);
        return 0;
}

static int shared_count(const mplock_ctx *ctx, const char *pointer, size_t *ret) {
        json_object *v;
        int r = shared_at(ctx, pointer, &v);

        if (r < 0)
                return r;
        if (v && json_object_is_type(v, json_type_array))
                *ret = json_object_array_length(v);
        else if (v && json_object_is_type(v, json_type_object))
                *ret = (size_t) json_object_object_length(v);
        else
                return -EINVAL;
        return 0;
}

static int shared_key(const mplock_ctx *ctx, const char *pointer, size_t i, const char **ret) {
        json_object *v;
        size_t k = 0;
        int r = shared_at(ctx, pointer, &v);

        if (r < 0)
                return r;
        if (!v || !json_object_is_type(v, json_type_object))
                return -EINVAL;
        json_object_object_foreach(v, key, val) {
                (void) val;
                if (k++ == i) {
                        *ret = key;
                        return 0;
                }
        }
        return -ERANGE;
}

static int shared_doubles(const mplock_ctx *ctx, const char *pointer, double *out, size_t max, size_t *ret_n) {
        json_object *v;
        size_t n;
        int r = shared_at(ctx, pointer, &v);

        if (r < 0)
                return r;
        if (!v || !json_object_is_type(v, json_type_array))
                return -EINVAL;
        n = json_object_array_length(v);
        if (n > max)
                return -E2BIG;
        /* All checked before anything is written. */
        for (size_t i = 0; i < n; i++) {
                double d;
                r = double_of(json_object_array_get_idx(v, i), &d);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++)
                (void) double_of(json_object_array_get_idx(v, i), &out[i]);
        *ret_n = n;
        return 0;
}

/* --- results -------------------------------------------------------------- */

static int slot_store(ResultSlot *s, const void *data, size_t len) {
        if (len > s->cap) {
                size_t ncap = MAX(len, s->cap * 2);
                char *n = realloc(s->data, ncap ? ncap : 1);
                if (!n)
                        return -ENOMEM;
                s->data = n;
                s->cap = ncap;
        }
        if (len)
                memcpy(s->data, data, len);
        s->len = len;
        s->set = true;
        return 0;
}

static int result_set(mplock_results *res, size_t i, const void *data, size_t len) {
        ResultSlots *rs = res ? res->host : NULL;
        int r;

        if (!rs || i >= rs->n)
                return -ERANGE;
        if (len > MPLOCK_RESULT_MAX)
                return -E2BIG;
        if (len && !data)
                return -EINVAL;
        r = slot_store(&rs->slots[i], data, len);
        if (r == 0)
                rs->slots[i].status = 0;
        return r;
}

static int result_fail(mplock_results *res, size_t i, int32_t code, const char *message, uint32_t flags) {
        ResultSlots *rs = res ? res->host : NULL;
        size_t len;
        int r;

        if (!rs || i >= rs->n)
                return -ERANGE;
        if (flags & ~MPLOCK_FAIL_PERMANENT)
                return -EINVAL;
        if (!message)
                message = "error";
        len = strnlen(message, 65536);
        r = slot_store(&rs->slots[i], message, len);
        if (r == 0) {
                /* 0 means success in the results file; an error is never 0. */
                rs->slots[i].status = code != 0 ? code : MPLOCK_ERR_PROCESS;
                rs->slots[i].final = flags & MPLOCK_FAIL_PERMANENT;
        }
        return r;
}

static int result_error(mplock_results *res, size_t i, int32_t code, const char *message) {
        return result_fail(res, i, code, message, 0);
}

static uint32_t attempt(const mplock_results *res, size_t i) {
        const ResultSlots *rs = res ? res->host : NULL;

        return rs && i < rs->n ? MAX(rs->attempt, 1u) : 0;
}

static int result_vprintf(mplock_results *res, size_t i, const char *fmt, va_list ap) {
        ResultSlots *rs = res ? res->host : NULL;
        char small[256];
        _cleanup_free_ char *big = NULL;
        va_list aq;
        int n;

        if (!rs || i >= rs->n)
                return -ERANGE;
        va_copy(aq, ap);
        n = vsnprintf(small, sizeof(small), fmt, aq);
        va_end(aq);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n < sizeof(small))
                return result_set(res, i, small, (size_t) n);
        if ((size_t) n > MPLOCK_RESULT_MAX)
                return -E2BIG;
        big = malloc((size_t) n + 1);
        if (!big)
                return -ENOMEM;
        (void) vsnprintf(big, (size_t) n + 1, fmt, ap);
        return result_set(res, i, big, (size_t) n);
}

/* --- logging -------------------------------------------------------------- */

static void host_vlog(const mplock_ctx *ctx, int level, const char *fmt, va_list ap) {
        Host *h = ctx ? ctx->host : NULL;
        char msg[HOST_MESSAGE_MAX];

        if (!h || !fmt)
                return;
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        /* One line of printable text: it goes into logs. */
        for (char *p = msg; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = ' ';
        level = level < MPLOCK_LOG_ERR ? MPLOCK_LOG_ERR : level > MPLOCK_LOG_DEBUG ? MPLOCK_LOG_DEBUG : level;
        if (h->log)
                h->log(h->log_userdata, level, msg);
        else
                (void) fprintf(stderr, "%s\n", msg);
}

static void host_log(const mplock_ctx *ctx, int level, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        host_vlog(ctx, level, fmt, ap);
        va_end(ap);
}

static void error_message(const mplock_ctx *ctx, const char *message) {
        Host *h = ctx ? ctx->host : NULL;

        if (h && message)
                (void) snprintf(h->error_message, sizeof(h->error_message), "%s", message);
}

const mplock_api host_api = {
        .size = sizeof(mplock_api),
        .shared_int = shared_int,
        .shared_double = shared_double,
        .shared_bool = shared_bool,
        .shared_string = shared_string,
        .shared_array_size = shared_array_size,
        .shared_array_string = shared_array_string,
        .result_set = result_set,
        .result_error = result_error,
        .result_fail = result_fail,
        .attempt = attempt,
        .result_vprintf = result_vprintf,
        .log = host_log,
        .vlog = host_vlog,
        .error_message = error_message,
        .shared_type = shared_type,
        .shared_get_int = shared_get_int,
        .shared_get_double = shared_get_double,
        .shared_get_bool = shared_get_bool,
        .shared_get_string = shared_get_string,
        .shared_count = shared_count,
        .shared_key = shared_key,
        .shared_doubles = shared_doubles,
};

int result_slots_reset(ResultSlots *s, size_t n) {
        if (n > s->cap) {
                ResultSlot *ns = realloc(s->slots, n * sizeof(*ns));
                if (!ns)
                        return -ENOMEM;
                memset(ns + s->cap, 0, (n - s->cap) * sizeof(*ns));
                s->slots = ns;
                s->cap = n;
        }
        for (size_t i = 0; i < n; i++) {
                s->slots[i].set = s->slots[i].final = false;
                s->slots[i].len = 0;
                s->slots[i].status = 0;
        }
        s->n = n;
        return 0;
}

void result_slots_free(ResultSlots *s) {
        for (size_t i = 0; i < s->cap; i++)
                free(s->slots[i].data);
        free(s->slots);
        *s = (ResultSlots){};
}

int host_init(Host *h, const char *shared_json, const char *output, uint64_t job_id, uint32_t workers,
              uint32_t batch_size) {
        const char *why;

        *h = (Host){};
        h->shared = json_parse_strict(shared_json, strlen(shared_json), 64, &why);
        if (!h->shared || !json_object_is_type(h->shared, json_type_object)) {
                json_object_put(h->shared);
                h->shared = NULL;
                return -EINVAL;
        }
        h->shared_text = strdup(shared_json);
        h->output = strdup(output);
        if (!h->shared_text || !h->output) {
                host_done(h);
                return -ENOMEM;
        }
        h->ctx = (mplock_ctx){
                .size = sizeof(mplock_ctx),
                .job_id = job_id,
                .worker = MPLOCK_WORKER_SAVER,
                .workers = workers,
                .batch_size = batch_size,
                .output_dir = h->output,
                .shared_json = h->shared_text,
                .api = &host_api,
                .host = h,
        };
        return 0;
}

void host_done(Host *h) {
        json_object_put(h->shared);
        free(h->shared_text);
        free(h->output);
        *h = (Host){};
}
