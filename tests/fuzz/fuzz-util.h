/* SPDX-License-Identifier: MIT */
#pragma once

/* Shared by the fuzz targets that need files: one scratch directory per
 * fuzzing process, under $TMPDIR, removed at exit. */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fileio.h"

static char fuzz_dir[4096];

static inline void fuzz_remove_dir(void) {
        (void) rm_rf_at(AT_FDCWD, fuzz_dir);
}

/* The directory, made on the first call (tag names it). */
static inline int fuzz_scratch_dir(const char *tag) {
        static int fd = -1;
        const char *tmp = getenv("TMPDIR");

        if (fd >= 0)
                return fd;
        snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/mplock-fuzz-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
        if (!mkdtemp(fuzz_dir))
                abort();
        /* libFuzzer ends with exit(): leave no directory per run behind. */
        (void) atexit(fuzz_remove_dir);
        fd = open(fuzz_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                abort();
        return fd;
}
