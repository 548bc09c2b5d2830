/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "jobspec.h"
#include "log.h"
#include "macro.h"
#include "config.h"
#include "parse.h"

/* Settings: one table for the command line (--max-workers 8) and the config
 * file (max-workers = 8). The command line wins: what it set is not taken
 * from the file, at start or at a reload. */

#define CONFIG_MAX (1u << 20)

typedef enum SettingUnit {
        UNIT_COUNT,   /* a plain number */
        UNIT_BYTES,   /* a number of bytes */
        UNIT_MS,      /* milliseconds, stored in microseconds */
        UNIT_SECONDS, /* seconds, stored in microseconds */
        UNIT_GROUP,   /* a group name or gid, stored as a gid; "" or "none": none */
} SettingUnit;

typedef struct SettingDef {
        const char *name;
        size_t offset;
        size_t size; /* of the field: 4 or 8 */
        SettingUnit unit;
        uint64_t min, max;
        const char *help;
        bool zero_is_none;
} SettingDef;

#define FIELD(f) offsetof(Settings, f), sizeof(((Settings *) NULL)->f)

static const SettingDef defs[] = {
        { "max-workers", FIELD(max_workers), UNIT_COUNT, 1, 65536, "worker processes over all jobs" },
        { "max-workers-per-job", FIELD(max_workers_per_job), UNIT_COUNT, 1, 65536, "largest --workers of a job" },
        { "max-jobs", FIELD(max_jobs), UNIT_COUNT, 1, 10000000, "jobs kept, in any state" },
        { "max-active-jobs", FIELD(max_active_jobs), UNIT_COUNT, 1, 1000000, "queued and running jobs" },
        { "max-connections", FIELD(max_connections), UNIT_COUNT, 1, 100000, "client connections" },
        { "max-connections-per-uid", FIELD(max_connections_per_uid), UNIT_COUNT, 1, 100000,
          "client connections of one user" },
        { "max-message-size", FIELD(max_message), UNIT_BYTES, 4096, 1u << 30, "one Varlink message" },
        { "max-queued-output", FIELD(max_queued_output), UNIT_BYTES, 1u << 20, UINT64_C(1) << 40,
          "replies waiting for slow clients to read them, over all connections" },
        { "max-shared-size", FIELD(max_shared), UNIT_BYTES, 2, 256u << 20, "a job's shared data" },
        { "max-items", FIELD(max_items), UNIT_COUNT, 1, UINT64_C(1) << 36, "items of one job" },
        { "max-input-size", FIELD(max_input_bytes), UNIT_BYTES, 1, UINT64_C(1) << 50, "a job's input list" },
        { "max-batch-size", FIELD(max_batch_size), UNIT_COUNT, 1, 1u << 20, "largest --batch-size" },
        { "max-save-batch", FIELD(max_save_batch), UNIT_COUNT, 1, 100000000, "largest --save-batch" },
        { "commit-interval", FIELD(commit_interval_usec), UNIT_MS, 1, 3600000, "group commit interval, ms" },
        { "commit-items", FIELD(commit_items), UNIT_COUNT, 1, UINT32_MAX, "group commit after this many items" },
        { "max-attempts", FIELD(max_attempts), UNIT_COUNT, 1, 1000,
          "default attempts per item (an error, a worker death or a timeout is one)" },
        { "retry-delay", FIELD(retry_delay_usec), UNIT_MS, 0, 3600000, "first backoff before another attempt, ms" },
        { "fault-resume-delay", FIELD(fault_resume_usec), UNIT_SECONDS, 0, 86400,
          "a job paused by a fault (a full disk) tries again after this many seconds, doubling up to 10 "
          "minutes; 0: only when resumed" },
        { "item-timeout", FIELD(item_timeout_usec), UNIT_SECONDS, 0, 604800,
          "default seconds one call of process may take, 0 for none" },
        { "callback-timeout", FIELD(callback_timeout_usec), UNIT_SECONDS, 0, 604800,
          "seconds one call of init, save_init, save or save_fini may take before the job fails, 0 for none" },
        { "memory-max", FIELD(memory_max), UNIT_BYTES, UINT64_C(16) << 20, UINT64_C(1) << 50,
          "default data limit of each worker process (at least 16M), 0 for none", .zero_is_none = true },
        { "stop-timeout", FIELD(stop_timeout_usec), UNIT_SECONDS, 0, 86400, "graceful stop, seconds" },
        { "check-timeout", FIELD(check_timeout_usec), UNIT_SECONDS, 1, 86400, "submission check, seconds" },
        { "admin-group", FIELD(admin_gid), UNIT_GROUP, 0, UINT32_MAX - 1,
          "members see and manage every user's jobs (a group name)" },
        { "max-active-jobs-per-uid", FIELD(max_active_jobs_per_uid), UNIT_COUNT, 1, 1000000,
          "queued and running jobs of one user" },
        { "max-workers-per-uid", FIELD(max_workers_per_uid), UNIT_COUNT, 1, 65536,
          "worker processes of one user's jobs together" },
        { "max-input-per-uid", FIELD(max_input_per_uid), UNIT_BYTES, 1, UINT64_C(1) << 50,
          "input lists of one user's active jobs together" },
        { "max-processes-per-uid", FIELD(max_processes_per_uid), UNIT_COUNT, 16, 4194304,
          "processes a user may have (RLIMIT_NPROC) when mplockd runs their jobs as root" },
        { "idle-timeout", FIELD(idle_timeout_usec), UNIT_SECONDS, 1, 86400,
          "a connection with no call open is closed after this, seconds" },
        { "message-timeout", FIELD(message_timeout_usec), UNIT_SECONDS, 1, 3600,
          "a message must arrive whole within this, seconds" },
        { "job-scopes", FIELD(job_scopes), UNIT_COUNT, 0, 1,
          "1: each job in a systemd scope when a service manager answers (at start); 0: never" },
        { "user-cpu-weight", FIELD(user_cpu_weight), UNIT_COUNT, 1, 10000,
          "CPU weight of each user's slice: equal weights share the CPUs equally between users" },
        { "max-memory-per-job", FIELD(max_memory_per_job), UNIT_BYTES, 0, UINT64_C(1) << 50,
          "largest --memory-max a job may ask for, 0 for no bound" },
        { "max-tasks-per-job", FIELD(max_tasks_per_job), UNIT_COUNT, 0, JOB_TASKS_MAX,
          "largest --tasks-max a job may ask for, 0 for no bound" },
        { "max-cpu-quota", FIELD(max_cpu_quota), UNIT_COUNT, 0, JOB_CPU_QUOTA_MAX,
          "largest --cpu-quota (percent of one CPU) a job may ask for, 0 for no bound" },
        { "on-end-timeout", FIELD(on_end_timeout_usec), UNIT_SECONDS, 1, 86400,
          "seconds a job's on-end command may run before it is killed with its process group" },
        { "max-on-end-per-uid", FIELD(max_on_end_per_uid), UNIT_COUNT, 1, 1024,
          "on-end commands of one user running at once (the others wait)" },
};

void settings_defaults(Settings *s) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        *s = (Settings){
                .max_workers = n > 0 ? (uint32_t) n : 1,
                .max_workers_per_job = 256,
                .max_jobs = 10000,
                .max_active_jobs = 1000,
                .max_connections = 256,
                .max_connections_per_uid = 64,
                .max_message = 16u << 20,
                .max_queued_output = 256u << 20,
                .max_shared = 1u << 20,
                .max_items = 250000000,
                .max_input_bytes = UINT64_C(64) << 30,
                .max_batch_size = 65536,
                .max_save_batch = 1000000,
                .commit_interval_usec = 200 * 1000ULL,
                .job_scopes = 1,
                .user_cpu_weight = 100,
                .commit_items = 1000000,
                .max_attempts = 3,
                .retry_delay_usec = 100 * 1000ULL,
                .fault_resume_usec = 30 * 1000000ULL,
                .item_timeout_usec = 0,
                .callback_timeout_usec = 600 * 1000000ULL,
                .stop_timeout_usec = 10 * 1000000ULL,
                .check_timeout_usec = 300 * 1000000ULL,
                .admin_gid = UINT32_MAX,
                .max_active_jobs_per_uid = 100,
                .max_workers_per_uid = 65536,
                .max_input_per_uid = UINT64_C(256) << 30,
                .max_processes_per_uid = 4096,
                .idle_timeout_usec = 300 * 1000000ULL,
                .message_timeout_usec = 30 * 1000000ULL,
                .on_end_timeout_usec = 300 * 1000000ULL,
                .max_on_end_per_uid = 4,
        };
}

static const SettingDef *find_def(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(defs); i++)
                if (streq(defs[i].name, name))
                        return &defs[i];
        return NULL;
}

/* Sizes take K, M, G, T suffixes (powers of 1024). */
static int parse_value(const SettingDef *d, const char *v, uint64_t *ret) {
        _cleanup_free_ char *copy = strdup(v);
        uint64_t n;

        if (!copy)
                return -ENOMEM;
        if (d->unit == UNIT_GROUP) {
                struct group *g;
                if (!*copy || streq(copy, "none")) {
                        *ret = UINT32_MAX;
                        return 0;
                }
                if (parse_u64(copy, &n) >= 0) {
                        if (n > d->max)
                                return -ERANGE;
                        *ret = n;
                        return 0;
                }
                g = getgrnam(copy);
                if (!g)
                        return -ENOENT;
                *ret = g->gr_gid;
                return 0;
        }
        if (d->unit == UNIT_BYTES) {
                if (parse_size(copy, &n) < 0)
                        return -EINVAL; /* overflow included, as for counts */
        } else if (parse_u64(copy, &n) < 0)
                return -EINVAL;
        /* min applies to values other than 0 when 0 means "none". */
        if ((n < d->min && !(n == 0 && d->zero_is_none)) || n > d->max)
                return -ERANGE;
        *ret = d->unit == UNIT_SECONDS ? n * 1000000ULL : d->unit == UNIT_MS ? n * 1000ULL : n;
        return 0;
}

static void store_value(Settings *s, const SettingDef *d, uint64_t v) {
        char *p = (char *) s + d->offset;

        if (d->size == sizeof(uint32_t)) {
                uint32_t x = (uint32_t) v;
                memcpy(p, &x, sizeof(x));
        } else {
                memcpy(p, &v, sizeof(v));
        }
}

int settings_set(Settings *s, const char *name, const char *value, uint64_t *mask) {
        const SettingDef *d = find_def(name);
        uint64_t v;
        int r;

        if (!d)
                return -ENOENT;
        r = parse_value(d, value, &v);
        if (r == -ENOENT)
                r = -ESRCH; /* no such group: not "no such setting" */
        if (r < 0)
                return r;
        store_value(s, d, v);
        if (mask)
                *mask |= UINT64_C(1) << (d - defs);
        return 0;
}

size_t settings_count(void) {
        return ELEMENTSOF(defs);
}

const char *settings_name(size_t i) {
        return i < ELEMENTSOF(defs) ? defs[i].name : NULL;
}

static uint64_t load_value(const Settings *s, const SettingDef *d) {
        const char *p = (const char *) s + d->offset;
        uint32_t x;
        uint64_t v;

        if (d->size == sizeof(uint32_t)) {
                memcpy(&x, p, sizeof(x));
                return x;
        }
        memcpy(&v, p, sizeof(v));
        return d->unit == UNIT_SECONDS ? v / 1000000ULL : d->unit == UNIT_MS ? v / 1000ULL : v;
}

void settings_help(FILE *f) {
        Settings def;

        settings_defaults(&def);
        for (size_t i = 0; i < ELEMENTSOF(defs); i++) {
                uint64_t v = load_value(&def, &defs[i]);
                char val[32];

                if (defs[i].unit == UNIT_BYTES && v >= 1024 && v % 1024 == 0) {
                        static const char units[] = "KMGT";
                        int k = -1;
                        while (v >= 1024 && v % 1024 == 0 && k < 3)
                                v /= 1024, k++;
                        (void) snprintf(val, sizeof(val), "%llu%c", (unsigned long long) v, units[k]);
                } else
                        (void) snprintf(val, sizeof(val), "%llu", (unsigned long long) v);
                if (defs[i].unit == UNIT_GROUP)
                        (void) snprintf(val, sizeof(val), "none");
                fprintf(f, "  --%-26s %s (%s)\n", defs[i].name, defs[i].help, val);
        }
}

int settings_load_file(Settings *s, const char *path, uint64_t cmdline_mask) {
        _cleanup_free_ char *text = NULL;
        Settings n = *s;
        char *line, *next;
        unsigned lineno = 0;
        int r;

        r = read_file_at(AT_FDCWD, path, CONFIG_MAX, &text, NULL);
        if (r == -ENOENT)
                return 0; /* no file: defaults and the command line */
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %m", path);

        for (line = text; line; line = next) {
                char *eq, *key, *val, *end;
                const SettingDef *d;
                uint64_t v;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                lineno++;
                if ((end = strchr(line, '#')))
                        *end = '\0';
                while (isspace((unsigned char) *line))
                        line++;
                end = line + strlen(line);
                while (end > line && isspace((unsigned char) end[-1]))
                        *--end = '\0';
                if (!*line)
                        continue;
                eq = strchr(line, '=');
                if (!eq)
                        return log_error_errno(EINVAL, "%s:%u: expected \"name = value\".", path, lineno);
                *eq = '\0';
                key = line;
                val = eq + 1;
                for (end = eq; end > key && isspace((unsigned char) end[-1]);)
                        *--end = '\0';
                while (isspace((unsigned char) *val))
                        val++;
                d = find_def(key);
                if (!d)
                        return log_error_errno(EINVAL, "%s:%u: unknown setting \"%s\".", path, lineno, key);
                r = parse_value(d, val, &v);
                if (r < 0)
                        return log_error_errno(r, "%s:%u: invalid %s \"%s\" (expected %llu..%llu).", path, lineno, key,
                                               val, (unsigned long long) d->min, (unsigned long long) d->max);
                if (!(cmdline_mask & (UINT64_C(1) << (d - defs))))
                        store_value(&n, d, v);
        }
        *s = n;
        return 0;
}
