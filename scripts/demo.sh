#!/bin/sh
# make demo: a server on a throwaway database, users alice and bob, and tmux
# with the server log and one client per user side by side.
set -eu
TRANSPORT=${1:-websocket}
case "$TRANSPORT" in short-poll|long-poll|websocket) ;; *)
  echo "TRANSPORT must be short-poll, long-poll or websocket" >&2; exit 2;;
esac
cd "$(dirname "$0")/.."
top=$(pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-demo.XXXXXX")
session="chat-demo-$$"

bin/chatd --port 0 --db "$dir/chat.db" >"$dir/server.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT INT TERM

# Wait (up to 5 s) for the server to say where it listens.
url=""
for _ in $(seq 50); do
  url=$(sed -n 's/^listening on //p' "$dir/server.log")
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "chatd did not start" >&2; exit 1; }

client() {
  echo "echo '$1 on $TRANSPORT: type a line to send it, /quit to leave'; CHAT_PASSWORD=$1-demo-password '$top/bin/chat' --server $url --user $1 --register --transport $TRANSPORT --headless; echo '(client ended; press Enter)'; read _"
}

echo "server: $url (log: $dir/server.log)"
echo "leave: type /quit in both clients, or press Ctrl-b then d to detach; the server stops when this script ends"
if [ ! -t 1 ] || ! command -v tmux >/dev/null; then
  echo "no terminal: not opening tmux. Clients would run:" >&2
  client alice; echo; client bob
  exit 0
fi
tmux new-session -d -s "$session" -x 200 -y 50 "tail -f '$dir/server.log'"
tmux split-window -t "$session" -h "$(client alice)"
tmux split-window -t "$session" -v "$(client bob)"
tmux select-layout -t "$session" tiled >/dev/null
tmux attach -t "$session" || true
tmux kill-session -t "$session" 2>/dev/null || true
