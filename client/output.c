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
                json_object *rate = json_get(job, "rate");
                format_duration(e ? (uint64_t) json_object_get_int64(e) : 0, eta, sizeof(eta));
                printf("  progress: %llu processed, %.0f items/s, %s left, %llu workers\n",
                       (unsigned long long) job_uint(job, "processed"), rate ? json_object_get_double(rate) : 0.0,
                       e ? eta : "?", (unsigned long long) job_uint(job, "live_workers"));
        }
        printf("  module:   %s\n", job_str(job, "module"));
        printf("  input:    %s (%s-separated)\n", job_str(job, "input"), job_str(job, "separator"));
        printf("  output:   %s\n", job_str(job, "output"));
        printf("  workers:  %llu, batch size %llu, save batch %llu", (unsigned long long) job_uint(job, "workers"),
               (unsigned long long) job_uint(job, "batch_size"), (unsigned long long) job_uint(job, "save_batch"));
        if (job_uint(job, "timeout") > 0)
                printf(", timeout %llu s", (unsigned long long) job_uint(job, "timeout"));
        putchar('\n');
        printf("  created:  %s\n  started:  %s\n  finished: %s\n", created, started, finished);
        printf("  results:  %s\n  log:      %s\n", job_str(job, "results_path"), job_str(job, "log_path"));
        print_isolation(job);
        print_cluster(job);
        if (json_get_str(job, "error"))
                printf("  error:    %s\n", job_str(job, "error"));
}

void print_job_table(json_object *jobs) {
        size_t n = json_object_array_length(jobs);

        printf("%6s  %-9s  %21s  %8s  %9s  %s\n", "ID", "STATE", "DONE/ITEMS", "FAILED", "RATE/s", "NAME");
        for (size_t i = 0; i < n; i++) {
                json_object *j = json_object_array_get_idx(jobs, i), *rate = json_get(j, "rate");
                char done[48];
                (void) snprintf(done, sizeof(done), "%llu/%llu", (unsigned long long) job_uint(j, "done"),
                                (unsigned long long) job_uint(j, "items"));
                printf("%6llu  %-9s  %21s  %8llu  %9.0f  %s\n", (unsigned long long) job_uint(j, "id"),
                       job_str(j, "state"), done, (unsigned long long) job_uint(j, "failed"),
                       rate ? json_object_get_double(rate) : 0.0, job_str(j, "name"));
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
