/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "mplockd.h"
#include "parse.h"

/* The state directory:
 *
 *   STATE/jobs/<id>/job.json    the job as submitted (JobSpec)
 *   STATE/jobs/<id>/state.json  queued/running/... and final counters
 *   STATE/jobs/<id>/input       the input list snapshot, NUL-terminated items
 *   STATE/jobs/<id>/ckpt.*      checkpoint (checkpoint.c)
 *   STATE/jobs/<id>/lock        flock()ed by the job's runner
 *   STATE/jobs/.new-*           submissions in progress; removed at start
 *   STATE/next-id               the next job id, written when a job is removed
 *                               (the job directories carry the others)
 *
 * Every file is written with write_file_atomic_at(); a job directory appears
 * by rename() only once complete. */

#define JOB_JSON_MAX (4u * 1024u * 1024u)

/* Temporary files of atomic writes a crash interrupted (".#name.XXXXXX"):
 * never renamed into place, so never part of the state. */
static void remove_stale_temp_files(int dirfd) {
        int fd = dup(dirfd);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (!d) {
                safe_close(fd);
                return;
        }
        rewinddir(d);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, ".#", 2) == 0 && unlinkat(dirfd, de->d_name, 0) < 0)
                        log_warning_errno(errno, "Cannot remove stale %s: %m", de->d_name);
        (void) closedir(d);
}

int store_open(Manager *m) {
        _cleanup_close_ int sfd = -1, jfd = -1;
        struct stat st;
        DIR *d;
        struct dirent *de;
        int r;

        /* The parents as any directory, the state directory private. */
        r = mkdir_parents(m->state_dir, 0755);
        if (r >= 0 && mkdir(m->state_dir, 0700) < 0 && errno != EEXIST)
                r = -errno;
        if (r < 0)
                return log_error_errno(r, "Cannot create state directory %s: %m", m->state_dir);
        sfd = open(m->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sfd < 0)
                return log_error_errno(errno, "Cannot open state directory %s: %m", m->state_dir);
        if (fstat(sfd, &st) < 0)
                return log_error_errno(errno, "Cannot stat %s: %m", m->state_dir);
        if (st.st_uid != geteuid())
                return log_error_errno(EPERM, "State directory %s is not owned by us (uid %u).", m->state_dir,
                                       (unsigned) st.st_uid);
        if ((st.st_mode & 07777) != 0700 && fchmod(sfd, 0700) < 0)
                return log_error_errno(errno, "Cannot make %s private: %m", m->state_dir);
        if (mkdirat(sfd, "jobs", 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create %s/jobs: %m", m->state_dir);
        jfd = openat(sfd, "jobs", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (jfd < 0)
                return log_error_errno(errno, "Cannot open %s/jobs: %m", m->state_dir);

        /* Submissions cut short by a crash never got a reply, nor an id. */
        d = fdopendir(dup(jfd));
        if (!d)
                return log_error_errno(errno, "Cannot read %s/jobs: %m", m->state_dir);
        /* A dup shares the offset: start from the top. */
        rewinddir(d);
        while ((errno = 0, de = readdir(d)))
                if (strncmp(de->d_name, ".new-", 5) == 0) {
                        r = rm_rf_at(dirfd(d), de->d_name);
                        if (r < 0)
                                log_warning_errno(r, "Cannot remove stale %s: %m", de->d_name);
                }
        (void) closedir(d);

        remove_stale_temp_files(sfd);
        m->state_fd = TAKE_FD(sfd);
        m->jobs_fd = TAKE_FD(jfd);
        return 0;
}

void job_spec_done(JobSpec *s) {
        free(s->name);
        free(s->module);
        free(s->input);
        free(s->output);
        free(s->shared_json);
        free(s->halt);
        *s = (JobSpec){};
}

int store_write_spec(int dirfd, const JobSpec *s) {
        json_object *o = json_object_new_object(), *shared = NULL;
        const char *why, *text;
        size_t len;
        int r;

        if (!o)
                return -ENOMEM;
        shared = json_parse_strict(s->shared_json, strlen(s->shared_json), VARLINK_JSON_DEPTH, &why);
        if (!shared) {
                json_object_put(o);
                return -EINVAL;
        }
        if ((r = json_add_u64(o, "version", 1)) < 0 || (r = json_add_u64(o, "id", s->id)) < 0 ||
            (r = json_add_str(o, "name", s->name)) < 0 || (r = json_add_str(o, "module", s->module)) < 0 ||
            (r = json_add_str(o, "input", s->input)) < 0 || (r = json_add_str(o, "output", s->output)) < 0 ||
            (r = json_add(o, "shared", TAKE_PTR(shared))) < 0 || (r = json_add_u64(o, "workers", s->workers)) < 0 ||
            (r = json_add_u64(o, "batch_size", s->batch_size)) < 0 ||
            (r = json_add_u64(o, "save_batch", s->save_batch)) < 0 ||
            (r = json_add_u64(o, "timeout", s->timeout_sec)) < 0 ||
            (r = json_add_u64(o, "max_attempts", s->max_attempts)) < 0 ||
            (s->halt && (r = json_add_str(o, "halt_on_failure", s->halt)) < 0) ||
            (r = json_add_u64(o, "halt_failures", s->halt_failures)) < 0 ||
            (r = json_add_u64(o, "memory_max", s->memory_max)) < 0 ||
            (r = json_add_str(o, "separator", s->nul_separated ? "nul" : "newline")) < 0 ||
            (r = json_add_u64(o, "items", s->n_items)) < 0 ||
            (r = json_add_u64(o, "input_bytes", s->input_bytes)) < 0 ||
            (r = json_add_u64(o, "input_crc", s->input_crc)) < 0 || (r = json_add_u64(o, "uid", s->uid)) < 0 ||
            (r = json_add_u64(o, "gid", s->gid)) < 0 || (r = json_add_u64(o, "created_usec", s->created_usec)) < 0) {
                json_object_put(shared);
                json_object_put(o);
                return r;
        }
        text = json_compact(o, &len);
        r = text ? write_file_atomic_at(dirfd, "job.json", text, len, 0600) : -ENOMEM;
        json_object_put(o);
        return r;
}

static int dup_str(json_object *o, const char *key, char **ret) {
        const char *s = json_get_str(o, key);

        if (!s)
                return -EBADMSG;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int load_spec(int dirfd, uint64_t id, JobSpec *s) {
        static const JsonField fields[] = {
                { "version", JSON_KIND_UINT, true },      { "id", JSON_KIND_UINT, true },
                { "name", JSON_KIND_STRING, true },       { "module", JSON_KIND_STRING, true },
                { "input", JSON_KIND_STRING, true },      { "output", JSON_KIND_STRING, true },
                { "shared", JSON_KIND_OBJECT, true },     { "workers", JSON_KIND_UINT, true },
                { "batch_size", JSON_KIND_UINT, true },   { "save_batch", JSON_KIND_UINT, true },
                { "timeout", JSON_KIND_UINT, false },      { "memory_max", JSON_KIND_UINT, false },
                { "max_attempts", JSON_KIND_UINT, false }, { "halt_on_failure", JSON_KIND_STRING, false },
                { "halt_failures", JSON_KIND_UINT, false },
                { "separator", JSON_KIND_STRING, true },  { "items", JSON_KIND_UINT, true },
                { "input_bytes", JSON_KIND_UINT, true },  { "input_crc", JSON_KIND_UINT, true },
                { "uid", JSON_KIND_UINT, true },          { "gid", JSON_KIND_UINT, true },
                { "created_usec", JSON_KIND_UINT, true },
        };
        _cleanup_free_ char *text = NULL;
        json_object *o;
        JsonError err;
        const char *why, *sh;
        size_t len;
        int r;

        r = read_file_at(dirfd, "job.json", JOB_JSON_MAX, &text, &len);
        if (r < 0)
                return r;
        o = json_parse_strict(text, len, VARLINK_JSON_DEPTH, &why);
        if (!o)
                return -EBADMSG;
        r = json_validate(o, fields, ELEMENTSOF(fields), &err);
        if (r < 0 || json_get_uint(o, "version", 0) != 1 || json_get_uint(o, "id", 0) != id) {
                json_object_put(o);
                return -EBADMSG;
        }
        *s = (JobSpec){
                .id = id,
                .workers = (uint32_t) json_get_uint(o, "workers", 1),
                .batch_size = (uint32_t) json_get_uint(o, "batch_size", 1),
                .save_batch = (uint32_t) json_get_uint(o, "save_batch", 1),
                .timeout_sec = (uint32_t) MIN(json_get_uint(o, "timeout", 0), (uint64_t) 604800),
                .memory_max = json_get_uint(o, "memory_max", 0),
                .max_attempts = (uint32_t) MIN(MAX(json_get_uint(o, "max_attempts", 3), (uint64_t) 1), (uint64_t) 1000),
                .halt_failures = json_get_uint(o, "halt_failures", 0),
                .nul_separated = streq(json_get_str(o, "separator"), "nul"),
                .n_items = json_get_uint(o, "items", 0),
                .input_bytes = json_get_uint(o, "input_bytes", 0),
                .input_crc = (uint32_t) json_get_uint(o, "input_crc", 0),
                .uid = (uid_t) json_get_uint(o, "uid", 0),
                .gid = (gid_t) json_get_uint(o, "gid", 0),
                .created_usec = json_get_uint(o, "created_usec", 0),
        };
        sh = json_compact(json_get(o, "shared"), &len);
        if (json_get_str(o, "halt_on_failure") && dup_str(o, "halt_on_failure", &s->halt) < 0) {
                json_object_put(o);
                job_spec_done(s);
                return -ENOMEM;
        }
        if (!sh || !(s->shared_json = strdup(sh)) || dup_str(o, "name", &s->name) < 0 ||
            dup_str(o, "module", &s->module) < 0 || dup_str(o, "input", &s->input) < 0 ||
            dup_str(o, "output", &s->output) < 0) {
                json_object_put(o);
                job_spec_done(s);
                return -ENOMEM;
        }
        json_object_put(o);
        if (s->workers == 0 || s->batch_size == 0 || s->save_batch == 0)
                return -EBADMSG;
        return 0;
}

int store_write_state(Job *j) {
        json_object *o = json_object_new_object();
        const char *text;
        size_t len;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_str(o, "state", job_state_to_string(j->state))) < 0 ||
            (j->error && (r = json_add_str(o, "error", j->error)) < 0) ||
            (r = json_add_u64(o, "started_usec", j->started_usec)) < 0 ||
            (r = json_add_u64(o, "finished_usec", j->finished_usec)) < 0 ||
            (r = json_add_u64(o, "done", j->done)) < 0 || (r = json_add_u64(o, "failed", j->failed)) < 0 ||
            (r = json_add_u64(o, "results_len", j->results_len)) < 0 ||
            (r = json_add_u64(o, "results_gen", j->results_gen)) < 0 ||
            (r = json_add_u64(o, "prev_results_len", j->prev_results_len)) < 0) {
                json_object_put(o);
                return r;
        }
        text = json_compact(o, &len);
        r = text ? write_file_atomic_at(j->dirfd, "state.json", text, len, 0600) : -ENOMEM;
        json_object_put(o);
        return r;
}

static int load_state(Job *j) {
        static const JsonField fields[] = {
                { "state", JSON_KIND_STRING, true },      { "error", JSON_KIND_STRING, false },
                { "started_usec", JSON_KIND_UINT, false }, { "finished_usec", JSON_KIND_UINT, false },
                { "done", JSON_KIND_UINT, false },         { "failed", JSON_KIND_UINT, false },
                { "results_len", JSON_KIND_UINT, false },   { "results_gen", JSON_KIND_UINT, false },
                { "prev_results_len", JSON_KIND_UINT, false },
        };
        _cleanup_free_ char *text = NULL;
        json_object *o;
        JsonError err;
        const char *why, *e;
        size_t len;
        int r;

        r = read_file_at(j->dirfd, "state.json", JOB_JSON_MAX, &text, &len);
        if (r < 0)
                return r;
        o = json_parse_strict(text, len, VARLINK_JSON_DEPTH, &why);
        if (!o)
                return -EBADMSG;
        if (json_validate(o, fields, ELEMENTSOF(fields), &err) < 0 ||
            (j->state = job_state_from_string(json_get_str(o, "state"))) == _JOB_STATE_INVALID) {
                json_object_put(o);
                return -EBADMSG;
        }
        e = json_get_str(o, "error");
        if (e && !(j->error = strdup(e))) {
                json_object_put(o);
                return -ENOMEM;
        }
        j->started_usec = json_get_uint(o, "started_usec", 0);
        j->finished_usec = json_get_uint(o, "finished_usec", 0);
        j->done = json_get_uint(o, "done", 0);
        j->failed = json_get_uint(o, "failed", 0);
        j->results_len = json_get_uint(o, "results_len", 0);
        j->results_gen = (uint32_t) MIN(json_get_uint(o, "results_gen", 0), (uint64_t) UINT32_MAX);
        j->prev_results_len = json_get_uint(o, "prev_results_len", 0);
        json_object_put(o);
        return 0;
}

static int load_job(Manager *m, const char *name, uint64_t id) {
        Job *j;
        int r;

        j = job_new(m);
        if (!j)
                return log_oom();
        j->dirfd = openat(m->jobs_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (j->dirfd < 0) {
                r = log_error_errno(errno, "Cannot open job directory %s: %m", name);
                goto fail;
        }
        remove_stale_temp_files(j->dirfd);
        r = load_spec(j->dirfd, id, &j->spec);
        if (r < 0) {
                log_job_errno(LOG_ERR, r, id, "Cannot load job.json, skipping the job: %m");
                goto fail;
        }
        r = load_state(j);
        if (r < 0) {
                log_job_errno(LOG_ERR, r, id, "Cannot load state.json, skipping the job: %m");
                goto fail;
        }
        if (!job_state_is_final(j->state) && j->state != JOB_PAUSED) {
                /* Unfinished: recover its checkpoint now, so that status is
                 * right and a broken one is reported before it would run.
                 * A paused job stays paused until somebody resumes it. */
                r = job_load_checkpoint(j);
                if (r < 0) {
                        char msg[256];
                        (void) snprintf(msg, sizeof(msg), "checkpoint cannot be recovered: %s", strerror(-r));
                        (void) job_set_state(j, JOB_FAILED, msg);
                } else {
                        if (j->ckpt.torn_bytes > 0)
                                log_job(LOG_NOTICE, id, "Checkpoint log had a torn tail of %llu bytes, cut off.",
                                        (unsigned long long) j->ckpt.torn_bytes);
                        log_job(LOG_INFO, id, "Recovered: %llu of %llu items committed, will resume.",
                                (unsigned long long) j->done, (unsigned long long) j->spec.n_items);
                        j->state = JOB_QUEUED;
                }
        }
        r = manager_add_job(m, j);
        if (r < 0)
                goto fail;
        return 0;
fail:
        job_free(j);
        return r;
}

int store_load_jobs(Manager *m) {
        _cleanup_free_ char *text = NULL;
        DIR *d;
        struct dirent *de;
        uint64_t max_id = 0, saved;
        int r;

        d = fdopendir(dup(m->jobs_fd));
        if (!d)
                return log_error_errno(errno, "Cannot read jobs directory: %m");
        rewinddir(d);
        while ((errno = 0, de = readdir(d))) {
                uint64_t id;
                if (parse_u64(de->d_name, &id) < 0 || id == 0)
                        continue;
                /* Never hand out an id again, even one whose job is broken. */
                max_id = MAX(max_id, id);
                (void) load_job(m, de->d_name, id);
        }
        (void) closedir(d);
        m->next_id = max_id + 1;
        /* Removed jobs leave no directory behind; the counter remembers
         * their ids so that none is handed out twice. */
        r = read_file_at(m->state_fd, "next-id", 64, &text, NULL);
        if (r >= 0 && parse_u64(text, &saved) >= 0 && saved > m->next_id)
                m->next_id = saved;
        else if (r < 0 && r != -ENOENT)
                log_warning_errno(r, "Cannot read next-id, continuing from %llu: %m", (unsigned long long) m->next_id);
        return 0;
}

int store_write_next_id(Manager *m) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long) m->next_id);

        return write_file_atomic_at(m->state_fd, "next-id", buf, (size_t) n, 0600);
}

int store_remove_job(Manager *m, uint64_t id) {
        char name[32];
        int r;

        /* Once its directory is gone, only next-id remembers that this id
         * was used: write it first. */
        r = store_write_next_id(m);
        if (r < 0)
                return r;
        (void) snprintf(name, sizeof(name), "%llu", (unsigned long long) id);
        return rm_rf_at(m->jobs_fd, name);
}
