/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "agents.h"

/* Jobs' on-end commands (submit --on-end), run as each job's owner by the
 * owner's agent ("mplock-runner on-end", runner/on-end.h) when the job
 * ends. One runs per job at a time, at most *max_per_uid per user (the
 * rest wait, in order), each for at most *timeout_usec: a user cannot
 * fork without bound through them. What is owed is the jobs' to keep
 * durable (JobStatus.ends and .notified); here it is only run. */

typedef struct Notifier Notifier;

/* One end of one job, and the facts its command is given. The strings
 * are copied. */
typedef struct NotifyRequest {
        uint64_t job;
        uint32_t end; /* which end (JobStatus.ends) */
        uint32_t uid, gid;
        const char *command, *name, *state, *output;
        uint64_t done, failed, total;
} NotifyRequest;

/* The command of that end has run, however it ended (logged here). */
typedef void (*NotifyDelivered)(uint64_t job, uint32_t end, void *userdata);

/* The limits are read where they are (the daemon's settings, which a
 * reload changes), at each start. */
int notifier_new(Notifier **ret, Agents *agents, const uint32_t *max_per_uid, const uint64_t *timeout_usec,
                 NotifyDelivered delivered, void *userdata);
/* Kills what runs; nothing is told (it is still owed on disk). */
Notifier *notifier_free(Notifier *n);
/* Owed: run it soon. A request for an end that is already waiting or
 * running (or an earlier end of a job whose later end waits) is one:
 * waiting ones take the latest facts. -ENOMEM. */
int notifier_queue(Notifier *n, const NotifyRequest *req);
/* How many run and wait (for status and tests of the bounds). */
void notifier_counts(const Notifier *n, size_t *ret_running, size_t *ret_waiting);
