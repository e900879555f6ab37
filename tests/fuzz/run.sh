#!/bin/sh
# run.sh time|runs BIN... — runs each libFuzzer target built from
# tests/fuzz/fuzz_*.c on its seed corpus tests/fuzz/corpus/<target>/.
#   time: for $FUZZ_SECONDS (default 30) each — `make fuzz`;
#   runs: for $FUZZ_RUNS inputs (default 10000) each from a fixed seed, so
#         the run is repeatable — `make check`.
# New inputs go to build/fuzz/work/<target>/ (never into the committed
# seeds), crashes to build/fuzz/artifacts/, logs to build/fuzz/logs/.
# Known, reported findings (tests/fuzz/FINDINGS.md) are printed, not fatal.
# Ends with "fuzz targets: N passed, N failed"; exits non-zero on a failure.
set -u
mode=$1
shift
pass=0; fail=0; failed=""
mkdir -p build/fuzz/logs build/fuzz/artifacts
for bin in "$@"; do
  t=$(basename "$bin")
  work=build/fuzz/work/$t
  log=build/fuzz/logs/$t.log
  if [ "$mode" = time ]; then
    args="-max_total_time=${FUZZ_SECONDS:-30}"
  else
    rm -rf "$work"
    args="-runs=${FUZZ_RUNS:-10000} -seed=1 -max_total_time=120"
  fi
  mkdir -p "$work"
  # shellcheck disable=SC2086
  "$bin" $args -timeout=10 -rss_limit_mb=2048 -artifact_prefix="build/fuzz/artifacts/$t-" \
    "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 inputs in \2 s/p' "$log" | tail -n 1)
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1))
    echo "fuzz $t: ok (${runs:-?})"
  else
    fail=$((fail + 1)); failed="$failed $t"
    echo "fuzz $t: FAILED (exit $rc) — from $log:"
    grep -A 12 -E '^FUZZ FINDING|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' "$log" \
      | grep -v '^    #' | head -n 40
    grep -E '^(artifact_prefix|Test unit written)' "$log" | tail -n 1
  fi
  grep -A 3 '^FUZZ KNOWN FINDING' "$log" | sed "s/^/  [$t] /"
done
[ -n "$failed" ] && echo "failed:$failed"
echo "fuzz targets: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
