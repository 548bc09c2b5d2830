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

/* v has room for AGENT_ENV_MAX and the NULL; *n are set. */
static int env_add(char **v, size_t *n, char *entry) {
        if (!entry)
                return -ENOMEM;
        if (*n >= AGENT_ENV_MAX) {
                free(entry); /* enough: the rest is left out */
                return 0;
        }
        v[(*n)++] = entry;
        return 0;
}

static char *env_entry(const char *key, const char *value) {
        char *e;

        return asprintf(&e, "%s=%s", key, value) < 0 ? NULL : e;
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
        char **v = calloc(AGENT_ENV_MAX + 1, sizeof(*v));
        size_t n = 0;
        int r;

        if (!v)
                return -ENOMEM;
        (void) getpwuid_r(uid, &pw, buf, sizeof(buf), &p);
        (void) snprintf(name, sizeof(name), "%u", (unsigned) uid);
        r = env_add(v, &n, env_entry("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        if (r >= 0)
                r = env_add(v, &n, env_entry("HOME", p && p->pw_dir && p->pw_dir[0] == '/' ? p->pw_dir : "/"));
        if (r >= 0)
                r = env_add(v, &n, env_entry("USER", p ? p->pw_name : name));
        if (r >= 0)
                r = env_add(v, &n, env_entry("LOGNAME", p ? p->pw_name : name));
        if (r >= 0)
                r = env_add(v, &n,
                            env_entry("SHELL", p && p->pw_shell && p->pw_shell[0] == '/' ? p->pw_shell : "/bin/sh"));
        for (char **e = environ; r >= 0 && e && *e; e++)
                if (wanted(*e, uid, pass_list))
                        r = env_add(v, &n, strdup(*e));
        if (r < 0) {
                (void) agent_env_free(v);
                return r;
        }
        *ret = v;
        return 0;
}

char **agent_env_free(char **env) {
        if (!env)
                return NULL;
        for (char **v = env; *v; v++)
                free(*v);
        free(env);
        return NULL;
}
