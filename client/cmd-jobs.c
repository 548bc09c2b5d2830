/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "varlink-names.h"

/* Parses "[--json] JOB" for the commands that take one job. */
static int one_job(Ctl *c, int argc, char **argv, uint64_t *id) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                {},
        };
        int opt;

        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                if (opt == 'j')
                        c->json = true;
                else
                        return EXIT_USAGE;
        if (optind + 1 != argc) {
                fprintf(stderr, "mplockctl %s: expected one job id\n", argv[0]);
                return EXIT_USAGE;
        }
        if (parse_job_id(argv[optind], id) < 0)
                return EXIT_USAGE;
        return EXIT_OK;
}

json_object *id_params(uint64_t id) {
        json_object *p = json_object_new_object();

        if (p && json_add_u64(p, "id", id) < 0) {
                json_object_put(p);
                return NULL;
        }
        return p;
}

/* The commands that name one job and get it back: parses "[--json] JOB",
 * calls method, and returns the job of the reply (owned by c). */
static int job_call(Ctl *c, int argc, char **argv, const char *method, uint64_t *id, json_object **job) {
        json_object *reply;
        int r = one_job(c, argc, argv, id);

        if (r != EXIT_OK)
                return r;
        r = ctl_call(c, method, id_params(*id), false, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        *job = json_get(reply, "job");
        if (c->json)
                print_json(*job);
        return EXIT_OK;
}

int cmd_status(Ctl *c, int argc, char **argv) {
        json_object *job;
        uint64_t id;
        int r = job_call(c, argc, argv, MPLOCK_METHOD_STATUS, &id, &job);

        if (r == EXIT_OK && !c->json)
                print_job(job);
        return r;
}

int cmd_list(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                {},
        };
        json_object *reply, *jobs;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                if (opt == 'j')
                        c->json = true;
                else
                        return EXIT_USAGE;
        if (optind != argc) {
                fprintf(stderr, "mplockctl list: unexpected argument \"%s\"\n", argv[optind]);
                return EXIT_USAGE;
        }
        r = ctl_call(c, MPLOCK_METHOD_LIST, NULL, false, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        jobs = json_get(reply, "jobs");
        if (!jobs || !json_object_is_type(jobs, json_type_array)) {
                fprintf(stderr, "mplockctl: malformed reply from mplockd\n");
                return EXIT_ERROR;
        }
        if (c->json)
                for (size_t i = 0; i < json_object_array_length(jobs); i++)
                        print_json(json_object_array_get_idx(jobs, i));
        else
                print_job_table(jobs);
        return EXIT_OK;
}

int cmd_cancel(Ctl *c, int argc, char **argv) {
        json_object *job;
        uint64_t id;
        int r = job_call(c, argc, argv, MPLOCK_METHOD_CANCEL, &id, &job);

        if (r == EXIT_OK && !c->json)
                printf("Job %llu cancelled at %llu of %llu items.\n", (unsigned long long) id,
                       (unsigned long long) job_uint(job, "done"), (unsigned long long) job_uint(job, "items"));
        return r;
}

int cmd_wait(Ctl *c, int argc, char **argv) {
        json_object *job;
        uint64_t id;
        int r = job_call(c, argc, argv, MPLOCK_METHOD_WAIT, &id, &job);

        if (r != EXIT_OK)
                return r;
        if (!c->json)
                print_job_summary(job);
        return job_exit_code(job);
}

int cmd_remove(Ctl *c, int argc, char **argv) {
        json_object *reply;
        uint64_t id;
        int r = one_job(c, argc, argv, &id);

        if (r != EXIT_OK)
                return r;
        return ctl_call(c, MPLOCK_METHOD_REMOVE, id_params(id), false, &reply, NULL);
}

static int pause_or_resume(Ctl *c, int argc, char **argv, const char *method, const char *verb) {
        json_object *job;
        uint64_t id;
        int r = job_call(c, argc, argv, method, &id, &job);

        if (r == EXIT_OK && !c->json)
                printf("Job %llu %s at %llu of %llu items.\n", (unsigned long long) id, verb,
                       (unsigned long long) job_uint(job, "done"), (unsigned long long) job_uint(job, "items"));
        return r;
}

int cmd_pause(Ctl *c, int argc, char **argv) {
        return pause_or_resume(c, argc, argv, MPLOCK_METHOD_PAUSE, "paused");
}

int cmd_resume(Ctl *c, int argc, char **argv) {
        return pause_or_resume(c, argc, argv, MPLOCK_METHOD_RESUME, "resumed");
}

int cmd_retry(Ctl *c, int argc, char **argv) {
        json_object *job;
        uint64_t id;
        int r = job_call(c, argc, argv, MPLOCK_METHOD_RETRY, &id, &job);

        if (r == EXIT_OK && !c->json)
                printf("Job %llu queued again for its failed and unfinished items.\n", (unsigned long long) id);
        return r;
}
