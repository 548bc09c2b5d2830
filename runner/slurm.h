/* SPDX-License-Identifier: MIT */
#pragma once

typedef struct Job Job;

/* slurm.c: the runner of a Slurm job (docs/slurm.md). mplockd starts it
 * like any runner, as the job's owner, and sees the same messages; but it
 * runs no workers: it cuts the items into shards in a directory on the
 * shared filesystem (OUTPUT/mplock-<id>.slurm/), submits them as one
 * sbatch --array, follows the tasks with squeue, submits a shard again
 * whose task ended before the shard did, and commits into the job's own
 * results file what each shard's checkpoint says is committed there. */

#define SLURM_DIR_SUFFIX ".slurm"
/* Exit statuses of "mplock-runner shard" that the coordinator reads. */
#define SHARD_EXIT_DONE 0
#define SHARD_EXIT_UNREACHABLE 66 /* the shared directory is not there on the node */
#define SHARD_EXIT_FAILED 67      /* the shard's runner failed for good */

/* Takes over from run_main() once the start message is read; exits. */
_Noreturn void slurm_main(Job *job);

/* shard.c: "mplock-runner shard DIR" on a node, in an array task: one
 * shard of DIR, $SLURM_ARRAY_TASK_ID, run by a runner of its own whose
 * commits go to the shard's checkpoint. Returns the exit status. */
int shard_main(int argc, char **argv);
