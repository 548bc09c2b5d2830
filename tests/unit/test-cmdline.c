/* SPDX-License-Identifier: MIT */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmdline.h"
#include "test-util.h"

/* Items that a shell would take apart, run or expand. */
static const char *const hostile[] = {
        "a b; rm -rf x", "'quote'", "\"dq\"", "$(id)", "`id`", "$HOME", ";", "*", "-n", "--help", "caf\xc3\xa9 \xc3\xbc",
        "a\nb", "", "x=1", "if", "back\\slash", "~", "#comment", "{}", "a\tb", "!", "a|b&c>d<e", "(x)", "\\", "'",
        "trailing\\",
};

static char **expand(const char *tmpl, const char *item, uint64_t seq, uint32_t slot) {
        char err[256] = "";
        CmdTemplate t;
        CmdItem it = { .data = item, .len = strlen(item), .seq = seq, .slot = slot };
        char **argv = NULL;

        ck_assert_msg(cmd_template_parse(&t, tmpl, err, sizeof(err)) == 0, "%s: %s", tmpl, err);
        ck_assert_int_eq(cmd_template_expand(&t, &it, &argv), 0);
        cmd_template_free(&t);
        return argv;
}

static void assert_argv(char **argv, const char *const *want) {
        size_t i = 0;

        for (; want[i]; i++) {
                ck_assert_ptr_nonnull(argv[i]);
                ck_assert_str_eq(argv[i], want[i]);
        }
        ck_assert_ptr_null(argv[i]);
        cmd_argv_free(argv);
}

/* What argv prints when run: its stdout, whole. */
static char *run(char **argv, size_t *len) {
        int fds[2], status;
        size_t n = 0, cap = 4096;
        char *out = malloc(cap);
        pid_t pid;
        ssize_t k;

        ck_assert_int_eq(pipe(fds), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(fds[1], 1);
                close(fds[0]);
                execv(argv[0], argv);
                _exit(127);
        }
        close(fds[1]);
        while ((k = read(fds[0], out + n, cap - n)) > 0)
                if ((n += (size_t) k) == cap)
                        out = realloc(out, cap *= 2);
        close(fds[0]);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s failed", argv[0]);
        *len = n;
        return out;
}

static bool is_shell(const char *tmpl) {
        char err[256];
        CmdTemplate t;
        bool r;

        ck_assert_msg(cmd_template_parse(&t, tmpl, err, sizeof(err)) == 0, "%s: %s", tmpl, err);
        r = t.shell;
        cmd_template_free(&t);
        return r;
}

START_TEST(test_direct) {
        assert_argv(expand("gzip -9 {}", "a b; rm -rf x", 1, 1),
                    (const char *const[]){ "gzip", "-9", "a b; rm -rf x", NULL });
        /* No replacement: the item is the last argument. */
        assert_argv(expand("  echo   -n ", "$(id)", 1, 1), (const char *const[]){ "echo", "-n", "$(id)", NULL });
        /* Replacements inside words, several in one word. */
        assert_argv(expand("convert {} out/{/.}.png --slot={%} n{#}x", "in/a.b.jpg", 7, 2),
                    (const char *const[]){ "convert", "in/a.b.jpg", "out/a.b.png", "--slot=2", "n7x", NULL });
        /* Braces that are not replacements stay. */
        assert_argv(expand("echo {a,b} {x", "i", 1, 1), (const char *const[]){ "echo", "{a,b}", "{x", "i", NULL });
        /* Every hostile item is one literal argument. */
        for (size_t i = 0; i < ELEMENTSOF(hostile); i++)
                assert_argv(expand("/bin/echo {}", hostile[i], 1, 1), (const char *const[]){ "/bin/echo", hostile[i], NULL });
        ck_assert(!is_shell("echo {} a=b"));
        ck_assert(is_shell("FOO=1 env {}")); /* an assignment first */
        ck_assert(is_shell("ls *.c {}"));
        ck_assert(is_shell("echo '{a}' {}"));
        ck_assert(is_shell("echo {} | wc -c"));
        ck_assert(is_shell("echo ~ {}"));
        ck_assert(is_shell("echo a\\ b {}"));
}
END_TEST

START_TEST(test_replacements) {
        static const struct {
                const char *item, *noext, *base, *dir, *basenoext;
        } cases[] = {
                { "dir/sub.d/file.tar.gz", "dir/sub.d/file.tar", "file.tar.gz", "dir/sub.d", "file.tar" },
                { "noext", "noext", "noext", ".", "noext" },
                { "a.b/c", "a.b/c", "c", "a.b", "c" },
                { "/a", "/a", "a", "/", "a" },
                { "/", "/", "", "/", "" },
                { "a//b.x", "a//b", "b.x", "a", "b" },
                { "dir/", "dir/", "", ".", "" },
                { ".bashrc", "", ".bashrc", ".", "" },
                { "", "", "", ".", "" },
        };
        static const CmdRepl kinds[] = { CMD_REPL_NOEXT, CMD_REPL_BASE, CMD_REPL_DIR, CMD_REPL_BASENOEXT };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *want[] = { cases[i].noext, cases[i].base, cases[i].dir, cases[i].basenoext };
                CmdItem it = { .data = cases[i].item, .len = strlen(cases[i].item), .seq = 42, .slot = 3 };
                for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
                        size_t n;
                        char *v = cmd_replacement(kinds[k], &it, &n);
                        ck_assert_msg(v && streq(v, want[k]), "%s: kind %zu gave %s, not %s", cases[i].item, k, v,
                                      want[k]);
                        ck_assert_uint_eq(n, strlen(want[k]));
                        free(v);
                }
        }
        assert_argv(expand("x {#} {%}", "i", 12345678901234ULL, 16), (const char *const[]){ "x", "12345678901234", "16", NULL });
}
END_TEST

/* Through a real /bin/sh: printf's arguments are the items, literally. */
START_TEST(test_shell_items_stay_literal) {
        static const char *const tmpls[] = {
                "printf '%s\\0' {} {/} | cat",
                "(printf '%s\\0' {}; printf '%s\\0' {/}) >&1",
                "set -- {} {/}; printf '%s\\0' \"$@\"",
        };

        for (size_t k = 0; k < ELEMENTSOF(tmpls); k++)
                for (size_t i = 0; i < ELEMENTSOF(hostile); i++) {
                        char **argv = expand(tmpls[k], hostile[i], 1, 1), want[512];
                        size_t n, m, off, blen;
                        char *out;

                        ck_assert_str_eq(argv[0], "/bin/sh");
                        ck_assert_str_eq(argv[1], "-c");
                        out = run(argv, &n);
                        CmdItem it = { .data = hostile[i], .len = strlen(hostile[i]) };
                        char *b = cmd_replacement(CMD_REPL_BASE, &it, &blen);
                        off = strlen(hostile[i]);
                        memcpy(want, hostile[i], off + 1);
                        memcpy(want + off + 1, b, blen + 1);
                        m = off + 1 + blen + 1;
                        ck_assert_msg(n == m && memcmp(out, want, m) == 0, "%s with [%s]: got [%.*s]", tmpls[k],
                                      hostile[i], (int) n, out);
                        free(b);
                        free(out);
                        cmd_argv_free(argv);
                }
        /* Without a replacement: appended, quoted. */
        for (size_t i = 0; i < ELEMENTSOF(hostile); i++) {
                char **argv = expand("printf '%s\\0'", hostile[i], 1, 1);
                size_t n;
                char *out = run(argv, &n);
                ck_assert_msg(n == strlen(hostile[i]) + 1 && memcmp(out, hostile[i], n) == 0, "[%s]: [%.*s]", hostile[i],
                              (int) n, out);
                free(out);
                cmd_argv_free(argv);
        }
}
END_TEST

START_TEST(test_refused) {
        static const char *const bad[] = {
                "", "   ", "\n", "echo '{}'", "echo \"{}\"", "echo \"a {/} b\"", "echo $(basename {})",
                "echo `cat {}`", "echo ${x:-{}}", "cat <<EOF\n{}\nEOF", "echo 'a", "echo \"a", "echo $(a",
                "echo `a", "echo \x01 {}",
        };
        char err[256];
        CmdTemplate t;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                err[0] = '\0';
                ck_assert_msg(cmd_template_parse(&t, bad[i], err, sizeof(err)) == -EINVAL, "accepted [%s]", bad[i]);
                ck_assert_msg(err[0], "no reason for [%s]", bad[i]);
        }
        /* A literal {} for the shell: escaped, or in quotes without being ours. */
        ck_assert(is_shell("echo \\{} {}"));
}
END_TEST

START_TEST(test_items_that_no_argument_holds) {
        char err[256], **argv = NULL, *big;
        CmdTemplate t;
        CmdItem nul = { .data = "a\0b", .len = 3 };
        CmdItem it;

        ck_assert_int_eq(cmd_template_parse(&t, "echo {}", err, sizeof(err)), 0);
        ck_assert_int_eq(cmd_template_expand(&t, &nul, &argv), -EINVAL);
        big = malloc(200000);
        memset(big, 'x', 200000);
        it = (CmdItem){ .data = big, .len = 200000 };
        ck_assert_int_eq(cmd_template_expand(&t, &it, &argv), -E2BIG);
        free(big);
        cmd_template_free(&t);
}
END_TEST

static Suite *cmdline_suite(void) {
        Suite *s = suite_create("cmdline");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_direct);
        tcase_add_test(tc, test_replacements);
        tcase_add_test(tc, test_shell_items_stay_literal);
        tcase_add_test(tc, test_refused);
        tcase_add_test(tc, test_items_that_no_argument_holds);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return test_run_suite(cmdline_suite());
}
