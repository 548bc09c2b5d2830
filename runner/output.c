/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "ipc.h"
#include "log.h"
#include "output.h"
#include "results.h"
#include "run-error.h"

void output_init(Output *o, const char *dir, uint64_t job_id) {
        *o = (Output){ .dir = dir, .job_id = job_id, .log_fd = -1, .results_fd = -1, .dir_fd = -1 };
}

void output_close(Output *o) {
        o->results_fd = safe_close(o->results_fd);
        o->log_fd = safe_close(o->log_fd);
        o->dir_fd = safe_close(o->dir_fd);
}

void output_path(const Output *o, const char *suffix, char *buf, size_t n) {
        (void) snprintf(buf, n, "%s/mplock-%llu%s", o->dir, (unsigned long long) o->job_id, suffix);
}

/* One of the job's files in its output directory, which may be shared
 * (group-writable, sticky) and hold anything another user put there under
 * the predictable name: made anew, or, if it exists, taken only when it is
 * the owner's own regular file with one link (this job's, from an earlier
 * run). Never a FIFO or a device: O_NONBLOCK, then checked before use. */
static int open_own_file(const char *path, int flags, RunError *e) {
        const int base = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
        struct stat st;
        int fd, r;

        fd = open(path, flags | base | O_CREAT | O_EXCL, 0666); /* less the submitter's umask */
        if (fd >= 0 || errno != EEXIST)
                goto done;
        fd = open(path, flags | base);
        if (fd < 0) {
                /* A FIFO without a reader (ENXIO), a symlink (ELOOP): not
                 * a file of the job's, and no use trying again. */
                r = -errno;
                if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
                        return run_error(e, IPC_FAIL_PERMANENT, -EEXIST,
                                         "%s exists and is not this job's (not a regular file): remove it, or "
                                         "use another output directory",
                                         path);
                errno = -r;
                goto done;
        }
        if (fstat(fd, &st) < 0) {
                r = -errno;
                safe_close(fd);
                return run_error(e, IPC_FAIL_TEMPORARY, r, "cannot stat %s: %s", path, strerror(-r));
        }
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) {
                safe_close(fd);
                return run_error(e, IPC_FAIL_PERMANENT, -EEXIST,
                                 "%s exists and is not this job's (%s): remove it, or use another output "
                                 "directory",
                                 path,
                                 !S_ISREG(st.st_mode)       ? "not a regular file"
                                 : st.st_uid != geteuid() ? "another user's file"
                                                          : "a file with other links");
        }
done:
        if (fd < 0)
                return run_error_io(e, -errno, "cannot open %s: %s", path, strerror(errno));
        /* Blocking from here: it is a regular file. */
        r = fd_set_blocking(fd);
        if (r < 0) {
                safe_close(fd);
                return run_error_io(e, r, "cannot use %s: %s", path, strerror(-r));
        }
        return fd;
}

int output_open_log(Output *o, RunError *e) {
        char path[OUTPUT_PATH_MAX];
        int r;

        /* Its parents too, as the check allowed: the submitter's umask. */
        r = mkdir_parents(o->dir, 0777);
        if (r < 0)
                return run_error_io(e, r, "cannot create the parents of output directory %s: %s", o->dir,
                                    strerror(-r));
        if (mkdir(o->dir, 0777) < 0 && errno != EEXIST)
                return run_error_io(e, -errno, "cannot create output directory %s: %s", o->dir, strerror(errno));
        o->dir_fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (o->dir_fd < 0)
                return run_error_io(e, -errno, "cannot open output directory %s: %s", o->dir, strerror(errno));
        output_path(o, ".log", path, sizeof(path));
        o->log_fd = open_own_file(path, O_WRONLY | O_APPEND, e);
        return o->log_fd < 0 ? o->log_fd : 0;
}

int output_open_results(Output *o, RunError *e) {
        char path[OUTPUT_PATH_MAX];

        output_path(o, ".results", path, sizeof(path));
        o->results_fd = open_own_file(path, O_RDWR, e);
        return o->results_fd < 0 ? o->results_fd : 0;
}

int64_t output_results_gen(int fd, uint64_t job_id) {
        ResultsFileHeader h;

        if (pread_full(fd, &h, sizeof(h), 0) != (ssize_t) sizeof(h) || results_file_header_check(&h) < 0 ||
            h.job_id != job_id)
                return -1;
        return h.gen;
}

/* Nothing committed: start the file afresh. */
static int results_fresh(Output *o, uint32_t gen, const char *path, uint64_t *ret_len, RunError *e) {
        ResultsFileHeader h;
        int r;

        results_file_header_init(&h, o->job_id, gen);
        r = ftruncate(o->results_fd, 0) < 0 ? -errno : pwrite_full(o->results_fd, &h, sizeof(h), 0);
        if (r < 0)
                return run_error_io(e, r, "cannot write %s: %s", path, strerror(-r));
        *ret_len = sizeof(h);
        return 0;
}

/* A file an earlier mplock began gets blocks of version 2 from us: its
 * header says so first, so that a reader of version 1 refuses the file
 * instead of taking the new blocks for damage. One sector, rewritten in
 * place: either header is valid, and the next commit syncs it. */
static int results_upgrade(Output *o, const char *path, RunError *e) {
        ResultsFileHeader h;
        int r;

        if (pread_full(o->results_fd, &h, sizeof(h), 0) != (ssize_t) sizeof(h))
                return run_error_io(e, -EIO, "cannot read %s", path);
        if (h.version == RESULTS_VERSION)
                return 0;
        results_file_header_init(&h, h.job_id, h.gen);
        r = pwrite_full(o->results_fd, &h, sizeof(h), 0);
        if (r < 0)
                return run_error_io(e, r, "cannot write %s: %s", path, strerror(-r));
        return 0;
}

/* The committed part must be there, and ours; the rest goes. */
static int results_cut(Output *o, uint32_t gen, uint64_t committed_len, const char *path, RunError *e) {
        struct stat st;
        int r;

        if (fstat(o->results_fd, &st) < 0)
                return run_error(e, IPC_FAIL_TEMPORARY, -errno, "cannot stat %s: %s", path, strerror(errno));
        if ((uint64_t) st.st_size < committed_len)
                return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG,
                                 "results file %s is shorter (%llu bytes) than what was committed (%llu bytes): it "
                                 "was truncated or replaced",
                                 path, (unsigned long long) st.st_size, (unsigned long long) committed_len);
        if (output_results_gen(o->results_fd, o->job_id) != (int64_t) gen)
                return run_error(e, IPC_FAIL_PERMANENT, -EBADMSG,
                                 "results file %s does not belong to job %llu (generation %u)", path,
                                 (unsigned long long) o->job_id, gen);
        r = results_upgrade(o, path, e);
        if (r < 0)
                return r;
        if ((uint64_t) st.st_size > committed_len) {
                output_log(o, LOG_INFO, "Cutting %llu uncommitted bytes off the results file.",
                           (unsigned long long) (st.st_size - (off_t) committed_len));
                if (ftruncate(o->results_fd, (off_t) committed_len) < 0)
                        return run_error_io(e, -errno, "cannot truncate %s: %s", path, strerror(errno));
        }
        return 0;
}

int output_prepare_results(Output *o, uint32_t gen, uint64_t committed_len, uint64_t *ret_len, RunError *e) {
        char path[OUTPUT_PATH_MAX];
        int r;

        output_path(o, ".results", path, sizeof(path));
        if (committed_len == 0) {
                r = results_fresh(o, gen, path, ret_len, e);
                o->results_name_unsynced = true;
        } else {
                r = results_cut(o, gen, committed_len, path, e);
                if (r >= 0)
                        *ret_len = committed_len;
        }
        return r;
}

void output_timestamp(char buf[static OUTPUT_TIMESTAMP_MAX]) {
        struct timespec ts;
        struct tm tm;
        char when[32] = "";

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        if (gmtime_r(&ts.tv_sec, &tm))
                (void) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        (void) snprintf(buf, OUTPUT_TIMESTAMP_MAX, "%s.%06ldZ", when, ts.tv_nsec / 1000);
}

/* A line in the job's log, with the time (UTC, microseconds): the log has
 * no other. */
static void log_line(const Output *o, const char *msg) {
        char when[OUTPUT_TIMESTAMP_MAX];

        if (o->log_fd < 0)
                return;
        output_timestamp(when);
        (void) dprintf(o->log_fd, "%s mplock: %s\n", when, msg);
}

void output_log(const Output *o, int level, const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_job(level, o->job_id, "%s", msg);
        /* And into the job's log, beside what the workers print. */
        log_line(o, msg);
}

void output_note(const Output *o, const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_line(o, msg);
}
