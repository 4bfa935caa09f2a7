#!/usr/bin/env bash
# Compile time against the size of the spec: `check` and `compile --emit clif` (the whole
# pipeline to Cranelift IR) of generated specs, 100 to 5,000 penalty lines and 250 to 1,000
# dense layers (bench/generate_spec.py). Each figure is the fastest of ROUNDS runs (default 3).
# BASELINE=path/to/an/older/hoyerc adds its `emit clif` time (one run each: it may be slow).
# Usage: bench/compile_time.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
cargo build --release -q
hoyerc=$PWD/target/release/hoyerc
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fastest() { # command...: the fastest wall time of $rounds runs, in seconds
    local best=""
    for _ in $(seq "$rounds"); do
        local t0 t1
        t0=$(date +%s.%N)
        "$@" > /dev/null
        t1=$(date +%s.%N)
        best=$(python3 -c "t = $t1 - $t0; b = '$best'; print(f'{min(t, float(b)) if b else t:.3f}')")
    done
    echo "$best"
}
printf '%-22s %8s %10s %10s%s\n' spec bytes check "emit clif" "${BASELINE:+   baseline}"
for spec in "penalties 100" "penalties 1000" "penalties 5000" "deep 250" "deep 500" "deep 1000"; do
    set -- $spec
    file="$dir/$1-$2.hoyer"
    python3 bench/generate_spec.py "$1" "$2" > "$file"
    baseline=""
    if [ -n "${BASELINE:-}" ]; then
        baseline=$(printf ' %9ss' "$(rounds=1 fastest "$BASELINE" compile "$file" --emit clif)")
    fi
    printf '%-22s %8d %9ss %9ss%s\n' "$1 $2" "$(wc -c < "$file")" \
        "$(fastest "$hoyerc" check "$file")" "$(fastest "$hoyerc" compile "$file" --emit clif)" "$baseline"
done
