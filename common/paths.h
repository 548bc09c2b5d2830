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
/* Makes path absolute against the working directory, lexically (the path
 * need not exist); "." and ".." components and repeated slashes are
 * resolved. */
int path_make_absolute(const char *path, char **ret);
/* The first directory of $RUNTIME_DIRECTORY / $STATE_DIRECTORY, as set by
 * systemd, or NULL. */
const char *paths_systemd_dir(const char *env);
