#!/usr/bin/env bash
# peers.sh — cmdipc next to its peers, side by side on this machine (not part of
# make test nor make bench; `make bench-peers` installs the peers and runs it):
#
#   zmq/{ipc,tcp}/req_rep/1, zmq/{ipc,tcp}/dealer_router/64   ZeroMQ (libzmq from
#       Debian) over ipc:// and TCP loopback, the bytes of cmdipc's math.add request
#       and response as opaque messages (zmq_peer.c, built here into a temporary
#       directory)
#   node/unix/ndjson/1, /64                      Node.js NDJSON ping-pong over a Unix
#       socket, JSON.parse + JSON.stringify on both sides (node_peer.js)
#   ping_pongs/{unix,tcp}/...                    cmdipc and its floors (ping_pongs)
#
# then cmdipc's ratio to each peer, with 1 and with 64 calls outstanding. A peer
# that is not installed is skipped with a message.
#
# usage: peers.sh [seconds per figure] [build directory]   (default 2, build-release)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
secs=${1:-2}
build=${2:-$here/../../build-release}
ping_pongs=$build/test/bench/ping_pongs

if [ ! -x "$ping_pongs" ]; then
    echo "peers: $ping_pongs not found; build it first:" >&2
    echo "  meson setup build-release --buildtype=release -Dbenchmarks=true && ninja -C build-release" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/cmdipc-peers.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/figures
: >"$out"

# Runs a figure-printing command, showing its lines and keeping them.
figures() {
    "$@" | tee -a "$out"
}

if ! pkg-config --exists libzmq 2>/dev/null; then
    echo "zmq: skipped: libzmq3-dev not installed (apt-get install libzmq3-dev)"
elif ! cc -O2 -std=c11 -D_GNU_SOURCE -I"$here" "$here/zmq_peer.c" "$here/bench.c" \
    $(pkg-config --cflags --libs libzmq libsodium libuv) -o "$tmp/zmq_peer"; then
    echo "zmq: skipped: zmq_peer.c did not build" >&2
else
    figures "$tmp/zmq_peer" "$secs"
fi

if ! command -v node >/dev/null 2>&1; then
    echo "node: skipped: Node.js not installed (apt-get install nodejs)"
else
    figures node "$here/node_peer.js" "$secs"
fi

figures "$ping_pongs" "$secs" unix/
figures "$ping_pongs" "$secs" tcp/

# cmdipc's ratio to each peer measured above.
rate() { awk -v n="$1" '$1 == n { print $2; exit }' "$out"; }
compare() { # transport, k, then pairs: peer figure name, target ratio (- for none)
    local transport=$1 k=$2 c
    shift 2
    c=$(rate "ping_pongs/$transport/cmdipc/$k")
    [ -n "$c" ] || return 0
    while [ $# -ge 2 ]; do
        local p=$1 t=$2 r
        shift 2
        r=$(rate "$p")
        if [ -n "$r" ]; then
            awk -v c="$c" -v r="$r" -v tr="$transport" -v k="$k" -v p="$p" -v t="$t" 'BEGIN {
                target = t == "-" ? "" : sprintf("; target >= %sx: %s", t,
                                                 c / r >= t ? "ok" : "MISSED")
                printf "%-34s %10s %.2fx %s (cmdipc %.0f rt/s, peer %.0f rt/s%s)\n",
                       "peers/" tr "/" k, "cmdipc is", c / r, p, c, r, target }'
        fi
    done
}
compare unix 1 zmq/ipc/req_rep/1 1.2 node/unix/ndjson/1 -
compare unix 64 zmq/ipc/dealer_router/64 0.5 node/unix/ndjson/64 1.2
compare tcp 1 zmq/tcp/req_rep/1 1.2
compare tcp 64 zmq/tcp/dealer_router/64 0.5
