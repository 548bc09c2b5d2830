/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mplock/module.h"

/* host.c: the services a module gets (mplock_api): the shared data, the
 * results of process, logging. One Host per process (a worker, or the
 * runner for the save callbacks). */

/* Where a module's log lines go: a worker sends them to the runner, the
 * runner writes them to the job log and the journal. */
typedef void (*HostLogFn)(void *userdata, int level, const char *message);

#define HOST_MESSAGE_MAX 1024

typedef struct Host {
        json_object *shared;
        char *shared_text;
        char *output;
        mplock_ctx ctx;
        HostLogFn log;
        void *log_userdata;
        /* Set by api->error_message for the error init is about to return. */
        char error_message[HOST_MESSAGE_MAX];
} Host;

int host_init(Host *h, const char *shared_json, const char *output, uint64_t job_id, uint32_t workers,
              uint32_t batch_size);
void host_done(Host *h);
extern const mplock_api host_api;

/* Per-call result slots behind mplock_results. */
typedef struct ResultSlot {
        char *data;
        size_t len, cap;
        int32_t status;
        bool set;
        bool final; /* an error not to be retried (MPLOCK_FAIL_PERMANENT) */
} ResultSlot;

typedef struct ResultSlots {
        ResultSlot *slots;
        size_t n, cap;
        uint32_t attempt; /* of the call's items: 1, or more for a retried item */
} ResultSlots;

int result_slots_reset(ResultSlots *s, size_t n);
void result_slots_free(ResultSlots *s);
