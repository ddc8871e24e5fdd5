#!/bin/sh
# tests/test_oracle.sh - `keyjournal oracle`: a bounded campaign must find
# no divergence and end with the summary line; bad usage exits 2. TAP.

: "${KEYJOURNAL:?set KEYJOURNAL to the keyjournal binary}"
. "${top_srcdir:-.}/tests/tap.sh"
tap_init oracle
tap_on_fail() {
  sed 's/^/#   /' "$tmp/out" | tail -30
}
run() { # run WANT ARGS...: the command exits with WANT
  want=$1
  shift
  TMPDIR=$tmp "$KEYJOURNAL" "$@" >"$tmp/out" 2>&1 </dev/null
  [ $? -eq "$want" ]
}
summary_ok() {
  tail -n 1 "$tmp/out" |
    grep -Eq '^oracle: [0-9]+ ops, [1-9][0-9]* crash points, [1-9][0-9]* kills, 0 divergences$'
}

check "bounded campaign: no divergence" \
  run 0 oracle --seed 5 --workloads 2 --ops 120 --crash sample:30 --kill 4
check "it ends with the summary line" summary_ok
check "NORMAL sync campaign: no divergence" \
  run 0 oracle --seed 6 --workloads 1 --ops 100 --crash sample:20 \
  --sync normal --kill 2
line='crash: seed=5 ops=120 mix=realistic mode=full snapshots=small point=90 pattern=random recovery_crash=0 salt=9'
check "--replay of a crash line that holds exits 0" run 0 oracle --replay "$line"
check "it says so" grep -qx 'replay: 0 divergences' "$tmp/out"
check "--replay of a fault line that holds exits 0" run 0 oracle --replay \
  'fault: seed=6 ops=100 mix=adversarial mode=normal snapshots=default method=sync nth=3 status=ENOSPC persistent keep=0-40,50'
check "--replay of an unreadable line is a usage error" \
  run 2 oracle --replay 'sigkill: seed=1 ops=10'
check "--replay takes no other option" run 2 oracle --seed 1 --replay "$line"
check "unknown option is a usage error" run 2 oracle --frobnicate 3
check "bad --crash value is a usage error" run 2 oracle --crash some
check "oracle --help exits 0 (keyjournal-oracle)" run 0 oracle --help
cp "$tmp/out" "$tmp/help"
check "help oracle exits 0" run 0 help oracle
check "oracle --help and help oracle print the same text" \
  cmp -s "$tmp/help" "$tmp/out"
tap_done
