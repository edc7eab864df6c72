#!/usr/bin/env bash
# cli-demo — the cmdipc command-line tool against real processes:
#
#   cmdipc hub (Unix socket)  <--  cli-service (C, the library: math.*, greet.hello)
#                             <--  cmdipc serve (shell commands: text.upper, sys.kernel)
#                             <--  cmdipc list / call / emit / listen
#
# Run by `make demo` after examples/multi-service; needs `make build` first.
# BUILD selects the build directory (default: build/ beside this folder).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
cmdipc=$build/tools/cmdipc
service=$build/test/cli/cli-service
for f in "$cmdipc" "$service"; do
    [ -x "$f" ] || { echo "cli-demo: $f is missing: run 'make build' first" >&2; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/cmdipc-demo.XXXXXX")
sock="unix://$dir/hub.sock"
pids=()
cleanup() { # each service stopped before the hub
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ %s\n' "$*"; }
step "A hub on $sock"
show "cmdipc hub $sock &"
"$cmdipc" hub "$sock" &
pids+=($!)
show "cmdipc wait $sock        # returns once the hub answers"
"$cmdipc" wait "$sock"

step "A service written with the library, and shell commands served by 'cmdipc serve'"
show "cli-service $sock &"
"$service" "$sock" >"$dir/service.out" &
pids+=($!)
show "cmdipc serve $sock -c 'text.upper=tr a-z A-Z' -c 'sys.kernel=uname -sr | ...' &"
"$cmdipc" serve "$sock" \
    -c 'text.upper=tr a-z A-Z' -d 'text.upper=Upper-cases a JSON string' \
    -c 'sys.kernel=printf "\"%s\"" "$(uname -sr)"' -d 'sys.kernel=The kernel of the serving host' &
pids+=($!)
show "cmdipc wait $sock math.add greet.hello text.upper sys.kernel"
"$cmdipc" wait "$sock" math.add greet.hello text.upper sys.kernel

step "What the hub can reach"
show "cmdipc list $sock"
"$cmdipc" list "$sock"

show "cmdipc describe $sock text.upper"
"$cmdipc" describe "$sock" text.upper

step "Calls, routed by the hub to whoever serves them"
for args in "math.add {\"a\":2,\"b\":3}" "greet.hello \"Ada\"" "text.upper \"shout it\"" "sys.kernel"; do
    read -r cmd json <<<"$args"
    show "cmdipc call $sock $cmd${json:+ '$json'}"
    "$cmdipc" call "$sock" "$cmd" ${json:+"$json"}
done
show "echo '{\"a\": 6, \"b\": 7}' | cmdipc call $sock math.mul -"
echo '{"a": 6, "b": 7}' | "$cmdipc" call "$sock" math.mul -
show "printf '{\"a\":1,\"b\":1}\\n{\"a\":2,\"b\":2}\\n' | cmdipc call --lines -j 2 $sock math.add"
printf '{"a":1,"b":1}\n{"a":2,"b":2}\n' | "$cmdipc" call --lines -j 2 "$sock" math.add

step "Errors: a message on stderr and an exit status per error"
show "cmdipc call $sock math.add '{\"a\":\"two\"}'"
rc=0
"$cmdipc" call "$sock" math.add '{"a":"two"}' 2>&1 || rc=$?
echo "  -> exit status $rc (invalid_request)"
show "cmdipc call $sock no.such.command"
rc=0
"$cmdipc" call "$sock" no.such.command 2>&1 || rc=$?
echo "  -> exit status $rc (not_found)"
show "cmdipc call --timeout 0.2 $sock math.slow '{\"ms\":5000}'    # seconds"
rc=0
"$cmdipc" call --timeout 0.2 "$sock" math.slow '{"ms":5000}' 2>&1 || rc=$?
echo "  -> exit status $rc (timeout)"
show "cmdipc --json call $sock no.such.command"
rc=0
"$cmdipc" --json call "$sock" no.such.command 2>&1 || rc=$?
echo "  -> exit status $rc"

step "Events: 'listen' prints NDJSON; 'emit' and the library service emit"
show "cmdipc listen --count 2 $sock &"
"$cmdipc" listen -v --count 2 "$sock" >"$dir/events" 2>"$dir/listen.err" &
listener=$!
# listen -v says when it is listening: events emitted from then on reach it.
until grep -qs 'listening on' "$dir/listen.err"; do sleep 0.05; done
show "cmdipc emit $sock job.done '{\"id\":42}'"
"$cmdipc" emit "$sock" job.done '{"id":42}'
show "cmdipc call $sock math.mul '{\"a\":3,\"b\":4}'     # the service emits math.computed"
"$cmdipc" call "$sock" math.mul '{"a":3,"b":4}'
wait "$listener"
echo "listen printed:"
sed 's/^/  /' "$dir/events"

step "Done: stopping the hub and the services"
