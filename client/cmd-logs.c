/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "varlink-names.h"

/* The job's log: what its workers printed and the runner's notices, from
 * OUTPUT/mplock-<id>.log (the caller's own file). With -f, keeps printing
 * what is added until the job has ended. Under systemd the same lines are
 * in the journal: journalctl MPLOCK_JOB=<id>. */

static int copy_new(int fd, off_t *off) {
        char buf[65536];

        for (;;) {
                ssize_t n = pread(fd, buf, sizeof(buf), *off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                if (write_full(STDOUT_FILENO, buf, (size_t) n) < 0)
                        return -EPIPE;
                *off += n;
        }
}

static int job_state(Ctl *c, uint64_t id, json_object **job) {
        json_object *p = json_object_new_object(), *reply;
        int r;

        if (!p || json_add_u64(p, "id", id) < 0) {
                json_object_put(p);
                return EXIT_ERROR;
        }
        r = ctl_call(c, MPLOCK_METHOD_STATUS, p, false, &reply, NULL);
        if (r == EXIT_OK)
                *job = json_get(reply, "job");
        return r;
}

int cmd_logs(Ctl *c, int argc, char **argv) {
        static const struct option options[] = {
                { "follow", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool follow = false;
        json_object *job;
        _cleanup_close_ int fd = -1;
        char path[4200];
        off_t off = 0;
        uint64_t id;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "fh", options, NULL)) >= 0)
                if (opt == 'f')
                        follow = true;
                else if (opt == 'h')
                        return help_command(c->command);
                else
                        return help_hint(c->command);
        r = job_operand(c, argc, argv, &id);
        if (r != EXIT_OK)
                return r;
        r = job_state(c, id, &job);
        if (r != EXIT_OK)
                return r;
        (void) snprintf(path, sizeof(path), "%s", job_str(job, "log_path"));

        for (;;) {
                bool done;

                if (fd < 0) {
                        r = job_file_open(job, path, &fd);
                        if (r < 0 && r != -ENOENT) {
                                fprintf(stderr, "mplockctl: cannot read %s: %s\n", path, job_file_error(r));
                                return EXIT_ERROR;
                        }
                }
                /* The state first: what the job wrote before it ended is
                 * all in the file by the time we read it below. */
                done = !follow || job_ended(job);
                if (fd >= 0 && copy_new(fd, &off) < 0)
                        return EXIT_ERROR;
                if (done)
                        break;
                (void) poll(NULL, 0, 200);
                r = job_state(c, id, &job);
                if (r != EXIT_OK)
                        return r;
        }
        if (fd < 0 && !follow)
                fprintf(stderr, "mplockctl: job %llu has no log yet\n", (unsigned long long) id);
        return EXIT_OK;
}
