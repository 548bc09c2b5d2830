/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "jobs.h"
#include "json-util.h"

typedef struct Agents Agents;
typedef struct Call Call;
typedef struct Settings Settings;
typedef struct Submitter Submitter;

/* The Varlink methods of io.mplock.Manager and org.varlink.service: the
 * method table, validation of every parameter, the JSON of jobs and
 * results, and the calls waiting for a job (Wait, Cancel, Pause). The only
 * layer that knows both a call and a job. */

typedef struct Api Api;

int api_new(Api **ret, sd_event *event, const Settings *settings, Jobs *jobs, Submitter *submitter,
            Agents *agents);
Api *api_free(Api *api);
/* The transport's handler (control.h) for every call. */
void api_dispatch(Call *call, void *userdata);
/* The jobs' events (jobs.h): answers the calls waiting for this. */
void api_job_event(Api *api, Job *j, JobEvent event);

/* What a Submit call may carry; the fuzzer validates with the same table. */
extern const JsonField submit_fields[];
extern const size_t submit_n_fields;
