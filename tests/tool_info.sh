#!/usr/bin/env bash
# tests/tool_info.sh BUILD_DIR [SOURCE_DIR] - `labyrinth info` and
# `labyrinth stats`: the machine report (text and JSON, cores agreeing with
# nproc, huge pages with /proc/meminfo); stats around a short demo and a
# short stress run: free blocks per order in a /proc/buddyinfo-like layout
# and counters, at intervals and at the end; --json parses; the run's exit
# status is stats' exit status; options after -- reach the run; bad
# options exit 2.
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_info "$@"

# ---- info ---------------------------------------------------------------------
run info info
expect_rc 0 info "info"
for k in "cores" "page size" "huge pages" "physical addresses" "rseq" "locked memory limit"; do
  grep -Eq "^  $k " "$tmp/info.out" && ok "info: $k" || { fail "info: no '$k' line"; show info; }
done
# Other tests may reserve huge pages meanwhile: read /proc/meminfo around the run.
hp0=$(awk '/^HugePages_Total:/ {print $2}' /proc/meminfo)
run infoj info --json
hp1=$(awk '/^HugePages_Total:/ {print $2}' /proc/meminfo)
expect_rc 0 infoj "info --json"
if json_ok "$tmp/infoj.out"; then ok "info --json parses"; else fail "info --json does not parse"; show infoj; fi
online=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)
json_true "$tmp/infoj.out" "d['cores']['online'] == $online and d['page_size'] == $(getconf PAGESIZE)" "cores and page size agree with getconf"
[ -n "$hp0" ] && [ -n "$hp1" ] && json_true "$tmp/infoj.out" "d['huge_pages']['reserved'] in ($hp0, $hp1)" "huge pages agree with /proc/meminfo"
json_true "$tmp/infoj.out" 'isinstance(d["physical_addresses"]["readable"], bool) and d["rseq"]["registered"] in (True, False, None)' \
  "physical addresses and rseq answered"
if [ "$(id -u)" = 0 ]; then
  json_true "$tmp/infoj.out" 'd["physical_addresses"]["readable"] is True' "root reads physical addresses"
fi

# ---- stats around a demo ---------------------------------------------------------------
run stats stats --duration 600ms --interval 200ms
expect_rc 0 stats "stats --duration 600ms --interval 200ms"
grep -Eq '^  cores ' "$tmp/stats.out" && ok "stats: the machine first" || fail "stats: no machine report"
n=$(grep -Ec '^free blocks( +[0-9]+){11,}$' "$tmp/stats.out")
[ "$n" -ge 2 ] && ok "stats: $n buddyinfo snapshots" || { fail "stats: $n snapshots, expected at least 2"; show stats; }
grep -q "end of run" "$tmp/stats.out" && ok "stats: a snapshot at the end of the run" || fail "no end-of-run snapshot"
for c in total_pages free_pages in_use_pages reserve_free_pages atomic_allocs atomic_failures misuse_reports warden_runs; do
  grep -Eq "^$c +[0-9]+$" "$tmp/stats.out" || fail "stats: no counter $c"
done
ok "stats: the counters"
grep -q "the demo run was healthy" "$tmp/stats.out" && ok "stats: the run's verdict" || fail "stats: no verdict"
grep -q "labyrinth demo report" "$tmp/stats.out" && fail "stats printed the demo's own report" || ok "stats: no demo report"

run statsj stats --json --duration 300ms --interval 100ms -- --rate 10k --pages 2048
expect_rc 0 statsj "stats --json"
if json_ok "$tmp/statsj.out"; then ok "stats --json parses"; else fail "stats --json does not parse"; show statsj; fi
json_true "$tmp/statsj.out" 'd["run"] == "demo" and d["exit_status"] == 0 and d["machine"]["cores"]["online"] > 0' "run, exit status, machine"
json_true "$tmp/statsj.out" 'len(d["snapshots"]) >= 2 and d["snapshots"][-1]["final"] is True and not d["snapshots"][0]["final"]' \
  "interval snapshots, then a final one"
json_true "$tmp/statsj.out" 'd["snapshots"][-1]["counters"]["total_pages"] == 2048' "options after -- reach the demo"
json_true "$tmp/statsj.out" 'all(sum(n << o for o, n in enumerate(s["free_blocks"])) == s["counters"]["buddy_free_pages"] for s in d["snapshots"] if s["final"])' \
  "free blocks per order add up to the buddy's free pages at the end"

run stress stats --run stress --duration 400ms -- --threads 2 --seed 3
expect_rc 0 stress "stats --run stress"
grep -Eq "^stress zone 'stress' at [0-9.]+ s, end of run" "$tmp/stress.out" && ok "stats: the stress zone at the end" \
  || { fail "no stress snapshot"; show stress; }
grep -Eq '^in_use_pages +0$' "$tmp/stress.out" && ok "stats: stress left nothing in use" || fail "stress left pages in use"

run fails stats --run stress --duration 2s -- --sabotage 20 --threads 1
expect_rc 1 fails "stats around a failing stress run"

# ---- bad usage ---------------------------------------------------------------------------
expect_usage "bad value 'bench' for --run" stats --run bench
expect_usage "bad value '1ms' for --interval" stats --interval 1ms
expect_usage "bad value '0' for --duration" stats --duration 0
expect_usage "unexpected argument 'now'" stats now
expect_usage "bad value 'x' for --rate" stats --duration 100ms -- --rate x
expect_usage "unrecognized option" info --verbose
expect_usage "unexpected argument 'cpu'" info cpu
for c in info stats; do
  run help "$c" --help
  [ "$rc" -eq 0 ] && grep -q "usage: labyrinth $c" "$tmp/help.out" && ok "$c --help" || fail "$c --help exits $rc"
done
finish
