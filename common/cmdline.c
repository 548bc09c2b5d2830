/* SPDX-License-Identifier: MIT */
#include "cmdline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/* One argument may be this long (Linux's MAX_ARG_STRLEN); all of them
 * together this long, well inside ARG_MAX with an environment beside. */
#define ARG_LEN_MAX (128u * 1024u - 1u)
#define ARGS_TOTAL_MAX (1024u * 1024u)
#define NEST_MAX 64

static const struct {
        const char *token;
        CmdRepl repl;
} repls[] = {
        /* Longest first: "{//}" before "{/}". */
        { "{//}", CMD_REPL_DIR }, { "{/.}", CMD_REPL_BASENOEXT }, { "{/}", CMD_REPL_BASE }, { "{.}", CMD_REPL_NOEXT },
        { "{#}", CMD_REPL_SEQ },  { "{%}", CMD_REPL_SLOT },       { "{}", CMD_REPL_ITEM },
};

static CmdRepl match_repl(const char *p, size_t *len) {
        for (size_t i = 0; i < ELEMENTSOF(repls); i++) {
                size_t n = strlen(repls[i].token);
                if (strncmp(p, repls[i].token, n) == 0) {
                        *len = n;
                        return repls[i].repl;
                }
        }
        return CMD_REPL_NONE;
}

static bool blank(char c) {
        return c == ' ' || c == '\t';
}

/* Anything that makes the template a shell script rather than words. */
static bool needs_shell(const char *s) {
        size_t n;
        bool first_word = true;

        for (const char *p = s; *p; p++) {
                if (*p == '{' && match_repl(p, &n) != CMD_REPL_NONE) {
                        p += n - 1;
                        continue;
                }
                if (strchr("|&;<>()$`\\\"'*?[]#~\n\r", *p))
                        return true;
                if (blank(*p) && p > s && !blank(p[-1]))
                        first_word = false;
                if (*p == '=' && first_word)
                        return true; /* NAME=value cmd: an assignment */
        }
        return false;
}

static int add_piece(CmdTemplate *t, size_t *cap, CmdRepl repl, const char *text, size_t len, bool word_end) {
        if (t->n_pieces == *cap) {
                size_t ncap = *cap ? *cap * 2 : 16;
                CmdPiece *np = realloc(t->pieces, ncap * sizeof(*np));
                if (!np)
                        return -ENOMEM;
                t->pieces = np;
                *cap = ncap;
        }
        t->pieces[t->n_pieces++] = (CmdPiece){ .repl = repl, .text = text, .len = len, .word_end = word_end };
        if (repl != CMD_REPL_NONE)
                t->has_repl = true;
        return 0;
}

static int parse_direct(CmdTemplate *t, char *err, size_t errlen) {
        size_t cap = 0, words = 0, n;
        const char *p = t->buf;
        int r;

        while (*p) {
                while (blank(*p))
                        p++;
                if (!*p)
                        break;
                if (++words > CMD_WORDS_MAX) {
                        (void) snprintf(err, errlen, "more than %u words", CMD_WORDS_MAX);
                        return -EINVAL;
                }
                while (*p && !blank(*p)) {
                        const char *start = p;
                        CmdRepl repl = match_repl(p, &n);
                        if (repl != CMD_REPL_NONE)
                                p += n;
                        else
                                while (*p && !blank(*p) && !(*p == '{' && match_repl(p, &n) != CMD_REPL_NONE))
                                        p++;
                        r = add_piece(t, &cap, repl, start, (size_t) (p - start), !*p || blank(*p));
                        if (r < 0)
                                return r;
                }
        }
        if (words == 0) {
                (void) snprintf(err, errlen, "the command is empty");
                return -EINVAL;
        }
        return 0;
}

typedef struct Scan {
        char quote;           /* 0, '\'' or '"' */
        char stack[NEST_MAX]; /* what is open: '(' '$' (for $( ), '{' (${), '`' */
        char saved[NEST_MAX]; /* the quote around it */
        size_t depth;
        bool heredoc;
} Scan;

static int scan_push(Scan *s, char what) {
        if (s->depth == NEST_MAX)
                return -EINVAL;
        s->stack[s->depth] = what;
        s->saved[s->depth++] = s->quote;
        s->quote = 0;
        return 0;
}

static void scan_pop(Scan *s) {
        s->quote = s->saved[--s->depth];
}

/* Whether the top is inside a substitution ($(...), ${...}, `...`),
 * where the quote context of the scan stops being the shell's. */
static bool scan_nested(const Scan *s) {
        for (size_t i = 0; i < s->depth; i++)
                if (s->stack[i] != '(')
                        return true;
        return false;
}

/* One character (or two) of the script outside replacements: how many it
 * takes, having updated the scan. */
static size_t scan_step(Scan *s, const char *p) {
        char top = s->depth ? s->stack[s->depth - 1] : 0;

        if (s->quote == '\'') {
                if (*p == '\'')
                        s->quote = 0;
                return 1;
        }
        if (*p == '\\')
                return p[1] ? 2 : 1;
        if (*p == '$' && (p[1] == '(' || p[1] == '{'))
                return scan_push(s, p[1] == '(' ? '$' : '{') < 0 ? 0 : 2;
        if (*p == '`') {
                if (top == '`')
                        scan_pop(s);
                else if (scan_push(s, '`') < 0)
                        return 0;
                return 1;
        }
        if (s->quote == '"') {
                if (*p == '"')
                        s->quote = 0;
                return 1;
        }
        if (*p == '\'' || *p == '"')
                s->quote = *p;
        else if (*p == '(' && scan_push(s, '(') < 0)
                return 0;
        else if (*p == ')' && (top == '(' || top == '$'))
                scan_pop(s);
        else if (*p == '}' && top == '{')
                scan_pop(s);
        else if (*p == '<' && p[1] == '<')
                s->heredoc = true;
        return 1;
}

static int parse_shell(CmdTemplate *t, char *err, size_t errlen) {
        size_t cap = 0, n;
        const char *p = t->buf, *lit = p;
        Scan s = {};
        int r;

        while (*p) {
                CmdRepl repl = *p != '{' ? CMD_REPL_NONE : match_repl(p, &n);
                size_t k;

                if (repl == CMD_REPL_NONE) {
                        k = scan_step(&s, p);
                        if (k == 0) {
                                (void) snprintf(err, errlen, "nested more than %d deep", NEST_MAX);
                                return -EINVAL;
                        }
                        p += k;
                        continue;
                }
                if (s.quote || scan_nested(&s) || s.heredoc) {
                        (void) snprintf(err, errlen,
                                        "%.*s is inside quotes, $(...), `...`, ${...} or a here-document; put it "
                                        "outside them: mplock quotes it itself",
                                        (int) n, p);
                        return -EINVAL;
                }
                if ((p > lit && (r = add_piece(t, &cap, CMD_REPL_NONE, lit, (size_t) (p - lit), false)) < 0) ||
                    (r = add_piece(t, &cap, repl, p, n, false)) < 0)
                        return r;
                p += n;
                lit = p;
        }
        if (s.quote || s.depth) {
                (void) snprintf(err, errlen, "an unterminated %s", s.quote == '"' ? "\"" : s.quote ? "'" :
                                s.stack[s.depth - 1] == '`' ? "`" : "( or $( or ${");
                return -EINVAL;
        }
        if (p > lit && (r = add_piece(t, &cap, CMD_REPL_NONE, lit, (size_t) (p - lit), false)) < 0)
                return r;
        return 0;
}

int cmd_template_parse(CmdTemplate *t, const char *command, char *err, size_t errlen) {
        size_t len = strlen(command);
        int r;

        *t = (CmdTemplate){};
        if (len > CMD_TEMPLATE_MAX) {
                (void) snprintf(err, errlen, "longer than %u bytes", CMD_TEMPLATE_MAX);
                return -EINVAL;
        }
        for (const char *p = command; *p; p++)
                if (*p != '\n' && *p != '\t' && (unsigned char) *p < 0x20) {
                        (void) snprintf(err, errlen, "a control character (0x%02x)", (unsigned) (unsigned char) *p);
                        return -EINVAL;
                }
        t->buf = strdup(command);
        if (!t->buf)
                return -ENOMEM;
        t->shell = needs_shell(t->buf);
        r = t->shell ? parse_shell(t, err, errlen) : parse_direct(t, err, errlen);
        if (r >= 0 && t->shell) {
                bool empty = true;
                for (const char *p = t->buf; *p && empty; p++)
                        empty = blank(*p) || *p == '\n';
                if (empty) {
                        (void) snprintf(err, errlen, "the command is empty");
                        r = -EINVAL;
                }
        }
        if (r < 0)
                cmd_template_free(t);
        return r;
}

void cmd_template_free(CmdTemplate *t) {
        free(t->buf);
        free(t->pieces);
        *t = (CmdTemplate){};
}

/* --- replacements --------------------------------------------------------- */

/* As GNU parallel: {/} what follows the last '/'; {.} without the last
 * ".ext" that has no '/' after it; {//} the directory, "." without one. */
static void basename_of(const char *s, size_t n, size_t *off, size_t *len) {
        size_t i = n;

        while (i > 0 && s[i - 1] != '/')
                i--;
        *off = i;
        *len = n - i;
}

static size_t noext_len(const char *s, size_t n) {
        for (size_t i = n; i > 0; i--) {
                if (s[i - 1] == '/')
                        return n;
                if (s[i - 1] == '.')
                        return i - 1;
        }
        return n;
}

static char *dup_len(const char *s, size_t n, size_t *ret_len) {
        char *d = malloc(n + 1);

        if (!d)
                return NULL;
        memcpy(d, s, n);
        d[n] = '\0';
        *ret_len = n;
        return d;
}

static char *dirname_of(const char *s, size_t n, size_t *ret_len) {
        size_t i;

        while (n > 1 && s[n - 1] == '/')
                n--;
        i = n;
        while (i > 0 && s[i - 1] != '/')
                i--;
        if (i == 0)
                return dup_len(".", 1, ret_len);
        while (i > 1 && s[i - 1] == '/')
                i--;
        return dup_len(s, i, ret_len);
}

char *cmd_replacement(CmdRepl r, const CmdItem *it, size_t *ret_len) {
        char num[32];
        size_t off, len;

        switch (r) {
        case CMD_REPL_ITEM:
                return dup_len(it->data, it->len, ret_len);
        case CMD_REPL_NOEXT:
                return dup_len(it->data, noext_len(it->data, it->len), ret_len);
        case CMD_REPL_BASE:
                basename_of(it->data, it->len, &off, &len);
                return dup_len(it->data + off, len, ret_len);
        case CMD_REPL_BASENOEXT:
                basename_of(it->data, it->len, &off, &len);
                return dup_len(it->data + off, noext_len(it->data + off, len), ret_len);
        case CMD_REPL_DIR:
                return dirname_of(it->data, it->len, ret_len);
        case CMD_REPL_SEQ:
                return dup_len(num, (size_t) snprintf(num, sizeof(num), "%llu", (unsigned long long) it->seq), ret_len);
        case CMD_REPL_SLOT:
                return dup_len(num, (size_t) snprintf(num, sizeof(num), "%u", it->slot), ret_len);
        default:
                return NULL;
        }
}

/* --- expansion -------------------------------------------------------------- */

typedef struct Buf {
        char *s;
        size_t len, cap;
} Buf;

static int buf_add(Buf *b, const char *s, size_t n) {
        if (b->len + n + 1 > b->cap) {
                size_t ncap = MAX(b->cap * 2, b->len + n + 1);
                char *ns = realloc(b->s, ncap);
                if (!ns)
                        return -ENOMEM;
                b->s = ns;
                b->cap = ncap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
        return 0;
}

/* For sh: one literal word wherever it lands. Every byte that could mean
 * something to sh is backslash-quoted (so that a context our scan got
 * wrong mangles the word, never runs it), the first byte always (no
 * reserved word, no NAME=value), a newline as '<newline>' (a backslash
 * before it would join the lines), the empty string as ''. */
static int sh_quote(Buf *b, const char *s, size_t n) {
        int r = 0;

        if (n == 0)
                return buf_add(b, "''", 2);
        for (size_t i = 0; i < n && r >= 0; i++) {
                unsigned char c = (unsigned char) s[i];
                bool plain = c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                             strchr("-_./,:@%+", c);
                if (c == '\n')
                        r = buf_add(b, "'\n'", 3);
                else if (c == '\0' || !plain || i == 0)
                        r = buf_add(b, "\\", 1) < 0 ? -ENOMEM : buf_add(b, (const char *) &c, 1);
                else
                        r = buf_add(b, (const char *) &c, 1);
        }
        return r;
}

static int add_repl(Buf *b, CmdRepl repl, const CmdItem *it, bool shell) {
        _cleanup_free_ char *v = NULL;
        size_t n;

        v = cmd_replacement(repl, it, &n);
        if (!v)
                return -ENOMEM;
        return shell ? sh_quote(b, v, n) : buf_add(b, v, n);
}

void cmd_argv_free(char **argv) {
        if (!argv)
                return;
        for (char **a = argv; *a; a++)
                free(*a);
        free(argv);
}

static int push_arg(char ***argv, size_t *n, Buf *b, size_t *total) {
        char **na;

        if (!b->s && buf_add(b, "", 0) < 0)
                return -ENOMEM;
        if (b->len > ARG_LEN_MAX || (*total += b->len + 1) > ARGS_TOTAL_MAX)
                return -E2BIG;
        na = realloc(*argv, (*n + 2) * sizeof(char *));
        if (!na)
                return -ENOMEM;
        *argv = na;
        na[(*n)++] = b->s;
        na[*n] = NULL;
        *b = (Buf){};
        return 0;
}

static int expand_direct(const CmdTemplate *t, const CmdItem *it, char ***argv, size_t *n, size_t *total) {
        Buf b = {};
        int r = 0;

        for (size_t i = 0; i < t->n_pieces && r >= 0; i++) {
                const CmdPiece *pc = &t->pieces[i];
                r = pc->repl == CMD_REPL_NONE ? buf_add(&b, pc->text, pc->len) : add_repl(&b, pc->repl, it, false);
                if (r >= 0 && pc->word_end)
                        r = push_arg(argv, n, &b, total);
        }
        if (r >= 0 && !t->has_repl)
                r = buf_add(&b, it->data, it->len) < 0 ? -ENOMEM : push_arg(argv, n, &b, total);
        free(b.s);
        return r;
}

static int expand_shell(const CmdTemplate *t, const CmdItem *it, char ***argv, size_t *n, size_t *total) {
        Buf b = {}, sh = {}, c = {};
        int r = 0;

        for (size_t i = 0; i < t->n_pieces && r >= 0; i++) {
                const CmdPiece *pc = &t->pieces[i];
                r = pc->repl == CMD_REPL_NONE ? buf_add(&b, pc->text, pc->len) : add_repl(&b, pc->repl, it, true);
        }
        if (r >= 0 && !t->has_repl)
                r = buf_add(&b, " ", 1) < 0 ? -ENOMEM : sh_quote(&b, it->data, it->len);
        if (r >= 0)
                r = buf_add(&sh, "/bin/sh", 7) < 0 || buf_add(&c, "-c", 2) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = push_arg(argv, n, &sh, total);
        if (r >= 0)
                r = push_arg(argv, n, &c, total);
        if (r >= 0)
                r = push_arg(argv, n, &b, total);
        free(b.s);
        free(sh.s);
        free(c.s);
        return r;
}

int cmd_template_expand(const CmdTemplate *t, const CmdItem *it, char ***ret_argv) {
        char **argv = NULL;
        size_t n = 0, total = 0;
        int r;

        if (memchr(it->data, '\0', it->len))
                return -EINVAL;
        r = t->shell ? expand_shell(t, it, &argv, &n, &total) : expand_direct(t, it, &argv, &n, &total);
        if (r < 0) {
                cmd_argv_free(argv);
                return r;
        }
        *ret_argv = argv;
        return 0;
}
