#!/usr/bin/env python3
"""The newcomer's path, checked (TAP on stdout):

- every shell block of README.md and docs/cli.md runs as written and prints what
  it says (doctest.py; the cmdipc under test first on PATH);
- the man pages: one per sub-command of `cmdipc --help`, groff finds nothing to
  warn about, and each says every option its --help lists;
- the bash and zsh completions complete sub-commands, options, socket paths and
  the command ids a live hub serves (zsh through a pseudo-terminal, zpty).

Environment: CMDIPC_EXE, CMDIPC_MAN_DIR (where the build wrote the pages),
CMDIPC_SOURCE_ROOT.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import doctest  # noqa: E402  (test/cli/doctest.py, not the standard module)

CMDIPC = os.environ.get("CMDIPC_EXE", "")
MAN_DIR = os.environ.get("CMDIPC_MAN_DIR", "")
ROOT = os.environ.get("CMDIPC_SOURCE_ROOT", "")
MULT = float(os.environ.get("CMDIPC_TEST_TIMEOUT_MULTIPLIER", "1"))
COMPLETIONS = os.path.join(ROOT, "tools", "completions")


def sub_commands():
    out = subprocess.run([CMDIPC, "--help"], capture_output=True, text=True).stdout
    section = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return [l.split()[0] for l in section.splitlines() if l.split()[0] != "help"]


def help_options(args):
    out = subprocess.run([CMDIPC] + args + ["--help"], capture_output=True, text=True).stdout
    opts = set()
    for line in out.splitlines():
        m = re.match(r"^  (-\w, )?(--[a-z][a-z-]*)", line)
        if m:
            opts.add(m.group(2))
            if m.group(1):
                opts.add(m.group(1)[:2])
    return opts


def check_man_pages():
    subs = sub_commands()
    want = {"cmdipc.1"} | {"cmdipc-%s.1" % s for s in subs}
    have = {f for f in os.listdir(MAN_DIR) if f.endswith(".1")}
    if have != want:
        return False, "pages %s, expected %s" % (sorted(have), sorted(want))
    for page, args in [("cmdipc.1", [])] + [("cmdipc-%s.1" % s, [s]) for s in subs]:
        path = os.path.join(MAN_DIR, page)
        lint = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True,
                              text=True)
        if lint.returncode != 0 or lint.stderr.strip():
            return False, "%s: groff says: %s" % (page, lint.stderr.strip())
        text = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", path],
                              capture_output=True, text=True, env=dict(os.environ, MANWIDTH="200")
                              ).stdout
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS",
                        "EXAMPLES", "SEE ALSO"):
            if not re.search(r"^%s$" % section, text, re.M):
                return False, "%s has no %s section" % (page, section)
        flat = " ".join(text.split())
        for opt in help_options(args):
            if not re.search(r"(^|[\s,\[(])%s\b" % re.escape(opt), flat):
                return False, "%s does not mention %s" % (page, opt)
        name = "cmdipc" + ("-" + args[0] if args else "")
        if not re.search(r"^\s+%s - \S" % re.escape(name), text, re.M):
            return False, "%s: no 'NAME - summary' line" % page
    return True, "%d pages" % len(want)


# ---------------------------------------------------------------------------
# Completions, against a live hub serving a few commands.

class Mesh:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cmdipc-comp-", dir="/tmp")
        self.sock = os.path.join(self.dir, "hub.sock")
        self.procs = []
        self.procs.append(subprocess.Popen([CMDIPC, "hub", "-q", self.sock],
                                           start_new_session=True))
        self.procs.append(subprocess.Popen(
            [CMDIPC, "serve", "-q", self.sock, "-c", "text.echo=cat", "-c", "text.upper=cat",
             "-c", "math.add=cat"], start_new_session=True))
        rc = subprocess.run([CMDIPC, "wait", "-t", str(30 * MULT), self.sock, "text.echo",
                             "text.upper", "math.add"]).returncode
        if rc != 0:
            raise RuntimeError("the hub did not come up (cmdipc wait: exit %d)" % rc)

    def close(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def env_with_tool(extra=None):
    """A user's environment, the cmdipc under test first on PATH. Not meson's
    LD_LIBRARY_PATH: the README's build/tools/cmdipc must find its own library
    (its run path), not the one of the build under test (say, the ASan one)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["PATH"] = os.path.dirname(CMDIPC) + os.pathsep + env.get("PATH", "")
    env.update(extra or {})
    return env


BASH = r'''
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
_cmdipc 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
'''


def bash_complete(words, cwd, env=None):
    r = subprocess.run(["bash", "-c", BASH, "bash", os.path.join(COMPLETIONS, "cmdipc.bash")]
                       + words, capture_output=True, text=True, cwd=cwd,
                       env=env_with_tool(env), timeout=30 * MULT)
    return set(l for l in r.stdout.splitlines() if l)


# Types `words` and TAB into an interactive zsh (zpty) whose compadd also
# prints each match, then ^X, bound to a widget printing the end marker.
ZSH = r'''
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT=''; RPROMPT=''; fpath=(${(q)1} \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd() { local -a m; builtin compadd -O m "$@"; (( $#m )) && print -rl -- ${(@)m/#/@@M }; builtin compadd "$@" }'
zpty -w z 'done_() { print -r -- "@@END" }; zle -N done_; bindkey "^X" done_; bindkey "^I" complete-word'
zpty -w z 'print -r -- @@READY'
zpty -r z line '*@@READY*'; zpty -r z line '*@@READY*'
zpty -w -n z "$2"$'\t\x18'
out=""
while zpty -r z line; do out+=$line; [[ $line == *@@END* ]] && break; done
print -r -- ${out//$'\r'/$'\n'}
zpty -d z
'''


def zsh_complete(words, cwd, env=None):
    r = subprocess.run(["zsh", "-f", "-c", ZSH, "zsh", COMPLETIONS, " ".join(words)],
                       capture_output=True, text=True, cwd=cwd, env=env_with_tool(env),
                       timeout=30 * MULT)
    return set(l.split("@@M ", 1)[1] for l in r.stdout.splitlines() if "@@M " in l)


def completion_cases(mesh):
    rel = "./" + os.path.basename(mesh.sock)
    return [
        (["cmdipc", "ca"], {"call"}),
        (["cmdipc", ""], set(sub_commands()) | {"help"}),
        (["cmdipc", "call", "--ti"], {"--timeout"}),
        (["cmdipc", "call", "--l"], {"--lines"}),
        (["cmdipc", "list", "--sch"], {"--schema"}),
        (["cmdipc", "help", "w"], {"wait"}),
        (["cmdipc", "call", mesh.sock, "text."], {"text.echo", "text.upper"}),
        (["cmdipc", "call", "-t", "5", mesh.sock, "math"], {"math.add"}),
        (["cmdipc", "describe", "unix://" + mesh.sock, "text.u"], {"text.upper"}),
        (["cmdipc", "wait", mesh.sock, "text.echo", "text.u"], {"text.upper"}),
    ], rel


def check_completion(shell):
    mesh = Mesh()
    try:
        complete = bash_complete if shell == "bash" else zsh_complete
        cases, rel = completion_cases(mesh)
        for words, want in cases:
            got = complete(words, mesh.dir)
            if not want <= got:
                return False, "%s: %r gave %r, expected %r" % (shell, words, sorted(got),
                                                               sorted(want))
        # A socket path (the hub's), in the current directory.
        got = complete(["cmdipc", "list", "./h"], mesh.dir)
        if not any(g.endswith("hub.sock") for g in got):
            return False, "%s: no socket path offered: %r" % (shell, sorted(got))
        # The value of an option is not an operand.
        got = complete(["cmdipc", "call", "-t", ""], mesh.dir)
        if got & {"text.echo", "call"}:
            return False, "%s: completed the value of -t with %r" % (shell, sorted(got))
        # CMDIPC_ADDR: the first operand is the command.
        got = complete(["cmdipc", "call", "text.e"], mesh.dir, {"CMDIPC_ADDR": mesh.sock})
        if "text.echo" not in got:
            return False, "%s: with CMDIPC_ADDR, %r" % (shell, sorted(got))
        return True, "%d cases" % (len(cases) + 3)
    finally:
        mesh.close()


def main():
    if not (os.access(CMDIPC, os.X_OK) and os.path.isdir(MAN_DIR) and os.path.isdir(ROOT)):
        print("1..1\nnot ok 1 - setup\n#   CMDIPC_EXE, CMDIPC_MAN_DIR and CMDIPC_SOURCE_ROOT "
              "must be set (test/cli/meson.build sets them)")
        return 1
    scratch = tempfile.mkdtemp(prefix="cmdipc-doc-", dir="/tmp")
    try:
        os.makedirs(os.path.join(scratch, "home"))
        os.makedirs(os.path.join(scratch, "tmp"))
        env = env_with_tool({"HOME": os.path.join(scratch, "home"),
                             "TMPDIR": os.path.join(scratch, "tmp")})
        env.pop("CMDIPC_ADDR", None)
        blocks = doctest.blocks(os.path.join(ROOT, "README.md")) + \
            doctest.blocks(os.path.join(ROOT, "docs", "cli.md"))
        failed = doctest.tap(blocks, ROOT, env, int(60 * MULT), extra=[
            ("man pages", check_man_pages),
            ("bash completion", lambda: check_completion("bash")),
            ("zsh completion", lambda: check_completion("zsh")),
        ])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
