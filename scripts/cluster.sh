#!/bin/bash
# cluster.sh — several chatd instances on one throwaway PostgreSQL database
# behind HAProxy (deploy/haproxy.cfg.in), all on 127.0.0.1, no root needed.
#
#   cluster.sh start DIR [N]      a PostgreSQL cluster (scripts/pg-temp.sh) in
#                                 DIR/pg, N chatd instances (default 2) on free
#                                 ports sharing its database "chat", and
#                                 HAProxy on a free port in front; waits for
#                                 each; prints the balancer's URL; writes
#                                 DIR/cluster.env (URL, PIDs, ports; a shell
#                                 file to source) and the logs to DIR/*.log
#   cluster.sh stop DIR           stops all of it and removes DIR
#   cluster.sh restart DIR K      starts instance K (1..N) again on its port,
#                                 after it was killed
#   cluster.sh status DIR         each process and whether it answers
#   cluster.sh demo [TRANSPORT]   make demo-cluster: a 2-instance cluster and
#                                 the two-client tmux demo (scripts/demo.sh)
#                                 through the balancer, its hints (each
#                                 instance's current PID, the restart
#                                 command) read from cluster.env every
#                                 second; quitting stops it all. Without a
#                                 terminal it starts nothing, prints how to
#                                 do it by hand and exits 1
#
# CHATD_BIN (default bin/chatd) and HAPROXY_BIN (default haproxy) pick the
# binaries; CLUSTER_CHATD_ARGS adds chatd flags.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
CHATD=${CHATD_BIN:-$top/bin/chatd}
HAPROXY=${HAPROXY_BIN:-$(command -v haproxy || echo /usr/sbin/haproxy)}
TEMPLATE=$top/deploy/haproxy.cfg.in

die() { echo "cluster.sh: $*" >&2; exit 1; }

# Is something accepting connections on 127.0.0.1:$1?
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# GET $2 on 127.0.0.1:$1; prints the status code (nothing if no answer).
http_status() {
  local line
  line=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
           printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3 &&
           IFS= read -r -t 2 l <&3 && echo "$l") 2>/dev/null) || true
  line=${line#HTTP/1.? }
  echo "${line%% *}"
}

# Is $1 a live process whose command line contains $2? (A PID in
# cluster.env may have been reused since.)
alive() {
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- "$2"
}

# Starts chatd instance $1 on port $2 (0: a free one) of database $3, in its
# own session (Ctrl-C in the caller's terminal does not reach it); waits up
# to 10 s for its "listening on" line; sets pid and port.
start_instance() {
  local k=$1 want=$2 db=$3 log="$dir/chatd$1.log" url=""
  # HAProxy connects from 127.0.0.1 and names each client in
  # X-Forwarded-For (option forwardfor): --trusted-proxy makes chatd key its
  # login throttle, audit lines and per-address connection cap on that
  # client, not on HAProxy. The cap is still raised: the demo's clients all
  # run on this machine, so they all are 127.0.0.1 too.
  # shellcheck disable=SC2086
  setsid "$CHATD" --host 127.0.0.1 --port "$want" --db "$db" --instance "chatd$k" \
    --trusted-proxy 127.0.0.1 --max-connections-per-ip 20000 ${CLUSTER_CHATD_ARGS:-} \
    >>"$log" 2>&1 </dev/null &
  pid=$!
  disown "$pid"                    # no "Killed" job notice when someone kills it
  printf -v "CHATD${k}_PID" %s "$pid"
  write_env                        # so that stop finds it, whatever happens next
  for _ in $(seq 100); do
    url=$(sed -n 's/^listening on //p' "$log" | tail -n 1)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "chatd$k exited at start"; }
    sleep 0.1
  done
  [ -n "$url" ] || { kill "$pid" 2>/dev/null; die "chatd$k did not listen within 10 s"; }
  port=${url##*:}
}

# HAProxy from the template on a free port: up to 5 random ports.
start_haproxy() {
  local servers="" k p
  for k in $(seq "$n"); do
    p=CHATD${k}_PORT
    servers="$servers${servers:+\\n    }server chatd$k 127.0.0.1:${!p}"
  done
  for _ in 1 2 3 4 5; do
    lbport=$((20000 + RANDOM % 40000))
    listening "$lbport" && continue
    sed -e "s|@LISTEN_PORT@|$lbport|" -e "s|@STATS_SOCKET@|$dir/haproxy.sock|" \
      -e "s|@SERVERS@|$servers|" "$TEMPLATE" >"$dir/haproxy.cfg"
    "$HAPROXY" -c -q -f "$dir/haproxy.cfg" || die "bad configuration $dir/haproxy.cfg"
    setsid "$HAPROXY" -db -f "$dir/haproxy.cfg" >>"$dir/haproxy.log" 2>&1 </dev/null &
    lbpid=$!
    disown "$lbpid"
    write_env
    for _ in $(seq 100); do
      [ "$(http_status "$lbport" /healthz)" = 200 ] && return 0
      kill -0 "$lbpid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$lbpid" 2>/dev/null; then
      kill "$lbpid"
      die "haproxy did not answer /healthz within 10 s (log: $dir/haproxy.log)"
    fi
    grep -q "cannot bind" "$dir/haproxy.log" || { tail -n 20 "$dir/haproxy.log" >&2; die "haproxy exited at start"; }
  done
  die "haproxy found no free port in 5 tries"
}

write_env() {
  local k p q
  {
    echo "# written by scripts/cluster.sh; source it"
    echo "CLUSTER_URL=http://127.0.0.1:$lbport"
    echo "CLUSTER_DB=$db"
    echo "CLUSTER_N=$n"
    echo "HAPROXY_PID=$lbpid"
    echo "HAPROXY_PORT=$lbport"
    for k in $(seq "$n"); do
      p=CHATD${k}_PORT q=CHATD${k}_PID
      echo "CHATD${k}_PID=${!q:-}"
      echo "CHATD${k}_PORT=${!p:-}"
    done
  } >"$dir/cluster.env.tmp"
  mv "$dir/cluster.env.tmp" "$dir/cluster.env"
}

cmd_start() {
  dir=$1 n=${2:-2}
  case $n in [1-8]) ;; *) die "N must be 1-8";; esac
  [ -x "$CHATD" ] || die "no $CHATD: build first (make)"
  [ -x "$HAPROXY" ] || die "no haproxy: scripts/install-deps.sh installs it"
  mkdir -p "$dir"
  [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  dir=$(cd "$dir" && pwd -P)
  chmod 755 "$dir"                 # the postgres user must reach DIR/pg
  touch "$dir/cluster.env"         # marks DIR as ours for stop
  started_dir=$dir
  lbpid="" lbport=0 db=""
  local pgurl
  pgurl=$(scripts/pg-temp.sh start "$dir/pg")
  scripts/pg-temp.sh createdb "$pgurl" chat
  db="${pgurl%/*}/chat"
  for k in $(seq "$n"); do
    start_instance "$k" 0 "$db"
    printf -v "CHATD${k}_PORT" %s "$port"
  done
  start_haproxy
  write_env
  echo "http://127.0.0.1:$lbport"
}

# Terminates $1 (if it is still the process named $2): SIGTERM, up to 10 s,
# then SIGKILL.
terminate() {
  alive "$1" "$2" || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do
    alive "$1" "$2" || return 0
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
}

cmd_stop() {
  local k p
  dir=$1
  [ -d "$dir" ] || return 0
  [ -f "$dir/cluster.env" ] || die "$dir was not made by cluster.sh start; not touching it"
  local CLUSTER_N=0 HAPROXY_PID=""
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  terminate "$HAPROXY_PID" haproxy
  for k in $(seq "${CLUSTER_N:-0}"); do
    p=CHATD${k}_PID
    terminate "${!p:-}" chatd
  done
  if [ -d "$dir/pg" ]; then
    scripts/pg-temp.sh stop "$dir/pg" || echo "cluster.sh: could not stop PostgreSQL in $dir/pg" >&2
  fi
  rm -rf "$dir"
}

cmd_restart() {
  dir=$1 k=$2
  [ -f "$dir/cluster.env" ] || die "$dir has no cluster.env"
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  n=$CLUSTER_N db=$CLUSTER_DB lbpid=$HAPROXY_PID lbport=$HAPROXY_PORT
  case $k in [1-8]) [ "$k" -le "$n" ] || die "no instance $k";; *) die "K must be 1-$n";; esac
  p=CHATD${k}_PID q=CHATD${k}_PORT
  alive "${!p}" chatd && die "chatd$k (pid ${!p}) is still running"
  # Its port may take a moment to be free again.
  for _ in $(seq 50); do listening "${!q}" || break; sleep 0.1; done
  start_instance "$k" "${!q}" "$db"
  write_env
  echo "chatd$k is back: pid $pid, port $port"
}

cmd_status() {
  local k p q
  dir=$1
  [ -f "$dir/cluster.env" ] || die "$dir has no cluster.env"
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  echo "balancer $CLUSTER_URL (pid $HAPROXY_PID): $(alive "$HAPROXY_PID" haproxy && echo "running, /healthz $(http_status "$HAPROXY_PORT" /healthz)" || echo gone)"
  for k in $(seq "$CLUSTER_N"); do
    p=CHATD${k}_PID q=CHATD${k}_PORT
    echo "chatd$k pid ${!p} port ${!q}: $(alive "${!p}" chatd && echo "running, /healthz $(http_status "${!q}" /healthz)" || echo gone)"
  done
}

# The demo's hints (scripts/demo-log.sh runs this every second): each
# instance's PID as cluster.env has it now, so after a restart the new one.
write_demo_hints() {
  {
    echo '#!/bin/bash'
    printf 'env=%q restart=%q\n' "$1/cluster.env" "$top/scripts/cluster.sh restart $1"
    cat <<'EOF'
. "$env"
line=""
for k in $(seq "$CLUSTER_N"); do
  p=CHATD${k}_PID
  if kill -0 "${!p}" 2>/dev/null; then line="$line${line:+, }chatd$k pid ${!p}"
  else line="$line${line:+, }chatd$k down"; fi
done
echo "$line; kill -9 one for a failover, then:"
echo "  $restart K    (K: 1 or 2)"
EOF
  } >"$1/demo-hints.sh"
  chmod +x "$1/demo-hints.sh"
}

cmd_demo() {
  local transport=${1:-websocket}
  if [ ! -t 0 ] || [ ! -t 1 ] || ! command -v tmux >/dev/null; then
    echo "The cluster demo needs a terminal with tmux: it opens two chat clients side by side."
    echo "Here $([ -t 0 ] && [ -t 1 ] && echo "tmux is missing" || echo "there is no terminal"), so nothing was started. To try it by hand:"
    echo "    $top/scripts/cluster.sh start DIR     # DIR: a new directory; prints the URL"
    echo "then in two terminals, with URL the one it printed:"
    echo "    CHAT_PASSWORD=alice-demo-password $top/bin/chat --server URL --user alice --register --transport $transport"
    echo "    CHAT_PASSWORD=bob-demo-password $top/bin/chat --server URL --user bob --register --transport $transport"
    echo "and when done: $top/scripts/cluster.sh stop DIR"
    exit 1
  fi
  demo_dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-cluster.XXXXXX")
  local d=$demo_dir
  trap 'cmd_stop "$demo_dir"; echo "cluster stopped"' EXIT
  trap 'exit 130' INT TERM HUP
  echo "starting PostgreSQL, two chatd instances and HAProxy in $d ..."
  dir=$d
  cmd_start "$d" 2 >/dev/null
  # shellcheck disable=SC1091
  . "$d/cluster.env"
  write_demo_hints "$d"
  echo "balancer: $CLUSTER_URL -> chatd1 127.0.0.1:$CHATD1_PORT (pid $CHATD1_PID), chatd2 127.0.0.1:$CHATD2_PORT (pid $CHATD2_PID)"
  echo "to watch a failover, kill the instance of your choice:"
  echo "    kill -9 $CHATD1_PID     # chatd1"
  echo "    kill -9 $CHATD2_PID     # chatd2"
  echo "and bring it back with: $top/scripts/cluster.sh restart $d 1 (or 2)"
  DEMO_URL=$CLUSTER_URL DEMO_LOGS="$d/chatd1.log $d/chatd2.log" DEMO_HINTS="$d/demo-hints.sh" \
    scripts/demo.sh "$transport"
}

case "${1:-}" in
  start)   [ $# -ge 2 ] && [ $# -le 3 ] || die "usage: cluster.sh start DIR [N]"
           # Whatever fails, leave nothing running (started_dir: set by cmd_start).
           started_dir=""
           trap 'rc=$?; if [ "$rc" -ne 0 ] && [ -n "$started_dir" ]; then
                   echo "cluster.sh: start failed; stopping what was started" >&2; cmd_stop "$started_dir"; fi' EXIT
           cmd_start "$2" "${3:-2}";;
  stop)    [ $# -eq 2 ] || die "usage: cluster.sh stop DIR"; cmd_stop "$2";;
  restart) [ $# -eq 3 ] || die "usage: cluster.sh restart DIR K"; cmd_restart "$2" "$3";;
  status)  [ $# -eq 2 ] || die "usage: cluster.sh status DIR"; cmd_status "$2";;
  demo)    [ $# -le 2 ] || die "usage: cluster.sh demo [TRANSPORT]"; cmd_demo "${2:-websocket}";;
  *)       die "usage: cluster.sh start DIR [N] | stop DIR | restart DIR K | status DIR | demo [TRANSPORT]";;
esac
