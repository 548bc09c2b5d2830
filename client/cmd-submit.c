/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "parse.h"
#include "paths.h"
#include "varlink-names.h"

/* An input list on stdin goes to a file with no name, in the output
 * directory (which the submission's check, a process of the same user,
 * can reach whatever /tmp the service sees), and is read through
 * /proc/<our pid>/fd/<fd> while this process keeps it open. Snapshotted
 * by the submission, it is gone when we exit, however we exit: nothing
 * is left behind by a Ctrl-C or a kill -9. Where O_TMPFILE is not
 * supported, a named file is unlinked as soon as it is made. */
static int unnamed_file(const char *output) {
        char path[4200], sfx[12];
        int fd;

        fd = open(output, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
                return fd < 0 ? -errno : fd;
        for (int attempt = 0; attempt < 16; attempt++) {
                random_suffix(sfx, sizeof(sfx));
                (void) snprintf(path, sizeof(path), "%s/.mplock-stdin-%s", output, sfx);
                fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd >= 0) {
                        (void) unlink(path);
                        return fd;
                }
                if (errno != EEXIST)
                        break;
        }
        return -errno;
}

static int stdin_to_file(const char *output, char **ret_path, int *ret_fd) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        /* The caller's umask applies, as for the job's own directory. */
        if (mkdir(output, 0777) < 0 && errno != EEXIST) {
                fprintf(stderr, "mplockctl: cannot create %s: %s\n", output, strerror(errno));
                return -errno;
        }
        fd = unnamed_file(output);
        if (fd < 0) {
                fprintf(stderr, "mplockctl: cannot create a temporary file in %s: %s\n", output, strerror(-fd));
                return fd;
        }
        buf = malloc(1 << 20);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(STDIN_FILENO, buf, 1 << 20);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        fprintf(stderr, "mplockctl: cannot read stdin: %s\n", strerror(errno));
                        return r;
                }
                if (n == 0)
                        break;
                r = write_full(fd, buf, (size_t) n);
                if (r < 0) {
                        fprintf(stderr, "mplockctl: cannot write the copy of stdin in %s: %s\n", output,
                                strerror(-r));
                        return r;
                }
        }
        if (asprintf(ret_path, "/proc/%d/fd/%d", (int) getpid(), fd) < 0)
                return -ENOMEM;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static json_object *parse_shared(const char *arg) {
        _cleanup_free_ char *text = NULL;
        const char *why;
        size_t len;
        json_object *o;

        if (arg[0] == '@') {
                int r = read_file_at(AT_FDCWD, arg + 1, 64u << 20, &text, &len);
                if (r < 0) {
                        fprintf(stderr, "mplockctl: cannot read shared data from %s: %s\n", arg + 1, strerror(-r));
                        return NULL;
                }
                arg = text;
        } else
                len = strlen(arg);
        o = json_parse_strict(arg, len, 64, &why);
        if (!o) {
                fprintf(stderr, "mplockctl: --shared is not valid JSON: %s\n", why);
                return NULL;
        }
        if (!json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                fprintf(stderr, "mplockctl: --shared must be a JSON object, e.g. '{\"ms\": 5}'\n");
                return NULL;
        }
        return o;
}

static int uint_opt(const char *name, const char *v, uint64_t *ret) {
        if (parse_u64(v, ret) < 0 || *ret == 0 || *ret > UINT32_MAX) {
                fprintf(stderr, "mplockctl: --%s needs a positive number, not \"%s\"\n", name, v);
                return -EINVAL;
        }
        return 0;
}

int cmd_submit(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "module", required_argument, NULL, 'm' },     { "input", required_argument, NULL, 'i' },
                { "output", required_argument, NULL, 'o' },     { "workers", required_argument, NULL, 'w' },
                { "shared", required_argument, NULL, 's' },     { "save-batch", required_argument, NULL, 'S' },
                { "batch-size", required_argument, NULL, 'b' }, { "name", required_argument, NULL, 'n' },
                { "null", no_argument, NULL, '0' },             { "json", no_argument, NULL, 'j' },
                { "timeout", required_argument, NULL, 't' },
                { "memory-max", required_argument, NULL, 'M' },
                { "max-attempts", required_argument, NULL, 'A' },
                { "halt-on-failure", required_argument, NULL, 'H' },
                {},
        };
        _cleanup_free_ char *module = NULL, *input = NULL, *output = NULL;
        int stdin_fd = -1;
        const char *name = NULL, *input_arg = NULL, *halt = NULL;
        json_object *shared = NULL, *params, *reply;
        uint64_t workers = 0, save_batch = 0, batch_size = 0, timeout = UINT64_MAX, memory_max = UINT64_MAX,
                 attempts = 0;
        bool nul = false;
        mode_t caller_umask;
        int opt, r = EXIT_USAGE;

        while ((opt = getopt_long(argc, argv, "m:i:o:w:0", options, NULL)) >= 0)
                switch (opt) {
                case 'm':
                        free(module);
                        if (path_make_absolute(optarg, &module) < 0)
                                goto out;
                        break;
                case 'i':
                        input_arg = optarg;
                        break;
                case 'o':
                        free(output);
                        if (path_make_absolute(optarg, &output) < 0)
                                goto out;
                        break;
                case 'w':
                        if (uint_opt("workers", optarg, &workers) < 0)
                                goto out;
                        break;
                case 's':
                        json_object_put(shared);
                        shared = parse_shared(optarg);
                        if (!shared)
                                goto out;
                        break;
                case 'S':
                        if (uint_opt("save-batch", optarg, &save_batch) < 0)
                                goto out;
                        break;
                case 'b':
                        if (uint_opt("batch-size", optarg, &batch_size) < 0)
                                goto out;
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 'H':
                        halt = optarg; /* mplockd checks it: N or P% */
                        break;
                case 'A':
                        if (uint_opt("max-attempts", optarg, &attempts) < 0)
                                goto out;
                        break;
                case 'M':
                        if (parse_size(optarg, &memory_max) < 0) {
                                fprintf(stderr, "mplockctl: --memory-max needs bytes (K, M, G, T suffixes; 0 for none), not \"%s\"\n",
                                        optarg);
                                goto out;
                        }
                        break;
                case 't':
                        /* 0 is allowed here: no timeout, whatever the default. */
                        if (parse_u64(optarg, &timeout) < 0 || timeout > 604800) {
                                fprintf(stderr, "mplockctl: --timeout needs seconds (0 for none), not \"%s\"\n", optarg);
                                goto out;
                        }
                        break;
                case '0':
                        nul = true;
                        break;
                case 'j':
                        c->json = true;
                        break;
                default:
                        goto out;
                }
        if (optind < argc) {
                fprintf(stderr, "mplockctl submit: unexpected argument \"%s\"\n", argv[optind]);
                goto out;
        }
        if (!module || !input_arg || !output) {
                fprintf(stderr, "mplockctl submit: --module, --input and --output are required\n");
                goto out;
        }
        if (streq(input_arg, "-")) {
                if (stdin_to_file(output, &input, &stdin_fd) < 0) {
                        r = EXIT_ERROR;
                        goto out;
                }
        } else if (path_make_absolute(input_arg, &input) < 0)
                input = NULL;
        if (!input) {
                r = EXIT_ERROR;
                goto out;
        }

        /* The job makes its files as a command of the caller's would:
         * with the caller's umask (read by setting it, then back). */
        caller_umask = umask(022);
        umask(caller_umask);
        params = json_object_new_object();
        if (!params || json_add_str(params, "module", module) < 0 || json_add_str(params, "input", input) < 0 ||
            json_add_u64(params, "umask", (uint64_t) (caller_umask & 0777)) < 0 ||
            json_add_str(params, "output", output) < 0 ||
            (nul && json_add_str(params, "separator", "nul") < 0) ||
            (workers && json_add_u64(params, "workers", workers) < 0) ||
            (save_batch && json_add_u64(params, "save_batch", save_batch) < 0) ||
            (batch_size && json_add_u64(params, "batch_size", batch_size) < 0) ||
            (name && json_add_str(params, "name", name) < 0) ||
            (timeout != UINT64_MAX && json_add_u64(params, "timeout", timeout) < 0) ||
            (memory_max != UINT64_MAX && json_add_u64(params, "memory_max", memory_max) < 0) ||
            (attempts && json_add_u64(params, "max_attempts", attempts) < 0) ||
            (halt && json_add_str(params, "halt_on_failure", halt) < 0) ||
            (shared && json_add(params, "shared", TAKE_PTR(shared)) < 0)) {
                json_object_put(params);
                fprintf(stderr, "mplockctl: out of memory\n");
                r = EXIT_ERROR;
                goto out;
        }
        r = ctl_call(c, MPLOCK_METHOD_SUBMIT, params, false, &reply, NULL);
        if (r == EXIT_OK) {
                if (c->json)
                        print_json(reply);
                else
                        printf("%llu\n", (unsigned long long) json_get_uint(reply, "id", 0));
        }
out:
        /* Snapshotted (or refused): the copy of stdin goes with its fd. */
        safe_close(stdin_fd);
        json_object_put(shared);
        return r;
}
