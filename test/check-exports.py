#!/usr/bin/env python3
"""The shared library exports exactly the public API: every function declared
CMDIPC_EXTERN in include/ and nothing else (no cmdipc__ internals, no
helpers). Prints TAP."""
import re
import subprocess
import sys

lib, incdir = sys.argv[1], sys.argv[2]
out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True,
                     check=True).stdout
# Names carry their version node ("cmdipc_call_fail@@CMDIPC_0", cmdipc.map).
exported = {l.split()[-1].split("@")[0] for l in out.splitlines()
            if len(l.split()) == 3 and l.split()[1] in "TDBR"}
declared = set()
import glob
for h in glob.glob(incdir + "/**/*.h", recursive=True):
    text = open(h).read()
    for m in re.finditer(r"CMDIPC_EXTERN[^;{]*?\b(cmdipc_[a-z0-9_]+)\s*\(", text, re.S):
        declared.add(m.group(1))
print("1..3")
bad = sorted(s for s in exported if not s.startswith("cmdipc_") or s.startswith("cmdipc__"))
print(("ok" if not bad else "not ok") + " 1 - only cmdipc_ public symbols are exported")
for s in bad[:20]:
    print("# unexpected export:", s)
missing = sorted(declared - exported)
print(("ok" if not missing else "not ok") + " 2 - every declared function is exported")
for s in missing:
    print("# declared but not exported:", s)
extra = sorted(s for s in exported - declared if s.startswith("cmdipc_") and not s.startswith("cmdipc__"))
print(("ok" if not extra else "not ok") + " 3 - nothing exported that the headers do not declare")
for s in extra:
    print("# exported but not declared:", s)
sys.exit(1 if bad or missing or extra else 0)
