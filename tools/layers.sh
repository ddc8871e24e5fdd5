#!/bin/sh
# tools/layers.sh - the dependency listing of the library, made from the
# code, and the check that every dependency points down.
#
#   tools/layers.sh [-q] [SRCDIR [BUILDDIR]]
#
# Edges come from two places: the `#include "..."` lines of every file
# under src/, and the calls between files, read from the compiled objects
# (a file A depends on a file B when A's object uses a symbol that B's
# object defines: `nm -u` against `nm --defined-only`). Calls through a
# table of function pointers (a backend's operations, a VFS) are not
# edges: that is what the tables are for.
#
# Every file under src/ has a rank (the table below: a folder's rank, or a
# file's own inside the engine). An edge must go from a higher rank to a
# strictly lower one, so no cycle is possible; a file and its own header
# are one unit. The domain and the native backend may use only the public
# engine API (exported symbols, no engine header). Nothing in src/ may
# include or call oracle/ or
# bench/, and oracle/ and bench/ may use only the installed headers and
# the symbols the shared library exports (libkeyjournal.sym).
#
# Prints every edge as "FROM -> TO  [include|call: symbols]" (-q: only the
# violations), then one summary line. Exit status 0 when every edge points
# down, 1 when one does not, 2 when the objects are missing (build first).
# doc/ARCHITECTURE.md explains the layers.
set -u
quiet=0
if [ "${1:-}" = -q ]; then
  quiet=1
  shift
fi
src=${1:-.}
build=${2:-$src}

# Rank of a file (a pattern without .c/.h matches both), first match wins. Higher
# calls lower; doc/ARCHITECTURE.md draws the same table.
ranks='
src/cli/main.c          95  the command table and dispatch
src/cli/cmd_*.c         90  one file per command
src/cli/readonly.c      87  helpers of the commands, in the order
src/cli/args.c          86  they call each other
src/cli/keysrc.c        85
src/cli/usage.c         84
src/cli/messages.c      83
src/cli/*.h             82  their declarations
src/cli/*.c             81
src/signal_adapter/*    85  libkeyjournal-signal: the libsignal stores on the domain
src/domain/backend.c    78  the backend handle and the argument checks
src/domain/dispatch.h   77  their declarations
src/domain/*            80  the public domain functions
src/native/native.c     76  the native backend: open, the operations table
src/native/*.h          69  declarations shared by the native stores
src/native/rows.c       70  helpers shared by the native stores
src/native/*            72  the native stores
src/engine/store        60
src/engine/txn          59
src/engine/checkpoint   58
src/engine/handle       57
src/engine/overlay      56  the committed rows: an overlay over the run
src/engine/run          55  run files: blocks, index, footer (FORMAT.md 6A)
src/engine/snapshot     54
src/engine/journal      53
src/engine/body         50
src/engine/map          48
src/engine/bcache       47  the block cache of run files (secmem only)
src/engine/durable      46
src/engine/crypto       44
src/engine/vfs_posix    43
src/engine/errors       42
src/engine/secmem       41  row memory kept out of core dumps
src/engine/errbuf       40
src/engine/*            41  a new engine file must be placed in this table
src/common/rowcodec     12
src/common/*            10
include/*                0  declarations only
'
tmp=$(mktemp -d "${TMPDIR:-/tmp}/layers.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# --- include edges --------------------------------------------------------
# Resolve "x" against the including file's folder, then src/, include/,
# oracle/, bench/, tools/. One awk pass over every file.
(cd "$src" && find src include oracle bench tools -name '*.[ch]' 2>/dev/null |
  LC_ALL=C sort) >"$tmp/all"
grep -v '^include/' "$tmp/all" >"$tmp/files"
(cd "$src" && xargs awk -v all="$tmp/all" '
  function norm(p,   n, i, parts, out, k) {
    n = split(p, parts, "/"); k = 0
    for (i = 1; i <= n; i++) {
      if (parts[i] == "." || parts[i] == "") continue
      if (parts[i] == ".." && k > 0) { k--; continue }
      out[++k] = parts[i]
    }
    p = out[1]; for (i = 2; i <= k; i++) p = p "/" out[i]
    return p
  }
  BEGIN { while ((getline l < all) > 0) have[l] = 1 }
  /^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
    d = FILENAME; sub(/\/[^\/]*$/, "", d)
    split(d "/" inc "|src/" inc "|include/" inc "|oracle/" inc "|bench/" inc "|tools/" inc, cand, "|")
    for (i = 1; i <= 6; i++) { c = norm(cand[i]); if (c in have) { print FILENAME, c; break } }
  }' <"$tmp/files") >"$tmp/includes"

# --- call edges -----------------------------------------------------------
# Objects of the library and of the commands; the name of an object is
# PROGRAM-BASE.o next to its source (automake), or under .libs/ (libtool).
objs=$(cd "$build" && find src oracle bench tools -name '*.o' 2>/dev/null |
  grep -v -e 'fuzz_' -e 'sqlcipher' | LC_ALL=C sort)
lib_objs=$(echo "$objs" | grep '^src/' | grep -v '/\.libs/' | grep 'libkjcore_la-')
[ -n "$lib_objs" ] || lib_objs=$(echo "$objs" | grep '^src/.*/\.libs/libkjcore_la-')
if [ -z "$lib_objs" ]; then
  echo "layers: no library objects under $build/src (build first)" >&2
  exit 2
fi
other_objs=$(echo "$objs" | grep -v '/\.libs/' | grep -v '^src/.*libkjcore_la-')
# OBJECT UNIT, where src/engine/libkjcore_la-map.o is src/engine/map.c; an
# object whose source is gone is left over from an earlier build.
for o in $lib_objs $other_objs; do echo "$o"; done |
  awk -v all="$tmp/all" 'BEGIN { while ((getline l < all) > 0) have[l] = 1 }
    { d = $1; sub(/\/[^\/]*$/, "", d); sub(/\/\.libs$/, "", d)
      b = $1; sub(/^.*\//, "", b); sub(/\.o$/, "", b); sub(/^.*-/, "", b)
      u = d "/" b ".c"; if (u in have) print $1, u }' >"$tmp/objunits"
live=$(awk '{print $1}' "$tmp/objunits")
if [ -n "$live" ]; then
  # shellcheck disable=SC2086
  (cd "$build" && nm -A --defined-only -g $live 2>/dev/null) >"$tmp/nmdef"
  # shellcheck disable=SC2086
  (cd "$build" && nm -A -u $live 2>/dev/null) >"$tmp/nmuse"
else
  : >"$tmp/nmdef"
  : >"$tmp/nmuse"
fi
# "obj.o: ... SYMBOL" lines to "SYMBOL UNIT".
to_units() {
  awk -v map="$tmp/objunits" 'BEGIN { while ((getline l < map) > 0) { split(l, f, " "); u[f[1]] = f[2] } }
    { o = $1; sub(/:.*$/, "", o); if (o in u) print $NF, u[o] }' "$1" | LC_ALL=C sort -u
}
to_units "$tmp/nmdef" >"$tmp/defs"
to_units "$tmp/nmuse" >"$tmp/uses"
# symbol user definer; a symbol defined twice (a library file and a test
# copy) keeps the library's definition.
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 {print $2, $3, $1}' |
  LC_ALL=C sort -u >"$tmp/calls"

# --- exports of the shared library ----------------------------------------
exports=$build/libkeyjournal.sym
[ -f "$exports" ] || exports=/dev/null

# --- judge ----------------------------------------------------------------
{
  awk '{print $1, $2, "include", "-"}' "$tmp/includes"
  awk '{print $1, $2, "call", $3}' "$tmp/calls"
} | LC_ALL=C sort -u |
  awk '{k=$1" "$2" "$3; if (k in s) s[k]=s[k]","$4; else {s[k]=$4; o[++n]=k}}
       END {for (i=1;i<=n;i++) print o[i], s[o[i]]}' >"$tmp/pairs"
printf '%s\n' "$ranks" | awk 'NF >= 2 {print $1, $2}' >"$tmp/ranks"
awk -v quiet="$quiet" -v exports="$exports" -v ranks="$tmp/ranks" '
function unit(p) { sub(/\.[ch]$/, "", p); return p }
function glob(pat, s,   re) {
  re = pat; gsub(/\./, "\\.", re); gsub(/\*/, ".*", re)
  return s ~ ("^" re "$")
}
function rank(p,   i) {
  for (i = 1; i <= nr; i++) if (glob(rp[i], p) || glob(rp[i], unit(p))) return rv[i]
  return -1
}
BEGIN {
  while ((getline l < ranks) > 0) { split(l, f, " "); rp[++nr] = f[1]; rv[nr] = f[2] }
  while ((getline l < exports) > 0) exp_[l] = 1
}
{
  from = $1; to = $2; kind = $3; syms = $4
  fu = unit(from); tu = unit(to)
  if (fu == tu) next
  why = ""
  if (from ~ /^src\//) {
    if (to ~ /^(oracle|bench|tools)\//) why = "src/ depends on " to
    else {
      fr = rank(from); tr = rank(to)
      if (fr < 0 || tr < 0) why = "has no rank"
      else if (tr >= fr) why = "points up or sideways (rank " fr " -> " tr ")"
      else if (from ~ /^src\/(native|domain)\// && to ~ /^src\/engine\//) {
        # Above the engine, only its public API.
        if (kind == "include") why = "includes an engine internal header"
        else {
          n = split(syms, sy, ",")
          for (i = 1; i <= n; i++)
            if (!(sy[i] in exp_)) why = "calls " sy[i] ", which is not the public engine API"
        }
      }
    }
  } else if (from ~ /^(oracle|bench|tools)\// && to ~ /^src\//) {
    # The one shared text: the usage of oracle and bench, printed by both
    # keyjournal and keyjournal-oracle (string macros only).
    if (kind == "include" && to == "src/cli/usage_oracle.h" && from ~ /^tools\//) why = ""
    else if (kind == "include") why = "uses a header of the library internals"
    else {
      n = split(syms, sy, ",")
      for (i = 1; i <= n; i++)
        if (!(sy[i] in exp_)) why = "uses " sy[i] ", which the library does not export"
    }
  } else if (from ~ /^include\// && to !~ /^include\//)
    why = "a public header includes " to
  edges++
  line = from " -> " to "  [" kind (syms == "-" ? "" : ": " syms) "]"
  if (why != "") { bad++; print "UPWARD: " line ": " why }
  else if (!quiet) print line
}
END { printf "%d %d\n", edges, bad > "/dev/stderr" }
' "$tmp/pairs" 2>"$tmp/count"
read -r nedges bad <"$tmp/count"

# A second opinion on cycles, over units: tsort reports any loop.
awk '{print $1, $2}' "$tmp/pairs" |
  awk '$1 != $2' >"$tmp/unit_edges"
if ! tsort "$tmp/unit_edges" >/dev/null 2>"$tmp/tsort"; then
  bad=$((bad + 1))
  echo "CYCLE:"
  cat "$tmp/tsort"
fi
echo "layers: $nedges edges, $bad pointing up or in a cycle"
[ "$bad" -eq 0 ]
