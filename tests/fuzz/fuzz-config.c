/* SPDX-License-Identifier: MIT */
/* Fuzz target: the config file parser (an admin's file, but one that
 * must never crash the daemon at a reload). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[4096];

static void remove_file(void) {
        (void) unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Settings s;
        int fd;

        if (!path[0]) {
                const char *tmp = getenv("TMPDIR");
                snprintf(path, sizeof(path), "%s/mplock-fuzz-conf-%d", tmp && *tmp ? tmp : "/tmp", (int) getpid());
                /* libFuzzer ends with exit(): leave no file per run behind. */
                (void) atexit(remove_file);
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write_full(fd, data, size) < 0)
                abort();
        close(fd);
        settings_defaults(&s);
        (void) settings_load_file(&s, path, 0);
        if (s.max_workers == 0 || s.max_attempts == 0)
                abort(); /* ranges are enforced */
        return 0;
}
