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
finish
