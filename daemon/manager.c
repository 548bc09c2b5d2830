/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "mplockd.h"
#include "results.h"
#include "varlink-names.h"

/* The Varlink methods of io.mplock.Manager and org.varlink.service. Every
 * parameter is validated here (or in submit.c) before it is used. */

#define RESULTS_PAGE_DEFAULT 1000u
#define RESULTS_PAGE_MAX 10000u

/* varlink-interface.c, generated from io.mplock.Manager.varlink and
 * org.varlink.service.varlink */
extern const char mplock_varlink_interface[];
extern const char org_varlink_service_interface[];

static json_object *json_str_or_null(const char *s) {
        return s ? json_object_new_string(s) : NULL;
}

json_object *job_to_json(Job *j) {
        json_object *o = json_object_new_object();
        char path[4200];
        int r = 0;

        if (!o)
                return NULL;
#define ADD(k, v)                                   \
        do {                                        \
                if (r >= 0)                         \
                        r = json_add(o, (k), (v));  \
        } while (0)
        ADD("id", json_object_new_int64((int64_t) j->spec.id));
        ADD("name", json_object_new_string(j->spec.name));
        ADD("state", json_object_new_string(job_state_to_string(j->state)));
        ADD("uid", json_object_new_int64(j->spec.uid));
        ADD("module", json_object_new_string(j->spec.module));
        ADD("input", json_object_new_string(j->spec.input));
        ADD("separator", json_object_new_string(j->spec.nul_separated ? "nul" : "newline"));
        ADD("output", json_object_new_string(j->spec.output));
        ADD("workers", json_object_new_int64(j->spec.workers));
        ADD("batch_size", json_object_new_int64(j->spec.batch_size));
        ADD("save_batch", json_object_new_int64(j->spec.save_batch));
        ADD("timeout", json_object_new_int64(j->spec.timeout_sec));
        ADD("max_attempts", json_object_new_int64(j->spec.max_attempts));
        if (j->spec.halt)
                ADD("halt_on_failure", json_object_new_string(j->spec.halt));
        ADD("memory_max", json_object_new_int64((int64_t) j->spec.memory_max));
        ADD("items", json_object_new_int64((int64_t) j->spec.n_items));
        ADD("done", json_object_new_int64((int64_t) j->done));
        ADD("failed", json_object_new_int64((int64_t) j->failed));
        ADD("processed", json_object_new_int64((int64_t) MAX(j->processed, j->done)));
        ADD("rate", json_object_new_double(j->state == JOB_RUNNING ? j->rate : 0.0));
        if (j->state == JOB_RUNNING && j->rate > 0.5)
                ADD("eta_seconds",
                    json_object_new_int64((int64_t) ((double) (j->spec.n_items - MAX(j->processed, j->done)) / j->rate)));
        ADD("live_workers", json_object_new_int64(j->live_workers));
        ADD("created_usec", json_object_new_int64((int64_t) j->spec.created_usec));
        if (j->started_usec)
                ADD("started_usec", json_object_new_int64((int64_t) j->started_usec));
        if (j->finished_usec && job_state_is_final(j->state))
                ADD("finished_usec", json_object_new_int64((int64_t) j->finished_usec));
        if (j->error && (j->state == JOB_FAILED || j->state == JOB_PAUSED))
                ADD("error", json_str_or_null(j->error));
        (void) snprintf(path, sizeof(path), "%s/mplock-%llu.results", j->spec.output, (unsigned long long) j->spec.id);
        ADD("results_path", json_object_new_string(path));
        ADD("results_committed", json_object_new_int64((int64_t) j->results_len));
        ADD("retries", json_object_new_int64(j->results_gen));
        (void) snprintf(path, sizeof(path), "%s/mplock-%llu.log", j->spec.output, (unsigned long long) j->spec.id);
        ADD("log_path", json_object_new_string(path));
#undef ADD
        if (r < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static void reply_job(Connection *c, Job *j) {
        json_object *p = json_object_new_object();

        if (!p || json_add(p, "job", job_to_json(j)) < 0) {
                json_object_put(p);
                connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        connection_reply(c, p);
}

static bool may_access(Connection *c, Job *j) {
        /* root and the admin group see everything; everybody else their
         * own jobs. */
        return c->admin || c->uid == j->spec.uid;
}

static void error_with_id(Connection *c, const char *error, uint64_t id) {
        json_object *p = json_object_new_object();

        if (p && json_add_u64(p, "id", id) < 0) {
                json_object_put(p);
                p = NULL;
        }
        connection_error(c, error, p);
}

/* Validates {id} (and the given extra fields) and finds the job the caller
 * may access; replies with an error and returns NULL otherwise. */
static Job *lookup_job(Connection *c, const JsonField *extra, size_t n_extra) {
        JsonField fields[8] = { { "id", JSON_KIND_UINT, true } };
        JsonError err;
        uint64_t id;
        Job *j;

        for (size_t i = 0; i < n_extra && i + 1 < ELEMENTSOF(fields); i++)
                fields[i + 1] = extra[i];
        if (json_validate(c->call.parameters, fields, 1 + n_extra, &err) < 0) {
                connection_error_param(c, err.field, err.reason);
                return NULL;
        }
        id = json_get_uint(c->call.parameters, "id", 0);
        j = manager_find_job(c->manager, id);
        if (!j) {
                error_with_id(c, MPLOCK_ERROR_NO_SUCH_JOB, id);
                return NULL;
        }
        if (!may_access(c, j)) {
                error_with_id(c, MPLOCK_ERROR_PERMISSION_DENIED, id);
                return NULL;
        }
        return j;
}

static void method_status(Connection *c) {
        Job *j = lookup_job(c, NULL, 0);

        if (j)
                reply_job(c, j);
}

static void method_list(Connection *c) {
        Manager *m = c->manager;
        json_object *p, *arr;
        JsonError err;

        if (json_validate(c->call.parameters, NULL, 0, &err) < 0) {
                connection_error_param(c, err.field, err.reason);
                return;
        }
        p = json_object_new_object();
        arr = json_object_new_array();
        if (!p || !arr || json_add(p, "jobs", arr) < 0) {
                json_object_put(p);
                connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        for (size_t i = 0; i < m->n_jobs; i++) {
                json_object *jo;
                if (!may_access(c, m->jobs[i]))
                        continue;
                jo = job_to_json(m->jobs[i]);
                if (!jo || json_object_array_add(arr, jo) < 0) {
                        json_object_put(jo);
                        json_object_put(p);
                        connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                        return;
                }
        }
        connection_reply(c, p);
}

static void error_with_state(Connection *c, const char *error, Job *j) {
        json_object *p = json_object_new_object();

        if (p && (json_add_u64(p, "id", j->spec.id) < 0 || json_add_str(p, "state", job_state_to_string(j->state)) < 0)) {
                json_object_put(p);
                p = NULL;
        }
        connection_error(c, error, p);
}

/* The job the call names, if it has not ended (else the caller is answered). */
static Job *lookup_active_job(Connection *c) {
        Job *j = lookup_job(c, NULL, 0);

        if (j && job_state_is_final(j->state)) {
                error_with_state(c, MPLOCK_ERROR_JOB_NOT_ACTIVE, j);
                return NULL;
        }
        return j;
}

static void method_cancel(Connection *c) {
        Job *j = lookup_active_job(c);

        if (!j)
                return;
        /* Answered when the job is cancelled, i.e. its runner is gone. */
        job_add_waiter(j, c, true);
        job_cancel(j);
}

/* Answered once the job is paused: its runner has committed and exited. */
static void method_pause(Connection *c) {
        Job *j = lookup_active_job(c);

        if (!j)
                return;
        if (j->state == JOB_PAUSED) {
                reply_job(c, j);
                return;
        }
        job_add_waiter(j, c, false);
        c->wait_for_pause = true;
        job_pause(j, NULL);
}

static void method_retry(Connection *c) {
        Job *j = lookup_job(c, NULL, 0);
        int r;

        if (!j)
                return;
        /* Ended with something left to do: failed items, or items never
         * done (a failed or cancelled job). */
        if (!job_state_is_final(j->state) || j->state == JOB_COMPLETED) {
                error_with_state(c, MPLOCK_ERROR_NOTHING_TO_RETRY, j);
                return;
        }
        r = job_retry(j);
        if (r < 0) {
                char why[256];
                json_object *p = json_object_new_object();
                (void) snprintf(why, sizeof(why), "cannot start the retry: %s", strerror(-r));
                if (p && json_add_str(p, "reason", why) < 0) {
                        json_object_put(p);
                        p = NULL;
                }
                connection_error(c, MPLOCK_ERROR_STORAGE_ERROR, p);
                return;
        }
        reply_job(c, j);
}

static void method_resume(Connection *c) {
        Job *j = lookup_job(c, NULL, 0);

        if (!j)
                return;
        if (j->state != JOB_PAUSED) {
                error_with_state(c, MPLOCK_ERROR_JOB_NOT_PAUSED, j);
                return;
        }
        job_resume(j);
        reply_job(c, j);
}

/* Forgets an ended job: its state directory goes, its output stays. */
static void method_remove(Connection *c) {
        Manager *m = c->manager;
        Job *j = lookup_job(c, NULL, 0);
        uint64_t id;
        json_object *p;
        int r;

        if (!j)
                return;
        if (!job_state_is_final(j->state)) {
                error_with_state(c, MPLOCK_ERROR_JOB_ACTIVE, j);
                return;
        }
        id = j->spec.id;
        r = store_remove_job(m, id);
        if (r < 0) {
                char why[256];
                (void) snprintf(why, sizeof(why), "cannot remove the job's state: %s", strerror(-r));
                p = json_object_new_object();
                if (p && json_add_str(p, "reason", why) < 0) {
                        json_object_put(p);
                        p = NULL;
                }
                connection_error(c, MPLOCK_ERROR_STORAGE_ERROR, p);
                return;
        }
        log_job(LOG_INFO, id, "Removed by uid %u.", (unsigned) c->uid);
        manager_remove_job(m, j);
        connection_reply(c, NULL);
}

static void method_wait(Connection *c) {
        Job *j = lookup_job(c, NULL, 0);

        if (!j)
                return;
        /* Ended, or paused by a fault (it has a reason): nothing to wait
         * for without somebody's help. */
        if (job_state_is_final(j->state) || (j->state == JOB_PAUSED && j->error)) {
                reply_job(c, j);
                return;
        }
        if (c->more) {
                json_object *p = json_object_new_object();
                if (p && json_add(p, "job", job_to_json(j)) == 0)
                        connection_reply_continues(c, p);
                else
                        json_object_put(p);
        }
        job_add_waiter(j, c, false);
}

static int open_results(Job *j, int *ret_fd, char *why, size_t whylen) {
        char path[4200];
        struct stat st;
        int fd;

        (void) snprintf(path, sizeof(path), "%s/mplock-%llu.results", j->spec.output, (unsigned long long) j->spec.id);
        /* The file lives in a directory its owner controls: open it with
         * the owner's rights (so only what they could read can be read),
         * no symlink at the end, no blocking on a FIFO; and it must be the
         * owner's own regular file. */
        fd = open_as_owner(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, j->spec.uid, j->spec.gid);
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

static void results_unavailable(Connection *c, Job *j, const char *why) {
        json_object *p = json_object_new_object();

        if (p && (json_add_u64(p, "id", j->spec.id) < 0 || json_add_str(p, "reason", why) < 0)) {
                json_object_put(p);
                p = NULL;
        }
        connection_error(c, MPLOCK_ERROR_RESULTS_UNAVAILABLE, p);
}

static json_object *result_to_json(const ResultsItem *it) {
        json_object *o = json_object_new_object(), *e;
        int r;

        if (!o)
                return NULL;
        r = json_add(o, "index", json_object_new_int64((int64_t) it->index));
        if (r >= 0)
                r = json_add(o, "item", json_object_new_string_len(it->item, (int) it->item_len));
        if (r >= 0 && it->status == 0)
                r = json_add(o, "result", json_object_new_string_len(it->result, (int) it->result_len));
        else if (r >= 0) {
                e = json_object_new_object();
                r = json_add(o, "error", e);
                if (r >= 0)
                        r = json_add(e, "code", json_object_new_int(it->status));
                if (r >= 0)
                        r = json_add(e, "message", json_object_new_string_len(it->result, (int) it->result_len));
        }
        if (r < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static void method_results(Connection *c) {
        static const JsonField extra[] = {
                { "offset", JSON_KIND_UINT, false },
                { "limit", JSON_KIND_UINT, false },
        };
        Job *j = lookup_job(c, extra, ELEMENTSOF(extra));
        ResultsFile f = { .fd = -1 };
        _cleanup_close_ int fd = -1;
        json_object *p = NULL, *arr = NULL;
        uint64_t offset, limit, n = 0, next = UINT64_MAX;
        char why[4400];
        int r;

        if (!j)
                return;
        offset = json_get_uint(c->call.parameters, "offset", 0);
        limit = json_get_uint(c->call.parameters, "limit", RESULTS_PAGE_DEFAULT);
        if (limit == 0 || limit > RESULTS_PAGE_MAX) {
                connection_error_param(c, "limit", "must be between 1 and 10000");
                return;
        }
        if (j->results_len == 0) {
                /* Nothing committed yet: an empty page. */
                p = json_object_new_object();
                if (!p || json_add(p, "results", json_object_new_array()) < 0) {
                        json_object_put(p);
                        connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                        return;
                }
                connection_reply(c, p);
                return;
        }
        r = open_results(j, &fd, why, sizeof(why));
        if (r < 0) {
                results_unavailable(c, j, why);
                return;
        }
        r = results_file_open(&f, fd, j->results_len, j->spec.n_items);
        if (r < 0) {
                (void) snprintf(why, sizeof(why), "results file is damaged or was changed: %s", strerror(-r));
                results_unavailable(c, j, why);
                return;
        }
        p = json_object_new_object();
        arr = json_object_new_array();
        if (!p || !arr || json_add(p, "results", arr) < 0)
                goto oom;
        for (size_t k = results_file_find(&f, offset); k < f.n_blocks; k++) {
                ResultsBlockHeader h;
                const char *payload;
                ResultsItemIter it;
                ResultsItem item;

                r = results_file_read_block(&f, k, &h, &payload);
                if (r < 0) {
                        json_object_put(p);
                        results_file_close(&f);
                        (void) snprintf(why, sizeof(why), "results file is damaged: %s", strerror(-r));
                        results_unavailable(c, j, why);
                        return;
                }
                results_item_iter_init(&it, &h, payload);
                while (results_item_iter_next(&it, &item)) {
                        json_object *jo;
                        if (item.index < offset)
                                continue;
                        if (n == limit) {
                                next = item.index;
                                goto done;
                        }
                        jo = result_to_json(&item);
                        if (!jo || json_object_array_add(arr, jo) < 0) {
                                json_object_put(jo);
                                goto oom;
                        }
                        n++;
                }
        }
done:
        results_file_close(&f);
        if (next != UINT64_MAX && json_add_u64(p, "next", next) < 0) {
                json_object_put(p);
                connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        connection_reply(c, p);
        return;
oom:
        results_file_close(&f);
        json_object_put(p);
        connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
}

static void method_get_info(Connection *c) {
        json_object *p = json_object_new_object(), *ifs = json_object_new_array();
        JsonError err;

        if (json_validate(c->call.parameters, NULL, 0, &err) < 0) {
                json_object_put(p);
                json_object_put(ifs);
                connection_error_param(c, err.field, err.reason);
                return;
        }
        if (!p || !ifs || json_add_str(p, "vendor", "mplock") < 0 || json_add_str(p, "product", "mplockd") < 0 ||
            json_add_str(p, "version", MPLOCK_VERSION) < 0 ||
            json_add_str(p, "url", "https://mplock.invalid/") < 0 || json_add(p, "interfaces", ifs) < 0 ||
            json_object_array_add(ifs, json_object_new_string(VARLINK_INTERFACE)) < 0 ||
            json_object_array_add(ifs, json_object_new_string(MPLOCK_INTERFACE)) < 0) {
                json_object_put(p);
                connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        connection_reply(c, p);
}


static void method_get_interface_description(Connection *c) {
        static const JsonField fields[] = { { "interface", JSON_KIND_STRING, true } };
        const char *iface, *desc = NULL;
        json_object *p;
        JsonError err;

        if (json_validate(c->call.parameters, fields, ELEMENTSOF(fields), &err) < 0) {
                connection_error_param(c, err.field, err.reason);
                return;
        }
        iface = json_get_str(c->call.parameters, "interface");
        if (streq(iface, MPLOCK_INTERFACE))
                desc = mplock_varlink_interface;
        else if (streq(iface, VARLINK_INTERFACE))
                desc = org_varlink_service_interface;
        if (!desc) {
                p = json_object_new_object();
                if (p && json_add_str(p, "interface", iface) < 0) {
                        json_object_put(p);
                        p = NULL;
                }
                connection_error(c, VARLINK_ERROR_INTERFACE_NOT_FOUND, p);
                return;
        }
        p = json_object_new_object();
        if (!p || json_add_str(p, "description", desc) < 0) {
                json_object_put(p);
                connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        connection_reply(c, p);
}

static const struct {
        const char *name;
        void (*handler)(Connection *c);
        bool may_stream;
} methods[] = {
        { VARLINK_METHOD_GET_INFO, method_get_info, false },
        { VARLINK_METHOD_GET_INTERFACE_DESCRIPTION, method_get_interface_description, false },
        { MPLOCK_METHOD_SUBMIT, submit_start, false },
        { MPLOCK_METHOD_STATUS, method_status, false },
        { MPLOCK_METHOD_LIST, method_list, false },
        { MPLOCK_METHOD_CANCEL, method_cancel, false },
        { MPLOCK_METHOD_WAIT, method_wait, true },
        { MPLOCK_METHOD_RESULTS, method_results, false },
        { MPLOCK_METHOD_REMOVE, method_remove, false },
        { MPLOCK_METHOD_PAUSE, method_pause, false },
        { MPLOCK_METHOD_RESUME, method_resume, false },
        { MPLOCK_METHOD_RETRY, method_retry, false },
};

void manager_dispatch_call(Connection *c) {
        const char *method = c->call.method;
        const char *dot = strrchr(method, '.');
        json_object *p;

        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                if (!streq(methods[i].name, method))
                        continue;
                /* A "more" call to a method that replies once still gets
                 * its one reply; Varlink allows that. */
                if (c->manager->stopping && methods[i].handler == submit_start) {
                        connection_error(c, MPLOCK_ERROR_SHUTTING_DOWN, NULL);
                        return;
                }
                methods[i].handler(c);
                return;
        }
        p = json_object_new_object();
        if (dot && (has_prefix(method, MPLOCK_INTERFACE ".") || has_prefix(method, VARLINK_INTERFACE "."))) {
                if (p && json_add_str(p, "method", method) < 0) {
                        json_object_put(p);
                        p = NULL;
                }
                connection_error(c, VARLINK_ERROR_METHOD_NOT_FOUND, p);
                return;
        }
        if (p) {
                char iface[256];
                size_t n = dot ? (size_t) (dot - method) : strlen(method);
                (void) snprintf(iface, sizeof(iface), "%.*s", (int) MIN(n, sizeof(iface) - 1), method);
                if (json_add_str(p, "interface", iface) < 0) {
                        json_object_put(p);
                        p = NULL;
                }
        }
        connection_error(c, VARLINK_ERROR_INTERFACE_NOT_FOUND, p);
}

void manager_notify_status(Manager *m) {
        char buf[512];
        size_t len = 0;
        unsigned running = 0, queued = 0, paused = 0;
        Job *first = NULL;

        for (size_t i = 0; i < m->n_jobs; i++) {
                Job *j = m->jobs[i];
                if (j->state == JOB_RUNNING) {
                        running++;
                        if (!first)
                                first = j;
                } else if (j->state == JOB_QUEUED)
                        queued++;
                else if (j->state == JOB_PAUSED)
                        paused++;
        }
        len = (size_t) snprintf(buf, sizeof(buf), "STATUS=%u running, %u queued", running, queued);
        if (paused > 0 && len < sizeof(buf))
                len += (size_t) snprintf(buf + len, sizeof(buf) - len, ", %u paused", paused);
        if (first && len < sizeof(buf))
                (void) snprintf(buf + len, sizeof(buf) - len, "; job %llu: %llu/%llu items, %.0f/s",
                                (unsigned long long) first->spec.id,
                                (unsigned long long) MAX(first->processed, first->done),
                                (unsigned long long) first->spec.n_items, first->rate);
        (void) sd_notify(false, buf);
}
