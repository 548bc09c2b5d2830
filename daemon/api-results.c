/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "config.h"
#include "control.h"
#include "macro.h"
#include "results-reader.h"
#include "varlink-names.h"

/* Results: committed results in input order, a page at a time, read by
 * the job owner's own process (results-reader.h). A page is bounded in
 * count and in bytes: item and result bytes at most an eighth of the
 * message limit, so that even if every byte had to be escaped (\u00XX)
 * the reply fits one message. A result too large for any page is reported
 * by its size, to be read from the results file. */

#define RESULTS_PAGE_DEFAULT 1000u
#define RESULTS_PAGE_MAX 10000u
#define RESULTS_TIMEOUT_USEC (30 * 1000000ULL)

typedef struct PendingResults {
        Call *call;
        uint64_t id;
        ResultsRead *read;
} PendingResults;

static void results_unavailable(Call *call, uint64_t id, const char *why) {
        json_object *p = json_object_new_object();

        if (p && (json_add_u64(p, "id", id) < 0 || json_add_str(p, "reason", why) < 0)) {
                json_object_put(p);
                p = NULL;
        }
        call_error(call, MPLOCK_ERROR_RESULTS_UNAVAILABLE, p);
}

static void results_gone(Call *call, void *userdata) {
        PendingResults *pr = userdata;

        (void) call;
        results_read_cancel(pr->read);
        call_unref(pr->call);
        free(pr);
}

static void results_done(json_object *page, const char *why, void *userdata) {
        PendingResults *pr = userdata;
        const char *reason = page ? json_get_str(page, "unavailable") : why;

        call_on_gone(pr->call, NULL, NULL);
        if (reason) {
                results_unavailable(pr->call, pr->id, reason);
                json_object_put(page);
        } else
                call_reply(pr->call, page);
        call_unref(pr->call);
        free(pr);
}

static void reply_empty(Call *call) {
        json_object *p = json_object_new_object();

        if (!p || json_add(p, "results", json_object_new_array()) < 0) {
                json_object_put(p);
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        call_reply(call, p);
}

static void start_read(Api *api, Call *call, const Job *j, uint64_t offset, uint64_t limit) {
        char path[4200], why[256];
        ResultsQuery q = { .path = path, .uid = j->spec.uid, .gid = j->spec.gid, .job = j->spec.id,
                           .committed = j->status.results_len, .items = j->spec.n_items, .offset = offset,
                           .limit = limit, .max_bytes = api->settings->max_message / 8 };
        PendingResults *pr = calloc(1, sizeof(*pr));
        int r;

        (void) snprintf(path, sizeof(path), "%s/mplock-%llu.results", j->spec.output, (unsigned long long) j->spec.id);
        if (!pr) {
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        *pr = (PendingResults){ .call = call_ref(call), .id = j->spec.id };
        r = results_read(api->agents, &q, api->settings->max_message, RESULTS_TIMEOUT_USEC, results_done, pr,
                         &pr->read);
        if (r < 0) {
                call_unref(pr->call);
                free(pr);
                (void) snprintf(why, sizeof(why), "cannot start reading the results: %s", strerror(-r));
                results_unavailable(call, j->spec.id, why);
                return;
        }
        call_on_gone(call, results_gone, pr);
}

void method_results(Api *api, Call *call) {
        static const JsonField fields[] = {
                { "id", JSON_KIND_UINT, true },
                { "offset", JSON_KIND_UINT, false },
                { "limit", JSON_KIND_UINT, false },
        };
        Job *j = lookup_job(api, call, fields, ELEMENTSOF(fields));
        json_object *params = call_parameters(call);
        uint64_t limit;

        if (!j)
                return;
        if (j->damaged) {
                call_error_reason(call, MPLOCK_ERROR_STORAGE_ERROR, j->status.error);
                return;
        }
        limit = json_get_uint(params, "limit", RESULTS_PAGE_DEFAULT);
        if (limit == 0 || limit > RESULTS_PAGE_MAX) {
                call_error_param(call, "limit", "must be between 1 and 10000");
                return;
        }
        if (j->status.results_len == 0)
                reply_empty(call); /* nothing committed yet */
        else
                start_read(api, call, j, json_get_uint(params, "offset", 0), limit);
}
