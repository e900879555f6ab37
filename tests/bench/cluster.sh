#!/bin/bash
# make bench-cluster: what scale-out buys (issue 15). For each N of
# BENCH_CLUSTER_NS (default "1 2 3"): a throwaway PostgreSQL, N chatd on its
# one database and HAProxy in front (scripts/cluster.sh start), then
# chat-bench against the balancer:
#   fan-out  --fanout SUBS WebSocket subscribers (spread round robin over the
#            instances), one sender at RATE messages/s: deliveries/s achieved
#            (offered SUBS x RATE), send->delivery latency p50/p99;
#   sends    --sends: USERS WebSocket senders keeping WINDOW messages
#            unacknowledged: persisted (acknowledged = committed) sends/s,
#            ack latency p50/p99, send->delivery latency p50/p99.
# Prints one Markdown table; each run's JSON/CSV goes to BENCH_OUT/cluster-*.
# Everything (PostgreSQL, chatd x N, HAProxy, the generator) shares this
# machine's CPUs: the table says how many there are. BENCH_INSTANCE_CPU
# (a fraction of one CPU, e.g. 0.1) caps each chatd with a cgroup (v1 cpu
# controller) quota instead, so that N instances get N times one instance's
# share, as on machines of their own, while the generator, HAProxy and
# PostgreSQL keep the rest (BENCH_INSTANCE_PERIOD_US: the quota's period,
# 10 ms by default, so a capped instance waits at most that long).
# BENCH_FANOUT_RATES (e.g. "5 10 20 40 60") adds a search: the highest of
# those rates each N sustains, i.e. delivers at least 90 % of what is
# offered within the run's window with a p99 within BENCH_FANOUT_P99_MS
# (default 500): a server that has fallen behind packs more events per
# write and so delivers nearly any offer, late; the bound says how late
# still counts. (With a p99 of 500 ms, up to a tenth of a 5 s window's
# messages are still on their way when it ends: hence 90 %, not 100.)
# Extra arguments go to every chat-bench run. Not part of make test.
set -u
cd "$(dirname "$0")/../.."
BENCH=${BENCH:-bin/chat-bench}
OUT=${BENCH_OUT:-build/bench}
NS=${BENCH_CLUSTER_NS:-1 2 3}
SUBS=${BENCH_FANOUT_SUBS:-2000}
RATE=${BENCH_FANOUT_RATE:-100}
USERS=${BENCH_SENDS_USERS:-8}
WINDOW=${BENCH_SENDS_WINDOW:-16}
DURATION=${BENCH_DURATION:-10}
CAP=${BENCH_INSTANCE_CPU:-}
CAP_PERIOD=${BENCH_INSTANCE_PERIOD_US:-10000}
RATES=${BENCH_FANOUT_RATES:-}
P99_BOUND=${BENCH_FANOUT_P99_MS:-500}
SEARCH_S=${BENCH_SEARCH_DURATION:-5}
EXTRA=("$@")
CGROOT=/sys/fs/cgroup/cpu
# chat-bench's limits out of the way (it passes them itself only to a
# chatd it starts); the balancer is every client's address.
export CLUSTER_CHATD_ARGS="--msg-rate 100000 --login-rate 10000 --max-connections 20000 \
--max-connections-per-ip 20000 --max-long-polls 20000"
mkdir -p "$OUT"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-cluster.XXXXXX") || exit 1
chmod 755 "$tmp"                 # the postgres user must reach its pg/ dir
dir=""
cgroups=()
cleanup() {
  [ -n "$dir" ] && scripts/cluster.sh stop "$dir" >/dev/null 2>&1
  local g
  for g in "${cgroups[@]}"; do rmdir "$g" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Column $2 of CSV file $1's last row (the header names the columns;
# quoted fields, which may hold commas, are blanked first).
csv_field() {
  sed -E 's/"[^"]*"/q/g' "$1" |
    awk -F, -v want="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == want) c = i; next }
                          c { v = $c } END { print (v == "" ? "-" : v) }'
}

fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.*f\n", d, v }'; }

# CPU seconds (user + system) the chatd instances of cluster $1 have used.
chatd_cpu_s() {
  local pids tick total=0 p
  pids=$(sed -n 's/^CHATD[0-9]*_PID=//p' "$1/cluster.env")
  tick=$(getconf CLK_TCK)
  for p in $pids; do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  awk -v t="$total" -v k="$tick" 'BEGIN { printf "%.3f\n", t / k }'
}

# Puts each chatd of cluster $1 in a cgroup of its own whose quota is CAP
# of one CPU (all its threads: the writer and the password hashers too).
cap_instances() {
  local p g quota
  quota=$(awk -v c="$CAP" -v p="$CAP_PERIOD" 'BEGIN { printf "%d\n", c * p }')
  for p in $(sed -n 's/^CHATD[0-9]*_PID=//p' "$1/cluster.env"); do
    g="$CGROOT/chat-bench-$p"
    mkdir "$g" && cgroups+=("$g") && echo "$CAP_PERIOD" >"$g/cpu.cfs_period_us" &&
      echo "$quota" >"$g/cpu.cfs_quota_us" && echo "$p" >"$g/cgroup.procs" || return 1
  done
}

# The highest rate of RATES that cluster $1 (of $2 instances) sustains:
# appends a row to sustained. Stops at the first rate it does not.
search_fanout() {
  local url=$1 n=$2 r f dps off p99 best="-" best_p99="-" best_rate="-" miss="none of them failed"
  for r in $RATES; do
    f="cluster-fanout-$n-r$r"
    if ! "$BENCH" --server "$url" --out "$OUT" --name "$f" --no-plot --transport websocket \
        --fanout "$SUBS" --rate "$r" --duration "$SEARCH_S" --logins 8 "${EXTRA[@]}" >&2; then
      miss="at $r msgs/s the bench failed"
      status=1
      break
    fi
    dps=$(csv_field "$OUT/$f.csv" deliveries_per_s)
    off=$(csv_field "$OUT/$f.csv" offered_per_s)
    p99=$(csv_field "$OUT/$f.csv" p99)
    if awk -v d="$dps" -v o="$off" -v p="$p99" -v b="$P99_BOUND" \
        'BEGIN { exit !(d != "-" && p != "-" && d >= 0.90 * o && p <= b) }'; then
      best=$dps best_p99=$p99 best_rate=$r
    else
      miss="at $r msgs/s: $(fmt "$dps" 0) of $(fmt "$off" 0)/s, p99 $(fmt "$p99" 0) ms"
      break
    fi
  done
  sustained+=("| $n | $(fmt "$best" 0) | $best_rate | $(fmt "$best_p99" 0) | $miss |")
}

if [ -n "$CAP" ]; then
  awk -v c="$CAP" 'BEGIN { exit !(c > 0 && c <= 64) }' ||
    { echo "bench-cluster: BENCH_INSTANCE_CPU=$CAP is not a share of CPUs" >&2; exit 2; }
  [ -w "$CGROOT" ] ||
    { echo "bench-cluster: BENCH_INSTANCE_CPU needs a writable cgroup v1 cpu controller at $CGROOT" >&2; exit 2; }
  # one interactive argon2id hash is ~0.25 s of a whole CPU: on a tenth of
  # one the bench's logins would time out before anything is measured
  CLUSTER_CHATD_ARGS="$CLUSTER_CHATD_ARGS --pwhash-cost min"
fi

rows=()
sustained=()
status=0
for n in $NS; do
  dir="$tmp/c$n"
  url=$(scripts/cluster.sh start "$dir" "$n") || { echo "bench-cluster: no cluster of $n" >&2; exit 1; }
  echo "bench-cluster: $n instance(s) behind $url" >&2
  if [ -n "$CAP" ]; then
    cap_instances "$dir" || { echo "bench-cluster: could not cap the instances' CPU" >&2; exit 1; }
  fi
  cpu0=$(chatd_cpu_s "$dir")
  "$BENCH" --server "$url" --out "$OUT" --name "cluster-fanout-$n" --no-plot --transport websocket \
    --fanout "$SUBS" --rate "$RATE" --duration "$DURATION" --logins 8 "$@" >&2 || status=1
  cpu1=$(chatd_cpu_s "$dir")
  [ -n "$RATES" ] && search_fanout "$url" "$n"
  "$BENCH" --server "$url" --out "$OUT" --name "cluster-sends-$n" --no-plot --transport websocket \
    --sends --users "$USERS" --window "$WINDOW" --duration "$DURATION" "$@" >&2 || status=1
  scripts/cluster.sh stop "$dir" >/dev/null 2>&1
  dir=""
  f="$OUT/cluster-fanout-$n.csv" s="$OUT/cluster-sends-$n.csv"
  # deliveries per CPU-second of chatd: what one instance delivers on an
  # equal share of the machine (the run's deliveries over the CPU time the
  # instances used during it, setup and logins included)
  dps=$(csv_field "$f" deliveries_per_s)
  per_cpu=$(awk -v d="$dps" -v a="$cpu0" -v b="$cpu1" -v t="$DURATION" \
    'BEGIN { if (d == "-" || b <= a) print "-"; else printf "%.0f\n", d * t / (b - a) }')
  rows+=("| $n | $(fmt "$dps" 0) | $(fmt "$(csv_field "$f" offered_per_s)" 0) | $per_cpu \
| $(fmt "$(csv_field "$f" p50)" 2) | $(fmt "$(csv_field "$f" p99)" 2) \
| $(fmt "$(csv_field "$s" acks_per_s)" 0) | $(fmt "$(csv_field "$s" ack_p50)" 2) | $(fmt "$(csv_field "$s" ack_p99)" 2) \
| $(fmt "$(csv_field "$s" p50)" 2) | $(fmt "$(csv_field "$s" p99)" 2) |")
done

echo
echo "chat-bench against N chatd behind HAProxy on one PostgreSQL, all on $(nproc) CPUs;"
[ -n "$CAP" ] && echo "each chatd capped at $CAP of a CPU (cgroup quota); the rest unconstrained;"
echo "fan-out: $SUBS WebSocket subscribers, 1 sender at $RATE msgs/s; sends: $USERS WebSocket senders,"
echo "window $WINDOW; $DURATION s each"
echo
echo "| instances | fan-out deliveries/s | offered/s | deliveries per chatd CPU-s | fan-out p50 ms | fan-out p99 ms \
| persisted sends/s | ack p50 ms | ack p99 ms | send→delivery p50 ms | send→delivery p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ -n "$RATES" ]; then
  echo
  echo "sustained fan-out: the highest of $RATES msgs/s (x $SUBS subscribers) delivered at >= 90 % of"
  echo "the offer with p99 <= $P99_BOUND ms, $SEARCH_S s each"
  echo
  echo "| instances | sustained deliveries/s | at msgs/s | its p99 ms | the next rate |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${sustained[@]}"
fi
exit $status
