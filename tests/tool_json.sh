#!/usr/bin/env bash
# tests/tool_json.sh BUILD_DIR [SOURCE_DIR] - every --json of the command
# follows docs/json.md: one object on one line (stats: a line per snapshot); "command" first, naming
# the command; no key with a dot; no time in ms or us (seconds, or ns for
# latency); percentiles p50 p99 p99_9 p99_99 max in latency_ns objects;
# quality flags as lists of names; healthy a boolean; and every key it
# prints is listed in docs/json.md (the zone's counters excepted: they are
# struct labyrinth_zone_stats' fields).  Skipped (77) without python3.
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_json "$@"
if [ "$have_py" != 1 ]; then
  echo "SKIPPED: python3 is needed to walk the JSON"
  exit 77
fi
doc="$src/docs/json.md"
[ -f "$doc" ] || { echo "FAIL: $doc missing"; exit 1; }

run demo demo --duration 400ms --pause-worker 100ms,100ms --worker-delay 1us --json --stats --quiet
run bench bench --engine builtin --duration 5ms --runs 1 --samples 1000 --pages 1024 --peers labyrinth,dpdk --json
run stress stress --duration 300ms --threads 1 --seed 3 --sabotage 50 --json --quiet
run info info --json
run stats stats --json --duration 300ms --interval 100ms

cat >"$tmp/check.py" <<'PY'
import json, re, sys
cmd, path, doc = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
text = open(path).read()
problems = []
if (text.count("\n") != 1 and cmd != "stats") or not text.endswith("\n"):
    problems.append("not one line")
d = json.loads(text)
if list(d)[0] != "command" or d["command"] != cmd:
    problems.append("'command' is not first, or not %r" % cmd)
documented = set(re.findall(r"`([a-z0-9_]+)`", doc))
pct = {"p50", "p99", "p99_9", "p99_99", "max", "samples"}
def walk(v, where, parent):
    if isinstance(v, dict):
        for k, x in v.items():
            p = where + "." + k
            if "." in k:
                problems.append("%s: a dot in the key" % p)
            if re.search(r"(^|_)(ms|us|kb)$", k):
                problems.append("%s: a time in ms/us or a size in kB (seconds, ns or bytes)" % p)
            if parent != "counters" and k not in documented:
                problems.append("%s: not in docs/json.md" % p)
            if k == "latency_ns" and not set(x) <= pct:
                problems.append("%s: percentile keys %s" % (p, sorted(set(x) - pct)))
            if k == "quality" and not (isinstance(x, list) and all(isinstance(q, str) for q in x)):
                problems.append("%s: not a list of names: %r" % (p, x))
            if k in ("healthy", "interrupted", "final", "reached") and not isinstance(x, bool):
                problems.append("%s: not a boolean" % p)
            walk(x, p, k)
    elif isinstance(v, list):
        for x in v:
            walk(x, where + "[]", parent)
walk(d, "", "")
for p in sorted(set(problems)):
    print(p)
sys.exit(1 if problems else 0)
PY
for c in demo bench stress info stats; do
  if python3 "$tmp/check.py" "$c" "$tmp/$c.out" "$doc" >"$tmp/$c.check" 2>&1; then
    ok "$c --json follows docs/json.md"
  else
    fail "$c --json: $(head -20 "$tmp/$c.check")"
  fi
done
# The same names for the same things across commands.
json_true "$tmp/demo.out" 'sorted(d["latency_ns"]) == sorted(["p50", "p99", "p99_9", "p99_99", "max"])' "demo: the percentiles"
json_true "$tmp/demo.out" 'd["timer_floor_ns"] > 0 and d["latency_ns"]["p50"] >= d["timer_floor_ns"] and sorted(d["burst_ns"]) == sorted(["p50", "p99", "p99_9", "max"]) and d["burst_ns"]["p50"] >= d["latency_ns"]["p50"] and sorted(d["timer_late_ns"]) == sorted(["p50", "p99", "p99_9", "max"]) and (d["failed_latency_ns"] is None) == (d["atomic_failures"] == 0)' \
  "demo: the allocator's time apart from the burst's and the timer's (a burst holds its allocations; failures timed only when there were some)"
json_true "$tmp/bench.out" 'sorted(d["allocators"][0]["latency_ns"]) == sorted(["p50", "p99", "p99_9", "p99_99", "max", "samples"])' \
  "bench: the same percentiles"
json_true "$tmp/demo.out" 'd["config"]["quality"] == ["poison", "cl_align"] and d["config"]["worker_delay_s"] == 1e-06' \
  "demo: quality by name, the delay in seconds"
json_true "$tmp/stress.out" 'd["config"]["quality"] == ["zero", "poison", "cl_align", "track"] and d["sabotage"]["done"] is True' \
  "stress: quality by name"
json_true "$tmp/stats.out" 'all("t_s" in s for s in d["snapshots"]) and d["machine"]["page_size"] > 0 and "command" not in d["machine"]' \
  "stats: snapshots on t_s, the machine without its own command"
finish
