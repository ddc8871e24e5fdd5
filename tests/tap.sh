# tests/tap.sh - TAP helpers shared by the shell tests (sourced, not run).
#
#   tap_init NAME      a scratch directory $tmp under $KJ_TEST_TMPDIR (or
#                      /tmp), removed at exit; n=0, failed=0
#   check DESC CMD...  "ok N - DESC" when CMD succeeds, else "not ok" (and
#                      tap_on_fail, which a test may redefine, runs)
#   tap_done           the plan line; the exit status is 1 when a check failed

tap_on_fail() { :; }

tap_init() {
  tmp=$(mktemp -d "${KJ_TEST_TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
  trap 'rm -rf "$tmp"' EXIT
  n=0
  failed=0
}

check() {
  desc=$1
  shift
  n=$((n + 1))
  if "$@"; then
    echo "ok $n - $desc"
  else
    echo "not ok $n - $desc"
    tap_on_fail
    failed=$((failed + 1))
  fi
}

tap_done() {
  echo "1..$n"
  [ "$failed" -eq 0 ]
}
