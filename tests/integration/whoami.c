/* SPDX-License-Identifier: MIT */
/* whoami: a test module whose result is the identity its worker runs with:
 * "uid=U gid=G groups=A,B,... nnp=0|1 capeff=HEX". For the item "forks" it
 * forks children until it cannot (then kills them) and answers "forks=N". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mplock/module.h>

static int cmp(const void *a, const void *b) {
        gid_t x = *(const gid_t *) a, y = *(const gid_t *) b;
        return x < y ? -1 : x > y;
}

static void cap_eff(char *buf, size_t n) {
        char line[256];
        FILE *f = fopen("/proc/self/status", "re");

        snprintf(buf, n, "?");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "CapEff:", 7) == 0) {
                        snprintf(buf, n, "%s", line + 7 + strspn(line + 7, " \t"));
                        buf[strcspn(buf, "\n")] = '\0';
                }
        fclose(f);
}

static int count_forks(void) {
        static pid_t kids[100000];
        int n = 0;

        while (n < 100000) {
                pid_t p = fork();
                if (p < 0)
                        break;
                if (p == 0) {
                        pause();
                        _exit(0);
                }
                kids[n++] = p;
        }
        for (int i = 0; i < n; i++) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], NULL, 0);
        }
        return n;
}

static int whoami_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                          mplock_results *out) {
        gid_t groups[256];
        char list[2048] = "", caps[64];
        int ng = getgroups(256, groups);
        size_t len = 0;

        (void) ctx;
        (void) state;
        if (ng < 0)
                ng = 0;
        qsort(groups, (size_t) ng, sizeof(gid_t), cmp);
        for (int i = 0; i < ng && len < sizeof(list) - 16; i++)
                len += (size_t) snprintf(list + len, sizeof(list) - len, "%s%u", i ? "," : "", (unsigned) groups[i]);
        cap_eff(caps, sizeof(caps));
        for (size_t i = 0; i < n; i++)
                if (strcmp(items[i].data, "forks") == 0)
                        mplock_result_printf(out, i, "forks=%d", count_forks());
                else
                        mplock_result_printf(out, i, "uid=%u gid=%u groups=%s nnp=%d capeff=%s", (unsigned) getuid(),
                                     (unsigned) getgid(), list, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), caps);
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "whoami", .process = whoami_process);
