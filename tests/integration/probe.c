/* SPDX-License-Identifier: MIT */
/* probe: a test module that reports what it sees, so tests can check that
 * init, shared data, batches, fini and save behave as documented.
 *   result   "tag=<shared tag>|worker=<n>|pid=<pid>|inits=<init calls in
 *            this process>|batch=<n items in this call>|first=<index of the
 *            call's first item>|item=<item>"
 *   init     fails with -EINVAL when shared "fail_init" is true
 *   fini     creates OUTPUT/probe-fini.<pid>
 *   leak     with shared "leak_kb" N, process allocates and touches N KiB
 *            per item and never frees them (a module that leaks)
 *   print    with shared "print" true, process prints "probe out <item>"
 *            on stdout and "probe err <item>" on stderr
 *   return   with shared "return" N, process returns N and sets results
 *            for the items of even index only
 *   runs     with shared "count_runs" true, each call appends a byte per
 *            item to OUTPUT/probe-run.<index> (how many times it ran); with
 *            "fail_times" N too, an item fails (code 503) while it has run
 *            N times or fewer
 *   fail:N   an item whose text is "fail:N" always fails with code N
 *   save     appends "index<TAB>status<TAB>item<TAB>result" lines to
 *            OUTPUT/probe.saved, under a non-blocking flock: a second save
 *            running at the same time fails the job. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <mplock/module.h>

static int inits;

typedef struct {
        const char *tag;
        unsigned worker;
} Probe;

static int probe_init(const mplock_ctx *ctx, void **state) {
        Probe *p = calloc(1, sizeof(*p));
        int fail = 0;

        if (!p)
                return -ENOMEM;
        (void) ctx->api->shared_bool(ctx, "fail_init", &fail);
        if (fail) {
                free(p);
                return -EINVAL;
        }
        if (ctx->api->shared_string(ctx, "tag", &p->tag) < 0)
                p->tag = "(none)";
        p->worker = ctx->worker;
        inits++;
        *state = p;
        return 0;
}

/* One more run of index, counted in its file: how many it has had. */
static long count_run(const mplock_ctx *ctx, uint64_t index) {
        char path[4096];
        off_t size;
        int fd;

        snprintf(path, sizeof(path), "%s/probe-run.%llu", ctx->output_dir, (unsigned long long) index);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return -1;
        if (write(fd, "x", 1) != 1) {
                close(fd);
                return -1;
        }
        size = lseek(fd, 0, SEEK_END);
        close(fd);
        return (long) size;
}

static int probe_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                         mplock_results *out) {
        const Probe *p = state;
        int64_t ms = 0;

        (void) ctx->api->shared_int(ctx, "sleep_ms", &ms);
        if (ms > 0) {
                struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
                nanosleep(&ts, NULL);
        }
        int print = 0;
        int64_t leak_kb = 0;

        (void) ctx->api->shared_int(ctx, "leak_kb", &leak_kb);
        for (size_t i = 0; i < n && leak_kb > 0; i++) {
                char *lost = malloc((size_t) leak_kb << 10);
                if (lost)
                        memset(lost, 1, (size_t) leak_kb << 10); /* resident, and never freed */
        }
        (void) ctx->api->shared_bool(ctx, "print", &print);
        for (size_t i = 0; i < n && print; i++) {
                printf("probe out %s\n", items[i].data);
                fflush(stdout);
                fprintf(stderr, "probe err %s\n", items[i].data);
        }
        int64_t ret = 0, fail_times = 0;
        int count_runs = 0;

        (void) ctx->api->shared_int(ctx, "return", &ret);
        (void) ctx->api->shared_int(ctx, "fail_times", &fail_times);
        (void) ctx->api->shared_bool(ctx, "count_runs", &count_runs);
        for (size_t i = 0; i < n; i++) {
                long runs = count_runs ? count_run(ctx, items[i].index) : 0;
                char msg[128];

                if (strncmp(items[i].data, "fail:", 5) == 0) {
                        int code = atoi(items[i].data + 5);
                        snprintf(msg, sizeof(msg), "probe fails with %d", code);
                        mplock_result_error(out, i, code, msg);
                        continue;
                }
                if (count_runs && runs >= 0 && runs <= fail_times) {
                        snprintf(msg, sizeof(msg), "probe fails run %ld of %s", runs, items[i].data);
                        mplock_result_error(out, i, 503, msg);
                        continue;
                }
                if (ret == 0 || items[i].index % 2 == 0)
                        mplock_result_printf(out, i, "tag=%s|worker=%u|pid=%d|inits=%d|batch=%zu|first=%llu|item=%s",
                                             p->tag, p->worker, (int) getpid(), inits, n,
                                             (unsigned long long) items[0].index, items[i].data);
        }
        return (int) ret;
}

static void probe_fini(const mplock_ctx *ctx, void *state) {
        char path[4096];
        int fd;

        snprintf(path, sizeof(path), "%s/probe-fini.%d", ctx->output_dir, (int) getpid());
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
        free(state);
}

static int probe_save(const mplock_ctx *ctx, const mplock_entry *e, size_t n) {
        char path[4096];
        FILE *f;
        int lock, r = 0;

        snprintf(path, sizeof(path), "%s/probe.lock", ctx->output_dir);
        lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock < 0)
                return -errno;
        if (flock(lock, LOCK_EX | LOCK_NB) < 0) {
                close(lock);
                return -EDEADLK; /* two saves at once: the test fails */
        }
        snprintf(path, sizeof(path), "%s/probe.saved", ctx->output_dir);
        f = fopen(path, "ae");
        if (!f) {
                close(lock);
                return -errno;
        }
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%llu\t%d\t%.*s\t%.*s\n", (unsigned long long) e[i].index, e[i].status, (int) e[i].item_len,
                        e[i].item, (int) e[i].result_len, e[i].result);
        if (fflush(f) != 0 || fsync(fileno(f)) < 0)
                r = -EIO;
        fclose(f);
        close(lock);
        return r;
}

MPLOCK_MODULE_DEFINE(.name = "probe", .init = probe_init, .process = probe_process, .fini = probe_fini,
                     .save = probe_save);
