#!/usr/bin/env python3
"""The layering of DESIGN.md, checked on the sources (prints TAP):

1. transports/ use the public API only: besides system headers they include
   cmdipc.h, cmdipc/*.h, lib/common.h (generic helpers: queue, buffer,
   allocation) and their own private headers; never lib/internal.h or
   lib/testing.h, so they reach no registry or message internals.
2. lib/common.h itself includes nothing of lib/ but cmdipc.h.
3. lib/ never calls into transports/ (no transport header is included).
4. tools/ and examples/ include only the installed headers (and their own).
5. test/test-reentry.c, the transport written against the public headers,
   includes only harness.h (which includes cmdipc.h only).
"""
import glob
import os
import re
import sys

root = sys.argv[1]
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INC.findall(f.read())


def own(dirname):
    return {os.path.basename(p) for p in glob.glob(os.path.join(root, dirname, "*.h"))}


public = lambda h: h == "cmdipc.h" or h.startswith("cmdipc/")
checks = []

tr_own = own("transports")
bad = []
for p in sorted(glob.glob(os.path.join(root, "transports", "*.[ch]"))):
    for h in includes(p):
        if not (public(h) or h == "common.h" or h in tr_own):
            bad.append("%s includes %s" % (os.path.relpath(p, root), h))
checks.append(("transports/ include only public headers, common.h and their own", bad))

bad = [h for h in includes(os.path.join(root, "lib", "common.h")) if not public(h)]
checks.append(("lib/common.h includes only the public API", ["common.h includes " + h for h in bad]))

bad = []
for p in sorted(glob.glob(os.path.join(root, "lib", "*.[ch]"))):
    for h in includes(p):
        if h in tr_own:
            bad.append("%s includes %s" % (os.path.relpath(p, root), h))
checks.append(("lib/ includes nothing of transports/", bad))

bad = []
for d in ("tools", "examples"):
    mine = own(d)
    for p in sorted(glob.glob(os.path.join(root, d, "*.[ch]"))):
        for h in includes(p):
            if not (public(h) or h in mine):
                bad.append("%s includes %s" % (os.path.relpath(p, root), h))
checks.append(("tools/ and examples/ include only the installed headers", bad))

bad = ["test-reentry.c includes " + h
       for h in includes(os.path.join(root, "test", "test-reentry.c")) if h != "harness.h"]
bad += ["harness.h includes " + h
        for h in includes(os.path.join(root, "test", "harness.h")) if not public(h)]
checks.append(("the public-header test transport sees the public API only", bad))

print("1..%d" % len(checks))
failed = 0
for i, (name, problems) in enumerate(checks, 1):
    print(("ok" if not problems else "not ok") + " %d - %s" % (i, name))
    for p in problems:
        print("# " + p)
    failed += bool(problems)
sys.exit(1 if failed else 0)
