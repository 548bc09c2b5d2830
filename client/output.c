/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "parse.h"

bool job_ended(json_object *job) {
        const char *s = job_str(job, "state");
        return streq(s, "completed") || streq(s, "completed_with_failures") || streq(s, "failed") ||
               streq(s, "cancelled");
}

const char *job_str(json_object *job, const char *key) {
        const char *s = json_get_str(job, key);
        return s ? s : "";
}

uint64_t job_uint(json_object *job, const char *key) {
        return json_get_uint(job, key, 0);
}

int parse_job_id(const char *s, uint64_t *ret) {
        if (parse_u64(s, ret) < 0 || *ret == 0) {
                fprintf(stderr, "mplockctl: \"%s\" is not a job id\n", s);
                return -EINVAL;
        }
        return 0;
}

int job_exit_code(json_object *job) {
        const char *state = job_str(job, "state");

        if (streq(state, "completed"))
                return EXIT_OK;
        if (streq(state, "completed_with_failures"))
                return EXIT_JOB_PARTIAL;
        if (streq(state, "failed"))
                return EXIT_JOB_FAILED;
        if (streq(state, "cancelled"))
                return EXIT_JOB_CANCELLED;
        if (streq(state, "paused"))
                return EXIT_JOB_PAUSED;
        return EXIT_ERROR;
}

static void format_time(uint64_t usec, char *buf, size_t n) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                (void) snprintf(buf, n, "-");
}

/* An ended job's speed is its average over its run, not the last
 * seconds' (which is 0 once it has stopped). */
double job_rate(json_object *job) {
        json_object *rate = json_get(job, job_ended(job) ? "average_rate" : "rate");

        return rate ? json_object_get_double(rate) : 0.0;
}

/* A run's length: tenths of a second under a minute (a short job's 0.3 s
 * is not "0s"), whole seconds up (never less than it took) above. */
static void format_elapsed(double sec, char *buf, size_t n) {
        uint64_t whole;

        if (!(sec >= 0))
                sec = 0;
        if (sec < 59.95) {
                (void) snprintf(buf, n, "%.1fs", sec);
                return;
        }
        whole = (uint64_t) sec;
        format_duration(whole + ((double) whole < sec), buf, n);
}

/* Bytes as submitted: K, M, G, T (powers of 1024), exact when they are. */
static void format_limit_size(uint64_t bytes, char *buf, size_t n) {
        static const char units[] = "KMGT";
        int u = -1;
        double v = (double) bytes;

        while (u < 3 && v >= 1024.0) {
                v /= 1024.0;
                u++;
        }
        if (u < 0)
                (void) snprintf(buf, n, "%llu", (unsigned long long) bytes);
        else if (v == (double) (uint64_t) v)
                (void) snprintf(buf, n, "%llu%c", (unsigned long long) v, units[u]);
        else
                (void) snprintf(buf, n, "%.1f%c", v, units[u]);
}

/* The limits given at submission, those that are set, on one line. */
static void print_limits(json_object *job) {
        static const struct {
                const char *key, *label, *unit;
                bool bytes;
        } limits[] = {
                { "memory_max", "memory max", "", true },
                { "tasks_max", "tasks max", "", false },
                { "cpu_weight", "CPU weight", "", false },
                { "cpu_quota", "CPU quota", "%", false },
                { "io_weight", "IO weight", "", false },
                { "max_items_per_worker", "workers replaced after", " items", false },
                { "max_worker_memory", "workers replaced past", " resident", true },
        };
        const char *halt = json_get_str(job, "halt_on_failure");
        bool any = false;
        char v[32];

        if (halt && halt[0]) {
                printf("  limits:   halt on failure %s", halt);
                any = true;
        }
        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                uint64_t x = job_uint(job, limits[i].key);
                if (x == 0)
                        continue;
                if (limits[i].bytes)
                        format_limit_size(x, v, sizeof(v));
                else
                        (void) snprintf(v, sizeof(v), "%llu", (unsigned long long) x);
                printf("%s%s %s%s", any ? ", " : "  limits:   ", limits[i].label, v, limits[i].unit);
                any = true;
        }
        if (any)
                putchar('\n');
}

/* Its scope and what it used (docs/systemd.md). */
static void print_isolation(json_object *job) {
        json_object *u = json_get(job, "usage");
        const char *iso = json_get_str(job, "isolation");

        if (iso && streq(iso, "scope")) {
                const char *ctl = json_get_str(job, "controllers");
                printf("  runs in:  %s, %s%s\n", job_str(job, "unit"),
                       ctl && ctl[0] ? "cgroup controllers: " : "no cgroup controllers here (rlimits only)",
                       ctl && ctl[0] ? ctl : "");
        } else if (iso)
                printf("  runs in:  its process group (no scope: rlimits only)\n");
        if (!u)
                return;
        printf("  used:    ");
        if (json_get(u, "cpu_usec"))
                printf(" %.1f s CPU", (double) job_uint(u, "cpu_usec") / 1e6);
        if (json_get(u, "memory_peak"))
                printf(", memory %.1f MB now, %.1f MB peak", (double) job_uint(u, "memory_current") / 1048576.0,
                       (double) job_uint(u, "memory_peak") / 1048576.0);
        if (json_get(u, "io_read_bytes"))
                printf(", I/O %.1f MB read, %.1f MB written", (double) job_uint(u, "io_read_bytes") / 1048576.0,
                       (double) job_uint(u, "io_write_bytes") / 1048576.0);
        putchar('\n');
}

/* A Slurm job: its array and each shard, one line each. */
static void print_cluster(json_object *job) {
        json_object *c = json_get(job, "cluster"), *v = c ? json_get(c, "shards") : NULL;
        size_t n = v ? json_object_array_length(v) : 0;

        if (job_uint(job, "slurm")) {
                const char *part = job_str(job, "partition"), *opts = job_str(job, "slurm_options");
                printf("  sbatch:   %s%s%s%s", part[0] ? "--partition=" : "(the default partition)", part,
                       opts[0] ? " " : "", opts);
                if (job_uint(job, "shards"))
                        printf(", %llu shards asked for", (unsigned long long) job_uint(job, "shards"));
                putchar('\n');
        }
        if (!c || !v)
                return;
        printf("  slurm:    array %s, %zu shards\n", job_str(c, "array"), n);
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(v, i);
                const char *node = json_get_str(s, "node");
                printf("    shard %-4llu %-8s %llu/%llu items, %llu failed, task %s%s%s, attempt %llu\n",
                       (unsigned long long) job_uint(s, "index"), job_str(s, "state"),
                       (unsigned long long) job_uint(s, "done"), (unsigned long long) job_uint(s, "items"),
                       (unsigned long long) job_uint(s, "failed"), job_str(s, "task"), node && node[0] ? " on " : "",
                       node ? node : "", (unsigned long long) job_uint(s, "attempts"));
        }
}

void print_job(const json_object *cjob) {
        json_object *job = (json_object *) (uintptr_t) cjob;
        char created[32], started[32], finished[32], eta[32];
        json_object *e = json_get(job, "eta_seconds");

        if (json_get_bool(job, "damaged", false)) {
                /* Nothing else of it is known. */
                printf("Job %llu: damaged, paused\n  error:    %s\n", (unsigned long long) job_uint(job, "id"),
                       job_str(job, "error"));
                return;
        }
        format_time(job_uint(job, "created_usec"), created, sizeof(created));
        format_time(job_uint(job, "started_usec"), started, sizeof(started));
        format_time(job_uint(job, "finished_usec"), finished, sizeof(finished));
        printf("Job %llu (%s): %s\n", (unsigned long long) job_uint(job, "id"), job_str(job, "name"),
               job_str(job, "state"));
        printf("  items:    %llu done of %llu, %llu failed\n", (unsigned long long) job_uint(job, "done"),
               (unsigned long long) job_uint(job, "items"), (unsigned long long) job_uint(job, "failed"));
        if (streq(job_str(job, "state"), "running")) {
                format_duration(e ? (uint64_t) json_object_get_int64(e) : 0, eta, sizeof(eta));
                printf("  progress: %llu processed, %.0f items/s, %s left, %llu workers\n",
                       (unsigned long long) job_uint(job, "processed"), job_rate(job), e ? eta : "?",
                       (unsigned long long) job_uint(job, "live_workers"));
        } else if (job_ended(job) && json_get(job, "duration_seconds")) {
                char ran[32];
                format_elapsed(json_object_get_double(json_get(job, "duration_seconds")), ran, sizeof(ran));
                printf("  ran:      %s from start to end, %.0f items/s on average\n", ran, job_rate(job));
        }
        printf("  module:   %s\n", job_str(job, "module"));
        printf("  input:    %s (%s-separated)\n", job_str(job, "input"), job_str(job, "separator"));
        printf("  output:   %s (umask %04llo)\n", job_str(job, "output"), (unsigned long long) job_uint(job, "umask"));
        printf("  workers:  %llu, batch size %llu, save batch %llu", (unsigned long long) job_uint(job, "workers"),
               (unsigned long long) job_uint(job, "batch_size"), (unsigned long long) job_uint(job, "save_batch"));
        if (job_uint(job, "timeout") > 0)
                printf(", timeout %llu s", (unsigned long long) job_uint(job, "timeout"));
        else
                printf(", no timeout");
        printf(", %llu attempt%s per item\n", (unsigned long long) job_uint(job, "max_attempts"),
               job_uint(job, "max_attempts") == 1 ? "" : "s");
        print_limits(job);
        if (job_uint(job, "retries") > 0)
                printf("  retries:  %llu\n", (unsigned long long) job_uint(job, "retries"));
        if (job_uint(job, "reuse_job") > 0)
                printf("  reused:   %llu results of job %llu\n", (unsigned long long) job_uint(job, "reused"),
                       (unsigned long long) job_uint(job, "reuse_job"));
        printf("  created:  %s\n  started:  %s\n  finished: %s\n", created, started, finished);
        printf("  results:  %s\n  log:      %s\n", job_str(job, "results_path"), job_str(job, "log_path"));
        if (json_get_str(job, "on_end"))
                printf("  on end:   %s%s\n", job_str(job, "on_end"),
                       json_get_bool(job, "on_end_owed", false) ? " (owed: not run to its end yet)" : "");
        print_isolation(job);
        print_cluster(job);
        if (json_get_str(job, "error"))
                printf("  error:    %s\n", job_str(job, "error"));
}

/* One row of the job table, as text: each column is as wide as its widest
 * cell (a state like completed_with_failures, a large count). */
typedef struct JobRow {
        char id[24], done[48], failed[24], rate[32], time[32];
        const char *state, *name;
} JobRow;

static void job_row(json_object *j, JobRow *row) {
        json_object *d = json_get(j, "duration_seconds");

        (void) snprintf(row->id, sizeof(row->id), "%llu", (unsigned long long) job_uint(j, "id"));
        (void) snprintf(row->done, sizeof(row->done), "%llu/%llu", (unsigned long long) job_uint(j, "done"),
                        (unsigned long long) job_uint(j, "items"));
        (void) snprintf(row->failed, sizeof(row->failed), "%llu", (unsigned long long) job_uint(j, "failed"));
        (void) snprintf(row->rate, sizeof(row->rate), "%.0f", job_rate(j));
        if (d && job_ended(j))
                format_elapsed(json_object_get_double(d), row->time, sizeof(row->time));
        else
                (void) snprintf(row->time, sizeof(row->time), "-");
        row->state = job_str(j, "state");
        row->name = job_str(j, "name");
}

void print_job_table(json_object *jobs) {
        size_t n = json_object_array_length(jobs);
        int w_id = 2, w_state = 5, w_done = 10, w_failed = 6, w_rate = 6, w_time = 4;
        JobRow row;

        for (size_t i = 0; i < n; i++) {
                job_row(json_object_array_get_idx(jobs, i), &row);
                w_id = MAX(w_id, (int) strlen(row.id));
                w_state = MAX(w_state, (int) strlen(row.state));
                w_done = MAX(w_done, (int) strlen(row.done));
                w_failed = MAX(w_failed, (int) strlen(row.failed));
                w_rate = MAX(w_rate, (int) strlen(row.rate));
                w_time = MAX(w_time, (int) strlen(row.time));
        }
        printf("%*s  %-*s  %*s  %*s  %*s  %*s  %s\n", w_id, "ID", w_state, "STATE", w_done, "DONE/ITEMS", w_failed,
               "FAILED", w_rate, "RATE/s", w_time, "TIME", "NAME");
        for (size_t i = 0; i < n; i++) {
                job_row(json_object_array_get_idx(jobs, i), &row);
                printf("%*s  %-*s  %*s  %*s  %*s  %*s  %s\n", w_id, row.id, w_state, row.state, w_done, row.done,
                       w_failed, row.failed, w_rate, row.rate, w_time, row.time, row.name);
        }
}

void print_job_summary(json_object *job) {
        fprintf(stderr, "Job %llu %s: %llu of %llu items done, %llu failed%s%s\n",
                (unsigned long long) job_uint(job, "id"), job_str(job, "state"),
                (unsigned long long) job_uint(job, "done"), (unsigned long long) job_uint(job, "items"),
                (unsigned long long) job_uint(job, "failed"), json_get_str(job, "error") ? ": " : "",
                job_str(job, "error"));
}

void print_json(json_object *o) {
        size_t len;
        const char *s = json_compact(o, &len);

        if (s) {
                fwrite(s, 1, len, stdout);
                fputc('\n', stdout);
        }
}

/* JSON string escaping by hand: json-c would need an object per line,
 * which is the slow part of printing millions of results. */
void fputs_json_string(const char *s, size_t len, FILE *f) {
        static const char hex[] = "0123456789abcdef";
        size_t start = 0;

        putc_unlocked('"', f);
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) s[i];
                if (ch >= 0x20 && ch != '"' && ch != '\\')
                        continue;
                if (i > start)
                        fwrite_unlocked(s + start, 1, i - start, f);
                start = i + 1;
                putc_unlocked('\\', f);
                switch (ch) {
                case '"':
                        putc_unlocked('"', f);
                        break;
                case '\\':
                        putc_unlocked('\\', f);
                        break;
                case '\n':
                        putc_unlocked('n', f);
                        break;
                case '\t':
                        putc_unlocked('t', f);
                        break;
                case '\r':
                        putc_unlocked('r', f);
                        break;
                default:
                        fputs_unlocked("u00", f);
                        putc_unlocked(hex[ch >> 4], f);
                        putc_unlocked(hex[ch & 15], f);
                }
        }
        if (len > start)
                fwrite_unlocked(s + start, 1, len - start, f);
        putc_unlocked('"', f);
}
