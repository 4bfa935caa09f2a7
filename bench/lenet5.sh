#!/usr/bin/env bash
# LeNet-5 with Hoyer-Square and with Group-HS: hoyerc against the PyTorch anchor
# (../shared/bench/torch_anchor.py --models lenet5), side by side on this machine. Each round
# runs PyTorch eager, PyTorch with torch.compile, and hoyerc, one after another, and prints
# the ratios hoyer / PyTorch (above 1: hoyer is faster).
#
# Usage: bench/lenet5.sh [PYTHON] [ROUNDS]    PYTHON has torch installed (default: python3)
# STEPS (default 300) timed steps per figure; THREADS passes --threads to hoyerc.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
rounds=${2:-3}
anchor=../shared/bench/torch_anchor.py
steps=${STEPS:-300}
threads=${THREADS:+--threads $THREADS}
cargo build --release -q
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for round in $(seq 1 "$rounds"); do
    eager=$("$py" "$anchor" --models lenet5 --regs hs,ghs --steps "$steps" 2>/dev/null)
    compiled=$("$py" "$anchor" --models lenet5 --regs hs,ghs --steps "$steps" --compile 2>/dev/null)
    # shellcheck disable=SC2086
    hoyer=$(./target/release/hoyerc bench examples/lenet5_hs.hoyer examples/lenet5_group_hs.hoyer --steps "$steps" $threads)
    echo "round $round"
    echo "$eager" | sed 's/^/  torch  /'
    echo "$compiled" | sed 's/^/  torch  /'
    echo "$hoyer" | sed 's/^/  hoyer  /'
    pick() { echo "$1" | awk -v r="$2" '$2 == "reg=" r { print $4 }'; }
    h_hs=$(echo "$hoyer" | awk '/^lenet5_hs/ {print $6}')
    h_ghs=$(echo "$hoyer" | awk '/^lenet5_group_hs/ {print $6}')
    awk -v hh="$h_hs" -v hg="$h_ghs" -v eh="$(pick "$eager" hs)" -v eg="$(pick "$eager" ghs)" \
        -v ch="$(pick "$compiled" hs)" -v cg="$(pick "$compiled" ghs)" 'BEGIN {
        printf "  ratio  Hoyer-Square: %.2f x eager, %.2f x compiled   Group-HS: %.2f x eager, %.2f x compiled\n",
            hh / eh, hh / ch, hg / eg, hg / cg }'
done
