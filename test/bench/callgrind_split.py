#!/usr/bin/env python3
"""Instructions per round trip from callgrind profiles of rt_count.

usage: callgrind_split.py CMDIPC_N.out CMDIPC_HALF.out FLOOR_N.out FLOOR_HALF.out N

Each profile is a run of `rt_count MODE n` under valgrind --tool=callgrind; N is the
round trips of the *_N runs, the *_HALF runs did N/2. Every figure is
(I(N) - I(N/2)) / (N/2), which cancels set-up, warm-up and teardown.

Per profile it computes:
  total      every instruction (the summary line)
  json       instructions inside libjansson, inclusive: the cost of every call from
             outside libjansson into it (with the malloc/free it does)
  cmdipc     what libcmdipc executes outside libjansson: its own instructions plus
             everything it calls in libc, libuv and libsodium; the event loop's
             own dispatching (uv_run, epoll) and the program's callbacks (its
             handler and response callback, which call back into libcmdipc) are
             not in it
  cmdjson    the part of that which is JSON work done by libcmdipc itself: the
             envelope scanner (validation of every line), the json_t builder
             (payloads a handler or callback reads), the JSON writer and the
             checks of values given to the API (JSON_FUNCS below), with what
             they call
  routing    cmdipc minus cmdjson: cmdipc's own non-JSON work (routing, calls,
             framing, ids, hashing, allocation)
  by object  the self cost of each shared object
"""
import collections
import os
import re
import sys

NAME_RE = re.compile(r"\((\d+)\)(?: (.*))?$")

# libcmdipc's functions that process JSON text (static ones may be inlined into
# these, which keeps them in the class).
JSON_FUNCS = {
    "cmdipc__scan", "scan_string", "scan_str", "scan_number", "scan_literal", "push_key",
    "check_dups", "key_cmp", "member_slot", "cmdipc__json_unescape", "cmdipc__buf_put_json",
    "cmdipc__buf_put_jstrn", "cmdipc__buf_put_jstr", "json_check_rec", "cmdipc__json_check",
    "cmdipc__utf8_valid", "put_str", "cmdipc__json_build", "build_value", "build_str",
    "build_ws", "parse_int", "num_copy", "cmdipc__strtod",
}


def fn_class(fn, ob):
    c = classify(ob)
    if c == "cmdipc" and fn is not None and fn.split("'")[0].split(".")[0] in JSON_FUNCS:
        return "cmdjson"
    return c


def classify(obj):
    base = os.path.basename(obj or "")
    for key, label in (("libjansson", "jansson"), ("libcmdipc", "cmdipc"), ("libuv", "libuv"),
                       ("libsodium", "libsodium"), ("ld-linux", "ld.so"), ("libc.so", "libc"),
                       ("libc-", "libc"), ("rt_count", "rt_count")):
        if key in base:
            return label
    return "other"


def parse(path):
    names = {"ob": {}, "fn": {}, "fl": {}}
    kinds = {"ob": "ob", "cob": "ob", "fn": "fn", "cfn": "fn", "fl": "fl", "fi": "fl",
             "fe": "fl", "cfi": "fl", "cfl": "fl"}

    def name(kind, value):
        m = NAME_RE.match(value)
        if not m:
            return value
        table = names[kinds[kind]]
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), m.group(1))

    self_cost = collections.Counter()
    fn_cost = collections.Counter()  # (function, class) -> self cost
    arcs = collections.Counter()  # (caller class, callee class) -> inclusive cost
    farcs = collections.Counter()  # the same with libcmdipc's JSON functions apart
    fself = collections.Counter()
    total = None
    ob = cob = fn = cfn = None
    in_call = False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if in_call:
                    arcs[(classify(ob), classify(cob if cob is not None else ob))] += cost
                    farcs[(fn_class(fn, ob), fn_class(cfn, cob if cob is not None else ob))] += cost
                    in_call = False
                    cob = None
                else:
                    self_cost[classify(ob)] += cost
                    fself[fn_class(fn, ob)] += cost
                    fn_cost[(fn, classify(ob))] += cost
                continue
            if line.startswith(("summary:", "totals:")):
                value = int(line.split(":", 1)[1].split()[0])
                if line.startswith("summary:") or total is None:
                    total = value
                continue
            key, sep, value = line.partition("=")
            if not sep:
                continue
            if key == "ob":
                ob = name("ob", value)
            elif key == "cob":
                cob = name("cob", value)
            elif key in ("fn", "cfn", "fl", "fi", "fe", "cfi", "cfl"):
                v = name(key, value)
                if key == "fn":
                    fn = v
                    cob = None
                elif key == "cfn":
                    cfn = v
            elif key == "calls":
                in_call = True
    if total is None:
        total = sum(self_cost.values())
    json_incl = sum(v for (a, b), v in arcs.items() if b == "jansson" and a != "jansson")
    cmdipc_own = self_cost["cmdipc"] + sum(
        v for (a, b), v in arcs.items()
        if a == "cmdipc" and b not in ("cmdipc", "jansson", "rt_count"))
    routing = fself["cmdipc"] + sum(
        v for (a, b), v in farcs.items()
        if a == "cmdipc" and b not in ("cmdipc", "cmdjson", "jansson", "rt_count"))
    cmdjson = cmdipc_own - routing
    return {"total": total, "json": json_incl, "cmdipc": cmdipc_own, "routing": routing,
            "cmdjson": cmdjson,
            "self": self_cost, "selfsum": sum(self_cost.values()), "fns": fn_cost}


def per_rt(full, half, key, n):
    return (full[key] - half[key]) / (n / 2)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    cmd_n, cmd_h, flo_n, flo_h = (parse(p) for p in sys.argv[1:5])
    n = int(sys.argv[5])
    for p in (cmd_n, cmd_h, flo_n, flo_h):
        if abs(p["selfsum"] - p["total"]) > p["total"] * 0.001:
            sys.exit("callgrind: could not account for every instruction (%d of %d)" %
                     (p["selfsum"], p["total"]))

    def line(name, value, note):
        print("%-34s %10.0f instructions/rt  %s" % (name, value, note))

    floor = per_rt(flo_n, flo_h, "total", n)
    cmd = per_rt(cmd_n, cmd_h, "total", n)
    line("callgrind/unix/json_floor", floor, "(baseline)")
    line("callgrind/unix/cmdipc", cmd, "%.2fx callgrind/unix/json_floor (target <= 1.0x)" %
         (cmd / floor if floor else 0))
    own = per_rt(cmd_n, cmd_h, "cmdipc", n)
    line("callgrind/unix/cmdipc_outside_jansson", own,
         "(libcmdipc and what it calls, libjansson excluded)")
    line("callgrind/unix/cmdipc_json", per_rt(cmd_n, cmd_h, "cmdjson", n),
         "(of which JSON work in libcmdipc: envelope scanner, json_t builder, writer, value checks)")
    line("callgrind/unix/cmdipc_non_json", per_rt(cmd_n, cmd_h, "routing", n),
         "(target <= 10,000: routing, calls, framing, ids, hashing, allocation)")
    for label, full, half in (("cmdipc", cmd_n, cmd_h), ("json_floor", flo_n, flo_h)):
        json_rt = per_rt(full, half, "json", n)
        objs = sorted(set(full["self"]) | set(half["self"]))
        parts = ["%s %.0f" % (o, (full["self"][o] - half["self"][o]) / (n / 2)) for o in objs]
        print("%-34s %s: jansson (inclusive) %.0f, everything else %.0f; self cost by object: %s"
              % ("", label, json_rt, per_rt(full, half, "total", n) - json_rt, ", ".join(parts)))
    # Where cmdipc's own instructions go: the heaviest functions of libcmdipc,
    # libc, libuv and libsodium in the cmdipc run, by self cost per round trip.
    fns = collections.Counter()
    for key, v in cmd_n["fns"].items():
        if key[1] not in ("jansson", "rt_count"):
            fns[key] += (v - cmd_h["fns"].get(key, 0)) / (n / 2)
    top = ["%s %.0f" % (f.split("'")[0], v) for (f, _), v in fns.most_common(10)]
    print("%-34s cmdipc, heaviest functions outside jansson (self per rt): %s"
          % ("", ", ".join(top)))


if __name__ == "__main__":
    main()
