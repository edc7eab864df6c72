#!/usr/bin/env bash
# callgrind.sh — instructions per execute round trip over a Unix socket, counted
# by callgrind (repeatable to well under 0.1 %, so it can gate regressions):
#
#   callgrind/unix/json_floor      the naive JSON floor (jansson parses and dumps
#                                  every message on both sides), the baseline
#   callgrind/unix/cmdipc          two registries, math.add; ratio to the floor
#                                  (target <= 1.0x)
#   callgrind/unix/cmdipc_non_json libcmdipc's own instructions plus what it
#                                  calls outside libjansson (target <= 10,000)
#
# Each is (I(N) - I(N/2)) / (N/2) from runs of rt_count (client and server in one
# process, one loop, N round trips one at a time after a warm-up), which cancels
# set-up and teardown. The split is done by callgrind_split.py from the call
# graph (see there).
#
# usage: callgrind.sh [path/to/rt_count] [N]   (N: CMDIPC_CALLGRIND_N, default 2000)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rt=${1:-$here/../../build-release/test/bench/rt_count}
n=${2:-${CMDIPC_CALLGRIND_N:-2000}}

if ! command -v valgrind >/dev/null 2>&1; then
    echo "callgrind: skipped: valgrind is not installed (apt-get install valgrind)"
    exit 0
fi
if [ ! -x "$rt" ]; then
    echo "callgrind: $rt not found (build with -Dbenchmarks=true)" >&2
    exit 1
fi
if [ $((n % 2)) -ne 0 ] || [ "$n" -lt 2 ]; then
    echo "callgrind: N must be even and >= 2" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/cmdipc-callgrind.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

run() { # mode count
    local out=$tmp/$1.$2
    if ! valgrind --tool=callgrind --callgrind-out-file="$out.out" "$rt" "$1" "$2" \
        >"$out.stdout" 2>"$out.log"; then
        echo "callgrind: rt_count $1 $2 failed:" >&2
        cat "$out.log" "$out.stdout" >&2
        exit 1
    fi
}

half=$((n / 2))
for mode in cmdipc hub floor; do
    run "$mode" "$n"
    run "$mode" "$half"
done
python3 "$here/callgrind_split.py" "$tmp/cmdipc.$n.out" "$tmp/cmdipc.$half.out" \
    "$tmp/floor.$n.out" "$tmp/floor.$half.out" "$n"
# The same round trip through a hub (three registries in one process): the
# difference is what the hub does per forwarded round trip.
total() { python3 - "$1" <<'PY'
import sys
for line in open(sys.argv[1]):
    if line.startswith("summary:"):
        print(line.split()[1])
PY
}
hub_rt=$(( ($(total "$tmp/hub.$n.out") - $(total "$tmp/hub.$half.out")) / half ))
direct_rt=$(( ($(total "$tmp/cmdipc.$n.out") - $(total "$tmp/cmdipc.$half.out")) / half ))
printf '%-34s %10d instructions/rt  (client -> hub -> server; the hub itself: %d)\n' \
    "callgrind/unix_hub/cmdipc" "$hub_rt" "$((hub_rt - direct_rt))"
