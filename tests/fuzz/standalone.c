/* SPDX-License-Identifier: MIT */
/* A main() for the fuzz targets without libFuzzer: runs the target on every
 * file given (or in the directories given), so that the seed corpus is
 * replayed by every build's tests. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        char *buf = NULL;
        size_t len = 0;

        if (read_file_at(AT_FDCWD, path, 16u << 20, &buf, &len) < 0) {
                fprintf(stderr, "cannot read %s\n", path);
                return 1;
        }
        LLVMFuzzerTestOneInput((const uint8_t *) buf, len);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        unsigned n = 0, bad = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                DIR *d;
                struct dirent *de;

                if (stat(argv[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
                        bad += run_file(argv[i]);
                        n++;
                        continue;
                }
                d = opendir(argv[i]);
                while (d && (de = readdir(d))) {
                        char path[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                        bad += run_file(path);
                        n++;
                }
                if (d)
                        closedir(d);
        }
        printf("replayed %u inputs\nmplock-tests: %u passed, %u failed\n", n, n - bad, bad);
        return bad ? 1 : 0;
}
