#!/usr/bin/env bash
# tests/tool_stress.sh BUILD_DIR [SOURCE_DIR] - `labyrinth stress`:
#   a short run with threads, a signal storm and frequent quiescent checks
#   exits 0 with no violation; its JSON parses and adds up (every bad free
#   reported once, nothing in use at the end); a VERIFY zone and a single
#   thread without signals pass too; --sabotage makes it find a corrupted
#   payload, exit 1 and print the seed, the operation count and a command
#   line that repeats the run; bad options exit 2.
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_stress "$@"

run text stress --duration 700ms --threads 3 --seed 12345 --check-every 500 --signal-rate 6000
expect_rc 0 text "stress --duration 700ms"
grep -Eq '^ *verdict +no violation$' "$tmp/text.out" && ok "verdict: no violation" || { fail "no verdict"; show text; }
grep -Eq '^ *quiescent checks +[1-9][0-9]*' "$tmp/text.out" && ok "quiescent checks ran" || fail "no quiescent check ran"
grep -Eq '^ *pages in use at end +0$' "$tmp/text.out" && ok "nothing in use at the end" || fail "pages in use at the end"
grep -q "seed 12345" "$tmp/text.err" && ok "the seed is printed" || fail "the seed is not printed"
grep -Eq '^ *[0-9.]+s +ops [0-9]+' "$tmp/text.err" && ok "progress lines" || echo "note: no progress line (run shorter than 1 s)"

run json stress --duration 500ms --threads 2 --seed 99 --check-every 300 --json --quiet
expect_rc 0 json "stress --json"
if json_ok "$tmp/json.out"; then ok "stress --json parses"; else fail "stress --json does not parse"; show json; fi
json_true "$tmp/json.out" 'd["healthy"] is True and d["violations"] == 0 and d["violation"] is None' "healthy"
json_true "$tmp/json.out" 'd["seed"] == 99 and d["threads"] == 2 and d["operations"] > 0 and d["checks"] > 0' \
  "seed, threads, operations, checks"
json_true "$tmp/json.out" 'd["bad_frees"] > 0 and d["misuse_reports"] == d["bad_frees"]' "every deliberate bad free reported once"
json_true "$tmp/json.out" 'd["in_use_pages"] == 0 and d["check_violations"] == 0' "empty and consistent at the end"
json_true "$tmp/json.out" 'all(d["allocs"][m] > 0 for m in ("atomic", "nowait", "kernel"))' "every mode used"
json_true "$tmp/json.out" 'd["signals"] > 0 and d["handoffs"] > 0 and d["page_infos"] > 0' "signals, hand-offs, page_info"

run verify stress --duration 400ms --threads 2 --verify --max-order 2 --quality zero,poison --quiet
expect_rc 0 verify "stress --verify"
run one stress --duration 300ms --threads 1 --signal-rate 0 --max-order 0 --quality none --quiet
expect_rc 0 one "stress with one thread, no signals, order 0"

# ---- a violation is found and reported -------------------------------------------------
run sab stress --duration 5s --threads 2 --seed 4242 --sabotage 200 --check-every 1000 --quiet
expect_rc 1 sab "stress --sabotage"
grep -q "VIOLATION: payload of block" "$tmp/sab.err" && ok "the corrupted payload is reported" || { fail "no violation reported"; show sab; }
grep -Eq "seed 4242, thread [01], operation [0-9]+ of that thread" "$tmp/sab.err" && ok "seed, thread and operation count" \
  || fail "no seed/thread/operation"
grep -q "reproduce: labyrinth stress --seed 4242 --threads 2 --check-every 1000 .* --sabotage 200" "$tmp/sab.err" \
  && ok "a command line that repeats the run" || fail "no reproducer line"
grep -Eq '^ *verdict +VIOLATION$' "$tmp/sab.out" && ok "verdict VIOLATION" || fail "verdict not VIOLATION"
run sabj stress --duration 5s --threads 1 --seed 5 --sabotage 50 --json --quiet
expect_rc 1 sabj "stress --sabotage --json"
json_true "$tmp/sabj.out" 'd["healthy"] is False and d["violation"]["thread"] == 0 and d["violation"]["operation"] >= 50 and "--seed 5 " in d["violation"]["reproduce"]' \
  "the violation in the JSON"

# ---- bad usage -------------------------------------------------------------------------------
expect_usage "bad value '0' for --threads" stress --threads 0
expect_usage "bad value '65' for --threads" stress --threads 65
expect_usage "bad value 'abc' for --seed" stress --seed abc
expect_usage "bad value '0' for --check-every" stress --check-every 0
expect_usage "bad value '11' for --max-order" stress --max-order 11
expect_usage "bad value 'gold' for --quality" stress --quality gold
expect_usage "bad value '0' for --duration" stress --duration 0
expect_usage "bad value '0' for --sabotage" stress --sabotage 0
expect_usage "bad value '100' for --pages" stress --pages 100
expect_usage "unexpected argument 'hard'" stress hard
expect_usage "unrecognized option" stress --forever
run help stress --help
[ "$rc" -eq 0 ] && grep -q "usage: labyrinth stress" "$tmp/help.out" && ok "stress --help" || fail "stress --help exits $rc"
finish
