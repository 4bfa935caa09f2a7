#!/usr/bin/env bash
# LeNet-5 with Hoyer-Square and with Group-HS: hoyerc against the PyTorch anchor
# (../shared/bench/torch_anchor.py --models lenet5), side by side on this machine. Each round
# runs PyTorch eager, hoyerc, PyTorch with torch.compile, hoyerc again, and prints the ratios
# hoyer / PyTorch (above 1: hoyer is faster), each against the hoyerc run next to it.
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
    # hoyer runs right after each PyTorch run, so that each ratio compares runs a few
    # seconds apart: this machine's speed drifts by a third over minutes.
    # shellcheck disable=SC2086
    run_hoyer() { ./target/release/hoyerc bench examples/lenet5_hs.hoyer examples/lenet5_group_hs.hoyer --backend cpu --steps "$steps" $threads; }
    eager=$("$py" "$anchor" --models lenet5 --regs hs,ghs --steps "$steps" 2>/dev/null)
    hoyer1=$(run_hoyer)
    compiled=$("$py" "$anchor" --models lenet5 --regs hs,ghs --steps "$steps" --compile 2>/dev/null)
    hoyer2=$(run_hoyer)
    echo "round $round"
    echo "$eager" | sed 's/^/  torch  /'
    echo "$hoyer1" | sed 's/^/  hoyer  /'
    echo "$compiled" | sed 's/^/  torch  /'
    echo "$hoyer2" | sed 's/^/  hoyer  /'
    pick() { echo "$1" | awk -v r="$2" '$2 == "reg=" r { print $4 }'; }
    ours() { echo "$1" | awk -v m="$2" '$1 == m { print $6 }'; }
    awk -v h1="$(ours "$hoyer1" lenet5_hs)" -v g1="$(ours "$hoyer1" lenet5_group_hs)" \
        -v h2="$(ours "$hoyer2" lenet5_hs)" -v g2="$(ours "$hoyer2" lenet5_group_hs)" \
        -v eh="$(pick "$eager" hs)" -v eg="$(pick "$eager" ghs)" \
        -v ch="$(pick "$compiled" hs)" -v cg="$(pick "$compiled" ghs)" 'BEGIN {
        printf "  ratio  Hoyer-Square: %.2f x eager, %.2f x compiled   Group-HS: %.2f x eager, %.2f x compiled\n",
            h1 / eh, h2 / ch, g1 / eg, g2 / cg }'
done
