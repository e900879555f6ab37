#!/bin/sh
# Runs each test binary given, prints its output and how long it took (to
# keep the suite's time in view), and ends with one summary line
# "N passed, N failed" counting binaries. Exits non-zero if any failed.
set -u
pass=0; fail=0; failed=""
for t in "$@"; do
  echo "== $t"
  start=$(date +%s)
  if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
  echo "== $t took $(( $(date +%s) - start )) s"
done
[ -n "$failed" ] && echo "failed:$failed"
echo "binaries: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
