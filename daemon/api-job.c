/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api-internal.h"
#include "job-scope.h"
#include "config.h"
#include "control.h"
#include "macro.h"
#include "varlink-names.h"

/* From the job's scopes: what its runs used (absent without scopes). */
static int add_usage(json_object *o, const Job *j) {
        json_object *u;
        ScopeUsage use;

        if (!job_usage(j, &use))
                return 0;
        u = json_object_new_object();
        if (!u)
                return -ENOMEM;
        if ((use.cpu && json_add_u64(u, "cpu_usec", use.cpu_usec) < 0) ||
            (use.memory && (json_add_u64(u, "memory_current", use.memory_current) < 0 ||
                            json_add_u64(u, "memory_peak", use.memory_peak) < 0 ||
                            json_add_u64(u, "oom_kills", use.oom_kills) < 0)) ||
            (use.io && (json_add_u64(u, "io_read_bytes", use.io_read_bytes) < 0 ||
                        json_add_u64(u, "io_write_bytes", use.io_write_bytes) < 0))) {
                json_object_put(u);
                return -ENOMEM;
        }
        return json_add(o, "usage", u);
}

static const char *const shard_states[_IPC_SHARD_STATE_MAX] = {
        [IPC_SHARD_PENDING] = "pending", [IPC_SHARD_RUNNING] = "running", [IPC_SHARD_DONE] = "done",
        [IPC_SHARD_LOST] = "lost",       [IPC_SHARD_FAILED] = "failed",   [IPC_SHARD_STOPPED] = "stopped",
};

/* A Slurm job's array and shards, as its coordinator last told. */
static int add_cluster(json_object *o, const Job *j) {
        json_object *c, *v;

        if (!j->n_shards)
                return 0;
        c = json_object_new_object();
        v = json_object_new_array();
        if (!c || !v || json_add_str(c, "array", j->slurm_array) < 0) {
                json_object_put(c);
                json_object_put(v);
                return -ENOMEM;
        }
        for (uint32_t k = 0; k < j->n_shards; k++) {
                const IpcShard *s = &j->shards[k];
                json_object *e = json_object_new_object();
                /* A running job's shards; once it has ended, none runs. */
                uint32_t st = s->state == IPC_SHARD_RUNNING || s->state == IPC_SHARD_PENDING
                                      ? (job_state(j) == JOB_RUNNING ? s->state : IPC_SHARD_STOPPED)
                                      : s->state;

                if (!e || json_add_u64(e, "index", k) < 0 ||
                    json_add_str(e, "state", shard_states[st]) < 0 || json_add_u64(e, "items", s->items) < 0 ||
                    json_add_u64(e, "done", s->done) < 0 || json_add_u64(e, "failed", s->failed) < 0 ||
                    json_add_u64(e, "attempts", s->attempts) < 0 || json_add_str(e, "task", s->job) < 0 ||
                    json_add_str(e, "node", s->node) < 0 || json_object_array_add(v, e) < 0) {
                        json_object_put(e);
                        json_object_put(c);
                        json_object_put(v);
                        return -ENOMEM;
                }
        }
        if (json_add(c, "shards", v) < 0) {
                json_object_put(c);
                return -ENOMEM;
        }
        return json_add(o, "cluster", c);
}

/* Seconds left at rate, rounded up: 840 items at 931/s is 1 s, not 0,
 * so that a job with items left never shows 0. */
static uint64_t eta_seconds(uint64_t left, double rate) {
        double sec = (double) left / rate;
        uint64_t whole = (uint64_t) sec;

        return whole + ((double) whole < sec);
}

/* The spec's shown fields come from the schema; these are how it runs. */
static int add_progress(json_object *o, const Job *j) {
        JobState s = job_state(j);
        uint64_t processed = MAX(j->processed, j->status.done);
        int r = 0;

#define ADD(k, v)                                   \
        do {                                        \
                if (r >= 0)                         \
                        r = json_add(o, (k), (v));  \
        } while (0)
        ADD("state", json_object_new_string(job_state_to_string(s)));
        ADD("done", json_object_new_int64((int64_t) j->status.done));
        ADD("failed", json_object_new_int64((int64_t) j->status.failed));
        ADD("processed", json_object_new_int64((int64_t) processed));
        ADD("rate", json_object_new_double(s == JOB_RUNNING ? j->rate : 0.0));
        if (s == JOB_RUNNING && j->rate > 0.5)
                ADD("eta_seconds", json_object_new_int64((int64_t) eta_seconds(j->spec.n_items - processed, j->rate)));
        if (job_state_is_final(s) && j->status.started_usec && j->status.finished_usec >= j->status.started_usec) {
                /* Once it has ended, its average over the whole run. */
                double sec = (double) (j->status.finished_usec - j->status.started_usec) / 1e6;
                ADD("duration_seconds", json_object_new_double(sec));
                ADD("average_rate", json_object_new_double(sec > 0 ? (double) j->status.done / sec : 0.0));
        }
        if (j->spec.reuse_job)
                ADD("reused", json_object_new_int64((int64_t) j->status.reused));
        ADD("live_workers", json_object_new_int64(j->live_workers));
        if (j->status.started_usec)
                ADD("started_usec", json_object_new_int64((int64_t) j->status.started_usec));
        if (j->status.finished_usec && job_state_is_final(s))
                ADD("finished_usec", json_object_new_int64((int64_t) j->status.finished_usec));
        if (j->status.error && (s == JOB_FAILED || s == JOB_PAUSED))
                ADD("error", json_object_new_string(j->status.error));
        if (j->damaged)
                ADD("damaged", json_object_new_boolean(true));
        ADD("results_committed", json_object_new_int64((int64_t) j->status.results_len));
        if (s == JOB_RUNNING || j->cgroup)
                ADD("isolation", json_object_new_string(job_isolation(j)));
        if (j->cgroup) {
                char unit[64], ctl[256];
                if (scope_unit_name(j->spec.id, unit, sizeof(unit)) == 0)
                        ADD("unit", json_object_new_string(unit));
                if (scope_controllers(j->cgroup, ctl, sizeof(ctl)) == 0)
                        ADD("controllers", json_object_new_string(ctl));
        }
        if (r >= 0)
                r = add_usage(o, j);
        if (r >= 0)
                r = add_cluster(o, j);
        ADD("retries", json_object_new_int64(j->status.results_gen));
        if (j->spec.on_end)
                ADD("on_end_owed", json_object_new_boolean(j->status.ends != j->status.notified));
#undef ADD
        return r;
}

static int add_path(json_object *o, const char *key, const Job *j, const char *suffix) {
        char path[4200];

        (void) snprintf(path, sizeof(path), "%s/mplock-%llu.%s", j->spec.output, (unsigned long long) j->spec.id,
                        suffix);
        return json_add_str(o, key, path);
}

json_object *job_to_json(const Job *j) {
        json_object *o = json_object_new_object();

        if (!o || schema_to_json(&job_spec_schema, &j->spec, SCHEMA_SHOW, o) < 0 || add_progress(o, j) < 0 ||
            add_path(o, "results_path", j, "results") < 0 || add_path(o, "log_path", j, "log") < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

void reply_job(Call *call, const Job *j) {
        json_object *p = json_object_new_object();

        if (!p || json_add(p, "job", job_to_json(j)) < 0) {
                json_object_put(p);
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        call_reply(call, p);
}

bool call_is_admin(const Api *api, const Call *call) {
        uint32_t admin = api->settings->admin_gid;

        return call_uid(call) == 0 || (admin != UINT32_MAX && call_peer_in_group(call, admin));
}

static void error_with_id(Call *call, const char *error, uint64_t id) {
        json_object *p = json_object_new_object();

        if (p && json_add_u64(p, "id", id) < 0) {
                json_object_put(p);
                p = NULL;
        }
        call_error(call, error, p);
}

Job *lookup_job(Api *api, Call *call, const JsonField *fields, size_t n_fields) {
        JsonError err;
        uint64_t id;
        Job *j;

        if (json_validate(call_parameters(call), fields, n_fields, &err) < 0) {
                call_error_param(call, err.field, err.reason);
                return NULL;
        }
        id = json_get_uint(call_parameters(call), "id", 0);
        j = jobs_find(api->jobs, id);
        if (!j) {
                error_with_id(call, MPLOCK_ERROR_NO_SUCH_JOB, id);
                return NULL;
        }
        /* root and the admin group see everything; everybody else their
         * own jobs. */
        if (!call_is_admin(api, call) && call_uid(call) != j->spec.uid) {
                error_with_id(call, MPLOCK_ERROR_PERMISSION_DENIED, id);
                return NULL;
        }
        return j;
}

void error_with_state(Call *call, const char *error, const Job *j) {
        json_object *p = json_object_new_object();

        if (p && (json_add_u64(p, "id", j->spec.id) < 0 ||
                  json_add_str(p, "state", job_state_to_string(job_state(j))) < 0)) {
                json_object_put(p);
                p = NULL;
        }
        call_error(call, error, p);
}
