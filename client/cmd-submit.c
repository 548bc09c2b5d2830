/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

#ifndef EXEC_MODULE_PATH
#define EXEC_MODULE_PATH "/usr/lib/mplock/mplock-exec.so"
#endif

/* The command adapter: exec/ beside us in a build tree, else installed. */
static char *exec_module(void) {
        char *path = NULL;
        int r = paths_beside_self("exec/mplock-exec.so", R_OK, &path);

        return r >= 0 ? path : r == -ENOMEM ? NULL : strdup(EXEC_MODULE_PATH);
}

/* --exec: the adapter's shared data, with the caller's directory and
 * environment (applied to the commands only, never to the runner). */
static json_object *exec_shared(const char *command, uint64_t max_output, uint64_t timeout) {
        extern char **environ;
        json_object *o = json_object_new_object(), *e, *env;
        char cwd[4096];

        if (!getcwd(cwd, sizeof(cwd))) {
                fprintf(stderr, "mplockctl: cannot tell the working directory: %s\n", strerror(errno));
                goto fail;
        }
        /* Each object into its parent as soon as it is made: o owns them
         * all, and one put frees everything on any failure. */
        if (!o || json_add(o, "exec", json_object_new_object()) < 0 || !(e = json_get(o, "exec")) ||
            json_add(e, "env", json_object_new_array()) < 0 || !(env = json_get(e, "env")))
                goto fail;
        for (char **v = environ; *v; v++)
                if (json_object_array_add(env, json_object_new_string(*v)) < 0)
                        goto fail;
        if (json_add_str(e, "command", command) < 0 || json_add_str(e, "cwd", cwd) < 0 ||
            (max_output && json_add_u64(e, "max_output", max_output) < 0) ||
            (timeout && timeout != UINT64_MAX && json_add_u64(e, "timeout", timeout) < 0))
                goto fail;
        return o;
fail:
        json_object_put(o);
        return NULL;
}

/* Items after ":::", as GNU parallel takes them. */
static json_object *inline_items(int argc, char **argv) {
        json_object *a = json_object_new_array();

        for (int i = 0; a && i < argc; i++)
                if (json_object_array_add(a, json_object_new_string(argv[i])) < 0) {
                        json_object_put(a);
                        return NULL;
                }
        return a;
}

/* An output directory of its own for a job given none (--exec ::: ...). */
static int default_output(char **ret) {
        char name[64];

        (void) snprintf(name, sizeof(name), "mplock/exec-%lld-%d", (long long) time(NULL), (int) getpid());
        return paths_user_state(name, ret);
}

static int uint_opt(const char *name, const char *v, uint64_t *ret) {
        if (parse_u64(v, ret) < 0 || *ret == 0 || *ret > UINT32_MAX) {
                fprintf(stderr, "mplockctl: --%s needs a positive number, not \"%s\"\n", name, v);
                return -EINVAL;
        }
        return 0;
}

/* The job scope's limits (docs/systemd.md): the Submit field of each
 * option, 0 when not given (mplockd checks the bounds). */
enum { OPT_TASKS_MAX = 0x100, OPT_CPU_WEIGHT, OPT_CPU_QUOTA, OPT_IO_WEIGHT, OPT_MAX_ITEMS_PER_WORKER,
       OPT_MAX_WORKER_MEMORY, OPT_SLURM, OPT_PARTITION, OPT_SHARDS, OPT_SLURM_OPT, OPT_ON_END,
       OPT_REUSE };
static const char *const scope_fields[] = { "tasks_max", "cpu_weight", "cpu_quota", "io_weight" };

static int scope_opt(int opt, const char *v, uint64_t limits[4]) {
        char buf[32];
        size_t n = strlen(v);

        /* --cpu-quota 150%: the percent sign is optional. */
        if (opt == OPT_CPU_QUOTA && n > 1 && n < sizeof(buf) && v[n - 1] == '%') {
                memcpy(buf, v, n - 1);
                buf[n - 1] = '\0';
                v = buf;
        }
        return uint_opt(opt == OPT_TASKS_MAX ? "tasks-max" : opt == OPT_CPU_WEIGHT ? "cpu-weight"
                        : opt == OPT_CPU_QUOTA ? "cpu-quota" : "io-weight", v, &limits[opt - OPT_TASKS_MAX]);
}

static int add_scope_limits(json_object *params, const uint64_t limits[4]) {
        for (size_t i = 0; i < 4; i++)
                if (limits[i] && json_add_u64(params, scope_fields[i], limits[i]) < 0)
                        return -ENOMEM;
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
                { "exec", required_argument, NULL, 'E' },
                { "max-output", required_argument, NULL, 'O' },
                { "wait", no_argument, NULL, 'W' },
                { "tasks-max", required_argument, NULL, OPT_TASKS_MAX },
                { "cpu-weight", required_argument, NULL, OPT_CPU_WEIGHT },
                { "cpu-quota", required_argument, NULL, OPT_CPU_QUOTA },
                { "io-weight", required_argument, NULL, OPT_IO_WEIGHT },
                { "max-items-per-worker", required_argument, NULL, OPT_MAX_ITEMS_PER_WORKER },
                { "max-worker-memory", required_argument, NULL, OPT_MAX_WORKER_MEMORY },
                { "slurm", no_argument, NULL, OPT_SLURM },
                { "partition", required_argument, NULL, OPT_PARTITION },
                { "shards", required_argument, NULL, OPT_SHARDS },
                { "slurm-opt", required_argument, NULL, OPT_SLURM_OPT },
                { "on-end", required_argument, NULL, OPT_ON_END },
                { "reuse", required_argument, NULL, OPT_REUSE },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        _cleanup_free_ char *module = NULL, *input = NULL, *output = NULL;
        int stdin_fd = -1;
        const char *name = NULL, *input_arg = NULL, *halt = NULL, *exec_cmd = NULL, *partition = NULL,
                   *on_end = NULL;
        char slurm_opts[1100] = "";
        uint64_t shards = 0;
        bool slurm = false;
        json_object *shared = NULL, *items = NULL, *params, *reply;
        uint64_t workers = 0, save_batch = 0, batch_size = 0, timeout = UINT64_MAX, memory_max = UINT64_MAX,
                 attempts = 0, max_output = 0, job_id = 0, limits[4] = {}, recycle_items = 0, recycle_memory = 0,
                 reuse = 0;
        bool nul = false, wait_end = false;
        mode_t caller_umask;
        int opt, r = EXIT_USAGE;

        /* "+": options end at ":::", after which everything is an item,
         * "-n" and "--help" too. */
        while ((opt = getopt_long(argc, argv, "+m:i:o:w:0h", options, NULL)) >= 0)
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
                case 'E':
                        exec_cmd = optarg;
                        break;
                case 'O':
                        if (parse_size(optarg, &max_output) < 0 || max_output == 0) {
                                fprintf(stderr, "mplockctl: --max-output needs bytes (K, M suffixes), not \"%s\"\n",
                                        optarg);
                                goto out;
                        }
                        break;
                case 'W':
                        wait_end = true;
                        break;
                case OPT_TASKS_MAX:
                case OPT_CPU_WEIGHT:
                case OPT_CPU_QUOTA:
                case OPT_IO_WEIGHT:
                        if (scope_opt(opt, optarg, limits) < 0)
                                goto out;
                        break;
                case OPT_MAX_ITEMS_PER_WORKER:
                        if (parse_u64(optarg, &recycle_items) < 0 || recycle_items == 0) {
                                fprintf(stderr, "mplockctl: --max-items-per-worker needs a positive number, not \"%s\"\n",
                                        optarg);
                                goto out;
                        }
                        break;
                case OPT_MAX_WORKER_MEMORY:
                        if (parse_size(optarg, &recycle_memory) < 0 || recycle_memory == 0) {
                                fprintf(stderr, "mplockctl: --max-worker-memory needs bytes (K, M, G suffixes), not "
                                                "\"%s\"\n", optarg);
                                goto out;
                        }
                        break;
                case OPT_SLURM:
                        slurm = true;
                        break;
                case OPT_PARTITION:
                        partition = optarg;
                        break;
                case OPT_SHARDS:
                        if (uint_opt("shards", optarg, &shards) < 0)
                                goto out;
                        break;
                case OPT_SLURM_OPT:
                        /* Given more than once: all of them (mplockd checks each). */
                        if (strlen(slurm_opts) + strlen(optarg) + 2 > sizeof(slurm_opts)) {
                                fprintf(stderr, "mplockctl: --slurm-opt: too long in all\n");
                                goto out;
                        }
                        if (slurm_opts[0])
                                strcat(slurm_opts, " ");
                        strcat(slurm_opts, optarg);
                        break;
                case OPT_ON_END:
                        on_end = optarg; /* mplockd checks it */
                        break;
                case OPT_REUSE:
                        if (parse_job_id(optarg, &reuse) < 0)
                                goto out;
                        break;
                case 'h':
                        r = help_command(c->command);
                        goto out;
                default:
                        r = help_hint(c->command);
                        goto out;
                }
        if ((partition || shards || slurm_opts[0]) && !slurm) {
                fprintf(stderr, "mplockctl submit: --partition, --shards and --slurm-opt are for --slurm\n");
                goto out;
        }
        if (optind < argc && streq(argv[optind], ":::")) {
                items = inline_items(argc - optind - 1, argv + optind + 1);
                if (!items || argc - optind - 1 == 0) {
                        fprintf(stderr, "mplockctl submit: no items after :::\n");
                        goto out;
                }
                optind = argc;
        }
        if (optind < argc) {
                fprintf(stderr, "mplockctl submit: unexpected argument \"%s\"\n", argv[optind]);
                r = help_hint(c->command);
                goto out;
        }
        if (exec_cmd) {
                if (module || shared) {
                        fprintf(stderr, "mplockctl submit: --exec runs mplock's command adapter: no --module or "
                                        "--shared with it\n");
                        goto out;
                }
                module = exec_module();
                shared = exec_shared(exec_cmd, max_output, timeout);
                if (!module || !shared) {
                        r = EXIT_ERROR;
                        goto out;
                }
                /* The adapter's own timeout kills the command's group;
                 * the job's, a little later, is for the adapter itself. */
                if (timeout != UINT64_MAX && timeout > 0)
                        timeout += 10;
        } else if (max_output) {
                fprintf(stderr, "mplockctl submit: --max-output is for --exec\n");
                goto out;
        }
        if (!output && items && exec_cmd && default_output(&output) < 0) {
                fprintf(stderr, "mplockctl submit: give --output (no $HOME for a default)\n");
                goto out;
        }
        if (!module || (!input_arg == !items) || !output) {
                fprintf(stderr, "mplockctl submit: --module (or --exec), --input (or ::: ITEMS) and --output are "
                                "required\n");
                r = help_hint(c->command);
                goto out;
        }
        if (items)
                ; /* sent in the call */
        else if (streq(input_arg, "-")) {
                if (stdin_to_file(output, &input, &stdin_fd) < 0) {
                        r = EXIT_ERROR;
                        goto out;
                }
        } else if (path_make_absolute(input_arg, &input) < 0)
                input = NULL;
        if (!items && !input) {
                r = EXIT_ERROR;
                goto out;
        }

        /* The job makes its files as a command of the caller's would:
         * with the caller's umask (read by setting it, then back). */
        caller_umask = umask(022);
        umask(caller_umask);
        params = json_object_new_object();
        if (!params || json_add_str(params, "module", module) < 0 ||
            (input && json_add_str(params, "input", input) < 0) ||
            (items && json_add(params, "items", TAKE_PTR(items)) < 0) ||
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
            add_scope_limits(params, limits) < 0 ||
            (recycle_items && json_add_u64(params, "max_items_per_worker", recycle_items) < 0) ||
            (recycle_memory && json_add_u64(params, "max_worker_memory", recycle_memory) < 0) ||
            (slurm && json_add(params, "slurm", json_object_new_boolean(true)) < 0) ||
            (partition && json_add_str(params, "partition", partition) < 0) ||
            (shards && json_add_u64(params, "shards", shards) < 0) ||
            (slurm_opts[0] && json_add_str(params, "slurm_options", slurm_opts) < 0) ||
            (on_end && json_add_str(params, "on_end", on_end) < 0) ||
            (reuse && json_add_u64(params, "reuse", reuse) < 0) ||
            (shared && json_add(params, "shared", TAKE_PTR(shared)) < 0)) {
                json_object_put(params);
                fprintf(stderr, "mplockctl: out of memory\n");
                r = EXIT_ERROR;
                goto out;
        }
        r = ctl_call(c, MPLOCK_METHOD_SUBMIT, params, false, &reply, NULL);
        if (r == EXIT_OK) {
                job_id = json_get_uint(reply, "id", 0);
                if (c->json)
                        print_json(reply);
                else
                        printf("%llu\n", (unsigned long long) job_id);
                fflush(stdout);
        }
        if (r == EXIT_OK && wait_end) {
                /* Followed to its end, with wait's exit codes. */
                char id[32], watch[] = "watch";
                char *wargv[] = { watch, id, NULL };
                (void) snprintf(id, sizeof(id), "%llu", (unsigned long long) job_id);
                optind = 0;
                r = cmd_watch(c, 2, wargv);
        }
out:
        /* Snapshotted (or refused): the copy of stdin goes with its fd. */
        safe_close(stdin_fd);
        json_object_put(shared);
        json_object_put(items);
        return r;
}
