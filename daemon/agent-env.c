/* SPDX-License-Identifier: MIT */
#include "agent-env.h"

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"

extern char **environ;

/* At most this many variables: a PASS_ENV list cannot grow it without end. */
#define AGENT_ENV_MAX 64

static const char *const passed[] = {
        "LANG", "LANGUAGE", "TZ", "JOURNAL_STREAM", "MPLOCK_LOG_LEVEL", "ASAN_OPTIONS", "UBSAN_OPTIONS",
        "LSAN_OPTIONS",
};

typedef struct EnvVec {
        char *v[AGENT_ENV_MAX + 1];
        size_t n;
} EnvVec;

static int env_add(EnvVec *e, const char *key, const char *value) {
        if (e->n >= AGENT_ENV_MAX)
                return 0; /* enough: the rest is left out */
        if (asprintf(&e->v[e->n], "%s=%s", key, value) < 0)
                return -ENOMEM;
        e->n++;
        return 0;
}

/* Whether NAME is in list (names separated by ':' or ' '). */
static bool listed(const char *list, const char *name, size_t len) {
        for (const char *p = list; p && *p;) {
                size_t n = strcspn(p, ": ");
                if (n == len && strncmp(p, name, len) == 0)
                        return true;
                p += n;
                p += strspn(p, ": ");
        }
        return false;
}

static bool wanted(const char *entry, uid_t uid, const char *pass_list) {
        size_t len = strcspn(entry, "=");

        if (entry[len] != '=')
                return false;
        for (size_t i = 0; i < ELEMENTSOF(passed); i++)
                if (strlen(passed[i]) == len && strncmp(entry, passed[i], len) == 0)
                        return true;
        if (len > 3 && strncmp(entry, "LC_", 3) == 0)
                return true;
        /* A user instance's runtime directory is its user's own. */
        if (len == 15 && strncmp(entry, "XDG_RUNTIME_DIR", 15) == 0 && uid == geteuid())
                return true;
        /* Never what would undo the above or the identity. */
        if ((len == 4 && (strncmp(entry, "PATH", 4) == 0 || strncmp(entry, "HOME", 4) == 0 ||
                          strncmp(entry, "USER", 4) == 0)) ||
            (len == 5 && strncmp(entry, "SHELL", 5) == 0) || (len == 7 && strncmp(entry, "LOGNAME", 7) == 0))
                return false;
        return listed(pass_list, entry, len);
}

int agent_env_build(uid_t uid, char ***ret) {
        const char *pass_list = getenv("MPLOCKD_PASS_ENV");
        char buf[4096], name[32];
        struct passwd pw, *p = NULL;
        EnvVec *e = calloc(1, sizeof(*e));
        int r;

        if (!e)
                return -ENOMEM;
        (void) getpwuid_r(uid, &pw, buf, sizeof(buf), &p);
        (void) snprintf(name, sizeof(name), "%u", (unsigned) uid);
        r = env_add(e, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        if (r >= 0)
                r = env_add(e, "HOME", p && p->pw_dir && p->pw_dir[0] == '/' ? p->pw_dir : "/");
        if (r >= 0)
                r = env_add(e, "USER", p ? p->pw_name : name);
        if (r >= 0)
                r = env_add(e, "LOGNAME", p ? p->pw_name : name);
        if (r >= 0)
                r = env_add(e, "SHELL", p && p->pw_shell && p->pw_shell[0] == '/' ? p->pw_shell : "/bin/sh");
        for (char **v = environ; r >= 0 && v && *v; v++)
                if (wanted(*v, uid, pass_list) && e->n < AGENT_ENV_MAX) {
                        e->v[e->n] = strdup(*v);
                        r = e->v[e->n] ? 0 : -ENOMEM;
                        if (r >= 0)
                                e->n++;
                }
        if (r < 0) {
                (void) agent_env_free(e->v);
                return r;
        }
        e->v[e->n] = NULL;
        *ret = e->v; /* the vector is the struct's first member */
        return 0;
}

char **agent_env_free(char **env) {
        if (!env)
                return NULL;
        for (char **v = env; *v; v++)
                free(*v);
        free(env); /* the EnvVec it heads */
        return NULL;
}
