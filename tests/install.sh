#!/usr/bin/env bash
# tests/install.sh BUILD_DIR SOURCE_DIR - the installed library, as an
# outside program sees it: `make install PREFIX=... BUILD=...` into a
# temporary prefix, then a program that uses every name of shared/API.md is
# compiled with `pkg-config --cflags --libs labyrinth` (strict C17, warnings
# as errors) and linked against the static library and against the shared
# one (run with LD_LIBRARY_PATH).  Also: the installed files, the version,
# and that the shared library exports only labyrinth_* symbols.  Last,
# README.md's own program: its C block is examples/quickstart.c, which
# compiles cleanly, and its build blocks run as written (HOME pointed at
# the temporary prefix's parent, make at this tree), each program starting
# and ending healthy; built without an rpath it cannot start, as the README
# says.
# Exit 0 pass, 1 fail, 77 skipped (pkg-config missing).
set -u
build=${1:?usage: install.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: install.sh BUILD_DIR SOURCE_DIR}
: "$build"

if ! command -v pkg-config >/dev/null 2>&1; then
  echo "SKIPPED: pkg-config is not installed (scripts/deps.sh test installs it)"
  exit 77
fi
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || cc=gcc

tmp=$(mktemp -d "${TMPDIR:-/tmp}/labyrinth-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# ---- install --------------------------------------------------------------
# The sanitizer flavours' flags must not leak into the installed library.
# The prefix is $HOME/.local of a home made here: the README's commands,
# run below, install there.
home="$tmp/home"
prefix="$home/.local"
mkdir -p "$home"
if ! env -u CFLAGS -u LDFLAGS make -C "$src" install PREFIX="$prefix" BUILD="$tmp/b" >"$tmp/install.log" 2>&1; then
  cat "$tmp/install.log"
  echo "FAIL: make install PREFIX=$prefix failed"
  exit 1
fi
ok "make install PREFIX=$prefix"

pc=$(find "$tmp" -path "$tmp/b*" -prune -o -name labyrinth.pc -print | head -n 1)
if [ -z "$pc" ]; then
  echo "FAIL: no labyrinth.pc installed under $tmp"
  find "$tmp" -path "$tmp/b*" -prune -o -print
  exit 1
fi
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir labyrinth)
includedir=$(pkg-config --variable=includedir labyrinth)
case "$libdir" in "$tmp"/*) ok "libdir $libdir" ;; *) fail "libdir '$libdir' is outside the prefix $tmp" ;; esac
case "$includedir" in "$tmp"/*) ok "includedir $includedir" ;; *) fail "includedir '$includedir' is outside the prefix" ;; esac

for f in "$includedir/labyrinth.h" "$libdir/liblabyrinth.a" "$libdir/liblabyrinth.so" "$libdir/liblabyrinth.so.0"; do
  [ -e "$f" ] && ok "installed $(basename "$f")" || fail "not installed: $f"
done

# The version: pkg-config's agrees with the header's.
hv=$(awk '/#define LABYRINTH_VERSION_(MAJOR|MINOR|PATCH)/ {v = v (v == "" ? "" : ".") $3} END {print v}' \
     "$includedir/labyrinth.h")
pv=$(pkg-config --modversion labyrinth)
[ -n "$hv" ] && [ "$hv" = "$pv" ] && ok "version $pv" || fail "pkg-config says '$pv', the header '$hv'"

# The static link needs the threads library (Libs.private).
pkg-config --static --libs labyrinth | grep -q -- "-pthread\|-lpthread" \
  && ok "Libs.private names the threads library" || fail "pkg-config --static --libs lacks -pthread"

# Only labyrinth_* is exported from the shared library.
if command -v nm >/dev/null 2>&1; then
  extra=$(nm -D --defined-only "$libdir/liblabyrinth.so" | awk '{print $NF}' | grep -v '^labyrinth_' | grep -v '^_init$\|^_fini$' || true)
  [ -z "$extra" ] && ok "exports only labyrinth_*" || fail "the shared library also exports: $(echo $extra)"
fi

# ---- an outside program -----------------------------------------------------
cat >"$tmp/prog.c" <<'EOF'
/* An outside program: every name of shared/API.md. */
#define _POSIX_C_SOURCE 200809L
#include <labyrinth.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failed;
#define EXPECT(c) do { if (!(c)) { printf("prog: FAIL line %d: %s\n", __LINE__, #c); failed++; } } while (0)

static unsigned char arena[1 << 20];

int main(void)
{
    /* Types and every config field. */
    struct labyrinth_zone *z;
    struct labyrinth_zone_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "outside";
    cfg.pages = 256;
    cfg.max_pages = 512;
    cfg.reserve_pages = 16;
    cfg.low_pages = 32;
    cfg.high_pages = 64;
    cfg.max_order = 6;
    cfg.poison_pattern = 0x5a;
    cfg.quality = 0;
    cfg.flags = LABYRINTH_ZONE_VERIFY;
    cfg.memory = NULL;
    cfg.memory_bytes = 0;
    z = labyrinth_zone_create(&cfg);
    EXPECT(z != NULL);
    if (!z)
        return 1;

    /* The flags are distinct bits. */
    unsigned zf[] = {LABYRINTH_ZONE_DMA, LABYRINTH_ZONE_HUGE, LABYRINTH_ZONE_VERIFY, LABYRINTH_ZONE_STRICT};
    unsigned qf[] = {LABYRINTH_QUALITY_ZERO, LABYRINTH_QUALITY_POISON, LABYRINTH_QUALITY_CL_ALIGN,
                     LABYRINTH_QUALITY_TRACK};
    unsigned all_z = 0, all_q = 0;
    for (int i = 0; i < 4; i++) {
        EXPECT(zf[i] && !(zf[i] & (zf[i] - 1)) && !(all_z & zf[i]));
        EXPECT(qf[i] && !(qf[i] & (qf[i] - 1)) && !(all_q & qf[i]));
        all_z |= zf[i];
        all_q |= qf[i];
    }
    EXPECT(LABYRINTH_GFP_ATOMIC != LABYRINTH_GFP_NOWAIT && LABYRINTH_GFP_NOWAIT != LABYRINTH_GFP_KERNEL &&
           LABYRINTH_GFP_ATOMIC != LABYRINTH_GFP_KERNEL);

    /* The modes and the qualities. */
    unsigned char *a = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO);
    unsigned char *n = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 1, LABYRINTH_QUALITY_POISON);
    unsigned char *k = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2,
                                             LABYRINTH_QUALITY_CL_ALIGN | LABYRINTH_QUALITY_TRACK);
    EXPECT(a && n && k);
    if (!a || !n || !k)
        return 1;
    EXPECT(a[0] == 0 && a[4095] == 0);
    EXPECT(n[0] == 0x5a && n[8191] == 0x5a);
    EXPECT(((uintptr_t)k & 63) == 0);

    /* The seed's macro, and register. */
    void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_ZERO | LABYRINTH_QUALITY_CL_ALIGN);
    EXPECT(m != NULL);
    EXPECT(labyrinth_register_page(z, a) == 0);

    struct labyrinth_zone_stats st;
    EXPECT(labyrinth_zone_stats(z, &st) == 0);
    EXPECT(st.total_pages == 256);
    EXPECT(st.in_use_pages == 1 + 2 + 4 + 1);
    EXPECT(st.total_pages == st.free_pages + st.in_use_pages);
    EXPECT(st.reserve_free_pages <= 16);
    EXPECT(st.atomic_allocs == 2);
    EXPECT(st.atomic_failures == 0);
    EXPECT(st.misuse_reports == 0);
    EXPECT(labyrinth_zone_check(z) == 0);

    uint64_t phys = 0;
    EXPECT(labyrinth_virt_to_phys(z, a, &phys) < 0); /* not a DMA zone */

    /* Frees: NULL is a no-op, a refused free is counted and changes nothing. */
    EXPECT(labyrinth_free_pages(z, NULL, 0) == 0);
    EXPECT(labyrinth_free_pages(z, a, 0) == 0);
    EXPECT(labyrinth_free_pages(z, a, 0) < 0);
    EXPECT(labyrinth_free_pages(z, k + 4096, 2) < 0);
    EXPECT(labyrinth_free_pages(z, n, 0) < 0);
    EXPECT(labyrinth_zone_stats(z, &st) == 0);
    EXPECT(st.misuse_reports == 3);
    EXPECT(st.in_use_pages == 2 + 4 + 1);
    EXPECT(labyrinth_free_pages(z, n, 1) == 0);
    EXPECT(labyrinth_free_pages(z, k, 2) == 0);
    EXPECT(labyrinth_free_pages(z, m, 0) == 0);
    EXPECT(labyrinth_zone_check(z) == 0);
    labyrinth_zone_destroy(z);

    /* Defaults, and caller-supplied memory. */
    z = labyrinth_zone_create(NULL);
    EXPECT(z != NULL);
    labyrinth_zone_destroy(z);
    memset(&cfg, 0, sizeof cfg);
    cfg.memory = arena;
    cfg.memory_bytes = sizeof arena;
    z = labyrinth_zone_create(&cfg);
    EXPECT(z != NULL);
    if (z) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        EXPECT(p && (unsigned char *)p >= arena && (unsigned char *)p < arena + sizeof arena);
        EXPECT(labyrinth_free_pages(z, p, 0) == 0);
        labyrinth_zone_destroy(z);
    }
    /* DMA and HUGE zones: created, or refused with a reason. */
    memset(&cfg, 0, sizeof cfg);
    cfg.pages = 64;
    cfg.flags = LABYRINTH_ZONE_DMA;
    errno = 0;
    z = labyrinth_zone_create(&cfg);
    EXPECT(z != NULL || errno != 0);
    if (z) {
        void *p = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, 0);
        EXPECT(p && labyrinth_virt_to_phys(z, p, &phys) == 0 && phys != 0);
        labyrinth_free_pages(z, p, 0);
        labyrinth_zone_destroy(z);
    }
    cfg.flags = LABYRINTH_ZONE_HUGE | LABYRINTH_ZONE_STRICT;
    z = labyrinth_zone_create(&cfg);
    EXPECT(z != NULL);
    labyrinth_zone_destroy(z);

    printf(failed ? "prog: %d FAILED\n" : "prog: OK\n", failed);
    return failed ? 1 : 0;
}
EOF

cflags=$(pkg-config --cflags labyrinth)
libs=$(pkg-config --libs labyrinth)
slibs=$(pkg-config --static --libs labyrinth)
warn="-std=c17 -pedantic -Wall -Wextra -Werror"

# Static: the archive, and nothing of labyrinth needed at run time.
# shellcheck disable=SC2086
if "$cc" $warn $cflags "$tmp/prog.c" -o "$tmp/prog_static" -Wl,-Bstatic $slibs -Wl,-Bdynamic >"$tmp/cc_static.log" 2>&1; then
  ok "compiled and linked against liblabyrinth.a"
  if readelf -d "$tmp/prog_static" 2>/dev/null | grep -q 'NEEDED.*liblabyrinth'; then
    fail "the static program needs liblabyrinth.so"
  fi
  if "$tmp/prog_static" >"$tmp/run_static.log" 2>&1 && grep -q "prog: OK" "$tmp/run_static.log"; then
    ok "static program ran"
  else
    cat "$tmp/run_static.log"; fail "static program"
  fi
else
  cat "$tmp/cc_static.log"; fail "compile/link against the static library ($cc $warn $cflags ... $slibs)"
fi

# Shared: needs liblabyrinth.so.0, found through LD_LIBRARY_PATH.
# shellcheck disable=SC2086
if "$cc" $warn $cflags "$tmp/prog.c" -o "$tmp/prog_shared" $libs >"$tmp/cc_shared.log" 2>&1; then
  ok "compiled and linked against liblabyrinth.so"
  readelf -d "$tmp/prog_shared" 2>/dev/null | grep -q 'NEEDED.*liblabyrinth\.so\.0' \
    || fail "the shared program does not need liblabyrinth.so.0"
  if LD_LIBRARY_PATH="$libdir" "$tmp/prog_shared" >"$tmp/run_shared.log" 2>&1 && grep -q "prog: OK" "$tmp/run_shared.log"; then
    ok "shared program ran"
  else
    cat "$tmp/run_shared.log"; fail "shared program"
  fi
  if command -v ldd >/dev/null 2>&1; then
    LD_LIBRARY_PATH="$libdir" ldd "$tmp/prog_shared" | grep -q "liblabyrinth.so.0 => $libdir/" \
      && ok "liblabyrinth.so.0 resolved in $libdir" || fail "liblabyrinth.so.0 not resolved to $libdir"
  fi
else
  cat "$tmp/cc_shared.log"; fail "compile/link against the shared library ($cc $warn $cflags ... $libs)"
fi

# ---- README.md's program, built as README.md says ----------------------------
readme="$src/README.md"
# readme_blocks MARKER: the fenced blocks that follow a line <!-- MARKER -->.
readme_blocks() {
  awk -v m="<!-- $1 -->" '
    $0 == m { want = 1; next }
    want && !inb && /^```/ { inb = 1; next }
    inb && /^```$/ { inb = 0; want = 0; print ""; next }
    inb { print }' "$readme"
}
readme_blocks "tests/install.sh: this block is examples/quickstart.c" | sed '$d' >"$tmp/readme_prog.c"
if [ -s "$tmp/readme_prog.c" ] && cmp -s "$tmp/readme_prog.c" "$src/examples/quickstart.c"; then
  ok "README's program is examples/quickstart.c"
else
  fail "README's C block differs from examples/quickstart.c: $(diff "$tmp/readme_prog.c" "$src/examples/quickstart.c" | head -5)"
fi
# shellcheck disable=SC2086
"$cc" $warn $cflags "$src/examples/quickstart.c" -o "$tmp/qs_strict" $libs >"$tmp/cc_qs.log" 2>&1 \
  && ok "examples/quickstart.c compiles with $warn" || { cat "$tmp/cc_qs.log"; fail "examples/quickstart.c does not compile cleanly"; }

readme_blocks "tests/install.sh runs this block" >"$tmp/readme.sh"
nblocks=$(grep -c "^\./quickstart\|\./quickstart-" "$tmp/readme.sh")
[ "$nblocks" -ge 3 ] && ok "README gives $nblocks ways to run the program" || fail "README's build blocks: $nblocks runs found"
mkdir -p "$tmp/work/examples"
cp "$src/examples/quickstart.c" "$tmp/work/examples/"
{
  echo 'set -eux'
  # make runs in the source tree, building in a private directory.
  echo "make() { env -u CFLAGS -u LDFLAGS make -C '$src' BUILD='$tmp/b' \"\$@\"; }"
  echo 'unset PKG_CONFIG_PATH LD_LIBRARY_PATH'
  cat "$tmp/readme.sh"
} >"$tmp/readme_run.sh"
if (cd "$tmp/work" && HOME="$home" CC= bash "$tmp/readme_run.sh") >"$tmp/readme.log" 2>&1; then
  ok "README's build commands run as written"
else
  fail "README's build commands fail:"; tail -20 "$tmp/readme.log"
fi
n=$(grep -c "^quickstart: hello from a signal handler" "$tmp/readme.log")
m=$(grep -c "^quickstart: 256 of 256 pages free, 0 in use" "$tmp/readme.log")
[ "$n" -ge 3 ] && [ "$m" -eq "$n" ] && ok "the README's program ran $n times, healthy" \
  || { fail "the README's program ran $n times, healthy $m"; tail -20 "$tmp/readme.log"; }
if [ -x "$tmp/work/quickstart" ] && command -v readelf >/dev/null 2>&1; then
  readelf -d "$tmp/work/quickstart" | grep -Eq "(RUNPATH|RPATH).*$libdir" \
    && ok "quickstart records $libdir (rpath)" || fail "quickstart has no rpath to $libdir"
  readelf -d "$tmp/work/quickstart-static" | grep -q 'NEEDED.*liblabyrinth' \
    && fail "quickstart-static needs liblabyrinth.so" || ok "quickstart-static needs no liblabyrinth.so"
fi
# What the README warns of: without the rpath or LD_LIBRARY_PATH it cannot start.
if command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'liblabyrinth\.so\.0'; then
  echo "note: liblabyrinth.so.0 is installed system-wide here: the README's warning cannot be shown"
else
  # shellcheck disable=SC2086
  "$cc" $cflags "$src/examples/quickstart.c" -o "$tmp/qs_norpath" $libs >/dev/null 2>&1
  if env -u LD_LIBRARY_PATH "$tmp/qs_norpath" >"$tmp/norpath.log" 2>&1; then
    fail "linked without an rpath the program started: the README's warning is wrong"
  elif grep -q "liblabyrinth.so.0: cannot open shared object file" "$tmp/norpath.log"; then
    ok "without an rpath: 'liblabyrinth.so.0: cannot open shared object file', as the README says"
  else
    fail "without an rpath: $(cat "$tmp/norpath.log")"
  fi
fi

if [ "$failures" -ne 0 ]; then
  echo "install: $failures failed"
  exit 1
fi
echo "install: all passed"
exit 0
