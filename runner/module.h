/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "mplock/module.h"

/* module.c: loading a module (dlopen with RTLD_NOW and RTLD_LOCAL, one
 * entry symbol, the ABI check). def points to the module's definition in
 * our layout: a module built for an earlier minor version has zeros (no
 * such callback) where later fields would be. */
typedef struct Module {
        void *dl;
        const struct mplock_module *def;
        struct mplock_module copy;
} Module;

int module_load(Module *m, const char *path, char *err, size_t errlen);
void module_unload(Module *m);
