#!/bin/sh
# tests/mutants/run.sh - `make mutants`: how many planted bugs the oracle
# campaign catches, and which test catches the others.
#
# Each tests/mutants/NAME.patch plants one deliberate bug in src/ (its
# first line says which). For each, this applies the patch to a copy of the
# sources, builds keyjournal-oracle from the copy (the pristine copy is
# compiled once; a mutant recompiles only the files its patch changes) and
# runs the quick-start campaign
#
#   keyjournal-oracle oracle --seed 1 --workloads 6 --ops 1000
#                            --crash sample:100 --kill 40
#
# under a timeout. Exit 1 with a reproducer line is "caught"; exit 0 is
# "missed"; the timeout is "hung". For every mutant the campaign does not
# catch, the library's C test programs (tests/test_* of Makefile.am's
# check_PROGRAMS) that exercise the changed files are built from the
# mutated copy and run, in turn, until one fails: that test caught it.
# The first row is the pristine copy, whose campaign must pass (exit 0);
# otherwise the run is aborted.
#
# Prints a table (mutant | campaign | caught by | seconds: when the
# campaign had its first divergence, and its whole run) and the line
# "N mutants, N caught by the campaign, N by tests only, N missed". Exits
# 0 only when the campaign caught every mutant, 1 otherwise, 2 when it
# could not run (the pristine copy fails to build or its campaign fails).
#
# Environment:
#   top_srcdir, CC, KJ_SELFTEST_CFLAGS, KJ_SELFTEST_LIBS  as for
#                             tests/test_oracle_selftest.sh (set by make)
#   KJ_MUTANTS="a b"          only these mutants (file names without .patch)
#   KJ_MUTANTS_SAMPLE=k       a deterministic sample of k mutants (for CI)
#   KJ_MUTANTS_TIMEOUT=s      campaign timeout, default 60 (the pristine
#                             campaign must finish within it too: raise it
#                             on a slow or loaded machine)
#   KJ_MUTANTS_GRACE=s        then SIGKILL after s more seconds, default 10
#   KJ_MUTANTS_TEST_TIMEOUT=s per test program, default 120
#   KJ_MUTANTS_JOBS=n         campaigns run at once, default 2
#   KJ_MUTANTS_NO_TESTS=1     skip the test programs (campaign only)
#   KJ_MUTANTS_CAMPAIGN="..." other campaign options (a quicker check of
#                             this script; the table is meant for the above)
#   KJ_MUTANTS_KEEP=1         keep the scratch directory (path printed)
#   KJ_MUTANTS_TMPDIR         where the scratch directory goes (the
#                             campaigns' stores too: a tmpfs such as
#                             /dev/shm makes their real syncs free, and
#                             the fault VFS models power loss anyway);
#                             else KJ_TEST_TMPDIR, else TMPDIR, else /tmp

: "${top_srcdir:?top_srcdir must name the source tree}"
s=$top_srcdir
cc=${CC:-cc}
limit=${KJ_MUTANTS_TIMEOUT:-60}
grace=${KJ_MUTANTS_GRACE:-10}
test_limit=${KJ_MUTANTS_TEST_TIMEOUT:-120}
jobs=${KJ_MUTANTS_JOBS:-2}
campaign=${KJ_MUTANTS_CAMPAIGN:-"--seed 1 --workloads 6 --ops 1000 --crash sample:100 --kill 40"}

for v in "$limit" "$grace" "$test_limit" "$jobs" "${KJ_MUTANTS_SAMPLE:-0}"; do
  case $v in
  '' | *[!0-9]*)
    echo "run.sh: '$v' is not a whole number of seconds, jobs or mutants" >&2
    exit 2
    ;;
  esac
done
[ "$jobs" -ge 1 ] || jobs=1
if ! command -v timeout >/dev/null 2>&1; then
  echo "run.sh: needs timeout(1) (coreutils)" >&2
  exit 2
fi

tmp=$(mktemp -d "${KJ_MUTANTS_TMPDIR:-${KJ_TEST_TMPDIR:-${TMPDIR:-/tmp}}}/mutants.XXXXXX") ||
  exit 2
cleanup() {
  # The campaigns still running (an abort): each is the leader of its own
  # process group only when job control is on, so end them by pid.
  for _f in "$tmp"/tpid.* "$tmp"/tpid; do
    [ -f "$_f" ] && kill "$(cat "$_f")" 2>/dev/null
  done
  if [ "${KJ_MUTANTS_KEEP:-0}" = 1 ]; then
    echo "run.sh: scratch directory kept: $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 2' HUP INT TERM

now() { date +%s; }

# ---- sources ----------------------------------------------------------------

# keyjournal-oracle: the library's, the oracle's, the benchmark's and the
# program's own sources (as tests/test_oracle_selftest.sh).
(cd "$s" && ls src/engine/*.c src/common/*.c src/domain/*.c src/native/*.c \
  oracle/*.c tools/*.c 2>/dev/null) >"$tmp/srcs"
for f in harness measure contender_native contender_sqlite sqlcipher kv kvreport \
  report compare; do
  [ -f "$s/bench/$f.c" ] && echo "bench/$f.c" >>"$tmp/srcs"
done
# The library alone (libkjcore.la), and the oracle library, for the tests.
grep -E '^src/' "$tmp/srcs" >"$tmp/lib.srcs"
grep -E '^oracle/' "$tmp/srcs" >"$tmp/oracle.srcs"

mkdir -p "$tmp/tree" "$tmp/obj" "$tmp/tobj" "$tmp/bin"
(cd "$s" && find src include oracle bench tools tests -name '*.[ch]' -print |
  tar cf - -T -) | (cd "$tmp/tree" && tar xf -)

obj_of() { echo "$1" | tr '/' '_' | sed 's/\.c$/.o/'; }
# (sh has no local variables: each function's own start with _x.)
compile() { # compile TREE FILE OUT [EXTRA FLAGS]
  _ct=$1 _cf=$2 _co=$3
  shift 3
  # shellcheck disable=SC2086
  $cc -std=c11 -D_GNU_SOURCE $KJ_SELFTEST_CFLAGS "$@" -I"$_ct/include" \
    -I"$_ct/src" -I"$_ct/oracle" -I"$_ct/bench" -I"$_ct/tools" \
    -I"$_ct/tests" -c "$_ct/$_cf" -o "$_co" >>"$tmp/cc.log" 2>&1
}
# The object of source f for mutant m: its own when its patch changed f.
obj_for() { # obj_for MUTANT FILE
  _oo=$(obj_of "$2")
  if [ "$1" != NONE ] && [ -f "$tmp/m/$1/$_oo" ]; then
    echo "$tmp/m/$1/$_oo"
  else
    echo "$tmp/obj/$_oo"
  fi
}
link() { # link MUTANT OUT SRCLIST [EXTRA OBJECTS]
  _lm=$1 _lout=$2 _llist=$3
  shift 3
  _lobjs=
  while read -r _lf; do
    _lobjs="$_lobjs $(obj_for "$_lm" "$_lf")"
  done <"$_llist"
  # shellcheck disable=SC2086
  $cc $KJ_SELFTEST_CFLAGS "$@" $_lobjs -o "$_lout" $KJ_SELFTEST_LIBS \
    >>"$tmp/cc.log" 2>&1
}

ok=1
while read -r f; do
  compile "$tmp/tree" "$f" "$tmp/obj/$(obj_of "$f")" || ok=0
done <"$tmp/srcs"
if [ "$ok" = 0 ] || ! link NONE "$tmp/bin/kj-NONE" "$tmp/srcs"; then
  echo "run.sh: the pristine tree does not build:" >&2
  tail -20 "$tmp/cc.log" >&2
  exit 2
fi

# ---- the mutants ------------------------------------------------------------

if [ -n "${KJ_MUTANTS:-}" ]; then
  for m in $KJ_MUTANTS; do
    [ -f "$s/tests/mutants/$m.patch" ] || {
      echo "run.sh: no tests/mutants/$m.patch" >&2
      exit 2
    }
    echo "$m"
  done >"$tmp/names"
else
  for p in "$s"/tests/mutants/*.patch; do
    [ -f "$p" ] && basename "$p" .patch
  done >"$tmp/names"
fi
if [ "${KJ_MUTANTS_SAMPLE:-0}" -gt 0 ]; then
  # Deterministic: the k names with the smallest CRC, in name order.
  while read -r m; do
    printf '%s %s\n' "$(printf '%s' "$m" | cksum | cut -d' ' -f1)" "$m"
  done <"$tmp/names" | sort -n | head -n "$KJ_MUTANTS_SAMPLE" |
    cut -d' ' -f2 | sort >"$tmp/names.s"
  mv "$tmp/names.s" "$tmp/names"
fi

# Build each mutant: state.NAME is "built", "noapply" or "nobuild";
# changed.NAME lists the sources its patch changed.
echo NONE >"$tmp/runs"
while read -r m; do
  rm -rf "$tmp/c"
  mkdir -p "$tmp/c" "$tmp/m/$m"
  cp -R "$tmp/tree/." "$tmp/c/"
  if ! patch -d "$tmp/c" -p1 -s --no-backup-if-mismatch \
    <"$s/tests/mutants/$m.patch" >"$tmp/patch.$m" 2>&1; then
    echo noapply >"$tmp/state.$m"
    continue
  fi
  : >"$tmp/changed.$m"
  : >"$tmp/cc.log"
  ok=1
  while read -r f; do
    if ! cmp -s "$tmp/tree/$f" "$tmp/c/$f"; then
      echo "$f" >>"$tmp/changed.$m"
      compile "$tmp/c" "$f" "$tmp/m/$m/$(obj_of "$f")" || ok=0
    fi
  done <"$tmp/srcs"
  if [ ! -s "$tmp/changed.$m" ]; then
    echo nochange >"$tmp/state.$m"
  elif [ "$ok" = 0 ] || ! link "$m" "$tmp/bin/kj-$m" "$tmp/srcs"; then
    cp "$tmp/cc.log" "$tmp/cclog.$m"
    echo nobuild >"$tmp/state.$m"
  else
    echo built >"$tmp/state.$m"
    echo "$m" >>"$tmp/runs"
  fi
done <"$tmp/names"
rm -rf "$tmp/c"

# ---- the campaigns ------------------------------------------------------------

# One campaign in the background: rc.NAME (timeout's status) and
# secs.NAME once it ended; pid.NAME (the watcher) and tpid.NAME (timeout,
# which passes a signal on to the campaign) while it runs.
start() {
  mkdir -p "$tmp/ct.$1"
  (
    _t0=$(now)
    KJ_TEST_TMPDIR=$tmp/ct.$1
    export KJ_TEST_TMPDIR
    # shellcheck disable=SC2086
    timeout -k "$grace" "$limit" "$tmp/bin/kj-$1" oracle $campaign \
      </dev/null >"$tmp/out.$1" 2>&1 &
    echo $! >"$tmp/tpid.$1"
    wait $!
    _rc=$?
    echo $(($(now) - _t0)) >"$tmp/secs.$1"
    rm -rf "$tmp/ct.$1" "$tmp/tpid.$1"
    echo "$_rc" >"$tmp/rc.$1"
  ) </dev/null &
  echo $! >"$tmp/pid.$1"
  nrun=$((nrun + 1))
}
nrun=0
reap() { # forget the campaigns that ended
  for _f in "$tmp"/pid.*; do
    [ -f "$_f" ] || continue
    _mm=${_f##*/pid.}
    if [ -f "$tmp/rc.$_mm" ]; then
      wait "$(cat "$_f")" 2>/dev/null
      rm -f "$_f"
      nrun=$((nrun - 1))
      [ "$_mm" != NONE ] && progress "$_mm"
    fi
  done
}
verdict() { # the campaign's verdict on mutant m
  _vrc=$(cat "$tmp/rc.$1" 2>/dev/null || echo 99)
  if [ "$_vrc" = 124 ] || [ "$_vrc" = 137 ]; then
    echo hung
  elif [ "$_vrc" = 1 ] &&
    grep -q '^reproduce: keyjournal oracle --seed' "$tmp/out.$1"; then
    echo caught
  elif [ "$_vrc" = 0 ]; then
    echo missed
  else
    echo "exit-$_vrc"
  fi
}
progress() {
  echo "# $1: campaign $(verdict "$1") in $(cat "$tmp/secs.$1")s" >&2
}
pristine_check() { # abort when the pristine campaign ended and failed
  [ -f "$tmp/rc.NONE" ] || return 0
  [ "$(cat "$tmp/rc.NONE")" = 0 ] && return 0
  echo "run.sh: the campaign on the pristine tree did not pass" \
    "($(verdict NONE), exit $(cat "$tmp/rc.NONE"), $(cat "$tmp/secs.NONE")s" \
    "of $limit allowed; raise KJ_MUTANTS_TIMEOUT on a slow machine):" >&2
  tail -n 20 "$tmp/out.NONE" >&2
  exit 2
}

echo "# $(($(wc -l <"$tmp/runs") - 1)) mutants built; campaigns of ${limit}s" \
  "(+${grace}s grace), $jobs at a time: $campaign" >&2
while read -r m; do
  while [ "$nrun" -ge "$jobs" ]; do
    sleep 1
    reap
    pristine_check
  done
  start "$m"
done <"$tmp/runs"
while [ "$nrun" -gt 0 ]; do
  sleep 1
  reap
  pristine_check
done
pristine_check
echo "# pristine campaign passed in $(cat "$tmp/secs.NONE")s" >&2

# ---- the test programs, for what the campaign did not catch -------------------

# The C test programs of check_PROGRAMS, with the -D flags of their
# CPPFLAGS, and whether they link the oracle library.
sed -n 's/^tests_\(test_[a-z0-9_]*\)_SOURCES = .*/\1/p' "$s/Makefile.am" \
  >"$tmp/tests"
test_flags() {
  sed -n "s/^tests_$1_CPPFLAGS = //p" "$s/Makefile.am" |
    tr ' ' '\n' | grep '^-D' | tr '\n' ' '
}
test_oracle() {
  grep -q "^tests_$1_LDADD = .*ORACLE" "$s/Makefile.am"
}
# The test programs that exercise a source file, most telling first.
tests_for() {
  case $1 in
  src/engine/journal.c | src/engine/durable.c | src/engine/vfs_posix.c)
    echo test_recovery test_group_commit test_errors test_hostile test_basic \
      test_threads test_faultvfs test_crash
    ;;
  src/engine/snapshot.c | src/engine/checkpoint.c)
    echo test_snapshot test_recovery test_hostile test_errors test_basic \
      test_crash
    ;;
  src/engine/crypto.c | src/engine/store.c | src/engine/handle.c)
    echo test_basic test_recovery test_hostile test_errors test_snapshot
    ;;
  src/engine/txn.c | src/engine/map.c | src/engine/body.c)
    echo test_basic test_table test_threads test_group_commit test_errors \
      test_hostile test_workload
    ;;
  src/native/*.c | src/domain/*.c)
    b=${1##*/}
    echo "test_${b%.c}" test_domain test_workload test_sqlite_backend
    ;;
  *)
    cat "$tmp/tests"
    ;;
  esac
}

# Build test program t for mutant m (NONE: pristine) as $tmp/bin/t-M.
build_test() { # build_test T M
  _bo=$tmp/tobj/$1.o
  if [ ! -f "$_bo" ]; then
    # shellcheck disable=SC2046
    compile "$tmp/tree" "tests/$1.c" "$_bo" $(test_flags "$1") || return 1
  fi
  for _bu in testutil tap; do
    [ -f "$tmp/tobj/$_bu.o" ] ||
      compile "$tmp/tree" "tests/$_bu.c" "$tmp/tobj/$_bu.o" || return 1
  done
  cp "$tmp/lib.srcs" "$tmp/tsrcs"
  test_oracle "$1" && cat "$tmp/oracle.srcs" >>"$tmp/tsrcs"
  link "$2" "$tmp/bin/$1-$2" "$tmp/tsrcs" "$_bo" "$tmp/tobj/testutil.o" \
    "$tmp/tobj/tap.o"
}
# Run it: 0 passed, 1 failed, 2 timed out.
run_test() { # run_test T M
  _rd=$tmp/tt.$1.$2
  mkdir -p "$_rd"
  (
    cd "$_rd" || exit 1
    KJ_TEST_TMPDIR=$_rd top_srcdir=$s
    export KJ_TEST_TMPDIR top_srcdir
    timeout -k "$grace" "$test_limit" "$tmp/bin/$1-$2" </dev/null \
      >"$tmp/tlog.$1.$2" 2>&1 &
    echo $! >"$tmp/tpid"
    wait $!
  )
  _rrc=$?
  rm -rf "$_rd" "$tmp/tpid"
  if [ "$_rrc" = 124 ] || [ "$_rrc" = 137 ]; then
    return 2
  fi
  [ "$_rrc" = 0 ] && return 0
  return 1
}
# Whether the pristine build of t passes (once per test): a test that
# fails without a mutant judges none.
baseline() { # baseline T
  if [ ! -f "$tmp/base.$1" ]; then
    if build_test "$1" NONE && run_test "$1" NONE; then
      echo pass >"$tmp/base.$1"
    else
      echo fail >"$tmp/base.$1"
      echo "# $1 does not pass on the pristine tree: not used" >&2
    fi
  fi
  [ "$(cat "$tmp/base.$1")" = pass ]
}

while read -r m; do
  [ "$m" = NONE ] && continue
  [ "$(verdict "$m")" = caught ] && continue
  [ "${KJ_MUTANTS_NO_TESTS:-0}" = 1 ] && continue
  : >"$tmp/want"
  while read -r f; do
    for t in $(tests_for "$f"); do
      grep -qx "$t" "$tmp/tests" && ! grep -qx "$t" "$tmp/want" &&
        echo "$t" >>"$tmp/want"
    done
  done <"$tmp/changed.$m"
  while read -r t; do
    baseline "$t" || continue
    if ! build_test "$t" "$m"; then
      echo "# $m: $t does not build" >&2
      continue
    fi
    t0=$(now)
    run_test "$t" "$m"
    r=$?
    secs=$(($(now) - t0))
    if [ "$r" != 0 ]; then
      if [ "$r" = 2 ]; then what="$t (hung)"; else what=$t; fi
      echo "$what" >"$tmp/bytest.$m"
      echo "$secs" >"$tmp/tsecs.$m"
      echo "# $m: caught by $what in ${secs}s" >&2
      break
    fi
  done <"$tmp/want"
  [ -f "$tmp/bytest.$m" ] || echo "# $m: no test program catches it" >&2
done <"$tmp/runs"

# ---- the table ------------------------------------------------------------------

total=0 by_campaign=0 by_tests=0 missed=0
row() { printf '%-30s | %-14s | %-26s | %s\n' "$1" "$2" "$3" "$4"; }
# seconds: for a mutant the campaign caught, when it had its first
# divergence ("oracle: first divergence after S s"), then the campaign's
# whole run (it finishes its workloads and shrinks what it found).
row mutant campaign "caught by" "seconds (first divergence / campaign)"
row "(pristine tree)" "passed" "-" "- / $(cat "$tmp/secs.NONE")"
while read -r m; do
  total=$((total + 1))
  state=$(cat "$tmp/state.$m")
  if [ "$state" != built ]; then
    missed=$((missed + 1))
    case $state in
    noapply) why="patch does not apply" ;;
    nochange) why="changes no source" ;;
    *) why="does not build" ;;
    esac
    row "$m" "$why" MISSED -
    continue
  fi
  v=$(verdict "$m")
  if [ "$v" = caught ]; then
    by_campaign=$((by_campaign + 1))
    first=$(sed -n 's/^oracle: first divergence after \([0-9.]*\) s.*/\1/p' \
      "$tmp/out.$m" | head -n 1)
    row "$m" caught campaign "${first:-?} / $(cat "$tmp/secs.$m")"
  elif [ -f "$tmp/bytest.$m" ]; then
    by_tests=$((by_tests + 1))
    row "$m" "$v" "$(cat "$tmp/bytest.$m")" \
      "$(cat "$tmp/secs.$m") + $(cat "$tmp/tsecs.$m")"
  else
    missed=$((missed + 1))
    row "$m" "$v" MISSED "$(cat "$tmp/secs.$m")"
  fi
done <"$tmp/names"
echo "$total mutants, $by_campaign caught by the campaign, $by_tests by tests only, $missed missed"
[ "$by_campaign" -eq "$total" ]
