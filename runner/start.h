/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct Bitset Bitset;
typedef struct RetrySel RetrySel;
typedef struct RunError RunError;

/* start.c: what mplockd hands a new runner: the job description
 * (IPC_START), the job's lock, and the set of committed items. */

/* How long a runner waits for the job's lock: a runner of this job that
 * outlived a killed daemon may still be dying. */
#define START_LOCK_TIMEOUT_USEC (30 * 1000000ULL)

typedef struct Job {
        uint64_t id;
        char *module_path, *output;
        char *module_stamp; /* the module as submitted (check-cache.h), or NULL */
        char *shared; /* the shared data, compact JSON */
        uint32_t n_workers, batch_size, save_batch, max_attempts;
        uint32_t commit_interval_ms, commit_items, timeout_sec, retry_delay_ms;
        uint32_t callback_timeout_sec; /* init and the save callbacks; 0: none */
        uint32_t results_gen;      /* 0, then one more per retry */
        uint64_t prev_results_len; /* committed length of the previous generation */
        RetrySel *retry;           /* the failed items this retry runs; NULL: all */
        bool resumed;              /* an earlier run may have given items to save */
        bool wait_placed;          /* no process before IPC_PLACED */
        uint64_t n_items, input_bytes, memory_max;
        uint64_t max_items_per_worker, max_worker_memory; /* recycling; 0: never */
        uint64_t halt_failures; /* --halt-on-failure as a count; 0: none */
        uint32_t input_crc;
        uint32_t umask; /* the submitter's: the output directory, files, and what workers make */
        /* What the checkpoint says is committed. */
        uint64_t results_len, committed, committed_failed;
        /* A Slurm job (slurm.h): this runner coordinates its shards. */
        bool slurm;
        uint32_t shards;
        char *partition, *slurm_options;
        /* --reuse: the earlier job's results file, as mplockd found it at
         * submission (reuse.h); reuse_job 0: none. */
        uint64_t reuse_job, reuse_len, reuse_items;
        uint32_t reuse_gen;
        char *reuse_output, *reuse_stamp;
        char *start_json; /* the start message as received, for the shards' */
        size_t start_json_len;
} Job;

/* Receives and checks IPC_START on ipc_fd. */
int start_read(Job *job, int ipc_fd, RunError *e);
void start_job_free(Job *job);

/* flock()s the job's lock (a descriptor of its snapshot), waiting at most
 * timeout_usec. */
int start_lock(int lock_fd, uint64_t timeout_usec, RunError *e);

/* Reads the committed set from the daemon's memfd (the plain bitmap) into
 * done, which must then hold exactly `committed` items. */
int start_load_done(Bitset *done, int bitmap_fd, uint64_t n_items, uint64_t committed, RunError *e);
