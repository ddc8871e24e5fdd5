#!/bin/sh
# tests/test_oracle_selftest.sh - the oracle catches classic mistakes.
#
# Each file tests/mutants/NAME.patch plants one deliberate bug (its first
# line says which). For each, this applies the patch to a copy of the
# sources, builds keyjournal-oracle (the program behind `keyjournal
# oracle`) from that copy, and runs a short oracle campaign: every mutant
# must be reported as a divergence (exit 1, with a reproducer), and the
# build of the unpatched copy must pass (exit 0). The library's own
# sources hold no trace of the bugs. Prints TAP.
#
# Needs: CC, the compile and link flags of the build (passed by make as
# KJ_SELFTEST_CFLAGS / KJ_SELFTEST_LIBS), top_srcdir, patch(1).
# KJ_MUTANTS="a b" limits the run to those mutants (file names without
# .patch).

: "${top_srcdir:?}"
cc=${CC:-cc}
tmp=$(mktemp -d "${KJ_TEST_TMPDIR:-/tmp}/selftest.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
s=$top_srcdir
campaign="--seed 11 --workloads 4 --ops 400 --crash sample:30 --kill 0"
n=0
failed=0

# The sources of keyjournal-oracle, relative to the top of the tree: the
# library's, the oracle's, the benchmark's and the program's own.
(cd "$s" && ls src/engine/*.c src/common/*.c src/domain/*.c src/native/*.c \
  oracle/*.c tools/*.c 2>/dev/null) >"$tmp/srcs"
for f in harness measure contender_native contender_sqlite sqlcipher kv kvreport \
  report compare; do
  [ -f "$s/bench/$f.c" ] && echo "bench/$f.c" >>"$tmp/srcs"
done

# A pristine copy, compiled once; a mutant recompiles only what its patch
# changes.
mkdir -p "$tmp/tree" "$tmp/obj"
(cd "$s" && find src include oracle bench tools -name '*.[ch]' -print |
  tar cf - -T -) | (cd "$tmp/tree" && tar xf -)
obj_of() { echo "$1" | tr '/' '_' | sed 's/\.c$/.o/'; }
compile() { # compile TREE FILE OUT
  # shellcheck disable=SC2086
  $cc -std=c11 -D_GNU_SOURCE $KJ_SELFTEST_CFLAGS -I"$1/include" -I"$1/src" \
    -I"$1/oracle" -I"$1/bench" -I"$1/tools" -c "$1/$2" -o "$3" >>"$tmp/cc.log" 2>&1
}
build_ok=1
while read -r f; do
  compile "$tmp/tree" "$f" "$tmp/obj/$(obj_of "$f")" || build_ok=0
done <"$tmp/srcs"

mutants=
if [ -n "${KJ_MUTANTS:-}" ]; then
  for m in $KJ_MUTANTS; do mutants="$mutants $s/tests/mutants/$m.patch"; done
else
  mutants=$(ls "$s"/tests/mutants/*.patch)
fi

for m in NONE $mutants; do
  n=$((n + 1))
  name=$(basename "$m" .patch)
  exe=$tmp/kj-$name
  ok_build=$build_ok
  objs=
  if [ "$m" != NONE ]; then
    rm -rf "$tmp/m"
    mkdir -p "$tmp/m" "$tmp/mobj"
    cp -R "$tmp/tree/." "$tmp/m/"
    if ! patch -d "$tmp/m" -p1 -s --no-backup-if-mismatch <"$m" >"$tmp/patch.log" 2>&1; then
      {
        echo "not ok $n - mutant $name: the patch no longer applies (refresh it)"
        sed 's/^/#   /' "$tmp/patch.log" | tail -10
      } >"$tmp/res.$n"
      continue
    fi
    rm -f "$tmp/mobj"/*.o
    changed=0
    while read -r f; do
      if ! cmp -s "$tmp/tree/$f" "$tmp/m/$f"; then
        changed=$((changed + 1))
        compile "$tmp/m" "$f" "$tmp/mobj/$(obj_of "$f")" || ok_build=0
      fi
    done <"$tmp/srcs"
    if [ "$changed" -eq 0 ]; then
      echo "not ok $n - mutant $name changes no source of keyjournal-oracle" >"$tmp/res.$n"
      continue
    fi
  fi
  while read -r f; do
    o=$(obj_of "$f")
    if [ "$m" != NONE ] && [ -f "$tmp/mobj/$o" ]; then
      objs="$objs $tmp/mobj/$o"
    else
      objs="$objs $tmp/obj/$o"
    fi
  done <"$tmp/srcs"
  # shellcheck disable=SC2086
  if [ "$ok_build" = 1 ] && ! $cc $KJ_SELFTEST_CFLAGS $objs -o "$exe" \
    $KJ_SELFTEST_LIBS >>"$tmp/cc.log" 2>&1; then
    ok_build=0
  fi
  if [ "$ok_build" = 0 ]; then
    {
      echo "not ok $n - build of $name"
      sed 's/^/#   /' "$tmp/cc.log" | tail -20
    } >"$tmp/res.$n"
    continue
  fi
  echo "$n $name $m" >>"$tmp/runs"
done

# The campaigns, two at a time (they are independent; each is one
# process), so the self-test stays well inside the per-test time limit.
: >>"$tmp/runs"
running=0
while read -r i name m; do
  # shellcheck disable=SC2086
  ("$tmp/kj-$name" oracle $campaign >"$tmp/out.$i" 2>&1
  echo $? >"$tmp/rc.$i") &
  running=$((running + 1))
  if [ "$running" -ge 2 ]; then
    wait
    running=0
  fi
done <"$tmp/runs"
wait
while read -r i name m; do
  rc=$(cat "$tmp/rc.$i" 2>/dev/null || echo 99)
  last=$(tail -n 1 "$tmp/out.$i")
  if [ "$m" = NONE ]; then
    want=0
    what="no mutant: the campaign passes"
  else
    want=1
    what="mutant $name is caught"
  fi
  if [ "$want" -eq 1 ] && ! grep -q '^reproduce: keyjournal oracle --seed' "$tmp/out.$i"; then
    echo "not ok $i - $what: no reproducer command printed"
  elif [ "$rc" -eq "$want" ]; then
    echo "ok $i - $what ($last)"
  else
    echo "not ok $i - $what (exit $rc, want $want)"
    sed 's/^/#   /' "$tmp/out.$i" | tail -20
  fi >"$tmp/res.$i"
done <"$tmp/runs"
i=1
while [ "$i" -le "$n" ]; do
  cat "$tmp/res.$i"
  grep -q '^not ok' "$tmp/res.$i" && failed=$((failed + 1))
  i=$((i + 1))
done

# The library's sources carry no switch for the deliberate bugs.
n=$((n + 1))
if grep -rl 'KJ_BUG_' "$s/src" >"$tmp/seams" 2>/dev/null; then
  echo "not ok $n - no KJ_BUG_ switch left in src/: $(tr '\n' ' ' <"$tmp/seams")"
  failed=$((failed + 1))
else
  echo "ok $n - no KJ_BUG_ switch left in src/"
fi
echo "1..$n"
[ "$failed" -eq 0 ]
