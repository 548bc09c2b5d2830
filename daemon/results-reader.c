/* SPDX-License-Identifier: MIT */
#include "results-reader.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents.h"
#include "ipc.h"
#include "json-util.h"
#include "macro.h"
#include "varlink.h"

#define READ_CHUNK 65536

struct ResultsRead {
        sd_event *event;
        AgentTask *task;
        int fd;
        sd_event_source *io, *timeout;
        char *buf;
        size_t len, cap, max;
        bool eof, exited;
        int code, status;
        ResultsDone done;
        void *userdata;
};

ResultsRead *results_read_cancel(ResultsRead *r) {
        if (!r)
                return NULL;
        r->task = agent_task_free(r->task);
        r->io = sd_event_source_disable_unref(r->io);
        r->timeout = sd_event_source_disable_unref(r->timeout);
        safe_close(r->fd);
        free(r->buf);
        free(r);
        return NULL;
}

static void finish(ResultsRead *r, json_object *page, const char *why) {
        ResultsDone done = r->done;
        void *userdata = r->userdata;

        results_read_cancel(r);
        done(page, why, userdata);
}

static bool result_ok(json_object *o) {
        static const JsonField fields[] = {
                { "index", JSON_KIND_UINT, true },
                { "item", JSON_KIND_STRING, false },
                { "item_base64", JSON_KIND_STRING, false },
                { "result", JSON_KIND_STRING, false },
                { "result_base64", JSON_KIND_STRING, false },
                { "error", JSON_KIND_OBJECT, false },
                { "too_large", JSON_KIND_UINT, false },
                { "attempts", JSON_KIND_UINT, false },
                { "worker", JSON_KIND_UINT, false },
                { "run_usec", JSON_KIND_UINT, false },
        };
        static const JsonField error_fields[] = {
                { "code", JSON_KIND_INT, true },
                { "message", JSON_KIND_STRING, true },
        };
        JsonError err;
        bool has_item = json_get(o, "item") || json_get(o, "item_base64"),
             has_result = json_get(o, "result") || json_get(o, "result_base64"), has_error = json_get(o, "error");

        if (json_validate(o, fields, ELEMENTSOF(fields), &err) < 0)
                return false;
        /* The joblog comes whole or not at all (a record of version 1). */
        if (!json_get(o, "attempts") != !json_get(o, "worker") || !json_get(o, "attempts") != !json_get(o, "run_usec"))
                return false;
        if (json_get(o, "too_large"))
                return !has_item && !has_result && !has_error;
        if ((json_get(o, "item") && json_get(o, "item_base64")) || (json_get(o, "result") && json_get(o, "result_base64")))
                return false;
        return has_item && has_result != has_error &&
               (!has_error || json_validate(json_get(o, "error"), error_fields, ELEMENTSOF(error_fields), &err) >= 0);
}

/* The page as the owner's process wrote it, in the shape of the reply. */
static json_object *page_check(const char *text, size_t len, const char **why) {
        static const JsonField fields[] = {
                { "results", JSON_KIND_ARRAY, false },
                { "next", JSON_KIND_UINT, false },
                { "unavailable", JSON_KIND_STRING, false },
        };
        json_object *o = json_parse_strict(text, len, VARLINK_JSON_DEPTH, why), *arr;
        JsonError err;

        if (!o || json_validate(o, fields, ELEMENTSOF(fields), &err) < 0 ||
            !(arr = json_get(o, "results")) == !json_get(o, "unavailable"))
                goto bad;
        for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
                if (!result_ok(json_object_array_get_idx(arr, i)))
                        goto bad;
        return o;
bad:
        json_object_put(o);
        *why = "the results reader sent something else than a page";
        return NULL;
}

static void maybe_done(ResultsRead *r) {
        const char *why = NULL;
        char msg[256];
        json_object *page;

        if (!r->eof || !r->exited)
                return;
        if (r->code != CLD_EXITED || r->status != 0) {
                (void) snprintf(msg, sizeof(msg), "the results reader ended badly (%s %d)",
                                r->code == CLD_EXITED ? "exit status" : "signal", r->status);
                finish(r, NULL, msg);
                return;
        }
        page = page_check(r->buf ? r->buf : "", r->len, &why);
        finish(r, page, page ? NULL : why);
}

static int io_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ResultsRead *r = userdata;
        ssize_t n;

        (void) s;
        (void) revents;
        if (r->cap - r->len < READ_CHUNK && GREEDY_REALLOC(r->buf, r->cap, MIN(r->len + READ_CHUNK, r->max + 1)) < 0) {
                finish(r, NULL, "out of memory");
                return 0;
        }
        n = read(fd, r->buf + r->len, r->cap - r->len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                r->eof = true;
                r->io = sd_event_source_disable_unref(r->io);
                r->fd = safe_close(r->fd);
                maybe_done(r);
                return 0;
        }
        r->len += (size_t) n;
        if (r->len > r->max)
                finish(r, NULL, "the page is larger than a message may be");
        return 0;
}

static void task_exited(AgentTask *t, int code, int status, void *userdata) {
        ResultsRead *r = userdata;

        (void) t;
        r->task = agent_task_free(r->task);
        r->exited = true;
        r->code = code;
        r->status = status;
        maybe_done(r);
}

static int timeout_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        finish(userdata, NULL, "reading the results took too long");
        return 0;
}

static int spawn_reader(ResultsRead *r, Agents *agents, const ResultsQuery *q, int out_fd) {
        char num[6][24];
        const char *args[] = { "results", "--path", q->path, "--job", num[0], "--committed", num[1], "--items",
                               num[2], "--offset", num[3], "--limit", num[4], "--max-bytes", num[5] };
        const uint64_t v[6] = { q->job, q->committed, q->items, q->offset, q->limit, q->max_bytes };

        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                (void) snprintf(num[i], sizeof(num[i]), "%llu", (unsigned long long) v[i]);
        return agents_spawn(agents, q->uid, q->gid, AGENT_MODE_RESULTS, args, ELEMENTSOF(args), &out_fd, 1,
                            task_exited, r, &r->task);
}

int results_read(Agents *agents, const ResultsQuery *q, size_t max_reply, uint64_t timeout_usec, ResultsDone done,
                 void *userdata, ResultsRead **ret) {
        ResultsRead *r = calloc(1, sizeof(*r));
        int p[2] = { -1, -1 }, k;

        if (!r)
                return -ENOMEM;
        *r = (ResultsRead){ .event = agents_event(agents), .fd = -1, .max = max_reply, .done = done,
                            .userdata = userdata };
        k = pipe2(p, O_CLOEXEC) < 0 ? -errno : 0;
        if (k >= 0) {
                r->fd = p[0];
                k = fcntl(r->fd, F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
        }
        if (k >= 0)
                k = sd_event_add_io(r->event, &r->io, r->fd, EPOLLIN, io_handler, r);
        if (k >= 0)
                k = sd_event_add_time_relative(r->event, &r->timeout, CLOCK_MONOTONIC, timeout_usec, 0,
                                               timeout_handler, r);
        if (k >= 0)
                k = spawn_reader(r, agents, q, p[1]);
        safe_close(p[1]);
        if (k < 0) {
                results_read_cancel(r);
                return k;
        }
        *ret = r;
        return 0;
}
