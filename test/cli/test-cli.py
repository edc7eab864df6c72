#!/usr/bin/env python3
"""End-to-end tests of the cmdipc tool, with real processes (TAP on stdout).

A hub listens on a Unix socket and on TCP; two `cmdipc serve` processes (one
over each) and a library-based service (cli-service) connect to it; `cmdipc
call`, `list`, `emit` and `listen` reach them through the hub. Every exit
status of the tool is provoked, as are a hub killed in the middle of a call and
malformed arguments.

Environment: CMDIPC_EXE (the tool), CMDIPC_CLI_SERVICE (cli-service).
Readiness comes from the processes themselves (the hub's "listening" lines,
cli-service's "ready", `listen -v`'s "listening on", a command's flag file);
no test sleeps to synchronise. Every child is killed at the end.
"""
import calendar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

CMDIPC = os.environ.get("CMDIPC_EXE", "")
SERVICE = os.environ.get("CMDIPC_CLI_SERVICE", "")
TIMEOUT = 30 * float(os.environ.get("CMDIPC_TEST_TIMEOUT_MULTIPLIER", "1"))

EXIT = {"ok": 0, "not_found": 10, "invalid_request": 11, "internal_error": 12,
        "timeout": 13, "channel_disconnected": 14, "duplicate_command": 15,
        "usage": 64, "unavailable": 69}


class Failure(Exception):
    pass


def check(cond, what, *details):
    if not cond:
        raise Failure(str(what) + "".join("\n" + str(d) for d in details))


# ---------------------------------------------------------------------------
# Processes.

PROCS = []


class Proc:
    """A long-running child in its own process group; its stdout and stderr
    lines are collected by two threads."""

    def __init__(self, args, name, stdin=subprocess.DEVNULL):
        self.name = name
        self.args = args
        self.lines = {"out": [], "err": []}
        self.cond = threading.Condition()
        self.p = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True)
        PROCS.append(self)
        for key, stream in (("out", self.p.stdout), ("err", self.p.stderr)):
            threading.Thread(target=self._read, args=(key, stream), daemon=True).start()

    def _read(self, key, stream):
        for raw in iter(stream.readline, b""):
            with self.cond:
                self.lines[key].append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines[key].append(None)  # EOF
            self.cond.notify_all()

    def wait_line(self, pred, key="out", timeout=None):
        """The first line of stdout (or stderr) for which pred holds."""
        deadline = time.monotonic() + (timeout or TIMEOUT)
        with self.cond:
            seen = 0
            while True:
                for line in self.lines[key][seen:]:
                    if line is None:
                        raise Failure("%s ended (exit %s) before the expected line; %s" %
                                      (self.name, self.p.poll(), self.describe()))
                    if pred(line):
                        return line
                seen = len(self.lines[key])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("%s: expected line not seen in time; %s" %
                                  (self.name, self.describe()))
                self.cond.wait(left)

    def line_at(self, i, key="out"):
        """Line i (from 0) of stdout, waiting for it."""
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while len(self.lines[key]) <= i:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("%s: no line %d in time; %s" % (self.name, i, self.describe()))
                self.cond.wait(left)
            if self.lines[key][i] is None:
                raise Failure("%s ended (exit %s) before line %d; %s" %
                              (self.name, self.p.poll(), i, self.describe()))
            return self.lines[key][i]

    def wait_count(self, pred, n, key="out"):
        """Waits until n lines satisfy pred; returns them."""
        self.wait_line(lambda l: len([x for x in self.output(key) if pred(x)]) >= n
                       if pred(l) else False, key)
        return [x for x in self.output(key) if pred(x)][:n]

    def output(self, key="out"):
        with self.cond:
            return [l for l in self.lines[key] if l is not None]

    def describe(self):
        return "stdout: %r stderr: %r" % (self.output("out")[-10:], self.output("err")[-10:])

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def wait(self, timeout=None):
        """Waits for the exit and for the end of both outputs; the status."""
        deadline = time.monotonic() + (timeout or TIMEOUT)
        try:
            rc = self.p.wait(timeout or TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Failure("%s did not exit in time; %s" % (self.name, self.describe()))
        with self.cond:
            while any(not v or v[-1] is not None for v in self.lines.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("%s exited but its output did not end" % self.name)
                self.cond.wait(left)
        return rc

    def kill(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass


def cmdipc(*args, stdin=None, timeout=None):
    """Runs the tool to completion: (exit status, stdout, stderr)."""
    try:
        r = subprocess.run([CMDIPC] + [str(a) for a in args], input=stdin,
                           capture_output=True, text=True, timeout=timeout or TIMEOUT,
                           stdin=None if stdin is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure("cmdipc %s did not finish in time" % " ".join(map(str, args)))
    return r.returncode, r.stdout, r.stderr


def expect(args, code, stdin=None, out=None, err=None):
    """Runs the tool, checks its exit status and (when given) that stdout equals
    out and stderr contains err. Returns (stdout, stderr)."""
    rc, so, se = cmdipc(*args, stdin=stdin)
    what = "cmdipc %s" % " ".join(map(str, args))
    check(rc == code, "%s: exit %d, expected %d" % (what, rc, code),
          "stdout: %r" % so, "stderr: %r" % se)
    if out is not None:
        check(so == out, "%s: stdout %r, expected %r" % (what, so, out), "stderr: %r" % se)
    if err is not None:
        check(err in se, "%s: stderr lacks %r" % (what, err), "stderr: %r" % se)
    return so, se


def start_hub(*args, verbose=False):
    """A hub on the addresses in args (options allowed); returns (proc, [actual
    addresses])."""
    hub = Proc([CMDIPC, "hub"] + (["-v"] if verbose else []) + list(args), "hub")
    n = len([a for a in args if "://" in a])
    lines = hub.wait_count(lambda l: l.startswith("listening "), n)
    return hub, [l.split(" ", 1)[1] for l in lines]


def list_ids(addr):
    rc, so, se = cmdipc("list", "--json", addr)
    if rc != 0:
        return None
    return {json.loads(l)["id"]: json.loads(l) for l in so.splitlines() if l}


def wait_commands(addr, ids):
    """Polls `cmdipc list` (bounded) until every id in ids is listed."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        got = list_ids(addr)
        if got is not None and all(i in got for i in ids):
            return got
        time.sleep(0.05)
    raise Failure("commands %s never listed at %s (got %s)" % (ids, addr, list_ids(addr)))


def wait_file(path, proc=None):
    deadline = time.monotonic() + TIMEOUT
    while not os.path.exists(path):
        if proc is not None and proc.p.poll() is not None:
            raise Failure("%s exited (%s) before %s appeared; %s" %
                          (proc.name, proc.p.returncode, path, proc.describe()))
        check(time.monotonic() < deadline, "%s never appeared" % path)
        time.sleep(0.02)


def kill_pidfile(path):
    try:
        with open(path) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
    except (OSError, ValueError):
        pass


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# The shared mesh: a hub (unix + tcp), serve A over unix, serve B over TCP,
# cli-service over TCP.

class Mesh:
    pass


M = Mesh()


def scratch_dir():
    base = os.environ.get("TMPDIR", "/tmp")
    if len(base) > 60 or not os.path.isdir(base):
        base = "/tmp"
    return tempfile.mkdtemp(prefix="cmdipc-cli-", dir=base)


SYNC_STEP = ("sync.step=read -r r; r=${r#\\\"}; r=${r%\\\"}; case $r in "
             "w:*) while [ ! -f \"${r#w:}\" ]; do sleep 0.02; done; echo '\"waited\"';; "
             "t:*) touch \"${r#t:}\"; echo '\"touched\"';; *) echo bad >&2; exit 1;; esac")

SCHEMA = {"request": {"type": "object", "required": ["a"],
                      "properties": {"a": {"type": "integer"}}},
          "response": {"type": "integer"}}


def write_schema():
    path = "%s/schema.json" % M.dir
    with open(path, "w") as f:
        json.dump(SCHEMA, f)
    return path


def setup_mesh():
    M.dir = scratch_dir()
    M.sock = "unix://%s/hub.sock" % M.dir
    check(len(M.sock) < 100, "socket path too long: " + M.sock)
    M.hub, (M.unix, M.tcp) = start_hub(M.sock, "tcp://127.0.0.1:0")
    M.serve_a = Proc([CMDIPC, "serve", M.unix,
                      "--command", "text.echo=cat",
                      "-d", "text.echo=Echo the request",
                      "-c", "text.upper=tr a-z A-Z",
                      "-c", "sh.fail=echo oops: it failed >&2; exit 3",
                      "-c", "sh.silent-fail=exit 7",
                      "-c", "sh.notjson=echo this is not json",
                      "-c", "sh.none=cat >/dev/null",
                      "-c", "conc.wait=while [ ! -f %s/go ]; do sleep 0.02; done; echo '\"waited\"'"
                      % M.dir,
                      "-c", "conc.go=touch %s/go; echo '\"went\"'" % M.dir,
                      # "w:PATH" waits for PATH to exist, "t:PATH" creates it.
                      "-c", SYNC_STEP,
                      "-c", "schema.cmd=cat", "-d", "schema.cmd=Has a schema",
                      "-s", "schema.cmd=%s" % write_schema()],
                     "serve A")
    M.serve_b = Proc([CMDIPC, "serve", M.tcp,
                      "-c", "b.hello=echo '\"hello from B\"'",
                      "-c", "b.env=printf '\"%s\"' \"$CMDIPC_COMMAND\""],
                     "serve B")
    M.service = Proc([SERVICE, M.tcp], "cli-service")
    M.service.wait_line(lambda l: l == "ready")
    wait_commands(M.unix, ["text.echo", "conc.go", "b.hello", "b.env", "math.add"])


# ---------------------------------------------------------------------------
# Tests. Each is a function; a Failure (or any exception) makes it "not ok".

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def help_and_version():
    so, _ = expect(["--version"], 0)
    check(so.startswith("cmdipc 0.") and "spec-v1" in so, "bad --version: %r" % so)
    so, _ = expect(["--help"], 0)
    for word in ("hub", "list", "call", "emit", "listen", "serve", "Exit status",
                 "channel_disconnected", "Examples:"):
        check(word in so, "cmdipc --help lacks %r" % word)
    for sub in ("hub", "list", "call", "emit", "listen", "serve"):
        so, _ = expect([sub, "--help"], 0)
        check(so.startswith("Usage: cmdipc %s" % sub), "%s --help: %r" % (sub, so[:80]))
        check("Examples:" in so and "cmdipc %s " % sub in so.split("Examples:")[1],
              "%s --help has no examples" % sub)
        so2, _ = expect(["help", sub], 0)
        check(so2 == so, "cmdipc help %s differs from %s --help" % (sub, sub))
    so, _ = expect(["call", "-h"], 0)
    for code, num in EXIT.items():
        if code != "ok":
            check(("%3d  %s" % (num, code)) in so or ("%d  %s" % (num, code)) in so,
                  "call --help does not document exit %d %s" % (num, code))


@test
def usage_errors():
    cases = [
        [],
        ["frobnicate"],
        ["--frobnicate"],
        ["call"],
        ["call", M.unix],
        ["call", M.unix, "text.echo", "1", "extra"],
        ["call", "--bogus", M.unix, "text.echo"],
        ["call", "--timeout", "soon", M.unix, "text.echo"],
        ["call", M.unix, ""],
        ["call", "--timeout"],
        ["list"],
        ["emit", M.unix],
        ["emit", M.unix, "_private.event"],
        ["listen"],
        ["listen", "--count", "0", M.unix],
        ["listen", "--count", "many", M.unix],
        ["hub"],
        ["hub", "--mode", "999", "unix:///tmp/x.sock"],
        ["serve", M.unix],
        ["serve", M.unix, "--command", "no-equals-sign"],
        ["serve", M.unix, "--command", "=true"],
        ["serve", M.unix, "-c", "a=true", "-c", "a=false"],
        ["serve", M.unix, "-c", "a=true", "-d", "b=text"],
        ["call", "stdio://", "text.echo"],
        ["listen", "stdio://"],
    ]
    for args in cases:
        _, se = expect(args, EXIT["usage"])
        check(se.strip() != "", "cmdipc %s: no message on stderr" % args)


@test
def invalid_json_is_a_usage_error_before_anything_is_sent():
    # The address does not exist: 64 (not 69) proves the JSON was checked first.
    nowhere = "unix://%s/nowhere.sock" % M.dir
    _, se = expect(["call", nowhere, "text.echo", '{"a": 1,}'], EXIT["usage"])
    check("line 1, column" in se and "JSON" in se, "no position in %r" % se)
    expect(["call", nowhere, "text.echo", '{"a": 1} trailing'], EXIT["usage"], err="column")
    expect(["call", nowhere, "text.echo", '{"a": 1, "a": 2}'], EXIT["usage"], err="JSON")
    expect(["call", nowhere, "text.echo", "'single'"], EXIT["usage"], err="column 1")
    expect(["call", nowhere, "text.echo", "[" * 64 + "]" * 64], EXIT["usage"], err="63")
    # 63 levels is the most a request may have: it is sent (and not found).
    expect(["call", M.unix, "no.such", "[" * 63 + "]" * 63], EXIT["not_found"])
    expect(["call", nowhere, "text.echo", "-"], EXIT["usage"], stdin="{oops",
           err="(stdin)")
    expect(["emit", nowhere, "ev", "{"], EXIT["usage"], err="column")


@test
def bad_addresses_are_usage_errors():
    expect(["call", "nonsense", "text.echo"], EXIT["usage"], err="invalid address")
    expect(["call", "gopher://host/x", "text.echo"], EXIT["usage"], err="invalid address")
    expect(["list", "unix://" + "/x" * 80], EXIT["usage"])


@test
def cannot_connect_is_69():
    nowhere = "unix://%s/nowhere.sock" % M.dir
    closed = "tcp://127.0.0.1:%d" % free_tcp_port()
    for addr in (nowhere, closed):
        expect(["call", addr, "text.echo"], EXIT["unavailable"], err="cannot connect")
        expect(["list", addr], EXIT["unavailable"], err="cannot connect")
        expect(["emit", addr, "ev.x"], EXIT["unavailable"], err="cannot connect")
        expect(["listen", addr], EXIT["unavailable"], err="cannot connect")
    # libuv reports a missing directory as "permission denied": the tool says
    # which it is.
    _, se = expect(["hub", "unix:///nonexistent-dir/for/sure/hub.sock"], EXIT["unavailable"],
                   err="directory /nonexistent-dir/for/sure does not exist")
    check("permission denied" not in se, se)
    d = "%s/locked" % M.dir
    os.mkdir(d, 0o500)
    if os.getuid() != 0:  # root may write anywhere: no permission to lack
        expect(["hub", "unix://%s/hub.sock" % d], EXIT["unavailable"], err="permission denied")


@test
def hub_prints_the_addresses_it_listens_on():
    check(M.unix == M.sock, "unix address %r != %r" % (M.unix, M.sock))
    check(M.tcp.startswith("tcp://127.0.0.1:") and not M.tcp.endswith(":0"),
          "tcp address without its port: %r" % M.tcp)


@test
def list_shows_every_command_with_owner_and_description():
    so, _ = expect(["list", M.unix], 0)
    lines = so.splitlines()
    check(lines[0].split() == ["COMMAND", "OWNER", "DESCRIPTION"], "header: %r" % lines[0])
    rows = {l.split()[0]: l for l in lines[1:]}
    for cid in ("text.echo", "sh.fail", "b.hello", "math.add", "greet.hello",
                "cmdipc.commands"):
        check(cid in rows, "list lacks %s: %r" % (cid, so))
    check("Echo the request" in rows["text.echo"], "no description: %r" % rows["text.echo"])
    check(rows["cmdipc.commands"].split()[1] == "local", rows["cmdipc.commands"])
    owner = {c: rows[c].split()[1] for c in ("text.echo", "b.hello", "math.add")}
    # Over the Unix socket the hub knows the peer's pid and process name
    # (SO_PEERCRED, /proc/PID/comm); over TCP its address.
    check(owner["text.echo"] == "cmdipc[%d]" % M.serve_a.p.pid, "owners: %r" % owner)
    check(all(owner[c].startswith("127.0.0.1:") for c in ("b.hello", "math.add")),
          "owners: %r" % owner)
    check(len(set(owner.values())) == 3, "unix, tcp and service owners collide: %r" % owner)
    ids = [l.split()[0] for l in lines[1:]]
    check(ids == sorted(ids), "not sorted by id: %r" % ids)
    so, _ = expect(["list", "--no-header", M.tcp], 0)
    check(so.splitlines() == lines[1:], "list over TCP differs:\n%s\n%s" % (so, lines))


@test
def list_json_is_ndjson():
    so, _ = expect(["list", "--json", M.tcp], 0)
    cmds = [json.loads(l) for l in so.splitlines()]
    by_id = {c["id"]: c for c in cmds}
    peer = {"pid": M.serve_a.p.pid, "uid": os.getuid(), "gid": os.getgid(), "name": "cmdipc"}
    check(by_id["text.echo"] == {"id": "text.echo", "description": "Echo the request",
                                 "channel": by_id["text.echo"]["channel"], "peer": peer,
                                 "local": False},
          repr(by_id["text.echo"]))
    check(by_id["b.hello"]["peer"]["address"].startswith("127.0.0.1:"), repr(by_id["b.hello"]))
    check(by_id["cmdipc.commands"]["local"] is True, by_id["cmdipc.commands"])
    check([c["id"] for c in cmds] == sorted(by_id), "not sorted: %r" % [c["id"] for c in cmds])


@test
def call_reaches_serve_over_unix_with_any_json_value():
    for value in ['{"a":1}', '"text"', "42", "-7", "[1,\"x\",true,{}]", "1.5"]:
        so, _ = expect(["call", M.unix, "text.echo", value], 0)
        check(json.loads(so) == json.loads(value), "echo %s -> %r" % (value, so))
    expect(["call", M.unix, "text.upper", '"shout"'], 0, out='"SHOUT"\n')
    expect(["call", "-r", M.unix, "text.upper", '"shout"'], 0, out="SHOUT\n")
    # No request: the child reads "null" and echoes it. A JSON null and no
    # result are the same in cmd-ipc: both print null.
    expect(["call", M.unix, "text.echo"], 0, out="null\n")
    expect(["call", M.unix, "text.echo", "null"], 0, out="null\n")
    expect(["call", M.unix, "sh.none", '{"x":1}'], 0, out="null\n")
    so, _ = expect(["call", "--pretty", M.unix, "text.echo", '{"a":[1]}'], 0)
    check(so == '{\n  "a": [\n    1\n  ]\n}\n', "pretty: %r" % so)


@test
def call_reaches_serve_over_tcp():
    expect(["call", M.tcp, "b.hello"], 0, out='"hello from B"\n')
    expect(["call", M.unix, "b.hello"], 0, out='"hello from B"\n')
    expect(["call", M.tcp, "b.env"], 0, out='"b.env"\n')
    expect(["call", M.tcp, "text.echo", '{"via":"tcp"}'], 0, out='{"via":"tcp"}\n')


@test
def call_reaches_the_library_service():
    expect(["call", M.unix, "math.add", '{"a":2,"b":3}'], 0, out="5\n")
    expect(["call", M.tcp, "math.mul", '{"a":6,"b":7}'], 0, out="42\n")
    expect(["call", M.unix, "greet.hello", '"Ada"'], 0, out='"Hello, Ada!"\n')
    expect(["call", M.unix, "greet.hello", '{"name":"Bob"}', "--raw"], 0, out="Hello, Bob!\n")
    expect(["call", M.unix, "math.slow", '{"ms":10}'], 0, out='"finally"\n')


@test
def call_reads_json_from_stdin():
    expect(["call", M.unix, "math.add", "-"], 0, stdin='{"a": 40,\n "b": 2}\n', out="42\n")
    expect(["call", M.tcp, "text.echo", "-"], 0, stdin='"from stdin"', out='"from stdin"\n')


@test
def exit_10_not_found():
    expect(["call", M.unix, "no.such.command"], EXIT["not_found"], out="",
           err="not_found: ")


@test
def exit_11_invalid_request():
    expect(["call", M.unix, "math.add", '{"a":"two","b":3}'], EXIT["invalid_request"],
           out="", err="invalid_request: expected")
    expect(["call", M.tcp, "greet.hello", "7"], EXIT["invalid_request"])


@test
def exit_12_internal_error():
    expect(["call", M.unix, "sh.fail"], EXIT["internal_error"], out="",
           err="internal_error: oops: it failed")
    expect(["call", M.unix, "sh.silent-fail"], EXIT["internal_error"], err="exit status 7")
    expect(["call", M.tcp, "sh.notjson"], EXIT["internal_error"], err="not JSON")


@test
def exit_13_timeout():
    t0 = time.monotonic()
    expect(["call", "--timeout", "300ms", M.unix, "math.slow", '{"ms":20000}'],
           EXIT["timeout"], out="", err="timeout: ")
    check(time.monotonic() - t0 < 15, "the timeout took too long")


@test
def exit_14_when_the_serving_process_dies_mid_call():
    pidfile = "%s/c.pid" % M.dir
    sv = Proc([CMDIPC, "serve", M.unix, "-c",
               "c.hang=echo $$ > %s.tmp && mv %s.tmp %s; exec sleep 60" % ((pidfile,) * 3)],
              "serve C")
    try:
        wait_commands(M.unix, ["c.hang"])
        caller = Proc([CMDIPC, "call", M.unix, "c.hang"], "caller")
        wait_file(pidfile, caller)  # the call is running in serve C
        sv.kill()
        rc = caller.wait()
        check(rc == EXIT["channel_disconnected"], "caller exit %d" % rc, caller.describe())
        check(any("channel_disconnected" in l for l in caller.output("err")),
              caller.describe())
    finally:
        sv.kill()
        kill_pidfile(pidfile)


@test
def exit_15_duplicate_command():
    dup = Proc([CMDIPC, "serve", M.tcp, "-c", "text.echo=cat"], "duplicate serve")
    rc = dup.wait()
    check(rc == EXIT["duplicate_command"], "exit %d" % rc, dup.describe())
    check(any("already served" in l for l in dup.output("err")), dup.describe())
    expect(["call", M.unix, "text.echo", "1"], 0, out="1\n")  # the first one still serves


@test
def serve_runs_calls_concurrently():
    # conc.wait only ends once conc.go ran: with calls run one after the other
    # it would time out.
    waiter = Proc([CMDIPC, "call", "-t", "20s", M.unix, "conc.wait"], "conc.wait")
    expect(["call", "-t", "20s", M.tcp, "conc.go"], 0, out='"went"\n')
    check(waiter.wait() == 0, "conc.wait failed", waiter.describe())
    check(waiter.output() == ['"waited"'], waiter.describe())


@test
def listen_count_gets_events_from_emit_and_from_a_library_registry():
    lst = Proc([CMDIPC, "listen", "-v", "--count", "4", M.unix], "listen")
    lst.wait_line(lambda l: "listening on" in l, key="err")
    expect(["emit", M.unix, "ev.one", '{"n":1}'], 0, out="")
    expect(["emit", M.tcp, "ev.two"], 0)
    expect(["emit", M.tcp, "ev.three", '"text"'], 0)
    expect(["call", M.unix, "math.add", '{"a":1,"b":1}'], 0, out="2\n")  # emits math.computed
    check(lst.wait() == 0, "listen exit %s" % lst.p.returncode, lst.describe())
    got = [json.loads(l) for l in lst.output()]
    want = [{"eventId": "ev.one", "payload": {"n": 1}}, {"eventId": "ev.two"},
            {"eventId": "ev.three", "payload": "text"},
            {"eventId": "math.computed", "payload": {"op": "add", "result": 2}}]
    key = lambda e: e["eventId"]
    check(sorted(got, key=key) == sorted(want, key=key), "events: %r" % got)


@test
def listen_filters_events_by_pattern():
    lst = Proc([CMDIPC, "listen", "-v", "-n", "1", M.tcp, "math.*", "never.this"], "listen")
    lst.wait_line(lambda l: "listening on" in l, key="err")
    expect(["emit", M.unix, "other.event", "1"], 0)
    expect(["call", M.tcp, "math.mul", '{"a":3,"b":4}'], 0, out="12\n")
    check(lst.wait() == 0, "listen exit %s" % lst.p.returncode, lst.describe())
    got = [json.loads(l) for l in lst.output()]
    check(got == [{"eventId": "math.computed", "payload": {"op": "mul", "result": 12}}],
          "events: %r" % got)


@test
def listen_stops_cleanly_on_sigterm():
    lst = Proc([CMDIPC, "listen", "-v", M.unix], "listen")
    lst.wait_line(lambda l: "listening on" in l, key="err")
    lst.signal(signal.SIGTERM)
    check(lst.wait() == 0, "exit %s" % lst.p.returncode, lst.describe())


@test
def serve_listen_is_reachable_directly():
    addr = "unix://%s/direct.sock" % M.dir
    sv = Proc([CMDIPC, "serve", "--listen", addr, "-c", "d.echo=cat", "-d", "d.echo=Direct"],
              "serve --listen")
    try:
        line = sv.wait_line(lambda l: l.startswith("listening "))
        check(line == "listening " + addr, line)
        # No cmdipc.commands there: list falls back to list.commands.request.
        so, _ = expect(["list", addr], 0)
        rows = [l.split(None, 2) for l in so.splitlines()[1:]]
        check(rows == [["d.echo", "local", "Direct"]], "list: %r" % so)
        expect(["call", addr, "d.echo", '{"k":"v"}'], 0, out='{"k":"v"}\n')
        expect(["call", addr, "nothing.here"], EXIT["not_found"])
        sv.signal(signal.SIGTERM)
        check(sv.wait() == 0, "serve exit %s" % sv.p.returncode, sv.describe())
        check(not os.path.exists(addr[len("unix://"):]), "socket file left behind")
    finally:
        sv.kill()


@test
def serve_stops_cleanly_on_sigterm_and_stops_its_commands():
    pidfile = "%s/d.pid" % M.dir
    sv = Proc([CMDIPC, "serve", M.unix, "-c",
               "d.hang=echo $$ > %s.tmp && mv %s.tmp %s; exec sleep 60" % ((pidfile,) * 3)],
              "serve D")
    try:
        wait_commands(M.unix, ["d.hang"])
        caller = Proc([CMDIPC, "call", M.unix, "d.hang"], "caller")
        wait_file(pidfile, caller)
        with open(pidfile) as f:
            child = int(f.read())
        sv.signal(signal.SIGTERM)
        check(sv.wait() == 0, "serve exit %s" % sv.p.returncode, sv.describe())
        check(caller.wait() == EXIT["channel_disconnected"], caller.describe())
        try:
            os.kill(child, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        check(not alive, "the running command (pid %d) survived serve" % child)
    finally:
        sv.kill()
        kill_pidfile(pidfile)


@test
def serve_over_stdio_is_a_plugin():
    # This script is the host: it speaks spec-v1 NDJSON on serve's stdin/stdout.
    sv = Proc([CMDIPC, "serve", "stdio://", "-c", "p.echo=cat"], "serve stdio://",
              stdin=subprocess.PIPE)
    try:
        def send(msg):
            sv.p.stdin.write((json.dumps(msg) + "\n").encode())
            sv.p.stdin.flush()

        def new_id():
            return str(uuid.uuid4())

        n = 0
        registered = False
        while not registered:
            msg = json.loads(sv.line_at(n))
            n += 1
            if msg["type"] == "list.commands.request":
                send({"type": "list.commands.response", "id": new_id(), "thid": msg["id"],
                      "commands": []})
            elif msg["type"] == "register.command.request":
                check(msg["command"]["id"] == "p.echo", msg)
                send({"type": "register.command.response", "id": new_id(),
                      "thid": msg["id"], "response": {"ok": True}})
                registered = True
        rid = new_id()
        send({"type": "execute.command.request", "id": rid, "commandId": "p.echo",
              "request": {"via": "stdio"}})
        while True:
            msg = json.loads(sv.line_at(n))
            n += 1
            if msg["type"] == "execute.command.response":
                break
        check(msg["thid"] == rid and msg["response"] == {"ok": True,
                                                         "result": {"via": "stdio"}}, msg)
        sv.p.stdin.close()  # the host stops its plugin
        rc = sv.wait()
        check(rc == 0, "serve exit %s" % rc, sv.describe())
    finally:
        sv.kill()


def one_hub_mesh(name):
    """A hub of its own with a serve process holding a hanging command."""
    d = "%s/%s" % (M.dir, name)
    os.mkdir(d)
    hub, (addr,) = start_hub("unix://%s/hub.sock" % d)
    pidfile = "%s/hang.pid" % d
    sv = Proc([CMDIPC, "serve", addr, "-c",
               "x.hang=echo $$ > %s.tmp && mv %s.tmp %s; exec sleep 60" % ((pidfile,) * 3)],
              "serve " + name)
    wait_commands(addr, ["x.hang"])
    return hub, addr, sv, pidfile


@test
def hub_killed_mid_call_exits_14():
    hub, addr, sv, pidfile = one_hub_mesh("killed")
    try:
        lst = Proc([CMDIPC, "listen", "-v", addr], "listen")
        lst.wait_line(lambda l: "listening on" in l, key="err")
        caller = Proc([CMDIPC, "call", addr, "x.hang"], "caller")
        wait_file(pidfile, caller)
        hub.kill()
        rc = caller.wait()
        check(rc == EXIT["channel_disconnected"], "caller exit %d" % rc, caller.describe())
        check(any("channel_disconnected" in l for l in caller.output("err")),
              caller.describe())
        rc = lst.wait()
        check(rc == EXIT["channel_disconnected"], "listen exit %d" % rc, lst.describe())
        # serve keeps trying to reconnect (it says the link is down) and registers
        # its commands again with a new hub on the same address.
        sv.wait_line(lambda l: "lost" in l and "reconnecting" in l, key="err")
        check(sv.p.poll() is None, "serve gave up", sv.describe())
        kill_pidfile(pidfile)
        hub2, _ = start_hub(addr)
        try:
            wait_commands(addr, ["x.hang"])
        finally:
            hub2.kill()
    finally:
        hub.kill()
        sv.kill()
        kill_pidfile(pidfile)


@test
def hub_stops_cleanly_on_sigterm_failing_pending_calls():
    hub, addr, sv, pidfile = one_hub_mesh("stopped")
    try:
        caller = Proc([CMDIPC, "call", addr, "x.hang"], "caller")
        wait_file(pidfile, caller)
        hub.signal(signal.SIGTERM)
        check(hub.wait() == 0, "hub exit %s" % hub.p.returncode, hub.describe())
        rc = caller.wait()
        check(rc == EXIT["channel_disconnected"], "caller exit %d" % rc, caller.describe())
        check(not os.path.exists(addr[len("unix://"):]), "hub left its socket file")
    finally:
        hub.kill()
        sv.kill()
        kill_pidfile(pidfile)


@test
def hub_logs_connections_and_registrations_with_v():
    d = "%s/verbose" % M.dir
    os.mkdir(d)
    hub, (addr,) = start_hub("unix://%s/hub.sock" % d, verbose=True)
    try:
        sv = Proc([CMDIPC, "serve", addr, "-c", "v.cmd=true"], "serve V")
        hub.wait_line(lambda l: "registered v.cmd" in l, key="err")
        hub.wait_line(lambda l: "accepted" in l, key="err")
        sv.signal(signal.SIGTERM)
        check(sv.wait() == 0, sv.describe())
        hub.wait_line(lambda l: "v.cmd gone" in l, key="err")
        hub.signal(signal.SIGINT)
        check(hub.wait() == 0, "hub exit %s" % hub.p.returncode, hub.describe())
    finally:
        hub.kill()


@test
def hub_mode_sets_the_socket_permissions():
    d = "%s/mode" % M.dir
    os.mkdir(d)
    hub, (addr,) = start_hub("--mode", "0660", "unix://%s/hub.sock" % d)
    try:
        mode = os.stat("%s/hub.sock" % d).st_mode & 0o777
        check(mode == 0o660, "socket mode %o" % mode)
        expect(["call", addr, "cmdipc.commands"], 0)
    finally:
        hub.kill()


# ---------------------------------------------------------------------------
# Durations, null, messages.

@test
def durations_bare_numbers_are_seconds():
    # 2 is two seconds (it was 2 ms): a 100 ms call fits in it.
    expect(["call", "--timeout", "2", M.unix, "math.slow", '{"ms":100}'], 0, out='"finally"\n')
    for d in ("2s", "2000ms", "0.05m", "1h"):
        expect(["call", "--timeout", d, M.unix, "math.slow", '{"ms":10}'], 0, out='"finally"\n')
    t0 = time.monotonic()
    _, se = expect(["call", "-t", "0.3", M.unix, "math.slow", '{"ms":20000}'], EXIT["timeout"])
    check(time.monotonic() - t0 < 15, "the timeout took too long")
    for bad in ("5x", "-1", "s", "1.5 s", "+2"):
        _, se = expect(["call", "--timeout", bad, M.unix, "text.echo"], EXIT["usage"],
                       err="invalid duration")
    expect(["wait", "--timeout", "2x", M.unix], EXIT["usage"], err="invalid duration")
    expect(["emit", "--timeout", "ms", M.unix, "e.x"], EXIT["usage"], err="invalid duration")
    expect(["list", "--connect-timeout", "1q", M.unix], EXIT["usage"], err="invalid duration")
    # Messages say durations the way they are written.
    _, se = expect(["wait", "-t", "250ms", "unix://%s/never.sock" % M.dir], EXIT["unavailable"])
    check("within 250ms" in se, se)


@test
def nul_in_json_is_explained_without_jansson_flag_names():
    nowhere = "unix://%s/nowhere.sock" % M.dir
    _, se = expect(["call", nowhere, "text.echo", '"a\\u0000b"'], EXIT["usage"], err="NUL")
    check("JSON_ALLOW_NUL" not in se and "column" in se, se)
    # The same for a shell command's output.
    sv = Proc([CMDIPC, "serve", M.unix, "-c", "nul.out=printf '\"a\\\\u0000b\"'"], "serve nul")
    try:
        wait_commands(M.unix, ["nul.out"])
        _, se = expect(["call", M.unix, "nul.out"], EXIT["internal_error"], err="NUL")
        check("JSON_ALLOW_NUL" not in se, se)
    finally:
        sv.kill()


@test
def help_of_help():
    so, _ = expect(["help", "--help"], 0)
    check(so.startswith("Usage: cmdipc help"), so[:60])
    so2, _ = expect(["help", "help"], 0)
    check(so2 == so, "help help differs from help --help")
    so, _ = expect(["help", "wait"], 0)
    check(so == cmdipc("wait", "--help")[1], "help wait differs")
    expect(["help", "nope"], EXIT["usage"], err="unknown command 'nope'")


# ---------------------------------------------------------------------------
# wait, call --wait.

@test
def wait_returns_once_the_hub_and_the_commands_are_up():
    d = "%s/waiting" % M.dir
    os.mkdir(d)
    addr = "unix://%s/hub.sock" % d
    # Started before anything exists: no socket file, then no command.
    waiter = Proc([CMDIPC, "wait", "--timeout", "60", addr, "late.cmd", "late.other"], "wait")
    caller = Proc([CMDIPC, "call", "--wait", "--connect-timeout", "60", addr, "late.cmd",
                   '"x"'], "call --wait")
    hub, _ = start_hub(addr)
    sv = None
    try:
        check(waiter.p.poll() is None, "wait returned before the commands existed",
              waiter.describe())
        sv = Proc([CMDIPC, "serve", addr, "-c", "late.cmd=cat", "-c", "late.other=true"],
                  "serve late")
        check(waiter.wait() == 0, "wait failed", waiter.describe())
        check(caller.wait() == 0, "call --wait failed", caller.describe())
        check(caller.output() == ['"x"'], caller.describe())
        # Once up, wait returns at once; without COMMAND it waits for an answer.
        expect(["wait", addr, "late.cmd"], 0, out="")
        expect(["wait", addr], 0, out="")
    finally:
        for p in (waiter, caller, sv, hub):
            if p is not None:
                p.kill()


@test
def wait_times_out_saying_what_is_missing():
    t0 = time.monotonic()
    _, se = expect(["wait", "-t", "0.3", "unix://%s/nobody.sock" % M.dir], EXIT["unavailable"],
                   err="did not answer within 300ms")
    _, se = expect(["wait", "-t", "0.5", M.unix, "text.echo", "never.served"],
                   EXIT["not_found"], err="never.served is not reachable")
    _, se = expect(["--json", "wait", "-t", "0.3", M.unix, "never.served"], EXIT["not_found"])
    err = json.loads(se.strip().splitlines()[-1])
    check(err["code"] == "not_found" and err["exit"] == 10, err)
    expect(["call", "--wait", "--connect-timeout", "0.3", M.unix, "never.served"],
           EXIT["not_found"], err="never.served is not reachable")
    check(time.monotonic() - t0 < 20, "the waits took too long")


# ---------------------------------------------------------------------------
# call --lines.

@test
def call_lines_prints_one_result_per_line_in_order():
    stdin = '{"a":1,"b":2}\n\n  \n{"a":3,"b":4}\nnot json\n{"a":"x","b":1}\r\n{"a":5,"b":6}'
    so, se = expect(["call", "--lines", M.unix, "math.add"], EXIT["usage"], stdin=stdin)
    # Blank lines are skipped; a failed request prints an empty line; the exit
    # status is the first failure's (line 5: invalid JSON is a usage error).
    check(so == "3\n7\n\n\n11\n", "stdout %r" % so)
    check("line 5: usage: the request is not valid JSON" in se, se)
    check("line 6: invalid_request:" in se, se)
    so, se = expect(["call", "--lines", "-j", "4", M.tcp, "text.echo"], 0,
                    stdin="".join('{"n":%d}\n' % i for i in range(200)))
    check([json.loads(l)["n"] for l in so.splitlines()] == list(range(200)), so[:200])
    # From a file rather than a pipe, and with no request at all.
    path = "%s/requests" % M.dir
    with open(path, "w") as f:
        f.write('"a"\n"b"\n')
    with open(path) as f:
        r = subprocess.run([CMDIPC, "call", "-l", M.unix, "text.upper"], stdin=f,
                           capture_output=True, text=True, timeout=TIMEOUT)
    check(r.returncode == 0 and r.stdout == '"A"\n"B"\n', r)
    expect(["call", "--lines", M.unix, "text.upper"], 0, stdin="", out="")
    expect(["call", "--lines", M.unix, "text.upper", '"x"'], EXIT["usage"], err="stdin")
    expect(["call", "-j", "2", M.unix, "text.upper", '"x"'], EXIT["usage"], err="--lines")
    expect(["call", "--lines", "-j", "2000", M.unix, "text.upper"], EXIT["usage"], err="1024")


@test
def call_lines_pipelines_jobs_and_keeps_the_order():
    # The first request only finishes once the second ran: with one call at a
    # time it could never finish; with -j 2 both do, printed in input order.
    flag = "%s/sync-%s" % (M.dir, uuid.uuid4().hex)
    stdin = '"w:%s"\n"t:%s"\n' % (flag, flag)
    so, se = expect(["call", "--lines", "-j", "2", "-t", "20", M.unix, "sync.step"], 0,
                    stdin=stdin)
    check(so == '"waited"\n"touched"\n', "stdout %r" % so, se)
    flag2 = flag + "-2"
    so, se = expect(["call", "--lines", "-t", "1", M.unix, "sync.step"], EXIT["timeout"],
                    stdin='"w:%s"\n"t:%s"\n' % (flag2, flag2))
    check(so == '\n"touched"\n' and "line 1: timeout" in se, "stdout %r" % so, se)


@test
def call_lines_json_errors_name_the_line():
    so, se = expect(["call", "--lines", "--json", M.unix, "math.add"], EXIT["invalid_request"],
                    stdin='{"a":1,"b":1}\n{"a":"no"}\n')
    check(so == "2\n\n", so)
    errs = [json.loads(l) for l in se.splitlines()]
    check(len(errs) == 1 and errs[0]["line"] == 2 and errs[0]["code"] == "invalid_request"
          and errs[0]["exit"] == 11 and errs[0]["level"] == "error", "errors: %r" % errs)


# ---------------------------------------------------------------------------
# Schemas, describe.

@test
def serve_schema_is_shown_by_list_and_describe():
    got = list_ids(M.unix)
    check(got["schema.cmd"].get("schema") == SCHEMA, got["schema.cmd"])
    so, _ = expect(["list", "--schema", M.unix], 0)
    lines = so.splitlines()
    i = [n for n, l in enumerate(lines) if l.startswith("schema.cmd ")][0]
    check(json.loads(lines[i + 1].split("schema: ", 1)[1]) == SCHEMA, lines[i:i + 2])
    so, _ = expect(["describe", M.tcp, "schema.cmd"], 0)
    check("command:     schema.cmd\n" in so and "description: Has a schema\n" in so, so)
    check("owner:       cmdipc[%d] (channel conn-" % M.serve_a.p.pid in so, so)
    body = so.split("schema:\n", 1)[1]
    check(json.loads(body) == SCHEMA, body)
    so, _ = expect(["describe", "--json", M.unix, "schema.cmd"], 0)
    check(json.loads(so)["schema"] == SCHEMA and json.loads(so)["id"] == "schema.cmd", so)
    so, _ = expect(["describe", M.unix, "text.echo"], 0)
    check("schema:      (none)" in so, so)
    expect(["describe", M.unix, "no.such"], EXIT["not_found"], err="not reachable")
    # Inline JSON; refused schemas.
    sv = Proc([CMDIPC, "serve", "--listen", "unix://%s/schema.sock" % M.dir, "-c", "i.cmd=cat",
               "-s", 'i.cmd={"request":{"type":"string"}}'], "serve inline schema")
    try:
        sv.wait_line(lambda l: l.startswith("listening "))
        so, _ = expect(["describe", "--json", "%s/schema.sock" % M.dir, "i.cmd"], 0)
        check(json.loads(so)["schema"] == {"request": {"type": "string"}}, so)
    finally:
        sv.kill()
    for spec, err in (("x=%s/none.json" % M.dir, "cannot read"),
                      ('x={"request":1,"extra":2}', "unexpected member"),
                      ('x={"a":', "not valid JSON"), ("y={}", "no --command y")):
        expect(["serve", M.unix, "-c", "x=true", "-s", spec], EXIT["usage"], err=err)
    path = "%s/array.json" % M.dir
    with open(path, "w") as f:
        f.write("[1]")
    expect(["serve", M.unix, "-c", "x=true", "-s", "x=" + path], EXIT["usage"],
           err="expected a JSON object")


@test
def list_sorts_what_a_plain_registry_answers():
    addr = "unix://%s/unsorted.sock" % M.dir
    sv = Proc([CMDIPC, "serve", "--listen", addr, "-c", "z.last=true", "-c", "a.first=true",
               "-c", "m.mid=true"], "serve unsorted")
    try:
        sv.wait_line(lambda l: l.startswith("listening "))
        so, _ = expect(["list", "--no-header", addr], 0)
        check([l.split()[0] for l in so.splitlines()] == ["a.first", "m.mid", "z.last"], so)
        so, _ = expect(["list", "--json", addr], 0)
        check([json.loads(l)["id"] for l in so.splitlines()] == ["a.first", "m.mid", "z.last"],
              so)
    finally:
        sv.kill()


# ---------------------------------------------------------------------------
# --json, -q, listen --timestamps, emit --timeout.

@test
def json_errors_are_one_line_with_code_and_message():
    cases = [
        (["--json", "call", M.unix, "no.such"], "not_found", 10, 'command "no.such"'),
        (["call", "--json", M.unix, "math.add", '{"a":"x"}'], "invalid_request", 11, "expected"),
        (["call", "--json", M.unix, "sh.fail"], "internal_error", 12, "oops"),
        (["--json", "call"], "usage", 64, "expected ADDR"),
        (["--json", "call", "--bogus", M.unix, "x"], "usage", 64, "--bogus"),
        (["--json", "frobnicate"], "usage", 64, "frobnicate"),
        (["--json", "list", "unix://%s/none.sock" % M.dir], "unavailable", 69, "cannot connect"),
        (["--json", "serve", M.tcp, "-c", "text.echo=cat"], "duplicate_command", 15,
         "already served"),
    ]
    for args, code, status, text in cases:
        so, se = expect(args, status)
        lines = [json.loads(l) for l in se.strip().splitlines()]  # every line is JSON
        errors = [l for l in lines if l["level"] == "error"]
        check(len(errors) == 1 and all(l["level"] == "warning" for l in lines if l not in errors),
              "cmdipc %s: not one error line: %r" % (args, se))
        err = errors[0]
        check(err == {"level": "error", "code": code, "exit": status,
                      "message": err.get("message")} and text in err["message"],
              "cmdipc %s: %r" % (args, err))
        check(not err["message"].startswith(code + ":"), err)


@test
def quiet_prints_nothing_but_keeps_the_exit_status():
    expect(["call", "-q", M.unix, "text.echo", "1"], 0, out="", err="")
    expect(["-q", "list", M.unix], 0, out="")
    expect(["describe", "-q", M.unix, "text.echo"], 0, out="")
    _, se = expect(["call", "-q", M.unix, "no.such"], EXIT["not_found"], out="")
    check("not_found" in se, "errors still go to stderr: %r" % se)
    d = "%s/quiet" % M.dir
    os.mkdir(d)
    hub = Proc([CMDIPC, "hub", "-q", "%s/hub.sock" % d], "hub -q")
    try:
        expect(["wait", "%s/hub.sock" % d], 0)
        hub.signal(signal.SIGTERM)
        check(hub.wait() == 0 and hub.output() == [], hub.describe())
    finally:
        hub.kill()


@test
def listen_timestamps():
    lst = Proc([CMDIPC, "listen", "-v", "-T", "-n", "1", M.unix, "ts.*"], "listen -T")
    lst.wait_line(lambda l: "listening on" in l, key="err")
    before = time.time()
    expect(["emit", M.unix, "ts.one", "[1]"], 0)
    check(lst.wait() == 0, lst.describe())
    ev = json.loads(lst.output()[0])
    check(list(ev) == ["time", "eventId", "payload"] and ev["payload"] == [1], ev)
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", ev["time"]), ev)
    t = calendar.timegm(time.strptime(ev["time"][:19], "%Y-%m-%dT%H:%M:%S"))
    check(abs(t - before) < 60, "time %s is not now" % ev["time"])


class SilentPeer:
    """A Unix socket that accepts and reads but never answers (not a cmd-ipc
    registry, or a stuck one); close_after: close once a line with it came."""

    def __init__(self, path, close_after=None):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(4)
        self.close_after = close_after
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        data = b""
        while True:
            try:
                got = c.recv(65536)
            except OSError:
                return
            if not got:
                return
            data += got
            if self.close_after and self.close_after.encode() in data:
                c.close()
                return

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@test
def emit_timeout_and_what_it_says():
    path = "%s/silent.sock" % M.dir
    peer = SilentPeer(path)
    try:
        t0 = time.monotonic()
        _, se = expect(["emit", "--timeout", "0.5", path, "e.silent"], EXIT["timeout"],
                       err="did not confirm it within 500ms")
        check("lost" not in se, "nothing was lost: %r" % se)
        check(time.monotonic() - t0 < 15, "emit did not honour --timeout")
    finally:
        peer.close()
    path = "%s/closing.sock" % M.dir
    peer = SilentPeer(path, close_after='"eventId":"e.closed"')
    try:
        expect(["emit", path, "e.closed"], EXIT["channel_disconnected"],
               err="lost before it was confirmed")
    finally:
        peer.close()


# ---------------------------------------------------------------------------
# Addresses: CMDIPC_ADDR and plain socket paths.

@test
def addresses_from_cmdipc_addr_and_plain_paths():
    path = M.unix[len("unix://"):]
    env = dict(os.environ, CMDIPC_ADDR=path)

    def run(args, cwd=None, e=env):
        r = subprocess.run([CMDIPC] + args, capture_output=True, text=True, env=e, cwd=cwd,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout, r.stderr

    check(run(["call", "text.echo", "1"])[:2] == (0, "1\n"), run(["call", "text.echo", "1"]))
    check(run(["call", "text.upper", '"a"'])[1] == '"A"\n', "")
    rc, so, _ = run(["list", "--no-header"])
    check(rc == 0 and "text.echo" in so, so)
    check(run(["wait", "text.echo"])[0] == 0, "wait with CMDIPC_ADDR")
    check(run(["describe", "text.echo"])[0] == 0, "describe with CMDIPC_ADDR")
    # An address given wins over the environment; a plain path is unix://.
    rc, so, se = run(["call", M.tcp, "text.echo", "2"], e=dict(env, CMDIPC_ADDR="/nowhere"))
    check((rc, so) == (0, "2\n"), se)
    expect(["call", path, "text.echo", "3"], 0, out="3\n")
    rc, so, se = run(["call", "./hub.sock", "text.echo", "4"], cwd=M.dir, e=os.environ)
    check((rc, so) == (0, "4\n"), se)
    rc, so, se = run(["call", "text.echo"], e=dict(os.environ, CMDIPC_ADDR=""))
    check(rc == EXIT["usage"] and "CMDIPC_ADDR" in se, se)
    # A hub without ADDR listens on CMDIPC_ADDR.
    d = "%s/envhub" % M.dir
    os.mkdir(d)
    hub = subprocess.Popen([CMDIPC, "hub"], env=dict(os.environ, CMDIPC_ADDR=d + "/h.sock"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        line = hub.stdout.readline()
        check(line == "listening unix://%s/h.sock\n" % d, line)
    finally:
        hub.kill()
        hub.wait()


@test
def hub_is_quiet_by_default():
    # The shared hub ran every test so far without -v, through peers killed,
    # calls timed out and duplicates refused: nothing went wrong on its side,
    # so it said nothing.
    check(M.hub.p.poll() is None, "the hub died", M.hub.describe())
    check(M.hub.output("err") == [], "hub stderr: %r" % M.hub.output("err"))


def main():
    if not (os.access(CMDIPC, os.X_OK) and os.access(SERVICE, os.X_OK)):
        print("1..1\nnot ok 1 - setup\n#   CMDIPC_EXE and CMDIPC_CLI_SERVICE must name the "
              "cmdipc tool and cli-service (test/cli/meson.build sets them)")
        return 1
    print("1..%d" % len(TESTS), flush=True)
    failed = 0
    setup_error = None
    try:
        setup_mesh()
    except Exception as e:  # every test then fails with the reason
        setup_error = "".join(traceback.format_exception_only(type(e), e))
    try:
        for i, fn in enumerate(TESTS, 1):
            name = fn.__name__
            try:
                if setup_error:
                    raise Failure("setting up the mesh failed: " + setup_error)
                fn()
                print("ok %d - %s" % (i, name), flush=True)
            except Exception as e:
                failed += 1
                print("not ok %d - %s" % (i, name))
                text = str(e) if isinstance(e, Failure) else traceback.format_exc()
                for line in text.splitlines():
                    print("#   " + line)
                sys.stdout.flush()
    finally:
        for p in PROCS:
            p.kill()
        shutil.rmtree(getattr(M, "dir", "/nonexistent"), ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
