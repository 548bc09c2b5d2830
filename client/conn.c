/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "mplockctl.h"
#include "paths.h"
#include "varlink-names.h"

#define REPLY_MAX (256u << 20)

/* Which socket: --socket, $MPLOCK_SOCKET, --system/--user, else the user
 * instance if it runs, else the system instance. */
static int pick_socket(Ctl *c) {
        const char *e = getenv("MPLOCK_SOCKET");
        char *user = NULL;
        int r;

        if (c->socket_path)
                return 0;
        if (e && *e)
                return (c->socket_path = strdup(e)) ? 0 : -ENOMEM;
        if (c->system || (!c->user && geteuid() == 0))
                return paths_socket(true, &c->socket_path);
        r = paths_socket(false, &user);
        if (r >= 0 && (c->user || access(user, F_OK) == 0)) {
                c->socket_path = user;
                return 0;
        }
        free(user);
        if (c->user)
                return r;
        return paths_socket(true, &c->socket_path);
}

FILE *ctl_err(Ctl *c) {
        return c->err ? c->err : stderr;
}

int ctl_connect(Ctl *c) {
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
        } sa = { .un.sun_family = AF_UNIX };
        int r;

        r = pick_socket(c);
        if (r < 0) {
                fprintf(ctl_err(c),
                        "mplockctl: cannot tell where mplockd listens (no $XDG_RUNTIME_DIR?); use --socket.\n");
                return EXIT_UNREACHABLE;
        }
        if (strlen(c->socket_path) >= sizeof(sa.un.sun_path)) {
                fprintf(ctl_err(c), "mplockctl: socket path too long: %s\n", c->socket_path);
                return EXIT_USAGE;
        }
        strcpy(sa.un.sun_path, c->socket_path);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                fprintf(ctl_err(c), "mplockctl: socket: %s\n", strerror(errno));
                return EXIT_UNREACHABLE;
        }
        if (connect(c->fd, &sa.sa, sizeof(sa.un)) < 0) {
                fprintf(ctl_err(c), "mplockctl: cannot reach mplockd at %s: %s\n", c->socket_path, strerror(errno));
                c->fd = safe_close(c->fd);
                return EXIT_UNREACHABLE;
        }
        return EXIT_OK;
}

void ctl_close(Ctl *c) {
        c->fd = safe_close(c->fd);
        vbuf_free(&c->in);
        if (c->reply)
                json_object_put(c->reply);
        c->reply = NULL;
        free(c->socket_path);
        c->socket_path = NULL;
}

static int error_exit_code(const char *error) {
        if (streq(error, MPLOCK_ERROR_NO_SUCH_JOB) || streq(error, MPLOCK_ERROR_PERMISSION_DENIED))
                return EXIT_NO_JOB;
        return EXIT_ERROR;
}

static void print_error(Ctl *c, const char *error, json_object *params) {
        const char *reason = json_get_str(params, "reason");
        const char *param = json_get_str(params, "parameter");
        json_object *id = json_get(params, "id");
        FILE *f = ctl_err(c);

        if (streq(error, MPLOCK_ERROR_NO_SUCH_JOB))
                fprintf(f, "mplockctl: no such job: %s\n", id ? json_object_get_string(id) : "?");
        else if (streq(error, MPLOCK_ERROR_PERMISSION_DENIED))
                fprintf(f, "mplockctl: permission denied: job %s belongs to another user\n",
                        id ? json_object_get_string(id) : "?");
        else if (streq(error, MPLOCK_ERROR_INVALID_PARAMETER))
                fprintf(f, "mplockctl: invalid %s: %s\n", param ? param : "parameter", reason ? reason : "refused");
        else if (streq(error, MPLOCK_ERROR_JOB_NOT_ACTIVE))
                fprintf(f, "mplockctl: job %s has already ended (%s)\n", id ? json_object_get_string(id) : "?",
                        strna(json_get_str(params, "state")));
        else if (streq(error, MPLOCK_ERROR_JOB_ACTIVE))
                fprintf(f, "mplockctl: job %s is still %s; cancel it first\n", id ? json_object_get_string(id) : "?",
                        strna(json_get_str(params, "state")));
        else if (streq(error, MPLOCK_ERROR_JOB_NOT_PAUSED))
                fprintf(f, "mplockctl: job %s is not paused (%s)\n", id ? json_object_get_string(id) : "?",
                        strna(json_get_str(params, "state")));
        else if (streq(error, MPLOCK_ERROR_NOTHING_TO_RETRY))
                fprintf(f, "mplockctl: job %s has nothing to retry (%s)\n", id ? json_object_get_string(id) : "?",
                        strna(json_get_str(params, "state")));
        else if (streq(error, MPLOCK_ERROR_TOO_MANY_JOBS))
                fprintf(f, "mplockctl: too many jobs%s (limit %s); try again later\n",
                        streq_ptr(json_get_str(params, "scope"), "user") ? " of yours" : "",
                        json_get(params, "limit") ? json_object_get_string(json_get(params, "limit")) : "?");
        else if (streq(error, MPLOCK_ERROR_SHUTTING_DOWN))
                fprintf(f, "mplockctl: mplockd is shutting down; try again\n");
        else if (reason)
                fprintf(f, "mplockctl: %s: %s\n", error, reason);
        else
                fprintf(f, "mplockctl: %s\n", error);
}

static int read_reply(Ctl *c, json_object **ret, bool *continues) {
        for (;;) {
                const char *msg, *error;
                size_t len;
                json_object *params;
                int r = vbuf_next(&c->in, REPLY_MAX, &msg, &len);

                if (r < 0) {
                        fprintf(ctl_err(c), "mplockctl: reply from mplockd too large\n");
                        return EXIT_ERROR;
                }
                if (r > 0) {
                        if (c->reply)
                                json_object_put(c->reply);
                        c->reply = NULL;
                        if (varlink_reply_parse(msg, len, &c->reply, &params, &error, continues) < 0) {
                                fprintf(ctl_err(c), "mplockctl: malformed reply from mplockd\n");
                                return EXIT_ERROR;
                        }
                        if (error) {
                                print_error(c, error, params);
                                return error_exit_code(error);
                        }
                        *ret = params;
                        return EXIT_OK;
                }
                ssize_t n = vbuf_read(&c->in, c->fd, REPLY_MAX);
                if (n == -EINTR)
                        continue;
                if (n <= 0) {
                        fprintf(ctl_err(c), "mplockctl: mplockd closed the connection%s%s\n", n < 0 ? ": " : "",
                                n < 0 ? strerror((int) -n) : "");
                        return EXIT_UNREACHABLE;
                }
        }
}

int ctl_send(Ctl *c, const char *method, json_object *params, bool more) {
        size_t len;
        char *msg;
        int r;

        if (c->fd < 0) {
                r = ctl_connect(c);
                if (r != EXIT_OK) {
                        json_object_put(params);
                        return r;
                }
        }
        msg = varlink_build_call(method, params, more, &len);
        if (!msg) {
                fprintf(ctl_err(c), "mplockctl: out of memory\n");
                return EXIT_ERROR;
        }
        r = write_full(c->fd, msg, len);
        free(msg);
        if (r < 0) {
                fprintf(ctl_err(c), "mplockctl: cannot send to mplockd: %s\n", strerror(-r));
                return EXIT_UNREACHABLE;
        }
        return EXIT_OK;
}

int ctl_call(Ctl *c, const char *method, json_object *params, bool more, json_object **ret, bool *continues) {
        bool cont = false;
        int r = ctl_send(c, method, params, more);

        if (r != EXIT_OK)
                return r;
        r = read_reply(c, ret, &cont);
        if (continues)
                *continues = cont;
        return r;
}

int ctl_next(Ctl *c, json_object **ret, bool *continues) {
        return read_reply(c, ret, continues);
}
