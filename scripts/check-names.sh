#!/bin/bash
# check-names.sh — one name, one meaning across the tree: no header file name
# in two of server/, client/ and shared/ (a bare #include from outside those
# folders, as in tests/, picks whichever comes first on the include path),
# and, with --libs, no global symbol defined in two of the built libraries
# (the unit tests link the server's and the client's together).
# Usage: scripts/check-names.sh [--root DIR] [--libs "A.a B.a ..."]
set -euo pipefail
root=.
libs=
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --libs) libs=$2; shift 2 ;;
        *) echo "usage: $0 [--root DIR] [--libs \"A.a B.a\"]" >&2; exit 2 ;;
    esac
done
bad=0
while read -r h; do
    echo "header $h exists in more than one of server/, client/, shared/"; bad=1
done < <(for d in server client shared; do ls "$root/$d" 2>/dev/null | grep '\.h$' || true; done | sort | uniq -d)
if [ -n "$libs" ]; then
    # shellcheck disable=SC2086
    while read -r sym; do
        echo "symbol $sym is defined in more than one library"; bad=1
    done < <(for l in $libs; do nm -g --defined-only "$l" 2>/dev/null | awk 'NF==3 {print $3}' | sort -u; done | sort | uniq -d)
fi
[ "$bad" -eq 0 ] && echo "check-names: no header or global symbol name is used twice"
exit "$bad"
