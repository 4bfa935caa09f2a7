#!/usr/bin/env bash
# Two training runs side by side on one machine (a sweep): each `hoyerc bench` alone, then
# two started together, alternating; prints the throughput of each and the fraction of the
# lone throughput that each of the pair keeps.
#
# Usage: bench/concurrent.sh [SPEC] [ROUNDS]   (default examples/lenet300_hs.hoyer, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-examples/lenet300_hs.hoyer}
rounds=${2:-3}
steps=${STEPS:-1500}
cargo build --release -q
run() { ./target/release/hoyerc bench "$spec" --backend cpu --steps "$steps" | awk '{print $6}'; }
for round in $(seq 1 "$rounds"); do
    alone=$(run)
    a=$(mktemp) b=$(mktemp)
    run >"$a" &
    run >"$b"
    wait
    awk -v s="$alone" -v x="$(cat "$a")" -v y="$(cat "$b")" -v r="$round" 'BEGIN {
        printf "round %d: alone %.0f samples/s; together %.0f and %.0f (%.0f%% and %.0f%% of alone)\n",
            r, s, x, y, 100 * x / s, 100 * y / s }'
    rm -f "$a" "$b"
done
