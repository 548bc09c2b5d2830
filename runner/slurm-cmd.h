/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* slurm-cmd.c: one of Slurm's commands (sbatch, squeue, scancel, scontrol,
 * sinfo), run as the job's owner with stdin from /dev/null, its output
 * captured (at most SLURM_CMD_OUT_MAX bytes, the rest read and dropped)
 * and its run bounded by SLURM_CMD_TIMEOUT_MS (then killed). */

#define SLURM_CMD_OUT_MAX (1u << 20)
#define SLURM_CMD_TIMEOUT_MS 30000

typedef struct SlurmCmd {
        char *out;     /* stdout, NUL-terminated */
        size_t out_len;
        char err[512]; /* the end of stderr, NUL-terminated, for messages */
        int status;    /* exit status, or 128 + the signal */
} SlurmCmd;

/* 0 once it ran (whatever its status), -errno if it could not be started
 * or read, -ETIMEDOUT if it was killed for taking too long. */
int slurm_cmd(char *const argv[], SlurmCmd *ret);
void slurm_cmd_done(SlurmCmd *c);
