/* SPDX-License-Identifier: MIT */
#pragma once

/* "mplock-runner agent": one per user with work in mplockd, exec'd once as
 * that user and kept while it has work. It forks the user's submission
 * checks and job runners on mplockd's request (fd 3, IPC_AGENT_*), so that
 * each costs a fork, not an exec. It holds nothing of mplockd's but that
 * socket, and runs nothing of the user's itself: modules are loaded only
 * in the forked children. The one exception is mplock's own Python
 * bridge, which it may warm up once when mplockd says so (Python started,
 * no job's code), for its runners to inherit. */
int agent_main(char **argv);
