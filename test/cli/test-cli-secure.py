#!/usr/bin/env python3
"""End-to-end tests of the cmdipc tool's secure options (TAP on stdout):
`cmdipc keygen`, and a hub on tcp+sodium:// and unix+sodium:// with a `serve`
process, `call`, `list`, `emit` and `listen` authenticated by --key,
--peer-key and --allow; a key not allowed, a wrong pin, a missing key and a
key file readable by others each give their exit status.

Environment: CMDIPC_EXE (the tool). Readiness comes from the processes'
own lines ("listening ADDR", `listen -v`'s "listening on"); no sleeps."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

CMDIPC = os.environ.get("CMDIPC_EXE", "")
TIMEOUT = 30 * float(os.environ.get("CMDIPC_TEST_TIMEOUT_MULTIPLIER", "1"))
PROCS = []


class Failure(Exception):
    pass


def check(cond, what, *details):
    if not cond:
        raise Failure(what + "".join("\n" + str(d) for d in details))


def run(*args, stdin=None):
    r = subprocess.run([CMDIPC] + [str(a) for a in args], input=stdin, capture_output=True,
                       text=True, timeout=TIMEOUT,
                       stdin=None if stdin is not None else subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def expect(args, code, out=None, err=None):
    rc, so, se = run(*args)
    what = "cmdipc " + " ".join(map(str, args))
    check(rc == code, "%s: exit %d, expected %d" % (what, rc, code), "stdout %r" % so,
          "stderr %r" % se)
    if out is not None:
        check(so == out, "%s: stdout %r, expected %r" % (what, so, out))
    if err is not None:
        check(err in se, "%s: stderr lacks %r" % (what, err), "stderr %r" % se)
    return so, se


class Proc:
    def __init__(self, args):
        self.p = subprocess.Popen([CMDIPC] + args, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        self.out, self.err = [], []
        self.cond = threading.Condition()
        PROCS.append(self)
        self.readers = []
        for lines, stream in ((self.out, self.p.stdout), (self.err, self.p.stderr)):
            t = threading.Thread(target=self._read, args=(lines, stream), daemon=True)
            t.start()
            self.readers.append(t)

    def finish(self):
        """Waits for the exit and for every line it wrote; returns the status."""
        rc = self.p.wait(timeout=TIMEOUT)
        for t in self.readers:
            t.join(TIMEOUT)
        return rc

    def _read(self, lines, stream):
        for line in iter(stream.readline, ""):
            with self.cond:
                lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait(self, pred, lines=None):
        lines = self.out if lines is None else lines
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while True:
                for l in lines:
                    if pred(l):
                        return l
                if self.p.poll() is not None or time.monotonic() > deadline:
                    raise Failure("line not seen; stdout %r stderr %r" % (self.out, self.err))
                self.cond.wait(0.1)

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, 9)
        self.p.wait()


D = tempfile.mkdtemp(prefix="cmdipc-sec-")


def key(name):
    path = os.path.join(D, name)
    if not os.path.exists(path):
        so, _ = expect(["keygen", path], 0)
        check(len(so.strip()) == 44, "keygen prints the public key", so)
    return path


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def keygen_writes_a_0600_secret_and_the_public_key():
    path = os.path.join(D, "k1")
    so, _ = expect(["keygen", path], 0)
    check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, "secret key mode 0600")
    with open(path + ".pub") as f:
        check(f.read() == so, "PATH.pub holds the printed public key")
    before = open(path).read()
    expect(["keygen", path], 1, err="File exists")  # never over an existing key
    check(open(path).read() == before, "the existing key is untouched")
    expect(["keygen"], 64)


def mesh(scheme_addr):
    hub_key, cli_key = key("hub.key"), key("cli.key")
    hub = Proc(["hub", scheme_addr, "--key", hub_key, "--allow", cli_key + ".pub"])
    addr = hub.wait(lambda l: l.startswith("listening ")).split(" ", 1)[1]
    check("+sodium://" in addr, "the hub prints a +sodium address", addr)
    auth = ["--key", cli_key, "--peer-key", hub_key + ".pub"]
    serve = Proc(["serve", addr] + auth + ["-c", "text.upper=tr a-z A-Z"])
    deadline = time.monotonic() + TIMEOUT
    while True:
        rc, so, _ = run("list", addr, *auth)
        if rc == 0 and "text.upper" in so:
            break
        check(time.monotonic() < deadline, "serve's command never listed", so)
        time.sleep(0.05)
    return hub, serve, addr, auth


@test
def secure_tcp_call_list_emit_listen():
    hub, serve, addr, auth = mesh("tcp+sodium://127.0.0.1:0")
    try:
        expect(["call", addr] + auth + ["text.upper", '"hello"'], 0, out='"HELLO"\n')
        lis = Proc(["listen", "-v", addr] + auth + ["--count", "1", "job.*"])
        lis.wait(lambda l: "listening on" in l, lis.err)
        expect(["emit", addr] + auth + ["job.done", '{"n":1}'], 0)
        check(lis.finish() == 0, "listen --count 1 exits 0", lis.err)
        check(any('"job.done"' in l for l in lis.out), "the event reached listen", lis.out)
        # Refusals: another key (not allowed), a wrong pin, no key at all.
        other = key("other.key")
        _, se = expect(["call", addr, "--key", other, "--peer-key", key("hub.key") + ".pub",
                        "text.upper", '"x"'], 69, err="peer rejected")
        expect(["call", addr, "--key", key("cli.key"), "--peer-key", other + ".pub",
                "text.upper", '"x"'], 69)
        expect(["call", addr, "text.upper", '"x"'], 64, err="needs --key")
        expect(["call", addr, "--key", key("cli.key"), "text.upper", '"x"'], 64,
               err="needs --peer-key")
        hub.wait(lambda l: "is not authorized" in l, hub.err)
    finally:
        serve.kill()
        hub.kill()


@test
def secure_unix_call():
    hub, serve, addr, auth = mesh("unix+sodium://" + os.path.join(D, "hub.sock"))
    try:
        expect(["call", addr] + auth + ["text.upper", '"unix"'], 0, out='"UNIX"\n')
    finally:
        serve.kill()
        hub.kill()


@test
def key_file_readable_by_others_is_refused():
    path = key("loose.key")
    os.chmod(path, 0o644)
    expect(["hub", "tcp+sodium://127.0.0.1:0", "--key", path], 64, err="chmod 600")
    expect(["call", "tcp+sodium://127.0.0.1:1", "--key", path, "--peer-key",
            key("hub.key") + ".pub", "x"], 64, err="chmod 600")
    expect(["call", "tcp+sodium://127.0.0.1:1", "--key", key("cli.key"), "--peer-key",
            "not-a-key", "x"], 64, err="neither a public key")


def main():
    if not os.access(CMDIPC, os.X_OK):
        print("1..1\nnot ok 1 - setup\n#   CMDIPC_EXE must name the cmdipc tool")
        return 1
    print("1..%d" % len(TESTS), flush=True)
    failed = 0
    try:
        for i, fn in enumerate(TESTS, 1):
            try:
                fn()
                print("ok %d - %s" % (i, fn.__name__), flush=True)
            except Exception as e:
                failed += 1
                print("not ok %d - %s" % (i, fn.__name__))
                for line in str(e).splitlines():
                    print("#   " + line)
                sys.stdout.flush()
    finally:
        for p in PROCS:
            p.kill()
        shutil.rmtree(D, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
