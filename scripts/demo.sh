#!/bin/sh
# make demo: a server on a throwaway database, users alice and bob (created
# with --register), and tmux with the two terminal UIs side by side over the
# server log. TRANSPORT (argument 1) picks the clients' transport.
#
# Against servers started elsewhere (scripts/cluster.sh demo does this):
#   DEMO_URL=http://HOST:PORT  use that server (e.g. a load balancer) instead
#                              of starting one; its users must be new
#   DEMO_LOGS="FILE..."        the logs shown in the bottom pane
#   DEMO_HINT="TEXT"           a line printed, and shown above the logs
set -eu
TRANSPORT=${1:-websocket}
case "$TRANSPORT" in short-poll|long-poll|websocket) ;; *)
  echo "TRANSPORT must be short-poll, long-poll or websocket" >&2; exit 2;;
esac
cd "$(dirname "$0")/.."
top=$(pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-demo.XXXXXX")
session="chat-demo-$$"

server=""
cleanup() {
  tmux kill-session -t "=$session" 2>/dev/null || true
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM HUP

url=${DEMO_URL:-}
logs=${DEMO_LOGS:-}
hint=${DEMO_HINT:-}
if [ -z "$url" ]; then
  bin/chatd --port 0 --db "$dir/chat.db" >"$dir/server.log" 2>&1 &
  server=$!
  logs="$dir/server.log"
  # Wait (up to 5 s) for the server to say where it listens.
  for _ in $(seq 50); do
    url=$(sed -n 's/^listening on //p' "$dir/server.log")
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "chatd did not start" >&2; exit 1; }
fi
[ -n "$logs" ] || logs=/dev/null

# One UI per user; an error keeps the pane open so it can be read. When
# both have left, the log pane stops too and with it the tmux session.
client() {
  echo "CHAT_PASSWORD=$1-demo-password '$top/bin/chat' --server $url --user $1 --register --transport $TRANSPORT || { echo '(the client ended with an error; press Enter)'; read _; }; touch '$dir/$1.done'"
}
log_pane() {
  quoted=""
  for f in $logs; do quoted="$quoted '$f'"; done
  echo "echo '$leave'; ${hint:+echo '$hint'; }tail -n +1 -f$quoted & t=\$!; while [ ! -e '$dir/alice.done' ] || [ ! -e '$dir/bob.done' ]; do sleep 0.5; done; kill \$t"
}

leave="leave: type /quit (or Ctrl-C) in both clients; Ctrl-b d detaches and ends the demo too"
echo "server: $url (log: ${logs:-none}), transport: $TRANSPORT"
[ -z "$hint" ] || echo "$hint"
echo "try: type a message; /transfer bob 25.00 in alice's window; /transport long-poll; /help"
echo "$leave"
if [ ! -t 0 ] || [ ! -t 1 ] || ! command -v tmux >/dev/null; then
  echo "no terminal or no tmux: not opening the demo. Each client would run:" >&2
  client alice; echo; client bob
  exit 0
fi
tmux new-session -d -s "$session" -x 200 -y 50 "$(client alice)"
tmux split-window -t "=$session:" -h "$(client bob)"
tmux split-window -t "=$session:" -f -v -l 8 "$(log_pane)"
if [ -n "$hint" ]; then
  # Keep the hint in sight: pane titles on the borders, the hint on the logs'.
  tmux set-window-option -t "=$session:" pane-border-status top >/dev/null
  tmux set-window-option -t "=$session:" pane-border-format ' #{pane_title} ' >/dev/null
  tmux select-pane -t "=$session:.0" -T alice
  tmux select-pane -t "=$session:.1" -T bob
  tmux select-pane -t "=$session:.2" -T "$hint"
fi
tmux select-pane -t "=$session:.0"
if [ -n "${TMUX:-}" ]; then
  # already inside tmux: switch to the demo and wait for it to end
  tmux switch-client -t "=$session"
  while tmux has-session -t "=$session" 2>/dev/null; do sleep 1; done
else
  tmux attach -t "=$session" || true
fi
echo "demo over${server:+: server stopped}"
