/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobspec.h"
#include "json-util.h"
#include "test-util.h"
#include "varlink.h"

/* One table writes and reads a job everywhere: what goes out comes back
 * the same, wherever it goes, and nothing else is taken in. */

static JobSpec sample(void) {
        return (JobSpec){
                .id = 42,
                .name = strdup("sq"),
                .module = strdup("/m/square.so"),
                .input = strdup("/in/items.txt"),
                .output = strdup("/out"),
                .shared_json = strdup("{\"a\":[1,2],\"b\":{\"c\":\"d\"}}"),
                .workers = 8,
                .batch_size = 4,
                .save_batch = 100,
                .timeout_usec = 30 * 1000000ULL,
                .max_attempts = 5,
                .halt = strdup("5%"),
                .halt_failures = 7,
                .memory_max = 64u << 20,
                .separator = JOB_SEPARATOR_NUL,
                .n_items = 1000,
                .input_bytes = 5000,
                .input_crc = 0xdeadbeef,
                .uid = 1000,
                .gid = 100,
                .created_usec = 1234567,
        };
}

static json_object *parse(const char *text) {
        const char *why;
        json_object *o = json_parse_strict(text, strlen(text), VARLINK_JSON_DEPTH, &why);

        ck_assert_ptr_nonnull(o);
        return o;
}

static void assert_same_persisted(const JobSpec *a, const JobSpec *b) {
        ck_assert_uint_eq(a->id, b->id);
        ck_assert_str_eq(a->name, b->name);
        ck_assert_str_eq(a->module, b->module);
        ck_assert_str_eq(a->input, b->input);
        ck_assert_str_eq(a->output, b->output);
        ck_assert_str_eq(a->shared_json, b->shared_json);
        ck_assert_uint_eq(a->workers, b->workers);
        ck_assert_uint_eq(a->batch_size, b->batch_size);
        ck_assert_uint_eq(a->save_batch, b->save_batch);
        ck_assert_uint_eq(a->timeout_usec, b->timeout_usec);
        ck_assert_uint_eq(a->max_attempts, b->max_attempts);
        ck_assert_str_eq(a->halt, b->halt);
        ck_assert_uint_eq(a->halt_failures, b->halt_failures);
        ck_assert_uint_eq(a->memory_max, b->memory_max);
        ck_assert_int_eq(a->separator, b->separator);
        ck_assert_uint_eq(a->n_items, b->n_items);
        ck_assert_uint_eq(a->input_bytes, b->input_bytes);
        ck_assert_uint_eq(a->input_crc, b->input_crc);
        ck_assert_uint_eq(a->uid, b->uid);
        ck_assert_uint_eq(a->gid, b->gid);
        ck_assert_uint_eq(a->created_usec, b->created_usec);
}

START_TEST(test_persisted_round_trip) {
        JobSpec a = sample(), b = {};
        json_object *o = json_object_new_object();
        JsonError err;

        ck_assert_int_eq(schema_to_json(&job_spec_schema, &a, SCHEMA_PERSIST, o), 0);
        /* job.json version 1 names: a file of an earlier version reads. */
        ck_assert_uint_eq(json_get_uint(o, "timeout", 0), 30);
        ck_assert_str_eq(json_get_str(o, "separator"), "nul");
        ck_assert_uint_eq(json_get_uint(o, "items", 0), 1000);
        ck_assert_int_eq(schema_from_json(&job_spec_schema, &b, SCHEMA_PERSIST, o, &err), 0);
        assert_same_persisted(&a, &b);
        json_object_put(o);
        job_spec_done(&a);
        job_spec_done(&b);
        ck_assert_ptr_null(a.name);
}
END_TEST

/* Every number at both ends of its bounds goes out and comes back; one
 * past the upper bound is not written at all (job.json that the daemon
 * could not read back would lose the job at the next start). */
START_TEST(test_every_number_at_its_extremes) {
        const Schema *schemas[] = { &job_spec_schema, &job_status_schema };

        for (size_t k = 0; k < ELEMENTSOF(schemas); k++)
                for (size_t i = 0; i < schemas[k]->n_fields; i++) {
                        const SchemaField *f = &schemas[k]->fields[i];
                        uint64_t ends[2] = { f->min, f->max };
                        union {
                                JobSpec spec;
                                JobStatus status;
                        } a, b;
                        char *p = (char *) &a + f->offset;
                        json_object *o;
                        JsonError err;
                        uint64_t got;

                        if (f->type != SCHEMA_U32 && f->type != SCHEMA_U64 && f->type != SCHEMA_USEC_SEC)
                                continue;
                        for (int e = 0; e < 3; e++) {
                                uint64_t v = e < 2 ? ends[e] : f->max + 1;
                                if (f->type == SCHEMA_U32 && v > UINT32_MAX)
                                        continue; /* cannot be held */
                                if (k == 0)
                                        a.spec = sample();
                                else
                                        a.status = (JobStatus){ .state = JOB_RUNNING };
                                if (f->type == SCHEMA_U32)
                                        *(uint32_t *) (void *) p = (uint32_t) v;
                                else
                                        *(uint64_t *) (void *) p = f->type == SCHEMA_USEC_SEC ? v * 1000000u : v;
                                o = json_object_new_object();
                                if (e == 2) {
                                        ck_assert_msg(schema_to_json(schemas[k], &a, SCHEMA_PERSIST, o) == -ERANGE,
                                                      "%s past its bound was written", f->name);
                                } else {
                                        ck_assert_int_eq(schema_to_json(schemas[k], &a, SCHEMA_PERSIST, o), 0);
                                        memset(&b, 0, sizeof(b));
                                        ck_assert_msg(schema_from_json(schemas[k], &b, SCHEMA_PERSIST, o, &err) == 0,
                                                      "%s = %llu does not read back", f->name,
                                                      (unsigned long long) v);
                                        p = (char *) &b + f->offset;
                                        got = f->type == SCHEMA_U32 ? *(uint32_t *) (void *) p
                                              : f->type == SCHEMA_USEC_SEC ? *(uint64_t *) (void *) p / 1000000u
                                                                           : *(uint64_t *) (void *) p;
                                        ck_assert_uint_eq(got, v);
                                        p = (char *) &a + f->offset;
                                        schema_done(schemas[k], &b);
                                }
                                json_object_put(o);
                                schema_done(schemas[k], &a);
                        }
                }
}
END_TEST

START_TEST(test_runner_message) {
        JobSpec a = sample(), b = { .max_attempts = 3 };
        RunnerStart st = { .workers = 2, .results_len = 99, .done = 10, .failed = 1, .results_gen = 3,
                           .prev_results_len = 77, .commit_interval_usec = 200000, .commit_items = 1000,
                           .retry_delay_usec = 100000 },
                    st2 = {};
        size_t len;
        char *text = runner_start_to_json(&a, &st, &len);
        json_object *o;
        JsonError err;

        ck_assert_ptr_nonnull(text);
        o = parse(text);
        /* Only what the runner needs: not the owner, the input path or
         * the name. */
        ck_assert_ptr_null(json_get(o, "uid"));
        ck_assert_ptr_null(json_get(o, "input"));
        ck_assert_ptr_null(json_get(o, "name"));
        ck_assert_int_eq(runner_start_from_json(o, &b, &st2, &err), 0);
        ck_assert_uint_eq(b.id, 42);
        ck_assert_str_eq(b.module, a.module);
        ck_assert_str_eq(b.shared_json, a.shared_json);
        ck_assert_uint_eq(b.timeout_usec, a.timeout_usec);
        ck_assert_uint_eq(b.input_crc, a.input_crc);
        ck_assert_uint_eq(st2.workers, st.workers);
        ck_assert_uint_eq(st2.results_len, st.results_len);
        ck_assert_uint_eq(st2.done, st.done);
        ck_assert_uint_eq(st2.failed, st.failed);
        ck_assert_uint_eq(st2.results_gen, st.results_gen);
        ck_assert_uint_eq(st2.prev_results_len, st.prev_results_len);
        ck_assert_uint_eq(st2.commit_interval_usec, st.commit_interval_usec);
        ck_assert_uint_eq(st2.commit_items, st.commit_items);
        ck_assert_uint_eq(st2.retry_delay_usec, st.retry_delay_usec);
        json_object_put(o);
        /* An unknown field, a missing one, a value out of bounds. */
        o = parse("{\"colour\":1}");
        ck_assert_int_eq(runner_start_from_json(o, &b, &st2, &err), -EINVAL);
        ck_assert_str_eq(err.field, "colour");
        json_object_put(o);
        json_object_put(o = parse(text));
        free(text);
        job_spec_done(&a);
        job_spec_done(&b);
}
END_TEST

/* A whole valid job.json but for one field: refused, naming that field. */
START_TEST(test_bounds_and_types) {
        static const struct {
                const char *key, *value;
        } bad[] = {
                { "workers", "0" },         { "workers", "65537" },    { "workers", "\"2\"" },
                { "workers", "-1" },        { "timeout", "604801" },   { "max_attempts", "0" },
                { "separator", "\"tab\"" }, { "name", "5" },           { "shared", "[1]" },
                { "items", "1.5" },         { "id", "0" },             { "module", "null" },
        };
        JobSpec a = sample();

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                /* A JSON null is absent: a required field then is missing. */
                json_object *o = json_object_new_object(), *v = streq(bad[i].value, "null") ? NULL : parse(bad[i].value);
                JobSpec b = { .max_attempts = 3 };
                JsonError err;

                ck_assert_int_eq(schema_to_json(&job_spec_schema, &a, SCHEMA_PERSIST, o), 0);
                json_object_object_add(o, bad[i].key, v);
                ck_assert_msg(schema_from_json(&job_spec_schema, &b, SCHEMA_PERSIST, o, &err) == -EINVAL, "%s=%s",
                              bad[i].key, bad[i].value);
                ck_assert_str_eq(err.field, bad[i].key);
                job_spec_done(&b);
                json_object_put(o);
        }
        job_spec_done(&a);
}
END_TEST

START_TEST(test_optional_fields_keep_defaults) {
        /* A job.json written before max_attempts was kept. */
        JobSpec a = sample(), b = { .max_attempts = 3 };
        json_object *o = json_object_new_object();
        JsonError err;

        ck_assert_int_eq(schema_to_json(&job_spec_schema, &a, SCHEMA_PERSIST, o), 0);
        json_object_object_del(o, "max_attempts");
        json_object_object_del(o, "halt_on_failure");
        ck_assert_int_eq(schema_from_json(&job_spec_schema, &b, SCHEMA_PERSIST, o, &err), 0);
        ck_assert_uint_eq(b.max_attempts, 3);
        ck_assert_ptr_null(b.halt);
        json_object_object_del(o, "module");
        ck_assert_int_eq(schema_from_json(&job_spec_schema, &b, SCHEMA_PERSIST, o, &err), -EINVAL);
        ck_assert_str_eq(err.field, "module");
        ck_assert_str_eq(err.reason, "missing");
        json_object_put(o);
        job_spec_done(&a);
        job_spec_done(&b);
}
END_TEST

START_TEST(test_shown_fields) {
        JobSpec a = sample();
        json_object *o = json_object_new_object();
        const Schema *const one[] = { &job_spec_schema };
        JsonError err;

        ck_assert_int_eq(schema_to_json(&job_spec_schema, &a, SCHEMA_SHOW, o), 0);
        /* What clients see: no gid, no fingerprint, no shared data. */
        ck_assert_ptr_nonnull(json_get(o, "uid"));
        ck_assert_ptr_null(json_get(o, "gid"));
        ck_assert_ptr_null(json_get(o, "input_crc"));
        ck_assert_ptr_null(json_get(o, "shared"));
        ck_assert_str_eq(json_get_str(o, "halt_on_failure"), "5%");
        ck_assert_int_eq(schema_check_keys(o, one, 1, SCHEMA_SHOW, NULL, &err), 0);
        ck_assert_int_eq(schema_check_keys(o, one, 1, SCHEMA_RUNNER, NULL, &err), -EINVAL);
        ck_assert_str_eq(schema_enum_name(&job_status_schema, "state", JOB_COMPLETED_WITH_FAILURES),
                         "completed_with_failures");
        ck_assert_str_eq(schema_enum_name(&job_status_schema, "state", 99), "invalid");
        json_object_put(o);
        job_spec_done(&a);
}
END_TEST

static Suite *schema_suite(void) {
        Suite *s = suite_create("schema");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_persisted_round_trip);
        tcase_add_test(tc, test_every_number_at_its_extremes);
        tcase_add_test(tc, test_runner_message);
        tcase_add_test(tc, test_bounds_and_types);
        tcase_add_test(tc, test_optional_fields_keep_defaults);
        tcase_add_test(tc, test_shown_fields);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(schema_suite());
}
