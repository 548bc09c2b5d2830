/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "varlink-names.h"

/* watch: a line per job, redrawn in place on a terminal (cursor up, each
 * line rewritten), one plain line per update otherwise: a log or a pipe
 * gets no escape codes. */

static volatile sig_atomic_t winched;

static void on_winch(int sig) {
        (void) sig;
        winched = 1;
}

int watch_on_winch(void) {
        struct sigaction sa = { .sa_handler = on_winch };

        /* No SA_RESTART: a resize cuts the wait between two updates short. */
        if (sigemptyset(&sa.sa_mask) < 0 || sigaction(SIGWINCH, &sa, NULL) < 0)
                return -errno;
        return 0;
}

bool watch_winched(void) {
        bool w = winched;

        winched = 0;
        return w;
}

void terminal_size(int fd, unsigned *cols, unsigned *rows) {
        struct winsize ws = {};

        if (ioctl(fd, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0 || ws.ws_row == 0)
                ws = (struct winsize){ .ws_col = 80, .ws_row = 24 };
        *cols = MIN((unsigned) ws.ws_col, PROGRESS_COLS_MAX);
        *rows = ws.ws_row;
}

uint64_t job_progress(json_object *job) {
        /* Progress counts processed items; results exist once committed
         * ("done"). */
        return MAX(job_uint(job, "processed"), job_uint(job, "done"));
}

/* As Wait: the job's end, or a pause by a fault (a pause with a reason). */
static bool wait_over(json_object *job) {
        return job_ended(job) || (streq(job_str(job, "state"), "paused") && json_get(job, "error"));
}

typedef struct Watched {
        uint64_t id;
        json_object *job; /* as last seen, owned */
        int code;         /* its exit code once over, else -1 */
} Watched;

typedef struct Screen {
        bool tty, utf8, json;
        size_t drawn; /* lines drawn last time; the cursor is below them */
} Screen;

/* "job 12 running [#####-----] 45.2% 450/1000 items, 3 failed, 12/s, ETA 1m05s" */
static void watch_line(Line *l, uint64_t id, json_object *job) {
        uint64_t items = job_uint(job, "items"), done = job_progress(job);
        json_object *eta = json_get(job, "eta_seconds");
        char pct[16], r[32], e[32] = "", head[96], tail[192];
        unsigned room, bar;

        format_percent(done, items, pct, sizeof(pct));
        format_rate(job_rate(job), r, sizeof(r));
        if (eta)
                format_duration((uint64_t) MAX(json_object_get_int64(eta), 0), e, sizeof(e));
        if (!eta && streq(job_str(job, "state"), "running"))
                strcpy(e, "-"); /* not known yet */
        (void) snprintf(head, sizeof(head), "job %llu %-9s ", (unsigned long long) id, job_str(job, "state"));
        (void) snprintf(tail, sizeof(tail), " %6s %llu/%llu, %llu failed, %s%s%s", pct, (unsigned long long) done,
                        (unsigned long long) items, (unsigned long long) job_uint(job, "failed"), r,
                        e[0] ? ", ETA " : "", e);
        room = l->max - MIN(l->max, text_width(head, l->utf8) + text_width(tail, l->utf8));
        bar = MIN(room, 50u);
        line_put(l, head, 0);
        if (bar >= 8)
                line_bar(l, progress_fraction(done, items), bar);
        line_put(l, tail + (bar >= 8 ? 0 : 1), 0);
}

/* Not a terminal: the line of old, without a bar. */
static void watch_plain(uint64_t id, json_object *job) {
        uint64_t items = job_uint(job, "items"), done = job_progress(job);
        json_object *eta = json_get(job, "eta_seconds");
        char pct[16], r[32], e[32] = "";

        format_percent(done, items, pct, sizeof(pct));
        format_rate(job_rate(job), r, sizeof(r));
        if (eta)
                format_duration((uint64_t) MAX(json_object_get_int64(eta), 0), e, sizeof(e));
        printf("[job %llu %s] %llu/%llu items (%s), %llu failed, %s%s%s\n", (unsigned long long) id,
               job_str(job, "state"), (unsigned long long) done, (unsigned long long) items, pct,
               (unsigned long long) job_uint(job, "failed"), r, eta ? ", ETA " : "", e);
}

static void screen_draw(Screen *s, const Watched *w, size_t n) {
        unsigned cols, rows;
        size_t shown;

        terminal_size(STDOUT_FILENO, &cols, &rows);
        /* Never more lines than the screen has: the cursor cannot go up
         * past its top. */
        shown = MIN(n, rows > 2 ? (size_t) rows - 2 : 1);
        if (s->drawn > 0)
                printf("\033[%zuA", s->drawn);
        /* After a resize, lines drawn wider may have wrapped: clear all. */
        fputs(watch_winched() ? "\r\033[J" : "\r", stdout);
        for (size_t i = 0; i < shown; i++) {
                Line l;
                /* One column short of the edge: a full line would wrap. */
                line_init(&l, cols > 1 ? cols - 1 : 1, s->utf8);
                if (w[i].job)
                        watch_line(&l, w[i].id, w[i].job);
                else
                        line_printf(&l, 0, "job %llu: no such job", (unsigned long long) w[i].id);
                printf("%s\033[K\n", l.buf);
        }
        s->drawn = shown;
        if (shown < n) {
                printf("(and %zu more)\033[K\n", n - shown);
                s->drawn++;
        }
        fflush(stdout);
}

/* One update of a job: printed (JSON or plain), or drawn with the rest. */
static void show(Screen *s, Watched *w, size_t n, size_t updated) {
        if (s->json)
                print_json(w[updated].job);
        else if (!s->tty)
                watch_plain(w[updated].id, w[updated].job);
        else if (updated + 1 == n)
                screen_draw(s, w, n);
        fflush(stdout);
}

static int set_job(Watched *w, json_object *job) {
        if (!job || !json_object_is_type(job, json_type_object)) {
                fprintf(stderr, "mplockctl: malformed reply from mplockd\n");
                return EXIT_ERROR;
        }
        json_object_put(w->job);
        /* The reply it is part of goes with the next call. */
        w->job = json_object_get(job);
        return EXIT_OK;
}

/* One job, followed by Wait's updates: it ends as wait does. */
static int watch_one(Ctl *c, Screen *s, uint64_t id) {
        Watched w = { .id = id, .code = -1 };
        json_object *reply;
        bool cont = true;
        int r;

        r = ctl_call(c, MPLOCK_METHOD_WAIT, id_params(id), true, &reply, &cont);
        while (r == EXIT_OK) {
                r = set_job(&w, json_get(reply, "job"));
                if (r != EXIT_OK)
                        break;
                show(s, &w, 1, 0);
                if (!cont)
                        break;
                r = ctl_next(c, &reply, &cont);
        }
        if (r == EXIT_OK) {
                if (!s->json)
                        print_job_summary(w.job);
                r = job_exit_code(w.job);
        }
        json_object_put(w.job);
        return r;
}

/* Worst first: a job gone (or an error), failed, cancelled, paused by a
 * fault, completed with failed items, completed. */
static int code_rank(int code) {
        switch (code) {
        case EXIT_OK:
                return 0;
        case EXIT_JOB_PARTIAL:
                return 1;
        case EXIT_JOB_PAUSED:
                return 2;
        case EXIT_JOB_CANCELLED:
                return 3;
        case EXIT_JOB_FAILED:
                return 4;
        default:
                return 5;
        }
}

static uint64_t now_msec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Between two rounds; a resize redraws at once. */
static void pause_a_second(Screen *s, const Watched *w, size_t n) {
        uint64_t end = now_msec() + 1000, t;

        while ((t = now_msec()) < end)
                if (poll(NULL, 0, (int) (end - t)) < 0 && errno == EINTR && s->tty && !s->json && winched)
                        screen_draw(s, w, n);
}

/* A job's status, into w; false if it has gone (its error told). */
static int fetch(Ctl *c, Watched *w) {
        json_object *reply;
        int r = ctl_call(c, MPLOCK_METHOD_STATUS, id_params(w->id), false, &reply, NULL);

        if (r == EXIT_NO_JOB) {
                w->code = r;
                return EXIT_OK;
        }
        if (r == EXIT_OK)
                r = set_job(w, json_get(reply, "job"));
        if (r == EXIT_OK && wait_over(w->job))
                w->code = job_exit_code(w->job);
        return r;
}

/* Several jobs: their status every second until each is over. */
static int watch_many(Ctl *c, Screen *s, Watched *w, size_t n) {
        int worst = EXIT_OK, r;
        size_t left;

        for (;;) {
                left = 0;
                for (size_t i = 0; i < n; i++) {
                        if (w[i].code >= 0)
                                continue;
                        r = fetch(c, &w[i]);
                        if (r != EXIT_OK)
                                return r;
                        if (w[i].code < 0)
                                left++;
                        if (w[i].job && (s->json || !s->tty))
                                show(s, w, n, i);
                }
                if (s->tty && !s->json)
                        screen_draw(s, w, n);
                if (left == 0)
                        break;
                pause_a_second(s, w, n);
        }
        for (size_t i = 0; i < n; i++) {
                if (!s->json && w[i].job && w[i].code != EXIT_NO_JOB)
                        print_job_summary(w[i].job);
                if (code_rank(w[i].code) > code_rank(worst))
                        worst = w[i].code;
        }
        return worst;
}

/* No job named: the ones List has that have not ended, at the start. */
static int active_jobs(Ctl *c, Watched **ret, size_t *ret_n) {
        json_object *reply, *jobs;
        Watched *w;
        size_t n = 0, total;
        int r = ctl_call(c, MPLOCK_METHOD_LIST, NULL, false, &reply, NULL);

        if (r != EXIT_OK)
                return r;
        jobs = json_get(reply, "jobs");
        if (!jobs || !json_object_is_type(jobs, json_type_array)) {
                fprintf(stderr, "mplockctl: malformed reply from mplockd\n");
                return EXIT_ERROR;
        }
        total = json_object_array_length(jobs);
        w = calloc(MAX(total, (size_t) 1), sizeof(*w));
        if (!w) {
                fprintf(stderr, "mplockctl: out of memory\n");
                return EXIT_ERROR;
        }
        for (size_t i = 0; i < total; i++) {
                json_object *j = json_object_array_get_idx(jobs, i);
                if (job_ended(j) || json_get_bool(j, "damaged", false))
                        continue;
                w[n++] = (Watched){ .id = job_uint(j, "id"), .code = -1 };
        }
        *ret = w;
        *ret_n = n;
        return EXIT_OK;
}

int cmd_watch(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        Screen s = {};
        Watched *w = NULL;
        size_t n = 0;
        int opt, r = EXIT_OK;

        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                if (opt == 'j')
                        c->json = true;
                else if (opt == 'h')
                        return help_command(c->command);
                else
                        return help_hint(c->command);
        s = (Screen){ .json = c->json, .tty = isatty(STDOUT_FILENO) };
        if (s.tty && !s.json) {
                s.utf8 = progress_utf8();
                if (watch_on_winch() < 0)
                        fprintf(stderr, "mplockctl: cannot follow the terminal's size: %s\n", strerror(errno));
        }
        if (argc - optind == 1) {
                uint64_t id;
                if (parse_job_id(argv[optind], &id) < 0)
                        return EXIT_USAGE;
                return watch_one(c, &s, id);
        }
        if (optind < argc) {
                w = calloc((size_t) (argc - optind), sizeof(*w));
                if (!w) {
                        fprintf(stderr, "mplockctl: out of memory\n");
                        return EXIT_ERROR;
                }
                for (int i = optind; i < argc; i++) {
                        w[n] = (Watched){ .code = -1 };
                        if (parse_job_id(argv[i], &w[n++].id) < 0) {
                                free(w);
                                return EXIT_USAGE;
                        }
                }
        } else {
                r = active_jobs(c, &w, &n);
                if (r == EXIT_OK && n == 0)
                        fprintf(stderr, "mplockctl watch: no active jobs\n");
        }
        if (r == EXIT_OK && n > 0)
                r = watch_many(c, &s, w, n);
        for (size_t i = 0; i < n; i++)
                json_object_put(w[i].job);
        free(w);
        return r;
}
