#!/usr/bin/env bash
# scripts/test.sh - what `make test` runs: every test, in every flavour.
#   gcc      the plain build (the seccomp and page-fault proofs run here);
#            then the soak tier: `labyrinth stress` for LB_SOAK_SECONDS
#            (default 60) with a VERIFY zone, every violation fatal
#   clang    the same with clang (warnings are errors in both)
#   asan     gcc with AddressSanitizer + UndefinedBehaviorSanitizer
#   tsan     gcc with ThreadSanitizer
#   wrap     gcc with -DLABYRINTH_WRAP=ON: the page generations, stack tags
#            and thread ids start just below their 32-bit wrap (src/cache.h,
#            "The wrap flavour"), so every test runs across those wraps; and
#            with -DLABYRINTH_WRAP_GEN_BITS=8: the generations' low word (the
#            descriptor's and the outbox entries') comes round every 256
#            allocations, so every test runs across thousands of rounds and
#            stress_genwrap hunts stale entries (issue 11.3)
#   valgrind the API tests under memcheck (--fair-sched=yes, each bounded by
#            LB_VALGRIND_TIMEOUT, default 600 s), on the plain build; then a build
#            that announces pages to memcheck (-DLABYRINTH_VALGRIND=ON), where
#            tests/memtools.sh checks a use after free and a lost page are
#            reported
#   fuzz     clang -fsanitize=fuzzer,address,undefined (no trace-cmp): for
#            LB_FUZZ_SECONDS (default 60; `make fuzz` runs 600), three
#            quarters fuzz_model, one quarter fuzz_config, each on a corpus
#            under the build directory; a crash input is copied to
#            fuzz/regressions/ (or fuzz/regressions-config/), where every
#            flavour's fuzz_regressions (fuzz_config_regressions) test
#            replays it
#   kernel   kernel/run-qemu.sh: labyrinth.ko, its self-test and the example
#            driver built against the newest installed Debian *-amd64
#            kernel (installed as root when missing: linux-image-amd64
#            linux-headers-amd64 qemu-system-x86 busybox-static cpio kmod)
#            and booted under qemu-system-x86_64 -accel tcg; passes only
#            when the guest writes PASS to the isa-debug-exit port
#            (docs/kernel.md)
# LB_TEST_FLAVOURS="gcc asan" limits the set.  Exit status 0 only if every
# flavour that ran passed; a flavour that cannot run says SKIPPED and why.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh" test || exit 1
flavours=${LB_TEST_FLAVOURS:-"gcc clang asan tsan wrap valgrind fuzz kernel"}
jobs=$(nproc 2>/dev/null || echo 2)
summary=()
tail_notes=()
failed=0
t_all=$(date +%s)

say() { printf '\n=== %s\n' "$*"; }

build() { # name cc sanitize [extra cmake flags, split on spaces]
  local dir="$root/build-test-$1"
  mkdir -p "$dir"
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$2" \
        -DLABYRINTH_SANITIZE="$3" ${4:+$4} >"$dir/configure.log" 2>&1 \
    || { cat "$dir/configure.log"; return 1; }
  cmake --build "$dir" -j "$jobs" 2>&1 | grep -E "error|warning|Error" ; return "${PIPESTATUS[0]}"
}

run_ctest() { # name
  (cd "$root/build-test-$1" && ctest --output-on-failure -j "$jobs" --timeout 600)
}

flavour() { # name cc sanitize [extra cmake flags, split on spaces]
  local name=$1 t0; t0=$(date +%s)
  say "flavour $name: build"
  if ! command -v "$2" >/dev/null; then
    summary+=("$name: SKIPPED ($2 not installed; run as root to install it)"); return
  fi
  if ! build "$name" "$2" "$3" "${4:-}"; then
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
    gcc)   flavour gcc gcc ""
           soak=${LB_SOAK_SECONDS:-60}
           if [ -x "$root/build-test-gcc/tools/labyrinth" ] && [ "$soak" -gt 0 ]; then
             say "soak: labyrinth stress for ${soak} s (VERIFY zone, 4 threads, signal storm)"
             t0=$(date +%s)
             if "$root/build-test-gcc/tools/labyrinth" stress --duration "${soak}s" --verify --quiet \
                  --max-order 6 > "$root/build-test-gcc/soak.log" 2>&1; then
               summary+=("soak: ${soak} s clean, $(awk '/^  operations +[0-9]/{print $2}' "$root/build-test-gcc/soak.log") operations, $(awk '/^  timer signals +[0-9]/{print $3}' "$root/build-test-gcc/soak.log") signals, no violation")
             else
               cat "$root/build-test-gcc/soak.log"; summary+=("soak: FAILED (see above; the seed repeats it)"); failed=1
             fi
           fi ;;
    clang) flavour clang clang "" ;;
    asan)  flavour asan gcc address ;;
    tsan)  flavour tsan gcc thread ;;
    wrap)  flavour wrap gcc "" "-DLABYRINTH_WRAP=ON -DLABYRINTH_WRAP_GEN_BITS=8" ;;
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
        # --fair-sched=yes: valgrind runs one thread at a time, and its default
        # lock lets busy threads starve the rest (api_fork's parent waited 56
        # minutes on 40 children behind five hammering threads in one CI run;
        # 44 s unfair, 11 s fair when idle).  The timeout bounds any test that
        # still starves, and says so, instead of eating CI's 90 minutes.
        rc=0
        timeout -k 10 "${LB_VALGRIND_TIMEOUT:-600}" valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full \
          --errors-for-leak-kinds=definite "$t" >"$t.valgrind.log" 2>&1 || rc=$?
        if [ "$rc" != 0 ]; then
          [ "$rc" = 124 ] && echo "valgrind: $(basename "$t") TIMED OUT after ${LB_VALGRIND_TIMEOUT:-600} s"
          echo "valgrind: $(basename "$t") FAILED"; tail -30 "$t.valgrind.log"; vfail=1
        else
          echo "valgrind: $(basename "$t") clean"
        fi
      done
      say "valgrind: memcheck sees labyrinth's pages (-DLABYRINTH_VALGRIND=ON)"
      vdir="$root/build-test-valgrind"
      mkdir -p "$vdir"
      if cmake -S "$root" -B "$vdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLABYRINTH_VALGRIND=ON \
             >"$vdir/configure.log" 2>&1 && cmake --build "$vdir" -j "$jobs" --target memtool_faulty >/dev/null 2>&1; then
        bash "$root/tests/memtools.sh" "$vdir" "$root" || vfail=1
      else
        cat "$vdir/configure.log"; echo "valgrind: annotated build FAILED"; vfail=1
      fi
      if [ "$vfail" = 0 ] && [ "$n" -gt 0 ]; then summary+=("valgrind: $n API tests clean, memcheck sees labyrinth's pages ($(( $(date +%s) - t0 )) s)")
      else summary+=("valgrind: FAILED"); failed=1; fi
      ;;
    fuzz)
      t0=$(date +%s)
      secs=${LB_FUZZ_SECONDS:-60}
      dir="$root/build-test-fuzz"
      say "flavour fuzz: build (clang, libFuzzer + ASan + UBSan)"
      if ! command -v clang >/dev/null; then
        summary+=("fuzz: SKIPPED (clang not installed; run as root to install it)"); continue
      fi
      mkdir -p "$dir"
      # The fuzzer runtime (Debian's libclang-rt-14-dev) links or it does not.
      if ! printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n; }\n' \
           | clang -x c -fsanitize=fuzzer,address,undefined - -o "$dir/probe" >"$dir/probe.log" 2>&1; then
        summary+=("fuzz: SKIPPED (clang's fuzzer runtime is missing: libclang-rt-14-dev; see $dir/probe.log)"); continue
      fi
      # No trace-cmp: the input is a program, decoded by arithmetic, and the
      # library compares its own state, never input bytes, so libFuzzer's
      # comparison-guided mutations have nothing to match; the hooks took
      # some 40% of the CPU (coverage and its counters are unchanged).
      san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-coverage=trace-cmp -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
      if ! { cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
               -DLABYRINTH_FUZZ=ON -DLABYRINTH_TESTS=OFF -DLABYRINTH_TOOLS=OFF -DCMAKE_C_FLAGS="$san" \
               >"$dir/configure.log" 2>&1 && cmake --build "$dir" -j "$jobs" --target fuzz_model fuzz_config >"$dir/build.log" 2>&1; }; then
        tail -n 30 "$dir/configure.log" "$dir/build.log"; summary+=("fuzz: BUILD FAILED"); failed=1; continue
      fi
      # The budget is split: three quarters for fuzz_model, the rest for
      # fuzz_config (the zone-creation contract), so the flavour takes no
      # longer than with the model alone.
      model_secs=$(( secs * 3 / 4 )); [ "$model_secs" -lt 1 ] && model_secs=1
      config_secs=$(( secs - model_secs )); [ "$config_secs" -lt 1 ] && config_secs=1
      figures_all=(); fuzz_failed=0
      for fz in "fuzz_model:$model_secs:regressions:corpus" "fuzz_config:$config_secs:regressions-config:corpus-config"; do
        IFS=: read -r fname fsecs freg fcorpus <<<"$fz"
        say "flavour fuzz: $fname for ${fsecs} s"
        mkdir -p "$dir/$fcorpus" "$dir/artifacts-$fname"
        art="$dir/artifacts-$fname"
        rm -f "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*
        # Known library bugs (docs/reliability.md) are tolerated here so the run
        # looks for new ones; fuzz_regressions still fails on them.
        "$dir/fuzz/$fname" -max_total_time="$fsecs" -max_len=4096 -timeout=60 \
            -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$art/" \
            "$dir/$fcorpus" "$root/fuzz/$freg" >"$dir/$fname.log" 2>&1
        frc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/$fname.log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/$fname.log" | tail -1)
        cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$dir/$fname.log" | tail -1)
        corpus=$(ls "$dir/$fcorpus" | wc -l)
        figures="$fname ${fsecs} s: ${execs:-?} execs, ${rate:-?}/s, ${cov:-cov ?}, corpus $corpus"
        figures_all+=("$figures")
        crashes=$(ls "$art"/ 2>/dev/null | grep -E '^(crash|leak|timeout|oom)-' || true)
        if [ "$frc" != 0 ] || [ -n "$crashes" ]; then
          fuzz_failed=1
          errpat='MODEL VIOLATION|CONFIG VIOLATION|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error|ERROR: libFuzzer|==[0-9]+== ?ERROR'
          grep -m1 -A3 -E "$errpat" "$dir/$fname.log"
          for c in $crashes; do
            cp "$art/$c" "$root/fuzz/$freg/$c"
            echo "fuzz: $c copied to fuzz/$freg/ (commit it: the replay test of every flavour replays it)"
          done
          why=$(grep -m1 -E "$errpat" "$dir/$fname.log" | cut -c1-300)
          summary+=("fuzz: FAILED ($figures; ${why:-exit $frc, no error line}; see $dir/$fname.log)")
          # A CI log may only keep its tail: the reproducer goes after the summary.
          for c in $crashes; do
            tail_notes+=("fuzz reproducer $c ($(stat -c %s "$art/$c") bytes), base64 - decode it into fuzz/$freg/:")
            tail_notes+=("$(base64 -w 100 "$art/$c")")
          done
        fi
      done
      if [ "$fuzz_failed" = 0 ]; then
        summary+=("fuzz: passed (${figures_all[0]}; ${figures_all[1]}; $(( $(date +%s) - t0 )) s)")
      else
        failed=1
      fi
      ;;
    kernel)
      t0=$(date +%s)
      say "flavour kernel: labyrinth.ko built against Debian's kernel, self-test booted in QEMU (TCG)"
      mkdir -p "$root/build-kernel"
      "$root/kernel/run-qemu.sh" 2>&1 | tee "$root/build-kernel/test.log"
      krc=${PIPESTATUS[0]}
      if [ "$krc" = 0 ]; then
        summary+=("kernel: passed (labyrinth.ko self-test in QEMU: $(tr -d '\r' <"$root/build-kernel/test.log" | sed -n 's/.*labyrinth_selftest: PASS: //p' | head -1); $(( $(date +%s) - t0 )) s)")
      elif [ "$krc" = 77 ]; then
        summary+=("kernel: SKIPPED ($(sed -n 's/^## kernel: SKIPPED - //p' "$root/build-kernel/test.log" | head -1))")
      else
        summary+=("kernel: FAILED (see build-kernel/test.log and build-kernel/qemu.log)"); failed=1
      fi
      ;;
    *) echo "unknown flavour $f" >&2; exit 2 ;;
  esac
done

say "summary ($(( $(date +%s) - t_all )) s)"
for s in "${summary[@]}"; do echo "  $s"; done
for s in "${tail_notes[@]}"; do echo "$s"; done
exit $failed
