/* SPDX-License-Identifier: MIT */
/* v11: a module of ABI 1.1 that uses what 1.1 added, for test_abi.py.
 *   init        refuses a shared key other than "weights", "sleep_ms", and
 *               says why (api->error_message)
 *   process     "perm" fails for good (MPLOCK_FAIL_PERMANENT); "retry" fails
 *               until its third attempt; anything else becomes
 *               "<item>:<sum of /weights>"; logs "attempt N of ITEM"
 *   save_init   opens OUTPUT/v11.saves once ("open"); with shared
 *               "save_nothing": true, says MPLOCK_SAVE_NOTHING (1.2)
 *   save_batch  "batch SEQ N FLAGS" and one "item INDEX" line per entry
 *   save_fini   "fini"
 *   fini        with shared "fini_sleep_ms", sleeps that long, then appends
 *               "worker" to OUTPUT/v11.fini (what a job's end must wait for)
 *   "init_sleep_ms" and "save_sleep_ms" make init and each save_batch
 *               sleep that long (callbacks past callback-timeout) */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mplock/module.h>

static double sum;
static long sleep_ms, fini_sleep_ms;

static int v11_init(const mplock_ctx *ctx, void **state) {
        const mplock_api *api = ctx->api;
        double w[16];
        size_t n = 0, keys = 0;
        int64_t ms = 0;

        (void) state;
        (void) api->shared_count(ctx, "", &keys);
        for (size_t i = 0; i < keys; i++) {
                const char *k;
                char why[128];
                if (api->shared_key(ctx, "", i, &k) < 0)
                        return -MPLOCK_EINVAL;
                if (strcmp(k, "weights") != 0 && strcmp(k, "sleep_ms") != 0 && strcmp(k, "fini_sleep_ms") != 0 &&
                    strcmp(k, "init_sleep_ms") != 0 && strcmp(k, "save_sleep_ms") != 0 &&
                    strcmp(k, "save_nothing") != 0) {
                        (void) snprintf(why, sizeof(why), "unknown shared key \"%s\"", k);
                        api->error_message(ctx, why);
                        return -MPLOCK_EINVAL;
                }
        }
        if (api->shared_doubles(ctx, "/weights", w, 16, &n) == 0)
                for (size_t i = 0; i < n; i++)
                        sum += w[i];
        if (api->shared_get_int(ctx, "/sleep_ms", &ms) == 0)
                sleep_ms = (long) ms;
        if (api->shared_get_int(ctx, "/fini_sleep_ms", &ms) == 0)
                fini_sleep_ms = (long) ms;
        if (api->shared_get_int(ctx, "/init_sleep_ms", &ms) == 0 && ms > 0) {
                struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
                nanosleep(&ts, NULL);
        }
        return 0;
}

static void v11_fini(const mplock_ctx *ctx, void *state) {
        struct timespec ts = { fini_sleep_ms / 1000, (fini_sleep_ms % 1000) * 1000000 };
        char path[4200];
        int fd;

        (void) state;
        if (fini_sleep_ms <= 0)
                return;
        nanosleep(&ts, NULL);
        (void) snprintf(path, sizeof(path), "%s/v11.fini", ctx->output_dir);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
                (void) !write(fd, "worker\n", 7);
                (void) close(fd);
        }
}

static int v11_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n,
                       mplock_results *out) {
        (void) state;
        for (size_t i = 0; i < n; i++) {
                uint32_t attempt = out->api->attempt(out, i);
                mplock_log(ctx, MPLOCK_LOG_INFO, "attempt %u of %s", attempt, items[i].data);
                if (sleep_ms > 0) {
                        struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000 };
                        nanosleep(&ts, NULL);
                }
                if (strcmp(items[i].data, "perm") == 0)
                        mplock_result_fail(out, i, 9, "permanent");
                else if (strcmp(items[i].data, "retry") == 0 && attempt < 3)
                        mplock_result_error(out, i, -5, "try again");
                else if (strcmp(items[i].data, "retry") == 0)
                        mplock_result_printf(out, i, "attempt=%u", attempt);
                else
                        mplock_result_printf(out, i, "%s:%g", items[i].data, sum);
        }
        return 0;
}

static int v11_save_init(const mplock_ctx *ctx, void **save_state) {
        char path[4200];
        int nothing = 0;
        FILE *f;

        (void) snprintf(path, sizeof(path), "%s/v11.saves", ctx->output_dir);
        f = fopen(path, "ae");
        if (!f)
                return -MPLOCK_EIO;
        fprintf(f, "open\n");
        *save_state = f;
        /* 1.2: with shared "save_nothing": true, no batches in this job. */
        return ctx->api->shared_get_bool(ctx, "/save_nothing", &nothing) == 0 && nothing ? MPLOCK_SAVE_NOTHING : 0;
}

static int v11_save_batch(const mplock_ctx *ctx, void *save_state, const mplock_batch *b) {
        FILE *f = save_state;
        int64_t ms = 0;

        if (ctx->api->shared_get_int(ctx, "/save_sleep_ms", &ms) == 0 && ms > 0) {
                struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
                nanosleep(&ts, NULL);
        }
        fprintf(f, "batch %llu %zu %u\n", (unsigned long long) b->seq, b->n, b->flags);
        for (size_t i = 0; i < b->n; i++)
                fprintf(f, "item %llu\n", (unsigned long long) b->entries[i].index);
        mplock_log(ctx, MPLOCK_LOG_NOTICE, "saved batch %llu", (unsigned long long) b->seq);
        /* Durable before we say so, as a saver should be. */
        return fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -MPLOCK_EIO;
}

static void v11_save_fini(const mplock_ctx *ctx, void *save_state) {
        FILE *f = save_state;

        (void) ctx;
        if (f) {
                fprintf(f, "fini\n");
                fclose(f);
        }
}

MPLOCK_MODULE_DEFINE(.name = "v11", .init = v11_init, .process = v11_process, .fini = v11_fini,
                     .save_init = v11_save_init,
                     .save_batch = v11_save_batch, .save_fini = v11_save_fini);
