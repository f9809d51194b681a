#!/usr/bin/env bash
# scripts/test.sh - what `make test` runs: every test, in every flavour.
#   gcc      the plain build (the seccomp and page-fault proofs run here)
#   clang    the same with clang (warnings are errors in both)
#   asan     gcc with AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan     gcc with ThreadSanitizer
#   valgrind the API tests under memcheck, on the plain build
# LB_TEST_FLAVOURS="gcc asan" limits the set.  Exit status 0 only if every
# flavour that ran passed; a flavour that cannot run says SKIPPED and why.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh" test || exit 1
flavours=${LB_TEST_FLAVOURS:-"gcc clang asan tsan valgrind"}
jobs=$(nproc 2>/dev/null || echo 2)
summary=()
failed=0
t_all=$(date +%s)

say() { printf '\n=== %s\n' "$*"; }

build() { # name cc sanitize
  local dir="$root/build-test-$1"
  mkdir -p "$dir"
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$2" \
        -DLABYRINTH_SANITIZE="$3" >"$dir/configure.log" 2>&1 \
    || { cat "$dir/configure.log"; return 1; }
  cmake --build "$dir" -j "$jobs" 2>&1 | grep -E "error|warning|Error" ; return "${PIPESTATUS[0]}"
}

run_ctest() { # name
  (cd "$root/build-test-$1" && ctest --output-on-failure -j "$jobs" --timeout 600)
}

flavour() { # name cc sanitize
  local name=$1 t0; t0=$(date +%s)
  say "flavour $name: build"
  if ! command -v "$2" >/dev/null; then
    summary+=("$name: SKIPPED ($2 not installed; run as root to install it)"); return
  fi
  if ! build "$name" "$2" "$3"; then
    summary+=("$name: BUILD FAILED"); failed=1; return
  fi
  say "flavour $name: tests"
  if run_ctest "$name"; then
    summary+=("$name: passed ($(( $(date +%s) - t0 )) s)")
  else
    summary+=("$name: FAILED"); failed=1
  fi
}

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

for f in $flavours; do
  case "$f" in
    gcc)   flavour gcc gcc "" ;;
    clang) flavour clang clang "" ;;
    asan)  flavour asan gcc address ;;
    tsan)  flavour tsan gcc thread ;;
    valgrind)
      t0=$(date +%s)
      say "valgrind: API tests under memcheck"
      if ! command -v valgrind >/dev/null; then
        summary+=("valgrind: SKIPPED (valgrind not installed; run as root to install it)"); continue
      fi
      [ -d "$root/build-test-gcc/tests" ] || build gcc gcc "" || { summary+=("valgrind: BUILD FAILED"); failed=1; continue; }
      vfail=0; n=0
      for t in "$root"/build-test-gcc/tests/api_*; do
        [ -x "$t" ] || continue
        n=$((n + 1))
        if ! valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
               "$t" >"$t.valgrind.log" 2>&1; then
          echo "valgrind: $(basename "$t") FAILED"; tail -30 "$t.valgrind.log"; vfail=1
        else
          echo "valgrind: $(basename "$t") clean"
        fi
      done
      if [ "$vfail" = 0 ] && [ "$n" -gt 0 ]; then summary+=("valgrind: $n API tests clean ($(( $(date +%s) - t0 )) s)")
      else summary+=("valgrind: FAILED"); failed=1; fi
      ;;
    *) echo "unknown flavour $f" >&2; exit 2 ;;
  esac
done

say "summary ($(( $(date +%s) - t_all )) s)"
for s in "${summary[@]}"; do echo "  $s"; done
exit $failed
