/* SPDX-License-Identifier: MIT */
#pragma once

/* "mplock-runner on-end": a job's on-end command, run as its owner (the
 * owner's agent forks it) when the job ends: /bin/sh -c COMMAND, stdin
 * /dev/null, stdout and stderr appended to the job's log between a line
 * that says it starts and one that says how it ended, with an environment
 * of the job's facts (MPLOCK_JOB_*) and the owner's PATH, HOME, USER,
 * LOGNAME and SHELL only, in the owner's home, in our process group.
 * After --timeout seconds the whole group is killed. The exit status is
 * the command's (128 + N for signal N; 127: not started). */
int on_end_main(int argc, char **argv);
