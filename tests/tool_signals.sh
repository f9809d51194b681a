#!/usr/bin/env bash
# tests/tool_signals.sh BUILD_DIR [SOURCE_DIR] - Ctrl-C and SIGTERM end a
# run early with its report: demo and stress (as `make soak` runs it) and
# stats print the partial report marked as interrupted (text and JSON),
# nothing leaks, and exit 130 (SIGINT) or 143 (SIGTERM); a run stopped
# while the worker drains a slow queue stops at once; a second SIGINT ends
# the process without waiting.  (On a terminal, Ctrl-C typed at the
# keyboard: tests/tool_tty.sh.)
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_signals "$@"
# Job control: background jobs get default signal dispositions (without
# it, bash starts them with SIGINT ignored, and an ignored SIGINT stays
# ignored).
set -m

# bg_signal NAME SIG AFTER ARGS...: start the tool, send SIG after AFTER
# seconds, wait; $rc, $tmp/NAME.out, $tmp/NAME.err, $elapsed (ms after the signal).
bg_signal() {
  local name=$1 sig=$2 after=$3
  shift 3
  "$tool" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" </dev/null &
  local pid=$!
  sleep "$after"
  local t0
  t0=$(date +%s%N)
  kill -s "$sig" "$pid"
  wait "$pid"
  rc=$?
  elapsed=$(( ($(date +%s%N) - t0) / 1000000 ))
}

# ---- demo --------------------------------------------------------------------------
bg_signal dint INT 1.5 demo --duration 60s
expect_rc 130 dint "demo, SIGINT after 1.5 s"
[ "$elapsed" -lt 8000 ] && ok "demo stopped ${elapsed} ms after the signal" || fail "demo took ${elapsed} ms to stop"
grep -Eq '^labyrinth demo report: INTERRUPTED by SIGINT after [0-9.]+ s of 60\.0 s' "$tmp/dint.out" \
  && ok "the partial report, marked as interrupted" || { fail "no interrupted report"; show dint; }
grep -Eq '^ *leaks +none' "$tmp/dint.out" && grep -Eq '^ *invariant check +ok' "$tmp/dint.out" \
  && ok "the partial report: no leak, invariants hold" || fail "the partial report is not healthy"
grep -Eq '^ *verdict +healthy, for the [0-9.]+ s it ran \(interrupted\)' "$tmp/dint.out" && ok "the verdict says so" \
  || fail "the verdict does not say interrupted"
grep -q "SIGINT: stopping after" "$tmp/dint.err" && ok "stderr says it is stopping" || fail "no stopping message"

bg_signal dterm TERM 1 demo --duration 60s --json
expect_rc 143 dterm "demo --json, SIGTERM"
json_ok "$tmp/dterm.out" && ok "the JSON of an interrupted run parses" || { fail "the JSON does not parse"; show dterm; }
json_true "$tmp/dterm.out" 'd["interrupted"] is True and d["interrupted_by"] == "SIGTERM" and 0.3 < d["seconds"] < 30 and d["healthy"] is True and d["leaks"] == 0' \
  "the JSON: interrupted by SIGTERM, the seconds it ran, healthy"

# Interrupted while a slow worker drains: the queue is freed at once.
bg_signal ddrain INT 1.2 demo --duration 1s --worker-delay 10ms --drain-limit 1h
expect_rc 130 ddrain "demo interrupted during a 40 s drain"
[ "$elapsed" -lt 8000 ] && ok "the drain stopped ${elapsed} ms after the signal" || fail "the drain took ${elapsed} ms more"
grep -Eq "freed$" "$tmp/ddrain.out" && grep -Eq '^ *leaks +none' "$tmp/ddrain.out" \
  && ok "the queued pages freed at once, nothing leaked" || { fail "drain not cut short"; show ddrain; }

# A second SIGINT: out at once (killed by the signal, the shell's 130).
"$tool" demo --duration 60s --worker-delay 100ms --drain-limit 1h >"$tmp/twice.out" 2>"$tmp/twice.err" </dev/null &
pid=$!
sleep 1
kill -INT "$pid"
sleep 0.05
kill -INT "$pid" 2>/dev/null
wait "$pid"
rc=$?
[ "$rc" -eq 130 ] && ok "a second SIGINT ends it (exit $rc)" || fail "after two SIGINTs: exit $rc"

# ---- stress (make soak runs it) ----------------------------------------------------------
bg_signal sint INT 1.5 stress --duration 1h --verify --max-order 6 --threads 2 --seed 11
expect_rc 130 sint "stress (the soak's command line), SIGINT"
[ "$elapsed" -lt 8000 ] && ok "stress stopped ${elapsed} ms after the signal" || fail "stress took ${elapsed} ms to stop"
grep -Eq '^labyrinth stress report: INTERRUPTED by SIGINT after [0-9.]+ s of 3600\.0 s' "$tmp/sint.out" \
  && ok "stress: the partial report, marked as interrupted" || { fail "stress: no interrupted report"; show sint; }
grep -Eq '^ *pages in use at end +0$' "$tmp/sint.out" && grep -Eq '^ *verdict +no violation, in the [0-9.]+ s it ran \(interrupted\)' "$tmp/sint.out" \
  && ok "stress: every block freed, no violation" || fail "stress: partial report incomplete"
bg_signal sterm TERM 1 stress --duration 1h --threads 2 --json --quiet
expect_rc 143 sterm "stress --json, SIGTERM"
json_true "$tmp/sterm.out" 'd["interrupted"] is True and d["interrupted_by"] == "SIGTERM" and d["healthy"] is True and d["in_use_pages"] == 0' \
  "stress JSON: interrupted, healthy, nothing in use"
# A huge --check-every still stops promptly.
bg_signal scheck INT 1 stress --duration 1h --threads 1 --check-every 100M --quiet
expect_rc 130 scheck "stress --check-every 100M, SIGINT"
[ "$elapsed" -lt 8000 ] && ok "... stopped ${elapsed} ms after the signal" || fail "... took ${elapsed} ms"

# ---- stats: the run's status is stats' -----------------------------------------------------
bg_signal stj INT 1.2 stats --duration 60s --interval 500ms --json
expect_rc 130 stj "stats --json, SIGINT"
json_ok "$tmp/stj.out" && ok "stats' JSON parses" || { fail "stats' JSON does not parse"; show stj; }
json_true "$tmp/stj.out" 'd["exit_status"] == 130 and d["snapshots"][-1]["final"] is True' "stats: exit status 130, a final snapshot"
finish
