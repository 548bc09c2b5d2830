/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* The sbatch options a Slurm job's owner adds (--slurm-opt): words
 * separated by spaces, each "--name" or "--name=value", the value without
 * spaces or control characters. Options mplock sets itself, or that would
 * hide the array from it (--array, --output, --job-name, --wrap, --hold,
 * --export, --uid...), are refused. Checked by mplockd at submission and
 * split again by the coordinator. */

#define SLURM_OPTS_WORDS_MAX 32u

/* 0, or -EINVAL with *why naming the word and the reason. */
int slurm_options_check(const char *s, char *why, size_t why_len);
/* Splits a checked string into at most SLURM_OPTS_WORDS_MAX malloc'ed words
 * (a NULL-terminated array, freed with strv_free): 0, -EINVAL, -ENOMEM. */
int slurm_options_split(const char *s, char ***ret);
void strv_free(char **v);
