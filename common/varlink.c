/* SPDX-License-Identifier: MIT */
#include "varlink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"

void vbuf_free(VarlinkBuf *b) {
        free(b->data);
        *b = (VarlinkBuf){};
}

static void vbuf_compact(VarlinkBuf *b) {
        if (b->consumed == 0)
                return;
        if (b->consumed < b->len)
                memmove(b->data, b->data + b->consumed, b->len - b->consumed);
        b->len -= b->consumed;
        b->consumed = 0;
}

ssize_t vbuf_read(VarlinkBuf *b, int fd, size_t max) {
        ssize_t n;

        vbuf_compact(b);
        /* Room for a full message plus its NUL, never more. */
        if (b->cap - b->len < 4096 && b->cap < max + 1) {
                size_t ncap = MIN(MAX(b->cap * 2, (size_t) 16384), max + 1);
                char *nd = realloc(b->data, ncap);
                if (!nd)
                        return -ENOMEM;
                b->data = nd;
                b->cap = ncap;
        }
        if (b->cap == b->len)
                return -EMSGSIZE;
        n = read(fd, b->data + b->len, b->cap - b->len);
        if (n < 0)
                return -errno;
        b->len += (size_t) n;
        return n;
}

int vbuf_next(VarlinkBuf *b, size_t max, const char **msg, size_t *len) {
        size_t avail = b->len - b->consumed;
        const char *start, *nul;

        /* Before anything: a fresh buffer has no data pointer at all. */
        if (avail == 0)
                return 0;
        start = b->data + b->consumed;
        nul = memchr(start + b->scanned, 0, avail - b->scanned);
        if (!nul) {
                b->scanned = avail;
                if (avail > max)
                        return -EMSGSIZE;
                return 0;
        }
        *msg = start;
        *len = (size_t) (nul - start);
        if (*len > max)
                return -EMSGSIZE;
        b->consumed += *len + 1;
        b->scanned = 0;
        return 1;
}

void varlink_call_done(VarlinkCall *call) {
        if (call->root)
                json_object_put(call->root);
        *call = (VarlinkCall){};
}

int varlink_call_parse(const char *msg, size_t len, VarlinkCall *call, const char **why) {
        static const JsonField fields[] = {
                { "method", JSON_KIND_STRING, true },   { "parameters", JSON_KIND_OBJECT, false },
                { "more", JSON_KIND_BOOL, false },      { "oneway", JSON_KIND_BOOL, false },
                { "upgrade", JSON_KIND_BOOL, false },
        };
        JsonError err;
        static __thread char reason[400];
        json_object *root;

        *call = (VarlinkCall){};
        root = json_parse_strict(msg, len, VARLINK_JSON_DEPTH, why);
        if (!root)
                return -EBADMSG;
        if (!json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                *why = "message is not a JSON object";
                return -EBADMSG;
        }
        if (json_validate(root, fields, ELEMENTSOF(fields), &err) < 0) {
                (void) snprintf(reason, sizeof(reason), "%s: %s", err.field, err.reason);
                *why = reason;
                json_object_put(root);
                return -EBADMSG;
        }
        if (json_get_bool(root, "upgrade", false)) {
                json_object_put(root);
                *why = "protocol upgrades are not supported";
                return -EPROTONOSUPPORT;
        }
        call->root = root;
        call->method = json_get_str(root, "method");
        call->parameters = json_get(root, "parameters");
        call->more = json_get_bool(root, "more", false);
        call->oneway = json_get_bool(root, "oneway", false);
        if (call->more && call->oneway) {
                varlink_call_done(call);
                *why = "a call cannot be both \"more\" and \"oneway\"";
                return -EBADMSG;
        }
        return 0;
}

static char *serialize(json_object *msg, size_t *len) {
        size_t n;
        const char *s = json_compact(msg, &n);
        char *out;

        if (!s)
                return NULL;
        out = malloc(n + 1);
        if (!out)
                return NULL;
        memcpy(out, s, n);
        out[n] = '\0';
        *len = n + 1;
        return out;
}

char *varlink_build_reply(json_object *params, bool continues, size_t *len) {
        json_object *m = json_object_new_object();
        char *out = NULL;

        if (!m) {
                json_object_put(params);
                return NULL;
        }
        if (json_add(m, "parameters", params ? params : json_object_new_object()) < 0)
                goto finish;
        if (continues && json_add(m, "continues", json_object_new_boolean(1)) < 0)
                goto finish;
        out = serialize(m, len);
finish:
        json_object_put(m);
        return out;
}

char *varlink_build_error(const char *error, json_object *params, size_t *len) {
        json_object *m = json_object_new_object();
        char *out = NULL;

        if (!m) {
                json_object_put(params);
                return NULL;
        }
        if (json_add_str(m, "error", error) < 0)
                goto finish;
        if (json_add(m, "parameters", params ? params : json_object_new_object()) < 0)
                goto finish;
        out = serialize(m, len);
finish:
        json_object_put(m);
        return out;
}

char *varlink_build_call(const char *method, json_object *params, bool more, size_t *len) {
        json_object *m = json_object_new_object();
        char *out = NULL;

        if (!m) {
                json_object_put(params);
                return NULL;
        }
        if (json_add_str(m, "method", method) < 0)
                goto finish;
        if (json_add(m, "parameters", params ? params : json_object_new_object()) < 0)
                goto finish;
        if (more && json_add(m, "more", json_object_new_boolean(1)) < 0)
                goto finish;
        out = serialize(m, len);
finish:
        json_object_put(m);
        return out;
}

int varlink_reply_parse(const char *msg, size_t len, json_object **root, json_object **params, const char **error,
                        bool *continues) {
        const char *why;
        json_object *r = json_parse_strict(msg, len, VARLINK_JSON_DEPTH, &why);

        if (!r)
                return -EBADMSG;
        if (!json_object_is_type(r, json_type_object)) {
                json_object_put(r);
                return -EBADMSG;
        }
        /* An "error" that is not a string must not read as success. */
        if ((json_get(r, "error") && !json_get_str(r, "error")) ||
            (json_get(r, "parameters") && !json_object_is_type(json_get(r, "parameters"), json_type_object))) {
                json_object_put(r);
                return -EBADMSG;
        }
        *root = r;
        *params = json_get(r, "parameters");
        *error = json_get_str(r, "error");
        *continues = json_get_bool(r, "continues", false);
        return 0;
}
