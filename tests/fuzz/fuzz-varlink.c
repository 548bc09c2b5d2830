/* SPDX-License-Identifier: MIT */
/* Fuzz target: what a client can send. The bytes go through the Varlink
 * framing (VarlinkBuf over a pipe, with the daemon's size limit), each
 * message through varlink_call_parse, and the parameters of a parsed call
 * through the validation the daemon's methods start with. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "api.h"
#include "varlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MESSAGE 65536

static const JsonField id_fields[] = {
        { "id", JSON_KIND_UINT, true },
        { "offset", JSON_KIND_UINT, false },
        { "limit", JSON_KIND_UINT, false },
};

static void handle(const char *msg, size_t len) {
        VarlinkCall call;
        JsonError err;
        const char *why = NULL;
        size_t n;

        if (varlink_call_parse(msg, len, &call, &why) < 0)
                return;
        if (strstr(call.method, "Submit"))
                (void) json_validate(call.parameters, submit_fields, submit_n_fields, &err);
        else
                (void) json_validate(call.parameters, id_fields, ELEMENTSOF(id_fields), &err);
        /* Replies are built from what was parsed: serialize something. */
        free(varlink_build_reply(call.parameters ? json_object_get(call.parameters) : NULL, call.more, &n));
        varlink_call_done(&call);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        VarlinkBuf b = {};
        int p[2];

        if (size > MAX_MESSAGE * 4)
                return 0;
        if (pipe2(p, O_CLOEXEC) < 0)
                abort();
        (void) fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
        if (write(p[1], data, size) != (ssize_t) size)
                abort();
        close(p[1]);
        for (;;) {
                const char *msg;
                size_t len;
                int r = vbuf_next(&b, MAX_MESSAGE, &msg, &len);
                if (r < 0)
                        break; /* too large: the daemon drops the client */
                if (r > 0) {
                        handle(msg, len);
                        continue;
                }
                if (vbuf_read(&b, p[0], MAX_MESSAGE) <= 0)
                        break;
        }
        close(p[0]);
        vbuf_free(&b);
        return 0;
}
