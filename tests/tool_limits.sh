#!/usr/bin/env bash
# tests/tool_limits.sh BUILD_DIR [SOURCE_DIR] - what the commands accept:
#   every refused value exits 2 and says the valid range or words; durations
#   take us, ms, s, m and h; absurd durations are refused before the run
#   starts (not "out of memory" after it).
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_limits "$@"

# expect_range PATTERN ARGS...: exit 2, the message states PATTERN (the range).
expect_range() { expect_usage "$@"; }

# ---- ranges stated ---------------------------------------------------------------
expect_range "bad value '32' for --pages: .*64 to 4194304 pages" demo --pages 32
expect_range "bad value '100000' for --burst: .*from 1 to 4096" demo --burst 100000
expect_range "bad value '0' for --rate: .*from 1 to 100M" demo --rate 0
expect_range "bad value '2s' for --worker-delay: .*from 0 to 1s" demo --worker-delay 2s
expect_range "bad value 'fast' for --mode: 'signal' or 'poll'" demo --mode fast
expect_range "bad value '4096' for --cpu: a CPU number from 0 to [0-9]+" demo --cpu 4096
expect_range "bad value 'x,1s' for --pause-worker: AT,LEN" demo --pause-worker x,1s
expect_range "bad value 'gold' for --quality: a comma list of zero, poison, cl_align" demo --quality gold
expect_range "--reserve 100 must be below --pages 100 \(from 1 to 99\)" demo --pages 100 --reserve 100
expect_range "bad value '0' for --threads: from 1 to 64" stress --threads 0
expect_range "bad value '11' for --max-order: .*from 0 .* to 10" stress --max-order 11
expect_range "bad value '100' for --pages: .*256 to 4194304" stress --pages 100
expect_range "bad value '2M' for --signal-rate: .*0 \(none\) to 1M" stress --signal-rate 2M
expect_range "bad value '0' for --check-every: .*from 1 to 100M" stress --check-every 0
expect_range "bad value '0' for --sabotage: .*1 or more" stress --sabotage 0
expect_range "bad value '102' for --runs: from 1 to 101" bench --runs 102
expect_range "bad value '10' for --samples: from 100 to" bench --samples 10
expect_range "bad value '11m' for --duration: .*1ms to 10m" bench --duration 11m
expect_range "bad value 'hoard' for --peers: a comma list of labyrinth" bench --peers hoard
expect_range "bad value 'turbo' for --engine: auto, builtin or labyrinth-bench" bench --engine turbo
expect_range "bad value 'bench' for --run: 'demo' or 'stress'" stats --run bench
expect_range "bad value '50ms' for --interval: .*at least 100ms" stats --interval 50ms

# ---- durations: us, ms, s, m, h --------------------------------------------------------
expect_range "bad value '2h' for --duration: a duration from 1ms to 1h" demo --duration 2h
expect_range "bad value '1e9s' for --duration: a duration from 1ms to 1h" demo --duration 1e9s
expect_range "bad value '169h' for --duration: a duration from 1ms to 168h" stress --duration 169h
expect_range "bad value '1d' for --duration: .*us, ms, s, m or h" demo --duration 1d
expect_range "bad value '500us' for --duration: a duration from 1ms" demo --duration 500us
# Accepted: each unit parses (--help after the value: parsed, nothing run).
for d in 1h 2m 1.5s 250ms 5000us 0.01m; do
  run dur demo --duration "$d" --help
  [ "$rc" -eq 0 ] && ok "demo --duration $d accepted" || { fail "demo --duration $d refused"; show dur; }
done
run durs stress --duration 168h --help
expect_rc 0 durs "stress --duration 168h accepted"
# A run in minutes really runs (0.005m = 300 ms).
run minutes demo --duration 0.005m --quiet --json
expect_rc 0 minutes "demo --duration 0.005m"
json_true "$tmp/minutes.out" '0.25 < d["seconds"] < 2' "0.005m is 300 ms"
# ---- meaningless or conflicting values: refused, or a warning ----------------------------
expect_usage "bad value '0' for --reserve: from 1 to one below --pages \(0 would be the library's default" demo --reserve 0
expect_usage "bad value 'none,zero' for --quality: .*'none' alone" demo --quality none,zero
expect_usage "bad value 'all,none' for --quality" stress --quality all,none
expect_usage "bad value 'zero,,poison' for --quality" demo --quality zero,,poison
expect_usage "--pause-worker 5s,1s would start after the run ends \(--duration 2s\)" demo --pause-worker 5s,1s --duration 2s
expect_usage "--rate 100000000 in bursts of 32 needs a burst every 320 ns" demo --rate 100M
expect_usage "--duration 5s given twice, to stats and to the run" stats --duration 1s -- --duration 5s
expect_usage "--json after '--' has no effect" stats -- --json
expect_usage "--quiet after '--' has no effect" stats --run stress -- --quiet
expect_usage "--interval is not shorter than the run" stats --duration 1s --interval 1s
expect_usage "no help for 'frob': it is not a command" help frob
expect_usage "help takes one command at most" help demo stress
run helpv help version
expect_rc 0 helpv "labyrinth help version"

# The run's --duration after '--' (given once) is the run's and the header's.
run statsd stats --json -- --duration 300ms --rate 10k
expect_rc 0 statsd "stats -- --duration 300ms"
json_true "$tmp/statsd.out" 'd["snapshots"][-1]["t_s"] < 1.5' "the run's --duration is used"

# A pause that runs past the end: a warning, the pause cut short.
run pause demo --pause-worker 300ms,2s --duration 600ms --quiet
expect_rc 0 pause "demo --pause-worker past the end of the run"
grep -q "warning: the run ends at 0.6 s, before the pause would (2.3 s)" "$tmp/pause.err" \
  && ok "a pause past the end: a warning" || { fail "no warning for a pause past the end"; show pause; }

# A rate the fast context cannot deliver: said up front, at the end, in the
# report and the JSON; the verdict names what it judges.
run rate demo --rate 5M --duration 1s --quiet
expect_rc 0 rate "demo --rate 5M"
grep -q "warning: 5000000 packets/s in bursts of 32 is a timer signal" "$tmp/rate.err" \
  && grep -q "every 6.4 us (156250/s)" "$tmp/rate.err" \
  && ok "--rate 5M: a warning before the run" || { fail "no warning before the run"; show rate; }
grep -Eq "warning: [0-9]+ packets/s delivered, of 5000000/s asked" "$tmp/rate.err" \
  && ok "--rate 5M: the rate delivered, after the run" || fail "no warning after the run"
grep -Eq '^ *rate NOT REACHED +[0-9]+/s delivered of 5000000/s asked' "$tmp/rate.out" \
  && grep -Eq "^ *verdict +healthy$" "$tmp/rate.out" && grep -Eq "^ +\(the allocator's; the rate asked was not reached\)$" "$tmp/rate.out" \
  && ok "--rate 5M: the report says the rate was not reached" || { fail "the report hides the short rate"; show rate; }
run ratej demo --rate 5M --duration 500ms --quiet --json
json_true "$tmp/ratej.out" 'd["rate"]["asked_per_s"] == 5000000 and d["rate"]["reached"] is False and d["rate"]["delivered_per_s"] < 4500000' \
  "--rate 5M: the JSON says the rate was not reached"
run rateok demo --rate 1000 --duration 1s --quiet --json
# Whether 1000/s is delivered depends on the machine's load (one CI run
# under ASan, beside other jobs, missed it): the verdict must follow what
# was delivered (90 % of the rate asked), not assert a speed.
json_true "$tmp/rateok.out" 'd["rate"]["delivered_per_s"] > 0 and d["rate"]["reached"] == (d["rate"]["delivered_per_s"] >= 0.9 * d["rate"]["asked_per_s"])' \
  "a modest rate: delivered, and 'reached' says whether 90 % of it was"

# --sabotage beyond the end of the run: not "no violation" alone.
run sab stress --sabotage 100M --duration 300ms --threads 1 --quiet
grep -q "warning: --sabotage 100000000 was never reached" "$tmp/sab.err" \
  && grep -Eq '^ *sabotage +NOT DONE: thread 0 stopped at operation [0-9]+,$' "$tmp/sab.out" \
  && grep -Eq '^ *verdict +no violation, but --sabotage was never reached' "$tmp/sab.out" \
  && ok "--sabotage never reached: said on stderr and in the report" || { fail "--sabotage not reached, not said"; show sab; }
run sabj stress --sabotage 100M --duration 300ms --threads 1 --quiet --json
json_true "$tmp/sabj.out" 'd["sabotage"] == {"at_operation": 100000000, "done": False}' "the JSON: the sabotage not done"
finish
