/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "bytescan.h"
#include "check-cache.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "module.h"
#include "runner.h"

/* "mplock-runner check": run by mplockd for each submission, as the
 * submitting user, so that the daemon never opens a user's files itself.
 * It loads the module (ABI check), checks that the output directory can be
 * written, and sends the input list through the pipe on fd 4 with every
 * item NUL-terminated: mplockd writes the snapshot itself, so that no
 * process of the user's ever holds it. It writes one JSON report line to
 * fd 3. */

#define REPORT_FD 3
#define SNAPSHOT_FD 4

/* Where report() writes: fd 3 in the check, the pipe it was given when the
 * agent answers a check itself. */
static int report_fd = REPORT_FD;

static int report(bool ok, const char *parameter, const char *fmt, ...) _printf_(3, 4);
static int report(bool ok, const char *parameter, const char *fmt, ...) {
        json_object *o = json_object_new_object();
        char reason[1024] = "";
        const char *text;
        size_t len;
        va_list ap;

        if (fmt) {
                va_start(ap, fmt);
                (void) vsnprintf(reason, sizeof(reason), fmt, ap);
                va_end(ap);
        }
        if (!o)
                return -ENOMEM;
        (void) json_add(o, "ok", json_object_new_boolean(ok));
        if (parameter)
                (void) json_add_str(o, "parameter", parameter);
        if (fmt)
                (void) json_add_str(o, "reason", reason);
        text = json_compact(o, &len);
        if (text)
                (void) write_full(report_fd, text, len);
        json_object_put(o);
        return ok ? 0 : -EINVAL;
}

/* Kernel interfaces that take a mkdir or a write as a command, or refuse
 * them only once the job runs: never an output directory. */
static bool pseudo_fs(const char *path) {
        static const unsigned long magic[] = {
                0x9fa0,     /* proc */
                0x62656572, /* sysfs */
                0x27e0eb,   /* cgroup */
                0x63677270, /* cgroup2 */
                0x64626720, /* debugfs */
                0x74726163, /* tracefs */
                0x73636673, /* securityfs */
                0xcafe4a11, /* bpf */
                0x6165676c, /* pstore */
                0xde5e81e4, /* efivarfs */
                0x62656570, /* configfs */
                0x1cd1,     /* devpts */
                0x65735543, /* fusectl */
        };
        struct statfs sf;

        if (statfs(path, &sf) < 0)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(magic); i++)
                if ((unsigned long) sf.f_type == magic[i])
                        return true;
        return false;
}

/* The output directory, or the nearest of its ancestors that exists (the
 * runner makes the rest, with the submitter's umask): a directory the
 * submitter may write, on a file system that holds files. */
static int check_output(const char *output) {
        _cleanup_free_ char *dir = strdup(output);
        struct stat st;
        char *slash;

        if (!dir)
                return -ENOMEM;
        while (stat(dir, &st) < 0) {
                if (errno != ENOENT)
                        return report(false, "output", "%s: %s", dir, strerror(errno));
                slash = strrchr(dir, '/');
                if (!slash || slash == dir)
                        return report(false, "output", "cannot create %s: no directory above it exists", output);
                *slash = '\0';
        }
        if (!S_ISDIR(st.st_mode))
                return report(false, "output", "%s: %s is not a directory", output, dir);
        if (pseudo_fs(dir))
                return report(false, "output", "%s: %s is a kernel file system, not one for files", output, dir);
        if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) < 0)
                return report(false, "output", "cannot %s %s: %s", streq(dir, output) ? "write into" : "create",
                              streq(dir, output) ? output : dir, strerror(errno));
        return 0;
}

/* Copies input to the snapshot, turning separators into NULs and ending the
 * last item if it was not. Newline-separated lists cannot hold NUL bytes. */
static int copy_input(const char *input, bool nul, uint64_t max_bytes, uint64_t max_items, uint64_t *ret_items,
                      uint64_t *ret_bytes) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        const size_t bufsz = 1 << 20;
        uint64_t items = 0, total = 0;
        char last = '\0';
        struct stat st;
        int r;

        fd = open(input, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return report(false, "input", "cannot open %s: %s", input, strerror(errno));
        if (fstat(fd, &st) < 0)
                return report(false, "input", "cannot stat %s: %s", input, strerror(errno));
        if (S_ISDIR(st.st_mode))
                return report(false, "input", "%s is a directory", input);
        if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
                return report(false, "input", "%s is not a file or a pipe", input);
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > max_bytes)
                return report(false, "input", "%s is larger than the limit of %llu bytes", input,
                              (unsigned long long) max_bytes);
        buf = malloc(bufsz);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf, bufsz);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return report(false, "input", "cannot read %s: %s", input, strerror(errno));
                }
                if (n == 0)
                        break;
                if (!nul) {
                        char *z = memchr(buf, 0, (size_t) n);
                        if (z)
                                return report(false, "input",
                                              "%s holds a NUL byte at offset %llu; for a NUL-separated list use "
                                              "--null",
                                              input, (unsigned long long) (total + (uint64_t) (z - buf)));
                        items += bytes_replace(buf, (size_t) n, '\n', '\0');
                } else
                        items += bytes_count(buf, (size_t) n, 0);
                total += (uint64_t) n;
                last = buf[n - 1];
                if (total > max_bytes)
                        return report(false, "input", "%s is larger than the limit of %llu bytes", input,
                                      (unsigned long long) max_bytes);
                if (items > max_items)
                        return report(false, "input", "%s has more than the limit of %llu items", input,
                                      (unsigned long long) max_items);
                r = write_full(SNAPSHOT_FD, buf, (size_t) n);
                if (r < 0)
                        return report(false, "input", "cannot store the snapshot: %s", strerror(-r));
        }
        if (total > 0 && last != '\0') {
                /* An unterminated last item is still an item. */
                r = write_full(SNAPSHOT_FD, "", 1);
                if (r < 0)
                        return report(false, "input", "cannot store the snapshot: %s", strerror(-r));
                items++;
                total++;
                if (items > max_items || total > max_bytes)
                        return report(false, "input", "%s is over the limits", input);
        }
        *ret_items = items;
        *ret_bytes = total;
        return 0;
}

int check_parse_args(int argc, char **argv, CheckArgs *ret) {
        static const struct option options[] = {
                { "module", required_argument, NULL, 'm' },    { "output", required_argument, NULL, 'o' },
                { "input", required_argument, NULL, 'i' },     { "nul", no_argument, NULL, '0' },
                { "max-bytes", required_argument, NULL, 'b' }, { "max-items", required_argument, NULL, 'n' },
                {},
        };
        CheckArgs a = { .max_bytes = UINT64_MAX, .max_items = UINT64_MAX };
        int c;

        /* The agent parses too, and its children inherit getopt's state:
         * 0 starts it over. */
        optind = 0;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'm':
                        a.module = optarg;
                        break;
                case 'o':
                        a.output = optarg;
                        break;
                case 'i':
                        a.input = optarg;
                        break;
                case '0':
                        a.nul = true;
                        break;
                case 'b':
                        if (parse_u64(optarg, &a.max_bytes) < 0)
                                return -EINVAL;
                        break;
                case 'n':
                        if (parse_u64(optarg, &a.max_items) < 0)
                                return -EINVAL;
                        break;
                default:
                        return -EINVAL;
                }
        if (!a.module || !a.output || optind != argc)
                return -EINVAL;
        *ret = a;
        return 0;
}

/* stamp: the module's (check_file_stamp()), or NULL if it could not be
 * read (its run then checks nothing). */
static int report_ok(uint64_t items, uint64_t bytes, const char *stamp) {
        json_object *o = json_object_new_object();
        const char *text;
        size_t len;
        int r = -ENOMEM;

        if (o && json_add(o, "ok", json_object_new_boolean(1)) >= 0 && json_add_u64(o, "items", items) >= 0 &&
            json_add_u64(o, "bytes", bytes) >= 0 && (!stamp || json_add_str(o, "module_stamp", stamp) >= 0) &&
            (text = json_compact(o, &len)))
                r = write_full(report_fd, text, len);
        json_object_put(o);
        return r;
}

int check_known_module(int fd, const CheckArgs *a) {
        char stamp[CHECK_FILE_STAMP_MAX];
        int r;

        if (a->input)
                return -EINVAL; /* only a process copies an input file */
        report_fd = fd;
        r = check_output(a->output) < 0 ||
                            report_ok(0, 0, check_file_stamp(a->module, stamp) >= 0 ? stamp : NULL) < 0
                    ? 1
                    : 0;
        /* What the agent forks next must write to its own fd 3. */
        report_fd = REPORT_FD;
        return r;
}

int check_main(int argc, char **argv) {
        char err[1024], stamp[CHECK_FILE_STAMP_MAX];
        uint64_t items = 0, bytes = 0;
        bool stamped;
        CheckArgs a;
        Module mod;
        int r;

        report_fd = REPORT_FD;
        if (check_parse_args(argc, argv, &a) < 0)
                return 2;
        /* What is about to be loaded: a run loads only that. */
        stamped = check_file_stamp(a.module, stamp) >= 0;
        r = module_load(&mod, a.module, err, sizeof(err));
        if (r < 0) {
                (void) report(false, "module", "%s", err);
                return 1;
        }
        /* Loaded and its definition checked. Its constructors ran (dlopen
         * runs them), as the submitter: none of its callbacks are called. */
        module_unload(&mod);

        r = check_output(a.output);
        if (r < 0)
                return 1;
        if (a.input) {
                r = copy_input(a.input, a.nul, a.max_bytes, a.max_items, &items, &bytes);
                if (r < 0)
                        return 1;
        }
        return report_ok(items, bytes, stamped ? stamp : NULL) < 0 ? 1 : 0;
}
