/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mplock/module.h"

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
