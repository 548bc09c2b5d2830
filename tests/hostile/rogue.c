/* SPDX-License-Identifier: MIT */
/* rogue: a module whose process misbehaves toward its own runner, for
 * test_workers.py. By item:
 *   "garbage"     writes bytes that are no protocol on every descriptor
 *                 from 3 to 9 (the worker's pipes among them)
 *   "killparent"  kill(getppid(), SIGKILL)
 *   "killgroup"   kill(0, SIGKILL)
 *   "killeveryone" kill(-1, SIGKILL)
 *   "stopparent"  kill(getppid(), SIGSTOP)
 *   "env"         the result is the worker's environment, "NAME=VALUE"
 *                 entries separated by newlines, then "cwd=" its working
 *                 directory
 * the result is "<item> errno=<errno of the call, 0 if it worked>"; any
 * other item is echoed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mplock/module.h>

extern char **environ;

static int result_of(mplock_results *res, size_t i, const char *item, int err) {
        char buf[96];
        int n = snprintf(buf, sizeof(buf), "%s errno=%d", item, err);

        mplock_result_set(res, i, buf, (size_t) n);
        return 0;
}

static int rogue_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                         mplock_results *res) {
        (void) ctx;
        (void) state;
        for (size_t i = 0; i < n; i++) {
                const char *it = items[i].data;
                int r = 0;

                if (strcmp(it, "garbage") == 0) {
                        static const char junk[] = "\xde\xad\xbe\xef not a frame at all, not a block either";
                        for (int fd = 3; fd < 10; fd++)
                                (void) write(fd, junk, sizeof(junk));
                } else if (strcmp(it, "killparent") == 0)
                        r = kill(getppid(), SIGKILL);
                else if (strcmp(it, "killgroup") == 0)
                        r = kill(0, SIGKILL);
                else if (strcmp(it, "killeveryone") == 0)
                        r = kill(-1, SIGKILL);
                else if (strcmp(it, "stopparent") == 0)
                        r = kill(getppid(), SIGSTOP);
                else if (strcmp(it, "env") == 0) {
                        char buf[8192];
                        size_t len = 0;
                        for (char **v = environ; v && *v; v++) {
                                int k = snprintf(buf + len, sizeof(buf) - len, "%s\n", *v);
                                if (k < 0 || (size_t) k >= sizeof(buf) - len)
                                        break;
                                len += (size_t) k;
                        }
                        if (len < sizeof(buf) - 5 && getcwd(buf + len + 4, sizeof(buf) - len - 4)) {
                                memcpy(buf + len, "cwd=", 4);
                                len += strlen(buf + len);
                        }
                        mplock_result_set(res, i, buf, len);
                        continue;
                }
                else {
                        mplock_result_set(res, i, it, items[i].len);
                        continue;
                }
                (void) result_of(res, i, it, r < 0 ? errno : 0);
        }
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "rogue", .process = rogue_process);
