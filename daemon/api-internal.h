/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "json-util.h"

/* Shared by the api-*.c files only. */

struct Api {
        sd_event *event;
        const Settings *settings;
        Jobs *jobs;
        Submitter *submitter;
        Agents *agents;
        struct Waiter *waiters;
        sd_event_source *progress_timer;
};

/* api-job.c: the Job of the interface, and finding the job a call names. */
json_object *job_to_json(const Job *j);
void reply_job(Call *call, const Job *j);
/* Validates the call's parameters against fields (which must include a
 * required "id") and finds the job the caller may access; otherwise
 * answers the call and returns NULL. */
Job *lookup_job(Api *api, Call *call, const JsonField *fields, size_t n_fields);
void error_with_state(Call *call, const char *error, const Job *j);
/* Whether the caller may see every job: root, or the admin group. */
bool call_is_admin(const Api *api, const Call *call);

/* Whether uid may have one more active job (new_job: and one more job in
 * the table), counting submissions under way; answers the call
 * TooManyJobs if not. Submit and Retry ask. */
bool api_admit(Api *api, Call *call, uid_t uid, bool new_job);

/* api-submit.c, api-results.c */
void method_submit(Api *api, Call *call);
void method_results(Api *api, Call *call);
/* api-stats.c */
void method_stats(Api *api, Call *call);
