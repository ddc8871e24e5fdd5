#!/bin/sh
# tests/test_layers.sh - every dependency of the library points down
# (tools/layers.sh over the objects of this build, doc/ARCHITECTURE.md),
# and the checker itself sees an upward edge when one is planted.
# Prints TAP. Needs top_srcdir and top_builddir (set by `make check`).

: "${top_srcdir:?}" "${top_builddir:?}"
. "$top_srcdir/tests/tap.sh"
tap_init layers

layers() { sh "$top_srcdir/tools/layers.sh" "$@"; }

show_on_fail() { sed 's/^/#   /' "$tmp/out"; }
tap_on_fail() { show_on_fail; }

# The tree as built: no cycle, no upward edge.
layers -q "$top_srcdir" "$top_builddir" >"$tmp/out" 2>&1
rc=$?
check "the tree has no upward edge and no cycle" [ "$rc" -eq 0 ]
check "the listing counts its edges" grep -q '^layers: [1-9][0-9]* edges, 0 pointing up' "$tmp/out"
layers "$top_srcdir" "$top_builddir" >"$tmp/out" 2>&1
check "the engine's commit path is listed (txn -> journal)" \
  grep -q '^src/engine/txn\.c -> src/engine/journal\.[ch] ' "$tmp/out"
check "the command links nothing of the oracle" \
  sh -c '! grep -q "^src/cli/.* -> \(oracle\|bench\)/" "$1"' sh "$tmp/out"

# A planted upward edge, in a copy of the tree's sources: a map include in
# the lowest layer, which the rank table must refuse.
mkdir -p "$tmp/tree"
(cd "$top_srcdir" && tar cf - src include oracle bench tools 2>/dev/null) |
  (cd "$tmp/tree" && tar xf -)
printf '#include "engine/txn.h"\n#include "engine/store.c"\n' >>"$tmp/tree/src/common/codec.h"
layers -q "$tmp/tree" "$top_builddir" >"$tmp/out" 2>&1
rc=$?
check "a planted include from src/common up into the engine is refused" \
  [ "$rc" -eq 1 ]
check "... and named" grep -q '^UPWARD: src/common/codec\.h -> src/engine/store\.c' "$tmp/out"
printf '#include "oracle.h"\n' >>"$tmp/tree/src/engine/map.c"
layers -q "$tmp/tree" "$top_builddir" >"$tmp/out" 2>&1
check "a planted include of the oracle from src/ is refused" \
  grep -q '^UPWARD: src/engine/map\.c -> oracle/oracle\.h.*src/ depends on' "$tmp/out"
tap_done
