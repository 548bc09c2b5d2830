/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "jobspec.h"

typedef struct Agents Agents;
typedef struct Jobs Jobs;
typedef struct Settings Settings;

/* A submission, from a validated request to a durable job:
 *
 *  1. a directory jobs/.new-XXXX is made with an empty snapshot file;
 *  2. the helper (mplock-runner check), running as the submitter, loads the
 *     module to check its ABI, checks the output directory, and copies the
 *     input list into the snapshot (items sent inline are written by us);
 *  3. we verify the snapshot ourselves (item count, terminators, size,
 *     fingerprint), write job.json, state.json and an empty checkpoint,
 *     rename the directory to the job's id and fsync;
 *  4. only then is the submitter told its id.
 *
 * Any failure removes the directory: nothing half-created is left. The
 * daemon itself never opens the submitter's module, input or output. */

typedef struct Submitter Submitter;
typedef struct Submission Submission;

typedef struct SubmitRequest {
        JobSpec spec;          /* everything the client said; taken */
        uint32_t halt_percent; /* resolved against the item count at the end */
        uint64_t expect_items; /* the count the caller meant, checked at the end (0: any) */
        /* Items sent in the call, each NUL-terminated (not taken), or an
         * input file (spec.input). */
        const char *items;
        size_t items_len;
        uint64_t n_inline;
        bool inline_items;
} SubmitRequest;

typedef enum SubmitOutcome {
        SUBMIT_OK,
        SUBMIT_INVALID,       /* a parameter was refused: parameter, reason */
        SUBMIT_FAILED,        /* we could not store it: reason */
        SUBMIT_SHUTTING_DOWN,
} SubmitOutcome;

typedef struct SubmitResult {
        SubmitOutcome outcome;
        uint64_t id;
        const char *parameter;
        const char *reason;
} SubmitResult;

typedef void (*SubmitDone)(const SubmitResult *result, void *userdata);

/* new_fd: the store's new/ (store_open), where submissions and the spare
 * job directories made ahead of them live until published. */
int submitter_new(Submitter **ret, sd_event *event, const Settings *settings, Jobs *jobs, Agents *agents,
                  int new_fd);
/* Ends every submission, each told SUBMIT_SHUTTING_DOWN. */
Submitter *submitter_free(Submitter *sub);
void submitter_abort_all(Submitter *sub);
/* Submissions under way, in all and of uid. */
size_t submitter_count(const Submitter *sub, uid_t uid, size_t *ret_of_uid);

/* Takes req->spec. done is called exactly once, unless the submission is
 * aborted first; if that happened before this returns (a failure found at
 * once), NULL is returned, else the submission under way. */
Submission *submit_start(Submitter *sub, SubmitRequest *req, SubmitDone done, void *userdata);
/* The submitter went away: nothing is created, done is not called. */
void submission_abort(Submission *s);
