/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "mplockd.h"
#include "varlink-names.h"

/* Replies waiting to be read by a slow client are capped; a client that
 * does not read its replies is dropped rather than grow without bound. */
#define OUTPUT_MAX (64u * 1024u * 1024u)

static void connection_free(Connection *c);
static void connection_process(Connection *c);

static int connection_update_events(Connection *c) {
        uint32_t ev = 0;

        /* Read only while idle: calls are answered one at a time, and a
         * client that pipelines waits in the kernel's buffer, not ours.
         * With no events asked for, epoll still reports a hang-up, so a
         * waiting client that goes away is noticed at once. */
        if (!c->busy && !c->closing && !c->eof)
                ev |= EPOLLIN;
        if (c->out_sent < c->out_len)
                ev |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io, ev);
}

static int connection_flush(Connection *c) {
        while (c->out_sent < c->out_len) {
                ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -errno;
                }
                c->out_sent += (size_t) n;
        }
        if (c->out_sent == c->out_len)
                c->out_sent = c->out_len = 0;
        return 0;
}

static void connection_queue(Connection *c, char *msg, size_t len) {
        if (!msg) {
                log_oom();
                c->closing = true;
                return;
        }
        if (c->out_len - c->out_sent + len > OUTPUT_MAX) {
                log_warning("Client (uid %u, pid %d) does not read its replies; dropping it.", (unsigned) c->uid,
                            (int) c->pid);
                free(msg);
                c->closing = true;
                c->out_len = c->out_sent = 0;
                return;
        }
        if (c->out_sent > 0 && c->out_sent == c->out_len)
                c->out_sent = c->out_len = 0;
        if (c->out_len + len > c->out_cap) {
                size_t ncap = MAX(c->out_cap * 2, c->out_len + len);
                char *n;
                if (c->out_sent > 0) {
                        memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
                        c->out_len -= c->out_sent;
                        c->out_sent = 0;
                }
                n = c->out_len + len > c->out_cap ? realloc(c->out, ncap) : c->out;
                if (!n) {
                        free(msg);
                        c->closing = true;
                        return;
                }
                if (n != c->out) {
                        c->out = n;
                        c->out_cap = ncap;
                }
        }
        memcpy(c->out + c->out_len, msg, len);
        c->out_len += len;
        free(msg);
}

static int defer_handler(sd_event_source *s, void *userdata) {
        Connection *c = userdata;

        (void) s;
        connection_process(c);
        return 0;
}

/* The call is over: let the next buffered one run, from the event loop so
 * that a reply sent deep inside a job transition does not recurse. */
static void connection_call_finished(Connection *c) {
        varlink_call_done(&c->call);
        c->busy = c->more = c->oneway = false;
        c->wait_for_pause = false;
        /* Idle time counts from the end of a call, not from its request: a
         * long Wait must not leave the connection due for closing. */
        c->last_activity_usec = now_usec(CLOCK_MONOTONIC);
        if (c->wait_job)
                job_remove_waiter(c->wait_job, c);
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_ONESHOT);
}

static void connection_send(Connection *c, char *msg, size_t len) {
        int r;

        connection_queue(c, msg, len);
        r = connection_flush(c);
        if (r < 0)
                c->closing = true;
        (void) connection_update_events(c);
}

/* Sends the final reply (msg, built by the caller; NULL on ENOMEM) of the
 * current call, or nothing for a oneway call, and moves on to the next. */
static void connection_finish(Connection *c, char *msg, size_t len) {
        bool oneway = c->oneway;

        connection_call_finished(c);
        if (oneway)
                free(msg);
        else
                connection_send(c, msg, len);
}

void connection_reply(Connection *c, json_object *params) {
        size_t len = 0;
        char *msg = varlink_build_reply(params, false, &len);

        connection_finish(c, msg, len);
}

void connection_reply_continues(Connection *c, json_object *params) {
        size_t len = 0;
        char *msg;

        if (!c->more) {
                json_object_put(params);
                return;
        }
        msg = varlink_build_reply(params, true, &len);
        connection_send(c, msg, len);
}

void connection_error(Connection *c, const char *error, json_object *params) {
        size_t len = 0;
        char *msg = varlink_build_error(error, params, &len);

        connection_finish(c, msg, len);
}

void connection_error_param(Connection *c, const char *field, const char *reason) {
        json_object *p = json_object_new_object();

        if (p && (json_add_str(p, "parameter", field) < 0 || json_add_str(p, "reason", reason) < 0)) {
                json_object_put(p);
                p = NULL;
        }
        connection_error(c, MPLOCK_ERROR_INVALID_PARAMETER, p);
}

static void connection_protocol_error(Connection *c, const char *why) {
        log_debug("Dropping client (uid %u, pid %d): %s", (unsigned) c->uid, (int) c->pid, why);
        c->closing = true;
}

static void connection_process(Connection *c) {
        /* Handle complete calls already buffered, one at a time. */
        while (!c->busy && !c->closing) {
                const char *msg, *why = NULL;
                size_t len;
                int r = vbuf_next(&c->in, c->manager->settings.max_message, &msg, &len);

                if (r == 0)
                        break;
                if (r < 0) {
                        connection_protocol_error(c, "message too large");
                        break;
                }
                r = varlink_call_parse(msg, len, &c->call, &why);
                if (r < 0) {
                        /* Varlink has no way to answer a message that is not
                         * a call; systemd's implementation disconnects too. */
                        connection_protocol_error(c, why ? why : "malformed call");
                        break;
                }
                c->busy = true;
                c->more = c->call.more;
                c->oneway = c->call.oneway;
                manager_dispatch_call(c);
        }
        if (c->eof && !c->busy)
                c->closing = true;
        /* A message that has begun must end soon (see control_sweep). */
        if (vbuf_empty(&c->in))
                c->partial_since_usec = 0;
        else if (c->partial_since_usec == 0)
                c->partial_since_usec = now_usec(CLOCK_MONOTONIC);
        if (c->closing && c->out_sent == c->out_len) {
                connection_free(c);
                return;
        }
        (void) connection_update_events(c);
}

static int connection_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Connection *c = userdata;
        int r;

        (void) s;
        (void) fd;
        if (revents & EPOLLOUT) {
                r = connection_flush(c);
                if (r < 0) {
                        connection_free(c);
                        return 0;
                }
        }
        if (!c->busy && !c->closing && !c->eof && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                ssize_t n = vbuf_read(&c->in, c->fd, c->manager->settings.max_message);
                c->last_activity_usec = now_usec(CLOCK_MONOTONIC);
                if (n == 0)
                        c->eof = true; /* answer what was sent, then close */
                else if (n == -EMSGSIZE)
                        connection_protocol_error(c, "message too large");
                else if (n < 0 && n != -EAGAIN && n != -EINTR) {
                        connection_free(c);
                        return 0;
                }
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                /* Gone while we work on its call (Wait): nobody to answer. */
                connection_free(c);
                return 0;
        }
        connection_process(c);
        return 0;
}

static void connection_free(Connection *c) {
        Manager *m = c->manager;

        if (c->wait_job)
                job_remove_waiter(c->wait_job, c);
        if (c->submission)
                submission_abort(c->submission);
        if (c->prev)
                c->prev->next = c->next;
        else
                m->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        m->n_connections--;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->defer);
        safe_close(c->fd);
        varlink_call_done(&c->call);
        vbuf_free(&c->in);
        free(c->out);
        free(c);
        /* A slot is free again. */
        if (m->listen_source)
                (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_ON);
}

/* Whether the peer may see and manage every job: root, or a member of
 * the admin group (its primary or supplementary groups, SO_PEERGROUPS). */
static bool peer_is_admin(Manager *m, int fd, uid_t uid, gid_t gid) {
        gid_t groups[256];
        socklen_t len = sizeof(groups);
        uint32_t admin = m->settings.admin_gid;

        if (uid == 0)
                return true;
        if (admin == UINT32_MAX)
                return false;
        if (gid == admin)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return false; /* too many groups, or an old kernel: not admin */
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == admin)
                        return true;
        return false;
}

/* Closes connections that hold a slot and do nothing: no call open and
 * nothing sent for idle-timeout, or a message begun and not finished for
 * message-timeout (a client trickling bytes). Called once a second. */
void control_sweep(Manager *m) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        Connection *c, *next;

        for (c = m->connections; c; c = next) {
                next = c->next;
                if (c->busy || c->out_sent < c->out_len)
                        continue;
                if (c->partial_since_usec && now - c->partial_since_usec > m->settings.message_timeout_usec) {
                        log_debug("Dropping client (uid %u, pid %d): a message took too long.", (unsigned) c->uid,
                                  (int) c->pid);
                        connection_free(c);
                } else if (now - c->last_activity_usec > m->settings.idle_timeout_usec) {
                        log_debug("Dropping idle client (uid %u, pid %d).", (unsigned) c->uid, (int) c->pid);
                        connection_free(c);
                }
        }
}

static uint32_t connections_of_uid(Manager *m, uid_t uid) {
        uint32_t n = 0;

        for (Connection *c = m->connections; c; c = c->next)
                n += c->uid == uid;
        return n;
}

static int listen_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        struct ucred cred;
        socklen_t sl = sizeof(cred);
        Connection *c;
        int cfd, r;

        (void) revents;
        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
                if (errno == EMFILE || errno == ENFILE) {
                        /* Out of descriptors: stop accepting until a
                         * connection closes, instead of spinning. */
                        log_warning("Out of file descriptors, pausing accept().");
                        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                }
                return 0;
        }
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0) {
                safe_close(cfd);
                return 0;
        }
        if (m->n_connections >= m->settings.max_connections ||
            connections_of_uid(m, cred.uid) >= m->settings.max_connections_per_uid) {
                log_warning("Refusing connection from uid %u (pid %d): too many connections.", (unsigned) cred.uid,
                            (int) cred.pid);
                safe_close(cfd);
                return 0;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(cfd);
                return 0;
        }
        c->manager = m;
        c->fd = cfd;
        c->uid = cred.uid;
        c->gid = cred.gid;
        c->pid = cred.pid;
        c->admin = peer_is_admin(m, cfd, cred.uid, cred.gid);
        c->last_activity_usec = now_usec(CLOCK_MONOTONIC);
        r = sd_event_add_io(m->event, &c->io, cfd, EPOLLIN, connection_io, c);
        if (r >= 0)
                r = sd_event_add_defer(m->event, &c->defer, defer_handler, c);
        if (r < 0) {
                sd_event_source_disable_unref(c->io);
                safe_close(cfd);
                free(c);
                return 0;
        }
        (void) sd_event_source_set_enabled(c->defer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->io, "client");
        c->next = m->connections;
        if (m->connections)
                m->connections->prev = c;
        m->connections = c;
        m->n_connections++;
        return 0;
}

int control_listen(Manager *m) {
        union {
                struct sockaddr sa;
                struct sockaddr_un un;
        } sa = { .un.sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        int n, r;

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "sd_listen_fds: %m");
        if (n > 1)
                return log_error_errno(EINVAL, "Expected one socket from the service manager, got %d.", n);
        if (n == 1) {
                fd = SD_LISTEN_FDS_START;
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0)
                        return log_error_errno(EINVAL, "The passed socket is not a listening Unix stream socket.");
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                        return log_error_errno(errno, "fcntl: %m");
                m->socket_activated = true;
        } else {
                _cleanup_close_ int probe = -1;
                mode_t old;

                if (strlen(m->socket_path) >= sizeof(sa.un.sun_path))
                        return log_error_errno(ENAMETOOLONG, "Socket path too long: %s", m->socket_path);
                strcpy(sa.un.sun_path, m->socket_path);
                r = mkdir_parents(m->socket_path, 0755);
                if (r < 0)
                        return log_error_errno(r, "Cannot create the directory of %s: %m", m->socket_path);

                /* Connect first: a live instance must not lose its socket
                 * to us; only a stale file is removed. */
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe < 0)
                        return log_error_errno(errno, "socket: %m");
                if (connect(probe, &sa.sa, sizeof(sa.un)) == 0)
                        return log_error_errno(EADDRINUSE, "Another mplockd is already listening on %s.",
                                               m->socket_path);
                if (errno == ECONNREFUSED)
                        (void) unlink(m->socket_path);

                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0)
                        return log_error_errno(errno, "socket: %m");
                /* The system instance serves every local user (each sees
                 * only their own jobs); a user instance only its user. */
                old = umask(m->system_instance ? 0111 : 0177);
                r = bind(fd, &sa.sa, sizeof(sa.un));
                umask(old);
                if (r < 0)
                        return log_error_errno(errno, "Cannot bind %s: %m", m->socket_path);
                if (listen(fd, SOMAXCONN) < 0)
                        return log_error_errno(errno, "listen: %m");
        }
        r = sd_event_add_io(m->event, &m->listen_source, fd, EPOLLIN, listen_handler, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the socket: %m");
        (void) sd_event_source_set_description(m->listen_source, "listen");
        m->listen_fd = TAKE_FD(fd);
        return 0;
}

void control_close_all(Manager *m) {
        while (m->connections) {
                Connection *c = m->connections;
                (void) connection_flush(c);
                connection_free(c);
        }
        m->listen_source = sd_event_source_disable_unref(m->listen_source);
        if (m->listen_fd >= 0) {
                if (!m->socket_activated)
                        (void) unlink(m->socket_path);
                m->listen_fd = safe_close(m->listen_fd);
        }
}
