/* SPDX-License-Identifier: MIT */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "job.h"
#include "journal.h"

typedef struct Agents Agents;
typedef struct Settings Settings;

/* The job table and the scheduler: jobs start first come, first served,
 * when their workers fit under max-workers (and their owner's share). */

typedef enum JobEvent {
        JOB_EVENT_STATE,    /* its state changed */
        JOB_EVENT_PROGRESS, /* items were committed */
        JOB_EVENT_RUNNER_EXITED,
} JobEvent;

typedef void (*JobsObserver)(Job *j, JobEvent event, void *userdata);

struct Jobs {
        sd_event *event;
        const Settings *settings;
        int state_fd, jobs_fd, new_fd;
        Agents *agents;
        /* The write-ahead journal (jobs-journal.c); jobs it made durable
         * whose own files are not synced yet carry `journaled`. */
        Journal journal;
        bool journal_ok;
        sd_event_source *checkpoint_source;
        bool checkpoint_queued; /* a round is with the syncer */
        /* The journal is the syncer's too (its checkpoint resets it):
         * appends and resets hold this. */
        pthread_mutex_t journal_lock;
        /* Off-loop syncs (syncer.h); NULL: they are done in the loop. */
        struct Syncer *syncer;
        Job **jobs; /* sorted by id */
        size_t n_jobs, cap_jobs;
        uint64_t next_id;
        uint32_t workers_in_use;
        sd_event_source *schedule_source;
        bool stopping;
        JobsObserver observer;
        void *observer_userdata;
        /* The Python bridge (not owned): its jobs' runners are forked from
         * an agent that has Python running (runner/agent.c). NULL: none. */
        const char *python_bridge;
        /* The service manager, for each job's scope (scope.h). NULL: none. */
        struct Scopes *scopes;
        /* The jobs' on-end commands (notifier.h). */
        struct Notifier *notifier;
};

int jobs_new(Jobs **ret, sd_event *event, const Settings *settings, int state_fd, int jobs_fd, int new_fd,
             Agents *agents, JobsObserver observer, void *userdata);
Jobs *jobs_free(Jobs *jobs);
/* Every job in the state directory, after what the journal holds has
 * been made whole; unfinished ones are recovered and queued. A job that
 * cannot be read is skipped (logged). */
int jobs_load(Jobs *jobs);

Job *jobs_find(Jobs *jobs, uint64_t id);
/* A submitted job, durable in dirfd (taken) with spec (taken): queued.
 * journaled: made durable by its journal record, its files not synced. */
int jobs_add(Jobs *jobs, JobSpec *spec, int dirfd, bool journaled);
/* Forgets an ended job: its state directory goes (its id is remembered). */
int jobs_remove(Jobs *jobs, Job *j);
uint64_t jobs_take_id(Jobs *jobs);

/* Runs the scheduler from the event loop, soon (never from inside a
 * transition). */
void jobs_schedule(Jobs *jobs);

/* Totals for admission limits. */
typedef struct JobsUsage {
        size_t jobs, active, active_of_uid;
        uint64_t input_of_uid; /* bytes of the user's active jobs' snapshots */
} JobsUsage;
void jobs_usage(Jobs *jobs, uid_t uid, JobsUsage *ret);

/* Stopping: runners finish what they hold and exit; nothing new starts. */
void jobs_stop_all(Jobs *jobs);
bool jobs_runners_gone(const Jobs *jobs);

/* For job.c. */
void jobs_emit(Jobs *jobs, Job *j, JobEvent event);
