#!/bin/sh
# tests/limit.sh TIMEOUT SECONDS SCRIPT [ARGS...] - run a shell test under
# timeout(1) for SECONDS (none when TIMEOUT is empty or SECONDS is 0), as
# KJ_TEST_RUNNER runs the test programs. The oracle self-test builds a copy
# of the tree for each mutant and runs a campaign on each: it gets twice
# SECONDS, so that a loaded machine does not cut it short.
t=$1
s=$2
shift 2
case $1 in
*test_oracle_selftest.sh) s=$((s * 2)) ;;
esac
if [ -n "$t" ] && [ "$s" != 0 ]; then
  exec "$t" -k 10 "$s" "${SHELL:-/bin/sh}" "$@"
fi
exec "${SHELL:-/bin/sh}" "$@"
