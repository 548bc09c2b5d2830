/* SPDX-License-Identifier: MIT */
/* Fuzz target: command templates (a client's --exec) and items, as the
 * command adapter parses and expands them. Input: TEMPLATE NUL ITEM.
 * Besides not crashing: in direct mode the item is one argument, exactly;
 * in shell mode its quoted form decodes to the item and holds no byte
 * that sh would act on unescaped. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool plain(unsigned char c) {
        return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("-_./,:@%+", c));
}

/* The strict inverse of the shell quoting: NULL if q holds anything
 * else (an unescaped byte sh would act on). */
static char *unquote(const char *q, size_t n, size_t *len) {
        char *out = malloc(n + 1);
        size_t o = 0;

        if (n == 2 && memcmp(q, "''", 2) == 0) {
                *len = 0;
                return out;
        }
        for (size_t i = 0; i < n; i++) {
                if (q[i] == '\\' && i + 1 < n)
                        out[o++] = q[++i];
                else if (q[i] == '\'' && i + 2 < n && q[i + 1] == '\n' && q[i + 2] == '\'') {
                        out[o++] = '\n';
                        i += 2;
                } else if (i > 0 && plain((unsigned char) q[i]))
                        out[o++] = q[i];
                else {
                        free(out);
                        return NULL; /* the first byte is always escaped, nothing else is bare */
                }
        }
        *len = o;
        return out;
}

static void check_item(const char *item, size_t len) {
        char err[256], **argv = NULL;
        CmdTemplate t;
        CmdItem it = { .data = item, .len = len, .seq = 1, .slot = 1 };
        int r;

        if (cmd_template_parse(&t, "x {}", err, sizeof(err)) < 0)
                abort();
        r = cmd_template_expand(&t, &it, &argv);
        if (r == 0 && (!argv[1] || strlen(argv[1]) != len || memcmp(argv[1], item, len) != 0 || argv[2]))
                abort();
        if (r == 0 && memchr(item, '\0', len))
                abort();
        cmd_argv_free(argv);
        cmd_template_free(&t);

        if (cmd_template_parse(&t, "x {} | y", err, sizeof(err)) < 0 || !t.shell)
                abort();
        argv = NULL;
        r = cmd_template_expand(&t, &it, &argv);
        if (r == 0) {
                const char *s = argv[2];
                size_t n = strlen(s), ulen;
                char *u;
                if (n < 6 || memcmp(s, "x ", 2) != 0 || memcmp(s + n - 4, " | y", 4) != 0)
                        abort();
                u = unquote(s + 2, n - 6, &ulen);
                if (!u || ulen != len || memcmp(u, item, len) != 0)
                        abort();
                free(u);
        }
        cmd_argv_free(argv);
        cmd_template_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *nul = memchr(data, '\0', size);
        size_t tlen = nul ? (size_t) (nul - (const char *) data) : size;
        const char *item = nul ? nul + 1 : "";
        size_t ilen = nul ? size - tlen - 1 : 0;
        char *tmpl = malloc(tlen + 1), err[256], **argv = NULL;
        CmdTemplate t;
        CmdItem it = { .data = item, .len = ilen, .seq = 7, .slot = 2 };

        memcpy(tmpl, data, tlen);
        tmpl[tlen] = '\0';
        if (cmd_template_parse(&t, tmpl, err, sizeof(err)) == 0) {
                if (cmd_template_expand(&t, &it, &argv) == 0 && !argv[0])
                        abort();
                cmd_argv_free(argv);
                cmd_template_free(&t);
        }
        free(tmpl);
        check_item(item, ilen);
        return 0;
}
