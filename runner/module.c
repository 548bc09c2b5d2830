/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "module.h"
#include "runner.h"

/* Loading a module: dlopen with RTLD_NOW (a missing symbol fails here, not
 * in the middle of a job) and RTLD_LOCAL, one entry symbol, an ABI check. */

/* The first fields every ABI version keeps, so that a module of another
 * version can be told apart from garbage. */
#define MODULE_MIN_SIZE (offsetof(struct mplock_module, save) + sizeof(void *))

int module_load(Module *m, const char *path, char *err, size_t errlen) {
        const struct mplock_module *def;
        struct stat st;
        void *dl;

        *m = (Module){};
        if (path[0] != '/') {
                (void) snprintf(err, errlen, "%s: not an absolute path", path);
                return -EINVAL;
        }
        if (stat(path, &st) < 0) {
                (void) snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return -errno;
        }
        if (!S_ISREG(st.st_mode)) {
                (void) snprintf(err, errlen, "%s: not a regular file", path);
                return -EINVAL;
        }
        (void) dlerror();
        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                const char *e = dlerror();
                (void) snprintf(err, errlen, "cannot load module: %s", e ? e : "unknown dlopen error");
                return -ENOEXEC;
        }
        def = dlsym(dl, MPLOCK_MODULE_SYMBOL);
        if (!def) {
                (void) snprintf(err, errlen,
                                "%s is not an mplock module: it has no \"%s\" symbol (define one with "
                                "MPLOCK_MODULE_DEFINE from <mplock/module.h>)",
                                path, MPLOCK_MODULE_SYMBOL);
                (void) dlclose(dl);
                return -ENOENT;
        }
        if (def->abi_version != MPLOCK_MODULE_ABI_VERSION) {
                (void) snprintf(err, errlen,
                                "%s was built for module ABI version %u, this mplock supports version %u: rebuild it "
                                "against this mplock's <mplock/module.h>",
                                path, def->abi_version, MPLOCK_MODULE_ABI_VERSION);
                (void) dlclose(dl);
                return -EPROTONOSUPPORT;
        }
        if (def->size < MODULE_MIN_SIZE) {
                (void) snprintf(err, errlen, "%s: module definition too small (%u bytes)", path, def->size);
                (void) dlclose(dl);
                return -EPROTONOSUPPORT;
        }
        if (!def->process) {
                (void) snprintf(err, errlen, "%s: the module defines no process callback", path);
                (void) dlclose(dl);
                return -EINVAL;
        }
        m->dl = dl;
        m->def = def;
        return 0;
}

void module_unload(Module *m) {
        if (m->dl)
                (void) dlclose(m->dl);
        *m = (Module){};
}

/* --- services for modules ------------------------------------------------ */

static json_object *shared_lookup(const mplock_ctx *ctx, const char *key) {
        const Host *h = ctx ? ctx->host : NULL;

        if (!h || !key)
                return NULL;
        return json_get(h->shared, key);
}

static int shared_int(const mplock_ctx *ctx, const char *key, int64_t *ret) {
        json_object *v = shared_lookup(ctx, key);

        if (!v)
                return -ENOENT;
        if (!json_object_is_type(v, json_type_int))
                return -EINVAL;
        /* json-c keeps integers above INT64_MAX as uint64 and clamps them
         * when asked for an int64: refuse instead of lying. */
        if (json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) != (uint64_t) INT64_MAX)
                return -ERANGE;
        *ret = json_object_get_int64(v);
        return 0;
}

static int shared_double(const mplock_ctx *ctx, const char *key, double *ret) {
        json_object *v = shared_lookup(ctx, key);

        if (!v)
                return -ENOENT;
        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
                return -EINVAL;
        *ret = json_object_get_double(v);
        return 0;
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

static int result_error(mplock_results *res, size_t i, int32_t code, const char *message) {
        ResultSlots *rs = res ? res->host : NULL;
        size_t len;
        int r;

        if (!rs || i >= rs->n)
                return -ERANGE;
        if (!message)
                message = "error";
        len = strnlen(message, 65536);
        r = slot_store(&rs->slots[i], message, len);
        if (r == 0)
                /* 0 means success in the results file; an error is never 0. */
                rs->slots[i].status = code != 0 ? code : MPLOCK_ERR_PROCESS;
        return r;
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
                s->slots[i].set = false;
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
