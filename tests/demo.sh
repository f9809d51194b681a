#!/usr/bin/env bash
# tests/demo.sh BUILD_DIR [SOURCE_DIR] - the `labyrinth demo` command:
#   --duration 1s           exit 0, the report says healthy, leaks none
#   --json                  one JSON object that parses (a small validator in
#                           awk: python may be absent) with consistent numbers
#   --mode poll             healthy too
#   bad options             exit 2 and a message naming the problem
#   --help, help, version   exit 0
# Exit 0 pass, 1 fail.
set -u
build=${1:?usage: demo.sh BUILD_DIR [SOURCE_DIR]}
src=${2:-$(cd "$(dirname "$0")/.." && pwd)}
tool="$build/tools/labyrinth"
if [ ! -x "$tool" ]; then
  echo "FAIL: $tool not built"
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/labyrinth-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# run NAME ARGS...: stdout in $tmp/NAME.out, stderr in $tmp/NAME.err, status in $rc
run() {
  local name=$1
  shift
  "$tool" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null
  rc=$?
}

show() { # name
  echo "--- stdout"; cat "$tmp/$1.out"; echo "--- stderr"; cat "$tmp/$1.err"; echo "---"
}

# ---- the text report -------------------------------------------------------
run text demo --duration 1s
if [ "$rc" -eq 0 ]; then ok "demo --duration 1s exits 0"; else fail "demo --duration 1s exits $rc"; show text; fi
grep -Eq '^ *verdict +healthy *$' "$tmp/text.out" && ok "verdict healthy" || { fail "no 'verdict healthy'"; show text; }
grep -Eq '^ *leaks +none *$' "$tmp/text.out" && ok "leaks none" || fail "no 'leaks none'"
grep -Eq '^ *misuse reports +0 *$' "$tmp/text.out" && ok "misuse reports 0" || fail "misuse reports not 0"
grep -Eq '^ *invariant check +ok' "$tmp/text.out" && ok "invariant check ok" || fail "invariant check not ok"
grep -Eq '^ *corrupt packets +0 *$' "$tmp/text.out" && ok "corrupt packets 0" || fail "corrupt packets not 0"

# ---- JSON -------------------------------------------------------------------
# json_flat FILE: validate one JSON value; print "path<TAB>value" per scalar
# (strings without their quotes).  Exit 1 with a message if it does not parse.
json_flat() {
  awk '
  function fail(msg) { printf "json: %s at offset %d\n", msg, pos > "/dev/stderr"; bad = 1; exit 1 }
  function ws() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1))) pos++ }
  function emit(path, v) { printf "%s\t%s\n", path, v }
  function str(   out, c, h) {
    if (substr(s, pos, 1) != "\"") fail("expected a string")
    pos++
    out = ""
    while (pos <= n) {
      c = substr(s, pos, 1)
      if (c == "\"") { pos++; return out }
      if (c == "\\") {
        pos++
        c = substr(s, pos, 1)
        if (c == "u") {
          h = substr(s, pos + 1, 4)
          if (h !~ /^[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]$/) fail("bad \\u escape")
          pos += 5; out = out "?"; continue
        }
        if (!index("\"\\/bfnrt", c)) fail("bad escape")
        out = out c; pos++; continue
      }
      if (c < " ") fail("control character in a string")
      out = out c; pos++
    }
    fail("unterminated string")
  }
  function num(   m) {
    m = substr(s, pos)
    if (!match(m, /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/)) fail("bad number")
    pos += RLENGTH
    return substr(m, 1, RLENGTH)
  }
  function value(path,   c, k, first) {
    ws()
    c = substr(s, pos, 1)
    if (c == "{") {
      pos++; ws()
      if (substr(s, pos, 1) == "}") { pos++; return }
      for (;;) {
        ws(); k = str(); ws()
        if (substr(s, pos, 1) != ":") fail("expected :")
        pos++
        if ((path == "" ? k : path "." k) in seen) fail("duplicate key " k)
        seen[path == "" ? k : path "." k] = 1
        value(path == "" ? k : path "." k)
        ws(); c = substr(s, pos, 1); pos++
        if (c == "}") return
        if (c != ",") fail("expected , or }")
      }
    }
    if (c == "[") {
      pos++; ws(); k = 0
      if (substr(s, pos, 1) == "]") { pos++; return }
      for (;;) {
        value(path "[" k++ "]")
        ws(); c = substr(s, pos, 1); pos++
        if (c == "]") return
        if (c != ",") fail("expected , or ]")
      }
    }
    if (c == "\"") { emit(path, str()); return }
    if (substr(s, pos, 4) == "true") { pos += 4; emit(path, "true"); return }
    if (substr(s, pos, 5) == "false") { pos += 5; emit(path, "false"); return }
    if (substr(s, pos, 4) == "null") { pos += 4; emit(path, "null"); return }
    if (c ~ /[-0-9]/) { emit(path, num()); return }
    fail("unexpected character")
  }
  { s = s $0 "\n" }
  END {
    if (bad) exit 1
    n = length(s); pos = 1
    ws()
    if (substr(s, pos, 1) != "{") fail("not an object")
    value("")
    ws()
    if (pos <= n) fail("trailing text")
  }' "$1"
}

run json demo --duration 500ms --json
if [ "$rc" -eq 0 ]; then ok "demo --json exits 0"; else fail "demo --json exits $rc"; show json; fi
[ "$(grep -c . "$tmp/json.out")" -eq 1 ] && ok "--json prints one line" || fail "--json printed $(grep -c . "$tmp/json.out") lines"
if json_flat "$tmp/json.out" >"$tmp/json.flat" 2>"$tmp/json.parse"; then
  ok "the JSON parses"
else
  fail "the JSON does not parse: $(cat "$tmp/json.parse")"
  show json
fi
# A self-check of the validator: broken JSON is refused.
printf '{"a":1,}\n' >"$tmp/bad1.json"
printf '{"a":[1,2}\n' >"$tmp/bad2.json"
printf '{"a":01}\n' >"$tmp/bad3.json"
printf '{"a":1}x\n' >"$tmp/bad4.json"
for b in 1 2 3 4; do
  json_flat "$tmp/bad$b.json" >/dev/null 2>&1 && fail "the validator accepted bad$b.json"
done

j() { awk -F'\t' -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "MISSING" }' "$tmp/json.flat"; }
expect_key() { # key expected-value
  local v; v=$(j "$1")
  [ "$v" = "$2" ] && ok "json $1 = $2" || fail "json $1 is '$v', expected '$2'"
}
expect_key healthy true
expect_key leaks 0
expect_key misuse_reports 0
expect_key check_violations 0
expect_key corrupt_packets 0
expect_key mode signal
expect_key reserve.target 256
for k in seconds packets pages_served atomic_failures ring_drops worker_frees signals background_allocs \
         latency_ns.p50 latency_ns.p99 latency_ns.p99_9 latency_ns.p99_99 latency_ns.max \
         reserve.now reserve.low_water atomic_reserve_allocs warden_runs; do
  v=$(j "$k")
  echo "$v" | grep -Eq '^[0-9]+(\.[0-9]+)?$' || fail "json $k is '$v', not a non-negative number"
done
awk -v p="$(j packets)" -v s="$(j pages_served)" -v f="$(j atomic_failures)" -v d="$(j ring_drops)" \
    -v w="$(j worker_frees)" 'BEGIN { exit !(p > 0 && p == s + f + d && w == s) }' \
  && ok "packets = served + failures + drops, all served were freed" \
  || fail "packet counts inconsistent: packets $(j packets) served $(j pages_served) failures $(j atomic_failures) drops $(j ring_drops) freed $(j worker_frees)"
awk -v a="$(j latency_ns.p50)" -v b="$(j latency_ns.p99)" -v c="$(j latency_ns.p99_9)" \
    -v d="$(j latency_ns.p99_99)" -v e="$(j latency_ns.max)" 'BEGIN { exit !(a <= b && b <= c && c <= d && d <= e) }' \
  && ok "latency percentiles ordered" || fail "latency percentiles out of order"
# The reserve may stand over its target by a magazine (64 pages in the
# demo's 4096-page zone) per context freeing into it at once - the worker,
# the main thread, its signal handler: a batch freed while the reserve was
# low goes to it whole (include/labyrinth.h, reserve_target_pages).  The
# low water is at most the target or the level now (the warden may trim).
awk -v t="$(j reserve.target)" -v now="$(j reserve.now)" -v lw="$(j reserve.low_water)" \
    'BEGIN { exit !(t > 0 && now <= t + 3 * 64 && (lw <= now || lw <= t)) }' \
  && ok "reserve: now <= target + three magazines, low_water <= max(now, target)" \
  || fail "reserve numbers inconsistent: target $(j reserve.target) now $(j reserve.now) low_water $(j reserve.low_water)"

# ---- poll mode ---------------------------------------------------------------
run poll demo --duration 500ms --mode poll
[ "$rc" -eq 0 ] && grep -Eq 'verdict +healthy' "$tmp/poll.out" && ok "demo --mode poll healthy" \
  || { fail "demo --mode poll exits $rc"; show poll; }

# ---- bad usage: exit 2 and a message ----------------------------------------------
expect_usage() { # grep-pattern args...
  local pat=$1
  shift
  run usage "$@"
  if [ "$rc" -ne 2 ]; then
    fail "'labyrinth $*' exits $rc, expected 2"
    show usage
  elif ! grep -Eqi -- "$pat" "$tmp/usage.err"; then
    fail "'labyrinth $*': no message matching '$pat' on stderr"
    show usage
  else
    ok "'labyrinth $*' exits 2 with a message"
  fi
}
expect_usage "unrecognized option|unknown option" demo --bogus
expect_usage "bad value 'abc' for --duration" demo --duration abc
expect_usage "bad value '0' for --duration" demo --duration 0
expect_usage "bad value '-1s' for --duration" demo --duration -1s
expect_usage "bad value 'fast' for --mode" demo --mode fast
expect_usage "bad value '10' for --pages" demo --pages 10
expect_usage "bad value '0' for --rate" demo --rate 0
expect_usage "bad value '0' for --burst" demo --burst 0
expect_usage "bad value 'shiny' for --quality" demo --quality shiny
expect_usage "--reserve" demo --pages 100 --reserve 100
expect_usage "unexpected argument 'extra'" demo extra
expect_usage "requires an argument|option requires" demo --duration
expect_usage "usage" ""
expect_usage "unknown command 'frobnicate'" frobnicate
run usage
[ "$rc" -eq 2 ] && ok "'labyrinth' alone exits 2" || fail "'labyrinth' alone exits $rc"

# ---- help and version ---------------------------------------------------------------
run help demo --help
[ "$rc" -eq 0 ] && grep -q "usage: labyrinth demo" "$tmp/help.out" && grep -q -- "--duration" "$tmp/help.out" \
  && ok "demo --help exits 0 with the usage on stdout" || { fail "demo --help exits $rc"; show help; }
for h in --help help -h; do
  run help "$h"
  [ "$rc" -eq 0 ] && grep -q "usage: labyrinth" "$tmp/help.out" && ok "labyrinth $h exits 0" \
    || fail "labyrinth $h exits $rc"
done
run version version
if [ -f "$src/include/labyrinth.h" ]; then
  hv=$(awk '/#define LABYRINTH_VERSION_(MAJOR|MINOR|PATCH)/ {v = v (v == "" ? "" : ".") $3} END {print v}' \
       "$src/include/labyrinth.h")
  [ "$rc" -eq 0 ] && grep -qx "labyrinth $hv" "$tmp/version.out" && ok "version $hv" \
    || { fail "labyrinth version: exit $rc, '$(cat "$tmp/version.out")', header says $hv"; }
fi

if [ "$failures" -ne 0 ]; then
  echo "demo: $failures failed"
  exit 1
fi
echo "demo: all passed"
exit 0
