#!/bin/sh
# tests/test_cli.sh - the keyjournal command: demo, verify, info and their
# exit codes (0 sound, 2 usage, 3 wrong key, 4 damaged durable data), help,
# and the exit code of oracle and bench without keyjournal-oracle (127).
# Prints TAP. Needs $KEYJOURNAL (set by `make check`).

: "${KEYJOURNAL:?set KEYJOURNAL to the keyjournal binary}"
. "${top_srcdir:-.}/tests/tap.sh"
tap_init cli

status() { # status WANT COMMAND...: COMMAND exits with WANT
  want=$1
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  got=$?
  [ "$got" -eq "$want" ] && return 0
  echo "# exit $got, want $want: $*"
  sed 's/^/#   /' "$tmp/out" "$tmp/err"
  return 1
}

# flip_byte FILE OFFSET: xor one byte with 0x01 in place
flip_byte() {
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 1)))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

store=$tmp/store
check "--help exits 0" status 0 "$KEYJOURNAL" --help
check "no command is a usage error" status 2 "$KEYJOURNAL"
check "unknown command is a usage error" status 2 "$KEYJOURNAL" frobnicate
check "help exits 0" status 0 "$KEYJOURNAL" help
check "help lists every command" sh -c 'for c in demo verify info extra upgrade oracle bench help; do
  grep -q "^  keyjournal $c " "$1" || { echo "# $c missing"; exit 1; }; done' sh "$tmp/out"
# oracle and bench run keyjournal-oracle: a missing one is exit 127.
check "oracle with a missing keyjournal-oracle exits 127" \
  status 127 env KEYJOURNAL_ORACLE="$tmp/no-such-program" "$KEYJOURNAL" oracle
check "the message names what is missing" grep -q "KEYJOURNAL_ORACLE=$tmp/no-such-program" "$tmp/err"
check "bench with a missing keyjournal-oracle exits 127" \
  status 127 env KEYJOURNAL_ORACLE="$tmp/no-such-program" "$KEYJOURNAL" bench
check "demo runs and recovers after SIGKILL" status 0 "$KEYJOURNAL" demo --seed 7 "$store"
check "demo reports OK" grep -q "demo: OK" "$tmp/out"
check "demo wrote the key next to the store" test -s "$store.key"
check "demo refuses a non-empty directory" status 2 "$KEYJOURNAL" demo "$store"
check "verify: sound store exits 0" status 0 "$KEYJOURNAL" verify --key-file "$store.key" "$store"
check "verify prints OK" grep -q "verify: OK" "$tmp/out"
check "info exits 0" status 0 "$KEYJOURNAL" info --key-file "$store.key" "$store"
check "info shows the format version and rows" grep -qi "format" "$tmp/out"
check "options may follow DIR" status 0 "$KEYJOURNAL" verify "$store" --key-file "$store.key"

head -c 32 /dev/zero >"$tmp/zero.key"
check "verify with a wrong key exits 3" status 3 "$KEYJOURNAL" verify --key-file "$tmp/zero.key" "$store"
head -c 31 /dev/zero >"$tmp/short.key"
check "a key file that is not 32 bytes is a usage error" status 2 "$KEYJOURNAL" verify --key-file "$tmp/short.key" "$store"
check "a missing key file is a usage error" status 2 "$KEYJOURNAL" verify --key-file "$tmp/none.key" "$store"
check "verify without DIR is a usage error" status 2 "$KEYJOURNAL" verify --key-file "$store.key"
check "a passphrase for a raw-key store exits 3" status 3 env KJ_PASSPHRASE=hunter2 "$KEYJOURNAL" verify "$store"
mkdir "$tmp/empty"
check "verify of a directory without a store exits 3 (not a store)" status 3 "$KEYJOURNAL" verify --key-file "$store.key" "$tmp/empty"

# Damage segment 1 at byte 200, past its 64-byte header (in a first frame,
# or in the zeros of a segment the demo's first, large commit skipped).
# Later segments show it was synced: exit 4 naming the file.
cp -r "$store" "$tmp/bad"
flip_byte "$tmp/bad/journal-0000000000000001.kjl" 200
check "verify of a damaged frame exits 4" status 4 "$KEYJOURNAL" verify --key-file "$store.key" "$tmp/bad"
check "the message names the segment file" grep -q "journal-0000000000000001.kjl" "$tmp/err"
check "the message names the offset" grep -q "at offset 64:" "$tmp/err"
check "verify changed nothing in the damaged store" cmp -s "$store/keyjournal.hdr" "$tmp/bad/keyjournal.hdr"
check "info of a damaged store exits 4 too" status 4 "$KEYJOURNAL" info --key-file "$store.key" "$tmp/bad"

# A passphrase store through KJ_PASSPHRASE.
check "demo with KJ_PASSPHRASE" status 0 env KJ_PASSPHRASE="correct horse" "$KEYJOURNAL" demo --seed 3 "$tmp/pass"
check "verify with the right passphrase exits 0" status 0 env KJ_PASSPHRASE="correct horse" "$KEYJOURNAL" verify "$tmp/pass"
check "verify with a wrong passphrase exits 3" status 3 env KJ_PASSPHRASE="wrong horse" "$KEYJOURNAL" verify "$tmp/pass"

# The store header records the last segment and synced seq at a clean
# close (doc/FORMAT.md 3, rule 5.8): a journal cut back after it is damage,
# exit 4. Cut the demo store's last segment after its first frame, or
# delete it.
seg1=$(cd "$store" && ls | grep '^journal-.*\.kjl$' | sort | tail -n 1)
cp -r "$store" "$tmp/cut"
first_end=$((128 + $(od -An -tu4 -j68 -N4 "$store/$seg1" | tr -d ' ')))
head -c "$first_end" "$store/$seg1" >"$tmp/cut/$seg1"
check "verify of a segment cut at a frame boundary exits 4" status 4 "$KEYJOURNAL" verify --key-file "$store.key" "$tmp/cut"
check "the message names the segment and the recorded seq" \
  grep -q "$seg1 at offset $first_end: .*store header records seq" "$tmp/err"
cp -r "$store" "$tmp/gone"
rm "$tmp/gone/$seg1"
check "verify of a deleted last segment exits 4" status 4 "$KEYJOURNAL" verify --key-file "$store.key" "$tmp/gone"
check "the message names the missing segment" grep -q "$seg1" "$tmp/err"

# What a careless or hostile environment finds (README, reliability).
# A FIFO in place of the header: verify and info fail at once, not hang.
cp -r "$store" "$tmp/fifo"
rm "$tmp/fifo/keyjournal.hdr"
mkfifo "$tmp/fifo/keyjournal.hdr"
check "verify of a store whose header is a FIFO fails fast (exit 1)" \
  status 1 timeout 10 "$KEYJOURNAL" verify --key-file "$store.key" "$tmp/fifo"
check "the message names the file and its type" \
  grep -q "keyjournal.hdr: is a FIFO" "$tmp/err"
check "info of a store whose header is a FIFO fails fast (exit 1)" \
  status 1 timeout 10 "$KEYJOURNAL" info --key-file "$store.key" "$tmp/fifo"
check "help of an unknown command is a usage error" status 2 "$KEYJOURNAL" help nosuch
check "... and says so" grep -q "unknown command 'nosuch'" "$tmp/err"
check "verify of a missing directory exits 3 (not a store)" \
  status 3 "$KEYJOURNAL" verify --key-file "$store.key" "$tmp/no-such-dir"
check "info of a missing directory exits 3" \
  status 3 "$KEYJOURNAL" info --key-file "$store.key" "$tmp/no-such-dir"
check "info of an empty directory exits 3" \
  status 3 "$KEYJOURNAL" info --key-file "$store.key" "$tmp/empty"
check "verify of a file given as DIR exits 3" \
  status 3 "$KEYJOURNAL" verify --key-file "$store.key" "$store.key"
check "info of a file given as DIR exits 3" \
  status 3 "$KEYJOURNAL" info --key-file "$store.key" "$store.key"
cp "$store.key" "$tmp/open.key"
chmod 644 "$tmp/open.key"
check "a world-readable key file still works" \
  status 0 "$KEYJOURNAL" verify --key-file "$tmp/open.key" "$store"
check "... with a warning on stderr" grep -q "warning: key file .*open.key" "$tmp/err"
check "a 0600 key file gives no warning" \
  sh -c '"$1" verify --key-file "$2" "$3" 2>&1 >/dev/null | grep -q warning && exit 1; exit 0' \
  sh "$KEYJOURNAL" "$store.key" "$store"

# upgrade: the format 1 stores of tests/data/v1 (their key is the tests'
# tu_key, tests/testutil.c), brought to format 2.
printf 'keyjournal-test-key\000\001\002\003\004\005\006\007\010\011\012\013\014' >"$tmp/v1.key"
chmod 600 "$tmp/v1.key"
cp -R "${top_srcdir:-.}/tests/data/v1/snapshot" "$tmp/v1"
chmod 700 "$tmp/v1"
check "verify of a format 1 store exits 0" status 0 "$KEYJOURNAL" verify --key-file "$tmp/v1.key" "$tmp/v1"
check "info of it says format 1" status 0 "$KEYJOURNAL" info --key-file "$tmp/v1.key" "$tmp/v1"
check "... format version 1" grep -q "format version:   1" "$tmp/out"
check "upgrade with a wrong key exits 3" status 3 "$KEYJOURNAL" upgrade --key-file "$tmp/zero.key" "$tmp/v1"
check "... and changes nothing" test -e "$tmp/v1/snapshot-00000000000000c8.kjs"
check "upgrade of a directory without a store exits 3" status 3 "$KEYJOURNAL" upgrade --key-file "$tmp/v1.key" "$tmp/empty"
check "upgrade exits 0" status 0 "$KEYJOURNAL" upgrade --key-file "$tmp/v1.key" "$tmp/v1"
check "... and says 1 -> 2" grep -q "format 1 -> 2, 210 rows" "$tmp/out"
check "... the snapshot became a run file" sh -c 'ls "$1" | grep -q "^run-" && ! ls "$1" | grep -q "^snapshot-"' sh "$tmp/v1"
check "info says format 2" status 0 "$KEYJOURNAL" info --key-file "$tmp/v1.key" "$tmp/v1"
check "... format version 2" grep -q "format version:   2" "$tmp/out"
check "upgrade again exits 0" status 0 "$KEYJOURNAL" upgrade --key-file "$tmp/v1.key" "$tmp/v1"
check "... already current" grep -q "already current" "$tmp/out"
check "verify of the upgraded store exits 0" status 0 "$KEYJOURNAL" verify --key-file "$tmp/v1.key" "$tmp/v1"
run=$(ls "$tmp/v1" | grep '^run-' | head -n 1)
flip_byte "$tmp/v1/$run" 100
check "verify of a damaged run block exits 4" status 4 "$KEYJOURNAL" verify --key-file "$tmp/v1.key" "$tmp/v1"
check "... naming the run file and the block" grep -q "$run.*block 0" "$tmp/err"

tap_done
