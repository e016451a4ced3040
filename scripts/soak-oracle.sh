#!/usr/bin/env bash
# make soak-oracle N=20 [K=<pytest -k expression>]: the metrics oracle tests N times in a row,
# each run a fresh pytest session on fresh infrastructure, as CI runs them. By default the
# shuffled-and-duplicated, killed-mid-stream and two-instance tests; K=all runs every test of
# test_oracle.py (also partitions moved between instances, a replay killed and resumed).
# Prints "N passed, M failed" and where the logs of the failed runs are; exits 1 if any
# failed. Also counts runs whose output or service logs show a gRPC fork warning or an abort
# of the gRPC core's poller.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
select=${2:-shuffled or killed_mid_stream or two_instances}
[ "$select" = all ] && select=""
tests=services/metrics/tests/integration/test_oracle.py
home=${CRM_HOME:-$PWD/.crm}
logs="$home/soak/$(date +%Y%m%dT%H%M%S)"
mkdir -p "$logs" "$home/test"
passed=0
failed=0
grpc_warnings=0
started=$(date +%s)
for run in $(seq 1 "$runs"); do
    log="$logs/run-$run.log"
    begun=$(date +%s)
    before=$(ls "$home/test")
    if CRM_TEST_KEEP=1 .venv/bin/python -m pytest -p crm_devstack.pytest_plugin "$tests" -q \
        -p no:cacheprovider ${select:+-k "$select"} >"$log" 2>&1; then
        passed=$((passed + 1))
        outcome=passed
    else
        failed=$((failed + 1))
        outcome="FAILED ($log)"
    fi
    # The run's folder (kept by CRM_TEST_KEEP): its service logs are searched, then it goes.
    folders=()
    for name in $(comm -13 <(echo "$before") <(ls "$home/test")); do
        folders+=("$home/test/$name")
    done
    if grep -rqsE "skipping fork\(\) handlers|epoll_wait error|Epoll1Poller" "$log" \
        "${folders[@]/%//logs}"; then
        grpc_warnings=$((grpc_warnings + 1))
        outcome="$outcome, gRPC fork/epoll message"
    fi
    rm -rf "${folders[@]}"
    echo "run $run/$runs: $outcome in $(($(date +%s) - begun)) s"
    grep -E "^(FAILED|ERROR) " "$log" | sed 's/^/    /'
done
echo "$runs runs in $(($(date +%s) - started)) s: $passed passed, $failed failed" \
    "($grpc_warnings with a gRPC fork/epoll message); logs in $logs"
[ "$failed" -eq 0 ]
