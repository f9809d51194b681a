#!/usr/bin/env bash
# memtools.sh BUILD_DIR SOURCE_DIR - memory tools see labyrinth's pages.
# In an AddressSanitizer build, a use of a freed page is a use-after-poison
# report; in a -DLABYRINTH_VALGRIND=ON build, memcheck reports it as an
# invalid access inside a freed block, and a lost page as definitely lost.
# Other builds have no tool to check: SKIPPED (the asan and valgrind
# flavours of make test run this).
set -u
build=$1
bin=$build/tests/memtool_faulty
cache=$build/CMakeCache.txt
san=$(sed -n 's/^LABYRINTH_SANITIZE:[A-Z]*=//p' "$cache")
vg=$(sed -n 's/^LABYRINTH_VALGRIND:[A-Z]*=//p' "$cache")
fail=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
expect() { # name want-exit(0|nonzero) pattern command...
  local name=$1 want=$2 pat=$3; shift 3
  "$@" >"$out" 2>&1; local rc=$?
  if { [ "$want" = 0 ] && [ $rc -ne 0 ]; } || { [ "$want" = nonzero ] && [ $rc -eq 0 ]; }; then
    echo "FAIL: $name: exit $rc"; sed 's/^/  | /' "$out" | head -30; fail=1; return
  fi
  if [ -n "$pat" ] && ! grep -qE "$pat" "$out"; then
    echo "FAIL: $name: no line matching /$pat/"; sed 's/^/  | /' "$out" | head -30; fail=1; return
  fi
  echo "ok: $name"
}
if [ "$san" = address ]; then
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0
  expect "ASan: clean use" 0 "" "$bin" ok
  expect "ASan: write after free reported" nonzero "AddressSanitizer: use-after-poison" "$bin" uaf-write
  expect "ASan: read after free reported" nonzero "AddressSanitizer: use-after-poison" "$bin" uaf-read
  echo "note: LeakSanitizer has no interface for pages of a custom allocator; labyrinth's own"
  echo "      report at labyrinth_zone_destroy lists pages still in use (tests/api_tracking.c)."
elif [ "$vg" = ON ]; then
  command -v valgrind >/dev/null || { echo "SKIPPED: valgrind is not installed"; exit 77; }
  vgrun() { valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite "$@"; }
  expect "memcheck: clean use" 0 "" vgrun "$bin" ok
  expect "memcheck: write after free reported" nonzero "Invalid write of size 1" vgrun "$bin" uaf-write
  grep -qE "inside a block of size 4,096 free'd" "$out" || { echo "FAIL: memcheck did not name the freed block"; fail=1; }
  expect "memcheck: read after free reported" nonzero "Invalid read of size 1" vgrun "$bin" uaf-read
  expect "memcheck: lost page reported" nonzero "4,096 bytes in 1 blocks are definitely lost" vgrun "$bin" leak
else
  echo "SKIPPED: this build has no memory tool to check (the asan and valgrind flavours run this test)"
  exit 77
fi
exit $fail
