/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "module.h"
#include "runner.h"

/* Loading a module: dlopen with RTLD_NOW (a missing symbol fails here, not
 * in the middle of a job) and RTLD_LOCAL, one entry symbol, an ABI check. */

/* The fields of 1.0, which every module of major version 1 has. */
#define MODULE_MIN_SIZE (offsetof(struct mplock_module, save) + sizeof(void *))

/* The module's definition in our layout: what it has (def->size bytes of
 * it), and zeros (no such callback) for what came after its version. */
static void module_copy_def(Module *m, const struct mplock_module *def) {
        memset(&m->copy, 0, sizeof(m->copy));
        memcpy(&m->copy, def, MIN((size_t) def->size, sizeof(m->copy)));
        m->def = &m->copy;
}

static int module_check(const struct mplock_module *def, const char *path, char *err, size_t errlen) {
        if (def->abi_version != MPLOCK_ABI_MAJOR) {
                (void) snprintf(err, errlen,
                                "%s was built for module ABI version %u, this mplock supports version %u: rebuild it "
                                "against this mplock's <mplock/module.h>",
                                path, def->abi_version, MPLOCK_ABI_MAJOR);
                return -EPROTONOSUPPORT;
        }
        if (def->size < MODULE_MIN_SIZE) {
                (void) snprintf(err, errlen, "%s: module definition too small (%u bytes)", path, def->size);
                return -EPROTONOSUPPORT;
        }
        /* A module of a later minor version may rely on what we lack. */
        if (def->size >= offsetof(struct mplock_module, abi_minor) + sizeof(def->abi_minor) &&
            def->abi_minor > MPLOCK_ABI_MINOR) {
                (void) snprintf(err, errlen,
                                "%s needs module ABI %u.%u, this mplock supports %u.%u: build it against this "
                                "mplock's <mplock/module.h> (or set .abi_minor lower and check MPLOCK_API_HAS)",
                                path, def->abi_version, def->abi_minor, MPLOCK_ABI_MAJOR, MPLOCK_ABI_MINOR);
                return -EPROTONOSUPPORT;
        }
        if (!def->process) {
                (void) snprintf(err, errlen, "%s: the module defines no process callback", path);
                return -EINVAL;
        }
        return 0;
}

int module_load(Module *m, const char *path, char *err, size_t errlen) {
        const struct mplock_module *def;
        struct stat st;
        void *dl;
        int r;

        *m = (Module){};
        if (path[0] != '/') {
                (void) snprintf(err, errlen, "%s: not an absolute path", path);
                return -EINVAL;
        }
        if (stat(path, &st) < 0) {
                (void) snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return -errno;
        }
        if (!S_ISREG(st.st_mode)) {
                (void) snprintf(err, errlen, "%s: not a regular file", path);
                return -EINVAL;
        }
        (void) dlerror();
        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                const char *e = dlerror();
                (void) snprintf(err, errlen, "cannot load module: %s", e ? e : "unknown dlopen error");
                return -ENOEXEC;
        }
        def = dlsym(dl, MPLOCK_MODULE_SYMBOL);
        if (!def) {
                (void) snprintf(err, errlen,
                                "%s is not an mplock module: it has no \"%s\" symbol (define one with "
                                "MPLOCK_MODULE_DEFINE from <mplock/module.h>)",
                                path, MPLOCK_MODULE_SYMBOL);
                (void) dlclose(dl);
                return -ENOENT;
        }
        r = module_check(def, path, err, errlen);
        if (r < 0) {
                (void) dlclose(dl);
                return r;
        }
        m->dl = dl;
        module_copy_def(m, def);
        return 0;
}

void module_unload(Module *m) {
        if (m->dl)
                (void) dlclose(m->dl);
        *m = (Module){};
}
