/* SPDX-License-Identifier: MIT */
#include "scope.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"

#define MGR_DEST  "org.freedesktop.systemd1"
#define MGR_PATH  "/org/freedesktop/systemd1"
#define MGR_IFACE "org.freedesktop.systemd1.Manager"
/* A JobRemoved that never comes must not hold a job forever. */
#define PLACE_TIMEOUT_USEC (30 * 1000000ULL)
/* An earlier run's scope of the same name: killed, and tried again. */
#define RETRIES_MAX 50u
#define RETRY_USEC  (100 * 1000ULL)
/* Scopes take OOMPolicy= from this version (Debian 12's has it). */
#define OOM_POLICY_SINCE 252u
/* Bounds what a burst of job starts can have queued at the manager. */
#define REQUESTS_MAX 4096u

struct ScopeRequest {
        Scopes *scopes;
        ScopeRequest *prev, *next;
        char unit[64];
        char *job_path; /* of the manager's start job, once it answered */
        int pidfd;
        uint64_t job;
        uid_t uid;
        pid_t pid;
        ScopeLimits limits;
        unsigned tries; /* of a scope of the same name still there */
        sd_bus_slot *call;
        sd_event_source *timeout, *retry;
        ScopePlaced placed;
        void *userdata;
};

struct Scopes {
        sd_event *event;
        sd_bus *bus;
        sd_bus_slot *job_removed;
        unsigned version; /* of the manager: what its scopes accept */
        uint32_t user_cpu_weight;
        ScopeRequest *requests;
        unsigned n_requests;
        uid_t *weighted; /* slices whose weight is set */
        size_t n_weighted;
};

int scope_unit_name(uint64_t job, char *buf, size_t len) {
        int n = snprintf(buf, len, "mplock-job-%" PRIu64 ".scope", job);
        return n > 0 && (size_t) n < len ? 0 : -ENAMETOOLONG;
}

static void slice_name(uid_t uid, char *buf, size_t len) {
        (void) snprintf(buf, len, "mplock-u%u.slice", (unsigned) uid);
}

/* The private socket: no D-Bus broker needed (systemctl does the same). */
static int bus_connect(bool user_instance, sd_bus **ret) {
        _cleanup_free_ char *addr = NULL;
        sd_bus *bus = NULL;
        int r;

        if (user_instance) {
                const char *rt = getenv("XDG_RUNTIME_DIR");
                if (!rt || rt[0] != '/')
                        return -ENXIO;
                if (asprintf(&addr, "unix:path=%s/systemd/private", rt) < 0)
                        return -ENOMEM;
        } else if (!(addr = strdup("unix:path=/run/systemd/private")))
                return -ENOMEM;
        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, addr);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

static void request_done(ScopeRequest *q, int error, const char *cgroup) {
        ScopePlaced placed = q->placed;
        void *userdata = q->userdata;

        q->placed = NULL;
        (void) scope_request_free(q);
        if (placed)
                placed(error, cgroup, userdata);
}

static int cgroup_reply(sd_bus_message *m, void *userdata, sd_bus_error *err) {
        ScopeRequest *q = userdata;
        const char *cg = NULL;
        int r;

        (void) err;
        q->call = sd_bus_slot_unref(q->call);
        if (sd_bus_message_is_method_error(m, NULL)) {
                request_done(q, -sd_bus_message_get_errno(m) ?: -EIO, NULL);
                return 0;
        }
        r = sd_bus_message_read(m, "v", "s", &cg);
        if (r < 0 || !cg || cg[0] != '/') {
                request_done(q, r < 0 ? r : -EBADMSG, NULL);
                return 0;
        }
        request_done(q, 0, cg);
        return 0;
}

/* The start job ended: the pid is in the scope if it is still the process
 * we hold (a pid that died before the move would have failed it; one that
 * died after can no longer be trusted to be ours). */
static void start_job_ended(ScopeRequest *q, const char *result) {
        _cleanup_free_ char *path = NULL;
        struct pollfd p = {.fd = q->pidfd, .events = POLLIN};
        int r;

        if (!streq(result, "done")) {
                log_warning("Starting %s: %s.", q->unit, result);
                request_done(q, -EIO, NULL);
                return;
        }
        r = poll(&p, 1, 0);
        if (r != 0) {
                /* Readable: it ended. A failed poll proves nothing either. */
                request_done(q, r > 0 ? -ESRCH : negative_errno(), NULL);
                return;
        }
        r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", q->unit, &path);
        if (r >= 0)
                r = sd_bus_call_method_async(q->scopes->bus, &q->call, MGR_DEST, path,
                                             "org.freedesktop.DBus.Properties", "Get", cgroup_reply, q, "ss",
                                             "org.freedesktop.systemd1.Scope", "ControlGroup");
        if (r < 0)
                request_done(q, r, NULL);
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *err) {
        Scopes *s = userdata;
        const char *path, *unit, *result;
        uint32_t id;

        (void) err;
        if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        for (ScopeRequest *q = s->requests; q; q = q->next)
                if (q->job_path && streq(q->job_path, path)) {
                        start_job_ended(q, result);
                        break;
                }
        return 0;
}

static int send_start(ScopeRequest *q);

static int retry_start(sd_event_source *es, uint64_t usec, void *userdata) {
        ScopeRequest *q = userdata;
        int r;

        (void) usec;
        (void) es;
        q->retry = sd_event_source_disable_unref(q->retry);
        r = send_start(q);
        if (r < 0)
                request_done(q, r, NULL);
        return 0;
}

/* The job's scope of an earlier run is still there: what a daemon killed
 * with SIGKILL left in it (a process that detached), or one still being
 * collected. It is killed, and the start tried again. */
static bool retry_existing(ScopeRequest *q, sd_bus_message *m) {
        if (!sd_bus_message_is_method_error(m, "org.freedesktop.systemd1.UnitExists") || q->tries++ >= RETRIES_MAX)
                return false;
        if (q->tries == 1)
                log_info("%s is still there from an earlier run: killing what is left in it.", q->unit);
        (void) sd_bus_call_method_async(q->scopes->bus, NULL, MGR_DEST, MGR_PATH, MGR_IFACE, "KillUnit", NULL, NULL,
                                        "ssi", q->unit, "all", SIGKILL);
        return sd_event_add_time_relative(q->scopes->event, &q->retry, CLOCK_MONOTONIC, RETRY_USEC, 0, retry_start,
                                          q) >= 0;
}

static int start_reply(sd_bus_message *m, void *userdata, sd_bus_error *err) {
        ScopeRequest *q = userdata;
        const char *path;

        (void) err;
        q->call = sd_bus_slot_unref(q->call);
        if (retry_existing(q, m))
                return 0;
        if (sd_bus_message_is_method_error(m, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(m);
                log_warning("Cannot start %s: %s", q->unit, e && e->message ? e->message : "error");
                request_done(q, -sd_bus_message_get_errno(m) ?: -EIO, NULL);
                return 0;
        }
        if (sd_bus_message_read(m, "o", &path) < 0 || !(q->job_path = strdup(path)))
                request_done(q, -ENOMEM, NULL);
        return 0;
}

static int place_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        (void) es;
        (void) usec;
        log_warning("The service manager did not start %s in time.", ((ScopeRequest *) userdata)->unit);
        request_done(userdata, -ETIMEDOUT, NULL);
        return 0;
}

static int append_u64(sd_bus_message *m, const char *name, uint64_t v) {
        return v ? sd_bus_message_append(m, "(sv)", name, "t", v) : 0;
}

static int append_properties(Scopes *s, sd_bus_message *m, uint64_t job, uid_t uid, pid_t pid, const ScopeLimits *l) {
        char desc[96], slice[64];
        int r;

        (void) snprintf(desc, sizeof(desc), "mplock job %" PRIu64 " of uid %u", job, (unsigned) uid);
        slice_name(uid, slice, sizeof(slice));
        r = sd_bus_message_append(m, "(sv)(sv)(sv)(sv)", "Description", "s", desc, "Slice", "s", slice, "PIDs", "au", 1,
                                  (uint32_t) pid, "CollectMode", "s", "inactive-or-failed");
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)(sv)(sv)(sv)", "CPUAccounting", "b", 1, "MemoryAccounting", "b", 1,
                                          "TasksAccounting", "b", 1, "IOAccounting", "b", 1);
        /* The kernel's OOM killer takes one worker: an attempt of its item,
         * never the end of the job (a scope's default OOMPolicy, stop, would
         * end the run). */
        if (r >= 0 && s->version >= OOM_POLICY_SINCE)
                r = sd_bus_message_append(m, "(sv)", "OOMPolicy", "s", "continue");
        if (r >= 0)
                r = append_u64(m, "MemoryMax", l->memory_max);
        if (r >= 0)
                r = append_u64(m, "TasksMax", l->tasks_max);
        if (r >= 0)
                r = append_u64(m, "CPUWeight", l->cpu_weight);
        if (r >= 0)
                r = append_u64(m, "CPUQuotaPerSecUSec", (uint64_t) l->cpu_quota * 10000u);
        if (r >= 0)
                r = append_u64(m, "IOWeight", l->io_weight);
        return r;
}

/* Each user's slice gets the configured CPU weight, once: equal weights
 * share the CPU equally between users, however many workers each runs. */
static void weigh_slice(Scopes *s, uid_t uid) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        char slice[64];
        uid_t *w;
        int r;

        for (size_t i = 0; i < s->n_weighted; i++)
                if (s->weighted[i] == uid)
                        return;
        if (s->n_weighted >= REQUESTS_MAX || !(w = reallocarray(s->weighted, s->n_weighted + 1, sizeof(uid_t))))
                return;
        s->weighted = w;
        s->weighted[s->n_weighted++] = uid;
        slice_name(uid, slice, sizeof(slice));
        r = sd_bus_message_new_method_call(s->bus, &m, MGR_DEST, MGR_PATH, MGR_IFACE, "SetUnitProperties");
        if (r >= 0)
                r = sd_bus_message_append(m, "sb", slice, 1);
        if (r >= 0)
                r = sd_bus_message_append(m, "a(sv)", 1, "CPUWeight", "t", (uint64_t) s->user_cpu_weight);
        if (r >= 0)
                r = sd_bus_call_async(s->bus, NULL, m, NULL, NULL, 0);
        if (r < 0)
                log_warning_errno(r, "Cannot set the CPU weight of %s: %m", slice);
}

static int send_start(ScopeRequest *q) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Scopes *s = q->scopes;
        int r;

        r = sd_bus_message_new_method_call(s->bus, &m, MGR_DEST, MGR_PATH, MGR_IFACE, "StartTransientUnit");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", q->unit, "fail");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(sv)");
        if (r >= 0)
                r = append_properties(s, m, q->job, q->uid, q->pid, &q->limits);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "a(sa(sv))", 0);
        if (r >= 0)
                r = sd_bus_call_async(s->bus, &q->call, m, start_reply, q, 0);
        return r;
}

int scope_place(Scopes *s, uint64_t job, uid_t uid, pid_t pid, int pidfd, const ScopeLimits *limits, ScopePlaced placed,
                void *userdata, ScopeRequest **ret) {
        ScopeRequest *q;
        int r;

        if (s->n_requests >= REQUESTS_MAX)
                return -EBUSY;
        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        *q = (ScopeRequest){.scopes = s,
                            .pidfd = pidfd,
                            .job = job,
                            .uid = uid,
                            .pid = pid,
                            .limits = *limits,
                            .placed = placed,
                            .userdata = userdata,
                            .next = s->requests};
        (void) scope_unit_name(job, q->unit, sizeof(q->unit));
        if (s->requests)
                s->requests->prev = q;
        s->requests = q;
        s->n_requests++;
        r = send_start(q);
        if (r >= 0)
                r = sd_event_add_time_relative(s->event, &q->timeout, CLOCK_MONOTONIC, PLACE_TIMEOUT_USEC, 0,
                                               place_timeout, q);
        if (r < 0) {
                q->placed = NULL;
                scope_request_free(q);
                return r;
        }
        weigh_slice(s, uid);
        *ret = q;
        return 0;
}

ScopeRequest *scope_request_free(ScopeRequest *q) {
        if (!q)
                return NULL;
        if (q->prev)
                q->prev->next = q->next;
        else
                q->scopes->requests = q->next;
        if (q->next)
                q->next->prev = q->prev;
        q->scopes->n_requests--;
        q->call = sd_bus_slot_unref(q->call);
        q->timeout = sd_event_source_disable_unref(q->timeout);
        q->retry = sd_event_source_disable_unref(q->retry);
        free(q->job_path);
        free(q);
        return NULL;
}

void scope_kill(Scopes *s, uint64_t job) {
        char unit[64];
        int r;

        if (!s || scope_unit_name(job, unit, sizeof(unit)) < 0)
                return;
        r = sd_bus_call_method_async(s->bus, NULL, MGR_DEST, MGR_PATH, MGR_IFACE, "KillUnit", NULL, NULL, "ssi", unit,
                                     "all", SIGKILL);
        if (r < 0)
                log_warning_errno(r, "Cannot kill %s: %m", unit);
}

static unsigned manager_version(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *v = NULL;

        if (sd_bus_get_property_string(bus, MGR_DEST, MGR_PATH, MGR_IFACE, "Version", &e, &v) < 0 || !v)
                return 0;
        return (unsigned) strtoul(v, NULL, 10);
}

int scopes_new(Scopes **ret, sd_event *event, bool user_instance, uint32_t user_cpu_weight) {
        Scopes *s;
        sd_bus *bus = NULL;
        int r;

        *ret = NULL;
        r = bus_connect(user_instance, &bus);
        if (r < 0) {
                log_info("No service manager to put jobs in scopes (%s): process groups and rlimits only.",
                         strerror(-r));
                return 0;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                sd_bus_unref(bus);
                return -ENOMEM;
        }
        *s = (Scopes){.event = event, .bus = bus, .user_cpu_weight = user_cpu_weight};
        s->version = manager_version(bus);
        r = sd_bus_match_signal(bus, &s->job_removed, NULL, MGR_PATH, MGR_IFACE, "JobRemoved", on_job_removed, s);
        if (r >= 0)
                r = sd_bus_call_method(bus, MGR_DEST, MGR_PATH, MGR_IFACE, "Subscribe", NULL, NULL, "");
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, 0);
        if (r < 0) {
                log_warning_errno(r, "Cannot follow the service manager's jobs: %m; no scopes.");
                scopes_free(s);
                return 0;
        }
        log_info("Jobs run in systemd scopes (%s manager, version %u).", user_instance ? "user" : "system", s->version);
        *ret = s;
        return 0;
}

Scopes *scopes_free(Scopes *s) {
        if (!s)
                return NULL;
        while (s->requests) {
                s->requests->placed = NULL;
                scope_request_free(s->requests);
        }
        s->job_removed = sd_bus_slot_unref(s->job_removed);
        if (s->bus) {
                (void) sd_bus_flush(s->bus);
                s->bus = sd_bus_flush_close_unref(s->bus);
        }
        free(s->weighted);
        free(s);
        return NULL;
}

/* --- accounting, from the cgroup's files --------------------------------- */

static const char *cgroup_fs = "/sys/fs/cgroup";

void scope_set_cgroup_fs(const char *path) {
        cgroup_fs = path;
}

/* Where the unified hierarchy is: /sys/fs/cgroup, or its /unified of a
 * hybrid setup. */
static const char *unified_root(char *buf, size_t len) {
        (void) snprintf(buf, len, "%s/unified/cgroup.procs", cgroup_fs);
        if (access(buf, F_OK) == 0)
                (void) snprintf(buf, len, "%s/unified", cgroup_fs);
        else
                (void) snprintf(buf, len, "%s", cgroup_fs);
        return buf;
}

/* A v1 hierarchy's directory: /sys/fs/cgroup/memory. */
static const char *v1_root(const char *controller, char *buf, size_t len) {
        (void) snprintf(buf, len, "%s/%s", cgroup_fs, controller);
        return buf;
}

static int read_small(const char *dir, const char *cgroup, const char *file, char *buf, size_t len) {
        char path[4096];
        ssize_t n;

        if (snprintf(path, sizeof(path), "%s%s/%s", dir, cgroup, file) >= (int) sizeof(path))
                return -ENAMETOOLONG;
        n = read_virtual_file_at(AT_FDCWD, path, buf, len);
        return n < 0 ? (int) n : 0;
}

static bool key_value(const char *text, const char *key, uint64_t *ret) {
        size_t k = strlen(key);

        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, key, k) == 0 && p[k] == ' ') {
                        *ret = strtoull(p + k + 1, NULL, 10);
                        return true;
                }
        return false;
}

/* io.stat: one line per device, "MAJ:MIN rbytes=N wbytes=N ...". */
static void io_totals(const char *text, ScopeUsage *u) {
        for (const char *p = text; *p;) {
                const char *r = strstr(p, "rbytes="), *w = strstr(p, "wbytes="), *nl = strchr(p, '\n');
                if (r && (!nl || r < nl))
                        u->io_read_bytes += strtoull(r + 7, NULL, 10);
                if (w && (!nl || w < nl))
                        u->io_write_bytes += strtoull(w + 7, NULL, 10);
                if (!nl)
                        break;
                p = nl + 1;
        }
}

int scope_usage(const char *cgroup, ScopeUsage *ret) {
        char buf[4096], rb[1024], v1[1024];
        const char *root = unified_root(rb, sizeof(rb));
        uint64_t v;

        *ret = (ScopeUsage){};
        if (!cgroup || cgroup[0] != '/' || strstr(cgroup, "/../") || strlen(cgroup) > 2048)
                return -EINVAL;
        if (read_small(root, cgroup, "cpu.stat", buf, sizeof(buf)) == 0 && key_value(buf, "usage_usec", &v)) {
                ret->cpu = true;
                ret->cpu_usec = v;
        } else if (read_small(v1_root("cpuacct", v1, sizeof(v1)), cgroup, "cpuacct.usage", buf, sizeof(buf)) == 0) {
                ret->cpu = true;
                ret->cpu_usec = strtoull(buf, NULL, 10) / 1000;
        }
        if (read_small(root, cgroup, "memory.current", buf, sizeof(buf)) == 0) {
                ret->memory = true;
                ret->memory_current = strtoull(buf, NULL, 10);
                if (read_small(root, cgroup, "memory.peak", buf, sizeof(buf)) == 0)
                        ret->memory_peak = strtoull(buf, NULL, 10);
                if (read_small(root, cgroup, "memory.events", buf, sizeof(buf)) == 0)
                        (void) key_value(buf, "oom_kill", &ret->oom_kills);
        } else if (read_small(v1_root("memory", v1, sizeof(v1)), cgroup, "memory.usage_in_bytes", buf, sizeof(buf)) ==
                   0) {
                ret->memory = true;
                ret->memory_current = strtoull(buf, NULL, 10);
                if (read_small(v1, cgroup, "memory.max_usage_in_bytes", buf, sizeof(buf)) == 0)
                        ret->memory_peak = strtoull(buf, NULL, 10);
        }
        if (read_small(root, cgroup, "io.stat", buf, sizeof(buf)) == 0) {
                ret->io = true;
                io_totals(buf, ret);
        }
        return ret->cpu || ret->memory || ret->io ? 0 : -ENOENT;
}

/* The controllers the kernel applies to the job's cgroup: those of the
 * unified hierarchy, and any v1 hierarchy systemd keeps the scope in. */
int scope_controllers(const char *cgroup, char *buf, size_t len) {
        static const char *const v1[] = {"memory", "cpu", "pids", "blkio"};
        char text[512], path[4096], rb[1024];
        size_t n = 0;

        if (!cgroup || cgroup[0] != '/' || strstr(cgroup, "/../") || len == 0)
                return -EINVAL;
        buf[0] = '\0';
        if (read_small(unified_root(rb, sizeof(rb)), cgroup, "cgroup.controllers", text, sizeof(text)) == 0) {
                text[strcspn(text, "\n")] = '\0';
                n = (size_t) snprintf(buf, len, "%s", text);
        }
        for (size_t i = 0; i < ELEMENTSOF(v1) && n < len; i++) {
                (void) snprintf(path, sizeof(path), "%s/%s%s", cgroup_fs, v1[i], cgroup);
                if (access(path, F_OK) == 0 && !strstr(buf, v1[i]))
                        n += (size_t) snprintf(buf + n, len - n, "%s%s", n ? " " : "", v1[i]);
        }
        return 0;
}
