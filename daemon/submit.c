/* SPDX-License-Identifier: MIT */
#include "submit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "crc32c.h"
#include "fileio.h"
#include "jobs.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "agents.h"
#include "ipc.h"
#include "store.h"

/* What the check helper may report, at most. */
#define REPORT_MAX 65536
#define VERIFY_BUFFER (1u << 20)

struct Submitter {
        sd_event *event;
        const Settings *settings;
        Jobs *jobs;
        Agents *agents;
        Submission *list;
        size_t n;
};

struct Submission {
        Submitter *sub;
        Submission *prev, *next;
        SubmitDone done;
        void *userdata;
        JobSpec spec;
        uint32_t halt_percent;
        bool inline_items;
        uint64_t n_inline;
        char tmpname[STORE_NEW_NAME_MAX];
        int dirfd, input_fd, report_fd;
        AgentTask *check;
        sd_event_source *timeout;
};

int submitter_new(Submitter **ret, sd_event *event, const Settings *settings, Jobs *jobs, Agents *agents) {
        Submitter *sub = calloc(1, sizeof(*sub));

        if (!sub)
                return -ENOMEM;
        *sub = (Submitter){ .event = event, .settings = settings, .jobs = jobs, .agents = agents };
        *ret = sub;
        return 0;
}

size_t submitter_count(const Submitter *sub, uid_t uid, size_t *ret_of_uid) {
        size_t of_uid = 0;

        for (const Submission *s = sub->list; s; s = s->next)
                of_uid += s->spec.uid == uid;
        *ret_of_uid = of_uid;
        return sub->n;
}

static void submission_free(Submission *s) {
        Submitter *sub = s->sub;
        int r;

        if (s->prev)
                s->prev->next = s->next;
        else
                sub->list = s->next;
        if (s->next)
                s->next->prev = s->prev;
        sub->n--;
        s->timeout = sd_event_source_disable_unref(s->timeout);
        s->check = agent_task_free(s->check); /* killed if still at it */
        if (s->tmpname[0] && (r = store_remove_dir(sub->jobs->jobs_fd, s->tmpname)) < 0)
                log_warning_errno(r, "Cannot remove %s: %m", s->tmpname);
        safe_close(s->dirfd);
        safe_close(s->input_fd);
        safe_close(s->report_fd);
        job_spec_done(&s->spec);
        free(s);
}

void submission_abort(Submission *s) {
        submission_free(s);
}

/* Cleans up before answering: once the submitter has its answer, nothing
 * of the submission may be left on disk. */
static void submit_finish(Submission *s, SubmitOutcome outcome, uint64_t id, const char *parameter,
                          const char *reason) {
        SubmitResult res = { .outcome = outcome, .id = id, .parameter = parameter, .reason = reason };
        SubmitDone done = s->done;
        void *userdata = s->userdata;

        submission_free(s);
        done(&res, userdata);
}

static void submit_fail_errno(Submission *s, const char *what, int r) {
        char why[256];

        (void) snprintf(why, sizeof(why), "%s: %s", what, strerror(-r));
        submit_finish(s, SUBMIT_FAILED, 0, NULL, why);
}

void submitter_abort_all(Submitter *sub) {
        while (sub->list)
                submit_finish(sub->list, SUBMIT_SHUTTING_DOWN, 0, NULL, NULL);
}

Submitter *submitter_free(Submitter *sub) {
        if (!sub)
                return NULL;
        submitter_abort_all(sub);
        free(sub);
        return NULL;
}

static const char *items_parameter(const Submission *s) {
        return s->inline_items ? "items" : "input";
}

static bool text_ok(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

/* The daemon's own check of the snapshot: the helper ran as the user (and
 * loaded the user's module), so its report is not trusted. */
static int verify_snapshot(Submission *s, char *why, size_t whylen) {
        const Settings *st = s->sub->settings;
        _cleanup_free_ char *buf = malloc(VERIFY_BUFFER);
        uint64_t off = 0, items = 0;
        uint32_t crc = 0;
        char last = '\0';
        struct stat sb;

        if (!buf)
                return -ENOMEM;
        if (fstat(s->input_fd, &sb) < 0)
                return -errno;
        if ((uint64_t) sb.st_size > st->max_input_bytes) {
                (void) snprintf(why, whylen, "input list larger than %llu bytes",
                                (unsigned long long) st->max_input_bytes);
                return -EFBIG;
        }
        for (;;) {
                ssize_t n = pread(s->input_fd, buf, VERIFY_BUFFER, (off_t) off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                crc = crc32c(crc, buf, (size_t) n);
                for (const char *p = buf, *end = buf + n; (p = memchr(p, 0, (size_t) (end - p))); p++)
                        items++;
                last = buf[n - 1];
                off += (uint64_t) n;
        }
        if (off != (uint64_t) sb.st_size || (off > 0 && last != '\0')) {
                (void) snprintf(why, whylen, "input snapshot is incomplete");
                return -EBADMSG;
        }
        if (items > st->max_items) {
                (void) snprintf(why, whylen, "input list has more than %llu items", (unsigned long long) st->max_items);
                return -E2BIG;
        }
        if (s->inline_items && items != s->n_inline) {
                (void) snprintf(why, whylen, "snapshot does not match the items sent");
                return -EBADMSG;
        }
        s->spec.n_items = items;
        s->spec.input_bytes = off;
        s->spec.input_crc = crc;
        return 0;
}

/* The user's active jobs together may hold so much input. */
static bool within_user_input(Submission *s, char *why, size_t whylen) {
        const Settings *st = s->sub->settings;
        JobsUsage u;
        uint64_t total;

        jobs_usage(s->sub->jobs, s->spec.uid, &u);
        total = u.input_of_uid + s->spec.input_bytes;
        if (total <= st->max_input_per_uid)
                return true;
        (void) snprintf(why, whylen, "your active jobs' input lists would total %llu bytes, over the limit of %llu",
                        (unsigned long long) total, (unsigned long long) st->max_input_per_uid);
        return false;
}

/* The snapshot and job.json, durable, then the rename that makes the job
 * exist. A new job needs no state.json (it is queued) and no checkpoint
 * log (nothing is committed): each appears with the job's first change. */
static int store_job(Submission *s) {
        int r;

        if (fsync(s->input_fd) < 0)
                return -errno;
        r = store_create_spec(s->dirfd, &s->spec);
        if (r >= 0)
                r = fsync_dirfd(s->dirfd);
        if (r >= 0)
                r = store_publish_job_dir(s->sub->jobs->jobs_fd, s->tmpname, s->spec.id);
        return r;
}

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void submit_complete(Submission *s) {
        char why[512] = "";
        uint64_t id;
        int r;

        r = verify_snapshot(s, why, sizeof(why));
        if (r < 0) {
                if (!why[0])
                        (void) snprintf(why, sizeof(why), "cannot read input snapshot: %s", strerror(-r));
                submit_finish(s, SUBMIT_INVALID, 0, items_parameter(s), why);
                return;
        }
        if (!within_user_input(s, why, sizeof(why))) {
                submit_finish(s, SUBMIT_INVALID, 0, items_parameter(s), why);
                return;
        }
        if (s->halt_percent > 0)
                /* At least one failure, however few the items. */
                s->spec.halt_failures = MAX((s->spec.n_items * s->halt_percent + 99) / 100, (uint64_t) 1);
        s->spec.id = id = jobs_take_id(s->sub->jobs);
        s->spec.created_usec = now_realtime_usec();
        r = store_job(s);
        if (r < 0) {
                submit_fail_errno(s, "cannot store the job", r);
                return;
        }
        /* The job exists now: hand everything over to it. */
        s->tmpname[0] = '\0';
        r = jobs_add(s->sub->jobs, &s->spec, TAKE_FD(s->dirfd));
        if (r < 0) {
                /* On disk and durable: the next start picks it up. */
                submit_fail_errno(s, "cannot take the job on", r);
                return;
        }
        submit_finish(s, SUBMIT_OK, id, NULL, NULL);
}

/* What the helper wrote: the pipe is non-blocking, and a process it left
 * behind may hold its end open, so EAGAIN ends the report like EOF. */
static size_t read_report(int fd, char *buf, size_t max) {
        size_t len = 0;

        while (len < max) {
                ssize_t n = read(fd, buf + len, max - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        return len;
}

static void handle_report(Submission *s, int code, int status) {
        static const JsonField fields[] = {
                { "ok", JSON_KIND_BOOL, true },       { "parameter", JSON_KIND_STRING, false },
                { "reason", JSON_KIND_STRING, false }, { "items", JSON_KIND_UINT, false },
                { "bytes", JSON_KIND_UINT, false },
        };
        char buf[REPORT_MAX + 1], reason[600];
        const char *why, *field, *rsn;
        json_object *o = NULL;
        size_t len = read_report(s->report_fd, buf, REPORT_MAX);
        JsonError err;

        if (len > 0 && buf[len - 1] == '\n')
                len--;
        if (len > 0)
                o = json_parse_strict(buf, len, 4, &why);
        if (!o || json_validate(o, fields, ELEMENTSOF(fields), &err) < 0) {
                if (code == CLD_EXITED)
                        (void) snprintf(reason, sizeof(reason), "submission check failed (exit status %d)", status);
                else
                        (void) snprintf(reason, sizeof(reason),
                                        "submission check was killed by signal %s (a crash in the module's "
                                        "constructors?)",
                                        strsignal(status));
                json_object_put(o);
                submit_finish(s, SUBMIT_INVALID, 0, "module", reason);
                return;
        }
        if (!json_get_bool(o, "ok", false) || code != CLD_EXITED || status != 0) {
                /* Only names we know may come back as the parameter; both
                 * strings are copied out before the report is freed. */
                field = json_get_str(o, "parameter");
                field = streq_ptr(field, "input") ? "input" : streq_ptr(field, "output") ? "output" : "module";
                rsn = json_get_str(o, "reason");
                (void) snprintf(reason, sizeof(reason), "%s", rsn && text_ok(rsn) ? rsn : "refused");
                json_object_put(o);
                submit_finish(s, SUBMIT_INVALID, 0, field, reason);
                return;
        }
        json_object_put(o);
        submit_complete(s);
}

static void check_exited(AgentTask *t, int code, int status, void *userdata) {
        Submission *s = userdata;

        (void) t;
        s->check = agent_task_free(s->check);
        s->timeout = sd_event_source_disable_unref(s->timeout);
        handle_report(s, code, status);
}

static int timeout_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Submission *s = userdata;

        (void) es;
        (void) usec;
        submit_finish(s, SUBMIT_INVALID, 0, s->inline_items ? "module" : "input",
                      "submission checks took too long (is the input a FIFO without writer?)");
        return 0;
}

/* "mplock-runner check" as the submitter, in their agent, with the report
 * pipe as fd 3 and, for an input file, the snapshot to fill as fd 4. */
static int start_check(Submission *s) {
        const Settings *st = s->sub->settings;
        char max_bytes[32], max_items[32];
        const char *args[16];
        size_t n = 0;
        int pipefd[2], fds[2], r;

        (void) snprintf(max_bytes, sizeof(max_bytes), "%llu", (unsigned long long) st->max_input_bytes);
        (void) snprintf(max_items, sizeof(max_items), "%llu", (unsigned long long) st->max_items);
        args[n++] = "check";
        args[n++] = "--module";
        args[n++] = s->spec.module;
        args[n++] = "--output";
        args[n++] = s->spec.output;
        if (!s->inline_items) {
                args[n++] = "--input";
                args[n++] = s->spec.input;
                if (s->spec.separator == JOB_SEPARATOR_NUL)
                        args[n++] = "--nul";
        }
        args[n++] = "--max-bytes";
        args[n++] = max_bytes;
        args[n++] = "--max-items";
        args[n++] = max_items;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        fds[0] = pipefd[1];
        fds[1] = s->input_fd;
        s->report_fd = pipefd[0];
        r = agents_spawn(s->sub->agents, s->spec.uid, s->spec.gid, AGENT_MODE_CHECK, args, n, fds,
                         s->inline_items ? 1 : 2, check_exited, s, &s->check);
        safe_close(pipefd[1]);
        if (r < 0)
                return r;
        /* The report is read once the check has ended; the pipe must not
         * block us if it wrote less than promised. */
        if (fcntl(s->report_fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_time_relative(s->sub->event, &s->timeout, CLOCK_MONOTONIC, st->check_timeout_usec, 0,
                                       timeout_handler, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->timeout, "submit-timeout");
        return 0;
}

static Submission *submission_new(Submitter *sub, SubmitRequest *req, SubmitDone done, void *userdata) {
        Submission *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        *s = (Submission){ .sub = sub, .done = done, .userdata = userdata, .spec = req->spec,
                           .halt_percent = req->halt_percent, .inline_items = req->inline_items,
                           .n_inline = req->n_inline, .dirfd = -1, .input_fd = -1, .report_fd = -1 };
        req->spec = (JobSpec){};
        s->next = sub->list;
        if (sub->list)
                sub->list->prev = s;
        sub->list = s;
        sub->n++;
        return s;
}

Submission *submit_start(Submitter *sub, SubmitRequest *req, SubmitDone done, void *userdata) {
        Submission *s = submission_new(sub, req, done, userdata);
        int r;

        if (!s) {
                SubmitResult res = { .outcome = SUBMIT_FAILED, .reason = "out of memory" };
                job_spec_done(&req->spec);
                done(&res, userdata);
                return NULL;
        }
        r = store_new_job_dir(sub->jobs->jobs_fd, s->tmpname, &s->dirfd);
        if (r < 0) {
                submit_fail_errno(s, "cannot create job directory", r);
                return NULL;
        }
        s->input_fd = openat(s->dirfd, "input", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->input_fd < 0) {
                submit_fail_errno(s, "cannot create input snapshot", -errno);
                return NULL;
        }
        if (req->inline_items && (r = write_full(s->input_fd, req->items, req->items_len)) < 0) {
                submit_fail_errno(s, "cannot write input snapshot", r);
                return NULL;
        }
        r = start_check(s);
        if (r < 0) {
                submit_fail_errno(s, "cannot start the submission check", r);
                return NULL;
        }
        return s;
}
