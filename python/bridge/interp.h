/* SPDX-License-Identifier: MIT */
#pragma once

/* The embedded interpreter of the Python bridge: started once in the job
 * runner, re-initialized after the fork in each worker, and the helper
 * module (helper.py) that does the bridge's rare and one-time work. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>

#include <mplock/module.h>

/* Starts Python (0), or takes over the one this process was forked from
 * (1: a worker of the runner, or a runner of the agent that warmed it up);
 * -errno with the reason given to ctx->api->error_message. */
int interp_start(const mplock_ctx *ctx);
/* Whether this process was forked from one with Python running (and has
 * not taken it over yet): a warm-up's runner, before interp_start. */
bool interp_inherited(void);

/* "3.11": the Python this bridge embeds. */
const char *interp_version(void);

/* helper.NAME(*args); steals args (NULL: an error is raised). A new
 * reference, or NULL with the exception set. */
PyObject *interp_call(const char *name, PyObject *args);
/* helper.NAME(): 0, or -1 with the exception set. */
int interp_call_void(const char *name);

/* The exception being raised, cleared, as "module:qualname\ntraceback"
 * (malloc'd; NULL if even that failed). */
char *interp_describe_error(void);

/* The exception being raised, cleared: its traceback to the job log, and
 * "WHAT: Type: message" as the job's error. Returns -MPLOCK_EINVAL. */
int interp_fail(const mplock_ctx *ctx, const char *what);

/* An item as str (UTF-8, undecodable bytes kept as surrogate escapes). */
PyObject *interp_item(const char *data, size_t len);
