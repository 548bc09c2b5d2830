/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job-scope.h"
#include "jobs.h"
#include "scope.h"
#include "test-util.h"

/* A job's use as scope.c reads it from a cgroup file system laid out in a
 * temporary directory: the unified hierarchy (plain or a hybrid's
 * /unified) and v1 hierarchies; and job-scope.c's cache of that use. */

static char root[256];

static void put(const char *rel, const char *text) {
        char path[512], dir[512], *slash;
        FILE *f;

        (void) snprintf(path, sizeof(path), "%s/%s", root, rel);
        (void) snprintf(dir, sizeof(dir), "%s", path);
        for (char *p = dir + strlen(root) + 1; (slash = strchr(p, '/')); p = slash + 1) {
                *slash = '\0';
                (void) mkdir(dir, 0755);
                *slash = '/';
        }
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
}

static void setup(void) {
        int fd = test_tmpdir(root, sizeof(root));
        close(fd);
        scope_set_cgroup_fs(root);
}

#define CG "/mplock.slice/mplock-u1000.slice/mplock-job-7.scope"

START_TEST(test_unified) {
        ScopeUsage u;
        char ctl[64];

        setup();
        put(CG "/cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n");
        put(CG "/memory.current", "1048576\n");
        put(CG "/memory.peak", "67108864\n");
        put(CG "/memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n");
        put(CG "/io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n8:16 rbytes=1 wbytes=2 rios=1 wios=1\n");
        put(CG "/cgroup.controllers", "cpu io memory pids\n");
        ck_assert_int_eq(scope_usage(CG, &u), 0);
        ck_assert(u.cpu && u.memory && u.io);
        ck_assert_uint_eq(u.cpu_usec, 2500000);
        ck_assert_uint_eq(u.memory_current, 1048576);
        ck_assert_uint_eq(u.memory_peak, 67108864);
        ck_assert_uint_eq(u.oom_kills, 2);
        ck_assert_uint_eq(u.io_read_bytes, 4097);
        ck_assert_uint_eq(u.io_write_bytes, 8194);
        ck_assert_int_eq(scope_controllers(CG, ctl, sizeof(ctl)), 0);
        ck_assert_str_eq(ctl, "cpu io memory pids");
}
END_TEST

/* A hybrid host (this CI's): CPU from the unified hierarchy, which has no
 * controllers; memory only where a v1 hierarchy holds the scope. */
START_TEST(test_hybrid_and_v1) {
        ScopeUsage u;
        char ctl[64];

        setup();
        put("unified/cgroup.procs", "1\n");
        put("unified" CG "/cpu.stat", "usage_usec 42\n");
        put("unified" CG "/cgroup.controllers", "\n");
        ck_assert_int_eq(scope_usage(CG, &u), 0);
        ck_assert(u.cpu && !u.memory && !u.io);
        ck_assert_uint_eq(u.cpu_usec, 42);
        ck_assert_int_eq(scope_controllers(CG, ctl, sizeof(ctl)), 0);
        ck_assert_str_eq(ctl, "");
        put("memory" CG "/memory.usage_in_bytes", "2048\n");
        put("memory" CG "/memory.max_usage_in_bytes", "4096\n");
        ck_assert_int_eq(scope_usage(CG, &u), 0);
        ck_assert(u.memory && u.memory_current == 2048 && u.memory_peak == 4096);
        ck_assert_int_eq(scope_controllers(CG, ctl, sizeof(ctl)), 0);
        ck_assert_str_eq(ctl, "memory");
}
END_TEST

START_TEST(test_nothing_and_bad_paths) {
        ScopeUsage u;
        char ctl[64], name[32];

        setup();
        ck_assert_int_eq(scope_usage(CG, &u), -ENOENT);
        ck_assert_int_eq(scope_usage("relative", &u), -EINVAL);
        ck_assert_int_eq(scope_usage("/a/../../etc", &u), -EINVAL);
        ck_assert_int_eq(scope_controllers(NULL, ctl, sizeof(ctl)), -EINVAL);
        ck_assert_int_eq(scope_unit_name(7, name, sizeof(name)), 0);
        ck_assert_str_eq(name, "mplock-job-7.scope");
        ck_assert_int_eq(scope_unit_name(UINT64_MAX, name, 8), -ENAMETOOLONG);
}
END_TEST

/* No manager here (the CI host has no systemd as PID 1): no Scopes, no
 * error; jobs fall back to process groups. */
START_TEST(test_no_manager_is_no_error) {
        Scopes *s = (Scopes *) 1;
        sd_event *e = NULL;

        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(setenv("XDG_RUNTIME_DIR", "/nonexistent", 1), 0);
        ck_assert_int_eq(scopes_new(&s, e, true, 100), 0);
        ck_assert_ptr_null(s);
        sd_event_unref(e);
}
END_TEST

/* job-scope.c's cache of a running job's use: read again after a second
 * at most, and always fresh at DONE and at the end of the run. */
static uint64_t job_cpu(const Job *j) {
        ScopeUsage u;

        ck_assert(job_usage(j, &u));
        return u.cpu_usec;
}

START_TEST(test_job_usage_cached) {
        Jobs jobs = {};
        Job j = {.jobs = &jobs, .scope_pidfd = -1};

        setup();
        ck_assert_int_ge(sd_event_new(&jobs.event), 0);
        j.cgroup = strdup(CG);
        j.run_usage = calloc(1, sizeof(JobRunUsage));
        ck_assert(j.cgroup && j.run_usage);
        j.status.cpu_usec = 5; /* of earlier runs */
        put(CG "/cpu.stat", "usage_usec 100\n");
        ck_assert_uint_eq(job_cpu(&j), 105);
        put(CG "/cpu.stat", "usage_usec 200\n");
        ck_assert_uint_eq(job_cpu(&j), 105); /* within the second: cached */
        job_scope_sample(&j);
        ck_assert_uint_eq(job_cpu(&j), 205);
        put(CG "/cpu.stat", "usage_usec 300\n");
        ck_assert_uint_eq(job_cpu(&j), 205);
        /* The loop has not run: sd_event_now() is the clock's now. */
        usleep(JOB_USAGE_MAX_AGE_USEC + 100000);
        ck_assert_uint_eq(job_cpu(&j), 305);
        put(CG "/cpu.stat", "usage_usec 400\n");
        ck_assert(job_scope_end(&j));
        ck_assert_ptr_null(j.cgroup);
        ck_assert_ptr_null(j.run_usage);
        ck_assert_uint_eq(j.status.cpu_usec, 405); /* the final reading, fresh */
        ck_assert_uint_eq(job_cpu(&j), 405);
        sd_event_unref(jobs.event);
}
END_TEST

/* The scope going away between two of its files: a last reading that got
 * cpu.stat but no longer memory.current keeps the memory use read before
 * (it once read as "no memory use" and lost the OOM kills). */
START_TEST(test_partial_reading_keeps_the_rest) {
        char path[512];
        Jobs jobs = {};
        Job j = {.jobs = &jobs, .scope_pidfd = -1};
        ScopeUsage u;

        setup();
        ck_assert_int_ge(sd_event_new(&jobs.event), 0);
        j.cgroup = strdup(CG);
        j.run_usage = calloc(1, sizeof(JobRunUsage));
        ck_assert(j.cgroup && j.run_usage);
        put(CG "/cpu.stat", "usage_usec 100\n");
        put(CG "/memory.current", "4096\n");
        put(CG "/memory.peak", "134217728\n");
        put(CG "/memory.events", "oom_kill 3\n");
        put(CG "/io.stat", "8:0 rbytes=10 wbytes=20\n");
        job_scope_sample(&j);
        put(CG "/cpu.stat", "usage_usec 150\n");
        for (const char *f = "memory.current\0memory.peak\0memory.events\0io.stat\0"; *f; f += strlen(f) + 1) {
                (void) snprintf(path, sizeof(path), "%s%s/%s", root, CG, f);
                ck_assert_int_eq(unlink(path), 0);
        }
        ck_assert(job_scope_end(&j));
        ck_assert(job_usage(&j, &u));
        ck_assert(u.cpu && u.memory && u.io);
        ck_assert_uint_eq(u.cpu_usec, 150);
        ck_assert_uint_eq(u.memory_peak, 134217728);
        ck_assert_uint_eq(u.oom_kills, 3);
        ck_assert_uint_eq(u.io_read_bytes, 10);
        ck_assert_uint_eq(u.io_write_bytes, 20);
        sd_event_unref(jobs.event);
}
END_TEST

static Suite *scope_suite(void) {
        Suite *s = suite_create("scope");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_unified);
        tcase_add_test(tc, test_hybrid_and_v1);
        tcase_add_test(tc, test_nothing_and_bad_paths);
        tcase_add_test(tc, test_no_manager_is_no_error);
        tcase_add_test(tc, test_job_usage_cached);
        tcase_add_test(tc, test_partial_reading_keeps_the_rest);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(scope_suite());
}
