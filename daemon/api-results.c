/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api-internal.h"
#include "config.h"
#include "control.h"
#include "identity.h"
#include "macro.h"
#include "results.h"
#include "varlink-names.h"

/* Results: committed results in input order, a page at a time. A page is
 * bounded in count and in bytes: item and result bytes at most an eighth of
 * the message limit, so that even if every byte had to be escaped (\u00XX)
 * the reply fits one message. A result too large for any page is reported
 * by its size, to be read from the results file. */

#define RESULTS_PAGE_DEFAULT 1000u
#define RESULTS_PAGE_MAX 10000u

typedef struct Page {
        json_object *results;
        uint64_t offset, limit, n, bytes, budget;
        uint64_t next; /* UINT64_MAX: the end */
} Page;

static int open_results(const Job *j, int *ret_fd, char *why, size_t whylen) {
        char path[4200];
        struct stat st;
        Identity id;
        int fd;

        (void) snprintf(path, sizeof(path), "%s/mplock-%llu.results", j->spec.output, (unsigned long long) j->spec.id);
        /* In a directory its owner controls: opened with the owner's
         * rights, no symlink at the end, no blocking on a FIFO; and it must
         * be the owner's own regular file. */
        identity_resolve(&id, j->spec.uid, j->spec.gid);
        fd = identity_open(&id, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                (void) snprintf(why, whylen, "cannot open %s: %s", path, strerror(-fd));
                return fd;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (geteuid() == 0 && st.st_uid != j->spec.uid)) {
                (void) snprintf(why, whylen, "%s is not a results file of the job's owner", path);
                safe_close(fd);
                return -EPERM;
        }
        *ret_fd = fd;
        return 0;
}

static void results_unavailable(Call *call, const Job *j, const char *why) {
        json_object *p = json_object_new_object();

        if (p && (json_add_u64(p, "id", j->spec.id) < 0 || json_add_str(p, "reason", why) < 0)) {
                json_object_put(p);
                p = NULL;
        }
        call_error(call, MPLOCK_ERROR_RESULTS_UNAVAILABLE, p);
}

static int add_outcome(json_object *o, const ResultsItem *it) {
        json_object *e;
        int r;

        if (it->status == 0)
                return json_add(o, "result", json_object_new_string_len(it->result, (int) it->result_len));
        e = json_object_new_object();
        r = json_add(o, "error", e);
        if (r >= 0)
                r = json_add(e, "code", json_object_new_int(it->status));
        if (r >= 0)
                r = json_add(e, "message", json_object_new_string_len(it->result, (int) it->result_len));
        return r;
}

static json_object *result_to_json(const ResultsItem *it, bool too_large) {
        json_object *o = json_object_new_object();
        int r;

        if (!o)
                return NULL;
        r = json_add(o, "index", json_object_new_int64((int64_t) it->index));
        if (r >= 0 && too_large)
                r = json_add_u64(o, "too_large", it->item_len + it->result_len);
        else if (r >= 0)
                r = json_add(o, "item", json_object_new_string_len(it->item, (int) it->item_len));
        if (r >= 0 && !too_large)
                r = add_outcome(o, it);
        if (r < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

/* Adds one item to the page: 1 if it was added, 0 if the page is full
 * (next says where to go on), -ENOMEM. */
static int page_add(Page *pg, const ResultsItem *it) {
        uint64_t size = it->item_len + it->result_len;
        bool too_large = size > pg->budget;
        json_object *jo;

        if (pg->n == pg->limit || (pg->n > 0 && !too_large && pg->bytes + size > pg->budget)) {
                pg->next = it->index;
                return 0;
        }
        jo = result_to_json(it, too_large);
        if (!jo || json_object_array_add(pg->results, jo) < 0) {
                json_object_put(jo);
                return -ENOMEM;
        }
        pg->n++;
        pg->bytes += too_large ? 0 : size;
        return 1;
}

/* Fills the page from the blocks that hold items from offset on. */
static int page_fill(Page *pg, ResultsFile *f) {
        for (size_t k = results_file_find(f, pg->offset); k < f->n_blocks; k++) {
                ResultsBlockHeader h;
                const char *payload;
                ResultsItemIter it;
                ResultsItem item;
                int r = results_file_read_block(f, k, &h, &payload);

                if (r < 0)
                        return r;
                results_item_iter_init(&it, &h, payload);
                while (results_item_iter_next(&it, &item)) {
                        if (item.index < pg->offset)
                                continue;
                        r = page_add(pg, &item);
                        if (r <= 0)
                                return r;
                }
        }
        return 0;
}

static void reply_page(Call *call, Page *pg) {
        json_object *p = json_object_new_object();

        if (!p || json_add(p, "results", pg->results) < 0 ||
            (pg->next != UINT64_MAX && json_add_u64(p, "next", pg->next) < 0)) {
                json_object_put(p);
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        call_reply(call, p);
}

void method_results(Api *api, Call *call) {
        static const JsonField fields[] = {
                { "id", JSON_KIND_UINT, true },
                { "offset", JSON_KIND_UINT, false },
                { "limit", JSON_KIND_UINT, false },
        };
        Job *j = lookup_job(api, call, fields, ELEMENTSOF(fields));
        json_object *params = call_parameters(call);
        _cleanup_close_ int fd = -1;
        ResultsFile f = { .fd = -1 };
        char why[4400];
        Page pg;
        int r;

        if (!j)
                return;
        pg = (Page){ .offset = json_get_uint(params, "offset", 0),
                     .limit = json_get_uint(params, "limit", RESULTS_PAGE_DEFAULT),
                     .budget = api->settings->max_message / 8,
                     .next = UINT64_MAX };
        if (pg.limit == 0 || pg.limit > RESULTS_PAGE_MAX) {
                call_error_param(call, "limit", "must be between 1 and 10000");
                return;
        }
        pg.results = json_object_new_array();
        if (!pg.results) {
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        if (j->status.results_len == 0) {
                reply_page(call, &pg); /* nothing committed yet */
                return;
        }
        r = open_results(j, &fd, why, sizeof(why));
        if (r >= 0 && (r = results_file_open(&f, fd, j->status.results_len, j->spec.n_items)) < 0)
                (void) snprintf(why, sizeof(why), "results file is damaged or was changed: %s", strerror(-r));
        if (r >= 0 && (r = page_fill(&pg, &f)) < 0 && r != -ENOMEM)
                (void) snprintf(why, sizeof(why), "results file is damaged: %s", strerror(-r));
        results_file_close(&f);
        if (r < 0) {
                json_object_put(pg.results);
                if (r == -ENOMEM)
                        call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                else
                        results_unavailable(call, j, why);
                return;
        }
        reply_page(call, &pg);
}
