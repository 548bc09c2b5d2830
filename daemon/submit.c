/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crc32c.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "mplockd.h"
#include "parse.h"
#include "varlink-names.h"

/* Submit, from request to durable job:
 *
 *  1. every parameter is validated (types, ranges, absolute paths, sizes);
 *  2. a directory jobs/.new-XXXX is made with an empty snapshot file;
 *  3. the helper (mplock-runner check), running as the caller, loads the
 *     module to check its ABI, checks the output directory, and copies the
 *     input list into the snapshot (items sent inline are written by us);
 *  4. we verify the snapshot ourselves (item count, terminators, size,
 *     fingerprint), write job.json, state.json and an empty checkpoint,
 *     rename the directory to the job's id and fsync;
 *  5. only then does the client get its id.
 *
 * Any failure replies with an error naming the parameter and removes the
 * directory: nothing half-created is left. The daemon itself never opens
 * the caller's module, input or output. */

#define REPORT_MAX 65536
#define NAME_MAX_LEN 128
#define PATH_MAX_LEN 3900

struct Submission {
        uint32_t halt_percent; /* resolved against the item count at the end */
        Manager *manager;
        Submission *prev, *next;
        Connection *conn;
        JobSpec spec;
        char tmpname[32];
        int dirfd;
        int input_fd;
        int report_fd;
        pid_t pid;
        sd_event_source *child;
        sd_event_source *timeout;
        bool inline_items;
        uint64_t inline_count;
};

static void submission_free(Submission *s) {
        Manager *m = s->manager;

        if (s->prev)
                s->prev->next = s->next;
        else
                m->submissions = s->next;
        if (s->next)
                s->next->prev = s->prev;
        m->n_submissions--;
        if (s->conn)
                s->conn->submission = NULL;
        s->child = sd_event_source_disable_unref(s->child);
        s->timeout = sd_event_source_disable_unref(s->timeout);
        if (s->pid > 0) {
                (void) kill(-s->pid, SIGKILL);
                (void) waitpid(s->pid, NULL, 0);
        }
        if (s->tmpname[0]) {
                int r = rm_rf_at(m->jobs_fd, s->tmpname);
                if (r < 0)
                        log_warning_errno(r, "Cannot remove %s: %m", s->tmpname);
        }
        safe_close(s->dirfd);
        safe_close(s->input_fd);
        safe_close(s->report_fd);
        job_spec_done(&s->spec);
        free(s);
        if (m->stopping && manager_all_runners_gone(m))
                (void) sd_event_exit(m->event, 0);
}

void submission_abort(Submission *s) {
        s->conn = NULL;
        submission_free(s);
}

void submit_abort_all(Manager *m) {
        while (m->submissions) {
                Submission *s = m->submissions;
                if (s->conn)
                        connection_error(s->conn, MPLOCK_ERROR_SHUTTING_DOWN, NULL);
                submission_abort(s);
        }
}

static void submit_fail(Submission *s, const char *error, const char *field, const char *reason) {
        Connection *c = s->conn;

        /* Clean up before answering: once the client has its error, nothing
         * of the submission may be left on disk. */
        submission_free(s);
        if (c) {
                if (field)
                        connection_error_param(c, field, reason);
                else {
                        json_object *p = json_object_new_object();
                        if (p && json_add_str(p, "reason", reason) < 0) {
                                json_object_put(p);
                                p = NULL;
                        }
                        connection_error(c, error, p);
                }
        }
}

static bool path_ok(const char *p, char *why, size_t n) {
        if (p[0] != '/') {
                (void) snprintf(why, n, "must be an absolute path");
                return false;
        }
        if (strlen(p) > PATH_MAX_LEN) {
                (void) snprintf(why, n, "path longer than %d bytes", PATH_MAX_LEN);
                return false;
        }
        return true;
}

static bool text_ok(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

/* "N" (items) or "P%" (of the job's items): 0 and the count or percent,
 * or -EINVAL. */
static int parse_halt(const char *s, uint64_t *count, uint32_t *percent) {
        size_t len = strlen(s);
        char buf[24];
        uint64_t v;

        *count = 0;
        *percent = 0;
        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        if (s[len - 1] != '%')
                return parse_uint_range(s, 1, UINT64_MAX, count) < 0 ? -EINVAL : 0;
        memcpy(buf, s, len - 1);
        buf[len - 1] = '\0';
        if (parse_uint_range(buf, 1, 100, &v) < 0)
                return -EINVAL;
        *percent = (uint32_t) v;
        return 0;
}

static char *default_name(const char *module) {
        const char *b = strrchr(module, '/');
        size_t n;

        b = b ? b + 1 : module;
        n = strlen(b);
        if (n > 3 && streq(b + n - 3, ".so"))
                n -= 3;
        return strndup(b, MIN(n, (size_t) NAME_MAX_LEN));
}

/* Writes inline items, NUL-terminated, into the snapshot. */
static int write_inline_items(Submission *s, json_object *items, JsonError *err) {
        Manager *m = s->manager;
        size_t n = json_object_array_length(items), cap = 1 << 20, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        uint64_t total = 0;
        int r;

        if (!buf)
                return -ENOMEM;
        if (n > m->settings.max_items) {
                json_error_set(err, "items", "more than %llu items", (unsigned long long) m->settings.max_items);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(items, i);
                const char *str;
                size_t sl;

                if (!v || !json_object_is_type(v, json_type_string)) {
                        json_error_set(err, "items", "element %zu must be a string", i);
                        return -EINVAL;
                }
                str = json_object_get_string(v);
                sl = (size_t) json_object_get_string_len(v);
                if (strlen(str) != sl) {
                        json_error_set(err, "items", "element %zu contains a NUL byte", i);
                        return -EINVAL;
                }
                total += sl + 1;
                if (total > m->settings.max_input_bytes) {
                        json_error_set(err, "items", "larger than %llu bytes",
                                       (unsigned long long) m->settings.max_input_bytes);
                        return -EINVAL;
                }
                if (len + sl + 1 > cap) {
                        r = write_full(s->input_fd, buf, len);
                        if (r < 0)
                                return r;
                        len = 0;
                        if (sl + 1 > cap) {
                                r = write_full(s->input_fd, str, sl + 1);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                }
                memcpy(buf + len, str, sl + 1);
                len += sl + 1;
        }
        s->inline_count = n;
        return write_full(s->input_fd, buf, len);
}

/* The daemon's own check of the snapshot: the helper ran as the user (and
 * loaded the user's module), so its report is not trusted. */
static int verify_snapshot(Submission *s, char *why, size_t whylen) {
        Manager *m = s->manager;
        _cleanup_free_ char *buf = malloc(1 << 20);
        uint64_t off = 0, items = 0;
        uint32_t crc = 0;
        char last = '\0';
        struct stat st;

        if (!buf)
                return -ENOMEM;
        if (fstat(s->input_fd, &st) < 0)
                return -errno;
        if ((uint64_t) st.st_size > m->settings.max_input_bytes) {
                (void) snprintf(why, whylen, "input list larger than %llu bytes",
                                (unsigned long long) m->settings.max_input_bytes);
                return -EFBIG;
        }
        for (;;) {
                ssize_t n = pread(s->input_fd, buf, 1 << 20, (off_t) off);
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
        if (off != (uint64_t) st.st_size || (off > 0 && last != '\0')) {
                (void) snprintf(why, whylen, "input snapshot is incomplete");
                return -EBADMSG;
        }
        if (items > m->settings.max_items) {
                (void) snprintf(why, whylen, "input list has more than %llu items",
                                (unsigned long long) m->settings.max_items);
                return -E2BIG;
        }
        if (s->inline_items && items != s->inline_count) {
                (void) snprintf(why, whylen, "snapshot does not match the items sent");
                return -EBADMSG;
        }
        s->spec.n_items = items;
        s->spec.input_bytes = off;
        s->spec.input_crc = crc;
        return 0;
}

static void submit_complete(Submission *s) {
        Manager *m = s->manager;
        char why[512] = "", idname[32];
        Job *j = NULL;
        json_object *p;
        int r;

        r = verify_snapshot(s, why, sizeof(why));
        if (r < 0) {
                if (!why[0])
                        (void) snprintf(why, sizeof(why), "cannot read input snapshot: %s", strerror(-r));
                submit_fail(s, NULL, s->inline_items ? "items" : "input", why);
                return;
        }
        if (fsync(s->input_fd) < 0) {
                (void) snprintf(why, sizeof(why), "cannot store input snapshot: %s", strerror(errno));
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, why);
                return;
        }

        /* The user's active jobs together may hold so much input. */
        {
                uint64_t total = s->spec.input_bytes;
                for (size_t i = 0; i < m->n_jobs; i++)
                        if (!job_state_is_final(m->jobs[i]->state) && m->jobs[i]->spec.uid == s->spec.uid)
                                total += m->jobs[i]->spec.input_bytes;
                if (total > m->settings.max_input_per_uid) {
                        (void) snprintf(why, sizeof(why),
                                        "your active jobs' input lists would total %llu bytes, over the limit of %llu",
                                        (unsigned long long) total, (unsigned long long) m->settings.max_input_per_uid);
                        submit_fail(s, NULL, s->inline_items ? "items" : "input", why);
                        return;
                }
        }
        if (s->halt_percent > 0)
                /* At least one failure, however few the items. */
                s->spec.halt_failures = MAX((s->spec.n_items * s->halt_percent + 99) / 100, (uint64_t) 1);
        /* No need to persist the counter here: the job's directory carries
         * its id once it exists, and an id lost in a crash before that was
         * never given to anybody. (Remove persists it.) */
        s->spec.id = m->next_id++;
        s->spec.created_usec = now_usec(CLOCK_REALTIME);
        j = job_new(m);
        if (!j) {
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, "out of memory");
                return;
        }
        j->state = JOB_QUEUED;
        j->dirfd = s->dirfd; /* the directory keeps its fd across rename */
        r = store_write_spec(s->dirfd, &s->spec);
        if (r >= 0)
                r = store_write_state(j);
        if (r >= 0)
                r = checkpoint_create(s->dirfd, s->spec.n_items);
        if (r >= 0)
                r = fsync_dirfd(s->dirfd);
        (void) snprintf(idname, sizeof(idname), "%llu", (unsigned long long) s->spec.id);
        if (r >= 0 && renameat(m->jobs_fd, s->tmpname, m->jobs_fd, idname) < 0)
                r = -errno;
        if (r >= 0)
                r = fsync_dirfd(m->jobs_fd);
        if (r < 0) {
                j->dirfd = -1;
                job_free(j);
                (void) snprintf(why, sizeof(why), "cannot store the job: %s", strerror(-r));
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, why);
                return;
        }
        /* The job exists now: hand everything over to it. */
        s->tmpname[0] = '\0';
        s->dirfd = -1;
        j->spec = s->spec;
        s->spec = (JobSpec){};
        r = manager_add_job(m, j);
        if (r < 0) {
                /* On disk and durable: the next start picks it up. */
                job_free(j);
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, "out of memory");
                return;
        }
        log_job(LOG_INFO, j->spec.id, "Submitted by uid %u: %s over %llu items of %s, %u workers.",
                (unsigned) j->spec.uid, j->spec.module, (unsigned long long) j->spec.n_items, j->spec.input,
                j->spec.workers);

        p = json_object_new_object();
        if (s->conn) {
                if (p && json_add_u64(p, "id", j->spec.id) == 0)
                        connection_reply(s->conn, p);
                else {
                        json_object_put(p);
                        connection_error(s->conn, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                }
        } else
                json_object_put(p);
        submission_free(s);
        manager_schedule(m);
        manager_notify_status(m);
}

static void handle_report(Submission *s, int code, int status) {
        static const JsonField fields[] = {
                { "ok", JSON_KIND_BOOL, true },       { "parameter", JSON_KIND_STRING, false },
                { "reason", JSON_KIND_STRING, false }, { "items", JSON_KIND_UINT, false },
                { "bytes", JSON_KIND_UINT, false },
        };
        char buf[REPORT_MAX + 1], reason[600];
        size_t len = 0;
        json_object *o = NULL;
        JsonError err;
        const char *why, *field, *rsn;

        for (;;) {
                ssize_t n = read(s->report_fd, buf + len, REPORT_MAX - len);
                if (n <= 0 || (len += (size_t) n) == REPORT_MAX)
                        break;
        }
        buf[len] = '\0';
        if (len > 0 && buf[len - 1] == '\n')
                len--;
        if (len > 0)
                o = json_parse_strict(buf, len, 4, &why);
        if (!o || json_validate(o, fields, ELEMENTSOF(fields), &err) < 0) {
                if (code == CLD_EXITED)
                        (void) snprintf(reason, sizeof(reason), "submission check failed (exit status %d)", status);
                else
                        (void) snprintf(reason, sizeof(reason), "submission check was killed by signal %s "
                                        "(a crash in the module's constructors?)", strsignal(status));
                json_object_put(o);
                submit_fail(s, NULL, "module", reason);
                return;
        }
        if (!json_get_bool(o, "ok", false) || code != CLD_EXITED || status != 0) {
                field = json_get_str(o, "parameter");
                rsn = json_get_str(o, "reason");
                /* Only names we know may come back as the parameter; both
                 * strings are copied out before the report is freed. */
                if (streq_ptr(field, "input"))
                        field = "input";
                else if (streq_ptr(field, "output"))
                        field = "output";
                else
                        field = "module";
                (void) snprintf(reason, sizeof(reason), "%s", rsn && text_ok(rsn) ? rsn : "refused");
                json_object_put(o);
                submit_fail(s, NULL, field, reason);
                return;
        }
        json_object_put(o);
        submit_complete(s);
}

static int child_handler(sd_event_source *es, const siginfo_t *si, void *userdata) {
        Submission *s = userdata;

        (void) es;
        s->pid = 0; /* sd-event reaps it */
        s->child = sd_event_source_disable_unref(s->child);
        s->timeout = sd_event_source_disable_unref(s->timeout);
        handle_report(s, si->si_code, si->si_status);
        return 0;
}

static int timeout_handler(sd_event_source *es, uint64_t usec, void *userdata) {
        Submission *s = userdata;

        (void) es;
        (void) usec;
        submit_fail(s, NULL, s->inline_items ? "module" : "input",
                    "submission checks took too long (is the input a FIFO without writer?)");
        return 0;
}

const JsonField submit_fields[] = {
        { "module", JSON_KIND_STRING, true },   { "input", JSON_KIND_STRING, false },
        { "items", JSON_KIND_ARRAY, false },    { "separator", JSON_KIND_STRING, false },
        { "output", JSON_KIND_STRING, true },   { "workers", JSON_KIND_UINT, false },
        { "shared", JSON_KIND_OBJECT, false },  { "save_batch", JSON_KIND_UINT, false },
        { "batch_size", JSON_KIND_UINT, false }, { "name", JSON_KIND_STRING, false },
        { "timeout", JSON_KIND_UINT, false },   { "memory_max", JSON_KIND_UINT, false },
        { "max_attempts", JSON_KIND_UINT, false }, { "halt_on_failure", JSON_KIND_STRING, false },
};
const size_t submit_n_fields = ELEMENTSOF(submit_fields);

void submit_start(Connection *c) {
        Manager *m = c->manager;
        json_object *params = c->call.parameters, *items;
        const char *module, *input, *output, *sep, *name, *shared_text, *halt;
        uint64_t halt_count = 0;
        uint32_t halt_percent = 0;
        char why[256], max_bytes[32], max_items[32], rnd[12];
        char *argv[16];
        int fds[2], pipefd[2] = { -1, -1 }, r;
        size_t argc = 0, active = 0, active_of_uid = 0, shared_len;
        uint64_t workers, batch, save, timeout, memory_max, attempts;
        Submission *s;
        JsonError err;

        if (json_validate(params, submit_fields, submit_n_fields, &err) < 0) {
                connection_error_param(c, err.field, err.reason);
                return;
        }
        module = json_get_str(params, "module");
        input = json_get_str(params, "input");
        items = json_get(params, "items");
        output = json_get_str(params, "output");
        sep = json_get_str(params, "separator");
        name = json_get_str(params, "name");
        /* By default as many workers as the daemon runs, within the per-job limit. */
        workers = json_get_uint(params, "workers", MIN(m->settings.max_workers, m->settings.max_workers_per_job));
        batch = json_get_uint(params, "batch_size", 1);
        save = json_get_uint(params, "save_batch", 1000);
        timeout = json_get_uint(params, "timeout", m->settings.item_timeout_sec);
        memory_max = json_get_uint(params, "memory_max", m->settings.memory_max);
        attempts = json_get_uint(params, "max_attempts", m->settings.max_attempts);
        halt = json_get_str(params, "halt_on_failure");

        if (!path_ok(module, why, sizeof(why))) {
                connection_error_param(c, "module", why);
                return;
        }
        if (!path_ok(output, why, sizeof(why))) {
                connection_error_param(c, "output", why);
                return;
        }
        if (!!input == !!items) {
                connection_error_param(c, "input", "exactly one of input and items must be given");
                return;
        }
        if (input && !path_ok(input, why, sizeof(why))) {
                connection_error_param(c, "input", why);
                return;
        }
        if (sep && !streq(sep, "newline") && !streq(sep, "nul")) {
                connection_error_param(c, "separator", "must be \"newline\" or \"nul\"");
                return;
        }
        if (sep && items) {
                connection_error_param(c, "separator", "only applies to an input file");
                return;
        }
        if (workers < 1 || workers > m->settings.max_workers_per_job) {
                (void) snprintf(why, sizeof(why), "must be between 1 and %u", m->settings.max_workers_per_job);
                connection_error_param(c, "workers", why);
                return;
        }
        if (batch < 1 || batch > m->settings.max_batch_size) {
                (void) snprintf(why, sizeof(why), "must be between 1 and %u", m->settings.max_batch_size);
                connection_error_param(c, "batch_size", why);
                return;
        }
        if (save < 1 || save > m->settings.max_save_batch) {
                (void) snprintf(why, sizeof(why), "must be between 1 and %u", m->settings.max_save_batch);
                connection_error_param(c, "save_batch", why);
                return;
        }
        if (memory_max != 0 && (memory_max < (UINT64_C(16) << 20) || memory_max > (UINT64_C(1) << 50))) {
                connection_error_param(c, "memory_max", "must be 0 (none) or at least 16 MiB");
                return;
        }
        if (halt && parse_halt(halt, &halt_count, &halt_percent) < 0) {
                connection_error_param(c, "halt_on_failure", "must be a number of items (\"10\") or a percentage "
                                                             "of the job's items (\"5%\")");
                return;
        }
        if (attempts < 1 || attempts > 1000) {
                connection_error_param(c, "max_attempts", "must be between 1 and 1000");
                return;
        }
        if (timeout > 604800) {
                connection_error_param(c, "timeout", "must be between 0 (none) and 604800 seconds");
                return;
        }
        if (name && (strlen(name) > NAME_MAX_LEN || !text_ok(name))) {
                (void) snprintf(why, sizeof(why), "must be at most %d printable characters", NAME_MAX_LEN);
                connection_error_param(c, "name", why);
                return;
        }
        shared_text = json_get(params, "shared") ? json_compact(json_get(params, "shared"), &shared_len) : "{}";
        if (!shared_text) {
                connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        shared_len = strlen(shared_text);
        if (shared_len > m->settings.max_shared) {
                (void) snprintf(why, sizeof(why), "larger than %zu bytes", m->settings.max_shared);
                connection_error_param(c, "shared", why);
                return;
        }

        for (size_t i = 0; i < m->n_jobs; i++) {
                bool a = !job_state_is_final(m->jobs[i]->state);
                active += a;
                active_of_uid += a && m->jobs[i]->spec.uid == c->uid;
        }
        for (Submission *o = m->submissions; o; o = o->next)
                active_of_uid += o->spec.uid == c->uid;
        if (active_of_uid >= m->settings.max_active_jobs_per_uid) {
                json_object *p = json_object_new_object();
                if (p && (json_add_u64(p, "limit", m->settings.max_active_jobs_per_uid) < 0 ||
                          json_add_str(p, "scope", "user") < 0)) {
                        json_object_put(p);
                        p = NULL;
                }
                connection_error(c, MPLOCK_ERROR_TOO_MANY_JOBS, p);
                return;
        }
        if (active + m->n_submissions >= m->settings.max_active_jobs ||
            m->n_jobs + m->n_submissions >= m->settings.max_jobs) {
                json_object *p = json_object_new_object();
                uint32_t lim = active + m->n_submissions >= m->settings.max_active_jobs ? m->settings.max_active_jobs
                                                                                        : m->settings.max_jobs;
                if (p && json_add_u64(p, "limit", lim) < 0) {
                        json_object_put(p);
                        p = NULL;
                }
                connection_error(c, MPLOCK_ERROR_TOO_MANY_JOBS, p);
                return;
        }

        s = calloc(1, sizeof(*s));
        if (!s) {
                connection_error(c, MPLOCK_ERROR_INTERNAL_ERROR, NULL);
                return;
        }
        s->manager = m;
        s->dirfd = s->input_fd = s->report_fd = -1;
        s->next = m->submissions;
        if (m->submissions)
                m->submissions->prev = s;
        m->submissions = s;
        m->n_submissions++;
        s->conn = c;
        c->submission = s;
        s->inline_items = !!items;
        s->spec = (JobSpec){
                .module = strdup(module),
                .input = strdup(input ? input : "(inline)"),
                .output = strdup(output),
                .shared_json = strdup(shared_text),
                .name = name ? strdup(name) : default_name(module),
                .workers = (uint32_t) workers,
                .batch_size = (uint32_t) batch,
                .save_batch = (uint32_t) save,
                .timeout_sec = (uint32_t) timeout,
                .memory_max = memory_max,
                .max_attempts = (uint32_t) attempts,
                .halt = halt ? strdup(halt) : NULL,
                .halt_failures = halt_count,
                .nul_separated = sep && streq(sep, "nul"),
                .uid = c->uid,
                .gid = c->gid,
        };
        s->halt_percent = halt_percent;
        if (!s->spec.module || !s->spec.input || !s->spec.output || !s->spec.shared_json || !s->spec.name ||
            (halt && !s->spec.halt)) {
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, "out of memory");
                return;
        }

        random_suffix(rnd, sizeof(rnd));
        (void) snprintf(s->tmpname, sizeof(s->tmpname), ".new-%s", rnd);
        if (mkdirat(m->jobs_fd, s->tmpname, 0700) < 0) {
                s->tmpname[0] = '\0';
                (void) snprintf(why, sizeof(why), "cannot create job directory: %s", strerror(errno));
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, why);
                return;
        }
        s->dirfd = openat(m->jobs_fd, s->tmpname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (s->dirfd >= 0)
                s->input_fd = openat(s->dirfd, "input", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->input_fd < 0) {
                (void) snprintf(why, sizeof(why), "cannot create input snapshot: %s", strerror(errno));
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, why);
                return;
        }
        if (items) {
                r = write_inline_items(s, items, &err);
                if (r == -EINVAL) {
                        submit_fail(s, NULL, err.field, err.reason);
                        return;
                }
                if (r < 0) {
                        (void) snprintf(why, sizeof(why), "cannot write input snapshot: %s", strerror(-r));
                        submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, why);
                        return;
                }
        }

        if (pipe2(pipefd, O_CLOEXEC) < 0) {
                (void) snprintf(why, sizeof(why), "pipe: %s", strerror(errno));
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, why);
                return;
        }
        (void) snprintf(max_bytes, sizeof(max_bytes), "%llu", (unsigned long long) m->settings.max_input_bytes);
        (void) snprintf(max_items, sizeof(max_items), "%llu", (unsigned long long) m->settings.max_items);
        argv[argc++] = (char *) "mplock-runner";
        argv[argc++] = (char *) "check";
        argv[argc++] = (char *) "--module";
        argv[argc++] = s->spec.module;
        argv[argc++] = (char *) "--output";
        argv[argc++] = s->spec.output;
        if (input) {
                argv[argc++] = (char *) "--input";
                argv[argc++] = s->spec.input;
                if (s->spec.nul_separated)
                        argv[argc++] = (char *) "--nul";
        }
        argv[argc++] = (char *) "--max-bytes";
        argv[argc++] = max_bytes;
        argv[argc++] = (char *) "--max-items";
        argv[argc++] = max_items;
        argv[argc] = NULL;
        fds[0] = pipefd[1];
        fds[1] = s->input_fd;
        r = spawn_helper(m, argv, fds, input ? 2 : 1, c->uid, c->gid);
        safe_close(pipefd[1]);
        s->report_fd = pipefd[0];
        if (r < 0) {
                (void) snprintf(why, sizeof(why), "cannot start the submission check: %s", strerror(-r));
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, why);
                return;
        }
        s->pid = r;
        /* The report is read once the helper has exited; keep the pipe from
         * blocking us if it wrote less than promised. */
        (void) fcntl(s->report_fd, F_SETFL, O_NONBLOCK);
        r = sd_event_add_child(m->event, &s->child, s->pid, WEXITED, child_handler, s);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &s->timeout, CLOCK_MONOTONIC,
                                               m->settings.check_timeout_usec, 0, timeout_handler, s);
        if (r < 0) {
                (void) snprintf(why, sizeof(why), "cannot watch the submission check: %s", strerror(-r));
                submit_fail(s, MPLOCK_ERROR_SUBMIT_FAILED, NULL, why);
                return;
        }
        (void) sd_event_source_set_description(s->child, "submit-check");
        (void) sd_event_source_set_description(s->timeout, "submit-timeout");
}
