/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "mplockctl.h"

/* A job's results or log lives in its owner's directory, where the owner
 * can put anything under its name; mplockctl may run as root or as an
 * admin. So: no symlink, no FIFO or device (O_NONBLOCK, then checked), and
 * only the job owner's own regular file. */
int job_file_open(json_object *job, const char *path, int *ret_fd) {
        uint64_t owner = job_uint(job, "uid");
        struct stat st;
        int fd, r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return errno == ELOOP ? -EPERM : -errno; /* a symlink */
        if (fstat(fd, &st) < 0) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_uid != owner) {
                safe_close(fd);
                return -EPERM;
        }
        /* Reads block from here on: a regular file. */
        r = fd_set_blocking(fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

const char *job_file_error(int r) {
        return r == -EPERM ? "not a regular file of the job's owner" : strerror(-r);
}
