/* SPDX-License-Identifier: MIT */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "macro.h"
#include "retrysel.h"
#include "submit.h"
#include "varlink-names.h"

/* Every parameter is validated here (or in api-submit.c) before use. */

#define PROGRESS_INTERVAL_USEC 1000000u

/* varlink-*interface.c, generated from the .varlink files */
extern const char mplock_varlink_interface[];
extern const char org_varlink_service_interface[];

static const JsonField id_only[] = { { "id", JSON_KIND_UINT, true } };

/* --- waiting for a job ---------------------------------------------------- */

typedef enum WaitKind {
        WAIT_END,    /* Wait: the end, or a pause by a fault */
        WAIT_CANCEL, /* Cancel: the end */
        WAIT_PAUSE,  /* Pause: paused, or the end */
} WaitKind;

typedef struct Waiter {
        struct Waiter *prev, *next;
        Api *api;
        Call *call;
        uint64_t job_id;
        WaitKind kind;
} Waiter;

static void waiter_free(Waiter *w) {
        Api *api = w->api;

        if (w->prev)
                w->prev->next = w->next;
        else
                api->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        call_on_gone(w->call, NULL, NULL);
        call_unref(w->call);
        free(w);
}

static void waiter_gone(Call *call, void *userdata) {
        (void) call;
        waiter_free(userdata);
}

static void add_waiter(Api *api, Call *call, const Job *j, WaitKind kind) {
        Waiter *w = calloc(1, sizeof(*w));

        if (!w) {
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        *w = (Waiter){ .api = api, .call = call_ref(call), .job_id = j->spec.id, .kind = kind, .next = api->waiters };
        if (api->waiters)
                api->waiters->prev = w;
        api->waiters = w;
        call_on_gone(call, waiter_gone, w);
}

static bool wait_is_over(const Waiter *w, const Job *j) {
        JobState s = job_state(j);

        if (job_state_is_final(s))
                return true;
        if (s != JOB_PAUSED)
                return false;
        /* A pause by a fault (it has a reason) needs somebody: Wait returns
         * then too; a pause asked for does not. */
        return w->kind == WAIT_PAUSE || (w->kind == WAIT_END && j->status.error);
}

/* A change asked for (Cancel, Pause, Resume) is acknowledged once it is on
 * disk; otherwise the caller hears why, and that mplockd tries again. */
static bool refuse_unpersisted(Call *call, const Job *j) {
        char why[320];

        if (!j->persist_error)
                return false;
        (void) snprintf(why, sizeof(why),
                        "the job is %s, but that could not be written (%s): until it is, a restart would find the "
                        "job as it was; mplockd tries again every few seconds",
                        job_state_to_string(job_state(j)), strerror(-j->persist_error));
        call_error_reason(call, MPLOCK_ERROR_STORAGE_ERROR, why);
        return true;
}

static void wake_waiters(Api *api, const Job *j) {
        Waiter *w, *next;

        for (w = api->waiters; w; w = next) {
                next = w->next;
                if (w->job_id != j->spec.id || !wait_is_over(w, j))
                        continue;
                if (w->kind == WAIT_END || !refuse_unpersisted(w->call, j))
                        reply_job(w->call, j);
                waiter_free(w);
        }
}

void api_job_event(Api *api, Job *j, JobEvent event) {
        if (api && event == JOB_EVENT_STATE)
                wake_waiters(api, j);
}

/* Progress for the calls of Wait with "more", once a second. */
static int progress_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Api *api = userdata;

        (void) usec;
        for (Waiter *w = api->waiters; w; w = w->next) {
                Job *j = w->kind == WAIT_END && call_wants_more(w->call) ? jobs_find(api->jobs, w->job_id) : NULL;
                json_object *p = j ? json_object_new_object() : NULL;

                if (p && json_add(p, "job", job_to_json(j)) == 0)
                        call_notify(w->call, p);
                else
                        json_object_put(p);
        }
        (void) sd_event_source_set_time_relative(s, PROGRESS_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* --- methods -------------------------------------------------------------- */

static void method_status(Api *api, Call *call) {
        Job *j = lookup_job(api, call, id_only, ELEMENTSOF(id_only));

        if (j)
                reply_job(call, j);
}

/* Only the jobs of that name and output, when given: a client that looks
 * for its own job (the Python API does, at every call) gets a reply of
 * that job, not of the whole table. */
static bool list_wanted(const Job *j, const char *name, const char *output) {
        return (!name || streq(j->spec.name, name)) && (!output || streq(j->spec.output, output));
}

static void method_list(Api *api, Call *call) {
        static const JsonField fields[] = {
                { "name", JSON_KIND_STRING, false },
                { "output", JSON_KIND_STRING, false },
        };
        bool admin = call_is_admin(api, call);
        const char *name, *output;
        json_object *p, *arr;
        JsonError err;

        if (json_validate(call_parameters(call), fields, ELEMENTSOF(fields), &err) < 0) {
                call_error_param(call, err.field, err.reason);
                return;
        }
        name = json_get_str(call_parameters(call), "name");
        output = json_get_str(call_parameters(call), "output");
        p = json_object_new_object();
        arr = json_object_new_array();
        if (!p || json_add(p, "jobs", arr) < 0)
                goto fail;
        for (size_t i = 0; i < api->jobs->n_jobs; i++) {
                const Job *j = api->jobs->jobs[i];
                json_object *jo;

                if ((!admin && j->spec.uid != call_uid(call)) || !list_wanted(j, name, output))
                        continue;
                jo = job_to_json(j);
                if (!jo || json_object_array_add(arr, jo) < 0) {
                        json_object_put(jo);
                        goto fail;
                }
        }
        call_reply(call, p);
        return;
fail:
        json_object_put(p);
        call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
}

/* The job the call names, if it has not ended (else the call is answered). */
/* A damaged job (jobs.c) is shown and can be removed, nothing else. */
static bool refuse_damaged(Call *call, const Job *j) {
        if (!j->damaged)
                return false;
        call_error_reason(call, MPLOCK_ERROR_STORAGE_ERROR, j->status.error);
        return true;
}

static Job *lookup_active_job(Api *api, Call *call) {
        Job *j = lookup_job(api, call, id_only, ELEMENTSOF(id_only));

        if (j && refuse_damaged(call, j))
                return NULL;
        if (j && job_state_is_final(job_state(j))) {
                error_with_state(call, MPLOCK_ERROR_JOB_NOT_ACTIVE, j);
                return NULL;
        }
        return j;
}

/* Answered when the job is cancelled, i.e. its runner is gone. */
static void method_cancel(Api *api, Call *call) {
        Job *j = lookup_active_job(api, call);

        if (!j)
                return;
        add_waiter(api, call, j, WAIT_CANCEL);
        job_cancel(j);
}

/* Answered once the job is paused: its runner has committed and exited. */
static void method_pause(Api *api, Call *call) {
        Job *j = lookup_active_job(api, call);

        if (!j)
                return;
        if (job_state(j) == JOB_PAUSED) {
                job_hold(j);
                reply_job(call, j);
                return;
        }
        add_waiter(api, call, j, WAIT_PAUSE);
        job_pause(j, NULL);
}

static void method_resume(Api *api, Call *call) {
        Job *j = lookup_job(api, call, id_only, ELEMENTSOF(id_only));

        if (!j || refuse_damaged(call, j))
                return;
        if (job_state(j) != JOB_PAUSED) {
                error_with_state(call, MPLOCK_ERROR_JOB_NOT_PAUSED, j);
                return;
        }
        job_resume(j);
        if (!refuse_unpersisted(call, j))
                reply_job(call, j);
}

/* Retry's codes and items: each in bounds, at most RETRY_SEL_MAX of
 * each; false once the call is answered. */
static bool retry_selection(Call *call, const Job *j, RetrySel *sel) {
        static const JsonField range_fields[] = {
                { "first", JSON_KIND_UINT, true },
                { "last", JSON_KIND_UINT, true },
        };
        json_object *codes = json_get(call_parameters(call), "codes");
        json_object *items = json_get(call_parameters(call), "items");
        char why[160];
        JsonError err;

        for (size_t i = 0; codes && i < json_object_array_length(codes); i++) {
                json_object *c = json_object_array_get_idx(codes, i);
                int r = json_object_is_type(c, json_type_int) ? retry_sel_add_code(sel, json_object_get_int64(c))
                                                             : -EINVAL;
                if (r < 0) {
                        call_error_param(call, "codes", r == -E2BIG ? "more than 1024 codes"
                                                                    : "each code is a nonzero 32-bit integer");
                        return false;
                }
        }
        for (size_t i = 0; items && i < json_object_array_length(items); i++) {
                json_object *g = json_object_array_get_idx(items, i);
                int r;

                if (json_validate(g, range_fields, ELEMENTSOF(range_fields), &err) < 0) {
                        call_error_param(call, "items", "each range is {first, last}");
                        return false;
                }
                r = retry_sel_add_range(sel, json_get_uint(g, "first", 0), json_get_uint(g, "last", 0),
                                        j->spec.n_items);
                if (r < 0) {
                        (void) snprintf(why, sizeof(why), "%s",
                                        r == -E2BIG    ? "more than 1024 ranges"
                                        : r == -ERANGE ? "an index past the job's last item"
                                                       : "a range whose first index is after its last");
                        call_error_param(call, "items", why);
                        return false;
                }
        }
        retry_sel_normalize(sel);
        return true;
}

static void method_retry(Api *api, Call *call) {
        static const JsonField fields[] = {
                { "id", JSON_KIND_UINT, true },
                { "codes", JSON_KIND_ARRAY, false },
                { "items", JSON_KIND_ARRAY, false },
        };
        Job *j = lookup_job(api, call, fields, ELEMENTSOF(fields));
        _cleanup_free_ RetrySel *sel = NULL;
        char why[256];
        int r;

        if (!j || refuse_damaged(call, j))
                return;
        sel = calloc(1, sizeof(*sel));
        if (!sel) {
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        if (!retry_selection(call, j, sel))
                return;
        /* Ended with something left to do: failed items, or items never
         * done (a failed or cancelled job). */
        if (!job_state_is_final(job_state(j)) || job_state(j) == JOB_COMPLETED) {
                error_with_state(call, MPLOCK_ERROR_NOTHING_TO_RETRY, j);
                return;
        }
        /* Its shards' checkpoints belong to the first generation. */
        if (j->spec.slurm) {
                call_error_param(call, "id", "a retry of a Slurm job is not supported yet: submit its failed "
                                             "items again");
                return;
        }
        /* Active again: within its owner's limits, as a new job would be. */
        if (!api_admit(api, call, j->spec.uid, false))
                return;
        r = job_retry(j, sel);
        if (r < 0) {
                (void) snprintf(why, sizeof(why), "cannot start the retry: %s", strerror(-r));
                call_error_reason(call, MPLOCK_ERROR_STORAGE_ERROR, why);
                return;
        }
        reply_job(call, j);
}

/* Forgets an ended job: its state directory goes, its output stays. */
static void method_remove(Api *api, Call *call) {
        Job *j = lookup_job(api, call, id_only, ELEMENTSOF(id_only));
        char why[256];
        uint64_t id;
        int r;

        if (!j)
                return;
        if (!job_state_is_final(job_state(j)) && !j->damaged) {
                error_with_state(call, MPLOCK_ERROR_JOB_ACTIVE, j);
                return;
        }
        id = j->spec.id;
        r = jobs_remove(api->jobs, j);
        if (r < 0) {
                (void) snprintf(why, sizeof(why), "cannot remove the job's state: %s", strerror(-r));
                call_error_reason(call, MPLOCK_ERROR_STORAGE_ERROR, why);
                return;
        }
        log_job(LOG_INFO, id, "Removed by uid %u.", (unsigned) call_uid(call));
        call_reply(call, NULL);
}

static void method_wait(Api *api, Call *call) {
        Job *j = lookup_job(api, call, id_only, ELEMENTSOF(id_only));
        json_object *p;

        if (!j)
                return;
        /* Ended, or paused by a fault (it has a reason): nothing to wait
         * for without somebody's help. */
        if (job_state_is_final(job_state(j)) || (job_state(j) == JOB_PAUSED && j->status.error)) {
                reply_job(call, j);
                return;
        }
        if (call_wants_more(call)) {
                p = json_object_new_object();
                if (p && json_add(p, "job", job_to_json(j)) == 0)
                        call_notify(call, p);
                else
                        json_object_put(p);
        }
        add_waiter(api, call, j, WAIT_END);
}

static void method_get_info(Api *api, Call *call) {
        json_object *p = json_object_new_object(), *ifs = json_object_new_array();
        JsonError err;

        (void) api;
        if (json_validate(call_parameters(call), NULL, 0, &err) < 0) {
                json_object_put(p);
                json_object_put(ifs);
                call_error_param(call, err.field, err.reason);
                return;
        }
        if (!p || !ifs || json_add_str(p, "vendor", "mplock") < 0 || json_add_str(p, "product", "mplockd") < 0 ||
            json_add_str(p, "version", MPLOCK_VERSION) < 0 || json_add_str(p, "url", "https://mplock.invalid/") < 0 ||
            json_add(p, "interfaces", ifs) < 0 ||
            json_object_array_add(ifs, json_object_new_string(VARLINK_INTERFACE)) < 0 ||
            json_object_array_add(ifs, json_object_new_string(MPLOCK_INTERFACE)) < 0) {
                json_object_put(p);
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        call_reply(call, p);
}

static void reply_one(Call *call, const char *error, const char *key, const char *value) {
        json_object *p = json_object_new_object();

        if (p && json_add_str(p, key, value) < 0) {
                json_object_put(p);
                p = NULL;
        }
        if (error)
                call_error(call, error, p);
        else if (p)
                call_reply(call, p);
        else
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
}

static void method_get_interface_description(Api *api, Call *call) {
        static const JsonField fields[] = { { "interface", JSON_KIND_STRING, true } };
        const char *iface;
        JsonError err;

        (void) api;
        if (json_validate(call_parameters(call), fields, ELEMENTSOF(fields), &err) < 0) {
                call_error_param(call, err.field, err.reason);
                return;
        }
        iface = json_get_str(call_parameters(call), "interface");
        if (streq(iface, MPLOCK_INTERFACE))
                reply_one(call, NULL, "description", mplock_varlink_interface);
        else if (streq(iface, VARLINK_INTERFACE))
                reply_one(call, NULL, "description", org_varlink_service_interface);
        else
                reply_one(call, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", iface);
}

static const struct {
        const char *name;
        void (*handler)(Api *api, Call *call);
} methods[] = {
        { VARLINK_METHOD_GET_INFO, method_get_info },
        { VARLINK_METHOD_GET_INTERFACE_DESCRIPTION, method_get_interface_description },
        { MPLOCK_METHOD_SUBMIT, method_submit },
        { MPLOCK_METHOD_STATUS, method_status },
        { MPLOCK_METHOD_LIST, method_list },
        { MPLOCK_METHOD_CANCEL, method_cancel },
        { MPLOCK_METHOD_WAIT, method_wait },
        { MPLOCK_METHOD_RESULTS, method_results },
        { MPLOCK_METHOD_REMOVE, method_remove },
        { MPLOCK_METHOD_PAUSE, method_pause },
        { MPLOCK_METHOD_RESUME, method_resume },
        { MPLOCK_METHOD_RETRY, method_retry },
        { MPLOCK_METHOD_STATS, method_stats },
};

static void method_unknown(Call *call) {
        const char *method = call_method(call), *dot = strrchr(method, '.');
        char iface[256];

        if (has_prefix(method, MPLOCK_INTERFACE ".") || has_prefix(method, VARLINK_INTERFACE ".")) {
                reply_one(call, VARLINK_ERROR_METHOD_NOT_FOUND, "method", method);
                return;
        }
        (void) snprintf(iface, sizeof(iface), "%.*s", (int) (dot ? (size_t) (dot - method) : strlen(method)), method);
        reply_one(call, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", iface);
}

void api_dispatch(Call *call, void *userdata) {
        Api *api = userdata;

        /* A "more" call to a method that replies once still gets its one
         * reply; Varlink allows that. */
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (streq(methods[i].name, call_method(call))) {
                        methods[i].handler(api, call);
                        return;
                }
        method_unknown(call);
}

int api_new(Api **ret, sd_event *event, const Settings *settings, Jobs *jobs, Submitter *submitter,
            Agents *agents) {
        Api *api = calloc(1, sizeof(*api));
        int r;

        if (!api)
                return -ENOMEM;
        *api = (Api){ .event = event, .settings = settings, .jobs = jobs, .submitter = submitter, .agents = agents };
        r = sd_event_add_time_relative(event, &api->progress_timer, CLOCK_MONOTONIC, PROGRESS_INTERVAL_USEC, 0,
                                       progress_handler, api);
        if (r < 0) {
                free(api);
                return r;
        }
        (void) sd_event_source_set_description(api->progress_timer, "wait-progress");
        *ret = api;
        return 0;
}

Api *api_free(Api *api) {
        if (!api)
                return NULL;
        while (api->waiters)
                waiter_free(api->waiters);
        sd_event_source_disable_unref(api->progress_timer);
        free(api);
        return NULL;
}
