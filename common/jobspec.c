/* SPDX-License-Identifier: MIT */
#include "jobspec.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "macro.h"

static const char *const separator_names[_JOB_SEPARATOR_MAX] = {
        [JOB_SEPARATOR_NEWLINE] = "newline",
        [JOB_SEPARATOR_NUL] = "nul",
};

static const char *const state_names[_JOB_STATE_MAX] = {
        [JOB_QUEUED] = "queued",
        [JOB_RUNNING] = "running",
        [JOB_PAUSED] = "paused",
        [JOB_COMPLETED] = "completed",
        [JOB_COMPLETED_WITH_FAILURES] = "completed_with_failures",
        [JOB_FAILED] = "failed",
        [JOB_CANCELLED] = "cancelled",
};

const char *job_state_to_string(JobState s) {
        return s >= 0 && s < _JOB_STATE_MAX ? state_names[s] : "invalid";
}

void job_spec_done(JobSpec *spec) {
        schema_done(&job_spec_schema, spec);
}

void job_status_done(JobStatus *st) {
        schema_done(&job_status_schema, st);
}

#define P SCHEMA_PERSIST
#define R SCHEMA_RUNNER
#define S SCHEMA_SHOW
#define OPT SCHEMA_OPTIONAL
#define U32MAX UINT32_MAX
#define U64MAX (UINT64_C(1) << 62)

#define SPEC(f) offsetof(JobSpec, f)
/* The JSON names are those of job.json version 1, which stays readable. */
static const SchemaField spec_fields[] = {
        { "id", SCHEMA_U64, SPEC(id), P | R | S, 1, U64MAX },
        { "name", SCHEMA_STRING, SPEC(name), P | S },
        { "module", SCHEMA_STRING, SPEC(module), P | R | S },
        { "input", SCHEMA_STRING, SPEC(input), P | S },
        { "separator", SCHEMA_ENUM, SPEC(separator), P | S, .names = separator_names, .n_names = _JOB_SEPARATOR_MAX },
        { "output", SCHEMA_STRING, SPEC(output), P | R | S },
        { "shared", SCHEMA_OBJECT, SPEC(shared_json), P | R },
        { "workers", SCHEMA_U32, SPEC(workers), P | S, 1, 65536 },
        { "batch_size", SCHEMA_U32, SPEC(batch_size), P | R | S, 1, 1u << 20 },
        { "save_batch", SCHEMA_U32, SPEC(save_batch), P | R | S, 1, 100000000 },
        { "timeout", SCHEMA_USEC_SEC, SPEC(timeout_usec), P | R | S | OPT, 0, JOB_TIMEOUT_MAX_SEC },
        { "max_attempts", SCHEMA_U32, SPEC(max_attempts), P | R | S | OPT, 1, JOB_ATTEMPTS_MAX },
        { "halt_on_failure", SCHEMA_STRING, SPEC(halt), P | S | OPT },
        { "halt_failures", SCHEMA_U64, SPEC(halt_failures), P | R | OPT, 0, JOB_ITEMS_MAX },
        { "memory_max", SCHEMA_U64, SPEC(memory_max), P | R | S | OPT, 0, UINT64_C(1) << 50 },
        { "tasks_max", SCHEMA_U64, SPEC(tasks_max), P | S | OPT, 0, JOB_TASKS_MAX },
        { "cpu_weight", SCHEMA_U32, SPEC(cpu_weight), P | S | OPT, 0, 10000 },
        { "cpu_quota", SCHEMA_U32, SPEC(cpu_quota), P | S | OPT, 0, JOB_CPU_QUOTA_MAX },
        { "io_weight", SCHEMA_U32, SPEC(io_weight), P | S | OPT, 0, 10000 },
        { "max_items_per_worker", SCHEMA_U64, SPEC(max_items_per_worker), P | R | S | OPT, 0, JOB_ITEMS_MAX },
        { "max_worker_memory", SCHEMA_U64, SPEC(max_worker_memory), P | R | S | OPT, 0, UINT64_C(1) << 50 },
        { "items", SCHEMA_U64, SPEC(n_items), P | R | S, 0, JOB_ITEMS_MAX },
        { "input_bytes", SCHEMA_U64, SPEC(input_bytes), P | R, 0, UINT64_C(1) << 50 },
        { "input_crc", SCHEMA_U32, SPEC(input_crc), P | R, 0, U32MAX },
        { "uid", SCHEMA_U32, SPEC(uid), P | S, 0, U32MAX },
        { "gid", SCHEMA_U32, SPEC(gid), P, 0, U32MAX },
        { "created_usec", SCHEMA_U64, SPEC(created_usec), P | S, 0, U64MAX },
        { "umask", SCHEMA_U32, SPEC(umask), P | R | S | OPT, 0, 0777 },
        { "module_stamp", SCHEMA_STRING, SPEC(module_stamp), P | R | OPT },
        { "slurm", SCHEMA_U32, SPEC(slurm), P | R | S | OPT, 0, 1 },
        { "shards", SCHEMA_U32, SPEC(shards), P | R | S | OPT, 0, JOB_SHARDS_MAX },
        { "partition", SCHEMA_STRING, SPEC(partition), P | R | S | OPT },
        { "slurm_options", SCHEMA_STRING, SPEC(slurm_options), P | R | S | OPT },
        { "on_end", SCHEMA_STRING, SPEC(on_end), P | S | OPT },
        { "reuse_job", SCHEMA_U64, SPEC(reuse_job), P | R | S | OPT, 0, U64MAX },
        { "reuse_output", SCHEMA_STRING, SPEC(reuse_output), P | R | OPT },
        { "reuse_len", SCHEMA_U64, SPEC(reuse_len), P | R | OPT, 0, U64MAX },
        { "reuse_items", SCHEMA_U64, SPEC(reuse_items), P | R | OPT, 0, JOB_ITEMS_MAX },
        { "reuse_gen", SCHEMA_U32, SPEC(reuse_gen), P | R | OPT, 0, U32MAX },
        { "reuse_stamp", SCHEMA_STRING, SPEC(reuse_stamp), P | R | OPT },
};
const Schema job_spec_schema = { spec_fields, ELEMENTSOF(spec_fields) };

#define STATUS(f) offsetof(JobStatus, f)
static const SchemaField status_fields[] = {
        { "state", SCHEMA_ENUM, STATUS(state), P, .names = state_names, .n_names = _JOB_STATE_MAX },
        { "error", SCHEMA_STRING, STATUS(error), P | OPT },
        { "started_usec", SCHEMA_U64, STATUS(started_usec), P | OPT, 0, U64MAX },
        { "finished_usec", SCHEMA_U64, STATUS(finished_usec), P | OPT, 0, U64MAX },
        { "done", SCHEMA_U64, STATUS(done), P | OPT, 0, U64MAX },
        { "failed", SCHEMA_U64, STATUS(failed), P | OPT, 0, U64MAX },
        { "results_len", SCHEMA_U64, STATUS(results_len), P | OPT, 0, U64MAX },
        { "results_gen", SCHEMA_U32, STATUS(results_gen), P | OPT, 0, U32MAX },
        { "prev_results_len", SCHEMA_U64, STATUS(prev_results_len), P | OPT, 0, U64MAX },
        { "retry_codes", SCHEMA_STRING, STATUS(retry_codes), P | OPT },
        { "retry_items", SCHEMA_STRING, STATUS(retry_items), P | OPT },
        { "cpu_usec", SCHEMA_U64, STATUS(cpu_usec), P | OPT, 0, U64MAX },
        { "memory_peak", SCHEMA_U64, STATUS(memory_peak), P | OPT, 0, U64MAX },
        { "io_read_bytes", SCHEMA_U64, STATUS(io_read_bytes), P | OPT, 0, U64MAX },
        { "io_write_bytes", SCHEMA_U64, STATUS(io_write_bytes), P | OPT, 0, U64MAX },
        { "oom_kills", SCHEMA_U64, STATUS(oom_kills), P | OPT, 0, U64MAX },
        { "ends", SCHEMA_U32, STATUS(ends), P | OPT, 0, U32MAX },
        { "notified", SCHEMA_U32, STATUS(notified), P | OPT, 0, U32MAX },
        { "reused", SCHEMA_U64, STATUS(reused), P | OPT, 0, U64MAX },
};
const Schema job_status_schema = { status_fields, ELEMENTSOF(status_fields) };

#define START(f) offsetof(RunnerStart, f)
static const SchemaField start_fields[] = {
        { "workers", SCHEMA_U32, START(workers), R, 1, 65536 },
        { "results_len", SCHEMA_U64, START(results_len), R, 0, U64MAX },
        { "done", SCHEMA_U64, START(done), R, 0, U64MAX },
        { "failed", SCHEMA_U64, START(failed), R, 0, U64MAX },
        { "results_gen", SCHEMA_U32, START(results_gen), R, 0, U32MAX },
        { "prev_results_len", SCHEMA_U64, START(prev_results_len), R, 0, U64MAX },
        { "retry_codes", SCHEMA_STRING, START(retry_codes), R | OPT },
        { "retry_items", SCHEMA_STRING, START(retry_items), R | OPT },
        { "commit_interval_usec", SCHEMA_U64, START(commit_interval_usec), R, 1000, UINT64_C(3600) * 1000000 },
        { "commit_items", SCHEMA_U32, START(commit_items), R, 1, U32MAX },
        { "retry_delay_usec", SCHEMA_U64, START(retry_delay_usec), R, 0, UINT64_C(3600) * 1000000 },
        { "callback_timeout_usec", SCHEMA_U64, START(callback_timeout_usec), R | OPT, 0,
          UINT64_C(604800) * 1000000 },
        { "resumed", SCHEMA_U32, START(resumed), R, 0, 1 },
        { "wait_placed", SCHEMA_U32, START(wait_placed), R | OPT, 0, 1 },
};
const Schema runner_start_schema = { start_fields, ELEMENTSOF(start_fields) };

char *runner_start_to_json(const JobSpec *spec, const RunnerStart *st, size_t *ret_len) {
        json_object *o = json_object_new_object();
        const char *t;
        char *text = NULL;

        if (o && schema_to_json(&job_spec_schema, spec, SCHEMA_RUNNER, o) >= 0 &&
            schema_to_json(&runner_start_schema, st, SCHEMA_RUNNER, o) >= 0 && (t = json_compact(o, ret_len)))
                text = strndup(t, *ret_len);
        json_object_put(o);
        return text;
}

int runner_start_from_json(json_object *o, JobSpec *spec, RunnerStart *st, JsonError *err) {
        static const Schema *const both[] = { &job_spec_schema, &runner_start_schema };
        int r;

        r = schema_check_keys(o, both, ELEMENTSOF(both), SCHEMA_RUNNER, NULL, err);
        if (r >= 0)
                r = schema_from_json(&job_spec_schema, spec, SCHEMA_RUNNER, o, err);
        if (r >= 0)
                r = schema_from_json(&runner_start_schema, st, SCHEMA_RUNNER, o, err);
        return r;
}
