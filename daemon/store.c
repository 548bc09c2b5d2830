/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "ipc.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "stats.h"
#include "varlink.h"

#define JOB_JSON_MAX (4u * 1024u * 1024u)
#define JOB_JSON_VERSION 1

/* Opens a directory for reading its entries; the caller's fd stays its own. */
static DIR *opendir_at(int dirfd) {
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;

        if (fd < 0)
                return NULL;
        d = fdopendir(fd);
        if (!d)
                safe_close(fd);
        return d;
}

/* Temporary files of atomic writes a crash interrupted (".#name.XXXXXX"):
 * never renamed into place, so never part of the state. */
static void remove_stale_temp_files(int dirfd) {
        DIR *d = opendir_at(dirfd);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d)))
                if (has_prefix(de->d_name, ".#") && unlinkat(dirfd, de->d_name, 0) < 0)
                        log_warning_errno(errno, "Cannot remove stale %s: %m", de->d_name);
        (void) closedir(d);
}

/* Submissions cut short by a crash never got a reply, nor an id; spare
 * directories are made again. prefix: only the names that start so. */
static int remove_unfinished_submissions(int dirfd, const char *prefix) {
        DIR *d = opendir_at(dirfd);
        struct dirent *de;

        if (!d)
                return -errno;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") && has_prefix(de->d_name, prefix)) {
                        int r = rm_rf_at(dirfd, de->d_name);
                        if (r < 0)
                                log_warning_errno(r, "Cannot remove stale %s: %m", de->d_name);
                }
        (void) closedir(d);
        return 0;
}

static int open_subdir(int sfd, const char *state_dir, const char *name) {
        int fd;

        if (mkdirat(sfd, name, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create %s/%s: %m", state_dir, name);
        fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return log_error_errno(errno, "Cannot open %s/%s: %m", state_dir, name);
        return fd;
}

static int open_private_dir(const char *path) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        /* The parents as any directory, the state directory private. */
        r = mkdir_parents(path, 0755);
        if (r >= 0 && mkdir(path, 0700) < 0 && errno != EEXIST)
                r = -errno;
        if (r < 0)
                return log_error_errno(r, "Cannot create state directory %s: %m", path);
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Cannot open state directory %s: %m", path);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot stat %s: %m", path);
        if (st.st_uid != geteuid())
                return log_error_errno(EPERM, "State directory %s is not owned by us (uid %u).", path,
                                       (unsigned) st.st_uid);
        if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
                return log_error_errno(errno, "Cannot make %s private: %m", path);
        return TAKE_FD(fd);
}

int store_open(const char *state_dir, int *ret_state_fd, int *ret_jobs_fd, int *ret_new_fd) {
        _cleanup_close_ int sfd = -1, jfd = -1, nfd = -1;
        int r;

        sfd = open_private_dir(state_dir);
        if (sfd < 0)
                return sfd;
        jfd = open_subdir(sfd, state_dir, "jobs");
        if (jfd < 0)
                return jfd;
        nfd = open_subdir(sfd, state_dir, "new");
        if (nfd < 0)
                return nfd;
        r = remove_unfinished_submissions(jfd, STORE_NEW_PREFIX);
        if (r >= 0)
                r = remove_unfinished_submissions(nfd, "");
        if (r < 0)
                return log_error_errno(r, "Cannot clean up %s: %m", state_dir);
        remove_stale_temp_files(sfd);
        *ret_state_fd = TAKE_FD(sfd);
        *ret_jobs_fd = TAKE_FD(jfd);
        *ret_new_fd = TAKE_FD(nfd);
        return 0;
}

static int id_cmp(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

int store_list_jobs(int jobs_fd, uint64_t **ret_ids, size_t *ret_n) {
        _cleanup_free_ uint64_t *ids = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d = opendir_at(jobs_fd);
        int r = 0;

        if (!d)
                return -errno;
        while ((errno = 0, de = readdir(d))) {
                uint64_t id;
                if (parse_u64(de->d_name, &id) < 0 || id == 0)
                        continue;
                if (GREEDY_REALLOC(ids, cap, n + 1) < 0) {
                        r = -ENOMEM;
                        break;
                }
                ids[n++] = id;
        }
        if (r == 0 && errno != 0)
                r = -errno;
        (void) closedir(d);
        if (r < 0)
                return r;
        if (n > 0)
                qsort(ids, n, sizeof(*ids), id_cmp);
        *ret_ids = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

int store_open_job(int jobs_fd, uint64_t id) {
        char name[32];
        int fd;

        (void) snprintf(name, sizeof(name), "%llu", (unsigned long long) id);
        fd = openat(jobs_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        remove_stale_temp_files(fd);
        return fd;
}

static int write_json_atomic(int dirfd, const char *name, json_object *o) {
        size_t len;
        const char *text = json_compact(o, &len);

        return text ? write_file_atomic_at(dirfd, name, text, len, 0600) : -ENOMEM;
}

static json_object *spec_to_json(const JobSpec *spec) {
        json_object *o = json_object_new_object();

        if (o && (json_add_u64(o, "version", JOB_JSON_VERSION) < 0 ||
                  schema_to_json(&job_spec_schema, spec, SCHEMA_PERSIST, o) < 0)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

int store_write_spec(int dirfd, const JobSpec *spec) {
        json_object *o = spec_to_json(spec);
        int r = o ? write_json_atomic(dirfd, "job.json", o) : -ENOMEM;

        json_object_put(o);
        return r;
}

int store_spec_text(const JobSpec *spec, char **ret, size_t *ret_len) {
        json_object *o = spec_to_json(spec);
        const char *text = o ? json_compact(o, ret_len) : NULL;

        *ret = text ? strdup(text) : NULL;
        json_object_put(o);
        return *ret ? 0 : -ENOMEM;
}

/* name written with text in place: created, or empty before. */
static int write_in_place(int dirfd, const char *name, const void *text, size_t len, bool sync) {
        _cleanup_close_ int fd = -1;
        struct stat st;
        int r;

        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        r = fd < 0 ? -errno : fstat(fd, &st) < 0 ? -errno : st.st_size != 0 ? -EEXIST : 0;
        if (r >= 0)
                r = write_full(fd, text, len);
        if (r >= 0 && sync && fsync(fd) < 0)
                r = -errno;
        /* close() can report a delayed write error (NFS, quota). */
        if (r >= 0 && close(TAKE_FD(fd)) < 0)
                r = -errno;
        return r;
}

int store_create_spec_text(int dirfd, const char *text, size_t len, bool sync) {
        return write_in_place(dirfd, "job.json", text, len, sync);
}

int store_sync_job_files(int dirfd) {
        static const char *const names[] = { "input", "job.json" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_close_ int fd = openat(dirfd, names[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 || fsync(fd) < 0)
                        return -errno;
        }
        return fsync_dirfd(dirfd);
}

/* Whether dirfd/name holds exactly data. */
static bool holds(int dirfd, const char *name, const void *data, size_t len) {
        _cleanup_free_ char *text = NULL;
        size_t n;

        return read_file_at(dirfd, name, len, &text, &n) >= 0 && n == len && memcmp(text, data, len) == 0;
}

static int rewrite(int dirfd, const char *name, const void *data, size_t len) {
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        int r = fd < 0 ? -errno : write_full(fd, data, len);

        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        return r;
}

/* What a record says, into a directory of ours: input and job.json as
 * they must be, and a checkpoint log; 1 if anything had to be written. */
static int restore_files(int dirfd, const StoreRecord *rec) {
        bool changed = false;
        int r;

        if (!holds(dirfd, "input", rec->input, rec->input_len)) {
                r = rewrite(dirfd, "input", rec->input, rec->input_len);
                if (r < 0)
                        return r;
                changed = true;
        }
        if (!holds(dirfd, "job.json", rec->spec, rec->spec_len)) {
                r = rewrite(dirfd, "job.json", rec->spec, rec->spec_len);
                if (r < 0)
                        return r;
                changed = true;
        }
        if (faccessat(dirfd, rec->log_name, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT)
                        return -errno;
                r = rec->create_log(dirfd);
                if (r < 0)
                        return r;
                changed = true;
        }
        if (changed && fsync_dirfd(dirfd) < 0)
                return -errno;
        return changed;
}

int store_restore_job(int jobs_fd, int new_fd, const StoreRecord *rec) {
        char idname[32], name[STORE_NEW_NAME_MAX];
        _cleanup_close_ int dirfd = -1;
        int r;

        (void) snprintf(idname, sizeof(idname), "%llu", (unsigned long long) rec->id);
        dirfd = openat(jobs_fd, idname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dirfd >= 0)
                return restore_files(dirfd, rec);
        if (errno != ENOENT)
                return -errno;
        /* Its rename was lost: made again, whole, then published. */
        r = store_new_job_dir(new_fd, name, &dirfd);
        if (r < 0)
                return r;
        r = restore_files(dirfd, rec);
        if (r >= 0)
                r = store_publish_job_dir(new_fd, name, jobs_fd, rec->id, true);
        if (r < 0) {
                (void) store_remove_dir(new_fd, name);
                return r;
        }
        return 1;
}

static int read_json(int dirfd, const char *name, json_object **ret) {
        _cleanup_free_ char *text = NULL;
        const char *why;
        size_t len;
        int r;

        r = read_file_at(dirfd, name, JOB_JSON_MAX, &text, &len);
        if (r < 0)
                return r;
        *ret = json_parse_strict(text, len, VARLINK_JSON_DEPTH, &why);
        if (!*ret || !json_object_is_type(*ret, json_type_object)) {
                json_object_put(*ret);
                return -EBADMSG;
        }
        return 0;
}

/* One schema's fields and nothing else but `extra`: -EBADMSG otherwise. */
static int from_json_exactly(const Schema *s, void *obj, json_object *o, const char *const *extra) {
        const Schema *const list[] = { s };
        JsonError err;
        int r;

        if (schema_check_keys(o, list, 1, SCHEMA_PERSIST, extra, &err) < 0)
                return -EBADMSG;
        r = schema_from_json(s, obj, SCHEMA_PERSIST, o, &err);
        return r == -ENOMEM ? r : r < 0 ? -EBADMSG : 0;
}

int store_load_spec(int dirfd, uint64_t id, JobSpec *spec) {
        static const char *const extra[] = { "version", NULL };
        json_object *o;
        int r;

        r = read_json(dirfd, "job.json", &o);
        if (r < 0)
                return r;
        r = from_json_exactly(&job_spec_schema, spec, o, extra);
        if (r == 0 && (json_get_uint(o, "version", 0) != JOB_JSON_VERSION || spec->id != id))
                r = -EBADMSG;
        json_object_put(o);
        if (r < 0)
                job_spec_done(spec);
        return r;
}

int store_peek_uid(int dirfd, uint32_t *ret_uid) {
        json_object *o, *v;
        int64_t uid;
        int r;

        r = read_json(dirfd, "job.json", &o);
        if (r < 0)
                return r;
        v = json_get(o, "uid");
        uid = v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
        json_object_put(o);
        if (uid < 0 || uid >= (int64_t) UINT32_MAX)
                return -EBADMSG;
        *ret_uid = (uint32_t) uid;
        return 0;
}

int store_write_status(int dirfd, const JobStatus *st) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = store_render_status(st, &text, &len);

        return r < 0 ? r : store_write_status_text(dirfd, text, len);
}

int store_render_status(const JobStatus *st, char **ret, size_t *ret_len) {
        json_object *o = json_object_new_object();
        const char *text;
        int r;

        if (!o)
                return -ENOMEM;
        r = schema_to_json(&job_status_schema, st, SCHEMA_PERSIST, o);
        text = r >= 0 ? json_compact(o, ret_len) : NULL;
        *ret = text ? strdup(text) : NULL;
        json_object_put(o);
        return r < 0 ? r : *ret ? 0 : -ENOMEM;
}

int store_write_status_text(int dirfd, const void *text, size_t len) {
        return write_file_atomic_at(dirfd, "state.json", text, len, 0600);
}

int store_load_status(int dirfd, JobStatus *st) {
        json_object *o;
        int r;

        r = read_json(dirfd, "state.json", &o);
        if (r == -ENOENT) {
                *st = (JobStatus){ .state = JOB_QUEUED };
                return 0;
        }
        if (r < 0)
                return r;
        r = from_json_exactly(&job_status_schema, st, o, NULL);
        json_object_put(o);
        if (r < 0)
                job_status_done(st);
        return r;
}

int store_write_stats(int dirfd, const void *data, size_t len) {
        return write_file_atomic_at(dirfd, "stats", data, len, 0600);
}

int store_load_stats(int dirfd, void **ret, size_t *ret_len) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        r = read_file_at(dirfd, "stats", sizeof(IpcStats) + IPC_STATS_WORKERS_MAX * sizeof(IpcStatsWorker), &buf,
                         &len);
        if (r == -EFBIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        /* malloc'd: aligned for the IpcStats it holds. */
        r = stats_msg_check(buf, len);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int store_new_job_dir(int new_fd, char name[static STORE_NEW_NAME_MAX], int *ret_dirfd) {
        char rnd[12];
        int fd;

        random_suffix(rnd, sizeof(rnd));
        (void) snprintf(name, STORE_NEW_NAME_MAX, STORE_NEW_PREFIX "%s", rnd);
        if (mkdirat(new_fd, name, 0700) < 0) {
                name[0] = '\0';
                return -errno;
        }
        fd = openat(new_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                int r = -errno;
                (void) rm_rf_at(new_fd, name);
                name[0] = '\0';
                return r;
        }
        *ret_dirfd = fd;
        return 0;
}

int store_publish_job_dir(int new_fd, const char *name, int jobs_fd, uint64_t id, bool sync) {
        char idname[32];

        (void) snprintf(idname, sizeof(idname), "%llu", (unsigned long long) id);
        /* One rename, so one transaction on a journaling file system: the
         * directory is in jobs/ or still in new/, never in both. */
        if (renameat(new_fd, name, jobs_fd, idname) < 0)
                return -errno;
        return sync ? fsync_dirfd(jobs_fd) : 0;
}

int store_remove_dir(int new_fd, const char *name) {
        return rm_rf_at(new_fd, name);
}

int store_create_empty(int dirfd, const char *name) {
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0)
                return -errno;
        safe_close(fd);
        return 0;
}

int store_load_next_id(int state_fd, uint64_t *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_file_at(state_fd, "next-id", 64, &text, NULL);
        if (r == -ENOENT) {
                *ret = 0;
                return 0;
        }
        if (r < 0)
                return r;
        return parse_u64(text, ret) < 0 ? -EBADMSG : 0;
}

int store_write_next_id(int state_fd, uint64_t next) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long) next);

        return write_file_atomic_at(state_fd, "next-id", buf, (size_t) n, 0600);
}

int store_remove_job(int jobs_fd, uint64_t id) {
        char name[32];

        (void) snprintf(name, sizeof(name), "%llu", (unsigned long long) id);
        return rm_rf_at(jobs_fd, name);
}
