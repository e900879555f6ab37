#!/bin/bash
# check-docs.sh — every function docs/ARCHITECTURE.md names (written `name()`)
# is defined in server/, client/ or shared/ (a .c file, or a static inline
# in a header), so the map cannot drift from
# the code unnoticed. Exits 1 naming each one that is not.
set -euo pipefail
root=${1:-.}
doc=$root/docs/ARCHITECTURE.md
bad=0
for f in $(grep -o '`[a-z_][a-z_0-9]*()`' "$doc" | tr -d '`()' | sort -u); do
    if ! grep -qE "^[a-z][a-z_0-9 *]*[ *]$f\(" "$root"/server/*.[ch] "$root"/client/*.[ch] \
        "$root"/shared/*.[ch]; then
        echo "docs/ARCHITECTURE.md names $f(), which is defined nowhere"
        bad=1
    fi
done
[ "$bad" -eq 0 ] && echo "check-docs: every function ARCHITECTURE.md names exists"
exit "$bad"
