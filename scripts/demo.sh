#!/bin/bash
# make demo: a server on a throwaway database, users alice and bob (created
# with --register), and tmux with the two terminal UIs side by side over the
# server log (scripts/demo-log.sh: the hints pinned on top — how to leave,
# and the exact command that starts the server again on the same port and
# database — then the newest log lines). TRANSPORT (argument 1) picks the
# clients' transport.
#
# chatd runs on a fixed port picked once (a free one below the ephemeral
# range), so a server killed and started again with the command shown is
# the one the clients are retrying. Outside tmux the demo is a tmux session
# of its own, sized to the terminal, and detaching ends it; inside tmux it
# is a new window of the current session (no nesting), and closing that
# window ends it. Without a terminal (or tmux) nothing is started: it says
# so and prints the commands to run by hand, and exits 1. At the end the
# server, and any server started again on the demo's database, is stopped.
#
# Environment:
#   CHATD_BIN, CHAT_BIN        the binaries (default bin/chatd, bin/chat)
#   DEMO_SESSION               the tmux session name (default chat-demo-PID)
#   DEMO_DIR                   the data directory (chat.db, server.log);
#                              default a new temp dir, removed at the end;
#                              a given one is created if missing and kept
# Against servers started elsewhere (scripts/cluster.sh demo does this):
#   DEMO_URL=http://HOST:PORT  use that server (e.g. a load balancer) instead
#                              of starting one; its users must be new
#   DEMO_LOGS="FILE..."        the logs shown in the bottom pane
#   DEMO_HINTS=PROGRAM         prints the hints shown above the logs instead
#                              of the restart command (run every second)
set -eu
TRANSPORT=${1:-websocket}
case "$TRANSPORT" in short-poll|long-poll|websocket|sse) ;; *)
  echo "TRANSPORT must be short-poll, long-poll, websocket or sse" >&2; exit 2;;
esac
cd "$(dirname "$0")/.."
top=$(pwd)
CHATD=$(realpath -m "${CHATD_BIN:-bin/chatd}")
CHAT=$(realpath -m "${CHAT_BIN:-bin/chat}")
session=${DEMO_SESSION:-chat-demo-$$}
if [ -n "${DEMO_DIR:-}" ]; then
  mkdir -p "$DEMO_DIR"; dir=$(realpath "$DEMO_DIR"); keep_dir=1
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-demo.XXXXXX"); keep_dir=0
fi
url=${DEMO_URL:-}
logs=${DEMO_LOGS:-}
hints=${DEMO_HINTS:-}
server="" window="" port=""

# Every chatd on the demo's database: the one started here and any the
# user started again with the command shown.
servers_on_db() { pgrep -f -- "^[^ ]*chatd .*--db ${dir//./\\.}/chat\.db( |\$)" || true; }
cleanup() {
  case $mode in
    window)  tmux kill-window -t "$window" 2>/dev/null || true;;
    session) tmux kill-session -t "=$session" 2>/dev/null || true;;
  esac
  if [ -z "${DEMO_URL:-}" ]; then
    for p in $(servers_on_db); do kill "$p" 2>/dev/null || true; done
    [ -z "$server" ] || wait "$server" 2>/dev/null || true
  fi
  [ "$keep_dir" = 1 ] || rm -rf "$dir"
}
mode=none
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

client() {
  echo "CHAT_PASSWORD=$1-demo-password $CHAT --server $url --user $1 --register --transport $TRANSPORT"
}
server_cmd() { echo "$CHATD --port $port --db $dir/chat.db"; }

# A port below the ephemeral range (where no outgoing connection lands on
# it while the server is down) that nothing answers on.
pick_port() {
  local low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 20); do
    port=$((low - 12000 + RANDOM % 12000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 0
  done
  echo "no free port found" >&2; exit 1
}

# Starts chatd on a free port; tries another if that one is taken.
start_server() {
  for _ in 1 2 3 4 5; do
    pick_port
    : >"$dir/server.log"
    "$CHATD" --port "$port" --db "$dir/chat.db" >>"$dir/server.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do
      grep -q '^listening on ' "$dir/server.log" && { url="http://127.0.0.1:$port"; return 0; }
      kill -0 "$server" 2>/dev/null || break
      sleep 0.1
    done
    wait "$server" 2>/dev/null || true
    server=""
    grep -q 'cannot listen' "$dir/server.log" || { cat "$dir/server.log" >&2; echo "chatd did not start" >&2; exit 1; }
  done
  echo "chatd found no free port" >&2; exit 1
}

if [ ! -t 0 ] || [ ! -t 1 ] || ! command -v tmux >/dev/null; then
  echo "The demo needs a terminal with tmux: it opens two chat clients side by side."
  echo "Here $([ -t 0 ] && [ -t 1 ] && echo "tmux is missing" || echo "there is no terminal"), so nothing was started. To try it by hand:"
  if [ -z "$url" ]; then
    pick_port; url="http://127.0.0.1:$port"; keep_dir=1
    echo "in one terminal, the server (Ctrl-C stops it):"
    echo "    $(server_cmd)"
  fi
  echo "then in two others, alice and bob:"
  echo "    $(client alice)"
  echo "    $(client bob)"
  echo "and the web client in a browser: $url/"
  [ -n "${DEMO_URL:-}" ] || echo "and when done: rm -r $dir"
  exit 1
fi

if [ -z "$url" ]; then
  start_server
  logs="$dir/server.log"
fi
[ -n "$logs" ] || logs=/dev/null

# One UI per user; an error keeps the pane open so it can be read. When
# both have left, the log pane stops too and with it the demo.
client_pane() {
  echo "$(client "$1") || { echo '(the client ended with an error; press Enter)'; read _; }; touch '$dir/$1.done'"
}

if [ -n "${TMUX:-}" ]; then
  # Inside tmux: a new window here; a nested session would take the prefix key.
  mode=window
  pane=$(tmux new-window -P -F '#{pane_id}' -n chat-demo "$(client_pane alice)")
  window=$(tmux display-message -p -t "$pane" '#{window_id}')
else
  read -r rows cols < <(stty size)
  mode=session
  pane=$(tmux new-session -d -P -F '#{pane_id}' -s "$session" -x "$cols" -y "$rows" "$(client_pane alice)")
fi
prefix=$(tmux show-options -gv prefix 2>/dev/null | sed 's/^C-/Ctrl-/')
prefix=${prefix:-Ctrl-b}
if [ $mode = window ]; then
  leave="leave: /quit in both clients, or $prefix & (closes this window)"
else
  leave="leave: /quit in both clients, or $prefix d (detach) ends the demo"
fi
# The hints, worked out again at every redraw: the server's PID changes
# when it is started again.
{
  echo '#!/bin/bash'
  if [ -n "$hints" ]; then
    printf '%q\n' "$hints"
  else
    printf 'db=%q cmd=%q web=%q\n' "$dir/chat.db" "$(server_cmd)" "$url/"
    cat <<'EOF'
pid=$(pgrep -f -- "^[^ ]*chatd .*--db ${db//./\\.}( |\$)" | tr '\n' ' ')
pid=${pid% }
if [ -n "$pid" ]; then echo "chatd: pid $pid (kill $pid stops it); to start it again, run:"
else echo "chatd: not running; to start it again, run:"; fi
echo "  $cmd"
echo "web client: $web (open it in a browser; /lab.html compares the transports)"
EOF
  fi
  printf 'echo %q\n' "$leave"
} >"$dir/hints.sh"
chmod +x "$dir/hints.sh"

height=$(tmux display-message -p -t "$pane" '#{window_height}')
logrows=$((height / 3 > 7 ? height / 3 : 7))
end=""
[ $mode = window ] || end="; tmux kill-session -t '=$session'"
quoted=""
for f in $logs; do quoted="$quoted '$f'"; done
tmux split-window -t "$pane" -h "$(client_pane bob)"
tmux split-window -t "$pane" -f -v -l "$logrows" "'$top/scripts/demo-log.sh' '$dir/hints.sh' '$dir'$quoted$end"
tmux select-pane -t "$pane"

echo "server: $url, transport: $TRANSPORT"
echo "try: type a message; /transfer bob 25.00 as alice; /transport long-poll; /help"
if [ $mode = window ]; then
  tmux select-window -t "$window"
  while tmux list-windows -a -F '#{window_id}' 2>/dev/null | grep -qxF "$window"; do sleep 1; done
else
  tmux attach -t "=$session" || true
fi
echo "demo over${server:+: server stopped}"
