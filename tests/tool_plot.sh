#!/usr/bin/env bash
# tests/tool_plot.sh BUILD_DIR [SOURCE_DIR] - plots with gnuplot:
#   demo --plot FILE.png writes a PNG, bench --plot FILE.svg an SVG (with
#   its two panels), the run's report is still printed; a file name that is
#   neither .png nor .svg is bad usage.  Skipped (77) without gnuplot
#   (scripts/deps.sh test installs gnuplot-nox).
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_plot "$@"
if ! command -v gnuplot >/dev/null 2>&1; then
  echo "SKIPPED: gnuplot is not installed (Debian: gnuplot-nox; scripts/deps.sh test installs it)"
  exit 77
fi

png="$tmp/demo plot.png"   # a space in the name, on purpose
run demo demo --duration 700ms --pause-worker 200ms,200ms --plot "$png"
expect_rc 0 demo "demo --plot"
if [ -s "$png" ] && [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
  ok "demo --plot wrote a PNG ($(wc -c <"$png") bytes)"
else
  fail "no PNG at $png"; show demo
fi
grep -Eq 'verdict +healthy' "$tmp/demo.out" && ok "the report is printed too" || fail "no report with --plot"
grep -q "wrote $png" "$tmp/demo.err" && ok "the file is named" || fail "the file is not named"

svg="$tmp/bench.svg"
run bench bench --engine builtin --duration 5ms --runs 1 --samples 2000 --pages 1024 --plot "$svg"
expect_rc 0 bench "bench --plot"
if [ -s "$svg" ] && grep -q "<svg" "$svg"; then ok "bench --plot wrote an SVG"; else fail "no SVG at $svg"; show bench; fi
grep -q "allocation latency, CDF" "$svg" && grep -q "throughput" "$svg" && ok "the SVG has the CDF and the bars" \
  || fail "the SVG lacks a panel"
for p in labyrinth labyrinth-seed glibc; do
  grep -q ">$p<" "$svg" || grep -q "$p" "$svg" || fail "the SVG does not name $p"
done
ok "the SVG names the allocators"

# Stats output and a plot together: JSON on stdout stays valid.
run dj demo --duration 300ms --json --plot "$tmp/d.svg"
expect_rc 0 dj "demo --json --plot"
json_ok "$tmp/dj.out" && ok "JSON unchanged by --plot" || fail "JSON broken by --plot"
[ -s "$tmp/d.svg" ] && ok "demo --plot wrote an SVG" || fail "no SVG from demo"

expect_usage "must end in .png or .svg" demo --plot "$tmp/x.pdf"
expect_usage "must end in .png or .svg" bench --plot ""
# gnuplot missing: exit 1 with a message that says how to get it.
PATH=/nonexistent "$tool" demo --duration 100ms --plot "$tmp/y.png" >"$tmp/ng.out" 2>"$tmp/ng.err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "needs gnuplot" "$tmp/ng.err" && ok "without gnuplot: exit 1, and why" \
  || { fail "without gnuplot: exit $rc"; cat "$tmp/ng.err"; }
finish
