#!/usr/bin/env bash
# The report handler ring's model (model/report_ring.pml; KB46), checked
# exhaustively with spin: 3 changes of the handler on a ring of 2 slots and
# a report, every interleaving.  Then the model of the code before the fix
# (-DOLD) must fail, which shows the search reaches the interleaving that
# broke.  Run once, in the plain build (the model does not depend on the
# compiler or a sanitizer; the other flavours skip).  $1 = build dir.
set -u
build=$1 src=${2:-$(dirname "$0")/..}
if grep -qE '^LABYRINTH_SANITIZE:STRING=.+|^LABYRINTH_WRAP:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null ||
   grep -q '^CMAKE_C_COMPILER:.*clang' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "SKIPPED: checked in the plain gcc build only"; exit 77
fi
if ! command -v spin >/dev/null; then
  echo "SKIPPED: spin is not installed (Debian package spin; scripts/deps.sh test installs it as root)"; exit 77
fi
work="$build/model-ring"
fail=0
for m in "ring:" "ring-old:-DOLD"; do
  name=${m%%:*} defs=${m#*:} d="$work/${m%%:*}"
  rm -rf "$d" && mkdir -p "$d" && cd "$d" || exit 1
  cp "$src/model/report_ring.pml" .
  spin $defs -a report_ring.pml >spin.log 2>&1 || { cat spin.log; exit 1; }
  gcc -O2 -w -DSAFETY -DNOREDUCE -DCOLLAPSE -DMEMLIM=2048 -o pan pan.c >cc.log 2>&1 || { cat cc.log; exit 1; }
  t0=$(date +%s)
  ./pan -m20000 >pan.log 2>&1
  states=$(sed -n 's/^ *\([0-9e+.]*\) states, stored.*/\1/p' pan.log)
  secs=$(( $(date +%s) - t0 ))
  if [ "$name" = ring ]; then
    if grep -q "errors: 0" pan.log && ! grep -qE "Search not completed|max search depth too small|reached -DMEMLIM" pan.log; then
      echo "model ring: exhaustive, no error: $states states stored, $secs s"
    else
      cat pan.log; echo "model ring: ERRORS or not exhaustive (counterexample: cd $d && spin -t -p report_ring.pml)"; fail=1
    fi
  else
    if grep -q "assertion violated" pan.log; then
      echo "model ring-old (the code before KB46's fix): fails, as it must: $(grep -m1 'assertion violated' pan.log)"
    else
      cat pan.log; echo "model ring-old: did NOT fail: the ring model would pass vacuously"; fail=1
    fi
  fi
done
exit $fail
