#!/bin/sh
# login.sh — the login bench of issue 18: a database holding BENCH_EVENTS
# stored events (tests/bench/seed-events.sh), then chat-bench --login on it.
#   tests/bench/login.sh sqlite [chat-bench flags]   the SQLite file is kept in
#                         $BENCH_OUT/seed-$BENCH_EVENTS.db and reused
#   tests/bench/login.sh pg [chat-bench flags]       a throwaway PostgreSQL
#                         (scripts/with-pg.sh), seeded each time; with
#                         BENCH_PG_URL, that database instead, seeded once
#                         by seed-events.sh and reused
# Knobs: BENCH (bin/chat-bench), BENCH_OUT (build/bench), BENCH_EVENTS
# (1000000), BENCH_LOGINS (10 per transport), BENCH_SEED_FLAGS (seed-events.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BENCH=${BENCH:-$root/bin/chat-bench}
OUT=${BENCH_OUT:-$root/build/bench}
EVENTS=${BENCH_EVENTS:-1000000}
LOGINS=${BENCH_LOGINS:-10}
SEED_FLAGS=${BENCH_SEED_FLAGS:-}
store=${1:-sqlite}
[ $# -gt 0 ] && shift
mkdir -p "$OUT"
case "$store" in
  sqlite)
    db=$OUT/seed-$EVENTS.db
    [ -e "$db" ] || "$here/seed-events.sh" --events "$EVENTS" $SEED_FLAGS "$db"
    exec "$BENCH" --login "$LOGINS" --db "$(cd "$(dirname "$db")" && pwd)/$(basename "$db")" \
      --out "$OUT" --name login-sqlite "$@" ;;
  pg)
    if [ -n "${BENCH_PG_URL:-}" ]; then
      exec "$BENCH" --login "$LOGINS" --db "$BENCH_PG_URL" --out "$OUT" --name login-pg "$@"
    fi
    BENCH_DIR=$here
    export BENCH OUT EVENTS LOGINS SEED_FLAGS BENCH_DIR
    exec "$root/scripts/with-pg.sh" sh -c '
      "$BENCH_DIR/seed-events.sh" --events "$EVENTS" $SEED_FLAGS "$CHAT_TEST_PG" &&
      "$BENCH" --login "$LOGINS" --db "$CHAT_TEST_PG" --out "$OUT" --name login-pg "$@"' login.sh "$@" ;;
  *) echo "usage: login.sh sqlite|pg [chat-bench flags]" >&2; exit 2 ;;
esac
