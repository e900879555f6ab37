#!/bin/bash
# Runs each test binary given, TEST_JOBS at a time (default 2: most e2e
# tests spend their time waiting on holds, heartbeats and deadlines, not on
# the CPU), prints each one's output in one piece when it ends, with how long
# it took (to keep the suite's time in view), and ends with one summary line
# "N passed, N failed" counting binaries. Exits non-zero if any failed.
# A binary whose name is in TEST_ALONE (space-separated base names: those
# that measure rates or times against the clock) runs with no neighbour.
# Each runs with TEST_SLOT (0 .. TEST_JOBS-1) unique among those running at
# once: the e2e harness takes chatd's ports from the slot's own range.
set -u
jobs=${TEST_JOBS:-2}
pass=0; fail=0; failed=""
t0=$(date +%s)
outdir=$(mktemp -d)
trap 'rm -rf "$outdir"' EXIT
declare -A name_of=() start_of=() slot_of=() out_of=()
launched=0
declare -a slot_busy=()
running=0

report() {              # pid status
  local t=${name_of[$1]} i=$1
  echo "== $t"
  cat "${out_of[$i]}"
  echo "== $t took $(( $(date +%s) - ${start_of[$i]} )) s"
  if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
  slot_busy[${slot_of[$i]}]=0
  unset "name_of[$i]" "out_of[$i]"
  running=$((running - 1))
}

reap_one() {
  local pid st
  while :; do
    for pid in "${!name_of[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"; st=$?
        report "$pid" "$st"
        return
      fi
    done
    wait -n 2>/dev/null || true
  done
}

# The binaries named in TEST_FIRST (base names, slowest first) start
# first, so that two at a time end together instead of one long tail.
ordered=()
for f in ${TEST_FIRST:-}; do
  for t in "$@"; do [ "$(basename "$t")" = "$f" ] && ordered+=("$t"); done
done
for t in "$@"; do
  case " ${TEST_FIRST:-} " in *" $(basename "$t") "*) ;; *) ordered+=("$t") ;; esac
done
alone=" ${TEST_ALONE:-} "
for t in "${ordered[@]}"; do
  limit=$jobs
  case "$alone" in *" $(basename "$t") "*) limit=1 ;; esac
  while [ "$running" -ge "$limit" ]; do reap_one; done
  slot=0
  while [ "${slot_busy[$slot]:-0}" -eq 1 ]; do slot=$((slot + 1)); done
  slot_busy[$slot]=1
  # A name of its own before it starts: renaming a shared one after the
  # fork raced the child's own open of it, and lost the output.
  launched=$((launched + 1))
  TEST_SLOT=$slot "$t" > "$outdir/out.$launched" 2>&1 &
  pid=$!
  out_of[$pid]=$outdir/out.$launched
  name_of[$pid]=$t
  slot_of[$pid]=$slot
  start_of[$pid]=$(date +%s)
  running=$((running + 1))
  [ "$limit" -eq 1 ] && while [ "$running" -gt 0 ]; do reap_one; done
done
while [ "$running" -gt 0 ]; do reap_one; done
[ -n "$failed" ] && echo "failed:$failed"
echo "binaries: $pass passed, $fail failed, in $(( $(date +%s) - t0 )) s"
[ "$fail" -eq 0 ] && [ "$pass" -eq "${#ordered[@]}" ] && [ "$pass" -eq "$#" ]
