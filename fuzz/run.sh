#!/bin/sh
# fuzz/run.sh SRCDIR SECONDS TARGET... - `make fuzz-run`: run each libFuzzer
# target (built by ./configure --enable-fuzzing) for SECONDS seconds, one
# after the other, starting from its checked-in seed corpus.
#
# New corpus entries go to fuzz-work/<target>/corpus (the checked-in
# corpora are never written), crash inputs to fuzz-work/<target>/ (with
# libFuzzer's crash-/leak-/timeout- prefixes). Temporary stores go under
# $TMPDIR, or /dev/shm when TMPDIR is unset and /dev/shm exists. Prints one
# line per target (runs, execs/s, new corpus entries, verdict), then
# "fuzz-run: N passed, N failed". Exit status 1 when a target crashed.
set -u
srcdir=$1
secs=$2
shift 2

if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  TMPDIR=/dev/shm
  export TMPDIR
fi

pass=0
fail=0
total=0
for t in "$@"; do
  work=fuzz-work/$t
  mkdir -p "$work/corpus"
  dict=
  [ -f "$srcdir/fuzz/dict/$t.dict" ] && dict="-dict=$srcdir/fuzz/dict/$t.dict"
  log=$work/last.log
  before=$(ls "$work/corpus" | wc -l)
  # -timeout: one input running this long is a hang (a finding).
  ./fuzz/$t -max_total_time="$secs" -timeout=60 -print_final_stats=1 \
    -artifact_prefix="$work/" $dict "$work/corpus" "$srcdir/fuzz/corpora/$t" \
    >"$log" 2>&1
  rc=$?
  after=$(ls "$work/corpus" | wc -l)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
  total=$((total + ${took:-$secs}))
  if [ "$rc" -eq 0 ]; then
    verdict=ok
    pass=$((pass + 1))
  else
    verdict="FAILED (exit $rc; see $log and $work/)"
    fail=$((fail + 1))
    grep -E "^(==[0-9]+==ERROR|SUMMARY|.*runtime error)" "$log" | head -n 5
  fi
  printf '%-14s %10s runs %8s execs/s %5s new inputs  %s\n' "$t" \
    "${runs:-?}" "${rate:-?}" "$((after - before))" "$verdict"
done
echo "fuzz-run: ${total} s of fuzzing in all"
echo "fuzz-run: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
