#!/bin/bash
# screenshots.sh — regenerates the terminal UI captures in docs/screenshots/
# that one scripted conversation can give: alice (100x26, websocket) and bob
# (60x22, long-poll) chat, bob sends alice 12.50, alice switches transports
# and narrows her terminal. Each capture is written twice: NAME.txt as the
# screen reads, NAME.ans with its colours (tmux capture-pane -e; `cat` it in
# a terminal to see them). Runs bin/chatd and bin/chat (build them first)
# on a throwaway database, in a private tmux server.
# demo-202x44.txt is `make demo`'s whole window and is not made here.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
out=$top/docs/screenshots
dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-shots.XXXXXX")
sock="chat-shots-$$"
server=""
cleanup() {
  tmux -L "$sock" kill-server 2>/dev/null || true
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM HUP
export LANG=C.UTF-8 TMUX_TMPDIR=$dir
unset TMUX

bin/chatd --port 0 --db "$dir/chat.db" >"$dir/server.log" 2>&1 &
server=$!
url=""
for _ in $(seq 50); do
  url=$(sed -n 's/^listening on //p' "$dir/server.log")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$dir/server.log" >&2; exit 1; }

t() { tmux -L "$sock" "$@"; }
screen() { t capture-pane -p -t "=$1:"; }
# Waits up to 30 s for text on the screen of session $1.
wait_for() {
  for _ in $(seq 300); do
    screen "$1" | grep -qF -- "$2" && return 0
    sleep 0.1
  done
  echo "screenshots: $1 never showed \"$2\":" >&2; screen "$1" >&2; exit 1
}
type_line() { t send-keys -t "=$1:" -l -- "$2"; t send-keys -t "=$1:" Enter; }
shot() {
  screen "$1" >"$out/$2.txt"
  t capture-pane -p -e -t "=$1:" >"$out/$2.ans"
  echo "wrote docs/screenshots/$2.txt and .ans"
}
client() {  # user cols rows transport
  t new-session -d -s "$1" -x "$2" -y "$3" \
    "CHAT_PASSWORD=$1-shots-password '$top/bin/chat' --server $url --user $1 --register --transport $4 --quiet"
}
# A transfer may ask to be confirmed: answer yes.
confirm() {
  for _ in $(seq 20); do
    if screen "$1" | grep -q 'y/n'; then type_line "$1" y; return; fi
    screen "$1" | grep -q 'accepted' && return
    sleep 0.1
  done
}

client alice 100 26 websocket
client bob 60 22 long-poll
wait_for alice "websocket · connected"
wait_for bob "long-poll · conn"
type_line bob "hi alice! lunch at 12:30?"
wait_for alice "lunch at 12:30?"
type_line alice "sure — see you at the café ☕ (or 午後?)"
wait_for bob "see you at the café"
type_line bob "great. and here's what I owe you for last time"
wait_for alice "what I owe you"
type_line bob "/transfer alice 12.50"
confirm bob
wait_for alice "alert: transfer received"
shot alice alice-popup-100x26
wait_for bob "alert: transfer completed"
shot bob bob-transfer-60x22

t send-keys -t "=alice:" Escape
type_line alice "/balance"
wait_for alice "balance: "
type_line alice "/transport long-poll"
wait_for alice "switched to long-poll"
type_line bob "one more thing: the 13:00 meeting moved to 14:00"
wait_for alice "meeting moved to 14:00"
type_line alice "/transport short-poll"
wait_for alice "switched to short-poll"
type_line alice "ok, thanks! 👍"
wait_for alice "alice: ok, thanks!"
t send-keys -t "=alice:" -l -- "typing a draft…"
wait_for alice "> typing a draft…"
for _ in $(seq 100); do screen alice | grep -q "alert: transfer" || break; sleep 0.1; done
shot alice alice-transport-switch-100x26
t resize-window -t "=alice:" -x 60 -y 20
wait_for alice "> typing a draft…"
sleep 0.3   # the frame after the resize
shot alice alice-narrow-60x20
