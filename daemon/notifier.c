/* SPDX-License-Identifier: MIT */
#include "notifier.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipc.h"
#include "log.h"
#include "macro.h"

/* An agent that could not take the request is tried again after this. */
#define SPAWN_RETRY_USEC (10 * 1000000ULL)
/* The task kills its command at the timeout itself; past this more, the
 * agent is told to. */
#define KILL_GRACE_USEC (5 * 1000000ULL)

typedef struct Notification Notification;

struct Notification {
        Notifier *notifier;
        Notification *prev, *next;
        uint64_t job;
        uint32_t end, uid, gid;
        char *command, *name, *state, *output;
        uint64_t done, failed, total;
        /* Running: */
        AgentTask *task;
        sd_event_source *deadline;
        uint64_t started_usec, timeout_usec;
};

typedef struct NotifyList {
        Notification *head, *tail;
        size_t n;
} NotifyList;

struct Notifier {
        Agents *agents;
        sd_event *event;
        const uint32_t *max_per_uid;
        const uint64_t *timeout_usec;
        NotifyDelivered delivered;
        void *userdata;
        NotifyList waiting, running; /* waiting: in the order they came */
        sd_event_source *kick, *retry;
};

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void list_append(NotifyList *l, Notification *x) {
        x->prev = l->tail;
        x->next = NULL;
        if (l->tail)
                l->tail->next = x;
        else
                l->head = x;
        l->tail = x;
        l->n++;
}

static void list_remove(NotifyList *l, Notification *x) {
        if (x->prev)
                x->prev->next = x->next;
        else
                l->head = x->next;
        if (x->next)
                x->next->prev = x->prev;
        else
                l->tail = x->prev;
        x->prev = x->next = NULL;
        l->n--;
}

static void notification_free(Notification *x) {
        if (!x)
                return;
        x->task = agent_task_free(x->task);
        sd_event_source_disable_unref(x->deadline);
        free(x->command);
        free(x->name);
        free(x->state);
        free(x->output);
        free(x);
}

/* The facts of req, replacing x's. */
static int notification_set(Notification *x, const NotifyRequest *req) {
        char *c = strdup(req->command), *nm = strdup(req->name), *s = strdup(req->state), *o = strdup(req->output);

        if (!c || !nm || !s || !o) {
                free(c);
                free(nm);
                free(s);
                free(o);
                return -ENOMEM;
        }
        free(x->command);
        free(x->name);
        free(x->state);
        free(x->output);
        x->command = c;
        x->name = nm;
        x->state = s;
        x->output = o;
        x->job = req->job;
        x->end = req->end;
        x->uid = req->uid;
        x->gid = req->gid;
        x->done = req->done;
        x->failed = req->failed;
        x->total = req->total;
        return 0;
}

static int kick_handler(sd_event_source *s, void *userdata);

static int retry_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Notifier *n = userdata;

        (void) s;
        (void) usec;
        n->retry = sd_event_source_disable_unref(n->retry);
        (void) sd_event_source_set_enabled(n->kick, SD_EVENT_ONESHOT);
        return 0;
}

int notifier_new(Notifier **ret, Agents *agents, const uint32_t *max_per_uid, const uint64_t *timeout_usec,
                 NotifyDelivered delivered, void *userdata) {
        Notifier *n = calloc(1, sizeof(*n));
        int r;

        if (!n)
                return -ENOMEM;
        *n = (Notifier){ .agents = agents, .event = agents_event(agents), .max_per_uid = max_per_uid,
                         .timeout_usec = timeout_usec, .delivered = delivered, .userdata = userdata };
        /* Started from the loop, never from inside whoever queued. */
        r = sd_event_add_defer(n->event, &n->kick, kick_handler, n);
        if (r < 0) {
                free(n);
                return r;
        }
        (void) sd_event_source_set_enabled(n->kick, SD_EVENT_OFF);
        (void) sd_event_source_set_description(n->kick, "on-end");
        *ret = n;
        return 0;
}

Notifier *notifier_free(Notifier *n) {
        Notification *x;

        if (!n)
                return NULL;
        while ((x = n->running.head)) {
                list_remove(&n->running, x);
                notification_free(x);
        }
        while ((x = n->waiting.head)) {
                list_remove(&n->waiting, x);
                notification_free(x);
        }
        sd_event_source_disable_unref(n->kick);
        sd_event_source_disable_unref(n->retry);
        free(n);
        return NULL;
}

void notifier_counts(const Notifier *n, size_t *ret_running, size_t *ret_waiting) {
        *ret_running = n->running.n;
        *ret_waiting = n->waiting.n;
}

static Notification *find(const NotifyList *l, uint64_t job) {
        for (Notification *x = l->head; x; x = x->next)
                if (x->job == job)
                        return x;
        return NULL;
}

int notifier_queue(Notifier *n, const NotifyRequest *req) {
        Notification *run = find(&n->running, req->job), *wait = find(&n->waiting, req->job), *x;
        int r;

        if ((run && run->end >= req->end) || (wait && wait->end >= req->end))
                return 0;
        if (wait)
                /* Not started yet: it runs once, with the latest end's facts. */
                return notification_set(wait, req);
        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->notifier = n;
        r = notification_set(x, req);
        if (r < 0) {
                free(x);
                return r;
        }
        list_append(&n->waiting, x);
        (void) sd_event_source_set_enabled(n->kick, SD_EVENT_ONESHOT);
        return 0;
}

static void log_outcome(const Notification *x, int code, int status) {
        uint64_t took = (now_usec() - x->started_usec) / 1000000u;

        if (code == CLD_EXITED)
                log_job(status == 0 ? LOG_INFO : LOG_WARNING, x->job,
                        "On-end command exited with status %d after %llu s.", status, (unsigned long long) took);
        else if (status == SIGKILL && took * 1000000u >= x->timeout_usec)
                log_job(LOG_WARNING, x->job, "On-end command timed out after %llu s: killed.",
                        (unsigned long long) (x->timeout_usec / 1000000u));
        else
                log_job(LOG_WARNING, x->job, "On-end command killed by signal %s after %llu s.", strsignal(status),
                        (unsigned long long) took);
}

static void task_exited(AgentTask *t, int code, int status, void *userdata) {
        Notification *x = userdata;
        Notifier *n = x->notifier;
        uint64_t job = x->job;
        uint32_t end = x->end;

        (void) t;
        log_outcome(x, code, status);
        list_remove(&n->running, x);
        notification_free(x);
        (void) sd_event_source_set_enabled(n->kick, SD_EVENT_ONESHOT);
        n->delivered(job, end, n->userdata);
}

static int deadline_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Notification *x = userdata;

        (void) s;
        (void) usec;
        x->deadline = sd_event_source_disable_unref(x->deadline);
        log_job(LOG_WARNING, x->job, "On-end command did not end after its timeout; killing it.");
        agent_task_kill(x->task);
        return 0;
}

static int start(Notifier *n, Notification *x) {
        char num[5][24];
        const uint64_t v[5] = { x->job, x->done, x->failed, x->total, 0 };
        const char *args[] = { "on-end",   "--job",    num[0],    "--name",   x->name,      "--state",
                               x->state,   "--done",   num[1],    "--failed", num[2],       "--total",
                               num[3],     "--output", x->output, "--timeout", num[4],      "--command",
                               x->command };
        int r;

        x->timeout_usec = MAX(*n->timeout_usec, UINT64_C(1000000));
        for (size_t i = 0; i < 4; i++)
                (void) snprintf(num[i], sizeof(num[i]), "%llu", (unsigned long long) v[i]);
        (void) snprintf(num[4], sizeof(num[4]), "%llu", (unsigned long long) (x->timeout_usec / 1000000u));
        r = sd_event_add_time_relative(n->event, &x->deadline, CLOCK_MONOTONIC, x->timeout_usec + KILL_GRACE_USEC, 0,
                                       deadline_handler, x);
        if (r >= 0)
                r = agents_spawn(n->agents, x->uid, x->gid, AGENT_MODE_ON_END, args, ELEMENTSOF(args), NULL, 0,
                                 task_exited, x, &x->task);
        if (r < 0) {
                x->deadline = sd_event_source_disable_unref(x->deadline);
                return log_job_errno(LOG_WARNING, r, x->job,
                                     "Cannot start the on-end command, trying again in %llu s: %m",
                                     (unsigned long long) (SPAWN_RETRY_USEC / 1000000u));
        }
        (void) sd_event_source_set_description(x->deadline, "on-end-timeout");
        x->started_usec = now_usec();
        log_job(LOG_INFO, x->job, "On-end command started (the job is %s).", x->state);
        return 0;
}

static size_t running_of_uid(const Notifier *n, uint32_t uid) {
        size_t k = 0;

        for (const Notification *x = n->running.head; x; x = x->next)
                k += x->uid == uid;
        return k;
}

/* In order, each that may start: none of its job's running, its owner
 * under their bound. */
static int kick_handler(sd_event_source *s, void *userdata) {
        Notifier *n = userdata;
        Notification *x, *next;
        bool failed = false;

        (void) s;
        for (x = n->waiting.head; x; x = next) {
                next = x->next;
                if (find(&n->running, x->job) || running_of_uid(n, x->uid) >= *n->max_per_uid)
                        continue;
                /* Its place kept if it cannot start: tried again in order. */
                if (start(n, x) < 0) {
                        failed = true;
                        continue;
                }
                list_remove(&n->waiting, x);
                list_append(&n->running, x);
        }
        if (failed && !n->retry && sd_event_add_time_relative(n->event, &n->retry, CLOCK_MONOTONIC, SPAWN_RETRY_USEC,
                                                              0, retry_handler, n) >= 0)
                (void) sd_event_source_set_description(n->retry, "on-end-retry");
        return 0;
}
