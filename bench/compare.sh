#!/usr/bin/env bash
# hoyerc against the PyTorch anchor (../shared/bench/torch_anchor.py), side by side in one
# run on this machine, alternating three rounds; prints each figure and the ratio
# hoyer / PyTorch (above 1: hoyer is faster).
#
# Usage: bench/compare.sh [PYTHON]    PYTHON has torch installed (default: python3), e.g.
#   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch numpy && bench/compare.sh /tmp/venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
anchor=../shared/bench/torch_anchor.py
steps=${STEPS:-400}
cargo build --release -q
for round in 1 2 3; do
    torch_out=$("$py" "$anchor" --models lenet300 --steps "$steps")
    hoyer_out=$(./target/release/hoyerc bench examples/lenet300_dense.hoyer examples/lenet300_hs.hoyer --steps "$steps")
    echo "round $round"
    echo "$torch_out" | sed 's/^/  torch  /'
    echo "$hoyer_out" | sed 's/^/  hoyer  /'
    t_none=$(echo "$torch_out" | awk '/reg=none/ {print $4}')
    t_hs=$(echo "$torch_out" | awk '/reg=hs / {print $4}')
    h_none=$(echo "$hoyer_out" | awk '/^lenet300_dense/ {print $6}')
    h_hs=$(echo "$hoyer_out" | awk '/^lenet300_hs/ {print $6}')
    awk -v a="$h_none" -v b="$t_none" -v c="$h_hs" -v d="$t_hs" \
        'BEGIN { printf "  ratio  no penalty %.2f   Hoyer-Square %.2f\n", a / b, c / d }'
done
