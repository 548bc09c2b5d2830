/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agents.h"
#include "ipc.h"
#include "test-util.h"

/* The agents' own bookkeeping, with a stand-in agent that only sleeps:
 * what happens to an agent that stays idle while the loop runs. */

static char dir[256], agent_path[512];

/* A stand-in for "mplock-runner agent": it reads nothing and stays. */
static void make_agent(void) {
        FILE *f;
        int fd = test_tmpdir(dir, sizeof(dir));

        close(fd);
        (void) snprintf(agent_path, sizeof(agent_path), "%s/agent", dir);
        f = fopen(agent_path, "w");
        ck_assert_ptr_nonnull(f);
        fputs("#!/bin/sh\nexec sleep 60\n", f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(chmod(agent_path, 0755), 0);
}

/* Whether a child of ours is left, exited or not (it is not reaped). */
static bool children_left(void) {
        siginfo_t si = { 0 };

        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
                return errno != ECHILD;
        return true;
}

/* An agent idle for its idle time is killed and reaped from the loop: the
 * reaping source, floating, used to be freed twice by its own handler,
 * which sd-event 252 answers with an abort(). */
START_TEST(test_idle_agent_is_reaped) {
        sigset_t mask;
        sd_event *e = NULL;
        Agents *a = NULL;
        AgentTask *t = NULL;
        const char *const args[] = { "run" };

        make_agent();
        (void) sigemptyset(&mask);
        (void) sigaddset(&mask, SIGCHLD);
        ck_assert_int_eq(sigprocmask(SIG_BLOCK, &mask, NULL), 0);
        ck_assert_int_ge(sd_event_new(&e), 0);
        ck_assert_int_eq(agents_new(&a, e,
                                    &(AgentsConfig){ .runner_path = agent_path, .idle_usec = 1000,
                                                     .kill_wait_usec = 1000000 }),
                         0);
        ck_assert_int_eq(agents_spawn(a, getuid(), getgid(), AGENT_MODE_RUN, args, 1, NULL, 0, NULL, NULL, &t), 0);
        ck_assert(children_left());
        /* No task left: the idle timer is armed. */
        t = agent_task_free(t);
        for (int k = 0; k < 100 && children_left(); k++)
                ck_assert_int_ge(sd_event_run(e, 100000), 0);
        ck_assert(!children_left());
        a = agents_free(a);
        sd_event_unref(e);
}
END_TEST

static Suite *agents_suite(void) {
        Suite *s = suite_create("agents");
        TCase *tc = tcase_create("core");

        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_idle_agent_is_reaped);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(agents_suite());
}
