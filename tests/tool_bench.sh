#!/usr/bin/env bash
# tests/tool_bench.sh BUILD_DIR [SOURCE_DIR] - `labyrinth bench`:
#   the built-in engine on short runs: a table with labyrinth, the seed's
#   macro and glibc, the other peers NOT RUN with the reason; --json parses
#   and its numbers are positive; labyrinth's zone is left healthy;
#   the labyrinth-bench engine, through a stand-in program that records its
#   arguments and prints JSON in labyrinth-bench's layout (one peer
#   MISSING): the arguments passed on, the table and JSON read back; a
#   stand-in that fails makes the command fail; bad options exit 2.
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_bench "$@"
short=(--duration 5ms --runs 1 --samples 2000 --pages 1024)

# ---- built-in engine ----------------------------------------------------------
run text bench --engine builtin "${short[@]}"
expect_rc 0 text "bench --engine builtin"
for p in labyrinth labyrinth-seed glibc; do
  grep -Eq "^$p +[0-9.]+ +[0-9.]+ +[0-9.]+( +[0-9]+){5}" "$tmp/text.out" && ok "a row of numbers for $p" \
    || { fail "no row for $p"; show text; }
done
for p in dpdk tcmalloc jemalloc mimalloc; do
  grep -Eq "^$p +NOT RUN: " "$tmp/text.out" && ok "$p: NOT RUN with a reason" || fail "$p is not said NOT RUN"
done
grep -q "0 pages in use, 0 misuse reports,$" "$tmp/text.out" && grep -q "^  0 invariant violation" "$tmp/text.out" \
  && ok "labyrinth's zone healthy after the runs" || fail "no healthy zone line"

# The counter's step is stated: latencies sit on it.
tr '\n' ' ' <"$tmp/text.out" >"$tmp/text.flat"
grep -Eq "The counter moves in steps of [0-9.]+ ns here, so latencies are multiples" "$tmp/text.flat" \
  && grep -Eq "Two back-to-back reads of it take [0-9]+ ns \(its floor\)" "$tmp/text.flat" \
  && ok "the counter's step and floor are stated" || { fail "the counter's step is not stated"; show text; }
awk 'length($0) > 79 && !/^(allocator|labyrinth|labyrinth-seed|glibc) / { bad = 1 } END { exit bad }' "$tmp/text.out" \
  && ok "the notes fit 79 columns" || fail "a note line is wider than 79 columns"

# labyrinth-bench nowhere to be found (the command copied where no build
# tree is near, PATH without it): the peers only it measures are said once,
# on stderr, briefly; the table's rows stay short, with no search path.
mkdir -p "$tmp/bin"
cp "$tool" "$tmp/bin/labyrinth"
PATH=/usr/bin:/bin "$tmp/bin/labyrinth" bench "${short[@]}" >"$tmp/nobin.out" 2>"$tmp/nobin.err" </dev/null
rc=$?
expect_rc 0 nobin "bench (auto) without labyrinth-bench"
n=$(grep -c "not run: dpdk, tcmalloc, jemalloc, mimalloc" "$tmp/nobin.err")
[ "$n" -eq 1 ] && ok "the peers not run are named once on stderr" || { fail "named $n times on stderr"; show nobin; }
grep -q "not run" "$tmp/nobin.out" && fail "the notice is on stdout" || ok "nothing of it on stdout but the rows"
grep -q "$tmp\|looked at" "$tmp/nobin.out" "$tmp/nobin.err" && { fail "a search path is printed"; show nobin; } \
  || ok "no search path printed"
for p in dpdk tcmalloc jemalloc mimalloc; do
  grep -Eq "^$p +NOT RUN: needs labyrinth-bench, not found$" "$tmp/nobin.out" || fail "$p's row: $(grep "^$p" "$tmp/nobin.out")"
done
ok "short NOT RUN rows"
awk 'length($0) > 79 && !/^(allocator|labyrinth|labyrinth-seed|glibc) / { bad = 1; print } END { exit bad }' "$tmp/nobin.out" \
  && ok "the table's other lines fit 79 columns" || fail "a line of the table is too wide"

run json bench --engine builtin "${short[@]}" --json --peers labyrinth,glibc,dpdk --patterns lifo,latency
expect_rc 0 json "bench --json"
if json_ok "$tmp/json.out"; then ok "bench --json parses"; else fail "bench --json does not parse"; show json; fi
json_true "$tmp/json.out" 'd["command"] == "bench" and d["counter"]["step_ns"] > 0 and d["counter"]["floor_ns"] > 0' \
  "the JSON gives the counter's step and floor"
json_true "$tmp/json.out" 'd["engine"] == "built-in" and d["patterns"] == ["lifo", "latency"] and d["healthy"] is True' \
  "engine, patterns, healthy"
json_true "$tmp/json.out" '[a["name"] for a in d["allocators"]] == ["labyrinth", "dpdk", "glibc"]' "the peers asked for, in order"
json_true "$tmp/json.out" 'all(a["lifo_ns_per_pair"] > 0 and a["burst_ns_per_pair"] is None and a["handoff_mops"] is None for a in d["allocators"] if a["status"] == "ok")' \
  "LIFO measured, burst and handoff not"
json_true "$tmp/json.out" 'all(0 <= a["latency_ns"]["p50"] <= a["latency_ns"]["p99"] <= a["latency_ns"]["p99_9"] <= a["latency_ns"]["p99_99"] <= a["latency_ns"]["max"] and a["latency_ns"]["samples"] == 2000 for a in d["allocators"] if a["status"] == "ok")' \
  "latency percentiles ordered, 2000 samples"
json_true "$tmp/json.out" '[a["status"] for a in d["allocators"]] == ["ok", "not run", "ok"] and d["allocators"][1]["reason"] != ""' \
  "dpdk not run, with a reason"
json_true "$tmp/json.out" 'd["labyrinth_zone"] == {"in_use_pages": 0, "misuse_reports": 0, "check_violations": 0}' \
  "the zone's account"

run handoff bench --engine builtin "${short[@]}" --peers labyrinth --patterns handoff,burst --json
expect_rc 0 handoff "bench handoff"
json_true "$tmp/handoff.out" 'd["allocators"][0]["handoff_mops"] > 0 and d["allocators"][0]["burst_ns_per_pair"] > 0' \
  "handoff and burst measured"

# ---- the labyrinth-bench engine, through a stand-in ---------------------------------
fake="$tmp/labyrinth-bench"
cat >"$fake" <<FAKE
#!/usr/bin/env bash
printf '%s\n' "\$@" >"$tmp/fake.args"
[ -n "\${FAKE_FAIL:-}" ] && { echo "stand-in: failing" >&2; exit 1; }
cat <<'JSON'
{
  "machine": {"cpu": "test", "cpus": 2},
  "timer": {"name": "rdtsc", "ticks_per_ns": 2.5, "step_ns": 20.0, "floor": {"p50_ns": 30, "p99_ns": 30, "samples": 1000}},
  "allocators": [
    {"name": "labyrinth", "status": "ok", "version": "0.1.0", "calls": "x", "setup": "zone",
     "lifo_ns_per_pair": {"median": 7.5, "ratio_to_labyrinth": 1, "operations_per_run": 10, "nulls": 0, "runs": [7.5]},
     "handoff_mops": {"median": 20.25, "ratio_to_labyrinth": 1, "operations_per_run": 10, "nulls": 0, "runs": [20.25]},
     "latency_lifo": {"p50_ns": 30, "p99_ns": 40, "p99_9_ns": 120, "p99_99_ns": 130, "max_ns": 320, "samples": 1000, "nulls": 0},
     "after": "atomic_allocs 1, atomic_failures 0 (reserve served 0), frees 1, misuse_reports 0, retry_cap_hits 0, warden_runs 5, in_use 0, zone_check 0 violation(s)"},
    {"name": "dpdk", "status": "MISSING", "version": "", "calls": "rte_mempool_get", "setup": "libdpdk not found \"really\""},
    {"name": "jemalloc", "status": "ok", "version": "5.3", "calls": "x", "setup": "dlopen",
     "lifo_ns_per_pair": {"error": "gave up"},
     "latency_lifo": {"p50_ns": 50, "p99_ns": 70, "p99_9_ns": 80, "p99_99_ns": 160, "max_ns": null, "samples": 1000, "nulls": 0}}
  ],
  "wall_seconds": 0.06
}
JSON
FAKE
chmod +x "$fake"
run ext bench --bench-binary "$fake" --peers labyrinth,dpdk,jemalloc --patterns lifo,handoff,latency --duration 20ms --runs 2 --samples 5000
expect_rc 0 ext "bench with a labyrinth-bench stand-in"
tr '\n' ' ' <"$tmp/fake.args" | grep -q -- "--json --patterns lifo,handoff,latency --peers labyrinth,dpdk,jemalloc --runs 2 --duration 20 --samples 5000" \
  && ok "the options passed on to labyrinth-bench" || fail "labyrinth-bench got: $(tr '\n' ' ' <"$tmp/fake.args")"
grep -q "labyrinth-bench engine" "$tmp/ext.out" && ok "the table names the engine" || fail "engine not named"
tr '\n' ' ' <"$tmp/ext.out" | grep -q "The counter moves in steps of 20.0 ns here.*reads of it take 30 ns" \
  && ok "labyrinth-bench's counter step and floor read back" || { fail "the external counter step is not stated"; show ext; }
grep -Eq '^labyrinth +7\.50 +- +20\.2 +30 +40 +120 +130 +320' "$tmp/ext.out" && ok "labyrinth's numbers read back" \
  || { fail "labyrinth's row"; show ext; }
grep -Eq '^dpdk +MISSING: libdpdk not found "really"' "$tmp/ext.out" && ok "dpdk MISSING with its reason" || fail "dpdk not MISSING"
grep -Eq '^jemalloc +- +- +- +50 +70 +80 +160 +- .*gave up' "$tmp/ext.out" && ok "a failed series shows its error" \
  || { fail "jemalloc's row"; show ext; }
run extj bench --bench-binary "$fake" --peers labyrinth,dpdk --json
json_ok "$tmp/extj.out" && ok "labyrinth-bench engine --json parses" || fail "labyrinth-bench engine --json does not parse"
json_true "$tmp/extj.out" 'd["engine"] == "labyrinth-bench" and d["allocators"][0]["handoff_mops"] == 20.25 and d["allocators"][1]["status"] == "missing"' \
  "engine, numbers and MISSING in the JSON"
json_true "$tmp/extj.out" 'd["labyrinth_zone"]["check_violations"] == 0 and d["healthy"] is True' "the zone's account read from 'after'"
FAKE_FAIL=1 run extf bench --bench-binary "$fake" --peers labyrinth
expect_rc 1 extf "bench with a failing labyrinth-bench"
grep -q "failed (exit status 1)" "$tmp/extf.err" && ok "the failure is named" || fail "no failure message"
expect_usage "labyrinth-bench not found" bench --bench-binary "$tmp/no-such-bench" --peers dpdk

# The real labyrinth-bench, when this build has one (-DLABYRINTH_BENCH=ON).
if [ -x "$build/bench/labyrinth-bench" ]; then
  run real bench --engine labyrinth-bench --peers labyrinth,glibc --patterns lifo --duration 2ms --runs 1 --json
  expect_rc 0 real "bench with the real labyrinth-bench"
  json_true "$tmp/real.out" 'd["allocators"][0]["lifo_ns_per_pair"] > 0' "the real labyrinth-bench's numbers read back"
else
  echo "note: $build/bench/labyrinth-bench not built here; the stand-in covers that engine"
fi

# ---- bad usage ------------------------------------------------------------------------
expect_usage "bad value 'fast' for --patterns" bench --patterns fast
expect_usage "bad value 'lifo,,x' for --patterns" bench --patterns lifo,,x
expect_usage "bad value 'hoard' for --peers" bench --peers hoard
expect_usage "bad value '0' for --runs" bench --runs 0
expect_usage "bad value '102' for --runs" bench --runs 102
expect_usage "bad value '0' for --duration" bench --duration 0
expect_usage "bad value 'turbo' for --engine" bench --engine turbo
expect_usage "bad value '10' for --samples" bench --samples 10
expect_usage "must end in .png or .svg" bench --plot out.jpg
expect_usage "unexpected argument 'now'" bench now
expect_usage "unrecognized option" bench --bogus
run help bench --help
[ "$rc" -eq 0 ] && grep -q "usage: labyrinth bench" "$tmp/help.out" && ok "bench --help" || fail "bench --help exits $rc"
finish
