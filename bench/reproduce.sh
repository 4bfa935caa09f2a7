#!/usr/bin/env bash
# The README's reproduction tables: the dense baselines, then each sparsity recipe from the
# dense weights and a baseline of gradual magnitude pruning; at the end, every run of a
# network compared (`hoyerc report`, with its Pareto plot). LeNet-300-100: Hoyer-Square,
# Hoyer, L1, transformed L1, Group-HS and group lasso with shrink, gradual pruning from
# scratch. LeNet-5: Hoyer-Square, Hoyer, L1, transformed L1, Group-HS and group lasso with
# shrink, a second round of Group-HS on the shrunk model, gradual pruning from the dense model.
# Usage: bench/reproduce.sh [MNIST_DIR] [lenet300|lenet5|all]    (default ../shared/data/mnist lenet300)
# LeNet-300-100 takes about 40 minutes on a 2-core machine, LeNet-5 several hours; on a GPU
# (`--backend auto` picks it) a few minutes each.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/mnist}
which=${2:-lenet300}
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
if [[ $which == lenet300 || $which == all ]]; then
    run examples/lenet300_dense.hoyer runs/lenet300_dense
    for reg in hs hoyer l1 tl1 group_hs group_lasso; do
        run "examples/lenet300_$reg.hoyer" "runs/lenet300_$reg" --init runs/lenet300_dense/model.safetensors
    done
    run examples/lenet300_gradual.hoyer runs/lenet300_gradual
    "$hoyerc" report runs/lenet300_{dense,hs,hoyer,l1,tl1,group_hs,group_lasso,gradual} --svg runs/lenet300_pareto.svg
fi
if [[ $which == lenet5 || $which == all ]]; then
    run examples/lenet5_dense.hoyer runs/lenet5_dense
    for reg in hs hoyer l1 tl1 group_hs group_lasso; do
        run "examples/lenet5_$reg.hoyer" "runs/lenet5_$reg" --init runs/lenet5_dense/model.safetensors
    done
    run examples/lenet5_group_hs_round2.hoyer runs/lenet5_group_hs_round2 --init runs/lenet5_group_hs/model.safetensors
    run examples/lenet5_gradual.hoyer runs/lenet5_gradual --init runs/lenet5_dense/model.safetensors
    "$hoyerc" report runs/lenet5_{dense,hs,hoyer,l1,tl1,group_hs,group_lasso,group_hs_round2,gradual} \
        --svg runs/lenet5_pareto.svg
fi
