#!/bin/bash
# demo-log.sh HINTS DONE_DIR LOG... — the bottom pane of the demo
# (scripts/demo.sh): the hints (what the program HINTS prints, run at every
# redraw so that a PID shown is the current one) pinned at the top, in
# bold, and under them the newest lines of the server logs, merged by time
# (HH:MM:SS, and the log's name when there are several), redrawn every
# second to fit the pane however small it is. It ends when both clients
# have left (DONE_DIR/alice.done and DONE_DIR/bob.done exist).
set -u
hints_cmd=$1 done_dir=$2
shift 2

# The newest lines of every log, oldest first: "HH:MM:SS [name] text".
# A line without a timestamp (chatd's "listening on") takes its
# predecessor's, so it stays in place.
log_lines() {
  local f tag
  for f in "$@"; do
    tag=""
    [ $# -gt 1 ] && tag=$(basename "$f" .log)
    [ -r "$f" ] || continue
    tail -n 200 "$f" | awk -v tag="$tag" -v seq="$f" '
      /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T/ {
        t = substr($0, 1, 23); hms = substr($0, 12, 8)
        printf "%s\t%s\t%s%s %s\n", t, seq, hms, (tag == "" ? "" : " " tag), substr($0, index($0, " ") + 1)
        next }
      { printf "%s\t%s\t%s%s\n", (t == "" ? "0" : t), seq, tag, $0 }'
  done | sort -s -t "$(printf '\t')" -k1,1 | cut -f3-
}

# The hints are not folded: the terminal wraps a long one itself, so that a
# command copied from it stays one line. Everything goes out in one write
# after clearing the pane, which tmux shows without flicker.
redraw() {
  local rows cols line n=0 out=""
  read -r rows cols < <(stty size 2>/dev/null) || return 0
  [ "${rows:-0}" -gt 0 ] && [ "${cols:-0}" -gt 0 ] || return 0
  while IFS= read -r line; do
    n=$((n + (${#line} > 0 ? (${#line} + cols - 1) / cols : 1)))
    out+="${out:+$'\n'}"$'\033[1m'"$line"$'\033[0m'
  done < <("$hints_cmd" 2>&1)
  if [ "$n" -lt "$rows" ]; then
    while IFS= read -r line; do
      out+="${out:+$'\n'}$line"
    done < <(log_lines "$@" | tail -n "$((rows - n))" | cut -c "1-$cols")
  fi
  printf '\033[H\033[J%s' "$out"
}

trap '' INT                        # Ctrl-C here would leave a dead pane
printf '\033[?25l'                 # no cursor
while [ ! -e "$done_dir/alice.done" ] || [ ! -e "$done_dir/bob.done" ]; do
  redraw "$@"
  sleep 1
done
