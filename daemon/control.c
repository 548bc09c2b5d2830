/* SPDX-License-Identifier: MIT */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "varlink-names.h"
#include "varlink.h"

/* Replies one client has not read yet; past it the client is dropped. The
 * sum over all clients is bounded too (max-queued-output). */
#define LINK_OUTPUT_MAX (64u * 1024u * 1024u)
/* Supplementary groups kept per peer, for call_peer_in_group(); a peer
 * with more is treated as in none of them beyond its primary group. */
#define LINK_GROUPS_MAX 256
#define SWEEP_INTERVAL_USEC 1000000u

typedef struct Link Link;

struct Call {
        unsigned n_ref;
        Link *link; /* NULL once the link is gone */
        VarlinkCall msg;
        bool ended;
        void (*gone)(Call *call, void *userdata);
        void *gone_userdata;
};

struct Link {
        Control *control;
        Link *prev, *next;
        int fd;
        uid_t uid;
        gid_t gid;
        pid_t pid;
        gid_t groups[LINK_GROUPS_MAX];
        int n_groups;
        /* Timeouts: idle (no call, nothing to send), a message begun and
         * not finished, output the client does not read. */
        uint64_t last_activity_usec, partial_since_usec, last_sent_usec;
        sd_event_source *io, *defer;
        VarlinkBuf in;
        char *out;
        size_t out_len, out_sent, out_cap;
        Call *call; /* being answered; the link holds a reference */
        bool eof;     /* the client will send no more */
        bool closing; /* send what is queued, then close */
};

struct Control {
        sd_event *event;
        const Settings *settings;
        ControlHandler handler;
        void *userdata;
        int listen_fd;
        bool socket_activated;
        char *path;
        sd_event_source *listen_source, *sweep_timer;
        Link *links;
        uint32_t n_links;
        uint64_t queued_output; /* unsent bytes of every link */
};

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void link_free(Link *l);
static void link_process(Link *l);

/* --- calls ---------------------------------------------------------------- */

Call *call_ref(Call *call) {
        call->n_ref++;
        return call;
}

Call *call_unref(Call *call) {
        if (!call || --call->n_ref > 0)
                return NULL;
        varlink_call_done(&call->msg);
        free(call);
        return NULL;
}

const char *call_method(const Call *call) {
        return call->msg.method;
}

json_object *call_parameters(const Call *call) {
        return call->msg.parameters;
}

bool call_wants_more(const Call *call) {
        return call->msg.more;
}

uid_t call_uid(const Call *call) {
        return call->link ? call->link->uid : (uid_t) -1;
}

gid_t call_gid(const Call *call) {
        return call->link ? call->link->gid : (gid_t) -1;
}

pid_t call_pid(const Call *call) {
        return call->link ? call->link->pid : 0;
}

bool call_peer_in_group(const Call *call, gid_t gid) {
        const Link *l = call->link;

        if (!l)
                return false;
        if (l->gid == gid)
                return true;
        for (int i = 0; i < l->n_groups; i++)
                if (l->groups[i] == gid)
                        return true;
        return false;
}

void call_on_gone(Call *call, void (*gone)(Call *call, void *userdata), void *userdata) {
        call->gone = gone;
        call->gone_userdata = userdata;
}

/* --- output --------------------------------------------------------------- */

static size_t link_unsent(const Link *l) {
        return l->out_len - l->out_sent;
}

static void link_drop_output(Link *l) {
        l->control->queued_output -= link_unsent(l);
        l->out_len = l->out_sent = 0;
}

static int link_update_events(Link *l) {
        uint32_t ev = 0;

        /* Read only while idle; with no events asked for, epoll still
         * reports a hang-up, so a waiting client that goes away is noticed. */
        if (!l->call && !l->closing && !l->eof)
                ev |= EPOLLIN;
        if (link_unsent(l) > 0)
                ev |= EPOLLOUT;
        return sd_event_source_set_io_events(l->io, ev);
}

static int link_flush(Link *l) {
        while (link_unsent(l) > 0) {
                ssize_t n = send(l->fd, l->out + l->out_sent, link_unsent(l), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -errno;
                }
                l->out_sent += (size_t) n;
                l->control->queued_output -= (size_t) n;
                l->last_sent_usec = now_usec();
        }
        if (link_unsent(l) == 0)
                l->out_sent = l->out_len = 0;
        return 0;
}

/* Makes room for len more bytes; false if the client or all clients
 * together would hold too much. */
static bool link_reserve(Link *l, size_t len) {
        Control *c = l->control;
        size_t ncap;
        char *n;

        if (link_unsent(l) + len > LINK_OUTPUT_MAX || c->queued_output + len > c->settings->max_queued_output)
                return false;
        if (l->out_sent > 0) {
                memmove(l->out, l->out + l->out_sent, link_unsent(l));
                l->out_len -= l->out_sent;
                l->out_sent = 0;
        }
        if (l->out_len + len <= l->out_cap)
                return true;
        ncap = MAX(l->out_cap * 2, l->out_len + len);
        n = realloc(l->out, ncap);
        if (!n)
                return false;
        l->out = n;
        l->out_cap = ncap;
        return true;
}

/* The link is done for: what it had queued goes, and it is closed from the
 * loop, whatever call it may be in. */
static void link_abandon(Link *l) {
        link_drop_output(l);
        l->closing = true;
        (void) sd_event_source_set_enabled(l->defer, SD_EVENT_ONESHOT);
}

/* Queues a whole message (taken: msg may be NULL on ENOMEM) and sends what
 * the socket takes now. */
static void link_send(Link *l, char *msg, size_t len) {
        if (!msg || !link_reserve(l, len)) {
                if (msg)
                        log_warning("Client (uid %u, pid %d) does not read its replies; dropping it.",
                                    (unsigned) l->uid, (int) l->pid);
                free(msg);
                link_abandon(l);
        } else {
                if (link_unsent(l) == 0)
                        l->last_sent_usec = now_usec();
                memcpy(l->out + l->out_len, msg, len);
                l->out_len += len;
                l->control->queued_output += len;
                free(msg);
                if (link_flush(l) < 0)
                        link_abandon(l);
        }
        (void) link_update_events(l);
}

/* The call is over: the next buffered one runs from the event loop, so
 * that a reply sent deep inside a job transition does not recurse. */
static void call_end(Call *call, char *msg, size_t len) {
        Link *l = call->link;
        bool oneway = call->msg.oneway;

        call->ended = true;
        l->call = NULL;
        l->last_activity_usec = now_usec();
        (void) sd_event_source_set_enabled(l->defer, SD_EVENT_ONESHOT);
        if (oneway)
                free(msg);
        else
                link_send(l, msg, len);
        call_unref(call); /* the link's reference */
}

void call_reply(Call *call, json_object *params) {
        size_t len = 0;
        char *msg;

        if (call->ended || !call->link) {
                json_object_put(params);
                return;
        }
        msg = varlink_build_reply(params, false, &len);
        call_end(call, msg, len);
}

void call_error(Call *call, const char *error, json_object *params) {
        size_t len = 0;
        char *msg;

        if (call->ended || !call->link) {
                json_object_put(params);
                return;
        }
        msg = varlink_build_error(error, params, &len);
        call_end(call, msg, len);
}

static json_object *params_of(const char *k1, const char *v1, const char *k2, const char *v2) {
        json_object *p = json_object_new_object();

        if (p && ((k1 && json_add_str(p, k1, v1) < 0) || (k2 && json_add_str(p, k2, v2) < 0))) {
                json_object_put(p);
                return NULL;
        }
        return p;
}

void call_error_param(Call *call, const char *parameter, const char *reason) {
        call_error(call, MPLOCK_ERROR_INVALID_PARAMETER, params_of("parameter", parameter, "reason", reason));
}

void call_error_reason(Call *call, const char *error, const char *reason) {
        call_error(call, error, params_of("reason", reason, NULL, NULL));
}

void call_notify(Call *call, json_object *params) {
        size_t len = 0;
        char *msg;

        if (call->ended || !call->link || !call->msg.more || link_unsent(call->link) > 0) {
                json_object_put(params);
                return;
        }
        msg = varlink_build_reply(params, true, &len);
        link_send(call->link, msg, len);
}

/* --- links ---------------------------------------------------------------- */

static void link_protocol_error(Link *l, const char *why) {
        log_debug("Dropping client (uid %u, pid %d): %s", (unsigned) l->uid, (int) l->pid, why);
        l->closing = true;
}

/* The next complete message, as a call for the handler. */
static void link_next_call(Link *l) {
        const char *msg, *why = NULL;
        size_t len;
        Call *call;
        int r = vbuf_next(&l->in, l->control->settings->max_message, &msg, &len);

        if (r == 0)
                return;
        if (r < 0) {
                link_protocol_error(l, "message too large");
                return;
        }
        call = calloc(1, sizeof(*call));
        if (!call) {
                link_protocol_error(l, "out of memory");
                return;
        }
        r = varlink_call_parse(msg, len, &call->msg, &why);
        if (r < 0) {
                /* Varlink cannot answer what is not a call; systemd's
                 * implementation disconnects too. */
                free(call);
                link_protocol_error(l, why ? why : "malformed call");
                return;
        }
        /* One reference for the link, one for the handler: a call it has
         * answered stays readable until it returns. */
        call->n_ref = 2;
        call->link = l;
        l->call = call;
        l->control->handler(call, l->control->userdata);
        call_unref(call);
}

static void link_process(Link *l) {
        while (!l->call && !l->closing) {
                size_t before = l->in.consumed;
                link_next_call(l);
                if (l->in.consumed == before && !l->call)
                        break; /* no complete message */
        }
        if (l->eof && !l->call)
                l->closing = true;
        if (vbuf_empty(&l->in))
                l->partial_since_usec = 0;
        else if (l->partial_since_usec == 0)
                l->partial_since_usec = now_usec();
        if (l->closing && link_unsent(l) == 0) {
                link_free(l);
                return;
        }
        (void) link_update_events(l);
}

static int defer_handler(sd_event_source *s, void *userdata) {
        (void) s;
        link_process(userdata);
        return 0;
}

static int link_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Link *l = userdata;

        (void) s;
        (void) fd;
        if ((revents & EPOLLOUT) && link_flush(l) < 0) {
                link_free(l);
                return 0;
        }
        if (!l->call && !l->closing && !l->eof && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                ssize_t n = vbuf_read(&l->in, l->fd, l->control->settings->max_message);
                l->last_activity_usec = now_usec();
                if (n == 0)
                        l->eof = true; /* answer what was sent, then close */
                else if (n == -EMSGSIZE)
                        link_protocol_error(l, "message too large");
                else if (n < 0 && n != -EAGAIN && n != -EINTR) {
                        link_free(l);
                        return 0;
                }
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                /* Gone while a call waits for its answer: nobody to tell. */
                link_free(l);
                return 0;
        }
        link_process(l);
        return 0;
}

static void link_free(Link *l) {
        Control *c = l->control;
        Call *call = TAKE_PTR(l->call);

        if (call) {
                call->link = NULL;
                if (call->gone)
                        call->gone(call, call->gone_userdata);
                call_unref(call);
        }
        if (l->prev)
                l->prev->next = l->next;
        else
                c->links = l->next;
        if (l->next)
                l->next->prev = l->prev;
        c->n_links--;
        link_drop_output(l);
        sd_event_source_disable_unref(l->io);
        sd_event_source_disable_unref(l->defer);
        safe_close(l->fd);
        vbuf_free(&l->in);
        free(l->out);
        free(l);
        /* A slot is free again. */
        if (c->listen_source)
                (void) sd_event_source_set_enabled(c->listen_source, SD_EVENT_ON);
}

/* Closes links that hold a slot for nothing: no call and nothing sent for
 * idle-timeout; a message begun and not finished for message-timeout (a
 * client trickling bytes); replies queued and not read for idle-timeout. */
static int sweep_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Control *c = userdata;
        const Settings *st = c->settings;
        uint64_t now = now_usec();
        Link *l, *next;

        (void) usec;
        for (l = c->links; l; l = next) {
                const char *why = NULL;

                next = l->next;
                if (link_unsent(l) > 0) {
                        if (now - l->last_sent_usec > st->idle_timeout_usec)
                                why = "it does not read its replies";
                } else if (l->call)
                        continue; /* waiting for its answer is no idling */
                else if (l->partial_since_usec && now - l->partial_since_usec > st->message_timeout_usec)
                        why = "a message took too long";
                else if (now - l->last_activity_usec > st->idle_timeout_usec)
                        why = "idle";
                if (why) {
                        log_debug("Dropping client (uid %u, pid %d): %s.", (unsigned) l->uid, (int) l->pid, why);
                        link_free(l);
                }
        }
        (void) sd_event_source_set_time_relative(s, SWEEP_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static uint32_t links_of_uid(Control *c, uid_t uid) {
        uint32_t n = 0;

        for (Link *l = c->links; l; l = l->next)
                n += l->uid == uid;
        return n;
}

static void link_read_groups(Link *l) {
        socklen_t len = sizeof(l->groups);

        /* Too many groups, or an old kernel: the primary group only. */
        if (getsockopt(l->fd, SOL_SOCKET, SO_PEERGROUPS, l->groups, &len) < 0)
                len = 0;
        l->n_groups = (int) (len / sizeof(gid_t));
}

static int link_new(Control *c, int fd, const struct ucred *cred) {
        Link *l = calloc(1, sizeof(*l));
        int r;

        if (!l)
                return -ENOMEM;
        *l = (Link){ .control = c, .fd = fd, .uid = cred->uid, .gid = cred->gid, .pid = cred->pid };
        link_read_groups(l);
        l->last_activity_usec = now_usec();
        r = sd_event_add_io(c->event, &l->io, fd, EPOLLIN, link_io, l);
        if (r >= 0)
                r = sd_event_add_defer(c->event, &l->defer, defer_handler, l);
        if (r < 0) {
                sd_event_source_disable_unref(l->io);
                free(l);
                return r;
        }
        (void) sd_event_source_set_enabled(l->defer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(l->io, "client");
        l->next = c->links;
        if (c->links)
                c->links->prev = l;
        c->links = l;
        c->n_links++;
        return 0;
}

static int listen_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Control *c = userdata;
        struct ucred cred;
        socklen_t sl = sizeof(cred);
        int cfd;

        (void) revents;
        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno == EMFILE || errno == ENFILE) {
                        /* Out of descriptors: stop accepting until a link
                         * closes, instead of spinning. */
                        log_warning("Out of file descriptors, pausing accept().");
                        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                }
                return 0;
        }
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0) {
                safe_close(cfd);
                return 0;
        }
        if (c->n_links >= c->settings->max_connections ||
            links_of_uid(c, cred.uid) >= c->settings->max_connections_per_uid) {
                log_warning("Refusing connection from uid %u (pid %d): too many connections.", (unsigned) cred.uid,
                            (int) cred.pid);
                safe_close(cfd);
                return 0;
        }
        if (link_new(c, cfd, &cred) < 0)
                safe_close(cfd);
        return 0;
}

int control_new(Control **ret, sd_event *event, const Settings *settings, ControlHandler handler, void *userdata) {
        Control *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        *c = (Control){ .event = event, .settings = settings, .handler = handler, .userdata = userdata,
                        .listen_fd = -1 };
        r = sd_event_add_time_relative(event, &c->sweep_timer, CLOCK_MONOTONIC, SWEEP_INTERVAL_USEC, 0,
                                       sweep_handler, c);
        if (r < 0) {
                free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->sweep_timer, "client-sweep");
        *ret = c;
        return 0;
}

/* Binds our own socket, unless a live instance answers on it. */
static int control_bind(const char *path, bool system) {
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
        } sa = { .un.sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1, probe = -1;
        mode_t old;
        int r;

        if (strlen(path) >= sizeof(sa.un.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path too long: %s", path);
        strcpy(sa.un.sun_path, path);
        r = mkdir_parents(path, 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot create the directory of %s: %m", path);
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0)
                return log_error_errno(errno, "socket: %m");
        if (connect(probe, &sa.sa, sizeof(sa.un)) == 0)
                return log_error_errno(EADDRINUSE, "Another mplockd is already listening on %s.", path);
        if (errno == ECONNREFUSED)
                (void) unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "socket: %m");
        /* The system instance serves every local user (each sees only their
         * own jobs); a user instance only its user. */
        old = umask(system ? 0111 : 0177);
        r = bind(fd, &sa.sa, sizeof(sa.un));
        umask(old);
        if (r < 0)
                return log_error_errno(errno, "Cannot bind %s: %m", path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "listen: %m");
        return TAKE_FD(fd);
}

static int control_activated_fd(void) {
        int fd = SD_LISTEN_FDS_START;

        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
                return log_error_errno(EINVAL, "The passed socket is not a listening Unix stream socket.");
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                return log_error_errno(errno, "fcntl: %m");
        return fd;
}

int control_listen(Control *c, const char *path, bool system) {
        _cleanup_close_ int fd = -1;
        int n, r;

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "sd_listen_fds: %m");
        if (n > 1)
                return log_error_errno(EINVAL, "Expected one socket from the service manager, got %d.", n);
        fd = n == 1 ? control_activated_fd() : control_bind(path, system);
        if (fd < 0)
                return fd;
        c->socket_activated = n == 1;
        c->path = strdup(path);
        if (!c->path)
                return log_oom();
        r = sd_event_add_io(c->event, &c->listen_source, fd, EPOLLIN, listen_handler, c);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the socket: %m");
        (void) sd_event_source_set_description(c->listen_source, "listen");
        c->listen_fd = TAKE_FD(fd);
        return 0;
}

Control *control_free(Control *c) {
        if (!c)
                return NULL;
        while (c->links) {
                (void) link_flush(c->links);
                link_free(c->links);
        }
        c->listen_source = sd_event_source_disable_unref(c->listen_source);
        c->sweep_timer = sd_event_source_disable_unref(c->sweep_timer);
        if (c->listen_fd >= 0) {
                if (!c->socket_activated && c->path)
                        (void) unlink(c->path);
                c->listen_fd = safe_close(c->listen_fd);
        }
        free(c->path);
        free(c);
        return NULL;
}
