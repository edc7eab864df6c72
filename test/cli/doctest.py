"""Runs the shell blocks of a Markdown file as they are written (a doc test).

A block is a fenced code block whose language is sh, bash, shell or console.
Every block runs, unless the line just before its fence is an HTML comment
saying it is an illustration, with the reason (an illustration is not a test:
the TAP output names it in a comment):

    <!-- doctest: skip (it is what runs the doc test) -->

A block runs alone, in a fresh `bash -e -o pipefail` (a command expected to
fail is written `cmd || echo "exit $?"`), in its own session, which is killed
once the block is done (background jobs it left behind go with it). Its
stdout and stderr are read together, as a terminal shows them; the block is
done when bash exits. A comment
`# -> TEXT`, after a command or on a line of its own, is an output line the
block must print: the expected lines must appear in that order (other lines
may come between them); runs of blanks compare equal, and `...` stands for any
text. A block passes when it exits 0 and every expected line was seen.
"""
import os
import re
import signal
import subprocess
import threading
import time

FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"^<!--\s*doctest:\s*skip\s*\((.+)\)\s*-->\s*$")
EXPECT = re.compile(r"(?:^|\s)# -> (.*)$")
SHELLS = {"sh", "bash", "shell", "console"}


class Block:
    def __init__(self, path, line, lang, text, skip):
        self.path, self.line, self.lang, self.text, self.skip = path, line, lang, text, skip

    @property
    def name(self):
        return "%s:%d" % (os.path.basename(self.path), self.line)

    def expected(self):
        out = []
        for line in self.text.splitlines():
            m = EXPECT.search(line)
            if m and not line.lstrip().startswith("#!"):
                out.append(m.group(1).rstrip())
        return out


def blocks(path):
    """The shell blocks of the Markdown file at path, in order."""
    out, lines = [], open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        if lang in SHELLS:
            prev = lines[start - 1] if start > 0 else ""
            skip = SKIP.match(prev)
            out.append(Block(path, start + 1, lang, "\n".join(lines[start + 1:j]) + "\n",
                             skip.group(1) if skip else None))
        i = j + 1
    return out


def _pattern(expected):
    parts = [re.escape(p) for p in " ".join(expected.split()).split("...")]
    return re.compile("^" + ".*".join(parts) + "$")


def match(expected, output):
    """None when every expected line appears in output in order, else the
    first one that does not (after those that did)."""
    lines = [" ".join(l.split()) for l in output.splitlines()]
    i = 0
    for e in expected:
        pat = _pattern(e)
        while i < len(lines) and not pat.match(lines[i]):
            i += 1
        if i == len(lines):
            return e
        i += 1
    return None


def run(block, cwd, env, timeout):
    """Runs block; returns (ok, explanation). The block is done when bash
    exits: what it left running is killed then (it would hold the output
    open)."""
    p = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=cwd, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: p.stdout.read(4096),
                                                                b"")), daemon=True)
    reader.start()
    t0 = time.monotonic()
    try:
        p.wait(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()
    reader.join(10)
    out = b"".join(chunks).decode("utf-8", "replace")
    took = time.monotonic() - t0
    tail = "\n".join(out.splitlines()[-25:])
    if timed_out:
        return False, "did not finish within %ds; output:\n%s" % (timeout, tail)
    if p.returncode != 0:
        return False, "exit status %d after %.1fs; output:\n%s" % (p.returncode, took, tail)
    missing = match(block.expected(), out)
    if missing is not None:
        return False, "expected line not printed: %r; output:\n%s" % (missing, tail)
    return True, "%.1fs" % took


def tap(blocks_to_run, cwd, env, timeout, extra=()):
    """Runs each block (and each (name, fn) of extra: fn() returns (ok,
    explanation)) and prints TAP; returns the number of failures. An
    illustration is not a test: it is named in a comment, with its reason."""
    for b in blocks_to_run:
        if b.skip:
            print("# %s is an illustration, not run: %s" % (b.name, b.skip))
    items = [(b.name, b) for b in blocks_to_run if not b.skip] + list(extra)
    print("1..%d" % len(items), flush=True)
    failed = 0
    for n, (name, item) in enumerate(items, 1):
        try:
            ok, why = run(item, cwd, env, timeout) if isinstance(item, Block) else item()
        except Exception as e:  # a bug of the test: a failure, with its reason
            ok, why = False, "%s: %s" % (type(e).__name__, e)
        print("%s %d - %s" % ("ok" if ok else "not ok", n, name), flush=True)
        if not ok:
            failed += 1
            for line in why.splitlines():
                print("#   " + line)
        elif why:
            print("#   " + why.splitlines()[0])
    return failed
