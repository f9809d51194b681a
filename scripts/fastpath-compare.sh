#!/usr/bin/env bash
# scripts/fastpath-compare.sh [REV] - the user-space fast paths of the work
# tree against revision REV (default: main): instructions per iteration of
# a LIFO loop (2 ATOMIC allocations, 2 frees) counted by
# valgrind --tool=callgrind (the loop only, (count(2N) - count(N)) / N),
# and whether labyrinth_alloc_pages / labyrinth_free_pages compile to the
# same instructions.  Exit 1 if the work tree needs more instructions.
# (Used for the kernel port: docs/kernel.md, "Portability of the core".)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-main}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v valgrind >/dev/null || { echo "fastpath-compare: valgrind not installed" >&2; exit 77; }
cat >"$tmp/lifo.c" <<'C'
#include <labyrinth.h>
#include <stdlib.h>
__attribute__((noinline)) void lifo_loop(struct labyrinth_zone *z, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        void *q = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        labyrinth_free_pages(z, q, 0);
        labyrinth_free_pages(z, p, 0);
        __asm__ __volatile__("" ::: "memory");
    }
}
int main(int argc, char **argv)
{
    struct labyrinth_zone_config cfg = {0};
    cfg.pages = 1024;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    struct labyrinth_zone *z = labyrinth_zone_create(&cfg);
    if (!z)
        return 1;
    lifo_loop(z, 1000);
    lifo_loop(z, strtoul(argv[1], 0, 0));
    labyrinth_zone_destroy(z);
    return 0;
}
C
measure() { # tag src
  local b="$tmp/build-$1"
  cmake -S "$2" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLABYRINTH_TESTS=OFF -DLABYRINTH_TOOLS=OFF >/dev/null
  cmake --build "$b" -j "$(nproc)" >/dev/null
  gcc -O2 -I"$2/include" "$tmp/lifo.c" "$b/liblabyrinth.a" -lpthread -o "$b/lifo"
  local n1 n2
  n1=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no --toggle-collect=lifo_loop \
         "$b/lifo" 100000 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  n2=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --collect-atstart=no --toggle-collect=lifo_loop \
         "$b/lifo" 200000 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  echo $(( (n2 - n1) / 100000 )) >"$tmp/$1.count"
  objdump -d --no-show-raw-insn "$b/liblabyrinth.a" >"$tmp/$1.dis"
  for f in labyrinth_alloc_pages labyrinth_free_pages; do
    awk "/<$f>:/,/^\$/" "$tmp/$1.dis" | sed -E 's/^ *[0-9a-f]+://; s/#.*//; s/[0-9a-f]+ <[^>]*>/X/g' >"$tmp/$1.$f"
  done
}
mkdir -p "$tmp/rev"
git -C "$root" archive "$rev" | tar -x -C "$tmp/rev"
measure rev "$tmp/rev"
measure tree "$root"
a=$(cat "$tmp/rev.count") b=$(cat "$tmp/tree.count")
echo "instructions per LIFO iteration (2 allocs + 2 frees): $rev $a, work tree $b"
for f in labyrinth_alloc_pages labyrinth_free_pages; do
  if cmp -s "$tmp/rev.$f" "$tmp/tree.$f"; then echo "$f: same instructions"; else echo "$f: code differs"; fi
done
[ "$b" -le "$a" ]
