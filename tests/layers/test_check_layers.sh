#!/bin/bash
# test_check_layers.sh — scripts/check-layers.sh must pass on the tree and
# fail on a planted upward include, a planted sibling include, a planted
# upward call (compiled objects), a blocking store call from a module that
# serves, the sweep including the types header, and a file it cannot place
# in a layer.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
check=$top/scripts/check-layers.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
expect() {   # expect NAME WANT_RC GREP_PATTERN -- command...
    local name=$1 want=$2 pat=$3; shift 4
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -eq "$want" ] && { [ -z "$pat" ] || grep -q -- "$pat" <<<"$out"; }; then
        pass=$((pass + 1)); echo "ok   $name"
    else
        fail=$((fail + 1)); echo "FAIL $name (exit $rc, wanted $want and /$pat/)"; echo "$out" | head -20
    fi
}
copy_tree() { rm -rf "$tmp/t"; mkdir -p "$tmp/t"; cp -r "$top/server" "$top/shared" "$tmp/t/"; }

expect "the tree keeps the rule" 0 "" -- "$check" --root "$top"

copy_tree
echo '#include "http_api.h"' >> "$tmp/t/server/feed.c"
expect "an upward include fails" 1 'server/feed.c (layer 1) includes server/http_api.h (layer 3)' \
    -- "$check" --root "$tmp/t"

copy_tree
echo '#include "feed.h"' >> "$tmp/t/server/auth.c"
expect "a sibling include fails" 1 'server/auth.c (layer 1) includes server/feed.h (layer 1)' \
    -- "$check" --root "$tmp/t"

# The sweep sees only an opaque struct server: server.h (which embeds the
# sweep's links) must stay out of it, or the two would include each other.
copy_tree
echo '#include "server.h"' >> "$tmp/t/server/sweep.c"
expect "the sweep including the types fails" 1 'server/sweep.c (layer 0) includes server/server.h (layer 0)' \
    -- "$check" --root "$tmp/t"

copy_tree
echo 'int x;' > "$tmp/t/server/newthing.c"
expect "a file in no layer is refused" 2 'server/newthing.c is in no layer' \
    -- "$check" --root "$tmp/t"

# Calls: two tiny objects, feed.c calling into http_api.c, then the reverse.
mkdir -p "$tmp/c/server" "$tmp/c/shared" "$tmp/c/obj/server"
printf 'void http_wake(void);\nvoid feed_f(void) { http_wake(); }\n' > "$tmp/c/server/feed.c"
printf 'void http_wake(void) {}\n' > "$tmp/c/server/http_api.c"
cc -c -o "$tmp/c/obj/server/feed.o" "$tmp/c/server/feed.c"
cc -c -o "$tmp/c/obj/server/http_api.o" "$tmp/c/server/http_api.c"
expect "an upward call fails" 1 'server/feed.c (layer 1) calls http_wake of server/http_api.c (layer 3)' \
    -- "$check" --root "$tmp/c" --objs "$tmp/c/obj"
# A blocking store call from a module that serves.
printf 'int store_user_get(void);\nint transfers_f(void) { return store_user_get(); }\n' > "$tmp/c/server/transfers.c"
printf 'int store_user_get(void) { return 0; }\n' > "$tmp/c/server/store.c"
cc -c -o "$tmp/c/obj/server/transfers.o" "$tmp/c/server/transfers.c"
cc -c -o "$tmp/c/obj/server/store.o" "$tmp/c/server/store.c"
expect "a blocking store call while serving fails" 1 'server/transfers.c calls store_user_get, which blocks' \
    -- "$check" --root "$tmp/c" --objs "$tmp/c/obj"
rm -f "$tmp/c/server/transfers.c" "$tmp/c/server/store.c" "$tmp/c/obj/server/transfers.o" "$tmp/c/obj/server/store.o"
printf 'void feed_f(void) {}\n' > "$tmp/c/server/feed.c"
printf 'void feed_f(void);\nvoid http_wake(void) { feed_f(); }\n' > "$tmp/c/server/http_api.c"
cc -c -o "$tmp/c/obj/server/feed.o" "$tmp/c/server/feed.c"
cc -c -o "$tmp/c/obj/server/http_api.o" "$tmp/c/server/http_api.c"
expect "a downward call passes" 0 "" -- "$check" --root "$tmp/c" --objs "$tmp/c/obj"

# Names: a header name in two folders, a global symbol in two libraries.
names=$top/scripts/check-names.sh
expect "the tree uses each header name once" 0 "" -- "$names" --root "$top"
mkdir -p "$tmp/n/server" "$tmp/n/client"
touch "$tmp/n/server/auth.h" "$tmp/n/client/auth.h"
expect "a header name in two folders fails" 1 'header auth.h exists in more than one' \
    -- "$names" --root "$tmp/n"
printf 'int auth_start(void) { return 0; }\n' > "$tmp/n/a.c"
cp "$tmp/n/a.c" "$tmp/n/b.c"
rm "$tmp/n/client/auth.h"
cc -c -o "$tmp/n/a.o" "$tmp/n/a.c" && ar rcs "$tmp/n/liba.a" "$tmp/n/a.o"
cc -c -o "$tmp/n/b.o" "$tmp/n/b.c" && ar rcs "$tmp/n/libb.a" "$tmp/n/b.o"
expect "a symbol in two libraries fails" 1 'symbol auth_start is defined in more than one library' \
    -- "$names" --root "$tmp/n" --libs "$tmp/n/liba.a $tmp/n/libb.a"

echo "check-layers: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
