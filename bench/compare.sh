#!/usr/bin/env bash
# hoyerc against the PyTorch anchor (../shared/bench/torch_anchor.py), side by side on this
# machine: each round runs PyTorch eager, PyTorch with torch.compile, and hoyerc, one after
# another, and prints each figure and the ratios hoyer / PyTorch (above 1: hoyer is faster).
# Absolute figures on shared machines drift from run to run; the ratios within a round are
# what to compare.
#
# Usage: bench/compare.sh [PYTHON] [ROUNDS]    PYTHON has torch installed (default: python3), e.g.
#   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch numpy && bench/compare.sh /tmp/venv/bin/python
# STEPS (default 1000) timed steps per figure; THREADS passes --threads to hoyerc (default: all cores).
# BASELINE=path/to/an/older/hoyerc adds that build to every round, and its ratio to this one
# (before and after a change, in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
rounds=${2:-3}
anchor=../shared/bench/torch_anchor.py
steps=${STEPS:-1000}
threads=${THREADS:+--threads $THREADS}
cargo build --release -q
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
# The machine's GEMM peak, as PyTorch reaches it on a 1024³ fp32 product.
peak=$("$py" -c "
import time, torch
a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
for _ in range(5): a @ b
t = time.perf_counter()
for _ in range(40): a @ b
print(f'{2 * 1024**3 * 40 / (time.perf_counter() - t) / 1e9:.0f}')")
echo "GEMM peak (PyTorch, 1024^3 fp32): $peak GFLOP/s; a LeNet-300-100 training sample is 1.126 MFLOP of products"
for round in $(seq 1 "$rounds"); do
    eager=$("$py" "$anchor" --models lenet300 --regs none,hs --steps "$steps" 2>/dev/null)
    compiled=$("$py" "$anchor" --models lenet300 --regs none,hs --steps "$steps" --compile 2>/dev/null)
    # shellcheck disable=SC2086
    hoyer=$(./target/release/hoyerc bench examples/lenet300_dense.hoyer examples/lenet300_hs.hoyer --backend cpu --steps "$steps" $threads)
    # shellcheck disable=SC2086
    before=${BASELINE:+$("$BASELINE" bench examples/lenet300_dense.hoyer examples/lenet300_hs.hoyer --backend cpu --steps "$steps" $threads)}
    echo "round $round"
    echo "$eager" | sed 's/^/  torch  /'
    echo "$compiled" | sed 's/^/  torch  /'
    echo "$hoyer" | sed 's/^/  hoyer  /'
    if [ -n "${BASELINE:-}" ]; then
        echo "$before" | sed 's/^/  before /'
        b_none=$(echo "$before" | awk '/^lenet300_dense/ {print $6}')
        b_hs=$(echo "$before" | awk '/^lenet300_hs/ {print $6}')
        awk -v hn="$(echo "$hoyer" | awk '/^lenet300_dense/ {print $6}')" -v hh="$(echo "$hoyer" | awk '/^lenet300_hs/ {print $6}')" \
            -v bn="$b_none" -v bh="$b_hs" 'BEGIN { printf "  ratio  this build / BASELINE: no penalty %.3f, Hoyer-Square %.3f\n", hn / bn, hh / bh }'
    fi
    pick() { echo "$1" | awk -v r="$2" '$2 == "reg=" r { print $4 }'; }
    h_none=$(echo "$hoyer" | awk '/^lenet300_dense/ {print $6}')
    h_hs=$(echo "$hoyer" | awk '/^lenet300_hs/ {print $6}')
    awk -v hn="$h_none" -v hh="$h_hs" -v en="$(pick "$eager" none)" -v eh="$(pick "$eager" hs)" \
        -v cn="$(pick "$compiled" none)" -v ch="$(pick "$compiled" hs)" -v peak="$peak" 'BEGIN {
        printf "  ratio  no penalty: %.2f x eager, %.2f x compiled   Hoyer-Square: %.2f x eager, %.2f x compiled\n",
            hn / en, hn / cn, hh / eh, hh / ch
        printf "  hoyer  Hoyer-Square at %.0f GFLOP/s of products, %.0f%% of the GEMM peak\n",
            hh * 1.126e-3, 100 * hh * 1.126e-3 / peak }'
done
