/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A command per item (issue 13): a template with GNU parallel's
 * replacement strings, parsed once at submission, expanded per item into
 * an argv that never lets an item be interpreted by a shell.
 *
 *   {}   the item          {.}  without its extension   {/}  its basename
 *   {//} its dirname       {/.} basename without extension
 *   {#}  the item's number, 1-based      {%}  the worker slot, 1-based
 *
 * A template without shell syntax is run directly: split on blanks, each
 * replacement put literally into its word. One with shell syntax runs
 * through /bin/sh -c, each replacement backslash-quoted so that it is one
 * literal word wherever the shell meets it (a quote context misjudged by
 * our scan then only mangles it, it never runs it); a replacement that
 * our scan sees inside quotes or $(...), `...`, ${...} is refused at
 * parse time, since there it would not come out literal. Without any
 * replacement the item is appended as the last argument. */

#define CMD_TEMPLATE_MAX 65536u /* bytes of a template */
#define CMD_WORDS_MAX 4096u     /* words of a direct template */

typedef enum CmdRepl {
        CMD_REPL_NONE = 0,
        CMD_REPL_ITEM,      /* {} */
        CMD_REPL_NOEXT,     /* {.} */
        CMD_REPL_BASE,      /* {/} */
        CMD_REPL_DIR,       /* {//} */
        CMD_REPL_BASENOEXT, /* {/.} */
        CMD_REPL_SEQ,       /* {#} */
        CMD_REPL_SLOT,      /* {%} */
} CmdRepl;

typedef struct CmdPiece {
        CmdRepl repl;     /* CMD_REPL_NONE: text */
        const char *text; /* into CmdTemplate.buf */
        size_t len;
        bool word_end; /* the last piece of its word (direct mode) */
} CmdPiece;

typedef struct CmdTemplate {
        bool shell;
        bool has_repl;
        char *buf; /* a copy of the template */
        CmdPiece *pieces;
        size_t n_pieces;
} CmdTemplate;

typedef struct CmdItem {
        const char *data;
        size_t len;
        uint64_t seq;  /* {#} */
        uint32_t slot; /* {%} */
} CmdItem;

/* 0, or -EINVAL with the reason in err, -ENOMEM. */
int cmd_template_parse(CmdTemplate *t, const char *command, char *err, size_t errlen);
void cmd_template_free(CmdTemplate *t);

/* The argv for one item (NULL-terminated; free with cmd_argv_free):
 * the words, or "/bin/sh", "-c", SCRIPT. -EINVAL for an item with a NUL
 * byte (no argument can hold it), -E2BIG past ARG_MAX's order, -ENOMEM. */
int cmd_template_expand(const CmdTemplate *t, const CmdItem *it, char ***ret_argv);
void cmd_argv_free(char **argv);

/* The text a replacement stands for, for an item: into a malloc'd string. */
char *cmd_replacement(CmdRepl r, const CmdItem *it, size_t *ret_len);
