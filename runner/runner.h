/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "mplock/module.h"
#include "results.h"

/* Host-made item error codes (module codes should stay above -1000). */
#define MPLOCK_ERR_NO_RESULT (-1001) /* process() set nothing for the item */
#define MPLOCK_ERR_CRASHED (-1002)   /* the worker died on it max_attempts times */
#define MPLOCK_ERR_TOO_LARGE (-1003) /* result over MPLOCK_RESULT_MAX */
#define MPLOCK_ERR_PROCESS (-1004)   /* process() failed without a code */

typedef struct Runner Runner;

/* items.c: the input snapshot, mapped read-only and shared by the workers.
 * Items are NUL-terminated; a sparse index (every ITEMS_STRIDE items) finds
 * any item with at most ITEMS_STRIDE-1 short scans. Only the runner looks
 * items up, once per chunk, so the index can be this sparse: 8 bytes per
 * 256 items (0.3 MB at 10,000,000) instead of growing with the job. */
#define ITEMS_STRIDE 256

typedef struct Items {
        const char *map;
        size_t size;
        uint64_t n;
        uint64_t *index;
} Items;

int items_open(Items *it, int fd, uint64_t n, uint64_t bytes, uint32_t crc, char *err, size_t errlen);
void items_close(Items *it);
/* Offset of item i's first byte. */
uint64_t items_offset(const Items *it, uint64_t i);

/* module.c: loading a module and the services it gets from us. */
typedef struct Module {
        void *dl;
        const struct mplock_module *def;
} Module;

int module_load(Module *m, const char *path, char *err, size_t errlen);
void module_unload(Module *m);

typedef struct Host {
        json_object *shared;
        char *shared_text;
        char *output;
        mplock_ctx ctx;
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
} ResultSlot;

typedef struct ResultSlots {
        ResultSlot *slots;
        size_t n, cap;
} ResultSlots;

int result_slots_reset(ResultSlots *s, size_t n);
void result_slots_free(ResultSlots *s);

/* worker.c: the worker process. Commands come on cmd_fd, result blocks
 * and status frames go out on res_fd. */
#define WORKER_CMD_RUN 1u
#define WORKER_CMD_EXIT 2u

typedef struct WorkerCmd {
        uint64_t first;
        uint64_t offset; /* of item first in the snapshot: workers keep no index */
        uint32_t count;
        uint32_t op;
} WorkerCmd;

/* Frames a worker sends besides result blocks. */
#define WORKER_FRAME_MAGIC 0x574c504du /* "MPLW" */
#define WORKER_FRAME_INIT_OK 1u
#define WORKER_FRAME_INIT_FAIL 2u

typedef struct WorkerFrame {
        uint32_t magic;
        uint32_t type;
        int32_t code;
        uint32_t len; /* message bytes that follow */
} WorkerFrame;

/* Shared with the runner: how many calls of process the worker has made,
 * for the item timeout. One cache line each. */
typedef struct WorkerProgress {
        uint64_t calls;
        char pad[56];
} WorkerProgress;

_Noreturn void worker_main(const Module *mod, const Items *items, Host *host, uint32_t worker_no, int cmd_fd,
                           int res_fd, WorkerProgress *progress);

/* check.c: "mplock-runner check", the submission check. */
int check_main(int argc, char **argv);

/* run.c: "mplock-runner run", the job runner. */
int run_main(void);
