/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slurmopt.h"
#include "test-util.h"

static int check(const char *s) {
        char why[256] = "";
        int r = slurm_options_check(s, why, sizeof(why));
        ck_assert(r == 0 || why[0]);
        return r;
}

START_TEST(test_accepted) {
        char **v;

        ck_assert_int_eq(check(""), 0);
        ck_assert_int_eq(check("--time=10"), 0);
        ck_assert_int_eq(check("  --time=0:10:00   --mem=1G --exclusive "), 0);
        ck_assert_int_eq(check("--constraint=a&b|c --qos=normal"), 0);
        ck_assert_int_eq(slurm_options_split("  --time=10  --exclusive ", &v), 0);
        ck_assert_str_eq(v[0], "--time=10");
        ck_assert_str_eq(v[1], "--exclusive");
        ck_assert_ptr_null(v[2]);
        strv_free(v);
        ck_assert_int_eq(slurm_options_split("", &v), 0);
        ck_assert_ptr_null(v[0]);
        strv_free(v);
}
END_TEST

START_TEST(test_refused) {
        static const char *const bad[] = {
                "-t 10",            /* short options take separate values: not ours to parse */
                "time=10",          "--",         "--Time=1",      "--time=1\t--mem=1", "--mem=\x01",
                "--array=0-3",      "--output=/tmp/x", "--job-name=x", "--wrap=id", "--hold", "--uid=0",
                "--export=ALL,X=1", "--chdir=/",  "--partition=p", "--parsable", "--cpus-per-task=4",
        };
        char **v = NULL;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ck_assert_msg(check(bad[i]) == -EINVAL, "%s", bad[i]);
        ck_assert_int_eq(slurm_options_split("--array=1", &v), -EINVAL);
        ck_assert_ptr_null(v);
}
END_TEST

START_TEST(test_bounded) {
        char buf[2048] = "";

        for (unsigned i = 0; i < SLURM_OPTS_WORDS_MAX; i++)
                strcat(buf, "--exclusive ");
        ck_assert_int_eq(check(buf), 0);
        strcat(buf, "--exclusive");
        ck_assert_int_eq(check(buf), -EINVAL);
}
END_TEST

static Suite *slurmopt_suite(void) {
        Suite *s = suite_create("slurmopt");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_accepted);
        tcase_add_test(tc, test_refused);
        tcase_add_test(tc, test_bounded);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(slurmopt_suite());
}
