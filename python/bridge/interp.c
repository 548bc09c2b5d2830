/* SPDX-License-Identifier: MIT */
#include "interp.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Generated from helper.py. */
extern const char mplock_bridge_helper[];

static pid_t interp_pid;          /* where the interpreter was started or last taken over */
static PyObject *helper;          /* the helper module */
static const mplock_ctx *log_ctx; /* for _mplock_bridge.log */

const char *interp_version(void) {
        return PY_MAJOR_MINOR;
}

/* _mplock_bridge.log(level, text): a line in the job log. */
static PyObject *bridge_log(PyObject *self, PyObject *args) {
        const char *s;
        Py_ssize_t len;
        int level;

        (void) self;
        if (!PyArg_ParseTuple(args, "is#", &level, &s, &len))
                return NULL;
        if (log_ctx)
                log_ctx->api->log(log_ctx, level, "%.*s", (int) (len > 65536 ? 65536 : len), s);
        Py_RETURN_NONE;
}

static PyMethodDef bridge_methods[] = {
        { "log", bridge_log, METH_VARARGS, "log(level, text): a line in the job log" },
        { NULL, NULL, 0, NULL },
};

static struct PyModuleDef bridge_module = {
        PyModuleDef_HEAD_INIT, "_mplock_bridge", "mplock's bridge, seen from Python", -1, bridge_methods,
        NULL, NULL, NULL, NULL,
};

static PyObject *bridge_module_init(void) {
        return PyModule_Create(&bridge_module);
}

/* Extension modules (lib-dynload, numpy) take libpython's symbols from
 * the global scope, where a module dlopen'ed RTLD_LOCAL does not put
 * them: promote the libpython we were loaded with. */
/* Why the interpreter could not start: the job's error, or stderr when
 * warming up in the agent (no job: ctx is NULL). */
static void report(const mplock_ctx *ctx, const char *msg) {
        if (ctx)
                ctx->api->error_message(ctx, msg);
        else
                (void) fprintf(stderr, "mplock-python: %s\n", msg);
}

static int promote_libpython(const mplock_ctx *ctx) {
        Dl_info info;

        if (dladdr((void *) Py_InitializeFromConfig, &info) == 0 || !info.dli_fname) {
                report(ctx, "cannot find libpython's path");
                return -MPLOCK_EIO;
        }
        if (!dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) {
                const char *e = dlerror();
                report(ctx, e ? e : "cannot make libpython's symbols global");
                return -MPLOCK_EIO;
        }
        return 0;
}

static int start_python(const mplock_ctx *ctx) {
        PyConfig config;
        PyStatus st;
        char msg[512];

        if (PyImport_AppendInittab("_mplock_bridge", bridge_module_init) < 0) {
                report(ctx, "cannot register the bridge's Python module");
                return -MPLOCK_ENOMEM;
        }
        /* Isolated: no PYTHON* variables or user site of the runner's
         * environment; the caller's sys.path comes with the payload. No
         * signal handlers: the runner's signals stay the runner's. */
        PyConfig_InitIsolatedConfig(&config);
        config.install_signal_handlers = 0;
        /* No site: it costs a job's start several milliseconds, and the
         * caller's sys.path (which site made for them) comes with the
         * payload; helper.py adds this Python's site directories after it. */
        config.site_import = 0;
        config.buffered_stdio = 0;
        config.parse_argv = 0;
        st = PyConfig_SetBytesString(&config, &config.program_name, BRIDGE_PYTHON);
        if (!PyStatus_Exception(st))
                st = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        if (PyStatus_Exception(st)) {
                snprintf(msg, sizeof(msg), "cannot start Python %s: %s", PY_MAJOR_MINOR,
                         st.err_msg ? st.err_msg : "unknown error");
                report(ctx, msg);
                return -MPLOCK_EINVAL;
        }
        return 0;
}

static int load_helper(const mplock_ctx *ctx) {
        PyObject *code = Py_CompileString(mplock_bridge_helper, "<mplock-bridge-helper>", Py_file_input);

        if (code) {
                helper = PyImport_ExecCodeModule("_mplock_helper", code);
                Py_DECREF(code);
        }
        if (!helper) {
                PyErr_Print();
                report(ctx, "cannot load the bridge's Python helper");
                return -MPLOCK_EINVAL;
        }
        return 0;
}

static int start(const mplock_ctx *ctx) {
        int r;

        if ((r = promote_libpython(ctx)) < 0 || (r = start_python(ctx)) < 0)
                return r;
        interp_pid = getpid();
        return load_helper(ctx);
}

bool interp_inherited(void) {
        return Py_IsInitialized() && interp_pid != getpid();
}

int interp_start(const mplock_ctx *ctx) {
        int r;

        log_ctx = ctx;
        if (Py_IsInitialized()) {
                /* Forked from the process that started it (the runner, or
                 * the user's agent that warmed it up), whose one thread
                 * held the GIL: as os.fork's child. */
                if (interp_pid != getpid()) {
                        PyOS_AfterFork_Child();
                        interp_pid = getpid();
                        /* A warm-up that started Python and then failed. */
                        if (!helper && load_helper(ctx) < 0)
                                return -MPLOCK_EINVAL;
                        return 1;
                }
                return 0;
        }
        r = start(ctx);
        return r < 0 ? r : 0;
}

/* In the user's agent (mplock-runner agent), which mplockd asks to warm
 * up before it forks the runner of a job of this bridge: Python started
 * and the modules every job imports (pickle, cloudpickle) loaded once,
 * so that the agent's later runners inherit them in a fork. No job's
 * code or data is here: that comes in each runner, after the fork. */
__attribute__((visibility("default"))) int mplock_python_warm(void);
int mplock_python_warm(void) {
        int r;

        if (Py_IsInitialized())
                return 0;
        r = start(NULL);
        if (r < 0)
                return r;
        if (interp_call_void("warm") < 0) {
                PyErr_Print();
                return -MPLOCK_EINVAL;
        }
        return 0;
}

PyObject *interp_call(const char *name, PyObject *args) {
        PyObject *f, *r;

        if (!args)
                return NULL;
        f = PyObject_GetAttrString(helper, name);
        r = f ? PyObject_Call(f, args, NULL) : NULL;
        Py_XDECREF(f);
        Py_DECREF(args);
        return r;
}

int interp_call_void(const char *name) {
        PyObject *r = interp_call(name, PyTuple_New(0));

        Py_XDECREF(r);
        return r ? 0 : -1;
}

char *interp_describe_error(void) {
        PyObject *type, *value, *tb, *s;
        const char *text;
        char *out = NULL;

        PyErr_Fetch(&type, &value, &tb);
        if (!type)
                return NULL;
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb && value)
                (void) PyException_SetTraceback(value, tb);
        s = value ? interp_call("describe", Py_BuildValue("(O)", value)) : NULL;
        if (s && (text = PyUnicode_AsUTF8(s)))
                out = strdup(text);
        PyErr_Clear();
        Py_XDECREF(s);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return out;
}

/* The last non-empty line of a traceback: "Type: message". */
static const char *last_line(const char *text, size_t *len) {
        const char *end = text + strlen(text), *start;

        while (end > text && end[-1] == '\n')
                end--;
        start = end;
        while (start > text && start[-1] != '\n')
                start--;
        *len = (size_t) (end - start);
        return start;
}

int interp_fail(const mplock_ctx *ctx, const char *what) {
        char *text = interp_describe_error(), *nl, msg[1024];
        const char *line = "unknown error";
        size_t len = strlen(line);

        if (text) {
                /* Past the "module:qualname" line, the traceback. */
                nl = strchr(text, '\n');
                for (char *p = nl ? nl + 1 : text, *q; *p; p = q ? q + 1 : p + strlen(p)) {
                        q = strchr(p, '\n');
                        ctx->api->log(ctx, MPLOCK_LOG_ERR, "%.*s", (int) (q ? (size_t) (q - p) : strlen(p)), p);
                }
                line = last_line(text, &len);
        }
        snprintf(msg, sizeof(msg), "%s: %.*s", what, (int) len, line);
        ctx->api->error_message(ctx, msg);
        free(text);
        return -MPLOCK_EINVAL;
}

PyObject *interp_item(const char *data, size_t len) {
        return PyUnicode_DecodeUTF8(data, (Py_ssize_t) len, "surrogateescape");
}
