/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "bitset.h"
#include "commit.h"
#include "ipc.h"
#include "items.h"
#include "jobspec.h"
#include "output.h"
#include "run-error.h"
#include "slurm-cmd.h"
#include "start.h"

/* The coordinator of a job run as a Slurm job array (slurm.c follows the
 * array and copies its shards' results; slurm-state.c keeps what it needs
 * to go on after a restart on the shared filesystem). */

#define IPC_FD 3
#define LOCK_FD 4
#define INPUT_FD 5
#define BITMAP_FD 6

#define POLL_USEC (1000u * 1000u)
#define SHARDS_PER_NODE 4u
#define STATE_FILE "slurm.json"

_Static_assert(JOB_SHARDS_MAX <= IPC_SHARDS_MAX, "every shard fits the message");

typedef struct Shard {
        uint64_t first, n;             /* its items in the job */
        uint64_t done, failed, results_len; /* its checkpoint, as last peeked */
        uint64_t copied_end;           /* its results file read up to here */
        uint32_t attempts, state;
        bool alive;                    /* in squeue at the last look */
        char job[IPC_SLURM_ID_MAX], node[IPC_SLURM_NODE_MAX];
} Shard;

typedef struct Coord {
        sd_event *event;
        Job *job;
        Output out;
        Items items;
        Bitset done;
        Commit commit;
        char dir[OUTPUT_PATH_MAX]; /* OUTPUT/mplock-<id>.slurm */
        int dirfd;
        char token[17], name[64], array[IPC_SLURM_ID_MAX];
        uint32_t n_shards;
        Shard *shards;
        bool paused; /* the owner paused it: its tasks were stopped, not lost */
        bool started;
        sd_event_source *ipc_source, *timer;
} Coord;

/* Runs argv (slurm_cmd()); a failure to run, or a non-zero status, is
 * -EIO with a message in e (the command's own last words). */
int slurm_run_cmd(char *const argv[], SlurmCmd *ret, RunError *e);
/* Whether s is a Slurm job id ("123" or "123_4") shorter than max. */
bool slurm_id_ok(const char *s, size_t max);

/* slurm-state.c: a shard's directory name (shard-K) */
void shard_name(uint32_t k, char *buf, size_t n);
/* The job's state (slurm.json) written atomically: 0 or the error in e. */
int state_save(Coord *c, RunError *e);
/* The state an earlier coordinator of this job left: 1, 0 if none. */
int state_load(Coord *c, RunError *e);
/* A first run: the shards laid out and prepared, the task script, the
 * state saved. */
int state_new(Coord *c, RunError *e);
