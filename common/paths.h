/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>

/* Where the daemon listens and keeps state, and where clients look:
 *   system instance  /run/mplockd/io.mplock.Manager, /var/lib/mplockd
 *   user instance    $XDG_RUNTIME_DIR/mplockd/io.mplock.Manager,
 *                    $XDG_STATE_HOME/mplockd (default ~/.local/state/mplockd)
 * Under systemd, $RUNTIME_DIRECTORY and $STATE_DIRECTORY (set by
 * RuntimeDirectory= and StateDirectory=) take precedence for the daemon. */

#define MPLOCK_SOCKET_NAME "io.mplock.Manager"
#define MPLOCK_SYSTEM_RUNTIME_DIR "/run/mplockd"
#define MPLOCK_SYSTEM_STATE_DIR "/var/lib/mplockd"

/* malloc'ed paths; -ENXIO if the user instance has no runtime directory. */
int paths_socket(bool system, char **ret);
int paths_state_dir(bool system, char **ret);
/* $XDG_STATE_HOME/NAME, else ~/.local/state/NAME (the passwd entry's
 * home without $HOME): where a user's own state goes. */
int paths_user_state(const char *name, char **ret);
/* DIR/rel for the directory of our own binary, if access(mode) allows it
 * (a build tree, where the other binaries and modules sit beside us);
 * -ENOENT otherwise, the caller then takes the installed path. */
int paths_beside_self(const char *rel, int mode, char **ret);
/* Makes path absolute against the working directory, lexically (the path
 * need not exist); "." and ".." components and repeated slashes are
 * resolved. */
int path_make_absolute(const char *path, char **ret);
/* The first directory of $RUNTIME_DIRECTORY / $STATE_DIRECTORY, as set by
 * systemd, or NULL. */
const char *paths_systemd_dir(const char *env);
