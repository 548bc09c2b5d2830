/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* Varlink wire format: one JSON object per message, each terminated by a
 * NUL byte, over a Unix stream socket.
 *   call:  {"method": "iface.Method", "parameters": {...}, "more": true, "oneway": true}
 *   reply: {"parameters": {...}, "continues": true}
 *   error: {"error": "iface.ErrorName", "parameters": {...}} */

#define VARLINK_JSON_DEPTH 32

/* Accumulates received bytes and cuts them into messages. A message larger
 * than `max` without its NUL is -EMSGSIZE before it is all buffered. */
typedef struct VarlinkBuf {
        char *data;
        size_t len, cap;
        size_t consumed; /* bytes of handed-out messages, dropped lazily */
        size_t scanned;  /* bytes after consumed known to hold no NUL */
} VarlinkBuf;

void vbuf_free(VarlinkBuf *b);
/* Reads once from fd: bytes read, 0 at EOF, -EAGAIN, -errno. */
ssize_t vbuf_read(VarlinkBuf *b, int fd, size_t max);
/* 1 and the message (without its NUL) if one is complete; 0 if more bytes
 * are needed; -EMSGSIZE. The message stays valid until the next call. */
int vbuf_next(VarlinkBuf *b, size_t max, const char **msg, size_t *len);
static inline bool vbuf_empty(const VarlinkBuf *b) {
        return b->len == b->consumed;
}

typedef struct VarlinkCall {
        json_object *root;       /* owns everything below */
        const char *method;
        json_object *parameters; /* may be NULL */
        bool more, oneway;
} VarlinkCall;

/* Parses one call message. On failure *why says what was wrong. */
int varlink_call_parse(const char *msg, size_t len, VarlinkCall *call, const char **why);
void varlink_call_done(VarlinkCall *call);

/* Serializes a message including its terminating NUL; malloc'ed. Takes
 * ownership of params (may be NULL for {}). */
char *varlink_build_reply(json_object *params, bool continues, size_t *len);
char *varlink_build_error(const char *error, json_object *params, size_t *len);
char *varlink_build_call(const char *method, json_object *params, bool more, size_t *len);

/* Parses a reply message (client side): 0 with *params (owned by *root) and
 * *error (NULL on success) and *continues set. */
int varlink_reply_parse(const char *msg, size_t len, json_object **root, json_object **params, const char **error,
                        bool *continues);
