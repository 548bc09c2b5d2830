/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-internal.h"
#include "config.h"
#include "control.h"
#include "macro.h"
#include "parse.h"
#include "slurmopt.h"
#include "submit.h"
#include "varlink-names.h"

/* Submit: every parameter checked, then handed to submit.c as a JobSpec. */

#define PATH_MAX_LEN 3900

/* What a Submit call may carry; the fuzzer validates with the same table. */
const JsonField submit_fields[] = {
        { "module", JSON_KIND_STRING, true },      { "input", JSON_KIND_STRING, false },
        { "items", JSON_KIND_ARRAY, false },       { "separator", JSON_KIND_STRING, false },
        { "output", JSON_KIND_STRING, true },      { "workers", JSON_KIND_UINT, false },
        { "shared", JSON_KIND_OBJECT, false },     { "save_batch", JSON_KIND_UINT, false },
        { "batch_size", JSON_KIND_UINT, false },   { "name", JSON_KIND_STRING, false },
        { "timeout", JSON_KIND_UINT, false },      { "memory_max", JSON_KIND_UINT, false },
        { "max_attempts", JSON_KIND_UINT, false }, { "halt_on_failure", JSON_KIND_STRING, false },
        { "umask", JSON_KIND_UINT, false },        { "tasks_max", JSON_KIND_UINT, false },
        { "cpu_weight", JSON_KIND_UINT, false },   { "cpu_quota", JSON_KIND_UINT, false },
        { "io_weight", JSON_KIND_UINT, false },    { "max_items_per_worker", JSON_KIND_UINT, false },
        { "max_worker_memory", JSON_KIND_UINT, false },
        { "slurm", JSON_KIND_BOOL, false },        { "shards", JSON_KIND_UINT, false },
        { "partition", JSON_KIND_STRING, false },  { "slurm_options", JSON_KIND_STRING, false },
        { "on_end", JSON_KIND_STRING, false },     { "reuse", JSON_KIND_UINT, false },
        { "items_count", JSON_KIND_UINT, false },
};
const size_t submit_n_fields = ELEMENTSOF(submit_fields);

/* A refusal: which parameter and why. */
typedef struct Refusal {
        char parameter[64];
        char reason[256];
} Refusal;

static int refuse(Refusal *f, const char *parameter, const char *fmt, ...) _printf_(3, 4);
static int refuse(Refusal *f, const char *parameter, const char *fmt, ...) {
        va_list ap;

        (void) snprintf(f->parameter, sizeof(f->parameter), "%s", parameter);
        va_start(ap, fmt);
        (void) vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static bool text_ok(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static int check_path(const char *p, const char *parameter, Refusal *f) {
        if (p[0] != '/')
                return refuse(f, parameter, "must be an absolute path");
        /* Paths are logged and shown: a newline in one could forge a line. */
        if (!text_ok(p))
                return refuse(f, parameter, "must not contain control characters");
        if (strlen(p) > PATH_MAX_LEN)
                return refuse(f, parameter, "path longer than %d bytes", PATH_MAX_LEN);
        return 0;
}

static int check_range(uint64_t v, uint64_t min, uint64_t max, const char *parameter, Refusal *f) {
        if (v < min || v > max)
                return refuse(f, parameter, "must be between %llu and %llu", (unsigned long long) min,
                              (unsigned long long) max);
        return 0;
}

/* "N" (items) or "P%" (of the job's items). */
static int parse_halt(const char *s, uint64_t *count, uint32_t *percent) {
        size_t len = strlen(s);
        char buf[24];
        uint64_t v;

        *count = 0;
        *percent = 0;
        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        if (s[len - 1] != '%')
                return parse_uint_range(s, 1, JOB_ITEMS_MAX, count) < 0 ? -EINVAL : 0;
        memcpy(buf, s, len - 1);
        buf[len - 1] = '\0';
        if (parse_uint_range(buf, 1, 100, &v) < 0)
                return -EINVAL;
        *percent = (uint32_t) v;
        return 0;
}

static char *default_name(const char *module) {
        const char *b = strrchr(module, '/');
        size_t n;

        b = b ? b + 1 : module;
        n = strlen(b);
        if (n > 3 && streq(b + n - 3, ".so"))
                n -= 3;
        return strndup(b, MIN(n, (size_t) JOB_NAME_MAX));
}

/* The paths, the input's form and the job's name. */
static int read_sources(json_object *p, JobSpec *spec, Refusal *f) {
        const char *module = json_get_str(p, "module"), *output = json_get_str(p, "output");
        const char *input = json_get_str(p, "input"), *sep = json_get_str(p, "separator");
        const char *name = json_get_str(p, "name");
        bool items = json_get(p, "items");

        if (check_path(module, "module", f) < 0 || check_path(output, "output", f) < 0)
                return -EINVAL;
        if (!!input == items)
                return refuse(f, "input", "exactly one of input and items must be given");
        if (input && check_path(input, "input", f) < 0)
                return -EINVAL;
        if (sep && !streq(sep, "newline") && !streq(sep, "nul"))
                return refuse(f, "separator", "must be \"newline\" or \"nul\"");
        if (sep && items)
                return refuse(f, "separator", "only applies to an input file");
        if (name && (strlen(name) > JOB_NAME_MAX || !text_ok(name)))
                return refuse(f, "name", "must be at most %u printable characters", JOB_NAME_MAX);
        spec->module = strdup(module);
        spec->output = strdup(output);
        spec->input = strdup(input ? input : "(inline)");
        spec->name = name ? strdup(name) : default_name(module);
        spec->separator = sep && streq(sep, "nul") ? JOB_SEPARATOR_NUL : JOB_SEPARATOR_NEWLINE;
        return spec->module && spec->output && spec->input && spec->name ? 0 : -ENOMEM;
}

/* The numbers, each within the daemon's limits. */
static int read_numbers(json_object *p, const Settings *s, JobSpec *spec, Refusal *f) {
        /* By default as many workers as the daemon runs, within the per-job limit. */
        uint64_t workers = json_get_uint(p, "workers", MIN(s->max_workers, s->max_workers_per_job));
        uint64_t batch = json_get_uint(p, "batch_size", 1), save = json_get_uint(p, "save_batch", 1000);
        uint64_t timeout = json_get_uint(p, "timeout", s->item_timeout_usec / 1000000u);
        uint64_t memory_max = json_get_uint(p, "memory_max", s->memory_max);
        uint64_t attempts = json_get_uint(p, "max_attempts", s->max_attempts);
        uint64_t umask_bits = json_get_uint(p, "umask", JOB_UMASK_DEFAULT);

        if (check_range(workers, 1, s->max_workers_per_job, "workers", f) < 0 ||
            check_range(batch, 1, s->max_batch_size, "batch_size", f) < 0 ||
            check_range(save, 1, s->max_save_batch, "save_batch", f) < 0)
                return -EINVAL;
        if (memory_max != 0 && (memory_max < (UINT64_C(16) << 20) || memory_max > (UINT64_C(1) << 50)))
                return refuse(f, "memory_max", "must be 0 (none) or at least 16 MiB");
        if (attempts < 1 || attempts > JOB_ATTEMPTS_MAX)
                return refuse(f, "max_attempts", "must be between 1 and %u", JOB_ATTEMPTS_MAX);
        if (timeout > JOB_TIMEOUT_MAX_SEC)
                return refuse(f, "timeout", "must be between 0 (none) and %u seconds", JOB_TIMEOUT_MAX_SEC);
        spec->workers = (uint32_t) workers;
        spec->batch_size = (uint32_t) batch;
        spec->save_batch = (uint32_t) save;
        spec->timeout_usec = timeout * 1000000u;
        if (umask_bits > 0777)
                return refuse(f, "umask", "must be between 0 and 0777 (511)");
        spec->memory_max = memory_max;
        spec->umask = (uint32_t) umask_bits;
        spec->max_attempts = (uint32_t) attempts;
        return 0;
}

/* What the job's scope is given (scope.h), within the daemon's bounds; a
 * bounded limit not asked for is the bound: no job is unbounded then. */
static int read_scope_limits(json_object *p, const Settings *s, JobSpec *spec, Refusal *f) {
        uint64_t tasks = json_get_uint(p, "tasks_max", s->max_tasks_per_job);
        uint64_t quota = json_get_uint(p, "cpu_quota", s->max_cpu_quota);
        uint64_t weight = json_get_uint(p, "cpu_weight", 0), io = json_get_uint(p, "io_weight", 0);

        if (s->max_memory_per_job && !json_get(p, "memory_max") && (spec->memory_max == 0 ||
                                                                    spec->memory_max > s->max_memory_per_job))
                spec->memory_max = s->max_memory_per_job;
        if (s->max_memory_per_job && (spec->memory_max == 0 || spec->memory_max > s->max_memory_per_job))
                return refuse(f, "memory_max", "must be at most %llu bytes here (max-memory-per-job)",
                              (unsigned long long) s->max_memory_per_job);
        if (tasks > JOB_TASKS_MAX || (tasks && tasks < 8) ||
            (s->max_tasks_per_job && (!tasks || tasks > s->max_tasks_per_job)))
                return refuse(f, "tasks_max", "must be from 8 to %llu processes and threads",
                              (unsigned long long) (s->max_tasks_per_job ? s->max_tasks_per_job : JOB_TASKS_MAX));
        if (weight > 10000)
                return refuse(f, "cpu_weight", "must be from 1 to 10000 (0: the default, 100)");
        if (io > 10000)
                return refuse(f, "io_weight", "must be from 1 to 10000 (0: the default, 100)");
        if (quota > JOB_CPU_QUOTA_MAX || (s->max_cpu_quota && (!quota || quota > s->max_cpu_quota)))
                return refuse(f, "cpu_quota", "must be from 1 to %u percent of one CPU",
                              s->max_cpu_quota ? s->max_cpu_quota : JOB_CPU_QUOTA_MAX);
        spec->tasks_max = tasks;
        spec->cpu_weight = (uint32_t) weight;
        spec->cpu_quota = (uint32_t) quota;
        spec->io_weight = (uint32_t) io;
        return 0;
}

/* Worker recycling, for modules that leak. */
static int read_recycling(json_object *p, JobSpec *spec, Refusal *f) {
        spec->max_items_per_worker = json_get_uint(p, "max_items_per_worker", 0);
        spec->max_worker_memory = json_get_uint(p, "max_worker_memory", 0);
        if (spec->max_items_per_worker > JOB_ITEMS_MAX)
                return refuse(f, "max_items_per_worker", "must be at most %llu (0: never)",
                              (unsigned long long) JOB_ITEMS_MAX);
        if (spec->max_worker_memory &&
            (spec->max_worker_memory < (UINT64_C(1) << 20) || spec->max_worker_memory > (UINT64_C(1) << 50)))
                return refuse(f, "max_worker_memory", "must be 0 (never) or from 1 MiB to 1 PiB");
        return 0;
}

/* A Slurm job array (docs/slurm.md): the coordinator runs sbatch as the
 * owner, so these only need to be well-formed and bounded here. */
static int read_slurm(json_object *p, JobSpec *spec, Refusal *f) {
        const char *part = json_get_str(p, "partition"), *opts = json_get_str(p, "slurm_options");
        json_object *on = json_get(p, "slurm");
        uint64_t shards = json_get_uint(p, "shards", 0);
        char why[200];

        spec->slurm = on && json_object_get_boolean(on);
        if (!spec->slurm) {
                if (part || opts || json_get(p, "shards"))
                        return refuse(f, part ? "partition" : opts ? "slurm_options" : "shards",
                                      "is only for a Slurm job (slurm: true)");
                return 0;
        }
        if (shards > JOB_SHARDS_MAX || (json_get(p, "shards") && shards == 0))
                return refuse(f, "shards", "must be from 1 to %u", JOB_SHARDS_MAX);
        if (part && (!part[0] || strlen(part) > JOB_PARTITION_MAX || strspn(part, "abcdefghijklmnopqrstuvwxyz"
                                                                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                                                                          strlen(part)))
                return refuse(f, "partition", "must be a partition's name (letters, digits, '_', '-', '.'; at most %u)",
                              JOB_PARTITION_MAX);
        if (opts && strlen(opts) > JOB_SLURM_OPTIONS_MAX)
                return refuse(f, "slurm_options", "longer than %u bytes", JOB_SLURM_OPTIONS_MAX);
        if (opts && slurm_options_check(opts, why, sizeof(why)) < 0)
                return refuse(f, "slurm_options", "%s", why);
        spec->shards = (uint32_t) shards;
        spec->partition = part ? strdup(part) : NULL;
        spec->slurm_options = opts && opts[0] ? strdup(opts) : NULL;
        return (part && !spec->partition) || (opts && opts[0] && !spec->slurm_options) ? -ENOMEM : 0;
}

/* The on-end command: run by /bin/sh as the owner, never by us, so it
 * only needs to be bounded text that logs and shows as one line (a
 * newline could forge a log line): no NUL, no control character but tab. */
static int read_on_end(json_object *p, JobSpec *spec, Refusal *f) {
        json_object *v = json_get(p, "on_end");
        const char *cmd;
        size_t len;

        if (!v)
                return 0;
        cmd = json_object_get_string(v);
        len = (size_t) json_object_get_string_len(v);
        if (len == 0)
                return refuse(f, "on_end", "must not be empty");
        if (len > JOB_ON_END_MAX)
                return refuse(f, "on_end", "longer than %u bytes", JOB_ON_END_MAX);
        if (strlen(cmd) != len)
                return refuse(f, "on_end", "must not contain a NUL byte");
        for (size_t i = 0; i < len; i++)
                if (((unsigned char) cmd[i] < 0x20 && cmd[i] != '\t') || cmd[i] == 0x7f)
                        return refuse(f, "on_end", "must not contain control characters (but tab)");
        spec->on_end = strdup(cmd);
        return spec->on_end ? 0 : -ENOMEM;
}

/* --reuse: an ended job of the caller's, of the same module and shared
 * data (what makes equal items give equal results). Its results file is
 * the owner's, read by the new job's runner as the owner; what is noted
 * here is what the runner checks the file against. */
static int read_reuse(json_object *p, Jobs *jobs, uid_t uid, JobSpec *spec, Refusal *f) {
        json_object *v = json_get(p, "reuse");
        uint64_t id = json_get_uint(p, "reuse", 0);
        const Job *old;

        if (!v)
                return 0;
        old = id > 0 ? jobs_find(jobs, id) : NULL;
        /* Another user's job is not told from a missing one. */
        if (!old || old->spec.uid != uid)
                return refuse(f, "reuse", "no job %llu of yours", (unsigned long long) id);
        if (!job_state_is_final(job_state(old)))
                return refuse(f, "reuse", "job %llu has not ended", (unsigned long long) id);
        if (spec->slurm)
                return refuse(f, "reuse", "is not for a Slurm job");
        if (!streq(old->spec.module, spec->module))
                return refuse(f, "reuse", "job %llu ran another module (%s)", (unsigned long long) id,
                              old->spec.module);
        if (!streq_ptr(old->spec.shared_json, spec->shared_json))
                return refuse(f, "reuse",
                              "job %llu had other shared data (for --exec: the command, its directory or "
                              "environment)",
                              (unsigned long long) id);
        spec->reuse_job = id;
        spec->reuse_len = old->status.results_len;
        spec->reuse_items = old->spec.n_items;
        spec->reuse_gen = old->status.results_gen;
        spec->reuse_output = strdup(old->spec.output);
        spec->reuse_stamp = old->spec.module_stamp ? strdup(old->spec.module_stamp) : NULL;
        return spec->reuse_output && (!old->spec.module_stamp || spec->reuse_stamp) ? 0 : -ENOMEM;
}

static int read_extras(json_object *p, const Settings *s, SubmitRequest *req, Refusal *f) {
        const char *halt = json_get_str(p, "halt_on_failure");
        json_object *shared = json_get(p, "shared");
        const char *text = "{}";
        size_t len = 2;

        if (halt && parse_halt(halt, &req->spec.halt_failures, &req->halt_percent) < 0)
                return refuse(f, "halt_on_failure",
                              "must be a number of items from 1 to %llu (\"10\") or a percentage of the job's "
                              "items (\"5%%\")",
                              (unsigned long long) JOB_ITEMS_MAX);
        /* 0 is no list's count: as good as not given (every list has one). */
        req->expect_items = json_get_uint(p, "items_count", 0);
        if (json_get(p, "items_count") && req->expect_items == 0)
                return refuse(f, "items_count", "must be the list's number of items, at least 1");
        if (shared && !(text = json_compact(shared, &len)))
                return -ENOMEM;
        if (len > s->max_shared)
                return refuse(f, "shared", "larger than %llu bytes", (unsigned long long) s->max_shared);
        req->spec.shared_json = strdup(text);
        req->spec.halt = halt ? strdup(halt) : NULL;
        return req->spec.shared_json && (!halt || req->spec.halt) ? 0 : -ENOMEM;
}

/* Items sent inline, each ended by a NUL, in one buffer. */
static int read_items(json_object *items, const Settings *s, char **ret, SubmitRequest *req, Refusal *f) {
        size_t n = json_object_array_length(items), len = 0, cap = 0;
        _cleanup_free_ char *buf = NULL;

        if (n > s->max_items)
                return refuse(f, "items", "more than %llu items", (unsigned long long) s->max_items);
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(items, i);
                const char *str;
                size_t sl;

                if (!v || !json_object_is_type(v, json_type_string))
                        return refuse(f, "items", "element %zu must be a string", i);
                str = json_object_get_string(v);
                sl = (size_t) json_object_get_string_len(v);
                if (strlen(str) != sl)
                        return refuse(f, "items", "element %zu contains a NUL byte", i);
                if (len + sl + 1 > s->max_input_bytes)
                        return refuse(f, "items", "larger than %llu bytes", (unsigned long long) s->max_input_bytes);
                if (GREEDY_REALLOC(buf, cap, len + sl + 1) < 0)
                        return -ENOMEM;
                memcpy(buf + len, str, sl + 1);
                len += sl + 1;
        }
        req->items = *ret = TAKE_PTR(buf);
        req->items_len = len;
        req->n_inline = n;
        req->inline_items = true;
        return 0;
}

bool api_admit(Api *api, Call *call, uid_t uid, bool new_job) {
        const Settings *s = api->settings;
        size_t pending_of_uid, pending = submitter_count(api->submitter, uid, &pending_of_uid);
        json_object *p = json_object_new_object();
        uint64_t limit;
        JobsUsage u;
        bool user;

        jobs_usage(api->jobs, uid, &u);
        if (!new_job)
                u.jobs = 0; /* it has its place in the table already */
        user = u.active_of_uid + pending_of_uid >= s->max_active_jobs_per_uid;
        if (!user && u.active + pending < s->max_active_jobs && u.jobs + pending < s->max_jobs) {
                json_object_put(p);
                return true;
        }
        limit = user ? s->max_active_jobs_per_uid : u.active + pending >= s->max_active_jobs ? s->max_active_jobs
                                                                                               : s->max_jobs;
        if (p && (json_add_u64(p, "limit", limit) < 0 || (user && json_add_str(p, "scope", "user") < 0))) {
                json_object_put(p);
                p = NULL;
        }
        call_error(call, MPLOCK_ERROR_TOO_MANY_JOBS, p);
        return false;
}

typedef struct PendingSubmit {
        Api *api;
        Call *call;
        Submission *submission;
} PendingSubmit;

static void submit_gone(Call *call, void *userdata) {
        PendingSubmit *ps = userdata;

        (void) call;
        submission_abort(ps->submission);
        call_unref(ps->call);
        free(ps);
}

static void submit_done(const SubmitResult *res, void *userdata) {
        PendingSubmit *ps = userdata;
        Call *call = ps->call;
        json_object *p;

        call_on_gone(call, NULL, NULL);
        if (res->outcome == SUBMIT_OK) {
                /* The new job too: what a client would ask Status next. */
                const Job *j = jobs_find(ps->api->jobs, res->id);

                p = json_object_new_object();
                if (p && json_add_u64(p, "id", res->id) == 0 && (!j || json_add(p, "job", job_to_json(j)) == 0))
                        call_reply(call, p);
                else {
                        json_object_put(p);
                        call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                }
        } else if (res->outcome == SUBMIT_INVALID)
                call_error_param(call, res->parameter, res->reason);
        else if (res->outcome == SUBMIT_SHUTTING_DOWN)
                call_error(call, MPLOCK_ERROR_SHUTTING_DOWN, NULL);
        else
                call_error_reason(call, MPLOCK_ERROR_SUBMIT_FAILED, res->reason);
        call_unref(call);
        free(ps);
}

static int read_request(Api *api, Call *call, SubmitRequest *req, char **items, Refusal *f) {
        json_object *p = call_parameters(call);
        JsonError err;
        int r;

        if (json_validate(p, submit_fields, submit_n_fields, &err) < 0)
                return refuse(f, err.field, "%s", err.reason);
        r = read_sources(p, &req->spec, f);
        if (r >= 0)
                r = read_numbers(p, api->settings, &req->spec, f);
        if (r >= 0)
                r = read_scope_limits(p, api->settings, &req->spec, f);
        if (r >= 0)
                r = read_recycling(p, &req->spec, f);
        if (r >= 0)
                r = read_slurm(p, &req->spec, f);
        if (r >= 0)
                r = read_extras(p, api->settings, req, f);
        if (r >= 0)
                r = read_on_end(p, &req->spec, f);
        if (r >= 0)
                r = read_reuse(p, api->jobs, call_uid(call), &req->spec, f);
        if (r >= 0 && json_get(p, "items"))
                r = read_items(json_get(p, "items"), api->settings, items, req, f);
        req->spec.uid = call_uid(call);
        req->spec.gid = call_gid(call);
        return r;
}

void method_submit(Api *api, Call *call) {
        _cleanup_free_ char *items = NULL;
        SubmitRequest req = {};
        PendingSubmit *ps;
        Submission *s;
        Refusal f = {};
        int r;

        if (api->jobs->stopping) {
                call_error(call, MPLOCK_ERROR_SHUTTING_DOWN, NULL);
                return;
        }
        r = read_request(api, call, &req, &items, &f);
        if (r < 0) {
                job_spec_done(&req.spec);
                if (r == -EINVAL)
                        call_error_param(call, f.parameter, f.reason);
                else
                        call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        if (!api_admit(api, call, call_uid(call), true)) {
                job_spec_done(&req.spec);
                return;
        }
        ps = calloc(1, sizeof(*ps));
        if (!ps) {
                job_spec_done(&req.spec);
                call_error(call, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        ps->api = api;
        ps->call = call_ref(call);
        call_on_gone(call, submit_gone, ps);
        /* NULL: already answered, and ps is gone with it. */
        s = submit_start(api->submitter, &req, submit_done, ps);
        if (s)
                ps->submission = s;
}
