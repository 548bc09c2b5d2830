/* SPDX-License-Identifier: MIT */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

typedef struct Settings Settings;

/* The transport: the Varlink socket, its connections ("links"), framing,
 * peer credentials and every per-connection limit. It knows nothing of
 * jobs: each complete call is handed to one handler as a Call, a
 * reference-counted handle that the handler answers now or later.
 *
 * A link runs one call at a time; the next message is read only once the
 * current call has its final reply, so a pipelining client waits in the
 * kernel's buffer, not in ours. */

typedef struct Control Control;
typedef struct Call Call;

typedef void (*ControlHandler)(Call *call, void *userdata);

/* settings stays the daemon's: a reload applies to what comes next. */
int control_new(Control **ret, sd_event *event, const Settings *settings, ControlHandler handler, void *userdata);
/* Listens on the socket the service manager passed, else binds path (not
 * if another instance answers there). system: the socket is for every
 * local user (0666), else for ours only (0600). */
int control_listen(Control *c, const char *path, bool system);
/* Closes every link (flushing what can be sent now) and the socket. */
Control *control_free(Control *c);

/* A call and its peer. */
Call *call_ref(Call *call);
Call *call_unref(Call *call);
const char *call_method(const Call *call);
json_object *call_parameters(const Call *call); /* NULL: none */
bool call_wants_more(const Call *call);
uid_t call_uid(const Call *call);
gid_t call_gid(const Call *call);
pid_t call_pid(const Call *call);
/* Whether gid is the peer's primary or one of its supplementary groups
 * (SO_PEERGROUPS, read when it connected). */
bool call_peer_in_group(const Call *call, gid_t gid);

/* The final reply, which ends the call (none is sent for a oneway call).
 * Both take params (NULL: an empty object) and are no-ops once the call
 * has ended or its link is gone. */
void call_reply(Call *call, json_object *params);
void call_error(Call *call, const char *error, json_object *params);
/* The common errors, built here. */
void call_error_param(Call *call, const char *parameter, const char *reason);
void call_error_reason(Call *call, const char *error, const char *reason);
/* A reply with "continues": only for calls with "more"; dropped unless
 * the link has sent everything queued before (a client that reads slowly
 * gets fewer progress replies, not more memory held for it). */
void call_notify(Call *call, json_object *params);

/* Called at most once, when the link goes away before the call ended (the
 * handler drops what it keeps for the call). */
void call_on_gone(Call *call, void (*gone)(Call *call, void *userdata), void *userdata);
