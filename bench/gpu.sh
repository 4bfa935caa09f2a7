#!/usr/bin/env bash
# The CUDA back end on a machine with an NVIDIA GPU and PyTorch: first its tests
# (runtime/tests/cuda.rs: every example's step against the interpreter, the same bits run to
# run, graph replay, out of memory), then hoyerc against the PyTorch anchor on the GPU
# (../shared/bench/torch_anchor.py --device cuda, eager and --compile, which is CUDA graphs),
# side by side in each round, for LeNet-300-100 and LeNet-5 with no penalty, Hoyer-Square and
# Group-HS, batch 100. Prints a table of samples/s and ratios (hoyer / PyTorch: above 1,
# hoyer is faster) and keeps it in bench/gpu-results.md.
#
# Usage: bench/gpu.sh [PYTHON] [ROUNDS]          PYTHON has torch with CUDA (default: python3)
#        bench/gpu.sh --build                    on a machine with Rust: build what it needs
# A GPU machine without Rust runs what `--build` left in target/release (hoyerc and
# hoyer-cuda-tests): build on the development machine and bring both along.
# STEPS (default 500) timed steps per figure; HOYER_ANCHOR the PyTorch anchor (default
# ../shared/bench/torch_anchor.py); HOYER_DATA, where set, adds the full lenet300_hs recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
tests=target/release/hoyer-cuda-tests
if [ "${1:-}" = "--build" ] || command -v cargo >/dev/null 2>&1; then
    cargo build --release -q
    built=$(cargo test --release -q -p hoyer-runtime --test cuda --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    cp "$built" "$tests"
    if [ "${1:-}" = "--build" ]; then
        echo "built target/release/hoyerc and $tests"
        exit 0
    fi
fi
for f in target/release/hoyerc "$tests"; do
    [ -x "$f" ] || { echo "gpu.sh: $f is missing: run bench/gpu.sh --build where Rust is installed" >&2; exit 1; }
done
py=${1:-python3}
rounds=${2:-3}
steps=${STEPS:-500}
anchor=${HOYER_ANCHOR:-../shared/bench/torch_anchor.py}
out=bench/gpu-results.md
hoyerc=./target/release/hoyerc

device=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1 || echo "no nvidia-smi")
echo "device: $device"
echo "== tests (runtime/tests/cuda.rs)"
# A failing test does not stop the benchmark (its table is still worth having on a lent GPU):
# the script says so at the end and exits with 1.
tests_ok=yes
# On the GPU machine a test that cannot find the GPU fails instead of skipping.
HOYER_REQUIRE_GPU=1 "$tests" --nocapture --test-threads 1 || tests_ok=no
if ! $hoyerc bench examples/quickstart.hoyer --backend cuda --steps 5 >/dev/null; then
    echo "gpu.sh: no CUDA device here (above: why); the tests skipped, nothing to benchmark" >&2
    exit 1
fi

specs="examples/lenet300_dense.hoyer examples/lenet300_hs.hoyer bench/specs/lenet300_group_hs.hoyer
       examples/lenet5_dense.hoyer examples/lenet5_hs.hoyer examples/lenet5_group_hs.hoyer"
# shellcheck disable=SC2086
$hoyerc check $specs >/dev/null
{
    echo "# CUDA back end against PyTorch on $device"
    echo
    echo "\`bench/gpu.sh $py $rounds\`, $steps timed steps per figure, batch 100, $(date -u +%F)."
    echo
    echo "| round | model | penalty | eager | compiled | hoyer | × eager | × compiled |"
    echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
} >"$out"
for round in $(seq 1 "$rounds"); do
    eager=$("$py" "$anchor" --device cuda --steps "$steps" 2>/dev/null)
    compiled=$("$py" "$anchor" --device cuda --steps "$steps" --compile 2>/dev/null)
    # shellcheck disable=SC2086
    hoyer=$($hoyerc bench $specs --backend cuda --steps "$steps")
    echo "round $round"
    echo "$eager" | sed 's/^/  torch  /'
    echo "$compiled" | sed 's/^/  torch  /'
    echo "$hoyer" | sed 's/^/  hoyer  /'
    pick() { echo "$1" | awk -v m="$2" -v r="$3" '$1 == m && $2 == "reg=" r { print $4 }'; }
    ours() { echo "$hoyer" | awk -v s="$1" '$1 == s { print $6 }'; }
    for model in lenet300 lenet5; do
        for reg in none hs ghs; do
            case $reg in none) spec=${model}_dense ;; hs) spec=${model}_hs ;; ghs) spec=${model}_group_hs ;; esac
            e=$(pick "$eager" "$model" "$reg")
            c=$(pick "$compiled" "$model" "$reg")
            h=$(ours "$spec")
            awk -v r="$round" -v m="$model" -v g="$reg" -v e="$e" -v c="$c" -v h="$h" 'BEGIN {
                printf "| %s | %s | %s | %.0f | %.0f | %.0f | %.2f | %.2f |\n", r, m, g, e, c, h, h / e, h / c }' >>"$out"
        done
    done
done
if [ -n "${HOYER_DATA:-}" ]; then
    echo "== the full LeNet-300-100 Hoyer-Square recipe (250 + 50 epochs) on the GPU"
    start=$(date +%s)
    $hoyerc run examples/lenet300_hs.hoyer --backend cuda --data "$HOYER_DATA" --out "/tmp/hoyer-gpu-lenet300-hs-$$" | tail -n 5
    echo "wall time: $(($(date +%s) - start)) s" | tee -a "$out"
fi
echo
cat "$out"
if [ "$tests_ok" != yes ]; then
    echo "gpu.sh: tests/cuda.rs FAILED (above)" >&2
    exit 1
fi
