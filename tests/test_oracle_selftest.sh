#!/bin/sh
# tests/test_oracle_selftest.sh - the oracle catches classic mistakes.
#
# Builds keyjournal-oracle (the program behind `keyjournal oracle`) once per
# deliberate bug (KJ_BUG_* switches in the engine, never set in a normal
# build) and runs a short oracle campaign with each: every bug must be
# reported as a divergence (exit 1), and the build with no bug must pass
# (exit 0). Prints TAP.
#
# Needs: CC, the compile and link flags of the build (passed by make as
# KJ_SELFTEST_CFLAGS / KJ_SELFTEST_LIBS), top_srcdir.

: "${top_srcdir:?}"
cc=${CC:-cc}
tmp=$(mktemp -d "${KJ_TEST_TMPDIR:-/tmp}/selftest.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
s=$top_srcdir
srcs="$s/src/engine/*.c $s/src/domain/*.c $s/src/native/*.c $s/oracle/*.c $s/tools/*.c"
for f in harness measure contender_native contender_sqlite report compare; do
  srcs="$srcs $s/bench/$f.c"
done
# Each bug, and the campaign that must catch it.
bugs="NONE PREKEY_RESURRECT LID_CREATED_AT ROLLBACK_COMMITS SKIP_SYNC NO_DIRSYNC SNAPSHOT_DROP_EARLY"
campaign="--seed 11 --workloads 4 --ops 400 --crash sample:30 --kill 0"
n=0
failed=0
inc="-I$s/include -I$s/src -I$s/oracle -I$s/bench"
# Only the files holding KJ_BUG_ switches differ between variants: compile
# the rest once.
bugfiles=$(grep -l 'KJ_BUG_' $srcs)
mkdir -p "$tmp/common"
for f in $srcs; do
  case " $(echo $bugfiles) " in *" $f "*) continue ;; esac
  o=$tmp/common/$(echo "$f" | tr '/' '_').o
  # shellcheck disable=SC2086
  $cc -std=c11 -D_GNU_SOURCE $KJ_SELFTEST_CFLAGS $inc \
    -c "$f" -o "$o" >>"$tmp/cc.log" 2>&1 || echo "$f" >>"$tmp/cc.failed"
done
for bug in $bugs; do
  n=$((n + 1))
  exe=$tmp/kj-$bug
  def=
  [ "$bug" = NONE ] || def=-DKJ_BUG_$bug
  mkdir -p "$tmp/$bug"
  ok_build=1
  [ -f "$tmp/cc.failed" ] && ok_build=0
  for f in $bugfiles; do
    # shellcheck disable=SC2086
    $cc -std=c11 -D_GNU_SOURCE $def $KJ_SELFTEST_CFLAGS \
      $inc -c "$f" -o "$tmp/$bug/$(echo "$f" | tr '/' '_').o" \
      >>"$tmp/cc.log" 2>&1 || ok_build=0
  done
  # shellcheck disable=SC2086
  if [ "$ok_build" = 1 ] && ! $cc $KJ_SELFTEST_CFLAGS "$tmp"/common/*.o \
    "$tmp/$bug"/*.o -o "$exe" $KJ_SELFTEST_LIBS >>"$tmp/cc.log" 2>&1; then
    ok_build=0
  fi
  if [ "$ok_build" = 0 ]; then
    echo "not ok $n - build with $bug"
    sed 's/^/#   /' "$tmp/cc.log" | tail -20
    failed=$((failed + 1))
    continue
  fi
  # shellcheck disable=SC2086
  "$exe" oracle $campaign >"$tmp/out" 2>&1
  rc=$?
  last=$(tail -n 1 "$tmp/out")
  if [ "$bug" = NONE ]; then
    want=0
    what="no bug: the campaign passes"
  else
    want=1
    what="KJ_BUG_$bug is caught"
  fi
  if [ "$want" -eq 1 ] && ! grep -q '^reproduce: keyjournal oracle --seed' "$tmp/out"; then
    echo "not ok $n - $what: no reproducer command printed"
    failed=$((failed + 1))
  elif [ "$rc" -eq "$want" ]; then
    echo "ok $n - $what ($last)"
  else
    echo "not ok $n - $what (exit $rc, want $want)"
    sed 's/^/#   /' "$tmp/out" | tail -20
    failed=$((failed + 1))
  fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
