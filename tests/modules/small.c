/* SPDX-License-Identifier: MIT */
/* The right ABI version, but a definition too small to hold the callbacks
 * that version has. */
#include <mplock/module.h>

__attribute__((visibility("default"))) const struct mplock_module mplock_module = {
        .abi_version = MPLOCK_MODULE_ABI_VERSION,
        .size = 8,
        .name = "small",
};
