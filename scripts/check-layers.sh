#!/bin/bash
# check-layers.sh — enforces the server's layering rule (docs/ARCHITECTURE.md):
# a module uses only modules of lower layers, and a sibling of its own layer
# only where ALLOWED below names the pair. Two checks:
#   includes: every #include "x.h" in shared/ and server/ (always);
#   calls:    every symbol a server or shared object file takes from another
#             one (with --objs DIR, the build's obj/ folder: nm -u against
#             nm --defined-only), which also catches a call made through a
#             declaration in a lower header.
# Usage: scripts/check-layers.sh [--root DIR] [--objs DIR]
# Prints one line per violation and exits 1 if there is any; exits 2 on a
# file it cannot place in a layer (a new file must be added to LAYER).
set -euo pipefail

root=.
objs=
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --objs) objs=$2; shift 2 ;;
        *) echo "usage: $0 [--root DIR] [--objs DIR]" >&2; exit 2 ;;
    esac
done

# Layer of each file, lowest first. The bottom layer holds the mechanisms
# that know no connection: the wire protocol, the wall clock, the stores,
# the limiter, the password hashing, the audit log, the client address a
# trusted proxy forwards, the sweep (deadlines
# with a callback each), WebSocket text framing, the web client's embedded
# files (web_files) and the browser rules (browser: session cookie, same
# origin). Headers of a module
# share its layer;
# server.h and session.h hold only types shared by every layer, so they sit
# at the bottom while server.c (the dispatcher) sits at the top.
declare -A LAYER=(
    [shared/protocol.h]=0 [shared/protocol.c]=0 [shared/utf8.c]=0
    [shared/money.h]=0 [shared/money.c]=0
    [shared/proto_rooms.h]=0 [shared/proto_rooms.c]=0
    [server/server.h]=0 [server/session.h]=0 [server/clock.h]=0 [server/clock.c]=0
    [server/store.h]=0 [server/store.c]=0 [server/store_sqlite.c]=0
    [server/store_pg.c]=0 [server/pg_conn.h]=0 [server/pg_conn.c]=0
    [server/store_thread.h]=0 [server/store_thread.c]=0
    [server/limiter.h]=0 [server/limiter.c]=0
    [server/pwhash.h]=0 [server/pwhash.c]=0
    [server/audit.h]=0 [server/audit.c]=0
    [server/forwarded.h]=0 [server/forwarded.c]=0
    [server/sweep.h]=0 [server/sweep.c]=0
    [server/ws_frame.h]=0 [server/ws_frame.c]=0
    [server/web_files.h]=0 [server/web_files.c]=0
    [server/browser.h]=0 [server/browser.c]=0
    [server/rooms.h]=1 [server/rooms.c]=1
    [server/feed.h]=1 [server/feed.c]=1
    [server/auth.h]=1 [server/auth.c]=1
    [server/presence.h]=1 [server/presence.c]=1
    [server/ws_beat.h]=2 [server/ws_beat.c]=2
    [server/ws_out.h]=2 [server/ws_out.c]=2
    [server/http_api.h]=3 [server/http_api.c]=3
    [server/http_reject.h]=3 [server/http_reject.c]=3
    [server/ws_api.h]=3 [server/ws_api.c]=3
    [server/sse_api.h]=3 [server/sse_api.c]=3
    [server/transfers.h]=3 [server/transfers.c]=3
    [server/server.c]=4 [server/dispatch.h]=4 [server/main.c]=4
)
# Files whose module is not their base name: the implementations of one
# header, the types header (server.h is not server.c's) and server.c's own
# header (dispatch.h: the protocol callback).
declare -A MODULE=(
    [shared/utf8.c]=protocol [shared/proto_rooms.h]=protocol [shared/proto_rooms.c]=protocol
    [server/store_sqlite.c]=store [server/store_pg.c]=store
    [server/pg_conn.h]=store [server/pg_conn.c]=store
    [server/store_thread.h]=store [server/store_thread.c]=store
    [server/server.h]=types [server/session.h]=types
    [server/dispatch.h]=server
)
# Siblings (same layer) one may use: "user>used", by module name, each for
# a reason:
#   *>protocol, protocol>money  shared/ is the wire format every layer
#                               speaks: the bottom layer may use it too
#   types>sweep      a session embeds its deadlines (struct sweep_link and
#                    sweep_timer), so server.h needs their definitions;
#                    sweep.c in turn sees only an opaque struct server
#   sweep>clock      absolute deadlines are wall-clock times (now_ms)
#   http_api>transfers  POST /api/v1/transfers submits to the bank, which
#                    itself uses no transport
#   http_api>sse_api  GET /api/v1/stream, once authenticated, is handed
#                    to the SSE transport, which keeps the connection
#   feed>rooms       the feed filters and wakes a room's events by its
#                    members (rooms.c keeps who they are, from the
#                    member events the feed hands it)
#   presence>rooms   typing and a room's presence list reach the room's
#                    members, whom the room index (rooms.c) knows
#   main>server      main.c names the protocol callback (dispatch.h) in
#                    the lws protocol table
ALLOWED=" store>protocol pwhash>protocol browser>protocol limiter>protocol audit>protocol
          types>protocol protocol>money types>sweep sweep>clock
          http_api>transfers http_api>sse_api feed>rooms presence>rooms main>server "
ALLOWED=" $(echo $ALLOWED) "     # one space between pairs, whatever the lines
# Generated headers (embedded SQL) belong to the file that includes them.
GENERATED=" migrations.h pg_migrations.h web_assets.h "

bad=0
module_of() {
    local b=${1##*/}
    if [ -n "${MODULE[$1]+x}" ]; then echo "${MODULE[$1]}"; else echo "${b%.*}"; fi
}
# Where a bare include name lives: the folders are on the include path.
file_of_header() {
    local h=$1 d
    for d in shared server; do
        [ -e "$root/$d/$h" ] && { echo "$d/$h"; return; }
    done
    for d in shared server; do         # a header named in LAYER, not yet written
        [ -n "${LAYER[$d/$h]+x}" ] && { echo "$d/$h"; return; }
    done
    echo ""
}
layer_of() {
    local f=$1
    if [ -z "${LAYER[$f]+x}" ]; then
        echo "check-layers: $f is in no layer; add it to LAYER in $0" >&2
        exit 2
    fi
    echo "${LAYER[$f]}"
}
# Is "user uses used" allowed? Same module, a lower layer, or a listed sibling.
may_use() {
    local uf=$1 df=$2 ul dl um dm
    ul=$(layer_of "$uf"); dl=$(layer_of "$df")
    um=$(module_of "$uf"); dm=$(module_of "$df")
    [ "$um" = "$dm" ] && return 0
    [ "$dl" -lt "$ul" ] && return 0
    [ "$dl" -eq "$ul" ] && [[ "$ALLOWED" == *" $um>$dm "* ]] && return 0
    return 1
}

check_includes() {
    local f h df
    for f in "$root"/shared/*.[ch] "$root"/server/*.[ch]; do
        [ -e "$f" ] || continue
        f=${f#"$root"/}
        layer_of "$f" >/dev/null
        while read -r h; do
            [[ "$GENERATED" == *" $h "* ]] && continue
            df=$(file_of_header "$h")
            if [ -z "$df" ]; then
                if [[ "$f" == shared/* ]]; then
                    echo "$f includes \"$h\", which is not in shared/"; bad=1
                fi
                continue
            fi
            if ! may_use "$f" "$df"; then
                echo "$f (layer $(layer_of "$f")) includes $df (layer $(layer_of "$df"))"
                bad=1
            fi
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$root/$f")
    done
}

# The calls check: which object defines each global symbol, then who takes
# which symbol from whom.
check_calls() {
    local o f sym df
    declare -A def=()
    for o in "$objs"/shared/*.o "$objs"/server/*.o; do
        [ -e "$o" ] || continue
        f=${o#"$objs"/}; f=${f%.o}.c
        while read -r sym; do def[$sym]=$f; done \
            < <(nm --defined-only -g "$o" | awk 'NF==3 {print $3}')
    done
    for o in "$objs"/shared/*.o "$objs"/server/*.o; do
        [ -e "$o" ] || continue
        f=${o#"$objs"/}; f=${f%.o}.c
        [ -e "$root/$f" ] || continue       # a stale object of a removed file
        while read -r sym; do
            df=${def[$sym]:-}
            [ -n "$df" ] || continue
            [ -e "$root/$df" ] || continue
            if ! may_use "$f" "$df"; then
                echo "$f (layer $(layer_of "$f")) calls $sym of $df (layer $(layer_of "$df"))"
                bad=1
            fi
        done < <(nm -u "$o" | awk '{print $NF}')
    done
}

# The loop never waits on the database (issue 15): while it serves, the
# server uses only the store's asynchronous calls (store.h). The blocking
# ones are for startup (main.c opens the store; feed_new reads the newest
# id before the first connection), tools and tests: named here, the
# objects that may call them, "file:symbol" or "file:*".
BLOCKING="store_user_create store_user_get store_session_create store_session_lookup
          store_session_touch store_session_delete store_event_append store_events_after
          store_last_event_id store_events_all_after store_begin store_commit store_rollback
          store_account_balance
          store_account_move store_transfer_insert store_transfer_get store_transfer_set_state
          store_transfers_unfinished store_transfer_lock store_transfers_stale
          store_room_members_all"
BLOCKING_OK=" server/main.c:* server/store.c:* server/feed.c:store_last_event_id server/rooms.c:store_room_members_all "
check_blocking() {
    local o f sym
    for o in "$objs"/server/*.o; do
        [ -e "$o" ] || continue
        f=${o#"$objs"/}; f=${f%.o}.c
        [ -e "$root/$f" ] || continue
        while read -r sym; do
            [[ " $(echo $BLOCKING) " == *" $sym "* ]] || continue
            [[ "$BLOCKING_OK" == *" $f:* "* || "$BLOCKING_OK" == *" $f:$sym "* ]] && continue
            echo "$f calls $sym, which blocks on the database: use store_call_async"
            bad=1
        done < <(nm -u "$o" | awk '{print $NF}')
    done
}

check_includes
[ -n "$objs" ] && check_calls
[ -n "$objs" ] && check_blocking
[ "$bad" -eq 0 ] && echo "check-layers: every include and call goes down the layers"
exit "$bad"
