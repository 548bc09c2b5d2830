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
#include "jobs-journal.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "agents.h"
#include "checkpoint.h"
#include "ipc.h"
#include "snapshot.h"
#include "spares.h"
#include "store.h"

/* What the check helper may report, at most. */
#define REPORT_MAX 65536
/* The input arrives through a pipe of this size, read whole per wakeup. */
#define DATA_CHUNK (1u << 20)

struct Submitter {
        sd_event *event;
        const Settings *settings;
        Jobs *jobs;
        Agents *agents;
        int new_fd; /* not owned */
        Submission *list;
        size_t n;
        Spares *spares;
};

struct Submission {
        Submitter *sub;
        Submission *prev, *next;
        SubmitDone done;
        void *userdata;
        JobSpec spec;
        uint32_t halt_percent;
        uint64_t expect_items;
        bool inline_items;
        /* Written, waiting for the check's verdict to be made durable and
         * published; spec_text is its job.json. */
        bool prepared;
        char *spec_text;
        size_t spec_len;
        uint64_t n_inline;
        char tmpname[STORE_NEW_NAME_MAX];
        /* The directory was a spare: its files exist, their names durable. */
        bool spare;
        int dirfd, input_fd, report_fd;
        /* An input file comes through a pipe from the check. */
        int data_fd;
        sd_event_source *data_io;
        bool data_eof;
        Snapshot snap;
        /* The check's verdict: ok and the bytes it sent, once it ended. */
        bool check_ok;
        uint64_t check_bytes;
        AgentTask *check;
        sd_event_source *timeout;
};

int submitter_new(Submitter **ret, sd_event *event, const Settings *settings, Jobs *jobs, Agents *agents,
                  int new_fd) {
        Submitter *sub = calloc(1, sizeof(*sub));
        int r;

        if (!sub)
                return -ENOMEM;
        *sub = (Submitter){ .event = event, .settings = settings, .jobs = jobs, .agents = agents, .new_fd = new_fd };
        r = spares_new(&sub->spares, new_fd);
        if (r < 0) {
                free(sub);
                return r;
        }
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
        s->data_io = sd_event_source_disable_unref(s->data_io);
        safe_close(s->data_fd);
        if (s->tmpname[0] && (r = store_remove_dir(sub->new_fd, s->tmpname)) < 0)
                log_warning_errno(r, "Cannot remove %s: %m", s->tmpname);
        safe_close(s->dirfd);
        safe_close(s->input_fd);
        safe_close(s->report_fd);
        job_spec_done(&s->spec);
        free(s->spec_text);
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
        sub->spares = spares_free(sub->spares);
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

/* Input bytes of uid's active jobs and submissions under way: the
 * snapshot being written may take what is left of max-input-per-uid. */
static uint64_t input_of_uid(Submitter *sub, uid_t uid) {
        JobsUsage u;
        uint64_t total;

        jobs_usage(sub->jobs, uid, &u);
        total = u.input_of_uid;
        for (const Submission *o = sub->list; o; o = o->next)
                if (o->spec.uid == uid)
                        total += o->snap.bytes;
        return total;
}

/* Appends to the snapshot within the limits: 0, or the submission is
 * answered (refused or failed) and gone. */
static int feed_snapshot(Submission *s, const void *data, size_t len) {
        const Settings *st = s->sub->settings;
        uint64_t used = input_of_uid(s->sub, s->spec.uid);
        char why[256];
        int r;

        if (used + len > st->max_input_per_uid && s->snap.bytes + len <= st->max_input_bytes) {
                (void) snprintf(why, sizeof(why),
                                "your active jobs' input lists would total more than the limit of %llu bytes",
                                (unsigned long long) st->max_input_per_uid);
                submit_finish(s, SUBMIT_INVALID, 0, items_parameter(s), why);
                return -EFBIG;
        }
        r = snapshot_write(&s->snap, data, len);
        if (r == -EFBIG || r == -E2BIG) {
                if (r == -EFBIG)
                        (void) snprintf(why, sizeof(why), "input list larger than %llu bytes",
                                        (unsigned long long) st->max_input_bytes);
                else
                        (void) snprintf(why, sizeof(why), "input list has more than %llu items",
                                        (unsigned long long) st->max_items);
                submit_finish(s, SUBMIT_INVALID, 0, items_parameter(s), why);
                return r;
        }
        if (r < 0) {
                submit_fail_errno(s, "cannot write input snapshot", r);
                return r;
        }
        return 0;
}

static uint64_t now_realtime_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* The job in its directory, written but neither synced nor published:
 * the snapshot and an empty checkpoint log (a spare has one already);
 * job.json follows the check's verdict (write_spec). No state.json: the
 * job is queued, and its first change writes one. 0, or the submission is
 * answered and gone. */
static int prepare_job(Submission *s) {
        int r;

        if (!s->inline_items && s->snap.bytes != s->check_bytes) {
                submit_finish(s, SUBMIT_INVALID, 0, "input", "input snapshot is incomplete");
                return -EBADMSG;
        }
        r = snapshot_finish(&s->snap);
        if (r < 0) {
                submit_finish(s, SUBMIT_INVALID, 0, items_parameter(s), "input snapshot is incomplete");
                return r;
        }
        /* A caller that knows its count (python/mplock) leaves finding an
         * item that holds the separator to this count, made anyway. */
        if (s->expect_items && s->snap.items != s->expect_items) {
                char why[160];
                (void) snprintf(why, sizeof(why),
                                "the list holds %llu items where items_count says %llu: an item holds its separator",
                                (unsigned long long) s->snap.items, (unsigned long long) s->expect_items);
                submit_finish(s, SUBMIT_INVALID, 0, "items_count", why);
                return -EBADMSG;
        }
        s->spec.n_items = s->snap.items;
        s->spec.input_bytes = s->snap.bytes;
        s->spec.input_crc = s->snap.crc;
        if (s->halt_percent > 0)
                /* At least one failure, however few the items. */
                s->spec.halt_failures = MAX((s->spec.n_items * s->halt_percent + 99) / 100, (uint64_t) 1);
        /* Taken now, an id may go unused (a refused submission): ids are
         * unique, not dense. */
        s->spec.id = jobs_take_id(s->sub->jobs);
        s->spec.created_usec = now_realtime_usec();
        r = s->spare ? 0 : checkpoint_create_empty(s->dirfd);
        if (r < 0) {
                submit_fail_errno(s, "cannot store the job", r);
                return r;
        }
        s->prepared = true;
        return 0;
}

/* job.json, once the check has said which file the module is. */
static int write_spec(Submission *s) {
        int r;

        r = store_spec_text(&s->spec, &s->spec_text, &s->spec_len);
        if (r >= 0)
                r = store_create_spec_text(s->dirfd, s->spec_text, s->spec_len, false);
        if (r < 0)
                submit_fail_errno(s, "cannot store the job", r);
        return r;
}

/* Durable before the client hears of it: one journal record, or, when the
 * journal cannot take it (too large, full), the files and directories
 * synced. *ret_journaled says which. */
static int make_durable(Submission *s, bool *ret_journaled) {
        Jobs *jobs = s->sub->jobs;
        int r;

        r = jobs_journal_submit(jobs, s->spec.id, s->spec_text, s->spec_len, s->input_fd, s->snap.bytes);
        *ret_journaled = r >= 0;
        if (r >= 0 || (r != -E2BIG && r != -ENOSPC && r != -EBUSY && r != -ENODEV))
                return r;
        return store_sync_job_files(s->dirfd);
}

/* The rename that makes the prepared job exist, then the job table. */
static void submit_complete(Submission *s) {
        bool journaled;
        uint64_t id;
        int r;

        if (!s->prepared && prepare_job(s) < 0)
                return; /* answered */
        if (write_spec(s) < 0)
                return; /* answered */
        id = s->spec.id;
        r = make_durable(s, &journaled);
        if (r >= 0)
                r = store_publish_job_dir(s->sub->new_fd, s->tmpname, s->sub->jobs->jobs_fd, id, !journaled);
        if (r < 0) {
                /* Its record must not bring it back after a crash. */
                if (journaled)
                        (void) jobs_checkpoint(s->sub->jobs);
                submit_fail_errno(s, "cannot store the job", r);
                return;
        }
        /* The job exists now: hand everything over to it. */
        s->tmpname[0] = '\0';
        r = jobs_add(s->sub->jobs, &s->spec, TAKE_FD(s->dirfd), journaled);
        if (r < 0) {
                /* On disk and durable: the next start picks it up. */
                submit_fail_errno(s, "cannot take the job on", r);
                return;
        }
        submit_finish(s, SUBMIT_OK, id, NULL, NULL);
}

/* Done once the check has said yes and every byte it sent is in. */
static void submit_maybe_complete(Submission *s) {
        if (!s->check_ok)
                return;
        if (s->inline_items || s->snap.bytes >= s->check_bytes)
                submit_complete(s);
        else if (s->data_eof)
                submit_finish(s, SUBMIT_INVALID, 0, "input", "input snapshot is incomplete");
}

/* The input, as the check sends it: at most a pipe's worth per wakeup. */
static int data_handler(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        static char buf[DATA_CHUNK];
        Submission *s = userdata;
        ssize_t n;

        (void) es;
        (void) revents;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                s->data_eof = true;
                s->data_io = sd_event_source_disable_unref(s->data_io);
                s->data_fd = safe_close(s->data_fd);
                submit_maybe_complete(s);
                return 0;
        }
        if (feed_snapshot(s, buf, (size_t) n) < 0)
                return 0; /* answered and gone */
        if (s->check_ok && s->snap.bytes > s->check_bytes)
                submit_finish(s, SUBMIT_INVALID, 0, "input", "the check sent more than it said");
        else
                submit_maybe_complete(s);
        return 0;
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
                { "bytes", JSON_KIND_UINT, false },   { "module_stamp", JSON_KIND_STRING, false },
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
        s->check_ok = true;
        s->check_bytes = json_get_uint(o, "bytes", 0);
        /* The submitter's word on which file they gave: bounded, and only
         * ever compared with what their own runner sees. */
        rsn = json_get_str(o, "module_stamp");
        if (rsn && strlen(rsn) < 128 && text_ok(rsn) && !s->spec.module_stamp)
                s->spec.module_stamp = strdup(rsn); /* without it (ENOMEM), none is checked */
        json_object_put(o);
        if (!s->inline_items && s->snap.bytes > s->check_bytes)
                submit_finish(s, SUBMIT_INVALID, 0, "input", "the check sent more than it said");
        else
                submit_maybe_complete(s);
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

/* The pipe the check sends an input file through: its write end for the
 * check, the read end watched here. */
static int open_data_pipe(Submission *s, int *ret_write_fd) {
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        s->data_fd = p[0];
        (void) fcntl(p[0], F_SETPIPE_SZ, DATA_CHUNK); /* fewer wakeups; the default works too */
        r = fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 ? -errno : 0;
        if (r >= 0)
                r = sd_event_add_io(s->sub->event, &s->data_io, p[0], EPOLLIN, data_handler, s);
        if (r < 0) {
                safe_close(p[1]);
                return r;
        }
        (void) sd_event_source_set_description(s->data_io, "submit-input");
        *ret_write_fd = p[1];
        return 0;
}

/* "mplock-runner check" as the submitter, in their agent, with the report
 * pipe as fd 3 and, for an input file, the pipe for its items as fd 4. */
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
        s->report_fd = pipefd[0];
        if (!s->inline_items) {
                r = open_data_pipe(s, &fds[1]);
                if (r < 0) {
                        safe_close(pipefd[1]);
                        return r;
                }
        }
        r = agents_spawn(s->sub->agents, s->spec.uid, s->spec.gid, AGENT_MODE_CHECK, args, n, fds,
                         s->inline_items ? 1 : 2, check_exited, s, &s->check);
        safe_close(pipefd[1]);
        if (!s->inline_items)
                safe_close(fds[1]);
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
                           .halt_percent = req->halt_percent, .expect_items = req->expect_items, .inline_items = req->inline_items,
                           .n_inline = req->n_inline, .dirfd = -1, .input_fd = -1, .report_fd = -1,
                           .data_fd = -1 };
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
        s->spare = spares_take(sub->spares, s->tmpname, &s->dirfd) >= 0;
        r = s->spare ? 0 : store_new_job_dir(sub->new_fd, s->tmpname, &s->dirfd);
        if (r < 0) {
                submit_fail_errno(s, "cannot create job directory", r);
                return NULL;
        }
        s->input_fd = openat(s->dirfd, "input",
                             s->spare ? O_RDWR | O_CLOEXEC | O_NOFOLLOW
                                      : O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                             0600);
        if (s->input_fd < 0) {
                submit_fail_errno(s, "cannot create input snapshot", -errno);
                return NULL;
        }
        snapshot_init(&s->snap, s->input_fd, sub->settings->max_input_bytes, sub->settings->max_items);
        if (req->inline_items && feed_snapshot(s, req->items, req->items_len) < 0)
                return NULL; /* answered */
        r = start_check(s);
        if (r < 0) {
                submit_fail_errno(s, "cannot start the submission check", r);
                return NULL;
        }
        /* Inline items are all here: written while the check runs. */
        if (req->inline_items && prepare_job(s) < 0)
                return NULL; /* answered */
        return s;
}
