/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "control.h"
#include "ipc.h"
#include "job-stats.h"
#include "macro.h"
#include "stats.h"
#include "text.h"
#include "varlink-names.h"

/* Stats: where a job's last run's time went, from the IpcStats its runner
 * sent (checked when it came, and again when read from its file). */

/* Drops o: NULL, for a return. */
static json_object *json_put_null(json_object *o) {
        json_object_put(o);
        return NULL;
}

static double share(uint64_t part, uint64_t whole) {
        return whole ? (double) part / (double) whole : 0.0;
}

/* The times and their shares of their sum: init, processing, waiting,
 * and (the runner's, for the whole job only) saving. */
static int add_times(json_object *o, uint64_t init, uint64_t busy, uint64_t wait, const uint64_t *save) {
        uint64_t sum = init + busy + wait + (save ? *save : 0);
        int r;

        r = json_add_u64(o, "init_usec", init);
        if (r >= 0)
                r = json_add_u64(o, "processing_usec", busy);
        if (r >= 0)
                r = json_add_u64(o, "waiting_usec", wait);
        if (r >= 0)
                r = json_add(o, "init_share", json_object_new_double(share(init, sum)));
        if (r >= 0)
                r = json_add(o, "processing_share", json_object_new_double(share(busy, sum)));
        if (r >= 0)
                r = json_add(o, "waiting_share", json_object_new_double(share(wait, sum)));
        if (r >= 0 && save)
                r = json_add_u64(o, "saving_usec", *save);
        if (r >= 0 && save)
                r = json_add(o, "saving_share", json_object_new_double(share(*save, sum)));
        return r;
}

static json_object *worker_json(uint32_t no, const IpcStatsWorker *w) {
        json_object *o = json_object_new_object();

        if (!o || json_add_u64(o, "worker", no) < 0 || json_add_u64(o, "processes", w->spawns) < 0 ||
            json_add_u64(o, "items", w->items) < 0 || json_add_u64(o, "life_usec", w->life_usec) < 0 ||
            add_times(o, w->init_usec, w->busy_usec, w->wait_usec, NULL) < 0)
                return json_put_null(o);
        return o;
}

/* The rows of the worker slots, and their sum into *sum. */
static int add_workers(json_object *o, const char *payload, const IpcStats *h, IpcStatsWorker *sum) {
        json_object *a = json_object_new_array();
        int r;

        if (!a)
                return -ENOMEM;
        *sum = (IpcStatsWorker){};
        for (uint32_t k = 0; k < h->n_workers; k++) {
                IpcStatsWorker w;
                memcpy(&w, payload + sizeof(*h) + k * sizeof(w), sizeof(w));
                sum->init_usec += w.init_usec;
                sum->busy_usec += w.busy_usec;
                sum->wait_usec += w.wait_usec;
                sum->items += w.items;
                r = json_object_array_add(a, worker_json(k, &w));
                if (r < 0) {
                        json_object_put(a);
                        return -ENOMEM;
                }
        }
        return json_add(o, "workers", a);
}

static int add_rate(json_object *o, const IpcStats *h) {
        json_object *rate = json_object_new_object(), *counts = json_object_new_array();
        uint64_t max = 0;
        int r = rate && counts ? 0 : -ENOMEM;

        for (uint32_t k = 0; r >= 0 && k < h->n_buckets; k++) {
                max = MAX(max, h->buckets[k]);
                r = json_object_array_add(counts, json_object_new_int64((int64_t) h->buckets[k]));
        }
        if (r >= 0 && (r = json_add(rate, "counts", TAKE_PTR(counts))) >= 0)
                r = json_add_u64(rate, "bucket_usec", h->bucket_usec);
        if (r >= 0)
                r = json_add(rate, "max_per_second",
                             json_object_new_double((double) max * 1e6 / (double) h->bucket_usec));
        json_object_put(counts);
        if (r < 0) {
                json_object_put(rate);
                return r;
        }
        return json_add(o, "rate", rate);
}

static json_object *slow_json(const IpcStatsSlow *s) {
        json_object *o = json_object_new_object();
        _cleanup_free_ char *text = NULL;
        size_t n = strlen(s->text);

        /* The item's first bytes, for people: not UTF-8, made so. */
        text = utf8_sanitize(s->text, n, &n);
        if (!o || !text || json_add_u64(o, "index", s->index) < 0 || json_add_str(o, "item", text) < 0 ||
            json_add(o, "item_truncated", json_object_new_boolean(s->len > strlen(s->text))) < 0 ||
            json_add_u64(o, "duration_usec", s->usec) < 0)
                return json_put_null(o);
        return o;
}

static int add_slowest(json_object *o, const IpcStats *h) {
        json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        for (uint32_t k = 0; k < h->n_slow; k++)
                if (json_object_array_add(a, slow_json(&h->slow[k])) < 0) {
                        json_object_put(a);
                        return -ENOMEM;
                }
        return json_add(o, "slowest", a);
}

static json_object *stats_json(const char *payload, bool live) {
        json_object *o = json_object_new_object(), *total = json_object_new_object();
        IpcStatsWorker sum;
        IpcStats h;
        int r = o && total ? 0 : -ENOMEM;

        memcpy(&h, payload, sizeof(h));
        if (r >= 0)
                r = json_add_u64(o, "started_usec", h.started_usec);
        if (r >= 0)
                r = json_add_u64(o, "elapsed_usec", h.elapsed_usec);
        if (r >= 0)
                r = json_add(o, "running", json_object_new_boolean(live));
        if (r >= 0)
                r = json_add_u64(o, "items", h.items);
        if (r >= 0)
                r = json_add_u64(o, "save_calls", h.save_calls);
        if (r >= 0)
                r = add_workers(o, payload, &h, &sum);
        if (r >= 0)
                r = add_times(total, sum.init_usec, sum.busy_usec, sum.wait_usec, &h.save_usec);
        if (r >= 0)
                r = json_add(o, "total", TAKE_PTR(total));
        if (r >= 0)
                r = add_rate(o, &h);
        if (r >= 0)
                r = add_slowest(o, &h);
        json_object_put(total);
        if (r < 0)
                return json_put_null(o);
        return o;
}

void method_stats(Api *api, Call *call) {
        static const JsonField fields[] = { { "id", JSON_KIND_UINT, true } };
        Job *j = lookup_job(api, call, fields, ELEMENTSOF(fields));
        _cleanup_free_ void *buf = NULL;
        json_object *p;
        bool live;
        size_t len;
        int r;

        if (!j)
                return;
        p = json_object_new_object();
        if (!p) {
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        r = job_read_stats(j, &buf, &len, &live);
        if (r == -ENOMEM) {
                json_object_put(p);
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        /* None yet (it has not run), or a damaged file: no stats, said so
         * by their absence. */
        if (r >= 0 && json_add(p, "stats", stats_json(buf, live)) < 0) {
                json_object_put(p);
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        call_reply(call, p);
}
