/* SPDX-License-Identifier: MIT */
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "varlink-names.h"

/* "mplockctl stats JOB": where the job's last run's time went, from the
 * Stats method. */

/* Columns of the rate chart at most: buckets beyond are summed. */
#define CHART_COLUMNS 60

static double get_double(json_object *o, const char *key) {
        json_object *v = json_get(o, key);

        return v ? json_object_get_double(v) : 0.0;
}

static void format_usec(uint64_t usec, char *buf, size_t n) {
        if (usec < 1000)
                (void) snprintf(buf, n, "%llu us", (unsigned long long) usec);
        else if (usec < 1000000)
                (void) snprintf(buf, n, "%.1f ms", (double) usec / 1e3);
        else
                (void) snprintf(buf, n, "%.2f s", (double) usec / 1e6);
}

static void print_time(json_object *o, const char *what) {
        char key[32], t[32];

        (void) snprintf(key, sizeof(key), "%s_usec", what);
        format_usec(job_uint(o, key), t, sizeof(t));
        (void) snprintf(key, sizeof(key), "%s_share", what);
        printf("  %10s %5.1f%%", t, get_double(o, key) * 100.0);
}

static void print_times_row(const char *label, json_object *o, bool saving) {
        printf("%-10s", label);
        print_time(o, "init");
        print_time(o, "processing");
        print_time(o, "waiting");
        if (saving)
                print_time(o, "saving");
        printf("\n");
}

static void print_times(json_object *st) {
        json_object *workers = json_get(st, "workers");
        size_t n = workers && json_object_is_type(workers, json_type_array) ? json_object_array_length(workers) : 0;

        printf("%-10s%19s%19s%19s%19s\n", "Time", "init", "processing", "waiting", "saving");
        for (size_t i = 0; i < n; i++) {
                json_object *w = json_object_array_get_idx(workers, i);
                char label[32];
                (void) snprintf(label, sizeof(label), "worker %llu", (unsigned long long) job_uint(w, "worker"));
                print_times_row(label, w, false);
        }
        print_times_row("all", json_get(st, "total"), true);
}

static bool locale_is_utf8(void) {
        (void) setlocale(LC_CTYPE, "");
        return streq(nl_langinfo(CODESET), "UTF-8");
}

/* One mark per column, its height the column's share of the highest:
 * blocks in UTF-8, else ASCII of growing weight; nothing is a blank. */
static void print_marks(const uint64_t *cols, size_t n, uint64_t max) {
        static const char *const blocks[] = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
        static const char ascii[] = "_.-:=+*@";
        bool utf8 = locale_is_utf8();

        for (size_t i = 0; i < n; i++) {
                size_t level = max ? (size_t) ((cols[i] * 8 - 1) / max) : 0;
                if (cols[i] == 0)
                        fputs(" ", stdout);
                else if (utf8)
                        fputs(blocks[MIN(level, (size_t) 7)], stdout);
                else
                        putchar(ascii[MIN(level, (size_t) 7)]);
        }
        printf("\n");
}

static void print_rate(json_object *st) {
        json_object *rate = json_get(st, "rate"), *counts = json_get(rate, "counts");
        uint64_t cols[CHART_COLUMNS] = {}, max = 0, width = job_uint(rate, "bucket_usec");
        size_t n = counts && json_object_is_type(counts, json_type_array) ? json_object_array_length(counts) : 0;
        size_t per = (n + CHART_COLUMNS - 1) / CHART_COLUMNS, ncols;
        char w[32], end[32];

        if (n == 0 || width == 0)
                return;
        ncols = (n + per - 1) / per;
        for (size_t i = 0; i < n; i++)
                cols[i / per] += (uint64_t) json_object_get_int64(json_object_array_get_idx(counts, i));
        for (size_t i = 0; i < ncols; i++)
                max = MAX(max, cols[i]);
        format_usec(width * per, w, sizeof(w));
        format_usec(width * n, end, sizeof(end));
        printf("\nItems per second: at most %.1f/s, a column is %s\n", (double) max * 1e6 / (double) (width * per),
               w);
        print_marks(cols, ncols, max);
        printf("0%*s\n", (int) MAX(ncols, strlen(end) + 1) - 1, end);
}

static void print_slowest(json_object *st) {
        json_object *slow = json_get(st, "slowest");
        size_t n = slow && json_object_is_type(slow, json_type_array) ? json_object_array_length(slow) : 0;

        if (n == 0)
                return;
        printf("\nSlowest items:\n%12s %10s  %s\n", "index", "duration", "item");
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(slow, i);
                char t[32];
                format_usec(job_uint(s, "duration_usec"), t, sizeof(t));
                printf("%12llu %10s  %s%s\n", (unsigned long long) job_uint(s, "index"), t, job_str(s, "item"),
                       json_get_bool(s, "item_truncated", false) ? "..." : "");
        }
}

static void print_stats(uint64_t id, json_object *st) {
        time_t t = (time_t) (job_uint(st, "started_usec") / 1000000);
        char started[64] = "?", elapsed[32];
        struct tm tm;

        if (localtime_r(&t, &tm))
                (void) strftime(started, sizeof(started), "%Y-%m-%d %H:%M:%S", &tm);
        format_usec(job_uint(st, "elapsed_usec"), elapsed, sizeof(elapsed));
        printf("Job %llu, its last run: started %s, %s%s, %llu items finished\n\n", (unsigned long long) id, started,
               elapsed, json_get_bool(st, "running", false) ? " so far (running)" : "",
               (unsigned long long) job_uint(st, "items"));
        print_times(st);
        print_rate(st);
        print_slowest(st);
}

int cmd_stats(Ctl *c, int argc, char **argv) {
        json_object *reply, *st;
        uint64_t id;
        int r = one_job(c, argc, argv, &id);

        if (r != EXIT_OK)
                return r;
        r = ctl_call(c, MPLOCK_METHOD_STATS, id_params(id), false, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        st = json_get(reply, "stats");
        if (c->json) {
                /* {} for a job that has not run. */
                if (st)
                        print_json(st);
                else
                        printf("{}\n");
        } else if (!st)
                printf("Job %llu has no stats: it has not run yet (or ran before mplock kept them).\n",
                       (unsigned long long) id);
        else
                print_stats(id, st);
        return EXIT_OK;
}
