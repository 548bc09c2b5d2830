/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "retrysel.h"
#include "varlink-names.h"

int job_operand(Ctl *c, int argc, char **argv, uint64_t *id) {
        if (optind + 1 != argc) {
                fprintf(stderr, "mplockctl %s: expected one job id\n", c->command);
                return help_hint(c->command);
        }
        return parse_job_id(argv[optind], id) < 0 ? EXIT_USAGE : EXIT_OK;
}

int one_job(Ctl *c, int argc, char **argv, uint64_t *id) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                if (opt == 'j')
                        c->json = true;
                else if (opt == 'h')
                        return help_command(c->command);
                else
                        return help_hint(c->command);
        return job_operand(c, argc, argv, id);
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
                { "help", no_argument, NULL, 'h' },
                {},
        };
        json_object *reply, *jobs;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                if (opt == 'j')
                        c->json = true;
                else if (opt == 'h')
                        return help_command(c->command);
                else
                        return help_hint(c->command);
        if (optind != argc) {
                fprintf(stderr, "mplockctl list: unexpected argument \"%s\"\n", argv[optind]);
                return help_hint(c->command);
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

/* Waiting on several jobs at once needs a connection each (calls on one
 * connection are answered one at a time): fewer than the daemon's default
 * max-connections-per-uid, 64, so that other commands still get through. */
#define WAIT_ANY_MAX 32

/* How bad a wait's exit code is: several jobs' wait exits with the worst. */
static size_t wait_rank(int code) {
        static const int order[] = { EXIT_OK, EXIT_JOB_PARTIAL, EXIT_JOB_PAUSED, EXIT_JOB_CANCELLED, EXIT_JOB_FAILED };

        for (size_t i = 0; i < ELEMENTSOF(order); i++)
                if (order[i] == code)
                        return i;
        return ELEMENTSOF(order); /* the request itself failed */
}

static int wait_print(Ctl *c, json_object *reply) {
        json_object *job = json_get(reply, "job");

        if (c->json)
                print_json(job);
        else
                print_job_summary(job);
        return job_exit_code(job);
}

/* One job after the other on one connection: all have ended once the
 * last call returns, whatever order they end in. */
static int wait_all(Ctl *c, const uint64_t *ids, size_t n) {
        int worst = EXIT_OK;

        for (size_t i = 0; i < n; i++) {
                json_object *reply;
                int r = ctl_call(c, MPLOCK_METHOD_WAIT, id_params(ids[i]), false, &reply, NULL);

                if (r == EXIT_OK)
                        r = wait_print(c, reply);
                else if (r != EXIT_NO_JOB)
                        return r; /* the connection may be gone: no use going on */
                if (wait_rank(r) > wait_rank(worst))
                        worst = r;
        }
        return worst;
}

/* A Wait call on a connection per job, and the first reply to come. */
static int wait_any(Ctl *c, const uint64_t *ids, size_t n) {
        Ctl w[WAIT_ANY_MAX];
        struct pollfd p[WAIT_ANY_MAX];
        size_t opened = 0;
        int r = EXIT_OK;

        for (; opened < n && r == EXIT_OK; opened++) {
                w[opened] = (Ctl){ .fd = -1, .json = c->json, .system = c->system, .user = c->user };
                if (c->socket_path && !(w[opened].socket_path = strdup(c->socket_path))) {
                        fprintf(stderr, "mplockctl: out of memory\n");
                        r = EXIT_ERROR;
                } else
                        r = ctl_send(&w[opened], MPLOCK_METHOD_WAIT, id_params(ids[opened]), false);
                p[opened] = (struct pollfd){ .fd = w[opened].fd, .events = POLLIN };
        }
        while (r == EXIT_OK) {
                size_t i = 0;

                if (poll(p, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "mplockctl: poll: %s\n", strerror(errno));
                        r = EXIT_ERROR;
                        break;
                }
                while (i < n && p[i].revents == 0)
                        i++;
                if (i < n) {
                        json_object *reply, *job;
                        bool cont;
                        r = ctl_next(&w[i], &reply, &cont);
                        if (r != EXIT_OK)
                                break;
                        job = json_get(reply, "job");
                        if (!c->json)
                                printf("%llu %s\n", (unsigned long long) job_uint(job, "id"), job_str(job, "state"));
                        r = wait_print(c, reply);
                        break;
                }
        }
        for (size_t i = 0; i < opened; i++)
                ctl_close(&w[i]);
        return r;
}

/* "[--json] [--any] JOB...": every job (or, with --any, the first) to end. */
int cmd_wait(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "any", no_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ uint64_t *ids = NULL;
        bool any = false;
        size_t n;
        int opt;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                if (opt == 'j')
                        c->json = true;
                else if (opt == 'a')
                        any = true;
                else if (opt == 'h')
                        return help_command(c->command);
                else
                        return help_hint(c->command);
        n = (size_t) (argc - optind);
        if (n == 0) {
                fprintf(stderr, "mplockctl wait: expected a job id\n");
                return help_hint(c->command);
        }
        if (any && n > WAIT_ANY_MAX) {
                fprintf(stderr, "mplockctl wait: --any takes at most %d jobs\n", WAIT_ANY_MAX);
                return EXIT_USAGE;
        }
        ids = calloc(n, sizeof(*ids));
        if (!ids) {
                fprintf(stderr, "mplockctl: out of memory\n");
                return EXIT_ERROR;
        }
        for (size_t i = 0; i < n; i++)
                if (parse_job_id(argv[optind + i], &ids[i]) < 0)
                        return EXIT_USAGE;
        return any ? wait_any(c, ids, n) : wait_all(c, ids, n);
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

/* --code and --items: what they say, in the Retry call's terms. */
static int retry_params(uint64_t id, const RetrySel *sel, json_object **ret) {
        json_object *p = id_params(id), *codes = NULL, *items = NULL;

        if (!p)
                return -ENOMEM;
        if (sel->n_codes > 0 && json_add(p, "codes", codes = json_object_new_array()) < 0)
                goto fail;
        for (size_t i = 0; i < sel->n_codes; i++)
                if (json_object_array_add(codes, json_object_new_int(sel->codes[i])) < 0)
                        goto fail;
        if (sel->n_ranges > 0 && json_add(p, "items", items = json_object_new_array()) < 0)
                goto fail;
        for (size_t i = 0; i < sel->n_ranges; i++) {
                json_object *g = json_object_new_object();
                if (json_object_array_add(items, g) < 0 || json_add_u64(g, "first", sel->ranges[i].first) < 0 ||
                    json_add_u64(g, "last", sel->ranges[i].last) < 0)
                        goto fail;
        }
        *ret = p;
        return 0;
fail:
        json_object_put(p);
        return -ENOMEM;
}

/* What the choice is, for people: "code 7", "an index in 2-4", both. */
static void describe_choice(const RetrySel *sel, char *buf, size_t size) {
        _cleanup_free_ char *codes = retry_sel_codes_text(sel), *items = retry_sel_items_text(sel);

        (void) snprintf(buf, size, "%s%s%s%s%s", codes ? (sel->n_codes > 1 ? "a code of " : "code ") : "",
                        codes ? codes : "", codes && items ? " and " : "", items ? "an index in " : "",
                        items ? items : "");
}

/* A choice that matches no failed item is refused here, with why: Retry
 * itself does not read the results. */
static int retry_check_choice(Ctl *c, uint64_t id, const RetrySel *sel) {
        json_object *reply, *job;
        uint64_t matched = 0, items;
        char what[256];
        int r;

        r = ctl_call(c, MPLOCK_METHOD_STATUS, id_params(id), false, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        job = json_object_get(json_get(reply, "job"));
        items = job_uint(job, "items");
        if (sel->n_ranges > 0 && sel->ranges[sel->n_ranges - 1].last >= items) {
                fprintf(stderr, "mplockctl retry: --items %llu: job %llu has %llu items (indices 0 to %llu)\n",
                        (unsigned long long) sel->ranges[sel->n_ranges - 1].last, (unsigned long long) id,
                        (unsigned long long) items, (unsigned long long) (items ? items - 1 : 0));
                json_object_put(job);
                return EXIT_USAGE;
        }
        r = results_count_chosen(c, job, sel, &matched);
        json_object_put(job);
        if (r != EXIT_OK)
                return r;
        if (matched > 0)
                return EXIT_OK;
        describe_choice(sel, what, sizeof(what));
        fprintf(stderr, "mplockctl retry: no failed item of job %llu has %s; nothing retried\n",
                (unsigned long long) id, what);
        return EXIT_ERROR;
}

int cmd_retry(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "code", required_argument, NULL, 'c' },
                { "items", required_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ RetrySel *sel = calloc(1, sizeof(*sel));
        json_object *params = NULL, *reply, *job;
        uint64_t id;
        int opt, r;

        if (!sel) {
                fprintf(stderr, "mplockctl: out of memory\n");
                return EXIT_ERROR;
        }
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (opt) {
                case 'j':
                        c->json = true;
                        break;
                case 'c':
                case 'i':
                        /* Indices are checked against the job by mplockd. */
                        r = opt == 'c' ? retry_sel_parse_codes(sel, optarg)
                                       : retry_sel_parse_items(sel, optarg, UINT64_MAX);
                        if (r < 0) {
                                fprintf(stderr, "mplockctl retry: --%s %s: %s\n", opt == 'c' ? "code" : "items",
                                        optarg,
                                        r == -E2BIG ? "more than 1024 of them"
                                        : opt == 'c' ? "expected nonzero error codes, comma-separated (7,503)"
                                                     : "expected indices and ranges, comma-separated (3,10-20)");
                                return EXIT_USAGE;
                        }
                        break;
                case 'h':
                        return help_command(c->command);
                default:
                        return help_hint(c->command);
                }
        r = job_operand(c, argc, argv, &id);
        if (r != EXIT_OK)
                return r;
        retry_sel_normalize(sel);
        if (!retry_sel_all(sel)) {
                r = retry_check_choice(c, id, sel);
                if (r != EXIT_OK)
                        return r;
        }
        if (retry_params(id, sel, &params) < 0) {
                fprintf(stderr, "mplockctl: out of memory\n");
                return EXIT_ERROR;
        }
        r = ctl_call(c, MPLOCK_METHOD_RETRY, params, false, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        job = json_get(reply, "job");
        if (c->json)
                print_json(job);
        else if (retry_sel_all(sel))
                printf("Job %llu queued again for its failed and unfinished items.\n", (unsigned long long) id);
        else {
                char what[256];
                describe_choice(sel, what, sizeof(what));
                printf("Job %llu queued again for its failed items with %s, and its unfinished items.\n",
                       (unsigned long long) id, what);
        }
        return EXIT_OK;
}
