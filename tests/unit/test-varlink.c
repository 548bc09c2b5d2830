/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json-util.h"
#include "test-util.h"
#include "varlink.h"

/* --- VarlinkBuf ----------------------------------------------------------- */

/* A stream socketpair, like a client connection; [0] is read non-blocking
 * so that "no more data" shows as -EAGAIN instead of a hang. */
static void stream_pair(int fds[2]) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        ck_assert_int_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
}

static void send_bytes(int fd, const void *p, size_t len) {
        ck_assert_int_eq(write_full(fd, p, len), 0);
}

/* Reads what is there until vbuf_next() has an answer other than "need
 * more"; -EAGAIN if the socket ran dry first. */
static int next_message(VarlinkBuf *b, int fd, size_t max, const char **msg, size_t *len) {
        for (;;) {
                int r = vbuf_next(b, max, msg, len);
                ssize_t n;

                if (r != 0)
                        return r;
                n = vbuf_read(b, fd, max);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -EPIPE;
        }
}

START_TEST(test_vbuf_several_in_one_read) {
        static const char wire[] = "{\"a\":1}\0{}\0x\0";
        VarlinkBuf b = {};
        const char *msg;
        size_t len;
        int fds[2];

        stream_pair(fds);
        send_bytes(fds[1], wire, sizeof(wire) - 1);
        ck_assert_int_eq(vbuf_read(&b, fds[0], 1024), (ssize_t) sizeof(wire) - 1);

        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 1);
        ck_assert_uint_eq(len, 7);
        ck_assert_mem_eq(msg, "{\"a\":1}", 7);
        ck_assert_int_eq(msg[len], '\0');
        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 1);
        ck_assert_uint_eq(len, 2);
        ck_assert_mem_eq(msg, "{}", 2);
        ck_assert(!vbuf_empty(&b));
        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 1);
        ck_assert_uint_eq(len, 1);
        ck_assert_mem_eq(msg, "x", 1);
        ck_assert(vbuf_empty(&b));
        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 0);

        /* Nothing more to read; then EOF. */
        ck_assert_int_eq(vbuf_read(&b, fds[0], 1024), -EAGAIN);
        close(fds[1]);
        ck_assert_int_eq(vbuf_read(&b, fds[0], 1024), 0);
        vbuf_free(&b);
        close(fds[0]);
}
END_TEST

START_TEST(test_vbuf_split) {
        VarlinkBuf b = {};
        const char *msg;
        size_t len;
        int fds[2];

        stream_pair(fds);
        send_bytes(fds[1], "{\"method\":", 10);
        ck_assert_int_eq(vbuf_read(&b, fds[0], 1024), 10);
        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 0);
        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 0);
        /* The rest, the next message, and half of a third. */
        send_bytes(fds[1], "\"a.b\"}\0{}\0{\"x", 13);
        ck_assert_int_eq(vbuf_read(&b, fds[0], 1024), 13);
        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 1);
        ck_assert_uint_eq(len, 16);
        ck_assert_mem_eq(msg, "{\"method\":\"a.b\"}", 16);
        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 1);
        ck_assert_mem_eq(msg, "{}", 2);
        ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 0);
        /* One byte at a time: the buffer compacts under the message. */
        for (const char *p = "\":2}"; *p; p++) {
                send_bytes(fds[1], p, 1);
                ck_assert_int_eq(vbuf_read(&b, fds[0], 1024), 1);
                ck_assert_int_eq(vbuf_next(&b, 1024, &msg, &len), 0);
        }
        send_bytes(fds[1], "", 1);
        ck_assert_int_eq(next_message(&b, fds[0], 1024, &msg, &len), 1);
        ck_assert_uint_eq(len, 7);
        ck_assert_mem_eq(msg, "{\"x\":2}", 7);
        ck_assert(vbuf_empty(&b));
        vbuf_free(&b);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

/* A message of exactly len bytes of 'a', with its NUL, after a short one. */
static void check_size(size_t max, size_t len, int expect) {
        VarlinkBuf b = {};
        const char *msg;
        size_t got;
        char *wire;
        int fds[2];

        stream_pair(fds);
        wire = malloc(len + 3);
        ck_assert_ptr_nonnull(wire);
        memcpy(wire, "x", 2);
        memset(wire + 2, 'a', len);
        wire[len + 2] = '\0';
        send_bytes(fds[1], wire, len + 3);

        ck_assert_int_eq(next_message(&b, fds[0], max, &msg, &got), 1);
        ck_assert_uint_eq(got, 1);
        ck_assert_int_eq(next_message(&b, fds[0], max, &msg, &got), expect);
        if (expect == 1) {
                ck_assert_uint_eq(got, len);
                ck_assert_mem_eq(msg, wire + 2, len);
                ck_assert(vbuf_empty(&b));
        }
        /* The buffer never holds more than a message and its NUL. */
        ck_assert_uint_le(b.cap, max + 1);
        free(wire);
        vbuf_free(&b);
        close(fds[0]);
        close(fds[1]);
}

START_TEST(test_vbuf_max_size) {
        /* Small limits, and one that makes the buffer grow several times. */
        static const size_t maxes[] = { 1, 10, 4095, 4096, 16384, 70000 };

        for (size_t i = 0; i < ELEMENTSOF(maxes); i++) {
                check_size(maxes[i], maxes[i], 1);
                check_size(maxes[i], maxes[i] + 1, -EMSGSIZE);
                if (maxes[i] > 1)
                        check_size(maxes[i], maxes[i] - 1, 1);
        }
}
END_TEST

START_TEST(test_vbuf_too_long_without_nul) {
        /* A peer that never sends a NUL is cut off once it has sent more
         * than a message may hold, not buffered without end. */
        const size_t max = 50000;
        VarlinkBuf b = {};
        const char *msg;
        size_t len;
        char *junk;
        int fds[2], r;

        stream_pair(fds);
        junk = malloc(max + 100);
        ck_assert_ptr_nonnull(junk);
        memset(junk, '{', max + 100);
        send_bytes(fds[1], junk, max + 100);
        r = next_message(&b, fds[0], max, &msg, &len);
        ck_assert_int_eq(r, -EMSGSIZE);
        ck_assert_uint_le(b.len, max + 1);
        /* vbuf_next() itself says so once max + 1 bytes are in, without
         * waiting for another read that a quiet peer may never cause. */
        ck_assert_uint_eq(b.len, max + 1);
        ck_assert_int_eq(vbuf_next(&b, max, &msg, &len), -EMSGSIZE);
        /* And reading on does not help. */
        ck_assert_int_eq(vbuf_read(&b, fds[0], max), -EMSGSIZE);

        /* Exactly max bytes without a NUL yet: still waiting, not refused. */
        vbuf_free(&b);
        close(fds[0]);
        close(fds[1]);
        stream_pair(fds);
        send_bytes(fds[1], junk, max);
        ck_assert_int_eq(next_message(&b, fds[0], max, &msg, &len), -EAGAIN);
        ck_assert_int_eq(vbuf_next(&b, max, &msg, &len), 0);
        send_bytes(fds[1], "", 1);
        ck_assert_int_eq(next_message(&b, fds[0], max, &msg, &len), 1);
        ck_assert_uint_eq(len, max);
        free(junk);
        vbuf_free(&b);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

START_TEST(test_vbuf_pipe) {
        /* Any fd will do, and many messages through a small buffer. */
        VarlinkBuf b = {};
        const char *msg;
        size_t len;
        int fds[2];

        ck_assert_int_eq(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        for (unsigned i = 0; i < 1000; i++) {
                char m[32];
                int n = snprintf(m, sizeof(m), "{\"i\":%u}", i);
                send_bytes(fds[1], m, (size_t) n + 1);
        }
        close(fds[1]);
        for (unsigned i = 0; i < 1000; i++) {
                char m[32];
                int n = snprintf(m, sizeof(m), "{\"i\":%u}", i);

                ck_assert_int_eq(next_message(&b, fds[0], 20, &msg, &len), 1);
                ck_assert_uint_eq(len, (size_t) n);
                ck_assert_mem_eq(msg, m, len);
        }
        ck_assert_int_eq(next_message(&b, fds[0], 20, &msg, &len), -EPIPE);
        vbuf_free(&b);
        close(fds[0]);
}
END_TEST

/* --- calls ----------------------------------------------------------------- */

static int parse_call(const char *text, VarlinkCall *call, const char **why) {
        *why = NULL;
        return varlink_call_parse(text, strlen(text), call, why);
}

START_TEST(test_call_valid) {
        VarlinkCall call;
        const char *why;

        ck_assert_int_eq(parse_call("{\"method\":\"io.mplock.Manager.List\"}", &call, &why), 0);
        ck_assert_str_eq(call.method, "io.mplock.Manager.List");
        ck_assert_ptr_null(call.parameters);
        ck_assert(!call.more);
        ck_assert(!call.oneway);
        varlink_call_done(&call);
        ck_assert_ptr_null(call.root);

        ck_assert_int_eq(parse_call("{\"method\":\"a.B\",\"parameters\":{\"id\":7,\"s\":\"x\"},\"more\":true}", &call,
                                    &why),
                         0);
        ck_assert_str_eq(call.method, "a.B");
        ck_assert_ptr_nonnull(call.parameters);
        ck_assert_uint_eq(json_get_uint(call.parameters, "id", 0), 7);
        ck_assert_str_eq(json_get_str(call.parameters, "s"), "x");
        ck_assert(call.more);
        ck_assert(!call.oneway);
        varlink_call_done(&call);

        ck_assert_int_eq(parse_call(" {\"oneway\":true, \"method\":\"a.B\", \"upgrade\":false, \"more\":false} ", &call,
                                    &why),
                         0);
        ck_assert(call.oneway);
        ck_assert(!call.more);
        varlink_call_done(&call);

        /* null counts as absent. */
        ck_assert_int_eq(parse_call("{\"method\":\"a.B\",\"parameters\":null,\"more\":null}", &call, &why), 0);
        ck_assert_ptr_null(call.parameters);
        ck_assert(!call.more);
        varlink_call_done(&call);
}
END_TEST

START_TEST(test_call_malformed) {
        static const char *const bad[] = {
                "",
                "{",
                "{\"method\":\"a.B\"",
                "{\"method\":\"a.B\"}x",
                "{\"method\":\"a.B\"}{}",
                "{\"method\":\"a.B\"} 1",
                "\"a.B\"",
                "[{\"method\":\"a.B\"}]",
                "[]",
                "42",
                "null",
                "{\"method\":\"a.B\",}",
                "{method:\"a.B\"}",
                /* Field errors. */
                "{}",
                "{\"parameters\":{}}",
                "{\"method\":null}",
                "{\"method\":7}",
                "{\"method\":true}",
                "{\"method\":[\"a.B\"]}",
                "{\"method\":{}}",
                "{\"method\":\"a\\u0000B\"}",
                "{\"method\":\"a.B\",\"parameters\":[]}",
                "{\"method\":\"a.B\",\"parameters\":\"x\"}",
                "{\"method\":\"a.B\",\"more\":1}",
                "{\"method\":\"a.B\",\"oneway\":\"yes\"}",
                "{\"method\":\"a.B\",\"upgrade\":0}",
                "{\"method\":\"a.B\",\"extra\":1}",
                "{\"method\":\"a.B\",\"Method\":\"a.B\"}",
                /* Both at once is meaningless. */
                "{\"method\":\"a.B\",\"more\":true,\"oneway\":true}",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                VarlinkCall call;
                const char *why;

                ck_assert_msg(parse_call(bad[i], &call, &why) == -EBADMSG, "accepted: %s", bad[i]);
                ck_assert_msg(why && *why, "no reason for: %s", bad[i]);
                ck_assert_ptr_null(call.root);
        }
}
END_TEST

START_TEST(test_call_reasons) {
        VarlinkCall call;
        const char *why;

        ck_assert_int_eq(parse_call("{}", &call, &why), -EBADMSG);
        ck_assert_str_eq(why, "method: missing");
        ck_assert_int_eq(parse_call("{\"method\":1}", &call, &why), -EBADMSG);
        ck_assert_str_eq(why, "method: must be a string");
        ck_assert_int_eq(parse_call("{\"method\":\"a.B\",\"bogus\":1}", &call, &why), -EBADMSG);
        ck_assert_str_eq(why, "bogus: unknown field");
        ck_assert_int_eq(parse_call("{\"method\":\"a\\u0000\"}", &call, &why), -EBADMSG);
        ck_assert_str_eq(why, "method: must not contain NUL bytes");
        ck_assert_int_eq(parse_call("[1]", &call, &why), -EBADMSG);
        ck_assert_str_eq(why, "message is not a JSON object");
        ck_assert_int_eq(parse_call("{\"method\":\"a.B\",\"more\":true,\"oneway\":true}", &call, &why), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(why, "oneway"));
}
END_TEST

START_TEST(test_call_upgrade) {
        VarlinkCall call;
        const char *why;

        ck_assert_int_eq(parse_call("{\"method\":\"a.B\",\"upgrade\":true}", &call, &why), -EPROTONOSUPPORT);
        ck_assert_ptr_nonnull(why);
        ck_assert_ptr_null(call.root);
}
END_TEST

/* {"method":"a.B","parameters":{"x": [[...]]}} with `arrays` brackets: the
 * nesting depth is arrays + 2. */
static char *nested(unsigned arrays) {
        size_t n = 64 + 2 * arrays;
        char *s = malloc(n), *p;

        ck_assert_ptr_nonnull(s);
        p = s + sprintf(s, "{\"method\":\"a.B\",\"parameters\":{\"x\":");
        for (unsigned i = 0; i < arrays; i++)
                *p++ = '[';
        for (unsigned i = 0; i < arrays; i++)
                *p++ = ']';
        strcpy(p, "}}");
        return s;
}

START_TEST(test_call_depth) {
        VarlinkCall call;
        const char *why;
        char *s;

        s = nested(VARLINK_JSON_DEPTH - 2);
        ck_assert_int_eq(parse_call(s, &call, &why), 0);
        varlink_call_done(&call);
        free(s);

        s = nested(VARLINK_JSON_DEPTH - 1);
        ck_assert_int_eq(parse_call(s, &call, &why), -EBADMSG);
        ck_assert_ptr_nonnull(why);
        free(s);

        /* Far deeper than any stack should be asked to go. */
        s = nested(100000);
        ck_assert_int_eq(parse_call(s, &call, &why), -EBADMSG);
        free(s);
}
END_TEST

START_TEST(test_call_len_not_strlen) {
        /* The parser takes exactly len bytes: a NUL inside is trailing
         * data, and bytes past len are never looked at. */
        static const char text[] = "{\"method\":\"a.B\"}\0garbage";
        VarlinkCall call;
        const char *why;

        ck_assert_int_eq(varlink_call_parse(text, 16, &call, &why), 0);
        ck_assert_str_eq(call.method, "a.B");
        varlink_call_done(&call);
        ck_assert_int_eq(varlink_call_parse(text, 17, &call, &why), -EBADMSG);
        ck_assert_int_eq(varlink_call_parse(text, 15, &call, &why), -EBADMSG);
}
END_TEST

/* --- json_validate --------------------------------------------------------- */

static const JsonField fields[] = {
        { "s", JSON_KIND_STRING, true }, { "u", JSON_KIND_UINT, false },  { "i", JSON_KIND_INT, false },
        { "b", JSON_KIND_BOOL, false },  { "o", JSON_KIND_OBJECT, false }, { "a", JSON_KIND_ARRAY, false },
        { "any", JSON_KIND_ANY, false },
};

static int validate(const char *text, JsonError *err) {
        const char *why;
        json_object *o = json_parse_strict(text, strlen(text), 32, &why);
        int r;

        ck_assert_msg(o != NULL, "test JSON does not parse: %s: %s", text, why);
        memset(err, 0, sizeof(*err));
        r = json_validate(o, fields, ELEMENTSOF(fields), err);
        json_object_put(o);
        return r;
}

START_TEST(test_validate_ok) {
        JsonError err;

        ck_assert_int_eq(validate("{\"s\":\"\"}", &err), 0);
        ck_assert_int_eq(validate("{\"s\":\"x\",\"u\":0,\"i\":-5,\"b\":false,\"o\":{\"z\":1},\"a\":[],\"any\":1.5}", &err), 0);
        ck_assert_int_eq(validate("{\"s\":\"x\",\"u\":9223372036854775807,\"i\":-9223372036854775808}", &err), 0);
        ck_assert_int_eq(validate("{\"s\":\"x\",\"any\":null,\"u\":null,\"o\":null}", &err), 0);
        ck_assert_int_eq(validate("{\"s\":\"x\",\"any\":[{}]}", &err), 0);
        /* UTF-8 is not NUL. */
        ck_assert_int_eq(validate("{\"s\":\"\\u00e9\\u20ac\"}", &err), 0);
}
END_TEST

/* Varlink's int is int64: a larger number is no int, and would come back
 * in a reply as a negative (json-c saturates past 2^64-1). */
START_TEST(test_validate_uint_is_an_int64) {
        static const char *const too_large[] = { "9223372036854775808", "18446744073709551615",
                                                 "18446744073709551616", "99999999999999999999999" };
        char text[128];
        JsonError err;

        for (size_t i = 0; i < ELEMENTSOF(too_large); i++) {
                (void) snprintf(text, sizeof(text), "{\"s\":\"x\",\"u\":%s}", too_large[i]);
                ck_assert_int_eq(validate(text, &err), -EINVAL);
                ck_assert_str_eq(err.field, "u");
        }
}
END_TEST

START_TEST(test_validate_missing_and_unknown) {
        JsonError err;

        ck_assert_int_eq(validate("{}", &err), -EINVAL);
        ck_assert_str_eq(err.field, "s");
        ck_assert_str_eq(err.reason, "missing");
        /* null is absent, so a required field set to null is missing. */
        ck_assert_int_eq(validate("{\"s\":null}", &err), -EINVAL);
        ck_assert_str_eq(err.field, "s");
        ck_assert_str_eq(err.reason, "missing");

        ck_assert_int_eq(validate("{\"s\":\"x\",\"extra\":1}", &err), -EINVAL);
        ck_assert_str_eq(err.field, "extra");
        ck_assert_str_eq(err.reason, "unknown field");
        /* Names are case-sensitive, and null does not excuse an unknown one. */
        ck_assert_int_eq(validate("{\"s\":\"x\",\"S\":null}", &err), -EINVAL);
        ck_assert_str_eq(err.field, "S");
        ck_assert_str_eq(err.reason, "unknown field");

        /* No object at all ("parameters" left out). */
        memset(&err, 0, sizeof(err));
        ck_assert_int_eq(json_validate(NULL, fields, ELEMENTSOF(fields), &err), -EINVAL);
        ck_assert_str_eq(err.field, "s");
        ck_assert_int_eq(json_validate(NULL, fields + 1, ELEMENTSOF(fields) - 1, &err), 0);
        ck_assert_int_eq(json_validate(NULL, fields + 1, ELEMENTSOF(fields) - 1, NULL), 0);

        /* Not an object. */
        {
                json_object *a = json_object_new_array();

                ck_assert_int_eq(json_validate(a, fields + 1, ELEMENTSOF(fields) - 1, &err), -EINVAL);
                ck_assert_str_eq(err.field, "parameters");
                json_object_put(a);
        }
}
END_TEST

START_TEST(test_validate_types) {
        /* Each typed field with a value of every other kind. */
        static const struct {
                const char *field;
                const char *value;
                const char *reason;
        } bad[] = {
                { "s", "1", "must be a string" },
                { "s", "true", "must be a string" },
                { "s", "{}", "must be a string" },
                { "s", "[\"x\"]", "must be a string" },
                { "s", "1.5", "must be a string" },
                { "s", "\"a\\u0000\"", "must not contain NUL bytes" },
                { "s", "\"\\u0000\"", "must not contain NUL bytes" },
                { "s", "\"a\\u0000b\"", "must not contain NUL bytes" },
                { "u", "-1", "must be a non-negative integer" },
                { "u", "-9223372036854775808", "must be a non-negative integer" },
                { "u", "1.0", "must be a non-negative integer" },
                { "u", "1e3", "must be a non-negative integer" },
                { "u", "\"1\"", "must be a non-negative integer" },
                { "u", "true", "must be a non-negative integer" },
                { "u", "[1]", "must be a non-negative integer" },
                { "i", "1.5", "must be an integer" },
                { "i", "\"-1\"", "must be an integer" },
                { "i", "false", "must be an integer" },
                { "i", "{}", "must be an integer" },
                { "b", "1", "must be a boolean" },
                { "b", "0", "must be a boolean" },
                { "b", "\"true\"", "must be a boolean" },
                { "b", "[]", "must be a boolean" },
                { "o", "[]", "must be an object" },
                { "o", "\"{}\"", "must be an object" },
                { "o", "1", "must be an object" },
                { "a", "{}", "must be an array" },
                { "a", "\"[]\"", "must be an array" },
                { "a", "true", "must be an array" },
        };

        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                char text[256];
                JsonError err;

                if (streq(bad[k].field, "s"))
                        snprintf(text, sizeof(text), "{\"s\":%s}", bad[k].value);
                else
                        snprintf(text, sizeof(text), "{\"s\":\"x\",\"%s\":%s}", bad[k].field, bad[k].value);
                ck_assert_msg(validate(text, &err) == -EINVAL, "accepted: %s", text);
                ck_assert_str_eq(err.field, bad[k].field);
                ck_assert_msg(streq(err.reason, bad[k].reason), "%s: reason \"%s\"", text, err.reason);
        }
}
END_TEST

START_TEST(test_json_getters) {
        const char *why;
        const char *text = "{\"u\":5,\"n\":-5,\"big\":18446744073709551615,\"s\":\"x\",\"b\":true,\"z\":null}";
        json_object *o = json_parse_strict(text, strlen(text), 8, &why);

        ck_assert_ptr_nonnull(o);
        ck_assert_uint_eq(json_get_uint(o, "u", 9), 5);
        ck_assert_uint_eq(json_get_uint(o, "n", 9), 9);
        ck_assert_uint_eq(json_get_uint(o, "big", 9), UINT64_MAX);
        ck_assert_uint_eq(json_get_uint(o, "s", 9), 9);
        ck_assert_uint_eq(json_get_uint(o, "missing", 9), 9);
        ck_assert_str_eq(json_get_str(o, "s"), "x");
        ck_assert_ptr_null(json_get_str(o, "u"));
        ck_assert(json_get_bool(o, "b", false));
        ck_assert(!json_get_bool(o, "u", false));
        ck_assert(json_get_bool(o, "z", true));
        ck_assert_ptr_null(json_get(o, "z"));
        ck_assert_ptr_null(json_get(NULL, "u"));
        json_object_put(o);
}
END_TEST

START_TEST(test_parse_strict) {
        const char *why;
        json_object *o;

        o = json_parse_strict("{\"a\":[1,2]}", 11, 8, &why);
        ck_assert_ptr_nonnull(o);
        json_object_put(o);

        /* Trailing bytes of any kind. */
        why = NULL;
        ck_assert_ptr_null(json_parse_strict("{}x", 3, 8, &why));
        ck_assert_ptr_nonnull(why);
        ck_assert_ptr_null(json_parse_strict("{}{}", 4, 8, &why));
        ck_assert_ptr_null(json_parse_strict("{}\0", 3, 8, &why));
        ck_assert_str_eq(why, "trailing data after JSON value");
        ck_assert_ptr_null(json_parse_strict("{} ]", 4, 8, &why));
        /* Incomplete, and empty. */
        ck_assert_ptr_null(json_parse_strict("{\"a\":", 5, 8, &why));
        ck_assert_str_eq(why, "truncated JSON");
        ck_assert_ptr_null(json_parse_strict("", 0, 8, &why));
        /* Only the given bytes count. */
        o = json_parse_strict("{}garbage", 2, 8, &why);
        ck_assert_ptr_nonnull(o);
        json_object_put(o);
        /* Depth. */
        ck_assert_ptr_null(json_parse_strict("[[[]]]", 6, 2, &why));
        o = json_parse_strict("[[[]]]", 6, 3, &why);
        ck_assert_ptr_nonnull(o);
        json_object_put(o);
        /* Not JSON, even if some parsers take it. */
        ck_assert_ptr_null(json_parse_strict("{\"a\":1,}", 8, 8, &why));
        ck_assert_ptr_null(json_parse_strict("{\"a\":01}", 8, 8, &why));
}
END_TEST

/* Regressions: bugs found in json_parse_strict() and varlink_reply_parse()
 * by these tests, fixed since. */

START_TEST(test_parse_strict_scalars) {
        /* "one JSON value": a complete number or literal is not truncated. */
        const char *why = NULL;
        json_object *o;

        o = json_parse_strict("5", 1, 8, &why);
        ck_assert_msg(o != NULL, "\"5\" refused: %s", why);
        json_object_put(o);
        o = json_parse_strict("true", 4, 8, &why);
        ck_assert_msg(o != NULL, "\"true\" refused: %s", why);
        json_object_put(o);
}
END_TEST

START_TEST(test_parse_strict_not_json) {
        /* json-c's STRICT mode still takes these; they are not JSON, and
         * NaN would be serialized back out as invalid JSON. */
        const char *why;

        ck_assert_ptr_null(json_parse_strict("{\"a\":NaN}", 9, 8, &why));
        ck_assert_ptr_null(json_parse_strict("{\"a\":Infinity}", 14, 8, &why));
        ck_assert_ptr_null(json_parse_strict("{'a':1}", 7, 8, &why));
}
END_TEST

START_TEST(test_reply_parse_error_type) {
        /* varlink_reply_parse() (common/varlink.c) does not check field
         * types: an "error" that is not a string comes back as error ==
         * NULL, i.e. as a successful reply. */
        static const char text[] = "{\"error\":5,\"parameters\":{}}";
        json_object *root = NULL, *params;
        const char *error = NULL;
        bool continues;
        int r;

        r = varlink_reply_parse(text, sizeof(text) - 1, &root, &params, &error, &continues);
        ck_assert_msg(r < 0 || error != NULL, "a reply with \"error\":5 parses as a success");
        json_object_put(root);
}
END_TEST

/* --- building messages -------------------------------------------------- */

static void check_nul_terminated(const char *out, size_t len) {
        ck_assert_ptr_nonnull(out);
        ck_assert_uint_ge(len, 3);
        ck_assert_int_eq(out[len - 1], '\0');
        ck_assert_uint_eq(strlen(out), len - 1);
}

START_TEST(test_build_reply) {
        json_object *p = json_object_new_object(), *root, *params;
        const char *error;
        bool continues;
        size_t len;
        char *out;

        ck_assert_int_eq(json_add_u64(p, "n", 42), 0);
        ck_assert_int_eq(json_add_str(p, "path", "/a/b"), 0);
        out = varlink_build_reply(p, true, &len);
        check_nul_terminated(out, len);
        /* Compact, and '/' is not escaped. */
        ck_assert_ptr_null(strchr(out, ' '));
        ck_assert_ptr_nonnull(strstr(out, "\"/a/b\""));
        ck_assert_int_eq(varlink_reply_parse(out, len - 1, &root, &params, &error, &continues), 0);
        ck_assert_ptr_null(error);
        ck_assert(continues);
        ck_assert_uint_eq(json_get_uint(params, "n", 0), 42);
        ck_assert_str_eq(json_get_str(params, "path"), "/a/b");
        json_object_put(root);
        free(out);

        out = varlink_build_reply(NULL, false, &len);
        check_nul_terminated(out, len);
        ck_assert_str_eq(out, "{\"parameters\":{}}");
        ck_assert_int_eq(varlink_reply_parse(out, len - 1, &root, &params, &error, &continues), 0);
        ck_assert(!continues);
        ck_assert_ptr_nonnull(params);
        ck_assert_int_eq(json_object_object_length(params), 0);
        json_object_put(root);
        free(out);
}
END_TEST

START_TEST(test_build_error) {
        json_object *p = json_object_new_object(), *root, *params;
        const char *error;
        bool continues;
        size_t len;
        char *out;

        ck_assert_int_eq(json_add_str(p, "parameter", "module"), 0);
        out = varlink_build_error("io.mplock.Manager.InvalidParameter", p, &len);
        check_nul_terminated(out, len);
        ck_assert_int_eq(varlink_reply_parse(out, len - 1, &root, &params, &error, &continues), 0);
        ck_assert_str_eq(error, "io.mplock.Manager.InvalidParameter");
        ck_assert_str_eq(json_get_str(params, "parameter"), "module");
        ck_assert(!continues);
        json_object_put(root);
        free(out);

        out = varlink_build_error("org.varlink.service.MethodNotFound", NULL, &len);
        check_nul_terminated(out, len);
        ck_assert_int_eq(varlink_reply_parse(out, len - 1, &root, &params, &error, &continues), 0);
        ck_assert_str_eq(error, "org.varlink.service.MethodNotFound");
        json_object_put(root);
        free(out);
}
END_TEST

START_TEST(test_build_call) {
        json_object *p = json_object_new_object();
        VarlinkCall call;
        const char *why;
        size_t len;
        char *out;

        ck_assert_int_eq(json_add_u64(p, "id", 3), 0);
        ck_assert_int_eq(json_add_str(p, "s", "quote \" and \\ and \n"), 0);
        out = varlink_build_call("io.mplock.Manager.Wait", p, true, &len);
        check_nul_terminated(out, len);
        ck_assert_int_eq(varlink_call_parse(out, len - 1, &call, &why), 0);
        ck_assert_str_eq(call.method, "io.mplock.Manager.Wait");
        ck_assert(call.more);
        ck_assert(!call.oneway);
        ck_assert_uint_eq(json_get_uint(call.parameters, "id", 0), 3);
        ck_assert_str_eq(json_get_str(call.parameters, "s"), "quote \" and \\ and \n");
        varlink_call_done(&call);
        free(out);

        out = varlink_build_call("a.B", NULL, false, &len);
        check_nul_terminated(out, len);
        ck_assert_int_eq(varlink_call_parse(out, len - 1, &call, &why), 0);
        ck_assert(!call.more);
        ck_assert_ptr_nonnull(call.parameters);
        varlink_call_done(&call);

        /* The whole wire message, NUL included, goes through a VarlinkBuf. */
        {
                VarlinkBuf b = {};
                const char *msg;
                size_t mlen;
                int fds[2];

                stream_pair(fds);
                send_bytes(fds[1], out, len);
                send_bytes(fds[1], out, len);
                ck_assert_int_eq(next_message(&b, fds[0], 1024, &msg, &mlen), 1);
                ck_assert_uint_eq(mlen, len - 1);
                ck_assert_int_eq(varlink_call_parse(msg, mlen, &call, &why), 0);
                varlink_call_done(&call);
                ck_assert_int_eq(next_message(&b, fds[0], 1024, &msg, &mlen), 1);
                ck_assert_int_eq(varlink_call_parse(msg, mlen, &call, &why), 0);
                ck_assert_str_eq(call.method, "a.B");
                varlink_call_done(&call);
                vbuf_free(&b);
                close(fds[0]);
                close(fds[1]);
        }
        free(out);
}
END_TEST

START_TEST(test_reply_parse_bad) {
        json_object *root = NULL, *params;
        const char *error;
        bool continues;

        ck_assert_int_eq(varlink_reply_parse("[]", 2, &root, &params, &error, &continues), -EBADMSG);
        ck_assert_int_eq(varlink_reply_parse("{", 1, &root, &params, &error, &continues), -EBADMSG);
        ck_assert_int_eq(varlink_reply_parse("{}x", 3, &root, &params, &error, &continues), -EBADMSG);
        ck_assert_ptr_null(root);
}
END_TEST

static Suite *varlink_suite(void) {
        Suite *s = suite_create("varlink");
        TCase *tc_buf = tcase_create("vbuf"), *tc_call = tcase_create("call"), *tc_json = tcase_create("json");

        tcase_set_timeout(tc_buf, 30);
        tcase_add_test(tc_buf, test_vbuf_several_in_one_read);
        tcase_add_test(tc_buf, test_vbuf_split);
        tcase_add_test(tc_buf, test_vbuf_max_size);
        tcase_add_test(tc_buf, test_vbuf_too_long_without_nul);
        tcase_add_test(tc_buf, test_vbuf_pipe);
        suite_add_tcase(s, tc_buf);

        tcase_add_test(tc_call, test_call_valid);
        tcase_add_test(tc_call, test_call_malformed);
        tcase_add_test(tc_call, test_call_reasons);
        tcase_add_test(tc_call, test_call_upgrade);
        tcase_add_test(tc_call, test_call_depth);
        tcase_add_test(tc_call, test_call_len_not_strlen);
        tcase_add_test(tc_call, test_build_reply);
        tcase_add_test(tc_call, test_build_error);
        tcase_add_test(tc_call, test_build_call);
        tcase_add_test(tc_call, test_reply_parse_bad);
        suite_add_tcase(s, tc_call);

        tcase_add_test(tc_json, test_validate_ok);
        tcase_add_test(tc_json, test_validate_uint_is_an_int64);
        tcase_add_test(tc_json, test_validate_missing_and_unknown);
        tcase_add_test(tc_json, test_validate_types);
        tcase_add_test(tc_json, test_json_getters);
        tcase_add_test(tc_json, test_parse_strict);
        suite_add_tcase(s, tc_json);
        {
                TCase *tc_bugs = tcase_create("regressions");

                tcase_add_test(tc_bugs, test_parse_strict_scalars);
                tcase_add_test(tc_bugs, test_parse_strict_not_json);
                tcase_add_test(tc_bugs, test_reply_parse_error_type);
                suite_add_tcase(s, tc_bugs);
        }
        return s;
}

int main(void) {
        return test_run_suite(varlink_suite());
}
