#!/usr/bin/env bash
# model/check.sh [WORKDIR] - check model/labyrinth.pml exhaustively with spin.
# spin -a, pan compiled with gcc -O0 (quicker to build than to run at -O2; safety: assertions and invalid end
# states; -DCOLLAPSE compresses states without losing any), pan run to the
# end.  Fails on any error, and when the search was not exhaustive (depth
# limit reached, search not completed, hash table too small to be exact is
# not possible: -DCOLLAPSE stores every state).  Exit 77 when spin is not
# installed (scripts/deps.sh test installs Debian's package `spin`).
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
if ! command -v spin >/dev/null; then
  echo "SKIPPED: spin is not installed (Debian package spin; scripts/deps.sh test installs it as root)"
  exit 77
fi
cd "$work" || exit 1
cp "$here/labyrinth.pml" .
spin -a labyrinth.pml >spin.log 2>&1 || { cat spin.log; exit 1; }
gcc -O0 -w -DSAFETY -DNOREDUCE -DCOLLAPSE -DMEMLIM=2048 -o pan pan.c >cc.log 2>&1 || { cat cc.log; exit 1; }
t0=$(date +%s)
./pan -m20000 >pan.log 2>&1
rc=$?
cat pan.log
fail=0
grep -q "errors: 0" pan.log || { echo "model: ERRORS (counterexample: cd $work && spin -t -p labyrinth.pml)"; fail=1; }
if grep -qE "Search not completed|max search depth too small|out of memory|reached -DMEMLIM" pan.log; then
  echo "model: the state space was NOT exhausted"; fail=1
fi
[ "$rc" = 0 ] || { echo "model: pan exited $rc"; fail=1; }
states=$(sed -n 's/^ *\([0-9e+.]*\) states, stored.*/\1/p' pan.log)
[ "$fail" = 0 ] && echo "model: exhaustive, no error: $states states stored, $(( $(date +%s) - t0 )) s"
exit $fail
