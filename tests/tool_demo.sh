#!/usr/bin/env bash
# tests/tool_demo.sh BUILD_DIR [SOURCE_DIR] - `labyrinth demo` beyond
# tests/demo.sh: the worker pause drains the reserve (atomic failures, a low
# point of 0) and the run still ends healthy with the reserve refilled; the
# JSON report with its timeline parses; --mode poll with --cpu; --stats
# prints the buddyinfo layout; the live status prints plain lines when
# stderr is not a terminal; bad values of the new options exit 2.
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_demo "$@"

# ---- drain and recover -------------------------------------------------------
run pause demo --duration 1200ms --pause-worker 300ms,400ms --json
expect_rc 0 pause "demo --pause-worker"
if json_ok "$tmp/pause.out"; then ok "demo --json parses"; else fail "demo --json does not parse: $(cat "$tmp/json.err")"; show pause; fi
json_true "$tmp/pause.out" 'd["healthy"] is True and d["leaks"] == 0 and d["misuse_reports"] == 0 and d["check_violations"] == 0' \
  "healthy, no leak, no misuse, invariants hold"
json_true "$tmp/pause.out" 'd["atomic_failures"] > 0' "the paused worker made atomic allocations fail"
json_true "$tmp/pause.out" 'd["reserve"]["low_water"] == 0' "the reserve drained to 0"
# A free that finds the reserve short moves a whole magazine into it, so the
# reserve may end a little above its target.
json_true "$tmp/pause.out" 'd["reserve"]["now"] >= d["reserve"]["target"]' "the reserve is full again at the end"
json_true "$tmp/pause.out" 'd["packets"] == d["pages_served"] + d["atomic_failures"] + d["ring_drops"]' \
  "packets = served + failures + drops"
json_true "$tmp/pause.out" 'abs(d["drop_rate"] - (d["atomic_failures"] + d["ring_drops"]) / d["packets"]) < 1e-5' \
  "drop_rate = (failures + drops) / packets"
json_true "$tmp/pause.out" 'len(d["timeline"]) >= 8 and all(e["reserve"] >= 0 and e["t_s"] > 0 for e in d["timeline"])' \
  "a timeline of 100 ms samples"
json_true "$tmp/pause.out" 'min(e["reserve"] for e in d["timeline"]) == 0 and d["timeline"][-1]["reserve"] > 0' \
  "the timeline shows the reserve drained, then refilled"
json_true "$tmp/pause.out" 'd["config"]["pause_worker_s"] == [0.3, 0.4]' "the config echoes --pause-worker"
# The pause as the worker measured it, on the samples' clock (the plot
# shades exactly this span).
# Lower bounds only (a loaded machine may start or end it late, never
# early): it starts at 0.3 s or later and ends at 0.7 s or later.  Not its
# length: a worker descheduled at 0.3 s notices the pause late and measures
# it shorter (CI under TSan at 2cc91d6).
json_true "$tmp/pause.out" '0.3 <= d["worker_pause"]["from_s"] < d["worker_pause"]["to_s"] and d["worker_pause"]["to_s"] >= 0.699' \
  "the pause as it happened: from 0.3 s or later to 0.7 s or later, on the timeline's clock"
json_true "$tmp/pause.out" 'all(e["t_s"] < d["worker_pause"]["from_s"] + 0.1 for e in d["timeline"] if e["t_s"] < 0.3)' \
  "samples and pause share one clock"

# ---- a slow worker: the drain at the end is bounded and said -------------------------
# 5 ms per packet leaves ~4000 pages queued: 20 s of drain (the whole run
# took 21 s before the cap), capped at 2 s.  No time is asserted (a shared
# machine is noisy): the cap shows in what the demo says and reports, the
# pages it freed at once.
run slow demo --duration 1s --worker-delay 5ms
expect_rc 0 slow "demo --worker-delay 5ms --duration 1s"
grep -Eq '^labyrinth demo: [0-9]+ pages queued for the worker at 5ms each would take [0-9.]+ s;$' "$tmp/slow.err" \
  && grep -q "it drains for 2s (--drain-limit), then frees the rest at once" "$tmp/slow.err" \
  && ok "it says how long the drain would take and that it is capped" || { fail "no drain notice"; show slow; }
grep -Eq 'draining: [0-9]+ pages queued' "$tmp/slow.err" && ok "a progress line while it drains" || fail "no drain progress line"
grep -Eq '^ *drain at the end +[0-9]+ +pages queued when the run stopped' "$tmp/slow.out" \
  && grep -Eq '[0-9]+ of them freed$' "$tmp/slow.out" && grep -Eq '^ +at once, without the delay \(--drain-limit 2s\)' "$tmp/slow.out" && ok "the report: pages queued, freed at once" \
  || { fail "no drain line in the report"; show slow; }
grep -Eq '^ *leaks +none' "$tmp/slow.out" && ok "nothing leaks" || fail "leaks after a capped drain"
run slowj demo --duration 500ms --worker-delay 10ms --drain-limit 300ms --json --quiet
expect_rc 0 slowj "demo --worker-delay 10ms --drain-limit 300ms"
json_true "$tmp/slowj.out" 'd["drain"]["queued_pages"] > 1000 and 0.2 < d["drain"]["seconds"] and d["drain"]["freed_without_delay"] > 900 and d["leaks"] == 0 and d["healthy"] is True' \
  "the JSON: queued pages, the drain's seconds, pages freed without the delay"
run slow0 demo --duration 300ms --worker-delay 1s --drain-limit 0 --quiet --json
expect_rc 0 slow0 "demo --worker-delay 1s --drain-limit 0"
json_true "$tmp/slow0.out" 'd["drain"]["freed_without_delay"] >= d["drain"]["queued_pages"] - 1' \
  "--drain-limit 0 frees the queue at once"
expect_usage "bad value '2h' for --drain-limit: a duration from 0 .* to 1h" demo --drain-limit 2h

# ---- plain status lines off a terminal ------------------------------------------
run status demo --duration 1100ms
expect_rc 0 status "demo --duration 1100ms"
grep -Eq '^ *1\.[0-9]s +[0-9]+ pkt/s  failures \+[0-9]+  reserve [0-9]+/[0-9]+ low [0-9]+' "$tmp/status.err" \
  && ok "plain status lines on stderr" || { fail "no status line"; show status; }
grep -q $'\r' "$tmp/status.err" && fail "carriage returns off a terminal" || ok "no carriage returns off a terminal"
grep -Eq '^ *drop rate +[0-9.]+%' "$tmp/status.out" && ok "the report gives the drop rate" || fail "no drop rate"
grep -Eq '^ *allocation latency +p50 [0-9]+ ns  p99 [0-9]+ ns  p99\.9 [0-9]+ ns$' "$tmp/status.out" \
  && grep -Eq '^ +p99\.99 [0-9]+ ns  max [0-9]+ ns$' "$tmp/status.out" \
  && ok "latency percentiles" || fail "no latency percentiles"
grep -Eq '^ *reserve .* low point [0-9]+' "$tmp/status.out" && ok "reserve low point" || fail "no reserve low point"
# Words a newcomer can follow: what the timer signals and the NOWAIT
# traffic are, said plainly; outliers, when any, given their cause.
grep -Eq '^ *timer signals +[0-9]+  \(the handler allocates the packets\)$' "$tmp/status.out" \
  && grep -Eq '^ *NOWAIT pages meanwhile +[0-9]+  taken and freed by the same thread$' "$tmp/status.out" \
  && ! grep -q "background NOWAIT pairs" "$tmp/status.out" \
  && ok "the signals and the NOWAIT traffic said plainly" || { fail "the timer-signal lines"; show status; }
if grep -q "slow outliers" "$tmp/status.out"; then
  grep -q "lost its CPU in mid-call" "$tmp/status.out" && grep -q "allocator itself never waits" "$tmp/status.out" \
    && ok "slow outliers given their cause" || fail "slow outliers without their cause"
fi
json_true "$tmp/pause.out" 'd["slow_allocations"] >= 0 and (d["slow_allocations"] == 0 or d["latency_ns"]["max"] >= 100000)' \
  "slow_allocations counts allocations over 100 us"
grep -q '^Two words used throughout: \*\*the seed\*\* is the brief' "$src/README.md" \
  && "$tool" help | grep -q "^The seed is the brief labyrinth was written from" \
  && ok "README and 'labyrinth help' say what the seed is" || fail "the seed is not defined"

# ---- poll mode pinned, quiet ------------------------------------------------------
run poll demo --duration 400ms --mode poll --cpu 0 --quiet --rate 50k
expect_rc 0 poll "demo --mode poll --cpu 0"
grep -q "(pinned)" "$tmp/poll.err" && ok "the poller is pinned" || fail "the poller is not said to be pinned"
grep -Eq 'pkt/s' "$tmp/poll.err" && fail "--quiet still printed status lines" || ok "--quiet: no status lines"

# ---- --stats --------------------------------------------------------------------------
run stats demo --duration 300ms --stats --quality zero
expect_rc 0 stats "demo --stats"
grep -Eq '^order( +[0-9]+){11,}$' "$tmp/stats.out" && grep -Eq '^free blocks( +[0-9]+){11,}$' "$tmp/stats.out" \
  && ok "--stats: free blocks per order" || { fail "--stats: no buddyinfo layout"; show stats; }
grep -Eq '^atomic_allocs +[0-9]+$' "$tmp/stats.out" && grep -Eq '^in_use_pages +0$' "$tmp/stats.out" \
  && ok "--stats: counters, nothing in use at the end" || fail "--stats: counters missing"
run statsj demo --duration 300ms --stats --json
json_ok "$tmp/statsj.out" && ok "--stats --json parses" || fail "--stats --json does not parse"
json_true "$tmp/statsj.out" 'd["zone"]["counters"]["total_pages"] == 4096 and len(d["zone"]["free_blocks"]) >= 11' \
  "--stats --json: the zone's free blocks and counters"

# ---- bad values -------------------------------------------------------------------------
expect_usage "bad value '3s' for --pause-worker" demo --pause-worker 3s
expect_usage "bad value '1s,0' for --pause-worker" demo --pause-worker 1s,0
expect_usage "bad value 'x,1s' for --pause-worker" demo --pause-worker x,1s
expect_usage "bad value '4096' for --cpu" demo --cpu 4096
expect_usage "bad value 'one' for --cpu" demo --cpu one
expect_usage "bad value 'soon' for --worker-delay" demo --worker-delay soon
expect_usage "must end in .png or .svg" demo --plot "$tmp/plot.txt"
expect_usage "labyrinth demo: option '--stats' doesn't allow an argument" demo --stats=yes
run helpd help demo
[ "$rc" -eq 0 ] && grep -q "usage: labyrinth demo" "$tmp/helpd.out" && ok "labyrinth help demo" || fail "labyrinth help demo exits $rc"
finish
