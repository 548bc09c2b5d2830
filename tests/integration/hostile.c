/* SPDX-License-Identifier: MIT */
/* hostile: a module whose constructor attacks mplockd's state the way a
 * malicious user would, in every process that loads it (the submission
 * check and the job runner): it finds the descriptors it inherited that
 * lead into mplockd's state directory (a path with "/jobs/" in it) and
 * tries to write to them, grow them and cut them. It appends one line per
 * attempt to $MPLOCK_HOSTILE_LOG: "<pid> <fd> <target> write=<0|errno>
 * truncate=<0|errno>". process() echoes the item. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mplock/module.h>

static void attack(int fd, FILE *log) {
        char link[64], target[4096];
        ssize_t n;
        int w, t;

        (void) snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
                return;
        target[n] = '\0';
        if (!strstr(target, "/jobs/"))
                return;
        w = pwrite(fd, "hostile", 7, 0) == 7 ? 0 : errno;
        t = ftruncate(fd, (off_t) 64 << 20) == 0 ? 0 : errno;
        fprintf(log, "%d %d %s write=%d truncate=%d\n", (int) getpid(), fd, target, w, t);
}

__attribute__((constructor)) static void hostile_constructor(void) {
        const char *path = getenv("MPLOCK_HOSTILE_LOG");
        FILE *log;

        if (!path || !(log = fopen(path, "ae")))
                return;
        for (int fd = 3; fd < 256; fd++)
                attack(fd, log);
        fprintf(log, "%d done\n", (int) getpid());
        fclose(log);
}

static int hostile_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                           mplock_results *out) {
        (void) ctx;
        (void) state;
        for (size_t i = 0; i < n; i++)
                mplock_result_set(out, i, items[i].data, items[i].len);
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "hostile", .process = hostile_process);
