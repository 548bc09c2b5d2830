/* SPDX-License-Identifier: MIT */
#include "slurmopt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/* What the coordinator sets, or what would take the job out of its sight
 * or out of its owner's hands. */
static const char *const refused[] = {
        "array",   "job-name", "output", "error",     "input",   "parsable",     "wrap",
        "hold",    "chdir",    "export", "export-file", "uid",   "gid",          "get-user-env",
        "partition", "cpus-per-task", "test-only", "wait", "batch", "open-mode", "help", "usage", "version",
};

static bool name_ok(const char *w, size_t len) {
        if (len < 3 || w[0] != '-' || w[1] != '-' || !(w[2] >= 'a' && w[2] <= 'z'))
                return false;
        for (size_t i = 3; i < len; i++)
                if (!((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= '0' && w[i] <= '9') || w[i] == '-'))
                        return false;
        return true;
}

static bool is_refused(const char *name, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                if (strlen(refused[i]) == len && memcmp(refused[i], name, len) == 0)
                        return true;
        return false;
}

/* One word, w[0..len): 0 or -EINVAL. */
static int word_check(const char *w, size_t len, char *why, size_t why_len) {
        const char *eq = memchr(w, '=', len);
        size_t name_len = eq ? (size_t) (eq - w) : len;

        if (!name_ok(w, name_len)) {
                (void) snprintf(why, why_len, "\"%.*s\" is not an option of the form --name or --name=value",
                                (int) (len > 64 ? 64 : len), w);
                return -EINVAL;
        }
        if (is_refused(w + 2, name_len - 2)) {
                (void) snprintf(why, why_len, "%.*s is set by mplock itself (or would hide the array from it)",
                                (int) name_len, w);
                return -EINVAL;
        }
        for (size_t i = name_len; i < len; i++)
                if ((unsigned char) w[i] <= 0x20 || w[i] == 0x7f) {
                        (void) snprintf(why, why_len, "the value of %.*s has a control character", (int) name_len,
                                        w);
                        return -EINVAL;
                }
        return 0;
}

int slurm_options_check(const char *s, char *why, size_t why_len) {
        unsigned words = 0;

        while (*s) {
                size_t len;
                int r;

                if (*s == ' ') {
                        s++;
                        continue;
                }
                len = strcspn(s, " ");
                if (++words > SLURM_OPTS_WORDS_MAX) {
                        (void) snprintf(why, why_len, "more than %u options", SLURM_OPTS_WORDS_MAX);
                        return -EINVAL;
                }
                r = word_check(s, len, why, why_len);
                if (r < 0)
                        return r;
                s += len;
        }
        return 0;
}

void strv_free(char **v) {
        for (size_t i = 0; v && v[i]; i++)
                free(v[i]);
        free(v);
}

int slurm_options_split(const char *s, char ***ret) {
        char why[128];
        char **v;
        size_t n = 0;

        if (slurm_options_check(s, why, sizeof(why)) < 0)
                return -EINVAL;
        v = calloc(SLURM_OPTS_WORDS_MAX + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        while (*s) {
                size_t len;

                if (*s == ' ') {
                        s++;
                        continue;
                }
                len = strcspn(s, " ");
                v[n] = strndup(s, len);
                if (!v[n++]) {
                        strv_free(v);
                        return -ENOMEM;
                }
                s += len;
        }
        *ret = v;
        return 0;
}
