/* SPDX-License-Identifier: MIT */
#include "paths.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

static int join(const char *a, const char *b, char **ret) {
        if (asprintf(ret, "%s/%s", a, b) < 0)
                return -ENOMEM;
        return 0;
}

static const char *first_dir(const char *env) {
        /* RUNTIME_DIRECTORY= may list several, colon-separated. */
        static char buf[4096];
        const char *colon;

        if (!env || env[0] != '/')
                return NULL;
        colon = strchr(env, ':');
        if (!colon)
                return env;
        (void) snprintf(buf, sizeof(buf), "%.*s", (int) (colon - env), env);
        return buf;
}

int paths_socket(bool system, char **ret) {
        const char *d;
        char buf[64];

        if (system)
                return join(MPLOCK_SYSTEM_RUNTIME_DIR, MPLOCK_SOCKET_NAME, ret);
        d = getenv("XDG_RUNTIME_DIR");
        if (!d || d[0] != '/') {
                (void) snprintf(buf, sizeof(buf), "/run/user/%u", (unsigned) getuid());
                if (access(buf, W_OK) < 0)
                        return -ENXIO;
                d = buf;
        }
        if (asprintf(ret, "%s/mplockd/%s", d, MPLOCK_SOCKET_NAME) < 0)
                return -ENOMEM;
        return 0;
}

int paths_user_state(const char *name, char **ret) {
        const char *d = getenv("XDG_STATE_HOME");

        if (d && d[0] == '/')
                return join(d, name, ret);
        d = getenv("HOME");
        if (!d || d[0] != '/') {
                struct passwd *pw = getpwuid(getuid());
                if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
                        return -ENXIO;
                d = pw->pw_dir;
        }
        if (asprintf(ret, "%s/.local/state/%s", d, name) < 0)
                return -ENOMEM;
        return 0;
}

int paths_state_dir(bool system, char **ret) {
        if (system)
                return (*ret = strdup(MPLOCK_SYSTEM_STATE_DIR)) ? 0 : -ENOMEM;
        return paths_user_state("mplockd", ret);
}

int paths_beside_self(const char *rel, int mode, char **ret) {
        char self[4096], *slash, *path;
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n <= 0)
                return -ENOENT;
        self[n] = '\0';
        slash = strrchr(self, '/');
        if (!slash)
                return -ENOENT;
        *slash = '\0';
        if (asprintf(&path, "%s/%s", self, rel) < 0)
                return -ENOMEM;
        if (access(path, mode) < 0) {
                free(path);
                return -ENOENT;
        }
        *ret = path;
        return 0;
}

int path_make_absolute(const char *path, char **ret) {
        _cleanup_free_ char *cwd = NULL, *joined = NULL;
        char *out, *o;
        const char *p;

        if (!path || !*path)
                return -EINVAL;
        if (path[0] != '/') {
                cwd = getcwd(NULL, 0);
                if (!cwd)
                        return -errno;
                if (asprintf(&joined, "%s/%s", cwd, path) < 0)
                        return -ENOMEM;
                path = joined;
        }
        out = malloc(strlen(path) + 2);
        if (!out)
                return -ENOMEM;
        o = out;
        for (p = path; *p;) {
                const char *e;
                size_t n;

                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                e = strchrnul(p, '/');
                n = (size_t) (e - p);
                if (n == 1 && p[0] == '.') {
                        /* skip */
                } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                        while (o > out && *--o != '/')
                                ;
                } else {
                        *o++ = '/';
                        memcpy(o, p, n);
                        o += n;
                }
                p = e;
        }
        if (o == out)
                *o++ = '/';
        *o = '\0';
        *ret = out;
        return 0;
}

const char *paths_systemd_dir(const char *env) {
        return first_dir(getenv(env));
}
