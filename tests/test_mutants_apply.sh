#!/bin/sh
# tests/test_mutants_apply.sh - every planted bug of tests/mutants/ still
# applies to the sources as they are (patch --dry-run, nothing written), so
# that an engine change that moves a patch's lines is noticed in `make
# check`, not only by the mutants a CI sample happens to draw.
# Prints TAP. Needs top_srcdir (set by `make check`).

: "${top_srcdir:?}"
. "$top_srcdir/tests/tap.sh"
tap_init mutants_apply

if ! command -v patch >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then # CI installs it: never skip there
    echo "Bail out! patch(1) is not installed"
    exit 1
  fi
  echo "1..0 # SKIP patch(1) is not installed"
  exit 0
fi
count=0
for p in "$top_srcdir"/tests/mutants/*.patch; do
  name=$(basename "$p" .patch)
  count=$((count + 1))
  check "mutant $name applies to the tree (refresh it when not)" \
    patch -p1 --dry-run -s -f -d "$top_srcdir" -i "$p"
done
check "the set has at least 25 mutants ($count)" [ "$count" -ge 25 ]
tap_done
