#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mplockctl's help and shell completion: every command's --help, and the
man page and both completion scripts, hold every option its getopt_long
table takes (read from client/*.c); usage errors name the command and
where help is; the completion scripts load, and typed into a real bash and
zsh in a pseudo-terminal they complete commands, options, paths and the
job ids of the mplockd that the line names."""

import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, MPLOCKCTL, DaemonTest, main, module  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENT = os.path.join(SRC, "client")
MAN = os.path.join(SRC, "man", "mplockctl.1")
BASH_SCRIPT = os.path.join(SRC, "shell-completion", "bash", "mplockctl")
ZSH_DIR = os.path.join(SRC, "shell-completion", "zsh")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


def has_option(text, opt):
    """opt as a word of its own: --max-output is not --max, -0 not -00."""
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), text) is not None


# --- the parsers' getopt_long tables, read from the C sources -------------

def c_functions():
    """{name: body} of every function defined in client/*.c."""
    funcs = {}
    for name in sorted(os.listdir(CLIENT)):
        if not name.endswith(".c"):
            continue
        with open(os.path.join(CLIENT, name)) as f:
            text = f.read()
        # Our style: the definition ends with "{" and the body with a "}"
        # alone at the start of a line.
        for m in re.finditer(r"^(?:static\s+)?[A-Za-z_][\w \t*]*?\b(\w+)\(([^()]*)\)\s*\{\s*$", text, re.M):
            end = text.index("\n}\n", m.end())
            funcs[m.group(1)] = text[m.end():end]
    return funcs


def table_options(body):
    """The options of the getopt_long tables and option strings in body."""
    opts = set()
    for table in re.findall(r"struct option \w+\[\] = \{(.*?)\n\s*\};", body, re.S):
        opts |= {"--" + n for n in re.findall(r'\{\s*"([\w-]+)",\s*\w+_argument', table)}
    for optstring in re.findall(r'getopt_long\(\s*\w+,\s*\w+,\s*"([^"]*)"', body):
        opts |= {"-" + ch for ch in optstring if ch.isalnum()}
    return opts


def command_functions():
    """{command: its function}, from main.c's table."""
    with open(os.path.join(CLIENT, "main.c")) as f:
        text = f.read()
    table = re.search(r"\} commands\[\] = \{(.*?)\n\};", text, re.S).group(1)
    return dict(re.findall(r'\{\s*"([\w-]+)",\s*(\w+)\s*\}', table))


def parser_options():
    """{command: every option its parser accepts}: the tables of its
    function and of the functions that it calls, however deep (status
    parses through job_call and one_job)."""
    funcs = c_functions()
    result = {}
    for cmd, fn in command_functions().items():
        seen, todo, opts = set(), [fn], set()
        while todo:
            f = todo.pop()
            if f in seen or f not in funcs:
                continue
            seen.add(f)
            opts |= table_options(funcs[f])
            todo += [c for c in re.findall(r"\b(\w+)\(", funcs[f]) if c in funcs]
        result[cmd] = opts
    return result


def global_options():
    return table_options(c_functions()["main"])


# --- the man page -----------------------------------------------------------

def man_text(troff):
    """The words of troff source: \\- as -, no font changes or quotes."""
    t = troff.replace("\\-", "-").replace("\\(em", "-")
    t = re.sub(r"\\f[BIRP]", "", t)
    t = re.sub(r"^\.\w+\s*", "", t, flags=re.M)
    return t.replace('"', "")


def man_sections():
    """({command: its text under COMMANDS}, the OPTIONS section's text)."""
    with open(MAN) as f:
        src = f.read()
    sections = dict(re.findall(r"^\.SH (\w[\w ]*)\n(.*?)(?=^\.SH |\Z)", src, re.M | re.S))
    commands = {}
    for entry in sections["COMMANDS"].split(".TP\n")[1:]:
        text = man_text(entry)
        name = text.split()[0]
        commands[name] = commands.get(name, "") + text
    return commands, man_text(sections["OPTIONS"])


# --- the completion scripts ---------------------------------------------------

def bash_complete(*words, cwd=None, env=None):
    """What _mplockctl offers for the last of words, as bash would call
    it for the line "mplockctl WORDS"."""
    line = " ".join(("mplockctl",) + words)
    script = r'''
        source %s || exit 10
        source %s || exit 11
        COMP_WORDS=(mplockctl "$@"); COMP_CWORD=$#; COMP_LINE=%s; COMP_POINT=${#COMP_LINE}
        _mplockctl mplockctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%%s\n' "${COMPREPLY[@]}"
    ''' % (BASH_COMPLETION, BASH_SCRIPT, shell_quote(line))
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash"] + list(words), capture_output=True,
                       text=True, cwd=cwd, env=env, timeout=60)
    if p.returncode != 0:
        raise AssertionError("bash completion failed (%d): %s" % (p.returncode, p.stderr))
    return [w for w in p.stdout.splitlines() if w]


def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def zsh_branches():
    """{command: the text of its branch in _mplockctl_command}, and the
    global options' _arguments call."""
    with open(os.path.join(ZSH_DIR, "_mplockctl")) as f:
        text = f.read()
    body = text[text.index("_mplockctl_command() {"):]
    body = body[:body.index("\n}\n")]
    branches = {}
    for m in re.finditer(r"^\s*\(([\w|]+)\)\n(.*?)(?=^\s*\([\w|*]+\)\n|^\s*esac)", body, re.M | re.S):
        for name in m.group(1).split("|"):
            branches[name] = m.group(2)
    main_fn = text[text.index("\n_mplockctl() {"):]
    return branches, main_fn[:main_fn.index("\n}\n")], text


def zsh_option_words(spec_text):
    """The option names of _arguments specs: {-m+,--module=}'[...]' and
    '(--exec)--shared=[...]' give -m, --module, --shared."""
    words = set()
    for m in re.finditer(r"\{([^{}]*)\}'\[", spec_text):
        words |= {w.rstrip("=+-") for w in m.group(1).split(",")}
    words |= set(re.findall(r"'(?:\([^)]*\))?\*?(--?\w[\w-]*?)[=+]?\[", spec_text))
    return words


class Help(unittest.TestCase):
    """Help and usage errors: nothing here needs a daemon."""

    @classmethod
    def setUpClass(cls):
        cls.options = parser_options()
        # Nothing may reach a real mplockd by accident.
        cls.env = dict(os.environ, MPLOCK_SOCKET="/nonexistent/mplock-test.sock")

    def ctl(self, *args):
        return subprocess.run([MPLOCKCTL] + list(args), capture_output=True, text=True, env=self.env, timeout=60)

    def test_the_parsers_are_found(self):
        # The reading of the C sources itself: if it broke, the checks
        # below would pass on empty sets.
        self.assertIn("submit", self.options)
        self.assertTrue({"--module", "-m", "--exec", "--slurm-opt", "--help", "-h"} <= self.options["submit"])
        self.assertEqual(self.options["status"], {"--json", "--help", "-h"})
        self.assertTrue({"-f", "--follow"} <= self.options["logs"])
        self.assertTrue({"--socket", "--system", "--user", "--json", "--help", "-h", "--version"} <= global_options())

    def test_every_command_has_help_showing_each_of_its_options(self):
        for cmd, opts in self.options.items():
            p = self.ctl(cmd, "--help")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "")
            self.assertTrue(p.stdout.startswith("Usage: mplockctl %s" % cmd), p.stdout)
            for opt in opts:
                self.assertTrue(has_option(p.stdout, opt), "%s --help does not show %s" % (cmd, opt))
            self.assertEqual(self.ctl(cmd, "-h").stdout, p.stdout)

    def test_help_command_is_the_same_as_dash_dash_help(self):
        for cmd in self.options:
            p = self.ctl("help", cmd)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, self.ctl(cmd, "--help").stdout)

    def test_the_overview(self):
        p = self.ctl("--help")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, self.ctl("help").stdout)
        self.assertEqual(p.stdout, self.ctl("-h").stdout)
        commands = re.search(r"\nCommands:\n(.*?)\n\n", p.stdout, re.S).group(1)
        self.assertEqual(sorted(line.split()[0] for line in commands.splitlines()), sorted(self.options))
        for opt in global_options():
            self.assertTrue(has_option(p.stdout, opt), "mplockctl --help does not show %s" % opt)
        # No command: the overview, as a usage error.
        p = self.ctl()
        self.assertEqual(p.returncode, 2)
        self.assertIn("Commands:", p.stderr)

    def test_a_wrong_option_names_the_command_and_where_help_is(self):
        for cmd in self.options:
            p = self.ctl(cmd, "--bogus", "1")
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(p.stdout, "")
            self.assertEqual(p.stderr, "mplockctl %s: unrecognized option '--bogus'\n"
                             "Try 'mplockctl %s --help'.\n" % (cmd, cmd))
            p = self.ctl(cmd, "-x", "1")
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(p.stderr, "mplockctl %s: invalid option -- 'x'\nTry 'mplockctl %s --help'.\n"
                             % (cmd, cmd))
        p = self.ctl("--bogus", "list")
        self.assertEqual((p.returncode, p.stderr),
                         (2, "mplockctl: unrecognized option '--bogus'\nTry 'mplockctl --help'.\n"))
        p = self.ctl("frobnicate")
        self.assertEqual((p.returncode, p.stderr), (2, "mplockctl: unknown command \"frobnicate\"\n"
                                                       "Try 'mplockctl --help'.\n"))

    def test_a_missing_argument_names_the_command_and_where_help_is(self):
        p = self.ctl("submit", "--module")
        self.assertEqual((p.returncode, p.stderr), (2, "mplockctl submit: option '--module' requires an argument\n"
                                                       "Try 'mplockctl submit --help'.\n"))
        p = self.ctl("submit", "-w")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr, "mplockctl submit: option requires an argument -- 'w'\n"
                         "Try 'mplockctl submit --help'.\n")
        p = self.ctl("--socket")
        self.assertEqual((p.returncode, p.stderr), (2, "mplockctl: option '--socket' requires an argument\n"
                                                       "Try 'mplockctl --help'.\n"))
        for cmd in ("status", "wait", "results", "failed", "logs", "remove"):
            p = self.ctl(cmd)
            self.assertEqual((p.returncode, p.stderr), (2, "mplockctl %s: expected %s job id\n"
                                                           "Try 'mplockctl %s --help'.\n" %
                                                        (cmd, "a" if cmd == "wait" else "one", cmd)))
        p = self.ctl("submit", "--output", "/tmp/x")
        self.assertEqual(p.returncode, 2)
        self.assertTrue(p.stderr.endswith("Try 'mplockctl submit --help'.\n"), p.stderr)
        p = self.ctl("help", "frobnicate")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown command \"frobnicate\"", p.stderr)

    def test_submit_help_before_items_and_not_after(self):
        p = self.ctl("submit", "--exec", "echo {}", "--help", ":::", "a")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, self.ctl("submit", "--help").stdout)
        # After ":::", --help is an item: the job is submitted (and this
        # socket is nowhere: exit 7).
        p = self.ctl("submit", "--exec", "echo {}", "--output", tempfile.gettempdir(), ":::", "--help", "-h")
        self.assertEqual(p.returncode, 7, p.stderr)
        self.assertNotIn("Usage", p.stdout)

    def test_the_man_page_has_every_option_in_its_command_section(self):
        commands, options = man_sections()
        for cmd, opts in self.options.items():
            self.assertIn(cmd, commands, "man/mplockctl.1 has no entry for %s" % cmd)
            # -h and --help are in OPTIONS, for every command at once.
            for opt in opts - {"-h", "--help"}:
                self.assertTrue(has_option(commands[cmd], opt),
                                "man/mplockctl.1 does not give %s under %s" % (opt, cmd))
        for opt in global_options():
            self.assertTrue(has_option(options, opt), "man/mplockctl.1 OPTIONS does not give %s" % opt)
        self.assertIn("Every command takes", options)
        for cmd in commands:
            self.assertIn(cmd, self.options, "man/mplockctl.1 has %s, which mplockctl has not" % cmd)

    def test_the_bash_completion_offers_every_option_and_command(self):
        for cmd, opts in self.options.items():
            offered = set(bash_complete(cmd, "-"))
            self.assertEqual(offered, opts, "bash completion for %s" % cmd)
        self.assertEqual(set(bash_complete("-")), global_options())
        self.assertEqual(sorted(bash_complete("")), sorted(self.options))
        self.assertEqual(sorted(bash_complete("help", "")), sorted(self.options))
        self.assertEqual(bash_complete("su"), ["submit"])

    def test_the_zsh_completion_has_every_option_and_command(self):
        branches, main_fn, text = zsh_branches()
        for cmd, opts in self.options.items():
            self.assertIn(cmd, branches, "_mplockctl has no branch for %s" % cmd)
            words = zsh_option_words(branches[cmd])
            # $help is -h and --help, in every branch.
            if "$help" in branches[cmd]:
                words |= {"-h", "--help"}
            self.assertEqual(words, opts, "zsh completion for %s" % cmd)
        self.assertEqual(zsh_option_words(main_fn.split("_arguments -C", 1)[1].split("&&")[0]), global_options())
        described = re.findall(r"^\s*'(\w+):", text[text.index("_mplockctl_commands() {"):], re.M)
        self.assertEqual(sorted(described), sorted(self.options))


class CompletionLoads(unittest.TestCase):
    def test_bash_loads_it_with_the_framework(self):
        self.assertTrue(os.path.exists(BASH_COMPLETION), "bash-completion is not installed (scripts/deps.sh)")
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                            "source %s && source %s && complete -p mplockctl" % (BASH_COMPLETION, BASH_SCRIPT)],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout.strip(), "complete -F _mplockctl mplockctl")

    def test_zsh_loads_it_with_compinit(self):
        p = subprocess.run(["zsh", "-n", os.path.join(ZSH_DIR, "_mplockctl")], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        with tempfile.TemporaryDirectory() as home:
            p = subprocess.run(["zsh", "-f", "-c", "fpath=(%s $fpath); autoload -Uz compinit && compinit -u -D && "
                                "print -r -- $_comps[mplockctl]" % ZSH_DIR],
                               capture_output=True, text=True, timeout=60, env=dict(os.environ, HOME=home))
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout.strip(), "_mplockctl")


class Terminal:
    """A shell in a pseudo-terminal, typed into as a person would."""

    def __init__(self, argv, env, cwd):
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd, self.buf = pid, fd, b""
        # Wide enough that no line wraps.
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 400, 0, 0))

    def type(self, text):
        os.write(self.fd, text.encode())

    def expect(self, pattern, timeout=60):
        """Reads until pattern appears (what came before it is dropped);
        returns its match."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("waited %ds for %r; the terminal showed: %r" %
                                     (timeout, pattern, self.buf[-3000:]))
            if select.select([self.fd], [], [], min(left, 0.5))[0]:
                try:
                    data = os.read(self.fd, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    raise AssertionError("the shell exited; it showed: %r" % self.buf[-3000:])
                self.buf += data

    def close(self):
        try:
            self.type("exit\n")
        except OSError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


PROMPT = "PROMPT> "
# Typed as $'\x50ROMPT> ': the echo of the line is not the prompt itself.
SET_PROMPT = "PS1=$'\\x50ROMPT> '"


class CompletionInTerminal(DaemonTest):
    """bash and zsh, each with a clean start, the completion loaded as its
    framework loads it, and a job in a real mplockd."""

    def prepare(self):
        self.job = None

    def setUp(self):
        super().setUp()
        items = self.write_items("items.txt", ["1", "2", "3"])
        self.job = self.d.submit(module("square"), items, self.path("out"), "--name", "tab test")
        self.assertEqual(self.d.wait(self.job)[0], 0)
        # Paths to complete: one match in each directory.
        for d in ("m", "o/sub", "s", "home"):
            os.makedirs(self.path("cwd", d))
        for f in ("m/square.so", "m/notes.txt", "o/file.txt", "s/shared.json"):
            open(self.path("cwd", f), "w").close()
        self.env = {
            "PATH": BUILD + ":/usr/bin:/bin", "HOME": self.path("cwd", "home"), "TERM": "xterm",
            "MPLOCK_SOCKET": self.d.sock, "INPUTRC": self.path("inputrc"), "LC_ALL": "C.UTF-8",
        }
        # Readline with no escapes around what a line prints.
        with open(self.path("inputrc"), "w") as f:
            f.write("set enable-bracketed-paste off\nset bell-style none\n")

    def start(self, shell):
        if shell == "bash":
            self.assertTrue(os.path.exists(BASH_COMPLETION), "bash-completion is not installed (scripts/deps.sh)")
            t = Terminal(["bash", "--norc", "--noprofile", "-i"], self.env, self.path("cwd"))
            setup = SET_PROMPT
            load = "source %s; source %s" % (BASH_COMPLETION, BASH_SCRIPT)
        else:
            t = Terminal(["zsh", "-f", "-i"], self.env, self.path("cwd"))
            # No "%" mark for output without a newline at its end.
            setup = SET_PROMPT + "; PROMPT_EOL_MARK=''"
            load = "fpath=(%s $fpath); autoload -Uz compinit; compinit -u -D" % ZSH_DIR
        self.addCleanup(t.close)
        t.type(setup + "\n")
        t.expect(PROMPT)
        t.type(load + "; echo LOADED-$((40+2))\n")
        t.expect("LOADED-42")
        t.expect(PROMPT)
        return t

    def run_line(self, t, line, expected):
        """Types line (with its tabs) and Enter; the output must match
        expected, or one of the messages that say the completion failed."""
        t.type(line + "\r")
        m = t.expect(r"(%s)|(expected one job id|unknown command|unrecognized option|Usage: mplockctl \[)" % expected)
        self.assertIsNone(m.group(2), "%r: %r" % (line, m.group(0)))
        t.expect(PROMPT)
        return m

    def buffer_after(self, t, line):
        """What the line reads once its tabs are done: Ctrl-A, "echo ",
        Enter prints it."""
        t.type(line + "\x01echo \r")
        m = t.expect(r"\r\n(mplockctl [^\r\n]*?) *\r\n")
        t.expect(PROMPT)
        return m.group(1).decode()

    def completes(self, shell):
        t = self.start(shell)
        self.run_line(t, "mplockctl status \t", r"Job %d \(tab test\): completed" % self.job)
        self.run_line(t, "mplockctl sub\t--help", r"Usage: mplockctl submit --module")
        self.run_line(t, "mplockctl logs --fol\t--help", r"Usage: mplockctl logs \[-f\|--follow\]")
        self.run_line(t, "mplockctl help wat\t", r"Usage: mplockctl watch")
        self.assertEqual(self.buffer_after(t, "mplockctl submit --module m/\t"),
                         "mplockctl submit --module m/square.so")
        # zsh takes the slash back at Ctrl-A (auto_remove_slash).
        self.assertRegex(self.buffer_after(t, "mplockctl submit --output o/\t"), r"^mplockctl submit --output o/sub/?$")
        self.assertEqual(self.buffer_after(t, "mplockctl submit --shared @s/\t"),
                         "mplockctl submit --shared @s/shared.json")
        # After ":::" everything is an item: files, -h too.
        self.assertEqual(self.buffer_after(t, "mplockctl submit --exec 'echo {}' ::: -h m/sq\t"),
                         "mplockctl submit --exec echo {} ::: -h m/square.so")  # echo drops the quotes
        # The instance the line names, not $MPLOCK_SOCKET's.
        self.assertEqual(self.buffer_after(t, "mplockctl --socket /nonexistent/sock status \t"),
                         "mplockctl --socket /nonexistent/sock status")
        t.type("unset MPLOCK_SOCKET\n")
        t.expect(PROMPT)
        self.run_line(t, "mplockctl --socket %s wait \t" % self.d.sock, r"Job %d completed" % self.job)
        self.run_line(t, "mplockctl --socket=%s wait \t" % self.d.sock, r"Job %d completed" % self.job)

    def test_bash(self):
        self.completes("bash")

    def test_zsh(self):
        self.completes("zsh")


if __name__ == "__main__":
    main()
