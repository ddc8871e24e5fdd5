#!/bin/sh
# tests/test_bench.sh - `keyjournal bench --quick`: the structure of its
# output, never its timings. Every contender is there, or explicitly absent
# with a reason (SQLCipher must be measured when the build has its helper,
# and reported absent, never filled in, when the helper is missing); every
# expected figure is a positive number; the scratch directory is removed.
# Prints TAP. Needs $KEYJOURNAL (set by `make check`); the JSON checks use
# python3 and are skipped without it.

: "${KEYJOURNAL:?set KEYJOURNAL to the keyjournal binary}"
. "${top_srcdir:-.}/tests/tap.sh"
tap_init bench

skip() { # skip DESCRIPTION REASON
  n=$((n + 1))
  echo "ok $n - $1 # SKIP $2"
}

status() { # status WANT OUT COMMAND...: COMMAND exits with WANT, stdout in OUT
  want=$1
  out=$2
  shift 2
  "$@" >"$out" 2>"$tmp/err" </dev/null
  got=$?
  [ "$got" -eq "$want" ] && return 0
  echo "# exit $got, want $want: $*"
  sed 's/^/#   /' "$out" "$tmp/err" | tail -40
  return 1
}

# Whether this build has the SQLCipher helper (configure found SQLCipher).
helper=${top_builddir:+$top_builddir/bench/bench_sqlcipher}
if [ -n "$helper" ] && [ -x "$helper" ]; then
  want_cipher=1
else
  want_cipher=0
fi

mkdir "$tmp/run"
check "bench --help exits 0" status 0 "$tmp/help" "$KEYJOURNAL" bench --help
check "the help names SQLCipher" grep -q SQLCipher "$tmp/help"
check "help bench exits 0" status 0 "$tmp/help2" "$KEYJOURNAL" help bench
check "bench --help and help bench print the same text" \
  cmp -s "$tmp/help" "$tmp/help2"
check "an unknown option is a usage error" \
  status 2 "$tmp/out" "$KEYJOURNAL" bench --frobnicate
check "--reps 0 is a usage error" \
  status 2 "$tmp/out" "$KEYJOURNAL" bench --reps 0

check "bench --quick --json exits 0" \
  status 0 "$tmp/full.json" "$KEYJOURNAL" bench --quick --json "$tmp/run"
check "the run removed its scratch directory" \
  test -z "$(ls "$tmp/run")"
check "bench --quick (text) exits 0" \
  status 0 "$tmp/full.txt" "$KEYJOURNAL" bench --quick "$tmp/run"

# The text table: a header naming the five contenders, a line on SQLCipher.
header_ok() {
  grep '^figure ' "$tmp/full.txt" >"$tmp/hdr" || return 1
  for c in "native FULL" "native NORMAL" "SQLite FULL" "SQLite NORMAL" \
    "SQLCipher FULL"; do
    grep -q "$c" "$tmp/hdr" || {
      echo "# no column $c"
      return 1
    }
  done
}
check "text: a column for each of the five contenders" header_ok
if [ "$want_cipher" = 1 ]; then
  check "text: SQLCipher measured, file checked encrypted" \
    grep -q '^SQLCipher FULL: SQLCipher .*encrypted' "$tmp/full.txt"
else
  check "text: SQLCipher reported as not measured, with the reason" \
    grep -q '^SQLCipher FULL: not measured: .' "$tmp/full.txt"
fi
check "text: a commit row" grep -q '^commit, 512 B session put ' "$tmp/full.txt"
check "text: the targets" grep -q '^Targets of the native engine' "$tmp/full.txt"
check "text: the key-value table" \
  grep -q '^Key-value API (kj_put/kj_get/kj_scan_range) against LMDB' \
  "$tmp/full.txt"

# A helper that does not exist: SQLCipher is absent, with the reason.
check "bench with a missing SQLCipher helper still exits 0" \
  status 0 "$tmp/none.json" env KJ_BENCH_SQLCIPHER="$tmp/no-such-helper" \
  "$KEYJOURNAL" bench --quick --json "$tmp/run"

# check_json FILE WANT_CIPHER [MISSING_HELPER]: the structure of the JSON.
check_json() {
  python3 - "$@" <<'EOF'
import json, sys

path, want_cipher = sys.argv[1], sys.argv[2] == "1"
missing = sys.argv[3] if len(sys.argv) > 3 else None
d = json.load(open(path))
bad = []
keys = ["native_full", "native_normal", "sqlite_full", "sqlite_normal",
        "sqlcipher_full"]
cont = d.get("contenders", [])
if [c.get("key") for c in cont] != keys:
    bad.append("contenders %r" % [c.get("key") for c in cont])
avail = {}
for c in cont:
    k = c.get("key")
    avail[k] = c.get("available")
    if avail[k] is True:
        if c.get("reason") is not None:
            bad.append("%s available but has a reason" % k)
    elif avail[k] is False:
        if not isinstance(c.get("reason"), str) or not c["reason"]:
            bad.append("%s absent without a reason" % k)
    else:
        bad.append("%s: available is not a boolean" % k)
for k in keys[:4]:
    if avail.get(k) is not True:
        bad.append("%s not available" % k)
if missing is not None:
    c = cont[4] if len(cont) == 5 else {}
    if avail.get("sqlcipher_full") is not False:
        bad.append("sqlcipher_full available with a missing helper")
    elif missing not in c.get("reason", ""):
        bad.append("the reason does not name the helper: %r" % c.get("reason"))
elif avail.get("sqlcipher_full") is not want_cipher:
    bad.append("sqlcipher_full available=%r, want %r"
               % (avail.get("sqlcipher_full"), want_cipher))
if not (isinstance(d.get("fdatasync_ops_per_s"), (int, float))
        and d["fdatasync_ops_per_s"] > 0):
    bad.append("fdatasync_ops_per_s")
if d.get("quick") is not True or d.get("reps") != 1:
    bad.append("quick/reps")

full = ["commit_us", "commit_ops", "commit_fdatasync_frac", "threads8_ops",
        "get_us", "prekey100_us", "ratchet50_us", "open_small_journal_ms",
        "open_small_checkpoint_ms", "open_medium_journal_ms",
        "open_medium_checkpoint_ms", "disk_journal_bytes",
        "disk_checkpoint_bytes", "logical_bytes", "rss_journal_kib",
        "rss_checkpoint_kib", "create_ms", "open_tiny_ms",
        "open_small_cold_ms", "open_medium_cold_ms", "rss_reads_kib",
        "checkpoint_mbs", "lat_p50_us", "lat_p99_us", "lat_max_ms",
        "lat_p99_over_p50", "read_warm_us", "read_cold_us"]
normal = ["commit_us", "commit_ops", "commit_fdatasync_frac"]
large = ["open_large_journal_ms", "open_large_checkpoint_ms",
         "open_large_cold_ms"]
native_only = ["checkpoint_mbs", "lat_p50_us", "lat_p99_us", "lat_max_ms",
               "lat_p99_over_p50", "read_warm_us", "read_cold_us"]
figs = {f.get("id"): f for f in d.get("figures", [])}
for fid in full + large:
    if fid not in figs:
        bad.append("no figure %s" % fid)
for fid, f in figs.items():
    for field in ("figure", "unit", "ratio_kind", "values",
                  "vs_sqlite_full"):
        if field not in f:
            bad.append("%s: no %s" % (fid, field))
    vals, rat = f.get("values", {}), f.get("vs_sqlite_full", {})
    for k in keys:
        if k not in vals or k not in rat:
            bad.append("%s: no %s value or ratio" % (fid, k))
            continue
        v, r = vals[k], rat[k]
        expect = (avail.get(k) is True and fid not in large and
                  (fid in normal if k.endswith("_normal") else fid in full)
                  and (fid not in native_only or k.startswith("native")))
        if expect and not (isinstance(v, (int, float)) and v > 0):
            bad.append("%s %s = %r, want a positive number" % (fid, k, v))
        if not expect and v is not None:
            bad.append("%s %s = %r, want null" % (fid, k, v))
        if v is None and r is not None:
            bad.append("%s %s: a ratio without a value" % (fid, k))
        if r is not None and not (isinstance(r, (int, float)) and r > 0):
            bad.append("%s %s ratio %r" % (fid, k, r))
        if (k == "sqlite_full" and r is not None and
                abs(r - 1) > 1e-9):
            bad.append("%s: SQLite FULL's ratio to itself is %r" % (fid, r))
    if f.get("ratio_kind") != "none" and vals.get("sqlite_full"):
        for k in keys:
            if vals.get(k) is not None and rat.get(k) is None:
                bad.append("%s %s: a value without its ratio" % (fid, k))
targets = d.get("targets", [])
if not targets:
    bad.append("no targets")
for t in targets:
    if t.get("status") not in ("met", "MISSED", None):
        bad.append("target status %r" % t.get("status"))
    if t.get("figure") not in figs:
        bad.append("target of unknown figure %r" % t.get("figure"))
for b in bad[:40]:
    print("# " + b)
sys.exit(1 if bad else 0)
EOF
}

# check_kv FILE REQUIRE: the key-value table (JSON member "kv"): six
# contenders, each available or absent with a reason (REQUIRE=1: all
# available); every figure a positive number where it is measured (the
# unsynced contenders have commit and batch only) and null elsewhere.
check_kv() {
  python3 - "$@" <<'EOF'
import json, sys

d = json.load(open(sys.argv[1]))
require = sys.argv[2] == "1"
bad = []
k = d.get("kv", {})
keys = ["kv_native_full", "kv_native_normal", "kv_lmdb", "kv_lmdb_nosync",
        "kv_rocksdb_sync", "kv_rocksdb_nosync"]
cont = k.get("contenders", [])
if [c.get("key") for c in cont] != keys:
    bad.append("contenders %r" % [c.get("key") for c in cont])
avail = {c.get("key"): c.get("available") for c in cont}
for c in cont:
    if c.get("available") is True and c.get("reason") is not None:
        bad.append("%s available with a reason" % c.get("key"))
    if c.get("available") is False and not c.get("reason"):
        bad.append("%s absent without a reason" % c.get("key"))
    if require and c.get("available") is not True:
        bad.append("%s not available: %r" % (c.get("key"), c.get("reason")))
for n in ("kv_native_full", "kv_native_normal"):
    if avail.get(n) is not True:
        bad.append("%s not available" % n)
if len(k.get("sizes", [])) != 2:
    bad.append("sizes %r" % k.get("sizes"))
ids = ["commit", "threads", "batch", "get_small", "get_medium", "scan",
       "disk", "rss"]
figs = {f.get("id"): f for f in k.get("figures", [])}
if sorted(figs) != sorted(ids):
    bad.append("figures %r" % sorted(figs))
for fid, f in figs.items():
    vals = f.get("values", {})
    for c in keys:
        durable = c in ("kv_native_full", "kv_lmdb", "kv_rocksdb_sync")
        want = avail.get(c) is True and (durable or fid in ("commit", "batch"))
        v = vals.get(c, "missing")
        if want and not (isinstance(v, (int, float)) and v > 0):
            bad.append("%s %s = %r, want a positive number" % (fid, c, v))
        if not want and v is not None:
            bad.append("%s %s = %r, want null" % (fid, c, v))
ts = k.get("targets", [])
if not ts:
    bad.append("no targets")
for t in ts:
    if t.get("figure") not in figs or t.get("status") not in ("met",
                                                              "missed", None):
        bad.append("target %r" % t)
for b in bad[:40]:
    print("# " + b)
sys.exit(1 if bad else 0)
EOF
}

if command -v python3 >/dev/null 2>&1; then
  check "json: contenders, figures, ratios and targets are well formed" \
    check_json "$tmp/full.json" "$want_cipher"
  check "json: a missing helper makes SQLCipher null with the reason" \
    check_json "$tmp/none.json" "$want_cipher" "$tmp/no-such-helper"
  # In CI (CI=true) LMDB and RocksDB are installed: never absent there.
  check "json: the key-value table against LMDB and RocksDB" \
    check_kv "$tmp/full.json" "$([ "${CI:-}" = true ] && echo 1 || echo 0)"
else
  skip "json: contenders, figures, ratios and targets are well formed" \
    "no python3"
  skip "json: a missing helper makes SQLCipher null with the reason" \
    "no python3"
  skip "json: the key-value table against LMDB and RocksDB" "no python3"
fi

tap_done
