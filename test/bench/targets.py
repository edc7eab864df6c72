#!/usr/bin/env python3
"""targets.py - every performance target, checked against the figures of one run.

Reads what the benchmarks printed (meson's testlog.json of `make bench`, or plain
text on stdin / in files) and prints one line per target: ok or MISSED, the measured
ratio or value and the target. Ratios come from figures measured in the same run.

    targets.py build-release/meson-logs/testlog.json
    ping_pongs | targets.py -

The exit status is 0 either way: the figures depend on the machine (see README,
"Performance"); the listing is there to be read, or grepped for MISSED.
"""
import json
import re
import sys

FIGURE = re.compile(
    r"^(\S+)\s+(-?[\d.]+) (\S+)/s\s+p50\s+([\d.]+) us\s+p99\s+([\d.]+) us\s+"
    r"cpu\s+([\d.]+) us/op\s+(.*)$")
RATIO = re.compile(r"^([\d.]+)x (\S+)")
VALUE = re.compile(r"^(\S+)\s+(-?\d+) (\S+)")


def read_text(paths):
    chunks = []
    for path in paths:
        if path == "-":
            chunks.append(sys.stdin.read())
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith(".json"):
            for line in text.splitlines():
                if line.strip():
                    chunks.append(json.loads(line).get("stdout") or "")
        else:
            chunks.append(text)
    return "\n".join(chunks)


def parse(text):
    figs, values, details = {}, {}, {}
    last = None
    for line in text.splitlines():
        m = FIGURE.match(line)
        if m:
            name = m.group(1)
            r = RATIO.match(m.group(7))
            figs[name] = {
                "rate": float(m.group(2)), "p50": float(m.group(4)),
                "p99": float(m.group(5)),
                "ratio": float(r.group(1)) if r else None,
                "base": r.group(2) if r else None,
            }
            last = name
            continue
        m = VALUE.match(line)
        if m and "/" in m.group(1) and not line.startswith(" "):
            values[m.group(1)] = (int(m.group(2)), line)
            last = m.group(1)
            continue
        if line.startswith(" ") and last is not None:
            details.setdefault(last, []).append(line.strip())
    return figs, values, details


class Checker:
    def __init__(self):
        self.met = self.missed = self.absent = 0

    def report(self, ok, what, measured, target):
        if ok is None:
            self.absent += 1
            print("  -       %s: not measured in this run (target %s)" % (what, target))
            return
        if ok:
            self.met += 1
        else:
            self.missed += 1
        print("  %-7s %s: %s (target %s)" % ("ok" if ok else "MISSED", what, measured, target))


def best_floor(figs, transport, k):
    best = None
    for mode in ("json_per_read", "json_per_msg", "json_flush8"):
        f = figs.get("ping_pongs/%s/%s/%d" % (transport, mode, k))
        if f and (best is None or f["rate"] > best["rate"]):
            best = f
    return best


def main(argv):
    paths = argv[1:] or ["-"]
    figs, values, details = parse(read_text(paths))
    c = Checker()
    print("targets (issue 5) in this run:")

    for transport, label in (("unix", "unix socket"), ("tcp", "TCP loopback")):
        cm, fl = figs.get("ping_pongs/%s/cmdipc/1" % transport), best_floor(figs, transport, 1)
        if cm and fl:
            c.report(cm["rate"] / fl["rate"] >= 0.9, "%s, 1 outstanding" % label,
                     "%.2fx the best naive JSON floor" % (cm["rate"] / fl["rate"]), ">= 0.9x")
            c.report(cm["p50"] / fl["p50"] <= 1.2, "%s, 1 outstanding, p50" % label,
                     "%.2fx the floor's" % (cm["p50"] / fl["p50"]), "<= 1.2x")
            c.report(cm["p99"] / fl["p99"] <= 1.5, "%s, 1 outstanding, p99" % label,
                     "%.2fx the floor's" % (cm["p99"] / fl["p99"]), "<= 1.5x")
        else:
            c.report(None, "%s, 1 outstanding" % label, "", ">= 0.9x the floor")
        cm, fl = figs.get("ping_pongs/%s/cmdipc/64" % transport), best_floor(figs, transport, 64)
        if cm and fl:
            c.report(cm["rate"] / fl["rate"] >= 1.0, "%s, 64 outstanding" % label,
                     "%.2fx the best naive JSON floor" % (cm["rate"] / fl["rate"]), ">= 1.0x")
        else:
            c.report(None, "%s, 64 outstanding" % label, "", ">= 1.0x the floor")

    h = figs.get("ping_pongs/unix_hub/cmdipc/64")
    c.report(None if h is None or h["ratio"] is None else h["ratio"] >= 0.5,
             "hub between two processes, 64 outstanding",
             h and "%.2fx the direct connection" % (h["ratio"] or 0), ">= 0.5x")

    rl = figs.get("ping_pongs/unix_hub/relay/64")
    vs = re.search(r"vs relay ([\d.]+)x", " ".join(details.get("ping_pongs/unix_hub/cmdipc/64", [])))
    if rl is not None and rl["ratio"] is not None and vs is not None:
        print("  info    the same through a byte relay (no parsing): %.2fx the direct connection; "
              "the hub %sx the relay" % (rl["ratio"], vs.group(1)))

    for k, target in ((1, 0.9), (64, 0.6)):
        m = figs.get("ping_pongs/memory_2threads/cmdipc/%d" % k)
        c.report(None if m is None or m["ratio"] is None else m["ratio"] >= target,
                 "in-memory, two threads, %d outstanding" % k,
                 m and "%.2fx the uv_async hand-off" % (m["ratio"] or 0), ">= %.1fx" % target)
    m = figs.get("ping_pongs/memory_1loop/cmdipc/1")
    c.report(None if m is None else m["rate"] >= 200000, "in-memory, one loop",
             m and "%.0f round trips/s" % m["rate"], ">= 200,000/s")

    sec = figs.get("ping_pongs/tcp_sodium/cmdipc/64")
    c.report(None if sec is None or sec["ratio"] is None else sec["ratio"] >= 0.8,
             "secure channel (tcp+sodium), 64 outstanding",
             sec and "%.2fx plain TCP" % (sec["ratio"] or 0), ">= 0.8x")
    sec = figs.get("ping_pongs/tcp_sodium/cmdipc/1")
    if sec is not None and sec["ratio"] is not None:
        print("  info    secure channel, 1 outstanding: %.2fx plain TCP" % sec["ratio"])
    hs = figs.get("ping_pongs/tcp_sodium/connects")
    if hs is not None:
        print("  info    secure handshakes: %.0f/s (%.2fx plain TCP connections), p50 %.0f us" %
              (hs["rate"], hs["ratio"] or 0, hs["p50"]))

    p = figs.get("pump/unix/cmdipc/1")
    c.report(None if p is None or p["ratio"] is None else p["ratio"] >= 0.75,
             "events one way over a unix socket",
             p and "%.2fx the naive floor" % (p["ratio"] or 0), ">= 0.75x")

    cg, cf = values.get("callgrind/unix/cmdipc"), values.get("callgrind/unix/json_floor")
    c.report(None if not (cg and cf) else cg[0] <= cf[0], "instructions per unix round trip",
             cg and cf and "%d, %.2fx the naive floor's %d" % (cg[0], cg[0] / cf[0], cf[0]),
             "<= 1.0x")
    nj = values.get("callgrind/unix/cmdipc_non_json")
    c.report(None if nj is None else nj[0] <= 10000, "cmdipc's own non-JSON instructions",
             nj and "%d per round trip" % nj[0], "<= 10,000")

    timers = " ".join(details.get("million_timers/cmdipc", []))
    bm = re.search(r"(\d+) bytes/pending call", timers)
    c.report(None if bm is None else int(bm.group(1)) <= 300, "1,000,000 pending calls, memory",
             bm and "%s bytes per pending call" % bm.group(1), "<= 300")
    lm = re.search(r"all within 2 s of their deadline: (ok|MISSED)", timers)
    late = re.search(r"worst lateness ([\d.]+ ms)", timers)
    c.report(None if lm is None else lm.group(1) == "ok", "1,000,000 pending calls, expiry",
             late and "worst lateness %s" % late.group(1), "all within 2 s of their deadline")

    rss = values.get("sizes/idle_registry_rss")
    c.report(None if rss is None else rss[0] <= 4096, "idle registry process",
             rss and "%d KiB RSS" % rss[0], "<= 4 MiB")
    hg = values.get("sizes/heap_growth")
    c.report(None if hg is None else "ok:" in hg[1], "heap growth over 10 million round trips",
             hg and "%d bytes" % hg[0], "none (< 64 KiB)")

    print("targets: %d met, %d missed, %d not measured" % (c.met, c.missed, c.absent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
