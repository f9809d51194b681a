#!/usr/bin/env bash
# model/check.sh [WORKDIR] - check model/labyrinth.pml exhaustively with spin.
# spin -a, pan compiled with gcc -O0 (quicker to build than to run at -O2;
# safety: assertions and invalid end states; -DCOLLAPSE compresses states
# without losing any), pan run to the end.  Two models:
#   default     every remote free gets a batch magazine (pool slack)
#   -DFALLBACK  a smaller pool: remote frees also go through the pages'
#               queue links (remote.c), racing the owner's plain stores
# Each fails on any error, and when the search was not exhaustive (depth
# limit reached, search not completed, memory limit).  Then reachability
# probes: the FALLBACK model with -DPROBE_STALE (a freer's QUEUED
# overwritten by the owner's own free) and -DPROBE_DETECT (the owner drops
# that stale entry) must each FAIL, which shows the search reaches those
# branches (a model whose fallback was never taken would pass vacuously).
# Then model/outbox_steal.pml (the warden steals an idle freer's partial
# outboxes, under TSO store buffering): exhaustive and error-free, and its
# probes must FAIL: -DPROBE_NO_MEMBARRIER (the warden's membarrier does
# nothing: its mutual exclusion assertion fails), -DPROBE_STOLEN (a partial
# batch is stolen) and -DPROBE_FREER_SEES_2 (a freer meets a steal under
# way and frees a batch of one).
# SPIN_DEFS="..." checks one model (labyrinth.pml) with those definitions only.
# Exit 77 when spin is not installed (scripts/deps.sh test installs
# Debian's package `spin`).
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
if ! command -v spin >/dev/null; then
  echo "SKIPPED: spin is not installed (Debian package spin; scripts/deps.sh test installs it as root)"
  exit 77
fi

# run NAME DEFS [MODEL]: pan's verdict in $work/NAME; returns 0 when
# exhaustive and error-free, 1 on an error, 2 when the search was not
# exhaustive.  MODEL: a file of model/, labyrinth.pml by default.
run() {
  local name=$1 defs=$2 pml=${3:-labyrinth.pml} d="$work/$1"
  mkdir -p "$d" && cd "$d" || return 2
  cp "$here/$pml" .
  spin $defs -a "$pml" >spin.log 2>&1 || { cat spin.log; return 2; }
  gcc -O0 -w -DSAFETY -DNOREDUCE -DCOLLAPSE -DMEMLIM=2048 -o pan pan.c >cc.log 2>&1 || { cat cc.log; return 2; }
  local t0 rc
  t0=$(date +%s)
  ./pan -m20000 >pan.log 2>&1
  rc=$?
  states=$(sed -n 's/^ *\([0-9e+.]*\) states, stored.*/\1/p' pan.log)
  secs=$(( $(date +%s) - t0 ))
  if ! grep -q "errors: 0" pan.log; then return 1; fi
  if grep -qE "Search not completed|max search depth too small|out of memory|reached -DMEMLIM" pan.log || [ "$rc" != 0 ]; then
    return 2
  fi
  return 0
}

fail=0
if [ -n "${SPIN_DEFS:-}" ]; then
  models=("custom:$SPIN_DEFS")
else
  models=("default:" "fallback:-DFALLBACK")
fi
for m in "${models[@]}"; do
  name=${m%%:*} defs=${m#*:}
  run "$name" "$defs"
  case $? in
    0) echo "model $name${defs:+ ($defs)}: exhaustive, no error: $states states stored, $secs s" ;;
    1) cat "$work/$name/pan.log"
       echo "model $name: ERRORS (counterexample: cd $work/$name && spin $defs -t -p labyrinth.pml)"; fail=1 ;;
    *) cat "$work/$name/pan.log"; echo "model $name: the state space was NOT exhausted"; fail=1 ;;
  esac
done
if [ -z "${SPIN_DEFS:-}" ]; then
  for probe in STALE DETECT; do
    run "probe-$probe" "-DFALLBACK -DPROBE_$probe"
    if [ $? = 1 ] && grep -q "assertion violated 0" "$work/probe-$probe/pan.log"; then
      echo "model probe $probe: reached (its probe assertion fails, as it must)"
    else
      echo "model probe $probe: NOT reached: the fallback model would pass vacuously"; fail=1
    fi
  done
  steal=outbox_steal.pml
  run steal "" $steal
  case $? in
    0) echo "model steal ($steal): exhaustive, no error: $states states stored, $secs s" ;;
    1) cat "$work/steal/pan.log"
       echo "model steal: ERRORS (counterexample: cd $work/steal && spin -t -p $steal)"; fail=1 ;;
    *) cat "$work/steal/pan.log"; echo "model steal: the state space was NOT exhausted"; fail=1 ;;
  esac
  # probe:the assertion its failure must show (pan's text of it)
  for p in "NO_MEMBARRIER:assertion violated.*(in_f6|in_w5)" "STOLEN:assertion violated 0" \
           "FREER_SEES_2:assertion violated 0"; do
    probe=${p%%:*} want=${p#*:}
    run "steal-probe-$probe" "-DPROBE_$probe" $steal
    if [ $? = 1 ] && grep -qE "$want" "$work/steal-probe-$probe/pan.log"; then
      echo "model steal probe $probe: reached (its probe assertion fails, as it must: $(grep -m1 -o 'assertion violated.*(at' "$work/steal-probe-$probe/pan.log" | sed 's/ *(at$//'))"
    else
      cat "$work/steal-probe-$probe/pan.log"
      echo "model steal probe $probe: NOT reached: the steal model would pass vacuously"; fail=1
    fi
  done
fi
exit $fail
