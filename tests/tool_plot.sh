#!/usr/bin/env bash
# tests/tool_plot.sh BUILD_DIR [SOURCE_DIR] - plots with gnuplot:
#   an output path that cannot be written (no such directory, a directory,
#   a read-only place) is refused before the run starts: exit 2, a message,
#   nothing on stdout; a gnuplot that fails (a stand-in that also prints
#   bytes on its stdout, as gnuplot does when 'set output' fails) never
#   writes to our stdout: the JSON still parses, its message is one short
#   line, exit 1.  With gnuplot: demo --plot FILE.png writes a PNG, bench
#   --plot FILE.svg an SVG (with its two panels), the run's report is still
#   printed; a file name that is neither .png nor .svg is bad usage.  The
#   gnuplot part is skipped without gnuplot (scripts/deps.sh test installs
#   gnuplot-nox); the rest needs none.
set -u
. "$(dirname "$0")/tool_lib.bash"
tool_setup tool_plot "$@"

# ---- output paths checked before the run ----------------------------------------------
# expect_badpath NAME PATTERN ARGS...: exit 2 at once, PATTERN on stderr,
# nothing on stdout, and the run did not start.
expect_badpath() {
  local name=$1 pat=$2
  shift 2
  local t0 t1
  t0=$(date +%s%N)
  run "$name" "$@"
  t1=$(date +%s%N)
  if [ "$rc" -ne 2 ]; then
    fail "'labyrinth $*' exits $rc, expected 2"; show "$name"
  elif ! grep -Eq -- "$pat" "$tmp/$name.err"; then
    fail "'labyrinth $*': no message matching '$pat'"; show "$name"
  elif [ -s "$tmp/$name.out" ]; then
    fail "'labyrinth $*' wrote $(wc -c <"$tmp/$name.out") bytes on stdout"
  elif grep -q "zone of\|labyrinth bench: labyrinth \.\.\." "$tmp/$name.err"; then
    fail "'labyrinth $*': the run started before the path was checked"; show "$name"
  else
    ok "'labyrinth $*' exits 2 before the run ($(( (t1 - t0) / 1000000 )) ms)"
  fi
}
expect_badpath nodir "bad value '/nonexistent/dir/x.png' for --plot: cannot write there: .*No such file or directory" \
  demo --plot /nonexistent/dir/x.png --duration 300ms
expect_badpath nodirj "cannot write there" demo --plot /nonexistent/dir/x.png --duration 300ms --json
expect_badpath benchdir "bad value '/nonexistent/dir/b.svg' for --plot: cannot write there" \
  bench --engine builtin --duration 5ms --runs 1 --samples 2000 --plot /nonexistent/dir/b.svg
mkdir "$tmp/adir.png"
expect_badpath isdir "cannot write there: it is a directory" demo --plot "$tmp/adir.png" --duration 300ms
: >"$tmp/file"
expect_badpath notdir "cannot write there: .*(is not a directory|Not a directory)" demo --plot "$tmp/file/x.png" --duration 300ms
expect_badpath proc "cannot write there" demo --plot /proc/labyrinth-test.png --duration 300ms
[ ! -e "$tmp/x.png" ] || fail "the check left a file behind"

# ---- a gnuplot that fails: nothing of it on our stdout -------------------------------------
mkdir "$tmp/fakegp"
cat >"$tmp/fakegp/gnuplot" <<'GP'
#!/bin/sh
# A stand-in for gnuplot whose 'set output' failed: its messages on stderr,
# the picture on its stdout.
cat >/dev/null
echo "set output '/somewhere/x.png'" >&2
echo "                                 ^" >&2
echo "         line 0: cannot open file; output not changed" >&2
echo "system error: No such file or directory" >&2
printf '\211PNG\r\n\032\n binary picture bytes'
exit 1
GP
chmod +x "$tmp/fakegp/gnuplot"
PATH="$tmp/fakegp:$PATH" run fakej demo --duration 300ms --quiet --json --plot "$tmp/f.png"
expect_rc 1 fakej "demo --json --plot with a failing gnuplot"
if json_ok "$tmp/fakej.out"; then ok "the JSON on stdout still parses"; else fail "the JSON is broken: $(cat "$tmp/json.err")"; fi
grep -q PNG "$tmp/fakej.out" && fail "gnuplot's picture reached our stdout" || ok "no picture bytes on stdout"
grep -q "gnuplot failed to write $tmp/f.png (exit 1): .*cannot open file; output not changed" "$tmp/fakej.err" \
  && ok "the failure in one line, with gnuplot's reason" || { fail "no short gnuplot message"; show fakej; }
grep -Eq '^ *\^|^set output|^system error' "$tmp/fakej.err" && { fail "gnuplot's own lines are echoed"; show fakej; } \
  || ok "gnuplot's own lines are not echoed"
PATH="$tmp/fakegp:$PATH" run faket demo --duration 300ms --quiet --plot "$tmp/f.png"
grep -q PNG "$tmp/faket.out" && fail "gnuplot's picture reached the text report" || ok "the text report is clean"
PATH="$tmp/fakegp:$PATH" run fakeb bench --engine builtin --duration 5ms --runs 1 --samples 2000 --pages 1024 --json --plot "$tmp/b.svg"
expect_rc 1 fakeb "bench --json --plot with a failing gnuplot"
json_ok "$tmp/fakeb.out" && ok "bench's JSON still parses" || fail "bench's JSON is broken"

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "note: gnuplot is not installed (Debian: gnuplot-nox; scripts/deps.sh test installs it): the plots are not drawn"
  echo "tool_plot: $passes checks ok, $failures checks failed"
  [ "$failures" -eq 0 ] || exit 1
  echo "SKIPPED: the part that needs gnuplot"
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

# The pause is shaded from when the worker stopped to when it resumed (it
# was drawn a 100 ms sample early): the script's rectangle is the JSON's span.
mkdir "$tmp/keep"
LABYRINTH_PLOT_KEEP="$tmp/keep" run shade demo --duration 1200ms --pause-worker 300ms,400ms --plot "$tmp/s.svg" --json --quiet
expect_rc 0 shade "demo --plot with LABYRINTH_PLOT_KEEP"
from=$(jq_get "$tmp/shade.out" '"%.3f" % d["worker_pause"]["from_s"]')
to=$(jq_get "$tmp/shade.out" '"%.3f" % d["worker_pause"]["to_s"]')
grep -q "set object 1 rectangle from first $from, graph 0 to first $to, graph 1" "$tmp/keep/demo.gp" \
  && ok "the shading spans the pause as measured ($from s to $to s)" \
  || { fail "the shading is not the pause ($from..$to)"; grep object "$tmp/keep/demo.gp"; }
awk -v f="$from" '$9 == 1 && $1 < f - 0.001 { bad = 1 } END { exit bad }' "$tmp/keep/demo.dat" \
  && ok "no sample before the pause is marked paused" || fail "a sample before the pause is marked paused"

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
