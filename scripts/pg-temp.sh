#!/bin/sh
# pg-temp.sh — throwaway PostgreSQL clusters for tests.
#   pg-temp.sh start DIR         creates a cluster in DIR (new or empty), starts
#                                it on 127.0.0.1 at a free port and on a unix
#                                socket in DIR, waits until it accepts
#                                connections, prints its URL on stdout
#   pg-temp.sh stop DIR          stops it and removes DIR
#   pg-temp.sh createdb URL NAME creates database NAME on the cluster at URL
#   pg-temp.sh down DIR          stops its server (pg_ctl -m fast), keeps DIR
#   pg-temp.sh up DIR            starts it again on the same port, waits
#                                until it accepts connections (fault tests)
# Trust authentication, reachable only from 127.0.0.1 and DIR's socket; never
# use it for data you want to keep. PostgreSQL refuses to run as root, so
# when run as root the server runs as the `postgres` user.
set -eu

die() { echo "pg-temp.sh: $*" >&2; exit 1; }

# The newest installed server's bin dir (Debian: /usr/lib/postgresql/N/bin).
bindir() {
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -n -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  die "no PostgreSQL server found (install the postgresql package: scripts/install-deps.sh)"
}

# Runs a server command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Below Linux's ephemeral range (32768 up), which outgoing connections use.
random_port() {
  n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
  echo $((16000 + n % 16000))
}

# Creates the cluster: superuser "postgres", trust on the socket and on
# 127.0.0.1 only, fsync on.
init_cluster() {
  dir=$1 bin=$2
  as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  cat >"$dir/data/pg_hba.conf" <<EOF
# pg-temp.sh: throwaway test cluster
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
  cat >>"$dir/data/postgresql.conf" <<EOF
# pg-temp.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = on
synchronous_commit = on
logging_collector = off
EOF
}

# Starts the server on port $1; 0 once it accepts connections, 2 if it did
# not come up (e.g. the port is taken), 1 if not ready by the deadline.
try_start() {
  port=$1 dir=$2 bin=$3
  rm -f "$dir/server.log"
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 start \
    >/dev/null 2>&1 || return 2
  deadline=$(($(date +%s) + 30))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2 && return 0
    sleep 0.1
  done
  return 1
}

start() {
  dir=$1
  case $dir in *\'*|*\"*|*\\*) die "DIR must not contain quotes or backslashes";; esac
  mkdir -p "$dir"
  [ -z "$(ls -A "$dir")" ] || die "$dir is not empty"
  dir=$(cd "$dir" && pwd -P)
  bin=$(bindir)
  touch "$dir/pg-temp.marker"
  chmod 700 "$dir"
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir"
  as_owner test -w "$dir" || die "the postgres user cannot write to $dir (check its parents)"
  init_cluster "$dir" "$bin"
  for _ in 1 2 3 4 5 6 7 8; do
    port=$(random_port)
    rc=0; try_start "$port" "$dir" "$bin" || rc=$?
    if [ "$rc" -eq 0 ]; then
      echo "$port" >"$dir/port"
      echo "postgresql://postgres@127.0.0.1:$port/postgres"
      return 0
    fi
    [ "$rc" -eq 2 ] && grep -q "could not bind\|could not create listen socket\|already in use" \
      "$dir/server.log" 2>/dev/null || break
    echo "pg-temp.sh: port $port taken, trying another" >&2
  done
  cat "$dir/server.log" >&2 2>/dev/null || true
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  die "the server did not start (log above)"
}

stop() {
  dir=$1
  [ -d "$dir" ] || return 0
  [ -f "$dir/pg-temp.marker" ] || die "$dir was not made by pg-temp.sh; not removing it"
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null ||
      die "could not stop the server in $dir"
  fi
  rm -rf "$dir"
}

down() {
  dir=$1
  [ -f "$dir/pg-temp.marker" ] || die "$dir was not made by pg-temp.sh"
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

up() {
  dir=$1
  [ -f "$dir/pg-temp.marker" ] || die "$dir was not made by pg-temp.sh"
  try_start "$(cat "$dir/port")" "$dir" "$(bindir)" || { cat "$dir/server.log" >&2; die "could not start it again"; }
}

createdb() {
  url=$1 name=$2
  case $name in ''|*[!A-Za-z0-9_]*) die "database name must be [A-Za-z0-9_]+";; esac
  "$(bindir)/createdb" --maintenance-db="$url" "$name"
}

case "${1:-}" in
  start)    [ $# -eq 2 ] || die "usage: pg-temp.sh start DIR"; start "$2";;
  stop)     [ $# -eq 2 ] || die "usage: pg-temp.sh stop DIR"; stop "$2";;
  down)     [ $# -eq 2 ] || die "usage: pg-temp.sh down DIR"; down "$2";;
  up)       [ $# -eq 2 ] || die "usage: pg-temp.sh up DIR"; up "$2";;
  createdb) [ $# -eq 3 ] || die "usage: pg-temp.sh createdb URL NAME"; createdb "$2" "$3";;
  *)        die "usage: pg-temp.sh start DIR | stop DIR | down DIR | up DIR | createdb URL NAME";;
esac
