#!/usr/bin/env bash
# Simulated requests per second of wall time on the benchmark model (ten
# endpoints at load 0.9, exponential service, one million requests), random
# dispatch and the power of two choices, for `sluice simulate` and the same
# model in SimPy and in Ciw. Sluice is built with the `dist` profile (fat
# LTO, one codegen unit), the way binaries that ship are built.
#
# The Python libraries are installed from PyPI into a throwaway virtual
# environment under target/sim-bench/ on the first run.
#
# usage: simulator/bench/compare.sh [REQUESTS]   (default 1000000)
set -euo pipefail

cd "$(dirname "$0")/../.."
requests="${1:-1000000}"
bench=simulator/bench
work=target/sim-bench
mkdir -p "$work"

if [ ! -x "$work/venv/bin/python" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet simpy ciw
fi
py="$work/venv/bin/python"
versions=$("$py" -c 'import simpy, ciw; print(f"SimPy {simpy.__version__}, Ciw {ciw.__version__}")')

cargo build --profile dist --quiet --bin sluice
sluice=target/dist/sluice

now() { date +%s.%N; }

# One scenario per balancer, and the pair together (variants run in parallel).
for balancer in random least_request; do
    sed -e "s/^requests: .*/requests: $requests/" \
        -e "s/^balancers: .*/balancers: [$balancer]/" \
        "$bench/ten.scenario.yaml" >"$work/$balancer.scenario.yaml"
done
sed -e "s/^requests: .*/requests: $requests/" "$bench/ten.scenario.yaml" >"$work/both.scenario.yaml"
# The fixed cost of a command (process start, checking the spec and the
# scenario against their schemas, the report): the same model with a
# thousand requests. The Python figures time the simulation loop alone, so
# Sluice's rate is also given without this cost.
small=1000
sed -e "s/^requests: .*/requests: $small/" -e "s/^balancers: .*/balancers: [random]/" \
    "$bench/ten.scenario.yaml" >"$work/small.scenario.yaml"

# `sluice simulate`: wall time of the whole command, plan loading included,
# the median of five runs (one run lasts about a tenth of a second, short
# enough for a stray wake-up on the machine to move it by half; a Python
# run lasts seconds, and runs once).
sluice_run() {
    local start end i
    for i in 1 2 3 4 5; do
        start=$(now)
        "$sluice" simulate "$bench/ten.yaml" --scenario "$work/$1.scenario.yaml" --format json \
            >"$work/$1.json"
        end=$(now)
        echo "$start $end"
    done | awk '{ print $2 - $1 }' | sort -g | awk '{ w[NR] = $1 } END { printf "%.3f", w[3] }'
}

# Mean sojourn (ms) of each variant in a JSON report.
sluice_means() {
    "$py" -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join("%.3f" % (v["latency"]["mean_ns"] / 1e6) for v in r["variants"]))' "$1"
}

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

echo "model: 10 endpoints, load 0.9, exponential service, $requests requests"
echo "cores: $(nproc); $versions; $(python3 --version)"
echo "sluice: dist profile (fat LTO, one codegen unit)"
echo
printf '%-34s %10s %14s %12s\n' "run" "wall (s)" "requests/s" "mean (ms)"

declare -A wall served
for balancer in random least_request; do
    w=$(sluice_run "$balancer")
    wall[sluice_$balancer]=$w
    printf '%-34s %10s %14s %12s\n' "sluice $balancer" "$w" "$(rate "$requests" "$w")" \
        "$(sluice_means "$work/$balancer.json")"
done
w=$(sluice_run both)
printf '%-34s %10s %14s %12s\n' "sluice both, in parallel" "$w" "$(rate $((2 * requests)) "$w")" \
    "$(sluice_means "$work/both.json")"
fixed=$(sluice_run small)
printf '%-34s %10s\n' "sluice, $small requests" "$fixed"
for balancer in random least_request; do
    loop=$(awk -v a="${wall[sluice_$balancer]}" -v b="$fixed" 'BEGIN { printf "%.3f", a - b }')
    wall[loop_$balancer]=$loop
    printf '%-34s %10s %14s\n' "sluice $balancer, loop only" "$loop" \
        "$(rate $((requests - small)) "$loop")"
done

for lib in simpy ciw; do
    for policy in random p2c; do
        read -r served mean w < <("$py" "$bench/model_$lib.py" "$policy" "$requests" 1)
        wall[${lib}_$policy]=$w
        served[${lib}_$policy]=$served
        printf '%-34s %10.3f %14s %12.3f\n' "$lib $policy" "$w" "$(rate "$served" "$w")" "$mean"
    done
done

echo
echo "theory: random is M/M/1 at 0.9, 10 ms; two choices on 10 endpoints about 3 ms"
echo
# Rates, not walls: the Python runs may serve a request or two fewer.
for lib in simpy ciw; do
    for pair in "random random" "least_request p2c"; do
        set -- $pair
        awk -v a="${wall[sluice_$1]}" -v c="${wall[loop_$1]}" -v b="${wall[${lib}_$2]}" \
            -v n="$requests" -v m="$((requests - small))" -v s="${served[${lib}_$2]}" \
            -v l="$lib" -v p="$2" \
            'BEGIN { r = s / b; printf "sluice is %6.1f times %s (%s); its loop alone %6.1f times\n", n / a / r, l, p, m / c / r }'
    done
done
