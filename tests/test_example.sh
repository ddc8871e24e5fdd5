#!/bin/sh
# tests/test_example.sh - the worked example of the README
# (examples/signal_chat.c) runs: a first run on an empty directory creates
# the slots and keys, starts a session with X3DH and talks across a
# reopen; a second run on the same directory finds all of it again and
# continues the conversation. Prints TAP. Needs top_builddir (set by
# `make check`).

: "${top_builddir:?}"
. "${top_srcdir:?}/tests/tap.sh"
tap_init example

chat="$top_builddir/examples/signal_chat"
show_on_fail() { sed 's/^/#   /' "$tmp/out"; }
tap_on_fail() { show_on_fail; }

# Exit status and output of one run on $tmp/chat.
run() {
  "$chat" "$tmp/chat" >"$tmp/out" 2>&1
  rc=$?
}
# The number of lines of $tmp/out matching the fixed string $1.
count() { grep -c -F -- "$1" "$tmp/out"; }

run
check "first run: exit status 0" [ "$rc" -eq 0 ]
check "first run: both slots created" \
  [ "$(count ': created slot ')" -eq 2 ]
check "first run: both identities made and saved in one commit" \
  [ "$(count ': new identity, registration id ')" -eq 2 ]
check "first run: Alice starts the session from Bob's bundle (X3DH)" \
  grep -q '^alice: no session with bob yet: X3DH' "$tmp/out"
check "first run: Bob decrypts the pre-key message in 1 commit, 1 fsync" \
  grep -q '^bob: pre-key message handled in 1 commit, 1 fsync$' "$tmp/out"
check "first run: every message is read (4 to Bob, 2 to Alice)" \
  [ "$(count 'bob reads: "')" -eq 4 ] && [ "$(count 'alice reads: "')" -eq 2 ]
check "first run: the conversation goes on after the reopen" \
  grep -q '^alice reads: "Hi Alice, got both, after the reopen\."$' "$tmp/out"
check "first run: ends with conversation OK" \
  sh -c 'tail -n 1 "$1" | grep -q "^conversation OK"' sh "$tmp/out"
cp "$tmp/out" "$tmp/out1"

run
check "second run: exit status 0" [ "$rc" -eq 0 ]
check "second run: no slot created, both found (twice: open and reopen)" \
  [ "$(count ': created slot ')" -eq 0 ] && [ "$(count ': found slot ')" -eq 4 ]
check "second run: the identities are found, none generated" \
  [ "$(count ': identity found, registration id ')" -eq 2 ] &&
  [ "$(count ': new identity')" -eq 0 ]
check "second run: the registration ids are those of the first run" \
  sh -c 'a=$(grep -o "alice: new identity, registration id [0-9]*" "$1" | grep -o "[0-9]*$")
         b=$(grep -o "alice: identity found, registration id [0-9]*" "$2" | grep -o "[0-9]*$")
         [ -n "$a" ] && [ "$a" = "$b" ]' sh "$tmp/out1" "$tmp/out"
check "second run: Alice's session is found, no X3DH" \
  grep -q '^alice: session with bob found: continuing the conversation$' "$tmp/out"
check "second run: no pre-key message any more" \
  [ "$(count 'pre-key message')" -eq 0 ]
check "second run: every message is read" \
  [ "$(count 'bob reads: "')" -eq 4 ] && [ "$(count 'alice reads: "')" -eq 2 ]
check "second run: ends with conversation OK" \
  sh -c 'tail -n 1 "$1" | grep -q "^conversation OK"' sh "$tmp/out"

# A failure is reported: a store whose header was overwritten does not
# open, and the example says so and exits non-zero.
cp -r "$tmp/chat" "$tmp/bad"
printf 'garbage garbage garbage garbage' |
  dd of="$tmp/bad/alice/keyjournal.hdr" bs=1 seek=40 conv=notrunc 2>/dev/null
"$chat" "$tmp/bad" >"$tmp/out" 2>&1
rc=$?
check "a damaged store: exit status 1" [ "$rc" -eq 1 ]
check "... and a message naming the failed call" \
  grep -q '^signal_chat: alice: kj_backend_open failed: .*keyjournal\.hdr' "$tmp/out"
tap_done
