/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* retrysel.c: which failed items a retry runs again (mplockctl retry
 * --code N, --items RANGE). With codes, a failed item whose error code is
 * one of them; with ranges, a failed item whose index is in one; with
 * both, both must hold; with neither, every failed item. The failed items
 * not chosen keep their records (the runner carries them over). Items
 * without a record are run by every retry: a job ends complete only once
 * each item has one.
 *
 * Kept as text, in state.json and the runner's start message, canonical:
 * codes "7,503" (sorted, each once), ranges "3,10-20" (sorted, merged). */

#define RETRY_SEL_MAX 1024u /* codes, and ranges, at most */
/* The canonical text of RETRY_SEL_MAX of them, at most. */
#define RETRY_SEL_TEXT_MAX (RETRY_SEL_MAX * 42u)

typedef struct RetryRange {
        uint64_t first, last; /* inclusive */
} RetryRange;

typedef struct RetrySel {
        int32_t codes[RETRY_SEL_MAX];
        size_t n_codes;
        RetryRange ranges[RETRY_SEL_MAX];
        size_t n_ranges;
} RetrySel;

/* Each adds one; -E2BIG past RETRY_SEL_MAX, -EINVAL for code 0 (success)
 * or first > last, -ERANGE for an index not below n_items. */
int retry_sel_add_code(RetrySel *s, int64_t code);
int retry_sel_add_range(RetrySel *s, uint64_t first, uint64_t last, uint64_t n_items);
/* A comma list, added: "7,-5" codes, "3,10-20" ranges. The same errors;
 * -EINVAL for anything but numbers, dashes and commas. */
int retry_sel_parse_codes(RetrySel *s, const char *text);
int retry_sel_parse_items(RetrySel *s, const char *text, uint64_t n_items);
/* Sorts, drops repeats, merges ranges that touch. */
void retry_sel_normalize(RetrySel *s);
/* The text of a normalized s, malloc'ed; NULL if s has none of that kind
 * (and, when it has, if there is no memory). */
char *retry_sel_codes_text(const RetrySel *s);
char *retry_sel_items_text(const RetrySel *s);

static inline bool retry_sel_all(const RetrySel *s) {
        return s->n_codes == 0 && s->n_ranges == 0;
}
/* Whether a failed item (status != 0) is run again. Normalized s. */
bool retry_sel_wants(const RetrySel *s, uint64_t index, int32_t status);
