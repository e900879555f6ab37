#!/bin/sh
# make bench-full: the long standard scenario on each transport (3 runs,
# server and generator on the same CPU, then on different CPUs) and the
# capacity modes against the targets of issue 6. Each step writes
# $BENCH_OUT/<name>.{json,csv} (and a latency PNG for the standard runs);
# the Markdown tables go to stdout. Extra arguments go to every run.
set -u
BENCH=${BENCH:-bin/chat-bench}
OUT=${BENCH_OUT:-build/bench}
status=0
run() {
  echo
  echo "\$ chat-bench $*"
  "$BENCH" --out "$OUT" "$@" || status=1
}
run --name full-same --transport all --runs 3 --duration 30 --idle 30 --cpus same "$@"
run --name full-split --transport all --runs 3 --duration 30 --idle 30 --cpus split "$@"
run --name idle-ws --idle-connections 50000 --transport websocket --cpus split "$@"
run --name idle-lp --idle-connections 20000 --transport long-poll --cpus split "$@"
run --name fanout --fanout 10000 --rate 20 --duration 10 --cpus split "$@"
run --name sends --sends --users 4 --window 64 --duration 10 --cpus split "$@"
exit $status
