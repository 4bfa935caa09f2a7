#!/usr/bin/env bash
# The README's reproduction table: the dense LeNet-300-100 baseline, then DeepHoyer's
# element-wise pipeline (sparsify, prune, fine-tune) from the dense weights with
# Hoyer-Square, and the same with L1 and with Hoyer. Full recipes; on the 2-core dev machine
# each regularizer run takes a few minutes.
# Usage: bench/reproduce.sh [MNIST_DIR]    (default ../shared/data/mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
cargo build --release -q
hoyerc=./target/release/hoyerc
run() {
    local spec=$1 out=$2; shift 2
    local start=$(date +%s)
    "$hoyerc" run "$spec" --data "$data" --out "$out" "$@" 2> "$out.log" || { tail -5 "$out.log"; exit 1; }
    echo "$spec: $(( $(date +%s) - start )) s"
    "$hoyerc" report "$out"
}
mkdir -p runs
run examples/lenet300_dense.hoyer runs/lenet300_dense
for reg in hs l1 hoyer; do
    run "examples/lenet300_$reg.hoyer" "runs/lenet300_$reg" --init runs/lenet300_dense/model.safetensors
done
