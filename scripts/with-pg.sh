#!/bin/sh
# with-pg.sh CMD [ARG...] — runs CMD with a throwaway PostgreSQL cluster:
# starts one (scripts/pg-temp.sh), exports CHAT_TEST_PG=<its URL> and
# CHAT_TEST_PG_DIR=<its directory> (for fault tests: pg-temp.sh down/up,
# the postmaster's pid in DIR/data/postmaster.pid), runs CMD,
# stops and removes the cluster whatever happens, and exits with CMD's status.
set -u
[ $# -ge 1 ] || { echo "usage: with-pg.sh CMD [ARG...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-pg.XXXXXX") || exit 1
cleaned=0
child=""
cleanup() {
  [ "$cleaned" -eq 1 ] && return
  cleaned=1
  "$here/pg-temp.sh" stop "$dir" || echo "with-pg.sh: could not clean up $dir" >&2
}
# A signal stops CMD too (by its pid), then the cluster. CMD runs in the
# background because sh runs traps only after a foreground command ends,
# while `wait` returns at once.
on_signal() {
  [ -n "$child" ] && kill -"$1" "$child" 2>/dev/null && wait "$child"
  cleanup
  exit "$2"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

url=$("$here/pg-temp.sh" start "$dir") || { echo "with-pg.sh: no cluster" >&2; exit 1; }
CHAT_TEST_PG=$url
CHAT_TEST_PG_DIR=$dir
export CHAT_TEST_PG CHAT_TEST_PG_DIR
echo "with-pg.sh: PostgreSQL at $url" >&2
exec 3<&0                       # an async command's stdin would be /dev/null
"$@" 0<&3 3<&- &
child=$!
wait "$child"
rc=$?
child=""
exit "$rc"
