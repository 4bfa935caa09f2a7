#!/usr/bin/env bash
# hoyerc against PyTorch on the ViT of examples/vit_mnist.hoyer, side by side in one run:
# PyTorch eager, PyTorch with torch.compile (bench/vit_anchor.py: the same model, batch 128,
# AdamW), and `hoyerc bench` (its first phase on random in-memory data), each training
# samples/s, and the ratios hoyer / PyTorch (above 1: hoyer is faster).
#
# Usage: bench/vit_compare.sh PYTHON [ROUNDS]    PYTHON has torch installed
# STEPS (default 100) timed steps per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$1
rounds=${2:-2}
steps=${STEPS:-100}
cargo build --release -q
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for round in $(seq 1 "$rounds"); do
    eager=$("$py" bench/vit_anchor.py --steps "$steps" | awk '{print $(NF-1)}')
    compiled=$("$py" bench/vit_anchor.py --steps "$steps" --compile 2>/dev/null | awk '{print $(NF-1)}')
    hoyer=$(./target/release/hoyerc bench examples/vit_mnist.hoyer --backend cpu --steps "$steps" | awk '{for (i = 1; i < NF; i++) if ($(i+1) == "samples/s") {print $i; exit}}')
    echo "round $round: torch eager $eager, torch.compile $compiled, hoyerc $hoyer samples/s;" \
        "hoyer/eager $(echo "scale=2; $hoyer / $eager" | bc), hoyer/compile $(echo "scale=2; $hoyer / $compiled" | bc)"
done
