/* SPDX-License-Identifier: MIT */
/*
 * mplock-python: the module that runs a Python caller's process,
 * init_function and save_callback in mplock's runner and workers, for the
 * mplock Python package (python/mplock, docs/python.md).
 *
 * The interpreter is libpython, embedded, started once in the job runner
 * (save_init, before any worker is forked), where the caller's payload is
 * loaded: every worker is forked from that interpreter and only runs
 * init_function, so a worker starts in the time of a fork, not of a
 * Python start-up and an unpickling. The per-item path is here in C:
 * the call of process and the results that are None, str or bytes; the
 * rest is helper.py, embedded beside this file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mplock/module.h>

#include "interp.h"

/* Codes of the items' errors, as python/mplock reads them. */
#define CODE_RAISED 1     /* process raised */
#define CODE_UNPICKLABLE 2 /* its result could not be pickled */

typedef struct Callbacks {
        PyObject *process, *init, *save, *shared, *output_filepath;
        PyObject *init_values;
        bool batch;
} Callbacks;

static Callbacks cb;
/* The runner took Python over (it may save); false when it left Python to
 * the workers. */
static bool runner_python;

/* The payload, read once per job in the runner (and in a worker only if
 * it was not: then this is a worker of a runner that did not load it). */
static int load_callbacks(const mplock_ctx *ctx) {
        const char *path = NULL, *version = NULL, *inline_payload = NULL;
        size_t n, n_inline = 0;
        PyObject *r;
        int ok, batch = 0;

        if (cb.process)
                return 0;
        if (ctx->api->shared_get_string(ctx, "/python/payload", &path, &n) < 0 ||
            ctx->api->shared_get_string(ctx, "/python/version", &version, &n) < 0) {
                ctx->api->error_message(ctx, "this module is mplock's Python bridge: submit it through the mplock "
                                             "Python package (mp_lock, mplock.map), which gives it its callbacks");
                return -MPLOCK_EINVAL;
        }
        if (strcmp(version, interp_version()) != 0) {
                char msg[256];
                snprintf(msg, sizeof(msg), "the job was submitted from Python %s, and this bridge runs Python %s",
                         version, interp_version());
                ctx->api->error_message(ctx, msg);
                return -MPLOCK_EINVAL;
        }
        /* Optional: a small payload sent in the Submit (python/mplock). */
        if (ctx->api->shared_get_string(ctx, "/python/inline", &inline_payload, &n_inline) < 0)
                inline_payload = NULL;
        r = interp_call("load", inline_payload ? Py_BuildValue("(ssy#)", path, version, inline_payload,
                                                               (Py_ssize_t) n_inline)
                                               : Py_BuildValue("(ss)", path, version));
        if (!r)
                return interp_fail(ctx, "cannot load the job's Python callbacks");
        ok = PyArg_ParseTuple(r, "OOOOpO", &cb.process, &cb.init, &cb.save, &cb.shared, &batch,
                              &cb.output_filepath);
        if (ok) {
                cb.batch = batch;
                Py_INCREF(cb.process);
                Py_INCREF(cb.init);
                Py_INCREF(cb.save);
                Py_INCREF(cb.shared);
                Py_INCREF(cb.output_filepath);
        }
        Py_DECREF(r);
        if (!ok) {
                cb.process = NULL;
                return interp_fail(ctx, "the job's Python payload is malformed");
        }
        return 0;
}

/* --- in the runner: start and saving -------------------------------------- */

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* The package said, at submission, that the job has no save_callback (a
 * payload inline, without one), and no later call wrote a payload file,
 * whose callbacks would be the ones to run. */
static bool saves_nothing(const mplock_ctx *ctx) {
        const char *path;
        size_t n;
        int saves = 1;

        if (ctx->api->shared_get_bool(ctx, "/python/saves", &saves) < 0 || saves ||
            ctx->api->shared_get_string(ctx, "/python/payload", &path, &n) < 0)
                return false;
        return access(path, F_OK) < 0 && errno == ENOENT;
}

static int py_save_init(const mplock_ctx *ctx, void **save_state) {
        uint64_t t0 = now_usec(), t1;
        int r, warm;

        (void) save_state;
        /* Nothing to save, and Python running in the agent we were forked
         * from: the runner leaves it alone, and each worker takes it over
         * and loads the callbacks itself, side by side, instead of after
         * the runner did (a few milliseconds of page copies each). */
        if (interp_inherited() && saves_nothing(ctx)) {
                ctx->api->log(ctx, MPLOCK_LOG_DEBUG, "No save_callback: Python is left to the workers.");
                return MPLOCK_SAVE_NOTHING;
        }
        runner_python = true;
        warm = interp_start(ctx);
        if (warm < 0)
                return warm;
        t1 = now_usec();
        r = load_callbacks(ctx);
        if (r < 0)
                return r;
        /* What a small job's start costs, where the time goes. */
        ctx->api->log(ctx, MPLOCK_LOG_DEBUG, "Python %s %s in %.1f ms, the callbacks loaded in %.1f ms.",
                      interp_version(), warm ? "taken over from the agent" : "started", (double) (t1 - t0) / 1e3,
                      (double) (now_usec() - t1) / 1e3);
        if (interp_call_void("runner_output") < 0)
                return interp_fail(ctx, "cannot set up the job log");
        /* Without a save_callback, items commit as they come: no batches
         * to wait for, and no copy of the results kept for them. */
        return cb.save == Py_None ? MPLOCK_SAVE_NOTHING : 0;
}

/* The batch's successful items, as (item, result bytes) for helper.save. */
static PyObject *save_entries(const mplock_batch *b) {
        PyObject *list = PyList_New(0);

        for (size_t i = 0; list && i < b->n; i++) {
                const mplock_entry *e = &b->entries[i];
                PyObject *t;

                if (e->status != 0)
                        continue;
                t = Py_BuildValue("(Ny#)", interp_item(e->item, e->item_len), e->result, (Py_ssize_t) e->result_len);
                if (!t || PyList_Append(list, t) < 0)
                        Py_CLEAR(list);
                Py_XDECREF(t);
        }
        return list;
}

static int py_save_batch(const mplock_ctx *ctx, void *save_state, const mplock_batch *b) {
        PyObject *entries, *r;

        (void) save_state;
        if (!cb.save || cb.save == Py_None)
                return 0;
        entries = save_entries(b);
        if (!entries)
                return interp_fail(ctx, "cannot build the save batch");
        if (PyList_GET_SIZE(entries) == 0) {
                Py_DECREF(entries);
                return 0;
        }
        r = interp_call("save", Py_BuildValue("(OON)", cb.save, cb.output_filepath, entries));
        if (!r)
                return interp_fail(ctx, "save_callback raised");
        Py_DECREF(r);
        return 0;
}

static void py_save_fini(const mplock_ctx *ctx, void *save_state) {
        (void) ctx;
        (void) save_state;
        if (runner_python)
                (void) interp_call_void("flush");
}

/* --- in the workers --------------------------------------------------------- */

static int py_init(const mplock_ctx *ctx, void **state) {
        uint64_t t0 = now_usec(), t1;
        bool loaded = cb.process != NULL;
        int r, warm;

        (void) state;
        warm = interp_start(ctx);
        if (warm < 0)
                return warm;
        t1 = now_usec();
        r = load_callbacks(ctx);
        if (r < 0)
                return r;
        if (!loaded)
                /* A runner that left Python to its workers (py_save_init). */
                ctx->api->log(ctx, MPLOCK_LOG_DEBUG, "Python %s %s in %.1f ms, the callbacks loaded in %.1f ms.",
                              interp_version(), warm ? "taken over from the agent" : "started",
                              (double) (t1 - t0) / 1e3, (double) (now_usec() - t1) / 1e3);
        if (interp_call_void("worker_output") < 0)
                return interp_fail(ctx, "cannot set up the worker's output");
        if (cb.init == Py_None)
                cb.init_values = PyDict_New();
        else
                cb.init_values = PyObject_CallOneArg(cb.init, cb.shared);
        if (!cb.init_values)
                return interp_fail(ctx, "init_function raised");
        return 0;
}

static void py_fini(const mplock_ctx *ctx, void *state) {
        (void) ctx;
        (void) state;
        (void) interp_call_void("flush");
}

/* The error of the exception being raised, for item i. */
static void fail_item(mplock_results *out, size_t i, int32_t code) {
        char *msg = interp_describe_error();

        (void) out->api->result_error(out, i, code, msg ? msg : "an exception that could not be described");
        free(msg);
}

/* A result: None, str and bytes here with a one-byte tag, anything else
 * pickled by the helper. */
static void set_result(mplock_results *out, size_t i, PyObject *v) {
        const char *data = NULL;
        /* Most results of a tag are short (None is one byte): no malloc. */
        char tag = 0, *buf, small[256];
        Py_ssize_t len = 0;
        PyObject *enc;
        int r;

        if (v == Py_None)
                tag = 'N';
        else if (PyUnicode_CheckExact(v)) {
                data = PyUnicode_AsUTF8AndSize(v, &len);
                tag = data ? 'S' : 0;
                PyErr_Clear(); /* lone surrogates: pickled below */
        } else if (PyBytes_CheckExact(v)) {
                data = PyBytes_AS_STRING(v);
                len = PyBytes_GET_SIZE(v);
                tag = 'B';
        }
        if (tag) {
                if ((size_t) len >= MPLOCK_RESULT_MAX)
                        r = -MPLOCK_E2BIG;
                else if (!(buf = (size_t) len < sizeof(small) ? small : malloc((size_t) len + 1)))
                        r = -MPLOCK_ENOMEM;
                else {
                        buf[0] = tag;
                        if (len)
                                memcpy(buf + 1, data, (size_t) len);
                        r = out->api->result_set(out, i, buf, (size_t) len + 1);
                        if (buf != small)
                                free(buf);
                }
        } else {
                enc = interp_call("encode", Py_BuildValue("(O)", v));
                if (!enc) {
                        fail_item(out, i, CODE_UNPICKLABLE);
                        return;
                }
                r = out->api->result_set(out, i, PyBytes_AS_STRING(enc), (size_t) PyBytes_GET_SIZE(enc));
                Py_DECREF(enc);
        }
        if (r == -MPLOCK_E2BIG)
                (void) out->api->result_error(out, i, MPLOCK_E2BIG, "the result is larger than mplock's 16 MiB limit");
        else if (r < 0)
                (void) out->api->result_error(out, i, -r, "cannot store the result");
}

static void process_one(const mplock_item *item, mplock_results *out, size_t i) {
        PyObject *args[3] = { interp_item(item->data, item->len), cb.shared, cb.init_values }, *r;

        if (!args[0]) {
                fail_item(out, i, CODE_RAISED);
                return;
        }
        r = PyObject_Vectorcall(cb.process, args, 3, NULL);
        Py_DECREF(args[0]);
        if (!r)
                fail_item(out, i, CODE_RAISED);
        else {
                set_result(out, i, r);
                Py_DECREF(r);
        }
}

/* process(list of items, shared, init_values) -> a list of as many results. */
static void process_batch(const mplock_item *items, size_t n, mplock_results *out) {
        PyObject *list = PyList_New((Py_ssize_t) n), *r = NULL, *seq = NULL;

        for (size_t i = 0; list && i < n; i++) {
                PyObject *s = interp_item(items[i].data, items[i].len);
                if (!s)
                        Py_CLEAR(list);
                else
                        PyList_SET_ITEM(list, (Py_ssize_t) i, s);
        }
        if (list) {
                PyObject *args[3] = { list, cb.shared, cb.init_values };
                r = PyObject_Vectorcall(cb.process, args, 3, NULL);
        }
        if (r)
                seq = interp_call("batch_results", Py_BuildValue("(On)", r, (Py_ssize_t) n));
        if (!seq) {
                char *msg = interp_describe_error();
                for (size_t i = 0; i < n; i++)
                        (void) out->api->result_error(out, i, CODE_RAISED, msg ? msg : "process raised");
                free(msg);
        } else
                for (size_t i = 0; i < n; i++)
                        set_result(out, i, PySequence_Fast_GET_ITEM(seq, (Py_ssize_t) i));
        Py_XDECREF(seq);
        Py_XDECREF(r);
        Py_XDECREF(list);
}

static int py_process(const mplock_ctx *ctx, void *state, const mplock_item *items, size_t n, mplock_results *out) {
        (void) ctx;
        (void) state;
        if (cb.batch) {
                process_batch(items, n, out);
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                process_one(&items[i], out, i);
        return 0;
}

MPLOCK_MODULE_DEFINE(.name = "python",
                     .init = py_init,
                     .process = py_process,
                     .fini = py_fini,
                     .save_init = py_save_init,
                     .save_batch = py_save_batch,
                     .save_fini = py_save_fini);
